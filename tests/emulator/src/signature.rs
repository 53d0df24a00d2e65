//! Verification of OCI HTTP request signatures (draft-cavage-http-signatures, "version 1")
//! made with a session token: `keyId="ST$<UPST>"`, RSA-PKCS#1 v1.5 SHA-256 by the key bound
//! in the UPST's `jwk` claim. Written independently of woci's signer on purpose.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::{HeaderMap, Method};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use sha2::{Digest as _, Sha256};

use crate::keys::SigningKeyPair;
use crate::upst::{self, Upst};

/// A rejected request: a stable reason (recorded in events/stats) and, when the keyId held a
/// decodable token, its `jti`.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub reason: &'static str,
    pub jti: Option<String>,
}

impl Rejection {
    fn new(reason: &'static str) -> Self {
        Rejection { reason, jti: None }
    }
}

/// The request parts a signature covers.
pub struct SignedRequest<'a> {
    pub method: &'a Method,
    /// Path and query exactly as sent.
    pub target: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// Parses `Signature k="v",k="v",...` into a map.
pub fn parse_authorization(value: &str) -> Option<HashMap<String, String>> {
    let rest = value.strip_prefix("Signature ")?.trim();
    let mut params = HashMap::new();
    let mut s = rest;
    while !s.is_empty() {
        let eq = s.find('=')?;
        let key = s[..eq].trim().trim_start_matches(',').trim().to_string();
        let after = s[eq + 1..].strip_prefix('"')?;
        let end = after.find('"')?;
        params.insert(key, after[..end].to_string());
        s = after[end + 1..].trim_start().trim_start_matches(',').trim_start();
    }
    Some(params)
}

/// Verifies the request. `require_body_headers`: POST/PUT/PATCH must also sign
/// `content-length`, `content-type` and `x-content-sha256` (all operations except PutObject and
/// UploadPart, which the SDKs sign without body headers).
pub fn verify(
    req: &SignedRequest<'_>,
    oci_key: &SigningKeyPair,
    max_skew: Duration,
    require_body_headers: bool,
) -> Result<Upst, Rejection> {
    let auth = req
        .headers
        .get("authorization")
        .ok_or(Rejection::new("missing_authorization"))?
        .to_str()
        .map_err(|_| Rejection::new("malformed_authorization"))?;
    let params = parse_authorization(auth).ok_or(Rejection::new("malformed_authorization"))?;
    let key_id = params.get("keyId").ok_or(Rejection::new("malformed_authorization"))?;
    let signature_b64 = params.get("signature").ok_or(Rejection::new("malformed_authorization"))?;
    if params.get("version").is_some_and(|v| v != "1") {
        return Err(Rejection::new("unsupported_signature_version"));
    }
    if params.get("algorithm").is_some_and(|a| a != "rsa-sha256") {
        return Err(Rejection::new("unsupported_algorithm"));
    }
    let token = key_id.strip_prefix("ST$").ok_or(Rejection::new("unsupported_key_id"))?;
    let jti = upst::peek_jti(token);
    let reject = |reason: &'static str| Rejection { reason, jti: jti.clone() };

    let upst = upst::verify(oci_key, token).map_err(reject)?;

    // Python's httpsig defaults to `date` alone when `headers` is absent.
    let header_list: Vec<String> = params
        .get("headers")
        .map(|h| h.split_whitespace().map(str::to_ascii_lowercase).collect())
        .unwrap_or_else(|| vec!["date".into()]);
    let signed = |name: &str| header_list.iter().any(|h| h == name);

    let date_name = if signed("date") { "date" } else { "x-date" };
    for required in [date_name, "(request-target)", "host"] {
        if !signed(required) {
            return Err(reject("required_header_not_signed"));
        }
    }
    let body_method = matches!(*req.method, Method::POST | Method::PUT | Method::PATCH);
    if body_method && require_body_headers {
        for required in ["content-length", "content-type", "x-content-sha256"] {
            if !signed(required) {
                return Err(reject("required_header_not_signed"));
            }
        }
    }

    let mut lines = Vec::with_capacity(header_list.len());
    for name in &header_list {
        let value = if name == "(request-target)" {
            format!("{} {}", req.method.as_str().to_ascii_lowercase(), req.target)
        } else {
            let values: Vec<&str> = req
                .headers
                .get_all(name.as_str())
                .iter()
                .map(|v| v.to_str().map(str::trim))
                .collect::<Result<_, _>>()
                .map_err(|_| reject("malformed_header"))?;
            if values.is_empty() {
                return Err(reject("signed_header_missing"));
            }
            values.join(", ")
        };
        lines.push(format!("{name}: {value}"));
    }
    let signing_string = lines.join("\n");

    let sig_bytes = STANDARD.decode(signature_b64).map_err(|_| reject("malformed_authorization"))?;
    let sig = Signature::try_from(sig_bytes.as_slice()).map_err(|_| reject("bad_signature"))?;
    VerifyingKey::<Sha256>::new(upst.bound_key.clone())
        .verify(signing_string.as_bytes(), &sig)
        .map_err(|_| reject("bad_signature"))?;

    // Only after the signature holds do we judge the (now authentic) date and body headers.
    let date = req.headers.get(date_name).and_then(|v| v.to_str().ok()).ok_or(reject("malformed_date"))?;
    let date = httpdate::parse_http_date(date).map_err(|_| reject("malformed_date"))?;
    let now = crate::state::now();
    let skew = now.duration_since(date).or_else(|_| date.duration_since(now)).unwrap_or_default();
    if skew > max_skew {
        return Err(reject("stale_date"));
    }
    if signed("x-content-sha256") {
        let sent = req.headers.get("x-content-sha256").and_then(|v| v.to_str().ok()).unwrap_or("");
        if sent != STANDARD.encode(Sha256::digest(req.body)) {
            return Err(reject("body_hash_mismatch"));
        }
    }
    if signed("content-length") {
        let sent = req.headers.get("content-length").and_then(|v| v.to_str().ok()).unwrap_or("");
        if sent.parse::<usize>().ok() != Some(req.body.len()) {
            return Err(reject("content_length_mismatch"));
        }
    }
    Ok(upst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_authorization_in_any_order() {
        let p = parse_authorization(
            r#"Signature algorithm="rsa-sha256",headers="date (request-target) host",keyId="ST$a.b.c",signature="c2ln",version="1""#,
        )
        .unwrap();
        assert_eq!(p["keyId"], "ST$a.b.c");
        assert_eq!(p["headers"], "date (request-target) host");
        assert_eq!(p["signature"], "c2ln");
        let p = parse_authorization(r#"Signature version="1", keyId="x", signature="y""#).unwrap();
        assert_eq!(p["version"], "1");
        assert_eq!(p["keyId"], "x");
        assert!(parse_authorization("Bearer abc").is_none());
    }
}
