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
    /// A switch standing for this value of the setting (`--no-native` is `native_oke = false`).
    Sets(&'static str),
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
    /// The switch's own help when it differs from the setting's (negating switches).
    pub help: Option<&'static str>,
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

const fn flag(long: &'static str, arg: FlagArg, scope: Scope, heading: &'static str) -> Option<Flag> {
    Some(Flag { long, arg, scope, heading, help: None })
}

const fn switch(long: &'static str, value: &'static str, heading: &'static str, help: &'static str) -> Option<Flag> {
    Some(Flag { long, arg: Sets(value), scope: Anywhere, heading, help: Some(help) })
}

const fn row(key: Key, name: &'static str, kind: Kind, help: &'static str) -> Def {
    Def { key, name, ini: true, flag: None, env: None, kind, default: "", default_doc: "", secret: false, help }
}

/// Every setting, in help order.
pub const SETTINGS: &[Def] = &[
    Def {
        ini: false,
        flag: flag("manager-config", Value("PATH"), Anywhere, H_SESSION),
        env: Some("WOCI_MANAGER_CONFIG"),
        default_doc: "`woci_manager.ini` beside the OCI config file, else `~/.oci/woci_manager.ini`",
        ..row(Key::ManagerConfig, "manager_config", Path, "Woci_manager.ini to use")
    },
    Def {
        default_doc: "`--config-file`, `OCI_CLI_CONFIG_FILE`, else `~/.oci/config`",
        ..row(
            Key::ConfigFile,
            "config_file",
            Path,
            "The OCI config file, when neither `--config-file` nor `OCI_CLI_CONFIG_FILE` names one",
        )
    },
    row(
        Key::Region,
        "region",
        Text,
        "The region, when neither `--region`, `OCI_CLI_REGION` nor the OCI config names one",
    ),
    Def {
        flag: flag("refresh-safety-window", Value("DURATION"), Anywhere, H_SESSION),
        default_doc: "60s, with --auto-refresh 10m",
        ..row(
            Key::RefreshSafetyWindow,
            "refresh_safety_window",
            Duration,
            "Renew when the session token expires within this long",
        )
    },
    Def {
        ini: false,
        flag: switch("no-browser", "false", H_SESSION, "Print the login URL instead of opening a browser"),
        default: "true",
        ..row(Key::OpenBrowser, "open_browser", Bool, "Open a browser for the login")
    },
    Def {
        flag: switch(
            "device-code",
            "device",
            H_SESSION,
            "Log in with a device code shown on the terminal (RFC 8628) instead of a browser on this machine",
        ),
        default: "auto",
        ..row(
            Key::LoginFlow,
            "login_flow",
            Choice(&["auto", "Browser", "device", "device_code"]),
            "interactive login: `browser`, `device` code, or `auto` (device code where no browser can be opened)",
        )
    },
    Def {
        flag: flag("login-timeout", Value("DURATION"), Anywhere, H_SESSION),
        default: "300",
        ..row(Key::LoginTimeout, "login_timeout", Duration, "How long to wait for the login")
    },
    Def {
        flag: flag("refresh-token-passphrase-env", Value("VAR"), Anywhere, H_SESSION),
        ..row(
            Key::PassphraseEnv,
            "refresh_token_passphrase_env",
            EnvName,
            "Encrypt the stored refresh token with the passphrase in this environment variable",
        )
    },
    Def {
        flag: switch(
            "refresh-token-passphrase-prompt",
            "true",
            H_SESSION,
            "Ask for the refresh token passphrase on the terminal",
        ),
        default: "false",
        ..row(
            Key::PassphrasePrompt,
            "refresh_token_passphrase_prompt",
            Bool,
            "Ask for the refresh token passphrase on the terminal",
        )
    },
    Def {
        flag: flag("authz-base-url", Value("URL"), Anywhere, H_IDP),
        ..row(Key::AuthzBaseUrl, "authz_base_url", Url, "The IdP's authorization endpoint (full URL)")
    },
    Def {
        flag: flag("token-url", Value("URL"), Anywhere, H_IDP),
        ..row(Key::TokenUrl, "token_url", Url, "The IdP's token endpoint")
    },
    Def {
        flag: flag("token-exchange-url", Value("URL"), Anywhere, H_IDP),
        default_doc: "`token_url`",
        ..row(
            Key::TokenExchangeUrl,
            "token_exchange_url",
            Url,
            "The OCI identity domain's token endpoint for the exchange",
        )
    },
    Def {
        flag: flag("auth-client-id", Value("ID"), Anywhere, H_IDP),
        ..row(
            Key::AuthClientId,
            "auth_client_id",
            Text,
            "Client id of the login (authorization code + refresh) application",
        )
    },
    Def {
        flag: flag("auth-client-secret", Value("SECRET"), Anywhere, H_IDP),
        secret: true,
        ..row(
            Key::AuthClientSecret,
            "auth_client_secret",
            Text,
            "Client secret of the login application, if it has one",
        )
    },
    Def {
        flag: flag("client-id", Value("ID"), Leading, H_IDP),
        ..row(Key::ClientId, "client_id", Text, "Client id of the OCI token exchange application")
    },
    Def {
        flag: flag("client-secret", Value("SECRET"), Leading, H_IDP),
        secret: true,
        ..row(Key::ClientSecret, "client_secret", Text, "Client secret of the token exchange application")
    },
    Def {
        flag: flag("scope", Value("SCOPES"), Leading, H_IDP),
        ..row(Key::Scope, "scope", Text, "Scopes to request, space separated; must include offline_access")
    },
    Def {
        flag: flag("redirect-port", Value("PORT"), Anywhere, H_IDP),
        ..row(
            Key::RedirectPort,
            "redirect_port",
            Port,
            "Loopback port of the login callback http://127.0.0.1:PORT/callback",
        )
    },
    Def {
        default: "0",
        ..row(
            Key::RefreshTokenReuseGrace,
            "refresh_token_reuse_grace",
            Duration,
            "How long the IdP still accepts a refresh token it rotated (a lost reply is then retried once)",
        )
    },
    Def {
        default_doc: "discovered from `token_url`",
        ..row(Key::DeviceAuthorizationUrl, "device_authorization_url", Url, "The IdP's device authorization endpoint")
    },
    Def {
        flag: flag("subject-token-source", Value("SOURCE"), Anywhere, H_IDP),
        ..row(
            Key::SubjectTokenSource,
            "subject_token_source",
            Source,
            "Mint sessions from a CI/workload JWT, no login: github-actions, env:NAME, file:PATH or command:CMDLINE",
        )
    },
    Def {
        default: "https://cloud.oracle.com",
        ..row(
            Key::SubjectTokenAudience,
            "subject_token_audience",
            Text,
            "The `audience` asked of the GitHub Actions ID-token service",
        )
    },
    Def {
        env: Some("WOCI_AUTH_ENDPOINT"),
        default_doc: "from the region",
        ..row(Key::AuthEndpoint, "auth_endpoint", Url, "OCI auth service base URL for session refresh")
    },
    Def {
        flag: switch(
            "auto-refresh",
            "true",
            H_LONG,
            "Keep the session valid while oci runs, re-signing its requests with fresh tokens",
        ),
        default: "false",
        ..row(Key::AutoRefresh, "auto_refresh", Bool, "Keep the session valid while `oci` runs")
    },
    Def {
        ini: false,
        flag: switch(
            "no-resign-proxy",
            "false",
            H_LONG,
            "With --auto-refresh or --exec: only renew the token file, without the re-signing proxy",
        ),
        default: "true",
        ..row(Key::ResignProxy, "resign_proxy", Bool, "Run the re-signing proxy beside an auto-refreshed child")
    },
    Def {
        env: Some("WOCI_RESIGN_HOSTS"),
        ..row(
            Key::ResignHosts,
            "resign_hosts",
            List,
            "Extra `host[:port]`s the proxy re-signs besides OCI's own domains and the `--endpoint` host",
        )
    },
    Def {
        default_doc: "(open-files limit − 128) / 2, at most 4096",
        ..row(
            Key::ProxyMaxConnections,
            "proxy_max_connections",
            Count,
            "How many connections the re-signing proxy keeps open at once",
        )
    },
    Def {
        flag: switch(
            "no-native",
            "false",
            H_LONG,
            "Run oci for `ce cluster generate-token` instead of answering it natively (INI native_oke = false)",
        ),
        default: "true",
        ..row(Key::NativeOke, "native_oke", Bool, "Answer `ce cluster generate-token` natively")
    },
    Def {
        env: Some("WOCI_OCI_COMMAND"),
        default_doc: "`oci` on `PATH`, skipping woci itself",
        ..row(Key::OciCommand, "oci_command", Command, "The `oci` program to run")
    },
    Def {
        env: Some("WOCI_OCI_CONTAINER_IMAGE"),
        ..row(Key::OciContainerImage, "oci_container_image", Text, "Run `oci` from this container image")
    },
    Def {
        default_doc: "`docker`, else `podman`, whichever is on `PATH`",
        ..row(
            Key::OciContainerRuntime,
            "oci_container_runtime",
            Command,
            "The container runtime: `docker` or `podman` (or a path to one)",
        )
    },
    row(Key::OciContainerArgs, "oci_container_args", Command, "Extra arguments for the runtime's `run`"),
    row(
        Key::MetricsFile,
        "metrics_file",
        Path,
        "Write renewal metrics here in the Prometheus text format (node_exporter textfile collector)",
    ),
    row(
        Key::OnRenewalFailure,
        "on_renewal_failure",
        Command,
        "Run this command (JSON event on stdin) after a failed renewal",
    ),
    row(
        Key::OnExpiring,
        "on_expiring",
        Command,
        "Run this command (JSON event on stdin) when the session or refresh token nears its hard end",
    ),
    Def {
        default: "24h",
        ..row(
            Key::ExpiringWarning,
            "expiring_warning",
            Duration,
            "How long before the session's or refresh token's hard end to warn",
        )
    },
    row(
        Key::FallbackProfile,
        "fallback_profile",
        Profile,
        "Run the command with this profile when this one's session cannot be renewed",
    ),
    Def {
        flag: flag("log-level", Value("LEVEL"), Leading, H_INFO),
        default: "warn",
        ..row(
            Key::LogLevel,
            "log_level",
            Choice(&["trace", "debug", "info", "warn", "warning", "error", "critical", "fatal", "off", "none"]),
            "woci's log level (RUST_LOG wins)",
        )
    },
    Def {
        ini: false,
        flag: Some(Flag {
            long: "debug",
            arg: Sets("true"),
            scope: Leading,
            heading: H_INFO,
            help: Some("Show woci's flow (secrets redacted); also passed on to oci"),
        }),
        default: "false",
        ..row(Key::Debug, "debug", Bool, "Woci's debug logging")
    },
];

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
