//! End to end with the real `oci` CLI (PyPI `oci-cli`, installed by `scripts/setup-e2e`) against
//! the emulator over TLS: the re-signing proxy keeps a long multipart upload alive across many
//! short-lived session tokens, and the same upload without the proxy dies with 401.

mod common;

use common::peers;
use common::*;
use peers::oci_cli;
use std::path::{Path, PathBuf};
use std::time::Duration;
use woci_emulator::Config;

const MIB: usize = 1024 * 1024;

/// Emulator with TLS and short-lived UPSTs, a seeded refresh token, and the real `oci`.
struct Upload {
    w: World,
    ca_file: PathBuf,
    data: PathBuf,
    data_hash: String,
}

async fn upload_world(upst_ttl: Duration, part_delay: Duration, size: usize) -> Upload {
    let cfg = Config { tls: true, upst_ttl, part_delay, ..Config::default() };
    let w = World::with_config(cfg).await;
    w.seed_refresh_token();
    let ca_file = w.home().join("emulator-ca.pem");
    std::fs::write(&ca_file, w.emu.ca_pem().expect("TLS emulator has a CA")).unwrap();
    let data = w.home().join("blob.bin");
    // Incompressible, deterministic content so a bad part cannot hash equal by accident.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&data, &bytes).unwrap();
    let data_hash = sha256_hex(&bytes);
    Upload { w, ca_file, data, data_hash }
}

impl Upload {
    /// `woci` running the real `oci`, trusting the emulator's CA. The emulator's host is re-signed
    /// because the commands name it with `--endpoint`, as a user would: no `resign_hosts`. The
    /// emulator is the auth service too (only used by profiles without an IdP, whose 5 s token
    /// may need a refresh again by the time the download starts).
    fn woci(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::from_std(self.woci_std());
        c.timeout(Duration::from_secs(600));
        c
    }

    fn woci_std(&self) -> std::process::Command {
        let mut c = self.w.woci_std();
        c.env("WOCI_OCI_COMMAND", oci_cli())
            .env("WOCI_AUTH_ENDPOINT", self.w.emu.auth_endpoint())
            .env("REQUESTS_CA_BUNDLE", &self.ca_file)
            .env("SSL_CERT_FILE", &self.ca_file)
            .env("OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING", "True");
        c
    }

    /// The real `oci` run directly with the session woci keeps (what woci adds: the profile and
    /// `--auth security_token`), trusting the emulator's CA.
    fn oci_std(&self) -> std::process::Command {
        let mut c = peers::oci_command(self.w.home());
        c.env("REQUESTS_CA_BUNDLE", &self.ca_file).env("SSL_CERT_FILE", &self.ca_file).args([
            "--profile",
            &self.w.profile,
            "--auth",
            "security_token",
        ]);
        c
    }

    fn os_args(&self, verb: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = ["os", "object"].iter().chain(verb).map(|s| s.to_string()).collect();
        v.extend([
            "--endpoint".into(),
            self.w.emu.os_endpoint(),
            "--namespace".into(),
            self.w.cfg.namespace.clone(),
            "--bucket-name".into(),
            "e2e".into(),
        ]);
        v
    }

    fn put_args(&self, name: &str) -> Vec<String> {
        let mut v = self.os_args(&["put"]);
        v.extend(
            [
                "--name",
                name,
                "--file",
                self.data.to_str().unwrap(),
                "--part-size",
                "1",
                "--parallel-upload-count",
                "3",
                "--force",
            ]
            .map(String::from),
        );
        v
    }

    async fn download_hash(&self, name: &str) -> String {
        let dest = self.w.home().join(format!("{name}.down"));
        let mut args = self.os_args(&["get"]);
        args.extend(["--name".into(), name.into(), "--file".into(), dest.to_str().unwrap().into()]);
        let out = run({
            let mut c = self.woci();
            c.args(&args);
            c
        })
        .await;
        assert!(out.status.success(), "download failed: {}", stderr(&out));
        sha256_file(&dest)
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_oci_ns_get_after_a_renewal() {
    let u = upload_world(Duration::from_secs(3600), Duration::ZERO, MIB).await;
    let out = run({
        let mut c = u.woci();
        c.args(["os", "ns", "get", "--endpoint", &u.w.emu.os_endpoint()]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&u.w.cfg.namespace), "oci printed: {stdout}");
    // woci's key file ends with the `OCI_API_KEY` line, so oci has nothing to warn about.
    assert!(!stderr(&out).contains("OCI_API_KEY"), "oci warned about woci's key file: {}", stderr(&out));
    let st = u.w.emu.stats();
    assert_eq!((st.refresh_grants, st.exchanges), (1, 1));
    assert_eq!(file_mode(&u.w.token_path()), 0o600);
    assert_eq!(file_mode(&u.w.session_dir()), 0o700);
}

/// The heart of the product: a multipart upload lasting more than five token lifetimes succeeds,
/// its requests are signed with at least three different tokens, no request gets a 401, and the
/// downloaded copy is identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auto_refresh_upload_outlives_five_token_lifetimes() {
    let ttl = Duration::from_secs(5);
    // 30 parts of 1 MiB, 3 in parallel, each answered after 3 s: at least 30 s of upload.
    let u = upload_world(ttl, Duration::from_secs(3), 30 * MIB).await;
    let started = std::time::Instant::now();
    let out = run({
        let mut c = u.woci();
        c.arg("--auto-refresh").args(u.put_args("big"));
        c
    })
    .await;
    let elapsed = started.elapsed();
    assert!(out.status.success(), "upload failed: {}", stderr(&out));
    assert!(elapsed > ttl * 5, "the upload must outlive 5 token lifetimes to prove anything (took {elapsed:?})");

    let st = u.w.emu.stats();
    assert_eq!(st.unauthorized, 0, "no request may be refused: {:?}", st.unauthorized_by_reason);
    assert!(st.os_jtis.len() >= 3, "requests were signed with {} tokens: {:?}", st.os_jtis.len(), st.os_jtis);
    assert!(st.parts_uploaded >= 30, "{} parts", st.parts_uploaded);
    eprintln!("upload took {elapsed:?}, signed with {} tokens, {} refresh grants", st.os_jtis.len(), st.refresh_grants);
    assert_eq!(u.download_hash("big").await, u.data_hash);
    assert_no_secrets(&stderr(&out), &[&u.w.read(&u.w.token_path()), &u.w.cfg.exchange_client_secret]);
}

/// `woci --exec -- oci … --profile P --endpoint X`: the profile and endpoint given to `oci`
/// itself (none to woci, no `OCI_CLI_PROFILE`) choose the session woci keeps fresh and the host
/// it re-signs, so an upload across token lifetimes gets no 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_of_oci_follows_ocis_own_profile_and_endpoint() {
    let ttl = Duration::from_secs(5);
    let u = upload_world(ttl, Duration::from_secs(3), 12 * MIB).await;
    let out = run({
        let mut c = u.woci();
        c.env_remove("OCI_CLI_PROFILE").args(["--exec", "--"]).arg(oci_cli()).args(u.put_args("via-exec")).args([
            "--auth",
            "security_token",
            "--profile",
            &u.w.profile,
        ]);
        c
    })
    .await;
    assert!(out.status.success(), "upload failed: {}", stderr(&out));
    let st = u.w.emu.stats();
    assert_eq!(st.unauthorized, 0, "no request may be refused: {:?}", st.unauthorized_by_reason);
    assert!(st.os_jtis.len() >= 2, "requests were signed with {} tokens", st.os_jtis.len());
    assert_eq!(u.download_hash("via-exec").await, u.data_hash);
}

/// The control experiment: the same upload without the proxy fails with 401 once the token it
/// started with expires. Without this, the test above could pass for the wrong reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_proxy_the_same_upload_dies_with_401() {
    let ttl = Duration::from_secs(5);
    let u = upload_world(ttl, Duration::from_secs(3), 30 * MIB).await;
    let out = run({
        let mut c = u.woci();
        c.args(["--auto-refresh", "--no-resign-proxy"]).args(u.put_args("big"));
        c
    })
    .await;
    assert!(!out.status.success(), "the upload cannot survive without the proxy");
    let st = u.w.emu.stats();
    assert!(st.unauthorized > 0, "the failure must be a 401 from the service");
    assert!(stderr(&out).contains("NotAuthenticated"), "oci reports the 401: {}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oci_exit_code_and_output_pass_through_the_proxy() {
    let u = upload_world(Duration::from_secs(3600), Duration::ZERO, MIB).await;
    let mut args = u.os_args(&["head"]);
    args.extend(["--name".into(), "does-not-exist".into()]);
    let out = run({
        let mut c = u.woci();
        c.arg("--auto-refresh").args(&args);
        c
    })
    .await;
    // oci exits non-zero on a 404 and says so on stderr; woci adds nothing and changes nothing.
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

/// A profile made by `oci session authenticate` (key + UPST, no identity provider): woci renews it
/// through OCI's session refresh, the long upload survives, and woci says up front when the
/// session itself (`sess_exp`) ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn session_authenticate_profile_upload_survives_through_session_refresh() {
    let ttl = Duration::from_secs(5);
    let u = upload_world(ttl, Duration::from_secs(3), 30 * MIB).await;
    let w = &u.w;
    let (_key, token) = w.seed_session_profile(ttl);
    let _ = std::fs::remove_file(w.session_dir().join("refresh_token"));

    let out = run({
        let mut c = u.woci();
        c.arg("--auto-refresh").args(u.put_args("big"));
        c
    })
    .await;
    assert!(out.status.success(), "upload failed: {}", stderr(&out));
    let st = w.emu.stats();
    assert_eq!((st.refresh_grants, st.exchanges), (0, 0), "no IdP is involved");
    assert!(st.session_refreshes >= 3, "{} session refreshes", st.session_refreshes);
    assert_eq!(st.unauthorized, 0, "{:?}", st.unauthorized_by_reason);
    assert!(st.os_jtis.len() >= 3, "signed with {} tokens", st.os_jtis.len());
    assert!(stderr(&out).contains("sess_exp"), "woci warns when the session ends: {}", stderr(&out));
    assert_eq!(u.download_hash("big").await, u.data_hash);
    assert_no_secrets(&stderr(&out), &[&token, &w.read(&w.token_path())]);
}

/// What a pipeline `cmd … | tee log` gave: the exit status of `cmd` (`pipefail`), what `tee`
/// wrote to the log, and `cmd`'s stderr.
struct Teed {
    code: Option<i32>,
    log: String,
    stderr: String,
}

/// Runs `cmd` as `bash -c 'set -o pipefail; "$@" | tee LOG'`, with `cmd`'s environment: its
/// stdout is a pipe, as for a user who keeps a log of a `--debug` run. Bounded by `timeout`
/// (exit 124): an `oci` whose stdout breaks retries its request for minutes.
async fn through_tee(cmd: std::process::Command, log: PathBuf) -> Teed {
    let mut sh = std::process::Command::new("bash");
    sh.args(["-c", r#"set -o pipefail; timeout -k 10 180 "$@" | tee "$0" >/dev/null"#])
        .arg(&log)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.stdin(std::process::Stdio::null());
    let out = tokio::task::spawn_blocking(move || sh.output().expect("bash runs")).await.unwrap();
    Teed {
        code: out.status.code(),
        log: std::fs::read_to_string(&log).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The JSON document `oci` prints last on stdout (after the `--debug` HTTP trace), if any.
fn json_result(stdout: &str) -> Option<serde_json::Value> {
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines.iter().rposition(|l| *l == "{")?;
    Some(serde_json::from_str(&lines[start..].join("\n")).expect("oci's result is JSON"))
}

/// The Python loggers that wrote `LEVEL:logger:` lines (without the per-client number
/// `oci.base_client.140680604581328`).
fn loggers(stderr: &str) -> std::collections::BTreeSet<String> {
    stderr
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (level, logger) = (parts.next()?, parts.next()?);
            ["DEBUG", "INFO", "WARNING", "ERROR"].contains(&level).then(|| {
                let logger = logger.trim_end_matches(|c: char| c.is_ascii_digit()).trim_end_matches('.');
                format!("{level}:{logger}")
            })
        })
        .collect()
}

/// The requests `oci` traced (`send: b'GET …`), without the proxy's `CONNECT`s.
fn requests_sent(stdout: &str) -> usize {
    stdout.lines().filter(|l| l.starts_with("send: b'") && !l.starts_with("send: b'CONNECT")).count()
}

/// `woci … --debug | tee log` and `woci --auto-refresh … --debug | tee log` behave like
/// `oci … --debug | tee log` with the same session: the same exit status, the same JSON result,
/// the HTTP trace of every request and every logger's lines, for a call that succeeds and one
/// the service refuses (404); and neither the session token nor its `ST$` keyId is in woci's
/// output. (The release build once panicked in the redacting relay here: nothing was printed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn debug_through_a_pipe_behaves_like_oci_debug() {
    let u = upload_world(Duration::from_secs(3600), Duration::ZERO, MIB).await;
    let endpoint = u.w.emu.os_endpoint();
    // A first call renews the session, so that `oci` alone can use it too.
    let out = run({
        let mut c = u.woci();
        c.args(["os", "ns", "get", "--endpoint", &endpoint]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let token = u.w.read(&u.w.token_path());

    let mut missing = vec!["os".to_owned(), "object".into(), "head".into()];
    missing.extend(u.os_args(&[]).into_iter().skip(2));
    missing.extend(["--name".into(), "does-not-exist".into()]);
    let ns_get = ["os", "ns", "get", "--endpoint", &endpoint].map(String::from).to_vec();
    for (case, args, code) in [("ns get", ns_get, 0), ("head of a missing object", missing, 1)] {
        let args: Vec<String> = args.into_iter().chain(["--debug".into()]).collect();
        let mut oci = u.oci_std();
        oci.args(&args);
        let want = through_tee(oci, u.w.home().join("oci.log")).await;
        assert_eq!(want.code, Some(code), "{case}: oci --debug itself: {}", want.stderr);
        let refused = "oci.exceptions.ServiceError: {'target_service': 'object_storage', 'status': 404";
        assert_eq!(want.stderr.contains(refused), code != 0, "{case}: {}", want.stderr);
        assert!(requests_sent(&want.log) > 0 && !loggers(&want.stderr).is_empty(), "{case}: oci traced: {}", want.log);

        for mode in [&[][..], &["--auto-refresh"]] {
            let mut woci = u.woci_std();
            woci.args(mode).args(&args);
            let got = through_tee(woci, u.w.home().join("woci.log")).await;
            let what = format!("{case}, woci {mode:?}:\n--- log\n{}\n--- stderr\n{}", got.log, got.stderr);
            assert_eq!(got.code, want.code, "{what}");
            assert_eq!(json_result(&got.log), json_result(&want.log), "{what}");
            assert_eq!(requests_sent(&got.log), requests_sent(&want.log), "{what}");
            assert!(got.log.contains("\nreply: 'HTTP/1.1 "), "{what}");
            let (want_loggers, got_loggers) = (loggers(&want.stderr), loggers(&got.stderr));
            assert!(
                want_loggers.is_subset(&got_loggers),
                "{what}\nmissing loggers: {:?}",
                want_loggers.difference(&got_loggers)
            );
            // With `--debug`, oci ends a refused call with the exception's traceback.
            assert_eq!(got.stderr.contains(refused), want.stderr.contains(refused), "{what}");
            let all = format!("{}{}", got.log, got.stderr);
            assert!(!all.contains("ST$"), "{what}");
            assert_no_secrets(&all, &[&token]);
        }
    }
}
