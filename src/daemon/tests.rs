use super::*;
use fs4::fs_std::FileExt;

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

#[cfg(unix)]
#[test]
fn a_pid_file_that_is_a_fifo_is_refused_not_waited_on() {
    let (_d, s) = store();
    s.ensure_dir().unwrap();
    rustix::fs::mkfifoat(rustix::fs::CWD, s.pid_path(), rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
    let e = probe(&s.pid_path()).unwrap_err();
    assert_eq!(e.exit_code(), crate::error::exit::CONFIG, "{e}");
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

/// Daemons started together: the one that lost sees the winner's lock a moment before its pid
/// is written, and still names it.
#[test]
fn a_claim_losing_to_a_daemon_starting_at_once_names_its_pid() {
    let (_h, s) = store();
    let lock = claim_pid_file(&s, 4242, Duration::from_millis(10)).unwrap();
    lock.file().set_len(0).unwrap();
    let path = s.pid_path();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(60));
        std::fs::write(path, "4242\n").unwrap();
    });
    let e = claim_pid_file(&s, 999, Duration::from_millis(10)).unwrap_err();
    writer.join().unwrap();
    assert!(e.to_string().contains("(pid 4242)"), "{e}");
    drop(lock);
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
fn probes_at_once_never_take_each_other_for_a_daemon() {
    // `--daemon-status` and `--stop-daemon` racing on a stale pid file: while one probes (holds
    // the lock for an instant), the other must still see the file as stale.
    let (_h, s) = store();
    s.ensure_dir().unwrap();
    std::fs::write(s.pid_path(), "31337\n").unwrap();
    let other_probe = std::fs::File::open(s.pid_path()).unwrap();
    assert!(FileExt::try_lock_shared(&other_probe).unwrap());
    assert_eq!(probe(&s.pid_path()).unwrap(), PidProbe::NotRunning { stale_pid: Some(31337) });
    assert_eq!(stop_with_grace(&s, Duration::from_secs(1), 0).unwrap(), exit::FAILURE);
}

#[cfg(unix)]
#[test]
fn a_symlinked_pid_file_is_refused_and_its_target_untouched() {
    let (_h, s) = store();
    s.ensure_dir().unwrap();
    let target = s.dir().join("precious");
    std::fs::write(&target, "keep me").unwrap();
    std::os::unix::fs::symlink(&target, s.pid_path()).unwrap();
    for e in [probe(&s.pid_path()).unwrap_err(), claim_pid_file(&s, 4242, Duration::from_millis(10)).unwrap_err()] {
        assert_eq!(e.exit_code(), exit::CONFIG, "{e}");
        assert!(e.to_string().contains("woci_refresh.pid` is a symbolic link"), "{e}");
    }
    assert!(inspect(&s).is_err());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    // A dangling link is not followed to create its target either.
    std::fs::remove_file(&target).unwrap();
    assert!(claim_pid_file(&s, 4242, Duration::from_millis(10)).is_err());
    assert!(!target.exists());
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
        pid_start: Some(123_456),
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
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(s.daemon_state_path()).unwrap()).unwrap();
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
            "pid_start",
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
fn the_spec_travels_through_a_pipe_with_its_secrets_and_never_prints_them() {
    let inv = crate::cli::parse(
        ["--client-secret", "s3cret-value", "--profile", "P", "--daemon"]
            .iter()
            .map(std::ffi::OsString::from)
            .collect(),
    )
    .unwrap();
    let spec = DaemonSpec { flags: inv.flags.clone(), oci: inv.oci.clone() };
    let mut pipe = Vec::new();
    spec.write_to(&mut pipe).unwrap();
    let back = DaemonSpec::read_from(pipe.as_slice()).unwrap();
    assert_eq!(back, spec);
    assert_eq!(back.flags.get(crate::settings::Key::ClientSecret), Some("s3cret-value"));
    assert_eq!(back.oci.profile.as_deref(), Some("P"));
    assert!(!format!("{back:?}").contains("s3cret-value"));
    assert!(DaemonSpec::read_from(&b"--profile P"[..]).is_err());
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
    // No error recorded, and a renewal long overdue: the state file is doubted, not trusted.
    let mut quiet = running.clone();
    let s = quiet.state.as_mut().unwrap();
    (s.last_error, s.last_error_at) = (None, None);
    let mut out = String::new();
    describe(&mut out, "P", &quiet, 1700);
    assert!(out.contains("last error: none\n"), "{out}");
    let mut out = String::new();
    describe(&mut out, "P", &quiet, 2000);
    assert!(out.contains("last error: none recorded, but the renewal due 6m40s ago is not recorded"), "{out}");

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
    assert!(out.contains("stale pid file (pid 10) ignored: it names no woci daemon"), "{out}");
    assert!(out.contains("exited 1970-01-01T00:33:20Z: renewal is no longer possible: x, exit code 9"), "{out}");
}

/// A daemon stopped with SIGSTOP holds its lock and renews nothing: both forms say so.
#[cfg(target_os = "linux")]
#[test]
fn a_stopped_daemon_is_named_as_such() {
    let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid.to_string()]).status().unwrap().success());
    while !fsutil::process_stopped(pid) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let info = DaemonInfo { probe: PidProbe::Running { pid: Some(pid) }, state: None, state_error: None };
    let mut out = String::new();
    describe(&mut out, "P", &info, 0);
    let (report_stopped, _) = (report(&info, 0).stopped, child.kill());
    child.wait().unwrap();
    assert!(out.contains(&format!("stopped (SIGSTOP): it renews nothing until `kill -CONT {pid}`")), "{out}");
    assert!(report_stopped);
}

/// A daemon whose binary was replaced, removed, or that runs another woci version (an upgrade
/// that switched a symbolic link leaves its old file in place: round 105 F3) is outdated, and
/// told to restart, not to reload.
#[cfg(target_os = "linux")]
#[test]
fn a_daemon_of_another_version_or_binary_is_outdated() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("sleeper");
    std::fs::copy("/bin/sleep", &bin).unwrap();
    let mut child = std::process::Command::new(&bin).arg("30").spawn().unwrap();
    let pid = child.id();
    let info = |version: &str| DaemonInfo {
        probe: PidProbe::Running { pid: Some(pid) },
        state: Some(DaemonState { pid, version: version.into(), ..DaemonState::default() }),
        state_error: None,
    };
    let said = |info: &DaemonInfo| {
        let mut out = String::new();
        describe(&mut out, "P", info, 0);
        (report(info, 0).binary_replaced, out)
    };
    let (outdated, out) = said(&info(env!("CARGO_PKG_VERSION")));
    assert!(!outdated && !out.contains("restart"), "{out}");
    assert!(!said(&info("")).0, "a state file of a woci before versions were recorded");
    let (outdated, out) = said(&info("0.0.1"));
    assert!(outdated, "{out}");
    assert!(out.contains(&format!("it runs woci 0.0.1, this is woci {}", env!("CARGO_PKG_VERSION"))), "{out}");
    assert!(out.contains("this is woci") && !out.contains("reload"), "a 0.1.0 daemon stops on a reload: {out}");
    let new = tmp.path().join("sleeper.new");
    std::fs::copy("/bin/sleep", &new).unwrap();
    std::fs::rename(&new, &bin).unwrap();
    let (_, out) = said(&info(env!("CARGO_PKG_VERSION")));
    assert!(out.contains("its woci binary was replaced since it started (an upgrade?): a reload keeps"), "{out}");
    assert!(!out.contains("stop it ("), "{out}");
    std::fs::remove_file(&bin).unwrap();
    let (outdated, out) = said(&info(env!("CARGO_PKG_VERSION")));
    assert!(
        outdated && out.contains("its woci binary was removed since it started (woci uninstalled?): stop it"),
        "{out}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
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

/// A live process that is not a daemon (the pid a dead daemon's pid file names, reused).
#[cfg(target_os = "linux")]
struct Bystander(std::process::Child);

#[cfg(target_os = "linux")]
impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_locked_pid_file_naming_a_reused_pid_is_stale_and_nothing_is_signalled() {
    let (_h, s) = store();
    s.ensure_dir().unwrap();
    let mut bystander = Bystander(std::process::Command::new("sleep").arg("60").spawn().unwrap());
    let pid = bystander.0.id();
    let started = crate::fsutil::process_start_time(pid).expect("/proc gives start times");
    // The dead daemon's files: its pid (now the bystander's) and its own, earlier start time.
    std::fs::write(s.pid_path(), format!("{pid}\n")).unwrap();
    let st = DaemonState { pid, pid_start: Some(started - 1), phase: Phase::Running, ..Default::default() };
    write_state(&s.daemon_state_path(), &st).unwrap();
    // Someone holds the lock (an older woci's probe, at the worst moment).
    let holder = std::fs::File::open(s.pid_path()).unwrap();
    assert!(FileExt::try_lock_exclusive(&holder).unwrap());

    let info = inspect(&s).unwrap();
    assert_eq!(info.probe, PidProbe::NotRunning { stale_pid: Some(pid) });
    let mut text = String::new();
    describe(&mut text, "P", &info, 0);
    assert!(text.contains(&format!("stale pid file (pid {pid}) ignored")), "{text}");
    assert_eq!(stop_with_grace(&s, Duration::from_secs(1), 0).unwrap(), exit::FAILURE);
    std::thread::sleep(Duration::from_millis(100));
    assert!(bystander.0.try_wait().unwrap().is_none(), "the bystander was signalled");
}

#[cfg(target_os = "linux")]
#[test]
fn stop_signals_a_daemon_whose_start_time_matches() {
    let (_h, s) = store();
    s.ensure_dir().unwrap();
    let mut child = lock_holder(&s, false);
    let pid_start = crate::fsutil::process_start_time(child.id());
    assert!(pid_start.is_some());
    let st = DaemonState { pid: child.id(), pid_start, phase: Phase::Running, ..Default::default() };
    write_state(&s.daemon_state_path(), &st).unwrap();
    assert!(inspect(&s).unwrap().running());
    assert_eq!(stop_with_grace(&s, Duration::from_secs(30), 0).unwrap(), 0);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
}

/// The daemon renews ahead like `--auto-refresh` unless something sets the window; a window the
/// INI gains later is what a reload then uses (the default is not frozen into the spec's flags).
#[test]
fn the_daemon_window_defaults_to_the_auto_refresh_one_until_something_sets_it() {
    use crate::settings::{Flags, OciView, Settings, DEFAULT_AUTO_WINDOW};
    let home = tempfile::tempdir().unwrap();
    let ini = home.path().join(".oci/woci_manager.ini");
    std::fs::create_dir_all(ini.parent().unwrap()).unwrap();
    let env: crate::settings::Env = [
        ("HOME".to_owned(), home.path().display().to_string()),
        ("WOCI_AUTH_ENDPOINT".into(), "http://127.0.0.1:1".into()),
    ]
    .into();
    let spec = DaemonSpec { flags: Flags::default(), oci: OciView { profile: Some("P".into()), ..OciView::default() } };
    let resolve = || DaemonSpec::settings(Settings::resolve(&spec.flags, &spec.oci, &env, false).unwrap()).unwrap();
    std::fs::write(&ini, "[P]\n").unwrap();
    assert_eq!(resolve().window, DEFAULT_AUTO_WINDOW);
    std::fs::write(&ini, "[P]\nrefresh_safety_window = 90\n").unwrap();
    assert_eq!(resolve().window, Duration::from_secs(90), "the INI's window, as a reload reads it");
}

/// A token still valid at the start, or renewed by another woci, is no renewal of the daemon's:
/// its last renewal stays, while the token's end and the next check move.
#[test]
fn only_the_daemons_own_renewal_is_its_last() {
    let mut st = DaemonState::default();
    st.renewed(None, 200, 150);
    assert_eq!((st.last_renewal, st.token_exp, st.next_renewal), (None, Some(200), Some(150)));
    st.renewed(Some(160), 400, 350);
    assert_eq!(st.last_renewal, Some(160));
    st.renewed(None, 600, 550);
    assert_eq!((st.last_renewal, st.token_exp, st.next_renewal), (Some(160), Some(600), Some(550)));
}
