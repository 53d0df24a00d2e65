//! What the detached daemon is told: the invocation's woci flags and `oci` view as the parent
//! parsed them, handed over through the daemon's stdin as JSON. Never on its command line, where
//! `ps` would show client secrets; the daemon builds its settings from it as any call does.

use crate::error::{Error, Result};
use crate::settings::{Flags, OciView, PassphraseSource, RenewMode, Settings, DEFAULT_AUTO_WINDOW};
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
    /// The daemon's settings from those its spec resolved to, at its start and at each reload. A
    /// daemon renews ahead of time like `--auto-refresh` does: unless a flag, variable or the INI
    /// sets the safety window, it uses the auto-refresh default (decided after resolution, so a
    /// window added to the INI later is seen by a reload). It cannot ask for a passphrase.
    pub(crate) fn settings(mut s: Settings) -> Result<Settings> {
        DaemonSpec::check_passphrase(&s)?;
        if !s.origins.contains_key("refresh_safety_window") && !s.auto_refresh {
            s.window = DEFAULT_AUTO_WINDOW;
        }
        s.renews_ahead = true;
        Ok(s)
    }

    /// Refuses settings that would make the daemon ask for the refresh token's passphrase.
    /// Also refuses a passphrase variable the daemon's environment lacks: it never gains one, so
    /// every renewal would fail (at a reload: the current settings stay).
    pub(crate) fn check_passphrase(s: &Settings) -> Result<()> {
        let RenewMode::Login(c) = &s.mode else { return Ok(()) };
        match &c.passphrase {
            PassphraseSource::Prompt => Err(Error::Config(format!(
                "the daemon cannot ask for the refresh token passphrase of profile `{}` ({} asks for it); use \
                 `--refresh-token-passphrase-env VAR` (or `refresh_token_passphrase_env` in the manager config) \
                 instead of the prompt",
                s.profile, c.passphrase_setting
            ))),
            PassphraseSource::Env { var, value: None } => Err(Error::Config(format!(
                "`{var}` (named by {}) {} in the daemon's environment, so no renewal of profile `{}` could \
                 open or seal the refresh token; start the daemon with it set (systemd: `EnvironmentFile=`)",
                c.passphrase_setting,
                crate::settings::unset(var),
                s.profile
            ))),
            _ => Ok(()),
        }
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
