//! Device-code login (RFC 8628) for hosts where no browser can reach a loopback port: SSH
//! sessions, jump boxes, containers.
//!
//! Chosen by `login_flow = device` (INI) or `--device-code`, and automatically when a terminal is
//! attached but no browser can be opened here (decided with the settings). woci asks the device
//! authorization endpoint (`device_authorization_url`, else discovered: the token URL with its path
//! cut back one segment at a time, each tried as `<prefix>/.well-known/openid-configuration`, the
//! first document naming a `device_authorization_endpoint` wins), prints the verification URI and
//! the user code on stderr, and polls the token endpoint honouring `interval`, `slow_down` (+5 s),
//! `authorization_pending`, `access_denied` and `expired_token`, bounded by the login timeout and
//! the code's `expires_in`. The tokens then follow the normal path (refresh token stored, exchange).
//!
//! The IdP's answer is not trusted further than needed: every URL (the configured or discovered
//! endpoint, which gets the client secret, and the verification URIs, which are shown and may be
//! opened) must pass [`crate::settings::parse_url`] (https, or http to loopback); the user code is
//! printed through [`crate::token_endpoint::scrub`]; `interval` is held to 1–60 s (5 s when
//! absent), a `slow_down` adds 5 s up to that bound, and the wait ends at the login timeout or
//! `expires_in` (at most 30 min), whichever comes first. No server number reaches arithmetic
//! unbounded.

use super::{token_request, IdpConfig, IdpTokens, LoginOptions};
use crate::error::{Error, Result};
use crate::http::{Http, Retry};
use crate::settings::DeviceConfig;
use crate::terminal::tell;
use crate::token_endpoint::{self, Endpoint};
use http::header::HeaderMap;
use serde::Deserialize;
use std::time::Duration;
use url::Url;

/// The option of `woci session authenticate` that chooses this flow, for the messages.
const FLAG: &str = " --device-code";

/// RFC 8628 §3.4 grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Poll interval when the server names none (RFC 8628 §3.2).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Added to the interval at each `slow_down` (RFC 8628 §3.5).
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// How long past `expires_in` woci keeps polling.
const EXPIRY_GRACE: Duration = Duration::from_secs(2);
/// Bounds of the poll interval, whatever the IdP says: no busy loop at `interval: 0`, no
/// hour-long sleep at `u64::MAX`.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// The longest a device code is waited for (IdPs give 5–30 min; RFC 8628's example is 30 min).
const MAX_CODE_LIFETIME: Duration = Duration::from_secs(30 * 60);

#[derive(Deserialize)]
struct Authorization {
    device_code: String,
    user_code: String,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    verification_uri_complete: Option<String>,
    #[serde(default, deserialize_with = "seconds")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    interval: Option<u64>,
}

/// A number of seconds as IdPs send it: an integer (any size), a float, or a numeric string.
/// Negative numbers are 0; anything else counts as absent. The bounds come later.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

/// The poll interval: the IdP's, held to [`MIN_INTERVAL`]..=[`MAX_INTERVAL`]; 5 s when absent.
fn poll_interval(interval: Option<u64>) -> Duration {
    interval.map_or(DEFAULT_INTERVAL, |s| Duration::from_secs(s).clamp(MIN_INTERVAL, MAX_INTERVAL))
}

/// The interval after a `slow_down`: 5 s more, still at most [`MAX_INTERVAL`].
fn slowed_down(interval: Duration) -> Duration {
    interval.saturating_add(SLOW_DOWN_STEP).min(MAX_INTERVAL)
}

/// How long to poll: the login timeout, or until the code expires (`expires_in` held to 1 s–30 min,
/// plus one poll after, so the IdP's `expired_token` is what the user reads), whichever comes
/// first; 30 min when the IdP names no `expires_in`.
fn wait_limit(expires_in: Option<u64>, login_timeout: Duration) -> Duration {
    let code = expires_in.map_or(MAX_CODE_LIFETIME, |s| {
        Duration::from_secs(s).clamp(Duration::from_secs(1), MAX_CODE_LIFETIME) + EXPIRY_GRACE
    });
    login_timeout.min(code)
}

/// A verification URI from the IdP, held to [`crate::settings::parse_url`]'s rule before it is
/// shown as a link or given to `BROWSER` (no `javascript:`, `file:` or clear-text `http:`).
fn verification_url(field: &str, value: &str) -> Result<Url> {
    // Typed or opened by a person: a page address, not a payload (RFC 8628 §3.3.1 wants it short).
    if value.len() > MAX_URI_LEN {
        return Err(Error::Protocol {
            service: super::SERVICE,
            reason: format!(
                "the device authorization answer's `{field}` is {} bytes long, over the {MAX_URI_LEN} woci shows or \
                 opens: check the identity provider's device flow settings",
                value.len()
            ),
        });
    }
    crate::settings::parse_url(value, field).map_err(|_| Error::Protocol {
        service: super::SERVICE,
        reason: format!(
            "the device authorization answer's `{field}` is `{}`, which is not an https:// URL (http:// only to 127.0.0.1, ::1 or localhost); woci does not open it or offer it as the page to visit: check the identity provider's device flow settings",
            token_endpoint::scrub(value, &[])
        ),
    })
}

/// The longest verification URI shown or opened (browsers take about this much).
const MAX_URI_LEN: usize = 2048;

/// The longest user code shown (RFC 8628 §6.1 has them about 8 characters, for typing).
const MAX_USER_CODE_LEN: usize = 64;

/// The device login: authorization request, instructions on stderr, polling until tokens.
pub async fn login(http: &Http, cfg: &IdpConfig, dev: &DeviceConfig, opts: &LoginOptions) -> Result<IdpTokens> {
    opts.require_interactive(FLAG)?;
    // The whole login, its first requests too, keeps to the login timeout.
    let started = async {
        let endpoint = match &dev.authorization_url {
            Some(u) => u.clone(),
            None => discover(http, &cfg.token_url).await?,
        };
        start(http, cfg, &endpoint).await
    };
    let Ok(auth) = tokio::time::timeout(opts.timeout + POLL_GRACE, started).await else {
        return Err(opts.timed_out(FLAG, opts.timeout));
    };
    let auth = auth?;
    // Both URIs are checked before either is shown or opened, and the code is one a person can type.
    let typed = auth.user_code.chars().count();
    if auth.user_code.trim().is_empty() || typed > MAX_USER_CODE_LEN {
        let what = match typed {
            0 => "empty".to_owned(),
            n if n <= MAX_USER_CODE_LEN => "blank".to_owned(),
            n => format!("{n} characters long"),
        };
        return Err(Error::Protocol {
            service: super::SERVICE,
            reason: format!(
                "the device authorization answer's `user_code` is {what}, not the 1 to {MAX_USER_CODE_LEN} \
                 characters a person can type: check the identity provider's device flow settings"
            ),
        });
    }
    let page = verification_url("verification_uri", &auth.verification_uri)?;
    let complete = auth
        .verification_uri_complete
        .as_deref()
        .map(|u| verification_url("verification_uri_complete", u))
        .transpose()?;
    // A parsed URL prints as ASCII (controls percent-encoded); the code is the IdP's own text.
    tell(&format!(
        "woci: login required for profile `{}`; on any device, open\n\n  {page}\n\nand enter the code  {}\n",
        opts.profile,
        token_endpoint::scrub(&auth.user_code, &[])
    ));
    if let Some(complete) = &complete {
        tell(&format!("  (or open {complete} , which carries the code)\n"));
    }
    // A configured `BROWSER` (or the embedding hook) may open the page here; no platform default,
    // since the point of this flow is that no browser runs on this machine.
    opts.open(complete.as_ref().unwrap_or(&page), false);
    let limit = wait_limit(auth.expires_in, opts.timeout);
    // The code's own life may be the shorter bound.
    let (limit_s, timeout_s) = (limit.as_secs().max(1), opts.timeout.as_secs().max(1));
    let bound =
        if limit_s < timeout_s { format!(" (the code's life; login timeout {timeout_s}s)") } else { String::new() };
    tell(&format!("woci: waiting up to {limit_s}s for the login to complete{bound}"));
    let tokens = poll(http, cfg, &auth.device_code, poll_interval(auth.interval), limit, opts).await?;
    opts.require_refresh_token(cfg, tokens)
}

async fn start(http: &Http, cfg: &IdpConfig, endpoint: &Url) -> Result<Authorization> {
    let scope = cfg.scopes.join(" ");
    let form = [("client_id", cfg.client_id.as_str()), ("scope", scope.as_str())];
    let client = token_endpoint::Client { id: &cfg.client_id, secret: cfg.client_secret.as_ref() };
    // Nothing is spent by asking for a device code: ordinary retries.
    let body =
        token_endpoint::post(http, Endpoint::DeviceAuthorization, endpoint, client, &form, Retry::Idempotent).await?;
    token_endpoint::parse_json(Endpoint::DeviceAuthorization, &body)
}

/// How long the last poll's answer may come after the login's deadline.
const POLL_GRACE: Duration = Duration::from_secs(5);

/// Polls the token endpoint until tokens, a final error, or `limit`.
async fn poll(
    http: &Http,
    cfg: &IdpConfig,
    device_code: &str,
    mut interval: Duration,
    limit: Duration,
    opts: &LoginOptions,
) -> Result<IdpTokens> {
    let deadline = tokio::time::Instant::now() + limit;
    let form = [("grant_type", GRANT_TYPE), ("device_code", device_code), ("client_id", cfg.client_id.as_str())];
    let mut told = false;
    loop {
        if tokio::time::Instant::now() >= deadline {
            return Err(opts.timed_out(FLAG, limit));
        }
        // The last poll happens at the deadline, never after it.
        tokio::time::sleep_until((tokio::time::Instant::now() + interval).min(deadline)).await;
        // One attempt a poll: after a failure the next comes later, not sooner (RFC 8628 §3.5).
        // Nor does a poll an unanswering IdP holds run far past the deadline.
        let polled = token_request(http, cfg, "device code", &form, Retry::Once);
        let Ok(result) = tokio::time::timeout_at(deadline + POLL_GRACE, polled).await else {
            return Err(opts.timed_out(FLAG, limit));
        };
        let (profile, sel) = (&opts.profile, &opts.selection);
        // A poll the IdP did not answer (an outage, a dropped connection) leaves the code valid:
        // the person may be half-way through approving it, so polling goes on to the deadline.
        // It slows down then: twice the interval, as RFC 8628 §3.5 recommends (a review of round 105).
        if let Some(e) = result.as_ref().err().filter(|e| e.is_transient()) {
            if !std::mem::replace(&mut told, true) {
                tracing::warn!("the identity provider did not answer a login poll ({e}); polling on until the login completes or times out");
            }
            interval = interval.saturating_mul(2).min(MAX_INTERVAL);
            continue;
        }
        let rejection = match &result {
            Err(Error::IdpRejected { error, .. }) => error.as_str(),
            _ => "",
        };
        match rejection {
            "authorization_pending" => {}
            "slow_down" => {
                interval = slowed_down(interval);
                tracing::debug!(interval_s = interval.as_secs(), "the identity provider asked to poll more slowly");
            }
            "access_denied" => {
                return Err(Error::Login(format!(
                    "the login for profile `{profile}` was denied at the identity provider; run `woci session authenticate{FLAG} {sel}` to try again"
                )))
            }
            "expired_token" => {
                return Err(Error::Login(format!(
                    "the device code expired before the login completed; run `woci session authenticate{FLAG} {sel}` to try again"
                )))
            }
            _ => return result,
        }
    }
}

/// Candidate discovery documents for a token URL, most specific first.
pub fn discovery_candidates(token_url: &Url) -> Vec<Url> {
    let segments: Vec<&str> = token_url.path().split('/').filter(|s| !s.is_empty()).collect();
    let candidate = |keep: usize| {
        let prefix: String = segments[..keep].iter().map(|s| format!("/{s}")).collect();
        let mut u = token_url.clone();
        u.set_query(None);
        u.set_fragment(None);
        u.set_path(&format!("{prefix}/.well-known/openid-configuration"));
        u
    };
    (0..segments.len()).rev().map(candidate).collect()
}

/// Finds `device_authorization_endpoint` in the IdP's discovery document.
async fn discover(http: &Http, token_url: &Url) -> Result<Url> {
    #[derive(Deserialize)]
    struct Doc {
        device_authorization_endpoint: Option<String>,
    }
    for candidate in discovery_candidates(token_url) {
        // Every candidate is on the same host: one that cannot be reached ends the search (the
        // wait stays one request's bound, not one per candidate).
        let resp = http.get_json(super::SERVICE, &candidate, HeaderMap::new()).await?;
        if !(200..300).contains(&resp.status) {
            continue;
        }
        let Ok(doc) = serde_json::from_slice::<Doc>(&resp.body) else { continue };
        if let Some(raw) = doc.device_authorization_endpoint {
            // The client secret goes there: the rule of every URL woci sends a secret to.
            let u = crate::settings::parse_url(&raw, "device_authorization_endpoint").map_err(|_| Error::Protocol {
                service: super::SERVICE,
                reason: format!(
                    "the discovery document `{}` names `device_authorization_endpoint` `{}`, which is not an https:// URL (http:// only to 127.0.0.1, ::1 or localhost); set `device_authorization_url` in the manager config",
                    crate::http::redact_url(&candidate),
                    token_endpoint::scrub(&raw, &[])
                ),
            })?;
            tracing::debug!(discovery = %candidate, endpoint = %u, "found the device authorization endpoint");
            return Ok(u);
        }
    }
    Err(Error::Config(format!(
        "cannot find the identity provider's device authorization endpoint from `token_url` (`{}`); set `device_authorization_url` in the manager config",
        crate::http::redact_url(token_url)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_idp_ends_discovery_at_the_first_candidate() {
        use crate::http::fake::{options, FakeTransport};
        let t = FakeTransport::new(|_, _| Err(crate::http::Failure::NotSent("connection refused".into())));
        let http = Http::with_transport(t.clone(), options());
        let token_url = Url::parse("https://idcs-1.identity.oraclecloud.com/oauth2/v1/token").unwrap();
        let e = discover(&http, &token_url).await.unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::NETWORK, "{e}");
        let urls: std::collections::HashSet<_> = t.seen().iter().map(|s| s.url.to_string()).collect();
        assert_eq!(urls.len(), 1, "one candidate, not every one: {urls:?}");
    }

    #[test]
    fn the_idps_numbers_are_clamped() {
        let s = Duration::from_secs;
        assert_eq!(poll_interval(None), s(5), "RFC 8628 default");
        assert_eq!(poll_interval(Some(0)), s(1), "no busy loop");
        assert_eq!(poll_interval(Some(7)), s(7));
        assert_eq!(poll_interval(Some(u64::MAX)), s(60));
        assert_eq!(slowed_down(s(5)), s(10));
        assert_eq!(slowed_down(s(58)), s(60));
        assert_eq!(slowed_down(Duration::MAX), s(60), "no overflow");
        let mut i = poll_interval(Some(1));
        for _ in 0..100 {
            i = slowed_down(i);
        }
        assert_eq!(i, s(60), "repeated slow_down stays bounded");
        assert_eq!(wait_limit(Some(u64::MAX), Duration::MAX), s(30 * 60 + 2), "no overflow, 30 min at most");
        assert_eq!(wait_limit(Some(600), s(300)), s(300), "the login timeout first");
        assert_eq!(wait_limit(Some(60), s(300)), s(62), "the code's end first, one poll after it");
        assert_eq!(wait_limit(Some(0), s(300)), s(3));
        assert_eq!(wait_limit(None, s(300)), s(300));
        assert_eq!(wait_limit(None, Duration::MAX), s(30 * 60));
    }

    #[test]
    fn numbers_of_any_json_shape_are_read() {
        let read = |extra: &str| -> Authorization {
            serde_json::from_str(&format!(
                r#"{{"device_code":"d","user_code":"u","verification_uri":"https://i/d"{extra}}}"#
            ))
            .unwrap()
        };
        let a = read(&format!(r#","interval":{},"expires_in":1e30"#, u64::MAX));
        assert_eq!((a.interval, a.expires_in), (Some(u64::MAX), Some(u64::MAX)));
        let a = read(r#","interval":-5,"expires_in":"600""#);
        assert_eq!((a.interval, a.expires_in), (Some(0), Some(600)));
        let a = read(r#","interval":null,"expires_in":[1]"#);
        assert_eq!((a.interval, a.expires_in), (None, None));
        let a = read("");
        assert_eq!(
            (poll_interval(a.interval), wait_limit(a.expires_in, Duration::from_secs(9))),
            (DEFAULT_INTERVAL, Duration::from_secs(9))
        );
    }

    #[test]
    fn verification_uris_must_be_https_or_loopback() {
        for ok in ["https://idp.example/device", "http://127.0.0.1:8080/device", "http://localhost/d?user_code=A"] {
            assert!(verification_url("verification_uri", ok).is_ok(), "{ok}");
        }
        for bad in
            ["javascript:alert(1)", "file:///etc/passwd", "http://idp.example/device", "data:text/html,x", "not a url"]
        {
            let e = verification_url("verification_uri_complete", bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::NETWORK, "{e}");
            let m = e.to_string();
            assert!(m.contains("`verification_uri_complete`") && m.contains("https://"), "{m}");
        }
        let long = format!("https://idp.example/{}", "A".repeat(300_000));
        let e = verification_url("verification_uri_complete", &long).unwrap_err().to_string();
        assert!(e.contains("300020 bytes long, over the 2048") && e.len() < 300, "{e}");
        let e = verification_url("verification_uri", "javascript:\u{1b}[2J").unwrap_err().to_string();
        assert!(!e.contains('\u{1b}'), "the IdP's value is quoted escaped: {e}");
        let url = verification_url("verification_uri", "https://idp.example/d?x=\u{1b}[2J\u{202e}").unwrap();
        assert!(url.as_str().is_ascii() && !url.as_str().chars().any(|c| c.is_ascii_control()), "{url}");
    }

    #[test]
    fn discovery_walks_up_the_token_path() {
        let got = |u: &str| -> Vec<String> {
            discovery_candidates(&Url::parse(u).unwrap()).iter().map(|u| u.to_string()).collect()
        };
        assert_eq!(
            got("https://idcs-1.identity.oraclecloud.com/oauth2/v1/token"),
            [
                "https://idcs-1.identity.oraclecloud.com/oauth2/v1/.well-known/openid-configuration",
                "https://idcs-1.identity.oraclecloud.com/oauth2/.well-known/openid-configuration",
                "https://idcs-1.identity.oraclecloud.com/.well-known/openid-configuration",
            ]
        );
        assert_eq!(got("http://127.0.0.1:3000/token"), ["http://127.0.0.1:3000/.well-known/openid-configuration"]);
        assert_eq!(
            got("https://kc/realms/r/protocol/openid-connect/token")[2],
            "https://kc/realms/r/.well-known/openid-configuration"
        );
    }
}
