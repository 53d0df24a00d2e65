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

/// Catches SIGHUP from now on (so that a SIGHUP no longer ends the daemon by its default action)
/// and takes the manager INI's current stamp. The future reloads on each SIGHUP or INI change,
/// forever (the daemon aborts it when it stops), hands each new renewer to `renewers` (the
/// renewal loop takes it up), and writes one daemon log line per reload with `log`.
pub(super) fn install(
    spec: DaemonSpec,
    mut ctx: Context,
    renewers: watch::Sender<Arc<Renewer>>,
    log: impl Fn(&str) + Send + 'static,
) -> Result<impl std::future::Future<Output = ()> + Send> {
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| Error::Other(format!("cannot handle SIGHUP: {e}")))?;
    // The manager INI the current settings came from.
    let ini = |ctx: &Context| ctx.settings.ini_file.as_ref().map(|(p, _)| p.clone());
    let mut seen = stamp(ini(&ctx).as_deref());
    Ok(async move {
        let mut tick = tokio::time::interval(INI_CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let hangup = async {
                if hup.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            let why = tokio::select! {
                _ = hangup => "SIGHUP".to_owned(),
                _ = tick.tick() => {
                    let now = stamp(ini(&ctx).as_deref());
                    if now.is_none() || now == seen {
                        continue;
                    }
                    format!("`{}` changed", ini(&ctx).unwrap_or_default().display())
                }
            };
            // Whatever this reload reads is what the next look compares with.
            seen = stamp(ini(&ctx).as_deref());
            log(&reload(&spec, &mut ctx, &renewers, &why));
        }
    })
}

/// One reload; returns the log line.
fn reload(spec: &DaemonSpec, ctx: &mut Context, renewers: &watch::Sender<Arc<Renewer>>, why: &str) -> String {
    // The daemon's settings from its spec and environment, as at its start.
    let new = match Settings::resolve(&spec.flags, &spec.oci, &ctx.env, false).and_then(DaemonSpec::settings) {
        Ok(s) => s,
        Err(e) => return format!("settings not reloaded ({why}): {e}; keeping the current ones"),
    };
    // What a call would warn of (an unknown key and the one probably meant): the log is where a
    // reload is read.
    let warnings: String = new.warnings.iter().map(|w| format!("; warning: {w}")).collect();
    format!("{}{warnings}", take_up(ctx, renewers, new, why))
}

fn take_up(ctx: &mut Context, renewers: &watch::Sender<Arc<Renewer>>, new: Settings, why: &str) -> String {
    // An editor that truncates the INI before writing it, or a section renamed, would take the
    // profile's IdP settings away for good: a daemon changes how it renews only by a restart.
    let (was, is) = (ctx.settings.mode.renewal_name(), new.mode.renewal_name());
    if was != is {
        return format!(
            "settings not reloaded ({why}): they would change how profile `{}` renews ({was} → {is}: its section \
             gone, or a save in progress?); keeping the current ones; to change it, restart the daemon",
            new.profile
        );
    }
    let changed = crate::settings::changes(&ctx.settings, &new);
    if changed.is_empty() {
        return format!("settings reloaded ({why}): no setting changed");
    }
    match ctx.with_settings(new) {
        Ok(new_ctx) => {
            let renewer = Renewer::new(&new_ctx).without_login().carrying(&renewers.borrow());
            renewers.send_replace(Arc::new(renewer));
            *ctx = new_ctx;
            format!("settings reloaded ({why}): {}", changed.join(", "))
        }
        Err(e) => format!("settings not reloaded ({why}): {e}; keeping the current ones"),
    }
}
