//! Settings: the command line's woci flags, the environment and the manager INI become one typed
//! [`Settings`] value, validated once, so the rest of woci never looks at argv, env or INI. This
//! layer imports only the leaf modules (errors, secrets, files, logging levels).
//!
//! - [`table`]: every setting once (flag, variable, INI key, default, type, secrecy, help);
//! - [`rules`]: the one parsing rule per value type (URL, duration, path, …);
//! - [`ini`]: `woci_manager.ini`; [`oci_cli_rc`]: oci's own settings file;
//! - [`config`]: the typed per-mode configurations resolution produces ([`RenewMode`]);
//! - [`resolve`]: precedence and validation.
//!
//! Precedence for every woci setting: flag > environment variable > manager INI (`[COMMON]` merged
//! under the profile's section) > default. The profile is `--profile` > `OCI_CLI_PROFILE` >
//! `oci_cli_rc`'s `default_profile` > `DEFAULT`; the OCI config file is `--config-file` >
//! `OCI_CLI_CONFIG_FILE` > INI `config_file` > `~/.oci/config`. [`Settings::origins`] records
//! where each setting came from, for messages and `--status`.

pub mod config;
pub mod ini;
pub mod oci_cli_rc;
mod resolve;
pub mod rules;
pub mod table;

pub use config::*;
pub use table::Key;

use crate::realm::NoProxy;
use crate::secret::SecretString;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// A snapshot of the environment, so resolution is a pure function in tests. It holds the
/// variables whose names and values are UTF-8 text, all woci reads; see [`note_not_text`].
pub type Env = HashMap<String, String>;

/// The variables naming CA certificates woci trusts (`SSL_CERT_DIR` through the system's store).
pub(crate) const CA_VARS: [&str; 6] = [
    "OCI_CLI_CERT_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
];

/// Where `oci_command` is set, for a message about an `oci` found nowhere when nobody set it.
pub(crate) const OCI_COMMAND_UNSET: &str = "`oci_command` in woci_manager.ini or `WOCI_OCI_COMMAND`";

/// Whether `name` is one of woci's passphrase variables (`WOCI_*PASSPHRASE*`), which no child,
/// hook or helper gets.
pub(crate) fn is_woci_passphrase_var(name: &str) -> bool {
    name.starts_with("WOCI_") && name.to_ascii_uppercase().contains("PASSPHRASE")
}

/// Whether `name` holds a passphrase or the OCI key, which neither a hook nor a subject-token
/// helper gets: woci's passphrase variables, `OCI_CLI_PASSPHRASE`, `OCI_CLI_KEY_CONTENT`.
pub(crate) fn is_key_secret_var(name: &str) -> bool {
    is_woci_passphrase_var(name) || matches!(name, "OCI_CLI_PASSPHRASE" | "OCI_CLI_KEY_CONTENT")
}

/// The proxy variables woci reads, as `oci` (Python's urllib) does.
pub(crate) const PROXY_VARS: [&str; 6] =
    ["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"];

/// The variables left out of [`Env`] because their values are not UTF-8 text.
static NOT_TEXT: std::sync::OnceLock<Vec<(String, OsString)>> = std::sync::OnceLock::new();

/// Notes, once at start, the process's variables whose values are not UTF-8 text: one woci would
/// read is then an error naming it ([`unreadable`]), not a variable taken as unset.
pub fn note_not_text(vars: Vec<(String, OsString)>) {
    let _ = NOT_TEXT.set(vars);
}

/// The value of `var`, when it is not text.
fn not_text_value(var: &str) -> Option<&'static std::ffi::OsStr> {
    NOT_TEXT.get()?.iter().find(|(n, _)| n == var).map(|(_, v)| v.as_os_str())
}

/// `PATH` as the process has it, text or not: a search path, where an entry that is not text is
/// searched as any other (as `oci` and the programs woci runs search it).
pub(crate) fn path_var(env: &Env) -> Option<OsString> {
    env.get("PATH").map(OsString::from).or_else(|| not_text_value("PATH").map(OsString::from))
}

/// Whether `var` is set in the process, to a value that is not UTF-8 text.
pub(crate) fn not_text(var: &str) -> bool {
    not_text_value(var).is_some()
}

/// Whether `var` is set in the process, as text ([`Env`]) or not.
pub(crate) fn is_set(env: &Env, var: &str) -> bool {
    env.contains_key(var) || not_text(var)
}

/// The error for the first of `vars` whose value is not UTF-8 text, if any.
pub(crate) fn unreadable<'a>(vars: impl IntoIterator<Item = &'a str>) -> Result<(), crate::error::Error> {
    let Some(var) = vars.into_iter().find(|v| not_text(v)) else { return Ok(()) };
    Err(crate::error::Error::Config(format!(
        "`{var}` is set, but not to UTF-8 text, and woci reads only text: set it again in UTF-8, or unset it"
    )))
}

/// Why a variable a setting names (a passphrase's, a subject token's) is missing from [`Env`]:
/// "is not set", or "is not UTF-8 text" (woci reads only text).
pub(crate) fn unset(var: &str) -> &'static str {
    if not_text(var) {
        "is not UTF-8 text"
    } else {
        "is not set"
    }
}

/// The default safety window before `exp` for plain runs (the Python woci's reuse margin).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// The default safety window while a child runs (`--auto-refresh`, daemon).
pub const DEFAULT_AUTO_WINDOW: Duration = Duration::from_secs(600);

/// woci's flags as the command line gave them, by setting; parsed by the settings' rules at
/// resolution. Values are held as secrets (some are; a path may be any bytes the OS allows);
/// `Debug` shows only the non-secret ones, and serde carries them only through the daemon's stdin.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Flags(BTreeMap<Key, crate::secret::Secret<Vec<u8>>>);

impl Flags {
    /// Sets `key`'s flag value.
    pub fn set(&mut self, key: Key, value: impl Into<OsString>) {
        self.0.insert(key, crate::secret::Secret::new(value.into().into_encoded_bytes()));
    }

    /// `key`'s flag value as text, when the flag was given (and is UTF-8, which the command line
    /// splitter makes sure of for every flag but paths).
    pub fn get(&self, key: Key) -> Option<&str> {
        self.0.get(&key).and_then(|v| std::str::from_utf8(v.expose()).ok())
    }

    /// `key`'s flag value as the OS gave it (a path).
    pub fn get_os(&self, key: Key) -> Option<OsString> {
        // SAFETY: the bytes came from `OsString::into_encoded_bytes` in `set`, on this platform.
        self.0.get(&key).map(|v| unsafe { OsString::from_encoded_bytes_unchecked(v.expose().clone()) })
    }

    /// The flags that hold for another profile (a `fallback_profile`, which runs with its own
    /// settings): all but those of the profile's identity provider and refresh-token passphrase.
    pub fn for_another_profile(&self) -> Flags {
        let own = |k: Key| {
            table::def(k).flag.is_some_and(|f| f.heading == table::H_IDP)
                || matches!(k, Key::PassphraseEnv | Key::PassphrasePrompt)
        };
        Flags(self.0.iter().filter(|(k, _)| !own(**k)).map(|(k, v)| (*k, v.clone())).collect())
    }
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.0.iter().map(|(k, v)| {
            let d = table::def(*k);
            (d.name, if d.hides_value() { "[redacted]".into() } else { String::from_utf8_lossy(v.expose()) })
        });
        f.debug_map().entries(shown).finish()
    }
}

impl serde::Serialize for Flags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, String::from_utf8_lossy(v.expose()))))
    }
}

impl<'de> serde::Deserialize<'de> for Flags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = BTreeMap::<Key, String>::deserialize(d)?;
        Ok(Flags(m.into_iter().map(|(k, v)| (k, crate::secret::Secret::new(v.into_bytes()))).collect()))
    }
}

/// What the `oci` arguments say about the profile; read only, the arguments are never changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct OciView {
    /// `--profile`.
    pub profile: Option<String>,
    /// `--config-file`.
    pub config_file: Option<PathBuf>,
    /// `--region`.
    pub region: Option<String>,
    /// `--auth`.
    pub auth: Option<String>,
    /// `--cert-bundle`.
    pub cert_bundle: Option<PathBuf>,
    /// `--endpoint`.
    pub endpoint: Option<String>,
    /// `--cli-rc-file` / `--defaults-file`: oci's `oci_cli_rc`.
    pub cli_rc_file: Option<PathBuf>,
    /// The oci command words (`os`, `object`, `put`), for `oci_cli_rc` keys such as
    /// `os.object.put.endpoint`.
    pub words: Vec<String>,
    /// An option that looks like a mistyped `--profile`, `--config-file`, … (what was typed, what
    /// was probably meant): errors then say so.
    pub lookalike: Option<(String, String)>,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag.
    Flag(&'static str),
    /// An environment variable.
    Env(&'static str),
    /// The manager INI (its path).
    Ini(PathBuf),
}

impl Origin {
    /// For messages: "the `--token-url` flag", "`/h/.oci/woci_manager.ini`".
    pub fn describe(&self) -> String {
        match self {
            Origin::Flag(name) => format!("the `--{name}` flag"),
            Origin::Env(var) => format!("the `{var}` environment variable"),
            Origin::Ini(path) => format!("`{}`", path.display()),
        }
    }

    /// A setting as the user gave it, for a message's fix: "the `--refresh-token-passphrase-env`
    /// flag", "the `WOCI_…` variable", "`refresh_token_passphrase_env` in `/h/.oci/woci_manager.ini`".
    pub fn setting(&self, ini_key: &str) -> String {
        match self {
            Origin::Flag(name) => format!("the `--{name}` flag"),
            Origin::Env(var) => format!("the `{var}` variable"),
            Origin::Ini(path) => format!("`{ini_key}` in `{}`", path.display()),
        }
    }

    /// For JSON: `flag --token-url`, `env WOCI_OCI_COMMAND`, `/h/.oci/woci_manager.ini`.
    pub fn plain(&self) -> String {
        match self {
            Origin::Flag(name) => format!("flag --{name}"),
            Origin::Env(var) => format!("env {var}"),
            Origin::Ini(path) => path.display().to_string(),
        }
    }
}

/// Everything woci needs to know, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The OCI profile.
    pub profile: String,
    /// Whether `--profile` was on the command line (else woci adds it for `oci`).
    pub profile_on_cli: bool,
    /// The options that select this profile's settings again in a command a message tells the
    /// user to run: `--profile P`, and `--config-file` given on the command line (a variable
    /// stays set in the user's shell). [`Settings::woci_selection`] adds `--manager-config`.
    pub oci_selection: String,
    /// `--manager-config` as given on the command line, if it was.
    manager_config_flag: Option<PathBuf>,
    /// The OCI config file.
    pub oci_config_file: PathBuf,
    /// Whether `oci` will find that config file by itself (flag, env or the default path).
    pub oci_config_file_implicit: bool,
    /// The call's region, if known from flag, env, `oci_cli_rc` or INI (the config's is read at
    /// renewal).
    pub region: Option<String>,
    /// The manager INI's `region`: the one written into the OCI config (a call's `--region` is
    /// that call's, as in `oci`).
    pub config_region: Option<String>,
    /// `--auth` / `OCI_CLI_AUTH` / `oci_cli_rc`, if given.
    pub auth: Option<String>,
    /// The service endpoint `oci` will use (`--endpoint` > `OCI_CLI_ENDPOINT` > `oci_cli_rc`):
    /// the re-signing proxy re-signs its host.
    pub endpoint: Option<String>,
    /// The user's home folder (`~/.oci/sessions` lives there).
    pub home: PathBuf,
    /// `$XDG_RUNTIME_DIR` (absolute paths only): where a refresh token that cannot be stored in
    /// the session folder is rescued, when that folder is private.
    pub runtime_dir: Option<PathBuf>,
    /// The manager INI that was read, and whether it has a section for the profile.
    pub ini_file: Option<(PathBuf, bool)>,
    /// The INI keys whose value comes from its `[COMMON]` section (for `--status`).
    pub ini_shared: std::collections::BTreeSet<String>,
    /// Without a section for the profile: the section of the INI that was probably meant.
    pub ini_near_section: Option<String>,
    /// How to renew.
    pub mode: RenewMode,
    /// Safety window before `exp`.
    pub window: Duration,
    /// Renews a little before the window opens, as a supervisor (the daemon, `--auto-refresh`)
    /// must, so that calls never need to ([`crate::renew::plan::renewal_window`]).
    pub renews_ahead: bool,
    /// `--auto-refresh` (flag or INI).
    pub auto_refresh: bool,
    /// Whether the re-signing proxy runs beside an auto-refreshed child.
    pub resign_proxy: bool,
    /// Extra `host[:port]` the proxy re-signs besides OCI realm hosts.
    pub resign_hosts: Vec<String>,
    /// The proxy's connection cap, when set.
    pub proxy_max_connections: Option<usize>,
    /// The `oci` program.
    pub oci_command: OsString,
    /// Which setting chose the `oci` program, for the not-found message.
    pub oci_command_source: String,
    /// Container mode: `oci` runs from this image instead of `oci_command`.
    pub container: Option<ContainerConfig>,
    /// Answer `ce cluster generate-token` natively.
    pub native_oke: bool,
    /// Metrics, hooks, warnings, fallback.
    pub ops: OpsConfig,
    /// Log level (`--log-level` / INI), before `RUST_LOG`.
    pub log_level: Option<String>,
    /// woci's debug logging.
    pub debug: bool,
    /// CA bundles to trust besides the system roots (`--cert-bundle`, `OCI_CLI_CERT_BUNDLE`,
    /// `oci_cli_rc`, `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`, `CURL_CA_BUNDLE` (which Python's
    /// `requests` reads too), `NODE_EXTRA_CA_CERTS`), for woci's own requests, the proxy's
    /// upstream connections and the bundle a child trusts.
    pub extra_ca_files: Vec<PathBuf>,
    /// The user's HTTPS proxy, for woci's own requests and the proxy's upstream connections.
    pub upstream_proxy: Option<Url>,
    /// The variable that named it (`https_proxy`, `HTTPS_PROXY`, `all_proxy` or `ALL_PROXY`).
    pub upstream_proxy_var: &'static str,
    /// The user's `NO_PROXY`.
    pub no_proxy: NoProxy,
    /// What the `oci` arguments said.
    pub oci: OciView,
    /// Environment variables that hold woci's secrets (the passphrase variable, `WOCI_*PASSPHRASE*`,
    /// a subject token source's variables): never passed to a child or a hook.
    pub secret_env: Vec<String>,
    /// Each setting not at its default (setting name →): where it came from, and the text it was
    /// given after precedence (secrets stay secrets), which [`changes`] compares.
    pub origins: BTreeMap<&'static str, (Origin, SecretString)>,
    /// Warnings found while resolving (unknown INI keys, a readable INI holding secrets).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Whether a call runs its program beside the re-signing proxy (`auto_refresh`, the proxy
    /// not turned off, a session woci manages), which needs room for the program's connections
    /// and a per-run folder.
    pub fn call_runs_proxy(&self) -> bool {
        self.auto_refresh && self.resign_proxy && self.manages_session()
    }

    /// Whether the profile has woci IdP settings (else it is an `oci session authenticate` profile).
    pub fn has_idp(&self) -> bool {
        matches!(self.mode, RenewMode::Login(_) | RenewMode::Federated(_))
    }

    /// Whether woci manages the session at all: only for `security_token` auth (the default it adds).
    pub fn manages_session(&self) -> bool {
        self.auth.as_deref().is_none_or(|a| a == "security_token")
    }

    /// The client secrets of the profile's mode (for the `--debug` redactor).
    pub fn client_secrets(&self) -> Vec<&SecretString> {
        match &self.mode {
            RenewMode::Login(c) => c.idp.client_secret.iter().chain([&c.exchange.client_secret]).collect(),
            RenewMode::Federated(c) => vec![&c.exchange.client_secret],
            RenewMode::SessionRefresh(_) | RenewMode::Unusable(_) => Vec::new(),
        }
    }

    /// The `oci` arguments woci prepends: `--profile P` when the command line did not name one,
    /// `--config-file F` when only the manager INI named it, `--auth security_token` when no auth
    /// was given. The user's arguments follow untouched.
    pub fn oci_prefix_args(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = Vec::new();
        if !self.profile_on_cli {
            v.extend(["--profile".into(), self.profile.clone().into()]);
        }
        if !self.oci_config_file_implicit {
            v.extend(["--config-file".into(), self.oci_config_file.clone().into_os_string()]);
        }
        if self.auth.is_none() {
            v.extend(["--auth".into(), "security_token".into()]);
        }
        v
    }

    /// [`Settings::oci_selection`] for a woci command: with `--manager-config` when it was given.
    pub fn woci_selection(&self) -> String {
        let quoted = self.manager_config_flag.as_ref().map(|p| quote(&p.display().to_string()));
        quoted.map_or_else(|| self.oci_selection.clone(), |m| format!("{} --manager-config {m}", self.oci_selection))
    }
}

/// The settings whose text differs between `old` and `new` (a daemon's reload), in the table's
/// order: `` `name` old → new `` (`default` for a setting not given), or `` `name` changed `` for
/// a secret, a command line or a subject token source (their text may hold credentials).
pub fn changes(old: &Settings, new: &Settings) -> Vec<String> {
    table::SETTINGS
        .iter()
        .filter_map(|d| {
            let (before, after) = (given(old, d.name), given(new, d.name));
            if before == after {
                return None;
            }
            let show = |v: Option<&str>| v.map_or_else(|| "default".to_owned(), |v| format!("`{v}`"));
            let line = if d.hides_value() {
                format!("`{}` changed", d.name)
            } else {
                format!("`{}` {} → {}", d.name, show(before), show(after))
            };
            // The log is set up once, at the start.
            Some(if d.key == Key::LogLevel { format!("{line} (at the next start)") } else { line })
        })
        .collect()
}

fn given<'s>(s: &'s Settings, name: &str) -> Option<&'s str> {
    s.origins.get(name).map(|(_, v)| v.expose().as_str())
}

/// A URL woci sends a secret to (or shows as a link) that does not come from a setting — a
/// discovered endpoint, an IdP's verification URI, `ACTIONS_ID_TOKEN_REQUEST_URL` — held to the
/// same rule as URL settings ([`rules::url`]); `what` names it in the error.
pub fn parse_url(s: &str, what: &str) -> crate::Result<Url> {
    rules::url(s).map_err(|why| crate::Error::Config(format!("`{what}` {why}, got `{}`", s.escape_debug())))
}

/// Refuses profile names that would escape `~/.oci/sessions` or break a message line.
pub fn validate_profile(p: &str) -> crate::Result<()> {
    rules::profile(p).map(drop).map_err(|why| crate::Error::Config(rules::invalid_profile(p, "", &why)))
}

/// `s` quoted for a POSIX shell when it needs it.
pub(crate) fn quote(s: &str) -> String {
    shlex::try_quote(s).map_or_else(|_| s.to_owned(), |q| q.into_owned())
}
