//! OKE token review: what an OKE cluster's API server does with the bearer token kubectl got
//! from `oci ce cluster generate-token` (oci-cli 3.95.1). `POST /oke/v1/tokenreviews` takes a
//! Kubernetes `TokenReview` (`spec.token`) and answers it as a webhook token authenticator does:
//! `200` with `status.authenticated` true (user = the UPST's `sub`) or false with the reason.
//!
//! The check: base64url-decode the token into
//! `https://containerengine.{region}.{domain}/cluster_request/{cluster}?authorization=…&date=…`,
//! rebuild the signed `GET` (`date` and `host` from the URL, `(request-target)` = the path), and
//! verify it as any OCI request ([`crate::signature::verify`]): the UPST in the keyId must be this
//! emulator's and unexpired, the signature must be by the key bound in it, and `date` within
//! `max_clock_skew` (5 min). An optional `?cluster=OCID` rejects tokens made for another cluster.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};
use std::time::Duration;

use crate::events::{Endpoint, EventInfo};
use crate::keys::SigningKeyPair;
use crate::req::Req;
use crate::respond::oci_json;
use crate::signature::{self, Rejection, SignedRequest};
use crate::state::State;
use crate::upst::Upst;

/// Path of the token review endpoint.
pub const TOKEN_REVIEW_PATH: &str = "/oke/v1/tokenreviews";

fn reject(reason: &'static str) -> Rejection {
    Rejection { reason, jti: None }
}

/// Checks an OKE token; `cluster`, when given, must be the cluster it was made for.
pub fn check_token(
    oci_key: &SigningKeyPair,
    token: &str,
    cluster: Option<&str>,
    max_skew: Duration,
) -> Result<Upst, Rejection> {
    let raw = URL_SAFE
        .decode(token.trim())
        .or_else(|_| URL_SAFE_NO_PAD.decode(token.trim()))
        .map_err(|_| reject("malformed_token"))?;
    let text = String::from_utf8(raw).map_err(|_| reject("malformed_token"))?;
    let url = url::Url::parse(&text).map_err(|_| reject("malformed_token"))?;
    let host = url.host_str().unwrap_or_default();
    let token_cluster = url.path().strip_prefix("/cluster_request/").unwrap_or_default();
    if url.scheme() != "https" || !host.starts_with("containerengine.") || token_cluster.is_empty() {
        return Err(reject("not_a_cluster_request"));
    }
    if cluster.is_some_and(|c| c != token_cluster) {
        return Err(reject("foreign_cluster"));
    }
    let mut authorization = None;
    let mut date = None;
    for (k, v) in url.query_pairs() {
        let slot = match k.as_ref() {
            "authorization" => &mut authorization,
            "date" => &mut date,
            _ => return Err(reject("unexpected_query_parameter")),
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(reject("malformed_token"));
        }
    }
    let (Some(authorization), Some(date)) = (authorization, date) else {
        return Err(reject("malformed_token"));
    };
    let host_header = match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let mut headers = HeaderMap::new();
    for (name, value) in [("authorization", authorization), ("date", date), ("host", host_header)] {
        headers.insert(name, HeaderValue::from_str(&value).map_err(|_| reject("malformed_token"))?);
    }
    let signed = SignedRequest { method: &Method::GET, target: url.path(), headers: &headers, body: &[] };
    signature::verify(&signed, oci_key, max_skew, false)
}

/// `POST /oke/v1/tokenreviews[?cluster=OCID]`.
pub fn review(state: &State, req: &Req) -> Response {
    const EP: Endpoint = Endpoint::OkeTokenReview;
    let mut info = EventInfo::new(EP);
    let token = serde_json::from_slice::<Value>(&req.body)
        .ok()
        .and_then(|v| v.pointer("/spec/token").and_then(Value::as_str).map(str::to_owned));
    let Some(token) = token else {
        info.reason = Some("no_token".into());
        state.recorder.count(|s| *s.oke_tokens_rejected.entry("no_token".into()).or_default() += 1);
        return oci_json(StatusCode::BAD_REQUEST, &json!({"error": "spec.token is required"}), info);
    };
    let cluster = req.query().get("cluster").cloned();
    let status = match check_token(&state.oci_key, &token, cluster.as_deref(), state.cfg.max_clock_skew) {
        Ok(upst) => {
            info.jti = Some(upst.jti.clone());
            state.recorder.count(|s| s.oke_tokens_accepted += 1);
            json!({"authenticated": true, "user": {"username": upst.sub, "uid": upst.sub, "extra": {"tenant": [upst.tenant]}}})
        }
        Err(rej) => {
            info.jti = rej.jti;
            info.reason = Some(rej.reason.into());
            state.recorder.count(|s| *s.oke_tokens_rejected.entry(rej.reason.into()).or_default() += 1);
            json!({"authenticated": false, "error": rej.reason})
        }
    };
    let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status});
    oci_json(StatusCode::OK, &body, info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{self, SigningKeyPair};
    use crate::upst;
    use rsa::pkcs1v15::SigningKey;
    use rsa::signature::{SignatureEncoding as _, Signer as _};
    use rsa::RsaPrivateKey;
    use sha2::Sha256;
    use std::sync::OnceLock;
    use std::time::SystemTime;

    const SKEW: Duration = Duration::from_secs(300);
    const CLUSTER: &str = "ocid1.cluster.oc1.iad.aaaa";

    fn keys() -> &'static (SigningKeyPair, RsaPrivateKey, RsaPrivateKey) {
        static K: OnceLock<(SigningKeyPair, RsaPrivateKey, RsaPrivateKey)> = OnceLock::new();
        K.get_or_init(|| {
            let (oci, client) = keys::cached_pair();
            // A third key: the "foreign" signer.
            (SigningKeyPair::new(oci, "oci"), client, keys::generate())
        })
    }

    fn upst_for(key: &RsaPrivateKey, ttl: i64) -> String {
        let now = crate::state::now_secs();
        upst::mint(
            &keys().0,
            "ocid1.user.oc1..u",
            "ocid1.tenancy.oc1..t",
            &upst::jwk_claim(&key.to_public_key()),
            now + ttl,
            &upst::format_sess_exp(now + 3600),
        )
    }

    /// A token built the way oci-cli builds it (independently of woci's code).
    fn token(upst: &str, signer: &RsaPrivateKey, date: SystemTime, cluster: &str) -> String {
        let host = "containerengine.us-ashburn-1.oraclecloud.com";
        let path = format!("/cluster_request/{cluster}");
        let date = httpdate::fmt_http_date(date);
        let string = format!("date: {date}\n(request-target): get {path}\nhost: {host}");
        let sig = SigningKey::<Sha256>::new(signer.clone()).sign(string.as_bytes());
        let auth = format!(
            "Signature algorithm=\"rsa-sha256\",headers=\"date (request-target) host\",keyId=\"ST${upst}\",signature=\"{}\",version=\"1\"",
            base64::engine::general_purpose::STANDARD.encode(sig.to_bytes())
        );
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("authorization", &auth)
            .append_pair("date", &date)
            .finish();
        URL_SAFE.encode(format!("https://{host}{path}?{query}"))
    }

    fn check(token: &str, cluster: Option<&str>) -> Result<String, &'static str> {
        check_token(&keys().0, token, cluster, SKEW).map(|u| u.sub).map_err(|r| r.reason)
    }

    #[test]
    fn accepts_a_token_signed_with_the_bound_key() {
        let (_, client, _) = keys();
        let t = token(&upst_for(client, 600), client, SystemTime::now(), CLUSTER);
        assert_eq!(check(&t, None), Ok("ocid1.user.oc1..u".into()));
        assert_eq!(check(&t, Some(CLUSTER)), Ok("ocid1.user.oc1..u".into()));
        assert_eq!(check(t.trim_end_matches('='), None), Ok("ocid1.user.oc1..u".into()));
    }

    #[test]
    fn rejects_expired_foreign_and_tampered_tokens() {
        let (_, client, foreign) = keys();
        let now = SystemTime::now();
        let upst = upst_for(client, 600);
        // 302 s, not 301: the `date` has whole seconds, and a second may turn between `now` and
        // the check (floor(now + 301) is then only 300 s past the checker's clock).
        assert_eq!(check(&token(&upst, client, now - Duration::from_secs(302), CLUSTER), None), Err("stale_date"));
        assert_eq!(check(&token(&upst, client, now + Duration::from_secs(302), CLUSTER), None), Err("stale_date"));
        assert_eq!(check(&token(&upst_for(client, -1), client, now, CLUSTER), None), Err("upst_expired"));
        assert_eq!(check(&token(&upst, foreign, now, CLUSTER), None), Err("bad_signature"));
        assert_eq!(check(&token(&upst, client, now, CLUSTER), Some("ocid1.cluster.other")), Err("foreign_cluster"));
        // A UPST this emulator did not sign.
        let alien = SigningKeyPair::new(foreign.clone(), "alien");
        let now_s = crate::state::now_secs();
        let alien_upst = upst::mint(
            &alien,
            "u",
            "t",
            &upst::jwk_claim(&client.to_public_key()),
            now_s + 600,
            &upst::format_sess_exp(now_s + 3600),
        );
        assert_eq!(check(&token(&alien_upst, client, now, CLUSTER), None), Err("upst_bad_signature"));
        // Tampering with the URL: another cluster path than the one signed.
        let good = String::from_utf8(URL_SAFE.decode(token(&upst, client, now, CLUSTER)).unwrap()).unwrap();
        let moved = URL_SAFE.encode(good.replace(CLUSTER, "ocid1.cluster.oc1.iad.bbbb"));
        assert_eq!(check(&moved, None), Err("bad_signature"));
        assert_eq!(check("not base64!", None), Err("malformed_token"));
        assert_eq!(check(&URL_SAFE.encode("https://example.com/x"), None), Err("not_a_cluster_request"));
        assert_eq!(
            check(&URL_SAFE.encode(good.replace("&date=", "&x=1&date=")), None),
            Err("unexpected_query_parameter")
        );
        let no_date = good.split("&date=").next().unwrap().to_owned();
        assert_eq!(check(&URL_SAFE.encode(no_date), None), Err("malformed_token"));
    }
}
