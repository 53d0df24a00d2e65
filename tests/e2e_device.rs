//! Device-code login (RFC 8628) end to end against the real OIDC provider (npm `oidc-provider`
//! with its `deviceFlow` feature, `tests/e2e/idp/server.mjs`), approved or denied headlessly by the
//! login driver (`tests/e2e/idp/login-driver.mjs`) acting as the person on another device; the
//! provider's JWT access token is then exchanged at the emulator's identity domain. Approve, deny,
//! expire and slow_down. `scripts/setup-e2e` installs the peers; without them these tests fail.

mod common;
use common::peers::{self, IdpOptions, NodeIdp};
use common::{assert_no_secrets, free_port, write_exec};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use woci_emulator::{Config, Emulator, TrustedIssuer};

const PROFILE: &str = "DEV";

struct Setup {
    idp: NodeIdp,
    emu: Emulator,
    home: TempDir,
}

impl Setup {
    async fn new(opts: IdpOptions) -> Setup {
        let idp = NodeIdp::start(IdpOptions { device_interval: Some(Duration::from_secs(1)), ..opts });
        let emu = Emulator::start(Config {
            trusted_issuers: vec![TrustedIssuer {
                issuer: idp.issuer.clone(),
                jwks_url: Some(url::Url::parse(&idp.jwks_uri).unwrap()),
                audience: Some(idp.resource.clone()),
                ..Default::default()
            }],
            ..Config::default()
        })
        .await
        .unwrap();
        let home = tempfile::tempdir().unwrap();
        let oci_dir = home.path().join(".oci");
        std::fs::create_dir_all(&oci_dir).unwrap();
        let c = emu.config();
        // No `device_authorization_url`: woci discovers it from `token_url`.
        let ini = format!(
            "[{PROFILE}]\nlogin_flow = device\nauthz_base_url = {}\ntoken_url = {}\ntoken_exchange_url = {}\nauth_client_id = {}\nauth_client_secret = {}\nclient_id = {}\nclient_secret = {}\nscope = openid offline_access\nredirect_port = {}\nregion = us-ashburn-1\nlogin_timeout = 60\n",
            idp.authorization_endpoint,
            idp.token_endpoint,
            emu.exchange_url(),
            idp.client_id,
            idp.client_secret.as_deref().expect("a confidential client"),
            c.exchange_client_id,
            c.exchange_client_secret,
            free_port(),
        );
        std::fs::write(oci_dir.join("woci_manager.ini"), ini).unwrap();
        Setup { idp, emu, home }
    }

    fn session_file(&self, name: &str) -> PathBuf {
        self.home.path().join(".oci").join("sessions").join(PROFILE).join(name)
    }

    /// `woci session authenticate` with `browser` as the person approving on another device.
    async fn authenticate(&self, browser: &Path, env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(common::woci_bin());
        peers::peer_env(&mut c);
        for k in ["WOCI_MANAGER_CONFIG", "WOCI_OCI_COMMAND", "RUST_LOG", "DISPLAY", "SSH_CONNECTION", "SSH_TTY"] {
            c.env_remove(k);
        }
        c.args(["--profile", PROFILE, "session", "authenticate"])
            .env("HOME", self.home.path())
            .env("BROWSER", browser)
            .envs(self.idp.driver_env())
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        tokio::task::spawn_blocking(move || c.output().expect("woci runs")).await.unwrap()
    }

    async fn device_stats(&self) -> serde_json::Value {
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!("{}/_test/device-stats", self.idp.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn fail(&self, what: &str, out: &Output) -> String {
        format!("{what} ({}):\n{}\nIdP log:\n{}", out.status, String::from_utf8_lossy(&out.stderr), self.idp.log())
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_on_another_device_then_exchanged() {
    let s = Setup::new(IdpOptions::default()).await;
    let out = s.authenticate(&peers::login_driver(), &[]).await;
    assert!(out.status.success(), "{}", s.fail("device login failed", &out));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}/device", s.idp.issuer)), "prints the verification URI: {err}");
    let rt = std::fs::read_to_string(s.session_file("refresh_token")).unwrap();
    let token = std::fs::read_to_string(s.session_file("token")).unwrap();
    assert_eq!(s.emu.stats().exchanges, 1);
    assert_no_secrets(&err, &[&rt, &token, &s.idp.password]);
    let st = s.device_stats().await;
    assert_eq!(st["slow_downs"], 0, "woci kept to the announced interval: {st}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_on_another_device_exits_3() {
    let s = Setup::new(IdpOptions::default()).await;
    let out = s.authenticate(&peers::login_driver(), &[("LOGIN_DRIVER_DECISION", "deny")]).await;
    assert_eq!(out.status.code(), Some(3), "{}", s.fail("expected a denied login", &out));
    assert!(stderr(&out).contains("was denied"), "{}", stderr(&out));
    assert!(!s.session_file("refresh_token").exists());
    assert_eq!(s.emu.stats().exchanges, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_approves_and_the_code_expires() {
    let s = Setup::new(IdpOptions { device_code_ttl: Some(Duration::from_secs(3)), ..Default::default() }).await;
    let nobody = s.home.path().join("nobody");
    write_exec(&nobody, "#!/bin/sh\nexit 0\n");
    let started = Instant::now();
    let out = s.authenticate(&nobody, &[]).await;
    assert_eq!(out.status.code(), Some(3), "{}", s.fail("expected an expired code", &out));
    assert!(stderr(&out).contains("device code expired"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_eq!(s.device_stats().await["expired_polls"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_down_is_honoured() {
    let s = Setup::new(IdpOptions { device_slow_down: 1, ..Default::default() }).await;
    // The person approves a little later, so woci polls through the slow_down.
    let late = s.home.path().join("late");
    write_exec(&late, &format!("#!/bin/sh\nsleep 2\nexec '{}' \"$1\"\n", peers::login_driver().display()));
    let started = Instant::now();
    let out = s.authenticate(&late, &[]).await;
    assert!(out.status.success(), "{}", s.fail("device login failed", &out));
    let st = s.device_stats().await;
    // A second slow_down would mean woci polled faster than the grown interval.
    assert_eq!(st["slow_downs"], 1, "{st}");
    assert!(started.elapsed() >= Duration::from_secs(1 + 6), "{:?}", started.elapsed());
}
