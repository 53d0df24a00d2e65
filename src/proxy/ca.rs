//! The ephemeral per-run certificate authority.
//!
//! Each proxy run creates a fresh CA (ECDSA P-256, key only in memory, gone when woci exits), and
//! signs one leaf certificate per opened host on demand. The child trusts the CA through a CA bundle
//! file (0600, removed at shutdown) that also holds the roots it would otherwise have used, so hosts
//! that are only tunnelled still verify.

use crate::error::{Error, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A per-run CA plus a cache of TLS server configurations, one per host.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// All leaves share one key: generating a key per host buys nothing, the CA is per run anyway.
    leaf_key: KeyPair,
    cache: Mutex<HashMap<String, Arc<ServerConfig>>>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ca([per-run])")
    }
}

fn cert_error(e: rcgen::Error) -> Error {
    Error::Other(format!("cannot create the proxy certificate authority: {e}"))
}

impl Ca {
    /// Creates a fresh CA.
    pub fn new() -> Result<Ca> {
        let key = KeyPair::generate().map_err(cert_error)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "woci per-run proxy CA");
        dn.push(DnType::OrganizationName, "woci");
        params.distinguished_name = dn;
        // Path length 0: this CA signs leaves only. Strict verifiers (Python 3.13's
        // VERIFY_X509_STRICT) want keyCertSign and a critical basicConstraints, which rcgen emits.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).map_err(cert_error)?;
        let leaf_key = KeyPair::generate().map_err(cert_error)?;
        Ok(Ca { cert, key, leaf_key, cache: Mutex::new(HashMap::new()) })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// The TLS server configuration presenting a leaf for `host` (a DNS name or an IP address,
    /// which becomes an IP SAN). Cached per host for the whole run.
    pub fn server_config(&self, host: &str) -> Result<Arc<ServerConfig>> {
        let host = crate::realm::unbracket(host).to_ascii_lowercase();
        if let Some(cfg) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&host) {
            return Ok(cfg.clone());
        }
        let mut params = CertificateParams::new(vec![host.clone()]).map_err(cert_error)?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, host.as_str());
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let leaf = params.signed_by(&self.leaf_key, &self.cert, &self.key).map_err(cert_error)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()));
        let tls_error = |e: rustls::Error| Error::Other(format!("cannot configure TLS: {e}"));
        let mut cfg = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(tls_error)?
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), self.cert_der()], key)
            .map_err(tls_error)?;
        // We serve HTTP/1.x only inside the tunnel; announcing it keeps clients off HTTP/2.
        cfg.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
        let cfg = Arc::new(cfg);
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(host, cfg.clone());
        Ok(cfg)
    }
}

/// PEM text of DER certificates.
pub fn der_to_pem(certs: &[CertificateDer<'_>]) -> String {
    let pem = |cert: &CertificateDer<'_>| {
        let b64 = STANDARD.encode(cert);
        let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|l| std::str::from_utf8(l).unwrap_or_default()).collect();
        format!("-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n", lines.join("\n"))
    };
    certs.iter().map(pem).collect()
}

/// The roots the child needs besides the per-run CA: the user's own bundles (`REQUESTS_CA_BUNDLE`,
/// `SSL_CERT_FILE`, `--cert-bundle`; they point at private CAs such as a corporate one) followed by
/// the system roots, so that tunnelled hosts verify whichever variable the child reads.
pub fn child_roots_pem(user_bundles: &[PathBuf]) -> Result<String> {
    let mut out = String::new();
    for path in user_bundles {
        let text = crate::fsutil::read_text_bounded(path, crate::fsutil::MAX_CA_BUNDLE)
            .map_err(|e| Error::io("cannot read CA bundle", path, e))?;
        out.push_str(text.trim_end());
        out.push('\n');
    }
    let native = rustls_native_certs::load_native_certs();
    if native.certs.is_empty() {
        tracing::warn!(
            errors = native.errors.len(),
            "no system root certificates found; tunnelled hosts may fail to verify"
        );
    }
    out.push_str(&der_to_pem(&native.certs));
    Ok(out)
}

/// The CA bundle handed to the child: a file (0600) in a private folder (0700) of its own, both
/// removed by [`BundleFile::remove`] or on drop.
#[derive(Debug)]
pub struct BundleFile {
    dir: tempfile::TempDir,
    path: PathBuf,
    pem: String,
}

/// Creates `path` (0600, never an existing file: the per-run folders are fresh) with `contents`.
/// Not synced: nobody reads these files before the child starts, and a crash leaves them to the
/// sweep (the bundle syncs itself).
pub(super) fn write_new_private(path: &Path, contents: &[u8]) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| per_run_error("cannot create", path, e))?;
    file.write_all(contents).map_err(|e| per_run_error("cannot write", path, e))?;
    Ok(file)
}

/// A per-run file that cannot be written; a full temporary folder is said with its ways out.
fn per_run_error(action: &'static str, path: &Path, e: std::io::Error) -> Error {
    let full = matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT));
    let e = Error::io(action, path, e);
    match full {
        true => e.with_hint(
            "free space in the temporary folder (`TMPDIR`, else `/tmp`) or point `TMPDIR` at another; \
             `--no-resign-proxy` needs none",
        ),
        false => e,
    }
}

impl BundleFile {
    /// Creates a new, unpredictably named private folder in `parent` (never an existing one) and
    /// writes `pem` to `ca-bundle.pem` in it.
    pub fn create(parent: &Path, pem: &str) -> Result<BundleFile> {
        let dir = private_dir(parent)?;
        let path = dir.path().join("ca-bundle.pem");
        // From here on, drop cleans up whatever exists.
        let bundle = BundleFile { dir, path, pem: pem.to_owned() };
        let file = write_new_private(&bundle.path, pem.as_bytes())?;
        file.sync_all().map_err(|e| per_run_error("cannot write", &bundle.path, e))?;
        Ok(bundle)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What it holds (PEM).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The private folder holding it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Removes the folder and every file in it (the bundle, the files [`super::child_env`] adds)
    /// now (idempotent).
    pub fn remove(&self) {
        match std::fs::remove_dir_all(self.dir.path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %self.dir.path().display(), error = %e, "cannot remove the proxy CA bundle")
            }
            _ => release_parent(self.dir.path()),
        }
    }
}

/// A new private (0700) per-run folder in `parent`, unpredictably named (never an existing one)
/// and removed with its files on drop, or by [`sweep_stale`] once this process is gone.
pub(crate) fn private_dir(parent: &Path) -> Result<tempfile::TempDir> {
    // The pid tells a later woci whether the owner is gone (see `sweep_stale`).
    crate::fsutil::new_private_dir(parent, &format!("{STALE_PREFIX}{}-", std::process::id()))
}

/// Removes the parent of the per-run folder `dir` when it is a made-up one left empty.
pub(super) fn release_parent(dir: &Path) {
    if let Some(parent) = dir.parent() {
        crate::fsutil::release_private_folder(parent, "woci-proxy");
    }
}

/// Prefix of the per-run folders: `woci-proxy-<pid>-<random>`.
const STALE_PREFIX: &str = "woci-proxy-";

/// Removes `woci-proxy-<pid>-*` folders in `parent` that belong to this user and whose process is
/// gone (a woci killed with SIGKILL cannot clean up). Symlinks and other users' folders are left
/// alone; returns how many were removed.
pub fn sweep_stale(parent: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(parent) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STALE_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        #[cfg(unix)]
        let mine = std::os::unix::fs::MetadataExt::uid(&meta) == rustix::process::geteuid().as_raw();
        #[cfg(not(unix))]
        let mine = true;
        if !meta.is_dir() || !mine || crate::fsutil::process_alive(pid) {
            continue;
        }
        if std::fs::remove_dir_all(&path).is_ok() {
            tracing::debug!(path = %path.display(), pid, "removed the folder of a proxy whose woci is gone");
            removed += 1;
        }
    }
    removed
}

/// How old a made-up parent must be before a sweep may remove it: one a woci starting now made
/// is still empty for a moment.
const MADE_UP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Sweeps the made-up parents (`woci-proxy-<uid>.<random>`, used when another user took the usual
/// name) a killed woci left in `temp_dir`: each is a new name, so no later run would look in it.
/// Only real, private folders of this user's are looked into; one older than [`MADE_UP_AGE`] is
/// removed once its stale per-run folders are (a live run's keeps it non-empty).
#[cfg(unix)]
pub fn sweep_made_up(temp_dir: &Path) {
    let prefix = format!("{STALE_PREFIX}{}.", crate::fsutil::user_id());
    let Ok(entries) = std::fs::read_dir(temp_dir) else { return };
    for entry in entries.flatten() {
        if !entry.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)) {
            continue;
        }
        let path = entry.path();
        if !matches!(crate::fsutil::PrivateDir::open(&path, false), Ok(Some(_))) {
            continue;
        }
        let old = std::fs::symlink_metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > MADE_UP_AGE));
        sweep_stale(&path);
        if old && std::fs::remove_dir(&path).is_ok() {
            tracing::debug!(path = %path.display(), "removed a made-up proxy folder a killed woci left");
        }
    }
}

impl Drop for BundleFile {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full temporary folder names its ways out; other failures stay as they are.
    #[test]
    fn a_full_temporary_folder_says_how_to_go_on() {
        let full =
            per_run_error("cannot write", Path::new("/t/b.pem"), std::io::Error::from_raw_os_error(libc::ENOSPC));
        let text = full.to_string();
        assert!(text.starts_with("cannot write `/t/b.pem`: ") && text.contains("point `TMPDIR` at another"), "{text}");
        assert!(text.contains("`--no-resign-proxy` needs none"), "{text}");
        let denied =
            per_run_error("cannot write", Path::new("/t/b.pem"), std::io::Error::from_raw_os_error(libc::EACCES));
        assert!(!denied.to_string().contains("TMPDIR"), "{denied}");
    }

    #[test]
    fn leaf_configs_are_cached_per_host() {
        let ca = Ca::new().unwrap();
        let a = ca.server_config("Example.COM").unwrap();
        let b = ca.server_config("example.com").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let ip = ca.server_config("127.0.0.1").unwrap();
        assert!(!Arc::ptr_eq(&a, &ip));
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }

    /// A parent made up because another user held `woci-proxy-<uid>` goes with its last run;
    /// the usual one stays.
    #[test]
    fn a_made_up_parent_is_removed_once_empty() {
        let top = tempfile::tempdir().unwrap();
        let uid = crate::fsutil::user_id();
        let (made_up, usual) =
            (top.path().join(format!("woci-proxy-{uid}.x1")), top.path().join(format!("woci-proxy-{uid}")));
        for parent in [&made_up, &usual] {
            std::fs::create_dir(parent).unwrap();
            let (a, b) = (BundleFile::create(parent, "pem").unwrap(), BundleFile::create(parent, "pem").unwrap());
            drop(a);
            assert!(parent.exists(), "another run's folder is still in it");
            drop(b);
        }
        assert!(!made_up.exists());
        assert!(usual.exists());
    }

    #[test]
    fn bundle_file_is_private_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let ca = Ca::new().unwrap();
        let file = BundleFile::create(parent.path(), &ca.cert_pem()).unwrap();
        let path = file.path().to_owned();
        let dir = file.dir().to_owned();
        assert_eq!(path.parent(), Some(dir.as_path()));
        assert_eq!(dir.parent(), Some(parent.path()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir), 0o700);
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), ca.cert_pem());
        let second = BundleFile::create(parent.path(), "x").unwrap();
        assert_ne!(second.dir(), dir, "each run gets its own folder");
        std::fs::write(dir.join("node-preload.cjs"), "x").unwrap();
        drop(file);
        assert!(!path.exists() && !dir.exists(), "the folder goes with every file in it");
        second.remove();
        second.remove();
        assert!(!second.dir().exists());
    }

    #[test]
    fn stale_folders_of_dead_owners_are_swept_live_ones_kept() {
        let parent = tempfile::tempdir().unwrap();
        let live = BundleFile::create(parent.path(), "x").unwrap();
        // A pid that cannot be running: beyond the kernel's pid_max.
        let dead = parent.path().join("woci-proxy-2147483646-abcdef");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join("ca-bundle.pem"), "x").unwrap();
        let unrelated = parent.path().join("woci-proxy-notapid");
        std::fs::create_dir(&unrelated).unwrap();
        #[cfg(unix)]
        {
            let target = tempfile::tempdir().unwrap();
            std::fs::write(target.path().join("keep"), "x").unwrap();
            std::os::unix::fs::symlink(target.path(), parent.path().join("woci-proxy-2147483645-link")).unwrap();
            assert_eq!(sweep_stale(parent.path()), 1);
            assert!(target.path().join("keep").exists(), "a symlink is not followed");
        }
        assert!(!dead.exists());
        assert!(live.dir().exists() && unrelated.exists());
        let name = live.dir().file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with(&format!("woci-proxy-{}-", std::process::id())), "{name}");
    }

    /// A made-up parent a killed woci left (another user held the usual name) is swept and, once
    /// old, removed; a new one (a woci starting now) and one a live run uses are kept.
    #[cfg(unix)]
    #[test]
    fn made_up_parents_a_killed_woci_left_are_swept() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let made_up = |name: &str, inner: &str, age: u64| {
            let dir = tmp.path().join(format!("woci-proxy-{}.{name}", crate::fsutil::user_id()));
            std::fs::create_dir(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::fs::create_dir(dir.join(inner)).unwrap();
            let when = crate::clock::Clock::now(&crate::clock::SystemClock) - std::time::Duration::from_secs(age);
            std::fs::File::open(&dir).unwrap().set_modified(when).unwrap();
            dir
        };
        let left = made_up("left", "woci-proxy-2147483646-a", 600);
        let new = made_up("new", "woci-proxy-2147483646-b", 0);
        let live = made_up("live", &format!("woci-proxy-{}-c", std::process::id()), 600);
        let other = tmp.path().join("woci-proxy-4242.other");
        std::fs::create_dir(&other).unwrap();
        sweep_made_up(tmp.path());
        assert!(!left.exists(), "left by a killed woci");
        assert!(new.exists() && std::fs::read_dir(&new).unwrap().count() == 0, "swept, kept while new");
        assert!(live.join(format!("woci-proxy-{}-c", std::process::id())).exists());
        assert!(other.exists(), "another uid's name is not looked at");
    }

    #[test]
    fn der_to_pem_round_trips() {
        let ca = Ca::new().unwrap();
        let pem = der_to_pem(&[ca.cert_der()]);
        let mut reader = std::io::Cursor::new(pem.as_bytes());
        let back: Vec<_> = rustls_pemfile::certs(&mut reader).collect::<std::result::Result<_, _>>().unwrap();
        assert_eq!(back, vec![ca.cert_der()]);
    }

    #[test]
    fn user_bundles_come_first_then_system_roots() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.pem");
        std::fs::write(&p, "PEM-A\n\n").unwrap();
        let roots = child_roots_pem(&[p.clone(), p]).unwrap();
        assert!(roots.starts_with("PEM-A\nPEM-A\n"), "{roots}");
        assert_eq!(roots.len() - "PEM-A\nPEM-A\n".len(), child_roots_pem(&[]).unwrap().len());
        assert!(child_roots_pem(&[dir.path().join("missing.pem")]).is_err());
    }
}
