//! OCI auth service session refresh (STUB: owned by the proxy work item).
use crate::clock::Clock;
use crate::error::Result;
use crate::http::Http;
use crate::keys::KeyPair;
use crate::secret::SecretString;
use url::Url;

/// `POST {auth_endpoint}/v1/authentication/refresh` signed with the current token and key.
pub async fn refresh_session(_http: &Http, _auth_endpoint: &Url, _current: &SecretString, _key: &KeyPair, _clock: &dyn Clock) -> Result<SecretString> {
    unimplemented!("session_refresh::refresh_session")
}

/// `https://auth.{region}.{realm domain}`.
pub fn auth_endpoint_for_region(_region: &str) -> Result<Url> {
    unimplemented!("session_refresh::auth_endpoint_for_region")
}
