//! Who besides its owner can write (or read) a file or folder: every user (the mode's `o+w`),
//! or the members of its group (`g+w`). A group that is the owner's own — the per-user groups of
//! systems with umask 002: named as the owner, the owner's primary group and no one else's, no
//! other member listed — counts as the owner alone, as Debian's ssh judges `~/.ssh`. Users and
//! groups come from the system's databases (`getpwuid_r`, `getgrgid_r`, and the password
//! database walked for other users of the group as their primary one); an entry that cannot be
//! found counts as shared.

#[cfg(unix)]
use std::ffi::CStr;

/// Refuses a file woci trusts (the manager INI, the OCI config of a session it renews) that
/// another user owns (root's is trusted; for root, also the owner of the folder it is in, whose
/// HOME that is) or others can write, as ssh refuses such a config. `what` names it, `why` says
/// what it decides, `elsewhere` how to use another one. A link is judged by, and named with, the
/// file it leads to (`meta` is that file's).
#[cfg(unix)]
pub(crate) fn refuse_foreign(
    path: &std::path::Path,
    meta: &std::fs::Metadata,
    what: &str,
    why: &str,
    elsewhere: &str,
) -> crate::error::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let shown = match real == path {
        true => format!("`{}`", path.display()),
        false => format!("`{}` (a link to `{}`)", path.display(), real.display()),
    };
    let uid = meta.uid();
    let refused = if uid != 0 && !crate::fsutil::own_or_home_users(uid, real.parent()) {
        format!("belongs to another user (uid {uid}), and {why}; {elsewhere}, or have its owner or root remove it")
    } else if let Some(who) = others_can_write(meta) {
        let quoted = shlex::try_quote(&real.to_string_lossy()).map(|q| q.into_owned()).unwrap_or_default();
        format!("is writable by {who} (mode {:o}), and {why}; run `chmod go-w {quoted}`", meta.mode() & 0o7777)
    } else {
        return Ok(());
    };
    Err(crate::error::Error::Config(format!("the {what} {shown} {refused}")))
}

/// Who else can write an entry with these metadata, in words for a message (`every user`,
/// `group `devs``), or `None` when only its owner can. A folder with the sticky bit (like
/// `/tmp`) keeps others from replacing what is in it, whoever can write it.
#[cfg(unix)]
pub(crate) fn others_can_write(meta: &std::fs::Metadata) -> Option<String> {
    let sticky = meta.is_dir() && std::os::unix::fs::MetadataExt::mode(meta) & 0o1000 != 0;
    others_can(meta, 0o002).filter(|_| !sticky)
}

/// Who else can read an entry with these metadata (as [`others_can_write`] words it).
#[cfg(unix)]
pub(crate) fn others_can_read(meta: &std::fs::Metadata) -> Option<String> {
    others_can(meta, 0o004)
}

/// [`others_can_write`] / [`others_can_read`] for the permission bit `other` (the group's is
/// `other << 3`).
#[cfg(unix)]
fn others_can(meta: &std::fs::Metadata, other: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let (uid, gid) = (meta.uid(), meta.gid());
    verdict(meta.mode(), other, gid, || (user(uid), group(gid)), || primary_group_of_another(gid, uid))
}

/// Who else has the permission bit `other` (or the group's) on an entry of `mode` and group
/// `gid`. Only for a group bit are the owner's and the group's entries looked up (`entries`:
/// name and primary group; name and listed members), and only for a group that looks like the
/// owner's own is the password database walked (`another_primary`: whether another user has
/// it as their primary group).
fn verdict(
    mode: u32,
    other: u32,
    gid: u32,
    entries: impl FnOnce() -> (Option<(String, u32)>, Option<(String, Vec<String>)>),
    another_primary: impl FnOnce() -> bool,
) -> Option<String> {
    if mode & other != 0 {
        return Some("every user".to_owned());
    }
    if mode & (other << 3) == 0 {
        return None;
    }
    let (owner, group) = entries();
    let looks_own = owner.zip(group.as_ref()).is_some_and(|((name, primary), (group_name, members))| {
        primary == gid && *group_name == name && members.iter().all(|m| *m == name)
    });
    if looks_own && !another_primary() {
        return None;
    }
    Some(group.map_or_else(|| format!("group {gid}"), |(name, _)| format!("group `{name}`")))
}

/// Whether a user other than `uid` has `gid` as their primary group (a member `gr_mem` does not
/// list). The password database is walked (`getpwent`, which keeps one cursor per process: one
/// walk at a time).
#[cfg(unix)]
fn primary_group_of_another(gid: u32, uid: u32) -> bool {
    static WALK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = WALK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: setpwent/getpwent/endpwent under our lock (nothing else here walks the database);
    // each entry is read before the next call replaces it.
    unsafe {
        libc::setpwent();
        let found = loop {
            let pw = libc::getpwent();
            if pw.is_null() {
                break false;
            }
            if (*pw).pw_gid == gid && (*pw).pw_uid != uid {
                break true;
            }
        };
        libc::endpwent();
        found
    }
}

/// One entry of a system database through its reentrant `get*_r` call (`get`), the buffer grown
/// as the call asks; `read` takes what is needed from it. `None` when there is no entry.
#[cfg(unix)]
fn lookup<T, R>(
    get: impl Fn(*mut T, *mut libc::c_char, usize, *mut *mut T) -> libc::c_int,
    read: impl FnOnce(&T) -> Option<R>,
) -> Option<R> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: `T` is a C struct of the libc (`passwd`, `group`: all zeros is a valid value)
        // that `get` fills, its strings pointing into `buf`; both live while `read` looks at them.
        let mut entry: T = unsafe { std::mem::zeroed() };
        let mut found: *mut T = std::ptr::null_mut();
        let rc = get(&mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut found);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        return (rc == 0 && !found.is_null()).then(|| read(&entry)).flatten();
    }
}

/// A NUL-terminated string the libc filled in, if any.
#[cfg(unix)]
fn text(p: *const libc::c_char) -> Option<String> {
    // SAFETY: a null pointer, or a NUL-terminated string inside the lookup's buffer.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// A user's name and primary group.
#[cfg(unix)]
fn user(uid: u32) -> Option<(String, u32)> {
    // SAFETY: getpwuid_r with the buffers `lookup` gives.
    lookup(
        |e, b, n, f| unsafe { libc::getpwuid_r(uid, e, b, n, f) },
        |pw: &libc::passwd| Some((text(pw.pw_name)?, pw.pw_gid)),
    )
}

/// A group's name and listed members.
#[cfg(unix)]
fn group(gid: u32) -> Option<(String, Vec<String>)> {
    // SAFETY: getgrgid_r with the buffers `lookup` gives.
    lookup(
        |e, b, n, f| unsafe { libc::getgrgid_r(gid, e, b, n, f) },
        |gr: &libc::group| {
            let mut members = Vec::new();
            let mut at = gr.gr_mem;
            // SAFETY: a null-terminated array of strings inside the lookup's buffer.
            while !at.is_null() && !unsafe { *at }.is_null() {
                members.extend(text(unsafe { *at }));
                at = unsafe { at.add(1) };
            }
            Some((text(gr.gr_name)?, members))
        },
    )
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    type Entries = (Option<(String, u32)>, Option<(String, Vec<String>)>);
    type Group<'a> = Option<(&'a str, &'a [&'a str])>;

    fn entries(owner: &str, primary: u32, group: Group<'_>) -> impl FnOnce() -> Entries {
        let owner = Some((owner.to_owned(), primary));
        let group = group.map(|(n, m)| (n.to_owned(), m.iter().map(|s| (*s).to_owned()).collect()));
        move || (owner, group)
    }

    #[test]
    fn every_user_the_group_and_nobody() {
        let never = || -> Entries { panic!("looked up") };
        let alone = || false;
        assert_eq!(verdict(0o666, 0o002, 0, never, alone).as_deref(), Some("every user"));
        assert_eq!(verdict(0o644, 0o004, 0, never, alone).as_deref(), Some("every user"), "read");
        // The databases are asked only for a group bit.
        assert_eq!(verdict(0o644, 0o002, 0, never, alone), None);
        assert_eq!(verdict(0o600, 0o004, 0, never, alone), None);
    }

    /// A group bit: the owner's own group (primary, named as the owner, no one else listed, no
    /// one else's primary group) is the owner alone; any other group, or one that cannot be
    /// looked up, is shared.
    #[test]
    fn a_group_is_shared_unless_it_is_the_owners_own() {
        let own: &[&str] = &[];
        assert_eq!(verdict(0o660, 0o002, 1000, entries("alice", 1000, Some(("alice", own))), || false), None);
        assert_eq!(verdict(0o640, 0o004, 1000, entries("alice", 1000, Some(("alice", &["alice"]))), || false), None);
        let shared: [(u32, Group<'_>, bool, &str); 6] = [
            (1000, Some(("alice", &["alice", "bob"])), false, "group `alice`"),
            (1000, Some(("alice", own)), true, "group `alice`"),
            (65534, Some(("nogroup", own)), false, "group `nogroup`"),
            (100, Some(("users", &["alice"])), false, "group `users`"),
            (1000, Some(("staff", own)), false, "group `staff`"),
            (1000, None, false, "group 1000"),
        ];
        for (gid, group, another, says) in shared {
            let said = verdict(0o660, 0o002, gid, entries("alice", 1000, group), || another);
            assert_eq!(said.as_deref(), Some(says), "{group:?}, another's primary: {another}");
        }
        // The password database is walked only for a group that looks like the owner's own.
        let walked = || panic!("walked");
        assert_eq!(
            verdict(0o660, 0o002, 100, entries("alice", 1000, Some(("users", own))), walked).as_deref(),
            Some("group `users`")
        );
    }

    fn with_mode(mode: u32, gid: Option<u32>) -> (tempfile::TempDir, std::fs::Metadata) {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x");
        std::fs::create_dir(&p).unwrap();
        std::os::unix::fs::chown(&p, None, gid).expect("the tests run as root");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        (tmp, meta)
    }

    /// Root's own group `root` (gid 0, nobody else's primary group here) is root's alone;
    /// `nogroup` (gid 65534) is `nobody`'s primary group, so shared; a sticky folder is nobody's
    /// to swap entries in.
    #[test]
    fn the_system_databases_decide_a_group() {
        assert_eq!(others_can_write(&with_mode(0o770, Some(0)).1), None);
        assert_eq!(others_can_write(&with_mode(0o770, Some(65534)).1).as_deref(), Some("group `nogroup`"));
        assert!(primary_group_of_another(65534, 0), "nobody's primary group");
        assert!(!primary_group_of_another(0, 0), "root's alone");
        assert_eq!(others_can_write(&with_mode(0o1777, None).1), None, "sticky");
        assert_eq!(others_can_read(&with_mode(0o1777, None).1).as_deref(), Some("every user"));
        assert_eq!(others_can_write(&with_mode(0o770, Some(4242)).1).as_deref(), Some("group 4242"));
    }
}
