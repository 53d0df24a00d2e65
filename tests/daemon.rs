//! `woci --daemon`, `--daemon-status`, `--stop-daemon` with the real binary against the emulator:
//! start, status, duplicate start, stop, stale pid file, renewal with short token lifetimes, and
//! the daemon ending by itself (with its reason recorded) when renewal becomes impossible.
//!
//! Every daemon a test starts is stopped by a guard (SIGKILL by the pid it reported) even when
//! the test fails. Waits poll the daemon's files up to a generous deadline; nothing asserts speed.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use woci_emulator::{Config, Endpoint, Fault, FaultAction};

const DEADLINE: Duration = Duration::from_secs(90);

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Kills the daemon (by the pid it reported) when the test ends, passed or not.
struct DaemonGuard(Option<i32>);

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // SAFETY: kill(2) on the pid our own `woci --daemon` reported; ESRCH when already gone.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// `woci ARGS --profile P` (the harness names no profile; `DEFAULT` would be used otherwise).
async fn woci(w: &World, args: &[&str]) -> Output {
    let mut c = w.woci();
    c.args(args).args(["--profile", "P"]);
    run(c).await
}

/// Starts the daemon and returns its guard and pid.
async fn start(w: &World) -> (DaemonGuard, i32) {
    let out = woci(w, &["--daemon"]).await;
    let pid: i32 = stdout(&out).trim().parse().unwrap_or_else(|_| {
        panic!("`woci --daemon` printed no pid (exit {:?}):\n{}\nlog:\n{}", out.status.code(), stderr(&out), log(w))
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("daemon started for profile `P` (pid {pid})")), "{}", stderr(&out));
    (DaemonGuard(Some(pid)), pid)
}

fn state_path(w: &World) -> PathBuf {
    w.session_dir().join("woci-daemon.json")
}

fn state(w: &World) -> serde_json::Value {
    serde_json::from_str(&w.read(&state_path(w))).unwrap_or(serde_json::Value::Null)
}

fn log(w: &World) -> String {
    w.read(&w.session_dir().join("woci-daemon.log"))
}

/// Polls `cond` until it holds or the deadline passes (then fails with `what` and the log).
async fn wait_for(w: &World, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; state: {}\nlog:\n{}", state(w), log(w));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_status_duplicate_stop() {
    let w = World::new().await;
    let token = w.seed_token(3600);
    let rt = w.seed_refresh_token();
    let (_guard, pid) = start(&w).await;

    assert_eq!(w.read(&w.session_dir().join("woci_refresh.pid")).trim(), pid.to_string());
    let st = state(&w);
    assert_eq!(st["pid"], pid);
    assert_eq!(st["phase"], "running");
    assert_eq!(st["profile"], "P");
    assert!(st["next_renewal"].as_i64().is_some(), "{st}");
    assert_eq!(w.emu.stats().requests, 0, "a valid token needs no renewal at start");

    let out = woci(&w, &["--daemon-status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("daemon: running for profile `P` (pid {pid})")), "{text}");
    assert!(text.contains("uptime") && text.contains("next renewal:") && text.contains("last error: none"), "{text}");
    assert!(!text.contains("last renewal"), "a start on a valid token renewed nothing: {text}");
    let out = woci(&w, &["--daemon-status", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--daemon-status --json is JSON");
    assert_eq!((v["schema"].as_i64(), v["profile"].as_str()), (Some(1), Some("P")));
    assert_eq!((v["daemon"]["running"].as_bool(), v["daemon"]["pid"].as_u64()), (Some(true), Some(pid as u64)));

    // `--status` shows the daemon too.
    let out = woci(&w, &["--status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(v["daemon"]["running"], true);
    assert_eq!(v["daemon"]["pid"], pid);

    let dup = woci(&w, &["--daemon"]).await;
    assert_eq!(dup.status.code(), Some(10), "{}", stderr(&dup));
    assert!(stderr(&dup).contains(&format!("already running for profile `P` (pid {pid})")), "{}", stderr(&dup));
    assert!(alive(pid), "the duplicate start must not disturb the running daemon");

    let out = woci(&w, &["--stop-daemon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("stopped the daemon of profile `P` (pid {pid})")), "{}", stderr(&out));
    let st = state(&w);
    assert_eq!(st["phase"], "exited");
    assert_eq!(st["exit_reason"], "stopped by SIGTERM");
    assert_eq!(st["exit_code"], 0);

    let out = woci(&w, &["--daemon-status"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("not running") && stdout(&out).contains("stopped by SIGTERM"), "{}", stdout(&out));
    let out = woci(&w, &["--stop-daemon"]).await;
    assert_eq!(out.status.code(), Some(1), "nothing left to stop");
    assert!(!stderr(&out).contains("a typo?"), "{}", stderr(&out));
    // A profile configured nowhere is named as a probable typo.
    for ask in ["--daemon-status", "--stop-daemon"] {
        let out = run({
            let mut c = w.woci();
            c.args([ask, "--profile", "PP"]);
            c
        })
        .await;
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("profile `PP` is in neither woci_manager.ini nor the OCI config"),
            "{}",
            stderr(&out)
        );
    }

    assert_no_secrets(&log(&w), &[&token, &rt, &w.cfg.exchange_client_secret]);
}

/// A stopped daemon (SIGSTOP, Ctrl-Z) is resumed by `--stop-daemon` so that it stops as asked
/// (storing what a renewal under way got), instead of being killed after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_daemon_is_resumed_to_stop_not_killed() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let (_guard, pid) = start(&w).await;
    // SAFETY: SIGSTOP to the daemon this test started.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let out = woci(&w, &["--stop-daemon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("resumed it") && !stderr(&out).contains("killing"), "{}", stderr(&out));
    assert_eq!(state(&w)["exit_reason"], "stopped by SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_pid_file_is_ignored() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    // A pid file left by a crashed daemon (nobody holds its lock).
    std::fs::write(w.session_dir().join("woci_refresh.pid"), "999999\n").unwrap();
    let out = woci(&w, &["--daemon-status"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("stale pid file (pid 999999) ignored"), "{}", stdout(&out));

    let (_guard, pid) = start(&w).await;
    assert_eq!(w.read(&w.session_dir().join("woci_refresh.pid")).trim(), pid.to_string());
    let out = woci(&w, &["--stop-daemon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_short_lived_tokens_then_exits_when_the_refresh_token_is_revoked() {
    let w = World::with_config(Config { upst_ttl: Duration::from_secs(6), ..Config::default() }).await;
    w.seed_token(-10);
    let first_rt = w.seed_refresh_token();
    let (_guard, _pid) = start(&w).await;
    assert_eq!(w.emu.stats().exchanges, 1, "`--daemon` renewed the expired token before detaching");

    // The 6 s token is renewed at half-life by the daemon, repeatedly.
    wait_for(&w, "two renewals by the daemon", || w.emu.stats().exchanges >= 3).await;
    let st = state(&w);
    assert!(st["last_renewal"].as_i64().is_some() && st["token_exp"].as_i64().is_some(), "{st}");

    // Revoked refresh token: the daemon cannot log in, so it exits and says why.
    w.emu.revoke_refresh_tokens();
    wait_for(&w, "the daemon to exit", || daemon_gone(&w)).await;
    let st = state(&w);
    assert_eq!(st["phase"], "exited", "{st}");
    assert_eq!(st["exit_code"], 3, "{st}");
    let reason = st["exit_reason"].as_str().unwrap_or_default().to_owned();
    assert!(
        reason.contains("renewal is no longer possible") && reason.contains("woci session authenticate"),
        "{reason}"
    );

    let out = woci(&w, &["--daemon-status"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("renewal is no longer possible"), "{}", stdout(&out));
    // Said once in the log: as the exit reason, not also as an error line before it.
    let text = log(&w);
    assert_eq!(text.matches("no longer possible").count(), 1, "{text}");

    let out = woci(&w, &["--status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(v["daemon"]["running"], false);
    assert_eq!(v["daemon"]["exit_code"], 3);

    let token = w.read(&w.token_path());
    let rt = w.read(&w.session_dir().join("refresh_token"));
    assert_no_secrets(&log(&w), &[&token, &rt, &first_rt, &w.cfg.exchange_client_secret]);
}

/// The daemon is not our child (it was detached and may linger as a zombie until some init reaps
/// it), so "gone" means its pid lock is free.
fn daemon_gone(w: &World) -> bool {
    !pid_locked(&w.session_dir().join("woci_refresh.pid"))
}

fn pid_locked(path: &Path) -> bool {
    use fs4::fs_std::FileExt;
    let Ok(f) = std::fs::OpenOptions::new().read(true).write(true).open(path) else { return false };
    match FileExt::try_lock_exclusive(&f) {
        Ok(true) => {
            let _ = FileExt::unlock(&f);
            false
        }
        _ => true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_refresh_profile_daemon_exits_at_sess_exp() {
    let w = World::with_config(Config {
        // Tokens of 6 s renewed about 2 s before expiry leave room for a loaded CI machine (with
        // 3 s tokens the 1 s margin was once missed); the session ends after 14 s.
        upst_ttl: Duration::from_secs(6),
        session_max: Duration::from_secs(14),
        ..Config::default()
    })
    .await;
    let (_key, token) = w.seed_session_profile(Duration::from_secs(6));

    let out = {
        let mut c = w.woci();
        c.env("WOCI_AUTH_ENDPOINT", w.emu.auth_endpoint()).args(["--daemon", "--profile", "P"]);
        run(c).await
    };
    assert_eq!(out.status.code(), Some(0), "{}\nlog:\n{}", stderr(&out), log(&w));
    let pid: i32 = stdout(&out).trim().parse().expect("pid on stdout");
    let _guard = DaemonGuard(Some(pid));

    wait_for(&w, "the daemon to stop at `sess_exp`", || daemon_gone(&w)).await;
    assert!(
        w.emu.stats().session_refreshes >= 1,
        "the daemon refreshed the session before its end: {:?}\nstate: {}\nlog:\n{}",
        w.emu.stats(),
        state(&w),
        log(&w)
    );
    let st = state(&w);
    assert_eq!(st["phase"], "exited", "{st}");
    assert_eq!(st["exit_code"], 9, "{st}");
    assert!(st["exit_reason"].as_str().unwrap_or_default().contains("oci session authenticate"), "{st}");
    assert_no_secrets(&log(&w), &[&token, &w.read(&w.token_path())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_given_as_flags_never_reach_the_daemons_command_line_and_control_needs_none() {
    let w = World::new().await;
    // The exchange app's secret only on the command line, as a user might pass it once.
    w.write_manager_ini(&[("client_secret", "")]);
    w.seed_token(3600);
    w.seed_refresh_token();
    let secret = w.cfg.exchange_client_secret.clone();
    let out = woci(&w, &["--client-secret", &secret, "--daemon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid: i32 = stdout(&out).trim().parse().expect("the daemon's pid on stdout");
    let _guard = DaemonGuard(Some(pid));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("the daemon runs");
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(!cmdline.contains(&secret), "the daemon's argv shows the secret: {cmdline}");
    assert!(cmdline.contains("--daemon-run"), "{cmdline}");
    // Control commands without the secret: status says what a call would lack, stop works.
    let st = woci(&w, &["--daemon-status"]).await;
    assert_eq!(st.status.code(), Some(0), "{}", stderr(&st));
    let status = woci(&w, &["--status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status JSON");
    assert_eq!(v["daemon"]["running"], true);
    assert!(
        v["reason"].as_str().unwrap_or_default().contains("missing required options for profile P: client_secret"),
        "{v}"
    );
    let stop = woci(&w, &["--stop-daemon"]).await;
    assert_eq!(stop.status.code(), Some(0), "{}", stderr(&stop));
    assert_no_secrets(&format!("{}{}{}", stderr(&out), stderr(&st), stderr(&stop)), &[&secret]);
}

/// A process that is not a daemon, killed when the test ends.
struct Bystander(std::process::Child);

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Python woci's `woci --daemon session authenticate`: a login (a new session, even beside a
/// valid one), then the daemon, instead of exit 2 (round 85 F2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_session_authenticate_logs_in_then_starts_the_daemon() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let out = run({
        let mut c = w.woci_with_browser();
        c.args(["--daemon", "session", "authenticate", "--profile", "P"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid: i32 = stdout(&out).trim().parse().expect("the daemon's pid");
    let _guard = DaemonGuard(Some(pid));
    assert_eq!(w.emu.stats().auth_code_grants, 1, "logged in first");
    let out = woci(&w, &["--stop-daemon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A Python woci daemon still running (it writes its bare pid and never locks the file) is named
/// by `--daemon-status`, keeps woci's own daemon from starting beside it (both would spend one
/// refresh token), and `--stop-daemon` stops it as the Python woci's own would (round 85 F1).
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_woci_daemon_still_running_is_named_refused_and_stopped() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let pid_file = w.session_dir().join("woci_refresh.pid");
    // What its daemon looks like: Python running the `woci` script with `--daemon`. Beside it, a
    // Python program that only has "woci" in its arguments (a reused pid): never signalled.
    let script = w.home().join("bin/woci");
    write_exec(&script, "import time\ntime.sleep(120)\n");
    let notes = w.home().join("woci-notes");
    let webhook = w.home().join("bin/webhook.py");
    write_exec(&webhook, "import time\ntime.sleep(120)\n");
    // (`-c` with "woci" after it; another script given `woci --daemon` as its arguments.)
    let decoys: [&[&std::ffi::OsStr]; 2] = [
        &["-c".as_ref(), "import time; time.sleep(120)".as_ref(), notes.as_os_str(), "--daemon".as_ref()],
        &[webhook.as_os_str(), "woci".as_ref(), "--daemon".as_ref()],
    ];
    for args in decoys {
        let mut other = python_running(&w, args).await;
        std::fs::write(&pid_file, other.0.id().to_string()).unwrap();
        let out = woci(&w, &["--stop-daemon"]).await;
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(other.0.try_wait().unwrap().is_none(), "not the Python woci, yet signalled: {args:?}");
    }
    // Interpreter options before the script (`-W ignore` takes a value) do not hide it (round 88 F1).
    let args: [&std::ffi::OsStr; 5] =
        ["-W".as_ref(), "ignore".as_ref(), "-u".as_ref(), script.as_os_str(), "--daemon".as_ref()];
    let mut python = python_running(&w, &args).await;
    let pid = python.0.id();
    std::fs::write(&pid_file, pid.to_string()).unwrap();
    let named = format!("a Python woci daemon (pid {pid}) still runs for profile `P`");
    let out = woci(&w, &["--daemon-status"]).await;
    assert!(stdout(&out).contains(&named), "{}", stdout(&out));
    let out = woci(&w, &["--daemon-status", "--json"]).await;
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["daemon"]["python_daemon"], pid);
    let out = woci(&w, &["--daemon"]).await;
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(stderr(&out).contains(&named), "{}", stderr(&out));
    assert_eq!(w.read(&pid_file), pid.to_string(), "its pid file kept");
    // A call beside it runs, and says so: both would spend one refresh token (round 86 N4).
    let out = woci(&w, &["os", "ns", "get"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("woci: warning: {named}")), "{}", stderr(&out));
    let out = woci(&w, &["--stop-daemon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = format!("stopped the Python woci daemon of profile `P` (pid {pid})");
    assert!(stderr(&out).contains(&said), "{}", stderr(&out));
    let ended = tokio::task::spawn_blocking(move || python.0.wait().unwrap()).await.unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(ended.signal(), Some(libc::SIGTERM));
    assert!(!pid_file.exists(), "its pid file removed, as the Python woci's own stop does");
}

/// `python3 ARGS` once the interpreter runs (`python3` may be a shim that starts it a moment later).
#[cfg(target_os = "linux")]
async fn python_running(w: &World, args: &[&std::ffi::OsStr]) -> Bystander {
    let child = Bystander(std::process::Command::new("python3").args(args).spawn().unwrap());
    let pid = child.0.id();
    let python =
        || std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e.to_string_lossy().contains("python"));
    wait_for(w, "python to run", python).await;
    child
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_daemons_pid_reused_by_another_process_is_stale_and_never_signalled() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let mut bystander = Bystander(std::process::Command::new("sleep").arg("120").spawn().unwrap());
    let pid = bystander.0.id();
    // The dead daemon's files: its pid, now the bystander's, and its own start time (clock ticks
    // since boot; the bystander started later).
    std::fs::write(w.session_dir().join("woci_refresh.pid"), format!("{pid}\n")).unwrap();
    std::fs::write(
        state_path(&w),
        serde_json::json!({"pid": pid, "pid_start": 1, "profile": "P", "phase": "running", "started": 1}).to_string(),
    )
    .unwrap();
    // Someone holds the pid lock at that moment (a racing probe of an older woci).
    let holder = std::fs::File::open(w.session_dir().join("woci_refresh.pid")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a file this test opened.
    assert_eq!(unsafe { libc::flock(holder.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);

    let out = woci(&w, &["--daemon-status"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!("stale pid file (pid {pid}) ignored")), "{}", stdout(&out));
    let out = woci(&w, &["--stop-daemon"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("pid {pid} is another process now")), "{}", stderr(&out));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(bystander.0.try_wait().unwrap().is_none(), "the bystander was signalled");
    drop(holder);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_pid_file_is_refused_and_its_target_untouched() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("precious");
    std::fs::write(&target, "keep me\n").unwrap();
    std::os::unix::fs::symlink(&target, w.session_dir().join("woci_refresh.pid")).unwrap();
    for args in [&["--daemon"][..], &["--daemon-status"], &["--stop-daemon"]] {
        let out = woci(&w, args).await;
        // Should a daemon have started anyway, it is stopped by its pid.
        let _guard = DaemonGuard(stdout(&out).trim().parse().ok());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(err.contains("woci_refresh.pid` is a symbolic link"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
}

/// The daemon's log lines that report a settings reload.
fn reload_lines(w: &World) -> Vec<String> {
    log(w)
        .lines()
        .filter(|l| l.contains("settings reloaded") || l.contains("settings not reloaded"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_an_ini_change_reload_the_settings_and_keep_the_pid() {
    // 6 s tokens: once it renews, the daemon renews every few seconds.
    let w = World::with_config(Config { upst_ttl: Duration::from_secs(6), ..Config::default() }).await;
    let prom_dir = w.home().join("textfile");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let prom = prom_dir.join("woci.prom");
    // The daemon starts with a client secret the identity domain no longer takes (rotated
    // there), and a token valid for 25 s that it renews 5 s before the end.
    let base = w.read(&w.manager_ini_path()) + "refresh_safety_window = 5\n";
    let right = w.cfg.exchange_client_secret.clone();
    let wrong = "x".repeat(right.len());
    let metrics_line = format!("metrics_file = {}\n", prom.display());
    let start_ini = base.replace(&format!("\nclient_secret = {right}\n"), &format!("\nclient_secret = {wrong}\n"))
        + &format!("#{}\n", " ".repeat(metrics_line.len() - 2));
    assert_ne!(start_ini, base);
    std::fs::write(w.manager_ini_path(), &start_ini).unwrap();
    w.seed_token(25);
    let rt = w.seed_refresh_token();
    let (_guard, pid) = start(&w).await;

    // SIGHUP: the right secret (named, never shown) and a metrics file. The file keeps its size
    // and modification time, so only the signal can make the daemon read it.
    let fixed_ini = base.clone() + &metrics_line;
    assert_eq!(fixed_ini.len(), start_ini.len());
    let mtime = std::fs::metadata(w.manager_ini_path()).unwrap().modified().unwrap();
    std::fs::write(w.manager_ini_path(), &fixed_ini).unwrap();
    std::fs::File::options().write(true).open(w.manager_ini_path()).unwrap().set_modified(mtime).unwrap();
    // SAFETY: kill(2) on the daemon this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    wait_for(&w, "the SIGHUP reload line", || !reload_lines(&w).is_empty()).await;
    let lines = reload_lines(&w);
    assert_eq!(
        lines[0].split_once(": ").unwrap().1,
        format!("settings reloaded (SIGHUP): `client_secret` changed, `metrics_file` default → `{}`", prom.display()),
        "{lines:#?}"
    );
    assert!(lines[0].contains(&format!("woci-daemon[{pid}]")), "{}", lines[0]);
    assert!(alive(pid), "SIGHUP no longer stops the daemon");
    // The renewal that comes due uses the reloaded secret, and is counted in the reloaded file.
    wait_for(&w, "a renewal counted in the new metrics file", || {
        w.read(&prom).contains("woci_renewals_total{profile=\"P\",result=\"ok\"}")
    })
    .await;
    assert!(!w.read(&prom).contains("result=\"auth\""), "{}", w.read(&prom));

    // The INI's modification time alone; a mistyped key is warned of as a call would.
    std::fs::write(w.manager_ini_path(), fixed_ini.clone() + "expiring_warning = 2h\nexpiring_warnin = 3h\n").unwrap();
    wait_for(&w, "the reload after the INI changed", || reload_lines(&w).len() > 1).await;
    let ini = w.manager_ini_path().display().to_string();
    let line = reload_lines(&w)[1].split_once(": ").unwrap().1.to_owned();
    assert!(
        line.starts_with(&format!("settings reloaded (`{ini}` changed): `expiring_warning` default → `2h`; warning: "))
            && line.contains("`expiring_warnin`")
            && line.contains("did you mean `expiring_warning`"),
        "{line}"
    );
    assert!(alive(pid));
    assert_eq!(w.read(&w.session_dir().join("woci_refresh.pid")).trim(), pid.to_string());

    // An INI that does not resolve: one line, and the daemon renews on with what it has.
    std::fs::write(w.manager_ini_path(), fixed_ini.clone() + "expiring_warning = soon\n").unwrap();
    wait_for(&w, "the refused reload", || reload_lines(&w).len() > 2).await;
    let line = reload_lines(&w).pop().unwrap();
    assert!(line.contains("settings not reloaded (`") && line.contains("`expiring_warning`"), "{line}");
    // `--status --all` says so: the profile's settings are broken, its daemon runs.
    let out = woci(&w, &["--status", "--all", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["profiles"][0];
    assert_eq!((p["state"].as_str(), p["daemon"].as_str()), (Some("impossible"), Some("running")), "{v}");
    let ok = |w: &World| {
        w.read(&prom)
            .lines()
            .find_map(|l| l.strip_prefix("woci_renewals_total{profile=\"P\",result=\"ok\"} "))
            .map_or(0, |v| v.parse::<u64>().unwrap())
    };
    let before = ok(&w);
    wait_for(&w, "another renewal after the refused reload", || ok(&w) > before).await;
    assert_eq!(reload_lines(&w).len(), 3, "one line per reload: {:#?}", reload_lines(&w));
    // An INI an editor emptied mid-save would take the IdP settings away for good: refused too.
    std::fs::write(w.manager_ini_path(), "").unwrap();
    wait_for(&w, "the refused reload of the empty INI", || reload_lines(&w).len() > 3).await;
    let line = reload_lines(&w).pop().unwrap();
    assert!(line.contains("settings not reloaded") && line.contains("idp → session_refresh"), "{line}");
    let before = ok(&w);
    wait_for(&w, "a renewal with the IdP settings kept", || ok(&w) > before).await;
    // The control commands need settings that resolve.
    std::fs::write(w.manager_ini_path(), fixed_ini).unwrap();
    let out = woci(&w, &["--daemon-status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["daemon"]["pid"], pid, "the same daemon runs");

    let log = log(&w);
    assert!(!log.contains(&wrong) && !log.contains(&right), "{log}");
    assert_no_secrets(&log, &[&rt, &w.read(&w.token_path())]);
    let out = woci(&w, &["--stop-daemon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A state file the daemon could not write (a folder in its place) would leave the start waiting
/// for a report that never comes while the daemon runs: refused at once, nothing started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_path_that_is_no_file_is_refused_before_anything_starts() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    std::fs::create_dir_all(state_path(&w)).unwrap();
    let started = std::time::Instant::now();
    let out = woci(&w, &["--daemon"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a regular file"), "{}", stderr(&out));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!w.session_dir().join("woci_refresh.pid").exists(), "no daemon was started");
}

/// The exchange refusing the client once (a transient 401, a secret being rotated) leaves the
/// refresh token good: the daemon retries instead of ending for good. Settings that stop reading
/// while it runs do not stop `--daemon-status` or `--stop-daemon`; a stop while a renewal waits
/// for a late answer waits for that renewal instead of killing it, and the session survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_broken_settings_and_a_stop_mid_renewal_keep_the_session() {
    let w = World::with_config(Config { upst_ttl: Duration::from_secs(6), ..Config::default() }).await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let (_guard, pid) = start(&w).await;
    w.emu.set_fault(Endpoint::Exchange, Fault::status(401).times(1));
    let before = w.emu.stats().exchanges;
    wait_for(&w, "a renewal after the refused one", || w.emu.stats().exchanges >= before + 2).await;
    assert!(alive(pid), "the daemon ended on one refusal:\n{}", log(&w));
    assert!(log(&w).contains("renewal failed (auth), retrying in"), "{}", log(&w));

    let ini = w.read(&w.manager_ini_path());
    std::fs::write(w.manager_ini_path(), format!("{ini}expiring_warning = soon\n")).unwrap();
    let out = woci(&w, &["--daemon-status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("`expiring_warning`"), "{}", stderr(&out));
    std::fs::write(w.manager_ini_path(), &ini).unwrap();

    // The IdP rotates the refresh token, then answers 12 s late (past the stop's 10 s grace).
    w.emu.set_fault(
        Endpoint::IdpToken,
        Fault::new(FaultAction::None).times(1).with_reply_delay(Duration::from_secs(12)),
    );
    let grants = w.emu.stats().refresh_grants;
    wait_for(&w, "the daemon to send the slow refresh grant", || w.emu.stats().refresh_grants > grants).await;
    let out = woci(&w, &["--stop-daemon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("finishing a renewal") && stderr(&out).contains("stopped the daemon"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("killing"), "{}", stderr(&out));
    let out = woci(&w, &["os", "ns", "get"]).await;
    assert_eq!(out.status.code(), Some(0), "the session survived the stop: {}", stderr(&out));
}

/// A descriptor the starting shell passed on (`woci --daemon 7>&1 | cat`) is not held for the
/// daemon's life, which would keep the pipeline from ending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_keeps_no_inherited_descriptor() {
    use std::os::unix::process::CommandExt;
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let mut c = w.woci_std();
    c.args(["--daemon", "--profile", "P"]);
    // SAFETY: dup2(2) in the child before exec, as a shell's `7>&1` does.
    unsafe {
        c.pre_exec(|| {
            libc::dup2(1, 7);
            Ok(())
        });
    }
    // `output()` reads stdout to its end: a daemon holding fd 7 (a copy of that pipe) would keep
    // it open for its whole life.
    let out = tokio::time::timeout(Duration::from_secs(60), tokio::task::spawn_blocking(move || c.output().unwrap()))
        .await
        .expect("the pipeline ended")
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid: i32 = stdout(&out).trim().parse().unwrap();
    let _guard = DaemonGuard(Some(pid));
    let out = woci(&w, &["--stop-daemon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// A FIFO where the daemon's log belongs is refused at once (exit 2), never waited on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_as_the_log_is_refused_not_waited_on() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let log = w.session_dir().join("woci-daemon.log");
    let c = std::ffi::CString::new(log.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut cmd = w.woci();
    cmd.args(["--daemon", "--profile", "P"]).timeout(Duration::from_secs(20));
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("woci-daemon.log") && stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
}

/// A long run that could not renew is refused at its start, not half an hour later: a daemon
/// whose passphrase variable is unset (exit 2), one whose passphrase does not open the encrypted
/// refresh token, an empty one's included (exit 8), an `--exec` with the wrong passphrase, an
/// empty or an unset variable (exit 8, 8, 2: the program never runs), or no passphrase setting
/// for an encrypted refresh token (exit 8, both); and a reload that names a
/// variable the daemon lacks keeps the current settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_runs_that_could_not_renew_are_refused_at_their_start() {
    let w = World::new().await;
    w.seed_token(3600);
    let rt = w.seed_refresh_token();
    let sealed = woci::crypto::seal(&woci::secret::SecretString::from(rt.as_str()), &"right".into());
    std::fs::write(w.session_dir().join("refresh_token"), sealed).unwrap();
    let with = |args: &[&str], pass: Option<&str>| {
        let mut c = w.woci();
        c.args(["--refresh-token-passphrase-env", "WOCI_RT_PASSPHRASE"]).args(args).args(["--profile", "P"]);
        match pass {
            Some(p) => c.env("WOCI_RT_PASSPHRASE", p),
            None => c.env_remove("WOCI_RT_PASSPHRASE"),
        };
        run(c)
    };
    let out = with(&["--daemon"], None).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not set in the daemon's environment"), "{}", stderr(&out));
    for pass in ["wrong", ""] {
        let out = with(&["--daemon"], Some(pass)).await;
        assert_eq!(out.status.code(), Some(8), "{pass:?}: {}", stderr(&out));
    }
    let ran = w.home().join("ran");
    let script = format!("touch '{}'", ran.display());
    for (pass, code, says) in [
        (Some("wrong"), 8, "does not open it"),
        (Some(""), 8, "is empty, which opens no encrypted refresh token"),
        (None, 2, "is not set, so the first renewal of this run would fail"),
    ] {
        let out = with(&["--exec", "--", "sh", "-c", &script], pass).await;
        assert_eq!(out.status.code(), Some(code), "{pass:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{pass:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("stored unencrypted"), "{pass:?}: {}", stderr(&out));
        assert!(!ran.exists(), "the program ran with {pass:?}");
    }
    // No passphrase setting at all (a login given the flag sealed it; round 93 F1): exit 8 too.
    for args in [&["--daemon"][..], &["--exec", "--", "sh", "-c", &script]] {
        let out = run({
            let mut c = w.woci();
            c.env("WOCI_RT_PASSPHRASE", "right").args(args).args(["--profile", "P"]);
            c
        })
        .await;
        assert_eq!(out.status.code(), Some(8), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("it is encrypted and no passphrase is configured, so the first renewal of this run would fail; give it in a variable"), "{}", stderr(&out));
        // No prompt offered where nobody can answer it (round 95 N2).
        let why = if args[0] == "--daemon" { "a daemon cannot ask for it" } else { "no terminal here to ask on" };
        assert!(stderr(&out).contains(why) && !stderr(&out).contains("prompt"), "{}", stderr(&out));
        assert!(!ran.exists(), "the program ran without a passphrase setting");
    }
    // With a daemon keeping the session fresh, a shell without the variable runs its program.
    let out = with(&["--daemon"], Some("right")).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = with(&["--exec", "--", "sh", "-c", &script], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(ran.exists(), "the program did not run beside the daemon");
    std::fs::remove_file(&ran).unwrap();
    // So with a wrong passphrase: warned, and run (round 95 N5).
    let out = with(&["--exec", "--", "sh", "-c", &script], Some("wrong")).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("the run goes on, as another woci (the profile's daemon)"), "{}", stderr(&out));
    assert!(ran.exists(), "the program did not run beside the daemon");
    assert_eq!(with(&["--stop-daemon"], Some("right")).await.status.code(), Some(0));
    std::fs::remove_file(&ran).unwrap();

    // A refresh token that cannot be read, or none (no login in the background), starts nothing.
    let rt_path = w.session_dir().join("refresh_token");
    std::fs::remove_file(&rt_path).unwrap();
    std::fs::create_dir(&rt_path).unwrap();
    for args in [&["--daemon"][..], &["--exec", "--", "sh", "-c", &script]] {
        let out = with(args, Some("right")).await;
        assert_eq!(out.status.code(), Some(7), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("the first renewal of this run would fail"), "{}", stderr(&out));
    }
    assert!(!ran.exists(), "the program ran");
    std::fs::remove_dir(&rt_path).unwrap();
    let out = with(&["--daemon"], Some("right")).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no stored refresh token"), "{}", stderr(&out));
    // A short run may not need a renewal: warned, and run.
    let out = with(&["--exec", "--", "sh", "-c", &script], Some("right")).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("this run cannot renew its session") && ran.exists(), "{}", stderr(&out));
    std::fs::remove_file(&ran).unwrap();
    // So with someone who could log in (`BROWSER`): a run does not log in once its program runs.
    let out = run({
        let mut c = w.woci_with_browser();
        c.env("WOCI_RT_PASSPHRASE", "right").args(["--refresh-token-passphrase-env", "WOCI_RT_PASSPHRASE"]);
        c.args(["--exec", "--", "sh", "-c", &script]);
        c
    })
    .await;
    assert!(stderr(&out).contains("this run cannot renew its session") && ran.exists(), "{}", stderr(&out));
    std::fs::remove_file(&ran).unwrap();

    // Started right (plain settings); the INI then names a variable it does not have.
    std::fs::write(w.session_dir().join("refresh_token"), &rt).unwrap();
    let (_guard, pid) = start(&w).await;
    let ini = w.read(&w.manager_ini_path());
    std::fs::write(w.manager_ini_path(), format!("{ini}refresh_token_passphrase_env = NOT_IN_ITS_ENV\n")).unwrap();
    wait_for(&w, "the reload to be refused", || log(&w).contains("settings not reloaded")).await;
    assert!(alive(pid) && log(&w).contains("NOT_IN_ITS_ENV"), "{}", log(&w));
}

/// A user starting over deletes the session folder (pid file and all) and logs in again; the
/// daemon renews on from the new login and writes its pid file again, so that `--daemon-status`
/// finds it, a second `--daemon` is refused, and `--stop-daemon` stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_whose_session_folder_was_deleted_stays_visible_and_stoppable() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let (_guard, pid) = start(&w).await;
    std::fs::remove_dir_all(w.session_dir()).unwrap();
    // The new login: a new session folder with a refresh token in it.
    w.seed_refresh_token();
    let pid_file = w.session_dir().join("woci_refresh.pid");
    wait_for(&w, "the pid file written again", || w.read(&pid_file).trim() == pid.to_string()).await;
    let out = woci(&w, &["--daemon-status"]).await;
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&pid.to_string()), "{}", stdout(&out));
    let out = woci(&w, &["--daemon"]).await;
    assert_eq!(out.status.code(), Some(10), "a second daemon: {}", stderr(&out));
    let out = woci(&w, &["--stop-daemon"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z") {
        assert!(Instant::now() < deadline, "the daemon {pid} survived --stop-daemon");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(log(&w).contains("the pid file was gone"), "{}", log(&w));
}

/// A failure hook that hangs runs beside the daemon, not in its way: the retry comes on time
/// (2 s), not after the hook's 10 s, and the hook is still stopped at its deadline. What it
/// printed is in the daemon's log with the time and pid every line there has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_failure_hook_holds_up_no_retry() {
    let w = World::with_config(Config { upst_ttl: Duration::from_secs(6), ..Config::default() }).await;
    let pid_file = w.home().join("hook.pid");
    let script = w.home().join("bin").join("hanging-hook");
    write_exec(&script, &format!("#!/bin/sh\necho $$ > '{}'\necho hook-says-hi\nexec sleep 300\n", pid_file.display()));
    w.write_manager_ini(&[("on_renewal_failure", &script.display().to_string())]);
    w.seed_token(-10);
    w.seed_refresh_token();
    let (_guard, _pid) = start(&w).await;
    // One renewal fails (a sent grant is not sent again within it); the retry succeeds.
    let mut fault = Fault::status(503);
    fault.count = Some(1);
    w.emu.set_fault(Endpoint::IdpToken, fault);
    let ok_after_failure =
        |text: &str| text.find("renewal failed (network)").and_then(|f| text[f..].find("renewal ok").map(|o| f + o));
    wait_for(&w, "a failed renewal, then a good one", || ok_after_failure(&log(&w)).is_some()).await;
    let text = log(&w);
    let retried = ok_after_failure(&text).unwrap();
    assert!(
        text.find("did not finish within 10s").is_none_or(|stopped| stopped > retried),
        "the retry waited for the hook:\n{text}"
    );
    wait_for(&w, "the hook to be stopped at its deadline", || log(&w).contains("did not finish within 10s")).await;
    let pid: i32 = w.read(&pid_file).trim().parse().expect("the hook ran");
    let said = log(&w);
    let line =
        said.lines().find(|l| l.ends_with("hook on_renewal_failure: hook-says-hi")).unwrap_or_else(|| panic!("{said}"));
    assert!(line.contains(" woci-daemon[") && !line.starts_with("woci:"), "{line}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z") {
        assert!(Instant::now() < deadline, "the hook {pid} survived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
