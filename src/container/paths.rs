//! The host paths a container call needs: the local files and folders `oci`'s options and its
//! `--from-json` document name ([`path_mounts`]: mounted at their own paths, resolved through
//! links as the host resolves them), the targets the user's own `oci_container_args` mount
//! ([`volume_targets`]), and the folders of the image a mount must not replace
//! ([`hides_the_image`]). Without them `oci` in the container cannot read an upload's file, and
//! writes a download inside the container, which `--rm` removes while the call exits 0.

use super::HostContext;
use crate::error::{Error, Result};
use crate::settings::CONTAINER_HOME;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Whether an option of `oci` names a local file or folder: `--file`, `--…-file`, the CA bundle,
/// the object storage folders, the session archive.
fn is_path_option(name: &str) -> bool {
    name.ends_with("-file")
        || matches!(
            name,
            "--file"
                | "--cert-bundle"
                | "--src-dir"
                | "--dest-dir"
                | "--download-dir"
                | "--output-dir"
                | "--tmp-dir"
                | "--session-archive"
                | "--public-key-file-path"
        )
}

/// The host paths `oci_args` name that the container would not see, each a `(source, target)`
/// mount, at its own path as the current folder is: without them `oci` there cannot read an
/// upload's file, and it writes a download inside the container, which `--rm` removes while the
/// call exits 0. A path that exists is mounted itself (a file, or a folder); one still to be
/// written, the nearest folder above it that exists. A path through links is resolved as the
/// host's kernel resolves it, and an option's path is rewritten to where the links lead: the links
/// themselves may lie in folders the container does not see (a `file://` value is mounted only:
/// it may be an object's name). A path inside a host folder already mounted at its own path
/// (`same_path`) needs no mount; one inside a container path the user mounts something at
/// (`user_targets`) is theirs; `file://~/…` is the host home's file at the container home's
/// path; `-` and the process's own streams ([`is_stream`]) need nothing.
pub(super) fn path_mounts(
    oci_args: &mut [OsString],
    host: &HostContext,
    same_path: &[PathBuf],
    user_targets: &[PathBuf],
) -> Result<Vec<(PathBuf, PathBuf)>> {
    // (index of the argument, what goes before the path in it — None: not rewritten —, the path)
    let mut named: Vec<(usize, Option<String>, OsString)> = Vec::new();
    let mut i = 0;
    while i < oci_args.len() {
        let text = oci_args[i].to_string_lossy().into_owned();
        let (name, inline) = match text.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (text.as_str(), None),
        };
        let value = inline.unwrap_or(&text);
        let before = &text[..text.len() - value.len()];
        if name == "--from-json" {
            let doc = match inline {
                Some(v) => v.to_owned(),
                None => oci_args.get(i + 1).map(|v| v.to_string_lossy().into_owned()).unwrap_or_default(),
            };
            let text = match doc.strip_prefix("file://") {
                Some(file) => read_json_file(file, host)?,
                None => doc,
            };
            // An option given on the command line wins over the document's key, as in `oci`.
            let given: Vec<String> = oci_args
                .iter()
                .filter_map(|a| a.to_str()?.strip_prefix("--").map(|o| o.split('=').next().unwrap_or(o).to_owned()))
                .collect();
            named.extend(json_paths(&text, &given).into_iter().map(|p| (i, None, p)));
        }
        if let Some(path) = value.strip_prefix("file://") {
            // Only JSON parameters read `file://`; in any other (`--name file://x`) it is text,
            // which a rewrite would change: mounted, never rewritten.
            named.push((i, None, path.into()));
        } else if is_path_option(name) {
            match inline {
                Some(v) => named.push((i, Some(before.to_owned()), v.into())),
                None if oci_args.get(i + 1).is_some_and(|v| !v.to_string_lossy().starts_with("--")) => {
                    i += 1;
                    named.push((i, Some(String::new()), oci_args[i].clone()));
                }
                None => {}
            }
        }
        i += 1;
    }
    let real_same_path: Vec<PathBuf> = same_path.iter().map(|v| resolve(v)).collect();
    let mut out: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (at, before, p) in named.into_iter().filter(|(_, _, p)| !p.is_empty() && p != "-") {
        // `oci` expands `~` in a `file://` value; in the container `~` is CONTAINER_HOME.
        let home_file = Path::new(&p)
            .strip_prefix("~")
            .ok()
            .map(|rest| (host.home.join(rest), Path::new(CONTAINER_HOME).join(rest)));
        if let Some((src, dst)) = home_file {
            if src.is_file() && !out.iter().any(|(_, d)| *d == dst) {
                out.push((src, dst));
            }
            continue;
        }
        let given = host.cwd.join(&p);
        let lexical = normalize(&given);
        if is_stream(&lexical) || user_targets.iter().any(|t| lexical.starts_with(t)) {
            continue;
        }
        let path = resolve(&given);
        if is_stream(&path) {
            // A link to one (`in -> /dev/stdin`) leads to this process's own `pipe:[N]`.
            continue;
        }
        if let Some(before) = before.filter(|_| path != lexical) {
            let mut arg = OsString::from(before);
            arg.push(&path);
            oci_args[at] = arg;
        }
        let Some(existing) = path.ancestors().find(|a| a.exists()).map(Path::to_owned) else { continue };
        if !existing.is_dir() && !existing.is_file() || real_same_path.iter().any(|v| existing.starts_with(v)) {
            continue;
        }
        if existing.is_dir() && hides_the_image(&existing) {
            return Err(Error::Config(format!(
                "container mode cannot make `{}` reachable: mounting `{}` would hide the image's own; name a path in \
                 another folder",
                path.display(),
                existing.display()
            )));
        }
        if out.iter().any(|(_, d)| existing.starts_with(d)) {
            continue;
        }
        out.retain(|(_, d)| !d.starts_with(&existing));
        out.push((existing.clone(), existing));
    }
    Ok(out)
}

/// The text of a `--from-json file://…` document on the host, as `oci` reads it; empty if it
/// cannot be read (`oci` says why) or is no regular file (`/dev/stdin`, a FIFO: what woci read
/// there `oci` would never get). One too large to read for its paths is refused: a path in it
/// left unmounted would be written inside the container and lost.
fn read_json_file(path: &str, host: &HostContext) -> Result<String> {
    let file = host.cwd.join(crate::fsutil::expand_home(path, &host.home));
    if !std::fs::metadata(&file).is_ok_and(|m| m.is_file()) {
        return Ok(String::new());
    }
    let max = crate::fsutil::MAX_CA_BUNDLE;
    match crate::fsutil::read_text_bounded(&file, max) {
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => Err(Error::Config(format!(
            "container mode reads a `--from-json` document for the local paths it names; `{}` is {}: name those \
             paths as options, or run without container mode",
            file.display(),
            e
        ))),
        read => Ok(read.unwrap_or_default()),
    }
}

/// The paths a `--from-json` document names: the values of its keys that are path options
/// (`file`, `srcDir`, `cert-bundle`, as `oci` maps camelCase and dashed keys to options), and its
/// `file://` values, but not those of an option the command line gives (`given`, without
/// dashes). Mounted, never rewritten: the document is the user's.
fn json_paths(text: &str, given: &[String]) -> Vec<OsString> {
    let Ok(serde_json::Value::Object(doc)) = serde_json::from_str::<serde_json::Value>(text) else { return vec![] };
    doc.iter()
        .filter_map(|(key, value)| {
            let value = value.as_str()?;
            let mut option = String::from("--");
            for c in key.chars() {
                match c {
                    '_' => option.push('-'),
                    c if c.is_ascii_uppercase() => option.extend(['-', c.to_ascii_lowercase()]),
                    c => option.push(c),
                }
            }
            if given.iter().any(|g| option[2..] == *g) {
                return None;
            }
            value.strip_prefix("file://").or_else(|| is_path_option(&option).then_some(value)).map(OsString::from)
        })
        .collect()
}

/// Whether `path` is a device or one of the process's own streams (`/dev/stdin`, `/dev/null`,
/// `/proc/self/fd/1`), which reach the container through the runtime's `-i` and its output, or as
/// its own devices, not through a mount. `/dev/shm` holds files, which the container's own would
/// keep: a folder of the image, refused like `/usr`.
fn is_stream(path: &Path) -> bool {
    (path.starts_with("/dev") && !path.starts_with("/dev/shm") && !path.starts_with("/dev/mqueue"))
        || path.starts_with("/proc")
}

/// `path` (absolute) as the host's kernel resolves it, like `realpath -m`: each link followed
/// where it stands, so a `..` after one climbs from where it leads; the part that does not exist
/// (yet) kept by name.
fn resolve(path: &Path) -> PathBuf {
    // The names still to walk, the next last.
    let reversed = |p: &Path| {
        let mut names: Vec<OsString> = p.iter().filter(|c| *c != "/").map(OsString::from).collect();
        names.reverse();
        names
    };
    let mut todo = reversed(path);
    let mut out = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == "." {
            continue;
        }
        if name == ".." {
            out.pop();
            continue;
        }
        let next = out.join(&name);
        match std::fs::read_link(&next) {
            // As the kernel's ELOOP: a longer chain is left as it is.
            Ok(to) if links < 40 => {
                links += 1;
                if to.is_absolute() {
                    out = PathBuf::from("/");
                }
                todo.extend(reversed(&to));
            }
            _ => out = next,
        }
    }
    out
}

/// Whether `dir` is, or is inside, a folder of the image itself, which a mount at the same path
/// would replace (`/` cannot be a mount target at all). `/opt` and `/var` themselves are the
/// image's, their subfolders (`/opt/backup`, `/var/tmp`) the places users keep their own files.
pub(super) fn hides_the_image(dir: &Path) -> bool {
    const SYSTEM: [&str; 13] = [
        "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/oracle", "/proc", "/run", "/sbin", "/sys",
        "/usr",
    ];
    ["/", "/opt", "/var"].iter().any(|s| dir == Path::new(s)) || SYSTEM.iter().any(|s| dir.starts_with(s))
}

/// `path` with `.` and `..` taken away by name (no link followed).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The container paths the user's own `-v`/`--volume`/`--mount` options mount something at.
pub(super) fn volume_targets(args: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, value) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ if a.starts_with("-v") && a.len() > 2 => ("-v", Some(a[2..].to_owned())),
            _ => (a.as_str(), None),
        };
        if !matches!(name, "-v" | "--volume" | "--mount") {
            continue;
        }
        let Some(value) = value.or_else(|| it.next().cloned()) else { break };
        let target = if name == "--mount" {
            value.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                matches!(k, "target" | "destination" | "dst").then(|| v.to_owned())
            })
        } else {
            value.split(':').nth(1).map(str::to_owned)
        };
        out.extend(target.filter(|t| t.starts_with('/')).map(PathBuf::from));
    }
    out
}
