//! Who besides its owner can write a file or folder: every user (the mode's `o+w`), or the
//! members of its group (`g+w`). A group that is the owner's own — the per-user groups of
//! systems with umask 002: the owner's primary group, named as the owner, with no other
//! members — counts as the owner alone, as Debian's ssh judges `~/.ssh`. Users and groups come
//! from the system's databases (`getpwuid_r`, `getgrgid_r`: NSS, so LDAP and the like too); an
//! entry that cannot be found counts as shared.

#[cfg(unix)]
use std::ffi::CStr;

/// Who else can write an entry with these metadata, in words for a message (`every user`,
/// `group `devs``), or `None` when only its owner can. A folder with the sticky bit (like
/// `/tmp`) keeps others from replacing what is in it, whoever can write it.
#[cfg(unix)]
pub(crate) fn others_can_write(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode();
    // Only a group-writable entry needs the databases.
    let (owner, group) = match mode & 0o022 == 0o020 {
        true => (user(meta.uid()), group(meta.gid())),
        false => (None, None),
    };
    verdict(mode, meta.is_dir(), meta.gid(), owner, group)
}

/// [`others_can_write`] from the mode, the group id, the owner's entry (name, primary group) and
/// the group's (name, members).
fn verdict(
    mode: u32,
    is_dir: bool,
    gid: u32,
    owner: Option<(String, u32)>,
    group: Option<(String, Vec<String>)>,
) -> Option<String> {
    if is_dir && mode & 0o1000 != 0 {
        return None;
    }
    if mode & 0o002 != 0 {
        return Some("every user".to_owned());
    }
    if mode & 0o020 == 0 {
        return None;
    }
    let own = owner.zip(group.as_ref()).is_some_and(|((name, primary), (group_name, members))| {
        primary == gid && *group_name == name && members.iter().all(|m| *m == name)
    });
    match (own, group) {
        (true, _) => None,
        (false, Some((name, _))) => Some(format!("group `{name}`")),
        (false, None) => Some(format!("group {gid}")),
    }
}

/// A user's name and primary group.
#[cfg(unix)]
fn user(uid: u32) -> Option<(String, u32)> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: `passwd` is plain data written by getpwuid_r into `pw` and `buf`, which outlive
        // every read of it below; a null `found` means no entry.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || found.is_null() || pw.pw_name.is_null() {
            return None;
        }
        // SAFETY: a NUL-terminated string inside `buf`.
        let name = unsafe { CStr::from_ptr(pw.pw_name) }.to_string_lossy().into_owned();
        return Some((name, pw.pw_gid));
    }
}

/// A group's name and listed members.
#[cfg(unix)]
fn group(gid: u32) -> Option<(String, Vec<String>)> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: as in `user`, with getgrgid_r; `gr_mem` is a null-terminated array of
        // NUL-terminated strings inside `buf`.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || found.is_null() || gr.gr_name.is_null() {
            return None;
        }
        // SAFETY: see above.
        let name = unsafe { CStr::from_ptr(gr.gr_name) }.to_string_lossy().into_owned();
        let mut members = Vec::new();
        let mut at = gr.gr_mem;
        // SAFETY: walked up to its terminating null pointer.
        while !at.is_null() && !unsafe { *at }.is_null() {
            members.push(unsafe { CStr::from_ptr(*at) }.to_string_lossy().into_owned());
            at = unsafe { at.add(1) };
        }
        return Some((name, members));
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn entry(name: &str, id: u32) -> Option<(String, u32)> {
        Some((name.to_owned(), id))
    }

    fn grp(name: &str, members: &[&str]) -> Option<(String, Vec<String>)> {
        Some((name.to_owned(), members.iter().map(|m| (*m).to_owned()).collect()))
    }

    #[test]
    fn every_user_a_sticky_folder_and_the_owners_alone() {
        assert_eq!(verdict(0o666, false, 0, None, None).as_deref(), Some("every user"));
        assert_eq!(verdict(0o777, true, 0, None, None).as_deref(), Some("every user"));
        assert_eq!(verdict(0o1777, true, 0, None, None), None, "sticky");
        assert_eq!(verdict(0o644, false, 0, None, None), None);
        assert_eq!(verdict(0o755, true, 0, None, None), None);
    }

    /// Group-writable: the owner's own group (primary, named as the owner, no one else listed)
    /// is the owner alone; any other group, or one that cannot be looked up, is shared.
    #[test]
    fn a_group_is_shared_unless_it_is_the_owners_own() {
        let alice = entry("alice", 1000);
        assert_eq!(verdict(0o660, false, 1000, alice.clone(), grp("alice", &[])), None);
        assert_eq!(verdict(0o770, true, 1000, alice.clone(), grp("alice", &["alice"])), None);
        let shared = [
            (1000, grp("alice", &["alice", "bob"])),
            (65534, grp("nogroup", &[])),
            (100, grp("users", &["alice"])),
            (1000, grp("staff", &[])),
            (1000, None),
        ];
        for (gid, g) in shared {
            let said = verdict(0o660, false, gid, alice.clone(), g.clone());
            assert!(said.as_deref().is_some_and(|s| s.starts_with("group ")), "{g:?}: {said:?}");
        }
        assert_eq!(verdict(0o660, false, 65534, None, grp("nogroup", &[])).as_deref(), Some("group `nogroup`"));
        assert_eq!(verdict(0o660, false, 4242, alice, None).as_deref(), Some("group 4242"));
    }

    /// The databases are read: root and its group exist on every Unix.
    #[test]
    fn root_and_its_group_are_looked_up() {
        assert_eq!(user(0).map(|(_, gid)| gid), Some(0));
        assert!(group(0).is_some());
    }
}
