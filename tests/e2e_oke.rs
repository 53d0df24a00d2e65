//! Native OKE tokens end to end: `woci ce cluster generate-token` against the real
//! `oci ce cluster generate-token` (PyPI `oci-cli` 3.95.1) for the same profile, both checked by
//! the emulator's OKE token review; and real `kubectl` (at `/usr/bin/kubectl`, or `KUBECTL`) using
//! the kubeconfig `oci ce cluster create-kubeconfig --with-auth-context` writes, with `oci`
//! replaced by `woci`, against a stub HTTPS API server that hands the bearer token to the review.
//! A missing `oci` or `kubectl` fails these tests; nothing is skipped.

mod common;

use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use common::peers;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const CLUSTER: &str = "ocid1.cluster.oc1.iad.aaaaaaaawociokeexample";
const REGION: &str = "us-ashburn-1";

/// The exec args of an OKE kubeconfig made with `--with-auth-context` for profile `P`.
fn generate_token_args() -> Vec<&'static str> {
    vec![
        "ce",
        "cluster",
        "generate-token",
        "--cluster-id",
        CLUSTER,
        "--region",
        REGION,
        "--auth",
        "security_token",
        "--profile",
        "P",
    ]
}

/// An IdP profile made the way a user makes one: a refresh token, then `woci session refresh`
/// writes the key, the UPST and the `~/.oci/config` entries `oci` reads.
async fn profile_world() -> World {
    let w = World::new().await;
    w.seed_refresh_token();
    let mut c = w.woci();
    c.args(["session", "refresh", "--profile", "P"]);
    let out = run(c).await;
    assert!(out.status.success(), "woci session refresh: {}", String::from_utf8_lossy(&out.stderr));
    w
}

async fn woci(w: &World, args: &[&str]) -> Output {
    let mut c = w.woci();
    c.args(args);
    run(c).await
}

async fn real_oci(w: &World, args: &[&str]) -> Output {
    let mut c = peers::oci_command(w.home());
    c.args(args);
    tokio::task::spawn_blocking(move || c.output().expect("oci runs")).await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// The `status.token` of an ExecCredential.
fn token_of(exec_credential: &str) -> String {
    let v: Value = serde_json::from_str(exec_credential).expect("ExecCredential is JSON");
    v["status"]["token"].as_str().expect("status.token").to_owned()
}

/// POSTs a TokenReview to the emulator: `Ok(username)` or `Err(reason)`.
async fn review(w: &World, token: &str, cluster: &str) -> Result<String, String> {
    let mut url = w.emu.oke_token_review_url();
    url.query_pairs_mut().append_pair("cluster", cluster);
    let body =
        serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    let resp = reqwest::Client::builder().no_proxy().build().unwrap().post(url).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    if v["status"]["authenticated"] == true {
        Ok(v["status"]["user"]["username"].as_str().unwrap().to_owned())
    } else {
        Err(v["status"]["error"].as_str().unwrap().to_owned())
    }
}

/// The decoded URL of a token, which must be base64url with `=` padding as Python emits it.
fn decode(token: &str) -> url::Url {
    assert_eq!(token.len() % 4, 0, "padded base64: {token}");
    let text = String::from_utf8(URL_SAFE.decode(token).expect("base64url")).unwrap();
    url::Url::parse(&text).expect("a URL")
}

/// Flips one character inside the base64 signature of a token's `authorization`.
fn tamper_signature(token: &str) -> String {
    let url = decode(token);
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k != "authorization" {
                return (k, v);
            }
            let at = v.find("signature=\"").unwrap() + "signature=\"".len() + 5;
            let mut b = v.into_bytes();
            b[at] = if b[at] == b'A' { b'B' } else { b'A' };
            (k, String::from_utf8(b).unwrap())
        })
        .collect();
    let mut out = url.clone();
    out.query_pairs_mut().clear().extend_pairs(pairs);
    URL_SAFE.encode(out.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn woci_and_oci_tokens_pass_the_oke_check_and_tampered_ones_fail() {
    let w = profile_world().await;
    let args = generate_token_args();
    let (mine, theirs) = (woci(&w, &args).await, real_oci(&w, &args).await);
    assert!(theirs.status.success(), "oci: {}", String::from_utf8_lossy(&theirs.stderr));
    assert!(mine.status.success(), "woci: {}", String::from_utf8_lossy(&mine.stderr));
    assert!(!w.oci_out.exists(), "woci started oci for generate-token");
    let (t_woci, t_oci) = (token_of(&stdout(&mine)), token_of(&stdout(&theirs)));
    assert_eq!(review(&w, &t_oci, CLUSTER).await, Ok(w.cfg.user_ocid.clone()), "the real oci token");
    assert_eq!(review(&w, &t_woci, CLUSTER).await, Ok(w.cfg.user_ocid.clone()), "woci's token");
    for (who, t) in [("oci", &t_oci), ("woci", &t_woci)] {
        assert_eq!(review(&w, &tamper_signature(t), CLUSTER).await, Err("bad_signature".into()), "{who}");
        assert_eq!(review(&w, t, "ocid1.cluster.oc1.iad.other").await, Err("foreign_cluster".into()), "{who}");
        let moved = decode(t).as_str().replace(CLUSTER, "ocid1.cluster.oc1.iad.other");
        assert_eq!(
            review(&w, &URL_SAFE.encode(&moved), "ocid1.cluster.oc1.iad.other").await,
            Err("bad_signature".into())
        );
    }
    assert_eq!(w.emu.stats().oke_tokens_accepted, 2);
    assert_no_secrets(&String::from_utf8_lossy(&mine.stderr), &[&w.read(&w.token_path())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::disallowed_methods, reason = "compares with the real clock of the processes it runs")]
async fn woci_token_and_exec_credential_have_ocis_shape() {
    let w = profile_world().await;
    let args = generate_token_args();
    let before = SystemTime::now();
    let (mine, theirs) = (woci(&w, &args).await, real_oci(&w, &args).await);
    assert!(theirs.status.success() && mine.status.success());
    let (out_woci, out_oci) = (stdout(&mine), stdout(&theirs));
    let (t_woci, t_oci) = (token_of(&out_woci), token_of(&out_oci));

    // The token: scheme, host, path, query parameter names and order, signed headers, keyId.
    let (u_woci, u_oci) = (decode(&t_woci), decode(&t_oci));
    assert_eq!(u_woci.scheme(), u_oci.scheme());
    assert_eq!(u_woci.host_str(), u_oci.host_str());
    assert_eq!(u_woci.host_str(), Some("containerengine.us-ashburn-1.oraclecloud.com"));
    assert_eq!(u_woci.path(), u_oci.path());
    let q = |u: &url::Url| u.query_pairs().into_owned().collect::<Vec<(String, String)>>();
    let (q_woci, q_oci) = (q(&u_woci), q(&u_oci));
    let names = |q: &[(String, String)]| q.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(names(&q_woci), names(&q_oci));
    assert_eq!(names(&q_woci), ["authorization", "date"]);
    let auth = |q: &[(String, String)]| woci::signer::SignatureHeader::parse(&q[0].1).unwrap();
    let (a_woci, a_oci) = (auth(&q_woci), auth(&q_oci));
    assert_eq!(a_woci.headers(), a_oci.headers(), "signed-header list");
    assert_eq!(a_woci.headers(), ["date", "(request-target)", "host"]);
    let param_names = |a: &woci::signer::SignatureHeader| a.params().map(|(n, _)| n.to_owned()).collect::<Vec<_>>();
    assert_eq!(param_names(&a_woci), param_names(&a_oci), "Authorization parameters and their order");
    assert_eq!(a_woci.key_id(), a_oci.key_id(), "both sign with the profile's UPST");
    assert_eq!(a_woci.algorithm(), a_oci.algorithm());
    // The encoded query text: same escaping (Python urlencode) apart from the values that differ.
    let shape = |u: &url::Url| {
        let raw = u.query().unwrap().to_owned();
        raw.split('&').map(|p| p.split_once('=').unwrap().0.to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(shape(&u_woci), shape(&u_oci));
    let date = httpdate::parse_http_date(&q_woci[1].1).expect("RFC 1123 date");
    assert!(date + Duration::from_secs(2) >= before && date <= SystemTime::now() + Duration::from_secs(1));

    // The ExecCredential, field by field.
    let (j_woci, j_oci): (Value, Value) =
        (serde_json::from_str(&out_woci).unwrap(), serde_json::from_str(&out_oci).unwrap());
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&j_woci), keys(&j_oci));
    assert_eq!(keys(&j_woci["status"]), keys(&j_oci["status"]));
    assert_eq!(j_woci["apiVersion"], j_oci["apiVersion"]);
    assert_eq!(j_woci["kind"], j_oci["kind"]);
    let exp_woci = j_woci["status"]["expirationTimestamp"].as_str().unwrap();
    let exp_oci = j_oci["status"]["expirationTimestamp"].as_str().unwrap();
    assert_eq!(exp_woci.len(), exp_oci.len(), "{exp_woci} vs {exp_oci}");
    assert_eq!(&exp_woci[..13], &exp_oci[..13], "same hour: both now + 4 minutes");
    let expires = iso_to_unix(exp_woci);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((now + 240 - expires).abs() <= 30, "expires 4 minutes ahead: {exp_woci}");
    // And the text itself: identical once the token and timestamp are set aside.
    let strip = |s: &str, t: &str, e: &str| s.replace(t, "TOKEN").replace(e, "EXPIRY");
    assert_eq!(strip(&out_woci, &t_woci, exp_woci), strip(&out_oci, &t_oci, exp_oci));
}

/// `2026-01-01T12:04:00.123456Z` → unix seconds (UTC).
fn iso_to_unix(s: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_woci_does_not_reproduce_goes_to_oci_unchanged() {
    let w = profile_world().await;
    let base = generate_token_args();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        ([&["--no-native"][..], &base].concat(), vec![]),
        ([&base[..], &["--from-json", "file://x.json"]].concat(), vec![]),
        ([&base[..], &["--debug"]].concat(), vec![]),
        (base.iter().map(|a| if *a == "security_token" { "api_key" } else { a }).collect(), vec![]),
        (base.clone(), vec![("OCI_CLI_KEY_FILE", "/elsewhere.pem")]),
    ];
    for (args, env) in cases {
        let _ = std::fs::remove_file(&w.oci_out);
        let mut c = w.woci();
        c.args(&args).envs(env.iter().copied());
        let out = run(c).await;
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty(), "{args:?}: woci answered itself");
        let forwarded = w.oci_argv();
        let user_args: Vec<&str> = args.iter().copied().filter(|a| *a != "--no-native").collect();
        assert!(forwarded.ends_with(&user_args.iter().map(|s| s.to_string()).collect::<Vec<_>>()), "{forwarded:?}");
    }
    // INI `native_oke = false` does what --no-native does; a bad value is a configuration error.
    w.write_manager_ini(&[("native_oke", "false")]);
    let _ = std::fs::remove_file(&w.oci_out);
    let out = woci(&w, &base).await;
    assert!(out.status.success() && out.stdout.is_empty() && w.oci_out.exists());
    w.write_manager_ini(&[("native_oke", "maybe")]);
    let out = woci(&w, &base).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("native_oke"));
    w.write_manager_ini(&[("native_oke", "true")]);
    assert!(token_of(&stdout(&woci(&w, &base).await)).len() > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_realms_get_their_domain_where_oci_hardcodes_oraclecloud_com() {
    let w = profile_world().await;
    let args = [
        "ce",
        "cluster",
        "generate-token",
        "--cluster-id",
        CLUSTER,
        "--region",
        "us-langley-1",
        "--profile",
        "P",
        "--auth",
        "security_token",
    ];
    let (mine, theirs) = (woci(&w, &args).await, real_oci(&w, &args).await);
    assert!(mine.status.success() && theirs.status.success());
    assert_eq!(decode(&token_of(&stdout(&mine))).host_str(), Some("containerengine.us-langley-1.oraclegovcloud.com"));
    assert_eq!(decode(&token_of(&stdout(&theirs))).host_str(), Some("containerengine.us-langley-1.oraclecloud.com"));
}

// ---------------------------------------------------------------------------------------------
// kubectl

/// kubectl from the machine image (Debian bookworm has no package); `KUBECTL` overrides.
#[allow(clippy::disallowed_methods, reason = "the test harness reads its own environment")]
fn kubectl() -> PathBuf {
    let p = std::env::var_os("KUBECTL").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/kubectl"));
    match std::process::Command::new(&p).args(["version", "--client"]).output() {
        Ok(o) if o.status.success() => p,
        _ => panic!("kubectl is missing: `{} version --client` does not run; install kubectl (https://kubernetes.io/docs/tasks/tools/) or set KUBECTL", p.display()),
    }
}

/// A stub Kubernetes API server on 127.0.0.1 over TLS: every request's bearer token goes to the
/// emulator's OKE token review; reviewed requests get `/version`, `/api`, `/apis`, `/api/v1` and
/// `/api/v1/namespaces`, the rest 401 as an API server answers.
struct ApiServer {
    url: String,
    ca_pem: String,
    /// Review results in order: `Ok(user)` / `Err(reason)`.
    reviews: Arc<Mutex<Vec<Result<String, String>>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl ApiServer {
    async fn start(review_url: url::Url) -> ApiServer {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let reviews = Arc::new(Mutex::new(Vec::new()));
        let (rv, ru) = (reviews.clone(), review_url);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, rv, ru) = (acceptor.clone(), rv.clone(), ru.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let svc = hyper::service::service_fn(move |req| api(req, ru.clone(), rv.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        ApiServer { url, ca_pem: ca_cert.pem(), reviews, _task: task }
    }

    fn reviews(&self) -> Vec<Result<String, String>> {
        self.reviews.lock().unwrap().clone()
    }
}

async fn api(
    req: hyper::Request<hyper::body::Incoming>,
    review_url: url::Url,
    reviews: Arc<Mutex<Vec<Result<String, String>>>>,
) -> Result<hyper::Response<http_body_util::Full<bytes::Bytes>>, std::convert::Infallible> {
    let json = |status: u16, v: Value| {
        Ok(hyper::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(v.to_string())))
            .unwrap())
    };
    let bearer =
        req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let result = match bearer {
        None => Err("no_bearer_token".to_owned()),
        Some(token) => {
            let body = serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
            let mut url = review_url.clone();
            url.query_pairs_mut().append_pair("cluster", CLUSTER);
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let v: Value = client.post(url).json(&body).send().await.unwrap().json().await.unwrap();
            if v["status"]["authenticated"] == true {
                Ok(v["status"]["user"]["username"].as_str().unwrap_or_default().to_owned())
            } else {
                Err(v["status"]["error"].as_str().unwrap_or("unknown").to_owned())
            }
        }
    };
    reviews.lock().unwrap().push(result.clone());
    if result.is_err() {
        return json(
            401,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
        );
    }
    match req.uri().path() {
        "/version" => json(
            200,
            serde_json::json!({"major": "1", "minor": "31", "gitVersion": "v1.31.1", "gitCommit": "0", "gitTreeState": "clean",
                "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.22", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        "/api" => {
            json(200, serde_json::json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}))
        }
        "/apis" => json(200, serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})),
        "/api/v1" => json(
            200,
            serde_json::json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
                 "verbs": ["get", "list"], "shortNames": ["ns"]}]}),
        ),
        "/api/v1/namespaces" => json(
            200,
            serde_json::json!({"kind": "NamespaceList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": [
                {"metadata": {"name": "oke-via-woci", "creationTimestamp": "2026-01-01T00:00:00Z"}, "status": {"phase": "Active"}}]}),
        ),
        _ => json(404, serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})),
    }
}

/// The kubeconfig `oci ce cluster create-kubeconfig --with-auth-context` writes (token version
/// 2.0.0, PyYAML's sorted keys), pointing at `server`, with `oci` replaced by `woci`.
fn kubeconfig(server: &str, ca_pem: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    format!(
        "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server}
  name: cluster-cwociokeexa
contexts:
- context:
    cluster: cluster-cwociokeexa
    user: user-cwociokeexa
  name: context-cwociokeexa
current-context: context-cwociokeexa
kind: ''
preferences: {{}}
users:
- name: user-cwociokeexa
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      args:
      - ce
      - cluster
      - generate-token
      - --cluster-id
      - {CLUSTER}
      - --region
      - {REGION}
      - --auth
      - security_token
      - --profile
      - P
      command: woci
      env: []
      interactiveMode: IfAvailable
      provideClusterInfo: false
",
        ca = STANDARD.encode(ca_pem)
    )
}

/// `kubectl` with the kubeconfig, `woci` on `PATH` and the user's environment as the harness
/// gives `woci` (HOME, clean OCI/proxy variables), no terminal.
#[allow(clippy::disallowed_methods, reason = "the child gets the test's PATH")]
async fn kubectl_run(w: &World, kubeconfig: &Path, args: &[&str]) -> Output {
    // The kubeconfig runs `woci` by name: a folder with `woci` linked to the binary under test.
    let woci_dir = w.home().join("woci-on-path");
    if !woci_dir.exists() {
        std::fs::create_dir(&woci_dir).unwrap();
        std::os::unix::fs::symlink(woci_bin(), woci_dir.join("woci")).unwrap();
    }
    let path = format!("{}:{}", woci_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut c = std::process::Command::new(kubectl());
    for k in SCRUBBED_ENV {
        c.env_remove(k);
    }
    c.env("HOME", w.home())
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .env("WOCI_OCI_COMMAND", &w.fake_oci)
        .env("FAKE_OCI_OUT", &w.oci_out)
        .env("REQUESTS_CA_BUNDLE", SYSTEM_CA)
        .env("SSL_CERT_FILE", SYSTEM_CA)
        .stdin(std::process::Stdio::null())
        .args(args);
    tokio::task::spawn_blocking(move || c.output().expect("kubectl runs")).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_through_woci_including_renewal_and_a_needed_login() {
    let _ = kubectl();
    let w = profile_world().await;
    let api = ApiServer::start(w.emu.oke_token_review_url()).await;
    let kc = w.home().join("kubeconfig");
    std::fs::write(&kc, kubeconfig(&api.url, &api.ca_pem)).unwrap();
    let user = w.cfg.user_ocid.clone();

    // A valid session: kubectl version and get, one woci call each, no oci started.
    let out = kubectl_run(&w, &kc, &["version", "-o", "json"]).await;
    assert!(out.status.success(), "kubectl version: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.31.1");
    let out = kubectl_run(&w, &kc, &["get", "namespaces"]).await;
    assert!(out.status.success(), "kubectl get: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("oke-via-woci"), "{}", stdout(&out));
    assert!(!api.reviews().is_empty() && api.reviews().iter().all(|r| r.as_ref() == Ok(&user)), "{:?}", api.reviews());
    assert!(!w.oci_out.exists(), "oci was started");
    let exchanges = w.emu.stats().exchanges;

    // Near expiry: a 6 s session (safety window: half its life, 3 s) 3.5 s later is still valid
    // but inside the window, so the next kubectl call renews first.
    w.emu.set_upst_ttl(Duration::from_secs(6));
    let mut c = w.woci();
    c.args(["session", "refresh", "--profile", "P"]);
    assert!(run(c).await.status.success());
    w.emu.set_upst_ttl(Duration::from_secs(3600));
    let near = w.read(&w.token_path());
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let seen = api.reviews().len();
    let out = kubectl_run(&w, &kc, &["get", "--raw", "/api/v1/namespaces"]).await;
    assert!(out.status.success(), "kubectl after renewal: {}", String::from_utf8_lossy(&out.stderr));
    assert!(w.read(&w.token_path()) != near, "woci renewed the session");
    assert_eq!(w.emu.stats().exchanges, exchanges + 2, "the forced refresh and kubectl's renewal");
    assert!(api.reviews()[seen..].iter().all(|r| r.as_ref() == Ok(&user)));

    // A login is needed (expired token, refresh token revoked) and there is no terminal: the
    // plugin fails at once with exit 3 and one `woci: error:` line; kubectl reports both.
    w.emu.revoke_refresh_tokens();
    w.seed_token(-10);
    let started = std::time::Instant::now();
    let out = kubectl_run(&w, &kc, &["get", "namespaces"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(started.elapsed() < Duration::from_secs(60), "no waiting for a login");
    // (kubectl runs the plugin again after a failure: one identical line per run.)
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("woci:")).collect();
    assert!(!lines.is_empty() && lines.iter().all(|l| *l == lines[0]), "{err}");
    assert!(lines[0].starts_with("woci: error: interactive login required for profile `P`"), "{err}");
    assert!(err.contains("executable woci failed with exit code 3"), "kubectl names woci's exit code: {err}");
    let direct = woci(&w, &generate_token_args()).await;
    let direct_err = String::from_utf8_lossy(&direct.stderr);
    assert_eq!(direct.status.code(), Some(3));
    assert!(direct.stdout.is_empty());
    assert_eq!(direct_err.lines().filter(|l| l.starts_with("woci:")).count(), 1, "{direct_err}");
}
