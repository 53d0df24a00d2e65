//! Settings resolution: the parsed command line, the environment and the manager INI become one
//! plain [`Settings`] value, validated once, so the rest of woci never looks at argv, env or INI.
//!
//! Precedence for every woci key: command-line flag > environment (where one exists) > manager INI
//! (`[COMMON]` merged under the profile's section) > default. The profile is `--profile` (from the
//! `oci` arguments) > `OCI_CLI_PROFILE` > `DEFAULT`; the OCI config file is `--config-file` >
//! `OCI_CLI_CONFIG_FILE` > INI `config_file` > `~/.oci/config`.

use crate::cli::{Invocation, OciView, WociOptions};
use crate::error::{Error, Result};
use crate::exchange::ExchangeConfig;
use crate::manager_config::{self, ManagerConfig};
use crate::oidc::IdpConfig;
use crate::secret::SecretString;
use std::collections::HashMap;
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
}

/// Where the refresh token passphrase comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    /// Refresh tokens are stored in plain text (mode 0600).
    None,
    /// The named environment variable holds it.
    Env(String),
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
    /// What the `oci` arguments said.
    pub oci: OciView,
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

        let profile_on_cli = inv.oci.profile.is_some();
        let profile = inv
            .oci
            .profile
            .clone()
            .or_else(|| env_nonempty(env, "OCI_CLI_PROFILE"))
            .unwrap_or_else(|| "DEFAULT".to_owned());
        validate_profile(&profile)?;

        let default_oci_config = home.join(".oci").join("config");
        let explicit_config = inv
            .oci
            .config_file
            .clone()
            .or_else(|| env_nonempty(env, "OCI_CLI_CONFIG_FILE").map(PathBuf::from))
            .map(|p| expand_tilde(&p, &home));
        let locate_base = explicit_config.clone().unwrap_or_else(|| default_oci_config.clone());
        let env_manager = env_nonempty(env, "WOCI_MANAGER_CONFIG").map(PathBuf::from);
        let manager =
            match manager_config::locate(o.manager_config.as_deref(), env_manager.as_deref(), &locate_base, &home) {
                Some((path, source)) => manager_config::load(&expand_tilde(&path, &home), source, &profile)?,
                None => ManagerConfig::default(),
            };

        let (oci_config_file, oci_config_file_implicit) = match explicit_config {
            Some(p) => (p, true),
            None => match manager.get("config_file") {
                Some(p) => (expand_tilde(Path::new(p), &home), false),
                None => (default_oci_config, true),
            },
        };

        let region = inv
            .oci
            .region
            .clone()
            .or_else(|| env_nonempty(env, "OCI_CLI_REGION"))
            .or_else(|| manager.get("region").map(str::to_owned));
        let auth = inv.oci.auth.clone().or_else(|| env_nonempty(env, "OCI_CLI_AUTH"));

        let auto_refresh = o.auto_refresh || parse_bool(manager.get("auto_refresh"), "auto_refresh")?;
        let default_window = if auto_refresh { DEFAULT_AUTO_WINDOW } else { DEFAULT_WINDOW };
        let window = match o.refresh_safety_window {
            Some(s) => Duration::from_secs(s),
            None => match manager.get("refresh_safety_window") {
                Some(v) => Duration::from_secs(parse_u64(v, "refresh_safety_window")?),
                None => default_window,
            },
        };

        let mode = resolve_mode(o, &manager, env, &profile)?;

        let (oci_command, oci_command_source) = if let Some(c) = env_nonempty(env, "WOCI_OCI_COMMAND") {
            (OsString::from(c), "the `WOCI_OCI_COMMAND` environment variable")
        } else if let Some(c) = manager.get("oci_command") {
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
            PassphraseSource::Env(var)
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
            env_nonempty(env, "REQUESTS_CA_BUNDLE").map(PathBuf::from),
            env_nonempty(env, "SSL_CERT_FILE").map(PathBuf::from),
        ]
        .into_iter()
        .flatten()
        {
            let p = expand_tilde(&p, &home);
            if !extra_ca_files.contains(&p) {
                extra_ca_files.push(p);
            }
        }

        let resign_hosts = env_nonempty(env, "WOCI_RESIGN_HOSTS")
            .or_else(|| manager.get("resign_hosts").map(str::to_owned))
            .map(|s| s.split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect())
            .unwrap_or_default();

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
            browser_command: env_nonempty(env, "BROWSER").map(OsString::from),
            login_timeout,
            passphrase,
            log_level: match &o.log_level {
                Some(l) => Some(l.clone()),
                None => manager.get("log_level").map(|l| crate::logging::check_level(l, "`log_level`")).transpose()?,
            },
            debug: o.debug,
            extra_ca_files,
            resign_hosts,
            oci: inv.oci.clone(),
            manager,
        })
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
        ("client_secret", pick(&o.client_secret, "client_secret")),
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
    Ok(RenewMode::Idp {
        idp: Box::new(IdpConfig {
            authorize_url: parse_url(&get("authz_base_url"), "authz_base_url")?,
            token_url,
            client_id: get("auth_client_id"),
            client_secret: pick(&o.auth_client_secret, "auth_client_secret").map(SecretString::from),
            scopes,
            redirect_port,
        }),
        exchange: ExchangeConfig {
            url: exchange_url,
            client_id: get("client_id"),
            client_secret: SecretString::from(get("client_secret")),
        },
    })
}

fn parse_url(s: &str, key: &str) -> Result<Url> {
    let u = Url::parse(s.trim()).map_err(|e| Error::Config(format!("`{key}` is not a valid URL ({e}): `{s}`")))?;
    if u.scheme() != "http" && u.scheme() != "https" {
        return Err(Error::Config(format!("`{key}` must start with http:// or https://, got `{s}`")));
    }
    Ok(u)
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

fn expand_tilde(p: &Path, home: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => p.to_owned(),
    }
}

/// Profile names become folder names under `~/.oci/sessions`: refuse ones that would escape it.
pub fn validate_profile(p: &str) -> Result<()> {
    if p.is_empty() || p == "." || p == ".." || p.contains(['/', '\\', '\0']) {
        return Err(Error::Config(format!("invalid profile name `{p}`")));
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
            RenewMode::Idp { .. } => panic!("expected session refresh"),
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
