//! The OIDC identity provider: discovery, JWKS, `/authorize` (Authorization Code + PKCE S256,
//! exact redirect URI, `state` round-trip) and the token endpoint (`authorization_code`,
//! `refresh_token` with rotation and family revocation on reuse).

use std::collections::{HashMap, HashSet};

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::config::{Config, LoginMode};
use crate::events::{Endpoint, EventInfo};
use crate::jwt;
use crate::req::{form_decode, secret_eq, Req};
use crate::respond::{annotate, oauth_error};
use crate::state::{now_secs, State};

struct AuthCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    nonce: Option<String>,
    sub: String,
    expires: i64,
}

struct RefreshToken {
    family: u64,
    spent: bool,
    /// When it was spent and what replaced it (for the reuse grace).
    spent_at: Option<std::time::Instant>,
    successor: Option<String>,
    client_id: String,
    sub: String,
    scope: String,
    expires: i64,
}

/// Codes and refresh tokens. A *family* is every refresh token descending from one login.
#[derive(Default)]
pub struct IdpStore {
    codes: HashMap<String, AuthCode>,
    /// Redeemed codes and the family they started (a second redemption revokes it).
    redeemed: HashMap<String, u64>,
    refresh_tokens: HashMap<String, RefreshToken>,
    revoked: HashSet<u64>,
    next_family: u64,
}

pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

impl IdpStore {
    fn new_family(&mut self) -> u64 {
        self.next_family += 1;
        self.next_family
    }

    fn mint_refresh_token(&mut self, cfg: &Config, family: u64, client_id: &str, sub: &str, scope: &str) -> String {
        let rt = random_token(32);
        self.refresh_tokens.insert(
            rt.clone(),
            RefreshToken {
                family,
                spent: false,
                spent_at: None,
                successor: None,
                client_id: client_id.to_string(),
                sub: sub.to_string(),
                scope: scope.to_string(),
                expires: now_secs() + cfg.refresh_token_ttl.as_secs() as i64,
            },
        );
        rt
    }

    /// A refresh token starting a new family, for the configured user and IdP client.
    pub fn issue_refresh_token(&mut self, cfg: &Config) -> String {
        let family = self.new_family();
        self.mint_refresh_token(cfg, family, &cfg.idp_client_id, &cfg.username, "openid offline_access")
    }

    /// A refresh token starting a new family for `client_id` / `sub` (the device grant).
    pub fn issue_refresh_token_for(&mut self, cfg: &Config, client_id: &str, sub: &str, scope: &str) -> String {
        let family = self.new_family();
        self.mint_refresh_token(cfg, family, client_id, sub, scope)
    }

    pub fn revoke_all(&mut self) {
        let families: Vec<u64> = self.refresh_tokens.values().map(|r| r.family).collect();
        self.revoked.extend(families);
    }
}

pub fn discovery(state: &State) -> Response {
    let b = &state.base;
    let doc = json!({
        "issuer": state.issuer,
        "authorization_endpoint": format!("{b}/oauth2/v1/authorize"),
        "token_endpoint": format!("{b}/oauth2/v1/token"),
        "device_authorization_endpoint": format!("{b}{}", crate::device::AUTHORIZATION_PATH),
        "jwks_uri": format!("{b}/oauth2/v1/keys"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", crate::device::GRANT_TYPE],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": ["openid", "offline_access", "profile", "email"],
    });
    annotate(axum::Json(doc).into_response(), EventInfo::new(Endpoint::Discovery))
}

pub fn jwks(state: &State) -> Response {
    annotate(axum::Json(json!({"keys": [state.idp_key.jwk()]})).into_response(), EventInfo::new(Endpoint::Jwks))
}

/// An RS256 access token (JWT) as the token endpoint issues it.
pub fn access_token(state: &State, sub: &str, client_id: &str, scope: &str) -> String {
    let now = now_secs();
    let claims = json!({
        "iss": state.issuer,
        "sub": sub,
        "aud": [state.issuer.clone(), client_id.to_string()],
        "client_id": client_id,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + state.cfg.access_token_ttl.as_secs() as i64,
        "jti": uuid::Uuid::new_v4().to_string(),
        "token_type": "access_token",
    });
    jwt::sign(&state.idp_key.private, &state.idp_key.kid, &claims)
}

fn id_token(state: &State, sub: &str, client_id: &str, nonce: Option<&str>) -> String {
    let now = now_secs();
    let mut claims = json!({
        "iss": state.issuer,
        "sub": sub,
        "aud": client_id,
        "iat": now,
        "exp": now + state.cfg.access_token_ttl.as_secs() as i64,
    });
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    jwt::sign(&state.idp_key.private, &state.idp_key.kid, &claims)
}

// ---------------------------------------------------------------- /authorize

fn page(status: StatusCode, reason: &str, text: &str) -> Response {
    let mut info = EventInfo::new(Endpoint::Authorize);
    info.reason = Some(reason.to_string());
    let html = format!("<!doctype html><title>Login error</title><h1>{}</h1>", html_escape(text));
    annotate((status, Html(html)).into_response(), info)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn redirect(redirect_uri: &str, params: &[(&str, &str)], reason: Option<&str>) -> Response {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return page(StatusCode::BAD_REQUEST, "invalid_redirect_uri", "invalid redirect_uri"),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    let mut resp = StatusCode::FOUND.into_response();
    resp.headers_mut().insert(header::LOCATION, HeaderValue::from_str(url.as_str()).expect("URL is ASCII"));
    let mut info = EventInfo::new(Endpoint::Authorize);
    info.reason = reason.map(String::from);
    annotate(resp, info)
}

/// The authorization request, validated up to the point where errors may be redirected.
struct AuthzRequest {
    params: HashMap<String, String>,
    redirect_uri: String,
}

impl AuthzRequest {
    fn state_param(&self) -> Option<&str> {
        self.params.get("state").map(String::as_str)
    }

    fn error(&self, error: &str, description: &str) -> Response {
        let mut p = vec![("error", error), ("error_description", description)];
        if let Some(s) = self.state_param() {
            p.push(("state", s));
        }
        redirect(&self.redirect_uri, &p, Some(error))
    }
}

/// Client and redirect URI problems are shown to the user, never redirected (RFC 6749 §4.1.2.1).
fn validate_client(state: &State, params: HashMap<String, String>) -> Result<AuthzRequest, Response> {
    let client_id = params.get("client_id").map(String::as_str).unwrap_or("");
    if client_id != state.cfg.idp_client_id {
        return Err(page(StatusCode::BAD_REQUEST, "invalid_client", "unknown client_id"));
    }
    let redirect_uri = params.get("redirect_uri").cloned().unwrap_or_default();
    if !state.cfg.redirect_uri_allowed(&redirect_uri) {
        return Err(page(
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            "redirect_uri is not registered for this client",
        ));
    }
    Ok(AuthzRequest { params, redirect_uri })
}

fn validate_rest(a: &AuthzRequest) -> Result<(), Response> {
    if a.params.get("response_type").map(String::as_str) != Some("code") {
        return Err(a.error("unsupported_response_type", "only response_type=code is supported"));
    }
    let challenge = a.params.get("code_challenge").map(String::as_str).unwrap_or("");
    if challenge.len() < 43 || challenge.len() > 128 {
        return Err(a.error("invalid_request", "PKCE code_challenge is required"));
    }
    if a.params.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return Err(a.error("invalid_request", "code_challenge_method must be S256"));
    }
    Ok(())
}

fn issue_code(state: &State, a: &AuthzRequest) -> Response {
    let code = random_token(24);
    let p = &a.params;
    state.idp.lock().unwrap().codes.insert(
        code.clone(),
        AuthCode {
            client_id: state.cfg.idp_client_id.clone(),
            redirect_uri: a.redirect_uri.clone(),
            challenge: p.get("code_challenge").cloned().unwrap_or_default(),
            scope: p.get("scope").cloned().unwrap_or_default(),
            nonce: p.get("nonce").cloned(),
            sub: state.cfg.username.clone(),
            expires: now_secs() + state.cfg.auth_code_ttl.as_secs() as i64,
        },
    );
    let mut out = vec![("code", code.as_str())];
    if let Some(s) = a.state_param() {
        out.push(("state", s));
    }
    redirect(&a.redirect_uri, &out, None)
}

fn login_form(a: &AuthzRequest, message: Option<&str>) -> Response {
    let mut hidden = String::new();
    let mut keys: Vec<_> = a.params.keys().filter(|k| !matches!(k.as_str(), "username" | "password")).collect();
    keys.sort();
    for k in keys {
        hidden.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            html_escape(k),
            html_escape(&a.params[k])
        ));
    }
    let msg = message.map(|m| format!("<p class=\"error\">{}</p>", html_escape(m))).unwrap_or_default();
    let html = format!(
        "<!doctype html><title>woci emulator login</title><h1>Sign in</h1>{msg}\
         <form method=\"post\" action=\"/oauth2/v1/authorize/login\">\n{hidden}\
         <label>Username <input name=\"username\" autocomplete=\"username\"></label>\n\
         <label>Password <input name=\"password\" type=\"password\"></label>\n\
         <button type=\"submit\">Sign in</button></form>"
    );
    let mut info = EventInfo::new(Endpoint::Authorize);
    info.reason = message.map(|_| "login_failed".to_string());
    annotate(Html(html).into_response(), info)
}

pub fn authorize(state: &State, req: &Req) -> Response {
    let login_post = req.path() == "/oauth2/v1/authorize/login";
    let params = match (&req.method, login_post) {
        (&Method::GET, false) => req.query(),
        (&Method::POST, true) => req.form(),
        (&Method::POST, false) => req.form(),
        _ => return page(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "method not allowed"),
    };
    let a = match validate_client(state, params) {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(r) = validate_rest(&a) {
        return r;
    }
    if login_post {
        let user_ok = a.params.get("username").is_some_and(|u| u == &state.cfg.username);
        let pass_ok = a.params.get("password").is_some_and(|p| secret_eq(p, &state.cfg.password));
        if !(user_ok && pass_ok) {
            return login_form(&a, Some("wrong username or password"));
        }
        return issue_code(state, &a);
    }
    match state.cfg.login_mode {
        LoginMode::AutoApprove => issue_code(state, &a),
        LoginMode::LoginForm => login_form(&a, None),
    }
}

/// The `AccessDenied` fault: the user declined.
pub fn access_denied(state: &State, req: &Req) -> Response {
    let params = if req.method == Method::GET { req.query() } else { req.form() };
    let mut resp = match validate_client(state, params) {
        Ok(a) => a.error("access_denied", "the user denied the request"),
        Err(r) => r,
    };
    if let Some(info) = resp.extensions_mut().get_mut::<EventInfo>() {
        info.fault = Some("AccessDenied".into());
    }
    resp
}

// ---------------------------------------------------------------- /token

fn invalid_client(description: &str) -> Response {
    let mut resp = oauth_error(Endpoint::IdpToken, StatusCode::UNAUTHORIZED, "invalid_client", description);
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"woci-emulator\""));
    resp
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(Endpoint::IdpToken, StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// client_secret_basic, client_secret_post, or a public client (`client_id` only) when the
/// configured client has no secret.
pub(crate) fn authenticate_client(
    state: &State,
    req: &Req,
    form: &HashMap<String, String>,
) -> Result<String, Response> {
    let cfg = &state.cfg;
    let (id, secret) = match req.basic_auth() {
        Some((id, secret)) => {
            let id = if id == cfg.idp_client_id { id } else { form_decode(&id) };
            let secret_ok = cfg
                .idp_client_secret
                .as_deref()
                .is_some_and(|s| secret_eq(&secret, s) || secret_eq(&form_decode(&secret), s));
            (id, Some(secret_ok))
        }
        None => {
            let id = form.get("client_id").cloned().unwrap_or_default();
            let secret_ok = form
                .get("client_secret")
                .map(|given| cfg.idp_client_secret.as_deref().is_some_and(|s| secret_eq(given, s)));
            (id, secret_ok)
        }
    };
    if id != cfg.idp_client_id {
        return Err(invalid_client("unknown client"));
    }
    if form.get("client_id").is_some_and(|fid| *fid != id) {
        return Err(invalid_client("client_id does not match the authenticated client"));
    }
    match (cfg.idp_client_secret.is_some(), secret) {
        (true, Some(true)) | (false, None) => Ok(id),
        (true, None) => Err(invalid_client("client authentication required")),
        (_, Some(false)) | (false, Some(true)) => Err(invalid_client("client authentication failed")),
    }
}

pub(crate) fn token_response(
    state: &State,
    sub: &str,
    client_id: &str,
    scope: &str,
    rt: Option<String>,
    nonce: Option<&str>,
) -> Response {
    let mut body = json!({
        "access_token": access_token(state, sub, client_id, scope),
        "token_type": "Bearer",
        "expires_in": state.cfg.access_token_ttl.as_secs(),
        "scope": scope,
    });
    if let Some(rt) = rt {
        body["refresh_token"] = json!(rt);
        // As Keycloak and others do; IdPs that omit it are covered by woci's unit tests.
        body["refresh_expires_in"] = json!(state.cfg.refresh_token_ttl.as_secs());
    }
    if scope.split_whitespace().any(|s| s == "openid") {
        body["id_token"] = json!(id_token(state, sub, client_id, nonce));
    }
    let mut resp = axum::Json(body).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    annotate(resp, EventInfo::new(Endpoint::IdpToken))
}

pub fn token(state: &State, req: &Req) -> Response {
    if req.method != Method::POST {
        return oauth_error(Endpoint::IdpToken, StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "POST required");
    }
    let form = req.form();
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    let resp = match grant {
        "authorization_code" => authorization_code(state, req, &form),
        "refresh_token" => refresh_grant(state, req, &form),
        crate::device::GRANT_TYPE => crate::device::token_grant(state, req, &form),
        "" => oauth_error(Endpoint::IdpToken, StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
        _ => {
            oauth_error(Endpoint::IdpToken, StatusCode::BAD_REQUEST, "unsupported_grant_type", "unsupported grant_type")
        }
    };
    let ok = resp.status().is_success();
    match grant {
        "authorization_code" if ok => state.recorder.count(|s| s.auth_code_grants += 1),
        "authorization_code" => state.recorder.count(|s| s.auth_code_grants_rejected += 1),
        "refresh_token" => state.recorder.count(|s| {
            s.refresh_grants += 1;
            if ok {
                s.refresh_grants_issued += 1;
            } else {
                s.refresh_grants_rejected += 1;
            }
        }),
        _ => {}
    }
    resp
}

fn authorization_code(state: &State, req: &Req, form: &HashMap<String, String>) -> Response {
    let client_id = match authenticate_client(state, req, form) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let code = form.get("code").cloned().unwrap_or_default();
    let mut idp = state.idp.lock().unwrap();
    if let Some(family) = idp.redeemed.get(&code).copied() {
        // A code presented twice: revoke what the first redemption issued (RFC 6749 §4.1.2).
        idp.revoked.insert(family);
        return invalid_grant("authorization code already used");
    }
    let Some(ac) = idp.codes.remove(&code) else {
        return invalid_grant("unknown authorization code");
    };
    if ac.expires <= now_secs() {
        return invalid_grant("authorization code expired");
    }
    if ac.client_id != client_id {
        return invalid_grant("authorization code was issued to another client");
    }
    if form.get("redirect_uri") != Some(&ac.redirect_uri) {
        return invalid_grant("redirect_uri does not match the authorization request");
    }
    let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
    let valid_chars = verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    if verifier.len() < 43 || verifier.len() > 128 || !valid_chars {
        return invalid_grant("code_verifier is missing or malformed");
    }
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != ac.challenge {
        return invalid_grant("PKCE verification failed");
    }
    let family = idp.new_family();
    idp.redeemed.insert(code, family);
    let rt = ac
        .scope
        .split_whitespace()
        .any(|s| s == "offline_access")
        .then(|| idp.mint_refresh_token(&state.cfg, family, &client_id, &ac.sub, &ac.scope));
    drop(idp);
    token_response(state, &ac.sub, &client_id, &ac.scope, rt, ac.nonce.as_deref())
}

fn refresh_grant(state: &State, req: &Req, form: &HashMap<String, String>) -> Response {
    let client_id = match authenticate_client(state, req, form) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    let mut idp = state.idp.lock().unwrap();
    let Some(rec) = idp.refresh_tokens.get(&presented) else {
        return invalid_grant("unknown refresh token");
    };
    let (family, spent, owner, sub, scope, expires) =
        (rec.family, rec.spent, rec.client_id.clone(), rec.sub.clone(), rec.scope.clone(), rec.expires);
    let within_grace = rec.spent_at.is_some_and(|t| t.elapsed() < state.cfg.refresh_reuse_grace);
    let successor = rec.successor.clone();
    if idp.revoked.contains(&family) {
        return invalid_grant("refresh token revoked");
    }
    if let (true, true, Some(successor)) = (spent, within_grace, successor) {
        // Within the reuse grace (as Okta's rotation grace period): the same successor again.
        drop(idp);
        return token_response(state, &sub, &client_id, &scope, Some(successor), None);
    }
    if spent {
        // Reuse of a rotated token: assume theft and revoke the whole family.
        idp.revoked.insert(family);
        return invalid_grant("refresh token already used; the session has been revoked");
    }
    if owner != client_id {
        return invalid_grant("refresh token was issued to another client");
    }
    if expires <= now_secs() {
        return invalid_grant("refresh token expired");
    }
    let rt = idp.mint_refresh_token(&state.cfg, family, &client_id, &sub, &scope);
    if let Some(rec) = idp.refresh_tokens.get_mut(&presented) {
        rec.spent = true;
        rec.spent_at = Some(std::time::Instant::now());
        rec.successor = Some(rt.clone());
    }
    drop(idp);
    token_response(state, &sub, &client_id, &scope, Some(rt), None)
}
