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
//! interactive login is needed; otherwise the blocking error's code (`2` settings, `7` a damaged
//! file, `8` a locked refresh token, `9` a session that cannot be renewed, `11` a subject token
//! source that cannot give a token).
//!
//! Text and JSON are safe on a terminal ([`crate::terminal`]): in the text, control and format
//! characters of a claim or an error are visible escapes; in the JSON they are `\uXXXX` escapes,
//! so a parser still reads the exact value.
//!
//! JSON (`"schema": 1`; times are seconds since the Unix epoch, durations in seconds, `null` when
//! unknown): `profile`, `now`, `usable`, `exit_code`, `next_action` (`none` | `finish_config` |
//! `refresh` | `login` | `session_refresh` | `exchange` | `impossible`), `reason`, `renewal`
//! (`idp` | `session_refresh` | `federated`), `token` {`path`, `state` (`valid` | `expiring` |
//! `expired` | `missing` | `corrupt`), `issued_at`, `expires_at`, `expires_in`,
//! `session_expires_at`, `user`, `tenancy`, `error`}, `refresh_token` {`stored`, `encrypted`,
//! `passphrase` (`none` | `env` | `prompt`), `decryptable`, `expires_at`, `interrupted_rotation`
//! (`complete` | `incomplete` | `null`)}, `daemon` {`running`,
//! `pid`, `stale_pid`, `started`, `uptime`, `last_renewal`, `next_renewal`, `token_expires_at`,
//! `last_error`, `exit_reason`, `exit_code`}, `settings` {setting: where it came from} for the
//! settings not at their default, `fallback_profile`. When the files cannot even be read (a
//! damaged OCI config), the JSON still comes, with `next_action` `impossible` and the error as
//! `reason`.

use crate::clock::{fmt_relative, fmt_utc};
use crate::context::Context;
use crate::daemon::{self, push_line, DaemonInfo, DaemonReport};
use crate::error::Result;
use crate::jwt::Freshness;
use crate::renew::facts::{PassphraseInput, SessionFacts, TokenInput};
use crate::renew::plan::{freshness, plan};
use crate::renew::Force;
use crate::settings::RenewMode;
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
    /// `fallback_profile`.
    pub fallback_profile: Option<String>,
    /// The `--auth` the call runs oci with (`--auth`, `OCI_CLI_AUTH`, `oci_cli_rc`), if any.
    pub auth: Option<String>,
    /// Why the `oci` program cannot be run (exit code, message), when it cannot.
    pub program: Option<(u8, String)>,
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
    pub fallback_profile: Option<String>,
}

/// The report of `inputs` at `now`.
pub(crate) fn assess(inp: &Inputs<'_>, now: i64) -> Report {
    let f = &inp.facts;
    let d = plan(f, Force::No, now);
    // What a call does with an API-key profile (unless `--auth security_token` is given): `oci`
    // as it is, no session needed.
    let (exit_code, next_action, reason) = match inp.auth.as_deref() {
        Some(a) if a != "security_token" => {
            (0, "none", format!("the calls' auth is `{a}`: they go to oci unchanged, the session is left alone"))
        }
        None if f.oci.is_api_key(f.mode) => {
            let why = format!(
                "profile `{}` is an API-key profile (`user`, no `security_token_file`): calls go to oci unchanged",
                f.profile
            );
            (0, "none", why)
        }
        _ => (d.exit_code(), d.plan.name(), d.reason),
    };
    // The call runs oci once the session is settled: an oci that cannot run fails it then.
    let (exit_code, next_action, reason) = match &inp.program {
        Some((code, why)) if exit_code == 0 => (*code, "impossible", why.clone()),
        _ => (exit_code, next_action, reason),
    };
    Report {
        schema: 1,
        profile: f.profile.clone(),
        now,
        usable: exit_code == 0,
        exit_code,
        next_action,
        reason,
        renewal: match f.mode {
            RenewMode::SessionRefresh(_) => "session_refresh",
            RenewMode::Federated(_) => "federated",
            RenewMode::Login(_) | RenewMode::Unusable(_) => "idp",
        },
        token: token_report(f, now),
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
        },
        daemon: daemon::report(&inp.daemon, now),
        settings: inp.origins.clone(),
        fallback_profile: inp.fallback_profile.clone(),
    }
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
            r.state = match freshness(c, f.window, now) {
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
    match r.renewal {
        "session_refresh" => {
            let _ = writeln!(o, "renewal: OCI session refresh (no identity provider configured)");
        }
        "federated" => {
            let _ = writeln!(o, "renewal: token exchange of a JWT from `subject_token_source` (no refresh token)");
        }
        _ => {
            let rt = &r.refresh_token;
            let how = match (rt.stored, rt.encrypted) {
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
            push_line(&mut o, rt.expires_at.map(|e| format!("  expires: {}", fmt_utc(e))));
        }
    }
    daemon::describe(&mut o, &r.profile, daemon_info, r.now);
    for (setting, origin) in &r.settings {
        let _ = writeln!(o, "setting: `{setting}` from {}", safe(origin));
    }
    push_line(&mut o, r.fallback_profile.as_ref().map(|f| format!("fallback profile: `{f}`")));
    let action = match r.next_action {
        "none" => "nothing",
        "finish_config" => "finish the OCI config",
        "session_refresh" => "session refresh",
        "exchange" => "exchange a token from the subject token source",
        other => other,
    };
    let _ = writeln!(o, "next call: {action} — {}", safe(&r.reason));
    let _ = writeln!(o, "usable: {} (exit {})", if r.usable { "yes" } else { "no" }, r.exit_code);
    o
}

/// Reads everything status looks at.
pub(crate) fn gather(ctx: &Context) -> Result<Inputs<'_>> {
    let facts = SessionFacts::read(&ctx.settings, &ctx.store, true)?;
    let origins = ctx.settings.origins.iter().map(|(k, (o, _))| ((*k).to_owned(), o.plain())).collect();
    Ok(Inputs {
        facts,
        daemon: daemon::inspect(&ctx.store)?,
        origins,
        fallback_profile: ctx.settings.ops.fallback_profile.clone(),
        auth: ctx.settings.auth.clone(),
        program: crate::child::ChildBuilder::oci(Some(&ctx.settings), &ctx.env, Vec::new())
            .and_then(|b| b.build())
            .and_then(|spec| spec.check_runnable(&ctx.env))
            .err()
            .map(|e| (e.exit_code(), e.to_string())),
    })
}

/// `woci --status [--json]`.
pub(crate) fn run(ctx: &Context, json: bool) -> Result<u8> {
    let now = ctx.now();
    let (out, code) = match gather(ctx) {
        Ok(inputs) => {
            let report = assess(&inputs, now);
            let out = if json { to_json(&report)? } else { render_text(&report, &inputs.daemon) };
            (out, report.exit_code)
        }
        // The files cannot even be read: JSON readers still get JSON, with the error in it.
        Err(e) if json => (error_json(&ctx.settings.profile, now, &e)?, e.exit_code()),
        Err(e) => return Err(e),
    };
    print(&out)?;
    Ok(code)
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

#[cfg(test)]
mod tests;
