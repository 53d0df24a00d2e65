//! The real OCI Java SDK under `woci --auto-refresh --exec`: `tests/sdk/java` (Maven, OCI Java
//! SDK 3.77.2 with its Jersey 3 HTTP client, JDK 17) is a user's batch job — a session-token
//! profile from `~/.oci/config` (`SessionTokenAuthenticationDetailsProvider`) and Object Storage
//! PutObject in a loop — run against the emulator's Object Storage over TLS with 5 s UPSTs:
//!
//! - under woci, through the re-signing proxy: more than 3 token lifetimes, no 401 at all;
//! - without woci (the control, one 8 s token): the program dies with a 401 at its expiry;
//! - under `--no-resign-proxy`: it lives by re-reading the renewed token file after a 401,
//!   one 401 per renewal, each retried by the SDK;
//! - with a trust store of the user's own in `JAVA_TOOL_OPTIONS`: woci leaves the JVM alone with
//!   one warning, and the program falls back to the same 401-and-re-read.
//!
//! The emulator's host is a private endpoint to woci (`resign_hosts`, as for any endpoint outside
//! OCI's domains). The JVM gets `-Duser.home` because it takes the home folder from the password
//! database, not `HOME`. Needs a JDK (17+) and Maven; without them the tests fail, naming what is
//! missing. The first build downloads the SDK from Maven Central into `~/.m2`.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use woci_emulator::{Config, Endpoint, Event};

const UPST_TTL: Duration = Duration::from_secs(5);
/// The control run's token.
const CONTROL_TTL: Duration = Duration::from_secs(8);
/// How long the program puts: a little over 3 token lifetimes.
const RUN_SECS: u64 = 16;
const PUT_INTERVAL_MS: u64 = 500;
/// Longer than any run takes: a stuck run is killed.
const RUN_LIMIT: Duration = Duration::from_secs(RUN_SECS + 60);
const INSTALL: &str =
    "install a JDK (17+) and Maven (Debian: apt-get install default-jdk-headless maven; .ci/run does)";

/// `$JAVA_HOME/bin/<tool>` when `JAVA_HOME` is set, else `<tool>` on PATH.
#[allow(clippy::disallowed_methods, reason = "the test harness reads its own environment")]
fn jdk_tool(tool: &str) -> PathBuf {
    match std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        Some(home) => Path::new(&home).join("bin").join(tool),
        None => PathBuf::from(tool),
    }
}

/// Fails the test, saying what to install, when `program --version` does not run.
fn require(program: &Path, what: &str) {
    match Command::new(program).arg("--version").stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{what} is missing: `{} --version` failed: {}; {INSTALL}",
            program.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("{what} is missing: cannot run `{}`: {e}; {INSTALL}", program.display()),
    }
}

/// Builds `tests/sdk/java` once per test binary (and one build at a time across processes) into
/// cargo's target folder; returns the program's class path.
fn program_classpath() -> String {
    static CLASSPATH: OnceLock<String> = OnceLock::new();
    CLASSPATH
        .get_or_init(|| {
            require(&jdk_tool("java"), "Java (a JDK 17+)");
            let mvn = PathBuf::from("mvn");
            require(&mvn, "Maven (`mvn`)");
            let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-java");
            std::fs::create_dir_all(&out_dir).unwrap();
            let lock = std::fs::File::create(out_dir.with_extension("lock")).unwrap();
            fs4::fs_std::FileExt::lock_exclusive(&lock).unwrap();
            let pom = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/java/pom.xml");
            let started = Instant::now();
            let mut cmd = Command::new(&mvn);
            scrub(&mut cmd);
            let out = cmd
                .args(["-B", "-q", "-f"])
                .arg(&pom)
                .arg(format!("-Dwoci.build.dir={}", out_dir.display()))
                .arg("compile")
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run mvn: {e}; {INSTALL}"));
            assert!(
                out.status.success(),
                "building tests/sdk/java failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!("tests/sdk/java built in {:.1}s", started.elapsed().as_secs_f64());
            let _ = fs4::fs_std::FileExt::unlock(&lock);
            format!("{}:{}", out_dir.join("classes").display(), out_dir.join("lib").join("*").display())
        })
        .clone()
}

const JVM_OPTION_VARS: [&str; 3] = ["JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS"];

/// Removes what this machine may export and a test must not inherit (proxies, JVM options).
fn scrub(cmd: &mut Command) {
    for k in SCRUBBED_ENV.iter().chain(&JVM_OPTION_VARS) {
        cmd.env_remove(k);
    }
}

/// An IdP profile whose UPSTs live 5 s, the emulator (TLS) as its private Object Storage
/// endpoint, and the emulator's CA in a PEM file (what woci trusts) and a Java trust store made
/// by `keytool` (what a JVM talking to the emulator directly needs).
struct Setup {
    w: World,
    ca_pem: PathBuf,
    ca_store: PathBuf,
    tmp: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        // Built first: a session must not age while Maven runs.
        program_classpath();
        let w = World::with_config(Config { tls: true, upst_ttl: UPST_TTL, ..Config::default() }).await;
        w.write_manager_ini(&[("resign_hosts", &format!("127.0.0.1:{}", w.emu.port()))]);
        w.seed_refresh_token();
        let ca_pem = w.home().join("emulator-ca.pem");
        std::fs::write(&ca_pem, w.emu.ca_pem().unwrap()).unwrap();
        let ca_store = w.home().join("emulator-ca.p12");
        let out = Command::new(jdk_tool("keytool"))
            .args(["-importcert", "-noprompt", "-alias", "emulator", "-storetype", "PKCS12", "-storepass", "changeit"])
            .arg("-file")
            .arg(&ca_pem)
            .arg("-keystore")
            .arg(&ca_store)
            .output()
            .unwrap_or_else(|e| panic!("Java's keytool is missing: {e}; {INSTALL}"));
        assert!(out.status.success(), "keytool failed: {}", String::from_utf8_lossy(&out.stderr));
        Setup { w, ca_pem, ca_store, tmp: tempfile::tempdir().unwrap() }
    }

    /// `java … woci.sdktest.Puts` for this profile and endpoint, putting for `secs`.
    fn program(&self, secs: u64, jvm_args: &[String]) -> Vec<String> {
        let mut v = vec![jdk_tool("java").display().to_string(), format!("-Duser.home={}", self.w.home().display())];
        v.extend(jvm_args.iter().cloned());
        v.extend(["-cp".to_owned(), program_classpath(), "woci.sdktest.Puts".to_owned(), self.w.profile.clone()]);
        v.extend([self.w.emu.os_endpoint(), self.w.emu.namespace(), "java".to_owned()]);
        v.extend([secs.to_string(), PUT_INTERVAL_MS.to_string()]);
        v
    }

    /// The JVM arguments of a program that trusts the emulator by itself (its own trust store).
    fn own_trust_store(&self) -> Vec<String> {
        vec![
            format!("-Djavax.net.ssl.trustStore={}", self.ca_store.display()),
            "-Djavax.net.ssl.trustStorePassword=changeit".to_owned(),
        ]
    }

    /// `woci <args>` with this HOME, the emulator's CA as the user's bundle and a private TMPDIR.
    fn woci(&self, args: &[String]) -> Command {
        let mut c = self.w.woci_std();
        for k in JVM_OPTION_VARS {
            c.env_remove(k);
        }
        c.env("REQUESTS_CA_BUNDLE", &self.ca_pem)
            .env("SSL_CERT_FILE", &self.ca_pem)
            .env("TMPDIR", self.tmp.path())
            .args(args)
            .stdin(Stdio::null());
        c
    }
}

/// What a run left: woci's or the program's output, its duration, and the emulator's events.
struct Run {
    out: Output,
    took: Duration,
    events: Vec<Event>,
}

impl Run {
    /// Runs `cmd` to its end, killing it after [`RUN_LIMIT`].
    async fn of(s: &Setup, mut cmd: Command) -> Run {
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("runs");
            let drain = |mut pipe: Box<dyn Read + Send>| {
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let _ = pipe.read_to_end(&mut buf);
                    buf
                })
            };
            let stdout = drain(Box::new(child.stdout.take().unwrap()));
            let stderr = drain(Box::new(child.stderr.take().unwrap()));
            let status = loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    break status;
                }
                if started.elapsed() > RUN_LIMIT {
                    // Not reaped yet, so the pid is still this child's.
                    let _ = child.kill();
                    break child.wait().expect("wait");
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
        })
        .await
        .unwrap();
        assert!(started.elapsed() < RUN_LIMIT, "killed after {RUN_LIMIT:?}");
        Run { out, took: started.elapsed(), events: s.w.emu.events() }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn explain(&self) -> String {
        format!("status {}\nstdout:\n{}\nstderr:\n{}", self.out.status, self.stdout(), self.stderr())
    }

    /// The program's successful puts (its `put N ok` lines).
    fn puts_ok(&self) -> usize {
        self.stdout().lines().filter(|l| l.starts_with("put ") && l.split_whitespace().nth(2) == Some("ok")).count()
    }

    fn object_storage(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().filter(|e| e.endpoint == Endpoint::ObjectStorage)
    }

    fn unauthorized(&self) -> Vec<&Event> {
        self.events.iter().filter(|e| e.status == 401).collect()
    }

    /// When the first UPST was minted (the first token exchange), epoch ms.
    fn first_token_ms(&self) -> u64 {
        self.events
            .iter()
            .find(|e| e.endpoint == Endpoint::Exchange && e.status == 200)
            .expect("a token exchange")
            .time_ms
    }

    /// Token lifetimes from the first UPST's minting to the last accepted put.
    fn lifetimes(&self) -> f64 {
        let last = self.object_storage().filter(|e| e.status == 200).map(|e| e.time_ms).max().unwrap_or(0);
        (last.saturating_sub(self.first_token_ms())) as f64 / UPST_TTL.as_millis() as f64
    }

    /// Distinct UPSTs that signed accepted puts.
    fn tokens_used(&self) -> usize {
        let mut jtis: Vec<_> =
            self.object_storage().filter(|e| e.status == 200).filter_map(|e| e.jti.clone()).collect();
        jtis.sort();
        jtis.dedup();
        jtis.len()
    }

    fn figures(&self, name: &str) {
        eprintln!(
            "{name}: {:.1}s, {} puts ok, {:.2} token lifetimes, {} UPSTs used, {} × 401",
            self.took.as_secs_f64(),
            self.puts_ok(),
            self.lifetimes(),
            self.tokens_used(),
            self.unauthorized().len()
        );
    }
}

/// A JWT's `exp` (epoch seconds).
fn token_exp(jwt: &str) -> u64 {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    let claims: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["exp"].as_u64().expect("exp")
}

fn assert_tmpdir_empty(s: &Setup) {
    let left = tmpdir_leftovers(s.tmp.path());
    assert!(left.is_empty(), "woci left files in TMPDIR: {left:?}");
}

/// The program outlives more than 3 UPSTs through the re-signing proxy without a single 401: the
/// SDK signs every request with the token it read at start (it re-reads only after a 401), and
/// the proxy swaps each one for the current token. woci reaches the SDK's Jersey/Apache client
/// through `JDK_JAVA_OPTIONS` (an argument file with Jersey's proxy properties and a trust store
/// holding the per-run CA); the program and its command line are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_java_sdk_outlives_three_tokens_through_the_proxy_without_a_401() {
    let s = Setup::new().await;
    let mut args: Vec<String> = ["--auto-refresh", "--exec", "--"].map(String::from).to_vec();
    args.extend(s.program(RUN_SECS, &[]));
    let run = Run::of(&s, s.woci(&args)).await;
    run.figures("through the proxy");
    assert!(run.out.status.success(), "the program must live through every renewal:\n{}", run.explain());
    assert!(run.unauthorized().is_empty(), "no 401 at all: {:?}\n{}", run.unauthorized(), run.explain());
    assert!(run.lifetimes() >= 3.0, "more than 3 token lifetimes ({:.2})\n{}", run.lifetimes(), run.explain());
    assert_eq!(run.object_storage().count(), run.puts_ok(), "one request per put, none retried");
    assert!(run.puts_ok() >= 8, "{}", run.explain());
    // Without a 401 the SDK never re-read the token file, yet the running program's requests were
    // signed with renewed tokens: the proxy swapped them.
    assert!(run.tokens_used() >= 4, "renewed tokens reached the running program ({})", run.tokens_used());
    let stderr = run.stderr();
    assert!(stderr.contains("NOTE: Picked up JDK_JAVA_OPTIONS: \"@"), "{stderr}");
    assert!(!stderr.contains("proxy.password"), "the proxy secret stays in the argument file:\n{stderr}");
    // The SDK's own session refresher (at its start) is answered by the proxy with the session
    // woci keeps, never sent to the OCI auth service: no warning about reaching it, no error.
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("woci: warning")).collect();
    assert!(warnings.is_empty(), "{stderr}");
    assert!(!stderr.contains("Unable to refresh session token"), "{stderr}");
    assert_tmpdir_empty(&s);
}

/// The control: the same program without woci dies at the first expiry — the SDK re-reads the
/// token file after the 401, finds the same token and gives up — long before its course.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_woci_the_java_sdk_dies_at_the_first_expiry() {
    let s = Setup::new().await;
    // Its one token lives a little longer, so that a slow JVM start on a busy machine still sees
    // it valid.
    s.w.emu.set_upst_ttl(CONTROL_TTL);
    let login = Run::of(&s, s.woci(&["session".into(), "refresh".into()])).await;
    assert!(login.out.status.success(), "{}", login.explain());
    let program = s.program(RUN_SECS, &s.own_trust_store());
    let mut cmd = Command::new(&program[0]);
    scrub(&mut cmd);
    cmd.args(&program[1..]).env("HOME", s.w.home()).stdin(Stdio::null());
    let run = Run::of(&s, cmd).await;
    eprintln!("control, without woci: {:.1}s, {} puts ok", run.took.as_secs_f64(), run.puts_ok());
    assert_eq!(run.out.status.code(), Some(1), "the program must fail:\n{}", run.explain());
    assert!(run.stdout().contains("failed 401 NotAuthenticated"), "{}", run.explain());
    assert!(run.puts_ok() >= 1, "it worked while the token was valid:\n{}", run.explain());
    let first_401 = run.unauthorized().first().map(|e| e.time_ms).expect("a 401");
    let exp_ms = token_exp(&s.w.read(&s.w.token_path())) * 1000;
    eprintln!(
        "control: first 401 {:.1}s after the token was minted, {:.1}s after it expired",
        (first_401 - run.first_token_ms()) as f64 / 1000.0,
        (first_401 - exp_ms) as f64 / 1000.0
    );
    assert!(run.unauthorized().iter().all(|e| e.reason.as_deref() == Some("upst_expired")), "{:?}", run.unauthorized());
    assert!(
        (exp_ms..exp_ms + CONTROL_TTL.as_millis() as u64).contains(&first_401),
        "died at the first expiry, not later: 401 at {first_401}, token expired at {exp_ms}"
    );
    assert!(run.took < Duration::from_secs(RUN_SECS), "it did not run its course: {:?}", run.took);
}

/// `--no-resign-proxy`: woci renews the token file and the SDK's session-token provider re-reads
/// it after a 401, retrying the request: more than 3 lifetimes, one 401 per renewal the program
/// noticed, each followed by the same put succeeding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_proxy_the_java_sdk_lives_on_one_401_per_renewal() {
    let s = Setup::new().await;
    let mut args: Vec<String> = ["--auto-refresh", "--no-resign-proxy", "--exec", "--"].map(String::from).to_vec();
    args.extend(s.program(RUN_SECS, &s.own_trust_store()));
    let run = Run::of(&s, s.woci(&args)).await;
    run.figures("--no-resign-proxy");
    assert!(run.out.status.success(), "{}", run.explain());
    assert!(run.lifetimes() >= 3.0, "more than 3 token lifetimes ({:.2})", run.lifetimes());
    assert_retried_after_each_401(&run);
    assert!(!run.stderr().contains("JDK_JAVA_OPTIONS"), "no proxy, no Java settings:\n{}", run.stderr());
}

/// A 401 then the same put succeeding, for every 401; at least one, and not more than one per
/// token the program outlived.
fn assert_retried_after_each_401(run: &Run) {
    let os: Vec<&Event> = run.object_storage().collect();
    let rejected = run.unauthorized();
    assert!(!rejected.is_empty(), "the program outlived its token, so the SDK must have met a 401");
    assert!(
        rejected.len() as f64 <= run.lifetimes().ceil() + 1.0,
        "{} × 401 in {:.2} lifetimes",
        rejected.len(),
        run.lifetimes()
    );
    for (i, e) in os.iter().enumerate().filter(|(_, e)| e.status == 401) {
        let next = os.get(i + 1).expect("a retry after the 401");
        assert_eq!((next.path.as_str(), next.status), (e.path.as_str(), 200), "the SDK retried the same put");
    }
    assert_eq!(run.puts_ok(), os.len() - rejected.len());
}

/// A user who set a trust store in `JAVA_TOOL_OPTIONS` keeps it: woci says so in one warning and
/// does not point the JVM at the proxy; the SDK then lives as under `--no-resign-proxy`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trust_store_the_user_chose_is_kept_with_one_warning() {
    let s = Setup::new().await;
    let mut args: Vec<String> = ["--auto-refresh", "--exec", "--"].map(String::from).to_vec();
    args.extend(s.program(11, &[]));
    let mut cmd = s.woci(&args);
    cmd.env("JAVA_TOOL_OPTIONS", s.own_trust_store().join(" "));
    let run = Run::of(&s, cmd).await;
    run.figures("user's trust store");
    assert!(run.out.status.success(), "{}", run.explain());
    let stderr = run.stderr();
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("woci: warning")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("`JAVA_TOOL_OPTIONS` sets `javax.net.ssl.trustStore`"), "{stderr}");
    assert!(!stderr.contains("JDK_JAVA_OPTIONS"), "{stderr}");
    assert!(run.lifetimes() >= 2.0, "{:.2}", run.lifetimes());
    assert_retried_after_each_401(&run);
    assert_tmpdir_empty(&s);
}
