//! Operating sessions with the real binary against the emulator (issue 22): every renewal class
//! counted exactly in the Prometheus textfile, across processes and under 50 concurrent renewals
//! (a reader never sees a partial file); `on_renewal_failure` once per class and window, bounded,
//! never given a secret, unable to change woci's exit code; the expiry warning and `on_expiring`
//! once per window; `fallback_profile` only when the primary cannot be renewed and its token is
//! unusable, counted; `--status --all` and `--status --prompt` without a request.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use woci_emulator::{Config, Endpoint, Fault};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `woci ARGS` in the world, with `env` added.
async fn woci(w: &World, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = w.woci();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    run(c).await
}

/// The node_exporter collector folder and the metrics file in it.
fn prom_path(w: &World) -> PathBuf {
    let dir = w.home().join("textfile");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("woci.prom")
}

/// The value of one series (`name{labels}`) in the metrics text, if present.
fn series(text: &str, name_labels: &str) -> Option<i64> {
    text.lines().find_map(|l| l.strip_prefix(&format!("{name_labels} "))).map(|v| v.parse().unwrap())
}

/// Every `woci_renewals_total` of `profile`, as (result, count), sorted by result.
fn renewals(text: &str, profile: &str) -> Vec<(String, i64)> {
    let prefix = format!("woci_renewals_total{{profile=\"{profile}\",result=\"");
    let mut v: Vec<(String, i64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (result, value) = rest.split_once("\"} ").unwrap();
            (result.to_owned(), value.parse().unwrap())
        })
        .collect();
    v.sort();
    v
}

fn counts(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = pairs.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect();
    v.sort();
    v
}

/// A complete exposition: every line a comment or `name{labels} value`, each family announced by
/// HELP and TYPE, a final newline.
fn assert_complete(text: &str) {
    assert!(text.starts_with("# HELP ") && text.ends_with('\n'), "partial metrics file: {text:?}");
    for line in text.lines() {
        let ok = line.starts_with("# HELP woci_")
            || line.starts_with("# TYPE woci_")
            || line.rsplit_once(' ').is_some_and(|(series, v)| {
                series.starts_with("woci_") && series.ends_with('}') && v.parse::<i64>().is_ok()
            });
        assert!(ok, "malformed line {line:?} in:\n{text}");
    }
    assert_eq!(text.matches("# HELP ").count(), text.matches("# TYPE ").count(), "{text}");
}

/// A hook that records each run's stdin, argv and environment as `stdin.N`, `argv.N`, `env.N`
/// in `out`, then exits with `exit`; returns its command line.
fn recorder(w: &World, name: &str, exit: u8) -> (String, PathBuf) {
    let out = w.home().join(format!("{name}-runs"));
    std::fs::create_dir_all(&out).unwrap();
    let script = w.home().join("bin").join(name);
    write_exec(
        &script,
        &format!(
            "#!/bin/sh\nout='{}'\nn=$(ls \"$out\" | grep -c '^stdin')\ncat > \"$out/stdin.$n\"\nenv > \"$out/env.$n\"\nprintf '%s\\n' \"$@\" > \"$out/argv.$n\"\nexit {exit}\n",
            out.display()
        ),
    );
    (format!("{} 'first arg' second", script.display()), out)
}

fn runs(out: &Path) -> usize {
    std::fs::read_dir(out)
        .map_or(0, |d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("stdin")).count())
}

fn run_file(out: &Path, what: &str, n: usize) -> String {
    std::fs::read_to_string(out.join(format!("{what}.{n}"))).unwrap_or_default()
}

fn event(out: &Path, n: usize) -> serde_json::Value {
    let text = run_file(out, "stdin", n);
    serde_json::from_str(text.trim_end()).unwrap_or_else(|e| panic!("hook stdin {n} is not JSON ({e}): {text:?}"))
}

/// Writes the manager INI with one section per profile: the IdP settings the harness writes for
/// `[P]`, plus the profile's `extra` lines.
fn write_profiles(w: &World, profiles: &[(&str, &str)]) {
    w.write_manager_ini(&[]);
    let ini = w.read(&w.manager_ini_path());
    let (head, body) = ini.split_once("[P]\n").expect("the harness writes `[P]`");
    let mut ini = head.to_owned();
    for (name, extra) in profiles {
        ini.push_str(&format!("[{name}]\n{body}{extra}\n"));
    }
    std::fs::write(w.manager_ini_path(), ini).unwrap();
}

/// Profile `name`'s session: the test key, a UPST expiring `exp_in` seconds from now, and its
/// entries in `~/.oci/config`.
fn seed_profile(w: &World, name: &str, exp_in: i64) -> String {
    let dir = w.oci_dir().join("sessions").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let pem = include_str!("fixtures/test_key.pem");
    let key_path = dir.join("oci_api_key.pem");
    std::fs::write(&key_path, pem).unwrap();
    set_private(&key_path);
    let key = woci::keys::KeyPair::from_pem(pem).unwrap();
    let token_path = dir.join("token");
    let config = w.read(&w.config_path());
    if !config.contains(&format!("[{name}]")) {
        std::fs::write(
            w.config_path(),
            format!(
                "{config}\n[{name}]\nkey_file={}\nsecurity_token_file={}\nfingerprint={}\n",
                key_path.display(),
                token_path.display(),
                key.fingerprint()
            ),
        )
        .unwrap();
    }
    let now = unix_now();
    let token = fake_jwt(&format!(
        r#"{{"sub":"ocid1.user.oc1..{name}","tenant":"ocid1.tenancy.oc1..seed","iat":{},"exp":{},"jti":"{name}"}}"#,
        now - 3000,
        now + exp_in
    ));
    std::fs::write(&token_path, &token).unwrap();
    token
}

/// Encrypts the stored refresh token with a passphrase the profile does not have.
fn lock_refresh_token(w: &World) {
    let rt = w.read(&w.session_dir().join("refresh_token"));
    let sealed = woci::crypto::seal(&woci::secret::SecretString::from(rt.as_str()), &"not-the-passphrase".into());
    std::fs::write(w.session_dir().join("refresh_token"), sealed).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_renewal_class_is_counted_exactly_across_processes() {
    let w = World::new().await;
    let prom = prom_path(&w);
    let prom_s = prom.display().to_string();
    write_profiles(
        &w,
        &[
            ("P", &format!("metrics_file = {prom_s}\n")),
            ("F", &format!("subject_token_source = env:CI_JOB_JWT\nmetrics_file = {prom_s}\n")),
        ],
    );
    let rt = w.seed_refresh_token();
    let refresh = ["session", "refresh", "--profile", "P"];

    // ok: a renewal by refresh grant and exchange.
    let out = woci(&w, &refresh, &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = w.read(&prom);
    assert_complete(&text);
    assert_eq!(renewals(&text, "P"), counts(&[("ok", 1)]), "{text}");
    let token_exp = woci::jwt::decode_upst(&w.read(&w.token_path())).unwrap().exp;
    assert_eq!(series(&text, "woci_session_token_expiry_timestamp_seconds{profile=\"P\"}"), Some(token_exp));
    // An IdP profile's session has no hard end: no series a "login needed" alert would fire on.
    assert_eq!(series(&text, "woci_session_expiry_timestamp_seconds{profile=\"P\"}"), None, "{text}");
    let rt_exp = series(&text, "woci_refresh_token_expiry_timestamp_seconds{profile=\"P\"}").expect("known");
    assert!((rt_exp - (unix_now() + 7 * 24 * 3600)).abs() < 60, "the emulator's 7-day refresh tokens: {text}");
    let last_ok = series(&text, "woci_last_renewal_timestamp_seconds{profile=\"P\",result=\"ok\"}").unwrap();
    assert!((last_ok - unix_now()).abs() < 60, "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777, 0o644);
    }

    // A valid token is no renewal attempt.
    let out = woci(&w, &["os", "ns", "get"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(renewals(&w.read(&prom), "P"), counts(&[("ok", 1)]));

    // network: the IdP answers 503.
    w.emu.set_fault(Endpoint::IdpToken, Fault::status(503));
    let out = woci(&w, &refresh, &[]).await;
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(renewals(&w.read(&prom), "P"), counts(&[("ok", 1), ("network", 1)]));
    w.emu.clear_faults();

    // auth: the IdP refuses the refresh token and no one is there to log in.
    w.emu.revoke_refresh_tokens();
    let out = woci(&w, &refresh, &[]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(renewals(&w.read(&prom), "P"), counts(&[("ok", 1), ("network", 1), ("auth", 1)]));

    // config: an encrypted refresh token the configured passphrase does not open.
    let rt2 = w.seed_refresh_token();
    lock_refresh_token(&w);
    let out = woci(
        &w,
        &["--refresh-token-passphrase-env", "WOCI_RT_PASSPHRASE", "session", "refresh", "--profile", "P"],
        &[("WOCI_RT_PASSPHRASE", "wrong-passphrase")],
    )
    .await;
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    let text = w.read(&prom);
    assert_eq!(renewals(&text, "P"), counts(&[("ok", 1), ("network", 1), ("auth", 1), ("config", 1)]), "{text}");
    // A failure leaves the expiry series as they were.
    assert_eq!(series(&text, "woci_session_token_expiry_timestamp_seconds{profile=\"P\"}"), Some(token_exp));

    // source: profile F's subject token source gives no token.
    let out = woci(&w, &["session", "refresh", "--profile", "F"], &[]).await;
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    let text = w.read(&prom);
    assert_complete(&text);
    assert_eq!(renewals(&text, "F"), counts(&[("source", 1)]), "{text}");
    assert_eq!(renewals(&text, "P"), counts(&[("ok", 1), ("network", 1), ("auth", 1), ("config", 1)]));
    for class in ["ok", "network", "auth", "config"] {
        assert!(
            series(&text, &format!("woci_last_renewal_timestamp_seconds{{profile=\"P\",result=\"{class}\"}}"))
                .is_some(),
            "{text}"
        );
    }
    assert_no_secrets(&text, &[&rt, &rt2, &w.cfg.exchange_client_secret]);
}

/// Starts `n` woci processes with `args` at once and asserts that each succeeds.
async fn all_succeed(w: &World, n: usize, args: &[&str]) {
    let children: Vec<std::process::Child> = (0..n)
        .map(|_| {
            let mut c = w.woci_std();
            c.args(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        children.into_iter().map(|c| c.wait_with_output().unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for o in &outputs {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    }
}

/// A missing metrics folder is said once per process, not at every renewal of a long run or a
/// daemon, and the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_metrics_folder_is_warned_about_once_per_process() {
    let w = World::with_config(Config { upst_ttl: Duration::from_secs(4), ..Config::default() }).await;
    let prom = w.home().join("nope/woci.prom").display().to_string();
    w.write_manager_ini(&[("metrics_file", &prom), ("refresh_safety_window", "2")]);
    w.seed_token(-10);
    w.seed_refresh_token();
    let out = woci(&w, &["--auto-refresh", "--exec", "--", "sleep", "7"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(w.emu.stats().refresh_grants >= 3, "{} renewals", w.emu.stats().refresh_grants);
    assert_eq!(stderr(&out).matches("the folder of `metrics_file`").count(), 1, "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_renewals_are_all_counted_and_a_reader_never_sees_a_partial_file() {
    let w = World::new().await;
    let prom = prom_path(&w);
    w.write_manager_ini(&[("metrics_file", &prom.display().to_string())]);
    w.seed_refresh_token();
    let out = woci(&w, &["session", "refresh", "--profile", "P"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (prom, done) = (prom.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let text = std::fs::read_to_string(&prom).expect("the file is always there");
                assert_complete(&text);
                reads += 1;
            }
            reads
        })
    };
    all_succeed(&w, 50, &["session", "refresh", "--profile", "P"]).await;
    let text = w.read(&prom);
    assert_eq!(renewals(&text, "P"), counts(&[("ok", 51)]), "{text}");

    // 20 concurrent calls on an expired token: one renews, the others find it renewed.
    w.seed_token(-30);
    let grants = w.emu.stats().refresh_grants;
    all_succeed(&w, 20, &["os", "ns", "get"]).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(reader.join().expect("the reader saw only complete files") > 0);
    assert_eq!(w.emu.stats().refresh_grants - grants, 1);
    assert_eq!(renewals(&w.read(&prom), "P"), counts(&[("ok", 52)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_hook_runs_once_per_class_and_window_without_secrets_and_keeps_the_exit_code() {
    let w = World::new().await;
    let (hook, out_dir) = recorder(&w, "on-failure", 1);
    w.write_manager_ini(&[("on_renewal_failure", &hook)]);
    let rt = w.seed_refresh_token();
    let token = w.seed_token(-30);
    let env_secrets = [
        ("WOCI_BACKUP_PASSPHRASE", "s3cret-woci-passphrase"),
        ("OCI_CLI_PASSPHRASE", "s3cret-oci-passphrase"),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "s3cret-actions-bearer"),
        ("http_proxy", "http://user:s3cret-proxy-pw@127.0.0.1:9"),
        ("NO_PROXY", "127.0.0.1,localhost"),
        ("HOOK_CAN_SEE", "plain-value"),
    ];
    let started = unix_now();

    // Two network failures in a row: one hook run; woci's exit code is its own (the hook exits 1).
    w.emu.set_fault(Endpoint::IdpToken, Fault::status(503));
    let mut error_lines = Vec::new();
    for _ in 0..2 {
        let out = woci(&w, &["os", "ns", "get"], &env_secrets).await;
        assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
        error_lines.extend(stderr(&out).lines().filter_map(|l| l.strip_prefix("woci: error: ")).map(str::to_owned));
    }
    assert_eq!(runs(&out_dir), 1);
    let ev = event(&out_dir, 0);
    assert_eq!(ev["event"], "renewal_failed");
    assert_eq!(ev["profile"], "P");
    assert_eq!(ev["class"], "network");
    assert_eq!(ev["exit_code"], 6);
    assert_eq!(ev["message"].as_str(), error_lines.first().map(String::as_str), "the message is woci's error line");
    let at = chrono_secs(ev["at"].as_str().unwrap());
    assert!(at >= started - 1 && at <= unix_now() + 1, "{ev}");
    let token_exp = woci::jwt::decode_upst(&token).unwrap().exp;
    assert_eq!(chrono_secs(ev["token_expires_at"].as_str().unwrap()), token_exp, "{ev}");
    assert_eq!(run_file(&out_dir, "argv", 0), "first arg\nsecond\n");

    // Another class has its own window.
    w.emu.clear_faults();
    w.emu.revoke_refresh_tokens();
    let out = woci(&w, &["os", "ns", "get"], &env_secrets).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(runs(&out_dir), 2);
    let ev = event(&out_dir, 1);
    assert_eq!((ev["class"].as_str(), ev["exit_code"].as_u64()), (Some("auth"), Some(3)), "{ev}");

    // Never a secret in the hook's stdin, argv or environment.
    let mut seen = String::new();
    for n in 0..2 {
        for what in ["stdin", "argv", "env"] {
            seen.push_str(&run_file(&out_dir, what, n));
        }
    }
    let env_file = run_file(&out_dir, "env", 0);
    assert!(env_file.contains("HOOK_CAN_SEE=plain-value") && env_file.contains("NO_PROXY="), "{env_file}");
    for (k, _) in &env_secrets[..4] {
        assert!(!env_file.contains(&format!("{k}=")), "{k} reached the hook:\n{env_file}");
    }
    let mut secrets = vec![rt.as_str(), token.as_str(), w.cfg.exchange_client_secret.as_str()];
    secrets.extend(w.cfg.idp_client_secret.as_deref());
    secrets.extend(env_secrets[..4].iter().map(|(_, v)| *v));
    assert_no_secrets(&seen, &secrets);
    assert!(!seen.contains("s3cret"), "{seen}");
}

/// RFC 3339 UTC (`2025-11-08T17:19:55Z`) → epoch seconds, written here so the test checks woci's
/// formatting rather than reusing it.
fn chrono_secs(s: &str) -> i64 {
    let (date, time) = s.strip_suffix('Z').unwrap().split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let t: Vec<i64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d[2] - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_past_ten_seconds_is_stopped_and_woci_goes_on() {
    let w = World::new().await;
    let pid_file = w.home().join("hook.pid");
    let script = w.home().join("bin").join("slow-hook");
    write_exec(&script, &format!("#!/bin/sh\necho $$ > '{}'\nexec sleep 300\n", pid_file.display()));
    w.write_manager_ini(&[("on_renewal_failure", &script.display().to_string())]);
    w.seed_refresh_token();
    w.emu.set_fault(Endpoint::IdpToken, Fault::status(503));
    let t0 = Instant::now();
    let out = woci(&w, &["session", "refresh", "--profile", "P"], &[]).await;
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hook") && stderr(&out).contains("did not finish within 10s and was stopped"),
        "{}",
        stderr(&out)
    );
    assert!(took >= Duration::from_secs(10) && took < Duration::from_secs(60), "{took:?}");
    let pid: i32 = w.read(&pid_file).trim().parse().expect("the hook ran");
    // Killed with its group (a zombie until its adopter reaps it counts as gone).
    let gone = || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone() {
        assert!(Instant::now() < deadline, "the hook {pid} survived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a hook prints reaches woci's stderr as whole `woci: hook …` lines, bounded, before
/// woci's own last line; a child it leaves holding the pipe writes nothing there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hooks_output_is_woci_lines_bounded_and_before_the_error() {
    let w = World::new().await;
    let script = w.home().join("bin").join("loud-hook");
    write_exec(
        &script,
        "#!/bin/sh\n(sleep 3; echo late-child-line; echo late-child-err >&2) &\nprintf 'first\\n\\033[2Jsecond'\n\
         echo to-stderr >&2\nhead -c 200000 /dev/zero | tr '\\0' x\nprintf '\\nshort-past-cap\\ntail-past-cap'\nexit 1\n",
    );
    w.write_manager_ini(&[("on_renewal_failure", &script.display().to_string())]);
    w.seed_refresh_token();
    w.emu.set_fault(Endpoint::IdpToken, Fault::status(503));
    let out = woci(&w, &["session", "refresh", "--profile", "P"], &[]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("woci: ")), "{err}");
    assert!(lines.last().unwrap().starts_with("woci: error: identity provider"), "{err}");
    assert!(lines.contains(&"woci: hook on_renewal_failure: first"), "{err}");
    assert!(lines.contains(&"woci: hook on_renewal_failure: to-stderr"), "{err}");
    // A terminal control is shown, not acted on.
    assert!(lines.iter().any(|l| l.starts_with("woci: hook on_renewal_failure: \\x1b[2Jsecondxxx")), "{err}");
    assert!(lines.contains(&"woci: hook on_renewal_failure: output past 64 KiB not shown"), "{err}");
    assert!(err.len() < 80 * 1024, "{} bytes", err.len());
    assert!(lines.iter().any(|l| l.contains("hook `") && l.contains("exited with 1")), "{err}");
    assert!(!err.contains("late-child"), "{err}");
    // Nothing after the first 64 KiB, however short.
    assert!(!err.contains("past-cap"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_end_is_warned_of_once_for_a_hundred_calls() {
    // Inside the default notice of an hour.
    let w = World::with_config(Config { session_max: Duration::from_secs(50 * 60), ..Config::default() }).await;
    let (hook, out_dir) = recorder(&w, "on-expiring", 7);
    w.seed_session_profile(Duration::from_secs(3600));
    // seed_session_profile rewrote the INI without IdP keys; add the hook.
    let ini = w.read(&w.manager_ini_path());
    std::fs::write(w.manager_ini_path(), format!("{ini}on_expiring = {hook}\n")).unwrap();
    let sess_exp = woci::jwt::decode_upst(&w.read(&w.token_path())).unwrap().session_expiry().unwrap();

    let mut lines = Vec::new();
    for _ in 0..100 {
        let out = woci(&w, &["os", "ns", "get"], &[]).await;
        // The hook exits 7; the call is `oci`'s.
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        lines.extend(stderr(&out).lines().filter(|l| l.contains("expires at")).map(str::to_owned));
    }
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("woci: warning: the session of profile `P` expires at ")
            && lines[0].contains("renew it with `command oci session authenticate --profile P`"),
        "{}",
        lines[0]
    );
    assert_eq!(runs(&out_dir), 1);
    let ev = event(&out_dir, 0);
    assert_eq!(
        (ev["event"].as_str(), ev["profile"].as_str(), ev["what"].as_str()),
        (Some("expiring"), Some("P"), Some("session"))
    );
    assert_eq!(chrono_secs(ev["expires_at"].as_str().unwrap()), sess_exp);
    assert_eq!(w.emu.stats().requests, 0, "a valid token: no renewal, no request");
}

/// A session lives 24 hours at most: by default its end is announced an hour ahead, not a day
/// (which would warn from the login on); `expiring_warning` moves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_end_is_announced_an_hour_ahead_unless_set() {
    let w = World::with_config(Config { session_max: Duration::from_secs(2 * 3600), ..Config::default() }).await;
    w.seed_session_profile(Duration::from_secs(3600));
    let warned = |out: &std::process::Output| stderr(out).contains("expires at");
    let out = woci(&w, &["os", "ns", "get"], &[]).await;
    assert!(out.status.success() && !warned(&out), "{}", stderr(&out));
    let ini = w.read(&w.manager_ini_path());
    std::fs::write(w.manager_ini_path(), format!("{ini}expiring_warning = 3h\n")).unwrap();
    let out = woci(&w, &["os", "ns", "get"], &[]).await;
    assert!(out.status.success() && warned(&out), "{}", stderr(&out));
}

/// A command under renewal cannot outlive the session: its end is said once when the run starts,
/// by the expiry warning inside its window, else by a line of its own (once a session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_told_the_session_end_once() {
    let w = World::with_config(Config { session_max: Duration::from_secs(2 * 3600), ..Config::default() }).await;
    w.seed_session_profile(Duration::from_secs(3600));
    let run = ["--exec", "--", "true"];
    let ends = |out: &std::process::Output| {
        stderr(out)
            .lines()
            .filter(|l| l.contains("ends in") || l.contains("expires at"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let out = woci(&w, &run, &[]).await;
    let lines = ends(&out);
    assert_eq!(lines.len(), 1, "{}", stderr(&out));
    let said = ["ends in 2h00m00s", "ends in 1h59m5"].iter().any(|t| lines[0].contains(t));
    assert!(said && lines[0].contains("a command running longer will fail"), "{lines:?}");
    // Once a session: the next short run is not told again (round 84 N10).
    let out = woci(&w, &run, &[]).await;
    assert!(out.status.success() && ends(&out).is_empty(), "{}", stderr(&out));
    let ini = w.read(&w.manager_ini_path());
    std::fs::write(w.manager_ini_path(), format!("{ini}expiring_warning = 3h\n")).unwrap();
    let out = woci(&w, &run, &[]).await;
    let lines = ends(&out);
    assert_eq!(lines.len(), 1, "{}", stderr(&out));
    assert!(lines[0].contains("expires at"), "{lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_token_expiry_is_warned_of_once_and_nothing_is_written_outside_the_window() {
    let w = World::new().await;
    w.seed_refresh_token();
    // Outside the window (the emulator's refresh tokens live 7 days; the default window is 24 h):
    // no line, no file.
    w.write_manager_ini(&[]);
    let out = woci(&w, &["session", "refresh", "--profile", "P"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for _ in 0..5 {
        let out = woci(&w, &["os", "ns", "get"], &[]).await;
        assert!(!stderr(&out).contains("expires at"), "{}", stderr(&out));
    }
    assert!(!w.session_dir().join("woci-hooks.json").exists(), "no file I/O outside the window");

    // Inside it (`8d`): the renewal and the calls after it warn once, naming the refresh token.
    w.write_manager_ini(&[("expiring_warning", "8d")]);
    let mut lines = Vec::new();
    let out = woci(&w, &["session", "refresh", "--profile", "P"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    lines.extend(stderr(&out).lines().filter(|l| l.contains("expires at")).map(str::to_owned));
    for _ in 0..20 {
        let out = woci(&w, &["os", "ns", "get"], &[]).await;
        lines.extend(stderr(&out).lines().filter(|l| l.contains("expires at")).map(str::to_owned));
    }
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].starts_with("woci: warning: the refresh token of profile `P` expires at "), "{}", lines[0]);
}

/// The fallback's calls are signed by the same clock: a clock OCI refuses (as the primary's last
/// renewal showed it) is not escaped by falling back, and `--status` does not say it is (round
/// 105's review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_oci_refuses_is_not_escaped_by_the_fallback() {
    let w = World::new().await;
    write_profiles(&w, &[("P", "fallback_profile = B\n"), ("B", "")]);
    w.seed_refresh_token();
    w.seed_token(-30);
    seed_profile(&w, "B", 3600);
    w.emu.set_fault(Endpoint::IdpToken, Fault::status(503));
    std::fs::write(w.session_dir().join(".clock_skew"), r#"{"offset_ms": 600000, "boot": null}"#).unwrap();
    // A call meets the outage (recorded), so `--status` expects it again.
    woci(&w, &["os", "ns", "get"], &[]).await;
    let out = woci(&w, &["--status", "--profile", "P"], &[]).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{said}");
    assert!(!said.contains("runs as the fallback profile"), "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_runs_only_when_the_primary_cannot_be_renewed_and_its_token_is_unusable() {
    let w = World::new().await;
    let prom = prom_path(&w);
    write_profiles(
        &w,
        &[
            ("P", &format!("metrics_file = {}\nfallback_profile = B\n", prom.display())),
            ("B", "fallback_profile = C\n"),
            ("C", ""),
        ],
    );
    w.seed_refresh_token();
    w.seed_token(-30);
    seed_profile(&w, "B", 3600);
    seed_profile(&w, "C", 3600);
    w.emu.set_fault(Endpoint::IdpToken, Fault::status(503));

    // The primary's renewal fails (network) and its token is expired: the call runs as `B`.
    let out = woci(&w, &["os", "ns", "get"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let argv = w.oci_argv();
    assert_eq!(&argv[..2], ["--profile", "B"], "{argv:?}");
    assert!(!argv.contains(&"P".to_owned()), "{argv:?}");
    let err = stderr(&out);
    assert_eq!(err.lines().filter(|l| l.contains("fallback")).count(), 1, "{err}");
    assert!(
        err.contains("woci: warning: renewing the session of profile `P` failed (network: ")
            && err.contains("running the command with its fallback profile `B`"),
        "{err}"
    );
    let fallbacks = |w: &World| series(&w.read(&prom), "woci_fallbacks_total{profile=\"P\",fallback=\"B\"}");
    assert_eq!(fallbacks(&w), Some(1), "{}", w.read(&prom));

    // The user's own `--profile P` is replaced, not joined.
    let out = woci(&w, &["os", "ns", "get", "--profile", "P"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let argv = w.oci_argv();
    assert!(argv.ends_with(&["--profile".to_owned(), "B".to_owned()]), "{argv:?}");
    assert_eq!(argv.iter().filter(|a| *a == "--profile").count(), 1, "{argv:?}");
    assert_eq!(fallbacks(&w), Some(2));

    // `--exec`: the program's `OCI_CLI_PROFILE` is the fallback's, whatever the user exported.
    let seen = w.home().join("exec-profile");
    let script = format!("printf '%s' \"$OCI_CLI_PROFILE\" > '{}'", seen.display());
    let out = woci(&w, &["--exec", "--", "sh", "-c", &script], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(w.read(&seen), "B");
    assert_eq!(fallbacks(&w), Some(3));

    // `--status` names the fallback.
    let out = woci(&w, &["--status", "--json", "--profile", "P"], &[]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["fallback_profile"], "B");

    // Flags that set the primary's identity provider are not the fallback's: `D`, which has no
    // IdP settings (an `oci session authenticate` profile), runs as it is, and `--status` says so.
    let ini = w.read(&w.manager_ini_path());
    std::fs::write(w.manager_ini_path(), ini.replace("fallback_profile = B", "fallback_profile = D")).unwrap();
    seed_profile(&w, "D", 3600);
    let to_d = |w: &World| series(&w.read(&prom), "woci_fallbacks_total{profile=\"P\",fallback=\"D\"}");
    let flags = ["--token-url", "https://127.0.0.1:1/t", "--refresh-token-passphrase-env", "NONE"];
    let out = woci(&w, &[&flags[..], &["os", "ns", "get"]].concat(), &[("NONE", "x")]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!((&w.oci_argv()[..2], to_d(&w)), (&["--profile".to_owned(), "D".to_owned()][..], Some(1)));
    // `--status` too, for a failure it expects again (the IdP refusing the client).
    w.emu.clear_faults();
    let flags = ["--auth-client-id", "wrong"];
    let out = woci(&w, &[&flags[..], &["os", "ns", "get"]].concat(), &[]).await;
    assert_eq!((out.status.code(), to_d(&w)), (Some(0), Some(2)), "{}", stderr(&out));
    let out = woci(&w, &[&flags[..], &["--status"]].concat(), &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("runs as the fallback profile `D`, which is usable"), "{}", stdout(&out));
    w.emu.set_fault(Endpoint::IdpToken, Fault::status(503));
    std::fs::write(w.manager_ini_path(), ini).unwrap();

    // A usable primary token (10 minutes left; renewal is due inside the safety window, fails,
    // and the token is kept): no fallback.
    w.seed_token(600);
    let out = woci(&w, &["--refresh-safety-window", "15m", "os", "ns", "get"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(&w.oci_argv()[..2], ["--profile", "P"]);
    assert!(!stderr(&out).contains("fallback"), "{}", stderr(&out));
    assert_eq!(fallbacks(&w), Some(3));

    // A `config` failure (a refresh token the passphrase does not open): no fallback.
    w.seed_token(-30);
    lock_refresh_token(&w);
    std::fs::remove_file(&w.oci_out).unwrap();
    let out = woci(
        &w,
        &["--refresh-token-passphrase-env", "WOCI_RT_PASSPHRASE", "os", "ns", "get"],
        &[("WOCI_RT_PASSPHRASE", "wrong")],
    )
    .await;
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(!w.oci_out.exists(), "oci did not run");
    assert_eq!(fallbacks(&w), Some(3));

    // Never chained: `B` cannot be renewed either (no refresh token, no one to log in); its own
    // fallback `C` is not used.
    w.seed_refresh_token();
    seed_profile(&w, "B", -30);
    let out = woci(&w, &["os", "ns", "get"], &[]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!w.oci_out.exists(), "oci did not run");
    assert!(stderr(&out).contains("fallback profile `B`") && !stderr(&out).contains("`C`"), "{}", stderr(&out));
    assert_eq!(fallbacks(&w), Some(4), "the use of `B` is counted");
    // The error, the last line a cron mail shows, names both profiles' failures (round 100 N2).
    let last = stderr(&out).lines().last().unwrap_or_default().to_owned();
    assert!(
        last.starts_with("woci: error:") && last.contains("profile `P` fell back to `B` after its own renewal failed"),
        "{last}"
    );
    assert!(last.contains("--profile B") && last.contains("HTTP 503"), "each profile's cause: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_all_and_prompt_make_no_request_and_exit_as_status_does() {
    let w = World::new().await;
    write_profiles(&w, &[("P", "fallback_profile = B\n"), ("B", ""), ("C", "")]);
    w.seed_refresh_token();
    w.seed_token(3600);
    seed_profile(&w, "B", -30);
    std::fs::write(w.oci_dir().join("sessions/B/refresh_token"), w.emu.issue_refresh_token()).unwrap();
    let before = w.emu.stats().requests;

    let out = woci(&w, &["--status", "--all", "--json"], &[]).await;
    assert_eq!(out.status.code(), Some(3), "C needs a login: {}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let entries = v["profiles"].as_array().unwrap();
    let by = |p: &str| entries.iter().find(|e| e["profile"] == p).unwrap_or_else(|| panic!("{p} in {v}")).clone();
    assert_eq!(entries.len(), 3, "{v}");
    assert_eq!((by("P")["state"].as_str(), by("P")["exit_code"].as_u64()), (Some("usable"), Some(0)));
    assert_eq!(by("P")["fallback_profile"], "B");
    assert_eq!(by("P")["daemon"], "stopped");
    assert!(by("P")["token_expires_at"].as_i64().unwrap() > unix_now() + 3500);
    assert_eq!((by("B")["state"].as_str(), by("B")["exit_code"].as_u64()), (Some("renewable"), Some(0)));
    assert_eq!(by("B")["fallback_profile"], serde_json::Value::Null);
    assert_eq!((by("C")["state"].as_str(), by("C")["exit_code"].as_u64()), (Some("login_needed"), Some(3)));
    for e in entries {
        // Each entry's state and code are its own `--status`'s.
        let own = woci(&w, &["--status", "--json", "--profile", e["profile"].as_str().unwrap()], &[]).await;
        let s: serde_json::Value = serde_json::from_slice(&own.stdout).unwrap();
        assert_eq!(own.status.code().map(i64::from), e["exit_code"].as_i64(), "{e}");
        assert_eq!(s["exit_code"], e["exit_code"]);
    }

    let out = woci(&w, &["--status", "--all"], &[]).await;
    assert_eq!(out.status.code(), Some(3));
    let text = stdout(&out);
    assert!(text.starts_with("PROFILE") && text.lines().count() == 4, "{text}");

    for (p, line, code) in [("P", "P 59m", 0), ("B", "B expired", 0), ("C", "C login", 3)] {
        let out = woci(&w, &["--status", "--prompt", "--profile", p], &[]).await;
        assert_eq!(out.status.code(), Some(code), "{p}: {}", stderr(&out));
        let got = stdout(&out);
        let got = got.trim_end();
        assert!(got == line || (p == "P" && got == "P 1h00m"), "{p}: {got:?}");
        assert!(got.chars().count() <= 40);
    }

    // Without C, every profile is usable or renewable.
    let ini = w.read(&w.manager_ini_path());
    std::fs::write(w.manager_ini_path(), ini.split("\n[C]\n").next().unwrap()).unwrap();
    let out = woci(&w, &["--status", "--all", "--json"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(w.emu.stats().requests, before, "no network request");
}

/// `--status` counts the fallback: a primary that needs a login, with a usable fallback profile,
/// is usable (the call runs as the fallback), and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_counts_a_usable_fallback() {
    let w = World::new().await;
    write_profiles(&w, &[("P", "fallback_profile = B\n"), ("B", "")]);
    seed_profile(&w, "B", 3600);
    w.seed_token(-30);
    let out = woci(&w, &["--status", "--json", "--profile", "P"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["usable"].as_bool(), v["next_action"].as_str()), (Some(true), Some("login")), "{v}");
    assert!(
        v["reason"].as_str().unwrap().contains("if no login completes, the call then runs as the fallback profile B"),
        "{v}"
    );
    assert_eq!(v["runs_as"], "B", "{v}");
    let out = woci(&w, &["os", "ns", "get"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "the call agrees: {}", stderr(&out));
    // So do the prompt and `--status --all`, which say that it is the fallback that works.
    let out = woci(&w, &["--status", "--prompt", "--profile", "P"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "P fallback\n");
    let out = woci(&w, &["--status", "--all", "--json"], &[]).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = v["profiles"].as_array().unwrap().iter().find(|p| p["profile"] == "P").unwrap().clone();
    assert_eq!((p["exit_code"].as_u64(), p["state"].as_str()), (Some(0), Some("fallback")), "{v}");
    let out = woci(&w, &["--status", "--all"], &[]).await;
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("P ") && l.contains(" fallback ") && l.ends_with(" B")), "{text}");
}

/// A `fallback_profile` that exists nowhere (a typo) is named by `--status` while the profile
/// works, and is not used when it fails: the call gets the profile's own error, not one about
/// the typo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_profile_that_exists_nowhere_is_named_and_not_used() {
    use woci_emulator::{Endpoint, Fault};
    let w = World::new().await;
    write_profiles(&w, &[("P", "fallback_profile = NOPE\n")]);
    w.seed_token(3600);
    w.seed_refresh_token();
    let out = woci(&w, &["--status", "--json", "--profile", "P"], &[]).await;
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["reason"].as_str().unwrap().contains("fallback profile NOPE exists nowhere"), "{v}");
    w.seed_token(-30);
    w.emu.set_fault(Endpoint::IdpToken, Fault::status(503));
    let out = woci(&w, &["os", "ns", "get"], &[]).await;
    assert_eq!(out.status.code(), Some(6), "the profile's own network error: {}", stderr(&out));
    assert!(stderr(&out).contains("fallback profile `NOPE` exists nowhere"), "{}", stderr(&out));
    assert!(!w.home().join(".oci/sessions/NOPE").exists());
}

/// `--status` and `[COMMON]`: `fallback_profile = COMMON` can never be used (that section is every
/// profile's), which is said while the profile works (round 79 N3); a setting whose value comes
/// from `[COMMON]` says so (round 77 N4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_what_comes_from_the_common_section() {
    let w = World::new().await;
    write_profiles(&w, &[("P", "fallback_profile = COMMON\n")]);
    let ini = w.read(&w.manager_ini_path()).replace("[COMMON]\n", "[COMMON]\nlogin_timeout = 300\n");
    std::fs::write(w.manager_ini_path(), ini).unwrap();
    w.seed_token(3600);
    w.seed_refresh_token();
    let out = woci(&w, &["--status", "--json", "--profile", "P"], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("its fallback profile COMMON cannot be used") && reason.contains("every profile shares"),
        "{v}"
    );
    // The text says which settings come from `[COMMON]` (round 77 N4).
    let out = woci(&w, &["--status", "--profile", "P"], &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let line =
        |k: &str| text.lines().find(|l| l.starts_with(&format!("setting: `{k}`"))).unwrap_or_default().to_owned();
    assert!(line("login_timeout").ends_with("woci_manager.ini [COMMON]"), "{text}");
    assert!(line("token_url").ends_with("woci_manager.ini"), "{text}");
}

/// Runs woci with `args` in a terminal (`script`), typing each of `keys` after a pause, and
/// returns its exit status and everything it wrote.
async fn in_a_terminal(w: &World, args: &str, keys: &[&str]) -> (Option<i32>, String) {
    typing_into(w.woci_in_a_terminal(args), keys).await
}

/// Runs `c` (from [`World::woci_in_a_terminal`]), typing each of `keys` after a pause.
async fn typing_into(mut c: std::process::Command, keys: &[&str]) -> (Option<i32>, String) {
    use std::io::Write;
    c.stdin(std::process::Stdio::piped());
    let mut child = c.spawn().expect("util-linux `script` runs (it provides the terminal)");
    let mut stdin = child.stdin.take().unwrap();
    let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        for k in keys {
            std::thread::sleep(Duration::from_millis(800));
            let _ = stdin.write_all(k.as_bytes());
        }
        std::thread::sleep(Duration::from_millis(800));
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// An expired or valid (`exp_in`) session whose refresh token is encrypted with `right`.
fn sealed_session(w: &World, exp_in: i64) {
    w.seed_token(exp_in);
    let rt = w.seed_refresh_token();
    let sealed = woci::crypto::seal(&woci::secret::SecretString::from(rt.as_str()), &"right".into());
    std::fs::write(w.session_dir().join("refresh_token"), sealed).unwrap();
}

/// A passphrase asked on the terminal that encrypts the refresh token for the first time is asked
/// twice; two that differ (or none given) are asked again, three times at most, and change nothing
/// (no grant sent, the refresh token as it was); the same twice seals the new refresh token with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_prompted_passphrase_is_asked_twice() {
    let w = World::new().await;
    w.seed_token(-30);
    let rt = w.seed_refresh_token();
    let differ = ["a\n", "b\n", "c\n", "d\n", "e\n", "f\n"];
    let (status, text) = in_a_terminal(&w, "--refresh-token-passphrase-prompt session refresh", &differ).await;
    assert!(text.contains("new refresh token passphrase") && text.contains("passphrases differ"), "{text}");
    assert_eq!(text.matches("try again").count(), 2, "{text}");
    assert_eq!(status, Some(2), "{text}");
    assert_eq!(w.read(&w.session_dir().join("refresh_token")), rt, "the refresh token is as it was");
    assert_eq!(w.emu.stats().refresh_grants, 0);
    // Stray Enters are asked again; three of them store nothing unencrypted behind the setting's back.
    let blank = ["\n", "\n", "\n"];
    let (status, text) = in_a_terminal(&w, "--refresh-token-passphrase-prompt session refresh", &blank).await;
    assert_eq!(text.matches("no passphrase given; try again").count(), 2, "{text}");
    assert!(text.contains("remove the `--refresh-token-passphrase-prompt` flag"), "{text}");
    assert_eq!(status, Some(2), "{text}");
    assert_eq!(w.read(&w.session_dir().join("refresh_token")), rt, "the refresh token is as it was");
    assert_eq!(w.emu.stats().refresh_grants, 0);
    let typo = ["\n", "first-typo\n", "intended\n", "intended\n", "intended\n"];
    let (status, text) = in_a_terminal(&w, "--refresh-token-passphrase-prompt session refresh", &typo).await;
    assert_eq!(status, Some(0), "{text}");
    let sealed = std::fs::read_to_string(w.session_dir().join("refresh_token")).unwrap();
    assert!(woci::crypto::open(&sealed, &"intended".into()).is_ok(), "sealed with the passphrase typed twice");
}

/// A login asked for the passphrase of the encrypted refresh token it replaces: an answer that
/// does not open that token would become the new one's passphrase, so it is asked again first,
/// within three tries as a new one is; three pairs that differ log nothing in, the same twice
/// seal the new refresh token with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_confirms_a_passphrase_that_does_not_open_the_old_token() {
    let w = World::new().await;
    sealed_session(&w, -30);
    let login = || {
        let mut c = w.woci_in_a_terminal("--refresh-token-passphrase-prompt session authenticate");
        c.env("BROWSER", &w.browser);
        c
    };
    let (status, text) = typing_into(login(), &["rigth\n", "right\n", "a\n", "b\n", "c\n", "d\n"]).await;
    assert!(text.contains("does not open the stored refresh token") && text.contains("differ; try again"), "{text}");
    assert_eq!(text.matches("type it again").count(), 3, "{text}");
    assert_eq!(status, Some(2), "{text}");
    assert_eq!(w.emu.stats().auth_code_grants, 0, "no login happened");
    let (status, text) = typing_into(login(), &["frseh\n", "fresh\n", "fresh\n", "fresh\n"]).await;
    assert!(text.contains("differ; try again"), "{text}");
    assert_eq!(status, Some(0), "{text}");
    let sealed = std::fs::read_to_string(w.session_dir().join("refresh_token")).unwrap();
    assert!(woci::crypto::open(&sealed, &"fresh".into()).is_ok(), "sealed with the confirmed passphrase");
    // The passphrase that opens the token is asked once, as before.
    let (status, text) = typing_into(login(), &["fresh\n"]).await;
    assert!(!text.contains("type it again"), "{text}");
    assert_eq!(status, Some(0), "{text}");
    // A stray Enter is asked again.
    let (status, text) = typing_into(login(), &["\n", "fresh\n"]).await;
    assert!(text.contains("no passphrase given") && !text.contains("type it again"), "{text}");
    assert_eq!(status, Some(0), "{text}");
}

/// `--exec` with the prompt asks before the program starts (never while it has the terminal)
/// and keeps the answer for the run; a passphrase that does not open the refresh token starts
/// nothing (exit 8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompted_passphrase_is_asked_before_the_program_starts() {
    let w = World::new().await;
    sealed_session(&w, 3600);
    for (typed, code) in [("right\n", 0), ("wrong\n", 8)] {
        let args = "--refresh-token-passphrase-prompt --exec -- sh -c 'echo program-started'";
        let (status, text) = in_a_terminal(&w, args, &[typed]).await;
        let asked = text.find("refresh token passphrase for profile").unwrap_or_else(|| panic!("{text}"));
        match code {
            0 => assert!(text.find("program-started").is_some_and(|at| at > asked), "{text}"),
            _ => assert!(!text.contains("program-started") && text.contains("does not open it"), "{text}"),
        }
        assert_eq!(status, Some(code), "{typed}: {text}");
    }
}

/// Ctrl-C at the passphrase prompt ends woci as Ctrl-C does (130) and leaves the terminal as it
/// was: the prompt turned echo off, and a script going on after woci would type blind. It is the
/// terminal's Ctrl-C, which reaches the whole foreground group: the shell (or kubectl) that ran
/// woci gets it too, rather than go on or run woci again to ask once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_the_passphrase_prompt_gives_the_terminal_back() {
    let w = World::new().await;
    w.seed_token(-30);
    w.seed_refresh_token();
    let line = format!(
        "trap 'echo shell-got-ctrl-c' INT; '{}' --refresh-token-passphrase-prompt session refresh; echo \"rc=$?\"; \
         stty -a | grep -o -- '-*echo ' | head -1",
        woci_bin().display()
    );
    let (_, text) = typing_into(w.in_a_terminal(&line), &["\x03"]).await;
    assert!(text.contains("new refresh token passphrase") && text.contains("rc=130"), "{text}");
    assert!(text.contains("shell-got-ctrl-c"), "the Ctrl-C reached woci alone: {text}");
    assert!(text.contains("echo ") && !text.contains("-echo "), "echo is off after woci: {text}");
    assert_eq!(w.emu.stats().refresh_grants, 0);
}

/// A passphrase prompt nobody answers (a forgotten terminal) holds no lock: another call, with
/// the passphrase in a variable, renews at once instead of waiting minutes for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_passphrase_prompt_keeps_no_one_waiting() {
    let w = World::new().await;
    sealed_session(&w, -30);
    let mut prompting = w.woci_in_a_terminal("--refresh-token-passphrase-prompt os ns get");
    prompting.stdin(std::process::Stdio::piped());
    let mut prompting = prompting.spawn().expect("util-linux `script` runs (it provides the terminal)");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = std::time::Instant::now();
    let out = run({
        let mut c = w.woci();
        c.env("PP", "right").args(["--refresh-token-passphrase-env", "PP", "os", "ns", "get"]);
        c
    })
    .await;
    let _ = prompting.kill();
    let _ = prompting.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("waiting for another woci"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

/// Ctrl-D at the passphrase prompt ends it, said on a line of its own (it was "no terminal?"):
/// nothing is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_d_at_the_passphrase_prompt_ends_it() {
    let w = World::new().await;
    sealed_session(&w, -30);
    let (status, text) = in_a_terminal(&w, "--refresh-token-passphrase-prompt os ns get", &["\x04"]).await;
    assert_eq!(status, Some(3), "{text}");
    assert!(text.contains("was ended (Ctrl-D); nothing was sent") && !text.contains("no terminal?"), "{text}");
    assert!(text.contains("\nwoci: error: the refresh token passphrase prompt"), "on a line of its own: {text:?}");
    assert_eq!(w.emu.stats().refresh_grants, 0);
}

/// Round 46: `--status` in a job without a terminal (cron, CI) said a prompted passphrase would be
/// asked (usable, exit 0), while a call there fails with exit 3; in a terminal it is asked. Inside
/// a wide safety window the call runs with the token (minutes left) instead: usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompted_passphrase_without_a_terminal_makes_the_profile_unusable_there() {
    let w = World::new().await;
    sealed_session(&w, -30);
    // `setsid` takes the controlling terminal away, as cron has none.
    let job = |args: &[&str]| {
        let mut c = w.woci_std_at(Path::new("/usr/bin/setsid"));
        c.arg("-w").arg(woci_bin()).arg("--refresh-token-passphrase-prompt").args(args);
        c.stdin(std::process::Stdio::null());
        c.output().expect("util-linux `setsid` runs")
    };
    let status = job(&["--status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(3), "{text}");
    assert!(text.contains("no terminal here") && text.contains("--refresh-token-passphrase-env"), "{text}");
    assert_eq!(job(&["os", "ns", "get"]).status.code(), Some(3), "the prediction holds");
    let mut terminal = w.woci_in_a_terminal("--refresh-token-passphrase-prompt --status");
    terminal.env("WOCI_OCI_COMMAND", &w.fake_oci);
    let (code, text) = typing_into(terminal, &[]).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("the next call asks for the passphrase"), "{text}");
    // Inside a wide safety window the call runs with a token that has minutes left: usable.
    w.seed_token(240);
    let wide = ["--refresh-safety-window", "10m"];
    let status = job(&[&wide[..], &["--status"]].concat());
    assert_eq!(status.status.code(), Some(0), "{}", String::from_utf8_lossy(&status.stdout));
    assert!(String::from_utf8_lossy(&status.stdout).contains("until then a call here runs with the current token"));
    let call = job(&[&wide[..], &["os", "ns", "get"]].concat());
    assert_eq!(call.status.code(), Some(0), "the prediction holds: {}", String::from_utf8_lossy(&call.stderr));
    assert!(String::from_utf8_lossy(&call.stderr).contains("running with the current token"));
    assert_eq!(w.emu.stats().refresh_grants, 0);
    // A plain refresh token is sealed with a new passphrase, asked twice: not here either (round 89 F3).
    w.seed_token(-30);
    w.seed_refresh_token();
    let status = job(&["--status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(3), "{text}");
    assert!(text.contains("asks for a new passphrase (twice)") && text.contains("no terminal here"), "{text}");
    assert_eq!(job(&["os", "ns", "get"]).status.code(), Some(3), "the prediction holds");
}
