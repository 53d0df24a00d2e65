//! The INI syntax of Python's `configparser` (strict, `interpolation=None`), as `oci` reads
//! `~/.oci/config` and `oci_cli_rc` and the Python woci reads `woci_manager.ini`: one reader for
//! the three files, line by line, so that `~/.oci/config` can be rewritten keeping every other
//! byte.
//!
//! - `[section]` headers (case-sensitive; text after the last `]` ignored), `key = value` or
//!   `key: value` (keys lowercased, values trimmed), whole-line `#`/`;` comments, no inline ones.
//! - A line indented deeper than its key's line continues that key's value (joined with `\n`);
//!   one indented as deep is a key of its own, however deep both are.
//! - As `configparser` raises `DuplicateSectionError` and `DuplicateOptionError`, a section or a
//!   key within a section given twice is an error naming both lines; only the `merged` section
//!   (`[DEFAULT]` in oci's files) may appear again, and its parts are one section.
//! - A key before any header, a line that is nothing of the above, and a UTF-8 byte order mark
//!   (which `configparser` reads as part of the first header, so `oci` fails) are errors, unless
//!   the BOM is allowed.

use std::collections::BTreeMap;

/// What a line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Blank or whitespace-only.
    Blank,
    /// `#` or `;` comment.
    Comment,
    /// `[name]`.
    Section(String),
    /// `key = value`; `value_at` is the byte offset in the line where the value starts (after the
    /// delimiter and the whitespace following it).
    Key { key: String, value: String, value_at: usize },
    /// An indented line continuing the value of the key above.
    Continuation,
}

/// One line of the text.
#[derive(Debug, Clone)]
pub(crate) struct Line<'a> {
    /// The line without its line ending.
    pub text: &'a str,
    /// `"\n"`, `"\r\n"` or `""` (last line without a newline).
    pub eol: &'a str,
    pub kind: Kind,
    /// The section this line belongs to (index into [`Parsed::sections`]), if any.
    pub section: Option<usize>,
}

/// The parsed text.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub lines: Vec<Line<'a>>,
    /// Section names, in order of first appearance, once each.
    pub sections: Vec<String>,
}

/// How strict [`parse`] is where the three files differ.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syntax {
    /// The section that may appear more than once (`DEFAULT` for oci's files).
    pub merged: Option<&'static str>,
    /// Whether a byte order mark is skipped (the manager INI) or an error (oci's files).
    pub bom_ok: bool,
}

impl Parsed<'_> {
    /// Keys of section `name`, continuation lines joined with `\n`.
    pub(crate) fn section_values(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let index = self.sections.iter().position(|s| s == name)?;
        let mut out = BTreeMap::new();
        // The key a continuation line continues: the section's last key before it.
        let mut current: Option<&String> = None;
        for line in self.lines.iter().filter(|l| l.section == Some(index)) {
            match &line.kind {
                Kind::Key { key, value, .. } => {
                    out.insert(key.clone(), value.clone());
                    current = Some(key);
                }
                Kind::Continuation => {
                    if let Some(v) = current.and_then(|k| out.get_mut(k)) {
                        v.push('\n');
                        v.push_str(line.text.trim());
                    }
                }
                _ => {}
            }
        }
        Some(out)
    }
}

/// The lines of `text`, each without and with its line ending (`"\n"`, `"\r\n"` or `""`).
fn split_lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_inclusive('\n').map(|l| {
        let line = l.strip_suffix('\n').map_or(l, |s| s.strip_suffix('\r').unwrap_or(s));
        (line, &l[line.len()..])
    })
}

/// Parses `text`; the error says which line is wrong and how.
pub(crate) fn parse(text: &str, syntax: Syntax) -> Result<Parsed<'_>, String> {
    if !syntax.bom_ok && text.starts_with('\u{feff}') {
        return Err("it starts with a byte order mark (U+FEFF), which oci cannot read; save it as UTF-8 without \
                    BOM"
        .into());
    }
    let mut lines: Vec<Line<'_>> = Vec::new();
    let mut sections: Vec<String> = Vec::new();
    let mut current: Option<usize> = None;
    // (section, key) → the line it first stood on: a repeat is found in one look, however long
    // the file.
    let mut keys: std::collections::HashMap<(usize, String), usize> = std::collections::HashMap::new();
    // Indentation of the current key's line, while a key can take continuation lines.
    let mut key_indent: Option<usize> = None;
    for (n, (raw, eol)) in split_lines(text).enumerate() {
        let body = if n == 0 { raw.strip_prefix('\u{feff}').unwrap_or(raw) } else { raw };
        let offset = raw.len() - body.len();
        let trimmed = body.trim();
        let indent = body.len() - body.trim_start().len();
        let kind = if trimmed.is_empty() {
            Kind::Blank
        } else if trimmed.starts_with('#') || trimmed.starts_with(';') {
            Kind::Comment
        } else if key_indent.is_some_and(|k| indent > k) {
            Kind::Continuation
        } else if trimmed.starts_with('[') && trimmed.rfind(']').is_some_and(|i| i > 1) {
            let name = &trimmed[1..trimmed.rfind(']').unwrap_or(1)];
            current = match sections.iter().position(|s| s == name) {
                Some(i) if syntax.merged == Some(name) => Some(i),
                Some(_) => {
                    let first = lines.iter().position(|l| matches!(&l.kind, Kind::Section(s) if s == name));
                    return Err(format!(
                        "section `[{}]` appears twice, at lines {} and {}; merge them into one",
                        name.escape_debug(),
                        first.map_or(0, |f| f + 1),
                        n + 1
                    ));
                }
                None => {
                    sections.push(name.to_owned());
                    Some(sections.len() - 1)
                }
            };
            key_indent = None;
            Kind::Section(name.to_owned())
        } else {
            // The line itself is never quoted: it may be a secret pasted on a line of its own.
            let Some(d) = body.find(['=', ':']) else {
                return Err(format!("line {} is not `key = value`, a `[section]` header or a comment", n + 1));
            };
            let key = body[..d].trim().to_lowercase();
            if current.is_none() {
                return Err(format!(
                    "line {}: key `{}` comes before any `[section]` header (put its section's `[NAME]` line above it)",
                    n + 1,
                    key.escape_debug()
                ));
            }
            if key.is_empty() {
                return Err(format!("line {} has no key before `{}`", n + 1, &body[d..=d]));
            }
            let section = current.unwrap_or(0);
            if let Some(first) = keys.insert((section, key.clone()), n) {
                return Err(format!(
                    "key `{}` appears twice in section `[{}]`, at lines {} and {}; keep one",
                    key.escape_debug(),
                    sections[section].escape_debug(),
                    first + 1,
                    n + 1
                ));
            }
            let after = &body[d + 1..];
            let value_at = offset + d + 1 + (after.len() - after.trim_start().len());
            key_indent = Some(indent);
            Kind::Key { key, value: after.trim().to_owned(), value_at }
        };
        lines.push(Line { text: raw, eol, kind, section: current });
    }
    Ok(Parsed { lines, sections })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OCI: Syntax = Syntax { merged: Some("DEFAULT"), bom_ok: false };
    const PLAIN: Syntax = Syntax { merged: None, bom_ok: true };

    fn values(text: &str, section: &str) -> BTreeMap<String, String> {
        parse(text, OCI).unwrap().section_values(section).unwrap()
    }

    /// Cases checked against Python 3.11's `configparser.ConfigParser(interpolation=None)`.
    #[test]
    fn indentation_decides_continuation_as_configparser_does() {
        let v = values("[P]\n  a = 1\n  b = 2\n", "P");
        assert_eq!((v["a"].as_str(), v["b"].as_str()), ("1", "2"), "equally indented keys are keys");
        assert_eq!(values("[P]\na=1\n  b=2\n", "P")["a"], "1\nb=2");
        let v = values("[P]\n  a=1\n    b=2\n  c=3\n", "P");
        assert_eq!((v["a"].as_str(), v["c"].as_str()), ("1\nb=2", "3"));
        assert_eq!(values("[P]\na=1\n  # note\n  more\n", "P")["a"], "1\nmore", "comments skipped");
    }

    #[test]
    fn repeats_are_errors_except_the_merged_section() {
        let p = parse("[DEFAULT]\na=1\n[P]\nb=2\n[DEFAULT]\nc=3\n", OCI).unwrap();
        assert_eq!(p.sections, ["DEFAULT", "P"]);
        let d = p.section_values("DEFAULT").unwrap();
        assert_eq!((d["a"].as_str(), d["c"].as_str()), ("1", "3"));
        let e = parse("[DEFAULT]\na=1\n[DEFAULT]\nA=3\n", OCI).unwrap_err();
        assert_eq!(e, "key `a` appears twice in section `[DEFAULT]`, at lines 2 and 4; keep one");
        let e = parse("[P]\nregion=a\n[Q]\nregion=b\n[P]\nx=1\n", OCI).unwrap_err();
        assert_eq!(e, "section `[P]` appears twice, at lines 1 and 5; merge them into one");
        assert!(parse("[DEFAULT]\n[DEFAULT]\n", PLAIN).is_err(), "DEFAULT is ordinary elsewhere");
        assert!(parse("[P]\nregion=a\nRegion=b\n", PLAIN).unwrap_err().contains("`region` appears twice"));
    }

    #[test]
    fn a_byte_order_mark_is_named_unless_allowed() {
        let e = parse("\u{feff}[P]\na=1\n", OCI).unwrap_err();
        assert!(e.contains("byte order mark"), "{e}");
        assert_eq!(parse("\u{feff}[P]\na=1\n", PLAIN).unwrap().section_values("P").unwrap()["a"], "1");
    }

    #[test]
    fn malformed_lines() {
        assert_eq!(
            parse("a=1\n", OCI).unwrap_err(),
            "line 1: key `a` comes before any `[section]` header (put its section's `[NAME]` line above it)"
        );
        let e = parse("[P]\nsecret-ish\n", OCI).unwrap_err();
        assert_eq!(e, "line 2 is not `key = value`, a `[section]` header or a comment");
        assert_eq!(parse("[p] junk\na=1\n", PLAIN).unwrap().sections, ["p"], "as configparser's header match");
        assert_eq!(parse("[P]\n = 1\n", OCI).unwrap_err(), "line 2 has no key before `=`");
        let p = parse("[COMMON]   # shared\nk: v\n", PLAIN).unwrap();
        assert_eq!(p.section_values("COMMON").unwrap()["k"], "v");
    }
}
