//! "Make the profile's session valid": the one renewal every mode shares.
//!
//! - [`facts`] reads what the decision needs from local files, once per look;
//! - [`plan`] decides, purely, what happens (reuse, finish the config, refresh, log in, session
//!   refresh, or nothing possible) — the same function `--status` reports;
//! - [`Renewer`] carries the plan out: without a lock when the token is good; otherwise under the
//!   profile lock, after reading the facts again (another woci may have renewed meanwhile, so 30
//!   concurrent calls on an expired token make one renewal).
//!
//! Order of writes, so that a kill at any instant leaves a state the next call completes without
//! a login: the rotated refresh token is stored (durably, signals held) before anything else; the
//! token is written before the config, and a config lacking woci's entries is finished by the
//! next call ([`plan::Plan::FinishConfig`]). A failed renewal never overwrites a good token,
//! refresh token, key or config; callers that waited for the lock while a renewal failed get
//! that failure at once (a record beside the lock) instead of repeating the whole retry cycle.

pub mod facts;
pub mod plan;

use crate::clock::{Clock, SharedClock};
use crate::critical;
use crate::error::{Error, Result};
use crate::http::{Http, HttpOptions, Transport};
use crate::jwt::{self, UpstClaims};
use crate::keys::{self, KeyPair};
use crate::oidc::{self, IdpTokens, LoginOptions};
use crate::secret::SecretString;
use crate::settings::{PassphraseSource, RenewMode, Settings};
use crate::store::{FailureRecord, SessionStore};
use crate::{exchange, oci_config, realm, session_refresh};
use facts::{CurrentToken, SessionFacts};
use plan::{plan, Plan};
use std::path::{Path, PathBuf};
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

/// A renewal that fails while the token still has this much left runs with the token instead.
pub const FALLBACK_MIN_LEFT: Duration = Duration::from_secs(60);

/// Renews one profile's session. Cheap to create; the HTTP client is built on first use.
#[derive(Debug)]
pub struct Renewer {
    settings: Arc<Settings>,
    store: SessionStore,
    clock: SharedClock,
    transport: Option<Arc<dyn Transport>>,
    http: OnceCell<Http>,
    passphrase: OnceCell<Option<SecretString>>,
    allow_login: bool,
}

impl Renewer {
    /// A renewer for the settings' profile.
    pub fn new(settings: Arc<Settings>, clock: SharedClock) -> Result<Renewer> {
        let store =
            SessionStore::new(&settings.home, &settings.profile)?.with_runtime_dir(settings.runtime_dir.clone());
        Ok(Renewer {
            settings,
            store,
            clock,
            transport: None,
            http: OnceCell::new(),
            passphrase: OnceCell::new(),
            allow_login: true,
        })
    }

    /// Sends woci's requests through `transport` instead of the network (tests).
    pub fn with_transport(mut self, transport: Arc<dyn Transport>) -> Renewer {
        self.transport = Some(transport);
        self
    }

    /// Forbids interactive logins (background renewals: auto-refresh loop, daemon). A refused
    /// refresh token then becomes an error telling the user how to log in.
    pub fn without_login(mut self) -> Renewer {
        self.allow_login = false;
        self
    }

    /// The session store.
    pub fn store(&self) -> &SessionStore {
        &self.store
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The facts of the profile now.
    pub fn facts(&self) -> Result<SessionFacts> {
        Ok(SessionFacts::read(&self.settings, &self.store)?.0)
    }

    /// The key pair the profile's requests are signed with: the config's `key_file` (what `oci`
    /// signs with); for IdP profiles without one, the session folder's key, as a renewal picks it.
    pub fn profile_key(&self) -> Result<KeyPair> {
        let facts = self.facts()?;
        match &self.settings.mode {
            RenewMode::Idp { .. } | RenewMode::Federated { .. } => Ok(self.idp_key(&facts)?.0),
            _ => self.session_key(&facts),
        }
    }

    /// Makes the session valid (see the module doc) and returns it.
    pub async fn ensure(&self, force: Force) -> Result<Session> {
        let (facts, current) = SessionFacts::read(&self.settings, &self.store)?;
        let decision = plan(&facts, force, self.clock.unix());
        if let Plan::Reuse { remaining } = decision.plan {
            tracing::debug!(profile = %self.settings.profile, remaining_s = remaining.as_secs(), "session token is valid");
            return reused(&facts, current, Action::Reused);
        }
        tracing::debug!(profile = %self.settings.profile, "{}", decision.reason);

        let asked_at = crate::clock::unix_millis(self.clock.now());
        let lock_timeout = self.settings.login_timeout + Duration::from_secs(60);
        let store = self.store.clone();
        let (_lock, waited) = tokio::task::spawn_blocking(move || store.lock_noting_wait(lock_timeout))
            .await
            .map_err(|e| Error::Other(format!("lock task failed: {e}")))??;
        tracing::debug!(profile = %self.settings.profile, waited, "holding the renewal lock");
        self.store.sweep_stray_temp_files();
        if waited {
            // A renewal that failed while this call waited fails this call too, at once.
            if let Some(f) = self.store.failure_since(asked_at) {
                tracing::debug!("another woci's renewal failed while this one waited; not repeating it");
                return Err(f.into_error());
            }
        }

        // Read again under the lock: another woci may have renewed (or written the config).
        let (facts, current) = SessionFacts::read(&self.settings, &self.store)?;
        let decision = plan(&facts, force, self.clock.unix());
        let result = match decision.plan {
            Plan::Reuse { .. } => {
                tracing::info!(profile = %self.settings.profile, "the session was renewed by another woci");
                return reused(&facts, current, Action::RenewedByOther);
            }
            Plan::FinishConfig { .. } => self.finish_config(&facts, current).await,
            Plan::Refresh => self.renew_via_idp(&facts, false).await,
            Plan::Login => self.renew_via_idp(&facts, true).await,
            Plan::SessionRefresh => self.renew_via_session_refresh(&facts, current).await,
            Plan::Exchange => crate::federation::renew(self, &facts).await,
            Plan::Impossible { .. } => Err(decision.into_error()),
        };
        match &result {
            Ok(s) => {
                self.store.clear_failure();
                let left = s.claims.exp - self.clock.unix();
                tracing::info!(
                    "session of profile `{}` {}; valid for {}",
                    self.settings.profile,
                    describe(s.action),
                    crate::daemon::fmt_secs(left.max(0))
                );
            }
            // Waiting callers repeat local checks in no time; what they must not repeat is a
            // round of requests (or a login) that just failed.
            Err(e) if e.involved_the_network() => {
                let at = crate::clock::unix_millis(self.clock.now());
                self.store.record_failure(&FailureRecord { at, exit_code: e.exit_code(), message: e.to_string() });
            }
            Err(_) => {}
        }
        result
    }

    /// [`Self::ensure`] for a call that runs a command: when renewal fails but the current token
    /// is still valid for more than [`FALLBACK_MIN_LEFT`], warn once and run with it (as the AWS
    /// SDK's credential cache keeps serving a still-valid credential).
    pub async fn ensure_or_keep(&self) -> Result<Session> {
        let err = match self.ensure(Force::No).await {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        let Ok((facts, CurrentToken(Some(token)))) = SessionFacts::read(&self.settings, &self.store) else {
            return Err(err);
        };
        let Some(claims) = facts.claims().cloned() else { return Err(err) };
        let left = claims.exp - self.clock.unix();
        if left <= plan::secs(FALLBACK_MIN_LEFT) || err.needs_login() && !self.allow_login {
            return Err(err);
        }
        tracing::warn!(
            "renewing the session of profile `{}` failed ({err}); running with the current token, valid for {}",
            self.settings.profile,
            crate::daemon::fmt_secs(left)
        );
        Ok(Session { token, claims, action: Action::KeptAfterFailure })
    }

    async fn finish_config(&self, facts: &SessionFacts, current: CurrentToken) -> Result<Session> {
        let session = reused(facts, current, Action::Reused)?;
        if let RenewMode::Idp { .. } | RenewMode::Federated { .. } = self.settings.mode {
            let (key, key_path) = self.idp_key(facts)?;
            self.write_config(facts, &session.claims, &key, &key_path)?;
            tracing::info!(profile = %self.settings.profile, "finished the OCI config entries an earlier run left out");
        }
        Ok(session)
    }

    /// The IdP profile's key: the configured `key_file` (which must exist: a named but missing key
    /// is never silently replaced), else the session folder's, created on first use. Keys OCI
    /// cannot bind a session to (not RSA, under 2048 bits) fail to load, before anything is spent.
    pub(crate) fn idp_key(&self, facts: &SessionFacts) -> Result<(KeyPair, PathBuf)> {
        self.store.load_or_create_key(facts.oci.key_file.as_deref())
    }

    fn session_key(&self, facts: &SessionFacts) -> Result<KeyPair> {
        match &facts.oci.key_file {
            Some(path) if path.is_file() => KeyPair::load(path),
            _ => Err(Error::Config(format!(
                "profile `{}` has no readable `key_file` in `{}`",
                facts.profile,
                facts.config_file.display()
            ))),
        }
    }

    async fn renew_via_idp(&self, facts: &SessionFacts, login: bool) -> Result<Session> {
        let RenewMode::Idp { idp, exchange: ex } = &self.settings.mode else {
            return Err(Error::Other("internal: IdP renewal without IdP settings".into()));
        };
        let (key, key_path) = self.idp_key(facts)?;
        let http = self.http().await?;
        // The passphrase is known before anything is spent: a prompt never interrupts a rotation.
        let passphrase = self.passphrase().await?;

        let (tokens, action) = if login {
            (self.login(http, idp).await?, Action::LoggedIn)
        } else {
            match self.store.read_refresh_token(passphrase.as_ref())? {
                Some(rt) => match self.refresh_grant(http, idp, &rt, passphrase.as_ref()).await {
                    Ok(t) => (t, Action::Refreshed),
                    Err(e) if e.needs_login() && self.allow_login && self.settings.interactive => {
                        tracing::warn!(
                            "the identity provider refused the stored refresh token of profile `{}` ({e}); a new login is needed",
                            self.settings.profile
                        );
                        (self.login(http, idp).await?, Action::LoggedIn)
                    }
                    // No one to log in: one line that says both why and what to do.
                    Err(e) if e.needs_login() => return Err(self.login_impossible(Some(&e))),
                    Err(e) => return Err(e),
                },
                None => (self.login(http, idp).await?, Action::LoggedIn),
            }
        };

        let upst = exchange::exchange(http, ex, &tokens.access_token, &key.spki_b64()).await?;
        failpoint("renew::after_exchange");
        let claims = self.check_new_token(&upst, &key)?;
        self.write_token(facts, &upst)?;
        self.write_config(facts, &claims, &key, &key_path)?;
        failpoint("renew::after_config_written");
        Ok(Session { token: upst, claims, action })
    }

    /// The refresh grant, as a critical section: from sending it until the rotated refresh token
    /// is durably stored, SIGINT/SIGTERM/SIGHUP are held and acted on right after.
    async fn refresh_grant(
        &self,
        http: &Http,
        idp: &oidc::IdpConfig,
        rt: &SecretString,
        passphrase: Option<&SecretString>,
    ) -> Result<IdpTokens> {
        // Spending the refresh token where its successor cannot be stored would lose the session.
        self.store.check_writable()?;
        let _held = critical::hold();
        failpoint("renew::before_grant");
        let tokens = oidc::refresh(http, idp, rt).await?;
        failpoint("renew::after_grant");
        self.keep_refresh_token(&tokens, passphrase).await;
        failpoint("renew::after_refresh_token_stored");
        Ok(tokens)
    }

    /// Stores a new refresh token: retried, and as a last resort saved to the rescue file the
    /// store reads next time, with one line saying where. Never dropped.
    async fn keep_refresh_token(&self, tokens: &IdpTokens, passphrase: Option<&SecretString>) {
        let Some(rt) = &tokens.refresh_token else { return };
        let mut delay = Duration::from_millis(100);
        let mut last = None;
        for _ in 0..3 {
            match self.store.write_refresh_token(rt, passphrase) {
                Ok(()) => {
                    let expiry = tokens.refresh_expires_in.map(|d| self.clock.unix() + plan::secs(d));
                    if let Err(e) = self.store.write_refresh_token_expiry(expiry) {
                        tracing::warn!("cannot record the refresh token's expiry: {e}");
                    }
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(delay).await;
            delay *= 4;
        }
        let err = last.map(|e| e.to_string()).unwrap_or_default();
        match self.store.write_rescue(rt, passphrase) {
            Ok(path) => tracing::warn!(
                "cannot store the new refresh token of profile `{}` ({err}); it is saved in `{}` and used from there until the session folder can be written",
                self.settings.profile,
                path.display()
            ),
            Err(e) => tracing::error!(
                "cannot store the new refresh token of profile `{}` ({err}) nor save it elsewhere ({e}); the next renewal will need a login",
                self.settings.profile
            ),
        }
    }

    async fn renew_via_session_refresh(&self, facts: &SessionFacts, current: CurrentToken) -> Result<Session> {
        let RenewMode::SessionRefresh { auth_endpoint } = &self.settings.mode else {
            return Err(Error::Other("internal: session refresh without its settings".into()));
        };
        let name = &self.settings.profile;
        let CurrentToken(Some(token)) = current else {
            return Err(Error::SessionExpired(format!("profile `{name}` has no session token")));
        };
        let key = self.session_key(facts)?;
        let endpoint = match auth_endpoint {
            Some(u) => u.clone(),
            None => {
                let region = self.settings.region.clone().or_else(|| facts.oci.region.clone()).ok_or_else(|| {
                    Error::Config(format!(
                        "profile `{name}` has no region; set `region` in `{}` or pass `--region`",
                        facts.config_file.display()
                    ))
                })?;
                realm::auth_endpoint_for_region(&region)?
            }
        };
        let http = self.http().await?;
        let upst = session_refresh::refresh_session(http, &endpoint, &token, &key, self.clock.as_ref()).await?;
        let claims = self.check_new_token(&upst, &key)?;
        self.write_token(facts, &upst)?;
        Ok(Session { token: upst, claims, action: Action::SessionRefreshed })
    }

    /// A new UPST must decode, not be expired, and (when it says) be bound to our key.
    pub(crate) fn check_new_token(&self, upst: &SecretString, key: &KeyPair) -> Result<UpstClaims> {
        let claims = jwt::decode_upst(upst.expose()).map_err(|e| Error::Protocol {
            service: "token exchange",
            reason: format!("the new session token is not a JWT: {e}"),
        })?;
        if claims.exp <= self.clock.unix() {
            return Err(Error::Protocol {
                service: "token exchange",
                reason: "the new session token is already expired (check the clock)".into(),
            });
        }
        if let Some(jwk) = &claims.jwk {
            if let Ok(bound) = keys::public_key_from_jwk_json(jwk) {
                if keys::fingerprint_of(&bound) != key.fingerprint() {
                    return Err(Error::Protocol {
                        service: "token exchange",
                        reason: "the new session token is bound to a different public key".into(),
                    });
                }
            }
        }
        Ok(claims)
    }

    pub(crate) fn write_token(&self, facts: &SessionFacts, upst: &SecretString) -> Result<()> {
        if facts.token_path.parent() == Some(self.store.dir()) {
            self.store.ensure_dir()?;
        }
        crate::fsutil::write_atomic(&facts.token_path, upst.expose().as_bytes())?;
        failpoint("renew::after_token_written");
        Ok(())
    }

    /// Upserts woci's entries of an IdP profile (nothing is written when they are already there).
    pub(crate) fn write_config(
        &self,
        facts: &SessionFacts,
        claims: &UpstClaims,
        key: &KeyPair,
        key_path: &Path,
    ) -> Result<()> {
        let mut entries: Vec<(&str, String)> = vec![
            ("fingerprint", key.fingerprint()),
            ("key_file", crate::container::config_value(key_path, &self.settings)),
            ("security_token_file", crate::container::config_value(&facts.token_path, &self.settings)),
        ];
        if let Some(t) = &claims.tenant {
            entries.push(("tenancy", t.clone()));
        }
        if let Some(r) = self.settings.region.clone().or_else(|| facts.oci.region.clone()) {
            entries.push(("region", r));
        }
        if entries.iter().any(|(k, v)| facts.oci.raw.get(*k) != Some(v)) {
            let refs: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (*k, v.as_str())).collect();
            oci_config::upsert_profile(&facts.config_file, &facts.profile, &refs)?;
            tracing::debug!(profile = %facts.profile, config = %facts.config_file.display(), "updated the OCI config");
        }
        Ok(())
    }

    /// Why a needed login cannot happen here (a background renewal, or no terminal).
    fn login_impossible(&self, cause: Option<&Error>) -> Error {
        let p = &self.settings.profile;
        let cause = cause.map(|e| format!(" ({e})")).unwrap_or_default();
        if !self.allow_login {
            return Error::Login(format!(
                "profile `{p}` needs a new login{cause}, which a background renewal cannot do; run `woci session authenticate --profile {p}`"
            ));
        }
        Error::Login(format!(
            "interactive login required for profile `{p}`{cause} but no terminal is attached; run `woci session authenticate --profile {p}` in a terminal"
        ))
    }

    async fn login(&self, http: &Http, idp: &oidc::IdpConfig) -> Result<IdpTokens> {
        let s = &self.settings;
        if !self.allow_login {
            return Err(self.login_impossible(None));
        }
        let opts = LoginOptions {
            open_browser: s.open_browser,
            browser_command: s.browser_command.clone(),
            timeout: s.login_timeout,
            interactive: s.interactive,
            profile: s.profile.clone(),
            on_url: None,
        };
        self.store.check_writable()?;
        let _held = critical::hold();
        let tokens = if s.device_login {
            oidc::device::login(http, idp, &s.device, &opts).await?
        } else {
            oidc::login(http, idp, &opts).await?
        };
        self.keep_refresh_token(&tokens, self.passphrase().await?.as_ref()).await;
        Ok(tokens)
    }

    /// The HTTP client, built once.
    pub async fn http(&self) -> Result<&Http> {
        self.http
            .get_or_try_init(|| async {
                let s = &self.settings;
                let options = HttpOptions {
                    extra_ca_files: s.extra_ca_files.iter().filter(|p| p.is_file()).cloned().collect(),
                    proxy: s.upstream_proxy.clone(),
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

    /// The refresh token passphrase, asked at most once per process.
    pub async fn passphrase(&self) -> Result<Option<SecretString>> {
        self.passphrase
            .get_or_try_init(|| async {
                match &self.settings.passphrase {
                    PassphraseSource::None => Ok(None),
                    PassphraseSource::Env { var, value } => match value {
                        None => {
                            Err(Error::Config(format!("`{var}` (named by `refresh_token_passphrase_env`) is not set")))
                        }
                        Some(v) if v.expose().is_empty() => {
                            tracing::warn!("`{var}` is empty; the refresh token is stored unencrypted");
                            Ok(None)
                        }
                        Some(v) => Ok(Some(v.clone())),
                    },
                    PassphraseSource::Prompt => {
                        let prompt =
                            format!("woci: refresh token passphrase for profile `{}`: ", self.settings.profile);
                        let p = tokio::task::spawn_blocking(move || rpassword::prompt_password(prompt))
                            .await
                            .map_err(|e| Error::Other(e.to_string()))?
                            .map_err(|e| Error::Login(format!("cannot ask for the refresh token passphrase: {e}")))?;
                        Ok(if p.is_empty() { None } else { Some(SecretString::from(p)) })
                    }
                }
            })
            .await
            .cloned()
    }
}

fn reused(facts: &SessionFacts, current: CurrentToken, action: Action) -> Result<Session> {
    match (current, facts.claims()) {
        (CurrentToken(Some(token)), Some(claims)) => Ok(Session { token, claims: claims.clone(), action }),
        _ => Err(Error::Other("internal: no token to reuse".into())),
    }
}

/// How a session became valid, in words (log lines, `session refresh` / `authenticate` reports).
pub fn describe(a: Action) -> &'static str {
    match a {
        Action::Reused => "is valid",
        Action::RenewedByOther => "was renewed by another woci",
        Action::Refreshed => "was refreshed",
        Action::LoggedIn => "was created by a new login",
        Action::SessionRefreshed => "was refreshed through the OCI auth service",
        Action::Federated => "was minted from the subject token source",
        Action::KeptAfterFailure => "could not be renewed; the current token is still valid",
    }
}

/// Test-only fault injection (`--features failpoints`, `FAILPOINTS=name=return(SIGTERM)`):
/// raise a signal or abort at a step of a renewal. Compiled out of normal builds.
#[cfg(feature = "failpoints")]
fn failpoint(name: &'static str) {
    fail::fail_point!(name, |arg| critical::failpoint_action(arg.as_deref()));
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
fn failpoint(_name: &'static str) {}

#[cfg(test)]
mod tests;
