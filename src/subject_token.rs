//! Subject token sources for CI / workload OIDC federation: where a profile with
//! `subject_token_source` gets the JWT it exchanges for a UPST, fresh at every renewal.
//!
//! - `github-actions`: `GET $ACTIONS_ID_TOKEN_REQUEST_URL` + `audience=<aud>` with
//!   `Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`; the answer is `{"value": "<JWT>"}`.
//! - `env:NAME`: the variable's value (GitLab `id_tokens`, Bitbucket `BITBUCKET_STEP_OIDC_TOKEN`).
//! - `file:PATH`: the file's contents, read again at every renewal (Kubernetes projected
//!   service-account tokens and other files a platform rotates in place); one caught missing,
//!   empty or cut is read again for about a second first.
//! - `command:CMDLINE`: split like a POSIX shell (`shlex`), run without a shell in its own process
//!   group, bounded in time; the JWT is its trimmed stdout. Once the helper has exited woci reads
//!   what its pipes still hold (briefly: a background child may keep them open), then ends the
//!   whole group, SIGTERM then SIGKILL, so nothing it started outlives it.
//!
//! Every input is bounded: a file, a helper's stdout and the ID-token service's answer to
//! [`MAX_INPUT`] (1 MiB), a helper's stderr (only ever a one-line message) to [`MAX_STDERR`].
//! The ID-token service gets the CI bearer only over https (or loopback http), the rule of
//! [`crate::settings::parse_url`].
//!
//! Every failure is an [`Error::SubjectToken`] (exit 11) naming the source and the variable, file
//! or command, never the token, and classified ([`SourceFailure`]): a source that gave no token
//! this time is asked again by the renewal loop of `--auto-refresh`, `--exec` and the daemon (with
//! its backoff, like a network failure), one that is set up wrong is not. A JWT whose `exp` has
//! passed is refused before it is sent.

use crate::clock::Clock;
use crate::error::{Error, Result, SourceFailure};
use crate::fsutil::{fmt_size, signal_group, Signal, MAX_INPUT};
use crate::http::Http;
use crate::secret::SecretString;
use crate::settings::{Env, SourceEnv, SubjectTokenSource, GH_TOKEN_VAR, GH_URL_VAR};
use http::header::{HeaderValue, AUTHORIZATION};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use url::Url;
use zeroize::Zeroizing;

/// How long a `command:` source may run.
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// When a helper still running is said to be slow (before the proxy's 10 s wait for a renewal).
const SLOW_HELPER: Duration = Duration::from_secs(5);

/// The most of a helper's stderr kept (the rest is read and dropped): only its first line is used.
pub(crate) const MAX_STDERR: usize = 8 * 1024;

/// After the helper has exited, how long its pipes may take to deliver what it wrote before woci
/// stops reading (a background child it left may hold them open for good).
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// How long the helper's process group has between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(1);

const GH_SERVICE: &str = "GitHub Actions ID-token service (`ACTIONS_ID_TOKEN_REQUEST_URL`)";

/// The configured ID-token URL, held to the rule of every URL woci sends a secret to
/// (https, or http on loopback only). The error is its message.
fn gh_url(env: &Env) -> std::result::Result<Url, String> {
    let raw = env.get(GH_URL_VAR).map(String::as_str).unwrap_or_default();
    crate::settings::parse_url(raw, GH_URL_VAR).map_err(|e| e.to_string())
}

/// Why `meta` is not something a token can be read from, if it is not a regular file.
fn not_a_file(meta: &std::fs::Metadata) -> Option<&'static str> {
    let kind = meta.file_type();
    if kind.is_file() {
        return None;
    }
    if kind.is_dir() {
        return Some("is a folder, not a file");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return Some("is a FIFO, not a regular file");
        }
        if kind.is_char_device() || kind.is_block_device() {
            return Some("is a device, not a regular file");
        }
        if kind.is_socket() {
            return Some("is a socket, not a regular file");
        }
    }
    Some("is not a regular file")
}

/// A world-writable token file lets any local user choose the identity woci exchanges: said
/// once per process (a renewal loop reads the file many times).
fn warn_if_world_writable(path: &Path, meta: &std::fs::Metadata) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::atomic::{AtomicBool, Ordering};
        static WARNED: AtomicBool = AtomicBool::new(false);
        if meta.permissions().mode() & 0o002 != 0 && !WARNED.swap(true, Ordering::Relaxed) {
            let p = path.display();
            tracing::warn!(
                "subject token file `{p}` is writable by every user, so any of them can choose the identity woci signs in as; run `chmod o-w {p}`"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, meta);
}

impl SubjectTokenSource {
    /// Why the source cannot give a token, judged from local facts that no retry changes (a
    /// variable unset, or holding no JWT or an expired one, an `http://` ID-token URL, a folder,
    /// a device or over 1 MiB as `file:`, a `command:` program that is not there); `None` when it
    /// may. A missing or empty file, and a file's JWT, are not judged here: a platform may be
    /// rotating it, so the renewal asks the file and a renewal loop asks again. `--status` and
    /// the renewal plan use it; the renewal itself still asks the source.
    pub fn local_problem(&self, env: &SourceEnv) -> Option<String> {
        let unset = |v: &str| env.vars().get(v).is_none_or(|x| x.trim().is_empty());
        match self {
            SubjectTokenSource::GithubActions => [GH_URL_VAR, GH_TOKEN_VAR]
                .into_iter()
                .find(|v| unset(v))
                .map(|v| match crate::settings::not_text(v) {
                    true => format!("`{v}` is not UTF-8 text"),
                    false => format!("`{v}` is not set or empty (the job needs `permissions: id-token: write`)"),
                })
                .or_else(|| gh_url(env.vars()).err()),
            SubjectTokenSource::Env(name) if unset(name) => match crate::settings::not_text(name) {
                true => Some(format!("the environment variable `{name}` is not UTF-8 text")),
                false => Some(format!("the environment variable `{name}` is not set or empty")),
            },
            // The same value for the whole process: what it holds now is what every renewal gets
            // (its expiry is judged by the plan, with the time: [`Self::env_jwt_expiry`]).
            SubjectTokenSource::Env(name) => {
                check_jwt(env.vars().get(name)?.trim(), i64::MIN).err().map(|why| format!("`{name}` {why}"))
            }
            SubjectTokenSource::File(p) => {
                let meta = std::fs::metadata(p).ok()?;
                let too_large = (meta.len() > MAX_INPUT as u64)
                    .then(|| format!("is larger than {}; a JWT is a few KiB", fmt_size(MAX_INPUT)));
                not_a_file(&meta).map(str::to_owned).or(too_large).map(|why| format!("`{}` {why}", p.display()))
            }
            SubjectTokenSource::Command { argv, .. } => {
                let program = Path::new(&argv[0]);
                let found = if program.components().count() > 1 {
                    crate::fsutil::is_executable(program)
                } else {
                    let path = crate::settings::path_var(env.vars())?;
                    let found =
                        crate::fsutil::path_candidates(&path, program).any(|c| crate::fsutil::is_executable(&c));
                    found
                };
                (!found).then(|| format!("cannot run `{}`: not found or not executable", argv[0]))
            }
        }
    }

    /// The `exp` of the JWT an `env:` source holds (the same for the whole process), if any.
    pub fn env_jwt_expiry(&self, env: &SourceEnv) -> Option<i64> {
        let SubjectTokenSource::Env(name) = self else { return None };
        crate::jwt::expiry(env.vars().get(name)?.trim()).ok()?
    }

    fn fail(&self, failure: SourceFailure, reason: impl Into<String>) -> Error {
        Error::SubjectToken { source_name: self.describe(), reason: reason.into(), failure }
    }

    /// The source gave no usable token this time; asking again may work.
    fn no_token(&self, reason: impl Into<String>) -> Error {
        self.fail(SourceFailure::NoTokenNow, reason)
    }

    /// The source is set up wrong; no retry fixes it.
    fn misconfigured(&self, reason: impl Into<String>) -> Error {
        self.fail(SourceFailure::Settings, reason)
    }

    /// A fresh JWT from the source, checked to be a JWT that has not expired at `clock`'s now. A
    /// `file:` caught mid-rewrite (missing, empty or cut: a writer that truncates and writes in
    /// place) is read again for about a second before that counts (round 96 F2); the other sources
    /// wait in their own ways.
    pub async fn obtain(
        &self,
        http: &Http,
        source_env: &SourceEnv,
        audience: &str,
        clock: &dyn Clock,
    ) -> Result<SecretString> {
        let mut got = self.obtain_once(http, source_env, audience, clock).await;
        for pause in [300, 700] {
            let rotating = matches!(self, SubjectTokenSource::File(_))
                && matches!(got, Err(Error::SubjectToken { failure: SourceFailure::NoTokenNow, .. }));
            if !rotating {
                break;
            }
            tokio::time::sleep(Duration::from_millis(pause)).await;
            got = self.obtain_once(http, source_env, audience, clock).await;
        }
        got
    }

    async fn obtain_once(
        &self,
        http: &Http,
        source_env: &SourceEnv,
        audience: &str,
        clock: &dyn Clock,
    ) -> Result<SecretString> {
        let env = source_env.vars();
        let (jwt, origin) = match self {
            SubjectTokenSource::GithubActions => {
                (self.github_actions(http, env, audience).await?, "the ID-token service's answer".to_owned())
            }
            SubjectTokenSource::Env(name) => match env.get(name).map(|v| v.trim()) {
                None => {
                    let unset = crate::settings::unset(name);
                    return Err(self.misconfigured(format!("the environment variable `{name}` {unset}")));
                }
                Some("") => return Err(self.misconfigured(format!("the environment variable `{name}` is empty"))),
                Some(v) => (SecretString::from(v), format!("`{name}`")),
            },
            SubjectTokenSource::File(path) => (self.read_file(path).await?, format!("`{}`", path.display())),
            SubjectTokenSource::Command { argv, .. } => {
                (self.run_command(argv, source_env, COMMAND_TIMEOUT).await?, format!("the output of `{}`", argv[0]))
            }
        };
        // A variable holds the same JWT for the whole process; a file, a helper or the service
        // may hold a fresh one next time.
        let failure = match self {
            SubjectTokenSource::Env(_) => SourceFailure::Settings,
            _ => SourceFailure::NoTokenNow,
        };
        check_jwt(jwt.expose(), clock.unix()).map_err(|why| self.fail(failure, format!("{origin} {why}")))?;
        Ok(jwt)
    }

    /// The file's trimmed contents. What the path is gets judged before it is opened (opening a
    /// FIFO blocks, a device may never end), again on the opened file (the path may have changed
    /// in between; the open is non-blocking), and the read stops after [`MAX_INPUT`].
    async fn read_file(&self, path: &Path) -> Result<SecretString> {
        let shown = path.display();
        let cannot = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => self.no_token(format!("cannot read `{shown}`: no such file")),
            std::io::ErrorKind::PermissionDenied => {
                self.misconfigured(format!("cannot read `{shown}`: permission denied"))
            }
            _ => self.no_token(format!("cannot read `{shown}`: {e}")),
        };
        let too_large =
            || self.misconfigured(format!("`{shown}` is larger than {}; a JWT is a few KiB", fmt_size(MAX_INPUT)));
        let judge = |meta: &std::fs::Metadata| match not_a_file(meta) {
            Some(why) => Err(self.misconfigured(format!("`{shown}` {why}"))),
            None if meta.len() > MAX_INPUT as u64 => Err(too_large()),
            None => Ok(()),
        };
        judge(&tokio::fs::metadata(path).await.map_err(cannot)?)?;
        let mut open = tokio::fs::OpenOptions::new();
        open.read(true);
        #[cfg(unix)]
        open.custom_flags(libc::O_NONBLOCK);
        let file = open.open(path).await.map_err(cannot)?;
        let meta = file.metadata().await.map_err(cannot)?;
        judge(&meta)?;
        warn_if_world_writable(path, &meta);
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_INPUT as u64 + 1).read_to_end(&mut bytes).await.map_err(cannot)?;
        if bytes.len() > MAX_INPUT {
            return Err(too_large());
        }
        match std::str::from_utf8(&bytes).map(str::trim) {
            Err(_) => Err(self.no_token(format!("`{shown}` is not UTF-8 text{}", utf16_hint(&bytes)))),
            Ok("") => Err(self.no_token(format!("`{shown}` is empty"))),
            Ok(t) => Ok(SecretString::from(t)),
        }
    }

    /// Runs the helper (see the module doc) for at most `timeout`; its trimmed stdout. It gets the
    /// job's environment (it may need the Actions request token or a proxy), not woci's
    /// passphrases or the OCI key.
    async fn run_command(&self, argv: &[String], env: &SourceEnv, timeout: Duration) -> Result<SecretString> {
        let program = &argv[0];
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        for k in env.withheld() {
            cmd.env_remove(k);
        }
        // Its own process group: whatever it starts can be ended with it.
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "not found".to_owned(),
                std::io::ErrorKind::PermissionDenied => "not executable".to_owned(),
                _ => e.to_string(),
            };
            self.misconfigured(format!("cannot run `{program}`: {why}"))
        })?;
        let group = HelperGroup::of(&child);
        let (mut out, mut err) = (Zeroizing::new(Vec::new()), Vec::new());
        let ended = self.collect(program, &mut child, &mut out, &mut err, timeout).await;
        group.end(&mut child).await;
        let status = ended?;
        if !status.success() {
            let status = status.code().map_or("was killed by a signal".to_owned(), |c| format!("exited with {c}"));
            let line = first_stderr_line(&err, &out).map(|line| format!(": {line}")).unwrap_or_default();
            return Err(self.no_token(format!("`{program}` {status}{line}")));
        }
        match std::str::from_utf8(&out).map(str::trim) {
            Err(_) => Err(self.no_token(format!("`{program}` printed no UTF-8 text{}", utf16_hint(&out)))),
            Ok("") => Err(self.no_token(format!("`{program}` printed nothing"))),
            Ok(t) => Ok(SecretString::from(t)),
        }
    }

    async fn github_actions(&self, http: &Http, env: &Env, audience: &str) -> Result<SecretString> {
        let hint = "the job needs `permissions: id-token: write`";
        let unset =
            |v: &str| self.misconfigured(format!("the environment variable `{v}` is not set or empty ({hint})"));
        env.get(GH_URL_VAR).filter(|v| !v.is_empty()).ok_or_else(|| unset(GH_URL_VAR))?;
        let bearer = env.get(GH_TOKEN_VAR).filter(|v| !v.is_empty()).ok_or_else(|| unset(GH_TOKEN_VAR))?;
        // The bearer goes only where woci sends any secret: https, or http on loopback.
        let url = id_token_url(gh_url(env).map_err(|e| self.misconfigured(e))?, audience);
        let mut auth = HeaderValue::from_str(&format!("Bearer {bearer}"))
            .map_err(|_| self.misconfigured(format!("`{GH_TOKEN_VAR}` cannot be sent in an HTTP header")))?;
        auth.set_sensitive(true);
        let mut headers = http::HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        // Bounded like every answer woci reads (`HttpOptions::max_body`, 1 MiB).
        let resp = http.get_json(GH_SERVICE, &url, headers).await?;
        let (status, body) = (resp.status, resp.body);
        if !(200..300).contains(&status) {
            return Err(match status {
                // A job without `id-token: write` has no URL at all: a refusal is of the bearer.
                401 | 403 => self.misconfigured(format!(
                    "the ID-token service refused `{GH_TOKEN_VAR}` (HTTP {status}): it is wrong or has expired; use \
                     the one the running job was given"
                )),
                // A URL that names no ID-token service (a page of some other server).
                404 => self.no_token(format!(
                    "the ID-token service at `{GH_URL_VAR}` answered HTTP 404: check that it is the URL the job was given"
                )),
                _ => self.no_token(format!("the ID-token service at `{GH_URL_VAR}` answered HTTP {status}")),
            });
        }
        let answer = serde_json::from_slice::<serde_json::Value>(&body);
        match answer.as_ref().map(|a| a.get("value")) {
            Ok(Some(serde_json::Value::String(v))) if !v.trim().is_empty() => Ok(SecretString::from(v.trim())),
            Ok(Some(serde_json::Value::String(_))) => {
                Err(self.no_token("the ID-token service answered an empty `value`"))
            }
            Ok(Some(_)) => Err(self.no_token("the ID-token service answered a `value` that is not a string")),
            Ok(None) => Err(self.no_token("the ID-token service answered without a `value`")),
            Err(_) => Err(self.no_token(format!(
                "the ID-token service answered something that is not JSON: check that `{GH_URL_VAR}` is the URL the \
                 job was given"
            ))),
        }
    }

    /// Waits for `child` while reading its stdout into `out` (up to [`MAX_INPUT`]: more ends the
    /// wait) and its stderr into `err` (the first [`MAX_STDERR`] bytes; the rest is read and
    /// dropped, so the helper never blocks on a full pipe), until it exits or `timeout` passes.
    /// Once it has exited, its pipes get [`DRAIN_GRACE`] to deliver the rest.
    async fn collect(
        &self,
        program: &str,
        child: &mut tokio::process::Child,
        out: &mut Vec<u8>,
        err: &mut Vec<u8>,
        timeout: Duration,
    ) -> Result<ExitStatus> {
        let too_much =
            || self.misconfigured(format!("`{program}` printed more than {}; a JWT is a few KiB", fmt_size(MAX_INPUT)));
        let reading_out = read_capped(child.stdout.take(), out, MAX_INPUT, true);
        let reading_err = read_capped(child.stderr.take(), err, MAX_STDERR, false);
        let deadline = tokio::time::sleep(timeout);
        // A helper that hangs holds up the renewal, and a program under `--auto-refresh` meets
        // the proxy's wait for it long before the timeout: said early, so the proxy's line has a
        // cause to point to (round 82 F4).
        let slow = tokio::time::sleep(SLOW_HELPER.min(timeout));
        tokio::pin!(reading_out, reading_err, deadline, slow);
        let (mut out_done, mut err_done, mut slow_said) = (false, false, false);
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                over = &mut reading_out, if !out_done => {
                    out_done = true;
                    if over {
                        return Err(too_much());
                    }
                }
                _ = &mut reading_err, if !err_done => err_done = true,
                _ = &mut slow, if !slow_said => {
                    slow_said = true;
                    tracing::warn!(
                        "subject token source `{}` has not finished after {}s (it is given {}s)",
                        self.describe(),
                        SLOW_HELPER.as_secs(),
                        timeout.as_secs()
                    );
                }
                _ = &mut deadline => {
                    return Err(self.no_token(format!("`{program}` did not finish within {}s", timeout.as_secs())))
                }
            }
        };
        // The helper is gone and what it wrote is in the pipes; a background child it left may hold
        // them open for good, so read what is there and stop.
        let grace = tokio::time::Instant::now() + DRAIN_GRACE;
        if !out_done && matches!(tokio::time::timeout_at(grace, reading_out).await, Ok(true)) {
            return Err(too_much());
        }
        if !err_done {
            let _ = tokio::time::timeout_at(grace, reading_err).await;
        }
        status.map_err(|e| self.no_token(format!("cannot wait for `{program}`: {e}")))
    }
}

/// Reads `pipe` into `buf`, keeping at most `cap` bytes. Past the cap it stops and returns `true`
/// when `stop`, else reads on to the end keeping nothing more. A read error ends the reading like
/// the end of the pipe.
async fn read_capped(pipe: Option<impl AsyncRead + Unpin>, buf: &mut Vec<u8>, cap: usize, stop: bool) -> bool {
    let Some(mut pipe) = pipe else { return false };
    let mut chunk = Zeroizing::new(vec![0u8; 16 * 1024]);
    loop {
        let n = match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..n.min(room)]);
        if n > room && stop {
            return true;
        }
    }
}

/// A helper's process group (`process_group(0)` makes the helper its leader, so the group's id
/// is the helper's pid). Ended whole when woci is done with the helper; killed at once if woci
/// drops it unfinished (a cancelled renewal).
struct HelperGroup {
    pgid: Option<i32>,
    /// A signal that ends woci ends the group too.
    _owned: Option<crate::critical::OwnedGroup>,
}

impl HelperGroup {
    fn of(child: &tokio::process::Child) -> HelperGroup {
        let pgid = child.id().and_then(|p| i32::try_from(p).ok()).filter(|_| cfg!(unix));
        HelperGroup { pgid, _owned: pgid.map(crate::critical::own_group) }
    }

    /// SIGTERM to the group, SIGKILL to what is left after [`TERM_GRACE`]; reaps the helper.
    async fn end(mut self, child: &mut tokio::process::Child) {
        if let Some(pgid) = self.pgid.take().filter(|&pgid| signal_group(pgid, Signal::Term)) {
            let deadline = tokio::time::Instant::now() + TERM_GRACE;
            loop {
                // Once reaped, the helper itself no longer counts as a member.
                let _ = child.try_wait();
                if !signal_group(pgid, Signal::Probe) {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    signal_group(pgid, Signal::Kill);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let _ = tokio::time::timeout(TERM_GRACE, child.wait()).await;
    }
}

impl Drop for HelperGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            signal_group(pgid, Signal::Kill);
        }
    }
}

/// The helper's first non-empty stderr line for the error message, with its stdout and anything
/// shaped like a JWT taken out (a helper may quote the token it could not use) and scrubbed.
fn first_stderr_line(stderr: &[u8], stdout: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let printed = std::str::from_utf8(stdout).unwrap_or_default().trim();
    let line = crate::oidc::scrub(&without_jwts(line), &[printed]);
    (!line.is_empty()).then_some(line)
}

/// `line` with every word shaped like a JWT (`eyJ…`, base64url parts joined by dots) replaced.
fn without_jwts(line: &str) -> String {
    static WORD: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new("[A-Za-z0-9_.-]+").expect("a valid pattern"));
    let replace = |word: &regex::Captures<'_>| match &word[0] {
        w if w.starts_with("eyJ") && w.matches('.').count() >= 2 => "[redacted]".to_owned(),
        w => w.to_owned(),
    };
    WORD.replace_all(line, replace).into_owned()
}

/// `$ACTIONS_ID_TOKEN_REQUEST_URL` with `audience=<aud>` appended (`&` when it has a query).
pub(crate) fn id_token_url(mut url: Url, audience: &str) -> Url {
    url.query_pairs_mut().append_pair("audience", audience);
    url
}

/// What to add to "not UTF-8 text" when the bytes are UTF-16 (PowerShell 5's `>` writes it).
fn utf16_hint(bytes: &[u8]) -> &'static str {
    match bytes {
        [0xff, 0xfe, ..] | [0xfe, 0xff, ..] => " (it is UTF-16, as PowerShell 5's `>` writes: write UTF-8)",
        _ => "",
    }
}

/// A JWT that has not expired: one line of base64url parts, a JSON payload, and `exp` (when
/// present) after `now`. A helper's banner line before the token would otherwise go to the token
/// exchange with it, and its refusal point at the trust set-up.
fn check_jwt(token: &str, now: i64) -> std::result::Result<(), String> {
    let lines = token.lines().filter(|l| !l.trim().is_empty()).count();
    if lines > 1 {
        return Err(format!("is not a JWT (it has {lines} lines: print the JWT alone)"));
    }
    if token.starts_with('\u{feff}') {
        return Err("is not a JWT (it starts with a byte-order mark: write the JWT without one)".to_owned());
    }
    if let Some(c) = token.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(format!("is not a JWT (it holds {c:?}, which no JWT has)"));
    }
    match crate::jwt::expiry(token).map_err(|e| format!("is {e}"))? {
        Some(exp) if exp <= now => Err(format!("holds a JWT that expired {}s ago", now - exp)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::path::Path;

    fn jwt(exp: i64) -> String {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"ci","exp":{exp}}}"#)))
    }

    fn parse(s: &str) -> Result<SubjectTokenSource> {
        SubjectTokenSource::parse(s, Path::new("/home/u")).map_err(Error::Config)
    }

    #[test]
    fn audience_is_appended_with_the_right_separator() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert_eq!(id_token_url(url("https://gh/t"), "x y").as_str(), "https://gh/t?audience=x+y");
        assert_eq!(
            id_token_url(url("https://gh/t?api-version=2.0"), "a").as_str(),
            "https://gh/t?api-version=2.0&audience=a"
        );
    }

    #[test]
    fn expired_or_malformed_jwts_are_refused() {
        assert!(check_jwt(&jwt(100), 99).is_ok());
        assert!(check_jwt(&jwt(100), 100).unwrap_err().contains("expired"));
        let e = check_jwt("opaque", 0).unwrap_err();
        assert_eq!(e.matches("not a JWT").count(), 1, "said once: {e}");
        // A helper's banner (or colour) around a good JWT: not sent to the exchange as one.
        let banner = format!("Using cached credentials\n{}", jwt(100));
        assert!(check_jwt(&banner, 0).unwrap_err().contains("2 lines: print the JWT alone"));
        assert!(check_jwt(&format!("{}\ndone", jwt(100)), 0).unwrap_err().contains("2 lines"));
        let e = check_jwt(&format!("\u{1b}[32m{}\u{1b}[0m", jwt(100)), 0).unwrap_err();
        assert!(e.contains(r"'\u{1b}', which no JWT has"), "{e}");
        assert!(check_jwt(&format!("\u{feff}{}", jwt(100)), 0).unwrap_err().contains("byte-order mark"));
        assert!(utf16_hint(&[0xff, 0xfe, b'e', 0]).contains("UTF-16") && utf16_hint(b"eyJ").is_empty());
    }

    #[tokio::test]
    async fn env_and_file_sources_name_what_is_missing_and_never_the_token() {
        let http = Http::new(Default::default()).unwrap();
        let clock = ManualClock::at(1000);
        let mut env = Env::new();
        let src = parse("env:TOK").unwrap();
        let e = src.obtain(&http, &SourceEnv::from(env.clone()), "https://cloud.oracle.com", &clock).await.unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::SUBJECT_TOKEN);
        assert!(e.to_string().contains("`TOK` is not set"), "{e}");
        let expired = jwt(900);
        env.insert("TOK".into(), expired.clone());
        let e = src.obtain(&http, &SourceEnv::from(env.clone()), "https://cloud.oracle.com", &clock).await.unwrap_err();
        assert!(e.to_string().contains("expired") && !e.to_string().contains(&expired), "{e}");
        env.insert("TOK".into(), jwt(2000));
        assert_eq!(
            src.obtain(&http, &SourceEnv::from(env.clone()), "https://cloud.oracle.com", &clock)
                .await
                .unwrap()
                .expose(),
            &jwt(2000)
        );

        let e = parse("file:/nonexistent/woci/tok")
            .unwrap()
            .obtain(&http, &SourceEnv::from(env.clone()), "a", &clock)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/woci/tok") && e.to_string().contains("no such file"), "{e}");
    }

    #[tokio::test]
    async fn command_source_reports_the_first_stderr_line() {
        let http = Http::new(Default::default()).unwrap();
        let clock = ManualClock::at(1000);
        let src = parse("command:sh -c 'echo first >&2; echo second >&2; exit 3'").unwrap();
        let e = src.obtain(&http, &SourceEnv::default(), "a", &clock).await.unwrap_err();
        assert!(e.to_string().contains("`sh` exited with 3: first"), "{e}");
        let tok = jwt(2000);
        let ok = parse(&format!("command:echo '  {tok}  '")).unwrap();
        assert_eq!(ok.obtain(&http, &SourceEnv::default(), "a", &clock).await.unwrap().expose(), &tok);
        let e = parse("command:/nonexistent/woci-idp")
            .unwrap()
            .obtain(&http, &SourceEnv::default(), "a", &clock)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
    }

    fn cmd(line: &str) -> (SubjectTokenSource, Vec<String>) {
        let src = parse(&format!("command:{line}")).unwrap();
        let SubjectTokenSource::Command { argv, .. } = &src else { unreachable!() };
        let argv = argv.clone();
        (src, argv)
    }

    /// Whether `pid` runs nothing any more (gone, or a zombie no one has reaped yet).
    fn ended(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
            Err(_) => true,
            Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
        }
    }

    /// Polls [`ended`] (a guard against a hang, not a timing assertion).
    async fn wait_ended(pid_file: &Path) {
        let pid = std::fs::read_to_string(pid_file).unwrap();
        for _ in 0..500 {
            if ended(&pid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("process {} still runs", pid.trim());
    }

    #[tokio::test]
    async fn sources_that_may_give_a_token_later_are_transient_and_settings_errors_are_not() {
        let http = Http::new(Default::default()).unwrap();
        let clock = ManualClock::at(1000);
        let dir = tempfile::tempdir().unwrap();
        let get = |src: SubjectTokenSource, env: Env| {
            let (http, clock) = (&http, &clock);
            async move { src.obtain(http, &SourceEnv::from(env.clone()), "a", clock).await.unwrap_err() }
        };
        let file = |name: &str, body: Option<&str>| {
            let p = dir.path().join(name);
            if let Some(b) = body {
                std::fs::write(&p, b).unwrap();
            }
            SubjectTokenSource::File(p)
        };
        let expired = jwt(900);
        let mut with_expired = Env::new();
        with_expired.insert("TOK".into(), expired.clone());
        let transient = [
            (file("missing", None), Env::new(), "no such file"),
            (file("empty", Some(" \n")), Env::new(), "is empty"),
            (file("expired", Some(&expired)), Env::new(), "expired"),
            (cmd("sh -c 'exit 3'").0, Env::new(), "exited with 3"),
        ];
        for (src, env, why) in transient {
            let e = get(src, env).await;
            assert!(e.is_transient() && e.to_string().contains(why), "{e}");
            assert_eq!(e.exit_code(), crate::error::exit::SUBJECT_TOKEN);
        }
        let settings = [
            (parse("env:TOK").unwrap(), Env::new(), "is not set"),
            (parse("env:TOK").unwrap(), with_expired, "expired"),
            (SubjectTokenSource::File(dir.path().to_owned()), Env::new(), "is a folder, not a file"),
            (cmd("/nonexistent/woci-idp").0, Env::new(), "not found"),
            (parse("github-actions").unwrap(), Env::new(), "`ACTIONS_ID_TOKEN_REQUEST_URL` is not set"),
        ];
        for (src, env, why) in settings {
            let e = get(src, env).await;
            assert!(!e.is_transient() && e.to_string().contains(why), "{e}");
            assert_eq!(e.exit_code(), crate::error::exit::SUBJECT_TOKEN);
        }
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn devices_fifos_and_folders_are_named_for_what_they_are_and_never_read() {
        let http = Http::new(Default::default()).unwrap();
        let clock = ManualClock::at(1000);
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for (path, why) in [
            (std::path::PathBuf::from("/dev/zero"), "is a device, not a regular file"),
            (fifo, "is a FIFO, not a regular file"),
            (dir.path().to_owned(), "is a folder, not a file"),
        ] {
            let src = SubjectTokenSource::File(path.clone());
            assert_eq!(src.local_problem(&SourceEnv::default()).unwrap(), format!("`{}` {why}", path.display()));
            // A FIFO without a writer would block an ordinary open: the guard only stops a hang.
            let e =
                tokio::time::timeout(Duration::from_secs(60), src.obtain(&http, &SourceEnv::default(), "a", &clock))
                    .await
                    .expect("never blocks")
                    .unwrap_err();
            assert!(e.to_string().contains(why) && !e.is_transient(), "{e}");
        }
        let missing = SubjectTokenSource::File(dir.path().join("rotating"));
        assert_eq!(missing.local_problem(&SourceEnv::default()), None, "a missing file is the renewal's to retry");
    }

    #[tokio::test]
    async fn a_large_file_or_output_is_refused_at_the_cap() {
        let http = Http::new(Default::default()).unwrap();
        let clock = ManualClock::at(1000);
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::File::create(&big).unwrap().set_len(MAX_INPUT as u64 + 1).unwrap();
        let e = SubjectTokenSource::File(big).obtain(&http, &SourceEnv::default(), "a", &clock).await.unwrap_err();
        assert!(e.to_string().contains("is larger than 1 MiB") && !e.is_transient(), "{e}");
        let e = cmd("head -c 2097152 /dev/zero").0.obtain(&http, &SourceEnv::default(), "a", &clock).await.unwrap_err();
        assert!(e.to_string().contains("`head` printed more than 1 MiB") && !e.is_transient(), "{e}");
        // Stderr past its cap is read and dropped: the helper ends normally, its message is kept.
        let (src, argv) = cmd("sh -c 'echo first line >&2; head -c 3000000 /dev/zero >&2; exit 2'");
        let e = src.run_command(&argv, &SourceEnv::default(), COMMAND_TIMEOUT).await.unwrap_err();
        assert!(e.to_string().ends_with("`sh` exited with 2: first line"), "{e}");
    }

    #[tokio::test]
    async fn a_helpers_stderr_never_shows_a_token() {
        let tok = jwt(2000);
        let (src, argv) = cmd(&format!("sh -c 'echo {tok}; echo \"refused {tok}\" >&2; exit 1'"));
        let e = src.run_command(&argv, &SourceEnv::default(), COMMAND_TIMEOUT).await.unwrap_err().to_string();
        assert!(e.contains("refused [redacted]") && !e.contains(&tok), "{e}");
        let (src, argv) = cmd("sh -c 'echo s3cr3t-printed; echo \"cannot use s3cr3t-printed\" >&2; exit 1'");
        let e = src.run_command(&argv, &SourceEnv::default(), COMMAND_TIMEOUT).await.unwrap_err().to_string();
        assert!(e.contains("cannot use [redacted]") && !e.contains("s3cr3t-printed"), "{e}");
    }

    #[tokio::test]
    async fn a_background_child_left_by_the_helper_is_not_waited_for_and_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let bg = dir.path().join("bg");
        let tok = jwt(2000);
        let (src, argv) = cmd(&format!("sh -c 'sleep 100 & echo $! > {}; echo {tok}'", bg.display()));
        assert_eq!(src.run_command(&argv, &SourceEnv::default(), COMMAND_TIMEOUT).await.unwrap().expose(), &tok);
        wait_ended(&bg).await;
    }

    /// What no retry changes is judged before any renewal (and by `--status`): a helper that is
    /// not there, a file no JWT fits in, a variable that holds no JWT; a variable's expired JWT
    /// is the plan's to judge with the time.
    #[test]
    fn local_problems_no_retry_changes() {
        let dir = tempfile::tempdir().unwrap();
        let with_path = |src: &SubjectTokenSource| {
            let mut e = Env::new();
            e.insert("PATH".into(), "/usr/bin:/bin".into());
            e.insert("TOK".into(), "not-a-jwt".into());
            SourceEnv::capture(src, &e)
        };
        let missing = parse("command:/no/such/helper --x").unwrap();
        assert!(missing.local_problem(&with_path(&missing)).unwrap().contains("cannot run `/no/such/helper`"));
        let bare = parse("command:no-such-helper-anywhere").unwrap();
        assert!(bare.local_problem(&with_path(&bare)).is_some());
        let sh = parse("command:sh -c 'echo x'").unwrap();
        assert_eq!(sh.local_problem(&with_path(&sh)), None);
        let big = dir.path().join("big.jwt");
        std::fs::write(&big, vec![b'a'; MAX_INPUT + 1]).unwrap();
        let file = parse(&format!("file:{}", big.display())).unwrap();
        assert!(file.local_problem(&SourceEnv::default()).unwrap().contains("larger than 1 MiB"));
        let env = parse("env:TOK").unwrap();
        assert!(env.local_problem(&with_path(&env)).unwrap().contains("`TOK` is"), "not a JWT");
        let mut e = Env::new();
        e.insert("TOK".into(), jwt(900));
        let held = SourceEnv::capture(&env, &e);
        assert_eq!((env.local_problem(&held), env.env_jwt_expiry(&held)), (None, Some(900)));
    }

    #[tokio::test]
    async fn a_helper_that_hangs_is_ended_with_its_group_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let (me, bg) = (dir.path().join("me"), dir.path().join("bg"));
        let line = format!("sh -c 'echo $$ > {}; sleep 100 & echo $! > {}; wait'", me.display(), bg.display());
        let (src, argv) = cmd(&line);
        let e = src.run_command(&argv, &SourceEnv::default(), Duration::from_secs(1)).await.unwrap_err();
        assert!(e.to_string().contains("`sh` did not finish within 1s") && e.is_transient(), "{e}");
        wait_ended(&me).await;
        wait_ended(&bg).await;
    }

    #[tokio::test]
    async fn the_ci_bearer_goes_only_to_https_or_loopback() {
        use crate::http::fake::{options, FakeTransport};
        let clock = ManualClock::at(1000);
        let tok = jwt(2000);
        let answer = format!(r#"{{"value":"{tok}"}}"#);
        let t = FakeTransport::new(move |_, _| Ok((200, answer.clone())));
        let http = Http::with_transport(t.clone(), options());
        let src = parse("github-actions").unwrap();
        let env = |url: &str| {
            let mut e = Env::new();
            e.insert(GH_URL_VAR.into(), url.into());
            e.insert(GH_TOKEN_VAR.into(), "ci-bearer-secret".into());
            e
        };
        let plain = env("http://token.actions.example/idtoken?api-version=2.0");
        let e = src.obtain(&http, &SourceEnv::from(plain.clone()), "a", &clock).await.unwrap_err();
        assert!(e.to_string().contains("`ACTIONS_ID_TOKEN_REQUEST_URL` must use https://") && !e.is_transient(), "{e}");
        assert!(t.seen().is_empty(), "the bearer was sent");
        let problem = src.local_problem(&SourceEnv::capture(&src, &plain)).unwrap();
        assert!(problem.contains("must use https://"), "{problem}");
        for ok in ["https://token.actions.example/idtoken", "http://127.0.0.1:8080/idtoken"] {
            assert_eq!(src.obtain(&http, &SourceEnv::from(env(ok)), "a", &clock).await.unwrap().expose(), &tok);
            assert_eq!(src.local_problem(&SourceEnv::capture(&src, &env(ok))), None);
        }
        assert_eq!(t.seen().len(), 2);
    }

    /// Each answer of the ID-token service is named for what it is (round 96 N2, N3).
    #[tokio::test]
    async fn the_id_token_services_answers_are_named_for_what_they_are() {
        use crate::http::fake::{options, FakeTransport};
        let clock = ManualClock::at(1000);
        let mut env = Env::new();
        env.insert(GH_URL_VAR.into(), "https://token.actions.example/idtoken".into());
        env.insert(GH_TOKEN_VAR.into(), "ci-bearer-secret".into());
        for (status, body, says, transient) in [
            (200, "<html>maintenance</html>", "not JSON: check that `ACTIONS_ID_TOKEN_REQUEST_URL` is the URL", true),
            (200, r#"{"value": 42}"#, "answered a `value` that is not a string", true),
            (200, r#"{"value": " "}"#, "answered an empty `value`", true),
            (200, r#"{"count": 1}"#, "answered without a `value`", true),
            (401, "{}", "refused `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (HTTP 401): it is wrong or has expired", false),
            (404, "{}", "answered HTTP 404: check that it is the URL the job was given", true),
        ] {
            let t = FakeTransport::new(move |_, _| Ok((status, body.to_owned())));
            let http = Http::with_transport(t, options());
            let e = parse("github-actions").unwrap().obtain(&http, &SourceEnv::from(env.clone()), "a", &clock).await;
            let e = e.unwrap_err();
            assert!(e.to_string().contains(says) && e.is_transient() == transient, "{body}: {e}");
            assert!(!e.to_string().contains("id-token: write"), "{e}");
        }
    }
}
