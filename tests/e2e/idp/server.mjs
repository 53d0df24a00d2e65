#!/usr/bin/env node
// A real OpenID Connect provider for woci's end-to-end tests: npm `oidc-provider` (pinned in
// package-lock.json), configured like a strict production IdP:
//   - one client, Authorization Code + PKCE (S256, required) and the refresh-token grant,
//     loopback redirect URIs on any port (RFC 8252 native client: `http://127.0.0.1/callback`);
//   - refresh tokens rotate on every use; reusing a spent one fails with `invalid_grant` and
//     revokes the whole grant;
//   - access tokens are RS256 JWTs (resource indicators with a default resource), `iss` = issuer,
//     verifiable through `jwks_uri`;
//   - one test user with a password, logged in through a tiny HTML form (`login-driver.mjs`
//     completes it headlessly); consent is granted automatically;
//   - the device authorization grant (RFC 8628, oidc-provider's `deviceFlow` feature) at
//     `/device/auth`, verified at `/device`; polling faster than `interval` (or the first
//     IDP_DEVICE_SLOW_DOWN polls of each code) is answered `slow_down`, after which the interval
//     grows by 5 s, as RFC 8628 §3.5 describes (oidc-provider itself never says `slow_down`).
//
// Usage: node server.mjs [--port N]      (N = 0 or absent: a free port)
// Prints one JSON line when listening:
//   {"issuer","authorization_endpoint","token_endpoint","jwks_uri","client_id","client_secret",
//    "username","password","resource"}
// and exits on SIGTERM / SIGINT, and with --exit-on-stdin-close when its stdin closes (so a
// test that dies cannot leave it running).
//
// Environment (all optional):
//   IDP_PORT                 port when --port is not given (0 = free)
//   IDP_CLIENT_ID            default `woci-e2e`
//   IDP_CLIENT_SECRET        default: random; ignored when IDP_CLIENT_AUTH=none
//   IDP_CLIENT_AUTH          `client_secret_basic` (default), `client_secret_post` or `none` (public client)
//   IDP_USERNAME/IDP_PASSWORD the test user (default `alice` / `wonderland-e2e`)
//   IDP_ACCESS_TOKEN_TTL     seconds (default 300)
//   IDP_REFRESH_TOKEN_TTL    seconds (default 86400)
//   IDP_RESOURCE             the access tokens' audience (default `urn:woci:e2e:oci`)
//   IDP_STRICT_OFFLINE_ACCESS=1  oidc-provider's default: a refresh token only when `offline_access`
//                            survives the authorization request, which needs `prompt=consent`
//                            (OIDC Core §11); default here: always for this client, as most IdPs do
//   IDP_DEVICE_INTERVAL      seconds between device-code polls announced as `interval` (default 5)
//   IDP_DEVICE_CODE_TTL      device code lifetime in seconds (default 600)
//   IDP_DEVICE_SLOW_DOWN     forced `slow_down` answers per device code (default 0)
//   IDP_DEBUG=1              log each request to stderr
// GET /_test/device-stats answers {"slow_downs", "pending_polls", "expired_polls"} (for the tests).
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

function arg(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function seconds(name, dflt) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) {
    console.error(`server.mjs: ${name} must be a positive number of seconds, got \`${raw}\``);
    process.exit(2);
  }
  return n;
}

const port = Number(arg('--port') ?? process.env.IDP_PORT ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`server.mjs: invalid port \`${arg('--port') ?? process.env.IDP_PORT}\``);
  process.exit(2);
}
const clientId = process.env.IDP_CLIENT_ID || 'woci-e2e';
const clientAuth = process.env.IDP_CLIENT_AUTH || 'client_secret_basic';
if (!['client_secret_basic', 'client_secret_post', 'none'].includes(clientAuth)) {
  console.error(`server.mjs: IDP_CLIENT_AUTH must be client_secret_basic, client_secret_post or none, got \`${clientAuth}\``);
  process.exit(2);
}
const clientSecret = clientAuth === 'none' ? null : (process.env.IDP_CLIENT_SECRET || randomBytes(24).toString('hex'));
const username = process.env.IDP_USERNAME || 'alice';
const password = process.env.IDP_PASSWORD || 'wonderland-e2e';
const accessTokenTtl = seconds('IDP_ACCESS_TOKEN_TTL', 300);
const refreshTokenTtl = seconds('IDP_REFRESH_TOKEN_TTL', 86400);
const resource = process.env.IDP_RESOURCE || 'urn:woci:e2e:oci';
const strictOffline = process.env.IDP_STRICT_OFFLINE_ACCESS === '1';
const debug = process.env.IDP_DEBUG === '1';
const deviceInterval = seconds('IDP_DEVICE_INTERVAL', 5);
const deviceCodeTtl = seconds('IDP_DEVICE_CODE_TTL', 600);
const deviceSlowDown = Number(process.env.IDP_DEVICE_SLOW_DOWN || 0);
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// The account id is stable per username, like a real directory.
const accountId = `user-${username}`;

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

// The listener is created first so the issuer can name the real port.
const http = createServer();
await new Promise((resolve, reject) => {
  http.once('error', reject);
  http.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${http.address().port}`;

const configuration = {
  clients: [{
    client_id: clientId,
    ...(clientSecret ? { client_secret: clientSecret } : {}),
    application_type: 'native',
    // Native client: any loopback port matches (RFC 8252 §7.3), the path must be `/callback`.
    redirect_uris: ['http://127.0.0.1/callback', 'http://localhost/callback'],
    grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
    response_types: ['code'],
    token_endpoint_auth_method: clientAuth,
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'] },
  ttl: {
    AccessToken: accessTokenTtl,
    AuthorizationCode: 60,
    IdToken: accessTokenTtl,
    RefreshToken: refreshTokenTtl,
    Interaction: 600,
    Session: 3600,
    Grant: refreshTokenTtl,
    DeviceCode: deviceCodeTtl,
  },
  expiresWithSession: () => false,
  issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
    && (!strictOffline || code.scopes.has('offline_access')),
  features: {
    devInteractions: { enabled: false },
    revocation: { enabled: true },
    deviceFlow: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== resource) throw new errors.InvalidTarget();
        return {
          scope: 'oci',
          audience: resource,
          accessTokenTTL: accessTokenTtl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // Consent is automatic: the grant covers whatever the client asked for.
  loadExistingGrant: async (ctx) => {
    const { Grant } = ctx.oidc.provider;
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    const grant = (grantId && await Grant.find(grantId))
      || new Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grantEverything(grant, ctx.oidc.requestParamScopes, ctx.oidc.resourceServers);
    await grant.save();
    return grant;
  },
  findAccount: async (ctx, sub) => (sub === accountId ? {
    accountId,
    claims: async () => ({ sub: accountId, name: username, preferred_username: username, email: `${username}@example.test` }),
  } : undefined),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError: async (ctx, out) => {
    ctx.type = 'application/json';
    ctx.body = out;
  },
};

function grantEverything(grant, scopes, resourceServers) {
  grant.addOIDCScope([...scopes].join(' '));
  for (const [indicator, server] of Object.entries(resourceServers ?? {})) {
    grant.addResourceScope(indicator, server.scope);
  }
}

const provider = new Provider(issuer, configuration);
// Served over plain http on 127.0.0.1; nothing sits in front of it.
provider.proxy = false;
provider.on('server_error', (ctx, err) => console.error('server.mjs: server_error:', err));

// RFC 8628 polling discipline on top of oidc-provider's device grant: announce `interval`, answer
// `slow_down` to polls that come too fast (or the first IDP_DEVICE_SLOW_DOWN ones), growing that
// code's interval by 5 s each time.
provider.on('device_authorization.success', (ctx, body) => { body.interval = deviceInterval; });
const devicePolls = new Map();
const deviceStats = { slow_downs: 0, pending_polls: 0, expired_polls: 0 };
provider.use(async (ctx, next) => {
  await next();
  const params = ctx.oidc?.params;
  if (ctx.method !== 'POST' || params?.grant_type !== DEVICE_GRANT) return;
  if (ctx.body?.error === 'expired_token') deviceStats.expired_polls += 1;
  if (ctx.body?.error !== 'authorization_pending') return;
  const now = Date.now();
  const s = devicePolls.get(params.device_code) ?? { last: 0, interval: deviceInterval * 1000, forced: deviceSlowDown };
  const tooFast = s.last > 0 && now - s.last + 100 < s.interval;
  s.last = now;
  devicePolls.set(params.device_code, s);
  if (s.forced > 0 || tooFast) {
    s.forced = Math.max(0, s.forced - 1);
    s.interval += 5000;
    deviceStats.slow_downs += 1;
    ctx.status = 400;
    ctx.body = { error: 'slow_down', error_description: 'you are polling too quickly and should back off at a reasonable rate' };
    return;
  }
  deviceStats.pending_polls += 1;
});

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res, status, title, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html><head><title>${escapeHtml(title)}</title></head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`);
}

async function readForm(req) {
  let raw = '';
  for await (const chunk of req) {
    raw += chunk;
    if (raw.length > 65536) throw new Error('form too large');
  }
  return new URLSearchParams(raw);
}

function sameSecret(a, b) {
  const x = Buffer.from(String(a));
  const y = Buffer.from(String(b));
  return x.length === y.length && timingSafeEqual(x, y);
}

// GET  /interaction/:uid          login form (prompt=login) or consent form (prompt=consent)
// POST /interaction/:uid/login    username + password
// POST /interaction/:uid/confirm  grants what was asked
async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
  const { prompt } = details;
  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') {
      return page(res, 200, 'Sign in', `<form method="post" action="/interaction/${uid}/login">
<input type="text" name="username" autocomplete="username">
<input type="password" name="password" autocomplete="current-password">
<button type="submit">Sign in</button></form>`);
    }
    return page(res, 200, 'Authorize', `<form method="post" action="/interaction/${uid}/confirm">
<input type="hidden" name="confirm" value="yes"><button type="submit">Allow</button></form>`);
  }
  if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    if (form.get('username') !== username || !sameSecret(form.get('password') ?? '', password)) {
      return page(res, 401, 'Sign in failed', `<p>wrong username or password</p><form method="post" action="/interaction/${uid}/login">
<input type="text" name="username"><input type="password" name="password"><button type="submit">Sign in</button></form>`);
    }
    return provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
    await readForm(req);
    const { Grant } = provider;
    const grant = (details.grantId && await Grant.find(details.grantId))
      || new Grant({ clientId: details.params.client_id, accountId: details.session.accountId });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  return page(res, 400, 'Unexpected step', `<p>${escapeHtml(req.method)} ${escapeHtml(action ?? '')} during prompt ${escapeHtml(prompt.name)}</p>`);
}

const oidc = provider.callback();
http.on('request', async (req, res) => {
  if (debug) console.error(`server.mjs: ${req.method} ${req.url}`);
  if (req.url === '/_test/device-stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify(deviceStats));
  }
  const m = /^\/interaction\/([^/?]+)(?:\/(login|confirm))?(?:\?.*)?$/.exec(req.url);
  if (!m) return oidc(req, res);
  try {
    await interaction(req, res, m[1], m[2]);
  } catch (err) {
    if (!res.headersSent) page(res, 400, 'Interaction failed', `<p>${escapeHtml(err.message)}</p>`);
  }
});

const discovery = {
  issuer,
  authorization_endpoint: `${issuer}/auth`,
  token_endpoint: `${issuer}/token`,
  jwks_uri: `${issuer}/jwks`,
  device_authorization_endpoint: `${issuer}/device/auth`,
};
// Cross-check against the provider's own discovery document, so the routes above cannot drift.
{
  // Bounded and retried: a self-request must never leave the caller waiting for a ready line.
  let doc;
  for (let attempt = 1; ; attempt++) {
    try {
      const r = await fetch(`${issuer}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5000) });
      doc = await r.json();
      break;
    } catch (err) {
      console.error(`server.mjs: discovery self-check attempt ${attempt} failed: ${err.message}`);
      if (attempt === 3) process.exit(1);
    }
  }
  for (const k of Object.keys(discovery)) {
    if (doc[k] !== discovery[k]) {
      console.error(`server.mjs: discovery ${k} is ${doc[k]}, expected ${discovery[k]}`);
      process.exit(1);
    }
  }
}
process.stdout.write(`${JSON.stringify({
  ...discovery,
  client_id: clientId,
  client_secret: clientSecret,
  username,
  password,
  resource,
})}\n`);

function stop() {
  http.close();
  http.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (process.argv.includes('--exit-on-stdin-close')) {
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}
