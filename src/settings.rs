//! Settings resolution: the parsed command line, the environment and the manager INI become one
//! plain [`Settings`] value, validated once, so the rest of woci never looks at argv, env or INI.
//!
//! Precedence for every woci key: command-line flag > environment (where one exists) > manager INI
//! (`[COMMON]` merged under the profile's section) > default. The profile is `--profile` (from the
//! `oci` arguments) > `OCI_CLI_PROFILE` > `DEFAULT`; the OCI config file is `--config-file` >
//! `OCI_CLI_CONFIG_FILE` > INI `config_file` > `~/.oci/config`.
//!
//! This module and [`crate::app`] are the only readers of the process environment (the snapshot
//! [`Env`]): everything the rest of woci needs from it (passphrase, proxy, terminal, browser) is
//! resolved here into typed fields. [`Settings::origins`] records where each woci setting came
//! from, for messages and `--status`.

use crate::cli::{Invocation, OciView, WociOptions};
use crate::error::{Error, Result};
use crate::exchange::ExchangeConfig;
use crate::manager_config::{self, ManagerConfig};
use crate::oidc::IdpConfig;
use crate::realm::NoProxy;
use crate::secret::SecretString;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// A snapshot of the environment, so resolution is a pure function in tests.
pub type Env = HashMap<String, String>;

/// The default safety window before `exp` for plain runs (the Python woci's reuse margin).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
/// The default safety window while a child runs (`--auto-refresh`, daemon).
pub const DEFAULT_AUTO_WINDOW: Duration = Duration::from_secs(600);
/// How long an interactive login may take.
pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

/// How the profile's session is renewed.
#[derive(Debug, Clone)]
pub enum RenewMode {
    /// OIDC refresh grant (or login) at the IdP, then the identity-domain token exchange.
    Idp {
        /// The IdP client (boxed: it dwarfs the other variant).
        idp: Box<IdpConfig>,
        /// The exchange client.
        exchange: ExchangeConfig,
    },
    /// No IdP configured: renew through the OCI auth service (`oci session authenticate` profiles).
    SessionRefresh {
        /// Explicit auth service base URL (`auth_endpoint` / `WOCI_AUTH_ENDPOINT`); else from region.
        auth_endpoint: Option<Url>,
    },
    /// The woci settings of the profile are incomplete or invalid (why). Only commands that never
    /// renew (`--status`, `--daemon-status`, `--stop-daemon`) get this far; `--status` reports it.
    Unusable(String),
    /// CI / workload federation (`subject_token_source`): a fresh JWT from the source is
    /// exchanged at every renewal; no refresh token, no login ([`crate::federation`]).
    Federated {
        /// Where the JWT comes from.
        source: crate::subject_token::SubjectTokenSource,
        /// The environment variables the source reads.
        env: crate::subject_token::SourceEnv,
        /// `audience` asked of the GitHub Actions ID-token service (`subject_token_audience`).
        audience: String,
        /// The exchange client.
        exchange: ExchangeConfig,
    },
}

/// Where the refresh token passphrase comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    /// Refresh tokens are stored in plain text (mode 0600).
    None,
    /// The named environment variable holds it.
    Env {
        /// The variable's name.
        var: String,
        /// Its value, when set and not empty.
        value: Option<SecretString>,
    },
    /// Ask on the terminal.
    Prompt,
}

/// Everything woci needs to know, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The OCI profile.
    pub profile: String,
    /// Whether `--profile` was on the command line (else woci adds it for `oci`).
    pub profile_on_cli: bool,
    /// The OCI config file.
    pub oci_config_file: PathBuf,
    /// Whether `oci` will find that config file by itself (flag, env or the default path).
    pub oci_config_file_implicit: bool,
    /// The region, if known from flag, env or INI (the config's region is read at renewal).
    pub region: Option<String>,
    /// `--auth` / `OCI_CLI_AUTH`, if given.
    pub auth: Option<String>,
    /// The user's home folder (`~/.oci/sessions` lives there).
    pub home: PathBuf,
    /// The manager INI values.
    pub manager: ManagerConfig,
    /// How to renew.
    pub mode: RenewMode,
    /// Safety window before `exp`.
    pub window: Duration,
    /// `--auto-refresh` (flag or INI `auto_refresh = true`).
    pub auto_refresh: bool,
    /// Whether the re-signing proxy runs beside an auto-refreshed child.
    pub resign_proxy: bool,
    /// The `oci` program.
    pub oci_command: OsString,
    /// Where the `oci` program was chosen, for the not-found message.
    pub oci_command_source: &'static str,
    /// Open a browser for the login (false with `--no-browser`).
    pub open_browser: bool,
    /// `BROWSER`, if set.
    pub browser_command: Option<OsString>,
    /// Login wait.
    pub login_timeout: Duration,
    /// Device-code login: `login_flow`, `--device-code`, `device_authorization_url`.
    pub device: crate::oidc::device::DeviceSettings,
    /// A login uses a device code (asked for, or a terminal without a browser here).
    pub device_login: bool,
    /// Refresh token passphrase source.
    pub passphrase: PassphraseSource,
    /// Log filter (`--log-level` / INI `log_level`), before `RUST_LOG`.
    pub log_level: Option<String>,
    /// woci's debug logging.
    pub debug: bool,
    /// CA bundles to trust besides the system roots (`REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`,
    /// `--cert-bundle`), for woci's own requests and the proxy's upstream connections.
    pub extra_ca_files: Vec<PathBuf>,
    /// Extra `host[:port]` the proxy re-signs besides OCI realm hosts.
    pub resign_hosts: Vec<String>,
    /// The service endpoint `oci` will use (`--endpoint` > `OCI_CLI_ENDPOINT` > `oci_cli_rc`):
    /// the re-signing proxy re-signs its host.
    pub endpoint: Option<String>,
    /// What the `oci` arguments said.
    pub oci: OciView,
    /// A person can be asked to log in: stderr is a terminal, or a `BROWSER` command is set.
    pub interactive: bool,
    /// The user's HTTPS proxy (`HTTPS_PROXY`, `https_proxy`, `ALL_PROXY`, `all_proxy`), for woci's
    /// own requests and the re-signing proxy's upstream connections.
    pub upstream_proxy: Option<Url>,
    /// The user's `NO_PROXY`.
    pub no_proxy: NoProxy,
    /// Where each woci setting came from (key → origin), for messages and `--status`.
    pub origins: BTreeMap<&'static str, Origin>,
    /// Warnings found while resolving (unknown INI keys), printed once logging is set up.
    pub warnings: Vec<String>,
    /// Container mode (`oci_container_image`): `oci` runs from this image instead of `oci_command`.
    pub container: Option<crate::container::ContainerSpec>,
    /// Answer `ce cluster generate-token` natively (INI `native_oke`, default on; `--no-native`).
    pub native_oke: bool,
    /// The user's JVM option variables, which the proxy's Java settings extend or respect.
    pub java_options: crate::proxy::java::UserJavaOptions,
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
    /// woci's default.
    Default,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(name) => write!(f, "the `{name}` flag"),
            Origin::Env(var) => write!(f, "the `{var}` environment variable"),
            Origin::Ini(path) => write!(f, "`{}`", path.display()),
            Origin::Default => f.write_str("woci's default"),
        }
    }
}

impl Settings {
    /// Resolves settings for an invocation.
    pub fn resolve(inv: &Invocation, env: &Env) -> Result<Settings> {
        let o = &inv.options;
        let home = env
            .get("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(dirs::home_dir)
            .ok_or_else(|| Error::Config("cannot find the home folder; set `HOME`".into()))?;
        let mut origins: BTreeMap<&'static str, Origin> = BTreeMap::new();

        let profile_on_cli = inv.oci.profile.is_some();
        // oci's own `oci_cli_rc`: default_profile, and region/auth/endpoint/cert-bundle defaults.
        let rc = crate::oci_cli_rc::load(inv.oci.cli_rc_file.as_deref(), env, &home)?;
        let profile = inv
            .oci
            .profile
            .clone()
            .or_else(|| env_nonempty(env, "OCI_CLI_PROFILE"))
            .or_else(|| rc.default_profile())
            .unwrap_or_else(|| "DEFAULT".to_owned());
        let rc_value = |key: &str| rc.value(&profile, &inv.oci.words, key);
        validate_profile(&profile)?;

        let default_oci_config = home.join(".oci").join("config");
        let explicit_config = inv
            .oci
            .config_file
            .clone()
            .or_else(|| env_nonempty(env, "OCI_CLI_CONFIG_FILE").map(PathBuf::from))
            .map(|p| crate::fsutil::expand_home(&p, &home));
        let locate_base = explicit_config.clone().unwrap_or_else(|| default_oci_config.clone());
        let env_manager = env_nonempty(env, "WOCI_MANAGER_CONFIG").map(PathBuf::from);
        let manager =
            match manager_config::locate(o.manager_config.as_deref(), env_manager.as_deref(), &locate_base, &home) {
                Some((path, source)) => {
                    manager_config::load(&crate::fsutil::expand_home(&path, &home), source, &profile)?
                }
                None => ManagerConfig::default(),
            };
        let ini_origin = || manager.path.clone().map_or(Origin::Default, Origin::Ini);
        let warnings = manager.unknown_key_warnings();

        let (oci_config_file, oci_config_file_implicit) = match explicit_config {
            Some(p) => (p, true),
            None => match manager.get("config_file") {
                Some(p) => (crate::fsutil::expand_home(Path::new(p), &home), false),
                None => (default_oci_config, true),
            },
        };

        let region = inv
            .oci
            .region
            .clone()
            .or_else(|| env_nonempty(env, "OCI_CLI_REGION"))
            .or_else(|| rc_value("region"))
            .or_else(|| manager.get("region").map(str::to_owned));
        let auth = inv.oci.auth.clone().or_else(|| env_nonempty(env, "OCI_CLI_AUTH")).or_else(|| rc_value("auth"));
        let endpoint =
            inv.oci.endpoint.clone().or_else(|| env_nonempty(env, "OCI_CLI_ENDPOINT")).or_else(|| rc_value("endpoint"));

        let auto_refresh = o.auto_refresh || parse_bool(manager.get("auto_refresh"), "auto_refresh")?;
        let default_window = if auto_refresh { DEFAULT_AUTO_WINDOW } else { DEFAULT_WINDOW };
        let window = match o.refresh_safety_window {
            Some(s) => {
                origins.insert("refresh_safety_window", Origin::Flag("--refresh-safety-window"));
                Duration::from_secs(s)
            }
            None => match manager.get("refresh_safety_window") {
                Some(v) => {
                    origins.insert("refresh_safety_window", ini_origin());
                    Duration::from_secs(parse_u64(v, "refresh_safety_window")?)
                }
                None => default_window,
            },
        };

        let mode = crate::federation::resolve_mode(o, &manager, env, &home, &profile)
            .and_then(|federated| federated.map_or_else(|| resolve_mode(o, &manager, env, &profile), Ok));
        let mode = match mode {
            Ok(mode) => mode,
            // Commands that never renew still work (and `--status` says what is wrong).
            Err(Error::Config(why)) if inv.command.never_renews() => RenewMode::Unusable(why),
            Err(e) => return Err(e),
        };
        if let RenewMode::Idp { .. } = mode {
            let origin = if o.token_url.is_some() { Origin::Flag("--token-url") } else { ini_origin() };
            origins.insert("token_url", origin);
        }

        let (oci_command, oci_command_source) = if let Some(c) = env_nonempty(env, "WOCI_OCI_COMMAND") {
            origins.insert("oci_command", Origin::Env("WOCI_OCI_COMMAND"));
            (OsString::from(c), "the `WOCI_OCI_COMMAND` environment variable")
        } else if let Some(c) = manager.get("oci_command") {
            origins.insert("oci_command", ini_origin());
            (OsString::from(c), "`oci_command` in the manager config")
        } else {
            (OsString::from("oci"), "`oci_command` in the manager config or `WOCI_OCI_COMMAND`")
        };

        let passphrase = if o.refresh_token_passphrase_prompt
            || parse_bool(manager.get("refresh_token_passphrase_prompt"), "refresh_token_passphrase_prompt")?
        {
            PassphraseSource::Prompt
        } else if let Some(var) = o
            .refresh_token_passphrase_env
            .clone()
            .or_else(|| manager.get("refresh_token_passphrase_env").map(str::to_owned))
        {
            // Set but empty means "store unencrypted" (a renewal warns); unset is an error when
            // the refresh token is encrypted.
            let value = env.get(&var).map(|v| SecretString::from(v.as_str()));
            PassphraseSource::Env { var, value }
        } else {
            PassphraseSource::None
        };

        let login_timeout = Duration::from_secs(match o.login_timeout {
            Some(s) => s,
            None => match manager.get("login_timeout") {
                Some(v) => parse_u64(v, "login_timeout")?,
                None => DEFAULT_LOGIN_TIMEOUT.as_secs(),
            },
        });

        let mut extra_ca_files = Vec::new();
        for p in [
            inv.oci.cert_bundle.clone(),
            env_nonempty(env, "OCI_CLI_CERT_BUNDLE").map(PathBuf::from),
            rc_value("cert-bundle").map(PathBuf::from),
            env_nonempty(env, "REQUESTS_CA_BUNDLE").map(PathBuf::from),
            env_nonempty(env, "SSL_CERT_FILE").map(PathBuf::from),
        ]
        .into_iter()
        .flatten()
        {
            let p = crate::fsutil::expand_home(&p, &home);
            if !extra_ca_files.contains(&p) {
                extra_ca_files.push(p);
            }
        }

        let resign_hosts = env_nonempty(env, "WOCI_RESIGN_HOSTS")
            .or_else(|| manager.get("resign_hosts").map(str::to_owned))
            .map(|s| s.split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect())
            .unwrap_or_default();

        let upstream_proxy = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
            .iter()
            .find_map(|k| env.get(*k).filter(|v| !v.trim().is_empty()))
            .map(|v| {
                let v = v.trim();
                let v = if v.contains("://") { v.to_owned() } else { format!("http://{v}") };
                // The URL may carry credentials: the error names neither it nor the parse detail.
                Url::parse(&v).map_err(|_| Error::Config("`HTTPS_PROXY` in the environment is not a valid URL".into()))
            })
            .transpose()?;
        let no_proxy =
            NoProxy::parse(&["NO_PROXY", "no_proxy"].iter().find_map(|k| env.get(*k)).cloned().unwrap_or_default());

        let browser_command = env_nonempty(env, "BROWSER").map(OsString::from);
        let device = crate::oidc::device::resolve(o, &manager)?;
        use std::io::IsTerminal;
        let interactive = std::io::stderr().is_terminal() || browser_command.is_some();

        Ok(Settings {
            profile,
            profile_on_cli,
            oci_config_file,
            oci_config_file_implicit,
            region,
            auth,
            home,
            mode,
            window,
            auto_refresh,
            resign_proxy: !o.no_resign_proxy,
            oci_command,
            oci_command_source,
            open_browser: !o.no_browser,
            browser_command,
            login_timeout,
            device_login: crate::oidc::device::should_use_device(&device, env, std::io::stderr().is_terminal()),
            device,
            passphrase,
            log_level: match &o.log_level {
                Some(l) => Some(l.clone()),
                None => manager.get("log_level").map(|l| crate::logging::check_level(l, "`log_level`")).transpose()?,
            },
            debug: o.debug,
            extra_ca_files,
            resign_hosts,
            endpoint,
            oci: inv.oci.clone(),
            container: crate::container::ContainerSpec::resolve(&manager, env)?,
            native_oke: manager.get("native_oke").map_or(Ok(true), |v| parse_bool(Some(v), "native_oke"))?
                && !o.no_native,
            manager,
            interactive,
            upstream_proxy,
            no_proxy,
            origins,
            warnings,
            java_options: crate::proxy::java::UserJavaOptions::from_env(env),
        })
    }

    /// Whether the profile has woci IdP settings (else it is an `oci session authenticate` profile).
    pub fn has_idp(&self) -> bool {
        matches!(self.mode, RenewMode::Idp { .. } | RenewMode::Federated { .. })
    }

    /// Whether woci manages the session at all: only for `security_token` auth (the default it adds).
    pub fn manages_session(&self) -> bool {
        self.auth.as_deref().is_none_or(|a| a == "security_token")
    }

    /// The `oci` arguments woci prepends: `--profile P` when the command line did not name one,
    /// `--config-file F` when only the manager INI named it, `--auth security_token` when no auth
    /// was given. The user's arguments follow untouched.
    pub fn oci_prefix_args(&self) -> Vec<OsString> {
        let mut v = Vec::new();
        if !self.profile_on_cli {
            v.push("--profile".into());
            v.push(self.profile.clone().into());
        }
        if !self.oci_config_file_implicit {
            v.push("--config-file".into());
            v.push(self.oci_config_file.clone().into_os_string());
        }
        if self.auth.is_none() {
            v.push("--auth".into());
            v.push("security_token".into());
        }
        v
    }
}

const IDP_REQUIRED: [&str; 7] =
    ["authz_base_url", "token_url", "auth_client_id", "client_id", "client_secret", "scope", "redirect_port"];

fn resolve_mode(o: &WociOptions, m: &ManagerConfig, env: &Env, profile: &str) -> Result<RenewMode> {
    let pick = |flag: &Option<String>, key: &str| -> Option<String> {
        flag.clone().filter(|v| !v.trim().is_empty()).or_else(|| m.get(key).map(str::to_owned))
    };
    let values: Vec<(&str, Option<String>)> = vec![
        ("authz_base_url", pick(&o.authz_base_url, "authz_base_url")),
        ("token_url", pick(&o.token_url, "token_url")),
        ("auth_client_id", pick(&o.auth_client_id, "auth_client_id")),
        ("client_id", pick(&o.client_id, "client_id")),
        ("client_secret", pick(&exposed(&o.client_secret), "client_secret")),
        ("scope", pick(&o.scope, "scope")),
        ("redirect_port", o.redirect_port.map(|p| p.to_string()).or_else(|| m.get("redirect_port").map(str::to_owned))),
    ];
    let present: Vec<&str> = values.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| *k).collect();
    if present.is_empty() {
        let auth_endpoint = env_nonempty(env, "WOCI_AUTH_ENDPOINT")
            .or_else(|| m.get("auth_endpoint").map(str::to_owned))
            .map(|u| parse_url(&u, "auth_endpoint"))
            .transpose()?;
        return Ok(RenewMode::SessionRefresh { auth_endpoint });
    }
    let missing: Vec<&str> = IDP_REQUIRED.iter().copied().filter(|k| !present.contains(k)).collect();
    if !missing.is_empty() {
        let where_ = m.path.as_ref().map_or_else(|| "the command line".to_owned(), |p| format!("`{}`", p.display()));
        return Err(Error::Config(format!(
            "missing required options for profile `{profile}`: {} (set them in {where_} or as flags)",
            missing.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        )));
    }
    let get = |k: &str| values.iter().find(|(key, _)| *key == k).and_then(|(_, v)| v.clone()).unwrap_or_default();
    let token_url = parse_url(&get("token_url"), "token_url")?;
    let exchange_url = match pick(&o.token_exchange_url, "token_exchange_url") {
        Some(u) => parse_url(&u, "token_exchange_url")?,
        None => token_url.clone(),
    };
    let redirect_port: u16 = get("redirect_port").trim().parse().ok().filter(|p| *p != 0).ok_or_else(|| {
        Error::Config(format!("`redirect_port` must be a port number 1-65535, got `{}`", get("redirect_port")))
    })?;
    let scopes: Vec<String> = get("scope").split_whitespace().map(str::to_owned).collect();
    let reuse_grace = Duration::from_secs(match m.get("refresh_token_reuse_grace") {
        Some(v) => parse_u64(v, "refresh_token_reuse_grace")?,
        None => 0,
    });
    Ok(RenewMode::Idp {
        idp: Box::new(IdpConfig {
            authorize_url: parse_url(&get("authz_base_url"), "authz_base_url")?,
            token_url,
            client_id: get("auth_client_id"),
            client_secret: pick(&exposed(&o.auth_client_secret), "auth_client_secret").map(SecretString::from),
            scopes,
            redirect_port,
            reuse_grace,
        }),
        exchange: ExchangeConfig {
            url: exchange_url,
            client_id: get("client_id"),
            client_secret: SecretString::from(get("client_secret")),
        },
    })
}

/// A service URL: `https://`, or `http://` to a loopback address (tests, local emulators) — a
/// token or secret must never cross a network in clear text.
/// A flag's secret as plain text, for merging with the INI's (which holds plain text too); it is
/// wrapped again before it leaves this module.
fn exposed(s: &Option<SecretString>) -> Option<String> {
    s.as_ref().map(|s| s.expose().clone())
}

pub(crate) fn parse_url(s: &str, key: &str) -> Result<Url> {
    let u = Url::parse(s.trim()).map_err(|e| Error::Config(format!("`{key}` is not a valid URL ({e}): `{s}`")))?;
    match u.scheme() {
        "https" => Ok(u),
        "http" if is_loopback(&u) => Ok(u),
        "http" => Err(Error::Config(format!(
            "`{key}` must use https:// (http:// is accepted only for 127.0.0.1, ::1 and localhost), got `{s}`"
        ))),
        _ => Err(Error::Config(format!("`{key}` must start with https://, got `{s}`"))),
    }
}

fn is_loopback(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn parse_bool(v: Option<&str>, key: &str) -> Result<bool> {
    match v.map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(s) => match s.as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" | "" => Ok(false),
            _ => Err(Error::Config(format!("`{key}` must be true or false, got `{s}`"))),
        },
    }
}

fn parse_u64(v: &str, key: &str) -> Result<u64> {
    v.trim().parse().map_err(|_| Error::Config(format!("`{key}` must be a whole number of seconds, got `{v}`")))
}

fn env_nonempty(env: &Env, key: &str) -> Option<String> {
    env.get(key).filter(|v| !v.is_empty()).cloned()
}

/// Profile names become folder names under `~/.oci/sessions` and appear in one-line messages:
/// refuse ones that would escape the folder or break a line.
pub fn validate_profile(p: &str) -> Result<()> {
    if p.is_empty() || p == "." || p == ".." || p.contains(['/', '\\', '\0']) || p.chars().any(char::is_control) {
        return Err(Error::Config(format!("invalid profile name `{}`", p.escape_debug())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_cannot_escape_the_sessions_folder() {
        assert!(validate_profile("DEFAULT").is_ok());
        assert!(validate_profile("my-profile_2").is_ok());
        for bad in ["", "..", "a/b", "../x"] {
            assert!(validate_profile(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bools_and_numbers() {
        assert!(parse_bool(Some("True"), "k").unwrap());
        assert!(!parse_bool(None, "k").unwrap());
        assert!(parse_bool(Some("maybe"), "k").is_err());
        assert_eq!(parse_u64(" 600 ", "k").unwrap(), 600);
        assert!(parse_u64("10m", "k").is_err());
    }

    #[test]
    fn idp_mode_needs_all_required_keys() {
        let mut m = ManagerConfig::default();
        m.values.insert("token_url".into(), "https://idp/token".into());
        let err = resolve_mode(&WociOptions::default(), &m, &Env::new(), "P").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`authz_base_url`") && msg.contains("`client_secret`"), "{msg}");
        assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
    }

    #[test]
    fn no_idp_keys_means_session_refresh() {
        let env = Env::from([("WOCI_AUTH_ENDPOINT".to_owned(), "http://127.0.0.1:1".to_owned())]);
        match resolve_mode(&WociOptions::default(), &ManagerConfig::default(), &env, "P").unwrap() {
            RenewMode::SessionRefresh { auth_endpoint } => assert!(auth_endpoint.is_some()),
            _ => panic!("expected session refresh"),
        }
    }

    #[test]
    fn exchange_url_defaults_to_token_url() {
        let mut m = ManagerConfig::default();
        for (k, v) in [
            ("authz_base_url", "https://idp/authorize"),
            ("token_url", "https://idp/token"),
            ("auth_client_id", "a"),
            ("client_id", "c"),
            ("client_secret", "s"),
            ("scope", "openid offline_access"),
            ("redirect_port", "8181"),
        ] {
            m.values.insert(k.into(), v.into());
        }
        let RenewMode::Idp { idp, exchange } = resolve_mode(&WociOptions::default(), &m, &Env::new(), "P").unwrap()
        else {
            panic!("expected idp mode")
        };
        assert_eq!(exchange.url, idp.token_url);
        assert_eq!(idp.scopes, ["openid", "offline_access"]);
        m.values.insert("redirect_port".into(), "0".into());
        assert!(resolve_mode(&WociOptions::default(), &m, &Env::new(), "P").is_err());
    }
}
