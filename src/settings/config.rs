//! The typed configurations resolution produces: how the profile renews ([`RenewMode`], one type
//! per mode, consumed by the renewal plan and executor), the subject token source of federated
//! profiles, container mode, and the operational settings.

use super::Env;
use crate::secret::SecretString;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// How the profile's session is renewed.
#[derive(Debug, Clone)]
pub enum RenewMode {
    /// OIDC refresh grant (or an interactive login) at the IdP, then the token exchange.
    Login(Box<LoginConfig>),
    /// CI / workload federation: a fresh JWT from the source, exchanged at every renewal.
    Federated(Box<FederatedConfig>),
    /// No IdP: renew through the OCI auth service (`oci session authenticate` profiles).
    SessionRefresh(SessionRefreshConfig),
    /// The profile's woci settings are incomplete or invalid (why). Only commands that never renew
    /// (`--status`, `--daemon-status`, `--stop-daemon`) get this far; `--status` reports it.
    Unusable(String),
}

impl RenewMode {
    /// How the profile renews, as `--status` names it: `idp`, `federated` or `session_refresh`.
    pub fn renewal_name(&self) -> &'static str {
        match self {
            RenewMode::SessionRefresh(_) => "session_refresh",
            RenewMode::Federated(_) => "federated",
            RenewMode::Login(_) | RenewMode::Unusable(_) => "idp",
        }
    }
}

/// The IdP client: authorization code + PKCE login, refresh grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpConfig {
    /// Full authorize endpoint URL (`authz_base_url`).
    pub authorize_url: Url,
    /// Token endpoint (`token_url`).
    pub token_url: Url,
    /// `auth_client_id`.
    pub client_id: String,
    /// `auth_client_secret` (public clients have none).
    pub client_secret: Option<SecretString>,
    /// Scopes (`scope`, space separated); must include `offline_access` for refresh tokens.
    pub scopes: Vec<String>,
    /// Loopback port for `http://127.0.0.1:<port>/callback`; `0` picks a free port (tests). Only
    /// the browser login needs it: refreshes, the daemon and device-code logins work without.
    pub redirect_port: Option<u16>,
    /// `refresh_token_reuse_grace`: how long after sending a refresh grant the IdP still accepts
    /// the same refresh token (0: it must never be sent twice).
    pub reuse_grace: Duration,
}

/// The identity domain's token exchange client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeConfig {
    /// `token_exchange_url`.
    pub url: Url,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: SecretString,
}

/// The device-login settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceConfig {
    /// `device_authorization_url`, when configured (else discovered).
    pub authorization_url: Option<Url>,
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
        /// Its value, when set.
        value: Option<SecretString>,
    },
    /// Ask on the terminal.
    Prompt,
}

/// A login/refresh profile.
#[derive(Debug, Clone)]
pub struct LoginConfig {
    /// The IdP client.
    pub idp: IdpConfig,
    /// The exchange client.
    pub exchange: ExchangeConfig,
    /// Device-code login.
    pub device: DeviceConfig,
    /// A login uses a device code (`login_flow`, `--device-code`; with `auto`, a terminal without
    /// a browser here).
    pub device_login: bool,
    /// Open a browser for the login (false with `--no-browser`).
    pub open_browser: bool,
    /// `BROWSER`, if set.
    pub browser_command: Option<OsString>,
    /// How long a login may take.
    pub login_timeout: Duration,
    /// A person can be asked to log in: stderr is a terminal, or a `BROWSER` command is set.
    pub interactive: bool,
    /// The refresh token passphrase.
    pub passphrase: PassphraseSource,
    /// The setting that chose it, as the user gave it ([`crate::settings::Origin::setting`]),
    /// for messages that tell how to change it.
    pub passphrase_setting: String,
}

/// A federated profile (`subject_token_source`).
#[derive(Debug, Clone)]
pub struct FederatedConfig {
    /// Where the JWT comes from.
    pub source: SubjectTokenSource,
    /// The environment variables the source reads.
    pub env: SourceEnv,
    /// `subject_token_audience`, for the GitHub Actions ID-token service.
    pub audience: String,
    /// The exchange client.
    pub exchange: ExchangeConfig,
}

/// A profile renewed through the OCI auth service.
#[derive(Debug, Clone, Default)]
pub struct SessionRefreshConfig {
    /// `auth_endpoint` / `WOCI_AUTH_ENDPOINT`; else derived from the region.
    pub auth_endpoint: Option<Url>,
}

/// The GitHub Actions ID-token service's URL variable.
pub const GH_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
/// The GitHub Actions ID-token service's bearer variable (a secret).
pub const GH_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";

/// Where the subject JWT comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SubjectTokenSource {
    /// The GitHub Actions OIDC ID-token service.
    GithubActions,
    /// An environment variable.
    Env(String),
    /// A file, re-read at every renewal.
    File(PathBuf),
    /// A program run without a shell.
    Command {
        /// Program and arguments.
        argv: Vec<String>,
    },
}

/// The forms a source may take, for configuration errors.
pub const VALID_FORMS: &str = "`github-actions`, `env:NAME`, `file:PATH` or `command:CMDLINE`";

impl SubjectTokenSource {
    /// Parses `github-actions`, `env:NAME`, `file:PATH` or `command:CMDLINE`. The reason on
    /// failure never repeats a command line (its arguments may hold credentials).
    pub fn parse(value: &str, home: &Path) -> Result<SubjectTokenSource, String> {
        let v = value.trim();
        if v == "github-actions" {
            return Ok(SubjectTokenSource::GithubActions);
        }
        let forms = |why: &str| format!("{why}; valid forms are {VALID_FORMS}");
        // An unknown kind (`comand:…`, a bare word) is named by its first word only.
        let unknown = |kind: &str| {
            let shown: String = kind.split_whitespace().next().unwrap_or_default().chars().take(24).collect();
            let more = if v.len() > shown.len() { " …" } else { "" };
            forms(&format!("is not a subject token source: `{}`{more}", shown.escape_debug()))
        };
        let Some((kind, rest)) = v.split_once(':') else { return Err(unknown(v)) };
        let rest = rest.trim();
        match kind.trim() {
            "env" => super::rules::env_name(rest).map(SubjectTokenSource::Env).map_err(|why| forms(&why)),
            "file" if rest.is_empty() => Err(forms("names no file")),
            "file" => Ok(SubjectTokenSource::File(super::rules::path(rest, home))),
            "command" => super::rules::command(rest)
                .map(|argv| SubjectTokenSource::Command { argv })
                .map_err(|why| format!("has a command line after `command:` that {why}")),
            kind => Err(unknown(&format!("{}:", kind.trim()))),
        }
    }

    /// The source as shown in messages. A command shows only its program: its arguments may
    /// carry credentials.
    pub fn describe(&self) -> String {
        match self {
            SubjectTokenSource::GithubActions => "github-actions".into(),
            SubjectTokenSource::Env(n) => format!("env:{n}"),
            SubjectTokenSource::File(p) => format!("file:{}", p.display()),
            SubjectTokenSource::Command { argv } => {
                let more = if argv.len() > 1 { " …" } else { "" };
                format!("command:{}{more}", argv[0])
            }
        }
    }

    /// The environment variables the source reads.
    pub fn env_names(&self) -> Vec<&str> {
        match self {
            SubjectTokenSource::GithubActions => vec![GH_URL_VAR, GH_TOKEN_VAR],
            // Where the helper is looked up, for the local check that it exists.
            SubjectTokenSource::Command { .. } => vec!["PATH"],
            SubjectTokenSource::Env(_) | SubjectTokenSource::File(_) => self.secret_env_names(),
        }
    }

    /// The ones of [`Self::env_names`] that hold a secret (the JWT, or what fetches one): kept
    /// from children and hooks. Not `PATH` or the ID-token URL, which a child may well need.
    pub fn secret_env_names(&self) -> Vec<&str> {
        match self {
            SubjectTokenSource::GithubActions => vec![GH_TOKEN_VAR],
            SubjectTokenSource::Env(name) => vec![name.as_str()],
            SubjectTokenSource::Command { .. } | SubjectTokenSource::File(_) => Vec::new(),
        }
    }
}

impl fmt::Debug for SubjectTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The environment variables a source reads, captured once with the settings, and the names of
/// those a `command:` helper must not get. `Debug` shows the names, never the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SourceEnv(Env, Vec<String>);

impl fmt::Debug for SourceEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("SourceEnv").field(&names).field(&self.1).finish()
    }
}

impl From<Env> for SourceEnv {
    fn from(vars: Env) -> SourceEnv {
        SourceEnv(vars, Vec::new())
    }
}

impl SourceEnv {
    /// The variables `source` reads, from `env`; for a helper, what of `env` it must not get:
    /// woci's passphrases and the OCI key (it gets the rest, the job's own environment).
    pub fn capture(source: &SubjectTokenSource, env: &Env) -> SourceEnv {
        let vars = source.env_names().into_iter().filter_map(|n| Some((n.to_owned(), env.get(n)?.clone()))).collect();
        let withheld = match source {
            SubjectTokenSource::Command { .. } => env.keys().filter(|k| super::is_key_secret_var(k)).cloned().collect(),
            _ => Vec::new(),
        };
        SourceEnv(vars, withheld)
    }

    /// The captured variables.
    pub fn vars(&self) -> &Env {
        &self.0
    }

    /// The variables a helper must not get.
    pub fn withheld(&self) -> &[String] {
        &self.1
    }
}

/// Which runtime runs the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Docker (Engine or Desktop).
    Docker,
    /// Podman.
    Podman,
}

impl RuntimeKind {
    /// The kind of a runtime program (`docker`, `/usr/bin/podman`, `docker.exe`).
    pub fn of_program(program: &OsStr) -> Option<RuntimeKind> {
        let name = Path::new(program).file_name()?.to_str()?;
        match name.strip_suffix(".exe").unwrap_or(name) {
            "docker" => Some(RuntimeKind::Docker),
            "podman" => Some(RuntimeKind::Podman),
            _ => None,
        }
    }
}

/// The home the official image's user has; woci sets `HOME` to it in the container.
pub const CONTAINER_HOME: &str = "/oracle";
/// Where the OCI config folder is mounted in the container.
pub const CONTAINER_OCI_DIR: &str = "/oracle/.oci";

/// Container mode (`oci_container_image`): `oci` runs from this image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerConfig {
    /// The image.
    pub image: String,
    /// The runtime program (`docker`, `podman`, or a path to one).
    pub runtime: OsString,
    /// Its kind.
    pub kind: RuntimeKind,
    /// Extra `run` arguments (`oci_container_args`), split as a shell would.
    pub extra_args: Vec<String>,
}

/// What woci does to help operate the session: metrics, hooks, warnings, fallback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpsConfig {
    /// `metrics_file`.
    pub metrics_file: Option<PathBuf>,
    /// `on_renewal_failure`, split.
    pub on_renewal_failure: Option<Vec<String>>,
    /// `on_expiring`, split.
    pub on_expiring: Option<Vec<String>>,
    /// `expiring_warning`; unset, [`crate::expiry::SESSION_WARNING`] before the session's end and
    /// [`crate::expiry::REFRESH_TOKEN_WARNING`] before the refresh token's.
    pub expiring_warning: Option<Duration>,
    /// `fallback_profile`.
    pub fallback_profile: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<SubjectTokenSource, String> {
        SubjectTokenSource::parse(s, Path::new("/home/u"))
    }

    #[test]
    fn sources_parse_in_every_form_and_errors_list_the_forms() {
        assert_eq!(parse("github-actions").unwrap(), SubjectTokenSource::GithubActions);
        assert_eq!(parse("env:CI_JOB_JWT").unwrap(), SubjectTokenSource::Env("CI_JOB_JWT".into()));
        assert_eq!(parse("file:~/tok").unwrap(), SubjectTokenSource::File("/home/u/tok".into()));
        let SubjectTokenSource::Command { argv } = parse("command:my-idp --aud 'a b'").unwrap() else { panic!() };
        assert_eq!(argv, ["my-idp", "--aud", "a b"]);
        for bad in ["gitlab", "env:", "env:1X", "env:A-B", "file:", "s3:bucket"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("`env:NAME`"), "{bad}: {e}");
        }
        for bad in ["command:", "command:fetch --secret 's3cr3t"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("command:") && !e.contains("s3cr3t"), "{e}");
        }
        for (bad, named) in [
            ("comand:fetch --client-secret s3cr3t", "`comand:` …"),
            ("fetch-jwt --client-secret s3cr3t", "`fetch-jwt` …"),
            ("gitlab", "`gitlab`;"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(named) && e.contains(VALID_FORMS) && !e.contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn command_messages_show_only_the_program() {
        assert_eq!(parse("command:fetch --secret s3cr3t").unwrap().describe(), "command:fetch …");
    }
}
