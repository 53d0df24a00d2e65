//! Fault injection per endpoint: latency, 5xx, malformed JSON, dropped connections,
//! forced `invalid_grant`, forced `access_denied`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::events::Endpoint;

/// What to do to a request instead of (or before) serving it normally.
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
    /// Close the connection without writing a response.
    DropConnection,
    /// Refresh-token grants fail with `400 {"error":"invalid_grant"}` (IdpToken only).
    InvalidGrant,
    /// `/authorize` redirects with `error=access_denied` (Authorize only).
    AccessDenied,
}

/// A fault for one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Added before the request is handled (applies while the fault is active).
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub action: FaultAction,
    /// How many requests the fault affects before it disappears; `None` = always.
    #[serde(default)]
    pub count: Option<u32>,
}

impl Fault {
    pub fn always(action: FaultAction) -> Self {
        Fault { latency_ms: 0, action, count: None }
    }

    pub fn times(action: FaultAction, count: u32) -> Self {
        Fault { latency_ms: 0, action, count: Some(count) }
    }

    pub fn latency(latency: Duration) -> Self {
        Fault { latency_ms: latency.as_millis() as u64, action: FaultAction::None, count: None }
    }
}

#[derive(Default)]
pub struct Faults {
    active: Mutex<HashMap<Endpoint, Fault>>,
}

impl Faults {
    pub fn set(&self, endpoint: Endpoint, fault: Fault) {
        self.active.lock().unwrap().insert(endpoint, fault);
    }

    pub fn clear(&self) {
        self.active.lock().unwrap().clear();
    }

    /// Takes one use of the endpoint's fault; sleeps for its latency. Returns the action to
    /// apply (never `None`-action: that is reported as `Option::None`).
    pub async fn take(&self, endpoint: Endpoint) -> Option<FaultAction> {
        let fault = {
            let mut active = self.active.lock().unwrap();
            let fault = active.get_mut(&endpoint)?;
            let taken = fault.clone();
            if let Some(n) = fault.count.as_mut() {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    active.remove(&endpoint);
                }
            }
            taken
        };
        if fault.count == Some(0) {
            return None;
        }
        if fault.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(fault.latency_ms)).await;
        }
        match fault.action {
            FaultAction::None => None,
            action => Some(action),
        }
    }
}
