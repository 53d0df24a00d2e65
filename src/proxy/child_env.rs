//! The environment of a child supervised under the re-signing proxy (`--auto-refresh`, `--exec`):
//! what each runtime needs to send its OCI requests through the proxy and trust the per-run CA,
//! without the program changing ([`ChildEnv::build`]).
//!
//! | runtime | through the proxy | trusts the per-run CA |
//! |---|---|---|
//! | Python (`oci`, the OCI Python SDK, `requests`) | `HTTPS_PROXY` | `REQUESTS_CA_BUNDLE`, `OCI_CLI_CERT_BUNDLE` |
//! | Go (the OCI Go SDK, Terraform) | `HTTPS_PROXY` (never for loopback hosts) | `SSL_CERT_FILE` (Linux), `OCI_DEFAULT_CERTS_PATH` (replaces the SDK's root pool) |
//! | Node.js (the OCI TypeScript SDK) | `NODE_USE_ENV_PROXY=1` (22.21+, 24.5+); older: the preload in `NODE_OPTIONS` | `NODE_EXTRA_CA_CERTS` |
//! | curl | `HTTPS_PROXY` | `CURL_CA_BUNDLE` |
//!
//! The CA bundle holds the per-run CA, the user's own CA files (`REQUESTS_CA_BUNDLE`,
//! `SSL_CERT_FILE`, `CURL_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`, `--cert-bundle`) and the system roots, so replacing a
//! CA variable the user set keeps what it trusted. What the user set that woci cannot honour
//! (`NODE_USE_ENV_PROXY=0`) stays and earns one warning naming the consequence. The preload file
//! (and a Go bundle when the user has an `OCI_DEFAULT_CERTS_PATH`) go into the proxy's private
//! per-run folder, removed with it; nothing here runs unless a child is supervised.

use super::ca::write_new_private;
use crate::error::Result;
use crate::secret::SecretString;
use crate::settings::Env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The Node.js preload (built-ins only): routes `fetch` and `https` through `HTTPS_PROXY`.
pub const NODE_PRELOAD: &str = include_str!("node_preload.cjs");
/// Its file name in the private folder.
pub const NODE_PRELOAD_FILE: &str = "node-preload.cjs";
/// The Go SDK's root pool when the user had their own `OCI_DEFAULT_CERTS_PATH`.
pub const GO_BUNDLE_FILE: &str = "oci-default-certs.pem";

/// What a child needs to go through the proxy: variables to set and remove, warnings to print
/// once, the CA bundle it must trust (a container gets it mounted), and the secrets its output
/// must never show.
#[derive(Debug, Default)]
pub struct ChildEnv {
    /// Variables to set (some hold the proxy secret: the child's environment only).
    pub set: Vec<(OsString, OsString)>,
    /// Variables to remove.
    pub remove: Vec<OsString>,
    /// One line each, for the user (no secrets).
    pub warnings: Vec<String>,
    /// The per-run CA bundle.
    pub ca_bundle: PathBuf,
    /// The proxy's secret (the `--debug` redactor removes it, in every encoding).
    pub secrets: Vec<SecretString>,
}

/// Whether `env` is that of a program run under a woci's re-signing proxy (its `HTTPS_PROXY` is
/// `http://woci:…@127.0.0.1:…`): that woci keeps its profile's session fresh, and withholds its
/// passphrase variables from what it runs.
pub fn under_a_woci_proxy(env: &crate::settings::Env) -> bool {
    ["https_proxy", "HTTPS_PROXY"].iter().filter_map(|k| env.get(*k)).any(|v| {
        let listener = url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST);
        url::Url::parse(v).is_ok_and(|u| u.username() == super::PROXY_USER && u.host() == Some(listener))
    })
}

/// What the running proxy provides.
#[derive(Debug)]
pub struct ProxyFacts<'a> {
    /// `http://woci:<secret>@127.0.0.1:<port>`.
    pub url: &'a SecretString,
    /// The CA bundle (per-run CA, the user's CA files, system roots).
    pub ca_bundle: &'a Path,
    /// The per-run CA alone, PEM.
    pub ca_pem: &'a str,
    /// The proxy's private (0700) per-run folder, removed at shutdown.
    pub private_dir: &'a Path,
    /// The hosts the proxy re-signs.
    pub resign: &'a super::hosts::HostMatcher,
}

/// The proxy variables (the URL with the secret), then the CA variables pointed at the bundle:
/// what every child of the proxy gets, a container's too. `OCI_CLI_CERT_BUNDLE` because the CLI
/// prefers it over `REQUESTS_CA_BUNDLE`; `OCI_DEFAULT_CERTS_PATH` is handled apart (it replaces a
/// root pool).
pub(crate) const CONTAINER_VARS: [&str; 7] = [
    "HTTPS_PROXY",
    "https_proxy",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
    "OCI_CLI_CERT_BUNDLE",
];

/// `NO_PROXY`/`no_proxy`: a bypassed OCI host would miss the re-signing (the proxy applies the
/// user's list to its upstream connections itself).
pub(crate) const REMOVED_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];

/// [`CONTAINER_VARS`] with their values.
pub fn base_vars(url: &SecretString, ca_bundle: &Path) -> Vec<(OsString, OsString)> {
    let (proxy, ca) = CONTAINER_VARS.split_at(2);
    let mut set: Vec<(OsString, OsString)> =
        proxy.iter().map(|k| (OsString::from(k), OsString::from(url.expose()))).collect();
    set.extend(ca.iter().map(|k| (OsString::from(k), ca_bundle.as_os_str().to_owned())));
    set
}

/// [`REMOVED_VARS`].
pub fn removals() -> Vec<OsString> {
    REMOVED_VARS.iter().map(OsString::from).collect()
}

impl ChildEnv {
    /// The variables a container run gets (by name): the proxy and CA ones only, since the Node
    /// preload and a Go bundle live in the host's private folder, which the container does not see.
    pub fn container_vars(&self) -> Vec<(OsString, OsString)> {
        self.set.iter().filter(|(k, _)| CONTAINER_VARS.iter().any(|c| k == c)).cloned().collect()
    }

    /// The proxy and CA variables for every runtime in the table above, given the user's
    /// environment `user_env` (what the child would otherwise inherit). Writes the Node preload
    /// (and a Go bundle, see [`go_default_certs`]) into `proxy.private_dir`.
    pub fn build(proxy: &ProxyFacts<'_>, user_env: &Env) -> Result<ChildEnv> {
        // The user's own values these are made from, which woci would otherwise take as unset.
        let own = ["NODE_OPTIONS", "NODE_USE_ENV_PROXY", "OCI_DEFAULT_CERTS_PATH"];
        crate::settings::unreadable(own.into_iter().chain(["JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS"]))?;
        let mut env = ChildEnv {
            set: base_vars(proxy.url, proxy.ca_bundle),
            remove: removals(),
            ca_bundle: proxy.ca_bundle.to_owned(),
            ..ChildEnv::default()
        };
        // The user's bypass list stays for the hosts woci does not re-sign (intranet hosts, the
        // metadata service), so their plain-HTTP requests still skip the user's `HTTP_PROXY`.
        for var in REMOVED_VARS {
            if let Some(kept) = user_env.get(var).and_then(|list| no_proxy_for_child(list, proxy.resign)) {
                env.remove.retain(|r| r != var);
                env.set.push((var.into(), kept.into()));
            }
        }
        // `NO_PROXY=*` sent everything direct, plain HTTP included: without the `*` (it would
        // bypass the re-signing proxy), the user's `HTTP_PROXY` would start to apply; it goes too.
        let everything_direct = REMOVED_VARS
            .iter()
            .filter_map(|v| user_env.get(*v))
            .any(|list| list.split([',', ' ']).any(|e| e.trim() == "*"));
        if everything_direct {
            env.remove.extend(["HTTP_PROXY", "http_proxy"].map(OsString::from));
        }

        let go = go_default_certs(proxy, user_env, &mut env.warnings)?;
        env.set.push(("OCI_DEFAULT_CERTS_PATH".into(), go.into_os_string()));

        match user_env.get("NODE_USE_ENV_PROXY").map(String::as_str) {
            None => env.set.push(("NODE_USE_ENV_PROXY".into(), "1".into())),
            Some("0") => env.warnings.push(
                "`NODE_USE_ENV_PROXY=0` is set: Node.js programs will not go through the re-signing proxy and keep \
                 the session token they started with; unset it to let woci route them"
                    .into(),
            ),
            Some(_) => {}
        }
        let preload = proxy.private_dir.join(NODE_PRELOAD_FILE);
        write_new_private(&preload, NODE_PRELOAD.as_bytes())?;
        env.set.push(("NODE_OPTIONS".into(), node_options(user_env.get("NODE_OPTIONS").map(String::as_str), &preload)));
        Ok(env)
    }
}

/// `OCI_DEFAULT_CERTS_PATH` for the Go SDK, which trusts that file *instead of* the system roots:
/// the bundle, or, when the user set their own, a copy of it plus the per-run CA (their narrower
/// trust kept). An unreadable file of theirs is left in place with a warning.
/// `list` without the entries that would send a host the proxy re-signs around it (`*`, an OCI
/// realm's domains or hosts, a `resign_hosts` or `--endpoint` host); `None` when none is left.
fn no_proxy_for_child(list: &str, resign: &super::hosts::HostMatcher) -> Option<String> {
    use super::hosts::{is_oci_realm_host, split_host_port, NoProxy};
    let kept: Vec<&str> = list
        .split([',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .filter(|entry| {
            let bypass = NoProxy::parse(entry);
            let name = entry.trim_start_matches("*.").trim_start_matches('.').to_ascii_lowercase();
            let name = split_host_port(&name).map_or(name.as_str(), |(h, _)| h).to_owned();
            // A realm host or domain, or a plain string suffix of one: Python's `requests` (in
            // `oci`) bypasses on those (`cloud.com` covers `oraclecloud.com`).
            let suffix = |host: &str| !name.is_empty() && host.ends_with(&name);
            let realm = resign.oci_realms
                && (name == "*" || is_oci_realm_host(&format!("x.{name}")) || realm_domains().any(|d| suffix(&d)));
            // A re-signed host by the list's rules (IPs, CIDR blocks, ports), or a suffix of it.
            let extra =
                resign.extra.iter().filter_map(|e| split_host_port(e)).any(|(h, p)| bypass.bypass(h, p) || suffix(h));
            !(realm || extra)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join(","))
}

/// The domains of the OCI realms woci knows, and `customer-oci.com`.
fn realm_domains() -> impl Iterator<Item = String> {
    (1..=40).filter_map(|n| crate::realm::realm_domain(&format!("oc{n}"))).chain(["customer-oci.com".to_owned()])
}

fn go_default_certs(proxy: &ProxyFacts<'_>, user_env: &Env, warnings: &mut Vec<String>) -> Result<PathBuf> {
    let Some(own) = user_env.get("OCI_DEFAULT_CERTS_PATH").filter(|v| !v.trim().is_empty()) else {
        return Ok(proxy.ca_bundle.to_owned());
    };
    match crate::fsutil::read_text_bounded(Path::new(own), crate::fsutil::MAX_INPUT) {
        Ok(text) => {
            let path = proxy.private_dir.join(GO_BUNDLE_FILE);
            write_new_private(&path, format!("{}{}\n", proxy.ca_pem, text.trim_end()).as_bytes())?;
            Ok(path)
        }
        Err(e) => {
            warnings.push(format!(
                "cannot read `OCI_DEFAULT_CERTS_PATH` (`{own}`: {e}): Go OCI SDK programs will not trust the \
                 re-signing proxy; fix or unset it"
            ));
            Ok(PathBuf::from(own))
        }
    }
}

/// The user's `NODE_OPTIONS` with `--require "<preload>"` appended (quoted the way Node splits
/// `NODE_OPTIONS`).
fn node_options(user: Option<&str>, preload: &Path) -> OsString {
    let quoted = preload.to_string_lossy().replace('\\', "\\\\").replace('"', "\\\"");
    let ours = format!("--require \"{quoted}\"");
    match user.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => format!("{u} {ours}").into(),
        None => ours.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        url: SecretString,
        bundle: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("ca-bundle.pem");
        std::fs::write(&bundle, "CA\nROOTS\n").unwrap();
        Fixture { dir, url: SecretString::from("http://woci:s3cret@127.0.0.1:9"), bundle }
    }

    fn build(f: &Fixture, user: &[(&str, &str)]) -> ChildEnv {
        let resign = super::super::hosts::HostMatcher::oci_and(["127.0.0.1:8443"]);
        let facts = ProxyFacts {
            url: &f.url,
            ca_bundle: &f.bundle,
            ca_pem: "CA\n",
            private_dir: f.dir.path(),
            resign: &resign,
        };
        let env: Env = user.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ChildEnv::build(&facts, &env).unwrap()
    }

    fn get<'a>(env: &'a ChildEnv, key: &str) -> Option<&'a str> {
        env.set.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.to_str().unwrap())
    }

    #[test]
    fn every_runtime_gets_the_proxy_and_the_bundle() {
        let f = fixture();
        let env = build(&f, &[]);
        assert_eq!(get(&env, "HTTPS_PROXY"), Some("http://woci:s3cret@127.0.0.1:9"));
        assert_eq!(get(&env, "https_proxy"), Some("http://woci:s3cret@127.0.0.1:9"));
        let bundle = f.bundle.to_str().unwrap();
        for k in CONTAINER_VARS[2..].iter().chain(&["OCI_DEFAULT_CERTS_PATH"]) {
            assert_eq!(get(&env, k), Some(bundle), "{k}");
        }
        assert_eq!(get(&env, "NODE_USE_ENV_PROXY"), Some("1"));
        let preload = f.dir.path().join(NODE_PRELOAD_FILE);
        assert_eq!(get(&env, "NODE_OPTIONS"), Some(format!("--require \"{}\"", preload.display()).as_str()));
        assert_eq!(std::fs::read_to_string(&preload).unwrap(), NODE_PRELOAD);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&preload).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(env.remove, vec![OsString::from("NO_PROXY"), OsString::from("no_proxy")]);
        assert!(env.warnings.is_empty(), "{:?}", env.warnings);
        assert!(!f.dir.path().join(GO_BUNDLE_FILE).exists(), "no Go bundle without the user's own");
    }

    #[test]
    fn the_users_no_proxy_is_kept_but_for_hosts_the_proxy_re_signs() {
        let f = fixture();
        let list = "localhost, 169.254.169.254,.intranet.example,*.oraclecloud.com,objectstorage.us-ashburn-1.oraclecloud.com,\
                    com,oraclegovcloud.uk,127.0.0.0/8,10.0.0.0/8,*";
        let env = build(&f, &[("no_proxy", list), ("HTTP_PROXY", "http://corp:3128")]);
        assert_eq!(get(&env, "no_proxy"), Some("localhost,169.254.169.254,.intranet.example,10.0.0.0/8"));
        // The `*` sent plain HTTP direct too: without it, the user's HTTP proxy must not apply.
        assert!(env.remove.iter().any(|v| v == "HTTP_PROXY") && env.remove.iter().any(|v| v == "http_proxy"));
        // A plain suffix of a re-signed host (Python's `requests` matches those) goes too.
        let env = build(&fixture(), &[("no_proxy", "cloud.com,ud.com,r-oci.com,.0.0.1,example.com")]);
        assert_eq!(get(&env, "no_proxy"), Some("example.com"));
        assert_eq!(env.remove, vec![OsString::from("NO_PROXY")], "the user set only no_proxy");
        let env = build(&fixture(), &[("NO_PROXY", "*"), ("no_proxy", ".oraclecloud.com")]);
        assert_eq!(
            env.remove,
            ["NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy"].map(OsString::from),
            "nothing left"
        );
    }

    #[test]
    fn the_users_node_options_are_kept_and_paths_quoted() {
        let f = fixture();
        let env = build(&f, &[("NODE_OPTIONS", " --max-old-space-size=512 --require ./mine.js ")]);
        let preload = f.dir.path().join(NODE_PRELOAD_FILE);
        assert_eq!(
            get(&env, "NODE_OPTIONS").unwrap(),
            format!("--max-old-space-size=512 --require ./mine.js --require \"{}\"", preload.display())
        );
        assert_eq!(
            node_options(None, Path::new("/tmp/a b/\"q\\x.cjs")),
            OsString::from(r#"--require "/tmp/a b/\"q\\x.cjs""#)
        );
    }

    #[test]
    fn an_explicit_node_use_env_proxy_is_the_users() {
        let f = fixture();
        let on = build(&f, &[("NODE_USE_ENV_PROXY", "1")]);
        assert_eq!(on.set.iter().filter(|(k, _)| k == "NODE_USE_ENV_PROXY").count(), 0, "inherited as it is");
        assert!(on.warnings.is_empty());
        let f = fixture();
        let off = build(&f, &[("NODE_USE_ENV_PROXY", "0")]);
        assert_eq!(off.set.iter().filter(|(k, _)| k == "NODE_USE_ENV_PROXY").count(), 0);
        assert_eq!(off.warnings.len(), 1);
        assert!(off.warnings[0].contains("`NODE_USE_ENV_PROXY=0`") && off.warnings[0].contains("token"));
        assert!(!off.warnings[0].contains("s3cret"));
    }

    #[test]
    fn the_users_oci_default_certs_path_is_kept_plus_the_per_run_ca() {
        let f = fixture();
        let own = f.dir.path().join("corp.pem");
        std::fs::write(&own, "CORP\n\n").unwrap();
        let env = build(&f, &[("OCI_DEFAULT_CERTS_PATH", own.to_str().unwrap())]);
        let go = f.dir.path().join(GO_BUNDLE_FILE);
        assert_eq!(get(&env, "OCI_DEFAULT_CERTS_PATH"), Some(go.to_str().unwrap()));
        assert_eq!(std::fs::read_to_string(&go).unwrap(), "CA\nCORP\n", "no system roots added to a narrowed pool");
        assert!(env.warnings.is_empty());

        let f = fixture();
        let missing = f.dir.path().join("missing.pem");
        let env = build(&f, &[("OCI_DEFAULT_CERTS_PATH", missing.to_str().unwrap())]);
        assert_eq!(get(&env, "OCI_DEFAULT_CERTS_PATH"), Some(missing.to_str().unwrap()), "left as the user set it");
        assert_eq!(env.warnings.len(), 1);
        assert!(env.warnings[0].contains("`OCI_DEFAULT_CERTS_PATH`") && env.warnings[0].contains("Go"));
    }
}
