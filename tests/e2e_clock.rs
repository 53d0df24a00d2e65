//! A machine whose clock is off, end to end with the real `oci` CLI: the emulator's servers run
//! minutes ahead of the machine (`set_clock_offset`, process-wide, so the tests here take turns).
//! woci learns the skew from its first fresh token and times every renewal, the proxy's hold and
//! every `date` it signs by the servers' clock; what `oci` signs with the machine's own clock
//! OCI refuses past 5 minutes, and woci says so.

mod common;

use common::peers;
use common::*;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;
use woci_emulator::Config;

const MIB: usize = 1024 * 1024;

/// The servers' clock is process-wide: one test at a time sets it.
static CLOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Skewed {
    w: World,
    ca_file: PathBuf,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// A TLS emulator whose clock runs `ahead` seconds ahead of this machine's, a refresh token, and
/// nothing learned yet.
async fn skewed(ahead: i64, cfg: Config) -> Skewed {
    let turn = CLOCK.lock().await;
    woci_emulator::set_clock_offset(ahead);
    let w = World::with_config(Config { tls: true, ..cfg }).await;
    w.seed_refresh_token();
    let ca_file = w.home().join("emulator-ca.pem");
    std::fs::write(&ca_file, w.emu.ca_pem().expect("TLS emulator has a CA")).unwrap();
    Skewed { w, ca_file, _turn: turn }
}

impl Drop for Skewed {
    fn drop(&mut self) {
        woci_emulator::set_clock_offset(0);
    }
}

impl Skewed {
    fn woci(&self, args: &[&str]) -> assert_cmd::Command {
        let mut c = self.w.woci();
        c.env("WOCI_OCI_COMMAND", peers::oci_cli())
            .env("REQUESTS_CA_BUNDLE", &self.ca_file)
            .env("SSL_CERT_FILE", &self.ca_file)
            .env("OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING", "True")
            .args(args)
            .timeout(Duration::from_secs(300));
        c
    }

    async fn status(&self) -> (Output, serde_json::Value) {
        let out = run(self.woci(&["--status", "--json"])).await;
        let v = serde_json::from_slice(&out.stdout).expect("--status --json prints JSON");
        (out, v)
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Four minutes behind, the date check still passes, but by this machine's clock every token
/// lives four minutes longer than OCI lets it: a 5 s token would be used for minutes after its
/// end. Corrected, an `--auto-refresh` upload across many token lives gets no 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clock_four_minutes_behind_loses_no_request() {
    let cfg = Config { upst_ttl: Duration::from_secs(5), part_delay: Duration::from_secs(3), ..Config::default() };
    let s = skewed(240, cfg).await;
    let data = s.w.home().join("blob.bin");
    std::fs::write(&data, vec![7u8; 24 * MIB]).unwrap();
    let os = s.w.emu.os_endpoint();
    let ns = s.w.cfg.namespace.clone();
    let args = format!(
        "--auto-refresh os object put --endpoint {os} --namespace {ns} --bucket-name b --name blob --file {} \
         --part-size 1 --parallel-upload-count 3 --force",
        data.display()
    );
    let args: Vec<&str> = args.split_whitespace().collect();
    let out = run(s.woci(&args)).await;
    assert!(out.status.success(), "upload failed: {}", stderr(&out));
    let st = s.w.emu.stats();
    assert_eq!(st.unauthorized, 0, "refused: {:?}", st.unauthorized_by_reason);
    assert!(st.os_jtis.len() >= 3, "signed with {} tokens", st.os_jtis.len());
    assert!(stderr(&out).contains("behind the token exchange's"), "the skew is named: {}", stderr(&out));

    let (status, v) = s.status().await;
    assert!(status.status.success(), "{}", stderr(&status));
    let skew = v["clock_skew_s"].as_i64().unwrap();
    assert!((225..=241).contains(&skew), "clock_skew_s {skew} (240, less a slow answer's span)");
    // One clock in the report, this machine's, as `date` has it.
    let mine = unix_now();
    assert!((v["now"].as_i64().unwrap() - mine).abs() <= 2, "{v}");
    assert!(v["token"]["expires_at"].as_i64().unwrap() <= mine + 6, "{v}");
    assert!(String::from_utf8_lossy(&s.woci(&["--status"]).output().unwrap().stdout).contains("clock: "));

    // The daemon's log and state carry this machine's time, token ends turned into it too.
    let started = run(s.woci(&["--daemon"])).await;
    assert!(started.status.success(), "{}", stderr(&started));
    let log = s.w.session_dir().join("woci-daemon.log");
    let line = (0..100)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.lines().find(|l| l.contains("running; token expires")).map(str::to_owned)
        })
        .expect("the daemon says it runs");
    let stopped = run(s.woci(&["--stop-daemon"])).await;
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    let (stamp, expires) = (&line[..19], line.split("token expires ").nth(1).unwrap());
    assert!(&expires[..19] < woci::clock::fmt_utc(unix_now() + 10).as_str(), "{line}");
    assert!(&expires[..19] >= stamp, "{line}");
}

/// Six minutes behind: OCI refuses every `date` `oci` signs, which woci says before the call
/// fails and `--status` counts as not usable; the OKE tokens woci signs itself carry the
/// servers' time and pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clock_six_minutes_behind_is_said_and_woci_signs_by_the_servers_time() {
    let s = skewed(360, Config::default()).await;
    let os = s.w.emu.os_endpoint();
    let out = run(s.woci(&["os", "ns", "get", "--endpoint", &os])).await;
    assert!(!out.status.success(), "OCI refuses oci's dates");
    let err = stderr(&out);
    // 6 minutes, less what a slow answer's span cannot tell apart from the skew.
    let learned = ["clock is 6m00s behind", "clock is 5m"].iter().any(|w| err.contains(w));
    assert!(learned && err.contains("behind the token exchange's"), "{err}");
    assert!(err.contains("OCI refuses requests whose date is more than 5 minutes off"), "{err}");
    assert_eq!(s.w.emu.stats().unauthorized_for("stale_date"), 1);

    let (status, v) = s.status().await;
    assert_eq!(status.status.code(), Some(1), "{}", String::from_utf8_lossy(&status.stdout));
    assert!(v["reason"].as_str().unwrap().contains("set the clock right"), "{v}");

    let generate = "ce cluster generate-token --cluster-id ocid1.cluster.oc1.iad.aaaa --region us-ashburn-1 --auth \
                    security_token";
    let token = run(s.woci(&generate.split_whitespace().collect::<Vec<_>>())).await;
    assert!(token.status.success(), "{}", stderr(&token));
    let cred: serde_json::Value = serde_json::from_slice(&token.stdout).unwrap();
    let checked = s.w.emu.check_oke_token(cred["status"]["token"].as_str().unwrap(), None);
    assert_eq!(checked, Ok(s.w.cfg.user_ocid.clone()));
    // kubectl reads the expiry by this machine's clock: 4 minutes on it, not on the servers'.
    let expires = cred["status"]["expirationTimestamp"].as_str().unwrap();
    let latest = woci::clock::fmt_utc(unix_now() + 4 * 60 + 2);
    assert!(expires[..19] <= latest[..19], "expires {expires}, later than {latest}");
}

/// Two and a half minutes ahead: OCI still takes the date, but `oci` checks the token file's
/// `exp` by this machine's clock and calls the session expired ("This CLI session has expired")
/// while OCI would still take it. A token's life goes by the later clock: woci renews first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clock_ahead_renews_before_oci_calls_the_session_expired() {
    let s = skewed(-150, Config { upst_ttl: Duration::from_secs(180), ..Config::default() }).await;
    s.w.write_manager_ini(&[("refresh_safety_window", "20s")]);
    let os = s.w.emu.os_endpoint();
    let first = run(s.woci(&["os", "ns", "get", "--endpoint", &os])).await;
    assert!(first.status.success(), "{}", stderr(&first));
    // 30 s left by this clock at the start, 3 minutes by the servers': 5 s past it by this clock.
    tokio::time::sleep(Duration::from_secs(35)).await;
    let later = run(s.woci(&["os", "ns", "get", "--endpoint", &os])).await;
    assert!(later.status.success(), "{}", stderr(&later));
    assert_eq!(s.w.emu.stats().refresh_grants, 2);
}
