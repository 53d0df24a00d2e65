//! Fault injection per endpoint: latency before or after the request is processed, 5xx,
//! malformed JSON, dropped or reset connections (before or after processing), an endless
//! chunked body, a reply dribbled one byte at a time, forced `invalid_grant`, forced
//! `access_denied`. Set from tests with [`crate::Emulator::set_fault`] or over the admin API
//! (`POST /_emulator/faults`, the JSON form of [`Fault`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::events::Endpoint;

/// What to do to a request instead of (or after a delay, before) serving it normally.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum FaultAction {
    /// Serve normally (use with `latency_ms` for a pure delay).
    #[default]
    None,
    /// Answer with this status and an OCI/OAuth-shaped JSON error body.
    Status { status: u16 },
    /// Answer `200` with a body that is not JSON.
    MalformedJson,
    /// Close the connection without writing a response (the request is not processed).
    DropConnection,
    /// Process the request (a refresh grant rotates the token), then close the connection
    /// without answering: the reply lost on the way back.
    DropReply,
    /// Reset the connection (TCP RST) without processing the request.
    Reset,
    /// Process the request, then reset the connection (TCP RST) instead of answering.
    ResetReply,
    /// Answer `200` with a chunked body that never ends (a hostile or broken server).
    EndlessBody,
    /// Process the request and send the reply one byte every `byte_interval_ms` (status line
    /// and headers included): a slow header.
    SlowReply { byte_interval_ms: u64 },
    /// Process the request (a refresh grant rotates the token), then answer with the JSON body's
    /// `access_token` replaced by an opaque one (an Okta org authorization server's kind).
    OpaqueAccessToken,
    /// Answer `400 {"error":"invalid_grant"}` (token endpoints).
    InvalidGrant,
    /// `/authorize` redirects back with `error=access_denied`.
    AccessDenied,
    /// Answer with this status and an OAuth error body carrying these words (a hostile or broken
    /// server: escape sequences, bidi overrides, secrets echoed back).
    OAuthError { status: u16, error: String, description: String },
}

/// A fault for one endpoint. Build with the constructors and refine with [`Fault::times`] /
/// [`Fault::with_latency`]:
/// `emu.set_fault(Endpoint::IdpToken, Fault::status(503).times(2))`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Added before the request is handled.
    #[serde(default)]
    pub latency_ms: u64,
    /// Added after the request was processed, before the reply is sent (a late answer).
    #[serde(default)]
    pub reply_delay_ms: u64,
    #[serde(default)]
    pub action: FaultAction,
    /// How many requests the fault affects before it disappears; `None` = every request.
    #[serde(default)]
    pub count: Option<u32>,
}

impl Fault {
    pub fn new(action: FaultAction) -> Self {
        Fault { latency_ms: 0, reply_delay_ms: 0, action, count: None }
    }

    /// Answer with `status` (OAuth error JSON on token endpoints, OCI error JSON elsewhere).
    pub fn status(status: u16) -> Self {
        Self::new(FaultAction::Status { status })
    }

    /// Serve normally after `latency`.
    pub fn latency(latency: Duration) -> Self {
        Self::new(FaultAction::None).with_latency(latency)
    }

    /// `200` with a body that is not JSON.
    pub fn malformed_json() -> Self {
        Self::new(FaultAction::MalformedJson)
    }

    /// Close the connection without a response.
    pub fn drop_connection() -> Self {
        Self::new(FaultAction::DropConnection)
    }

    /// Process the request, then close the connection without answering.
    pub fn drop_reply() -> Self {
        Self::new(FaultAction::DropReply)
    }

    pub fn opaque_access_token() -> Self {
        Self::new(FaultAction::OpaqueAccessToken)
    }

    /// Reset the connection without processing the request.
    pub fn reset() -> Self {
        Self::new(FaultAction::Reset)
    }

    /// Process the request, then reset the connection.
    pub fn reset_reply() -> Self {
        Self::new(FaultAction::ResetReply)
    }

    /// `200` with a chunked body that never ends.
    pub fn endless_body() -> Self {
        Self::new(FaultAction::EndlessBody)
    }

    /// Process the request, then send the reply one byte per `interval`.
    pub fn slow_reply(interval: Duration) -> Self {
        Self::new(FaultAction::SlowReply { byte_interval_ms: interval.as_millis().max(1) as u64 })
    }

    /// Process the request, then wait `delay` before answering.
    pub fn reply_delay(delay: Duration) -> Self {
        Self::new(FaultAction::None).with_reply_delay(delay)
    }

    /// `400 {"error":"invalid_grant"}`.
    pub fn invalid_grant() -> Self {
        Self::new(FaultAction::InvalidGrant)
    }

    /// `/authorize` answers `error=access_denied` to the redirect URI.
    pub fn access_denied() -> Self {
        Self::new(FaultAction::AccessDenied)
    }

    /// Only the next `n` requests are affected.
    pub fn times(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    /// Adds a delay between processing the request and answering.
    pub fn with_reply_delay(mut self, delay: Duration) -> Self {
        self.reply_delay_ms = delay.as_millis().min(u64::MAX as u128) as u64;
        self
    }

    /// Adds a delay before the action.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency_ms = latency.as_millis().min(u64::MAX as u128) as u64;
        self
    }
}

#[derive(Default)]
pub struct Faults {
    active: Mutex<HashMap<Endpoint, Fault>>,
}

impl Faults {
    pub fn set(&self, endpoint: Endpoint, fault: Fault) {
        let mut active = self.active.lock().unwrap();
        if fault.count == Some(0) {
            active.remove(&endpoint);
        } else {
            active.insert(endpoint, fault);
        }
    }

    pub fn clear(&self) {
        self.active.lock().unwrap().clear();
    }

    /// Takes one use of the endpoint's fault, if any (the caller applies latency and action).
    pub fn take(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut active = self.active.lock().unwrap();
        let fault = active.get_mut(&endpoint)?;
        let taken = fault.clone();
        if let Some(n) = fault.count.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                active.remove(&endpoint);
            }
        }
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_limits_the_fault() {
        let f = Faults::default();
        f.set(Endpoint::IdpToken, Fault::status(503).times(2));
        assert_eq!(f.take(Endpoint::IdpToken).unwrap().action, FaultAction::Status { status: 503 });
        assert!(f.take(Endpoint::Exchange).is_none());
        assert!(f.take(Endpoint::IdpToken).is_some());
        assert!(f.take(Endpoint::IdpToken).is_none());
        f.set(Endpoint::Exchange, Fault::drop_connection());
        for _ in 0..5 {
            assert!(f.take(Endpoint::Exchange).is_some());
        }
        f.clear();
        assert!(f.take(Endpoint::Exchange).is_none());
    }

    #[test]
    fn wire_faults_round_trip_through_the_admin_json() {
        for fault in [
            Fault::drop_reply(),
            Fault::reset(),
            Fault::reset_reply().times(1),
            Fault::endless_body(),
            Fault::slow_reply(Duration::from_millis(50)),
            Fault::reply_delay(Duration::from_secs(35)).with_latency(Duration::from_millis(10)),
        ] {
            let json = serde_json::to_string(&fault).unwrap();
            assert_eq!(serde_json::from_str::<Fault>(&json).unwrap(), fault, "{json}");
        }
        let parsed: Fault =
            serde_json::from_str(r#"{"action":{"kind":"slow_reply","byte_interval_ms":20},"reply_delay_ms":5}"#)
                .unwrap();
        assert_eq!(parsed.action, FaultAction::SlowReply { byte_interval_ms: 20 });
        assert_eq!((parsed.reply_delay_ms, parsed.latency_ms, parsed.count), (5, 0, None));
    }
}
