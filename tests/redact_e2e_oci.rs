//! `--debug` with the real `oci` CLI (PyPI `oci-cli`, installed by `scripts/setup-e2e`): the CLI
//! prints every request's headers, and woci relays its output through the redactor, so the
//! combined output holds no session token, `ST$` keyId, `Authorization` or
//! `Proxy-Authorization` value, client secret or refresh token — plain and under
//! `--auto-refresh` (where the proxy URL's secret is in play too). Without the real CLI these
//! tests fail, naming what is missing.

mod common;
use common::*;

use std::process::Output;
use woci_emulator::Config;

async fn tls_world() -> (World, std::path::PathBuf) {
    let w = World::with_config(Config { tls: true, ..Config::default() }).await;
    let ca = w.home().join("emulator-ca.pem");
    std::fs::write(&ca, w.emu.ca_pem().unwrap()).unwrap();
    let hostport = w.emu.os_endpoint().trim_start_matches("https://").trim_end_matches('/').to_owned();
    let oci = peers::oci_cli();
    w.write_manager_ini(&[("oci_command", oci.to_str().unwrap()), ("resign_hosts", &hostport)]);
    std::fs::write(w.config_path(), format!("[{}]\nregion = us-ashburn-1\n", w.profile)).unwrap();
    w.seed_token(-10);
    w.seed_refresh_token();
    (w, ca)
}

async fn woci_debug(w: &World, ca: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = w.woci_std();
    cmd.env_remove("WOCI_OCI_COMMAND")
        .env("REQUESTS_CA_BUNDLE", ca)
        .env("SSL_CERT_FILE", ca)
        .env("OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING", "True")
        .env("TMPDIR", w.home())
        .args(args)
        .args(["--endpoint", &w.emu.os_endpoint()]);
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

fn check(w: &World, out: &Output) {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&w.emu.namespace()), "oci answered: {text}");
    assert!(
        text.to_ascii_lowercase().contains("authorization: <redacted>"),
        "oci printed its signed headers, redacted: {text}"
    );
    let token = w.read(&w.token_path());
    let rt = w.read(&w.session_dir().join("refresh_token"));
    let secrets = [
        token.as_str(),
        rt.as_str(),
        w.cfg.exchange_client_secret.as_str(),
        w.cfg.idp_client_secret.as_deref().unwrap(),
    ];
    assert_no_secrets(&text, &secrets);
    // Every header that carries credentials shows `<redacted>` right after its name.
    let lower = text.to_ascii_lowercase();
    for name in ["authorization': '", "authorization: ", "proxy-authorization: "] {
        for (i, _) in lower.match_indices(name) {
            let after = &text[i + name.len()..];
            assert!(after.starts_with("<redacted>"), "{name} not redacted: {}", &after[..after.len().min(80)]);
        }
    }
    assert!(!text.contains("ST$ey"), "{text}");
    // `woci:<secret>` is the proxy's Basic credential; `woci: …` (with a space) is a woci log line.
    let re_secret = text
        .match_indices("woci:")
        .filter(|(i, _)| !text[i + 5..].starts_with("<redacted>") && !text[i + 5..].starts_with(' '))
        .count();
    assert_eq!(re_secret, 0, "the proxy secret is redacted: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_debug_output_is_redacted() {
    let (w, ca) = tls_world().await;
    let out = woci_debug(&w, &ca, &["os", "ns", "get", "--debug"]).await;
    check(&w, &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_debug_output_is_redacted_under_auto_refresh() {
    let (w, ca) = tls_world().await;
    let out = woci_debug(&w, &ca, &["--auto-refresh", "os", "ns", "get", "--debug"]).await;
    check(&w, &out);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.to_ascii_lowercase().contains("proxy-authorization: <redacted>"), "the CONNECT was printed: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woci_debug_with_oci_debug_is_redacted() {
    let (w, ca) = tls_world().await;
    let out = woci_debug(&w, &ca, &["--debug", "--auto-refresh", "os", "ns", "get", "--debug"]).await;
    check(&w, &out);
}
