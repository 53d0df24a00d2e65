//! Container mode end to end: woci runs the real `oci` CLI (PyPI `oci-cli`, `.e2e/venv`) "from a
//! container image" against the emulator over TLS, with short-lived UPSTs.
//!
//! No container engine runs on the CI machine, so the runtime is `tests/container/fake-runtime`,
//! installed as `docker` first on `PATH`: a `docker run` stand-in on Linux namespaces that gives the
//! container a private root (only the "image" and the `-v` volumes, at their container paths), a
//! private network unless `--network host`, and only the `-e` environment (see the script). It
//! fails loudly when the oci CLI venv is missing; nothing here skips.
//!
//! The emulator's CA stands for the public roots a real image has: it is mounted into the container
//! through `oci_container_args` (`-v …:/certs/emulator-ca.pem:ro -e REQUESTS_CA_BUNDLE=…`), and
//! `resign_hosts` names the emulator's `127.0.0.1:<port>` (real OCI hosts need neither).

mod common;

use common::peers;
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use woci_emulator::Config;

const MIB: usize = 1024 * 1024;
const IMAGE: &str = "ghcr.io/oracle/oci-cli:latest";

struct Stand {
    w: World,
    /// The host folder mounted at `/backup` (`oci_container_args`).
    backup: PathBuf,
    /// The folder woci runs in (mounted at its own path, the container's workdir).
    work: PathBuf,
    /// `docker` on PATH: the stand-in runtime.
    bin: PathBuf,
    /// Every argv the stand-in received, one line each.
    runtime_log: PathBuf,
    data_hash: String,
}

async fn stand(upst_ttl: Duration, part_delay: Duration, size: usize) -> Stand {
    let runtime = peers::repo_root().join("tests/container/fake-runtime");
    let _ = peers::oci_cli(); // fails loudly when the venv the "image" is made of is missing
    let cfg = Config { tls: true, upst_ttl, part_delay, ..Config::default() };
    let w = World::with_config(cfg).await;
    let home = w.home().to_owned();
    let ca = home.join("emulator-ca.pem");
    std::fs::write(&ca, w.emu.ca_pem().expect("TLS emulator has a CA")).unwrap();
    let backup = home.join("backup");
    let work = home.join("work");
    let bin = home.join("container-bin");
    for d in [&backup, &work, &bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::os::unix::fs::symlink(&runtime, bin.join("docker")).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(backup.join("blob.bin"), &bytes).unwrap();
    let s = Stand { backup, work, bin, runtime_log: home.join("runtime.log"), data_hash: sha256_hex(&bytes), w };
    s.write_ini(&[]);
    s
}

impl Stand {
    fn hostport(&self) -> String {
        self.w.emu.os_endpoint().trim_start_matches("https://").trim_end_matches('/').to_owned()
    }

    fn ca(&self) -> PathBuf {
        self.w.home().join("emulator-ca.pem")
    }

    /// The manager INI: the emulator's IdP profile, container mode, plus `extra`.
    /// `oci_container_args`: the backup volume and the emulator's CA.
    fn user_args(&self) -> String {
        format!(
            "-v {}:/backup -v {}:/certs/emulator-ca.pem:ro -e REQUESTS_CA_BUNDLE=/certs/emulator-ca.pem",
            self.backup.display(),
            self.ca().display()
        )
    }

    fn write_ini(&self, extra: &[(&str, &str)]) {
        let mut keys = vec![
            ("oci_container_image", IMAGE.to_owned()),
            ("oci_container_args", self.user_args()),
            ("resign_hosts", self.hostport()),
        ];
        for (k, v) in extra {
            keys.retain(|(key, _)| key != k);
            keys.push((k, (*v).to_owned()));
        }
        let refs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.w.write_manager_ini(&refs);
    }

    /// `woci` as a user runs it: the stand-in as `docker` on PATH, no `WOCI_OCI_COMMAND`, in the
    /// work folder; the emulator's CA is the host's extra trust.
    #[allow(clippy::disallowed_methods, reason = "the child gets the test's PATH")]
    fn woci_std(&self) -> std::process::Command {
        let mut c = self.w.woci_std();
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default());
        c.env_remove("WOCI_OCI_COMMAND")
            .env("PATH", path)
            .env("REQUESTS_CA_BUNDLE", self.ca())
            .env("SSL_CERT_FILE", self.ca())
            .env("OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING", "True")
            .env("FAKE_RUNTIME_LOG", &self.runtime_log)
            .current_dir(&self.work);
        c
    }

    fn woci(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::from_std(self.woci_std());
        c.timeout(Duration::from_secs(600));
        c
    }

    fn os_args(&self, verb: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = ["os", "object"].iter().chain(verb).map(|s| s.to_string()).collect();
        v.extend([
            "--endpoint".into(),
            self.w.emu.os_endpoint(),
            "--namespace".into(),
            self.w.cfg.namespace.clone(),
            "--bucket-name".into(),
            "backups".into(),
        ]);
        v
    }

    /// The reporters' upload, with the file given by its container path.
    fn put_args(&self, name: &str) -> Vec<String> {
        let mut v = self.os_args(&["put"]);
        v.extend(
            [
                "--file",
                "/backup/blob.bin",
                "--name",
                name,
                "--no-overwrite",
                "--part-size",
                "1",
                "--parallel-upload-count",
                "3",
                "--verify-checksum",
            ]
            .map(String::from),
        );
        v
    }

    async fn download_hash(&self, name: &str) -> String {
        let mut args = self.os_args(&["get"]);
        args.extend(["--name".into(), name.into(), "--file".into(), format!("/backup/{name}.down")]);
        // Through the proxy too: the container's own network does not reach the host's loopback.
        let out = run({
            let mut c = self.woci();
            c.arg("--auto-refresh").args(&args);
            c
        })
        .await;
        assert!(out.status.success(), "download in the container failed: {}", stderr(&out));
        sha256_file(&self.backup.join(format!("{name}.down")))
    }

    fn runtime_argvs(&self) -> String {
        std::fs::read_to_string(&self.runtime_log).unwrap_or_default()
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn config_value(config: &str, key: &str) -> Option<String> {
    config.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// The heart of the issue: the reporters' multipart upload, `oci` in the container, file given by
/// its container path, outlives more than five 5-second tokens through `--auto-refresh` with no 401
/// and downloads back identical; the proxy secret never appears in the runtime's argv.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn container_upload_outlives_five_tokens_through_auto_refresh() {
    let ttl = Duration::from_secs(5);
    let s = stand(ttl, Duration::from_secs(3), 30 * MIB).await;
    s.w.seed_refresh_token();
    let started = Instant::now();
    let out = run({
        let mut c = s.woci();
        c.arg("--auto-refresh").args(s.put_args("big"));
        c
    })
    .await;
    let elapsed = started.elapsed();
    assert!(out.status.success(), "upload failed: {}\nruntime argv: {}", stderr(&out), s.runtime_argvs());
    assert!(elapsed > ttl * 5, "the upload must outlive 5 token lifetimes to prove anything (took {elapsed:?})");
    let st = s.w.emu.stats();
    assert_eq!(st.unauthorized, 0, "no request may be refused: {:?}", st.unauthorized_by_reason);
    assert!(st.os_jtis.len() >= 3, "requests were signed with {} tokens", st.os_jtis.len());
    assert!(st.parts_uploaded >= 30, "{} parts", st.parts_uploaded);
    eprintln!("container upload took {elapsed:?}, signed with {} tokens", st.os_jtis.len());

    let argv = s.runtime_argvs();
    for expected in ["'--network', 'host'", "'-e', 'HTTPS_PROXY'", "'-e', 'HOME=/oracle'", ":/oracle/.oci'", IMAGE] {
        assert!(argv.contains(expected), "runtime argv lacks {expected}: {argv}");
    }
    assert!(!argv.contains("woci:"), "the proxy credentials must not be in the runtime's argv: {argv}");
    assert!(argv.contains(":ro'") && argv.contains("'-e', 'REQUESTS_CA_BUNDLE'"), "CA bundle mounted: {argv}");

    // Files woci wrote are recorded in `~/.oci/…` form, which `oci` expands on both sides.
    let config = s.w.read(&s.w.config_path());
    assert_eq!(config_value(&config, "key_file").as_deref(), Some("~/.oci/sessions/P/oci_api_key.pem"), "{config}");
    assert_eq!(config_value(&config, "security_token_file").as_deref(), Some("~/.oci/sessions/P/token"));

    assert_eq!(s.download_hash("big").await, s.data_hash);
    assert_no_secrets(&stderr(&out), &[&s.w.read(&s.w.token_path()), &s.w.cfg.exchange_client_secret]);
}

/// At a terminal with stdout redirected (`woci os ns get > ns.json`): no `-t`, whose
/// pseudo-terminal would mix the container's stderr into the file and end its lines with `\r\n`
/// (review of round 105).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redirected_stdout_at_a_terminal_gets_no_tty() {
    let s = stand(Duration::from_secs(3600), Duration::ZERO, MIB).await;
    s.w.seed_refresh_token();
    s.write_ini(&[("oci_container_args", &format!("--network host {}", s.user_args()))]);
    let woci = s.woci_std();
    let mut c = std::process::Command::new("script");
    for (k, v) in woci.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let file = s.work.join("ns.json");
    let line = format!(
        "'{}' os ns get --endpoint '{}' > '{}'",
        woci.get_program().to_string_lossy(),
        s.w.emu.os_endpoint(),
        file.display()
    );
    c.env("SHELL", "/bin/sh").current_dir(&s.work).args(["-qefc", &line, "/dev/null"]);
    let out = tokio::task::spawn_blocking(move || c.output().unwrap()).await.unwrap();
    assert!(out.status.success(), "{}\nruntime argv: {}", String::from_utf8_lossy(&out.stdout), s.runtime_argvs());
    let argv = s.runtime_argvs();
    assert!(!argv.contains("'-t'"), "{argv}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(json["data"], s.w.cfg.namespace.as_str());
}

/// A plain call (no `--auto-refresh`) after a renewal: woci renews on the host, then `oci` in the
/// container reads the new token through the `~/.oci/…` paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_call_in_the_container_after_a_renewal() {
    let s = stand(Duration::from_secs(3600), Duration::ZERO, MIB).await;
    s.w.seed_refresh_token();
    // The emulator listens on the host's loopback, which only host networking reaches (a real
    // OCI endpoint is reached through the runtime's default network).
    s.write_ini(&[("oci_container_args", &format!("--network host {}", s.user_args()))]);
    let out = run({
        let mut c = s.woci();
        c.args(["os", "ns", "get", "--endpoint", &s.w.emu.os_endpoint()]);
        c
    })
    .await;
    assert!(out.status.success(), "{}\nruntime argv: {}", stderr(&out), s.runtime_argvs());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&s.w.cfg.namespace));
    let st = s.w.emu.stats();
    assert_eq!((st.refresh_grants, st.exchanges), (1, 1));
    let argv = s.runtime_argvs();
    assert_eq!(argv.matches("--network").count(), 1, "only the user's own: {argv}");
    let work = format!("'-w', '{}'", s.work.display());
    assert!(argv.contains(&work), "the current folder is the workdir: {argv}");

    // Exit codes pass through the container: a missing object is oci's exit 1.
    let mut args = s.os_args(&["head"]);
    args.extend(["--name".into(), "does-not-exist".into()]);
    let out = run({
        let mut c = s.woci();
        c.args(&args);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // Paths outside the current folder, as a user gives them to `oci`: an upload from `../` and a
    // download to an absolute path in another folder (which, unmounted, was written inside the
    // container and removed with it while the call exited 0).
    let home = s.w.home().to_owned();
    std::fs::write(home.join("outside.bin"), b"from outside the work folder").unwrap();
    std::fs::create_dir(home.join("elsewhere")).unwrap();
    let got = home.join("elsewhere/got.bin");
    for (verb, file) in [("put", "../outside.bin".to_owned()), ("get", got.display().to_string())] {
        let mut args = s.os_args(&[verb]);
        args.extend(["--name".into(), "outside".into(), "--file".into(), file]);
        let out = run({
            let mut c = s.woci();
            c.args(&args);
            c
        })
        .await;
        assert!(out.status.success(), "{verb}: {}\nruntime argv: {}", stderr(&out), s.runtime_argvs());
    }
    assert_eq!(std::fs::read(&got).unwrap(), b"from outside the work folder");

    // A link in the current folder that leads out of it, and a `file://~/…` value (the host
    // home's file, which `oci` in the container looks for in its own home).
    std::os::unix::fs::symlink(home.join("elsewhere"), s.work.join("lnk")).unwrap();
    std::os::unix::fs::symlink(home.join("elsewhere/by-dangling-link.bin"), s.work.join("dl")).unwrap();
    // A chain whose middle link lies where the container sees nothing.
    std::os::unix::fs::symlink(home.join("elsewhere/by-a-chain.bin"), home.join("middle")).unwrap();
    std::os::unix::fs::symlink(home.join("middle"), s.work.join("chain")).unwrap();
    std::fs::write(home.join("meta.json"), br#"{"origin": "host"}"#).unwrap();
    let mut args = s.os_args(&["get"]);
    args.extend(["--name", "outside", "--file", "lnk/via-link.bin"].map(String::from));
    let mut put = s.os_args(&["put"]);
    put.extend(["--name", "meta", "--file", "../outside.bin", "--metadata", "file://~/meta.json"].map(String::from));
    let mut dangling = s.os_args(&["get"]);
    dangling.extend(["--name", "outside", "--file", "dl"].map(String::from));
    let mut chain = s.os_args(&["get"]);
    chain.extend(["--name", "outside", "--file=chain"].map(String::from));
    // A path inside a `--from-json` document, itself outside the current folder.
    std::fs::create_dir(home.join("json-dir")).unwrap();
    let doc = serde_json::json!({ "file": home.join("json-dir/by-json.bin"), "name": "outside" });
    std::fs::write(home.join("get.json"), doc.to_string()).unwrap();
    let mut from_json = s.os_args(&["get"]);
    from_json.extend(["--from-json", "file://../get.json"].map(String::from));
    for args in [args, put, dangling, chain, from_json] {
        let out = run({
            let mut c = s.woci();
            c.args(&args);
            c
        })
        .await;
        assert!(out.status.success(), "{args:?}: {}\nruntime argv: {}", stderr(&out), s.runtime_argvs());
    }
    // `/dev/stdin` is the runtime's `-i`: nothing to mount, nothing to rewrite.
    let mut piped = s.os_args(&["put"]);
    piped.extend(["--name", "piped", "--file", "/dev/stdin"].map(String::from));
    let out = run({
        let mut c = s.woci();
        c.args(&piped).write_stdin("through a pipe");
        c
    })
    .await;
    assert!(out.status.success(), "{}\nruntime argv: {}", stderr(&out), s.runtime_argvs());
    for name in ["via-link.bin", "by-dangling-link.bin", "by-a-chain.bin"] {
        assert_eq!(std::fs::read(home.join("elsewhere").join(name)).unwrap(), b"from outside the work folder");
    }
    assert_eq!(std::fs::read(home.join("json-dir/by-json.bin")).unwrap(), b"from outside the work folder");
}

/// A profile made by `oci session authenticate` inside the container (config entries under
/// `/oracle/.oci/…`) is renewed by woci on the host through OCI's session refresh; the config is
/// left as it was and `oci` in the container uses the new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn profile_created_in_the_container_is_renewed_from_the_host() {
    let s = stand(Duration::from_secs(3600), Duration::ZERO, MIB).await;
    let w = &s.w;
    let (_key, old) = w.seed_session_profile(Duration::from_secs(20));
    let in_container = format!(
        "[{p}]\nregion=us-ashburn-1\nkey_file=/oracle/.oci/sessions/{p}/oci_api_key.pem\nsecurity_token_file=/oracle/.oci/sessions/{p}/token\nfingerprint={f}\ntenancy={t}\n",
        p = w.profile,
        f = config_value(&w.read(&w.config_path()), "fingerprint").unwrap(),
        t = w.cfg.tenancy_ocid
    );
    std::fs::write(w.config_path(), &in_container).unwrap();
    // `seed_session_profile` dropped the IdP keys; keep container mode and name the auth service.
    let auth = w.emu.auth_endpoint();
    let ini = std::fs::read_to_string(w.manager_ini_path()).unwrap();
    std::fs::write(
        w.manager_ini_path(),
        format!(
            "{ini}oci_container_image = {IMAGE}\noci_container_args = --network host {}\nauth_endpoint = {auth}\n",
            s.user_args()
        ),
    )
    .unwrap();

    let renewed = run({
        let mut c = s.woci();
        c.args(["session", "refresh"]);
        c
    })
    .await;
    assert!(renewed.status.success(), "{}", stderr(&renewed));
    let out = run({
        let mut c = s.woci();
        c.args(["os", "ns", "get", "--endpoint", &w.emu.os_endpoint()]);
        c
    })
    .await;
    assert!(out.status.success(), "{}\nruntime argv: {}", stderr(&out), s.runtime_argvs());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&w.cfg.namespace));
    let st = w.emu.stats();
    assert_eq!(st.session_refreshes, 1, "woci renewed on the host through the auth service");
    assert_eq!((st.refresh_grants, st.exchanges), (0, 0));
    let new = w.read(&w.token_path());
    assert_ne!(new, old, "the token under the config folder was replaced");
    assert_eq!(st.os_jtis.len(), 1);
    assert_eq!(w.read(&w.config_path()), in_container, "the config written in the container is left as it was");
    assert_no_secrets(&format!("{}{}", stderr(&renewed), stderr(&out)), &[&old, &new]);

    let status = run({
        let mut c = s.woci();
        c.args(["--status", "--json"]);
        c
    })
    .await;
    assert!(status.status.success(), "{}", stderr(&status));
    let json = String::from_utf8_lossy(&status.stdout);
    assert!(json.contains(&w.token_path().display().to_string()), "status reads the mapped token path: {json}");
}

/// The control: the same upload with `oci` run from the image the way the reporters did before
/// (a `docker run` wrapper as `oci_command`, host networking, but not the mode's environment) signs
/// with its start token and dies with 401 once it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_without_the_modes_environment_the_upload_dies() {
    let ttl = Duration::from_secs(5);
    let s = stand(ttl, Duration::from_secs(3), 30 * MIB).await;
    s.w.seed_refresh_token();
    let oci_dir = s.w.oci_dir();
    let wrapper = s.bin.join("oci-in-docker");
    write_exec(
        &wrapper,
        &format!(
            "#!/bin/sh\nexec docker run --rm -i --network host -v {d}:/oracle/.oci -v {d}:{d} -v {b}:/backup \
             -v {ca}:/certs/emulator-ca.pem:ro -e REQUESTS_CA_BUNDLE=/certs/emulator-ca.pem \
             -e OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING=True {IMAGE} \"$@\"\n",
            d = oci_dir.display(),
            b = s.backup.display(),
            ca = s.ca().display()
        ),
    );
    s.write_ini(&[("oci_container_image", ""), ("oci_command", wrapper.to_str().unwrap())]);
    let out = run({
        let mut c = s.woci();
        c.arg("--auto-refresh").args(s.put_args("big"));
        c
    })
    .await;
    assert!(!out.status.success(), "the upload cannot survive without the mode's environment");
    let st = s.w.emu.stats();
    assert!(st.parts_uploaded > 0, "the upload ran in the container until its token expired");
    assert!(st.unauthorized > 0, "the failure must be a 401 from the service: {:?}", st.unauthorized_by_reason);
    assert!(stderr(&out).contains("NotAuthenticated"), "oci reports the 401: {}", stderr(&out));
}

/// The other half of the control: container mode whose user arguments pick their own network
/// (`--network none`): the container cannot reach the proxy on the host's 127.0.0.1 and the
/// upload fails without a single part.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_without_host_networking_the_upload_dies() {
    let s = stand(Duration::from_secs(5), Duration::ZERO, 3 * MIB).await;
    s.w.seed_refresh_token();
    let args =
        format!("--network none -v {}:/backup -v {}:/certs/emulator-ca.pem:ro", s.backup.display(), s.ca().display());
    s.write_ini(&[("oci_container_args", args.as_str())]);
    let out = run({
        let mut c = s.woci();
        c.args(["--auto-refresh", "--no-retry"]).args(s.put_args("big"));
        c
    })
    .await;
    assert!(!out.status.success(), "the container cannot reach the proxy");
    assert_eq!(s.w.emu.stats().parts_uploaded, 0);
    assert!(stderr(&out).contains("needs `--network host`"), "woci says why: {}", stderr(&out));
}

/// TERM and INT reach `oci` in the container: woci forwards them to the runtime, whose process
/// is `oci`'s. TERM kills it (and woci, by the same signal, as a local `oci` dies); INT stops it
/// the way Ctrl-C would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn term_and_int_reach_oci_in_the_container() {
    for (signal, name) in [(libc::SIGTERM, "TERM"), (libc::SIGINT, "INT")] {
        let s = stand(Duration::from_secs(3600), Duration::from_secs(3), 12 * MIB).await;
        s.w.seed_refresh_token();
        let mut c = s.woci_std();
        c.arg("--auto-refresh").args(s.put_args("big")).stderr(std::process::Stdio::piped());
        let child = c.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while s.w.emu.stats().object_storage_requests == 0 {
            assert!(Instant::now() < deadline, "the upload never started: {}", s.runtime_argvs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let started = Instant::now();
        // SAFETY: kill(2) on the child we spawned.
        unsafe { libc::kill(child.id() as i32, signal) };
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(20), "oci stopped on {name}");
        // Killed by TERM, woci ends by TERM too, as the local `oci` would; on INT, oci exits 1
        // ("Aborted!") or dies of it.
        use std::os::unix::process::ExitStatusExt;
        let ok = if signal == libc::SIGTERM {
            out.status.signal() == Some(libc::SIGTERM)
        } else {
            out.status.code() == Some(1) || out.status.signal() == Some(libc::SIGINT)
        };
        assert!(ok, "{name}: {:?}: {}", out.status, stderr(&out));
        // `oci` itself is gone, not orphaned: no part arrives after woci exited.
        let parts = s.w.emu.stats().parts_uploaded;
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(s.w.emu.stats().parts_uploaded, parts, "{name}: oci kept uploading after woci exited");
        assert!(parts < 12, "{name}: the upload was cut short");
    }
}

/// `--exec` of the user's own `docker run …` command: woci wires that container to the proxy too
/// (host networking, the proxy's variables by name, the CA bundle mounted).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exec_of_a_docker_run_command_goes_through_the_proxy() {
    let s = stand(Duration::from_secs(3600), Duration::ZERO, MIB).await;
    s.w.seed_refresh_token();
    let oci_dir = s.w.oci_dir();
    let out = run({
        let mut c = s.woci();
        c.args(["--exec", "--", "docker", "run", "--rm", "-i", "-v"])
            .arg(format!("{}:/oracle/.oci", oci_dir.display()))
            .args(["-e", "HOME=/oracle", "-e", "OCI_CLI_SUPPRESS_FILE_PERMISSIONS_WARNING", IMAGE])
            .args(["--profile", "P", "--auth", "security_token", "os", "ns", "get", "--endpoint"])
            .arg(s.w.emu.os_endpoint());
        c
    })
    .await;
    assert!(out.status.success(), "{}\nruntime argv: {}", stderr(&out), s.runtime_argvs());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&s.w.cfg.namespace));
    let argv = s.runtime_argvs();
    assert!(argv.starts_with("['run', '--network', 'host', '-e', 'HTTPS_PROXY'"), "{argv}");
    assert!(!argv.contains("woci:"), "{argv}");
}

/// Bad container settings are one line naming the setting, with the documented exit code, and
/// nothing runs; a runtime that is not installed is 127 naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_container_settings_are_named() {
    let s = stand(Duration::from_secs(3600), Duration::ZERO, MIB).await;
    s.w.seed_token(3600);
    for (key, value, exit) in [
        ("oci_container_runtime", "nerdctl", 2),
        ("oci_container_args", "-v '/unbalanced", 2),
        ("oci_container_image", "two words", 2),
    ] {
        s.write_ini(&[(key, value)]);
        let out = run({
            let mut c = s.woci();
            c.args(["os", "ns", "get"]);
            c
        })
        .await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(exit), "{key}: {err}");
        assert!(err.starts_with("woci: error: ") && err.contains(&format!("`{key}`")), "{key}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    s.write_ini(&[]);
    let out = run({
        let mut c = s.woci();
        c.env("PATH", "/nonexistent").args(["os", "ns", "get"]);
        c
    })
    .await;
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("`oci_container_runtime`"), "{}", stderr(&out));
    assert_eq!(s.runtime_argvs(), "", "nothing ran");
}

/// The stand-in itself: what the tests above rely on it to enforce. Host files outside the volumes
/// are invisible, volumes sit at their container paths (read-only when asked), the environment is
/// the image's plus `-e`, and the host's loopback is out of reach without `--network host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stand_in_enforces_what_a_container_enforces() {
    let s = stand(Duration::from_secs(3600), Duration::ZERO, MIB).await;
    let port = s.w.emu.os_endpoint().rsplit(':').next().unwrap().trim_end_matches('/').to_owned();
    let probe = format!(
        r#"test -e {home} && echo host-visible
test -f /backup/blob.bin && echo volume-ok
touch /backup/x 2>/dev/null && echo volume-writable
echo "home=$HOME secret=${{WOCI_PROBE_SECRET:-none}} passed=$PASSED"
/opt/oci-cli/bin/python3 -c 'import socket; socket.create_connection(("127.0.0.1", {port}), 2); print("loopback-reached")' 2>/dev/null
true"#,
        home = s.w.home().display()
    );
    let shell = |network: &[&str]| {
        let mut c = std::process::Command::new(s.bin.join("docker"));
        c.arg("run").args(network).arg("-v").arg(format!("{}:/backup:ro", s.backup.display()));
        c.args(["-e", "PASSED=yes", "--entrypoint", "/bin/sh", IMAGE, "-c", &probe])
            .env("WOCI_PROBE_SECRET", "leak")
            .env("HOME", s.w.home())
            .output()
            .unwrap()
    };
    let out = tokio::task::block_in_place(|| shell(&[]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text, "volume-ok\nhome=/oracle secret=none passed=yes\n", "private network: {text}");
    let out = tokio::task::block_in_place(|| shell(&["--network", "host"]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("loopback-reached"), "host network: {text}");
}

/// An OCI config outside `~/.oci` (`OCI_CLI_CONFIG_FILE`, as the reporters' `OCI_CONFIG_DIR`): its
/// folder is mounted at `/oracle/.oci` and at its own path, woci's session folder at its own path,
/// so the absolute paths woci records there work in the container too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn config_outside_the_home_oci_folder_works_in_the_container() {
    let s = stand(Duration::from_secs(3600), Duration::ZERO, MIB).await;
    s.w.seed_refresh_token();
    let cfg_dir = s.w.home().join("oci-config");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    let cfg = cfg_dir.join("config");
    std::fs::write(&cfg, "[P]\nregion = us-ashburn-1\n").unwrap();
    s.write_ini(&[("oci_container_args", &format!("--network host {}", s.user_args()))]);
    std::fs::copy(s.w.manager_ini_path(), cfg_dir.join("woci_manager.ini")).unwrap();
    let out = run({
        let mut c = s.woci();
        c.env("OCI_CLI_CONFIG_FILE", &cfg).args(["os", "ns", "get", "--endpoint", &s.w.emu.os_endpoint()]);
        c
    })
    .await;
    assert!(out.status.success(), "{}\nruntime argv: {}", stderr(&out), s.runtime_argvs());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&s.w.cfg.namespace));
    let written = std::fs::read_to_string(&cfg).unwrap();
    assert_eq!(
        config_value(&written, "security_token_file"),
        Some(s.w.token_path().display().to_string()),
        "outside ~/.oci, woci records host paths (mounted at the same path): {written}"
    );
    let argv = s.runtime_argvs();
    for v in [format!("{}:/oracle/.oci", cfg_dir.display()), "'-e', 'OCI_CLI_CONFIG_FILE'".to_owned()] {
        assert!(argv.contains(&v), "{v} in {argv}");
    }
}
