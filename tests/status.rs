//! `woci --status [--json]` with the real binary: one test per session state, checking the exit
//! code, the JSON fields and the text, that no request reaches the emulator, that the renewal
//! lock is not needed, and that no token or refresh token is ever printed.

mod common;

use common::*;
use std::process::Output;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn status(w: &World, json: bool, env: &[(&str, &str)], extra: &[&str]) -> Output {
    let mut c = w.woci();
    c.args(["--status", "--profile", "P"]);
    if json {
        c.arg("--json");
    }
    c.args(extra);
    for (k, v) in env {
        c.env(k, v);
    }
    run(c).await
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", stdout(o), stderr(o)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_token() {
    let w = World::new().await;
    let token = w.seed_token(3600);
    let rt = w.seed_refresh_token();
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["schema"], 1);
    assert_eq!(v["profile"], "P");
    assert_eq!(v["usable"], true);
    assert_eq!(v["next_action"], "none");
    assert_eq!(v["renewal"], "idp");
    assert_eq!(v["token"]["state"], "valid");
    assert_eq!(v["token"]["user"], "ocid1.user.oc1..seed");
    assert_eq!(v["token"]["tenancy"], "ocid1.tenancy.oc1..seed");
    let left = v["token"]["expires_in"].as_i64().unwrap();
    assert!((3500..=3600).contains(&left), "{left}");
    assert_eq!(v["refresh_token"]["stored"], true);
    assert_eq!(v["refresh_token"]["encrypted"], false);
    assert_eq!(v["daemon"]["running"], false);

    let text = status(&w, false, &[], &[]).await;
    assert_eq!(text.status.code(), Some(0));
    let t = stdout(&text);
    for needle in [
        "profile: P",
        "session token: valid",
        "user:    ocid1.user.oc1..seed",
        "refresh token: stored, not encrypted",
        "daemon: not running",
        "next call: nothing",
        "usable: yes (exit 0)",
    ] {
        assert!(t.contains(needle), "missing {needle:?}:\n{t}");
    }
    for o in [&out, &text] {
        assert_no_secrets(&format!("{}{}", stdout(o), stderr(o)), &[&token, &rt]);
    }
    assert_eq!(w.emu.stats().requests, 0, "--status makes no network call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_with_refresh_token_is_usable_and_not_renewed() {
    let w = World::new().await;
    let token = w.seed_token(-30);
    let rt = w.seed_refresh_token();
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["token"]["state"], "expired");
    assert_eq!(v["next_action"], "refresh");
    assert!(v["token"]["expires_in"].as_i64().unwrap() < 0);
    assert_eq!(w.read(&w.token_path()), token, "--status never renews");
    assert_eq!(w.emu.stats().requests, 0);
    assert_no_secrets(&stdout(&out), &[&token, &rt]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_refresh_token_means_login_exit_3() {
    let w = World::new().await;
    w.seed_token(-30);
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["next_action"], "login");
    assert_eq!(v["usable"], false);
    assert_eq!(v["refresh_token"]["stored"], false);

    // No token at all.
    std::fs::remove_file(w.token_path()).unwrap();
    let out = status(&w, false, &[], &[]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(stdout(&out).contains("session token: missing"), "{}", stdout(&out));
    assert!(stdout(&out).contains("next call: login"), "{}", stdout(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_refresh_token_with_right_wrong_and_no_passphrase() {
    let w = World::new().await;
    w.seed_token(-30);
    let rt = w.emu.issue_refresh_token();
    let sealed = woci::crypto::seal(&woci::secret::SecretString::from(rt.as_str()), &"pass-phrase-1".into());
    std::fs::write(w.session_dir().join("refresh_token"), &sealed).unwrap();
    let var = ["--refresh-token-passphrase-env", "WOCI_TEST_RT_PASS"];

    let out = status(&w, true, &[("WOCI_TEST_RT_PASS", "pass-phrase-1")], &var).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["refresh_token"]["encrypted"], true);
    assert_eq!(v["refresh_token"]["passphrase"], "env");
    assert_eq!(v["refresh_token"]["decryptable"], true);
    assert_eq!(v["next_action"], "refresh");

    let out = status(&w, true, &[("WOCI_TEST_RT_PASS", "pass-phrase-2")], &var).await;
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert_eq!(json(&out)["refresh_token"]["decryptable"], false);
    assert_eq!(json(&out)["next_action"], "impossible");

    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(8), "no passphrase configured");
    assert_eq!(json(&out)["refresh_token"]["passphrase"], "none");

    let out = status(&w, true, &[], &var).await;
    assert_eq!(out.status.code(), Some(2), "the passphrase variable is not set");

    assert_eq!(std::fs::read_to_string(w.session_dir().join("refresh_token")).unwrap(), sealed, "file untouched");
    assert_eq!(w.emu.stats().requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_token_is_exit_7() {
    let w = World::new().await;
    w.seed_refresh_token();
    std::fs::write(w.token_path(), "not-a-jwt-secretish-content").unwrap();
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["token"]["state"], "corrupt");
    assert!(!stdout(&out).contains("not-a-jwt-secretish-content"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_without_idp_and_expired_session_is_exit_9() {
    let w = World::new().await;
    w.drop_idp_settings();
    w.seed_token(-30);
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["renewal"], "session_refresh");
    assert_eq!(v["next_action"], "impossible");
    assert!(v["reason"].as_str().unwrap().contains("oci session authenticate --profile P"), "{v}");

    // Still valid but inside the window: a session refresh would do.
    w.seed_token(30);
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["next_action"], "session_refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_does_not_wait_for_the_renewal_lock() {
    use fs4::fs_std::FileExt;
    let w = World::new().await;
    w.seed_token(-30);
    w.seed_refresh_token();
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(w.session_dir().join(".lock"))
        .unwrap();
    assert!(FileExt::try_lock_exclusive(&lock).unwrap());
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out)["next_action"], "refresh");
    FileExt::unlock(&lock).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_token_expiry_from_the_idp_is_shown() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let renew = run({
        let mut c = w.woci();
        c.args(["session", "refresh"]);
        c
    })
    .await;
    assert!(renew.status.success(), "{}", stderr(&renew));
    let v = json(&status(&w, true, &[], &[]).await);
    let now = unix_now();
    let at = v["refresh_token"]["expires_at"].as_i64().expect("the IdP's refresh_expires_in is recorded");
    let ttl = w.cfg.refresh_token_ttl.as_secs() as i64;
    assert!((now + ttl - 120..=now + ttl).contains(&at), "expires_at {at}, expected about now + {ttl}");
}

/// Token claims with escape sequences, C1 controls, DEL, bidi overrides and a newline reach the
/// terminal only escaped: the text cannot clear the screen or fake a line, and the JSON stays
/// valid and gives back the claims exactly (as `\u` escapes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_claims_reach_the_terminal_only_escaped() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let user = "ocid1.user\u{1b}[2J\u{1b}]0;title\u{7}\u{9b}31m\u{202e}resu\u{7f}\nusable: yes (exit 0)";
    let tenancy = "ocid1.tenancy\u{85}\u{2066}\u{200b}x";
    let now = unix_now();
    let claims = serde_json::json!({"sub": user, "tenant": tenancy, "iat": now - 10, "exp": now + 3600});
    std::fs::write(w.token_path(), fake_jwt(&claims.to_string())).unwrap();

    let text = status(&w, false, &[], &[]).await;
    assert_eq!(text.status.code(), Some(0), "{}", stderr(&text));
    assert_terminal_safe(&text.stdout, "--status");
    let t = stdout(&text);
    assert_eq!(t.lines().filter(|l| l.starts_with("usable:")).count(), 1, "no faked line: {t}");
    assert!(t.contains("ocid1.user") && t.contains("resu"), "{t}");

    let out = status(&w, true, &[], &[]).await;
    assert_terminal_safe(&out.stdout, "--status --json");
    let v = json(&out);
    assert_eq!(v["token"]["user"], user, "the JSON keeps the claim exactly");
    assert_eq!(v["token"]["tenancy"], tenancy);
}

/// woci's own key gone (a user emptied the session folder) under a valid token bound to it: no
/// request can be signed, so `--status` and the call both plan a renewal with a new key (here a
/// login nobody can do: exit 3), rather than exit 2 asking for the config to be edited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_woci_made_gone_is_a_renewal_for_status_and_the_call() {
    let w = World::new().await;
    let out = run({
        let mut c = w.woci_with_browser();
        c.args(["session", "authenticate"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(w.session_dir().join("oci_api_key.pem")).unwrap();
    std::fs::remove_file(w.session_dir().join("refresh_token")).unwrap();
    let st = status(&w, true, &[], &[]).await;
    assert_eq!(st.status.code(), Some(3), "{}", stdout(&st));
    assert!(json(&st)["reason"].as_str().unwrap().contains("the key pair woci made for it is gone"), "{}", stdout(&st));
    let call = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(call.status.code(), Some(3), "{}", stderr(&call));
}

/// `--status` never says usable when the call will fail: for each state, the exit code `--status`
/// reports is the call's (0: the call runs `oci`), and the call's message names the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_the_call_agree_on_the_exit_code() {
    type Setup = fn(&World);
    let cases: [(&str, Setup, i32, &str); 8] = [
        (
            "valid token",
            |w| {
                w.seed_token(3600);
            },
            0,
            "",
        ),
        (
            "corrupt key",
            |w| {
                w.seed_token(3600);
                std::fs::write(
                    w.session_dir().join("oci_api_key.pem"),
                    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                )
                .unwrap();
            },
            7,
            "restore the key",
        ),
        (
            "key path is a folder",
            |w| {
                w.seed_token(3600);
                let k = w.session_dir().join("oci_api_key.pem");
                std::fs::remove_file(&k).unwrap();
                std::fs::create_dir(&k).unwrap();
            },
            2,
            "is a folder",
        ),
        (
            "configured key missing",
            |w| {
                w.seed_token(3600);
                let own = w.session_dir().join("oci_api_key.pem").display().to_string();
                let gone = w.oci_dir().join("gone.pem").display().to_string();
                std::fs::write(w.config_path(), w.read(&w.config_path()).replace(&own, &gone)).unwrap();
            },
            2,
            "does not exist",
        ),
        (
            "world-writable ~/.oci with a valid token",
            |w| {
                w.seed_token(3600);
                std::fs::set_permissions(w.oci_dir(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
            },
            2,
            "chmod go-w",
        ),
        (
            "corrupt token",
            |w| {
                w.seed_token(3600);
                std::fs::write(w.token_path(), "garbage").unwrap();
            },
            7,
            "move it away",
        ),
        (
            "expired, no refresh token, nobody to log in",
            |w| {
                w.seed_token(-60);
            },
            3,
            "woci session authenticate",
        ),
        (
            "profile missing from the OCI config, no IdP",
            |w| {
                w.drop_idp_settings();
                std::fs::write(w.config_path(), "[DEFAULT]\nregion=r\n[OTHER]\nregion=r\n").unwrap();
            },
            2,
            "it has `DEFAULT`, `OTHER`",
        ),
    ];
    for (name, setup, code, fix) in cases {
        let w = World::new().await;
        setup(&w);
        let st = status(&w, true, &[], &[]).await;
        assert_eq!(st.status.code(), Some(code), "{name}: --status: {}{}", stdout(&st), stderr(&st));
        assert_eq!(json(&st)["exit_code"], code, "{name}");
        let call = run({
            let mut c = w.woci();
            c.args(["os", "ns", "get"]);
            c
        })
        .await;
        assert_eq!(call.status.code(), Some(code), "{name}: the call: {}", stderr(&call));
        assert!(stderr(&call).contains(fix), "{name}: the message names the fix `{fix}`: {}", stderr(&call));
        assert_eq!(stderr(&call).lines().filter(|l| l.starts_with("woci: error:")).count(), usize::from(code != 0));
    }
}

/// A key, token or OCI config the user cannot read: `--status` and the call both say so (exit 7,
/// an unusable file, whichever it is) with the fix. Run as another user when the tests run as
/// root (root reads everything).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_file_is_reported_the_same_by_status_and_the_call() {
    use std::os::unix::fs::PermissionsExt;
    let files: [fn(&World) -> std::path::PathBuf; 3] =
        [|w| w.session_dir().join("oci_api_key.pem"), |w| w.token_path(), |w| w.config_path()];
    for file in files {
        let w = World::new().await;
        w.seed_token(3600);
        let unreadable = file(&w);
        // SAFETY: getuid(2) cannot fail.
        let root = unsafe { libc::getuid() } == 0;
        if root {
            // Everything belongs to `nobody` but the file, which stays root's and 0600.
            chown_tree(w.home(), 65534);
            std::os::unix::fs::chown(&unreadable, Some(0), Some(0)).unwrap();
            std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o600)).unwrap();
        } else {
            std::fs::set_permissions(&unreadable, std::fs::Permissions::from_mode(0o000)).unwrap();
        }
        let woci = |args: &[&str]| {
            let mut c = w.woci_std();
            c.args(args);
            if !root {
                return assert_cmd::Command::from_std(c);
            }
            let mut n = std::process::Command::new("setpriv");
            n.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(c.get_program()).args(c.get_args());
            for (k, v) in c.get_envs() {
                match v {
                    Some(v) => n.env(k, v),
                    None => n.env_remove(k),
                };
            }
            assert_cmd::Command::from_std(n)
        };
        let name = unreadable.display();
        let st = run(woci(&["--status", "--json"])).await;
        let call = run(woci(&["os", "ns", "get"])).await;
        assert_eq!(st.status.code(), Some(7), "{name}: {}{}", stdout(&st), stderr(&st));
        assert_eq!(call.status.code(), Some(7), "{name}: {}", stderr(&call));
        assert!(
            stderr(&call).contains("permission denied")
                && (stderr(&call).contains("chmod 600") || stderr(&call).contains("sudo chown 65534")),
            "{}",
            stderr(&call)
        );
    }
}

fn chown_tree(p: &std::path::Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            chown_tree(&e.path(), uid);
        }
    }
}

/// A damaged OCI config: `--status --json` still prints JSON (with the error) and exits 7; its
/// strings carry no Markdown backticks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_comes_even_when_the_files_cannot_be_read() {
    let w = World::new().await;
    w.seed_token(3600);
    std::fs::write(w.config_path(), "[P]\nkey_file=a\n[P]\nkey_file=b\n").unwrap();
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(
        (v["usable"].clone(), v["exit_code"].clone(), v["next_action"].clone()),
        (false.into(), 7.into(), "impossible".into())
    );
    assert!(v["reason"].as_str().unwrap().contains("config"), "{v}");
    assert!(!stdout(&out).contains('`'), "plain JSON strings: {}", stdout(&out));
    let ok = World::new().await;
    ok.seed_token(3600);
    let o = status(&ok, true, &[], &["--token-url", "https://idp.example/token"]).await;
    assert!(!stdout(&o).contains('`'), "plain JSON strings: {}", stdout(&o));
}

/// What stops the call besides its renewal is what `--status` says too — an `oci` that cannot
/// run, another `--auth` — and when the settings cannot even be read, JSON readers still get JSON
/// and the prompt still shows the profile with `error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_stops_the_call_and_unreadable_settings() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let out = status(&w, true, &[("WOCI_OCI_COMMAND", "/nonexistent/oci")], &[]).await;
    assert_eq!(out.status.code(), Some(127), "{}", stdout(&out));
    assert!(json(&out)["reason"].as_str().unwrap().contains("/nonexistent/oci"), "{}", stdout(&out));
    // The prompt is the same assessment: the valid token does not make it usable.
    let out = status(&w, false, &[("WOCI_OCI_COMMAND", "/nonexistent/oci")], &["--prompt"]).await;
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(127), "P error\n"), "{}", stderr(&out));
    let out = status(&w, false, &[("WOCI_OCI_COMMAND", "/etc/passwd")], &[]).await;
    assert_eq!(out.status.code(), Some(126), "{}", stdout(&out));
    assert!(stdout(&out).contains("oci_command"), "{}", stdout(&out));
    let out = status(&w, true, &[("OCI_CLI_AUTH", "api_key")], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(json(&out)["reason"].as_str().unwrap().contains("go to oci unchanged"), "{}", stdout(&out));
    std::fs::remove_file(w.token_path()).unwrap();
    let out = status(&w, false, &[("OCI_CLI_AUTH", "api_key")], &["--prompt"]).await;
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(0), "P ok\n"), "no session needed");
    w.seed_token(3600);

    let ini = w.read(&w.manager_ini_path());
    std::fs::write(w.manager_ini_path(), format!("{ini}garbage line\n")).unwrap();
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!((v["profile"].as_str(), v["usable"].as_bool()), (Some("P"), Some(false)), "{v}");
    // The line is named by its number, never quoted (it may be a pasted secret).
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains("is not key = value") && !reason.contains("garbage"), "{v}");
    let out = status(&w, false, &[], &["--prompt"]).await;
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(2), "P error\n"), "{}", stderr(&out));
    let out = status(&w, true, &[], &["--all"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(json(&out)["error"].as_str().unwrap().contains("is not key = value"), "{}", stdout(&out));
    let entry = &json(&out)["profiles"][0]["error"];
    assert!(entry.as_str().is_some_and(|e| e.contains("is not key = value")), "the JSON is plain: {entry}");
    // The table's line keeps the backticks `--status` has (round 92 N3).
    let out = status(&w, false, &[], &["--all"]).await;
    assert!(stdout(&out).contains("is not `key = value`"), "{}", stdout(&out));
}

/// The last renewal's failure counts for the next one: a refresh grant whose answer was lost has
/// probably spent the refresh token (the call says so, `--status` predicts the login), and a
/// refusal fails the next call the same way until what it met changes (the profile's settings,
/// a CA or proxy variable; not another profile's part of the OCI config).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_failure_is_what_the_next_call_meets() {
    use woci_emulator::{Endpoint, Fault};
    let w = World::new().await;
    w.seed_refresh_token();
    w.emu.set_fault(Endpoint::IdpToken, Fault::reset_reply().times(1));
    let mut c = w.woci();
    c.args(["session", "refresh", "--profile", "P"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("its answer was lost") && !stderr(&out).contains("unreachable"), "{}", stderr(&out));
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    let v = json(&out);
    assert!(v["reason"].as_str().unwrap().contains("probably spent"), "{v}");
    assert_eq!(v["last_failure"]["exit_code"], 6, "{v}");
    let mut c = w.woci();
    c.args(["os", "ns", "get"]);
    assert_eq!(run(c).await.status.code(), Some(3), "the prediction holds");

    let w = World::new().await;
    w.seed_refresh_token();
    std::fs::write(w.config_path(), "[P]\nregion = us-ashburn-1\n").unwrap();
    w.emu.set_fault(Endpoint::Exchange, Fault::status(401));
    let mut c = w.woci();
    c.args(["os", "ns", "get"]);
    assert_eq!(run(c).await.status.code(), Some(5));
    let out = status(&w, false, &[], &[]).await;
    assert_eq!(out.status.code(), Some(5), "{}", stdout(&out));
    assert!(stdout(&out).contains("fails the same way until that is fixed"), "{}", stdout(&out));
    let out = status(&w, false, &[], &["--prompt"]).await;
    assert_eq!((out.status.code(), stdout(&out).as_str()), (Some(5), "P error\n"), "the prompt agrees");
    // Another profile's renewal writing its section of the OCI config is no fix.
    let config = w.read(&w.config_path());
    std::fs::write(w.config_path(), format!("{config}\n[OTHER]\nregion = us-phoenix-1\n")).unwrap();
    assert_eq!(status(&w, false, &[], &[]).await.status.code(), Some(5), "another profile's write");
    // A CA or proxy variable set differently may be; so is an edit of the manager INI.
    assert_eq!(status(&w, false, &[("HTTPS_PROXY", "http://127.0.0.1:9")], &[]).await.status.code(), Some(0));
    // So may a setting given on the command line, with the fix in hand; the same value given
    // again, or a flag that changes no request, is no fix.
    assert_eq!(status(&w, false, &[], &["--client-secret", "another"]).await.status.code(), Some(0));
    let same = w.read(&w.manager_ini_path());
    let secret = same.lines().find_map(|l| l.strip_prefix("client_secret = ")).unwrap().to_owned();
    for flags in [&["--client-secret", secret.as_str()][..], &["--debug"], &["--no-browser"], &["--log-level", "info"]]
    {
        assert_eq!(status(&w, false, &[], flags).await.status.code(), Some(5), "{flags:?}");
    }
    // Another profile's section in the INI is no fix either; a change to this profile's values is.
    let ini = w.read(&w.manager_ini_path());
    std::fs::write(w.manager_ini_path(), format!("{ini}\n[NEW]\nregion = us-phoenix-1\n")).unwrap();
    assert_eq!(status(&w, false, &[], &[]).await.status.code(), Some(5), "another profile's section");
    assert!(ini.contains("scope = openid offline_access"), "{ini}");
    std::fs::write(
        w.manager_ini_path(),
        ini.replace("scope = openid offline_access", "scope = openid  offline_access"),
    )
    .unwrap();
    assert_eq!(status(&w, false, &[], &[]).await.status.code(), Some(0));
    // So is a refresh token put in place (a login, one put back).
    std::fs::write(w.manager_ini_path(), &ini).unwrap();
    assert_eq!(status(&w, false, &[], &[]).await.status.code(), Some(5), "as the failure met it");
    w.seed_refresh_token();
    assert_eq!(status(&w, false, &[], &[]).await.status.code(), Some(0), "a new refresh token");
}

/// Round 42: `--status` said usable while the identity provider could not be reached (every call
/// failed with exit 6), and said "log in" after a login that a setting refused (the login failed
/// again the same way). An outage of moments ago counts for the next call; a login meets the
/// setting the last one met.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_what_the_next_call_meets_after_an_outage_or_a_refused_login() {
    let w = World::new().await;
    w.seed_refresh_token();
    w.write_manager_ini(&[("token_url", "http://127.0.0.1:9/oauth2/v1/token")]);
    let mut c = w.woci();
    c.args(["os", "ns", "get"]);
    assert_eq!(run(c).await.status.code(), Some(6));
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(6), "{}", stdout(&out));
    assert!(json(&out)["reason"].as_str().unwrap().contains("fails the same way while that lasts"), "{}", stdout(&out));
    let out = status(&w, false, &[], &["--prompt"]).await;
    assert_eq!(stdout(&out), "P error\n");
    w.write_manager_ini(&[]);
    assert_eq!(status(&w, false, &[], &[]).await.status.code(), Some(0), "the URL fixed");

    let w = World::new().await;
    w.write_manager_ini(&[("scope", "openid")]);
    let mut c = w.woci_with_browser();
    c.args(["session", "authenticate"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("issued no refresh token"), "{}", stderr(&out));
    let browser = w.browser.to_str().unwrap();
    let out = status(&w, false, &[("BROWSER", browser)], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).contains("a login fails the same way until that is fixed"), "{}", stdout(&out));
    let mut c = w.woci_with_browser();
    c.args(["os", "ns", "get"]);
    assert_eq!(run(c).await.status.code(), Some(2), "the prediction holds");
    // Where no login can happen (no terminal, no `BROWSER`), the call fails for that first.
    assert_eq!(status(&w, false, &[], &[]).await.status.code(), Some(3));
    let mut c = w.woci();
    c.args(["os", "ns", "get"]);
    assert_eq!(run(c).await.status.code(), Some(3), "the prediction holds");
    w.write_manager_ini(&[]);
    assert_eq!(status(&w, false, &[], &[]).await.status.code(), Some(3), "the scope fixed: a login");
}

/// An outage of the token exchange (HTTP 503) met by a daemon started the systemd way (`env -i`:
/// no CA or proxy variable of the shell's) is the shell's next call's too: `--status` and the
/// prompt say so (round 100 F1: they said renewable, exit 0, while calls failed with exit 6). An
/// unreachable server is still judged by the variables that may reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_met_by_a_daemon_with_another_environment_is_the_next_calls_too() {
    let w = World::new().await;
    w.seed_refresh_token();
    w.emu.set_fault(woci_emulator::Endpoint::Exchange, woci_emulator::Fault::status(503));
    let mut c = w.woci();
    c.args(["session", "refresh"]).env_remove("REQUESTS_CA_BUNDLE").env("CURL_CA_BUNDLE", common::SYSTEM_CA);
    assert_eq!(run(c).await.status.code(), Some(6));
    let out = status(&w, false, &[("HTTPS_PROXY", "http://127.0.0.1:9")], &[]).await;
    assert_eq!(out.status.code(), Some(6), "{}", stdout(&out));
    let out = status(&w, false, &[], &["--prompt"]).await;
    assert_eq!(stdout(&out), "P error\n");
    // A renewal under way has rotated the refresh token (its grant went through) and meets the
    // outage again: still the outage (round 101 F1: usable, exit 0, meanwhile).
    std::fs::remove_file(w.session_dir().join("refresh_token")).unwrap();
    w.seed_refresh_token();
    assert_eq!(status(&w, false, &[], &[]).await.status.code(), Some(6));
    let mut c = w.woci();
    c.args(["os", "ns", "get"]);
    assert_eq!(run(c).await.status.code(), Some(6), "the prediction holds");
    // A renewal setting the shell gives differently may be the fix.
    assert_eq!(status(&w, false, &[("WOCI_CLIENT_SECRET", "another")], &[]).await.status.code(), Some(0));
}

/// A renewal stopped with Ctrl-Z keeps the renewal lock, so the next call would wait minutes for
/// it: `--status` says so (exit 10, naming the pid), and says usable again once it resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_renewal_holding_the_lock_is_named() {
    use woci_emulator::{Endpoint, Fault};
    let w = World::new().await;
    w.write_manager_ini(&[("metrics_file", &w.home().join("woci.prom").display().to_string())]);
    w.seed_token(-30);
    w.seed_refresh_token();
    // Long enough for the checks below while it runs (stopped, it waits anyway).
    w.emu.set_fault(Endpoint::IdpToken, Fault::latency(std::time::Duration::from_secs(10)).times(1));
    let call = w
        .woci_std()
        .args(["os", "ns", "get"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = call.id();
    let lock = w.session_dir().join(".lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_to_string(&lock).unwrap_or_default() != pid.to_string() {
        assert!(std::time::Instant::now() < deadline, "the call never took the renewal lock");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // While it runs, the call only waits a little: usable, with the renewal under way named.
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["renewal_under_way"]["pid"], pid, "{}", stdout(&out));
    assert_eq!(json(&out)["renewal_under_way"]["login"], false, "{}", stdout(&out));
    let out = status(&w, false, &[], &[]).await;
    assert!(stdout(&out).contains(&format!("renewal under way: by pid {pid} since ")), "{}", stdout(&out));
    let signal = |sig: &str| std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap();
    assert!(signal("-STOP").success());
    // The stop takes effect a moment after `kill` returns.
    let stopped = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('T'))
    };
    while !stopped() {
        assert!(std::time::Instant::now() < deadline, "the call never stopped");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["usable"], false);
    let reason = v["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("woci pid {pid}")) && reason.contains("kill -CONT"), "{reason}");
    // Ending it the way that keeps a refresh grant under way: TERM, held, acted on once resumed.
    assert!(reason.contains(&format!("kill -TERM {pid}; kill -CONT {pid}")), "{reason}");
    let text = status(&w, false, &[], &["--prompt"]).await;
    assert_eq!(stdout(&text).trim(), "P error");
    // A call that needs the lock gives up after a few seconds, naming the stopped woci, instead
    // of waiting minutes for someone to resume it.
    let mut call2 = w.woci();
    call2.args(["os", "ns", "get"]);
    let started = std::time::Instant::now();
    let out = run(call2).await;
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("woci pid {pid}")) && stderr(&out).contains("is stopped"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
    // Its failed attempt keeps the session's ends in the gauges: nothing changed them (round 87 F2).
    let counted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(w.session_dir().join("woci-metrics.json")).unwrap()).unwrap();
    assert!(counted["token_exp"].is_i64(), "{counted}");
    assert!(signal("-CONT").success());
    let done = tokio::task::spawn_blocking(move || call.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let out = status(&w, true, &[], &[]).await;
    assert_eq!(out.status.code(), Some(0));
    assert!(json(&out)["renewal_under_way"].is_null(), "the pid stays in the lock file, the lock does not");
}

/// A first look on a new machine gets a sentence, not an empty table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_all_without_any_profile_says_so() {
    let w = World::new().await;
    std::fs::remove_file(w.manager_ini_path()).unwrap();
    let out = status(&w, false, &[], &["--all"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("no profiles: no `woci_manager.ini` and no sessions in"), "{}", stdout(&out));
    let out = status(&w, true, &[], &["--all"]).await;
    assert_eq!(json(&out)["profiles"], serde_json::json!([]));
}

/// A manager INI with a syntax error (an edit half done) still lists the profiles of the session
/// folders, each with the error its own `--status` gives and its token's end, rather than an
/// empty answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_all_with_a_broken_ini_lists_the_sessions_with_the_error() {
    let w = World::new().await;
    w.seed_token(3600);
    let ini = w.read(&w.manager_ini_path());
    std::fs::write(w.manager_ini_path(), format!("{ini}scope openid offline_access\n")).unwrap();
    let out = status(&w, false, &[], &["--all"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}{}", stderr(&out));
    assert!(text.lines().any(|l| l.starts_with("P ") && l.contains("impossible")), "{text}");
    assert!(text.contains("\nP: invalid manager config ") && text.contains(": line "), "{text}");
    let out = status(&w, true, &[], &["--all"]).await;
    let v = json(&out);
    assert_eq!(v["profiles"][0]["profile"], "P", "{v}");
    assert!(v["profiles"][0]["error"].as_str().is_some_and(|e| e.contains("line")), "{v}");
    assert_eq!(v["profiles"][0]["exit_code"], 2, "{v}");
    assert!(v["error"].as_str().is_some_and(|e| e.contains("line")) && v["exit_code"] == 2, "{v}");
    // The token's end is still read from the session folder.
    let exp = woci::jwt::decode_upst(&w.read(&w.token_path())).unwrap().exp;
    assert_eq!(v["profiles"][0]["token_expires_at"], exp, "{v}");
}

/// A section whose name no profile can have (oci allows a backslash, woci's session folders do
/// not) is a row saying why, with what it holds escaped, not left out without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_all_shows_a_profile_name_woci_cannot_use_and_why() {
    let w = World::new().await;
    w.seed_token(3600);
    let ini = w.read(&w.manager_ini_path());
    std::fs::write(w.manager_ini_path(), format!("{ini}\n[q\"uo\\te]\nregion = us-ashburn-1\n[bell\u{7}]\n")).unwrap();
    let out = status(&w, false, &[], &["--all"]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("q\"uo\\te: invalid profile name `q\"uo\\te`: it holds `\\`, and woci"), "{text}");
    assert!(text.contains("bell\\x07") && !text.contains('\u{7}'), "escaped: {text}");
    assert!(text.lines().any(|l| l.starts_with("P ") && l.contains("usable")), "the others as before: {text}");
    let out = status(&w, true, &[], &["--all"]).await;
    let v = json(&out);
    let names: Vec<&str> = v["profiles"].as_array().unwrap().iter().map(|p| p["profile"].as_str().unwrap()).collect();
    assert!(names.contains(&"q\"uo\\te") && names.contains(&"bell\u{7}") && names.contains(&"P"), "{v}");
    // The name given on the command line: why, and what to do.
    let out = status(&w, false, &[], &["--profile", "q\"uo\\te"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("from `--profile`: it holds `\\`") && stderr(&out).contains("use another name"),
        "{}",
        stderr(&out)
    );
}

/// A login that cannot even start (a browser login without `redirect_port`) is what `--status`
/// reports where a person could log in (a terminal, or a `BROWSER` command), as the call meets
/// it: a setting to fix (exit 2), not a login to do. Without one, the login itself cannot happen
/// (exit 3), which every call says alike: the first, whose refresh token is refused, and the
/// next ones, which know it (they once said exit 2 and class `config`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_without_redirect_port_is_a_setting_to_fix() {
    let w = World::new().await;
    w.write_manager_ini(&[("redirect_port", "")]);
    w.seed_token(-30);
    let out = status(&w, true, &[("BROWSER", "true")], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(json(&out)["reason"].as_str().unwrap().contains("redirect_port"), "{}", stdout(&out));
    let out = status(&w, true, &[("BROWSER", "true")], &["--device-code"]).await;
    assert_eq!(out.status.code(), Some(3), "a device-code login needs no port: {}", stdout(&out));
    std::fs::write(w.session_dir().join("refresh_token"), "refused-by-the-idp").unwrap();
    for _ in 0..2 {
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        let out = run(c).await;
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(stderr(&out).contains("no terminal"), "{}", stderr(&out));
        assert_eq!(status(&w, true, &[], &[]).await.status.code(), Some(3), "--status agrees");
    }
}

/// Root with a user's HOME (`sudo -E woci …`): what the renewal writes into the user's `~/.oci`
/// keeps the user as its owner, so that the user's own next call (and plain `oci`) still reads
/// it. Only root can make files for another user: as a user, the files are simply the user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_with_a_users_home_leaves_the_users_files_the_users() {
    use std::os::unix::fs::MetadataExt;
    let w = World::new().await;
    w.seed_refresh_token();
    // SAFETY: getuid(2) cannot fail.
    let me = unsafe { libc::getuid() };
    let (root, user) = (me == 0, if me == 0 { 65534 } else { me });
    let oci = w.home().join(".oci");
    if root {
        chown_tree(&oci, user);
    }
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let mut seen = 0;
    let mut stack = vec![oci];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (user, if root { user } else { meta.gid() }), "{}", p.display());
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
        }
        seen += 1;
    }
    assert!(seen >= 8, "the config, the session folder, its key, token, refresh token and lock: {seen}");
}

/// A session folder another user owns (writable by this one through its group) is refused by
/// `--status` and the call alike (exit 2), as ssh refuses such a `~/.ssh`: it was "usable" for
/// `--status` while the call failed. Only root can give a folder to another user: the user is
/// `nobody` then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_folder_of_another_user_is_refused_by_status_and_the_call() {
    let w = World::new().await;
    w.seed_token(-30);
    w.seed_refresh_token();
    // SAFETY: getuid(2) cannot fail.
    if unsafe { libc::getuid() } != 0 {
        let out = status(&w, false, &[], &[]).await;
        assert_eq!(out.status.code(), Some(0), "the user's own folder: {}", stdout(&out));
        return;
    }
    chown_tree(w.home(), 65534);
    std::os::unix::fs::chown(w.session_dir(), Some(0), Some(65534)).unwrap();
    std::fs::set_permissions(w.session_dir(), std::os::unix::fs::PermissionsExt::from_mode(0o770)).unwrap();
    let as_nobody = |args: &[&str]| {
        let c = w.woci_std();
        let mut n = std::process::Command::new("setpriv");
        n.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]).arg(c.get_program()).args(args);
        for (k, v) in c.get_envs() {
            match v {
                Some(v) => n.env(k, v),
                None => n.env_remove(k),
            };
        }
        assert_cmd::Command::from_std(n)
    };
    let st = run(as_nobody(&["--status"])).await;
    let call = run(as_nobody(&["os", "ns", "get"])).await;
    assert_eq!(st.status.code(), Some(2), "{}", stdout(&st));
    assert!(stdout(&st).contains("belongs to another user (uid 0)"), "{}", stdout(&st));
    assert_eq!(call.status.code(), Some(2), "{}", stderr(&call));
    assert!(stderr(&call).contains("belongs to another user (uid 0)"), "{}", stderr(&call));
    assert_eq!(w.emu.stats().refresh_grants, 0);
}

/// A session key other users can read is said by `--status` as a renewal says it (`--status`
/// reads no key, and a newcomer's `chmod` mistake went unnoticed there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_says_a_session_key_other_users_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new().await;
    w.seed_token(3600);
    let key = w.session_dir().join("oci_api_key.pem");
    let out = status(&w, false, &[], &[]).await;
    assert!(!stderr(&out).contains("readable by other users"), "{}", stderr(&out));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = status(&w, false, &[], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fix = format!("is readable by other users (mode 644); run `chmod 600 {}`", key.display());
    assert!(stderr(&out).contains(&fix), "{}", stderr(&out));
}
