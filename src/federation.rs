//! CI / workload OIDC federation: a profile with `subject_token_source` renews by exchanging a
//! fresh JWT from that source at `token_exchange_url` (protocol.md §1), with no refresh token and
//! no login. It owns resolving such a profile's settings and the renewal step
//! [`Renewer::ensure`](crate::renew::Renewer::ensure) calls for it; the session files and the
//! `~/.oci/config` entries are written exactly as for IdP profiles.

use crate::cli::WociOptions;
use crate::error::{Error, Result};
use crate::exchange::{self, ExchangeConfig};
use crate::manager_config::ManagerConfig;
use crate::renew::facts::SessionFacts;
use crate::renew::{Action, Renewer, Session};
use crate::secret::SecretString;
use crate::settings::Env;
use crate::settings::RenewMode;
use crate::subject_token::{SourceEnv, SubjectTokenSource, DEFAULT_AUDIENCE};
use std::path::Path;

/// The keys a federated profile needs besides `subject_token_source`.
const REQUIRED: [&str; 3] = ["token_exchange_url", "client_id", "client_secret"];

/// `Some(RenewMode::Federated)` when `--subject-token-source` or the INI's `subject_token_source`
/// is set; such a profile needs only the exchange app's keys (no IdP login keys).
pub fn resolve_mode(
    o: &WociOptions,
    m: &ManagerConfig,
    env: &Env,
    home: &Path,
    profile: &str,
) -> Result<Option<RenewMode>> {
    let (raw, setting) = match (&o.subject_token_source, m.get("subject_token_source")) {
        (Some(flag), _) if !flag.trim().is_empty() => (flag.clone(), "--subject-token-source"),
        (_, Some(ini)) => (ini.to_owned(), "subject_token_source"),
        _ => return Ok(None),
    };
    let source = SubjectTokenSource::parse(&raw, setting, home)?;
    let pick = |flag: &Option<String>, key: &str| -> Option<String> {
        flag.clone().filter(|v| !v.trim().is_empty()).or_else(|| m.get(key).map(str::to_owned))
    };
    // The exchange endpoint is the identity domain's token endpoint; `token_url` names it too
    // in profiles written for the IdP flow.
    let url = pick(&o.token_exchange_url, "token_exchange_url").or_else(|| pick(&o.token_url, "token_url"));
    let values = [
        (REQUIRED[0], url),
        (REQUIRED[1], pick(&o.client_id, "client_id")),
        (REQUIRED[2], pick(&o.client_secret.as_ref().map(|s| s.expose().clone()), "client_secret")),
    ];
    let missing: Vec<String> = values.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| format!("`{k}`")).collect();
    if !missing.is_empty() {
        let where_ = m.path.as_ref().map_or_else(|| "the command line".to_owned(), |p| format!("`{}`", p.display()));
        return Err(Error::Config(format!(
            "profile `{profile}` has `subject_token_source` but lacks {} (set them in {where_} or as flags)",
            missing.join(", ")
        )));
    }
    let [url, client_id, client_secret] = values.map(|(_, v)| v.unwrap_or_default());
    let url = crate::settings::parse_url(&url, "token_exchange_url")?;
    let audience =
        m.get("subject_token_audience").map(|a| a.trim().to_owned()).unwrap_or_else(|| DEFAULT_AUDIENCE.into());
    Ok(Some(RenewMode::Federated {
        env: SourceEnv::capture(&source, env),
        source,
        audience,
        exchange: ExchangeConfig { url, client_id, client_secret: SecretString::from(client_secret) },
    }))
}

/// One renewal of a federated profile: JWT from the source, exchange bound to the profile's stable
/// key, then the token file and config entries. Never logs in, never prompts.
pub async fn renew(r: &Renewer, facts: &SessionFacts) -> Result<Session> {
    let RenewMode::Federated { source, env, audience, exchange: ex } = &r.settings().mode else {
        return Err(Error::Other("internal: federation without its settings".into()));
    };
    let (key, key_path) = r.idp_key(facts)?;
    let http = r.http().await?;
    let jwt = source.obtain(http, env.vars(), audience, r.clock()).await?;
    tracing::debug!(profile = %r.settings().profile, source = %source.describe(), "obtained a subject token");
    let upst = exchange::exchange(http, ex, &jwt, &key.spki_b64()).await.map_err(|e| match e {
        Error::ExchangeRejected { status, error, description } if status != 401 && error != "invalid_client" => {
            Error::SubjectTokenRejected { source_name: source.describe(), status, error, description }
        }
        e => e,
    })?;
    let claims = r.check_new_token(&upst, &key)?;
    r.write_token(facts, &upst)?;
    r.write_config(facts, &claims, &key, &key_path)?;
    Ok(Session { token: upst, claims, action: Action::Federated })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ini(pairs: &[(&str, &str)]) -> ManagerConfig {
        let mut m = ManagerConfig::default();
        for (k, v) in pairs {
            m.values.insert((*k).into(), (*v).into());
        }
        m
    }

    #[test]
    fn needs_only_the_exchange_app() {
        let m = ini(&[
            ("subject_token_source", "env:CI_JOB_JWT_V2"),
            ("token_exchange_url", "https://idcs.example/oauth2/v1/token"),
            ("client_id", "c"),
            ("client_secret", "s"),
        ]);
        let Some(RenewMode::Federated { source, audience, exchange, .. }) =
            resolve_mode(&WociOptions::default(), &m, &Env::new(), Path::new("/h"), "P").unwrap()
        else {
            panic!("expected federation")
        };
        assert_eq!(source, SubjectTokenSource::Env("CI_JOB_JWT_V2".into()));
        assert_eq!(audience, DEFAULT_AUDIENCE);
        assert_eq!(exchange.client_id, "c");
    }

    #[test]
    fn flag_overrides_ini_and_missing_keys_are_listed() {
        let m = ini(&[("subject_token_source", "env:A"), ("client_id", "c"), ("subject_token_audience", "aud")]);
        let o = WociOptions { subject_token_source: Some("github-actions".into()), ..Default::default() };
        let e = resolve_mode(&o, &m, &Env::new(), Path::new("/h"), "P").unwrap_err().to_string();
        assert!(
            e.contains("`token_exchange_url`") && e.contains("`client_secret`") && !e.contains("`client_id`"),
            "{e}"
        );
        let m = ini(&[("subject_token_source", "bogus")]);
        let e = resolve_mode(&WociOptions::default(), &m, &Env::new(), Path::new("/h"), "P").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
        assert!(resolve_mode(&WociOptions::default(), &ini(&[]), &Env::new(), Path::new("/h"), "P").unwrap().is_none());
    }
}
