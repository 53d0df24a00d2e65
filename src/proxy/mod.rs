//! The re-signing proxy (STUB: owned by the proxy work item; `start_for_profile` is the glue).
use crate::error::Result;
use crate::renew::Renewer;
use crate::secret::SecretString;
use std::ffi::OsString;

/// A running proxy (stub).
#[derive(Debug)]
pub struct ProxyHandle;

impl ProxyHandle {
    /// Variables for the child.
    pub fn child_env(&self) -> Vec<(OsString, OsString)> {
        Vec::new()
    }
    /// Variables to remove from the child's environment.
    pub fn env_removals(&self) -> Vec<OsString> {
        Vec::new()
    }
    /// Stops the proxy.
    pub async fn shutdown(self) {}
}

/// Starts the proxy for the renewer's profile.
pub async fn start_for_profile(_renewer: &Renewer, _token: tokio::sync::watch::Receiver<SecretString>) -> Result<ProxyHandle> {
    unimplemented!("proxy")
}
