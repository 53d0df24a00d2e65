use super::*;
use crate::daemon::PidProbe;
use crate::daemon::{DaemonState, Phase};
use crate::error::exit;
use crate::jwt::{self, UpstClaims};
use crate::renew::facts::{testing, SessionFacts};
use crate::settings::RenewMode;

#[derive(Debug, Clone, Copy)]
enum RenewalKind {
    Idp,
    SessionRefresh,
}

fn mode(k: RenewalKind) -> &'static RenewMode {
    match k {
        RenewalKind::Idp => testing::login(),
        RenewalKind::SessionRefresh => testing::session_refresh(),
    }
}

const NOW: i64 = 1_800_000_000;

fn claims(iat: i64, exp: i64) -> UpstClaims {
    UpstClaims {
        exp,
        iat: Some(iat),
        sub: Some("ocid1.user.oc1..u".into()),
        tenant: Some("ocid1.tenancy.oc1..t".into()),
        sess_exp: None,
        jti: None,
        jwk: None,
    }
}

fn no_daemon() -> DaemonInfo {
    DaemonInfo { probe: PidProbe::NotRunning { stale_pid: None }, state: None, state_error: None }
}

fn inputs(token: TokenInput, renewal: RenewalKind, rt: RefreshTokenState) -> Inputs<'static> {
    Inputs {
        facts: SessionFacts::for_tests(token, mode(renewal), rt),
        daemon: no_daemon(),
        origins: Default::default(),
        shared: Default::default(),
        fallback_profile: None,
        auth: None,
        start: None,
        program: None,
        last_failure: None,
        renewing: None,
        clock_skew: 0,
        terminal: true,
    }
}

fn valid() -> TokenInput {
    testing::present(claims(NOW - 600, NOW + 3000))
}
fn expiring() -> TokenInput {
    testing::present(claims(NOW - 3570, NOW + 30))
}
fn expired() -> TokenInput {
    testing::present(claims(NOW - 4000, NOW - 400))
}

fn decide_of(i: &Inputs<'_>) -> (&'static str, u8) {
    let r = assess(i, NOW);
    assert_eq!(r.usable, r.exit_code == 0);
    (r.next_action, r.exit_code)
}

#[test]
fn valid_token_needs_nothing_whatever_the_refresh_token() {
    for rt in [RefreshTokenState::Absent, RefreshTokenState::Plain, RefreshTokenState::Encrypted] {
        for kind in [RenewalKind::Idp, RenewalKind::SessionRefresh] {
            let r = assess(&inputs(valid(), kind, rt), NOW);
            assert_eq!((r.next_action, r.exit_code), ("none", 0));
            assert_eq!(r.token.state, "valid");
            assert_eq!(r.token.expires_in, Some(3000));
            assert!(r.reason.contains("valid for 50m00s"), "{}", r.reason);
        }
    }
}

#[test]
fn idp_profile_with_a_stale_token() {
    for tok in [expiring(), expired(), TokenInput::Missing] {
        assert_eq!(decide_of(&inputs(tok.clone(), RenewalKind::Idp, RefreshTokenState::Plain)), ("refresh", 0));
        assert_eq!(
            decide_of(&inputs(tok.clone(), RenewalKind::Idp, RefreshTokenState::Absent)),
            ("login", exit::LOGIN)
        );
        let mut i = inputs(tok, RenewalKind::Idp, RefreshTokenState::Plain);
        i.facts.refresh.expires_at = Some(NOW - 1);
        assert_eq!(decide_of(&i), ("login", exit::LOGIN), "expired refresh token");
        i.facts.refresh.expires_at = Some(NOW + 86_400);
        assert_eq!(decide_of(&i), ("refresh", 0));
    }
    assert_eq!(assess(&inputs(expiring(), RenewalKind::Idp, RefreshTokenState::Plain), NOW).token.state, "expiring");
    assert_eq!(assess(&inputs(expired(), RenewalKind::Idp, RefreshTokenState::Plain), NOW).token.state, "expired");
}

#[test]
fn encrypted_refresh_token_and_its_passphrase() {
    let mut i = inputs(expired(), RenewalKind::Idp, RefreshTokenState::Encrypted);
    assert_eq!(decide_of(&i), ("impossible", exit::REFRESH_TOKEN_LOCKED), "no passphrase configured");
    i.facts.refresh.passphrase = PassphraseInput::Env { var: "WOCI_RT_PASSPHRASE".into(), set: false };
    assert_eq!(decide_of(&i), ("impossible", exit::CONFIG));
    assert!(assess(&i, NOW).reason.contains("`WOCI_RT_PASSPHRASE`"));
    i.facts.refresh.passphrase = PassphraseInput::Env { var: "WOCI_RT_PASSPHRASE".into(), set: true };
    i.facts.refresh.decryptable = Some(false);
    assert_eq!(decide_of(&i), ("impossible", exit::REFRESH_TOKEN_LOCKED), "wrong passphrase");
    i.facts.refresh.decryptable = Some(true);
    assert_eq!(decide_of(&i), ("refresh", 0));
    i.facts.refresh.passphrase = PassphraseInput::Prompt;
    i.facts.refresh.decryptable = None;
    assert_eq!(decide_of(&i), ("refresh", 0));
    let r = assess(&i, NOW);
    assert!(r.refresh_token.stored && r.refresh_token.encrypted);
    assert_eq!(r.refresh_token.passphrase, "prompt");
    // Round 46: a job without a terminal cannot be asked for it; a valid token needs no asking.
    i.terminal = false;
    let r = assess(&i, NOW);
    assert_eq!((r.next_action, r.exit_code), ("refresh", exit::LOGIN));
    assert!(
        r.reason.contains("no terminal here") && r.reason.contains("--refresh-token-passphrase-env"),
        "{}",
        r.reason
    );
    i.facts.token = valid();
    assert_eq!(decide_of(&i), ("none", 0));
    // A variable not set where `--status` runs (a cron job's environment) fails the renewal after
    // the valid token: said, still usable.
    i.facts.refresh.passphrase = PassphraseInput::Env { var: "WOCI_RT_PASSPHRASE".into(), set: false };
    let r = assess(&i, NOW);
    assert_eq!((r.next_action, r.exit_code), ("none", 0));
    assert!(r.reason.contains("`WOCI_RT_PASSPHRASE` (named by") && r.reason.contains("the renewal after it fails"));
    // Inside the window the plan says it once, its own way.
    i.facts.token = expiring();
    let r = assess(&i, NOW);
    assert_eq!((r.next_action, r.exit_code), ("none", 0));
    assert_eq!(r.reason.matches("`WOCI_RT_PASSPHRASE` (named by").count(), 1, "{}", r.reason);
    // No passphrase setting for the encrypted token (a login given the flag sealed it), or one
    // that does not open it: said beside the valid token too (round 93 F2), still usable.
    i.facts.token = valid();
    for (passphrase, says) in [
        (PassphraseInput::None, "encrypted and no passphrase is configured"),
        (PassphraseInput::Env { var: "V".into(), set: true }, "the passphrase in `V` does not open"),
    ] {
        i.facts.refresh.passphrase = passphrase;
        i.facts.refresh.decryptable = Some(false);
        let r = assess(&i, NOW);
        assert_eq!((r.next_action, r.exit_code), ("none", 0));
        assert!(r.reason.contains(says) && r.reason.contains("the renewal after it fails"), "{}", r.reason);
    }
    i.facts.refresh.decryptable = Some(true);
    assert!(!assess(&i, NOW).reason.contains("renewal after it fails"), "the passphrase opens it");
    // An unreadable refresh token too (round 95 N7).
    i.facts.refresh.damage = Some("not valid JSON".into());
    let r = assess(&i, NOW);
    assert_eq!((r.next_action, r.exit_code), ("none", 0));
    assert!(r.reason.contains("unreadable (not valid JSON), so the renewal after it needs a login"), "{}", r.reason);
}

#[test]
fn session_refresh_profile() {
    let plain = RefreshTokenState::Absent;
    assert_eq!(decide_of(&inputs(expiring(), RenewalKind::SessionRefresh, plain)), ("session_refresh", 0));
    assert_eq!(
        decide_of(&inputs(expired(), RenewalKind::SessionRefresh, plain)),
        ("impossible", exit::SESSION_EXPIRED)
    );
    assert_eq!(
        decide_of(&inputs(TokenInput::Missing, RenewalKind::SessionRefresh, plain)),
        ("impossible", exit::SESSION_EXPIRED)
    );
    let mut c = claims(NOW - 3570, NOW + 30);
    c.sess_exp = Some(serde_json::Value::String(jwt::format_sess_exp(NOW - 5)));
    let i = inputs(testing::present(c), RenewalKind::SessionRefresh, plain);
    assert_eq!(decide_of(&i), ("impossible", exit::SESSION_EXPIRED));
    let r = assess(&i, NOW);
    assert!(r.reason.contains("sess_exp") && r.reason.contains("oci session authenticate --profile P"), "{}", r.reason);
    assert_eq!(r.token.session_expires_at, Some(NOW - 5));
}

#[test]
fn corrupt_token_is_exit_7() {
    let i = inputs(TokenInput::Corrupt("not a JWT".into()), RenewalKind::Idp, RefreshTokenState::Plain);
    let r = assess(&i, NOW);
    assert_eq!((r.next_action, r.exit_code), ("impossible", exit::CORRUPT_FILE));
    assert_eq!(r.token.state, "corrupt");
    assert_eq!(r.token.error.as_deref(), Some("not a JWT"));
}

#[test]
fn window_is_capped_for_short_tokens() {
    // A 10-second token with 8 s left is valid (the 60 s window is capped at half the lifetime).
    let i = inputs(testing::present(claims(NOW - 2, NOW + 8)), RenewalKind::Idp, RefreshTokenState::Absent);
    assert_eq!(decide_of(&i), ("none", 0));
}

#[test]
fn daemon_section_uses_only_matching_state() {
    let mut i = inputs(valid(), RenewalKind::Idp, RefreshTokenState::Plain);
    i.daemon = DaemonInfo {
        probe: PidProbe::Running { pid: Some(42) },
        state: Some(DaemonState {
            pid: 42,
            phase: Phase::Running,
            started: NOW - 100,
            last_renewal: Some(NOW - 50),
            next_renewal: Some(NOW + 500),
            token_exp: Some(NOW + 3000),
            ..Default::default()
        }),
        state_error: None,
    };
    let d = assess(&i, NOW).daemon;
    assert!(d.running);
    assert_eq!((d.pid, d.uptime, d.next_renewal, d.exit_reason), (Some(42), Some(100), Some(NOW + 500), None));

    i.daemon = DaemonInfo {
        probe: PidProbe::NotRunning { stale_pid: Some(42) },
        state: Some(DaemonState {
            pid: 42,
            phase: Phase::Exited,
            started: NOW - 100,
            exit_reason: Some("renewal is no longer possible: x".into()),
            exit_code: Some(4),
            ..Default::default()
        }),
        state_error: None,
    };
    let d = assess(&i, NOW).daemon;
    assert!(!d.running);
    assert_eq!((d.pid, d.stale_pid, d.uptime, d.exit_code), (None, Some(42), None, Some(4)));
    assert_eq!(d.exit_reason.as_deref(), Some("renewal is no longer possible: x"));
}

#[test]
fn json_field_names_are_stable() {
    let r = assess(&inputs(valid(), RenewalKind::Idp, RefreshTokenState::Plain), NOW);
    let v = serde_json::to_value(&r).unwrap();
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k.join(",")
    };
    assert_eq!(
        keys(&v),
        "clock_skew_s,daemon,exit_code,fallback_profile,last_failure,next_action,now,profile,reason,refresh_token,renewal,renewal_under_way,runs_as,schema,settings,token,usable"
    );
    assert_eq!(keys(&v["token"]), "error,expires_at,expires_in,issued_at,path,session_expires_at,state,tenancy,user");
    assert_eq!(
        keys(&v["refresh_token"]),
        "decryptable,encrypted,error,expires_at,interrupted_rotation,passphrase,rejected,rescued,stored,unsettled_grant"
    );
    assert_eq!(
        keys(&v["daemon"]),
        "binary_replaced,exit_code,exit_reason,last_error,last_error_at,last_renewal,next_renewal,pid,python_daemon,running,stale_pid,started,stopped,token_expires_at,uptime"
    );
    assert_eq!(v["next_action"], "none");
    assert_eq!(v["renewal"], "idp");
    assert_eq!(v["schema"], 1);
    assert_eq!(v["token"]["user"], "ocid1.user.oc1..u");
    assert_eq!(v["token"]["tenancy"], "ocid1.tenancy.oc1..t");
}

#[test]
fn text_report_mentions_every_section() {
    let mut i = inputs(expired(), RenewalKind::Idp, RefreshTokenState::Encrypted);
    i.facts.refresh.passphrase = PassphraseInput::Env { var: "V".into(), set: true };
    i.facts.refresh.decryptable = Some(true);
    let r = assess(&i, NOW);
    let t = render_text(&r, &i.daemon);
    for needle in [
        "profile: P",
        "session token: expired (`/h/.oci/sessions/P/token`)",
        "expires: 2027-01-15T07:53:20Z (6m40s ago)",
        "user:    ocid1.user.oc1..u",
        "tenancy: ocid1.tenancy.oc1..t",
        "refresh token: stored, encrypted (passphrase: env, passphrase opens it)",
        "daemon: not running for profile `P`",
        "next call: refresh",
        "usable: yes (exit 0)",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in:\n{t}");
    }
    // A refresh token the identity provider refused says so, not when it would have expired.
    i.facts.refresh.expires_at = Some(NOW + 86_400);
    i.facts.refresh.rejected = Some("invalid_grant (refresh token revoked)".into());
    let r = assess(&i, NOW);
    let t = render_text(&r, &i.daemon);
    assert!(
        t.contains("  refused by the identity provider: invalid_grant (refresh token revoked) (a login replaces it)"),
        "{t}"
    );
    assert!(!t.contains("  expires: 2027-01-16"), "{t}");
    assert_eq!(r.refresh_token.rejected.as_deref(), Some("invalid_grant (refresh token revoked)"));
    // `--status --all` leaves its expiry out too.
    assert_eq!(super::overview::Entry::from_report(&r, None).refresh_token_expires_at, None);
}

/// A renewal the next call makes meets what the last one met: a lost refresh-grant answer means a
/// login, a refusal means the same failure until the settings change; a transient failure is
/// only mentioned.
#[test]
fn the_last_failure_counts_for_the_next_renewal() {
    let failure = |exit_code, transient, reply_lost| crate::store::FailureRecord {
        at: (NOW - 120) * 1000,
        exit_code,
        message: "token exchange rejected (HTTP 401): invalid_client".into(),
        transient,
        renewable: transient,
        reply_lost,
        needs_login: false,
        answered: false,
        inputs: None,
    };
    let mut i = inputs(expired(), RenewalKind::Idp, RefreshTokenState::Plain);
    i.last_failure = Some((failure(exit::EXCHANGE_REJECTED, false, false), false));
    let r = assess(&i, NOW);
    assert_eq!((r.exit_code, r.usable), (exit::EXCHANGE_REJECTED, false));
    assert!(
        r.reason.contains("2m00s ago, failed: token exchange rejected") && r.reason.contains("until"),
        "{}",
        r.reason
    );
    assert_eq!(r.last_failure.as_ref().map(|f| f.at), Some(NOW - 120));
    i.last_failure = Some((failure(exit::EXCHANGE_REJECTED, false, false), true));
    assert_eq!(decide_of(&i), ("refresh", 0), "the settings changed since: maybe fixed");
    // An outage of two minutes ago most likely lasts: the call would fail the same way.
    i.last_failure = Some((failure(exit::NETWORK, true, false), false));
    assert_eq!(decide_of(&i), ("refresh", exit::NETWORK));
    assert!(assess(&i, NOW).reason.contains("tries again, and fails the same way while that lasts"));
    // Five minutes on, or after a change of settings, it is only mentioned.
    let mut old = failure(exit::NETWORK, true, false);
    old.at = (NOW - 301) * 1000;
    i.last_failure = Some((old, false));
    assert_eq!(decide_of(&i), ("refresh", 0));
    assert!(assess(&i, NOW).reason.contains("(the last renewal, 5m01s ago, failed"));
    i.last_failure = Some((failure(exit::NETWORK, true, false), true));
    assert_eq!(decide_of(&i), ("refresh", 0));
    i.last_failure = Some((failure(exit::NETWORK, true, true), false));
    let r = assess(&i, NOW);
    assert_eq!(r.exit_code, exit::LOGIN);
    assert!(r.reason.contains("probably spent the stored refresh token"), "{}", r.reason);
    // Inside a wide safety window a call renews first, and runs with the token (more than a
    // minute left) when the renewal fails again: usable, the failure mentioned.
    let mut i = inputs(testing::present(claims(NOW - 600, NOW + 240)), RenewalKind::Idp, RefreshTokenState::Plain);
    i.facts.window = std::time::Duration::from_secs(600);
    for f in [failure(exit::NETWORK, true, false), failure(exit::EXCHANGE_REJECTED, false, false)] {
        i.last_failure = Some((f, false));
        let r = assess(&i, NOW);
        assert_eq!((r.next_action, r.exit_code), ("refresh", 0));
        assert!(r.reason.contains("the call runs with the current token"), "{}", r.reason);
    }
    // A valid token is reused: the failure does not matter to the next call.
    let mut i = inputs(valid(), RenewalKind::Idp, RefreshTokenState::Plain);
    i.last_failure = Some((failure(exit::EXCHANGE_REJECTED, false, false), false));
    assert_eq!(decide_of(&i), ("none", 0));
    // A login the call needs meets the settings a refused login met (a wrong client secret),
    // but not an outage, a spent or refused refresh token (the login's own fix) or a changed
    // setting; and only where a login can happen (else the call fails for that, exit 3).
    let mut i = inputs(TokenInput::Missing, RenewalKind::Idp, RefreshTokenState::Absent);
    assert_eq!(decide_of(&i), ("login", exit::LOGIN));
    i.last_failure = Some((failure(exit::IDP_REJECTED, false, false), false));
    assert_eq!(decide_of(&i), ("login", exit::LOGIN), "no terminal, no BROWSER");
    i.facts.mode = interactive();
    let r = assess(&i, NOW);
    assert_eq!((r.next_action, r.exit_code), ("login", exit::IDP_REJECTED));
    assert!(r.reason.contains("a login fails the same way until that is fixed"), "{}", r.reason);
    let refused = crate::store::FailureRecord { needs_login: true, ..failure(exit::IDP_REJECTED, false, false) };
    for (f, changed) in [
        (failure(exit::IDP_REJECTED, false, false), true),
        (failure(exit::NETWORK, true, false), false),
        (failure(exit::LOGIN, false, false), false),
        (refused, false),
    ] {
        i.last_failure = Some((f, changed));
        assert_eq!(decide_of(&i), ("login", exit::LOGIN));
    }
    // Round 47: a refused refresh token inside a wide window, with more than a minute left: the
    // login cannot happen here, so the call runs with the token; where it can, it is a login.
    let mut i = inputs(testing::present(claims(NOW - 600, NOW + 240)), RenewalKind::Idp, RefreshTokenState::Plain);
    i.facts.window = std::time::Duration::from_secs(600);
    i.facts.refresh.rejected = Some("invalid_grant".into());
    let r = assess(&i, NOW);
    assert_eq!((r.next_action, r.exit_code), ("login", 0));
    assert!(r.reason.contains("a call here runs with the current token"), "{}", r.reason);
    i.facts.mode = interactive();
    assert_eq!(decide_of(&i), ("login", exit::LOGIN));
}

/// Inside a wide safety window, a renewal that needs a login or passphrase that cannot happen
/// here fails, and the call runs with the token while it has more than a minute left
/// (`Renewer::ensure_or_keep`): usable; where the login can happen, it is one (exit 3). A token
/// bound to another key is never kept.
#[test]
fn a_renewal_that_cannot_log_in_here_leaves_the_call_its_token() {
    let widened = |rt| {
        let mut i = inputs(testing::present(claims(NOW - 600, NOW + 240)), RenewalKind::Idp, rt);
        i.facts.window = std::time::Duration::from_secs(600);
        i
    };
    let lost = crate::store::FailureRecord {
        at: (NOW - 120) * 1000,
        exit_code: exit::NETWORK,
        message: "the answer was lost".into(),
        transient: true,
        renewable: true,
        reply_lost: true,
        needs_login: false,
        answered: false,
        inputs: None,
    };
    let mut spent = widened(RefreshTokenState::Plain);
    spent.last_failure = Some((lost.clone(), false));
    let mut unsettled = widened(RefreshTokenState::Plain);
    unsettled.facts.refresh.unsettled = Some((4242, (NOW - 20) * 1000));
    for mut i in [spent, unsettled] {
        let r = assess(&i, NOW);
        assert_eq!((r.next_action, r.exit_code), ("refresh", 0));
        assert!(r.reason.contains("next renewal will need a login; until then a call here runs"), "{}", r.reason);
        i.facts.mode = interactive();
        assert_eq!(decide_of(&i), ("refresh", exit::LOGIN));
    }
    // A passphrase prompt without a terminal fails the renewal, even where `BROWSER` could log in.
    let mut i = widened(RefreshTokenState::Encrypted);
    i.facts.refresh.passphrase = PassphraseInput::Prompt;
    i.terminal = false;
    i.facts.mode = interactive();
    let r = assess(&i, NOW);
    assert_eq!((r.next_action, r.exit_code), ("refresh", 0));
    assert!(r.reason.contains("no terminal here") && r.reason.contains("until then a call here runs"), "{}", r.reason);
    // The same token bound to another key than the profile's: OCI refuses it, nothing is kept.
    let mut i = widened(RefreshTokenState::Plain);
    i.last_failure = Some((crate::store::FailureRecord { reply_lost: false, transient: false, ..lost }, false));
    assert_eq!(decide_of(&i).1, 0, "kept");
    i.facts.key_mismatch = true;
    assert_eq!(decide_of(&i).1, exit::NETWORK);
}

/// The IdP profile of these tests where a login can happen (a terminal, or `BROWSER`).
fn interactive() -> &'static RenewMode {
    login_with(|cfg| cfg.interactive = true)
}

/// The IdP profile of these tests, changed by `change`.
fn login_with(change: impl FnOnce(&mut crate::settings::LoginConfig)) -> &'static RenewMode {
    let RenewMode::Login(cfg) = mode(RenewalKind::Idp) else { unreachable!() };
    let mut cfg = cfg.clone();
    change(&mut cfg);
    Box::leak(Box::new(RenewMode::Login(cfg)))
}

/// A woci killed after sending a refresh grant with the stored refresh token: the next refresh
/// probably meets a spent token (exit 3), unless the IdP's reuse grace still covers it.
#[test]
fn a_grant_a_killed_woci_sent_is_probably_spent_unless_within_the_reuse_grace() {
    let mut i = inputs(expired(), RenewalKind::Idp, RefreshTokenState::Plain);
    i.facts.refresh.unsettled = Some((4242, (NOW - 20) * 1000));
    let r = assess(&i, NOW);
    assert_eq!((r.next_action, r.exit_code), ("refresh", exit::LOGIN));
    assert!(r.reason.contains("woci pid 4242 sent a refresh grant") && r.reason.contains("20s ago"), "{}", r.reason);
    assert!(r.reason.contains("probably spent"), "{}", r.reason);
    assert_eq!(r.refresh_token.unsettled_grant, Some(UnsettledGrant { pid: 4242, sent_at: NOW - 20 }));
    i.facts.mode = login_with(|cfg| cfg.idp.reuse_grace = std::time::Duration::from_secs(60));
    let r = assess(&i, NOW);
    assert_eq!((r.next_action, r.exit_code), ("refresh", 0));
    assert!(r.reason.contains("within `refresh_token_reuse_grace`"), "{}", r.reason);
    // A valid token needs no refresh now: usable, and the renewal after it is foretold.
    i.facts.mode = mode(RenewalKind::Idp);
    i.facts.token = valid();
    let r = assess(&i, NOW);
    assert_eq!((r.next_action, r.exit_code), ("none", 0));
    assert!(r.reason.contains("the next renewal will need a login"), "{}", r.reason);
}

/// A clock more than 5 minutes off makes OCI refuse what `oci` signs: not usable, with the fix;
/// less is corrected for and only shown; calls that go to oci unchanged are not judged.
#[test]
fn a_clock_oci_refuses_makes_the_profile_unusable() {
    let mut i = inputs(valid(), RenewalKind::Idp, RefreshTokenState::Plain);
    i.clock_skew = 240;
    let r = assess(&i, NOW);
    assert_eq!((r.exit_code, r.clock_skew_s), (0, 240));
    // Decided in token time, shown in this machine's: one clock in the report.
    assert_eq!((r.now, r.token.expires_at, r.token.expires_in), (NOW - 240, Some(NOW + 3000 - 240), Some(3000)));
    assert_eq!(r.token.issued_at, Some(NOW - 600 - 240));
    assert!(render_text(&r, &no_daemon()).contains("clock: 4m00s behind the servers'"));
    i.clock_skew = -400;
    let r = assess(&i, NOW);
    assert_eq!((r.exit_code, r.next_action), (exit::FAILURE, "none"));
    assert!(r.reason.contains("OCI refuses requests whose date is more than 5 minutes off"), "{}", r.reason);
    // Ahead: token time is this clock; the token was issued when this clock read 6m40s later.
    assert_eq!((r.now, r.token.expires_at, r.token.issued_at), (NOW, Some(NOW + 3000), Some(NOW - 600 + 400)));
    assert!(
        r.reason.contains("6m40s ahead of the servers'") && r.reason.contains("set the clock right"),
        "{}",
        r.reason
    );
    i.auth = Some("api_key".into());
    assert_eq!(assess(&i, NOW).exit_code, 0);
}
