//! Daemon mode: `woci --daemon` keeps one profile's session renewed in a detached process until it
//! is stopped or renewal becomes impossible; `--daemon-status` and `--stop-daemon` inspect and end
//! it.
//!
//! Files in the session folder (see [`crate::store`]):
//! - `woci_refresh.pid` — the daemon's pid, under an exclusive advisory lock held for the daemon's
//!   whole life. "A daemon runs" means "someone holds that lock"; a pid file nobody locks is stale
//!   (the daemon crashed or was killed) and is ignored. The file is never replaced (that would
//!   break the lock), only rewritten in place, and emptied on a clean exit.
//! - `woci-daemon.json` — [`DaemonState`], written atomically at start, after every renewal or
//!   failure, and at exit with the reason; what `--status` and `--daemon-status` show.
//! - `woci-daemon.log` — the daemon's stderr (woci's log lines plus one timestamped line per
//!   daemon event), rotated to `woci-daemon.log.1` beyond [`LOG_MAX_BYTES`]. No secrets: tokens
//!   are `SecretString` and never logged.
//!
//! Exit codes: `--daemon` 0 started, 10 ([`exit::BUSY`]) already running, else the error's code;
//! `--daemon-status` 0 running, 1 not running; `--stop-daemon` 0 stopped, 1 none running.

use crate::autorefresh::{self, LoopEvent};
use crate::error::{exit, Error, Result};
use crate::fsutil::{self, FileLock};
use crate::renew::{Force, Renewer};
use crate::secret::SecretString;
use crate::settings::PassphraseSource;
use crate::store::SessionStore;
use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The hidden flag that makes a woci process the daemon itself.
pub const DAEMON_RUN_FLAG: &str = "--daemon-run";
/// The log is rotated when it grows past this size; one old file (`.1`) is kept.
pub const LOG_MAX_BYTES: u64 = 1024 * 1024;
/// How long `--daemon` waits for the detached process to report that it runs.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `--stop-daemon` waits after SIGTERM before SIGKILL (the Python woci waits 5 s).
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long the daemon waits for the pid lock a probing `--status` may hold for a moment.
const PID_LOCK_WAIT: Duration = Duration::from_secs(2);
/// How often the daemon checks its log size.
const LOG_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Where the daemon is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Took the pid lock, making sure the session is valid.
    #[default]
    Starting,
    /// Renewing.
    Running,
    /// Gone; `exit_reason` says why.
    Exited,
}

/// The content of `woci-daemon.json`. Times are seconds since the Unix epoch. Field names are
/// stable: `--status --json` embeds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DaemonState {
    /// The daemon's process id.
    pub pid: u32,
    /// The profile.
    pub profile: String,
    /// woci version of the daemon.
    pub version: String,
    /// Life phase.
    pub phase: Phase,
    /// Start time.
    pub started: i64,
    /// Last successful renewal check (a new token, or the current one still good).
    pub last_renewal: Option<i64>,
    /// Expiry of the token the daemon last saw.
    pub token_exp: Option<i64>,
    /// When the daemon will check next.
    pub next_renewal: Option<i64>,
    /// The last failure (cleared by the next success).
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<i64>,
    /// Exit time.
    pub exited: Option<i64>,
    /// Why it exited.
    pub exit_reason: Option<String>,
    /// Its exit code.
    pub exit_code: Option<u8>,
}

/// What the pid file says right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidProbe {
    /// Nobody holds the lock. `stale_pid` is the pid a crashed or killed daemon left behind.
    NotRunning {
        /// The pid in an unlocked pid file, if any.
        stale_pid: Option<u32>,
    },
    /// A daemon holds the lock (`pid` is `None` only in the instant before it writes it).
    Running {
        /// The daemon's pid.
        pid: Option<u32>,
    },
}

/// The daemon as `--status` and `--daemon-status` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonInfo {
    /// Lock probe.
    pub probe: PidProbe,
    /// The state file, if present and readable.
    pub state: Option<DaemonState>,
    /// Why the state file could not be read, if it exists but is damaged.
    pub state_error: Option<String>,
}

impl DaemonInfo {
    /// True when a daemon holds the pid lock.
    pub fn running(&self) -> bool {
        matches!(self.probe, PidProbe::Running { .. })
    }

    /// The running daemon's pid (from the pid file, else from the state file).
    pub fn pid(&self) -> Option<u32> {
        match self.probe {
            PidProbe::Running { pid: Some(p) } => Some(p),
            PidProbe::Running { pid: None } => self.state.as_ref().map(|s| s.pid).filter(|p| *p != 0),
            PidProbe::NotRunning { .. } => None,
        }
    }
}

/// Parses the pid file content (the Python woci writes the bare number, maybe with a newline).
pub fn parse_pid(content: &str) -> Option<u32> {
    content.trim().parse::<u32>().ok().filter(|p| *p > 1)
}

/// Checks the pid file without creating it: locked means a daemon lives. Holds the lock for an
/// instant only when it is free.
pub fn probe(pid_path: &Path) -> Result<PidProbe> {
    let mut file = match OpenOptions::new().read(true).write(true).open(pid_path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PidProbe::NotRunning { stale_pid: None }),
        Err(e) => return Err(Error::io("cannot open", pid_path, e)),
    };
    let mut content = String::new();
    // A pid file that is not text is as good as empty.
    let _ = file.read_to_string(&mut content);
    let pid = parse_pid(&content);
    match FileExt::try_lock_exclusive(&file) {
        Ok(true) => {
            let _ = FileExt::unlock(&file);
            Ok(PidProbe::NotRunning { stale_pid: pid })
        }
        Ok(false) => Ok(PidProbe::Running { pid }),
        Err(e) => Err(Error::io("cannot lock", pid_path, e)),
    }
}

/// Reads `woci-daemon.json`. `Ok(None)` when absent; a damaged file is [`Error::CorruptFile`].
pub fn read_state(path: &Path) -> Result<Option<DaemonState>> {
    let Some(bytes) = fsutil::read_optional(path)? else { return Ok(None) };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::corrupt(path, format!("not daemon state JSON: {e}")))
}

/// Writes `woci-daemon.json` atomically.
pub fn write_state(path: &Path, state: &DaemonState) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(state).map_err(|e| Error::Other(format!("cannot encode state: {e}")))?;
    json.push(b'\n');
    fsutil::write_atomic(path, &json)
}

/// The daemon of a session folder, as files say. Never fails on a damaged state file.
pub fn inspect(store: &SessionStore) -> Result<DaemonInfo> {
    let probe = probe(&store.pid_path())?;
    let (state, state_error) = match read_state(&store.daemon_state_path()) {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(DaemonInfo { probe, state, state_error })
}

/// Takes the pid lock for the daemon's life and writes `pid` into the file (in place).
pub fn claim_pid_file(store: &SessionStore, pid: u32, wait: Duration) -> Result<FileLock> {
    store.ensure_dir()?;
    let path = store.pid_path();
    let lock = FileLock::acquire(&path, wait).map_err(|e| match e {
        Error::Busy(_) => already_running(store, probe(&path).ok()),
        other => other,
    })?;
    let mut f = lock.file();
    f.set_len(0).map_err(|e| Error::io("cannot write", &path, e))?;
    f.seek(SeekFrom::Start(0)).map_err(|e| Error::io("cannot write", &path, e))?;
    writeln!(f, "{pid}").map_err(|e| Error::io("cannot write", &path, e))?;
    f.sync_all().map_err(|e| Error::io("cannot sync", &path, e))?;
    Ok(lock)
}

/// Empties the pid file while still holding its lock (clean exit).
fn release_pid_file(lock: FileLock) {
    let _ = lock.file().set_len(0);
    drop(lock);
}

fn already_running(store: &SessionStore, probe: Option<PidProbe>) -> Error {
    let pid = match probe {
        Some(PidProbe::Running { pid: Some(p) }) => format!(" (pid {p})"),
        _ => String::new(),
    };
    Error::Busy(format!(
        "a woci daemon is already running for profile `{}`{pid}; stop it with `woci --stop-daemon --profile {}`",
        store.profile(),
        store.profile()
    ))
}

/// Rotates `log` to `log.1` when it is larger than `max` bytes. Returns whether it rotated.
pub fn rotate_log_if_needed(log: &Path, max: u64) -> Result<bool> {
    match std::fs::metadata(log) {
        Ok(m) if m.len() > max => {
            let old = rotated_path(log);
            std::fs::rename(log, &old).map_err(|e| Error::io("cannot rotate", log, e))?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("cannot read", log, e)),
    }
}

/// `woci-daemon.log.1`.
pub fn rotated_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

fn open_log(path: &Path) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(|e| Error::io("cannot open", path, e))
}

/// The daemon's own argv: the invocation's, with `--daemon` replaced by [`DAEMON_RUN_FLAG`]
/// followed by `extra` (options only the daemon gets).
pub fn daemon_args(args: &[OsString], extra: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len() + extra.len());
    let mut replaced = false;
    for a in args {
        if !replaced && a == "--daemon" {
            replaced = true;
            out.push(OsString::from(DAEMON_RUN_FLAG));
            out.extend(extra.iter().cloned());
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// The daemon renews with the `--auto-refresh` safety window (600 s, capped at half a token's
/// lifetime) unless the user chose one, so an IdP outage of a few minutes does not let the token
/// lapse for the programs that rely on the daemon.
fn daemon_window_args(args: &[OsString], settings: &crate::settings::Settings) -> Vec<OsString> {
    let given = args.iter().any(|a| a.to_str().is_some_and(|s| s.starts_with("--refresh-safety-window")))
        || settings.manager.get("refresh_safety_window").is_some()
        || settings.auto_refresh;
    if given {
        return Vec::new();
    }
    vec!["--refresh-safety-window".into(), crate::settings::DEFAULT_AUTO_WINDOW.as_secs().to_string().into()]
}

/// Formats epoch seconds as `2025-11-08T17:19:55Z`.
pub fn fmt_utc(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, (secs % 3600) / 60, secs % 60)
}

/// Formats a duration in seconds as `1h02m03s` / `4m05s` / `6s` (negative: `-4m05s`).
pub fn fmt_secs(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{sign}{h}h{m:02}m{s:02}s")
    } else if m > 0 {
        format!("{sign}{m}m{s:02}s")
    } else {
        format!("{sign}{s}s")
    }
}

fn err_line(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// `woci --daemon`: makes sure the session is valid (a login may happen here, on the terminal),
/// then starts the detached daemon and waits until it reports that it runs.
pub fn start(renewer: &Renewer) -> Result<u8> {
    start_with_args(renewer, std::env::args_os().skip(1).collect())
}

/// [`start`] with the invocation's arguments given.
pub fn start_with_args(renewer: &Renewer, args: Vec<OsString>) -> Result<u8> {
    let store = renewer.store();
    let profile = store.profile().to_owned();
    if renewer.settings().passphrase == PassphraseSource::Prompt {
        return Err(Error::Config(format!(
            "the daemon cannot ask for the refresh token passphrase of profile `{profile}`; use `--refresh-token-passphrase-env VAR` (or `refresh_token_passphrase_env` in the manager config) instead of the prompt"
        )));
    }
    let info = inspect(store)?;
    if info.running() {
        return Err(already_running(store, Some(info.probe)));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(renewer.ensure(Force::No))?;
    drop(runtime);

    store.ensure_dir()?;
    let log_path = store.daemon_log_path();
    rotate_log_if_needed(&log_path, LOG_MAX_BYTES)?;
    let log = open_log(&log_path)?;
    let log2 = log.try_clone().map_err(|e| Error::io("cannot open", &log_path, e))?;
    let exe = std::env::current_exe().map_err(|e| Error::Other(format!("cannot find the woci executable: {e}")))?;
    let mut cmd = std::process::Command::new(&exe);
    // NO_COLOR: the log is a file, not a terminal.
    let extra = daemon_window_args(&args, renewer.settings());
    cmd.args(daemon_args(&args, &extra))
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid(2) is async-signal-safe; it detaches the daemon from the terminal's
        // session so closing the terminal does not send it SIGHUP.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::ProgramNotExecutable { program: exe.display().to_string(), reason: e.to_string() })?;
    let pid = child.id();
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let code = crate::child::exit_code(status);
            let reason = read_state(&store.daemon_state_path())
                .ok()
                .flatten()
                .filter(|s| s.pid == pid)
                .and_then(|s| s.exit_reason)
                .unwrap_or_else(|| format!("see `{}`", log_path.display()));
            err_line(&format!("woci: error: the daemon for profile `{profile}` exited at once: {reason}"));
            return Ok(if code == 0 { exit::FAILURE } else { code });
        }
        if let Ok(Some(s)) = read_state(&store.daemon_state_path()) {
            if s.pid == pid && s.phase == Phase::Running {
                break;
            }
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
    let _ = writeln!(std::io::stdout().lock(), "{pid}");
    err_line(&format!("woci: daemon started for profile `{profile}` (pid {pid}); log: `{}`", log_path.display()));
    Ok(0)
}

/// Appends one timestamped daemon line to the log (stderr is the log file in the daemon).
fn log_event(clock_now: i64, msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{} woci-daemon[{}]: {msg}", fmt_utc(clock_now), std::process::id());
}

/// The detached daemon process (`--daemon-run`): holds the pid lock, renews until stopped
/// (SIGTERM, SIGINT, SIGHUP) or until renewal becomes impossible, records why it ended.
pub fn run_foreground(renewer: Arc<Renewer>) -> Result<u8> {
    // A background process must never start an interactive login.
    let renewer = match Arc::try_unwrap(renewer) {
        Ok(r) => Arc::new(r.without_login()),
        Err(_) => return Err(Error::Other("internal: the daemon's renewer is shared".into())),
    };
    let store = renewer.store().clone();
    let pid = std::process::id();
    let lock = claim_pid_file(&store, pid, PID_LOCK_WAIT)?;
    let state_path = store.daemon_state_path();
    let log_path = store.daemon_log_path();
    let now = || renewer.clock().unix();
    let state = Arc::new(Mutex::new(DaemonState {
        pid,
        profile: store.profile().to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        phase: Phase::Starting,
        started: now(),
        ..DaemonState::default()
    }));
    let save = {
        let state = state.clone();
        let path = state_path.clone();
        move |f: &dyn Fn(&mut DaemonState)| {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut s);
            if let Err(e) = write_state(&path, &s) {
                tracing::warn!("cannot record the daemon state: {e}");
            }
        }
    };
    save(&|_| {});
    log_event(now(), &format!("starting for profile `{}`", store.profile()));

    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            let e = Error::Other(format!("cannot start the async runtime: {e}"));
            record_exit(&save, now(), &e.to_string(), e.exit_code());
            release_pid_file(lock);
            return Err(e);
        }
    };
    let run = std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let session = renewer.ensure(Force::No).await?;
            let window = renewer.settings().window;
            let next = now() + secs(autorefresh::next_renewal_in(&session.claims, now(), window));
            save(&|s| {
                s.phase = Phase::Running;
                s.last_renewal = Some(now());
                s.token_exp = Some(session.claims.exp);
                s.next_renewal = Some(next);
            });
            log_event(
                now(),
                &format!("running; token expires {}, next renewal {}", fmt_utc(session.claims.exp), fmt_utc(next)),
            );

            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let signals = tokio::spawn(async move {
                if let Some(name) = wait_for_stop_signal().await {
                    tracing::debug!(signal = name, "stop signal");
                    let _ = stop_tx.send(());
                    return Some(name);
                }
                None
            });
            let rotation = tokio::spawn({
                let log_path = log_path.clone();
                async move {
                    loop {
                        tokio::time::sleep(LOG_CHECK_EVERY).await;
                        rotate_own_log(&log_path);
                    }
                }
            });
            let (tx, _rx) = tokio::sync::watch::channel::<SecretString>(session.token.clone());
            let events = {
                let save = save.clone();
                let renewer = renewer.clone();
                let log_path = log_path.clone();
                move |ev: LoopEvent| {
                    let t = renewer.clock().unix();
                    match ev {
                        LoopEvent::Renewed { exp, next } => {
                            save(&|s| {
                                s.last_renewal = Some(t);
                                s.token_exp = Some(exp);
                                s.next_renewal = Some(next);
                                s.last_error = None;
                                s.last_error_at = None;
                            });
                            log_event(
                                t,
                                &format!("session valid until {}; next renewal {}", fmt_utc(exp), fmt_utc(next)),
                            );
                        }
                        LoopEvent::Failed { error, retry_in } => {
                            let next = t + secs(retry_in);
                            save(&|s| {
                                s.last_error = Some(error.clone());
                                s.last_error_at = Some(t);
                                s.next_renewal = Some(next);
                            });
                            log_event(t, &format!("renewal failed, retrying in {}: {error}", fmt_secs(secs(retry_in))));
                        }
                    }
                    rotate_own_log(&log_path);
                }
            };
            let outcome = autorefresh::renewal_loop(renewer.clone(), session, tx, stop_rx, events).await;
            rotation.abort();
            let signal = if outcome.is_ok() { signals.await.ok().flatten() } else { None };
            match outcome {
                Ok(()) => {
                    let reason = format!("stopped by {}", signal.unwrap_or("request"));
                    record_exit(&save, now(), &reason, 0);
                    log_event(now(), &reason);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        })
    });
    // A bug must not leave the state file saying "running".
    let result = std::panic::catch_unwind(run)
        .unwrap_or_else(|_| Err(Error::Other("internal error (panic); see the log above".into())));
    runtime.shutdown_timeout(Duration::from_secs(1));
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            let reason = format!("renewal is no longer possible: {e}");
            record_exit(&save, now(), &reason, e.exit_code());
            log_event(now(), &reason);
            e.exit_code()
        }
    };
    release_pid_file(lock);
    Ok(code)
}

fn record_exit(save: &impl Fn(&dyn Fn(&mut DaemonState)), at: i64, reason: &str, code: u8) {
    save(&|s| {
        s.phase = Phase::Exited;
        s.exited = Some(at);
        s.exit_reason = Some(reason.to_owned());
        s.exit_code = Some(code);
        s.next_renewal = None;
    });
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Waits for SIGTERM, SIGINT or SIGHUP; returns its name (`None` if no handler could be set).
async fn wait_for_stop_signal() -> Option<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok()?;
        let mut int = signal(SignalKind::interrupt()).ok()?;
        let mut hup = signal(SignalKind::hangup()).ok()?;
        tokio::select! {
            _ = term.recv() => Some("SIGTERM"),
            _ = int.recv() => Some("SIGINT"),
            _ = hup.recv() => Some("SIGHUP"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.ok().map(|_| "Ctrl-C")
    }
}

/// In the daemon: rotates the log when it is too big and points stdout/stderr at the new file.
fn rotate_own_log(log_path: &Path) {
    match rotate_log_if_needed(log_path, LOG_MAX_BYTES) {
        Ok(true) => {
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
        Ok(false) => {}
        Err(e) => tracing::warn!("cannot rotate the daemon log: {e}"),
    }
}

/// `woci --daemon-status`: exit 0 when a daemon runs, 1 when not.
pub fn status(renewer: &Renewer) -> Result<u8> {
    let store = renewer.store();
    let info = inspect(store)?;
    let now = renewer.clock().unix();
    let mut out = String::new();
    describe(&mut out, store.profile(), &info, now);
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(if info.running() { 0 } else { exit::FAILURE })
}

/// The `--daemon-status` text (also used by `--status`).
pub fn describe(out: &mut String, profile: &str, info: &DaemonInfo, now: i64) {
    use std::fmt::Write as _;
    let state = info.state.as_ref();
    if info.running() {
        let pid = info.pid().map(|p| p.to_string()).unwrap_or_else(|| "?".into());
        let _ = writeln!(out, "daemon: running for profile `{profile}` (pid {pid})");
        if let Some(s) = state.filter(|s| Some(s.pid) == info.pid()) {
            let _ = writeln!(out, "  started: {} (uptime {})", fmt_utc(s.started), fmt_secs(now - s.started));
            if let Some(t) = s.last_renewal {
                let _ = writeln!(out, "  last renewal: {} ({} ago)", fmt_utc(t), fmt_secs(now - t));
            }
            if let Some(t) = s.token_exp {
                let _ = writeln!(out, "  token expires: {} (in {})", fmt_utc(t), fmt_secs(t - now));
            }
            if let Some(t) = s.next_renewal {
                let _ = writeln!(out, "  next renewal: {} (in {})", fmt_utc(t), fmt_secs(t - now));
            }
            match (&s.last_error, s.last_error_at) {
                (Some(e), Some(t)) => {
                    let _ = writeln!(out, "  last error: {e} ({} ago)", fmt_secs(now - t));
                }
                (Some(e), None) => {
                    let _ = writeln!(out, "  last error: {e}");
                }
                _ => {
                    let _ = writeln!(out, "  last error: none");
                }
            }
        }
    } else {
        let _ = writeln!(out, "daemon: not running for profile `{profile}`");
        if let PidProbe::NotRunning { stale_pid: Some(p) } = info.probe {
            let _ = writeln!(out, "  stale pid file (pid {p}, not locked) ignored");
        }
        if let Some(s) = state {
            if let (Some(t), Some(r)) = (s.exited, &s.exit_reason) {
                let code = s.exit_code.map(|c| format!(", exit code {c}")).unwrap_or_default();
                let _ = writeln!(out, "  last daemon (pid {}) exited {}: {r}{code}", s.pid, fmt_utc(t));
            } else if s.pid != 0 {
                let _ =
                    writeln!(out, "  last daemon (pid {}) ended without recording a reason (killed or crashed)", s.pid);
            }
        }
    }
    if let Some(e) = &info.state_error {
        let _ = writeln!(out, "  warning: {e}");
    }
}

/// `woci --stop-daemon`: SIGTERM, then SIGKILL after [`STOP_GRACE`]. Exit 0 stopped, 1 none.
pub fn stop(renewer: &Renewer) -> Result<u8> {
    stop_with_grace(renewer.store(), STOP_GRACE, renewer.clock().unix())
}

/// [`stop`] with the grace period given.
pub fn stop_with_grace(store: &SessionStore, grace: Duration, now: i64) -> Result<u8> {
    let profile = store.profile();
    let pid_path = store.pid_path();
    let pid = match probe(&pid_path)? {
        PidProbe::NotRunning { .. } => {
            err_line(&format!("woci: no daemon running for profile `{profile}`"));
            return Ok(exit::FAILURE);
        }
        PidProbe::Running { pid: Some(p) } => p,
        PidProbe::Running { pid: None } => {
            // Started an instant ago; its pid is about to be written.
            std::thread::sleep(Duration::from_millis(200));
            match probe(&pid_path)? {
                PidProbe::Running { pid: Some(p) } => p,
                PidProbe::NotRunning { .. } => {
                    err_line(&format!("woci: no daemon running for profile `{profile}`"));
                    return Ok(exit::FAILURE);
                }
                PidProbe::Running { pid: None } => {
                    return Err(Error::corrupt(&pid_path, "locked by a daemon but holds no pid"));
                }
            }
        }
    };
    signal(pid, Signal::Term)?;
    if wait_released(&pid_path, grace)? {
        err_line(&format!("woci: stopped the daemon of profile `{profile}` (pid {pid})"));
        return Ok(0);
    }
    err_line(&format!("woci: the daemon (pid {pid}) did not stop within {}s; killing it", grace.as_secs()));
    signal(pid, Signal::Kill)?;
    if !wait_released(&pid_path, Duration::from_secs(5))? {
        return Err(Error::Other(format!("the daemon of profile `{profile}` (pid {pid}) survived SIGKILL")));
    }
    let state_path = store.daemon_state_path();
    if let Ok(Some(mut s)) = read_state(&state_path) {
        if s.pid == pid && s.phase != Phase::Exited {
            s.phase = Phase::Exited;
            s.exited = Some(now);
            s.exit_reason = Some(format!("killed by `--stop-daemon` after {}s without stopping", grace.as_secs()));
            s.exit_code = None;
            s.next_renewal = None;
            let _ = write_state(&state_path, &s);
        }
    }
    err_line(&format!("woci: killed the daemon of profile `{profile}` (pid {pid})"));
    Ok(0)
}

#[derive(Debug, Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

fn signal(pid: u32, sig: Signal) -> Result<()> {
    #[cfg(unix)]
    {
        let num = match sig {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        };
        let Ok(raw) = libc::pid_t::try_from(pid) else {
            return Err(Error::Other(format!("invalid daemon pid {pid}")));
        };
        // SAFETY: kill(2) on the pid of the process that holds the pid lock right now.
        if unsafe { libc::kill(raw, num) } == -1 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(Error::Other(format!("cannot signal the daemon (pid {pid}): {e}")));
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = (pid, sig);
        Err(Error::Other("`--stop-daemon` needs a Unix system".into()))
    }
}

/// Waits until nobody holds the pid lock; true if released within `timeout`.
fn wait_released(pid_path: &Path, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if let PidProbe::NotRunning { .. } = probe(pid_path)? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SessionStore) {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        (home, s)
    }

    #[test]
    fn no_pid_file_means_not_running_and_probe_creates_nothing() {
        let (_h, s) = store();
        assert_eq!(probe(&s.pid_path()).unwrap(), PidProbe::NotRunning { stale_pid: None });
        assert!(!s.dir().exists(), "probing must not create the session folder");
        let info = inspect(&s).unwrap();
        assert!(!info.running());
        assert_eq!(info.pid(), None);
        assert!(info.state.is_none());
    }

    #[test]
    fn claimed_pid_file_is_running_with_pid_and_a_second_claim_is_busy() {
        let (_h, s) = store();
        let lock = claim_pid_file(&s, 4242, Duration::from_millis(10)).unwrap();
        assert_eq!(std::fs::read_to_string(s.pid_path()).unwrap(), "4242\n");
        assert_eq!(probe(&s.pid_path()).unwrap(), PidProbe::Running { pid: Some(4242) });
        let e = claim_pid_file(&s, 999, Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.exit_code(), exit::BUSY);
        assert!(e.to_string().contains("already running for profile `P` (pid 4242)"), "{e}");
        // The losing claim did not overwrite the pid.
        assert_eq!(std::fs::read_to_string(s.pid_path()).unwrap(), "4242\n");
        release_pid_file(lock);
        assert_eq!(probe(&s.pid_path()).unwrap(), PidProbe::NotRunning { stale_pid: None });
    }

    #[test]
    fn unlocked_pid_file_is_stale_and_can_be_claimed() {
        let (_h, s) = store();
        s.ensure_dir().unwrap();
        std::fs::write(s.pid_path(), "31337\n").unwrap();
        assert_eq!(probe(&s.pid_path()).unwrap(), PidProbe::NotRunning { stale_pid: Some(31337) });
        let lock = claim_pid_file(&s, 77, Duration::from_millis(10)).unwrap();
        assert_eq!(std::fs::read_to_string(s.pid_path()).unwrap(), "77\n");
        drop(lock);
        // Killed daemon (lock released without emptying the file): stale again.
        assert_eq!(probe(&s.pid_path()).unwrap(), PidProbe::NotRunning { stale_pid: Some(77) });
    }

    #[test]
    fn pid_parsing_accepts_python_format_and_rejects_junk() {
        assert_eq!(parse_pid("1234"), Some(1234));
        assert_eq!(parse_pid(" 1234\n"), Some(1234));
        assert_eq!(parse_pid(""), None);
        assert_eq!(parse_pid("1"), None);
        assert_eq!(parse_pid("-5"), None);
        assert_eq!(parse_pid("12ab"), None);
    }

    #[test]
    fn state_file_round_trips_with_stable_field_names() {
        let (_h, s) = store();
        s.ensure_dir().unwrap();
        let st = DaemonState {
            pid: 10,
            profile: "P".into(),
            version: "0.1.0".into(),
            phase: Phase::Running,
            started: 100,
            last_renewal: Some(110),
            token_exp: Some(3700),
            next_renewal: Some(3100),
            last_error: Some("identity provider unreachable at `http://x/`: timeout".into()),
            last_error_at: Some(105),
            exited: None,
            exit_reason: None,
            exit_code: None,
        };
        write_state(&s.daemon_state_path(), &st).unwrap();
        assert_eq!(read_state(&s.daemon_state_path()).unwrap(), Some(st));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(s.daemon_state_path()).unwrap()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "exit_code",
                "exit_reason",
                "exited",
                "last_error",
                "last_error_at",
                "last_renewal",
                "next_renewal",
                "phase",
                "pid",
                "profile",
                "started",
                "token_exp",
                "version"
            ]
        );
        assert_eq!(v["phase"], "running");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(s.daemon_state_path()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn damaged_state_file_is_reported_not_fatal() {
        let (_h, s) = store();
        s.ensure_dir().unwrap();
        std::fs::write(s.daemon_state_path(), "{nope").unwrap();
        assert_eq!(read_state(&s.daemon_state_path()).unwrap_err().exit_code(), exit::CORRUPT_FILE);
        let info = inspect(&s).unwrap();
        assert!(info.state.is_none());
        assert!(info.state_error.unwrap().contains("woci-daemon.json"));
        // Missing fields default (older or partial files).
        std::fs::write(s.daemon_state_path(), r#"{"pid": 5, "phase": "exited", "exit_reason": "x"}"#).unwrap();
        let st = read_state(&s.daemon_state_path()).unwrap().unwrap();
        assert_eq!((st.pid, st.phase, st.exit_reason.as_deref()), (5, Phase::Exited, Some("x")));
    }

    #[test]
    fn log_rotates_past_the_limit_keeping_one_old_file() {
        let (_h, s) = store();
        s.ensure_dir().unwrap();
        let log = s.daemon_log_path();
        assert!(!rotate_log_if_needed(&log, 10).unwrap(), "absent log");
        std::fs::write(&log, "0123456789").unwrap();
        assert!(!rotate_log_if_needed(&log, 10).unwrap(), "at the limit");
        std::fs::write(&log, "first-generation-0").unwrap();
        assert!(rotate_log_if_needed(&log, 10).unwrap());
        assert!(!log.exists());
        assert_eq!(std::fs::read_to_string(rotated_path(&log)).unwrap(), "first-generation-0");
        std::fs::write(&log, "second-generation").unwrap();
        assert!(rotate_log_if_needed(&log, 10).unwrap());
        assert_eq!(std::fs::read_to_string(rotated_path(&log)).unwrap(), "second-generation");
        assert_eq!(rotated_path(&log).file_name().unwrap(), "woci-daemon.log.1");
    }

    #[test]
    fn daemon_args_replace_only_the_first_daemon_flag_and_add_extras_there() {
        let os = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        let a = os(&["--profile", "P", "--daemon", "--daemon"]);
        assert_eq!(daemon_args(&a, &[]), os(&["--profile", "P", "--daemon-run", "--daemon"]));
        assert_eq!(
            daemon_args(&a, &os(&["--refresh-safety-window", "600"])),
            os(&["--profile", "P", "--daemon-run", "--refresh-safety-window", "600", "--daemon"])
        );
    }

    #[test]
    fn utc_and_duration_formatting() {
        assert_eq!(fmt_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt_utc(1_762_622_395), "2025-11-08T17:19:55Z");
        assert_eq!(fmt_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(fmt_utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(fmt_secs(0), "0s");
        assert_eq!(fmt_secs(65), "1m05s");
        assert_eq!(fmt_secs(3723), "1h02m03s");
        assert_eq!(fmt_secs(-65), "-1m05s");
    }

    #[test]
    fn describe_running_and_exited_daemons() {
        let running = DaemonInfo {
            probe: PidProbe::Running { pid: Some(10) },
            state: Some(DaemonState {
                pid: 10,
                phase: Phase::Running,
                started: 1000,
                next_renewal: Some(1600),
                last_error: Some("oops".into()),
                last_error_at: Some(1100),
                ..Default::default()
            }),
            state_error: None,
        };
        let mut out = String::new();
        describe(&mut out, "P", &running, 1200);
        assert!(out.contains("daemon: running for profile `P` (pid 10)"), "{out}");
        assert!(out.contains("uptime 3m20s"), "{out}");
        assert!(out.contains("next renewal: 1970-01-01T00:26:40Z (in 6m40s)"), "{out}");
        assert!(out.contains("last error: oops (1m40s ago)"), "{out}");

        let exited = DaemonInfo {
            probe: PidProbe::NotRunning { stale_pid: Some(10) },
            state: Some(DaemonState {
                pid: 10,
                phase: Phase::Exited,
                exited: Some(2000),
                exit_reason: Some("renewal is no longer possible: x".into()),
                exit_code: Some(9),
                ..Default::default()
            }),
            state_error: None,
        };
        let mut out = String::new();
        describe(&mut out, "P", &exited, 2100);
        assert!(out.contains("daemon: not running for profile `P`"), "{out}");
        assert!(out.contains("stale pid file (pid 10, not locked) ignored"), "{out}");
        assert!(out.contains("exited 1970-01-01T00:33:20Z: renewal is no longer possible: x, exit code 9"), "{out}");
    }

    #[test]
    fn stop_without_daemon_is_exit_1_and_touches_nothing() {
        let (_h, s) = store();
        assert_eq!(stop_with_grace(&s, Duration::from_millis(10), 0).unwrap(), exit::FAILURE);
        assert!(!s.dir().exists());
    }

    /// A real process holding the lock like a daemon: `--stop-daemon` SIGTERMs it and returns once
    /// the kernel released the lock; a process ignoring SIGTERM is killed after the grace period.
    #[cfg(target_os = "linux")]
    fn lock_holder(s: &SessionStore, ignore_term: bool) -> std::process::Child {
        // The shell opens the pid file on fd 9, `flock` locks that open file, then the shell
        // becomes `sleep` (same pid), which keeps fd 9 and so the lock.
        let trap = if ignore_term { "trap '' TERM; " } else { "" };
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(r#"{trap}exec 9>>"$1"; flock 9 || exit 3; echo $$ > "$1"; exec sleep 60"#))
            .arg("sh")
            .arg(s.pid_path())
            .spawn()
            .expect("sh runs");
        let deadline = Instant::now() + Duration::from_secs(20);
        while probe(&s.pid_path()).unwrap() != (PidProbe::Running { pid: Some(child.id()) }) {
            assert!(Instant::now() < deadline, "the helper never took the lock (is util-linux `flock` installed?)");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stop_terminates_the_lock_holder() {
        let (_h, s) = store();
        s.ensure_dir().unwrap();
        let mut child = lock_holder(&s, false);
        assert_eq!(stop_with_grace(&s, Duration::from_secs(30), 0).unwrap(), 0);
        assert!(matches!(probe(&s.pid_path()).unwrap(), PidProbe::NotRunning { .. }));
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stop_kills_a_holder_that_ignores_sigterm_and_records_it() {
        let (_h, s) = store();
        s.ensure_dir().unwrap();
        let mut child = lock_holder(&s, true);
        let st = DaemonState { pid: child.id(), phase: Phase::Running, ..Default::default() };
        write_state(&s.daemon_state_path(), &st).unwrap();
        assert_eq!(stop_with_grace(&s, Duration::from_millis(300), 1234).unwrap(), 0);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        let st = read_state(&s.daemon_state_path()).unwrap().unwrap();
        assert_eq!(st.phase, Phase::Exited);
        assert_eq!(st.exited, Some(1234));
        assert!(st.exit_reason.unwrap().contains("killed by `--stop-daemon`"));
    }
}
