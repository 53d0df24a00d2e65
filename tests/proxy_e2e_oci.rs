//! The re-signing proxy with the real `oci` CLI as the child (PyPI `oci-cli` 3.95.1): the CLI gets
//! exactly the environment [`ProxyHandle::child_env`] gives it, signs with the profile key and
//! token A from its token file, and the local TLS "OCI" upstream must receive token B with a
//! signature that still verifies. The same commands without the proxy deliver token A, so the
//! swap is the proxy's doing.
//!
//! Needs the real `oci` CLI that `scripts/setup-e2e` installs into `.e2e/venv`. Without it the
//! test fails, naming what is missing; it never skips.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use tokio::sync::watch;
use woci::keys::KeyPair;
use woci::proxy::{self, HostMatcher, NoProxy, ProxyConfig, ProxyHandle};
use woci::secret::SecretString;

mod common;
use common::peers;
mod proxy_common;
use proxy_common::*;

/// A UPST-shaped JWT the CLI accepts (it decodes `exp` without checking the signature).
fn jwt(name: &str) -> String {
    let now = common::unix_now() as u64;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"test"}"#);
    let claims = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"sub":"ocid1.user.oc1..u","tenant":"ocid1.tenancy.oc1..t","ptype":"user","iat":{now},"exp":{},"jti":"{name}"}}"#,
        now + 3600
    ));
    format!("{header}.{claims}.{}", URL_SAFE_NO_PAD.encode(format!("signature-{name}")))
}

struct Profile {
    home: tempfile::TempDir,
    config: PathBuf,
}

/// `~/.oci/config` with a `security_token_file` holding `token` and the profile key.
fn profile(key: &KeyPair, token: &str) -> Profile {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join(".oci");
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("key.pem");
    std::fs::write(&key_file, key.private_pem().unwrap().as_bytes()).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, token).unwrap();
    let config = dir.join("config");
    std::fs::write(
        &config,
        format!(
            "[DEFAULT]\ntenancy=ocid1.tenancy.oc1..t\nregion=us-ashburn-1\nfingerprint={}\nkey_file={}\nsecurity_token_file={}\n",
            key.fingerprint(),
            key_file.display(),
            token_file.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    for f in [&key_file, &token_file, &config] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    Profile { home, config }
}

/// Runs `oci <args> --config-file … --auth security_token` with a clean environment plus `env`.
#[allow(clippy::disallowed_methods, reason = "the child gets the test's PATH")]
fn run_oci(p: &Profile, env: &[(OsString, OsString)], args: &[&str]) {
    let mut cmd = Command::new(peers::oci_cli());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", p.home.path())
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING", "True")
        .args(args)
        .arg("--config-file")
        .arg(&p.config)
        .args(["--profile", "DEFAULT", "--auth", "security_token"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("cannot run oci");
    assert!(out.status.success(), "oci {args:?} failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
}

/// The environment of a child without the proxy: it trusts the upstream's CA directly.
fn direct_env(ca: &Path) -> Vec<(OsString, OsString)> {
    ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"]
        .iter()
        .map(|k| (OsString::from(k), ca.as_os_str().to_owned()))
        .collect()
}

async fn start_proxy(
    upstream: &Upstream,
    key: &KeyPair,
    token: &str,
    tmp: &Path,
) -> (ProxyHandle, watch::Sender<SecretString>) {
    let cfg = ProxyConfig {
        public_key: key.public().clone(),
        resign_hosts: HostMatcher::only([format!("localhost:{}", upstream.port)]),
        upstream_ca_files: vec![upstream.ca_file.path().to_owned()],
        upstream_proxy: None,
        no_proxy: NoProxy::default(),
        temp_dir: tmp.to_owned(),
        limits: proxy::Limits::default(),
        clock: std::sync::Arc::new(woci::clock::SystemClock),
    };
    let (tx, rx) = watch::channel(SecretString::from(token));
    (proxy::start(cfg, rx).await.unwrap(), tx)
}

/// Runs one `oci os` command: `get` (`ns get`: GET, unsigned body), `post` (`bucket create`: POST,
/// body headers signed) or `put` (`object put --no-multipart`: a streamed PUT, body unsigned).
/// `case` is `<op>-<via>`.
fn run_case(p: &Profile, base: &str, upload: &Path, case: &str, env: &[(OsString, OsString)]) {
    let (op, via) = case.split_once('-').unwrap();
    let mut args: Vec<String> = ["--endpoint", base, "os"].map(String::from).to_vec();
    let rest: Vec<String> = match op {
        "get" => vec!["ns".into(), "get".into()],
        "post" => vec![
            "bucket".into(),
            "create".into(),
            "--namespace-name".into(),
            "ns".into(),
            "--compartment-id".into(),
            "ocid1.compartment.oc1..a".into(),
            "--name".into(),
            format!("bucket-{via}"),
        ],
        _ => vec![
            "object".into(),
            "put".into(),
            "--namespace-name".into(),
            "ns".into(),
            "--bucket-name".into(),
            "bk".into(),
            "--name".into(),
            format!("object-{via}"),
            "--file".into(),
            upload.display().to_string(),
            "--no-multipart".into(),
            "--force".into(),
        ],
    };
    args.extend(rest);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run_oci(p, env, &args);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_oci_cli_gets_its_token_swapped_through_the_proxy() {
    peers::oci_cli();
    let upstream = start_upstream().await;
    let key = KeyPair::from_pem(PROFILE_KEY_PEM).unwrap();
    let (token_a, token_b) = (jwt("A"), jwt("B"));
    let p = profile(&key, &token_a);
    let tmp = tempfile::tempdir().unwrap();
    let (handle, _tx) = start_proxy(&upstream, &key, &token_b, tmp.path()).await;
    let base = format!("https://localhost:{}", upstream.port);
    let upload = tmp.path().join("upload.bin");
    let data: Vec<u8> = (0..5 * 1024 * 1024 + 7).map(|i| (i % 253) as u8).collect();
    std::fs::write(&upload, &data).unwrap();

    // The CLI runs as a blocking child process while the proxy and the upstream keep running on
    // the other worker threads. (Not `oci raw-request`: it sets `trust_env = False` on its
    // session, so it ignores `HTTPS_PROXY` and cannot be re-signed.)
    let proxied = handle.child_env();
    let direct = direct_env(upstream.ca_file.path());
    tokio::task::block_in_place(|| {
        for op in ["get", "post", "put"] {
            run_case(&p, &base, &upload, &format!("{op}-proxy"), &proxied);
            run_case(&p, &base, &upload, &format!("{op}-direct"), &direct);
        }
    });

    // The commands ran one after the other, so the upstream saw them in that order.
    let seen = upstream.seen.lock().unwrap().clone();
    let order: Vec<String> =
        ["get", "post", "put"].iter().flat_map(|op| [format!("{op}-proxy"), format!("{op}-direct")]).collect();
    assert_eq!(seen.len(), order.len(), "{seen:?}");
    let case = |name: String| -> Seen { seen[order.iter().position(|o| *o == name).unwrap()].clone() };
    let want_a = format!("ST${token_a}");
    let want_b = format!("ST${token_b}");
    for (via, key_id_wanted) in [("proxy", &want_b), ("direct", &want_a)] {
        for op in ["get", "post", "put"] {
            let seen = case(format!("{op}-{via}"));
            assert_eq!(&key_id(&seen), key_id_wanted, "{} {} via {via}", seen.method, seen.target);
            assert!(verifies(&seen, &key), "{} {} via {via} must verify", seen.method, seen.target);
        }
    }
    let post = case("post-proxy".into());
    assert_eq!((post.method.as_str(), post.target.as_str()), ("POST", "/n/ns/b"));
    assert!(post.headers.contains_key("x-content-sha256"), "the CLI signs POST bodies");
    let put = case("put-proxy".into());
    assert_eq!((put.method.as_str(), put.target.as_str()), ("PUT", "/n/ns/b/bk/o/object-proxy"));
    assert_eq!(put.len, data.len() as u64);
    assert_eq!(put.sha256, hex(&<sha2::Sha256 as sha2::Digest>::digest(&data)));
    assert_eq!(case("get-proxy".into()).target, "/n");
    assert_eq!(case("put-direct".into()).target, "/n/ns/b/bk/o/object-direct");
    let stats = handle.stats();
    assert_eq!((stats.swapped, stats.untouched, stats.upstream_errors), (3, 0, 0), "{stats:?}");
    let bundle = handle.ca_bundle_path().to_owned();
    handle.shutdown().await;
    assert!(!bundle.exists());
}

/// Python 3.13 verifies with `VERIFY_X509_STRICT` by default (OpenSSL's RFC 5280 checks on the
/// CA and leaf extensions); the per-run CA and its leaves must pass it with the `oci` CLI's own
/// Python, whatever version that is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_run_ca_passes_strict_x509_verification_in_python() {
    let python = peers::oci_cli().with_file_name("python");
    assert!(python.is_file(), "no `python` beside `oci` at `{}`", python.display());
    let upstream = start_upstream().await;
    let key = KeyPair::from_pem(PROFILE_KEY_PEM).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (handle, _tx) = start_proxy(&upstream, &key, "t", tmp.path()).await;
    let url = url::Url::parse(handle.proxy_url().expose()).unwrap();
    let script = r#"
import base64, http.client, os, ssl
ctx = ssl.create_default_context(cafile=os.environ["BUNDLE"])
ctx.verify_flags |= ssl.VERIFY_X509_STRICT
c = http.client.HTTPSConnection("127.0.0.1", int(os.environ["PROXY_PORT"]), context=ctx)
creds = base64.b64encode(os.environ["PROXY_CREDS"].encode()).decode()
c.set_tunnel("localhost", int(os.environ["UPSTREAM_PORT"]), headers={"Proxy-Authorization": "Basic " + creds})
c.request("GET", "/strict", headers={"x-test-case": "strict"})
r = c.getresponse()
assert r.status == 200, r.status
r.read()
"#;
    let out = tokio::task::block_in_place(|| {
        Command::new(&python)
            .env_clear()
            .env("BUNDLE", handle.ca_bundle_path())
            .env("PROXY_PORT", handle.addr().port().to_string())
            .env("PROXY_CREDS", format!("{}:{}", url.username(), url.password().unwrap()))
            .env("UPSTREAM_PORT", upstream.port.to_string())
            .env("REQUESTS_CA_BUNDLE", handle.ca_bundle_path())
            .env("SSL_CERT_FILE", handle.ca_bundle_path())
            .args(["-c", script])
            .output()
            .unwrap()
    });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(upstream.case("strict").target, "/strict");
    assert_eq!(handle.stats().opened, 1);
    handle.shutdown().await;
}
