//! Session status report (STUB: owned by the daemon/status work item).
use crate::error::{Error, Result};
use crate::renew::Renewer;

/// `woci --status [--json]`.
pub fn run(_renewer: &Renewer, _json: bool) -> Result<u8> {
    Err(Error::Other("`--status` is not available yet".into()))
}
