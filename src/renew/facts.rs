//! What renewal decisions look at, read once from local files: the profile's typed entries in
//! `~/.oci/config` ([`OciProfile`]), the token, the key, the refresh token (presence, encryption,
//! expiry), the session folder's safety, how the profile renews and whether the config already
//! carries woci's entries. No network, no lock, no prompt; [`super::plan::plan`] turns these facts
//! into a decision — the same one for the call and for `--status`, so the two cannot disagree.

use crate::error::{exit, Error, Result};
use crate::fsutil;
use crate::jwt::UpstClaims;
use crate::keys::KeyPair;
pub use crate::oci_config::ConfigState;
use crate::secret::SecretString;
use crate::settings::{PassphraseSource, RenewMode, Settings};
use crate::store::{InterruptedRotation, RefreshTokenState, SessionStore, StoredRefreshToken};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The profile's entries in the OCI config that woci reads, with `~` expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciProfile {
    /// `key_file`: the private key `oci` signs with.
    pub key_file: Option<PathBuf>,
    /// `security_token_file`: where `oci` reads the UPST.
    pub security_token_file: Option<PathBuf>,
    /// `region`.
    pub region: Option<String>,
    /// `fingerprint`.
    pub fingerprint: Option<String>,
    /// Every key as written (for deciding whether an upsert changes anything).
    pub raw: BTreeMap<String, String>,
    /// `security_token_file` comes from `[DEFAULT]` only, while `user` is the profile's own.
    pub token_file_from_default: bool,
}

impl OciProfile {
    /// `user` and no `security_token_file` of its own (one from `[DEFAULT]` is another profile's
    /// session: `oci` signs with the API key and warns it is unused), and no woci IdP or source
    /// settings (`mode`): an API-key profile, signed the way `oci` signs by default, where woci
    /// keeps no session.
    pub fn is_api_key(&self, mode: &RenewMode) -> bool {
        matches!(mode, RenewMode::SessionRefresh(_))
            && (self.security_token_file.is_none() || self.token_file_from_default)
            && self.raw.get("user").is_some_and(|u| !u.trim().is_empty())
    }

    /// Reads the settings' profile from their OCI config. A damaged config is an error; a
    /// missing file or section is a [`ConfigState`].
    pub fn read(settings: &Settings) -> Result<(ConfigState, OciProfile)> {
        let config_file = &settings.oci_config_file;
        let (state, raw, inherited) = crate::oci_config::read_profile_split(config_file, &settings.profile)?;
        // configparser joins a line indented deeper than a key's to its value: one of these keys
        // then holds two lines, which neither `oci` nor woci can use, and rewriting it would drop
        // the user's line. Said, never rewritten.
        let managed = ["key_file", "security_token_file", "fingerprint", "tenancy", "region"];
        if let Some(key) = managed.into_iter().find(|k| raw.get(*k).is_some_and(|v| v.contains('\n'))) {
            return Err(Error::corrupt(
                config_file,
                format!(
                    "`{key}` of profile `{}`{} goes on over the next line, which is indented deeper than it \
                     (configparser, so oci, reads that as part of the value); indent every key alike",
                    settings.profile,
                    if inherited.contains(key) { " (in `[DEFAULT]`)" } else { "" }
                ),
            ));
        }
        // A profile woci keeps a session for (IdP or federated) has a session of its own: a key
        // or token file it only inherits from `[DEFAULT]` is another profile's (`oci session
        // authenticate --profile DEFAULT`'s, or the user's API key), never renewed into.
        let own_session = !matches!(settings.mode, RenewMode::SessionRefresh(_) | RenewMode::Unusable(_));
        let session_key = |k: &str| !(own_session && inherited.contains(k));
        let text = |k: &str| raw.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        // `~/…`, and `/oracle/.oci/…` written by `oci` inside the official container image.
        let path = |k: &str| text(k).map(|v| crate::oci_config::host_path(&v, &settings.home, config_file));
        let profile = OciProfile {
            key_file: path("key_file").filter(|_| session_key("key_file")),
            security_token_file: path("security_token_file").filter(|_| session_key("security_token_file")),
            region: text("region"),
            fingerprint: text("fingerprint"),
            token_file_from_default: inherited.contains("security_token_file") && !inherited.contains("user"),
            raw,
        };
        // A session woci renews goes where the config says, bound to the key it names: a config
        // another user owns or can write (a file planted in `/tmp`) would choose both for them.
        // An API-key call goes to oci as it is, which reads any config.
        if state == ConfigState::Present && !profile.is_api_key(&settings.mode) {
            if let Ok(meta) = std::fs::metadata(config_file) {
                crate::access::refuse_foreign(
                    config_file,
                    &meta,
                    "OCI config",
                    "it names the key a session is bound to and where its token goes",
                    "use a config of your own (`--config-file`, `OCI_CLI_CONFIG_FILE`)",
                )?;
            }
        }
        Ok((state, profile))
    }

    /// The key pair the profile's requests are signed with: the config's `key_file` (what `oci`
    /// signs with); for IdP profiles without one, the session folder's, created on first use.
    pub fn signing_key(&self, settings: &Settings, store: &SessionStore) -> Result<KeyPair> {
        match (&settings.mode, &self.key_file) {
            (RenewMode::SessionRefresh(_), Some(p)) => KeyPair::load(p),
            (RenewMode::SessionRefresh(_), None) => Err(Error::Config(format!(
                "profile `{}` has no `key_file` in `{}`",
                settings.profile,
                settings.oci_config_file.display()
            ))),
            _ => Ok(store.load_or_create_key(self.key_file.as_deref())?.0),
        }
    }
}

/// The token file, as read.
#[derive(Debug, Clone)]
pub enum TokenInput {
    /// Absent or empty.
    Missing,
    /// Present but not a UPST (the reason, never the content).
    Corrupt(String),
    /// A decodable UPST.
    Present(Token),
}

/// A readable session token.
#[derive(Debug, Clone)]
pub struct Token {
    /// The UPST itself (a secret; facts are never printed whole outside tests).
    pub secret: SecretString,
    /// Its claims.
    pub claims: UpstClaims,
}

/// The key a session is bound to, as found (checked without the cost of loading it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// No key yet (an IdP profile's session folder key is created at the first renewal).
    Missing,
    /// A readable RSA key of sufficient size.
    Usable,
    /// A key encrypted with a passphrase (`pass_phrase` in the config): `oci` signs with it, so a
    /// valid token is usable, but woci cannot renew with it.
    Encrypted(PathBuf),
    /// A key that exists but cannot be used: why, and the exit code a call would have.
    Unusable {
        /// The message (names the file and the fix).
        reason: String,
        /// The exit code.
        exit_code: u8,
    },
}

/// Where the passphrase would come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseInput {
    /// None configured.
    None,
    /// An environment variable, and whether it is set (non-empty).
    Env {
        /// Variable name.
        var: String,
        /// Whether it is set (empty means: store the refresh token unencrypted).
        set: bool,
    },
    /// Asked on the terminal at the next call.
    Prompt,
}

/// The refresh token, as read without the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshInput {
    /// Absent / plain / encrypted.
    pub state: RefreshTokenState,
    /// The passphrase source.
    pub passphrase: PassphraseInput,
    /// `Some(true/false)` when decryption was attempted with the environment's passphrase
    /// (`--status` tries; a renewal simply decrypts).
    pub decryptable: Option<bool>,
    /// Why the identity provider refused the stored refresh token at an earlier renewal, if it did.
    pub rejected: Option<String>,
    /// Why the stored refresh token is unreadable whatever the passphrase, if it is.
    pub damage: Option<String>,
    /// Its expiry: the refresh token's own `exp` when it is a readable JWT (looked at by
    /// `--status`), else what the IdP said when it issued it (`refresh_expires_in`).
    pub expires_at: Option<i64>,
    /// Whether `expires_at` is what the IdP said (recorded by this machine's clock, as the token
    /// arrived), not a JWT's own `exp` (the IdP's clock).
    pub expiry_recorded: bool,
    /// The rescued copy the next renewal reads (the session folder could not take it).
    pub rescued: Option<PathBuf>,
    /// A refresh grant sent with it by a woci that ended before the outcome (pid, epoch ms).
    pub unsettled: Option<(u32, i64)>,
}

/// Everything a renewal decision looks at.
#[derive(Debug, Clone)]
pub struct SessionFacts<'s> {
    /// Profile name.
    pub profile: String,
    /// The options of a command that selects this profile's settings again (`--profile P`, a
    /// `--config-file`/`--manager-config` given), for the fixes messages name.
    pub woci_selection: String,
    /// The same for `oci`'s own commands (no `--manager-config`).
    pub oci_selection: String,
    /// How the profile renews (its typed configuration).
    pub mode: &'s RenewMode,
    /// The OCI config file.
    pub config_file: PathBuf,
    /// Whether it has the profile.
    pub config: ConfigState,
    /// Where the OCI config's path was given (a flag, a variable, the INI), if not the default.
    pub config_named: Option<String>,
    /// The profile's entries.
    pub oci: OciProfile,
    /// Token file path.
    pub token_path: PathBuf,
    /// The token.
    pub token: TokenInput,
    /// The configured safety window.
    pub window: Duration,
    /// Whether this renewer renews ahead of the window ([`Settings::renews_ahead`]).
    pub ahead: bool,
    /// The refresh token.
    pub refresh: RefreshInput,
    /// For IdP profiles: the config already names the key, the token file and the fingerprint
    /// (false after a run stopped between writing the token and the config).
    pub config_current: bool,
    /// The manager INI that was read, if any, and whether it has a section for the profile.
    pub manager_ini: Option<(PathBuf, bool)>,
    /// Without a section for the profile: the section that was probably meant.
    pub near_section: Option<String>,
    /// For federated profiles with an `env:` source: the `exp` of the JWT it holds.
    pub source_expires_at: Option<i64>,
    /// For federated profiles: why the subject token source cannot give a token now, if so.
    pub source_problem: Option<String>,
    /// The key the session is bound to.
    pub key: KeyState,
    /// The token's `jwk` claim names another key than that one (the key file was replaced).
    pub key_mismatch: bool,
    /// Why the session folder is not safe to use (a symlink, a world-writable `~/.oci`), if so.
    pub unsafe_folder: Option<String>,
    /// Why the renewal lock cannot be taken (something other than a file at its path), if so.
    pub lock_problem: Option<String>,
    /// Why a renewal could not write its files (the session folder, the token file's folder:
    /// read-only, not the user's), if so; found without writing.
    pub unwritable: Option<String>,
    /// Why woci's entries could not be written into the OCI config's folder, if they are due
    /// (`config_current` false) and so.
    pub config_unwritable: Option<String>,
    /// Read by `--status` only ([`Self::with_stopped_holder`]): a stopped process (Ctrl-Z)
    /// holding the renewal lock, which every renewal waits for, or the login lock (`true`),
    /// which only a login waits for.
    pub stopped_holder: Option<(u32, bool)>,
    /// How far the servers' time is behind token time, seconds (0 unless this machine's clock is
    /// ahead): what OCI's own judgements (a session refresh) go by ([`Self::in_token_time`]).
    pub servers_behind: i64,
    /// A refresh-token rotation a killed woci left half done (login profiles), if any.
    pub rotation: Option<InterruptedRotation>,
}

fn unknown(config: &ConfigState, manager_ini: Option<&(PathBuf, bool)>, store: &SessionStore) -> bool {
    !matches!(config, ConfigState::Present) && !manager_ini.is_some_and(|(_, own)| *own) && !store.dir().exists()
}

/// [`SessionFacts::profile_unknown`] of a profile whose facts are not read (a `fallback_profile`);
/// a damaged OCI config counts as known (the call reports it).
pub fn profile_unknown(settings: &Settings, store: &SessionStore) -> bool {
    OciProfile::read(settings).is_ok_and(|(config, _)| unknown(&config, settings.ini_file.as_ref(), store))
}

/// How far [`SessionFacts::read`] looks into the stored refresh token beyond what a call needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// Not at all (a call, which sends it anyway).
    No,
    /// A plain JWT refresh token's own expiry (the prompt).
    Plain,
    /// That, and whether the environment's passphrase opens an encrypted one (`--status`).
    Passphrase,
}

impl<'s> SessionFacts<'s> {
    /// Reads the facts of the settings' profile; with `peek` other than [`Peek::No`] (`--status`,
    /// the prompt), also a JWT refresh token's own expiry, and with [`Peek::Passphrase`]
    /// (`--status`) whether the environment's passphrase opens it (a key derivation).
    pub fn read(settings: &'s Settings, store: &SessionStore, peek: Peek) -> Result<SessionFacts<'s>> {
        let (config, oci) = OciProfile::read(settings)?;
        let token_path = oci.security_token_file.clone().unwrap_or_else(|| store.token_path());
        let token = match SessionStore::read_token_at(&token_path) {
            Ok(None) => TokenInput::Missing,
            Ok(Some((secret, claims))) => TokenInput::Present(Token { secret, claims }),
            Err(Error::CorruptFile { reason, .. }) => TokenInput::Corrupt(reason),
            Err(e) => return Err(e),
        };
        // A refresh token that cannot be read at all (a folder, over 1 MiB) matters only when a
        // renewal needs it: a valid token still serves the call.
        let (stored, unreadable) = match store.stored_refresh_token() {
            Ok(stored) => (stored, None),
            Err(e) => (StoredRefreshToken::default(), Some(e.to_string())),
        };
        let state = if unreadable.is_some() { RefreshTokenState::Plain } else { stored.state() };
        let damage = unreadable.or_else(|| stored.damage());
        let (passphrase, env_pass) = match &settings.mode {
            RenewMode::Login(c) => match &c.passphrase {
                PassphraseSource::None => (PassphraseInput::None, None),
                PassphraseSource::Env { var, value } => {
                    // Set but empty stores the refresh token unencrypted (and opens no envelope).
                    let set = value.is_some();
                    let value = value.as_ref().filter(|v| !v.expose().is_empty());
                    (PassphraseInput::Env { var: var.clone(), set }, value)
                }
                PassphraseSource::Prompt => (PassphraseInput::Prompt, None),
            },
            _ => (PassphraseInput::None, None),
        };
        let opened = match state {
            _ if peek == Peek::No => None,
            RefreshTokenState::Encrypted if peek == Peek::Passphrase => env_pass.map(|p| stored.open(Some(p))),
            RefreshTokenState::Encrypted => None,
            _ => Some(stored.open(None)),
        };
        // An empty variable opens no envelope: known without trying, calls and `--status` alike.
        let empty_var = matches!(passphrase, PassphraseInput::Env { set: true, .. }) && env_pass.is_none();
        let decryptable = match opened.as_ref().filter(|_| state == RefreshTokenState::Encrypted) {
            _ if empty_var && state == RefreshTokenState::Encrypted => Some(false),
            opened => opened.map(Result::is_ok),
        };
        let jwt_expiry = opened.and_then(|r| r.ok().flatten()).and_then(|rt| jwt_exp(&rt));
        let rescued = stored.rescued().map(Path::to_owned);
        let rotation = stored.rotation.filter(|_| matches!(settings.mode, RenewMode::Login(_)));
        // The recorded expiry belongs to the stored refresh token, not to a rotation's new one.
        let completes_rotation = matches!(rotation, Some(InterruptedRotation::Complete(_)));
        let recorded =
            (state != RefreshTokenState::Absent && !completes_rotation).then(|| store.refresh_token_expiry()).flatten();
        // A JWT refresh token says its own expiry; otherwise what the IdP said when it issued it.
        let expires_at = jwt_expiry.or(recorded);
        let session_refresh = matches!(settings.mode, RenewMode::SessionRefresh(_));
        let config_current = session_refresh
            || (oci.key_file.is_some() && oci.security_token_file.is_some() && oci.fingerprint.is_some());
        let fix_missing = if session_refresh {
            format!("restore it, or run `command oci session authenticate {}`", settings.oci_selection)
        } else {
            "restore it, or delete the `key_file` line so that woci creates a new key".to_owned()
        };
        // A session-refresh profile signs with the config's key only; others fall back to their own.
        // woci's own key gone with its folder is made again, as if the config named none; a token
        // bound to it is bound to a key no request can be signed with.
        let own_gone = !session_refresh && oci.key_file.as_deref().is_some_and(|p| store.own_key_gone(p));
        let configured = oci.key_file.clone().filter(|_| !own_gone);
        let key_file = configured.or_else(|| store.own_key_file().filter(|_| !session_refresh));
        let (key, modulus) = key_file.map_or((KeyState::Missing, None), |p| {
            key_state(&p, &settings.profile, &settings.oci_config_file, &fix_missing)
        });
        let key_mismatch = match (&token, modulus) {
            (TokenInput::Present(t), Some(m)) => crate::keys::bound_elsewhere(t.claims.jwk.as_deref(), &m),
            (TokenInput::Present(_), None) => own_gone,
            _ => false,
        };
        // `oci session refresh` writes a session-refresh profile's files itself.
        let unwritable = match session_refresh {
            true => None,
            false => [Some(store.dir()), token_path.parent()].into_iter().flatten().find_map(fsutil::cannot_write_in),
        };
        let federated = if let RenewMode::Federated(c) = &settings.mode { Some(c) } else { None };
        Ok(SessionFacts {
            profile: settings.profile.clone(),
            woci_selection: settings.woci_selection(),
            oci_selection: settings.oci_selection.clone(),
            mode: &settings.mode,
            config_file: settings.oci_config_file.clone(),
            config,
            config_named: settings.origins.get("config_file").map(|(o, _)| o.describe()),
            oci,
            token_path,
            token,
            window: settings.window,
            ahead: settings.renews_ahead,
            refresh: RefreshInput {
                state,
                passphrase,
                decryptable,
                rejected: stored.rejected.clone(),
                damage,
                expires_at,
                expiry_recorded: jwt_expiry.is_none() && recorded.is_some(),
                rescued,
                unsettled: stored.unsettled,
            },
            config_current,
            key,
            key_mismatch,
            manager_ini: settings.ini_file.clone(),
            near_section: settings.ini_near_section.clone(),
            source_expires_at: federated.and_then(|c| c.source.env_jwt_expiry(&c.env)),
            source_problem: federated.and_then(|c| {
                let problem = c.source.local_problem(&c.env)?;
                Some(format!("subject token source `{}`: {problem}", c.source.describe()))
            }),
            unsafe_folder: store.check_safe().err().map(|e| e.to_string()),
            lock_problem: store.lock_problem(),
            unwritable,
            config_unwritable: (!config_current)
                .then(|| settings.oci_config_file.parent().and_then(fsutil::cannot_write_in))
                .flatten(),
            stopped_holder: None,
            servers_behind: 0,
            rotation,
        })
    }

    /// Whether the profile exists nowhere: not in the OCI config, no section of its own in the
    /// manager INI, no session folder (a typo in `--profile`).
    pub fn profile_unknown(&self, store: &SessionStore) -> bool {
        unknown(&self.config, self.manager_ini.as_ref(), store)
    }

    /// The facts with [`Self::stopped_holder`] read: what `--status` adds to what a call reads,
    /// since a call waits for the holder (and names it) instead.
    pub fn with_stopped_holder(mut self, store: &SessionStore) -> Self {
        self.stopped_holder = store.stopped_lock_holder();
        self
    }

    /// These facts in token time ([`crate::clock::ServerClock`]), which every decision compares
    /// them with: a refresh token's recorded expiry was taken by this machine's clock (its
    /// `refresh_expires_in` from the moment it arrived), so it moves as token time is ahead of it;
    /// and how far the servers' time is behind it, for what OCI judges by its own.
    pub fn in_token_time(mut self, clock: &crate::clock::ServerClock) -> Self {
        self.servers_behind = (-clock.offset_ms()).max(0) / 1000;
        if self.refresh.expiry_recorded {
            let ahead = clock.ahead_secs();
            self.refresh.expires_at = self.refresh.expires_at.map(|e| e.saturating_add(ahead));
        }
        self
    }

    /// The token's claims, when there is a readable token.
    pub fn claims(&self) -> Option<&UpstClaims> {
        match &self.token {
            TokenInput::Present(t) => Some(&t.claims),
            _ => None,
        }
    }
}

/// A JWT refresh token's own `exp`.
pub(super) fn jwt_exp(rt: &SecretString) -> Option<i64> {
    crate::jwt::expiry(rt.expose()).ok().flatten()
}

/// Whether the key at `path` can be used, checked cheaply (its PEM structure and size, not the
/// full key validation a signature needs), with the message and exit code a call would give.
fn key_state(path: &Path, profile: &str, config_file: &Path, fix_missing: &str) -> (KeyState, Option<Vec<u8>>) {
    let unusable = |exit_code, reason: String| (KeyState::Unusable { reason, exit_code }, None);
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => unusable(
            exit::CONFIG,
            format!(
                "the `key_file` of profile `{profile}` in `{}`, `{}`, does not exist; {fix_missing}",
                config_file.display(),
                path.display()
            ),
        ),
        Ok(m) if m.is_dir() => unusable(
            exit::CONFIG,
            format!("the `key_file` of profile `{profile}`, `{}`, is a folder, not a key file", path.display()),
        ),
        // As the config and the manager INI say it (a device or FIFO holds no key).
        Ok(m) if !m.is_file() => unusable(
            exit::CORRUPT_FILE,
            format!(
                "the `key_file` of profile `{profile}`, `{}`, is not a regular file (a FIFO, socket or device); point \
                 `key_file` at the key's PEM file",
                path.display()
            ),
        ),
        _ => match crate::fsutil::read_text_bounded(path, crate::fsutil::MAX_INPUT) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => unusable(
                exit::CORRUPT_FILE,
                match fsutil::mode_and_owner(path) {
                    // Another user's (root's, after `sudo`): only an owner change gives it back.
                    Some((_, owner)) if owner != fsutil::user_id() => format!(
                        "cannot read the key `{}`: permission denied; it belongs to uid {owner}: give it back with \
                         `sudo chown {} {}`",
                        path.display(),
                        fsutil::user_id(),
                        path.display()
                    ),
                    _ => format!(
                        "cannot read the key `{}`: permission denied; run `chmod 600 {}`",
                        path.display(),
                        path.display()
                    ),
                },
            ),
            Err(e) => unusable(exit::CORRUPT_FILE, format!("cannot read the key `{}`: {e}", path.display())),
            Ok(pem) if pem.contains("ENCRYPTED") => (KeyState::Encrypted(path.to_owned()), None),
            Ok(pem) => match crate::keys::check_pem(&pem) {
                Ok(modulus) => (KeyState::Usable, Some(modulus)),
                Err(why) => unusable(
                    exit::CORRUPT_FILE,
                    format!(
                        "corrupt file `{}`: {why}; restore the key or point `key_file` at a good one",
                        path.display()
                    ),
                ),
            },
        },
    }
}

/// Facts and modes for the decision-table tests.
#[cfg(test)]
pub mod testing {
    use super::*;
    use crate::settings::*;

    fn exchange() -> ExchangeConfig {
        ExchangeConfig {
            url: url::Url::parse("https://domain.example/oauth2/v1/token").unwrap(),
            client_id: "c".into(),
            client_secret: SecretString::from("s"),
        }
    }

    /// A login profile's mode.
    pub fn login() -> &'static RenewMode {
        Box::leak(Box::new(RenewMode::Login(Box::new(LoginConfig {
            idp: IdpConfig {
                authorize_url: url::Url::parse("https://idp.example/authorize").unwrap(),
                token_url: url::Url::parse("https://idp.example/token").unwrap(),
                client_id: "a".into(),
                client_secret: None,
                scopes: vec!["openid".into(), "offline_access".into()],
                redirect_port: Some(8181),
                reuse_grace: Duration::ZERO,
            },
            exchange: exchange(),
            device: DeviceConfig::default(),
            device_login: false,
            open_browser: true,
            browser_command: None,
            login_timeout: Duration::from_secs(300),
            interactive: false,
            passphrase: PassphraseSource::None,
            passphrase_setting: "`refresh_token_passphrase_env` in `woci_manager.ini`".into(),
        }))))
    }

    /// A session-refresh profile's mode.
    pub fn session_refresh() -> &'static RenewMode {
        Box::leak(Box::new(RenewMode::SessionRefresh(SessionRefreshConfig::default())))
    }

    /// A federated profile's mode (`env:CI_JWT`).
    pub fn federated() -> &'static RenewMode {
        Box::leak(Box::new(RenewMode::Federated(Box::new(FederatedConfig {
            source: SubjectTokenSource::Env("CI_JWT".into()),
            env: SourceEnv::default(),
            audience: "https://cloud.oracle.com".into(),
            exchange: exchange(),
        }))))
    }

    /// A token with these claims.
    pub fn present(claims: UpstClaims) -> TokenInput {
        TokenInput::Present(Token { secret: SecretString::from("test.token.value"), claims })
    }

    impl SessionFacts<'static> {
        /// Facts for tests: a profile of `mode` with a complete config and a usable key.
        pub fn for_tests(token: TokenInput, mode: &'static RenewMode, rt: RefreshTokenState) -> SessionFacts<'static> {
            SessionFacts {
                profile: "P".into(),
                woci_selection: "--profile P".into(),
                oci_selection: "--profile P".into(),
                mode,
                config_file: "/h/.oci/config".into(),
                config: ConfigState::Present,
                config_named: None,
                oci: OciProfile { key_file: Some("/h/.oci/key.pem".into()), ..OciProfile::default() },
                token_path: "/h/.oci/sessions/P/token".into(),
                token,
                window: Duration::from_secs(60),
                ahead: false,
                refresh: RefreshInput {
                    state: rt,
                    passphrase: PassphraseInput::None,
                    decryptable: None,
                    rejected: None,
                    damage: None,
                    expires_at: None,
                    expiry_recorded: false,
                    rescued: None,
                    unsettled: None,
                },
                config_current: true,
                key: KeyState::Usable,
                key_mismatch: false,
                source_problem: None,
                source_expires_at: None,
                manager_ini: None,
                near_section: None,
                unsafe_folder: None,
                lock_problem: None,
                unwritable: None,
                config_unwritable: None,
                stopped_holder: None,
                servers_behind: 0,
                rotation: None,
            }
        }
    }
}
