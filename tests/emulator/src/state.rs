//! Shared server state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rsa::RsaPublicKey;
use url::Url;

use crate::config::Config;
use crate::events::Recorder;
use crate::faults::Faults;
use crate::idp::IdpStore;
use crate::keys::SigningKeyPair;
use crate::objectstorage::ObjectStore;

pub struct State {
    pub cfg: Config,
    pub base_url: Url,
    /// `iss` of IdP tokens: the base URL without a trailing slash.
    pub issuer: String,
    pub idp_key: SigningKeyPair,
    pub oci_key: SigningKeyPair,
    pub idp: Mutex<IdpStore>,
    pub objects: Mutex<ObjectStore>,
    pub faults: Faults,
    pub recorder: Recorder,
    /// Keys of trusted external issuers, by issuer then kid.
    pub external_keys: tokio::sync::Mutex<HashMap<String, HashMap<String, RsaPublicKey>>>,
    part_delay_ms: AtomicU64,
    put_delay_ms: AtomicU64,
}

impl State {
    pub fn new(cfg: Config, base_url: Url, idp_key: SigningKeyPair, oci_key: SigningKeyPair) -> Self {
        let issuer = base_url.as_str().trim_end_matches('/').to_string();
        let part_delay_ms = AtomicU64::new(cfg.part_delay.as_millis() as u64);
        let put_delay_ms = AtomicU64::new(cfg.put_delay.as_millis() as u64);
        State {
            cfg,
            base_url,
            issuer,
            idp_key,
            oci_key,
            idp: Mutex::default(),
            objects: Mutex::default(),
            faults: Faults::default(),
            recorder: Recorder::default(),
            external_keys: tokio::sync::Mutex::default(),
            part_delay_ms,
            put_delay_ms,
        }
    }

    pub fn part_delay(&self) -> Duration {
        Duration::from_millis(self.part_delay_ms.load(Ordering::Relaxed))
    }

    pub fn put_delay(&self) -> Duration {
        Duration::from_millis(self.put_delay_ms.load(Ordering::Relaxed))
    }

    pub fn set_delays(&self, part: Option<Duration>, put: Option<Duration>) {
        if let Some(d) = part {
            self.part_delay_ms.store(d.as_millis() as u64, Ordering::Relaxed);
        }
        if let Some(d) = put {
            self.put_delay_ms.store(d.as_millis() as u64, Ordering::Relaxed);
        }
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
