//! Request log and counters that tests query (`Emulator::events`, `Emulator::stats`,
//! `GET /_emulator/events`, `GET /_emulator/stats`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Which emulated service a request was routed to. Also the key for fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `/.well-known/openid-configuration`
    Discovery,
    /// `/oauth2/v1/keys`
    Jwks,
    /// `/oauth2/v1/authorize` (+ `/login`)
    Authorize,
    /// `/oauth2/v1/token` with the `authorization_code` or `refresh_token` grant
    IdpToken,
    /// `/oauth2/v1/token` with the OCI token-exchange grant
    Exchange,
    /// `/v1/authentication/refresh`
    SessionRefresh,
    /// `/n/...`
    ObjectStorage,
    /// `/_emulator/...`
    Admin,
    /// anything else (404)
    Other,
}

/// One handled request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Event {
    /// 1-based sequence number.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when the response was produced.
    pub time_ms: u64,
    pub endpoint: Endpoint,
    pub method: String,
    /// Path as sent, without the query.
    pub path: String,
    /// Raw query string, if any.
    pub query: Option<String>,
    /// HTTP status; `0` when the connection was dropped by a fault.
    pub status: u16,
    /// For signed requests: `jti` of the UPST in the `keyId` (when it could be decoded).
    pub jti: Option<String>,
    /// Why a request was rejected (401 reasons, OAuth error codes, object storage codes).
    pub reason: Option<String>,
    /// Fault injected into this request, if any.
    pub fault: Option<String>,
}

/// Counters since start.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub auth_code_grants: u64,
    pub refresh_grants: u64,
    pub refresh_grants_rejected: u64,
    pub exchanges: u64,
    pub exchanges_rejected: u64,
    pub session_refreshes: u64,
    pub session_refreshes_rejected: u64,
    pub object_storage_requests: u64,
    pub parts_uploaded: u64,
    pub objects_committed: u64,
    /// Count of 401 responses by reason (`upst_expired`, `bad_signature`, ...).
    pub unauthorized_by_reason: BTreeMap<String, u64>,
    /// Count of injected faults by endpoint.
    pub faults_injected: BTreeMap<String, u64>,
}

/// Per-response annotation that handlers attach as a response extension; the recording
/// middleware turns it into an [`Event`].
#[derive(Clone, Debug)]
pub struct EventInfo {
    pub endpoint: Endpoint,
    pub jti: Option<String>,
    pub reason: Option<String>,
    pub fault: Option<String>,
}

impl EventInfo {
    pub fn new(endpoint: Endpoint) -> Self {
        EventInfo { endpoint, jti: None, reason: None, fault: None }
    }
}

#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<Event>>,
    stats: Mutex<Stats>,
}

impl Recorder {
    pub fn record(&self, mut event: Event) {
        event.time_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        {
            let mut stats = self.stats.lock().unwrap();
            stats.requests += 1;
            if event.endpoint == Endpoint::ObjectStorage {
                stats.object_storage_requests += 1;
            }
            if event.status == 401 {
                let reason = event.reason.clone().unwrap_or_else(|| "unknown".into());
                *stats.unauthorized_by_reason.entry(reason).or_default() += 1;
            }
            if event.fault.is_some() {
                let key = serde_json::to_value(event.endpoint).ok().and_then(|v| v.as_str().map(String::from));
                *stats.faults_injected.entry(key.unwrap_or_default()).or_default() += 1;
            }
        }
        let mut events = self.events.lock().unwrap();
        event.seq = events.len() as u64 + 1;
        events.push(event);
    }

    /// Applies `f` to the counters.
    pub fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap());
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap().clone()
    }
}
