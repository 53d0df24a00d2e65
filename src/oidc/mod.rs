//! OIDC client side: the refresh-token grant and the interactive Authorization Code + PKCE (S256)
//! login through a loopback listener on `127.0.0.1:<redirect_port>`.
//!
//! The token-endpoint requests match the Python woci (gtrevorrow/OCI-CLI-Tools) field for field:
//! the form always carries `client_id`; when the client has a secret, HTTP Basic
//! (`base64(client_id:client_secret)`, standard alphabet, not form-encoded) is added. The refresh
//! grant sends no `scope` (the Python woci does not either).
//!
//! The `oauth2` crate supplies the PKCE verifier/challenge, the `state` value, the authorization
//! URL and the typed OAuth error body; the requests themselves go through [`Http::send`] so that
//! woci's retry policy and error classification apply.

mod browser;
mod callback;
pub mod device;
#[cfg(test)]
pub(crate) mod mock;
#[cfg(test)]
mod tests;

use crate::error::{Error, Result};
use crate::http::Http;
use crate::secret::SecretString;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicErrorResponseType};
use oauth2::{AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use serde::Deserialize;
use std::ffi::OsString;
use std::fmt;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Service name used in errors for the IdP.
const SERVICE: &str = "identity provider";

/// How often the login wait prints a "still waiting" line when stderr is a terminal.
const REMINDER_EVERY: Duration = Duration::from_secs(30);

/// The IdP client registration woci uses (auth code + refresh).
#[derive(Debug, Clone)]
pub struct IdpConfig {
    /// Full authorize endpoint URL (`authz_base_url`).
    pub authorize_url: Url,
    /// Token endpoint (`token_url`).
    pub token_url: Url,
    /// `auth_client_id`.
    pub client_id: String,
    /// `auth_client_secret` (public clients have none).
    pub client_secret: Option<SecretString>,
    /// Scopes (`scope`, space separated in the INI); must include `offline_access` for refresh tokens.
    pub scopes: Vec<String>,
    /// Loopback port for `http://127.0.0.1:<port>/callback`. `0` picks a free port (tests, IdPs
    /// that accept any loopback port per RFC 8252).
    pub redirect_port: u16,
}

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
    /// When set, called with the authorization URL instead of launching a browser (even when
    /// `open_browser` is true). The URL is printed either way.
    pub on_url: Option<UrlHook>,
}

impl Default for LoginOptions {
    /// Browser on, platform default browser, 300 s, not interactive, profile `DEFAULT`, no hook.
    fn default() -> Self {
        LoginOptions {
            open_browser: true,
            browser_command: None,
            timeout: Duration::from_secs(300),
            interactive: false,
            profile: "DEFAULT".into(),
            on_url: None,
        }
    }
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
pub async fn refresh(http: &Http, cfg: &IdpConfig, refresh_token: &SecretString) -> Result<IdpTokens> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose().as_str()),
        ("client_id", cfg.client_id.as_str()),
    ];
    token_request(http, cfg, "refresh token", &form, &[refresh_token.expose()]).await
}

/// Authorization Code + PKCE (S256) login through a loopback listener.
///
/// Binds `127.0.0.1:<redirect_port>` first, prints the authorization URL to stderr, opens a
/// browser (or calls [`LoginOptions::on_url`]), waits for `/callback` at most
/// [`LoginOptions::timeout`], checks `state`, then redeems the code. Both an access token and a
/// refresh token are required.
pub async fn login(http: &Http, cfg: &IdpConfig, opts: &LoginOptions) -> Result<IdpTokens> {
    if !opts.interactive {
        return Err(Error::Login(format!(
            "interactive login required for profile `{}` but no terminal is attached; run `woci session authenticate --profile {}` in a terminal",
            opts.profile, opts.profile
        )));
    }
    let listener = callback::bind(cfg.redirect_port).await?;
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

    let secs = opts.timeout.as_secs().max(1);
    eprintln!("woci: login required for profile `{}`; open this URL to log in:\n\n  {auth_url}\n", opts.profile);
    if let Some(hook) = &opts.on_url {
        hook(&auth_url);
    } else if opts.open_browser {
        if let Err(reason) = browser::launch(opts.browser_command.as_deref(), &auth_url) {
            tracing::warn!("cannot open a browser ({reason}); open the URL above by hand");
        }
    }
    eprintln!("woci: waiting up to {secs}s for the login to complete at {redirect_uri}");

    let code = wait_for_code(listener, state.secret().clone(), opts.timeout).await?;

    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.expose().as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("client_id", cfg.client_id.as_str()),
        ("code_verifier", verifier.secret().as_str()),
    ];
    let tokens = token_request(http, cfg, "authorization code", &form, &[code.expose(), verifier.secret()]).await?;
    if tokens.refresh_token.is_none() {
        return Err(Error::Config(format!(
            "the identity provider issued no refresh token for profile `{}`; add `offline_access` to `scope` and allow the refresh token grant for client `{}`",
            opts.profile, cfg.client_id
        )));
    }
    Ok(tokens)
}

/// Serves the callback until a code arrives, the callback reports an error, or `timeout` passes.
async fn wait_for_code(listener: tokio::net::TcpListener, state: String, timeout: Duration) -> Result<SecretString> {
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    let reminders = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval_at(start + REMINDER_EVERY, REMINDER_EVERY);
    let serve = callback::serve(listener, state);
    tokio::pin!(serve);
    loop {
        tokio::select! {
            outcome = &mut serve => return outcome,
            _ = tokio::time::sleep_until(deadline) => {
                return Err(Error::Login(format!(
                    "no login completed within {}s; run `woci session authenticate` to try again",
                    timeout.as_secs().max(1)
                )));
            }
            _ = tick.tick(), if reminders => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now()).as_secs();
                eprintln!("woci: still waiting for the login ({left}s left)");
            }
        }
    }
}

/// `Authorization: Basic base64(id:secret)` (standard alphabet, id and secret as is, like Python
/// `requests`), marked sensitive so it never shows in debug output.
pub(crate) fn basic_auth(client_id: &str, secret: &SecretString) -> Result<HeaderValue> {
    let encoded = STANDARD.encode(format!("{client_id}:{}", secret.expose()));
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
        .map_err(|_| Error::Config("client credentials cannot be sent in an HTTP header".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// POSTs `form` to the token endpoint and classifies the answer.
async fn token_request(
    http: &Http,
    cfg: &IdpConfig,
    what: &'static str,
    form: &[(&str, &str)],
    secrets: &[&str],
) -> Result<IdpTokens> {
    let auth = cfg.client_secret.as_ref().map(|s| basic_auth(&cfg.client_id, s)).transpose()?;
    let url = &cfg.token_url;
    let resp = http
        .send(SERVICE, url, |c| {
            let mut b = c.post(url.clone()).header(ACCEPT, "application/json").form(form);
            if let Some(a) = &auth {
                b = b.header(AUTHORIZATION, a.clone());
            }
            b
        })
        .await?;
    let (status, body) = read_body(resp, SERVICE, url).await?;
    let mut all: Vec<&str> = secrets.to_vec();
    if let Some(s) = &cfg.client_secret {
        all.push(s.expose());
    }
    classify_token_response(status, &body, what, &all)
}

/// Reads a response body; a dropped connection is a network error.
pub(crate) async fn read_body(resp: reqwest::Response, service: &'static str, url: &Url) -> Result<(u16, Vec<u8>)> {
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|_| Error::Network {
        service,
        url: crate::http::redact_url(url),
        reason: format!("connection dropped while reading the HTTP {status} response"),
    })?;
    Ok((status, body.to_vec()))
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    refresh_expires_in: Option<serde_json::Value>,
}

/// Turns a token endpoint answer into tokens or a classified error. Never puts the body itself
/// into an error; server `error_description`s are scrubbed of `secrets` and shortened.
fn classify_token_response(status: u16, body: &[u8], what: &'static str, secrets: &[&str]) -> Result<IdpTokens> {
    if (200..300).contains(&status) {
        let parsed: TokenBody = serde_json::from_slice(body).map_err(|_| Error::Protocol {
            service: SERVICE,
            reason: format!("the token endpoint answered HTTP {status} without a JSON token response"),
        })?;
        let access = parsed.access_token.filter(|t| !t.is_empty()).ok_or_else(|| Error::Protocol {
            service: SERVICE,
            reason: "the token response has no `access_token`".into(),
        })?;
        if !looks_like_jwt(&access) {
            return Err(Error::Protocol {
                service: SERVICE,
                reason: "the access token is not a JWT; the IdP must issue JWT access tokens for the OCI token exchange (Okta org authorization servers issue opaque ones: use a custom authorization server)".into(),
            });
        }
        let refresh_expires_in = parsed.refresh_expires_in.and_then(|v| match v {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        return Ok(IdpTokens {
            access_token: SecretString::new(access),
            refresh_token: parsed.refresh_token.filter(|t| !t.is_empty()).map(SecretString::new),
            refresh_expires_in: refresh_expires_in.map(Duration::from_secs),
        });
    }
    if (400..500).contains(&status) {
        return Err(match serde_json::from_slice::<BasicErrorResponse>(body) {
            Ok(err) => {
                let code = err.error().as_ref().to_owned();
                let mut description = err.error_description().map(|d| scrub(d, secrets)).filter(|d| !d.is_empty());
                if description.is_none() {
                    description = match err.error() {
                        BasicErrorResponseType::InvalidGrant if what == "refresh token" => {
                            Some("the refresh token is expired or revoked; log in again".into())
                        }
                        BasicErrorResponseType::InvalidClient => {
                            Some("check `auth_client_id` and `auth_client_secret`".into())
                        }
                        _ => None,
                    };
                }
                Error::IdpRejected { what, error: scrub(&code, secrets), description }
            }
            Err(_) => Error::IdpRejected {
                what,
                error: format!("HTTP {status}"),
                description: Some("the token endpoint answered without an OAuth error; check `token_url`".into()),
            },
        });
    }
    Err(Error::Protocol {
        service: SERVICE,
        reason: format!("the token endpoint answered HTTP {status}; check `token_url`"),
    })
}

/// Three non-empty dot-separated parts.
fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty())
}

/// Makes server-provided text safe for a one-line error: removes any secret we sent, control
/// characters, and cuts it to 300 characters.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut s = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        s = s.replace(secret, "[redacted]");
    }
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let s = s.trim();
    if s.chars().count() > 300 {
        let cut: String = s.chars().take(300).collect();
        format!("{cut}…")
    } else {
        s.to_owned()
    }
}
