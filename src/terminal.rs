//! Text from outside woci — a server's answer, a token's claims, a file, a helper's output — made
//! safe for a terminal before woci prints it: the one rule for every such character.
//!
//! A terminal acts on control characters (ESC and CSI start sequences that clear the screen, set
//! the window title or rewrite what was printed) and Unicode format characters reorder or hide
//! text (U+202E RIGHT-TO-LEFT OVERRIDE makes `gnirts` read `string`). [`safe`] writes each such
//! character as a visible escape (`\x1b`, `\u{202e}`) and keeps everything else, non-ASCII
//! letters included. It is used by the error line (`app`), every log line (`logging`), the
//! device-code prompt, `--status` and `--daemon-status`; [`crate::token_endpoint::scrub`] (a
//! server's `error` / `error_description`) applies it after removing the secrets it sent.
//!
//! JSON output ([`to_json_pretty`]) stays valid and lossless: the same characters are written as
//! `\uXXXX` escapes, which every JSON parser reads back as the original text.

use serde::Serialize;
use std::borrow::Cow;
use std::io;

/// The Unicode format characters (general category Cf, Unicode 15.1): bidi marks, embeddings,
/// overrides and isolates, zero-width characters, invisible operators, the BOM, interlinear
/// annotation and tag characters. A short, stable list: no crate's tables are worth the size.
const FORMAT: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether a terminal may act on `c` or hide it: every C0 control (newline and tab included, so a
/// one-line message stays one line), DEL, every C1 control, the format characters (Cf) and the
/// line and paragraph separators.
pub(crate) fn is_unsafe(c: char) -> bool {
    if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
        return true;
    }
    let c = c as u32;
    c >= 0xAD && FORMAT.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// `text` with every [`is_unsafe`] character written as a visible escape: `\n`, `\r`, `\t`,
/// `\xNN` for the other controls below U+0100 (ESC is `\x1b`, CSI `\x9b`), `\u{NNNN}` above.
/// Idempotent (backslashes are kept), so text that already passed here may pass again.
pub(crate) fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_unsafe(c) && (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:04x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Pretty JSON of `value` that is safe on a terminal and still exact: serde_json's own escaping
/// (quotes, backslashes, C0) plus `\uXXXX` for DEL, C1 and the format characters, which serde_json
/// writes raw. Outside strings it writes only ASCII punctuation, spaces and newlines, so every such
/// character is inside a string, where the escape reads back as the original.
pub(crate) fn to_json_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    use std::fmt::Write as _;
    let text = serde_json::to_string_pretty(value)?;
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c >= '\u{7f}' && is_unsafe(c) {
            for unit in c.encode_utf16(&mut [0u16; 2]) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// A report as [`to_json_pretty`] writes it, with a final newline.
pub(crate) fn to_json(v: &impl Serialize) -> crate::Result<String> {
    Ok(to_json_pretty(v).map_err(|e| crate::Error::Other(format!("cannot encode status: {e}")))? + "\n")
}

/// Writes a report to stdout; a reader that went away (`| head`) is no error.
pub(crate) fn print(out: &(impl AsRef<[u8]> + ?Sized)) -> crate::Result<()> {
    use io::Write;
    match io::stdout().lock().write_all(out.as_ref()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(crate::Error::Other(format!("cannot write to stdout: {e}"))),
    }
}

/// The terminal's settings, saved before a prompt turns its echo off, so that a signal that ends
/// woci during the prompt can put them back (a script going on after it would type blind).
#[cfg(unix)]
pub(crate) struct TtyState {
    tty: std::fs::File,
    saved: libc::termios,
}

/// Whether a prompt can be shown: this process has a controlling terminal (`/dev/tty`, where
/// the passphrase prompt asks).
pub(crate) fn has_controlling_terminal() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").is_ok()
}

#[cfg(unix)]
impl TtyState {
    /// The controlling terminal's settings now; `None` without one.
    pub(crate) fn save() -> Option<TtyState> {
        use std::os::fd::AsRawFd;
        let tty = std::fs::OpenOptions::new().read(true).write(true).open("/dev/tty").ok()?;
        // SAFETY: tcgetattr(3) fills the zeroed struct for an open descriptor.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        (unsafe { libc::tcgetattr(tty.as_raw_fd(), &mut saved) } == 0).then_some(TtyState { tty, saved })
    }

    /// Puts the saved settings back.
    pub(crate) fn restore(&self) {
        use std::os::fd::AsRawFd;
        // SAFETY: tcsetattr(3) with the descriptor and settings tcgetattr gave.
        unsafe { libc::tcsetattr(self.tty.as_raw_fd(), libc::TCSANOW, &self.saved) };
    }
}

/// Writes `text` and a newline to stderr for the person at the terminal; a stderr nobody reads
/// any more (a closed SSH session, `2>&1 | head`) is no error: `eprintln!` would panic.
pub(crate) fn say(text: &str) {
    use io::Write;
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// Whether a person can be shown a login's URL and code: on standard error, or else on the
/// controlling terminal (`oci … 2>&1 | tee log` at a prompt), where [`tell`] writes them.
pub(crate) fn person_present() -> bool {
    io::IsTerminal::is_terminal(&io::stderr()) || has_controlling_terminal()
}

/// [`say`] for what the person must see (a login's URL and code): to the controlling terminal when
/// standard error goes elsewhere, so that a log file does not swallow it.
pub(crate) fn tell(text: &str) {
    use io::Write;
    if !io::IsTerminal::is_terminal(&io::stderr()) {
        if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
            let _ = writeln!(tty, "{text}");
            return;
        }
    }
    say(text)
}

/// A `woci: warning:` line through [`tell`], its text made [`safe`]: for warnings that belong
/// beside a login's URL (a browser that could not be opened), where the person looks.
pub(crate) fn tell_warning(text: &str) {
    tell(&safe(&format!("woci: warning: {text}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_control_is_escaped_visibly() {
        assert_eq!(safe("a\u{1b}[2Jb"), "a\\x1b[2Jb", "ESC (C0)");
        assert_eq!(safe("\u{1b}]0;title\u{7}"), "\\x1b]0;title\\x07", "OSC title, BEL");
        assert_eq!(safe("x\u{0}y"), "x\\x00y", "NUL");
        assert_eq!(safe("line\nnext\r\tend"), "line\\nnext\\r\\tend", "newline, CR and tab too");
        assert_eq!(safe("del\u{7f}"), "del\\x7f", "DEL");
        assert_eq!(safe("\u{9b}31m \u{85} \u{80}"), "\\x9b31m \\x85 \\x80", "C1: CSI, NEL, PAD");
    }

    #[test]
    fn bidi_and_other_format_characters_are_escaped_visibly() {
        assert_eq!(safe("abc\u{202e}fed"), "abc\\u{202e}fed", "RIGHT-TO-LEFT OVERRIDE");
        for c in ['\u{202a}', '\u{202b}', '\u{202c}', '\u{202d}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'] {
            assert!(is_unsafe(c), "bidi embedding/isolate U+{:04X}", c as u32);
        }
        for c in ['\u{200e}', '\u{200f}', '\u{061c}', '\u{200b}', '\u{200d}', '\u{2060}', '\u{feff}', '\u{00ad}'] {
            assert!(is_unsafe(c), "mark / zero-width / BOM / soft hyphen U+{:04X}", c as u32);
        }
        assert!(is_unsafe('\u{e0041}'), "tag characters");
        assert!(is_unsafe('\u{2028}') && is_unsafe('\u{2029}'), "line and paragraph separators");
        assert_eq!(safe("\u{e0041}"), "\\u{e0041}");
    }

    #[test]
    fn ordinary_text_is_kept_as_it_is() {
        for text in ["café é", "日本語のテキスト", "Grüße, Ελληνικά, עברית, العربية", "emoji 🙂", "C:\\path\\x1b", ""]
        {
            assert_eq!(safe(text), text);
            assert!(matches!(safe(text), Cow::Borrowed(_)), "no copy when nothing changes");
        }
        for c in ['\u{9f}', '\u{a0}', '\u{ac}', '\u{ae}', '\u{2070}', '\u{fff8}', '\u{fffc}'] {
            assert_eq!(is_unsafe(c), c == '\u{9f}', "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn safe_is_idempotent() {
        let hostile = "\u{1b}[2J\u{9b}\u{202e}x\ny\u{7f}日本";
        let once = safe(hostile).into_owned();
        assert!(!once.chars().any(is_unsafe), "{once}");
        assert_eq!(safe(&once), once);
    }

    #[test]
    fn json_is_valid_exact_and_safe() {
        let value = serde_json::json!({
            "user": "ocid1\u{1b}[2J\u{9b}\u{7f}\u{202e}\u{e0041}\n日本 é \"q\" \\",
            "list": ["\u{2066}", 1, null],
        });
        let text = to_json_pretty(&value).unwrap();
        assert!(!text.chars().any(|c| is_unsafe(c) && c != '\n'), "{text}");
        assert!(text.contains("\\u202e") && text.contains("\\udb40\\udc41"), "{text}");
        assert!(text.contains("日本 é"), "ordinary text stays readable: {text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value, "a JSON parser reads back the exact text");
        assert_eq!(to_json_pretty(&serde_json::json!({"a": [1]})).unwrap(), "{\n  \"a\": [\n    1\n  ]\n}");
    }
}
