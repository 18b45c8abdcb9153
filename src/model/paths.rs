//! Model file paths: `/`-separated, relative to the model root. The same rules apply on push
//! (so we never produce an artifact that pull would refuse), on pull (so a hostile manifest
//! cannot write outside the target directory), and to the files a model-signing signature
//! lists: [`ModelPath`] is the one type for such a path.

use std::cmp::Ordering;
use std::fmt;
use std::path::Path;

/// A model file path that follows the rules of [`unsafe_reason`]: relative, `/`-separated,
/// safe to join below a model root. Ordered by path segments ([`compare`]).
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ModelPath(String);

/// Shown as the quoted path it is (`"a/b.bin"`), as messages quoted paths before the type.
impl fmt::Debug for ModelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl ModelPath {
    /// The path, or why it is refused.
    pub fn new(path: &str) -> Result<Self, &'static str> {
        match unsafe_reason(path) {
            None => Ok(ModelPath(path.to_string())),
            Some(reason) => Err(reason),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for ModelPath {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<Path> for ModelPath {
    fn as_ref(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl fmt::Display for ModelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ModelPath> for String {
    fn from(p: ModelPath) -> String {
        p.0
    }
}

impl Ord for ModelPath {
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.0, &other.0)
    }
}

impl PartialOrd for ModelPath {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Why `path` cannot be a model file path, or `None` when it is fine.
///
/// Refused: empty paths, NUL and other control characters, backslashes, absolute paths (`/…`
/// or a Windows drive `C:`), empty components (`a//b`, trailing `/`), `.` and `..` components.
pub fn unsafe_reason(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("empty path");
    }
    if path.contains('\0') {
        return Some("contains a NUL byte");
    }
    if path.contains('\\') {
        return Some("contains a backslash");
    }
    if path.chars().any(char::is_control) {
        return Some("contains a control character");
    }
    if path.starts_with('/') {
        return Some("absolute path");
    }
    let b = path.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Some("starts with a drive letter");
    }
    for comp in path.split('/') {
        match comp {
            "" => return Some("empty path component"),
            "." => return Some("contains a '.' component"),
            ".." => return Some("contains a '..' component"),
            _ => {}
        }
    }
    None
}

/// The prefix and suffix of the staging directory a pull writes into (and of the temporary
/// files older versions wrote beside each file): such names are never model files.
pub const TEMP_PREFIX: &str = ".oci-model-";
pub const TEMP_SUFFIX: &str = ".partial";

/// The directory inside a pull target where an interrupted pull keeps its partial downloads,
/// named by digest (`sha256-<hex>.part`), for the next pull to resume: never a model file.
pub const RESUME_DIR: &str = ".oci-model-resume";

/// Is `name` (one path component) one of our temporary names?
pub fn is_temp_name(name: &str) -> bool {
    name.len() > TEMP_PREFIX.len() + TEMP_SUFFIX.len()
        && name.starts_with(TEMP_PREFIX)
        && name.ends_with(TEMP_SUFFIX)
}

/// Order of files in a model: by path segments, so `a/b` < `a-b` < `a.txt` (the order the
/// OpenSSF model-signing format uses).
pub fn compare(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_relative_paths() {
        for ok in [
            "a",
            "a/b/c.bin",
            ".hidden",
            "dir/.env",
            "weird name (1).txt",
            "a..b",
            "..a",
            "ünï.json",
        ] {
            assert_eq!(unsafe_reason(ok), None, "{ok}");
        }
    }

    #[test]
    fn refuses_hostile_paths() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "a\\b",
            "..\\x",
            "a\0b",
            "./a",
            "a/./b",
            "a//b",
            "a/",
            ".",
            "C:/x",
            "c:x",
            "a\nb",
        ] {
            assert!(unsafe_reason(bad).is_some(), "{bad:?} accepted");
        }
    }

    #[test]
    fn model_path_is_built_only_from_safe_paths() {
        assert_eq!(ModelPath::new("a/b.bin").unwrap().as_str(), "a/b.bin");
        // The signature format's old rules let these through; the one type refuses them.
        for (bad, reason) in [
            ("C:x", "starts with a drive letter"),
            ("c:/x", "starts with a drive letter"),
            ("a\nb", "contains a control character"),
            ("tab\there", "contains a control character"),
            ("esc\u{1b}[31m", "contains a control character"),
            ("del\u{7f}", "contains a control character"),
            ("a/../b", "contains a '..' component"),
        ] {
            assert_eq!(ModelPath::new(bad), Err(reason), "{bad:?}");
        }
    }

    #[test]
    fn sorts_by_segments() {
        let mut v = vec!["a.txt", "a-b", "a/b", "b", "a/a/z"];
        v.sort_by(|a, b| compare(a, b));
        assert_eq!(v, ["a/a/z", "a/b", "a-b", "a.txt", "b"]);
        let mut p: Vec<ModelPath> = v.iter().rev().map(|s| ModelPath::new(s).unwrap()).collect();
        p.sort();
        assert_eq!(p.iter().map(|p| p.as_str()).collect::<Vec<_>>(), v);
    }
}

#[cfg(test)]
mod debug_tests {
    use super::ModelPath;

    #[test]
    fn a_model_path_debugs_as_its_quoted_path() {
        let p = ModelPath::new("tokenizer/vocab.txt").unwrap();
        assert_eq!(format!("{p:?}"), "\"tokenizer/vocab.txt\"");
        assert_eq!(format!("file {p:?}"), "file \"tokenizer/vocab.txt\"");
    }
}
