//! Forwarding an opened request to the real host over verified TLS, streaming both bodies.
//!
//! The client is reqwest rather than a hand-assembled hyper-util client: it already brings the
//! connection pool, rustls with the system roots plus extra CA files, CONNECT through an upstream
//! proxy with credentials and `NO_PROXY`, and streaming bodies with backpressure (`Body::wrap` over
//! hyper's `Incoming`, whose frames are pulled only as fast as the upstream accepts them). It is
//! configured to change nothing: no redirects, no decompression, HTTP/1.1 only (so `Host` stays a
//! header and is not turned into `:authority`), no total timeout (128 MiB parts take a while).
//! The one thing reqwest adds is `Accept: */*` when the request has no `Accept` at all (the Python
//! SDK always sends one; `accept` is never a signed header).

use super::hosts::NoProxy;
use super::ProxyBody;
use crate::error::{Error, Result};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus `expect`: they describe one connection, not the
/// request, and hyper re-creates framing (`transfer-encoding`) itself. None is ever signed by OCI.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The upstream HTTP client.
#[derive(Debug, Clone)]
pub struct Forwarder {
    client: reqwest::Client,
    /// Hosts whose failure (a refused certificate, no connection) was already said on the terminal.
    refused: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    /// The user's proxy (`host:port`, no credentials) and the hosts that bypass it, for messages.
    via: Option<(String, NoProxy)>,
}

impl Forwarder {
    /// Builds the client: system roots plus `extra_ca_files`, through `proxy` (except `no_proxy`
    /// hosts) or direct. woci's own environment is not consulted here: the caller passes the proxy.
    pub fn new(extra_ca_files: &[PathBuf], proxy: Option<&Url>, no_proxy: &NoProxy) -> Result<Forwarder> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .http1_only()
            .no_gzip()
            .no_brotli()
            .no_deflate()
            .no_zstd()
            .no_proxy()
            .connect_timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_keepalive(Duration::from_secs(30));
        for path in extra_ca_files {
            for cert in crate::http::load_pem_certs(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(url) = proxy {
            builder = builder.proxy(crate::http::user_proxy(url, no_proxy));
        }
        let client = builder.build().map_err(|e| Error::Other(format!("cannot build the proxy's HTTP client: {e}")))?;
        let via = proxy.map(|u| (crate::http::proxy_at(u), no_proxy.clone()));
        Ok(Forwarder { client, refused: Default::default(), via })
    }

    /// Sends `req` (already re-signed or untouched) to `https://host:port` + its path and query, and
    /// returns the upstream response with a streaming body; failures become a 502.
    pub async fn forward(
        &self,
        host: &str,
        port: u16,
        req: Request<Incoming>,
    ) -> std::result::Result<Response<ProxyBody>, String> {
        let (parts, body) = req.into_parts();
        let target = parts.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
        let url = Url::parse(&format!("https://{}:{port}{target}", crate::realm::bracket_ipv6(host)))
            .map_err(|_| "invalid request target".to_owned())?;
        let mut headers = parts.headers;
        strip_hop_by_hop(&mut headers);
        headers.remove(header::EXPECT);
        let upstream = self
            .client
            .request(parts.method, url)
            .headers(headers)
            .body(reqwest::Body::wrap(body))
            .send()
            .await
            .map_err(|e| {
                self.say_unreachable(&e, host, port);
                describe(&e)
            })?;
        let response: Response<reqwest::Body> = upstream.into();
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let body: ProxyBody = body.map_err(|e| Box::new(e) as super::BoxError).boxed();
        Ok(Response::from_parts(parts, body))
    }
}

impl Forwarder {
    /// The child sees only a 502, which it may retry for minutes: a certificate refusal (with the
    /// fix, as for woci's own requests) or a connection that cannot be made (a proxy down, a host
    /// not listening) is said in one `woci:` line per host, at once.
    fn say_unreachable(&self, e: &reqwest::Error, host: &str, port: u16) {
        let why = match crate::http::tls_refusal(e, host) {
            Some(why) => why,
            None if e.is_connect() => describe(e),
            None => return,
        };
        let target = format!("{}:{port}", crate::realm::bracket_ipv6(host));
        // "Cannot connect" may be the user's own proxy's doing: it is named.
        let via = match &self.via {
            Some((at, no_proxy)) if !no_proxy.bypass(host, port) => format!(" (through your proxy `{at}`)"),
            _ => String::new(),
        };
        if self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(target.clone()) {
            tracing::warn!("the re-signing proxy cannot reach `{target}`{via}: {why}; the program gets HTTP 502");
        }
    }
}

/// Removes hop-by-hop headers, including those named in `Connection`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        // `authorization` can never be hop-by-hop, whatever `Connection` says.
        if name != header::AUTHORIZATION && name != header::HOST {
            headers.remove(name);
        }
    }
}

/// A short reason without the URL (its query could hold a pre-authenticated request token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    let causes = std::iter::successors(std::error::Error::source(e), |inner| inner.source());
    causes.fold(kind.to_owned(), |reason, inner| format!("{reason}: {}", crate::http::cause_text(inner)))
}

/// A small text response from the proxy itself.
pub fn text_response(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let body: ProxyBody =
        http_body_util::Full::new(Bytes::from(format!("{text}\n"))).map_err(|never| match never {}).boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn strips_hop_by_hop_but_keeps_signed_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-conn-only, authorization"));
        h.insert("x-conn-only", HeaderValue::from_static("1"));
        h.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(header::PROXY_AUTHORIZATION, HeaderValue::from_static("Basic x"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Signature x"));
        h.insert(header::HOST, HeaderValue::from_static("h"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        h.insert("x-content-sha256", HeaderValue::from_static("abc"));
        strip_hop_by_hop(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["authorization", "content-length", "host", "x-content-sha256"]);
    }
}
