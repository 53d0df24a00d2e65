//! The proxy's front door: one task per client connection on 127.0.0.1, HTTP/1.1 with upgrades,
//! `Proxy-Authorization` checked on every request, then CONNECT dispatched to [`super::mitm`]
//! (hosts to re-sign) or a plain tunnel (everything else).
//!
//! Resources ([`super::limits`]): each connection is admitted by the gate (when it is full, an
//! opened tunnel idle between requests goes first, then the oldest unauthenticated one), must send
//! its request head within [`Limits::header_read`](super::Limits), and is closed after
//! [`Limits::idle`](super::Limits) without traffic. A request without valid credentials gets 407
//! and the connection is closed at once: nothing is kept for a client that does not know the
//! secret. Warnings are rate-limited.
//!
//! Plain (non-CONNECT) proxy requests get 405: woci only sets `HTTPS_PROXY` for the child, so a
//! plain request means some other program picked the proxy up; forwarding cleartext HTTP would
//! add nothing and widen what the proxy does.

use super::forward::text_response;
use super::hosts::split_host_port;
use super::limits::{Admission, IdleIo, Limits, Slot};
use super::{spawn_until_shutdown, ProxyBody, Shared};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{HeaderValue, CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Accepts clients until shutdown.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let me = rustix::process::getuid().as_raw();
    let owner_unknown_said = std::sync::atomic::AtomicBool::new(false);
    let mut shutdown = shared.shutdown.clone();
    let mut tick = tokio::time::interval(shared.limits.warn_interval);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = tick.tick() => {
                shared.warnings.flush(false);
                continue;
            }
            () = super::stopped(&mut shutdown) => break,
        };
        let foreign = |stream: &TcpStream, peer| {
            let owner = stream.local_addr().ok().and_then(|local| super::peer::owner(local, peer));
            if owner.is_none() && !owner_unknown_said.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::debug!(
                    "proxy: the kernel did not name a connection's owner (sock_diag), so another local user's \
                     connections are not told apart"
                );
            }
            owner.is_some_and(|uid| uid != me)
        };
        match accepted.map(|(stream, peer)| {
            let theirs = foreign(&stream, peer);
            (stream, theirs, shared.gate.admit(theirs))
        }) {
            Ok((stream, _, Some((admission, closed)))) => {
                let own = closed.unauthenticated > closed.foreign;
                if own {
                    shared.warnings.warn("evict", say_evicted);
                }
                if closed.foreign > 0 {
                    shared.warnings.warn("evict-foreign", say_foreign);
                }
                if closed.idle {
                    // What a busy server does with kept-alive connections: nothing failed.
                    tracing::debug!("proxy: at its connection cap, an opened connection idle between requests closed");
                }
                spawn_until_shutdown(&shared.shutdown, serve_client(stream, shared.clone(), admission));
            }
            // Another user's, refused at the cap: said as theirs, not as the program's (round 104 N1).
            Ok((_, true, None)) => shared.warnings.warn("evict-foreign", say_foreign),
            Ok((_, false, None)) => shared.warnings.warn("full", say_refused),
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the listener stays up.
                if let Some(n) = shared.warnings.allow("accept") {
                    tracing::warn!(error = %e, left_out = n, "proxy cannot accept a connection");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    shared.warnings.flush(true);
    tracing::debug!("proxy listener stopped");
}

/// `n` of this user's connections that had not sent the proxy's credentials were closed for new
/// ones: the program's own new connections may be among them.
fn say_evicted(limits: &Limits, n: u64) {
    tracing::warn!(
        "proxy: too many connections that have not given the proxy's credentials yet, closing the oldest ({n} in the \
         last {}s); a new connection of the program's among them fails: one that opens more than {} at once needs a \
         higher `proxy_max_connections`",
        limits.warn_interval.as_secs(),
        limits.max_unauthenticated
    );
}

/// `n` connections of another local user without the proxy's credentials were closed or refused.
fn say_foreign(limits: &Limits, n: u64) {
    tracing::warn!(
        "proxy: another local user keeps connections open to this proxy without its credentials; closing or \
         refusing them ({n} in the last {}s); none of the program's is closed for them",
        limits.warn_interval.as_secs()
    );
}

/// `n` connections were refused at the connection cap.
fn say_refused(limits: &Limits, n: u64) {
    // A cap set by hand is what to raise; the open-file limit is then no fix (round 107 N2).
    let fix = match limits.cap_set {
        true => "a higher `proxy_max_connections`",
        false => "a higher open-file limit (`ulimit -n`) or `proxy_max_connections`",
    };
    tracing::warn!(
        "proxy: {} connections open, refusing more ({n} refused in the last {}s): a program that keeps many \
         connections open needs {fix}",
        limits.max_connections,
        limits.warn_interval.as_secs()
    );
}

async fn serve_client(stream: TcpStream, shared: Arc<Shared>, admission: Admission) {
    let _ = stream.set_nodelay(true);
    let marker = admission.slot();
    // The stream owns the admission: an upgraded tunnel keeps its place until it closes.
    let io = IdleIo::new(stream, shared.limits.idle, Some(admission));
    let header_read = shared.limits.header_read;
    let svc = service_fn(move |req| {
        let shared = shared.clone();
        let marker = marker.clone();
        async move { Ok::<_, Infallible>(handle(req, shared, marker).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "proxy client connection ended with an error");
    }
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>, marker: Arc<Slot>) -> Response<ProxyBody> {
    if !authorized(req.headers().get(PROXY_AUTHORIZATION), &shared.expected_credentials) {
        shared.count(|s| &mut s.rejected_auth);
        tracing::debug!(method = %req.method(), "proxy request without valid credentials rejected");
        let mut resp = text_response(StatusCode::PROXY_AUTHENTICATION_REQUIRED, "woci proxy: authentication required");
        resp.headers_mut().insert(PROXY_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"woci\""));
        // Nothing is kept for a client without the secret: hyper closes after this answer.
        resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    marker.authenticated();
    if req.method() != Method::CONNECT {
        return text_response(StatusCode::METHOD_NOT_ALLOWED, "woci proxy: only CONNECT (HTTPS) is supported");
    }
    let Some((host, port)) = req.uri().authority().and_then(|a| split_host_port(a.as_str())) else {
        return text_response(StatusCode::BAD_REQUEST, "woci proxy: CONNECT needs host:port");
    };
    let host = host.to_ascii_lowercase();
    shared.count(|s| &mut s.connects);

    if shared.resign_hosts.matches(&host, port) {
        tracing::debug!(%host, port, "opening CONNECT for re-signing");
        shared.count(|s| &mut s.opened);
        let s = shared.clone();
        after_upgrade(req, &shared, move |upgraded| super::mitm::serve(upgraded, host, port, s, marker));
        return Response::new(super::empty_body());
    }

    // Tunnel: connect first so that an unreachable host is a 502 the child can report.
    tracing::debug!(%host, port, "tunnelling CONNECT");
    let upstream = match shared.upstream.connect(&host, port).await {
        Ok(s) => s,
        Err(e) => {
            shared.count(|s| &mut s.upstream_errors);
            tracing::debug!(%host, port, error = %e, "tunnel upstream unreachable");
            return text_response(StatusCode::BAD_GATEWAY, &format!("woci proxy: cannot reach {host}:{port}: {e}"));
        }
    };
    shared.count(|s| &mut s.tunnels);
    let _ = upstream.set_nodelay(true);
    // The upstream side keeps its own idle clock: once the client has closed its half, only the
    // upstream is read, and a server that never answers nor closes would hold the tunnel forever.
    let idle = shared.limits.idle;
    after_upgrade(req, &shared, move |upgraded| async move {
        let mut upstream = IdleIo::new(upstream, idle, None);
        if let Err(e) = tokio::io::copy_bidirectional(&mut TokioIo::new(upgraded), &mut upstream).await {
            tracing::debug!(error = %e, "tunnel ended with an error");
        }
    });
    Response::new(super::empty_body())
}

/// Once the client's connection is upgraded (after the 200 answer to its CONNECT `req`), runs
/// `then` on it until it ends or the proxy shuts down.
fn after_upgrade<F>(req: Request<Incoming>, shared: &Shared, then: impl FnOnce(Upgraded) -> F + Send + 'static)
where
    F: Future<Output = ()> + Send + 'static,
{
    spawn_until_shutdown(&shared.shutdown, async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => then(upgraded).await,
            Err(e) => tracing::debug!(error = %e, "CONNECT upgrade failed"),
        }
    });
}

/// Checks `Basic base64(user:secret)` against the expected `woci:<secret>` in constant time.
fn authorized(value: Option<&HeaderValue>, expected: &[u8]) -> bool {
    let given = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| STANDARD.decode(b64.trim()).ok());
    given.is_some_and(|given| constant_time_eq(&given, expected))
}

/// Equality whose time does not depend on where the first difference is (the length is public).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_check() {
        let expected = b"woci:0123abcd";
        let ok = format!("Basic {}", STANDARD.encode("woci:0123abcd"));
        assert!(authorized(Some(&HeaderValue::from_str(&ok).unwrap()), expected));
        let lower = format!("basic  {}", STANDARD.encode("woci:0123abcd"));
        assert!(authorized(Some(&HeaderValue::from_str(&lower).unwrap()), expected));
        for bad in ["", "Basic", "Basic !!!", "Bearer d29jaTowMTIzYWJjZA=="] {
            assert!(!authorized(Some(&HeaderValue::from_str(bad).unwrap()), expected), "{bad}");
        }
        let wrong = format!("Basic {}", STANDARD.encode("woci:0123abce"));
        assert!(!authorized(Some(&HeaderValue::from_str(&wrong).unwrap()), expected));
        assert!(!authorized(None, expected));
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
