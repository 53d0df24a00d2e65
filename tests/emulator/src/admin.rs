//! `/_emulator/...`: stats, events, faults and runtime settings over HTTP (for the binary and
//! the non-Rust e2e parts). Not recorded in the stats.
//!
//! - `GET /_emulator/stats` → [`Stats`](crate::Stats) JSON
//! - `GET /_emulator/events` → `[Event]` JSON
//! - `POST /_emulator/faults` `{"endpoint":"idp_token","fault":{"action":{"kind":"status","status":503},"count":2,"latency_ms":0}}`,
//!   or `{"clear":true}`; the other actions and `reply_delay_ms` are in [`crate::FaultAction`]
//! - `POST /_emulator/settings` `{"upst_ttl_ms":5000,"part_delay_ms":200,"put_delay_ms":0}`
//! - `POST /_emulator/revoke` revokes every refresh token
//! - `POST /_emulator/refresh-token` → `{"refresh_token": "..."}` (a new family)
//! - `POST /_emulator/device` `{"action":"approve"|"deny"|"expire","user_code"?:"WDJB-MJHT"}` →
//!   `{"matched": n}` (every pending device grant when `user_code` is absent)
//! - `GET /_emulator/device` → `{"pending": ["WDJB-MJHT", ...]}`

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::events::Endpoint;
use crate::faults::Fault;
use crate::req::Req;
use crate::state::State;

#[derive(Deserialize)]
struct FaultRequest {
    #[serde(default)]
    clear: bool,
    endpoint: Option<Endpoint>,
    fault: Option<Fault>,
}

#[derive(Deserialize)]
struct Settings {
    upst_ttl_ms: Option<u64>,
    part_delay_ms: Option<u64>,
    put_delay_ms: Option<u64>,
    /// Forced `slow_down` answers for device grants created from now on.
    device_slow_down: Option<u32>,
}

#[derive(Deserialize)]
struct DeviceRequest {
    action: String,
    user_code: Option<String>,
}

fn bad(msg: &str) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"error": msg}))).into_response()
}

pub async fn handle(state: &State, req: &Req) -> Response {
    use std::time::Duration;
    match (&req.method, req.path()) {
        (&Method::GET, "/_emulator/stats") => axum::Json(state.recorder.stats()).into_response(),
        (&Method::GET, "/_emulator/events") => axum::Json(state.recorder.events()).into_response(),
        (&Method::POST, "/_emulator/faults") => {
            let Ok(r) = serde_json::from_slice::<FaultRequest>(&req.body) else {
                return bad("expected {\"endpoint\":..,\"fault\":..} or {\"clear\":true}");
            };
            if r.clear {
                state.faults.clear();
            }
            match (r.endpoint, r.fault) {
                (Some(e), Some(f)) => state.faults.set(e, f),
                (None, None) if r.clear => {}
                _ => return bad("both endpoint and fault are required"),
            }
            axum::Json(json!({"ok": true})).into_response()
        }
        (&Method::POST, "/_emulator/settings") => {
            let Ok(s) = serde_json::from_slice::<Settings>(&req.body) else {
                return bad("expected {\"upst_ttl_ms\"?, \"part_delay_ms\"?, \"put_delay_ms\"?}");
            };
            if let Some(ms) = s.upst_ttl_ms {
                state.set_upst_ttl(Duration::from_millis(ms));
            }
            if let Some(ms) = s.part_delay_ms {
                state.set_part_delay(Duration::from_millis(ms));
            }
            if let Some(ms) = s.put_delay_ms {
                state.set_put_delay(Duration::from_millis(ms));
            }
            if let Some(n) = s.device_slow_down {
                state.devices.lock().unwrap().slow_down = n;
            }
            axum::Json(json!({"ok": true})).into_response()
        }
        (&Method::GET, "/_emulator/device") => {
            axum::Json(json!({"pending": state.devices.lock().unwrap().pending()})).into_response()
        }
        (&Method::POST, "/_emulator/device") => {
            use crate::device::Decision;
            let Ok(r) = serde_json::from_slice::<DeviceRequest>(&req.body) else {
                return bad("expected {\"action\":\"approve\"|\"deny\"|\"expire\",\"user_code\"?:..}");
            };
            let decision = match r.action.as_str() {
                "approve" => Decision::Approve,
                "deny" => Decision::Deny,
                "expire" => Decision::Expire,
                _ => return bad("action must be approve, deny or expire"),
            };
            let n = state.devices.lock().unwrap().decide(r.user_code.as_deref(), decision);
            axum::Json(json!({"matched": n})).into_response()
        }
        (&Method::POST, "/_emulator/revoke") => {
            state.idp.lock().unwrap().revoke_all();
            axum::Json(json!({"ok": true})).into_response()
        }
        (&Method::POST, "/_emulator/refresh-token") => {
            let rt = state.idp.lock().unwrap().issue_refresh_token(&state.cfg);
            axum::Json(json!({"refresh_token": rt})).into_response()
        }
        _ => (StatusCode::NOT_FOUND, axum::Json(Value::String("no such admin route".into()))).into_response(),
    }
}
