//! Renewal of a profile without an IdP (made by `oci session authenticate`): the OCI auth
//! service's `/v1/authentication/refresh` with the current token, until the session's `sess_exp`.

use super::facts::{SessionFacts, Token};
use super::{Action, Renewer, Session};
use crate::error::{Error, Result};
use crate::settings::SessionRefreshConfig;

pub(super) async fn renew(
    r: &Renewer,
    cfg: &SessionRefreshConfig,
    facts: &SessionFacts<'_>,
    current: &Token,
) -> Result<Session> {
    let key = facts.signing_key(&r.store)?;
    let endpoint = match &cfg.auth_endpoint {
        Some(u) => u.clone(),
        None => {
            let region = r.settings.region.clone().or_else(|| facts.oci.region.clone()).ok_or_else(|| {
                Error::Config(format!(
                    "profile `{}` has no region; set `region` in `{}` or pass `--region`",
                    facts.profile,
                    facts.config_file.display()
                ))
            })?;
            crate::realm::auth_endpoint_for_region(&region)?
        }
    };
    let http = r.http().await?;
    let upst =
        crate::session_refresh::refresh_session(http, &endpoint, &current.secret, &key, r.clock.as_ref()).await?;
    let claims = r.check_new_token(&upst, &key, "OCI auth service")?;
    r.write_token(facts, &upst)?;
    Ok(Session { token: upst, claims, action: Action::SessionRefreshed })
}
