//! Renewal of a federated profile (`subject_token_source`, CI / workload federation): a fresh JWT
//! from the source, exchanged at `token_exchange_url` for a session bound to the profile's stable
//! key, then the token file and config entries, written exactly as for login profiles. Never logs
//! in, never prompts.

use super::facts::SessionFacts;
use super::{Action, Renewer, Session};
use crate::error::{Error, Result};
use crate::exchange;
use crate::settings::FederatedConfig;

pub(super) async fn renew(r: &Renewer, cfg: &FederatedConfig, facts: &SessionFacts<'_>) -> Result<Session> {
    let (key, key_path) = r.store.load_or_create_key(facts.oci.key_file.as_deref())?;
    let http = r.http().await?;
    let jwt = cfg.source.obtain(http, cfg.env.vars(), &cfg.audience, r.clock.as_ref()).await?;
    tracing::debug!(profile = %r.settings.profile, source = %cfg.source.describe(), "obtained a subject token");
    let upst = exchange::exchange(http, &cfg.exchange, &jwt, &key.spki_b64()).await.map_err(|e| match e {
        Error::ExchangeRejected { status, error, description } if status != 401 && error != "invalid_client" => {
            Error::SubjectTokenRejected { source_name: cfg.source.describe(), status, error, description }
        }
        e => e,
    })?;
    let claims = r.check_new_token(&upst, &key, "token exchange")?;
    r.write_token(facts, &upst)?;
    r.write_config(facts, &claims, &key, &key_path)?;
    Ok(Session { token: upst, claims, action: Action::Federated })
}
