//! An in-memory store for tests: blobs, manifests, tags and referrers in hash maps behind a
//! mutex, with the same semantics as the other stores (content addressed, digests checked on
//! upload, referrers found by `subject`). Holds whole blobs in memory: never use it for models
//! outside tests.

use super::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::io::AsyncReadExt;

#[derive(Default)]
struct Inner {
    blobs: HashMap<Digest, Bytes>,
    /// digest → (media type, bytes), in push order for stable referrer listings.
    manifests: Vec<(Digest, String, Bytes)>,
    tags: BTreeMap<String, Digest>,
}

/// See the module documentation.
#[derive(Default)]
pub struct MemoryStore {
    name: String,
    inner: Mutex<Inner>,
    uploads: AtomicUsize,
}

impl MemoryStore {
    pub fn new(name: impl Into<String>) -> Self {
        MemoryStore {
            name: name.into(),
            ..Default::default()
        }
    }

    /// How many blob uploads actually transferred content (existing blobs are skipped).
    pub fn uploads(&self) -> usize {
        self.uploads.load(Ordering::Relaxed)
    }

    /// Replace the content of a blob or manifest (tests of corrupted storage).
    pub fn corrupt_blob(&self, digest: &Digest, content: Bytes) {
        let mut inner = self.lock();
        for (d, _, bytes) in inner.manifests.iter_mut() {
            if d == digest {
                *bytes = content.clone();
            }
        }
        inner.blobs.insert(digest.clone(), content);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn manifest(&self, digest: &Digest) -> Option<(String, Bytes)> {
        self.lock()
            .manifests
            .iter()
            .find(|(d, _, _)| d == digest)
            .map(|(_, m, b)| (m.clone(), b.clone()))
    }

    fn not_found(&self, what: String) -> StoreError {
        StoreError::NotFound {
            what,
            location: self.location(),
        }
    }

    fn insert_manifest(&self, bytes: &Bytes, media_type: &str) -> Digest {
        let digest = Digest::of(bytes);
        let mut inner = self.lock();
        if !inner.manifests.iter().any(|(d, _, _)| d == &digest) {
            inner
                .manifests
                .push((digest.clone(), media_type.to_string(), bytes.clone()));
        }
        digest
    }
}

#[async_trait]
impl Store for MemoryStore {
    fn location(&self) -> String {
        format!("memory:{}", self.name)
    }

    async fn resolve_reference(&self, reference: &Reference) -> Result<Descriptor> {
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => self
                .lock()
                .tags
                .get(t.as_str())
                .cloned()
                .ok_or_else(|| self.not_found(format!("tag {:?}", t.as_str())))?,
        };
        let (media_type, bytes) = self
            .manifest(&digest)
            .ok_or_else(|| self.not_found(format!("manifest {digest}")))?;
        Ok(Descriptor::new(media_type, digest, bytes.len() as u64))
    }

    async fn read_manifest(&self, reference: &Reference) -> Result<RawManifest> {
        let descriptor = self.resolve_reference(reference).await?;
        let (_, bytes) = self
            .manifest(&descriptor.digest)
            .ok_or_else(|| self.not_found(format!("manifest {}", descriptor.digest)))?;
        Ok(RawManifest { descriptor, bytes })
    }

    async fn write_manifest(
        &self,
        manifest: &SizedManifest,
        media_type: &str,
        tag: Option<&Tag>,
    ) -> Result<()> {
        let digest = self.insert_manifest(manifest.bytes(), media_type);
        if let Some(tag) = tag {
            self.lock().tags.insert(tag.as_str().to_string(), digest);
        }
        Ok(())
    }

    async fn write_referrer(&self, referrer: &Referrer) -> Result<()> {
        self.insert_manifest(referrer.bytes(), &referrer.descriptor().media_type);
        Ok(())
    }

    async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        Ok(self.lock().blobs.contains_key(digest))
    }

    async fn fetch_blob_raw(&self, descriptor: &Descriptor) -> Result<BoxReader> {
        let bytes = self
            .lock()
            .blobs
            .get(&descriptor.digest)
            .cloned()
            .ok_or_else(|| self.not_found(format!("blob {}", descriptor.digest)))?;
        Ok(Box::pin(std::io::Cursor::new(bytes)))
    }

    async fn fetch_blob_from(&self, descriptor: &Descriptor, offset: u64) -> Result<RangedChunks> {
        let bytes = self
            .lock()
            .blobs
            .get(&descriptor.digest)
            .cloned()
            .ok_or_else(|| self.not_found(format!("blob {}", descriptor.digest)))?;
        // Like a registry that ignores a range it cannot serve: the whole blob.
        let start = if offset as usize <= bytes.len() {
            offset
        } else {
            0
        };
        let rest = bytes.slice(start as usize..);
        Ok(RangedChunks {
            start,
            chunks: Box::pin(futures::stream::iter([Ok(rest)])),
        })
    }

    async fn push_blob(&self, source: &dyn BlobSource) -> Result<(Digest, u64)> {
        let size = source.size();
        if let Some(d) = source.known_digest() {
            if self.lock().blobs.contains_key(&d) {
                return Ok((d, size));
            }
        }
        let mut check = verified::BlobCheck::upload(size, source.known_digest(), source.describe());
        let mut buf = Vec::new();
        source
            .open()
            .await?
            .read_to_end(&mut buf)
            .await
            .map_err(verified::unwrap_io_error)?;
        check.update(&buf)?;
        let digest = check.finish()?;
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.lock().blobs.insert(digest.clone(), Bytes::from(buf));
        Ok((digest, size))
    }

    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let manifests = self.lock().manifests.clone();
        let mut out = Vec::new();
        for (_, _, bytes) in manifests {
            out.extend(super::referrers::descriptor_if_referrer(
                &bytes,
                &subject.digest,
                artifact_type,
            ));
        }
        Ok(out)
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        Ok(self.lock().tags.keys().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn skips_known_blobs_and_checks_digests() {
        let store = MemoryStore::new("t");
        let src = BytesSource(Bytes::from_static(b"abc"));
        store.push_blob(&src).await.unwrap();
        store.push_blob(&src).await.unwrap();
        assert_eq!(store.uploads(), 1);
        let desc = Descriptor::new("x", Digest::of(b"abc"), 3);
        let bytes = fetch_small_blob(&store, &desc, "blob", 10).await.unwrap();
        assert_eq!(&bytes[..], b"abc");
        store.corrupt_blob(&desc.digest, Bytes::from_static(b"abd"));
        let err = fetch_small_blob(&store, &desc, "blob", 10)
            .await
            .unwrap_err();
        assert!(err.is_integrity(), "{err}");
    }
}
