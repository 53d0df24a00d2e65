//! End-to-end test of the re-signing proxy: a local TLS "OCI" upstream (test CA passed through
//! `upstream_ca_files`), the proxy with `resign_hosts = localhost:<port>`, and reqwest playing the
//! `oci` child (proxy URL with the secret, trusting only the proxy's CA bundle file).

use bytes::Bytes;
use http::{HeaderMap, Method};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use url::Url;
use woci::clock::ManualClock;
use woci::keys::KeyPair;
use woci::proxy::{self, HostMatcher, NoProxy, ProxyConfig};
use woci::secret::SecretString;
use woci::signer::{self, SignatureHeader};

mod proxy_common;
use proxy_common::*;

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
    assert!(logs.contains("session token swapped"), "debug logs were not captured:\n{logs}");
    let url = s.handle.proxy_url();
    let secret = Url::parse(url.expose()).unwrap().password().unwrap().to_owned();
    for (what, needle) in [("token A", TOKEN_A), ("token B", TOKEN_B), ("token C", TOKEN_C), ("proxy secret", &secret)]
    {
        assert!(!logs.contains(needle), "{what} leaked into the logs");
    }
    for sig in signatures {
        assert!(!logs.contains(sig.as_str()), "a signature leaked into the logs");
    }
}

/// What the upstream received.
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
    setup_with(None, proxy::Limits::default()).await
}

async fn setup_with(upstream_proxy: Option<Url>, limits: proxy::Limits) -> Setup {
    let upstream = start_upstream().await;
    let profile = KeyPair::from_pem(PROFILE_KEY_PEM).unwrap();
    let other = KeyPair::from_pem(OTHER_KEY_PEM).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = ProxyConfig {
        public_key: profile.public().clone(),
        resign_hosts: HostMatcher::only([format!("localhost:{}", upstream.port)]),
        upstream_ca_files: vec![upstream.ca_file.path().to_owned()],
        upstream_proxy,
        no_proxy: NoProxy::default(),
        temp_dir: tmp.path().to_owned(),
        limits,
        clock: std::sync::Arc::new(woci::clock::SystemClock),
    };
    let (token_tx, token_rx) = watch::channel(SecretString::from(TOKEN_B));
    let handle = proxy::start(cfg, token_rx).await.unwrap();
    let child = child_client(&handle, true);
    Setup { upstream, handle, child, profile, other, _tmp: tmp, _token_tx: token_tx }
}

/// The stand-in for `oci`: configured only from the proxy's child environment.
fn child_client(handle: &proxy::ProxyHandle, with_secret: bool) -> reqwest::Client {
    let env: std::collections::HashMap<String, String> =
        handle.child_env().into_iter().map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap())).collect();
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
    signed_get_by(s, &s.child, host, case, key, key_id, 0).await;
}

/// [`signed_get`] by `child` with `extra` more header fields.
async fn signed_get_by(
    s: &Setup,
    child: &reqwest::Client,
    host: &str,
    case: &str,
    key: &KeyPair,
    key_id: &str,
    extra: usize,
) {
    let url = Url::parse(&format!(
        "https://{host}:{}/20160918/instances?compartmentId=ocid1.compartment.oc1..a%2Cb",
        s.upstream.port
    ))
    .unwrap();
    let headers = signer::sign_request(&Method::GET, &url, b"", None, key, &key_id.into(), &date()).unwrap();
    let mut request = child.get(url).headers(headers).header("x-test-case", case);
    for i in 0..extra {
        request = request.header(format!("opc-meta-k{i}"), "v");
    }
    let resp = request.send().await.unwrap();
    assert_eq!(resp.status(), 200, "case {case}");
    resp.bytes().await.unwrap();
}

/// CONNECTs by hand and does a TLS handshake trusting only the proxy's CA bundle; returns the
/// certificate the other end presented (reqwest does not expose it through a proxy tunnel).
async fn peer_cert_via_proxy(s: &Setup, host: &str) -> Vec<u8> {
    let tls = handshake_via_proxy(s, host, &[], true).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// A tunnel opened by hand through the proxy (its CONNECT answered 200).
async fn tunnel_via_proxy(s: &Setup, host: &str) -> tokio::net::TcpStream {
    let tcp = tokio::net::TcpStream::connect(s.handle.addr()).await.unwrap();
    connect_on(s, tcp, host).await
}

/// Sends the CONNECT for `host` on a connection to the proxy; answered 200.
async fn connect_on(s: &Setup, mut tcp: tokio::net::TcpStream, host: &str) -> tokio::net::TcpStream {
    let env: Vec<_> = s.handle.child_env();
    let url = Url::parse(env[0].1.to_str().unwrap()).unwrap();
    let creds = base64_basic(url.username(), url.password().unwrap());
    let port = s.upstream.port;
    tcp.write_all(
        format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\nProxy-Authorization: {creds}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
    tcp
}

/// [`peer_cert_via_proxy`]'s handshake, offering the protocols `alpn` (none: no ALPN), trusting
/// the proxy's CA bundle or (a program with its own CA option) nothing.
async fn handshake_via_proxy(
    s: &Setup,
    host: &str,
    alpn: &[&[u8]],
    trust_proxy_ca: bool,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tunnel_via_proxy(s, host).await;
    let mut roots = rustls::RootCertStore::empty();
    let bundle = std::fs::read(s.handle.ca_bundle_path()).unwrap();
    for cert in rustls_pemfile::certs(&mut bundle.as_slice()).filter(|_| trust_proxy_ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await
}

/// HTTP/1.0 and HTTP/1.1 clients (`curl --http1.0`) are served whatever they offer by ALPN; an
/// HTTP/2-only one cannot be, and the warning says that, not that the certificate was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn alpn_offers_are_met_or_named() {
    captured_logs();
    let s = setup().await;
    for offer in [&[b"http/1.0".as_slice()][..], &[b"h2", b"http/1.1"], &[]] {
        let tls = handshake_via_proxy(&s, "localhost", offer, true).await.unwrap();
        let agreed = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        assert_eq!(agreed.is_some(), !offer.is_empty(), "{offer:?}: {agreed:?}");
    }
    assert!(handshake_via_proxy(&s, "localhost", &[b"h2"], true).await.is_err());
    let started = std::time::Instant::now();
    loop {
        let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
        if logs.contains("in a protocol other than HTTP/1.x (HTTP/2 only, by ALPN)") {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "no ALPN warning:\n{logs}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proxy_resigns_tunnels_rejects_and_streams() {
    captured_logs();
    let s = setup().await;

    // (a) Signed by the profile key with token A: the upstream sees token B, the signature still
    // verifies against the same key, and nothing else changed.
    signed_get(&s, "localhost", "a", &s.profile, &st(TOKEN_A)).await;
    let peer = peer_cert_via_proxy(&s, "localhost").await;
    assert_ne!(peer, s.upstream.leaf_der, "an opened host must be served by the per-run CA");
    let a = s.upstream.case("a");
    assert_eq!(key_id(&a), st(TOKEN_B));
    assert!(verifies(&a, &s.profile), "swapped request must still verify");
    assert_eq!(a.target, "/20160918/instances?compartmentId=ocid1.compartment.oc1..a%2Cb");
    assert_eq!(a.headers["host"], format!("localhost:{}", s.upstream.port));
    assert_eq!(a.headers["date"], "Tue, 14 Nov 2023 22:13:20 GMT");

    // A signed POST with body headers as `oci` sends them.
    let url = Url::parse(&format!("https://localhost:{}/20160918/vcns", s.upstream.port)).unwrap();
    let body = br#"{"cidrBlock":"10.0.0.0/16"}"#;
    let headers =
        signer::sign_request(&Method::POST, &url, body, None, &s.profile, &st(TOKEN_A).into(), &date()).unwrap();
    let resp =
        s.child.post(url).headers(headers).header("x-test-case", "a-post").body(body.to_vec()).send().await.unwrap();
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
    signed_get(&s, "localhost", "b-api", &s.profile, "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb").await;
    assert_eq!(key_id(&s.upstream.case("b-api")), "ocid1.tenancy.oc1..t/ocid1.user.oc1..u/aa:bb");

    // (c) Without the secret, or with a wrong one: 407.
    let no_secret = child_client(&s.handle, false);
    let url = format!("https://localhost:{}/x", s.upstream.port);
    assert!(no_secret.get(&url).header("x-test-case", "c").send().await.is_err());
    for auth in [None, Some("Basic d29jaTp3cm9uZw==")] {
        let mut tcp = tokio::net::TcpStream::connect(s.handle.addr()).await.unwrap();
        let mut req = format!("CONNECT localhost:{0} HTTP/1.1\r\nHost: localhost:{0}\r\n", s.upstream.port);
        if let Some(a) = auth {
            req.push_str(&format!("Proxy-Authorization: {a}\r\n"));
        }
        req.push_str("\r\n");
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 512];
        let n = tcp.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]);
        assert!(head.starts_with("HTTP/1.1 407"), "{head}");
        assert!(head.to_ascii_lowercase().contains("proxy-authenticate: basic"), "{head}");
    }
    assert!(s.handle.stats().rejected_auth >= 3, "{:?}", s.handle.stats());

    // (d) A host not in resign_hosts (same server as 127.0.0.1): tunnelled, the child talks TLS
    // with the real upstream and the request arrives unchanged.
    let tunnels_before = s.handle.stats().tunnels;
    signed_get(&s, "127.0.0.1", "d", &s.profile, &st(TOKEN_A)).await;
    assert_eq!(s.handle.stats().tunnels, tunnels_before + 1);
    let peer = peer_cert_via_proxy(&s, "127.0.0.1").await;
    assert_eq!(peer, s.upstream.leaf_der, "a tunnelled host must present the upstream's own certificate");
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
    headers.insert("host", format!("localhost:{}", s.upstream.port).parse().unwrap());
    headers.insert("content-length", size.to_string().parse().unwrap());
    headers.insert("content-type", "application/octet-stream".parse().unwrap());
    let text = signer::signing_string(&Method::PUT, BIG_PATH, &headers, &signer::HEADERS_NO_BODY).unwrap();
    let big_signature = signer::sign_string(s.profile.private(), &text);
    headers.insert(
        "authorization",
        signer::authorization_value(&st(TOKEN_A), &signer::HEADERS_NO_BODY, &big_signature).parse().unwrap(),
    );
    let chunk = Bytes::from(chunk);
    let progress = s.upstream.progress.clone();
    let max_ahead = Arc::new(AtomicU64::new(0));
    let max_ahead2 = max_ahead.clone();
    let stream = futures_util::stream::unfold(0usize, move |k| {
        let (chunk, progress, max_ahead) = (chunk.clone(), progress.clone(), max_ahead2.clone());
        async move {
            if k == BIG_MIB {
                return None;
            }
            let need = (k.saturating_sub(WINDOW_MIB) as u64) << 20;
            while progress.big_received.load(Ordering::SeqCst) < need {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let ahead = ((k as u64) << 20) - progress.big_received.load(Ordering::SeqCst).min((k as u64) << 20);
            max_ahead.fetch_max(ahead, Ordering::SeqCst);
            Some((Ok::<_, std::io::Error>(chunk), k + 1))
        }
    });
    let upload =
        s.child.put(url).headers(headers).header("x-test-case", "e").body(reqwest::Body::wrap_stream(stream)).send();
    let resp = tokio::time::timeout(Duration::from_secs(300), upload)
        .await
        .expect("the streamed upload stalled: the proxy buffers request bodies")
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), format!(r#"{{"len":{size},"sha256":"{expected}"}}"#));
    let e = s.upstream.case("e");
    assert_eq!((e.len, e.sha256.as_str()), (size as u64, expected.as_str()));
    assert_eq!(e.headers["content-length"], size.to_string());
    assert!(e.headers.get("transfer-encoding").is_none());
    assert_eq!(key_id(&e), st(TOKEN_B));
    assert!(verifies(&e, &s.profile));
    assert!(max_ahead.load(Ordering::SeqCst) <= (WINDOW_MIB as u64) << 20);

    // A 112 MiB download streams back the same way: the upstream sends MiB k only after the
    // client has read k - 48 MiB, so a proxy buffering responses would stall it.
    let url = Url::parse(&format!("https://localhost:{}{DOWNLOAD_PATH}", s.upstream.port)).unwrap();
    let headers =
        signer::sign_request(&Method::GET, &url, b"", None, &s.profile, &st(TOKEN_A).into(), &date()).unwrap();
    let download = async {
        let mut resp = s.child.get(url).headers(headers).header("x-test-case", "download").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.content_length(), Some((DOWNLOAD_MIB as u64) << 20));
        let mut offset = 0usize;
        let mut wrong = 0usize;
        while let Some(chunk) = resp.chunk().await.unwrap() {
            wrong += chunk.iter().enumerate().filter(|(i, b)| **b != download_byte((offset + i) % (1 << 20))).count();
            offset += chunk.len();
            s.upstream.progress.download_received.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        (offset, wrong)
    };
    let (got, wrong) = tokio::time::timeout(Duration::from_secs(300), download)
        .await
        .expect("the streamed download stalled: the proxy buffers responses");
    assert_eq!((got, wrong), (DOWNLOAD_MIB << 20, 0));
    assert_eq!(key_id(&s.upstream.case("download")), st(TOKEN_B));

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
    tokio::time::timeout(Duration::from_secs(120), futures_util::future::join_all(uploads))
        .await
        .expect("parallel uploads were serialized by the proxy");

    let stats = s.handle.stats();
    assert!(stats.swapped >= 3 && stats.untouched >= 2 + PARALLEL as u64, "{stats:?}");
    assert_eq!(stats.upstream_errors, 0);

    let signatures: Vec<String> = [&a, &post, &b, &e]
        .iter()
        .map(|seen| {
            SignatureHeader::parse(seen.headers["authorization"].to_str().unwrap()).unwrap().signature().to_owned()
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
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice()).map(Result::unwrap).collect();
    let upstream_ca = std::fs::read(s.upstream.ca_file.path()).unwrap();
    let upstream_ca = rustls_pemfile::certs(&mut upstream_ca.as_slice()).next().unwrap().unwrap();
    assert_eq!(certs[1], upstream_ca);
    assert!(certs.len() > 2, "the system roots are missing from the child's bundle");
    let addr = s.handle.addr();
    s.handle.shutdown().await;
    assert!(!bundle.exists(), "CA bundle must be removed at shutdown");
    assert!(!bundle_dir.exists(), "the bundle folder must be removed at shutdown");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// The OCI SDK for Java's own session refresh (at its start, then every 55 min) gets the session
/// woci keeps fresh from the proxy, as the auth service would answer, instead of going out with
/// its old `currentToken` signed with a newer token, which the service refuses (round 76 F1).
/// One signed by another key is not this session's: forwarded untouched.
#[tokio::test]
async fn a_programs_own_session_refresh_gets_the_session_woci_keeps() {
    let s = setup().await;
    s._token_tx.send(SecretString::from(TOKEN_C)).unwrap();
    let refresh = |case: &'static str, key: &KeyPair| {
        let url = Url::parse(&format!("https://localhost:{}/v1/authentication/refresh", s.upstream.port)).unwrap();
        let body = format!(r#"{{"currentToken":"{TOKEN_A}"}}"#).into_bytes();
        let headers = signer::sign_request(
            &Method::POST,
            &url,
            &body,
            Some("application/json"),
            key,
            &st(TOKEN_A).into(),
            &date(),
        )
        .unwrap();
        s.child.post(url).headers(headers).header("x-test-case", case).body(body).send()
    };
    let resp = refresh("own", &s.profile).await.unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(answer["token"], TOKEN_C);
    assert_eq!(refresh("other", &s.other).await.unwrap().status(), 200);
    let forwarded = s.upstream.case("other");
    assert_eq!(key_id(&forwarded), st(TOKEN_A));
    assert!(s.upstream.seen.lock().unwrap().iter().all(|r| r.headers.get("x-test-case").is_none_or(|c| c != "own")));
    s.handle.shutdown().await;
}

#[tokio::test]
async fn token_updates_apply_to_the_next_request_and_upstream_errors_are_502() {
    captured_logs();
    let s = setup().await;
    s._token_tx.send(SecretString::from(TOKEN_C)).unwrap();
    signed_get(&s, "localhost", "renewed", &s.profile, &st(TOKEN_A)).await;
    assert_eq!(key_id(&s.upstream.case("renewed")), st(TOKEN_C));

    // A token that expired with no renewal (a machine resumed from suspend, its timers late), or
    // one with a second left (it would end on its way to OCI): the request waits for the renewal
    // that follows rather than carry it to a 401.
    let jwt = |exp: i64| {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp}}}"#));
        format!("eyJhbGciOiJSUzI1NiJ9.{payload}.c2ln")
    };
    let now = woci::clock::Clock::unix(&woci::clock::SystemClock);
    for (case, old, renewed) in [("resumed", jwt(now - 10), jwt(now + 3600)), ("ending", jwt(now + 1), jwt(now + 3601))]
    {
        s._token_tx.send(SecretString::from(old.as_str())).unwrap();
        let tx = s._token_tx.clone();
        let renewal = renewed.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            tx.send(SecretString::from(renewal.as_str())).unwrap();
        });
        signed_get(&s, "localhost", case, &s.profile, &st(TOKEN_A)).await;
        assert_eq!(key_id(&s.upstream.case(case)), st(&renewed), "{case}");
    }
    // No renewal, and the program gives up meanwhile (Ctrl-C): nothing went out, so nothing says
    // it did (the line is said once a response came back).
    let stale = jwt(now - 5);
    s._token_tx.send(SecretString::from(stale.as_str())).unwrap();
    let first = st(TOKEN_A);
    let gone = signed_get(&s, "localhost", "gone", &s.profile, &first);
    assert!(tokio::time::timeout(std::time::Duration::from_secs(1), gone).await.is_err());
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(!logs.contains("no renewal within"), "{logs}");
    // No renewal at all (an IdP outage): after the wait the request goes out as it is, and the
    // log says so, so the program's 401 is no mystery.
    signed_get(&s, "localhost", "outage", &s.profile, &st(TOKEN_A)).await;
    assert_eq!(key_id(&s.upstream.case("outage")), st(&stale));
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(logs.contains("no renewal within 10s, so a request went out with the expired session token"), "{logs}");

    // Non-CONNECT requests are refused.
    let mut tcp = tokio::net::TcpStream::connect(s.handle.addr()).await.unwrap();
    let env: Vec<_> = s.handle.child_env();
    let url = Url::parse(env[0].1.to_str().unwrap()).unwrap();
    let creds = base64_basic(url.username(), url.password().unwrap());
    tcp.write_all(
        format!("GET http://example.test/ HTTP/1.1\r\nHost: example.test\r\nProxy-Authorization: {creds}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 512];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 405"));

    // A tunnel to a closed port: 502 on the CONNECT.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut tcp = tokio::net::TcpStream::connect(s.handle.addr()).await.unwrap();
    tcp.write_all(
        format!("CONNECT 127.0.0.1:{closed_port} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {creds}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 502"));

    // The child environment: proxy URL on loopback, every CA variable on the bundle file.
    let env: std::collections::HashMap<String, String> =
        s.handle.child_env().into_iter().map(|(k, v)| (k.into_string().unwrap(), v.into_string().unwrap())).collect();
    assert!(
        env["https_proxy"].starts_with("http://woci:")
            && env["https_proxy"].ends_with(&format!("@{}", s.handle.addr()))
    );
    for k in ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"] {
        assert_eq!(env[k], s.handle.ca_bundle_path().to_str().unwrap());
    }
    assert_eq!(s.handle.env_removals(), vec!["NO_PROXY", "no_proxy"]);
    let handle_debug = format!("{:?}", s.handle);
    assert!(!handle_debug.contains(url.password().unwrap()), "Debug must not show the secret");
    s.handle.shutdown().await;
}

fn base64_basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}")))
}

/// `start_for_profile` (what `--auto-refresh` calls) builds the proxy from the profile: the key in
/// the config's `key_file`, `WOCI_RESIGN_HOSTS`, the user's `REQUESTS_CA_BUNDLE` for upstream
/// TLS, all from the renewer's environment, not this process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_for_profile_takes_key_hosts_and_roots_from_the_profile() {
    captured_logs();
    let upstream = start_upstream().await;
    let profile = KeyPair::from_pem(PROFILE_KEY_PEM).unwrap();
    let other = KeyPair::from_pem(OTHER_KEY_PEM).unwrap();
    let home = tempfile::tempdir().unwrap();
    let oci_dir = home.path().join(".oci");
    std::fs::create_dir_all(&oci_dir).unwrap();
    let key_file = oci_dir.join("session_key.pem");
    std::fs::write(&key_file, profile.private_pem().unwrap().as_bytes()).unwrap();
    std::fs::write(
        oci_dir.join("config"),
        format!("[DEFAULT]\nregion=us-ashburn-1\nkey_file={}\nsecurity_token_file=~/.oci/token\n", key_file.display()),
    )
    .unwrap();
    let env: woci::settings::Env = [
        ("HOME", home.path().to_str().unwrap().to_owned()),
        ("WOCI_RESIGN_HOSTS", format!("localhost:{}", upstream.port)),
        ("REQUESTS_CA_BUNDLE", upstream.ca_file.path().to_str().unwrap().to_owned()),
        ("WOCI_AUTH_ENDPOINT", "http://127.0.0.1:9".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let inv = woci::cli::parse(vec!["os".into(), "ns".into(), "get".into()]).unwrap();
    let settings = woci::settings::Settings::resolve(&inv.flags, &inv.oci, &env, false).unwrap();
    let ctx = woci::context::Context::new(settings, Arc::new(woci::clock::SystemClock), env.clone()).unwrap();
    let (_tx, rx) = watch::channel(SecretString::from(TOKEN_B));
    let (_, oci) = woci::renew::facts::OciProfile::read(&ctx.settings).unwrap();
    let key = oci.signing_key(&ctx.settings, &ctx.store).unwrap();
    let handle = proxy::start_for_profile(&ctx.settings, key.public().clone(), rx, ctx.server.clone()).await.unwrap();
    // The per-run folder sits in the user's private folder under TMPDIR, never in TMPDIR itself.
    let parent = handle.ca_bundle_path().parent().unwrap().parent().unwrap();
    assert_eq!(parent, std::env::temp_dir().join(format!("woci-proxy-{}", unsafe { libc::geteuid() })));

    let child = child_client(&handle, true);
    for (case, key) in [("profile-a", &profile), ("profile-b", &other)] {
        let url = Url::parse(&format!("https://localhost:{}/20160918/instances", upstream.port)).unwrap();
        let headers = signer::sign_request(&Method::GET, &url, b"", None, key, &st(TOKEN_A).into(), &date()).unwrap();
        let resp = child.get(url).headers(headers).header("x-test-case", case).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{case}");
    }
    assert_eq!(key_id(&upstream.case("profile-a")), st(TOKEN_B));
    assert!(verifies(&upstream.case("profile-a"), &profile));
    assert_eq!(key_id(&upstream.case("profile-b")), st(TOKEN_A));
    let bundle_dir = handle.ca_bundle_path().parent().unwrap().to_owned();
    handle.shutdown().await;
    assert!(!bundle_dir.exists());
}

/// The user's own corporate proxy: a minimal CONNECT proxy that records each request head and
/// tunnels the bytes.
async fn start_corporate_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let record = record.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                record.lock().unwrap().push(head);
                let Ok(mut server) = tokio::net::TcpStream::connect(target.replace("localhost", "127.0.0.1")).await
                else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await;
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resigned_requests_go_through_the_users_own_proxy() {
    let (port, seen) = start_corporate_proxy().await;
    let corporate = Url::parse(&format!("http://corp-user:corp-pass@127.0.0.1:{port}")).unwrap();
    let s = setup_with(Some(corporate), proxy::Limits::default()).await;
    signed_get(&s, "localhost", "via-corp", &s.profile, &st(TOKEN_A)).await;
    let got = s.upstream.case("via-corp");
    assert_eq!(key_id(&got), st(TOKEN_B), "re-signed on the way");
    assert!(verifies(&got, &s.profile));
    let heads = seen.lock().unwrap().clone();
    assert_eq!(heads.len(), 1, "one upstream connection, through the corporate proxy: {heads:?}");
    assert!(heads[0].starts_with(&format!("CONNECT localhost:{} ", s.upstream.port)), "{}", heads[0]);
    // Basic corp-user:corp-pass
    assert!(heads[0].contains("Basic Y29ycC11c2VyOmNvcnAtcGFzcw=="), "the user's proxy credentials are sent");
}

/// A re-signed host the proxy cannot reach (here: the user's own proxy is down) gives the child
/// a 502, which it may retry for minutes: woci says why at once, once per host.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_resigned_host_is_named_at_once() {
    captured_logs();
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = Url::parse(&format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port())).unwrap();
    drop(closed);
    let s = setup_with(Some(dead), proxy::Limits::default()).await;
    let url = Url::parse(&format!("https://localhost:{}/n/", s.upstream.port)).unwrap();
    for _ in 0..2 {
        let headers =
            signer::sign_request(&Method::GET, &url, b"", None, &s.profile, &st(TOKEN_A).as_str().into(), &date())
                .unwrap();
        let resp = s.child.get(url.clone()).headers(headers).send().await.unwrap();
        assert_eq!(resp.status(), 502);
    }
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    let said = logs.matches("the re-signing proxy cannot reach `localhost:").count();
    assert_eq!(said, 1, "{logs}");
    assert!(logs.contains("(through your proxy `127.0.0.1:") && logs.contains("the program gets HTTP 502"), "{logs}");
}

/// A program that refuses the proxy's certificate (it trusts only its own CA) is told why; one
/// that closes the tunnel before or during the handshake (it ended, it ran out of file
/// descriptors) is not blamed on the certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_a_refused_certificate_is_called_one() {
    captured_logs();
    let s = setup().await;
    let refused = "refused the proxy's certificate for `localhost:";
    drop(tunnel_via_proxy(&s, "localhost").await);
    let mut half = tunnel_via_proxy(&s, "localhost").await;
    half.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40]).await.unwrap();
    drop(half);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
    assert!(!logs.contains(refused), "{logs}");
    assert!(handshake_via_proxy(&s, "localhost", &[], false).await.is_err());
    let started = std::time::Instant::now();
    loop {
        let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
        if logs.matches(refused).count() == 1 {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "no certificate warning:\n{logs}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A program that makes a client per task keeps each connection alive after its request: at the
/// connection cap the one idle longest is closed for the next, as a busy server does, instead of
/// the next being refused (round 99 F1). Requests with many header fields are re-signed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_cap_an_idle_kept_alive_connection_makes_room() {
    // 8 connections, any of them without credentials yet.
    let s = setup_with(None, proxy::Limits::default().with_max_connections(8)).await;
    let clients: Vec<reqwest::Client> = (0..11).map(|_| child_client(&s.handle, true)).collect();
    for (i, child) in clients.iter().enumerate() {
        signed_get_by(&s, child, "localhost", &format!("cap-{i}"), &s.profile, &st(TOKEN_A), 0).await;
    }
    // A new client still on its way in (connected, no CONNECT sent yet) is not closed for the
    // next one while a kept-alive connection sits idle (round 101 F2: 78 of 200 calls failed).
    let arriving = tokio::net::TcpStream::connect(s.handle.addr()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // The first clients' connections were closed meanwhile: their next requests connect again.
    for (i, child) in clients.iter().enumerate().take(3) {
        signed_get_by(&s, child, "localhost", &format!("again-{i}"), &s.profile, &st(TOKEN_A), 0).await;
    }
    drop(connect_on(&s, arriving, "localhost").await);
    for case in (0..11).map(|i| format!("cap-{i}")).chain((0..3).map(|i| format!("again-{i}"))) {
        assert_eq!(key_id(&s.upstream.case(&case)), st(TOKEN_B), "{case} was re-signed");
    }
    signed_get_by(&s, &s.child, "localhost", "many-headers", &s.profile, &st(TOKEN_A), 300).await;
    let seen = s.upstream.case("many-headers");
    assert!(seen.headers.contains_key("opc-meta-k299") && verifies(&seen, &s.profile));
}
