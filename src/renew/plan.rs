//! The renewal decision, as one pure function: [`plan`] looks at [`SessionFacts`], what the
//! caller asked for ([`Force`]) and the time, and says what happens next. The executor
//! ([`super::Renewer`]) carries the plan out and `--status` reports it, so status always says
//! what the next call will do.

use super::facts::{ConfigState, PassphraseInput, RenewalKind, SessionFacts, TokenInput};
use super::Force;
use crate::daemon::{fmt_secs, fmt_utc};
use crate::error::{exit, Error};
use crate::jwt::{self, Freshness};
use crate::store::{InterruptedRotation, RefreshTokenState};
use std::time::{Duration, UNIX_EPOCH};

/// What happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The token is valid for longer than the safety window: use it as is.
    Reuse {
        /// Time left until `exp`.
        remaining: Duration,
    },
    /// The token is valid, but `~/.oci/config` lacks woci's entries for the profile (an earlier
    /// run stopped between writing the token and the config): write them, then use the token.
    FinishConfig {
        /// Time left until `exp`.
        remaining: Duration,
    },
    /// IdP refresh grant with the stored refresh token, then the token exchange (an interactive
    /// login follows if the IdP refuses the refresh token and a person is there).
    Refresh,
    /// Interactive login at the IdP, then the token exchange.
    Login,
    /// OCI auth service session refresh (profiles without an IdP).
    SessionRefresh,
    /// A fresh JWT from the subject token source, exchanged for a session token (federation).
    Exchange,
    /// Nothing woci can do by itself; the exit code says why.
    Impossible {
        /// The exit code of the call (see [`crate::error::exit`]).
        exit_code: u8,
    },
}

/// A plan and why, in words (one line, no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What happens.
    pub plan: Plan,
    /// Why.
    pub reason: String,
}

impl Decision {
    fn new(plan: Plan, reason: impl Into<String>) -> Decision {
        Decision { plan, reason: reason.into() }
    }

    fn impossible(exit_code: u8, reason: impl Into<String>) -> Decision {
        Decision::new(Plan::Impossible { exit_code }, reason)
    }

    /// The exit code `--status` reports: 0 when the next call works without a person, `3` when
    /// it needs an interactive login, the blocking error's code otherwise.
    pub fn exit_code(&self) -> u8 {
        match self.plan {
            Plan::Reuse { .. } | Plan::FinishConfig { .. } | Plan::Refresh | Plan::SessionRefresh | Plan::Exchange => 0,
            Plan::Login => exit::LOGIN,
            Plan::Impossible { exit_code } => exit_code,
        }
    }

    /// The error a call reports for an impossible plan.
    pub fn into_error(self) -> Error {
        let Plan::Impossible { exit_code } = self.plan else {
            return Error::Other(format!("internal: `{:?}` is not an error", self.plan));
        };
        match exit_code {
            exit::CORRUPT_FILE => Error::Blocked { code: exit_code, message: self.reason },
            exit::SESSION_EXPIRED => Error::SessionExpired(self.reason),
            exit::CONFIG => Error::Config(self.reason),
            code => Error::Blocked { code, message: self.reason },
        }
    }
}

/// Decides what a call asking for `force` does at `now` (epoch seconds).
pub fn plan(f: &SessionFacts, force: Force, now: i64) -> Decision {
    let p = &f.profile;
    if let Some(why) = &f.unusable {
        return Decision::impossible(exit::CONFIG, why.clone());
    }
    let claims = match &f.token {
        TokenInput::Corrupt(e) if force == Force::No => {
            return Decision::impossible(
                exit::CORRUPT_FILE,
                format!(
                    "corrupt file `{}`: {e}; move it away and run `woci session authenticate --profile {p}`",
                    f.token_path.display()
                ),
            )
        }
        TokenInput::Corrupt(_) | TokenInput::Missing => None,
        TokenInput::Present(c) => {
            if force == Force::No {
                if let Freshness::Fresh { remaining } = freshness(c, f.window, now) {
                    let valid =
                        format!("the session token is valid for {}{}", fmt_secs(secs(remaining)), rotation_note(f));
                    if f.config_current {
                        return Decision::new(Plan::Reuse { remaining }, valid);
                    }
                    if f.key_present {
                        return Decision::new(
                            Plan::FinishConfig { remaining },
                            format!(
                                "{valid}, but `{}` lacks woci's entries for profile `{p}`; the next call writes them",
                                f.config_file.display()
                            ),
                        );
                    }
                    // A token without a key it can be bound to is no session at all.
                    let why = format!("{valid}, but no key pair for it exists");
                    if f.renewal == RenewalKind::Federated {
                        return federated_plan(f, force, why);
                    }
                    return idp_plan(f, force, why, now);
                }
            }
            Some(c)
        }
    };
    let why = match (force, claims) {
        (Force::Login, _) => "a new login was asked for".to_owned(),
        (Force::Renew, _) => "a renewal was asked for".to_owned(),
        (Force::No, None) => "there is no session token".to_owned(),
        (Force::No, Some(c)) if c.exp <= now => format!("the session token expired {} ago", fmt_secs(now - c.exp)),
        (Force::No, Some(c)) => {
            format!("the session token expires in {}, inside the safety window", fmt_secs(c.exp - now))
        }
    };
    match f.renewal {
        RenewalKind::SessionRefresh => session_refresh_plan(f, force, claims, why, now),
        RenewalKind::Idp => idp_plan(f, force, why, now),
        RenewalKind::Federated => federated_plan(f, force, why),
    }
}

/// A federated profile never logs in; it can renew when its source can give a token.
fn federated_plan(f: &SessionFacts, force: Force, why: String) -> Decision {
    if force == Force::Login {
        return Decision::impossible(
            exit::CONFIG,
            format!("profile `{}` mints its session from `subject_token_source` and never logs in", f.profile),
        );
    }
    if let Some(problem) = &f.source_problem {
        return Decision::impossible(exit::SUBJECT_TOKEN, format!("{why}, and {problem}"));
    }
    Decision::new(Plan::Exchange, format!("{why}; the next call exchanges a fresh token from the subject token source"))
}

fn session_refresh_plan(
    f: &SessionFacts,
    force: Force,
    claims: Option<&jwt::UpstClaims>,
    why: String,
    now: i64,
) -> Decision {
    let p = &f.profile;
    let authenticate = format!("run `command oci session authenticate --profile {p}`");
    let config = f.config_file.display();
    let no_idp = match &f.manager_ini {
        None => format!("profile `{p}` has no identity provider (no `woci_manager.ini` was found)"),
        Some((ini, false)) => {
            format!("profile `{p}` has no identity provider (`{}` has no `[{p}]` section)", ini.display())
        }
        Some((ini, true)) => format!("profile `{p}` has no identity provider settings in `{}`", ini.display()),
    };
    let not_configured = match f.config {
        ConfigState::FileMissing => Some(format!("the OCI config `{config}` does not exist")),
        ConfigState::ProfileMissing => Some(format!("profile `{p}` is not in the OCI config `{config}`")),
        ConfigState::Present => None,
    };
    let setup = |what: String| {
        Decision::impossible(
            exit::CONFIG,
            format!("{what} and {no_idp}; {authenticate}, or add the profile's IdP settings to `woci_manager.ini`"),
        )
    };
    if force == Force::Login {
        return Decision::impossible(
            exit::CONFIG,
            format!("{no_idp}, so woci cannot log in; {authenticate} or add the profile to `woci_manager.ini`"),
        );
    }
    let cannot =
        |what: String| Decision::impossible(exit::SESSION_EXPIRED, format!("{what}; {no_idp}, so {authenticate}"));
    let Some(c) = claims else {
        return match not_configured {
            Some(what) => setup(what),
            None => cannot(why),
        };
    };
    if c.exp <= now {
        return cannot(format!("{why} and OCI cannot refresh an expired session"));
    }
    if let Some(end) = c.session_expiry().filter(|end| *end <= now) {
        return cannot(format!("the OCI session reached its end (`sess_exp` {})", fmt_utc(end)));
    }
    if let Some(what) = not_configured {
        return setup(what);
    }
    if f.oci.key_file.is_none() {
        return Decision::impossible(exit::CONFIG, format!("profile `{p}` has no `key_file` in `{config}`"));
    }
    Decision::new(Plan::SessionRefresh, format!("{why}; the next call refreshes it through the OCI auth service"))
}

fn idp_plan(f: &SessionFacts, force: Force, why: String, now: i64) -> Decision {
    let p = &f.profile;
    let r = &f.refresh;
    let login = |what: String| {
        Decision::new(
            Plan::Login,
            format!("{what}; the next call opens a browser login (or run `woci session authenticate --profile {p}`)"),
        )
    };
    if force == Force::Login {
        return login(why);
    }
    if let Some(InterruptedRotation::Incomplete(tmp)) = &f.rotation {
        return login(format!(
            "{why}, and a refresh-token rotation was interrupted while its new refresh token was written (`{}` is \
             incomplete), so the identity provider has probably spent the stored one",
            tmp.display()
        ));
    }
    if r.state == RefreshTokenState::Absent {
        return login(format!("{why} and no refresh token is stored"));
    }
    if let Some(exp) = r.expires_at.filter(|e| *e <= now) {
        return login(format!("{why} and the refresh token expired {}", fmt_utc(exp)));
    }
    if r.state == RefreshTokenState::Encrypted {
        match &r.passphrase {
            PassphraseInput::None => {
                return Decision::impossible(
                    exit::REFRESH_TOKEN_LOCKED,
                    format!("{why} and the refresh token is encrypted but no passphrase is configured; pass `--refresh-token-passphrase-env VAR` or `--refresh-token-passphrase-prompt`"),
                )
            }
            PassphraseInput::Env { var, set: false } => {
                return Decision::impossible(
                    exit::CONFIG,
                    format!("{why} and the refresh token is encrypted, but `{var}` (the passphrase variable) is not set"),
                )
            }
            PassphraseInput::Env { var, .. } if r.decryptable == Some(false) => {
                return Decision::impossible(
                    exit::REFRESH_TOKEN_LOCKED,
                    format!("{why} and the passphrase in `{var}` does not open the encrypted refresh token (wrong passphrase or damaged file)"),
                )
            }
            PassphraseInput::Prompt => {
                return Decision::new(
                    Plan::Refresh,
                    format!("{why}; the next call asks for the passphrase and uses the stored refresh token"),
                )
            }
            PassphraseInput::Env { .. } => {}
        }
    }
    if matches!(f.rotation, Some(InterruptedRotation::Complete(_))) {
        return Decision::new(
            Plan::Refresh,
            format!("{why}; an interrupted refresh-token rotation will be completed by the next call, which then uses the new refresh token"),
        );
    }
    Decision::new(Plan::Refresh, format!("{why}; the next call uses the stored refresh token"))
}

/// What a valid token's reason adds about a refresh-token rotation a killed woci left half done.
fn rotation_note(f: &SessionFacts) -> &'static str {
    match f.rotation {
        Some(InterruptedRotation::Complete(_)) => {
            "; an interrupted refresh-token rotation will be completed by the next renewal"
        }
        Some(InterruptedRotation::Incomplete(_)) => {
            "; a refresh-token rotation was interrupted while its new refresh token was written, so the next renewal \
             will probably need a login"
        }
        None => "",
    }
}

/// How fresh a token with these claims is at `now` (epoch seconds), with the safety window capped
/// at half its lifetime.
pub(crate) fn freshness(claims: &jwt::UpstClaims, window: Duration, now: i64) -> Freshness {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0));
    jwt::freshness(claims.exp, at, jwt::effective_window(claims, window))
}

/// Whole seconds of a duration, for messages.
pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
