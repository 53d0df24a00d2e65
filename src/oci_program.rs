//! Finding the real `oci` program, never woci itself.
//!
//! woci is meant to be installed where people type `oci` (`alias oci=woci`, or
//! `ln -s "$(command -v woci)" ~/bin/oci`). Looking `oci` up on `PATH` would then find woci, which
//! would start itself forever. So [`resolve`] searches `PATH` itself and skips every entry that
//! is this very program: the same file (device + inode, which covers symlinks and hard links) or
//! a byte-identical copy. What it returns is a full path, so `exec` cannot pick another entry.
//!
//! Whatever slips through (a wrapper script in `oci_command` that calls woci again) is caught by
//! a guard in the environment: every `oci` that woci runs gets [`GUARD_VAR`] set to woci's pid,
//! and a woci that would run `oci` while that variable is set stops with one line naming the program and
//! `oci_command` ([`check_guard`]). `--exec` programs do not get it (they may call woci).

use crate::error::{Error, Result};
use crate::settings::Env;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// Set for each `oci` woci runs (the value is woci's pid); see the module docs.
pub(crate) const GUARD_VAR: &str = "WOCI_ACTIVE";

/// The `(name, value)` to add to the environment of an `oci` child `program`: woci's pid, and
/// the program, which the woci it may turn out to be names (a wrapper script found on `PATH`).
/// oci's interactive mode (`interactive`: `-i`) runs each command it is given as `oci …` from
/// `PATH`, which is woci where woci is installed as `oci`: those wocis may run, once
/// ([`INTERACTIVE`]), and guard their own `oci` again. Never twice in a row: a wrapper that
/// runs woci with `-i` again would otherwise loop.
pub(crate) fn guard_env(program: &OsStr, interactive: bool, env: &Env) -> (OsString, OsString) {
    let again = env.get(GUARD_VAR).is_some_and(|v| v.starts_with(INTERACTIVE));
    let mark = if interactive && !again { INTERACTIVE } else { "" };
    let mut value = OsString::from(format!("{mark}{} ", std::process::id()));
    value.push(program);
    (GUARD_VAR.into(), value)
}

/// The guard's mark of an interactive `oci`'s commands.
const INTERACTIVE: &str = "interactive:";

/// Fails when this woci was itself started as the `oci` of another woci.
pub(crate) fn check_guard(env: &Env) -> Result<()> {
    let Some(value) = env.get(GUARD_VAR).filter(|v| !v.is_empty() && !v.starts_with(INTERACTIVE)) else {
        return Ok(());
    };
    let (pid, program) = value.split_once(' ').unwrap_or((value, ""));
    // Two woci installs side by side (the `.deb`'s and `cargo install`'s), the `oci` link naming
    // the other one: a woci skips its own file and copies, so this one is another build (round
    // 105 F4). (The woci that started it may have `exec`ed into it: its pid is this one's now.)
    let linked = std::fs::canonicalize(program).ok();
    if let Some(me) = std::env::current_exe().ok().filter(|me| linked.as_ref() == Some(me)) {
        return Err(Error::Config(format!(
            "the `oci` that woci (pid {pid}) started, `{}`, is another woci install, `{}` (two side by side?); \
             point that `oci` at the woci you run, or set `oci_command` in woci_manager.ini (or `WOCI_OCI_COMMAND`) \
             to the real oci",
            crate::terminal::safe(program),
            crate::terminal::safe(&me.to_string_lossy())
        )));
    }
    let program = match program {
        "" => String::new(),
        p => format!(" (`{}`: a link or a script that runs woci?)", crate::terminal::safe(p)),
    };
    Err(self_error(&format!("the `oci` that woci (pid {pid}) started{program} is woci again")))
}

fn self_error(what: &str) -> Error {
    Error::Config(format!(
        "{what}, not the oci CLI; set `oci_command` in woci_manager.ini (or `WOCI_OCI_COMMAND`) to the real oci, \
         e.g. the path of `pip install oci-cli`'s `oci`"
    ))
}

/// The program to run for `configured` (`oci_command`, default `oci`): a name without a slash is
/// looked up on `PATH` (from `env`), skipping woci itself; a path is checked not to be woci.
/// When nothing but woci is found, the error says so; when nothing is found at all, the name is
/// returned unchanged and running it reports "not found" as usual.
pub(crate) fn resolve(configured: &OsStr, env: &Env) -> Result<OsString> {
    let Some(me) = SelfExe::current() else {
        return Ok(configured.to_owned());
    };
    let as_path = Path::new(configured);
    if as_path.components().count() > 1 || as_path.is_absolute() {
        if me.is(as_path) {
            return Err(self_error(&format!("`{}` is woci itself", as_path.display())));
        }
        return Ok(configured.to_owned());
    }
    let Some(path_var) = crate::settings::path_var(env) else {
        return Ok(configured.to_owned());
    };
    let mut skipped: Vec<PathBuf> = Vec::new();
    for candidate in crate::fsutil::path_candidates(&path_var, as_path) {
        if !crate::fsutil::is_executable(&candidate) {
            continue;
        }
        if me.is(&candidate) {
            tracing::debug!(path = %candidate.display(), "skipping woci itself on PATH");
            skipped.push(candidate);
            continue;
        }
        return Ok(candidate.into_os_string());
    }
    match skipped.first() {
        Some(first) => Err(Error::ProgramNotFound {
            program: configured.to_string_lossy().into_owned(),
            hint: format!(
                "the only `{}` on PATH is woci itself ({}); install the oci CLI (pip install oci-cli) or set \
                 `oci_command` in woci_manager.ini (or `WOCI_OCI_COMMAND`)",
                configured.to_string_lossy(),
                first.display()
            ),
        }),
        None => Ok(configured.to_owned()),
    }
}

/// This program's identity on disk.
struct SelfExe {
    path: PathBuf,
    meta: std::fs::Metadata,
}

impl SelfExe {
    fn current() -> Option<SelfExe> {
        let path = std::env::current_exe().ok()?;
        let meta = std::fs::metadata(&path).ok()?;
        Some(SelfExe { path, meta })
    }

    /// Same file (symlink, hard link) or a byte-identical copy.
    fn is(&self, other: &Path) -> bool {
        #[cfg(unix)]
        let same_file = |meta: &std::fs::Metadata| {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino()) == (self.meta.dev(), self.meta.ino())
        };
        #[cfg(not(unix))]
        let same_file = |_: &std::fs::Metadata| false;
        // A copy: only worth reading when the sizes match (the real `oci` is a small script).
        std::fs::metadata(other)
            .is_ok_and(|meta| same_file(&meta) || (meta.len() == self.meta.len() && same_content(&self.path, other)))
    }
}

fn same_content(a: &Path, b: &Path) -> bool {
    use std::io::BufRead;
    let open = |p: &Path| std::fs::File::open(p).map(|f| std::io::BufReader::with_capacity(64 * 1024, f));
    let (Ok(mut ra), Ok(mut rb)) = (open(a), open(b)) else {
        return false;
    };
    loop {
        let (Ok(ba), Ok(bb)) = (ra.fill_buf(), rb.fill_buf()) else {
            return false;
        };
        let n = ba.len().min(bb.len());
        if ba[..n] != bb[..n] || (n == 0 && ba.len() != bb.len()) {
            return false;
        }
        if n == 0 {
            return true;
        }
        ra.consume(n);
        rb.consume(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with_path(dirs: &[&Path]) -> Env {
        let joined = std::env::join_paths(dirs).unwrap().into_string().unwrap();
        Env::from([("PATH".to_owned(), joined)])
    }

    #[cfg(unix)]
    #[test]
    fn path_search_skips_this_program_by_symlink_hard_link_and_copy() {
        let me = std::env::current_exe().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mk = |name: &str| {
            let d = tmp.path().join(name);
            std::fs::create_dir(&d).unwrap();
            d
        };
        let (link, hard, copy, real) = (mk("link"), mk("hard"), mk("copy"), mk("real"));
        std::os::unix::fs::symlink(&me, link.join("oci")).unwrap();
        // A hard link needs the same file system; fall back to a second copy when it is not.
        if std::fs::hard_link(&me, hard.join("oci")).is_err() {
            std::fs::copy(&me, hard.join("oci")).unwrap();
        }
        std::fs::copy(&me, copy.join("oci")).unwrap();
        let script = real.join("oci");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

        let found = resolve(OsStr::new("oci"), &env_with_path(&[&link, &hard, &copy, &real])).unwrap();
        assert_eq!(PathBuf::from(found), script);

        let e = resolve(OsStr::new("oci"), &env_with_path(&[&link, &copy])).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::NOT_FOUND);
        let msg = e.to_string();
        assert!(msg.contains("woci itself") && msg.contains("oci_command"), "{msg}");

        let e = resolve(link.join("oci").as_os_str(), &Env::new()).unwrap_err();
        assert!(e.to_string().contains("`oci_command`"), "{e}");
        assert_eq!(resolve(script.as_os_str(), &Env::new()).unwrap(), script.as_os_str());
        // Nothing at all: the name stays, and running it reports "not found".
        assert_eq!(resolve(OsStr::new("oci"), &env_with_path(&[&mk("empty")])).unwrap(), "oci");
    }

    #[test]
    fn guard_names_oci_command() {
        assert!(check_guard(&Env::new()).is_ok());
        let e = check_guard(&Env::from([(GUARD_VAR.to_owned(), "42".to_owned())])).unwrap_err();
        assert!(e.to_string().contains("`oci_command`") && e.to_string().contains("42"), "{e}");
        assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
    }
}
