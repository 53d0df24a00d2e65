//! The HTTP client woci uses for the IdP, the token exchange and the OCI auth service, and the one
//! retry policy: bounded attempts with exponential backoff for connection errors, timeouts and
//! 5xx answers; 4xx answers are returned at once for the caller to classify. Nothing here ever
//! hangs: every request has a connect and a total timeout.

use crate::error::{Error, Result};
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// Client settings. Defaults: 10 s connect, 30 s total, 3 attempts, 500 ms first backoff.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Connect timeout per attempt.
    pub connect_timeout: Duration,
    /// Total timeout per attempt.
    pub timeout: Duration,
    /// Attempts for transient failures (at least 1).
    pub attempts: u32,
    /// First backoff; doubles per attempt.
    pub backoff: Duration,
    /// Extra PEM CA bundles to trust besides the system roots (e.g. `REQUESTS_CA_BUNDLE`).
    pub extra_ca_files: Vec<PathBuf>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            attempts: 3,
            backoff: Duration::from_millis(500),
            extra_ca_files: Vec::new(),
        }
    }
}

/// A client plus its retry policy.
#[derive(Debug, Clone)]
pub struct Http {
    /// The underlying client (rustls, no redirects, honours the user's `HTTPS_PROXY`).
    pub client: reqwest::Client,
    /// The settings it was built with.
    pub options: HttpOptions,
}

impl Http {
    /// Builds the client. Unreadable or invalid CA files are configuration errors.
    pub fn new(options: HttpOptions) -> Result<Http> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .user_agent(concat!("woci/", env!("CARGO_PKG_VERSION")));
        for path in &options.extra_ca_files {
            for cert in load_pem_certs(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder.build().map_err(|e| Error::Other(format!("cannot build HTTP client: {e}")))?;
        Ok(Http { client, options })
    }

    /// Sends the request built by `make` (called once per attempt), retrying transient failures.
    /// Returns the first non-5xx response; network errors and 5xx after the last attempt become
    /// [`Error::Network`].
    pub async fn send<F>(&self, service: &'static str, url: &Url, make: F) -> Result<reqwest::Response>
    where
        F: Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    {
        let attempts = self.options.attempts.max(1);
        let mut backoff = self.options.backoff;
        let mut last = String::new();
        for attempt in 1..=attempts {
            match make(&self.client).send().await {
                Ok(resp) if resp.status().is_server_error() => {
                    last = format!("HTTP {}", resp.status().as_u16());
                }
                Ok(resp) => return Ok(resp),
                Err(e) => last = describe_reqwest_error(&e),
            }
            tracing::warn!(service, url = %redact_url(url), attempt, attempts, reason = %last, "request failed");
            if attempt < attempts {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
        }
        Err(Error::Network { service, url: redact_url(url), reason: format!("{last} after {attempts} attempt(s)") })
    }
}

/// The URL without query string or user info, for messages.
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

fn describe_reqwest_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        // The source chain says "connection refused" / "dns error"; it never holds request data.
        let mut s = String::from("cannot connect");
        let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(inner) = src {
            s = format!("cannot connect: {inner}");
            src = inner.source();
        }
        s
    } else if e.is_body() || e.is_decode() {
        "connection dropped while reading the response".into()
    } else {
        "request failed".into()
    }
}

/// Parses all certificates of a PEM bundle.
pub fn load_pem_certs(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path).map_err(|e| Error::io("cannot read CA bundle", path, e))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| Error::Config(format!("invalid CA bundle `{}`: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!("CA bundle `{}` holds no certificate", path.display())));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let url = Url::parse("http://127.0.0.1:9/token").unwrap();
        let err = http.send("identity provider", &url, |c| c.post(url.clone())).await.unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::NETWORK);
        assert!(err.to_string().contains("after 2 attempt(s)"), "{err}");
    }
}
