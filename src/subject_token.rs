//! Subject token sources for CI / workload OIDC federation: where a profile with
//! `subject_token_source` gets the JWT it exchanges for a UPST, fresh at every renewal.
//!
//! - `github-actions`: `GET $ACTIONS_ID_TOKEN_REQUEST_URL` + `audience=<aud>` with
//!   `Authorization: Bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`; the answer is `{"value": "<JWT>"}`.
//! - `env:NAME`: the variable's value (GitLab `id_tokens`, Bitbucket `BITBUCKET_STEP_OIDC_TOKEN`).
//! - `file:PATH`: the file's contents, read again at every renewal (Kubernetes projected
//!   service-account tokens and other files a platform rotates in place).
//! - `command:CMDLINE`: split like a POSIX shell (`shlex`), run without a shell, bounded in time;
//!   the JWT is its trimmed stdout.
//!
//! Every failure is an [`Error::SubjectToken`] (exit 11) naming the source and the variable, file
//! or command, never the token. A JWT whose `exp` has passed is refused before it is sent.

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::secret::SecretString;
use crate::settings::Env;
use http::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use url::Url;

/// The audience asked of the GitHub Actions ID-token service unless `subject_token_audience` says
/// otherwise (what the identity domain's trust usually expects).
pub const DEFAULT_AUDIENCE: &str = "https://cloud.oracle.com";

/// How long a `command:` source may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

const GH_URL_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_URL";
const GH_TOKEN_VAR: &str = "ACTIONS_ID_TOKEN_REQUEST_TOKEN";
const GH_SERVICE: &str = "GitHub Actions ID-token service (`ACTIONS_ID_TOKEN_REQUEST_URL`)";

/// The environment variables a source reads, captured once with the settings (woci reads the
/// process environment only there). `Debug` shows the names, never the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SourceEnv(Env);

impl fmt::Debug for SourceEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        f.debug_tuple("SourceEnv").field(&names).finish()
    }
}

impl SourceEnv {
    /// The variables `source` reads, from `env`.
    pub fn capture(source: &SubjectTokenSource, env: &Env) -> SourceEnv {
        let names: Vec<&str> = match source {
            SubjectTokenSource::GithubActions => vec![GH_URL_VAR, GH_TOKEN_VAR],
            SubjectTokenSource::Env(name) => vec![name.as_str()],
            SubjectTokenSource::File(_) | SubjectTokenSource::Command { .. } => Vec::new(),
        };
        SourceEnv(names.into_iter().filter_map(|n| Some((n.to_owned(), env.get(n)?.clone()))).collect())
    }

    /// The captured variables.
    pub fn vars(&self) -> &Env {
        &self.0
    }
}

impl SubjectTokenSource {
    /// Why the source cannot give a token now, judged from local facts only (a variable unset, a
    /// file missing); `None` when it may (a command or the ID-token service are only known by
    /// asking). `--status` and the renewal plan use it; the renewal itself still asks the source.
    pub fn local_problem(&self, env: &SourceEnv) -> Option<String> {
        let unset = |v: &str| env.vars().get(v).is_none_or(|x| x.trim().is_empty());
        match self {
            SubjectTokenSource::GithubActions => [GH_URL_VAR, GH_TOKEN_VAR]
                .into_iter()
                .find(|v| unset(v))
                .map(|v| format!("`{v}` is not set (the job needs `permissions: id-token: write`)")),
            SubjectTokenSource::Env(name) => {
                unset(name).then(|| format!("the environment variable `{name}` is not set"))
            }
            SubjectTokenSource::File(p) => {
                (!p.is_file()).then(|| format!("cannot read `{}`: no such file", p.display()))
            }
            SubjectTokenSource::Command { .. } => None,
        }
    }
}

/// Where the subject JWT comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SubjectTokenSource {
    /// The GitHub Actions OIDC ID-token service.
    GithubActions,
    /// An environment variable.
    Env(String),
    /// A file, re-read at every renewal.
    File(PathBuf),
    /// A program run without a shell; `line` as configured, `argv` split from it.
    Command {
        /// The command line as configured.
        line: String,
        /// Program and arguments.
        argv: Vec<String>,
    },
}

/// The forms a source may take, for configuration errors.
pub const VALID_FORMS: &str = "`github-actions`, `env:NAME`, `file:PATH` or `command:CMDLINE`";

impl SubjectTokenSource {
    /// Parses `github-actions`, `env:NAME`, `file:PATH` or `command:CMDLINE`; `setting` names
    /// where the value came from (for the error).
    pub fn parse(value: &str, setting: &str, home: &std::path::Path) -> Result<SubjectTokenSource> {
        let v = value.trim();
        let bad = |why: &str| Error::Config(format!("`{setting}` {why}: `{v}`; valid forms are {VALID_FORMS}"));
        if v == "github-actions" {
            return Ok(SubjectTokenSource::GithubActions);
        }
        let Some((kind, rest)) = v.split_once(':') else { return Err(bad("is not a subject token source")) };
        let rest = rest.trim();
        match kind.trim() {
            "env" => {
                let ok = !rest.is_empty()
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !rest.as_bytes()[0].is_ascii_digit();
                if !ok {
                    return Err(bad("names no valid environment variable"));
                }
                Ok(SubjectTokenSource::Env(rest.to_owned()))
            }
            "file" => {
                if rest.is_empty() {
                    return Err(bad("names no file"));
                }
                Ok(SubjectTokenSource::File(crate::fsutil::expand_home(rest, home)))
            }
            // The command line itself stays out of the message: its arguments may hold credentials.
            "command" => match shlex::split(rest) {
                Some(argv) if !argv.is_empty() => Ok(SubjectTokenSource::Command { line: rest.to_owned(), argv }),
                Some(_) => Err(Error::Config(format!("`{setting}` names no command after `command:`"))),
                None => {
                    Err(Error::Config(format!("`{setting}`: the command line after `command:` has unbalanced quotes")))
                }
            },
            _ => Err(bad("is not a subject token source")),
        }
    }

    /// The source as shown in messages. A command shows only its program: its arguments may
    /// carry credentials.
    pub fn describe(&self) -> String {
        match self {
            SubjectTokenSource::GithubActions => "github-actions".into(),
            SubjectTokenSource::Env(n) => format!("env:{n}"),
            SubjectTokenSource::File(p) => format!("file:{}", p.display()),
            SubjectTokenSource::Command { argv, .. } => {
                let more = if argv.len() > 1 { " …" } else { "" };
                format!("command:{}{more}", argv[0])
            }
        }
    }

    fn fail(&self, reason: impl Into<String>) -> Error {
        Error::SubjectToken { source_name: self.describe(), reason: reason.into() }
    }

    /// A fresh JWT from the source, checked to be a JWT that has not expired at `clock`'s now.
    pub async fn obtain(&self, http: &Http, env: &Env, audience: &str, clock: &dyn Clock) -> Result<SecretString> {
        let (jwt, origin) = match self {
            SubjectTokenSource::GithubActions => {
                (self.github_actions(http, env, audience).await?, "the ID-token service's answer".to_owned())
            }
            SubjectTokenSource::Env(name) => match env.get(name).map(|v| v.trim()) {
                None => return Err(self.fail(format!("the environment variable `{name}` is not set"))),
                Some("") => return Err(self.fail(format!("the environment variable `{name}` is empty"))),
                Some(v) => (SecretString::from(v), format!("`{name}`")),
            },
            SubjectTokenSource::File(path) => (self.read_file(path).await?, format!("`{}`", path.display())),
            SubjectTokenSource::Command { argv, .. } => {
                (self.run_command(argv).await?, format!("the output of `{}`", argv[0]))
            }
        };
        check_jwt(jwt.expose(), clock.unix()).map_err(|why| self.fail(format!("{origin} {why}")))?;
        Ok(jwt)
    }

    async fn read_file(&self, path: &std::path::Path) -> Result<SecretString> {
        let bytes = tokio::fs::read(path).await.map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_owned(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => e.to_string(),
            };
            self.fail(format!("cannot read `{}`: {why}", path.display()))
        })?;
        let text =
            String::from_utf8(bytes).map_err(|_| self.fail(format!("`{}` is not UTF-8 text", path.display())))?;
        let t = text.trim();
        if t.is_empty() {
            return Err(self.fail(format!("`{}` is empty", path.display())));
        }
        Ok(SecretString::from(t))
    }

    async fn run_command(&self, argv: &[String]) -> Result<SecretString> {
        let program = &argv[0];
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "not found".to_owned(),
                std::io::ErrorKind::PermissionDenied => "not executable".to_owned(),
                _ => e.to_string(),
            };
            self.fail(format!("cannot run `{program}`: {why}"))
        })?;
        let out = match tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await {
            Err(_) => {
                return Err(self.fail(format!("`{program}` did not finish within {}s", COMMAND_TIMEOUT.as_secs())))
            }
            Ok(Err(e)) => return Err(self.fail(format!("cannot read the output of `{program}`: {e}"))),
            Ok(Ok(o)) => o,
        };
        if !out.status.success() {
            let first =
                String::from_utf8_lossy(&out.stderr).lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned);
            let status = match out.status.code() {
                Some(c) => format!("exited with {c}"),
                None => "was killed by a signal".to_owned(),
            };
            return Err(self.fail(match first {
                Some(line) => format!("`{program}` {status}: {}", crate::oidc::scrub(&line, &[])),
                None => format!("`{program}` {status}"),
            }));
        }
        let text =
            String::from_utf8(out.stdout).map_err(|_| self.fail(format!("`{program}` printed no UTF-8 text")))?;
        let t = text.trim();
        if t.is_empty() {
            return Err(self.fail(format!("`{program}` printed nothing")));
        }
        Ok(SecretString::from(t))
    }

    async fn github_actions(&self, http: &Http, env: &Env, audience: &str) -> Result<SecretString> {
        let hint = "the job needs `permissions: id-token: write`";
        let raw_url = env
            .get(GH_URL_VAR)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| self.fail(format!("the environment variable `{GH_URL_VAR}` is not set ({hint})")))?;
        let bearer = env
            .get(GH_TOKEN_VAR)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| self.fail(format!("the environment variable `{GH_TOKEN_VAR}` is not set ({hint})")))?;
        let url = id_token_url(raw_url, audience)
            .map_err(|e| self.fail(format!("`{GH_URL_VAR}` is not a valid URL ({e})")))?;
        let mut auth = HeaderValue::from_str(&format!("Bearer {bearer}"))
            .map_err(|_| self.fail(format!("`{GH_TOKEN_VAR}` cannot be sent in an HTTP header")))?;
        auth.set_sensitive(true);
        let mut headers = http::HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let resp = http.get(GH_SERVICE, &url, headers).await?;
        let (status, body) = (resp.status, resp.body);
        if !(200..300).contains(&status) {
            let why = match status {
                401 | 403 => format!("the ID-token service refused `{GH_TOKEN_VAR}` (HTTP {status}); {hint}"),
                _ => format!("the ID-token service at `{GH_URL_VAR}` answered HTTP {status}"),
            };
            return Err(self.fail(why));
        }
        #[derive(Deserialize)]
        struct Answer {
            value: Option<String>,
        }
        let value = serde_json::from_slice::<Answer>(&body).ok().and_then(|a| a.value).filter(|v| !v.trim().is_empty());
        value
            .map(|v| SecretString::from(v.trim()))
            .ok_or_else(|| self.fail("the ID-token service answered without a `value`"))
    }
}

impl fmt::Debug for SubjectTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubjectTokenSource({})", self.describe())
    }
}

/// `$ACTIONS_ID_TOKEN_REQUEST_URL` with `audience=<aud>` appended (`&` when it has a query).
pub fn id_token_url(raw: &str, audience: &str) -> std::result::Result<Url, url::ParseError> {
    let mut url = Url::parse(raw.trim())?;
    url.query_pairs_mut().append_pair("audience", audience);
    Ok(url)
}

/// A JWT that has not expired: three parts, a JSON payload, and `exp` (when present) after `now`.
fn check_jwt(token: &str, now: i64) -> std::result::Result<(), String> {
    #[derive(Deserialize)]
    struct Exp {
        exp: Option<i64>,
    }
    let claims: Exp = crate::jwt::decode_claims(token).map_err(|e| format!("is {e}"))?;
    match claims.exp {
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
        SubjectTokenSource::parse(s, "subject_token_source", Path::new("/home/u"))
    }

    #[test]
    fn parses_every_form_and_lists_them_on_error() {
        assert_eq!(parse("github-actions").unwrap(), SubjectTokenSource::GithubActions);
        assert_eq!(parse("env:CI_JOB_JWT").unwrap(), SubjectTokenSource::Env("CI_JOB_JWT".into()));
        assert_eq!(parse("file:~/tok").unwrap(), SubjectTokenSource::File("/home/u/tok".into()));
        let SubjectTokenSource::Command { argv, .. } = parse("command:my-idp --aud 'a b'").unwrap() else { panic!() };
        assert_eq!(argv, ["my-idp", "--aud", "a b"]);
        for bad in ["gitlab", "env:", "env:1X", "env:A-B", "file:", "s3:bucket"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::CONFIG, "{bad}");
            assert!(e.to_string().contains("`env:NAME`") && e.to_string().contains("subject_token_source"), "{e}");
        }
        for bad in ["command:", "command:fetch --secret 's3cr3t"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::CONFIG, "{bad}");
            assert!(e.to_string().contains("command:") && !e.to_string().contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn command_messages_show_only_the_program() {
        assert_eq!(parse("command:fetch --secret s3cr3t").unwrap().describe(), "command:fetch …");
    }

    #[test]
    fn audience_is_appended_with_the_right_separator() {
        assert_eq!(id_token_url("https://gh/t", "x y").unwrap().as_str(), "https://gh/t?audience=x+y");
        assert_eq!(
            id_token_url("https://gh/t?api-version=2.0", "a").unwrap().as_str(),
            "https://gh/t?api-version=2.0&audience=a"
        );
    }

    #[test]
    fn expired_or_malformed_jwts_are_refused() {
        assert!(check_jwt(&jwt(100), 99).is_ok());
        assert!(check_jwt(&jwt(100), 100).unwrap_err().contains("expired"));
        let e = check_jwt("opaque", 0).unwrap_err();
        assert_eq!(e.matches("not a JWT").count(), 1, "said once: {e}");
    }

    #[tokio::test]
    async fn env_and_file_sources_name_what_is_missing_and_never_the_token() {
        let http = Http::new(Default::default()).unwrap();
        let clock = ManualClock::at(1000);
        let mut env = Env::new();
        let src = parse("env:TOK").unwrap();
        let e = src.obtain(&http, &env, DEFAULT_AUDIENCE, &clock).await.unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::SUBJECT_TOKEN);
        assert!(e.to_string().contains("`TOK` is not set"), "{e}");
        let expired = jwt(900);
        env.insert("TOK".into(), expired.clone());
        let e = src.obtain(&http, &env, DEFAULT_AUDIENCE, &clock).await.unwrap_err();
        assert!(e.to_string().contains("expired") && !e.to_string().contains(&expired), "{e}");
        env.insert("TOK".into(), jwt(2000));
        assert_eq!(src.obtain(&http, &env, DEFAULT_AUDIENCE, &clock).await.unwrap().expose(), &jwt(2000));

        let e = parse("file:/nonexistent/woci/tok").unwrap().obtain(&http, &env, "a", &clock).await.unwrap_err();
        assert!(e.to_string().contains("/nonexistent/woci/tok") && e.to_string().contains("no such file"), "{e}");
    }

    #[tokio::test]
    async fn command_source_reports_the_first_stderr_line() {
        let http = Http::new(Default::default()).unwrap();
        let clock = ManualClock::at(1000);
        let src = parse("command:sh -c 'echo first >&2; echo second >&2; exit 3'").unwrap();
        let e = src.obtain(&http, &Env::new(), "a", &clock).await.unwrap_err();
        assert!(e.to_string().contains("`sh` exited with 3: first"), "{e}");
        let tok = jwt(2000);
        let ok = parse(&format!("command:echo '  {tok}  '")).unwrap();
        assert_eq!(ok.obtain(&http, &Env::new(), "a", &clock).await.unwrap().expose(), &tok);
        let e =
            parse("command:/nonexistent/woci-idp").unwrap().obtain(&http, &Env::new(), "a", &clock).await.unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
    }
}
