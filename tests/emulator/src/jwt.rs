//! Minimal RS256 JWT signing and verification on top of the `rsa` crate.
//!
//! Hand-rolled (instead of `jsonwebtoken`) so every rejection maps to a precise, stable reason
//! string that tests can assert on, and so the same code signs IdP tokens and UPSTs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding as _, Signer as _, Verifier as _};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::Sha256;

/// Signs `claims` as a compact RS256 JWS with header `{"alg":"RS256","typ":"JWT","kid":kid}`.
pub fn sign(key: &RsaPrivateKey, kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signer = SigningKey::<Sha256>::new(key.clone());
    let sig = signer.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// A JWT split into its decoded parts; the signature is *not* checked yet.
pub struct Parsed {
    pub header: Value,
    pub claims: Value,
    signing_input: String,
    signature: Vec<u8>,
}

impl Parsed {
    /// Decodes a compact JWS; `Err` carries a short reason.
    pub fn parse(token: &str) -> Result<Parsed, &'static str> {
        let mut it = token.split('.');
        let (Some(h), Some(c), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
            return Err("not a compact JWS");
        };
        let decode_json = |part: &str| -> Result<Value, &'static str> {
            let raw = URL_SAFE_NO_PAD.decode(part.trim_end_matches('=')).map_err(|_| "bad base64url")?;
            serde_json::from_slice(&raw).map_err(|_| "bad JSON")
        };
        let header = decode_json(h)?;
        let claims = decode_json(c)?;
        if !claims.is_object() {
            return Err("claims are not an object");
        }
        let signature = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| "bad signature encoding")?;
        Ok(Parsed { header, claims, signing_input: format!("{h}.{c}"), signature })
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// Checks `alg` is RS256 and the signature verifies under `key`.
    pub fn verify(&self, key: &RsaPublicKey) -> Result<(), &'static str> {
        if self.header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err("alg is not RS256");
        }
        let sig = Signature::try_from(self.signature.as_slice()).map_err(|_| "bad signature")?;
        VerifyingKey::<Sha256>::new(key.clone())
            .verify(self.signing_input.as_bytes(), &sig)
            .map_err(|_| "bad signature")
    }

    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn int_claim(&self, name: &str) -> Option<i64> {
        self.claims.get(name).and_then(Value::as_i64)
    }
}
