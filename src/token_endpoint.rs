//! The one client for every form POST woci makes to a token endpoint: the IdP's refresh grant and
//! code redemption, the identity domain's token exchange, and the grants still to come (device
//! code, subject tokens). It owns, once for all of them:
//! - client authentication: `client_id` in the form, plus HTTP Basic `base64(id:secret)` (standard
//!   alphabet, as Python `requests` sends it) when the client has a secret;
//! - the body cap, timeouts and retry rules of [`Http::execute`] ([`Retry::Rotating`] for grants
//!   that spend a refresh token);
//! - classification: 2xx → the answer (status and body); a 4xx OAuth error → [`Error::IdpRejected`] or
//!   [`Error::ExchangeRejected`] (`invalid_grant` vs `invalid_client` vs the rest), except
//!   `temporarily_unavailable` and `server_error`, which pass like 5xx and network failures:
//!   [`Error::Network`] (after the retries);
//! - scrubbing: no error text ever carries a secret that was sent (form secrets, the client
//!   secret, the Basic header value), whatever the server echoes.

use crate::error::{Error, Result};
use crate::http::{Http, Request, Retry};
use crate::secret::SecretString;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, Method};
use serde::Deserialize;
use url::Url;
use zeroize::Zeroizing;

/// Form fields whose values are secrets (scrubbed from any error text).
const SECRET_FIELDS: &[&str] =
    &["refresh_token", "code", "code_verifier", "subject_token", "client_secret", "device_code", "assertion"];

/// Which endpoint is asked: decides the service name in errors and how rejections are classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// The IdP's token endpoint; `what` names what was presented ("refresh token", …).
    Idp {
        /// "refresh token", "authorization code", "device code".
        what: &'static str,
    },
    /// The identity domain's token exchange.
    Exchange,
    /// The IdP's device authorization endpoint (RFC 8628 §3.1).
    DeviceAuthorization,
}

impl Endpoint {
    /// The service name used in errors.
    pub(crate) fn service(self) -> &'static str {
        match self {
            Endpoint::Idp { .. } | Endpoint::DeviceAuthorization => "identity provider",
            Endpoint::Exchange => "token exchange",
        }
    }
}

/// The OAuth client making the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client<'a> {
    /// `client_id`.
    pub id: &'a str,
    /// The client secret (confidential clients).
    pub secret: Option<&'a SecretString>,
}

/// A 2xx answer: its status and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Answer {
    /// Never the body: it carries tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Answer {{ status: {}, body: {} bytes }}", self.status, self.body.len())
    }
}

impl Answer {
    /// The body, without a UTF-8 byte order mark (some servers write one; JSON has none).
    pub(crate) fn json(&self) -> &[u8] {
        self.body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&self.body)
    }
}

/// POSTs `form` to `url` and returns the 2xx answer, or a classified, scrubbed error.
pub(crate) async fn post(
    http: &Http,
    endpoint: Endpoint,
    url: &Url,
    client: Client<'_>,
    form: &[(&str, &str)],
    retry: Retry,
) -> Result<Answer> {
    // `base64(id:secret)`, the credentials of an HTTP Basic header: as given (as Python
    // `requests` and OCI's own clients send them), and, when that differs, form-urlencoded first
    // as RFC 6749 §2.3.1 says, which servers that follow it (`oidc-provider`) decode.
    let basic = |id: &str, secret: &str| SecretString::new(STANDARD.encode(format!("{id}:{secret}")));
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = client.secret.map(|s| basic(client.id, s.expose()));
    let encoded = client
        .secret
        .map(|s| basic(&encode(client.id), &encode(s.expose())))
        .filter(|e| raw.as_ref().is_some_and(|r| r.expose() != e.expose()));
    let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
    let body = Zeroizing::new(body.into_bytes());
    let secrets: Vec<&str> = form
        .iter()
        .filter(|(k, _)| SECRET_FIELDS.contains(k))
        .map(|(_, v)| *v)
        .chain(client.secret.into_iter().chain(&raw).chain(&encoded).map(|s| s.expose().as_str()))
        .collect();
    let mut result = Err(Error::Other("no client credentials tried".into()));
    for (i, credentials) in [raw.as_ref(), encoded.as_ref()].into_iter().enumerate() {
        // The encoded form only after the server refused the client, or the request as badly
        // encoded (`oidc-provider` on a secret with a bare `%`): neither spends a refresh token
        // or code.
        let refused_client = match &result {
            Err(Error::IdpRejected { what: "client", .. }) => true,
            Err(Error::IdpRejected { error, .. } | Error::ExchangeRejected { error, .. }) => {
                error == "invalid_client" || error == "invalid_request"
            }
            _ => false,
        };
        if i > 0 && (credentials.is_none() || !refused_client) {
            break;
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(b) = credentials {
            let mut v = HeaderValue::from_str(&format!("Basic {}", b.expose()))
                .map_err(|_| Error::Config("client credentials cannot be sent in an HTTP header".into()))?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let make = |timeout| {
            Ok(Request {
                method: Method::POST,
                url: url.clone(),
                headers: headers.clone(),
                body: body.clone(),
                timeout,
            })
        };
        let resp = http.execute(endpoint.service(), retry, make).await?;
        let status = resp.status;
        result = classify(endpoint, url, status, resp.body, &secrets).map(|body| Answer { status, body });
    }
    result
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    error_description: Option<String>,
}

fn classify(
    endpoint: Endpoint,
    url: &Url,
    status: u16,
    body: Zeroizing<Vec<u8>>,
    secrets: &[&str],
) -> Result<Zeroizing<Vec<u8>>> {
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let (what, setting) = match endpoint {
        Endpoint::Idp { what } => (what, "token_url"),
        Endpoint::Exchange => ("", "token_exchange_url"),
        Endpoint::DeviceAuthorization => ("device authorization request", "device_authorization_url"),
    };
    if !(400..500).contains(&status) {
        return Err(Error::Protocol {
            service: endpoint.service(),
            reason: format!("the token endpoint answered HTTP {status}; check `{setting}`"),
        });
    }
    let oauth = serde_json::from_slice::<OAuthError>(&body).ok();
    // RFC 6749 §4.1.2.1: the server is overloaded or down for maintenance, or failed itself
    // (whatever the status it sends them with), which passes; nothing of the request was refused.
    if let Some(e) = oauth.as_ref().filter(|e| matches!(e.error.as_str(), "temporarily_unavailable" | "server_error")) {
        return Err(Error::Network {
            service: endpoint.service(),
            url: crate::http::redact_url(url),
            reason: format!("it answered `{}` (HTTP {status}), a fault on its side; try again later", e.error),
        });
    }
    let (error, description) = match &oauth {
        Some(e) => {
            let description = e.error_description.as_deref().map(|d| scrub(d, secrets)).filter(|d| !d.is_empty());
            (scrub(&e.error, secrets), description)
        }
        None => (format!("HTTP {status}"), None),
    };
    // A refused client is named with the settings that fix it, whatever the server said.
    let client = oauth.as_ref().is_some_and(|e| e.error == "invalid_client");
    let with =
        |description: Option<String>, fix: &str| Some(description.map_or(fix.to_owned(), |d| format!("{d}; {fix}")));
    if endpoint == Endpoint::Exchange {
        let (error, description) = match (&oauth, client) {
            (_, true) => (error, with(description, "check `client_id` and `client_secret`")),
            (Some(e), false) => {
                let fix = match (e.error.as_str(), status) {
                    (_, 401 | 403) => "check `client_id` and `client_secret`",
                    ("unsupported_grant_type", _) => {
                        "check `token_exchange_url`: the identity domain's token endpoint, not the identity provider's"
                    }
                    ("unauthorized_client", _) => {
                        "the identity domain application of `client_id` must allow the token exchange grant"
                    }
                    ("invalid_grant", _) => "check that the identity domain trusts these tokens (its token exchange trust: issuer, audience)",
                    _ => "check `token_exchange_url`, `client_id` and the identity domain's token exchange trust",
                };
                (error, with(description, fix))
            }
            (None, false) => {
                let fix = match status {
                    401 | 403 => "check `client_id` and `client_secret`",
                    _ => "check `token_exchange_url`",
                };
                ("no OAuth error in the answer".to_owned(), Some(fix.to_owned()))
            }
        };
        return Err(Error::ExchangeRejected { status, error, description });
    }
    if client {
        let description = with(description, "check `auth_client_id` and `auth_client_secret`");
        return Err(Error::IdpRejected { what: "client", error, description });
    }
    // A bare 401/403 judged no grant: the client's credentials (or a gateway) were refused.
    if oauth.is_none() && matches!(status, 401 | 403) && matches!(endpoint, Endpoint::Idp { .. }) {
        let description = "the token endpoint answered without an OAuth error; check `auth_client_id`, \
                           `auth_client_secret` and `token_url`";
        return Err(Error::IdpRejected { what: "client", error, description: Some(description.into()) });
    }
    // Refusals of the request or the client, not of what it presented: named so, with the fix.
    let token_endpoint = matches!(endpoint, Endpoint::Idp { .. });
    let (what, fix) = match oauth.as_ref().map(|e| e.error.as_str()).filter(|_| token_endpoint) {
        Some("unauthorized_client") => {
            ("client", Some("the identity provider's application of `auth_client_id` must allow this grant"))
        }
        Some("invalid_scope") => ("scope", Some("check `scope`")),
        Some("unsupported_grant_type") => ("request", Some("check `token_url`")),
        Some("invalid_request") => ("request", Some("check `token_url`, `auth_client_id` and `auth_client_secret`")),
        None if token_endpoint && oauth.is_none() => ("request", None),
        _ => (what, None),
    };
    if let Some(fix) = fix {
        return Err(Error::IdpRejected { what, error, description: with(description, fix) });
    }
    // Said when the IdP gives no description of its own.
    let hint = match oauth.as_ref().map(|e| e.error.as_str()) {
        Some("invalid_grant") if what == "refresh token" => Some("the refresh token is expired or revoked; log in again"),
        Some(_) => None,
        None if endpoint == Endpoint::DeviceAuthorization => Some("the device authorization endpoint answered without an OAuth error; check `device_authorization_url` and that the client may use the device flow"),
        None => Some("the token endpoint answered without an OAuth error; check `token_url`"),
    };
    Err(Error::IdpRejected { what, error, description: description.or_else(|| hint.map(Into::into)) })
}

/// Makes server-provided text fit for a one-line error: removes any secret we sent, cuts it to 300
/// characters, and escapes what a terminal would act on ([`crate::terminal::safe`], the one rule
/// for that).
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut s = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        s = s.replace(secret, "[redacted]");
    }
    let s = s.trim();
    if s.chars().count() > 300 {
        let cut: String = s.chars().take(300).collect();
        format!("{}…", crate::terminal::safe(&cut))
    } else {
        crate::terminal::safe(s).into_owned()
    }
}

/// Parses a 2xx JSON body, or names the endpoint and what was wrong (never quoting the body).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(endpoint: Endpoint, answer: &Answer) -> Result<T> {
    serde_json::from_slice(answer.json()).map_err(|e| Error::Protocol {
        service: endpoint.service(),
        reason: match endpoint {
            Endpoint::Idp { .. } => format!(
                "the token endpoint answered HTTP {} with {}, not a token response; check `token_url`",
                answer.status,
                body_kind(answer, &e)
            ),
            Endpoint::Exchange => format!(
                "it answered HTTP {} with {}, not a token; check `token_exchange_url`",
                answer.status,
                body_kind(answer, &e)
            ),
            Endpoint::DeviceAuthorization => {
                "the device authorization answer lacks `device_code`, `user_code` or `verification_uri`".into()
            }
        },
    })
}

/// What a body that is not the expected JSON is, in words (never quoting it).
fn body_kind(answer: &Answer, e: &serde_json::Error) -> &'static str {
    match (answer.body.is_empty(), e.classify()) {
        (true, _) => "no body",
        // Well-formed JSON, but not a JSON object with fields of the expected types.
        (false, serde_json::error::Category::Data) => "JSON of another shape",
        _ => "a body that is not JSON",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fake::{options, FakeTransport};

    const SECRET: &str = "client-secret-XYZ";

    async fn run(endpoint: Endpoint, status: u16, body: String) -> Result<Answer> {
        let t = FakeTransport::new(move |_, _| Ok((status, body.clone())));
        let http = Http::with_transport(t, options());
        let secret = SecretString::from(SECRET);
        let client = Client { id: "app", secret: Some(&secret) };
        let url = Url::parse("https://idp.example/token").unwrap();
        let form = [("grant_type", "refresh_token"), ("refresh_token", "rt-SECRET-123"), ("client_id", "app")];
        post(&http, endpoint, &url, client, &form, Retry::Rotating { grace: std::time::Duration::ZERO }).await
    }

    #[tokio::test]
    async fn sends_form_and_basic_auth() {
        let t = FakeTransport::new(|_, _| Ok((200, "{}".into())));
        let http = Http::with_transport(t.clone(), options());
        let secret = SecretString::from(SECRET);
        let url = Url::parse("https://idp.example/token").unwrap();
        let form = [("grant_type", "x"), ("a b", "c+d/=")];
        post(&http, Endpoint::Exchange, &url, Client { id: "app", secret: Some(&secret) }, &form, Retry::Idempotent)
            .await
            .unwrap();
        let seen = &t.seen()[0];
        assert_eq!(seen.body, "grant_type=x&a+b=c%2Bd%2F%3D");
        let auth = seen.headers.get(AUTHORIZATION).unwrap();
        assert!(auth.is_sensitive());
        assert_eq!(auth.to_str().unwrap(), format!("Basic {}", STANDARD.encode(format!("app:{SECRET}"))));
    }

    /// A secret with characters form-urlencoding changes (`+ / =`): sent as given first; after
    /// `invalid_client`, once more form-urlencoded (RFC 6749 §2.3.1), which such servers decode.
    #[tokio::test]
    async fn a_refused_client_is_tried_once_more_with_rfc_6749_encoding() {
        let raw = format!("Basic {}", STANDARD.encode("app:q3Zk+7vT/0aY="));
        let encoded = format!("Basic {}", STANDARD.encode("app:q3Zk%2B7vT%2F0aY%3D"));
        let expected = encoded.clone();
        let t = FakeTransport::new(move |req, _| {
            let auth = req.headers.get(AUTHORIZATION).unwrap().to_str().unwrap().to_owned();
            Ok(if auth == expected { (200, "{}".into()) } else { (401, r#"{"error":"invalid_client"}"#.into()) })
        });
        let http = Http::with_transport(t.clone(), options());
        let secret = SecretString::from("q3Zk+7vT/0aY=");
        let url = Url::parse("https://idp.example/token").unwrap();
        for endpoint in [Endpoint::Exchange, Endpoint::Idp { what: "refresh token" }] {
            post(&http, endpoint, &url, Client { id: "app", secret: Some(&secret) }, &[], Retry::Idempotent)
                .await
                .unwrap();
        }
        let sent: Vec<String> =
            t.seen().iter().map(|r| r.headers.get(AUTHORIZATION).unwrap().to_str().unwrap().to_owned()).collect();
        assert_eq!(sent, [raw.clone(), encoded.clone(), raw, encoded]);
        // A secret that encoding leaves alone is sent once.
        let plain = SecretString::from("idcscs-0123_abc.def");
        let e =
            post(&http, Endpoint::Exchange, &url, Client { id: "app", secret: Some(&plain) }, &[], Retry::Idempotent)
                .await
                .unwrap_err();
        assert!(e.to_string().contains("invalid_client") && t.seen().len() == 5, "{e}");
    }

    /// An exchange answering without an OAuth error (a mistyped path's 404, a gateway's HTML 401)
    /// names the setting to fix; a 2xx body that is not the expected JSON says what it is and its
    /// real status, never quoting it; a byte order mark before the JSON is no reason to fail.
    #[tokio::test]
    async fn answers_without_oauth_errors_or_json_name_the_setting() {
        let e = run(Endpoint::Exchange, 404, "<html>not found</html>".into()).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "token exchange rejected (HTTP 404): no OAuth error in the answer (check `token_exchange_url`)"
        );
        let e = run(Endpoint::Exchange, 401, "<html>no</html>".into()).await.unwrap_err();
        assert!(e.to_string().ends_with("(check `client_id` and `client_secret`)"), "{e}");
        let idp = Endpoint::Idp { what: "refresh token" };
        for (status, body, says) in [
            (400, r#"{"error":"unauthorized_client"}"#, "rejected the client: unauthorized_client (the identity provider's application of `auth_client_id` must allow this grant)"),
            (400, r#"{"error":"invalid_scope","error_description":"bad"}"#, "rejected the scope: invalid_scope (bad; check `scope`)"),
            (404, "<html>", "rejected the request: HTTP 404 (the token endpoint answered without an OAuth error; check `token_url`)"),
        ] {
            let e = run(idp, status, body.into()).await.unwrap_err();
            assert!(e.to_string().ends_with(says) && !e.needs_login(), "{e}");
        }
        for (body, says) in [
            (
                r#"{"error":"unsupported_grant_type"}"#,
                "check `token_exchange_url`: the identity domain's token endpoint",
            ),
            (r#"{"error":"invalid_grant"}"#, "trusts these tokens"),
        ] {
            let e = run(Endpoint::Exchange, 400, body.into()).await.unwrap_err();
            assert!(e.to_string().contains(says), "{e}");
        }
        let e = run(Endpoint::Idp { what: "refresh token" }, 401, "nope".into()).await.unwrap_err();
        assert!(e.to_string().starts_with("identity provider rejected the client: HTTP 401"), "{e}");
        assert!(e.to_string().contains("check `auth_client_id`") && !e.needs_login(), "{e}");
        #[derive(Debug, serde::Deserialize)]
        struct Token {
            #[allow(dead_code)]
            token: Option<String>,
        }
        let idp = Endpoint::Idp { what: "refresh token" };
        for (endpoint, status, body, says) in [
            (idp, 204, "", "answered HTTP 204 with no body, not a token response; check `token_url`"),
            (idp, 200, "<html>", "answered HTTP 200 with a body that is not JSON"),
            (Endpoint::Exchange, 200, r#"{"token":12345}"#, "HTTP 200 with JSON of another shape, not a token"),
            (Endpoint::Exchange, 202, "[[[1]]]", "HTTP 202 with JSON of another shape"),
        ] {
            let answer = Answer { status, body: Zeroizing::new(body.as_bytes().to_vec()) };
            let e = parse_json::<Token>(endpoint, &answer).unwrap_err();
            assert!(e.to_string().contains(says) && !e.to_string().contains(body.get(1..).unwrap_or("x")), "{e}");
        }
        let bom = Answer { status: 200, body: Zeroizing::new(b"\xEF\xBB\xBF{\"token\":\"t\"}".to_vec()) };
        assert!(parse_json::<Token>(Endpoint::Exchange, &bom).is_ok());
    }

    /// A rate limit (429) or `temporarily_unavailable` passes: a network-class failure (exit 6),
    /// retried, never a rejection of the refresh token or the client.
    #[tokio::test]
    async fn a_rate_limit_is_a_passing_failure_not_a_rejection() {
        let idp = Endpoint::Idp { what: "refresh token" };
        let e = run(idp, 429, r#"{"error":"server_error"}"#.into()).await.unwrap_err();
        assert!(e.is_transient() && e.to_string().contains("HTTP 429 (too many requests)"), "{e}");
        assert!(e.to_string().contains("is limiting requests (try again later) at"), "{e}");
        let e = run(Endpoint::Exchange, 400, r#"{"error":"temporarily_unavailable"}"#.into()).await.unwrap_err();
        assert!(e.is_transient() && e.exit_code() == crate::error::exit::NETWORK, "{e}");
        // The server's own failure, with a 4xx: not a refusal of the refresh token either.
        let e = run(idp, 400, r#"{"error":"server_error","error_description":"db down"}"#.into()).await.unwrap_err();
        assert!(e.is_transient() && e.exit_code() == crate::error::exit::NETWORK, "{e}");
        assert!(!e.to_string().contains("rejected") && e.to_string().contains("try again later"), "{e}");
    }

    #[tokio::test]
    async fn rejections_are_classified_per_endpoint() {
        let idp = Endpoint::Idp { what: "refresh token" };
        let e = run(idp, 400, r#"{"error":"invalid_grant"}"#.into()).await.unwrap_err();
        assert!(e.needs_login(), "{e}");
        assert!(e.to_string().contains("expired or revoked"), "{e}");
        let e = run(idp, 401, r#"{"error":"invalid_client"}"#.into()).await.unwrap_err();
        assert!(!e.needs_login());
        assert!(e.to_string().contains("auth_client_secret"), "{e}");
        // The client is named as what was refused, and the settings even beside the IdP's words.
        let e = run(idp, 401, r#"{"error":"invalid_client","error_description":"bad auth"}"#.into()).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "identity provider rejected the client: invalid_client (bad auth; check `auth_client_id` and `auth_client_secret`)"
        );
        let e = run(Endpoint::Exchange, 401, r#"{"error":"invalid_client"}"#.into()).await.unwrap_err();
        assert!(e.to_string().contains("check `client_id` and `client_secret`"), "{e}");
        let e = run(Endpoint::Exchange, 400, r#"{"error":"invalid_request"}"#.into()).await.unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::EXCHANGE_REJECTED);
        let e = run(idp, 302, String::new()).await.unwrap_err();
        assert!(matches!(e, Error::Protocol { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn no_sent_secret_survives_in_an_error() {
        let basic = STANDARD.encode(format!("app:{SECRET}"));
        let echo = format!(
            r#"{{"error":"invalid_request","error_description":"got Basic {basic} secret {SECRET} rt rt-SECRET-123"}}"#
        );
        for endpoint in [Endpoint::Idp { what: "refresh token" }, Endpoint::Exchange] {
            let e = run(endpoint, 400, echo.clone()).await.unwrap_err();
            let shown = format!("{e} {e:?}");
            for s in [basic.as_str(), SECRET, "rt-SECRET-123"] {
                assert!(!shown.contains(s), "{shown}");
            }
        }
    }

    #[test]
    fn scrub_cuts_and_cleans() {
        assert_eq!(scrub("a\nb secret1234\n", &["secret1234"]), "a\\nb [redacted]");
        assert_eq!(scrub("\u{1b}[2J\u{202e}x\u{9b}", &[]), "\\x1b[2J\\u{202e}x\\x9b", "the terminal rule");
        assert_eq!(scrub(&"x".repeat(400), &[]).chars().count(), 301);
    }
}
