//! File-system primitives with the guarantees session files need: private permissions (files
//! 0600, folders 0700), atomic replacement (temp file in the same folder, fsync, rename, fsync of
//! the folder) and cross-process locks that never hang forever; and reads bounded in size
//! ([`read_bounded`]), so a file woci does not own cannot make it hold more than a few MiB.

use crate::error::{Error, Result};
use fs4::fs_std::FileExt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

/// Creates `dir` (and parents) if needed and makes `dir` itself 0700.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io("cannot create folder", dir, e))?;
    #[cfg(unix)]
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("cannot set permissions on", dir, e))?;
    Ok(())
}

/// Atomically replaces `path` with `contents`, mode 0600. Readers see the old or the new file,
/// never a partial one; a crash leaves at most a stray `.tmp` file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic_mode(path, contents, 0o600)
}

/// [`write_atomic`] with another mode, set explicitly so the umask cannot narrow it (the
/// metrics file must be readable by node_exporter: 0644).
pub fn write_atomic_mode(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.{:08x}.tmp", std::process::id(), rand::random::<u32>()));
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        opts.mode(mode & 0o600);
        let mut f = opts.open(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
        #[cfg(unix)]
        if mode != 0o600 {
            f.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io("cannot set permissions on", &tmp, e))?;
        }
        #[cfg(not(unix))]
        let _ = mode;
        f.write_all(contents).map_err(|e| Error::io("cannot write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("cannot sync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io("cannot replace", path, e))?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Expands a leading `~` path component (`~` or `~/…`, not `~user`) to `home`, as `oci` and the
/// shell do. The one expander for every path woci reads from flags, variables and files.
pub fn expand_home(p: impl AsRef<Path>, home: &Path) -> PathBuf {
    let p = p.as_ref();
    match p.strip_prefix("~") {
        Ok(rest) => home.join(rest),
        Err(_) => p.to_owned(),
    }
}

/// Whether `dir` can take a small write now: a probe file is created, synced and removed, and the
/// file system has at least `room` bytes free.
pub fn check_writable(dir: &Path, room: u64) -> Result<()> {
    let probe = dir.join(format!(".probe.{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&probe)?;
        f.write_all(&[0u8; 512])?;
        f.sync_all()
    })();
    let _ = fs::remove_file(&probe);
    result.map_err(|e| Error::io("cannot write in", dir, e))?;
    match fs4::available_space(dir) {
        Ok(free) if free < room => Err(Error::io(
            "not enough free space in",
            dir,
            std::io::Error::new(std::io::ErrorKind::StorageFull, format!("{free} bytes free")),
        )),
        _ => Ok(()),
    }
}

/// The real user id (0 where there is none), for per-user folder names.
pub fn user_id() -> u32 {
    #[cfg(unix)]
    // SAFETY: getuid(2) cannot fail and touches no memory.
    return unsafe { libc::getuid() };
    #[cfg(not(unix))]
    0
}

/// Whether a process with this pid exists (signal 0); `true` where that cannot be known.
pub fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = i32::try_from(pid) else { return false };
        if pid <= 0 {
            return true; // not a single process: never treat it as gone
        }
        // SAFETY: kill(2) with signal 0 only checks for the process; it sends nothing. EPERM means
        // it exists (another user's process).
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Whether `p` is a file this user could execute (Unix: any execute bit).
pub fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// The most woci reads from a file, a program or a server it does not own (a JWT, a key, a
/// config file are a few KiB): more is an error, so memory stays bounded.
pub const MAX_INPUT: usize = 1024 * 1024;

/// Reads `path`, at most `max` bytes: a longer file (or `/dev/zero`) is read no further and is an
/// error of kind [`std::io::ErrorKind::FileTooLarge`] that says the bound.
pub fn read_bounded(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.take(max as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > max {
        return Err(too_large(max));
    }
    Ok(buf)
}

/// [`read_bounded`] as text; not UTF-8 is an error of kind `InvalidData`, as with
/// [`std::fs::read_to_string`].
pub fn read_text_bounded(path: &Path, max: usize) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, max)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

/// The error of an input over `max` bytes: "larger than 1 MiB".
pub fn too_large(max: usize) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::FileTooLarge, format!("larger than {}", fmt_size(max)))
}

/// `1 MiB`, `64 KiB`, `100 bytes`.
pub fn fmt_size(n: usize) -> String {
    const KIB: usize = 1024;
    match n {
        n if n >= KIB * KIB && n % (KIB * KIB) == 0 => format!("{} MiB", n / (KIB * KIB)),
        n if n >= KIB && n % KIB == 0 => format!("{} KiB", n / KIB),
        n => format!("{n} bytes"),
    }
}

/// Reads a file (at most [`MAX_INPUT`] bytes), mapping errors to [`Error::Io`]. `Ok(None)` when
/// it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match read_bounded(path, MAX_INPUT) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}

/// An exclusive advisory lock on a file, released on drop.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Takes the lock, polling until `timeout`; [`Error::Busy`] if another process keeps it.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<FileLock> {
        let lock = Self::open(path)?;
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            match FileExt::try_lock_exclusive(&lock.file) {
                Ok(true) => return Ok(lock),
                Ok(false) => {}
                Err(e) => return Err(Error::io("cannot lock", path, e)),
            }
            if Instant::now() >= deadline {
                return Err(Error::Busy(format!(
                    "another woci process has held `{}` for more than {}s",
                    path.display(),
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Takes the lock like [`Self::acquire`]; also says whether another process held it first.
    pub fn acquire_noting_wait(path: &Path, timeout: Duration) -> Result<(FileLock, bool)> {
        match Self::try_acquire(path)? {
            Some(lock) => Ok((lock, false)),
            None => Ok((Self::acquire(path, timeout)?, true)),
        }
    }

    /// Takes the lock only if it is free right now.
    pub fn try_acquire(path: &Path) -> Result<Option<FileLock>> {
        let lock = Self::open(path)?;
        match FileExt::try_lock_exclusive(&lock.file) {
            Ok(true) => Ok(Some(lock)),
            Ok(false) => Ok(None),
            Err(e) => Err(Error::io("cannot lock", path, e)),
        }
    }

    fn open(path: &Path) -> Result<FileLock> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        opts.mode(0o600);
        let file = opts.open(path).map_err(|e| Error::io("cannot open lock file", path, e))?;
        Ok(FileLock { file, path: path.to_owned() })
    }

    /// The locked file (e.g. to write a pid into it).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_reads_stop_after_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"12345").unwrap();
        assert_eq!(read_bounded(&p, 5).unwrap(), b"12345");
        let e = read_bounded(&p, 4).unwrap_err();
        assert_eq!((e.kind(), e.to_string()), (std::io::ErrorKind::FileTooLarge, "larger than 4 bytes".into()));
        #[cfg(target_os = "linux")]
        {
            let e = read_bounded(Path::new("/dev/zero"), MAX_INPUT).unwrap_err();
            assert_eq!(e.to_string(), "larger than 1 MiB");
        }
        assert!(matches!(read_optional(&dir.path().join("missing")), Ok(None)));
        assert_eq!(fmt_size(64 * 1024), "64 KiB");
    }

    #[test]
    fn atomic_write_is_private_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }

    #[test]
    #[cfg(unix)]
    fn atomic_write_with_a_mode_ignores_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("woci.prom");
        // SAFETY: umask(2) only swaps the process's file-creation mask.
        let old = unsafe { libc::umask(0o077) };
        let result = write_atomic_mode(&p, b"x 1\n", 0o644);
        unsafe { libc::umask(old) };
        result.unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn private_dir_is_0700() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        ensure_private_dir(&d).unwrap();
        #[cfg(unix)]
        assert_eq!(fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn lock_is_exclusive_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let held = FileLock::acquire(&p, Duration::from_secs(1)).unwrap();
        assert!(FileLock::try_acquire(&p).unwrap().is_none());
        let err = FileLock::acquire(&p, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, Error::Busy(_)));
        drop(held);
        assert!(FileLock::try_acquire(&p).unwrap().is_some());
    }
}
