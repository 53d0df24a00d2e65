//! Shared by the proxy tests: the profile and other test keys, and a local TLS "OCI" upstream
//! (own test CA, HTTP/1.1) that records what it receives.
#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Barrier;
use woci::keys::KeyPair;
use woci::signer::{self, SignatureHeader};

/// The same fixed test key as the signer's unit tests.
pub const PROFILE_KEY_PEM: &str = include_str!("../fixtures/test_key.pem");
pub const OTHER_KEY_PEM: &str = include_str!("../fixtures/other_key.pem");

pub const PARALLEL: usize = 15;

/// The streamed upload: `BIG_MIB` MiB, of which the client may be at most `WINDOW_MIB` MiB ahead
/// of what the upstream has received.
pub const BIG_PATH: &str = "/n/ns/b/bucket/o/big";
pub const BIG_MIB: usize = 128;
pub const WINDOW_MIB: usize = 48;
/// The streamed download: `DOWNLOAD_MIB` MiB, paced like the upload.
pub const DOWNLOAD_PATH: &str = "/n/ns/b/bucket/o/download";
pub const DOWNLOAD_MIB: usize = 112;

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub target: String,
    pub headers: HeaderMap,
    pub len: u64,
    pub sha256: String,
}

pub struct Upstream {
    pub port: u16,
    pub ca_file: tempfile::NamedTempFile,
    pub leaf_der: Vec<u8>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Streaming progress of the big transfers.
    pub progress: Arc<Progress>,
}

/// How far the big transfers got, counted frame by frame.
#[derive(Debug, Default)]
pub struct Progress {
    /// Body bytes of the `BIG_PATH` upload the upstream has received.
    pub big_received: AtomicU64,
    /// Bytes of the `DOWNLOAD_PATH` answer the client has received (the test counts them).
    pub download_received: AtomicU64,
}

impl Upstream {
    pub fn case(&self, name: &str) -> Seen {
        let seen = self.seen.lock().unwrap();
        let found: Vec<&Seen> =
            seen.iter().filter(|s| s.headers.get("x-test-case").is_some_and(|v| v == name)).collect();
        assert_eq!(found.len(), 1, "upstream saw case {name} {} times", found.len());
        found[0].clone()
    }
}

pub async fn upstream_handle(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    barrier: Arc<Barrier>,
    progress: Arc<Progress>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    let is_big = req.uri().path() == BIG_PATH;
    let is_download = req.uri().path() == DOWNLOAD_PATH;
    let (parts, mut body) = req.into_parts();
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("request body frame");
        if let Some(data) = frame.data_ref() {
            hasher.update(data);
            len += data.len() as u64;
            if is_big {
                progress.big_received.fetch_add(data.len() as u64, Ordering::SeqCst);
            }
        }
    }
    if parts.uri.path() == "/parallel" {
        // Answers only once all parallel uploads have arrived: serialization would hang here.
        barrier.wait().await;
    }
    let sha256 = hex(&hasher.finalize());
    // JSON, so that `oci` commands can parse the answer (unknown fields are ignored).
    let answer = format!(r#"{{"len":{len},"sha256":"{sha256}"}}"#);
    seen.lock().unwrap().push(Seen {
        method: parts.method,
        target: parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default(),
        headers: parts.headers,
        len,
        sha256,
    });
    if is_download {
        return Ok(download(progress));
    }
    let mut response = Response::new(Full::new(Bytes::from(answer)).boxed());
    response.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Ok(response)
}

/// `DOWNLOAD_MIB` MiB of `download_byte(i)`, where MiB k is sent only once the client has received
/// k - `WINDOW_MIB` MiB: a proxy that buffered responses would stall it.
fn download(progress: Arc<Progress>) -> Response<BoxBody<Bytes, Infallible>> {
    let chunk = Bytes::from((0..1 << 20).map(download_byte).collect::<Vec<u8>>());
    let frames = futures_util::stream::unfold(0usize, move |k| {
        let (chunk, progress) = (chunk.clone(), progress.clone());
        async move {
            if k == DOWNLOAD_MIB {
                return None;
            }
            let need = (k.saturating_sub(WINDOW_MIB) as u64) << 20;
            while progress.download_received.load(Ordering::SeqCst) < need {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            Some((Ok::<_, Infallible>(Frame::data(chunk)), k + 1))
        }
    });
    let mut response = Response::new(StreamBody::new(frames).boxed());
    response.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(DOWNLOAD_MIB << 20));
    response
}

/// Byte `i` of every MiB of the download.
pub fn download_byte(i: usize) -> u8 {
    (i * 7 % 241) as u8
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub async fn start_upstream() -> Upstream {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair as RcKey, KeyUsagePurpose};
    let ca_key = RcKey::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name.push(DnType::CommonName, "woci test upstream CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = RcKey::generate().unwrap();
    let leaf_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

    let mut ca_file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut ca_file, ca.pem().as_bytes()).unwrap();

    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
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
    let progress = Arc::new(Progress::default());
    let progress2 = progress.clone();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            let barrier = barrier.clone();
            let progress = progress2.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = service_fn(move |req| upstream_handle(req, seen.clone(), barrier.clone(), progress.clone()));
                let _ = http1::Builder::new().max_headers(1000).serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    });
    Upstream { port, ca_file, leaf_der: leaf.der().to_vec(), seen, progress }
}

pub fn verifies(seen: &Seen, key: &KeyPair) -> bool {
    let sig = SignatureHeader::parse(seen.headers["authorization"].to_str().unwrap()).unwrap();
    let text = signer::signing_string(&seen.method, &seen.target, &seen.headers, &sig.headers()).unwrap();
    signer::verify(key.public(), &text, sig.signature())
}

pub fn key_id(seen: &Seen) -> String {
    SignatureHeader::parse(seen.headers["authorization"].to_str().unwrap()).unwrap().key_id().to_owned()
}
