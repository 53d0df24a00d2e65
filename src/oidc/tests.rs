use super::mock::{MockServer, Recorded, Reply};
use super::*;
use crate::http::HttpOptions;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Mutex;

const CLIENT_SECRET: &str = "auth-client-secret-S3CR3T";
const REFRESH: &str = "refresh-token-RT-0123456789";
const ACCESS: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.access-sig-ZXCV";
const CODE: &str = "auth-code-123";

fn http() -> Http {
    Http::new(HttpOptions { attempts: 3, backoff: Duration::from_millis(1), ..Default::default() }).unwrap()
}

fn cfg(server: &MockServer, secret: Option<&str>) -> IdpConfig {
    IdpConfig {
        authorize_url: server.url("/oauth2/v1/authorize"),
        token_url: server.url("/oauth2/v1/token"),
        client_id: "woci-cli".into(),
        client_secret: secret.map(SecretString::from),
        scopes: vec!["openid".into(), "offline_access".into()],
        redirect_port: Some(0),
        reuse_grace: std::time::Duration::ZERO,
    }
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

async fn refresh_with(
    reply: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
) -> (MockServer, Result<IdpTokens>) {
    let server = MockServer::start(reply).await;
    let r = refresh(&http(), &cfg(&server, Some(CLIENT_SECRET)), &SecretString::from(REFRESH)).await;
    (server, r.map_err(|f| f.error))
}

// ---------------------------------------------------------------------------------------------
// refresh

#[tokio::test]
async fn refresh_sends_the_python_form_with_basic_auth() {
    let (server, r) = refresh_with(|_, _| {
        Reply::json(200, json!({"access_token": ACCESS, "token_type": "Bearer", "expires_in": 3600}))
    })
    .await;
    let tokens = r.unwrap();
    assert_eq!(tokens.access_token.expose(), ACCESS);
    assert!(tokens.refresh_token.is_none());
    assert!(tokens.refresh_expires_in.is_none());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/oauth2/v1/token");
    assert_eq!(req.header("content-type").as_deref(), Some("application/x-www-form-urlencoded"));
    // base64("woci-cli:auth-client-secret-S3CR3T")
    assert_eq!(req.header("authorization").as_deref(), Some("Basic d29jaS1jbGk6YXV0aC1jbGllbnQtc2VjcmV0LVMzQ1IzVA=="));
    assert_eq!(
        req.form(),
        pairs(&[("grant_type", "refresh_token"), ("refresh_token", REFRESH), ("client_id", "woci-cli")])
    );
    assert!(req.form_value("scope").is_none(), "the Python woci sends no scope on refresh");
}

#[tokio::test]
async fn refresh_of_a_public_client_sends_no_authorization() {
    let server = MockServer::start(|_, _| Reply::json(200, json!({"access_token": ACCESS}))).await;
    refresh(&http(), &cfg(&server, None), &SecretString::from(REFRESH)).await.unwrap();
    let req = &server.requests()[0];
    assert_eq!(req.header("authorization"), None);
    assert_eq!(req.form_value("client_id").as_deref(), Some("woci-cli"));
}

#[tokio::test]
async fn refresh_returns_rotated_refresh_token_and_its_lifetime() {
    let (_s, r) = refresh_with(|_, _| {
        Reply::json(200, json!({"access_token": ACCESS, "refresh_token": "rt-rotated", "refresh_expires_in": 86400}))
    })
    .await;
    let t = r.unwrap();
    assert_eq!(t.refresh_token.unwrap().expose(), "rt-rotated");
    assert_eq!(t.refresh_expires_in, Some(Duration::from_secs(86400)));
}

#[tokio::test]
async fn invalid_grant_means_log_in_again() {
    let (server, r) = refresh_with(|_, _| {
        Reply::json(400, json!({"error": "invalid_grant", "error_description": "refresh token expired"}))
    })
    .await;
    let err = r.unwrap_err();
    assert!(err.needs_login(), "{err:?}");
    assert!(
        matches!(&err, Error::IdpRejected { what: "refresh token", error, description: Some(d) } if error == "invalid_grant" && d == "refresh token expired"),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), crate::error::exit::IDP_REJECTED);
    assert_eq!(server.requests().len(), 1, "4xx is not retried");
}

#[tokio::test]
async fn invalid_client_is_rejected_without_login_hint() {
    let (_s, r) = refresh_with(|_, _| Reply::json(401, json!({"error": "invalid_client"}))).await;
    let err = r.unwrap_err();
    assert!(!err.needs_login());
    assert!(matches!(&err, Error::IdpRejected { error, .. } if error == "invalid_client"), "{err:?}");
    assert!(err.to_string().contains("auth_client_secret"), "{err}");
}

#[tokio::test]
async fn a_server_error_after_the_grant_was_sent_is_resent_only_within_the_reuse_grace() {
    let flaky = |_: &_, n: usize| {
        if n == 0 {
            Reply::text(500, "temporarily broken")
        } else {
            Reply::json(200, json!({"access_token": ACCESS}))
        }
    };
    // Without a grace the refresh token may be spent: it is not sent again.
    let (server, r) = refresh_with(flaky).await;
    assert!(r.unwrap_err().is_transient());
    assert_eq!(server.requests().len(), 1);
    // Within the IdP's reuse grace one resend is safe.
    let server = MockServer::start(flaky).await;
    let mut c = cfg(&server, Some(CLIENT_SECRET));
    c.reuse_grace = Duration::from_secs(60);
    refresh(&http(), &c, &SecretString::from(REFRESH)).await.unwrap();
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn persistent_server_error_is_a_network_error() {
    let server = MockServer::start(|_, _| Reply::text(502, "bad gateway")).await;
    let mut c = cfg(&server, Some(CLIENT_SECRET));
    c.reuse_grace = Duration::from_secs(60);
    let err = refresh(&http(), &c, &SecretString::from(REFRESH)).await.unwrap_err().error;
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(server.requests().len(), 2, "one resend within the grace, never more");
}

#[tokio::test]
async fn malformed_json_is_a_protocol_error() {
    let (_s, r) = refresh_with(|_, _| Reply::json(200, json!({"token_type": "Bearer"}))).await;
    let err = r.unwrap_err();
    assert!(matches!(err, Error::Protocol { service: "identity provider", .. }), "{err:?}");
    assert!(err.to_string().contains("`access_token`"), "{err}");
}

/// A refresh grant's 2xx answer woci cannot use still tells what became of the refresh token:
/// one it carries is handed back to be kept (the IdP acted on the grant, so the one sent is
/// spent); one without any is a non-rotating IdP's (the stored one stands); one too broken to
/// tell counts as a lost answer, so `--status` and the next call know the stored one is
/// probably spent.
#[tokio::test]
async fn an_unusable_grant_answer_keeps_or_accounts_for_the_rotated_refresh_token() {
    let rotated = "rt-ROTATED-0123456789";
    for (body, keeps, lost) in [
        (
            json!({"access_token": "opaque", "refresh_token": rotated, "refresh_expires_in": 600}).to_string(),
            true,
            false,
        ),
        (json!({"access_token": null, "refresh_token": rotated}).to_string(), true, false),
        (format!("\u{feff}{}", json!({"access_token": 5, "refresh_token": rotated})), true, false),
        (json!({"access_token": "opaque"}).to_string(), false, false),
        (json!({"access_token": "a.b.c", "refresh_token": 12345}).to_string(), false, true),
        ("{\"access_token\": ".to_owned(), false, true),
        (String::new(), false, true),
    ] {
        let gives_lifetime = body.contains("refresh_expires_in");
        let server = MockServer::start(move |_, _| Reply::text(200, &body)).await;
        let failure = refresh(&http(), &cfg(&server, Some(CLIENT_SECRET)), &SecretString::from(REFRESH)).await;
        let failure = failure.unwrap_err();
        assert_eq!(failure.rotated.as_ref().map(|(t, _)| t.expose().as_str()), keeps.then_some(rotated));
        // The lifetime the same answer gave is kept with it (for `on_expiring` and `--status`).
        let lifetime = failure.rotated.as_ref().and_then(|(_, l)| *l);
        assert_eq!(lifetime, gives_lifetime.then_some(Duration::from_secs(600)));
        assert_eq!(matches!(failure.error, Error::ReplyLost { .. }), lost, "{}", failure.error);
        assert!(!failure.error.to_string().contains(rotated), "{}", failure.error);
    }
}

#[tokio::test]
async fn non_oauth_4xx_is_summarized() {
    let (_s, r) = refresh_with(|_, _| Reply::text(404, "<html>no such page</html>")).await;
    let err = r.unwrap_err();
    assert!(matches!(&err, Error::IdpRejected { error, .. } if error == "HTTP 404"), "{err:?}");
    assert!(!err.to_string().contains("no such page"));
}

#[tokio::test]
async fn opaque_access_token_is_rejected_with_a_hint() {
    let (_s, r) = refresh_with(|_, _| Reply::json(200, json!({"access_token": "00Dxx0000001gPL!opaque"}))).await;
    let err = r.unwrap_err();
    assert!(matches!(err, Error::Protocol { .. }));
    let msg = err.to_string();
    assert!(msg.contains("JWT access tokens") && msg.contains("Okta"), "{msg}");
    assert!(!msg.contains("00Dxx0000001gPL"), "{msg}");
}

#[tokio::test]
async fn no_secret_appears_in_any_refresh_error() {
    let replies = vec![
        Reply::json(400, json!({"error": "invalid_grant", "error_description": format!("token {REFRESH} revoked")})),
        Reply::json(
            401,
            json!({"error": "invalid_client", "error_description": format!("secret {CLIENT_SECRET} wrong")}),
        ),
        Reply::text(400, &format!("refresh_token={REFRESH}&secret={CLIENT_SECRET}")),
        Reply::text(200, &format!("{{\"access_token\": \"{ACCESS}\"")),
        Reply::json(200, json!({"access_token": format!("{REFRESH}{CLIENT_SECRET}")})),
        Reply::text(503, &format!("{REFRESH} {CLIENT_SECRET} {ACCESS}")),
        Reply::redirect(&format!("https://idp.example/?{REFRESH}")),
    ];
    for reply in replies {
        let (_s, r) = refresh_with(move |_, _| reply.clone()).await;
        let err = r.unwrap_err();
        let shown = format!("{err} | {err:?}");
        for secret in [REFRESH, CLIENT_SECRET, ACCESS, "access-sig-ZXCV"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// login

#[derive(Clone, Copy, PartialEq)]
enum Idp {
    Good,
    WrongState,
    Denied,
    NoRefreshToken,
}

/// A mock IdP: `/authorize` redirects to the request's `redirect_uri` like a real IdP after the
/// user logged in; `/token` checks the code, the redirect URI and the PKCE verifier.
async fn mock_idp(mode: Idp) -> MockServer {
    let challenge: Arc<Mutex<Option<String>>> = Arc::default();
    MockServer::start(move |req, _| match req.path.as_str() {
        "/oauth2/v1/authorize" => {
            *challenge.lock().unwrap() = req.query_value("code_challenge");
            let redirect = req.query_value("redirect_uri").unwrap();
            let state = req.query_value("state").unwrap();
            let query = match mode {
                Idp::WrongState => format!("code={CODE}&state=forged"),
                // RFC 6749 §4.1.2.1: the error response carries the request's `state` too.
                Idp::Denied => format!("error=access_denied&error_description=User+denied+the+request&state={state}"),
                _ => format!("code={CODE}&state={state}"),
            };
            Reply::redirect(&format!("{redirect}?{query}"))
        }
        "/oauth2/v1/token" => {
            let verifier = req.form_value("code_verifier").unwrap_or_default();
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            let ok = req.form_value("grant_type").as_deref() == Some("authorization_code")
                && req.form_value("code").as_deref() == Some(CODE)
                && challenge.lock().unwrap().as_deref() == Some(computed.as_str())
                && req
                    .form_value("redirect_uri")
                    .is_some_and(|r| r.starts_with("http://127.0.0.1:") && r.ends_with("/callback"));
            if !ok {
                return Reply::json(
                    400,
                    json!({"error": "invalid_grant", "error_description": "bad code or verifier"}),
                );
            }
            if mode == Idp::NoRefreshToken {
                Reply::json(200, json!({"access_token": ACCESS, "token_type": "Bearer"}))
            } else {
                Reply::json(200, json!({"access_token": ACCESS, "refresh_token": REFRESH, "token_type": "Bearer"}))
            }
        }
        _ => Reply::text(404, "not found"),
    })
    .await
}

type Seen = Arc<Mutex<Vec<(u16, String)>>>;

/// A test "browser": optionally GETs some stray path on the callback server first, then the
/// authorization URL, and follows the IdP's redirect to the callback. Records what the callback
/// server answered.
fn test_browser(seen: Seen, stray_first: bool) -> UrlHook {
    Arc::new(move |url: &Url| {
        let url = url.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
            let resp = c.get(url).send().await.unwrap();
            let location = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
            if stray_first {
                let stray = location.join("/favicon.ico").unwrap();
                let r = c.get(stray).send().await.unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                seen.lock().unwrap().push((status, text));
            }
            let r = c.get(location).send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            seen.lock().unwrap().push((status, text));
        });
    })
}

fn opts(hook: Option<UrlHook>, timeout: Duration) -> LoginOptions {
    LoginOptions {
        open_browser: true,
        // Must never run: the hook replaces the browser.
        browser_command: Some("/nonexistent/woci-test-browser".into()),
        timeout,
        interactive: true,
        profile: "myprofile".into(),
        selection: "--profile myprofile".into(),
        on_url: hook,
        hide_env: Vec::new(),
    }
}

#[tokio::test]
async fn login_happy_path_with_pkce_and_state() {
    let idp = mock_idp(Idp::Good).await;
    let seen: Seen = Arc::default();
    let tokens = login(
        &http(),
        &cfg(&idp, Some(CLIENT_SECRET)),
        &opts(Some(test_browser(seen.clone(), true)), Duration::from_secs(20)),
    )
    .await
    .unwrap();
    assert_eq!(tokens.access_token.expose(), ACCESS);
    assert_eq!(tokens.refresh_token.unwrap().expose(), REFRESH);

    let reqs = idp.requests();
    let authz = reqs.iter().find(|r| r.path == "/oauth2/v1/authorize").unwrap();
    assert_eq!(authz.query_value("response_type").as_deref(), Some("code"));
    assert_eq!(authz.query_value("client_id").as_deref(), Some("woci-cli"));
    assert_eq!(authz.query_value("scope").as_deref(), Some("openid offline_access"));
    assert_eq!(authz.query_value("code_challenge_method").as_deref(), Some("S256"));
    assert!(authz.query_value("state").is_some_and(|s| s.len() >= 16));
    let redirect_uri = authz.query_value("redirect_uri").unwrap();

    let token_req = reqs.iter().find(|r| r.path == "/oauth2/v1/token").unwrap();
    let form = token_req.form();
    let keys: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["grant_type", "code", "redirect_uri", "client_id", "code_verifier"]);
    assert_eq!(token_req.form_value("redirect_uri"), Some(redirect_uri));
    assert_eq!(token_req.form_value("client_id").as_deref(), Some("woci-cli"));
    assert!(token_req.header("authorization").is_some_and(|a| a.starts_with("Basic ")));

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, 404, "stray paths get 404 and the wait goes on");
    assert_eq!(seen[1].0, 200);
    assert!(seen[1].1.contains("close this window"), "{}", seen[1].1);
}

#[tokio::test]
async fn login_state_mismatch_is_ignored_until_the_timeout() {
    let idp = mock_idp(Idp::WrongState).await;
    let seen: Seen = Arc::default();
    let err =
        login(&http(), &cfg(&idp, None), &opts(Some(test_browser(seen.clone(), false)), Duration::from_millis(1500)))
            .await
            .unwrap_err();
    assert!(matches!(&err, Error::Login(m) if m.starts_with("no login completed")), "{err:?}");
    assert!(idp.requests().iter().all(|r| r.path != "/oauth2/v1/token"), "no code redemption after a mismatch");
    assert_eq!(seen.lock().unwrap().first().map(|s| s.0), Some(400));
}

/// A stale tab's `error=` (and a forged code) hit the callback while a login is in progress: they
/// get 400 and the real redirect still completes the login.
#[tokio::test]
async fn stray_callbacks_do_not_abort_a_login_in_progress() {
    let idp = mock_idp(Idp::Good).await;
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    let hook: UrlHook = Arc::new(move |url: &Url| {
        let url = url.clone();
        let seen = seen2.clone();
        tokio::spawn(async move {
            let c = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
            let resp = c.get(url).send().await.unwrap();
            let location = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
            for stray in
                ["/callback?error=access_denied&state=old-tab", "/callback?error=login_required", "/callback?code=x"]
            {
                let r = c.get(location.join(stray).unwrap()).send().await.unwrap();
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                seen.lock().unwrap().push((status, text));
            }
            let r = c.get(location).send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            seen.lock().unwrap().push((status, text));
        });
    });
    let tokens = login(&http(), &cfg(&idp, None), &opts(Some(hook), Duration::from_secs(20))).await.unwrap();
    assert_eq!(tokens.access_token.expose(), ACCESS);
    let statuses: Vec<u16> = seen.lock().unwrap().iter().map(|s| s.0).collect();
    assert_eq!(statuses, [400, 400, 400, 200]);
}

#[tokio::test]
async fn login_access_denied_is_reported() {
    let idp = mock_idp(Idp::Denied).await;
    let err =
        login(&http(), &cfg(&idp, None), &opts(Some(test_browser(Arc::default(), false)), Duration::from_secs(20)))
            .await
            .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Login(_)));
    assert!(msg.contains("access_denied") && msg.contains("User denied the request"), "{msg}");
    assert!(msg.ends_with("run `woci session authenticate --profile myprofile` to try again"), "{msg}");
}

#[tokio::test]
async fn login_without_refresh_token_names_offline_access() {
    let idp = mock_idp(Idp::NoRefreshToken).await;
    let err =
        login(&http(), &cfg(&idp, None), &opts(Some(test_browser(Arc::default(), false)), Duration::from_secs(20)))
            .await
            .unwrap_err();
    assert!(err.to_string().contains("offline_access"), "{err}");
}

#[tokio::test]
async fn login_times_out() {
    let idp = mock_idp(Idp::Good).await;
    let nothing: UrlHook = Arc::new(|_| {});
    let started = std::time::Instant::now();
    let err = login(&http(), &cfg(&idp, None), &opts(Some(nothing), Duration::from_millis(300))).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(&err, Error::Login(m) if m.starts_with("no login completed within 1s")), "{err:?}");
    assert_eq!(err.exit_code(), crate::error::exit::LOGIN);
}

#[tokio::test]
async fn a_browser_login_without_a_redirect_port_says_what_to_set() {
    let idp = mock_idp(Idp::Good).await;
    let mut c = cfg(&idp, None);
    c.redirect_port = None;
    let err = login(&http(), &c, &opts(None, Duration::from_secs(5))).await.unwrap_err();
    assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
    let msg = err.to_string();
    assert!(msg.contains("`redirect_port`") && msg.contains("--device-code"), "{msg}");
}

#[tokio::test]
async fn login_port_in_use_names_the_port_and_setting() {
    let idp = mock_idp(Idp::Good).await;
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut c = cfg(&idp, None);
    c.redirect_port = Some(port);
    let called = Arc::new(Mutex::new(false));
    let flag = called.clone();
    let hook: UrlHook = Arc::new(move |_| *flag.lock().unwrap() = true);
    let err = login(&http(), &c, &opts(Some(hook), Duration::from_secs(5))).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(msg.contains(&format!("127.0.0.1:{port}")) && msg.contains("`redirect_port`"), "{msg}");
    assert!(msg.contains("another program"), "{msg}");
    assert!(!*called.lock().unwrap(), "no URL is shown before the listener is bound");
}

/// Two profiles sharing `redirect_port` (from `[COMMON]`) log in at once: the second waits for the
/// first's listener to go, then logs in itself.
#[tokio::test]
async fn a_login_waits_for_another_woci_login_on_its_port() {
    let idp = mock_idp(Idp::Good).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut c = cfg(&idp, None);
    c.redirect_port = Some(port);
    let seen: Seen = Arc::default();
    let browser = test_browser(seen.clone(), false);
    // The first person takes 1.5 s in the browser.
    let slow: UrlHook = Arc::new(move |url: &Url| {
        let (url, browser) = (url.clone(), browser.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            browser(&url);
        });
    });
    let (c1, o1) = (c.clone(), opts(Some(slow), Duration::from_secs(20)));
    let first = tokio::spawn(async move { login(&http(), &c1, &o1).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let second = login(&http(), &c, &opts(Some(test_browser(seen.clone(), false)), Duration::from_secs(20))).await;
    assert!(started.elapsed() >= Duration::from_millis(900), "the second login waited for the port");
    assert_eq!(second.unwrap().refresh_token.unwrap().expose(), REFRESH);
    assert_eq!(first.await.unwrap().unwrap().refresh_token.unwrap().expose(), REFRESH);
}

#[tokio::test]
async fn login_refuses_when_not_interactive() {
    let idp = mock_idp(Idp::Good).await;
    let called = Arc::new(Mutex::new(false));
    let flag = called.clone();
    let hook: UrlHook = Arc::new(move |_| *flag.lock().unwrap() = true);
    let mut o = opts(Some(hook), Duration::from_secs(5));
    o.interactive = false;
    let err = login(&http(), &cfg(&idp, None), &o).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Login(_)));
    assert!(msg.contains("`myprofile`") && msg.contains("woci session authenticate"), "{msg}");
    assert!(!*called.lock().unwrap());
    assert!(idp.requests().is_empty());
}

/// A login whose IdP redirects with `code` and answers its redemption with `redeemed`.
async fn login_redeemed_with(code: &'static str, redeemed: Reply) -> Error {
    let server = MockServer::start(move |req, _| match req.path.as_str() {
        "/oauth2/v1/authorize" => {
            let redirect = req.query_value("redirect_uri").unwrap();
            let state = req.query_value("state").unwrap();
            Reply::redirect(&format!("{redirect}?code={code}&state={state}"))
        }
        _ => redeemed.clone(),
    })
    .await;
    login(&http(), &cfg(&server, None), &opts(Some(test_browser(Arc::default(), false)), Duration::from_secs(20)))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn login_code_rejected_by_token_endpoint() {
    // The IdP redirects with a code the token endpoint does not accept.
    let refusal = json!({"error": "invalid_grant", "error_description": "code stale was used"});
    let err = login_redeemed_with("stale", Reply::json(400, refusal)).await;
    let Error::Hinted { source, hint } = &err else { panic!("{err:?}") };
    assert!(matches!(**source, Error::IdpRejected { what: "authorization code", .. }), "{err:?}");
    assert!(hint.contains("run `woci session authenticate"), "with the way on: {err}");
    assert!(!err.to_string().contains("stale"), "the code itself is scrubbed: {err}");
}

/// A failing IdP (HTTP 503) at the code redemption: said as the login's code, not as a refresh
/// token's grant (round 79 F4).
#[tokio::test]
async fn login_code_redemption_failing_names_the_code() {
    let err = login_redeemed_with(CODE, Reply::json(503, json!({"error": "temporarily_unavailable"}))).await;
    let msg = err.to_string();
    assert_eq!(err.exit_code(), crate::error::exit::NETWORK, "{msg}");
    assert!(msg.contains("the login's code was sent") && msg.contains("run `woci session authenticate"), "{msg}");
    assert!(!msg.contains("refresh token"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// pieces

#[test]
fn callback_handler_classifies_requests() {
    let h = callback::handle("/favicon.ico", None, "st");
    assert_eq!(h.status.as_u16(), 404);
    assert!(h.outcome.is_none());
    let h = callback::handle("/callback", Some("code=abc&state=st"), "st");
    assert_eq!(h.status.as_u16(), 200);
    assert_eq!(h.outcome.unwrap().unwrap().expose(), "abc");
    for stray in ["code=abc", "code=abc&state=other", "error=access_denied", "error=access_denied&state=old", "state="]
    {
        let h = callback::handle("/callback", Some(stray), "st");
        assert_eq!(h.status.as_u16(), 400, "{stray}");
        assert!(h.outcome.is_none(), "{stray}: a request without the right state does not end the wait");
    }
    let h = callback::handle("/callback", Some("state=st"), "st");
    assert!(matches!(h.outcome, Some(Err(Error::Login(m))) if m.contains("no authorization code")));
    let h = callback::handle("/callback", Some("error=login_required%0Aevil&state=st"), "st");
    assert!(
        matches!(h.outcome, Some(Err(Error::Login(m))) if m.contains("login_required\\nevil") && !m.contains('\n'))
    );
}

#[test]
fn browser_launch_failure_is_reported_not_fatal() {
    let url = Url::parse("http://127.0.0.1:1/x").unwrap();
    let err = browser::launch(Some(std::ffi::OsStr::new("/nonexistent/woci-browser")), &url, &[]).unwrap_err();
    assert!(err.contains("/nonexistent/woci-browser"), "{err}");
}

#[test]
fn browser_gets_the_url_as_its_only_argument() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("args");
    let script = dir.path().join("browser.sh");
    std::fs::write(&script, format!("#!/bin/sh\nprintf '%s\\n' \"$#\" \"$1\" > '{}'\n", out.display())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let url = Url::parse("http://127.0.0.1:1/authorize?a=1&b=two words;$(id)").unwrap();
    browser::launch(Some(script.as_os_str()), &url, &[]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !out.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    let got = std::fs::read_to_string(&out).unwrap();
    assert_eq!(got, format!("1\n{}\n", url.as_str()));
}

/// `BROWSER` as Python's `webbrowser` reads it (what `oci session authenticate` honours): a
/// `:`-separated list tried in order, `%s` in a command line replaced by the URL.
#[test]
fn browser_lists_and_placeholders_as_pythons_webbrowser_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("args");
    let script = dir.path().join("br.sh");
    std::fs::write(&script, format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", out.display())).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let url = Url::parse("http://127.0.0.1:1/authorize?a=1").unwrap();
    let browser = format!("/nonexistent/first:{} --new-window %s", script.display());
    browser::launch(Some(std::ffi::OsStr::new(&browser)), &url, &[]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !out.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), format!("--new-window\n{}\n", url.as_str()));
    let err = browser::launch(Some(std::ffi::OsStr::new("/nonexistent/a:/nonexistent/b %s")), &url, &[]).unwrap_err();
    assert!(err.contains("/nonexistent/a") && err.contains("/nonexistent/b"), "{err}");
}

#[test]
fn scrub_removes_secrets_and_control_characters() {
    assert_eq!(scrub("bad abcd1234 here\r\n", &["abcd1234"]), "bad [redacted] here");
    assert_eq!(scrub(&"x".repeat(400), &[]).chars().count(), 301);
}
