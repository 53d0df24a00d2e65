//! Bad input with the real binary: each case is one `woci: error:` line with its documented exit
//! code, spends no refresh token and changes nothing on disk.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// Every file under `root` with its content (`None` for folders and links), to compare before/after.
/// The renewal lock (an empty `.lock` taken before the inputs are checked) is not state, nor is
/// the renewal accounting that counts the failed attempt (`woci-metrics.json` and its lock, checked
/// in `tests/ops.rs`).
fn snapshot(root: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| [".lock", ".metrics.lock", "woci-metrics.json"].iter().any(|s| n == *s)) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p.clone());
                out.push((p, None));
            } else if meta.is_file() {
                out.push((p.clone(), Some(std::fs::read(&p).unwrap())));
            } else {
                out.push((p, None));
            }
        }
    }
    out.sort();
    out
}

/// Runs woci with an expired token and a stored refresh token; asserts the failure shape and that
/// nothing was spent or changed. Returns the error line.
async fn fails_cleanly(w: &World, args: &[&str], code: i32) -> String {
    let before = snapshot(w.home());
    let grants = w.emu.stats().refresh_grants_attempted();
    let mut cmd = w.woci();
    cmd.args(args);
    let out = run(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("woci: error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(stderr.trim_end().ends_with(errors[0]), "the error is the last line: {stderr}");
    assert_eq!(w.emu.stats().refresh_grants_attempted(), grants, "no refresh token was spent");
    let after = snapshot(w.home());
    if after != before {
        let names =
            |v: &[(PathBuf, Option<Vec<u8>>)]| v.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>();
        panic!("something changed on disk:\nbefore {:?}\nafter {:?}", names(&before), names(&after));
    }
    assert!(w.oci_argv().is_empty(), "oci did not run");
    errors[0].to_owned()
}

async fn world_with_key(pem: Option<&str>) -> (World, PathBuf) {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let key = w.oci_dir().join("my_key.pem");
    if let Some(pem) = pem {
        std::fs::write(&key, pem).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    std::fs::write(w.config_path(), format!("[P]\nregion = us-ashburn-1\nkey_file = {}\n", key.display())).unwrap();
    (w, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_log_level_is_exit_2_listing_the_valid_ones() {
    let w = World::new().await;
    let line = fails_cleanly(&w, &["--log-level", "LOUD", "os", "ns", "get"], 2).await;
    assert!(line.contains("`LOUD`") && line.contains("debug") && line.contains("warn"), "{line}");
    w.write_manager_ini(&[("log_level", "LOUD")]);
    let line = fails_cleanly(&w, &["os", "ns", "get"], 2).await;
    assert!(line.contains("`log_level`"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ec_key_is_named_as_such_before_any_request() {
    let (w, _) = world_with_key(Some(include_str!("fixtures/ec_p256_pkcs8.pem"))).await;
    let line = fails_cleanly(&w, &["os", "ns", "get"], 7).await;
    assert!(line.contains("EC key") && line.contains("RSA") && line.contains("my_key.pem"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1024_bit_key_is_refused_before_the_refresh_token_is_spent() {
    let (w, _) = world_with_key(Some(include_str!("fixtures/rsa_1024.pem"))).await;
    let line = fails_cleanly(&w, &["os", "ns", "get"], 7).await;
    assert!(line.contains("1024 bits") && line.contains("2048"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_file_is_an_error_not_a_new_key() {
    let (w, _) = world_with_key(None).await;
    let line = fails_cleanly(&w, &["os", "ns", "get"], 2).await;
    assert!(line.contains("my_key.pem") && line.contains("does not exist"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_profile_sections_are_rejected_naming_both_lines() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    std::fs::write(w.config_path(), "[P]\nregion = us-ashburn-1\n\n[P]\nregion = eu-frankfurt-1\n").unwrap();
    let line = fails_cleanly(&w, &["os", "ns", "get"], 7).await;
    assert!(line.contains("`[P]`") && line.contains("lines 1 and 4"), "{line}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_session_folder_is_not_followed() {
    let w = World::new().await;
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("refresh_token"), w.emu.issue_refresh_token()).unwrap();
    std::fs::create_dir_all(w.oci_dir().join("sessions")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), w.session_dir()).unwrap();
    let line = fails_cleanly(&w, &["os", "ns", "get"], 2).await;
    assert!(line.contains("symbolic link"), "{line}");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 1, "nothing written where it points");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_writable_oci_folder_is_refused_a_readable_key_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let (w, key) = world_with_key(Some(include_str!("fixtures/test_key.pem"))).await;
    std::fs::set_permissions(w.oci_dir(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let line = fails_cleanly(&w, &["os", "ns", "get"], 2).await;
    assert!(line.contains("writable by every user") && line.contains("chmod go-w"), "{line}");

    std::fs::set_permissions(w.oci_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = w.woci();
    cmd.args(["os", "ns", "get"]);
    let out = run(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a readable key still works: {stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("readable by other users")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("chmod 600"), "{stderr}");
}

/// Another local user took the proxy folder's name in the temporary folder as a 0700 folder of
/// theirs, which this user cannot even open: it is named as theirs and a made-up folder serves,
/// rather than every `--exec` failing (a review of round 105). This user is `nobody` (uid 65534),
/// the other root, who made the folder.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_closed_proxy_folder_does_not_stop_a_run() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let w = World::new().await;
    w.seed_token(3600);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let taken = tmp.path().join("woci-proxy-65534");
    std::fs::create_dir(&taken).unwrap();
    std::fs::set_permissions(&taken, std::fs::Permissions::from_mode(0o700)).unwrap();
    let chown = std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(w.home()).status();
    assert!(chown.expect("the tests run as root").success());
    let mut c = w.woci_std();
    c.uid(65534).gid(65534).env("TMPDIR", tmp.path()).env_remove("XDG_RUNTIME_DIR");
    let out = c.args(["--exec", "--", "true"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("belongs to uid 0, not to you (uid 65534)") && err.contains("not used"), "{err}");
}

/// Writable by a group with others in it (here `nogroup`, gid 65534, whose members include the
/// `nobody` user) is as open as writable by every user: `~/.oci` (they could swap the config or
/// the session) and the manager INI (it names the programs woci runs) are refused, naming the
/// group. The owner's own group (root's `root` here, a per-user group under umask 002) is fine.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_or_ini_a_shared_group_can_write_is_refused() {
    use std::os::unix::fs::{chown, PermissionsExt};
    let w = World::new().await;
    w.seed_token(3600);
    let me = std::fs::metadata(w.oci_dir()).map(|m| std::os::unix::fs::MetadataExt::gid(&m)).unwrap();
    let mode = |p: &std::path::Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    chown(w.oci_dir(), None, Some(65534)).expect("the tests run as root");
    mode(&w.oci_dir(), 0o770);
    let line = fails_cleanly(&w, &["os", "ns", "get"], 2).await;
    assert!(line.contains("writable by group `nogroup`") && line.contains("chmod go-w"), "{line}");
    chown(w.oci_dir(), None, Some(me)).unwrap();
    chown(w.manager_ini_path(), None, Some(65534)).unwrap();
    mode(&w.manager_ini_path(), 0o660);
    let line = fails_cleanly(&w, &["os", "ns", "get"], 2).await;
    assert!(line.contains("manager config") && line.contains("writable by group `nogroup`"), "{line}");
    // A profile's own session folder too (its token or key could have been swapped).
    chown(w.manager_ini_path(), None, Some(me)).unwrap();
    mode(&w.session_dir(), 0o777);
    let line = fails_cleanly(&w, &["os", "ns", "get"], 2).await;
    assert!(
        line.contains("session folder") && line.contains("writable by every user") && line.contains("chmod 700"),
        "{line}"
    );
    mode(&w.session_dir(), 0o700);
    // The owner's own group: both work.
    let mut cmd = w.woci();
    cmd.args(["os", "ns", "get"]);
    let out = run(cmd).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_that_is_a_folder_is_named_as_a_folder() {
    let (w, key) = world_with_key(None).await;
    std::fs::create_dir(&key).unwrap();
    let line = fails_cleanly(&w, &["os", "ns", "get"], 2).await;
    assert!(line.contains("my_key.pem") && line.contains("is a folder"), "{line}");
    assert!(!line.contains("does not exist"), "{line}");
}

/// A FIFO or device as `key_file` is named as such, as the config and INI are (round 84 N4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_that_is_a_fifo_is_named_as_no_regular_file() {
    let (w, key) = world_with_key(None).await;
    assert!(std::process::Command::new("mkfifo").arg(&key).status().unwrap().success());
    let line = fails_cleanly(&w, &["os", "ns", "get"], 7).await;
    assert!(line.contains("my_key.pem") && line.contains("is not a regular file (a FIFO, socket or device)"), "{line}");
}

/// `woci os ns get` with an expired token and a stored refresh token, so it renews: its output
/// and stderr.
async fn renewing_call(w: &World) -> (std::process::Output, String) {
    w.seed_token(-10);
    w.seed_refresh_token();
    let mut c = w.woci();
    c.args(["os", "ns", "get"]);
    let out = run(c).await;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

/// An OCI config named by `--config-file` or `OCI_CLI_CONFIG_FILE` in a folder that does not
/// exist is a typo: refused (oci finds no file there either), no folder made, nothing renewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_in_a_missing_folder_is_refused_not_made() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let typo = w.home().join("nodir/sub/config");
    for (flag, var) in [(true, false), (false, true)] {
        let mut c = w.woci();
        if flag {
            c.arg("--config-file").arg(&typo);
        }
        if var {
            c.env("OCI_CLI_CONFIG_FILE", &typo);
        }
        c.args(["os", "ns", "get"]);
        let out = run(c).await;
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("is in a folder that does not exist"), "{err}");
        assert!(!w.home().join("nodir").exists(), "no folder made");
    }
    assert_eq!(w.emu.stats().refresh_grants, 0);
}

/// So is a config file named that does not exist, as for oci: a call (and `--status`) refuses it
/// rather than make a stray file of a mistyped path; a login, which sets the profile up, makes
/// it (round 90 F2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_config_file_named_is_refused_by_a_call_and_made_by_a_login() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let typo = w.home().join(".oci/confg");
    for args in [&["os", "ns", "get"][..], &["--status"]] {
        let mut c = w.woci();
        c.arg("--config-file").arg(&typo).args(args);
        let out = run(c).await;
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{said}");
        assert!(said.contains("confg` (from the `--config-file` flag) does not exist; check the path"), "{said}");
        assert!(!typo.exists(), "no file made");
    }
    assert_eq!(w.emu.stats().refresh_grants, 0);
    // An empty one is no path at all (round 91 N1).
    let out = run({
        let mut c = w.woci();
        c.args(["--config-file", "", "session", "authenticate"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the OCI config path (from the `--config-file` flag) is empty")
    );
    let mut c = w.woci_with_browser();
    c.arg("--config-file").arg(&typo).args(["session", "authenticate"]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_to_string(&typo).unwrap().contains("[P]"));
}

/// A server speaking only TLS versions woci does not (TLS 1.0: it answers the hello with a
/// `protocol_version` alert) cannot fix itself either: one attempt, one line saying so, not
/// "unreachable" after three. Nor can one that wants a client certificate: TLS 1.3 says so
/// (`certificate_required`), TLS 1.2 only refuses the handshake, which may mean either. Nor a
/// plain-HTTP server behind an `https://` URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_tls_version_in_common_is_not_retried_and_says_so() {
    use std::io::{Read, Write};
    let w = World::new().await;
    // A TLS record: alert, fatal, the alert's code; or plain HTTP behind an `https://` URL.
    let alert = |code: u8| vec![0x15, 0x03, 0x01, 0x00, 0x02, 0x02, code];
    for (answer, says) in [
        (alert(0x46), "`127.0.0.1` has no TLS version or cipher in common with woci"),
        (alert(0x28), "refused the TLS handshake: it has no TLS version or cipher in common with woci (TLS 1.2 or 1.3 with current ciphers), or it asks for a client certificate"),
        (alert(0x74), "`127.0.0.1` asks for a client certificate (mutual TLS), which woci does not send"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(), "`127.0.0.1` does not speak TLS (a plain-HTTP server behind an `https://` URL?)"),
    ] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hellos = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hellos.clone();
        std::thread::spawn(move || {
            for mut conn in listener.incoming().flatten() {
                let mut hello = [0u8; 512];
                if conn.read(&mut hello).is_ok_and(|n| n > 0) {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let _ = conn.write_all(&answer);
                }
            }
        });
        w.write_manager_ini(&[("token_url", &format!("https://127.0.0.1:{port}/oauth2/v1/token"))]);
        let (out, err) = renewing_call(&w).await;
        assert_eq!(out.status.code(), Some(6), "{err}");
        assert!(!err.contains("retrying") && !err.contains("unreachable"), "{err}");
        assert!(err.contains(says), "{says}: {err}");
        assert_eq!(hellos.load(std::sync::atomic::Ordering::SeqCst), 1, "one attempt: {err}");
    }
}

/// A certificate from an issuer woci does not trust cannot fix itself: one attempt, and one line
/// naming the host, the unknown issuer and every way to trust the CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_not_retried_and_names_the_fix() {
    use woci_emulator::Config;
    // The emulator serves HTTPS with its own CA, which this test does not give woci.
    let w = World::with_config(Config { tls: true, ..Config::default() }).await;
    let (out, err) = renewing_call(&w).await;
    assert_eq!(out.status.code(), Some(6), "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("woci: error: ")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    let line = errors[0];
    assert!(!err.contains("retrying"), "{err}");
    for needle in
        ["`127.0.0.1`", "unknown issuer", "--cert-bundle", "OCI_CLI_CERT_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"]
    {
        assert!(line.contains(needle), "{needle} missing: {line}");
    }
    // The server counts the handshake a moment after woci has given up on it.
    let started = std::time::Instant::now();
    while w.emu.stats().tls_handshakes_failed == 0 && started.elapsed() < std::time::Duration::from_secs(5) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(w.emu.stats().tls_handshakes_failed, 1, "one attempt, no retries: {line}");
    // `--status` predicts the same failure: only a CA setting fixes it.
    let mut c = w.woci();
    c.args(["--status", "--json"]);
    let out = run(c).await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(6), "{v}");
    assert_eq!(v["last_failure"]["transient"], false, "{v}");
}

/// The same refusal met by the re-signing proxy on a child's behalf (the child only sees a 502,
/// which it may retry for minutes): one `woci: warning:` line at once, naming the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_upstream_behind_the_proxy_is_named_at_once() {
    use woci_emulator::Config;
    let w = World::with_config(Config { tls: true, ..Config::default() }).await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let target = format!("127.0.0.1:{}", w.emu.port());
    let mut c = w.woci();
    c.env("WOCI_RESIGN_HOSTS", &target).args(["--auto-refresh", "--exec", "--", "curl", "-s", "-o", "/dev/null"]);
    c.arg(format!("https://{target}/n/x"));
    let out = run(c).await;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("woci: warning: the re-signing proxy")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("unknown issuer") && warnings[0].contains("--cert-bundle"), "{err}");
}

/// A server's `error` / `error_description` with escape sequences, a bidi override and a newline
/// reaches the terminal escaped, on the one error line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_error_text_is_escaped_in_the_error_line() {
    use woci_emulator::{Endpoint, Fault, FaultAction};
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    w.emu.set_fault(
        Endpoint::IdpToken,
        Fault::new(FaultAction::OAuthError {
            status: 400,
            error: "invalid_request\u{1b}[2J".into(),
            description: "\u{1b}]0;owned\u{7}bad \u{202e}gnirts\u{9b}1m\u{7f}\nwoci: error: fake line".into(),
        }),
    );
    let mut c = w.woci();
    c.args(["os", "ns", "get"]);
    let out = run(c).await;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(4), "{}", err.escape_debug());
    assert_terminal_safe(&out.stderr, "stderr");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("woci: error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line, no injected second one: {err}");
    assert!(errors[0].contains("invalid_request") && errors[0].contains("gnirts"), "{err}");
}

/// A manager INI with client secrets that other users can read gets one warning naming the fix,
/// on every call; a private one gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readable_manager_ini_with_secrets_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new().await;
    w.seed_token(3600);
    let call = |w: &World| {
        let mut c = w.woci();
        c.args(["os", "ns", "get"]);
        c
    };
    let quiet = run(call(&w)).await;
    assert!(quiet.status.success() && !String::from_utf8_lossy(&quiet.stderr).contains("chmod 600"));
    std::fs::set_permissions(w.manager_ini_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let loud = run(call(&w)).await;
    let err = String::from_utf8_lossy(&loud.stderr);
    assert!(loud.status.success(), "a warning, not an error: {err}");
    assert_eq!(err.lines().filter(|l| l.contains("holds client secrets")).count(), 1, "{err}");
    assert!(err.contains(&format!("chmod 600 {}", w.manager_ini_path().display())), "{err}");
}

/// A misspelled profile option after the oci words: the error about the profile woci used says
/// what was probably meant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_profile_option_is_named_in_the_error() {
    let w = World::new().await;
    let out = run({
        let mut c = w.woci();
        c.env_remove("OCI_CLI_PROFILE").args(["os", "ns", "get", "--profle", "EMU"]);
        c
    })
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`DEFAULT`") && err.contains("did you mean `--profile`?"), "{err}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlinked_lock_file_is_refused_and_not_followed() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("made-by-woci");
    std::os::unix::fs::symlink(&target, w.session_dir().join(".lock")).unwrap();
    let line = fails_cleanly(&w, &["os", "ns", "get"], 2).await;
    assert!(line.contains("/.lock` is a symbolic link") && line.contains("rm "), "{line}");
    assert!(!target.exists(), "the link's target was not created");
}

/// `SSL_CERT_FILE` is read by the TLS library too: a device or FIFO there would be read without
/// end (all memory, or a hang). The call refuses it at once, naming the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_variable_naming_a_device_is_refused_at_once() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let mut c = w.woci();
    c.env("SSL_CERT_FILE", "/dev/zero").args(["os", "ns", "get"]);
    let started = std::time::Instant::now();
    let out = run(c).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("`SSL_CERT_FILE` names `/dev/zero`"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(w.emu.stats().refresh_grants, 0);
}

/// `oci`'s own help runs without woci's settings, but when the settings could not be read and
/// the program then cannot be found, the error names why `oci_command` was not used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_with_broken_settings_names_them_when_oci_is_not_found() {
    let w = World::new().await;
    w.write_manager_ini(&[("oci_command", "/opt/oci/bin/oci"), ("log_level", "LOUD")]);
    let mut cmd = w.woci();
    cmd.env_remove("WOCI_OCI_COMMAND").env("PATH", "/nonexistent").args(["os", "ns", "get", "--help"]);
    let out = run(cmd).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(stderr.contains("settings could not be read") && stderr.contains("`log_level`"), "{stderr}");
}
