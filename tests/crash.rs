//! Crash ordering (issue: never lose the session): a renewal stopped at each of its steps — by
//! SIGINT, SIGTERM or SIGHUP (held while the refresh token rotates), or by SIGKILL (which nothing
//! can hold) — leaves a state that the next call completes without a login. The steps are
//! test-only failpoints (`--features failpoints`, set by `FAILPOINTS`); release builds have none.

mod common;

use common::*;
use std::os::unix::process::ExitStatusExt;

/// The renewal's steps, in order.
const STEPS: &[&str] = &[
    "renew::before_grant",
    "renew::after_grant",
    "renew::after_refresh_token_stored",
    "renew::after_exchange",
    "renew::after_token_written",
    "renew::after_config_written",
];

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
        let mut c = w.woci_at(&test_build_woci_bin());
        c.env("FAILPOINTS", format!("{step}=return({signal})")).args(["os", "ns", "get"]);
        c
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
        for (signal, number) in [("SIGINT", 2), ("SIGTERM", 15), ("SIGHUP", 1)] {
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
async fn sigkill_loses_the_session_only_between_the_idp_answer_and_the_stored_refresh_token() {
    for step in STEPS {
        let (stopped, next, _w) = stop_then_call(step, "SIGKILL").await;
        assert_eq!(stopped.status.signal(), Some(9), "{step}");
        if *step == "renew::after_grant" {
            // The documented window: the IdP rotated the refresh token, the new one died with the
            // process, and the old one is spent.
            assert_eq!(next.status.code(), Some(3), "{step}: {}", stderr(&next));
        } else {
            assert!(next.status.success(), "{step}: the next call needs no login: {}", stderr(&next));
        }
    }
}
