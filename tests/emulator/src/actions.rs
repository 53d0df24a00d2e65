//! A stand-in for the GitHub Actions OIDC ID-token service: `GET /_actions/idtoken?audience=…`
//! with `Authorization: Bearer <request token>` answers `{"value": "<RS256 JWT>"}`, whose `iss` is
//! [`issuer`], `sub` like `repo:acme/app:ref:refs/heads/main` and `aud` the requested audience.
//! Its keys are served at `/_actions/.well-known/jwks`; the token exchange trusts the issuer when
//! `ActionsConfig::trusted_audience` is set and the JWT's `aud` contains it.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::events::{Endpoint, EventInfo};
use crate::jwt;
use crate::req::{secret_eq, Req};
use crate::respond::annotate;
use crate::state::{now_secs, State};

/// Path of the ID-token endpoint.
pub const ID_TOKEN_PATH: &str = "/_actions/idtoken";
/// Path of its JWKS.
pub const JWKS_PATH: &str = "/_actions/.well-known/jwks";

/// `iss` of the JWTs: the base URL + `/_actions`.
pub fn issuer(state: &State) -> String {
    format!("{}/_actions", state.base)
}

/// The key id of the JWTs (the IdP key under its own name).
pub fn kid(state: &State) -> String {
    format!("actions_{}", state.idp_key.kid)
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut info = EventInfo::new(Endpoint::ActionsIdToken);
    info.reason = Some(message.to_string());
    annotate((status, axum::Json(json!({"message": message}))).into_response(), info)
}

/// A JWT as the service would mint it now, valid for `ttl_secs` (negative: already expired).
pub fn mint(state: &State, audience: &str, ttl_secs: i64) -> String {
    let now = now_secs();
    let a = &state.cfg.actions;
    let claims = json!({
        "iss": issuer(state),
        "sub": a.sub,
        "aud": audience,
        "repository": a.sub.trim_start_matches("repo:").split(':').next().unwrap_or(""),
        "ref": "refs/heads/main",
        "event_name": "push",
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now.min(now + ttl_secs),
        "nbf": now.min(now + ttl_secs),
        "exp": now + ttl_secs,
    });
    jwt::sign(&state.idp_key.private, &kid(state), &claims)
}

pub fn id_token(state: &State, req: &Req) -> Response {
    if req.method != Method::GET {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "GET required");
    }
    let ok = req
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .is_some_and(|t| secret_eq(t.trim(), &state.cfg.actions.request_token));
    if !ok {
        return refuse(StatusCode::UNAUTHORIZED, "bad or missing bearer token");
    }
    let q = req.query();
    // GitHub defaults the audience to the repository owner's URL.
    let owner = state.cfg.actions.sub.trim_start_matches("repo:").split('/').next().unwrap_or("").to_string();
    let audience =
        q.get("audience").filter(|a| !a.is_empty()).cloned().unwrap_or(format!("https://github.com/{owner}"));
    let token = mint(state, &audience, state.cfg.actions.token_ttl.as_secs() as i64);
    state.recorder.count(|s| s.actions_id_tokens += 1);
    let mut info = EventInfo::new(Endpoint::ActionsIdToken);
    info.reason = Some(format!("audience={audience}"));
    let mut resp = axum::Json(json!({"count": 1, "value": token})).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    annotate(resp, info)
}

pub fn jwks(state: &State) -> Response {
    let mut jwk = state.idp_key.jwk();
    jwk["kid"] = json!(kid(state));
    annotate(axum::Json(json!({"keys": [jwk]})).into_response(), EventInfo::new(Endpoint::ActionsIdToken))
}
