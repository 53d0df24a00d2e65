//! `woci --status [--json | --prompt | --all]`: what a profile's session looks like and what the
//! next woci call would do, from local files only — no network, no renewal lock, no prompt, never
//! a token.
//!
//! The decision is the renewal plan itself ([`crate::renew::plan::plan`]) over the same facts the
//! next call reads, so status cannot disagree with the call; [`assess`] is pure over [`Inputs`]
//! and the time.
//!
//! Exit code (also `exit_code` in the JSON) — the code the next call would exit with, or 0 when
//! it works without a person: `0` usable (valid, or renewable without a person); `3` an
//! interactive login is needed (a call that can ask for one does so first, even where it would
//! run with the current token when nobody logs in); otherwise the blocking error's code (`2`
//! settings, `7` a damaged file, `8` a locked refresh token, `9` a session that cannot be
//! renewed, `11` a subject token source that cannot give a token).
//!
//! Text and JSON are safe on a terminal ([`crate::terminal`]): in the text, control and format
//! characters of a claim or an error are visible escapes; in the JSON they are `\uXXXX` escapes,
//! so a parser still reads the exact value.
//!
//! JSON (`"schema": 1`; times are seconds since the Unix epoch, durations in seconds, `null` when
//! unknown): `profile`, `now`, `usable`, `exit_code`, `next_action` (`none` | `finish_config` |
//! `refresh` | `login` | `session_refresh` | `exchange` | `impossible`), `reason`, `renewal`
//! (`idp` | `session_refresh` | `federated` | `none`: calls go to oci unchanged, an API-key
//! profile or another `--auth`), `token` {`path`, `state` (`valid` | `expiring` |
//! `expired` | `missing` | `corrupt` | `unused`: an API-key profile's inherited `[DEFAULT]` one), `issued_at`, `expires_at`, `expires_in`,
//! `session_expires_at`, `user`, `tenancy`, `error`}, `refresh_token` {`stored`, `encrypted`,
//! `passphrase` (`none` | `env` | `prompt`), `decryptable`, `expires_at`, `interrupted_rotation`
//! (`complete` | `incomplete` | `null`), `rescued` (the rescued copy's path, or `null`), `error` (why it cannot be read or used, or `null`), `rejected` (the identity provider's refusal of it, or `null`),
//! `unsettled_grant` {`pid`, `sent_at`} (a grant with it whose sender ended before the answer was
//! stored: probably spent; `null` when none)}, `daemon` {`running`,
//! `pid`, `stopped` (SIGSTOP), `binary_replaced` (an upgrade since it started), `stale_pid`, `started`, `uptime`, `last_renewal`, `next_renewal`, `token_expires_at`,
//! `last_error`, `last_error_at`, `exit_reason`, `exit_code`, `python_daemon` (the pid of a Python
//! woci daemon that still runs for the profile, or `null`)}, `settings` {setting: where it came from} for the
//! settings not at their default, `fallback_profile`, `runs_as` (the fallback profile the next call
//! runs as, this profile's session being beyond renewal; `null` otherwise), `last_failure` {`at`, `exit_code`, `message`,
//! `transient`} (until a renewal succeeds; `null` when none), `renewal_under_way` {`pid`, `since`, `login` (a login, the person's part included)}
//! (another process's renewal holds the lock; `null` when none), `clock_skew_s` (how far this
//! machine's clock is behind the servers', negative when ahead, as the last renewal showed it).
//! Every time in the report is this machine's, as `date` and the daemon's log have them: a token's
//! are the moments this machine's clock reads when it was issued and when it ends. When the files
//! cannot even be read (a damaged OCI config), the JSON still comes, with `next_action`
//! `impossible` and the error as `reason`.

use crate::clock::{fmt_relative, fmt_utc};
use crate::context::Context;
use crate::daemon::{self, push_line, DaemonInfo, DaemonReport};
use crate::error::Result;
use crate::jwt::Freshness;
use crate::renew::facts::{PassphraseInput, Peek, SessionFacts, TokenInput};
use crate::renew::plan::{freshness, plan, renewal_window};
use crate::renew::Force;
use crate::store::{InterruptedRotation, RefreshTokenState};
use crate::terminal::{print, safe, to_json};
use serde::Serialize;
use std::collections::BTreeMap;

mod all;
pub(crate) mod overview;
pub(crate) use all::{run_all, run_prompt};

/// What status looks at.
#[derive(Debug, Clone)]
pub(crate) struct Inputs<'s> {
    /// The renewal facts.
    pub facts: SessionFacts<'s>,
    /// The daemon.
    pub daemon: DaemonInfo,
    /// Where each setting not at its default came from (plain text).
    pub origins: BTreeMap<String, String>,
    /// The settings whose INI value comes from `[COMMON]`.
    pub shared: std::collections::BTreeSet<String>,
    /// `fallback_profile`.
    pub fallback_profile: Option<String>,
    /// The `--auth` the call runs oci with (`--auth`, `OCI_CLI_AUTH`, `oci_cli_rc`), if any.
    pub auth: Option<String>,
    /// What stops the call before anything else (exit code, message): the shell's open-file limit.
    pub start: Option<(u8, String)>,
    /// Why the `oci` program cannot be run (exit code, message), when it cannot.
    pub program: Option<(u8, String)>,
    /// The last renewal's failure (none after a success), and whether the settings changed since.
    pub last_failure: Option<(crate::store::FailureRecord, bool)>,
    /// Another process's renewal (or login) under way. Not looked at by the prompt.
    pub renewing: Option<UnderWay>,
    /// How far this machine's clock is behind the servers' (negative: ahead), seconds, as the
    /// last renewal showed it. Token decisions go by token time, the later of the two; woci's own
    /// records here (a failure, a grant note, a renewal under way, the daemon's) by this machine's.
    pub clock_skew: i64,
    /// Whether this process has a terminal to ask a prompted passphrase on, as the next call in
    /// the same place would (looked for only when the passphrase is prompted).
    pub terminal: bool,
}

/// How long a transient failure (a server unreachable, a 5xx) counts for the next call: an
/// outage that lasted until a few minutes ago most likely still does.
pub(crate) const TRANSIENT_COUNTS_SECS: i64 = 300;

/// A renewal the next call makes meets what the last one met: a lost answer to a refresh grant
/// (the refresh token is probably spent), a refusal the settings have not been changed for since
/// (`changed`; a login it needs fails the same way too), or, for [`TRANSIENT_COUNTS_SECS`], a
/// transient failure; an older one is only mentioned, as are those two while the token `keeps`
/// (a call runs with it when its renewal fails). A login's refusal counts only where a login can
/// happen (`can_log_in`).
fn after_last_failure(
    exit_code: u8,
    next_action: &str,
    reason: String,
    last: Option<&(crate::store::FailureRecord, bool)>,
    now: i64,
    keeps: bool,
    can_log_in: bool,
) -> (u8, String) {
    let renews = renews(next_action);
    let login = exit_code == crate::error::exit::LOGIN && next_action == "login";
    let Some((f, changed)) = last.filter(|_| renews && (exit_code == 0 || login)) else { return (exit_code, reason) };
    let age = (now - f.at / 1000).max(0);
    let ago = crate::clock::fmt_secs(age);
    let failed = |then: &str| format!("{reason}; but the last renewal, {ago} ago, failed: {}; {then}", f.message);
    if login {
        // A login meets the settings a refusal was met with, not a spent or refused refresh token.
        // Without a terminal or `BROWSER` the call fails for that first (exit 3).
        if !can_log_in
            || f.transient
            || f.reply_lost
            || f.needs_login
            || *changed
            || f.exit_code == crate::error::exit::LOGIN
        {
            return (exit_code, reason);
        }
        return (f.exit_code, failed("a login fails the same way until that is fixed"));
    }
    if f.reply_lost {
        let why = format!(
            "{reason}; but the answer to the last refresh grant ({ago} ago) was lost, so the identity provider has \
             probably spent the stored refresh token and the next renewal will need a login"
        );
        (crate::error::exit::LOGIN, why)
    } else if keeps {
        let why = format!(
            "{reason} (the last renewal, {ago} ago, failed: {}; should the renewal fail again, the call runs with the \
             current token)",
            f.message
        );
        (exit_code, why)
    } else if !f.transient && !changed {
        (f.exit_code, failed("the next call fails the same way until that is fixed"))
    } else if f.transient && !changed && age < TRANSIENT_COUNTS_SECS {
        (f.exit_code, failed("the next call tries again, and fails the same way while that lasts"))
    } else {
        (exit_code, format!("{reason} (the last renewal, {ago} ago, failed: {})", f.message))
    }
}

/// Whether a call with this next action renews the session.
fn renews(next_action: &str) -> bool {
    matches!(next_action, "refresh" | "login" | "session_refresh" | "exchange")
}

/// A stored refresh token a killed woci sent a grant with: the identity provider has probably
/// spent it, unless that was within `refresh_token_reuse_grace`. A refresh next fails (exit 3);
/// with a session token still valid, the renewal after it will (said, exit 0).
fn after_unsettled_grant(exit_code: u8, next_action: &str, reason: String, f: &SessionFacts, now: i64) -> (u8, String) {
    let Some((pid, at)) = f.refresh.unsettled.filter(|_| exit_code == 0) else { return (exit_code, reason) };
    let ago = (now - at / 1000).max(0);
    let what = format!(
        "woci pid {pid} sent a refresh grant with the stored refresh token {} ago and ended before it stored the \
         answer",
        crate::clock::fmt_secs(ago)
    );
    let grace = match f.mode {
        crate::settings::RenewMode::Login(c) => c.idp.reuse_grace.as_secs(),
        _ => 0,
    };
    if u64::try_from(ago).is_ok_and(|ago| ago < grace) {
        let why = "within `refresh_token_reuse_grace` the identity provider takes it again";
        return (exit_code, format!("{reason} ({what}; {why})"));
    }
    let code = if next_action == "refresh" { crate::error::exit::LOGIN } else { exit_code };
    (
        code,
        format!("{reason}; but {what}, so the identity provider has probably spent it and the next renewal will need a login"),
    )
}

/// The last renewal's failure, and whether what it was met with changed since (the settings,
/// the profile's OCI config section, a file's mode or owner, a CA or proxy variable: the fix,
/// usually). A record of an older release, without that digest, goes by the files' change times.
fn last_failure(ctx: &Context) -> Option<(crate::store::FailureRecord, bool)> {
    ctx.store.failure_since(0).map(|f| {
        let changed = match &f.inputs {
            Some(inputs) => {
                *inputs != crate::renew::failure_inputs(&ctx.settings, &ctx.store, &ctx.env, crate::renew::Met::of(&f))
            }
            None => {
                let ini = ctx.settings.ini_file.as_ref().map_or(0, |(p, _)| changed_ms(p));
                ini.max(changed_ms(&ctx.settings.oci_config_file)) > f.at
            }
        };
        // A source file written since its JWT failed (a kubelet's rewrite, the file back) is
        // what the next call reads: that failure says nothing of it (round 82 F1).
        let source_rewritten = f.exit_code == crate::error::exit::SUBJECT_TOKEN
            && matches!(&ctx.settings.mode, crate::settings::RenewMode::Federated(c)
                if matches!(&c.source, crate::settings::SubjectTokenSource::File(p) if changed_ms(p) > f.at));
        (f, changed || source_rewritten)
    })
}

/// A file's change time (its inode's, which a chmod or chown moves too), epoch milliseconds.
fn changed_ms(p: &std::path::Path) -> i64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).map_or(0, |m| m.ctime() * 1000 + m.ctime_nsec() / 1_000_000)
    }
    #[cfg(not(unix))]
    std::fs::metadata(p).and_then(|m| m.modified()).map(crate::clock::unix_millis).unwrap_or(0)
}

/// The token part of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub(crate) struct TokenReport {
    pub path: String,
    pub state: &'static str,
    pub issued_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub expires_in: Option<i64>,
    pub session_expires_at: Option<i64>,
    pub user: Option<String>,
    pub tenancy: Option<String>,
    #[serde(serialize_with = "plain_opt")]
    pub error: Option<String>,
}

/// The refresh token part of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct RefreshReport {
    pub stored: bool,
    pub encrypted: bool,
    pub passphrase: &'static str,
    pub decryptable: Option<bool>,
    pub expires_at: Option<i64>,
    /// A refresh-token rotation a killed woci left half done: `complete` (the next call finishes
    /// it) or `incomplete` (the new refresh token is lost); `null` when there is none.
    pub interrupted_rotation: Option<&'static str>,
    /// The rescued copy the next renewal reads instead (the session folder could not take it).
    pub rescued: Option<String>,
    /// Why the stored refresh token cannot be read or used (a folder, no permission, damage).
    #[serde(serialize_with = "plain_opt")]
    pub error: Option<String>,
    /// The identity provider's refusal of the stored refresh token (a login replaces it).
    #[serde(serialize_with = "plain_opt")]
    pub rejected: Option<String>,
    /// A refresh grant sent with it by a woci that ended before it stored the answer (the token
    /// is probably spent): `pid` and `sent_at` (epoch seconds); `null` when there is none.
    pub unsettled_grant: Option<UnsettledGrant>,
}

/// A refresh grant whose sender ended before its outcome, as `--status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct UnsettledGrant {
    pub pid: u32,
    pub sent_at: i64,
}

/// The whole report (`--status --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Report {
    pub schema: u32,
    pub profile: String,
    pub now: i64,
    pub usable: bool,
    pub exit_code: u8,
    pub next_action: &'static str,
    /// Why, in words (the JSON drops the message's Markdown backticks).
    #[serde(serialize_with = "plain")]
    pub reason: String,
    pub renewal: &'static str,
    pub token: TokenReport,
    pub refresh_token: RefreshReport,
    pub daemon: DaemonReport,
    pub settings: BTreeMap<String, String>,
    /// The settings whose INI value comes from `[COMMON]` (said in the text).
    #[serde(skip)]
    pub shared_settings: std::collections::BTreeSet<String>,
    pub fallback_profile: Option<String>,
    /// The fallback profile the next call runs as (this one's renewal cannot succeed).
    pub runs_as: Option<String>,
    /// The last renewal's failure, until a renewal succeeds: `at` (epoch seconds), `exit_code`,
    /// `message`, `transient`.
    pub last_failure: Option<LastFailure>,
    /// Another process's renewal under way (`pid`, `since`): the next call waits for it.
    pub renewal_under_way: Option<UnderWay>,
    /// How far this machine's clock is behind the servers' (negative: ahead), seconds, as the
    /// last renewal showed it; every time in the report is this machine's.
    pub clock_skew_s: i64,
}

/// A renewal in another process, as `--status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) struct UnderWay {
    pub pid: u32,
    /// Since when (epoch seconds).
    pub since: i64,
    /// A login (a person's part included), not a renewal with a refresh token.
    pub login: bool,
}

impl UnderWay {
    /// What is under way, as the text report says it.
    fn what(&self) -> &'static str {
        if self.login {
            "login"
        } else {
            "renewal"
        }
    }
}

/// The last failed renewal, as `--status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LastFailure {
    pub at: i64,
    pub exit_code: u8,
    #[serde(serialize_with = "plain")]
    pub message: String,
    pub transient: bool,
}

/// The report of `inputs` at `now`.
pub(crate) fn assess(inp: &Inputs<'_>, now: i64) -> Report {
    let f = &inp.facts;
    let d = plan(f, Force::No, now);
    // What a call does with an API-key profile (unless `--auth security_token` is given): `oci`
    // as it is, no session needed.
    // Calls that go to oci unchanged renew nothing.
    let passthrough = inp.auth.as_deref().map_or(f.oci.is_api_key(f.mode), |a| a != "security_token");
    let (mut exit_code, mut next_action, mut reason) = match inp.auth.as_deref() {
        Some(a) if a != "security_token" => {
            (0, "none", format!("the calls' auth is `{a}`: they go to oci unchanged, the session is left alone"))
        }
        None if f.oci.is_api_key(f.mode) => {
            let token_file = match f.oci.token_file_from_default {
                true => "the `security_token_file` from `[DEFAULT]` is another profile's, unused",
                false => "no `security_token_file`",
            };
            let why = format!(
                "profile `{}` is an API-key profile (`user`; {token_file}): calls go to oci unchanged",
                f.profile
            );
            (0, "none", why)
        }
        _ => (d.exit_code(), d.plan.name(), d.reason),
    };
    // woci's own records (a failure, a grant note, the daemon's) carry this machine's time.
    let machine_now = now - inp.clock_skew.max(0);
    // A call whose renewal fails runs with a token that still has more than a minute left, when
    // it is bound to the profile's key (OCI refuses one bound to another).
    let keeps = !f.key_mismatch
        && f.claims().is_some_and(|c| c.exp - now > crate::renew::plan::secs(crate::renew::FALLBACK_MIN_LEFT));
    // Whether a login can happen here (a terminal, or a `BROWSER` command), as the call's plan knows.
    let can_log_in = matches!(f.mode, crate::settings::RenewMode::Login(c) if c.interactive);
    (exit_code, reason) =
        after_last_failure(exit_code, next_action, reason, inp.last_failure.as_ref(), machine_now, keeps, can_log_in);
    (exit_code, reason) = after_unsettled_grant(exit_code, next_action, reason, f, machine_now);
    // A passphrase asked on the terminal cannot be asked in a job without one (cron, CI).
    let unaskable = f.refresh.state != RefreshTokenState::Absent
        && f.refresh.passphrase == PassphraseInput::Prompt
        && !inp.terminal;
    if exit_code == 0 && next_action == "refresh" && unaskable {
        exit_code = crate::error::exit::LOGIN;
        reason = format!(
            "{reason}; but there is no terminal here to ask for it on, so the renewal fails: give the passphrase \
             in a variable instead, with `--refresh-token-passphrase-env VAR` (`refresh_token_passphrase_env`)"
        );
    }
    // A call whose renewal needs a login (or a passphrase) that cannot happen here fails that
    // renewal, and runs with the token while it has more than a minute left (`ensure_or_keep`).
    if keeps && renews(next_action) && exit_code == crate::error::exit::LOGIN && (!can_log_in || unaskable) {
        exit_code = 0;
        reason =
            format!("{reason}; until then a call here runs with the current token, which has more than a minute left");
    }
    // The call runs oci once the session is settled: an oci that cannot run fails it then.
    if let Some((code, why)) = inp.start.as_ref().or(inp.program.as_ref().filter(|_| exit_code == 0)) {
        (exit_code, next_action, reason) = (*code, "impossible", why.clone());
    }
    // `oci` signs with this machine's clock: OCI refuses every call (no fallback helps: the call
    // does not fail over for it, and a fallback's calls are signed by the same clock).
    let clock_refused = exit_code == 0 && !passthrough && inp.clock_skew.abs() > crate::clock::OCI_DATE_LIMIT_SECS;
    if clock_refused {
        exit_code = crate::error::exit::FAILURE;
        reason = format!(
            "{reason}; but this machine's clock is {} the servers' (the last renewal showed it), and OCI refuses \
             requests whose date is more than 5 minutes off: set the clock right (timedatectl, chrony)",
            crate::clock::skew_words(inp.clock_skew)
        );
    }
    let report = Report {
        schema: 1,
        profile: f.profile.clone(),
        now,
        usable: exit_code == 0,
        exit_code,
        next_action,
        reason,
        renewal: if passthrough { "none" } else { f.mode.renewal_name() },
        // A `[DEFAULT]` session an API-key profile inherits is not its token.
        token: match passthrough && f.oci.token_file_from_default {
            true => TokenReport { path: f.token_path.display().to_string(), state: "unused", ..Default::default() },
            false => token_report(f, now),
        },
        refresh_token: RefreshReport {
            stored: f.refresh.state != RefreshTokenState::Absent,
            encrypted: f.refresh.state == RefreshTokenState::Encrypted,
            passphrase: match f.refresh.passphrase {
                PassphraseInput::None => "none",
                PassphraseInput::Env { .. } => "env",
                PassphraseInput::Prompt => "prompt",
            },
            decryptable: f.refresh.decryptable,
            expires_at: f.refresh.expires_at,
            interrupted_rotation: f.rotation.as_ref().map(|r| match r {
                InterruptedRotation::Complete(_) => "complete",
                InterruptedRotation::Incomplete(_) => "incomplete",
            }),
            rescued: f.refresh.rescued.as_ref().map(|p| p.display().to_string()),
            error: f.refresh.damage.clone(),
            rejected: f.refresh.rejected.clone(),
            unsettled_grant: f.refresh.unsettled.map(|(pid, at)| UnsettledGrant { pid, sent_at: at / 1000 }),
        },
        daemon: daemon::report(&inp.daemon, machine_now),
        settings: inp.origins.clone(),
        shared_settings: inp.shared.clone(),
        fallback_profile: inp.fallback_profile.clone(),
        runs_as: None,
        last_failure: inp.last_failure.as_ref().map(|(f, _)| LastFailure {
            at: f.at / 1000,
            exit_code: f.exit_code,
            message: f.message.clone(),
            transient: f.transient,
        }),
        renewal_under_way: inp.renewing,
        clock_skew_s: inp.clock_skew,
    };
    in_machine_time(report, inp.clock_skew)
}

/// The report with every time in this machine's clock, as `date` and woci's records (already in
/// it) have it. Its token times were decided in token time, ahead of this clock by the part of
/// `skew` (the servers' time minus this machine's, seconds) that is positive: they go back by
/// that, a token's end among them (when the first of OCI and `oci` refuses it). A token's issue
/// is the moment this clock read then.
fn in_machine_time(mut r: Report, skew: i64) -> Report {
    let ahead = skew.max(0);
    let mine = |t: &mut Option<i64>| *t = t.map(|t| t - ahead);
    r.now -= ahead;
    r.token.issued_at = r.token.issued_at.map(|t| t - skew);
    mine(&mut r.token.expires_at);
    mine(&mut r.token.session_expires_at);
    mine(&mut r.refresh_token.expires_at);
    r
}

fn token_report(f: &SessionFacts<'_>, now: i64) -> TokenReport {
    let mut r = TokenReport { path: f.token_path.display().to_string(), state: "missing", ..Default::default() };
    match &f.token {
        TokenInput::Missing => {}
        TokenInput::Corrupt(e) => {
            r.state = "corrupt";
            r.error = Some(e.clone());
        }
        TokenInput::Present(t) => {
            let c = &t.claims;
            r.state = match freshness(c, renewal_window(c, f.window, f.ahead), now) {
                Freshness::Fresh { .. } => "valid",
                Freshness::ExpiringSoon { .. } => "expiring",
                Freshness::Expired => "expired",
            };
            r.issued_at = c.iat;
            r.expires_at = Some(c.exp);
            r.expires_in = Some(c.exp - now);
            r.session_expires_at = c.session_expiry();
            r.user = c.sub.clone();
            r.tenancy = c.tenant.clone();
        }
    }
    r
}

/// The text form. Every value from a file or a token passes [`safe`]: a claim cannot move the
/// cursor, reorder the text or start a line of its own.
pub(crate) fn render_text(r: &Report, daemon_info: &DaemonInfo) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "profile: {}", safe(&r.profile));
    let t = &r.token;
    let _ = writeln!(o, "session token: {} (`{}`)", t.state, safe(&t.path));
    push_line(&mut o, t.error.as_ref().map(|e| format!("  error: {}", safe(e))));
    push_line(&mut o, t.issued_at.map(|iat| format!("  issued:  {}", fmt_utc(iat))));
    if let (Some(exp), Some(left)) = (t.expires_at, t.expires_in) {
        let _ = writeln!(o, "  expires: {} ({})", fmt_utc(exp), fmt_relative(left));
    }
    let sess = t.session_expires_at.map(|s| (fmt_utc(s), fmt_relative(s - r.now)));
    push_line(&mut o, sess.map(|(at, when)| format!("  session ends (sess_exp): {at} ({when})")));
    push_line(&mut o, t.user.as_ref().map(|u| format!("  user:    {}", safe(u))));
    push_line(&mut o, t.tenancy.as_ref().map(|tn| format!("  tenancy: {}", safe(tn))));
    if r.clock_skew_s.abs() > 60 {
        let _ = writeln!(
            o,
            "clock: {} the servers' (as the last renewal showed; times here are this machine's)",
            crate::clock::skew_words(r.clock_skew_s)
        );
    }
    match r.renewal {
        "none" => o.push_str("renewal: none (woci leaves this profile's calls to oci)\n"),
        "session_refresh" => o.push_str("renewal: OCI session refresh (no identity provider configured)\n"),
        "federated" => o.push_str("renewal: token exchange of a JWT from `subject_token_source` (no refresh token)\n"),
        _ => {
            let rt = &r.refresh_token;
            let how = match (rt.stored, rt.encrypted) {
                _ if rt.error.is_some() => format!("unusable: {}", safe(rt.error.as_deref().unwrap_or_default())),
                (false, _) => "not stored".to_owned(),
                (true, false) => "stored, not encrypted".to_owned(),
                (true, true) => {
                    let check = match rt.decryptable {
                        Some(true) => ", passphrase opens it",
                        Some(false) => ", passphrase does NOT open it",
                        None => "",
                    };
                    format!("stored, encrypted (passphrase: {}{check})", rt.passphrase)
                }
            };
            let _ = writeln!(o, "refresh token: {how}");
            push_line(
                &mut o,
                rt.rescued.as_ref().map(|p| format!("  rescued: `{}`, which the next renewal reads", safe(p))),
            );
            // A refused one ends with its refusal, whatever its expiry said.
            match &rt.rejected {
                Some(why) => {
                    let _ = writeln!(o, "  refused by the identity provider: {} (a login replaces it)", safe(why));
                }
                None => push_line(&mut o, rt.expires_at.map(|e| format!("  expires: {}", fmt_utc(e)))),
            }
        }
    }
    daemon::describe(&mut o, &r.profile, daemon_info, r.now);
    for (setting, origin) in &r.settings {
        let section = if r.shared_settings.contains(setting) { " [COMMON]" } else { "" };
        let _ = writeln!(o, "setting: `{setting}` from {}{section}", safe(origin));
    }
    push_line(&mut o, r.fallback_profile.as_ref().map(|f| format!("fallback profile: `{f}`")));
    push_line(
        &mut o,
        r.last_failure
            .as_ref()
            .map(|f| format!("last renewal failed: {} (exit {}): {}", fmt_utc(f.at), f.exit_code, safe(&f.message))),
    );
    push_line(
        &mut o,
        r.renewal_under_way.map(|u| {
            format!(
                "{} under way: by pid {} since {} ({}); the next call waits for it",
                u.what(),
                u.pid,
                fmt_utc(u.since),
                crate::clock::fmt_secs(r.now - u.since)
            )
        }),
    );
    let action = match (r.renewal_under_way, r.next_action) {
        // A call needing a login waits for the one under way and takes its session.
        (Some(u), "login") => {
            format!("wait for pid {}'s {} and use its session; if it ends without one, login", u.pid, u.what())
        }
        (_, "none") => "nothing".to_owned(),
        (_, "finish_config") => "finish the OCI config".to_owned(),
        (_, "session_refresh") => "session refresh".to_owned(),
        (_, "exchange") => "exchange a token from the subject token source".to_owned(),
        (_, other) => other.to_owned(),
    };
    let _ = writeln!(o, "next call: {action} — {}", safe(&r.reason));
    let _ = writeln!(o, "usable: {} (exit {})", if r.usable { "yes" } else { "no" }, r.exit_code);
    o
}

/// Reads everything status looks at; with `peek`, also whether the passphrase opens the refresh
/// token (a key derivation the prompt skips).
pub(crate) fn gather(ctx: &Context, peek: bool) -> Result<Inputs<'_>> {
    let facts = SessionFacts::read(&ctx.settings, &ctx.store, if peek { Peek::Passphrase } else { Peek::Plain })?
        .with_stopped_holder(&ctx.store)
        .in_token_time(&ctx.server);
    // Looked for only where a passphrase would be asked: the prompt runs on every shell prompt.
    let terminal = facts.refresh.passphrase != PassphraseInput::Prompt || crate::terminal::has_controlling_terminal();
    let origins = &ctx.settings.origins;
    let from_common =
        |k: &str, o: &_| matches!(o, crate::settings::Origin::Ini(_)) && ctx.settings.ini_shared.contains(k);
    Ok(Inputs {
        facts,
        daemon: daemon::inspect(&ctx.store)?,
        origins: origins.iter().map(|(k, (o, _))| ((*k).to_owned(), o.plain())).collect(),
        shared: origins.iter().filter(|(k, (o, _))| from_common(k, o)).map(|(k, _)| (*k).to_owned()).collect(),
        fallback_profile: ctx.settings.ops.fallback_profile.clone(),
        auth: ctx.settings.auth.clone(),
        start: start_refusal(&ctx.settings),
        program: crate::child::ChildBuilder::oci(Some(&ctx.settings), &ctx.env, Vec::new())
            .and_then(|b| b.build())
            .and_then(|spec| spec.check_runnable(&ctx.env))
            .err()
            .map(|e| (e.exit_code(), e.to_string())),
        last_failure: last_failure(ctx),
        // Looked for only when asked for: the prompt runs on every shell prompt.
        renewing: peek.then(|| ctx.store.renewal_under_way()).flatten().map(|(pid, since, login)| UnderWay {
            pid,
            since: crate::clock::unix_millis(since) / 1000,
            login,
        }),
        clock_skew: ctx.server.offset_ms() / 1000,
        terminal,
    })
}

/// What refuses the call at its start in this shell, as the call checks it before renewing: the
/// open-file limit, and the proxy's per-run folder when a proxy runs.
fn start_refusal(s: &crate::settings::Settings) -> Option<(u8, String)> {
    let refusal = match s.call_runs_proxy() {
        true => crate::proxy::startable(s),
        #[cfg(unix)]
        false => crate::fsutil::raise_open_file_limit(crate::fsutil::CALL_OPEN_FILES),
        #[cfg(not(unix))]
        false => Ok(()),
    };
    refusal.err().map(|e| (e.exit_code(), e.to_string()))
}

/// `woci --status [--json]`; `call` is the invocation, for its `fallback_profile`.
pub(crate) fn run(ctx: &Context, json: bool, call: &crate::daemon::DaemonSpec) -> Result<u8> {
    let now = ctx.now();
    let (out, code) = match gather(ctx, true) {
        Ok(inputs) => {
            ctx.store.warn_if_key_readable(inputs.facts.oci.key_file.as_deref());
            let mut report = assess(&inputs, now);
            with_fallback(&mut report, ctx, call, true);
            let out = if json { to_json(&report)? } else { render_text(&report, &inputs.daemon) };
            (out, report.exit_code)
        }
        // The files cannot even be read: JSON readers still get JSON, with the error in it.
        Err(e) if json => (error_json(&ctx.settings.profile, ctx.clock.unix(), &e)?, e.exit_code()),
        Err(e) => return Err(e),
    };
    print(&out)?;
    Ok(code)
}

/// A call whose renewal fails (other than for its settings) runs as the `fallback_profile`: when
/// that one is usable, so is the call.
/// `peek` as for [`gather`]: the prompt skips the passphrase check, and (its reason unseen) the
/// fallback of a usable profile.
pub(super) fn with_fallback(report: &mut Report, ctx: &Context, call: &crate::daemon::DaemonSpec, peek: bool) {
    let Some(name) = report.fallback_profile.clone().filter(|_| peek || report.exit_code != 0) else { return };
    let view = crate::settings::OciView { profile: Some(name.clone()), ..call.oci.clone() };
    let fallback = crate::settings::Settings::resolve(&call.flags.for_another_profile(), &view, &ctx.env, true)
        .and_then(|s| Context::new(s, ctx.clock.clone(), (*ctx.env).clone()));
    // A typo there shows only on the day the profile itself fails: say it now.
    match &fallback {
        Ok(fb) if crate::renew::facts::profile_unknown(&fb.settings, &fb.store) => {
            report.reason =
                format!("{}; its fallback profile {}, so it would not be used", report.reason, nowhere(&name));
            return;
        }
        // A fallback that cannot even be resolved (`COMMON`, a broken section) is said while the
        // profile works, too.
        Err(e) if report.exit_code == 0 => {
            report.reason = format!("{}; its fallback profile `{name}` cannot be used: {e}", report.reason);
            return;
        }
        _ => {}
    }
    // A fallback's calls are signed by the same clock, which OCI refuses (round 105's review).
    if report.exit_code == 0
        || report.clock_skew_s.abs() > crate::clock::OCI_DATE_LIMIT_SECS
        || crate::metrics::class_of_exit_code(report.exit_code) == crate::metrics::Class::Config
    {
        return;
    }
    let fallback = fallback.and_then(|fb| Ok(assess(&gather(&fb, peek)?, fb.now())));
    match fallback {
        Ok(fb) if fb.exit_code == 0 => {
            // A login comes first: the fallback is for when none completes.
            let when = if report.next_action == "login" { "if no login completes, " } else { "" };
            report.reason = format!(
                "{}; {when}the call then runs as the fallback profile `{name}`, which is usable",
                report.reason
            );
            report.exit_code = 0;
            report.usable = true;
            report.runs_as = Some(name);
        }
        Ok(fb) => {
            report.reason =
                format!("{}; its fallback profile `{name}` is not usable either: {}", report.reason, fb.reason)
        }
        Err(e) => report.reason = format!("{}; its fallback profile `{name}` cannot be used: {e}", report.reason),
    }
}

/// `--status --json` / `--status --prompt` when the settings themselves cannot be resolved (a
/// broken INI, a bad value): JSON readers still get JSON with the error in it, and the prompt
/// still shows `P error` (the message goes to stderr, the exit code is the error's).
pub(crate) fn run_unresolved(profile: &str, e: crate::error::Error, json: bool, now: i64) -> Result<u8> {
    if json {
        print(&error_json(profile, now, &e)?)?;
        return Ok(e.exit_code());
    }
    print(&format!("{}\n", overview::prompt_line(profile, overview::State::Impossible, None)))?;
    Err(e)
}

/// The report of a profile whose files or settings cannot be read: `impossible`, the error as
/// the reason.
fn error_json(profile: &str, now: i64, e: &crate::error::Error) -> Result<String> {
    let v = serde_json::json!({
        "schema": 1, "profile": profile, "now": now, "usable": false,
        "exit_code": e.exit_code(), "next_action": "impossible", "reason": e.to_string().replace('`', ""),
    });
    to_json(&v)
}

/// A message as JSON text: without the backticks that mark values on a terminal.
fn plain<S: serde::Serializer>(s: &str, ser: S) -> std::result::Result<S::Ok, S::Error> {
    ser.serialize_str(&s.replace('`', ""))
}

fn plain_opt<S: serde::Serializer>(s: &Option<String>, ser: S) -> std::result::Result<S::Ok, S::Error> {
    s.as_ref().map(|s| s.replace('`', "")).serialize(ser)
}

/// `` `NAME` exists nowhere (…)`` for a profile known neither to the OCI config, the manager INI
/// nor the session folders: the words `--status` and a call use for a mistyped fallback profile.
pub(crate) fn nowhere(name: &str) -> String {
    format!("`{name}` exists nowhere (not in the OCI config, no section in `woci_manager.ini`, no session)")
}

#[cfg(test)]
mod tests;
