//! The renewal decision, as one pure function: [`plan`] looks at [`SessionFacts`], what the
//! caller asked for ([`Force`]) and the time, and says what happens next — with the typed
//! configuration of the profile's mode, so the executor ([`super::Renewer`]) carries the plan out
//! without matching the mode again, and `--status` reports the very same decision.

use super::facts::{ConfigState, KeyState, PassphraseInput, SessionFacts, Token, TokenInput};
use super::Force;
use crate::clock::{fmt_secs, fmt_utc};
use crate::error::{exit, Error};
use crate::jwt::{self, Freshness};
use crate::settings::{FederatedConfig, LoginConfig, RenewMode, SessionRefreshConfig};
use crate::store::{InterruptedRotation, RefreshTokenState, NO_PASSPHRASE_FIX};
use std::time::{Duration, UNIX_EPOCH};

/// What happens next.
#[derive(Debug, Clone, Copy)]
pub enum Plan<'s> {
    /// The token is valid for longer than the safety window: use it as is.
    Reuse {
        /// The token.
        token: &'s Token,
        /// Time left until `exp`.
        remaining: Duration,
    },
    /// The token is valid, but `~/.oci/config` lacks woci's entries for the profile (an earlier
    /// run stopped between writing the token and the config): write them, then use the token.
    FinishConfig {
        /// The token.
        token: &'s Token,
    },
    /// IdP refresh grant with the stored refresh token, then the token exchange (an interactive
    /// login follows if the IdP refuses the refresh token and a person is there).
    Refresh(&'s LoginConfig),
    /// Interactive login at the IdP, then the token exchange.
    Login(&'s LoginConfig),
    /// OCI auth service session refresh of the current token (profiles without an IdP).
    SessionRefresh(&'s SessionRefreshConfig, &'s Token),
    /// A fresh JWT from the subject token source, exchanged for a session token (federation).
    Exchange(&'s FederatedConfig),
    /// Nothing woci can do by itself; the exit code says why.
    Impossible {
        /// The exit code of the call (see [`crate::error::exit`]).
        exit_code: u8,
    },
}

impl Plan<'_> {
    /// The plan's name in `--status` (text and JSON `next_action`).
    pub fn name(&self) -> &'static str {
        match self {
            Plan::Reuse { .. } => "none",
            Plan::FinishConfig { .. } => "finish_config",
            Plan::Refresh(_) => "refresh",
            Plan::Login(_) => "login",
            Plan::SessionRefresh(..) => "session_refresh",
            Plan::Exchange(_) => "exchange",
            Plan::Impossible { .. } => "impossible",
        }
    }
}

/// A plan and why, in words (one line, no secrets).
#[derive(Debug, Clone)]
pub struct Decision<'s> {
    /// What happens.
    pub plan: Plan<'s>,
    /// Why.
    pub reason: String,
}

impl<'s> Decision<'s> {
    fn new(plan: Plan<'s>, reason: impl Into<String>) -> Decision<'s> {
        Decision { plan, reason: reason.into() }
    }

    fn impossible(exit_code: u8, reason: impl Into<String>) -> Decision<'s> {
        Decision::new(Plan::Impossible { exit_code }, reason)
    }

    /// The exit code `--status` reports: 0 when the next call works without a person, `3` when
    /// it needs an interactive login, the blocking error's code otherwise.
    pub fn exit_code(&self) -> u8 {
        match self.plan {
            Plan::Login(_) => exit::LOGIN,
            Plan::Impossible { exit_code } => exit_code,
            _ => 0,
        }
    }
}

/// The error a call reports for a plan that cannot be carried out.
pub fn blocked(exit_code: u8, reason: String) -> Error {
    match exit_code {
        exit::SESSION_EXPIRED => Error::SessionExpired(reason),
        exit::CONFIG => Error::Config(reason),
        code => Error::Blocked { code, message: reason, shared: None },
    }
}

/// Decides what a call asking for `force` does at `now` (epoch seconds).
pub fn plan<'s>(f: &'s SessionFacts<'_>, force: Force, now: i64) -> Decision<'s> {
    let p = &f.profile;
    // Like ssh, never use a session others could have swapped, whatever the token says.
    let unusable = if let RenewMode::Unusable(why) = f.mode { Some(why) } else { f.unsafe_folder.as_ref() };
    if let Some(why) = unusable {
        return Decision::impossible(exit::CONFIG, why.clone());
    }
    if let KeyState::Unusable { reason, exit_code } = &f.key {
        return Decision::impossible(*exit_code, reason.clone());
    }
    // As oci, a call does not take a config path it was given that leads nowhere (a typo) for a
    // new file; a login, which sets the profile up, makes it (round 90 F2).
    if let (ConfigState::FileMissing, Some(from), Force::No) = (&f.config, &f.config_named, force) {
        return Decision::impossible(
            exit::CONFIG,
            format!(
                "the OCI config `{}` (from {from}) does not exist; check the path (`woci {} session authenticate` \
                 creates it)",
                f.config_file.display(),
                f.woci_selection
            ),
        );
    }
    let token = match &f.token {
        TokenInput::Corrupt(e) if force == Force::No => {
            // A profile without an IdP logs in with oci's own login, as every message of its says;
            // one that renews without a person (a stored refresh token, federation) needs no login.
            let fix = match f.mode {
                RenewMode::SessionRefresh(_) => {
                    format!("and run `command oci session authenticate {}`", f.oci_selection)
                }
                RenewMode::Federated(_) => "(the next call renews the session)".into(),
                RenewMode::Login(_) if f.refresh.state != RefreshTokenState::Absent => {
                    "(the next call renews the session with the stored refresh token)".into()
                }
                _ => format!("and run `woci session authenticate {}`", f.woci_selection),
            };
            return Decision::impossible(
                exit::CORRUPT_FILE,
                format!("corrupt file `{}`: {e}; move it away {fix}", f.token_path.display()),
            );
        }
        TokenInput::Corrupt(_) | TokenInput::Missing => None,
        TokenInput::Present(t) => match freshness(&t.claims, renewal_window(&t.claims, f.window, f.ahead), now) {
            Freshness::Fresh { remaining } if force == Force::No => {
                let valid = format!(
                    "the session token is valid for {}{}{}",
                    fmt_secs(secs(remaining)),
                    rotation_note(f),
                    renewal_note(f)
                );
                if f.key_mismatch {
                    // OCI refuses every request it signs: a new session for the key is the way out.
                    let bound = match f.key {
                        KeyState::Missing => format!("{valid}, but the key pair woci made for it is gone"),
                        _ => format!("{valid}, but it is bound to another key than the profile's key file"),
                    };
                    return renew(f, force, Some(t), bound, now);
                }
                if f.config_current {
                    return Decision::new(Plan::Reuse { token: t, remaining }, valid);
                }
                if let Some(problem) = f.config_unwritable.as_ref().filter(|_| f.key == KeyState::Usable) {
                    let why = format!("{valid}, but woci's entries for profile `{p}` cannot be written: {problem}");
                    return Decision::impossible(exit::FAILURE, why);
                }
                if f.key == KeyState::Usable {
                    return Decision::new(
                        Plan::FinishConfig { token: t },
                        format!(
                            "{valid}, but `{}` lacks woci's entries for profile `{p}`; the next call writes them",
                            f.config_file.display()
                        ),
                    );
                }
                // A token without a key it can be bound to is no session at all.
                return renew(f, force, None, format!("{valid}, but no key pair for it exists"), now);
            }
            _ => Some(t),
        },
    };
    let why = match (force, token) {
        (Force::Login, _) => "a new login was asked for".to_owned(),
        (Force::Renew, _) => "a renewal was asked for".to_owned(),
        (Force::No, None) => "there is no session token".to_owned(),
        (Force::No, Some(t)) if t.claims.exp <= now => {
            format!("the session token expired {} ago", fmt_secs(now - t.claims.exp))
        }
        (Force::No, Some(t)) => {
            format!("the session token expires in {}, inside the safety window", fmt_secs(t.claims.exp - now))
        }
    };
    renew(f, force, token, why, now)
}

/// The renewal the profile's mode makes.
fn renew<'s>(f: &'s SessionFacts<'_>, force: Force, token: Option<&'s Token>, why: String, now: i64) -> Decision<'s> {
    if let Some(problem) = &f.lock_problem {
        return Decision::impossible(exit::CONFIG, format!("{why}, but the renewal lock is unusable: {problem}"));
    }
    if let Some(problem) = f.unwritable.as_ref().or(f.config_unwritable.as_ref()) {
        return Decision::impossible(exit::FAILURE, format!("{why}, but {problem}"));
    }
    let stopped = f.stopped_holder.map(|(pid, login)| {
        let holder = crate::store::stopped_holder(pid, &f.profile);
        (login, format!("{why}, but {holder}; until then a call gives up after about 15 s"))
    });
    if let Some((false, reason)) = stopped {
        return Decision::impossible(exit::BUSY, reason);
    }
    if let KeyState::Encrypted(key) = &f.key {
        let p = &f.profile;
        let way = match f.mode {
            RenewMode::SessionRefresh(_) => {
                format!("renew with `command oci session refresh --profile {p}`, which can")
            }
            _ => "point `key_file` at a key without one, or delete the `key_file` line so that woci creates its own"
                .to_owned(),
        };
        return Decision::impossible(
            exit::CONFIG,
            format!(
                "{why}, but the key `{}` is encrypted with a passphrase, which woci cannot renew with; {way}",
                key.display()
            ),
        );
    }
    let decision = match f.mode {
        RenewMode::Login(cfg) => login_plan(f, cfg, force, why, now),
        RenewMode::Federated(cfg) => federated_plan(f, cfg, force, why, now),
        RenewMode::SessionRefresh(cfg) => session_refresh_plan(f, cfg, force, token, why, now),
        RenewMode::Unusable(why) => Decision::impossible(exit::CONFIG, why.clone()),
    };
    // A stopped login (Ctrl-Z in `woci session authenticate`) holds the login lock only: only a
    // login waits for it, a refresh does not (round 105's review).
    match stopped {
        Some((true, reason)) if matches!(decision.plan, Plan::Login(_)) => Decision::impossible(exit::BUSY, reason),
        _ => decision,
    }
}

/// A federated profile never logs in; it can renew when its source can give a token.
fn federated_plan<'s>(
    f: &SessionFacts<'_>,
    cfg: &'s FederatedConfig,
    force: Force,
    why: String,
    now: i64,
) -> Decision<'s> {
    if force == Force::Login {
        return Decision::impossible(
            exit::CONFIG,
            format!(
                "profile `{0}` mints its session from `subject_token_source` and never logs in; every call (or \
                 `woci session refresh --profile {0}`) mints a new one",
                f.profile
            ),
        );
    }
    if let Some(problem) = &f.source_problem {
        return Decision::impossible(exit::SUBJECT_TOKEN, format!("{why}, and {problem}"));
    }
    if let Some(exp) = f.source_expires_at.filter(|exp| *exp <= now) {
        return Decision::impossible(
            exit::SUBJECT_TOKEN,
            format!(
                "{why}, and subject token source `{}` holds a JWT that expired {}s ago",
                cfg.source.describe(),
                now - exp
            ),
        );
    }
    Decision::new(
        Plan::Exchange(cfg),
        format!("{why}; the next call exchanges a fresh token from the subject token source"),
    )
}

fn session_refresh_plan<'s>(
    f: &SessionFacts<'_>,
    cfg: &'s SessionRefreshConfig,
    force: Force,
    token: Option<&'s Token>,
    why: String,
    now: i64,
) -> Decision<'s> {
    let p = &f.profile;
    let authenticate = format!("run `command oci session authenticate {}`", f.oci_selection);
    let config = f.config_file.display();
    let ini_file = match &f.manager_ini {
        Some((ini, _)) => ini.clone(),
        None => f.config_file.with_file_name(crate::settings::ini::FILE_NAME),
    };
    let no_idp = match &f.manager_ini {
        None => format!(
            "profile `{p}` has no identity provider (no `woci_manager.ini` was found beside the OCI config or in \
             `~/.oci`)"
        ),
        Some((ini, false)) => {
            let near = f.near_section.as_ref().map(|s| format!("; did you mean its `[{s}]`?")).unwrap_or_default();
            format!("profile `{p}` has no identity provider (`{}` has no `[{p}]` section{near})", ini.display())
        }
        Some((ini, true)) => format!("profile `{p}` has no identity provider settings in `{}`", ini.display()),
    };
    let not_configured = match &f.config {
        ConfigState::FileMissing => Some(format!("the OCI config `{config}` does not exist")),
        ConfigState::ProfileMissing(names) if names.is_empty() => {
            Some(format!("profile `{p}` is not in the OCI config `{config}`, which has no profiles"))
        }
        ConfigState::ProfileMissing(names) => Some(format!(
            "profile `{p}` is not in the OCI config `{config}` (it has {})",
            names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        )),
        ConfigState::Present => None,
    };
    let add_idp = format!("add the profile's IdP settings to `{}` (a `[{p}]` section)", ini_file.display());
    // `DEFAULT` is what a call that names no profile gets: most likely one of the others was meant.
    let pick = match &f.config {
        ConfigState::ProfileMissing(names) if p == crate::oci_config::DEFAULT_SECTION && !names.is_empty() => {
            let n = crate::settings::quote(&names[0]);
            format!("name one of its profiles (`--profile {n}` or `export OCI_CLI_PROFILE={n}`), ")
        }
        _ => String::new(),
    };
    let setup = |what: String| {
        Decision::impossible(exit::CONFIG, format!("{what} and {no_idp}; {pick}{authenticate}, or {add_idp}"))
    };
    if force == Force::Login {
        return Decision::impossible(
            exit::CONFIG,
            format!("{no_idp}, so woci cannot log in; {authenticate}, or {add_idp}"),
        );
    }
    // A refresh token in the session folder: the session came from a woci login, whose settings
    // are gone now (removed, or an editor is saving the file). Sending it to OCI's auth service
    // instead would be a guess.
    if f.refresh.state != RefreshTokenState::Absent {
        return Decision::impossible(
            exit::CONFIG,
            format!(
                "{no_idp}, but its session came from a woci login (its session folder holds a refresh token): \
                 if the file is being saved, try again; else restore the profile's IdP settings, or delete \
                 `refresh_token` in its session folder to renew it with OCI session refresh"
            ),
        );
    }
    let cannot = |what: String| {
        Decision::impossible(exit::SESSION_EXPIRED, format!("{what}; {no_idp}, so {authenticate}, or {add_idp}"))
    };
    let Some(t) = token else {
        return match not_configured {
            Some(what) => setup(what),
            None => cannot(why),
        };
    };
    // OCI refreshes by its own clock: a token `oci` already calls expired (this machine's clock
    // ahead) may still be refreshed.
    let servers_now = now - f.servers_behind;
    // The session's end first: a token expires with it, and the end is what the user must know.
    if let Some(end) = t.claims.session_expiry().filter(|end| *end <= servers_now) {
        return cannot(format!(
            "the OCI session reached its end (`sess_exp` {}), past which OCI refreshes nothing",
            fmt_utc(end)
        ));
    }
    if t.claims.exp <= servers_now {
        return cannot(format!("{why} and OCI cannot refresh an expired session"));
    }
    if f.key_mismatch {
        return cannot(format!("{why}; only the key it was issued for can refresh it (restore that key)"));
    }
    // A token that already runs to the session's end cannot be extended: used until then.
    let at_the_end = |end: &i64| t.claims.exp >= *end && force == Force::No && f.config_current;
    if let Some(end) = t.claims.session_expiry().filter(at_the_end) {
        let left = Duration::from_secs(u64::try_from(t.claims.exp - now).unwrap_or(0));
        return Decision::new(
            Plan::Reuse { token: t, remaining: left },
            format!(
                "the session token is valid for {}, to the session's end (`sess_exp` {}), which no refresh extends",
                fmt_secs(secs(left)),
                fmt_utc(end)
            ),
        );
    }
    if let Some(what) = not_configured {
        return setup(what);
    }
    if f.oci.key_file.is_none() {
        return Decision::impossible(exit::CONFIG, format!("profile `{p}` has no `key_file` in `{config}`"));
    }
    Decision::new(
        Plan::SessionRefresh(cfg, t),
        format!("{why}; the next call refreshes it through the OCI auth service"),
    )
}

fn login_plan<'s>(f: &'s SessionFacts<'_>, cfg: &'s LoginConfig, force: Force, why: String, now: i64) -> Decision<'s> {
    let r = &f.refresh;
    let login = |what: String| match cfg.idp.redirect_port {
        // The browser login could not even start: that is what to fix first, where a person could
        // log in (without one, the call says the login cannot happen here, as for any profile).
        None if !cfg.device_login && cfg.interactive => Decision::impossible(
            exit::CONFIG,
            format!(
                "{what}, and a browser login needs `redirect_port` in woci_manager.ini (the port of the redirect URI \
                 registered for the login app); or log in with a device code (`--device-code`)"
            ),
        ),
        _ if !cfg.interactive => Decision::new(
            Plan::Login(cfg),
            format!(
                "{what}; a login is needed, which cannot happen without a terminal (or a `BROWSER` command): run \
                 `woci session authenticate {}` in one",
                f.woci_selection
            ),
        ),
        _ => Decision::new(
            Plan::Login(cfg),
            format!(
                "{what}; the next call starts a {} login (or run `woci session authenticate {}`)",
                if cfg.device_login { "device-code" } else { "browser" },
                f.woci_selection
            ),
        ),
    };
    // Every renewal of this profile reads the variable (to open the stored refresh token or to
    // seal the next one), a login included.
    if let PassphraseInput::Env { var, set: false } = &r.passphrase {
        // Inside the window but still valid: used as it is. Another woci that has the variable
        // (the profile's daemon, the woci whose `--exec` runs this one and withholds it from what
        // it runs) renews it ahead; one renewal this call cannot make must not fail it meanwhile.
        if let TokenInput::Present(t) = &f.token {
            let left = t.claims.exp - now;
            if force == Force::No && left > 0 && f.config_current && !f.key_mismatch {
                let why = format!(
                    "{why}, but `{var}` (named by {}) {} here: the token is used as it is (valid for {}), as \
                     another woci with the variable (a daemon, an outer `--exec`) renews it",
                    cfg.passphrase_setting,
                    crate::settings::unset(var),
                    fmt_secs(left)
                );
                let remaining = Duration::from_secs(u64::try_from(left).unwrap_or(0));
                return Decision::new(Plan::Reuse { token: t, remaining }, why);
            }
        }
        let fix = match r.state {
            RefreshTokenState::Encrypted if force != Force::Login => {
                "set it to the passphrase the refresh token is encrypted with"
            }
            _ => {
                "set it (a new refresh token is encrypted with it), or remove the setting to keep the refresh token \
                  unencrypted"
            }
        };
        return Decision::impossible(
            exit::CONFIG,
            format!("{why}, but `{var}` (named by {}) {}; {fix}", cfg.passphrase_setting, crate::settings::unset(var)),
        );
    }
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
    if let Some(damage) = &r.damage {
        return Decision::impossible(
            exit::CORRUPT_FILE,
            format!(
                "{why} and the refresh token is unreadable: {damage}; move it away and run `woci session authenticate {}`",
                f.woci_selection
            ),
        );
    }
    if r.state == RefreshTokenState::Absent {
        return login(format!("{why} and no refresh token is stored"));
    }
    // Remembered for the calls that renew on their own; `session refresh` asks the IdP again.
    if let Some(refusal) = r.rejected.as_ref().filter(|_| force == Force::No) {
        return login(format!("{why} and the stored refresh token was refused earlier ({refusal})"));
    }
    if let Some(exp) = r.expires_at.filter(|e| *e <= now) {
        return login(format!("{why} and the refresh token expired {}", fmt_utc(exp)));
    }
    let encrypted = r.state == RefreshTokenState::Encrypted;
    let locked = match &r.passphrase {
        _ if !encrypted => None,
        PassphraseInput::None => Some((
            exit::REFRESH_TOKEN_LOCKED,
            format!("the refresh token is encrypted but no passphrase is configured; {NO_PASSPHRASE_FIX}"),
        )),
        PassphraseInput::Env { var, .. } if r.decryptable == Some(false) => Some((
            exit::REFRESH_TOKEN_LOCKED,
            format!(
                "the passphrase in `{var}` does not open the encrypted refresh token (a wrong passphrase, an empty \
                 variable, or a damaged file)"
            ),
        )),
        _ => None,
    };
    if let Some((exit_code, what)) = locked {
        return Decision::impossible(exit_code, format!("{why} and {what}"));
    }
    let next = match (&r.passphrase, &f.rotation) {
        (PassphraseInput::Prompt, _) if encrypted => {
            "the next call asks for the passphrase and uses the stored refresh token"
        }
        // A plain one is sealed with the new one the grant brings: a new passphrase, asked twice.
        (PassphraseInput::Prompt, _) => {
            "the next call uses the stored refresh token and asks for a new passphrase (twice) to encrypt the one it stores"
        }
        (_, Some(InterruptedRotation::Complete(_))) => {
            "an interrupted refresh-token rotation will be completed by the next call, which then uses the new refresh token"
        }
        _ if r.rescued.is_some() => "the next call uses the rescued refresh token and moves it back",
        _ => "the next call uses the stored refresh token",
    };
    Decision::new(Plan::Refresh(cfg), format!("{why}; {next}"))
}

/// What a valid token's reason adds about a refresh-token rotation a killed woci left half done.
fn rotation_note(f: &SessionFacts<'_>) -> &'static str {
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

/// What a valid token's reason adds about the renewal after it, when that fails: an unreadable
/// refresh token (round 95 N7), or a passphrase the renewal lacks: a variable not set here (a cron
/// job's environment), none configured for an encrypted refresh token (a call given the flag
/// sealed it), or one that does not open it. The token needs none now.
fn renewal_note(f: &SessionFacts<'_>) -> String {
    let RenewMode::Login(c) = f.mode else { return String::new() };
    if let Some(damage) = &f.refresh.damage {
        return format!(
            "; but the stored refresh token is unreadable ({damage}), so the renewal after it needs a login: move it \
             away and run `woci session authenticate {}`",
            f.woci_selection
        );
    }
    let encrypted = f.refresh.state == RefreshTokenState::Encrypted;
    let (lacking, fix) = match &f.refresh.passphrase {
        PassphraseInput::Env { var, set: false } => {
            (format!("`{var}` (named by {}) {} here", c.passphrase_setting, crate::settings::unset(var)), "")
        }
        PassphraseInput::None if encrypted => {
            ("the stored refresh token is encrypted and no passphrase is configured".into(), NO_PASSPHRASE_FIX)
        }
        PassphraseInput::Env { var, .. } if f.refresh.decryptable == Some(false) => {
            (format!("the passphrase in `{var}` does not open the encrypted refresh token"), "")
        }
        _ => return String::new(),
    };
    let fix = if fix.is_empty() { String::new() } else { format!("; {fix}") };
    format!(
        "; but {lacking}, so the renewal after it fails unless another woci with the passphrase (a daemon) makes it{fix}"
    )
}

/// How far ahead of its window a supervisor renews, at most.
const MAX_LEAD: Duration = Duration::from_secs(30);

/// The window before `exp` in which a token with these claims is renewed: the safety `window`,
/// capped at half the token's lifetime. A supervisor (`ahead`: the daemon, `--auto-refresh`)
/// widens it by half (at most [`MAX_LEAD`]): a short token caps a call's window and the
/// supervisor's alike, and the calls would race it (and fail when they cannot renew by
/// themselves, in a shell without the daemon's passphrase).
pub fn renewal_window(claims: &jwt::UpstClaims, window: Duration, ahead: bool) -> Duration {
    let window = jwt::effective_window(claims, window);
    if ahead {
        window + (window / 2).min(MAX_LEAD)
    } else {
        window
    }
}

/// How fresh a token with these claims is at `now` (epoch seconds), for a renewal `window` (see
/// [`renewal_window`]).
pub fn freshness(claims: &jwt::UpstClaims, window: Duration, now: i64) -> Freshness {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(now).unwrap_or(0));
    jwt::freshness(claims.exp, at, window)
}

/// Whole seconds of a duration, for messages.
pub fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
