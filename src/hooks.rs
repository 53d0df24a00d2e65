//! The operator's hooks: `on_renewal_failure` after a failed renewal attempt, `on_expiring` (with
//! the `woci: warning:` line) when the session's hard end or the refresh token's expiry is near.
//!
//! - A hook is a command line split like a `command:` subject-token source (`shlex`) and run
//!   without a shell, in its own process group, stdin one JSON object (then a newline), bounded
//!   to [`TIMEOUT`] after which the whole group is killed. Its stdout and stderr reach woci's
//!   stderr (woci's stdout belongs to `oci`) as whole lines, each `woci: hook <setting>: …` (in the daemon's log with its time and pid), at
//!   most [`OUTPUT_CAP`] of them: nothing it prints runs into woci's own lines, and a child it
//!   leaves behind never writes there once the hook is done.
//! - A hook runs beside woci, not in its way: a renewal loop (the daemon, `--exec`) goes on while
//!   it runs, and [`finish`] waits for every hook still running before woci ends.
//! - It never gets a secret: the JSON holds an error's text (secret-free by construction), its
//!   argv is the configured line, and its environment is woci's minus every variable that holds
//!   a secret ([`HookEnv`]).
//! - Its failure is one warning line; nothing here returns an error, so it cannot change woci's
//!   exit code.
//! - Rate limits persist in the session folder (`woci-hooks.json`, updated under `.hooks.lock`):
//!   `renewal_failed` once per profile and class per [`FAILURE_PERIOD`], `expiring` (line and
//!   hook) once per profile and `what` per [`EXPIRING_PERIOD`], across every woci process.
//!
//! Deciding whether a hook runs takes a lock: async callers use `spawn_blocking`.

use crate::error::{Error, Result};
use crate::expiry::{self, Expiring};
use crate::fsutil::{self, FileLock};
use crate::metrics::Class;
use crate::settings::Env;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a hook may run before its process group is killed.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a hook's output (stdout and stderr together) reaches woci's stderr.
pub(crate) const OUTPUT_CAP: usize = 64 * 1024;
/// A line longer than this is shown in pieces of it.
const LINE_MAX: usize = 4096;
/// How long woci reads a finished hook's output still held open by a child it left running.
const OUTPUT_GRACE: Duration = Duration::from_millis(200);
/// `on_renewal_failure` runs at most once per profile and class in this period.
pub(crate) const FAILURE_PERIOD: Duration = Duration::from_secs(600);
/// The expiry warning and `on_expiring` happen at most once per profile and `what` in this period.
pub(crate) const EXPIRING_PERIOD: Duration = Duration::from_secs(3600);

/// The rate-limit record in the session folder.
pub(crate) const STATE_FILE: &str = "woci-hooks.json";
const LOCK_FILE: &str = ".hooks.lock";
const LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// The hook started last (it joins the one before it), joined by [`finish`].
static LAST: std::sync::Mutex<Option<std::thread::JoinHandle<()>>> = std::sync::Mutex::new(None);

/// A configured hook command. `Debug` shows the setting and the program only: the arguments may
/// hold credentials (a webhook URL with a token).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Hook {
    setting: String,
    argv: Vec<String>,
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hook({}: {})", self.setting, self.program())
    }
}

impl Hook {
    /// A hook from a command line the settings already split (their `Command` rule), with a
    /// leading `~` of the program expanded to `home`.
    pub(crate) fn from_argv(mut argv: Vec<String>, setting: &str, home: &Path) -> Result<Hook> {
        let Some(program) = argv.first_mut() else {
            return Err(Error::Config(format!("`{setting}` names no command")));
        };
        if program.starts_with('~') {
            *program = fsutil::expand_home(&*program, home).to_string_lossy().into_owned();
        }
        Ok(Hook { setting: setting.to_owned(), argv })
    }

    /// The program.
    pub(crate) fn program(&self) -> &str {
        &self.argv[0]
    }
}

/// The environment hooks run with: woci's own minus every variable that holds a secret. Built
/// only by [`HookEnv::new`], so a hook cannot be run with the raw environment.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct HookEnv(Env);

impl fmt::Debug for HookEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("HookEnv").field(&names).finish()
    }
}

impl HookEnv {
    /// `env` without `secret_vars` (the caller's list: the refresh-token passphrase variable, an
    /// `env:` subject-token source, …), every `WOCI_*PASSPHRASE*`, `ACTIONS_ID_TOKEN_REQUEST_TOKEN`,
    /// `OCI_CLI_PASSPHRASE`, `OCI_CLI_KEY_CONTENT`, and any `*_proxy` variable whose URL carries
    /// credentials.
    pub(crate) fn new(env: &Env, secret_vars: &[String]) -> HookEnv {
        let secret = |k: &str, v: &str| {
            let upper = k.to_ascii_uppercase();
            secret_vars.iter().any(|s| s == k)
                || k == crate::settings::GH_TOKEN_VAR
                || crate::settings::is_key_secret_var(k)
                || (upper.ends_with("_PROXY") && upper != "NO_PROXY" && proxy_has_credentials(v))
        };
        HookEnv(env.iter().filter(|(k, v)| !secret(k, v)).map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

/// Whether a proxy URL (`http://user:pass@host:3128`, or without scheme) has a user part.
fn proxy_has_credentials(v: &str) -> bool {
    let rest = v.split_once("://").map_or(v, |(_, r)| r);
    rest.split(['/', '?', '#']).next().is_some_and(|authority| authority.contains('@'))
}

/// A failed renewal attempt, as the `on_renewal_failure` hook gets it (its stdin: this as JSON,
/// times as RFC 3339).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "event", rename = "renewal_failed")]
pub(crate) struct RenewalFailed<'a> {
    /// The profile.
    pub profile: &'a str,
    /// The failure's class (never [`Class::Ok`]).
    pub class: Class,
    /// The error's one-line text (woci's errors never hold a secret).
    pub message: &'a str,
    /// woci's exit code for this failure.
    pub exit_code: u8,
    /// When it failed (epoch seconds).
    #[serde(serialize_with = "utc")]
    pub at: i64,
    /// The current token's `exp`, when there is one.
    #[serde(serialize_with = "utc_opt")]
    pub token_expires_at: Option<i64>,
}

fn utc<S: serde::Serializer>(t: &i64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::clock::fmt_utc(*t))
}

fn utc_opt<S: serde::Serializer>(t: &Option<i64>, s: S) -> std::result::Result<S::Ok, S::Error> {
    t.map(crate::clock::fmt_utc).serialize(s)
}

#[derive(Serialize)]
#[serde(tag = "event", rename = "expiring")]
struct ExpiringJson<'a> {
    profile: &'a str,
    what: &'static str,
    #[serde(serialize_with = "utc")]
    expires_at: i64,
}

/// After a failed renewal attempt: starts `hook` unless it already ran for this profile and class
/// within [`FAILURE_PERIOD`].
pub(crate) fn on_renewal_failure(session_dir: &Path, hook: &Hook, event: &RenewalFailed<'_>, env: &HookEnv) {
    let key = format!("renewal_failed:{}", event.class.as_str());
    if claim(session_dir, &key, event.at, FAILURE_PERIOD) {
        run_and_warn(hook, event, env);
    }
}

/// For each deadline [`expiry::expiring`] found: unless done for this profile and `what` within
/// [`EXPIRING_PERIOD`], prints the warning line and starts `hook` (when configured).
pub(crate) fn warn_expiring(
    session_dir: &Path,
    profile: &str,
    found: &[Expiring],
    hook: Option<&Hook>,
    env: &HookEnv,
    now: i64,
) {
    for e in found.iter().filter(|e| claim(session_dir, &expiring_key(e), now, EXPIRING_PERIOD)) {
        tracing::warn!("{}", expiry::warning_line(profile, e, now));
        if let Some(hook) = hook {
            run_and_warn(hook, &ExpiringJson { profile, what: e.what.as_str(), expires_at: e.at }, env);
        }
    }
}

fn expiring_key(e: &Expiring) -> String {
    format!("expiring:{}", e.what.as_str())
}

/// The warnings of `found` that have not been given in the last [`EXPIRING_PERIOD`], by the
/// record read without its lock: the common case (warned already this hour) then takes no lock
/// and prepares no hook. [`warn_expiring`] still claims each under the lock.
pub(crate) fn expiring_due(session_dir: &Path, found: Vec<Expiring>, now: i64) -> Vec<Expiring> {
    let Ok(fired) = read_record(&session_dir.join(STATE_FILE)) else { return found };
    found.into_iter().filter(|e| !fired_within(&fired, &expiring_key(e), now, EXPIRING_PERIOD)).collect()
}

/// The hook record: when each key last fired. An unreadable one counts as empty (it is replaced:
/// at worst one hook runs again).
fn read_record(path: &Path) -> Result<BTreeMap<String, i64>> {
    Ok(fsutil::read_optional(path)?.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default())
}

/// Within a period either way: concurrent callers' times may be a second out of order.
fn fired_within(fired: &BTreeMap<String, i64>, key: &str, now: i64, period: Duration) -> bool {
    fired.get(key).is_some_and(|&last| now.abs_diff(last) < period.as_secs())
}

/// Records that `key` fires at `now` and says whether it may: not when it fired less than
/// `period` before or after `now` (a clock set back by more than a period fires again). Any problem (no session folder, a lock
/// held too long) means no: a hook that cannot be limited does not run.
fn claim(session_dir: &Path, key: &str, now: i64, period: Duration) -> bool {
    try_claim(session_dir, key, now, period).unwrap_or_else(|e| {
        tracing::warn!("cannot rate-limit `{key}` hook, so it does not run (it could run on every call): {e}");
        false
    })
}

fn try_claim(session_dir: &Path, key: &str, now: i64, period: Duration) -> Result<bool> {
    if !crate::fsutil::is_real_dir(session_dir) {
        tracing::debug!("no session folder `{}`: `{key}` not fired", session_dir.display());
        return Ok(false);
    }
    let _lock = FileLock::acquire(&session_dir.join(LOCK_FILE), LOCK_TIMEOUT)?;
    let path = session_dir.join(STATE_FILE);
    let mut fired = read_record(&path)?;
    if fired_within(&fired, key, now, period) {
        return Ok(false);
    }
    fired.insert(key.to_owned(), now);
    let json = serde_json::to_vec(&fired).map_err(|e| Error::Other(format!("cannot encode hook record: {e}")))?;
    fsutil::write_atomic(&path, &json)?;
    Ok(true)
}

/// Starts `hook` with `event` on a thread of its own, after the hooks started before it (one
/// hook at a time, in order, as when woci waited for each); [`finish`] joins them.
fn run_and_warn(hook: &Hook, event: &impl Serialize, env: &HookEnv) {
    let mut json = match serde_json::to_vec(event) {
        Ok(j) => j,
        Err(e) => return tracing::warn!("cannot encode the `{}` event: {e}", hook.setting),
    };
    json.push(b'\n');
    let (hook, env) = (hook.clone(), env.clone());
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    let before = last.take();
    *last = Some(std::thread::spawn(move || {
        if let Some(before) = before {
            let _ = before.join();
        }
        if let Err(why) = run(&hook, json, &env, TIMEOUT) {
            tracing::warn!("`{}` hook `{}` {why}", hook.setting, hook.program());
        }
    }));
}

/// Waits for every hook still running or waiting to run (each bounded by [`TIMEOUT`]); called
/// before woci ends or replaces itself with `oci`.
pub(crate) fn finish() {
    // Held while joining: a second caller returns only once those hooks ended too, not at once
    // because the first took them (the unit tests, each waiting for its own, raced so).
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(last) = last.take() {
        let _ = last.join();
    }
}

/// Runs `hook` with `stdin` and `env`, waits at most `timeout`, then kills its process group.
/// `Err` says what went wrong, in words that follow the program's name.
fn run(hook: &Hook, stdin: Vec<u8>, env: &HookEnv, timeout: Duration) -> std::result::Result<(), String> {
    let mut cmd = Command::new(hook.program());
    cmd.args(&hook.argv[1..]).env_clear().envs(&env.0).stdin(Stdio::piped()).stdout(Stdio::piped());
    cmd.stderr(Stdio::piped());
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "cannot run: not found".to_owned(),
        std::io::ErrorKind::PermissionDenied => "cannot run: not executable".to_owned(),
        _ => format!("cannot run: {e}"),
    })?;
    // While woci waits for it, a signal that ends woci ends the hook's group too.
    let _owned = i32::try_from(child.id()).ok().filter(|_| cfg!(unix)).map(crate::critical::own_group);
    // A writer thread: a hook that never reads its stdin cannot block woci past the timeout.
    if let Some(mut pipe) = child.stdin.take() {
        std::thread::spawn(move || {
            let _ = pipe.write_all(&stdin);
        });
    }
    let output = Output::relay(&hook.setting, child.stdout.take(), child.stderr.take());
    // Still running at the deadline, or cannot be waited for: it is stopped.
    let pauses = (Duration::from_millis(1), Duration::from_millis(50));
    let status = fsutil::retry_until(timeout, pauses, || child.try_wait().map_or(Some(None), |s| s.map(Some)));
    let result = match status.flatten() {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(match status.code() {
            Some(c) => format!("exited with {c}"),
            #[cfg(unix)]
            None => match std::os::unix::process::ExitStatusExt::signal(&status) {
                Some(sig) => format!("was killed by signal {sig}"),
                None => "was killed by a signal".to_owned(),
            },
            #[cfg(not(unix))]
            None => "was killed by a signal".to_owned(),
        }),
        None => {
            if let Ok(pgid) = i32::try_from(child.id()) {
                // The group is the hook's own (process_group(0)).
                fsutil::signal_group(pgid, fsutil::Signal::Kill);
            }
            let _ = child.kill();
            let _ = child.wait();
            Err(format!("did not finish within {}s and was stopped", timeout.as_secs()))
        }
    };
    output.finish();
    result
}

/// A hook's stdout and stderr, relayed to woci's stderr line by line by one thread each.
struct Output {
    setting: String,
    done: std::sync::mpsc::Receiver<()>,
    readers: usize,
    shown: std::sync::Arc<std::sync::Mutex<OutputState>>,
}

#[derive(Default)]
struct OutputState {
    bytes: usize,
    cut: bool,
}

impl Output {
    fn relay(
        setting: &str,
        stdout: Option<impl Read + Send + 'static>,
        stderr: Option<impl Read + Send + 'static>,
    ) -> Output {
        let (tx, done) = std::sync::mpsc::channel();
        let shown = std::sync::Arc::new(std::sync::Mutex::new(OutputState::default()));
        let mut readers = 0;
        let pipes: [Option<Box<dyn Read + Send>>; 2] =
            [stdout.map(|p| Box::new(p) as Box<dyn Read + Send>), stderr.map(|p| Box::new(p) as _)];
        for pipe in pipes.into_iter().flatten() {
            let (tx, shown, prefix) = (tx.clone(), shown.clone(), format!("hook {setting}: "));
            readers += 1;
            std::thread::spawn(move || {
                relay_lines(pipe, &prefix, &shown);
                let _ = tx.send(());
            });
        }
        Output { setting: setting.to_owned(), done, readers, shown }
    }

    /// Waits a moment for the pipes to close (a child the hook left may hold them: its output is
    /// not shown); says so when output was cut.
    fn finish(self) {
        let deadline = std::time::Instant::now() + OUTPUT_GRACE;
        for _ in 0..self.readers {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if self.done.recv_timeout(left).is_err() {
                break;
            }
        }
        let mut shown = self.shown.lock().unwrap_or_else(|e| e.into_inner());
        if shown.cut {
            shown.cut = false;
            crate::logging::say(&format!("hook {}: output past {} KiB not shown", self.setting, OUTPUT_CAP / 1024));
        }
        // Nothing more is shown, even if a reader is still blocked on a left child's pipe.
        shown.bytes = usize::MAX;
    }
}

/// Shows each line read from `pipe` (a piece of [`LINE_MAX`] bytes at most) with `prefix`, while
/// the hook's output stays under [`OUTPUT_CAP`]; reads the rest and drops it, so the hook never
/// blocks on a full pipe.
fn relay_lines(pipe: impl Read, prefix: &str, shown: &std::sync::Mutex<OutputState>) {
    let mut reader = std::io::BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        let Ok(1..) = std::io::BufRead::read_until(&mut (&mut reader).take(LINE_MAX as u64), b'\n', &mut line) else {
            return;
        };
        let mut state = shown.lock().unwrap_or_else(|e| e.into_inner());
        if state.bytes == usize::MAX {
            continue;
        }
        if state.bytes + line.len() > OUTPUT_CAP {
            // The first 64 KiB, not a shorter line after the cut.
            (state.cut, state.bytes) = (true, OUTPUT_CAP + 1);
            continue;
        }
        state.bytes += line.len();
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        crate::logging::say(&format!("{prefix}{}", crate::terminal::safe(text)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::expiry::What;
    use std::path::PathBuf;

    const T0: u64 = 1_700_000_000;

    /// A session folder and a hook script that records its stdin, argv and environment, one
    /// numbered set of files per run.
    struct Rig {
        _tmp: tempfile::TempDir,
        session: PathBuf,
        out: PathBuf,
    }

    impl Rig {
        fn new() -> Rig {
            let tmp = tempfile::tempdir().unwrap();
            let session = tmp.path().join("sessions/prod");
            let out = tmp.path().join("out");
            std::fs::create_dir_all(&session).unwrap();
            std::fs::create_dir_all(&out).unwrap();
            Rig { _tmp: tmp, session, out }
        }

        /// `sh -c SCRIPT hook ARGS…` with `$OUT` the output folder.
        fn hook(&self, setting: &str, script: &str) -> Hook {
            let line = format!(
                "sh -c {} hook 'arg one' two",
                shlex::try_quote(&format!("OUT={}; {script}", self.out.display())).unwrap()
            );
            parse(&line, setting, Path::new("/home/u"))
        }

        fn recorder(&self, setting: &str) -> Hook {
            self.hook(
                setting,
                r#"n=$(ls "$OUT" | grep -c stdin); cat > "$OUT/stdin.$n"; env > "$OUT/env.$n"; printf '%s\n' "$@" > "$OUT/argv.$n""#,
            )
        }

        fn runs(&self) -> usize {
            finish();
            std::fs::read_dir(&self.out)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("stdin"))
                .count()
        }

        fn file(&self, name: &str) -> String {
            finish();
            std::fs::read_to_string(self.out.join(name)).unwrap()
        }
    }

    fn env() -> Env {
        [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", "/home/u"),
            ("WOCI_RT_PASSPHRASE", "s3cret-pass"),
            ("MY_PASS_VAR", "s3cret-custom"),
            ("CI_JOB_JWT", "s3cret-jwt"),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "s3cret-bearer"),
            ("OCI_CLI_KEY_CONTENT", "s3cret-key"),
            ("HTTPS_PROXY", "http://user:s3cret-proxy@proxy:3128"),
            ("http_proxy", "http://proxy:3128"),
            ("NO_PROXY", "localhost"),
            ("LANG", "C.UTF-8"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn hook_env() -> HookEnv {
        HookEnv::new(&env(), &["MY_PASS_VAR".to_owned(), "CI_JOB_JWT".to_owned()])
    }

    fn failed(class: Class, at: i64) -> RenewalFailed<'static> {
        RenewalFailed {
            profile: "prod",
            class,
            message: "identity provider unreachable at `https://idp/token`: timeout",
            exit_code: 6,
            at,
            token_expires_at: Some(at + 90),
        }
    }

    /// A hook from a command line split as the settings split it.
    fn parse(line: &str, setting: &str, home: &Path) -> Hook {
        Hook::from_argv(crate::settings::rules::command(line).unwrap(), setting, home).unwrap()
    }

    #[test]
    fn the_program_is_expanded_and_debug_never_shows_the_arguments() {
        let home = Path::new("/home/u");
        let h = parse("notify-send 'woci failed' --urgency=critical", "on_renewal_failure", home);
        assert_eq!(h.argv, ["notify-send", "woci failed", "--urgency=critical"]);
        assert_eq!(format!("{h:?}"), "Hook(on_renewal_failure: notify-send)");
        let h = parse("~/bin/notify ~/x", "on_expiring", home);
        assert_eq!(h.argv, ["/home/u/bin/notify", "~/x"], "only the program is expanded");
        let e = Hook::from_argv(Vec::new(), "on_expiring", home).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
        assert_eq!(e.to_string(), "`on_expiring` names no command");
    }

    #[test]
    fn the_environment_loses_every_secret() {
        let e = hook_env();
        let mut names: Vec<&str> = e.0.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["HOME", "LANG", "NO_PROXY", "PATH", "http_proxy"]);
        assert!(proxy_has_credentials("user:pw@proxy:8080"));
        assert!(!proxy_has_credentials("http://proxy:8080/a@b"));
        assert!(!format!("{e:?}").contains("s3cret"));
    }

    #[test]
    fn a_renewal_failure_hook_gets_the_event_and_nothing_secret() {
        let r = Rig::new();
        let clock = ManualClock::at(T0);
        on_renewal_failure(
            &r.session,
            &r.recorder("on_renewal_failure"),
            &failed(Class::Network, clock.unix()),
            &hook_env(),
        );
        assert_eq!(r.runs(), 1);
        assert_eq!(
            r.file("stdin.0"),
            "{\"event\":\"renewal_failed\",\"profile\":\"prod\",\"class\":\"network\",\
             \"message\":\"identity provider unreachable at `https://idp/token`: timeout\",\"exit_code\":6,\
             \"at\":\"2023-11-14T22:13:20Z\",\"token_expires_at\":\"2023-11-14T22:14:50Z\"}\n"
        );
        assert_eq!(r.file("argv.0"), "arg one\ntwo\n");
        let seen = r.file("env.0");
        assert!(!seen.contains("s3cret"), "{seen}");
        assert!(seen.contains("PATH=/usr/local/bin:/usr/bin:/bin") && seen.contains("http_proxy=http://proxy:3128"));
        // No token: `null`.
        let mut no_token = failed(Class::Source, clock.unix());
        no_token.token_expires_at = None;
        on_renewal_failure(&r.session, &r.recorder("on_renewal_failure"), &no_token, &hook_env());
        assert!(
            r.file("stdin.1").contains("\"class\":\"source\"")
                && r.file("stdin.1").contains("\"token_expires_at\":null")
        );
    }

    #[test]
    fn a_renewal_failure_hook_runs_once_per_class_and_ten_minutes() {
        let r = Rig::new();
        let clock = ManualClock::at(T0);
        let hook = r.recorder("on_renewal_failure");
        for _ in 0..5 {
            on_renewal_failure(&r.session, &hook, &failed(Class::Network, clock.unix()), &hook_env());
            clock.advance(Duration::from_secs(60));
        }
        assert_eq!(r.runs(), 1);
        on_renewal_failure(&r.session, &hook, &failed(Class::Auth, clock.unix()), &hook_env());
        assert_eq!(r.runs(), 2, "another class has its own limit");
        clock.advance(Duration::from_secs(300));
        // 10 minutes after the first network failure.
        on_renewal_failure(&r.session, &hook, &failed(Class::Network, clock.unix()), &hook_env());
        assert_eq!(r.runs(), 3);
        // Another profile (another session folder) has its own limit.
        let other = r.session.with_file_name("dev");
        std::fs::create_dir_all(&other).unwrap();
        on_renewal_failure(&other, &hook, &failed(Class::Network, clock.unix()), &hook_env());
        assert_eq!(r.runs(), 4);
    }

    #[test]
    fn concurrent_failures_run_the_hook_once() {
        let r = Rig::new();
        let hook = r.recorder("on_renewal_failure");
        let env = hook_env();
        std::thread::scope(|s| {
            for i in 0..20 {
                let (r, hook, env) = (&r, &hook, &env);
                s.spawn(move || on_renewal_failure(&r.session, hook, &failed(Class::Auth, T0 as i64 + i), env));
            }
        });
        assert_eq!(r.runs(), 1);
    }

    #[test]
    fn expiry_warnings_run_once_per_what_and_hour() {
        let r = Rig::new();
        let clock = ManualClock::at(T0);
        let hook = r.recorder("on_expiring");
        let now = clock.unix();
        let found =
            [Expiring { what: What::Session, at: now + 7200 }, Expiring { what: What::RefreshToken, at: now + 600 }];
        // 100 calls in a minute.
        for _ in 0..100 {
            warn_expiring(&r.session, "prod", &found, Some(&hook), &hook_env(), clock.unix());
        }
        assert_eq!(r.runs(), 2);
        assert_eq!(r.file("stdin.0"), "{\"event\":\"expiring\",\"profile\":\"prod\",\"what\":\"session\",\"expires_at\":\"2023-11-15T00:13:20Z\"}\n");
        assert_eq!(r.file("stdin.1"), "{\"event\":\"expiring\",\"profile\":\"prod\",\"what\":\"refresh_token\",\"expires_at\":\"2023-11-14T22:23:20Z\"}\n");
        clock.advance(Duration::from_secs(3599));
        warn_expiring(&r.session, "prod", &found, Some(&hook), &hook_env(), clock.unix());
        assert_eq!(r.runs(), 2);
        // What was warned of this hour is not due, read without the lock; the rest is.
        assert_eq!(expiring_due(&r.session, found.to_vec(), clock.unix()), []);
        clock.advance(Duration::from_secs(1));
        assert_eq!(expiring_due(&r.session, found.to_vec(), clock.unix()), found);
        warn_expiring(&r.session, "prod", &found[..1], Some(&hook), &hook_env(), clock.unix());
        assert_eq!(r.runs(), 3);
        assert_eq!(expiring_due(&r.session, found.to_vec(), clock.unix()), found[1..]);
    }

    #[test]
    fn without_a_hook_the_warning_is_still_limited() {
        let r = Rig::new();
        let now = T0 as i64;
        let found = [Expiring { what: What::Session, at: now + 60 }];
        assert!(claim(&r.session, "expiring:session", now, EXPIRING_PERIOD));
        warn_expiring(&r.session, "prod", &found, None, &hook_env(), now + 10);
        let fired: BTreeMap<String, i64> =
            serde_json::from_slice(&std::fs::read(r.session.join(STATE_FILE)).unwrap()).unwrap();
        assert_eq!(fired["expiring:session"], now, "the second call did not fire");
        // A clock set back is not a reason to stay silent for good.
        assert!(claim(&r.session, "expiring:session", now - 86_400, EXPIRING_PERIOD));
    }

    #[test]
    fn no_session_folder_means_no_run() {
        let r = Rig::new();
        let missing = r.session.with_file_name("typo");
        on_renewal_failure(&missing, &r.recorder("on_renewal_failure"), &failed(Class::Config, T0 as i64), &hook_env());
        assert_eq!(r.runs(), 0);
        assert!(!missing.exists());
    }

    #[test]
    #[cfg(unix)]
    fn no_hook_runs_through_a_symlinked_session_folder() {
        let r = Rig::new();
        let elsewhere = r.out.with_file_name("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let link = r.session.with_file_name("linked");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        on_renewal_failure(&link, &r.recorder("on_renewal_failure"), &failed(Class::Auth, T0 as i64), &hook_env());
        assert_eq!(r.runs(), 0);
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[test]
    fn failures_are_described_and_never_panic() {
        let r = Rig::new();
        let env = hook_env();
        let missing = parse("/nonexistent/woci-hook --token s3cret", "on_expiring", Path::new("/"));
        assert_eq!(run(&missing, b"{}\n".to_vec(), &env, TIMEOUT).unwrap_err(), "cannot run: not found");
        let failing = r.hook("on_expiring", "exit 3");
        assert_eq!(run(&failing, b"{}\n".to_vec(), &env, TIMEOUT).unwrap_err(), "exited with 3");
        let signalled = r.hook("on_expiring", "kill -9 $$");
        assert_eq!(run(&signalled, b"{}\n".to_vec(), &env, TIMEOUT).unwrap_err(), "was killed by signal 9");
        // A hook that ignores its stdin still succeeds.
        assert_eq!(run(&r.hook("on_expiring", "true"), vec![b'x'; 1 << 20], &env, TIMEOUT), Ok(()));
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_hook_past_its_time_is_stopped_with_its_whole_group() {
        let r = Rig::new();
        // The hook starts a grandchild and waits; both must be gone afterwards.
        let hook = r.hook("on_renewal_failure", r#"sleep 300 & echo $! > "$OUT/grandchild"; wait"#);
        let err = run(&hook, b"{}\n".to_vec(), &hook_env(), Duration::from_secs(1)).unwrap_err();
        assert_eq!(err, "did not finish within 1s and was stopped");
        let pid: u32 = r.file("grandchild").trim().parse().unwrap();
        // Killed, then reaped by whoever adopted it: gone, or a zombie until then.
        let gone = || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
        };
        let mut tries = 0;
        while !gone() {
            tries += 1;
            assert!(tries < 500, "the hook's grandchild {pid} survived");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
