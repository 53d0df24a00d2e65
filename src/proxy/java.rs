//! Java programs under `--auto-refresh` / `--exec`: the JVM settings that send the OCI Java SDK's
//! requests through the re-signing proxy and make the JVM trust the per-run CA.
//!
//! The OCI Java SDK 3.x sends its requests with Jersey and, by default, Jersey's Apache connector,
//! which takes its proxy only from the client property `jersey.config.client.proxy.uri`: the
//! JVM's `https.proxyHost` and `HTTPS_PROXY` never reach it (the connector builds Apache
//! HttpClient without `useSystemProperties`). Jersey copies every system property into each
//! client's configuration when `jersey.config.allowSystemPropertiesProvider=true`, so system
//! properties can set that client property and the proxy credentials without the program
//! changing; a small Java agent ([`agent`]) makes that copy reliable for clients created at the
//! same moment. Trust comes from `javax.net.ssl.trustStore`, which the SDK's default TLS setup
//! reads: a PKCS#12 trust store ([`pkcs12`]) with the child's CA bundle (per-run CA, the user's
//! bundles, the system roots).
//!
//! The options, the proxy secret among them, go into an argument file (0600, in a private 0700
//! folder beside the proxy's) named by `JDK_JAVA_OPTIONS`: the JVM prints that variable at
//! start-up (`NOTE: Picked up JDK_JAVA_OPTIONS: "@…"`) but not the file. `JAVA_TOOL_OPTIONS`
//! could name a file only through `-XX:VMOptionsFile`, which Java 8 does not know (its JVM would
//! refuse to start), while Java 8 ignores `JDK_JAVA_OPTIONS` altogether. Nothing is set when the
//! user already set one of these properties where woci can see it (the three JVM option
//! variables, the program's arguments): one warning says so, and the SDK then recovers from each
//! renewal by re-reading the token file after a 401.

mod agent;
mod pkcs12;

use super::ca::write_new_private;
use crate::error::{Error, Result};
use crate::settings::Env;
use rustls::pki_types::CertificateDer;
use std::ffi::OsString;
use std::path::Path;

/// The variable woci extends with its argument file.
const JDK_JAVA_OPTIONS: &str = "JDK_JAVA_OPTIONS";
/// Where a JVM reads options besides its command line; a property set in any of them is the
/// user's explicit choice.
const OPTION_VARS: [&str; 3] = ["JAVA_TOOL_OPTIONS", JDK_JAVA_OPTIONS, "_JAVA_OPTIONS"];

const TRUST_STORE: &str = "javax.net.ssl.trustStore";
const ALLOW_SYSTEM_PROPERTIES: &str = "jersey.config.allowSystemPropertiesProvider";
const PROXY_URI: &str = "jersey.config.client.proxy.uri";
const PROXY_USERNAME: &str = "jersey.config.client.proxy.username";
const PROXY_PASSWORD: &str = "jersey.config.client.proxy.password";
/// The system properties woci sets; any of them set by the user makes woci leave the JVM alone.
const OUR_PROPERTIES: [&str; 5] = [TRUST_STORE, ALLOW_SYSTEM_PROPERTIES, PROXY_URI, PROXY_USERNAME, PROXY_PASSWORD];

/// The user's JVM option variable `name` (`JAVA_TOOL_OPTIONS`, `JDK_JAVA_OPTIONS`,
/// `_JAVA_OPTIONS`), unless blank.
fn option_var<'a>(env: &'a Env, name: &str) -> Option<&'a str> {
    env.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
}

/// The files a Java child reads, in their own private folder, and the `JDK_JAVA_OPTIONS` value
/// that names them; removed on drop (keep it until the child is gone).
#[derive(Debug)]
pub struct JavaFiles {
    _dir: tempfile::TempDir,
    options: OsString,
}

impl Drop for JavaFiles {
    fn drop(&mut self) {
        // Before the folder's own drop, so that a made-up parent left empty goes too.
        let _ = std::fs::remove_dir_all(self._dir.path());
        super::ca::release_parent(self._dir.path());
    }
}

impl JavaFiles {
    /// The variable to set for the child: `JDK_JAVA_OPTIONS`, the user's value then `@<file>`.
    pub fn env(&self) -> (OsString, OsString) {
        (JDK_JAVA_OPTIONS.into(), self.options.clone())
    }
}

/// Points a Java child (started with `args`) at the proxy: writes the trust store and the argument
/// file, whose `@<file>` goes after the user's own `JDK_JAVA_OPTIONS` ([`JavaFiles::env`]).
/// Returns `None`, after one warning, when the user set one of woci's properties already or the
/// temporary folder's path cannot be written in Java options.
pub fn prepare(proxy: &super::ProxyHandle, user_env: &Env, args: &[OsString]) -> Result<Option<JavaFiles>> {
    if let Some((key, place)) = user_choice(user_env, args) {
        tracing::warn!(
            "{place} sets `{key}`, so woci leaves the proxy and trust settings of Java programs alone: the OCI Java \
             SDK then bypasses the re-signing proxy and gets one 401 after each renewal"
        );
        return Ok(None);
    }
    let bundle = proxy.ca_bundle_path();
    // The bundle's folder is in the temporary folder the proxy chose; this one goes beside it.
    let parent = bundle.parent().and_then(Path::parent).unwrap_or(Path::new("."));
    if !quotable(parent) {
        tracing::warn!(
            "the temporary folder `{}` has a quote or a backslash, which Java option files cannot hold: Java programs \
             bypass the re-signing proxy (the folder is `$XDG_RUNTIME_DIR/woci-proxy` when that is set and private, \
             else under `TMPDIR`: point that variable at a plain folder)",
            parent.display()
        );
        return Ok(None);
    }
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut proxy.bundle.pem().as_bytes())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Other(format!("cannot read the certificates of `{}`: {e}", bundle.display())))?;
    let dir = super::ca::private_dir(parent)?;
    let (store, agent, args) =
        (dir.path().join("truststore.p12"), dir.path().join("jersey-warmup.jar"), dir.path().join("java.args"));
    write_new_private(&store, &pkcs12::trust_store(&certs))?;
    write_new_private(&agent, &agent::jar())?;
    let text = zeroize::Zeroizing::new(argument_file(&agent, &store, proxy.addr(), proxy.secret.expose()));
    write_new_private(&args, text.as_bytes())?;
    let reference = quote(&format!("@{}", args.display()));
    let options = match option_var(user_env, JDK_JAVA_OPTIONS) {
        Some(own) => format!("{own} {reference}"),
        None => reference,
    };
    tracing::debug!(dir = %dir.path().display(), certificates = certs.len(), "Java programs get a trust store and the proxy settings");
    Ok(Some(JavaFiles { _dir: dir, options: options.into() }))
}

/// The first of woci's properties the user set, and where: an option variable or the program's
/// arguments (`java -D…`).
fn user_choice(env: &Env, args: &[OsString]) -> Option<(&'static str, String)> {
    for (var, value) in OPTION_VARS.iter().filter_map(|var| Some((var, option_var(env, var)?))) {
        if let Some(key) = sets_ours(value.split_whitespace()) {
            return Some((key, format!("`{var}`")));
        }
    }
    sets_ours(args.iter().map(|a| a.to_string_lossy())).map(|key| (key, "the program's command line".to_owned()))
}

/// The first of woci's properties among JVM option words (`-Dkey=value`, `-Dkey`, quoted or not).
fn sets_ours<S: AsRef<str>>(mut words: impl Iterator<Item = S>) -> Option<&'static str> {
    words.find_map(|w| {
        let name = w.as_ref().trim_start_matches(['"', '\'']).strip_prefix("-D")?;
        let name = name.split_once('=').map_or(name, |(k, _)| k);
        OUR_PROPERTIES.iter().copied().find(|p| *p == name)
    })
}

/// The argument file: the agent, then one `-Dkey=value` per line; paths quoted.
fn argument_file(agent: &Path, store: &Path, addr: std::net::SocketAddr, secret: &str) -> String {
    format!(
        "{}\n{}\n-D{ALLOW_SYSTEM_PROPERTIES}=true\n-D{PROXY_URI}=http://{addr}\n-D{PROXY_USERNAME}={}\n\
         -D{PROXY_PASSWORD}={secret}\n",
        quote(&format!("-javaagent:{}", agent.display())),
        quote(&format!("-D{TRUST_STORE}={}", store.display())),
        super::PROXY_USER
    )
}

/// Whether `p` can be written between double quotes in an argument file or `JDK_JAVA_OPTIONS`:
/// a backslash is an escape there and a quote would end the argument.
fn quotable(p: &Path) -> bool {
    !p.to_string_lossy().contains(['"', '\\'])
}

/// `"text"`, one argument for the Java launcher even with spaces.
fn quote(text: &str) -> String {
    format!("\"{text}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_property_the_user_set_anywhere_woci_can_see_is_respected() {
        let none: &[OsString] = &[];
        assert_eq!(user_choice(&user(&[]), none), None);
        let u = user(&[("JAVA_TOOL_OPTIONS", "-Xmx1g -Djavax.net.ssl.trustStore=/etc/corp.jks")]);
        assert_eq!(user_choice(&u, none), Some((TRUST_STORE, "`JAVA_TOOL_OPTIONS`".to_owned())));
        let u = user(&[("_JAVA_OPTIONS", "'-Djersey.config.client.proxy.uri=http://corp:3128'")]);
        assert_eq!(user_choice(&u, none), Some((PROXY_URI, "`_JAVA_OPTIONS`".to_owned())));
        let u = user(&[("JDK_JAVA_OPTIONS", "-Djersey.config.allowSystemPropertiesProvider")]);
        assert_eq!(user_choice(&u, none).map(|c| c.0), Some(ALLOW_SYSTEM_PROPERTIES));
        let args = args(&["-cp", "app.jar", "-Djavax.net.ssl.trustStore=x.p12", "Main"]);
        assert_eq!(user_choice(&user(&[]), &args), Some((TRUST_STORE, "the program's command line".to_owned())));
        // Other properties, even sharing a prefix, are not woci's.
        let u = user(&[
            ("JAVA_TOOL_OPTIONS", "-Djavax.net.ssl.trustStorePassword=x -Dhttps.proxyHost=corp"),
            ("JDK_JAVA_OPTIONS", "  "),
        ]);
        assert_eq!(user_choice(&u, &["-Djavax.net.ssl.trustStoreType=JKS".into()]), None);
        assert_eq!(option_var(&u, JDK_JAVA_OPTIONS), None, "blank variables are not the user's choice");
    }

    #[test]
    fn argument_file_quotes_the_paths() {
        let text = argument_file(
            Path::new("/tmp/a b/jersey-warmup.jar"),
            Path::new("/tmp/a b/truststore.p12"),
            "127.0.0.1:4242".parse().unwrap(),
            "s3cr3t",
        );
        assert_eq!(
            text,
            "\"-javaagent:/tmp/a b/jersey-warmup.jar\"\n\
             \"-Djavax.net.ssl.trustStore=/tmp/a b/truststore.p12\"\n\
             -Djersey.config.allowSystemPropertiesProvider=true\n\
             -Djersey.config.client.proxy.uri=http://127.0.0.1:4242\n\
             -Djersey.config.client.proxy.username=woci\n\
             -Djersey.config.client.proxy.password=s3cr3t\n"
        );
        assert!(quotable(Path::new("/tmp/a b")));
        assert!(!quotable(Path::new("/tmp/a\"b")) && !quotable(Path::new("C:\\tmp")));
    }

    async fn proxy(tmp: &Path) -> super::super::ProxyHandle {
        let key = crate::signer::tests::test_key().public().clone();
        let (_tx, rx) = tokio::sync::watch::channel(crate::secret::SecretString::from("t"));
        super::super::start(super::super::ProxyConfig::new(key, &[], tmp), rx).await.unwrap()
    }

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(Into::into).collect()
    }

    #[tokio::test]
    async fn prepare_writes_private_files_and_extends_the_users_options() {
        let tmp = tempfile::tempdir().unwrap();
        let p = proxy(tmp.path()).await;
        let files = prepare(&p, &user(&[("JDK_JAVA_OPTIONS", "-Xmx1g")]), &args(&["-jar", "app.jar"]))
            .unwrap()
            .expect("prepared");
        let args = files._dir.path().join("java.args");
        assert_eq!(files.env(), ("JDK_JAVA_OPTIONS".into(), format!("-Xmx1g \"@{}\"", args.display()).into()));
        let text = std::fs::read_to_string(&args).unwrap();
        let url = url::Url::parse(p.proxy_url().expose()).unwrap();
        assert!(text.contains(&format!("-Djersey.config.client.proxy.uri=http://{}\n", p.addr())), "{text}");
        assert!(text.contains("-Djersey.config.client.proxy.username=woci\n"), "{text}");
        assert!(text.contains(&format!("-Djersey.config.client.proxy.password={}\n", url.password().unwrap())));
        assert_eq!(std::fs::read(files._dir.path().join("jersey-warmup.jar")).unwrap(), agent::jar());
        let store = std::fs::read(files._dir.path().join("truststore.p12")).unwrap();
        let ca = std::fs::read(p.ca_bundle_path()).unwrap();
        let first = rustls_pemfile::certs(&mut ca.as_slice()).next().unwrap().unwrap();
        assert!(store.windows(first.len()).any(|w| w == first.as_ref()), "the per-run CA is in the trust store");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(files._dir.path()), 0o700);
            assert_eq!((mode(&args), mode(&files._dir.path().join("truststore.p12"))), (0o600, 0o600));
        }
        assert_eq!(files._dir.path().parent(), Some(tmp.path()));
        let dir = files._dir.path().to_owned();
        drop(files);
        assert!(!dir.exists(), "removed with the handle");
        p.shutdown().await;
    }

    #[tokio::test]
    async fn prepare_leaves_a_jvm_alone_when_the_user_chose_a_trust_store() {
        let tmp = tempfile::tempdir().unwrap();
        let p = proxy(tmp.path()).await;
        let a = args(&["-Djavax.net.ssl.trustStore=/etc/my.p12", "-jar", "app.jar"]);
        assert!(prepare(&p, &user(&[]), &a).unwrap().is_none());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "only the proxy's own folder");
        p.shutdown().await;
    }
}
