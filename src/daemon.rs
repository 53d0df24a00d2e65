//! Daemon mode (STUB: owned by the daemon/status work item).
use crate::error::{Error, Result};
use crate::renew::Renewer;
use std::sync::Arc;

/// `woci --daemon`.
pub fn start(_renewer: &Renewer) -> Result<u8> {
    Err(Error::Other("`--daemon` is not available yet".into()))
}
/// The detached daemon process.
pub fn run_foreground(_renewer: Arc<Renewer>) -> Result<u8> {
    Err(Error::Other("`--daemon` is not available yet".into()))
}
/// `woci --daemon-status`.
pub fn status(_renewer: &Renewer) -> Result<u8> {
    Err(Error::Other("`--daemon-status` is not available yet".into()))
}
/// `woci --stop-daemon`.
pub fn stop(_renewer: &Renewer) -> Result<u8> {
    Err(Error::Other("`--stop-daemon` is not available yet".into()))
}
