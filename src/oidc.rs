//! OIDC client side (STUB: owned by the oidc/exchange work item).
use crate::error::Result;
use crate::http::Http;
use crate::secret::SecretString;
use std::ffi::OsString;
use std::time::Duration;
use url::Url;

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
    /// Loopback port for `http://127.0.0.1:<port>/callback`.
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

/// How the interactive login may proceed.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// Open a browser (false with `--no-browser`: only print the URL).
    pub open_browser: bool,
    /// Browser command override (`BROWSER` env var); `None` = platform default.
    pub browser_command: Option<OsString>,
    /// How long to wait for the callback.
    pub timeout: Duration,
    /// Whether a person can be asked (stderr is a TTY, or the caller forced the login).
    pub interactive: bool,
}

/// Refresh-token grant.
pub async fn refresh(_http: &Http, _cfg: &IdpConfig, _refresh_token: &SecretString) -> Result<IdpTokens> {
    unimplemented!("oidc::refresh")
}

/// Authorization Code + PKCE (S256) login through a loopback listener.
pub async fn login(_http: &Http, _cfg: &IdpConfig, _opts: &LoginOptions) -> Result<IdpTokens> {
    unimplemented!("oidc::login")
}
