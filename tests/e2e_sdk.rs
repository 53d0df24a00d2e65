//! Real OCI SDK programs outlive their session tokens under `woci --auto-refresh --exec`:
//! `tests/sdk/go` (the OCI Go SDK, Terraform's: puts, then a multipart upload with its
//! UploadManager), `tests/sdk/node` (the OCI TypeScript SDK on the machine's Node 20, through
//! woci's preload, and on a newer Node from npm through `NODE_USE_ENV_PROXY`) and `tests/sdk/python`
//! (the OCI Python SDK). Each reads `~/.oci/config` with a session-token profile and talks to the
//! real Object Storage host name, `objectstorage.us-ashburn-1.oraclecloud.com`, with nothing
//! changed for woci: the network is a corporate-style HTTPS proxy (`HTTPS_PROXY` in the user's
//! environment) that leads every CONNECT to the emulator, whose certificate the user's CA file
//! (`SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`) trusts. UPSTs live 5 s.
//!
//! Each test runs its program twice: once alone (the control: with a freshly renewed token and no
//! woci, it must die with a 401 at the token's first expiry) and once under woci, where it must run
//! past 3 token lifetimes with 0 × 401 at the emulator. Each says which mechanism kept it alive:
//! the proxy re-signing (Python and TypeScript read the token once, so nothing else can) or the SDK
//! re-reading the renewed token file (Go, proven with `--no-resign-proxy`). The programs and
//! toolchains come from `scripts/setup-e2e`; a missing one fails these tests, naming it.

mod common;
use common::peers::{self, sdk};
use common::*;

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use woci_emulator::{Config, Endpoint, Event};

const TTL: Duration = Duration::from_secs(5);
const OS_HOST: &str = "objectstorage.us-ashburn-1.oraclecloud.com";
/// How long the programs keep putting: more than 3 lifetimes.
const SECONDS: u64 = 18;
/// The Go program puts for this long, then uploads `UPLOAD_MIB` MiB in `PART_MIB` MiB parts, each
/// answered after `PART_DELAY`: the commit comes after the token that started the upload expired.
const GO_SECONDS: u64 = 11;
const UPLOAD_MIB: u64 = 20;
const PART_MIB: u64 = 5;
const PART_DELAY: Duration = Duration::from_secs(6);

/// The stand-in for a corporate HTTPS proxy: answers every CONNECT with a tunnel to the emulator.
struct CorpProxy {
    port: u16,
}

impl CorpProxy {
    async fn start(emulator: std::net::SocketAddr) -> CorpProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut byte).await.unwrap_or(0) == 0 || head.len() > 16 * 1024 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    if !head.starts_with(b"CONNECT ") {
                        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n").await;
                        return;
                    }
                    let Ok(mut upstream) = tokio::net::TcpStream::connect(emulator).await else { return };
                    if client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n").await.is_ok() {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        CorpProxy { port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

struct Setup {
    w: World,
    corp: CorpProxy,
    ca_file: PathBuf,
    /// Where programs and their files go.
    work: tempfile::TempDir,
}

/// A TLS emulator with 5 s UPSTs whose certificate also names the Object Storage host, the
/// corporate proxy in front of it, and a HOME with a session-token profile as `oci session
/// authenticate` writes it (woci renews it through the emulator's IdP and token exchange).
async fn setup(part_delay: Duration) -> Setup {
    let cfg = Config {
        tls: true,
        tls_names: vec![OS_HOST.into()],
        upst_ttl: TTL,
        part_delay,
        discard_bodies: true,
        ..Config::default()
    };
    let w = World::with_config(cfg).await;
    let ca_file = w.home().join("corp-ca.pem");
    std::fs::write(&ca_file, w.emu.ca_pem().unwrap()).unwrap();
    let key = woci::keys::KeyPair::from_pem(include_str!("fixtures/test_key.pem")).unwrap();
    std::fs::create_dir_all(w.oci_dir()).unwrap();
    std::fs::write(
        w.config_path(),
        format!(
            "[{}]\nfingerprint={}\nkey_file={}\ntenancy={}\nregion=us-ashburn-1\nsecurity_token_file={}\n",
            w.profile,
            key.fingerprint(),
            w.session_dir().join("oci_api_key.pem").display(),
            w.cfg.tenancy_ocid,
            w.token_path().display()
        ),
    )
    .unwrap();
    w.seed_token(-10);
    w.seed_refresh_token();
    let corp = CorpProxy::start(w.emu.addr()).await;
    Setup { w, corp, ca_file, work: tempfile::tempdir().unwrap() }
}

/// How the program is started: program and arguments, and variables of its own.
struct Program {
    argv: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    /// Variables only the control run gets: what the user would need without woci to reach the
    /// network at all (the Node SDK ignores `HTTPS_PROXY`).
    control_env: Vec<(String, String)>,
}

impl Setup {
    /// The user's environment: HOME, the profile, the corporate proxy and CA, the program's knobs.
    fn user_env(&self, cmd: &mut Command, p: &Program, seconds: u64) {
        for k in SCRUBBED_ENV {
            cmd.env_remove(k);
        }
        let ca = self.ca_file.to_str().unwrap();
        cmd.env("HOME", self.w.home())
            .env("OCI_CLI_PROFILE", &self.w.profile)
            .env("HTTPS_PROXY", self.corp.url())
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("SSL_CERT_FILE", ca)
            .env("REQUESTS_CA_BUNDLE", ca)
            .env("NODE_EXTRA_CA_CERTS", ca)
            .env("SDK_TEST_BUCKET", "sdk")
            .env("SDK_TEST_SECONDS", seconds.to_string())
            .env("TMPDIR", self.work.path())
            .envs(p.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
    }

    fn woci(&self, args: &[&str]) -> Command {
        let mut c = Command::new(woci_bin());
        self.user_env(&mut c, &Program { argv: Vec::new(), env: Vec::new(), control_env: Vec::new() }, 0);
        c.args(args);
        c
    }

    /// The control: a fresh token (`woci session refresh`), then the program alone.
    async fn control(&self, p: &Program) -> Run {
        let refreshed = run_blocking(self.woci(&["session", "refresh"])).await;
        assert!(refreshed.status.success(), "woci session refresh: {}", String::from_utf8_lossy(&refreshed.stderr));
        let issued = Instant::now();
        let mut cmd = Command::new(&p.argv[0]);
        cmd.args(&p.argv[1..]);
        self.user_env(&mut cmd, p, SECONDS);
        cmd.envs(p.control_env.iter().map(|(k, v)| (k, v)));
        self.run(cmd, issued).await
    }

    /// The program under `woci --auto-refresh --exec` (plus `extra` woci flags).
    async fn under_woci(&self, p: &Program, seconds: u64, extra: &[&str]) -> Run {
        let mut cmd = Command::new(woci_bin());
        self.user_env(&mut cmd, p, seconds);
        cmd.args(["--log-level", "debug", "--auto-refresh"]).args(extra).args(["--exec", "--"]).args(&p.argv);
        self.run(cmd, Instant::now()).await
    }

    async fn run(&self, cmd: Command, started: Instant) -> Run {
        let first_seq = self.w.emu.events().last().map_or(0, |e| e.seq);
        let out = run_blocking(cmd).await;
        let took = started.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let result: Value = stdout.lines().rev().find_map(|l| serde_json::from_str(l).ok()).unwrap_or_else(|| {
            panic!("the program printed no result line ({}):\n{stdout}\n{}", out.status, stderr(&out))
        });
        let events: Vec<Event> = self
            .w
            .emu
            .events()
            .into_iter()
            .filter(|e| e.seq > first_seq && e.endpoint == Endpoint::ObjectStorage)
            .collect();
        Run { out, result, events, took }
    }
}

async fn run_blocking(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("the program starts")).await.unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

struct Run {
    out: Output,
    result: Value,
    /// Object Storage requests the emulator answered during the run.
    events: Vec<Event>,
    took: Duration,
}

impl Run {
    fn unauthorized(&self) -> Vec<&Event> {
        self.events.iter().filter(|e| e.status == 401).collect()
    }

    /// Distinct tokens (jti) of the accepted requests.
    fn tokens(&self) -> usize {
        self.events.iter().filter(|e| e.status < 300).filter_map(|e| e.jti.clone()).collect::<BTreeSet<_>>().len()
    }

    /// Seconds from the first to the last accepted request.
    fn span(&self) -> f64 {
        let ok: Vec<u64> = self.events.iter().filter(|e| e.status < 300).map(|e| e.time_ms).collect();
        match (ok.iter().min(), ok.iter().max()) {
            (Some(a), Some(b)) => (b - a) as f64 / 1000.0,
            _ => 0.0,
        }
    }

    /// Requests woci's proxy re-signed (its debug log).
    fn swapped(&self) -> usize {
        stderr(&self.out).matches("session token swapped").count()
    }
}

/// The control died with a 401 for an expired token at the first expiry, having worked before.
fn assert_control_dies_at_first_expiry(name: &str, c: &Run) {
    assert_eq!(c.out.status.code(), Some(3), "{name} control: {}\n{}", c.result, stderr(&c.out));
    assert_eq!(c.result["status"], 401, "{name} control must fail with a 401: {}", c.result);
    assert!(c.result["puts"].as_u64().unwrap() >= 1, "{name} control worked before the expiry: {}", c.result);
    let last = c.unauthorized();
    assert_eq!(
        last.len(),
        1,
        "{name} control: one 401, then it stopped: {:?}",
        c.events.iter().rev().take(3).collect::<Vec<_>>()
    );
    assert_eq!(last[0].reason.as_deref(), Some("upst_expired"), "{name} control");
    assert_eq!(c.tokens(), 1, "{name} control signed with its start-up token only");
    assert!(
        c.took < TTL + Duration::from_secs(5),
        "{name} control died at the first expiry ({:.1}s after the token was issued)",
        c.took.as_secs_f64()
    );
}

/// The run under woci outlived ≥ 3 token lifetimes with 0 × 401.
fn assert_survives(name: &str, r: &Run) {
    assert!(r.out.status.success(), "{name} under woci: {}\n{}", r.result, stderr(&r.out));
    assert_eq!(r.result["ok"], true, "{name}: {}", r.result);
    assert!(r.unauthorized().is_empty(), "{name}: 401s at the emulator: {:?}", r.unauthorized());
    let lifetimes = r.span() / TTL.as_secs_f64();
    assert!(lifetimes >= 3.0, "{name}: requests spanned {:.1}s, {lifetimes:.1} token lifetimes", r.span());
    assert!(r.tokens() >= 4, "{name}: {} distinct tokens signed the accepted requests", r.tokens());
}

fn report(name: &str, mechanism: &str, control: &Run, run: &Run, started: Instant) {
    println!(
        "SDK {name}: survived {:.1} lifetimes ({:.1}s, {} tokens, {} requests, {} re-signed by the proxy), \
         {} × 401; control died with {} after {:.1}s ({} puts); mechanism: {mechanism}; test took {:.0}s",
        run.span() / TTL.as_secs_f64(),
        run.span(),
        run.tokens(),
        run.events.len(),
        run.swapped(),
        run.unauthorized().len(),
        control.result["status"],
        control.took.as_secs_f64(),
        control.result["puts"],
        started.elapsed().as_secs_f64()
    );
}

fn go_program(s: &Setup) -> Program {
    let bin = sdk::go_program(s.work.path());
    Program {
        argv: vec![bin.into()],
        env: vec![
            ("SDK_TEST_UPLOAD_MIB".into(), UPLOAD_MIB.to_string()),
            ("SDK_TEST_PART_MIB".into(), PART_MIB.to_string()),
        ],
        control_env: Vec::new(),
    }
}

fn assert_go_multipart(r: &Run) {
    assert_eq!(r.result["multipart"], true, "{}", r.result);
    let parts = r
        .events
        .iter()
        .filter(|e| e.method == "PUT" && e.query.as_deref().is_some_and(|q| q.contains("uploadPartNum")))
        .count();
    assert_eq!(parts as u64, UPLOAD_MIB / PART_MIB, "UploadManager sent its parts");
    let commit =
        r.events.iter().find(|e| e.method == "POST" && e.query.as_deref().is_some_and(|q| q.contains("uploadId")));
    let create = r.events.iter().find(|e| e.method == "POST" && e.path.ends_with("/u"));
    let (Some(commit), Some(create)) = (commit, create) else { panic!("no multipart create/commit: {:?}", r.events) };
    assert_eq!(commit.status, 200);
    assert_ne!(commit.jti, create.jti, "the upload outlived the token it started with");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn go_sdk_program_outlives_tokens_through_the_proxy() {
    let started = Instant::now();
    let s = setup(PART_DELAY).await;
    let p = go_program(&s);
    let control = s.control(&p).await;
    assert_control_dies_at_first_expiry("Go", &control);
    let run = s.under_woci(&p, GO_SECONDS, &[]).await;
    assert_survives("Go", &run);
    assert_go_multipart(&run);
    assert!(run.swapped() > 0, "the Go SDK honours HTTPS_PROXY: its requests went through the proxy");
    report(
        "Go (oci-go-sdk v65.131.0)",
        "through the proxy, which re-signed every request; the SDK also re-reads the token file (next test)",
        &control,
        &run,
        started,
    );
}

/// The README's claim: a Go SDK program needs no proxy, because it re-reads the token file woci
/// keeps renewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn go_sdk_program_outlives_tokens_by_rereading_the_token_file() {
    let started = Instant::now();
    let s = setup(PART_DELAY).await;
    let p = go_program(&s);
    let control = s.control(&p).await;
    assert_control_dies_at_first_expiry("Go (--no-resign-proxy)", &control);
    let run = s.under_woci(&p, GO_SECONDS, &["--no-resign-proxy"]).await;
    assert_survives("Go (--no-resign-proxy)", &run);
    assert_go_multipart(&run);
    assert_eq!(run.swapped(), 0, "no proxy ran");
    report(
        "Go (oci-go-sdk v65.131.0, --no-resign-proxy)",
        "the SDK re-reading the renewed token file (no proxy)",
        &control,
        &run,
        started,
    );
}

fn node_program(node: &Path, control_env: Vec<(String, String)>) -> Program {
    Program { argv: vec![node.into(), sdk::node_program().into()], env: Vec::new(), control_env }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typescript_sdk_program_outlives_tokens_on_node_20_through_the_preload() {
    let started = Instant::now();
    let s = setup(Duration::ZERO).await;
    let node = PathBuf::from(peers::node());
    // Without woci the SDK reaches the network only if something routes Node through the
    // corporate proxy: woci's own preload, pointed there (no re-signing).
    let preload = peers::repo_root().join("src").join("proxy").join("node_preload.cjs");
    let p = node_program(&node, vec![("NODE_OPTIONS".into(), format!("--require {}", preload.display()))]);
    let control = s.control(&p).await;
    assert_control_dies_at_first_expiry("TypeScript (Node 20)", &control);
    let run = s.under_woci(&p, SECONDS, &[]).await;
    assert_survives("TypeScript (Node 20)", &run);
    assert!(run.result["node"].as_str().unwrap().starts_with("v20."), "{}", run.result);
    assert!(run.swapped() as u64 >= run.result["puts"].as_u64().unwrap(), "every put went through the proxy");
    report(
        "TypeScript (oci-common 2.142.1, Node 20)",
        "the proxy re-signing (the SDK reads the token once); reached through woci's NODE_OPTIONS preload",
        &control,
        &run,
        started,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn typescript_sdk_program_outlives_tokens_on_newer_node_through_node_use_env_proxy() {
    let started = Instant::now();
    let s = setup(Duration::ZERO).await;
    let node = sdk::node_with_env_proxy();
    let p = node_program(&node, vec![("NODE_USE_ENV_PROXY".into(), "1".into())]);
    let control = s.control(&p).await;
    assert_control_dies_at_first_expiry("TypeScript (Node with NODE_USE_ENV_PROXY)", &control);
    let run = s.under_woci(&p, SECONDS, &[]).await;
    assert_survives("TypeScript (NODE_USE_ENV_PROXY)", &run);
    assert!(run.swapped() as u64 >= run.result["puts"].as_u64().unwrap(), "every put went through the proxy");
    let version = run.result["node"].as_str().unwrap().to_owned();
    report(
        &format!("TypeScript (oci-common 2.142.1, Node {version})"),
        "the proxy re-signing, reached through Node's own NODE_USE_ENV_PROXY=1 (woci's preload stands aside)",
        &control,
        &run,
        started,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_sdk_program_outlives_tokens_through_the_proxy() {
    let started = Instant::now();
    let s = setup(Duration::ZERO).await;
    let p = Program {
        argv: vec![sdk::python().into(), sdk::dir("python").join("main.py").into()],
        env: Vec::new(),
        control_env: Vec::new(),
    };
    let control = s.control(&p).await;
    assert_control_dies_at_first_expiry("Python", &control);
    let run = s.under_woci(&p, SECONDS, &[]).await;
    assert_survives("Python", &run);
    assert!(run.swapped() as u64 >= run.result["puts"].as_u64().unwrap(), "every put went through the proxy");
    report(
        &format!("Python (oci {})", run.result["sdk"].as_str().unwrap_or("?")),
        "the proxy re-signing (SecurityTokenSigner holds the token it was given)",
        &control,
        &run,
        started,
    );
}

/// What the preload changes in a Node process: on Node 20 both `fetch` (undici's global dispatcher)
/// and `https` go through the tunnel; where Node routes them itself (`NODE_USE_ENV_PROXY=1` on a
/// newer Node) it stands aside; without `HTTPS_PROXY` it does nothing.
#[test]
fn the_node_preload_routes_node_20_and_stands_aside_where_node_routes_itself() {
    let preload = peers::repo_root().join("src").join("proxy").join("node_preload.cjs");
    let probe = r#"
const https = require('https');
void Headers;
const d = globalThis[Symbol.for('undici.globalDispatcher.1')];
console.log(JSON.stringify({
  dispatcher: d.constructor.name,
  tunnelled_fetch: Object.getOwnPropertySymbols(d).some((s) => String(s) === 'Symbol(options)' && typeof d[s].connect === 'function'),
  tunnelled_https: https.Agent.prototype.createConnection.toString().includes('tunnel('),
}));
"#;
    let run = |node: &Path, env: &[(&str, &str)]| -> Value {
        let mut cmd = Command::new(node);
        peers::peer_env(&mut cmd);
        cmd.arg("-e")
            .arg(probe)
            .env("NODE_OPTIONS", format!("--require {}", preload.display()))
            .envs(env.iter().copied());
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let proxy = [("HTTPS_PROXY", "http://woci:secret@127.0.0.1:9")];
    let node20 = PathBuf::from(peers::node());
    let routed = run(&node20, &proxy);
    assert_eq!(routed, serde_json::json!({"dispatcher": "Agent", "tunnelled_fetch": true, "tunnelled_https": true}));
    let untouched = run(&node20, &[]);
    assert_eq!(
        untouched,
        serde_json::json!({"dispatcher": "Agent", "tunnelled_fetch": false, "tunnelled_https": false})
    );
    let newer = sdk::node_with_env_proxy();
    let native = run(&newer, &[proxy[0], ("NODE_USE_ENV_PROXY", "1")]);
    assert_eq!(
        native,
        serde_json::json!({"dispatcher": "EnvHttpProxyAgent", "tunnelled_fetch": false, "tunnelled_https": false})
    );
    let newer_without = run(&newer, &proxy);
    assert_eq!(
        newer_without["tunnelled_fetch"], true,
        "the preload still routes a newer Node left without NODE_USE_ENV_PROXY"
    );
}
