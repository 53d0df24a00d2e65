//! The decision table: every plan, from facts and time alone (no files, no clock, no network), in
//! the manner of smithy-rs's credential-cache harness: one row per situation.

use super::*;
use crate::error::exit;
use crate::jwt::UpstClaims;
use crate::renew::facts::RefreshInput;

const NOW: i64 = 1_800_000_000;

fn claims(iat: i64, exp: i64) -> UpstClaims {
    UpstClaims { exp, iat: Some(iat), sub: None, tenant: None, sess_exp: None, jti: None, jwk: None }
}
fn valid() -> TokenInput {
    TokenInput::Present(claims(NOW - 600, NOW + 3000))
}
fn expiring() -> TokenInput {
    TokenInput::Present(claims(NOW - 3570, NOW + 30))
}
fn expired() -> TokenInput {
    TokenInput::Present(claims(NOW - 4000, NOW - 400))
}
fn session_ended() -> TokenInput {
    let mut c = claims(NOW - 3570, NOW + 30);
    c.sess_exp = Some(serde_json::Value::String(jwt::format_sess_exp(NOW - 5)));
    TokenInput::Present(c)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Reuse,
    FinishConfig,
    Refresh,
    Login,
    SessionRefresh,
    Exchange,
    Impossible,
}

fn kind(p: Plan) -> Want {
    match p {
        Plan::Reuse { .. } => Want::Reuse,
        Plan::FinishConfig { .. } => Want::FinishConfig,
        Plan::Refresh => Want::Refresh,
        Plan::Login => Want::Login,
        Plan::SessionRefresh => Want::SessionRefresh,
        Plan::Exchange => Want::Exchange,
        Plan::Impossible { .. } => Want::Impossible,
    }
}

type Tweak = fn(&mut SessionFacts);

struct Row {
    name: &'static str,
    token: TokenInput,
    renewal: RenewalKind,
    rt: RefreshTokenState,
    tweak: Tweak,
    force: Force,
    want: Want,
    code: u8,
    reason_has: &'static str,
}

fn none(_: &mut SessionFacts) {}

#[allow(clippy::too_many_arguments)]
fn row(
    name: &'static str,
    token: TokenInput,
    renewal: RenewalKind,
    rt: RefreshTokenState,
    tweak: Tweak,
    force: Force,
    want: Want,
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
        row("valid idp token", valid(), Idp, Plain, none, No, Want::Reuse, 0, "valid for 50m00s"),
        row("valid token, no refresh token", valid(), Idp, Absent, none, No, Want::Reuse, 0, "valid"),
        row("valid session-refresh token", valid(), Sr, Absent, none, No, Want::Reuse, 0, "valid"),
        row(
            "config lacks woci's entries",
            valid(),
            Idp,
            Plain,
            |f| f.config_current = false,
            No,
            Want::FinishConfig,
            0,
            "lacks woci's entries",
        ),
        row("expiring + refresh token", expiring(), Idp, Plain, none, No, Want::Refresh, 0, "inside the safety window"),
        row("expired + refresh token", expired(), Idp, Plain, none, No, Want::Refresh, 0, "expired 6m40s ago"),
        row("missing + refresh token", TokenInput::Missing, Idp, Plain, none, No, Want::Refresh, 0, "no session token"),
        row(
            "no refresh token",
            expired(),
            Idp,
            Absent,
            none,
            No,
            Want::Login,
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
            Want::Login,
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
            Want::Refresh,
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
            Want::Impossible,
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
            Want::Impossible,
            exit::CONFIG,
            "`V`",
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
            Want::Impossible,
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
            Want::Refresh,
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
            Want::Refresh,
            0,
            "asks for the passphrase",
        ),
        row(
            "corrupt token",
            TokenInput::Corrupt("not a JWT".into()),
            Idp,
            Plain,
            none,
            No,
            Want::Impossible,
            exit::CORRUPT_FILE,
            "corrupt file `/h/.oci/sessions/P/token`: not a JWT",
        ),
        row(
            "corrupt token, login asked",
            TokenInput::Corrupt("x".into()),
            Idp,
            Plain,
            none,
            FLogin,
            Want::Login,
            exit::LOGIN,
            "login was asked for",
        ),
        row(
            "renewal asked, valid idp token",
            valid(),
            Idp,
            Plain,
            none,
            Renew,
            Want::Refresh,
            0,
            "renewal was asked for",
        ),
        row("renewal asked, valid session token", valid(), Sr, Absent, none, Renew, Want::SessionRefresh, 0, ""),
        row("login asked", valid(), Idp, Plain, none, FLogin, Want::Login, exit::LOGIN, ""),
        row(
            "no manager INI at all",
            TokenInput::Missing,
            Sr,
            Absent,
            none,
            No,
            Want::Impossible,
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
            Want::Impossible,
            exit::SESSION_EXPIRED,
            "`/h/.oci/woci_manager.ini` has no `[P]` section",
        ),
        row(
            "login asked without an IdP",
            valid(),
            Sr,
            Absent,
            none,
            FLogin,
            Want::Impossible,
            exit::CONFIG,
            "cannot log in",
        ),
        row("session refresh", expiring(), Sr, Absent, none, No, Want::SessionRefresh, 0, "OCI auth service"),
        row(
            "session expired",
            expired(),
            Sr,
            Absent,
            none,
            No,
            Want::Impossible,
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
            Want::Impossible,
            exit::SESSION_EXPIRED,
            "command oci session authenticate --profile P",
        ),
        row(
            "sess_exp reached",
            session_ended(),
            Sr,
            Absent,
            none,
            No,
            Want::Impossible,
            exit::SESSION_EXPIRED,
            "sess_exp",
        ),
        row(
            "OCI config missing",
            TokenInput::Missing,
            Sr,
            Absent,
            |f| f.config = ConfigState::FileMissing,
            No,
            Want::Impossible,
            exit::CONFIG,
            "`/h/.oci/config` does not exist",
        ),
        row(
            "profile missing in config",
            TokenInput::Missing,
            Sr,
            Absent,
            |f| f.config = ConfigState::ProfileMissing,
            No,
            Want::Impossible,
            exit::CONFIG,
            "not in the OCI config `/h/.oci/config`",
        ),
        row(
            "woci settings unusable",
            valid(),
            Idp,
            Plain,
            |f| f.unusable = Some("missing `client_secret`".into()),
            No,
            Want::Impossible,
            exit::CONFIG,
            "missing `client_secret`",
        ),
        row("federated, valid", valid(), Fed, Absent, none, No, Want::Reuse, 0, "valid"),
        row("federated, expired", expired(), Fed, Absent, none, No, Want::Exchange, 0, "subject token source"),
        row("federated, no token", TokenInput::Missing, Fed, Absent, none, No, Want::Exchange, 0, ""),
        row(
            "federated, config lacks entries",
            valid(),
            Fed,
            Absent,
            |f| f.config_current = false,
            No,
            Want::FinishConfig,
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
                f.key_present = false
            },
            No,
            Want::Exchange,
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
            Want::Impossible,
            exit::SUBJECT_TOKEN,
            "`TOK` is not set",
        ),
        row(
            "federated, login asked",
            valid(),
            Fed,
            Absent,
            none,
            FLogin,
            Want::Impossible,
            exit::CONFIG,
            "never logs in",
        ),
        row(
            "short token, capped window",
            TokenInput::Present(claims(NOW - 2, NOW + 8)),
            Idp,
            Absent,
            none,
            No,
            Want::Reuse,
            0,
            "",
        ),
    ];
    for r in rows {
        let mut facts = SessionFacts::for_tests(r.token, r.renewal, r.rt);
        (r.tweak)(&mut facts);
        let d = plan(&facts, r.force, NOW);
        assert_eq!((kind(d.plan), d.exit_code()), (r.want, r.code), "{}: {}", r.name, d.reason);
        assert!(d.reason.contains(r.reason_has), "{}: {:?} lacks {:?}", r.name, d.reason, r.reason_has);
        assert!(!d.reason.contains('\n'), "{}: one line", r.name);
    }
}

#[test]
fn impossible_plans_become_errors_with_their_exit_code() {
    for (tweak, code) in [
        ((|f: &mut SessionFacts| f.unusable = Some("x".into())) as Tweak, exit::CONFIG),
        (|f: &mut SessionFacts| f.token = TokenInput::Corrupt("x".into()), exit::CORRUPT_FILE),
        (|f: &mut SessionFacts| f.refresh.state = RefreshTokenState::Encrypted, exit::REFRESH_TOKEN_LOCKED),
        (|f: &mut SessionFacts| f.renewal = RenewalKind::SessionRefresh, exit::SESSION_EXPIRED),
    ] {
        let mut f = SessionFacts::for_tests(expired(), RenewalKind::Idp, RefreshTokenState::Plain);
        tweak(&mut f);
        let d = plan(&f, Force::No, NOW);
        let reason = d.reason.clone();
        let e = d.into_error();
        assert_eq!(e.exit_code(), code, "{reason}");
        assert_eq!(e.to_string(), reason);
    }
}

#[test]
fn refresh_input_defaults_say_nothing_about_decryption() {
    let f = SessionFacts::for_tests(expired(), RenewalKind::Idp, RefreshTokenState::Plain);
    assert_eq!(
        f.refresh,
        RefreshInput {
            state: RefreshTokenState::Plain,
            passphrase: PassphraseInput::None,
            decryptable: None,
            expires_at: None
        }
    );
}

#[test]
fn an_interrupted_rotation_is_completed_or_needs_a_login() {
    use crate::store::InterruptedRotation::{Complete, Incomplete};
    let tmp = std::path::PathBuf::from("/h/.oci/sessions/P/.refresh_token.7.ab.tmp");
    let rows = [
        (TokenInput::Missing, Some(Complete(tmp.clone())), Want::Refresh, 0, "will be completed by the next call"),
        (expired(), Some(Incomplete(tmp.clone())), Want::Login, exit::LOGIN, "probably spent the stored one"),
        (valid(), Some(Complete(tmp.clone())), Want::Reuse, 0, "will be completed by the next renewal"),
        (valid(), Some(Incomplete(tmp.clone())), Want::Reuse, 0, "will probably need a login"),
        (expired(), None, Want::Refresh, 0, "uses the stored refresh token"),
    ];
    for (token, rotation, want, code, says) in rows {
        let mut f = SessionFacts::for_tests(token, RenewalKind::Idp, RefreshTokenState::Plain);
        f.rotation = rotation.clone();
        let d = plan(&f, Force::No, NOW);
        assert_eq!((kind(d.plan), d.exit_code()), (want, code), "{rotation:?}: {}", d.reason);
        assert!(d.reason.contains(says), "{rotation:?}: {:?} lacks {says:?}", d.reason);
    }
}
