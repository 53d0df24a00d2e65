//! OCI auth service session refresh, for profiles made by `oci session authenticate` (no IdP):
//! `POST {auth endpoint}/v1/authentication/refresh` with `{"currentToken": …}`, signed with the
//! session itself (keyId `ST$<current token>`, the profile key, all six body headers), answered by
//! `{"token": …}` bound to the same key (protocol.md §3.3).
//!
//! Also the default auth endpoint of a region, `https://auth.{region}.{realm domain}`.

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::http::{redact_url, Http};
use crate::keys::KeyPair;
use crate::secret::SecretString;
use crate::signer;
use http::Method;
use url::Url;
use zeroize::Zeroizing;

const SERVICE: &str = "OCI auth service";

/// Longest server error text quoted in a message.
const MAX_QUOTED: usize = 200;

/// `POST {auth_endpoint}/v1/authentication/refresh` signed with the current token and key.
///
/// 2xx with a `token` → the new token. 401 → [`Error::SessionExpired`] (the session reached its
/// server-side limit or was terminated; only a new `session authenticate` helps). Any other 4xx →
/// [`Error::Protocol`] naming the status and OCI's `code`. Network failures and 5xx are retried by
/// [`Http::send`] and end as [`Error::Network`].
pub async fn refresh_session(
    http: &Http,
    auth_endpoint: &Url,
    current: &SecretString,
    key: &KeyPair,
    clock: &dyn Clock,
) -> Result<SecretString> {
    let url = refresh_url(auth_endpoint)?;
    let body = Zeroizing::new(serde_json::json!({ "currentToken": current.expose() }).to_string().into_bytes());
    let key_id = signer::key_id_for_token(current);
    let sign = || signer::sign_request(&Method::POST, &url, &body, Some("application/json"), key, &key_id, clock);
    // Signed once up front so that a URL that cannot be signed is an error, not a panic; each
    // attempt signs again so that retries carry a fresh `date`.
    let first = sign()?;
    let response = http
        .send(SERVICE, &url, |client| {
            let headers = sign().unwrap_or_else(|_| first.clone());
            client.post(url.clone()).headers(headers).body(body.to_vec())
        })
        .await?;
    let status = response.status();
    let text = Zeroizing::new(response.text().await.map_err(|_| Error::Network {
        service: SERVICE,
        url: redact_url(&url),
        reason: "connection dropped while reading the response".into(),
    })?);
    if status.is_success() {
        return parse_token(&text);
    }
    if status == http::StatusCode::UNAUTHORIZED {
        return Err(Error::SessionExpired(
            "the OCI session can no longer be refreshed (the auth service answered 401: it expired or was terminated); \
             run `woci session authenticate` (or `command oci session authenticate`) for this profile"
                .into(),
        ));
    }
    Err(Error::Protocol {
        service: SERVICE,
        reason: format!("session refresh failed with HTTP {}{}", status.as_u16(), describe_oci_error(&text)),
    })
}

fn refresh_url(auth_endpoint: &Url) -> Result<Url> {
    if auth_endpoint.cannot_be_a_base() || auth_endpoint.host_str().is_none() {
        return Err(Error::Config(format!("invalid auth endpoint `{}`", redact_url(auth_endpoint))));
    }
    let mut url = auth_endpoint.clone();
    let path = format!("{}/v1/authentication/refresh", auth_endpoint.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    Ok(url)
}

fn parse_token(text: &str) -> Result<SecretString> {
    #[derive(serde::Deserialize)]
    struct Answer {
        token: Option<String>,
    }
    let invalid = |reason: &str| Error::Protocol { service: SERVICE, reason: reason.to_owned() };
    let answer: Answer = serde_json::from_str(text).map_err(|_| invalid("the refresh answer is not JSON"))?;
    let token = SecretString::new(answer.token.ok_or_else(|| invalid("the refresh answer has no `token`"))?);
    let t = token.expose();
    if t.is_empty() || t.chars().any(char::is_whitespace) || crate::jwt::decode_claims::<serde_json::Value>(t).is_err()
    {
        return Err(invalid("the refreshed `token` is not a JWT"));
    }
    Ok(token)
}

/// ` (code: message)` from an OCI error body `{"code": …, "message": …}`, shortened; empty when the
/// body is something else (which is never quoted, it could be anything).
fn describe_oci_error(text: &str) -> String {
    #[derive(serde::Deserialize)]
    struct OciError {
        code: Option<String>,
        message: Option<String>,
    }
    let Ok(e) = serde_json::from_str::<OciError>(text) else {
        return String::new();
    };
    let mut s = [e.code, e.message].into_iter().flatten().filter(|p| !p.is_empty()).collect::<Vec<_>>().join(": ");
    if s.is_empty() {
        return s;
    }
    if s.len() > MAX_QUOTED {
        let cut = (0..=MAX_QUOTED).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        s.truncate(cut);
        s.push('…');
    }
    format!(" ({s})")
}

/// Regions outside `oc1` and their realm, as the OCI Python SDK 2.189.0 lists them
/// (`oci/regions_definitions.py` `REGION_REALMS`); every other region is `oc1`.
#[rustfmt::skip]
const REGION_REALMS: &[(&str, &str)] = &[
    ("ap-chiyoda-1", "oc8"), ("ap-chuncheon-2", "oc35"), ("ap-dcc-canberra-1", "oc10"), ("ap-dcc-gazipur-1", "oc15"),
    ("ap-ibaraki-1", "oc8"), ("ap-seoul-2", "oc35"), ("ap-suwon-1", "oc35"), ("eu-budapest-1", "oc51"),
    ("eu-crissier-1", "oc24"), ("eu-dcc-dublin-1", "oc14"), ("eu-dcc-dublin-2", "oc14"), ("eu-dcc-milan-1", "oc14"),
    ("eu-dcc-milan-2", "oc14"), ("eu-dcc-rating-1", "oc14"), ("eu-dcc-rating-2", "oc14"), ("eu-dcc-zurich-1", "oc24"),
    ("eu-frankfurt-2", "oc19"), ("eu-jovanovac-1", "oc20"), ("eu-madrid-2", "oc19"), ("me-abudhabi-2", "oc29"),
    ("me-abudhabi-3", "oc26"), ("me-abudhabi-4", "oc29"), ("me-alain-1", "oc26"), ("me-alrayyan-1", "oc21"),
    ("me-dcc-doha-1", "oc21"), ("me-dcc-muscat-1", "oc9"), ("me-ibri-1", "oc9"), ("sa-riodejaneiro-1", "oc52"),
    ("uk-gov-cardiff-1", "oc4"), ("uk-gov-london-1", "oc4"), ("us-ashburn-2", "oc42"), ("us-gov-ashburn-1", "oc3"),
    ("us-gov-chicago-1", "oc3"), ("us-gov-phoenix-1", "oc3"), ("us-langley-1", "oc2"), ("us-luke-1", "oc2"),
    ("us-newark-1", "oc42"), ("us-somerset-1", "oc23"), ("us-thames-1", "oc23"),
];

/// Region short codes (`iad`, `phx`, …) and the region they name (`REGIONS_SHORT_NAMES`).
#[rustfmt::skip]
const REGION_SHORT_NAMES: &[(&str, &str)] = &[
    ("aga", "us-saltlake-2"), ("ahu", "me-abudhabi-3"), ("ams", "eu-amsterdam-1"), ("arn", "eu-stockholm-1"),
    ("auh", "me-abudhabi-1"), ("avf", "eu-crissier-1"), ("avz", "eu-dcc-zurich-1"), ("beg", "eu-jovanovac-1"),
    ("bgy", "eu-dcc-milan-1"), ("bno", "ap-chuncheon-2"), ("bog", "sa-bogota-1"), ("bom", "ap-mumbai-1"),
    ("brs", "uk-gov-cardiff-1"), ("cdg", "eu-paris-1"), ("cwl", "uk-cardiff-1"), ("dac", "ap-dcc-gazipur-1"),
    ("dln", "ap-suwon-1"), ("doh", "me-dcc-doha-1"), ("dtm", "eu-dcc-rating-2"), ("dtz", "ap-seoul-2"),
    ("dus", "eu-dcc-rating-1"), ("dxb", "me-dubai-1"), ("ebb", "us-somerset-1"), ("ebl", "us-thames-1"),
    ("fra", "eu-frankfurt-1"), ("gru", "sa-saopaulo-1"), ("hnw", "sa-riodejaneiro-1"), ("hsg", "ap-batam-1"),
    ("hyd", "ap-hyderabad-1"), ("iad", "us-ashburn-1"), ("ibr", "me-ibri-1"), ("icn", "ap-seoul-1"),
    ("jbp", "ap-kulai-2"), ("jed", "me-jeddah-1"), ("jnb", "af-johannesburg-1"), ("jsk", "eu-budapest-1"),
    ("kix", "ap-osaka-1"), ("lej", "af-casablanca-1"), ("lfi", "us-langley-1"), ("lhr", "uk-london-1"),
    ("lin", "eu-milan-1"), ("ltn", "uk-gov-london-1"), ("luf", "us-luke-1"), ("mad", "eu-madrid-1"),
    ("mct", "me-dcc-muscat-1"), ("mel", "ap-melbourne-1"), ("mrs", "eu-marseille-1"), ("mty", "mx-monterrey-1"),
    ("mtz", "il-jerusalem-1"), ("mxp", "eu-dcc-milan-2"), ("nja", "ap-chiyoda-1"), ("nrq", "eu-turin-1"),
    ("nrt", "ap-tokyo-1"), ("onm", "ap-delhi-1"), ("ord", "us-chicago-1"), ("orf", "eu-madrid-3"),
    ("ork", "eu-dcc-dublin-1"), ("pgc", "us-newark-1"), ("phx", "us-phoenix-1"), ("pia", "us-gov-chicago-1"),
    ("qro", "mx-queretaro-1"), ("rba", "me-alain-1"), ("ric", "us-gov-ashburn-1"), ("rkt", "me-abudhabi-2"),
    ("ruh", "me-riyadh-1"), ("scl", "sa-santiago-1"), ("shj", "me-abudhabi-4"), ("sin", "ap-singapore-1"),
    ("sjc", "us-sanjose-1"), ("snn", "eu-dcc-dublin-2"), ("str", "eu-frankfurt-2"), ("syd", "ap-sydney-1"),
    ("tus", "us-gov-phoenix-1"), ("ukb", "ap-ibaraki-1"), ("vap", "sa-valparaiso-1"), ("vcp", "sa-vinhedo-1"),
    ("vll", "eu-madrid-2"), ("vve", "me-alrayyan-1"), ("wga", "ap-dcc-canberra-1"), ("xsp", "ap-singapore-2"),
    ("yny", "ap-chuncheon-1"), ("yul", "ca-montreal-1"), ("yxj", "us-ashburn-2"), ("yyz", "ca-toronto-1"),
    ("zrh", "eu-zurich-1"),
];

/// The realm's second-level domain (protocol.md §3.3), for a realm key such as `oc1`.
pub fn realm_domain(realm: &str) -> Option<String> {
    let realm = realm.to_ascii_lowercase();
    let n: u32 = realm.strip_prefix("oc")?.parse().ok()?;
    Some(match n {
        1 => "oraclecloud.com".into(),
        2 | 3 => "oraclegovcloud.com".into(),
        4 => "oraclegovcloud.uk".into(),
        19 => "oraclecloud.eu".into(),
        n if n >= 8 => format!("oraclecloud{n}.com"),
        _ => return None,
    })
}

/// The region a short code names (`iad` → `us-ashburn-1`); other input is returned lowercased.
pub fn canonical_region(region: &str) -> String {
    let region = region.trim().to_ascii_lowercase();
    REGION_SHORT_NAMES.iter().find(|(short, _)| *short == region).map_or(region, |(_, long)| (*long).to_owned())
}

/// The realm of a region identifier (or short code); `oc1` for regions the SDK does not place
/// elsewhere (the SDK's default too, when no region metadata says otherwise). A new region of
/// another realm needs `auth_endpoint` / `WOCI_AUTH_ENDPOINT`.
pub fn realm_for_region(region: &str) -> &'static str {
    let region = canonical_region(region);
    REGION_REALMS.iter().find(|(r, _)| *r == region).map_or("oc1", |(_, realm)| realm)
}

/// `https://auth.{region}.{realm domain}`, the OCI SDK's `endpoint_for("auth", region)`. Short
/// codes are expanded; a region containing `.` is taken as a full domain (`https://auth.{region}`),
/// as the SDK does.
pub fn auth_endpoint_for_region(region: &str) -> Result<Url> {
    let region = region.trim().to_ascii_lowercase();
    let valid = !region.is_empty()
        && !region.starts_with(['.', '-'])
        && region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid {
        return Err(Error::Config(format!("invalid region `{region}`: expected an identifier such as `us-ashburn-1`")));
    }
    let host = if region.contains('.') {
        format!("auth.{region}")
    } else {
        let region = canonical_region(&region);
        let domain = realm_domain(realm_for_region(&region)).unwrap_or_else(|| "oraclecloud.com".into());
        format!("auth.{region}.{domain}")
    };
    Url::parse(&format!("https://{host}")).map_err(|e| Error::Config(format!("invalid region `{region}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::http::HttpOptions;
    use crate::signer::tests::test_key;
    use crate::signer::SignatureHeader;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use http::HeaderMap;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn jwt(sub: &str) -> String {
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#);
        let c = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{sub}","exp":1700003600}}"#));
        format!("{h}.{c}.c2ln")
    }

    /// A received request: method, target, headers, body.
    struct Received {
        method: Method,
        target: String,
        headers: HeaderMap,
        body: Vec<u8>,
    }

    /// Answers one request per canned response, in order, then stops; returns what it received.
    async fn canned_server(answers: Vec<(u16, String)>) -> (Url, tokio::task::JoinHandle<Vec<Received>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/base/", listener.local_addr().unwrap())).unwrap();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            for (status, body) in answers {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = s.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
                let mut lines = head.split("\r\n");
                let mut first = lines.next().unwrap().split(' ');
                let method: Method = first.next().unwrap().parse().unwrap();
                let target = first.next().unwrap().to_owned();
                let mut headers = HeaderMap::new();
                for line in lines.filter(|l| !l.is_empty()) {
                    let (k, v) = line.split_once(':').unwrap();
                    headers
                        .append(http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(), v.trim().parse().unwrap());
                }
                let len: usize =
                    headers.get("content-length").map(|v| v.to_str().unwrap().parse().unwrap()).unwrap_or(0);
                while buf.len() < head_end + len {
                    let n = s.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let reason = if status == 200 { "OK" } else { "X" };
                let resp = format!(
                    "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(resp.as_bytes()).await.unwrap();
                seen.push(Received { method, target, headers, body: buf[head_end..head_end + len].to_vec() });
            }
            seen
        });
        (url, task)
    }

    fn http() -> Http {
        Http::new(HttpOptions { attempts: 2, backoff: Duration::from_millis(1), ..Default::default() }).unwrap()
    }

    #[tokio::test]
    async fn refresh_sends_a_verifiable_session_signature_and_returns_the_new_token() {
        let new = jwt("new");
        let (url, server) = canned_server(vec![(200, format!(r#"{{"token":"{new}"}}"#))]).await;
        let current = SecretString::new(jwt("old"));
        let got = refresh_session(&http(), &url, &current, test_key(), &ManualClock::at(1_700_000_000)).await.unwrap();
        assert_eq!(got.expose(), &new);

        let seen = server.await.unwrap();
        let r = &seen[0];
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.target, "/base/v1/authentication/refresh");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body, serde_json::json!({ "currentToken": current.expose() }));
        let sig = SignatureHeader::parse(r.headers["authorization"].to_str().unwrap()).unwrap();
        assert_eq!(sig.key_id(), format!("ST${}", current.expose()));
        assert_eq!(
            sig.param("headers"),
            Some("date (request-target) host content-length content-type x-content-sha256")
        );
        assert_eq!(r.headers["date"], "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(r.headers["host"], url.host_str().unwrap().to_owned() + ":" + &url.port().unwrap().to_string());
        let text = signer::signing_string(&r.method, &r.target, &r.headers, &sig.headers()).unwrap();
        assert!(signer::verify(test_key().public(), &text, sig.signature()), "signature must verify");
        // The digest covers exactly the body that was sent.
        let mut tampered = r.headers.clone();
        tampered.insert("x-content-sha256", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".parse().unwrap());
        let text = signer::signing_string(&r.method, &r.target, &tampered, &sig.headers()).unwrap();
        assert!(!signer::verify(test_key().public(), &text, sig.signature()));
    }

    #[tokio::test]
    async fn answers_are_classified() {
        let current = SecretString::new(jwt("old"));
        let clock = ManualClock::at(1_700_000_000);
        let cases: Vec<(u16, &str, u8, &str)> = vec![
            (
                401,
                r#"{"code":"NotAuthenticated","message":"x"}"#,
                crate::error::exit::SESSION_EXPIRED,
                "session authenticate",
            ),
            (
                400,
                r#"{"code":"InvalidParameter","message":"bad"}"#,
                crate::error::exit::NETWORK,
                "HTTP 400 (InvalidParameter: bad)",
            ),
            (404, "<html>not json</html>", crate::error::exit::NETWORK, "HTTP 404"),
            (200, r#"{"nope":1}"#, crate::error::exit::NETWORK, "no `token`"),
            (200, r#"{"token":"not a jwt"}"#, crate::error::exit::NETWORK, "not a JWT"),
            (200, "garbage", crate::error::exit::NETWORK, "not JSON"),
        ];
        for (status, body, code, needle) in cases {
            let (url, _server) = canned_server(vec![(status, body.to_owned())]).await;
            let err = refresh_session(&http(), &url, &current, test_key(), &clock).await.unwrap_err();
            assert_eq!(err.exit_code(), code, "{status} {body}: {err}");
            let msg = err.to_string();
            assert!(msg.contains(needle), "{msg}");
            assert!(!msg.contains(current.expose()), "the token must not appear in errors");
            assert!(!msg.contains("<html>"), "unknown bodies are not quoted");
        }
    }

    #[tokio::test]
    async fn server_errors_are_retried_then_network() {
        let new = jwt("new");
        let (url, server) = canned_server(vec![(503, "{}".into()), (200, format!(r#"{{"token":"{new}"}}"#))]).await;
        let got = refresh_session(&http(), &url, &"t".into(), test_key(), &ManualClock::at(1)).await.unwrap();
        assert_eq!(got.expose(), &new);
        assert_eq!(server.await.unwrap().len(), 2);

        let (url, _server) = canned_server(vec![(503, "{}".into()), (502, "{}".into())]).await;
        let err = refresh_session(&http(), &url, &"t".into(), test_key(), &ManualClock::at(1)).await.unwrap_err();
        assert!(matches!(err, Error::Network { .. }), "{err}");
    }

    #[test]
    fn auth_endpoints_per_realm() {
        let cases = [
            ("us-ashburn-1", "https://auth.us-ashburn-1.oraclecloud.com/"),
            ("US-Phoenix-1", "https://auth.us-phoenix-1.oraclecloud.com/"),
            ("us-langley-1", "https://auth.us-langley-1.oraclegovcloud.com/"),
            ("us-luke-1", "https://auth.us-luke-1.oraclegovcloud.com/"),
            ("us-gov-ashburn-1", "https://auth.us-gov-ashburn-1.oraclegovcloud.com/"),
            ("uk-gov-london-1", "https://auth.uk-gov-london-1.oraclegovcloud.uk/"),
            ("ap-chiyoda-1", "https://auth.ap-chiyoda-1.oraclecloud8.com/"),
            ("ap-ibaraki-1", "https://auth.ap-ibaraki-1.oraclecloud8.com/"),
            ("my-region.example.com", "https://auth.my-region.example.com/"),
        ];
        for (region, want) in cases {
            assert_eq!(auth_endpoint_for_region(region).unwrap().as_str(), want, "{region}");
        }
        for (region, want) in [
            ("iad", "https://auth.us-ashburn-1.oraclecloud.com/"),
            ("us-gov-chicago-1", "https://auth.us-gov-chicago-1.oraclegovcloud.com/"),
            ("eu-frankfurt-2", "https://auth.eu-frankfurt-2.oraclecloud.eu/"),
            ("eu-frankfurt-1", "https://auth.eu-frankfurt-1.oraclecloud.com/"),
            ("me-ibri-1", "https://auth.me-ibri-1.oraclecloud9.com/"),
            ("ap-dcc-canberra-1", "https://auth.ap-dcc-canberra-1.oraclecloud10.com/"),
            ("us-ashburn-2", "https://auth.us-ashburn-2.oraclecloud42.com/"),
            ("some-new-region-1", "https://auth.some-new-region-1.oraclecloud.com/"),
        ] {
            assert_eq!(auth_endpoint_for_region(region).unwrap().as_str(), want, "{region}");
        }
        // Every realm the table names has a domain.
        for (region, realm) in REGION_REALMS {
            assert!(realm_domain(realm).is_some(), "{region} {realm}");
        }
        for (_, region) in REGION_SHORT_NAMES {
            assert!(!region.contains(|c: char| c.is_ascii_uppercase()), "{region}");
        }
        assert!(auth_endpoint_for_region("").is_err());
        assert!(auth_endpoint_for_region(".evil").is_err());
        assert!(auth_endpoint_for_region("a/b").is_err());
        assert!(auth_endpoint_for_region("us ashburn").is_err());
        assert_eq!(realm_domain("oc10").as_deref(), Some("oraclecloud10.com"));
        assert_eq!(realm_domain("oc19").as_deref(), Some("oraclecloud.eu"));
        assert_eq!(realm_domain("oc3").as_deref(), Some("oraclegovcloud.com"));
        assert_eq!(realm_domain("oc5"), None);
        assert_eq!(realm_domain("x1"), None);
    }

    #[test]
    fn refresh_url_appends_to_any_base_path() {
        for (base, want) in [
            ("https://auth.x.example", "https://auth.x.example/v1/authentication/refresh"),
            ("https://auth.x.example/", "https://auth.x.example/v1/authentication/refresh"),
            ("http://127.0.0.1:9/oci/?q=1", "http://127.0.0.1:9/oci/v1/authentication/refresh"),
        ] {
            assert_eq!(refresh_url(&Url::parse(base).unwrap()).unwrap().as_str(), want);
        }
        assert!(refresh_url(&Url::parse("mailto:x@y").unwrap()).is_err());
    }
}
