//! The session folder `~/.oci/sessions/<profile>/`, in the layout `oci session authenticate`, the
//! Python woci, the SDKs and Terraform share: `token` (UPST, no trailing newline),
//! `oci_api_key.pem` (PKCS#8) + `oci_api_key_public.pem`, `refresh_token` (plain, or the
//! [`crate::crypto`] envelope), plus woci's `.lock` and daemon files. Folder 0700, files 0600,
//! every write atomic.

use crate::crypto;
use crate::error::{Error, Result};
use crate::fsutil::{self, FileLock};
use crate::jwt::{self, UpstClaims};
use crate::keys::KeyPair;
use crate::secret::SecretString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the key woci creates.
pub const KEY_FILE: &str = "oci_api_key.pem";
/// File name of the public key woci writes beside it.
pub const PUBLIC_KEY_FILE: &str = "oci_api_key_public.pem";
/// The Python woci's key file name, honoured when present.
pub const PY_WOCI_KEY_FILE: &str = "private_key.pem";

/// A `key_file` the OCI config names must exist: a missing one is an error, never silently
/// replaced by a new key (which would also rewrite the config's `key_file` and `fingerprint`).
pub fn require_configured_key(path: &Path, profile: &str) -> Result<()> {
    if path.is_file() {
        return Ok(());
    }
    if path.is_dir() {
        return Err(Error::Config(format!(
            "the `key_file` of profile `{profile}` in the OCI config, `{}`, is a folder, not a key file; set \
             `key_file` to the PEM file in it, or delete the `key_file` line so that woci creates a new key",
            path.display()
        )));
    }
    Err(Error::Config(format!(
        "the `key_file` of profile `{profile}` in the OCI config, `{}`, does not exist; restore it, or delete the \
         `key_file` line so that woci creates a new key",
        path.display()
    )))
}

/// Warns (once per call, one line) about a private key that group or others can read. woci warns
/// rather than refuses, like the `oci` CLI, because such keys are common and still work; the
/// fix is in the message.
pub fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "private key `{}` is readable by other users (mode {mode:o}); run `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The session folder of one profile.
#[derive(Debug, Clone)]
pub struct SessionStore {
    profile: String,
    dir: PathBuf,
}

/// What the stored refresh token looks like, without decrypting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshTokenState {
    /// No refresh token file.
    Absent,
    /// Plain text.
    Plain,
    /// Encrypted envelope.
    Encrypted,
}

impl SessionStore {
    /// The store of `profile` under `home/.oci/sessions`.
    pub fn new(home: &Path, profile: &str) -> Result<SessionStore> {
        crate::settings::validate_profile(profile)?;
        Ok(SessionStore { profile: profile.to_owned(), dir: home.join(".oci").join("sessions").join(profile) })
    }

    /// The profile name.
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `token`.
    pub fn token_path(&self) -> PathBuf {
        self.dir.join("token")
    }

    /// `refresh_token`.
    pub fn refresh_token_path(&self) -> PathBuf {
        self.dir.join("refresh_token")
    }

    /// When the IdP said the refresh token expires (unix seconds, not a secret). A file of its own
    /// so `refresh_token` keeps the Python woci's format.
    pub fn refresh_token_expiry_path(&self) -> PathBuf {
        self.dir.join("refresh_token.expires")
    }

    /// Records (or, with `None`, forgets) the refresh token's expiry.
    pub fn write_refresh_token_expiry(&self, unix: Option<i64>) -> Result<()> {
        let path = self.refresh_token_expiry_path();
        match unix {
            Some(t) => {
                self.ensure_dir()?;
                fsutil::write_atomic(&path, t.to_string().as_bytes())
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("cannot remove", path, e)),
                _ => Ok(()),
            },
        }
    }

    /// The recorded refresh token expiry, if any (an unreadable record counts as none).
    pub fn refresh_token_expiry(&self) -> Option<i64> {
        std::fs::read_to_string(self.refresh_token_expiry_path()).ok()?.trim().parse().ok()
    }

    /// `.lock`, the renewal lock.
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(".lock")
    }

    /// `woci_refresh.pid` (same name as the Python woci).
    pub fn pid_path(&self) -> PathBuf {
        self.dir.join("woci_refresh.pid")
    }

    /// `woci-daemon.log`.
    pub fn daemon_log_path(&self) -> PathBuf {
        self.dir.join("woci-daemon.log")
    }

    /// `woci-daemon.json`, the daemon's last known state.
    pub fn daemon_state_path(&self) -> PathBuf {
        self.dir.join("woci-daemon.json")
    }

    /// Creates the folder (0700) if needed, after [`Self::check_safe`].
    pub fn ensure_dir(&self) -> Result<()> {
        self.check_safe()?;
        fsutil::ensure_private_dir(&self.dir)
    }

    /// Refuses a session folder that is a symbolic link (woci would write tokens and keys wherever
    /// it points), and `~/.oci` or `~/.oci/sessions` writable by every user (they could swap the
    /// folder or the config), as ssh refuses such a `~/.ssh` (world-writable; see below). Both are [`Error::Config`] (exit 2).
    pub fn check_safe(&self) -> Result<()> {
        if let Ok(meta) = std::fs::symlink_metadata(&self.dir) {
            if meta.file_type().is_symlink() {
                return Err(Error::Config(format!(
                    "session folder `{}` is a symbolic link; woci does not follow it: replace it with a real folder",
                    self.dir.display()
                )));
            }
        }
        #[cfg(unix)]
        for folder in self.dir.ancestors().skip(1).take(2) {
            use std::os::unix::fs::PermissionsExt;
            let Ok(meta) = std::fs::metadata(folder) else { continue };
            let mode = meta.permissions().mode();
            // World-writable only: group-writable is the norm with per-user groups (umask 002), and
            // a sticky folder (like /tmp) still keeps others from swapping entries.
            if mode & 0o002 != 0 && mode & 0o1000 == 0 {
                return Err(Error::Config(format!(
                    "`{}` is writable by every user (mode {:o}); run `chmod o-w {}`",
                    folder.display(),
                    mode & 0o7777,
                    folder.display()
                )));
            }
        }
        Ok(())
    }

    /// Takes the per-profile renewal lock (waits at most `timeout`).
    pub fn lock(&self, timeout: Duration) -> Result<FileLock> {
        self.ensure_dir()?;
        FileLock::acquire(&self.lock_path(), timeout)
    }

    /// [`Self::lock`], also saying whether another process held it first.
    pub fn lock_noting_wait(&self, timeout: Duration) -> Result<(FileLock, bool)> {
        self.ensure_dir()?;
        FileLock::acquire_noting_wait(&self.lock_path(), timeout)
    }

    /// Removes the temp files of atomic writes that a killed woci left in the session folder
    /// (`.<name>.<pid>.<rand>.tmp` whose pid is gone). Call with the renewal lock held.
    pub fn sweep_stray_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !(name.starts_with('.') && name.ends_with(".tmp")) {
                continue;
            }
            let pid = name.rsplitn(3, '.').nth(2).and_then(|rest| rest.rsplit('.').next()?.parse::<u32>().ok());
            if pid.is_some_and(|p| !fsutil::process_alive(p)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// `.last_failure`, beside the lock: the last renewal failure, for callers that waited on it.
    pub fn failure_path(&self) -> PathBuf {
        self.dir.join(".last_failure")
    }

    /// Records a failed renewal (best effort: a failure to record is only logged).
    pub fn record_failure(&self, record: &FailureRecord) {
        let write = || -> Result<()> {
            let json = serde_json::to_vec(record).map_err(|e| Error::Other(e.to_string()))?;
            fsutil::write_atomic(&self.failure_path(), &json)
        };
        if let Err(e) = write() {
            tracing::debug!("cannot record the renewal failure: {e}");
        }
    }

    /// The recorded failure if it happened at or after `since_ms` (epoch milliseconds).
    pub fn failure_since(&self, since_ms: i64) -> Option<FailureRecord> {
        let bytes = std::fs::read(self.failure_path()).ok()?;
        serde_json::from_slice::<FailureRecord>(&bytes).ok().filter(|r| r.at >= since_ms)
    }

    /// Forgets the recorded failure (after a success).
    pub fn clear_failure(&self) {
        let _ = std::fs::remove_file(self.failure_path());
    }

    /// Fails when the session folder cannot take the new refresh token right now (read-only,
    /// full), before a refresh token is spent.
    pub fn check_writable(&self) -> Result<()> {
        self.ensure_dir()?;
        fsutil::check_writable(&self.dir, 64 * 1024)
    }

    /// Where a refresh token that could not be stored in the session folder is kept instead: a
    /// private folder of this user under the system's temporary folder (usually another file
    /// system).
    pub fn rescue_path(&self) -> PathBuf {
        let uid = fsutil::user_id();
        std::env::temp_dir().join(format!("woci-rescue-{uid}")).join(format!("{}.refresh_token", self.profile))
    }

    /// Saves a refresh token to [`Self::rescue_path`] (encrypted like the stored one).
    pub fn write_rescue(&self, token: &SecretString, passphrase: Option<&SecretString>) -> Result<PathBuf> {
        let path = self.rescue_path();
        if let Some(dir) = path.parent() {
            fsutil::ensure_private_dir(dir)?;
        }
        fsutil::write_atomic(&path, seal(token, passphrase).expose().as_bytes())?;
        Ok(path)
    }

    /// Reads the UPST at `path` (the config's `security_token_file`, or [`Self::token_path`]).
    /// `Ok(None)` when absent or empty; a token that does not decode is [`Error::CorruptFile`].
    pub fn read_token_at(path: &Path) -> Result<Option<(SecretString, UpstClaims)>> {
        let Some(bytes) = fsutil::read_optional(path)? else { return Ok(None) };
        let text = String::from_utf8(bytes).map_err(|_| Error::corrupt(path, "not UTF-8 text"))?;
        let token = text.trim();
        if token.is_empty() {
            return Ok(None);
        }
        let claims = jwt::decode_upst(token).map_err(|e| Error::corrupt(path, e.to_string()))?;
        Ok(Some((SecretString::from(token), claims)))
    }

    /// Reads this profile's `token`.
    pub fn read_token(&self) -> Result<Option<(SecretString, UpstClaims)>> {
        Self::read_token_at(&self.token_path())
    }

    /// Writes `token` atomically, without a trailing newline (readers do not strip it).
    pub fn write_token(&self, token: &SecretString) -> Result<()> {
        self.ensure_dir()?;
        fsutil::write_atomic(&self.token_path(), token.expose().as_bytes())
    }

    /// The key pair to bind UPSTs to: the profile's configured `key_file` if it exists, else the
    /// Python woci's `private_key.pem`, else `oci_api_key.pem`, created on first use. Returns the
    /// key and its path. A damaged key file is an error, never silently replaced.
    pub fn load_or_create_key(&self, configured: Option<&Path>) -> Result<(KeyPair, PathBuf)> {
        if let Some(path) = configured {
            require_configured_key(path, &self.profile)?;
        }
        let candidates = configured.map(Path::to_path_buf).into_iter().chain(self.own_key_files());
        for path in candidates {
            if path.is_file() {
                let key = KeyPair::load(&path)?;
                warn_if_readable_by_others(&path);
                return Ok((key, path));
            }
        }
        self.ensure_dir()?;
        let key = KeyPair::generate()?;
        let path = self.dir.join(KEY_FILE);
        fsutil::write_atomic(&self.dir.join(PUBLIC_KEY_FILE), key.public_pem().as_bytes())?;
        fsutil::write_atomic(&path, key.private_pem()?.as_bytes())?;
        tracing::info!(profile = %self.profile, fingerprint = %key.fingerprint(), "created a new session key pair");
        Ok((key, path))
    }

    /// The session folder's key file that [`Self::load_or_create_key`] would load, if any.
    pub fn own_key_file(&self) -> Option<PathBuf> {
        self.own_key_files().into_iter().find(|f| f.exists())
    }

    /// The session folder's key files, in the order they are used: the Python woci's, then woci's.
    fn own_key_files(&self) -> [PathBuf; 2] {
        [self.dir.join(PY_WOCI_KEY_FILE), self.dir.join(KEY_FILE)]
    }

    /// Whether a refresh token is stored, and how.
    pub fn refresh_token_state(&self) -> Result<RefreshTokenState> {
        let rescue = self.rescue_path();
        let path = if rescue.is_file() { rescue } else { self.refresh_token_path() };
        match fsutil::read_optional(&path)? {
            None => Ok(RefreshTokenState::Absent),
            Some(b) if String::from_utf8_lossy(&b).trim().is_empty() => Ok(RefreshTokenState::Absent),
            Some(b) if crypto::is_envelope(&String::from_utf8_lossy(&b)) => Ok(RefreshTokenState::Encrypted),
            Some(_) => Ok(RefreshTokenState::Plain),
        }
    }

    /// Reads the refresh token, decrypting it with `passphrase` when it is an envelope. A rescued
    /// refresh token (see [`Self::write_rescue`]) is newer than the stored one: it is moved back
    /// into the session folder when that works, and used either way.
    pub fn read_refresh_token(&self, passphrase: Option<&SecretString>) -> Result<Option<SecretString>> {
        let rescue = self.rescue_path();
        if rescue.is_file() {
            let token = self.read_refresh_token_at(&rescue, passphrase)?;
            if let Some(t) = &token {
                if self.write_refresh_token(t, passphrase).is_ok() {
                    let _ = std::fs::remove_file(&rescue);
                    tracing::info!("moved the rescued refresh token back into `{}`", self.dir.display());
                }
                return Ok(token);
            }
        }
        self.read_refresh_token_at(&self.refresh_token_path(), passphrase)
    }

    /// The refresh token as [`Self::read_refresh_token`] would return it, without moving a rescued
    /// one back (for `--status`, which changes nothing).
    pub fn peek_refresh_token(&self, passphrase: Option<&SecretString>) -> Result<Option<SecretString>> {
        let rescue = self.rescue_path();
        let path = if rescue.is_file() { rescue } else { self.refresh_token_path() };
        self.read_refresh_token_at(&path, passphrase)
    }

    fn read_refresh_token_at(&self, path: &Path, passphrase: Option<&SecretString>) -> Result<Option<SecretString>> {
        let path = path.to_owned();
        let Some(bytes) = fsutil::read_optional(&path)? else { return Ok(None) };
        let text = SecretString::from(String::from_utf8(bytes).map_err(|_| Error::corrupt(&path, "not UTF-8 text"))?);
        let trimmed = text.expose().trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if !crypto::is_envelope(trimmed) {
            if trimmed.starts_with('{') {
                return Err(Error::corrupt(&path, "looks like JSON but is not a woci encryption envelope"));
            }
            return Ok(Some(SecretString::from(trimmed)));
        }
        let Some(pass) = passphrase else {
            return Err(Error::RefreshTokenLocked {
                path,
                reason:
                    "it is encrypted; pass `--refresh-token-passphrase-env VAR` or `--refresh-token-passphrase-prompt`"
                        .into(),
            });
        };
        crypto::open(trimmed, pass).map(Some).map_err(|e| Error::RefreshTokenLocked { path, reason: e.to_string() })
    }

    /// Stores a refresh token, encrypted when a non-empty passphrase is given.
    pub fn write_refresh_token(&self, token: &SecretString, passphrase: Option<&SecretString>) -> Result<()> {
        self.ensure_dir()?;
        fsutil::write_atomic(&self.refresh_token_path(), seal(token, passphrase).expose().as_bytes())
    }
}

/// The refresh token as stored: encrypted when a non-empty passphrase is given.
fn seal(token: &SecretString, passphrase: Option<&SecretString>) -> SecretString {
    match passphrase {
        Some(p) if !p.expose().is_empty() => SecretString::from(crypto::seal(token, p)),
        _ => token.clone(),
    }
}

/// A failed renewal, recorded beside the lock (no secrets: the message is an error's text).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FailureRecord {
    /// When it failed, epoch milliseconds.
    pub at: i64,
    /// The failing call's exit code.
    pub exit_code: u8,
    /// Its message.
    pub message: String,
}

impl FailureRecord {
    /// The error a waiting caller reports: the same message and exit code.
    pub fn into_error(self) -> Error {
        Error::Blocked { code: self.exit_code, message: self.message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    #[test]
    fn refresh_token_expiry_is_recorded_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let s = SessionStore::new(dir.path(), "P").unwrap();
        assert_eq!(s.refresh_token_expiry(), None);
        s.write_refresh_token_expiry(Some(1_900_000_000)).unwrap();
        assert_eq!(s.refresh_token_expiry(), Some(1_900_000_000));
        s.write_refresh_token_expiry(None).unwrap();
        assert_eq!(s.refresh_token_expiry(), None);
        s.write_refresh_token_expiry(None).unwrap();
    }

    fn upst(exp: i64) -> String {
        format!("eyJhbGciOiJSUzI1NiJ9.{}.c2ln", URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp},"tenant":"t"}}"#)))
    }

    #[test]
    fn token_round_trip_without_newline() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        assert!(s.read_token().unwrap().is_none());
        s.write_token(&SecretString::from(upst(5))).unwrap();
        let raw = std::fs::read(s.token_path()).unwrap();
        assert!(!raw.ends_with(b"\n"));
        assert_eq!(s.read_token().unwrap().unwrap().1.exp, 5);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(s.dir()).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
    }

    #[test]
    fn corrupt_token_is_reported_not_replaced() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        s.ensure_dir().unwrap();
        std::fs::write(s.token_path(), "garbage").unwrap();
        let e = s.read_token().unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CORRUPT_FILE);
        assert_eq!(std::fs::read_to_string(s.token_path()).unwrap(), "garbage");
    }

    #[test]
    fn key_is_created_once_and_reused() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        let (k1, p1) = s.load_or_create_key(None).unwrap();
        let (k2, p2) = s.load_or_create_key(None).unwrap();
        assert_eq!(p1, p2);
        assert_eq!(k1.fingerprint(), k2.fingerprint());
        assert!(s.dir().join(PUBLIC_KEY_FILE).is_file());
    }

    #[test]
    fn a_missing_configured_key_is_an_error_and_nothing_is_created() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        let missing = home.path().join("keys").join("gone.pem");
        let e = s.load_or_create_key(Some(&missing)).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
        assert!(e.to_string().contains("gone.pem") && e.to_string().contains("`key_file`"), "{e}");
        assert!(!s.dir().exists(), "no key was created");
    }

    #[test]
    fn a_configured_key_that_is_a_folder_is_named_as_one() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        let e = s.load_or_create_key(Some(home.path())).unwrap_err().to_string();
        assert!(e.contains("is a folder") && !e.contains("does not exist"), "{e}");
        assert!(!s.dir().exists(), "no key was created");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_session_folder_is_refused_and_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::set_permissions(elsewhere.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(home.path().join(".oci/sessions")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), home.path().join(".oci/sessions/P")).unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        let e = s.lock(Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(s.write_token(&SecretString::from("x.y.z")).is_err());
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0, "nothing written through the link");
        assert_eq!(std::fs::metadata(elsewhere.path()).unwrap().permissions().mode() & 0o777, 0o755, "not chmod'ed");
    }

    #[cfg(unix)]
    #[test]
    fn a_world_writable_oci_folder_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let oci = home.path().join(".oci");
        std::fs::create_dir_all(&oci).unwrap();
        std::fs::set_permissions(&oci, std::fs::Permissions::from_mode(0o777)).unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        let e = s.ensure_dir().unwrap_err();
        assert!(e.to_string().contains("writable by every user") && e.to_string().contains("chmod o-w"), "{e}");
        assert!(!oci.join("sessions").exists());
        std::fs::set_permissions(&oci, std::fs::Permissions::from_mode(0o755)).unwrap();
        s.ensure_dir().unwrap();
    }

    #[test]
    fn stray_temp_files_of_dead_writers_are_swept() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        s.ensure_dir().unwrap();
        let dead = s.dir().join(".refresh_token.2147483646.0badc0de.tmp");
        let live = s.dir().join(format!(".token.{}.0badc0de.tmp", std::process::id()));
        let other = s.dir().join("token");
        for f in [&dead, &live, &other] {
            std::fs::write(f, "x").unwrap();
        }
        s.sweep_stray_temp_files();
        assert!(!dead.exists() && live.exists() && other.exists());
    }

    #[test]
    fn plain_refresh_token_round_trip() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        assert_eq!(s.refresh_token_state().unwrap(), RefreshTokenState::Absent);
        s.write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
        assert_eq!(s.refresh_token_state().unwrap(), RefreshTokenState::Plain);
        assert_eq!(s.read_refresh_token(None).unwrap().unwrap().expose(), "rt-1");
    }
}
