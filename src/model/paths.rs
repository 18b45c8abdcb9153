//! Model file paths: `/`-separated, relative to the model root. The same rules apply on push
//! (so we never produce an artifact that pull would refuse) and on pull (so a hostile manifest
//! cannot write outside the target directory).

use std::cmp::Ordering;

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
    fn sorts_by_segments() {
        let mut v = vec!["a.txt", "a-b", "a/b", "b", "a/a/z"];
        v.sort_by(|a, b| compare(a, b));
        assert_eq!(v, ["a/a/z", "a/b", "a-b", "a.txt", "b"]);
    }
}
