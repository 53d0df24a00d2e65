//! `~/.oci/config`: read a profile the way `oci` does, and upsert keys in one profile while
//! keeping every other byte of the file.
//!
//! The format is Python `configparser` as the OCI CLI and SDK use it ([`crate::configparser`],
//! `default_section="DEFAULT"`): `[DEFAULT]` keys are inherited by every profile, and may come in
//! several parts. A file `configparser` would reject (a section or a key given twice, a key
//! before any section header, a line that is neither a header, a comment nor `key = value`, a
//! byte order mark, invalid UTF-8) is a [`Error::CorruptFile`], as `oci` would fail on it, and is
//! never rewritten. [`upsert_profile`] only rewrites the lines of the keys it sets (keeping each
//! line's own `key = ` spelling and spacing), inserts missing keys after the profile's last key,
//! or appends the section at the end; it keeps the file's line endings (LF or CRLF) and writes
//! atomically with mode 0600, through a symlink to its target (a link whose target is gone is
//! refused, not replaced).

use crate::configparser::{Kind, Line, Parsed, Syntax};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The section every profile inherits from.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// As `oci` reads its config: `[DEFAULT]` may come back, a byte order mark is an error.
const SYNTAX: Syntax = Syntax { merged: Some(DEFAULT_SECTION), bom_ok: false };

fn parse(text: &str) -> std::result::Result<Parsed<'_>, String> {
    crate::configparser::parse(text, SYNTAX)
}

fn read_text(path: &Path) -> Result<Option<String>> {
    let bytes = crate::fsutil::read_optional(path)?;
    bytes.map(|b| String::from_utf8(b).map_err(|_| Error::corrupt(path, "not valid UTF-8"))).transpose()
}

/// Whether the OCI config has a profile at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigState {
    /// The file does not exist.
    FileMissing,
    /// The file exists but has no such profile; the profiles it has, in file order.
    ProfileMissing(Vec<String>),
    /// The profile is there.
    Present,
}

/// A profile's keys as `oci` sees them (the `[DEFAULT]` section's keys under the profile's own),
/// from one read of the file; none unless [`ConfigState::Present`] (for `DEFAULT`: a `[DEFAULT]`
/// section). Keys are lowercase.
pub fn read_profile(path: &Path, profile: &str) -> Result<(ConfigState, BTreeMap<String, String>)> {
    read_profile_split(path, profile).map(|(state, values, _)| (state, values))
}

/// [`read_profile`], and which of the keys come from `[DEFAULT]` only (the profile does not set
/// them itself).
pub fn read_profile_split(
    path: &Path,
    profile: &str,
) -> Result<(ConfigState, BTreeMap<String, String>, std::collections::BTreeSet<String>)> {
    let Some(text) = read_text(&resolve_symlink(path)?)? else {
        return Ok((ConfigState::FileMissing, BTreeMap::new(), Default::default()));
    };
    let parsed = parse(&text).map_err(|reason| Error::corrupt(path, reason))?;
    let defaults = parsed.section_values(DEFAULT_SECTION);
    let mut inherited = std::collections::BTreeSet::new();
    let values = match profile {
        DEFAULT_SECTION => defaults,
        _ => parsed.section_values(profile).map(|own| {
            let mut merged = defaults.unwrap_or_default();
            inherited.extend(merged.keys().filter(|k| !own.contains_key(*k)).cloned());
            merged.extend(own);
            merged
        }),
    };
    Ok(match values {
        Some(values) => (ConfigState::Present, values, inherited),
        None => (ConfigState::ProfileMissing(parsed.sections), BTreeMap::new(), inherited),
    })
}

/// Sets `entries` in `[profile]` (creating the file/section if needed), keeping every other line,
/// comment, key and profile as it was; atomic write, mode 0600.
///
/// A key present in the profile has its line(s) rewritten in place (continuation lines of the
/// old value are dropped); a missing key is inserted after the profile's last key. A key set only
/// in `[DEFAULT]` is added to the profile, leaving `[DEFAULT]` alone. Nothing is written when the
/// file already says all of it.
///
/// With `lock` (a lock file in the user's own session root: one beside a config in a shared
/// folder could be another user's), the write is serialized with other wocis': profiles of one
/// config renew under locks of their own, and two first renewals at once would each write back
/// the file as it was before the other's entries (a review of round 105).
pub fn upsert_profile(path: &Path, profile: &str, entries: &[(&str, &str)], lock: Option<&Path>) -> Result<()> {
    validate(profile, entries)?;
    let target = resolve_symlink(path)?;
    let render = || -> Result<Option<String>> {
        let existing = read_text(&target)?;
        let text = existing.as_deref().unwrap_or("");
        let parsed = parse(text).map_err(|reason| Error::corrupt(&target, reason))?;
        let updated = render_upsert(&parsed, text, profile, entries);
        Ok((existing.as_deref() != Some(updated.as_str())).then_some(updated))
    };
    if render()?.is_none() {
        return Ok(());
    }
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        crate::fsutil::ensure_private_dir(dir)?;
    }
    let _lock = lock.map(|lock| crate::fsutil::FileLock::acquire(lock, LOCK_WAIT)).transpose()?;
    match render()? {
        Some(updated) => crate::fsutil::write_atomic(&target, updated.as_bytes()),
        None => Ok(()),
    }
}

/// How long a config write waits for another woci's (a write takes milliseconds).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn validate(profile: &str, entries: &[(&str, &str)]) -> Result<()> {
    // configparser takes a header's name whole, brackets and outer spaces included (`[x[1]]` is
    // `x[1]`, `[ a ]` is ` a `), as `oci` and woci's reader do: only a line break cannot be written.
    if profile.is_empty() || profile.contains(['\n', '\r']) {
        return Err(Error::Config(format!("invalid profile name `{}` for the OCI config", profile.escape_debug())));
    }
    for (k, v) in entries {
        let bad_key =
            k.is_empty() || k.trim() != *k || k.contains(['=', ':', '\n', '\r']) || k.starts_with(['[', '#', ';']);
        if bad_key {
            return Err(Error::Config(format!("invalid OCI config key `{}`", k.escape_debug())));
        }
        if v.contains(['\n', '\r']) {
            return Err(Error::Config(format!("the value for OCI config key `{k}` contains a line break")));
        }
    }
    Ok(())
}

/// Writes go to a symlink's target, so a linked `~/.oci/config` stays a link. A link whose target
/// is gone (a dotfiles folder not checked out, a volume not mounted) is refused: a new file there
/// would replace the link, and `oci` would not find the config either.
fn resolve_symlink(path: &Path) -> Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| {
            let to = std::fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
            Error::Config(format!(
                "the OCI config `{}` is a symbolic link to `{to}`, which cannot be followed ({}); restore its target, \
                 or remove the link",
                path.display(),
                crate::fsutil::io_reason(&e)
            ))
        }),
        _ => Ok(path.to_owned()),
    }
}

fn render_upsert(parsed: &Parsed<'_>, text: &str, profile: &str, entries: &[(&str, &str)]) -> String {
    let eol = parsed.lines.iter().map(|l| l.eol).find(|e| !e.is_empty()).unwrap_or("\n");
    let in_profile = |l: &Line<'_>| l.section.is_some_and(|s| parsed.sections[s] == profile);

    // Later duplicates in `entries` win, as they would if applied one after the other.
    let value_of = |key: &str| entries.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| *v);
    let present: Vec<&str> = (parsed.lines.iter().filter(|l| in_profile(l)))
        .filter_map(|l| if let Kind::Key { key, .. } = &l.kind { Some(key.as_str()) } else { None })
        .collect();
    let mut missing: Vec<(&str, &str)> = Vec::new();
    for (key, value) in entries {
        let known = present.iter().chain(missing.iter().map(|(k, _)| k)).any(|k| k.eq_ignore_ascii_case(key));
        if !known {
            missing.push((key, value_of(key).unwrap_or(value)));
        }
    }
    let missing_lines: String = missing.iter().map(|(k, v)| format!("{k}={v}{eol}")).collect();
    // Where missing keys go: after the last key (or header) of the profile's last occurrence.
    let last_header = parsed.lines.iter().rposition(|l| l.kind == Kind::Section(profile.to_owned()));
    let insert_after = last_header.map(|h| {
        let section =
            parsed.lines.iter().enumerate().skip(h + 1).take_while(|(_, l)| !matches!(l.kind, Kind::Section(_)));
        section.filter(|(_, l)| matches!(l.kind, Kind::Key { .. } | Kind::Continuation)).last().map_or(h, |(i, _)| i)
    });

    let mut out = String::with_capacity(text.len() + 256);
    // Whether the lines continue a key being rewritten (they are dropped).
    let mut in_match = false;
    for (i, line) in parsed.lines.iter().enumerate() {
        let new_value = match &line.kind {
            Kind::Key { key, value_at, .. } if in_profile(line) => value_of(key).map(|v| (&line.text[..*value_at], v)),
            _ => None,
        };
        let kept = match (&line.kind, new_value) {
            (_, Some((start, value))) => {
                in_match = true;
                out.push_str(start);
                out.push_str(value);
                true
            }
            (Kind::Continuation, _) if in_match => false,
            // A blank or comment line does not end the value being rewritten.
            (kind, _) => {
                in_match &= matches!(kind, Kind::Blank | Kind::Comment);
                out.push_str(line.text);
                true
            }
        };
        let inserting = insert_after == Some(i) && !missing.is_empty();
        if kept {
            out.push_str(if line.eol.is_empty() && inserting { eol } else { line.eol });
        }
        if inserting {
            out.push_str(&missing_lines);
        }
    }
    if last_header.is_none() && !missing.is_empty() {
        if !out.is_empty() {
            if !out.ends_with('\n') {
                out.push_str(eol);
            }
            if !parsed.lines.last().is_some_and(|l| l.kind == Kind::Blank) {
                out.push_str(eol);
            }
        }
        out.push_str(&format!("[{profile}]{eol}{missing_lines}"));
    }
    out
}

/// How a file woci writes is recorded in the OCI config: a file under `~/.oci` as `~/.oci/…` when
/// the config lives in `~/.oci` (`oci` expands `~` itself, to the host's home on the host and to
/// `/oracle` in the container, where `~/.oci` is mounted); any other path as it is.
pub fn portable_path(p: &Path, home: &Path, oci_config_file: &Path) -> String {
    let oci_home = home.join(".oci");
    match p.strip_prefix(&oci_home) {
        Ok(rest) if oci_config_file.parent() == Some(oci_home.as_path()) => {
            Path::new("~/.oci").join(rest).display().to_string()
        }
        _ => p.display().to_string(),
    }
}

/// The value woci records in the OCI config for a file it wrote: [`portable_path`] in container
/// mode (the container reads the same config), the plain host path otherwise (as before, for the
/// SDKs and tools that read the config on the host).
pub fn config_value(p: &Path, settings: &crate::settings::Settings) -> String {
    match settings.container {
        Some(_) => portable_path(p, &settings.home, &settings.oci_config_file),
        None => p.display().to_string(),
    }
}

/// What a path found in the OCI config means on the host: `~/…` is the home folder, and
/// `/oracle/.oci/…` (written by `oci` inside the container, where the config folder is mounted
/// there) is the config file's folder. Other paths are left alone.
pub fn host_path(p: &str, home: &Path, oci_config_file: &Path) -> PathBuf {
    if p.starts_with('~') {
        return crate::fsutil::expand_home(p, home);
    }
    let in_container = p.strip_prefix(crate::settings::CONTAINER_OCI_DIR).and_then(|r| r.strip_prefix('/'));
    match in_container.zip(oci_config_file.parent()) {
        Some((rest, dir)) => dir.join(rest),
        None => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn upsert_str(text: &str, profile: &str, entries: &[(&str, &str)]) -> String {
        let parsed = parse(text).unwrap();
        render_upsert(&parsed, text, profile, entries)
    }

    fn read_str(text: &str, profile: &str) -> Option<BTreeMap<String, String>> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        fs::write(&p, text).unwrap();
        let (state, values) = read_profile(&p, profile).unwrap();
        (state == ConfigState::Present).then_some(values)
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    const CONFIG: &str = "\
# my OCI config
[DEFAULT]
user=ocid1.user.default
region = us-ashburn-1

; work profile
[work]
key_file = /old/key.pem
Fingerprint: aa:bb
tenancy=ocid1.tenancy.work

[other]
key_file=/other/key.pem
security_token_file=/other/token
";

    /// Two profiles' first renewals at once write one config: neither loses the other's entries.
    #[test]
    fn concurrent_upserts_of_two_profiles_keep_both() {
        let dir = tempfile::tempdir().unwrap();
        let (p, lock) = (dir.path().join("config"), dir.path().join(".config.lock"));
        std::thread::scope(|s| {
            for profile in ["A", "B"] {
                let (p, lock) = (&p, &lock);
                s.spawn(move || {
                    for i in 0..40 {
                        upsert_profile(p, profile, &[(&format!("k{i}"), "v")], Some(lock)).unwrap();
                    }
                });
            }
        });
        for profile in ["A", "B"] {
            let (_, values) = read_profile(&p, profile).unwrap();
            assert_eq!(values.len(), 40, "{profile}: {}", fs::read_to_string(&p).unwrap());
        }
    }

    #[test]
    fn read_inherits_default() {
        let work = read_str(CONFIG, "work").unwrap();
        assert_eq!(
            work,
            map(&[
                ("user", "ocid1.user.default"),
                ("region", "us-ashburn-1"),
                ("key_file", "/old/key.pem"),
                ("fingerprint", "aa:bb"),
                ("tenancy", "ocid1.tenancy.work"),
            ])
        );
        assert_eq!(
            read_str(CONFIG, "DEFAULT").unwrap(),
            map(&[("user", "ocid1.user.default"), ("region", "us-ashburn-1")])
        );
        assert_eq!(read_str(CONFIG, "missing"), None);
        assert_eq!(read_str("[p]\nk=v\n", "DEFAULT"), None);
    }

    #[test]
    fn read_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read_profile(&dir.path().join("nope"), "DEFAULT").unwrap(),
            (ConfigState::FileMissing, BTreeMap::new())
        );
    }

    #[test]
    fn read_profile_overrides_default() {
        let text = "[DEFAULT]\nregion=a\n[p]\nregion=b\nextra=1\n";
        assert_eq!(read_str(text, "p").unwrap(), map(&[("region", "b"), ("extra", "1")]));
    }

    #[test]
    fn read_continuation_lines() {
        let text = "[p]\nkey_file = /a\n  /b\n# comment\n\tmore\nnext = 1\n";
        assert_eq!(read_str(text, "p").unwrap(), map(&[("key_file", "/a\n/b\nmore"), ("next", "1")]));
    }

    #[test]
    fn read_values_trimmed_crlf() {
        let text = "[p]\r\n  key_file  =  /a b  \r\n  region:us\r\n";
        assert_eq!(read_str(text, "p").unwrap(), map(&[("key_file", "/a b"), ("region", "us")]));
    }

    #[test]
    fn corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        // As configparser (so oci) refuses them: a key twice, a byte order mark.
        for bad in ["user=x\n[p]\n", "[p]\njust words\n", "[p]\n= value\n", "[p]\nk=1\nK=2\n", "\u{feff}[p]\n"] {
            fs::write(&p, bad).unwrap();
            let err = read_profile(&p, "p").unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::CORRUPT_FILE, "{bad:?}: {err}");
            let err = upsert_profile(&p, "p", &[("k", "v")], None).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::CORRUPT_FILE);
            assert_eq!(fs::read_to_string(&p).unwrap(), bad, "left untouched");
        }
        fs::write(&p, b"[p]\nk=\xff\n").unwrap();
        assert_eq!(read_profile(&p, "p").unwrap_err().exit_code(), crate::error::exit::CORRUPT_FILE);
    }

    #[test]
    fn upsert_rewrites_only_the_given_keys() {
        let out = upsert_str(
            CONFIG,
            "work",
            &[("key_file", "/new/key.pem"), ("fingerprint", "cc:dd"), ("security_token_file", "/new/token")],
        );
        let expected = "\
# my OCI config
[DEFAULT]
user=ocid1.user.default
region = us-ashburn-1

; work profile
[work]
key_file = /new/key.pem
Fingerprint: cc:dd
tenancy=ocid1.tenancy.work
security_token_file=/new/token

[other]
key_file=/other/key.pem
security_token_file=/other/token
";
        assert_eq!(out, expected);
    }

    #[test]
    fn upsert_key_only_in_default_is_added_to_the_profile() {
        let out = upsert_str(CONFIG, "work", &[("region", "eu-frankfurt-1")]);
        assert!(out.contains("region = us-ashburn-1\n"), "DEFAULT untouched:\n{out}");
        assert!(out.contains("tenancy=ocid1.tenancy.work\nregion=eu-frankfurt-1\n\n[other]"), "{out}");
    }

    #[test]
    fn upsert_default_profile() {
        let out = upsert_str(CONFIG, "DEFAULT", &[("region", "eu-frankfurt-1"), ("tenancy", "t")]);
        assert!(out.starts_with("# my OCI config\n[DEFAULT]\nuser=ocid1.user.default\nregion = eu-frankfurt-1\ntenancy=t\n\n; work profile\n"), "{out}");
        // The work profile's own tenancy is not touched.
        assert!(out.contains("tenancy=ocid1.tenancy.work\n"));
    }

    #[test]
    fn upsert_appends_a_new_section() {
        let out = upsert_str(CONFIG, "new", &[("key_file", "/k"), ("region", "r")]);
        assert_eq!(out, format!("{CONFIG}\n[new]\nkey_file=/k\nregion=r\n"));
    }

    #[test]
    fn upsert_without_trailing_newline() {
        let text = "[p]\nkey_file=/a";
        assert_eq!(upsert_str(text, "p", &[("region", "r")]), "[p]\nkey_file=/a\nregion=r\n");
        assert_eq!(upsert_str(text, "p", &[("key_file", "/b")]), "[p]\nkey_file=/b");
        assert_eq!(upsert_str(text, "q", &[("k", "v")]), "[p]\nkey_file=/a\n\n[q]\nk=v\n");
    }

    #[test]
    fn upsert_keeps_crlf() {
        let text = "[p]\r\nkey_file = /a\r\n\r\n[q]\r\nx=1\r\n";
        assert_eq!(
            upsert_str(text, "p", &[("key_file", "/b"), ("region", "r")]),
            "[p]\r\nkey_file = /b\r\nregion=r\r\n\r\n[q]\r\nx=1\r\n"
        );
        assert_eq!(upsert_str(text, "z", &[("k", "v")]), format!("{text}\r\n[z]\r\nk=v\r\n"));
    }

    #[test]
    fn upsert_ignores_same_keys_in_other_sections() {
        let text = "[a]\nkey_file=/a\n[b]\n# key_file=/commented\nkey_file_2=/x\n[c]\nkey_file=/c\n";
        let out = upsert_str(text, "b", &[("key_file", "/b")]);
        assert_eq!(out, "[a]\nkey_file=/a\n[b]\n# key_file=/commented\nkey_file_2=/x\nkey_file=/b\n[c]\nkey_file=/c\n");
    }

    #[test]
    fn upsert_empty_section_and_trailing_comments() {
        let text = "[p]\n# only a comment\n\n[q]\n";
        assert_eq!(upsert_str(text, "p", &[("k", "v")]), "[p]\nk=v\n# only a comment\n\n[q]\n");
        let text = "[p]\na=1\n# trailing comment\n\n";
        assert_eq!(upsert_str(text, "p", &[("b", "2")]), "[p]\na=1\nb=2\n# trailing comment\n\n");
    }

    #[test]
    fn upsert_drops_continuations() {
        let text = "[p]\nKEY_FILE = /a\n   /continued\nz=1\n";
        assert_eq!(upsert_str(text, "p", &[("key_file", "/new")]), "[p]\nKEY_FILE = /new\nz=1\n");
        // The missing keys still go in after a dropped last line.
        let text = "[p]\nregion = r\n    more\n";
        assert_eq!(upsert_str(text, "p", &[("region", "r"), ("k", "v")]), "[p]\nregion = r\nk=v\n");
    }

    /// `[DEFAULT]` in parts, as configparser merges it: read whole, and a key it lacks goes into
    /// the last part.
    #[test]
    fn default_in_parts() {
        let text = "[DEFAULT]\nregion=a\n[p]\nk=1\n[DEFAULT]\ntenancy=t\n";
        assert_eq!(read_str(text, "p").unwrap(), map(&[("region", "a"), ("tenancy", "t"), ("k", "1")]));
        let out = upsert_str(text, "DEFAULT", &[("region", "b"), ("user", "u")]);
        assert_eq!(out, "[DEFAULT]\nregion=b\n[p]\nk=1\n[DEFAULT]\ntenancy=t\nuser=u\n");
    }

    /// A linked config whose target is gone (a dotfiles checkout away) is refused, the link kept:
    /// a new file would replace it, and oci does not find the config either.
    #[cfg(unix)]
    #[test]
    fn a_dangling_link_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("config");
        std::os::unix::fs::symlink(dir.path().join("dotfiles/oci-config"), &link).unwrap();
        for e in [read_profile(&link, "p").unwrap_err(), upsert_profile(&link, "p", &[("k", "v")], None).unwrap_err()] {
            assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
            assert!(e.to_string().contains("dotfiles/oci-config`, which cannot be followed"), "{e}");
        }
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    }

    #[test]
    fn duplicate_sections_are_rejected_naming_both_lines_and_the_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        let text = "[DEFAULT]\nregion=x\n\n[P]\nregion=a\n# again\n[P]\nregion=b\n";
        std::fs::write(&path, text).unwrap();
        let e = read_profile(&path, "P").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CORRUPT_FILE);
        let m = e.to_string();
        assert!(m.contains("`[P]`") && m.contains("lines 4 and 7"), "{m}");
        assert!(upsert_profile(&path, "P", &[("key_file", "/k")], None).is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "nothing changed on disk");
        assert!(read_str("[P]\na=1\n[Q]\nb=2\n", "Q").is_some(), "distinct sections are fine");
    }

    #[test]
    fn upsert_after_a_header_without_newline_and_colon_values() {
        assert_eq!(upsert_str("[p]", "p", &[("k", "v")]), "[p]\nk=v\n");
        let text = "[p]\nkey_file=C:\\keys\\k.pem\nfingerprint: aa:bb:cc\n";
        assert_eq!(read_str(text, "p").unwrap(), map(&[("key_file", "C:\\keys\\k.pem"), ("fingerprint", "aa:bb:cc")]));
        assert_eq!(
            upsert_str(text, "p", &[("fingerprint", "dd:ee")]),
            "[p]\nkey_file=C:\\keys\\k.pem\nfingerprint: dd:ee\n"
        );
    }

    #[test]
    fn upsert_into_empty_text() {
        assert_eq!(upsert_str("", "DEFAULT", &[("k", "v")]), "[DEFAULT]\nk=v\n");
    }

    #[test]
    fn upsert_then_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        fs::write(&p, CONFIG).unwrap();
        upsert_profile(&p, "work", &[("key_file", "/k"), ("region", "r"), ("tenancy", "t")], None).unwrap();
        let work = read_profile(&p, "work").unwrap().1;
        assert_eq!(work["key_file"], "/k");
        assert_eq!(work["region"], "r");
        assert_eq!(work["tenancy"], "t");
        assert_eq!(work["user"], "ocid1.user.default");
        assert_eq!(read_profile(&p, "other").unwrap().1["key_file"], "/other/key.pem");
    }

    #[cfg(unix)]
    #[test]
    fn upsert_creates_file_and_folder_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new").join("config");
        upsert_profile(&p, "DEFAULT", &[("key_file", "/k")], None).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "[DEFAULT]\nkey_file=/k\n");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(p.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[cfg(unix)]
    #[test]
    fn upsert_existing_file_becomes_0600_and_symlink_stays() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real-config");
        fs::write(&real, "[p]\na=1\n").unwrap();
        fs::set_permissions(&real, fs::Permissions::from_mode(0o644)).unwrap();
        let link = dir.path().join("config");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        upsert_profile(&link, "p", &[("a", "2")], None).unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "[p]\na=2\n");
        assert_eq!(fs::metadata(&real).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn upsert_without_changes_does_not_write() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        fs::write(&p, "[p]\na = 1\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        upsert_profile(&p, "p", &[("a", "1")], None).unwrap();
        // Not rewritten: the mode is still the user's.
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o640);
    }

    #[test]
    fn invalid_names_and_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        for (profile, k, v) in
            [("a\nb", "k", "v"), ("", "k", "v"), ("p", "a=b", "v"), ("p", "", "v"), ("p", "k", "x\ny")]
        {
            let err = upsert_profile(&p, profile, &[(k, v)], None).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::CONFIG, "{profile:?} {k:?} {v:?}");
        }
        assert!(!p.exists());
    }

    /// Names `oci` takes (configparser keeps a header whole) are written and read back as they
    /// are, beside each other (round 97 F1: `team[prod]` logged in, then every call failed).
    #[test]
    fn bracketed_and_spaced_profile_names_round_trip() {
        let names = ["x[1]", "y]z", " sp ", "[a", "b]", "#h", "a b"];
        let mut text = String::from("[x]\nk=0\n");
        for (i, name) in names.iter().enumerate() {
            text = upsert_str(&text, name, &[("k", &i.to_string())]);
        }
        for (i, name) in names.iter().enumerate() {
            assert_eq!(read_str(&text, name), Some(map(&[("k", &i.to_string())])), "{name:?} in {text}");
        }
        assert_eq!(read_str(&text, "x"), Some(map(&[("k", "0")])), "{text}");
    }

    #[test]
    fn paths_are_recorded_portably_and_read_back_on_the_host() {
        let home = Path::new("/home/u");
        let cfg = Path::new("/home/u/.oci/config");
        let key = Path::new("/home/u/.oci/sessions/P/oci_api_key.pem");
        assert_eq!(portable_path(key, home, cfg), "~/.oci/sessions/P/oci_api_key.pem");
        assert_eq!(portable_path(Path::new("/elsewhere/k.pem"), home, cfg), "/elsewhere/k.pem");
        // A config outside ~/.oci is not mounted where `~/.oci` points in the container.
        assert_eq!(portable_path(key, home, Path::new("/srv/oci/config")), key.display().to_string());

        assert_eq!(host_path("~/.oci/sessions/P/token", home, cfg), Path::new("/home/u/.oci/sessions/P/token"));
        assert_eq!(host_path("/oracle/.oci/sessions/P/token", home, cfg), Path::new("/home/u/.oci/sessions/P/token"));
        assert_eq!(
            host_path("/oracle/.oci/sessions/P/token", home, Path::new("/srv/oci/config")),
            Path::new("/srv/oci/sessions/P/token")
        );
        assert_eq!(host_path("/oracle/.ocix/t", home, cfg), Path::new("/oracle/.ocix/t"));
        assert_eq!(host_path("/opt/keys/k.pem", home, cfg), Path::new("/opt/keys/k.pem"));
    }
}
