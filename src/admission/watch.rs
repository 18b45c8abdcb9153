//! Noticing that mounted files changed: the serving certificate and key ([`super::server`])
//! and the policy file ([`super::verifier`]) are read again when their stamp changes.

use std::path::Path;
use std::time::SystemTime;

/// What identifies a version of some files: modification time, size and inode of each (a
/// Kubernetes secret or ConfigMap volume swaps a symlink, which changes the inode); `None` for
/// a file that cannot be read now.
pub type Stamp = Vec<Option<(SystemTime, u64, u64)>>;

/// The stamp of `files` now.
pub fn stamp(files: &[&Path]) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f).ok().map(|m| {
                (
                    m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    m.len(),
                    m.ino(),
                )
            })
        })
        .collect()
}
