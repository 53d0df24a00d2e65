//! woci as a drop-in `oci` (issue 12), with the real binary and the stand-in `oci`: a symlink or
//! copy named `oci` never finds itself, a wrapper that calls woci again is stopped, session-free
//! commands skip the session, typos in woci's options stop before `oci` runs, `oci_cli_rc` picks
//! the profile and endpoint, and hosts the proxy only tunnels are named when the child fails.
//! The same behaviour with the real `oci` CLI is in `tests/e2e_dropin.rs`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use woci_emulator::Config;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A folder under HOME holding `oci` made by `make` from the woci binary.
fn oci_dir(w: &World, name: &str, make: impl Fn(&Path, &Path)) -> PathBuf {
    let d = w.home().join(name);
    std::fs::create_dir_all(&d).unwrap();
    make(&woci_bin(), &d.join("oci"));
    d
}

fn path_of(dirs: &[&Path]) -> std::ffi::OsString {
    let mut v: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    v.extend(["/usr/bin".into(), "/bin".into()]);
    std::env::join_paths(v).unwrap()
}

/// The `oci` link in `links` as a user runs it, with `dirs` as PATH.
fn linked_oci(w: &World, links: &Path, dirs: &[&Path]) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(links.join("oci"));
    for k in SCRUBBED_ENV {
        c.env_remove(k);
    }
    c.env("HOME", w.home())
        .env("OCI_CLI_PROFILE", &w.profile)
        .env("FAKE_OCI_OUT", &w.oci_out)
        .env("PATH", path_of(dirs))
        .timeout(Duration::from_secs(30));
    c
}

fn symlink(from: &Path, to: &Path) {
    std::os::unix::fs::symlink(from, to).unwrap();
}

/// `ln -s woci ~/links/oci` first on PATH, no `WOCI_OCI_COMMAND`: `oci os ns get` runs the next
/// `oci` on PATH (the stand-in), or — when there is none — fails at once naming `oci_command`.
#[tokio::test]
async fn symlink_named_oci_skips_itself() {
    let w = World::new().await;
    w.seed_token(3600);
    let links = oci_dir(&w, "links", symlink);
    let fake_dir = w.fake_oci.parent().unwrap().to_path_buf();
    for (dirs, want_stand_in) in [(vec![links.as_path(), fake_dir.as_path()], true), (vec![links.as_path()], false)] {
        let started = Instant::now();
        let out = linked_oci(&w, &links, &dirs).args(["os", "ns", "get"]).output().unwrap();
        assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
        if want_stand_in {
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(&w.oci_argv()[w.oci_argv().len() - 3..], ["os", "ns", "get"]);
        } else {
            assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
            let e = stderr(&out);
            assert!(e.contains("woci itself") && e.contains("`oci_command`"), "{e}");
            assert_eq!(e.lines().count(), 1, "one line: {e}");
        }
    }
}

/// oci's interactive mode (`oci -i`) runs each command typed as `oci …` from PATH: where woci is
/// installed as `oci`, that is woci again, which runs it (once; its own `oci` is guarded again),
/// rather than stop as a loop (round 91 F1).
#[tokio::test]
async fn commands_of_ocis_interactive_mode_run_through_woci() {
    let w = World::new().await;
    w.seed_token(3600);
    let links = oci_dir(&w, "links", symlink);
    // The real oci's interactive mode, as far as it matters here: `oci -i` runs `oci os ns get`.
    let real = w.home().join("real");
    std::fs::create_dir(&real).unwrap();
    let fake = w.fake_oci.display();
    write_exec(
        &real.join("oci"),
        &format!("#!/bin/sh\ncase \" $* \" in *\" -i \"*) exec oci os ns get;; esac\nexec '{fake}' \"$@\"\n"),
    );
    let out = linked_oci(&w, &links, &[&links, &real]).arg("-i").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(&w.oci_argv()[w.oci_argv().len() - 3..], ["os", "ns", "get"]);
    assert!(w.oci_argv().contains(&"--auth".to_owned()), "{:?}", w.oci_argv());
}

/// A byte-identical copy and a hard link named `oci` are skipped too.
#[tokio::test]
async fn copy_and_hard_link_named_oci_are_skipped() {
    let w = World::new().await;
    w.seed_token(3600);
    let copy = oci_dir(&w, "copy", |woci, oci| {
        std::fs::copy(woci, oci).unwrap();
    });
    let hard = oci_dir(&w, "hard", |woci, oci| {
        if std::fs::hard_link(woci, oci).is_err() {
            std::fs::copy(woci, oci).unwrap();
        }
    });
    let fake_dir = w.fake_oci.parent().unwrap().to_path_buf();
    let out = w
        .woci()
        .env_remove("WOCI_OCI_COMMAND")
        .env("PATH", path_of(&[&copy, &hard, &fake_dir]))
        .args(["os", "ns", "get"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(w.oci_argv().ends_with(&["os".to_owned(), "ns".to_owned(), "get".to_owned()]), "{:?}", w.oci_argv());
}

/// Two woci installs side by side (the `.deb`'s and `cargo install`'s) with the `oci` link at the
/// other one: one line naming both wocis and the link, not only `oci_command` (round 105 F4).
#[tokio::test]
async fn an_oci_link_to_another_woci_install_is_named() {
    let w = World::new().await;
    w.seed_token(3600);
    let other = w.home().join("other/woci");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    // Another build: not a byte-identical copy, which woci would skip as itself.
    let mut bytes = std::fs::read(woci_bin()).unwrap();
    bytes.push(0);
    std::fs::write(&other, bytes).unwrap();
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let links = w.home().join("links");
    std::fs::create_dir(&links).unwrap();
    symlink(&other, &links.join("oci"));
    let fake_dir = w.fake_oci.parent().unwrap().to_path_buf();
    let mut call = w.woci();
    call.env_remove("WOCI_OCI_COMMAND").env("PATH", path_of(&[&links, &fake_dir]));
    let out = call.args(["os", "ns", "get"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("is another woci install") && e.contains(&other.display().to_string()), "{e}");
    assert!(e.contains("point that `oci` at the woci you run"), "{e}");
    assert_eq!(e.lines().filter(|l| l.starts_with("woci: error:")).count(), 1, "{e}");
}

/// `oci_command` pointing at a wrapper that starts woci again: one line naming `oci_command`,
/// not an endless chain of processes.
#[tokio::test]
async fn wrapper_calling_woci_again_is_stopped_by_the_guard() {
    let w = World::new().await;
    w.seed_token(3600);
    let wrapper = w.home().join("oci-wrapper");
    write_exec(&wrapper, &format!("#!/bin/sh\nexec '{}' \"$@\"\n", woci_bin().display()));
    let out = w.woci().env("WOCI_OCI_COMMAND", &wrapper).args(["os", "ns", "get"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("`oci_command`") && e.contains("woci again"), "{e}");
    assert_eq!(e.lines().filter(|l| l.starts_with("woci: error:")).count(), 1, "{e}");
    // With oci's `-i`, whose commands may run through woci once, the wrapper still ends.
    let out = w.woci().env("WOCI_OCI_COMMAND", &wrapper).arg("-i").timeout(Duration::from_secs(30)).output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("woci again"), "{}", stderr(&out));
    // The same wrapper found on PATH as `oci` is named: no `oci_command` is set (round 90 F4).
    let dir = w.home().join("wrap");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(&wrapper, dir.join("oci")).unwrap();
    let out = w.woci().env_remove("WOCI_OCI_COMMAND").env("PATH", path_of(&[&dir])).args(["os", "ns", "get"]).output();
    let e = stderr(&out.unwrap());
    assert!(
        e.contains(&format!("started (`{}`: a link or a script that runs woci?)", dir.join("oci").display())),
        "{e}"
    );
    // --exec programs may call woci: they do not inherit the guard.
    let out = w
        .woci()
        .env("WOCI_ACTIVE", "1")
        .args(["--exec", "--", "sh", "-c", "test -z \"$WOCI_ACTIVE\""])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A typo in a woci option before the command: exit 2 with the suggestion, `oci` never runs.
#[tokio::test]
async fn typo_in_a_woci_option_stops_before_oci() {
    let w = World::new().await;
    w.seed_token(3600);
    let out = w.woci().args(["--auto-refesh", "os", "object", "put", "--file", "f"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.starts_with("woci: error: unknown option `--auto-refesh`"), "{e}");
    assert!(e.contains("did you mean `--auto-refresh`?"), "{e}");
    assert!(!w.oci_out.exists(), "oci must not run");
}

/// Session-free commands reach `oci` untouched with no session at all (nothing in HOME).
#[tokio::test]
async fn session_free_commands_need_no_session() {
    let w = World::new().await;
    w.drop_idp_settings();
    for args in [
        &["--", "--help"][..],
        &["os", "ns", "get", "--help"],
        &["setup", "config"],
        &["session", "validate", "--profile", "p"],
        &["session", "authenticate", "--profile", "p", "--region", "r"],
        &["--", "session", "authenticate", "--profile", "p", "--region", "r"],
        // woci's own `--no-browser` is oci's login option too.
        &["session", "authenticate", "--profile", "p", "--region", "r", "--no-browser"],
    ] {
        let out = w.woci().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let want: Vec<&str> = args.iter().copied().filter(|a| *a != "--").collect();
        assert_eq!(w.oci_argv(), want, "{args:?} reaches oci as it is");
    }
    // Given before the oci words, it is passed on after them.
    let out = w.woci().args(["--no-browser", "session", "authenticate", "--profile", "p"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.oci_argv(), ["session", "authenticate", "--profile", "p", "--no-browser"]);
}

/// `[OCI_CLI_SETTINGS] default_profile` in `~/.oci/oci_cli_rc` picks the profile when neither
/// `--profile` nor `OCI_CLI_PROFILE` does, as in `oci`; `--cli-rc-file` names another file.
#[tokio::test]
async fn oci_cli_rc_default_profile_is_honoured() {
    let w = World::new().await;
    w.seed_token(3600);
    let rc = w.oci_dir().join("oci_cli_rc");
    std::fs::write(&rc, format!("[OCI_CLI_SETTINGS]\ndefault_profile = {}\n", w.profile)).unwrap();
    let out = w.woci().env_remove("OCI_CLI_PROFILE").args(["os", "ns", "get"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.oci_argv()[..2], ["--profile".to_owned(), w.profile.clone()]);

    let other = w.home().join("other_rc");
    std::fs::rename(&rc, &other).unwrap();
    let out = w
        .woci()
        .env_remove("OCI_CLI_PROFILE")
        .args(["--cli-rc-file", other.to_str().unwrap(), "os", "ns", "get"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.oci_argv()[..2], ["--profile".to_owned(), w.profile.clone()]);

    std::fs::write(&rc, "oops\n").unwrap();
    let out = w.woci().args(["os", "ns", "get"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&rc.display().to_string()), "{}", stderr(&out));
}

/// A TLS emulator, a session renewed once (so the key pair exists), and a child that fetches
/// the emulator's URL through the proxy and then fails.
async fn tls_world() -> World {
    let w = World::with_config(Config { tls: true, ..Config::default() }).await;
    w.seed_token(-10);
    w.seed_refresh_token();
    std::fs::write(w.home().join("emulator-ca.pem"), w.emu.ca_pem().unwrap()).unwrap();
    w
}

fn failing_fetch(w: &World) -> assert_cmd::Command {
    let ca = w.home().join("emulator-ca.pem");
    let mut c = w.woci();
    c.env("REQUESTS_CA_BUNDLE", &ca).env("SSL_CERT_FILE", &ca).args([
        "--auto-refresh",
        "--exec",
        "--",
        "sh",
        "-c",
        "curl -s -o /dev/null \"$1\"; exit 3",
        "fetch",
        &w.emu.os_endpoint(),
    ]);
    c
}

/// A host the proxy only tunnels is named, with how to have it re-signed, when the child fails;
/// an endpoint from `oci_cli_rc` is re-signed instead, so no hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnelled_host_is_named_when_the_child_fails_and_rc_endpoint_is_resigned() {
    let w = tls_world().await;
    let host = w.emu.os_endpoint().trim_start_matches("https://").trim_end_matches('/').to_owned();
    let out = run(failing_fetch(&w)).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let e = stderr(&out);
    let hint: Vec<&str> = e.lines().filter(|l| l.contains("without re-signing")).collect();
    assert_eq!(hint.len(), 1, "{e}");
    assert!(hint[0].starts_with("woci: ") && hint[0].contains(&host) && hint[0].contains("`resign_hosts`"), "{e}");

    std::fs::write(w.oci_dir().join("oci_cli_rc"), format!("[{}]\nendpoint = {}\n", w.profile, w.emu.os_endpoint()))
        .unwrap();
    let out = run(failing_fetch(&w)).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(!stderr(&out).contains("without re-signing"), "the rc endpoint is re-signed: {}", stderr(&out));
    std::fs::remove_file(w.oci_dir().join("oci_cli_rc")).unwrap();

    // A program stopped by a signal (here woci's SIGTERM, passed on) failed for that: no hint.
    let ca = w.home().join("emulator-ca.pem");
    let started = w.home().join("fetched");
    let script = format!("curl -s -o /dev/null \"$1\"; touch '{}'; exec sleep 30", started.display());
    let child = w
        .woci_std()
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("SSL_CERT_FILE", &ca)
        .args(["--auto-refresh", "--exec", "--", "sh", "-c", &script, "fetch", &w.emu.os_endpoint()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while !started.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("without re-signing"), "{}", stderr(&out));
}

/// `--auto-refresh` with an `http://` endpoint (`--endpoint http://…` to the stand-in `oci`): the
/// proxy carries only HTTPS, so woci says before the child starts that those requests keep the
/// first token; an `https://` endpoint gets no such line.
#[tokio::test]
async fn a_plain_http_endpoint_under_auto_refresh_is_warned_of() {
    let w = World::new().await;
    w.seed_token(3600);
    w.seed_refresh_token();
    let endpoint = w.emu.os_endpoint();
    assert!(endpoint.starts_with("http://"), "{endpoint}");
    let out = w.woci().args(["--auto-refresh", "os", "ns", "get", "--endpoint", &endpoint]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let e = stderr(&out);
    let lines: Vec<&str> = e.lines().filter(|l| l.contains("is plain HTTP")).collect();
    assert_eq!(lines.len(), 1, "{e}");
    assert!(
        lines[0].starts_with("woci: warning: the endpoint `http://") && lines[0].contains("use an `https://` endpoint"),
        "{e}"
    );

    let out = w
        .woci()
        .args(["--auto-refresh", "os", "ns", "get", "--endpoint", "https://objectstorage.us-ashburn-1.oraclecloud.com"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("is plain HTTP"), "{}", stderr(&out));
}

/// The shell function `examples/shell-alias.sh` defines starts woci under the name `oci`: a bare
/// `--version` is oci's, and a call goes through woci (the example's profile is looked up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_shell_function_starts_woci_as_oci() {
    let w = World::new().await;
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/shell-alias.sh");
    let bin = woci_bin();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.parent().unwrap().display());
    let bash = |line: &str| {
        let mut c = w.woci_std_at(Path::new("bash"));
        c.args(["-c", &format!(". '{example}'; {line}")]).env("PATH", &path).output().unwrap()
    };
    let out = bash("oci --version");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(w.oci_argv(), ["--version"], "{}", String::from_utf8_lossy(&out.stdout));
    let out = bash("oci os ns get");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("woci: error: ") && stderr(&out).contains("profile `myprofile`"),
        "{}",
        stderr(&out)
    );
}
