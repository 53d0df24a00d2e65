//! End-to-end checks of the real peers (`scripts/setup-e2e` installs them): the npm
//! `oidc-provider` IdP with its headless login driver, and the PyPI `oci` CLI from `.e2e/venv`.
//! The first tests talk to the IdP with plain HTTP, independent of woci, so a failure here points
//! at the peer; the woci tests then run woci's own login and refresh against it.
//! Missing peers fail these tests with what to install; nothing is skipped.

mod common;
use common::peers;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use peers::{ClientAuth, IdpOptions, NodeIdp};
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;
use url::Url;
use woci::oidc::{IdpConfig, LoginOptions};
use woci::secret::SecretString;

/// A loopback "redirect URI" that accepts one request and hands over its target
/// (`/callback?code=…&state=…`).
struct Callback {
    port: u16,
    rx: mpsc::Receiver<String>,
}

impl Callback {
    fn start() -> Callback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let target = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            let _ = tx.send(target);
        });
        Callback { port, rx }
    }

    fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    /// The query of the request the callback received; `None` if none arrived (only called after
    /// the driver exited, so anything it delivered is already here).
    fn received(&self) -> Option<Url> {
        self.rx.recv_timeout(Duration::from_secs(5)).ok().map(|t| Url::parse(&format!("http://127.0.0.1{t}")).unwrap())
    }
}

fn query(url: &Url, key: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

fn random_b64(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = random_b64(48);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorize_url(idp: &NodeIdp, redirect_uri: &str, state: &str, challenge: Option<&str>) -> String {
    let mut u = Url::parse(&idp.authorization_endpoint).unwrap();
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &idp.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid offline_access")
        .append_pair("state", state);
    if let Some(c) = challenge {
        u.query_pairs_mut().append_pair("code_challenge", c).append_pair("code_challenge_method", "S256");
    }
    u.to_string()
}

/// Runs the login driver on `url`; returns (success, stderr).
fn drive(idp: &NodeIdp, url: &str) -> (bool, String) {
    let out = idp.driver_command(url).output().expect("the login driver runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// POSTs a form to the token endpoint with the client's Basic auth; returns (status, JSON body).
async fn token_request(idp: &NodeIdp, form: &[(&str, &str)]) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(&idp.token_endpoint).form(form);
    if let Some(secret) = &idp.client_secret {
        req = req.header("authorization", format!("Basic {}", STANDARD.encode(format!("{}:{secret}", idp.client_id))));
    }
    let resp = req.send().await.expect("token endpoint reachable");
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.expect("token endpoint answers JSON");
    (status, body)
}

/// Verifies `token` as an RS256 JWT signed by a key from the IdP's `jwks_uri`, with `iss` = the
/// issuer and `aud` = the resource; returns its claims.
async fn verify_access_token(idp: &NodeIdp, token: &str) -> Value {
    let header = jsonwebtoken::decode_header(token).expect("the access token is a JWT");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.expect("the access token names its key");
    let jwks: Value = reqwest::get(&idp.jwks_uri).await.unwrap().json().await.unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS {jwks}"));
    assert_eq!(jwk["kty"], "RSA");
    let key =
        jsonwebtoken::DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_issuer(&[&idp.issuer]);
    v.set_audience(&[&idp.resource]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &v).expect("the access token verifies against the JWKS");

    // The same token with one payload byte changed must not verify: the check above is real.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload = URL_SAFE_NO_PAD.decode(&parts[1]).unwrap();
    let last = payload.len() - 2;
    payload[last] ^= 0x01;
    parts[1] = URL_SAFE_NO_PAD.encode(payload);
    assert!(jsonwebtoken::decode::<Value>(&parts.join("."), &key, &v).is_err(), "a tampered token verified");
    data.claims
}

/// Logs in through the driver; returns (code, redirect_uri, verifier).
fn login_code(idp: &NodeIdp) -> (String, String, String) {
    let cb = Callback::start();
    let (verifier, challenge) = pkce();
    let state = random_b64(16);
    let (ok, err) = drive(idp, &authorize_url(idp, &cb.redirect_uri(), &state, Some(&challenge)));
    assert!(ok, "the login driver failed: {err}\nIdP log:\n{}", idp.log());
    let got = cb.received().expect("the driver delivered the redirect to the callback");
    assert_eq!(got.path(), "/callback");
    assert_eq!(query(&got, "state").as_deref(), Some(state.as_str()), "state round-trips");
    assert_eq!(query(&got, "iss").as_deref(), Some(idp.issuer.as_str()), "RFC 9207 iss in the redirect");
    let code = query(&got, "code").expect("the redirect carries a code");
    (code, cb.redirect_uri(), verifier)
}

#[tokio::test(flavor = "multi_thread")]
async fn real_idp_code_pkce_refresh_rotation_and_jwt_access_tokens() {
    let idp = NodeIdp::start(IdpOptions { access_token_ttl: Some(Duration::from_secs(120)), ..Default::default() });
    let (code, redirect_uri, verifier) = login_code(&idp);

    let exchange = |code: String, redirect_uri: String, verifier: String| {
        let idp = &idp;
        async move {
            token_request(
                idp,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect_uri),
                    ("code_verifier", &verifier),
                    ("client_id", &idp.client_id),
                ],
            )
            .await
        }
    };
    let refresh = |rt: String| {
        let idp = &idp;
        async move {
            token_request(
                idp,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", &idp.client_id)],
            )
            .await
        }
    };

    // PKCE is enforced: a wrong verifier is refused, and the same code then works with the right one.
    let (status, body) = exchange(code.clone(), redirect_uri.clone(), random_b64(48)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, tokens) = exchange(code, redirect_uri, verifier).await;
    assert_eq!(status, 200, "{tokens}\nIdP log:\n{}", idp.log());
    let at1 = tokens["access_token"].as_str().unwrap().to_owned();
    let rt1 = tokens["refresh_token"].as_str().expect("offline_access yields a refresh token").to_owned();
    assert_eq!(tokens["expires_in"], 120);
    let c1 = verify_access_token(&idp, &at1).await;
    assert_eq!(c1["sub"], "user-alice");
    assert_eq!(c1["client_id"], idp.client_id.as_str());
    assert_eq!(c1["exp"].as_i64().unwrap() - c1["iat"].as_i64().unwrap(), 120);

    // Refresh: a new access token (JWT, new jti) and a rotated refresh token.
    let (status, refreshed) = refresh(rt1.clone()).await;
    assert_eq!(status, 200, "{refreshed}");
    let rt2 = refreshed["refresh_token"].as_str().expect("the refresh token rotates").to_owned();
    assert_ne!(rt1, rt2);
    let c2 = verify_access_token(&idp, refreshed["access_token"].as_str().unwrap()).await;
    assert_ne!(c1["jti"], c2["jti"]);
    assert_eq!(c2["sub"], "user-alice");

    // Reusing the spent refresh token fails and revokes the whole grant, so rt2 dies too.
    let (status, body) = refresh(rt1).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = refresh(rt2).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    // A code is single use; replaying it also revokes what it issued.
    let (code, redirect_uri, verifier) = login_code(&idp);
    let (status, tokens) = exchange(code.clone(), redirect_uri.clone(), verifier.clone()).await;
    assert_eq!(status, 200, "{tokens}");
    let rt3 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = exchange(code, redirect_uri, verifier).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = refresh(rt3).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
}

#[test]
fn login_driver_reports_provider_errors_and_bad_passwords() {
    let idp = NodeIdp::start(IdpOptions::default());

    // No PKCE challenge: the provider refuses and redirects the error to the client, which the
    // driver delivers before failing.
    let cb = Callback::start();
    let (ok, err) = drive(&idp, &authorize_url(&idp, &cb.redirect_uri(), "s1", None));
    assert!(!ok, "the driver succeeded without PKCE");
    assert!(err.contains("invalid_request"), "driver stderr: {err}");
    let got = cb.received().expect("the error redirect reached the callback");
    assert_eq!(query(&got, "error").as_deref(), Some("invalid_request"));
    assert_eq!(query(&got, "code"), None);

    // A wrong password: the driver gives up instead of looping; nothing reaches the callback.
    let cb = Callback::start();
    let (_, challenge) = pkce();
    let out = idp
        .driver_command(&authorize_url(&idp, &cb.redirect_uri(), "s2", Some(&challenge)))
        .env("IDP_PASSWORD", "not-the-password")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("asked for the password again"), "driver stderr: {err}");
    assert!(!err.contains("not-the-password"), "the driver printed the password: {err}");
    assert!(cb.rx.try_recv().is_err(), "a failed login reached the callback");
}

fn woci_idp_config(idp: &NodeIdp) -> IdpConfig {
    IdpConfig {
        authorize_url: Url::parse(&idp.authorization_endpoint).unwrap(),
        token_url: Url::parse(&idp.token_endpoint).unwrap(),
        client_id: idp.client_id.clone(),
        client_secret: idp.client_secret.clone().map(SecretString::from),
        scopes: vec!["openid".into(), "offline_access".into()],
        redirect_port: Some(0),
        reuse_grace: std::time::Duration::ZERO,
    }
}

/// woci's own Authorization Code + PKCE login (the login driver as `BROWSER`) and refresh grant
/// against the real provider, for a confidential and a public client.
async fn woci_login_then_refresh(auth: ClientAuth, client_secret: Option<&str>) {
    let client_secret = client_secret.map(str::to_owned);
    let idp = NodeIdp::start(IdpOptions { client_auth: auth, client_secret, ..Default::default() });
    assert_eq!(idp.client_secret.is_none(), auth == ClientAuth::None);
    let http = woci::http::Http::new(woci::http::HttpOptions::default()).unwrap();
    let cfg = woci_idp_config(&idp);
    // The driver inherits this process's environment; the provider's default user is the
    // driver's default, so nothing has to be set here.
    assert_eq!((idp.username.as_str(), idp.password.as_str()), ("alice", "wonderland-e2e"));
    let opts = LoginOptions {
        open_browser: true,
        browser_command: Some(peers::login_driver().into_os_string()),
        timeout: Duration::from_secs(60),
        interactive: true,
        profile: "E2E".into(),
        selection: "--profile E2E".into(),
        on_url: None,
        hide_env: Vec::new(),
    };
    let tokens = woci::oidc::login(&http, &cfg, &opts)
        .await
        .unwrap_or_else(|e| panic!("woci login against oidc-provider failed: {e}\nIdP log:\n{}", idp.log()));
    let claims = verify_access_token(&idp, tokens.access_token.expose()).await;
    assert_eq!(claims["sub"], "user-alice");
    let rt1 = tokens.refresh_token.expect("a refresh token from the login");

    let refreshed =
        woci::oidc::refresh(&http, &cfg, &rt1).await.map_err(|f| f.error).expect("woci's refresh grant works");
    let rt2 = refreshed.refresh_token.expect("the provider rotated the refresh token");
    assert_ne!(rt1.expose(), rt2.expose());
    let c2 = verify_access_token(&idp, refreshed.access_token.expose()).await;
    assert_ne!(claims["jti"], c2["jti"]);

    // The spent token is refused as `invalid_grant`, which woci classifies as a rejection.
    match woci::oidc::refresh(&http, &cfg, &rt1).await.map_err(|f| f.error) {
        Err(woci::Error::IdpRejected { error, .. }) => assert_eq!(error, "invalid_grant"),
        other => panic!("reusing a spent refresh token: expected IdpRejected(invalid_grant), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn woci_logs_in_and_refreshes_against_the_real_idp_confidential_client() {
    woci_login_then_refresh(ClientAuth::SecretBasic, None).await;
}

/// A base64-style secret (`+ / =`, as `openssl rand -base64` makes them): the provider decodes
/// the Basic credentials as RFC 6749 §2.3.1 says, so woci's second try, form-urlencoded, is the
/// one it takes.
#[tokio::test(flavor = "multi_thread")]
async fn woci_logs_in_with_a_secret_that_form_encoding_changes() {
    woci_login_then_refresh(ClientAuth::SecretBasic, Some("q3Zk+7vT/0aYw2xL9mNbR1cE4dF6gH8j=")).await;
    // A bare `%`, which the provider refuses as badly encoded (`invalid_request`) when sent as is.
    woci_login_then_refresh(ClientAuth::SecretBasic, Some("ab%zzc-5f0e")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn woci_logs_in_and_refreshes_against_the_real_idp_public_client() {
    woci_login_then_refresh(ClientAuth::None, None).await;
}

#[test]
fn real_oci_cli_is_installed_at_the_pinned_version() {
    let home = tempfile::tempdir().unwrap();
    let out = peers::oci_command(home.path()).arg("--version").output().expect("oci runs");
    assert!(out.status.success(), "oci --version failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), peers::OCI_CLI_VERSION);
}

/// The real `oci` with `--auth security_token` sends a request signed with `keyId="ST$<token>"`
/// to a loopback endpoint and prints the answer: the venv CLI works for woci's purposes here.
#[test]
fn real_oci_cli_signs_with_the_session_token() {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let home = tempfile::tempdir().unwrap();
    let oci_dir = home.path().join(".oci");
    std::fs::create_dir_all(&oci_dir).unwrap();
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let key_path = oci_dir.join("key.pem");
    std::fs::write(&key_path, key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    let now = common::unix_now() as u64;
    let token = format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2lnbmF0dXJl",
        URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"ocid1.user.oc1..e2e","tenant":"ocid1.tenancy.oc1..e2e","iat":{now},"exp":{},"jti":"e2e-1"}}"#,
            now + 3600
        ))
    );
    let token_path = oci_dir.join("token");
    std::fs::write(&token_path, &token).unwrap();
    std::fs::write(
        oci_dir.join("config"),
        format!(
            "[E2E]\ntenancy=ocid1.tenancy.oc1..e2e\nregion=us-ashburn-1\nfingerprint=00:00\nkey_file={}\nsecurity_token_file={}\n",
            key_path.display(),
            token_path.display()
        ),
    )
    .unwrap();

    // A one-shot Object Storage stand-in that records the request head.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let body = b"\"woci-e2e-namespace\"";
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nopc-request-id: e2e\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(body);
        let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
    });

    let out = peers::oci_command(home.path())
        .args(["os", "ns", "get", "--profile", "E2E", "--auth", "security_token"])
        .args(["--endpoint", &format!("http://127.0.0.1:{port}")])
        .output()
        .expect("oci runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "oci failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    let data: Value = serde_json::from_str(&stdout).expect("oci prints JSON");
    assert_eq!(data["data"], "woci-e2e-namespace");

    let head = rx.recv_timeout(Duration::from_secs(5)).expect("oci reached the endpoint");
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("GET /n/ HTTP/1.1") || head.starts_with("GET /n HTTP/1.1"), "{head}");
    let auth = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("authorization:"))
        .unwrap_or_else(|| panic!("no authorization header in:\n{}", lower));
    assert!(auth.contains("Signature "), "{auth}");
    assert!(auth.contains(&format!("keyId=\"ST${token}\"")), "{auth}");
    assert!(auth.contains("algorithm=\"rsa-sha256\""), "{auth}");
}
