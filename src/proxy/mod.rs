//! The local re-signing HTTPS proxy behind `--auto-refresh`.
//!
//! The Python `oci` CLI reads its session token once and signs every request with it, so a long
//! command outlives its token. woci runs `oci` with `HTTPS_PROXY` pointing here. For OCI hosts
//! (and configured extra hosts) the proxy terminates the CONNECT tunnel with a certificate from an
//! ephemeral per-run CA that the child trusts through its CA bundle variables, and for each request
//! whose signature verifies with the profile's public key and whose keyId is `ST$<token>`, replaces
//! the token by the current one. The signing string never covers `keyId`, so the child's signature
//! stays valid and the request is otherwise forwarded byte for byte. Every other CONNECT is a plain
//! TCP tunnel.
//!
//! Submodules: [`hosts`] (what gets opened, `NO_PROXY`), [`ca`] (per-run CA, bundle file),
//! [`listener`] (front door, proxy authentication), [`limits`] (timeouts, connection caps,
//! warning rate), [`peer`] (whose a connection is), [`mitm`] (opened tunnels), [`resign`] (the
//! keyId swap decision), [`forward`] (upstream client), [`tunnel`] (plain tunnels), [`java`] (what
//! Java programs need to use the proxy).
//!
//! Limits: a child that ignores `HTTPS_PROXY` is not re-signed. `oci raw-request` is one: it
//! builds its own session with `trust_env = False`, so it connects directly (verified with
//! `REQUESTS_CA_BUNDLE`, which still holds the user's roots) and keeps its start-up token. Every
//! service command (`oci os …`, `oci compute …`) goes through the proxy
//! (`tests/proxy_e2e_oci.rs`).
//!
//! Security: listens on 127.0.0.1 only; every request must carry the per-run secret (128 bits) in
//! `Proxy-Authorization`; the CA key never leaves memory; tokens, the secret and signatures are
//! never logged (debug logs name host, method, path without query, and counts).

pub mod ca;
pub mod child_env;
pub mod forward;
pub mod hosts;
pub mod java;
pub mod limits;
mod listener;
mod mitm;
mod peer;
pub mod resign;
pub mod tunnel;

pub use child_env::ChildEnv;
pub use hosts::{HostMatcher, NoProxy};
pub use limits::Limits;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::secret::SecretString;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use rsa::RsaPublicKey;
use std::ffi::OsString;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use url::Url;
use zeroize::Zeroizing;

/// Boxed error of streamed bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of every response the proxy produces.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

pub(crate) fn empty_body() -> ProxyBody {
    Empty::<Bytes>::new().map_err(|never| match never {}).boxed()
}

/// What the proxy needs to know.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The profile's public key: only requests whose signature verifies with it get the new token.
    pub public_key: RsaPublicKey,
    /// CONNECT targets that are opened and re-signed; others are tunnelled.
    pub resign_hosts: HostMatcher,
    /// Extra PEM roots for upstream TLS besides the system roots (the user's `REQUESTS_CA_BUNDLE`,
    /// `SSL_CERT_FILE`, `oci --cert-bundle`). The child's CA bundle holds them too, beside the
    /// system roots and the per-run CA.
    pub upstream_ca_files: Vec<PathBuf>,
    /// The user's own HTTPS proxy (`http://[user:pass@]host:port`), used for every upstream
    /// connection except `no_proxy` hosts.
    pub upstream_proxy: Option<Url>,
    /// The user's `NO_PROXY`.
    pub no_proxy: NoProxy,
    /// Where the proxy creates its private (0700) folder holding the 0600 CA bundle file for the
    /// child; both are removed on shutdown or drop.
    pub temp_dir: PathBuf,
    /// Timeouts and connection caps ([`Limits::for_this_process`] by default).
    pub limits: Limits,
    /// Token time, which a token's `exp` is judged by (a request is held for a renewal
    /// when its token is about to end).
    pub clock: crate::clock::SharedClock,
}

impl ProxyConfig {
    /// A config for OCI realm hosts plus `extra_hosts`, with the user's upstream proxy, `NO_PROXY`
    /// and CA files left empty (see [`ProxyConfig::for_settings`]).
    pub fn new(public_key: RsaPublicKey, extra_hosts: &[String], temp_dir: impl Into<PathBuf>) -> ProxyConfig {
        ProxyConfig {
            public_key,
            resign_hosts: HostMatcher::oci_and(extra_hosts),
            upstream_ca_files: Vec::new(),
            upstream_proxy: None,
            no_proxy: NoProxy::default(),
            temp_dir: temp_dir.into(),
            limits: Limits::for_this_process(),
            clock: Arc::new(crate::clock::SystemClock),
        }
    }

    /// The configuration woci runs with: OCI realm hosts plus `resign_hosts` (settings
    /// `resign_hosts` / `WOCI_RESIGN_HOSTS`) and the `--endpoint` host, upstream roots from `extra_ca_files` (those that
    /// exist, as for woci's own client), the user's `HTTPS_PROXY`/`NO_PROXY` as the settings
    /// resolved them, and the private bundle folder under `temp_dir`.
    pub fn for_settings(
        public_key: RsaPublicKey,
        settings: &crate::settings::Settings,
        temp_dir: impl Into<PathBuf>,
        clock: crate::clock::SharedClock,
    ) -> ProxyConfig {
        // The service endpoint oci was told to use (`--endpoint`, `oci_cli_rc`) is re-signed too.
        let endpoint = settings.endpoint.as_deref().and_then(hosts::endpoint_authority);
        let limits = Limits::for_this_process();
        ProxyConfig {
            public_key,
            resign_hosts: HostMatcher::oci_and(settings.resign_hosts.iter().cloned().chain(endpoint)),
            upstream_ca_files: settings.extra_ca_files.iter().filter(|p| p.is_file()).cloned().collect(),
            upstream_proxy: settings.upstream_proxy.clone(),
            no_proxy: settings.no_proxy.clone(),
            temp_dir: temp_dir.into(),
            limits: settings.proxy_max_connections.map_or(limits, |max| limits.with_max_connections(max)),
            clock,
        }
    }
}

/// Starts the proxy for a profile: its public key (the key `oci` signs with) and
/// [`ProxyConfig::for_settings`]. `token` carries the current session token (the renewal loop
/// publishes each new one); `clock` is token time.
pub async fn start_for_profile(
    settings: &crate::settings::Settings,
    public_key: RsaPublicKey,
    token: watch::Receiver<SecretString>,
    clock: crate::clock::SharedClock,
) -> Result<ProxyHandle> {
    let parent = per_run_parent(settings)?;
    let cfg = ProxyConfig::for_settings(public_key, settings, parent, clock);
    tracing::debug!(
        profile = %settings.profile,
        extra_hosts = cfg.resign_hosts.extra.len(),
        extra_ca_files = cfg.upstream_ca_files.len(),
        upstream_proxy = cfg.upstream_proxy.is_some(),
        "starting the re-signing proxy"
    );
    start(cfg, token).await
}

/// The private folder the per-run folders go in. Not `/tmp` itself: a program that outlives this
/// run keeps the folder's paths in its environment (Node's preload, Java's options, the CA
/// bundle), and another user could take a free name there.
fn per_run_parent(settings: &crate::settings::Settings) -> Result<PathBuf> {
    fsutil::first_private_folder(settings.runtime_dir.as_deref(), &fsutil::temp_dir(), "woci-proxy")
}

/// Whether the proxy could start now, looked at before a run renews anything, and by `--status`:
/// room for the program's connections (a hard `ulimit -n` below [`fsutil::PROXY_OPEN_FILES`]
/// refuses it), and its per-run folder (a missing, read-only or full temporary folder refuses
/// it), made and removed again.
pub(crate) fn startable(settings: &crate::settings::Settings) -> Result<()> {
    #[cfg(unix)]
    fsutil::raise_open_file_limit(fsutil::PROXY_OPEN_FILES)?;
    let parent = per_run_parent(settings)?;
    let made = ca::private_dir(&parent).map(drop);
    fsutil::release_private_folder(&parent, "woci-proxy");
    made
}

/// Counters since start. Values are counts only, never request data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Authenticated CONNECT requests.
    pub connects: u64,
    /// CONNECTs opened for re-signing.
    pub opened: u64,
    /// CONNECTs tunnelled untouched.
    pub tunnels: u64,
    /// HTTP requests seen inside opened tunnels.
    pub requests: u64,
    /// Requests whose session token was swapped.
    pub swapped: u64,
    /// Requests forwarded untouched (not ours, no `ST$`, signature not by the profile key).
    pub untouched: u64,
    /// Requests rejected for missing or wrong proxy credentials.
    pub rejected_auth: u64,
    /// Upstream connections or requests that failed (answered 502).
    pub upstream_errors: u64,
}

/// State shared by all connection tasks.
pub(crate) struct Shared {
    public_key: RsaPublicKey,
    resign_hosts: HostMatcher,
    ca: ca::Ca,
    forwarder: forward::Forwarder,
    upstream: tunnel::Upstream,
    token: watch::Receiver<SecretString>,
    /// `woci:<secret>`, what `Proxy-Authorization: Basic` must decode to.
    expected_credentials: Zeroizing<Vec<u8>>,
    stats: Mutex<ProxyStats>,
    shutdown: watch::Receiver<bool>,
    limits: Limits,
    gate: Arc<limits::Gate>,
    warnings: limits::WarnLimiter,
    clock: crate::clock::SharedClock,
}

impl Shared {
    /// Adds one to the counter `field` picks.
    fn count(&self, field: fn(&mut ProxyStats) -> &mut u64) {
        *field(&mut self.stats.lock().unwrap_or_else(PoisonError::into_inner)) += 1;
    }
}

/// Runs `fut` on its own task until it finishes or the proxy shuts down (or its handle is dropped).
pub(crate) fn spawn_until_shutdown(shutdown: &watch::Receiver<bool>, fut: impl Future<Output = ()> + Send + 'static) {
    let mut shutdown = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = fut => {}
            () = stopped(&mut shutdown) => {}
        }
    });
}

/// Resolves once shutdown is signalled or the handle is gone. (A helper so that the watch `Ref`,
/// which is not `Send`, never lives across an await in a spawned future.)
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// The user name of the proxy's Basic credential (the per-run secret is the password).
const PROXY_USER: &str = "woci";

/// A running proxy. Dropping it stops the proxy and removes the CA bundle file too; prefer
/// [`ProxyHandle::shutdown`], which also waits for the listener to stop.
pub struct ProxyHandle {
    addr: SocketAddr,
    secret: SecretString,
    bundle: ca::BundleFile,
    shutdown: watch::Sender<bool>,
    join: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ProxyHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyHandle")
            .field("addr", &self.addr)
            .field("ca_bundle", &self.bundle.path())
            .finish_non_exhaustive()
    }
}

/// Starts the proxy on `127.0.0.1:0`. `token` carries the current session token; each request
/// reads the latest value.
pub async fn start(cfg: ProxyConfig, token: watch::Receiver<SecretString>) -> Result<ProxyHandle> {
    ca::sweep_stale(&cfg.temp_dir);
    #[cfg(unix)]
    ca::sweep_made_up(&fsutil::temp_dir());
    let ca = ca::Ca::new()?;
    let roots = ca::child_roots_pem(&cfg.upstream_ca_files)?;
    let bundle = ca::BundleFile::create(&cfg.temp_dir, &format!("{}{roots}", ca.cert_pem()))?;
    let forwarder = forward::Forwarder::new(&cfg.upstream_ca_files, cfg.upstream_proxy.as_ref(), &cfg.no_proxy)?;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| Error::Other(format!("cannot start the re-signing proxy on 127.0.0.1: {e}")))?;
    let addr = listener.local_addr().map_err(|e| Error::Other(format!("cannot start the re-signing proxy: {e}")))?;

    let mut raw = Zeroizing::new([0u8; 16]);
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut raw[..]);
    let secret = SecretString::new(raw.iter().map(|b| format!("{b:02x}")).collect());

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        public_key: cfg.public_key,
        resign_hosts: cfg.resign_hosts,
        ca,
        forwarder,
        upstream: tunnel::Upstream { proxy: cfg.upstream_proxy, no_proxy: cfg.no_proxy, ..Default::default() },
        token,
        expected_credentials: Zeroizing::new(format!("{PROXY_USER}:{}", secret.expose()).into_bytes()),
        stats: Mutex::default(),
        shutdown: shutdown_rx,
        gate: limits::Gate::new(cfg.limits),
        warnings: limits::WarnLimiter::new(cfg.limits),
        limits: cfg.limits,
        clock: cfg.clock,
    });
    let join = tokio::spawn(listener::accept_loop(listener, shared.clone()));
    tracing::debug!(%addr, "re-signing proxy listening");
    Ok(ProxyHandle { addr, secret, bundle, shutdown: shutdown_tx, join: Some(join), shared })
}

impl ProxyHandle {
    /// The listening address (127.0.0.1, ephemeral port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy URL with credentials, `http://woci:<secret>@127.0.0.1:<port>`. Holds the per-run
    /// secret: pass it to the child's environment only.
    pub fn proxy_url(&self) -> SecretString {
        SecretString::new(format!("http://{PROXY_USER}:{}@{}", self.secret.expose(), self.addr))
    }

    /// The CA bundle file the child must trust (per-run CA + the roots it would otherwise use).
    pub fn ca_bundle_path(&self) -> &Path {
        self.bundle.path()
    }

    /// Variables to set for the child: `HTTPS_PROXY`/`https_proxy` (the proxy URL with the secret)
    /// and `REQUESTS_CA_BUNDLE`, `SSL_CERT_FILE`, `CURL_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`,
    /// `OCI_CLI_CERT_BUNDLE` (the bundle file; the last one because the CLI prefers it over
    /// `REQUESTS_CA_BUNDLE`). A supervised program gets more: [`ProxyHandle::exec_env`].
    pub fn child_env(&self) -> Vec<(OsString, OsString)> {
        child_env::base_vars(&self.proxy_url(), self.bundle.path())
    }

    /// Variables to remove from the child's environment: `NO_PROXY`/`no_proxy` (a bypassed OCI host
    /// would miss the re-signing; the proxy honours the list itself for upstream connections).
    pub fn env_removals(&self) -> Vec<OsString> {
        child_env::removals()
    }

    /// The whole environment change for a supervised child given the user's environment: the
    /// above plus what Go and Node.js programs need ([`child_env`]; writes the Node preload into
    /// the private folder).
    pub fn exec_env(&self, user_env: &crate::settings::Env) -> Result<ChildEnv> {
        let facts = child_env::ProxyFacts {
            url: &self.proxy_url(),
            ca_bundle: self.bundle.path(),
            ca_pem: &self.shared.ca.cert_pem(),
            private_dir: self.bundle.dir(),
            resign: &self.shared.resign_hosts,
        };
        let mut env = ChildEnv::build(&facts, user_env)?;
        // The secret, and the whole Basic credential a client sends (`woci:` and all).
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(&*self.shared.expected_credentials);
        env.secrets.extend([self.secret.clone(), SecretString::new(basic)]);
        Ok(env)
    }

    /// One line for a child that failed after using tunnelled hosts ([`tunnel::untouched_hint`]).
    pub fn untouched_hint(&self) -> Option<String> {
        tunnel::untouched_hint(&self.shared.upstream.untouched())
    }

    /// Counters since start.
    pub fn stats(&self) -> ProxyStats {
        *self.shared.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the listener and every connection, and removes the CA bundle file.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(join) = self.join.take() {
            let _ = join.await;
        }
        self.bundle.remove();
        tracing::debug!(stats = ?self.stats(), "re-signing proxy stopped");
    }
}

impl Drop for ProxyHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        // The bundle file is removed by its own Drop.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_settings_and_environment() {
        use std::collections::HashMap;
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "x").unwrap();
        let key = crate::signer::tests::test_key().public().clone();
        let settings = |pairs: &[(&str, &str)]| {
            let mut env: HashMap<String, String> =
                pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
            env.insert("HOME".into(), dir.path().display().to_string());
            crate::settings::Settings::resolve(&Default::default(), &Default::default(), &env, false)
        };
        let node_ca = dir.path().join("node-ca.pem");
        std::fs::write(&node_ca, "y").unwrap();
        let curl_ca = dir.path().join("curl-ca.pem");
        std::fs::write(&curl_ca, "z").unwrap();
        let missing = dir.path().join("missing.pem").display().to_string();
        let s = settings(&[
            ("https_proxy", "corp-proxy.example:3128"),
            ("NO_PROXY", "internal.example,10.0.0.0/8"),
            ("WOCI_RESIGN_HOSTS", "localhost:8443"),
            ("REQUESTS_CA_BUNDLE", &ca.display().to_string()),
            ("SSL_CERT_FILE", &missing),
            ("NODE_EXTRA_CA_CERTS", &node_ca.display().to_string()),
            ("CURL_CA_BUNDLE", &curl_ca.display().to_string()),
        ])
        .unwrap();
        let cfg = ProxyConfig::for_settings(key.clone(), &s, dir.path(), Arc::new(crate::clock::SystemClock));
        assert!(cfg.resign_hosts.matches("objectstorage.us-ashburn-1.oraclecloud.com", 443));
        assert!(cfg.resign_hosts.matches("localhost", 8443));
        assert!(!cfg.resign_hosts.matches("localhost", 443));
        assert!(!cfg.resign_hosts.matches("github.com", 443));
        assert_eq!(cfg.upstream_ca_files, vec![ca, curl_ca, node_ca], "a CA the user gave curl or Node is trusted too");
        assert_eq!(cfg.upstream_proxy.as_ref().map(Url::as_str), Some("http://corp-proxy.example:3128/"));
        assert!(cfg.no_proxy.bypass("a.internal.example", 443));
        assert!(!cfg.no_proxy.bypass("objectstorage.us-ashburn-1.oraclecloud.com", 443));
        assert_eq!(cfg.temp_dir, dir.path());

        let none =
            ProxyConfig::for_settings(key, &settings(&[]).unwrap(), dir.path(), Arc::new(crate::clock::SystemClock));
        assert!(none.upstream_proxy.is_none() && none.upstream_ca_files.is_empty());
        let err = settings(&[("HTTPS_PROXY", "http://us er:pw@[bad")]).unwrap_err().to_string();
        assert!(!err.contains("pw"), "{err}");
    }
}
