//! OIDC client side: the refresh-token grant and the interactive Authorization Code + PKCE (S256)
//! login through a loopback listener on `127.0.0.1:<redirect_port>`.
//!
//! The token-endpoint requests match the Python woci (gtrevorrow/OCI-CLI-Tools) field for field:
//! the form always carries `client_id`; when the client has a secret, HTTP Basic
//! (`base64(client_id:client_secret)`, standard alphabet, not form-encoded) is added. The refresh
//! grant sends no `scope` (the Python woci does not either).
//!
//! The `oauth2` crate supplies the PKCE verifier/challenge, the `state` value and the
//! authorization URL; the requests themselves go through [`token_endpoint::post`], woci's one
//! token-endpoint client (retry rules, body cap, classification, scrubbing).

mod browser;
mod callback;
pub mod device;
#[cfg(test)]
pub(crate) mod mock;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::http::{Http, Retry};
use crate::secret::SecretString;
use crate::terminal::tell;
pub(crate) use crate::token_endpoint::scrub;
use crate::token_endpoint::{self, Endpoint};
use oauth2::basic::BasicClient;
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use serde::Deserialize;
use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Service name used in errors for the IdP.
pub(crate) const SERVICE: &str = "identity provider";

/// How often the login wait prints a "still waiting" line when stderr is a terminal.
const REMINDER_EVERY: Duration = Duration::from_secs(30);

pub use crate::settings::IdpConfig;

/// Tokens from the IdP's token endpoint.
#[derive(Debug)]
pub struct IdpTokens {
    /// The access token (a JWT), input of the token exchange.
    pub access_token: SecretString,
    /// A new refresh token, if the IdP issued or rotated one.
    pub refresh_token: Option<SecretString>,
    /// `refresh_expires_in`, if the IdP says.
    pub refresh_expires_in: Option<Duration>,
}

/// Called with the authorization URL instead of launching a browser (tests, embedding).
pub type UrlHook = Arc<dyn Fn(&Url) + Send + Sync>;

/// How the interactive login may proceed.
#[derive(Clone)]
pub struct LoginOptions {
    /// Open a browser (false with `--no-browser`: only print the URL).
    pub open_browser: bool,
    /// Browser command override (`BROWSER` env var); `None` = platform default.
    pub browser_command: Option<OsString>,
    /// How long to wait for the callback.
    pub timeout: Duration,
    /// Whether a person can be asked (stderr is a TTY, or the caller forced the login).
    pub interactive: bool,
    /// The profile the login is for (only used in messages).
    pub profile: String,
    /// The options that select the same settings again (`--profile P`, a `--config-file` or
    /// `--manager-config` given), for the command messages name.
    pub selection: String,
    /// When set, called with the authorization URL instead of launching a browser (even when
    /// `open_browser` is true). The URL is printed either way.
    pub on_url: Option<UrlHook>,
    /// Environment variables holding woci's secrets (the passphrase variables): removed from the
    /// browser's environment.
    pub hide_env: Vec<OsString>,
}

impl fmt::Debug for LoginOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginOptions")
            .field("open_browser", &self.open_browser)
            .field("browser_command", &self.browser_command)
            .field("timeout", &self.timeout)
            .field("interactive", &self.interactive)
            .field("profile", &self.profile)
            .field("on_url", &self.on_url.as_ref().map(|_| "<hook>"))
            .finish()
    }
}

/// Refresh-token grant: `grant_type=refresh_token`, `refresh_token`, `client_id` (+ Basic auth
/// when the client has a secret). A rotated refresh token comes back in
/// [`IdpTokens::refresh_token`].
pub async fn refresh(
    http: &Http,
    cfg: &IdpConfig,
    refresh_token: &SecretString,
) -> std::result::Result<IdpTokens, GrantFailure> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose().as_str()),
        ("client_id", cfg.client_id.as_str()),
    ];
    let retry = Retry::Rotating { grace: cfg.reuse_grace };
    let answer = post_to_token_url(http, cfg, "refresh token", &form, retry).await?;
    parse_tokens(&answer).map_err(|error| after_unusable_answer(&answer, &cfg.token_url, error))
}

/// A refresh grant that failed. `rotated`: the refresh token of a 2xx answer whose rest woci
/// cannot use (an opaque access token, a field of another type): the IdP acted on the grant, so
/// that token is the session's now and must be kept.
#[derive(Debug)]
pub struct GrantFailure {
    /// What failed.
    pub error: Error,
    /// The refresh token the answer rotated to, if it carried one, and its `refresh_expires_in`.
    pub rotated: Option<(SecretString, Option<Duration>)>,
}

impl From<Error> for GrantFailure {
    fn from(error: Error) -> Self {
        GrantFailure { error, rotated: None }
    }
}

/// A refresh grant's 2xx answer woci cannot use: a refresh token in it is the one to keep; an
/// answer without one is a non-rotating IdP's, which leaves the stored token as it is; an answer
/// too broken to tell (not a JSON object, a `refresh_token` that is no string) counts as a lost
/// one, as the stored token is probably spent.
fn after_unusable_answer(answer: &token_endpoint::Answer, url: &Url, error: Error) -> GrantFailure {
    use serde_json::Value;
    if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(answer.json()) {
        match fields.get("refresh_token") {
            None | Some(Value::Null) => return error.into(),
            Some(Value::String(rt)) => {
                let rotated = Some(rt).filter(|t| !t.is_empty()).map(|t| SecretString::new(t.clone()));
                let rotated = rotated.map(|t| (t, lifetime(fields.get("refresh_expires_in"))));
                return GrantFailure { error, rotated };
            }
            Some(_) => {}
        }
    }
    let reason = match error {
        Error::Protocol { reason, .. } => reason,
        e => e.to_string(),
    };
    Error::reply_lost(SERVICE, crate::http::redact_url(url), reason).into()
}

/// A login is needed for `profile` (as said, in backticks) but no person can be asked: `command`
/// is what to run in a terminal.
pub(crate) fn no_terminal(profile: &str, command: &str) -> Error {
    // With a terminal to show a login on, kubectl's `KUBERNETES_EXEC_INFO` is what forbids it.
    if crate::terminal::person_present() {
        return Error::Login(format!(
            "interactive login required for profile {profile}, but kubectl says this call is not interactive \
             (`interactiveMode: Never`, or `IfAvailable` with kubectl's standard input not a terminal), which forbids \
             asking; run `{command}` in a terminal"
        ));
    }
    Error::Login(format!(
        "interactive login required for profile {profile} but no terminal is attached (a login shows its URL and \
         code on one); run `{command}` in a terminal"
    ))
}

impl LoginOptions {
    /// An error unless a person can be asked; `flags` go into the suggested command.
    fn require_interactive(&self, flags: &str) -> Result<()> {
        if self.interactive {
            return Ok(());
        }
        Err(no_terminal(
            &format!("`{}`", self.profile),
            &format!("woci session authenticate{flags} {}", self.selection),
        ))
    }

    /// The error of a wait for the login that lasted `waited`.
    fn timed_out(&self, flags: &str, waited: Duration) -> Error {
        Error::Login(format!(
            "no login completed within {}s; run `woci session authenticate{flags} {}` to try again (a longer wait: \
             `--login-timeout SECONDS`, or `login_timeout` in the INI)",
            waited.as_secs().max(1),
            self.selection
        ))
    }

    /// Gives `url` to [`LoginOptions::on_url`], else to the browser when one may be opened
    /// (`platform_default`: also the platform opener when no `BROWSER` is set).
    fn open(&self, url: &Url, platform_default: bool) {
        if let Some(hook) = &self.on_url {
            hook(url);
        } else if self.open_browser && (platform_default || self.browser_command.is_some()) {
            if let Err(reason) = browser::launch(self.browser_command.as_deref(), url, &self.hide_env) {
                // Beside the URL, where the person looks (the terminal when standard error is a log).
                crate::terminal::tell_warning(&format!("cannot open a browser ({reason}); open the URL above by hand"));
            }
        }
    }

    /// `tokens`, unless the IdP issued no refresh token.
    fn require_refresh_token(&self, cfg: &IdpConfig, tokens: IdpTokens) -> Result<IdpTokens> {
        if tokens.refresh_token.is_none() {
            return Err(Error::NoRefreshToken(format!(
                "the identity provider issued no refresh token for profile `{}`; add `offline_access` to `scope` and allow the refresh token grant for client `{}`",
                self.profile, cfg.client_id
            )));
        }
        Ok(tokens)
    }
}

/// Authorization Code + PKCE (S256) login through a loopback listener.
///
/// Binds `127.0.0.1:<redirect_port>` first, prints the authorization URL to stderr, opens a
/// browser (or calls [`LoginOptions::on_url`]), waits for `/callback` at most
/// [`LoginOptions::timeout`], checks `state`, then redeems the code. Both an access token and a
/// refresh token are required.
pub async fn login(http: &Http, cfg: &IdpConfig, opts: &LoginOptions) -> Result<IdpTokens> {
    opts.require_interactive("")?;
    let Some(port) = cfg.redirect_port else {
        return Err(Error::Config(format!(
            "the browser login of profile `{}` needs `redirect_port` in woci_manager.ini: the port of the redirect URI \
             http://127.0.0.1:PORT/callback registered for the login app; or log in with a device code (`--device-code`)",
            opts.profile
        )));
    };
    let listener = callback::bind(port, opts.timeout + Duration::from_secs(30)).await?;
    let port =
        listener.local_addr().map_err(|e| Error::Login(format!("cannot read the login listener address: {e}")))?.port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let redirect = RedirectUrl::new(redirect_uri.clone())
        .map_err(|e| Error::Other(format!("invalid redirect URI `{redirect_uri}`: {e}")))?;

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let client = BasicClient::new(ClientId::new(cfg.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(cfg.authorize_url.clone()))
        .set_redirect_uri(redirect);
    let mut request = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(cfg.scopes.iter().cloned().map(Scope::new))
        .set_pkce_challenge(challenge);
    // OIDC Core §11: a provider may ignore `offline_access` (no refresh token) unless the user
    // was asked for consent; strict providers such as oidc-provider do exactly that.
    if cfg.scopes.iter().any(|s| s == "offline_access") {
        request = request.add_extra_param("prompt", "consent");
    }
    let (auth_url, state) = request.url();

    tell(&format!("woci: login required for profile `{}`; open this URL to log in:\n\n  {auth_url}\n", opts.profile));
    opts.open(&auth_url, true);
    tell(&format!(
        "woci: waiting up to {}s for the login to complete at {redirect_uri}",
        opts.timeout.as_secs().max(1)
    ));

    let code = wait_for_code(listener, state.secret().clone(), opts).await?;

    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.expose().as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", cfg.client_id.as_str()),
        ("code_verifier", verifier.secret().as_str()),
    ];
    // A code is single-use too: once sent, it is not sent again (no grace).
    let retry = Retry::Rotating { grace: Duration::ZERO };
    let tokens = token_request(http, cfg, "authorization code", &form, retry).await.map_err(|e| match e {
        // The code was spent, not the stored refresh token (a login sends none).
        Error::ReplyLost { url, reason, .. } => Error::Login(format!(
            "the answer to the login's code redemption at `{url}` was lost ({}); the code is spent (a code is used \
             once), and no refresh token was sent; run `woci session authenticate {}` to log in again",
            reason.split(';').next().unwrap_or_default(),
            opts.selection
        )),
        // A failing IdP (HTTP 5xx) that got the code: not sent again, and nothing of a refresh
        // token's to keep (a login sends none).
        Error::Network { service, url, reason } if reason.contains("the grant was sent") => Error::Network {
            service,
            url,
            reason: format!(
                "{}; the login's code was sent, and a code is used once, so it is not sent again; run `woci session \
                 authenticate {}` to log in again",
                reason.split(';').next().unwrap_or_default(),
                opts.selection
            ),
        },
        // A code expired (they live minutes), already used, or redeemed with another redirect
        // URI than it was issued for.
        e if e.needs_login() => e.with_hint(&format!(
            "the login's code is good once, for minutes, with the redirect URI `{redirect_uri}`; run `woci \
             session authenticate {}` to log in again, and if it repeats, check the IdP client's redirect URIs",
            opts.selection
        )),
        e => e,
    })?;
    opts.require_refresh_token(cfg, tokens)
}

/// Serves the callback until a code arrives, the callback reports an error, or the login timeout
/// passes.
async fn wait_for_code(listener: tokio::net::TcpListener, state: String, opts: &LoginOptions) -> Result<SecretString> {
    let start = tokio::time::Instant::now();
    let deadline = start + opts.timeout;
    let reminders = crate::terminal::person_present();
    let mut tick = tokio::time::interval_at(start + REMINDER_EVERY, REMINDER_EVERY);
    let serve = callback::serve(listener, state, &opts.profile);
    tokio::pin!(serve);
    loop {
        tokio::select! {
            outcome = &mut serve => {
                return outcome.map_err(|e| match e {
                    // Denied, or cut short at the IdP: said with the way to try again.
                    Error::Login(why) => Error::Login(format!(
                        "{why}; run `woci session authenticate {}` to try again",
                        opts.selection
                    )),
                    e => e,
                })
            }
            _ = tokio::time::sleep_until(deadline) => return Err(opts.timed_out("", opts.timeout)),
            _ = tick.tick(), if reminders => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now()).as_secs();
                tell(&format!("woci: still waiting for the login ({left}s left)"));
            }
        }
    }
}

/// POSTs `form` to the IdP's token endpoint (through [`token_endpoint::post`]) and reads the tokens.
pub(crate) async fn token_request(
    http: &Http,
    cfg: &IdpConfig,
    what: &'static str,
    form: &[(&str, &str)],
    retry: Retry,
) -> Result<IdpTokens> {
    parse_tokens(&post_to_token_url(http, cfg, what, form, retry).await?)
}

/// POSTs `form` to the IdP's token endpoint as the configured client; `what` names what it
/// presents (for errors).
async fn post_to_token_url(
    http: &Http,
    cfg: &IdpConfig,
    what: &'static str,
    form: &[(&str, &str)],
    retry: Retry,
) -> Result<token_endpoint::Answer> {
    let client = token_endpoint::Client { id: &cfg.client_id, secret: cfg.client_secret.as_ref() };
    token_endpoint::post(http, Endpoint::Idp { what }, &cfg.token_url, client, form, retry).await
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    refresh_token: Option<String>,
    refresh_expires_in: Option<serde_json::Value>,
}

/// Reads a 2xx token response. Never puts the body itself into an error.
fn parse_tokens(answer: &token_endpoint::Answer) -> Result<IdpTokens> {
    let parsed: TokenBody = token_endpoint::parse_json(Endpoint::Idp { what: "" }, answer)?;
    let access = parsed.access_token.filter(|t| !t.is_empty()).ok_or_else(|| Error::Protocol {
        service: SERVICE,
        reason: format!("the token response (HTTP {}) has no `access_token`; check `token_url`", answer.status),
    })?;
    // A JWT: three non-empty dot-separated parts.
    if !access.split('.').map(|part| !part.is_empty()).eq([true; 3]) {
        return Err(Error::Protocol {
            service: SERVICE,
            reason: "the access token is not a JWT; the IdP must issue JWT access tokens for the OCI token exchange (Okta org authorization servers issue opaque ones: use a custom authorization server)".into(),
        });
    }
    Ok(IdpTokens {
        access_token: SecretString::new(access),
        refresh_token: parsed.refresh_token.filter(|t| !t.is_empty()).map(SecretString::new),
        refresh_expires_in: lifetime(parsed.refresh_expires_in.as_ref()),
    })
}

/// `refresh_expires_in`: seconds as a number or a numeric string (some IdPs quote it).
fn lifetime(v: Option<&serde_json::Value>) -> Option<Duration> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .map(Duration::from_secs)
}
