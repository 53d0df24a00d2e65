//! "Make the profile's session valid": the one renewal every mode shares.
//!
//! - [`facts`] reads what the decision needs from local files, once per look;
//! - [`plan`] decides, purely, what happens (reuse, finish the config, refresh, log in, session
//!   refresh, exchange a federated JWT, or nothing possible) — the same function `--status`
//!   reports — and hands over the mode's typed configuration;
//! - [`Renewer`] carries the plan out: without a lock when the token is good; otherwise under the
//!   profile lock, after reading the facts again (another woci may have renewed meanwhile, so 30
//!   concurrent calls on an expired token make one renewal). The steps of a login profile live in
//!   [`login`] (refresh grant, interactive login); a federated profile's and an OCI session
//!   refresh are short enough to be [`Renewer`] methods; [`schedule`] keeps renewing while a child
//!   or the daemon runs.
//!
//! Order of writes, so that a kill at any instant leaves a state the next call completes without
//! a login: the rotated refresh token is stored (durably, signals held) before anything else; the
//! token is written before the config, and a config lacking woci's entries is finished by the
//! next call ([`plan::Plan::FinishConfig`]). A failed renewal never overwrites a good token,
//! refresh token, key or config; callers that waited for the lock while a renewal failed get
//! that failure at once (a record beside the lock) instead of repeating the whole retry cycle.

pub mod facts;
mod login;
mod ops;
pub mod plan;
pub mod schedule;

use crate::clock::{fmt_secs, fmt_utc, Clock, ServerClock, SharedClock};
use crate::context::Context;
use crate::critical::failpoint;
use crate::error::{Error, Recovery, Result};
use crate::exchange;
use crate::http::{Http, HttpOptions, Transport};
use crate::jwt::{self, UpstClaims};
use crate::keys::{self, KeyPair};
use crate::metrics::Expiries;
use crate::secret::SecretString;
use crate::settings::{Env, FederatedConfig, Origin, RenewMode, SessionRefreshConfig, Settings};
use crate::store::{FailureRecord, SessionStore};
use facts::{SessionFacts, Token};
use plan::{plan, Plan};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// What the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    /// Renew only if the token is missing or inside the safety window.
    No,
    /// Renew now (`woci session refresh`).
    Renew,
    /// Interactive login now (`woci session authenticate`).
    Login,
}

/// How the session became valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The stored token was good.
    Reused,
    /// Another process renewed it while this one waited for the lock.
    RenewedByOther,
    /// Refresh grant + exchange.
    Refreshed,
    /// Interactive login + exchange.
    LoggedIn,
    /// OCI auth service session refresh.
    SessionRefreshed,
    /// A JWT from the subject token source exchanged (CI / workload federation).
    Federated,
    /// Renewal failed, and the current token is still valid for a while: used as it is.
    KeptAfterFailure,
}

impl Action {
    /// In words (log lines, `session refresh` / `authenticate` reports).
    pub fn describe(self) -> &'static str {
        match self {
            Action::Reused => "is valid",
            Action::RenewedByOther => "was renewed by another woci",
            Action::Refreshed => "was refreshed",
            Action::LoggedIn => "was created by a new login",
            Action::SessionRefreshed => "was refreshed through the OCI auth service",
            Action::Federated => "was minted from the subject token source",
            Action::KeptAfterFailure => "could not be renewed; the current token is still valid",
        }
    }
}

/// A valid session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The UPST.
    pub token: SecretString,
    /// Its claims.
    pub claims: UpstClaims,
    /// How it was obtained.
    pub action: Action,
}

impl Session {
    fn of(t: &Token, action: Action) -> Session {
        Session { token: t.secret.clone(), claims: t.claims.clone(), action }
    }

    /// How it was obtained, in words; a login names the user it is for (` for user `ocid1…``):
    /// a login another local user completed first with their own account (the authorize URL
    /// is in the browser's command line) shows there.
    pub fn described(&self) -> String {
        match (self.action, self.claims.sub.as_deref()) {
            (Action::LoggedIn, Some(sub)) => {
                format!("{} for user `{}`", self.action.describe(), crate::terminal::safe(sub))
            }
            _ => self.action.describe().to_owned(),
        }
    }
}

/// A renewal that fails while the token still has this much left runs with the token instead.
pub const FALLBACK_MIN_LEFT: Duration = Duration::from_secs(60);

/// Renews one profile's session. Cheap to create; the HTTP client is built on first use.
#[derive(Debug)]
pub struct Renewer {
    settings: Arc<Settings>,
    store: SessionStore,
    /// This machine's clock: records (failures, grants).
    clock: SharedClock,
    /// Token time (tokens' lives; `servers()`: what OCI goes by), and the skew each fresh token
    /// teaches.
    server: Arc<ServerClock>,
    transport: Option<Arc<dyn Transport>>,
    http: OnceCell<Http>,
    /// The refresh token's passphrase, and whether it was asked for a login replacing the token.
    passphrase: OnceCell<(Option<SecretString>, bool)>,
    allow_login: std::sync::atomic::AtomicBool,
    /// The environment woci started with (hooks get it without the secrets).
    env: Arc<Env>,
    /// When the current renewal began (epoch milliseconds, this machine's clock): a fresh
    /// token's `iat` against it and its arrival tells the clock skew; a token issued after it
    /// that is already expired means this woci was stopped or suspended meanwhile.
    began: std::sync::atomic::AtomicI64,
    /// The IdP's access token (and its expiry) from a refresh grant whose exchange then failed:
    /// the loop's next attempt exchanges it again while it is valid, so an exchange outage does
    /// not rotate the refresh token at every retry.
    access: Arc<std::sync::Mutex<Option<(SecretString, i64)>>>,
    /// A login's tokens, got before the lock ([`login::log_in_before_locking`]), for the locked
    /// renewal to store.
    logged_in: std::sync::Mutex<Option<login::LoggedIn>>,
    /// A rotated refresh token that could be stored nowhere (a full disk): the only one left,
    /// spent by this process's next grant (and stored then, if it can be), not the one on disk.
    unsaved: Arc<std::sync::Mutex<Option<SecretString>>>,
    /// Whether a login found needed under the renewal lock is made there ([`Error::LoginFirst`]
    /// otherwise): only after that deferral has come back twice, so a renewal always ends.
    login_under_lock: std::sync::atomic::AtomicBool,
    /// The login lock taken when a login was deferred, before the renewal lock was let go: a
    /// call that takes the renewal lock next sees the login under way and waits for it.
    login_lock: std::sync::Mutex<Option<crate::fsutil::FileLock>>,
}

impl Renewer {
    /// A renewer for the context's profile.
    pub fn new(ctx: &Context) -> Renewer {
        Renewer {
            settings: ctx.settings.clone(),
            store: ctx.store.clone(),
            clock: ctx.clock.clone(),
            server: ctx.server.clone(),
            transport: None,
            http: OnceCell::new(),
            passphrase: OnceCell::new(),
            allow_login: true.into(),
            env: ctx.env.clone(),
            began: std::sync::atomic::AtomicI64::new(0),
            access: Arc::default(),
            logged_in: std::sync::Mutex::new(None),
            unsaved: Arc::default(),
            login_under_lock: std::sync::atomic::AtomicBool::new(false),
            login_lock: std::sync::Mutex::new(None),
        }
    }

    /// The profile's renewal facts as every decision here reads them: in token time.
    fn facts(&self) -> Result<SessionFacts<'_>> {
        Ok(SessionFacts::read(&self.settings, &self.store, facts::Peek::No)?.in_token_time(&self.server))
    }

    /// Sends woci's requests through `transport` instead of the network (tests).
    pub fn with_transport(mut self, transport: Arc<dyn Transport>) -> Renewer {
        self.transport = Some(transport);
        self
    }

    /// Readies the refresh token and its passphrase before a long run (`daemon`, or
    /// `--auto-refresh`/`--exec`) starts ([`login::ready_for_run`]).
    pub async fn ready_for_run(&self, renewed_elsewhere: bool, daemon: bool) -> Result<()> {
        login::ready_for_run(self, renewed_elsewhere, daemon).await
    }

    /// Whether a rotated refresh token could be stored nowhere: this process holds the only copy.
    pub fn refresh_token_unsaved(&self) -> bool {
        self.unsaved.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Whether another woci's login for the profile is under way, which a call that may log in
    /// (not a background renewal) waits for rather than fail.
    fn login_elsewhere(&self) -> bool {
        self.allow_login() && self.store.login_under_way().is_some()
    }

    /// Forbids interactive logins (background renewals: the daemon). A refused refresh token
    /// then becomes an error telling the user how to log in.
    pub fn without_login(self) -> Renewer {
        self.forbid_login();
        self
    }

    /// This renewer with `old`'s tokens in memory (a daemon's reloaded settings): a rotated refresh
    /// token stored nowhere is the only one left, and the slot is shared, so one `old` keeps in a
    /// renewal still under way is this one's too (a review of round 105: a reload dropped it).
    pub fn carrying(mut self, old: &Renewer) -> Renewer {
        self.unsaved = old.unsaved.clone();
        self.access = old.access.clone();
        self
    }

    /// [`Renewer::without_login`] from now on: a run's renewals once its program started (a
    /// login there would mix with the program's output and hold the profile's login, which
    /// `woci session authenticate` in another terminal then waits behind; round 89 F1).
    pub fn forbid_login(&self) {
        self.allow_login.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn allow_login(&self) -> bool {
        self.allow_login.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes the session valid (see the module doc) and returns it. A renewal attempt is counted
    /// and a failure announced ([`ops`]); a valid session whose hard end is near is warned of.
    pub async fn ensure(&self, force: Force) -> Result<Session> {
        let facts = self.facts()?;
        let decision = plan(&facts, force, self.server.unix());
        if let Plan::Reuse { token, remaining } = decision.plan {
            tracing::debug!(profile = %self.settings.profile, remaining_s = remaining.as_secs(), "session token is valid");
            self.warn_expiring(&token.claims, facts.refresh.expires_at).await;
            return Ok(Session::of(token, Action::Reused));
        }
        tracing::debug!(profile = %self.settings.profile, "{}", decision.reason);
        // A profile that never had a session (a typo in `--profile`): nothing to lock, count or
        // report to hooks, and no folder left behind for `--status --all` to list. A session
        // folder nothing can be written into takes no lock: said as the plan says it, and counted
        // and announced as far as its records can still be written (a full disk is what a backup
        // host meets, and what the operator must hear of; round 87 F1).
        if let Plan::Impossible { exit_code } = decision.plan {
            if facts.profile_unknown(&self.store) {
                return Err(plan::blocked(exit_code, decision.reason));
            }
            if facts.unwritable.is_some() {
                let result = Err(plan::blocked(exit_code, decision.reason));
                self.account(&result, Expiries::of(facts.claims(), facts.refresh.expires_at)).await;
                return result;
            }
        }
        if matches!(&decision.plan, Plan::Refresh(_) | Plan::Login(_)) {
            login::ask_before_locking(self, matches!(decision.plan, Plan::Login(_))).await?;
        }
        let mut login_first = if let Plan::Login(cfg) = decision.plan { Some(cfg) } else { None };
        let (mut passes, mut first_counted) = (0, None);
        let (result, counted) = loop {
            let logged_in = match login_first {
                Some(cfg) => login::log_in_before_locking(self, cfg, force).await,
                None => Ok(()),
            };
            let (result, counted) = match logged_in {
                Ok(()) => self.renew_locked(force).await,
                // Recorded before its login lock was let go; another woci's failure, taken over
                // while this call waited for its login, is that woci's to count (round 105's review).
                Err(e) => {
                    let elsewhere = matches!(e, Error::Blocked { shared: Some(_), .. });
                    let counted = (!elsewhere).then(|| Expiries::of(facts.claims(), facts.refresh.expires_at));
                    (Err(e), counted)
                }
            };
            // The IdP refused the refresh token under the lock: the login is made before it,
            // like any other (one at a time per profile), then the lock taken again.
            match (&result, &self.settings.mode) {
                (Err(Error::LoginFirst), RenewMode::Login(cfg)) => {
                    passes += 1;
                    first_counted = first_counted.or(counted);
                    login_first = Some(cfg);
                    self.login_under_lock.store(passes >= 2, std::sync::atomic::Ordering::Relaxed);
                }
                _ => break (result, first_counted.or(counted)),
            }
        };
        // A login's tokens the locked renewal did not need (another woci renewed meanwhile).
        drop(self.logged_in.lock().unwrap_or_else(|p| p.into_inner()).take());
        // A renewal may have rotated the refresh token; a failure leaves the ends as they were.
        let renewed = result.as_ref().ok().map(|s| (s, self.refresh_token_expiry()));
        if let Some(before) = counted {
            let mut ends = renewed.map_or(before, |(s, rt)| Expiries::of(Some(&s.claims), rt));
            // A refresh token the IdP refused has no end that matters any more (`--status` says so).
            if result.is_err() && self.store.stored_refresh_token().is_ok_and(|t| t.rejected.is_some()) {
                ends.refresh_token_exp = None;
            }
            self.account(&result, ends).await;
        }
        if let Some((s, rt)) = renewed {
            self.warn_expiring(&s.claims, rt).await;
        }
        result.map_err(|e| self.name_secret_origin(e))
    }

    /// A refused client, named with where its secret came from when not the manager INI: a
    /// `WOCI_CLIENT_SECRET` left in the shell is not what a look at the INI finds (round 84 N5).
    fn name_secret_origin(&self, mut e: Error) -> Error {
        let key = match &e {
            Error::IdpRejected { what: "client", .. } => "auth_client_secret",
            Error::ExchangeRejected { status, error, .. } if *status == 401 || error == "invalid_client" => {
                "client_secret"
            }
            _ => return e,
        };
        let Some((origin @ (Origin::Flag(_) | Origin::Env(_)), _)) = self.settings.origins.get(key) else { return e };
        let said = format!("`{key}` is set by {}", origin.setting(key));
        if let Error::IdpRejected { description, .. } | Error::ExchangeRejected { description, .. } = &mut e {
            *description = Some(description.take().map_or(said.clone(), |d| format!("{d}; {said}")));
        }
        e
    }

    /// The renewal under the profile's lock (released on return), and — when it is a renewal
    /// attempt that counts ([`ops`]) — what was known before it.
    async fn renew_locked(&self, force: Force) -> (Result<Session>, Option<Expiries>) {
        let asked_at = crate::clock::unix_millis(self.clock.now());
        self.began.store(asked_at, std::sync::atomic::Ordering::Relaxed);
        let lock_timeout = self.lock_timeout();
        let store = self.store.clone();
        let locked = tokio::task::spawn_blocking(move || store.lock(lock_timeout))
            .await
            .map_err(|e| Error::Other(format!("lock task failed: {e}")))
            .and_then(|r| r);
        // No lock in time: this call needed a renewal and got none. The session's ends are what
        // the files say (a stuck holder changed nothing): the gauges keep them (round 87 F2).
        let (_lock, waited) = match locked {
            Ok(l) => l,
            Err(e) => {
                let ends = self.facts().map(|f| Expiries::of(f.claims(), f.refresh.expires_at)).unwrap_or_default();
                return (Err(e), Some(ends));
            }
        };
        tracing::debug!(profile = %self.settings.profile, waited, "holding the renewal lock");
        self.store.sweep_stray_temp_files();
        // A renewal that failed while this call waited fails this call too, at once: unless it
        // was met with other settings ([`Renewer::same_inputs`]).
        // A login this process made (its tokens wait to be stored) is not given up for it.
        let logged_in = self.logged_in.lock().unwrap_or_else(|p| p.into_inner()).is_some();
        let waited = waited && !logged_in;
        // A refused refresh token is not repeated either way (it is marked refused): the plan
        // below turns to a login, or waits for the one another woci makes. Nor is a login that
        // could not happen in a call without a terminal, by one that can log in, or while
        // another woci's login is under way (which the plan below waits for).
        let can_log_in = self.allow_login() && matches!(&self.settings.mode, RenewMode::Login(c) if c.interactive);
        let login_failed = |f: &crate::store::FailureRecord| f.exit_code == crate::error::exit::LOGIN;
        let repeatable = |f: &crate::store::FailureRecord| {
            self.same_inputs(f) && !f.needs_login && !(login_failed(f) && (can_log_in || self.login_elsewhere()))
        };
        if let Some(f) = waited.then(|| self.store.failure_since(asked_at)).flatten().filter(repeatable) {
            return (Err(self.failed_elsewhere(f)), None);
        }

        // Read again under the lock: another woci may have renewed (or written the config).
        let facts = match self.facts() {
            Ok(f) => f,
            Err(e) => return (Err(e), Some(Expiries::default())),
        };
        let before = Expiries::of(facts.claims(), facts.refresh.expires_at);
        let decision = plan(&facts, force, self.server.unix());
        // Finishing the config of a valid token renews nothing: not counted.
        let counted = !matches!(decision.plan, Plan::FinishConfig { .. });
        // A login made before the lock holds a code already redeemed: its tokens are stored (the
        // refresh token rescued if the folder filled meanwhile) whatever else now stands in the way.
        let decision_plan = match (decision.plan, logged_in, &self.settings.mode) {
            (Plan::Impossible { .. }, true, RenewMode::Login(cfg)) => Plan::Login(cfg),
            (plan, ..) => plan,
        };
        let result = match decision_plan {
            Plan::Reuse { token, .. } => {
                tracing::info!(profile = %self.settings.profile, "the session was renewed by another woci");
                return (Ok(Session::of(token, Action::RenewedByOther)), None);
            }
            Plan::FinishConfig { token } => self.finish_config(&facts, token),
            Plan::Refresh(cfg) => login::renew(self, cfg, &facts, false).await,
            Plan::Login(cfg) => login::renew(self, cfg, &facts, true).await,
            Plan::SessionRefresh(cfg, token) => self.session_refresh(cfg, &facts, token).await,
            Plan::Exchange(cfg) => self.federated(cfg, &facts).await,
            Plan::Impossible { exit_code } => Err(plan::blocked(exit_code, decision.reason)),
        };
        self.settle(force, &result);
        (result, counted.then_some(before))
    }

    /// Records how a renewal attempt ended: a success clears the last failure, a failure on the
    /// way (a network round, a login) is recorded for waiting callers and `--status`.
    fn settle(&self, force: Force, result: &Result<Session>) {
        match result {
            Ok(s) => {
                self.store.clear_failure();
                let line = format!(
                    "session of profile `{}` {}; {}",
                    self.settings.profile,
                    s.described(),
                    self.server.validity(s.claims.exp)
                );
                match s.action {
                    // Whichever call it was, a login names its user at every log level: one another
                    // local user completed first shows there.
                    Action::LoggedIn => crate::terminal::say(&format!("woci: {}", crate::terminal::safe(&line))),
                    _ => tracing::info!("{line}"),
                }
            }
            Err(e) => self.settle_failure(force, e),
        }
    }

    /// Whether `f` was met with this call's settings: not by a call that read the manager INI while
    /// an editor saved it, nor with a daemon's reloaded ones, which this call's own plan is for.
    pub(super) fn same_inputs(&self, f: &FailureRecord) -> bool {
        f.inputs.as_ref().is_none_or(|i| *i == failure_inputs(&self.settings, &self.store, &self.env, Met::of(f)))
    }

    /// Records a failed renewal (or login) for waiting callers and `--status`.
    pub(super) fn settle_failure(&self, force: Force, e: &Error) {
        // A login asked for that did not happen (no terminal, cancelled) leaves the stored
        // refresh token as it was: the next call does not meet that failure. Waiting callers
        // repeat local checks in no time; what they must not repeat is a round of requests (or a
        // login) that just failed.
        if !(matches!(e, Error::Login(_)) && force == Force::Login) {
            self.record_failure(e);
        }
    }

    /// The failure another woci's renewal (or login) met while this call waited for it: this call
    /// ends with it rather than repeat the round, saying whose it was, since its words (a code
    /// sent, a grant refused) are that woci's.
    pub(super) fn failed_elsewhere(&self, f: FailureRecord) -> Error {
        tracing::warn!(
            "the renewal of profile `{}` that another woci made while this call waited failed; this call ends \
             with its error rather than repeat it",
            self.settings.profile
        );
        let retry = match (f.transient, f.renewable) {
            (true, _) => Recovery::Soon,
            (false, true) => Recovery::Slowly,
            (false, false) => Recovery::Never,
        };
        Error::Blocked { code: f.exit_code, message: f.message, shared: Some(retry) }
    }

    /// Records a failure that involved the network for waiting callers and `--status`.
    pub(crate) fn record_failure(&self, e: &Error) {
        if !e.involved_the_network() {
            return;
        }
        let mut record = FailureRecord {
            at: crate::clock::unix_millis(self.clock.now()),
            exit_code: e.exit_code(),
            message: e.to_string(),
            // An untrusted certificate is retried slowly, but only a CA setting fixes it.
            transient: schedule::retried_soon(e),
            renewable: schedule::keeps_trying(e),
            reply_lost: matches!(e, Error::ReplyLost { .. }),
            needs_login: e.needs_login(),
            answered: e.server_answered(),
            inputs: None,
        };
        record.inputs = Some(failure_inputs(&self.settings, &self.store, &self.env, Met::of(&record)));
        self.store.record_failure(&record);
    }

    /// How long a renewal waits for another woci's: a login may take its whole timeout.
    fn lock_timeout(&self) -> Duration {
        let login = if let RenewMode::Login(c) = &self.settings.mode { c.login_timeout } else { Duration::ZERO };
        login + Duration::from_secs(60)
    }

    /// [`Self::ensure`] for a call that runs a command: when renewal fails but the current token
    /// is still valid for more than [`FALLBACK_MIN_LEFT`], warn once and run with it (as the AWS
    /// SDK's credential cache keeps serving a still-valid credential).
    pub async fn ensure_or_keep(&self) -> Result<Session> {
        let err = match self.ensure(Force::No).await {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        // Only a failure on the way (an IdP outage, a refused refresh): a local file or setting
        // that stops the renewal would stop the call too.
        if !err.involved_the_network() {
            return Err(err);
        }
        let Ok(facts) = self.facts() else { return Err(err) };
        // A token bound to another key than the profile's is refused by OCI, however long it lives.
        let facts::TokenInput::Present(token) = &facts.token else { return Err(err) };
        let left = token.claims.exp - self.server.unix();
        if facts.key_mismatch || left <= plan::secs(FALLBACK_MIN_LEFT) || err.needs_login() && !self.allow_login() {
            return Err(err);
        }
        tracing::warn!(
            "renewing the session of profile `{}` failed ({err}); running with the current token, valid for {}",
            self.settings.profile,
            fmt_secs(left)
        );
        Ok(Session::of(token, Action::KeptAfterFailure))
    }

    /// The stored session when another woci replaced the one that expires at `exp` with a newer,
    /// valid one bound to the profile's key (files only).
    pub fn stored_session_newer_than(&self, exp: i64) -> Option<Session> {
        let facts = self.facts().ok()?;
        let facts::TokenInput::Present(token) = &facts.token else { return None };
        let newer = token.claims.exp > exp.max(self.server.unix()) && !facts.key_mismatch;
        newer.then(|| Session::of(token, Action::RenewedByOther))
    }

    fn finish_config(&self, facts: &SessionFacts<'_>, token: &Token) -> Result<Session> {
        let (key, key_path) = self.store.load_or_create_key(facts.oci.key_file.as_deref())?;
        self.write_config(facts, &token.claims, &key, &key_path)?;
        tracing::info!(profile = %self.settings.profile, "finished the OCI config entries an earlier run left out");
        Ok(Session::of(token, Action::Reused))
    }

    /// Renewal of a federated profile (`subject_token_source`, CI / workload federation): a fresh
    /// JWT from the source, exchanged at `token_exchange_url` for a session bound to the profile's
    /// stable key, then the token file and config entries, written exactly as for login profiles.
    /// Never logs in, never prompts.
    async fn federated(&self, cfg: &FederatedConfig, facts: &SessionFacts<'_>) -> Result<Session> {
        let (key, key_path) = self.store.load_or_create_key(facts.oci.key_file.as_deref())?;
        let http = self.http().await?;
        let jwt = cfg.source.obtain(http, &cfg.env, &cfg.audience, &self.server.servers()).await?;
        tracing::debug!(profile = %self.settings.profile, source = %cfg.source.describe(), "obtained a subject token");
        let upst = exchange::exchange(http, &cfg.exchange, &jwt, &key.spki_b64())
            .await
            .map_err(|e| refused_jwt(e, cfg.source.describe()))?;
        self.keep_new_token(facts, upst, &key, Some(&key_path), "token exchange", Action::Federated)
    }

    /// Renewal of a profile without an IdP (made by `oci session authenticate`): the OCI auth
    /// service's `/v1/authentication/refresh` with the current token, until the session's `sess_exp`.
    async fn session_refresh(
        &self,
        cfg: &SessionRefreshConfig,
        facts: &SessionFacts<'_>,
        current: &Token,
    ) -> Result<Session> {
        let key = facts.oci.signing_key(&self.settings, &self.store)?;
        let endpoint = match &cfg.auth_endpoint {
            Some(u) => u.clone(),
            None => {
                let region = self.settings.region.clone().or_else(|| facts.oci.region.clone()).ok_or_else(|| {
                    Error::Config(format!(
                        "profile `{}` has no region; set `region` in `{}` or pass `--region`",
                        facts.profile,
                        facts.config_file.display()
                    ))
                })?;
                crate::realm::auth_endpoint_for_region(&region)?
            }
        };
        let http = self.http().await?;
        let upst =
            crate::session_refresh::refresh_session(http, &endpoint, &current.secret, &key, &self.server.servers())
                .await
                .map_err(|e| match e {
                    // Such a profile's login is oci's own.
                    Error::SessionExpired(why) => Error::SessionExpired(format!(
                        "{why}; run `command oci session authenticate {}`",
                        self.settings.oci_selection
                    )),
                    e => e,
                })?;
        self.keep_new_token(facts, upst, &key, None, "OCI auth service", Action::SessionRefreshed)
    }

    /// Checks a new UPST from `service` — it must decode, not be expired, and (when it says) be
    /// bound to our key — and writes it; with `key_path` (an IdP or federated profile), the
    /// config entries after it.
    fn keep_new_token(
        &self,
        facts: &SessionFacts<'_>,
        upst: SecretString,
        key: &KeyPair,
        key_path: Option<&Path>,
        service: &'static str,
        action: Action,
    ) -> Result<Session> {
        let bad = |why: String| Error::Protocol { service, reason: format!("the new session token is {why}") };
        let claims = jwt::decode_upst(upst.expose()).map_err(|e| bad(e.to_string()))?;
        if claims.iat.is_some_and(|iat| claims.exp <= iat) {
            return Err(bad("issued expired: its `exp` is not after its `iat`, whatever the clocks say".into()));
        }
        // The server's `iat` against this renewal's span tells how far this machine's clock is off;
        // every later decision (this one first) corrects by it.
        let began = self.began.load(std::sync::atomic::Ordering::Relaxed);
        if let Some(iat) = claims.iat.filter(|_| began > 0) {
            let sent = std::time::UNIX_EPOCH + Duration::from_millis(began.unsigned_abs());
            let skew = self.server.learn(iat, sent);
            self.store.write_skew(&skew);
            let whose = format!("the {service}'s (the new session token was issued at {})", fmt_utc(iat));
            warn_skew_once(clock_skew_warning(skew.offset_ms, &whose));
        }
        // Still good at OCI, by the servers' time (a clock ahead renews it early, said above).
        if claims.exp <= self.server.servers().unix() {
            // With an `iat`, the span explains it: time passed here, a stop or a suspend longer
            // than the token lives. Without, nothing tells that from a clock ahead.
            let Some(iat) = claims.iat.filter(|_| began > 0) else {
                return Err(bad("already expired by this machine's clock (it has no `iat`): check the clock".into()));
            };
            return Err(Error::Blocked {
                code: crate::error::exit::NETWORK,
                message: format!(
                    "the new session token from {service}, issued at {}, expired before woci could keep it (this woci \
                     was stopped or suspended, or the answer took longer than the token lives); the next renewal gets \
                     a new one",
                    fmt_utc(iat)
                ),
                shared: Some(Recovery::Soon),
            });
        }
        let bound = claims.jwk.as_deref().and_then(|jwk| keys::public_key_from_jwk_json(jwk).ok());
        if bound.is_some_and(|b| &b != key.public()) {
            return Err(bad("bound to a different public key".into()));
        }
        // It becomes the config's `tenancy`: a line break there would write other entries, and
        // an escape sequence would act on the terminal of whoever reads the file.
        if claims.tenant.as_deref().is_some_and(|t| crate::terminal::safe(t) != t) {
            return Err(bad("unusable: its `tenant` claim contains a line break or control character".into()));
        }
        if facts.token_path.parent() == Some(self.store.dir()) {
            self.store.ensure_dir()?;
        }
        crate::fsutil::write_atomic(&facts.token_path, upst.expose().as_bytes())?;
        failpoint("renew::after_token_written");
        if let Some(key_path) = key_path {
            self.write_config(facts, &claims, key, key_path)?;
            failpoint("renew::after_config_written");
        }
        Ok(Session { token: upst, claims, action })
    }

    /// Upserts woci's entries of an IdP or federated profile (nothing is written when they are
    /// already there).
    fn write_config(
        &self,
        facts: &SessionFacts<'_>,
        claims: &UpstClaims,
        key: &KeyPair,
        key_path: &Path,
    ) -> Result<()> {
        let s = &self.settings;
        let tenancy = claims.tenant.clone().map(|t| ("tenancy", t));
        // A call's `--region` is written only into a profile that has none, and only a region
        // (the INI's is checked as it is read; a typo'd flag must not stay in the config).
        let call_region = s.region.as_deref().and_then(|r| crate::settings::rules::region(r).ok());
        let region =
            (s.config_region.clone().or_else(|| facts.oci.region.clone()).or(call_region)).map(|r| ("region", r));
        let entries: Vec<(&str, String)> = [
            ("fingerprint", key.fingerprint()),
            ("key_file", crate::oci_config::config_value(key_path, s)),
            ("security_token_file", crate::oci_config::config_value(&facts.token_path, s)),
        ]
        .into_iter()
        .chain(tenancy)
        .chain(region)
        .collect();
        if entries.iter().any(|(k, v)| facts.oci.raw.get(*k) != Some(v)) {
            let refs: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let lock = self.store.config_lock_path();
            crate::oci_config::upsert_profile(&facts.config_file, &facts.profile, &refs, Some(&lock))?;
            tracing::debug!(profile = %facts.profile, config = %facts.config_file.display(), "updated the OCI config");
        }
        Ok(())
    }

    /// The HTTP client, built once.
    async fn http(&self) -> Result<&Http> {
        self.http
            .get_or_try_init(|| async {
                let s = &self.settings;
                let options = HttpOptions {
                    extra_ca_files: s.extra_ca_files.iter().filter(|p| p.is_file()).cloned().collect(),
                    proxy: s.upstream_proxy.clone(),
                    proxy_var: s.upstream_proxy_var,
                    no_proxy: s.no_proxy.clone(),
                    ..HttpOptions::default()
                };
                match &self.transport {
                    Some(t) => Ok(Http::with_transport(t.clone(), options)),
                    None => Http::new(options),
                }
            })
            .await
    }

    /// Before a program that signs with this machine's clock runs (`oci`, an SDK): warns when
    /// the last renewal showed that clock more than 5 minutes off, which OCI refuses.
    pub fn warn_if_refused_clock(&self) {
        let offset = self.server.offset_ms();
        if offset.abs() / 1000 > crate::clock::OCI_DATE_LIMIT_SECS {
            warn_skew_once(clock_skew_warning(offset, "the servers' (the last renewal showed it)"));
        }
    }
}

/// Says a clock skew over a minute (`offset_ms`: the servers' time minus this machine's) that
/// `whose` clock showed. woci corrects its own token times and signed dates by it; `oci` and
/// other programs sign with this machine's clock, and OCI refuses a `date` 5 minutes off.
fn clock_skew_warning(offset_ms: i64, whose: &str) -> Option<String> {
    let off = offset_ms / 1000;
    let consequence = match off.abs() > crate::clock::OCI_DATE_LIMIT_SECS {
        true => "OCI refuses requests whose date is more than 5 minutes off, so `oci`'s calls fail (401)",
        false => "woci corrects its token times by that, but other programs use this clock as it is",
    };
    (off.abs() > 60).then(|| {
        format!(
            "this machine's clock is {} {whose}: {consequence}; set the clock right (timedatectl, chrony)",
            crate::clock::skew_words(off)
        )
    })
}

/// Says `warning`, if any, once per process: a long `--auto-refresh` run renews many times.
fn warn_skew_once(warning: Option<String>) {
    static SKEW_TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if let Some(warning) = warning.filter(|_| !SKEW_TOLD.swap(true, std::sync::atomic::Ordering::Relaxed)) {
        tracing::warn!("{warning}");
    }
}

/// What a failure's digest ([`failure_inputs`]) holds, by the failure's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Met {
    /// A refusal or a local fault: whatever may fix it, the stored refresh token included.
    Refusal,
    /// The network failed on the way: what chooses the server and the way there, not which
    /// refresh token is stored (a renewal under way rotates it; round 101 F1).
    Unreachable,
    /// The server answered with its own fault: only what chooses the server and the request.
    ServerFault,
}

impl Met {
    /// The kind of a recorded failure.
    pub(crate) fn of(f: &FailureRecord) -> Met {
        match (f.transient, f.answered) {
            (_, true) => Met::ServerFault,
            (true, false) => Met::Unreachable,
            (false, false) => Met::Refusal,
        }
    }
}

/// The exchange's refusal of a federated profile's JWT said as that (`invalid_grant`,
/// `invalid_request` with 400), not a wrong URL (404) or a refused client (401, 403) worded as a
/// refused JWT (a review of round 105).
fn refused_jwt(e: Error, source_name: String) -> Error {
    match e {
        Error::ExchangeRejected { status: 400, error, description }
            if matches!(error.as_str(), "invalid_grant" | "invalid_request") =>
        {
            Error::SubjectTokenRejected { source_name, status: 400, error, description }
        }
        e => e,
    }
}

/// A digest of what a renewal failure was met with: the profile's values in the manager INI, its
/// section of the OCI config, both files' modes and owners, which refresh token is stored (for a
/// refusal), every variable that chooses a setting, a CA or a proxy, and what a federated source
/// reads; settings no renewal reads left out.
/// `--status` predicts a refusal again only while this is unchanged: another profile's renewal
/// writing `~/.oci/config` or a new `log_level` is no fix, exporting a CA bundle may be.
/// A server's own fault is met by whoever asks it the same: then only the renewal settings as
/// resolved count, so a daemon's `env -i` and a shell's variables meet the same outage (round
/// 100 F1).
pub(crate) fn failure_inputs(settings: &Settings, store: &SessionStore, env: &Env, met: Met) -> String {
    use crate::fsutil::{identity, mode_and_owner};
    use crate::settings::table::{H_IDP, SETTINGS};
    use std::fmt::Write as _;
    let read = |name: &str| SETTINGS.iter().find(|d| d.name == name).is_none_or(|d| d.renewal);
    let mut text = String::new();
    if met == Met::ServerFault {
        for d in SETTINGS.iter().filter(|d| d.renewal) {
            let value = settings.origins.get(d.name).map(|(_, v)| v.expose().as_str());
            let _ = writeln!(text, "{}={value:?}", d.name);
        }
        // A session refresh's server is its region's auth service (round 105's review).
        if let crate::settings::RenewMode::SessionRefresh(_) = &settings.mode {
            let config = crate::oci_config::read_profile(&settings.oci_config_file, &settings.profile).ok();
            let _ = write!(text, "region={:?} {:?}", settings.region, config.map(|(_, v)| v.get("region").cloned()));
        }
        return crate::fsutil::sha256_hex(text.as_bytes());
    }
    if let Some((ini, _)) = &settings.ini_file {
        // The profile's values (its section, `[COMMON]`): another profile's section is no fix.
        let values = crate::settings::ini::load(ini, crate::settings::ini::Source::Flag, &settings.profile)
            .map(|f| f.values.into_iter().filter(|(k, _)| read(k)).collect::<Vec<_>>());
        let _ = write!(text, "{:?}\n{:?}", values.ok(), mode_and_owner(ini));
    }
    let config = crate::oci_config::read_profile(&settings.oci_config_file, &settings.profile).ok();
    let _ = write!(text, "\n{:?}\n{:?}", config.map(|(_, v)| v), mode_and_owner(&settings.oci_config_file));
    // Which refresh token (a new one stored, one put back), known without reading it.
    if met == Met::Refusal {
        let _ = write!(text, "\n{:?}", identity(&store.refresh_token_path()));
    }
    // The settings' variables, and the CA and proxy ones.
    let vars = SETTINGS.iter().filter(|d| d.renewal).filter_map(|d| d.env);
    for var in vars.chain(crate::settings::CA_VARS).chain(crate::settings::PROXY_VARS) {
        let _ = write!(text, "\n{var}={:?}", env.get(var));
    }
    let _ = write!(text, "\n{:?}", settings.oci.cert_bundle);
    // What a federated source reads: each CI job brings its own bearer or JWT (round 96 F1), a
    // platform rotates the file.
    if let crate::settings::RenewMode::Federated(c) = &settings.mode {
        for var in c.source.env_names() {
            let _ = write!(text, "\n{var}={:?}", env.get(var));
        }
        if let crate::settings::SubjectTokenSource::File(path) = &c.source {
            let _ = write!(text, "\n{:?}", identity(path));
        }
    }
    // What the requests are made with, wherever it came from: `--status --client-secret …`
    // with the fix in hand counts, the same value given again or `--debug` does not.
    let idp = SETTINGS.iter().filter(|d| d.flag.is_some_and(|f| f.heading == H_IDP));
    for d in idp {
        let value = settings.origins.get(d.name).map(|(_, v)| v.expose().as_str());
        let _ = write!(text, "\n{}={value:?}", d.name);
    }
    crate::fsutil::sha256_hex(text.as_bytes())
}

#[cfg(test)]
mod tests;
