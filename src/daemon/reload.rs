//! The daemon's settings reload, without a restart: on SIGHUP, and when the manager INI's
//! modification time (or size) changes, the daemon resolves its settings again from its
//! [`DaemonSpec`] and the environment it started with, writes one log line naming each setting
//! that changed (secrets, command lines and sources only as "changed"), and hands the renewal
//! loop a renewer built from them; the loop takes it up between renewals. Its pid, lock and
//! session stay. Settings that do not resolve (a broken INI) are one log line, and the daemon
//! carries on with the ones it has. A manager INI that is missing is no change (an editor may be
//! between removing and writing it); SIGHUP still reloads.

use super::DaemonSpec;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::renew::Renewer;
use crate::settings::Settings;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How often the daemon looks at the manager INI's modification time.
pub(super) const INI_CHECK_EVERY: Duration = Duration::from_secs(2);

/// What says the file changed: its modification time and size.
type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: Option<&Path>) -> Stamp {
    let m = std::fs::metadata(path?).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// What a reload looks at and what it changes.
pub(super) struct Reloader {
    spec: DaemonSpec,
    ctx: Context,
    renewers: watch::Sender<Arc<Renewer>>,
    seen: Stamp,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Reloader {
    /// Takes the INI's current stamp and catches SIGHUP from now on (so that a SIGHUP no longer
    /// ends the daemon by its default action). `renewers` feeds the renewal loop.
    pub(super) fn install(spec: DaemonSpec, ctx: Context, renewers: watch::Sender<Arc<Renewer>>) -> Result<Reloader> {
        let seen = stamp(ctx.settings.ini_file.as_ref().map(|(p, _)| p.as_path()));
        Ok(Reloader {
            spec,
            ctx,
            renewers,
            seen,
            #[cfg(unix)]
            hup: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|e| Error::Other(format!("cannot handle SIGHUP: {e}")))?,
        })
    }

    /// The manager INI the current settings came from.
    fn ini(&self) -> Option<&Path> {
        self.ctx.settings.ini_file.as_ref().map(|(p, _)| p.as_path())
    }

    /// Reloads on each SIGHUP or INI change, forever (the daemon aborts it when it stops);
    /// `log` writes one daemon log line.
    pub(super) async fn run(mut self, log: impl Fn(&str)) {
        let mut tick = tokio::time::interval(INI_CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let why = tokio::select! {
                _ = self.hangup() => "SIGHUP".to_owned(),
                _ = tick.tick() => {
                    let now = stamp(self.ini());
                    if now.is_none() || now == self.seen {
                        continue;
                    }
                    let shown = self.ini().map(|p| p.display().to_string()).unwrap_or_default();
                    format!("`{shown}` changed")
                }
            };
            log(&self.reload(&why));
        }
    }

    #[cfg(unix)]
    async fn hangup(&mut self) {
        if self.hup.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    }

    #[cfg(not(unix))]
    async fn hangup(&mut self) {
        std::future::pending::<()>().await;
    }

    /// One reload; returns the log line.
    fn reload(&mut self, why: &str) -> String {
        // Whatever this reload reads is what the next look compares with.
        self.seen = stamp(self.ini());
        let new = match resolve(&self.spec, &self.ctx) {
            Ok(s) => s,
            Err(e) => return format!("settings not reloaded ({why}): {e}; keeping the current ones"),
        };
        let changed = crate::settings::changes(&self.ctx.settings, &new);
        if changed.is_empty() {
            return format!("settings reloaded ({why}): no setting changed");
        }
        match self.ctx.with_settings(new) {
            Ok(ctx) => {
                self.renewers.send_replace(Arc::new(Renewer::new(&ctx).without_login()));
                self.ctx = ctx;
                format!("settings reloaded ({why}): {}", changed.join(", "))
            }
            Err(e) => format!("settings not reloaded ({why}): {e}; keeping the current ones"),
        }
    }
}

/// The daemon's settings from its spec and environment, as at its start.
fn resolve(spec: &DaemonSpec, ctx: &Context) -> Result<Settings> {
    DaemonSpec::settings(Settings::resolve(&spec.flags, &spec.oci, &ctx.env, false)?)
}
