//! Signals around the refresh-token rotation. Between sending a refresh grant and durably storing
//! the rotated refresh token, a Ctrl-C (SIGINT), a Ctrl-\ (SIGQUIT), a cancelled CI job (SIGTERM)
//! or a closed terminal (SIGHUP) would spend the old refresh token and drop the new one, sending the user
//! back to the browser. [`hold`] returns a guard: while it lives those signals are only noted;
//! when it drops, a noted signal is acted on at once with its default action (the process ends
//! as the signal says, after the new refresh token is safe).
//!
//! Outside a held section a plain call keeps the default behaviour (the signal ends woci at once).
//! Once a child runs ([`supervise`]), woci's own handlers forward signals to the child and woci
//! ends when the child does, so nothing is re-raised. SIGKILL cannot be held: the remaining
//! window is between the IdP's answer and the fsync of the new refresh token.
//!
//! Helpers woci runs in a process group of their own (a `command:` token source, hooks) are
//! registered with [`own_group`]: a signal that reaches woci ends their group too.

#[cfg(unix)]
mod imp {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    use signal_hook::SigId;
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};

    const SIGNALS: [i32; 4] = [SIGINT, SIGTERM, SIGHUP, SIGQUIT];

    struct Installed {
        /// The first signal noted inside a held section (0: none).
        pending: Arc<AtomicUsize>,
        /// True outside a held section: the default action runs at once.
        outside: Arc<AtomicBool>,
        /// The default-action registrations, removed once a child is supervised.
        defaults: Vec<SigId>,
    }

    static STATE: OnceLock<Mutex<Installed>> = OnceLock::new();
    /// Process groups woci started (token helpers, hooks). A group of its own does not get the
    /// terminal's Ctrl-C or a CI runner's group kill, so a signal that reaches woci ends them too.
    static GROUPS: [AtomicI32; 4] = [const { AtomicI32::new(0) }; 4];
    static SUPERVISED: AtomicBool = AtomicBool::new(false);
    static DEPTH: AtomicUsize = AtomicUsize::new(0);

    /// The signals among [`RESPECTED`] that were ignored when woci started, as a bit set.
    static IGNORED_AT_START: OnceLock<u64> = OnceLock::new();

    /// Signals a caller may have set to be ignored (`nohup`, `trap '' INT`, a script's `&` job,
    /// which ignores INT and QUIT): woci installs no handler for them, so they stay ignored for
    /// woci and for what it runs. (SIGPIPE cannot be among them: Rust's runtime sets it before
    /// `main`, and a program woci starts gets the default.) SIGCHLD is the exception: ignored, the
    /// kernel reaps woci's child before woci learns its exit code (`trap '' CHLD`), so woci takes
    /// the default back and gives the child the ignored one ([`restore_for_child`]).
    const RESPECTED: [i32; 7] = [SIGHUP, SIGINT, SIGTERM, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2, libc::SIGCHLD];

    /// The parent process woci started under ([`parent_at_start`]).
    static PARENT_AT_START: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

    /// The pid of the process that started woci (0 before [`note_ignored_at_start`]): a parent
    /// that has ended since, and left woci to init, is no longer `getppid()`.
    pub(crate) fn parent_at_start() -> i32 {
        PARENT_AT_START.load(Ordering::Relaxed)
    }

    /// Notes what woci started with: the signals ignored ([`ignored_at_start`]) and the parent
    /// ([`parent_at_start`]).
    pub(crate) fn note_ignored_at_start() {
        // SAFETY: getppid cannot fail.
        PARENT_AT_START.store(unsafe { libc::getppid() }, Ordering::Relaxed);
        let bits = IGNORED_AT_START.get_or_init(|| {
            RESPECTED.iter().fold(0, |bits, &sig| {
                // SAFETY: sigaction(2) with a null new action only reads the current one.
                let ignored = unsafe {
                    let mut old: libc::sigaction = std::mem::zeroed();
                    libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN
                };
                bits | u64::from(ignored) << sig
            })
        });
        if bits & 1 << libc::SIGCHLD != 0 {
            // SAFETY: signal(2) setting the default action, before any thread or child exists.
            unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
        }
    }

    /// In a child before `exec` (async-signal-safe): SIGCHLD ignored again when the caller had it
    /// so, as the program would have it without woci in between.
    pub(crate) fn restore_for_child() {
        if ignored_at_start(libc::SIGCHLD) {
            // SAFETY: signal(2) is async-signal-safe.
            unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
        }
    }

    /// Whether `sig` was ignored when woci started ([`note_ignored_at_start`] ran first).
    pub(crate) fn ignored_at_start(sig: i32) -> bool {
        IGNORED_AT_START.get().is_some_and(|bits| (0..64).contains(&sig) && bits & (1 << sig) != 0)
    }

    /// Ends woci the way its child ended: by the same signal, when that signal's default action
    /// only terminates (a parent then sees a signal death, and a shell loop stops at Ctrl-C); a
    /// core-dumping signal (SIGQUIT, SIGSEGV, …) gives the shell's 128+n exit status instead.
    pub(crate) fn end_like(sig: i32) {
        if [SIGHUP, SIGINT, SIGTERM, libc::SIGPIPE, libc::SIGALRM, libc::SIGUSR1, libc::SIGUSR2, libc::SIGKILL]
            .contains(&sig)
        {
            let _ = signal_hook::low_level::emulate_default_handler(sig);
        }
    }

    fn state() -> &'static Mutex<Installed> {
        STATE.get_or_init(|| {
            let pending = Arc::new(AtomicUsize::new(0));
            let outside = Arc::new(AtomicBool::new(true));
            let mut defaults = Vec::new();
            for sig in SIGNALS.into_iter().filter(|s| !ignored_at_start(*s)) {
                // Before the default action below, which ends woci. kill(2) is async-signal-safe.
                let ended = unsafe {
                    signal_hook::low_level::register(sig, || {
                        for pgid in GROUPS.iter().map(|g| g.load(Ordering::SeqCst)).filter(|p| *p > 0) {
                            libc::kill(-pgid, libc::SIGTERM);
                        }
                    })
                };
                if let Err(e) = ended {
                    tracing::debug!("cannot watch signal {sig} for helper groups: {e}");
                }
                let (noted, value) = (pending.clone(), usize::try_from(sig).unwrap_or(0));
                // SAFETY: the action only does an atomic compare-exchange (noting the first signal of
                // a held section), which is async-signal-safe.
                let watched = unsafe {
                    signal_hook::low_level::register(sig, move || {
                        let _ = noted.compare_exchange(0, value, Ordering::SeqCst, Ordering::SeqCst);
                    })
                };
                if let Err(e) = watched {
                    tracing::debug!("cannot watch signal {sig}: {e}");
                }
                if !SUPERVISED.load(Ordering::SeqCst) {
                    match signal_hook::flag::register_conditional_default(sig, outside.clone()) {
                        Ok(id) => defaults.push(id),
                        Err(e) => tracing::debug!("cannot keep the default action of signal {sig}: {e}"),
                    }
                }
            }
            Mutex::new(Installed { pending, outside, defaults })
        })
    }

    /// See the module doc.
    #[must_use = "signals are held only while the guard lives"]
    #[derive(Debug)]
    pub(crate) struct Held(());

    pub(crate) fn hold() -> Held {
        let st = state().lock().unwrap_or_else(|p| p.into_inner());
        if DEPTH.fetch_add(1, Ordering::SeqCst) == 0 {
            st.pending.store(0, Ordering::SeqCst);
            st.outside.store(false, Ordering::SeqCst);
        }
        Held(())
    }

    /// Whether some task is inside a held section now (storing a rotated refresh token).
    pub(crate) fn held() -> bool {
        DEPTH.load(Ordering::SeqCst) > 0
    }

    /// Whether a signal was noted inside the held section now open, so that woci ends when it
    /// closes (not when supervising: the signal went to the child, or is the daemon's).
    pub(crate) fn pending() -> bool {
        held()
            && !SUPERVISED.load(Ordering::SeqCst)
            && STATE
                .get()
                .is_some_and(|st| st.lock().unwrap_or_else(|p| p.into_inner()).pending.load(Ordering::SeqCst) != 0)
    }

    impl Drop for Held {
        fn drop(&mut self) {
            if DEPTH.fetch_sub(1, Ordering::SeqCst) != 1 {
                return;
            }
            let st = state().lock().unwrap_or_else(|p| p.into_inner());
            st.outside.store(true, Ordering::SeqCst);
            let sig = st.pending.swap(0, Ordering::SeqCst);
            if sig != 0 && !SUPERVISED.load(Ordering::SeqCst) {
                let sig = i32::try_from(sig).unwrap_or(SIGTERM);
                tracing::debug!("acting on signal {sig}, held while the refresh token was stored");
                let _ = signal_hook::low_level::emulate_default_handler(sig);
            }
        }
    }

    /// A process group woci started, ended by a signal that reaches woci while the guard lives.
    pub(crate) struct OwnedGroup(Option<usize>);

    pub(crate) fn own_group(pgid: i32) -> OwnedGroup {
        drop(state().lock());
        OwnedGroup(GROUPS.iter().position(|g| g.compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst).is_ok()))
    }

    impl Drop for OwnedGroup {
        fn drop(&mut self) {
            if let Some(i) = self.0 {
                GROUPS[i].store(0, Ordering::SeqCst);
            }
        }
    }

    pub(crate) fn supervise() {
        SUPERVISED.store(true, Ordering::SeqCst);
        if let Some(st) = STATE.get() {
            let mut st = st.lock().unwrap_or_else(|p| p.into_inner());
            for id in st.defaults.drain(..) {
                signal_hook::low_level::unregister(id);
            }
        }
    }

    /// `FAILPOINTS` actions of the test build: a signal name raises it, `abort` aborts.
    #[cfg(feature = "failpoints")]
    pub(crate) fn failpoint_action(arg: Option<&str>) {
        let sig = match arg {
            Some("SIGINT") => SIGINT,
            Some("SIGTERM") => SIGTERM,
            Some("SIGHUP") => SIGHUP,
            Some("SIGQUIT") => SIGQUIT,
            Some("SIGKILL") => signal_hook::consts::SIGKILL,
            _ => std::process::abort(),
        };
        let _ = signal_hook::low_level::raise(sig);
    }
}

#[cfg(not(unix))]
mod imp {
    /// No signals to hold on this platform.
    #[derive(Debug)]
    pub struct Held(());
    pub fn hold() -> Held {
        Held(())
    }
    pub fn supervise() {}
    pub fn held() -> bool {
        false
    }
    pub fn pending() -> bool {
        false
    }
    pub fn note_ignored_at_start() {}
    pub fn restore_for_child() {}
    pub fn ignored_at_start(_sig: i32) -> bool {
        false
    }
    pub fn parent_at_start() -> i32 {
        0
    }
    pub fn end_like(_sig: i32) {}
    pub struct OwnedGroup;
    pub fn own_group(_pgid: i32) -> OwnedGroup {
        OwnedGroup
    }
    #[cfg(feature = "failpoints")]
    pub fn failpoint_action(_arg: Option<&str>) {
        std::process::abort()
    }
}

/// Set once nothing waits for a renewal any more (a run's program ended, a daemon told to stop).
static ENDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes that woci is ending ([`ending`]).
pub(crate) fn note_ending() {
    ENDING.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Whether woci is ending: [`note_ending`], or a signal held during a refresh grant (a call's
/// Ctrl-C). A grant not yet sent is then not tried again: nothing is on its way to be lost.
pub(crate) fn ending() -> bool {
    ENDING.load(std::sync::atomic::Ordering::SeqCst) || pending()
}

/// A stop signal that came after a supervised program had ended, while woci waited for a refresh
/// grant's answer (0: none). It is answered then, and acted on at the very end
/// ([`end_like_noted`]), after the new refresh token is stored and everything is cleaned up.
static AFTER_RUN: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Notes `sig` for [`end_like_noted`] (the first one counts).
pub(crate) fn note_after_run(sig: i32) {
    use std::sync::atomic::Ordering::SeqCst;
    let _ = AFTER_RUN.compare_exchange(0, sig, SeqCst, SeqCst);
}

/// Ends woci by the signal [`note_after_run`] noted, if any; returns when there is none (or it
/// dumps core, see [`end_like`]).
pub(crate) fn end_like_noted() {
    match AFTER_RUN.load(std::sync::atomic::Ordering::SeqCst) {
        0 => {}
        sig => end_like(sig),
    }
}

/// Test-only fault injection (`--features failpoints`, `FAILPOINTS=name=return(SIGKILL)`): raise
/// a signal or abort at a named step (of a renewal, or of an atomic write). Compiled out of
/// normal builds.
#[cfg(feature = "failpoints")]
pub(crate) fn failpoint(name: &str) {
    fail::fail_point!(name, |arg| imp::failpoint_action(arg.as_deref()));
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn failpoint(_name: &str) {}

/// Test-only: whether the step `name` is to fail as on a full disk (`FAILPOINTS=name=return`,
/// `name=3*return` for the first three times). Always false in normal builds.
#[cfg(feature = "failpoints")]
pub(crate) fn refused(name: &str) -> bool {
    fail::eval(name, |_| ()).is_some()
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn refused(_name: &str) -> bool {
    false
}

/// The error of a write [`refused`] (no space left on the device).
pub(crate) fn refused_write(path: &std::path::Path) -> crate::error::Error {
    crate::error::Error::io("cannot write", path, std::io::ErrorKind::StorageFull.into())
}
pub(crate) use imp::{
    end_like, held, hold, ignored_at_start, note_ignored_at_start, own_group, parent_at_start, pending,
    restore_for_child, supervise, Held, OwnedGroup,
};

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_held_signal_waits_for_the_guard() {
        // Supervised: the drop notes but does not re-raise, so the test process survives.
        supervise();
        let held = hold();
        signal_hook::low_level::raise(signal_hook::consts::SIGHUP).unwrap();
        let nested = hold();
        drop(nested);
        drop(held);
    }
}
