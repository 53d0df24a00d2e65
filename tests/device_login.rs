//! Device-code login (RFC 8628) with the real `woci` binary against the emulator's device
//! authorization grant: approve, deny, expire, slow_down, the login timeout, discovery of the
//! endpoint, and the non-interactive refusal; and a hostile IdP (escape sequences and bidi
//! overrides in its answer, `javascript:` / `file:` URIs, `interval` 0 and u64::MAX). `BROWSER`
//! stands in for the person on another device: woci hands it the `verification_uri_complete`.

mod common;

use common::*;
use std::time::{Duration, Instant};
use woci_emulator::{Config, DeviceConfig};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn world(device: DeviceConfig) -> World {
    World::with_config(Config { device, ..Config::default() }).await
}

fn fast() -> DeviceConfig {
    DeviceConfig { interval: Duration::from_secs(1), ..DeviceConfig::default() }
}

/// A "person on another device": opens the verification page with `suffix` appended to the URL.
fn person(w: &World, suffix: &str) -> std::path::PathBuf {
    let p = w.home().join("bin").join("person");
    write_exec(&p, &format!("#!/bin/sh\nexec curl -s -o /dev/null \"$1{suffix}\"\n"));
    p
}

fn authenticate(w: &World, browser: Option<&std::path::Path>, args: &[&str]) -> assert_cmd::Command {
    let mut c = w.woci();
    if let Some(b) = browser {
        c.env("BROWSER", b);
    }
    c.args(args).args(["session", "authenticate"]).timeout(Duration::from_secs(60));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_device_login_stores_the_refresh_token_and_exchanges() {
    let w = world(fast()).await;
    let out = run(authenticate(&w, Some(&person(&w, "")), &["--device-code"])).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("{}oauth2/v1/device", w.emu.base_url())), "prints the verification URI: {err}");
    assert!(err.contains("enter the code"), "{err}");
    // The login names the user the session is for: one another local user completed with
    // their own account shows there.
    let sub = woci::jwt::decode_upst(&w.read(&w.token_path())).unwrap().sub.unwrap();
    assert_eq!(err.matches(&format!("was created by a new login for user `{sub}`")).count(), 1, "{err}");
    let rt = w.read(&w.session_dir().join("refresh_token"));
    assert!(!rt.is_empty(), "the refresh token is stored");
    let st = w.emu.stats();
    assert_eq!((st.device_authorizations, st.device_grants, st.exchanges), (1, 1, 1));
    assert_eq!(st.requests_by_endpoint.get("discovery"), Some(&1), "the endpoint was discovered from token_url");
    assert_no_secrets(&err, &[&rt, &w.read(&w.token_path()), &w.cfg.exchange_client_secret]);
    // The next renewal uses the stored refresh token as for any login.
    let out = run({
        let mut c = w.woci();
        c.args(["session", "refresh"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.emu.stats().refresh_grants_issued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ini_login_flow_and_configured_endpoint_need_no_discovery() {
    let w = world(fast()).await;
    w.write_manager_ini(&[
        ("login_flow", "device"),
        ("device_authorization_url", w.emu.device_authorization_url().as_str()),
    ]);
    let out = run(authenticate(&w, Some(&person(&w, "")), &[])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let st = w.emu.stats();
    assert_eq!(st.device_grants, 1);
    assert_eq!(st.requests_by_endpoint.get("discovery"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_device_login_exits_3() {
    let w = world(fast()).await;
    let out = run(authenticate(&w, Some(&person(&w, "&decision=deny")), &["--device-code"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("was denied") && stderr(&out).contains("to try again"), "{}", stderr(&out));
    assert!(!w.session_dir().join("refresh_token").exists());
}

/// A poll the IdP does not answer (an outage, 3 attempts of 503) leaves the code valid: woci says
/// so once and polls on, and the approved login completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_outage_during_the_polls_does_not_end_the_login() {
    let w = world(fast()).await;
    w.emu.set_fault(woci_emulator::Endpoint::IdpToken, woci_emulator::Fault::status(503).times(3));
    let out = run(authenticate(&w, Some(&person(&w, "")), &["--device-code"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out).matches("did not answer a login poll").count(), 1, "{}", stderr(&out));
    assert_eq!(w.emu.stats().device_grants, 1);
}

/// A poll the IdP does not answer is not sent again at once, and the next comes later, not
/// sooner (RFC 8628 §3.5: twice the interval): three polls in 8 s at a 1 s interval, not the
/// three attempts a poll each that an ordinary retry made (a review of round 105).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_slow_down_while_the_idp_does_not_answer() {
    let w = world(fast()).await;
    w.emu.set_fault(woci_emulator::Endpoint::IdpToken, woci_emulator::Fault::status(503));
    let out = run(authenticate(&w, Some(&person(&w, "")), &["--device-code", "--login-timeout", "8"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let polls: u64 = w.emu.stats().faults_injected.values().sum();
    assert!((2..=4).contains(&polls), "{polls} polls in 8 s: {}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_device_code_exits_3() {
    let w = world(DeviceConfig { auto_approve: false, ..fast() }).await;
    // Nobody approves; an administrator expires the code instead.
    let expire = w.home().join("bin").join("expire");
    write_exec(
        &expire,
        &format!(
            "#!/bin/sh\nexec curl -s -o /dev/null -H 'content-type: application/json' -d '{{\"action\":\"expire\"}}' '{}_emulator/device'\n",
            w.emu.base_url()
        ),
    );
    let out = run(authenticate(&w, Some(&expire), &["--device-code"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("device code expired"), "{}", stderr(&out));
    assert_eq!(w.emu.stats().device_polls_expired, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_down_adds_five_seconds_and_still_succeeds() {
    let w = world(DeviceConfig { slow_down: 1, ..fast() }).await;
    let started = Instant::now();
    let out = run(authenticate(&w, Some(&person(&w, "")), &["--device-code"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let st = w.emu.stats();
    assert_eq!(st.device_slow_downs, 1, "woci polled no faster than the grown interval");
    assert_eq!(st.device_grants, 1);
    assert!(started.elapsed() >= Duration::from_secs(1 + 6), "1 s, then 6 s after slow_down: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_timeout_bounds_the_wait() {
    let w = world(DeviceConfig { auto_approve: false, ..fast() }).await;
    let started = Instant::now();
    let out = run(authenticate(&w, Some(&person(&w, "")), &["--device-code", "--login-timeout", "3"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no login completed within 3s"), "{}", stderr(&out));
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(3) && took < Duration::from_secs(10), "{took:?}");
    assert!(w.emu.stats().device_polls_pending >= 1);
}

/// An IdP that stops answering the polls (each held for a minute) ends the login at its timeout,
/// a few seconds' grace for a poll in flight, not after that poll's attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_idp_does_not_stretch_the_login_timeout() {
    let w = world(DeviceConfig { auto_approve: false, ..fast() }).await;
    for endpoint in [woci_emulator::Endpoint::IdpToken, woci_emulator::Endpoint::DeviceAuthorization] {
        w.emu.set_fault(endpoint, woci_emulator::Fault::latency(Duration::from_secs(60)));
        let started = Instant::now();
        let out = run(authenticate(&w, Some(&person(&w, "")), &["--device-code", "--login-timeout", "3"])).await;
        assert_eq!(out.status.code(), Some(3), "{endpoint:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("no login completed within 3s"), "{}", stderr(&out));
        assert!(started.elapsed() < Duration::from_secs(15), "{endpoint:?}: {:?}", started.elapsed());
        w.emu.clear_faults();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_terminal_the_device_login_fails_at_once() {
    let w = world(fast()).await;
    let out = run(authenticate(&w, None, &["--device-code"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no terminal"), "{}", stderr(&out));
    assert_eq!(w.emu.stats().requests, 0, "nothing is asked of the IdP");
}

/// A terminal (a pty from util-linux `script`) but no way to open a browser (an SSH session, no
/// `BROWSER`): woci chooses the device login by itself, with no flag and no INI key. With standard
/// error sent to a log (`2>&1 | tee log`, here a file), the code still reaches the terminal, and
/// not the log (round 82 F2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_without_a_browser_gets_a_device_login_by_itself() {
    let w = world(DeviceConfig { auto_approve: false, ..fast() }).await;
    let log = w.home().join("login.log");
    for (n, redirect) in ["", &format!(" 2>'{}'", log.display())].into_iter().enumerate() {
        let mut c = w.woci_in_a_terminal(&format!("session authenticate{redirect}"));
        c.env("SSH_CONNECTION", "10.0.0.2 50000 10.0.0.1 22")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(std::process::Stdio::null());
        let child = c.spawn().expect("util-linux `script` runs (it provides the terminal)");
        // The person on another device: approve the code once woci asked for one.
        let started = Instant::now();
        while w.emu.device_pending().is_empty() {
            assert!(started.elapsed() < Duration::from_secs(30), "woci never asked for a device code{redirect}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let code = w.emu.device_pending().remove(0);
        assert_eq!(w.emu.device_decide(Some(&code), woci_emulator::DeviceDecision::Approve), 1);
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{shown}\n{}", stderr(&out));
        assert!(shown.contains(&code), "the user code is shown on the terminal{redirect}: {shown}");
        assert_eq!(w.emu.stats().device_grants, n as u64 + 1);
    }
    assert!(!std::fs::read_to_string(&log).unwrap().contains("enter the code"), "the log does not take the prompt");
    assert_eq!(w.emu.stats().auth_code_grants, 0, "no browser login was attempted");
}

/// The same terminal, but woci runs as kubectl's exec plugin with `interactiveMode: Never`:
/// kubectl's `KUBERNETES_EXEC_INFO` says `"interactive": false`, so no code is asked for and
/// nobody is waited for; the call fails at once with exit 3, as without a terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_saying_not_interactive_is_no_terminal() {
    let w = world(DeviceConfig { auto_approve: false, ..fast() }).await;
    let info =
        r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#;
    // (A login timeout so that a woci that does wait ends, and fails the test.)
    let mut c = w.woci_in_a_terminal("session authenticate --login-timeout 5");
    c.env("SSH_CONNECTION", "10.0.0.2 50000 10.0.0.1 22")
        .env("KUBERNETES_EXEC_INFO", info)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(std::process::Stdio::null());
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || c.output().unwrap()).await.unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{shown}");
    assert!(shown.contains("interactiveMode: Never"), "{shown}");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(w.emu.stats().requests, 0, "nothing is asked of the IdP");
}

/// A hostile IdP's device authorization answer, over the normal one.
fn hostile(fields: serde_json::Value) -> DeviceConfig {
    let answer = fields.as_object().cloned().expect("an object");
    DeviceConfig { auto_approve: false, answer, ..fast() }
}

/// A `BROWSER` that records each URL it is given and then approves every pending code through
/// the emulator's admin knob (the person on another device).
fn recording_person(w: &World) -> (std::path::PathBuf, std::path::PathBuf) {
    let record = w.home().join("browser-urls");
    let p = w.home().join("bin").join("recording-person");
    write_exec(
        &p,
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\nexec curl -s -o /dev/null -H 'content-type: application/json' -d '{{\"action\":\"approve\"}}' '{}_emulator/device'\n",
            record.display(),
            w.emu.base_url()
        ),
    );
    (p, record)
}

/// Escape sequences (clear screen, window title, C1 CSI), DEL and bidi overrides in the user code
/// and the verification URIs reach the terminal only as visible escapes; the login still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_device_text_reaches_the_terminal_only_escaped() {
    let w = world(hostile(serde_json::json!({
        "user_code": "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31mWDJB\u{202e}MJHT\u{7f}",
        "verification_uri": "https://idp.example/device?\u{1b}[2J=\u{202e}",
        "verification_uri_complete": "https://idp.example/device?user_code=\u{1b}]0;t\u{7}\u{2066}x\u{85}",
    })))
    .await;
    let (person, record) = recording_person(&w);
    let out = run(authenticate(&w, Some(&person), &["--device-code"])).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{}", err.escape_debug());
    assert_terminal_safe(&out.stderr, "stderr");
    assert!(err.contains("WDJB") && err.contains("MJHT"), "the code is still shown: {}", err.escape_debug());
    let opened = std::fs::read(&record).expect("BROWSER got the verification URI");
    assert_terminal_safe(&opened, "the URL given to BROWSER");
    assert!(String::from_utf8_lossy(&opened).starts_with("https://idp.example/device?"));
}

/// A verification URI that is not https (or http to loopback) is neither printed as a link nor
/// given to `BROWSER`: one error line naming the IdP's field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_uris_that_are_not_https_are_refused_and_never_opened() {
    let cases = [
        ("verification_uri_complete", "javascript:alert(document.cookie)"),
        ("verification_uri_complete", "file:///etc/passwd"),
        ("verification_uri", "file:///etc/passwd"),
        ("verification_uri", "http://idp.example/device"),
    ];
    for (field, value) in cases {
        let w = world(hostile(serde_json::json!({ field: value }))).await;
        let (person, record) = recording_person(&w);
        let out = run(authenticate(&w, Some(&person), &["--device-code", "--login-timeout", "2"])).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(6), "{field} = {value}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("woci: error: ")).collect();
        assert_eq!(errors.len(), 1, "{err}");
        assert!(errors[0].contains(&format!("`{field}`")) && errors[0].contains("https://"), "{err}");
        assert!(!err.contains("enter the code"), "no login prompt with a refused URI: {err}");
        assert!(!record.exists(), "BROWSER was called: {}", w.read(&record));
        assert_eq!(w.emu.stats().device_polls_pending, 0, "no poll for a login that cannot happen");
    }
}

/// A user code no person can type, or a verification URI longer than a browser takes, is refused
/// in one short line (not printed whole, and no wait for a login that cannot happen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_device_codes_and_uris_are_refused_in_one_short_line() {
    let long_uri = format!("https://idp.example/device?{}", "A".repeat(300_000));
    for (field, value, says) in [
        ("user_code", "B".repeat(300_000), "`user_code` is 300000 characters long, not the 1 to 64"),
        ("user_code", " ".into(), "`user_code` is blank"),
        ("verification_uri_complete", long_uri, "bytes long, over the 2048"),
    ] {
        let w = world(hostile(serde_json::json!({ field: value }))).await;
        let (person, record) = recording_person(&w);
        let out = run(authenticate(&w, Some(&person), &["--device-code", "--login-timeout", "2"])).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(6), "{field}: {}", &err[..err.len().min(500)]);
        assert!(err.len() < 1000 && err.contains(says), "{field}: {}", &err[..err.len().min(500)]);
        assert!(!record.exists(), "BROWSER was called");
    }
}

/// `interval` and `expires_in` of u64::MAX do not crash woci (they are clamped): the login
/// completes at the login timeout's one poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_device_numbers_are_clamped_not_a_crash() {
    let w = world(hostile(serde_json::json!({ "interval": u64::MAX, "expires_in": u64::MAX }))).await;
    let (person, _) = recording_person(&w);
    let out = run(authenticate(&w, Some(&person), &["--device-code", "--login-timeout", "3"])).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(w.emu.stats().device_grants, 1);
}

/// `interval: 0` is polled at most once a second, not as fast as the IdP answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_interval_is_polled_once_a_second() {
    let mut device = hostile(serde_json::json!({ "interval": 0 }));
    // The emulator itself never answers `slow_down`, so only woci's own pace counts.
    device.interval = Duration::ZERO;
    let w = world(device).await;
    let out = run(authenticate(&w, Some(&person(&w, "")), &["--device-code", "--login-timeout", "3"])).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let polls = w.emu.stats().device_polls_pending;
    assert!((1..=4).contains(&polls), "{polls} polls in 3 s");
}
