//! Native `ce cluster generate-token`: the kubeconfig `exec` plugin of OKE clusters, answered
//! without starting Python (what oci-cli 3.95.1's `containerengine_cli_extended.py` does).
//!
//! The token is a pre-signed `GET https://containerengine.{region}.{realm domain}/cluster_request/{cluster}`:
//! the request is signed like any OCI GET (`date (request-target) host`, keyId `ST$<UPST>`), then
//! its `authorization` and `date` headers become query parameters (Python `urlencode`), and the
//! whole URL is base64url-encoded with padding. The ExecCredential printed is byte for byte the
//! text `oci` prints, with an expiry 4 minutes ahead.
//!
//! Only the exact command `oci ce cluster create-kubeconfig` writes (plus `--profile`,
//! `--config-file`, `--auth security_token`, `--region`) is recognized ([`recognize`]); anything
//! else — another auth type, `--from-json`, an option woci does not know, an environment variable
//! that changes the key or token `oci` would sign with — goes to the real `oci` unchanged.
//!
//! Where `oci` hardcodes `oraclecloud.com`, regions of other realms get their realm's domain.

use crate::clock::Clock;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::keys::KeyPair;
use crate::realm::region_domain;
use crate::renew::facts::OciProfile;
use crate::renew::Session;
use crate::secret::SecretString;
use crate::settings::Env;
use crate::signer::{self, HEADERS_NO_BODY, REQUEST_TARGET};
use base64::engine::general_purpose::STANDARD;
use base64::engine::general_purpose::URL_SAFE;
use base64::Engine;
use std::ffi::OsString;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long kubectl may cache the token (oci-cli's `timedelta(minutes=4)`).
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(240);

/// Variables with which `oci` would sign with another key or token than the profile's
/// (`cli_constants.OCI_CONFIG_ENV_VARS`); any of them set sends the command to `oci`.
const SIGNER_ENV: &[&str] = &[
    "OCI_CLI_KEY_FILE",
    "OCI_CLI_KEY_CONTENT",
    "OCI_CLI_PASSPHRASE",
    "OCI_CLI_SECURITY_TOKEN_FILE",
    "OCI_CLI_DELEGATION_TOKEN_FILE",
];

/// A recognized `ce cluster generate-token` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRequest {
    /// `--cluster-id`.
    pub cluster_id: String,
    /// `--region` from the command line (else `OCI_CLI_REGION`, else the profile's `region`).
    pub region: Option<String>,
}

/// Recognizes `ce cluster generate-token --cluster-id ID [--region R] [--profile P]
/// [--config-file F] [--auth security_token]` in any order, each as `--opt value` or
/// `--opt=value` (the last one wins, as with click). `None` for anything else.
pub(crate) fn recognize(args: &[OsString], env: &Env) -> Option<TokenRequest> {
    if SIGNER_ENV.iter().any(|k| env.get(*k).is_some_and(|v| !v.is_empty())) {
        return None;
    }
    let mut words = Vec::new();
    let mut cluster_id = None;
    let mut region = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let arg = arg.to_str()?;
        if !arg.starts_with('-') {
            words.push(arg);
            continue;
        }
        let (name, inline) = arg.split_once('=').map_or((arg, None), |(n, v)| (n, Some(v)));
        if !matches!(name, "--cluster-id" | "--region" | "--profile" | "--config-file" | "--auth") {
            return None;
        }
        let value = match inline {
            Some(v) => v,
            None => it.next()?.to_str()?,
        };
        match name {
            "--cluster-id" => cluster_id = Some(value),
            "--region" => region = Some(value),
            "--auth" if value != "security_token" => return None,
            _ => {}
        }
    }
    if words != ["ce", "cluster", "generate-token"] {
        return None;
    }
    // oci rejects an empty id with a usage error, and would percent-encode unusual characters in
    // the URL path: leave both to oci.
    let ocid_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_');
    let cluster_id = cluster_id.filter(|c| !c.is_empty() && c.bytes().all(ocid_byte))?;
    if region.is_some_and(|r| !valid_region(r)) {
        return None;
    }
    Some(TokenRequest { cluster_id: cluster_id.to_owned(), region: region.map(str::to_owned) })
}

fn valid_region(r: &str) -> bool {
    !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `https://containerengine.{region}.{realm domain}/cluster_request/{cluster_id}`; `oc1`
/// (`oraclecloud.com`) for regions the realm table does not know, as `oci` always does. The region
/// lowercased, as `oci` signs it (`--region US-ASHBURN-1`).
pub(crate) fn cluster_request_url(region: &str, cluster_id: &str) -> String {
    let domain = region_domain(region);
    format!("https://containerengine.{}.{domain}/cluster_request/{cluster_id}", region.to_ascii_lowercase())
}

/// The key that signs the token. ring signs an RSA-2048 PKCS#1 v1.5 signature several times faster
/// than the `rsa` crate, and a kubectl call waits for it; keys ring refuses (small exponents,
/// unusual sizes) are signed by the `rsa` crate. Both give the same bytes: the scheme is
/// deterministic.
pub(crate) enum TokenKey {
    /// A key ring accepts.
    Ring(ring::signature::RsaKeyPair),
    /// Any other RSA key.
    Rsa(KeyPair),
}

impl TokenKey {
    /// Parses a PEM private key (PKCS#8 or PKCS#1, text around it ignored, as `oci` does).
    pub(crate) fn from_pem(pem: &str) -> std::result::Result<TokenKey, String> {
        use ring::signature::RsaKeyPair;
        use rustls::pki_types::PrivateKeyDer;
        let ring_key = match rustls_pemfile::private_key(&mut pem.as_bytes()) {
            Ok(Some(PrivateKeyDer::Pkcs8(k))) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).ok(),
            Ok(Some(PrivateKeyDer::Pkcs1(k))) => RsaKeyPair::from_der(k.secret_pkcs1_der()).ok(),
            _ => None,
        };
        ring_key.map_or_else(|| KeyPair::from_pem(pem).map(TokenKey::Rsa), |k| Ok(TokenKey::Ring(k)))
    }

    /// Standard base64 of the RSASSA-PKCS1-v1_5 SHA-256 signature of `text`.
    pub(crate) fn sign(&self, text: &str) -> std::result::Result<String, String> {
        match self {
            TokenKey::Rsa(k) => Ok(signer::sign_string(k.private(), text)),
            TokenKey::Ring(k) => {
                let mut signature = vec![0; k.public().modulus_len()];
                k.sign(
                    &ring::signature::RSA_PKCS1_SHA256,
                    &ring::rand::SystemRandom::new(),
                    text.as_bytes(),
                    &mut signature,
                )
                .map_err(|_| "RSA signing failed".to_owned())?;
                Ok(STANDARD.encode(signature))
            }
        }
    }
}

/// The token: the cluster request URL signed at `now` by `key` for `upst`, with the signature's
/// `authorization` and `date` as query parameters, base64url with padding.
pub(crate) fn token(url: &str, key: &TokenKey, upst: &SecretString, now: SystemTime) -> Result<SecretString> {
    let parsed = url::Url::parse(url).map_err(|e| Error::Config(format!("invalid cluster URL `{url}`: {e}")))?;
    let host = signer::host_header(&parsed).ok_or_else(|| Error::Config(format!("cluster URL `{url}` has no host")))?;
    let date = httpdate::fmt_http_date(now);
    let signing_string = format!("date: {date}\n{REQUEST_TARGET}: get {}\nhost: {host}", parsed.path());
    let signature = key.sign(&signing_string).map_err(Error::Other)?;
    // oci-cli's parameter order (`_PatchedHeaderSigner.HEADER_SIGNER_TEMPLATE`).
    let authorization = format!(
        "Signature algorithm=\"rsa-sha256\",headers=\"{}\",keyId=\"{}{}\",signature=\"{signature}\",version=\"1\"",
        HEADERS_NO_BODY.join(" "),
        signer::SESSION_KEY_ID_PREFIX,
        upst.expose()
    );
    let full = format!("{url}?authorization={}&date={}", quote_plus(&authorization), quote_plus(&date));
    Ok(SecretString::new(URL_SAFE.encode(full)))
}

/// Python's `urllib.parse.quote_plus` for the characters a signature and a date hold. The
/// WHATWG form encoder differs from Python only in `*` (kept) and `~` (escaped), neither of which
/// occurs in base64, JWTs, header names or HTTP dates.
fn quote_plus(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// When, by this machine's clock (which kubectl reads), OCI starts refusing a UPST that ends at
/// `exp` by the servers' (`offset_ms` = servers minus this machine): the offset rounded up, less
/// what it may fall short by, so a token kubectl keeps is never refused before it asks again.
fn upst_end_here(exp: i64, offset_ms: i64) -> i64 {
    let offset_secs = offset_ms.saturating_add(999).div_euclid(1000);
    exp.saturating_sub(offset_secs).saturating_sub(crate::clock::SKEW_UNCERTAINTY_SECS)
}

/// The ExecCredential exactly as oci-cli 3.95.1 prints it (its template, then `click.echo`'s
/// newline), expiring [`TOKEN_LIFETIME`] after `now`, or when the session token inside it does
/// (`upst_exp`, unix seconds) if that is sooner: kubectl must not keep a credential whose token
/// OCI already refuses.
pub(crate) fn exec_credential(token: &SecretString, now: SystemTime, upst_exp: i64) -> SecretString {
    let upst_end = UNIX_EPOCH + Duration::from_secs(u64::try_from(upst_exp).unwrap_or(0));
    let expiration = python_utc_isoformat((now + TOKEN_LIFETIME).min(upst_end.max(now)));
    SecretString::new(format!(
        "\n{{\n    \"apiVersion\": \"client.authentication.k8s.io/v1beta1\",\n    \"kind\": \"ExecCredential\",\n    \"status\": {{\n        \"token\": \"{}\",\n        \"expirationTimestamp\": \"{expiration}\"\n    }}\n}}\n    \n",
        token.expose()
    ))
}

/// `datetime.utcnow().isoformat('T') + "Z"`: microseconds, omitted when zero (as Python does).
fn python_utc_isoformat(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let whole = crate::clock::fmt_utc(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match d.subsec_micros() {
        0 => whole,
        us => format!("{}.{us:06}Z", whole.trim_end_matches('Z')),
    }
}

/// Answers a recognized request after the session check: prints the ExecCredential and returns
/// exit code 0. `None` when woci cannot reproduce what `oci` would do (no region, no `key_file`,
/// a key woci cannot read, e.g. one with a passphrase); the caller then runs `oci`, which reports
/// any problem itself. The key is the profile's `key_file`, the one `oci` signs with.
pub(crate) fn answer(ctx: &Context, session: &Session, req: &TokenRequest) -> Result<Option<u8>> {
    let env = &ctx.env;
    let profile = OciProfile::read(&ctx.settings)?.1;
    if profile.raw.get("pass_phrase").is_some_and(|p| !p.is_empty()) {
        tracing::debug!("the profile's key has a passphrase; generate-token goes to oci");
        return Ok(None);
    }
    let region = req
        .region
        .clone()
        .or_else(|| env.get("OCI_CLI_REGION").filter(|r| !r.is_empty()).cloned())
        .or_else(|| profile.region.clone());
    let Some(region) = region.filter(|r| valid_region(r)) else {
        tracing::debug!("no usable region; generate-token goes to oci");
        return Ok(None);
    };
    let Some(key_file) = profile.key_file else {
        tracing::debug!("the profile has no key_file; generate-token goes to oci");
        return Ok(None);
    };
    let key = match crate::fsutil::read_text_bounded(&key_file, crate::fsutil::MAX_INPUT)
        .map_err(|e| e.to_string())
        .and_then(|pem| TokenKey::from_pem(&pem))
    {
        Ok(k) => k,
        Err(e) => {
            tracing::debug!("cannot use `{}` natively ({e}); generate-token goes to oci", key_file.display());
            return Ok(None);
        }
    };
    // Signed with the servers' time; its expiry is for kubectl, which reads it by this machine's.
    let url = cluster_request_url(&region, &req.cluster_id);
    let signed = token(&url, &key, &session.token, ctx.server.servers().now())?;
    let credential =
        exec_credential(&signed, ctx.clock.now(), upst_end_here(session.claims.exp, ctx.server.offset_ms()));
    tracing::debug!(%url, "answered generate-token natively");
    let mut out = std::io::stdout().lock();
    out.write_all(credential.expose().as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::Other(format!("cannot write the ExecCredential to stdout: {e}")))?;
    Ok(Some(0))
}

#[cfg(test)]
mod tests;
