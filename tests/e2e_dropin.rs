//! woci as a drop-in `oci` with the real `oci` CLI (PyPI `oci-cli`, installed by
//! `scripts/setup-e2e`; missing, these tests fail naming it): the long upload survives through an
//! endpoint named only by `--endpoint=`, a symlink named `oci` finds the real one, help works in an
//! empty HOME, and woci's table of oci's global options matches `oci --help`.

mod common;

use common::peers::{self, oci_cli};
use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use woci_emulator::Config;

const MIB: usize = 1024 * 1024;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn venv_bin() -> PathBuf {
    oci_cli().parent().unwrap().to_path_buf()
}

/// PATH = `dirs`, then the system folders.
fn path_of(dirs: &[&Path]) -> std::ffi::OsString {
    let mut v: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    v.extend(["/usr/bin".into(), "/bin".into()]);
    std::env::join_paths(v).unwrap()
}

/// `program` with a clean environment: an empty HOME, the given PATH, nothing else of woci's.
fn clean(program: &Path, home: &Path, path: &std::ffi::OsStr) -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(program);
    for k in SCRUBBED_ENV {
        c.env_remove(k);
    }
    c.env("HOME", home)
        .env("PATH", path)
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("REQUESTS_CA_BUNDLE", SYSTEM_CA)
        .env("SSL_CERT_FILE", SYSTEM_CA)
        .timeout(Duration::from_secs(120));
    c
}

/// The long upload of `tests/e2e_oci.rs`, with the emulator named only by `--endpoint=URL`: no
/// `WOCI_RESIGN_HOSTS`, no `resign_hosts`. It outlives several 5 s tokens without one 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_to_an_endpoint_named_only_by_endpoint_is_resigned() {
    let ttl = Duration::from_secs(5);
    let w = World::with_config(Config {
        tls: true,
        upst_ttl: ttl,
        part_delay: Duration::from_secs(3),
        ..Config::default()
    })
    .await;
    w.seed_refresh_token();
    let ca = w.home().join("emulator-ca.pem");
    std::fs::write(&ca, w.emu.ca_pem().unwrap()).unwrap();
    let data = w.home().join("blob.bin");
    let bytes: Vec<u8> = (0..24 * MIB).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&data, &bytes).unwrap();
    let endpoint = format!("--endpoint={}", w.emu.os_endpoint());
    let base = |verb: &str| -> Vec<String> {
        ["os", "object", verb, &endpoint, "--namespace", &w.cfg.namespace, "--bucket-name", "e2e"]
            .map(String::from)
            .to_vec()
    };
    let woci = || {
        let mut c = w.woci();
        c.env("WOCI_OCI_COMMAND", oci_cli())
            .env("REQUESTS_CA_BUNDLE", &ca)
            .env("SSL_CERT_FILE", &ca)
            .env("OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING", "True")
            .timeout(Duration::from_secs(600));
        c
    };
    let mut put = base("put");
    put.extend(
        [
            "--name",
            "big",
            "--file",
            data.to_str().unwrap(),
            "--part-size",
            "1",
            "--parallel-upload-count",
            "3",
            "--force",
        ]
        .map(String::from),
    );
    let started = Instant::now();
    let out = run({
        let mut c = woci();
        c.arg("--auto-refresh").args(&put);
        c
    })
    .await;
    let elapsed = started.elapsed();
    assert!(out.status.success(), "upload failed: {}", stderr(&out));
    assert!(elapsed > ttl * 4, "the upload must outlive several token lifetimes (took {elapsed:?})");
    let st = w.emu.stats();
    assert_eq!(st.unauthorized, 0, "no request may be refused: {:?}", st.unauthorized_by_reason);
    assert!(st.os_jtis.len() >= 3, "requests were signed with {} tokens", st.os_jtis.len());
    assert!(!stderr(&out).contains("without re-signing"), "{}", stderr(&out));

    let dest = w.home().join("big.down");
    let mut get = base("get");
    get.extend(["--name", "big", "--file", dest.to_str().unwrap()].map(String::from));
    let out = run({
        let mut c = woci();
        c.args(&get);
        c
    })
    .await;
    assert!(out.status.success(), "download failed: {}", stderr(&out));
    assert_eq!(sha256_file(&dest), sha256_hex(&bytes));

    // oci loads the session even to write a JSON skeleton: once the token has expired, woci
    // renews it first (round 101 F3: sent on as it was, oci refused the expired session).
    std::thread::sleep(ttl + Duration::from_secs(1));
    let out = run({
        let mut c = woci();
        c.args(["os", "object", "put", "--generate-full-command-json-input"]);
        c
    })
    .await;
    assert!(out.status.success() && stdout(&out).starts_with('{'), "{}\n{}", stdout(&out), stderr(&out));
}

/// `ln -s woci ~/bin/oci` first on PATH, the real `oci` further down: `oci --version`,
/// `oci --help` and a bare `oci` are the real oci's, and a command that needs a session returns
/// at once.
#[test]
fn symlink_named_oci_runs_the_real_oci() {
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(woci_bin(), bin.join("oci")).unwrap();
    let path = path_of(&[&bin, &venv_bin()]);

    let out = clean(&bin.join("oci"), home.path(), &path).arg("--version").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), peers::OCI_CLI_VERSION, "the real oci's version");
    for args in [&["--help"][..], &[]] {
        let out = clean(&bin.join("oci"), home.path(), &path).args(args).output().unwrap();
        assert!(out.status.success() && stdout(&out).contains("Usage: oci"), "{args:?}: {}", stderr(&out));
    }

    // A command group alone, at any depth: the real oci's usage (exit 2), no session asked for
    // in this HOME that has none.
    for args in [&["os"][..], &["os", "object"], &["iam", "user"]] {
        let out = clean(&bin.join("oci"), home.path(), &path).args(args).output().unwrap();
        let usage = format!("Usage: oci {} [OPTIONS] COMMAND [ARGS]...", args.join(" "));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with(&usage) && !stderr(&out).contains("woci"), "{args:?}: {}", stderr(&out));
    }

    let started = Instant::now();
    let out = clean(&bin.join("oci"), home.path(), &path).args(["os", "ns", "get"]).output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
    assert!(!out.status.success() && stderr(&out).starts_with("woci: error:"), "{}", stderr(&out));
}

/// woci's table of oci's command groups (a call naming one alone needs no session) is exactly
/// the pinned oci's, as `scripts/oci-groups` lists them.
#[test]
fn oci_groups_table_matches_oci() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/oci-groups");
    let out = std::process::Command::new(venv_bin().join("python")).arg(&script).output().expect("python runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let table = include_str!("../src/cli/oci_groups.txt");
    assert!(stdout(&out) == table, "run `.e2e/venv/bin/python scripts/oci-groups > src/cli/oci_groups.txt`");
}

/// Help in an empty HOME (no config, no session, no manager INI), `oci` found on PATH.
#[test]
fn help_works_in_an_empty_home() {
    let home = tempfile::tempdir().unwrap();
    let path = path_of(&[&venv_bin()]);
    let woci = woci_bin();
    for (args, expect) in [
        (&["--", "--help"][..], "Usage: oci"),
        (&["os", "ns", "get", "--help"], "oci os ns get"),
        (&["session", "authenticate", "--help"], "oci session authenticate"),
        (&["setup", "keys", "--help"], "oci setup keys"),
    ] {
        let out = clean(&woci, home.path(), &path).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains(expect), "{args:?}: {}", stdout(&out));
        assert!(!home.path().join(".oci").exists(), "{args:?} wrote to HOME");
    }
}

/// woci's table of oci's global options (what may come before the first oci word) is exactly
/// the "Options" section of the pinned oci's own `--help`.
#[test]
fn oci_global_options_table_matches_oci_help() {
    let home = tempfile::tempdir().unwrap();
    let out = peers::oci_command(home.path()).arg("--help").output().expect("oci runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let help = stdout(&out);
    let options = help.split("Options:\n").nth(1).expect("an Options section").split("\nCommands:").next().unwrap();
    let mut from_help: Vec<(Vec<String>, bool, Vec<String>)> = Vec::new();
    for line in options.lines() {
        // Option lines are indented by two spaces; descriptions continue deeper.
        let Some(rest) = line.strip_prefix("  ").filter(|r| r.starts_with('-')) else {
            continue;
        };
        let mut tokens = rest.split_whitespace().peekable();
        let mut names = Vec::new();
        while let Some(t) = tokens.next_if(|t| t.starts_with('-')) {
            names.push(t.trim_end_matches(',').to_owned());
        }
        let value =
            tokens.next().filter(|t| t.starts_with('[') || (t.len() > 1 && t.chars().all(|c| c.is_ascii_uppercase())));
        let choices = value
            .and_then(|v| v.strip_prefix('[')?.strip_suffix(']'))
            .map(|v| v.split('|').map(str::to_owned).collect());
        from_help.push((names, value.is_some(), choices.unwrap_or_default()));
    }
    let table: Vec<(Vec<String>, bool, Vec<String>)> = woci::cli::oci_globals::OCI_GLOBALS
        .iter()
        .map(|g| {
            let owned = |v: &[&str]| v.iter().map(|n| (*n).to_owned()).collect();
            (owned(g.names), g.value, owned(g.choices))
        })
        .collect();
    assert_eq!(table, from_help, "update src/cli/oci_globals.rs to oci {}'s --help", peers::OCI_CLI_VERSION);
}
