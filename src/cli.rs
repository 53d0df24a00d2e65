//! Command line splitting (STUB: types fixed, `parse` owned by the config work item).
use crate::error::Result;
use std::ffi::OsString;
use std::path::PathBuf;

/// woci's own options. `None`/`false` = not given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WociOptions {
    pub manager_config: Option<PathBuf>,
    pub authz_base_url: Option<String>,
    pub token_url: Option<String>,
    pub token_exchange_url: Option<String>,
    pub auth_client_id: Option<String>,
    pub auth_client_secret: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scope: Option<String>,
    pub redirect_port: Option<u16>,
    pub log_level: Option<String>,
    pub refresh_safety_window: Option<u64>,
    pub auto_refresh: bool,
    pub no_resign_proxy: bool,
    pub no_browser: bool,
    pub login_timeout: Option<u64>,
    pub refresh_token_passphrase_env: Option<String>,
    pub refresh_token_passphrase_prompt: bool,
    pub json: bool,
    /// `--debug` before the first oci word: woci debug logging (the flag is also passed to oci).
    pub debug: bool,
}

/// What the `oci` arguments say about the profile; read only, the arguments are never changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OciView {
    pub profile: Option<String>,
    pub config_file: Option<PathBuf>,
    pub region: Option<String>,
    pub auth: Option<String>,
    pub cert_bundle: Option<PathBuf>,
    pub endpoint: Option<String>,
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Ensure the session, then run `oci` with these arguments (untouched, in order).
    Oci(Vec<OsString>),
    /// `--exec -- program args…`.
    Exec { program: OsString, args: Vec<OsString> },
    /// `session authenticate`: force a fresh interactive login; not forwarded.
    SessionAuthenticate,
    /// `session refresh`: force a renewal now; not forwarded.
    SessionRefresh,
    Help,
    Version,
    Completions(clap_complete::Shell),
    Man,
    Status,
    Daemon,
    /// The detached daemon process itself (hidden `--daemon-run`).
    DaemonRun,
    DaemonStatus,
    StopDaemon,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub options: WociOptions,
    pub oci: OciView,
    pub command: Command,
}

/// Splits argv (without argv[0]).
pub fn parse(_args: Vec<OsString>) -> Result<Invocation> {
    unimplemented!("cli::parse")
}

/// Help text (stub).
pub fn help_text() -> String {
    unimplemented!()
}
/// Completions (stub).
pub fn completions(_shell: clap_complete::Shell) -> String {
    unimplemented!()
}
/// Man page (stub).
pub fn man_page() -> Vec<u8> {
    unimplemented!()
}
