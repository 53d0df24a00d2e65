//! What one invocation works with: its resolved settings, the profile's session folder, the clocks
//! (this machine's, and the servers' as the last renewal showed it) and the environment it started
//! with. `app` builds it once and hands it to every mode (the renewer, status, the daemon, the OKE
//! answer, the auto-refresh supervisor), so none of them reaches for these through another.

use crate::clock::{ServerClock, SharedClock};
use crate::error::Result;
use crate::settings::{Env, Settings};
use crate::store::SessionStore;
use std::path::PathBuf;
use std::sync::Arc;

/// The invocation's context.
#[derive(Debug, Clone)]
pub struct Context {
    /// The resolved settings.
    pub settings: Arc<Settings>,
    /// The profile's session folder.
    pub store: SessionStore,
    /// This machine's clock: woci's own records and logs.
    pub clock: SharedClock,
    /// Token time: the later of this machine's clock and the servers' as the profile's last
    /// renewal showed them (every token's life); `server.servers()`: every `date` woci signs.
    pub server: Arc<ServerClock>,
    /// The environment woci started with.
    pub env: Arc<Env>,
}

impl Context {
    /// The context of `settings`' profile.
    pub fn new(settings: Settings, clock: SharedClock, env: Env) -> Result<Context> {
        Context::of(settings, clock, Arc::new(env))
    }

    /// The context of another profile's (or re-read) `settings`, with this one's clock and
    /// environment.
    pub fn with_settings(&self, settings: Settings) -> Result<Context> {
        Context::of(settings, self.clock.clone(), self.env.clone())
    }

    fn of(settings: Settings, clock: SharedClock, env: Arc<Env>) -> Result<Context> {
        let store = SessionStore::new(&settings.home, &settings.profile)?
            .with_selection(settings.woci_selection())
            .with_idp(match &settings.mode {
                crate::settings::RenewMode::Login(c) => format!("{} {}", c.idp.token_url, c.idp.client_id),
                _ => String::new(),
            })
            .with_runtime_dir(settings.runtime_dir.clone())
            // A job without `$XDG_RUNTIME_DIR` (cron) also finds what a desktop shell rescued.
            .with_desktop_runtime(match settings.runtime_dir {
                None => Some(PathBuf::from(format!("/run/user/{}", crate::fsutil::user_id()))).filter(|d| d.is_dir()),
                Some(_) => None,
            });
        let server = Arc::new(ServerClock::new(clock.clone(), store.skew()));
        Ok(Context { settings: Arc::new(settings), store, clock, server, env })
    }

    /// Token time now, epoch seconds: what a token's `exp` is compared with.
    pub fn now(&self) -> i64 {
        crate::clock::Clock::unix(self.server.as_ref())
    }
}
