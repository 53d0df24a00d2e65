//! End to end, CI federation with the real `oci` CLI (PyPI `oci-cli`, installed by
//! `scripts/setup-e2e`) against the emulator over TLS, as a GitHub Actions job runs it: a
//! `github-actions` profile (no refresh token, no IdP login keys) keeps a multipart upload alive
//! through `--auto-refresh` across many 5-second UPSTs, each minted from a fresh ID-token JWT, and a
//! later plain `oci` step works from the config woci wrote.

mod common;

use common::peers::{oci_cli, oci_command};
use common::*;
use std::time::Duration;
use woci_emulator::Config;

const MIB: usize = 1024 * 1024;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn github_actions_job_upload_outlives_five_tokens_and_a_later_plain_oci_step_works() {
    let ttl = Duration::from_secs(5);
    // 30 parts of 1 MiB, 3 in parallel, each answered after 3 s: at least 30 s of upload.
    let cfg = Config { tls: true, upst_ttl: ttl, part_delay: Duration::from_secs(3), ..Config::default() };
    let w = World::with_config(cfg).await;
    let ca_file = w.home().join("emulator-ca.pem");
    std::fs::write(&ca_file, w.emu.ca_pem().expect("TLS emulator has a CA")).unwrap();
    std::fs::write(
        w.manager_ini_path(),
        format!(
            "[{}]\nsubject_token_source = github-actions\ntoken_exchange_url = {}\nclient_id = {}\nclient_secret = {}\nregion = us-ashburn-1\n",
            w.profile,
            w.emu.exchange_url(),
            w.cfg.exchange_client_id,
            w.cfg.exchange_client_secret
        ),
    )
    .unwrap();
    let data = w.home().join("build.tar");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let bytes: Vec<u8> = (0..30 * MIB)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&data, &bytes).unwrap();
    let host = w.emu.os_endpoint().trim_start_matches("https://").to_owned();
    let endpoint = w.emu.os_endpoint();
    let ns = w.cfg.namespace.clone();
    let woci = || {
        let mut c = w.woci();
        c.env("WOCI_OCI_COMMAND", oci_cli())
            .env("REQUESTS_CA_BUNDLE", &ca_file)
            .env("SSL_CERT_FILE", &ca_file)
            .env("WOCI_RESIGN_HOSTS", &host)
            .env("OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING", "True")
            .env("ACTIONS_ID_TOKEN_REQUEST_URL", w.emu.actions_id_token_url())
            .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", w.emu.actions_request_token())
            .timeout(Duration::from_secs(600));
        c
    };

    let started = std::time::Instant::now();
    let out = run({
        let mut c = woci();
        c.arg("--auto-refresh").args(["os", "object", "put", "--endpoint", &endpoint, "--namespace", &ns]).args([
            "--bucket-name",
            "ci",
            "--name",
            "build.tar",
            "--file",
            data.to_str().unwrap(),
            "--part-size",
            "1",
            "--parallel-upload-count",
            "3",
            "--force",
        ]);
        c
    })
    .await;
    let elapsed = started.elapsed();
    assert!(out.status.success(), "upload failed: {}", stderr(&out));
    assert!(elapsed > ttl * 5, "the upload must outlive 5 token lifetimes to prove anything (took {elapsed:?})");
    let st = w.emu.stats();
    assert_eq!(st.unauthorized, 0, "no request may be refused: {:?}", st.unauthorized_by_reason);
    assert!(st.os_jtis.len() >= 5, "requests were signed with {} tokens", st.os_jtis.len());
    assert!(st.actions_id_tokens >= 2, "{} ID-token requests", st.actions_id_tokens);
    // One fresh JWT per renewal; the last may have been let go, its exchange not sent, when the
    // upload ended (README: a renewal in flight when the program ends is let go).
    let (jwts, exchanges) = (st.actions_id_tokens, st.exchanges);
    assert!(
        exchanges <= jwts && jwts <= exchanges + 1,
        "one fresh JWT per renewal: {jwts} JWTs, {exchanges} exchanges"
    );
    assert_eq!((st.refresh_grants, st.auth_code_grants), (0, 0));
    assert!(!w.session_dir().join("refresh_token").exists());
    assert_eq!(w.emu.object("ci", "build.tar").map(|b| sha256_hex(&b)), Some(sha256_hex(&bytes)));
    eprintln!("upload took {elapsed:?}: {} tokens signed it, {} ID-token JWTs", st.os_jtis.len(), st.actions_id_tokens);
    assert_no_secrets(
        &stderr(&out),
        &[&w.read(&w.token_path()), &w.cfg.exchange_client_secret, &w.emu.actions_request_token()],
    );

    // A later step of the job: one renewal with hour-long tokens, then the plain `oci` (not woci)
    // from the config and session files woci wrote.
    w.emu.set_upst_ttl(Duration::from_secs(3600));
    let out = run({
        let mut c = woci();
        c.args(["session", "refresh"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tokio::task::spawn_blocking({
        let home = w.home().to_owned();
        let (ca_file, endpoint, profile) = (ca_file.clone(), endpoint.clone(), w.profile.clone());
        move || {
            oci_command(&home)
                .env("REQUESTS_CA_BUNDLE", &ca_file)
                .args(["os", "ns", "get", "--endpoint", &endpoint, "--profile", &profile, "--auth", "security_token"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "plain oci failed: {}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&ns), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(w.emu.stats().unauthorized, 0);
}
