//! OCI auth service `POST /v1/authentication/refresh` (`oci session refresh`): a request signed with
//! the current UPST, body `{"currentToken": ...}`, answered with a new UPST bound to the same
//! key until `sess_exp`, then 401.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::events::{Endpoint, EventInfo};
use crate::req::Req;
use crate::respond::{not_authenticated, oci_error, oci_json};
use crate::signature::{self, SignedRequest};
use crate::state::{now_secs, State};
use crate::upst;
use axum::response::Response;

pub fn refresh(state: &State, req: &Req) -> Response {
    let resp = handle(state, req);
    if resp.status().is_success() {
        state.recorder.count(|s| s.session_refreshes += 1);
    } else {
        state.recorder.count(|s| s.session_refreshes_rejected += 1);
    }
    resp
}

fn handle(state: &State, req: &Req) -> Response {
    const EP: Endpoint = Endpoint::SessionRefresh;
    if req.method != Method::POST {
        return oci_error(StatusCode::METHOD_NOT_ALLOWED, "NotAllowed", "POST required", EventInfo::new(EP));
    }
    let signed = SignedRequest { method: &req.method, target: req.target(), headers: &req.headers, body: &req.body };
    let current = match signature::verify(&signed, &state.oci_key, state.cfg.max_clock_skew, true) {
        Ok(u) => u,
        Err(rej) => return not_authenticated(EP, rej.reason, rej.jti),
    };
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(_) => {
            let mut info = EventInfo::new(EP);
            info.jti = Some(current.jti.clone());
            return oci_error(StatusCode::BAD_REQUEST, "InvalidParameter", "body is not JSON", info);
        }
    };
    let Some(presented) = body.get("currentToken").and_then(Value::as_str) else {
        let mut info = EventInfo::new(EP);
        info.jti = Some(current.jti.clone());
        return oci_error(StatusCode::BAD_REQUEST, "InvalidParameter", "currentToken is required", info);
    };
    if presented != current.token {
        return not_authenticated(EP, "current_token_mismatch", Some(current.jti));
    }
    let now = now_secs();
    if current.sess_exp <= now {
        return not_authenticated(EP, "session_expired", Some(current.jti));
    }
    let exp = state.upst_exp().min(current.sess_exp);
    let token =
        upst::mint(&state.oci_key, &current.sub, &current.tenant, &current.jwk_claim, exp, &current.sess_exp_str);
    let mut info = EventInfo::new(EP);
    info.jti = upst::peek_jti(&token);
    oci_json(StatusCode::OK, &json!({"token": token}), info)
}
