//! Daemon mode: `woci --daemon` keeps one profile's session renewed in a detached process until it
//! is stopped (SIGTERM, SIGINT) or renewal becomes impossible; `--daemon-status` and
//! `--stop-daemon` inspect and end it. SIGHUP, and a change of the manager INI, reload its
//! settings without a restart ([`reload`]).
//!
//! Files in the session folder (see [`crate::store`]):
//! - `woci_refresh.pid` — the daemon's pid (the bare number, as the Python woci writes it), under
//!   an exclusive advisory lock held for the daemon's whole life. "A daemon runs" means "the lock
//!   is held exclusively" (probes take it shared, for an instant); a pid file nobody locks is
//!   stale (the daemon crashed or was killed) and is ignored. The file is never replaced (that
//!   would break the lock), only rewritten in place, and emptied on a clean exit. It and the lock
//!   files are never opened through a symbolic link.
//! - `woci-daemon.json` — [`DaemonState`], written atomically at start, after every renewal or
//!   failure, and at exit with the reason; what `--status` and `--daemon-status` show. It records
//!   the daemon's start time beside its pid: a pid whose process started at another time is a
//!   later process that reused it, and is never signalled (Linux; `--stop-daemon` signals
//!   through a pidfd opened before that check, so the process checked is the one signalled).
//! - `woci-daemon.log` — the daemon's stderr (woci's log lines plus one timestamped line per
//!   daemon event: start, each renewal with its result class, each reload naming what changed,
//!   the end), rotated to `woci-daemon.log.1` beyond [`LOG_MAX_BYTES`]. No secrets: tokens are
//!   `SecretString` and never logged, changed secrets are named, not shown.
//!
//! Exit codes: `--daemon` 0 started, 10 ([`exit::BUSY`]) already running, else the error's code;
//! `--daemon-status` 0 running, 1 not running; `--stop-daemon` 0 stopped, 1 none running.

use crate::clock::{fmt_relative, fmt_secs, fmt_utc};
use crate::context::Context;
use crate::error::{exit, Error, Result};
use crate::fsutil::{self, FileLock, Signal};
use crate::renew::schedule::{self, LoopEvent};
use crate::renew::{Force, Renewer};
use crate::secret::SecretString;
use crate::store::SessionStore;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The hidden flag that makes a woci process the daemon itself.
pub(crate) const DAEMON_RUN_FLAG: &str = "--daemon-run";
/// The log is rotated when it grows past this size; one old file (`.1`) is kept.
pub(crate) const LOG_MAX_BYTES: u64 = 1024 * 1024;
/// How long `--daemon` waits for the detached process to report that it runs.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `--stop-daemon` waits after SIGTERM before SIGKILL (the Python woci waits 5 s).
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);

/// How much longer `--stop-daemon` waits for a daemon that is renewing: the longest a refresh
/// grant's answer is waited for, and a margin for the exchange and the writes.
const RENEWAL_GRACE: Duration = Duration::from_secs(120);
/// How long the daemon waits for the pid lock a probing `--status` may hold for a moment.
const PID_LOCK_WAIT: Duration = Duration::from_secs(2);
/// How often the daemon checks its log size.
const LOG_CHECK_EVERY: Duration = Duration::from_secs(60);

mod files;
mod reload;
mod spec;
pub(crate) use files::*;
pub(crate) use spec::DaemonSpec;

fn err_line(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", crate::terminal::safe(msg));
}

/// `woci --daemon`: makes sure the session is valid (a login may happen here, on the terminal),
/// then starts the detached daemon, hands it its [`DaemonSpec`] through its stdin, and waits
/// until it reports that it runs. Prints nothing on stdout; one `woci:` line on stderr names the
/// pid and the log.
pub(crate) fn start(ctx: &Context, renewer: &Renewer, spec: DaemonSpec, login: bool) -> Result<u8> {
    let store = &ctx.store;
    let profile = store.profile().to_owned();
    DaemonSpec::check_passphrase(&ctx.settings)?;
    if crate::renew::facts::OciProfile::read(&ctx.settings)?.1.is_api_key(&ctx.settings.mode) {
        return Err(Error::Config(format!(
            "profile `{profile}` is an API-key profile: its calls need no session, so a daemon has nothing to renew"
        )));
    }
    let runtime = crate::child::runtime(&mut tokio::runtime::Builder::new_current_thread())?;
    let info = inspect(store)?;
    if info.running() {
        return Err(already_running(store, Some(info.probe)));
    }
    if let Some(pid) = python_daemon(&info.probe) {
        return Err(Error::Busy(python_daemon_line(pid, &profile)));
    }
    // Its log, state and every renewal write there: said here, not in a log that cannot be written.
    if let Some(why) = fsutil::cannot_write_in(store.dir()) {
        return Err(Error::Blocked {
            code: exit::FAILURE,
            message: format!("{why}; the daemon could not keep its log, state or the sessions it renews"),
            shared: None,
        });
    }
    runtime.block_on(renewer.ensure(if login { Force::Login } else { Force::No }))?;
    // After `ensure`, which may have logged in on this terminal and stored a refresh token.
    runtime.block_on(renewer.ready_for_run(false, true))?;

    store.ensure_dir()?;
    // The daemon reports ready through its state file: one it cannot write would leave this start
    // waiting for a report that never comes while the daemon runs. (`inspect` refused a pid path
    // that is no file already.)
    fsutil::refuse_non_file(&store.daemon_state_path())?;
    let log_path = store.daemon_log_path();
    // A FIFO there would block the open below (and the start with it).
    fsutil::refuse_non_file(&log_path)?;
    rotate_log_if_needed(&log_path, LOG_MAX_BYTES)?;
    let log = open_log(&log_path)?;
    let log2 = log.try_clone().map_err(|e| Error::io("cannot open", &log_path, e))?;
    let exe = std::env::current_exe().map_err(|e| Error::Other(format!("cannot find the woci executable: {e}")))?;
    let mut cmd = std::process::Command::new(&exe);
    // NO_COLOR: the log is a file, not a terminal.
    cmd.arg(DAEMON_RUN_FLAG).env("NO_COLOR", "1").stdin(std::process::Stdio::piped()).stdout(log).stderr(log2);
    // SAFETY: setsid(2) is async-signal-safe; it detaches the daemon from the terminal's session
    // so closing the terminal does not send it SIGHUP.
    #[cfg(unix)]
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || Ok(rustix::process::setsid().map(drop)?));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::ProgramNotExecutable { program: exe.display().to_string(), reason: e.to_string() })?;
    let pid = child.id();
    if let Some(stdin) = child.stdin.take() {
        // Dropped at the end of the statement: the daemon sees end of input.
        spec.write_to(stdin)?;
    }
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let exited = child.try_wait().ok().flatten();
        // Read after `try_wait`: a daemon that exited has recorded why.
        let state = read_state(&store.daemon_state_path()).ok().flatten().filter(|s| s.pid == pid);
        if let Some(status) = exited {
            // Another `woci --daemon` that started at the same time won: say what a later start says.
            if let Some(winner) = inspect(store).ok().filter(|i| i.running()) {
                return Err(already_running(store, Some(winner.probe)));
            }
            let code = crate::child::exit_code(status);
            let reason = state.and_then(|s| s.exit_reason).unwrap_or_else(|| format!("see `{}`", log_path.display()));
            err_line(&format!("woci: error: the daemon for profile `{profile}` exited at once: {reason}"));
            return Ok(if code == 0 { exit::FAILURE } else { code });
        }
        if state.is_some_and(|s| s.phase == Phase::Running) {
            break;
        }
        if Instant::now() >= deadline {
            err_line(&format!(
                "woci: the daemon for profile `{profile}` (pid {pid}) did not report ready within {}s; see `{}`",
                READY_TIMEOUT.as_secs(),
                log_path.display()
            ));
            return Ok(exit::FAILURE);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // The pid on stdout, for scripts (`pid=$(woci --daemon)`); the human line on stderr.
    let _ = writeln!(std::io::stdout().lock(), "{pid}");
    err_line(&format!("woci: daemon started for profile `{profile}` (pid {pid}); log: `{}`", log_path.display()));
    Ok(0)
}

/// Closes every descriptor above stderr the daemon inherited (a pipe of the shell that started
/// `woci --daemon`, say): held for the daemon's life, it would keep that pipeline from ending.
/// Called first thing in the daemon, before it opens anything of its own.
pub(crate) fn close_inherited_fds() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: close_range(2) on descriptors this process opened nothing on yet.
        if unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) } == 0 {
            return;
        }
    }
    #[cfg(unix)]
    {
        let max = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(1024).min(65_536);
        for fd in 3..i32::try_from(max).unwrap_or(1024) {
            // SAFETY: closing a descriptor number; EBADF for those not open.
            unsafe { libc::close(fd) };
        }
    }
}

/// Appends one timestamped daemon line to the log (stderr is the log file in the daemon).
fn log_event(clock_now: i64, msg: &str) {
    let msg = crate::terminal::safe(msg);
    let _ = writeln!(std::io::stderr().lock(), "{} woci-daemon[{}]: {msg}", fmt_utc(clock_now), std::process::id());
}

/// The detached daemon process (`--daemon-run`, started with `spec`): holds the pid lock, renews
/// until stopped (SIGTERM, SIGINT) or until renewal becomes impossible, reloads its settings on
/// SIGHUP and INI changes, records why it ended.
pub(crate) fn run_foreground(ctx: &Context, spec: DaemonSpec) -> Result<u8> {
    // A background process must never start an interactive login.
    let renewer = Arc::new(Renewer::new(ctx).without_login());
    let store = &ctx.store;
    let pid = std::process::id();
    let lock = Arc::new(Mutex::new(Some(claim_pid_file(store, pid, PID_LOCK_WAIT)?)));
    // Stop signals end the renewal loop; a renewal in flight is let go, except while it stores a
    // rotated refresh token (`schedule::let_go`).
    crate::critical::supervise();
    let (log_path, state_path) = (store.daemon_log_path(), store.daemon_state_path());
    // The state and the log carry this machine's time, as every line of the log and `date` do:
    // token times (token time, the later of it and the servers') are turned back into it.
    let (now, local) = (|| ctx.now(), || ctx.clock.unix());
    let mine = |token_time: i64| token_time - ctx.server.ahead_secs();
    let state = Mutex::new(DaemonState {
        pid,
        pid_start: fsutil::process_start_time(pid),
        profile: store.profile().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        phase: Phase::Starting,
        started: local(),
        ..DaemonState::default()
    });
    let save = |f: &dyn Fn(&mut DaemonState)| {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
        if let Err(e) = write_state(&state_path, &s) {
            tracing::warn!("cannot record the daemon state: {e}");
        }
    };
    save(&|_| {});
    log_event(local(), &format!("starting for profile `{}`", store.profile()));

    let runtime =
        crate::child::runtime(tokio::runtime::Builder::new_multi_thread().worker_threads(2)).inspect_err(|e| {
            save(&|s| s.exit(local(), e.to_string(), Some(e.exit_code())));
            release_own_pid_file(&lock);
        })?;
    let run = std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            // Handlers first: a stop signal that arrives once the state says "running" must be
            // caught, not end the daemon by its default action.
            let stop_signals = stop_signals()?;
            let (renewers, renewers_rx) = tokio::sync::watch::channel(renewer.clone());
            let clock = ctx.clock.clone();
            let reloader = reload::install(spec, ctx.clone(), renewers, move |line| log_event(clock.unix(), line))?;
            let session = renewer.ensure(Force::No).await?;
            let next = now() + secs(schedule::next_check_in(&ctx.settings, &session.claims, now()));
            let (exp, next) = (mine(session.claims.exp), mine(next));
            save(&|s| {
                s.phase = Phase::Running;
                // A token still valid at the start is no renewal of the daemon's.
                let own = (session.action != crate::renew::Action::Reused).then(local);
                s.renewed(own, exp, next);
            });
            log_event(local(), &format!("running; token expires {}, next renewal {}", fmt_utc(exp), fmt_utc(next)));

            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let signals = tokio::spawn(async move {
                let name = stop_signals.await?;
                tracing::debug!(signal = name, "stop signal");
                let _ = stop_tx.send(());
                Some(name)
            });
            let reloading = tokio::spawn(reloader);
            let rotation = tokio::spawn({
                let log_path = log_path.clone();
                async move {
                    loop {
                        tokio::time::sleep(LOG_CHECK_EVERY).await;
                        rotate_own_log(&log_path);
                    }
                }
            });
            let pid_watch = tokio::spawn(keep_pid_file(store.clone(), lock.clone(), ctx.clock.clone()));
            let (tx, _rx) = tokio::sync::watch::channel::<SecretString>(session.token.clone());
            let events = |ev: LoopEvent| {
                let t = local();
                let msg = match ev {
                    LoopEvent::Renewed { exp, next, by_other } => {
                        let (exp, next) = (mine(exp), mine(next));
                        // Another woci's renewal is not the daemon's last one.
                        save(&|s| s.renewed((!by_other).then_some(t), exp, next));
                        let what = if by_other { "session renewed by another woci" } else { "renewal ok" };
                        format!("{what}: session valid until {}; next renewal {}", fmt_utc(exp), fmt_utc(next))
                    }
                    LoopEvent::Failed { class, error, retry_in } => {
                        save(&|s| {
                            s.last_error = Some(error.clone());
                            s.last_error_at = Some(t);
                            s.next_renewal = Some(t + secs(retry_in));
                        });
                        format!(
                            "renewal failed ({}), retrying in {}: {error}",
                            class.as_str(),
                            fmt_secs(secs(retry_in))
                        )
                    }
                };
                log_event(local(), &msg);
                rotate_own_log(&log_path);
            };
            let outcome = schedule::renewal_loop(renewers_rx, session, &tx, stop_rx, events).await;
            rotation.abort();
            pid_watch.abort();
            reloading.abort();
            outcome?;
            let reason = format!("stopped by {}", signals.await.ok().flatten().unwrap_or("request"));
            save(&|s| s.exit(local(), reason.clone(), Some(0)));
            log_event(local(), &reason);
            Ok(())
        })
    });
    // A bug must not leave the state file saying "running".
    let result = std::panic::catch_unwind(run)
        .unwrap_or_else(|_| Err(Error::Other("internal error (panic); see the log above".into())));
    runtime.shutdown_timeout(Duration::from_secs(1));
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            let reason = format!("renewal is no longer possible ({}): {e}", crate::metrics::class_of(&e).as_str());
            save(&|s| s.exit(local(), reason.clone(), Some(e.exit_code())));
            log_event(local(), &reason);
            e.exit_code()
        }
    };
    release_own_pid_file(&lock);
    Ok(code)
}

/// How often the daemon looks that its pid file is still there.
const PID_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Writes the pid file again when it is gone: a user starting over deletes the session folder
/// and logs in again, and the daemon, which renews on from the new login, must stay visible to
/// `--daemon-status` and `--stop-daemon`, and keep a second daemon from starting.
async fn keep_pid_file(store: SessionStore, lock: Arc<Mutex<Option<FileLock>>>, clock: crate::clock::SharedClock) {
    let pid = std::process::id();
    loop {
        tokio::time::sleep(PID_CHECK_EVERY).await;
        if std::fs::symlink_metadata(store.pid_path()).is_ok() || !store.dir().is_dir() {
            continue;
        }
        let msg = match claim_pid_file(&store, pid, Duration::ZERO) {
            Ok(new) => {
                *lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(new);
                // The log went with the folder too.
                log_into(&store.daemon_log_path());
                "the pid file was gone (the session folder removed?); written again".to_owned()
            }
            Err(e) => format!("the pid file was gone and cannot be written again: {e}"),
        };
        log_event(clock.unix(), &msg);
    }
}

/// [`release_pid_file`] of the lock the daemon holds now.
fn release_own_pid_file(lock: &Mutex<Option<FileLock>>) {
    if let Some(lock) = lock.lock().unwrap_or_else(|p| p.into_inner()).take() {
        release_pid_file(lock);
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// SIGTERM and SIGINT, caught from this call on (SIGHUP reloads: [`reload`]); the future gives
/// the name of the first to arrive (`None` if no handler could be set).
#[cfg(unix)]
fn stop_signals() -> Result<impl std::future::Future<Output = Option<&'static str>>> {
    use tokio::signal::unix::{signal, SignalKind};
    let make = |k| signal(k).map_err(|e| Error::Other(format!("cannot handle signals: {e}")));
    let (mut term, mut int) = (make(SignalKind::terminate())?, make(SignalKind::interrupt())?);
    Ok(async move {
        tokio::select! {
            _ = term.recv() => Some("SIGTERM"),
            _ = int.recv() => Some("SIGINT"),
        }
    })
}

#[cfg(not(unix))]
fn stop_signals() -> Result<impl std::future::Future<Output = Option<&'static str>>> {
    Ok(async { tokio::signal::ctrl_c().await.ok().map(|_| "Ctrl-C") })
}

/// In the daemon: rotates the log when it is too big and points stdout/stderr at the new file.
fn rotate_own_log(log_path: &Path) {
    match rotate_log_if_needed(log_path, LOG_MAX_BYTES) {
        Ok(true) => log_into(log_path),
        Ok(false) => {}
        Err(e) => tracing::warn!("cannot rotate the daemon log: {e}"),
    }
}

/// Points the daemon's stdout and stderr at a (new) log file at `log_path`.
fn log_into(log_path: &Path) {
    #[cfg(unix)]
    if let Ok(f) = open_log(log_path) {
        use std::os::unix::io::AsRawFd;
        // SAFETY: dup2 onto the process's own stdout/stderr descriptors with a valid fd.
        unsafe {
            libc::dup2(f.as_raw_fd(), 1);
            libc::dup2(f.as_raw_fd(), 2);
        }
    }
}

/// How long past its due time a renewal the state file does not record makes `--daemon-status`
/// doubt the state file (a renewal takes seconds; a slow IdP, a minute or two).
const STATE_OVERDUE: i64 = 300;

/// `woci --daemon-status [--json]`: exit 0 when a daemon runs, 1 when none does. The JSON is
/// `{"schema": 1, "profile", "now", "daemon": {…}}`, the `daemon` object of `--status --json`.
pub(crate) fn status(store: &SessionStore, now: i64, json: bool) -> Result<u8> {
    let info = inspect(store)?;
    let mut out = String::new();
    if json {
        let v = serde_json::json!({"schema": 1, "profile": store.profile(), "now": now, "daemon": report(&info, now)});
        out = crate::terminal::to_json(&v)?;
    } else {
        describe(&mut out, store.profile(), &info, now);
    }
    crate::terminal::print(&out)?;
    Ok(if info.running() { 0 } else { exit::FAILURE })
}

/// The `--daemon-status` text (also used by `--status`). The recorded errors quote servers:
/// they pass [`crate::terminal::safe`].
pub(crate) fn describe(out: &mut String, profile: &str, info: &DaemonInfo, now: i64) {
    use crate::terminal::safe;
    use std::fmt::Write as _;
    let state = info.state.as_ref();
    if info.running() {
        let pid = info.pid().map(|p| p.to_string()).unwrap_or_else(|| "?".into());
        let _ = writeln!(out, "daemon: running for profile `{profile}` (pid {pid})");
        if info.pid().is_some_and(fsutil::process_stopped) {
            let _ = writeln!(out, "  stopped (SIGSTOP): it renews nothing until `kill -CONT {pid}`");
        }
        if let Some(o) = info.outdated() {
            let restart = format!(
                "restart it (`woci --stop-daemon --profile {profile}`, then `woci --daemon --profile {profile}`; under \
                 systemd `systemctl --user restart woci-daemon@{profile}`)"
            );
            let fix = match o {
                Outdated::Removed => format!("stop it (`woci --stop-daemon --profile {profile}`), or {restart}"),
                // A daemon of woci 0.1.0 stops on a reload (round 106 N1).
                Outdated::Version(_) => restart,
                Outdated::Replaced => format!("a reload keeps the code it runs; {restart}"),
            };
            let _ = writeln!(out, "  {}: {fix}", o.why());
        }
        if let Some(s) = state.filter(|s| Some(s.pid) == info.pid()) {
            let _ = writeln!(out, "  started: {} (uptime {})", fmt_utc(s.started), fmt_secs(now - s.started));
            for line in [
                s.last_renewal.map(|t| format!("  last renewal: {} ({} ago)", fmt_utc(t), fmt_secs(now - t))),
                s.token_exp.map(|t| format!("  token expires: {} ({})", fmt_utc(t), fmt_relative(t - now))),
                s.next_renewal.map(|t| format!("  next renewal: {} ({})", fmt_utc(t), fmt_relative(t - now))),
            ] {
                push_line(out, line);
            }
            let last_error = match (&s.last_error, s.last_error_at) {
                (Some(e), Some(t)) => format!("{} ({} ago)", safe(e), fmt_secs(now - t)),
                (Some(e), None) => safe(e).into_owned(),
                // A daemon that cannot write its state file records nothing, failures included.
                _ => match s.next_renewal.filter(|t| now - t > STATE_OVERDUE) {
                    Some(t) => format!(
                        "none recorded, but the renewal due {} ago is not recorded either: the state file may not be \
                         writable; see the daemon log in the session folder",
                        fmt_secs(now - t)
                    ),
                    None => "none".to_owned(),
                },
            };
            let _ = writeln!(out, "  last error: {last_error}");
        }
    } else {
        let _ = writeln!(out, "daemon: not running for profile `{profile}`");
        match (&info.probe, python_daemon(&info.probe)) {
            (_, Some(p)) => {
                let _ = writeln!(out, "  warning: {}", python_daemon_line(p, profile));
            }
            (&PidProbe::NotRunning { stale_pid: Some(p) }, None) => {
                let _ = writeln!(
                    out,
                    "  stale pid file (pid {p}) ignored: it names no woci daemon (gone, or another process now)"
                );
            }
            _ => {}
        }
        if let Some(s) = state {
            if let (Some(t), Some(r)) = (s.exited, &s.exit_reason) {
                let code = s.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default();
                let _ = writeln!(out, "  last daemon (pid {}) exited {}: {}{code}", s.pid, fmt_utc(t), safe(r));
                // systemd does not restart it after these (`RestartPreventExitStatus`).
                if s.exit_code.is_some_and(|c| c != 0) {
                    let _ = writeln!(
                        out,
                        "  once that is fixed, start it again: `woci --daemon --profile {profile}` (under systemd \
                         `systemctl --user restart woci-daemon@{profile}`)"
                    );
                }
            } else if s.pid != 0 {
                let _ =
                    writeln!(out, "  last daemon (pid {}) ended without recording a reason (killed or crashed)", s.pid);
            }
        }
    }
    if let Some(e) = &info.state_error {
        let _ = writeln!(out, "  warning: {}", safe(e));
    }
}

/// `woci --stop-daemon`: SIGTERM, then SIGKILL after [`STOP_GRACE`] (after [`RENEWAL_GRACE`] more
/// while the daemon renews). Exit 0 stopped, 1 none.
pub(crate) fn stop(store: &SessionStore, now: i64) -> Result<u8> {
    stop_with_grace(store, STOP_GRACE, now)
}

/// [`stop`] with the grace period given.
pub(crate) fn stop_with_grace(store: &SessionStore, grace: Duration, now: i64) -> Result<u8> {
    let profile = store.profile();
    let pid_path = store.pid_path();
    let none_running = |why: &str| {
        err_line(&format!("woci: no daemon running for profile `{profile}`{why}"));
        Ok(exit::FAILURE)
    };
    let mut probed = probe(&pid_path)?;
    if probed == (PidProbe::Running { pid: None }) {
        // Started an instant ago; its pid is about to be written.
        std::thread::sleep(Duration::from_millis(200));
        probed = probe(&pid_path)?;
    }
    // The Python woci's daemon stops as its own `--stop-daemon` stops it: SIGTERM, SIGKILL after
    // 5 s, its pid file removed.
    if let Some(pid) = python_daemon(&probed) {
        let pause = Duration::from_millis(50);
        let gone = |within| fsutil::retry_until(within, (pause, pause), || (!fsutil::process_alive(pid)).then_some(()));
        let _ = fsutil::kill(pid as i32, Signal::Term);
        let _ = fsutil::kill(pid as i32, Signal::Cont);
        if gone(Duration::from_secs(5)).is_none() {
            let _ = fsutil::kill(pid as i32, Signal::Kill);
            if gone(Duration::from_secs(2)).is_none() {
                err_line(&format!("woci: the Python woci daemon of profile `{profile}` (pid {pid}) did not stop"));
                return Ok(exit::FAILURE);
            }
        }
        let _ = std::fs::remove_file(&pid_path);
        err_line(&format!("woci: stopped the Python woci daemon of profile `{profile}` (pid {pid})"));
        return Ok(0);
    }
    let pid = match probed {
        PidProbe::NotRunning { .. } => return none_running(""),
        PidProbe::Running { pid: Some(p) } => p,
        PidProbe::Running { pid: None } => {
            return Err(Error::corrupt(&pid_path, "locked by a daemon but holds no pid"));
        }
    };
    let state_path = store.daemon_state_path();
    let mut state = read_state(&state_path).ok().flatten();
    if state.as_ref().is_none_or(|s| s.pid != pid) {
        // A daemon records its start time right after it takes the lock.
        std::thread::sleep(Duration::from_millis(200));
        state = read_state(&state_path).ok().flatten();
    }
    let Some(daemon) = Pinned::pin(pid, state.as_ref())? else {
        return none_running(&format!(" (stale pid file: pid {pid} is another process now)"));
    };
    let started = std::time::Instant::now();
    let suspended = fsutil::process_stopped(pid);
    daemon.signal(Signal::Term)?;
    // A stopped daemon (SIGSTOP, Ctrl-Z) acts on SIGTERM only once resumed, as systemd does it.
    daemon.signal(Signal::Cont)?;
    if suspended {
        err_line(&format!("woci: the daemon (pid {pid}) was stopped (SIGSTOP); resumed it so that it can stop"));
    }
    let mut released = wait_released(&pid_path, grace)?;
    // A daemon inside a renewal holds the signal until the rotated refresh token is stored (a late
    // answer may take the whole reply timeout): a kill there would spend the session.
    if !released && store.lock(Duration::ZERO).is_err() {
        err_line(&format!(
            "woci: the daemon (pid {pid}) is finishing a renewal; waiting up to {}s for it to store the new refresh token",
            RENEWAL_GRACE.as_secs()
        ));
        released = wait_released(&pid_path, RENEWAL_GRACE)?;
    }
    if released {
        err_line(&format!("woci: stopped the daemon of profile `{profile}` (pid {pid})"));
        return Ok(0);
    }
    err_line(&format!("woci: the daemon (pid {pid}) did not stop within {}s; killing it", started.elapsed().as_secs()));
    daemon.signal(Signal::Kill)?;
    if !wait_released(&pid_path, Duration::from_secs(5))? {
        return Err(Error::Other(format!("the daemon of profile `{profile}` (pid {pid}) survived SIGKILL")));
    }
    if let Some(mut s) = read_state(&state_path).ok().flatten().filter(|s| s.pid == pid && s.phase != Phase::Exited) {
        let waited = started.elapsed().as_secs();
        s.exit(now + waited as i64, format!("killed by `--stop-daemon` after {waited}s without stopping"), None);
        let _ = write_state(&state_path, &s);
    }
    err_line(&format!("woci: killed the daemon of profile `{profile}` (pid {pid})"));
    Ok(0)
}

/// The daemon's process, checked and held: on Linux a pidfd opened first, then the pid's start
/// time compared with the recorded one, so every signal goes to the process that was checked,
/// even if it ends and its pid is reused meanwhile.
struct Pinned {
    pid: i32,
    #[cfg(target_os = "linux")]
    pidfd: Option<std::os::fd::OwnedFd>,
}

impl Pinned {
    /// `None` when `pid` is not the daemon `state` describes (gone, or another process now).
    /// Without a recorded start time (a daemon of an older woci) the pid lock alone vouches.
    fn pin(pid: u32, state: Option<&DaemonState>) -> Result<Option<Pinned>> {
        let raw = i32::try_from(pid).ok().filter(|p| *p > 1);
        let Some(raw) = raw else { return Err(Error::Other(format!("invalid daemon pid {pid}"))) };
        #[cfg(target_os = "linux")]
        let pidfd = {
            use rustix::process::{pidfd_open, Pid, PidfdFlags};
            match Pid::from_raw(raw).map(|p| pidfd_open(p, PidfdFlags::empty())) {
                Some(Ok(fd)) => Some(fd),
                Some(Err(rustix::io::Errno::SRCH)) => return Ok(None),
                // Kernels before 5.3: the start-time check right before `kill` has to do.
                _ => None,
            }
        };
        if same_process(state, pid) == Some(false) {
            return Ok(None);
        }
        Ok(Some(Pinned {
            pid: raw,
            #[cfg(target_os = "linux")]
            pidfd,
        }))
    }

    fn signal(&self, sig: Signal) -> Result<()> {
        let pid = self.pid;
        #[cfg(target_os = "linux")]
        let sent = match &self.pidfd {
            Some(fd) => {
                use rustix::process::{pidfd_send_signal, Signal as S};
                let sig = match sig {
                    Signal::Kill => S::KILL,
                    Signal::Cont => S::CONT,
                    _ => S::TERM,
                };
                pidfd_send_signal(fd, sig).map_err(Into::into)
            }
            None => fsutil::kill(pid, sig),
        };
        #[cfg(all(unix, not(target_os = "linux")))]
        let sent = fsutil::kill(pid, sig);
        #[cfg(unix)]
        return match sent {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(Error::Other(format!(
                "cannot signal the daemon (pid {pid}): {e}; it runs as another user (root, started with `sudo -E`?): \
                 stop it as that user"
            ))),
            Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                Err(Error::Other(format!("cannot signal the daemon (pid {pid}): {e}")))
            }
            _ => Ok(()),
        };
        #[cfg(not(unix))]
        Err(Error::Other(format!("`--stop-daemon` needs a Unix system (daemon pid {pid})")))
    }
}

/// Waits until nobody holds the pid lock; true if released within `timeout`.
fn wait_released(pid_path: &Path, timeout: Duration) -> Result<bool> {
    let pause = Duration::from_millis(50);
    let released = fsutil::retry_until(timeout, (pause, pause), || match probe(pid_path) {
        Ok(PidProbe::Running { .. }) => None,
        other => Some(other),
    });
    released.map_or(Ok(false), |p| p.map(|_| true))
}

#[cfg(test)]
mod tests;
