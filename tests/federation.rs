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

/// A `file:` source caught mid-rewrite (missing, empty or cut: a writer that truncates and writes
/// in place) is read again for about a second before the renewal fails: a call, or the start of
/// an `--auto-refresh` run, that met the moment goes on (round 96 F2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_source_caught_mid_rewrite_is_read_again() {
    let w = World::new().await;
    let file = w.home().join("projected").join("token");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    write_federated_ini(&w, &format!("file:{}", file.display()), &[]);
    let jwt = w.emu.issue_actions_token(AUD, 300);
    for caught in [None, Some(""), Some(&jwt[..jwt.len() / 2])] {
        let _ = std::fs::remove_file(w.session_dir().join("token"));
        match caught {
            None => {
                let _ = std::fs::remove_file(&file);
            }
            Some(part) => std::fs::write(&file, part).unwrap(),
        }
        let writer = std::thread::spawn({
            let (file, jwt) = (file.clone(), jwt.clone());
            move || {
                std::thread::sleep(Duration::from_millis(150));
                std::fs::write(&file, jwt).unwrap();
            }
        });
        let out = run({
            let mut c = woci(&w);
            c.args(["os", "ns", "get"]);
            c
        })
        .await;
        writer.join().unwrap();
        assert!(out.status.success(), "{caught:?}: {}", stderr(&out));
    }
    // A file that stays empty still fails, after the second.
    std::fs::write(&file, "").unwrap();
    let _ = std::fs::remove_file(w.session_dir().join("token"));
    let out = run({
        let mut c = woci(&w);
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
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

    // Without a session token, `--status` counts that failure until the file is written again,
    // then says what the next call does (round 82 F1).
    std::fs::remove_file(w.session_dir().join("token")).unwrap();
    let status = || {
        let mut c = woci(&w);
        c.arg("--status");
        run(c)
    };
    assert_eq!(status().await.status.code(), Some(11));
    std::thread::sleep(Duration::from_millis(20));
    let rotated = w.emu.issue_actions_token(AUD, 300);
    std::fs::write(&file, &rotated).unwrap();
    let out = status().await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let out = refresh().await;
    assert_minted_without_login(&w, &out, &[&rotated, &first]);
    assert_eq!(w.emu.stats().exchanges, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_source_runs_without_a_shell_and_uses_its_stdout() {
    let w = World::new().await;
    let jwt = w.emu.issue_actions_token(AUD, 300);
    let script = w.home().join("bin").join("mint token");
    let seen = w.home().join("helper.env");
    write_exec(
        &script,
        &format!("#!/bin/sh\n[ \"$1\" = 'two words' ] || exit 9\nenv > '{}'\necho '  {jwt}  '\n", seen.display()),
    );
    write_federated_ini(&w, &format!("command:'{}' 'two words'", script.display()), &[]);
    let out = run({
        let mut c = woci(&w);
        c.env("WOCI_RT_PASSPHRASE", "pp-secret").env("OCI_CLI_KEY_CONTENT", "key-secret").args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_minted_without_login(&w, &out, &[&jwt]);
    // The helper gets the job's environment, not woci's passphrases or the OCI key.
    let helper_env = w.read(&seen);
    assert!(helper_env.contains("PATH=") && !helper_env.contains("-secret"), "{helper_env}");
    // The job's `PATH`, where the helper was looked up, is the job's programs' too: a script under
    // `--exec` finds `oci` (it had none, and fell back to sh's default).
    #[allow(clippy::disallowed_methods, reason = "the job's PATH is the test's, with a folder of its own")]
    let path = format!("{}:{}", w.home().join("job-tools").display(), std::env::var("PATH").unwrap_or_default());
    let out = run({
        let mut c = woci(&w);
        c.env("PATH", &path).args(["--exec", "--", "sh", "-c", "printf %s \"$PATH\""]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), path);
}

/// A helper slower than a few seconds is named while woci waits for it, so that a program under
/// `--auto-refresh`, whose requests the proxy holds for a renewal at most 10 s, has a cause to
/// read before its 401 (round 82 F4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_helper_is_named_while_it_runs() {
    let w = World::new().await;
    let jwt = w.emu.issue_actions_token(AUD, 300);
    let script = w.home().join("bin").join("slow-mint");
    write_exec(&script, &format!("#!/bin/sh\nsleep 6\necho '{jwt}'\n"));
    write_federated_ini(&w, &format!("command:{}", script.display()), &[]);
    let out = run({
        let mut c = woci(&w);
        c.args(["session", "refresh"]);
        c
    })
    .await;
    assert_minted_without_login(&w, &out, &[&jwt]);
    assert!(stderr(&out).contains("slow-mint` has not finished after 5s (it is given 30s)"), "{}", stderr(&out));
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
    let folder: PathBuf = w.home().join("token-folder");
    std::fs::create_dir_all(&folder).unwrap();
    let fifo: PathBuf = w.home().join("token-fifo");
    let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0, "mkfifo");
    let expired = w.emu.issue_actions_token(AUD, -30);
    let good = w.emu.issue_actions_token(AUD, 300);
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
            // A banner line before a good JWT: refused here, never sent to the exchange as one.
            source: format!("command:sh -c 'echo Using cached credentials; echo {good}'"),
            extra: vec![],
            env: vec![],
            code: 11,
            names: vec!["command:sh".into(), "2 lines: print the JWT alone".into()],
            secret: Some(good.clone()),
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
            // GitHub's variables point at a plain-http host: the CI bearer must not go out in clear.
            source: "github-actions".into(),
            extra: vec![],
            env: vec![
                ("ACTIONS_ID_TOKEN_REQUEST_URL", "http://192.0.2.10/_actions/idtoken?api-version=2.0".into()),
                ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", w.emu.actions_request_token()),
            ],
            code: 11,
            names: vec!["github-actions".into(), "`ACTIONS_ID_TOKEN_REQUEST_URL` must use https://".into()],
            secret: None,
        },
        Failure {
            source: "file:/dev/zero".into(),
            extra: vec![],
            env: vec![],
            code: 11,
            names: vec!["`/dev/zero`".into(), "not a regular file".into()],
            secret: None,
        },
        Failure {
            source: format!("file:{}", folder.display()),
            extra: vec![],
            env: vec![],
            code: 11,
            names: vec![folder.display().to_string(), "is a folder".into()],
            secret: None,
        },
        Failure {
            // A FIFO nobody writes to: opening or reading it must not block woci.
            source: format!("file:{}", fifo.display()),
            extra: vec![],
            env: vec![],
            code: 11,
            names: vec![fifo.display().to_string(), "not a regular file".into()],
            secret: None,
        },
        Failure {
            // A typo in the kind: the message names the kind, never the command's arguments.
            source: "comand:fetch-jwt --client-secret s3cr3t-typo-value".into(),
            extra: vec![],
            env: vec![],
            code: 2,
            names: vec!["subject_token_source".into(), "`comand:`".into(), "`command:CMDLINE`".into()],
            secret: Some("s3cr3t-typo-value".into()),
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

/// Runs `cmd` to its end: exit code, stderr, and woci's peak resident memory in KiB, the highest
/// `VmHWM` of `/proc/<pid>/status` sampled while it runs. (Not wait4's `ru_maxrss`: a child
/// spawned with vfork inherits the test process's own high-water mark there at exec.) Samples are
/// taken only once the process is woci (after exec; before, it shares the test's memory).
fn run_measured(mut cmd: std::process::Command) -> (Option<i32>, String, i64) {
    use std::io::Read;
    use std::process::Stdio;
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("woci starts");
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let pid = child.id();
    let hwm_kib = || -> Option<i64> {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        if comm.trim() != "woci" {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let (mut peak, mut samples) = (0, 0);
    let status = loop {
        if let Some(kib) = hwm_kib() {
            peak = peak.max(kib);
            samples += 1;
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(samples > 0, "woci ended before its memory could be sampled");
    (status.code(), reader.join().unwrap(), peak)
}

/// A source must not make woci hold more than its cap: far below 64 MiB whatever the source sends.
const PEAK_RSS_LIMIT_KIB: i64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_printing_a_gibibyte_is_cut_at_1_mib_with_bounded_memory() {
    let w = World::new().await;
    for (source, names) in [
        ("command:head -c 1073741824 /dev/zero", ["`head` printed more than 1 MiB", "command:head …"]),
        // The same on stderr, which only ever feeds a one-line message.
        ("command:sh -c 'head -c 1073741824 /dev/zero >&2; exit 3'", ["`sh` exited with 3", "command:sh …"]),
    ] {
        write_federated_ini(&w, source, &[]);
        let mut c = w.woci_std();
        c.args(["os", "ns", "get"]);
        let (code, err, rss_kib) = tokio::task::spawn_blocking(move || run_measured(c)).await.unwrap();
        eprintln!("{source}: exit {code:?}, peak RSS {rss_kib} KiB: {}", err.trim());
        assert_eq!(code, Some(11), "{source}: {err}");
        for n in names {
            assert!(err.contains(n), "{source}: the error says `{n}`: {err}");
        }
        assert!(rss_kib < PEAK_RSS_LIMIT_KIB, "{source}: peak RSS {rss_kib} KiB");
        assert!(!w.token_path().exists());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_mb_file_source_is_refused_with_bounded_memory() {
    let w = World::new().await;
    let file = w.home().join("huge-token");
    // Sparse: 300 MB of zeros that take no disk.
    std::fs::File::create(&file).unwrap().set_len(300_000_000).unwrap();
    write_federated_ini(&w, &format!("file:{}", file.display()), &[]);
    let mut c = w.woci_std();
    c.args(["os", "ns", "get"]);
    let (code, err, rss_kib) = tokio::task::spawn_blocking(move || run_measured(c)).await.unwrap();
    eprintln!("300 MB file: exit {code:?}, peak RSS {rss_kib} KiB: {}", err.trim());
    assert_eq!(code, Some(11), "{err}");
    assert!(err.contains(&file.display().to_string()) && err.contains("larger than 1 MiB"), "{err}");
    assert!(rss_kib < PEAK_RSS_LIMIT_KIB, "peak RSS {rss_kib} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_id_token_answer_is_cut_at_the_cap_with_bounded_memory() {
    use woci_emulator::{Endpoint, Fault};
    let w = World::new().await;
    write_federated_ini(&w, "github-actions", &[]);
    w.emu.set_fault(Endpoint::ActionsIdToken, Fault::endless_body());
    let mut c = w.woci_std();
    c.env("ACTIONS_ID_TOKEN_REQUEST_URL", w.emu.actions_id_token_url())
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", w.emu.actions_request_token())
        .args(["os", "ns", "get"]);
    let (code, err, rss_kib) = tokio::task::spawn_blocking(move || run_measured(c)).await.unwrap();
    eprintln!("endless ID-token answer: exit {code:?}, peak RSS {rss_kib} KiB: {}", err.trim());
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("larger than 1024 KiB"), "{err}");
    assert!(rss_kib < PEAK_RSS_LIMIT_KIB, "peak RSS {rss_kib} KiB");
    assert_no_secrets(&err, &[&w.emu.actions_request_token()]);
}

/// Whether `pid` is gone (a zombie no one has reaped yet counts as gone: it runs nothing).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_that_leaves_a_background_child_returns_at_once_and_the_child_is_ended() {
    let w = World::new().await;
    let jwt = w.emu.issue_actions_token(AUD, 300);
    let bg = w.home().join("background-pid");
    let helper = w.home().join("bin").join("mint-and-linger");
    // The background `sleep` inherits the helper's stdout, so the pipe stays open after it exits.
    write_exec(&helper, &format!("#!/bin/sh\nsleep 100 &\necho $! > '{}'\necho '{jwt}'\n", bg.display()));
    write_federated_ini(&w, &format!("command:{}", helper.display()), &[]);
    let started = Instant::now();
    let out = run({
        let mut c = woci(&w);
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    let took = started.elapsed();
    assert_minted_without_login(&w, &out, &[&jwt]);
    assert!(took < Duration::from_secs(10), "woci waited {took:?} for a helper that had exited");
    let pid: i32 = w.read(&bg).trim().parse().expect("the helper wrote its background pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(pid) {
        assert!(Instant::now() < deadline, "the helper's background child {pid} still runs");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ctrl-C, a CI cancel or a closed terminal ends woci while a `command:` helper runs: the helper's
/// own process group (which the terminal's signal does not reach) ends with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_that_ends_woci_ends_the_helper_and_its_children() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let w = World::new().await;
        let pids = w.home().join("helper-pids");
        let helper = w.home().join("bin").join("slow-helper");
        write_exec(
            &helper,
            &format!(
                "#!/bin/sh
sleep 300 &
echo $$ $! > '{}'
wait
",
                pids.display()
            ),
        );
        write_federated_ini(&w, &format!("command:{}", helper.display()), &[]);
        let mut child = w.woci_std().args(["os", "ns", "get"]).stderr(std::process::Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while w.read(&pids).split_whitespace().count() < 2 {
            assert!(Instant::now() < deadline, "the helper did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        unsafe { libc::kill(child.id() as i32, sig) };
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(sig), "woci ends by the signal");
        for pid in w.read(&pids).split_whitespace().map(|p| p.parse::<i32>().unwrap()) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !gone(pid) {
                assert!(Instant::now() < deadline, "signal {sig}: helper process {pid} outlived woci");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_writable_file_source_is_used_with_one_warning() {
    let w = World::new().await;
    w.emu.set_upst_ttl(Duration::from_secs(4));
    let file = w.home().join("shared-token");
    std::fs::write(&file, w.emu.issue_actions_token(AUD, 300)).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    write_federated_ini(&w, &format!("file:{}", file.display()), &[]);
    // Several renewals in one run: the warning is still said once.
    let out = run({
        let mut c = woci(&w);
        c.args(["--exec", "--", "sleep", "7"]);
        c
    })
    .await;
    assert_minted_without_login(&w, &out, &[]);
    assert!(w.emu.stats().exchanges >= 3, "renewed while the program ran: {:?}", w.emu.stats());
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("writable by every user")).collect();
    assert_eq!(warnings.len(), 1, "one warning: {err}");
    let line = warnings[0];
    assert!(line.starts_with("woci: warning: "), "{line}");
    assert!(line.contains(&file.display().to_string()) && line.contains("chmod o-w"), "{line}");
}

/// Collects a child's stderr as it comes, so a test can wait for a line.
struct LiveStderr(std::sync::Arc<std::sync::Mutex<String>>, std::thread::JoinHandle<()>);

impl LiveStderr {
    fn of(child: &mut std::process::Child) -> LiveStderr {
        use std::io::BufRead;
        let buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = buf.clone();
        let t = std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        LiveStderr(buf, t)
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// Everything, once the child has closed its stderr.
    fn finish(self) -> String {
        let LiveStderr(buf, reader) = self;
        reader.join().unwrap();
        let text = buf.lock().unwrap().clone();
        text
    }
}

/// Kills a woci the test started when the test ends early.
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the pid of our own child; ESRCH when it is already gone.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

async fn wait_until(what: &str, log: &dyn Fn() -> String, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; woci said:\n{}", log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A long job under `args` (`--auto-refresh` or `--exec`) with 5 s UPSTs: `break_source` makes
/// the source give no token, the next renewal fails and must be retried; `mend_source` fixes
/// it, and renewal must go on while the job still runs.
async fn a_supervised_job_outlives_a_failed_fetch(
    w: &World,
    args: &[&str],
    job_env: &[(&str, &std::path::Path)],
    stop: &std::path::Path,
    break_source: impl FnOnce(),
    mend_source: impl FnOnce(),
) {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = w.woci_std();
    c.env("TMPDIR", tmp.path()).args(args);
    for (k, v) in job_env {
        c.env(k, v);
    }
    c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("woci starts");
    let _kill = KillOnDrop(child.id() as i32);
    let err = LiveStderr::of(&mut child);
    let log = || err.text();
    wait_until("the first session", &log, || w.emu.stats().exchanges >= 1).await;
    break_source();
    wait_until("a failed renewal that is retried", &log, || {
        let t = err.text();
        assert!(!t.contains("no longer possible"), "one failed fetch ended renewal:\n{t}");
        t.contains("session renewal failed, retrying in")
    })
    .await;
    let before = w.emu.stats().exchanges;
    mend_source();
    wait_until("a renewal after the source recovered", &log, || w.emu.stats().exchanges > before).await;
    std::fs::write(stop, "").unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    let text = err.finish();
    assert_eq!(status.code(), Some(0), "the job's own exit code:\n{text}");
    assert!(!text.contains("no longer possible"), "{text}");
}

/// A job that runs until `$STOP` exists.
const JOB: &str = "#!/bin/sh\nwhile [ ! -e \"$STOP\" ]; do sleep 0.1; done\nexit 0\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_refresh_survives_a_file_source_emptied_for_one_renewal() {
    let w = World::new().await;
    w.emu.set_upst_ttl(Duration::from_secs(5));
    let file = w.home().join("projected-token");
    std::fs::write(&file, w.emu.issue_actions_token(AUD, 3600)).unwrap();
    write_federated_ini(&w, &format!("file:{}", file.display()), &[]);
    // `oci` here is a long job (an upload): it runs until the test says stop.
    let job = w.home().join("bin").join("long-oci");
    write_exec(&job, JOB);
    let stop = w.home().join("stop");
    let fresh = w.emu.issue_actions_token(AUD, 3600);
    a_supervised_job_outlives_a_failed_fetch(
        &w,
        &["--auto-refresh", "os", "object", "put"],
        &[("WOCI_OCI_COMMAND", &job), ("STOP", &stop)],
        &stop,
        || std::fs::write(&file, "").unwrap(),
        || std::fs::write(&file, &fresh).unwrap(),
    )
    .await;
}

/// A helper that fails on its `n`th run (while `fail` exists) and prints `jwt_file` otherwise.
fn flaky_helper(w: &World, jwt: &str) -> (PathBuf, PathBuf) {
    let jwt_file = w.home().join("helper-jwt");
    std::fs::write(&jwt_file, jwt).unwrap();
    let fail = w.home().join("helper-fails");
    let helper = w.home().join("bin").join("flaky-mint");
    write_exec(
        &helper,
        &format!(
            "#!/bin/sh\nif [ -e '{f}' ]; then rm -f '{f}'; echo 'idp hiccup' >&2; exit 4; fi\ncat '{j}'\n",
            f = fail.display(),
            j = jwt_file.display()
        ),
    );
    (helper, fail)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_survives_a_command_source_that_fails_once() {
    let w = World::new().await;
    w.emu.set_upst_ttl(Duration::from_secs(5));
    let (helper, fail) = flaky_helper(&w, &w.emu.issue_actions_token(AUD, 3600));
    write_federated_ini(&w, &format!("command:{}", helper.display()), &[]);
    let job = w.home().join("bin").join("long-job");
    write_exec(&job, JOB);
    let stop = w.home().join("stop");
    let job_arg = job.display().to_string();
    a_supervised_job_outlives_a_failed_fetch(
        &w,
        &["--exec", "--", &job_arg],
        &[("STOP", &stop)],
        &stop,
        || std::fs::write(&fail, "").unwrap(),
        || {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_survives_a_command_source_that_fails_once() {
    let w = World::new().await;
    w.emu.set_upst_ttl(Duration::from_secs(5));
    let (helper, fail) = flaky_helper(&w, &w.emu.issue_actions_token(AUD, 3600));
    write_federated_ini(&w, &format!("command:{}", helper.display()), &[]);
    let out = run({
        let mut c = woci(&w);
        c.args(["--daemon", "--profile", "P"]);
        c
    })
    .await;
    let pid: i32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or_else(|_| panic!("{}", stderr(&out)));
    let _kill = KillOnDrop(pid);
    let state_file = w.session_dir().join("woci-daemon.json");
    let state = || serde_json::from_str::<serde_json::Value>(&w.read(&state_file)).unwrap_or_default();
    let log = || format!("state: {}\nlog:\n{}", state(), w.read(&w.session_dir().join("woci-daemon.log")));
    wait_until("the daemon to run", &log, || state()["phase"] == "running").await;
    std::fs::write(&fail, "").unwrap();
    wait_until("a failed renewal that is retried", &log, || {
        assert_ne!(state()["phase"], "exited", "one failed fetch ended the daemon: {}", log());
        state()["last_error"].as_str().is_some_and(|e| e.contains("idp hiccup"))
    })
    .await;
    let before = w.emu.stats().exchanges;
    wait_until("a renewal after the failure", &log, || {
        assert_ne!(state()["phase"], "exited", "the daemon ended: {}", log());
        w.emu.stats().exchanges > before && state()["last_error"].is_null()
    })
    .await;
    let out = run({
        let mut c = woci(&w);
        c.args(["--stop-daemon", "--profile", "P"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
