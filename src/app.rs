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
use crate::renew::{Force, Renewer, Session};
use crate::settings::{Env, Settings};
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

/// Entry point of the binary: the one place that reads the command line and the environment.
#[allow(clippy::disallowed_methods, reason = "the process's inputs are read here once")]
pub fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let as_oci = argv.next().is_some_and(|a| cli::invoked_as_oci(&a));
    let args: Vec<OsString> = argv.collect();
    let env: Env =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    match run(args, env, as_oci) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            let _ = writeln!(std::io::stderr().lock(), "woci: error: {}", crate::terminal::safe(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs one invocation (`as_oci`: started under the name `oci`); returns the exit code.
pub fn run(args: Vec<OsString>, env: Env, as_oci: bool) -> Result<u8> {
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let mut inv = cli::parse_as(args, as_oci)?;
    if let Some(code) = run_informational(&inv.command)? {
        return Ok(code);
    }
    if let Command::Passthrough(args) = &inv.command {
        // Unresolvable settings (no HOME, a broken INI) must not block help or `setup`.
        let settings = Settings::resolve(&inv, &env).ok();
        return passthrough(settings.as_ref(), &env, args.clone());
    }
    if matches!(inv.command, Command::Oci(_) | Command::SessionAuthenticate(_) | Command::SessionRefresh(_)) {
        crate::oci_program::check_guard(&env)?;
    }
    if inv.command == Command::DaemonRun {
        // The daemon's settings come through its stdin, never its command line.
        inv = crate::daemon::DaemonSpec::read_from(std::io::stdin().lock())?.invocation();
    }
    let settings = Arc::new(Settings::resolve(&inv, &env)?);
    crate::logging::init(
        settings.log_level.as_deref(),
        settings.debug,
        env.get("RUST_LOG").map(String::as_str),
        env.contains_key("NO_COLOR"),
    );
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    let renewer = Arc::new(Renewer::new(settings.clone(), Arc::new(SystemClock))?);

    match inv.command {
        Command::Oci(args) => run_oci(&renewer, &env, args),
        Command::Exec { program, args } => {
            let mut spec = ChildSpec {
                program,
                args,
                set_env: exec_env(&settings, &env),
                remove_env: {
                    let mut v = child::private_env_names(&settings, &env);
                    v.push(crate::oci_program::GUARD_VAR.into());
                    v
                },
                program_source: "the program after `--exec`".into(),
                redactor: None,
            };
            let session = ensure_or_keep(&renewer)?;
            spec.redactor = crate::redact::for_child(&settings, &env, &[], Some(&session.token));
            supervised(renewer, session, spec, &env)
        }
        // Profiles without woci IdP settings are `oci session authenticate` profiles: logging in
        // is oci's own; refreshing stays woci's (its lock, its `auth_endpoint`).
        Command::SessionAuthenticate(args) if !settings.has_idp() => passthrough(Some(&settings), &env, args),
        Command::SessionAuthenticate(_) => report_session(&renewer, ensure(&renewer, Force::Login)?),
        Command::SessionRefresh(_) => report_session(&renewer, ensure(&renewer, Force::Renew)?),
        Command::Status => crate::status::run(&renewer, inv.options.json),
        Command::Daemon => crate::daemon::start(&renewer, &inv),
        Command::DaemonRun => crate::daemon::run_foreground(renewer),
        Command::DaemonStatus => crate::daemon::status(&renewer, inv.options.json),
        Command::StopDaemon => crate::daemon::stop(&renewer),
        Command::Help | Command::Version | Command::Completions(_) | Command::Man | Command::Passthrough(_) => {
            unreachable!("handled above")
        }
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

fn run_oci(renewer: &Arc<Renewer>, env: &Env, args: Vec<OsString>) -> Result<u8> {
    let settings = renewer.settings();
    let oke = if settings.native_oke { crate::oke::recognize(&args, env) } else { None };
    let mut full = if settings.manages_session() { settings.oci_prefix_args() } else { Vec::new() };
    full.extend(args);
    let mut spec = oci_spec(Some(settings), env, full.clone())?;
    spec.remove_env.extend(child::private_env_names(settings, env));
    spec.redactor = crate::redact::for_child(settings, env, &full, None);
    if !settings.manages_session() {
        tracing::debug!(auth = ?settings.auth, "not a security_token command; running oci as is");
        return child::exec(&spec);
    }
    let session = ensure_or_keep(renewer)?;
    if let Some(r) = spec.redactor.as_mut() {
        r.add_secret(session.token.expose());
    }
    if let Some(req) = oke {
        if let Some(code) = crate::oke::answer(renewer, env, &session, &req)? {
            return Ok(code);
        }
    }
    if settings.auto_refresh {
        return supervised(renewer.clone(), session, spec, env);
    }
    child::exec(&spec)
}

/// Runs `oci` with `args` as they are: no session check, nothing added. The settings only choose
/// the program (a container image too); without them (no HOME, a broken INI) `WOCI_OCI_COMMAND`
/// or `oci` is used, so help and `setup` work on a machine with nothing configured yet.
fn passthrough(settings: Option<&Settings>, env: &Env, args: Vec<OsString>) -> Result<u8> {
    crate::oci_program::check_guard(env)?;
    child::exec(&oci_spec(settings, env, args)?)
}

/// The `oci` to run with `args`: the container image in container mode, else the program named
/// by `oci_command` as found on PATH (never woci itself); with the self-recursion guard set.
fn oci_spec(settings: Option<&Settings>, env: &Env, args: Vec<OsString>) -> Result<ChildSpec> {
    if let Some(mut spec) = settings.map(|s| crate::container::oci_child(s, env, &args)).transpose()?.flatten() {
        spec.set_env.push(crate::oci_program::guard_env());
        return Ok(spec);
    }
    let (program, source) = match settings {
        Some(s) => (s.oci_command.clone(), s.oci_command_source.to_owned()),
        None => match env.get("WOCI_OCI_COMMAND").filter(|c| !c.is_empty()) {
            Some(c) => (c.into(), "the `WOCI_OCI_COMMAND` environment variable".to_owned()),
            None => ("oci".into(), "`oci_command` in the manager config or `WOCI_OCI_COMMAND`".to_owned()),
        },
    };
    Ok(ChildSpec {
        program: crate::oci_program::resolve(&program, env)?,
        args,
        set_env: vec![crate::oci_program::guard_env()],
        remove_env: Vec::new(),
        redactor: None,
        program_source: source,
    })
}

/// The session for a forced renewal or login (`session refresh` / `session authenticate`).
fn ensure(renewer: &Arc<Renewer>, force: Force) -> Result<Session> {
    current_thread()?.block_on(renewer.ensure(force))
}

/// The session for a call that runs a command (keeps a still-valid token when renewal fails).
fn ensure_or_keep(renewer: &Arc<Renewer>) -> Result<Session> {
    // `ensure` returns before any await point when the token is fresh, so this is cheap.
    current_thread()?.block_on(renewer.ensure_or_keep())
}

fn current_thread() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))
}

fn supervised(renewer: Arc<Renewer>, session: Session, spec: ChildSpec, env: &Env) -> Result<u8> {
    let resign = renewer.settings().resign_proxy;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(autorefresh::run_supervised(renewer, session, spec, resign, env))
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
    let how = crate::renew::describe(session.action);
    let _ = writeln!(
        std::io::stderr().lock(),
        "woci: session of profile `{}` {how}; valid for {}m{:02}s",
        renewer.settings().profile,
        left.max(0) / 60,
        left.max(0) % 60
    );
    Ok(0)
}
