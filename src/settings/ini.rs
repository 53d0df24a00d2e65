//! `woci_manager.ini`: where it is, and the selected profile's keys (the known keys are the
//! settings table's, [`super::table`]).
//!
//! Compatible with the Python woci (gtrevorrow/OCI-CLI-Tools):
//! - path precedence: `--manager-config` > `WOCI_MANAGER_CONFIG` > `woci_manager.ini` beside the
//!   OCI config file > `~/.oci/woci_manager.ini`. A path given by flag or environment must exist;
//!   a file that is there must be readable, the user's (or root's) and not writable by every
//!   user (else a configuration error, exit 2; the Python woci ignored an unreadable one).
//! - `[COMMON]` holds shared keys; the profile's own section (`[<profile>]`, section names are
//!   case-sensitive) is merged over it, so the profile wins. `[DEFAULT]` is an ordinary section:
//!   it is the profile section of the `DEFAULT` profile and is not inherited by other profiles.
//! - Python `configparser` syntax: `key = value` or `key: value`, keys case-insensitive (stored
//!   lowercase), values trimmed, whole-line comments starting with `;` or `#`, no inline comments,
//!   indented continuation lines, and its basic interpolation (`%%` is a literal `%`, `%(key)s`
//!   is another key of the same section). A `%` in any other position is kept literally.
//!   Keys before the first section header make the file invalid, as they do for `configparser`.

use crate::error::{Error, Result};

fn is_secret(key: &str) -> bool {
    super::table::SETTINGS.iter().any(|d| d.secret && d.name == key)
}
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manager INI's file name, looked for beside the OCI config file and in `~/.oci/`.
pub const FILE_NAME: &str = "woci_manager.ini";

/// The section merged under every profile's section.
pub const COMMON_SECTION: &str = "COMMON";

/// Where the manager INI path came from; decides whether a missing file is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--manager-config`: unreadable → config error.
    Flag,
    /// `WOCI_MANAGER_CONFIG`: unreadable → config error.
    Env,
    /// `woci_manager.ini` beside the OCI config file: absent → none.
    BesideOciConfig,
    /// `~/.oci/woci_manager.ini`: absent → none.
    Home,
}

impl Source {
    fn describe(self) -> &'static str {
        match self {
            Source::Flag => "given by `--manager-config`",
            Source::Env => "given by `WOCI_MANAGER_CONFIG`",
            Source::BesideOciConfig => "found beside the OCI config file",
            Source::Home => "found in `~/.oci`",
        }
    }
}

/// The selected profile's keys: `[COMMON]` with the profile's section merged over it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IniFile {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// Whether the profile had its own section.
    pub has_profile_section: bool,
    /// Merged keys (lowercase).
    pub values: BTreeMap<String, String>,
    /// Whether any section of the file sets a secret and the file is readable by group or others.
    pub exposed_secrets: bool,
    /// The file's owner when it is another user (root's, used by a user): the fix is theirs.
    pub owner_elsewhere: Option<u32>,
    /// Without a section for the profile: the section that was probably meant (`[EMu]` for `EMU`).
    pub near_section: Option<String>,
    /// The profile the file was read for.
    pub profile: String,
    /// A `[common]` (any case but `COMMON`): meant as the shared section, which is case-sensitive.
    pub miscased_common: Option<String>,
    /// Whether the file has the shared `[COMMON]` section (then no profile may be named so).
    pub has_common: bool,
    /// The keys (lowercase) whose value comes from `[COMMON]`, the profile's section not setting them.
    pub shared: std::collections::BTreeSet<String>,
    /// The keys a `[DEFAULT]` section sets, when the profile is another: that section is the
    /// profile `DEFAULT`'s, not shared as in `~/.oci/config` (the Python woci reads it so too).
    pub default_keys: std::collections::BTreeSet<String>,
}

impl std::fmt::Debug for IniFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values: BTreeMap<&str, &str> = self
            .values
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "[redacted]" } else { v.as_str() }))
            .collect();
        f.debug_struct("IniFile")
            .field("path", &self.path)
            .field("has_profile_section", &self.has_profile_section)
            .field("exposed_secrets", &self.exposed_secrets)
            .field("owner_elsewhere", &self.owner_elsewhere)
            .field("near_section", &self.near_section)
            .field("values", &values)
            .finish()
    }
}

/// Keys the Python woci's INI may hold that it ignores too: not worth a warning on every call.
const PYTHON_WOCI_IGNORED: [&str; 1] = ["profile_name"];

/// The known key an unknown one was probably meant to be.
fn near_miss(key: &str) -> Option<&'static str> {
    super::rules::closest(key, super::table::ini_keys()).filter(|(score, _)| *score > 0.8).map(|(_, known)| known)
}

impl IniFile {
    /// Keys no woci reads, each with the closest known key when there is one.
    pub fn near_misses(&self) -> Vec<(&str, &'static str)> {
        self.unknown_keys().filter_map(|k| Some((k, near_miss(k)?))).collect()
    }

    fn unknown_keys(&self) -> impl Iterator<Item = &str> {
        self.values
            .keys()
            .map(String::as_str)
            .filter(|k| !super::table::ini_keys().any(|known| known == *k) && !PYTHON_WOCI_IGNORED.contains(k))
    }

    /// One line per key no woci reads (with the closest known key), and one when the file holds
    /// secrets others can read.
    pub fn warnings(&self) -> Vec<String> {
        let file = self.path.as_ref().map_or_else(|| "the manager config".to_owned(), |p| format!("`{}`", p.display()));
        let mut out: Vec<String> = self
            .unknown_keys()
            .map(|k| {
                let hint = near_miss(k).map(|known| format!("; did you mean `{known}`?")).unwrap_or_default();
                format!("unknown key `{k}` in {file} (ignored){hint}")
            })
            .collect();
        // Only a difference of case or of spaces: a typo, not another profile (`prod` beside
        // `prod2` is not).
        out.extend(self.near_section.as_ref().filter(|s| s.trim().eq_ignore_ascii_case(&self.profile)).map(|s| {
            format!(
                "{file} has no `[{}]` section but has `[{s}]` (section names are case-sensitive and keep their \
                 spaces); rename it if it is this profile's",
                self.profile
            )
        }));
        out.extend(self.miscased_common.as_ref().map(|s| {
            format!("section `[{s}]` in {file} is not the shared `[COMMON]` (section names are case-sensitive); rename it `[COMMON]`")
        }));
        if let (true, Some(p)) = (self.exposed_secrets, &self.path) {
            let chmod = format!("run `chmod 600 {}`", p.display());
            let fix = match self.owner_elsewhere {
                // Not this user's to change: `chmod 600` by its owner would lock this user out.
                Some(uid) => format!("ask its owner (uid {uid}) to give it to you (`chown`), then {chmod}"),
                None => chmod,
            };
            out.push(format!("{file} holds client secrets and other users can read it; {fix}"));
        }
        out
    }

    /// A key's value, if set and non-empty. `key` is matched case-insensitively.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(&key.to_ascii_lowercase()).map(String::as_str).filter(|v| !v.trim().is_empty())
    }
}

/// Finds the manager INI by precedence: flag or env (`given`) > beside the OCI config > `~/.oci/`.
///
/// A given path is returned as it is (whether or not it exists: [`load`] reports a missing one);
/// the two discovered locations only when they are files.
pub fn locate(given: Option<(PathBuf, Source)>, oci_config_file: &Path, home: &Path) -> Option<(PathBuf, Source)> {
    let beside = oci_config_file.parent().unwrap_or(Path::new("")).join(FILE_NAME);
    given.filter(|(p, _)| !p.as_os_str().is_empty()).or_else(|| {
        [(beside, Source::BesideOciConfig), (home.join(".oci").join(FILE_NAME), Source::Home)]
            .into_iter()
            // A folder or FIFO there is found too, and refused by `load`: else the profiles it
            // was meant to configure would silently lose their IdP settings.
            .find(|(p, _)| p.symlink_metadata().is_ok())
    })
}

/// Loads the merged section for `profile`.
///
/// A file given by flag or environment that is missing is a configuration error; a discovered one
/// that is gone yields an empty config. A file that is there but cannot be read, is not valid INI
/// or not safe ([`foreign_or_open`]) is a configuration error whatever its source.
pub fn load(path: &Path, source: Source, profile: &str) -> Result<IniFile> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        let fix = match source {
            Source::Flag | Source::Env => "name the INI file itself",
            _ => "remove it or put the INI file there",
        };
        return Err(Error::Config(format!(
            "the manager config `{}` ({}) is not a regular file (a folder, FIFO or device); {fix}",
            path.display(),
            source.describe()
        )));
    }
    let cannot_read = |e: std::io::Error| {
        Error::Config(format!(
            "cannot read the manager config `{}` {}: {}{}",
            path.display(),
            source.describe(),
            crate::fsutil::io_reason(&e),
            crate::error::permission_hint(&e, path)
        ))
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    // A FIFO swapped in since the look above must not hang the call.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NONBLOCK);
    let file = match opts.open(path) {
        Ok(f) => f,
        // A link to nothing (a dotfiles folder that moved) is named; a file gone since it was
        // found is as if it had never been there.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path.is_symlink() => {
            let to = std::fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_default();
            return Err(Error::Config(format!(
                "the manager config `{}` {} is a symbolic link to `{to}`, which does not exist; fix or remove the link",
                path.display(),
                source.describe()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !matches!(source, Source::Flag | Source::Env) => {
            return Ok(IniFile::default())
        }
        // A file that is there but cannot be read is never ignored: its profiles would lose their
        // IdP settings, and the errors would point at `oci session authenticate`.
        Err(e) => return Err(cannot_read(e)),
    };
    #[cfg(unix)]
    if let Ok(meta) = file.metadata() {
        foreign_or_open(path, &meta)?;
    }
    let bytes = crate::fsutil::read_bounded_from(file, crate::fsutil::MAX_INPUT).map_err(cannot_read)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        Error::Config(format!("manager config `{}` ({}) is not valid UTF-8", path.display(), source.describe()))
    })?;
    let mut cfg = parse_str(&text, profile)
        .map_err(|reason| Error::Config(format!("invalid manager config `{}`: {reason}", path.display())))?;
    cfg.path = Some(path.to_owned());
    // Like oci's warning about its own config: secrets in a file others can read.
    #[cfg(unix)]
    if cfg.exposed_secrets {
        // The owner's own per-user group reads as the owner does.
        let meta = std::fs::metadata(path).ok();
        cfg.exposed_secrets = meta.as_ref().is_none_or(|m| crate::access::others_can_read(m).is_some());
        let owner = meta.map(|m| std::os::unix::fs::MetadataExt::uid(&m));
        cfg.owner_elsewhere = owner.filter(|o| *o != crate::fsutil::user_id());
    }
    #[cfg(not(unix))]
    {
        cfg.exposed_secrets = false;
    }
    Ok(cfg)
}

/// The manager INI names the program woci runs (`oci_command`, hooks) and where secrets go: like
/// ssh with its config, one that another user owns or others can write is refused. Its owner
/// must be this user or root; for root (`sudo -E` with a user's HOME), also the owner of the
/// folder it is in, whose HOME that is.
#[cfg(unix)]
fn foreign_or_open(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    crate::access::refuse_foreign(
        path,
        meta,
        "manager config",
        "woci runs the programs it names",
        "use one of your own (`--manager-config`, `WOCI_MANAGER_CONFIG`)",
    )
}

/// The profile sections of the manager INI at `path` (not `[COMMON]`), read as [`load`] reads it;
/// none when it cannot be read or parsed.
pub fn section_names(path: Option<&Path>) -> Vec<String> {
    let text = path.and_then(|p| crate::fsutil::read_text_bounded(p, crate::fsutil::MAX_INPUT).ok());
    let Some(parsed) = text.as_deref().and_then(|t| parse_ini(t).ok()) else { return Vec::new() };
    parsed.sections.into_iter().filter(|n| n != COMMON_SECTION).collect()
}

/// The INI syntax of `woci_manager.ini`, as the Python woci's configparser reads it
/// ([`crate::configparser`]; `[DEFAULT]` is an ordinary section here, and a BOM is skipped).
fn parse_ini(text: &str) -> std::result::Result<crate::configparser::Parsed<'_>, String> {
    crate::configparser::parse(text, crate::configparser::Syntax { merged: None, bom_ok: true })
}

/// Parses INI text and merges `[COMMON]` under `[profile]`. `path` is left `None`;
/// `exposed_secrets` says whether any section sets a secret (mode not yet considered).
pub fn parse_str(text: &str, profile: &str) -> std::result::Result<IniFile, String> {
    let parsed = parse_ini(text)?;
    let section = |name: &str| parsed.section_values(name).unwrap_or_default();
    let has_profile_section = parsed.sections.iter().any(|n| n == profile);
    // Any section setting a secret (the file then deserves mode 0600; `load` checks the mode).
    let sets_secrets = parsed.lines.iter().any(
        |l| matches!(&l.kind, crate::configparser::Kind::Key { key, value, .. } if is_secret(key) && !value.is_empty()),
    );
    let (common, own) = (section(COMMON_SECTION), section(profile));
    // `[COMMON]` as the profile section of a profile named `COMMON` is the same map twice; fine.
    let shared = common.keys().filter(|k| !own.contains_key(*k)).cloned().collect();
    let mut values = interpolate(&common);
    values.extend(interpolate(&own));
    // Without a section of its own: the one that differs only in case, else the closest.
    let others = || parsed.sections.iter().map(String::as_str).filter(|n| *n != COMMON_SECTION);
    let near = || super::rules::closest(profile, others()).filter(|(score, _)| *score >= 0.9).map(|(_, n)| n);
    let near_section = (!has_profile_section)
        .then(|| others().find(|n| n.trim().eq_ignore_ascii_case(profile)).or_else(near).map(str::to_owned))
        .flatten();
    let miscased_common =
        parsed.sections.iter().find(|n| n.eq_ignore_ascii_case(COMMON_SECTION) && *n != COMMON_SECTION).cloned();
    Ok(IniFile {
        path: None,
        has_profile_section,
        values,
        exposed_secrets: sets_secrets,
        owner_elsewhere: None,
        near_section,
        profile: profile.to_owned(),
        miscased_common,
        has_common: parsed.sections.iter().any(|n| n == COMMON_SECTION),
        shared,
        default_keys: match profile {
            "DEFAULT" => Default::default(),
            _ => section("DEFAULT").into_keys().collect(),
        },
    })
}

/// `configparser`'s basic interpolation within one section: `%%` → `%`, `%(key)s` → that key's
/// (interpolated) value. Anything else, including unknown keys, stays literal.
fn interpolate(raw: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    raw.iter().map(|(k, v)| (k.clone(), expand(v, raw, 0))).collect()
}

fn expand(value: &str, raw: &BTreeMap<String, String>, depth: usize) -> String {
    if !value.contains('%') || depth > 10 {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        // `%(key)s` of a key the section has: that key's value, and what follows it.
        let reference = after.strip_prefix('(').and_then(|inner| {
            let end = inner.find(")s")?;
            Some((raw.get(&inner[..end].to_ascii_lowercase())?, &inner[end + 2..]))
        });
        if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
        } else if let Some((referenced, tail)) = reference {
            out.push_str(&expand(referenced, raw, depth + 1));
            rest = tail;
        } else {
            out.push('%');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const SAMPLE: &str = "\
; woci manager config
# another comment
[COMMON]
redirect_port = 8181
log_level = INFO
scope = openid offline_access

[myprofile]
authz_base_url = https://idp.example/oauth2/v1/authorize
Token_URL: https://idp.example/oauth2/v1/token
LOG_LEVEL = debug
client_secret = a%%b

[other]
token_url = https://other.example/token
";

    #[test]
    fn profile_section_wins_over_common() {
        let c = parse_str(SAMPLE, "myprofile").unwrap();
        assert!(c.has_profile_section);
        assert_eq!(c.get("redirect_port"), Some("8181"));
        assert_eq!(c.get("log_level"), Some("debug"));
        assert_eq!(c.get("scope"), Some("openid offline_access"));
        assert_eq!(c.get("token_url"), Some("https://idp.example/oauth2/v1/token"));
        assert_eq!(c.get("authz_base_url"), Some("https://idp.example/oauth2/v1/authorize"));
        // Keys are stored lowercase; lookups are case-insensitive.
        assert!(c.values.contains_key("token_url"));
        assert_eq!(c.get("TOKEN_URL"), Some("https://idp.example/oauth2/v1/token"));
        // `%%` is a literal `%`, as with configparser's interpolation.
        assert_eq!(c.get("client_secret"), Some("a%b"));
    }

    #[test]
    fn python_woci_leftover_keys_are_quiet_and_typos_are_not() {
        let c = parse_str("[P]\nprofile_name = P\ntoken_ulr = x\n", "P").unwrap();
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("`token_ulr`") && w[0].contains("did you mean `token_url`"), "{w:?}");
    }

    #[test]
    fn unknown_profile_gets_common_only() {
        let c = parse_str(SAMPLE, "nope").unwrap();
        assert!(!c.has_profile_section);
        assert_eq!(c.get("redirect_port"), Some("8181"));
        assert_eq!(c.get("token_url"), None);
    }

    #[test]
    fn section_names_are_case_sensitive() {
        let c = parse_str(SAMPLE, "MyProfile").unwrap();
        assert!(!c.has_profile_section);
        assert_eq!(c.get("authz_base_url"), None);
    }

    #[test]
    fn every_file_load_accepts_lists_its_sections() {
        // An indented continuation line (configparser's multi-line value) and a BOM, as `load` reads them.
        let text = "\u{feff}[COMMON]\nregion = r\n[A]\nscope = openid\n  offline_access\n[B]\nclient_id = \"q\n";
        assert!(parse_str(text, "A").is_ok());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("woci_manager.ini");
        std::fs::write(&path, text).unwrap();
        assert_eq!(section_names(Some(&path)), ["A", "B"]);
        std::fs::write(&path, "scope = x\n[A]\n").unwrap();
        assert!(section_names(Some(&path)).is_empty(), "a file load refuses lists nothing");
    }

    #[test]
    fn default_section_is_ordinary() {
        let text = "[DEFAULT]\ntoken_url = https://d/token\n[p]\nscope = s\n";
        let d = parse_str(text, "DEFAULT").unwrap();
        assert!(d.has_profile_section);
        assert_eq!(d.get("token_url"), Some("https://d/token"));
        let p = parse_str(text, "p").unwrap();
        assert_eq!(p.get("token_url"), None);
        assert_eq!(p.get("scope"), Some("s"));
    }

    #[test]
    fn empty_values_are_absent_for_get() {
        let c = parse_str("[p]\nclient_secret =\nscope =   \n", "p").unwrap();
        assert_eq!(c.get("client_secret"), None);
        assert_eq!(c.get("scope"), None);
        assert!(c.values.contains_key("client_secret"));
    }

    #[test]
    fn empty_profile_value_overrides_common() {
        // The merged map holds the profile's empty value, so `get` says "not set".
        let c = parse_str("[COMMON]\nregion = r1\n[p]\nregion =\n", "p").unwrap();
        assert_eq!(c.get("region"), None);
    }

    #[test]
    fn values_are_trimmed_and_inline_semicolons_kept() {
        let c =
            parse_str("[p]\n  scope   =   openid offline_access   \nurl = http://x/?a=1;b=2 # not a comment\n", "p")
                .unwrap();
        assert_eq!(c.get("scope"), Some("openid offline_access"));
        assert_eq!(c.get("url"), Some("http://x/?a=1;b=2 # not a comment"));
    }

    #[test]
    fn crlf_and_bom() {
        let c = parse_str("\u{feff}[p]\r\nscope = a b\r\nredirect_port=1\r\n", "p").unwrap();
        assert_eq!(c.get("scope"), Some("a b"));
        assert_eq!(c.get("redirect_port"), Some("1"));
    }

    #[test]
    fn interpolation_of_other_keys() {
        let c = parse_str(
            "[p]\nbase = https://idp\ntoken_url = %(base)s/token\nodd = 100% sure\nmissing = %(nope)s\n",
            "p",
        )
        .unwrap();
        assert_eq!(c.get("token_url"), Some("https://idp/token"));
        assert_eq!(c.get("odd"), Some("100% sure"));
        assert_eq!(c.get("missing"), Some("%(nope)s"));
    }

    /// Secrets others can read: the fix is `chmod 600`, or, for a file another user owns (root's
    /// INI a user reads), theirs to give: `chmod 600` alone would lock this user out.
    #[test]
    fn the_readable_secrets_fix_is_one_its_reader_can_make() {
        let mut c = parse_str("[EMU]\nclient_secret = s\n", "EMU").unwrap();
        c.path = Some(PathBuf::from("/h/.oci/woci_manager.ini"));
        assert!(
            c.warnings().iter().any(|w| w.ends_with("run `chmod 600 /h/.oci/woci_manager.ini`")),
            "{:?}",
            c.warnings()
        );
        c.owner_elsewhere = Some(0);
        let said = c.warnings().join("\n");
        assert!(said.contains("ask its owner (uid 0) to give it to you (`chown`), then run `chmod 600"), "{said}");
    }

    #[test]
    fn a_mistyped_section_is_noticed() {
        let c = parse_str("[common]\na = 1\n[EMu]\nb = 2\n[other]\n", "EMU").unwrap();
        assert_eq!(c.near_section.as_deref(), Some("EMu"));
        assert_eq!(c.miscased_common.as_deref(), Some("common"));
        assert!(c.warnings().iter().any(|w| w.contains("`[common]`") && w.contains("rename it `[COMMON]`")));
        assert!(c.warnings().iter().any(|w| w.contains("no `[EMU]` section but has `[EMu]`")), "{:?}", c.warnings());
        // Spaces inside the brackets are part of the name too (a review of round 105).
        let c = parse_str("[ EMU ]\nb = 2\n", "EMU").unwrap();
        assert!(c.warnings().iter().any(|w| w.contains("no `[EMU]` section but has `[ EMU ]`")), "{:?}", c.warnings());
        // A name merely close to this one is another profile's: no warning on every call.
        let c = parse_str("[EMU2]\n", "EMU").unwrap();
        assert!(c.warnings().is_empty(), "{:?}", c.warnings());
        let c = parse_str("[COMMON]\n[prod]\n[EMU]\n", "EMU").unwrap();
        assert_eq!((c.near_section, c.miscased_common), (None, None));
        // Another profile's section is not taken for a typo of this one.
        assert_eq!(parse_str("[prod]\n", "staging").unwrap().near_section, None);
    }

    #[test]
    fn a_section_twice_is_invalid() {
        let err = parse_str("[p]\na = 1\nb = 1\n[q]\n[p]\nb = 2\n", "p").unwrap_err();
        assert!(err.contains("`[p]` appears twice"), "{err}");
    }

    #[test]
    fn a_comment_after_a_section_header_is_ignored() {
        let c = parse_str("[COMMON]   # shared\na = 1\n[p] ; mine\nb = 2\n", "p").unwrap();
        assert_eq!((c.get("a"), c.get("b")), (Some("1"), Some("2")));
        // configparser reads a header up to its last `]` and ignores the rest.
        assert!(parse_str("[p] junk\n", "p").unwrap().has_profile_section);
    }

    #[test]
    fn a_line_without_a_delimiter_is_invalid() {
        let err = parse_str("[q]\njunk line\nk = v\n[p]\n", "p").unwrap_err();
        assert!(err.contains("line 2 ") && !err.contains("junk"), "the line is not quoted: {err}");
        let err = parse_str("[q]\nk = v\n\n[p]\na = b\ngarbage line\n", "p").unwrap_err();
        assert!(err.contains("line 6 is not `key = value`"), "{err}");
    }

    #[test]
    fn indented_lines_continue_the_value() {
        let c = parse_str("[p]\nscope = openid\n  offline_access\nz = 1\n", "p").unwrap();
        assert_eq!(c.get("scope"), Some("openid\noffline_access"));
        assert_eq!(c.get("z"), Some("1"));
    }

    #[test]
    fn keys_before_a_section_are_invalid() {
        let err = parse_str("token_url = x\n[p]\n", "p").unwrap_err();
        assert!(err.contains("token_url"), "{err}");
    }

    #[test]
    fn locate_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let cfgdir = dir.path().join("cfg");
        fs::create_dir_all(home.join(".oci")).unwrap();
        fs::create_dir_all(&cfgdir).unwrap();
        let oci_config = cfgdir.join("config");
        let flag = dir.path().join("flag.ini");
        let env = dir.path().join("env.ini");

        // Nothing exists → None.
        assert_eq!(locate(None, &oci_config, &home), None);

        let home_ini = home.join(".oci").join(FILE_NAME);
        fs::write(&home_ini, "[COMMON]\n").unwrap();
        assert_eq!(locate(None, &oci_config, &home), Some((home_ini.clone(), Source::Home)));

        let beside = cfgdir.join(FILE_NAME);
        fs::write(&beside, "[COMMON]\n").unwrap();
        assert_eq!(locate(None, &oci_config, &home), Some((beside.clone(), Source::BesideOciConfig)));

        // Explicit paths win even when they do not exist (load reports that).
        assert_eq!(locate(Some((env.clone(), Source::Env)), &oci_config, &home), Some((env.clone(), Source::Env)));
        assert_eq!(locate(Some((flag.clone(), Source::Flag)), &oci_config, &home), Some((flag, Source::Flag)));
        // An empty path counts as not given.
        assert_eq!(
            locate(Some((PathBuf::new(), Source::Flag)), &oci_config, &home),
            Some((beside, Source::BesideOciConfig))
        );
    }

    #[test]
    fn a_folder_or_fifo_named_like_the_ini_is_an_error_not_an_absent_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        fs::create_dir_all(&path).unwrap();
        let found = locate(None, &dir.path().join("config"), &dir.path().join("nohome")).unwrap();
        assert_eq!(found, (path.clone(), Source::BesideOciConfig));
        let e = load(&path, Source::BesideOciConfig, "p").unwrap_err();
        assert!(e.to_string().contains("is not a regular file"), "{e}");
        fs::remove_dir(&path).unwrap();
        rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        assert!(load(&path, Source::Home, "p").unwrap_err().to_string().contains("is not a regular file"));
    }

    #[test]
    fn a_link_to_nothing_is_named_not_taken_for_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let oci = dir.path().join(".oci");
        fs::create_dir(&oci).unwrap();
        std::os::unix::fs::symlink(dir.path().join("moved.ini"), oci.join(FILE_NAME)).unwrap();
        let (found, source) = locate(None, &oci.join("config"), dir.path()).unwrap();
        let err = load(&found, source, "p").unwrap_err().to_string();
        assert!(err.contains("is a symbolic link to") && err.contains("moved.ini"), "{err}");
    }

    #[test]
    fn a_discovered_file_that_cannot_be_read_or_others_can_write_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // Unreadable even for root: a path under a file (ENOTDIR).
        fs::write(dir.path().join("file"), "").unwrap();
        let err = load(&dir.path().join("file").join(FILE_NAME), Source::Home, "p").unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
        assert!(err.to_string().starts_with("cannot read the manager config"), "{err}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.path().join(FILE_NAME);
            fs::write(&p, SAMPLE).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o666)).unwrap();
            let err = load(&p, Source::Home, "p").unwrap_err().to_string();
            assert!(err.contains("is writable by every user (mode 666)") && err.contains("chmod go-w"), "{err}");
            // Root (`sudo -E`) reads the INI of the user whose folder it is in, no other user's.
            if crate::fsutil::user_id() == 0 {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
                std::os::unix::fs::chown(dir.path(), Some(1000), Some(1000)).unwrap();
                std::os::unix::fs::chown(&p, Some(1000), Some(1000)).unwrap();
                assert!(load(&p, Source::Home, "p").is_ok());
                std::os::unix::fs::chown(&p, Some(1001), Some(1001)).unwrap();
                let err = load(&p, Source::Home, "p").unwrap_err().to_string();
                assert!(err.contains("belongs to another user (uid 1001)"), "{err}");
            }
        }
    }

    #[test]
    fn explicit_missing_file_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.ini");
        for source in [Source::Flag, Source::Env] {
            let err = load(&missing, source, "p").unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
            let msg = err.to_string();
            assert!(msg.contains("missing.ini") && msg.contains("no such file"), "{msg}");
        }
        for source in [Source::BesideOciConfig, Source::Home] {
            assert_eq!(load(&missing, source, "p").unwrap(), IniFile::default());
        }
    }

    #[test]
    fn load_reads_and_records_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        fs::write(&p, SAMPLE).unwrap();
        let c = load(&p, Source::Home, "myprofile").unwrap();
        assert_eq!(c.path.as_deref(), Some(p.as_path()));
        assert_eq!(c.get("redirect_port"), Some("8181"));
    }

    #[test]
    fn invalid_ini_is_a_config_error_even_when_discovered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_NAME);
        fs::write(&p, "scope = x\n").unwrap();
        let err = load(&p, Source::Home, "p").unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
        assert!(err.to_string().contains(FILE_NAME), "{err}");
        fs::write(&p, b"[p]\nscope = \xff\n").unwrap();
        assert!(load(&p, Source::Home, "p").is_err());
    }
}
