//! The GitHub Actions ID-token stand-in, audience-checked trust for external issuers in the token
//! exchange, and the device authorization grant.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::StatusCode;
use rsa::pkcs8::EncodePublicKey as _;
use serde_json::Value;

use crate::{Config, DeviceConfig, DeviceDecision, Emulator, TrustedIssuer};

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn public_key_b64() -> String {
    let (_, oci) = crate::keys::cached_pair();
    STANDARD.encode(oci.to_public_key().to_public_key_der().unwrap().as_bytes())
}

async fn exchange(e: &Emulator, subject: &str) -> (StatusCode, Value) {
    let resp = http()
        .post(e.exchange_url())
        .basic_auth(&e.config().exchange_client_id, Some(&e.config().exchange_client_secret))
        .form(&[
            ("grant_type", crate::exchange::GRANT_TYPE),
            ("requested_token_type", crate::exchange::UPST_TYPE),
            ("subject_token", subject),
            ("subject_token_type", "jwt"),
            ("public_key", &public_key_b64()),
        ])
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

async fn id_token(e: &Emulator, bearer: Option<&str>, audience: Option<&str>) -> reqwest::Response {
    let mut url = url::Url::parse(&e.actions_id_token_url()).unwrap();
    if let Some(a) = audience {
        url.query_pairs_mut().append_pair("audience", a);
    }
    let mut r = http().get(url);
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn actions_id_token_service_checks_the_bearer_and_mints_audience_bound_jwts() {
    let e = Emulator::start(Config::default()).await.unwrap();
    assert_eq!(id_token(&e, None, Some("a")).await.status(), 401);
    assert_eq!(id_token(&e, Some("wrong"), Some("a")).await.status(), 401);
    let resp = id_token(&e, Some(&e.actions_request_token()), Some("https://cloud.oracle.com")).await;
    assert_eq!(resp.status(), 200);
    let jwt = resp.json::<Value>().await.unwrap()["value"].as_str().unwrap().to_owned();
    let p = crate::jwt::Parsed::parse(&jwt).unwrap();
    assert_eq!(p.claims["sub"], "repo:acme/app:ref:refs/heads/main");
    assert_eq!(p.claims["aud"], "https://cloud.oracle.com");
    assert_eq!(p.claims["iss"], Value::String(e.actions_issuer()));
    // Verifiable with the key its JWKS serves.
    let jwks: Value = http()
        .get(format!("{}/_actions/.well-known/jwks", e.os_endpoint()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = crate::keys::from_jwk(&jwks["keys"][0]).unwrap();
    assert_eq!(jwks["keys"][0]["kid"].as_str(), p.kid());
    p.verify(&key).unwrap();
    assert_eq!(e.stats().actions_id_tokens, 1, "only issued tokens count");

    assert_eq!(exchange(&e, &jwt).await.0, 200, "the exchange trusts the stand-in for its audience");
    let wrong_aud = e.issue_actions_token("https://elsewhere", 60);
    let (status, body) = exchange(&e, &wrong_aud).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_grant")));
    assert!(body["error_description"].as_str().unwrap().contains("aud"), "{body}");
    let expired = e.issue_actions_token("https://cloud.oracle.com", -10);
    assert_eq!(exchange(&e, &expired).await.1["error"], "invalid_grant");
}

#[tokio::test]
async fn untrusted_actions_issuer_is_refused() {
    let mut cfg = Config::default();
    cfg.actions.trusted_audience = None;
    let e = Emulator::start(cfg).await.unwrap();
    let jwt = e.issue_actions_token("https://cloud.oracle.com", 60);
    let (status, body) = exchange(&e, &jwt).await;
    assert_eq!(status, 400);
    assert!(body["error_description"].as_str().unwrap().contains("not trusted"), "{body}");
}

#[tokio::test]
async fn external_issuer_audience_is_checked_against_its_jwks() {
    let idp = Emulator::start(Config::default()).await.unwrap();
    let trusted = |aud: &str| TrustedIssuer {
        issuer: idp.issuer(),
        jwks_url: Some(idp.jwks_url()),
        audience: Some(aud.into()),
        ..Default::default()
    };
    let domain = Emulator::start(Config { trusted_issuers: vec![trusted("woci-idp-client")], ..Config::default() })
        .await
        .unwrap();
    assert_eq!(exchange(&domain, &idp.issue_access_token()).await.0, 200, "aud array holds the client id");
    let strict =
        Emulator::start(Config { trusted_issuers: vec![trusted("urn:other")], ..Config::default() }).await.unwrap();
    assert_eq!(exchange(&strict, &idp.issue_access_token()).await.1["error"], "invalid_grant");
}

async fn device_start(e: &Emulator, scope: &str) -> Value {
    let resp = http()
        .post(e.device_authorization_url())
        .basic_auth(&e.config().idp_client_id, e.config().idp_client_secret.as_deref())
        .form(&[("client_id", e.config().idp_client_id.as_str()), ("scope", scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn poll(e: &Emulator, device_code: &str) -> Value {
    http()
        .post(e.token_url())
        .basic_auth(&e.config().idp_client_id, e.config().idp_client_secret.as_deref())
        .form(&[("grant_type", crate::device::GRANT_TYPE), ("device_code", device_code)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn fast_device() -> Config {
    Config { device: DeviceConfig { interval: Duration::ZERO, ..DeviceConfig::default() }, ..Config::default() }
}

#[tokio::test]
async fn device_grant_pending_then_approved_through_the_verification_page() {
    let e = Emulator::start(fast_device()).await.unwrap();
    let doc: Value = http().get(e.discovery_url()).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["device_authorization_endpoint"].as_str(), Some(e.device_authorization_url().as_str()));
    let d = device_start(&e, "openid offline_access").await;
    let dc = d["device_code"].as_str().unwrap();
    assert_eq!(poll(&e, dc).await["error"], "authorization_pending");
    let page = http().get(d["verification_uri_complete"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let tokens = poll(&e, dc).await;
    assert!(tokens["access_token"].is_string() && tokens["refresh_token"].is_string(), "{tokens}");
    assert_eq!(poll(&e, dc).await["error"], "invalid_grant", "a device code is redeemed once");
    let st = e.stats();
    assert_eq!((st.device_authorizations, st.device_grants, st.device_polls_pending), (1, 1, 1));
}

#[tokio::test]
async fn device_grant_admin_knobs_deny_expire_and_slow_down() {
    let e = Emulator::start(Config {
        device: DeviceConfig { interval: Duration::ZERO, auto_approve: false, slow_down: 1, ..DeviceConfig::default() },
        ..Config::default()
    })
    .await
    .unwrap();
    let d = device_start(&e, "openid").await;
    let dc = d["device_code"].as_str().unwrap();
    assert_eq!(poll(&e, dc).await["error"], "slow_down");
    // The interval grew by 5 s: polling again at once is too fast.
    assert_eq!(poll(&e, dc).await["error"], "slow_down");
    let uc = d["user_code"].as_str().unwrap();
    assert_eq!(e.device_pending(), [uc.to_owned()]);
    assert_eq!(e.device_decide(Some(&uc.replace('-', "").to_lowercase()), DeviceDecision::Deny), 1);

    let e = Emulator::start(Config {
        device: DeviceConfig { interval: Duration::ZERO, auto_approve: false, ..DeviceConfig::default() },
        ..Config::default()
    })
    .await
    .unwrap();
    let denied = device_start(&e, "openid").await;
    let expired = device_start(&e, "openid").await;
    let approved = device_start(&e, "openid").await;
    let decide = |action: &str, code: &Value| {
        let body = serde_json::json!({"action": action, "user_code": code["user_code"]});
        http().post(format!("{}/_emulator/device", e.os_endpoint())).json(&body).send()
    };
    decide("deny", &denied).await.unwrap();
    decide("expire", &expired).await.unwrap();
    decide("approve", &approved).await.unwrap();
    assert_eq!(poll(&e, denied["device_code"].as_str().unwrap()).await["error"], "access_denied");
    assert_eq!(poll(&e, expired["device_code"].as_str().unwrap()).await["error"], "expired_token");
    assert!(poll(&e, approved["device_code"].as_str().unwrap()).await["access_token"].is_string());
}
