//! `--debug` with the real `oci` CLI (PyPI `oci-cli`, installed by `scripts/setup-e2e`): the CLI
//! prints every request's headers, and woci relays its output through the redactor, so the
//! combined output holds no session token, `ST$` keyId, `Authorization` or
//! `Proxy-Authorization` value, client secret or refresh token — plain and under
//! `--auto-refresh` (where the proxy URL's secret is in play too) — and neither stream holds the
//! token, the proxy's secret or their base64 forms, while woci exits and prints like `oci --debug`
//! run directly. Without the real CLI these tests fail, naming what is missing.

mod common;
use common::*;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use std::process::Output;
use woci_emulator::Config;

async fn tls_world() -> (World, std::path::PathBuf) {
    let w = World::with_config(Config { tls: true, ..Config::default() }).await;
    let ca = w.home().join("emulator-ca.pem");
    std::fs::write(&ca, w.emu.ca_pem().unwrap()).unwrap();
    let hostport = w.emu.os_endpoint().trim_start_matches("https://").trim_end_matches('/').to_owned();
    // The real CLI, behind a wrapper that notes the proxy URL woci gives it (to look for its secret).
    let oci = w.home().join("bin").join("oci-noting-proxy");
    write_exec(
        &oci,
        &format!(
            "#!/bin/sh\nprintf '%s' \"${{HTTPS_PROXY:-}}\" > \"$HOME/proxy-url\"\nexec '{}' \"$@\"\n",
            peers::oci_cli().display()
        ),
    );
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

/// `oci --debug` run directly, as woci ran it (after woci renewed the token).
async fn oci_debug_direct(w: &World, ca: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = peers::oci_command(w.home());
    cmd.env("REQUESTS_CA_BUNDLE", ca)
        .env("SSL_CERT_FILE", ca)
        .args(["--profile", &w.profile, "--auth", "security_token"])
        .args(args)
        .args(["--endpoint", &w.emu.os_endpoint()]);
    tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
}

/// Each stream on its own holds no form of the token or of the proxy's secret (none of their
/// 16 consecutive characters), and woci exits like `oci --debug` and prints its answer.
async fn check_streams_and_compare(w: &World, ca: &std::path::Path, out: &Output, oci_args: &[&str]) {
    let token = w.read(&w.token_path());
    // A JWT's header is the same in every token: look for the payload and signature.
    let token_tail = token.split_once('.').unwrap().1;
    let mut secrets = vec![token_tail.to_owned()];
    for engine in [&STANDARD, &URL_SAFE_NO_PAD] {
        secrets.push(engine.encode(&token)[..8 * token.len() / 6].to_owned());
    }
    let proxy = w.read(&w.home().join("proxy-url"));
    if let Some(rest) = proxy.strip_prefix("http://woci:") {
        let secret = rest.split('@').next().unwrap();
        let basic = STANDARD.encode(format!("woci:{secret}"));
        secrets.extend([secret.to_owned(), basic[7..].trim_end_matches('=').to_owned()]);
    }
    for (name, stream) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(stream);
        for s in &secrets {
            for win in s.as_bytes().windows(16) {
                let win = std::str::from_utf8(win).unwrap();
                assert!(!text.contains(win), "{win:?} of a secret is in {name}:\n{text}");
            }
        }
    }
    let direct = oci_debug_direct(w, ca, oci_args).await;
    assert_eq!(out.status.code(), direct.status.code(), "{}", String::from_utf8_lossy(&direct.stderr));
    // `oci --debug` mixes its log into stdout (dates, request ids): compare the answer itself.
    let (ours, theirs) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&direct.stdout));
    let answer = theirs.find("{\n  \"data\": ").and_then(|i| theirs[i..].find("\n}\n").map(|j| &theirs[i..i + j + 3]));
    let answer = answer.unwrap_or_else(|| panic!("oci --debug answered: {theirs}"));
    assert!(answer.contains(&w.emu.namespace()), "{answer}");
    assert!(ours.contains(answer), "woci printed the answer oci --debug prints, {answer:?}: {ours}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woci_debug_is_redacted_and_answers_like_oci_debug() {
    let (w, ca) = tls_world().await;
    let out = woci_debug(&w, &ca, &["--debug", "os", "ns", "get"]).await;
    check(&w, &out);
    assert!(w.read(&w.home().join("proxy-url")).is_empty(), "no proxy without --auto-refresh");
    check_streams_and_compare(&w, &ca, &out, &["os", "ns", "get", "--debug"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woci_auto_refresh_debug_is_redacted_and_answers_like_oci_debug() {
    let (w, ca) = tls_world().await;
    let out = woci_debug(&w, &ca, &["--auto-refresh", "--debug", "os", "ns", "get"]).await;
    check(&w, &out);
    assert!(w.read(&w.home().join("proxy-url")).starts_with("http://woci:"), "the child went through the proxy");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.to_ascii_lowercase().contains("proxy-authorization: <redacted>"), "the CONNECT was printed: {text}");
    check_streams_and_compare(&w, &ca, &out, &["os", "ns", "get", "--debug"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_debug_output_is_redacted() {
    let (w, ca) = tls_world().await;
    let out = woci_debug(&w, &ca, &["os", "ns", "get", "--debug"]).await;
    check(&w, &out);
}

/// Also `-dd` after the command, oci's debug too (click reads it as `-d -d`): redacted the same,
/// the proxy's CONNECT line included (a review of round 105: it went out unredacted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_debug_output_is_redacted_under_auto_refresh() {
    let (w, ca) = tls_world().await;
    for debug in ["--debug", "-dd"] {
        let out = woci_debug(&w, &ca, &["--auto-refresh", "os", "ns", "get", debug]).await;
        check(&w, &out);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(text.to_ascii_lowercase().contains("proxy-authorization: <redacted>"), "{debug}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woci_debug_with_oci_debug_is_redacted() {
    let (w, ca) = tls_world().await;
    let out = woci_debug(&w, &ca, &["--debug", "--auto-refresh", "os", "ns", "get", "--debug"]).await;
    check(&w, &out);
}
