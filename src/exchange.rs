//! Identity-domain token exchange (OCI workload identity federation): an IdP access token (JWT)
//! becomes an OCI UPST bound to our public key.
//!
//! `POST <token_exchange_url>` with HTTP Basic `base64(client_id:client_secret)` and the form
//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
//! `requested_token_type=urn:oci:token-type:oci-upst`, `subject_token=<access token>`,
//! `subject_token_type=jwt`, `public_key=<std base64 DER SPKI>`; the UPST comes back in `token`.

use crate::error::{Error, Result};
use crate::http::{Http, Retry};
use crate::secret::SecretString;
use crate::token_endpoint::{self, Endpoint};
use serde::Deserialize;

const SERVICE: &str = "token exchange";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const REQUESTED_TOKEN_TYPE: &str = "urn:oci:token-type:oci-upst";

pub(crate) use crate::settings::ExchangeConfig;

/// Exchanges a JWT (an IdP access token, or a CI platform's OIDC token) for a UPST bound to
/// `public_key_b64` (base64 DER SPKI). The exchange rotates nothing, so it is retried like any
/// idempotent request.
pub(crate) async fn exchange(
    http: &Http,
    cfg: &ExchangeConfig,
    subject_token: &SecretString,
    public_key_b64: &str,
) -> Result<SecretString> {
    let form = [
        ("grant_type", GRANT_TYPE),
        ("requested_token_type", REQUESTED_TOKEN_TYPE),
        ("subject_token", subject_token.expose().as_str()),
        ("subject_token_type", "jwt"),
        ("public_key", public_key_b64),
    ];
    let client = token_endpoint::Client { id: &cfg.client_id, secret: Some(&cfg.client_secret) };
    let answer = token_endpoint::post(http, Endpoint::Exchange, &cfg.url, client, &form, Retry::Idempotent).await?;
    parse(&answer)
}

#[derive(Deserialize)]
struct ExchangeBody {
    token: Option<String>,
}

/// A 2xx answer must carry a UPST with `exp` in `token` (the body is never quoted).
fn parse(answer: &token_endpoint::Answer) -> Result<SecretString> {
    let parsed: ExchangeBody = token_endpoint::parse_json(Endpoint::Exchange, answer)?;
    let token = parsed.token.filter(|t| !t.is_empty()).ok_or_else(|| Error::Protocol {
        service: SERVICE,
        reason: format!("the response (HTTP {}) has no `token` field; check `token_exchange_url`", answer.status),
    })?;
    let token = SecretString::new(token);
    crate::jwt::decode_upst(token.expose()).map_err(|e| Error::Protocol {
        service: SERVICE,
        reason: format!("the returned token is {e}; a UPST with `exp` was expected"),
    })?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::HttpOptions;
    use crate::oidc::mock::{MockServer, Reply};
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    use serde_json::json;
    use std::time::Duration;

    const SECRET: &str = "exchange-client-secret-XYZ";
    const ACCESS: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.access-sig-QWERTY";
    const PUBKEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA+/x=";

    fn upst() -> String {
        let payload =
            URL_SAFE_NO_PAD.encode(br#"{"exp":1900000000,"sub":"ocid1.user.oc1..a","tenant":"ocid1.tenancy.oc1..t"}"#);
        format!("eyJhbGciOiJSUzI1NiJ9.{payload}.upst-sig")
    }

    fn http() -> Http {
        Http::new(HttpOptions { attempts: 3, backoff: Duration::from_millis(1), ..Default::default() }).unwrap()
    }

    fn cfg(server: &MockServer) -> ExchangeConfig {
        ExchangeConfig {
            url: server.url("/oauth2/v1/token"),
            client_id: "wif-app".into(),
            client_secret: SecretString::from(SECRET),
        }
    }

    async fn run(server: &MockServer) -> Result<SecretString> {
        exchange(&http(), &cfg(server), &SecretString::from(ACCESS), PUBKEY).await
    }

    #[tokio::test]
    async fn sends_the_exact_form_and_basic_auth() {
        let token = upst();
        let t = token.clone();
        let server = MockServer::start(move |_, _| Reply::json(200, json!({ "token": t }))).await;
        let got = run(&server).await.unwrap();
        assert_eq!(got.expose(), &token);
        let reqs = server.requests();
        assert_eq!(reqs.len(), 1);
        let r = &reqs[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/oauth2/v1/token");
        assert_eq!(r.header("content-type").as_deref(), Some("application/x-www-form-urlencoded"));
        let expected_auth = format!("Basic {}", STANDARD.encode(format!("wif-app:{SECRET}")));
        assert_eq!(r.header("authorization"), Some(expected_auth));
        assert_eq!(
            r.form(),
            vec![
                ("grant_type".to_owned(), GRANT_TYPE.to_owned()),
                ("requested_token_type".to_owned(), REQUESTED_TOKEN_TYPE.to_owned()),
                ("subject_token".to_owned(), ACCESS.to_owned()),
                ("subject_token_type".to_owned(), "jwt".to_owned()),
                ("public_key".to_owned(), PUBKEY.to_owned()),
            ]
        );
        // `+`, `/` and `=` of the standard base64 key are form-encoded on the wire.
        assert!(r.body.contains("public_key=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA%2B%2Fx%3D"), "{}", r.body);
    }

    #[tokio::test]
    async fn oauth_error_is_exchange_rejected() {
        let server = MockServer::start(|_, _| {
            Reply::json(400, json!({"error": "invalid_request", "error_description": "Invalid JWT"}))
        })
        .await;
        let err = run(&server).await.unwrap_err();
        match &err {
            Error::ExchangeRejected { status, error, description } => {
                assert_eq!(*status, 400);
                assert_eq!(error, "invalid_request");
                let d = description.as_deref().unwrap_or_default();
                assert!(d.starts_with("Invalid JWT; check `token_exchange_url`"), "{d}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(err.exit_code(), crate::error::exit::EXCHANGE_REJECTED);
        assert_eq!(server.requests().len(), 1, "4xx is not retried");
    }

    #[tokio::test]
    async fn non_json_4xx_is_summarized() {
        let server = MockServer::start(|_, _| Reply::text(401, "<html>denied</html>")).await;
        let err = run(&server).await.unwrap_err();
        assert!(
            matches!(&err, Error::ExchangeRejected { status: 401, description: Some(d), .. } if d.contains("client_secret")),
            "{err:?}"
        );
        assert!(!err.to_string().contains("denied"));
    }

    #[tokio::test]
    async fn retries_5xx_then_succeeds() {
        let token = upst();
        let server = MockServer::start(move |_, n| {
            if n == 0 {
                Reply::text(503, "busy")
            } else {
                Reply::json(200, json!({ "token": token.clone() }))
            }
        })
        .await;
        run(&server).await.unwrap();
        assert_eq!(server.requests().len(), 2);
    }

    #[tokio::test]
    async fn persistent_5xx_is_network_error() {
        let server = MockServer::start(|_, _| Reply::text(500, "oops")).await;
        let err = run(&server).await.unwrap_err();
        assert!(matches!(err, Error::Network { service: "token exchange", .. }), "{err:?}");
        assert_eq!(server.requests().len(), 3);
    }

    #[tokio::test]
    async fn missing_token_field_and_bad_token_are_protocol_errors() {
        let server = MockServer::start(|_, _| Reply::json(200, json!({"access_token": "x.y.z"}))).await;
        let err = run(&server).await.unwrap_err();
        assert!(matches!(&err, Error::Protocol { reason, .. } if reason.contains("`token`")), "{err:?}");

        let server = MockServer::start(|_, _| Reply::json(200, json!({"token": "opaque-token"}))).await;
        let err = run(&server).await.unwrap_err();
        assert!(matches!(&err, Error::Protocol { reason, .. } if reason.contains("UPST with `exp`")), "{err:?}");
        assert_eq!(err.to_string().matches("not a JWT").count(), 1, "said once: {err}");
        assert!(!err.to_string().contains("opaque-token"));

        let no_exp = format!("a.{}.c", URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#));
        let server = MockServer::start(move |_, _| Reply::json(200, json!({ "token": no_exp.clone() }))).await;
        assert!(matches!(run(&server).await.unwrap_err(), Error::Protocol { .. }));

        let server = MockServer::start(|_, _| Reply::text(200, "not json")).await;
        assert!(matches!(run(&server).await.unwrap_err(), Error::Protocol { .. }));
    }

    #[tokio::test]
    async fn no_secret_in_any_error() {
        let bodies: Vec<Reply> = vec![
            Reply::json(
                400,
                json!({"error": "invalid_client", "error_description": format!("bad secret {SECRET} for token {ACCESS}")}),
            ),
            Reply::text(400, &format!("echo {SECRET} {ACCESS}")),
            Reply::text(200, &format!("{{ broken {ACCESS}")),
            Reply::json(200, json!({ "token": format!("{SECRET}.{ACCESS}") })),
            Reply::text(500, SECRET),
        ];
        for reply in bodies {
            let server = MockServer::start(move |_, _| reply.clone()).await;
            let err = run(&server).await.unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(SECRET), "{shown}");
            assert!(!shown.contains(ACCESS), "{shown}");
            assert!(!shown.contains("access-sig-QWERTY"), "{shown}");
        }
    }
}
