//! What the detached daemon is told: the invocation's woci options and `oci` view as the parent
//! parsed them, handed over through the daemon's stdin as JSON. Never on its command line, where
//! `ps` would show client secrets; the daemon builds its settings from it as any call does.

use crate::cli::{Command, Invocation, OciView, WociOptions};
use crate::error::{Error, Result};
use crate::settings::{Settings, DEFAULT_AUTO_WINDOW};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// Largest spec the daemon reads.
const MAX_SPEC: u64 = 1024 * 1024;

/// See the module doc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonSpec {
    /// woci's options (secrets included).
    pub options: WociOptions,
    /// What the `oci` arguments said (profile, config file, region, …).
    pub oci: OciView,
}

impl DaemonSpec {
    /// The spec for `woci … --daemon`. The daemon renews with the `--auto-refresh` safety window
    /// (600 s, capped at half a token's lifetime) unless the user chose one, so an IdP outage of a
    /// few minutes does not let the token lapse for the programs that rely on the daemon.
    pub fn for_invocation(inv: &Invocation, settings: &Settings) -> DaemonSpec {
        let mut options = inv.options.clone();
        if !settings.origins.contains_key("refresh_safety_window") && !settings.auto_refresh {
            options.refresh_safety_window = Some(DEFAULT_AUTO_WINDOW.as_secs());
        }
        DaemonSpec { options, oci: inv.oci.clone() }
    }

    /// Writes the spec (then the writer should be closed).
    pub fn write_to(&self, mut w: impl Write) -> Result<()> {
        let json = Zeroizing::new(serde_json::to_vec(self).map_err(|e| Error::Other(format!("daemon spec: {e}")))?);
        w.write_all(&json).map_err(|e| Error::Other(format!("cannot hand the settings to the daemon: {e}")))
    }

    /// Reads a spec written by [`Self::write_to`].
    pub fn read_from(r: impl Read) -> Result<DaemonSpec> {
        let mut buf = Zeroizing::new(Vec::new());
        r.take(MAX_SPEC)
            .read_to_end(&mut buf)
            .map_err(|e| Error::Other(format!("cannot read the daemon's settings from stdin: {e}")))?;
        serde_json::from_slice(&buf).map_err(|_| {
            Error::Config("`--daemon-run` is internal: the daemon reads its settings from `woci --daemon`".into())
        })
    }

    /// The daemon's invocation.
    pub fn invocation(self) -> Invocation {
        Invocation { options: self.options, oci: self.oci, command: Command::DaemonRun }
    }
}
