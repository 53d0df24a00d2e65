//! Top level: parse the command line, resolve settings, build the invocation's [`Context`],
//! dispatch, and map any error to one line on stderr (`woci: error: …`) plus its exit code. This
//! is the only place that decides the process exit status.
//!
//! The common path — a valid token, then `oci` — builds no async runtime and touches no network:
//! it reads the config and token, then replaces itself with `oci`.

use crate::autorefresh;
use crate::child::{self, ChildBuilder};
use crate::cli::{self, Command, Invocation};
use crate::clock::SystemClock;
use crate::context::Context;
use crate::daemon::DaemonSpec;
use crate::error::{Error, Result};
use crate::renew::{Action, Force, Renewer, Session};
use crate::settings::{Env, OciView, Settings};
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

/// Entry point of the binary: the one place that reads the command line and the environment.
#[allow(clippy::disallowed_methods, reason = "the process's inputs are read here once")]
pub fn main() -> ExitCode {
    // Before any handler exists: which signals the caller ignored (`nohup`).
    crate::critical::note_ignored_at_start();
    crate::secret::keep_out_of_core_dumps();
    let mut argv = std::env::args_os();
    let as_oci = argv.next().is_some_and(|a| cli::invoked_as_oci(&a));
    let args: Vec<OsString> = argv.collect();
    // woci reads only text; a variable it would read that is not is named, not taken as unset.
    let mut env = Env::new();
    let mut not_text = Vec::new();
    for (k, v) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
        match v.into_string() {
            Ok(v) => drop(env.insert(k, v)),
            Err(v) => not_text.push((k, v)),
        }
    }
    crate::settings::note_not_text(not_text);
    let result = run(args, env, as_oci);
    // A hook still running ends before woci's last line (or the child's exit status) does.
    crate::hooks::finish();
    match result {
        Ok(code) => {
            // Everything is cleaned up (the proxy's files, the relays): end as the child ended.
            let _ = std::io::Write::flush(&mut std::io::stdout());
            child::end_like_child();
            crate::critical::end_like_noted();
            ExitCode::from(code)
        }
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
    let inv = cli::parse_as(args, as_oci)?;
    if let Some(code) = run_informational(&inv.command)? {
        return Ok(code);
    }
    #[cfg(unix)]
    {
        use crate::fsutil::{CALL_OPEN_FILES, PROXY_OPEN_FILES};
        // A run beside the re-signing proxy needs room for the program's connections too: the
        // settings tell, so `run_oci` and `run_exec` look at that before renewing anything.
        let needed = match &inv.command {
            // Looking and stopping must work in any shell.
            Command::Status { .. } | Command::DaemonStatus | Command::StopDaemon => 0,
            Command::Daemon { .. } | Command::DaemonRun => PROXY_OPEN_FILES,
            _ => CALL_OPEN_FILES,
        };
        crate::fsutil::raise_open_file_limit(needed)?;
    }
    let hint = cli::typo_hint(&inv.oci);
    // `woci os ns get --profle EMU` fails on profile `DEFAULT`: say why.
    dispatch(inv, env).map_err(|e| if let Some(h) = &hint { e.with_hint(h) } else { e })
}

fn dispatch(inv: Invocation, env: Env) -> Result<u8> {
    if matches!(
        inv.command,
        Command::Passthrough(_) | Command::Oci(_) | Command::SessionAuthenticate(_) | Command::SessionRefresh(_)
    ) {
        crate::oci_program::check_guard(&env)?;
    }
    if let Command::Passthrough(args) = &inv.command {
        // Unresolvable settings (no HOME, a broken INI) must not block help or `setup`.
        let resolved = Settings::resolve(&inv.flags, &inv.oci, &env, false);
        let spec = ChildBuilder::oci(resolved.as_ref().ok(), &env, args.clone())?.build()?;
        return child::exec(&spec).map_err(|e| match (e, resolved) {
            // The program named by settings that could not be read was not the one tried.
            (e @ (Error::ProgramNotFound { .. } | Error::ProgramNotExecutable { .. }), Err(why)) => {
                e.with_hint(&format!("woci's settings could not be read, so no `oci_command` was used: {why}"))
            }
            (e, _) => e,
        });
    }
    // The invocation as given: what the daemon and a re-run as the `fallback_profile` need.
    let call = match inv.command {
        // The daemon's settings come through its stdin, never its command line.
        Command::DaemonRun => {
            crate::daemon::close_inherited_fds();
            DaemonSpec::read_from(std::io::stdin().lock())?
        }
        _ => DaemonSpec { flags: inv.flags, oci: inv.oci },
    };
    if let Command::Status { all: true, .. } = inv.command {
        return crate::status::run_all(&call.flags, &call.oci, &env, inv.json, Arc::new(SystemClock));
    }
    let mut settings = match Settings::resolve(&call.flags, &call.oci, &env, inv.command.never_renews()) {
        // A shell prompt still shows `P error`, a JSON reader still gets JSON.
        Err(e) if matches!(inv.command, Command::Status { prompt, .. } if prompt || inv.json) => {
            let now = crate::clock::Clock::unix(&SystemClock);
            return crate::status::run_unresolved(&Settings::meant_profile(&call.oci, &env), e, inv.json, now);
        }
        // A running daemon keeps the settings it has when the INI breaks: it can still be seen
        // and stopped (its folder depends only on the home folder and the profile).
        Err(e) if matches!(inv.command, Command::DaemonStatus | Command::StopDaemon) => {
            let Some(home) = Settings::home_of(&env) else { return Err(e) };
            let store = crate::store::SessionStore::new(&home, &Settings::meant_profile(&call.oci, &env))?;
            let _ = writeln!(
                std::io::stderr().lock(),
                "woci: warning: {} (a running daemon keeps the settings it read)",
                crate::terminal::safe(&e.to_string())
            );
            let now = crate::clock::Clock::unix(&SystemClock);
            return match inv.command {
                Command::DaemonStatus => crate::daemon::status(&store, now, inv.json),
                _ => crate::daemon::stop(&store, now),
            };
        }
        settings => settings?,
    };
    if inv.command == Command::DaemonRun {
        settings = DaemonSpec::settings(settings)?;
    }
    if matches!(inv.command, Command::SessionAuthenticate(_)) && settings.has_idp() {
        login_region(&mut settings, &call.oci)?;
    }
    crate::logging::init(
        settings.log_level.as_deref(),
        settings.debug,
        env.get("RUST_LOG").map(String::as_str),
        env.contains_key("NO_COLOR"),
        inv.command == Command::DaemonRun,
    );
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    let ctx = Context::new(settings, Arc::new(SystemClock), env)?;
    let renewer = Arc::new(Renewer::new(&ctx));
    let s = &ctx.settings;
    let renews = matches!(
        inv.command,
        Command::Oci(_) | Command::Exec { .. } | Command::SessionRefresh(_) | Command::SessionAuthenticate(_)
    );
    if s.manages_session() && renews {
        warn_if_python_daemon(&ctx);
    }

    match inv.command {
        Command::Oci(args) => run_oci(&ctx, &renewer, args, &call),
        Command::Exec { program, args } => run_exec(&ctx, renewer, program, args, &call),
        // Profiles without woci IdP settings are `oci session authenticate` profiles: logging in
        // is oci's own; refreshing stays woci's (its lock, its `auth_endpoint`).
        Command::SessionAuthenticate(mut args) if !s.has_idp() => {
            // woci took `--no-browser`, which oci's login has too: the login is oci's here.
            if call.flags.get(crate::settings::Key::OpenBrowser) == Some("false") {
                args.push("--no-browser".into());
            }
            // oci's login would write its own key and token over those of a woci IdP profile.
            if let Some(named) = cli::profile_name_arg(&args).filter(|n| *n != s.profile) {
                let view = crate::settings::OciView { profile: Some(named.clone()), ..call.oci.clone() };
                if Settings::resolve(&call.flags, &view, &ctx.env, true).is_ok_and(|o| o.has_idp()) {
                    return Err(crate::error::Error::Config(format!(
                        "profile `{named}` logs in through its identity provider with woci: run `woci --profile {named} \
                         session authenticate` (oci's own login would replace its key and session token)"
                    )));
                }
            }
            child::exec(&ChildBuilder::oci(Some(s), &ctx.env, args)?.build()?)
        }
        Command::SessionAuthenticate(args) => renew_now(&ctx, &renewer, &args, Force::Login),
        Command::SessionRefresh(args) => renew_now(&ctx, &renewer, &args, Force::Renew),
        Command::Status { prompt: true, .. } => crate::status::run_prompt(&ctx, &call),
        Command::Status { .. } => crate::status::run(&ctx, inv.json, &call),
        Command::Daemon { login } => crate::daemon::start(&ctx, &renewer, call, login),
        Command::DaemonRun => crate::daemon::run_foreground(&ctx, call),
        // The daemon's records carry this machine's time.
        Command::DaemonStatus => {
            crate::daemon::status(&ctx.store, ctx.clock.unix(), inv.json).inspect(|c| unknown_profile(&ctx, *c))
        }
        Command::StopDaemon => crate::daemon::stop(&ctx.store, ctx.clock.unix()).inspect(|c| unknown_profile(&ctx, *c)),
        Command::Help | Command::Version | Command::Completions(_) | Command::Man | Command::Passthrough(_) => Ok(0),
    }
}

/// A Python woci daemon left running renews the same refresh token as this call may: said on
/// every such call until it is stopped, since two renewers spend each other's tokens (round 86 N4).
fn warn_if_python_daemon(ctx: &Context) {
    // The pid file alone (the Python woci never locks it): no state file read on every call.
    let probe = crate::daemon::probe(&ctx.store.pid_path());
    if let Some(pid) = probe.ok().and_then(|p| crate::daemon::python_daemon(&p)) {
        tracing::warn!("{}", crate::daemon::python_daemon_line(pid, &ctx.settings.profile));
    }
}

/// No daemon for a profile that exists nowhere ([`crate::renew::facts::profile_unknown`]):
/// probably a typo, said with the profiles there are.
fn unknown_profile(ctx: &Context, code: u8) {
    use crate::oci_config::ConfigState;
    let s = &ctx.settings;
    if code == 0 || !crate::renew::facts::profile_unknown(s, &ctx.store) {
        return;
    }
    let has = match crate::oci_config::read_profile_split(&s.oci_config_file, &s.profile) {
        Ok((ConfigState::ProfileMissing(names), ..)) if !names.is_empty() => {
            format!("it has {}", names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "))
        }
        Ok((ConfigState::ProfileMissing(_), ..)) => "it has none".to_owned(),
        Ok((ConfigState::FileMissing, ..)) => "which does not exist".to_owned(),
        _ => return,
    };
    let _ = writeln!(
        std::io::stderr().lock(),
        "woci: profile `{}` is in neither woci_manager.ini nor the OCI config `{}` ({}); a typo?",
        crate::terminal::safe(&s.profile),
        s.oci_config_file.display(),
        crate::terminal::safe(&has)
    );
}

/// `session authenticate --region R` sets the profile's region, as oci's login does: woci writes
/// it into the OCI config, unless woci_manager.ini's `region` (which every renewal writes) says
/// otherwise, which is refused rather than dropped.
fn login_region(s: &mut Settings, oci: &OciView) -> Result<()> {
    let Some(region) = &oci.region else { return Ok(()) };
    match &s.config_region {
        Some(ini) if ini != region => Err(Error::Config(format!(
            "`--region {region}` is not the region of profile `{}`: woci writes `region = {ini}` from woci_manager.ini \
             into the OCI config at every renewal; change it there",
            s.profile
        ))),
        _ => {
            s.config_region = Some(region.clone());
            Ok(())
        }
    }
}

/// Commands that need no settings: help, version, completions, man page.
fn run_informational(command: &Command) -> Result<Option<u8>> {
    let out = match command {
        Command::Help => cli::help_text().into_bytes(),
        Command::Version => format!("woci {}\n", env!("CARGO_PKG_VERSION")).into_bytes(),
        Command::Completions(shell) => cli::completions(*shell).into_bytes(),
        Command::Man => cli::man_page(),
        _ => return Ok(None),
    };
    // `woci --help | head` is fine, like any Unix tool.
    crate::terminal::print(&out)?;
    Ok(Some(0))
}

fn run_oci(ctx: &Context, renewer: &Arc<Renewer>, args: Vec<OsString>, call: &DaemonSpec) -> Result<u8> {
    let s = &ctx.settings;
    if !s.manages_session() || api_key_profile(ctx) {
        tracing::debug!(auth = ?s.auth, "not a security_token command; running oci as is");
        let redactor = crate::redact::for_child(s, &args, None, &ctx.env);
        return child::exec(&ChildBuilder::oci(Some(s), &ctx.env, args)?.redactor(redactor).build()?);
    }
    let oke = if s.native_oke { crate::oke::recognize(&args, &ctx.env) } else { None };
    // The proxy's room and folder, before anything is renewed for a run that cannot start (a
    // native OKE token starts no proxy), as `--status` foretells.
    if s.call_runs_proxy() && oke.is_none() {
        crate::proxy::startable(s)?;
    }
    let session = match session_or_fallback(ctx, renewer, call)? {
        Ok(s) => s,
        Err((fallback, first)) => {
            let args = cli::with_profile(&args, &fallback.settings.profile);
            let ran = run_oci(&fallback, &Arc::new(Renewer::new(&fallback)), args, call);
            return ran.map_err(|e| fallback_failed(e, s, &first));
        }
    };
    let mut full = s.oci_prefix_args();
    full.extend(args);
    if let Some(req) = oke {
        if let Some(code) = crate::oke::answer(ctx, &session, &req)? {
            return Ok(code);
        }
    }
    renewer.warn_if_refused_clock();
    let redactor = crate::redact::for_child(s, &full, Some(&session.token), &ctx.env);
    let builder = ChildBuilder::oci(Some(s), &ctx.env, full)?.redactor(redactor);
    if s.auto_refresh {
        return supervised(ctx, renewer.clone(), session, builder);
    }
    child::exec(&builder.build()?)
}

/// `--exec`: the program under renewal (and the proxy), as the fallback profile when the
/// profile's session cannot be renewed.
/// An API-key profile ([`crate::renew::facts::OciProfile::is_api_key`]) when no `--auth` was given:
/// woci has no session to keep there, so the call goes to `oci` (or the program runs) as it is.
fn api_key_profile(ctx: &Context) -> bool {
    let s = &ctx.settings;
    // Only a session-refresh profile can be one: IdP and federated ones skip the config read.
    s.auth.is_none()
        && matches!(s.mode, crate::settings::RenewMode::SessionRefresh(_))
        && crate::renew::facts::OciProfile::read(s).is_ok_and(|(_, p)| p.is_api_key(&s.mode))
}

fn run_exec(
    ctx: &Context,
    renewer: Arc<Renewer>,
    program: OsString,
    args: Vec<OsString>,
    call: &DaemonSpec,
) -> Result<u8> {
    let s = &ctx.settings;
    if api_key_profile(ctx) {
        tracing::debug!("an API-key profile; running the program as is");
        return child::exec(&ChildBuilder::exec(s, &ctx.env, program, args).build()?);
    }
    // The proxy's room and folder, before anything is renewed for a run that cannot start.
    if s.resign_proxy {
        crate::proxy::startable(s)?;
    }
    let session = match session_or_fallback(ctx, &renewer, call)? {
        Ok(s) => s,
        Err((fallback, first)) => {
            let ran = run_exec(&fallback, Arc::new(Renewer::new(&fallback)), program, args, call);
            return ran.map_err(|e| fallback_failed(e, s, &first));
        }
    };
    renewer.warn_if_refused_clock();
    let redactor = crate::redact::for_child(s, &[], Some(&session.token), &ctx.env);
    let mut builder = ChildBuilder::exec(s, &ctx.env, program, args).redactor(redactor);
    if s.oci.profile.as_deref() != call.oci.profile.as_deref() {
        // A fallback: the program's `oci` and SDKs use its profile, whatever the user exported.
        builder = builder.env_override("OCI_CLI_PROFILE", &s.profile);
    }
    supervised(ctx, renewer, session, builder)
}

/// The session for a call that runs a command (keeps a still-valid token when renewal fails).
/// When an error `err` ends the renewal of the context's profile: the context of its
/// `fallback_profile` to run the command with instead — when one is set, the failure's class is
/// not `config`, and the profile is not itself a fallback (never chained) — with one warning line
/// naming both profiles and the class, counted in `woci_fallbacks_total`, and `err` for
/// [`fallback_failed`]. Otherwise `err`.
/// [`Renewer::ensure_or_keep`] fails only when the token is no longer usable (expired, missing,
/// or valid for [`crate::renew::FALLBACK_MIN_LEFT`] or less), so a usable token is never
/// replaced.
fn session_or_fallback(
    ctx: &Context,
    renewer: &Renewer,
    call: &DaemonSpec,
) -> Result<std::result::Result<Session, (Context, Error)>> {
    // `ensure` returns before any await point when the token is fresh, so this is cheap.
    let err = match runtime()?.block_on(renewer.ensure_or_keep()) {
        Ok(session) => return Ok(Ok(session)),
        Err(e) => e,
    };
    let s = &ctx.settings;
    let Some(name) = s.ops.fallback_profile.clone() else { return Err(err) };
    let class = crate::metrics::class_of(&err);
    if class == crate::metrics::Class::Config {
        return Err(err);
    }
    let view = OciView { profile: Some(name.clone()), ..call.oci.clone() };
    let mut settings = match Settings::resolve(&call.flags.for_another_profile(), &view, &ctx.env, false) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!("fallback profile `{name}` of profile `{}` cannot be used: {e}", s.profile);
            return Err(err);
        }
    };
    // `oci` gets `--profile NAME` where the user's `--profile` was, else in front.
    settings.profile_on_cli = s.profile_on_cli;
    settings.ops.fallback_profile = None;
    let fallback = ctx.with_settings(settings)?;
    if crate::renew::facts::profile_unknown(&fallback.settings, &fallback.store) {
        tracing::warn!(
            "fallback profile {}: profile `{}` cannot fall back to it; fix `fallback_profile`",
            crate::status::nowhere(&name),
            s.profile
        );
        return Err(err);
    }
    tracing::warn!(
        "renewing the session of profile `{}` failed ({}: {err}); running the command with its fallback profile `{name}`",
        s.profile,
        class.as_str()
    );
    crate::metrics::record_fallback(ctx.store.dir(), &s.profile, &crate::metrics::Target::of(s), &name);
    Ok(Err((fallback, err)))
}

/// The fallback profile's error `e` with the first profile's own, `first`: the last line a cron
/// mail shows names both profiles and both fixes (round 100 N2: it named only the fallback's).
fn fallback_failed(e: Error, s: &Settings, first: &Error) -> Error {
    let fallback = s.ops.fallback_profile.as_deref().unwrap_or_default();
    e.with_hint(&format!("profile `{}` fell back to `{fallback}` after its own renewal failed: {first}", s.profile))
}

/// An async runtime on this thread only, for one renewal.
fn runtime() -> Result<tokio::runtime::Runtime> {
    child::runtime(&mut tokio::runtime::Builder::new_current_thread())
}

fn supervised(ctx: &Context, renewer: Arc<Renewer>, session: Session, builder: ChildBuilder) -> Result<u8> {
    let runtime = child::runtime(&mut tokio::runtime::Builder::new_multi_thread())?;
    let code = runtime.block_on(autorefresh::run_supervised(ctx, renewer, session, builder));
    // A renewal let go when the program ended may still wait for another woci's lock on a
    // blocking thread: that wait must not keep woci alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

/// woci's own `session authenticate` (`Force::Login`) or `session refresh` (`Force::Renew`), and
/// what came of it.
fn renew_now(ctx: &Context, renewer: &Renewer, args: &[OsString], force: Force) -> Result<u8> {
    cli::check_session_args(args)?;
    let session = runtime()?.block_on(renewer.ensure(force))?;
    // The session works, but its new refresh token could be stored nowhere (said in an error
    // line): the next renewal needs a login, which a script must learn from the exit code.
    if renewer.refresh_token_unsaved() {
        return Ok(crate::error::exit::FAILURE);
    }
    // A renewal says the same in its own info line (a login's at every level): once is enough.
    let renewed = !matches!(session.action, Action::Reused | Action::KeptAfterFailure);
    if (renewed && tracing::enabled!(tracing::Level::INFO)) || session.action == Action::LoggedIn {
        return Ok(0);
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "woci: session of profile `{}` {}; {}",
        ctx.settings.profile,
        session.described(),
        ctx.server.validity(session.claims.exp)
    );
    Ok(0)
}
