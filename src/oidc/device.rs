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

use super::{token_request, IdpConfig, IdpTokens, LoginOptions};
use crate::error::{Error, Result};
use crate::http::{Http, Retry};
use crate::settings::DeviceConfig;
use crate::token_endpoint::{self, Endpoint};
use http::header::{HeaderMap, HeaderValue, ACCEPT};
use serde::Deserialize;
use std::time::Duration;
use url::Url;

/// RFC 8628 §3.4 grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Poll interval when the server names none (RFC 8628 §3.2).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Added to the interval at each `slow_down` (RFC 8628 §3.5).
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
/// How long past `expires_in` woci keeps polling.
const EXPIRY_GRACE: Duration = Duration::from_secs(2);

#[derive(Deserialize)]
struct Authorization {
    device_code: String,
    user_code: String,
    #[serde(alias = "verification_url")]
    verification_uri: String,
    #[serde(default)]
    verification_uri_complete: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    interval: Option<u64>,
}

/// The device login: authorization request, instructions on stderr, polling until tokens.
pub async fn login(http: &Http, cfg: &IdpConfig, dev: &DeviceConfig, opts: &LoginOptions) -> Result<IdpTokens> {
    if !opts.interactive {
        return Err(Error::Login(format!(
            "interactive login required for profile `{}` but no terminal is attached; run `woci session authenticate --device-code --profile {}` in a terminal",
            opts.profile, opts.profile
        )));
    }
    let endpoint = match &dev.authorization_url {
        Some(u) => u.clone(),
        None => discover(http, &cfg.token_url).await?,
    };
    let auth = start(http, cfg, &endpoint).await?;
    let secs = opts.timeout.as_secs().max(1);
    eprintln!(
        "woci: login required for profile `{}`; on any device, open\n\n  {}\n\nand enter the code  {}\n",
        opts.profile, auth.verification_uri, auth.user_code
    );
    if let Some(complete) = &auth.verification_uri_complete {
        eprintln!("  (or open {complete} , which carries the code)\n");
    }
    // A configured `BROWSER` (or the embedding hook) may open the page here; no platform default,
    // since the point of this flow is that no browser runs on this machine.
    let page = auth.verification_uri_complete.as_deref().unwrap_or(&auth.verification_uri);
    if let Ok(url) = Url::parse(page) {
        if let Some(hook) = &opts.on_url {
            hook(&url);
        } else if let (true, Some(cmd)) = (opts.open_browser, opts.browser_command.as_deref()) {
            if let Err(reason) = super::browser::launch(Some(cmd), &url) {
                tracing::warn!("cannot open a browser ({reason}); open the URL above by hand");
            }
        }
    }
    // One poll after the code's end, so the IdP's `expired_token` is what the user reads.
    let limit = match auth.expires_in {
        Some(e) => opts.timeout.min(Duration::from_secs(e.max(1)) + EXPIRY_GRACE),
        None => opts.timeout,
    };
    eprintln!("woci: waiting up to {}s for the login to complete (login timeout {secs}s)", limit.as_secs().max(1));
    let interval = auth.interval.map_or(DEFAULT_INTERVAL, Duration::from_secs);
    let tokens = poll(http, cfg, &auth.device_code, interval, limit, &opts.profile).await?;
    if tokens.refresh_token.is_none() {
        return Err(Error::Config(format!(
            "the identity provider issued no refresh token for profile `{}`; add `offline_access` to `scope` and allow the refresh token grant for client `{}`",
            opts.profile, cfg.client_id
        )));
    }
    Ok(tokens)
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

/// Polls the token endpoint until tokens, a final error, or `limit`.
async fn poll(
    http: &Http,
    cfg: &IdpConfig,
    device_code: &str,
    mut interval: Duration,
    limit: Duration,
    profile: &str,
) -> Result<IdpTokens> {
    let deadline = tokio::time::Instant::now() + limit;
    let form = [("grant_type", GRANT_TYPE), ("device_code", device_code), ("client_id", cfg.client_id.as_str())];
    loop {
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Login(format!(
                "no login completed within {}s; run `woci session authenticate --device-code --profile {profile}` to try again",
                limit.as_secs().max(1)
            )));
        }
        // The last poll happens at the deadline, never after it.
        tokio::time::sleep_until((tokio::time::Instant::now() + interval).min(deadline)).await;
        // A device code is not spent by a poll that got no answer: ordinary retries.
        match token_request(http, cfg, "device code", &form, Retry::Idempotent).await {
            Ok(t) => return Ok(t),
            Err(Error::IdpRejected { error, .. }) if error == "authorization_pending" => {}
            Err(Error::IdpRejected { error, .. }) if error == "slow_down" => {
                interval += SLOW_DOWN_STEP;
                tracing::debug!(interval_s = interval.as_secs(), "the identity provider asked to poll more slowly");
            }
            Err(Error::IdpRejected { error, .. }) if error == "access_denied" => {
                return Err(Error::Login(format!(
                    "the login for profile `{profile}` was denied at the identity provider"
                )));
            }
            Err(Error::IdpRejected { error, .. }) if error == "expired_token" => {
                return Err(Error::Login(format!(
                    "the device code expired before the login completed; run `woci session authenticate --device-code --profile {profile}` to try again"
                )));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Candidate discovery documents for a token URL, most specific first.
pub fn discovery_candidates(token_url: &Url) -> Vec<Url> {
    let segments: Vec<&str> = token_url.path().split('/').filter(|s| !s.is_empty()).collect();
    let mut out = Vec::new();
    for keep in (0..segments.len()).rev() {
        let prefix: String = segments[..keep].iter().map(|s| format!("/{s}")).collect();
        let mut u = token_url.clone();
        u.set_query(None);
        u.set_fragment(None);
        u.set_path(&format!("{prefix}/.well-known/openid-configuration"));
        out.push(u);
    }
    out
}

/// Finds `device_authorization_endpoint` in the IdP's discovery document.
async fn discover(http: &Http, token_url: &Url) -> Result<Url> {
    #[derive(Deserialize)]
    struct Doc {
        device_authorization_endpoint: Option<String>,
    }
    for candidate in discovery_candidates(token_url) {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let Ok(resp) = http.get("identity provider", &candidate, headers).await else { continue };
        if !(200..300).contains(&resp.status) {
            continue;
        }
        let Ok(doc) = serde_json::from_slice::<Doc>(&resp.body) else { continue };
        if let Some(u) = doc.device_authorization_endpoint.and_then(|u| Url::parse(&u).ok()) {
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
