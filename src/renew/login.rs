//! Renewal of a login profile: the IdP's refresh grant (or an interactive login), then the token
//! exchange bound to the profile's stable key. The grant is a critical section: from sending it
//! until the rotated refresh token is durably stored, SIGINT/SIGTERM/SIGHUP are held.

use super::facts::SessionFacts;
use super::{Action, Renewer, Session};
use crate::critical::{self, failpoint};
use crate::error::{Error, Result};
use crate::exchange;
use crate::http::Http;
use crate::oidc::{self, IdpTokens, LoginOptions};
use crate::secret::SecretString;
use crate::settings::{LoginConfig, PassphraseSource};
use crate::store::{RefreshTokenState, StoredRefreshToken};
use std::time::Duration;

/// Refresh grant (`login == false`, falling back to a login when the IdP refuses the refresh
/// token and a person is there) or login, then exchange, token and config.
pub(super) async fn renew(r: &Renewer, cfg: &LoginConfig, facts: &SessionFacts<'_>, login: bool) -> Result<Session> {
    let (key, key_path) = r.store.load_or_create_key(facts.oci.key_file.as_deref())?;
    let http = r.http().await?;
    // A login made before the lock is what this renewal stores, even where the plan under the
    // lock is a refresh (`session refresh`): never a grant with a token the IdP just refused.
    let logged_in = r.logged_in.lock().unwrap_or_else(|p| p.into_inner()).is_some();
    let login = login || logged_in;
    // The passphrase is known before anything is spent: a prompt never interrupts a rotation.
    // (A login done before the lock asked for it there.)
    let replacing = login && !logged_in;
    let passphrase = passphrase(r, cfg, replacing).await?;
    // An access token kept from a grant whose exchange failed, while it has a minute left.
    let kept = r.access.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((access, _)) =
        kept.filter(|(_, exp)| !login && *exp > crate::clock::Clock::unix(r.server.as_ref()) + 60)
    {
        tracing::debug!("exchanging the access token of the last refresh grant again");
        return exchange_and_keep(r, cfg, facts, (&key, &key_path), access, Action::Refreshed).await;
    }
    let unsaved = r.unsaved.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let stored = match (login, unsaved) {
        (true, _) => None,
        (false, Some(rt)) => Some(rt),
        (false, None) => r.store.read_refresh_token(passphrase.as_ref())?,
    };
    let (tokens, action) = match stored {
        Some(rt) => match refresh_grant(r, http, cfg, &rt, passphrase.as_ref()).await {
            Ok(t) => (t, Action::Refreshed),
            Err(e) if e.needs_login() => {
                let e = with_unsettled_grant(e.to_string(), facts);
                r.store.mark_refresh_token_rejected(&e);
                // No one to log in: one line that says both why and what to do, unless another
                // woci's login is under way, which this call waits for before the lock.
                if !(r.allow_login() && cfg.interactive) {
                    return Err(waits_for_another_login(r).unwrap_or_else(|| login_impossible(r, Some(&e))));
                }
                tracing::warn!(
                    "the identity provider refused the stored refresh token of profile `{}` ({e}); a new login is needed",
                    r.settings.profile
                );
                (self::login(r, http, cfg, passphrase.as_ref()).await?, Action::LoggedIn)
            }
            Err(e) => return Err(e),
        },
        None if !(r.allow_login() && cfg.interactive) => {
            let refused = || facts.refresh.rejected.as_ref().map(|refusal| login_impossible(r, Some(refusal)));
            if let Some(e) = waits_for_another_login(r).or_else(refused) {
                return Err(e);
            }
            (self::login(r, http, cfg, passphrase.as_ref()).await?, Action::LoggedIn)
        }
        None => (self::login(r, http, cfg, passphrase.as_ref()).await?, Action::LoggedIn),
    };
    exchange_and_keep(r, cfg, facts, (&key, &key_path), tokens.access_token, action).await
}

/// [`Error::LoginFirst`] when a call that cannot log in itself meets another woci's login for
/// the profile: it waits for that login before the lock ([`log_in_before_locking`]).
fn waits_for_another_login(r: &Renewer) -> Option<Error> {
    let deferring = !r.login_under_lock.load(std::sync::atomic::Ordering::Relaxed);
    (deferring && r.login_elsewhere()).then_some(Error::LoginFirst)
}

/// The token exchange of `access`, and the new UPST kept. When the exchange fails for a reason
/// other than the access token (a network failure, 5xx), the access token is kept for the next
/// attempt.
async fn exchange_and_keep(
    r: &Renewer,
    cfg: &LoginConfig,
    facts: &SessionFacts<'_>,
    (key, key_path): (&crate::keys::KeyPair, &std::path::Path),
    access: SecretString,
    action: Action,
) -> Result<Session> {
    let upst = match exchange::exchange(r.http().await?, &cfg.exchange, &access, &key.spki_b64()).await {
        Ok(upst) => upst,
        Err(e) => {
            let exp = crate::jwt::expiry(access.expose()).ok().flatten();
            if let Some(exp) = exp.filter(|_| e.is_transient()) {
                *r.access.lock().unwrap_or_else(|p| p.into_inner()) = Some((access, exp));
            }
            return Err(e);
        }
    };
    failpoint("renew::after_exchange");
    r.keep_new_token(facts, upst, key, Some(key_path), "token exchange", action)
}

async fn refresh_grant(
    r: &Renewer,
    http: &Http,
    cfg: &LoginConfig,
    rt: &SecretString,
    passphrase: Option<&SecretString>,
) -> Result<IdpTokens> {
    // Spending the refresh token where its successor cannot be stored would lose the session:
    // room in the folder, and file descriptors to write it with (`ulimit -n`), held meanwhile.
    r.store.check_writable()?;
    let reserve = crate::fsutil::FdReserve::take(r.store.dir())?;
    let _held = critical::hold();
    failpoint("renew::before_grant");
    r.store.grant_sending(crate::clock::unix_millis(r.clock.now()));
    let answer = told_when_signalled(&r.settings.profile, oidc::refresh(http, &cfg.idp, rt)).await;
    drop(reserve);
    let tokens = match answer {
        Ok(tokens) => tokens,
        Err(oidc::GrantFailure { error, rotated }) => {
            settle_grant(r, rotated.as_ref().map(|(rt, expires_in)| (rt, *expires_in)), passphrase).await;
            let error = match error {
                Error::ReplyLost { service, url, reason, .. } => {
                    let login = format!("woci session authenticate {}", r.settings.woci_selection());
                    Error::ReplyLost { service, url, reason, login }
                }
                e => e,
            };
            // A held signal ends woci as `_held` drops, before the caller could record or say this.
            if critical::pending() {
                if error.needs_login() {
                    r.store.mark_refresh_token_rejected(&error.to_string());
                }
                r.record_failure(&error);
                tracing::error!("{error}");
            }
            return Err(error);
        }
    };
    failpoint("renew::after_grant");
    // The token to keep: the rotated one, else the unsaved one this grant used, which lives on.
    let unsaved = r.unsaved.lock().unwrap_or_else(|p| p.into_inner()).take();
    let keep = tokens.refresh_token.as_ref().or(unsaved.as_ref().filter(|u| u.expose() == rt.expose()));
    settle_grant(r, keep.map(|keep| (keep, tokens.refresh_expires_in)), passphrase).await;
    failpoint("renew::after_refresh_token_stored");
    Ok(tokens)
}

/// Stores the refresh token a grant's answer left (`rt`, with its `refresh_expires_in`), if any,
/// then settles the grant. Stored nowhere: the note of the grant stays, so that `--status` and
/// the next woci know the stored refresh token is probably spent; this process renews with the
/// new one.
async fn settle_grant(r: &Renewer, rt: Option<(&SecretString, Option<Duration>)>, passphrase: Option<&SecretString>) {
    let kept = match rt {
        Some((rt, expires_in)) => keep_refresh_token(r, rt, expires_in, passphrase).await,
        None => true,
    };
    if kept {
        r.store.grant_settled();
    }
}

/// Why the identity provider refused the stored refresh token, with the likely cause when a woci
/// ended (killed) after sending a grant with it: that grant spent it.
fn with_unsettled_grant(why: String, facts: &SessionFacts<'_>) -> String {
    match facts.refresh.unsettled {
        Some((pid, at)) => format!(
            "{why}; woci pid {pid}, which sent a refresh grant with it at {} and ended before it stored the answer, \
             probably spent it",
            crate::clock::fmt_utc(at / 1000)
        ),
        None => why,
    }
}

/// `grant`, saying once at a signal held meanwhile (Ctrl-C) why woci does not end yet.
async fn told_when_signalled<T>(profile: &str, grant: impl std::future::Future<Output = T>) -> T {
    tokio::pin!(grant);
    loop {
        tokio::select! {
            answer = &mut grant => return answer,
            () = tokio::time::sleep(Duration::from_millis(100)) => if critical::pending() { break }
        }
    }
    say_grant_held(profile);
    grant.await
}

/// Why woci does not end yet: the IdP has a refresh grant whose answer carries the rotated token.
pub(super) fn say_grant_held(profile: &str) {
    tracing::warn!(
        "the refresh grant of profile `{profile}` is under way: woci ends once the identity provider answers it (it \
         is waited for up to 90s; one that never reached it ends sooner), so that the new refresh token is stored, \
         not lost"
    );
}

/// Stores a new refresh token (`expires_in`: `refresh_expires_in`, if the IdP said): retried,
/// and as a last resort saved to the rescue file the store reads next time, with one line saying
/// where. False when it could be stored nowhere: it is then kept in memory for this process's
/// next grant (`Renewer::unsaved`), never dropped while woci runs.
async fn keep_refresh_token(
    r: &Renewer,
    rt: &SecretString,
    expires_in: Option<Duration>,
    passphrase: Option<&SecretString>,
) -> bool {
    // Read only when this write seals (for the warning below): not on every renewal.
    let was_encrypted =
        passphrase.is_some() && r.store.stored_refresh_token().is_ok_and(|t| t.state() == RefreshTokenState::Encrypted);
    let mut err = String::new();
    for (attempt, delay_ms) in [100, 400, 1600].into_iter().enumerate() {
        // The first write follows `check_writable` before the grant; a retry checks the folder again.
        let written = match attempt {
            0 => r.store.write_refresh_token_into_checked_dir(rt, passphrase),
            _ => r.store.write_refresh_token(rt, passphrase),
        };
        let Err(e) = written else {
            let expiry = expires_in.map(|d| r.clock.unix() + super::plan::secs(d));
            if let Err(e) = r.store.write_refresh_token_expiry(expiry) {
                tracing::warn!("cannot record the refresh token's expiry: {e}");
            }
            if passphrase.is_some() {
                warn_if_sealed_for_this_call_alone(&r.settings, was_encrypted);
            }
            return true;
        };
        err = e.to_string();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let profile = &r.settings.profile;
    match r.store.write_rescue(rt, passphrase) {
        Ok(path) => {
            tracing::warn!(
                "cannot store the new refresh token of profile `{profile}` ({err}); it is saved in `{}` and used from there until the session folder can be written",
                path.display()
            );
            true
        }
        Err(e) => {
            tracing::error!(
                "cannot store the new refresh token of profile `{profile}` ({err}) nor save it elsewhere ({e}); this \
                 woci renews with it while it runs (and stores it once it can), but once it ends the next renewal \
                 will need a login"
            );
            *r.unsaved.lock().unwrap_or_else(|p| p.into_inner()) = Some(rt.clone());
            false
        }
    }
}

/// A refresh token now sealed with a passphrase a flag alone gave, which the calls without the
/// flag will not have (round 93 F2, round 95 F1, F2): said, with the INI line that gives every
/// call the same setting. Not again at each rotation of a token that was sealed already, unless
/// the INI names another passphrase.
fn warn_if_sealed_for_this_call_alone(s: &crate::settings::Settings, was_encrypted: bool) {
    use crate::settings::{ini, Origin};
    let by_flag = |key| match s.origins.get(key) {
        Some((Origin::Flag(flag), value)) => Some((key, flag, value.expose())),
        _ => None,
    };
    let keys = ["refresh_token_passphrase_env", "refresh_token_passphrase_prompt"];
    let Some((key, flag, value)) = keys.into_iter().find_map(by_flag) else { return };
    let in_ini = |path| ini::load(path, ini::Source::Home, &s.profile).ok()?.get(key).map(str::to_owned);
    let lack = match s.ini_file.as_ref().and_then(|(path, _)| in_ini(path)) {
        Some(v) if v.trim() == value.trim() => return,
        Some(v) => format!("use `{key} = {}` from the INI instead", v.trim()),
        None if was_encrypted => return,
        None => "have no passphrase".to_owned(),
    };
    let ini = s.ini_file.as_ref().map_or(s.home.join(".oci/woci_manager.ini"), |(p, _)| p.clone());
    let daemon = match key {
        "refresh_token_passphrase_prompt" => " (a daemon cannot ask: it needs `refresh_token_passphrase_env`)",
        _ => "",
    };
    tracing::warn!(
        "the refresh token of profile `{p}` is now stored encrypted with the passphrase the `--{flag}` flag gave; \
         calls without that flag {lack}, so their renewals fail (exit 8): put `{key} = {value}` in `[{p}]` of \
         `{}`{daemon}",
        ini.display(),
        p = s.profile
    );
}

/// Why a needed login cannot happen here (a background renewal, or no terminal).
fn login_impossible(r: &Renewer, cause: Option<&dyn std::fmt::Display>) -> Error {
    let (p, sel) = (&r.settings.profile, r.settings.woci_selection());
    let cause = cause.map(|e| format!(" ({e})")).unwrap_or_default();
    if !r.allow_login() {
        return Error::Login(format!(
            "profile `{p}` needs a new login{cause}, which a background renewal cannot do; run `woci session authenticate {sel}`"
        ));
    }
    crate::oidc::no_terminal(&format!("`{p}`{cause}"), &format!("woci session authenticate {sel}"))
}

/// A login's tokens got before the renewal lock ([`log_in_before_locking`]): signals are held and
/// the profile's login lock kept until the locked renewal has stored them.
#[derive(Debug)]
pub(super) struct LoggedIn {
    tokens: IdpTokens,
    _held: critical::Held,
    _login_lock: crate::fsutil::FileLock,
}

/// A login: the person's part (unless [`log_in_before_locking`] did it already), then the new
/// refresh token stored.
async fn login(r: &Renewer, http: &Http, cfg: &LoginConfig, passphrase: Option<&SecretString>) -> Result<IdpTokens> {
    let done = r.logged_in.lock().unwrap_or_else(|p| p.into_inner()).take();
    let (tokens, _held, _login_lock) = match done {
        Some(LoggedIn { tokens, _held, _login_lock }) => (tokens, _held, Some(_login_lock)),
        // Not under the renewal lock: a person's wait there would keep every renewal of the
        // profile waiting, and bypass the login lock (a second browser for the same profile).
        None if !r.login_under_lock.load(std::sync::atomic::Ordering::Relaxed) => {
            *r.login_lock.lock().unwrap_or_else(|p| p.into_inner()) = r.store.try_login_lock().ok().flatten();
            return Err(Error::LoginFirst);
        }
        None => person_logs_in(r, http, cfg).await.map(|(tokens, held)| (tokens, held, None))?,
    };
    if let Some(rotated) = &tokens.refresh_token {
        keep_refresh_token(r, rotated, tokens.refresh_expires_in, passphrase).await;
    }
    Ok(tokens)
}

/// The person's part of a login a renewal plans, done before the renewal takes the profile's
/// lock: a browser tab left open or a device code never entered must not keep other calls, a
/// running job or the daemon from renewing with the refresh token they have for the whole
/// `login_timeout`. The tokens wait (signals held) for the locked part to store them.
///
/// One login at a time per profile ([`crate::store::SessionStore::try_login_lock`]): a call
/// that meets another woci's login (two kubectl calls, a second terminal) waits for it and
/// takes its session, or its recorded failure, rather than open a second browser or fight over
/// the callback port; one that can log in itself does so only when that login left none.
pub(super) async fn log_in_before_locking(r: &Renewer, cfg: &LoginConfig, force: super::Force) -> Result<()> {
    if !r.allow_login() {
        return Ok(());
    }
    // Waiters race for the lock when a login ends without a session: the one that gets it logs
    // in, the others wait for that login in turn.
    let mut deferred = r.login_lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    let lock = loop {
        if let Some(lock) = deferred.take().map_or_else(|| r.store.try_login_lock(), |lock| Ok(Some(lock)))? {
            break lock;
        }
        let since = crate::clock::unix_millis(r.clock.now());
        while_caller_lives(wait_for_other_login(r, cfg)).await?;
        if force != super::Force::Login {
            if let Some(f) = r.store.failure_since(since).filter(|f| r.same_inputs(f)) {
                return Err(r.failed_elsewhere(f));
            }
            let facts = r.facts()?;
            let now = crate::clock::Clock::unix(r.server.as_ref());
            if !matches!(super::plan(&facts, force, now).plan, super::Plan::Login(_)) {
                return Ok(());
            }
        }
    };
    // No one to log in: the locked renewal says why, with what refused the refresh token.
    if !cfg.interactive {
        return Ok(());
    }
    // Its failure is recorded while the login lock is held: a call waiting for this login takes
    // it then, rather than open a second browser (round 105's review).
    let logged_in = async {
        passphrase(r, cfg, true).await?;
        person_logs_in(r, r.http().await?, cfg).await
    };
    let (tokens, held) = logged_in.await.inspect_err(|e| r.settle_failure(force, e))?;
    *r.logged_in.lock().unwrap_or_else(|p| p.into_inner()) = Some(LoggedIn { tokens, _held: held, _login_lock: lock });
    Ok(())
}

/// Waits for the login another woci is doing for the profile (as long as a login may last),
/// saying so once; Ctrl-C ends the wait as it would the call.
async fn wait_for_other_login(r: &Renewer, cfg: &LoginConfig) -> Result<()> {
    let who = r.store.login_holder().map_or("another woci".to_owned(), |pid| format!("another woci (pid {pid})"));
    tracing::warn!("waiting for the login under way in {who} for profile `{}` (finish it there)", r.settings.profile);
    let store = r.store.clone();
    let timeout = cfg.login_timeout + Duration::from_secs(30);
    tokio::task::spawn_blocking(move || store.wait_for_login(timeout))
        .await
        .map_err(|e| Error::Other(format!("login wait failed: {e}")))?
}

/// The browser or device-code login; from the moment its tokens arrive, signals are held until
/// they are stored.
async fn person_logs_in(r: &Renewer, http: &Http, cfg: &LoginConfig) -> Result<(IdpTokens, critical::Held)> {
    if !r.allow_login() {
        return Err(login_impossible(r, None));
    }
    let opts = LoginOptions {
        open_browser: cfg.open_browser,
        browser_command: cfg.browser_command.clone(),
        timeout: cfg.login_timeout,
        interactive: cfg.interactive,
        profile: r.settings.profile.clone(),
        selection: r.settings.woci_selection(),
        on_url: None,
        hide_env: r.settings.secret_env.iter().map(Into::into).collect(),
    };
    r.store.check_writable()?;
    // Ctrl-C ends the wait for the person at once: a login spends nothing until its tokens
    // arrive, and only storing them is held.
    let login = async {
        match cfg.device_login {
            true => oidc::device::login(http, &cfg.idp, &cfg.device, &opts).await,
            false => oidc::login(http, &cfg.idp, &opts).await,
        }
    };
    let tokens = while_caller_lives(login).await?;
    Ok((tokens, critical::hold()))
}

/// Runs a wait for a person (a login, another woci's login) while the program that ran woci lives. kubectl killed on its own
/// (a timeout, a supervisor) leaves its credential plugin orphaned, waiting minutes for a login
/// nobody will use while it holds the callback port and the login lock: woci then ends as a
/// hangup would end it (not under `nohup`, which asked to outlive the caller).
async fn while_caller_lives<T>(login: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    #[cfg(unix)]
    {
        // The parent woci started under: one already gone (a waiter whose kubectl died) counts.
        let parent = critical::parent_at_start();
        if parent > 1 && !critical::ignored_at_start(libc::SIGHUP) {
            let gone = async {
                // SAFETY: getppid cannot fail.
                while unsafe { libc::getppid() } == parent {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            };
            tokio::select! {
                done = login => return done,
                () = gone => {
                    crate::terminal::say(&format!(
                        "woci: the program that ran woci (pid {parent}) has ended; the login is given up"
                    ));
                    critical::end_like(libc::SIGHUP);
                    return Err(Error::Login("the program that ran woci has ended".into()));
                }
            }
        }
    }
    login.await
}

/// Asks for the passphrase on the terminal. A `new` one is asked twice (they must match, within
/// three tries), as ssh-keygen does: one typo would lock the session for good. So is an answer
/// that does not open the encrypted refresh token a login `replaces`, as it becomes the new
/// token's passphrase.
fn ask_passphrase(profile: &str, new: bool, replaces: Option<StoredRefreshToken>) -> Result<SecretString> {
    let (ask, again) = match new {
        true => (
            format!("woci: new refresh token passphrase for profile `{profile}` (it encrypts the refresh token): "),
            "woci: the same passphrase again: ",
        ),
        false => (
            format!("woci: refresh token passphrase for profile `{profile}`: "),
            "woci: that passphrase does not open the stored refresh token; to encrypt the new one with it, type it \
             again: ",
        ),
    };
    let mut tries = 1;
    loop {
        let first = prompt(profile, &ask)?;
        // A stray Enter is asked again, as a typo is.
        if first.expose().is_empty() {
            if tries == 3 {
                return Ok(first);
            }
            crate::terminal::say("woci: no passphrase given; try again");
            tries += 1;
            continue;
        }
        let sealing = replaces.as_ref().is_some_and(|s| s.open(Some(&first)).is_err());
        if !(new || sealing) {
            return Ok(first);
        }
        if first.expose() == prompt(profile, again)?.expose() {
            return Ok(first);
        }
        if tries == 3 {
            return Err(Error::Config(
                "the two passphrases differ; nothing was sent or stored: run the command again".to_owned(),
            ));
        }
        crate::terminal::say("woci: the two passphrases differ; try again");
        tries += 1;
    }
}

/// One answer read on the terminal without echo.
fn prompt(profile: &str, text: &str) -> Result<SecretString> {
    rpassword::prompt_password(text).map(SecretString::from).map_err(|e| {
        // Ctrl-D: the person ended the prompt, on a terminal that is there.
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            crate::terminal::say("");
            return Error::Login(format!(
                "the refresh token passphrase prompt of profile `{profile}` was ended (Ctrl-D); nothing was sent"
            ));
        }
        // ENXIO: no controlling terminal (cron, CI); anything else is named as it is.
        let why = match e.raw_os_error() {
            Some(libc::ENXIO) => "there is no terminal here".to_owned(),
            _ => format!("{e}: no terminal?"),
        };
        Error::Login(format!(
            "cannot ask for the refresh token passphrase of profile `{profile}` ({why}); give it in a variable \
             instead, with `--refresh-token-passphrase-env VAR`"
        ))
    })
}

/// The refresh token a long run's renewals spend, looked at before the run starts: one that
/// cannot be read or is damaged fails the first renewal (refused); none at all makes every
/// renewal a login, which a daemon cannot do (refused) nor a run once its program runs (warned:
/// the session may outlast it).
fn refresh_token_ready(r: &Renewer, daemon: bool) -> Result<()> {
    let (p, sel) = (&r.settings.profile, r.settings.woci_selection());
    let first_renewal = "so the first renewal of this run would fail";
    let stored = r.store.stored_refresh_token().map_err(|e| {
        e.with_hint(&format!("{first_renewal}: fix it, or move it away and run `woci session authenticate {sel}`"))
    })?;
    if let Some(damage) = stored.damage() {
        return Err(Error::Blocked {
            code: crate::error::exit::CORRUPT_FILE,
            message: format!("{damage}; {first_renewal}: move it away and run `woci session authenticate {sel}`"),
            shared: None,
        });
    }
    let no_passphrase = match &r.settings.mode {
        crate::settings::RenewMode::Login(c) => matches!(c.passphrase, PassphraseSource::None),
        _ => false,
    };
    match stored.state() {
        RefreshTokenState::Encrypted if no_passphrase => {
            // The prompt only where someone can answer it (round 95 N2).
            let fix = if daemon {
                "give it in a variable the daemon's environment has: `refresh_token_passphrase_env = VAR` in the \
                 INI (systemd: `EnvironmentFile=`); a daemon cannot ask for it"
            } else if !crate::terminal::has_controlling_terminal() {
                "give it in a variable: `refresh_token_passphrase_env = VAR` in the INI (or \
                 `--refresh-token-passphrase-env VAR`); there is no terminal here to ask on"
            } else {
                crate::store::NO_PASSPHRASE_FIX
            };
            return Err(Error::RefreshTokenLocked {
                path: r.store.refresh_token_path(),
                reason: format!("it is encrypted and no passphrase is configured, {first_renewal}; {fix}"),
            });
        }
        RefreshTokenState::Absent => {}
        _ => return Ok(()),
    }
    let fix = format!("run `woci session authenticate {sel}` first");
    if daemon {
        return Err(Error::Login(format!(
            "profile `{p}` has no stored refresh token, so every renewal would need a login, which a daemon cannot \
             do; {fix}"
        )));
    }
    // The session may outlast a short run: said, not refused. (A run logs in before its program
    // starts only: `Renewer::forbid_login`.)
    tracing::warn!(
        "profile `{p}` has no stored refresh token: this run cannot renew its session, which needs a login, and a \
         run does not log in once its program runs; {fix}"
    );
    Ok(())
}

/// Readies the passphrase of a long run (the daemon, `--auto-refresh`, `--exec`) before it starts,
/// not at its first renewal, unattended or while the child owns the terminal: an unset variable
/// is refused (exit 2); the prompt asks now and the run keeps the answer (no terminal: exit 3); a
/// passphrase that does not open the stored refresh token, an empty variable's too, is refused
/// (exit 8). Only the refresh token is read, and only when a passphrase is configured. An unset
/// variable is no matter when `renewed_elsewhere` (a daemon, or the woci whose `--exec` runs this
/// one and withholds the variable, keeps the session fresh ahead of this run). The refresh token
/// itself is looked at first ([`refresh_token_ready`]).
pub(crate) async fn ready_for_run(r: &Renewer, renewed_elsewhere: bool, daemon: bool) -> Result<()> {
    let crate::settings::RenewMode::Login(cfg) = &r.settings.mode else { return Ok(()) };
    if !renewed_elsewhere {
        refresh_token_ready(r, daemon)?;
    }
    let pass = match &cfg.passphrase {
        PassphraseSource::None => return Ok(()),
        PassphraseSource::Env { var, value: None } if renewed_elsewhere => {
            tracing::debug!("`{var}` {}, but another woci keeps the session fresh", crate::settings::unset(var));
            return Ok(());
        }
        PassphraseSource::Env { var, value: None } => {
            return Err(Error::Config(format!(
                "`{var}` (named by {}) {}, so the first renewal of this run would fail; set it, or remove the \
                 setting to keep the refresh token unencrypted",
                cfg.passphrase_setting,
                crate::settings::unset(var)
            )))
        }
        PassphraseSource::Env { value: Some(v), .. } => Some(v.clone()).filter(|v| !v.expose().is_empty()),
        PassphraseSource::Prompt => passphrase(r, cfg, false).await?,
    };
    // An unreadable refresh token is the renewal's to report, as `SessionFacts` leaves it.
    let Ok(stored) = r.store.stored_refresh_token() else { return Ok(()) };
    if stored.state() != crate::store::RefreshTokenState::Encrypted || stored.open(pass.as_ref()).is_ok() {
        return Ok(());
    }
    // Beside the profile's daemon (or under an outer woci) the run renews nothing itself (round 95 N5).
    if renewed_elsewhere {
        tracing::warn!(
            "the passphrase given does not open the stored refresh token of profile `{}`; the run goes on, as \
             another woci (the profile's daemon) keeps its session fresh",
            r.settings.profile
        );
        return Ok(());
    }
    let reason = match &cfg.passphrase {
        PassphraseSource::Env { var, .. } if pass.is_none() => format!(
            "`{var}` is empty, which opens no encrypted refresh token, so the first renewal of this run would fail; \
             set it to the passphrase it was encrypted with"
        ),
        PassphraseSource::Env { var, .. } => format!(
            "the passphrase in `{var}` does not open it, so the first renewal of this run would fail; give the \
             passphrase it was encrypted with, or log in again (`woci session authenticate {}`)",
            r.settings.woci_selection()
        ),
        _ => "the passphrase given does not open it; nothing was started".to_owned(),
    };
    Err(Error::RefreshTokenLocked { path: r.store.refresh_token_path(), reason })
}

/// Listeners for `signals`, but for those the caller ignored: a listener would catch them, and
/// they stay ignored.
#[cfg(unix)]
pub(super) fn listen(signals: &[i32]) -> Vec<(i32, tokio::signal::unix::Signal)> {
    use tokio::signal::unix::{signal, SignalKind};
    signals
        .iter()
        .filter(|s| !critical::ignored_at_start(**s))
        .filter_map(|s| Some((*s, signal(SignalKind::from_raw(*s)).ok()?)))
        .collect()
}

/// Resolves to the signal one of `listeners` got; never when there are none.
#[cfg(unix)]
pub(super) async fn any_signal(listeners: &mut [(i32, tokio::signal::unix::Signal)]) -> i32 {
    if listeners.is_empty() {
        std::future::pending::<()>().await;
    }
    let got = listeners.iter_mut().map(|(n, s)| Box::pin(async move { s.recv().await.map(|()| *n) }));
    futures_util::future::select_all(got).await.0.unwrap_or(0)
}

/// Runs the terminal prompt `ask` on a blocking thread. Ctrl-C (SIGTERM, SIGHUP) during it puts
/// the terminal back as it was (the prompt turned its echo off), ends the line, and then ends
/// woci as the signal says (a signal the caller ignored stays ignored).
#[cfg(unix)]
async fn ask_on_terminal<T: Send + 'static>(ask: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let tty = crate::terminal::TtyState::save();
    let held = critical::hold();
    let mut signals = listen(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP]);
    let interrupted = any_signal(&mut signals);
    tokio::select! {
        asked = tokio::task::spawn_blocking(ask) => asked.map_err(|e| Error::Other(e.to_string()))?,
        _ = interrupted => {
            if let Some(tty) = tty {
                tty.restore();
            }
            crate::terminal::say("");
            // The signal noted while held is acted on here: woci ends as it says.
            drop(held);
            Err(Error::Login("the passphrase prompt was interrupted".into()))
        }
    }
}

/// Asks for a prompted passphrase a renewal will need before the renewal takes the profile's lock:
/// a prompt nobody answers (a forgotten terminal) must not keep other calls waiting for the lock.
/// A prompt that cannot be shown (no terminal) is then no renewal failure either. `login`: the
/// renewal is a login, which replaces the stored refresh token.
pub(super) async fn ask_before_locking(r: &Renewer, login: bool) -> Result<()> {
    match &r.settings.mode {
        crate::settings::RenewMode::Login(cfg) if matches!(cfg.passphrase, PassphraseSource::Prompt) => {
            passphrase(r, cfg, login).await.map(drop)
        }
        _ => Ok(()),
    }
}

/// The refresh token's passphrase, asked or read at most once per process; `replacing`: a login
/// will replace the stored refresh token (see [`ask_passphrase`]).
async fn passphrase(r: &Renewer, cfg: &LoginConfig, replacing: bool) -> Result<Option<SecretString>> {
    let (pass, asked_replacing) = r
        .passphrase
        .get_or_try_init(|| async { Ok::<_, Error>((ask_or_read_passphrase(r, cfg, replacing).await?, replacing)) })
        .await?;
    // Asked for a refresh, then a login after all (another woci's grant was refused meanwhile):
    // an answer that does not open the old token was typed once, so it seals nothing.
    let unopened = |p| {
        let stored = r.store.stored_refresh_token();
        stored.is_ok_and(|s| s.state() == RefreshTokenState::Encrypted && s.open(Some(p)).is_err())
    };
    let typed_once = replacing && !asked_replacing && matches!(cfg.passphrase, PassphraseSource::Prompt);
    if typed_once && pass.as_ref().is_some_and(unopened) {
        return Err(Error::RefreshTokenLocked {
            path: r.store.refresh_token_path(),
            reason: "the passphrase given does not open it, and this login would replace it; run the command again"
                .into(),
        });
    }
    Ok(pass.clone())
}

/// The passphrase from its source: none, a variable, or the terminal.
async fn ask_or_read_passphrase(r: &Renewer, cfg: &LoginConfig, replacing: bool) -> Result<Option<SecretString>> {
    match &cfg.passphrase {
        PassphraseSource::None => Ok(None),
        PassphraseSource::Env { var, value } => match value {
            None => Err(Error::Config(format!(
                "`{var}` (named by {}) {}",
                cfg.passphrase_setting,
                crate::settings::unset(var)
            ))),
            Some(v) if v.expose().is_empty() => {
                tracing::warn!("`{var}` is empty; the refresh token is stored unencrypted");
                Ok(None)
            }
            Some(v) => Ok(Some(v.clone())),
        },
        PassphraseSource::Prompt => {
            let profile = r.settings.profile.clone();
            // A passphrase that seals a refresh token for the first time is asked twice,
            // as ssh-keygen does: one typo would lock the session for good.
            let sealed = r.store.stored_refresh_token().ok().filter(|s| s.state() == RefreshTokenState::Encrypted);
            let new = sealed.is_none();
            let replaces = sealed.filter(|_| replacing);
            let sealing = new || replaces.is_some();
            let p = ask_on_terminal(move || ask_passphrase(&profile, new, replaces)).await?;
            // Three stray Enters: nothing was sent or stored. (To stop encrypting, the setting goes.)
            let again = "no passphrase was given; nothing was sent or stored: run the command again and type";
            match (p.expose().is_empty(), sealing) {
                (false, _) => Ok(Some(p)),
                (true, true) => Err(Error::Config(format!(
                    "{again} the one to encrypt the new refresh token with, or remove {} to keep it unencrypted",
                    cfg.passphrase_setting
                ))),
                (true, false) => Err(Error::RefreshTokenLocked {
                    path: r.store.refresh_token_path(),
                    reason: format!("{again} the one it was encrypted with"),
                }),
            }
        }
    }
}
