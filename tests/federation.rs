//! CI / workload OIDC federation (`subject_token_source`) with the real `woci` binary against the
//! emulator: every source mints a session with no refresh token and no login, a rotated file is
//! read again at the next renewal, and every way a source can fail ends at once with its exit code
//! and a one-line message naming the variable, file or command, never the token.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const AUD: &str = "https://cloud.oracle.com";

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A federated profile: only the exchange app and the source (no IdP login keys at all).
fn write_federated_ini(w: &World, source: &str, extra: &[(&str, &str)]) {
    let mut ini = format!(
        "[COMMON]\nsubject_token_source = {source}\n\n[{}]\ntoken_exchange_url = {}\nclient_id = {}\nclient_secret = {}\nregion = us-ashburn-1\n",
        w.profile,
        w.emu.exchange_url(),
        w.cfg.exchange_client_id,
        w.cfg.exchange_client_secret
    );
    for (k, v) in extra {
        ini.push_str(&format!("{k} = {v}\n"));
    }
    std::fs::create_dir_all(w.oci_dir()).unwrap();
    std::fs::write(w.manager_ini_path(), ini).unwrap();
}

/// `woci` with a `BROWSER` that leaves a marker, to prove no login is ever attempted.
fn woci(w: &World) -> assert_cmd::Command {
    let marker = w.home().join("browser-was-opened");
    let browser = w.home().join("bin").join("marker-browser");
    write_exec(&browser, &format!("#!/bin/sh\ntouch '{}'\n", marker.display()));
    let mut c = w.woci();
    c.env("BROWSER", browser).timeout(Duration::from_secs(30));
    c
}

fn github_env(c: &mut assert_cmd::Command, w: &World) {
    c.env("ACTIONS_ID_TOKEN_REQUEST_URL", w.emu.actions_id_token_url())
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", w.emu.actions_request_token());
}

fn assert_minted_without_login(w: &World, out: &std::process::Output, secrets: &[&str]) {
    assert!(out.status.success(), "{}", stderr(out));
    let token = w.read(&w.token_path());
    assert!(!token.is_empty(), "the session token is written");
    let config = w.read(&w.config_path());
    for key in ["key_file", "security_token_file", "fingerprint", "tenancy", "region"] {
        assert!(config.contains(&format!("{key}=")) || config.contains(&format!("{key} =")), "{key} in {config}");
    }
    assert!(!w.session_dir().join("refresh_token").exists(), "federation stores no refresh token");
    assert!(!w.home().join("browser-was-opened").exists(), "federation never opens a browser");
    let st = w.emu.stats();
    assert_eq!((st.refresh_grants, st.auth_code_grants), (0, 0), "no IdP grant is involved");
    let mut all: Vec<&str> = secrets.to_vec();
    all.extend([token.as_str(), w.cfg.exchange_client_secret.as_str()]);
    assert_no_secrets(&stderr(out), &all);
    assert_no_secrets(&String::from_utf8_lossy(&out.stdout), &all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_actions_source_mints_a_session_and_a_fresh_jwt_per_renewal() {
    let w = World::new().await;
    write_federated_ini(&w, "github-actions", &[]);
    let out = run({
        let mut c = woci(&w);
        github_env(&mut c, &w);
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_minted_without_login(&w, &out, &[&w.emu.actions_request_token()]);
    assert_eq!(w.oci_argv(), ["--profile", "P", "--auth", "security_token", "os", "ns", "get"]);
    let ev = w.emu.events();
    let asked = ev.iter().find(|e| e.path == "/_actions/idtoken").expect("the ID-token service was asked");
    assert_eq!(asked.query.as_deref(), Some("api-version=2.0&audience=https%3A%2F%2Fcloud.oracle.com"));

    let first = w.read(&w.token_path());
    let out = run({
        let mut c = woci(&w);
        github_env(&mut c, &w);
        c.args(["session", "refresh"]);
        c
    })
    .await;
    assert_minted_without_login(&w, &out, &[&first]);
    assert_ne!(w.read(&w.token_path()), first);
    let st = w.emu.stats();
    assert_eq!((st.actions_id_tokens, st.exchanges), (2, 2), "one fresh JWT per renewal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flag_overrides_the_ini_and_env_source_works_and_debug_shows_no_token() {
    let w = World::new().await;
    // The INI names a file that does not exist; the flag wins.
    write_federated_ini(&w, "file:/nonexistent/never-read", &[]);
    let jwt = w.emu.issue_actions_token(AUD, 300);
    let out = run({
        let mut c = woci(&w);
        // `--debug` shows woci's whole flow: the JWT and the UPST must still not appear.
        c.env("CI_JOB_JWT", &jwt).args(["--debug", "--subject-token-source", "env:CI_JOB_JWT", "os", "ns", "get"]);
        c
    })
    .await;
    assert_minted_without_login(&w, &out, &[&jwt]);
    assert_eq!(w.emu.stats().exchanges, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_source_is_read_again_at_every_renewal() {
    let w = World::new().await;
    let file = w.home().join("projected").join("token");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    write_federated_ini(&w, &format!("file:{}", file.display()), &[]);
    let first = w.emu.issue_actions_token(AUD, 300);
    std::fs::write(&file, format!("{first}\n")).unwrap();
    let refresh = || {
        let mut c = woci(&w);
        c.args(["session", "refresh"]);
        run(c)
    };
    let out = refresh().await;
    assert_minted_without_login(&w, &out, &[&first]);

    // The platform rotates the file in place: the next renewal must use the new contents. An
    // expired JWT there proves the file was read again (the first one is still valid).
    let expired = w.emu.issue_actions_token(AUD, -60);
    std::fs::write(&file, &expired).unwrap();
    let out = refresh().await;
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(stderr(&out).contains(&file.display().to_string()) && stderr(&out).contains("expired"), "{}", stderr(&out));
    assert_no_secrets(&stderr(&out), &[&expired]);

    let rotated = w.emu.issue_actions_token(AUD, 300);
    std::fs::write(&file, &rotated).unwrap();
    let out = refresh().await;
    assert_minted_without_login(&w, &out, &[&rotated, &first]);
    assert_eq!(w.emu.stats().exchanges, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_source_runs_without_a_shell_and_uses_its_stdout() {
    let w = World::new().await;
    let jwt = w.emu.issue_actions_token(AUD, 300);
    let script = w.home().join("bin").join("mint token");
    write_exec(&script, &format!("#!/bin/sh\n[ \"$1\" = 'two words' ] || exit 9\necho '  {jwt}  '\n"));
    write_federated_ini(&w, &format!("command:'{}' 'two words'", script.display()), &[]);
    let out = run({
        let mut c = woci(&w);
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_minted_without_login(&w, &out, &[&jwt]);
}

struct Failure {
    source: String,
    extra: Vec<(&'static str, String)>,
    env: Vec<(&'static str, String)>,
    code: i32,
    names: Vec<String>,
    secret: Option<String>,
}

async fn assert_fails(w: &World, f: Failure) {
    let extra: Vec<(&str, &str)> = f.extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    write_federated_ini(w, &f.source, &extra);
    let started = Instant::now();
    let out = run({
        let mut c = woci(w);
        for (k, v) in &f.env {
            c.env(k, v);
        }
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(f.code), "{}: {err}", f.source);
    assert!(took < Duration::from_secs(10), "{} failed only after {took:?}", f.source);
    let line = err.lines().find(|l| l.starts_with("woci: error: ")).unwrap_or_else(|| panic!("one error line: {err}"));
    eprintln!("{line}");
    for n in &f.names {
        assert!(line.contains(n.as_str()), "the error names `{n}`: {line}");
    }
    assert!(!w.oci_out.exists() || w.oci_argv().is_empty(), "oci must not run");
    assert!(!w.home().join("browser-was-opened").exists(), "no browser");
    assert!(!w.token_path().exists(), "no token is written");
    let mut secrets = vec![w.cfg.exchange_client_secret.clone(), w.emu.actions_request_token()];
    secrets.extend(f.secret);
    assert_no_secrets(&err, &secrets.iter().map(String::as_str).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failing_source_exits_at_once_naming_it() {
    let w = World::new().await;
    let gh_env = || {
        vec![
            ("ACTIONS_ID_TOKEN_REQUEST_URL", w.emu.actions_id_token_url()),
            ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", w.emu.actions_request_token()),
        ]
    };
    let missing: PathBuf = w.home().join("no-such-token");
    let expired = w.emu.issue_actions_token(AUD, -30);
    let cases = vec![
        Failure {
            source: "github-actions".into(),
            extra: vec![],
            env: vec![],
            code: 11,
            names: vec!["github-actions".into(), "ACTIONS_ID_TOKEN_REQUEST_URL".into(), "id-token: write".into()],
            secret: None,
        },
        Failure {
            source: "github-actions".into(),
            extra: vec![],
            env: vec![
                ("ACTIONS_ID_TOKEN_REQUEST_URL", w.emu.actions_id_token_url()),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "wrong-bearer-token".into()),
            ],
            code: 11,
            names: vec!["ACTIONS_ID_TOKEN_REQUEST_TOKEN".into(), "HTTP 401".into()],
            secret: Some("wrong-bearer-token".into()),
        },
        Failure {
            source: "env:CI_JOB_JWT".into(),
            extra: vec![],
            env: vec![],
            code: 11,
            names: vec!["env:CI_JOB_JWT".into(), "`CI_JOB_JWT` is not set".into()],
            secret: None,
        },
        Failure {
            source: format!("file:{}", missing.display()),
            extra: vec![],
            env: vec![],
            code: 11,
            names: vec![missing.display().to_string(), "no such file".into()],
            secret: None,
        },
        Failure {
            source: "command:sh -c 'echo idp unreachable >&2; exit 4'".into(),
            extra: vec![],
            env: vec![],
            code: 11,
            names: vec!["command:sh".into(), "exited with 4: idp unreachable".into()],
            secret: None,
        },
        Failure {
            source: "env:CI_JOB_JWT".into(),
            extra: vec![],
            env: vec![("CI_JOB_JWT", expired.clone())],
            code: 11,
            names: vec!["env:CI_JOB_JWT".into(), "expired".into()],
            secret: Some(expired.clone()),
        },
        Failure {
            // The identity domain rejects the JWT (its `aud` is not the trusted one).
            source: "github-actions".into(),
            extra: vec![("subject_token_audience", "https://not-trusted.example".into())],
            env: gh_env(),
            code: 5,
            names: vec!["github-actions".into(), "invalid_grant".into()],
            secret: None,
        },
        Failure {
            source: "s3:bucket/token".into(),
            extra: vec![],
            env: vec![],
            code: 2,
            names: vec!["subject_token_source".into(), "`env:NAME`".into(), "`command:CMDLINE`".into()],
            secret: None,
        },
    ];
    for f in cases {
        assert_fails(&w, f).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federated_profile_without_the_exchange_app_is_a_config_error() {
    let w = World::new().await;
    std::fs::create_dir_all(w.oci_dir()).unwrap();
    std::fs::write(w.manager_ini_path(), "[P]\nsubject_token_source = github-actions\nclient_id = c\n").unwrap();
    let out = run({
        let mut c = woci(&w);
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("`token_exchange_url`") && stderr(&out).contains("`client_secret`"),
        "{}",
        stderr(&out)
    );
}

/// `--exec` re-mints from the source while the program runs: short UPSTs force renewals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_renews_from_the_source_while_the_program_runs() {
    let w = World::new().await;
    w.emu.set_upst_ttl(Duration::from_secs(4));
    write_federated_ini(&w, "github-actions", &[]);
    let out = run({
        let mut c = woci(&w);
        github_env(&mut c, &w);
        c.args(["--exec", "--", "sleep", "7"]);
        c
    })
    .await;
    assert_minted_without_login(&w, &out, &[]);
    let st = w.emu.stats();
    assert!(st.actions_id_tokens >= 3, "{} JWTs for a 7 s run with 4 s tokens", st.actions_id_tokens);
    assert_eq!(st.actions_id_tokens, st.exchanges);
}
