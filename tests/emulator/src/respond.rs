//! Response builders shared by the handlers: OAuth and OCI error shapes, fault responses.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::events::{Endpoint, EventInfo};
use crate::faults::FaultAction;

/// Marker extension: the server closes the connection instead of sending the response.
#[derive(Clone, Copy, Debug)]
pub struct DropConnection;

pub fn request_id() -> String {
    uuid::Uuid::new_v4().simple().to_string().to_uppercase()
}

/// Attaches the event annotation to a response.
pub fn annotate(mut resp: Response, info: EventInfo) -> Response {
    resp.extensions_mut().insert(info);
    resp
}

/// OAuth error JSON `{"error","error_description"}`.
pub fn oauth_error(endpoint: Endpoint, status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert("cache-control", HeaderValue::from_static("no-store"));
    let mut info = EventInfo::new(endpoint);
    info.reason = Some(error.to_string());
    annotate(resp, info)
}

/// OCI error JSON `{"code","message"}` with an `opc-request-id` header. `info.reason`
/// defaults to `code`.
pub fn oci_error(status: StatusCode, code: &str, message: &str, mut info: EventInfo) -> Response {
    let rid = request_id();
    let body = json!({"code": code, "message": message});
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert("opc-request-id", HeaderValue::from_str(&rid).expect("ascii"));
    if info.reason.is_none() {
        info.reason = Some(code.to_string());
    }
    annotate(resp, info)
}

/// Marks a response already produced by the handler with a fault that acts after processing:
/// dropped or reset replies go nowhere, slow replies are annotated only.
pub fn after_processing(mut resp: Response, endpoint: Endpoint, action: &FaultAction) -> Response {
    let mut info = resp.extensions().get::<EventInfo>().cloned().unwrap_or_else(|| EventInfo::new(endpoint));
    info.fault = Some(format!("{action:?}"));
    if matches!(action, FaultAction::DropReply | FaultAction::ResetReply) {
        resp.extensions_mut().insert(DropConnection);
    }
    annotate(resp, info)
}

/// The handler's JSON answer with `access_token` made opaque (not a JWT), the rest as it was.
pub async fn with_opaque_access_token(resp: Response, endpoint: Endpoint, action: &FaultAction) -> Response {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(at) = json.get_mut("access_token") {
        *at = serde_json::Value::from("00Dxx0000001gPL!opaque");
    }
    let mut resp = Response::from_parts(parts, axum::body::Body::from(json.to_string()));
    resp.headers_mut().remove("content-length");
    after_processing(resp, endpoint, action)
}

/// A body that never ends: 64 KiB chunks of JSON-looking text, forever.
struct Endless(bytes::Bytes);

impl hyper::body::Body for Endless {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(self.0.clone()))))
    }
}

/// Turns an injected fault into a response. `oauth` selects the OAuth error shape.
pub fn fault_response(endpoint: Endpoint, action: &FaultAction) -> Response {
    let oauth = matches!(endpoint, Endpoint::IdpToken | Endpoint::Exchange | Endpoint::Authorize);
    let mut info = EventInfo::new(endpoint);
    info.fault = Some(format!("{action:?}"));
    match action {
        FaultAction::Status { status } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut resp = if oauth {
                // The OAuth error a server gives with that status: `server_error` means the
                // server's own failure, whatever the status, so a 4xx says what it refuses.
                let error = match status.as_u16() {
                    401 | 403 => "invalid_client",
                    400..=499 => "invalid_request",
                    _ => "server_error",
                };
                oauth_error(endpoint, status, error, "injected fault")
            } else {
                oci_error(status, "InternalServerError", "injected fault", EventInfo::new(endpoint))
            };
            resp.extensions_mut().insert(info);
            resp
        }
        FaultAction::OAuthError { status, error, description } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST);
            let mut resp = oauth_error(endpoint, status, error, description);
            resp.extensions_mut().insert(info);
            resp
        }
        FaultAction::MalformedJson => {
            let mut resp = (StatusCode::OK, "{\"token\": <<not json").into_response();
            resp.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
            annotate(resp, info)
        }
        FaultAction::EndlessBody => {
            let body = axum::body::Body::new(Endless(bytes::Bytes::from(vec![b'a'; 64 * 1024])));
            let mut resp = Response::new(body);
            resp.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
            annotate(resp, info)
        }
        FaultAction::DropConnection | FaultAction::Reset => {
            let mut resp = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            resp.extensions_mut().insert(DropConnection);
            annotate(resp, info)
        }
        FaultAction::InvalidGrant => {
            let mut resp = oauth_error(
                endpoint,
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the grant is invalid (injected fault)",
            );
            resp.extensions_mut().insert(info);
            resp
        }
        // `/authorize` handles AccessDenied itself (it needs the redirect URI).
        FaultAction::None
        | FaultAction::AccessDenied
        | FaultAction::OpaqueAccessToken
        | FaultAction::DropReply
        | FaultAction::ResetReply
        | FaultAction::SlowReply { .. } => {
            oci_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "unexpected fault", info)
        }
    }
}

/// A JSON response with an `opc-request-id`, as OCI services answer.
pub fn oci_json(status: StatusCode, body: &serde_json::Value, info: EventInfo) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert("opc-request-id", HeaderValue::from_str(&request_id()).expect("ascii"));
    annotate(resp, info)
}

/// The 401 every OCI service answers for an unauthenticated request; `reason` goes to the
/// event record, not to the client.
pub fn not_authenticated(endpoint: Endpoint, reason: &str, jti: Option<String>) -> Response {
    let mut info = EventInfo::new(endpoint);
    info.reason = Some(reason.to_string());
    info.jti = jti;
    oci_error(
        StatusCode::UNAUTHORIZED,
        "NotAuthenticated",
        "The required information to complete authentication was not provided or was incorrect.",
        info,
    )
}
