//! Text from peers and operators on its way to a terminal or a log: control characters (an
//! escape sequence in a User-Name, a newline in a reason) are shown escaped, never raw, so
//! that nobody can rewrite the operator's screen or forge a log line.

use std::fmt;

/// Displays its text with control characters escaped (`\n`, `\t`, `\u{1b}` ...).
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if !s.chars().any(char::is_control) {
            return f.write_str(s);
        }
        for c in s.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// `s` with control characters escaped, borrowed when there are none.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(char::is_control) {
        std::borrow::Cow::Owned(Escaped(s).to_string())
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_pass_raw() {
        assert_eq!(escape("j.devries"), "j.devries");
        assert!(matches!(escape("plain"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("line\nforged"), "line\\nforged");
        assert_eq!(escape("tab\there\r"), "tab\\there\\r");
        assert_eq!(Escaped("\u{7f}\u{85}é").to_string(), "\\u{7f}\\u{85}é");
    }
}
