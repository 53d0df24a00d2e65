#!/usr/bin/env node
// A headless "browser" for woci's interactive login, usable as woci's `BROWSER` command:
//   login-driver.mjs <authorize URL>
// It GETs the authorize URL with a cookie jar, follows redirects, fills and submits the HTML
// forms it is shown (a field named like `username`/`login`/`email` gets the user name, a
// password field the password, hidden fields keep their values), and stops at the first
// redirect that leaves the identity provider's origin: that is the client's loopback callback,
// which it GETs once. Plain HTTP(S) with fetch, no JavaScript, no Chromium.
//
// Environment: IDP_USERNAME / IDP_PASSWORD (default `alice` / `wonderland-e2e`, the defaults of
// server.mjs), LOGIN_DRIVER_DEBUG=1 to trace each step on stderr (never the password).
// Exit status: 0 when the callback received a `code`; 1 with a one-line reason otherwise
// (an `error` redirect is still delivered to the callback first, so the client can report it).
//
// Device flow (RFC 8628): given the provider's `verification_uri_complete`, it confirms the code,
// logs in and stops at the success page (exit 0). LOGIN_DRIVER_DECISION=deny aborts at the
// confirmation instead (exit 0 once the provider took the abort).

const username = process.env.IDP_USERNAME || 'alice';
const password = process.env.IDP_PASSWORD || 'wonderland-e2e';
const debug = process.env.LOGIN_DRIVER_DEBUG === '1';
const deny = process.env.LOGIN_DRIVER_DECISION === 'deny';
const MAX_STEPS = 25;

function fail(msg) {
  console.error(`login-driver: ${msg}`);
  process.exit(1);
}

function trace(msg) {
  if (debug) console.error(`login-driver: ${msg}`);
}

// Redacts query values that are secrets in transit (codes) from traces.
function shown(url) {
  const u = new URL(url);
  for (const k of ['code', 'code_verifier']) if (u.searchParams.has(k)) u.searchParams.set(k, '…');
  return u.toString();
}

class Jar {
  #cookies = []; // {name, value, host, path}

  store(url, response) {
    const u = new URL(url);
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = u.pathname.replace(/\/[^/]*$/, '') || '/';
      let expired = false;
      for (const a of attrs) {
        const [k, v = ''] = a.split('=');
        const key = k.trim().toLowerCase();
        if (key === 'path' && v.trim().startsWith('/')) path = v.trim();
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      this.#cookies = this.#cookies.filter((c) => !(c.name === name && c.host === u.host && c.path === path));
      if (!expired) this.#cookies.push({ name, value, host: u.host, path });
    }
  }

  header(url) {
    const u = new URL(url);
    const matches = this.#cookies.filter((c) => c.host === u.host
      && (u.pathname === c.path || u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)));
    // Longer paths first, as browsers do.
    matches.sort((a, b) => b.path.length - a.path.length);
    return matches.map((c) => `${c.name}=${c.value}`).join('; ');
  }
}

const attr = (tag, name) => {
  const m = new RegExp(`\\s${name}\\s*=\\s*("([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(tag);
  return m ? decodeEntities(m[2] ?? m[3] ?? m[4]) : undefined;
};

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, e) => {
    const l = e.toLowerCase();
    if (l === 'amp') return '&';
    if (l === 'lt') return '<';
    if (l === 'gt') return '>';
    if (l === 'quot') return '"';
    if (l === 'apos') return "'";
    return String.fromCodePoint(l.startsWith('#x') ? parseInt(l.slice(2), 16) : parseInt(l.slice(1), 10));
  });
}

// The first <form> of the page: method, action and its filled-in fields.
function fillForm(html, pageUrl) {
  const m = /<form\b[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (!m) return undefined;
  const tag = m[0].slice(0, m[0].indexOf('>') + 1);
  const method = (attr(tag, 'method') || 'get').toUpperCase();
  const action = new URL(attr(tag, 'action') || pageUrl, pageUrl).toString();
  const fields = new URLSearchParams();
  let wantsPassword = false;
  for (const input of m[1].match(/<input\b[^>]*>/gi) ?? []) {
    const name = attr(input, 'name');
    if (!name) continue;
    const type = (attr(input, 'type') || 'text').toLowerCase();
    if (type === 'password') {
      fields.set(name, password);
      wantsPassword = true;
    } else if (type === 'hidden' || type === 'submit') {
      fields.set(name, attr(input, 'value') ?? '');
    } else if (/user|login|email/i.test(name)) {
      fields.set(name, username);
    } else if (type === 'checkbox' || type === 'radio') {
      if (/\schecked\b/i.test(input)) fields.set(name, attr(input, 'value') ?? 'on');
    } else {
      fields.set(name, attr(input, 'value') ?? '');
    }
  }
  for (const button of m[1].match(/<button\b[^>]*>/gi) ?? []) {
    const name = attr(button, 'name');
    if (name) fields.set(name, attr(button, 'value') ?? '');
  }
  return { method, action, fields, wantsPassword };
}

async function main() {
  const start = process.argv[2];
  if (!start) fail('usage: login-driver.mjs <authorize URL>');
  let idpOrigin;
  try {
    idpOrigin = new URL(start).origin;
  } catch {
    fail(`not a URL: ${start}`);
  }
  const jar = new Jar();
  let request = { method: 'GET', url: start, body: undefined };
  let passwordsSent = 0;
  // 0: no abort; 1: the abort is the next request; 2: it was sent.
  let abort = 0;
  for (let step = 0; step < MAX_STEPS; step += 1) {
    if (abort === 2) {
      trace('device code confirmation aborted');
      return;
    }
    if (abort === 1) abort = 2;
    const { method, url, body } = request;
    if (new URL(url).origin !== idpOrigin) {
      // The client's redirect URI: deliver the result exactly once, like a browser would.
      trace(`callback ${shown(url)}`);
      const res = await fetch(url, { redirect: 'manual' }).catch((e) => fail(`callback ${new URL(url).origin} unreachable: ${e.cause?.code ?? e.message}`));
      const params = new URL(url).searchParams;
      if (params.has('error')) {
        fail(`the identity provider returned error \`${params.get('error')}\`${params.get('error_description') ? `: ${params.get('error_description')}` : ''}`);
      }
      if (!params.has('code')) fail(`the redirect to ${new URL(url).origin} carries no code`);
      if (res.status >= 400) fail(`the callback answered HTTP ${res.status}`);
      return;
    }
    trace(`${method} ${shown(url)}`);
    const headers = { accept: 'text/html,application/json' };
    const cookie = jar.header(url);
    if (cookie) headers.cookie = cookie;
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method, headers, body, redirect: 'manual' })
      .catch((e) => fail(`${method} ${new URL(url).origin}${new URL(url).pathname} failed: ${e.cause?.code ?? e.message}`));
    jar.store(url, res);
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get('location');
      if (!location) fail(`HTTP ${res.status} from ${new URL(url).pathname} without a Location`);
      await res.arrayBuffer();
      request = { method: 'GET', url: new URL(location, url).toString(), body: undefined };
      continue;
    }
    const text = await res.text();
    const form = (res.headers.get('content-type') ?? '').includes('html') ? fillForm(text, url) : undefined;
    if (!form && /Sign-in Success/i.test(text)) {
      trace('device login complete');
      return;
    }
    if (!form) {
      const snippet = text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 300);
      fail(`HTTP ${res.status} at ${new URL(url).pathname} with no form to submit: ${snippet}`);
    }
    if (form.fields.has('confirm') && form.fields.has('user_code') && deny) {
      form.fields.delete('confirm');
      form.fields.set('abort', 'yes');
      abort = 1;
    }
    if (form.wantsPassword) {
      passwordsSent += 1;
      if (passwordsSent > 1) fail(`the identity provider asked for the password again (wrong username or password for \`${username}\`?)`);
    }
    trace(`submit form ${form.method} ${new URL(form.action).pathname} fields [${[...form.fields.keys()].join(', ')}]`);
    if (form.method === 'POST') {
      request = { method: 'POST', url: form.action, body: form.fields.toString() };
    } else {
      const u = new URL(form.action);
      for (const [k, v] of form.fields) u.searchParams.set(k, v);
      request = { method: 'GET', url: u.toString(), body: undefined };
    }
  }
  fail(`gave up after ${MAX_STEPS} steps without reaching the client's redirect URI`);
}

await main();
