//! `woci --status [--json]`: what the profile's session looks like and what the next woci call
//! would do, from local files only — no network, no renewal lock, no prompt, never a token.
//!
//! The decision is the renewal plan itself ([`crate::renew::plan::plan`]) over the same facts the
//! next call reads, so status cannot disagree with the call; [`assess`] is pure over [`Inputs`]
//! and the time.
//!
//! Exit code (also `exit_code` in the JSON) — the code the next call would exit with, or 0 when
//! it works without a person:
//! - `0` — usable: the token is valid, or the next call renews it without a person
//!   (refresh grant or OCI session refresh; a refused refresh token only shows at that call);
//! - `3` ([`exit::LOGIN`]) — the next call needs an interactive login;
//! - `2` ([`exit::CONFIG`]) — the woci settings are incomplete, the passphrase variable named by
//!   the configuration is not set, or the OCI config lacks a profile that has no IdP;
//! - `7` ([`exit::CORRUPT_FILE`]) — the token file is damaged;
//! - `8` ([`exit::REFRESH_TOKEN_LOCKED`]) — the encrypted refresh token cannot be decrypted
//!   (no passphrase configured, or the configured one does not open it);
//! - `9` ([`exit::SESSION_EXPIRED`]) — a profile without an IdP whose session cannot be refreshed
//!   any more (token expired, `sess_exp` reached, or no token): run `command oci session authenticate`.
//!
//! JSON (`"schema": 1`; times are seconds since the Unix epoch, durations in seconds):
//! `profile`, `now`, `usable`, `exit_code`, `next_action` (`none` | `finish_config` | `refresh` |
//! `login` | `session_refresh` | `impossible`), `reason`, `renewal` (`idp` | `session_refresh`),
//! `token` {`path`, `state` (`valid` | `expiring` | `expired` | `missing` | `corrupt`),
//! `issued_at`, `expires_at`, `expires_in`, `session_expires_at`, `user`, `tenancy`, `error`},
//! `refresh_token` {`stored`, `encrypted`, `passphrase` (`none` | `env` | `prompt`),
//! `decryptable`, `expires_at`, `interrupted_rotation` (`complete` | `incomplete` | null)},
//! `daemon` {`running`, `pid`, `stale_pid`, `started`, `uptime`, `last_renewal`, `next_renewal`,
//! `token_expires_at`, `last_error`, `exit_reason`, `exit_code`},
//! `settings` {setting: where it came from} for the woci settings not at their default.

use crate::daemon::{self, DaemonInfo, PidProbe};
#[cfg(doc)]
use crate::error::exit;
use crate::error::{Error, Result};
use crate::jwt::{self, Freshness};
use crate::renew::facts::SessionFacts;
pub use crate::renew::facts::{PassphraseInput, RefreshInput, RenewalKind, TokenInput};
use crate::renew::plan::{freshness, plan, Plan};
use crate::renew::{Force, Renewer};
use crate::secret::SecretString;
use crate::settings::PassphraseSource;
use crate::store::{InterruptedRotation, RefreshTokenState};
use serde::Serialize;
use std::io::Write;

/// Everything [`assess`] looks at: the renewal facts (the same the next call reads) and the
/// daemon. Derefs to the facts.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The renewal facts.
    pub facts: SessionFacts,
    /// The daemon.
    pub daemon: DaemonInfo,
    /// Where the woci settings came from (setting → origin, in words).
    pub origins: std::collections::BTreeMap<String, String>,
}

impl std::ops::Deref for Inputs {
    type Target = SessionFacts;
    fn deref(&self) -> &SessionFacts {
        &self.facts
    }
}

impl std::ops::DerefMut for Inputs {
    fn deref_mut(&mut self) -> &mut SessionFacts {
        &mut self.facts
    }
}

/// What the next woci call would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NextAction {
    /// Reuse the token.
    None,
    /// Reuse the token after writing the OCI config entries an earlier run left out.
    FinishConfig,
    /// IdP refresh grant + token exchange.
    Refresh,
    /// Interactive browser login.
    Login,
    /// OCI auth service session refresh.
    SessionRefresh,
    /// A fresh JWT from the subject token source, exchanged.
    Exchange,
    /// Nothing woci can do by itself.
    Impossible,
}

/// Token section of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenReport {
    /// Token file.
    pub path: String,
    /// `valid` | `expiring` | `expired` | `missing` | `corrupt`.
    pub state: &'static str,
    /// `iat`.
    pub issued_at: Option<i64>,
    /// `exp`.
    pub expires_at: Option<i64>,
    /// `exp - now` (negative once expired).
    pub expires_in: Option<i64>,
    /// `sess_exp`.
    pub session_expires_at: Option<i64>,
    /// `sub` (user OCID).
    pub user: Option<String>,
    /// `tenant` (tenancy OCID).
    pub tenancy: Option<String>,
    /// Why a corrupt token cannot be read.
    pub error: Option<String>,
}

/// Refresh token section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefreshReport {
    /// A refresh token file exists.
    pub stored: bool,
    /// It is an encryption envelope.
    pub encrypted: bool,
    /// `none` | `env` | `prompt`.
    pub passphrase: &'static str,
    /// Whether the environment's passphrase opens it (`null` when not tried).
    pub decryptable: Option<bool>,
    /// Expiry, when known.
    pub expires_at: Option<i64>,
    /// A refresh-token rotation a killed woci left half done: `complete` (the next call finishes
    /// it) or `incomplete` (the new refresh token is lost); `null` when there is none.
    pub interrupted_rotation: Option<&'static str>,
}

/// Daemon section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaemonReport {
    /// Holds the pid lock.
    pub running: bool,
    /// Its pid.
    pub pid: Option<u32>,
    /// Pid left in an unlocked pid file.
    pub stale_pid: Option<u32>,
    /// Start time of the running daemon.
    pub started: Option<i64>,
    /// Seconds since then.
    pub uptime: Option<i64>,
    /// Last successful renewal check.
    pub last_renewal: Option<i64>,
    /// Next renewal check.
    pub next_renewal: Option<i64>,
    /// Expiry of the token the daemon last saw.
    pub token_expires_at: Option<i64>,
    /// Last failure.
    pub last_error: Option<String>,
    /// Why the last daemon exited (when none runs).
    pub exit_reason: Option<String>,
    /// Its exit code.
    pub exit_code: Option<u8>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// JSON schema version.
    pub schema: u32,
    /// Profile.
    pub profile: String,
    /// The time of the report.
    pub now: i64,
    /// `exit_code == 0`.
    pub usable: bool,
    /// The process exit code.
    pub exit_code: u8,
    /// What the next call does.
    pub next_action: NextAction,
    /// Why, in words.
    pub reason: String,
    /// Renewal kind.
    pub renewal: RenewalKind,
    /// Token.
    pub token: TokenReport,
    /// Refresh token.
    pub refresh_token: RefreshReport,
    /// Daemon.
    pub daemon: DaemonReport,
    /// Where the woci settings that differ from the defaults came from (setting → origin).
    pub settings: std::collections::BTreeMap<String, String>,
}

/// Computes the report. Pure: same inputs and `now`, same report.
pub fn assess(inp: &Inputs, now: i64) -> Report {
    let token = token_report(inp, now);
    let (next_action, exit_code, reason) = decide(inp, now);
    Report {
        schema: 1,
        profile: inp.profile.clone(),
        now,
        usable: exit_code == 0,
        exit_code,
        next_action,
        reason,
        renewal: inp.renewal,
        token,
        refresh_token: RefreshReport {
            stored: inp.refresh.state != RefreshTokenState::Absent,
            encrypted: inp.refresh.state == RefreshTokenState::Encrypted,
            passphrase: match inp.refresh.passphrase {
                PassphraseInput::None => "none",
                PassphraseInput::Env { .. } => "env",
                PassphraseInput::Prompt => "prompt",
            },
            decryptable: inp.refresh.decryptable,
            expires_at: inp.refresh.expires_at,
            interrupted_rotation: inp.rotation.as_ref().map(|r| match r {
                InterruptedRotation::Complete(_) => "complete",
                InterruptedRotation::Incomplete(_) => "incomplete",
            }),
        },
        daemon: daemon_report(&inp.daemon, now),
        settings: inp.origins.clone(),
    }
}

fn token_report(inp: &Inputs, now: i64) -> TokenReport {
    let path = inp.token_path.display().to_string();
    match &inp.token {
        TokenInput::Missing => TokenReport {
            path,
            state: "missing",
            issued_at: None,
            expires_at: None,
            expires_in: None,
            session_expires_at: None,
            user: None,
            tenancy: None,
            error: None,
        },
        TokenInput::Corrupt(e) => TokenReport {
            path,
            state: "corrupt",
            issued_at: None,
            expires_at: None,
            expires_in: None,
            session_expires_at: None,
            user: None,
            tenancy: None,
            error: Some(e.clone()),
        },
        TokenInput::Present(c) => TokenReport {
            path,
            state: match freshness(c, inp.window, now) {
                Freshness::Fresh { .. } => "valid",
                Freshness::ExpiringSoon { .. } => "expiring",
                Freshness::Expired => "expired",
            },
            issued_at: c.iat,
            expires_at: Some(c.exp),
            expires_in: Some(c.exp - now),
            session_expires_at: c.session_expiry(),
            user: c.sub.clone(),
            tenancy: c.tenant.clone(),
            error: None,
        },
    }
}

/// What the next call does: [`plan`], the executor's own decision.
fn decide(inp: &Inputs, now: i64) -> (NextAction, u8, String) {
    let d = plan(&inp.facts, Force::No, now);
    let action = match d.plan {
        Plan::Reuse { .. } => NextAction::None,
        Plan::FinishConfig { .. } => NextAction::FinishConfig,
        Plan::Refresh => NextAction::Refresh,
        Plan::Login => NextAction::Login,
        Plan::SessionRefresh => NextAction::SessionRefresh,
        Plan::Exchange => NextAction::Exchange,
        Plan::Impossible { .. } => NextAction::Impossible,
    };
    let code = d.exit_code();
    (action, code, d.reason)
}

/// The daemon section (also `--daemon-status --json`).
pub(crate) fn daemon_report(info: &DaemonInfo, now: i64) -> DaemonReport {
    let running = info.running();
    let pid = info.pid();
    // The state file describes the running daemon only if it is that daemon's.
    let live = info.state.as_ref().filter(|s| running && Some(s.pid) == pid);
    let last = info.state.as_ref().filter(|_| !running);
    DaemonReport {
        running,
        pid,
        stale_pid: match info.probe {
            PidProbe::NotRunning { stale_pid } => stale_pid,
            PidProbe::Running { .. } => None,
        },
        started: live.map(|s| s.started),
        uptime: live.map(|s| now - s.started),
        last_renewal: live.and_then(|s| s.last_renewal),
        next_renewal: live.and_then(|s| s.next_renewal),
        token_expires_at: live.and_then(|s| s.token_exp),
        last_error: info.state.as_ref().and_then(|s| s.last_error.clone()),
        exit_reason: last.and_then(|s| s.exit_reason.clone()),
        exit_code: last.and_then(|s| s.exit_code),
    }
}

/// The text form.
pub fn render_text(r: &Report, daemon_info: &DaemonInfo) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "profile: {}", r.profile);
    let t = &r.token;
    let _ = writeln!(o, "session token: {} (`{}`)", t.state, t.path);
    if let Some(e) = &t.error {
        let _ = writeln!(o, "  error: {e}");
    }
    if let Some(iat) = t.issued_at {
        let _ = writeln!(o, "  issued:  {}", daemon::fmt_utc(iat));
    }
    if let (Some(exp), Some(left)) = (t.expires_at, t.expires_in) {
        let when = if left >= 0 {
            format!("in {}", daemon::fmt_secs(left))
        } else {
            format!("{} ago", daemon::fmt_secs(-left))
        };
        let _ = writeln!(o, "  expires: {} ({when})", daemon::fmt_utc(exp));
    }
    if let Some(s) = t.session_expires_at {
        let _ = writeln!(o, "  session ends (sess_exp): {} (in {})", daemon::fmt_utc(s), daemon::fmt_secs(s - r.now));
    }
    if let Some(u) = &t.user {
        let _ = writeln!(o, "  user:    {u}");
    }
    if let Some(tn) = &t.tenancy {
        let _ = writeln!(o, "  tenancy: {tn}");
    }
    match r.renewal {
        RenewalKind::Idp => {
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
            if let Some(e) = rt.expires_at {
                let _ = writeln!(o, "  expires: {}", daemon::fmt_utc(e));
            }
        }
        RenewalKind::SessionRefresh => {
            let _ = writeln!(o, "renewal: OCI session refresh (no identity provider configured)");
        }
        RenewalKind::Federated => {
            let _ = writeln!(o, "renewal: token exchange of a JWT from `subject_token_source` (no refresh token)");
        }
    }
    daemon::describe(&mut o, &r.profile, daemon_info, r.now);
    for (setting, origin) in &r.settings {
        let _ = writeln!(o, "setting: `{setting}` from {origin}");
    }
    let action = match r.next_action {
        NextAction::None => "nothing",
        NextAction::FinishConfig => "finish the OCI config",
        NextAction::Refresh => "refresh",
        NextAction::Login => "login",
        NextAction::SessionRefresh => "session refresh",
        NextAction::Exchange => "exchange a token from the subject token source",
        NextAction::Impossible => "impossible",
    };
    let _ = writeln!(o, "next call: {action} — {}", r.reason);
    let _ = writeln!(o, "usable: {} (exit {})", if r.usable { "yes" } else { "no" }, r.exit_code);
    o
}

/// Gathers the inputs from files (no network, no lock, no prompt): the renewal facts, plus what
/// only `--status` looks at — whether the environment's passphrase opens an encrypted refresh
/// token, and a JWT refresh token's own expiry.
pub fn gather(renewer: &Renewer) -> Result<Inputs> {
    let settings = renewer.settings();
    let store = renewer.store();
    let mut facts = renewer.facts()?;
    let env_pass = match &settings.passphrase {
        PassphraseSource::Env { value: Some(v), .. } if !v.expose().is_empty() => Some(v.clone()),
        _ => None,
    };
    let (decryptable, jwt_expiry) = match facts.refresh.state {
        RefreshTokenState::Absent => (None, None),
        RefreshTokenState::Plain => (None, store.peek_refresh_token(None).ok().flatten().and_then(|rt| jwt_exp(&rt))),
        RefreshTokenState::Encrypted => match &env_pass {
            Some(p) => match store.peek_refresh_token(Some(p)) {
                Ok(rt) => (Some(true), rt.and_then(|rt| jwt_exp(&rt))),
                Err(_) => (Some(false), None),
            },
            None => (None, None),
        },
    };
    facts.refresh.decryptable = decryptable;
    // A JWT refresh token says its own expiry; otherwise what the IdP said when it issued it.
    facts.refresh.expires_at = jwt_expiry.or(facts.refresh.expires_at);
    let origins = settings.origins.iter().map(|(k, o)| ((*k).to_owned(), o.to_string())).collect();
    Ok(Inputs { facts, daemon: daemon::inspect(store)?, origins })
}

/// `exp` of a refresh token that is a JWT (some IdPs issue those); opaque tokens have none.
fn jwt_exp(rt: &SecretString) -> Option<i64> {
    #[derive(serde::Deserialize)]
    struct Exp {
        exp: i64,
    }
    jwt::decode_claims::<Exp>(rt.expose()).ok().map(|e| e.exp)
}

/// `woci --status [--json]`.
pub fn run(renewer: &Renewer, json: bool) -> Result<u8> {
    let inputs = gather(renewer)?;
    let report = assess(&inputs, renewer.clock().unix());
    let out = if json {
        let mut s =
            serde_json::to_string_pretty(&report).map_err(|e| Error::Other(format!("cannot encode status: {e}")))?;
        s.push('\n');
        s
    } else {
        render_text(&report, &inputs.daemon)
    };
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => return Err(Error::Other(format!("cannot write to stdout: {e}"))),
    }
    Ok(report.exit_code)
}

#[cfg(test)]
mod tests;
