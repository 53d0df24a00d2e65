//! What renewal decisions look at, read once from local files: the profile's typed entries in
//! `~/.oci/config` ([`OciProfile`]), the token, the refresh token (presence, encryption, expiry),
//! how the profile renews and whether the config already carries woci's entries. No network, no
//! lock, no prompt; [`super::plan::plan`] turns these facts into a decision.

use crate::error::{Error, Result};
use crate::jwt::UpstClaims;
use crate::secret::SecretString;
use crate::settings::{PassphraseSource, RenewMode, Settings};
use crate::store::{InterruptedRotation, RefreshTokenState, SessionStore};
use serde::Serialize;
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
    /// `tenancy`.
    pub tenancy: Option<String>,
    /// `fingerprint`.
    pub fingerprint: Option<String>,
    /// Every key as written (for deciding whether an upsert changes anything).
    pub raw: BTreeMap<String, String>,
}

/// Whether the OCI config has the profile at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigState {
    /// The file does not exist.
    FileMissing,
    /// The file exists but has no such profile.
    ProfileMissing,
    /// The profile is there.
    Present,
}

impl OciProfile {
    /// Reads `profile` from `config_file`. A damaged config is an error; a missing file or
    /// section is a [`ConfigState`].
    pub fn read(config_file: &Path, profile: &str, home: &Path) -> Result<(ConfigState, OciProfile)> {
        let Some(raw) = crate::oci_config::read_profile(config_file, profile)? else {
            let state = if config_file.exists() { ConfigState::ProfileMissing } else { ConfigState::FileMissing };
            return Ok((state, OciProfile::default()));
        };
        let text = |k: &str| raw.get(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        // `~/…`, and `/oracle/.oci/…` written by `oci` inside the official container image.
        let path = |k: &str| text(k).map(|v| crate::container::host_path(&v, home, config_file));
        Ok((
            ConfigState::Present,
            OciProfile {
                key_file: path("key_file"),
                security_token_file: path("security_token_file"),
                region: text("region"),
                tenancy: text("tenancy"),
                fingerprint: text("fingerprint"),
                raw,
            },
        ))
    }
}

/// The token file, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenInput {
    /// Absent or empty.
    Missing,
    /// Present but not a UPST (the reason, never the content).
    Corrupt(String),
    /// A decodable UPST.
    Present(UpstClaims),
}

/// How the profile renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RenewalKind {
    /// IdP refresh grant / login, then token exchange.
    Idp,
    /// OCI auth service session refresh (no IdP configured).
    SessionRefresh,
    /// A fresh JWT from a subject token source, exchanged (CI / workload federation).
    Federated,
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
        /// Whether it has a non-empty value.
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
    /// Its expiry: the refresh token's own `exp` when it is a readable JWT, else what the IdP
    /// said when it issued it (`refresh_expires_in`).
    pub expires_at: Option<i64>,
}

/// Everything a renewal decision looks at.
#[derive(Debug, Clone)]
pub struct SessionFacts {
    /// Profile name.
    pub profile: String,
    /// The OCI config file.
    pub config_file: PathBuf,
    /// Whether it has the profile.
    pub config: ConfigState,
    /// The profile's entries.
    pub oci: OciProfile,
    /// Token file path.
    pub token_path: PathBuf,
    /// The token.
    pub token: TokenInput,
    /// The configured safety window.
    pub window: Duration,
    /// Renewal kind.
    pub renewal: RenewalKind,
    /// Why the profile cannot renew at all (incomplete or invalid woci settings), if so.
    pub unusable: Option<String>,
    /// The refresh token.
    pub refresh: RefreshInput,
    /// For IdP profiles: the config already names the key, the token file and the fingerprint
    /// (false after a run stopped between writing the token and the config).
    pub config_current: bool,
    /// The manager INI that was read, if any, and whether it has a section for the profile.
    pub manager_ini: Option<(PathBuf, bool)>,
    /// For federated profiles: why the subject token source cannot give a token now, if so.
    pub source_problem: Option<String>,
    /// A key pair the token can be bound to exists (the configured `key_file`, or the session
    /// folder's): without one, a token cannot be used whatever it says.
    pub key_present: bool,
    /// A refresh-token rotation a killed woci left half done (IdP profiles), if any.
    pub rotation: Option<InterruptedRotation>,
}

/// The token itself, kept beside the facts (never in them: facts are printed in tests).
#[derive(Debug, Clone)]
pub struct CurrentToken(pub Option<SecretString>);

impl SessionFacts {
    /// Reads the facts of the settings' profile.
    pub fn read(settings: &Settings, store: &SessionStore) -> Result<(SessionFacts, CurrentToken)> {
        let (config, oci) = OciProfile::read(&settings.oci_config_file, &settings.profile, &settings.home)?;
        let token_path = oci.security_token_file.clone().unwrap_or_else(|| store.token_path());
        let (token, current) = match SessionStore::read_token_at(&token_path) {
            Ok(None) => (TokenInput::Missing, None),
            Ok(Some((t, claims))) => (TokenInput::Present(claims), Some(t)),
            Err(Error::CorruptFile { reason, .. }) => (TokenInput::Corrupt(reason), None),
            Err(e) => return Err(e),
        };
        let (renewal, unusable) = match &settings.mode {
            RenewMode::Idp { .. } => (RenewalKind::Idp, None),
            RenewMode::SessionRefresh { .. } => (RenewalKind::SessionRefresh, None),
            RenewMode::Federated { .. } => (RenewalKind::Federated, None),
            RenewMode::Unusable(why) => (RenewalKind::Idp, Some(why.clone())),
        };
        let state = store.refresh_token_state()?;
        let passphrase = match &settings.passphrase {
            PassphraseSource::None => PassphraseInput::None,
            PassphraseSource::Env { var, value } => {
                PassphraseInput::Env { var: var.clone(), set: value.as_ref().is_some_and(|v| !v.expose().is_empty()) }
            }
            PassphraseSource::Prompt => PassphraseInput::Prompt,
        };
        let rotation = (renewal == RenewalKind::Idp).then(|| store.interrupted_rotation()).flatten();
        // The recorded expiry belongs to the stored refresh token, not to a rotation's new one.
        let completes_rotation = matches!(rotation, Some(InterruptedRotation::Complete(_)));
        let expires_at =
            (state != RefreshTokenState::Absent && !completes_rotation).then(|| store.refresh_token_expiry()).flatten();
        let config_current = renewal == RenewalKind::SessionRefresh
            || (oci.key_file.is_some() && oci.security_token_file.is_some() && oci.fingerprint.is_some());
        let key_present = match &oci.key_file {
            Some(p) => p.is_file(),
            None => store.has_key(),
        };
        let facts = SessionFacts {
            profile: settings.profile.clone(),
            config_file: settings.oci_config_file.clone(),
            config,
            oci,
            token_path,
            token,
            window: settings.window,
            renewal,
            unusable,
            refresh: RefreshInput { state, passphrase, decryptable: None, expires_at },
            config_current,
            key_present,
            rotation,
            manager_ini: settings.manager.path.clone().map(|p| (p, settings.manager.has_profile_section)),
            source_problem: match &settings.mode {
                RenewMode::Federated { source, env, .. } => {
                    source.local_problem(env).map(|p| format!("subject token source `{}`: {p}", source.describe()))
                }
                _ => None,
            },
        };
        Ok((facts, CurrentToken(current)))
    }

    /// The token's claims, when there is a readable token.
    pub fn claims(&self) -> Option<&UpstClaims> {
        match &self.token {
            TokenInput::Present(c) => Some(c),
            _ => None,
        }
    }

    /// Facts for tests: an IdP profile with a complete config and no token.
    #[cfg(test)]
    pub fn for_tests(token: TokenInput, renewal: RenewalKind, rt: RefreshTokenState) -> SessionFacts {
        SessionFacts {
            profile: "P".into(),
            config_file: "/h/.oci/config".into(),
            config: ConfigState::Present,
            oci: OciProfile { key_file: Some("/h/.oci/key.pem".into()), ..OciProfile::default() },
            token_path: "/h/.oci/sessions/P/token".into(),
            token,
            window: Duration::from_secs(60),
            renewal,
            unusable: None,
            refresh: RefreshInput { state: rt, passphrase: PassphraseInput::None, decryptable: None, expires_at: None },
            config_current: true,
            key_present: true,
            rotation: None,
            source_problem: None,
            manager_ini: None,
        }
    }
}
