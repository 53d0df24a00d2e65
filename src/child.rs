//! Running `oci` (or any `--exec` program).
//!
//! When nothing has to run beside it, woci replaces itself with the program ([`exec`], Unix
//! `execvp`): signals, the terminal, and the exit code are then the program's own. When woci must
//! stay (auto-refresh, proxy), [`run`] spawns it, forwards SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2/
//! SIGWINCH — and SIGINT when stdin is not a terminal, since a terminal's Ctrl-C already reaches the
//! whole foreground process group — and returns its exit code (128+n when killed by signal n).

use crate::error::{Error, Result};
use std::ffi::OsString;
use std::io;
use std::process::{Command, ExitStatus};

/// A program to run, with the environment changes woci makes. The argv never holds secrets; the
/// proxy credentials travel in the environment.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Program name (looked up on PATH) or path.
    pub program: OsString,
    /// Arguments.
    pub args: Vec<OsString>,
    /// Variables to set.
    pub set_env: Vec<(OsString, OsString)>,
    /// Variables to remove.
    pub remove_env: Vec<OsString>,
    /// Which setting chose the program, for the not-found message.
    pub program_source: String,
}

impl ChildSpec {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for k in &self.remove_env {
            c.env_remove(k);
        }
        for (k, v) in &self.set_env {
            c.env(k, v);
        }
        c
    }

    fn spawn_error(&self, e: io::Error) -> Error {
        let program = self.program.to_string_lossy().into_owned();
        match e.kind() {
            io::ErrorKind::NotFound => {
                Error::ProgramNotFound { program, hint: format!("install it or set {}", self.program_source) }
            }
            _ => Error::ProgramNotExecutable { program, reason: e.to_string() },
        }
    }
}

/// Replaces the current process with the program. Returns only on failure.
#[cfg(unix)]
pub fn exec(spec: &ChildSpec) -> Error {
    use std::os::unix::process::CommandExt;
    let e = spec.command().exec();
    spec.spawn_error(e)
}

/// Without `exec`, run and exit with the child's code.
#[cfg(not(unix))]
pub fn exec(spec: &ChildSpec) -> Error {
    match spec.command().status() {
        #[allow(clippy::disallowed_methods, reason = "exec failed after a fallback spawn; see harden")]
        Ok(s) => std::process::exit(i32::from(exit_code(s))),
        Err(e) => spec.spawn_error(e),
    }
}

/// A running child.
#[derive(Debug)]
pub struct Running {
    child: tokio::process::Child,
}

/// Spawns the program (stdio inherited).
pub fn spawn(spec: &ChildSpec) -> Result<Running> {
    let mut cmd = tokio::process::Command::from(spec.command());
    cmd.kill_on_drop(false);
    let child = cmd.spawn().map_err(|e| spec.spawn_error(e))?;
    tracing::debug!(pid = child.id(), program = %spec.program.to_string_lossy(), "started child");
    Ok(Running { child })
}

impl Running {
    /// The child's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits for the child, forwarding signals to it; returns its exit code.
    pub async fn wait(mut self) -> Result<u8> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let pid = self.child.id().and_then(|p| i32::try_from(p).ok());
            let forward_int = !std::io::IsTerminal::is_terminal(&std::io::stdin());
            let kinds = [
                (SignalKind::terminate(), libc::SIGTERM, true),
                (SignalKind::hangup(), libc::SIGHUP, true),
                (SignalKind::quit(), libc::SIGQUIT, true),
                (SignalKind::user_defined1(), libc::SIGUSR1, true),
                (SignalKind::user_defined2(), libc::SIGUSR2, true),
                (SignalKind::window_change(), libc::SIGWINCH, true),
                (SignalKind::interrupt(), libc::SIGINT, forward_int),
            ];
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(i32, bool)>();
            let mut listeners = Vec::new();
            for (kind, num, forward) in kinds {
                let mut s = signal(kind).map_err(|e| Error::Other(format!("cannot install signal handler: {e}")))?;
                let tx = tx.clone();
                listeners.push(tokio::spawn(async move {
                    while s.recv().await.is_some() {
                        if tx.send((num, forward)).is_err() {
                            break;
                        }
                    }
                }));
            }
            let status = loop {
                tokio::select! {
                    status = self.child.wait() => break status,
                    Some((num, forward)) = rx.recv() => {
                        if let (true, Some(pid)) = (forward, pid) {
                            tracing::debug!(signal = num, pid, "forwarding signal to child");
                            // SAFETY: kill(2) with a pid we spawned and a valid signal number.
                            unsafe { libc::kill(pid, num) };
                        }
                    }
                }
            };
            for l in listeners {
                l.abort();
            }
            let status = status.map_err(|e| Error::Other(format!("cannot wait for the child: {e}")))?;
            Ok(exit_code(status))
        }
        #[cfg(not(unix))]
        {
            let status =
                self.child.wait().await.map_err(|e| Error::Other(format!("cannot wait for the child: {e}")))?;
            Ok(exit_code(status))
        }
    }
}

/// Spawns and waits; see [`Running::wait`].
pub async fn run(spec: &ChildSpec) -> Result<u8> {
    spawn(spec)?.wait().await
}

/// The exit code a shell would report: the code, or 128+n for a child killed by signal n.
pub fn exit_code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return u8::try_from(128 + sig).unwrap_or(1);
        }
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> ChildSpec {
        ChildSpec {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            set_env: vec![("WOCI_T".into(), "v".into())],
            remove_env: vec!["WOCI_GONE".into()],
            program_source: "test".into(),
        }
    }

    #[tokio::test]
    async fn passes_exit_code_and_env() {
        assert_eq!(run(&sh("exit 7")).await.unwrap(), 7);
        assert_eq!(run(&sh(r#"[ "$WOCI_T" = v ] && [ -z "$WOCI_GONE" ]"#)).await.unwrap(), 0);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn killed_by_signal_maps_to_128_plus_n() {
        assert_eq!(run(&sh("kill -TERM $$")).await.unwrap(), 128 + 15);
    }

    #[tokio::test]
    async fn missing_program_is_127_with_the_setting_named() {
        let spec =
            ChildSpec { program: "woci-no-such-program".into(), program_source: "`WOCI_OCI_COMMAND`".into(), ..sh("") };
        let e = spawn(&spec).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        assert!(e.to_string().contains("`WOCI_OCI_COMMAND`"), "{e}");
    }
}
