//! The device authorization grant (RFC 8628) of the emulated IdP.
//!
//! - `POST /oauth2/v1/device_authorization` (client auth as at the token endpoint, `scope`) →
//!   `device_code`, `user_code`, `verification_uri`, `verification_uri_complete`, `expires_in`,
//!   `interval`;
//! - `GET /oauth2/v1/device?user_code=…` the verification page: with `DeviceConfig::auto_approve`
//!   it approves at once (`&decision=deny` denies); otherwise only the admin knob decides;
//! - the token endpoint's `urn:ietf:params:oauth:grant-type:device_code` grant answers
//!   `authorization_pending`, `slow_down` (polled faster than `interval`, which then grows by
//!   5 s, or forced by `DeviceConfig::slow_down`), `access_denied`, `expired_token`, or tokens.
//! - `DeviceConfig::answer` replaces fields of the authorization answer (hostile-IdP tests);
//! - admin: `POST /_emulator/device {"action":"approve"|"deny"|"expire","user_code"?}`.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use rand::Rng as _;
use serde_json::json;

use crate::events::{Endpoint, EventInfo};
use crate::req::Req;
use crate::respond::{annotate, oauth_error};
use crate::state::State;

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
pub const AUTHORIZATION_PATH: &str = "/oauth2/v1/device_authorization";
pub const VERIFY_PATH: &str = "/oauth2/v1/device";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pending,
    Approved,
    Denied,
}

struct Grant {
    user_code: String,
    client_id: String,
    scope: String,
    expires_ms: u64,
    status: Status,
    interval_ms: u64,
    last_poll_ms: Option<u64>,
    slow_downs_left: u32,
}

/// Pending device grants by device code.
#[derive(Default)]
pub struct DeviceStore {
    grants: HashMap<String, Grant>,
    /// Forced `slow_down` answers for grants created from now on.
    pub slow_down: u32,
}

/// What the admin knob does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
    Expire,
}

impl DeviceStore {
    /// A store whose grants first answer `slow_down` this many times.
    pub fn new(slow_down: u32) -> Self {
        DeviceStore { grants: HashMap::new(), slow_down }
    }

    /// Applies `d` to the pending grant with `user_code` (every pending grant when `None`);
    /// returns how many matched.
    pub fn decide(&mut self, user_code: Option<&str>, d: Decision) -> usize {
        let mut n = 0;
        for g in self.grants.values_mut() {
            if g.status != Status::Pending || user_code.is_some_and(|c| normalize(c) != g.user_code) {
                continue;
            }
            n += 1;
            match d {
                Decision::Approve => g.status = Status::Approved,
                Decision::Deny => g.status = Status::Denied,
                Decision::Expire => g.expires_ms = 0,
            }
        }
        n
    }

    /// User codes of pending grants.
    pub fn pending(&self) -> Vec<String> {
        self.grants.values().filter(|g| g.status == Status::Pending).map(|g| g.user_code.clone()).collect()
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// `WDJB-MJHT` style: uppercase, no vowels, a dash in the middle; input is compared without it.
fn normalize(code: &str) -> String {
    let c: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_uppercase();
    if c.len() == 8 {
        format!("{}-{}", &c[..4], &c[4..])
    } else {
        c
    }
}

fn user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut rng = rand::thread_rng();
    let s: String = (0..8).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    normalize(&s)
}

pub fn authorize(state: &State, req: &Req) -> Response {
    if req.method != Method::POST {
        return oauth_error(
            Endpoint::DeviceAuthorization,
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "POST required",
        );
    }
    let form = req.form();
    let client_id = match crate::idp::authenticate_client(state, req, &form) {
        Ok(id) => id,
        Err(mut r) => {
            if let Some(info) = r.extensions_mut().get_mut::<EventInfo>() {
                info.endpoint = Endpoint::DeviceAuthorization;
            }
            return r;
        }
    };
    let dc = crate::idp::random_token(32);
    let uc = user_code();
    let d = &state.cfg.device;
    let mut store = state.devices.lock().unwrap();
    let slow_downs_left = store.slow_down;
    store.grants.insert(
        dc.clone(),
        Grant {
            user_code: uc.clone(),
            client_id,
            scope: form.get("scope").cloned().unwrap_or_else(|| "openid".into()),
            expires_ms: now_ms() + d.code_ttl.as_millis() as u64,
            status: Status::Pending,
            interval_ms: d.interval.as_millis() as u64,
            last_poll_ms: None,
            slow_downs_left,
        },
    );
    drop(store);
    state.recorder.count(|s| s.device_authorizations += 1);
    let verify = format!("{}{VERIFY_PATH}", state.base);
    let mut body = json!({
        "device_code": dc,
        "user_code": uc,
        "verification_uri": verify,
        "verification_uri_complete": format!("{verify}?user_code={uc}"),
        "expires_in": d.code_ttl.as_secs(),
        "interval": d.interval.as_secs().max(1),
    });
    if let Some(fields) = body.as_object_mut() {
        fields.extend(d.answer.clone());
    }
    annotate(axum::Json(body).into_response(), EventInfo::new(Endpoint::DeviceAuthorization))
}

pub fn verify(state: &State, req: &Req) -> Response {
    let q = req.query();
    let page = |status: StatusCode, text: &str, reason: &str| {
        let mut info = EventInfo::new(Endpoint::DeviceVerify);
        info.reason = Some(reason.to_string());
        annotate(
            (status, Html(format!("<!doctype html><title>Device login</title><h1>{text}</h1>"))).into_response(),
            info,
        )
    };
    let Some(code) = q.get("user_code").filter(|c| !c.is_empty()) else {
        return page(StatusCode::OK, "Enter the code shown on your device", "form");
    };
    if !state.cfg.device.auto_approve {
        let known = state.devices.lock().unwrap().pending().contains(&normalize(code));
        return if known {
            page(StatusCode::OK, "Waiting for an administrator to decide", "pending")
        } else {
            page(StatusCode::BAD_REQUEST, "Unknown or used code", "unknown_code")
        };
    }
    let deny = q.get("decision").is_some_and(|d| d == "deny");
    let n = state.devices.lock().unwrap().decide(Some(code), if deny { Decision::Deny } else { Decision::Approve });
    match (n, deny) {
        (0, _) => page(StatusCode::BAD_REQUEST, "Unknown or used code", "unknown_code"),
        (_, true) => page(StatusCode::OK, "Access denied", "denied"),
        (_, false) => page(StatusCode::OK, "Device approved; return to your terminal", "approved"),
    }
}

fn token_error(code: &str, description: &str) -> Response {
    oauth_error(Endpoint::IdpToken, StatusCode::BAD_REQUEST, code, description)
}

/// The `device_code` grant at the token endpoint.
pub fn token_grant(state: &State, req: &Req, form: &HashMap<String, String>) -> Response {
    let client_id = match crate::idp::authenticate_client(state, req, form) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let dc = form.get("device_code").cloned().unwrap_or_default();
    let now = now_ms();
    let mut store = state.devices.lock().unwrap();
    let Some(g) = store.grants.get_mut(&dc) else { return token_error("invalid_grant", "unknown device code") };
    if g.client_id != client_id {
        return token_error("invalid_grant", "device code was issued to another client");
    }
    let too_fast = g.last_poll_ms.is_some_and(|last| now + 100 < last + g.interval_ms);
    g.last_poll_ms = Some(now);
    if g.expires_ms <= now {
        store.grants.remove(&dc);
        state.recorder.count(|s| s.device_polls_expired += 1);
        return token_error("expired_token", "the device code expired");
    }
    if g.slow_downs_left > 0 || too_fast {
        g.slow_downs_left = g.slow_downs_left.saturating_sub(1);
        g.interval_ms += 5000;
        state.recorder.count(|s| s.device_slow_downs += 1);
        return token_error("slow_down", "polling too fast");
    }
    match g.status {
        Status::Pending => {
            state.recorder.count(|s| s.device_polls_pending += 1);
            token_error("authorization_pending", "the user has not approved yet")
        }
        Status::Denied => {
            store.grants.remove(&dc);
            token_error("access_denied", "the user denied the request")
        }
        Status::Approved => {
            let g = store.grants.remove(&dc).expect("present");
            drop(store);
            let rt = g.scope.split_whitespace().any(|s| s == "offline_access").then(|| {
                let mut idp = state.idp.lock().unwrap();
                idp.issue_refresh_token_for(&state.cfg, &client_id, &state.cfg.username, &g.scope)
            });
            state.recorder.count(|s| s.device_grants += 1);
            crate::idp::token_response(state, &state.cfg.username, &client_id, &g.scope, rt, None)
        }
    }
}
