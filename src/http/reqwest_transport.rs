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
            let deadline = tokio::time::Instant::now() + req.timeout;
            let host = req.url.host_str().unwrap_or("?").to_owned();
            let builder =
                self.request(req.method, req.url).headers(req.headers).timeout(req.timeout).body(req.body.to_vec());
            let mut resp = builder.send().await.map_err(|e| classify(e, &host))?;
            let status = resp.status().as_u16();
            let mut body = Zeroizing::new(Vec::with_capacity(16 * 1024));
            loop {
                // reqwest's timeout covers the body too; the deadline is belt and braces.
                let chunk = tokio::time::timeout_at(deadline, resp.chunk())
                    .await
                    .map_err(|_| Failure::Lost("timed out while reading the answer".into()))?
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

/// Connect-phase errors (refused, DNS, TLS handshake, connect timeout, proxy CONNECT refused) mean
/// the request never reached the server; everything else may have. A refused certificate is
/// told apart: it is not retried, and its message says how to trust the CA.
fn classify(e: reqwest::Error, host: &str) -> Failure {
    match refused_certificate(&e) {
        Some(cert) => Failure::Untrusted(certificate_problem(&cert, host)),
        None if e.is_connect() => Failure::NotSent(describe(&e)),
        None => Failure::Lost(describe(&e)),
    }
}

/// `e`'s causes, outermost first.
fn causes(e: &reqwest::Error) -> impl Iterator<Item = &(dyn std::error::Error + 'static)> {
    std::iter::successors(std::error::Error::source(e), |inner| inner.source())
}

/// The rustls certificate error somewhere in `e`'s causes. rustls errors travel inside (nested)
/// `io::Error`s, whose `source` skips what they wrap, so each of those is opened.
pub(crate) fn refused_certificate(e: &reqwest::Error) -> Option<rustls::CertificateError> {
    causes(e).find_map(|mut node| {
        while let Some(wrapped) = node.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            node = wrapped;
        }
        match node.downcast_ref::<rustls::Error>() {
            Some(rustls::Error::InvalidCertificate(cert)) => Some(cert.clone()),
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
        other => format!("the certificate of `{host}` was refused ({})", rustls::Error::InvalidCertificate(other.clone())),
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    // The innermost cause ("connection refused", "dns error", "connection reset by peer"), never
    // a URL: reqwest's own Display includes the URL, which may carry a query.
    match (e.is_connect(), causes(e).last()) {
        (true, Some(inner)) => format!("cannot connect: {inner}"),
        (true, None) => "cannot connect".into(),
        (false, Some(inner)) => inner.to_string(),
        (false, None) => "connection dropped".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
