//! Crash ordering (issue: never lose the session): a renewal stopped at each of its steps — by
//! SIGINT, SIGTERM, SIGHUP or SIGQUIT (held while the refresh token rotates), or by SIGKILL (which nothing
//! can hold) — leaves a state that the next call completes without a login, and `--status` says
//! beforehand what that call will do. The steps are test-only failpoints (`--features
//! failpoints`, set by `FAILPOINTS`); release builds have none.

mod common;

use common::*;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

/// The renewal's steps, in order.
const STEPS: &[&str] = &[
    "renew::before_grant",
    "renew::after_grant",
    "renew::after_refresh_token_stored",
    "renew::after_exchange",
    "renew::after_token_written",
    "renew::after_config_written",
];

/// Every write of a first renewal, in order, as the atomic writer's failpoints
/// (`fsutil::synced::<file>`: the temp file is complete and fsynced, not yet renamed;
/// `fsutil::renamed::<file>`: in place; `fsutil::half_written::refresh_token`: the rotated
/// refresh token's temp file holds half of it), with the renewal's own steps between them.
const WRITES: &[&str] = &[
    "fsutil::synced::oci_api_key_public.pem",
    "fsutil::renamed::oci_api_key_public.pem",
    "fsutil::synced::oci_api_key.pem",
    "fsutil::renamed::oci_api_key.pem",
    "renew::before_grant",
    "renew::after_grant",
    "fsutil::half_written::refresh_token",
    "fsutil::synced::refresh_token",
    "fsutil::renamed::refresh_token",
    "fsutil::synced::refresh_token.expires",
    "fsutil::renamed::refresh_token.expires",
    "renew::after_refresh_token_stored",
    "renew::after_exchange",
    "fsutil::synced::token",
    "fsutil::renamed::token",
    "fsutil::synced::config",
    "fsutil::renamed::config",
    "renew::after_config_written",
];

/// The points inside the window no process can close, from the IdP's reply until the rotated
/// refresh token is written and fsynced: the IdP has spent the old one, the new one died with
/// the process.
const LOST: &[&str] = &["renew::after_grant", "fsutil::half_written::refresh_token"];

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A first renewal (refresh token only: no token, no config yet) stopped by `signal` at `step`;
/// returns how the stopped call ended and how the next, undisturbed call ended. Both calls run
/// this `cargo test` build's binary, not `WOCI_BIN`: the failpoints exist only with the test-only
/// `failpoints` feature, which the release binary never has.
async fn stop_then_call(step: &str, signal: &str) -> (std::process::Output, std::process::Output, World) {
    let w = World::new().await;
    w.seed_refresh_token();
    let stopped = run({
        use std::os::unix::process::CommandExt;
        let mut c = w.woci_std_at(&test_build_woci_bin());
        c.env("FAILPOINTS", format!("{step}=return({signal})")).args(["os", "ns", "get"]);
        // SAFETY: setrlimit(2) is async-signal-safe. No core file from SIGQUIT's default action.
        unsafe {
            c.pre_exec(|| {
                libc::setrlimit(libc::RLIMIT_CORE, &libc::rlimit { rlim_cur: 0, rlim_max: 0 });
                Ok(())
            })
        };
        assert_cmd::Command::from_std(c)
    })
    .await;
    let next = run({
        let mut c = w.woci_at(&test_build_woci_bin());
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    (stopped, next, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_signals_at_any_step_never_lose_the_session() {
    for step in STEPS {
        for (signal, number) in [("SIGINT", 2), ("SIGTERM", 15), ("SIGHUP", 1), ("SIGQUIT", 3)] {
            let (stopped, next, w) = stop_then_call(step, signal).await;
            assert_eq!(
                stopped.status.signal(),
                Some(number),
                "{step} {signal}: ends by the signal: {}",
                stderr(&stopped)
            );
            assert!(next.status.success(), "{step} {signal}: the next call needs no login: {}", stderr(&next));
            assert!(w.read(&w.config_path()).contains("security_token_file"), "{step} {signal}: config completed");
            let grants = w.emu.stats().refresh_grants_issued;
            assert!(grants <= 2, "{step} {signal}: {grants} refresh grants");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_each_write_loses_the_session_only_before_the_new_refresh_token_is_on_disk() {
    for point in WRITES {
        let w = World::new().await;
        w.seed_refresh_token();
        let stopped = run({
            let mut c = w.woci_at(&test_build_woci_bin());
            c.env("FAILPOINTS", format!("{point}=return(SIGKILL)")).args(["os", "ns", "get"]);
            c
        })
        .await;
        assert_eq!(stopped.status.signal(), Some(9), "{point}: the kill point was reached: {}", stderr(&stopped));
        let status = run({
            let mut c = w.woci();
            c.args(["--status", "--json"]);
            c
        })
        .await;
        let report: serde_json::Value = serde_json::from_slice(&status.stdout)
            .unwrap_or_else(|e| panic!("{point}: --status --json: {e}: {}", stderr(&status)));
        let next = run({
            let mut c = w.woci();
            c.args(["os", "ns", "get"]);
            c
        })
        .await;
        if LOST.contains(point) {
            assert_eq!(next.status.code(), Some(3), "{point}: {}", stderr(&next));
        } else {
            assert!(next.status.success(), "{point}: the next call needs no login: {}", stderr(&next));
            assert!(w.read(&w.config_path()).contains("security_token_file"), "{point}: config completed");
        }
        // Before the call, `--status` said what it would do: after the grant was sent, from the
        // note the killed woci left that its outcome was unknown.
        assert_eq!(status.status.code(), next.status.code(), "{point}: --status said {report}");
        if *point == "renew::after_grant" {
            assert!(report["reason"].as_str().unwrap().contains("sent a refresh grant with the stored"), "{report}");
            assert!(report["refresh_token"]["unsettled_grant"]["pid"].is_u64(), "{report}");
            assert!(
                stderr(&next).contains("ended before it stored the answer, probably spent it"),
                "{}",
                stderr(&next)
            );
        }
        if *point == "fsutil::half_written::refresh_token" {
            assert_eq!(report["refresh_token"]["interrupted_rotation"], "incomplete", "{point}: {report}");
            assert!(report["reason"].as_str().unwrap().contains("probably spent"), "{point}: {report}");
        }
        if *point == "fsutil::synced::refresh_token" {
            assert_eq!(report["refresh_token"]["interrupted_rotation"], "complete", "{point}: {report}");
            assert!(
                report["reason"].as_str().unwrap().contains("an interrupted refresh-token rotation will be completed"),
                "{point}: {report}"
            );
        }
        let grants = w.emu.stats().refresh_grants_issued;
        assert!(grants <= 2, "{point}: {grants} refresh grants");
    }
}

/// A Ctrl-C while the IdP has the refresh grant is held until its outcome, and said so at once;
/// when the outcome is a lost answer, it is recorded before woci ends, so `--status` tells that
/// the next call needs a login (as it does after the same failure without a signal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_held_during_a_grant_whose_answer_is_lost_leaves_the_failure_recorded() {
    use woci_emulator::{Endpoint, Fault};
    let w = World::new().await;
    w.seed_refresh_token();
    w.emu.set_fault(
        Endpoint::IdpToken,
        Fault::drop_reply().with_latency(std::time::Duration::from_millis(800)).times(1),
    );
    let stopped = run({
        let mut c = w.woci_at(&test_build_woci_bin());
        c.env("FAILPOINTS", "renew::before_grant=return(SIGINT)").args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(stopped.status.signal(), Some(2), "{}", stderr(&stopped));
    assert!(
        stderr(&stopped).contains("woci: warning: the refresh grant of profile `P` is under way")
            && stderr(&stopped).contains("woci: error: the request to identity provider at `"),
        "{}",
        stderr(&stopped)
    );
    let status = run({
        let mut c = w.woci();
        c.args(["--status"]);
        c
    })
    .await;
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_eq!(status.status.code(), Some(3), "{text}");
    assert!(text.contains("the answer to the last refresh grant") && text.contains("was lost"), "{text}");
    let next = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(next.status.code(), Some(3), "{}", stderr(&next));
}

/// A rotated refresh token that can be stored nowhere (the disk holding the session folder and
/// the rescue folder is full) is no silent loss: the note of the grant stays, so `--status` and
/// the next call say the stored refresh token was probably spent (exit 3), not "usable", and
/// `woci session refresh` exits 1, not 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_stored_nowhere_is_said_by_status_and_the_next_call() {
    let w = World::new().await;
    w.seed_refresh_token();
    let out = run({
        let mut c = w.woci_at(&test_build_woci_bin());
        c.env("FAILPOINTS", "store::refresh_token=return;store::rescue=return").args(["session", "refresh"]);
        c
    })
    .await;
    assert!(stderr(&out).contains("nor save it elsewhere"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(1), "a script learns it from the exit code: {}", stderr(&out));
    let status = run({
        let mut c = w.woci_at(&test_build_woci_bin());
        c.args(["--status", "--json"]);
        c
    })
    .await;
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(report["refresh_token"]["unsettled_grant"].is_object(), "{report}");
    w.seed_token(-30);
    let next = run({
        let mut c = w.woci_at(&test_build_woci_bin());
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(next.status.code(), Some(3), "{}", stderr(&next));
    assert!(stderr(&next).contains("probably spent"), "{}", stderr(&next));
}

/// A long run whose first renewal could store its rotated refresh token nowhere renews with that
/// token, held in memory, rather than send the spent one on disk (which revokes the whole
/// session); once the disk takes it again it is stored, and the next call needs no login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_renews_with_the_refresh_token_it_could_not_store() {
    let w = World::with_config(woci_emulator::Config { upst_ttl: Duration::from_secs(4), ..Default::default() }).await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let out = run({
        let mut c = w.woci_at(&test_build_woci_bin());
        // The first renewal's three tries and its rescue fail; later writes work.
        c.env("FAILPOINTS", "store::refresh_token=3*return;store::rescue=1*return").args([
            "--auto-refresh",
            "--exec",
            "--",
            "sleep",
            "6",
        ]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("nor save it elsewhere"), "{}", stderr(&out));
    assert!(w.emu.stats().refresh_grants >= 2, "{} grants", w.emu.stats().refresh_grants);
    w.seed_token(-30);
    let next = run({
        let mut c = w.woci_at(&test_build_woci_bin());
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert!(next.status.success(), "{}", stderr(&next));
}
