//! The emulator rejects what the real services reject, and round-trips what they accept.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use md5::{Digest as _, Md5};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::{Config, Emulator, Endpoint, Fault, TrustedIssuer};

/// The client's session key (what woci keeps in `oci_api_key.pem`).
fn client_key() -> RsaPrivateKey {
    static K: OnceLock<RsaPrivateKey> = OnceLock::new();
    K.get_or_init(crate::keys::generate).clone()
}

fn spki_b64(key: &RsaPrivateKey) -> String {
    STANDARD.encode(key.to_public_key().to_public_key_der().unwrap().as_bytes())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

struct Signed<'a> {
    method: Method,
    url: String,
    body: Vec<u8>,
    content_type: &'a str,
    /// Sign content-length, content-type and x-content-sha256 (every POST/PUT except PutObject
    /// and UploadPart).
    body_headers: bool,
    date: SystemTime,
    /// `date` (Python, Go, Java SDKs) or `x-date` (the TypeScript SDK: fetch may not set `date`).
    date_header: &'static str,
    extra: Vec<(&'a str, String)>,
}

impl<'a> Signed<'a> {
    fn new(method: Method, url: impl Into<String>) -> Self {
        Signed {
            body_headers: matches!(method, Method::POST | Method::PUT),
            method,
            url: url.into(),
            body: Vec::new(),
            content_type: "application/json",
            date: SystemTime::now(),
            date_header: "date",
            extra: Vec::new(),
        }
    }

    /// Signed as the TypeScript SDK signs (`oci-common` `DefaultRequestSigner`): `x-date` in place
    /// of `date`, and body headers unless the operation excludes the body (PutObject, UploadPart).
    fn typescript(mut self) -> Self {
        self.date_header = "x-date";
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>, body_headers: bool) -> Self {
        self.body = body.into();
        self.body_headers = body_headers;
        self
    }

    /// Headers as the Python SDK signs them (`oci/signer.py`), or the TypeScript SDK
    /// ([`Signed::typescript`]).
    fn headers(&self, token: &str, key: &RsaPrivateKey) -> HeaderMap {
        let url = url::Url::parse(&self.url).unwrap();
        let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut h: Vec<(String, String)> = vec![
            (self.date_header.into(), httpdate::fmt_http_date(self.date)),
            ("(request-target)".into(), format!("{} {target}", self.method.as_str().to_lowercase())),
            ("host".into(), host),
        ];
        if self.body_headers {
            h.push(("content-length".into(), self.body.len().to_string()));
            h.push(("content-type".into(), self.content_type.into()));
            h.push(("x-content-sha256".into(), STANDARD.encode(Sha256::digest(&self.body))));
        }
        let signing_string = h.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("\n");
        let sig = SigningKey::<sha2::Sha256>::new(key.clone()).sign(signing_string.as_bytes());
        let names = h.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(" ");
        let auth = format!(
            "Signature algorithm=\"rsa-sha256\",headers=\"{names}\",keyId=\"ST${token}\",signature=\"{}\",version=\"1\"",
            STANDARD.encode(sig.to_bytes())
        );
        let mut out = HeaderMap::new();
        for (k, v) in h.iter().filter(|(k, _)| k != "(request-target)") {
            out.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        if !self.body_headers && !self.body.is_empty() {
            out.insert("content-type", HeaderValue::from_static("application/octet-stream"));
        }
        out.insert("authorization", HeaderValue::from_str(&auth).unwrap());
        for (k, v) in &self.extra {
            out.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        out
    }

    async fn send(self, token: &str, key: &RsaPrivateKey) -> reqwest::Response {
        let headers = self.headers(token, key);
        http().request(self.method, &self.url).headers(headers).body(self.body).send().await.unwrap()
    }
}

async fn emu() -> Emulator {
    Emulator::start(Config::default()).await.unwrap()
}

fn upst_for_client(e: &Emulator) -> String {
    e.issue_upst(&spki_b64(&client_key()), Duration::from_secs(600))
}

fn ns_url(e: &Emulator) -> String {
    format!("{}/n/", e.os_endpoint())
}

async fn error_code(resp: reqwest::Response) -> (StatusCode, Option<String>, Value) {
    let status = resp.status();
    let rid = resp.headers().get("opc-request-id").map(|v| v.to_str().unwrap().to_string());
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    (status, rid, body)
}

fn last_reason(e: &Emulator) -> Option<String> {
    e.events().last().and_then(|ev| ev.reason.clone())
}

// ------------------------------------------------------------------ request signing

#[tokio::test]
async fn a_correctly_signed_request_is_accepted_and_its_jti_recorded() {
    let e = emu().await;
    let token = upst_for_client(&e);
    let resp = Signed::new(Method::GET, ns_url(&e)).send(&token, &client_key()).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("opc-request-id"));
    assert_eq!(resp.json::<Value>().await.unwrap(), json!("emulatorns"));
    let jti = crate::upst::peek_jti(&token).unwrap();
    assert_eq!(e.stats().os_jtis, vec![jti.clone()]);
    assert_eq!(e.events().last().unwrap().jti.as_deref(), Some(jti.as_str()));
}

#[tokio::test]
async fn expired_upst_is_not_authenticated() {
    let e = emu().await;
    let s = &e.state;
    let jwk = crate::upst::jwk_claim(&client_key().to_public_key());
    let now = crate::state::now_secs();
    let token = crate::upst::mint(&s.oci_key, "u", "t", &jwk, now - 1, &crate::upst::format_sess_exp(now + 3600));
    let (status, rid, body) = error_code(Signed::new(Method::GET, ns_url(&e)).send(&token, &client_key()).await).await;
    assert_eq!(status, 401);
    assert!(rid.is_some(), "401s carry opc-request-id");
    assert_eq!(body["code"], "NotAuthenticated");
    assert!(body["message"].is_string());
    assert_eq!(last_reason(&e).as_deref(), Some("upst_expired"));
    assert_eq!(e.stats().unauthorized_for("upst_expired"), 1);
    assert!(e.stats().os_jtis.is_empty());
}

#[tokio::test]
async fn signature_by_another_key_than_the_bound_one_is_rejected() {
    let e = emu().await;
    let token = upst_for_client(&e);
    let other = e.state.idp_key.private.clone();
    let (status, _, body) = error_code(Signed::new(Method::GET, ns_url(&e)).send(&token, &other).await).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("NotAuthenticated")));
    assert_eq!(last_reason(&e).as_deref(), Some("bad_signature"));
}

#[tokio::test]
async fn upst_not_signed_by_oci_is_rejected() {
    let e = emu().await;
    let jwk = crate::upst::jwk_claim(&client_key().to_public_key());
    let now = crate::state::now_secs();
    // Same claims, signed by the IdP key instead of the auth service's key.
    let forged =
        crate::upst::mint(&e.state.idp_key, "u", "t", &jwk, now + 600, &crate::upst::format_sess_exp(now + 3600));
    let resp = Signed::new(Method::GET, ns_url(&e)).send(&forged, &client_key()).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("upst_bad_signature"));
}

#[tokio::test]
async fn tampered_signed_header_or_target_is_rejected() {
    let e = emu().await;
    let token = upst_for_client(&e);
    // A signed header changed after signing.
    let req = Signed::new(Method::GET, ns_url(&e));
    let mut headers = req.headers(&token, &client_key());
    headers.insert(
        "date",
        HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2))).unwrap(),
    );
    let resp = http().get(ns_url(&e)).headers(headers).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("bad_signature"));
    // The signature replayed on another path.
    let headers = Signed::new(Method::GET, ns_url(&e)).headers(&token, &client_key());
    let url = format!("{}/n/emulatorns/b/b/o/x", e.os_endpoint());
    let resp = http().get(url).headers(headers).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("bad_signature"));
    // A signed body that does not match x-content-sha256.
    let url = format!("{}/n/emulatorns/b/b/u", e.os_endpoint());
    let req = Signed::new(Method::POST, &url).body(r#"{"object":"a"}"#, true);
    let headers = req.headers(&token, &client_key());
    let resp = http().post(&url).headers(headers).body(r#"{"object":"b"}"#).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("body_hash_mismatch"));
}

#[tokio::test]
async fn post_without_signed_body_headers_is_rejected_but_put_object_is_not() {
    let e = emu().await;
    let token = upst_for_client(&e);
    let url = format!("{}/n/emulatorns/b/b/u", e.os_endpoint());
    let resp = Signed::new(Method::POST, &url).body(r#"{"object":"a"}"#, false).send(&token, &client_key()).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("required_header_not_signed"));
    let url = format!("{}/n/emulatorns/b/b/o/a", e.os_endpoint());
    let resp = Signed::new(Method::PUT, &url).body("data", false).send(&token, &client_key()).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn stale_date_is_rejected() {
    let e = emu().await;
    let token = upst_for_client(&e);
    let mut req = Signed::new(Method::GET, ns_url(&e));
    req.date = SystemTime::now() - Duration::from_secs(6 * 60);
    let resp = req.send(&token, &client_key()).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("stale_date"));
    let mut req = Signed::new(Method::GET, ns_url(&e));
    req.date = SystemTime::now() + Duration::from_secs(6 * 60);
    assert_eq!(req.send(&token, &client_key()).await.status(), 401);
}

#[tokio::test]
async fn unsigned_request_is_rejected() {
    let e = emu().await;
    let resp = http().get(ns_url(&e)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("missing_authorization"));
}

#[tokio::test]
async fn x_date_signed_requests_are_accepted_as_the_typescript_sdk_sends_them() {
    let e = emu().await;
    let token = upst_for_client(&e);
    let key = client_key();
    let resp = Signed::new(Method::GET, ns_url(&e)).typescript().send(&token, &key).await;
    assert_eq!(resp.status(), 200, "GetNamespace signed with x-date, no date header at all");
    let base = format!("{}/n/emulatorns/b/b", e.os_endpoint());
    let put = Signed::new(Method::PUT, format!("{base}/o/ts")).typescript().body("data", false);
    assert!(!put.headers(&token, &key).contains_key("date"));
    assert_eq!(put.send(&token, &key).await.status(), 200, "PutObject: x-date, body excluded");
    let created = Signed::new(Method::POST, format!("{base}/u"))
        .typescript()
        .body(json!({"object": "ts-mp"}).to_string(), true)
        .send(&token, &key)
        .await;
    assert_eq!(created.status(), 200, "CreateMultipartUpload: x-date with the body headers");
    assert_eq!(e.stats().unauthorized_for("required_header_not_signed"), 0);
}

#[tokio::test]
async fn x_date_is_held_to_the_rules_of_date() {
    let e = emu().await;
    let token = upst_for_client(&e);
    let key = client_key();
    // Changed after signing.
    let mut headers = Signed::new(Method::GET, ns_url(&e)).typescript().headers(&token, &key);
    headers.insert(
        "x-date",
        HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2))).unwrap(),
    );
    assert_eq!(http().get(ns_url(&e)).headers(headers).send().await.unwrap().status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("bad_signature"));
    // Stale.
    let mut stale = Signed::new(Method::GET, ns_url(&e)).typescript();
    stale.date = SystemTime::now() - Duration::from_secs(6 * 60);
    assert_eq!(stale.send(&token, &key).await.status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("stale_date"));
    // Signed but not sent.
    let mut headers = Signed::new(Method::GET, ns_url(&e)).typescript().headers(&token, &key);
    headers.remove("x-date");
    assert_eq!(http().get(ns_url(&e)).headers(headers).send().await.unwrap().status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("signed_header_missing"));
    // Neither `date` nor `x-date` signed: a request anyone could replay at any time.
    let auth = Signed::new(Method::GET, ns_url(&e)).headers(&token, &key)["authorization"].to_str().unwrap().to_owned();
    let undated = auth.replace("headers=\"date (request-target) host\"", "headers=\"(request-target) host\"");
    assert_ne!(auth, undated);
    let resp = http().get(ns_url(&e)).header("authorization", undated).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("required_header_not_signed"));
}

#[tokio::test]
async fn only_put_object_and_upload_part_may_leave_the_body_unsigned() {
    let e = emu().await;
    let token = upst_for_client(&e);
    let key = client_key();
    let base = format!("{}/n/emulatorns/b/b", e.os_endpoint());
    let created: Value = Signed::new(Method::POST, format!("{base}/u"))
        .body(json!({"object": "mp"}).to_string(), true)
        .send(&token, &key)
        .await
        .json()
        .await
        .unwrap();
    let id = created["uploadId"].as_str().unwrap();
    let part = Signed::new(Method::PUT, format!("{base}/u/mp?uploadId={id}&uploadPartNum=1")).body("part", false);
    let resp = part.send(&token, &key).await;
    assert_eq!(resp.status(), 200, "UploadPart without body headers (Go and Python SDKs)");
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    let commit = json!({"partsToCommit": [{"partNum": 1, "etag": etag}]}).to_string();
    for sdk in [
        Signed::new(Method::POST, format!("{base}/u/mp?uploadId={id}")),
        Signed::new(Method::POST, format!("{base}/u/mp?uploadId={id}")).typescript(),
    ] {
        assert_eq!(
            sdk.body(commit.clone(), false).send(&token, &key).await.status(),
            401,
            "commit without body headers"
        );
        assert_eq!(last_reason(&e).as_deref(), Some("required_header_not_signed"));
    }
    // A PutObject that signs its body hash is held to it.
    let url = format!("{base}/o/hashed");
    let headers = Signed::new(Method::PUT, &url).body("signed body", true).headers(&token, &key);
    let resp = http().put(&url).headers(headers).body("other body!").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("body_hash_mismatch"));
    let resp =
        Signed::new(Method::POST, format!("{base}/u/mp?uploadId={id}")).body(commit, true).send(&token, &key).await;
    assert_eq!(resp.status(), 200);
}

// ------------------------------------------------------------------ Object Storage

fn md5_b64(data: &[u8]) -> String {
    STANDARD.encode(Md5::digest(data))
}

#[tokio::test]
async fn multipart_upload_round_trips_with_md5_headers() {
    let e = emu().await;
    let token = upst_for_client(&e);
    let key = client_key();
    let base = format!("{}/n/emulatorns/b/bucket", e.os_endpoint());
    let name = "dir/file name.bin";
    let enc = "dir%2Ffile%20name.bin";
    let parts: Vec<Vec<u8>> = (0..3u8).map(|i| (0..100_000u32).map(|j| (j as u8) ^ i).collect()).collect();

    let created = Signed::new(Method::POST, format!("{base}/u"))
        .body(json!({"object": name}).to_string(), true)
        .send(&token, &key)
        .await;
    assert_eq!(created.status(), 200);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["object"], name);
    let upload_id = created["uploadId"].as_str().unwrap().to_string();

    let mut commit = Vec::new();
    // Upload out of order, as the SDK's parallel uploader may.
    for i in [2usize, 0, 1] {
        let mut req = Signed::new(Method::PUT, format!("{base}/u/{enc}?uploadId={upload_id}&uploadPartNum={}", i + 1))
            .body(parts[i].clone(), false);
        req.extra.push(("content-md5", md5_b64(&parts[i])));
        let resp = req.send(&token, &key).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["opc-content-md5"].to_str().unwrap(), md5_b64(&parts[i]));
        commit.push((i + 1, resp.headers()["etag"].to_str().unwrap().to_string()));
    }
    // A part with a wrong Content-MD5 is refused.
    let mut bad =
        Signed::new(Method::PUT, format!("{base}/u/{enc}?uploadId={upload_id}&uploadPartNum=4")).body("x", false);
    bad.extra.push(("content-md5", md5_b64(b"y")));
    assert_eq!(bad.send(&token, &key).await.status(), 400);

    let listed: Value = Signed::new(Method::GET, format!("{base}/u/{enc}?uploadId={upload_id}"))
        .send(&token, &key)
        .await
        .json()
        .await
        .unwrap();
    let nums: Vec<u64> = listed.as_array().unwrap().iter().map(|p| p["partNumber"].as_u64().unwrap()).collect();
    assert_eq!(nums, [1, 2, 3]);
    assert_eq!(listed[0]["md5"], md5_b64(&parts[0]));
    assert_eq!(listed[0]["size"], 100_000);

    commit.sort();
    let body =
        json!({"partsToCommit": commit.iter().map(|(n, e)| json!({"partNum": n, "etag": e})).collect::<Vec<_>>()});
    let resp = Signed::new(Method::POST, format!("{base}/u/{enc}?uploadId={upload_id}"))
        .body(body.to_string(), true)
        .send(&token, &key)
        .await;
    assert_eq!(resp.status(), 200);
    // oci_cli.cli_util.checksum_hashlib: md5 over the raw part digests, base64, "-<parts>".
    let raw: Vec<u8> = parts.iter().flat_map(|p| Md5::digest(p).to_vec()).collect();
    let expected = format!("{}-3", STANDARD.encode(Md5::digest(&raw)));
    assert_eq!(resp.headers()["opc-multipart-md5"].to_str().unwrap(), expected);

    let got = Signed::new(Method::GET, format!("{base}/o/{enc}")).send(&token, &key).await;
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["opc-multipart-md5"].to_str().unwrap(), expected);
    let bytes = got.bytes().await.unwrap();
    assert_eq!(bytes.to_vec(), parts.concat());
    let head = Signed::new(Method::HEAD, format!("{base}/o/{enc}")).send(&token, &key).await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "300000");
    let mut ranged = Signed::new(Method::GET, format!("{base}/o/{enc}"));
    ranged.extra.push(("range", "bytes=99990-100009".into()));
    let ranged = ranged.send(&token, &key).await;
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.unwrap().to_vec(), parts.concat()[99_990..100_010].to_vec());

    // The upload is gone after the commit.
    let gone = Signed::new(Method::GET, format!("{base}/u/{enc}?uploadId={upload_id}")).send(&token, &key).await;
    assert_eq!(gone.status(), 404);
    let st = e.stats();
    assert_eq!((st.parts_uploaded, st.objects_committed), (3, 1));
    assert_eq!(e.object("bucket", name).unwrap(), parts.concat());
}

#[tokio::test]
async fn single_put_get_head_and_abort() {
    let e = emu().await;
    let token = upst_for_client(&e);
    let key = client_key();
    let base = format!("{}/n/emulatorns/b/any-bucket", e.os_endpoint());
    let data = b"hello object storage".to_vec();
    let resp =
        Signed::new(Method::PUT, format!("{base}/o/hello.txt")).body(data.clone(), false).send(&token, &key).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["opc-content-md5"].to_str().unwrap(), md5_b64(&data));
    assert!(resp.headers().contains_key("etag"));
    let got = Signed::new(Method::GET, format!("{base}/o/hello.txt")).send(&token, &key).await;
    assert_eq!(got.headers()["content-md5"].to_str().unwrap(), md5_b64(&data));
    assert_eq!(got.bytes().await.unwrap().to_vec(), data);
    let missing = Signed::new(Method::GET, format!("{base}/o/nope")).send(&token, &key).await;
    let (status, _, body) = error_code(missing).await;
    assert_eq!((status.as_u16(), body["code"].as_str()), (404, Some("ObjectNotFound")));
    assert_eq!(Signed::new(Method::HEAD, format!("{base}/o/nope")).send(&token, &key).await.status(), 404);
    let wrong_ns = Signed::new(Method::GET, format!("{}/n/otherns/b/x/o/y", e.os_endpoint())).send(&token, &key).await;
    assert_eq!(wrong_ns.status(), 404);

    let created: Value = Signed::new(Method::POST, format!("{base}/u"))
        .body(json!({"object": "big"}).to_string(), true)
        .send(&token, &key)
        .await
        .json()
        .await
        .unwrap();
    let id = created["uploadId"].as_str().unwrap();
    let abort = Signed::new(Method::DELETE, format!("{base}/u/big?uploadId={id}")).send(&token, &key).await;
    assert_eq!(abort.status(), 204);
    let again = Signed::new(Method::DELETE, format!("{base}/u/big?uploadId={id}")).send(&token, &key).await;
    assert_eq!(again.status(), 404);
}

// ------------------------------------------------------------------ session refresh

#[tokio::test]
async fn session_refresh_issues_a_new_token_bound_to_the_same_key_until_sess_exp() {
    let e = emu().await;
    let key = client_key();
    let token = upst_for_client(&e);
    let url = format!("{}/v1/authentication/refresh", e.auth_endpoint());
    let body = json!({"currentToken": token}).to_string();
    let resp = Signed::new(Method::POST, &url).body(body, true).send(&token, &key).await;
    assert_eq!(resp.status(), 200);
    let new = resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let (old_u, new_u) =
        (crate::upst::verify(&e.state.oci_key, &token).unwrap(), crate::upst::verify(&e.state.oci_key, &new).unwrap());
    assert_ne!(old_u.jti, new_u.jti);
    assert_eq!(old_u.jwk_claim, new_u.jwk_claim);
    assert_eq!(old_u.sess_exp_str, new_u.sess_exp_str);
    // The new token works.
    assert_eq!(Signed::new(Method::GET, ns_url(&e)).send(&new, &key).await.status(), 200);

    // Past sess_exp: 401.
    let jwk = crate::upst::jwk_claim(&key.to_public_key());
    let now = crate::state::now_secs();
    let ending = crate::upst::mint(&e.state.oci_key, "u", "t", &jwk, now + 600, &crate::upst::format_sess_exp(now - 1));
    let resp = Signed::new(Method::POST, &url)
        .body(json!({"currentToken": ending}).to_string(), true)
        .send(&ending, &key)
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(last_reason(&e).as_deref(), Some("session_expired"));
    assert_eq!((e.stats().session_refreshes, e.stats().session_refreshes_rejected), (1, 1));
}

// ------------------------------------------------------------------ IdP

fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode([7u8; 40]);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

const REDIRECT: &str = "http://127.0.0.1:43123/callback";

async fn authorize(e: &Emulator, challenge: &str, redirect: &str) -> reqwest::Response {
    let mut url = e.authorize_url();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &e.config().idp_client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "openid offline_access")
        .append_pair("state", "st-123")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    http().get(url).send().await.unwrap()
}

fn location_params(resp: &reqwest::Response) -> std::collections::HashMap<String, String> {
    let loc = resp.headers()["location"].to_str().unwrap();
    url::Url::parse(loc).unwrap().query_pairs().into_owned().collect()
}

async fn token_req(e: &Emulator, form: &[(&str, &str)], secret: Option<&str>) -> reqwest::Response {
    let mut r = http().post(e.token_url()).form(form);
    if let Some(s) = secret {
        r = r.basic_auth(&e.config().idp_client_id, Some(s));
    }
    r.send().await.unwrap()
}

async fn login_code(e: &Emulator, challenge: &str) -> String {
    let resp = authorize(e, challenge, REDIRECT).await;
    assert_eq!(resp.status(), 302);
    let p = location_params(&resp);
    assert_eq!(p["state"], "st-123", "state round-trips");
    p["code"].clone()
}

#[tokio::test]
async fn authorization_code_with_pkce_issues_rs256_tokens() {
    let e = emu().await;
    let (verifier, challenge) = pkce();
    let code = login_code(&e, &challenge).await;
    let secret = e.config().idp_client_secret.clone().unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &verifier),
    ];
    let resp = token_req(&e, &form, Some(&secret)).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let at = crate::jwt::Parsed::parse(body["access_token"].as_str().unwrap()).unwrap();
    at.verify(&e.state.idp_key.public).unwrap();
    assert_eq!(at.header["alg"], "RS256");
    assert_eq!(at.str_claim("iss"), Some(e.issuer().as_str()));
    assert!(body["refresh_token"].is_string() && body["id_token"].is_string());
    // The code is single use.
    let again = token_req(&e, &form, Some(&secret)).await;
    assert_eq!(again.status(), 400);
    assert_eq!(again.json::<Value>().await.unwrap()["error"], "invalid_grant");
    assert_eq!((e.stats().auth_code_grants, e.stats().auth_code_grants_rejected), (1, 1));
}

#[tokio::test]
async fn pkce_mismatch_is_invalid_grant() {
    let e = emu().await;
    let (_, challenge) = pkce();
    let code = login_code(&e, &challenge).await;
    let wrong = URL_SAFE_NO_PAD.encode([9u8; 40]);
    let secret = e.config().idp_client_secret.clone().unwrap();
    let resp = token_req(
        &e,
        &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", REDIRECT), ("code_verifier", &wrong)],
        Some(&secret),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // Without PKCE the authorize request itself is refused (redirected with an error).
    let resp = authorize(&e, "", REDIRECT).await;
    assert_eq!(location_params(&resp)["error"], "invalid_request");
}

#[tokio::test]
async fn wrong_redirect_uri_is_refused_at_authorize_and_at_the_token_endpoint() {
    let e = emu().await;
    let (verifier, challenge) = pkce();
    // Not a registered URI: an error page, never a redirect.
    let resp = authorize(&e, &challenge, "http://evil.example/callback").await;
    assert_eq!(resp.status(), 400);
    assert!(resp.headers().get("location").is_none());
    assert_eq!(authorize(&e, &challenge, "http://127.0.0.1:43123/other").await.status(), 400);
    // Redeeming with another redirect_uri than the authorization request's.
    let code = login_code(&e, &challenge).await;
    let secret = e.config().idp_client_secret.clone().unwrap();
    let resp = token_req(
        &e,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:43124/callback"),
            ("code_verifier", &verifier),
        ],
        Some(&secret),
    )
    .await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client() {
    let e = emu().await;
    let rt = e.issue_refresh_token();
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
    let resp = token_req(&e, &form, Some("wrong-secret")).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_client");
    // No credentials at all for a confidential client.
    let resp = token_req(
        &e,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", "woci-idp-client")],
        None,
    )
    .await;
    assert_eq!(resp.status(), 401);
    // An unknown client.
    let resp = http().post(e.token_url()).basic_auth("not-a-client", Some("x")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // The refresh token was not spent by the failures.
    let secret = e.config().idp_client_secret.clone().unwrap();
    assert_eq!(token_req(&e, &form, Some(&secret)).await.status(), 200);
    let st = e.stats();
    assert_eq!((st.refresh_grants, st.refresh_grants_issued, st.refresh_grants_rejected), (4, 1, 3));
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_family() {
    let e = emu().await;
    let secret = e.config().idp_client_secret.clone().unwrap();
    let rt1 = e.issue_refresh_token();
    let unrelated = e.issue_refresh_token();
    let refresh = |rt: String| {
        let e = &e;
        let secret = secret.clone();
        async move { token_req(e, &[("grant_type", "refresh_token"), ("refresh_token", &rt)], Some(&secret)).await }
    };
    let r = refresh(rt1.clone()).await;
    assert_eq!(r.status(), 200);
    let rt2 = r.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "refresh tokens rotate");
    // Replay of the spent token...
    let replay = refresh(rt1).await;
    assert_eq!(replay.status(), 400);
    assert_eq!(replay.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // ...revokes its successor too, but not other families.
    assert_eq!(refresh(rt2).await.status(), 400);
    assert_eq!(refresh(unrelated.clone()).await.status(), 200);
    e.revoke_refresh_tokens();
    let fresh = e.issue_refresh_token();
    assert_eq!(refresh(fresh).await.status(), 200, "tokens issued after a revocation work");
}

#[tokio::test]
async fn public_client_needs_no_secret_but_the_right_client_id() {
    let cfg = Config { idp_client_secret: None, ..Config::default() };
    let e = Emulator::start(cfg).await.unwrap();
    let rt = e.issue_refresh_token();
    let ok = token_req(
        &e,
        &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", "woci-idp-client")],
        None,
    )
    .await;
    assert_eq!(ok.status(), 200);
    let rt2 = ok.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_string();
    let bad =
        token_req(&e, &[("grant_type", "refresh_token"), ("refresh_token", &rt2), ("client_id", "other")], None).await;
    assert_eq!(bad.status(), 401);
}

// ------------------------------------------------------------------ token exchange

async fn exchange(e: &Emulator, subject: &str, secret: &str) -> reqwest::Response {
    http()
        .post(e.exchange_url())
        .basic_auth(&e.config().exchange_client_id, Some(secret))
        .form(&[
            ("grant_type", crate::exchange::GRANT_TYPE),
            ("requested_token_type", crate::exchange::UPST_TYPE),
            ("subject_token", subject),
            ("subject_token_type", "jwt"),
            ("public_key", &spki_b64(&client_key())),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn exchange_issues_a_upst_with_the_documented_claims() {
    let e = emu().await;
    let at = e.issue_access_token();
    let resp = exchange(&e, &at, &e.config().exchange_client_secret).await;
    assert_eq!(resp.status(), 200);
    let token = resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let p = crate::jwt::Parsed::parse(&token).unwrap();
    let c = &p.claims;
    assert_eq!(c["sub"], e.config().user_ocid);
    assert_eq!(c["tenant"], e.config().tenancy_ocid);
    assert!(c["iat"].is_i64() && c["exp"].is_i64());
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 3600);
    assert!(crate::upst::parse_sess_exp(c["sess_exp"].as_str().unwrap()).is_some(), "sess_exp is a date string");
    assert!(c["sess_exp"].as_str().unwrap().ends_with(" UTC"));
    let jwk: Value = serde_json::from_str(c["jwk"].as_str().expect("jwk is a JSON string")).unwrap();
    assert_eq!(crate::keys::from_jwk(&jwk).unwrap(), client_key().to_public_key());
    // Each exchange has its own jti, and the token signs requests.
    let again = exchange(&e, &at, &e.config().exchange_client_secret).await.json::<Value>().await.unwrap();
    assert_ne!(crate::upst::peek_jti(again["token"].as_str().unwrap()), crate::upst::peek_jti(&token));
    assert_eq!(Signed::new(Method::GET, ns_url(&e)).send(&token, &client_key()).await.status(), 200);
    assert_eq!(e.stats().exchanges, 2);
}

#[tokio::test]
async fn exchange_rejects_bad_client_secret_expired_and_untrusted_jwts() {
    let e = emu().await;
    let at = e.issue_access_token();
    let resp = exchange(&e, &at, "wrong").await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_client");

    let secret = e.config().exchange_client_secret.clone();
    let now = crate::state::now_secs();
    let sign = |claims: Value| crate::jwt::sign(&e.state.idp_key.private, &e.state.idp_key.kid, &claims);
    let expired = sign(json!({"iss": e.issuer(), "sub": "alice", "iat": now - 100, "exp": now - 1}));
    let resp = exchange(&e, &expired, &secret).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let untrusted = sign(json!({"iss": "https://other.example", "sub": "alice", "exp": now + 100}));
    assert_eq!(exchange(&e, &untrusted, &secret).await.status(), 400);
    let forged = crate::jwt::sign(
        &e.state.oci_key.private,
        &e.state.idp_key.kid,
        &json!({"iss": e.issuer(), "sub": "a", "exp": now + 100}),
    );
    assert_eq!(exchange(&e, &forged, &secret).await.status(), 400);
    assert_eq!(exchange(&e, "opaque-token", &secret).await.status(), 400);
    assert_eq!(e.stats().exchanges_rejected, 5);
    // The IdP token endpoint does not do exchanges.
    let resp = http()
        .post(e.token_url())
        .basic_auth(&e.config().exchange_client_id, Some(&secret))
        .form(&[("grant_type", crate::exchange::GRANT_TYPE)])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
}

#[tokio::test]
async fn exchange_trusts_a_configured_external_issuer_via_its_jwks_url() {
    let idp = emu().await;
    let cfg = Config {
        trusted_issuers: vec![TrustedIssuer {
            issuer: idp.issuer(),
            jwks_url: Some(idp.jwks_url()),
            jwks: None,
            ca_pem: None,
            audience: None,
        }],
        ..Config::default()
    };
    let domain = Emulator::start(cfg).await.unwrap();
    let at = idp.issue_access_token();
    let resp = exchange(&domain, &at, &domain.config().exchange_client_secret).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(idp.stats().requests_by_endpoint.get("jwks"), Some(&1));
}

// ------------------------------------------------------------------ faults, TLS, admin

#[tokio::test]
async fn faults_status_malformed_drop_and_times() {
    let e = emu().await;
    let secret = e.config().idp_client_secret.clone().unwrap();
    let rt = e.issue_refresh_token();
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str())];
    e.set_fault(Endpoint::IdpToken, Fault::status(503).times(2));
    assert_eq!(token_req(&e, &form, Some(&secret)).await.status(), 503);
    assert_eq!(token_req(&e, &form, Some(&secret)).await.status(), 503);
    e.set_fault(Endpoint::IdpToken, Fault::malformed_json().times(1));
    let resp = token_req(&e, &form, Some(&secret)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.json::<Value>().await.is_err());
    e.set_fault(Endpoint::IdpToken, Fault::drop_connection().times(1));
    assert!(http().post(e.token_url()).basic_auth("woci-idp-client", Some(&secret)).form(&form).send().await.is_err());
    e.set_fault(Endpoint::IdpToken, Fault::invalid_grant());
    assert_eq!(token_req(&e, &form, Some(&secret)).await.status(), 400);
    e.clear_faults();
    assert_eq!(token_req(&e, &form, Some(&secret)).await.status(), 200, "faults did not spend the token");
    let st = e.stats();
    assert_eq!(st.refresh_grants_attempted(), 6);
    assert_eq!(st.refresh_grants, 1);
    assert_eq!(st.faults_injected.get("idp_token"), Some(&5));
    assert_eq!(e.events().iter().filter(|ev| ev.status == 0).count(), 1, "the dropped connection is recorded");
}

/// Sends one refresh grant over a raw connection and returns what came back: the bytes, how
/// many reads they took, and the error that ended the read (if any).
async fn raw_refresh_grant(e: &Emulator, rt: &str) -> (Vec<u8>, usize, Option<std::io::ErrorKind>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = serde_urlencoded::to_string([("grant_type", "refresh_token"), ("refresh_token", rt)]).unwrap();
    let auth = STANDARD.encode(format!("woci-idp-client:{}", e.config().idp_client_secret.clone().unwrap()));
    let req = format!(
        "POST /oauth2/v1/token HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Basic {auth}\r\n\
         content-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(e.addr()).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let (mut out, mut reads, mut buf) = (Vec::new(), 0, [0u8; 4096]);
    loop {
        match s.read(&mut buf).await {
            Ok(0) => return (out, reads, None),
            Ok(n) => {
                reads += 1;
                out.extend_from_slice(&buf[..n]);
            }
            Err(err) => return (out, reads, Some(err.kind())),
        }
    }
}

#[tokio::test]
async fn drop_reply_and_reset_reply_process_the_grant_then_answer_nothing() {
    let e = emu().await;
    let secret = e.config().idp_client_secret.clone().unwrap();
    for (fault, expect_err) in
        [(Fault::drop_reply(), None), (Fault::reset_reply(), Some(std::io::ErrorKind::ConnectionReset))]
    {
        let rt = e.issue_refresh_token();
        e.set_fault(Endpoint::IdpToken, fault.times(1));
        let (out, _, err) = raw_refresh_grant(&e, &rt).await;
        assert!(out.is_empty(), "no reply: {}", String::from_utf8_lossy(&out));
        assert_eq!(err, expect_err);
        let again =
            token_req(&e, &[("grant_type", "refresh_token"), ("refresh_token", rt.as_str())], Some(&secret)).await;
        assert_eq!(again.status(), 400, "the grant was processed: the token is spent");
    }
    assert_eq!(e.stats().refresh_grants_issued, 2, "both faulted grants issued tokens");
    assert_eq!(e.events().iter().filter(|ev| ev.status == 0 && ev.fault.is_some()).count(), 2);
}

#[tokio::test]
async fn reset_before_processing_leaves_the_token_unspent() {
    let e = emu().await;
    let secret = e.config().idp_client_secret.clone().unwrap();
    let rt = e.issue_refresh_token();
    e.set_fault(Endpoint::IdpToken, Fault::reset().times(1));
    let (out, _, err) = raw_refresh_grant(&e, &rt).await;
    assert!(out.is_empty());
    assert_eq!(err, Some(std::io::ErrorKind::ConnectionReset));
    let again = token_req(&e, &[("grant_type", "refresh_token"), ("refresh_token", rt.as_str())], Some(&secret)).await;
    assert_eq!(again.status(), 200, "the reset request never reached the IdP logic");
}

#[tokio::test]
async fn reply_delay_processes_first_and_answers_late() {
    let e = emu().await;
    let secret = e.config().idp_client_secret.clone().unwrap();
    let rt = e.issue_refresh_token();
    // A client that gives up before the delayed answer: the grant was processed anyway.
    e.set_fault(Endpoint::IdpToken, Fault::reply_delay(Duration::from_secs(30)).times(1));
    let impatient = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(300)).build().unwrap();
    let r = impatient
        .post(e.token_url())
        .basic_auth("woci-idp-client", Some(&secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt.as_str())])
        .send()
        .await;
    assert!(r.unwrap_err().is_timeout());
    for _ in 0..100 {
        if e.stats().refresh_grants_issued == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(e.stats().refresh_grants_issued, 1, "processed before the delay");
}

#[tokio::test]
async fn slow_reply_dribbles_the_status_line_and_headers() {
    let e = emu().await;
    let rt = e.issue_refresh_token();
    e.set_fault(Endpoint::IdpToken, Fault::slow_reply(Duration::from_millis(1)).times(1));
    let (out, reads, err) = raw_refresh_grant(&e, &rt).await;
    assert_eq!(err, None);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("\"refresh_token\""), "the full reply arrives in the end");
    assert!(reads > 100, "one byte per write: {} bytes in {reads} reads", text.len());
}

#[tokio::test]
async fn endless_body_never_ends() {
    let e = emu().await;
    e.set_fault(Endpoint::IdpToken, Fault::endless_body());
    let mut resp = token_req(&e, &[("grant_type", "refresh_token"), ("refresh_token", "x")], None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.content_length().is_none(), "chunked");
    let mut total = 0usize;
    while total < 8 << 20 {
        total += resp.chunk().await.unwrap().expect("the body does not end").len();
    }
}

#[tokio::test]
async fn upst_ttl_is_adjustable_at_runtime() {
    let e = emu().await;
    e.set_upst_ttl(Duration::from_secs(5));
    let resp = exchange(&e, &e.issue_access_token(), &e.config().exchange_client_secret).await;
    let token = resp.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_string();
    let c = crate::jwt::Parsed::parse(&token).unwrap().claims;
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 5);
}

#[tokio::test]
async fn tls_serves_with_the_generated_ca_and_admin_reports_stats() {
    let e = Emulator::start(Config { tls: true, ..Config::default() }).await.unwrap();
    assert_eq!(e.base_url().scheme(), "https");
    let ca = reqwest::Certificate::from_pem(e.ca_pem().unwrap().as_bytes()).unwrap();
    let client =
        reqwest::Client::builder().no_proxy().tls_built_in_root_certs(false).add_root_certificate(ca).build().unwrap();
    let doc: Value = client
        .get(e.base_url().join(".well-known/openid-configuration").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], e.issuer());
    let stats: Value =
        client.get(e.base_url().join("_emulator/stats").unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["requests"], 1, "admin requests are not counted");
    // Without the CA the connection fails.
    assert!(http().get(e.base_url()).send().await.is_err());
    e.shutdown();
}

#[tokio::test]
async fn login_form_checks_the_password_before_issuing_a_code() {
    let e = Emulator::start(Config { login_mode: crate::LoginMode::LoginForm, ..Config::default() }).await.unwrap();
    let (_, challenge) = pkce();
    let form_page = authorize(&e, &challenge, REDIRECT).await;
    assert_eq!(form_page.status(), 200);
    let html = form_page.text().await.unwrap();
    assert!(html.contains("name=\"code_challenge\"") && html.contains("name=\"password\""));
    let login = |password: &'static str| {
        let e = &e;
        let challenge = challenge.clone();
        async move {
            http()
                .post(e.base_url().join("oauth2/v1/authorize/login").unwrap())
                .form(&[
                    ("response_type", "code"),
                    ("client_id", "woci-idp-client"),
                    ("redirect_uri", REDIRECT),
                    ("scope", "openid offline_access"),
                    ("state", "st-123"),
                    ("code_challenge", challenge.as_str()),
                    ("code_challenge_method", "S256"),
                    ("username", "alice@example.com"),
                    ("password", password),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = login("guess").await;
    assert_eq!(wrong.status(), 200);
    assert!(wrong.headers().get("location").is_none());
    let ok = login("alice-password").await;
    assert_eq!(ok.status(), 302);
    let p = location_params(&ok);
    assert!(p.contains_key("code"));
    assert_eq!(p["state"], "st-123");
}

#[tokio::test]
async fn admin_api_sets_faults_and_settings_over_http() {
    let e = emu().await;
    let admin = |path: &str| e.base_url().join(path).unwrap();
    let fault = json!({"endpoint": "exchange", "fault": {"action": {"kind": "status", "status": 502}, "count": 1}});
    assert_eq!(http().post(admin("_emulator/faults")).json(&fault).send().await.unwrap().status(), 200);
    let secret = e.config().exchange_client_secret.clone();
    assert_eq!(exchange(&e, &e.issue_access_token(), &secret).await.status(), 502);
    assert_eq!(exchange(&e, &e.issue_access_token(), &secret).await.status(), 200, "count 1 spent");
    let settings = json!({"upst_ttl_ms": 7000});
    assert_eq!(http().post(admin("_emulator/settings")).json(&settings).send().await.unwrap().status(), 200);
    let token = exchange(&e, &e.issue_access_token(), &secret).await.json::<Value>().await.unwrap();
    let c = crate::jwt::Parsed::parse(token["token"].as_str().unwrap()).unwrap().claims;
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 7);
    let events: Value = http().get(admin("_emulator/events")).send().await.unwrap().json().await.unwrap();
    let statuses: Vec<u64> = events.as_array().unwrap().iter().map(|ev| ev["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [502, 200, 200]);
    let rt: Value = http().post(admin("_emulator/refresh-token")).send().await.unwrap().json().await.unwrap();
    let rt = rt["refresh_token"].as_str().unwrap();
    assert_eq!(http().post(admin("_emulator/revoke")).send().await.unwrap().status(), 200);
    let resp = token_req(&e, &[("grant_type", "refresh_token"), ("refresh_token", rt)], Some("woci-idp-secret")).await;
    assert_eq!(resp.status(), 400, "revoked over the admin API");
    assert_eq!(
        http().post(admin("_emulator/faults")).json(&json!({"nonsense": 1})).send().await.unwrap().status(),
        400
    );
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let e = emu().await;
    let url = e.discovery_url();
    assert_eq!(http().get(url.clone()).send().await.unwrap().status(), 200);
    e.shutdown();
    e.stopped().await;
    // The listener is gone once the accept loop has seen the flag.
    let mut refused = false;
    for _ in 0..50 {
        if http().get(url.clone()).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the emulator still answers after shutdown");
}
