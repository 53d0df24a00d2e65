//! Never lose the session (issue 11), the renewal-centre half: slow and failing identity
//! providers, many callers at once, a full disk. The real `woci` binary against the emulator.

mod common;

use common::*;
use std::time::{Duration, Instant};
use woci_emulator::{Endpoint, Fault};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_waiting_on_a_failed_renewal_fail_fast_with_its_message() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    w.emu.set_fault(Endpoint::IdpToken, Fault::status(503).with_latency(Duration::from_millis(1500)));
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let mut c = w.woci();
            c.args(["os", "ns", "get"]);
            tokio::spawn(run(c))
        })
        .collect();
    let (mut messages, mut told) = (Vec::new(), 0);
    for call in calls {
        let out = call.await.unwrap();
        assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
        messages.push(stderr(&out).lines().last().unwrap_or_default().to_owned());
        told += usize::from(stderr(&out).contains("that another woci made while this call waited failed"));
    }
    let attempts = w.emu.stats().refresh_grants_attempted();
    assert!(attempts <= 2, "{attempts} refresh grants for 12 callers: the waiting ones must not repeat the renewal");
    assert!(messages.iter().all(|m| m.contains("HTTP 503")), "{messages:#?}");
    // Each waiter says the failure was another woci's, not its own (round 80 N1).
    assert!(told >= 12 - attempts as usize, "{told} waiters said whose failure it was");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_idp_answer_is_waited_for_not_resent() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    // Longer than an ordinary request may take (30 s), shorter than a refresh grant may (90 s).
    w.emu.set_fault(Endpoint::IdpToken, Fault::latency(Duration::from_secs(35)).times(1));
    let started = Instant::now();
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() >= Duration::from_secs(35));
    assert_eq!(w.emu.stats().refresh_grants_attempted(), 1, "the refresh token was sent once");
}

/// Runs `script` as root of a private mount namespace (`unshare -Urm`), so that it can mount a
/// tiny file system over the session folder without touching the machine.
fn in_mount_namespace(w: &World, script: &str) -> std::process::Output {
    let c = w.woci_std();
    let woci = c.get_program().to_owned();
    let mut sh = std::process::Command::new("unshare");
    sh.args(["-Urm", "--", "sh", "-euc", script, "sh"]).arg(woci).arg(w.session_dir());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.output().expect("unshare (util-linux) runs")
}

/// A daemon started on a full disk says so at once, in one line naming the folder (before, it
/// exited "at once" pointing at an empty log, or reported failure while it ran).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_on_a_full_disk_is_refused_naming_it() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let out = in_mount_namespace(
        &w,
        r#"woci="$1"; dir="$2"; tmp=$(mktemp -d); cp -a "$dir"/. "$tmp"/
           mount -t tmpfs -o size=64k tmpfs "$dir"; cp -a "$tmp"/. "$dir"/
           dd if=/dev/zero of="$dir/filler" bs=1k count=100 2>/dev/null || true
           "$woci" --daemon; echo "unreachable: the daemon started" >&2"#,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not enough free space") && err.contains("the daemon could not keep"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_renewal_before_the_refresh_token_is_spent() {
    let w = World::new().await;
    w.seed_token(-10);
    let rt = w.seed_refresh_token();
    let before: Vec<_> = ["token", "refresh_token"].iter().map(|f| w.read(&w.session_dir().join(f))).collect();
    // Copy the session folder onto a 64 KiB tmpfs, fill it, and renew there.
    let out = in_mount_namespace(
        &w,
        r#"woci="$1"; dir="$2"; tmp=$(mktemp -d); cp -a "$dir"/. "$tmp"/
           mount -t tmpfs -o size=64k tmpfs "$dir"; cp -a "$tmp"/. "$dir"/
           dd if=/dev/zero of="$dir/filler" bs=1k count=100 2>/dev/null || true
           "$woci" os ns get; echo "unreachable: woci succeeded" >&2"#,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not enough free space") || err.contains("No space left"), "{err}");
    assert_eq!(w.emu.stats().refresh_grants_attempted(), 0, "nothing was spent: {err}");
    // Outside the namespace (disk with room) the session is intact and renews.
    let after: Vec<_> = ["token", "refresh_token"].iter().map(|f| w.read(&w.session_dir().join(f))).collect();
    assert_eq!(before, after);
    assert_eq!(after[1], rt);
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A renewal a nearly full session folder stops is counted (`config`) and announced to
/// `on_renewal_failure`, as every failed attempt is: a full disk is what a backup host meets, and
/// what its operator must hear of (round 87 F1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_a_full_disk_stops_is_counted_and_announced() {
    let w = World::new().await;
    let (prom, hooked) = (w.home().join("woci.prom"), w.home().join("hook.json"));
    w.write_manager_ini(&[
        ("metrics_file", &prom.display().to_string()),
        ("on_renewal_failure", &format!("sh -c 'cat > {}'", hooked.display())),
    ]);
    w.seed_token(-10);
    w.seed_refresh_token();
    // 32 KiB left: the records fit, a renewal's 64 KiB do not.
    let out = in_mount_namespace(
        &w,
        r#"woci="$1"; dir="$2"; tmp=$(mktemp -d); cp -a "$dir"/. "$tmp"/
           mount -t tmpfs -o size=256k tmpfs "$dir"; cp -a "$tmp"/. "$dir"/
           dd if=/dev/zero of="$dir/filler" bs=1k count=$(( $(df -k --output=avail "$dir" | tail -1) - 32 )) 2>/dev/null
           "$woci" os ns get; echo "unreachable: woci succeeded" >&2"#,
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not enough free space"), "{err}");
    assert!(w.read(&prom).contains("woci_renewals_total{profile=\"P\",result=\"config\"} 1"), "{}", w.read(&prom));
    let event: serde_json::Value = serde_json::from_str(&w.read(&hooked)).unwrap();
    assert_eq!((event["class"].as_str(), event["exit_code"].as_u64()), (Some("config"), Some(1)), "{event}");
    assert_eq!(w.emu.stats().refresh_grants_attempted(), 0, "nothing was spent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_idp_reply_within_the_reuse_grace_loses_nothing() {
    // The IdP rotates refresh tokens and accepts the spent one again for 30 s (Okta's default
    // rotation grace); woci is told the same.
    let w = World::with_config(woci_emulator::Config {
        refresh_reuse_grace: Duration::from_secs(30),
        ..woci_emulator::Config::default()
    })
    .await;
    w.write_manager_ini(&[("refresh_token_reuse_grace", "30")]);
    w.seed_token(-10);
    w.seed_refresh_token();
    // The grant is processed (the refresh token rotated), then the reply never arrives.
    w.emu.set_fault(Endpoint::IdpToken, Fault::drop_reply().times(1));
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.emu.stats().refresh_grants_attempted(), 2, "one resend within the grace");

    // The control: an IdP without a grace revokes the family on the resend, so woci does not
    // resend; the call fails (exit 6), and since the reply was lost the session is lost too —
    // the documented reason to set `refresh_token_reuse_grace` only to what the IdP allows.
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    w.emu.set_fault(Endpoint::IdpToken, Fault::drop_reply().times(1));
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(w.emu.stats().refresh_grants_attempted(), 1, "never resent without a grace");
}

/// An IdP answering a refresh grant with the rotated refresh token but an access token woci
/// cannot use (an opaque one): the rotated token is kept, so the next call renews with it instead
/// of sending the spent one, which a rotating IdP takes for a replay and revokes the session for.
/// An answer too broken to tell counts as a lost one: `--status` says the next call needs a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_grant_answer_keeps_the_rotated_refresh_token() {
    let w = World::new().await;
    w.seed_token(-10);
    let rt = w.seed_refresh_token();
    let call = |args: &'static [&'static str]| {
        let mut c = w.woci();
        c.args(args);
        run(c)
    };
    w.emu.set_fault(Endpoint::IdpToken, Fault::opaque_access_token().times(1));
    let out = call(&["os", "ns", "get"]).await;
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a JWT"), "{}", stderr(&out));
    assert_ne!(w.read(&w.session_dir().join("refresh_token")), rt, "the rotated refresh token is stored");
    let out = call(&["os", "ns", "get"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.emu.stats().refresh_grants_rejected, 0, "the spent refresh token was never sent again");

    w.seed_token(-10);
    w.emu.set_fault(Endpoint::IdpToken, Fault::malformed_json().times(1));
    let out = call(&["os", "ns", "get"]).await;
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("with a body that is not JSON"), "{}", stderr(&out));
    let status = call(&["--status"]).await;
    let said = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(3), "{said}");
    assert!(said.contains("probably spent the stored refresh token"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_idp_reply_is_cut_at_the_cap_with_bounded_memory() {
    let w = World::new().await;
    w.seed_token(-10);
    let rt = w.seed_refresh_token();
    w.emu.set_fault(Endpoint::IdpToken, Fault::endless_body());
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("larger than 1024 KiB"), "{err}");
    assert_eq!(w.read(&w.session_dir().join("refresh_token")), rt, "the stored refresh token is untouched");
    // Peak memory of the children this test ran (woci only): far below the 64 MiB goal.
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let rss_kib = unsafe {
        libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr());
        usage.assume_init().ru_maxrss
    };
    assert!(rss_kib < 64 * 1024, "peak RSS {rss_kib} KiB");
}

/// A rescue folder as another local user could make it first, in the `TMPDIR` woci is given.
#[cfg(unix)]
struct Planted {
    tmp: tempfile::TempDir,
}

#[cfg(unix)]
impl Planted {
    fn new() -> Planted {
        Planted { tmp: tempfile::tempdir().unwrap() }
    }

    fn dir(&self) -> std::path::PathBuf {
        // SAFETY: getuid(2) cannot fail.
        self.tmp.path().join(format!("woci-rescue-{}", unsafe { libc::getuid() }))
    }

    /// Writes `P.refresh_token` (mode 0600) in a folder of `mode`.
    fn plant(&self, content: &str, mode: u32) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(self.dir()).unwrap();
        let f = self.dir().join("P.refresh_token");
        std::fs::write(&f, content).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(self.dir(), std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }

    /// A renewal with this `TMPDIR`: it must succeed with the user's own refresh token, and say
    /// nothing of the planted place, which it neither reads nor needs (a rescue would go to a
    /// folder of the user's own beside it: store::tests; round 84 F2: no warning on every call).
    async fn renew_ignoring_it(&self, w: &World) {
        w.seed_token(-10);
        let own = w.seed_refresh_token();
        let out = run({
            let mut c = w.woci();
            c.env("TMPDIR", self.tmp.path()).env_remove("XDG_RUNTIME_DIR").args(["os", "ns", "get"]);
            c
        })
        .await;
        let err = stderr(&out);
        assert!(out.status.success(), "the planted rescue file is not fatal: {err}");
        assert!(!err.contains(&self.dir().display().to_string()), "quiet about it: {err}");
        let stored = w.read(&w.session_dir().join("refresh_token"));
        assert!(!stored.is_empty() && stored != own, "the user's own refresh token was used and rotated");
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescue_file_planted_by_another_user_is_never_adopted() {
    // Garbage in a folder others can write: before, every renewal failed on it.
    let w = World::new().await;
    let p = Planted::new();
    let f = p.plant("{\"planted\": true}", 0o777);
    p.renew_ignoring_it(&w).await;
    assert!(f.exists(), "left for the user to remove");

    // A valid refresh token of another identity, in a folder that links to the planter's own.
    let w = World::new().await;
    let p = Planted::new();
    let theirs = tempfile::tempdir().unwrap();
    let planted = w.emu.issue_refresh_token();
    std::fs::write(theirs.path().join("P.refresh_token"), &planted).unwrap();
    std::os::unix::fs::symlink(theirs.path(), p.dir()).unwrap();
    p.renew_ignoring_it(&w).await;
    assert_eq!(std::fs::read_to_string(theirs.path().join("P.refresh_token")).unwrap(), planted, "not taken");
    assert_ne!(w.read(&w.session_dir().join("refresh_token")), planted);

    // A folder of another owner (needs root to hand it over; unit tests cover it without).
    // SAFETY: getuid(2) cannot fail.
    if unsafe { libc::getuid() } == 0 {
        let w = World::new().await;
        let p = Planted::new();
        p.plant(&w.emu.issue_refresh_token(), 0o700);
        std::os::unix::fs::chown(p.dir(), Some(65534), Some(65534)).unwrap();
        p.renew_ignoring_it(&w).await;
    } else {
        eprintln!(
            "not root: the other-owner case runs in store::tests (a_rescue_folder_or_file_of_another_owner_is_refused)"
        );
    }
}

/// woci (as [`World::woci_std`] runs it) started by `sh` after `script`; its arguments are the
/// command's.
fn after_shell(w: &World, script: &str) -> std::process::Command {
    let c = w.woci_std();
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", &format!("{script}; exec \"$0\" \"$@\"")]).arg(c.get_program());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh
}

/// A low soft `ulimit -n` (the hard one higher) is raised for woci itself, which renews, and
/// given back to the program it runs; a hard limit too low to run is one error naming the fix
/// (it was a panic in the async runtime's signal setup at 6 and 7).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_open_file_limit_is_raised_for_woci_and_kept_for_the_program() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let mut sh = after_shell(&w, "ulimit -Sn 8");
    sh.args(["--exec", "--", "sh", "-c", "ulimit -Sn"]);
    let out = tokio::task::spawn_blocking(move || sh.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "8", "the program has the caller's limit");
    assert_eq!(w.emu.stats().refresh_grants_issued, 1, "woci renewed with its raised limit");
    for limit in 5..8 {
        let mut sh = after_shell(&w, &format!("ulimit -n {limit}"));
        sh.args(["os", "ns", "get"]);
        let out = tokio::task::spawn_blocking(move || sh.output().unwrap()).await.unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "limit {limit}: {err}");
        assert!(err.starts_with("woci: error: ") && err.contains("ulimit -n"), "limit {limit}: {err}");
    }
    // What needs no descriptors works in any shell; a run with the proxy needs room for the
    // program's connections, and says so up front. `--status` runs in any shell too, and tells
    // the call apart from a shell it cannot run in (a soft limit woci raises is no obstacle).
    for (script, args, code, says) in [
        ("ulimit -n 6", &["--version"][..], 0, ""),
        ("ulimit -n 6", &["--status"], 1, "`ulimit -n` 6"),
        ("ulimit -n 6", &["--status", "--json"], 1, "(ulimit -n 6, the hard limit)"),
        ("ulimit -Sn 6", &["--status"], 0, "usable"),
        ("ulimit -n 32", &["--exec", "--", "true"], 1, ""),
    ] {
        let mut sh = after_shell(&w, script);
        sh.args(args);
        let out = tokio::task::spawn_blocking(move || sh.output().unwrap()).await.unwrap();
        assert_eq!(out.status.code(), Some(code), "{script} {args:?}: {}", stderr(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains(says), "{script} {args:?}: {stdout}");
    }
    // `auto_refresh` in the INI needs the proxy's room as the flag does, before anything is
    // renewed, and `--status` says so.
    w.write_manager_ini(&[("auto_refresh", "true")]);
    w.seed_token(-10);
    let grants = w.emu.stats().refresh_grants;
    for (args, says) in [(&["os", "ns", "get"][..], ""), (&["--status"], "below the 64 woci needs")] {
        let mut sh = after_shell(&w, "ulimit -n 32");
        sh.args(args);
        let out = tokio::task::spawn_blocking(move || sh.output().unwrap()).await.unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(says), "{args:?}");
    }
    assert_eq!(w.emu.stats().refresh_grants, grants, "nothing renewed first");
    // Without the proxy (`--no-resign-proxy`) it is a call's room again.
    let mut sh = after_shell(&w, "ulimit -n 32");
    sh.args(["--no-resign-proxy", "os", "ns", "get"]);
    let out = tokio::task::spawn_blocking(move || sh.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Nor does a native OKE token start one.
    let mut sh = after_shell(&w, "ulimit -n 32");
    sh.args([
        "ce",
        "cluster",
        "generate-token",
        "--cluster-id",
        "ocid1.cluster.oc1.iad.aaaa",
        "--region",
        "us-ashburn-1",
    ]);
    let out = tokio::task::spawn_blocking(move || sh.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ExecCredential"), "the native token");
    // The `--auto-refresh` flag is no different: a call woci leaves to oci (`--auth api_key`) or
    // answers itself (a native OKE token) starts no proxy, and `--status` agrees with the call.
    let oke =
        ["ce", "cluster", "generate-token", "--cluster-id", "ocid1.cluster.oc1.iad.aaaa", "--region", "us-ashburn-1"];
    let api_key = ["--auth", "api_key", "os", "ns", "get"];
    for args in [&oke[..], &api_key, &["--auth", "api_key", "--status"]] {
        let mut sh = after_shell(&w, "ulimit -n 32");
        sh.arg("--auto-refresh").args(args);
        let out = tokio::task::spawn_blocking(move || sh.output().unwrap()).await.unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}

/// Too few file descriptors (`ulimit -n`), at every limit from too few to run to enough: the call
/// either renews (and stores the new refresh token) or sends no refresh grant at all, so the
/// refresh token is never spent and lost (it once was, between these limits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_file_descriptors_never_spend_the_refresh_token() {
    let w = World::new().await;
    let mut renewed = 0;
    for limit in 8..=24 {
        w.seed_token(-10);
        let rt = w.seed_refresh_token();
        let before = w.emu.stats().refresh_grants_attempted();
        let mut sh = after_shell(&w, &format!("ulimit -n {limit}"));
        sh.args(["os", "ns", "get"]);
        let out = tokio::task::spawn_blocking(move || sh.output().unwrap()).await.unwrap();
        let sent = w.emu.stats().refresh_grants_attempted() - before;
        let stored = w.read(&w.session_dir().join("refresh_token"));
        if out.status.success() {
            renewed += 1;
            assert!(sent == 1 && stored != rt, "limit {limit}: renewed without storing: {}", stderr(&out));
        } else {
            assert!(sent == 0 && stored == rt, "limit {limit}: a grant was sent ({sent}) and lost: {}", stderr(&out));
        }
    }
    assert!(renewed > 0, "no limit up to 24 was enough");
}
