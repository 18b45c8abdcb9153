//! Strings that came from outside (a registry, a bundle, a manifest, a file name) shown to a
//! person. The one rule: before such a string reaches a terminal, every character that could
//! move the cursor, erase a line, switch colours or reorder text is written as a visible
//! escape (`\u{1b}`), so a registry cannot paint a fake "✓ Policy: PASSED" line.
//!
//! Escaped: C0 controls (U+0000–U+001F, newline and tab included), DEL (U+007F), C1 controls
//! (U+0080–U+009F), the bidirectional marks, embeddings, overrides and isolates (U+061C,
//! U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), the zero-width and invisible characters
//! (U+200B–U+200D, U+2060–U+2064, U+FEFF), and the line and paragraph separators (U+2028,
//! U+2029). JSON output needs none of this: serde escapes control characters and a JSON reader
//! sees data, not text.
//!
//! [`Untrusted`] wraps a value whose `Display` escapes; [`escape`] does the same to a string;
//! [`escape_lines`] keeps newlines (for the whole text of a result whose fields are already
//! wrapped, as a last guard at the printing boundary).

use std::borrow::Cow;
use std::fmt;

/// True for a character a terminal must not receive raw from untrusted input.
pub fn is_dangerous(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{61c}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}')
}

fn escape_with(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_dangerous(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_dangerous(c) || keep(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// `s` with every dangerous character (newlines included) written as a visible escape.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_with(s, |_| false)
}

/// Like [`escape`] but keeps `\n`: for a whole multi-line text whose untrusted fields were
/// already escaped one by one (a second guard, so a field someone forgot to wrap still cannot
/// send an escape sequence).
pub fn escape_lines(s: &str) -> Cow<'_, str> {
    escape_with(s, |c| c == '\n')
}

/// A value from untrusted input; its `Display` is the value's, escaped with [`escape`].
#[derive(Clone, Copy, Debug)]
pub struct Untrusted<T>(pub T);

impl<T: fmt::Display> fmt::Display for Untrusted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        f.pad(&escape(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_bidi_and_zero_width() {
        let hostile = "x\u{1b}[2K\r✓ Policy: PASSED\u{202e}a\u{200b}b\u{9b}c\u{7f}\n";
        let shown = escape(hostile);
        assert_eq!(
            shown,
            "x\\u{1b}[2K\\r✓ Policy: PASSED\\u{202e}a\\u{200b}b\\u{9b}c\\u{7f}\\n"
        );
        assert!(!shown.chars().any(is_dangerous));
        assert_eq!(Untrusted(hostile).to_string(), shown);
        // Plain text (also non-ASCII) is left alone and not copied.
        assert!(matches!(escape("modèle/ü.bin ✓"), Cow::Borrowed(_)));
        assert_eq!(escape_lines("a\nb\u{1b}"), "a\nb\\u{1b}");
        // Width and alignment apply to the escaped text.
        assert_eq!(format!("{:<6}|", Untrusted("a\tb")), "a\\tb  |");
    }
}
