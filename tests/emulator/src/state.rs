//! Shared server state.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
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
    /// `http(s)://127.0.0.1:<port>` without a trailing slash.
    pub base: String,
    /// `iss` of IdP tokens (= `base`).
    pub issuer: String,
    pub idp_key: SigningKeyPair,
    pub oci_key: SigningKeyPair,
    pub idp: Mutex<IdpStore>,
    pub objects: Mutex<ObjectStore>,
    pub faults: Faults,
    pub recorder: Recorder,
    /// Keys of trusted external issuers, by issuer then kid.
    pub external_keys: tokio::sync::Mutex<HashMap<String, HashMap<String, RsaPublicKey>>>,
    /// Device authorization grants.
    pub devices: Mutex<crate::device::DeviceStore>,
    part_delay_ms: AtomicU64,
    put_delay_ms: AtomicU64,
    upst_ttl_ms: AtomicU64,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl State {
    pub fn new(cfg: Config, base_url: &Url, idp_key: SigningKeyPair, oci_key: SigningKeyPair) -> Self {
        let base = base_url.as_str().trim_end_matches('/').to_string();
        let devices = Mutex::new(crate::device::DeviceStore::new(cfg.device.slow_down));
        State {
            part_delay_ms: AtomicU64::new(ms(cfg.part_delay)),
            put_delay_ms: AtomicU64::new(ms(cfg.put_delay)),
            upst_ttl_ms: AtomicU64::new(ms(cfg.upst_ttl)),
            cfg,
            issuer: base.clone(),
            base,
            idp_key,
            oci_key,
            idp: Mutex::default(),
            objects: Mutex::default(),
            faults: Faults::default(),
            recorder: Recorder::default(),
            external_keys: tokio::sync::Mutex::default(),
            devices,
        }
    }

    pub fn part_delay(&self) -> Duration {
        Duration::from_millis(self.part_delay_ms.load(Ordering::Relaxed))
    }

    pub fn put_delay(&self) -> Duration {
        Duration::from_millis(self.put_delay_ms.load(Ordering::Relaxed))
    }

    pub fn upst_ttl(&self) -> Duration {
        Duration::from_millis(self.upst_ttl_ms.load(Ordering::Relaxed))
    }

    pub fn set_part_delay(&self, d: Duration) {
        self.part_delay_ms.store(ms(d), Ordering::Relaxed);
    }

    pub fn set_put_delay(&self, d: Duration) {
        self.put_delay_ms.store(ms(d), Ordering::Relaxed);
    }

    pub fn set_upst_ttl(&self, d: Duration) {
        self.upst_ttl_ms.store(ms(d), Ordering::Relaxed);
    }

    /// `exp` for a UPST minted now (whole seconds, at least one second ahead).
    pub fn upst_exp(&self) -> i64 {
        now_secs() + (self.upst_ttl().as_secs_f64().ceil() as i64).max(1)
    }
}

/// How far the servers' clock is ahead of this machine's (negative: behind), seconds: a client
/// whose clock is off, seen from the servers. Process-wide (the binary's `--clock-offset`), so
/// in-process emulators leave it alone.
static CLOCK_OFFSET: AtomicI64 = AtomicI64::new(0);

/// Sets the servers' clock `secs` ahead of this machine's (process-wide).
pub fn set_clock_offset(secs: i64) {
    CLOCK_OFFSET.store(secs, Ordering::Relaxed);
}

/// The servers' time: every token's `iat`/`exp` and every `date` check.
pub fn now() -> SystemTime {
    let offset = CLOCK_OFFSET.load(Ordering::Relaxed);
    let by = Duration::from_secs(offset.unsigned_abs());
    if offset >= 0 {
        SystemTime::now() + by
    } else {
        SystemTime::now() - by
    }
}

/// Seconds since the Unix epoch, by the servers' clock.
pub fn now_secs() -> i64 {
    now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
