//! What the detached daemon is told: the invocation's woci flags and `oci` view as the parent
//! parsed them, handed over through the daemon's stdin as JSON. Never on its command line, where
//! `ps` would show client secrets; the daemon builds its settings from it as any call does.

use crate::error::{Error, Result};
use crate::settings::{Flags, Key, OciView, Settings, DEFAULT_AUTO_WINDOW};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// The most the daemon reads from its stdin.
const MAX_SPEC: u64 = 1024 * 1024;

/// The daemon's view of the invocation that started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DaemonSpec {
    /// woci's flags.
    pub flags: Flags,
    /// What the `oci` arguments said (profile, config file, region, …).
    pub oci: OciView,
}

impl DaemonSpec {
    /// The spec for an invocation's `flags` and `oci` view. A daemon renews ahead of time like
    /// `--auto-refresh` does: without an explicit safety window it uses the auto-refresh default.
    pub(crate) fn new(flags: &Flags, oci: &OciView, settings: &Settings) -> DaemonSpec {
        let mut flags = flags.clone();
        if !settings.origins.contains_key("refresh_safety_window") && !settings.auto_refresh {
            flags.set(Key::RefreshSafetyWindow, DEFAULT_AUTO_WINDOW.as_secs().to_string());
        }
        DaemonSpec { flags, oci: oci.clone() }
    }

    /// Writes the spec (the daemon's stdin).
    pub(crate) fn write_to(&self, mut w: impl Write) -> Result<()> {
        let json = Zeroizing::new(serde_json::to_vec(self).map_err(|e| Error::Other(format!("daemon spec: {e}")))?);
        w.write_all(&json).map_err(|e| Error::Other(format!("cannot hand the settings to the daemon: {e}")))
    }

    /// Reads a spec (at most 1 MiB).
    pub(crate) fn read_from(r: impl Read) -> Result<DaemonSpec> {
        let mut buf = Zeroizing::new(Vec::new());
        r.take(MAX_SPEC)
            .read_to_end(&mut buf)
            .map_err(|e| Error::Other(format!("cannot read the daemon's settings from stdin: {e}")))?;
        serde_json::from_slice(&buf).map_err(|_| {
            Error::Config("`--daemon-run` is internal: the daemon reads its settings from `woci --daemon`".into())
        })
    }
}
