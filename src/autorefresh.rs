//! `--auto-refresh` and `--exec`: run the child while the renewal loop ([`schedule`]) keeps the
//! UPST fresh, and — unless `--no-resign-proxy` — make the *running* child use each new token
//! through the local re-signing proxy ([`crate::proxy`]). `oci` reads the token file once at
//! start, so renewing the file alone only helps children that re-read it.

use crate::child::{self, ChildBuilder};
use crate::context::Context;
use crate::error::Result;
use crate::renew::facts::OciProfile;
use crate::renew::{schedule, Renewer, Session};
use crate::settings::RenewMode;
use std::sync::Arc;
use tokio::sync::watch;

/// Runs the child `builder` describes under renewal (and the proxy when the settings want it);
/// returns the child's exit code.
pub(crate) async fn run_supervised(
    ctx: &Context,
    renewer: Arc<Renewer>,
    session: Session,
    builder: ChildBuilder,
) -> Result<u8> {
    // A daemon, or the woci whose `--exec` runs this one, keeps the session fresh ahead of this
    // run: a passphrase variable this run lacks (that woci withholds it) then does no harm.
    let renewed_elsewhere = crate::proxy::child_env::under_a_woci_proxy(&ctx.env)
        || crate::daemon::inspect(&ctx.store).is_ok_and(|d| d.running());
    renewer.ready_for_run(renewed_elsewhere, false).await?;
    renewer.forbid_login();
    warn_if_session_ends_soon(ctx, &session);
    let (tx, rx) = watch::channel(session.token.clone());
    let proxy = if ctx.settings.resign_proxy {
        let key = OciProfile::read(&ctx.settings)?.1.signing_key(&ctx.settings, &ctx.store)?;
        warn_if_plain_http_endpoint(ctx.settings.endpoint.as_deref());
        Some(crate::proxy::start_for_profile(&ctx.settings, key.public().clone(), rx, ctx.server.clone()).await?)
    } else {
        None
    };
    // The Java trust store and options file live until this function returns, after the child.
    let mut java = None;
    let spec = match &proxy {
        Some(p) => p.exec_env(&ctx.env).and_then(|mut env| {
            for w in &env.warnings {
                tracing::warn!("{w}");
            }
            java = crate::proxy::java::prepare(p, &ctx.env, builder.args())?;
            env.set.extend(java.iter().map(crate::proxy::java::JavaFiles::env));
            builder.proxy(env).build()
        }),
        None => builder.build(),
    };
    // From here on a signal is the child's: woci forwards it and ends when the child does.
    crate::critical::supervise();
    let running = match spec.and_then(|spec| child::spawn(&spec)) {
        Ok(r) => r,
        Err(e) => {
            if let Some(p) = proxy {
                p.shutdown().await;
            }
            return Err(e);
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let renewal = tokio::spawn(async move {
        // (The daemon writes its own timestamped line for each event instead.)
        let warn = |event| {
            if let schedule::LoopEvent::Failed { error, retry_in, .. } = event {
                tracing::warn!("session renewal failed, retrying in {}s: {error}", retry_in.as_secs());
            }
        };
        let (mut stop_rx, mut session) = (stop_rx, session);
        loop {
            let Err(e) =
                schedule::renewal_loop(schedule::fixed(renewer.clone()), session, &tx, &mut stop_rx, warn).await
            else {
                return Ok(());
            };
            // The program goes on (its session may last), and so does this run: a login in
            // another terminal, or a call after the fix, renews the session for it.
            tracing::error!(
                "session renewal is not possible: {e}; the program goes on and takes up the new session as soon as \
                 another woci renews it"
            );
            let Some(renewed) = schedule::renewed_elsewhere(&renewer, &tx, &mut stop_rx).await else { return Err(e) };
            tracing::warn!(
                "a session renewed by another woci (valid until {}) is in place; renewal goes on",
                crate::clock::fmt_utc(renewed.claims.exp)
            );
            session = renewed;
        }
    });
    let code = running.wait().await;
    let _ = stop_tx.send(());
    match renewal.await {
        Ok(Err(e)) => tracing::debug!("renewal had stopped before the child exited: {e}"),
        Err(e) => tracing::debug!("renewal task failed: {e}"),
        Ok(Ok(())) => {}
    }
    if let Some(p) = proxy {
        // A program stopped by a signal failed for that, not for a 401.
        let failed = code.as_ref().is_ok_and(|c| *c != 0) && !crate::child::signalled();
        if let Some(hint) = p.untouched_hint().filter(|_| failed) {
            crate::terminal::say(&format!("woci: {hint}"));
        }
        p.shutdown().await;
    }
    code
}

/// The child reaches an `http://` endpoint without the proxy (`HTTPS_PROXY` carries only HTTPS),
/// so its requests keep the token it started with: say so before they start failing.
fn warn_if_plain_http_endpoint(endpoint: Option<&str>) {
    if let Some(e) = endpoint.filter(|e| e.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://"))) {
        tracing::warn!(
            "the endpoint `{}` is plain HTTP, which the re-signing proxy does not carry: requests to it keep the token the program started with and fail once it expires; use an `https://` endpoint",
            crate::terminal::safe(e)
        );
    }
}

/// Profiles renewed through the OCI auth service cannot outlive `sess_exp`: say so up front, once
/// a session (the first run of each says it; `.session_end_said` records which), so that short
/// commands run all day are not told it each time (round 78 N5, round 84 N10).
fn warn_if_session_ends_soon(ctx: &Context, session: &Session) {
    let (RenewMode::SessionRefresh(_), Some(end)) = (&ctx.settings.mode, session.claims.session_expiry()) else {
        return;
    };
    let left = (end - ctx.now()).max(0);
    // Within `expiring_warning`, the expiry warning says it (with the fix).
    let window = ctx.settings.ops.expiring_warning.unwrap_or(crate::expiry::SESSION_WARNING);
    if left <= i64::try_from(window.as_secs()).unwrap_or(i64::MAX) {
        return;
    }
    let said = ctx.store.dir().join(".session_end_said");
    if crate::fsutil::read_text_bounded(&said, 64).is_ok_and(|s| s.trim() == end.to_string()) {
        return;
    }
    let _ = ctx.store.ensure_dir().and_then(|()| crate::fsutil::write_atomic(&said, end.to_string().as_bytes()));
    tracing::warn!(
        "the OCI session of profile `{}` ends in {} (`sess_exp`); a command running longer will fail then",
        ctx.settings.profile,
        crate::clock::fmt_secs(left)
    );
}
