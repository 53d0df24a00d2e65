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
    /// `/_actions/idtoken` and its JWKS (the GitHub Actions ID-token service stand-in)
    ActionsIdToken,
    /// `/oauth2/v1/device_authorization`
    DeviceAuthorization,
    /// `/oauth2/v1/device` (the verification page)
    DeviceVerify,
    /// `/oke/v1/tokenreviews`
    OkeTokenReview,
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
    /// Object Storage (and rejected session refreshes): `jti` of the UPST in the signature's
    /// `keyId`, when it could be decoded. Successful exchanges and session refreshes: `jti` of
    /// the UPST issued.
    pub jti: Option<String>,
    /// Why a request was rejected (401 reasons, OAuth error codes, object storage codes).
    pub reason: Option<String>,
    /// Fault injected into this request, if any.
    pub fault: Option<String>,
}

/// Counters since start. Requests to `/_emulator/...` are not counted.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Stats {
    /// Every request served (admin endpoints excepted), including faulted ones.
    pub requests: u64,
    /// Requests per endpoint (`idp_token`, `exchange`, `object_storage`, ...).
    pub requests_by_endpoint: BTreeMap<String, u64>,
    /// Authorization-code grants that issued tokens.
    pub auth_code_grants: u64,
    pub auth_code_grants_rejected: u64,
    /// Refresh-token grants the IdP answered itself: issued tokens or refused the grant
    /// (`invalid_grant`, `invalid_client`). Injected faults are not counted here; see
    /// [`Stats::refresh_grants_attempted`].
    pub refresh_grants: u64,
    /// Refresh-token grants that issued tokens.
    pub refresh_grants_issued: u64,
    /// Refresh-token grants refused (`invalid_grant`, `invalid_client`, ...).
    pub refresh_grants_rejected: u64,
    /// Every request to the token endpoint with `grant_type=refresh_token`, faults included.
    pub refresh_grant_requests: u64,
    /// Token exchanges that issued a UPST.
    pub exchanges: u64,
    pub exchanges_rejected: u64,
    /// Successful `/v1/authentication/refresh` calls.
    pub session_refreshes: u64,
    pub session_refreshes_rejected: u64,
    pub object_storage_requests: u64,
    /// Single-part `PutObject`s stored.
    pub objects_put: u64,
    /// `UploadPart`s stored.
    pub parts_uploaded: u64,
    /// `CommitMultipartUpload`s that assembled an object.
    pub objects_committed: u64,
    /// Distinct `jti`s of the UPSTs that signed accepted Object Storage requests, in order of
    /// first use.
    pub os_jtis: Vec<String>,
    /// OKE tokens the token review accepted.
    pub oke_tokens_accepted: u64,
    /// OKE tokens it rejected, by reason (`stale_date`, `upst_expired`, `bad_signature`, ...).
    pub oke_tokens_rejected: BTreeMap<String, u64>,
    /// All 401 responses.
    pub unauthorized: u64,
    /// 401 responses by reason (`upst_expired`, `bad_signature`, `stale_date`, ...).
    pub unauthorized_by_reason: BTreeMap<String, u64>,
    /// Injected faults by endpoint.
    pub faults_injected: BTreeMap<String, u64>,
    /// JWTs the GitHub Actions ID-token stand-in issued.
    #[serde(default)]
    pub actions_id_tokens: u64,
    /// Device authorization requests answered.
    #[serde(default)]
    pub device_authorizations: u64,
    /// Device-code grants that issued tokens.
    #[serde(default)]
    pub device_grants: u64,
    /// Polls answered `authorization_pending`.
    #[serde(default)]
    pub device_polls_pending: u64,
    /// Polls answered `slow_down`.
    #[serde(default)]
    pub device_slow_downs: u64,
    /// Polls answered `expired_token`.
    #[serde(default)]
    pub device_polls_expired: u64,
    /// TLS handshakes that failed (a client that does not trust the emulator's CA).
    #[serde(default)]
    pub tls_handshakes_failed: u64,
}

impl Stats {
    /// Requests with `grant_type=refresh_token`, including ones answered by an injected fault.
    pub fn refresh_grants_attempted(&self) -> u64 {
        self.refresh_grant_requests
    }

    /// 401s recorded with `reason`.
    pub fn unauthorized_for(&self, reason: &str) -> u64 {
        self.unauthorized_by_reason.get(reason).copied().unwrap_or(0)
    }
}

impl Endpoint {
    /// The snake_case name used in JSON and stats maps.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Discovery => "discovery",
            Endpoint::Jwks => "jwks",
            Endpoint::Authorize => "authorize",
            Endpoint::IdpToken => "idp_token",
            Endpoint::Exchange => "exchange",
            Endpoint::SessionRefresh => "session_refresh",
            Endpoint::ObjectStorage => "object_storage",
            Endpoint::ActionsIdToken => "actions_id_token",
            Endpoint::DeviceAuthorization => "device_authorization",
            Endpoint::DeviceVerify => "device_verify",
            Endpoint::OkeTokenReview => "oke_token_review",
            Endpoint::Admin => "admin",
            Endpoint::Other => "other",
        }
    }
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
            *stats.requests_by_endpoint.entry(event.endpoint.name().to_string()).or_default() += 1;
            if event.endpoint == Endpoint::ObjectStorage {
                stats.object_storage_requests += 1;
            }
            if event.status == 401 {
                stats.unauthorized += 1;
                let reason = event.reason.clone().unwrap_or_else(|| "unknown".into());
                *stats.unauthorized_by_reason.entry(reason).or_default() += 1;
            }
            if event.fault.is_some() {
                *stats.faults_injected.entry(event.endpoint.name().to_string()).or_default() += 1;
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

    /// Notes that `jti` signed an accepted Object Storage request.
    pub fn os_jti(&self, jti: &str) {
        let mut stats = self.stats.lock().unwrap();
        if !stats.os_jtis.iter().any(|j| j == jti) {
            stats.os_jtis.push(jti.to_string());
        }
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn stats(&self) -> Stats {
        self.stats.lock().unwrap().clone()
    }
}
