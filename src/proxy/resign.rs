//! The one rewrite the proxy makes: in a request signed by the profile's key with a session keyId
//! `ST$<old token>`, replace the token by the current one. The signing string covers the method,
//! path, and the listed headers but never `keyId`, so the child's signature stays valid.
//!
//! Anything else (no `Authorization`, an API-key signature, a signature by another key, headers
//! missing, a tampered request) is left exactly as it came: the proxy never lends the profile's
//! session to a request the profile's key did not sign.

use crate::secret::SecretString;
use crate::signer::{self, SignatureHeader, SESSION_KEY_ID_PREFIX};
use http::header::{HeaderValue, AUTHORIZATION};
use http::{HeaderMap, Method};
use rsa::RsaPublicKey;

/// Why a request was forwarded without a new token. Carries no header values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untouched {
    /// No `Authorization` header (or more than one).
    NoAuthorization,
    /// Not an OCI `Signature` header, or not `rsa-sha256`.
    NotOciSignature,
    /// An OCI signature with an API-key keyId, not `ST$…`.
    NotSession,
    /// A header listed in `headers="…"` is missing or not text.
    Unverifiable,
    /// The signature does not verify with the profile's public key (other key, or tampered).
    BadSignature,
}

impl Untouched {
    /// A short label for logs.
    pub fn label(self) -> &'static str {
        match self {
            Untouched::NoAuthorization => "no authorization",
            Untouched::NotOciSignature => "not an OCI signature",
            Untouched::NotSession => "not a session signature",
            Untouched::Unverifiable => "signed headers missing",
            Untouched::BadSignature => "signature does not verify with the profile key",
        }
    }
}

/// Returns the new `Authorization` value (marked sensitive) when the request qualifies.
/// `target` is the request's path and query exactly as received.
pub fn resign(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    public_key: &RsaPublicKey,
    token: &SecretString,
) -> Result<HeaderValue, Untouched> {
    let mut all = headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (all.next(), all.next()) else {
        return Err(Untouched::NoAuthorization);
    };
    let value = value.to_str().map_err(|_| Untouched::NotOciSignature)?;
    let sig = SignatureHeader::parse(value).map_err(|_| Untouched::NotOciSignature)?;
    if !sig.algorithm().is_none_or(|a| a.eq_ignore_ascii_case("rsa-sha256")) {
        return Err(Untouched::NotOciSignature);
    }
    if sig.session_token().is_none() {
        return Err(Untouched::NotSession);
    }
    let text = signer::signing_string(method, target, headers, &sig.headers()).map_err(|_| Untouched::Unverifiable)?;
    if !signer::verify(public_key, &text, sig.signature()) {
        return Err(Untouched::BadSignature);
    }
    let new_key_id = format!("{SESSION_KEY_ID_PREFIX}{}", token.expose());
    let mut new_value = HeaderValue::from_str(&sig.with_key_id(&new_key_id)).map_err(|_| Untouched::NotOciSignature)?;
    new_value.set_sensitive(true);
    Ok(new_value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::signer::tests::{other_key, test_key};
    use url::Url;

    fn signed(key: &crate::keys::KeyPair, key_id: &str) -> HeaderMap {
        let url = Url::parse("https://objectstorage.example/n/ns/b/bk/o/x?uploadId=1").unwrap();
        signer::sign_request(
            &Method::PUT,
            &url,
            b"data",
            Some("application/octet-stream"),
            key,
            &key_id.into(),
            &ManualClock::at(1_700_000_000),
        )
        .unwrap()
    }

    const TARGET: &str = "/n/ns/b/bk/o/x?uploadId=1";

    #[test]
    fn swaps_the_token_of_a_valid_session_signature() {
        let h = signed(test_key(), "ST$old");
        let new = resign(&Method::PUT, TARGET, &h, test_key().public(), &"new".into()).unwrap();
        assert!(new.is_sensitive());
        let before = h[AUTHORIZATION].to_str().unwrap();
        assert_eq!(new.to_str().unwrap(), before.replace("ST$old", "ST$new"));
        // The swapped request still verifies with the profile key.
        let mut after = h.clone();
        after.insert(AUTHORIZATION, new);
        let sig = SignatureHeader::parse(after[AUTHORIZATION].to_str().unwrap()).unwrap();
        let text = signer::signing_string(&Method::PUT, TARGET, &after, &sig.headers()).unwrap();
        assert!(signer::verify(test_key().public(), &text, sig.signature()));
    }

    #[test]
    fn leaves_everything_else_alone() {
        let pk = test_key().public();
        let t: SecretString = "new".into();
        let other = signed(other_key(), "ST$old");
        assert_eq!(resign(&Method::PUT, TARGET, &other, pk, &t), Err(Untouched::BadSignature));
        let api = signed(test_key(), "ocid1.tenancy.oc1..a/ocid1.user.oc1..b/aa:bb");
        assert_eq!(resign(&Method::PUT, TARGET, &api, pk, &t), Err(Untouched::NotSession));
        let h = signed(test_key(), "ST$old");
        assert_eq!(resign(&Method::PUT, "/n/ns/b/bk/o/y?uploadId=1", &h, pk, &t), Err(Untouched::BadSignature));
        assert_eq!(resign(&Method::POST, TARGET, &h, pk, &t), Err(Untouched::BadSignature));
        let mut missing = h.clone();
        missing.remove("x-content-sha256");
        assert_eq!(resign(&Method::PUT, TARGET, &missing, pk, &t), Err(Untouched::Unverifiable));
        let mut twice = h.clone();
        twice.append(AUTHORIZATION, HeaderValue::from_static("Basic eA=="));
        assert_eq!(resign(&Method::PUT, TARGET, &twice, pk, &t), Err(Untouched::NoAuthorization));
        assert_eq!(resign(&Method::PUT, TARGET, &HeaderMap::new(), pk, &t), Err(Untouched::NoAuthorization));
        let mut bearer = h.clone();
        bearer.insert(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(resign(&Method::PUT, TARGET, &bearer, pk, &t), Err(Untouched::NotOciSignature));
    }
}
