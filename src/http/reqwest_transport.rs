//! The [`Transport`] woci uses for real: reqwest with rustls, the system roots plus configured CA
//! files, no redirects, the user's proxy with woci's own `NO_PROXY` rules ([`crate::realm::NoProxy`],
//! the same ones the re-signing proxy applies), and bodies read chunk by chunk up to a cap.

use super::{Failure, HttpOptions, Request, Response, SendFuture, Transport};
use crate::error::{Error, Result};
use zeroize::Zeroizing;

/// The reqwest client behind [`Transport`]. Unreadable or invalid CA files are configuration
/// errors.
pub(super) fn client(options: &HttpOptions) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(options.connect_timeout)
        // A new connection per request: woci sends a few an hour, and a kept one the server closed
        // meanwhile (its keep-alive timeout; a stall) races the next request. For a refresh grant
        // a reset there reads like a lost answer: the token would be reported spent, unsent.
        .pool_max_idle_per_host(0)
        .user_agent(concat!("woci/", env!("CARGO_PKG_VERSION")))
        // woci's settings carry the user's proxy; reqwest must not read the environment itself.
        .no_proxy();
    if let Some(proxy) = &options.proxy {
        builder = builder.proxy(super::user_proxy(proxy, &options.no_proxy));
    }
    for path in &options.extra_ca_files {
        for cert in super::load_pem_certs(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| Error::Other(format!("cannot build HTTP client: {e}")))
}

impl Transport for reqwest::Client {
    fn send(&self, req: Request, max_body: usize) -> SendFuture<'_> {
        Box::pin(async move {
            let mut deadline = Deadline::new(req.timeout);
            let host = req.url.host_str().unwrap_or("?").to_owned();
            let plain = req.url.scheme() == "http";
            let builder = self.request(req.method, req.url).headers(req.headers).body(req.body.to_vec());
            let mut resp = deadline
                .run(builder.send())
                .await
                .ok_or_else(|| Failure::Lost("timed out".into()))?
                .map_err(|e| classify(e, &host, plain))?;
            let status = resp.status().as_u16();
            let mut body = Zeroizing::new(Vec::with_capacity(16 * 1024));
            loop {
                let chunk = deadline
                    .run(resp.chunk())
                    .await
                    .ok_or_else(|| Failure::Lost("timed out while reading the answer".into()))?
                    .map_err(|e| {
                        Failure::Lost(format!(
                            "connection dropped while reading the HTTP {status} answer: {}",
                            describe(&e)
                        ))
                    })?;
                let Some(chunk) = chunk else { break };
                if body.len() + chunk.len() > max_body {
                    return Err(Failure::TooLarge(max_body));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Response { status, body })
        })
    }
}

/// A request's time limit that counts only time the process ran: a woci stopped with Ctrl-Z (or a
/// machine asleep) past the limit still reads the answer that arrived meanwhile; a refresh
/// grant's answer dropped then would leave the IdP's rotated refresh token unknown.
struct Deadline {
    at: tokio::time::Instant,
}

impl Deadline {
    /// A tick later than this much says the process did not run in between.
    const TICK: std::time::Duration = std::time::Duration::from_secs(1);

    fn new(limit: std::time::Duration) -> Deadline {
        Deadline { at: tokio::time::Instant::now() + limit }
    }

    /// `work`'s output, or `None` once the limit passed while the process ran. The work is
    /// polled before the clock on every wake-up.
    async fn run<F: std::future::Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            let tick = tokio::time::Instant::now() + Self::TICK;
            tokio::select! {
                biased;
                out = &mut work => return Some(out),
                _ = tokio::time::sleep_until(tick.min(self.at)) => {
                    let late = tokio::time::Instant::now().saturating_duration_since(tick);
                    // Time the process was stopped does not count.
                    if late > Self::TICK {
                        self.at += late;
                    } else if tokio::time::Instant::now() >= self.at {
                        return None;
                    }
                }
            }
        }
    }
}

/// Connect-phase errors (refused, DNS, TLS handshake, connect timeout, proxy CONNECT refused) mean
/// the request never reached the server; so does an answer that does not start as HTTP (the port
/// of a TLS server asked in `plain` http://: no HTTP server processed the request); everything
/// else may have. A refused handshake (the certificate, or no TLS version in common) is told
/// apart: it is not retried, and its message says what to fix.
fn classify(e: reqwest::Error, host: &str, plain: bool) -> Failure {
    // No file descriptor left here (`ulimit -n`): this machine's limit, not the network.
    let local = causes(&e)
        .filter_map(|c| c.downcast_ref::<std::io::Error>()?.raw_os_error())
        .find(|code| [libc::EMFILE, libc::ENFILE].contains(code));
    if let Some(code) = local.filter(|_| e.is_connect()) {
        return Failure::Local(code);
    }
    // hyper-util's tunnel says so in words only (its error type is private).
    if e.is_connect() && causes(&e).any(|c| c.to_string().contains("proxy authorization required")) {
        return Failure::ProxyAuth;
    }
    match tls_refusal(&e, host) {
        Some(why) => Failure::Untrusted(why),
        // A name that does not resolve is a setting to check (or this machine's DNS).
        None if e.is_connect() && causes(&e).any(|c| c.to_string().starts_with("dns error")) => {
            Failure::NotSent(format!("{} (check the host name `{host}` in the URL)", describe(&e)))
        }
        None if e.is_connect() => Failure::NotSent(describe(&e)),
        // Only an answer whose first bytes are not `HTTP/1.x`: a garbled header of an answer that
        // is HTTP may come from a server that processed the request (a rotated refresh token).
        None if causes(&e).any(|c| c.downcast_ref::<hyper::Error>().is_some_and(not_http)) => {
            let hint = if plain { "; is it an https:// server?" } else { "" };
            Failure::NotHttp(format!("the server at `{host}` did not answer in HTTP ({}{hint})", describe(&e)))
        }
        None => Failure::Lost(describe(&e)),
    }
}

/// hyper's parse error for an answer that does not start as HTTP/1 does (its kind is private).
fn not_http(e: &hyper::Error) -> bool {
    e.is_parse() && e.to_string() == "invalid HTTP version parsed"
}

/// `e`'s causes, outermost first.
fn causes(e: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(e), |inner| inner.source())
}

/// Why the TLS handshake with `host` failed for good, with the fix, when a rustls error
/// somewhere in `e`'s causes says so: a refused certificate, or a server with no TLS version or
/// cipher in common with woci's. rustls errors travel inside (nested) `io::Error`s, whose
/// `source` skips what they wrap, so each of those is opened.
pub(crate) fn tls_refusal(e: &reqwest::Error, host: &str) -> Option<String> {
    use rustls::AlertDescription as Alert;
    causes(e).find_map(|mut node| {
        while let Some(wrapped) = node.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            node = wrapped;
        }
        let incompatible = "no TLS version or cipher in common with woci (TLS 1.2 or 1.3 with current ciphers)";
        let mutual = "asks for a client certificate (mutual TLS), which woci does not send";
        match node.downcast_ref::<rustls::Error>()? {
            rustls::Error::InvalidCertificate(cert) => Some(certificate_problem(cert, host)),
            rustls::Error::PeerIncompatible(_)
            | rustls::Error::AlertReceived(Alert::ProtocolVersion | Alert::InsufficientSecurity) => {
                Some(format!("the server at `{host}` has {incompatible}; it needs a newer TLS setup"))
            }
            // TLS 1.2 servers refuse a missing client certificate with this alert too.
            rustls::Error::AlertReceived(Alert::HandshakeFailure) => Some(format!(
                "the server at `{host}` refused the TLS handshake: it has {incompatible}, or it {mutual}; use an \
                 endpoint that does not require one"
            )),
            rustls::Error::AlertReceived(Alert::CertificateRequired) => {
                Some(format!("the server at `{host}` {mutual}; use an endpoint that does not require one"))
            }
            // What came back is no TLS record at all: plain HTTP, most likely.
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => Some(format!(
                "the server at `{host}` does not speak TLS (a plain-HTTP server behind an `https://` URL?); check \
                 the URL's scheme and port"
            )),
            _ => None,
        }
    })
}

/// One clause naming the host, what is wrong with its certificate and the fix.
pub(crate) fn certificate_problem(cert: &rustls::CertificateError, host: &str) -> String {
    use rustls::CertificateError as C;
    match cert {
        C::UnknownIssuer => format!(
            "the certificate of `{host}` is from an unknown issuer (not one of the system's CAs or the configured CA files); if it is your organization's CA, give its PEM file with `--cert-bundle FILE` or set `OCI_CLI_CERT_BUNDLE`, `REQUESTS_CA_BUNDLE` or `SSL_CERT_FILE` to it"
        ),
        C::Expired | C::ExpiredContext { .. } => {
            format!("the certificate of `{host}` has expired (or this machine's clock is wrong)")
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            format!("the certificate of `{host}` is not valid for that name; check the URL")
        }
        other => {
            let why = match other {
                C::Other(o) => o.to_string(),
                _ => other.to_string(),
            };
            match why.as_str() {
                "CaUsedAsEndEntity" => {
                    format!("the server at `{host}` presents a CA certificate as its own; its TLS setup is wrong")
                }
                _ => format!("the certificate of `{host}` was refused ({})", words(&why)),
            }
        }
    }
}

/// rustls and webpki print many reasons as their Rust names (`BadSignature`): said as words.
fn words(reason: &str) -> String {
    if !reason.chars().all(|c| c.is_ascii_alphanumeric()) {
        return reason.to_owned();
    }
    let mut out = String::new();
    for c in reason.chars() {
        if c.is_ascii_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    // The innermost cause ("connection refused", "dns error", "connection reset by peer"), never
    // a URL: reqwest's own Display includes the URL, which may carry a query.
    match (e.is_connect(), causes(e).last().map(cause_text)) {
        (true, Some(inner)) => format!("cannot connect: {inner}"),
        (true, None) => "cannot connect".into(),
        (false, Some(inner)) => inner,
        (false, None) => "connection dropped".into(),
    }
}

/// A cause's text for people: without the link to a library's manual that rustls appends
/// ("…: https://docs.rs/rustls/…"), and its TLS words for a closed connection in plain ones.
pub(crate) fn cause_text(e: &(dyn std::error::Error + 'static)) -> String {
    let text = e.to_string();
    // rustls's words for a connection closed without an answer.
    if text.starts_with("peer closed connection without sending TLS close_notify") {
        return "the server closed the connection without answering".into();
    }
    match text.find(": https://docs.rs/") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_reasons_are_words() {
        let m = certificate_problem(&rustls::CertificateError::BadSignature, "h");
        assert_eq!(m, "the certificate of `h` was refused (bad signature)");
        // webpki's error, as rustls carries it (its Display is the variant's name).
        let ca = rustls::OtherError(std::sync::Arc::new(std::io::Error::other("CaUsedAsEndEntity")));
        let m = certificate_problem(&rustls::CertificateError::Other(ca), "h");
        assert_eq!(m, "the server at `h` presents a CA certificate as its own; its TLS setup is wrong");
    }

    #[test]
    fn a_library_manual_link_is_left_out_of_the_cause() {
        let e = std::io::Error::other("the handshake failed: https://docs.rs/rustls/latest/rustls/manual/x.html");
        assert_eq!(cause_text(&e), "the handshake failed");
        let e = std::io::Error::other(
            "peer closed connection without sending TLS close_notify: https://docs.rs/rustls/latest/rustls/manual/_03_howto/index.html#unexpected-eof",
        );
        assert_eq!(cause_text(&e), "the server closed the connection without answering");
        assert_eq!(cause_text(&std::io::Error::other("connection reset by peer")), "connection reset by peer");
    }

    /// Ctrl-Z past a request's limit: the answer that came meanwhile is read after SIGCONT, not
    /// dropped as a timeout; while the process runs, the limit holds.
    #[tokio::test(start_paused = true)]
    async fn time_stopped_does_not_count_against_the_limit() {
        use std::time::Duration;
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let waiting = tokio::spawn(async move { Deadline::new(Duration::from_secs(5)).run(rx).await });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The whole process stood still for 100 s: every timer fires late at once.
        tokio::time::advance(Duration::from_secs(100)).await;
        tx.send(7).unwrap();
        assert_eq!(waiting.await.unwrap().map(Result::unwrap), Some(7));
        let (_tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let started = tokio::time::Instant::now();
        assert!(Deadline::new(Duration::from_secs(5)).run(rx).await.is_none());
        assert!(started.elapsed() >= Duration::from_secs(5) && started.elapsed() < Duration::from_secs(7));
    }

    /// A server that answers one request per connection and resets a connection a second request
    /// comes on (as a keep-alive timeout racing it does): every request gets its answer.
    #[tokio::test]
    async fn a_request_never_goes_out_on_a_kept_connection() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        let Ok(n @ 1..) = conn.read(&mut buf) else { return };
                        got.extend_from_slice(&buf[..n]);
                    }
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                    // A second request on it: closed unread, which sends a reset.
                    let _ = conn.peek(&mut buf);
                });
            }
        });
        let client = client(&HttpOptions::default()).unwrap();
        for _ in 0..3 {
            let req = Request {
                method: reqwest::Method::POST,
                url: format!("http://127.0.0.1:{port}/token").parse().unwrap(),
                headers: Default::default(),
                body: Zeroizing::new(b"grant_type=refresh_token".to_vec()),
                timeout: std::time::Duration::from_secs(10),
            };
            let answer = client.send(req, 1024).await.unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!((answer.status, answer.body.as_slice()), (200, &b"ok"[..]));
        }
    }

    /// An http:// URL to a TLS server's port gets a TLS alert, not HTTP: no HTTP server processed
    /// the request (a refresh grant's refresh token is not spent), and the message says what to
    /// check. It was taken as a lost answer, and `--status` then said a login was next.
    #[tokio::test]
    async fn an_answer_that_is_not_http_means_nothing_was_processed() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            // A TLS "protocol version" alert, as a TLS server answers bytes that are not TLS; then
            // an HTTP answer with a broken header, which a server that processed it may send.
            let answers: [&[u8]; 2] =
                [&[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46], b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"];
            for (mut conn, answer) in listener.incoming().flatten().zip(answers) {
                let _ = conn.read(&mut [0u8; 4096]);
                let _ = conn.write_all(answer);
            }
        });
        let req = || Request {
            method: reqwest::Method::POST,
            url: format!("http://127.0.0.1:{port}/token").parse().unwrap(),
            headers: Default::default(),
            body: Zeroizing::new(b"grant_type=refresh_token".to_vec()),
            timeout: std::time::Duration::from_secs(10),
        };
        let client = client(&HttpOptions::default()).unwrap();
        match client.send(req(), 1024).await {
            Err(Failure::NotHttp(why)) => {
                assert!(why.contains("did not answer in HTTP") && why.contains("is it an https:// server?"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(client.send(req(), 1024).await, Err(Failure::Lost(_))));
    }

    /// A host name that does not resolve (`.invalid` never does, RFC 6761) names the host to check.
    #[tokio::test]
    async fn a_name_that_does_not_resolve_names_the_host_to_check() {
        let req = Request {
            method: reqwest::Method::POST,
            url: "https://idp.nonexistent.invalid/oauth2/v1/token".parse().unwrap(),
            headers: Default::default(),
            body: Zeroizing::new(Vec::new()),
            timeout: std::time::Duration::from_secs(10),
        };
        match client(&HttpOptions::default()).unwrap().send(req, 1024).await {
            Err(Failure::NotSent(why)) => {
                assert!(why.ends_with("(check the host name `idp.nonexistent.invalid` in the URL)"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unknown_issuer_names_the_host_and_every_way_to_trust_the_ca() {
        let m = certificate_problem(&rustls::CertificateError::UnknownIssuer, "idp.example");
        for needle in [
            "`idp.example`",
            "unknown issuer",
            "--cert-bundle",
            "OCI_CLI_CERT_BUNDLE",
            "REQUESTS_CA_BUNDLE",
            "SSL_CERT_FILE",
        ] {
            assert!(m.contains(needle), "{needle}: {m}");
        }
        let m = certificate_problem(&rustls::CertificateError::NotValidForName, "idp.example");
        assert!(m.contains("`idp.example`") && m.contains("not valid for that name"), "{m}");
    }
}
