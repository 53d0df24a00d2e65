//! Identity-domain token exchange (STUB: owned by the oidc/exchange work item).
use crate::error::Result;
use crate::http::Http;
use crate::secret::SecretString;
use url::Url;

/// The OCI identity domain confidential app used for the exchange.
#[derive(Debug, Clone)]
pub struct ExchangeConfig {
    /// `token_exchange_url` (`https://idcs-…/oauth2/v1/token`).
    pub url: Url,
    /// `client_id`.
    pub client_id: String,
    /// `client_secret`.
    pub client_secret: SecretString,
}

/// Exchanges an IdP access token for a UPST bound to `public_key_b64` (base64 DER SPKI).
pub async fn exchange(_http: &Http, _cfg: &ExchangeConfig, _access_token: &SecretString, _public_key_b64: &str) -> Result<SecretString> {
    unimplemented!("exchange::exchange")
}
