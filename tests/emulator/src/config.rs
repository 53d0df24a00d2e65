//! Emulator configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

/// How `/oauth2/v1/authorize` obtains the user's consent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMode {
    /// Redirect straight back with a code for the configured user.
    #[default]
    AutoApprove,
    /// Serve an HTML form (username/password) posting to `/oauth2/v1/authorize/login`.
    LoginForm,
}

/// An external issuer whose JWTs the token exchange accepts as `subject_token`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrustedIssuer {
    /// Exact `iss` claim value.
    pub issuer: String,
    /// JWKS URL, fetched lazily (and again when a `kid` is unknown).
    pub jwks_url: Option<Url>,
    /// A static JWKS document (`{"keys":[...]}`), used instead of `jwks_url` when set.
    pub jwks: Option<serde_json::Value>,
    /// Extra CA (PEM) trusted when fetching `jwks_url` over HTTPS.
    pub ca_pem: Option<String>,
    /// When set, the JWT's `aud` (a string, or an array) must contain this value.
    #[serde(default)]
    pub audience: Option<String>,
}

/// The stand-in for the GitHub Actions OIDC ID-token service (`/_actions/idtoken`).
#[derive(Clone, Debug)]
pub struct ActionsConfig {
    /// The bearer token a job holds (`ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
    pub request_token: String,
    /// `sub` of the JWTs (GitHub: `repo:<owner>/<repo>:ref:<ref>`).
    pub sub: String,
    /// Lifetime of the JWTs.
    pub token_ttl: Duration,
    /// When set, the token exchange trusts this issuer for JWTs whose `aud` contains this value.
    pub trusted_audience: Option<String>,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        ActionsConfig {
            request_token: "emulator-actions-request-token".into(),
            sub: "repo:acme/app:ref:refs/heads/main".into(),
            token_ttl: Duration::from_secs(300),
            trusted_audience: Some("https://cloud.oracle.com".into()),
        }
    }
}

/// The device authorization grant (RFC 8628) of the emulated IdP.
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    /// `interval` answered to the client.
    pub interval: Duration,
    /// Lifetime of a device code.
    pub code_ttl: Duration,
    /// The verification page approves at once (`decision=deny` in its query denies).
    pub auto_approve: bool,
    /// This many polls are answered `slow_down` before the normal answers.
    pub slow_down: u32,
    /// Fields that replace the device authorization answer's own (a hostile or broken IdP:
    /// `interval: u64::MAX`, a `javascript:` `verification_uri`, escape sequences in `user_code`).
    /// The grant itself keeps the real codes and `interval`.
    pub answer: serde_json::Map<String, serde_json::Value>,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            interval: Duration::from_secs(5),
            code_ttl: Duration::from_secs(600),
            auto_approve: true,
            slow_down: 0,
            answer: serde_json::Map::new(),
        }
    }
}

/// Everything configurable; `Config::default()` is a working plain-HTTP setup.
#[derive(Clone, Debug)]
pub struct Config {
    /// Serve HTTPS with a CA generated at start (`Emulator::ca_pem`).
    pub tls: bool,
    /// More DNS names for the TLS certificate besides `127.0.0.1` and `localhost`, such as
    /// `objectstorage.us-ashburn-1.oraclecloud.com` for clients led here by a CONNECT stand-in.
    pub tls_names: Vec<String>,
    /// Port on 127.0.0.1; `0` picks a free one.
    pub port: u16,
    pub upst_ttl: Duration,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// How long a rotated refresh token may still be presented (returning the same successor);
    /// zero: any reuse revokes the family.
    pub refresh_reuse_grace: Duration,
    /// Absolute session lifetime (`sess_exp` = session start + this).
    pub session_max: Duration,
    pub auth_code_ttl: Duration,
    /// The IdP (Authorization Code / refresh) client.
    pub idp_client_id: String,
    /// `None` = public client (no secret, PKCE only).
    pub idp_client_secret: Option<String>,
    /// Exact redirect URIs accepted by `/authorize`.
    pub redirect_uris: Vec<String>,
    /// Also accept `http://127.0.0.1:<port>/callback` and `http://localhost:<port>/callback`.
    pub allow_loopback_any_port: bool,
    /// The identity-domain app used for the token exchange (HTTP Basic).
    pub exchange_client_id: String,
    pub exchange_client_secret: String,
    /// IdP user (the `sub` of access tokens, login form credentials).
    pub username: String,
    pub password: String,
    pub user_ocid: String,
    pub tenancy_ocid: String,
    pub namespace: String,
    /// Delay before answering each UploadPart.
    pub part_delay: Duration,
    /// Delay before answering each PutObject.
    pub put_delay: Duration,
    pub login_mode: LoginMode,
    /// Keep only sizes and hashes of object content (GetObject then answers 501).
    pub discard_bodies: bool,
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Generate new IdP/OCI keys instead of the shared, cached pair (see `keys::cached_pair`).
    pub fresh_keys: bool,
    /// Allowed `date` skew for signed requests (OCI: 5 minutes).
    pub max_clock_skew: Duration,
    /// The GitHub Actions ID-token service stand-in.
    pub actions: ActionsConfig,
    /// The device authorization grant.
    pub device: DeviceConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tls: false,
            tls_names: Vec::new(),
            port: 0,
            upst_ttl: Duration::from_secs(3600),
            access_token_ttl: Duration::from_secs(3600),
            // An identity domain's default refresh-token expiry (7 days): well outside woci's
            // default `expiring_warning` (24 h), so a demo or test warns only when it asks to.
            refresh_token_ttl: Duration::from_secs(7 * 24 * 3600),
            refresh_reuse_grace: Duration::ZERO,
            session_max: Duration::from_secs(24 * 3600),
            auth_code_ttl: Duration::from_secs(120),
            idp_client_id: "woci-idp-client".into(),
            idp_client_secret: Some("woci-idp-secret".into()),
            redirect_uris: Vec::new(),
            allow_loopback_any_port: true,
            exchange_client_id: "woci-exchange-client".into(),
            exchange_client_secret: "woci-exchange-secret".into(),
            username: "alice@example.com".into(),
            password: "alice-password".into(),
            user_ocid: "ocid1.user.oc1..aaaaaaaaemulatoruser".into(),
            tenancy_ocid: "ocid1.tenancy.oc1..aaaaaaaaemulatortenancy".into(),
            namespace: "emulatorns".into(),
            part_delay: Duration::ZERO,
            put_delay: Duration::ZERO,
            login_mode: LoginMode::AutoApprove,
            discard_bodies: false,
            trusted_issuers: Vec::new(),
            fresh_keys: false,
            max_clock_skew: Duration::from_secs(300),
            actions: ActionsConfig::default(),
            device: DeviceConfig::default(),
        }
    }
}

impl Config {
    /// Is `uri` an allowed redirect URI (exact match)?
    pub fn redirect_uri_allowed(&self, uri: &str) -> bool {
        if self.redirect_uris.iter().any(|u| u == uri) {
            return true;
        }
        if !self.allow_loopback_any_port {
            return false;
        }
        ["http://127.0.0.1:", "http://localhost:"].iter().any(|prefix| {
            uri.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix("/callback"))
                .is_some_and(|port| !port.is_empty() && port.len() <= 5 && port.parse::<u16>().is_ok_and(|p| p > 0))
        })
    }
}
