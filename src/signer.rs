//! OCI HTTP request signatures: draft-cavage-http-signatures-08 as OCI uses it ("Signature
//! version 1", `Authorization` scheme, RSA-SHA256).
//!
//! Three users:
//! - the proxy parses a child's `Authorization` header ([`SignatureHeader`]), rebuilds the signing
//!   string from the request as it arrived ([`signing_string`]), checks it against the profile's
//!   public key ([`verify`]) and swaps the session token inside `keyId`
//!   ([`SignatureHeader::with_key_id`]). The signing string never contains `keyId`, so the child's
//!   signature stays valid after the swap;
//! - [`crate::session_refresh`] signs woci's own requests ([`sign_request`]);
//! - tests.
//!
//! Signature values and `keyId`s (which embed the session token) are secrets: nothing here logs or
//! puts them into an error message.

use crate::clock::Clock;
use crate::error::Error;
use crate::keys::KeyPair;
use crate::secret::SecretString;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256};
use std::ops::Range;
use url::Url;

/// The `keyId` prefix of session-token (UPST) signatures.
pub const SESSION_KEY_ID_PREFIX: &str = "ST$";

/// The pseudo header naming the method and path of the request.
pub const REQUEST_TARGET: &str = "(request-target)";

/// Header list for requests without a body (GET, HEAD, DELETE, …).
pub const HEADERS_NO_BODY: [&str; 3] = ["date", REQUEST_TARGET, "host"];

/// Header list for POST, PUT and PATCH.
pub const HEADERS_WITH_BODY: [&str; 6] =
    ["date", REQUEST_TARGET, "host", "content-length", "content-type", "x-content-sha256"];

/// Why a signature header or signing string could not be handled. Never contains header values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The `Authorization` value is not `Signature k="v",…`.
    #[error("authorization header is not an OCI signature: {0}")]
    Malformed(&'static str),
    /// A header named in `headers="…"` is not in the request.
    #[error("signed header `{0}` is missing from the request")]
    MissingHeader(String),
    /// A header value is not visible ASCII.
    #[error("signed header `{0}` is not valid text")]
    InvalidHeader(String),
}

impl From<SignError> for Error {
    fn from(e: SignError) -> Self {
        Error::Other(e.to_string())
    }
}

/// A parsed `Authorization: Signature …` value. Keeps the original text so that
/// [`with_key_id`](Self::with_key_id) changes nothing but the `keyId` value.
#[derive(Clone)]
pub struct SignatureHeader {
    raw: String,
    /// `(name, value range in raw)`, in the order they appear; names as written.
    params: Vec<(String, Range<usize>)>,
}

impl std::fmt::Debug for SignatureHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // keyId holds the session token and signature is a credential: print names only.
        let names: Vec<&str> = self.params.iter().map(|(n, _)| n.as_str()).collect();
        write!(f, "SignatureHeader({names:?})")
    }
}

impl SignatureHeader {
    /// Parses `Signature version="1",keyId="…",algorithm="rsa-sha256",headers="…",signature="…"`.
    /// Parameters may come in any order, separated by `,` with optional spaces; unknown ones are
    /// kept. `keyId` and `signature` are required.
    pub fn parse(value: &str) -> Result<SignatureHeader, SignError> {
        let (scheme, _) = value.split_once(' ').ok_or(SignError::Malformed("no scheme"))?;
        if !scheme.eq_ignore_ascii_case("Signature") {
            return Err(SignError::Malformed("scheme is not `Signature`"));
        }
        let bytes = value.as_bytes();
        let mut params = Vec::new();
        let mut i = scheme.len();
        loop {
            i = value.len() - value[i..].trim_start_matches([' ', '\t', ',']).len();
            if i == value.len() {
                break;
            }
            let eq = value[i..].find('=').map(|n| i + n);
            let name = value[i..eq.unwrap_or(i)].trim();
            let Some(eq) = eq.filter(|_| !name.is_empty() && !name.contains([' ', ',', '"'])) else {
                return Err(SignError::Malformed("parameter without `=`"));
            };
            if bytes.get(eq + 1) != Some(&b'"') {
                return Err(SignError::Malformed("parameter value is not quoted"));
            }
            // Values are quoted strings; OCI values (base64, OCIDs, JWTs, header names) never
            // contain quotes, but honour a backslash escape so that we never split inside one.
            i = eq + 2;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            if i >= bytes.len() {
                return Err(SignError::Malformed("unterminated quoted value"));
            }
            params.push((name.to_owned(), eq + 2..i));
            i += 1;
            if !matches!(bytes.get(i), None | Some(b',' | b' ')) {
                return Err(SignError::Malformed("garbage after a quoted value"));
            }
        }
        let header = SignatureHeader { raw: value.to_owned(), params };
        for (required, missing) in [("keyId", "no keyId"), ("signature", "no signature")] {
            if header.param(required).is_none() {
                return Err(SignError::Malformed(missing));
            }
        }
        Ok(header)
    }

    /// A parameter's value (names compared case-sensitively, as the draft specifies).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, r)| &self.raw[r.clone()])
    }

    /// All parameters in their original order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(n, r)| (n.as_str(), &self.raw[r.clone()]))
    }

    /// The `keyId` (for sessions `ST$<token>`: a secret).
    pub fn key_id(&self) -> &str {
        self.param("keyId").unwrap_or_default()
    }

    /// The base64 signature.
    pub fn signature(&self) -> &str {
        self.param("signature").unwrap_or_default()
    }

    /// The `algorithm` parameter, if present.
    pub fn algorithm(&self) -> Option<&str> {
        self.param("algorithm")
    }

    /// The signed header names, lowercase, in signing order. The draft's default when `headers` is
    /// absent is `date`.
    pub fn headers(&self) -> Vec<String> {
        match self.param("headers") {
            Some(h) => h.split_ascii_whitespace().map(str::to_ascii_lowercase).collect(),
            None => vec!["date".to_owned()],
        }
    }

    /// The session token of an `ST$` keyId, if this is a session signature.
    pub fn session_token(&self) -> Option<&str> {
        session_token_from_key_id(self.key_id())
    }

    /// The header value with the `keyId` value replaced by `new_key_id`; every other byte
    /// (parameter order, spacing, the signature) is kept.
    pub fn with_key_id(&self, new_key_id: &str) -> String {
        let range = self.params.iter().find(|(n, _)| n == "keyId").map(|(_, r)| r.clone()).unwrap_or(0..0);
        format!("{}{new_key_id}{}", &self.raw[..range.start], &self.raw[range.end..])
    }
}

/// The token of a session keyId `ST$<token>`; `None` for API-key keyIds.
pub fn session_token_from_key_id(key_id: &str) -> Option<&str> {
    key_id.strip_prefix(SESSION_KEY_ID_PREFIX).filter(|t| !t.is_empty())
}

/// The keyId for a session token: `ST$<token>`.
pub fn key_id_for_token(token: &SecretString) -> SecretString {
    SecretString::new(format!("{SESSION_KEY_ID_PREFIX}{}", token.expose()))
}

/// Builds the signing string: for each name in `names`, `name: value`, joined by `\n`.
/// `(request-target)` is `<lowercase method> <target>` where `target` is the path and query exactly
/// as sent. Repeated headers are joined with `, ` (draft §2.3). A listed header that the request
/// lacks is an error: the signature cannot be checked.
pub fn signing_string<S: AsRef<str>>(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    names: &[S],
) -> Result<String, SignError> {
    let lines = names.iter().map(|name| {
        let name = name.as_ref().to_ascii_lowercase();
        if name == REQUEST_TARGET {
            return Ok(format!("{REQUEST_TARGET}: {} {target}", method.as_str().to_ascii_lowercase()));
        }
        let values: Vec<&str> = headers
            .get_all(name.as_str())
            .iter()
            .map(|v| v.to_str().map(str::trim))
            .collect::<Result<_, _>>()
            .map_err(|_| SignError::InvalidHeader(name.clone()))?;
        if values.is_empty() {
            return Err(SignError::MissingHeader(name));
        }
        Ok(format!("{name}: {}", values.join(", ")))
    });
    Ok(lines.collect::<Result<Vec<_>, _>>()?.join("\n"))
}

/// Checks an RSASSA-PKCS1-v1_5 SHA-256 signature (base64) over `signing_string`.
pub fn verify(public_key: &RsaPublicKey, signing_string: &str, signature_b64: &str) -> bool {
    let Ok(raw) = STANDARD.decode(signature_b64) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(raw.as_slice()) else {
        return false;
    };
    VerifyingKey::<Sha256>::new(public_key.clone()).verify(signing_string.as_bytes(), &signature).is_ok()
}

/// Signs `signing_string` with RSASSA-PKCS1-v1_5 SHA-256; returns standard base64.
pub fn sign_string(private_key: &RsaPrivateKey, signing_string: &str) -> String {
    let signature = SigningKey::<Sha256>::new(private_key.clone()).sign(signing_string.as_bytes());
    STANDARD.encode(signature.to_bytes())
}

/// Formats an `Authorization` value with OCI's usual parameter order.
pub fn authorization_value(key_id: &str, headers: &[&str], signature_b64: &str) -> String {
    format!(
        "Signature version=\"1\",keyId=\"{key_id}\",algorithm=\"rsa-sha256\",headers=\"{}\",signature=\"{signature_b64}\"",
        headers.join(" ")
    )
}

/// The `host` header for a URL: host plus `:port` when the port is not the scheme's default.
pub fn host_header(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// Signs one of woci's own requests. Returns the headers to send, in signing order, followed by
/// `authorization` (marked sensitive so that `http` debug output hides it):
/// `date`, `host` and, for POST/PUT/PATCH, `content-length`, `content-type` (`content_type`, default
/// `application/json`) and `x-content-sha256`. `key_id` is `ST$<token>` for sessions.
pub fn sign_request(
    method: &Method,
    url: &Url,
    body: &[u8],
    content_type: Option<&str>,
    key: &KeyPair,
    key_id: &SecretString,
    clock: &dyn Clock,
) -> Result<HeaderMap, SignError> {
    let mut headers = HeaderMap::new();
    let date = httpdate::fmt_http_date(clock.now());
    insert(&mut headers, "date", &date)?;
    let host = host_header(url).ok_or(SignError::Malformed("URL has no host"))?;
    insert(&mut headers, "host", &host)?;
    let with_body = matches!(*method, Method::POST | Method::PUT | Method::PATCH);
    let names: &[&str] = if with_body {
        insert(&mut headers, "content-length", &body.len().to_string())?;
        insert(&mut headers, "content-type", content_type.unwrap_or("application/json"))?;
        insert(&mut headers, "x-content-sha256", &STANDARD.encode(Sha256::digest(body)))?;
        &HEADERS_WITH_BODY
    } else {
        &HEADERS_NO_BODY
    };
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let text = signing_string(method, target, &headers, names)?;
    let signature = sign_string(key.private(), &text);
    let mut auth = HeaderValue::from_str(&authorization_value(key_id.expose(), names, &signature))
        .map_err(|_| SignError::InvalidHeader("authorization".into()))?;
    auth.set_sensitive(true);
    headers.insert(http::header::AUTHORIZATION, auth);
    Ok(headers)
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) -> Result<(), SignError> {
    let v = HeaderValue::from_str(value).map_err(|_| SignError::InvalidHeader(name.into()))?;
    headers.insert(HeaderName::from_static(name), v);
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::OnceLock;

    /// A fixed 2048-bit test key (generating one in a debug build takes seconds).
    pub(crate) const TEST_KEY_PEM: &str = include_str!("../tests/fixtures/test_key.pem");
    /// A second, unrelated fixed test key.
    pub(crate) const OTHER_KEY_PEM: &str = include_str!("../tests/fixtures/other_key.pem");

    pub(crate) fn test_key() -> &'static KeyPair {
        static KEY: OnceLock<KeyPair> = OnceLock::new();
        KEY.get_or_init(|| KeyPair::from_pem(TEST_KEY_PEM).unwrap())
    }

    pub(crate) fn other_key() -> &'static KeyPair {
        static KEY: OnceLock<KeyPair> = OnceLock::new();
        KEY.get_or_init(|| KeyPair::from_pem(OTHER_KEY_PEM).unwrap())
    }

    /// 2014-01-05T21:31:40Z, the date of the OCI docs example.
    const DOCS_DATE: u64 = 1_388_957_500;

    fn headers_of(map: &HeaderMap) -> HeaderMap {
        map.clone()
    }

    #[test]
    fn docs_example_get_signing_string() {
        let mut h = HeaderMap::new();
        h.insert("date", HeaderValue::from_static("Thu, 05 Jan 2014 21:31:40 GMT"));
        h.insert("host", HeaderValue::from_static("iaas.us-ashburn-1.oraclecloud.com"));
        let s = signing_string(
            &Method::GET,
            "/20160918/instances?compartmentId=ocid1.compartment.oc1..aaaa",
            &h,
            &HEADERS_NO_BODY,
        )
        .unwrap();
        assert_eq!(
            s,
            "date: Thu, 05 Jan 2014 21:31:40 GMT\n\
             (request-target): get /20160918/instances?compartmentId=ocid1.compartment.oc1..aaaa\n\
             host: iaas.us-ashburn-1.oraclecloud.com"
        );
    }

    #[test]
    fn sign_post_with_fixed_date_gives_exact_signing_string() {
        let clock = ManualClock::at(DOCS_DATE);
        let url = Url::parse("https://auth.example:8443/v1/authentication/refresh?x=1").unwrap();
        let body = br#"{"currentToken":"abc"}"#;
        let key_id = SecretString::from("ST$abc");
        let h = sign_request(&Method::POST, &url, body, None, test_key(), &key_id, &clock).unwrap();
        assert_eq!(h["date"], "Sun, 05 Jan 2014 21:31:40 GMT");
        assert_eq!(h["host"], "auth.example:8443");
        assert_eq!(h["content-length"], "22");
        assert_eq!(h["content-type"], "application/json");
        let expected = format!(
            "date: Sun, 05 Jan 2014 21:31:40 GMT\n\
             (request-target): post /v1/authentication/refresh?x=1\n\
             host: auth.example:8443\n\
             content-length: 22\n\
             content-type: application/json\n\
             x-content-sha256: {}",
            STANDARD.encode(Sha256::digest(body))
        );
        let auth = SignatureHeader::parse(h["authorization"].to_str().unwrap()).unwrap();
        assert!(h["authorization"].is_sensitive());
        assert_eq!(auth.key_id(), "ST$abc");
        assert_eq!(auth.algorithm(), Some("rsa-sha256"));
        assert_eq!(auth.headers(), HEADERS_WITH_BODY.map(String::from).to_vec());
        let rebuilt = signing_string(&Method::POST, "/v1/authentication/refresh?x=1", &h, &auth.headers()).unwrap();
        assert_eq!(rebuilt, expected);
        assert!(verify(test_key().public(), &expected, auth.signature()));
        // The empty body's digest: base64 SHA-256 of zero bytes.
        let e = sign_request(&Method::PUT, &url, b"", None, test_key(), &key_id, &clock).unwrap();
        assert_eq!(e["x-content-sha256"], "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    }

    #[test]
    fn get_signs_three_headers_and_default_port_is_omitted() {
        let clock = ManualClock::at(DOCS_DATE);
        let url = Url::parse("https://objectstorage.us-ashburn-1.oraclecloud.com:443/n/").unwrap();
        let h = sign_request(&Method::GET, &url, b"", None, test_key(), &"k".into(), &clock).unwrap();
        assert_eq!(h["host"], "objectstorage.us-ashburn-1.oraclecloud.com");
        assert!(h.get("content-length").is_none());
        let auth = SignatureHeader::parse(h["authorization"].to_str().unwrap()).unwrap();
        assert_eq!(auth.param("headers"), Some("date (request-target) host"));
    }

    fn signed_get(key: &KeyPair, key_id: &str) -> (HeaderMap, SignatureHeader) {
        let clock = ManualClock::at(DOCS_DATE);
        let url = Url::parse("https://iaas.example/20160918/instances?c=1").unwrap();
        let h = sign_request(&Method::GET, &url, b"", None, key, &key_id.into(), &clock).unwrap();
        let auth = SignatureHeader::parse(h["authorization"].to_str().unwrap()).unwrap();
        (h, auth)
    }

    fn verifies(h: &HeaderMap, auth: &SignatureHeader, public: &RsaPublicKey) -> bool {
        let s = signing_string(&Method::GET, "/20160918/instances?c=1", h, &auth.headers()).unwrap();
        verify(public, &s, auth.signature())
    }

    #[test]
    fn round_trip_and_tampering() {
        let (h, auth) = signed_get(test_key(), "ST$old");
        assert!(verifies(&h, &auth, test_key().public()));
        assert!(!verifies(&h, &auth, other_key().public()), "another key must not verify");
        let mut tampered = headers_of(&h);
        tampered.insert("host", HeaderValue::from_static("evil.example"));
        assert!(!verifies(&tampered, &auth, test_key().public()));
        let s = signing_string(&Method::GET, "/20160918/instances?c=2", &h, &auth.headers()).unwrap();
        assert!(!verify(test_key().public(), &s, auth.signature()), "changed query must fail");
        assert!(!verify(test_key().public(), &s, "not base64!"));
    }

    #[test]
    fn key_id_swap_keeps_signature_valid_and_changes_nothing_else() {
        let (h, auth) = signed_get(test_key(), "ST$old");
        let original = h["authorization"].to_str().unwrap();
        let swapped = auth.with_key_id("ST$new");
        assert_eq!(swapped, original.replace("ST$old", "ST$new"));
        let reparsed = SignatureHeader::parse(&swapped).unwrap();
        assert_eq!(reparsed.session_token(), Some("new"));
        assert_eq!(reparsed.signature(), auth.signature());
        assert!(verifies(&h, &reparsed, test_key().public()));
    }

    #[test]
    fn parses_any_order_spacing_and_unknown_params() {
        let v = r#"Signature headers="date (request-target) host", signature="c2ln",algorithm="rsa-sha256", keyId="ST$tok",version="1",extra="x y""#;
        let a = SignatureHeader::parse(v).unwrap();
        assert_eq!(a.key_id(), "ST$tok");
        assert_eq!(a.signature(), "c2ln");
        assert_eq!(a.param("extra"), Some("x y"));
        assert_eq!(a.params().count(), 6);
        assert_eq!(a.with_key_id("ST$n"), v.replace("ST$tok", "ST$n"));
        assert_eq!(a.headers(), vec!["date", "(request-target)", "host"]);
        assert!(!format!("{a:?}").contains("tok"), "Debug must not show the keyId");
    }

    #[test]
    fn rejects_malformed_headers() {
        for bad in [
            "Bearer abc",
            "Signature",
            r#"Signature keyId="a""#,
            r#"Signature keyId="a",signature="b"#,
            r#"Signature keyId=a,signature="b""#,
            r#"Signature signature="b""#,
        ] {
            assert!(SignatureHeader::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_listed_header_is_an_error() {
        let h = HeaderMap::new();
        let err = signing_string(&Method::GET, "/", &h, &["date"]).unwrap_err();
        assert_eq!(err, SignError::MissingHeader("date".into()));
        let mut h = HeaderMap::new();
        h.insert("x-date", HeaderValue::from_static("d"));
        h.append("x-multi", HeaderValue::from_static("a"));
        h.append("x-multi", HeaderValue::from_static("b"));
        assert_eq!(signing_string(&Method::GET, "/", &h, &["X-Date", "x-multi"]).unwrap(), "x-date: d\nx-multi: a, b");
    }

    /// Requests signed by the OCI Python SDK 2.189.0 (`oci.auth.signers.SecurityTokenSigner` with
    /// [`TEST_KEY_PEM`], `date` pinned; generated with the SDK's vendored `requests`). PKCS#1 v1.5
    /// signatures are deterministic, so our signer must reproduce them byte for byte.
    const SDK_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2ln";
    const SDK_DATE: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

    struct SdkVector {
        method: Method,
        target: &'static str,
        headers: &'static [(&'static str, &'static str)],
        signed: &'static str,
        signature: &'static str,
    }

    fn sdk_vectors() -> Vec<SdkVector> {
        vec![
            SdkVector {
                method: Method::GET,
                target: "/20160918/instances?compartmentId=ocid1.compartment.oc1..aaaa&limit=10",
                headers: &[("host", "iaas.us-ashburn-1.oraclecloud.com"), ("content-type", "application/json")],
                signed: "date (request-target) host",
                signature: "b2witQAq68d/wSoJoKjpPmkfqkf/yp3QmqwUakEslJ5kMSxV7bJfaOcg3g6qwPrxI56fYc+OtkkF7O5O4QR8dwFtcVoEIm7/O2g4B9d4Dmqy8gXcdZMaM7RmbYNat5hDJ6EBPSD9GJjb89sUer500kNOdpjbqRh+gCaQIZU9SOm5+u6VbZpe6tVkR8fGwhNZEH8pM17AMEPBTPLhYjCRWjLooBUlA7VZcpGizX/T9Bg2WwYp81IWtq0WNNMtdbs7wNFAKPNRHfQW/xlR/zs2RK+MNg3nu8M5yWb7qpyTico5kQ75h03iMnIZNrRUbTZmAUUT834a/93xsrah/s+Olg==",
            },
            SdkVector {
                method: Method::POST,
                target: "/v1/authentication/refresh",
                headers: &[
                    ("content-length", "65"),
                    ("host", "auth.us-ashburn-1.oraclecloud.com"),
                    ("content-type", "application/json"),
                    ("x-content-sha256", "QQc+sMu4xWwmK17rXk36ebndmevzlFvNUqQMX8Aff1I="),
                ],
                signed: "date (request-target) host content-length content-type x-content-sha256",
                signature: "nF5IQg6gSQd5OSyw81TNZNZRRhd1nbBUVBKJuWYa6O5t6qhlCLjbYh6kCactIxLHumeUiFSUN1qPVjrxMbNQMXycGF20QC2GgvHpkvMsOXhOqkR7o22AyEOUosMwRAjaiU3S8/kSVF8H7+3nsWYDHaskeGKECzMtfQ1WaKHWNrI/bcnUUn+rm/VBkRdMB9rzEX/gYorGtqBVIgTHlufiI/B3uJBlGtaahVFVL51zNNpVfYbJ5cLy/ctEmTJ1GZYAX0dOyRC3KdNGd5jL9tn1L/LWVm8zyAfdEyhY5Mo5OF3n+RVOftDeoTX5bBYcr6OGwkmxNkBuW5InDG3vt2s/vQ==",
            },
            // An Object Storage part upload (`enforce_content_headers=False`: body headers unsigned);
            // the URL named port 443, so the SDK's `host` carries it.
            SdkVector {
                method: Method::PUT,
                target: "/n/ns/b/bk/u/big%20file?uploadId=abc&uploadPartNum=1",
                headers: &[
                    ("content-length", "10"),
                    ("host", "objectstorage.us-ashburn-1.oraclecloud.com:443"),
                    ("content-type", "application/octet-stream"),
                ],
                signed: "date (request-target) host",
                signature: "NnVCN3DN/mCJaxyypfbnlUxuwxByCP6lgmgLWmYGOKJQgpZQVle944szXbhzjzGlAe1kCy1b/ThHI/QdEQ+eXJTQXVhLuZQGrM++xDKOADC10VxdnoPYpYm3VaXb/sUllI8UF++WoZbu+0WFwyG9snF2gqdQB5w+S8IPanBVN0JxvkOsB9BNUsBeo+tZ0FOo3Ka237/7o3CSITrZpqNkITFBHZecvGaz1p1lSY8W8mDvxwJ1tkQGwaJ9GQVW6cHzlRSUaeayHVw8H66LnyHEW8EbhF5Lj1Exy2O0aJjgw0oe+iOEFJ4wwpxBGlV7r5IXb3BwJPCADTvOLk3/9j6Gng==",
            },
        ]
    }

    #[test]
    fn python_sdk_vectors_parse_verify_reproduce_and_survive_the_swap() {
        for v in sdk_vectors() {
            let mut h = HeaderMap::new();
            h.insert("date", HeaderValue::from_static(SDK_DATE));
            for (k, val) in v.headers {
                h.insert(HeaderName::from_static(k), HeaderValue::from_static(val));
            }
            // The SDK's own parameter order: algorithm, headers, keyId, signature, version.
            let auth = format!(
                "Signature algorithm=\"rsa-sha256\",headers=\"{}\",keyId=\"ST${SDK_TOKEN}\",signature=\"{}\",version=\"1\"",
                v.signed, v.signature
            );
            let parsed = SignatureHeader::parse(&auth).unwrap();
            assert_eq!(parsed.session_token(), Some(SDK_TOKEN));
            assert_eq!(parsed.param("version"), Some("1"));
            let text = signing_string(&v.method, v.target, &h, &parsed.headers()).unwrap();
            assert!(verify(test_key().public(), &text, parsed.signature()), "{} must verify", v.method);
            assert!(!verify(other_key().public(), &text, parsed.signature()));
            assert_eq!(
                sign_string(test_key().private(), &text),
                v.signature,
                "{} signature differs from the SDK's",
                v.method
            );
            let swapped = SignatureHeader::parse(&parsed.with_key_id("ST$other.token.x")).unwrap();
            assert_eq!(swapped.session_token(), Some("other.token.x"));
            assert_eq!(swapped.param("algorithm"), Some("rsa-sha256"));
            assert!(verify(test_key().public(), &text, swapped.signature()));
        }
    }

    #[test]
    fn our_signer_matches_the_python_sdk() {
        // The refresh POST above, signed by woci: same headers, same signature as the SDK's.
        let url = Url::parse("https://auth.us-ashburn-1.oraclecloud.com/v1/authentication/refresh").unwrap();
        let body = format!(r#"{{"currentToken": "{SDK_TOKEN}"}}"#);
        let clock = ManualClock::at(1_700_000_000);
        let key_id = SecretString::from(format!("ST${SDK_TOKEN}"));
        let h = sign_request(&Method::POST, &url, body.as_bytes(), None, test_key(), &key_id, &clock).unwrap();
        let sdk = &sdk_vectors()[1];
        for (k, v) in sdk.headers {
            assert_eq!(h[*k], *v, "{k}");
        }
        let ours = SignatureHeader::parse(h["authorization"].to_str().unwrap()).unwrap();
        assert_eq!(ours.signature(), sdk.signature);
        assert_eq!(ours.param("headers"), Some(sdk.signed));
    }

    #[test]
    fn session_token_helpers() {
        assert_eq!(session_token_from_key_id("ST$abc"), Some("abc"));
        assert_eq!(session_token_from_key_id("ST$"), None);
        assert_eq!(session_token_from_key_id("ocid1.tenancy/ocid1.user/aa:bb"), None);
        assert_eq!(key_id_for_token(&"abc".into()).expose(), "ST$abc");
    }
}
