//! QUICKSTART.md's by-hand path (section B2) against the emulator, run as written so it cannot
//! rot. Every fenced block of B2 carries an HTML comment `<!-- quickstart-test … -->` (invisible
//! when rendered) with the output it must print (`expect: TEXT` lines). The blocks run in order in
//! one bash, from the repository root, with a temporary HOME and TMPDIR, each block's output in a
//! file of its own; a failing command, a missing expected line or an unmarked block fails the test.
//!
//! The first block (`quickstart-test: setup`) builds woci and the emulator, installs the real `oci`
//! and puts them first on PATH. The test checks its text and does that part itself: it puts the
//! `woci` the other integration tests run, the `woci-emulator` of this build and the real `oci`
//! (`scripts/setup-e2e`'s) first on PATH, so it tests this build without building inside a test.
//! The shell gets an unreachable `HTTP(S)_PROXY`, as on a machine behind a proxy: the blocks'
//! own `NO_PROXY` must keep it away from the emulator.

mod common;

use common::{peers, SCRUBBED_ENV, SYSTEM_CA};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The setup block's text, which the test replaces by its own binaries on PATH.
const SETUP_BLOCK: &str = "\
cargo build --locked --bin woci -p woci --bin woci-emulator -p woci-emulator
scripts/setup-e2e
export PATH=\"$PWD/target/debug:$PWD/.e2e/venv/bin:$PATH\"
";

/// What B2 promises to show; a block that stops doing one of these fails the test.
const PROMISED: &[&str] = &[
    "woci-emulator --upst-ttl",
    "woci session authenticate --profile EMU",
    "woci --status --profile EMU",
    "woci os ns get --profile EMU",
    "woci --daemon --profile EMU",
    "woci session authenticate --device-code",
    "subject_token_source = github-actions",
    "subject_token_source = env:",
    "subject_token_source = file:",
    "kill \"$(j pid)\"",
];

/// The whole run, generously: it takes under 10 s here (5 s of it the device-code poll). A login
/// that fails waits for `login_timeout` (300 s), so a failure can show here as a timeout.
const TIMEOUT: Duration = Duration::from_secs(90);

/// One marked block of B2.
#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence in QUICKSTART.md.
    line: usize,
    setup: bool,
    expect: Vec<String>,
    text: String,
}

/// The marked blocks of section B2 (from its heading to the next `## ` or `### ` heading).
fn b2_blocks(md: &str) -> Vec<Block> {
    let lines: Vec<&str> = md.lines().collect();
    let start = lines.iter().position(|l| l.starts_with("### B2.")).expect("QUICKSTART.md has a section `### B2.`");
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("## ") || l.starts_with("### "))
        .map_or(lines.len(), |i| start + 1 + i);
    let mut blocks = Vec::new();
    let mut marker: Option<(usize, bool, Vec<String>)> = None;
    let mut i = start + 1;
    while i < end {
        let l = lines[i];
        if let Some(rest) = l.strip_prefix("<!-- quickstart-test") {
            assert!(marker.is_none(), "QUICKSTART.md:{}: a second marker before the block of the first", i + 1);
            let setup = rest.trim_start().starts_with(": setup");
            let mut expect = Vec::new();
            let mut j = i;
            while !lines[j].contains("-->") {
                j += 1;
                assert!(j < end, "QUICKSTART.md:{}: the marker is not closed with `-->`", i + 1);
                if let Some(e) = lines[j].strip_prefix("expect: ") {
                    expect.push(e.to_owned());
                }
            }
            marker = Some((i + 1, setup, expect));
            i = j + 1;
            continue;
        }
        if let Some(info) = l.strip_prefix("```") {
            let Some((_, setup, expect)) = marker.take() else {
                panic!("QUICKSTART.md:{}: a block of B2 without a `<!-- quickstart-test -->` marker: mark it so the test runs it", i + 1)
            };
            assert_eq!(info, "sh", "QUICKSTART.md:{}: the blocks of B2 are `sh` blocks", i + 1);
            let close = lines[i + 1..end].iter().position(|l| l.starts_with("```")).expect("the block is closed");
            let mut text = lines[i + 1..i + 1 + close].join("\n");
            text.push('\n');
            blocks.push(Block { line: i + 1, setup, expect, text });
            i += close + 2;
            continue;
        }
        assert!(
            marker.is_none() || l.trim().is_empty(),
            "QUICKSTART.md:{}: text between a marker and its block (the marker goes right before the fence)",
            i + 1
        );
        i += 1;
    }
    assert!(marker.is_none(), "a marker at the end of B2 without a block");
    blocks
}

fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = if e.file_type().unwrap().is_dir() {
            newest_mtime(&e.path())
        } else {
            e.metadata().unwrap().modified().unwrap()
        };
        newest = newest.max(t);
    }
    newest
}

/// `target/<profile>/woci-emulator` of this build, built from the emulator's current sources
/// (`cargo test --workspace` builds it; `cargo test --test e2e_quickstart` alone does not).
fn emulator_bin() -> PathBuf {
    let bin = assert_cmd::cargo::cargo_bin("woci-emulator");
    let build = "cargo build --locked -p woci-emulator --bin woci-emulator (or run the tests with --workspace)";
    let built = std::fs::metadata(&bin)
        .unwrap_or_else(|e| panic!("the emulator binary {} is missing ({e}): {build}", bin.display()))
        .modified()
        .unwrap();
    let src = peers::repo_root().join("tests").join("emulator");
    let sources =
        newest_mtime(&src.join("src")).max(std::fs::metadata(src.join("Cargo.toml")).unwrap().modified().unwrap());
    assert!(built >= sources, "the emulator binary {} is older than its sources: {build}", bin.display());
    bin
}

/// Ends what a failed run left behind: the emulator (pid in its state file) and the daemon (its
/// pid file), found under the run's TMPDIR.
struct Leftovers(PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        fn walk(dir: &Path, pids: &mut Vec<i32>) {
            let Ok(entries) = std::fs::read_dir(dir) else { return };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() && !p.is_symlink() {
                    walk(&p, pids);
                } else if p.file_name().is_some_and(|n| n == "emu.json") {
                    let pid = std::fs::read_to_string(&p)
                        .ok()
                        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
                        .and_then(|v| v["pid"].as_i64());
                    pids.extend(pid.map(|p| p as i32));
                } else if p.file_name().is_some_and(|n| n == "woci_refresh.pid") {
                    pids.extend(std::fs::read_to_string(&p).ok().and_then(|s| s.trim().parse::<i32>().ok()));
                }
            }
        }
        let mut pids = Vec::new();
        walk(&self.0, &mut pids);
        for pid in pids.into_iter().filter(|p| *p > 1) {
            // SAFETY: kill(2) with a pid read from the run's own files; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}

#[test]
fn quickstart_by_hand_path_runs_as_written() {
    let md = std::fs::read_to_string(peers::repo_root().join("QUICKSTART.md")).unwrap();
    let blocks = b2_blocks(&md);
    assert!(blocks.len() >= 8, "B2 has only {} marked blocks: {blocks:#?}", blocks.len());
    assert!(blocks[0].setup, "the first block of B2 is the setup block");
    assert_eq!(
        blocks[0].text, SETUP_BLOCK,
        "B2's setup block changed: update SETUP_BLOCK and what the test does instead of it"
    );
    assert!(blocks[1..].iter().all(|b| !b.setup), "only the first block is the setup block");
    let all: String = blocks.iter().map(|b| b.text.as_str()).collect();
    for p in PROMISED {
        assert!(all.contains(p), "B2 no longer runs `{p}`");
    }

    let dir = tempfile::tempdir().unwrap();
    let (bin, home, tmp, logs) =
        (dir.path().join("bin"), dir.path().join("home"), dir.path().join("tmp"), dir.path().join("logs"));
    for d in [&bin, &home, &tmp, &logs] {
        std::fs::create_dir(d).unwrap();
    }
    let _leftovers = Leftovers(tmp.clone());
    std::os::unix::fs::symlink(common::woci_bin(), bin.join("woci")).unwrap();
    std::os::unix::fs::symlink(emulator_bin(), bin.join("woci-emulator")).unwrap();
    let oci_dir = peers::oci_cli().parent().unwrap().to_path_buf();

    let mut script =
        String::from("set -eo pipefail\ntrap 'echo \"quickstart: \\`$BASH_COMMAND\\` failed with exit $?\" >&2' ERR\n");
    for (n, b) in blocks.iter().enumerate().skip(1) {
        script.push_str(&format!("{{\n{}}} >'{}/{n}.log' 2>&1\n", b.text, logs.display()));
    }
    let script_path = dir.path().join("quickstart.sh");
    std::fs::write(&script_path, &script).unwrap();
    let out_path = dir.path().join("bash.log");
    let out = std::fs::File::create(&out_path).unwrap();

    #[allow(clippy::disallowed_methods, reason = "the test harness passes its own PATH on")]
    let path = format!("{}:{}:{}", bin.display(), oci_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new("bash");
    for k in SCRUBBED_ENV {
        cmd.env_remove(k);
    }
    let dead_proxy = "http://127.0.0.1:9";
    cmd.arg("--noprofile")
        .arg("--norc")
        .arg(&script_path)
        .current_dir(peers::repo_root())
        .env("PATH", path)
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .env("REQUESTS_CA_BUNDLE", SYSTEM_CA)
        .env("SSL_CERT_FILE", SYSTEM_CA)
        .env("HTTP_PROXY", dead_proxy)
        .env("HTTPS_PROXY", dead_proxy)
        .env("http_proxy", dead_proxy)
        .env("https_proxy", dead_proxy)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let started = Instant::now();
    let mut child = cmd.spawn().expect("bash runs");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > TIMEOUT {
            // SAFETY: kill(2) of the process group the test started.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("QUICKSTART B2 ran in {:.1} s", started.elapsed().as_secs_f64());

    let log = |n: usize| std::fs::read_to_string(logs.join(format!("{n}.log"))).unwrap_or_default();
    let report = || {
        let mut r = String::new();
        for (n, b) in blocks.iter().enumerate().skip(1) {
            r.push_str(&format!("--- block {n} (QUICKSTART.md:{}):\n{}\n", b.line, log(n)));
        }
        r.push_str(&format!("--- bash:\n{}", std::fs::read_to_string(&out_path).unwrap_or_default()));
        r
    };
    let Some(status) = status else { panic!("the blocks did not finish within {TIMEOUT:?}\n{}", report()) };
    assert!(status.success(), "a command of QUICKSTART B2 failed ({status})\n{}", report());
    let cfg = woci_emulator::Config::default();
    let secrets: Vec<&str> =
        [cfg.exchange_client_secret.as_str()].into_iter().chain(cfg.idp_client_secret.as_deref()).collect();
    for (n, b) in blocks.iter().enumerate().skip(1) {
        let text = log(n);
        for e in &b.expect {
            let wanted = b.expect.iter().filter(|x| *x == e).count();
            let got = text.matches(e.as_str()).count();
            assert!(
                got >= wanted,
                "block {n} (QUICKSTART.md:{}) printed `{e}` {got} time(s), expected {wanted}\n{}",
                b.line,
                report()
            );
        }
        common::assert_no_secrets(&text, &secrets);
    }
}
