//! UPSTs (OCI user principal session tokens): minting and verification.
//!
//! Claims as OCI's auth service issues them: `sub`, `tenant`, `iss` "authService.oracle.com", `iat`, `exp`,
//! `jti`, `sess_exp` (string, "Sat, 08 Nov 2025 17:19:55 UTC"), `ptype` "user", and `jwk`, a
//! JSON *string* holding the bound RSA public key.

use std::time::{Duration, UNIX_EPOCH};

use rsa::RsaPublicKey;
use serde_json::{json, Value};

use crate::jwt::{self, Parsed};
use crate::keys::{self, SigningKeyPair};
use crate::state::now_secs;

pub const ISSUER: &str = "authService.oracle.com";

/// What a UPST says, after verification.
#[derive(Clone, Debug)]
pub struct Upst {
    pub token: String,
    pub sub: String,
    pub tenant: String,
    pub jti: String,
    /// `sess_exp` as epoch seconds.
    pub sess_exp: i64,
    pub sess_exp_str: String,
    /// The proof-of-possession key from the `jwk` claim.
    pub bound_key: RsaPublicKey,
    /// The `jwk` claim verbatim (a JSON string), kept across refreshes.
    pub jwk_claim: String,
}

/// `"Sat, 08 Nov 2025 17:19:55 UTC"`.
pub fn format_sess_exp(epoch: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(epoch.max(0) as u64);
    httpdate::fmt_http_date(t).replace(" GMT", " UTC")
}

pub fn parse_sess_exp(s: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(&s.replace(" UTC", " GMT")).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64)
}

/// The `jwk` claim string for a bound key.
pub fn jwk_claim(key: &RsaPublicKey) -> String {
    let mut jwk = keys::public_jwk(key, &format!("emu-{}", &keys::fingerprint_hex(key)[..16]));
    jwk["alg"] = json!("RS256");
    jwk["use"] = json!("sig");
    jwk.to_string()
}

/// Signs a UPST. `exp` and `sess_exp` are epoch seconds.
pub fn mint(
    oci_key: &SigningKeyPair,
    sub: &str,
    tenant: &str,
    jwk_claim: &str,
    exp: i64,
    sess_exp_str: &str,
) -> String {
    let now = now_secs();
    let claims = json!({
        "sub": sub,
        "tenant": tenant,
        "iss": ISSUER,
        "aud": "oci",
        "ptype": "user",
        "ttype": "login",
        "iat": now,
        "exp": exp,
        "jti": uuid::Uuid::new_v4().to_string(),
        "sess_exp": sess_exp_str,
        "jwk": jwk_claim,
    });
    jwt::sign(&oci_key.private, &oci_key.kid, &claims)
}

/// Why a UPST was refused; the string is the 401 reason recorded in events.
pub type Reason = &'static str;

/// Best-effort `jti` without verification (for event records of rejected requests).
pub fn peek_jti(token: &str) -> Option<String> {
    Parsed::parse(token).ok()?.str_claim("jti").map(String::from)
}

/// Verifies signature (emulator OCI key), issuer and expiry, and decodes the bound key.
pub fn verify(oci_key: &SigningKeyPair, token: &str) -> Result<Upst, Reason> {
    let parsed = Parsed::parse(token).map_err(|_| "upst_malformed")?;
    parsed.verify(&oci_key.public).map_err(|_| "upst_bad_signature")?;
    if parsed.str_claim("iss") != Some(ISSUER) {
        return Err("upst_bad_issuer");
    }
    let exp = parsed.int_claim("exp").ok_or("upst_malformed")?;
    // OCI/Go treat `exp <= now` as expired.
    if exp <= now_secs() {
        return Err("upst_expired");
    }
    let jwk_claim = parsed.str_claim("jwk").ok_or("upst_no_jwk")?.to_string();
    let jwk: Value = serde_json::from_str(&jwk_claim).map_err(|_| "upst_bad_jwk")?;
    let bound_key = keys::from_jwk(&jwk).map_err(|_| "upst_bad_jwk")?;
    let sess_exp_str = parsed.str_claim("sess_exp").ok_or("upst_malformed")?.to_string();
    let sess_exp = parse_sess_exp(&sess_exp_str).ok_or("upst_malformed")?;
    Ok(Upst {
        token: token.to_string(),
        sub: parsed.str_claim("sub").ok_or("upst_malformed")?.to_string(),
        tenant: parsed.str_claim("tenant").ok_or("upst_malformed")?.to_string(),
        jti: parsed.str_claim("jti").unwrap_or_default().to_string(),
        sess_exp,
        sess_exp_str,
        bound_key,
        jwk_claim,
    })
}
