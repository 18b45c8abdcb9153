//! Passwords and tokens: a thin newtype over [`secrecy::SecretString`], which zeroizes its memory
//! on drop. `Debug` and `Display` never show the content; [`Secret::expose`] is the one way out.

use secrecy::{ExposeSecret as _, SecretString};
use std::fmt;

#[derive(Clone, Default)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(SecretString::from(s.into()))
    }
    /// The secret itself: call only where it is sent or used.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

/// Equal when the contents are (e.g. a password typed twice).
impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}
impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_prints_content() {
        let s = Secret::new("hunter2");
        for shown in [
            format!("{s}"),
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{:?}", Some(s.clone())),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn a_clone_is_an_independent_copy_and_empty_is_empty() {
        let s = Secret::new("pw");
        let c = s.clone();
        assert!(c == s && c != Secret::new("pw2"));
        drop(s);
        assert_eq!(c.expose(), "pw");
        assert!(!c.is_empty());
        assert!(Secret::new("").is_empty());
        assert!(Secret::default().is_empty());
    }
}
