//! woci's own HTTP requests (IdP, token exchange, OCI auth service): a small [`Transport`] trait,
//! so protocol code is unit-tested without sockets; its implementation for `reqwest::Client`
//! (rustls with the system roots plus configured CA files, no redirects, bounded bodies, the
//! user's proxy with woci's own `NO_PROXY` rules); and [`Http::execute`], the one retry policy.
//!
//! Retry rules ([`Retry`]): a request that provably never reached the server (refused, DNS, TLS
//! handshake, connect timeout, a 429 rate limit) may be sent again freely, up to the attempt
//! limit, except when the server's certificate was refused ([`Failure::Untrusted`]) or it does not
//! answer in HTTP ([`Failure::NotHttp`]), which no retry can change. A request that
//! was sent — a timeout, a reset, a cut body or a 5xx — is resent only when it rotates nothing
//! ([`Retry::Idempotent`]: token exchange, session refresh). A refresh grant
//! ([`Retry::Rotating`]) spends the refresh token it carries, so once it was sent it is resent at
//! most once, and only within the IdP's reuse grace; its one attempt gets a generous timeout,
//! since a late answer beats a spent token.

mod reqwest_transport;
pub(crate) use reqwest_transport::{cause_text, tls_refusal};

use crate::error::{Error, Result};
use crate::realm::NoProxy;
use http::{HeaderMap, Method};
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use url::Url;
use zeroize::Zeroizing;

/// One request, fully built (the retry loop builds a new one per attempt).
#[derive(Debug)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// URL.
    pub url: Url,
    /// Headers (secret ones marked sensitive).
    pub headers: HeaderMap,
    /// Body (may hold secrets: zeroized on drop).
    pub body: Zeroizing<Vec<u8>>,
    /// Total time this attempt may take, body included.
    pub timeout: Duration,
}

/// A complete answer.
#[derive(Debug)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The whole body, at most [`HttpOptions::max_body`] bytes.
    pub body: Zeroizing<Vec<u8>>,
}

/// Why an attempt produced no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The request provably never reached the server (refused, DNS, TLS handshake, connect timeout).
    NotSent(String),
    /// It was sent, but no complete answer came (timeout, reset, connection dropped mid-body).
    Lost(String),
    /// The answer was larger than [`HttpOptions::max_body`].
    TooLarge(usize),
    /// The server's certificate was refused (unknown issuer, wrong name, expired): the request
    /// never reached it, and sending it again cannot help. The text names the host and the fix.
    Untrusted(String),
    /// This machine could not open a connection at all (no file descriptor left: the OS error's
    /// number): no network failure, and nothing was sent.
    Local(i32),
    /// The answer did not start as HTTP (a TLS server's port asked in plain http://): no HTTP
    /// server processed the request, and sending it again gets the same answer.
    NotHttp(String),
    /// The user's HTTPS proxy refused its credentials (407): nothing reached the server, and
    /// sending it again only counts toward the proxy's lockout.
    ProxyAuth,
}

/// The future a [`Transport`] returns.
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = std::result::Result<Response, Failure>> + Send + 'a>>;

/// Sends one request. Implementations never retry and never follow redirects.
pub trait Transport: Send + Sync + fmt::Debug {
    /// Sends `req` and reads the whole answer (bounded by `max_body`).
    fn send(&self, req: Request, max_body: usize) -> SendFuture<'_>;
}

/// How a request may be repeated (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Rotates nothing: bounded attempts with backoff for every transient failure.
    Idempotent,
    /// One attempt: the caller asks again on its own schedule (a device-code poll, which must
    /// slow down after a failure, RFC 8628 §3.5).
    Once,
    /// Spends a refresh token: once sent, at most one resend, only while the first send is less
    /// than `grace` old (the IdP's refresh-token reuse grace).
    Rotating {
        /// `refresh_token_reuse_grace`.
        grace: Duration,
    },
}

/// Client settings. Defaults: 10 s connect, 30 s per attempt (90 s for a refresh grant), 3
/// attempts, 500 ms first backoff, 1 MiB bodies.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Connect timeout per attempt.
    pub connect_timeout: Duration,
    /// Total time per attempt, body included.
    pub timeout: Duration,
    /// Total time of a refresh-grant attempt ([`Retry::Rotating`]).
    pub rotating_timeout: Duration,
    /// Attempts for transient failures (at least 1).
    pub attempts: u32,
    /// First backoff; doubles per attempt.
    pub backoff: Duration,
    /// Largest body read; a longer answer is an error.
    pub max_body: usize,
    /// Extra PEM CA bundles to trust besides the system roots (e.g. `REQUESTS_CA_BUNDLE`).
    pub extra_ca_files: Vec<PathBuf>,
    /// The user's HTTPS proxy (`HTTPS_PROXY`), if any, and the variable that named it.
    pub proxy: Option<Url>,
    pub proxy_var: &'static str,
    /// Hosts reached directly despite `proxy` (`NO_PROXY`).
    pub no_proxy: NoProxy,
    /// Whether woci is ending ([`crate::critical::ending`]): a refresh grant that was not sent
    /// is then not tried again.
    pub ending: fn() -> bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            rotating_timeout: Duration::from_secs(90),
            attempts: 3,
            backoff: Duration::from_millis(500),
            max_body: 1024 * 1024,
            extra_ca_files: Vec::new(),
            proxy: None,
            proxy_var: "HTTPS_PROXY",
            no_proxy: NoProxy::default(),
            ending: crate::critical::ending,
        }
    }
}

#[cfg(test)]
impl HttpOptions {
    /// The longest one [`Http::execute`] call can take with these options (for the README's bound
    /// and for tests): every attempt at its full timeout plus the backoffs between them.
    pub fn worst_case(&self, retry: Retry) -> Duration {
        let attempts = self.attempts.max(1);
        let backoffs: Duration = (0..attempts.saturating_sub(1)).map(|i| self.backoff * 2u32.pow(i)).sum();
        match retry {
            Retry::Idempotent => self.timeout * attempts + backoffs,
            Retry::Once => self.timeout,
            // Unsent attempts end by the connect timeout; at most two are sent.
            Retry::Rotating { .. } => {
                self.connect_timeout * attempts.saturating_sub(1) + self.rotating_timeout * 2 + backoffs
            }
        }
    }
}

/// A transport plus the retry policy.
#[derive(Debug, Clone)]
pub struct Http {
    transport: Arc<dyn Transport>,
    /// The settings it was built with.
    pub options: HttpOptions,
}

impl Http {
    /// The reqwest client. Unreadable or invalid CA files are configuration errors.
    pub fn new(options: HttpOptions) -> Result<Http> {
        Ok(Http { transport: Arc::new(reqwest_transport::client(&options)?), options })
    }

    /// Any transport (tests use canned answers).
    pub fn with_transport(transport: Arc<dyn Transport>, options: HttpOptions) -> Http {
        Http { transport, options }
    }

    /// Sends the request built by `make` (called once per attempt, so each attempt can carry a
    /// fresh signature date) under `retry`. Returns the first answer below 500; failures after
    /// the last allowed attempt become [`Error::Network`] naming `service`.
    pub async fn execute<F>(&self, service: &'static str, retry: Retry, make: F) -> Result<Response>
    where
        F: Fn(Duration) -> Result<Request>,
    {
        let opts = &self.options;
        let attempts = opts.attempts.max(1);
        let timeout = match retry {
            Retry::Idempotent | Retry::Once => opts.timeout,
            Retry::Rotating { .. } => opts.rotating_timeout,
        };
        let mut backoff = Backoff::new(opts.backoff, opts.backoff * 2u32.pow(attempts));
        let mut first_sent: Option<tokio::time::Instant> = None;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let req = make(timeout)?;
            let url = redact_url(&req.url);
            let host = req.url.host_str().unwrap_or("?").to_owned();
            // A proxy in the way is named: "unreachable" may be the proxy's doing, not the server's.
            let via = opts
                .proxy
                .as_ref()
                .filter(|_| !opts.no_proxy.bypass(&host, req.url.port_or_known_default().unwrap_or(443)))
                .map(|p| format!(" (through the proxy `{}` from `{}`)", proxy_at(p), opts.proxy_var))
                .unwrap_or_default();
            let started = tokio::time::Instant::now();
            let (reason, was_sent, lost) = match self.transport.send(req, opts.max_body).await {
                // Rate limited: refused before the request was looked at, like one never sent.
                Ok(r) if r.status == 429 => ("HTTP 429 (too many requests)".to_owned(), false, false),
                Ok(r) if r.status < 500 => return Ok(r),
                Ok(r) => (format!("HTTP {}", r.status), true, false),
                Err(Failure::NotSent(r)) => (r, false, false),
                Err(Failure::Lost(r)) => (r, true, true),
                // A certificate does not fix itself between attempts: no retry.
                Err(Failure::Untrusted(r)) => return Err(Error::Untrusted { service, url, reason: r }),
                // Nor does a server that does not speak HTTP.
                Err(Failure::NotHttp(r)) => return Err(Error::Network { service, url, reason: format!("{r}{via}") }),
                // Nor do the proxy's credentials.
                Err(Failure::ProxyAuth) => {
                    let var = opts.proxy_var;
                    let given = opts.proxy.as_ref().is_some_and(|p| !p.username().is_empty());
                    let reason = match given {
                        true => format!(
                            "the proxy refused its credentials (HTTP 407){via}; check the user and password in \
                             `{var}` (percent-encoded: `%40` for `@`)"
                        ),
                        false => format!(
                            "the proxy asks for credentials (HTTP 407){via}; give them in `{var}` as \
                             `http://USER:PASSWORD@host:port` (percent-encoded: `%40` for `@`)"
                        ),
                    };
                    return Err(Error::ProxyRefused { service, url, reason });
                }
                Err(Failure::Local(code)) => {
                    let e = Error::io(
                        "cannot open a connection for",
                        url.as_str(),
                        std::io::Error::from_raw_os_error(code),
                    );
                    return Err(e.with_hint("nothing was sent: raise the limit (`ulimit -n`)"));
                }
                Err(Failure::TooLarge(max)) => {
                    return Err(Error::Protocol {
                        service,
                        reason: format!("the answer from `{url}` is larger than {} KiB", max / 1024),
                    })
                }
            };
            // Whether this attempt was the first to reach the server.
            let first_send = was_sent && first_sent.is_none();
            if was_sent {
                first_sent.get_or_insert(started);
            }
            let ending = !was_sent && matches!(retry, Retry::Rotating { .. }) && (opts.ending)();
            let again = attempt < attempts
                && match retry {
                    Retry::Idempotent => true,
                    Retry::Once => false,
                    Retry::Rotating { grace } => !was_sent && !ending || (first_send && started.elapsed() < grace),
                };
            if !again {
                if let (Retry::Rotating { grace }, true) = (retry, lost) {
                    let reason = match grace.is_zero() {
                        true => format!("{reason}; not sent again, `refresh_token_reuse_grace` being 0"),
                        false => format!(
                            "{reason}; not sent again after {}s, past `refresh_token_reuse_grace` ({}s)",
                            first_sent.map_or(0, |t| t.elapsed().as_secs()),
                            grace.as_secs()
                        ),
                    };
                    return Err(Error::reply_lost(service, url, reason));
                }
                let why = match retry {
                    Retry::Rotating { grace } if was_sent && attempt < attempts && grace.is_zero() => format!(
                        "{reason}; the grant was sent, so it is not sent again now (`refresh_token_reuse_grace` is 0); \
                         the stored refresh token is kept: try again later"
                    ),
                    Retry::Rotating { grace } if was_sent && attempt < attempts => format!(
                        "{reason}; the grant was sent {}s ago, past `refresh_token_reuse_grace` ({}s), so it is not \
                         sent again now; the stored refresh token is kept: try again later",
                        first_sent.map_or(0, |t| t.elapsed().as_secs()),
                        grace.as_secs()
                    ),
                    _ if ending && attempt < attempts => format!(
                        "{reason}; not tried again, as woci is ending (the grant was not sent: the stored refresh \
                         token is kept)"
                    ),
                    // The server answered, and failed: it may answer better later (nothing was spent).
                    _ if reason.starts_with("HTTP 5") => {
                        format!("{reason} after {attempt} attempt(s); try again later")
                    }
                    _ => format!("{reason} after {attempt} attempt(s)"),
                };
                return Err(Error::Network { service, url, reason: format!("{why}{via}") });
            }
            tracing::warn!("retrying the {service} at {host} ({}/{attempts}): {reason}", attempt + 1);
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// A GET asking for JSON with `headers` besides, retried like any idempotent request.
    pub async fn get_json(&self, service: &'static str, url: &Url, mut headers: HeaderMap) -> Result<Response> {
        headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("application/json"));
        self.execute(service, Retry::Idempotent, |timeout| {
            Ok(Request {
                method: Method::GET,
                url: url.clone(),
                headers: headers.clone(),
                body: Zeroizing::new(Vec::new()),
                timeout,
            })
        })
        .await
    }
}

/// Exponential backoff: `first`, then doubling, capped at `max`. The one schedule woci retries on
/// (requests here, renewals in the auto-refresh loop and the daemon).
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `first`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first.min(max), max }
    }

    /// The delay before the next try.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

/// The user's proxy as messages name it: `host:port`, never its credentials.
pub fn proxy_at(proxy: &Url) -> String {
    proxy.host_str().map(|h| format!("{h}:{}", proxy.port_or_known_default().unwrap_or(80))).unwrap_or_default()
}

/// The user's `HTTPS_PROXY` for a reqwest client, applied with woci's own `NO_PROXY` rules
/// ([`NoProxy::bypass`]), so woci's requests and the re-signing proxy's upstream connections
/// agree on which hosts go direct. Credentials in the URL are sent as `Proxy-Authorization`.
pub fn user_proxy(proxy: &Url, no_proxy: &NoProxy) -> reqwest::Proxy {
    let (proxy, no_proxy) = (proxy.clone(), no_proxy.clone());
    reqwest::Proxy::custom(move |url| {
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        (url.scheme() == "https" && !no_proxy.bypass(host, port)).then(|| proxy.clone())
    })
}

/// The URL without query string or user info, for messages: what comes before the user info,
/// then host, port and path.
pub fn redact_url(url: &Url) -> String {
    format!("{}{}", &url[..url::Position::BeforeUsername], &url[url::Position::BeforeHost..url::Position::AfterPath])
}

/// Parses all certificates of a PEM bundle.
pub fn load_pem_certs(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>> {
    let pem = crate::fsutil::read_bounded(path, crate::fsutil::MAX_CA_BUNDLE)
        .map_err(|e| Error::io("cannot read CA bundle", path, e))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| Error::Config(format!("invalid CA bundle `{}`: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("CA bundle `{}` holds no certificate", path.display())));
    }
    Ok(certs)
}

/// A [`Transport`] with scripted answers, for unit tests of protocol code.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use std::sync::Mutex;

    /// One scripted outcome.
    pub(crate) type Outcome = std::result::Result<(u16, String), Failure>;

    /// What a request looked like (body as text; tests only).
    #[derive(Debug, Clone)]
    pub(crate) struct Seen {
        pub url: Url,
        pub headers: HeaderMap,
        pub body: String,
        pub timeout: Duration,
    }

    impl Seen {
        pub(crate) fn form_value(&self, key: &str) -> Option<String> {
            url::form_urlencoded::parse(self.body.as_bytes()).into_owned().find(|(k, _)| k == key).map(|(_, v)| v)
        }
    }

    type Handler = Box<dyn Fn(&Seen, usize) -> Outcome + Send + Sync>;

    /// Answers each request with `handler(request, n)` (n counts requests to that path).
    pub(crate) struct FakeTransport {
        handler: Handler,
        seen: Mutex<Vec<Seen>>,
    }

    impl fmt::Debug for FakeTransport {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("FakeTransport")
        }
    }

    impl FakeTransport {
        pub(crate) fn new(handler: impl Fn(&Seen, usize) -> Outcome + Send + Sync + 'static) -> Arc<FakeTransport> {
            Arc::new(FakeTransport { handler: Box::new(handler), seen: Mutex::new(Vec::new()) })
        }

        pub(crate) fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }

        pub(crate) fn count(&self, path: &str) -> usize {
            self.seen().iter().filter(|s| s.url.path() == path).count()
        }
    }

    impl Transport for FakeTransport {
        fn send(&self, req: Request, max_body: usize) -> SendFuture<'_> {
            let seen = Seen {
                url: req.url.clone(),
                headers: req.headers.clone(),
                body: String::from_utf8_lossy(&req.body).into_owned(),
                timeout: req.timeout,
            };
            let n = {
                let mut all = self.seen.lock().unwrap();
                let n = all.iter().filter(|s| s.url.path() == seen.url.path()).count();
                all.push(seen.clone());
                n
            };
            let out = (self.handler)(&seen, n);
            Box::pin(async move {
                let (status, body) = out?;
                if body.len() > max_body {
                    return Err(Failure::TooLarge(max_body));
                }
                Ok(Response { status, body: Zeroizing::new(body.into_bytes()) })
            })
        }
    }

    /// Options for tests: no real waiting between attempts.
    pub(crate) fn options() -> HttpOptions {
        HttpOptions { backoff: Duration::from_millis(1), ..HttpOptions::default() }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{options, FakeTransport};
    use super::*;

    fn get(url: &str) -> impl Fn(Duration) -> Result<Request> + '_ {
        move |timeout| {
            Ok(Request {
                method: Method::POST,
                url: Url::parse(url).unwrap(),
                headers: HeaderMap::new(),
                body: Zeroizing::new(Vec::new()),
                timeout,
            })
        }
    }

    #[test]
    fn redacts_query_and_credentials() {
        let u = Url::parse("https://user:pw@idp.example/token?refresh_token=abc#frag").unwrap();
        assert_eq!(redact_url(&u), "https://idp.example/token");
    }

    #[tokio::test]
    async fn unreachable_host_is_a_bounded_network_error() {
        // Port 9 on loopback: nothing listens, so every attempt is refused at once.
        let http =
            Http::new(HttpOptions { attempts: 2, backoff: Duration::from_millis(1), ..Default::default() }).unwrap();
        let err =
            http.execute("identity provider", Retry::Idempotent, get("http://127.0.0.1:9/token")).await.unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::NETWORK);
        assert!(err.to_string().contains("after 2 attempt(s)"), "{err}");
    }

    /// No file descriptor left for a connection (`ulimit -n`) is this machine's limit, said once
    /// with the fix: no network failure (no retry, exit 1, not 6).
    #[tokio::test]
    async fn no_descriptor_for_a_connection_is_no_network_failure() {
        let t = FakeTransport::new(|_, _| Err(Failure::Local(libc::EMFILE)));
        let http = Http::with_transport(t.clone(), options());
        let err = http.execute("identity provider", Retry::Idempotent, get("https://idp.example/t")).await.unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::FAILURE, "{err}");
        assert!(err.to_string().contains("Too many open files") && err.to_string().contains("ulimit -n"), "{err}");
        assert_eq!(t.count("/t"), 1);
    }

    /// "Unreachable" through a proxy names the proxy (without its credentials): it may be the one
    /// that is down. A host `NO_PROXY` sends direct does not.
    #[tokio::test]
    async fn a_failure_through_the_proxy_names_it() {
        let t = FakeTransport::new(|_, _| Err(Failure::NotSent("connection refused".into())));
        let mut o = options();
        o.proxy = Some(Url::parse("http://user:pw@proxy.corp:3128").unwrap());
        o.no_proxy = NoProxy::parse("direct.example");
        let http = Http::with_transport(t, o);
        let err = http.execute("identity provider", Retry::Idempotent, get("https://idp.example/t")).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("through the proxy `proxy.corp:3128`") && !msg.contains("pw"), "{msg}");
        let err =
            http.execute("identity provider", Retry::Idempotent, get("https://direct.example/t")).await.unwrap_err();
        assert!(!err.to_string().contains("proxy"), "{err}");
    }

    #[tokio::test]
    async fn idempotent_requests_retry_every_transient_failure() {
        let t = FakeTransport::new(|_, n| match n {
            0 => Err(Failure::Lost("timed out".into())),
            1 => Ok((503, String::new())),
            _ => Ok((200, "ok".into())),
        });
        let http = Http::with_transport(t.clone(), options());
        let r = http.execute("token exchange", Retry::Idempotent, get("https://x.example/t")).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(t.count("/t"), 3);
    }

    #[tokio::test]
    async fn a_sent_refresh_grant_is_not_resent_without_grace() {
        for failure in [Err(Failure::Lost("connection reset".into())), Ok((502, String::new()))] {
            let lost = failure.is_err();
            let t = FakeTransport::new(move |_, _| failure.clone());
            let http = Http::with_transport(t.clone(), options());
            let retry = Retry::Rotating { grace: Duration::ZERO };
            let err = http.execute("identity provider", retry, get("https://idp.example/token")).await.unwrap_err();
            assert_eq!(t.count("/token"), 1, "sent once, never again");
            let says = if lost { "not sent again" } else { "so it is not sent again now" };
            assert!(err.to_string().contains(says), "{err}");
            // An answer lost on the way is not "unreachable": the request arrived.
            assert_eq!(matches!(err, Error::ReplyLost { .. }), lost, "{err}");
        }
    }

    #[tokio::test]
    async fn a_sent_refresh_grant_is_resent_once_within_grace() {
        let t = FakeTransport::new(|_, _| Err(Failure::Lost("timed out".into())));
        let http = Http::with_transport(t.clone(), options());
        let retry = Retry::Rotating { grace: Duration::from_secs(60) };
        http.execute("identity provider", retry, get("https://idp.example/token")).await.unwrap_err();
        assert_eq!(t.count("/token"), 2, "one resend, not two");
    }

    #[tokio::test]
    async fn an_unsent_refresh_grant_is_retried_freely_with_the_generous_timeout() {
        let t = FakeTransport::new(|_, n| match n {
            0 | 1 => Err(Failure::NotSent("connection refused".into())),
            _ => Ok((200, "{}".into())),
        });
        let http = Http::with_transport(t.clone(), options());
        let retry = Retry::Rotating { grace: Duration::ZERO };
        http.execute("identity provider", retry, get("https://idp.example/token")).await.unwrap();
        assert_eq!(t.count("/token"), 3);
        assert!(t.seen().iter().all(|s| s.timeout == options().rotating_timeout));
    }

    /// Once woci is ending (the program ended, Ctrl-C), a grant that never reached the IdP is not
    /// tried again: only a sent one has an answer on its way (round 89 F2).
    #[tokio::test]
    async fn an_unsent_refresh_grant_is_not_retried_once_woci_is_ending() {
        let t = FakeTransport::new(|_, _| Err(Failure::NotSent("TLS handshake timed out".into())));
        let http = Http::with_transport(t.clone(), HttpOptions { ending: || true, ..options() });
        let retry = Retry::Rotating { grace: Duration::ZERO };
        let e = http.execute("identity provider", retry, get("https://idp.example/token")).await.unwrap_err();
        assert_eq!(t.count("/token"), 1);
        assert!(e.to_string().contains("not tried again, as woci is ending"), "{e}");
        // An idempotent request is no grant: it is let go with the renewal, not here.
        http.execute("token exchange", Retry::Idempotent, get("https://idp.example/x")).await.unwrap_err();
        assert_eq!(t.count("/x"), 3);
    }

    #[tokio::test]
    async fn a_refused_certificate_is_not_retried() {
        let t = FakeTransport::new(|_, _| {
            Err(Failure::Untrusted("the certificate of `idp.example` is from an unknown issuer".into()))
        });
        for retry in [Retry::Idempotent, Retry::Rotating { grace: Duration::from_secs(60) }] {
            let http = Http::with_transport(t.clone(), options());
            let err = http.execute("identity provider", retry, get("https://idp.example/t")).await.unwrap_err();
            assert!(matches!(err, Error::Untrusted { service: "identity provider", .. }), "{err:?}");
            assert_eq!(err.exit_code(), crate::error::exit::NETWORK);
            assert!(err.to_string().contains("unknown issuer"), "{err}");
        }
        assert_eq!(t.count("/t"), 2, "one attempt per call");
    }

    /// A server that does not answer in HTTP (a TLS port asked in http://) answers the same way
    /// next time: one attempt, a network failure (exit 6), nothing counted as lost.
    #[tokio::test]
    async fn a_server_that_does_not_speak_http_is_not_retried() {
        let t = FakeTransport::new(|_, _| Err(Failure::NotHttp("did not answer in HTTP".into())));
        for retry in [Retry::Idempotent, Retry::Rotating { grace: Duration::ZERO }] {
            let http = Http::with_transport(t.clone(), options());
            let err = http.execute("identity provider", retry, get("http://127.0.0.1:9/t")).await.unwrap_err();
            assert!(matches!(err, Error::Network { .. }), "{err:?}");
            assert_eq!(err.exit_code(), crate::error::exit::NETWORK);
        }
        assert_eq!(t.count("/t"), 2, "one attempt per call");
    }

    #[tokio::test]
    async fn oversized_answers_are_a_protocol_error() {
        let t = FakeTransport::new(|_, _| Ok((200, "x".repeat(2048))));
        let http = Http::with_transport(t, HttpOptions { max_body: 1024, ..options() });
        let err = http.execute("identity provider", Retry::Idempotent, get("https://idp.example/t")).await.unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
        assert!(err.to_string().contains("larger than 1 KiB"), "{err}");
    }

    #[test]
    fn worst_case_bounds() {
        let o = HttpOptions::default();
        assert_eq!(o.worst_case(Retry::Idempotent), Duration::from_millis(91_500));
        assert_eq!(o.worst_case(Retry::Rotating { grace: Duration::ZERO }), Duration::from_millis(201_500));
    }
}
