//! The decision table: every plan, from facts and time alone (no files, no clock, no network), in
//! the manner of smithy-rs's credential-cache harness: one row per situation.

use super::*;
use crate::error::exit;
use crate::jwt::UpstClaims;
use crate::renew::facts::{testing, KeyState, RefreshInput};
use crate::settings::RenewMode;

const NOW: i64 = 1_800_000_000;

fn claims(iat: i64, exp: i64) -> UpstClaims {
    UpstClaims { exp, iat: Some(iat), sub: None, tenant: None, sess_exp: None, jti: None, jwk: None }
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
fn session_ended() -> TokenInput {
    let mut c = claims(NOW - 3570, NOW + 30);
    c.sess_exp = Some(serde_json::Value::String(jwt::format_sess_exp(NOW - 5)));
    testing::present(c)
}

/// Inside the safety window, but its expiry is the session's end: no refresh can extend it.
fn at_session_end() -> TokenInput {
    let mut c = claims(NOW - 3570, NOW + 30);
    c.sess_exp = Some(serde_json::Value::String(jwt::format_sess_exp(NOW + 30)));
    testing::present(c)
}

/// Which test mode a row uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RenewalKind {
    Idp,
    SessionRefresh,
    Federated,
}

fn mode(k: RenewalKind) -> &'static RenewMode {
    match k {
        RenewalKind::Idp => testing::login(),
        RenewalKind::SessionRefresh => testing::session_refresh(),
        RenewalKind::Federated => testing::federated(),
    }
}

type Tweak = fn(&mut SessionFacts<'static>);

struct Row {
    name: &'static str,
    token: TokenInput,
    renewal: RenewalKind,
    rt: RefreshTokenState,
    tweak: Tweak,
    force: Force,
    want: &'static str,
    code: u8,
    reason_has: &'static str,
}

fn none(_: &mut SessionFacts<'static>) {}

/// A login profile without `redirect_port`, run from a terminal or not.
fn no_port(interactive: bool) -> Tweak {
    fn with(f: &mut SessionFacts<'static>, interactive: bool) {
        let RenewMode::Login(c) = testing::login() else { unreachable!() };
        let mut c = (**c).clone();
        c.idp.redirect_port = None;
        c.interactive = interactive;
        f.mode = Box::leak(Box::new(RenewMode::Login(Box::new(c))));
    }
    match interactive {
        true => |f| with(f, true),
        false => |f| with(f, false),
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    name: &'static str,
    token: TokenInput,
    renewal: RenewalKind,
    rt: RefreshTokenState,
    tweak: Tweak,
    force: Force,
    want: &'static str,
    code: u8,
    reason_has: &'static str,
) -> Row {
    Row { name, token, renewal, rt, tweak, force, want, code, reason_has }
}

#[test]
fn decision_table() {
    use Force::{Login as FLogin, No, Renew};
    use RefreshTokenState::{Absent, Encrypted, Plain};
    use RenewalKind::{Federated as Fed, Idp, SessionRefresh as Sr};
    let rows = vec![
        row("valid idp token", valid(), Idp, Plain, none, No, "none", 0, "valid for 50m00s"),
        row("valid token, no refresh token", valid(), Idp, Absent, none, No, "none", 0, "valid"),
        row("valid session-refresh token", valid(), Sr, Absent, none, No, "none", 0, "valid"),
        row(
            "config lacks woci's entries",
            valid(),
            Idp,
            Plain,
            |f| f.config_current = false,
            No,
            "finish_config",
            0,
            "lacks woci's entries",
        ),
        row("expiring + refresh token", expiring(), Idp, Plain, none, No, "refresh", 0, "inside the safety window"),
        row("expired + refresh token", expired(), Idp, Plain, none, No, "refresh", 0, "expired 6m40s ago"),
        row("missing + refresh token", TokenInput::Missing, Idp, Plain, none, No, "refresh", 0, "no session token"),
        row("no refresh token", expired(), Idp, Absent, none, No, "login", exit::LOGIN, "no refresh token is stored"),
        // A browser login without `redirect_port` cannot start: where a person could log in, that
        // is the fix; without a terminal the call's answer is the login it cannot make (exit 3),
        // as for every profile, not a settings error one call and a login the next.
        row(
            "no redirect_port, a terminal",
            expired(),
            Idp,
            Absent,
            no_port(true),
            No,
            "impossible",
            exit::CONFIG,
            "needs `redirect_port`",
        ),
        row(
            "no redirect_port, no terminal",
            expired(),
            Idp,
            Absent,
            no_port(false),
            No,
            "login",
            exit::LOGIN,
            "no refresh token is stored",
        ),
        row(
            "refresh_token.expires passed",
            expired(),
            Idp,
            Plain,
            |f| f.refresh.expires_at = Some(NOW - 1),
            No,
            "login",
            exit::LOGIN,
            "refresh token expired",
        ),
        row(
            "refresh_token.expires ahead",
            expired(),
            Idp,
            Plain,
            |f| f.refresh.expires_at = Some(NOW + 86_400),
            No,
            "refresh",
            0,
            "stored refresh token",
        ),
        row(
            "encrypted, no passphrase",
            expired(),
            Idp,
            Encrypted,
            none,
            No,
            "impossible",
            exit::REFRESH_TOKEN_LOCKED,
            "no passphrase is configured",
        ),
        row(
            "encrypted, variable unset",
            expired(),
            Idp,
            Encrypted,
            |f| f.refresh.passphrase = PassphraseInput::Env { var: "V".into(), set: false },
            No,
            "impossible",
            exit::CONFIG,
            "`V`",
        ),
        // The variable also seals the next refresh token: unset, every renewal stops at once.
        row(
            "plain, variable unset",
            expired(),
            Idp,
            Plain,
            |f| f.refresh.passphrase = PassphraseInput::Env { var: "V".into(), set: false },
            No,
            "impossible",
            exit::CONFIG,
            "`V` (named by `refresh_token_passphrase_env` in `woci_manager.ini`) is not set",
        ),
        row(
            "no refresh token, variable unset",
            expired(),
            Idp,
            Absent,
            |f| f.refresh.passphrase = PassphraseInput::Env { var: "V".into(), set: false },
            FLogin,
            "impossible",
            exit::CONFIG,
            "is not set",
        ),
        row(
            "encrypted, wrong passphrase",
            expired(),
            Idp,
            Encrypted,
            |f| {
                f.refresh.passphrase = PassphraseInput::Env { var: "V".into(), set: true };
                f.refresh.decryptable = Some(false)
            },
            No,
            "impossible",
            exit::REFRESH_TOKEN_LOCKED,
            "does not open",
        ),
        row(
            "encrypted, passphrase opens it",
            expired(),
            Idp,
            Encrypted,
            |f| {
                f.refresh.passphrase = PassphraseInput::Env { var: "V".into(), set: true };
                f.refresh.decryptable = Some(true)
            },
            No,
            "refresh",
            0,
            "",
        ),
        row(
            "encrypted, prompt",
            expired(),
            Idp,
            Encrypted,
            |f| f.refresh.passphrase = PassphraseInput::Prompt,
            No,
            "refresh",
            0,
            "asks for the passphrase",
        ),
        row(
            "corrupt token",
            TokenInput::Corrupt("not a JWT".into()),
            Idp,
            Absent,
            none,
            No,
            "impossible",
            exit::CORRUPT_FILE,
            "corrupt file `/h/.oci/sessions/P/token`: not a JWT; move it away and run `woci session authenticate",
        ),
        // Round 93 N6: the stored refresh token renews it; no login is needed.
        row(
            "corrupt token beside a refresh token",
            TokenInput::Corrupt("not a JWT".into()),
            Idp,
            Plain,
            none,
            No,
            "impossible",
            exit::CORRUPT_FILE,
            "not a JWT; move it away (the next call renews the session with the stored refresh token)",
        ),
        row(
            "corrupt token of a profile without an IdP",
            TokenInput::Corrupt("not a JWT".into()),
            Sr,
            Absent,
            none,
            No,
            "impossible",
            exit::CORRUPT_FILE,
            "not a JWT; move it away and run `command oci session authenticate",
        ),
        row(
            "corrupt token, login asked",
            TokenInput::Corrupt("x".into()),
            Idp,
            Plain,
            none,
            FLogin,
            "login",
            exit::LOGIN,
            "login was asked for",
        ),
        row("renewal asked, valid idp token", valid(), Idp, Plain, none, Renew, "refresh", 0, "renewal was asked for"),
        row("renewal asked, valid session token", valid(), Sr, Absent, none, Renew, "session_refresh", 0, ""),
        row("login asked", valid(), Idp, Plain, none, FLogin, "login", exit::LOGIN, ""),
        row(
            "no manager INI at all",
            TokenInput::Missing,
            Sr,
            Absent,
            none,
            No,
            "impossible",
            exit::SESSION_EXPIRED,
            "no `woci_manager.ini` was found",
        ),
        row(
            "manager INI without the profile",
            TokenInput::Missing,
            Sr,
            Absent,
            |f| f.manager_ini = Some(("/h/.oci/woci_manager.ini".into(), false)),
            No,
            "impossible",
            exit::SESSION_EXPIRED,
            "`/h/.oci/woci_manager.ini` has no `[P]` section",
        ),
        row(
            "no manager INI: the file to add",
            TokenInput::Missing,
            Sr,
            Absent,
            |f| f.config_file = "/h/cfg/config".into(),
            No,
            "impossible",
            exit::SESSION_EXPIRED,
            "or add the profile's IdP settings to `/h/cfg/woci_manager.ini` (a `[P]` section)",
        ),
        row(
            "login asked without an IdP",
            valid(),
            Sr,
            Absent,
            none,
            FLogin,
            "impossible",
            exit::CONFIG,
            "cannot log in",
        ),
        row("session refresh", expiring(), Sr, Absent, none, No, "session_refresh", 0, "OCI auth service"),
        row(
            "session expired",
            expired(),
            Sr,
            Absent,
            none,
            No,
            "impossible",
            exit::SESSION_EXPIRED,
            "cannot refresh an expired session",
        ),
        row(
            "session token missing",
            TokenInput::Missing,
            Sr,
            Absent,
            none,
            No,
            "impossible",
            exit::SESSION_EXPIRED,
            "command oci session authenticate --profile P",
        ),
        row("sess_exp reached", session_ended(), Sr, Absent, none, No, "impossible", exit::SESSION_EXPIRED, "sess_exp"),
        row(
            "token to the session's end",
            at_session_end(),
            Sr,
            Absent,
            none,
            No,
            "none",
            0,
            "which no refresh extends",
        ),
        row(
            "OCI config missing",
            TokenInput::Missing,
            Sr,
            Absent,
            |f| f.config = ConfigState::FileMissing,
            No,
            "impossible",
            exit::CONFIG,
            "`/h/.oci/config` does not exist",
        ),
        row(
            "profile missing in config",
            TokenInput::Missing,
            Sr,
            Absent,
            |f| f.config = ConfigState::ProfileMissing(vec![]),
            No,
            "impossible",
            exit::CONFIG,
            "not in the OCI config `/h/.oci/config`",
        ),
        row(
            "woci settings unusable",
            valid(),
            Idp,
            Plain,
            |f| f.mode = Box::leak(Box::new(RenewMode::Unusable("missing `client_secret`".into()))),
            No,
            "impossible",
            exit::CONFIG,
            "missing `client_secret`",
        ),
        row("federated, valid", valid(), Fed, Absent, none, No, "none", 0, "valid"),
        row("federated, expired", expired(), Fed, Absent, none, No, "exchange", 0, "subject token source"),
        row("federated, no token", TokenInput::Missing, Fed, Absent, none, No, "exchange", 0, ""),
        row(
            "federated, config lacks entries",
            valid(),
            Fed,
            Absent,
            |f| f.config_current = false,
            No,
            "finish_config",
            0,
            "",
        ),
        row(
            "federated, token without a key",
            valid(),
            Fed,
            Absent,
            |f| {
                f.config_current = false;
                f.key = KeyState::Missing
            },
            No,
            "exchange",
            0,
            "no key pair",
        ),
        row(
            "federated, source unavailable",
            expired(),
            Fed,
            Absent,
            |f| f.source_problem = Some("`TOK` is not set".into()),
            No,
            "impossible",
            exit::SUBJECT_TOKEN,
            "`TOK` is not set",
        ),
        row("federated, login asked", valid(), Fed, Absent, none, FLogin, "impossible", exit::CONFIG, "never logs in"),
        row(
            "federated, the variable's JWT expired",
            expired(),
            Fed,
            Absent,
            |f| f.source_expires_at = Some(NOW - 50),
            No,
            "impossible",
            exit::SUBJECT_TOKEN,
            "holds a JWT that expired 50s ago",
        ),
        row(
            "valid token, corrupt key",
            valid(),
            Idp,
            Plain,
            |f| f.key = KeyState::Unusable { reason: "corrupt file `k`".into(), exit_code: exit::CORRUPT_FILE },
            No,
            "impossible",
            exit::CORRUPT_FILE,
            "corrupt file `k`",
        ),
        row(
            "valid token, unreadable key, login asked",
            valid(),
            Idp,
            Plain,
            |f| f.key = KeyState::Unusable { reason: "cannot read the key".into(), exit_code: exit::CORRUPT_FILE },
            FLogin,
            "impossible",
            exit::CORRUPT_FILE,
            "cannot read",
        ),
        row(
            "valid token, world-writable ~/.oci",
            valid(),
            Sr,
            Absent,
            |f| f.unsafe_folder = Some("`/h/.oci` is writable by every user".into()),
            No,
            "impossible",
            exit::CONFIG,
            "writable by every user",
        ),
        row(
            "profile missing, the config's profiles named",
            TokenInput::Missing,
            Sr,
            Absent,
            |f| f.config = ConfigState::ProfileMissing(vec!["DEFAULT".into(), "EMU".into()]),
            No,
            "impossible",
            exit::CONFIG,
            "(it has `DEFAULT`, `EMU`)",
        ),
        row(
            "no profile named, the config has others",
            TokenInput::Missing,
            Sr,
            Absent,
            |f| {
                f.profile = "DEFAULT".into();
                f.config = ConfigState::ProfileMissing(vec!["EMU".into()]);
            },
            No,
            "impossible",
            exit::CONFIG,
            "name one of its profiles (`--profile EMU` or `export OCI_CLI_PROFILE=EMU`), run `command oci",
        ),
        row(
            "short token, capped window",
            testing::present(claims(NOW - 2, NOW + 8)),
            Idp,
            Absent,
            none,
            No,
            "none",
            0,
            "",
        ),
    ];
    for r in rows {
        let mut facts = SessionFacts::for_tests(r.token, mode(r.renewal), r.rt);
        (r.tweak)(&mut facts);
        let d = plan(&facts, r.force, NOW);
        assert_eq!((d.plan.name(), d.exit_code()), (r.want, r.code), "{}: {}", r.name, d.reason);
        assert!(d.reason.contains(r.reason_has), "{}: {:?} lacks {:?}", r.name, d.reason, r.reason_has);
        assert!(!d.reason.contains('\n'), "{}: one line", r.name);
    }
}

#[test]
fn impossible_plans_become_errors_with_their_exit_code() {
    for (tweak, code) in [
        (
            (|f: &mut SessionFacts<'static>| f.mode = Box::leak(Box::new(RenewMode::Unusable("x".into())))) as Tweak,
            exit::CONFIG,
        ),
        (|f: &mut SessionFacts<'static>| f.token = TokenInput::Corrupt("x".into()), exit::CORRUPT_FILE),
        (|f: &mut SessionFacts<'static>| f.refresh.state = RefreshTokenState::Encrypted, exit::REFRESH_TOKEN_LOCKED),
        (
            |f: &mut SessionFacts<'static>| {
                f.mode = testing::session_refresh();
                f.refresh.state = RefreshTokenState::Absent;
            },
            exit::SESSION_EXPIRED,
        ),
        // A woci login's session (its refresh token stored) whose IdP settings are gone.
        (|f: &mut SessionFacts<'static>| f.mode = testing::session_refresh(), exit::CONFIG),
    ] {
        let mut f = SessionFacts::for_tests(expired(), mode(RenewalKind::Idp), RefreshTokenState::Plain);
        tweak(&mut f);
        let d = plan(&f, Force::No, NOW);
        let reason = d.reason.clone();
        let Plan::Impossible { exit_code } = d.plan else { panic!("{reason}") };
        let e = blocked(exit_code, d.reason);
        assert_eq!(e.exit_code(), code, "{reason}");
        assert_eq!(e.to_string(), reason);
    }
}

#[test]
fn refresh_input_defaults_say_nothing_about_decryption() {
    let f = SessionFacts::for_tests(expired(), mode(RenewalKind::Idp), RefreshTokenState::Plain);
    assert_eq!(
        f.refresh,
        RefreshInput {
            state: RefreshTokenState::Plain,
            passphrase: PassphraseInput::None,
            decryptable: None,
            rejected: None,
            damage: None,
            expires_at: None,
            expiry_recorded: false,
            rescued: None,
            unsettled: None
        }
    );
}

#[test]
fn a_damaged_refresh_token_or_lock_is_impossible_only_when_a_renewal_is_needed() {
    let damaged = |f: &mut SessionFacts<'static>| f.refresh.damage = Some("corrupt file `rt`: not UTF-8 text".into());
    let bad_lock = |f: &mut SessionFacts<'static>| f.lock_problem = Some("`.lock` is not a regular file".into());
    let read_only = |f: &mut SessionFacts<'static>| {
        f.unwritable = Some("cannot write in `/h/.oci/sessions/P`: Read-only file system (os error 30)".into())
    };
    for (change, exit_code, says) in [
        (damaged as fn(&mut _), exit::CORRUPT_FILE, "move it away"),
        (bad_lock, exit::CONFIG, "renewal lock"),
        (read_only, exit::FAILURE, "but cannot write in `/h/.oci/sessions/P`"),
    ] {
        let mut f = SessionFacts::for_tests(expired(), mode(RenewalKind::Idp), RefreshTokenState::Plain);
        change(&mut f);
        let d = plan(&f, Force::No, NOW);
        assert_eq!(d.exit_code(), exit_code, "{}", d.reason);
        assert!(d.reason.contains(says), "{}", d.reason);
        let mut f = SessionFacts::for_tests(valid(), mode(RenewalKind::Idp), RefreshTokenState::Plain);
        change(&mut f);
        assert_eq!(plan(&f, Force::No, NOW).exit_code(), 0, "a valid token needs neither");
    }
}

/// A stopped process holding the renewal lock blocks every renewal; one holding the login lock
/// (Ctrl-Z in `woci session authenticate`) only a login: a refresh takes no login lock (round
/// 105's review: `--status` said exit 10 while the call refreshed).
#[test]
fn a_stopped_login_blocks_only_a_login() {
    for (holder, rt, want, code) in [
        ((7, false), RefreshTokenState::Plain, "impossible", exit::BUSY),
        ((7, true), RefreshTokenState::Plain, "refresh", 0),
        ((7, true), RefreshTokenState::Absent, "impossible", exit::BUSY),
    ] {
        let mut f = SessionFacts::for_tests(expired(), mode(RenewalKind::Idp), rt);
        f.stopped_holder = Some(holder);
        let d = plan(&f, Force::No, NOW);
        assert_eq!((d.plan.name(), d.exit_code()), (want, code), "{holder:?} {rt:?}: {}", d.reason);
        assert!(code == 0 || d.reason.contains("pid 7"), "{}", d.reason);
    }
}

#[test]
fn an_interrupted_rotation_is_completed_or_needs_a_login() {
    use crate::store::InterruptedRotation::{Complete, Incomplete};
    let tmp = std::path::PathBuf::from("/h/.oci/sessions/P/.refresh_token.7.ab.tmp");
    let rows = [
        (TokenInput::Missing, Some(Complete(tmp.clone())), "refresh", 0, "will be completed by the next call"),
        (expired(), Some(Incomplete(tmp.clone())), "login", exit::LOGIN, "probably spent the stored one"),
        (valid(), Some(Complete(tmp.clone())), "none", 0, "will be completed by the next renewal"),
        (valid(), Some(Incomplete(tmp.clone())), "none", 0, "will probably need a login"),
        (expired(), None, "refresh", 0, "uses the stored refresh token"),
    ];
    for (token, rotation, want, code, says) in rows {
        let mut f = SessionFacts::for_tests(token, mode(RenewalKind::Idp), RefreshTokenState::Plain);
        f.rotation = rotation.clone();
        let d = plan(&f, Force::No, NOW);
        assert_eq!((d.plan.name(), d.exit_code()), (want, code), "{rotation:?}: {}", d.reason);
        assert!(d.reason.contains(says), "{rotation:?}: {:?} lacks {says:?}", d.reason);
    }
}

#[test]
fn a_token_bound_to_another_key_is_renewed_or_needs_the_key_back() {
    for (kind, plan_name, exit_code) in [
        (RenewalKind::Idp, "refresh", 0),
        (RenewalKind::Federated, "exchange", 0),
        (RenewalKind::SessionRefresh, "impossible", exit::SESSION_EXPIRED),
    ] {
        let rt = match kind {
            RenewalKind::SessionRefresh => RefreshTokenState::Absent,
            _ => RefreshTokenState::Plain,
        };
        let mut f = SessionFacts::for_tests(valid(), mode(kind), rt);
        f.key_mismatch = true;
        let d = plan(&f, Force::No, NOW);
        assert_eq!((d.plan.name(), d.exit_code()), (plan_name, exit_code), "{kind:?}: {}", d.reason);
        assert!(d.reason.contains("bound to another key"), "{}", d.reason);
    }
}

#[test]
fn a_refused_refresh_token_needs_a_login_unless_a_renewal_is_asked_for() {
    let mut f = SessionFacts::for_tests(expired(), mode(RenewalKind::Idp), RefreshTokenState::Plain);
    f.refresh.rejected = Some("identity provider rejected the refresh token: invalid_grant".into());
    let d = plan(&f, Force::No, NOW);
    assert_eq!((d.plan.name(), d.exit_code()), ("login", exit::LOGIN), "{}", d.reason);
    assert!(d.reason.contains("refused earlier (identity provider rejected"), "{}", d.reason);
    assert_eq!(plan(&f, Force::Renew, NOW).plan.name(), "refresh", "`session refresh` asks again");
}

/// A supervisor (`ahead`) renews a little before its window opens, and its plan agrees with the
/// loop's schedule: the loop never wakes to a plan that only reuses the token.
#[test]
fn a_supervisor_renews_ahead_where_its_schedule_wakes_it() {
    let token = || testing::present(claims(NOW - 600, NOW + 610));
    for (ahead, want) in [(false, "none"), (true, "refresh")] {
        let mut f = SessionFacts::for_tests(token(), mode(RenewalKind::Idp), RefreshTokenState::Plain);
        (f.window, f.ahead) = (Duration::from_secs(600), ahead);
        assert_eq!(plan(&f, Force::No, NOW).plan.name(), want, "ahead: {ahead}");
        let c = claims(NOW - 600, NOW + 610);
        let wake = crate::renew::schedule::next_renewal_in(&c, NOW - 100, f.window, ahead);
        let at = NOW - 100 + secs(wake);
        assert_eq!(plan(&f, Force::No, at).plan.name(), "refresh", "due at its wake-up (ahead: {ahead})");
    }
}

/// `--status` says what the call would meet when woci's entries are due in a config folder it
/// cannot write into (the call fails there, exit 1), and a renewal stays retryable for the loop.
#[test]
fn entries_due_in_an_unwritable_config_folder_are_a_failure_said_ahead() {
    let mut f = SessionFacts::for_tests(valid(), mode(RenewalKind::Idp), RefreshTokenState::Plain);
    f.config_current = false;
    assert_eq!(plan(&f, Force::No, NOW).plan.name(), "finish_config");
    f.config_unwritable = Some("cannot write in `/h/.oci`: Permission denied (os error 13)".into());
    let d = plan(&f, Force::No, NOW);
    assert_eq!(d.exit_code(), exit::FAILURE, "{}", d.reason);
    assert!(d.reason.contains("entries for profile `P` cannot be written: cannot write in `/h/.oci`"), "{}", d.reason);
    let Plan::Impossible { exit_code } = d.plan else { unreachable!() };
    assert!(crate::renew::schedule::is_retryable(&blocked(exit_code, d.reason)));
}

#[test]
fn a_rescued_refresh_token_is_named_as_the_one_used() {
    let mut f = SessionFacts::for_tests(expired(), mode(RenewalKind::Idp), RefreshTokenState::Plain);
    f.refresh.rescued = Some("/run/user/1000/woci-rescue/P.refresh_token".into());
    let d = plan(&f, Force::No, NOW);
    assert_eq!(d.plan.name(), "refresh");
    assert!(d.reason.contains("uses the rescued refresh token"), "{}", d.reason);
}

/// A call without the passphrase variable (a woci run by another woci's `--exec`, a shell beside
/// the daemon) uses a token inside its window as it is: the woci with the variable renews it.
/// Once it has expired, the missing variable is the call's error.
#[test]
fn a_missing_passphrase_variable_leaves_a_valid_token_in_use() {
    for (token, plan_name, code) in [(expiring(), "none", 0), (expired(), "impossible", exit::CONFIG)] {
        let mut f = SessionFacts::for_tests(token, mode(RenewalKind::Idp), RefreshTokenState::Encrypted);
        f.refresh.passphrase = PassphraseInput::Env { var: "V".into(), set: false };
        let d = plan(&f, Force::No, NOW);
        assert_eq!((d.plan.name(), d.exit_code()), (plan_name, code), "{}", d.reason);
        assert!(d.reason.contains("`V`"), "{}", d.reason);
    }
}
