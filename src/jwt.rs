//! Reading JWT claims (UPSTs, IdP access tokens) without verifying them, and deciding freshness.
//!
//! woci never holds the key that signed a UPST (OCI does), so it only decodes the payload to learn
//! `exp`, `sub`, `tenant` and `sess_exp`. The decision "is this token good enough" is the pure
//! function [`freshness`], fed with the time from a [`crate::clock::Clock`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::time::{Duration, SystemTime};

/// Why a string is not a usable JWT. Never carries the token itself. Each message is a complete
/// predicate ("not a JWT (…)"): callers write "`X` is {e}" and never say "not a JWT" themselves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three dot-separated parts.
    #[error("not a JWT (expected 3 dot-separated parts, found {0})")]
    Segments(usize),
    /// The payload is not base64url.
    #[error("not a JWT (its payload is not base64url)")]
    Base64,
    /// The payload is not the expected JSON.
    #[error("not a JWT with the expected claims ({0})")]
    Json(String),
}

/// An RFC 7519 NumericDate: seconds since the epoch, a fraction (allowed) dropped.
pub(crate) fn numeric_date<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    // Within ±2^53, where an f64 still counts whole seconds.
    let whole = n.as_f64().filter(|f| f.is_finite() && f.abs() < 9e15).map(|f| f.floor() as i64);
    n.as_i64().or(whole).ok_or_else(|| serde::de::Error::custom("a NumericDate is a number of seconds"))
}

/// [`numeric_date`] for an optional claim.
pub(crate) fn numeric_date_opt<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct N(#[serde(deserialize_with = "numeric_date")] i64);
    Ok(Option::<N>::deserialize(d)?.map(|N(n)| n))
}

/// A JWT's `exp` claim (a NumericDate), `None` when it has none; an error when `token` is not a
/// JWT with a JSON payload.
pub(crate) fn expiry(token: &str) -> Result<Option<i64>, JwtError> {
    #[derive(Deserialize)]
    struct Exp {
        #[serde(default, deserialize_with = "numeric_date_opt")]
        exp: Option<i64>,
    }
    decode_claims::<Exp>(token).map(|c| c.exp)
}

/// The claims woci reads from a UPST. Unknown claims are ignored.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct UpstClaims {
    /// Expiry, seconds since the epoch.
    #[serde(deserialize_with = "numeric_date")]
    pub exp: i64,
    /// Issued at.
    #[serde(default, deserialize_with = "numeric_date_opt")]
    pub iat: Option<i64>,
    /// The user OCID.
    pub sub: Option<String>,
    /// The tenancy OCID.
    pub tenant: Option<String>,
    /// End of the server-side session (string like `Sat, 08 Nov 2025 17:19:55 UTC`, or a number).
    pub sess_exp: Option<serde_json::Value>,
    /// Token id.
    pub jti: Option<String>,
    /// JSON string of the bound public key (RSA JWK).
    pub jwk: Option<String>,
}

impl UpstClaims {
    /// `sess_exp` as seconds since the epoch, if present and parseable.
    pub fn session_expiry(&self) -> Option<i64> {
        match self.sess_exp.as_ref()? {
            serde_json::Value::Number(n) => n.as_i64(),
            serde_json::Value::String(s) => parse_sess_exp(s),
            _ => None,
        }
    }
}

/// Decodes the payload of a compact JWT into `T` without verifying the signature.
pub fn decode_claims<T: DeserializeOwned>(token: &str) -> Result<T, JwtError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    if parts.len() != 3 {
        return Err(JwtError::Segments(parts.len()));
    }
    let payload = URL_SAFE_NO_PAD.decode(parts[1].trim_end_matches('=')).map_err(|_| JwtError::Base64)?;
    serde_json::from_slice(&payload).map_err(|e| JwtError::Json(e.to_string()))
}

/// Decodes a UPST's claims.
pub fn decode_upst(token: &str) -> Result<UpstClaims, JwtError> {
    decode_claims(token)
}

/// Parses OCI's `sess_exp` string form (`Sat, 08 Nov 2025 17:19:55 UTC`; `GMT` also accepted).
pub fn parse_sess_exp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let normalized = s.strip_suffix(" UTC").map_or_else(|| s.to_owned(), |rest| format!("{rest} GMT"));
    let t = httpdate::parse_http_date(&normalized).ok()?;
    Some(crate::clock::unix_secs(t))
}

/// Formats epoch seconds the way OCI writes `sess_exp`.
#[cfg(test)]
pub fn format_sess_exp(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    httpdate::fmt_http_date(t).replace(" GMT", " UTC")
}

/// How usable a token is at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Valid for longer than the safety window.
    Fresh {
        /// Time left until `exp`.
        remaining: Duration,
    },
    /// Still valid, but inside the safety window: renew now.
    ExpiringSoon {
        /// Time left until `exp`.
        remaining: Duration,
    },
    /// At or past `exp`.
    Expired,
}

#[cfg(test)]
impl Freshness {
    /// True only for [`Freshness::Fresh`].
    pub fn is_fresh(self) -> bool {
        matches!(self, Freshness::Fresh { .. })
    }
}

/// The safety window actually used for a token: the configured one, but at most half the token's
/// lifetime, so a window longer than the lifetime (600 s against a 5 s test token, or a short
/// `--no-browser` session) cannot make every fresh token look stale and loop renewals.
pub fn effective_window(claims: &UpstClaims, window: Duration) -> Duration {
    match claims.iat {
        Some(iat) if claims.exp > iat => {
            let half = Duration::from_secs(u64::try_from((claims.exp - iat) / 2).unwrap_or(0));
            window.min(half)
        }
        _ => window,
    }
}

/// Classifies a token expiring at `exp` (epoch seconds) at time `now` with a safety `window`.
pub fn freshness(exp: i64, now: SystemTime, window: Duration) -> Freshness {
    let now = crate::clock::unix_secs(now);
    if exp <= now {
        return Freshness::Expired;
    }
    let remaining = Duration::from_secs(u64::try_from(exp - now).unwrap_or(0));
    if remaining > window {
        Freshness::Fresh { remaining }
    } else {
        Freshness::ExpiringSoon { remaining }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn jwt(payload: &str) -> String {
        format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(payload))
    }

    #[test]
    fn numeric_dates_may_have_a_fraction() {
        let c = decode_upst(&jwt(r#"{"exp":1796450117.5,"iat":1796446517.25}"#)).unwrap();
        assert_eq!((c.exp, c.iat), (1_796_450_117, Some(1_796_446_517)));
        assert!(decode_upst(&jwt(r#"{"exp":"1796450117"}"#)).is_err(), "a string is no NumericDate");
        assert!(decode_upst(&jwt(r#"{"exp":1e300}"#)).is_err());
    }

    #[test]
    fn decodes_upst_claims() {
        let t = jwt(
            r#"{"exp":2000,"iat":1000,"sub":"ocid1.user..u","tenant":"ocid1.tenancy..t","sess_exp":"Sat, 08 Nov 2025 17:19:55 UTC","jti":"j1","jwk":"{}","extra":1}"#,
        );
        let c = decode_upst(&t).unwrap();
        assert_eq!(c.exp, 2000);
        assert_eq!(c.tenant.as_deref(), Some("ocid1.tenancy..t"));
        assert_eq!(c.session_expiry(), Some(1_762_622_395));
    }

    #[test]
    fn tolerates_padding_and_whitespace() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"exp":5}"#);
        let t = format!("a.{payload}==.b\n");
        assert_eq!(decode_upst(&t).unwrap().exp, 5);
    }

    #[test]
    fn rejects_garbage_without_echoing_it() {
        assert_eq!(decode_upst("secret-token-value"), Err(JwtError::Segments(1)));
        for e in [JwtError::Segments(1), JwtError::Base64, JwtError::Json("x".into())] {
            let m = e.to_string();
            assert!(m.starts_with("not a JWT") && m.matches("JWT").count() == 1, "one complete predicate: {m}");
        }
        assert_eq!(decode_upst("a.!!!.c"), Err(JwtError::Base64));
        let e = decode_upst(&jwt(r#"{"no_exp":1}"#)).unwrap_err();
        assert!(matches!(e, JwtError::Json(_)));
    }

    #[test]
    fn sess_exp_round_trips() {
        let s = format_sess_exp(1_762_622_395);
        assert_eq!(s, "Sat, 08 Nov 2025 17:19:55 UTC");
        assert_eq!(parse_sess_exp(&s), Some(1_762_622_395));
        assert_eq!(parse_sess_exp("1762622395"), Some(1_762_622_395));
        assert_eq!(parse_sess_exp("tomorrow"), None);
    }

    #[test]
    fn window_is_capped_at_half_the_lifetime() {
        let c = |iat, exp| UpstClaims { exp, iat, sub: None, tenant: None, sess_exp: None, jti: None, jwk: None };
        let w = Duration::from_secs(600);
        assert_eq!(effective_window(&c(Some(0), 3600), w), w);
        assert_eq!(effective_window(&c(Some(100), 110), w), Duration::from_secs(5));
        assert_eq!(effective_window(&c(None, 110), w), w);
    }

    #[test]
    fn freshness_boundaries() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        let w = Duration::from_secs(60);
        assert_eq!(freshness(1000, at(1000), w), Freshness::Expired);
        assert_eq!(freshness(1000, at(1001), w), Freshness::Expired);
        assert_eq!(freshness(1000, at(940), w), Freshness::ExpiringSoon { remaining: Duration::from_secs(60) });
        assert!(freshness(1000, at(939), w).is_fresh());
    }
}
