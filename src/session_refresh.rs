//! OCI auth service session refresh, for profiles made by `oci session authenticate` (no IdP):
//! `POST {auth endpoint}/v1/authentication/refresh` with `{"currentToken": …}`, signed with the
//! session itself (keyId `ST$<current token>`, the profile key, all six body headers), answered by
//! `{"token": …}` bound to the same key (what `oci session refresh` does).
//!
//! The default auth endpoint of a region comes from [`crate::realm::auth_endpoint_for_region`].

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::http::{redact_url, Http, Request, Retry};
use crate::keys::KeyPair;
use crate::secret::SecretString;
use crate::signer;
use http::Method;
use url::Url;
use zeroize::Zeroizing;

const SERVICE: &str = "OCI auth service";

/// Longest server error text quoted in a message.
const MAX_QUOTED: usize = 200;

/// `POST {auth_endpoint}/v1/authentication/refresh` signed with the current token and key.
///
/// 2xx with a `token` → the new token. 401 → [`Error::SessionExpired`] (the session reached its
/// server-side limit or was terminated; only a new `session authenticate` helps). Any other 4xx →
/// [`Error::Protocol`] naming the status and OCI's `code`. Network failures and 5xx are retried by
/// [`Http::execute`] and end as [`Error::Network`].
pub(crate) async fn refresh_session(
    http: &Http,
    auth_endpoint: &Url,
    current: &SecretString,
    key: &KeyPair,
    clock: &dyn Clock,
) -> Result<SecretString> {
    let url = refresh_url(auth_endpoint)?;
    let body = Zeroizing::new(serde_json::json!({ "currentToken": current.expose() }).to_string().into_bytes());
    let key_id = signer::key_id_for_token(current);
    // Each attempt signs again so that retries carry a fresh `date`. The refresh rotates nothing
    // that a resend could spend, so ordinary retries apply.
    let make = |timeout| -> Result<Request> {
        let headers = signer::sign_request(&Method::POST, &url, &body, Some("application/json"), key, &key_id, clock)?;
        Ok(Request { method: Method::POST, url: url.clone(), headers, body: body.clone(), timeout })
    };
    let response = http.execute(SERVICE, Retry::Idempotent, make).await?;
    let status = http::StatusCode::from_u16(response.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    let text = Zeroizing::new(String::from_utf8_lossy(&response.body).into_owned());
    if status.is_success() {
        return parse_token(&text);
    }
    if status == http::StatusCode::UNAUTHORIZED {
        return Err(Error::SessionExpired(
            "the OCI session can no longer be refreshed (the auth service answered 401: it expired or was terminated)"
                .into(),
        ));
    }
    Err(Error::Protocol {
        service: SERVICE,
        reason: format!(
            "session refresh at `{url}` failed with HTTP {}{}{}",
            status.as_u16(),
            describe_oci_error(&text),
            // No such path: the endpoint is not an OCI auth service.
            if matches!(status.as_u16(), 404 | 405) { "; check `auth_endpoint`" } else { "" }
        ),
    })
}

fn refresh_url(auth_endpoint: &Url) -> Result<Url> {
    if auth_endpoint.cannot_be_a_base() || auth_endpoint.host_str().is_none() {
        return Err(Error::Config(format!("invalid auth endpoint `{}`", redact_url(auth_endpoint))));
    }
    let mut url = auth_endpoint.clone();
    let path = format!("{}/v1/authentication/refresh", auth_endpoint.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    Ok(url)
}

fn parse_token(text: &str) -> Result<SecretString> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
    }
    let invalid = |reason: &str| Error::Protocol { service: SERVICE, reason: reason.to_owned() };
    let answer: Answer = serde_json::from_str(text).map_err(|_| invalid("the refresh answer is not JSON"))?;
    let token = SecretString::new(answer.token.ok_or_else(|| invalid("the refresh answer has no `token`"))?);
    let t = token.expose();
    if t.is_empty() || t.chars().any(char::is_whitespace) || crate::jwt::decode_claims::<serde_json::Value>(t).is_err()
    {
        return Err(invalid("the refreshed `token` is not a JWT"));
    }
    Ok(token)
}

/// ` (code: message)` from an OCI error body `{"code": …, "message": …}`, shortened; empty when the
/// body is something else (which is never quoted, it could be anything).
fn describe_oci_error(text: &str) -> String {
    #[derive(serde::Deserialize)]
    struct OciError {
        code: Option<String>,
        message: Option<String>,
    }
    let Ok(e) = serde_json::from_str::<OciError>(text) else {
        return String::new();
    };
    let mut s = [e.code, e.message].into_iter().flatten().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(": ");
    if s.is_empty() {
        return s;
    }
    // A server that quotes what it was sent quotes the session token (a review of round 105):
    // every JWT-like run (`eyJ…`, the token whole or cut) is left out before the cut.
    let jwt_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=');
    let mut rest = s.as_str();
    let mut scrubbed = String::with_capacity(s.len());
    while let Some(at) = rest.find("eyJ") {
        let run = rest[at..].find(|c: char| !jwt_char(c)).unwrap_or(rest.len() - at);
        scrubbed.push_str(&rest[..at]);
        scrubbed.push_str("[redacted]");
        rest = &rest[at + run..];
    }
    scrubbed.push_str(rest);
    s = scrubbed;
    if s.len() > MAX_QUOTED {
        let cut = (0..=MAX_QUOTED).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        s.truncate(cut);
        s.push('…');
    }
    format!(" ({})", crate::terminal::safe(&s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::http::HttpOptions;
    use crate::signer::tests::test_key;
    use crate::signer::SignatureHeader;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use http::HeaderMap;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn jwt(sub: &str) -> String {
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#);
        let c = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{sub}","exp":1700003600}}"#));
        format!("{h}.{c}.c2ln")
    }

    /// A received request: method, target, headers, body.
    struct Received {
        method: Method,
        target: String,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    /// Answers one request per canned response, in order, then stops; returns what it received.
    async fn canned_server(answers: Vec<(u16, String)>) -> (Url, tokio::task::JoinHandle<Vec<Received>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/base/", listener.local_addr().unwrap())).unwrap();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = s.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
                let mut lines = head.split("\r\n");
                let mut first = lines.next().unwrap().split(' ');
                let method: Method = first.next().unwrap().parse().unwrap();
                let target = first.next().unwrap().to_owned();
                let mut headers = HeaderMap::new();
                for line in lines.filter(|l| !l.is_empty()) {
                    let (k, v) = line.split_once(':').unwrap();
                    headers
                        .append(http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(), v.trim().parse().unwrap());
                }
                let len: usize =
                    headers.get("content-length").map(|v| v.to_str().unwrap().parse().unwrap()).unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = s.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let reason = if status == 200 { "OK" } else { "X" };
                let resp = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(resp.as_bytes()).await.unwrap();
                seen.push(Received { method, target, headers, body: buf[head_end..head_end + len].to_vec() });
            }
            seen
        });
        (url, task)
    }

    fn http() -> Http {
        Http::new(HttpOptions { attempts: 2, backoff: Duration::from_millis(1), ..Default::default() }).unwrap()
    }

    #[tokio::test]
    async fn refresh_sends_a_verifiable_session_signature_and_returns_the_new_token() {
        let new = jwt("new");
        let (url, server) = canned_server(vec![(200, format!(r#"{{"token":"{new}"}}"#))]).await;
        let current = SecretString::new(jwt("old"));
        let got = refresh_session(&http(), &url, &current, test_key(), &ManualClock::at(1_700_000_000)).await.unwrap();
        assert_eq!(got.expose(), &new);

        let seen = server.await.unwrap();
        let r = &seen[0];
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.target, "/base/v1/authentication/refresh");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, serde_json::json!({ "currentToken": current.expose() }));
        let sig = SignatureHeader::parse(r.headers["authorization"].to_str().unwrap()).unwrap();
        assert_eq!(sig.key_id(), format!("ST${}", current.expose()));
        assert_eq!(
            sig.param("headers"),
            Some("date (request-target) host content-length content-type x-content-sha256")
        );
        assert_eq!(r.headers["date"], "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(r.headers["host"], url.host_str().unwrap().to_owned() + ":" + &url.port().unwrap().to_string());
        let text = signer::signing_string(&r.method, &r.target, &r.headers, &sig.headers()).unwrap();
        assert!(signer::verify(test_key().public(), &text, sig.signature()), "signature must verify");
        // The digest covers exactly the body that was sent.
        let mut tampered = r.headers.clone();
        tampered.insert("x-content-sha256", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".parse().unwrap());
        let text = signer::signing_string(&r.method, &r.target, &tampered, &sig.headers()).unwrap();
        assert!(!signer::verify(test_key().public(), &text, sig.signature()));
    }

    #[tokio::test]
    async fn answers_are_classified() {
        let current = SecretString::new(jwt("old"));
        let clock = ManualClock::at(1_700_000_000);
        let cases: Vec<(u16, &str, u8, &str)> = vec![
            (401, r#"{"code":"NotAuthenticated","message":"x"}"#, crate::error::exit::SESSION_EXPIRED, "answered 401"),
            (
                400,
                r#"{"code":"InvalidParameter","message":"bad"}"#,
                crate::error::exit::NETWORK,
                "HTTP 400 (InvalidParameter: bad)",
            ),
            (404, "<html>not json</html>", crate::error::exit::NETWORK, "HTTP 404"),
            (200, r#"{"nope":1}"#, crate::error::exit::NETWORK, "no `token`"),
            (200, r#"{"token":"not a jwt"}"#, crate::error::exit::NETWORK, "not a JWT"),
            (200, "garbage", crate::error::exit::NETWORK, "not JSON"),
        ];
        for (status, body, code, needle) in cases {
            let (url, _server) = canned_server(vec![(status, body.to_owned())]).await;
            let err = refresh_session(&http(), &url, &current, test_key(), &clock).await.unwrap_err();
            assert_eq!(err.exit_code(), code, "{status} {body}: {err}");
            let msg = err.to_string();
            assert!(msg.contains(needle), "{msg}");
            assert!(!msg.contains(current.expose()), "the token must not appear in errors");
            assert!(!msg.contains("<html>"), "unknown bodies are not quoted");
        }
    }

    #[tokio::test]
    async fn server_errors_are_retried_then_network() {
        let new = jwt("new");
        let (url, server) = canned_server(vec![(503, "{}".into()), (200, format!(r#"{{"token":"{new}"}}"#))]).await;
        let got = refresh_session(&http(), &url, &"t".into(), test_key(), &ManualClock::at(1)).await.unwrap();
        assert_eq!(got.expose(), &new);
        assert_eq!(server.await.unwrap().len(), 2);

        let (url, _server) = canned_server(vec![(503, "{}".into()), (502, "{}".into())]).await;
        let err = refresh_session(&http(), &url, &"t".into(), test_key(), &ManualClock::at(1)).await.unwrap_err();
        assert!(matches!(err, Error::Network { .. }), "{err}");
    }

    /// An error that quotes what was sent never quotes the session token, whole or cut.
    #[test]
    fn a_quoted_token_is_left_out_of_the_error() {
        let t = jwt("me");
        let body = serde_json::json!({
            "code": "InvalidParameter",
            "message": format!("bad {t}; keyId=\"ST${}\", then {}", &t[..40], &t[..12]),
        });
        let said = describe_oci_error(&body.to_string());
        assert_eq!(said, " (InvalidParameter: bad [redacted]; keyId=\"ST$[redacted]\", then [redacted])");
    }

    #[test]
    fn refresh_url_appends_to_any_base_path() {
        for (base, want) in [
            ("https://auth.x.example", "https://auth.x.example/v1/authentication/refresh"),
            ("https://auth.x.example/", "https://auth.x.example/v1/authentication/refresh"),
            ("http://127.0.0.1:9/oci/?q=1", "http://127.0.0.1:9/oci/v1/authentication/refresh"),
        ] {
            assert_eq!(refresh_url(&Url::parse(base).unwrap()).unwrap().as_str(), want);
        }
        assert!(refresh_url(&Url::parse("mailto:x@y").unwrap()).is_err());
    }
}
