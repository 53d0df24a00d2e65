//! Container mode: `oci` from a container image (`oci_container_image`), the way people run the
//! official `oci-cli` image, with `--auto-refresh` working through the re-signing proxy.
//!
//! This module owns the container command: [`run_args`] (the `RUNTIME run --rm -i [-t] --user
//! UID:GID -v … -e HOME=/oracle -w CWD ARGS… IMAGE OCI-ARGS…` of the settings'
//! [`ContainerConfig`]) and [`attach_proxy`], which wires a container command (woci's own, or a
//! `docker|podman run` given to `--exec`) to the re-signing proxy: host networking, the proxy and
//! CA variables passed by name (their values, which hold the proxy secret, travel in the runtime's
//! environment, never in its argv), the per-run CA bundle mounted read-only. The child builder
//! (`crate::child::ChildBuilder`) calls both; the settings are resolved in `crate::settings`, and
//! host ↔ container path mapping is the OCI config's (`crate::oci_config`).
//!
//! The OCI config folder (the folder of the OCI config file) is mounted at `/oracle/.oci`, and also
//! at its own path so that absolute host paths already in the config keep working in the container;
//! the current folder and the local paths the call names (`paths`) at their own paths.

mod paths;

use crate::error::{Error, Result};
use crate::proxy::child_env::{CONTAINER_VARS, REMOVED_VARS};
use crate::proxy::ChildEnv;
use crate::settings::{ContainerConfig, Env, RuntimeKind, CONTAINER_HOME, CONTAINER_OCI_DIR};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// What a container command needs to know about the host.
#[derive(Debug, Clone)]
pub(crate) struct HostContext {
    /// `--user UID:GID` (Unix; on Windows the image's user runs, as Docker Desktop does).
    pub user: Option<(u32, u32)>,
    /// Whether stdin, stdout and stderr are terminals (`-t`): a pseudo-terminal merges the
    /// container's stderr into its stdout and ends lines with `\r\n`, which would corrupt
    /// `woci … > ns.json` or `| jq` (review of round 105).
    pub tty: bool,
    /// The working directory, mounted at the same path.
    pub cwd: PathBuf,
    /// The user's home: `file://~/…` names a file there, which `oci` in the container looks for
    /// under [`CONTAINER_HOME`].
    pub home: PathBuf,
    /// The OCI config file (its folder is mounted at [`CONTAINER_OCI_DIR`]).
    pub oci_config_file: PathBuf,
    /// Other host folders woci keeps files in (`~/.oci`, the session folders' root), mounted at
    /// their own paths when they are not inside the config folder.
    pub extra_dirs: Vec<PathBuf>,
    /// Names of the `OCI_CLI_*` variables set in woci's environment, passed on by name.
    pub oci_env: Vec<String>,
    /// Whether the re-signing proxy will be attached ([`attach_proxy`]): the user's own `-e` for
    /// the variables the proxy sets are dropped then.
    pub proxied: bool,
}

impl HostContext {
    /// The context of this process: uid/gid, stdin, current directory, `OCI_CLI_*` variables.
    pub(crate) fn current(oci_config_file: &Path, home: &Path, env: &Env, proxied: bool) -> Result<HostContext> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::Other(format!("cannot read the current directory for the container: {e}")))?;
        let mut oci_env: Vec<String> = env.keys().filter(|k| k.starts_with("OCI_CLI_")).cloned().collect();
        oci_env.sort();
        // woci keeps its session folders in `~/.oci`. When the config lives elsewhere, that folder
        // is mounted too; it is made now (0700, as woci would at the first renewal) because a
        // runtime creates a missing bind source owned by root.
        let oci_home = home.join(".oci");
        if oci_config_file.parent() != Some(oci_home.as_path()) && !oci_home.is_dir() {
            crate::fsutil::ensure_private_dir(&oci_home)?;
        }
        #[cfg(unix)]
        let user = Some((rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw()));
        #[cfg(not(unix))]
        let user = None;
        Ok(HostContext {
            user,
            tty: {
                use std::io::IsTerminal;
                std::io::stdin().is_terminal() && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
            },
            cwd,
            home: home.to_owned(),
            oci_config_file: oci_config_file.to_owned(),
            extra_dirs: vec![oci_home],
            oci_env,
            proxied,
        })
    }
}

/// The variables [`attach_proxy`] sets or removes; the user's own `-e` for them would fight the
/// proxy's.
fn is_proxy_var(name: &str) -> bool {
    CONTAINER_VARS.contains(&name) || REMOVED_VARS.contains(&name)
}

/// The `RUNTIME run …` arguments that run `oci` with `oci_args` in the container.
pub(crate) fn run_args(c: &ContainerConfig, host: &HostContext, mut oci_args: Vec<OsString>) -> Result<Vec<OsString>> {
    let mut a: Vec<OsString> = ["run", "--rm", "-i"].map(OsString::from).to_vec();
    if host.tty {
        a.push("-t".into());
    }
    if let Some((uid, gid)) = host.user {
        // Rootless Podman maps container uids to subordinate ids: without keep-id, the user's own
        // 0600 files in the mounted folders would belong to someone else in the container.
        if c.kind == RuntimeKind::Podman && uid != 0 {
            a.extend(["--userns", "keep-id"].map(OsString::from));
        }
        a.extend(["--user".into(), format!("{uid}:{gid}").into()]);
    }
    let config_dir = host.oci_config_file.parent().unwrap_or(Path::new("/"));
    // A target the user's own `oci_container_args` mounts something at is theirs (the runtime
    // refuses two mounts at one target).
    let user_targets = paths::volume_targets(&c.extra_args);
    let mut mounts: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut add = |src: &Path, dst: &Path| {
        if !user_targets.iter().chain(mounts.iter().map(|(_, d)| d)).any(|t| t == dst) {
            mounts.push((src.to_owned(), dst.to_owned()));
        }
    };
    add(config_dir, Path::new(CONTAINER_OCI_DIR));
    add(config_dir, config_dir);
    for d in host.extra_dirs.iter().filter(|d| !d.starts_with(config_dir)) {
        add(d, d);
    }
    // A command started in `/` (or another of the image's folders) has no files of its own to reach.
    let cwd_mounted = !paths::hides_the_image(&host.cwd);
    if cwd_mounted {
        add(&host.cwd, &host.cwd);
    }
    let same_path: Vec<PathBuf> = mounts.iter().filter(|(s, c)| s == c).map(|(_, c)| c.clone()).collect();
    // Each before the first mount inside it: parents before children, as the runtime needs them
    // (docker sorts so itself; not every runtime does).
    let mut ordered: Vec<(PathBuf, PathBuf)> = Vec::new();
    for m in mounts.into_iter().chain(paths::path_mounts(&mut oci_args, host, &same_path, &user_targets)?) {
        let at = ordered.iter().position(|(_, d)| d.starts_with(&m.1)).unwrap_or(ordered.len());
        ordered.insert(at, m);
    }
    for (src, dst) in &ordered {
        a.extend(["-v".into(), volume(src, dst, false)?]);
    }
    a.extend(["-e".into(), format!("HOME={CONTAINER_HOME}").into()]);
    for k in host.oci_env.iter().filter(|k| !(host.proxied && is_proxy_var(k))) {
        a.extend(["-e".into(), k.into()]);
    }
    if cwd_mounted {
        a.extend(["-w".into(), host.cwd.clone().into_os_string()]);
    }
    let mut user = c.extra_args.iter();
    while let Some(arg) = user.next() {
        let name = env_option_name(arg, user.clone().next()).filter(|name| host.proxied && is_proxy_var(name));
        if let Some(name) = name {
            tracing::warn!(
                "`oci_container_args` sets `{name}`, which --auto-refresh controls for its proxy; ignoring it"
            );
            if arg == "-e" || arg == "--env" {
                user.next();
            }
        } else {
            a.push(arg.into());
        }
    }
    a.push(c.image.clone().into());
    a.extend(oci_args);
    Ok(a)
}

/// `-v SRC:DST[:ro]`; a path with `:` cannot be written that way.
fn volume(src: &Path, dst: &Path, ro: bool) -> Result<OsString> {
    for p in [src, dst] {
        if p.as_os_str().to_string_lossy().contains(':') {
            return Err(Error::Config(format!(
                "container mode cannot mount `{}`: the path contains `:`, which `-v` cannot express",
                p.display()
            )));
        }
    }
    let mut v = src.as_os_str().to_owned();
    v.push(":");
    v.push(dst.as_os_str());
    if ro {
        v.push(":ro");
    }
    Ok(v)
}

/// The variable an `-e`/`--env` option sets: `-e K=V`, `-e K`, `--env=K=V`, `-eK=V`.
fn env_option_name(arg: &str, next: Option<&String>) -> Option<String> {
    let spec = match arg {
        "-e" | "--env" => next?.as_str(),
        _ => arg.strip_prefix("--env=").or_else(|| arg.strip_prefix("-e").filter(|s| !s.is_empty()))?,
    };
    Some(spec.split('=').next().unwrap_or(spec).to_owned())
}

/// Whether `program args` runs a container: `docker run …` or `podman run …` (woci's own
/// container mode, or a container command given to `--exec`).
pub(crate) fn is_container_run(program: &OsStr, args: &[OsString]) -> Option<RuntimeKind> {
    let kind = RuntimeKind::of_program(program)?;
    (args.first().map(OsString::as_os_str) == Some(OsStr::new("run"))).then_some(kind)
}

/// How a container reaches the proxy listening on the host's 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyRoute {
    /// `--network host`: the container shares the host's loopback (Linux).
    HostNetwork,
    /// The runtime's host gateway name (Docker Desktop / Podman machine on macOS and Windows,
    /// which forward it to the host's loopback).
    Gateway,
}

impl ProxyRoute {
    /// Host networking where the container runs on this kernel (Linux), the gateway elsewhere.
    pub(crate) fn for_this_host() -> ProxyRoute {
        if cfg!(target_os = "linux") {
            ProxyRoute::HostNetwork
        } else {
            ProxyRoute::Gateway
        }
    }
}

/// Wires a container command (`RUNTIME run …` in `args`) to the re-signing proxy, once the
/// proxy's variables are in `set_env`: the variables are passed by name (`-e NAME`; the runtime
/// copies the values from its own environment, so the proxy secret never appears in an argv), the
/// CA bundle is mounted read-only at the path the variables name, and the container gets a route
/// to the proxy.
pub(crate) fn attach_proxy(
    kind: RuntimeKind,
    args: &mut Vec<OsString>,
    set_env: &mut [(OsString, OsString)],
    proxy: &ChildEnv,
    route: ProxyRoute,
) -> Result<()> {
    let mut add: Vec<OsString> = Vec::new();
    let user_network = user_network(args);
    match route {
        ProxyRoute::HostNetwork if user_network.as_deref() == Some("host") => {}
        ProxyRoute::HostNetwork if user_network.is_some() => tracing::warn!(
            "the container command chooses its own network; the re-signing proxy listens on the host's 127.0.0.1 and needs `--network host`"
        ),
        ProxyRoute::HostNetwork => add.extend(["--network", "host"].map(OsString::from)),
        ProxyRoute::Gateway => {
            // The name a container uses to reach the host where host networking is not available
            // (Docker Desktop, Podman machine).
            let gateway = match kind {
                RuntimeKind::Docker => "host.docker.internal",
                RuntimeKind::Podman => "host.containers.internal",
            };
            for (k, v) in set_env.iter_mut() {
                if k == "HTTPS_PROXY" || k == "https_proxy" {
                    *v = v.to_string_lossy().replace("@127.0.0.1:", &format!("@{gateway}:")).into();
                }
            }
        }
    }
    for (k, _) in proxy.container_vars() {
        add.extend(["-e".into(), k]);
    }
    add.extend(["-v".into(), volume(&proxy.ca_bundle, &proxy.ca_bundle, true)?]);
    args.splice(1..1, add);
    Ok(())
}

/// The network a container command asks for itself (`--network X`, `--net X`, `--network=X`).
fn user_network(args: &[OsString]) -> Option<String> {
    let mut it = args.iter().map(|a| a.to_string_lossy());
    while let Some(a) = it.next() {
        if a == "--network" || a == "--net" {
            return Some(it.next().map(|v| v.into_owned()).unwrap_or_default());
        }
        if let Some(v) = a.strip_prefix("--network=").or_else(|| a.strip_prefix("--net=")) {
            return Some(v.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::paths::{path_mounts, volume_targets};
    use super::*;

    fn spec(extra: &[&str]) -> ContainerConfig {
        ContainerConfig {
            image: "ghcr.io/oracle/oci-cli:latest".into(),
            runtime: "docker".into(),
            kind: RuntimeKind::Docker,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn host(tty: bool, proxied: bool) -> HostContext {
        HostContext {
            user: Some((1000, 100)),
            tty,
            cwd: "/work/dir".into(),
            home: "/home/u".into(),
            oci_config_file: "/home/u/.oci/config".into(),
            extra_dirs: vec!["/home/u/.oci".into()],
            oci_env: vec!["OCI_CLI_PROFILE".into(), "REQUESTS_CA_BUNDLE".into()],
            proxied,
        }
    }

    fn strs(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn run_args_are_exactly_what_the_issue_lists() {
        let args = run_args(
            &spec(&["-v", "/data:/backup"]),
            &host(false, false),
            vec!["--profile".into(), "P".into(), "os".into(), "ns".into(), "get".into()],
        )
        .unwrap();
        assert_eq!(
            strs(&args),
            [
                "run",
                "--rm",
                "-i",
                "--user",
                "1000:100",
                "-v",
                "/home/u/.oci:/oracle/.oci",
                "-v",
                "/home/u/.oci:/home/u/.oci",
                "-v",
                "/work/dir:/work/dir",
                "-e",
                "HOME=/oracle",
                "-e",
                "OCI_CLI_PROFILE",
                "-e",
                "REQUESTS_CA_BUNDLE",
                "-w",
                "/work/dir",
                "-v",
                "/data:/backup",
                "ghcr.io/oracle/oci-cli:latest",
                "--profile",
                "P",
                "os",
                "ns",
                "get"
            ]
        );
    }

    #[test]
    fn a_terminal_gets_t_and_the_proxy_owns_its_variables() {
        let c = spec(&["-e", "REQUESTS_CA_BUNDLE=/ca.pem", "--env=FOO=1", "-eHTTPS_PROXY=x", "-v", "/d:/b"]);
        let args = run_args(&c, &host(true, true), vec![]).unwrap();
        let s = strs(&args);
        assert_eq!(&s[..4], ["run", "--rm", "-i", "-t"]);
        assert!(!s.iter().any(|a| a.contains("REQUESTS_CA_BUNDLE") || a.contains("HTTPS_PROXY")), "{s:?}");
        assert!(s.windows(2).any(|w| w == ["-v", "/d:/b"]) && s.contains(&"--env=FOO=1".to_owned()), "{s:?}");
    }

    #[test]
    fn paths_through_links_are_given_to_oci_where_the_links_lead() {
        let d = tempfile::tempdir().unwrap();
        let (root, work) = (d.path().to_owned(), d.path().join("work"));
        std::fs::create_dir_all(root.join("y/sub")).unwrap();
        std::fs::create_dir(&work).unwrap();
        // A chain: work/dl3 -> root/l4 -> root/y/n3.txt (a download still to be written); the link
        // in the middle lies where the container sees nothing.
        std::os::unix::fs::symlink(root.join("y/n3.txt"), root.join("l4")).unwrap();
        std::os::unix::fs::symlink(root.join("l4"), work.join("dl3")).unwrap();
        // `..` after a link climbs from where it leads: lnkdir/.. is root/y, not work.
        std::os::unix::fs::symlink("../y/sub", work.join("lnkdir")).unwrap();
        // A link to a stream is the stream (`/dev/stdin` leads on to this process's own fd).
        std::os::unix::fs::symlink("/dev/stdin", work.join("in")).unwrap();
        let mut h = host(false, false);
        (h.cwd, h.home) = (work.clone(), root.join("home"));
        let mut args: Vec<OsString> = [
            "--file",
            "dl3",
            "--download-dir=lnkdir/../dd",
            "--name",
            "file://dl3",
            "--file",
            "/dev/stdin",
            "--file",
            "in",
        ]
        .map(OsString::from)
        .to_vec();
        let m = path_mounts(&mut args, &h, std::slice::from_ref(&work), &[]).unwrap();
        assert_eq!(m, [(root.join("y"), root.join("y"))]);
        let y = root.join("y").display().to_string();
        assert_eq!(
            strs(&args),
            [
                "--file".to_owned(),
                format!("{y}/n3.txt"),
                format!("--download-dir={y}/dd"),
                "--name".into(),
                "file://dl3".into(),
                "--file".into(),
                "/dev/stdin".into(),
                "--file".into(),
                "in".into()
            ],
            "a `file://` value is text to all but JSON parameters: not rewritten; the process's streams neither"
        );
    }

    #[test]
    fn a_target_the_user_mounts_is_not_mounted_again() {
        // The README's "before" script mounts `~/.oci` at `/oracle/.oci`; the user mounts the
        // current folder themselves: one mount at each target, theirs.
        let user = spec(&["-v", "/home/u/.oci:/oracle/.oci", "--volume=/work/dir:/work/dir"]);
        let s = strs(&run_args(&user, &host(false, false), vec![]).unwrap());
        for target in [":/oracle/.oci", ":/work/dir"] {
            assert_eq!(s.iter().filter(|a| a.ends_with(target)).count(), 1, "{target} in {s:?}");
        }
        assert!(s.contains(&"/home/u/.oci:/home/u/.oci".to_owned()), "{s:?}");
    }

    #[test]
    fn rootless_podman_keeps_the_users_id() {
        let podman = ContainerConfig { runtime: "podman".into(), kind: RuntimeKind::Podman, ..spec(&[]) };
        let s = strs(&run_args(&podman, &host(false, false), vec![]).unwrap());
        assert_eq!(&s[3..7], ["--userns", "keep-id", "--user", "1000:100"]);
        let mut root = host(false, false);
        root.user = Some((0, 0));
        assert!(!strs(&run_args(&podman, &root, vec![]).unwrap()).contains(&"--userns".to_owned()));
        assert!(!strs(&run_args(&spec(&[]), &host(false, false), vec![]).unwrap()).contains(&"--userns".to_owned()));
    }

    #[test]
    fn config_elsewhere_is_mounted_at_oracle_and_at_its_own_path() {
        let mut h = host(false, false);
        h.oci_config_file = "/srv/oci/config".into();
        h.cwd = "/".into();
        let s = strs(&run_args(&spec(&[]), &h, vec![]).unwrap());
        for v in ["/srv/oci:/oracle/.oci", "/srv/oci:/srv/oci", "/home/u/.oci:/home/u/.oci"] {
            assert!(s.iter().any(|a| a == v), "{v} in {s:?}");
        }
        assert!(!s.contains(&"-w".to_owned()), "no mount or workdir for `/`: {s:?}");
        h.cwd = "/a:b".into();
        assert_eq!(run_args(&spec(&[]), &h, vec![]).unwrap_err().exit_code(), crate::error::exit::CONFIG);
    }

    #[test]
    fn local_paths_the_call_names_are_mounted_at_their_own_paths() {
        let d = tempfile::tempdir().unwrap();
        let (root, work) = (d.path().to_owned(), d.path().join("work"));
        for dir in ["work", "out", "dl"] {
            std::fs::create_dir(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("in.bin"), "x").unwrap();
        let mut h = host(false, false);
        (h.cwd, h.home) = (work.clone(), root.join("home"));
        let mounts =
            |args: &[String], visible: &Path| {
                let mut args: Vec<OsString> = args.iter().map(OsString::from).collect();
                let m = path_mounts(&mut args, &h, &[visible.to_owned()], &[PathBuf::from("/backup")])?;
                Ok::<_, Error>(
                    m.into_iter()
                        .map(|(src, dst)| {
                            if src == dst {
                                dst
                            } else {
                                PathBuf::from(format!("{}=>{}", src.display(), dst.display()))
                            }
                        })
                        .collect::<Vec<_>>(),
                )
            };
        let r = |p: &str| root.join(p).display().to_string();
        let args =
            ["os", "object", "put", "--file", "../in.bin", "--x-file", "./here.bin", "--name", "n"].map(String::from);
        assert_eq!(mounts(&args, &work).unwrap(), [root.join("in.bin")], "an upload's file, not its folder");
        let get =
            ["--file=".to_owned() + &r("out/new.bin"), "--download-dir".into(), r("dl"), "--file".into(), "-".into()];
        assert_eq!(mounts(&get, &work).unwrap(), [root.join("out"), root.join("dl")]);
        let json = [format!("--from-json=file://{}", r("out/../missing.json")), "--src-dir".into(), r("dl")];
        assert_eq!(mounts(&json, &work).unwrap(), [root.as_path()], "one folder covers the paths inside it");
        assert!(mounts(&get, &root).unwrap().is_empty(), "already visible");
        assert_eq!(mounts(&[format!("--cert-bundle={}", r("in.bin"))], &work).unwrap(), [root.join("in.bin")]);
        let user_mounted = ["--file".to_owned(), "/backup/blob.bin".into(), "--src-dir".into(), "/backup".into()];
        assert!(mounts(&user_mounted, &work).unwrap().is_empty(), "the user's mount, at a path the host may lack");
        let deep = ["--download-dir".to_owned(), r("out/a/b")];
        assert_eq!(mounts(&deep, &work).unwrap(), [root.join("out")], "the nearest folder that exists");
        std::os::unix::fs::symlink(root.join("dl"), work.join("lnk")).unwrap();
        let through_link = ["--file".to_owned(), "lnk/new.txt".into()];
        assert_eq!(mounts(&through_link, &work).unwrap(), [root.join("dl")], "where a link leads out of a mount");
        std::fs::create_dir(root.join("home")).unwrap();
        std::fs::write(root.join("home/meta.json"), "{}").unwrap();
        let tilde = ["--metadata".to_owned(), "file://~/meta.json".into()];
        assert_eq!(mounts(&tilde, &work).unwrap(), [root.join("home/meta.json=>/oracle/meta.json")]);
        // The paths a `--from-json` document names, in a file or inline, by any of the key forms
        // `oci` takes; other keys and other values are not paths.
        let doc = format!(
            r#"{{"file": "{}", "srcDir": "../dl", "name": "{}", "metadata": "file://../in.bin"}}"#,
            r("out/x"),
            r("n")
        );
        std::fs::write(work.join("in.json"), &doc).unwrap();
        let json_file = ["--from-json".to_owned(), "file://in.json".into()];
        assert_eq!(mounts(&json_file, &work).unwrap(), [root.join("out"), root.join("in.bin"), root.join("dl")]);
        let inline = [format!(r#"--from-json={{"download-dir": "{}", "cert_bundle": "../in.bin"}}"#, r("dl"))];
        assert_eq!(mounts(&inline, &work).unwrap(), [root.join("in.bin"), root.join("dl")]);
        assert!(mounts(&["--from-json".into(), "[1, {".into()], &work).unwrap().is_empty(), "oci says what is wrong");
        // A FIFO (or `/dev/stdin`) is `oci`'s to read, not woci's: not opened, so nothing waits.
        let fifo = std::ffi::CString::new(work.join("doc.fifo").into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(mounts(&["--from-json=file://doc.fifo".into()], &work).unwrap().is_empty());
        // A key the command line gives too is the command line's (`oci` takes the option).
        let overridden = [r#"--from-json={"file": "/usr/x.bin"}"#.to_owned(), "--file".into(), r("dl/x.bin")];
        assert_eq!(mounts(&overridden, &work).unwrap(), [root.join("dl")]);
        // Too large to read for its paths: refused, not run with a path left out.
        let big = std::fs::File::create(root.join("big.json")).unwrap();
        big.set_len(crate::fsutil::MAX_CA_BUNDLE as u64 + 1).unwrap();
        let e = mounts(&[format!("--from-json=file://{}", r("big.json"))], &work).unwrap_err();
        assert!(e.to_string().contains("is larger than 16 MiB") && e.exit_code() == crate::error::exit::CONFIG, "{e}");
        // The folder above the current one, mounted for a download: before the current folder's
        // mount, which it would hide otherwise.
        let mut above = h.clone();
        above.oci_config_file = root.join("home/.oci/config");
        let s = strs(&run_args(&spec(&[]), &above, vec!["--download-dir".into(), r("new/a").into()]).unwrap());
        let at = |m: &Path| s.iter().position(|a| *a == format!("{}:{}", m.display(), m.display())).unwrap();
        assert!(at(&root) < at(&work), "{s:?}");
        std::os::unix::fs::symlink(root.join("out/later.txt"), work.join("dangling")).unwrap();
        let dangling = ["--file".to_owned(), "dangling".into()];
        assert_eq!(mounts(&dangling, &work).unwrap(), [root.join("out")], "a link to a download still to be written");
        let bad: [&[&str]; 5] = [
            &["--file", "/woci-no-such-file.bin"],
            &["--download-dir", "/"],
            &["--src-dir", "/usr/lib/../"],
            &["--download-dir", "/usr/local/new/a"],
            &["--file", "/dev/shm/woci-new"],
        ];
        for bad in bad {
            let e = mounts(&bad.iter().map(|a| a.to_string()).collect::<Vec<_>>(), &work).unwrap_err();
            assert!(
                e.to_string().contains("would hide the image's own") && e.exit_code() == crate::error::exit::CONFIG,
                "{e}"
            );
        }
        let user = [
            "-v",
            "/d:/backup",
            "--volume=/e:/e2:ro",
            "--mount",
            "type=bind,source=/s,target=/t",
            "-v/q:/q2",
            "--cpus",
            "2",
        ];
        assert_eq!(volume_targets(&user.map(String::from)), ["/backup", "/e2", "/t", "/q2"].map(PathBuf::from));
    }

    struct Run {
        program: OsString,
        args: Vec<OsString>,
        set_env: Vec<(OsString, OsString)>,
    }

    fn child(program: &str, args: &[&str]) -> Run {
        Run {
            program: program.into(),
            args: args.iter().map(OsString::from).collect(),
            set_env: vec![
                ("HTTPS_PROXY".into(), "http://woci:s3cret@127.0.0.1:4000".into()),
                ("REQUESTS_CA_BUNDLE".into(), "/tmp/w/ca.pem".into()),
            ],
        }
    }

    fn proxy(set: &[(OsString, OsString)], bundle: &str) -> ChildEnv {
        ChildEnv { set: set.to_vec(), ca_bundle: bundle.into(), ..ChildEnv::default() }
    }

    /// Attaches the proxy when `run` is a container run, as the child builder does.
    fn attach(run: &mut Run, set: &[(OsString, OsString)], bundle: &str, route: ProxyRoute) {
        if let Some(kind) = is_container_run(&run.program, &run.args) {
            attach_proxy(kind, &mut run.args, &mut run.set_env, &proxy(set, bundle), route).unwrap();
        }
    }

    #[test]
    fn proxy_wiring_passes_names_mounts_the_bundle_and_keeps_the_secret_out_of_argv() {
        let mut c = child("/usr/bin/docker", &["run", "--rm", "img", "os", "ns", "get"]);
        let e = c.set_env.clone();
        attach(&mut c, &e, "/tmp/w/ca.pem", ProxyRoute::HostNetwork);
        assert_eq!(
            strs(&c.args),
            [
                "run",
                "--network",
                "host",
                "-e",
                "HTTPS_PROXY",
                "-e",
                "REQUESTS_CA_BUNDLE",
                "-v",
                "/tmp/w/ca.pem:/tmp/w/ca.pem:ro",
                "--rm",
                "img",
                "os",
                "ns",
                "get"
            ]
        );
        assert!(!strs(&c.args).iter().any(|a| a.contains("s3cret")));

        let mut d = child("podman", &["run", "img"]);
        let e = d.set_env.clone();
        attach(&mut d, &e, "/tmp/w/ca.pem", ProxyRoute::Gateway);
        assert!(!strs(&d.args).contains(&"--network".to_owned()));
        assert_eq!(d.set_env[0].1, "http://woci:s3cret@host.containers.internal:4000");

        for net in [&["--network=bridge"][..], &["--net", "host"][..]] {
            let mut user_net = child("docker", &[&["run"][..], net, &["img"][..]].concat());
            attach(&mut user_net, &[], "/b", ProxyRoute::HostNetwork);
            assert_eq!(strs(&user_net.args).iter().filter(|a| a.starts_with("--net")).count(), 1);
        }

        for (program, args) in [("oci", vec!["os"]), ("docker", vec!["ps"]), ("dockerd", vec!["run"])] {
            let mut other = child(program, &args);
            attach(&mut other, &[], "/b", ProxyRoute::HostNetwork);
            assert_eq!(strs(&other.args), args, "{program} is not a container run");
        }
    }
}
