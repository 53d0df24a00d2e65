//! oci's own settings file, `oci_cli_rc`, read the way oci-cli 3.95.1 reads it (`cli_root.py`
//! `eager_load_cli_rc_file`, `load_default_values`; `cli_util.py`
//! `get_default_value_from_defaults_file`), so woci picks the profile, region, auth, CA bundle and
//! endpoint `oci` itself will use.
//!
//! - Which file ([`locate`]): `--cli-rc-file`/`--defaults-file` if that file exists — and since
//!   oci's default for that flag is `~/.oci/oci_cli_rc`, that file when the flag is absent — then
//!   `OCI_CLI_RC_FILE`, then `~/.oci/oci_cli_rc`, then `~/.oci/cli-defaults`. A file that does
//!   not exist is skipped, as oci does.
//! - `[OCI_CLI_SETTINGS] default_profile`: the profile when neither `--profile` nor
//!   `OCI_CLI_PROFILE` names one ([`CliRc::default_profile`]).
//! - `[<profile>]` (with `[DEFAULT]` merged under it, Python `configparser` style): default
//!   values of global options, most specific key first — `os.object.put.endpoint`,
//!   `os.object.endpoint`, `os.endpoint`, `endpoint` ([`CliRc::value`]). Only when the profile has
//!   a section at all, as in oci.
//!
//! Pure: [`parse`] takes text, [`locate`] takes an existence check, so both are unit-tested
//! without files; [`load`] combines them.

use crate::error::{Error, Result};
use crate::settings::Env;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const SETTINGS_SECTION: &str = "OCI_CLI_SETTINGS";

/// A parsed `oci_cli_rc` (empty when there is none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliRc {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    /// Section name (case kept, as configparser does) → key (lowercased) → value.
    sections: HashMap<String, HashMap<String, String>>,
    /// Why a file that is there was not read (a warning).
    pub ignored: Option<String>,
}

impl CliRc {
    /// `[OCI_CLI_SETTINGS] default_profile`.
    pub fn default_profile(&self) -> Option<String> {
        // Set but empty is profile `` to oci, which then finds none (a review of round 105).
        self.sections.get(SETTINGS_SECTION)?.get("default_profile").cloned()
    }

    /// The default for global option `key` (`endpoint`, `region`, `auth`, `cert-bundle`) for
    /// `profile` and the oci command `words`: `words[..n].key` for the longest `n` first, then
    /// `key`; `[DEFAULT]` fills in keys the profile's section lacks.
    pub fn value(&self, profile: &str, words: &[String], key: &str) -> Option<String> {
        let section = self.sections.get(profile)?;
        let default = self.sections.get("DEFAULT");
        let lookup = |k: &str| section.get(k).or_else(|| default.and_then(|d| d.get(k)));
        (0..=words.len())
            .rev()
            .map(|n| if n == 0 { key.to_owned() } else { format!("{}.{key}", words[..n].join(".")) })
            .find_map(|k| lookup(&k).filter(|v| !v.is_empty()).cloned())
    }
}

/// Which file oci reads: see the module docs. `exists` decides whether a path is there.
pub fn locate(flag: Option<&Path>, env: &Env, home: &Path, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let oci_dir = home.join(".oci");
    let default = oci_dir.join("oci_cli_rc");
    // As oci: `os.path.expandvars(os.path.expanduser(value))`.
    let expand = |p: &Path| {
        let p = crate::fsutil::expand_home(p, home);
        p.to_str().map_or_else(|| p.clone(), |t| PathBuf::from(expand_vars(t, env)))
    };
    let candidates = [
        Some(flag.map_or_else(|| default.clone(), expand)),
        env.get("OCI_CLI_RC_FILE").filter(|v| !v.is_empty()).map(|v| expand(Path::new(v))),
        Some(default.clone()),
        Some(oci_dir.join("cli-defaults")),
    ];
    candidates.into_iter().flatten().find(|p| exists(p))
}

/// Python's `os.path.expandvars`: `$name` and `${name}` of a set variable are replaced, anything
/// else is kept as it is. oci applies it to the rc file's path and to every value it takes from
/// the file (a review of round 105: a `region = $MYREGION` went into the OCI config as it was).
pub(crate) fn expand_vars(text: &str, env: &Env) -> String {
    if !text.contains('$') {
        return text.to_owned();
    }
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(b) => b.find('}').map_or(("", 0), |end| (&b[..end], end + 2)),
            None => {
                let end = after.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        match env.get(name).filter(|_| !name.is_empty()) {
            Some(value) => out.push_str(value),
            None => out.push_str(&rest[at..at + 1 + len]),
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Locates and parses the file; an unreadable or malformed file is an error naming it.
pub fn load(flag: Option<&Path>, env: &Env, home: &Path) -> Result<CliRc> {
    let Some(path) = locate(flag, env, home, Path::is_file) else {
        return Ok(CliRc::default());
    };
    let text = match crate::fsutil::read_text_bounded(&path, crate::fsutil::MAX_INPUT) {
        Ok(t) => t,
        // configparser's `read` skips a file it cannot open, so oci goes on without it.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let ignored = format!(
                "ignoring oci's settings file `{}`, which cannot be read (permission denied), as oci does",
                path.display()
            );
            return Ok(CliRc { ignored: Some(ignored), ..CliRc::default() });
        }
        Err(e) => return Err(Error::Config(format!("cannot read oci's settings file `{}`: {e}", path.display()))),
    };
    let mut rc = parse(&text).map_err(|e| Error::Config(format!("oci's settings file `{}`: {e}", path.display())))?;
    rc.path = Some(path);
    Ok(rc)
}

/// Parses INI text as Python's `configparser` does for oci ([`crate::configparser`]: a repeated
/// section — `[DEFAULT]` too, which oci's first read of the file takes as an ordinary section —
/// or key and a byte order mark are errors, as oci fails on them).
pub fn parse(text: &str) -> std::result::Result<CliRc, String> {
    let syntax = crate::configparser::Syntax { merged: None, bom_ok: false };
    let parsed = crate::configparser::parse(text, syntax)?;
    let sections = parsed
        .sections
        .iter()
        .map(|name| (name.clone(), parsed.section_values(name).unwrap_or_default().into_iter().collect()))
        .collect();
    Ok(CliRc { path: None, sections, ignored: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RC: &str = "\
# oci's own settings
[OCI_CLI_SETTINGS]
default_profile = prod

[OCI_CLI_CANNED_QUERIES]
get_id_and_display_name_from_list=data[*].{id: id, \"display-name\": \"display-name\"}

[DEFAULT]
region: us-phoenix-1
cert-bundle = ~/ca.pem

[prod]
Endpoint = https://objectstorage.example.test
os.object.put.endpoint = https://put.example.test
compute.region = eu-frankfurt-1
query =
  data[0]
";

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn default_profile_and_values_follow_oci() {
        let rc = parse(RC).unwrap();
        assert_eq!(rc.default_profile().as_deref(), Some("prod"));
        let ep = |w: &[&str]| rc.value("prod", &words(w), "endpoint");
        assert_eq!(ep(&["os", "object", "put"]).as_deref(), Some("https://put.example.test"));
        assert_eq!(ep(&["os", "object", "get"]).as_deref(), Some("https://objectstorage.example.test"));
        assert_eq!(
            rc.value("prod", &words(&["compute", "instance", "list"]), "region").as_deref(),
            Some("eu-frankfurt-1")
        );
        // `[DEFAULT]` fills in; a profile without a section gets nothing, as in oci.
        assert_eq!(rc.value("prod", &[], "region").as_deref(), Some("us-phoenix-1"));
        assert_eq!(rc.value("DEFAULT", &[], "cert-bundle").as_deref(), Some("~/ca.pem"));
        assert_eq!(rc.value("other", &[], "region"), None);
        // As configparser reads it: the empty first line is part of the value.
        assert_eq!(rc.value("prod", &[], "query").as_deref(), Some("\ndata[0]"));
        assert_eq!(parse("").unwrap(), CliRc::default());
        assert_eq!(CliRc::default().default_profile(), None);
    }

    #[test]
    fn malformed_lines_name_the_line() {
        assert_eq!(
            parse("x = 1\n").unwrap_err(),
            "line 1: key `x` comes before any `[section]` header (put its section's `[NAME]` line above it)"
        );
        assert!(parse("[a]\n\njunk\n").unwrap_err().starts_with("line 3 is not `key = value`"));
        assert!(parse("[a]\nx=1\n[a]\n").unwrap_err().contains("appears twice"));
        assert!(parse("[DEFAULT]\nx=1\n[DEFAULT]\ny=2\n").unwrap_err().contains("`[DEFAULT]` appears twice"));
        assert!(parse("\u{feff}[a]\n").unwrap_err().contains("byte order mark"));
    }

    /// Indented keys of one depth are keys, as configparser reads them (not one key's lines).
    #[test]
    fn indented_keys_are_keys() {
        let rc = parse("[OCI_CLI_SETTINGS]\n    use_pager = false\n    default_profile = EMU\n").unwrap();
        assert_eq!(rc.default_profile().as_deref(), Some("EMU"));
        let rc = parse("[P]\n  auth = security_token\n  endpoint = https://e\n").unwrap();
        assert_eq!(rc.value("P", &[], "auth").as_deref(), Some("security_token"));
    }

    #[test]
    fn variables_in_the_path_are_expanded_as_oci_does() {
        let env = Env::from([("CFG".to_owned(), "/c".to_owned()), ("E".to_owned(), String::new())]);
        let x = |p: &str| expand_vars(p, &env);
        assert_eq!(x("$CFG/rc"), "/c/rc");
        assert_eq!(x("${CFG}rc"), "/crc");
        assert_eq!(x("$NOPE/rc:$E.${"), "$NOPE/rc:.${");
        assert_eq!(x("a$"), "a$");
        let home = Path::new("/h");
        let env =
            Env::from([("OCI_CLI_RC_FILE".to_owned(), "$CFG/rc".to_owned()), ("CFG".to_owned(), "/c".to_owned())]);
        assert_eq!(locate(None, &env, home, |p: &Path| p == Path::new("/c/rc")), Some("/c/rc".into()));
    }

    #[test]
    fn file_precedence_is_ocis() {
        let home = Path::new("/h");
        let rc_default = PathBuf::from("/h/.oci/oci_cli_rc");
        let fallback = PathBuf::from("/h/.oci/cli-defaults");
        let env = Env::from([("OCI_CLI_RC_FILE".to_owned(), "~/env_rc".to_owned())]);
        let all = |_: &Path| true;
        // The flag wins; without it oci's default location comes first, even before the variable.
        assert_eq!(locate(Some(Path::new("~/flag_rc")), &env, home, all), Some("/h/flag_rc".into()));
        assert_eq!(locate(None, &env, home, all), Some(rc_default.clone()));
        // Missing files are skipped in order: flag, variable, default, fallback.
        let only = |keep: &'static str| move |p: &Path| p == Path::new(keep);
        assert_eq!(locate(Some(Path::new("/nope")), &env, home, only("/h/env_rc")), Some("/h/env_rc".into()));
        assert_eq!(locate(Some(Path::new("/nope")), &env, home, only("/h/.oci/oci_cli_rc")), Some(rc_default));
        assert_eq!(locate(None, &Env::new(), home, only("/h/.oci/cli-defaults")), Some(fallback));
        assert_eq!(locate(None, &env, home, |_: &Path| false), None);
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(None, &Env::new(), dir.path()).unwrap(), CliRc::default());
        std::fs::create_dir(dir.path().join(".oci")).unwrap();
        let f = dir.path().join(".oci").join("oci_cli_rc");
        std::fs::write(&f, RC).unwrap();
        let rc = load(None, &Env::new(), dir.path()).unwrap();
        assert_eq!((rc.path.as_deref(), rc.default_profile().as_deref()), (Some(f.as_path()), Some("prod")));
        std::fs::write(&f, "oops\n").unwrap();
        let e = load(None, &Env::new(), dir.path()).unwrap_err();
        assert!(e.to_string().contains(&f.display().to_string()) && e.to_string().contains("line 1"), "{e}");
    }
}
