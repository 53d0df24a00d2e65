//! Shared harness for the integration tests: a temporary HOME, the emulator on 127.0.0.1, a
//! manager INI pointing at it, a stand-in `oci` that records its argv and environment, and a
//! `woci` command with a clean, explicit environment (this machine exports CA and proxy variables
//! that must not leak into the tests). Every test that runs `woci` takes the binary from
//! [`woci_bin`].
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tempfile::TempDir;
use woci_emulator::{Config, Emulator};

pub mod peers;

/// Variables removed from every child so the machine's settings cannot change a test's outcome.
pub const SCRUBBED_ENV: &[&str] = &[
    "OCI_CLI_PROFILE",
    "OCI_CLI_CONFIG_FILE",
    "OCI_CLI_REGION",
    "OCI_CLI_AUTH",
    "OCI_CLI_CERT_BUNDLE",
    "WOCI_MANAGER_CONFIG",
    "WOCI_OCI_COMMAND",
    "WOCI_AUTH_ENDPOINT",
    "WOCI_RESIGN_HOSTS",
    "BROWSER",
    "RUST_LOG",
    // The proxy's folder goes there when set; tests give each run its own TMPDIR instead.
    "XDG_RUNTIME_DIR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "CURL_CA_BUNDLE",
    "OCI_CLI_RC_FILE",
    "NODE_OPTIONS",
];

/// Makes `path` 0600.
pub fn set_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// The system CA bundle, set explicitly for every child.
pub const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

pub struct World {
    pub home: TempDir,
    pub emu: Emulator,
    pub profile: String,
    pub cfg: Config,
    pub fake_oci: PathBuf,
    pub oci_out: PathBuf,
    pub browser: PathBuf,
}

impl World {
    /// Emulator (plain HTTP) + HOME + manager INI for profile `P`.
    pub async fn new() -> World {
        Self::with_config(Config::default()).await
    }

    pub async fn with_config(cfg: Config) -> World {
        let emu = Emulator::start(cfg.clone()).await.expect("emulator starts");
        let home = tempfile::tempdir().unwrap();
        let bin = home.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let oci_out = home.path().join("oci-argv");
        let fake_oci = bin.join("oci");
        write_exec(
            &fake_oci,
            r#"#!/bin/sh
out="${FAKE_OCI_OUT:?}"
: > "$out"
for a in "$@"; do printf '%s\n' "$a" >> "$out"; done
printf 'ENV HTTPS_PROXY=%s\n' "${HTTPS_PROXY:-}" >> "$out"
printf 'ENV OCI_CLI_PROFILE=%s\n' "${OCI_CLI_PROFILE:-}" >> "$out"
exit "${FAKE_OCI_EXIT:-0}"
"#,
        );
        // A headless "browser": follows the authorize redirect to woci's loopback callback.
        let browser = bin.join("browser");
        write_exec(&browser, "#!/bin/sh\nexec curl -sfL -o /dev/null \"$1\"\n");
        let w = World { home, emu, profile: "P".into(), cfg, fake_oci, oci_out, browser };
        w.write_manager_ini(&[]);
        w
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn oci_dir(&self) -> PathBuf {
        self.home().join(".oci")
    }

    pub fn session_dir(&self) -> PathBuf {
        self.oci_dir().join("sessions").join(&self.profile)
    }

    pub fn token_path(&self) -> PathBuf {
        self.session_dir().join("token")
    }

    pub fn config_path(&self) -> PathBuf {
        self.oci_dir().join("config")
    }

    pub fn manager_ini_path(&self) -> PathBuf {
        self.oci_dir().join("woci_manager.ini")
    }

    /// Writes `~/.oci/woci_manager.ini` for the profile, with `overrides` (key, value) applied.
    pub fn write_manager_ini(&self, overrides: &[(&str, &str)]) {
        let mut keys: Vec<(String, String)> = vec![
            ("authz_base_url".into(), self.emu.authorize_url().to_string()),
            ("token_url".into(), self.emu.token_url().to_string()),
            ("token_exchange_url".into(), self.emu.exchange_url().to_string()),
            ("auth_client_id".into(), self.cfg.idp_client_id.clone()),
            ("client_id".into(), self.cfg.exchange_client_id.clone()),
            ("client_secret".into(), self.cfg.exchange_client_secret.clone()),
            ("scope".into(), "openid offline_access".into()),
            ("redirect_port".into(), free_port().to_string()),
            ("region".into(), "us-ashburn-1".into()),
        ];
        if let Some(s) = &self.cfg.idp_client_secret {
            keys.push(("auth_client_secret".into(), s.clone()));
        }
        for (k, v) in overrides {
            keys.retain(|(key, _)| key != k);
            if !v.is_empty() {
                keys.push(((*k).into(), (*v).into()));
            }
        }
        let mut ini = String::from("[COMMON]\nlog_level = INFO\n\n");
        ini.push_str(&format!("[{}]\n", self.profile));
        for (k, v) in keys {
            ini.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::create_dir_all(self.oci_dir()).unwrap();
        std::fs::write(self.manager_ini_path(), ini).unwrap();
        // It holds client secrets: private, as the README says (a readable one gets a warning).
        set_private(&self.manager_ini_path());
    }

    /// A `woci` command with HOME, the stand-in `oci` and a clean environment.
    pub fn woci(&self) -> Command {
        let mut c = Command::from_std(self.woci_std());
        c.timeout(Duration::from_secs(120));
        c
    }

    /// The same `woci` as a plain [`std::process::Command`], for tests that spawn it and signal
    /// it while it runs.
    pub fn woci_std(&self) -> std::process::Command {
        self.woci_std_at(&woci_bin())
    }

    /// [`World::woci`] running the binary at `bin` (see [`test_build_woci_bin`]).
    pub fn woci_at(&self, bin: &Path) -> Command {
        let mut c = Command::from_std(self.woci_std_at(bin));
        c.timeout(Duration::from_secs(120));
        c
    }

    /// `program` (woci, or a shell that runs it) with the world's HOME, stand-in `oci` and a
    /// clean environment.
    pub fn woci_std_at(&self, program: &Path) -> std::process::Command {
        let mut c = std::process::Command::new(program);
        for k in SCRUBBED_ENV {
            c.env_remove(k);
        }
        c.env("HOME", self.home())
            .env("OCI_CLI_PROFILE", &self.profile)
            .env("WOCI_OCI_COMMAND", &self.fake_oci)
            .env("FAKE_OCI_OUT", &self.oci_out)
            .env("REQUESTS_CA_BUNDLE", SYSTEM_CA)
            .env("SSL_CERT_FILE", SYSTEM_CA);
        // No controlling terminal, as in CI, even when the tests run at one: woci shows a login or
        // a passphrase prompt on the terminal it finds. (A test that puts woci in a process group
        // of its own keeps the terminal: setsid(2) then fails, harmlessly.)
        // SAFETY: setsid(2) is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, || {
                libc::setsid();
                Ok(())
            });
        }
        c
    }

    /// `woci ARGS` (a shell-quoted command line after the program) in a terminal: a pty from
    /// util-linux `script`, stdout and stderr piped, the world's HOME and profile. `script` runs
    /// `$SHELL -c`: bash, which execs the one command, so woci leads the session as under
    /// `ssh -t host woci …`, whatever the runner's SHELL (unset, dash stays the leader and dies
    /// of a Ctrl-C, hanging the group up).
    pub fn woci_in_a_terminal(&self, args: &str) -> std::process::Command {
        self.in_a_terminal(&format!("'{}' {args}", woci_bin().display()))
    }

    /// The shell command `line` in a terminal, as [`World::woci_in_a_terminal`] runs woci.
    pub fn in_a_terminal(&self, line: &str) -> std::process::Command {
        let mut c = std::process::Command::new("script");
        for k in SCRUBBED_ENV {
            c.env_remove(k);
        }
        c.env("HOME", self.home())
            .env("OCI_CLI_PROFILE", &self.profile)
            .env("REQUESTS_CA_BUNDLE", SYSTEM_CA)
            .env("SSL_CERT_FILE", SYSTEM_CA)
            .env("SHELL", "/bin/bash")
            .args(["-qefc", line, "/dev/null"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    }

    /// Like [`World::woci`] with the headless browser enabled.
    pub fn woci_with_browser(&self) -> Command {
        let mut c = self.woci();
        c.env("BROWSER", &self.browser);
        c
    }

    /// The argv the stand-in `oci` received (without the ENV lines).
    pub fn oci_argv(&self) -> Vec<String> {
        std::fs::read_to_string(&self.oci_out)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("ENV "))
            .map(str::to_owned)
            .collect()
    }

    /// Seeds a refresh token issued by the emulator; returns it.
    pub fn seed_refresh_token(&self) -> String {
        let rt = self.emu.issue_refresh_token();
        std::fs::create_dir_all(self.session_dir()).unwrap();
        std::fs::write(self.session_dir().join("refresh_token"), &rt).unwrap();
        rt
    }

    /// Writes a syntactically valid UPST expiring `exp_in` seconds from now (negative = past), with
    /// what a renewal leaves beside it: the session key pair and, when there is no OCI config
    /// yet, the profile's entries in it.
    pub fn seed_token(&self, exp_in: i64) -> String {
        std::fs::create_dir_all(self.session_dir()).unwrap();
        let key_path = self.session_dir().join("oci_api_key.pem");
        let pem = include_str!("../fixtures/test_key.pem");
        std::fs::write(&key_path, pem).unwrap();
        #[cfg(unix)]
        std::fs::set_permissions(&key_path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        if !self.config_path().exists() {
            let key = woci::keys::KeyPair::from_pem(pem).unwrap();
            std::fs::write(
                self.config_path(),
                format!(
                    "[{}]\nkey_file={}\nsecurity_token_file={}\nfingerprint={}\n",
                    self.profile,
                    key_path.display(),
                    self.token_path().display(),
                    key.fingerprint()
                ),
            )
            .unwrap();
        }
        let now = unix_now();
        let token = fake_jwt(&format!(
            r#"{{"sub":"ocid1.user.oc1..seed","tenant":"ocid1.tenancy.oc1..seed","iat":{},"exp":{},"jti":"seed"}}"#,
            now - 3000,
            now + exp_in
        ));
        std::fs::create_dir_all(self.session_dir()).unwrap();
        std::fs::write(self.token_path(), &token).unwrap();
        token
    }

    /// Removes every identity-provider key from the manager INI: the profile is renewed through
    /// OCI's session refresh, like one made by `oci session authenticate`.
    pub fn drop_idp_settings(&self) {
        self.write_manager_ini(&[
            ("authz_base_url", ""),
            ("token_url", ""),
            ("token_exchange_url", ""),
            ("auth_client_id", ""),
            ("auth_client_secret", ""),
            ("client_id", ""),
            ("client_secret", ""),
            ("scope", ""),
            ("redirect_port", ""),
        ]);
    }

    /// An `oci session authenticate`-style profile: no IdP, a key pair in the session folder, a
    /// UPST from the emulator bound to it (valid for `ttl`), and the config entries `oci` needs.
    pub fn seed_session_profile(&self, ttl: Duration) -> (woci::keys::KeyPair, String) {
        self.drop_idp_settings();
        let key = woci::keys::KeyPair::generate().unwrap();
        std::fs::create_dir_all(self.session_dir()).unwrap();
        let key_path = self.session_dir().join("oci_api_key.pem");
        std::fs::write(&key_path, key.private_pem().unwrap().as_bytes()).unwrap();
        let token = self.emu.issue_upst(&key.public_pem(), ttl);
        std::fs::write(self.token_path(), &token).unwrap();
        std::fs::write(
            self.config_path(),
            format!(
                "[{}]\nregion=us-ashburn-1\nkey_file={}\nsecurity_token_file={}\nfingerprint={}\ntenancy={}\n",
                self.profile,
                key_path.display(),
                self.token_path().display(),
                key.fingerprint(),
                self.cfg.tenancy_ocid
            ),
        )
        .unwrap();
        (key, token)
    }

    pub fn read(&self, p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }
}

/// The `woci` binary the tests run: the file `WOCI_BIN` names when it is set (`scripts/test` sets
/// it to the release binary, built as users get it: `cargo build --release --locked -p woci`,
/// without the features the dev-dependencies turn on), else the binary of this `cargo test`
/// build. A `WOCI_BIN` that is empty or not an executable file fails the test: it never falls
/// back to another binary.
#[allow(clippy::disallowed_methods, reason = "the test harness reads its own environment")]
pub fn woci_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let Some(v) = std::env::var_os("WOCI_BIN") else {
            return test_build_woci_bin();
        };
        assert!(!v.is_empty(), "WOCI_BIN is set but empty: name the woci binary to test, or unset it");
        let p = PathBuf::from(&v);
        let meta = std::fs::metadata(&p).unwrap_or_else(|e| panic!("WOCI_BIN=`{}` cannot be used: {e}", p.display()));
        use std::os::unix::fs::PermissionsExt;
        assert!(
            meta.is_file() && meta.permissions().mode() & 0o111 != 0,
            "WOCI_BIN=`{}` is not an executable file",
            p.display()
        );
        std::path::absolute(&p).unwrap()
    })
    .clone()
}

/// The `woci` of this `cargo test` build, whatever `WOCI_BIN` says. Only for suites that need
/// what release binaries never have: the test-only `failpoints` feature (`tests/crash.rs`).
pub fn test_build_woci_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_woci"))
}

pub fn fake_jwt(payload: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    format!("eyJhbGciOiJSUzI1NiJ9.{}.c2lnbmF0dXJl", URL_SAFE_NO_PAD.encode(payload))
}

pub fn write_exec(path: &Path, content: &str) {
    std::fs::write(path, content).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Lowercase hex SHA-256, to compare uploaded and downloaded objects.
pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

/// [`sha256_hex`] of a file's contents.
pub fn sha256_file(p: &Path) -> String {
    sha256_hex(&std::fs::read(p).unwrap())
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Runs a blocking assert_cmd invocation off the async runtime (the emulator keeps serving).
pub async fn run(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("woci runs")).await.unwrap()
}

/// Asserts none of `secrets` appears in `text`.
pub fn assert_no_secrets(text: &str, secrets: &[&str]) {
    for s in secrets {
        if s.len() >= 8 {
            assert!(!text.contains(s), "a secret leaked into the output:\n{text}");
        }
    }
}

/// Seconds since the Unix epoch, from the real clock (tests run against real processes).
#[allow(clippy::disallowed_methods, reason = "tests compare against the real clock of the processes they run")]
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Asserts that `bytes` (a process's stderr or stdout) holds nothing a terminal acts on: no C0
/// control but newline, no DEL, no C1 control, no bidi or other invisible format character.
/// Written independently of woci's own `terminal` module so that it checks it.
pub fn assert_terminal_safe(bytes: &[u8], what: &str) {
    let text = String::from_utf8_lossy(bytes);
    let format_chars = [
        '\u{00ad}', '\u{061c}', '\u{180e}', '\u{200b}', '\u{200c}', '\u{200d}', '\u{200e}', '\u{200f}', '\u{202a}',
        '\u{202b}', '\u{202c}', '\u{202d}', '\u{202e}', '\u{2060}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
        '\u{2028}', '\u{2029}', '\u{feff}',
    ];
    for (i, c) in text.char_indices() {
        let bad = (c.is_control() && c != '\n') || format_chars.contains(&c);
        assert!(!bad, "{what} holds U+{:04X} at byte {i}:\n{}", c as u32, text.escape_debug());
    }
}

/// The private folder under a TMPDIR that woci's per-run proxy folders go in (kept after a run,
/// so that no other user can take its name).
pub fn proxy_parent(tmp: &Path) -> PathBuf {
    tmp.join(format!("woci-proxy-{}", unsafe { libc::geteuid() }))
}

/// What woci left in a TMPDIR after its runs ended: everything but the empty [`proxy_parent`].
pub fn tmpdir_leftovers(tmp: &Path) -> Vec<PathBuf> {
    let parent = proxy_parent(tmp);
    let inside = std::fs::read_dir(&parent).into_iter().flatten().flatten().map(|e| e.path());
    std::fs::read_dir(tmp).unwrap().flatten().map(|e| e.path()).filter(|p| *p != parent).chain(inside).collect()
}
