//! `--auto-refresh` and `--exec`: run the child while a renewal loop keeps the UPST fresh, and —
//! unless `--no-resign-proxy` — make the *running* child use each new token through the local
//! re-signing proxy ([`crate::proxy`]). `oci` reads the token file once at start, so renewing the
//! file alone only helps children that re-read it (Go SDK, Terraform).
//!
//! The renewal loop ([`renewal_loop`]) is shared with the daemon: it sleeps until the token enters
//! its safety window, renews through the same locked [`Renewer::ensure`] every woci uses (so
//! several supervisors on one profile renew once), retries transient failures with backoff, and
//! stops on failures no retry can fix (refresh token refused, session over).

use crate::child::{self, ChildSpec};
use crate::error::{Error, Result};
use crate::http::Backoff;
use crate::jwt;
use crate::renew::{Action, Force, Renewer, Session};
use crate::secret::SecretString;
use crate::settings::RenewMode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Shortest sleep between two renewal checks, whatever the token says.
const MIN_SLEEP: Duration = Duration::from_millis(500);
/// First retry delay after a failed renewal; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// Longest retry delay.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// How long to sleep before the next renewal of a token with these claims.
pub fn next_renewal_in(claims: &jwt::UpstClaims, now: i64, window: Duration) -> Duration {
    let window = jwt::effective_window(claims, window);
    let due = claims.exp - i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    let secs = u64::try_from(due - now).unwrap_or(0);
    Duration::from_secs(secs).max(MIN_SLEEP)
}

/// Whether a renewal failure may go away by itself.
pub fn is_retryable(e: &Error) -> bool {
    matches!(e, Error::Network { .. } | Error::Protocol { .. } | Error::Busy(_) | Error::Io { .. })
}

/// Something the loop reports (the daemon records these; auto-refresh only logs them).
#[derive(Debug, Clone)]
pub enum LoopEvent {
    /// A new token is in place; `exp` is its expiry (epoch seconds).
    Renewed {
        /// Expiry of the new token.
        exp: i64,
        /// When the loop will renew next (epoch seconds).
        next: i64,
    },
    /// A renewal failed and will be retried.
    Failed {
        /// The error message (never holds secrets).
        error: String,
        /// Retry delay.
        retry_in: Duration,
    },
}

/// Keeps the session fresh until `stop` resolves or renewal becomes impossible. Each new token is
/// published on `tx`. Returns `Ok(())` when stopped, or the error that ended renewal.
pub async fn renewal_loop(
    renewer: Arc<Renewer>,
    mut current: Session,
    tx: watch::Sender<SecretString>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    on_event: impl Fn(LoopEvent) + Send,
) -> Result<()> {
    let window = renewer.settings().window;
    loop {
        let wait = next_renewal_in(&current.claims, renewer.clock().unix(), window);
        tracing::debug!(wait_s = wait.as_secs(), "next renewal check scheduled");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut stop => return Ok(()),
        }
        let mut backoff = Backoff::new(FIRST_RETRY, MAX_RETRY);
        loop {
            match renewer.ensure(Force::No).await {
                Ok(s) if s.action == Action::KeptAfterFailure => unreachable!("ensure never keeps a stale token"),
                Ok(s) => {
                    if s.token != current.token {
                        tx.send_replace(s.token.clone());
                    }
                    let next = renewer.clock().unix()
                        + i64::try_from(next_renewal_in(&s.claims, renewer.clock().unix(), window).as_secs())
                            .unwrap_or(0);
                    on_event(LoopEvent::Renewed { exp: s.claims.exp, next });
                    current = s;
                    break;
                }
                Err(e) if is_retryable(&e) => {
                    let retry = backoff.next_delay();
                    tracing::warn!("session renewal failed, retrying in {}s: {e}", retry.as_secs());
                    on_event(LoopEvent::Failed { error: e.to_string(), retry_in: retry });
                    tokio::select! {
                        _ = tokio::time::sleep(retry) => {}
                        _ = &mut stop => return Ok(()),
                    }
                }
                Err(e) => {
                    tracing::error!("session renewal is no longer possible: {e}");
                    return Err(e);
                }
            }
        }
    }
}

/// Runs `spec` under renewal (and the proxy when `resign`), returns the child's exit code.
pub async fn run_supervised(renewer: Arc<Renewer>, session: Session, mut spec: ChildSpec, resign: bool) -> Result<u8> {
    warn_if_session_ends_soon(&renewer, &session);
    let (tx, rx) = watch::channel(session.token.clone());
    let proxy = if resign {
        let key = renewer.profile_key()?;
        Some(crate::proxy::start_for_profile(renewer.settings(), key.public().clone(), rx).await?)
    } else {
        None
    };
    if let Some(p) = &proxy {
        spec.set_env.extend(p.child_env());
        spec.remove_env.extend(p.env_removals());
        crate::container::attach_proxy(
            &mut spec,
            &p.child_env(),
            p.ca_bundle_path(),
            crate::container::ProxyRoute::for_this_host(),
        )?;
        if let Some(r) = spec.redactor.as_mut() {
            p.add_secrets_to(r);
        }
    }
    // The Java trust store and options file live until this function returns, after the child.
    let _java_files = match &proxy {
        Some(p) => crate::proxy::java::attach(p, &renewer.settings().java_options, &mut spec)?,
        None => None,
    };
    // From here on a signal is the child's: woci forwards it and ends when the child does.
    crate::critical::supervise();
    let running = match child::spawn(&spec) {
        Ok(r) => r,
        Err(e) => {
            if let Some(p) = proxy {
                p.shutdown().await;
            }
            return Err(e);
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let loop_renewer = renewer.clone();
    let renewal = tokio::spawn(async move { renewal_loop(loop_renewer, session, tx, stop_rx, |_| {}).await });
    let code = running.wait().await;
    let _ = stop_tx.send(());
    match renewal.await {
        Ok(Err(e)) => tracing::debug!("renewal had stopped before the child exited: {e}"),
        Err(e) => tracing::debug!("renewal task failed: {e}"),
        Ok(Ok(())) => {}
    }
    if let Some(p) = proxy {
        if code.as_ref().is_ok_and(|c| *c != 0) {
            if let Some(hint) = p.untouched_hint() {
                eprintln!("woci: {hint}");
            }
        }
        p.shutdown().await;
    }
    code
}

/// Profiles renewed through the OCI auth service cannot outlive `sess_exp`: say so up front.
fn warn_if_session_ends_soon(renewer: &Renewer, session: &Session) {
    if !matches!(renewer.settings().mode, RenewMode::SessionRefresh { .. }) {
        return;
    }
    if let Some(end) = session.claims.session_expiry() {
        let left = end - renewer.clock().unix();
        tracing::warn!(
            "the OCI session of profile `{}` ends in {}h{:02}m (`sess_exp`); a command running longer will fail then",
            renewer.settings().profile,
            left.max(0) / 3600,
            (left.max(0) % 3600) / 60
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: i64, exp: i64) -> jwt::UpstClaims {
        jwt::UpstClaims { exp, iat: Some(iat), sub: None, tenant: None, sess_exp: None, jti: None, jwk: None }
    }

    #[test]
    fn renews_window_before_expiry() {
        let c = claims(0, 3600);
        assert_eq!(next_renewal_in(&c, 0, Duration::from_secs(600)), Duration::from_secs(3000));
    }

    #[test]
    fn short_tokens_renew_at_half_life_never_in_a_hot_loop() {
        let c = claims(100, 106);
        assert_eq!(next_renewal_in(&c, 100, Duration::from_secs(600)), Duration::from_secs(3));
        assert_eq!(next_renewal_in(&c, 200, Duration::from_secs(600)), MIN_SLEEP);
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(is_retryable(&Error::Network { service: "s", url: "u".into(), reason: "r".into() }));
        assert!(!is_retryable(&Error::SessionExpired("x".into())));
        assert!(!is_retryable(&Error::IdpRejected {
            what: "refresh token",
            error: "invalid_grant".into(),
            description: None
        }));
    }
}
