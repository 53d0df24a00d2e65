//! The session folder `~/.oci/sessions/<profile>/`, in the layout `oci session authenticate`, the
//! Python woci, the SDKs and Terraform share: `token` (UPST, no trailing newline),
//! `oci_api_key.pem` (PKCS#8) + `oci_api_key_public.pem`, `refresh_token` (plain, or the
//! [`crate::crypto`] envelope), plus woci's `.lock` and daemon files. Folder 0700, files 0600,
//! every write atomic.
//!
//! The rotated refresh token is written so that a kill cannot lose it once it is on disk: its
//! temp file's name carries the SHA-256 of its contents ([`fsutil::write_atomic_proven`]), and
//! under the renewal lock a complete one that a killed woci left is renamed into place (rolled
//! forward) instead of swept ([`SessionStore::sweep_stray_temp_files`]). A refresh token that
//! cannot be stored in the session folder is kept in a rescue file in a folder only this user
//! can use ([`SessionStore::write_rescue`]), checked before any read or write.

use crate::crypto;
use crate::error::{Error, Result};
use crate::fsutil::{self, FileLock, STOPPED_GRACE};
use crate::jwt::{self, UpstClaims};
use crate::keys::KeyPair;
use crate::secret::SecretString;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// File name of the refresh token.
const REFRESH_TOKEN: &str = "refresh_token";

/// How long a renewal waits for another's lock before it says so.
const LOCK_QUIET: Duration = Duration::from_secs(3);

/// What a renewal blocked by a stopped lock holder is told (`--status` and the call alike).
pub(crate) fn stopped_holder(pid: u32, profile: &str) -> String {
    format!(
        "woci pid {pid}, which holds the renewal or login lock of profile `{profile}`, is stopped (Ctrl-Z, SIGSTOP, or \
         output to a terminal set to `stty tostop`); resume it (`kill -CONT {pid}`, or `fg` in the shell that stopped \
         it), or end it with `kill -TERM {pid}; kill -CONT {pid}` (a stopped woci acts on SIGTERM once resumed; `kill \
         -9` may lose the session while a refresh grant is under way)"
    )
}

/// File name of the key woci creates.
const KEY_FILE: &str = "oci_api_key.pem";
/// The daemon's pid file, locked while it runs (same name as the Python woci).
pub(crate) const PID_FILE: &str = "woci_refresh.pid";
/// File name of the public key woci writes beside it.
const PUBLIC_KEY_FILE: &str = "oci_api_key_public.pem";
/// The Python woci's key file name, honoured when present.
const PY_WOCI_KEY_FILE: &str = "private_key.pem";

/// How to configure the passphrase of an encrypted refresh token.
pub(crate) const NO_PASSPHRASE_FIX: &str = "give its passphrase with `--refresh-token-passphrase-env VAR` or \
     `--refresh-token-passphrase-prompt` (in the INI: `refresh_token_passphrase_env`, \
     `refresh_token_passphrase_prompt`)";

/// The session folder of one profile.
#[derive(Debug, Clone)]
pub struct SessionStore {
    profile: String,
    /// How a woci command names this profile (`--profile P`, plus `--config-file`/`--manager-config`
    /// when given): the login a wrong passphrase is told to run.
    selection: String,
    dir: PathBuf,
    /// `$XDG_RUNTIME_DIR`, the preferred place for rescued refresh tokens.
    runtime_dir: Option<PathBuf>,
    /// With no `runtime_dir`: the user's runtime folder (`/run/user/<uid>`), looked in only.
    desktop_runtime: Option<PathBuf>,
    /// The system's temporary folder, the other place.
    temp_dir: PathBuf,
    /// The key of the refresh token passphrase, derived when a renewal reads the refresh token
    /// so that sealing its successor after the grant's reply costs no PBKDF2.
    sealer: std::sync::Arc<std::sync::Mutex<Option<crypto::Sealer>>>,
    /// The identity provider the refresh token is sent to (`token_url`, `auth_client_id`): a
    /// refusal recorded with another one (a wrong URL, since fixed) does not count.
    idp: String,
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

/// A rotated refresh token that a killed woci left in its temp file, newer than `refresh_token`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterruptedRotation {
    /// Complete (its SHA-256 is the one in its name): the next renewal puts it in place and uses it.
    Complete(PathBuf),
    /// Cut short while it was written: the new refresh token is lost, and the identity provider
    /// has probably spent the stored one.
    Incomplete(PathBuf),
}

/// The refresh token a renewal reads: where from, its bytes, and whether it is a rescued one.
type Source = (PathBuf, Vec<u8>, bool);

/// The refresh token the next renewal reads, as found ([`SessionStore::stored_refresh_token`]).
#[derive(Default)]
pub struct StoredRefreshToken {
    source: Option<Source>,
    /// The profile's woci selection (named in the login a wrong passphrase is told to run).
    selection: String,
    /// A refresh-token rotation a killed woci left, newer than `refresh_token`.
    pub rotation: Option<InterruptedRotation>,
    /// Why the identity provider refused this very refresh token (`invalid_grant`) at a renewal,
    /// if it did.
    pub rejected: Option<String>,
    /// A refresh grant sent with this very refresh token by a woci that ended before it knew the
    /// outcome (killed: SIGKILL, a crash): its pid and when it was sent (epoch milliseconds).
    /// The identity provider has probably spent the token.
    pub unsettled: Option<(u32, i64)>,
}

impl StoredRefreshToken {
    /// Where the rescued copy the next renewal reads is, when it reads one.
    pub fn rescued(&self) -> Option<&Path> {
        self.source.as_ref().filter(|(_, _, rescued)| *rescued).map(|(p, _, _)| p.as_path())
    }

    /// Whether a refresh token is stored, and how.
    pub fn state(&self) -> RefreshTokenState {
        match self.source.as_ref().map(|(_, b, _)| String::from_utf8_lossy(b)) {
            Some(t) if crypto::is_envelope(&t) => RefreshTokenState::Encrypted,
            Some(t) if !t.trim().is_empty() => RefreshTokenState::Plain,
            _ => RefreshTokenState::Absent,
        }
    }

    /// Why the stored refresh token cannot be read whatever the passphrase (not text, JSON that is
    /// no envelope), with the file's path: the renewal would fail on it.
    pub fn damage(&self) -> Option<String> {
        self.open(None).err().filter(|e| matches!(e, Error::CorruptFile { .. })).map(|e| e.to_string())
    }

    /// The token, decrypted with `passphrase` when it is an envelope; changes no file.
    pub fn open(&self, passphrase: Option<&SecretString>) -> Result<Option<SecretString>> {
        let Some((path, bytes, _)) = &self.source else { return Ok(None) };
        parse_refresh_token(path, bytes, passphrase, &self.selection)
    }
}

impl SessionStore {
    /// The store of `profile` under `home/.oci/sessions`.
    pub fn new(home: &Path, profile: &str) -> Result<SessionStore> {
        crate::settings::validate_profile(profile)?;
        Ok(SessionStore {
            profile: profile.to_owned(),
            selection: format!("--profile {}", crate::settings::quote(profile)),
            dir: home.join(".oci").join("sessions").join(profile),
            runtime_dir: None,
            desktop_runtime: None,
            temp_dir: fsutil::temp_dir(),
            sealer: Default::default(),
            idp: String::new(),
        })
    }

    /// Names the profile in the woci commands its messages suggest as `selection` does
    /// ([`crate::settings::Settings::woci_selection`]; default `--profile P`).
    pub fn with_selection(mut self, selection: String) -> SessionStore {
        self.selection = selection;
        self
    }

    /// Names the identity provider refresh grants go to (see the field).
    pub fn with_idp(mut self, idp: String) -> SessionStore {
        self.idp = idp;
        self
    }

    /// Keeps rescued refresh tokens under `runtime_dir` (`$XDG_RUNTIME_DIR`) when that folder is
    /// private, rather than under the system's temporary folder.
    pub fn with_runtime_dir(mut self, runtime_dir: Option<PathBuf>) -> SessionStore {
        self.runtime_dir = runtime_dir;
        self
    }

    /// Also looks (never writes) in `<dir>/woci-rescue`: where a desktop shell's woci, which has
    /// `$XDG_RUNTIME_DIR`, rescued a refresh token, for a job that has none (cron, `su`).
    pub fn with_desktop_runtime(mut self, dir: Option<PathBuf>) -> SessionStore {
        self.desktop_runtime = dir;
        self
    }

    /// Uses `temp_dir` as the system's temporary folder (tests).
    #[cfg(test)]
    pub fn with_temp_dir(mut self, temp_dir: &Path) -> SessionStore {
        self.temp_dir = temp_dir.to_owned();
        self
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

    /// Whether the session folder `dir` holds a session (a token, a refresh token or a key), not
    /// only bookkeeping a failed call left (the lock, metrics and hook state).
    pub fn holds_session(dir: &Path) -> bool {
        ["token", REFRESH_TOKEN, KEY_FILE, PY_WOCI_KEY_FILE].iter().any(|f| dir.join(f).exists())
    }

    /// `refresh_token`.
    pub fn refresh_token_path(&self) -> PathBuf {
        self.dir.join(REFRESH_TOKEN)
    }

    /// `refresh_token.expires`: when the IdP said the refresh token expires (unix seconds, not a
    /// secret). A file of its own so `refresh_token` keeps the Python woci's format.
    fn refresh_token_expiry_path(&self) -> PathBuf {
        self.dir.join("refresh_token.expires")
    }

    /// Records (or, with `None`, forgets) the refresh token's expiry.
    pub fn write_refresh_token_expiry(&self, unix: Option<i64>) -> Result<()> {
        let path = self.refresh_token_expiry_path();
        let Some(t) = unix else {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("cannot remove", path, e)),
                _ => Ok(()),
            };
        };
        self.ensure_dir()?;
        fsutil::write_atomic(&path, t.to_string().as_bytes())
    }

    /// The recorded refresh token expiry, if any (an unreadable record counts as none).
    pub fn refresh_token_expiry(&self) -> Option<i64> {
        fsutil::read_text_bounded(&self.refresh_token_expiry_path(), 64).ok()?.trim().parse().ok()
    }

    /// `woci_refresh.pid` (same name as the Python woci).
    pub fn pid_path(&self) -> PathBuf {
        self.dir.join(PID_FILE)
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
    /// it points), and `~/.oci` or `~/.oci/sessions` writable by others (every user, or a group
    /// with other members: they could swap the folder or the config), as ssh refuses such a
    /// `~/.ssh`, and a
    /// session folder another user owns (root may use a user's: `sudo -E`). All are
    /// [`Error::Config`] (exit 2).
    pub fn check_safe(&self) -> Result<()> {
        let d = self.dir.display();
        let meta = std::fs::symlink_metadata(&self.dir);
        if meta.as_ref().is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(Error::Config(format!(
                "session folder `{d}` is a symbolic link; woci does not follow it: replace it with a real folder"
            )));
        }
        #[cfg(unix)]
        if let Ok(meta) = meta {
            let owner = std::os::unix::fs::MetadataExt::uid(&meta);
            // Root (`sudo -E`) uses the folder of the user whose `~/.oci/sessions` it is in.
            if !fsutil::own_or_home_users(owner, self.dir.parent()) {
                return Err(Error::Config(format!(
                    "session folder `{d}` belongs to another user (uid {owner}), who could read or swap the session; \
                     move it away (woci makes a new one) or make it yours (`chown`)"
                )));
            }
            // Whoever could write in it could have swapped the token or the key: checked by a
            // person, then closed again.
            if let Some(who) = crate::access::others_can_write(&meta) {
                let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
                return Err(Error::Config(format!(
                    "session folder `{d}` is writable by {who} (mode {mode:o}), who could have swapped the token \
                     or the key in it; check them, then run `chmod 700 {d}`"
                )));
            }
        }
        #[cfg(unix)]
        for folder in self.dir.ancestors().skip(1).take(2) {
            use std::os::unix::fs::PermissionsExt;
            let Ok(meta) = std::fs::metadata(folder) else { continue };
            // A per-user group (umask 002) is the owner's own; a sticky folder (like /tmp) still
            // keeps others from swapping entries.
            if let Some(who) = crate::access::others_can_write(&meta) {
                let (f, mode) = (folder.display(), meta.permissions().mode() & 0o7777);
                return Err(Error::Config(format!(
                    "`{f}` is writable by {who} (mode {mode:o}), who could swap the session or the config; run \
                     `chmod go-w {f}`"
                )));
            }
        }
        Ok(())
    }

    /// Takes the per-profile renewal lock `.lock` (waits at most `timeout`), also saying whether
    /// another process held it first.
    /// The holder writes its pid into the file: a caller that waits more than a few seconds says
    /// for whom (a renewal suspended with Ctrl-Z would otherwise keep it silent for minutes).
    pub fn lock(&self, timeout: Duration) -> Result<(FileLock, bool)> {
        self.ensure_dir()?;
        let path = self.lock_path();
        let first = timeout.min(LOCK_QUIET);
        let (lock, waited) = match FileLock::acquire_noting_wait(&path, first) {
            Err(Error::Busy(_)) if timeout > first => {
                // A pid left in the file by a woci long gone (the lock taken by something else) is
                // not named.
                let (holder, held) = match self.lock_holder() {
                    Some(p) => (
                        format!("another woci (pid {p}), which is renewing"),
                        format!("another woci (pid {p}) has been renewing"),
                    ),
                    None => {
                        let lock = format!("the renewal lock `{}` of", path.display());
                        (format!("another process holding {lock}"), format!("another process has held {lock}"))
                    }
                };
                tracing::warn!("waiting for {holder} profile `{}`", self.profile);
                (self.wait_for_lock(&path, timeout - first, &held, timeout)?, true)
            }
            other => other?,
        };
        note_holder(&lock);
        Ok((lock, waited))
    }

    /// The rest of [`Self::lock`]'s wait, a second at a time: a holder stopped (Ctrl-Z) for
    /// [`STOPPED_GRACE`] ends it at once, since only a person can resume it. `timeout`: the
    /// whole wait, which the error names.
    fn wait_for_lock(&self, path: &Path, rest: Duration, held: &str, timeout: Duration) -> Result<FileLock> {
        let deadline = std::time::Instant::now() + rest;
        let mut stopped_since = None;
        loop {
            let slice = deadline.saturating_duration_since(std::time::Instant::now()).min(Duration::from_secs(1));
            match FileLock::acquire_noting_wait(path, slice) {
                Err(Error::Busy(_)) if std::time::Instant::now() < deadline => {}
                Err(Error::Busy(_)) => {
                    return Err(Error::Busy(format!(
                        "{held} profile `{}` for more than {}s; if it is stuck, end it, then try again",
                        self.profile,
                        timeout.as_secs()
                    )))
                }
                other => return other.map(|(lock, _)| lock),
            }
            // The lock was just found held: only whether its holder is stopped is left to see.
            match holder_of(path).filter(|pid| fsutil::process_stopped(*pid)) {
                Some(pid) if stopped_since.get_or_insert_with(std::time::Instant::now).elapsed() >= STOPPED_GRACE => {
                    return Err(Error::Busy(format!("{}, then try again", stopped_holder(pid, &self.profile))))
                }
                Some(_) => {}
                None => stopped_since = None,
            }
        }
    }

    /// The pid the renewal lock's holder wrote, if any.
    fn lock_holder(&self) -> Option<u32> {
        holder_of(&self.lock_path())
    }

    /// The pid of a stopped process (Ctrl-Z, SIGSTOP) that holds the renewal lock, or else the
    /// login lock (`true`), if so: no renewal (or login) of the profile can happen until it
    /// resumes (a waiting one gives up after [`STOPPED_GRACE`]).
    pub fn stopped_lock_holder(&self) -> Option<(u32, bool)> {
        [(self.lock_path(), false), (self.login_lock_path(), true)]
            .into_iter()
            .find_map(|(lock, login)| holding(&lock, fsutil::process_stopped).map(|pid| (pid, login)))
    }

    /// A renewal under way in another live process, if so: its pid and when it took the lock
    /// (the pid's write). A stopped holder is [`Self::stopped_lock_holder`]'s to name.
    /// A login in another woci ([`Self::try_login_lock`]) is one too: the next call waits for it.
    /// Whether it is a login is the third value.
    pub fn renewal_under_way(&self) -> Option<(u32, SystemTime, bool)> {
        let other = |pid: u32| pid != std::process::id() && fsutil::process_alive(pid) && !fsutil::process_stopped(pid);
        [(self.lock_path(), false), (self.login_lock_path(), true)]
            .iter()
            .find_map(|(lock, login)| Some((holding(lock, other)?, modified(lock)?, *login)))
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(".lock")
    }

    /// `.login.lock`: held by the woci whose person is logging in, from before the login (which
    /// takes no renewal lock: a forgotten browser tab must not stop renewals) until its refresh
    /// token is stored, so that other calls needing a login wait for that one rather than open
    /// a second browser or fight over the callback port. `None`: another process holds it.
    pub fn try_login_lock(&self) -> Result<Option<FileLock>> {
        self.ensure_dir()?;
        match FileLock::acquire(&self.login_lock_path(), Duration::ZERO).inspect(note_holder) {
            Ok(lock) => Ok(Some(lock)),
            Err(Error::Busy(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits at most `timeout` for the login another woci holds [`Self::try_login_lock`] for to
    /// end (its lock is let go at once: the caller only needed to know it ended).
    /// A stopped holder (Ctrl-Z) ends the wait after [`STOPPED_GRACE`], as for the renewal lock.
    pub fn wait_for_login(&self, timeout: Duration) -> Result<()> {
        let held = match self.login_holder() {
            Some(pid) => format!("the login of another woci (pid {pid}) has been under way for"),
            None => "a login has been under way for".to_owned(),
        };
        self.wait_for_lock(&self.login_lock_path(), timeout, &held, timeout).map(drop)
    }

    /// Another live woci holding the login lock now, if so.
    pub fn login_under_way(&self) -> Option<u32> {
        holding(&self.login_lock_path(), |pid| pid != std::process::id())
    }

    /// The pid the login lock's holder wrote, while it lives.
    pub fn login_holder(&self) -> Option<u32> {
        holder_of(&self.login_lock_path())
    }

    fn login_lock_path(&self) -> PathBuf {
        self.dir.join(".login.lock")
    }

    /// The lock every woci of this user writes an OCI config under: in the sessions' root, which
    /// is the user's own (a lock beside a config in a shared folder could be planted).
    pub fn config_lock_path(&self) -> PathBuf {
        self.dir.parent().unwrap_or(&self.dir).join(".config.lock")
    }

    /// Why [`Self::lock`] would fail on what is at the lock's path (not a regular file), if so.
    pub fn lock_problem(&self) -> Option<String> {
        fsutil::refuse_non_file(&self.lock_path()).err().map(|e| e.to_string())
    }

    /// Tidies up after a killed woci. Call with the renewal lock held. First rolls an interrupted
    /// refresh-token rotation forward ([`Self::stored_refresh_token`]: a complete one is put in
    /// place, an incomplete one is kept until a new refresh token is stored, since it tells that
    /// the stored one was probably spent); then removes the other temp files of atomic writes
    /// (`.<name>.<pid>.<rand>.tmp` whose pid is gone).
    pub fn sweep_stray_temp_files(&self) {
        if let Some((InterruptedRotation::Complete(tmp), _)) = self.pending_rotation(true) {
            // Its writer may have died before its own fsync: the content first, then the name.
            let _ = std::fs::File::open(&tmp).and_then(|f| f.sync_all());
            match std::fs::rename(&tmp, self.refresh_token_path()) {
                Ok(()) => {
                    fsutil::sync_dir(&self.dir);
                    // The recorded expiry was the spent refresh token's.
                    let _ = self.write_refresh_token_expiry(None);
                    tracing::info!(
                        "completed the refresh-token rotation that an interrupted woci left in `{}`",
                        tmp.display()
                    );
                }
                Err(e) => {
                    tracing::warn!("cannot complete the interrupted refresh-token rotation in `{}`: {e}", tmp.display())
                }
            }
        }
        self.drop_superseded_rotations();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !(name.starts_with('.') && name.ends_with(".tmp")) || fsutil::ProvenTemp::is_name_of(name, REFRESH_TOKEN)
            {
                continue;
            }
            let pid = name.rsplitn(3, '.').nth(2).and_then(|rest| rest.rsplit('.').next()?.parse::<u32>().ok());
            if pid.is_some_and(|p| !fsutil::process_alive(p)) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// A rotated refresh token that a killed woci left in its temp file and that is newer than
    /// `refresh_token` (temp files of running writers are not looked at), with the complete
    /// token's bytes; `with_live`: also temp files whose writer's pid exists (under the lock every
    /// other writer is gone, whatever process has its pid now). No file is changed.
    fn pending_rotation(&self, with_live: bool) -> Option<(InterruptedRotation, Option<Vec<u8>>)> {
        let own = std::process::id();
        let stored = modified(&self.refresh_token_path());
        let mut temps: Vec<_> = fsutil::ProvenTemp::find(&self.dir, REFRESH_TOKEN)
            .into_iter()
            .filter(|t| t.pid != own && (with_live || !fsutil::process_alive(t.pid)))
            .filter(|t| stored.is_none_or(|s| t.modified >= s))
            .collect();
        temps.sort_by_key(|t| std::cmp::Reverse(t.modified));
        let mut incomplete = None;
        for t in temps {
            match t.complete_contents() {
                Some(bytes) if !bytes.is_empty() => return Some((InterruptedRotation::Complete(t.path), Some(bytes))),
                Some(_) => {}
                None => incomplete = incomplete.or(Some(t.path)),
            }
        }
        incomplete.map(|p| (InterruptedRotation::Incomplete(p), None))
    }

    /// Removes the rotation temp files of other processes that are not newer than `refresh_token`.
    fn drop_superseded_rotations(&self) {
        let Some(stored) = modified(&self.refresh_token_path()) else { return };
        let own = std::process::id();
        for t in fsutil::ProvenTemp::find(&self.dir, REFRESH_TOKEN) {
            if t.pid != own && t.modified <= stored {
                let _ = std::fs::remove_file(&t.path);
            }
        }
    }

    /// `refresh_token.rejected`: the SHA-256 of the stored refresh token the identity provider
    /// refused (with that provider), then why; a new refresh token, or another provider, does
    /// not match it.
    fn rejected_path(&self) -> PathBuf {
        self.dir.join("refresh_token.rejected")
    }

    /// Records that the identity provider refused the stored refresh token (`invalid_grant`), so
    /// that `--status` and the next call know a login is needed without spending a request on it.
    pub fn mark_refresh_token_rejected(&self, why: &str) {
        let Ok(StoredRefreshToken { source: Some((_, bytes, _)), .. }) = self.stored_refresh_token() else { return };
        let record = format!("{}\n{why}", self.rejection_digest(&bytes));
        write_best_effort(&self.rejected_path(), record.as_bytes(), "record the refused refresh token");
    }

    /// What `refresh_token.rejected` records of a refused refresh token: its digest with the
    /// identity provider's, so that fixing a wrong `token_url` or `auth_client_id` lets the token
    /// be tried again.
    fn rejection_digest(&self, bytes: &[u8]) -> String {
        match self.idp.is_empty() {
            true => refusal_digest(bytes),
            false => fsutil::sha256_hex(format!("{}\n{}", refusal_digest(bytes), self.idp).as_bytes()),
        }
    }

    /// `.last_failure`, beside the lock: the last renewal failure, for callers that waited on it.
    fn failure_path(&self) -> PathBuf {
        self.dir.join(".last_failure")
    }

    /// Records a failed renewal (best effort: a failure to record is only logged).
    pub fn record_failure(&self, record: &FailureRecord) {
        let json = serde_json::to_vec(record).expect("a FailureRecord serializes");
        write_best_effort(&self.failure_path(), &json, "record the renewal failure");
    }

    /// The recorded failure if it happened at or after `since_ms` (epoch milliseconds).
    pub fn failure_since(&self, since_ms: i64) -> Option<FailureRecord> {
        let bytes = fsutil::read_bounded(&self.failure_path(), 64 * 1024).ok()?;
        serde_json::from_slice::<FailureRecord>(&bytes).ok().filter(|r| r.at >= since_ms)
    }

    /// Forgets the recorded failure (after a success).
    pub fn clear_failure(&self) {
        let _ = std::fs::remove_file(self.failure_path());
    }

    /// `.clock_skew`: how far this machine's clock was from the servers' at the last renewal.
    fn skew_path(&self) -> PathBuf {
        self.dir.join(".clock_skew")
    }

    /// Keeps the clock skew a renewal learned (best effort: without it the next woci starts from
    /// this machine's clock, as before the first renewal).
    pub fn write_skew(&self, skew: &crate::clock::Skew) {
        let json = serde_json::to_vec(skew).expect("a Skew serializes");
        write_best_effort(&self.skew_path(), &json, "keep the clock skew");
    }

    /// The clock skew the last renewal learned, if any.
    pub fn skew(&self) -> Option<crate::clock::Skew> {
        let bytes = fsutil::read_bounded(&self.skew_path(), 4 * 1024).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Fails when the session folder cannot take the new refresh token right now (read-only,
    /// full), before a refresh token is spent.
    pub fn check_writable(&self) -> Result<()> {
        self.ensure_dir()?;
        fsutil::check_writable(&self.dir, fsutil::RENEWAL_ROOM)
    }

    /// The folders a refresh token that could not be stored in the session folder may be kept
    /// in, in order: `$XDG_RUNTIME_DIR/woci-rescue` when the runtime folder is private (the
    /// user's, no access for others, not a symbolic link), then `$TMPDIR/woci-rescue-<uid>`, or,
    /// when another user took that name, the folders of this user's own made up beside it
    /// (`woci-rescue-<uid>.<random>`, see [`Self::write_rescue`]), so nobody can turn the rescue
    /// off by taking a name.
    fn rescue_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = fsutil::private_folders(self.runtime_dir.as_deref(), &self.temp_dir, "woci-rescue");
        let usual = dirs.pop().expect("the temporary folder's is always there");
        match fsutil::PrivateDir::open(&usual, false) {
            Ok(_) => dirs.push(usual),
            // A `TMPDIR` that is a file holds no rescue, made up or not.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotADirectory => dirs.push(usual),
            // Said only when a rescue is written (see `write_rescue`): another user's folder must
            // not put a warning on every call.
            Err(e) => {
                tracing::debug!("{e}; rescues go to a folder of this user's own beside it");
                dirs.extend(fsutil::made_up_folders(&self.temp_dir, "woci-rescue"));
            }
        }
        dirs
    }

    /// `$TMPDIR/woci-rescue-<uid>`, the rescue folder where no private runtime folder serves.
    fn usual_rescue_dir(&self) -> PathBuf {
        self.temp_dir.join(format!("woci-rescue-{}", fsutil::user_id()))
    }

    /// [`Self::rescue_dirs`], then the desktop's runtime folder's, when private: where rescued
    /// refresh tokens are looked for (and removed once stored).
    fn rescue_dirs_to_read(&self) -> Vec<PathBuf> {
        let mut dirs = self.rescue_dirs();
        if let Some(run) = &self.desktop_runtime {
            let found = fsutil::private_folders(Some(run), &self.temp_dir, "woci-rescue");
            dirs.extend(found.into_iter().filter(|d| d.starts_with(run)));
        }
        dirs
    }

    /// `<profile>.<digest of the session folder>.refresh_token`: the rescue folders are per user,
    /// not per HOME, and another HOME's profile of the same name must never take this one's.
    fn rescue_name(&self) -> String {
        // The folder itself, however HOME spells it (a link, `//`): a cron job finds it too.
        let dir = std::fs::canonicalize(&self.dir).unwrap_or_else(|_| self.dir.clone());
        let of_folder = fsutil::sha256_hex(dir.as_os_str().as_encoded_bytes());
        format!("{}.{}.{REFRESH_TOKEN}", self.profile, &of_folder[..12])
    }

    /// Saves a refresh token (sealed like the stored one) to a rescue file the next renewal reads:
    /// in the first rescue folder that is private or can be made so (created 0700, then checked
    /// on its descriptor: the user's, mode 0700 or stricter, not a symbolic link). Copies in
    /// the other folders are removed, so the newest is the only one.
    pub fn write_rescue(&self, token: &SecretString, passphrase: Option<&SecretString>) -> Result<PathBuf> {
        if crate::critical::refused("store::rescue") {
            return Err(crate::critical::refused_write(Path::new(&self.rescue_name())));
        }
        let sealed = self.seal(token, passphrase);
        let mut dirs = self.rescue_dirs();
        let prefix = format!("woci-rescue-{}.", fsutil::user_id());
        let made_up = |d: &PathBuf| d.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix));
        let mut fresh = None;
        // Another user holds the usual folder (see `rescue_dirs`), and none of this user's is made up yet.
        if !dirs.contains(&self.usual_rescue_dir()) && !dirs.iter().any(made_up) {
            fresh = fsutil::new_private_dir(&self.temp_dir, &prefix)
                .map(|d| d.keep())
                .inspect_err(|e| tracing::warn!("{e}"))
                .ok();
            dirs.extend(fresh.clone());
        }
        let mut last_error = Error::Other("no rescue folder".into());
        for dir in &dirs {
            let written = fsutil::PrivateDir::open(dir, true).and_then(|d| match d {
                Some(d) => d.write_atomic(&self.rescue_name(), sealed.expose().as_bytes()),
                None => Err(Error::Other(format!("`{}` vanished", dir.display()))),
            });
            match written {
                Ok(path) => {
                    if made_up(dir) {
                        tracing::warn!(
                            "`{}` is not usable (another user's, or open to others), so the refresh token is rescued \
                             in a folder of this user's own beside it",
                            self.usual_rescue_dir().display()
                        );
                    }
                    self.remove_rescues(&self.rescue_dirs_to_read(), Some(dir));
                    return Ok(path);
                }
                Err(e) => last_error = e,
            }
        }
        // A folder made up for nothing frees nothing anyone can take: removed.
        if let Some(d) = fresh {
            fsutil::release_private_folder(&d, "woci-rescue");
        }
        Err(last_error)
    }

    /// The rescued refresh token, if a private rescue folder holds a non-empty one that passes
    /// the checks: its path and bytes. A folder or file that fails them is ignored with one
    /// warning naming it and the fix — never used, never fatal.
    fn find_rescue(&self) -> Option<(PathBuf, Vec<u8>)> {
        let name = self.rescue_name();
        for dir in self.rescue_dirs_to_read() {
            let found = fsutil::PrivateDir::open(&dir, false).and_then(|d| d.map_or(Ok(None), |d| d.read(&name)));
            let path = dir.join(&name);
            match found {
                // An empty one is none; a damaged one is not worth failing for: the stored refresh
                // token may still work.
                Ok(Some(bytes)) => match parse_refresh_token(&path, &bytes, None, &self.selection) {
                    Ok(Some(_)) | Err(Error::RefreshTokenLocked { .. }) => return Some((path, bytes)),
                    Ok(None) => {}
                    Err(e) => warn_rescue_ignored(&Error::Config(format!("{e}: remove it"))),
                },
                Ok(None) => {}
                // A temporary folder that is a file (a broken `TMPDIR`) holds no rescue.
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotADirectory => {}
                Err(e) => warn_rescue_ignored(&e),
            }
        }
        None
    }

    /// Removes the rescued copies in `dirs` but the one in `kept_in`, and a made-up folder left
    /// empty.
    fn remove_rescues(&self, dirs: &[PathBuf], kept_in: Option<&PathBuf>) {
        for dir in dirs.iter().filter(|d| Some(*d) != kept_in) {
            if let Ok(Some(d)) = fsutil::PrivateDir::open(dir, false) {
                let _ = d.remove(&self.rescue_name());
                fsutil::release_private_folder(dir, "woci-rescue");
            }
        }
    }

    /// Reads the UPST at `path` (the config's `security_token_file`, or [`Self::token_path`]).
    /// `Ok(None)` when absent or empty; a token that does not decode is [`Error::CorruptFile`].
    /// `oci session refresh` rewrites the file in place (emptied, then written): a file written
    /// within the last seconds that reads empty or cut short is read again for up to a second
    /// before it counts as such (round 82 F3).
    pub fn read_token_at(path: &Path) -> Result<Option<(SecretString, UpstClaims)>> {
        let settle_until = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            let read = Self::read_token_once(path);
            let fresh = || {
                std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < Duration::from_secs(2)))
            };
            let partial = matches!(read, Ok(None) | Err(Error::CorruptFile { .. }));
            if !partial || std::time::Instant::now() >= settle_until || !fresh() {
                return read;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn read_token_once(path: &Path) -> Result<Option<(SecretString, UpstClaims)>> {
        let Some(bytes) = fsutil::read_optional(path)? else { return Ok(None) };
        let text = String::from_utf8(bytes).map_err(|_| Error::corrupt(path, "not UTF-8 text"))?;
        let token = text.trim();
        if token.is_empty() {
            return Ok(None);
        }
        let claims = jwt::decode_upst(token).map_err(|e| Error::corrupt(path, e.to_string()))?;
        Ok(Some((SecretString::from(token), claims)))
    }

    /// Writes `token` atomically, without a trailing newline (readers do not strip it).
    pub fn write_token(&self, token: &SecretString) -> Result<()> {
        self.ensure_dir()?;
        fsutil::write_atomic(&self.token_path(), token.expose().as_bytes())
    }

    /// The key pair to bind UPSTs to: the profile's configured `key_file` if it exists, else the
    /// Python woci's `private_key.pem`, else `oci_api_key.pem`, created on first use. Returns the
    /// key and its path. A damaged key file is an error, never silently replaced; nor is a missing
    /// configured one (which would also rewrite the config's `key_file` and `fingerprint`).
    pub fn load_or_create_key(&self, configured: Option<&Path>) -> Result<(KeyPair, PathBuf)> {
        let own_gone = configured.is_some_and(|p| self.own_key_gone(p));
        if own_gone {
            tracing::warn!(
                "the key pair woci made for profile `{}` is gone from its session folder; making a new one",
                self.profile
            );
        }
        let configured = configured.filter(|_| !own_gone);
        if let Some(path) = configured.filter(|p| !p.is_file()) {
            let (what, fix) = match path.is_dir() {
                true => ("is a folder, not a key file", "set `key_file` to the PEM file in it"),
                false => ("does not exist", "restore it"),
            };
            return Err(Error::Config(format!(
                "the `key_file` of profile `{}` in the OCI config, `{}`, {what}; {fix}, or delete the `key_file` \
                 line so that woci creates a new key",
                self.profile,
                path.display()
            )));
        }
        if let Some(path) = configured.map(Path::to_path_buf) {
            let key = KeyPair::load(&path)?;
            warn_if_readable_by_others(&path);
            return Ok((key, path));
        }
        if let Some(path) = self.own_key_files().find(|f| f.is_file()) {
            let (key, text) = KeyPair::load_with_text(&path)?;
            warn_if_readable_by_others(&path);
            label_own_key(&path, &text);
            return Ok((key, path));
        }
        self.ensure_dir()?;
        let key = KeyPair::generate()?;
        let path = self.dir.join(KEY_FILE);
        fsutil::write_atomic(&self.dir.join(PUBLIC_KEY_FILE), key.public_pem().as_bytes())?;
        let pem = key.private_pem()?;
        fsutil::write_atomic(&path, zeroize::Zeroizing::new(format!("{}{API_KEY_LABEL}\n", pem.as_str())).as_bytes())?;
        tracing::info!(profile = %self.profile, fingerprint = %key.fingerprint(), "created a new session key pair");
        Ok((key, path))
    }

    /// Whether `configured` is woci's own key file and gone (with its session folder: a user
    /// starting over). woci made it, and a renewal binds the new session to whatever key it signs
    /// with, so [`Self::load_or_create_key`] makes another rather than ask for a config edit.
    pub fn own_key_gone(&self, configured: &Path) -> bool {
        !configured.exists() && self.own_key_files().any(|f| f == configured)
    }

    /// The session folder's key file that [`Self::load_or_create_key`] would load, if any.
    pub fn own_key_file(&self) -> Option<PathBuf> {
        self.own_key_files().find(|f| f.exists())
    }

    /// The session folder's key files, in the order they are used: the Python woci's, then woci's.
    fn own_key_files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        [PY_WOCI_KEY_FILE, KEY_FILE].into_iter().map(|f| self.dir.join(f))
    }

    /// Says, as a renewal would, when the key the profile signs with (the config's `key_file`,
    /// else woci's own) is readable by other users: `--status` reads no key, so it checks here.
    pub(crate) fn warn_if_key_readable(&self, configured: Option<&Path>) {
        let own = || self.own_key_files().find(|f| f.is_file());
        if let Some(path) = configured.map(Path::to_path_buf).or_else(own) {
            warn_if_readable_by_others(&path);
        }
    }

    /// The refresh token the next renewal reads (a rescued one, else a complete interrupted
    /// rotation not yet put in place, else `refresh_token`), and the interrupted rotation found,
    /// from one look at the folder.
    pub fn stored_refresh_token(&self) -> Result<StoredRefreshToken> {
        let (rotation, rotated) = self.pending_rotation(false).unzip();
        // A rescue older than `refresh_token` was left where another woci (another `TMPDIR`)
        // could not see it, and a login stored a newer one since (a review of round 105).
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let stored_at = modified(&self.refresh_token_path());
        let rescue = self.find_rescue().filter(|(path, _)| stored_at.is_none_or(|at| modified(path) >= Some(at)));
        let source = match (rescue, &rotation, rotated.flatten()) {
            (Some((path, bytes)), ..) => Some((path, bytes, true)),
            (None, Some(InterruptedRotation::Complete(path)), Some(bytes)) => Some((path.clone(), bytes, false)),
            _ => {
                let path = self.refresh_token_path();
                fsutil::read_optional(&path)?.map(|bytes| (path, bytes, false))
            }
        };
        let rejected = source.as_ref().and_then(|(_, bytes, _)| {
            let record = fsutil::read_text_bounded(&self.rejected_path(), 4096).ok()?;
            let (digest, why) = record.split_once('\n')?;
            (digest == self.rejection_digest(bytes)).then(|| why.to_owned())
        });
        let unsettled = source.as_ref().and_then(|(_, bytes, _)| self.unsettled_grant(bytes));
        Ok(StoredRefreshToken { source, selection: self.selection.clone(), rotation, rejected, unsettled })
    }

    /// `.grant_sent`: written just before a refresh grant is sent and removed once its outcome is
    /// known, so that a woci killed in between (its grant may have spent the refresh token, and
    /// nothing else on disk says so) is known to `--status` and the next renewal.
    fn grant_sent_path(&self) -> PathBuf {
        self.dir.join(".grant_sent")
    }

    /// Notes that a refresh grant with the stored refresh token is about to be sent (best effort).
    /// Call with the renewal lock; [`Self::grant_settled`] removes the note. The token is in
    /// `refresh_token` by then: [`Self::read_refresh_token`] moved a rescued one back (the grant
    /// goes only where the folder is writable) and the sweep rolled a complete rotation forward,
    /// so the file is read, not the whole lookup again.
    pub fn grant_sending(&self, at_ms: i64) {
        let Ok(Some(bytes)) = fsutil::read_optional(&self.refresh_token_path()) else { return };
        let me = std::process::id();
        let started = fsutil::process_start_time(me).unwrap_or(0);
        let note = format!("{me} {started} {at_ms} {}\n", refusal_digest(&bytes));
        write_best_effort(&self.grant_sent_path(), note.as_bytes(), "note the refresh grant");
    }

    /// The refresh grant's outcome is known (and its new refresh token stored, if it gave one).
    pub fn grant_settled(&self) {
        let _ = std::fs::remove_file(self.grant_sent_path());
    }

    /// The pid and send time of a refresh grant sent with the refresh token `bytes` by a woci
    /// that has ended without knowing the outcome (one still running is renewing: not this).
    fn unsettled_grant(&self, bytes: &[u8]) -> Option<(u32, i64)> {
        let note = fsutil::read_text_bounded(&self.grant_sent_path(), 256).ok()?;
        let mut fields = note.split_whitespace();
        let pid: u32 = fields.next()?.parse().ok()?;
        let started: u64 = fields.next()?.parse().ok()?;
        let at: i64 = fields.next()?.parse().ok()?;
        if fields.next()? != refusal_digest(bytes) {
            return None;
        }
        // The same process (not one that got its pid since), still at it.
        let running =
            fsutil::process_alive(pid) && fsutil::process_start_time(pid).is_none_or(|s| started == 0 || s == started);
        (!running).then_some((pid, at))
    }

    /// Reads the refresh token for a renewal, decrypting it with `passphrase` when it is an
    /// envelope. A rescued refresh token (see [`Self::write_rescue`]) is newer than the stored
    /// one: it is moved back into the session folder when that works, and used either way. Also
    /// derives the key its successor will be sealed with, before the grant is sent. Call with
    /// the renewal lock.
    pub fn read_refresh_token(&self, passphrase: Option<&SecretString>) -> Result<Option<SecretString>> {
        let stored = self.stored_refresh_token()?;
        let token = stored.open(passphrase)?;
        if let Some((_, bytes, true)) = stored.source.as_ref().filter(|_| token.is_some()) {
            if self.ensure_dir().and_then(|()| self.store_refresh_token_bytes(bytes)).is_ok() {
                tracing::info!("moved the rescued refresh token back into `{}`", self.dir.display());
            }
        }
        if let Some(p) = passphrase.filter(|p| !p.expose().is_empty()) {
            let mut sealer = self.sealer.lock().unwrap_or_else(|e| e.into_inner());
            if !sealer.as_ref().is_some_and(|s| s.is_for(p)) {
                *sealer = Some(crypto::Sealer::new(p));
            }
        }
        Ok(token)
    }

    /// Stores a refresh token, encrypted when a non-empty passphrase is given.
    pub fn write_refresh_token(&self, token: &SecretString, passphrase: Option<&SecretString>) -> Result<()> {
        self.ensure_dir()?;
        self.write_refresh_token_into_checked_dir(token, passphrase)
    }

    /// [`Self::write_refresh_token`] right after [`Self::check_writable`] vouched for the folder:
    /// between a refresh grant's reply and its successor on disk nothing runs but the write and
    /// its fsync (a kill -9 there loses the session).
    pub fn write_refresh_token_into_checked_dir(
        &self,
        token: &SecretString,
        passphrase: Option<&SecretString>,
    ) -> Result<()> {
        self.store_refresh_token_bytes(self.seal(token, passphrase).expose().as_bytes())
    }

    /// The refresh token as stored: encrypted when a non-empty passphrase is given (with the key
    /// [`Self::read_refresh_token`] derived, when it is for this passphrase).
    fn seal(&self, token: &SecretString, passphrase: Option<&SecretString>) -> SecretString {
        let Some(p) = passphrase.filter(|p| !p.expose().is_empty()) else { return token.clone() };
        let sealer = self.sealer.lock().unwrap_or_else(|e| e.into_inner());
        SecretString::from(match sealer.as_ref().filter(|s| s.is_for(p)) {
            Some(s) => s.seal(token),
            None => crypto::seal(token, p),
        })
    }

    /// Writes `refresh_token` (a proven atomic write), then drops what it supersedes: older
    /// rotation temp files and rescued copies.
    fn store_refresh_token_bytes(&self, bytes: &[u8]) -> Result<()> {
        if crate::critical::refused("store::refresh_token") {
            return Err(crate::critical::refused_write(&self.refresh_token_path()));
        }
        fsutil::write_atomic_proven(&self.refresh_token_path(), bytes)?;
        let _ = std::fs::remove_file(self.rejected_path());
        self.grant_settled();
        self.drop_superseded_rotations();
        self.remove_rescues(&self.rescue_dirs_to_read(), None);
        Ok(())
    }
}

/// The digest a refused refresh token is remembered by: of the text a renewal sends (trimmed), so
/// the same token put back with a newline is still known.
fn refusal_digest(bytes: &[u8]) -> String {
    fsutil::sha256_hex(bytes.trim_ascii())
}

/// A refresh token file's contents: plain, or an envelope opened with `passphrase`.
fn parse_refresh_token(
    path: &Path,
    bytes: &[u8],
    passphrase: Option<&SecretString>,
    selection: &str,
) -> Result<Option<SecretString>> {
    let path = path.to_owned();
    let text =
        SecretString::from(String::from_utf8(bytes.to_vec()).map_err(|_| Error::corrupt(&path, "not UTF-8 text"))?);
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
        return Err(Error::RefreshTokenLocked { path, reason: format!("it is encrypted; {NO_PASSPHRASE_FIX}") });
    };
    crypto::open(trimmed, pass).map(Some).map_err(|e| Error::RefreshTokenLocked {
        path,
        reason: format!(
            "{e}; give the passphrase it was encrypted with, or log in again (`woci session authenticate \
             {selection}`) to store a new one"
        ),
    })
}

/// Warns (once per call, one line) about a private key that group or others can read. woci warns
/// rather than refuses, like the `oci` CLI, because such keys are common and still work; the
/// fix is in the message.
/// The line `oci session authenticate` ends its key files with; without it `oci` warns on every
/// call ("To increase security of your API key … append an extra line with 'OCI_API_KEY'").
const API_KEY_LABEL: &str = "OCI_API_KEY";

/// Gives a key file woci made before it wrote [`API_KEY_LABEL`] the label; the key stays the same
/// (text after the PEM footer is ignored by every reader). Best effort: the key works without it.
fn label_own_key(path: &Path, text: &str) {
    // A link stays a link: what it points to is not woci's to rewrite.
    let link = std::fs::symlink_metadata(path).map_or(true, |m| !m.is_file());
    if link || text.lines().any(|l| l.trim() == API_KEY_LABEL) {
        return;
    }
    let sep = if text.ends_with('\n') { "" } else { "\n" };
    let labelled = zeroize::Zeroizing::new(format!("{text}{sep}{API_KEY_LABEL}\n"));
    if let Err(e) = fsutil::write_atomic(path, labelled.as_bytes()) {
        tracing::debug!(path = %path.display(), "cannot label the key file: {e}");
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // A device or FIFO is no key at all (the key check says so), and `chmod` fixes only a
        // file of this user's own.
        let Some(meta) = std::fs::metadata(path).ok().filter(|m| m.is_file()) else { return };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            let fix = match meta.uid() == fsutil::user_id() {
                true => format!("run `chmod 600 {}`", path.display()),
                false => format!("it is uid {}'s: use a key file of your own", meta.uid()),
            };
            tracing::warn!("private key `{}` is readable by other users (mode {mode:o}); {fix}", path.display());
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Writes a bookkeeping file woci does without if need be: a failure is only logged ("cannot `what`").
fn write_best_effort(path: &Path, contents: &[u8], what: &str) {
    if let Err(e) = fsutil::write_atomic(path, contents) {
        tracing::debug!("cannot {what}: {e}");
    }
}

/// When `path` (not followed through a symbolic link) was last written.
fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::symlink_metadata(path).ok()?.modified().ok()
}

/// Writes this process's pid into the lock file it holds, for waiting callers to name.
fn note_holder(lock: &FileLock) {
    let mut f = lock.file();
    if f.set_len(0).is_ok() {
        let _ = std::io::Write::write_all(&mut f, std::process::id().to_string().as_bytes());
    }
}

/// The live pid a lock file's holder wrote ([`note_holder`]), if any.
fn holder_of(path: &Path) -> Option<u32> {
    let pid = fsutil::read_text_bounded(path, 64).ok()?.trim().parse().ok()?;
    fsutil::process_alive(pid).then_some(pid)
}

/// The pid in the lock file `path`, when `wanted` and the lock is held now. The pid outlives the
/// lock, so the lock is tried (and let go at once) too, but only for a wanted pid: trying it,
/// however briefly, makes a renewal that meets it pause.
fn holding(path: &Path, wanted: impl Fn(u32) -> bool) -> Option<u32> {
    let pid = holder_of(path).filter(|pid| wanted(*pid))?;
    FileLock::held(path).then_some(pid)
}

/// One warning per place and process for a rescue folder or file that fails its checks.
fn warn_rescue_ignored(e: &Error) {
    let text = e.to_string();
    if crate::logging::first_time(&text) {
        match e {
            // Not a rescued token that failed its checks: none could be looked for.
            Error::Io { .. } => tracing::warn!("cannot look for a rescued refresh token: {text}"),
            _ => tracing::warn!("ignoring a rescued refresh token: {text}"),
        }
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
    /// Whether a retry soon may help (a waiting renewal loop retries it then).
    #[serde(default)]
    pub transient: bool,
    /// Whether a renewal loop keeps trying after it (soon, or slowly after a refusal a settings
    /// change can fix); else the loop ends, as the loop that met it did.
    #[serde(default)]
    pub renewable: bool,
    /// The refresh grant's answer was lost: the stored refresh token is probably spent.
    #[serde(default)]
    pub reply_lost: bool,
    /// The identity provider refused the refresh token (`invalid_grant`): a login is the fix,
    /// not a setting.
    #[serde(default)]
    pub needs_login: bool,
    /// The server answered with its own fault (an outage whoever asks): the digest then holds
    /// only what chooses the server and the request, not the caller's environment.
    #[serde(default)]
    pub answered: bool,
    /// A digest of the settings the failure was met with (`renew::failure_inputs`); absent in
    /// records of older releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<String>,
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

    /// A token file another program rewrites in place (emptied, then written) is read again
    /// while it settles, not taken for a missing session (round 82 F3).
    #[test]
    fn a_token_file_being_rewritten_in_place_is_read_once_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "").unwrap();
        let (p, token) = (path.clone(), upst(4_000_000_000));
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            std::fs::write(p, token).unwrap();
        });
        assert!(SessionStore::read_token_at(&path).unwrap().is_some(), "read once written");
        writer.join().unwrap();
        // An empty file nobody is writing is none, at once.
        let old = dir.path().join("old");
        std::fs::write(&old, "").unwrap();
        let past = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        std::fs::File::options().write(true).open(&old).unwrap().set_modified(past).unwrap();
        let started = std::time::Instant::now();
        assert!(SessionStore::read_token_at(&old).unwrap().is_none());
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn token_round_trip_without_newline() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        assert!(SessionStore::read_token_at(&s.token_path()).unwrap().is_none());
        s.write_token(&SecretString::from(upst(5))).unwrap();
        let raw = std::fs::read(s.token_path()).unwrap();
        assert!(!raw.ends_with(b"\n"));
        assert_eq!(SessionStore::read_token_at(&s.token_path()).unwrap().unwrap().1.exp, 5);
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
        let e = SessionStore::read_token_at(&s.token_path()).unwrap_err();
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

    /// A caller that waits for the renewal lock past a few seconds names the holder's pid, and so
    /// does the error when the wait runs out.
    #[test]
    fn a_long_wait_for_the_lock_names_the_holder() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        let (_held, waited) = s.lock(Duration::from_secs(1)).unwrap();
        assert!(!waited);
        assert_eq!(s.lock_holder(), Some(std::process::id()));
        let e = s.lock(LOCK_QUIET + Duration::from_millis(300)).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::BUSY);
        let msg = e.to_string();
        assert!(msg.contains(&format!("(pid {})", std::process::id())) && msg.contains("stuck"), "{msg}");
    }

    /// oci warns on every call about a key file without the `OCI_API_KEY` line: woci's keys have
    /// it, and a key from an earlier woci gets it (same key); a configured key is left alone.
    #[test]
    fn own_key_files_carry_the_oci_api_key_label() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        let (k, p) = s.load_or_create_key(None).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.ends_with("-----END PRIVATE KEY-----\nOCI_API_KEY\n"), "{text}");
        let unlabelled = text.replace("OCI_API_KEY\n", "");
        std::fs::write(&p, &unlabelled).unwrap();
        let (again, _) = s.load_or_create_key(None).unwrap();
        assert_eq!(again.fingerprint(), k.fingerprint());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let configured = home.path().join("mine.pem");
        std::fs::write(&configured, &unlabelled).unwrap();
        s.load_or_create_key(Some(&configured)).unwrap();
        assert_eq!(std::fs::read_to_string(&configured).unwrap(), unlabelled);
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
    fn wocis_own_key_gone_with_its_folder_is_made_again() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        let (old, path) = s.load_or_create_key(None).unwrap();
        std::fs::remove_dir_all(s.dir()).unwrap();
        let (new, again) = s.load_or_create_key(Some(&path)).unwrap();
        assert_eq!(again, path);
        assert!(path.is_file() && new.fingerprint() != old.fingerprint());
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
        assert!(e.to_string().contains("writable by every user") && e.to_string().contains("chmod go-w"), "{e}");
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
        // What a kill inside `check_writable` leaves is swept like a temp file.
        let probe = s.dir().join(".probe.2147483646.w.tmp");
        std::fs::write(&probe, "x").unwrap();
        let live = s.dir().join(format!(".token.{}.0badc0de.tmp", std::process::id()));
        let other = s.dir().join("token");
        for f in [&dead, &live, &other] {
            std::fs::write(f, "x").unwrap();
        }
        s.sweep_stray_temp_files();
        assert!(!dead.exists() && !probe.exists() && live.exists() && other.exists());
    }

    #[test]
    fn plain_refresh_token_round_trip() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        assert_eq!(s.stored_refresh_token().unwrap().state(), RefreshTokenState::Absent);
        s.write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
        assert_eq!(s.stored_refresh_token().unwrap().state(), RefreshTokenState::Plain);
        assert_eq!(s.read_refresh_token(None).unwrap().unwrap().expose(), "rt-1");
        assert_eq!(s.stored_refresh_token().unwrap().damage(), None);
    }

    #[test]
    fn a_refused_refresh_token_is_known_by_its_text_until_another_is_stored() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        s.write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
        s.mark_refresh_token_rejected("invalid_grant");
        std::fs::write(s.refresh_token_path(), "rt-1\n").unwrap();
        assert_eq!(s.stored_refresh_token().unwrap().rejected.as_deref(), Some("invalid_grant"), "put back");
        s.write_refresh_token(&SecretString::from("rt-2"), None).unwrap();
        assert_eq!(s.stored_refresh_token().unwrap().rejected, None);
    }

    #[test]
    fn a_refresh_token_no_passphrase_can_read_is_damage_and_an_envelope_is_not() {
        let home = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap();
        s.ensure_dir().unwrap();
        std::fs::write(s.refresh_token_path(), [0xff, 0xfe, 0x00]).unwrap();
        let damage = s.stored_refresh_token().unwrap().damage().unwrap();
        assert!(damage.contains("not UTF-8") && damage.contains("refresh_token"), "{damage}");
        s.write_refresh_token(&SecretString::from("rt-1"), Some(&SecretString::from("pw"))).unwrap();
        assert_eq!(s.stored_refresh_token().unwrap().damage(), None, "locked, not damaged");
    }

    /// A store whose rescue folders live in a private temporary folder, not the machine's `/tmp`.
    fn store_with_tmp() -> (tempfile::TempDir, tempfile::TempDir, SessionStore) {
        let home = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let s = SessionStore::new(home.path(), "P").unwrap().with_temp_dir(tmp.path());
        (home, tmp, s)
    }

    /// A rotation temp file as a killed writer (pid `pid`) leaves it: `content` written, the
    /// name carrying the SHA-256 of `full`.
    fn leave_rotation(s: &SessionStore, pid: u32, full: &str, content: &str) -> PathBuf {
        let p = s.dir().join(format!(".refresh_token.{pid}.{}.tmp", fsutil::sha256_hex(full.as_bytes())));
        std::fs::write(&p, content).unwrap();
        p
    }

    const DEAD: u32 = 2_147_483_646;

    #[test]
    fn the_refresh_token_temp_file_proves_its_content_and_the_file_keeps_the_python_format() {
        let (_h, _t, s) = store_with_tmp();
        s.write_refresh_token(&SecretString::from("rt-1"), None).unwrap();
        assert_eq!(std::fs::read(s.refresh_token_path()).unwrap(), b"rt-1");
        let temps = fsutil::ProvenTemp::find(s.dir(), REFRESH_TOKEN);
        assert!(temps.is_empty(), "renamed into place");
        // The name a killed writer would have left.
        let p = leave_rotation(&s, DEAD, "rt-2", "rt-2");
        let found = fsutil::ProvenTemp::find(s.dir(), REFRESH_TOKEN);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].complete_contents().unwrap(), b"rt-2");
        assert!(fsutil::ProvenTemp::is_name_of(p.file_name().unwrap().to_str().unwrap(), REFRESH_TOKEN));
        assert!(!fsutil::ProvenTemp::is_name_of(".refresh_token.expires.1.0badc0de.tmp", REFRESH_TOKEN));
    }

    #[test]
    fn a_complete_rotation_left_by_a_killed_writer_is_rolled_forward_under_the_lock() {
        let (_h, _t, s) = store_with_tmp();
        s.write_refresh_token(&SecretString::from("rt-old"), None).unwrap();
        s.write_refresh_token_expiry(Some(1_900_000_000)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let tmp = leave_rotation(&s, DEAD, "rt-new", "rt-new");
        assert_eq!(s.stored_refresh_token().unwrap().rotation, Some(InterruptedRotation::Complete(tmp.clone())));
        // Read without the lock (`--status`): the token the next call will use.
        assert_eq!(s.stored_refresh_token().unwrap().open(None).unwrap().unwrap().expose(), "rt-new");
        assert_eq!(std::fs::read_to_string(s.refresh_token_path()).unwrap(), "rt-old", "peeking changes nothing");
        s.sweep_stray_temp_files();
        assert!(!tmp.exists());
        assert_eq!(std::fs::read_to_string(s.refresh_token_path()).unwrap(), "rt-new");
        assert_eq!(s.refresh_token_expiry(), None, "the old token's expiry is forgotten");
        assert_eq!(s.stored_refresh_token().unwrap().rotation, None);
    }

    #[test]
    fn an_incomplete_rotation_is_reported_kept_and_dropped_once_a_new_refresh_token_is_stored() {
        let (_h, _t, s) = store_with_tmp();
        s.write_refresh_token(&SecretString::from("rt-old"), None).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let tmp = leave_rotation(&s, DEAD, "rt-new-and-long", "rt-new");
        assert_eq!(s.stored_refresh_token().unwrap().rotation, Some(InterruptedRotation::Incomplete(tmp.clone())));
        s.sweep_stray_temp_files();
        assert!(tmp.exists(), "kept: it tells that the stored refresh token was probably spent");
        assert_eq!(std::fs::read_to_string(s.refresh_token_path()).unwrap(), "rt-old", "never adopted");
        assert_eq!(s.read_refresh_token(None).unwrap().unwrap().expose(), "rt-old");
        s.write_refresh_token(&SecretString::from("rt-after-login"), None).unwrap();
        assert!(!tmp.exists());
        assert_eq!(s.stored_refresh_token().unwrap().rotation, None);
    }

    #[test]
    fn rotations_older_than_the_stored_token_or_still_being_written_are_not_interrupted() {
        let (_h, _t, s) = store_with_tmp();
        s.ensure_dir().unwrap();
        let older = leave_rotation(&s, DEAD, "rt-older", "rt-older");
        std::thread::sleep(Duration::from_millis(20));
        s.write_refresh_token(&SecretString::from("rt-stored"), None).unwrap();
        assert!(!older.exists(), "superseded by the store");
        let older = leave_rotation(&s, DEAD, "rt-older", "rt-older");
        let past = std::fs::File::options().write(true).open(&older).unwrap();
        past.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000)).unwrap();
        assert_eq!(s.stored_refresh_token().unwrap().rotation, None);
        // A renewal writing right now (a live pid, not this process).
        let live = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let writing = leave_rotation(&s, live.id(), "rt-next", "rt-n");
        assert_eq!(s.stored_refresh_token().unwrap().rotation, None);
        s.sweep_stray_temp_files();
        assert!(!older.exists(), "the superseded one is swept");
        let mut live = live;
        let _ = live.kill();
        let _ = live.wait();
        let _ = std::fs::remove_file(writing);
    }

    #[cfg(unix)]
    fn chmod(p: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(unix)]
    fn rescue_dir(tmp: &Path) -> PathBuf {
        tmp.join(format!("woci-rescue-{}", fsutil::user_id()))
    }

    #[cfg(unix)]
    #[test]
    fn a_rescued_refresh_token_is_kept_in_a_checked_private_folder_and_moved_back() {
        let (_h, tmp, s) = store_with_tmp();
        s.write_refresh_token(&SecretString::from("rt-old"), None).unwrap();
        let path = s.write_rescue(&SecretString::from("rt-new"), None).unwrap();
        assert_eq!(path, rescue_dir(tmp.path()).join(s.rescue_name()));
        assert!(s.rescue_name().starts_with("P.") && s.rescue_name().ends_with(".refresh_token"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(rescue_dir(tmp.path())).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(s.stored_refresh_token().unwrap().open(None).unwrap().unwrap().expose(), "rt-new");
        assert!(path.exists(), "peeking moves nothing");
        assert_eq!(s.read_refresh_token(None).unwrap().unwrap().expose(), "rt-new");
        assert!(!path.exists(), "moved back");
        assert_eq!(std::fs::read_to_string(s.refresh_token_path()).unwrap(), "rt-new");
    }

    /// A rescue older than the stored refresh token (a login stored a newer one where the rescue
    /// was out of sight, another `TMPDIR`) is passed over, not put back over the newer one.
    #[cfg(unix)]
    #[test]
    fn a_rescue_older_than_the_stored_refresh_token_is_passed_over() {
        let (_h, _tmp, s) = store_with_tmp();
        let path = s.write_rescue(&SecretString::from("rt-rescued"), None).unwrap();
        let long_ago = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(long_ago).unwrap();
        // Stored by a woci that did not see the rescue (it removes only those it sees).
        s.ensure_dir().unwrap();
        std::fs::write(s.refresh_token_path(), "rt-login").unwrap();
        chmod(&s.refresh_token_path(), 0o600);
        assert_eq!(s.read_refresh_token(None).unwrap().unwrap().expose(), "rt-login");
        assert_eq!(std::fs::read_to_string(s.refresh_token_path()).unwrap(), "rt-login");
    }

    /// Plants `s`'s rescue file = `planted` in the rescue folder, as another user could.
    #[cfg(unix)]
    fn plant(tmp: &Path, s: &SessionStore, planted: &str) -> PathBuf {
        let dir = rescue_dir(tmp);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(s.rescue_name());
        std::fs::write(&file, planted).unwrap();
        chmod(&file, 0o600);
        chmod(&dir, 0o700);
        file
    }

    #[cfg(unix)]
    fn assert_ignored(s: &SessionStore, planted: &Path, why: &str) {
        assert_eq!(s.read_refresh_token(None).unwrap().unwrap().expose(), "rt-mine", "{why}: never adopted");
        assert_eq!(std::fs::read_to_string(s.refresh_token_path()).unwrap(), "rt-mine", "{why}: never moved in");
        assert_eq!(s.stored_refresh_token().unwrap().state(), RefreshTokenState::Plain, "{why}");
        assert!(std::fs::symlink_metadata(planted).is_ok(), "{why}: left for the user to remove");
    }

    #[cfg(unix)]
    #[test]
    fn a_rescue_folder_or_file_another_user_could_have_planted_is_ignored() {
        // Folder open to others.
        let (_h, tmp, s) = store_with_tmp();
        s.write_refresh_token(&SecretString::from("rt-mine"), None).unwrap();
        let f = plant(tmp.path(), &s, "rt-planted");
        chmod(&rescue_dir(tmp.path()), 0o777);
        assert_ignored(&s, &f, "0777 folder");
        // File readable by others.
        chmod(&rescue_dir(tmp.path()), 0o700);
        chmod(&f, 0o644);
        assert_ignored(&s, &f, "0644 file");
        // File that is a symbolic link (to a token the attacker controls).
        std::fs::remove_file(&f).unwrap();
        let theirs = tmp.path().join("theirs");
        std::fs::write(&theirs, "rt-planted").unwrap();
        chmod(&theirs, 0o600);
        std::os::unix::fs::symlink(&theirs, &f).unwrap();
        assert_ignored(&s, &f, "symlinked file");
        // A FIFO does not hang the reader.
        std::fs::remove_file(&f).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(&f).status().unwrap().success());
        assert_ignored(&s, &f, "fifo");
        // Garbage in our own folder is not fatal either.
        std::fs::remove_file(&f).unwrap();
        let f = plant(tmp.path(), &s, "{\"not\": \"an envelope\"}");
        assert_ignored(&s, &f, "garbage");
        // The folder itself a symbolic link (to a folder the attacker controls).
        let (_h2, tmp2, s2) = store_with_tmp();
        s2.write_refresh_token(&SecretString::from("rt-mine"), None).unwrap();
        let theirs = tmp2.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join(s2.rescue_name()), "rt-planted").unwrap();
        chmod(&theirs.join(s2.rescue_name()), 0o600);
        chmod(&theirs, 0o700);
        std::os::unix::fs::symlink(&theirs, rescue_dir(tmp2.path())).unwrap();
        assert_ignored(&s2, &rescue_dir(tmp2.path()), "symlinked folder");
        // Nor is anything written through it: a folder of this user's own beside it serves, so
        // taking the name does not turn the rescue off (round 81 F2).
        assert_rescued_beside(&s2, tmp2.path());
        assert_eq!(std::fs::read_to_string(theirs.join(s2.rescue_name())).unwrap(), "rt-planted");
    }

    /// A rescue with `$TMPDIR/woci-rescue-<uid>` taken: kept in a made-up folder of this user's
    /// beside it, found and moved back from there, the folder then removed.
    #[cfg(unix)]
    fn assert_rescued_beside(s: &SessionStore, tmp: &Path) {
        let path = s.write_rescue(&SecretString::from("rt-rescued"), None).unwrap();
        let folder = path.parent().unwrap().to_owned();
        let name = folder.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with(&format!("woci-rescue-{}.", fsutil::user_id())) && folder.parent() == Some(tmp));
        assert!(fsutil::PrivateDir::open(&folder, false).unwrap().is_some(), "private");
        assert_eq!(s.stored_refresh_token().unwrap().rescued(), Some(path.as_path()));
        assert_eq!(s.read_refresh_token(None).unwrap().unwrap().expose(), "rt-rescued");
        assert!(!folder.exists(), "moved back, the made-up folder goes");
    }

    #[cfg(unix)]
    #[test]
    fn a_rescue_folder_or_file_of_another_owner_is_refused() {
        let (_h, tmp, s0) = store_with_tmp();
        let f = plant(tmp.path(), &s0, "rt-planted");
        let me = fsutil::user_id();
        let other = me.wrapping_add(1);
        // As seen by another user, our folder is "someone else's".
        let e = fsutil::PrivateDir::open_as(&rescue_dir(tmp.path()), false, other).unwrap_err();
        assert!(e.to_string().contains(&format!("belongs to uid {me}, not to you (uid {other})")), "{e}");
        let dir = fsutil::PrivateDir::open(&rescue_dir(tmp.path()), false).unwrap().unwrap();
        let e = dir.read_as(&s0.rescue_name(), other).unwrap_err();
        assert!(e.to_string().contains("not to you"), "{e}");
        assert_eq!(dir.read(&s0.rescue_name()).unwrap().unwrap(), b"rt-planted");
        // For real, where this test may hand files to another user (root, as in CI).
        if me == 0 {
            let (_h, tmp, s) = store_with_tmp();
            s.write_refresh_token(&SecretString::from("rt-mine"), None).unwrap();
            let f = plant(tmp.path(), &s, "rt-planted");
            std::os::unix::fs::chown(&f, Some(65534), Some(65534)).unwrap();
            assert_ignored(&s, &f, "file of uid 65534");
            std::os::unix::fs::chown(&f, Some(0), Some(0)).unwrap();
            std::os::unix::fs::chown(rescue_dir(tmp.path()), Some(65534), Some(65534)).unwrap();
            assert_ignored(&s, &f, "folder of uid 65534");
            assert_rescued_beside(&s, tmp.path());
            assert_eq!(std::fs::read_to_string(&f).unwrap(), "rt-planted");
        }
        let _ = f;
    }

    /// The rescue folders are per user: a profile of the same name in another HOME never takes
    /// this one's rescued refresh token (it spent it, and revoked both, before).
    #[cfg(unix)]
    #[test]
    fn a_rescue_belongs_to_its_own_home() {
        let (_h, tmp, s) = store_with_tmp();
        let other_home = tempfile::tempdir().unwrap();
        let other = SessionStore::new(other_home.path(), "P").unwrap().with_temp_dir(tmp.path());
        other.write_refresh_token(&SecretString::from("rt-other"), None).unwrap();
        s.write_rescue(&SecretString::from("rt-mine"), None).unwrap();
        assert_eq!(other.read_refresh_token(None).unwrap().unwrap().expose(), "rt-other");
        assert_eq!(other.stored_refresh_token().unwrap().rescued(), None);
        assert_eq!(s.read_refresh_token(None).unwrap().unwrap().expose(), "rt-mine");
    }

    /// A job without `$XDG_RUNTIME_DIR` finds what a desktop shell's woci rescued in the user's
    /// runtime folder, but saves its own rescues where every woci looks (the temporary folder).
    #[cfg(unix)]
    #[test]
    fn the_desktop_runtime_folder_is_looked_in_not_written() {
        let (_h, tmp, s) = store_with_tmp();
        let run = tempfile::tempdir().unwrap();
        chmod(run.path(), 0o700);
        let desktop = s.clone().with_runtime_dir(Some(run.path().to_owned()));
        let job = s.with_desktop_runtime(Some(run.path().to_owned()));
        let p = desktop.write_rescue(&SecretString::from("rt-desktop"), None).unwrap();
        assert!(p.starts_with(run.path()));
        assert_eq!(job.stored_refresh_token().unwrap().rescued(), Some(p.as_path()));
        assert_eq!(job.read_refresh_token(None).unwrap().unwrap().expose(), "rt-desktop");
        let p = job.write_rescue(&SecretString::from("rt-job"), None).unwrap();
        assert_eq!(p, rescue_dir(tmp.path()).join(job.rescue_name()));
    }

    #[cfg(unix)]
    #[test]
    fn rescues_go_to_a_private_runtime_folder_and_not_to_an_unsafe_one() {
        let (_h, tmp, s) = store_with_tmp();
        let run = tempfile::tempdir().unwrap();
        chmod(run.path(), 0o700);
        let s = s.with_runtime_dir(Some(run.path().to_owned()));
        let p = s.write_rescue(&SecretString::from("rt-a"), None).unwrap();
        assert_eq!(p, run.path().join("woci-rescue").join(s.rescue_name()));
        assert_eq!(s.stored_refresh_token().unwrap().open(None).unwrap().unwrap().expose(), "rt-a");
        // `$XDG_RUNTIME_DIR` open to others: not used; the temporary folder's private one is.
        chmod(run.path(), 0o755);
        let p = s.write_rescue(&SecretString::from("rt-b"), None).unwrap();
        assert_eq!(p, rescue_dir(tmp.path()).join(s.rescue_name()));
        assert_eq!(s.stored_refresh_token().unwrap().open(None).unwrap().unwrap().expose(), "rt-b");
        // Stored in the session folder again: every rescued copy is gone.
        chmod(run.path(), 0o700);
        s.write_refresh_token(&SecretString::from("rt-c"), None).unwrap();
        assert!(!p.exists());
        assert_eq!(s.read_refresh_token(None).unwrap().unwrap().expose(), "rt-c");
    }
}
