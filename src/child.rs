//! Running `oci` (or any `--exec` program).
//!
//! When nothing has to run beside it, woci replaces itself with the program ([`exec`], Unix
//! `execvp`): signals, the terminal, and the exit code are then the program's own. When woci must
//! stay (auto-refresh, proxy), [`run`] spawns it and returns its exit code (128+n when killed by
//! signal n). Each signal reaches the program once ([`Terminal`]): without a controlling terminal
//! (CI, systemd, cron) the program has a process group of its own, so a signal to woci's group (a
//! CI runner cancelling a job) reaches woci alone, which passes SIGTERM/SIGINT/SIGHUP/SIGQUIT/
//! SIGUSR1/SIGUSR2 on to the program's group. In a terminal the program shares woci's group (job
//! control); what the terminal sends to that group (Ctrl-C, Ctrl-\, a hangup when woci does not
//! lead the session) is not passed on again, only what is sent to woci (SIGTERM, SIGUSR1/2, the
//! hangup of a session woci leads; everything when woci runs in the background). The handlers
//! are installed before the child is spawned, so no signal falls in between.
//!
//! A spawned child must not outlive woci for long: it talks to woci's proxy, which dies with
//! woci. On Linux the child gets `PR_SET_PDEATHSIG` (set in the forked child before `exec`; it
//! fires when the spawning thread ends, and woci spawns from the thread that lives until exit):
//! SIGTERM at a terminal; SIGKILL without one, where woci passes every other signal on and waits,
//! so it dies first only by SIGKILL, a runner's last word to the job's group, which the program's
//! own group would otherwise escape. macOS has no parent-death signal; there the child finds the
//! proxy gone at its next request and fails, which is the documented limit.
//!
//! With a [`Redactor`] (`--debug`), stdout and stderr are piped and relayed through it, so the
//! program is spawned even where it would otherwise be exec'ed.

use crate::container::{self, HostContext, ProxyRoute};
use crate::error::{Error, Result};
use crate::proxy::ChildEnv;
use crate::redact::Redactor;
use crate::settings::{ContainerConfig, Env, Settings};
use std::ffi::OsString;
use std::io;
use std::process::{Command, ExitStatus};
#[cfg(unix)]
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncWrite};

/// A program to run, with the environment changes woci makes: built once by [`ChildBuilder`] and
/// not changed after. The argv never holds secrets; the proxy credentials travel in the
/// environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChildSpec {
    program: OsString,
    args: Vec<OsString>,
    set_env: Vec<(OsString, OsString)>,
    remove_env: Vec<OsString>,
    program_source: String,
    redactor: Option<Redactor>,
}

/// Builds the [`ChildSpec`] of `oci` (a local program, or a container run in container mode), of
/// an `--exec` program, or of a passthrough `oci`: the program, the guard and environment changes,
/// the `--debug` redactor, and — when the re-signing proxy runs — its variables, plus for a
/// container run (woci's own, or a `docker|podman run` given to `--exec`) host networking, the
/// variables passed by name and the CA bundle mounted.
#[derive(Debug)]
pub(crate) struct ChildBuilder {
    spec: ChildSpec,
    container: Option<(ContainerConfig, HostContext)>,
    proxy: Option<ChildEnv>,
}

impl ChildBuilder {
    /// `oci` with `args` as the settings choose it: the container image in container mode, else
    /// `oci_command` as found on PATH (never woci itself); with the self-recursion guard. Without
    /// settings (no HOME, a broken INI: help and `setup` still work) `WOCI_OCI_COMMAND` or `oci`.
    pub(crate) fn oci(settings: Option<&Settings>, env: &Env, args: Vec<OsString>) -> Result<ChildBuilder> {
        let mut b = match settings {
            Some(s) => {
                let mut b = ChildBuilder::program(s.oci_command.clone(), args, s.oci_command_source.clone());
                b.spec.remove_env = s.secret_env.iter().map(OsString::from).collect();
                if let Some(c) = &s.container {
                    let proxied = s.call_runs_proxy();
                    let host = HostContext::current(&s.oci_config_file, &s.home, env, proxied)?;
                    b.spec.program = c.runtime.clone();
                    b.spec.program_source =
                        "`oci_container_runtime` in woci_manager.ini (or install docker or podman)".into();
                    b.container = Some((c.clone(), host));
                }
                b
            }
            None => {
                let (program, source) = match env.get("WOCI_OCI_COMMAND").filter(|c| !c.is_empty()) {
                    Some(c) => (c.as_str(), "the `WOCI_OCI_COMMAND` environment variable"),
                    None => ("oci", crate::settings::OCI_COMMAND_UNSET),
                };
                ChildBuilder::program(program.into(), args, source.into())
            }
        };
        if b.container.is_none() {
            b.spec.program = crate::oci_program::resolve(&b.spec.program, env)?;
        }
        // (Grouped one-letter flags, `-di`, reach here one by one.)
        let interactive = b.spec.args.iter().any(|a| a == "-i" || a == "--cli-auto-prompt");
        b.spec.set_env.push(crate::oci_program::guard_env(&b.spec.program, interactive, env));
        Ok(b)
    }

    /// An `--exec` program: it gets the profile and auth, so scripts calling `oci` or the SDKs
    /// pick the same session, unless the user set them — a `--profile` or `--config-file` given
    /// on the command line beats an exported variable, as it does for woci; never woci's secret
    /// variables nor the recursion guard (it may call woci).
    pub(crate) fn exec(settings: &Settings, env: &Env, program: OsString, args: Vec<OsString>) -> ChildBuilder {
        let mut b = ChildBuilder::program(program, args, "the program after `--exec`".into());
        for (k, v, given) in [
            ("OCI_CLI_PROFILE", OsString::from(&settings.profile), settings.profile_on_cli),
            ("OCI_CLI_AUTH", "security_token".into(), false),
            (
                "OCI_CLI_CONFIG_FILE",
                settings.oci_config_file.clone().into_os_string(),
                settings.oci.config_file.is_some(),
            ),
        ] {
            if given || !crate::settings::is_set(env, k) {
                b.spec.set_env.push((k.into(), v));
            }
        }
        b.spec.remove_env = settings.secret_env.iter().map(OsString::from).collect();
        b.spec.remove_env.push(crate::oci_program::GUARD_VAR.into());
        b
    }

    fn program(program: OsString, args: Vec<OsString>, program_source: String) -> ChildBuilder {
        let spec = ChildSpec { program, args, program_source, ..ChildSpec::default() };
        ChildBuilder { spec, container: None, proxy: None }
    }

    /// The arguments (of `oci`, or of the `--exec` program).
    pub(crate) fn args(&self) -> &[OsString] {
        &self.spec.args
    }

    /// Sets `name` to `value` for the program whatever woci's environment says (the fallback
    /// profile's `OCI_CLI_PROFILE` for an `--exec` program).
    pub(crate) fn env_override(mut self, name: &str, value: impl Into<OsString>) -> ChildBuilder {
        self.spec.set_env.retain(|(k, _)| k != name);
        self.spec.set_env.push((name.into(), value.into()));
        self
    }

    /// Relays stdout/stderr through `redactor` (under `--debug`).
    pub(crate) fn redactor(mut self, redactor: Option<Redactor>) -> ChildBuilder {
        self.spec.redactor = redactor;
        self
    }

    /// Sends the child through the re-signing proxy.
    pub(crate) fn proxy(mut self, env: ChildEnv) -> ChildBuilder {
        self.proxy = Some(env);
        self
    }

    /// The spec.
    pub(crate) fn build(self) -> Result<ChildSpec> {
        let ChildBuilder { mut spec, container, proxy } = self;
        if let Some((c, host)) = &container {
            spec.args = container::run_args(c, host, spec.args)?;
        }
        if let Some(p) = proxy {
            let kind = container::is_container_run(&spec.program, &spec.args);
            // A container sees only the proxy and CA variables (the rest name host files).
            spec.set_env.extend(if kind.is_some() { p.container_vars() } else { p.set.clone() });
            spec.remove_env.extend(p.remove.iter().cloned());
            if let Some(r) = spec.redactor.as_mut() {
                for s in &p.secrets {
                    r.add_secret(s.expose());
                }
            }
            if let Some(kind) = kind {
                container::attach_proxy(kind, &mut spec.args, &mut spec.set_env, &p, ProxyRoute::for_this_host())?;
            }
        }
        Ok(spec)
    }
}

impl ChildSpec {
    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        for k in &self.remove_env {
            c.env_remove(k);
        }
        c.args(&self.args).envs(self.set_env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// The error of a `program` whose `#!` interpreter cannot run ([`missing_interpreter`]).
    fn interpreter_error(&self, program: String, bad: BadInterpreter) -> Error {
        let reason = format!("{}; {} or check {}", bad.why, bad.fix, self.program_source);
        match bad.env_looks_for {
            // `env` starts and exits 127 itself: the name it looks for is what is not found.
            Some(name) => Error::ProgramNotFound { program: name, hint: reason },
            None => Error::ProgramNotExecutable { program, reason },
        }
    }

    /// The error of starting the program.
    fn spawn_error(&self, e: io::Error) -> Error {
        let as_path = std::path::Path::new(&self.program);
        let program = self.program.to_string_lossy().into_owned();
        // What exec(2) says of a script whose `#!` chain is broken (ELOOP: too deep).
        let exec_failed = matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::NotADirectory
        ) || e.raw_os_error() == Some(libc::ELOOP);
        let interpreter =
            (exec_failed && as_path.components().count() > 1).then(|| missing_interpreter(as_path)).flatten();
        if let Some(bad) = interpreter {
            return self.interpreter_error(program, bad);
        }
        match e.kind() {
            io::ErrorKind::NotFound => {
                // A program someone named (a setting, `--exec`) is corrected; the default `oci`, set.
                let verb = if self.program_source == crate::settings::OCI_COMMAND_UNSET { "set" } else { "correct" };
                Error::ProgramNotFound { program, hint: format!("install it or {verb} {}", self.program_source) }
            }
            _ => Error::ProgramNotExecutable { program, reason: format!("{e}; check {}", self.program_source) },
        }
    }

    /// Whether the program would start, without starting it (for `--status`): it exists (on
    /// `PATH`, for a bare name) and is an executable file; the error is the one running it gives.
    pub(crate) fn check_runnable(&self, env: &Env) -> Result<()> {
        let p = std::path::Path::new(&self.program);
        let found = if p.is_absolute() || p.components().count() > 1 {
            Some(p.to_path_buf())
        } else {
            let Some(path) = crate::settings::path_var(env) else { return Ok(()) };
            let found = crate::fsutil::path_candidates(&path, p).find(|c| c.exists());
            found
        };
        match found.filter(|f| f.exists()) {
            None => Err(self.spawn_error(io::ErrorKind::NotFound.into())),
            Some(f) if !crate::fsutil::is_executable(&f) => {
                Err(self.spawn_error(io::Error::new(io::ErrorKind::PermissionDenied, "not an executable file")))
            }
            Some(f) => match missing_interpreter(&f) {
                Some(bad) => Err(self.interpreter_error(f.to_string_lossy().into_owned(), bad)),
                None => Ok(()),
            },
        }
    }
}

/// How many scripts Linux runs in one `#!` chain (a script, its interpreter, …): one more is
/// ELOOP, "Too many levels of symbolic links".
const KERNEL_SCRIPT_DEPTH: usize = 5;

/// What is wrong with the `#!` interpreter of the file `program`, if anything (a virtualenv whose
/// Python was upgraded away, one under another user's home, a `#!` line ending in CR): exec(2)
/// then fails "not found" or "permission denied" although the file itself is there. An
/// interpreter that is a script itself is looked at the same way, as deep as the kernel follows.
/// Only regular files are read (a FIFO would block).
fn missing_interpreter(program: &std::path::Path) -> Option<BadInterpreter> {
    use std::io::Read;
    const REINSTALL: &str = "reinstall it (a virtualenv whose Python was upgraded or removed?)";
    const DOS2UNIX: &str = "convert its line endings (`dos2unix`)";
    let mut program = program.to_path_buf();
    for depth in 0..=KERNEL_SCRIPT_DEPTH {
        if !std::fs::metadata(&program).is_ok_and(|m| m.is_file()) {
            return None;
        }
        let mut head = [0u8; 256];
        let n = std::fs::File::open(&program).and_then(|mut f| f.read(&mut head)).ok()?;
        let line = head[..n].strip_prefix(b"#!")?.split(|b| *b == b'\n').next()?;
        if depth == KERNEL_SCRIPT_DEPTH {
            let why = format!(
                "its `#!` interpreters are scripts {depth} deep down to `{}`, more than Linux follows",
                program.display()
            );
            return Some(BadInterpreter {
                why,
                fix: "have one of those scripts name a program, not a script, as its interpreter",
                env_looks_for: None,
            });
        }
        // As the kernel splits it: on spaces and tabs only, so a CR stays part of the name.
        let line = String::from_utf8_lossy(line);
        let interpreter = line.split([' ', '\t']).find(|w| !w.is_empty())?.to_owned();
        let crlf = interpreter.ends_with('\r');
        let note = if crlf { " (the `#!` line ends in CR: Windows line endings?)" } else { "" };
        // `#!/usr/bin/env python3\r` has `env` look for `python3\r` (exit 127). Other CR-ended
        // arguments are the interpreter's to take (`env -S` splits on the CR too) or refuse.
        let env_cr = line.ends_with('\r').then(|| env_looks_for(&line, &interpreter)).flatten();
        let why = match std::fs::metadata(&interpreter) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => "does not exist".to_owned(),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => "cannot be reached by this user".to_owned(),
            Err(e) => format!("cannot be used ({e})"),
            Ok(_) if !crate::fsutil::is_executable(std::path::Path::new(&interpreter)) => {
                "is not an executable file".to_owned()
            }
            Ok(_) if env_cr.is_some() => {
                let why = format!("the `#!` line of `{}` ends in CR (Windows line endings?)", program.display());
                return Some(BadInterpreter { why, fix: DOS2UNIX, env_looks_for: env_cr });
            }
            Ok(_) => {
                program = interpreter.into();
                continue;
            }
        };
        // An interpreter that is a script itself: the line that names the missing one is its.
        let line = match depth {
            0 => "its `#!` line".to_owned(),
            _ => format!("the `#!` line of `{}`", program.display()),
        };
        return Some(BadInterpreter {
            why: format!("its interpreter `{interpreter}` ({line}) {why}{note}"),
            fix: if crlf { DOS2UNIX } else { REINSTALL },
            env_looks_for: None,
        });
    }
    None
}

/// The one name `#!/usr/bin/env name` (no options) has `env` run, as the kernel passes it: the
/// rest of the line, a CR at its end included.
fn env_looks_for(line: &str, interpreter: &str) -> Option<String> {
    let arg = line.trim_start_matches([' ', '\t'])[interpreter.len()..].trim_start_matches([' ', '\t']);
    let is_env = std::path::Path::new(interpreter).file_name().is_some_and(|n| n == "env");
    let one_name = !arg.is_empty() && !arg.starts_with('-') && !arg.trim_end_matches('\r').contains([' ', '\t']);
    (is_env && one_name).then(|| arg.to_owned())
}

/// What [`missing_interpreter`] found: what is wrong, and the fix.
#[derive(Debug, PartialEq, Eq)]
struct BadInterpreter {
    why: String,
    /// What to do about it.
    fix: &'static str,
    /// The CR-ended name `#!/usr/bin/env name` has `env` look for (and exit 127).
    env_looks_for: Option<String>,
}

/// Runs the program in woci's place and returns its exit code. On Unix without a redactor woci
/// *replaces itself* with it (`execvp`) and this returns only on failure; otherwise the program is
/// spawned and waited for.
pub(crate) fn exec(spec: &ChildSpec) -> Result<u8> {
    #[cfg(unix)]
    if spec.redactor.is_none() {
        use std::os::unix::process::CommandExt;
        crate::hooks::finish();
        crate::critical::restore_for_child();
        crate::fsutil::restore_open_file_limit();
        let e = spec.command().exec();
        return Err(spec.spawn_error(e));
    }
    // From here on a signal is the child's: woci passes it on and ends when the child does (a
    // renewal before held signals with their default action kept, which would end woci at once).
    crate::critical::supervise();
    runtime(&mut tokio::runtime::Builder::new_current_thread())?.block_on(run(spec))
}

/// An async runtime from `builder` (I/O and timers on); the one place its failure is worded.
pub(crate) fn runtime(builder: &mut tokio::runtime::Builder) -> Result<tokio::runtime::Runtime> {
    builder.enable_all().build().map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))
}

/// A running child.
#[derive(Debug)]
pub(crate) struct Running {
    child: tokio::process::Child,
    /// Signal listeners, installed before the child exists, with each signal's number.
    #[cfg(unix)]
    signals: Vec<(tokio::signal::unix::Signal, i32)>,
    /// woci's terminal, which decides which signals are passed on.
    #[cfg(unix)]
    terminal: Terminal,
    /// Whether the child leads a process group of its own (forwarded signals go to that group).
    #[cfg(unix)]
    own_group: bool,
    relays: Vec<tokio::task::JoinHandle<()>>,
}

/// woci's place at a terminal, which decides how signals reach the program.
#[cfg(unix)]
#[derive(Debug)]
enum Terminal {
    /// No controlling terminal: every signal comes from a process, perhaps to woci's whole group.
    None,
    /// A controlling terminal whose foreground group is not known (it could not be opened):
    /// everything is passed on, as before woci looked.
    Unknown,
    /// A controlling terminal, held open: whether woci is in its foreground group is looked at
    /// when a signal comes, since a job moves (`&` then `fg`, Ctrl-Z then `bg`; review of
    /// round 105). In the foreground group Ctrl-C and Ctrl-\ signal the group whole; a hangup
    /// signals the session's leader, then the group when the leader is gone, so only woci when
    /// it leads the session (`ssh -t host woci …`, `script -c`).
    Tty {
        tty: std::fs::File,
        /// woci leads the session.
        leader: bool,
    },
}

#[cfg(unix)]
impl Terminal {
    fn of_this_process() -> Terminal {
        use std::os::unix::fs::OpenOptionsExt;
        // `/dev/tty` opens for a process with a controlling terminal only (else ENXIO; a sandbox
        // may have no such node). Another failure: as before woci knew this, everything passed on.
        match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC).open("/dev/tty") {
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENXIO | libc::ENOENT)) => Terminal::None,
            Err(_) => Terminal::Unknown,
            // SAFETY: getsid(0) and getpid cannot fail for the calling process.
            Ok(tty) => Terminal::Tty { tty, leader: unsafe { libc::getsid(0) == libc::getpid() } },
        }
    }

    /// Whether woci passes `signal` on: not what the terminal already sent the program.
    fn forwards(&self, signal: i32) -> bool {
        use std::os::unix::io::AsRawFd;
        match self {
            // SAFETY: tcgetpgrp on a descriptor we hold open; getpgrp cannot fail.
            Terminal::Tty { tty, leader } if unsafe { libc::tcgetpgrp(tty.as_raw_fd()) == libc::getpgrp() } => {
                match signal {
                    libc::SIGINT | libc::SIGQUIT => false,
                    libc::SIGHUP => *leader,
                    _ => true,
                }
            }
            _ => true,
        }
    }
}

/// Spawns the program: signal handlers first, then the child (stdio inherited, or relayed through
/// the spec's redactor).
pub(crate) fn spawn(spec: &ChildSpec) -> Result<Running> {
    #[cfg(unix)]
    let terminal = Terminal::of_this_process();
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{signal, SignalKind};
        let caught = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT, libc::SIGUSR1, libc::SIGUSR2];
        // A signal the caller ignored (`nohup`) stays ignored: no handler, so the child inherits it.
        caught
            .into_iter()
            .filter(|num| !crate::critical::ignored_at_start(*num))
            .map(|num| {
                let s = signal(SignalKind::from_raw(num))
                    .map_err(|e| Error::Other(format!("cannot install signal handler: {e}")))?;
                Ok((s, num))
            })
            .collect::<Result<Vec<_>>>()?
    };
    let mut cmd = tokio::process::Command::from(spec.command());
    cmd.kill_on_drop(false);
    #[cfg(unix)]
    let own_group = matches!(terminal, Terminal::None);
    #[cfg(unix)]
    if own_group {
        cmd.process_group(0);
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpid before the fork; in the child only async-signal-safe calls (prctl,
        // getppid, kill, getpid).
        let parent = unsafe { libc::getpid() };
        let on_death = if own_group { libc::SIGKILL } else { libc::SIGTERM };
        unsafe {
            cmd.pre_exec(move || {
                crate::critical::restore_for_child();
                crate::fsutil::restore_open_file_limit();
                libc::prctl(libc::PR_SET_PDEATHSIG, on_death as libc::c_ulong, 0, 0, 0);
                // woci died between fork and prctl: the signal would never come.
                if libc::getppid() != parent {
                    libc::kill(libc::getpid(), on_death);
                }
                Ok(())
            });
        }
    }
    if spec.redactor.is_some() {
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(|e| spec.spawn_error(e))?;
    let mut relays = Vec::new();
    if let Some(r) = &spec.redactor {
        let relay = |from: Box<dyn AsyncRead + Unpin + Send>, to: Box<dyn AsyncWrite + Unpin + Send>| {
            let r = r.clone();
            tokio::spawn(async move {
                let _ = r.relay(from, to).await;
            })
        };
        relays.extend(child.stdout.take().map(|out| relay(Box::new(out), Box::new(tokio::io::stdout()))));
        relays.extend(child.stderr.take().map(|err| relay(Box::new(err), Box::new(tokio::io::stderr()))));
    }
    tracing::debug!(pid = child.id(), program = %spec.program.to_string_lossy(), "started child");
    Ok(Running {
        child,
        #[cfg(unix)]
        signals,
        #[cfg(unix)]
        own_group,
        #[cfg(unix)]
        terminal,
        relays,
    })
}

impl Running {
    /// Waits for the child, forwarding signals to it; returns its exit code.
    pub(crate) async fn wait(mut self) -> Result<u8> {
        let code = self.wait_child().await;
        // The relays end at the child's EOF; a grandchild holding the pipes gets a moment only.
        for r in std::mem::take(&mut self.relays) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), r).await;
        }
        code
    }

    async fn wait_child(&mut self) -> Result<u8> {
        #[cfg(unix)]
        let status = loop {
            let pid = self.child.id().and_then(|p| i32::try_from(p).ok());
            let signalled = std::future::poll_fn(|cx| {
                let mut received = self.signals.iter_mut().map(|(s, num)| (s.poll_recv(cx), *num));
                received
                    .find(|(r, _)| matches!(r, Poll::Ready(Some(()))))
                    .map_or(Poll::Pending, |(_, num)| Poll::Ready(num))
            });
            tokio::select! {
                status = self.child.wait() => break status,
                num = signalled => {
                    if let (true, Some(pid)) = (self.terminal.forwards(num), pid) {
                        FORWARDED.store(true, std::sync::atomic::Ordering::SeqCst);
                        tracing::debug!(signal = num, pid, own_group = self.own_group, "forwarding signal to child");
                        // Its group, as a signal to woci's group would have reached it.
                        let to = if self.own_group { -pid } else { pid };
                        // SAFETY: kill(2) with a pid (group) we spawned and a valid signal number.
                        unsafe { libc::kill(to, num) };
                    }
                }
            }
        };
        #[cfg(not(unix))]
        let status = self.child.wait().await;
        let status = status.map_err(|e| Error::Other(format!("cannot wait for the child: {e}")))?;
        #[cfg(unix)]
        if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&status) {
            CHILD_SIGNAL.store(sig, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(exit_code(status))
    }
}

/// The signal that ended the last child woci waited for (0: none): once everything is cleaned up,
/// woci ends by it too ([`end_like_child`]).
static CHILD_SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Whether woci passed a signal on to its child (a Ctrl-C, a stop): its failure is no clue then.
static FORWARDED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the last child was ended by a signal, or woci passed one on to it.
pub(crate) fn signalled() -> bool {
    FORWARDED.load(std::sync::atomic::Ordering::SeqCst) || CHILD_SIGNAL.load(std::sync::atomic::Ordering::SeqCst) != 0
}

/// Ends woci by the signal that ended its child, if one did (see [`crate::critical::end_like`]);
/// returns when it does not (no such child, or a signal that dumps core).
pub(crate) fn end_like_child() {
    let sig = CHILD_SIGNAL.load(std::sync::atomic::Ordering::SeqCst);
    if sig != 0 {
        crate::critical::end_like(sig);
    }
}

/// Spawns and waits; see [`Running::wait`].
pub(crate) async fn run(spec: &ChildSpec) -> Result<u8> {
    spawn(spec)?.wait().await
}

/// The exit code a shell would report: the code, or 128+n for a child killed by signal n.
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
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
            redactor: None,
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

    /// Runs a script just written (output dropped). A test forking in another thread may hold
    /// the write's descriptor a moment longer (ETXTBSY): tried again then.
    fn run_fresh_script(path: &std::path::Path) -> std::process::ExitStatus {
        loop {
            let run = std::process::Command::new(path)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            match run {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => sleep_a_little(),
                run => return run.unwrap(),
            };
        }
    }

    fn sleep_a_little() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    /// The error of spawning a script just written ([`run_fresh_script`]'s ETXTBSY aside).
    fn spawn_fresh_failing(spec: &ChildSpec) -> Error {
        loop {
            match spawn(spec).unwrap_err() {
                e if e.to_string().contains("Text file busy") => sleep_a_little(),
                e => return e,
            }
        }
    }

    #[tokio::test]
    async fn missing_program_is_127_with_the_setting_named() {
        let spec =
            ChildSpec { program: "woci-no-such-program".into(), program_source: "`WOCI_OCI_COMMAND`".into(), ..sh("") };
        let e = spawn(&spec).unwrap_err();
        assert_eq!(e.exit_code(), 127);
        assert!(e.to_string().contains("`WOCI_OCI_COMMAND`"), "{e}");
    }

    /// A script whose `#!` interpreter is gone (a virtualenv after a Python upgrade) exists: the
    /// error names the interpreter, for the run and for `--status`'s look alike.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_missing_interpreter_is_named_not_the_script() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("oci");
        std::fs::write(&script, "#!/woci-gone/bin/python3 -s\nprint(1)\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let env: Env = [("PATH".to_owned(), dir.path().display().to_string())].into_iter().collect();
        for spec in
            [ChildSpec { program: script.clone().into(), ..sh("") }, ChildSpec { program: "oci".into(), ..sh("") }]
        {
            let e = spec.check_runnable(&env).unwrap_err();
            assert_eq!(e.exit_code(), 126, "{e}");
            assert!(e.to_string().contains("interpreter `/woci-gone/bin/python3`"), "{e}");
        }
        let e = spawn_fresh_failing(&ChildSpec { program: script.clone().into(), ..sh("") });
        assert!(e.exit_code() == 126 && e.to_string().contains("`/woci-gone/bin/python3`"), "{e}");
        // A CR at the end of the line is part of the name, as the kernel reads it; an interpreter
        // that is a script is followed; a FIFO is not opened (it would block).
        let crlf = dir.path().join("crlf");
        std::fs::write(&crlf, "#!/bin/sh\r\necho\r\n").unwrap();
        let nested = dir.path().join("nested");
        std::fs::write(&nested, format!("#!{}\n", script.display())).unwrap();
        for p in [&crlf, &nested] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert!(missing_interpreter(&crlf).is_some_and(|w| w.fix.contains("dos2unix") && w.why.contains("ends in CR")));
        let inner = format!("`/woci-gone/bin/python3` (the `#!` line of `{}`)", script.display());
        assert!(missing_interpreter(&nested).is_some_and(|w| w.why.contains(&inner)), "{inner}");
        // `env` runs, then looks for `sh\r` and exits 127: predicted as that, with the cause.
        let env_crlf = dir.path().join("env-crlf");
        std::fs::write(&env_crlf, "#!/usr/bin/env sh\r\necho\r\n").unwrap();
        let env_s = dir.path().join("env-s");
        std::fs::write(&env_s, "#!/usr/bin/env -S sh -e\r\necho\r\n").unwrap();
        for p in [&env_crlf, &env_s] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let e = ChildSpec { program: env_crlf.clone().into(), ..sh("") }.check_runnable(&env).unwrap_err();
        assert_eq!(e.exit_code(), 127, "{e}");
        assert!(e.to_string().starts_with("`sh\r` not found: the `#!` line of"), "{e}");
        assert!(e.to_string().contains("ends in CR") && e.to_string().contains("dos2unix"), "{e}");
        let ran = run_fresh_script(&env_crlf);
        assert_eq!(ran.code(), Some(127), "the prediction is what running it gives");
        // `env -S` splits on the CR as on a space: it runs, and is not foretold to fail.
        assert!(ChildSpec { program: env_s.clone().into(), ..sh("") }.check_runnable(&env).is_ok());
        // A chain of scripts as deep as the kernel follows runs; one more is ELOOP, foretold.
        let mut chain = vec![dir.path().join("s0")];
        std::fs::write(&chain[0], "#!/bin/sh\necho\n").unwrap();
        for i in 1..=KERNEL_SCRIPT_DEPTH {
            let next = dir.path().join(format!("s{i}"));
            std::fs::write(&next, format!("#!{}\n", chain[i - 1].display())).unwrap();
            chain.push(next);
        }
        for p in &chain {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let deepest_runnable = &chain[KERNEL_SCRIPT_DEPTH - 1];
        assert_eq!(missing_interpreter(deepest_runnable), None);
        let ran = run_fresh_script(deepest_runnable);
        assert!(ran.success(), "the kernel runs {KERNEL_SCRIPT_DEPTH} scripts in a chain");
        let too_deep = ChildSpec { program: chain[KERNEL_SCRIPT_DEPTH].clone().into(), ..sh("") };
        let said = too_deep.check_runnable(&env).unwrap_err();
        assert!(said.exit_code() == 126 && said.to_string().contains("more than Linux follows"), "{said}");
        let e = spawn_fresh_failing(&too_deep);
        assert_eq!(e.to_string(), said.to_string(), "the run says what --status foretold");
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert_eq!(missing_interpreter(&fifo), None);
    }
}
