//! Top level: parse the command line, resolve settings, dispatch, and map any error to one line on
//! stderr (`woci: error: …`) plus its exit code. This is the only place that decides the process
//! exit status.
//!
//! The common path — a valid token, then `oci` — builds no async runtime and touches no network:
//! it reads the config and token, then replaces itself with `oci`.

use crate::autorefresh;
use crate::child::{self, ChildSpec};
use crate::cli::{self, Command};
use crate::clock::SystemClock;
use crate::error::{Error, Result};
use crate::renew::{Action, Force, Renewer, Session};
use crate::settings::{Env, Settings};
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let env: Env =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    match run(args, env) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "woci: error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs one invocation; returns the exit code.
pub fn run(args: Vec<OsString>, env: Env) -> Result<u8> {
    let inv = cli::parse(args)?;
    if let Some(code) = run_informational(&inv.command)? {
        return Ok(code);
    }
    let settings = Arc::new(Settings::resolve(&inv, &env)?);
    crate::logging::init(settings.log_level.as_deref(), settings.debug, env.get("RUST_LOG").map(String::as_str));
    let env = Arc::new(env);
    let renewer = Arc::new(Renewer::new(settings.clone(), env.clone(), Arc::new(SystemClock))?);

    match inv.command {
        Command::Oci(args) => run_oci(&renewer, args),
        Command::Exec { program, args } => {
            let mut spec = ChildSpec {
                program,
                args,
                set_env: exec_env(&settings, &env),
                remove_env: child::private_env_names(&settings, &env),
                program_source: "the program after `--exec`".into(),
                redactor: None,
            };
            let session = ensure(&renewer, Force::No)?;
            spec.redactor = crate::redact::for_child(&settings, &env, &[], Some(&session.token));
            supervised(renewer, session, spec)
        }
        Command::SessionAuthenticate => report_session(&renewer, ensure(&renewer, Force::Login)?),
        Command::SessionRefresh => report_session(&renewer, ensure(&renewer, Force::Renew)?),
        Command::Status => crate::status::run(&renewer, inv.options.json),
        Command::Daemon => crate::daemon::start(&renewer),
        Command::DaemonRun => crate::daemon::run_foreground(renewer),
        Command::DaemonStatus => crate::daemon::status(&renewer),
        Command::StopDaemon => crate::daemon::stop(&renewer),
        Command::Help | Command::Version | Command::Completions(_) | Command::Man => unreachable!("handled above"),
    }
}

/// Commands that need no settings: help, version, completions, man page.
fn run_informational(command: &Command) -> Result<Option<u8>> {
    let mut out = std::io::stdout().lock();
    let written = match command {
        Command::Help => out.write_all(cli::help_text().as_bytes()),
        Command::Version => writeln!(out, "woci {}", env!("CARGO_PKG_VERSION")),
        Command::Completions(shell) => out.write_all(cli::completions(*shell).as_bytes()),
        Command::Man => out.write_all(&cli::man_page()),
        _ => return Ok(None),
    };
    match written {
        Ok(()) => Ok(Some(0)),
        // `woci --help | head` is fine, like any Unix tool.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Some(0)),
        Err(e) => Err(Error::Other(format!("cannot write to stdout: {e}"))),
    }
}

fn run_oci(renewer: &Arc<Renewer>, args: Vec<OsString>) -> Result<u8> {
    let settings = renewer.settings();
    let mut full = if settings.manages_session() { settings.oci_prefix_args() } else { Vec::new() };
    full.extend(args);
    let mut spec = ChildSpec {
        program: settings.oci_command.clone(),
        remove_env: child::private_env_names(settings, renewer.env()),
        redactor: crate::redact::for_child(settings, renewer.env(), &full, None),
        args: full,
        set_env: Vec::new(),
        program_source: settings.oci_command_source.to_owned(),
    };
    if !settings.manages_session() {
        tracing::debug!(auth = ?settings.auth, "not a security_token command; running oci as is");
        return child::exec(&spec);
    }
    let session = ensure(renewer, Force::No)?;
    if let Some(r) = spec.redactor.as_mut() {
        r.add_secret(session.token.expose());
    }
    if settings.auto_refresh {
        return supervised(renewer.clone(), session, spec);
    }
    child::exec(&spec)
}

/// The session, without a runtime when the stored token is good.
fn ensure(renewer: &Arc<Renewer>, force: Force) -> Result<Session> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?;
    // `ensure` returns before any await point when the token is fresh, so this is cheap.
    runtime.block_on(renewer.ensure(force))
}

fn supervised(renewer: Arc<Renewer>, session: Session, spec: ChildSpec) -> Result<u8> {
    let resign = renewer.settings().resign_proxy;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(autorefresh::run_supervised(renewer, session, spec, resign))
}

/// Environment for `--exec` children: the profile and auth, so scripts calling `oci` or the SDKs
/// pick the same session, unless the user already set them.
fn exec_env(settings: &Settings, env: &Env) -> Vec<(OsString, OsString)> {
    let mut v = Vec::new();
    if !env.contains_key("OCI_CLI_PROFILE") {
        v.push(("OCI_CLI_PROFILE".into(), settings.profile.clone().into()));
    }
    if !env.contains_key("OCI_CLI_AUTH") {
        v.push(("OCI_CLI_AUTH".into(), "security_token".into()));
    }
    if !env.contains_key("OCI_CLI_CONFIG_FILE") {
        v.push(("OCI_CLI_CONFIG_FILE".into(), settings.oci_config_file.clone().into_os_string()));
    }
    v
}

fn report_session(renewer: &Renewer, session: Session) -> Result<u8> {
    let left = session.claims.exp - renewer.clock().unix();
    let how = match session.action {
        Action::Reused => "is valid",
        Action::RenewedByOther => "was renewed by another woci",
        Action::Refreshed => "was refreshed",
        Action::LoggedIn => "was created by a new login",
        Action::SessionRefreshed => "was refreshed through the OCI auth service",
    };
    let _ = writeln!(
        std::io::stderr().lock(),
        "woci: session of profile `{}` {how}; valid for {}m{:02}s",
        renewer.settings().profile,
        left.max(0) / 60,
        left.max(0) % 60
    );
    Ok(0)
}
