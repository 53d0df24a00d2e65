//! End-to-end test of the re-signing proxy: a local TLS "OCI" upstream (test CA passed through
//! `upstream_ca_files`), the proxy with `resign_hosts = localhost:<port>`, and reqwest playing the
//! `oci` child (proxy URL with the secret, trusting only the proxy's CA bundle file).

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{watch, Barrier};
use url::Url;
use woci::clock::ManualClock;
use woci::keys::KeyPair;
use woci::proxy::{self, HostMatcher, NoProxy, ProxyConfig};
use woci::secret::SecretString;
use woci::signer::{self, SignatureHeader};

const PROFILE_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQCr/hcFD6k1dWf6
CBPt6cqdKnXkThb8L/ERPn0mDgb5qqVIvUA18hHWx7rd6sH6ELJW6gkLF1Dp7eaF
l/7B4vnu56GD/ehkMRFJRlrG9GSvNI/6t3ugHHERXGy7FYfmK6+DNvyUUzviacUE
BNYq90RGXhGg0ygcNZ7h0thHYPKx4E/OMKytpHu7a/HZLIggp3Gs8pfwXtYwMQob
JVCvM/TGLzN43IX8PQCYOdz1hJKvhtAIE7hioMSEox2ysPV05xnyM7pqL+yxLx/n
lonqEDnGRupi2PBDTR7RJJbhUgDsvN/vuIJ1WbppsI280sI548kVfnGVACuHR2r4
9+MRxMJpAgMBAAECggEAOtPd680/gxl1RwAcUPP2aWtsh3puQjPjsJI/HBUQLbVA
c3DH1avGjkAimmUBlBbB6RiDn1eKRXkpr+gdKxQHiL+RbyQZqKtfzkBSLFrLVWIV
HRxFHK6dveJvDk5+/StUDP1xxwnxIbArwwQkfO22XJswTGHtBjkQ7wy/DSsL1+rg
XHbHwCj7a2NnIaA7gC6yMR74Rmv2Q9f6uDpcQO5fOONkuyDfN48sG4Z8ClgxXLsK
bC/5NbxPH43B18CZHUZ1t29WIP4QWHC6bm+WlfqmFsaRAaOC65mItIWlVZs/mlSf
rNN1Jkx9TXeHBakMTWM+4npOcw9i1MgWdVaBzklGQQKBgQDyJRu+5JwTEQtLCkV0
7Hw7+Yiug3QyA0C4hOtt7g8N2YK8RLMUI3XS2FTZzniQ4GAevXB96GXVowo9bkQs
Pz4UMLTmRrl7mv5tfmfbMgJoZCcBZqH8T2BABDc1I7VOmr3Dl5jzhuF9A7eJ6zWr
DoTZPW+d7CR7DjyB7CRvFOJbmwKBgQC11WcbkgYVeZpdS3AnHcJ69NELiKSDGq+m
Xp6EVq0IGQvgSdel09zhnPbVR1dW50/oNbAj79fW/cXPk4SH0VkjBCIIB3UluqHF
m1FX3DhBYOI+Csf8XlAKrVWbK8oi0PF5hKw8OkhTB3Ko2mI66QvWvryW13ppWDW5
Bbv7hCiESwKBgQC3NpKmvizFVGkaDxx8mo5phqX/fSEG0mU+9/t2guBLF1+O+eAR
hb8ZmGujHVEmNU8lEysxaQzcN2+BCZR1ciiTeEL31V10g9KsoC8Or+kYeWb17WT1
Fk36QfZPs8P0RKr+eg7VfCHSyGQv65MA6YxlHtH8SHdV0HDB0R3EGqYmrwKBgQC1
D/IjDw4F1lfy7IqaONUOsLd0n7UJY8pihTedmd2lAaPEzGLzGnuJIU7c47RBsgXs
uYFS16J6z6po34EJ6Vm0N4pXqm1pi2VJKzcdoQlXeMzwcLXhRFy5tQ5YfItEjgDW
O1lyg6q/Gtx+7S8BcEw8oyORpLGdMpwUSHR+qIPb7wKBgQC/hRoIttiWezX6FnnB
eQkurwRsilyM9eRRUptJ7qIYn9FzY2fYFCH5n2EBmx0s8sNA4NSV2ymDj8xQqAJ+
arICY4R10CGUkANSZR9HqpkkcCNnlvVeah0NcfWd3jREatXk4WhZHcT3MIzTHm0H
6gESgOGvVAZdyVSWMNspmdZEYw==
-----END PRIVATE KEY-----
";
const OTHER_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDVhjDMXgCtfQz9
T2Ooflu81YuxVcmnCNxLR+bHjA8xG32U2j/9aYUvubAau6tIRHonM60awOZF7654
AZXJ93aAwchvJbk5ZOrq3ouUvBrVoXgNzw/Dyytb4099Dc7uK2R7fzpdDxq4nAMy
zXIt4aYfTWLECp0pLM0+bJsz2e2KEb7IoOQZiQ4OGFVXX+K/osCq3Lc0ndTL76MI
g5rbvrvOlQegtbAjL0ITeCxceqe6DUqUpRaWsPcTxJ+HZInzQVMDctb7P2BS6Ujd
tRqxz4qU3Aj7jM7M826GgZdgzcZTqSD4Qae73wm5JKzUedlTLXWxRjCvfSDlLvMp
WeIAyZbJAgMBAAECggEAE7QDyb/84QVyjudmA1TRo02zS8RmTL8REPNMFOrUNgxa
3ML896Xmj95bJURfDFahTP/EP/0/4oE5AMLorw/iRARduf/ppSWuVcj+aVWoRkFV
ojSSuFcFo7+IhLoi97BSX+EAIjk0Fofy9Zumpxw055uM+xkdooCLWfDMq463EC/i
snBWqrvkpPs3VLIceoba85SCI/ie6gFo7eCMr86jBF7z8evlyvwfd4fNbV4u5o3F
QaNAXWHLMzEXO+wG3NmeqEzHqbkwN0lBEXYGIXX3TxljnLZbxQUrzS2Eu2rqsinO
lqfRa81aGGac3XBPJWDGzc7bXDa7bMUKYOlDzCuSNwKBgQD/FaAn1AUaGSkSvnIN
IEythu4an3Hv2uUOEbJfw3deyj2nNIHrFhZ1Wa2O29npo+jP2KAc5gD0jiOLG8fx
JPEAJNP0qrQVOd2WJbJFBFGePJdbbFUF9vJON+735YUfnI4j/3tn25y/VYQ9YQ3q
LKtZBEMOWltnBshJfWqF8kLWXwKBgQDWSmEDmN0bu4n3/eRohzbbLkippJGvc0gi
fMwrZVnOYWiSME9MHWtTvFdTu4cOnLp31rAfJeAt/0GwU67vgZFCjeA5bsvZ/TFb
snuftKROd2/jt+ZW4nPPVUTM3RsOK48y4fDEr6aZeZaEvc/arNnF3xVqCggcDoMl
SCHfmtGT1wKBgQCqjaAO4UEkCQygXrvNMPpzz9Ll9BPvRpF+TbDRPNVUiK6eXIo9
UABmKDbWXQMfp5tjVTkA+XxMB7mWKlYOUx/cc8NQRM6xnoYc/Ulrwg58WZDt7MoQ
eePbDqT2FP1kfH3BbfHqKDlu6NPJYlo2Z/WNSD85moqgoTVLhdKyip/LywKBgCYr
1aAoaKp5+5ebOEaOX20nj3X4hKL2LBFIna3VPewPWetAg7+RNf8Se5PEwcgOjwCt
022Y95f58h+QqIatU8zBLQHOBK3t9g7Zej/2k5YOnHW52mP7rpluHPVJJXqes8Fi
kdrXVxvblr5KeW4AgEJI/K2I3+zvgNjxQmdsUoy9AoGAWT+KxDHODoabxtzBU+T6
KkiHK8I3Ca/cPKK/tNkNMlBgwwLtuEIOH+X4CaecXkGWAvH2JesIfU1sbnuUnEQD
vavlu1/bKmdBir9MoDV8H2/T0hzlu8VryOmghQoZCQYnwRSlKz1RInGy1ros9UIU
1m7kBLp5nEtOBYmJmZGIEqA=
-----END PRIVATE KEY-----
";

const PARALLEL: usize = 15;

/// The streamed upload: `BIG_MIB` MiB, of which the client may be at most `WINDOW_MIB` MiB ahead
/// of what the upstream has received.
const BIG_PATH: &str = "/n/ns/b/bucket/o/big";
const BIG_MIB: usize = 128;
const WINDOW_MIB: usize = 48;

/// The token the child signed with (A), the current one (B), a later renewal (C). Distinctive, so
/// that the log check below cannot miss them.
const TOKEN_A: &str = "eyJhbGciOiJSUzI1NiJ9.tokenA-7f3c9e2b.c2lnQQ";
const TOKEN_B: &str = "eyJhbGciOiJSUzI1NiJ9.tokenB-2d81aa5f.c2lnQg";
const TOKEN_C: &str = "eyJhbGciOiJSUzI1NiJ9.tokenC-91bb04e7.c2lnQw";

fn st(token: &str) -> String {
    format!("ST${token}")
}

/// Everything any `tracing` event of this test process writes, at every level.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .init();
        buf
    })
    .clone()
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The debug logs name what happened but hold no token, proxy secret or signature.
fn assert_logs_hold_no_secrets(s: &Setup, signatures: &[String]) {
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(
        logs.contains("session token swapped"),
        "debug logs were not captured:\n{logs}"
    );
    let url = s.handle.proxy_url();
    let secret = Url::parse(url.expose())
        .unwrap()
        .password()
        .unwrap()
        .to_owned();
    for (what, needle) in [
        ("token A", TOKEN_A),
        ("token B", TOKEN_B),
        ("token C", TOKEN_C),
        ("proxy secret", &secret),
    ] {
        assert!(!logs.contains(needle), "{what} leaked into the logs");
    }
    for sig in signatures {
        assert!(
            !logs.contains(sig.as_str()),
            "a signature leaked into the logs"
        );
    }
}

/// What the upstream received.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    target: String,
    headers: HeaderMap,
    len: u64,
    sha256: String,
}

struct Upstream {
    port: u16,
    ca_file: tempfile::NamedTempFile,
    leaf_der: Vec<u8>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Body bytes of `/big` received so far, counted frame by frame as they arrive.
    big_received: Arc<AtomicU64>,
}

impl Upstream {
    fn case(&self, name: &str) -> Seen {
        let seen = self.seen.lock().unwrap();
        let found: Vec<&Seen> = seen
            .iter()
            .filter(|s| s.headers.get("x-test-case").is_some_and(|v| v == name))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "upstream saw case {name} {} times",
            found.len()
        );
        found[0].clone()
    }
}

async fn upstream_handle(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    barrier: Arc<Barrier>,
    big_received: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let is_big = req.uri().path() == BIG_PATH;
    let (parts, mut body) = req.into_parts();
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("request body frame");
        if let Some(data) = frame.data_ref() {
            hasher.update(data);
            len += data.len() as u64;
            if is_big {
                big_received.fetch_add(data.len() as u64, Ordering::SeqCst);
            }
        }
    }
    if parts.uri.path() == "/parallel" {
        // Answers only once all parallel uploads have arrived: serialization would hang here.
        barrier.wait().await;
    }
    let sha256 = hex(&hasher.finalize());
    let answer = format!("{len} {sha256}");
    seen.lock().unwrap().push(Seen {
        method: parts.method,
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts.headers,
        len,
        sha256,
    });
    Ok(Response::new(Full::new(Bytes::from(answer))))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn start_upstream() -> Upstream {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyPair as RcKey, KeyUsagePurpose,
    };
    let ca_key = RcKey::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "woci test upstream CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = RcKey::generate().unwrap();
    let leaf_params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

    let mut ca_file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut ca_file, ca.pem().as_bytes()).unwrap();

    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone()], key)
    .unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(PARALLEL));
    let big_received = Arc::new(AtomicU64::new(0));
    let big2 = big_received.clone();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            let barrier = barrier.clone();
            let big = big2.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req| {
                    upstream_handle(req, seen.clone(), barrier.clone(), big.clone())
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    Upstream {
        port,
        ca_file,
        leaf_der: leaf.der().to_vec(),
        seen,
        big_received,
    }
}

struct Setup {
    upstream: Upstream,
    handle: proxy::ProxyHandle,
    child: reqwest::Client,
    profile: KeyPair,
    other: KeyPair,
    _tmp: tempfile::TempDir,
    _token_tx: watch::Sender<SecretString>,
}

async fn setup() -> Setup {
    let upstream = start_upstream().await;
    let profile = KeyPair::from_pem(PROFILE_KEY_PEM).unwrap();
    let other = KeyPair::from_pem(OTHER_KEY_PEM).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = ProxyConfig {
        public_key: profile.public().clone(),
        resign_hosts: HostMatcher::only([format!("localhost:{}", upstream.port)]),
        upstream_ca_files: vec![upstream.ca_file.path().to_owned()],
        upstream_proxy: None,
        no_proxy: NoProxy::default(),
        temp_dir: tmp.path().to_owned(),
    };
    let (token_tx, token_rx) = watch::channel(SecretString::from(TOKEN_B));
    let handle = proxy::start(cfg, token_rx).await.unwrap();
    let child = child_client(&handle, true);
    Setup {
        upstream,
        handle,
        child,
        profile,
        other,
        _tmp: tmp,
        _token_tx: token_tx,
    }
}

/// The stand-in for `oci`: configured only from the proxy's child environment.
fn child_client(handle: &proxy::ProxyHandle, with_secret: bool) -> reqwest::Client {
    let env: std::collections::HashMap<String, String> = handle
        .child_env()
        .into_iter()
        .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
        .collect();
    let mut proxy_url = Url::parse(&env["HTTPS_PROXY"]).unwrap();
    if !with_secret {
        proxy_url.set_password(None).unwrap();
        proxy_url.set_username("").unwrap();
    }
    let bundle = std::fs::read(&env["REQUESTS_CA_BUNDLE"]).unwrap();
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .http1_only()
        .proxy(reqwest::Proxy::https(proxy_url.as_str()).unwrap());
    for cert in reqwest::Certificate::from_pem_bundle(&bundle).unwrap() {
        builder = builder.add_root_certificate(cert);
    }
    builder.build().unwrap()
}

fn date() -> ManualClock {
    ManualClock::at(1_700_000_000)
}

/// Sends a GET signed by `key` with `key_id` through the child client.
async fn signed_get(s: &Setup, host: &str, case: &str, key: &KeyPair, key_id: &str) {
    let url = Url::parse(&format!(
        "https://{host}:{}/20160918/instances?compartmentId=ocid1.compartment.oc1..a%2Cb",
        s.upstream.port
    ))
    .unwrap();
    let headers =
        signer::sign_request(&Method::GET, &url, b"", None, key, &key_id.into(), &date()).unwrap();
    let resp = s
        .child
        .get(url)
        .headers(headers)
        .header("x-test-case", case)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "case {case}");
    resp.bytes().await.unwrap();
}

/// CONNECTs by hand and does a TLS handshake trusting only the proxy's CA bundle; returns the
/// certificate the other end presented (reqwest does not expose it through a proxy tunnel).
async fn peer_cert_via_proxy(s: &Setup, host: &str) -> Vec<u8> {
    let mut tcp = tokio::net::TcpStream::connect(s.handle.addr())
        .await
        .unwrap();
    let env: Vec<_> = s.handle.child_env();
    let url = Url::parse(env[0].1.to_str().unwrap()).unwrap();
    let creds = base64_basic(url.username(), url.password().unwrap());
    let port = s.upstream.port;
    tcp.write_all(format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\nProxy-Authorization: {creds}\r\n\r\n").as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut roots = rustls::RootCertStore::empty();
    let bundle = std::fs::read(s.handle.ca_bundle_path()).unwrap();
    for cert in rustls_pemfile::certs(&mut bundle.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn verifies(seen: &Seen, key: &KeyPair) -> bool {
    let sig = SignatureHeader::parse(seen.headers["authorization"].to_str().unwrap()).unwrap();
    let text =
        signer::signing_string(&seen.method, &seen.target, &seen.headers, &sig.headers()).unwrap();
    signer::verify(key.public(), &text, sig.signature())
}

fn key_id(seen: &Seen) -> String {
    SignatureHeader::parse(seen.headers["authorization"].to_str().unwrap())
        .unwrap()
        .key_id()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proxy_resigns_tunnels_rejects_and_streams() {
    captured_logs();
    let s = setup().await;

    // (a) Signed by the profile key with token A: the upstream sees token B, the signature still
    // verifies against the same key, and nothing else changed.
    signed_get(&s, "localhost", "a", &s.profile, &st(TOKEN_A)).await;
    let peer = peer_cert_via_proxy(&s, "localhost").await;
    assert_ne!(
        peer, s.upstream.leaf_der,
        "an opened host must be served by the per-run CA"
    );
    let a = s.upstream.case("a");
    assert_eq!(key_id(&a), st(TOKEN_B));
    assert!(
        verifies(&a, &s.profile),
        "swapped request must still verify"
    );
    assert_eq!(
        a.target,
        "/20160918/instances?compartmentId=ocid1.compartment.oc1..a%2Cb"
    );
    assert_eq!(a.headers["host"], format!("localhost:{}", s.upstream.port));
    assert_eq!(a.headers["date"], "Tue, 14 Nov 2023 22:13:20 GMT");

    // A signed POST with body headers as `oci` sends them.
    let url = Url::parse(&format!(
        "https://localhost:{}/20160918/vcns",
        s.upstream.port
    ))
    .unwrap();
    let body = br#"{"cidrBlock":"10.0.0.0/16"}"#;
    let headers = signer::sign_request(
        &Method::POST,
        &url,
        body,
        None,
        &s.profile,
        &st(TOKEN_A).into(),
        &date(),
    )
    .unwrap();
    let resp = s
        .child
        .post(url)
        .headers(headers)
        .header("x-test-case", "a-post")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let post = s.upstream.case("a-post");
    assert_eq!(key_id(&post), st(TOKEN_B));
    assert!(verifies(&post, &s.profile));
    assert_eq!(post.len, body.len() as u64);

    // (b) Signed by another key: forwarded untouched.
    signed_get(&s, "localhost", "b", &s.other, &st(TOKEN_A)).await;
    let b = s.upstream.case("b");
    assert_eq!(key_id(&b), st(TOKEN_A));
    assert!(verifies(&b, &s.other));
    // An API-key signature by the profile key: untouched too.
    signed_get(
        &s,
        "localhost",
        "b-api",
        &s.profile,
        "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb",
    )
    .await;
    assert_eq!(
        key_id(&s.upstream.case("b-api")),
        "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb"
    );

    // (c) Without the secret, or with a wrong one: 407.
    let no_secret = child_client(&s.handle, false);
    let url = format!("https://localhost:{}/x", s.upstream.port);
    assert!(no_secret
        .get(&url)
        .header("x-test-case", "c")
        .send()
        .await
        .is_err());
    for auth in [None, Some("Basic d29jaTp3cm9uZw==")] {
        let mut tcp = tokio::net::TcpStream::connect(s.handle.addr())
            .await
            .unwrap();
        let mut req = format!(
            "CONNECT localhost:{0} HTTP/1.1\r\nHost: localhost:{0}\r\n",
            s.upstream.port
        );
        if let Some(a) = auth {
            req.push_str(&format!("Proxy-Authorization: {a}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 512];
        let n = tcp.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 407"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("proxy-authenticate: basic"),
            "{head}"
        );
    }
    assert!(
        s.handle.stats().rejected_auth >= 3,
        "{:?}",
        s.handle.stats()
    );

    // (d) A host not in resign_hosts (same server as 127.0.0.1): tunnelled, the child talks TLS
    // with the real upstream and the request arrives unchanged.
    let tunnels_before = s.handle.stats().tunnels;
    signed_get(&s, "127.0.0.1", "d", &s.profile, &st(TOKEN_A)).await;
    assert_eq!(s.handle.stats().tunnels, tunnels_before + 1);
    let peer = peer_cert_via_proxy(&s, "127.0.0.1").await;
    assert_eq!(
        peer, s.upstream.leaf_der,
        "a tunnelled host must present the upstream's own certificate"
    );
    let d = s.upstream.case("d");
    assert_eq!(key_id(&d), st(TOKEN_A));
    assert!(verifies(&d, &s.profile));

    // (e) A 128 MiB streamed PUT, signed as `oci os object put` signs parts (`date
    // (request-target) host`, body unsigned), arrives intact and re-signed. Streaming with bounded
    // memory, shown structurally: before sending MiB k the client waits until the upstream has
    // received k - 48 MiB. A proxy that buffered the body would never pass anything upstream
    // before the client finished, so the upload would stall at 48 MiB (and hit the hang guard);
    // passing means at most 48 MiB were ever in flight between client and upstream.
    let size = BIG_MIB << 20;
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i * 31 % 251) as u8).collect();
    let mut expected = Sha256::new();
    for _ in 0..BIG_MIB {
        expected.update(&chunk);
    }
    let expected = hex(&expected.finalize());
    let url = Url::parse(&format!("https://localhost:{}{BIG_PATH}", s.upstream.port)).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("date", "Tue, 14 Nov 2023 22:13:20 GMT".parse().unwrap());
    headers.insert(
        "host",
        format!("localhost:{}", s.upstream.port).parse().unwrap(),
    );
    headers.insert("content-length", size.to_string().parse().unwrap());
    headers.insert("content-type", "application/octet-stream".parse().unwrap());
    let text =
        signer::signing_string(&Method::PUT, BIG_PATH, &headers, &signer::HEADERS_NO_BODY).unwrap();
    let big_signature = signer::sign_string(s.profile.private(), &text);
    headers.insert(
        "authorization",
        signer::authorization_value(&st(TOKEN_A), &signer::HEADERS_NO_BODY, &big_signature)
            .parse()
            .unwrap(),
    );
    let chunk = Bytes::from(chunk);
    let received = s.upstream.big_received.clone();
    let max_ahead = Arc::new(AtomicU64::new(0));
    let max_ahead2 = max_ahead.clone();
    let stream = futures_util::stream::unfold(0usize, move |k| {
        let (chunk, received, max_ahead) = (chunk.clone(), received.clone(), max_ahead2.clone());
        async move {
            if k == BIG_MIB {
                return None;
            }
            let need = (k.saturating_sub(WINDOW_MIB) as u64) << 20;
            while received.load(Ordering::SeqCst) < need {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let ahead = ((k as u64) << 20) - received.load(Ordering::SeqCst).min((k as u64) << 20);
            max_ahead.fetch_max(ahead, Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(chunk), k + 1))
        }
    });
    let upload = s
        .child
        .put(url)
        .headers(headers)
        .header("x-test-case", "e")
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let resp = tokio::time::timeout(Duration::from_secs(300), upload)
        .await
        .expect("the streamed upload stalled: the proxy buffers request bodies")
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), format!("{size} {expected}"));
    let e = s.upstream.case("e");
    assert_eq!((e.len, e.sha256.as_str()), (size as u64, expected.as_str()));
    assert_eq!(e.headers["content-length"], size.to_string());
    assert!(e.headers.get("transfer-encoding").is_none());
    assert_eq!(key_id(&e), st(TOKEN_B));
    assert!(verifies(&e, &s.profile));
    assert!(max_ahead.load(Ordering::SeqCst) <= (WINDOW_MIB as u64) << 20);

    // 15 parallel uploads: the upstream answers only when all 15 are in, so a proxy that
    // serialized them would hang (bounded by the timeout, not a timing assertion).
    let uploads = (0..PARALLEL).map(|i| {
        let client = s.child.clone();
        let url = format!("https://localhost:{}/parallel", s.upstream.port);
        async move {
            let resp = client
                .put(url)
                .header("x-test-case", format!("p{i}"))
                .body(vec![i as u8; 256 * 1024])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.bytes().await.unwrap();
        }
    });
    tokio::time::timeout(
        Duration::from_secs(120),
        futures_util::future::join_all(uploads),
    )
    .await
    .expect("parallel uploads were serialized by the proxy");

    let stats = s.handle.stats();
    assert!(
        stats.swapped >= 3 && stats.untouched >= 2 + PARALLEL as u64,
        "{stats:?}"
    );
    assert_eq!(stats.upstream_errors, 0);

    let signatures: Vec<String> = [&a, &post, &b, &e]
        .iter()
        .map(|seen| {
            SignatureHeader::parse(seen.headers["authorization"].to_str().unwrap())
                .unwrap()
                .signature()
                .to_owned()
        })
        .collect();
    assert_logs_hold_no_secrets(&s, &signatures);

    // (f) The CA bundle: our CA first, then the upstream CA the user trusts, then the system roots;
    // a 0600 file in a 0700 folder of its own inside the configured temp folder. After shutdown
    // both are gone and the port is closed.
    let bundle = s.handle.ca_bundle_path().to_owned();
    let bundle_dir = bundle.parent().unwrap().to_owned();
    assert_eq!(bundle_dir.parent(), Some(s._tmp.path()));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&bundle), 0o600);
        assert_eq!(mode(&bundle_dir), 0o700);
    }
    let pem = std::fs::read(&bundle).unwrap();
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .map(Result::unwrap)
        .collect();
    let upstream_ca = std::fs::read(s.upstream.ca_file.path()).unwrap();
    let upstream_ca = rustls_pemfile::certs(&mut upstream_ca.as_slice())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(certs[1], upstream_ca);
    assert!(
        certs.len() > 2,
        "the system roots are missing from the child's bundle"
    );
    let addr = s.handle.addr();
    s.handle.shutdown().await;
    assert!(!bundle.exists(), "CA bundle must be removed at shutdown");
    assert!(
        !bundle_dir.exists(),
        "the bundle folder must be removed at shutdown"
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn token_updates_apply_to_the_next_request_and_upstream_errors_are_502() {
    captured_logs();
    let s = setup().await;
    s._token_tx.send(SecretString::from(TOKEN_C)).unwrap();
    signed_get(&s, "localhost", "renewed", &s.profile, &st(TOKEN_A)).await;
    assert_eq!(key_id(&s.upstream.case("renewed")), st(TOKEN_C));

    // Non-CONNECT requests are refused.
    let mut tcp = tokio::net::TcpStream::connect(s.handle.addr())
        .await
        .unwrap();
    let env: Vec<_> = s.handle.child_env();
    let url = Url::parse(env[0].1.to_str().unwrap()).unwrap();
    let creds = base64_basic(url.username(), url.password().unwrap());
    tcp.write_all(format!("GET http://example.test/ HTTP/1.1\r\nHost: example.test\r\nProxy-Authorization: {creds}\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 512];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 405"));

    // A tunnel to a closed port: 502 on the CONNECT.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut tcp = tokio::net::TcpStream::connect(s.handle.addr())
        .await
        .unwrap();
    tcp.write_all(format!("CONNECT 127.0.0.1:{closed_port} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {creds}\r\n\r\n").as_bytes()).await.unwrap();
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 502"));

    // The child environment: proxy URL on loopback, every CA variable on the bundle file.
    let env: std::collections::HashMap<String, String> = s
        .handle
        .child_env()
        .into_iter()
        .map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap()))
        .collect();
    assert!(
        env["https_proxy"].starts_with("http://woci:")
            && env["https_proxy"].ends_with(&format!("@{}", s.handle.addr()))
    );
    for k in [
        "REQUESTS_CA_BUNDLE",
        "SSL_CERT_FILE",
        "CURL_CA_BUNDLE",
        "NODE_EXTRA_CA_CERTS",
    ] {
        assert_eq!(env[k], s.handle.ca_bundle_path().to_str().unwrap());
    }
    assert_eq!(s.handle.env_removals(), vec!["NO_PROXY", "no_proxy"]);
    let handle_debug = format!("{:?}", s.handle);
    assert!(
        !handle_debug.contains(url.password().unwrap()),
        "Debug must not show the secret"
    );
    s.handle.shutdown().await;
}

fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}
