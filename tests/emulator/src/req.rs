//! A fully read request, as the handlers see it.

use std::collections::HashMap;

use axum::http::{HeaderMap, Method, Uri};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;

pub struct Req {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// Path and query exactly as sent (the `(request-target)` of a signature).
    pub fn target(&self) -> &str {
        self.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    }

    pub fn query(&self) -> HashMap<String, String> {
        self.uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
    }

    /// `application/x-www-form-urlencoded` body fields (first value wins).
    pub fn form(&self) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(&self.body) {
            out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        out
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `Authorization: Basic` credentials. The id and secret are taken as sent and, failing
    /// that comparison later, form-decoded (RFC 6749 §2.3.1); both are returned.
    pub fn basic_auth(&self) -> Option<(String, String)> {
        let value = self.header("authorization")?;
        let (scheme, rest) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = STANDARD.decode(rest.trim()).ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (id, secret) = text.split_once(':')?;
        Some((id.to_string(), secret.to_string()))
    }
}

/// Percent-decodes a form-encoded credential (`+` is a space).
pub fn form_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// Percent-decodes a path segment (`+` stays `+`).
pub fn path_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Constant-time-ish string comparison for secrets.
pub fn secret_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_paths_and_forms() {
        assert_eq!(path_decode("a%2Fb%20c+d"), "a/b c+d");
        assert_eq!(path_decode("100%"), "100%");
        assert_eq!(path_decode("x%4"), "x%4");
        assert_eq!(form_decode("a+b%3Ac"), "a b:c");
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("abc", "ab"));
    }
}
