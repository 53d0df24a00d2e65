//! The `woci-emulator` binary: state file, TLS, admin API, clean exit on SIGTERM.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn binary_writes_its_state_file_serves_tls_and_exits_cleanly_on_sigterm() {
    let dir = Dir(std::env::temp_dir().join(format!("woci-emulator-bin-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let state_file = dir.0.join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_woci-emulator"))
        .args(["--tls", "--upst-ttl", "5s", "--part-delay", "10ms", "--state-file"])
        .arg(&state_file)
        .args(["--trust-issuer", "http://127.0.0.1:9/issuer=http://127.0.0.1:9/jwks"])
        .env("REQUESTS_CA_BUNDLE", SYSTEM_CA)
        .env("SSL_CERT_FILE", SYSTEM_CA)
        .env_remove("CURL_CA_BUNDLE")
        .env_remove("NODE_EXTRA_CA_CERTS")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("woci-emulator starts");

    // Readiness: the state file appears (atomically) once the server listens.
    let mut waited = 0;
    while !state_file.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("woci-emulator exited early: {status}");
        }
        assert!(waited < 1200, "no state file after 120s");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let st: Value = serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    for key in [
        "base_url",
        "authorize_url",
        "token_url",
        "exchange_url",
        "os_endpoint",
        "auth_endpoint",
        "jwks_url",
        "issuer",
        "ca_file",
        "idp_client_id",
        "idp_client_secret",
        "exchange_client_id",
        "exchange_client_secret",
        "namespace",
        "refresh_token",
    ] {
        assert!(st[key].is_string(), "state file lacks `{key}`: {st}");
    }
    assert!(st["base_url"].as_str().unwrap().starts_with("https://127.0.0.1:"));

    let ca = std::fs::read(st["ca_file"].as_str().unwrap()).unwrap();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    // The refresh token in the state file works.
    let resp = client
        .post(st["token_url"].as_str().unwrap())
        .basic_auth(st["idp_client_id"].as_str().unwrap(), st["idp_client_secret"].as_str())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", st["refresh_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stats: Value = client
        .get(format!("{}/_emulator/stats", st["base_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((stats["requests"].as_u64(), stats["refresh_grants"].as_u64()), (Some(1), Some(1)));

    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
}
