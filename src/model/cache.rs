//! A small local cache of file digests keyed by (path, device, inode, size, mtime, ctime), so a
//! re-push of a multi-GB model neither re-hashes nor re-uploads: with the digest known up
//! front, the store can ask the registry whether it has the blob (HEAD) and skip it.
//!
//! The key includes the inode change time, which no user-level tool can set back, so a file
//! rewritten in place is never mistaken for its old content. A wrong entry could still only
//! cause an upload whose digest check fails (the store hashes what it sends); the caller then
//! retries without the cache. The file is one JSON document written atomically (temp file +
//! rename); concurrent processes merge on save, last writer wins per entry.
//!
//! Each entry also remembers a few registry repositories known to hold the file's blob (it was
//! pushed there or pulled from there), so that a push to another repository of the same
//! registry can ask for a cross-repository mount instead of sending the bytes again.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const FILE_NAME: &str = "digests.json";
/// Held (an exclusive lock) while a process reads, merges and writes the cache file.
const LOCK_NAME: &str = "digests.lock";
const VERSION: u32 = 1;
/// Entries kept (least recently used dropped first).
const MAX_ENTRIES: usize = 50_000;
/// Repositories remembered per file (most recent first).
const MAX_HOMES: usize = 4;

/// A repository of a registry known to hold a blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobHome {
    /// The registry's API base URL (scheme and host), as the store reports it.
    pub registry: String,
    pub repository: String,
}

/// The identity of a file's content as the filesystem reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub ctime: i64,
    pub ctime_nsec: i64,
}

impl FileKey {
    #[cfg(unix)]
    pub fn from_metadata(m: &std::fs::Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        Some(FileKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            ctime: m.ctime(),
            ctime_nsec: m.ctime_nsec(),
        })
    }
    #[cfg(not(unix))]
    pub fn from_metadata(_m: &std::fs::Metadata) -> Option<Self> {
        None
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    key: FileKey,
    digest: Digest,
    /// Unix seconds of the last use (for pruning).
    used: u64,
    /// Where the blob is known to be (most recent first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    homes: Vec<BlobHome>,
}

#[derive(Default, Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: BTreeMap<String, Entry>,
}

/// See the module documentation.
pub struct DigestCache {
    dir: PathBuf,
    entries: Mutex<BTreeMap<String, Entry>>,
    /// Paths whose entries changed in this process.
    touched: Mutex<BTreeMap<String, Option<Entry>>>,
}

/// The repository `store` is, when it is one of a registry.
pub fn home_of(store: &dyn crate::store::Store) -> Option<BlobHome> {
    store
        .mount()
        .map(|m| m.registry_repository())
        .map(|(registry, repository)| BlobHome {
            registry,
            repository,
        })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn path_key(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    abs.to_string_lossy().into_owned()
}

fn read_file(dir: &Path) -> BTreeMap<String, Entry> {
    let path = dir.join(FILE_NAME);
    let Ok(bytes) = std::fs::read(&path) else {
        return BTreeMap::new();
    };
    match serde_json::from_slice::<CacheFile>(&bytes) {
        Ok(f) if f.version == VERSION => f.entries,
        Ok(_) => BTreeMap::new(),
        Err(e) => {
            tracing::debug!("ignoring unreadable digest cache {}: {e}", path.display());
            BTreeMap::new()
        }
    }
}

impl DigestCache {
    /// Load the cache kept in `dir` (empty when missing or unreadable).
    pub fn load(dir: &Path) -> Self {
        DigestCache {
            dir: dir.to_path_buf(),
            entries: Mutex::new(read_file(dir)),
            touched: Mutex::new(BTreeMap::new()),
        }
    }

    /// The digest recorded for the file at `path` if its identity still matches `key`.
    pub fn lookup(&self, path: &Path, key: &FileKey) -> Option<Digest> {
        self.lookup_with_homes(path, key).map(|(d, _)| d)
    }

    /// The digest recorded for the file at `path` if its identity still matches `key`, and the
    /// repositories known to hold that blob.
    pub fn lookup_with_homes(&self, path: &Path, key: &FileKey) -> Option<(Digest, Vec<BlobHome>)> {
        let k = path_key(path);
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get_mut(&k)?;
        if &entry.key != key {
            return None;
        }
        entry.used = now();
        let e = entry.clone();
        drop(entries);
        if let Ok(mut t) = self.touched.lock() {
            t.insert(k, Some(e.clone()));
        }
        Some((e.digest, e.homes))
    }

    /// Record the digest of the file at `path`, and `home` as a repository holding its blob.
    /// The repositories already known are kept when the file's identity and digest are the same.
    pub fn insert(&self, path: &Path, key: FileKey, digest: Digest, home: Option<BlobHome>) {
        let k = path_key(path);
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let mut homes = match entries.get(&k) {
            Some(old) if old.key == key && old.digest == digest => old.homes.clone(),
            _ => Vec::new(),
        };
        if let Some(home) = home {
            homes.retain(|h| *h != home);
            homes.insert(0, home);
            homes.truncate(MAX_HOMES);
        }
        let entry = Entry {
            key,
            digest,
            used: now(),
            homes,
        };
        entries.insert(k.clone(), entry.clone());
        drop(entries);
        if let Ok(mut t) = self.touched.lock() {
            t.insert(k, Some(entry));
        }
    }

    pub fn remove(&self, path: &Path) {
        let k = path_key(path);
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&k);
        }
        if let Ok(mut t) = self.touched.lock() {
            t.insert(k, None);
        }
    }

    /// Write this process's changes, merged into what is on disk now. Atomic (temp + rename).
    pub fn save(&self) -> std::io::Result<()> {
        let touched = match self.touched.lock() {
            Ok(t) if !t.is_empty() => t.clone(),
            _ => return Ok(()),
        };
        std::fs::create_dir_all(&self.dir)?;
        // Processes that save at once (two pushes, a push and a pull) take turns: without the
        // lock, one could read the file before another's rename and write back without its
        // entries. Released when `lock` is dropped, after the rename.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(LOCK_NAME))?;
        lock.lock()?;
        let mut entries = read_file(&self.dir);
        for (k, v) in touched {
            match v {
                Some(e) => entries.insert(k, e),
                None => entries.remove(&k),
            };
        }
        if entries.len() > MAX_ENTRIES {
            let mut by_use: Vec<(u64, String)> =
                entries.iter().map(|(k, e)| (e.used, k.clone())).collect();
            by_use.sort();
            for (_, k) in by_use.into_iter().take(entries.len() - MAX_ENTRIES) {
                entries.remove(&k);
            }
        }
        let body = serde_json::to_vec(&CacheFile {
            version: VERSION,
            entries,
        })
        .map_err(std::io::Error::other)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".digests-")
            .tempfile_in(&self.dir)?;
        std::io::Write::write_all(&mut tmp, &body)?;
        tmp.persist(self.dir.join(FILE_NAME)).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Writes `bytes` to `path`; the file's key as it is now.
    fn write(path: &Path, bytes: &[u8]) -> FileKey {
        std::fs::write(path, bytes).unwrap();
        FileKey::from_metadata(&std::fs::metadata(path).unwrap()).unwrap()
    }

    /// A temporary directory holding `w.bin` with `bytes`: the directory, the file, its key and
    /// the cache directory.
    fn setup(bytes: &[u8]) -> (tempfile::TempDir, PathBuf, FileKey, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.bin");
        let key = write(&file, bytes);
        let cache_dir = dir.path().join("cache");
        (dir, file, key, cache_dir)
    }

    #[test]
    fn remembers_digests_until_the_file_changes() {
        let (dir, file, key, cache_dir) = setup(b"one");
        let cache = DigestCache::load(&cache_dir);
        assert_eq!(cache.lookup(&file, &key), None);
        cache.insert(&file, key, Digest::of(b"one"), None);
        cache.save().unwrap();

        let reloaded = DigestCache::load(&cache_dir);
        assert_eq!(reloaded.lookup(&file, &key), Some(Digest::of(b"one")));
        // Same size, rewritten: the ctime (at least) changes.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let key2 = write(&file, b"two");
        assert_ne!(key, key2);
        assert_eq!(reloaded.lookup(&file, &key2), None);

        // Two processes' entries merge on save.
        let other = dir.path().join("o.bin");
        let okey = write(&other, b"o");
        let a = DigestCache::load(&cache_dir);
        a.insert(&other, okey, Digest::of(b"o"), None);
        reloaded.remove(&file);
        reloaded.save().unwrap();
        a.save().unwrap();
        let merged = DigestCache::load(&cache_dir);
        assert_eq!(merged.lookup(&other, &okey), Some(Digest::of(b"o")));
        assert_eq!(merged.lookup(&file, &key), None);
    }

    #[test]
    fn saves_at_the_same_time_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("cache");
        let n = 16;
        let start = std::sync::Arc::new(std::sync::Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let (dir, cache_dir, start) =
                    (dir.path().to_path_buf(), cache_dir.clone(), start.clone());
                std::thread::spawn(move || {
                    let file = dir.join(format!("f{i}"));
                    let key = write(&file, i.to_string().as_bytes());
                    // Each as its own process would: loaded before any other saved.
                    let cache = DigestCache::load(&cache_dir);
                    cache.insert(&file, key, Digest::of(i.to_string().as_bytes()), None);
                    start.wait();
                    cache.save().unwrap();
                    (file, key)
                })
            })
            .collect();
        let saved: Vec<(PathBuf, FileKey)> =
            threads.into_iter().map(|t| t.join().unwrap()).collect();
        let merged = DigestCache::load(&cache_dir);
        for (i, (file, key)) in saved.iter().enumerate() {
            assert_eq!(
                merged.lookup(file, key),
                Some(Digest::of(i.to_string().as_bytes())),
                "entry {i} lost"
            );
        }
    }

    #[test]
    fn unreadable_cache_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let cache = DigestCache::load(dir.path());
        let key = FileKey::from_metadata(&std::fs::metadata(dir.path()).unwrap()).unwrap();
        assert_eq!(cache.lookup(dir.path(), &key), None);
    }

    fn home(repo: &str) -> BlobHome {
        BlobHome {
            registry: "http://127.0.0.1:5000/".into(),
            repository: repo.into(),
        }
    }

    #[test]
    fn remembers_the_latest_repositories_holding_a_blob() {
        let (_dir, file, key, cache_dir) = setup(b"w");
        let cache = DigestCache::load(&cache_dir);
        let d = Digest::of(b"w");
        for repo in ["a", "b", "a", "c", "d", "e"] {
            cache.insert(&file, key, d.clone(), Some(home(repo)));
        }
        // A digest-only update (a layout push) keeps them.
        cache.insert(&file, key, d.clone(), None);
        cache.save().unwrap();
        let reloaded = DigestCache::load(&cache_dir);
        let (digest, homes) = reloaded.lookup_with_homes(&file, &key).unwrap();
        assert_eq!(digest, d);
        assert_eq!(homes, vec![home("e"), home("d"), home("c"), home("a")]);
        // Another digest for the file: what was known of the old blob is gone.
        reloaded.insert(&file, key, Digest::of(b"x"), Some(home("z")));
        assert_eq!(
            reloaded.lookup_with_homes(&file, &key).unwrap().1,
            vec![home("z")]
        );
    }

    #[test]
    fn reads_entries_written_without_repositories() {
        let (dir, file, key, _) = setup(b"w");
        let entry = serde_json::json!({
            "version": VERSION,
            "entries": { path_key(&file): { "key": key, "digest": Digest::of(b"w"), "used": 1 } }
        });
        std::fs::write(dir.path().join(FILE_NAME), entry.to_string()).unwrap();
        let cache = DigestCache::load(dir.path());
        assert_eq!(
            cache.lookup_with_homes(&file, &key),
            Some((Digest::of(b"w"), vec![]))
        );
    }
}
