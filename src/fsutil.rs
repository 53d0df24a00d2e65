//! File-system primitives with the guarantees session files need: private permissions (files
//! 0600, folders 0700), atomic replacement (temp file in the same folder, fsync, rename, fsync of
//! the folder), temp files whose completeness can be proven ([`write_atomic_proven`]), folders
//! checked on their descriptor before use ([`PrivateDir`]), cross-process locks that never hang
//! forever and never follow a symbolic link, process identity (pid + start time), and reads
//! bounded in size ([`read_bounded`]), so a file woci does not own cannot make it hold more than
//! a few MiB.

use crate::error::{Error, Result};
use fs4::fs_std::FileExt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

/// The owner of `dir` when this process is root and `dir` is another user's: what root gives
/// the files and folders it makes there ([`adopt_owner`]).
#[cfg(unix)]
fn foreign_owner(dir: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    fs::metadata(dir).ok().filter(|m| m.uid() != 0).map(|m| (m.uid(), m.gid()))
}

/// Which file a path is now (device, inode, change time, size): a file replaced or rewritten
/// differs (`None` when there is none).
pub(crate) fn identity(path: &Path) -> Option<(u64, u64, i64, i64, u64)> {
    let m = fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((m.dev(), m.ino(), m.ctime(), m.ctime_nsec(), m.len()))
    }
    #[cfg(not(unix))]
    Some((0, 0, m.modified().map(crate::clock::unix_millis).unwrap_or(0), 0, m.len()))
}

/// A path's permission bits and owner (`None` when it cannot be looked at).
pub(crate) fn mode_and_owner(path: &Path) -> Option<(u32, u32)> {
    let m = fs::metadata(path).ok()?;
    #[cfg(unix)]
    return Some((m.permissions().mode() & 0o7777, std::os::unix::fs::MetadataExt::uid(&m)));
    #[cfg(not(unix))]
    Some((u32::from(m.permissions().readonly()), 0))
}

/// Whether a file or folder of `owner` in the folder `parent` is this user's to use: the user's
/// own, or, for root with a user's HOME (`sudo -E`), the owner's of `parent`, whose HOME it is.
#[cfg(unix)]
pub(crate) fn own_or_home_users(owner: u32, parent: Option<&Path>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let me = user_id();
    owner == me || me == 0 && parent.and_then(|p| fs::metadata(p).ok()).is_some_and(|m| m.uid() == owner)
}

/// Run as root with a user's HOME (`sudo -E`, `su -m`, a root job), woci gives what it creates
/// in a folder of that user's the folder's owner, as `oci` keeps a file's owner by writing it in
/// place: one root call never leaves a user's `~/.oci` with files the user cannot read.
#[cfg(unix)]
pub(crate) fn adopt_owner(file: &File, dir: &Path) {
    if let Some((uid, gid)) = foreign_owner(dir) {
        let _ = std::os::unix::fs::fchown(file, Some(uid), Some(gid));
    }
}

/// Creates `dir` (and parents) if needed and makes `dir` itself 0700.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    // Made by this call, top down: given their parent's owner when root makes them.
    #[cfg(unix)]
    let made: Vec<PathBuf> =
        dir.ancestors().take_while(|d| fs::symlink_metadata(d).is_err()).map(Path::to_owned).collect();
    // Folders it creates on the way (`~/.oci`, `~/.oci/sessions`) are private too.
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| Error::io("cannot create folder", dir, e))?;
    #[cfg(unix)]
    for new in made.iter().rev() {
        if let Some((uid, gid)) = new.parent().and_then(foreign_owner) {
            // Not following a link another user may have put in its place meanwhile.
            let _ = std::os::unix::fs::lchown(new, Some(uid), Some(gid));
        }
    }
    // Set only when needed: a read-only folder that is private already is left to the write
    // that needs it to say so.
    #[cfg(unix)]
    if fs::metadata(dir).map_or(true, |m| m.permissions().mode() & 0o777 != 0o700) {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("cannot set permissions on", dir, e))?;
    }
    Ok(())
}

/// Atomically replaces `path` with `contents`, mode 0600. Readers see the old or the new file,
/// never a partial one; a crash leaves at most a stray `.tmp` file.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic_mode(path, contents, 0o600)
}

/// [`write_atomic`] with another mode, set explicitly so the umask cannot narrow it (the
/// metrics file must be readable by node_exporter: 0644).
pub(crate) fn write_atomic_mode(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    write_atomic_tagged(path, contents, &format!("{:08x}", rand::random::<u32>()), false, mode)
}

/// [`write_atomic`] for a file whose loss costs the session (the rotated refresh token). The temp
/// file is `.<name>.<pid>.<SHA-256 of the contents>.tmp`, so one that a killed writer left can be
/// proven complete ([`ProvenTemp::complete_contents`]) and rolled forward instead of swept. The
/// file itself gets exactly `contents`, as with [`write_atomic`].
pub(crate) fn write_atomic_proven(path: &Path, contents: &[u8]) -> Result<()> {
    write_atomic_tagged(path, contents, &sha256_hex(contents), true, 0o600)
}

/// The temp file an atomic write of `name` goes through: `.<name>.<pid>.<tag>.tmp`, the shape
/// `SessionStore::sweep_stray_temp_files` recognises (and removes once the pid is gone).
fn temp_name(name: &str, tag: &str) -> String {
    format!(".{name}.{}.{tag}.tmp", std::process::id())
}

fn write_atomic_tagged(path: &Path, contents: &[u8], tag: &str, proven: bool, mode: u32) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(temp_name(name, tag));
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
        #[cfg(unix)]
        adopt_owner(&f, dir);
        // Two writes in the crash tests' build, so that they can stop the process between them.
        let half = if cfg!(feature = "failpoints") && proven { contents.len() / 2 } else { contents.len() };
        let (first, rest) = contents.split_at(half);
        f.write_all(first).map_err(|e| Error::io("cannot write", &tmp, e))?;
        if proven {
            failpoint("half_written", name);
        }
        f.write_all(rest).map_err(|e| Error::io("cannot write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("cannot sync", &tmp, e))?;
        failpoint("synced", name);
        fs::rename(&tmp, path).map_err(|e| Error::io("cannot replace", path, e))?;
        failpoint("renamed", name);
        sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes a rename in `dir` durable: an fsync of the folder (best effort).
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Test-only fault injection at a step of an atomic write: `fsutil::<step>::<file name>`
/// (`half_written` for proven writes only, `synced`, `renamed`).
#[cfg_attr(not(feature = "failpoints"), inline(always))]
fn failpoint(step: &str, name: &str) {
    #[cfg(feature = "failpoints")]
    crate::critical::failpoint(&format!("fsutil::{step}::{name}"));
    #[cfg(not(feature = "failpoints"))]
    let _ = (step, name);
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A temp file of [`write_atomic_proven`] that is still there: its writer died (or was killed)
/// between creating it and the rename, or is writing right now.
#[derive(Debug, Clone)]
pub(crate) struct ProvenTemp {
    /// The temp file.
    pub path: PathBuf,
    /// Its writer's pid.
    pub pid: u32,
    /// When it was last written.
    pub modified: std::time::SystemTime,
    digest: String,
}

impl ProvenTemp {
    /// The proven temp files of `dir/name` (a missing or unreadable folder has none).
    pub(crate) fn find(dir: &Path, name: &str) -> Vec<ProvenTemp> {
        let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|entry| {
                let file = entry.file_name();
                let (pid, digest) = split_name(file.to_str()?, name)?;
                let pid = pid.parse::<u32>().ok()?;
                let digest = Some(digest).filter(|d| d.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))?;
                let meta = entry.path().symlink_metadata().ok().filter(|m| m.is_file())?;
                Some(ProvenTemp { path: entry.path(), pid, modified: meta.modified().ok()?, digest: digest.to_owned() })
            })
            .collect()
    }

    /// Whether `name` is a proven temp file's name of `target` (any pid).
    pub(crate) fn is_name_of(name: &str, target: &str) -> bool {
        split_name(name, target).is_some()
    }

    /// Its contents if they are complete: a regular file (not reached through a symbolic link)
    /// of at most 1 MiB whose SHA-256 is the one in its name.
    pub(crate) fn complete_contents(&self) -> Option<Vec<u8>> {
        let mut opts = OpenOptions::new();
        opts.read(true);
        #[cfg(unix)]
        opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        let file = opts.open(&self.path).ok()?;
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let bytes = read_bounded_from(file, MAX_INPUT).ok()?;
        (sha256_hex(&bytes) == self.digest).then_some(bytes)
    }
}

/// The pid and digest parts of `name` when it has the form of a proven temp file's name of
/// `target`: `.<target>.<digits>.<64 characters>.tmp`.
fn split_name<'a>(name: &'a str, target: &str) -> Option<(&'a str, &'a str)> {
    let (pid, digest) = name.strip_prefix(&format!(".{target}."))?.strip_suffix(".tmp")?.split_once('.')?;
    (pid.bytes().all(|b| b.is_ascii_digit()) && digest.len() == 64).then_some((pid, digest))
}

/// Expands a leading `~` path component (`~` or `~/…`, not `~user`) to `home`, as `oci` and the
/// shell do. The one expander for every path woci reads from flags, variables and files.
pub(crate) fn expand_home(p: impl AsRef<Path>, home: &Path) -> PathBuf {
    let p = p.as_ref();
    p.strip_prefix("~").map_or_else(|_| p.to_owned(), |rest| home.join(rest))
}

/// True for a real folder, not a symbolic link to one (nor a missing path): where hooks and metrics
/// may keep state without ever writing where a link points.
pub(crate) fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

/// Whether `dir` can take a small write now: a probe file is created, synced and removed, and the
/// file system has at least `room` bytes free.
pub(crate) fn check_writable(dir: &Path, room: u64) -> Result<()> {
    let probe = dir.join(probe_name());
    let result = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
        let mut f = opts.open(&probe)?;
        f.write_all(&[0u8; 512])?;
        f.sync_all()
    })();
    let _ = fs::remove_file(&probe);
    result.map_err(|e| write_in_error(dir, e))?;
    check_room(dir, room)
}

/// The file [`check_writable`] writes. Named like an atomic write's temp file: one a kill leaves
/// behind is swept with them. As long as the longest of them (the rotated refresh token's,
/// `.refresh_token.<pid>.<64 hex>.tmp`), so a folder whose path nears PATH_MAX fails the look
/// before a grant is sent, not the store of its answer.
fn probe_name() -> String {
    temp_name("probe", &"w".repeat(72))
}

fn write_in_error(dir: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() != Some(libc::ENAMETOOLONG) {
        return Error::io("cannot write in", dir, e);
    }
    Error::io("cannot write in", dir, e)
        .with_hint("its path is too long for the files woci writes there: use a shorter `HOME` or config path")
}

/// File descriptors held while a refresh grant is out, so that storing its answer cannot fail for
/// want of one (a low `ulimit -n`, a program's many connections): taken before the grant, given
/// back just before the writes, which need fewer.
#[cfg(unix)]
pub(crate) struct FdReserve(#[allow(dead_code, reason = "held, never read")] Vec<std::os::fd::OwnedFd>);

#[cfg(unix)]
impl FdReserve {
    const HELD: usize = 2;

    /// Takes [`Self::HELD`] descriptors (copies of stdin's, which the runtime keeps open); too
    /// few free is an error naming the fix, before anything is sent.
    pub(crate) fn take(dir: &Path) -> Result<FdReserve> {
        use std::os::fd::AsFd;
        (0..Self::HELD)
            .map(|_| std::io::stdin().as_fd().try_clone_to_owned())
            .collect::<std::io::Result<Vec<_>>>()
            .map(FdReserve)
            .map_err(|e| {
                Error::io("cannot keep the file descriptors that storing the new refresh token needs in", dir, e)
                    .with_hint("nothing was sent yet (no refresh token spent): raise the limit (`ulimit -n`)")
            })
    }
}

/// The caller's open-file limit, kept when woci raised its own ([`raise_open_file_limit`]).
#[cfg(unix)]
static CALLER_NOFILE: std::sync::OnceLock<libc::rlimit> = std::sync::OnceLock::new();

/// Open files a call needs (its runtime, renewal and child); a run with the re-signing proxy
/// ([`PROXY_OPEN_FILES`]) needs room for the program's connections too.
pub(crate) const CALL_OPEN_FILES: u64 = 16;
/// See [`CALL_OPEN_FILES`].
pub(crate) const PROXY_OPEN_FILES: u64 = 64;

/// At start: a soft `ulimit -n` below what a renewal beside the re-signing proxy's connections
/// needs is raised toward the hard limit, as Go's runtime does, and the program woci runs gets
/// the caller's back ([`restore_open_file_limit`]). A hard limit below what the command `needs`
/// is one error naming the fix, instead of a failure halfway (a panic in the async runtime,
/// once; a proxy out of descriptors mid-upload).
#[cfg(unix)]
pub(crate) fn raise_open_file_limit(needed: u64) -> Result<()> {
    const FLOOR: u64 = PROXY_OPEN_FILES;
    let Some(caller) = open_file_limit().filter(|l| l.rlim_cur < FLOOR) else { return Ok(()) };
    let raised = libc::rlimit { rlim_cur: FLOOR.min(caller.rlim_max), rlim_max: caller.rlim_max };
    let mut now = caller.rlim_cur;
    // SAFETY: setrlimit with a valid pointer to an owned struct.
    if raised.rlim_cur > caller.rlim_cur && unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        let _ = CALLER_NOFILE.set(caller);
        now = raised.rlim_cur;
    }
    if now >= needed {
        return Ok(());
    }
    // The soft limit was raised to the hard one already: only the hard one can give more.
    Err(Error::Other(format!(
        "the open-file limit (`ulimit -n` {now}, the hard limit) is below the {needed} woci needs for this; raise \
         the hard limit (`ulimit -Hn`: as root, in /etc/security/limits.conf, or `LimitNOFILE=` for a systemd \
         service)"
    )))
}

/// This process's open-file limit (`None` when it cannot be read).
#[cfg(unix)]
fn open_file_limit() -> Option<libc::rlimit> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit with a valid pointer to an owned struct.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit)
}

/// In a child before `exec` (async-signal-safe): the open-file limit the caller gave woci.
#[cfg(unix)]
pub(crate) fn restore_open_file_limit() {
    if let Some(caller) = CALLER_NOFILE.get() {
        // SAFETY: setrlimit(2) is a plain system call.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, caller) };
    }
}

/// Room a renewal needs in the session folder: its new files, with room to spare.
pub(crate) const RENEWAL_ROOM: u64 = 64 * 1024;

/// Whether the file system of `dir` has at least `room` bytes free.
fn check_room(dir: &Path, room: u64) -> Result<()> {
    match fs4::available_space(dir) {
        Ok(free) if free < room => Err(Error::io(
            "not enough free space in",
            dir,
            std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "{} free, {} needed; nothing was sent yet (no refresh token spent): free some space there",
                    fmt_size(usize::try_from(free).unwrap_or(usize::MAX)),
                    fmt_size(usize::try_from(room).unwrap_or(usize::MAX))
                ),
            ),
        )),
        _ => Ok(()),
    }
}

/// Why a renewal's files cannot be made in `dir` (or, while it does not exist, in the nearest
/// folder above it that does), if so: looked at without writing (`access(2)`, which also knows a
/// read-only mount, and the free space), for `--status` to say what the call's
/// [`check_writable`] would meet.
pub(crate) fn cannot_write_in(dir: &Path) -> Option<String> {
    #[cfg(unix)]
    if dir.join(probe_name()).as_os_str().len() >= libc::PATH_MAX as usize {
        return Some(write_in_error(dir, std::io::Error::from_raw_os_error(libc::ENAMETOOLONG)).to_string());
    }
    let at = dir.ancestors().find(|d| fs::symlink_metadata(d).is_ok())?;
    #[cfg(unix)]
    if let Err(refused) = rustix::fs::access(at, rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK) {
        let e = std::io::Error::from_raw_os_error(refused.raw_os_error());
        return Some(Error::io("cannot write in", at, e).to_string());
    }
    check_room(at, RENEWAL_ROOM).err().map(|e| e.to_string())
}

/// The real user id (0 where there is none), for per-user folder names.
pub(crate) fn user_id() -> u32 {
    #[cfg(unix)]
    // SAFETY: getuid(2) cannot fail and touches no memory.
    return unsafe { libc::getuid() };
    #[cfg(not(unix))]
    0
}

/// What [`kill`] sends.
#[derive(Clone, Copy)]
pub(crate) enum Signal {
    /// Signal 0: only checks that the process (group) exists.
    Probe,
    Term,
    Kill,
    /// SIGCONT: resumes a stopped process.
    Cont,
}

/// kill(2): sends `sig` to process `pid`, or to the process group `-pid` when it is negative.
#[cfg(unix)]
pub(crate) fn kill(pid: i32, sig: Signal) -> std::io::Result<()> {
    let sig = match sig {
        Signal::Probe => 0,
        Signal::Term => libc::SIGTERM,
        Signal::Kill => libc::SIGKILL,
        Signal::Cont => libc::SIGCONT,
    };
    // SAFETY: kill(2) involves no memory.
    match unsafe { libc::kill(pid, sig) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Sends `sig` to the process group `pgid` (a helper or hook started as its group's leader); `false` when the group has no member left.
#[cfg(unix)]
pub(crate) fn signal_group(pgid: i32, sig: Signal) -> bool {
    kill(-pgid, sig).is_ok()
}

#[cfg(not(unix))]
pub(crate) fn signal_group(_: i32, _: Signal) -> bool {
    false
}

/// Whether a process with this pid exists (signal 0) and has not ended (a zombie, ended but not
/// yet reaped by its parent, has: it holds no lock and renews nothing); `true` where that cannot
/// be known.
pub(crate) fn process_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(signed) = i32::try_from(pid) else { return false };
        // Not a single process (pid 0): never treat it as gone. EPERM means it exists (another
        // user's process).
        signed <= 0
            || (kill(signed, Signal::Probe).map_or_else(|e| e.raw_os_error() == Some(libc::EPERM), |()| true)
                && stat_field(pid, 0).is_none_or(|state| state != "Z" && state != "X"))
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Where `PATH` (its value `path_var`) would find the bare program `name`, in order; an empty
/// entry is the current folder, as for `execvp`.
pub(crate) fn path_candidates<'a>(path_var: &'a std::ffi::OsStr, name: &'a Path) -> impl Iterator<Item = PathBuf> + 'a {
    std::env::split_paths(path_var)
        .map(move |dir| if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir }.join(name))
}

/// Whether `p` is a file this user could execute (Unix: any execute bit).
pub(crate) fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    return std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    #[cfg(not(unix))]
    p.is_file()
}

/// The most woci reads from a file, a program or a server it does not own (a JWT, a key, a
/// config file are a few KiB): more is an error, so memory stays bounded.
pub(crate) const MAX_INPUT: usize = 1024 * 1024;

/// The most a CA bundle may hold: corporate bundles run to a few MiB.
pub(crate) const MAX_CA_BUNDLE: usize = 16 * MAX_INPUT;

/// Reads `path`, at most `max` bytes: a longer file (or `/dev/zero`) is read no further and is an
/// error of kind [`std::io::ErrorKind::FileTooLarge`] that says the bound. Opened non-blocking,
/// so a FIFO put where a file belongs reads as empty (or `WouldBlock`) instead of hanging the call
/// (or a shell prompt running `--status --prompt`).
pub(crate) fn read_bounded(path: &Path, max: usize) -> std::io::Result<Vec<u8>> {
    let mut opts = OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    opts.custom_flags(libc::O_NONBLOCK);
    read_bounded_from(opts.open(path)?, max)
}

/// All of `r`, or an error of kind `FileTooLarge` when it holds more than `max` bytes.
pub(crate) fn read_bounded_from(r: impl Read, max: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(max as u64 + 1).read_to_end(&mut buf)?;
    if buf.len() > max {
        return Err(too_large(max));
    }
    Ok(buf)
}

/// [`read_bounded`] as text; not UTF-8 is an error of kind `InvalidData`, as with
/// [`std::fs::read_to_string`].
pub(crate) fn read_text_bounded(path: &Path, max: usize) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, max)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

/// The error of an input over `max` bytes: "larger than 1 MiB".
pub(crate) fn too_large(max: usize) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::FileTooLarge, format!("larger than {}", fmt_size(max)))
}

/// An I/O error's reason in words, without the OS error number.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// `1 MiB`, `64 KiB`, `100 bytes`.
pub(crate) fn fmt_size(n: usize) -> String {
    const KIB: usize = 1024;
    match n {
        n if n >= KIB * KIB && n % (KIB * KIB) == 0 => format!("{} MiB", n / (KIB * KIB)),
        n if n >= KIB && n % KIB == 0 => format!("{} KiB", n / KIB),
        n => format!("{n} bytes"),
    }
}

/// When the process `pid` started, as the kernel counts it (Linux: field 22 of
/// `/proc/<pid>/stat`, clock ticks since boot). With the pid it names one process for good: a
/// later process that reuses the pid has another start time. `None` when the process is gone
/// or the system does not say (no `/proc`, not Linux).
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 19)?.parse().ok()
}

/// How long a wait goes on for a process that stays stopped (Ctrl-Z, SIGSTOP) and holds what the
/// waiter needs (a lock, the login callback port): only a person can resume it.
pub(crate) const STOPPED_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// The process listening on 127.0.0.1:`port` (TCP), found through `/proc` (Linux; only this
/// user's processes show their sockets). `None` when it cannot be told.
pub(crate) fn loopback_listener(port: u16) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        // `/proc/net/tcp`: `sl local_address rem_address st … inode`, the address in host order.
        let local = format!("{:08X}:{port:04X}", u32::from_ne_bytes([127, 0, 0, 1]));
        let table = fs::read_to_string("/proc/net/tcp").ok()?;
        let inode = table.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A")).then(|| f.get(9).copied()).flatten()
        })?;
        let socket = format!("socket:[{inode}]");
        fs::read_dir("/proc").ok()?.flatten().find_map(|p| {
            let pid = p.file_name().to_str()?.parse().ok()?;
            let mut fds = fs::read_dir(p.path().join("fd")).ok()?.flatten();
            fds.any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == socket.as_str())).then_some(pid)
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = port;
        None
    }
}

/// Whether the process `pid` is stopped (Ctrl-Z, SIGSTOP, a debugger): `T` or `t` in
/// `/proc/<pid>/stat`. False when the system does not say.
pub(crate) fn process_stopped(pid: u32) -> bool {
    stat_field(pid, 0).is_some_and(|state| state == "T" || state == "t")
}

/// Whether the program process `pid` runs has been replaced on disk since it started (an upgrade
/// renames a new binary over it), Linux only.
pub(crate) fn binary_replaced(pid: u32) -> bool {
    fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe.to_string_lossy().ends_with(" (deleted)"))
}

/// Whether the binary process `pid` runs is gone from disk with nothing in its place (woci
/// uninstalled, not upgraded), Linux only.
pub(crate) fn binary_removed(pid: u32) -> bool {
    fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| {
        let exe = exe.to_string_lossy();
        exe.strip_suffix(" (deleted)").is_some_and(|path| !Path::new(path).exists())
    })
}

/// Field `n` after the command name of `/proc/<pid>/stat` (0 is the state), Linux only.
fn stat_field(pid: u32, n: usize) -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so count from the last `)`.
        let after_comm = &stat[stat.rfind(')')? + 1..];
        after_comm.split_whitespace().nth(n).map(str::to_owned)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pid, n);
        None
    }
}

/// Whether [`process_start_time`] works here (it does for this very process).
pub(crate) fn start_times_known() -> bool {
    process_start_time(std::process::id()).is_some()
}

/// The error for a file or folder woci does not follow because it is a symbolic link.
pub(crate) fn symlink_refused(path: &Path) -> Error {
    let p = path.display();
    // Another user's link (in `/tmp`, whose sticky bit lets only its owner remove it): their fix.
    #[cfg(unix)]
    if let Some(owner) =
        fs::symlink_metadata(path).ok().map(|m| std::os::unix::fs::MetadataExt::uid(&m)).filter(|o| *o != user_id())
    {
        return Error::Config(format!(
            "`{p}` is a symbolic link of uid {owner}'s, so another user may have put it there; woci does not \
             follow it: have its owner or root remove it"
        ));
    }
    Error::Config(format!("`{p}` is a symbolic link; woci does not follow it: remove it (`rm {p}`) and try again"))
}

/// Opens a lock or pid file without following a symbolic link (`O_NOFOLLOW`; std adds
/// `O_CLOEXEC`, so helpers woci runs never inherit it). A symbolic link is [`symlink_refused`].
/// Refuses a path that exists but is no regular file (a symbolic link, a folder, a FIFO), with the
/// fix; a missing one is fine.
pub(crate) fn refuse_non_file(path: &Path) -> Result<()> {
    let p = path.display();
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(symlink_refused(path)),
        Ok(m) if !m.is_file() => {
            Err(Error::Config(format!("`{p}` is not a regular file; remove it (`rm -r {p}`) and try again")))
        }
        _ => Ok(()),
    }
}

pub(crate) fn open_no_follow(path: &Path, opts: &mut OpenOptions, what: &'static str) -> Result<File> {
    #[cfg(unix)]
    opts.custom_flags(libc::O_NOFOLLOW);
    opts.open(path).map_err(|e| {
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            symlink_refused(path)
        } else {
            Error::io(what, path, e)
        }
    })
}

/// Reads a file (at most [`MAX_INPUT`] bytes), mapping errors to [`Error::Io`]. `Ok(None)` when
/// it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    // A FIFO, socket or device where woci keeps a file is damage, not an empty (absent) file.
    if fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return Err(Error::corrupt(path, "not a regular file (a FIFO, socket or device)"));
    }
    match read_bounded(path, MAX_INPUT) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        // Unusable, not an I/O failure: exit 7 with the file named, like a damaged one.
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => Err(Error::corrupt(path, e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => Err(Error::corrupt(path, "a folder, not a file")),
        // Unusable too (exit 7, as for the key): only its owner (or root) can fix that.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let (me, p) = (user_id(), path.display());
            let fix = match mode_and_owner(path) {
                // Another user's (root's, after `sudo`): only an owner change gives it back.
                Some((_, owner)) if owner != me => {
                    format!("it belongs to uid {owner}: give it back with `sudo chown {me} {p}`")
                }
                _ => format!("run `chmod 600 {p}`"),
            };
            Err(Error::Blocked {
                code: crate::error::exit::CORRUPT_FILE,
                message: format!("cannot read `{p}`: permission denied; {fix}"),
                shared: None,
            })
        }
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}

/// Calls `attempt` until it gives an answer, for at most `timeout` (then `None`), sleeping between
/// calls: `pauses.0` at first, doubling up to `pauses.1`.
pub(crate) fn retry_until<T>(
    timeout: Duration,
    pauses: (Duration, Duration),
    mut attempt: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut pause = pauses.0;
    loop {
        if let Some(answer) = attempt() {
            return Some(answer);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(pauses.1);
    }
}

/// An exclusive advisory lock on a file, released on drop.
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

impl FileLock {
    /// Takes the lock, polling until `timeout`; [`Error::Busy`] if another process keeps it.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<FileLock> {
        Ok(Self::acquire_noting_wait(path, timeout)?.0)
    }

    /// Takes the lock like [`Self::acquire`]; also says whether another process held it first.
    pub fn acquire_noting_wait(path: &Path, timeout: Duration) -> Result<(FileLock, bool)> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        opts.mode(0o600);
        refuse_non_file(path)?;
        let lock = FileLock { file: open_no_follow(path, &mut opts, "cannot open lock file")? };
        #[cfg(unix)]
        adopt_owner(&lock.file, path.parent().unwrap_or(Path::new(".")));
        let mut waited = false;
        let pauses = (Duration::from_millis(5), Duration::from_millis(100));
        let locked = retry_until(timeout, pauses, || match FileExt::try_lock_exclusive(&lock.file) {
            Ok(false) => {
                waited = true;
                None
            }
            done => Some(done),
        });
        match locked {
            Some(Ok(_)) => Ok((lock, waited)),
            Some(Err(e)) => Err(Error::io("cannot lock", path, e)),
            None => Err(Error::Busy(format!(
                "another woci process has held `{}` for more than {}s",
                path.display(),
                timeout.as_secs()
            ))),
        }
    }

    /// Whether another process holds the lock at `path` now (tried without waiting, and let go).
    /// Tried shared, as the daemon's pid probe does: holders lock exclusively, and two lookers at
    /// once (a metrics write, a `--status`) never make each other look like a holder.
    pub fn held(path: &Path) -> bool {
        // A FIFO there would block the open, and whoever looks (a metrics write) with it.
        if refuse_non_file(path).is_err() {
            return false;
        }
        let Ok(file) = open_no_follow(path, OpenOptions::new().read(true), "cannot open lock file") else {
            return false;
        };
        let free = FileExt::try_lock_shared(&file).unwrap_or(true);
        if free {
            let _ = FileExt::unlock(&file);
        }
        !free
    }

    /// The locked file (e.g. to write a pid into it).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

/// `$TMPDIR` when it is an absolute path, else `/tmp`: an empty or relative one (as Go's and
/// Python's temp-dir lookups also hold) would put private files in the working folder.
pub(crate) fn temp_dir() -> PathBuf {
    Some(std::env::temp_dir()).filter(|t| t.is_absolute()).unwrap_or_else(|| PathBuf::from("/tmp"))
}

/// Where files go that no other local user may ever plant or read, in order:
/// `$XDG_RUNTIME_DIR/<name>` when the runtime folder is private (the user's, no access for
/// others, not a symbolic link), then `<temp_dir>/<name>-<uid>`. Neither folder is removed after
/// use, so a name in it never becomes free for another user to take (a process that outlives
/// woci may still read a path in it).
pub(crate) fn private_folders(runtime_dir: Option<&Path>, temp_dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(run) = runtime_dir {
        match PrivateDir::open(run, false) {
            Ok(Some(_)) => dirs.push(run.join(name)),
            Ok(None) => {}
            Err(e) => tracing::debug!("`{name}` does not go to `$XDG_RUNTIME_DIR`: {e}"),
        }
    }
    dirs.push(temp_dir.join(format!("{name}-{}", user_id())));
    dirs
}

/// The first of [`private_folders`] that is private or can be made so (created 0700, then
/// checked on its descriptor). Each name another user took first is named in a warning; when
/// none is left, a new unpredictably named folder (`<name>-<uid>.<random>`, removed by
/// [`release_private_folder`] once empty) serves, so nobody can stop woci by taking a name.
pub(crate) fn first_private_folder(runtime_dir: Option<&Path>, temp_dir: &Path, name: &str) -> Result<PathBuf> {
    for dir in private_folders(runtime_dir, temp_dir, name) {
        match PrivateDir::open(&dir, true) {
            Ok(Some(_)) => return Ok(dir),
            Ok(None) => {}
            // Each is a name someone else took: said (once: a run looks twice), whichever
            // folder serves instead.
            Err(e @ Error::Config(_)) => {
                static SAID: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
                let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
                if !said.contains(&dir) {
                    said.push(dir.clone());
                    tracing::warn!("{e}; not used");
                }
            }
            // The temporary folder itself takes nothing (missing, read-only, not the user's): no
            // other name in it would do better.
            Err(e) if dir.parent() == Some(temp_dir) => {
                return Err(
                    e.with_hint("the temporary folder (`TMPDIR`, else `/tmp`) must be one this user can write in")
                );
            }
            Err(e) => tracing::debug!("`{name}` does not go to `{}`: {e}", dir.display()),
        }
    }
    let dir = new_private_dir(temp_dir, &format!("{name}-{}.", user_id()))?.keep();
    tracing::info!("the private folder for `{name}` is `{}`", dir.display());
    Ok(dir)
}

/// The folders made up for `name` in `temp_dir` (`<name>-<uid>.<random>`, as
/// [`first_private_folder`] makes them) that are this user's and private; others' are passed over.
pub(crate) fn made_up_folders(temp_dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = format!("{name}-{}.", user_id());
    let Ok(entries) = fs::read_dir(temp_dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)))
        .map(|e| e.path())
        .filter(|p| matches!(PrivateDir::open(p, false), Ok(Some(_))))
        .collect()
}

/// Removes `dir` when it is a folder [`first_private_folder`] made up for `name` (another user
/// held the usual names) and nothing is left in it: a random name frees nothing anyone can take.
pub(crate) fn release_private_folder(dir: &Path, name: &str) {
    let made_up = format!("{name}-{}.", user_id());
    if dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&made_up)) {
        let _ = fs::remove_dir(dir);
    }
}

/// A new folder `<prefix><random>` in `parent`, mode 0700, never one that existed; removed on
/// drop unless kept.
pub(crate) fn new_private_dir(parent: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix).rand_bytes(16);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    builder.tempdir_in(parent).map_err(|e| Error::io("cannot create a private folder in", parent, e))
}

/// A folder only this user can use, opened and checked on its descriptor before anything in it is
/// read or written, as ssh-agent checks its socket folder: a real folder (not a symbolic link),
/// owned by the user, no access for group or others. Files in it are opened relative to that
/// descriptor without following symbolic links and checked the same way (a regular file of the
/// user's, 0600 or stricter) before they are read, so nothing can be swapped in between the check
/// and the use, even in a folder such as `/tmp` where every user can create names.
#[cfg(unix)]
#[derive(Debug)]
pub(crate) struct PrivateDir {
    fd: std::os::fd::OwnedFd,
    path: PathBuf,
}

#[cfg(unix)]
impl PrivateDir {
    /// Opens `path` (creating it 0700 first when `create`); `Ok(None)` when it does not exist. A
    /// folder that is not private is an [`Error::Config`] naming it and the fix.
    pub(crate) fn open(path: &Path, create: bool) -> Result<Option<PrivateDir>> {
        Self::open_as(path, create, user_id())
    }

    /// [`Self::open`] for the user `uid` (tests: another user's folder without a second account).
    pub(crate) fn open_as(path: &Path, create: bool, uid: u32) -> Result<Option<PrivateDir>> {
        use rustix::fs::{Mode, OFlags};
        use rustix::io::Errno;
        if create {
            match rustix::fs::mkdir(path, Mode::from_raw_mode(0o700)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(Error::io("cannot create folder", path, e.into())),
            }
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => {
                return Err(match fs::symlink_metadata(path) {
                    Ok(m) if m.file_type().is_symlink() => symlink_refused(path),
                    Ok(m) if !m.is_dir() => {
                        Error::Config(format!("`{}` is not a folder: remove it and try again", path.display()))
                    }
                    // Another user's 0700 folder cannot even be opened: named as theirs (a review
                    // of round 105: it stopped every run instead of a made-up folder serving).
                    Ok(m) if e == Errno::ACCESS => {
                        use std::os::unix::fs::MetadataExt;
                        not_private(path, m.uid(), m.mode(), uid, 0o700)
                            .err()
                            .unwrap_or_else(|| Error::io("cannot open", path, e.into()))
                    }
                    _ => Error::io("cannot open", path, e.into()),
                });
            }
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("cannot inspect", path, e.into()))?;
        not_private(path, st.st_uid, raw_mode(st.st_mode), uid, 0o700)?;
        Ok(Some(PrivateDir { fd, path: path.to_owned() }))
    }

    /// Reads `name` (at most [`MAX_INPUT`] bytes) after checking it: a regular file, not a
    /// symbolic link, the user's, 0600 or stricter. `Ok(None)` when it does not exist; anything
    /// else that is wrong is an [`Error::Config`] naming it and the fix.
    pub(crate) fn read(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.read_as(name, user_id())
    }

    pub(crate) fn read_as(&self, name: &str, uid: u32) -> Result<Option<Vec<u8>>> {
        use rustix::fs::{FileType, Mode, OFlags};
        use rustix::io::Errno;
        let path = self.path.join(name);
        // O_NONBLOCK: opening a FIFO planted under the name must not hang.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(symlink_refused(&path)),
            Err(e) => return Err(Error::io("cannot open", &path, e.into())),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("cannot inspect", &path, e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(Error::Config(format!("`{}` is not a regular file: remove it", path.display())));
        }
        not_private(&path, st.st_uid, raw_mode(st.st_mode), uid, 0o600)?;
        match read_bounded_from(File::from(fd), MAX_INPUT) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
                Err(Error::Config(format!("`{}` is larger than {}: remove it", path.display(), fmt_size(MAX_INPUT))))
            }
            Err(e) => Err(Error::io("cannot read", &path, e)),
        }
    }

    /// Atomically replaces `name` with `contents` (mode 0600), all relative to the checked
    /// descriptor; returns the file's path.
    pub(crate) fn write_atomic(&self, name: &str, contents: &[u8]) -> Result<PathBuf> {
        use rustix::fs::{AtFlags, Mode, OFlags};
        let path = self.path.join(name);
        let tmp = temp_name(name, &format!("{:08x}", rand::random::<u32>()));
        let result = (|| {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let fd = rustix::fs::openat(&self.fd, tmp.as_str(), flags, Mode::from_raw_mode(0o600))
                .map_err(|e| Error::io("cannot create", self.path.join(&tmp), e.into()))?;
            let mut f = File::from(fd);
            f.write_all(contents).map_err(|e| Error::io("cannot write", &path, e))?;
            f.sync_all().map_err(|e| Error::io("cannot sync", &path, e))?;
            rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name)
                .map_err(|e| Error::io("cannot replace", &path, e.into()))?;
            let _ = rustix::fs::fsync(&self.fd);
            Ok(())
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        }
        result.map(|()| path)
    }

    /// Removes `name` (nothing when it is not there).
    pub(crate) fn remove(&self, name: &str) -> Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, rustix::fs::AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(Error::io("cannot remove", self.path.join(name), e.into())),
        }
    }
}

/// The permission bits of an `st_mode` (a `u16` on some systems).
#[cfg(unix)]
#[allow(clippy::unnecessary_cast, reason = "`st_mode` is not a u32 everywhere")]
fn raw_mode(mode: rustix::fs::RawMode) -> u32 {
    mode as u32 & 0o7777
}

/// Fails unless the folder or file at `path` (owner `owner`, permission bits `mode`) belongs to
/// `uid` and gives group and others nothing (`want`: 0700 for folders, 0600 for files), with the
/// fix in the message.
#[cfg(unix)]
fn not_private(path: &Path, owner: u32, mode: u32, uid: u32, want: u32) -> Result<()> {
    let p = path.display();
    if owner != uid {
        return Err(Error::Config(format!(
            "`{p}` belongs to uid {owner}, not to you (uid {uid}), so another user may have put it there: have its \
             owner or root remove it"
        )));
    }
    if mode & 0o077 != 0 {
        return Err(Error::Config(format!(
            "`{p}` has mode {mode:04o}, so other users can reach it: run `chmod {want:o} {p}` if you trust its contents, \
             else remove it"
        )));
    }
    Ok(())
}

/// Private folders need a Unix system; elsewhere every use fails.
#[cfg(not(unix))]
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
}

#[cfg(not(unix))]
impl PrivateDir {
    fn unsupported(path: &Path) -> Error {
        Error::Other(format!("`{}`: private folders need a Unix system", path.display()))
    }
    pub fn open(path: &Path, _create: bool) -> Result<Option<PrivateDir>> {
        Err(Self::unsupported(path))
    }
    pub fn read(&self, _name: &str) -> Result<Option<Vec<u8>>> {
        Err(Self::unsupported(&self.path))
    }
    pub fn write_atomic(&self, _name: &str, _contents: &[u8]) -> Result<PathBuf> {
        Err(Self::unsupported(&self.path))
    }
    pub fn remove(&self, _name: &str) -> Result<()> {
        Err(Self::unsupported(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A symbolic link woci refuses names the fix its user can carry out: `rm` of their own, the
    /// owner or root for another user's (in a sticky `/tmp`, only they can remove it).
    #[cfg(unix)]
    #[test]
    fn a_refused_symbolic_link_names_who_can_remove_it() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/nowhere", &link).unwrap();
        assert!(symlink_refused(&link).to_string().contains(&format!("(`rm {}`)", link.display())));
        if user_id() == 0 {
            std::os::unix::fs::lchown(&link, Some(65534), None).unwrap();
            let e = symlink_refused(&link).to_string();
            assert!(e.contains("of uid 65534's") && e.contains("have its owner or root remove it"), "{e}");
        }
    }

    /// A session folder whose path nears PATH_MAX: the look before a refresh grant fails where the
    /// rotated refresh token could not be stored after it (it once passed with a short name, and
    /// the new refresh token, spent for, went to the rescue folder on every renewal).
    #[cfg(target_os = "linux")]
    #[test]
    fn a_folder_the_probe_passes_takes_the_rotated_refresh_token() {
        let base = tempfile::tempdir().unwrap();
        let longest = format!(".refresh_token.{}.{}.tmp", std::process::id(), "0".repeat(64)).len();
        for slack in [longest - 20, longest - 1, longest, longest + 1, longest + 20] {
            // `dir/<slack characters>` is 4095 bytes long, the most PATH_MAX (4096, with the NUL) allows.
            let dir_len = 4094 - slack;
            let mut dir = base.path().to_path_buf();
            while dir.as_os_str().len() + 201 < dir_len {
                dir.push("d".repeat(200));
            }
            let rest = dir_len - dir.as_os_str().len() - 1;
            dir.push("e".repeat(rest));
            fs::create_dir_all(&dir).unwrap();
            let probed = check_writable(&dir, 0);
            let stored = write_atomic_proven(&dir.join("refresh_token"), b"rt");
            assert_eq!(probed.is_ok(), stored.is_ok(), "slack {slack}: {probed:?} vs {stored:?}");
            // `--status`'s look, without writing, says the same.
            assert_eq!(cannot_write_in(&dir), probed.as_ref().err().map(ToString::to_string), "slack {slack}");
            assert_eq!(probed.is_ok(), slack >= longest, "slack {slack}");
            if let Err(e) = probed {
                assert!(e.to_string().contains("use a shorter `HOME`"), "{e}");
            }
        }
    }

    /// A planted name in the runtime folder or the temp folder is passed over, never used: the
    /// next private folder serves, and when none is left, a new unpredictably named one.
    #[cfg(unix)]
    #[test]
    fn planted_private_folder_names_are_passed_over() {
        let run = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(theirs.path(), run.path().join("woci-proxy")).unwrap();
        let got = first_private_folder(Some(run.path()), tmp.path(), "woci-proxy").unwrap();
        assert_eq!(got, tmp.path().join(format!("woci-proxy-{}", user_id())));
        std::fs::set_permissions(&got, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let fresh = first_private_folder(Some(run.path()), tmp.path(), "woci-proxy").unwrap();
        let name = fresh.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(&format!("woci-proxy-{}.", user_id())) && fresh.parent() == Some(tmp.path()),
            "{name}"
        );
        assert_eq!(std::fs::read_dir(theirs.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn private_folders_are_private_on_the_way_down() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = dir.path().join(".oci/sessions/P");
        ensure_private_dir(&leaf).unwrap();
        for d in [dir.path().join(".oci"), dir.path().join(".oci/sessions"), leaf] {
            assert_eq!(fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700, "{}", d.display());
        }
    }

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
        // Unusable rather than unreadable: exit 7 naming the file.
        let big = dir.path().join("big");
        fs::write(&big, vec![b'x'; MAX_INPUT + 1]).unwrap();
        for p in [&big, &dir.path().to_path_buf()] {
            let e = read_optional(p).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::CORRUPT_FILE, "{e}");
        }
        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo");
            rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
            assert_eq!(read_bounded(&fifo, 16).unwrap(), b"", "a FIFO without a writer does not block");
            let e = read_optional(&fifo).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::CORRUPT_FILE, "{e}");
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
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

    /// A process that ended but was not reaped yet (a zombie: a SIGKILLed daemon whose parent is
    /// slow to wait) is no longer alive; one running is.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_zombie_is_not_alive() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        assert!(process_alive(child.id()));
        kill(child.id() as i32, Signal::Kill).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while stat_field(child.id(), 0).as_deref() != Some("Z") {
            assert!(std::time::Instant::now() < deadline, "never became a zombie");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!process_alive(child.id()), "a zombie");
        child.wait().unwrap();
    }

    /// A FIFO where a lock file should be is no holder, said at once (its open would block).
    #[cfg(unix)]
    #[test]
    fn a_fifo_for_a_lock_file_is_not_held() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("woci_refresh.pid");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(!FileLock::held(&fifo));
    }

    /// An upgrade renames a new binary over the one a process runs: the process is told apart.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_binary_renamed_over_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("sleeper");
        fs::copy("/bin/sleep", &bin).unwrap();
        let mut child = std::process::Command::new(&bin).arg("30").spawn().unwrap();
        assert!(!binary_replaced(child.id()));
        let new = tmp.path().join("sleeper.new");
        fs::copy("/bin/sleep", &new).unwrap();
        fs::rename(&new, &bin).unwrap();
        assert!(binary_replaced(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// A folder not made yet is judged by the nearest one above it that exists (a read-only
    /// mount is said as `access(2)` says it: checked by hand with a read-only bind mount).
    #[test]
    fn a_writable_folder_or_its_writable_parent_is_no_problem() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(cannot_write_in(tmp.path()), None);
        assert_eq!(cannot_write_in(&tmp.path().join("sessions/P")), None);
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
    fn a_lock_path_that_is_no_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        std::fs::create_dir(&path).unwrap();
        let e = FileLock::acquire(&path, Duration::from_millis(10)).unwrap_err();
        assert!(matches!(e, Error::Config(_)) && e.to_string().contains("rm -r"), "{e}");
        assert!(path.is_dir(), "left as it was");
    }

    #[test]
    fn lock_is_exclusive_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let held = FileLock::acquire(&p, Duration::from_secs(1)).unwrap();
        assert!(matches!(FileLock::acquire(&p, Duration::ZERO), Err(Error::Busy(_))));
        let err = FileLock::acquire(&p, Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, Error::Busy(_)));
        drop(held);
        assert!(FileLock::acquire(&p, Duration::ZERO).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn a_lock_file_that_is_a_symbolic_link_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        let link = dir.path().join(".lock");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = FileLock::acquire(&link, Duration::from_millis(10)).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e}");
        assert!(e.to_string().contains(".lock` is a symbolic link") && e.to_string().contains("rm "), "{e}");
        assert!(!target.exists(), "a dangling link's target is not created");
        fs::write(&target, "precious").unwrap();
        assert!(FileLock::acquire(&link, Duration::ZERO).is_err());
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    }

    #[test]
    fn a_proven_write_names_its_temp_file_after_the_contents() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("refresh_token");
        write_atomic_proven(&p, b"rt-1").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"rt-1");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left behind");
        let name = format!(".refresh_token.{}.{}.tmp", std::process::id(), sha256_hex(b"rt-2"));
        fs::write(dir.path().join(&name), "rt-2").unwrap();
        fs::write(dir.path().join(format!(".refresh_token.1.{}.tmp", sha256_hex(b"rt-3"))), "rt-").unwrap();
        fs::write(dir.path().join(".refresh_token.1.0badc0de.tmp"), "rt-4").unwrap();
        let mut found = ProvenTemp::find(dir.path(), "refresh_token");
        found.sort_by_key(|t| t.pid);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].complete_contents(), None, "incomplete");
        assert_eq!(found[1].complete_contents().unwrap(), b"rt-2");
    }

    #[test]
    fn this_process_has_a_start_time_on_linux() {
        assert_eq!(start_times_known(), cfg!(target_os = "linux"));
        assert_eq!(process_start_time(u32::MAX), None);
    }
}
