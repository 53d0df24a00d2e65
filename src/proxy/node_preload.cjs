'use strict';
// woci's Node.js preload (`NODE_OPTIONS=--require <this file>`, written into woci's private per-run
// folder under `--auto-refresh`/`--exec`). Node.js before 22.21/24.5 ignores `HTTPS_PROXY`: its
// built-in `fetch` (undici, which the OCI TypeScript SDK uses) and `https` connect directly, so a
// running program would keep the session token it started with. This routes both through the
// proxy in `HTTPS_PROXY` (CONNECT with the proxy's Basic credentials) unless Node already does
// (`NODE_USE_ENV_PROXY=1` on a Node that supports it). Built-ins only; plain `http:` is untouched,
// as it is for Python and Go when only `HTTPS_PROXY` is set. Trust comes from
// `NODE_EXTRA_CA_CERTS`, which Node applies to every TLS connection with default options.
(function wociPreload() {
  const env = process.env;
  const raw = env.HTTPS_PROXY || env.https_proxy;
  if (!raw || env.NODE_USE_ENV_PROXY === '0') return;
  let proxy;
  try {
    proxy = new URL(raw);
  } catch (e) {
    return;
  }
  if (proxy.protocol !== 'http:') return;
  const http = require('http');
  const https = require('https');
  const net = require('net');
  const tls = require('tls');
  const auth = proxy.username
    ? 'Basic ' +
      Buffer.from(decodeURIComponent(proxy.username) + ':' + decodeURIComponent(proxy.password)).toString('base64')
    : null;
  const proxyHost = proxy.hostname.replace(/^\[|\]$/g, '');
  const proxyPort = Number(proxy.port) || 80;

  function bareHost(host) {
    return String(host).replace(/^\[|\]$/g, '');
  }

  // A socket tunnelled through the proxy to host:port, or an error.
  function tunnel(host, port, done) {
    host = bareHost(host);
    const target = (net.isIPv6(host) ? '[' + host + ']' : host) + ':' + port;
    const headers = { host: target };
    if (auth) headers['proxy-authorization'] = auth;
    const req = http.request({ host: proxyHost, port: proxyPort, method: 'CONNECT', path: target, headers, agent: false });
    req.once('connect', (res, socket, head) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        done(new Error('woci proxy: CONNECT ' + target + ' answered ' + res.statusCode));
        return;
      }
      if (head && head.length) socket.unshift(head);
      done(null, socket);
    });
    req.once('error', done);
    req.end();
  }

  // TLS over the tunnel, verified like a direct connection (default CAs plus NODE_EXTRA_CA_CERTS).
  function tlsOver(socket, host, extra) {
    host = bareHost(host);
    const servername = extra.servername || (net.isIP(host) ? undefined : host);
    return tls.connect(Object.assign({}, extra, { socket, host, servername }));
  }

  // `https` (global agent, `https.request`, node-fetch, axios): every https.Agent opens its
  // connections through the tunnel, unless Node routes them itself (proxyEnv, Node 22.21+/24.5+).
  const nativeHttps = https.globalAgent && https.globalAgent.options && https.globalAgent.options.proxyEnv;
  if (!nativeHttps) {
    const original = https.Agent.prototype.createConnection;
    https.Agent.prototype.createConnection = function createConnection(options, done) {
      if (options.socketPath || options.path) return original.call(this, options, done);
      tunnel(options.host || 'localhost', options.port || 443, (err, socket) => {
        if (err) return done(err);
        done(null, tlsOver(socket, options.host || 'localhost', options));
      });
      return undefined;
    };
  }

  // Built-in `fetch`: undici's global dispatcher, replaced by an Agent of the same (internal)
  // class whose connector tunnels `https:` origins. Loading undici (touching `Headers`) creates the
  // default dispatcher; one Node set up itself (EnvHttpProxyAgent) or the program chose is kept.
  const symbol = Symbol.for('undici.globalDispatcher.1');
  if (typeof globalThis.Headers !== 'function') return;
  const current = globalThis[symbol];
  if (!current || current.constructor.name !== 'Agent') return;
  const Agent = current.constructor;
  const dispatcher = new Agent({
    connect(opts, done) {
      const host = opts.hostname;
      if (opts.protocol !== 'https:') {
        const socket = net.connect({ host: bareHost(host), port: Number(opts.port) || 80 });
        socket.once('error', done).once('connect', () => {
          socket.removeListener('error', done);
          done(null, socket);
        });
        return;
      }
      tunnel(host, Number(opts.port) || 443, (err, socket) => {
        if (err) return done(err);
        const secure = tlsOver(socket, host, { servername: opts.servername || undefined, ALPNProtocols: ['http/1.1'] });
        secure.once('error', done).once('secureConnect', () => {
          secure.removeListener('error', done);
          done(null, secure);
        });
      });
    },
  });
  globalThis[symbol] = dispatcher;
})();
