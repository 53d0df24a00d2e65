//! Renewal while something runs: the loop the `--auto-refresh`/`--exec` supervisor and the daemon
//! share. It sleeps until the token enters its safety window, renews through the same locked
//! [`Renewer::ensure`] every woci uses (so several supervisors on one profile renew once),
//! retries transient failures with backoff, and stops on failures no retry can fix (refresh token
//! refused, session over). The renewer comes through a `watch` channel, so the daemon can hand
//! the loop a renewer with reloaded settings; the loop takes it up between renewals, never during
//! one.

use super::{Force, Renewer, Session};
use crate::clock::Clock;
use crate::error::{exit, Error, Recovery, Result};
use crate::http::Backoff;
use crate::jwt;
use crate::metrics::{self, Class};
use crate::secret::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Shortest sleep between two renewal checks, whatever the token says.
const MIN_SLEEP: Duration = Duration::from_millis(500);
/// First retry delay after a failed renewal; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(2);
/// Longest retry delay.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// The longest sleep before the loop looks at the (wall) clock again: a machine's timers stand
/// still while it is suspended, the token's expiry does not.
const MAX_NAP: Duration = Duration::from_secs(5);

/// The longest wait between retries of a refusal a settings change can fix (a rotated client
/// secret: the daemon reloads its settings), so a wrong secret costs few requests.
const MAX_REFUSED_RETRY: Duration = Duration::from_secs(600);

/// A refusal that leaves the refresh token (or the subject token source) usable: the exchange
/// or the IdP refused the client, not the session, so the loop keeps trying (a transient 401, a
/// secret being rotated) instead of ending for good. A refused refresh token ends it: only a
/// person can log in again.
fn refused_but_renewable(e: &Error) -> bool {
    match e {
        Error::ExchangeRejected { .. } | Error::SubjectTokenRejected { .. } => true,
        Error::Blocked { shared: Some(Recovery::Slowly), .. } => true,
        Error::IdpRejected { .. } => !e.needs_login(),
        _ => false,
    }
}

/// How long to sleep before the next renewal of a token with these claims: until its renewal
/// window ([`super::plan::renewal_window`]) opens.
pub fn next_renewal_in(claims: &jwt::UpstClaims, now: i64, window: Duration, ahead: bool) -> Duration {
    let due = claims.exp - super::plan::secs(super::plan::renewal_window(claims, window, ahead));
    let secs = u64::try_from(due - now).unwrap_or(0);
    Duration::from_secs(secs).max(MIN_SLEEP)
}

/// [`next_renewal_in`] for a profile renewed by `settings`' mode: a session-refresh token that
/// already runs to the session's end (`sess_exp`) cannot be extended, so the next look is at its
/// expiry (where the session ends), not a stream of refreshes that change nothing.
pub fn next_check_in(settings: &crate::settings::Settings, claims: &jwt::UpstClaims, now: i64) -> Duration {
    let at_the_end = claims.session_expiry().is_some_and(|end| claims.exp >= end);
    if at_the_end && matches!(settings.mode, crate::settings::RenewMode::SessionRefresh(_)) {
        return Duration::from_secs(u64::try_from(claims.exp - now).unwrap_or(0)).max(MIN_SLEEP);
    }
    next_renewal_in(claims, now, settings.window, settings.renews_ahead)
}

/// Whether a renewal failure may go away by itself (I/O too, also found before trying: a folder
/// remounted read-only may be writable again).
pub fn is_retryable(e: &Error) -> bool {
    matches!(e, Error::Network { .. } | Error::Protocol { .. } | Error::Busy(_) | Error::Io { .. })
        || matches!(e, Error::Blocked { code: exit::FAILURE, .. })
        || e.is_transient()
}

/// The longest wait between retries once the token has expired (within the proxy's hold of a
/// request that meets an expired token, [`crate::proxy`]'s `EXPIRED_WAIT`).
const EXPIRED_RETRY: Duration = Duration::from_secs(4);

/// The time left until `session`'s token expires, at least [`EXPIRED_RETRY`].
fn until_expired(session: &Session, now: i64) -> Duration {
    Duration::from_secs(u64::try_from(session.claims.exp - now).unwrap_or(0)).max(EXPIRED_RETRY)
}

/// Whether a renewal loop keeps trying after this failure (soon or slowly), not ending.
pub(crate) fn keeps_trying(e: &Error) -> bool {
    is_retryable(e) || refused_but_renewable(e)
}

/// Whether a retry waits like one after a network failure; else like one after a refusal (an
/// untrusted certificate, too: only a CA setting fixes it).
pub(crate) fn retried_soon(e: &Error) -> bool {
    is_retryable(e) && !matches!(e, Error::Untrusted { .. } | Error::ProxyRefused { .. })
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
        /// Whether another woci put it there (a call, a login), not this loop's renewal.
        by_other: bool,
    },
    /// A renewal failed and will be retried.
    Failed {
        /// The failure's class.
        class: Class,
        /// The error message (never holds secrets).
        error: String,
        /// Retry delay.
        retry_in: Duration,
    },
}

/// Once the loop is stopped (the program ended, the daemon was told to stop), a renewal in
/// flight is let go — a token exchange or a session refresh may take minutes against a slow
/// server — except while it stores a rotated refresh token: the answer that carries it must
/// not be lost, so that part ([`crate::critical::hold`]) runs to its end. A wait past
/// [`SAY_WAITING`] is said, and a failure of the renewal waited for is a warning: nothing else
/// would tell that the next call needs a login.
async fn let_go(mut renewal: std::pin::Pin<&mut impl std::future::Future<Output = Result<Session>>>, profile: &str) {
    let warn = |result: Result<Session>| {
        if let Err(e) = result {
            tracing::warn!("the renewal in flight when the run ended failed: {e}");
        }
    };
    crate::critical::note_ending();
    let waited = std::time::Instant::now();
    let (mut said, mut told, mut was_held) = (false, false, false);
    // A Ctrl-C (SIGTERM) now has no program to go to: it is answered, not swallowed (one the
    // caller ignored stays ignored).
    #[cfg(unix)]
    let mut signals = super::login::listen(&[libc::SIGINT, libc::SIGTERM]);
    while crate::critical::held() {
        was_held = true;
        #[cfg(unix)]
        let signalled = super::login::any_signal(&mut signals);
        #[cfg(not(unix))]
        let signalled = std::future::pending::<i32>();
        tokio::select! {
            biased;
            result = &mut renewal => return warn(result),
            sig = signalled => if !told {
                // Once everything is cleaned up, woci ends by it (a shell loop stops at Ctrl-C).
                crate::critical::note_after_run(sig);
                told = true;
                tracing::warn!(
                    "the signal is held until the identity provider answers the refresh grant of profile \
                     `{profile}` (it is waited for up to 90s), so that the new refresh token is stored, not lost"
                );
            },
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        if !said && !told && waited.elapsed() >= SAY_WAITING {
            said = true;
            super::login::say_grant_held(profile);
        }
    }
    // The grant's outcome is known: a failure is recorded and returned a moment later.
    if was_held {
        if let Ok(result) = tokio::time::timeout(OUTCOME_GRACE, renewal).await {
            warn(result);
        }
    }
}

/// How long a stopped loop waits for the result of a renewal whose grant it waited for.
const OUTCOME_GRACE: Duration = Duration::from_millis(500);
/// How long a stopped loop waits for a refresh grant's answer before saying so.
const SAY_WAITING: Duration = Duration::from_secs(1);

/// A renewer that never changes, for [`renewal_loop`] (`--auto-refresh`, `--exec`).
pub fn fixed(renewer: Arc<Renewer>) -> watch::Receiver<Arc<Renewer>> {
    watch::channel(renewer).1
}

/// Resolves when a new renewer is published; never when none can come any more.
async fn replaced(renewers: &mut watch::Receiver<Arc<Renewer>>) {
    if renewers.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Keeps the session fresh until `stop` resolves or renewal becomes impossible, with the latest
/// renewer of `renewers` (its settings' safety window). Each new token is published on `tx`.
/// Returns `Ok(())` when stopped, or the error that ended renewal.
pub async fn renewal_loop(
    mut renewers: watch::Receiver<Arc<Renewer>>,
    mut current: Session,
    tx: &watch::Sender<SecretString>,
    mut stop: impl std::future::Future + Unpin,
    on_event: impl Fn(LoopEvent) + Send,
) -> Result<()> {
    // Not before this (token time): a fifth of the life of the token the loop last got fresh from
    // a server after it came (the one the run started with too), whatever this machine's clock
    // makes of its `exp` (a clock ahead by nearly a token's life would have every new token look
    // due at once). A right clock renews later anyway: a window is at most half the life, a lead
    // half of that.
    let mut not_before = kept_until(&current, renewers.borrow().server.unix());
    'schedule: loop {
        let renewer = renewers.borrow_and_update().clone();
        let now = renewer.server.unix();
        let wait = due_in(&renewer, &current, now, not_before);
        tokio::select! {
            // Not due yet: look again (after a resume from suspend, it may be overdue).
            _ = tokio::time::sleep(wait.min(MAX_NAP)) => if wait > MAX_NAP { continue 'schedule },
            _ = &mut stop => return Ok(()),
            // New settings (a safety window, an endpoint): schedule again with them.
            _ = replaced(&mut renewers) => continue 'schedule,
        }
        let mut backoff = Backoff::new(FIRST_RETRY, MAX_RETRY);
        let mut refused = Backoff::new(FIRST_RETRY, MAX_REFUSED_RETRY);
        loop {
            let renewer = renewers.borrow_and_update().clone();
            let ensure = renewer.ensure(Force::No);
            tokio::pin!(ensure);
            let result = tokio::select! {
                // A finished renewal wins over a stop that came with it.
                biased;
                r = &mut ensure => r,
                _ = &mut stop => {
                    let_go(ensure, &renewer.settings.profile).await;
                    return Ok(());
                }
            };
            match result {
                Ok(s) => {
                    if s.token != current.token {
                        tx.send_replace(s.token.clone());
                    }
                    let now = renewer.server.unix();
                    not_before = kept_until(&s, now);
                    let next = now + super::plan::secs(due_in(&renewer, &s, now, not_before));
                    // A stored token other than the loop's own, found fresh: another woci's.
                    let by_other = s.token != current.token
                        && matches!(s.action, super::Action::RenewedByOther | super::Action::Reused);
                    on_event(LoopEvent::Renewed { exp: s.claims.exp, next, by_other });
                    current = s;
                    break;
                }
                Err(e) if keeps_trying(&e) => {
                    let retry = match retried_soon(&e) {
                        // Never past the token's expiry, and then often: each request the program
                        // sends meanwhile fails, and the proxy holds it a while for a new token.
                        true => backoff.next_delay().min(until_expired(&current, renewer.server.unix())),
                        false => refused.next_delay(),
                    };
                    on_event(LoopEvent::Failed { class: metrics::class_of(&e), error: e.to_string(), retry_in: retry });
                    tokio::select! {
                        _ = tokio::time::sleep(retry) => {}
                        _ = &mut stop => return Ok(()),
                        // New settings may be the fix: retry with them at once.
                        _ = replaced(&mut renewers) => {}
                    }
                }
                // The caller reports it (the daemon as its exit reason, in one line).
                Err(e) => return Err(e),
            }
        }
    }
}

/// A fifth of the life (`exp - iat`, both the server's times) of a token a server has just
/// issued to this renewal; `None` for one found on disk (renewed by another woci, reused), whose
/// age is not known.
fn fresh_floor(s: &Session) -> Option<i64> {
    use super::Action;
    let fresh = matches!(s.action, Action::Refreshed | Action::LoggedIn | Action::SessionRefreshed | Action::Federated);
    s.claims.iat.filter(|_| fresh).map(|iat| (s.claims.exp - iat) / 5).filter(|floor| *floor > 0)
}

/// Until when (token time) a session got at `now` is kept whatever the clock says ([`fresh_floor`]).
fn kept_until(s: &Session, now: i64) -> i64 {
    fresh_floor(s).map_or(i64::MIN, |floor| now + floor)
}

/// How long from `now` until the loop renews `s`: when its window opens, not before `not_before`.
fn due_in(renewer: &Renewer, s: &Session, now: i64, not_before: i64) -> Duration {
    let floor = Duration::from_secs(u64::try_from(not_before.saturating_sub(now)).unwrap_or(0));
    next_check_in(&renewer.settings, &s.claims, now).max(floor)
}

/// How often a run whose renewal became impossible looks for a session renewed elsewhere.
const LOOK_AGAIN: Duration = Duration::from_secs(2);

/// After [`renewal_loop`] ended (a login needed, a setting to fix): waits until another woci (a
/// `woci session authenticate` in another terminal, a call after the fix) stores a newer session
/// for the profile, publishes it on `tx` and returns it; `None` when `stop` comes first. Reads
/// files only: nothing is sent, counted or recorded meanwhile.
pub async fn renewed_elsewhere(
    renewer: &Renewer,
    tx: &watch::Sender<SecretString>,
    mut stop: impl std::future::Future + Unpin,
) -> Option<Session> {
    let current_exp = jwt::decode_upst(tx.borrow().expose()).map_or(0, |c| c.exp);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LOOK_AGAIN) => {}
            _ = &mut stop => return None,
        }
        if let Some(s) = renewer.stored_session_newer_than(current_exp) {
            tx.send_replace(s.token.clone());
            return Some(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(iat: i64, exp: i64) -> jwt::UpstClaims {
        jwt::UpstClaims { exp, iat: Some(iat), sub: None, tenant: None, sess_exp: None, jti: None, jwk: None }
    }

    #[test]
    fn renews_when_the_window_opens_and_a_supervisor_a_little_before() {
        let c = claims(0, 3600);
        let d = Duration::from_secs;
        assert_eq!(next_renewal_in(&c, 0, d(60), false), d(3540));
        assert_eq!(next_renewal_in(&c, 0, d(600), true), d(2970));
        assert_eq!(next_renewal_in(&c, 0, d(60), true), d(3510));
        // A 10 s token caps a call's 60 s window and the daemon's 10 min one alike at 5 s: the
        // supervisor still renews first.
        let c = claims(0, 10);
        assert_eq!(next_renewal_in(&c, 0, d(60), false), d(5));
        assert_eq!(next_renewal_in(&c, 0, d(600), true), d(3));
    }

    #[test]
    fn short_tokens_never_renew_in_a_hot_loop() {
        let c = claims(100, 106);
        assert_eq!(next_renewal_in(&c, 100, Duration::from_secs(600), false), Duration::from_secs(3));
        assert_eq!(next_renewal_in(&c, 200, Duration::from_secs(600), true), MIN_SLEEP);
    }

    /// A token fresh from a server is not renewed before a fifth of its life has passed, whatever
    /// the clock says (a clock 55 minutes ahead renewed an hour's token twice a second); with a
    /// right clock the schedule is never earlier than that floor, so it changes nothing there.
    #[test]
    fn a_fresh_token_is_kept_a_fifth_of_its_life_and_a_right_clock_waits_longer() {
        let session =
            |iat: i64, exp: i64, action| Session { token: SecretString::from("t"), claims: claims(iat, exp), action };
        assert_eq!(fresh_floor(&session(0, 3600, super::super::Action::Refreshed)), Some(720));
        assert_eq!(fresh_floor(&session(0, 3600, super::super::Action::RenewedByOther)), None, "its age is unknown");
        assert_eq!(fresh_floor(&session(0, 4, super::super::Action::Refreshed)), None, "under a second");
        for life in [5, 6, 10, 60, 300, 3600, 86_400] {
            for (window, ahead) in [(60, false), (60, true), (600, true), (86_400, true)] {
                let c = claims(0, life);
                let due = next_renewal_in(&c, 0, Duration::from_secs(window), ahead);
                assert!(super::super::plan::secs(due) >= life / 5, "life {life}, window {window}: due {due:?}");
            }
        }
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(is_retryable(&Error::Network { service: "s", url: "u".into(), reason: "r".into() }));
        let untrusted = Error::Untrusted { service: "s", url: "u".into(), reason: "r".into() };
        assert!(is_retryable(&untrusted) && !retried_soon(&untrusted), "retried, slowly");
        let refused = Error::ProxyRefused { service: "s", url: "u".into(), reason: "r".into() };
        assert!(is_retryable(&refused) && !retried_soon(&refused), "retried slowly: the proxy counts each try");
        assert!(!is_retryable(&Error::SessionExpired("x".into())));
        let source = |failure| Error::SubjectToken { source_name: "s".into(), reason: "r".into(), failure };
        assert!(is_retryable(&source(crate::error::SourceFailure::NoTokenNow)));
        assert!(!is_retryable(&source(crate::error::SourceFailure::Settings)));
        // Another woci's failure, shared with a waiting loop, is retried when the original was.
        let shared = |retry| Error::Blocked { code: 6, message: "m".into(), shared: Some(retry) };
        assert!(retried_soon(&shared(Recovery::Soon)));
        assert!(
            keeps_trying(&shared(Recovery::Slowly)) && !retried_soon(&shared(Recovery::Slowly)),
            "round 105 review"
        );
        assert!(!keeps_trying(&shared(Recovery::Never)));
        assert!(!is_retryable(&Error::IdpRejected {
            what: "refresh token",
            error: "invalid_grant".into(),
            description: None
        }));
    }
}
