//! Positive verification results, by repository and manifest digest: bounded, each entry
//! kept for a fixed time. Only successes are cached (a failure is checked again next time, so
//! a signature attached later is seen at once); tags are not cached at all (a tag is resolved
//! to its digest on every request, so a moved tag is never served from here).

use crate::digest::Digest;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a verification established, kept for the next request of the same digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The signers that satisfied the policy, as the report names them.
    pub signers: Vec<String>,
}

struct Entry {
    stored: Instant,
    verified: Verified,
}

/// A bounded map with a time to live. When full, expired entries go first, then the oldest.
pub struct VerifiedCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

fn key(repository: &str, digest: &Digest) -> String {
    format!("{repository}@{digest}")
}

impl VerifiedCache {
    /// `capacity` 0 caches nothing; `ttl` 0 likewise.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        VerifiedCache {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached result for `repository@digest`, if verified less than the TTL ago.
    pub fn get(&self, repository: &str, digest: &Digest) -> Option<Verified> {
        let mut entries = self.entries();
        let k = key(repository, digest);
        match entries.get(&k) {
            Some(e) if e.stored.elapsed() < self.ttl => Some(e.verified.clone()),
            Some(_) => {
                entries.remove(&k);
                None
            }
            None => None,
        }
    }

    /// Remember a successful verification.
    pub fn insert(&self, repository: &str, digest: &Digest, verified: Verified) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries();
        let k = key(repository, digest);
        if !entries.contains_key(&k) && entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, e| e.stored.elapsed() < ttl);
            while entries.len() >= self.capacity {
                let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.stored)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                entries.remove(&oldest);
            }
        }
        entries.insert(
            k,
            Entry {
                stored: Instant::now(),
                verified,
            },
        );
    }

    /// Forget every entry (the policy they were verified against changed).
    pub fn clear(&self) {
        self.entries().clear();
    }

    /// Entries held now (expired ones included until they are next looked at).
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn v() -> Verified {
        Verified {
            signers: vec!["key a".into()],
        }
    }

    #[test]
    fn bounded_oldest_goes_first() {
        let c = VerifiedCache::new(Duration::from_secs(60), 2);
        c.insert("r/a", &d(1), v());
        std::thread::sleep(Duration::from_millis(2));
        c.insert("r/a", &d(2), v());
        c.insert("r/a", &d(3), v());
        assert_eq!(c.len(), 2);
        assert!(c.get("r/a", &d(1)).is_none());
        assert!(c.get("r/a", &d(2)).is_some() && c.get("r/a", &d(3)).is_some());
    }

    #[test]
    fn entries_expire_and_are_per_repository() {
        let c = VerifiedCache::new(Duration::from_millis(30), 8);
        c.insert("r/a", &d(1), v());
        assert!(
            c.get("r/b", &d(1)).is_none(),
            "another repository, another rule"
        );
        assert_eq!(c.get("r/a", &d(1)), Some(v()));
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.get("r/a", &d(1)).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let c = VerifiedCache::new(Duration::from_secs(60), 0);
        c.insert("r/a", &d(1), v());
        assert!(c.get("r/a", &d(1)).is_none());
    }
}
