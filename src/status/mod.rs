//! `woci --status [--json]`: what the profile's session looks like and what the next woci call
//! would do, from local files only — no network, no renewal lock, no prompt, never a token.
//!
//! The decision is the pure function [`assess`] over what the files say ([`Inputs`]) and the
//! time, so every session state is unit-tested without a clock or a server.
//!
//! Exit code (also `exit_code` in the JSON):
//! - `0` — usable: the token is valid, or the next call renews it without a person
//!   (refresh grant or OCI session refresh; a refused refresh token only shows at that call);
//! - `3` ([`exit::LOGIN`]) — the next call needs an interactive login;
//! - `2` ([`exit::CONFIG`]) — the passphrase variable named by the configuration is not set;
//! - `7` ([`exit::CORRUPT_FILE`]) — the token file is damaged;
//! - `8` ([`exit::REFRESH_TOKEN_LOCKED`]) — the encrypted refresh token cannot be decrypted
//!   (no passphrase configured, or the configured one does not open it);
//! - `9` ([`exit::SESSION_EXPIRED`]) — a profile without an IdP whose session cannot be refreshed
//!   any more (token expired, `sess_exp` reached, or no token): run `command oci session authenticate`.
//!
//! JSON (`"schema": 1`; times are seconds since the Unix epoch, durations in seconds):
//! `profile`, `now`, `usable`, `exit_code`, `next_action` (`none` | `refresh` | `login` |
//! `session_refresh` | `impossible`), `reason`, `renewal` (`idp` | `session_refresh`),
//! `token` {`path`, `state` (`valid` | `expiring` | `expired` | `missing` | `corrupt`),
//! `issued_at`, `expires_at`, `expires_in`, `session_expires_at`, `user`, `tenancy`, `error`},
//! `refresh_token` {`stored`, `encrypted`, `passphrase` (`none` | `env` | `prompt`),
//! `decryptable`, `expires_at`}, `daemon` {`running`, `pid`, `stale_pid`, `started`, `uptime`,
//! `last_renewal`, `next_renewal`, `token_expires_at`, `last_error`, `exit_reason`, `exit_code`}.

use crate::daemon::{self, DaemonInfo, PidProbe};
use crate::error::{exit, Error, Result};
use crate::jwt::{self, Freshness, UpstClaims};
use crate::renew::Renewer;
use crate::secret::SecretString;
use crate::settings::{PassphraseSource, RenewMode};
use crate::store::RefreshTokenState;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

/// The token file, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenInput {
    /// Absent or empty.
    Missing,
    /// Present but not a UPST (the reason, never the content).
    Corrupt(String),
    /// A decodable UPST.
    Present(UpstClaims),
}

/// How the profile renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RenewalKind {
    /// IdP refresh grant / login, then token exchange.
    Idp,
    /// OCI auth service session refresh (no IdP configured).
    SessionRefresh,
}

/// Where the passphrase would come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseInput {
    /// None configured.
    None,
    /// An environment variable, and whether it is set (non-empty).
    Env {
        /// Variable name.
        var: String,
        /// Whether it has a non-empty value.
        set: bool,
    },
    /// Asked on the terminal at the next call.
    Prompt,
}

/// The refresh token, as read without the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshInput {
    /// Absent / plain / encrypted.
    pub state: RefreshTokenState,
    /// The passphrase source.
    pub passphrase: PassphraseInput,
    /// `Some(true/false)` when decryption was attempted with the environment's passphrase.
    pub decryptable: Option<bool>,
    /// Its `exp`, when the refresh token is a JWT that could be read.
    pub expires_at: Option<i64>,
}

/// Everything [`assess`] looks at.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Profile name.
    pub profile: String,
    /// Token file path (for display).
    pub token_path: PathBuf,
    /// The token.
    pub token: TokenInput,
    /// The configured safety window.
    pub window: Duration,
    /// Renewal kind.
    pub renewal: RenewalKind,
    /// The refresh token.
    pub refresh: RefreshInput,
    /// The daemon.
    pub daemon: DaemonInfo,
}

/// What the next woci call would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NextAction {
    /// Reuse the token.
    None,
    /// IdP refresh grant + token exchange.
    Refresh,
    /// Interactive browser login.
    Login,
    /// OCI auth service session refresh.
    SessionRefresh,
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
        },
        daemon: daemon_report(&inp.daemon, now),
    }
}

fn freshness(claims: &UpstClaims, window: Duration, now: i64) -> Freshness {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0));
    jwt::freshness(claims.exp, at, jwt::effective_window(claims, window))
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

fn decide(inp: &Inputs, now: i64) -> (NextAction, u8, String) {
    let p = &inp.profile;
    let claims = match &inp.token {
        TokenInput::Corrupt(e) => {
            return (
                NextAction::Impossible,
                exit::CORRUPT_FILE,
                format!(
                "the token file `{}` is damaged ({e}); move it away and run `woci session authenticate --profile {p}`",
                inp.token_path.display()
            ),
            )
        }
        TokenInput::Missing => None,
        TokenInput::Present(c) => {
            if let Freshness::Fresh { remaining } = freshness(c, inp.window, now) {
                return (
                    NextAction::None,
                    0,
                    format!("the session token is valid for {}", daemon::fmt_secs(secs(remaining))),
                );
            }
            Some(c)
        }
    };
    let why = match claims {
        None => "there is no session token".to_owned(),
        Some(c) if c.exp <= now => format!("the session token expired {} ago", daemon::fmt_secs(now - c.exp)),
        Some(c) => format!("the session token expires in {}, inside the safety window", daemon::fmt_secs(c.exp - now)),
    };
    match inp.renewal {
        RenewalKind::SessionRefresh => {
            let cannot = |what: String| {
                (
                    NextAction::Impossible,
                    exit::SESSION_EXPIRED,
                    format!("{what}; profile `{p}` has no identity provider, so run `command oci session authenticate --profile {p}`"),
                )
            };
            let Some(c) = claims else { return cannot(why) };
            if c.exp <= now {
                return cannot(format!("{why} and OCI cannot refresh an expired session"));
            }
            if let Some(end) = c.session_expiry().filter(|end| *end <= now) {
                return cannot(format!("the OCI session reached its end (`sess_exp` {})", daemon::fmt_utc(end)));
            }
            (NextAction::SessionRefresh, 0, format!("{why}; the next call refreshes it through the OCI auth service"))
        }
        RenewalKind::Idp => {
            let r = &inp.refresh;
            let login = |what: String| {
                (
                    NextAction::Login,
                    exit::LOGIN,
                    format!("{what}; the next call opens a browser login (or run `woci session authenticate --profile {p}`)"),
                )
            };
            if r.state == RefreshTokenState::Absent {
                return login(format!("{why} and no refresh token is stored"));
            }
            if let Some(exp) = r.expires_at.filter(|e| *e <= now) {
                return login(format!("{why} and the refresh token expired {}", daemon::fmt_utc(exp)));
            }
            if r.state == RefreshTokenState::Encrypted {
                match &r.passphrase {
                    PassphraseInput::None => {
                        return (
                            NextAction::Impossible,
                            exit::REFRESH_TOKEN_LOCKED,
                            format!("{why} and the refresh token is encrypted but no passphrase is configured; pass `--refresh-token-passphrase-env VAR` or `--refresh-token-passphrase-prompt`"),
                        )
                    }
                    PassphraseInput::Env { var, set: false } => {
                        return (
                            NextAction::Impossible,
                            exit::CONFIG,
                            format!("{why} and the refresh token is encrypted, but `{var}` (the passphrase variable) is not set"),
                        )
                    }
                    PassphraseInput::Env { var, .. } if r.decryptable == Some(false) => {
                        return (
                            NextAction::Impossible,
                            exit::REFRESH_TOKEN_LOCKED,
                            format!("{why} and the passphrase in `{var}` does not open the encrypted refresh token (wrong passphrase or damaged file)"),
                        )
                    }
                    PassphraseInput::Prompt => {
                        return (
                            NextAction::Refresh,
                            0,
                            format!("{why}; the next call asks for the passphrase and uses the stored refresh token"),
                        )
                    }
                    PassphraseInput::Env { .. } => {}
                }
            }
            (NextAction::Refresh, 0, format!("{why}; the next call uses the stored refresh token"))
        }
    }
}

fn daemon_report(info: &DaemonInfo, now: i64) -> DaemonReport {
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

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
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
    }
    daemon::describe(&mut o, &r.profile, daemon_info, r.now);
    let action = match r.next_action {
        NextAction::None => "nothing",
        NextAction::Refresh => "refresh",
        NextAction::Login => "login",
        NextAction::SessionRefresh => "session refresh",
        NextAction::Impossible => "impossible",
    };
    let _ = writeln!(o, "next call: {action} — {}", r.reason);
    let _ = writeln!(o, "usable: {} (exit {})", if r.usable { "yes" } else { "no" }, r.exit_code);
    o
}

/// Gathers the inputs from files (no network, no lock, no prompt).
pub fn gather(renewer: &Renewer) -> Result<Inputs> {
    let settings = renewer.settings();
    let store = renewer.store();
    let profile = renewer.config_profile()?;
    let token_path = renewer.token_path(&profile);
    let token = match crate::store::SessionStore::read_token_at(&token_path) {
        Ok(None) => TokenInput::Missing,
        Ok(Some((_, claims))) => TokenInput::Present(claims),
        Err(Error::CorruptFile { reason, .. }) => TokenInput::Corrupt(reason),
        Err(e) => TokenInput::Corrupt(e.to_string()),
    };
    let renewal = match settings.mode {
        RenewMode::Idp { .. } => RenewalKind::Idp,
        RenewMode::SessionRefresh { .. } => RenewalKind::SessionRefresh,
    };
    let state = store.refresh_token_state()?;
    // Only the environment source is read here; a prompt is never shown by `--status`.
    let env_pass = match &settings.passphrase {
        PassphraseSource::Env(_) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))?;
            runtime.block_on(renewer.passphrase()).ok().flatten()
        }
        _ => None,
    };
    let passphrase = match &settings.passphrase {
        PassphraseSource::None => PassphraseInput::None,
        PassphraseSource::Env(var) => PassphraseInput::Env { var: var.clone(), set: env_pass.is_some() },
        PassphraseSource::Prompt => PassphraseInput::Prompt,
    };
    let (decryptable, expires_at) = match state {
        RefreshTokenState::Absent => (None, None),
        RefreshTokenState::Plain => (None, store.read_refresh_token(None).ok().flatten().and_then(|rt| jwt_exp(&rt))),
        RefreshTokenState::Encrypted => match &env_pass {
            Some(p) => match store.read_refresh_token(Some(p)) {
                Ok(rt) => (Some(true), rt.and_then(|rt| jwt_exp(&rt))),
                Err(_) => (Some(false), None),
            },
            None => (None, None),
        },
    };
    // A JWT refresh token says its own expiry; otherwise use what the IdP said when it issued it.
    let expires_at =
        expires_at.or_else(|| (state != RefreshTokenState::Absent).then(|| store.refresh_token_expiry()).flatten());
    Ok(Inputs {
        profile: settings.profile.clone(),
        token_path,
        token,
        window: settings.window,
        renewal,
        refresh: RefreshInput { state, passphrase, decryptable, expires_at },
        daemon: daemon::inspect(store)?,
    })
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
