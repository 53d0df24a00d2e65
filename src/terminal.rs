//! Text from servers, tokens and files made safe for a terminal: control characters (C0 but tab,
//! C1, DEL) and Unicode format characters (bidi overrides, zero-width marks) are shown escaped
//! (`\u{1b}`), so no escape sequence or reordering reaches the user's screen.

use std::borrow::Cow;

/// `text` with every character a terminal would act on escaped; ordinary text (also non-ASCII
/// letters) unchanged.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(|c| if unsafe_char(c) { c.escape_unicode().to_string() } else { c.to_string() }).collect())
}

fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{00ad}' | '\u{061c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on_and_keeps_text() {
        assert_eq!(safe("plain é 日本"), "plain é 日本");
        assert_eq!(safe("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(safe("x\u{9b}y\u{7f}"), "x\\u{9b}y\\u{7f}");
        assert_eq!(safe("evil\u{202e}txt"), "evil\\u{202e}txt");
        assert_eq!(safe("line\nbreak"), "line\\u{a}break");
    }
}
