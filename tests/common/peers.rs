//! The real peers of the end-to-end tests, installed by `scripts/setup-e2e`: the real `oci` CLI
//! (PyPI `oci-cli` in `.e2e/venv`), the real OIDC provider (npm `oidc-provider`,
//! `tests/e2e/idp/server.mjs`) and its headless login driver (`tests/e2e/idp/login-driver.mjs`,
//! usable as woci's `BROWSER`). A missing peer panics with what is missing and how to install it:
//! these tests fail, they never skip.
//!
//! Use from a test file: `mod common; use common::peers;`.

use serde::Deserialize;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// The `oci-cli` version `scripts/setup-e2e` installs.
pub const OCI_CLI_VERSION: &str = "3.95.1";

pub use super::{SCRUBBED_ENV as PEER_SCRUBBED_ENV, SYSTEM_CA};

const SETUP: &str = "run scripts/setup-e2e";

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/e2e/idp`.
pub fn idp_dir() -> PathBuf {
    repo_root().join("tests").join("e2e").join("idp")
}

/// The real `oci` CLI in `.e2e/venv`.
pub fn oci_cli() -> PathBuf {
    let p = repo_root().join(".e2e").join("venv").join("bin").join("oci");
    if !p.is_file() {
        panic!("{SETUP}: the real oci CLI (PyPI oci-cli {OCI_CLI_VERSION}) is missing: {} does not exist", p.display());
    }
    p
}

/// The Node.js program (`NODE` or `node` on PATH).
#[allow(clippy::disallowed_methods, reason = "the test harness reads its own environment")]
pub fn node() -> OsString {
    let node = std::env::var_os("NODE").filter(|n| !n.is_empty()).unwrap_or_else(|| "node".into());
    match Command::new(&node).arg("--version").stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => node,
        Ok(out) => panic!(
            "{SETUP}: Node.js is missing: `{} --version` failed: {}",
            node.to_string_lossy(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("{SETUP}: Node.js is missing: cannot run `{}`: {e}", node.to_string_lossy()),
    }
}

fn require_node_modules() {
    let pkg = idp_dir().join("node_modules").join("oidc-provider").join("package.json");
    if !pkg.is_file() {
        panic!("{SETUP}: npm oidc-provider is missing: {} does not exist (npm ci in tests/e2e/idp)", pkg.display());
    }
}

/// The headless login driver, an executable usable as woci's `BROWSER`. It logs in as
/// [`NodeIdp::username`] / [`NodeIdp::password`], which it reads from `IDP_USERNAME` /
/// `IDP_PASSWORD` (defaults match the server's defaults); see [`NodeIdp::driver_env`].
pub fn login_driver() -> PathBuf {
    require_node_modules();
    let _ = node();
    let p = idp_dir().join("login-driver.mjs");
    assert!(p.is_file(), "{} is missing from the repository", p.display());
    p
}

/// Sets the explicit CA variables and removes proxies and OCI/woci selectors from a peer's
/// environment.
pub fn peer_env(cmd: &mut Command) -> &mut Command {
    for k in PEER_SCRUBBED_ENV {
        cmd.env_remove(k);
    }
    cmd.env("REQUESTS_CA_BUNDLE", SYSTEM_CA).env("SSL_CERT_FILE", SYSTEM_CA).env("NODE_EXTRA_CA_CERTS", SYSTEM_CA)
}

/// How the IdP's client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// Confidential client, HTTP Basic (what woci sends when it has `auth_client_secret`).
    #[default]
    SecretBasic,
    /// Confidential client, secret in the form.
    SecretPost,
    /// Public client (PKCE only).
    None,
}

/// Options of [`NodeIdp::start`]. `Default` = free port, random client secret, Basic auth,
/// access tokens 300 s, refresh tokens 1 day.
#[derive(Debug, Clone, Default)]
pub struct IdpOptions {
    /// `0` = a free port.
    pub port: u16,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_auth: ClientAuth,
    pub access_token_ttl: Option<Duration>,
    pub refresh_token_ttl: Option<Duration>,
    /// Refresh tokens only when `offline_access` survives the authorization request, which
    /// oidc-provider (per OIDC Core §11) allows only with `prompt=consent`.
    pub strict_offline_access: bool,
    /// Log every request to the IdP log.
    pub debug: bool,
    /// Device flow: the announced polling `interval` (default 5 s).
    pub device_interval: Option<Duration>,
    /// Device flow: device code lifetime (default 600 s).
    pub device_code_ttl: Option<Duration>,
    /// Device flow: forced `slow_down` answers per device code.
    pub device_slow_down: u32,
}

#[derive(Debug, Deserialize)]
struct Ready {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    client_id: String,
    client_secret: Option<String>,
    username: String,
    password: String,
    resource: String,
}

/// A running `tests/e2e/idp/server.mjs`; killed on drop.
#[derive(Debug)]
pub struct NodeIdp {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub client_id: String,
    /// `None` for a public client.
    pub client_secret: Option<String>,
    pub username: String,
    pub password: String,
    /// The access tokens' audience.
    pub resource: String,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl NodeIdp {
    /// Starts the provider and waits (up to 60 s) for its ready line. A provider that does not
    /// come up is started once more (saying so on stderr, with its output); a second failure
    /// panics with the provider's stderr.
    pub fn start(opts: IdpOptions) -> NodeIdp {
        require_node_modules();
        match Self::try_start(&opts) {
            Ok(idp) => idp,
            Err(first) => {
                eprintln!("NodeIdp: the provider did not start, starting it once more: {first}");
                Self::try_start(&opts).unwrap_or_else(|second| panic!("{second}"))
            }
        }
    }

    fn try_start(opts: &IdpOptions) -> Result<NodeIdp, String> {
        let mut cmd = Command::new(node());
        peer_env(&mut cmd);
        cmd.current_dir(idp_dir())
            .arg("server.mjs")
            .arg("--port")
            .arg(opts.port.to_string())
            .arg("--exit-on-stdin-close")
            .env_remove("IDP_PORT")
            .env(
                "IDP_CLIENT_AUTH",
                match opts.client_auth {
                    ClientAuth::SecretBasic => "client_secret_basic",
                    ClientAuth::SecretPost => "client_secret_post",
                    ClientAuth::None => "none",
                },
            )
            .env("IDP_STRICT_OFFLINE_ACCESS", if opts.strict_offline_access { "1" } else { "0" })
            .env("IDP_DEBUG", if opts.debug { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in [
            ("IDP_CLIENT_ID", opts.client_id.clone()),
            ("IDP_CLIENT_SECRET", opts.client_secret.clone()),
            ("IDP_ACCESS_TOKEN_TTL", opts.access_token_ttl.map(|d| d.as_secs().max(1).to_string())),
            ("IDP_REFRESH_TOKEN_TTL", opts.refresh_token_ttl.map(|d| d.as_secs().max(1).to_string())),
            ("IDP_DEVICE_INTERVAL", opts.device_interval.map(|d| d.as_secs().max(1).to_string())),
            ("IDP_DEVICE_CODE_TTL", opts.device_code_ttl.map(|d| d.as_secs().max(1).to_string())),
            ("IDP_DEVICE_SLOW_DOWN", Some(opts.device_slow_down.to_string())),
        ] {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{SETUP}: cannot start node server.mjs: {e}"));

        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep draining so the provider never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(line)) if !line.trim().is_empty() => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "the Node IdP (tests/e2e/idp/server.mjs) did not start ({}); its stderr:\n{}",
                    match other {
                        Err(_) => "no ready line within 60 s".to_string(),
                        Ok(Err(e)) => format!("reading its stdout: {e}"),
                        Ok(Ok(_)) => "it exited".to_string(),
                    },
                    log.lock().unwrap()
                ));
            }
        };
        let ready: Ready = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("the Node IdP printed an unexpected ready line ({e}): {line}"));
        Ok(NodeIdp {
            issuer: ready.issuer,
            authorization_endpoint: ready.authorization_endpoint,
            token_endpoint: ready.token_endpoint,
            jwks_uri: ready.jwks_uri,
            client_id: ready.client_id,
            client_secret: ready.client_secret,
            username: ready.username,
            password: ready.password,
            resource: ready.resource,
            child,
            log,
        })
    }

    /// Stops the provider now (it stays stopped; the endpoints refuse connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the provider wrote to stderr so far (warnings, `server_error`s, debug lines).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The environment the login driver needs to log in as this provider's user.
    pub fn driver_env(&self) -> [(&'static str, String); 2] {
        [("IDP_USERNAME", self.username.clone()), ("IDP_PASSWORD", self.password.clone())]
    }

    /// A `Command` running the login driver on `authorize_url`, with a clean environment.
    pub fn driver_command(&self, authorize_url: &str) -> Command {
        let mut cmd = Command::new(login_driver());
        peer_env(&mut cmd);
        cmd.arg(authorize_url).envs(self.driver_env()).stdin(Stdio::null());
        cmd
    }
}

impl Drop for NodeIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `oci` from the venv with a clean environment, `HOME` = `home`, and returns its output.
pub fn oci_command(home: &Path) -> Command {
    let mut cmd = Command::new(oci_cli());
    peer_env(&mut cmd);
    cmd.env("HOME", home).env("OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING", "True").stdin(Stdio::null());
    cmd
}

/// The OCI SDK programs under `tests/sdk` and what runs them, installed by `scripts/setup-e2e`:
/// Go (the machine's `go`, modules from `tests/sdk/go/go.sum`), the npm packages of
/// `tests/sdk/node` (package-lock.json), a newer Node.js from npm (`.e2e/node-env-proxy`, for
/// `NODE_USE_ENV_PROXY`) and the OCI Python SDK in `.e2e/sdk-python` (requirements.txt).
pub mod sdk {
    use super::*;

    /// `tests/sdk/<name>`.
    pub fn dir(name: &str) -> PathBuf {
        repo_root().join("tests").join("sdk").join(name)
    }

    /// Builds the Go program into `out` (module cache and build cache from setup-e2e make this
    /// quick) and returns the binary.
    #[allow(clippy::disallowed_methods, reason = "the test harness reads its own environment")]
    pub fn go_program(out: &Path) -> PathBuf {
        let go = std::env::var_os("GO").filter(|g| !g.is_empty()).unwrap_or_else(|| "go".into());
        let bin = out.join("woci-sdk-go");
        let built = Command::new(&go)
            .current_dir(dir("go"))
            .args(["build", "-mod=readonly", "-o"])
            .arg(&bin)
            .arg(".")
            .env("GOFLAGS", "-mod=readonly")
            .stdin(Stdio::null())
            .output();
        match built {
            Ok(o) if o.status.success() => bin,
            Ok(o) => panic!(
                "{SETUP}: cannot build tests/sdk/go with `{}` (Go and the modules of tests/sdk/go/go.sum): {}",
                go.to_string_lossy(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("{SETUP}: Go is missing: cannot run `{}`: {e}", go.to_string_lossy()),
        }
    }

    /// `tests/sdk/node/main.js`, with its npm packages installed.
    pub fn node_program() -> PathBuf {
        let pkg = dir("node").join("node_modules").join("oci-objectstorage").join("package.json");
        if !pkg.is_file() {
            panic!(
                "{SETUP}: the OCI TypeScript SDK is missing: {} does not exist (npm ci in tests/sdk/node)",
                pkg.display()
            );
        }
        let _ = node();
        dir("node").join("main.js")
    }

    /// The Node.js from npm that honours `NODE_USE_ENV_PROXY` (`.e2e/node-env-proxy`).
    pub fn node_with_env_proxy() -> PathBuf {
        let p =
            repo_root().join(".e2e").join("node-env-proxy").join("node_modules").join("node").join("bin").join("node");
        if !p.is_file() {
            panic!(
                "{SETUP}: the newer Node.js (npm package `node`, for NODE_USE_ENV_PROXY) is missing: {} does not exist",
                p.display()
            );
        }
        p
    }

    /// The Python with the OCI Python SDK (`.e2e/sdk-python`).
    pub fn python() -> PathBuf {
        let p = repo_root().join(".e2e").join("sdk-python").join("bin").join("python");
        if !p.is_file() {
            panic!(
                "{SETUP}: the OCI Python SDK is missing: {} does not exist (tests/sdk/python/requirements.txt)",
                p.display()
            );
        }
        p
    }
}
