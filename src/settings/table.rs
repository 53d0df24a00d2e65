//! Every woci setting, once: its command-line flag, environment variable, INI key, default, value
//! type (which decides the one parsing rule it gets), secrecy and help text.
//!
//! Everything that lists settings derives from [`SETTINGS`]: the splitter's and clap's options
//! (`cli`), `--help`, completions and the man page's SETTINGS and ENVIRONMENT sections (with the
//! README's tables, which a test keeps identical), the INI's known keys and their "did you mean"
//! ([`super::ini`]), and `--status` origins ([`super::Settings::origins`]). Adding a setting is
//! one row here plus its use.
//!
//! The `oci` CLI's own options (`--profile`, `--config-file`, `--region`, `--auth`,
//! `--cert-bundle`, `--endpoint`) are not woci settings: woci reads them as `oci` does
//! ([`super::OciView`]).

/// A woci setting's name in code; [`def`] gives its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Key {
    ManagerConfig,
    ConfigFile,
    Region,
    RefreshSafetyWindow,
    OpenBrowser,
    LoginFlow,
    LoginTimeout,
    PassphraseEnv,
    PassphrasePrompt,
    AuthzBaseUrl,
    TokenUrl,
    TokenExchangeUrl,
    AuthClientId,
    AuthClientSecret,
    ClientId,
    ClientSecret,
    Scope,
    RedirectPort,
    RefreshTokenReuseGrace,
    DeviceAuthorizationUrl,
    SubjectTokenSource,
    SubjectTokenAudience,
    AuthEndpoint,
    AutoRefresh,
    ResignProxy,
    ResignHosts,
    ProxyMaxConnections,
    NativeOke,
    OciCommand,
    OciContainerImage,
    OciContainerRuntime,
    OciContainerArgs,
    MetricsFile,
    OnRenewalFailure,
    OnExpiring,
    ExpiringWarning,
    FallbackProfile,
    LogLevel,
    Debug,
}

/// The value type of a setting: each type has one parsing rule ([`super::rules`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `https://…`, or `http://` to a loopback address.
    Url,
    /// `90`, `90s`, `10m`, `24h`, `2d`.
    Duration,
    /// A file or folder; `~` expanded.
    Path,
    /// `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`).
    Bool,
    /// A TCP port 1–65535.
    Port,
    /// A whole number ≥ 1.
    Count,
    /// Free text (trimmed).
    Text,
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// A comma-separated list.
    List,
    /// A command line, split as a POSIX shell would, run without a shell.
    Command,
    /// An environment variable's name.
    EnvName,
    /// An OCI profile name.
    Profile,
    /// A subject token source: `github-actions`, `env:NAME`, `file:PATH`, `command:CMDLINE`.
    Source,
}

/// Where a flag is woci's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// No `oci` command uses the name: woci's anywhere before `--`.
    Anywhere,
    /// An `oci` command may use the name: woci's only before the first oci word.
    Leading,
}

/// What a flag carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagArg {
    /// `--flag VALUE` / `--flag=VALUE`; the value's name in help.
    Value(&'static str),
    /// A switch standing for this value of the setting (`--no-native` is `native_oke = false`),
    /// and the switch's own help.
    Sets(&'static str, &'static str),
}

/// A setting's command-line flag.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// Long name without `--`.
    pub long: &'static str,
    /// Value or switch.
    pub arg: FlagArg,
    /// Where it is woci's.
    pub scope: Scope,
    /// Help heading.
    pub heading: &'static str,
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Def {
    /// Its name in code.
    pub key: Key,
    /// Its name in `woci_manager.ini`, in messages and in `--status` (also for settings that
    /// have no INI key: then `ini` is false).
    pub name: &'static str,
    /// Whether `woci_manager.ini` may set it.
    pub ini: bool,
    /// Its flag, if any.
    pub flag: Option<Flag>,
    /// Its environment variable, if any.
    pub env: Option<&'static str>,
    /// Value type.
    pub kind: Kind,
    /// The default, as text (parsed by the kind's rule); empty when there is none or it is
    /// computed (then [`Def::default_doc`] says what it is).
    pub default: &'static str,
    /// How the default is described when `default` cannot say it.
    pub default_doc: &'static str,
    /// Never shown, logged or passed on (client secrets).
    pub secret: bool,
    /// Whether a renewal reads it: changing one it does not (a log level, a hook) fixes no
    /// renewal failure (`--status`, a call waiting for another woci's renewal).
    pub renewal: bool,
    /// One line.
    pub help: &'static str,
}

/// Help headings.
pub const H_SESSION: &str = "Session";
/// Help heading of the IdP options.
pub const H_IDP: &str = "Identity provider (override woci_manager.ini)";
/// Help heading of the long-running options.
pub const H_LONG: &str = "Long-running commands";
/// Help heading of the daemon and status commands.
pub const H_DAEMON: &str = "Daemon and status";
/// Help heading of output options.
pub const H_INFO: &str = "Output and information";

use FlagArg::{Sets, Value};
use Kind::*;
use Scope::{Anywhere, Leading};

/// A setting of `woci_manager.ini` with no flag, variable or default; the builders below add them.
const fn d(key: Key, name: &'static str, kind: Kind, help: &'static str) -> Def {
    Def {
        key,
        name,
        ini: true,
        flag: None,
        env: None,
        kind,
        default: "",
        default_doc: "",
        secret: false,
        renewal: true,
        help,
    }
}

impl Def {
    /// A flag taking a value (`VALUE` is its name in help).
    const fn flag(self, long: &'static str, value: &'static str, scope: Scope, heading: &'static str) -> Def {
        Def { flag: Some(Flag { long, arg: Value(value), scope, heading }), ..self }
    }

    /// A switch standing for `value`, with its own help.
    const fn switch(
        self,
        long: &'static str,
        value: &'static str,
        scope: Scope,
        heading: &'static str,
        help: &'static str,
    ) -> Def {
        Def { flag: Some(Flag { long, arg: Sets(value, help), scope, heading }), ..self }
    }

    const fn env(self, var: &'static str) -> Def {
        Def { env: Some(var), ..self }
    }

    const fn default(self, default: &'static str) -> Def {
        Def { default, ..self }
    }

    const fn default_doc(self, default_doc: &'static str) -> Def {
        Def { default_doc, ..self }
    }

    const fn secret(self) -> Def {
        Def { secret: true, ..self }
    }

    /// Not read by a renewal: the call's or the run's own setting.
    const fn call_only(self) -> Def {
        Def { renewal: false, ..self }
    }

    /// Not a key of `woci_manager.ini` (a flag or variable only).
    const fn no_ini(self) -> Def {
        Def { ini: false, ..self }
    }
}

/// Every setting, in help order (and in [`Key`]'s order).
#[rustfmt::skip]
pub const SETTINGS: &[Def] = &[
    d(Key::ManagerConfig, "manager_config", Path, "The woci_manager.ini to use").no_ini()
        .flag("manager-config", "PATH", Anywhere, H_SESSION).env("WOCI_MANAGER_CONFIG")
        .default_doc("`woci_manager.ini` beside the OCI config file, else `~/.oci/woci_manager.ini`"),
    d(Key::ConfigFile, "config_file", Path, "The OCI config file, when neither `--config-file` nor `OCI_CLI_CONFIG_FILE` names one")
        .default_doc("`~/.oci/config`"),
    d(Key::Region, "region", Text, "The profile's region, written into the OCI config with the session's entries (it wins over the OCI config's; a call's `--region` or `OCI_CLI_REGION` is that call's, written only into a profile without one)"),
    d(Key::RefreshSafetyWindow, "refresh_safety_window", Duration, "Renew when the session token expires within this long")
        .flag("refresh-safety-window", "DURATION", Anywhere, H_SESSION).default_doc("60s, with --auto-refresh 10m; at most half the token's lifetime; the daemon and --auto-refresh renew up to 30s before it opens, ahead of calls").call_only(),
    d(Key::OpenBrowser, "open_browser", Bool, "Open a browser for the login (`false`: print the login URL only, as on a host reached over SSH with the redirect port forwarded)").default("true")
        .switch("no-browser", "false", Anywhere, H_SESSION, "Print the login URL instead of opening a browser"),
    d(Key::LoginFlow, "login_flow", Choice(&["auto", "browser", "device", "device_code"]),
        "Interactive login: `browser`, `device` code, or `auto` (device code where no browser can be opened)").default("auto")
        .switch("device-code", "device", Anywhere, H_SESSION, "Log in with a device code shown on the terminal (RFC 8628) instead of a browser on this machine"),
    d(Key::LoginTimeout, "login_timeout", Duration, "How long to wait for the login")
        .flag("login-timeout", "DURATION", Anywhere, H_SESSION).default("300"),
    d(Key::PassphraseEnv, "refresh_token_passphrase_env", EnvName, "Encrypt the stored refresh token with the passphrase in this environment variable; every call needs the same setting to open it, so give it in the INI")
        .flag("refresh-token-passphrase-env", "VAR", Anywhere, H_SESSION),
    d(Key::PassphrasePrompt, "refresh_token_passphrase_prompt", Bool, "Ask for the refresh token passphrase on the terminal").default("false")
        .switch("refresh-token-passphrase-prompt", "true", Anywhere, H_SESSION, "Ask for the refresh token passphrase on the terminal"),
    d(Key::AuthzBaseUrl, "authz_base_url", Url, "The IdP's authorization endpoint (full URL)").flag("authz-base-url", "URL", Anywhere, H_IDP),
    d(Key::TokenUrl, "token_url", Url, "The IdP's token endpoint").flag("token-url", "URL", Anywhere, H_IDP),
    d(Key::TokenExchangeUrl, "token_exchange_url", Url, "The OCI identity domain's token endpoint for the exchange")
        .flag("token-exchange-url", "URL", Anywhere, H_IDP).default_doc("`token_url`"),
    d(Key::AuthClientId, "auth_client_id", Text, "Client id of the login (authorization code + refresh) application")
        .flag("auth-client-id", "ID", Anywhere, H_IDP),
    d(Key::AuthClientSecret, "auth_client_secret", Text, "Client secret of the login application, if it has one")
        .flag("auth-client-secret", "SECRET", Anywhere, H_IDP).env("WOCI_AUTH_CLIENT_SECRET").secret(),
    d(Key::ClientId, "client_id", Text, "Client id of the OCI token exchange application").flag("client-id", "ID", Leading, H_IDP),
    d(Key::ClientSecret, "client_secret", Text, "Client secret of the token exchange application")
        .flag("client-secret", "SECRET", Leading, H_IDP).env("WOCI_CLIENT_SECRET").secret(),
    d(Key::Scope, "scope", Text, "Scopes to request, space separated; must include offline_access").flag("scope", "SCOPES", Leading, H_IDP),
    d(Key::RedirectPort, "redirect_port", Port, "Loopback port of the login callback http://127.0.0.1:PORT/callback")
        .flag("redirect-port", "PORT", Anywhere, H_IDP),
    d(Key::RefreshTokenReuseGrace, "refresh_token_reuse_grace", Duration,
        "How long the IdP still accepts a refresh token it rotated (a lost reply is then retried once)").default("0"),
    d(Key::DeviceAuthorizationUrl, "device_authorization_url", Url, "The IdP's device authorization endpoint")
        .default_doc("discovered from `token_url`"),
    d(Key::SubjectTokenSource, "subject_token_source", Source,
        "Mint sessions from a CI/workload JWT, no login: github-actions, env:NAME, file:PATH or command:CMDLINE")
        .flag("subject-token-source", "SOURCE", Anywhere, H_IDP),
    d(Key::SubjectTokenAudience, "subject_token_audience", Text, "The `audience` asked of the GitHub Actions ID-token service")
        .default("https://cloud.oracle.com"),
    d(Key::AuthEndpoint, "auth_endpoint", Url, "OCI auth service base URL for session refresh").env("WOCI_AUTH_ENDPOINT")
        .default_doc("from the region"),
    d(Key::AutoRefresh, "auto_refresh", Bool, "Keep the session valid while `oci` runs").default("false")
        .switch("auto-refresh", "true", Anywhere, H_LONG, "Keep the session valid while oci runs, re-signing its requests with fresh tokens").call_only(),
    d(Key::ResignProxy, "resign_proxy", Bool, "Run the re-signing proxy beside an auto-refreshed child").no_ini().default("true")
        .switch("no-resign-proxy", "false", Anywhere, H_LONG, "With --auto-refresh or --exec: only renew the token file, without the re-signing proxy").call_only(),
    d(Key::ResignHosts, "resign_hosts", List, "Extra `host[:port]`s the proxy re-signs besides OCI's own domains and the `--endpoint` host, separated by commas (an `https://` URL stands for its host and port)")
        .env("WOCI_RESIGN_HOSTS").call_only(),
    d(Key::ProxyMaxConnections, "proxy_max_connections", Count, "How many connections the re-signing proxy keeps open at once (a quarter of them, at least 8 but never more than all, may be still opening)")
        .default_doc("(open-files limit − 128) / 2, at most 4096").call_only(),
    d(Key::NativeOke, "native_oke", Bool, "Answer `ce cluster generate-token` natively").default("true")
        .switch("no-native", "false", Anywhere, H_LONG, "Run oci for `ce cluster generate-token` instead of answering it natively (INI native_oke = false)").call_only(),
    d(Key::OciCommand, "oci_command", Command, "The `oci` program to run: a name looked up on `PATH`, or a path (a relative one from the current folder); no arguments").env("WOCI_OCI_COMMAND")
        .default_doc("`oci` on `PATH`, skipping woci itself").call_only(),
    d(Key::OciContainerImage, "oci_container_image", Text, "Run `oci` from this container image").env("WOCI_OCI_CONTAINER_IMAGE").call_only(),
    d(Key::OciContainerRuntime, "oci_container_runtime", Command, "The container runtime: `docker` or `podman` (or a path to one)")
        .default_doc("`docker`, else `podman`, whichever is on `PATH`").call_only(),
    d(Key::OciContainerArgs, "oci_container_args", Command, "Extra arguments for the runtime's `run`").call_only(),
    d(Key::MetricsFile, "metrics_file", Path, "Write renewal metrics here in the Prometheus text format (node_exporter textfile collector)").call_only(),
    d(Key::OnRenewalFailure, "on_renewal_failure", Command, "Run this command (JSON event on stdin) after a failed renewal").call_only(),
    d(Key::OnExpiring, "on_expiring", Command, "Run this command (JSON event on stdin) when the session or refresh token nears its hard end").call_only(),
    d(Key::ExpiringWarning, "expiring_warning", Duration, "How long before the session's or refresh token's hard end to warn")
        .default_doc("1h before the session's end, 24h before the refresh token's").call_only(),
    d(Key::FallbackProfile, "fallback_profile", Profile, "Run the command with this profile when this one's session cannot be renewed").call_only(),
    d(Key::LogLevel, "log_level", Choice(&["trace", "debug", "info", "warn", "warning", "error", "critical", "fatal", "off", "none"]),
        "woci's log level (RUST_LOG wins)").flag("log-level", "LEVEL", Leading, H_INFO).default("warn").call_only(),
    d(Key::Debug, "debug", Bool, "woci's debug logging").no_ini().default("false")
        .switch("debug", "true", Leading, H_INFO, "Show woci's flow (secrets redacted); also passed on to oci").call_only(),
];

impl Def {
    /// Whether its value is never echoed in messages or logs: secrets, and command lines and
    /// subject-token sources (their arguments may hold credentials).
    pub fn hides_value(&self) -> bool {
        self.secret || matches!(self.kind, Kind::Command | Kind::Source)
    }

    /// The default as the documentation shows it: `` `300` ``, or the text of `default_doc`.
    pub fn shown_default(&self) -> String {
        if self.default.is_empty() {
            self.default_doc.to_owned()
        } else {
            format!("`{}`", self.default)
        }
    }
}

/// The row of `key` (the table is in [`Key`]'s order; a test checks it).
pub fn def(key: Key) -> &'static Def {
    &SETTINGS[key as usize]
}

/// The INI keys woci reads.
pub fn ini_keys() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().filter(|d| d.ini).map(|d| d.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_one_row_and_names_are_unique() {
        let mut names: Vec<&str> = SETTINGS.iter().map(|d| d.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
        for (i, d) in SETTINGS.iter().enumerate() {
            assert_eq!(d.key as usize, i, "`{}` is out of `Key`'s order", d.name);
        }
        let mut longs: Vec<&str> = SETTINGS.iter().filter_map(|d| d.flag.map(|f| f.long)).collect();
        let n = longs.len();
        longs.sort_unstable();
        longs.dedup();
        assert_eq!(longs.len(), n, "flag names are unique");
    }

    #[test]
    fn defaults_parse_by_their_rule() {
        for d in SETTINGS.iter().filter(|d| !d.default.is_empty()) {
            let ok = match d.kind {
                Kind::Duration => super::super::rules::duration(d.default).is_ok(),
                Kind::Bool => super::super::rules::boolean(d.default).is_ok(),
                Kind::Choice(words) => words.contains(&d.default),
                _ => true,
            };
            assert!(ok, "default of `{}`", d.name);
        }
    }
}
