//! The identity-domain token exchange (OCI workload identity federation): an IdP JWT and a public
//! key in, a UPST bound to that key out.

use std::collections::HashMap;

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rsa::RsaPublicKey;
use serde_json::{json, Value};

use crate::config::TrustedIssuer;
use crate::events::{Endpoint, EventInfo};
use crate::jwt::Parsed;
use crate::keys;
use crate::req::{form_decode, secret_eq, Req};
use crate::respond::{annotate, oauth_error};
use crate::state::{now_secs, State};
use crate::upst;

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const UPST_TYPE: &str = "urn:oci:token-type:oci-upst";

fn err(status: StatusCode, code: &str, description: &str) -> Response {
    oauth_error(Endpoint::Exchange, status, code, description)
}

pub async fn handle(state: &State, req: &Req) -> Response {
    let resp = exchange(state, req).await;
    if resp.status().is_success() {
        state.recorder.count(|s| s.exchanges += 1);
    } else {
        state.recorder.count(|s| s.exchanges_rejected += 1);
    }
    resp
}

async fn exchange(state: &State, req: &Req) -> Response {
    if req.method != Method::POST {
        return err(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "POST required");
    }
    let cfg = &state.cfg;
    // client_secret_basic only, as the identity domain's confidential app is used by every SDK.
    let client_ok = req.basic_auth().is_some_and(|(id, secret)| {
        (id == cfg.exchange_client_id || form_decode(&id) == cfg.exchange_client_id)
            && (secret_eq(&secret, &cfg.exchange_client_secret)
                || secret_eq(&form_decode(&secret), &cfg.exchange_client_secret))
    });
    if !client_ok {
        let mut r = err(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed.");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        return r;
    }
    let form = req.form();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if field("grant_type") != GRANT_TYPE {
        return err(StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant_type must be token-exchange");
    }
    if field("requested_token_type") != UPST_TYPE {
        return err(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "requested_token_type must be urn:oci:token-type:oci-upst",
        );
    }
    if field("subject_token_type") != "jwt" {
        return err(StatusCode::BAD_REQUEST, "invalid_request", "subject_token_type must be jwt");
    }
    let bound_key = match keys::from_spki_b64(field("public_key")) {
        Ok(k) => k,
        Err(e) => return err(StatusCode::BAD_REQUEST, "invalid_request", &format!("Invalid public_key: {e}")),
    };
    let subject = match verify_subject(state, field("subject_token")).await {
        Ok(sub) => sub,
        Err(reason) => return err(StatusCode::BAD_REQUEST, "invalid_grant", &format!("Invalid JWT: {reason}")),
    };
    tracing::debug!(subject, "token exchange");
    let sess_exp = upst::format_sess_exp(now_secs() + cfg.session_max.as_secs() as i64);
    let token = upst::mint(
        &state.oci_key,
        &cfg.user_ocid,
        &cfg.tenancy_ocid,
        &upst::jwk_claim(&bound_key),
        state.upst_exp(),
        &sess_exp,
    );
    let mut info = EventInfo::new(Endpoint::Exchange);
    info.jti = upst::peek_jti(&token);
    let mut resp = axum::Json(json!({"token": token})).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    annotate(resp, info)
}

/// Verifies the subject JWT: RS256 under the emulator IdP's key or a trusted issuer's JWKS,
/// not expired, not before `nbf`. Returns its `sub`.
async fn verify_subject(state: &State, token: &str) -> Result<String, String> {
    let parsed = Parsed::parse(token).map_err(|e| format!("Unable to parse subject_token ({e})"))?;
    let iss = parsed.str_claim("iss").ok_or("no iss claim")?.to_string();
    let (key, audience) = if iss == state.issuer {
        (state.idp_key.public.clone(), None)
    } else if let (true, Some(aud)) = (iss == crate::actions::issuer(state), &state.cfg.actions.trusted_audience) {
        if parsed.kid() != Some(crate::actions::kid(state).as_str()) {
            return Err("no such key in the issuer's JWKS".into());
        }
        (state.idp_key.public.clone(), Some(aud.clone()))
    } else if let Some(trusted) = state.cfg.trusted_issuers.iter().find(|t| t.issuer == iss) {
        (external_key(state, trusted, parsed.kid()).await?, trusted.audience.clone())
    } else {
        return Err(format!("issuer `{iss}` is not trusted"));
    };
    parsed.verify(&key).map_err(|e| format!("signature verification failed ({e})"))?;
    if let Some(want) = audience {
        let ok = match parsed.claims.get("aud") {
            Some(Value::String(a)) => *a == want,
            Some(Value::Array(v)) => v.iter().any(|a| a.as_str() == Some(want.as_str())),
            _ => false,
        };
        if !ok {
            return Err(format!("aud does not contain `{want}`"));
        }
    }
    let now = now_secs();
    let exp = parsed.int_claim("exp").ok_or("no exp claim")?;
    if exp <= now {
        return Err("token expired".into());
    }
    if parsed.int_claim("nbf").is_some_and(|nbf| nbf > now + 60) {
        return Err("token not yet valid".into());
    }
    Ok(parsed.str_claim("sub").ok_or("no sub claim")?.to_string())
}

async fn external_key(state: &State, trusted: &TrustedIssuer, kid: Option<&str>) -> Result<RsaPublicKey, String> {
    let mut cache = state.external_keys.lock().await;
    let pick = |keys: &HashMap<String, RsaPublicKey>| -> Option<RsaPublicKey> {
        match kid {
            Some(kid) => keys.get(kid).cloned(),
            None if keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        }
    };
    if let Some(k) = cache.get(&trusted.issuer).and_then(pick) {
        return Ok(k);
    }
    let doc = match (&trusted.jwks, &trusted.jwks_url) {
        (Some(doc), _) => doc.clone(),
        (None, Some(url)) => fetch_jwks(url, trusted.ca_pem.as_deref()).await?,
        (None, None) => return Err(format!("no keys configured for issuer `{}`", trusted.issuer)),
    };
    let keys = parse_jwks(&doc);
    let found = pick(&keys);
    cache.insert(trusted.issuer.clone(), keys);
    found.ok_or_else(|| format!("no key `{}` in the issuer's JWKS", kid.unwrap_or("(none)")))
}

fn parse_jwks(doc: &Value) -> HashMap<String, RsaPublicKey> {
    let mut out = HashMap::new();
    for (i, jwk) in doc.get("keys").and_then(Value::as_array).into_iter().flatten().enumerate() {
        if jwk.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
            continue;
        }
        if let Ok(k) = keys::from_jwk(jwk) {
            let kid = jwk.get("kid").and_then(Value::as_str).map(String::from).unwrap_or_else(|| format!("#{i}"));
            out.insert(kid, k);
        }
    }
    out
}

async fn fetch_jwks(url: &url::Url, ca_pem: Option<&str>) -> Result<Value, String> {
    // No proxy: the JWKS is on 127.0.0.1 in tests, and this machine exports proxy variables.
    let mut builder = reqwest::Client::builder().no_proxy().timeout(std::time::Duration::from_secs(10));
    if let Some(pem) = ca_pem {
        let cert = reqwest::Certificate::from_pem(pem.as_bytes()).map_err(|e| format!("bad CA for JWKS: {e}"))?;
        builder = builder.add_root_certificate(cert);
    }
    let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
    let resp = client.get(url.clone()).send().await.map_err(|e| format!("cannot fetch JWKS {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("JWKS {url} answered HTTP {}", resp.status().as_u16()));
    }
    resp.json::<Value>().await.map_err(|e| format!("JWKS {url} is not JSON: {e}"))
}
