//! "Make the profile's session valid": the one renewal step every mode shares.
//!
//! 1. Read the UPST (the config's `security_token_file`, else the session folder's `token`); if it
//!    is valid for longer than the safety window, done — no lock, no network.
//! 2. Otherwise take the profile lock and read it again: another woci may have renewed it while
//!    this one waited, so 30 concurrent calls on an expired token make one renewal.
//! 3. Renew: IdP refresh grant (storing a rotated refresh token at once, since the old one is now
//!    spent), falling back to an interactive login on `invalid_grant` or when no refresh token is
//!    stored; then the token exchange with the profile's stable public key. Profiles without an IdP
//!    renew through the OCI auth service session refresh.
//! 4. Only after every network step succeeded: write the token atomically and upsert the config.
//!    A failure anywhere leaves the old token, refresh token, key and config as they were.

use crate::clock::{Clock, SharedClock};
use crate::error::{Error, Result};
use crate::http::{Http, HttpOptions};
use crate::jwt::{self, Freshness, UpstClaims};
use crate::keys::{self, KeyPair};
use crate::oidc::{self, IdpTokens, LoginOptions};
use crate::secret::SecretString;
use crate::settings::{PassphraseSource, RenewMode, Settings};
use crate::store::SessionStore;
use crate::{exchange, oci_config, session_refresh};
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// What the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Force {
    /// Renew only if the token is missing or inside the safety window.
    No,
    /// Renew now (`woci session refresh`, the auto-refresh loop).
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

/// Renews one profile's session. Cheap to create; the HTTP client is built on first use.
#[derive(Debug)]
pub struct Renewer {
    settings: Arc<Settings>,
    store: SessionStore,
    clock: SharedClock,
    env: Arc<crate::settings::Env>,
    http: OnceCell<Http>,
    passphrase: OnceCell<Option<SecretString>>,
    allow_login: bool,
}

impl Renewer {
    /// A renewer for the settings' profile.
    pub fn new(settings: Arc<Settings>, env: Arc<crate::settings::Env>, clock: SharedClock) -> Result<Renewer> {
        let store = SessionStore::new(&settings.home, &settings.profile)?;
        Ok(Renewer {
            settings,
            store,
            clock,
            env,
            http: OnceCell::new(),
            passphrase: OnceCell::new(),
            allow_login: true,
        })
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

    /// The process environment the settings were resolved from (the user's `HTTPS_PROXY`,
    /// `NO_PROXY`, … for the re-signing proxy).
    pub fn env(&self) -> &crate::settings::Env {
        &self.env
    }

    /// The key pair the profile's requests are signed with: the config's `key_file` (what `oci`
    /// signs with); for IdP profiles without one, the session folder's key, as a renewal picks it.
    /// Profiles renewed through session refresh need `key_file`.
    pub fn profile_key(&self) -> Result<KeyPair> {
        let profile = self.config_profile()?;
        let configured = profile.get("key_file").map(|p| expand_home(p.trim(), &self.settings.home));
        match (&self.settings.mode, configured) {
            (_, Some(path)) if path.is_file() => KeyPair::load(&path),
            (RenewMode::Idp { .. }, configured) => Ok(self.store.load_or_create_key(configured.as_deref())?.0),
            (RenewMode::SessionRefresh { .. }, _) => Err(Error::Config(format!(
                "profile `{}` has no readable `key_file` in `{}`",
                self.settings.profile,
                self.settings.oci_config_file.display()
            ))),
        }
    }

    /// The profile as the OCI config has it (empty if absent).
    pub fn config_profile(&self) -> Result<BTreeMap<String, String>> {
        Ok(oci_config::read_profile(&self.settings.oci_config_file, &self.settings.profile)?.unwrap_or_default())
    }

    /// Where this profile's token lives.
    pub fn token_path(&self, profile: &BTreeMap<String, String>) -> PathBuf {
        profile
            .get("security_token_file")
            .filter(|p| !p.trim().is_empty())
            .map(|p| expand_home(p.trim(), &self.settings.home))
            .unwrap_or_else(|| self.store.token_path())
    }

    /// Makes the session valid (see the module doc) and returns it.
    pub async fn ensure(&self, force: Force) -> Result<Session> {
        let profile = self.config_profile()?;
        let token_path = self.token_path(&profile);
        if force == Force::No {
            if let Some(s) = self.fresh_token(&token_path)? {
                return Ok(Session { action: Action::Reused, ..s });
            }
        }

        let lock_timeout = self.settings.login_timeout + Duration::from_secs(60);
        let store = self.store.clone();
        let _lock = tokio::task::spawn_blocking(move || store.lock(lock_timeout))
            .await
            .map_err(|e| Error::Other(format!("lock task failed: {e}")))??;
        tracing::debug!(profile = %self.settings.profile, "holding the renewal lock");

        // Re-read under the lock: the profile (another woci may have written it) and the token.
        let profile = self.config_profile()?;
        let token_path = self.token_path(&profile);
        if force == Force::No {
            if let Some(s) = self.fresh_token(&token_path)? {
                tracing::info!(profile = %self.settings.profile, "session was renewed by another woci process");
                return Ok(Session { action: Action::RenewedByOther, ..s });
            }
        }

        match &self.settings.mode {
            RenewMode::Idp { idp, exchange } => self.renew_via_idp(idp, exchange, &profile, &token_path, force).await,
            RenewMode::SessionRefresh { auth_endpoint } => {
                if force == Force::Login {
                    return Err(Error::Config(format!(
                        "profile `{}` has no identity provider in the manager config, so woci cannot log in; run `command oci session authenticate --profile {}` or add the profile to `woci_manager.ini`",
                        self.settings.profile, self.settings.profile
                    )));
                }
                self.renew_via_session_refresh(auth_endpoint.as_ref(), &profile, &token_path).await
            }
        }
    }

    fn fresh_token(&self, path: &Path) -> Result<Option<Session>> {
        let Some((token, claims)) = SessionStore::read_token_at(path)? else { return Ok(None) };
        let window = jwt::effective_window(&claims, self.settings.window);
        match jwt::freshness(claims.exp, self.clock.now(), window) {
            Freshness::Fresh { remaining } => {
                tracing::debug!(profile = %self.settings.profile, remaining_s = remaining.as_secs(), "session token is valid");
                Ok(Some(Session { token, claims, action: Action::Reused }))
            }
            f => {
                tracing::info!(profile = %self.settings.profile, state = ?f, "session token needs renewal");
                Ok(None)
            }
        }
    }

    async fn renew_via_idp(
        &self,
        idp: &oidc::IdpConfig,
        ex: &exchange::ExchangeConfig,
        profile: &BTreeMap<String, String>,
        token_path: &Path,
        force: Force,
    ) -> Result<Session> {
        let configured_key = profile.get("key_file").map(|p| expand_home(p.trim(), &self.settings.home));
        let (key, key_path) = self.store.load_or_create_key(configured_key.as_deref())?;
        let http = self.http().await?;

        let (tokens, action) = if force == Force::Login {
            (self.login(http, idp).await?, Action::LoggedIn)
        } else {
            let passphrase = self.passphrase().await?;
            match self.store.read_refresh_token(passphrase.as_ref())? {
                Some(rt) => match oidc::refresh(http, idp, &rt).await {
                    Ok(t) => (t, Action::Refreshed),
                    Err(e) if e.needs_login() => {
                        tracing::warn!(profile = %self.settings.profile, "the identity provider refused the stored refresh token ({e}); a new login is needed");
                        (self.login(http, idp).await?, Action::LoggedIn)
                    }
                    Err(e) => return Err(e),
                },
                None => {
                    tracing::info!(profile = %self.settings.profile, "no refresh token stored; a login is needed");
                    (self.login(http, idp).await?, Action::LoggedIn)
                }
            }
        };
        if let Some(rt) = &tokens.refresh_token {
            // The previous refresh token may be spent now (rotation): keep the new one even if the
            // exchange below fails.
            let passphrase = self.passphrase().await?;
            self.store.write_refresh_token(rt, passphrase.as_ref())?;
            let expiry = tokens.refresh_expires_in.map(|d| self.clock.unix() + d.as_secs() as i64);
            self.store.write_refresh_token_expiry(expiry)?;
            tracing::debug!(profile = %self.settings.profile, "stored the refresh token");
        }

        let upst = exchange::exchange(http, ex, &tokens.access_token, &key.spki_b64()).await?;
        let claims = self.check_new_token(&upst, &key)?;
        self.persist(&upst, &claims, token_path, Some((&key, &key_path)), profile)?;
        tracing::info!(profile = %self.settings.profile, action = ?action, expires_in_s = claims.exp - self.clock.unix(), "session token renewed");
        Ok(Session { token: upst, claims, action })
    }

    async fn renew_via_session_refresh(
        &self,
        auth_endpoint: Option<&url::Url>,
        profile: &BTreeMap<String, String>,
        token_path: &Path,
    ) -> Result<Session> {
        let name = &self.settings.profile;
        let Some((current, claims)) = SessionStore::read_token_at(token_path)? else {
            return Err(Error::Config(format!(
                "profile `{name}` has no session token and no identity provider in the manager config; run `command oci session authenticate --profile {name}` or add the profile to `woci_manager.ini`"
            )));
        };
        let now = self.clock.unix();
        if claims.exp <= now {
            return Err(Error::SessionExpired(format!(
                "the session token of profile `{name}` expired and OCI cannot refresh an expired session; run `command oci session authenticate --profile {name}`"
            )));
        }
        if let Some(end) = claims.session_expiry() {
            if end <= now {
                return Err(Error::SessionExpired(format!(
                    "the OCI session of profile `{name}` reached its end (`sess_exp`); run `command oci session authenticate --profile {name}`"
                )));
            }
        }
        let key_path =
            profile.get("key_file").map(|p| expand_home(p.trim(), &self.settings.home)).ok_or_else(|| {
                Error::Config(format!(
                    "profile `{name}` has no `key_file` in `{}`",
                    self.settings.oci_config_file.display()
                ))
            })?;
        let key = KeyPair::load(&key_path)?;
        let endpoint = match auth_endpoint {
            Some(u) => u.clone(),
            None => {
                let region =
                    self.settings.region.clone().or_else(|| profile.get("region").cloned()).ok_or_else(|| {
                        Error::Config(format!(
                            "profile `{name}` has no region; set `region` in the OCI config or pass `--region`"
                        ))
                    })?;
                session_refresh::auth_endpoint_for_region(&region)?
            }
        };
        let http = self.http().await?;
        let upst = session_refresh::refresh_session(http, &endpoint, &current, &key, self.clock.as_ref()).await?;
        let new_claims = self.check_new_token(&upst, &key)?;
        self.persist(&upst, &new_claims, token_path, None, profile)?;
        tracing::info!(profile = %name, expires_in_s = new_claims.exp - now, "session token refreshed through the OCI auth service");
        Ok(Session { token: upst, claims: new_claims, action: Action::SessionRefreshed })
    }

    /// A new UPST must decode, not be expired, and (when it says) be bound to our key.
    fn check_new_token(&self, upst: &SecretString, key: &KeyPair) -> Result<UpstClaims> {
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

    fn persist(
        &self,
        upst: &SecretString,
        claims: &UpstClaims,
        token_path: &Path,
        key: Option<(&KeyPair, &Path)>,
        profile: &BTreeMap<String, String>,
    ) -> Result<()> {
        if let Some(dir) = token_path.parent() {
            if dir == self.store.dir() {
                self.store.ensure_dir()?;
            }
        }
        crate::fsutil::write_atomic(token_path, upst.expose().as_bytes())?;
        let Some((key, key_path)) = key else { return Ok(()) };
        let mut entries: Vec<(&str, String)> = vec![
            ("fingerprint", key.fingerprint()),
            ("key_file", key_path.display().to_string()),
            ("security_token_file", token_path.display().to_string()),
        ];
        if let Some(t) = &claims.tenant {
            entries.push(("tenancy", t.clone()));
        }
        if let Some(r) = self.settings.region.clone().or_else(|| profile.get("region").cloned()) {
            entries.push(("region", r));
        }
        let changed = entries.iter().any(|(k, v)| profile.get(*k) != Some(v));
        if changed {
            let refs: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (*k, v.as_str())).collect();
            oci_config::upsert_profile(&self.settings.oci_config_file, &self.settings.profile, &refs)?;
            tracing::debug!(profile = %self.settings.profile, config = %self.settings.oci_config_file.display(), "updated the OCI config");
        }
        Ok(())
    }

    async fn login(&self, http: &Http, idp: &oidc::IdpConfig) -> Result<IdpTokens> {
        let s = &self.settings;
        if !self.allow_login {
            return Err(Error::Login(format!(
                "profile `{}` needs a new login, which a background renewal cannot do; run `woci session authenticate --profile {}`",
                s.profile, s.profile
            )));
        }
        let opts = LoginOptions {
            open_browser: s.open_browser,
            browser_command: s.browser_command.clone(),
            timeout: s.login_timeout,
            interactive: self.interactive(),
            profile: s.profile.clone(),
            on_url: None,
        };
        oidc::login(http, idp, &opts).await
    }

    /// A person can be asked to log in: stderr is a terminal, or a `BROWSER` command is set.
    fn interactive(&self) -> bool {
        std::io::stderr().is_terminal() || self.settings.browser_command.is_some()
    }

    /// The HTTP client, built once.
    pub async fn http(&self) -> Result<&Http> {
        self.http
            .get_or_try_init(|| async {
                let existing: Vec<PathBuf> =
                    self.settings.extra_ca_files.iter().filter(|p| p.is_file()).cloned().collect();
                Http::new(HttpOptions { extra_ca_files: existing, ..HttpOptions::default() })
            })
            .await
    }

    /// The refresh token passphrase, asked at most once per process.
    pub async fn passphrase(&self) -> Result<Option<SecretString>> {
        self.passphrase
            .get_or_try_init(|| async {
                match &self.settings.passphrase {
                    PassphraseSource::None => Ok(None),
                    PassphraseSource::Env(var) => match self.env.get(var) {
                        None => {
                            Err(Error::Config(format!("`{var}` (named by `refresh_token_passphrase_env`) is not set")))
                        }
                        Some(v) if v.is_empty() => {
                            tracing::warn!("`{var}` is empty; the refresh token is stored unencrypted");
                            Ok(None)
                        }
                        Some(v) => Ok(Some(SecretString::from(v.as_str()))),
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

fn expand_home(p: &str, home: &Path) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(p),
    }
}
