//! The executor through the HTTP trait: real files in a temporary home, scripted answers from
//! the IdP and the token exchange, no sockets.

use super::*;
use crate::clock::ManualClock;
use crate::error::exit;
use crate::http::fake::FakeTransport;
use crate::http::Failure;
use crate::settings::Env;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use std::collections::HashMap;

const NOW: u64 = 1_800_000_000;

fn jwt(payload: serde_json::Value) -> String {
    format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(payload.to_string()))
}

fn upst(exp: u64) -> String {
    jwt(json!({"exp": exp, "iat": exp - 3600, "sub": "ocid1.user.oc1..u", "tenant": "ocid1.tenancy.oc1..t"}))
}

struct World {
    home: tempfile::TempDir,
    clock: ManualClock,
}

impl World {
    fn new(ini_extra: &str) -> World {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join(".oci")).unwrap();
        std::fs::write(
            home.path().join(".oci/woci_manager.ini"),
            format!(
                "[P]\nauthz_base_url = https://idp.example/authorize\ntoken_url = https://idp.example/token\n\
                 token_exchange_url = https://domain.example/oauth2/v1/token\nauth_client_id = app\n\
                 client_id = wif\nclient_secret = wif-secret\nscope = openid offline_access\nredirect_port = 8181\n{ini_extra}"
            ),
        )
        .unwrap();
        World { home, clock: ManualClock::at(NOW) }
    }

    fn settings(&self, args: &[&str]) -> Settings {
        self.settings_in(args, &HashMap::new())
    }

    /// [`Self::settings`] with these variables too.
    fn settings_in(&self, args: &[&str], vars: &HashMap<String, String>) -> Settings {
        let mut env = vars.clone();
        env.insert("HOME".to_owned(), self.home.path().display().to_string());
        let mut all = vec!["--profile", "P"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["os", "ns", "get"]);
        let inv = crate::cli::parse(all.iter().map(Into::into).collect()).unwrap();
        // Tests never have a person to log in (whatever the terminal says).
        let mut s = Settings::resolve(&inv.flags, &inv.oci, &env, false).unwrap();
        if let crate::settings::RenewMode::Login(c) = &mut s.mode {
            c.interactive = false;
        }
        s
    }

    fn renewer(&self, transport: Arc<FakeTransport>) -> Renewer {
        self.renewer_with(&[], transport)
    }

    fn renewer_with(&self, args: &[&str], transport: Arc<FakeTransport>) -> Renewer {
        Renewer::new(&self.context(args)).with_transport(transport)
    }

    fn context(&self, args: &[&str]) -> Context {
        Context::new(self.settings(args), Arc::new(self.clock.clone()), Env::new()).unwrap()
    }

    fn store(&self) -> SessionStore {
        SessionStore::new(self.home.path(), "P").unwrap()
    }

    fn write_token(&self, exp: u64) {
        self.store().write_token(&SecretString::from(upst(exp))).unwrap();
    }

    fn refresh_token(&self) -> Option<String> {
        self.store().read_refresh_token(None).unwrap().map(|t| t.expose().clone())
    }

    fn config(&self) -> String {
        std::fs::read_to_string(self.home.path().join(".oci/config")).unwrap_or_default()
    }
}

/// IdP and exchange that work: the refresh grant rotates `rt-N` to `rt-N+1`.
fn working() -> Arc<FakeTransport> {
    FakeTransport::new(|req, n| match req.url.path() {
        "/token" => Ok((
            200,
            json!({"access_token": jwt(json!({"sub": "u"})), "refresh_token": format!("rt-{}", n + 2)}).to_string(),
        )),
        "/oauth2/v1/token" => Ok((200, json!({"token": upst(NOW + 3600)}).to_string())),
        p => panic!("unexpected request to {p}"),
    })
}

#[tokio::test]
async fn a_valid_token_is_reused_without_any_request() {
    let w = World::new("");
    w.write_token(NOW + 3000);
    let t = working();
    let key = w.home.path().join(".oci/k.pem");
    std::fs::write(&key, crate::signer::tests::test_key().private_pem().unwrap().as_bytes()).unwrap();
    std::fs::write(
        w.home.path().join(".oci/config"),
        format!("[P]\nkey_file = {}\nsecurity_token_file = ~/.oci/sessions/P/token\nfingerprint = f\n", key.display()),
    )
    .unwrap();
    let s = w.renewer(t.clone()).ensure(Force::No).await.unwrap();
    assert_eq!(s.action, Action::Reused);
    assert!(t.seen().is_empty());
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token_exchanges_and_writes_token_and_config() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let t = working();
    let s = w.renewer(t.clone()).ensure(Force::No).await.unwrap();
    assert_eq!(s.action, Action::Refreshed);
    assert_eq!(s.claims.exp, (NOW + 3600) as i64);
    assert_eq!((t.count("/token"), t.count("/oauth2/v1/token")), (1, 1));
    let grant = &t.seen()[0];
    assert_eq!(grant.form_value("grant_type").as_deref(), Some("refresh_token"));
    assert_eq!(grant.form_value("refresh_token").as_deref(), Some("rt-1"));
    assert_eq!(grant.timeout, HttpOptions::default().rotating_timeout, "a refresh grant gets the generous timeout");
    let exchange = &t.seen()[1];
    assert_eq!(exchange.form_value("public_key"), Some(w.store().load_or_create_key(None).unwrap().0.spki_b64()));
    assert_eq!(w.refresh_token().as_deref(), Some("rt-2"));
    let config = w.config();
    for key in ["[P]", "key_file", "security_token_file", "fingerprint", "tenancy=ocid1.tenancy.oc1..t"] {
        assert!(config.contains(key), "{key} in {config}");
    }
    // The next call reuses it.
    let again = w.renewer(t.clone()).ensure(Force::No).await.unwrap();
    assert_eq!(again.action, Action::Reused);
    assert_eq!(t.seen().len(), 2);
}

#[tokio::test]
async fn a_token_written_without_its_config_is_completed_by_the_next_call_without_a_login() {
    let w = World::new("");
    // What a run killed between writing the token and the config leaves: key and token.
    let (key, _) = w.store().load_or_create_key(None).unwrap();
    w.write_token(NOW + 3000);
    assert!(w.config().is_empty());
    let t = working();
    let s = w.renewer(t.clone()).ensure(Force::No).await.unwrap();
    assert_eq!(s.action, Action::Reused);
    assert!(t.seen().is_empty(), "no network to finish a config");
    assert!(w.config().contains(&format!("fingerprint={}", key.fingerprint())), "{}", w.config());
    let ctx = w.context(&[]);
    assert!(SessionFacts::read(&ctx.settings, &ctx.store, facts::Peek::No).unwrap().config_current);

    // A token with no key pair beside it is no session: it is renewed, not completed.
    let w = World::new("");
    w.write_token(NOW + 3000);
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let s = w.renewer(working()).ensure(Force::No).await.unwrap();
    assert_eq!(s.action, Action::Refreshed);
}

#[tokio::test]
async fn a_failed_exchange_keeps_the_rotated_refresh_token_and_the_old_token() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    w.write_token(NOW + 30);
    let before = std::fs::read(w.store().token_path()).unwrap();
    let t = FakeTransport::new(|req, _| match req.url.path() {
        "/token" => Ok((200, json!({"access_token": jwt(json!({})), "refresh_token": "rt-2"}).to_string())),
        _ => Ok((400, json!({"error": "invalid_request", "error_description": "Invalid JWT"}).to_string())),
    });
    let err = w.renewer(t).ensure(Force::No).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::EXCHANGE_REJECTED);
    assert_eq!(w.refresh_token().as_deref(), Some("rt-2"), "the spent token's successor is kept");
    assert_eq!(std::fs::read(w.store().token_path()).unwrap(), before);
    let f = w.store().failure_since(0).expect("the failure is recorded for waiting callers");
    assert_eq!((f.exit_code, f.message), (exit::EXCHANGE_REJECTED, err.to_string()));
}

#[tokio::test]
async fn a_lost_refresh_reply_is_not_resent_without_a_reuse_grace() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let t = FakeTransport::new(|_, _| Err(Failure::Lost("connection reset".into())));
    let err = w.renewer(t.clone()).ensure(Force::No).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::NETWORK);
    assert_eq!(t.count("/token"), 1, "a sent refresh token is never sent twice by default");
    assert!(err.to_string().contains("refresh_token_reuse_grace"), "{err}");
    assert_eq!(w.refresh_token().as_deref(), Some("rt-1"));
}

#[tokio::test]
async fn within_the_reuse_grace_a_lost_reply_is_resent_once() {
    let w = World::new("refresh_token_reuse_grace = 60\n");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let t = FakeTransport::new(|req, n| match (req.url.path(), n) {
        ("/token", 0) => Err(Failure::Lost("timed out".into())),
        ("/token", _) => Ok((200, json!({"access_token": jwt(json!({})), "refresh_token": "rt-2"}).to_string())),
        _ => Ok((200, json!({"token": upst(NOW + 3600)}).to_string())),
    });
    let s = w.renewer(t.clone()).ensure(Force::No).await.unwrap();
    assert_eq!((s.action, t.count("/token")), (Action::Refreshed, 2));
    assert_eq!(w.refresh_token().as_deref(), Some("rt-2"));
}

#[tokio::test]
async fn a_refused_refresh_token_needs_a_login_which_a_non_interactive_call_refuses() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let t = FakeTransport::new(|_, _| Ok((400, json!({"error": "invalid_grant"}).to_string())));
    let err = w.renewer(t.clone()).ensure(Force::No).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::LOGIN);
    assert!(err.to_string().contains("no terminal"), "{err}");
    assert_eq!(t.count("/token"), 1);
}

/// A login asked for (`session authenticate`) that cannot happen here is not what the next call
/// meets: the stored refresh token is untouched, so no failure is recorded for it.
#[tokio::test]
async fn a_forced_login_without_a_terminal_records_no_failure() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let t = working();
    let err = w.renewer(t.clone()).ensure(Force::Login).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::LOGIN, "{err}");
    assert!(t.seen().is_empty());
    assert!(w.store().failure_since(0).is_none(), "no failure recorded");
    assert_eq!(w.renewer(t).ensure(Force::No).await.unwrap().action, Action::Refreshed);
}

#[tokio::test]
async fn a_failed_renewal_keeps_a_token_that_still_has_minutes_left() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    w.write_token(NOW + 300);
    let t = FakeTransport::new(|_, _| Err(Failure::NotSent("connection refused".into())));
    // The auto-refresh window (600 s) makes a 5-minute token due for renewal.
    let r = w.renewer_with(&["--refresh-safety-window", "600"], t.clone());
    assert_eq!(r.ensure(Force::No).await.unwrap_err().exit_code(), exit::NETWORK);
    let kept = r.ensure_or_keep().await.unwrap();
    assert_eq!(kept.action, Action::KeptAfterFailure);
    // Less than a minute left: the failure stands.
    w.write_token(NOW + 50);
    assert_eq!(r.ensure_or_keep().await.unwrap_err().exit_code(), exit::NETWORK);
    // Minutes left, but bound to another key than the profile's (it was replaced): OCI would
    // refuse it, so the failure stands too.
    let (key, _) = w.store().load_or_create_key(None).unwrap();
    let other = crate::keys::KeyPair::generate().unwrap();
    let jwk = |k: &crate::keys::KeyPair| {
        use rsa::traits::PublicKeyParts;
        let b64 = |n: rsa::BigUint| URL_SAFE_NO_PAD.encode(n.to_bytes_be());
        json!({"kty": "RSA", "n": b64(k.public().n().clone()), "e": b64(k.public().e().clone())}).to_string()
    };
    assert_ne!(jwk(&key), jwk(&other));
    let bound = jwt(json!({"exp": NOW + 300, "iat": NOW - 3300, "jwk": jwk(&other)}));
    w.store().write_token(&SecretString::from(bound)).unwrap();
    assert_eq!(r.ensure_or_keep().await.unwrap_err().exit_code(), exit::NETWORK);
}

#[tokio::test]
async fn a_named_but_missing_key_file_is_an_error_not_a_new_key() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let config = w.home.path().join(".oci/config");
    std::fs::write(&config, "[P]\nkey_file = ~/.oci/gone.pem\n").unwrap();
    let t = working();
    let err = w.renewer(t.clone()).ensure(Force::No).await.unwrap_err();
    assert_eq!(err.exit_code(), exit::CONFIG);
    assert!(err.to_string().contains("gone.pem"), "{err}");
    assert!(t.seen().is_empty(), "nothing spent");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), "[P]\nkey_file = ~/.oci/gone.pem\n");
    assert_eq!(w.refresh_token().as_deref(), Some("rt-1"));
}

/// Profile `S` of `w`, with no IdP section: it renews through the OCI auth service. Its token
/// expires at `exp`; the auth service's answers come from `t`.
fn session_refresh_renewer(w: &World, exp: u64, t: Arc<FakeTransport>) -> (Renewer, std::path::PathBuf) {
    let key = crate::signer::tests::test_key();
    let key_path = w.home.path().join(".oci/s_key.pem");
    std::fs::write(&key_path, key.private_pem().unwrap().as_bytes()).unwrap();
    let token_path = w.home.path().join(".oci/s_token");
    std::fs::write(&token_path, upst(exp)).unwrap();
    std::fs::write(
        w.home.path().join(".oci/config"),
        format!(
            "[S]\nkey_file = {}\nsecurity_token_file = {}\nregion = us-ashburn-1\n",
            key_path.display(),
            token_path.display()
        ),
    )
    .unwrap();
    let env: HashMap<String, String> = [("HOME".to_owned(), w.home.path().display().to_string())].into();
    let inv = crate::cli::parse(["--profile", "S", "os", "ns", "get"].iter().map(Into::into).collect()).unwrap();
    let settings = Settings::resolve(&inv.flags, &inv.oci, &env, false).unwrap();
    let ctx = Context::new(settings, Arc::new(w.clock.clone()), Env::new()).unwrap();
    (Renewer::new(&ctx).with_transport(t), token_path)
}

/// A server's fault met by a session refresh is its region's auth service's: another region is
/// another server, so the record no longer holds for it (round 105's review).
#[test]
fn a_session_refresh_outage_is_its_regions() {
    let w = World::new("");
    let (r, _) = session_refresh_renewer(&w, NOW + 30, working());
    let digest = || failure_inputs(&r.settings, &r.store, &Env::new(), Met::ServerFault);
    let before = digest();
    let config = w.home.path().join(".oci/config");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("us-ashburn-1", "us-phoenix-1")).unwrap();
    assert_ne!(digest(), before);
}

#[tokio::test]
async fn session_refresh_profiles_renew_through_the_auth_service() {
    let w = World::new("");
    let t = FakeTransport::new(|req, _| {
        assert_eq!(req.url.as_str(), "https://auth.us-ashburn-1.oraclecloud.com/v1/authentication/refresh");
        Ok((200, json!({"token": upst(NOW + 3600)}).to_string()))
    });
    let (r, token_path) = session_refresh_renewer(&w, NOW + 30, t.clone());
    let s = r.ensure(Force::No).await.unwrap();
    assert_eq!(s.action, Action::SessionRefreshed);
    assert_eq!(std::fs::read_to_string(&token_path).unwrap(), upst(NOW + 3600));
    assert_eq!(t.seen().len(), 1);
}

/// This machine's clock 2m30s ahead: a token it calls expired a minute ago still has 90 s by
/// OCI's clock, which OCI refreshes it by: refreshed, not a login asked for.
#[tokio::test]
async fn a_session_oci_still_refreshes_is_refreshed_with_a_clock_ahead() {
    let w = World::new("");
    let store = SessionStore::new(w.home.path(), "S").unwrap();
    store.ensure_dir().unwrap();
    store.write_skew(&crate::clock::Skew { offset_ms: -150_000, boot: None });
    let t = FakeTransport::new(|_, _| Ok((200, json!({"token": upst(NOW - 150 + 3600)}).to_string())));
    let (r, _) = session_refresh_renewer(&w, NOW - 60, t.clone());
    let s = r.ensure(Force::No).await.unwrap();
    assert_eq!((s.action, t.seen().len()), (Action::SessionRefreshed, 1));
}

#[test]
fn a_rescued_refresh_token_is_used_and_moved_back() {
    let w = World::new("");
    let tmp = tempfile::tempdir().unwrap();
    let store = w.store().with_temp_dir(tmp.path());
    store.write_refresh_token(&SecretString::from("rt-old"), None).unwrap();
    let rescue = store.write_rescue(&SecretString::from("rt-new"), None).unwrap();
    assert_eq!(store.read_refresh_token(None).unwrap().unwrap().expose(), "rt-new");
    assert!(!rescue.exists(), "moved back into the session folder");
    assert_eq!(store.read_refresh_token(None).unwrap().unwrap().expose(), "rt-new");
}

/// The renewal counts in the session folder (`metrics`), by result.
fn counted(w: &World) -> Vec<(String, u64)> {
    let Ok(bytes) = std::fs::read(w.store().dir().join(crate::metrics::STATE_FILE)) else { return Vec::new() };
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let mut out: Vec<(String, u64)> = v["renewals"]
        .as_object()
        .map(|m| m.iter().map(|(k, c)| (k.clone(), c["count"].as_u64().unwrap())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test]
async fn renewal_attempts_are_counted_once_and_nothing_else_is() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    w.renewer(working()).ensure(Force::No).await.unwrap();
    assert_eq!(counted(&w), [("ok".to_owned(), 1)]);
    // A valid token: no attempt.
    assert_eq!(w.renewer(working()).ensure(Force::No).await.unwrap().action, Action::Reused);
    assert_eq!(counted(&w), [("ok".to_owned(), 1)]);
    // A refused refresh token with no one to log in: `auth`.
    w.store().write_refresh_token_expiry(Some(4_102_444_800)).unwrap();
    let ends = |w: &World| {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(w.store().dir().join(crate::metrics::STATE_FILE)).unwrap()).unwrap();
        v["refresh_token_exp"].as_i64()
    };
    let refused = FakeTransport::new(|_, _| Ok((400, json!({"error": "invalid_grant"}).to_string())));
    let e = w.renewer(refused).ensure(Force::Renew).await.unwrap_err();
    assert_eq!(e.exit_code(), exit::LOGIN);
    // Its expiry is no end of the session any more (the metrics series goes).
    assert_eq!(ends(&w), None);
    // The refused one is remembered (the next call would need a login); a new one meets an
    // unreachable IdP: `network`.
    w.store().write_refresh_token(&SecretString::from("rt-2"), None).unwrap();
    let down = FakeTransport::new(|_, _| Err(Failure::NotSent("connection refused".into())));
    assert_eq!(w.renewer(down).ensure(Force::Renew).await.unwrap_err().exit_code(), exit::NETWORK);
    // An impossible plan (a refresh token no passphrase is configured for): `config`.
    w.store().write_refresh_token(&SecretString::from("rt-9"), Some(&SecretString::from("pass"))).unwrap();
    let e = w.renewer(working()).ensure(Force::Renew).await.unwrap_err();
    assert_eq!(e.exit_code(), exit::REFRESH_TOKEN_LOCKED);
    let expect: Vec<(String, u64)> =
        [("auth", 1), ("config", 1), ("network", 1), ("ok", 1)].iter().map(|(k, n)| ((*k).to_owned(), *n)).collect();
    assert_eq!(counted(&w), expect);
}

/// A refresh token that is a JWT tells its expiry; an opaque one does not.
#[test]
fn jwt_refresh_token_expiry() {
    let rt = SecretString::from(format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(r#"{"exp":1900000000}"#)));
    assert_eq!(facts::jwt_exp(&rt), Some(1_900_000_000));
    assert_eq!(facts::jwt_exp(&SecretString::from("opaque-refresh-token")), None);
}

#[test]
fn a_clock_more_than_a_minute_off_is_named_with_its_direction() {
    assert_eq!(clock_skew_warning(-50_000, "the token exchange's"), None);
    let ahead = clock_skew_warning(-7 * 60_000, "the token exchange's").unwrap();
    assert!(ahead.contains("is 7m00s ahead of the token exchange's") && ahead.contains("timedatectl"), "{ahead}");
    assert!(ahead.contains("OCI refuses requests whose date is more than 5 minutes off"), "{ahead}");
    let behind = clock_skew_warning(90_000, "the session refresh's").unwrap();
    assert!(behind.contains("1m30s behind the session refresh's") && behind.contains("corrects"), "{behind}");
}

/// The renewal loop of `renewer` from `session`, running in a task that `on_event` hears: the
/// task, the channel the loop publishes each new token on, and the stop (held: dropping it stops
/// the loop).
fn run_loop(
    renewer: Arc<Renewer>,
    session: Session,
    on_event: impl Fn(schedule::LoopEvent) + Send + 'static,
) -> (tokio::task::JoinHandle<Result<()>>, tokio::sync::watch::Receiver<SecretString>, tokio::sync::oneshot::Sender<()>)
{
    let (tx, rx) = tokio::sync::watch::channel(session.token.clone());
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running =
        tokio::spawn(
            async move { schedule::renewal_loop(schedule::fixed(renewer), session, &tx, stop_rx, on_event).await },
        );
    (running, rx, stop)
}

/// A working IdP and exchange whose clock is `skew` seconds ahead of `clock` (this machine's);
/// refresh tokens live a week.
fn working_at(clock: &ManualClock, skew: i64) -> Arc<FakeTransport> {
    let clock = clock.clone();
    FakeTransport::new(move |req, n| match req.url.path() {
        "/token" => {
            let rt = format!("rt-{}", n + 2);
            Ok((
                200,
                json!({"access_token": jwt(json!({})), "refresh_token": rt, "refresh_expires_in": 604_800}).to_string(),
            ))
        }
        _ => {
            let server_now = crate::clock::Clock::unix(&clock) + skew;
            Ok((200, json!({"token": upst(u64::try_from(server_now + 3600).unwrap())}).to_string()))
        }
    })
}

/// A clock 55 minutes ahead: the fresh token looks nearly spent by it, but it is good at OCI:
/// kept (it was refused as "already expired"), the skew learned and kept in the session folder.
#[tokio::test]
async fn a_clock_far_ahead_keeps_the_fresh_token_and_learns_the_skew() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let t = working_at(&w.clock, -3300);
    let s = w.renewer(t.clone()).ensure(Force::No).await.unwrap();
    assert_eq!(s.action, Action::Refreshed);
    assert_eq!(w.store().skew().map(|s| s.offset_ms), Some(-3_299_000), "a second of `iat` rounding spared");
    // NTP sets the clock right: the servers' time stays where it was, and the token good.
    w.clock.step(-3300);
    let ctx = w.context(&[]);
    assert!((crate::clock::Clock::unix(&ctx.server.servers()) - crate::clock::Clock::unix(&w.clock)).abs() <= 1);
    let after_step = w.renewer(t.clone()).ensure(Force::No).await.unwrap();
    assert_eq!((after_step.action, t.count("/token")), (Action::Reused, 1));
}

/// The next call renews when OCI or `oci` would refuse the token, whichever comes first, and not
/// for a refresh token's expiry this machine's clock took:
/// - 2m30s ahead: `oci` calls the token expired (it checks `exp` by this clock) while OCI would
///   still take it (30 s left by this clock, 3 minutes by the servers');
/// - 4 minutes behind: by this clock the token has 3m30s left when OCI already refuses it;
/// - days behind: the refresh token's recorded expiry (`refresh_expires_in` from its arrival, by
///   this clock) is judged in token time too: a good refresh token is used, no login asked for.
#[tokio::test]
async fn a_wrong_clock_renews_when_the_first_judge_would_refuse() {
    for (skew, later) in [(-150, 3420), (240, 3630), (8 * 86_400, 3600)] {
        let w = World::new("refresh_safety_window = 60s\n");
        w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
        let t = working_at(&w.clock, skew);
        w.renewer(t.clone()).ensure(Force::No).await.unwrap();
        assert_eq!(w.store().skew().map(|s| s.offset_ms / 1000), Some(skew + i64::from(skew < 0)), "{skew}");
        w.clock.advance(Duration::from_secs(later));
        let s = w.renewer(t.clone()).ensure(Force::No).await.unwrap();
        assert_eq!((s.action, t.count("/token")), (Action::Refreshed, 2), "skew {skew}");
        // The metrics carry this machine's time: the token ends when the first judge says so.
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(w.store().dir().join("woci-metrics.json")).unwrap()).unwrap();
        let mine = crate::clock::Clock::unix(&w.clock);
        let (ends, rt_ends) =
            (m["token_exp"].as_i64().unwrap() - mine, m["refresh_token_exp"].as_i64().unwrap() - mine);
        assert!((3600 - 2 + skew.min(0)..=3600 + 2).contains(&ends) && (604_798..=604_802).contains(&rt_ends), "{m}");
    }
}

/// A `tenant` claim with a line break would write other entries into the OCI config, and an
/// escape sequence would reach the terminal of whoever reads it: the new token is refused as the
/// service's fault, and the old token and config stay as they were.
#[tokio::test]
async fn a_tenant_claim_with_a_line_break_is_the_services_fault() {
    for tenant in ["ocid1.tenancy.oc1..t\nkey_file=/x", "\x1b[31mred", "t\u{2028}x", "t\u{b}x"] {
        let w = World::new("");
        w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
        let bad = jwt(json!({"exp": NOW + 3600, "iat": NOW, "sub": "u", "tenant": tenant}));
        let t = FakeTransport::new(move |req, _| match req.url.path() {
            "/token" => Ok((200, json!({"access_token": jwt(json!({})), "refresh_token": "rt-2"}).to_string())),
            _ => Ok((200, json!({"token": bad}).to_string())),
        });
        let err = w.renewer(t).ensure(Force::No).await.unwrap_err();
        assert_eq!(err.exit_code(), exit::NETWORK, "{err}");
        let msg = err.to_string();
        assert!(msg.contains("token exchange") && msg.contains("`tenant` claim contains a line break or"), "{msg}");
        assert!(w.config().is_empty(), "{}", w.config());
    }
}

/// A machine resumed from suspend: its timers stood still while the wall clock (the token's) ran
/// on. The renewal loop looks at the wall clock again within a few seconds and renews, instead
/// of sleeping out the rest of the token's life on a timer that lost the suspend.
#[tokio::test]
async fn the_renewal_loop_notices_a_wall_clock_jump() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    w.write_token(NOW + 3600);
    let clock = w.clock.clone();
    let t = FakeTransport::new(move |req, n| match req.url.path() {
        "/token" => {
            let rt = format!("rt-{}", n + 2);
            Ok((
                200,
                json!({"access_token": jwt(json!({})), "refresh_token": rt, "refresh_expires_in": 604_800}).to_string(),
            ))
        }
        _ => Ok((200, json!({"token": upst(crate::clock::Clock::unix(&clock) as u64 + 3600)}).to_string())),
    });
    let renewer = Arc::new(w.renewer(t.clone()));
    let session = renewer.ensure(Force::No).await.unwrap();
    let grants = t.count("/token");
    let (running, mut rx, _stop) = run_loop(renewer, session, |_| {});
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The suspend: 59 minutes and 50 s pass on the wall clock, none on the timers.
    w.clock.advance(Duration::from_secs(3590));
    let renewed = tokio::time::timeout(Duration::from_secs(8), rx.changed()).await;
    assert!(renewed.is_ok(), "no renewal within 8 s of the jump");
    assert_eq!(t.count("/token"), grants + 1);
    running.abort();
}

/// A run that starts with a token fresh from a server keeps it a fifth of its life, whatever the
/// clock makes of it: a clock far ahead made the daemon and `--auto-refresh` renew again at once.
#[tokio::test]
async fn a_run_keeps_the_fresh_token_it_started_with() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    // 20 s left by this clock: due at once.
    let t = working_at(&w.clock, -3580);
    let renewer = Arc::new(w.renewer(t.clone()));
    let session = renewer.ensure(Force::No).await.unwrap();
    assert_eq!(session.action, Action::Refreshed);
    let (running, _rx, _stop) = run_loop(renewer, session, |_| {});
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(t.count("/token"), 1, "renewed again at once");
    running.abort();
}

/// A token another woci stored (a call, a login) is taken up as that, not as the loop's own
/// renewal: the daemon's log and state must not claim it.
#[tokio::test]
async fn the_loop_tells_a_token_another_woci_stored_from_its_own() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let t = working();
    let renewer = Arc::new(w.renewer(t.clone()));
    let session = renewer.ensure(Force::No).await.unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let (running, _rx, _stop) = run_loop(renewer, session, move |e| {
        if let schedule::LoopEvent::Renewed { by_other, .. } = e {
            let _ = seen_tx.send(by_other);
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Another woci renews; the loop's own renewal falls due later and finds it.
    w.write_token(NOW + 7200);
    w.clock.advance(Duration::from_secs(3590));
    let by_other = tokio::time::timeout(Duration::from_secs(8), seen.recv()).await.unwrap().unwrap();
    assert!(by_other, "taken up as the loop's own renewal");
    assert_eq!(t.count("/token"), 1, "only the first renewal");
    running.abort();
}

/// A token issued after the renewal began that is already expired when it arrives: this woci
/// was stopped (Ctrl-Z) or suspended meanwhile. Said so, not blamed on the clock.
#[tokio::test]
async fn a_renewal_stopped_past_the_new_tokens_life_is_not_called_clock_skew() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let clock = w.clock.clone();
    let t = FakeTransport::new(move |req, _| match req.url.path() {
        "/token" => Ok((200, json!({"access_token": jwt(json!({})), "refresh_token": "rt-2"}).to_string())),
        _ => {
            // Issued now, then the process stands still for longer than its life.
            let token = upst(NOW + 3600);
            clock.advance(Duration::from_secs(4000));
            Ok((200, json!({"token": token}).to_string()))
        }
    });
    let err = w.renewer(t).ensure(Force::No).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("stopped or suspended") && !msg.contains("set the clock right"), "{msg}");
    assert!(!msg.contains("invalid response") && err.is_transient(), "not the service's fault, and retried: {msg}");
    assert_eq!(w.refresh_token().as_deref(), Some("rt-2"), "the rotated refresh token is kept");
}

/// A token whose `exp` is not after its `iat` was issued expired: the service's fault (an invalid
/// response, not retried as if this woci had been suspended), whatever the clocks say.
#[tokio::test]
async fn a_token_issued_expired_is_the_services_fault() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let t = FakeTransport::new(move |req, _| match req.url.path() {
        "/token" => Ok((200, json!({"access_token": jwt(json!({})), "refresh_token": "rt-2"}).to_string())),
        _ => Ok((200, json!({"token": jwt(json!({"exp": NOW - 100, "iat": NOW, "sub": "u"}))}).to_string())),
    });
    let err = w.renewer(t).ensure(Force::No).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("invalid response") && msg.contains("issued expired"), "{msg}");
    assert!(!msg.contains("suspended") && !err.is_transient(), "{msg}");
}

/// After an outage a program under the proxy meets an expired token on every request: once the
/// token has expired the loop retries every few seconds (within the proxy's hold of such a
/// request), not on a backoff grown to a minute.
#[tokio::test(start_paused = true)]
async fn an_expired_token_is_retried_often() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let t = FakeTransport::new(|_, _| Ok((503, String::new())));
    let renewer = Arc::new(w.renewer(t));
    let expired = upst(NOW - 10);
    let claims = crate::jwt::decode_upst(&expired).unwrap();
    let session = Session { token: SecretString::from(expired.as_str()), claims, action: Action::Reused };
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let (running, _rx, _stop) = run_loop(renewer, session, move |e| {
        if let schedule::LoopEvent::Failed { retry_in, .. } = e {
            let _ = events_tx.send(retry_in.as_secs());
        }
    });
    let mut delays = Vec::new();
    while delays.len() < 4 {
        delays.push(events.recv().await.unwrap());
    }
    running.abort();
    assert_eq!(delays, [2, 4, 4, 4]);
}

/// An IdP whose grants give access tokens expiring at `access_exp` and an exchange that answers
/// 503 to the first `failing` requests of the transport's.
fn exchange_outage(access_exp: u64, failing: usize) -> Arc<FakeTransport> {
    FakeTransport::new(move |req, n| match req.url.path() {
        "/token" => Ok((
            200,
            json!({"access_token": jwt(json!({"exp": access_exp})), "refresh_token": format!("rt-{}", n + 2)})
                .to_string(),
        )),
        _ if n < failing => Ok((503, String::new())),
        _ => Ok((200, json!({"token": upst(NOW + 3600)}).to_string())),
    })
}

/// An exchange outage after a good refresh grant: the loop's next attempts exchange the access
/// token they already have (while it is valid), not a refresh grant each (a rotation each).
#[tokio::test]
async fn an_exchange_outage_costs_no_more_refresh_grants() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let t = exchange_outage(NOW + 3600, 6);
    let renewer = w.renewer(t.clone());
    for _ in 0..2 {
        assert!(renewer.ensure(Force::No).await.unwrap_err().is_transient());
    }
    renewer.ensure(Force::No).await.unwrap();
    assert_eq!(t.count("/token"), 1, "one grant for three attempts");
    // After a success the next renewal starts from the refresh token again.
    assert!(renewer.access.lock().unwrap().is_none());
}

/// Round 44: a change to a setting no renewal reads (a log level, a hook) made `--status` drop
/// a refusal it predicted, and a waiting call repeat the refused renewal; a renewal's own
/// setting, a CA variable or a proxy still count as a possible fix.
#[test]
fn only_what_a_renewal_reads_counts_as_a_fix() {
    let w = World::new("");
    let ini = w.home.path().join(".oci/woci_manager.ini");
    let digest = |env: &Env| failure_inputs(&w.settings(&[]), &w.store(), env, Met::Refusal);
    let before = digest(&Env::new());
    let original = std::fs::read_to_string(&ini).unwrap();
    let with = |line: &str| {
        let key = line.split(' ').next().unwrap();
        let kept: String = original.lines().filter(|l| !l.starts_with(key)).map(|l| format!("{l}\n")).collect();
        std::fs::write(&ini, format!("{kept}{line}\n")).unwrap();
        let d = digest(&Env::new());
        std::fs::write(&ini, &original).unwrap();
        d
    };
    for unread in ["log_level = debug", "metrics_file = ~/m.json", "on_renewal_failure = true", "fallback_profile = Q"]
    {
        assert_eq!(with(unread), before, "{unread}");
    }
    for read in ["client_secret = fixed", "refresh_token_reuse_grace = 30s", "token_exchange_url = https://x.example/t"]
    {
        assert_ne!(with(read), before, "{read}");
    }
    let var = |k: &str| Env::from([(k.to_owned(), "v".to_owned())]);
    assert_eq!(digest(&var("WOCI_OCI_COMMAND")), before);
    assert_ne!(digest(&var("REQUESTS_CA_BUNDLE")), before);
    assert_ne!(digest(&var("HTTPS_PROXY")), before);
    // What a federated source reads: each CI job brings its own bearer (round 96 F1).
    assert_eq!(digest(&var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")), before, "a login profile reads no bearer");
    let federated = |env: &Env| {
        failure_inputs(&w.settings(&["--subject-token-source", "github-actions"]), &w.store(), env, Met::Refusal)
    };
    assert_ne!(federated(&var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")), federated(&Env::new()));

    // A server's own fault (a 5xx) is met whatever CA, proxy or bearer the caller has: a daemon
    // started with `env -i` and a shell meet the same outage (round 100 F1); a renewal setting
    // given by a variable still counts.
    let outage =
        |args: &[&str], env: &Env| failure_inputs(&w.settings_in(args, env), &w.store(), env, Met::ServerFault);
    let quiet = outage(&[], &Env::new());
    for k in ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "HTTPS_PROXY", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"] {
        assert_eq!(outage(&[], &var(k)), quiet, "{k}");
    }
    assert_ne!(outage(&["--client-secret", "fixed"], &Env::new()), quiet);
    assert_ne!(outage(&[], &var("WOCI_CLIENT_SECRET")), quiet);

    // Which refresh token is stored counts for a refusal only: a renewal under way rotates it
    // while an outage lasts (round 101 F1).
    let store = w.store();
    let met = |met: Met| failure_inputs(&w.settings(&[]), &store, &Env::new(), met);
    let before: Vec<String> = [Met::Refusal, Met::Unreachable, Met::ServerFault].map(met).into();
    store.write_refresh_token(&SecretString::from("rotated"), None).unwrap();
    let after: Vec<String> = [Met::Refusal, Met::Unreachable, Met::ServerFault].map(met).into();
    assert_ne!(before[0], after[0]);
    assert_eq!(before[1..], after[1..]);
}

/// A failure another woci recorded while this one waited for the lock is this call's too (it is
/// not repeated), unless it was met with other settings (a call that read the manager INI while
/// an editor saved it, a daemon's reloaded ones): then this call renews with its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_met_with_other_settings_is_not_taken_over() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let own = failure_inputs(&w.settings(&[]), &w.store(), &Env::new(), Met::Unreachable);
    for (inputs, taken_over) in [(None, true), (Some(own), true), (Some("other settings".to_owned()), false)] {
        let _ = std::fs::remove_file(w.store().token_path());
        let (lock, _) = w.store().lock(Duration::from_secs(1)).unwrap();
        let t = working();
        let renewer = Arc::new(w.renewer(t.clone()));
        let call = tokio::spawn({
            let renewer = renewer.clone();
            async move { renewer.ensure(Force::No).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        w.store().record_failure(&crate::store::FailureRecord {
            at: (NOW * 1000 + 1) as i64,
            exit_code: exit::NETWORK,
            message: "identity provider unreachable".to_owned(),
            transient: true,
            renewable: true,
            reply_lost: false,
            needs_login: false,
            answered: false,
            inputs: inputs.clone(),
        });
        drop(lock);
        let result = call.await.unwrap();
        match taken_over {
            true => {
                let e = result.unwrap_err();
                assert_eq!((e.exit_code(), e.to_string()), (exit::NETWORK, "identity provider unreachable".into()));
                assert!(t.seen().is_empty(), "{inputs:?}: repeated");
            }
            false => assert_eq!(result.unwrap().action, Action::Refreshed, "{inputs:?}"),
        }
        w.store().clear_failure();
    }
}

/// A loop that waited for the lock while another woci's renewal met a refusal a settings change
/// can fix (the exchange refused the client: a secret being rotated) keeps trying, slowly, as it
/// does after meeting that refusal itself: the daemon ended for good (round 105's review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_that_takes_over_a_refusal_keeps_trying_as_its_own() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    let t = working();
    let renewer = Arc::new(w.renewer(t.clone()));
    // A token found on disk (not fresh from a server, which a run keeps a while whatever the clock).
    let session = Session { action: Action::Reused, ..renewer.ensure(Force::No).await.unwrap() };
    let grants = t.count("/token");
    // Due at once; another woci holds the lock and meets the refusal.
    w.clock.advance(Duration::from_secs(3590));
    let (lock, _) = w.store().lock(Duration::from_secs(1)).unwrap();
    let (failed_tx, mut failed) = tokio::sync::mpsc::unbounded_channel();
    let (running, _rx, _stop) = run_loop(renewer, session, move |e| {
        if let schedule::LoopEvent::Failed { retry_in, .. } = e {
            let _ = failed_tx.send(retry_in);
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    w.store().record_failure(&crate::store::FailureRecord {
        at: crate::clock::unix_millis(crate::clock::Clock::now(&w.clock)),
        exit_code: exit::EXCHANGE_REJECTED,
        message: "token exchange rejected (HTTP 401): invalid_client".to_owned(),
        transient: false,
        renewable: true,
        reply_lost: false,
        needs_login: false,
        answered: false,
        inputs: None,
    });
    drop(lock);
    let retry_in = tokio::time::timeout(Duration::from_secs(5), failed.recv()).await;
    assert!(!running.is_finished(), "the loop ended: {:?}", running.await);
    assert!(retry_in.unwrap().is_some(), "the loop took the failure over");
    assert_eq!(t.count("/token"), grants, "the refusal was not repeated at once");
    running.abort();
}

/// A daemon's reload makes a renewer with the new settings: a rotated refresh token stored
/// nowhere (a full disk) is carried over, also one the old renewer keeps after the reload, in a
/// renewal under way then (a review of round 105: the reload dropped the only copy).
#[test]
fn a_reloaded_renewer_carries_the_refresh_token_stored_nowhere() {
    let w = World::new("");
    let old = w.renewer(working());
    *old.unsaved.lock().unwrap() = Some(SecretString::from("rt-2"));
    let new = w.renewer(working()).carrying(&old);
    assert!(new.refresh_token_unsaved());
    *old.unsaved.lock().unwrap() = Some(SecretString::from("rt-3"));
    assert_eq!(new.unsaved.lock().unwrap().as_ref().map(|t| t.expose().to_owned()).as_deref(), Some("rt-3"));
}

/// The access token kept over an exchange outage is judged by the servers' time: with this
/// machine 2 minutes behind them, one with 100 s left by this clock has expired at the IdP, so
/// the next attempt makes a new grant rather than send it (a review of round 105).
#[tokio::test]
async fn a_kept_access_token_is_judged_by_the_servers_time() {
    let w = World::new("");
    w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
    w.store().write_skew(&crate::clock::Skew { offset_ms: 120_000, boot: None });
    let t = exchange_outage(NOW + 100, 4);
    let renewer = w.renewer(t.clone());
    assert!(renewer.ensure(Force::No).await.unwrap_err().is_transient());
    renewer.ensure(Force::No).await.unwrap();
    assert_eq!(t.count("/token"), 2, "the expired access token was sent again");
}

/// A call's region goes into a profile that has none only when it is a region: a typo'd
/// `--region` (or `OCI_CLI_REGION`) must not stay in the OCI config for every later call (a
/// review of round 105).
#[tokio::test]
async fn only_a_region_from_the_call_is_written_into_the_config() {
    for (region, written) in [("us ashburn 1", false), ("us-ashburn-1#x", false), ("us-phoenix-1", true)] {
        let w = World::new("");
        w.store().write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
        w.renewer_with(&["--region", region], working()).ensure(Force::No).await.unwrap();
        let config = std::fs::read_to_string(w.home.path().join(".oci/config")).unwrap();
        assert_eq!(config.contains("region"), written, "{region}: {config}");
    }
}

/// Only the exchange's refusal of the JWT itself is worded as that; a wrong URL or a refused
/// client keeps the exchange's own words (a review of round 105).
#[test]
fn only_a_refused_jwt_is_said_as_one() {
    let rejected = |status, error: &str| Error::ExchangeRejected { status, error: error.into(), description: None };
    for (status, error, jwt) in [(400, "invalid_grant", true), (400, "invalid_request", true), (404, "", false)] {
        let said = refused_jwt(rejected(status, error), "env:CI_JWT".into());
        assert_eq!(matches!(said, Error::SubjectTokenRejected { .. }), jwt, "{status} {error}: {said}");
    }
    assert!(!matches!(
        refused_jwt(rejected(403, "unauthorized_client"), "x".into()),
        Error::SubjectTokenRejected { .. }
    ));
}
