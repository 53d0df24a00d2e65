//! The daemon's files: the locked pid file, the JSON state file and the bounded log, plus the
//! small formatting helpers `--status` shares. No process management here (see the parent module).

use crate::error::{Error, Result};
use crate::fsutil::{self, FileLock};
use crate::store::SessionStore;
use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the daemon is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
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
pub(crate) struct DaemonState {
    /// The daemon's process id.
    pub pid: u32,
    /// The daemon's start time as the kernel counts it ([`fsutil::process_start_time`]): with
    /// `pid`, it tells the daemon from a later process that reuses its pid. `None` where the
    /// system does not say, and in the files of woci versions before it was recorded.
    pub pid_start: Option<u64>,
    /// The profile.
    pub profile: String,
    /// woci version of the daemon.
    pub version: String,
    /// Life phase.
    pub phase: Phase,
    /// Start time.
    pub started: i64,
    /// Last successful renewal (a new token, or one another woci renewed); not set by a start on
    /// a still-valid token.
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

impl DaemonState {
    /// Records a successful renewal check: the token expires at `exp`, the next check is at
    /// `next`; `own` is when the daemon renewed it itself (`None`: the token was still valid, or
    /// another woci renewed it, and the daemon's last renewal stays what it was).
    pub(crate) fn renewed(&mut self, own: Option<i64>, exp: i64, next: i64) {
        self.last_renewal = own.or(self.last_renewal);
        self.token_exp = Some(exp);
        self.next_renewal = Some(next);
        self.last_error = None;
        self.last_error_at = None;
    }

    /// Records the daemon's end.
    pub(crate) fn exit(&mut self, at: i64, reason: String, code: Option<u8>) {
        self.phase = Phase::Exited;
        self.exited = Some(at);
        self.exit_reason = Some(reason);
        self.exit_code = code;
        self.next_renewal = None;
    }
}

/// What the pid file says right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PidProbe {
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
pub(crate) struct DaemonInfo {
    /// Lock probe.
    pub probe: PidProbe,
    /// The state file, if present and readable.
    pub state: Option<DaemonState>,
    /// Why the state file could not be read, if it exists but is damaged.
    pub state_error: Option<String>,
}

impl DaemonInfo {
    /// True when a daemon holds the pid lock.
    pub(crate) fn running(&self) -> bool {
        matches!(self.probe, PidProbe::Running { .. })
    }

    /// The running daemon's pid (from the pid file, else from the state file).
    pub(crate) fn pid(&self) -> Option<u32> {
        let PidProbe::Running { pid } = self.probe else { return None };
        pid.or_else(|| self.state.as_ref().map(|s| s.pid).filter(|p| *p != 0))
    }

    /// Why the running daemon does not run this woci's code, if so ([`Outdated`]).
    pub(crate) fn outdated(&self) -> Option<Outdated> {
        let pid = self.pid()?;
        let version = self.state.as_ref().filter(|s| s.pid == pid).map(|s| s.version.as_str());
        let other = version.filter(|v| !v.is_empty() && *v != env!("CARGO_PKG_VERSION"));
        if fsutil::binary_removed(pid) {
            Some(Outdated::Removed)
        } else if let Some(v) = other {
            Some(Outdated::Version(v.to_owned()))
        } else {
            fsutil::binary_replaced(pid).then_some(Outdated::Replaced)
        }
    }
}

/// How a running daemon's code differs from this woci's: its binary removed or replaced on disk
/// since it started, or its state naming another version (an upgrade that switched a symbolic
/// link to another install leaves the old file in place; round 105 F3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outdated {
    Removed,
    /// Another version (said before a replaced binary: what a reload does depends on it).
    Version(String),
    Replaced,
}

impl Outdated {
    /// What happened, in words.
    pub(crate) fn why(&self) -> String {
        match self {
            Outdated::Removed => "its woci binary was removed since it started (woci uninstalled?)".into(),
            Outdated::Version(v) => {
                format!("it runs woci {}, this is woci {}", crate::terminal::safe(v), env!("CARGO_PKG_VERSION"))
            }
            Outdated::Replaced => "its woci binary was replaced since it started (an upgrade?)".into(),
        }
    }
}

/// Parses the pid file content (the Python woci writes the bare number, maybe with a newline).
pub(crate) fn parse_pid(content: &str) -> Option<u32> {
    content.trim().parse::<u32>().ok().filter(|p| *p > 1)
}

/// Checks the pid file without creating it or following a symbolic link: locked means a daemon
/// lives. Probes take the lock shared, for an instant and only when it is free, so that two
/// probes at once never make each other look like a daemon (the daemon holds it exclusively).
pub(crate) fn probe(pid_path: &Path) -> Result<PidProbe> {
    // A FIFO there would block the open (and `--status` with it).
    fsutil::refuse_non_file(pid_path)?;
    let mut file = match fsutil::open_no_follow(pid_path, OpenOptions::new().read(true), "cannot open") {
        Ok(f) => f,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(PidProbe::NotRunning { stale_pid: None })
        }
        Err(e) => return Err(e),
    };
    let mut content = String::new();
    // A pid file that is not text is as good as empty.
    let _ = (&mut file).take(64).read_to_string(&mut content);
    let pid = parse_pid(&content);
    match FileExt::try_lock_shared(&file) {
        Ok(true) => {
            let _ = FileExt::unlock(&file);
            Ok(PidProbe::NotRunning { stale_pid: pid })
        }
        Ok(false) => Ok(PidProbe::Running { pid }),
        Err(e) => Err(Error::io("cannot lock", pid_path, e)),
    }
}

use std::os::unix::ffi::OsStrExt;

/// The pid of a Python woci daemon that still runs for the profile: the Python woci writes its
/// bare pid and never locks the file, so a pid file nobody locks may name a live process of this
/// user's that is the Python woci's daemon: a Python interpreter running the `woci` script (or
/// `oci_upst_session_manager.py`) with `--daemon` (Linux). Anything else there (a reused pid) is
/// a stale pid file, never signalled. Such a daemon renews the same refresh token as woci's would.
pub(crate) fn python_daemon(probe: &PidProbe) -> Option<u32> {
    let PidProbe::NotRunning { stale_pid: Some(pid) } = *probe else { return None };
    let proc = format!("/proc/{pid}");
    let owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&proc).ok()?);
    let exe = std::fs::read_link(format!("{proc}/exe")).ok()?;
    let python = exe.file_name()?.to_str()?.starts_with("python");
    let cmdline = fsutil::read_bounded(Path::new(&format!("{proc}/cmdline")), 64 * 1024).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    // The script is the interpreter's first argument that is not an option (`-W ignore`, `-X
    // utf8` take a value; `-c`/`-m` run no script file).
    let mut rest = args.iter().skip(1);
    let script = loop {
        match rest.next().copied() {
            None | Some(b"-c" | b"-m") => break None,
            Some(b"-W" | b"-X" | b"--check-hash-based-pycs") => _ = rest.next(),
            Some(a) if a.starts_with(b"-") => {}
            Some(a) => break Some(a),
        }
    };
    let script = script.is_some_and(|a| {
        let name = Path::new(std::ffi::OsStr::from_bytes(a)).file_name().map(|n| n.as_encoded_bytes());
        matches!(name, Some(b"woci" | b"oci_upst_session_manager.py" | b"oci_upst_session_manager"))
    });
    let daemon = args.iter().any(|a| *a == b"--daemon");
    (owner == fsutil::user_id() && python && script && daemon).then_some(pid)
}

/// The line that names a Python woci daemon still running.
pub(crate) fn python_daemon_line(pid: u32, profile: &str) -> String {
    format!(
        "a Python woci daemon (pid {pid}) still runs for profile `{profile}` (its pid file has no lock) and renews \
         the same refresh token; stop it (`woci --stop-daemon --profile {profile}` or `kill {pid}`) before woci's \
         daemon takes over"
    )
}

/// Whether process `pid` is still the daemon `state` describes, by its recorded start time.
/// `None` when that cannot be told: the state is of another pid (a daemon that has just started
/// and not yet written it), it has no start time (an older woci's daemon), or this system gives
/// no start times.
pub(crate) fn same_process(state: Option<&DaemonState>, pid: u32) -> Option<bool> {
    let recorded = state.filter(|s| s.pid == pid)?.pid_start?;
    fsutil::start_times_known().then(|| fsutil::process_start_time(pid) == Some(recorded))
}

/// Reads `woci-daemon.json`. `Ok(None)` when absent; a damaged file is [`Error::CorruptFile`].
pub(crate) fn read_state(path: &Path) -> Result<Option<DaemonState>> {
    let Some(bytes) = fsutil::read_optional(path)? else { return Ok(None) };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::corrupt(path, format!("not daemon state JSON: {e}")))
}

/// Writes `woci-daemon.json` atomically.
pub(crate) fn write_state(path: &Path, state: &DaemonState) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(state).map_err(|e| Error::Other(format!("cannot encode state: {e}")))?;
    json.push(b'\n');
    fsutil::write_atomic(path, &json)
}

/// The daemon of a session folder, as files say. Never fails on a damaged state file. A locked
/// pid file whose pid is now another process (its start time differs from the recorded one) is
/// stale: whoever holds the lock, that pid is not the daemon.
pub(crate) fn inspect(store: &SessionStore) -> Result<DaemonInfo> {
    let mut probe = probe(&store.pid_path())?;
    let (state, state_error) = match read_state(&store.daemon_state_path()) {
        Ok(s) => (s, None),
        Err(e) => (None, Some(e.to_string())),
    };
    if let PidProbe::Running { pid: Some(p) } = probe {
        if same_process(state.as_ref(), p) == Some(false) {
            probe = PidProbe::NotRunning { stale_pid: Some(p) };
        }
    }
    Ok(DaemonInfo { probe, state, state_error })
}

/// Takes the pid lock for the daemon's life and writes `pid` into the file (in place).
pub(crate) fn claim_pid_file(store: &SessionStore, pid: u32, wait: Duration) -> Result<FileLock> {
    store.ensure_dir()?;
    let path = store.pid_path();
    let lock = FileLock::acquire(&path, wait).map_err(|e| match e {
        // A daemon starting at the same moment holds the lock a moment before its pid is in the
        // file: looked at again for up to 200 ms, so the message names it.
        Error::Busy(_) => {
            let mut found = probe(&path).ok();
            for _ in 0..10 {
                if matches!(found, Some(PidProbe::Running { pid: Some(_) })) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                found = probe(&path).ok();
            }
            already_running(store, found)
        }
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
pub(super) fn release_pid_file(lock: FileLock) {
    let _ = lock.file().set_len(0);
    drop(lock);
}

pub(super) fn already_running(store: &SessionStore, probe: Option<PidProbe>) -> Error {
    let (pid, old) = match probe {
        Some(probe @ PidProbe::Running { pid: Some(p) }) => {
            let state = read_state(&store.daemon_state_path()).ok().flatten();
            // One that runs an old binary (an upgrade) keeps the old code until restarted.
            match (DaemonInfo { probe, state, state_error: None }).outdated() {
                Some(o) => (format!(" (pid {p}); {}", o.why()), ", then start it again"),
                None => (format!(" (pid {p})"), ""),
            }
        }
        _ => (String::new(), ""),
    };
    Error::Busy(format!(
        "a woci daemon is already running for profile `{}`{pid}; stop it with `woci --stop-daemon --profile {}`{old}",
        store.profile(),
        store.profile()
    ))
}

/// Rotates `log` to `log.1` when it is larger than `max` bytes. Returns whether it rotated.
pub(crate) fn rotate_log_if_needed(log: &Path, max: u64) -> Result<bool> {
    match std::fs::metadata(log) {
        Ok(m) if m.len() > max => {
            std::fs::rename(log, rotated_path(log)).map_err(|e| Error::io("cannot rotate", log, e))?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("cannot read", log, e)),
    }
}

/// `woci-daemon.log.1`.
pub(crate) fn rotated_path(log: &Path) -> PathBuf {
    let mut s = log.as_os_str().to_owned();
    s.push(".1");
    PathBuf::from(s)
}

pub(super) fn open_log(path: &Path) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let log = fsutil::open_no_follow(path, &mut opts, "cannot open")?;
    #[cfg(unix)]
    fsutil::adopt_owner(&log, path.parent().unwrap_or(Path::new(".")));
    Ok(log)
}

/// Appends `line` and a newline, when there is a line (the optional lines of `--status` and
/// `--daemon-status`).
pub(crate) fn push_line(out: &mut String, line: Option<String>) {
    if let Some(line) = line {
        out.push_str(&line);
        out.push('\n');
    }
}

/// Daemon section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct DaemonReport {
    /// Holds the pid lock.
    pub running: bool,
    /// Its pid.
    pub pid: Option<u32>,
    /// Running but stopped (SIGSTOP): it renews nothing until continued.
    pub stopped: bool,
    /// Running a woci binary replaced or removed since it started, or another woci version (an
    /// upgrade): a reload keeps the old code ([`DaemonInfo::outdated`]).
    pub binary_replaced: bool,
    /// Pid left in an unlocked pid file.
    pub stale_pid: Option<u32>,
    /// Start time of the running daemon.
    pub started: Option<i64>,
    /// Seconds since then.
    pub uptime: Option<i64>,
    /// Last successful renewal check.
    pub last_renewal: Option<i64>,
    /// Next renewal check.
    pub next_renewal: Option<i64>,
    /// Expiry of the token the daemon last saw.
    pub token_expires_at: Option<i64>,
    /// Last failure.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<i64>,
    /// Why the last daemon exited (when none runs).
    pub exit_reason: Option<String>,
    /// Its exit code.
    pub exit_code: Option<u8>,
    /// A Python woci daemon that still runs for the profile (its pid), see [`python_daemon`].
    pub python_daemon: Option<u32>,
}

/// The daemon section (also `--daemon-status --json`).
pub(crate) fn report(info: &DaemonInfo, now: i64) -> DaemonReport {
    let running = info.running();
    let pid = info.pid();
    // The state file describes the running daemon only if it is that daemon's.
    let live = info.state.as_ref().filter(|s| running && Some(s.pid) == pid);
    let last = info.state.as_ref().filter(|_| !running);
    let python = python_daemon(&info.probe);
    DaemonReport {
        running,
        pid,
        stopped: pid.is_some_and(fsutil::process_stopped),
        binary_replaced: info.outdated().is_some(),
        stale_pid: match info.probe {
            // A Python woci daemon's pid is its own field, not a stale one.
            PidProbe::NotRunning { stale_pid } => stale_pid.filter(|_| python.is_none()),
            PidProbe::Running { .. } => None,
        },
        started: live.map(|s| s.started),
        uptime: live.map(|s| now - s.started),
        last_renewal: live.and_then(|s| s.last_renewal),
        next_renewal: live.and_then(|s| s.next_renewal),
        token_expires_at: live.and_then(|s| s.token_exp),
        last_error: info.state.as_ref().and_then(|s| s.last_error.clone()),
        last_error_at: info.state.as_ref().and_then(|s| s.last_error.as_ref().and(s.last_error_at)),
        exit_reason: last.and_then(|s| s.exit_reason.clone()),
        exit_code: last.and_then(|s| s.exit_code),
        python_daemon: python,
    }
}
