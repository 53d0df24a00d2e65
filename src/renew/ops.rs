//! What a renewal leaves for the operator: every renewal attempt counted ([`crate::metrics`]),
//! a failed one announced (`on_renewal_failure`), and the hard ends that come near warned of
//! (`expiring_warning`, `on_expiring`). [`super::Renewer::ensure`] calls these for every caller
//! (a call, `session refresh`, the auto-refresh loop, the daemon).
//!
//! What counts as a renewal attempt: a call that found the token in need of renewal and, holding
//! the profile's lock, decided to renew (refresh, login, session refresh, exchange: `ok` or the
//! error's class) or found it could not (an impossible plan: its exit code's class; unreadable
//! files under the lock or a lock held too long by another woci: the error's class); also one a
//! session folder too full to renew into stops before the lock (`config`, as far as its records
//! still fit). Not counted:
//! a reused token, a token another woci renewed while this one waited, a failure another woci
//! recorded while this one waited (that woci counted it), config entries finished for a valid
//! token, and files unreadable before any decision (the call fails as it is).
//!
//! The valid-token path costs nothing here: the expiry check is arithmetic on what the call read
//! anyway, and files are touched only when a deadline is inside the window.

use super::{Renewer, Session};
use crate::error::Error;
use crate::expiry;
use crate::hooks::{self, Hook, HookEnv, RenewalFailed};
use crate::jwt::UpstClaims;
use crate::metrics::{self, Class, Expiries, Outcome};
use crate::settings::RenewMode;
use crate::store::RefreshTokenState;

impl Renewer {
    /// Counts a renewal attempt that left the session's ends at `ends` and, when it failed, runs
    /// `on_renewal_failure` (rate-limited, bounded). Never fails and never changes `result`.
    pub(super) async fn account(&self, result: &crate::error::Result<Session>, ends: Expiries) {
        // What the metrics file and the hook get carries this machine's time, as `date` does.
        let (at, mut ends) = (self.clock.unix(), ends.earlier_by(self.server.ahead_secs()));
        // (Any other `sess_exp`, always a day ahead, would keep a "login needed" alert on.)
        ends.sess_exp = self.hard_end(ends.sess_exp);
        let class = result.as_ref().map_or_else(metrics::class_of, |_| Class::Ok);
        let outcome = Outcome { result: class, at, ends };
        // An unsafe session folder (a symbolic link, a world-writable `~/.oci`) gets nothing.
        if let Err(e) = self.store.check_safe() {
            tracing::debug!("renewal attempt not counted: {e}");
            return;
        }
        tracing::debug!(profile = %self.settings.profile, result = outcome.result.as_str(), "renewal attempt counted");
        let failure = result.as_ref().err().map(|e| (e.to_string(), e.exit_code()));
        let hook = failure
            .as_ref()
            .and_then(|_| self.hook("on_renewal_failure", &self.settings.ops.on_renewal_failure))
            .map(|hook| (hook, self.hook_env()));
        let dir = self.store.dir().to_owned();
        let profile = self.settings.profile.clone();
        let target = metrics::Target::of(&self.settings);
        let task = tokio::task::spawn_blocking(move || {
            metrics::record(&dir, &profile, &target, &outcome);
            if let (Some((message, exit_code)), Some((hook, env))) = (failure, hook) {
                let event = RenewalFailed {
                    profile: &profile,
                    class,
                    message: &message,
                    exit_code,
                    at,
                    token_expires_at: ends.token_exp,
                };
                hooks::on_renewal_failure(&dir, &hook, &event, &env);
            }
        });
        if let Err(e) = task.await {
            tracing::warn!("renewal accounting of profile `{}` failed: {e}", self.settings.profile);
        }
    }

    /// `sess_exp` where it is a hard end: only a session renewed by OCI session refresh has one;
    /// others start anew at each renewal.
    fn hard_end(&self, sess_exp: Option<i64>) -> Option<i64> {
        sess_exp.filter(|_| matches!(self.settings.mode, RenewMode::SessionRefresh(_)))
    }

    /// Warns (once per profile, what and hour, across processes) when the session's hard end or
    /// the refresh token's expiry is within `expiring_warning`, and runs `on_expiring`.
    /// `refresh_token_exp` is what the caller knows of the refresh token's expiry.
    pub(super) async fn warn_expiring(&self, claims: &UpstClaims, refresh_token_exp: Option<i64>) {
        // Judged and said in this machine's time (token time turned into it), as `date` has it.
        let (now, ahead) = (self.clock.unix(), self.server.ahead_secs());
        let refresh_token_exp = refresh_token_exp.map(|t| t - ahead);
        let sess_exp = self.hard_end(claims.session_expiry().map(|t| t - ahead));
        // A session lives 24 h at most: the refresh token's day of notice would warn all session long.
        let window = self.settings.ops.expiring_warning;
        let mut found = expiry::expiring(now, sess_exp, None, window.unwrap_or(expiry::SESSION_WARNING));
        found.extend(expiry::expiring(now, None, refresh_token_exp, window.unwrap_or(expiry::REFRESH_TOKEN_WARNING)));
        if found.is_empty() || self.store.check_safe().is_err() {
            return;
        }
        let found = hooks::expiring_due(self.store.dir(), found, now);
        if found.is_empty() {
            return;
        }
        let hook = self.hook("on_expiring", &self.settings.ops.on_expiring);
        let env = self.hook_env();
        let dir = self.store.dir().to_owned();
        let profile = self.settings.profile.clone();
        let task = tokio::task::spawn_blocking(move || {
            hooks::warn_expiring(&dir, &profile, &found, hook.as_ref(), &env, now);
        });
        if let Err(e) = task.await {
            tracing::warn!("the expiry warning of profile `{}` failed: {e}", self.settings.profile);
        }
    }

    /// The refresh token's recorded expiry in token time (see
    /// [`super::facts::SessionFacts::in_token_time`]), for profiles that have a refresh token
    /// (read after a renewal, which may have rotated it).
    pub(super) fn refresh_token_expiry(&self) -> Option<i64> {
        let login = matches!(self.settings.mode, RenewMode::Login(_));
        if !login || !self.store.stored_refresh_token().is_ok_and(|s| s.state() != RefreshTokenState::Absent) {
            return None;
        }
        self.store.refresh_token_expiry().map(|e| e.saturating_add(self.server.ahead_secs()))
    }

    fn hook(&self, setting: &str, argv: &Option<Vec<String>>) -> Option<Hook> {
        let argv = argv.clone()?;
        Hook::from_argv(argv, setting, &self.settings.home).map_err(|e: Error| tracing::warn!("{e}")).ok()
    }

    /// The environment hooks get: woci's minus every variable that holds a secret.
    fn hook_env(&self) -> HookEnv {
        HookEnv::new(&self.env, &self.settings.secret_env)
    }
}
