//! An opened CONNECT: TLS terminated with a per-run-CA leaf for the CONNECT host, HTTP/1.1 served
//! on it, each request re-signed when it qualifies ([`super::resign`]) and forwarded upstream.

use super::forward::text_response;
use super::limits::{Limits, Slot};
use super::resign::resign;
use super::{ProxyBody, Shared};
use crate::secret::SecretString;
use http::header::AUTHORIZATION;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

/// Serves one opened tunnel until the child closes it (or the gate closes it between requests,
/// for a new connection, through `slot`).
pub(crate) async fn serve(upgraded: Upgraded, host: String, port: u16, shared: Arc<Shared>, slot: Arc<Slot>) {
    let certified = shared.ca.server_config(&host);
    let Ok(config) = certified.inspect_err(|e| {
        tracing::warn!(%host, error = %e, "cannot create a certificate for the opened host");
    }) else {
        return;
    };
    let accepted = TlsAcceptor::from(config).accept(TokioIo::new(upgraded)).await;
    let Ok(tls) = accepted.inspect_err(|e| {
        let target = format!("{}:{port}", crate::realm::bracket_ipv6(&host));
        let reason = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
        let no_protocol = reason == Some(&rustls::Error::NoApplicationProtocol);
        // A refused certificate comes with the program's alert; a tunnel closed without one (the
        // program ended, ran out of file descriptors) says nothing about the certificate.
        if !no_protocol && !matches!(reason, Some(rustls::Error::AlertReceived(_))) {
            tracing::debug!(%target, error = %e, "the TLS handshake in an opened tunnel ended early");
            return;
        }
        // Usually the child does not trust the per-run CA (its CA bundle was overridden).
        if let Some(n) = shared.warnings.allow("tls") {
            let more = if n > 0 { format!(" ({n} more like it not shown)") } else { String::new() };
            if no_protocol {
                tracing::warn!(
                    "a program asked the proxy for `{target}` in a protocol other than HTTP/1.x (HTTP/2 only, by ALPN); \
                     the proxy speaks HTTP/1.1: let the program use it, or run it with `--no-resign-proxy`{more}"
                );
                return;
            }
            tracing::warn!(
                "a program refused the proxy's certificate for `{target}` ({e}): it trusts only its own CA bundle, \
                 not the one woci gives it (REQUESTS_CA_BUNDLE, SSL_CERT_FILE, NODE_EXTRA_CA_CERTS); drop its own CA \
                 option (curl's `--cacert`, for one), or run it with `--no-resign-proxy`{more}"
            );
        }
    }) else {
        return;
    };
    let host: Arc<str> = host.into();
    let header_read = shared.limits.tunnel_header_read;
    let served = shared.clone();
    let svc = service_fn(move |req| {
        let shared = served.clone();
        let host = host.clone();
        let request = slot.request();
        async move {
            let resp = handle(req, &host, port, &shared).await;
            // The request is in flight until its response has been sent (or dropped).
            Ok::<_, Infallible>(resp.map(|body| {
                body.map_frame(move |frame| {
                    let _in_flight = &request;
                    frame
                })
                .boxed()
            }))
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read)
        .max_headers(MAX_HEADERS)
        .serve_connection(TokioIo::new(tls), svc);
    if let Err(e) = conn.await {
        if e.is_parse_too_large() {
            shared.warnings.warn("too-large", say_too_large);
        }
        tracing::debug!(error = %e, "opened connection ended with an error");
    }
}

/// Header fields a re-signed request may carry (hyper's default is 100; a plain tunnel has no
/// limit, and OCI's own object metadata can exceed 100 small `opc-meta-*` fields).
const MAX_HEADERS: usize = 1000;

/// How long a request waits for a renewal when the token it would carry has expired.
const EXPIRED_WAIT: Duration = Duration::from_secs(10);
/// A token with less life than this left counts as expired: a request forwarded with it would
/// reach OCI after its end (its expiry has whole seconds; the way there takes a while).
const LAST_MOMENT_MS: i64 = 2_000;

/// The token for a request, read per request so that a renewal applies to the very next one
/// (cloned, not borrowed: holding the watch lock during RSA verification would stall a renewal).
/// A token that expired, or is about to, with no renewal yet (a renewal late for an IdP that is
/// slow, a machine resumed from suspend: its timers stood still) waits a little for the loop's
/// next one rather than be refused by OCI. `true` with it: no renewal came, it is still expired.
async fn current_token(shared: &Shared) -> (SecretString, bool) {
    let mut tokens = shared.token.clone();
    let token = tokens.borrow_and_update().clone();
    let now_ms = crate::clock::unix_millis(shared.clock.now());
    let lasts = |exp: i64| exp.saturating_mul(1000) > now_ms.saturating_add(LAST_MOMENT_MS);
    if crate::jwt::expiry(token.expose()).ok().flatten().is_none_or(lasts) {
        return (token, false);
    }
    match tokio::time::timeout(EXPIRED_WAIT, tokens.changed()).await {
        Ok(Ok(())) => (tokens.borrow().clone(), false),
        _ => (token, true),
    }
}

/// Said once the request has gone out (a response came back), not when it was signed: a program
/// stopped by Ctrl-C meanwhile sends nothing, and the line would then be false.
fn warn_expired(shared: &Shared) {
    // The program then meets a 401 with nothing of woci's said about it at that moment.
    shared.warnings.warn("expired", say_expired);
}

/// `n` requests went out with the expired token.
fn say_expired(limits: &Limits, n: u64) {
    tracing::warn!(
        "proxy: no renewal within {}s, so a request went out with the expired session token, which OCI refuses \
         ({n} in the last {}s; the renewal's own lines say why, once it ends)",
        EXPIRED_WAIT.as_secs(),
        limits.warn_interval.as_secs()
    );
}

/// `n` requests in opened tunnels were refused for their heads' size.
fn say_too_large(limits: &Limits, n: u64) {
    tracing::warn!(
        "proxy: a request with more than {MAX_HEADERS} header fields or a request head over 400 KiB was refused \
         (431) ({n} in the last {}s)",
        limits.warn_interval.as_secs()
    );
}

/// The OCI auth service's session refresh (`POST`, body `{"currentToken": …}`).
const SESSION_REFRESH_PATH: &str = "/v1/authentication/refresh";

async fn handle(mut req: Request<Incoming>, host: &str, port: u16, shared: &Shared) -> Response<ProxyBody> {
    shared.count(|s| &mut s.requests);
    let target = req.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/").to_owned();
    let (token, expired) = current_token(shared).await;
    let outcome = resign(req.method(), &target, req.headers(), &shared.public_key, &token);
    // The OCI SDK for Java refreshes its session itself (at its start, then every 55 min) and
    // keeps what it gets. Re-signed, its body's `currentToken` (the one it started with) would go
    // out signed with a newer one, which the auth service refuses; answered here with the session
    // woci keeps fresh, as that service would, it holds a valid token.
    if outcome.is_ok() && req.method() == http::Method::POST && req.uri().path() == SESSION_REFRESH_PATH {
        shared.count(|s| &mut s.swapped);
        tracing::debug!(%host, "a session refresh answered with the session woci keeps");
        let body = serde_json::json!({ "token": token.expose() }).to_string();
        let mut resp = text_response(StatusCode::OK, &body);
        resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        if expired {
            warn_expired(shared);
        }
        return resp;
    }
    drop(token);
    match outcome {
        Ok(value) => {
            req.headers_mut().insert(AUTHORIZATION, value);
            shared.count(|s| &mut s.swapped);
            tracing::debug!(%host, method = %req.method(), path = req.uri().path(), "session token swapped");
        }
        Err(why) => {
            shared.count(|s| &mut s.untouched);
            tracing::debug!(%host, method = %req.method(), path = req.uri().path(), reason = why.label(), "forwarded untouched");
        }
    }
    match shared.forwarder.forward(host, port, req).await {
        Ok(resp) => {
            if expired {
                warn_expired(shared);
            }
            resp
        }
        Err(reason) => {
            shared.count(|s| &mut s.upstream_errors);
            tracing::debug!(%host, port, %reason, "upstream request failed");
            text_response(StatusCode::BAD_GATEWAY, &format!("woci proxy: upstream {host}:{port} failed: {reason}"))
        }
    }
}
