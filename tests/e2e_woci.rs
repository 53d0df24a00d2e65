//! woci end to end with real peers: the built `woci` binary logs in through the real OIDC
//! provider (npm `oidc-provider`, driven headlessly by the login driver as `BROWSER`), refreshes
//! there with rotation, exchanges the provider's JWT access token for a UPST at the emulator's
//! identity domain (which trusts the provider through its JWKS), and runs the real `oci` CLI
//! (PyPI `oci-cli`) against the emulator's Object Storage over TLS: `os ns get`, and a multipart
//! `os object put` under `--auto-refresh` that outlives several UPSTs, downloaded back and
//! compared. `scripts/setup-e2e` installs the peers; without them these tests fail.

mod common;
use common::peers;
use common::{free_port, sha256_file};

use peers::{IdpOptions, NodeIdp};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tempfile::TempDir;
use woci_emulator::{Config, Emulator, TrustedIssuer};

const PROFILE: &str = "E2E";

struct Setup {
    idp: NodeIdp,
    emu: Emulator,
    home: TempDir,
    ca_file: PathBuf,
}

impl Setup {
    /// A refresh grant at the provider made outside woci, as another client holding the token would.
    async fn refresh_grant_by_hand(&self, refresh_token: &str) -> reqwest::Response {
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", self.idp.client_id.as_str()),
        ];
        reqwest::Client::new()
            .post(&self.idp.token_endpoint)
            .basic_auth(&self.idp.client_id, self.idp.client_secret.as_deref())
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// The real IdP, the emulator (TLS, trusting the IdP) and a HOME whose manager INI points
    /// woci at both, with the real `oci` as `oci_command`.
    async fn start(cfg: Config) -> Setup {
        Setup::start_with(cfg, "").await
    }

    /// [`Setup::start`] with `extra` lines in the profile's manager INI section.
    async fn start_with(cfg: Config, extra: &str) -> Setup {
        let idp = NodeIdp::start(IdpOptions {
            // The provider's own default: `offline_access` needs `prompt=consent`, which woci sends.
            strict_offline_access: true,
            ..IdpOptions::default()
        });
        let cfg = Config {
            tls: true,
            trusted_issuers: vec![TrustedIssuer {
                issuer: idp.issuer.clone(),
                jwks_url: Some(url::Url::parse(&idp.jwks_uri).unwrap()),
                jwks: None,
                ca_pem: None,
                audience: None,
            }],
            ..cfg
        };
        let emu = Emulator::start(cfg).await.expect("the emulator starts");
        let home = tempfile::tempdir().unwrap();
        let oci_dir = home.path().join(".oci");
        std::fs::create_dir_all(&oci_dir).unwrap();
        let ca_file = home.path().join("emulator-ca.pem");
        std::fs::write(&ca_file, emu.ca_pem().expect("TLS emulator has a CA")).unwrap();
        let c = emu.config();
        let mut ini = format!(
            "[{PROFILE}]\n\
             authz_base_url = {}\n\
             token_url = {}\n\
             token_exchange_url = {}\n\
             auth_client_id = {}\n\
             auth_client_secret = {}\n\
             client_id = {}\n\
             client_secret = {}\n\
             scope = openid offline_access\n\
             redirect_port = {}\n\
             region = us-ashburn-1\n\
             oci_command = {}\n\
             login_timeout = 60\n",
            idp.authorization_endpoint,
            idp.token_endpoint,
            emu.exchange_url(),
            idp.client_id,
            idp.client_secret.as_deref().expect("a confidential client"),
            c.exchange_client_id,
            c.exchange_client_secret,
            free_port(),
            peers::oci_cli().display(),
        );
        ini.push_str(extra);
        ini.push('\n');
        std::fs::write(oci_dir.join("woci_manager.ini"), ini).unwrap();
        std::fs::write(oci_dir.join("config"), format!("[{PROFILE}]\nregion = us-ashburn-1\n")).unwrap();
        Setup { idp, emu, home, ca_file }
    }

    fn session_file(&self, name: &str) -> PathBuf {
        self.home.path().join(".oci").join("sessions").join(PROFILE).join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.session_file(name)).unwrap_or_default()
    }

    /// `woci` with a clean environment: this HOME, the emulator's CA as the only extra trust, no
    /// proxies, the login driver as `BROWSER`.
    fn woci(&self, args: &[&str]) -> Command {
        let mut c = Command::new(common::woci_bin());
        peers::peer_env(&mut c);
        for k in ["WOCI_MANAGER_CONFIG", "WOCI_OCI_COMMAND", "WOCI_AUTH_ENDPOINT", "WOCI_RESIGN_HOSTS", "RUST_LOG"] {
            c.env_remove(k);
        }
        c.args(args)
            .env("HOME", self.home.path())
            .env("REQUESTS_CA_BUNDLE", &self.ca_file)
            .env("SSL_CERT_FILE", &self.ca_file)
            .env("OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING", "True")
            .env("BROWSER", peers::login_driver())
            .envs(self.idp.driver_env())
            .stdin(Stdio::null());
        c
    }

    /// Runs woci off the async runtime (the emulator keeps serving) and asserts success.
    async fn run_ok(&self, args: &[&str]) -> Output {
        let mut cmd = self.woci(args);
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("woci runs")).await.unwrap();
        if !out.status.success() {
            panic!(
                "woci {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}\nIdP log:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                self.idp.log()
            );
        }
        self.assert_no_secrets(&out);
        out
    }

    /// No token, refresh token or client secret in woci's or oci's output.
    fn assert_no_secrets(&self, out: &Output) {
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let mut secrets =
            vec![self.read("token"), self.read("refresh_token"), self.emu.config().exchange_client_secret.clone()];
        secrets.extend(self.idp.client_secret.clone());
        for s in secrets.iter().filter(|s| s.len() >= 8) {
            assert!(!text.contains(s.as_str()), "a secret leaked into woci's output:\n{text}");
        }
    }

    fn os_args<'a>(&'a self, os: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
        let mut v: Vec<&str> = rest.to_vec();
        v.extend(["--profile", PROFILE, "--endpoint", os]);
        v
    }
}

fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Login through the real provider, exchange at the emulator, real `oci os ns get`; then a forced
/// renewal: refresh grant with rotation at the provider, a new UPST, and `oci` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refresh_exchange_and_real_oci_ns_get() {
    let s = Setup::start(Config::default()).await;
    let os = s.emu.os_endpoint();

    s.run_ok(&["session", "authenticate", "--profile", PROFILE]).await;
    let rt1 = s.read("refresh_token");
    let upst1 = s.read("token");
    assert!(!rt1.is_empty(), "the login stored the provider's refresh token");
    let c1 = claims(&upst1);
    assert_eq!(c1["sub"], s.emu.config().user_ocid.as_str(), "the UPST is for the identity domain's user: {c1}");
    assert!(c1["jwk"].is_string(), "the UPST binds woci's public key: {c1}");
    let st = s.emu.stats();
    assert_eq!(st.exchanges, 1);
    // The subject token came from the real provider: the emulator's own IdP issued nothing.
    assert_eq!((st.auth_code_grants, st.refresh_grants), (0, 0));

    let out = s.run_ok(&s.os_args(&os, &["os", "ns", "get"])).await;
    let data: Value = serde_json::from_slice(&out.stdout).expect("oci prints JSON");
    assert_eq!(data["data"], s.emu.namespace().as_str());
    let st = s.emu.stats();
    assert_eq!(st.exchanges, 1, "a valid UPST is reused, not renewed");
    assert_eq!(st.os_jtis, vec![c1["jti"].as_str().unwrap().to_owned()]);

    // Forced renewal: the provider rotates the refresh token, woci stores the new one.
    s.run_ok(&["session", "refresh", "--profile", PROFILE]).await;
    let rt2 = s.read("refresh_token");
    let c2 = claims(&s.read("token"));
    assert_ne!(rt1, rt2, "the rotated refresh token was stored");
    assert_ne!(c1["jti"], c2["jti"], "a new UPST");
    assert_eq!(c1["jwk"], c2["jwk"], "the same key pair");
    assert_eq!(s.emu.stats().exchanges, 2);

    s.run_ok(&s.os_args(&os, &["os", "ns", "get"])).await;
    assert_eq!(s.emu.stats().os_jtis.len(), 2);
    assert_eq!(s.emu.stats().unauthorized, 0);

    // The refresh token woci rotated away is spent at the provider (reuse detection).
    let resp = s.refresh_grant_by_hand(&rt1).await;
    assert_eq!(resp.status().as_u16(), 400);
}

/// `woci --auto-refresh` runs a real multipart `oci os object put` that lasts several UPST
/// lifetimes: woci renews through the real provider and the emulator, its proxy re-signs the
/// running `oci`'s requests with each new token, nothing gets a 401, and the downloaded object
/// is identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_refresh_multipart_put_through_real_oci_outlives_tokens() {
    let s = Setup::start(Config {
        upst_ttl: Duration::from_secs(6),
        part_delay: Duration::from_millis(1500),
        ..Config::default()
    })
    .await;
    let os = s.emu.os_endpoint();
    let ns = s.emu.namespace();
    s.run_ok(&["session", "authenticate", "--profile", PROFILE]).await;

    let file = s.home.path().join("upload.bin");
    let mut data = vec![0u8; 12 * 1024 * 1024];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    std::fs::write(&file, &data).unwrap();
    let file_s = file.to_str().unwrap();
    let before = s.emu.stats();

    s.run_ok(&s.os_args(
        &os,
        &[
            "--auto-refresh",
            "os",
            "object",
            "put",
            "--namespace",
            &ns,
            "--bucket-name",
            "e2e",
            "--name",
            "big.bin",
            "--file",
            file_s,
            "--part-size",
            "1",
            "--parallel-upload-count",
            "2",
            "--force",
        ],
    ))
    .await;
    let after = s.emu.stats();
    assert_eq!(after.parts_uploaded - before.parts_uploaded, 12, "a 12-part multipart upload");
    assert_eq!(after.objects_committed - before.objects_committed, 1);
    assert_eq!(after.unauthorized, 0, "no request was refused: {:?}", after.unauthorized_by_reason);
    let upload_jtis: Vec<_> = after.os_jtis.iter().filter(|j| !before.os_jtis.contains(j)).collect();
    assert!(
        upload_jtis.len() >= 2,
        "the upload outlived its first UPST, so later parts must be signed with renewed ones; jtis: {upload_jtis:?}"
    );
    assert!(after.exchanges > before.exchanges, "woci renewed during the upload");

    let back = s.home.path().join("download.bin");
    s.run_ok(&s.os_args(
        &os,
        &[
            "os",
            "object",
            "get",
            "--namespace",
            &ns,
            "--bucket-name",
            "e2e",
            "--name",
            "big.bin",
            "--file",
            back.to_str().unwrap(),
        ],
    ))
    .await;
    assert_eq!(sha256_file(&back), sha256_file(&file), "the downloaded object is the uploaded file");
}

/// The stored refresh token was spent elsewhere (another machine, a copied profile): the real
/// provider answers `invalid_grant` and revokes the grant, and woci falls back to a fresh
/// login (through `BROWSER`), then carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_refresh_token_falls_back_to_a_login() {
    let s = Setup::start(Config::default()).await;
    s.run_ok(&["session", "authenticate", "--profile", PROFILE]).await;
    let rt1 = s.read("refresh_token");

    // Someone else uses the stored refresh token first; it rotates away from woci.
    let resp = s.refresh_grant_by_hand(&rt1).await;
    assert_eq!(resp.status().as_u16(), 200, "the out-of-band refresh works");

    let upst1 = claims(&s.read("token"));
    let out = s.run_ok(&["session", "refresh", "--profile", PROFILE]).await;
    let rt2 = s.read("refresh_token");
    assert!(!rt2.is_empty() && rt2 != rt1, "a new refresh token from the new login");
    assert_ne!(claims(&s.read("token"))["jti"], upst1["jti"], "a new UPST");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("login"), "woci says it had to log in again:\n{stderr}");

    // The new session works with the real oci.
    let os = s.emu.os_endpoint();
    let out = s.run_ok(&s.os_args(&os, &["os", "ns", "get"])).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains(&s.emu.namespace()));
}

/// The provider is down when a renewal is due: woci fails with the network exit code (6), names
/// the provider, and leaves the token and refresh token as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_provider_fails_cleanly_and_keeps_the_session_files() {
    let mut s = Setup::start(Config::default()).await;
    s.run_ok(&["session", "authenticate", "--profile", PROFILE]).await;
    let (rt, token) = (s.read("refresh_token"), s.read("token"));
    s.idp.stop();

    let mut cmd = s.woci(&["session", "refresh", "--profile", PROFILE]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "network failure exit code; stderr:\n{stderr}");
    assert!(stderr.contains("identity provider"), "{stderr}");
    assert_eq!(s.read("refresh_token"), rt, "the refresh token is untouched");
    assert_eq!(s.read("token"), token, "the token is untouched");
}

/// Renewal accounting against the real provider: a login and a refresh count `ok`; a refresh
/// token the provider refuses with no one to log in counts `auth` (exit 3), a provider that is
/// down counts `network` (exit 6), and `on_renewal_failure` gets each class once with woci's
/// exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_classes_and_the_failure_hook_against_the_real_provider() {
    let dir = tempfile::tempdir().unwrap();
    let prom = dir.path().join("woci.prom");
    let runs = dir.path().join("runs");
    std::fs::create_dir_all(&runs).unwrap();
    let hook = dir.path().join("hook");
    common::write_exec(&hook, &format!("#!/bin/sh\nn=$(ls '{0}' | wc -l)\ncat > '{0}/event.'$n\n", runs.display()));
    let extra = format!("metrics_file = {}\non_renewal_failure = {}\n", prom.display(), hook.display());
    let mut s = Setup::start_with(Config::default(), &extra).await;
    let renewals = |result: &str| {
        let text = std::fs::read_to_string(&prom).unwrap_or_default();
        let prefix = format!("woci_renewals_total{{profile=\"{PROFILE}\",result=\"{result}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.parse::<u64>().unwrap())
    };
    let event = |n: usize| -> Value {
        serde_json::from_str(std::fs::read_to_string(runs.join(format!("event.{n}"))).unwrap().trim_end()).unwrap()
    };

    s.run_ok(&["session", "authenticate", "--profile", PROFILE]).await;
    s.run_ok(&["session", "refresh", "--profile", PROFILE]).await;
    assert_eq!(renewals("ok"), 2);

    // The stored refresh token is spent elsewhere; no browser, no terminal: `auth`, exit 3.
    let resp = s.refresh_grant_by_hand(&s.read("refresh_token")).await;
    assert_eq!(resp.status().as_u16(), 200);
    let mut cmd = s.woci(&["session", "refresh", "--profile", PROFILE]);
    cmd.env_remove("BROWSER");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    s.assert_no_secrets(&out);
    assert_eq!((renewals("ok"), renewals("auth")), (2, 1));
    let ev = event(0);
    assert_eq!((ev["class"].as_str(), ev["exit_code"].as_u64()), (Some("auth"), Some(3)), "{ev}");

    // The provider is down: `network`, exit 6.
    s.idp.stop();
    let mut cmd = s.woci(&["session", "refresh", "--profile", PROFILE]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((renewals("ok"), renewals("auth"), renewals("network")), (2, 1, 1));
    let ev = event(1);
    assert_eq!((ev["class"].as_str(), ev["exit_code"].as_u64()), (Some("network"), Some(6)), "{ev}");
    assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 2, "once per class");
    let seen = format!(
        "{}{}",
        std::fs::read_to_string(&prom).unwrap(),
        std::fs::read_to_string(runs.join("event.0")).unwrap()
    );
    assert!(!seen.contains(&s.read("refresh_token")) && !seen.contains(&s.emu.config().exchange_client_secret));
}
