//! The core job (issue: keep the session valid, then run `oci`), exercised with the real `woci`
//! binary against the in-repo emulator and a stand-in `oci` that records its argv.

mod common;

use common::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use woci_emulator::{Config, Endpoint, Fault, FaultAction};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_token_means_no_network_call_and_args_pass_through() {
    let w = World::new().await;
    w.seed_token(3600);
    let out = run({
        let mut c = w.woci();
        c.args(["os", "object", "put", "--bucket-name", "b", "--file", "f with space", "--client-id", "kept"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        w.oci_argv(),
        [
            "--profile",
            "P",
            "--auth",
            "security_token",
            "os",
            "object",
            "put",
            "--bucket-name",
            "b",
            "--file",
            "f with space",
            "--client-id",
            "kept"
        ]
    );
    assert_eq!(w.emu.stats().requests, 0, "a valid token must not cause any request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_profile_and_auth_are_not_added_again() {
    let w = World::new().await;
    w.seed_token(3600);
    let out = run({
        let mut c = w.woci();
        c.args(["--profile", "P", "os", "ns", "get", "--auth", "security_token"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.oci_argv(), ["--profile", "P", "os", "ns", "get", "--auth", "security_token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_token_makes_one_refresh_and_one_exchange_and_stores_rotation() {
    let w = World::new().await;
    let old_token = w.seed_token(-10);
    let old_rt = w.seed_refresh_token();
    let out = run({
        let mut c = w.woci();
        c.args(["--debug", "os", "ns", "get"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let st = w.emu.stats();
    assert_eq!((st.refresh_grants, st.exchanges), (1, 1));

    let token = w.read(&w.token_path());
    assert_ne!(token, old_token);
    assert!(!token.ends_with('\n'));
    let rt = w.read(&w.session_dir().join("refresh_token"));
    assert!(!rt.is_empty() && rt != old_rt, "the rotated refresh token is stored");

    let config = w.read(&w.config_path());
    for key in ["fingerprint=", "key_file=", "security_token_file=", "tenancy=", "region=us-ashburn-1"] {
        assert!(config.contains(key), "config lacks {key}:\n{config}");
    }
    assert!(w.session_dir().join("oci_api_key.pem").is_file());
    assert_no_secrets(&stderr(&out), &[&token, &rt, &old_rt, &w.cfg.exchange_client_secret]);

    // The key pair is stable across renewals.
    let fp = |c: &str| c.lines().find(|l| l.starts_with("fingerprint")).map(str::to_owned);
    let first = fp(&config);
    w.seed_token(-10);
    let again = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(fp(&w.read(&w.config_path())), first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_upsert_keeps_other_profiles_and_comments() {
    let w = World::new().await;
    let original =
        "# my settings\n[DEFAULT]\nregion=eu-frankfurt-1\n\n[other]\nuser=ocid1.user..x # keep\nkey_file=/k.pem\n";
    std::fs::write(w.config_path(), original).unwrap();
    w.seed_token(-10);
    w.seed_refresh_token();
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let config = w.read(&w.config_path());
    assert!(config.starts_with(original), "existing lines changed:\n{config}");
    assert!(config.contains("[P]"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(w.config_path()).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

/// `oci session authenticate --profile DEFAULT` puts its key and token in `[DEFAULT]`, which every
/// profile inherits: an IdP profile still keeps a session of its own and never renews into
/// DEFAULT's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_profile_never_renews_into_a_session_it_inherits_from_default() {
    let w = World::new().await;
    let theirs = w.home().join(".oci/sessions/DEFAULT");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("token"), "their-token").unwrap();
    std::fs::write(theirs.join("oci_api_key.pem"), "their-key").unwrap();
    let config = format!(
        "[DEFAULT]\nkey_file={0}/oci_api_key.pem\nsecurity_token_file={0}/token\nfingerprint=aa:bb\nregion=us-ashburn-1\n\n[P]\nregion=us-ashburn-1\n",
        theirs.display()
    );
    std::fs::write(w.config_path(), &config).unwrap();
    w.seed_refresh_token();
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.read(&theirs.join("token")), "their-token");
    assert_eq!(w.read(&theirs.join("oci_api_key.pem")), "their-key");
    assert!(w.token_path().exists(), "P has its own session token");
    let written = w.read(&w.config_path());
    assert!(written.starts_with(&config[..config.find("[P]").unwrap()]), "DEFAULT was changed:\n{written}");
    let own = &written[written.find("[P]").unwrap()..];
    assert!(own.contains(&format!("security_token_file={}", w.token_path().display())), "{own}");
}

/// A key encrypted with a passphrase (`oci session authenticate --use-passphrase`, `pass_phrase`
/// in the config) is no damage: with a valid token the call runs `oci`, which can use the key;
/// only a renewal, which woci cannot make with it, is refused, naming what can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_with_a_passphrase_is_used_by_oci_not_called_corrupt() {
    let w = World::new().await;
    w.seed_session_profile(std::time::Duration::from_secs(3600));
    let key = w.session_dir().join("oci_api_key.pem");
    std::fs::write(&key, "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkq\n-----END ENCRYPTED PRIVATE KEY-----\n")
        .unwrap();
    let config = w.read(&w.config_path());
    std::fs::write(w.config_path(), format!("{config}pass_phrase=kp\n")).unwrap();
    let call = |args: &'static [&'static str]| {
        let mut c = w.woci();
        c.args(args);
        run(c)
    };
    let out = call(&["os", "ns", "get"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(call(&["--status"]).await.status.code(), Some(0));
    let out = call(&["session", "refresh"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("encrypted with a passphrase") && stderr(&out).contains("command oci session refresh"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("corrupt"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_falls_back_to_a_headless_login() {
    let w = World::new().await;
    w.seed_token(-10);
    std::fs::write(w.session_dir().join("refresh_token"), "revoked-or-unknown-refresh-token").unwrap();
    let out = run({
        let mut c = w.woci_with_browser();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let st = w.emu.stats();
    assert_eq!((st.refresh_grants, st.auth_code_grants, st.exchanges), (1, 1, 1));
    assert_ne!(w.read(&w.session_dir().join("refresh_token")), "revoked-or-unknown-refresh-token");
    // A login names its user at the default log level too, whichever command made it.
    let sub = woci::jwt::decode_upst(&w.read(&w.token_path())).unwrap().sub.unwrap();
    let said = format!("woci: session of profile `P` was created by a new login for user `{sub}`");
    assert_eq!(stderr(&out).matches(&said).count(), 1, "{}", stderr(&out));
    // `woci session refresh` too, with one refused grant: the login is what it stores, not a
    // second grant with the token the IdP just refused.
    std::fs::write(w.session_dir().join("refresh_token"), "revoked-or-unknown-refresh-token").unwrap();
    let out = run({
        let mut c = w.woci_with_browser();
        c.args(["session", "refresh"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let st = w.emu.stats();
    assert_eq!((st.refresh_grants, st.auth_code_grants, st.exchanges), (2, 2, 2));
}

/// A refused exchange client whose secret came from `WOCI_CLIENT_SECRET` (not the INI, which looks
/// right) is named with that variable (round 84 N5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_client_secret_from_the_environment_is_named() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let mut c = w.woci();
    c.env("WOCI_CLIENT_SECRET", "left-in-the-shell").args(["os", "ns", "get"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("`client_secret` is set by the `WOCI_CLIENT_SECRET` variable"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("left-in-the-shell"), "{}", stderr(&out));
}

/// Without anyone to log in, a refused refresh token is remembered: `--status` says a login is
/// needed (exit 3) and the next call does not spend another grant on it; a login clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_is_remembered_until_a_login() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    w.emu.revoke_refresh_tokens();
    let call = || {
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        run(c)
    };
    let status = || {
        let mut c = w.woci();
        c.arg("--status");
        run(c)
    };
    let first = call().await;
    assert_eq!(first.status.code(), Some(3), "{}", stderr(&first));
    let out = status().await;
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("refresh token was refused earlier (identity provider"));
    let out = call().await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stderr(&out), stderr(&first), "the same one line as the call that was refused");
    assert_eq!(w.emu.stats().refresh_grants, 1, "the refused token is not sent again");
    let out = run({
        let mut c = w.woci_with_browser();
        c.args(["session", "authenticate"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(status().await.status.code(), Some(0));
}

/// A refusal met at another identity provider (a wrong `token_url`, since fixed) is not held
/// against the refresh token: the next call sends it to the right one and renews, without a
/// login (round 83 F1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_at_a_since_corrected_token_url_is_forgotten() {
    use woci_emulator::{Endpoint, Fault};
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let ini = w.read(&w.manager_ini_path());
    let good = ini.lines().find(|l| l.starts_with("token_url = ")).unwrap().to_owned();
    // The same endpoint under another URL stands for the wrong IdP, which refuses the token.
    std::fs::write(w.manager_ini_path(), ini.replace(&good, &format!("{good}?wrong=1"))).unwrap();
    w.emu.set_fault(Endpoint::IdpToken, Fault::invalid_grant().times(1));
    let call = || {
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        run(c)
    };
    let out = call().await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = call().await;
    assert_eq!(out.status.code(), Some(3), "refused at that URL, it is not sent there again: {}", stderr(&out));
    std::fs::write(w.manager_ini_path(), &ini).unwrap();
    let status = run({
        let mut c = w.woci();
        c.arg("--status");
        c
    })
    .await;
    assert_eq!(status.status.code(), Some(0), "{}", String::from_utf8_lossy(&status.stdout));
    let out = call().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let st = w.emu.stats();
    assert_eq!((st.refresh_grants_attempted(), st.auth_code_grants), (2, 0), "one refusal, one grant, no login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_authenticate_forces_a_login_and_is_not_forwarded() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let out = run({
        let mut c = w.woci_with_browser();
        c.args(["session", "authenticate"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.emu.stats().auth_code_grants, 1);
    assert!(!w.oci_out.exists(), "session authenticate must not run oci");
}

/// oci's own login options (or a typo) are refused before any login, never dropped while another
/// profile logs in; `--help` is oci's help, not a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_commands_refuse_what_they_cannot_honour() {
    let w = World::new().await;
    for (args, expect) in [
        (&["session", "authenticate", "--profile-name", "PROD"][..], "`--profile NAME session authenticate`"),
        (&["session", "refresh", "--profle", "PROD"], "did you mean `--profile`?"),
        // oci's own login for a profile that is woci's would replace its key and token.
        (
            &["--profile", "NEWP", "session", "authenticate", "--profile-name", "P"],
            "woci --profile P session authenticate",
        ),
    ] {
        let out = run({
            let mut c = w.woci_with_browser();
            c.args(args);
            c
        })
        .await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("woci: ") && stderr(&out).contains(expect), "{args:?}: {}", stderr(&out));
    }
    assert!(!w.oci_out.exists(), "oci was not run");
    let out = run({
        let mut c = w.woci_with_browser();
        c.args(["session", "authenticate", "--help"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(w.oci_out.exists(), "`session authenticate --help` is oci's");
    let stats = w.emu.stats();
    assert_eq!((stats.auth_code_grants, stats.refresh_grants_issued), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_refresh_forces_a_renewal_of_a_valid_token() {
    let w = World::new().await;
    let old = w.seed_token(3600);
    w.seed_refresh_token();
    let out = run({
        let mut c = w.woci();
        c.args(["session", "refresh"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.emu.stats().refresh_grants, 1);
    assert_ne!(w.read(&w.token_path()), old);
    assert!(!w.oci_out.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_concurrent_calls_on_an_expired_token_make_one_refresh() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let mut c = w.woci();
        c.env("FAKE_OCI_OUT", w.home().join(format!("argv-{i}")));
        c.args(["os", "ns", "get"]);
        tasks.push(run(c));
    }
    let outs = futures_util::future::join_all(tasks).await;
    for o in &outs {
        assert!(o.status.success(), "{}", stderr(o));
    }
    let st = w.emu.stats();
    assert_eq!((st.refresh_grants, st.exchanges), (1, 1), "30 calls, one renewal");
    let tokens: HashSet<String> = (0..30).map(|_| w.read(&w.token_path())).collect();
    assert_eq!(tokens.len(), 1);
}

// ---- error paths: exit code, one line, good state untouched ----

struct Snapshot(Vec<(std::path::PathBuf, Option<Vec<u8>>)>);

fn snapshot(w: &World) -> Snapshot {
    let paths = [
        w.token_path(),
        w.session_dir().join("refresh_token"),
        w.config_path(),
        w.session_dir().join("oci_api_key.pem"),
    ];
    Snapshot(paths.iter().map(|p| (p.clone(), std::fs::read(p).ok())).collect())
}

/// Every file that existed is byte for byte the same. (A key pair created on the way is not
/// "good state destroyed": it is the profile's key from now on.)
fn assert_unchanged(before: &Snapshot, w: &World) {
    let _ = w;
    for (p, b) in &before.0 {
        if let Some(b) = b {
            let now = std::fs::read(p).ok();
            assert!(now.as_ref() == Some(b), "{} changed or vanished after a failed renewal", p.display());
        }
    }
}

async fn expect_failure(w: &World, code: i32, needle: &str) -> String {
    let before = snapshot(w);
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("woci: error:")).count(), 1, "{err}");
    assert!(!w.oci_out.exists(), "oci must not run after a failed renewal");
    assert_unchanged(&before, w);
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_configuration_is_exit_2() {
    let w = World::new().await;
    w.write_manager_ini(&[("client_secret", ""), ("token_url", "")]);
    w.seed_token(-10);
    expect_failure(&w, 2, "missing required options").await;
}

/// A variable woci reads whose value is not UTF-8 text was taken as unset (another profile, no
/// proxy, `OCI_CLI_AUTH` replaced in an `--exec` program's environment): now named, exit 2. One a
/// flag overrides, or woci does not read, is no matter. A passphrase variable that is not text
/// is as one that is not set (a valid token is used as it is), said so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variable_woci_reads_that_is_not_text_is_named() {
    use std::os::unix::ffi::OsStrExt;
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let not_text = std::ffi::OsStr::from_bytes(b"ab\xffcd");
    let call = |var: &'static str, args: &'static [&'static str]| {
        let mut c = w.woci();
        c.env(var, not_text).args(args).args(["os", "ns", "get"]);
        run(c)
    };
    for (var, said) in [
        ("OCI_CLI_PROFILE", "`OCI_CLI_PROFILE` is set, but not to UTF-8 text"),
        ("HTTPS_PROXY", "`HTTPS_PROXY` is set, but not to UTF-8 text"),
        ("OCI_CLI_AUTH", "`OCI_CLI_AUTH` is set, but not to UTF-8 text"),
        // An IdP profile's login command: it read as "no `BROWSER`" (round 97 F2).
        ("BROWSER", "`BROWSER` is set, but not to UTF-8 text"),
    ] {
        let out = call(var, &[]).await;
        assert_eq!((out.status.code(), stderr(&out).lines().count()), (Some(2), 1), "{}", stderr(&out));
        assert!(stderr(&out).contains(said), "{}", stderr(&out));
    }
    let out = call("PP", &["--refresh-token-passphrase-env", "PP"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("`PP` (named by the `--refresh-token-passphrase-env` flag) is not UTF-8 text;"));
    assert_eq!(w.emu.stats().requests, 0);
    assert!(call("UNRELATED", &[]).await.status.success());
    assert!(call("OCI_CLI_AUTH", &["--auth", "security_token"]).await.status.success(), "the flag wins");
    let out = call("PP", &["--refresh-token-passphrase-env", "PP"]).await;
    assert!(out.status.success(), "a valid token needs no passphrase: {}", stderr(&out));
    // An `--exec` program gets the user's variable as it is, not woci's `security_token`.
    let exec = |var: &'static str| {
        let mut c = w.woci();
        c.env(var, not_text).args(["--auth", "security_token", "--exec", "--", "sh", "-c"]);
        c.arg(format!("printf %s \"${var}\" | od -An -tx1"));
        run(c)
    };
    let out = exec("OCI_CLI_AUTH").await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("61 62 ff 63 64"), "{out:?}");
    // What woci makes the program's variables from is named, not dropped.
    let out = exec("NODE_OPTIONS").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("`NODE_OPTIONS` is set, but not to UTF-8 text"), "{}", stderr(&out));
    // A `PATH` entry that is not text is searched as any other: the search for `oci` skips woci
    // installed as `oci` ahead of it (it took such a `PATH` as unset, and ran itself) and finds
    // the real one in a folder whose name is not text.
    let me = w.home().join("path-woci");
    let mut bin = w.home().join("path-").into_os_string();
    bin.push(not_text);
    for (dir, target) in [(&me, woci_bin()), (&std::path::PathBuf::from(&bin), w.fake_oci.clone())] {
        std::fs::create_dir(dir).unwrap();
        std::os::unix::fs::symlink(target, dir.join("oci")).unwrap();
    }
    let mut path = me.into_os_string();
    path.push(":");
    path.push(&bin);
    path.push(":/usr/bin:/bin");
    for args in [&["os", "ns", "get"][..], &["--status"]] {
        let mut c = w.woci();
        c.env("PATH", &path).env("WOCI_OCI_COMMAND", "oci").args(args);
        let out = run(c).await;
        assert!(out.status.success(), "{args:?}: {}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_rejecting_the_client_is_exit_4() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    w.write_manager_ini(&[("auth_client_id", "not-a-client")]);
    expect_failure(&w, 4, "identity provider rejected").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_rejection_is_exit_5_with_description() {
    let w = World::new().await;
    w.seed_token(-10);
    let rt = w.seed_refresh_token();
    w.write_manager_ini(&[("client_secret", "wrong-exchange-secret")]);
    let err = expect_failure_allowing_rt_rotation(&w, 5, "token exchange rejected").await;
    assert_no_secrets(&err, &[&rt, "wrong-exchange-secret"]);
}

/// Like [`expect_failure`], but the refresh token may rotate: the refresh grant succeeded before
/// the exchange failed, and keeping the spent one would lose the session.
async fn expect_failure_allowing_rt_rotation(w: &World, code: i32, needle: &str) -> String {
    let token = std::fs::read(w.token_path()).ok();
    let config = std::fs::read(w.config_path()).ok();
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
    assert_eq!(std::fs::read(w.token_path()).ok(), token);
    assert_eq!(std::fs::read(w.config_path()).ok(), config);
    err
}

/// The user's proxy refusing its credentials (407) is said as that, with the fix, and not sent
/// again: retries only count toward a corporate proxy's lockout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_refusing_its_credentials_is_named_and_not_retried() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    // Only https goes through the proxy; the CONNECT is refused before the IdP would be reached.
    w.write_manager_ini(&[("token_url", "https://127.0.0.1:9/oauth2/v1/token")]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut head = [0u8; 4096];
            let _ = client.read(&mut head).await;
            let refused = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"corp\"\r\n\
                           Content-Length: 0\r\nConnection: close\r\n\r\n";
            let _ = client.write_all(refused.as_bytes()).await;
        }
    });
    let out = run({
        let mut c = w.woci();
        c.env("https_proxy", format!("http://user:wrong@127.0.0.1:{port}")).args(["os", "ns", "get"]);
        c
    })
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("not reached at") && err.contains("the proxy refused its credentials (HTTP 407)"), "{err}");
    assert!(err.contains("check the user and password in `https_proxy`") && !err.contains("wrong"), "{err}");
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1, "sent once: {err}");
    // None given: say to give them.
    let out = run({
        let mut c = w.woci();
        c.env("HTTPS_PROXY", format!("http://127.0.0.1:{port}")).args(["os", "ns", "get"]);
        c
    })
    .await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("the proxy asks for credentials (HTTP 407)") && err.contains("give them in `HTTPS_PROXY`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_idp_is_exit_6_and_bounded() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    w.write_manager_ini(&[("token_url", &format!("http://127.0.0.1:{}/token", free_port()))]);
    expect_failure(&w, 6, "unreachable").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_5xx_to_a_refresh_grant_is_resent_only_within_the_reuse_grace_then_exit_6() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    w.emu.set_fault(Endpoint::IdpToken, Fault::status(503));
    // The refresh token may be spent by a request that got a 503: by default it is not resent.
    expect_failure(&w, 6, "HTTP 503").await;
    assert_eq!(w.emu.stats().refresh_grants_attempted(), 1, "a sent refresh token is not sent again");
    w.write_manager_ini(&[("refresh_token_reuse_grace", "30")]);
    expect_failure(&w, 6, "HTTP 503").await;
    assert_eq!(w.emu.stats().refresh_grants_attempted(), 3, "one resend within the IdP's reuse grace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_token_file_is_exit_7() {
    let w = World::new().await;
    std::fs::create_dir_all(w.session_dir()).unwrap();
    std::fs::write(w.token_path(), "not a jwt").unwrap();
    expect_failure(&w, 7, "corrupt file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_key_file_is_exit_7() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    std::fs::write(
        w.session_dir().join("oci_api_key.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    expect_failure(&w, 7, "oci_api_key.pem").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_oci_config_is_exit_7() {
    let w = World::new().await;
    w.seed_token(-10);
    std::fs::write(w.config_path(), "this line is outside any section\n[P]\n").unwrap();
    expect_failure(&w, 7, "config").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_refresh_token_without_passphrase_is_exit_8() {
    let w = World::new().await;
    w.seed_token(-10);
    std::fs::create_dir_all(w.session_dir()).unwrap();
    std::fs::write(
        w.session_dir().join("refresh_token"),
        r#"{"enc":"AESGCM","kdf":"PBKDF2-HMAC-SHA256","iter":200000,"salt":"AAAAAAAAAAAAAAAAAAAAAA==","nonce":"AAAAAAAAAAAAAAAA","ct":"AAAAAAAAAAAAAAAAAAAAAAAA"}"#,
    )
    .unwrap();
    expect_failure(&w, 8, "refresh-token-passphrase").await;
}

/// A refresh token sealed with a passphrase a flag alone gave says that the calls without the
/// flag cannot renew and names the INI line: at a login (round 93 F2), at an ordinary call's
/// rotation of a plain one (round 95 F1), and whenever the INI names another passphrase (F2).
/// With the same setting in the INI, or at a rotation of a token sealed already, nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_sealed_by_a_flag_alone_names_the_ini_setting() {
    let w = World::new().await;
    let with_flag = |args: &[&str]| {
        let mut c = w.woci_with_browser();
        c.env("RTP", "right").env("TEAM", "team").args(["--refresh-token-passphrase-env", "RTP"]).args(args);
        c
    };
    let said = |out: &std::process::Output, lack: &str| {
        let want = format!(
            "woci: warning: the refresh token of profile `P` is now stored encrypted with the passphrase the \
             `--refresh-token-passphrase-env` flag gave; calls without that flag {lack}, so their renewals fail (exit \
             8): put `refresh_token_passphrase_env = RTP` in `[P]` of `{}`",
            w.manager_ini_path().display()
        );
        assert!(out.status.success(), "{}", stderr(out));
        assert!(stderr(out).lines().any(|l| l == want), "{}", stderr(out));
    };
    let silent = |out: &std::process::Output| {
        assert!(out.status.success(), "{}", stderr(out));
        assert!(!stderr(out).contains("now stored encrypted"), "{}", stderr(out));
    };
    said(&run(with_flag(&["session", "authenticate"])).await, "have no passphrase");
    // Its rotations, with the flag each time: told once is enough.
    silent(&run(with_flag(&["session", "refresh"])).await);
    // An ordinary call that seals a plain refresh token.
    w.seed_token(-10);
    w.seed_refresh_token();
    said(&run(with_flag(&["os", "ns", "get"])).await, "have no passphrase");
    // The INI names another passphrase: every rotation says so.
    w.write_manager_ini(&[("refresh_token_passphrase_env", "TEAM")]);
    said(
        &run(with_flag(&["session", "refresh"])).await,
        "use `refresh_token_passphrase_env = TEAM` from the INI instead",
    );
    w.write_manager_ini(&[("refresh_token_passphrase_env", "RTP")]);
    silent(&run(with_flag(&["session", "authenticate"])).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_refresh_token_and_no_terminal_is_exit_3_without_hanging() {
    let w = World::new().await;
    w.seed_token(-10);
    expect_failure(&w, 3, "woci session authenticate").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_oci_is_exit_127_naming_the_setting() {
    let w = World::new().await;
    w.seed_token(3600);
    let out = run({
        let mut c = w.woci();
        c.env("WOCI_OCI_COMMAND", "/nonexistent/oci");
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(127));
    // The variable is set, wrongly: corrected, not set (round 93 N5), and named (round 95 N6).
    assert!(stderr(&out).contains("install it or correct the `WOCI_OCI_COMMAND` variable"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_exit_code_passes_through() {
    let w = World::new().await;
    w.seed_token(3600);
    let out = run({
        let mut c = w.woci();
        c.env("FAKE_OCI_EXIT", "42");
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_auth_modes_pass_straight_through() {
    let w = World::new().await;
    let out = run({
        let mut c = w.woci();
        c.args(["--auth", "api_key", "os", "ns", "get"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.oci_argv(), ["--auth", "api_key", "os", "ns", "get"]);
    assert_eq!(w.emu.stats().requests, 0);
}

/// A key file replaced under a valid token (`oci setup keys`, a restored backup): OCI would refuse
/// every request, so the call renews the session for the key instead of using the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_bound_to_a_replaced_key_is_renewed() {
    let w = World::new().await;
    let out = run({
        let mut c = w.woci_with_browser();
        c.args(["session", "authenticate"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let first = w.read(&w.token_path());
    let key = w.session_dir().join("oci_api_key.pem");
    std::fs::write(&key, include_str!("fixtures/test_key.pem")).unwrap();
    common::set_private(&key);
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.emu.stats().refresh_grants, 1);
    assert_ne!(w.read(&w.token_path()), first, "a new token, bound to the key now there");
}

/// Ctrl-C while woci waits for the person to log in ends woci at once (nothing is spent yet), not
/// at the login timeout.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_a_login_wait_at_once() {
    let w = World::new().await;
    let browser = w.home().join("bin").join("idle-browser");
    write_exec(
        &browser,
        "#!/bin/sh
exit 0
",
    );
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut child = w
            .woci_std()
            .args(["session", "authenticate"])
            .env("BROWSER", &browser)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while !line.contains("waiting up to") {
            line.clear();
            assert_ne!(std::io::BufRead::read_line(&mut err, &mut line).unwrap(), 0, "woci ended before waiting");
        }
        let sent = std::time::Instant::now();
        unsafe { libc::kill(child.id() as i32, sig) };
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(sig));
        assert!(sent.elapsed() < std::time::Duration::from_secs(5), "signal {sig} took {:?}", sent.elapsed());
    }
}

/// An API-key profile (`user`, no `security_token_file` of its own: the one it inherits is the
/// `[DEFAULT]` session's, as `oci setup config` and `oci session authenticate` leave them) used
/// the plain `oci` way, without `--auth`: oci's default auth, so woci passes the call on
/// unchanged and runs `--exec` as is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_profile_without_auth_goes_to_oci_unchanged() {
    let w = World::new().await;
    std::fs::create_dir_all(w.oci_dir()).unwrap();
    let mut config = std::fs::read_to_string(w.config_path()).unwrap_or_default();
    config.push_str(
        "\n[DEFAULT]\nsecurity_token_file=~/.oci/sessions/DEFAULT/token\nkey_file=~/.oci/sessions/DEFAULT/key.pem\n",
    );
    config.push_str("\n[APIKEY]\nuser=ocid1.user.oc1..u\nfingerprint=aa:bb\nkey_file=/k.pem\ntenancy=ocid1.tenancy.oc1..t\nregion=us-ashburn-1\n");
    std::fs::write(w.config_path(), config).unwrap();
    let args = ["--profile", "APIKEY", "os", "ns", "get"];
    let out = run({
        let mut c = w.woci();
        c.args(args);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.oci_argv(), args, "no --auth security_token added");
    let out = run({
        let mut c = w.woci();
        c.env("OCI_CLI_PROFILE", "APIKEY").args(["--exec", "--", "sh", "-c", "printf '[%s]' \"$HTTPS_PROXY\""]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]", "run as is");
    let out = run({
        let mut c = w.woci();
        c.args(["--status", "--profile", "APIKEY"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("API-key profile"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("renewal: none"), "not a session-refresh profile");
    // The `[DEFAULT]` session it inherits is said to be another's, not shown as its token.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("session token: unused"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("from `[DEFAULT]` is another profile's"));
    // Nor does a daemon: nothing to renew.
    let out = run({
        let mut c = w.woci();
        c.args(["--daemon", "--profile", "APIKEY"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("API-key profile") && !stderr(&out).contains("authenticate"), "{}", stderr(&out));
    assert_eq!(w.emu.stats().requests, 0);
}

/// A plain JWT refresh token whose own `exp` has passed (an IdP that sent no
/// `refresh_expires_in`): `--status` and the prompt both say a login is needed, with exit 3, as
/// the call finds (round 105's review: the prompt said `P expired`, exit 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prompt_reads_a_plain_refresh_tokens_own_expiry_as_status_does() {
    use base64::Engine;
    let w = World::new().await;
    w.seed_token(-10);
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let exp = unix_now() - 60;
    let rt = format!("{}.{}.c2ln", b64(r#"{"alg":"none"}"#), b64(&format!(r#"{{"exp":{exp}}}"#)));
    std::fs::write(w.session_dir().join("refresh_token"), rt).unwrap();
    for (args, says) in [(&["--status"][..], "login"), (&["--status", "--prompt"], "P login")] {
        let out = run({
            let mut c = w.woci();
            c.args(args);
            c
        })
        .await;
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", String::from_utf8_lossy(&out.stdout));
        assert!(String::from_utf8_lossy(&out.stdout).contains(says), "{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// A refresh token that cannot be read at all (a folder, over 1 MiB) matters only when a renewal
/// needs it: a valid token still serves the call, and `--status` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_refresh_token_does_not_stop_a_valid_token() {
    let w = World::new().await;
    w.seed_token(3600);
    std::fs::create_dir_all(w.session_dir().join("refresh_token")).unwrap();
    for args in [&["os", "ns", "get"][..], &["--status"], &["--status", "--prompt"]] {
        let out = run({
            let mut c = w.woci();
            c.args(args);
            c
        })
        .await;
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    w.seed_token(-10);
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("refresh_token") && stderr(&out).contains("a folder"), "{}", stderr(&out));
}

/// A profile that exists nowhere (a typo in `--profile`) fails with exit 2 and leaves nothing
/// behind: no session folder for `--status --all` to list, no renewal counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_profile_leaves_no_trace() {
    let w = World::new().await;
    w.seed_refresh_token();
    let metrics = w.home().join("woci.prom");
    let ini = w
        .read(&w.manager_ini_path())
        .replace("[COMMON]\n", &format!("[COMMON]\nmetrics_file = {}\n", metrics.display()));
    std::fs::write(w.manager_ini_path(), ini).unwrap();
    let out = run({
        let mut c = w.woci();
        c.args(["--profile", "PP", "os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!w.home().join(".oci/sessions/PP").exists(), "a session folder was made for a typo");
    assert!(!std::fs::read_to_string(&metrics).unwrap_or_default().contains("PP"), "the typo was counted");
    let out = run({
        let mut c = w.woci();
        c.args(["--status", "--all"]);
        c
    })
    .await;
    assert!(!String::from_utf8_lossy(&out.stdout).contains("PP"), "{}", String::from_utf8_lossy(&out.stdout));
}

/// Only a browser login listens on `redirect_port`: without one, calls renew as before, and a
/// login says what to set (or to use a device code) before anything is opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_browser_login_needs_the_redirect_port() {
    let w = World::new().await;
    let ini: String = w
        .read(&w.manager_ini_path())
        .lines()
        .filter(|l| !l.starts_with("redirect_port"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(w.manager_ini_path(), ini).unwrap();
    w.seed_refresh_token();
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.emu.stats().refresh_grants, 1);
    let out = run({
        let mut c = w.woci_with_browser();
        c.args(["session", "authenticate"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs `redirect_port`") && stderr(&out).contains("--device-code"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.emu.stats().auth_code_grants, 0);
}

/// QUICKSTART's layout shares the exchange app in `[COMMON]`: profiles without IdP keys of their
/// own stay oci's (another `--auth`, a new `session authenticate`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_app_in_common_leaves_other_profiles_to_oci() {
    let w = World::new().await;
    let ini = w.read(&w.manager_ini_path());
    let shared = |l: &&str| {
        ["token_exchange_url", "client_id ", "client_secret", "scope", "redirect_port"].iter().any(|k| l.starts_with(k))
    };
    let (common, own): (Vec<&str>, Vec<&str>) = ini.lines().partition(shared);
    let ini = own.join("\n").replace("[COMMON]\n", &format!("[COMMON]\n{}\n", common.join("\n")));
    std::fs::write(w.manager_ini_path(), ini).unwrap();
    let calls: [(&[&str], Option<&str>); 3] = [
        (&["--profile", "OTHER", "--auth", "api_key", "os", "ns", "get"], None),
        (&["--profile", "OTHER", "os", "ns", "get"], Some("api_key")),
        (&["session", "authenticate", "--profile", "NEWP", "--region", "us-ashburn-1"], None),
    ];
    for (args, auth) in calls {
        let mut c = w.woci();
        c.args(args);
        if let Some(a) = auth {
            c.env("OCI_CLI_AUTH", a);
        }
        let out = run(c).await;
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(w.oci_argv(), args, "passed on unchanged");
    }
    assert_eq!(w.emu.stats().requests, 0);
}

/// What the Debian package installs besides the binary comes from the binary itself: the man page
/// (with its EXIT STATUS section) and the bash, zsh and fish completions, which know woci's own
/// options. Needs no HOME content and writes none.
#[test]
fn man_page_and_completions_come_from_the_binary() {
    let home = tempfile::tempdir().unwrap();
    let call = |args: &[&str]| {
        let mut c = std::process::Command::new(woci_bin());
        for k in SCRUBBED_ENV {
            c.env_remove(k);
        }
        let out = c.env("HOME", home.path()).args(args).output().expect("woci runs");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(!home.path().join(".oci").exists(), "{args:?} wrote to HOME");
        String::from_utf8(out.stdout).unwrap()
    };
    let man = call(&["--man"]);
    assert!(man.contains("\n.SH \"EXIT STATUS\"\n"), "{man}");
    // Its own DESCRIPTION, not NAME's line again (round 98).
    let description = man.split(".SH DESCRIPTION\n").nth(1).and_then(|d| d.split("\n.SH ").next()).unwrap_or_default();
    assert!(description.contains("re\\-signing proxy") && description.matches(".PP").count() == 3, "{description}");
    // Each form of the command line, and the argument rules as paragraphs `man` fills.
    assert!(man.contains("<PROGRAM> [ARGS]...") && man.contains("session authenticate|refresh"), "{man}");
    assert!(
        man.contains("\n.SH ARGUMENTS\n") && man.contains("\n.IP \\(bu 2\n") && man.contains(".SH \"SEE ALSO\""),
        "{man}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let script = call(&["--completions", shell]);
        assert!(script.contains("auto-refresh"), "{shell}: {script}");
    }

    // What bash offers, asked as bash asks: the OCI config's profiles (one with a space is one
    // word), oci's words, a file name with a space as one word.
    let script = home.path().join("woci.bash");
    std::fs::write(&script, call(&["--completions", "bash"])).unwrap();
    let dir = home.path().join("w");
    std::fs::create_dir_all(home.path().join(".oci")).unwrap();
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        home.path().join(".oci/config"),
        "[DEFAULT]\nregion = r\n[EMU]\n[my prod]\n[team[prod]]\n[y]z]\n[bob's]\n[x$HOME]\n[*]\n[zed]\n",
    )
    .unwrap();
    std::fs::write(dir.join("sp ace.ini"), "").unwrap();
    let asked_in = |words: &str, env: &[(&str, &str)]| {
        let probe = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _woci woci \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"; printf '[%s]' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let mut bash = std::process::Command::new("bash");
        bash.arg("-c").arg(probe).current_dir(&dir).env("HOME", home.path()).env_remove("OCI_CONFIG_FILE");
        bash.env_remove("OCI_CLI_CONFIG_FILE").envs(env.iter().copied());
        String::from_utf8(bash.output().expect("bash runs").stdout).unwrap()
    };
    let asked = |words: &str| asked_in(words, &[]);
    assert_eq!(asked("woci --profile ''"), r"[DEFAULT][EMU][my\ prod][team\[prod\]][y\]z][bob\'s][x\$HOME][\*][zed]");
    assert_eq!(asked("woci --profile te"), r"[team\[prod\]]", "round 98 F1: a name with brackets");
    // Names as plain text (round 99 F3): an apostrophe hid the names after it, `$` and `*` expanded.
    assert_eq!(asked("woci --profile z"), "[zed]");
    assert_eq!(asked("woci --profile x"), r"[x\$HOME]");
    assert_eq!(asked("woci --profile b"), r"[bob\'s]");
    assert_eq!(asked("woci --profile E"), "[EMU]");
    assert_eq!(asked("woci --profile my"), r"[my\ prod]", "quoted as the shell would");
    // The config the call would use: the line's --config-file (also as `=`), then OCI_CLI_CONFIG_FILE.
    std::fs::write(home.path().join("other"), "[OTHER]\n[OTHER2]\n").unwrap();
    assert_eq!(asked("woci --config-file ~/other --profile ''"), "[OTHER][OTHER2]");
    assert_eq!(asked("woci --config-file = ~/other --profile OTHER2"), "[OTHER2]");
    assert_eq!(asked_in("woci --profile ''", &[("OCI_CLI_CONFIG_FILE", "~/other")]), "[OTHER][OTHER2]");
    // Round 99 N3: profiles so far only in woci_manager.ini (beside the config, or named), each once.
    std::fs::write(
        home.path().join(".oci/woci_manager.ini"),
        "[COMMON]\n[EMU]\n[ini only]\n[]\n[h\u{202e}evil]\n[c\x1b]0;x\x07]\n[ZED\u{200b}]\n[zed\u{feff}]\n[zed\u{e0041}]\n[caf\u{e9}]\n[csi\u{9b}2J]\n",
    )
    .unwrap();
    assert_eq!(
        asked("woci --profile ''"),
        r"[DEFAULT][EMU][my\ prod][team\[prod\]][y\]z][bob\'s][x\$HOME][\*][zed][ini\ only][café]"
    );
    assert_eq!(asked("woci --profile C"), "[]", "[COMMON] is not a profile");
    assert_eq!(asked("woci --profile h"), "[]", "a bidi control is not offered (round 102 N1)");
    assert_eq!(asked("woci --profile c"), "[caf\u{e9}]", "nor an escape, a C1 one too; other non-ASCII names are");
    assert_eq!(asked("woci --profile z"), "[zed]", "nor an invisible character (round 103 N2)");
    assert_eq!(asked("woci --profile ZED"), "[]");
    std::fs::write(home.path().join("mgr.ini"), "[M1]\n").unwrap();
    assert_eq!(asked("woci --manager-config ~/mgr.ini --profile M"), "[M1]");
    assert_eq!(asked_in("woci --profile M", &[("WOCI_MANAGER_CONFIG", "~/mgr.ini")]), "[M1]");
    assert_eq!(asked("woci --config-file ~/other --profile i"), r"[ini\ only]", "~/.oci's, none beside ~/other");
    assert_eq!(asked("woci --output ''"), "[json][table]");
    assert_eq!(asked("woci --manager-config sp"), "[sp ace.ini]");
}

#[allow(dead_code)]
fn _config_is_used(_: Config) {}

/// Anyone on the machine can send the login listener requests: bogus callbacks (no or a wrong
/// `state`) are refused, warned about once (not once each, which would flood the terminal), and
/// the real callback still completes the login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_login_callbacks_are_warned_about_once() {
    let w = World::new().await;
    w.seed_token(-10);
    let ini = w.read(&w.manager_ini_path());
    let port = ini.lines().find_map(|l| l.strip_prefix("redirect_port = ")).expect("a redirect_port").trim().to_owned();
    let browser = w.home().join("bin/noisy-browser");
    write_exec(
        &browser,
        &format!(
            "#!/bin/sh\nfor i in 1 2 3 4 5; do curl -s -o /dev/null \"http://127.0.0.1:{port}/callback?code=x&state=wrong$i\"; done\n\
             exec curl -sfL -o /dev/null \"$1\"\n"
        ),
    );
    let mut c = w.woci();
    c.env("BROWSER", &browser).args(["os", "ns", "get"]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out).matches("ignored a login callback").count(), 1, "{}", stderr(&out));
    assert_eq!(w.emu.stats().auth_code_grants, 1);
}

/// A `BROWSER` that notes each page it is given in the returned file, waits `secs` (a person
/// typing a password), then completes the login.
fn slow_browser(w: &World, secs: u32) -> (PathBuf, PathBuf) {
    let (opened, browser) = (w.home().join("opened"), w.home().join("bin/slow-browser"));
    let script =
        format!("#!/bin/sh\necho x >> '{}'\nsleep {secs}\nexec curl -sfL -o /dev/null \"$1\"\n", opened.display());
    write_exec(&browser, &script);
    (opened, browser)
}

/// Until [`slow_browser`] was given its first page.
async fn until_opened(opened: &Path) {
    while !opened.exists() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two calls that need a login, the second started while the first's person is in the browser:
/// both succeed, the second having waited for the first's login (one browser). Returns what
/// `--status` said at that moment.
async fn two_calls_one_login(w: &World) -> std::process::Output {
    let (opened, browser) = slow_browser(w, 2);
    let call = || {
        let mut c = w.woci();
        c.env("BROWSER", &browser).args(["os", "ns", "get"]);
        c
    };
    let first = tokio::spawn(run(call()));
    until_opened(&opened).await;
    let status = run({
        let mut c = w.woci();
        c.arg("--status");
        c
    })
    .await;
    let second = run(call()).await;
    let first = first.await.unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(stderr(&second).contains("waiting for the login under way in another woci (pid"), "{}", stderr(&second));
    assert_eq!(w.read(&opened).lines().count(), 1, "one browser");
    status
}

/// Two calls that need a login at once (two kubectl calls, a second terminal): one logs in, the
/// other waits for that login and takes its session (one browser, one code redemption, both
/// succeed) rather than fail on the callback port with exit 2. `--status` meanwhile names the
/// login under way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_needing_a_login_waits_for_the_one_under_way() {
    let w = World::new().await;
    let status = two_calls_one_login(&w).await;
    assert_eq!(w.emu.stats().auth_code_grants, 1);
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(said.contains("login under way: by pid"), "{said}");
    assert!(
        said.contains("next call: wait for pid") && said.contains("'s login") && !said.contains("next call: login"),
        "{said}"
    );
}

/// Two calls that need a login, the first's declined by its person: the second, which waited for
/// that login, ends with its failure rather than open a second browser (recorded before the login
/// lock was let go), and counts it once, not again as its own (round 105's review).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_login_fails_the_call_that_waited_for_it_once() {
    let w = World::new().await;
    let metrics = w.home().join("woci.prom");
    let ini = w
        .read(&w.manager_ini_path())
        .replace("[COMMON]\n", &format!("[COMMON]\nmetrics_file = {}\n", metrics.display()));
    std::fs::write(w.manager_ini_path(), ini).unwrap();
    w.emu.set_fault(Endpoint::Authorize, Fault::access_denied().times(1));
    let (opened, browser) = slow_browser(&w, 2);
    let call = || {
        let mut c = w.woci();
        c.env("BROWSER", &browser).args(["os", "ns", "get"]);
        c
    };
    let first = tokio::spawn(run(call()));
    until_opened(&opened).await;
    let second = run(call()).await;
    let first = first.await.unwrap();
    assert_eq!(first.status.code(), Some(3), "{}", stderr(&first));
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    assert!(stderr(&second).contains("that another woci made while this call waited failed"), "{}", stderr(&second));
    assert_eq!(w.read(&opened).lines().count(), 1, "one browser");
    let failed: u64 = w
        .read(&metrics)
        .lines()
        .filter(|l| l.starts_with("woci_renewals_total{") && !l.contains("result=\"ok\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(failed, 1, "{}", w.read(&metrics));
}

/// A refused refresh token and two calls (two kubectl calls): the login it needs is one login,
/// made outside the renewal lock under the login lock like any other, which the second call
/// waits for and takes the session of, rather than a second browser (round 77 F1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_token_needs_one_login_for_two_calls() {
    let w = World::new().await;
    w.seed_token(-10);
    std::fs::write(w.session_dir().join("refresh_token"), "revoked-or-unknown-refresh-token").unwrap();
    two_calls_one_login(&w).await;
    let st = w.emu.stats();
    assert_eq!((st.refresh_grants, st.auth_code_grants, st.exchanges), (1, 1, 1));
}

/// A refused refresh token whose grant is slow, one call that can log in (V) and one that waits
/// for V's renewal lock.
async fn refused_slow_grant(w: &World) -> (PathBuf, PathBuf) {
    w.seed_token(-10);
    std::fs::write(w.session_dir().join("refresh_token"), "revoked-or-unknown-refresh-token").unwrap();
    let delayed = Fault::new(FaultAction::None).times(1).with_reply_delay(Duration::from_millis(1500));
    w.emu.set_fault(Endpoint::IdpToken, delayed);
    slow_browser(w, 1)
}

/// A call that cannot log in (no terminal or `BROWSER`: cron, kubectl's `interactiveMode:
/// Never`) waiting for another woci's renewal whose refresh token the IdP refuses waits for the
/// login that woci then makes and takes its session, rather than exit 3 (round 78 F1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_cannot_log_in_waits_for_the_login_a_refused_grant_leads_to() {
    let w = World::new().await;
    let (opened, browser) = refused_slow_grant(&w).await;
    let mut v = w.woci();
    v.env("BROWSER", &browser).args(["os", "ns", "get"]);
    let v = tokio::spawn(run(v));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiter = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    let v = v.await.unwrap();
    assert!(v.status.success(), "{}", stderr(&v));
    assert!(waiter.status.success(), "{}", stderr(&waiter));
    assert!(stderr(&waiter).contains("waiting for the login under way in another woci (pid"), "{}", stderr(&waiter));
    let st = w.emu.stats();
    assert_eq!((st.refresh_grants, st.auth_code_grants), (1, 1));
    assert_eq!(w.read(&opened).lines().count(), 1, "one browser");
}

/// The other way round: the call in the refused grant cannot log in (no `BROWSER`), the one
/// waiting for its lock can: that one logs in, rather than repeat the first call's "no terminal"
/// failure, exit 3 (round 79 F1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_can_log_in_does_so_after_one_that_cannot() {
    let w = World::new().await;
    let (opened, browser) = refused_slow_grant(&w).await;
    let first = tokio::spawn(run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = run({
        let mut c = w.woci();
        c.env("BROWSER", &browser).args(["os", "ns", "get"]);
        c
    })
    .await;
    let first = first.await.unwrap();
    assert_eq!(first.status.code(), Some(3), "{}", stderr(&first));
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(w.read(&opened).lines().count(), 1, "one browser");
}

/// Ctrl-C to the woci whose refused grant is out: the calls that waited for its renewal log in
/// (the refusal is marked), rather than repeat its "IdP rejected" failure, exit 4 (round 78 F2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_grant_cut_short_by_ctrl_c_leaves_the_waiters_to_log_in() {
    let w = World::new().await;
    let (_, browser) = refused_slow_grant(&w).await;
    let mut v = w.woci_std();
    v.env("BROWSER", &browser).args(["os", "ns", "get"]);
    let mut v = v.spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let waiter = tokio::spawn(run({
        let mut c = w.woci();
        c.env("BROWSER", &browser).args(["os", "ns", "get"]);
        c
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SAFETY: kill(2) of a child this test started.
    unsafe { libc::kill(v.id() as i32, libc::SIGINT) };
    let v = tokio::task::spawn_blocking(move || v.wait().unwrap()).await.unwrap();
    let waiter = waiter.await.unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(v.signal(), Some(libc::SIGINT), "V ends by the signal once the IdP answered");
    assert!(waiter.status.success(), "{}", stderr(&waiter));
    assert_eq!(w.emu.stats().auth_code_grants, 1);
}

/// A login stopped with Ctrl-Z (SIGSTOP) holds the login lock but nothing happens: `--status`
/// names it at once (exit 10) and a call waiting for it gives up after about 15 s with the same
/// advice, as for a stopped renewal, instead of the whole `login_timeout` (round 78 F3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_login_is_named_and_not_waited_for() {
    let w = World::new().await;
    let mut holder = hold_a_login(&w);
    // SAFETY: SIGSTOP to the woci this test started.
    unsafe { libc::kill(holder.id() as i32, libc::SIGSTOP) };
    let status = run({
        let mut c = w.woci();
        c.arg("--status");
        c
    })
    .await;
    let said = String::from_utf8_lossy(&status.stdout).into_owned();
    assert_eq!(status.status.code(), Some(10), "{said}");
    assert!(said.contains(&format!("woci pid {}", holder.id())) && said.contains("is stopped"), "{said}");
    let started = Instant::now();
    let call = run({
        let mut c = w.woci();
        c.env("BROWSER", never_browser(&w)).args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(call.status.code(), Some(10), "{}", stderr(&call));
    assert!(stderr(&call).contains("is stopped"), "{}", stderr(&call));
    assert!(started.elapsed() < Duration::from_secs(40), "gave up on the stopped login: {:?}", started.elapsed());
    // SAFETY: the same woci, resumed and ended.
    unsafe { libc::kill(holder.id() as i32, libc::SIGCONT) };
    let _ = holder.kill();
    let _ = holder.wait();
}

/// Two profiles sharing `redirect_port` (the README's `[COMMON]` example) log in at the same
/// moment: the second waits for the first's callback listener to go, then logs in itself,
/// rather than fail with exit 2 on a busy port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_profiles_sharing_a_redirect_port_log_in_one_after_the_other() {
    let w = World::new().await;
    share_redirect_port(&w);
    let (opened, browser) = slow_browser(&w, 2);
    let call = |profile: &str| {
        let mut c = w.woci();
        c.env("BROWSER", &browser).args(["--profile", profile, "os", "ns", "get"]);
        c
    };
    let first = tokio::spawn(run(call(&w.profile)));
    until_opened(&opened).await;
    let second = run(call("OTHER")).await;
    let first = first.await.unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(second.status.success(), "{}", stderr(&second));
    let taken = format!("is taken by the login of profile `{}` (woci pid", w.profile);
    assert!(stderr(&second).contains(&taken), "{}", stderr(&second));
    assert_eq!(w.emu.stats().auth_code_grants, 2);
    assert_eq!(w.read(&opened).lines().count(), 2, "one browser each");
}

/// The browser a login opens lives on and hands its environment to all it starts: it never gets
/// woci's passphrase variables, as no other child does (round 81 F1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_browser_gets_no_passphrase_variable() {
    let w = World::new().await;
    w.write_manager_ini(&[("refresh_token_passphrase_env", "MY_RT_PASS")]);
    let (seen, browser) = (w.home().join("browser.env"), w.home().join("bin/env-browser"));
    write_exec(&browser, &format!("#!/bin/sh\nenv > '{}'\nexec '{}' \"$@\"\n", seen.display(), w.browser.display()));
    let out = run({
        let mut c = w.woci();
        c.env("BROWSER", &browser)
            .env("MY_RT_PASS", "pass-phrase-one")
            .env("WOCI_OTHER_PASSPHRASE", "pass-phrase-two")
            .env("WOCI_KEEP", "kept")
            .args(["session", "authenticate"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let env = w.read(&seen);
    assert!(env.contains("WOCI_KEEP=kept") && !env.contains("pass-phrase"), "{env}");
}

/// An OCI config others can write, or another user's, names the key a session is bound to and
/// where its token goes: woci renews into it no more than it runs a manager INI like it (round 81
/// F3); the call fails (exit 2) naming the fix, and nothing is renewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oci_config_others_control_is_not_renewed_into() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let config = w.home().join(".oci/config");
    let call = || {
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        run(c)
    };
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = call().await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is writable by every user") && stderr(&out).contains("chmod go-w"),
        "{}",
        stderr(&out)
    );
    // Another user's (a file planted in a shared folder), where the test can hand it over.
    if unsafe { libc::geteuid() } == 0 {
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::chown(&config, Some(65534), None).unwrap();
        let out = call().await;
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("belongs to another user (uid 65534)"), "{}", stderr(&out));
        std::os::unix::fs::chown(&config, Some(0), None).unwrap();
    }
    // A link (dotfiles) is judged by, and named with, the file it leads to (round 86 N1).
    let real = w.home().join("dotfiles-config");
    std::fs::rename(&config, &real).unwrap();
    std::os::unix::fs::symlink(&real, &config).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = call().await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("(a link to `{}`)", real.display())), "{}", stderr(&out));
    assert_eq!(w.emu.stats().refresh_grants_attempted(), 0, "nothing renewed");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = call().await;
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The world's profile and a profile `OTHER` like it, sharing `redirect_port` from `[COMMON]`.
fn share_redirect_port(w: &World) {
    let ini = w.read(&w.manager_ini_path());
    let port = ini.lines().find_map(|l| l.strip_prefix("redirect_port = ")).unwrap().to_owned();
    let section: String = ini
        .split_once(&format!("[{}]\n", w.profile))
        .unwrap()
        .1
        .lines()
        .filter(|l| !l.starts_with("redirect_port"))
        .map(|l| format!("{l}\n"))
        .collect();
    let shared = format!("[COMMON]\nredirect_port = {port}\n\n[{}]\n{section}\n[OTHER]\n{section}", w.profile);
    std::fs::write(w.manager_ini_path(), shared).unwrap();
}

/// Another profile's login stopped with Ctrl-Z holds the shared `redirect_port` and cannot answer
/// the probe: the login names that stopped process (exit 10) after a short wait, instead of
/// calling the port "in use by another program" (exit 2; round 79 F3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_login_of_another_profile_holding_the_port_is_named() {
    let w = World::new().await;
    share_redirect_port(&w);
    let mut holder = hold_a_login(&w);
    // SAFETY: SIGSTOP to the woci this test started.
    unsafe { libc::kill(holder.id() as i32, libc::SIGSTOP) };
    let started = Instant::now();
    let call = run({
        let mut c = w.woci();
        c.env("BROWSER", never_browser(&w)).args(["--profile", "OTHER", "os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(call.status.code(), Some(10), "{}", stderr(&call));
    let named = format!("is held by pid {}, which is stopped", holder.id());
    assert!(stderr(&call).contains(&named) && stderr(&call).contains("kill -CONT"), "{}", stderr(&call));
    assert!(started.elapsed() < Duration::from_secs(40), "gave up on the stopped login: {:?}", started.elapsed());
    // SAFETY: the same woci, resumed and ended.
    unsafe { libc::kill(holder.id() as i32, libc::SIGCONT) };
    let _ = holder.kill();
    let _ = holder.wait();
}

/// A user starting over deletes the profile's session folder: `woci session authenticate` logs
/// in again, with a new key pair in place of the one woci had made there (the config's
/// `key_file` named it), instead of exit 2 until the config is edited by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_session_folder_is_logged_into_again() {
    let w = World::new().await;
    let mut first = w.woci_with_browser();
    first.args(["os", "ns", "get"]);
    let out = run(first).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let config = w.read(&w.home().join(".oci/config"));
    let fingerprint = |c: &str| c.lines().find(|l| l.starts_with("fingerprint")).map(str::to_owned);
    assert!(config.contains(&w.session_dir().join("oci_api_key.pem").display().to_string()), "{config}");
    std::fs::remove_dir_all(w.session_dir()).unwrap();
    let mut again = w.woci_with_browser();
    again.args(["session", "authenticate"]);
    let out = run(again).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("is gone from its session folder; making a new one"), "{}", stderr(&out));
    assert!(w.session_dir().join("oci_api_key.pem").is_file());
    assert_ne!(
        fingerprint(&w.read(&w.home().join(".oci/config"))),
        fingerprint(&config),
        "the config names the new key"
    );
    let mut call = w.woci();
    call.args(["os", "ns", "get"]);
    let out = run(call).await;
    assert!(out.status.success(), "{}", stderr(&out));
}

/// kubectl killed on its own while its credential plugin waits for a login: woci, orphaned, ends
/// at once, as a hangup would end it, instead of holding the callback port and the login for
/// `login_timeout`; the login the README names as the fix then works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_wait_ends_when_the_program_that_ran_woci_does() {
    let w = World::new().await;
    let (mut parent, woci, err) = woci_under_sh(&w, &never_browser(&w), "orphan");
    parent.kill().unwrap();
    let _ = parent.wait();
    assert!(gone_within(woci, Duration::from_secs(5)), "woci waits on for a login nobody will use: {}", w.read(&err));
    assert!(w.read(&err).contains("has ended; the login is given up"), "{}", w.read(&err));
    let mut login = w.woci_with_browser();
    login.args(["session", "authenticate"]);
    let out = run(login).await;
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A call waiting for another woci's login whose own caller ends (kubectl killed) ends too: it
/// does not take the login over once that one ends, holding port and login for nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_whose_caller_ended_does_not_take_the_login_over() {
    let w = World::new().await;
    let mut holder = hold_a_login(&w);
    let (mut parent, waiter, err) = woci_under_sh(&w, &w.browser, "waiter");
    parent.kill().unwrap();
    let _ = parent.wait();
    assert!(gone_within(waiter, Duration::from_secs(5)), "the waiter outlived its caller: {}", w.read(&err));
    assert!(w.read(&err).contains("waiting for the login under way in another woci"), "{}", w.read(&err));
    // SAFETY: kill(2) on the woci this test started.
    unsafe { libc::kill(holder.id() as i32, libc::SIGINT) };
    let _ = holder.wait();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(w.emu.stats().auth_code_grants, 0, "nobody logged in for the ended caller");
}

/// When the login under way ends without a session (Ctrl-C), the calls that waited for it race
/// for the next: one logs in, the others wait for that login in turn and take its session; none
/// starts a second login (a busy callback port, exit 2; a second browser or device code).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_of_a_login_that_ended_without_a_session_share_the_next_one() {
    let w = World::new().await;
    let (opened, slow) = slow_browser(&w, 1);
    let mut holder = hold_a_login(&w);
    let mut waiters = Vec::new();
    for i in 0..8 {
        let err = w.home().join(format!("waiter{i}.err"));
        let mut c = w.woci_std();
        c.env("BROWSER", &slow).args(["os", "ns", "get"]).stdout(std::process::Stdio::null());
        c.stderr(std::fs::File::create(&err).unwrap());
        waiters.push((c.spawn().unwrap(), err));
    }
    for (_, err) in &waiters {
        wait_until(|| w.read(err).contains("waiting for the login under way"), err);
    }
    // SAFETY: kill(2) on the woci this test started.
    unsafe { libc::kill(holder.id() as i32, libc::SIGINT) };
    let _ = holder.wait();
    for (mut c, err) in waiters {
        let status = tokio::task::spawn_blocking(move || c.wait().unwrap()).await.unwrap();
        assert!(status.success(), "{status:?}: {}", w.read(&err));
    }
    assert_eq!(w.emu.stats().auth_code_grants, 1);
    assert_eq!(w.read(&opened).lines().count(), 1, "one browser");
}

/// A browser that opens nothing: the login waits for a person who never comes.
fn never_browser(w: &World) -> PathBuf {
    let never = w.home().join("bin/never-browser");
    write_exec(&never, "#!/bin/sh\nexit 0\n");
    never
}

/// A `woci os ns get` waiting for a login nobody completes (it holds the profile's login).
fn hold_a_login(w: &World) -> std::process::Child {
    let holding = w.home().join("holder.err");
    let mut holder = w.woci_std();
    holder.env("BROWSER", never_browser(w)).args(["os", "ns", "get"]);
    let holder = holder.stderr(std::fs::File::create(&holding).unwrap()).spawn().unwrap();
    wait_until(|| w.read(&holding).contains("waiting up to"), &holding);
    holder
}

/// `woci os ns get` started in the background by a `sh` that waits for it, as kubectl runs its
/// plugin; returns the `sh`, woci's pid once it waits for a person, and woci's stderr file.
fn woci_under_sh(w: &World, browser: &Path, tag: &str) -> (std::process::Child, i32, PathBuf) {
    let (pid_file, err) = (w.home().join(format!("{tag}.pid")), w.home().join(format!("{tag}.err")));
    let line = format!(
        "'{}' os ns get 2>'{}' & echo $! > '{}'; wait",
        woci_bin().display(),
        err.display(),
        pid_file.display()
    );
    let mut parent = std::process::Command::new("sh");
    for (k, v) in w.woci().get_envs() {
        match v {
            Some(v) => parent.env(k, v),
            None => parent.env_remove(k),
        };
    }
    let parent = parent.arg("-c").arg(line).env("BROWSER", browser).spawn().unwrap();
    wait_until(|| w.read(&err).contains("waiting"), &err);
    (parent, w.read(&pid_file).trim().parse().unwrap(), err)
}

/// Polls `cond` for up to 20 s; fails showing `shown`.
fn wait_until(cond: impl Fn() -> bool, shown: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "{}", std::fs::read_to_string(shown).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether process `pid` is gone within `limit`.
fn gone_within(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// A profile without an IdP whose session OCI no longer refreshes (a 401 from the auth service)
/// is told the login that works for it: oci's own, for that profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_session_refresh_names_ocis_login_for_the_profile() {
    use woci_emulator::{Endpoint, Fault};
    let w = World::new().await;
    w.seed_session_profile(std::time::Duration::from_secs(3600));
    // A token inside its safety window (issued long ago, 20 s left), which a call refreshes.
    let now = unix_now();
    let claims = format!(r#"{{"sub":"u","tenant":"t","iat":{},"exp":{}}}"#, now - 3000, now + 20);
    std::fs::write(w.token_path(), fake_jwt(&claims)).unwrap();
    w.emu.set_fault(Endpoint::SessionRefresh, Fault::status(401));
    let mut c = w.woci();
    c.env("WOCI_AUTH_ENDPOINT", w.emu.auth_endpoint()).args(["os", "ns", "get"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(9), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("answered 401")
            && stderr(&out).contains("`command oci session authenticate --profile P`"),
        "{}",
        stderr(&out)
    );
}

/// A session a woci login made (a refresh token beside it) whose profile meets a manager INI
/// without its section (an editor saving it, the section removed) is not sent to OCI's auth
/// service as a guess: exit 2 naming both ways out, nothing requested, nothing changed; `--status`
/// says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_session_whose_section_is_gone_is_not_refreshed_as_a_guess() {
    let w = World::new().await;
    w.seed_refresh_token();
    w.seed_token(-10);
    std::fs::write(w.manager_ini_path(), "").unwrap();
    let err = expect_failure(&w, 2, "its session came from a woci login").await;
    assert!(err.contains("if the file is being saved, try again") && err.contains("delete `refresh_token`"), "{err}");
    assert_eq!(w.emu.stats().requests, 0, "{err}");
    let mut c = w.woci();
    c.args(["--status"]);
    let out = run(c).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("its session came from a woci login"), "{text}");
}

/// A call's `--region` (or `OCI_CLI_REGION`) is that call's, as in `oci`: a renewal it happens to
/// make writes the profile's own region (the manager INI's, else the config's) into the config;
/// only a profile without one gets the call's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_region_is_not_written_into_the_profile() {
    let w = World::new().await;
    w.seed_refresh_token();
    let call = |args: &'static [&'static str], env: &'static [(&'static str, &'static str)]| {
        let mut c = w.woci();
        c.args(args).envs(env.iter().copied());
        run(c)
    };
    let region = |w: &World| w.read(&w.config_path()).lines().find(|l| l.starts_with("region")).map(str::to_owned);
    assert!(call(&["--region", "eu-frankfurt-1", "os", "ns", "get"], &[]).await.status.success());
    assert_eq!(region(&w).as_deref(), Some("region=us-ashburn-1"), "the INI's");
    w.seed_token(-10);
    assert!(call(&["os", "ns", "get"], &[("OCI_CLI_REGION", "uk-london-1")]).await.status.success());
    assert_eq!(region(&w).as_deref(), Some("region=us-ashburn-1"));
    // No region in the INI or the config: the call's completes the profile.
    w.write_manager_ini(&[("region", "")]);
    std::fs::remove_file(w.config_path()).unwrap();
    w.seed_token(-10);
    assert!(call(&["--region", "eu-frankfurt-1", "os", "ns", "get"], &[]).await.status.success());
    assert_eq!(region(&w).as_deref(), Some("region=eu-frankfurt-1"));
    // A login's `--region` sets the profile's, as oci's login does (it was once dropped unsaid)...
    let login = |region: &'static str| {
        let mut c = w.woci_with_browser();
        c.args(["session", "authenticate", "--region", region]);
        run(c)
    };
    let out = login("ap-tokyo-1").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(region(&w).as_deref(), Some("region=ap-tokyo-1"));
    // ...unless the INI's `region`, which every renewal writes, says otherwise: refused, not dropped.
    w.write_manager_ini(&[]);
    let out = login("ap-osaka-1").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("`region = us-ashburn-1` from woci_manager.ini"), "{}", stderr(&out));
    assert_eq!(region(&w).as_deref(), Some("region=ap-tokyo-1"), "nothing written");
    assert!(login("us-ashburn-1").await.status.success(), "the INI's own region is fine");
}

/// A line indented deeper than a key woci writes is part of that key's value (configparser):
/// neither oci nor woci can use it, and rewriting the key would drop the line. Refused, the
/// config left as it was, and `--status` says the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_key_that_goes_on_over_an_indented_line_is_refused() {
    let w = World::new().await;
    w.seed_refresh_token();
    std::fs::create_dir_all(w.oci_dir()).unwrap();
    let config = "[P]\nregion = us-ashburn-1\n    key_file = ~/.oci/old_key.pem\n";
    std::fs::write(w.config_path(), config).unwrap();
    for args in [&["os", "ns", "get"][..], &["--status"]] {
        let mut c = w.woci();
        c.args(args);
        let out = run(c).await;
        assert_eq!(out.status.code(), Some(7), "{args:?}: {}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        let said = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert!(
            said.contains("`region` of profile `P` goes on over the next line")
                && said.contains("indent every key alike"),
            "{said}"
        );
    }
    assert_eq!(w.read(&w.config_path()), config, "left as it was");
    assert_eq!(w.emu.stats().requests, 0);
}

/// A login waiting for its person (a browser tab left open, a device code never entered) holds
/// no lock: a call with a good refresh token renews meanwhile at once, instead of waiting out the
/// login's `login_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_login_keeps_no_one_waiting() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let mut pending = w.woci_std();
    pending
        .env("BROWSER", "true")
        .args(["session", "authenticate", "--login-timeout", "60"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut pending = pending.spawn().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let started = std::time::Instant::now();
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    let took = started.elapsed();
    let _ = pending.kill();
    let _ = pending.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took < std::time::Duration::from_secs(10), "the call waited {took:?} for the pending login");
    assert_eq!(w.emu.stats().refresh_grants_issued, 1);
}

/// A fix line names the command that finds the same settings: a `--config-file` (beside which
/// the manager INI is found) given on the command line is in it, so running it logs in this
/// profile instead of falling back to `oci`'s own login; so does the login a wrong passphrase is
/// told to run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_fix_line_keeps_the_config_file_given() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    w.emu.revoke_refresh_tokens();
    let elsewhere = w.home().join("cfg dir");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::rename(w.manager_ini_path(), elsewhere.join("woci_manager.ini")).unwrap();
    std::fs::rename(w.config_path(), elsewhere.join("config")).unwrap();
    let config = elsewhere.join("config");
    let out = run({
        let mut c = w.woci();
        c.arg("--config-file").arg(&config).args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let fix = format!("woci session authenticate --profile P --config-file '{}'", config.display());
    assert!(stderr(&out).contains(&fix), "{}", stderr(&out));
    // The first login's line too (no refresh token at all).
    std::fs::remove_file(w.session_dir().join("refresh_token")).unwrap();
    let out = run({
        let mut c = w.woci();
        c.arg("--config-file").arg(&config).args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&fix), "{}", stderr(&out));
    // And a refresh token the passphrase given does not open.
    let sealed = woci::crypto::seal(&"rt".into(), &"right".into());
    std::fs::write(w.session_dir().join("refresh_token"), sealed).unwrap();
    let out = run({
        let mut c = w.woci();
        c.arg("--config-file").arg(&config).args(["--refresh-token-passphrase-env", "PASS", "os", "ns", "get"]);
        c.env("PASS", "wrong");
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(stderr(&out).contains(&fix), "{}", stderr(&out));
}

/// `woci --profile P --exec -- program` with another profile exported: the program gets `P`, the
/// profile woci keeps fresh (a flag beats a variable, for woci and its program alike); without
/// the flag the exported one is the program's, and woci's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_profile_flag_beats_an_exported_one_for_the_exec_program() {
    let w = World::new().await;
    w.seed_token(3600);
    let out = run({
        let mut c = w.woci();
        c.env("OCI_CLI_PROFILE", "ELSEWHERE").args([
            "--profile",
            "P",
            "--exec",
            "--",
            "sh",
            "-c",
            "printf %s \"$OCI_CLI_PROFILE\"",
        ]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "P");
    let out = run({
        let mut c = w.woci();
        c.args(["--exec", "--", "sh", "-c", "printf %s \"$OCI_CLI_PROFILE\""]);
        c
    })
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "P", "{}", stderr(&out));
}

/// A login whose code redemption loses its answer spent the code, not the stored refresh token:
/// it says so (exit 3, log in again), and `--status` does not then claim the refresh token is
/// spent; the next call renews with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_code_redemption_is_no_lost_refresh_token() {
    use woci_emulator::{Endpoint, Fault};
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    w.emu.set_fault(Endpoint::IdpToken, Fault::drop_reply().times(1));
    let out = run({
        let mut c = w.woci_with_browser();
        c.args(["session", "authenticate"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("code redemption") && stderr(&out).contains("the code is spent"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("refresh_token_reuse_grace"), "{}", stderr(&out));
    // A code the IdP refuses (expired, used, another redirect URI) says how to go on, too.
    w.emu.set_fault(Endpoint::IdpToken, Fault::invalid_grant().times(1));
    let refused = run({
        let mut c = w.woci_with_browser();
        c.args(["session", "authenticate"]);
        c
    })
    .await;
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    let err = stderr(&refused);
    assert!(err.contains("rejected the authorization code: invalid_grant"), "{err}");
    assert!(err.contains("run `woci session authenticate") && err.contains("redirect URI"), "{err}");
    let status = run({
        let mut c = w.woci();
        c.arg("--status");
        c
    })
    .await;
    assert_eq!(status.status.code(), Some(0), "{}", String::from_utf8_lossy(&status.stdout));
    let out = run({
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    })
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A browser that cannot be started, or exits with a failure, is one `woci: warning:` line beside
/// the login's URL telling the person to open it by hand; the login still waits for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_browser_is_a_warning_to_open_the_url_by_hand() {
    let w = World::new().await;
    for (browser, want) in [
        ("false", "woci: warning: browser command `false` exited with exit status: 1; open the URL above by hand"),
        ("/nonexistent/browser", "woci: warning: cannot open a browser (`/nonexistent/browser`: "),
    ] {
        let out = run({
            let mut c = w.woci();
            c.env("BROWSER", browser).args(["session", "authenticate", "--login-timeout", "2"]);
            c
        })
        .await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "the login timed out: {err}");
        let line = err.lines().find(|l| l.starts_with("woci: warning:")).unwrap_or_else(|| panic!("{err}"));
        assert!(line.starts_with(want) && line.ends_with("; open the URL above by hand"), "{err}");
        assert!(err.find("open this URL").unwrap() < err.find(want).unwrap(), "beside the URL, after it: {err}");
    }
}

/// Profile names `oci` takes with brackets or outer spaces (configparser keeps a header whole)
/// are sessions like any other: the call renews and runs, the OCI config gets the section as
/// named, and `--status` agrees (round 97 F1: the login ran, then every call failed with exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bracketed_and_spaced_profile_names_are_sessions_like_any_other() {
    for name in ["team[prod]", " sp ", "y]z"] {
        let mut w = World::new().await;
        w.profile = name.into();
        w.write_manager_ini(&[]);
        w.seed_token(-10);
        w.seed_refresh_token();
        let out = run({
            let mut c = w.woci();
            c.args(["os", "ns", "get"]);
            c
        })
        .await;
        assert!(out.status.success(), "{name:?}: {}", stderr(&out));
        let config = std::fs::read_to_string(w.config_path()).unwrap();
        assert_eq!(config.lines().filter(|l| *l == format!("[{name}]")).count(), 1, "{config}");
        let status = run({
            let mut c = w.woci();
            c.arg("--status");
            c
        })
        .await;
        assert_eq!(status.status.code(), Some(0), "{name:?}: {}", String::from_utf8_lossy(&status.stdout));
    }
}
