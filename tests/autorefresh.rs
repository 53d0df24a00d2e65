//! `--auto-refresh` / `--exec` process handling with the real binary: the child gets the proxy
//! settings, signals reach it, its exit code is woci's, and nothing is left behind.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A world whose session is renewed once (so the profile's key pair exists), with a private TMPDIR.
async fn world() -> (World, tempfile::TempDir) {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let tmp = tempfile::tempdir().unwrap();
    (w, tmp)
}

/// `woci` with the harness's environment, a private TMPDIR and piped output.
fn woci_std(w: &World, tmp: &Path) -> Command {
    let mut c = w.woci_std();
    c.env("TMPDIR", tmp).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn alive(pid: i32) -> bool {
    // Signal 0 checks existence; a zombie of ours would still count, so reap first.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn nothing_left(tmp: &Path) -> bool {
    tmpdir_leftovers(tmp).is_empty()
}

const CHILD: &str = r#"
echo $$ > "$OUT/pid"
printf '%s\n' "$HTTPS_PROXY" > "$OUT/proxy"
printf '%s\n' "$REQUESTS_CA_BUNDLE" > "$OUT/bundle"
stat -c %a "$REQUESTS_CA_BUNDLE" > "$OUT/bundle_mode"
trap 'echo "$SIG" > "$OUT/got"; exit 42' "$SIG"
touch "$OUT/ready"
while :; do sleep 0.05; done
"#;

async fn signal_reaches_child(sig: i32, name: &str) {
    let (w, tmp) = world().await;
    let out = tempfile::tempdir().unwrap();
    let mut cmd = woci_std(&w, tmp.path());
    cmd.env("OUT", out.path()).env("SIG", name).args(["--auto-refresh", "--exec", "--", "sh", "-c", CHILD]);
    let child = cmd.spawn().unwrap();
    let ready = out.path().join("ready");
    tokio::task::spawn_blocking(move || wait_for(&ready)).await.unwrap();
    let child_pid: i32 = std::fs::read_to_string(out.path().join("pid")).unwrap().trim().parse().unwrap();

    // While it runs: the child talks through the proxy and trusts a private 0600 bundle.
    let proxy = std::fs::read_to_string(out.path().join("proxy")).unwrap();
    assert!(proxy.starts_with("http://") && proxy.contains("@127.0.0.1:"), "HTTPS_PROXY={proxy}");
    let bundle = std::fs::read_to_string(out.path().join("bundle")).unwrap();
    let parent = proxy_parent(tmp.path());
    assert!(bundle.trim().starts_with(parent.to_str().unwrap()), "bundle {bundle} is in the private folder");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&parent).unwrap().permissions().mode() & 0o777, 0o700);
    assert_eq!(std::fs::read_to_string(out.path().join("bundle_mode")).unwrap().trim(), "600");

    unsafe { libc::kill(child.id() as i32, sig) };
    let status = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(
        status.status.code(),
        Some(42),
        "woci exits with the child's code: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert_eq!(std::fs::read_to_string(out.path().join("got")).unwrap().trim(), name, "the child got the signal");
    assert!(!alive(child_pid), "the child is gone");
    assert!(nothing_left(tmp.path()), "temporary files were left behind: {:?}", tmpdir_leftovers(tmp.path()));
    assert!(!String::from_utf8_lossy(&status.stderr).contains(proxy.trim()), "the proxy secret is not logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_reaches_the_child() {
    signal_reaches_child(libc::SIGTERM, "TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_reaches_the_child() {
    signal_reaches_child(libc::SIGINT, "INT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reaches_the_child() {
    signal_reaches_child(libc::SIGHUP, "HUP").await;
}

/// A program that counts each delivery of `$SIG`, says its process and group, and exits 42 a
/// second after the first (a second delivery, woci's, would come within it).
const COUNTER: &str = r#"
import os, signal, sys, time
out, got = os.environ["OUT"], []
signal.signal(getattr(signal, "SIG" + os.environ["SIG"]), lambda *_: got.append(1))
with open(out + "/group", "w") as f:
    f.write(f"{os.getpid()} {os.getpgrp()}")
open(out + "/ready", "w").close()
deadline = time.time() + 60
while not got and time.time() < deadline:
    time.sleep(0.01)
time.sleep(1)
# Whole or not at all: the test waits for the file, then reads it.
with open(out + "/got.tmp", "w") as f:
    f.write(str(len(got)))
os.rename(out + "/got.tmp", out + "/got")
sys.exit(42)
"#;

/// A CI runner cancelling a job signals the job's process group (woci's): the program gets the
/// signal once, not once from the runner and again from woci — a second SIGINT or SIGTERM is
/// Terraform's "exiting immediately". Without a terminal the program leads a group of its own,
/// which only woci's forward reaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_to_the_process_group_reaches_the_program_once() {
    use std::os::unix::process::CommandExt;
    for (sig, name) in [(libc::SIGTERM, "TERM"), (libc::SIGINT, "INT")] {
        let (w, tmp) = world().await;
        let out = tempfile::tempdir().unwrap();
        let mut cmd = woci_std(&w, tmp.path());
        cmd.env("OUT", out.path()).env("SIG", name).args(["--auto-refresh", "--exec", "--", "python3", "-c", COUNTER]);
        // The job's group, woci leading it, as a runner starts a job.
        cmd.process_group(0);
        let child = cmd.spawn().unwrap();
        let ready = out.path().join("ready");
        tokio::task::spawn_blocking(move || wait_for(&ready)).await.unwrap();
        // SAFETY: kill(2) on the process group of the woci this test started.
        assert_eq!(unsafe { libc::kill(-(child.id() as i32), sig) }, 0);
        let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
        assert_eq!(o.status.code(), Some(42), "{name}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(std::fs::read_to_string(out.path().join("got")).unwrap(), "1", "{name}: delivered once");
        let group = std::fs::read_to_string(out.path().join("group")).unwrap();
        let (pid, pgid) = group.split_once(' ').unwrap();
        assert_eq!(pid, pgid, "{name}: the program leads its own group");
    }
}

/// A runner's cancel ends with SIGKILL to the job's group, which reaches woci but not the
/// program's own group: the program, which ignored the SIGTERM before it, dies with woci as it
/// would in the group, rather than run on without the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_to_the_group_ends_a_program_that_ignores_sigterm() {
    use std::os::unix::process::CommandExt;
    let (w, tmp) = world().await;
    let out = tempfile::tempdir().unwrap();
    let mut cmd = woci_std(&w, tmp.path());
    let script = "trap '' TERM; echo $$ > \"$OUT/pid\"; touch \"$OUT/ready\"; while :; do sleep 0.05; done";
    cmd.env("OUT", out.path()).args(["--auto-refresh", "--exec", "--", "sh", "-c", script]).process_group(0);
    let mut child = cmd.spawn().unwrap();
    let ready = out.path().join("ready");
    tokio::task::spawn_blocking(move || wait_for(&ready)).await.unwrap();
    let program: i32 = std::fs::read_to_string(out.path().join("pid")).unwrap().trim().parse().unwrap();
    let group = -(child.id() as i32);
    // SAFETY: kill(2) on the process group of the woci this test started.
    assert_eq!(unsafe { libc::kill(group, libc::SIGTERM) }, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(alive(program), "the program ignores SIGTERM");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(group, libc::SIGKILL) }, 0);
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(program) {
        if Instant::now() > deadline {
            // SAFETY: kill(2) on the program this test started, so that a failure leaves nothing.
            unsafe { libc::kill(program, libc::SIGKILL) };
            panic!("the program outlived woci's SIGKILL");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs shell `line` in a terminal with [`COUNTER`] as `$COUNTER` counting SIGINTs, types Ctrl-C
/// `pause` after the program is ready, and checks that the program got it once and woci did not
/// pass it on again; returns what `script` ended with.
async fn ctrl_c_typed_reaches_the_program_once(w: &World, line: &str, pause: Duration) -> std::process::Output {
    use std::io::Write;
    let out = tempfile::tempdir().unwrap();
    let mut c = w.in_a_terminal(line);
    c.env("OUT", out.path()).env("SIG", "INT").env("COUNTER", COUNTER).stdin(Stdio::piped());
    let mut child = c.spawn().expect("util-linux `script` runs (it provides the terminal)");
    let ready = out.path().join("ready");
    tokio::task::spawn_blocking(move || wait_for(&ready)).await.unwrap();
    tokio::time::sleep(pause).await;
    // Typed at the terminal: its line discipline signals the foreground group.
    let mut keys = child.stdin.take().unwrap();
    keys.write_all(b"\x03").unwrap();
    keys.flush().unwrap();
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    drop(keys);
    let shown = String::from_utf8_lossy(&o.stdout);
    assert_eq!(std::fs::read_to_string(out.path().join("got")).unwrap(), "1", "delivered once: {shown}");
    // (Two deliveries close together may count as one: woci's own word is what cannot miss.)
    assert!(shown.contains("started child") && !shown.contains("forwarding signal"), "{shown}");
    o
}

/// The program as the terminal tests run it, woci saying what it passes on.
fn counter_under_woci() -> String {
    format!("'{}' --log-level debug --auto-refresh --exec -- python3 -c \"$COUNTER\" < /dev/null", woci_bin().display())
}

/// Ctrl-C at a terminal reaches the whole foreground group, the program's too: woci does not pass
/// it on again, even when its stdin is no terminal (`woci … < file`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_a_terminal_reaches_the_program_once() {
    let (w, _tmp) = world().await;
    let o = ctrl_c_typed_reaches_the_program_once(&w, &counter_under_woci(), Duration::ZERO).await;
    assert_eq!(o.status.code(), Some(42), "{}", String::from_utf8_lossy(&o.stdout));
}

/// `woci … --debug` (oci's output relayed through the redactor) after a renewal in the same call:
/// a CI cancel's SIGTERM is passed on and woci ends with oci's code, rather than ending at once by
/// the default action the renewal kept for its held signals, oci killed without its cleanup
/// (review of round 105).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_reaches_oci_relayed_for_debug_after_a_renewal() {
    let (w, tmp) = world().await;
    let out = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("trapping-oci");
    write_exec(
        &oci,
        "#!/bin/sh\ntrap 'echo TERM > \"$OUT/got\"; exit 7' TERM\ntouch \"$OUT/ready\"\nwhile :; do sleep 0.05; done\n",
    );
    let mut cmd = woci_std(&w, tmp.path());
    cmd.env("OUT", out.path()).env("WOCI_OCI_COMMAND", &oci).args(["os", "ns", "get", "--debug"]);
    let child = cmd.spawn().unwrap();
    let ready = out.path().join("ready");
    tokio::task::spawn_blocking(move || wait_for(&ready)).await.unwrap();
    assert_eq!(w.emu.stats().exchanges, 1, "the call renewed first");
    // SAFETY: kill(2) on the woci this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(o.status.code(), Some(7), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(out.path().join("got")).unwrap().trim(), "TERM");
}

/// A job started in the background (`&`) and brought to the foreground (`fg`): Ctrl-C then
/// reaches its whole group, the program's too, so woci does not pass it on again (it looked at
/// its place once, at the start; review of round 105: Terraform took the second as "exit now").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_after_fg_reaches_the_program_once() {
    let (w, _tmp) = world().await;
    let line = format!("set -m; {} & while [ ! -e \"$OUT/ready\" ]; do sleep 0.1; done; fg %1", counter_under_woci());
    // `fg` gives the job the terminal a moment after the program is ready.
    ctrl_c_typed_reaches_the_program_once(&w, &line, Duration::from_millis(1500)).await;
}

/// A terminal that closes (`ssh -t host woci …` whose connection drops) hangs up its session's
/// leader alone, woci when the shell exec'ed it: woci passes the SIGHUP on, so the program ends
/// as without woci rather than run on unattended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_terminal_reaches_the_program_when_woci_leads_the_session() {
    let (w, _tmp) = world().await;
    let out = tempfile::tempdir().unwrap();
    let mut c = w.woci_in_a_terminal("--auto-refresh --exec -- python3 -c \"$COUNTER\"");
    c.env("OUT", out.path()).env("SIG", "HUP").env("COUNTER", COUNTER);
    let mut child = c.stdin(Stdio::piped()).spawn().expect("util-linux `script` runs (it provides the terminal)");
    let ready = out.path().join("ready");
    tokio::task::spawn_blocking(move || wait_for(&ready)).await.unwrap();
    // `script` gone, its end of the terminal closes: the kernel hangs the session up.
    child.kill().unwrap();
    let _ = child.wait();
    let got = out.path().join("got");
    tokio::task::spawn_blocking(move || wait_for(&got)).await.unwrap();
    assert_eq!(std::fs::read_to_string(out.path().join("got")).unwrap(), "1", "delivered once");
}

/// `nohup woci --auto-refresh …`: a signal the caller ignored stays ignored by woci and by the
/// child (a closed SSH session must not end the upload), and a child ended by a signal ends woci
/// by the same signal (a parent sees a signal death; a shell loop stops at Ctrl-C).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_signals_stay_ignored_and_a_signal_death_is_passed_on() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let (w, tmp) = world().await;
    let mut cmd = woci_std(&w, tmp.path());
    cmd.args(["--auto-refresh", "--exec", "--", "sh", "-c", "grep SigIgn /proc/self/status; kill -HUP $PPID; sleep 1"]);
    // SAFETY: signal(2) in the child before exec, as nohup(1) does.
    unsafe {
        cmd.pre_exec(|| {
            // A script's `&` job ignores QUIT too; `trap '' USR1 USR2` the others.
            for sig in [libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2] {
                libc::signal(sig, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "woci survived the HUP: {}", String::from_utf8_lossy(&out.stderr));
    let mask = String::from_utf8_lossy(&out.stdout);
    let bits = u64::from_str_radix(mask.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    for (sig, name) in
        [(libc::SIGHUP, "HUP"), (libc::SIGQUIT, "QUIT"), (libc::SIGUSR1, "USR1"), (libc::SIGUSR2, "USR2")]
    {
        assert_ne!(bits & (1 << (sig - 1)), 0, "the child ignores SIG{name}: {mask}");
    }

    let mut cmd = woci_std(&w, tmp.path());
    cmd.args(["--exec", "--", "sh", "-c", "kill -TERM $$"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{:?} {}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(nothing_left(tmp.path()), "cleaned up before ending by the signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_exit_code_and_argv_are_the_childs() {
    let (w, tmp) = world().await;
    let mut cmd = woci_std(&w, tmp.path());
    cmd.args(["--exec", "--", "sh", "-c", "printf '%s|' \"$@\"; exit 7", "sh", "--profile", "x y", "--client-id"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "--profile|x y|--client-id|",
        "arguments after -- are the program's, untouched"
    );
    assert!(nothing_left(tmp.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_resign_proxy_gives_the_child_no_proxy() {
    let (w, tmp) = world().await;
    let mut cmd = woci_std(&w, tmp.path());
    cmd.args(["--auto-refresh", "--no-resign-proxy", "--exec", "--", "sh", "-c", "printf '[%s]' \"$HTTPS_PROXY\""]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]");
}

/// The user's bypass list still keeps intranet hosts and the metadata service away from their
/// `HTTP_PROXY`; only entries that would skip the re-signing proxy go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_keeps_the_users_no_proxy_but_for_re_signed_hosts() {
    let (w, tmp) = world().await;
    let mut cmd = woci_std(&w, tmp.path());
    cmd.env("NO_PROXY", "169.254.169.254,.intranet.example,.oraclecloud.com").env_remove("no_proxy").args([
        "--auto-refresh",
        "--exec",
        "--",
        "sh",
        "-c",
        "printf '[%s][%s]' \"$NO_PROXY\" \"${no_proxy-unset}\"",
    ]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[169.254.169.254,.intranet.example][unset]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_program_is_127_and_leaves_nothing_behind() {
    let (w, tmp) = world().await;
    let mut cmd = woci_std(&w, tmp.path());
    cmd.args(["--auto-refresh", "--exec", "--", "/nonexistent/program"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(nothing_left(tmp.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_child_goes_and_the_next_start_sweeps_the_folder() {
    let (w, tmp) = world().await;
    let out = tempfile::tempdir().unwrap();
    let mut cmd = woci_std(&w, tmp.path());
    cmd.env("OUT", out.path()).env("SIG", "USR2").args(["--auto-refresh", "--exec", "--", "sh", "-c", CHILD]);
    let mut woci = cmd.spawn().unwrap();
    let killed = woci.id();
    let ready = out.path().join("ready");
    tokio::task::spawn_blocking(move || wait_for(&ready)).await.unwrap();
    let child_pid: i32 = std::fs::read_to_string(out.path().join("pid")).unwrap().trim().parse().unwrap();
    assert!(!nothing_left(tmp.path()), "the proxy folder exists while woci runs");

    woci.kill().unwrap();
    woci.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(child_pid) {
        assert!(Instant::now() < deadline, "the child outlived woci by 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!nothing_left(tmp.path()), "kill -9 leaves the folder (nothing could remove it)");

    let mut next = woci_std(&w, tmp.path());
    let list = format!(
        "d=\"$TMPDIR/woci-proxy-$(id -u)\"; ls \"$d\" | grep -v -c woci-proxy-$PPID-; ls \"$d\" | grep -c woci-proxy-{killed}-"
    );
    next.args(["--auto-refresh", "--exec", "--", "sh", "-c", &list]);
    let o = tokio::task::spawn_blocking(move || next.output().unwrap()).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "0\n0\n", "only the running woci's own folders are left");
    assert!(nothing_left(tmp.path()), "and those are removed at exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passphrase_variables_never_reach_the_child() {
    let (w, tmp) = world().await;
    w.write_manager_ini(&[("refresh_token_passphrase_env", "MY_RT_PASS")]);
    let mut cmd = woci_std(&w, tmp.path());
    cmd.env("MY_RT_PASS", "pass-phrase-one")
        .env("WOCI_OTHER_PASSPHRASE", "pass-phrase-two")
        .env("WOCI_CLIENT_SECRET", &w.cfg.exchange_client_secret)
        .env("WOCI_KEEP", "kept")
        .args(["--auto-refresh", "--exec", "--", "env"]);
    let o = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("WOCI_KEEP=kept"), "other variables pass: {stdout}");
    assert!(!stdout.contains("pass-phrase") && !stdout.contains("WOCI_CLIENT_SECRET"), "{stdout}");
    // The stand-in `oci` (plain exec path) sees none of them either.
    let mut cmd = woci_std(&w, tmp.path());
    let script = tmp.path().join("env-oci");
    write_exec(&script, "#!/bin/sh\nenv\n");
    cmd.env("MY_RT_PASS", "pass-phrase-one")
        .env("WOCI_OTHER_PASSPHRASE", "pass-phrase-two")
        .env("WOCI_OCI_COMMAND", &script)
        .args(["os", "ns", "get"]);
    let o = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("pass-phrase"));
}

/// Another local user could make the proxy's folder under TMPDIR first (a link to theirs, or a
/// folder others can reach) to plant the files a child's environment names, or just to stop
/// woci: woci warns, naming it, and uses a new unpredictably named private folder instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_folder_others_could_plant_in_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let (w, tmp) = world().await;
    let parent = proxy_parent(tmp.path());
    let theirs = tempfile::tempdir().unwrap();
    for (plant, says) in [
        (Box::new(|p: &Path| std::fs::create_dir(p).unwrap()) as Box<dyn Fn(&Path)>, "mode 0755"),
        (Box::new(|p: &Path| std::os::unix::fs::symlink(theirs.path(), p).unwrap()), "symbolic link"),
    ] {
        plant(&parent);
        if says == "mode 0755" {
            std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut cmd = woci_std(&w, tmp.path());
        cmd.args(["--auto-refresh", "--exec", "--", "sh", "-c", "dirname \"$SSL_CERT_FILE\""]);
        let o = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{err}");
        assert!(err.contains(parent.to_str().unwrap()) && err.contains(says) && err.contains("not used"), "{err}");
        assert_eq!(err.matches("not used").count(), 1, "said once: {err}");
        let used = String::from_utf8_lossy(&o.stdout);
        let fresh = format!("{}.", parent.display());
        assert!(used.starts_with(&fresh), "a new private folder: {used}");
        assert_eq!(std::fs::read_dir(theirs.path()).unwrap().count(), 0, "nothing written into theirs");
        let _ = std::fs::remove_dir(&parent).or_else(|_| std::fs::remove_file(&parent));
    }
}

/// A crash of woci writes no core file: its memory holds the session's secrets (the token, the
/// decrypted refresh token, the proxy secret). The program it runs keeps its own core dumps.
/// The control (a plain program in the same place, with the same limit) proves that this
/// machine writes core files there, so the check can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_woci_dumps_no_core() {
    use std::os::unix::process::CommandExt;
    fn core_files(dir: &Path) -> Vec<std::path::PathBuf> {
        let cores = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.path());
        cores.filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("core")).collect()
    }
    fn unlimited_cores(c: &mut Command, cwd: &Path) {
        c.current_dir(cwd);
        // SAFETY: setrlimit(2) is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                let unlimited = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
                libc::setrlimit(libc::RLIMIT_CORE, &unlimited);
                Ok(())
            });
        }
    }
    let abort = |pid: u32| unsafe { libc::kill(pid as i32, libc::SIGABRT) };

    let control_dir = tempfile::tempdir().unwrap();
    let mut control = Command::new("sleep");
    control.arg("30");
    unlimited_cores(&mut control, control_dir.path());
    let mut control = control.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    abort(control.id());
    control.wait().unwrap();
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
    assert_eq!(
        core_files(control_dir.path()).len(),
        1,
        "this machine writes no core file here (core_pattern {pattern})"
    );

    let (w, tmp) = world().await;
    let out = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = woci_std(&w, tmp.path());
    unlimited_cores(&mut cmd, cwd.path());
    cmd.env("OUT", out.path()).args(["--auto-refresh", "--exec", "--", "sh", "-c", "touch \"$OUT/ready\"; sleep 30"]);
    let mut woci = cmd.spawn().unwrap();
    let ready = out.path().join("ready");
    tokio::task::spawn_blocking(move || wait_for(&ready)).await.unwrap();
    abort(woci.id());
    let status = woci.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGABRT));
    assert!(core_files(cwd.path()).is_empty(), "woci dumped core: {:?}", core_files(cwd.path()));
}

/// `woci --auto-refresh --exec -- sh -c SCRIPT` on 4-second tokens (an expired one to start, a
/// refresh token stored), once the program has started (`$OUT/ready`): the world, woci's TMPDIR,
/// the program's `$OUT` folder and woci's process.
async fn short_token_run(script: &str) -> (World, tempfile::TempDir, tempfile::TempDir, std::process::Child) {
    let w = World::with_config(woci_emulator::Config { upst_ttl: Duration::from_secs(4), ..Default::default() }).await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let (tmp, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut cmd = woci_std(&w, tmp.path());
    let script = format!("touch \"$OUT/ready\"; {script}");
    cmd.env("OUT", out.path()).args(["--auto-refresh", "--exec", "--", "sh", "-c", &script]);
    let child = cmd.spawn().unwrap();
    let ready = out.path().join("ready");
    tokio::task::spawn_blocking(move || wait_for(&ready)).await.unwrap();
    (w, tmp, out, child)
}

/// Once the program has ended, a renewal in flight does not keep woci alive: a token exchange
/// stuck on a slow server is let go (the refresh token it follows is already stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_renewal_does_not_outlive_the_program() {
    use woci_emulator::{Endpoint, Fault};
    let (w, tmp, _out, child) = short_token_run("sleep 4").await;
    // The loop's next renewal (at about half the 4 s token's life) meets an exchange that hangs.
    w.emu.set_fault(Endpoint::Exchange, Fault::latency(Duration::from_secs(120)));
    let started = Instant::now();
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(w.emu.stats().refresh_grants >= 2, "a renewal was in flight when the program ended");
    assert!(started.elapsed() < Duration::from_secs(15), "woci outlived its program by {:?}", started.elapsed());
    assert!(nothing_left(tmp.path()));
}

/// The one part of a renewal that outlives the program: a refresh grant whose answer is on its
/// way carries the rotated refresh token, which woci waits for and stores before it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_grant_in_flight_is_finished_after_the_program_ends() {
    use woci_emulator::{Config, Endpoint, Fault};
    let w = World::with_config(Config { upst_ttl: Duration::from_secs(4), ..Config::default() }).await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let tmp = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let before = w.read(&w.session_dir().join("refresh_token"));
    // Both grants (woci's first renewal, then the loop's about 1 s after it) answer in 3 s: the
    // loop's answer comes after the program ended (2 s after it started).
    w.emu.set_fault(Endpoint::IdpToken, Fault::latency(Duration::from_secs(3)).times(2));
    let mut cmd = woci_std(&w, tmp.path());
    cmd.env("OUT", out.path()).args(["--auto-refresh", "--exec", "--", "sh", "-c", "touch \"$OUT/ready\"; sleep 2"]);
    let child = cmd.spawn().unwrap();
    let ready = out.path().join("ready");
    tokio::task::spawn_blocking(move || wait_for(&ready)).await.unwrap();
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(w.emu.stats().refresh_grants, 2, "the loop's grant was sent");
    assert_ne!(w.read(&w.session_dir().join("refresh_token")), before, "its rotated refresh token was stored");
    // And it works: the next renewal needs no login.
    w.seed_token(-10);
    let mut next = woci_std(&w, tmp.path());
    next.args(["os", "ns", "get"]);
    let o = tokio::task::spawn_blocking(move || next.output().unwrap()).await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(w.emu.stats().auth_code_grants, 0);
}

/// A refresh grant the program's end waited for whose answer is lost spends the stored refresh
/// token: woci says that it waits, and then what the next call will meet. A Ctrl-C meanwhile is
/// answered at once and acted on at the end: woci ends by it, as a shell loop expects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_lost_after_the_program_ended_is_said() {
    use woci_emulator::{Endpoint, Fault};
    let (w, tmp, _out, child) = short_token_run("sleep 2").await;
    // The loop's renewal (1–2 s in) is answered never: processed 5 s later, the connection closed.
    w.emu.set_fault(Endpoint::IdpToken, Fault::drop_reply().with_latency(Duration::from_secs(5)).times(1));
    // A Ctrl-C while woci waits (the program has ended) is answered, not swallowed.
    let pid = child.id() as i32;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // SAFETY: kill(2) on the woci this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(libc::SIGINT), "{err}");
    assert!(err.contains("woci: warning: the refresh grant of profile `P` is under way"), "{err}");
    assert!(err.contains("woci: warning: the signal is held until the identity provider answers"), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("woci: warning: the renewal in flight when the run ended failed: ")
            && last.contains("answer was lost"),
        "{err}"
    );
    assert!(nothing_left(tmp.path()));
}

/// An empty `TMPDIR` is no temp folder: the proxy's private files go to `/tmp`, never into the
/// working folder (a checkout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_tmpdir_does_not_put_files_in_the_working_folder() {
    let (w, _tmp) = world().await;
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = w.woci_std();
    cmd.env("TMPDIR", "").current_dir(cwd.path()).args(["--exec", "--", "sh", "-c", "dirname \"$SSL_CERT_FILE\""]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = String::from_utf8_lossy(&out.stdout);
    assert!(dir.starts_with(&format!("/tmp/woci-proxy-{}/", unsafe { libc::geteuid() })), "{dir}");
    assert_eq!(std::fs::read_dir(cwd.path()).unwrap().count(), 0, "nothing in the working folder");
}

/// A caller that ignores SIGCHLD (`trap '' CHLD`): the kernel would reap the child before woci
/// learns its exit code. woci still passes the program's exit code on, and the program finds
/// SIGCHLD ignored, as it would without woci.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_ignoring_sigchld_still_gets_the_programs_exit_code() {
    let (w, tmp) = world().await;
    let woci = w.woci_std().get_program().to_owned();
    for (program, code) in [(&["sh", "-c", "exit 7"][..], 7), (&["grep", "SigIgn", "/proc/self/status"][..], 0)] {
        let mut cmd = woci_std(&w, tmp.path());
        // bash runs woci with SIGCHLD ignored (`exec` keeps an ignored signal ignored; dash's
        // `trap ''` does not ignore SIGCHLD).
        let mut sh = Command::new("bash");
        sh.args(["-c", "trap '' CHLD; exec \"$0\" \"$@\"", &woci.to_string_lossy(), "--auto-refresh", "--exec", "--"])
            .args(program);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        cmd.stdout(Stdio::piped());
        let o = tokio::task::spawn_blocking(move || sh.output().unwrap()).await.unwrap();
        assert_eq!(o.status.code(), Some(code), "{}", String::from_utf8_lossy(&o.stderr));
        if code == 0 {
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            let mask = out.split_whitespace().nth(1).map(|m| u64::from_str_radix(m, 16).unwrap());
            assert_eq!(mask.map(|m| m & 1 << (libc::SIGCHLD - 1) != 0), Some(true), "{out}");
        }
    }
}

/// A stderr nobody reads any more (a closed SSH session, `2>&1 | head`): woci's own lines are
/// lost, but the program runs and renewals go on (a failed write once ended woci's threads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stderr_nobody_reads_stops_nothing() {
    let (w, tmp) = world().await;
    let ran = tmp.path().join("ran");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = woci_std(&w, tmp.path());
    cmd.stderr(writer).args(["--log-level", "info", "--auto-refresh", "--exec", "--", "touch"]).arg(&ran);
    let o = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(ran.exists(), "the program did not run");
    assert_eq!(w.emu.stats().refresh_grants, 1, "the renewal at the start happened");
}

/// `woci --exec -- ./deploy.sh` whose script runs `woci --auto-refresh …` itself: the outer woci
/// withholds its passphrase variable from what it runs and keeps the session fresh, so the inner
/// one starts without it (and without the outer, it refuses to: its first renewal would fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woci_run_by_a_woci_needs_no_passphrase_of_its_own() {
    let (w, tmp) = world().await;
    w.write_manager_ini(&[("refresh_token_passphrase_env", "WOCI_RT_PASSPHRASE")]);
    let rt = w.seed_refresh_token();
    let sealed = woci::crypto::seal(&woci::secret::SecretString::from(rt.as_str()), &"right".into());
    std::fs::write(w.session_dir().join("refresh_token"), sealed).unwrap();
    let woci = w.woci_std().get_program().to_owned();
    let ran = tmp.path().join("ran");
    let mut outer = woci_std(&w, tmp.path());
    outer
        .env("WOCI_RT_PASSPHRASE", "right")
        .args(["--exec", "--"])
        .arg(&woci)
        .args(["--exec", "--", "touch"])
        .arg(&ran);
    let o = tokio::task::spawn_blocking(move || outer.output().unwrap()).await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(ran.exists(), "the inner program did not run");
    let mut alone = woci_std(&w, tmp.path());
    alone.env_remove("WOCI_RT_PASSPHRASE").args(["--exec", "--", "true"]);
    let o = tokio::task::spawn_blocking(move || alone.output().unwrap()).await.unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A renewal that becomes impossible mid-run (the IdP revoked the refresh token; no one to log
/// in) does not end the run's renewal for good: once another woci stores a new session (a
/// `session authenticate` in another terminal, here a renewal with a new refresh token), the run
/// takes it up, its proxy hands the program the new token, and renewal goes on from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_takes_up_a_session_renewed_elsewhere_once_its_renewal_became_impossible() {
    let (w, _tmp, out, child) = short_token_run("while [ ! -e \"$OUT/stop\" ]; do sleep 0.1; done").await;
    w.emu.revoke_refresh_tokens();
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.emu.stats().refresh_grants_rejected == 0 {
        assert!(Instant::now() < deadline, "the run's renewal never met the revoked refresh token");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Another woci renews with a new refresh token, as a login elsewhere would leave it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    w.seed_refresh_token();
    let mut other = w.woci();
    other.args(["session", "refresh"]);
    let o = run(other).await;
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    // The run renews on its own again: grants beyond the other woci's one.
    let issued = w.emu.stats().refresh_grants_issued;
    while w.emu.stats().refresh_grants_issued < issued + 2 {
        assert!(Instant::now() < deadline + Duration::from_secs(30), "the run did not renew again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::fs::write(out.path().join("stop"), "").unwrap();
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("renewal is not possible") && err.contains("is in place; renewal goes on"), "{err}");
}

/// A run whose renewal meets a refused refresh token does not log in itself, though it could
/// (`BROWSER`): that is one line, the program goes on, and a login elsewhere is taken up. A login
/// of the run's own would mix with the program's output and hold the profile's login, which
/// `woci session authenticate` in another terminal waits behind (round 89 F1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_does_not_log_in_once_its_program_runs() {
    let w = World::with_config(woci_emulator::Config { upst_ttl: Duration::from_secs(4), ..Default::default() }).await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let (tmp, out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut cmd = woci_std(&w, tmp.path());
    let script = "touch \"$OUT/ready\"; while [ ! -e \"$OUT/stop\" ]; do sleep 0.1; done";
    cmd.env("OUT", out.path()).env("BROWSER", &w.browser).args(["--auto-refresh", "--exec", "--", "sh", "-c", script]);
    let child = cmd.spawn().unwrap();
    let ready = out.path().join("ready");
    tokio::task::spawn_blocking(move || wait_for(&ready)).await.unwrap();
    w.emu.revoke_refresh_tokens();
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.emu.stats().refresh_grants_rejected == 0 {
        assert!(Instant::now() < deadline, "the run's renewal never met the revoked refresh token");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.emu.stats().auth_code_grants, 0, "the run logged in itself");
    std::fs::write(out.path().join("stop"), "").unwrap();
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("renewal is not possible") && err.contains("woci session authenticate"), "{err}");
}

/// `auto_refresh` in the INI (and `--exec`) needs the temporary folder for the proxy's per-run
/// files: a call is refused before it renews anything when that folder cannot take them (a
/// revoked refresh token does not make it a login first), and `--status` says so with the
/// call's own code and words, and usable again once it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_foretells_a_temporary_folder_the_proxy_cannot_use() {
    let (w, tmp) = world().await;
    w.write_manager_ini(&[("auto_refresh", "true")]);
    let not_a_folder = tmp.path().join("file");
    std::fs::write(&not_a_folder, "x").unwrap();
    let run = |tmpdir: &Path, args: &[&str]| {
        let mut c = woci_std(&w, tmpdir);
        c.args(args);
        c.output().unwrap()
    };
    w.emu.revoke_refresh_tokens();
    let grants = w.emu.stats().refresh_grants;
    let status = run(&not_a_folder, &["--status"]);
    let call = run(&not_a_folder, &["os", "ns", "get"]);
    let exec = run(&not_a_folder, &["--exec", "--", "true"]);
    assert_eq!(w.emu.stats().refresh_grants, grants, "nothing renewed");
    assert_eq!(exec.status.code(), call.status.code(), "{}", String::from_utf8_lossy(&exec.stderr));
    let said = String::from_utf8_lossy(&status.stdout);
    let err = String::from_utf8_lossy(&call.stderr);
    assert_ne!(call.status.code(), Some(0), "{err}");
    assert_eq!(status.status.code(), call.status.code(), "{said}\n{err}");
    assert!(said.contains("usable: no") && said.contains("`TMPDIR`"), "{said}");
    let first = err.lines().find_map(|l| l.strip_prefix("woci: error: ")).unwrap_or_else(|| panic!("{err}"));
    assert!(said.contains(first), "status says what the call says:\n{said}\n{err}");
    // `--exec` alone runs the proxy too: refused before any renewal as well.
    w.write_manager_ini(&[]);
    let exec = run(&not_a_folder, &["--exec", "--", "true"]);
    assert_eq!(exec.status.code(), Some(1), "{}", String::from_utf8_lossy(&exec.stderr));
    assert_eq!(w.emu.stats().refresh_grants, grants, "nothing renewed");
    w.write_manager_ini(&[("auto_refresh", "true")]);
    // Without the proxy, no temporary folder is needed; with a usable one, the call is usable.
    assert_eq!(run(&not_a_folder, &["--status", "--no-resign-proxy"]).status.code(), Some(0));
    let fine = run(tmp.path(), &["--status"]);
    assert_eq!(fine.status.code(), Some(0), "{}", String::from_utf8_lossy(&fine.stdout));
}
