//! Copy an artifact between stores: its blobs (streamed from the source through a verified
//! reader, skipped when the destination has them), its manifest with the exact same bytes (so
//! the digest is preserved), and optionally its referrers (signatures, attestations) and their
//! referrers, recursively. Each blob, child manifest and referrer is visited once, however
//! often it is listed.

use super::*;
use crate::progress::SharedReporter;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use tokio::io::ReadBuf;

/// How deep referrers of referrers are followed.
const MAX_REFERRER_DEPTH: usize = 4;
/// Manifest lists nest at most this deep.
const MAX_INDEX_DEPTH: usize = 4;
/// Progress is reported in steps of at least this many bytes (keeps reporting cheap).
pub(crate) const PROGRESS_STEP: u64 = 256 * 1024;

#[derive(Clone)]
pub struct CopyOptions {
    /// Blobs transferred at once.
    pub concurrency: usize,
    /// Also copy referrers (signatures, attestations), recursively.
    pub referrers: bool,
    pub reporter: SharedReporter,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            concurrency: 4,
            referrers: true,
            reporter: crate::progress::silent(),
        }
    }
}

/// What a copy did.
#[derive(Clone, Debug)]
pub struct CopyReport {
    /// The manifest as stored in the destination (same digest as in the source).
    pub manifest: Descriptor,
    /// Distinct blobs the artifact (and copied referrers) use.
    pub blobs: usize,
    /// Blobs actually transferred (the rest were already in the destination).
    pub blobs_copied: usize,
    /// Bytes transferred.
    pub bytes_copied: u64,
    /// Referrers copied (at any depth).
    pub referrers: Vec<Descriptor>,
}

/// Copy the manifest `reference` (tag or digest) of `src` and everything it needs into `dst`,
/// pointing `tag` at it when given.
pub async fn copy(
    src: &dyn Store,
    reference: &str,
    dst: &dyn Store,
    tag: Option<&str>,
    options: &CopyOptions,
) -> Result<CopyReport> {
    let raw = src.fetch_manifest(reference).await?;
    let report = CopyReport {
        manifest: Descriptor::new(
            raw.descriptor.media_type.clone(),
            raw.descriptor.digest.clone(),
            raw.descriptor.size,
        ),
        blobs: 0,
        blobs_copied: 0,
        bytes_copied: 0,
        referrers: Vec::new(),
    };
    let mut copier = Copier {
        src,
        dst,
        options,
        report,
        seen_blobs: HashSet::new(),
        seen_manifests: HashSet::new(),
        visited: HashSet::new(),
    };
    copier.dependencies(&raw, 0).await?;
    dst.push_manifest(raw.bytes.clone(), &raw.descriptor.media_type, tag)
        .await?;
    if options.referrers {
        let subject = copier.report.manifest.clone();
        copier.visited.insert(subject.digest.clone());
        copier.referrers(&subject, 0).await?;
    }
    Ok(copier.report)
}

/// One copy's stores, options and what it has done so far.
struct Copier<'a> {
    src: &'a dyn Store,
    dst: &'a dyn Store,
    options: &'a CopyOptions,
    report: CopyReport,
    /// Blobs already counted (and copied when needed).
    seen_blobs: HashSet<Digest>,
    /// Child manifests of indexes already copied (with what they point at).
    seen_manifests: HashSet<Digest>,
    /// Referrers already copied.
    visited: HashSet<Digest>,
}

impl Copier<'_> {
    /// Copy what a manifest points at: config + layers, or (for an index) the child manifests.
    async fn dependencies(&mut self, raw: &RawManifest, depth: usize) -> Result<()> {
        let (src, dst, options) = (self.src, self.dst, self.options);
        let media_type = raw.descriptor.media_type.as_str();
        if media_type == crate::media_types::OCI_INDEX
            || media_type == crate::media_types::DOCKER_MANIFEST_LIST
        {
            if depth >= MAX_INDEX_DEPTH {
                return Err(StoreError::invalid(
                    format!("index {}", raw.descriptor.digest),
                    "image indexes nested too deeply",
                ));
            }
            let index: ImageIndex = serde_json::from_slice(&raw.bytes).map_err(|e| {
                StoreError::invalid(format!("index {}", raw.descriptor.digest), e.to_string())
            })?;
            for child in &index.manifests {
                // An index may list one child many times, at any depth: each once.
                if !self.seen_manifests.insert(child.digest.clone()) {
                    continue;
                }
                let child_raw = src.fetch_manifest(child.digest.as_str()).await?;
                Box::pin(self.dependencies(&child_raw, depth + 1)).await?;
                dst.push_manifest(child_raw.bytes.clone(), &child.media_type, None)
                    .await?;
            }
            return Ok(());
        }
        let manifest = raw.image_manifest()?;
        let seen_blobs = &mut self.seen_blobs;
        let blobs: Vec<Descriptor> = std::iter::once(manifest.config)
            .chain(manifest.layers)
            .filter(|d| seen_blobs.insert(d.digest.clone()))
            .collect();
        self.report.blobs += blobs.len();
        let results: Vec<Option<u64>> = futures::stream::iter(blobs)
            .map(|d| copy_blob(src, dst, d, options))
            .buffer_unordered(options.concurrency.max(1))
            .try_collect()
            .await?;
        for r in results.into_iter().flatten() {
            self.report.blobs_copied += 1;
            self.report.bytes_copied += r;
        }
        Ok(())
    }

    /// Copy the referrers of `subject` (and theirs, down to [`MAX_REFERRER_DEPTH`]).
    async fn referrers(&mut self, subject: &Descriptor, depth: usize) -> Result<()> {
        if depth >= MAX_REFERRER_DEPTH {
            return Ok(());
        }
        let list = self.src.referrers(subject, None).await?;
        for r in list {
            if !self.visited.insert(r.digest.clone()) {
                continue;
            }
            let raw = self.src.fetch_manifest(r.digest.as_str()).await?;
            self.dependencies(&raw, 0).await?;
            self.dst.push_referrer(raw.bytes.clone(), subject).await?;
            let referrer = Descriptor {
                artifact_type: r.artifact_type.clone(),
                annotations: r.annotations.clone(),
                ..Descriptor::new(
                    raw.descriptor.media_type.clone(),
                    r.digest.clone(),
                    raw.bytes.len() as u64,
                )
            };
            self.report.referrers.push(referrer.clone());
            let plain = Descriptor::new(referrer.media_type, referrer.digest, referrer.size);
            Box::pin(self.referrers(&plain, depth + 1)).await?;
        }
        Ok(())
    }
}

/// Copy one blob; `Some(bytes)` when transferred, `None` when the destination had it.
async fn copy_blob(
    src: &dyn Store,
    dst: &dyn Store,
    descriptor: Descriptor,
    options: &CopyOptions,
) -> Result<Option<u64>> {
    let name = descriptor
        .annotation(crate::media_types::ANNOTATION_TITLE)
        .map(str::to_string)
        .unwrap_or_else(|| short_digest(&descriptor.digest));
    let id = options.reporter.start(&name, descriptor.size);
    // Two repositories of one registry: ask it to mount the blob instead of sending it.
    if let (Some(from), Some(to)) = (src.mount(), dst.mount()) {
        let ((src_base, src_repo), (dst_base, dst_repo)) =
            (from.registry_repository(), to.registry_repository());
        if src_base == dst_base
            && src_repo != dst_repo
            && to.mount_blob(&descriptor.digest, &src_repo).await?
        {
            options.reporter.finish(id, true);
            return Ok(None);
        }
    }
    let source = StoreBlobSource::new(src, descriptor, options.reporter.clone(), id);
    let result = dst.push_blob(&source).await;
    let opened = source.opened.load(Ordering::Relaxed);
    options.reporter.finish(id, !opened);
    match result {
        Ok((_, size)) => Ok(opened.then_some(size)),
        // Prefer the source's integrity failure over however the destination reported it.
        Err(e) => Err(source.take_failure().unwrap_or(e)),
    }
}

fn short_digest(d: &Digest) -> String {
    format!("sha256:{}", &d.hex()[..12])
}

/// A blob read from another store, checked for digest and size while it streams, reporting
/// progress. Its digest is known, so the destination skips it when it already has it.
pub struct StoreBlobSource<'a> {
    store: &'a dyn Store,
    descriptor: Descriptor,
    reporter: SharedReporter,
    progress_id: u64,
    opened: AtomicBool,
    failure: std::sync::Arc<Mutex<Option<StoreError>>>,
}

impl<'a> StoreBlobSource<'a> {
    pub fn new(
        store: &'a dyn Store,
        descriptor: Descriptor,
        reporter: SharedReporter,
        progress_id: u64,
    ) -> Self {
        StoreBlobSource {
            store,
            descriptor,
            reporter,
            progress_id,
            opened: AtomicBool::new(false),
            failure: Default::default(),
        }
    }

    /// The integrity failure seen while reading the source, if any.
    pub fn take_failure(&self) -> Option<StoreError> {
        self.failure.lock().ok()?.take()
    }
}

#[async_trait]
impl BlobSource for StoreBlobSource<'_> {
    fn size(&self) -> u64 {
        self.descriptor.size
    }
    fn known_digest(&self) -> Option<Digest> {
        Some(self.descriptor.digest.clone())
    }
    fn describe(&self) -> String {
        format!(
            "blob {} from {}",
            self.descriptor.digest,
            self.store.location()
        )
    }
    async fn open(&self) -> Result<BoxReader> {
        self.opened.store(true, Ordering::Relaxed);
        let reader = fetch_blob_verified(self.store, &self.descriptor, &self.describe()).await?;
        let reader = CaptureFailure {
            inner: reader,
            slot: self.failure.clone(),
        };
        Ok(Box::pin(ProgressReader::new(
            reader,
            self.reporter.clone(),
            self.progress_id,
        )))
    }
}

/// Keeps a copy of an integrity failure so it survives however the consumer wraps the error.
struct CaptureFailure<R> {
    inner: R,
    slot: std::sync::Arc<Mutex<Option<StoreError>>>,
}

impl<R: AsyncRead + Unpin> AsyncRead for CaptureFailure<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if e.get_ref().is_some_and(|i| i.is::<StoreError>()) => {
                let err = verified::unwrap_io_error(e);
                if let Some(copy) = clone_integrity(&err) {
                    if let Ok(mut slot) = self.slot.lock() {
                        *slot = Some(copy);
                    }
                }
                Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, err)))
            }
            other => other,
        }
    }
}

/// A copy of an integrity error (the others carry non-clonable sources).
pub fn clone_integrity(e: &StoreError) -> Option<StoreError> {
    match e {
        StoreError::DigestMismatch {
            what,
            expected,
            actual,
        } => Some(StoreError::DigestMismatch {
            what: what.clone(),
            expected: expected.clone(),
            actual: actual.clone(),
        }),
        StoreError::SizeMismatch {
            what,
            expected,
            actual,
        } => Some(StoreError::SizeMismatch {
            what: what.clone(),
            expected: *expected,
            actual: *actual,
        }),
        _ => None,
    }
}

/// Reports bytes read to a progress [`crate::progress::Reporter`], in steps of at least
/// 256 KiB so that reporting stays cheap.
pub struct ProgressReader<R> {
    inner: R,
    reporter: SharedReporter,
    id: u64,
    pending: u64,
}

impl<R> ProgressReader<R> {
    pub fn new(inner: R, reporter: SharedReporter, id: u64) -> Self {
        ProgressReader {
            inner,
            reporter,
            id,
            pending: 0,
        }
    }
    fn flush(&mut self) {
        if self.pending > 0 {
            self.reporter.advance(self.id, self.pending);
            self.pending = 0;
        }
    }
}

impl<R> Drop for ProgressReader<R> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ProgressReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let n = (buf.filled().len() - before) as u64;
            self.pending += n;
            if n == 0 || self.pending >= PROGRESS_STEP {
                self.flush();
            }
        }
        res
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media_types as mt;
    use crate::store::memory::MemoryStore;
    use std::sync::atomic::{AtomicU64, AtomicUsize};

    /// A memory store that counts manifest reads and blob fetches, and can list each referrer
    /// several times (as a hostile registry may).
    pub(crate) struct Counting {
        pub inner: MemoryStore,
        pub manifest_reads: AtomicUsize,
        pub blob_fetches: AtomicUsize,
        pub referrer_copies: usize,
    }

    impl Counting {
        pub fn new(inner: MemoryStore) -> Self {
            Counting {
                inner,
                manifest_reads: AtomicUsize::new(0),
                blob_fetches: AtomicUsize::new(0),
                referrer_copies: 1,
            }
        }
    }

    #[async_trait::async_trait]
    impl Store for Counting {
        fn location(&self) -> String {
            self.inner.location()
        }
        async fn resolve_reference(&self, r: &Reference) -> Result<Descriptor> {
            self.inner.resolve_reference(r).await
        }
        async fn read_manifest(&self, r: &Reference) -> Result<RawManifest> {
            self.manifest_reads.fetch_add(1, Ordering::Relaxed);
            self.inner.read_manifest(r).await
        }
        async fn write_manifest(
            &self,
            m: &SizedManifest,
            t: &str,
            tag: Option<&Tag>,
        ) -> Result<()> {
            self.inner.write_manifest(m, t, tag).await
        }
        async fn write_referrer(&self, r: &Referrer) -> Result<()> {
            self.inner.write_referrer(r).await
        }
        async fn blob_exists(&self, d: &Digest) -> Result<bool> {
            self.inner.blob_exists(d).await
        }
        async fn fetch_blob_raw(&self, d: &Descriptor) -> Result<BoxReader> {
            self.blob_fetches.fetch_add(1, Ordering::Relaxed);
            self.inner.fetch_blob_raw(d).await
        }
        async fn push_blob(&self, s: &dyn BlobSource) -> Result<(Digest, u64)> {
            self.inner.push_blob(s).await
        }
        async fn referrers(&self, s: &Descriptor, a: Option<&str>) -> Result<Vec<Descriptor>> {
            let list = self.inner.referrers(s, a).await?;
            Ok(list
                .iter()
                .flat_map(|d| std::iter::repeat_n(d.clone(), self.referrer_copies))
                .collect())
        }
        async fn list_tags(&self) -> Result<Vec<String>> {
            self.inner.list_tags().await
        }
    }

    #[tokio::test]
    async fn an_index_listing_one_child_many_times_fetches_it_once() {
        let src = MemoryStore::new("src");
        let (leaf, _) = sample(&src).await;
        // Three levels, each listing the level below 20 times: 8,421 reads naively (300 times
        // is 27 million: a copy that never ends).
        let mut child = leaf.clone();
        for level in 0..3 {
            let index = ImageIndex {
                manifests: vec![child.clone(); 20],
                ..ImageIndex::new()
            };
            let bytes = serde_json::to_vec(&index).unwrap();
            child = src
                .push_manifest(
                    Bytes::from(bytes),
                    mt::OCI_INDEX,
                    (level == 2).then_some("top"),
                )
                .await
                .unwrap();
        }
        let src = Counting::new(src);
        let dst = MemoryStore::new("dst");
        let options = CopyOptions {
            referrers: false,
            ..Default::default()
        };
        let report = copy(&src, "top", &dst, Some("top"), &options)
            .await
            .unwrap();
        assert_eq!(report.manifest.digest, child.digest);
        // The top index, then each of the three children once.
        assert_eq!(src.manifest_reads.load(Ordering::Relaxed), 4);
        assert!(dst.fetch_manifest(leaf.digest.as_str()).await.is_ok());
    }

    async fn sample(store: &MemoryStore) -> (Descriptor, Vec<Digest>) {
        let mut layers = Vec::new();
        let mut digests = Vec::new();
        for content in [&b"layer one"[..], b"layer two", b""] {
            let (d, n) = store
                .push_blob(&BytesSource(Bytes::copy_from_slice(content)))
                .await
                .unwrap();
            digests.push(d.clone());
            layers.push(Descriptor::new(mt::MODEL_WEIGHT, d, n));
        }
        store
            .push_blob(&BytesSource(Bytes::from_static(b"{}")))
            .await
            .unwrap();
        let m = ImageManifest {
            artifact_type: Some(mt::MODEL_ARTIFACT.into()),
            ..ImageManifest::new(Descriptor::empty(), layers)
        };
        let desc = store
            .push_manifest(Bytes::from(m.to_bytes()), mt::OCI_MANIFEST, Some("v1"))
            .await
            .unwrap();
        (desc, digests)
    }

    async fn add_referrer(store: &MemoryStore, subject: &Descriptor, n: u32) -> Descriptor {
        let (d, size) = store
            .push_blob(&BytesSource(Bytes::from(format!("bundle {n}"))))
            .await
            .unwrap();
        let m = ImageManifest {
            artifact_type: Some(mt::SIGSTORE_BUNDLE_V03.into()),
            subject: Some(subject.clone()),
            ..ImageManifest::new(
                Descriptor::empty(),
                vec![Descriptor::new(mt::SIGSTORE_BUNDLE_V03, d, size)],
            )
        };
        store
            .push_referrer(Bytes::from(m.to_bytes()), subject)
            .await
            .unwrap()
    }

    struct Count(AtomicU64);
    impl crate::progress::Reporter for Count {
        fn start(&self, _: &str, _: u64) -> u64 {
            0
        }
        fn advance(&self, _: u64, n: u64) {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
        fn finish(&self, _: u64, _: bool) {}
    }

    #[tokio::test]
    async fn copies_blobs_manifest_and_referrers_preserving_digests() {
        let src = MemoryStore::new("src");
        let (subject, _) = sample(&src).await;
        let sig = add_referrer(&src, &subject, 1).await;
        let sig_of_sig = add_referrer(
            &src,
            &Descriptor::new(mt::OCI_MANIFEST, sig.digest.clone(), sig.size),
            2,
        )
        .await;

        let dst = MemoryStore::new("dst");
        let count = std::sync::Arc::new(Count(AtomicU64::new(0)));
        let options = CopyOptions {
            reporter: count.clone(),
            ..Default::default()
        };
        let report = copy(&src, "v1", &dst, Some("copied"), &options)
            .await
            .unwrap();
        assert_eq!(report.manifest.digest, subject.digest);
        assert_eq!(dst.resolve("copied").await.unwrap().digest, subject.digest);
        let got: Vec<Digest> = report.referrers.iter().map(|d| d.digest.clone()).collect();
        assert_eq!(got, vec![sig.digest.clone(), sig_of_sig.digest.clone()]);
        assert_eq!(dst.referrers(&subject, None).await.unwrap().len(), 1);
        // config + 3 layers, then bundle layers (the empty config is shared).
        assert_eq!(report.blobs, 6);
        assert_eq!(report.blobs_copied, 6);
        assert_eq!(count.0.load(Ordering::Relaxed), report.bytes_copied);

        // A second copy transfers nothing.
        let before = dst.uploads();
        let again = copy(
            &src,
            subject.digest.as_str(),
            &dst,
            None,
            &CopyOptions::default(),
        )
        .await
        .unwrap();
        assert_eq!(again.blobs_copied, 0);
        assert_eq!(dst.uploads(), before);
    }

    #[tokio::test]
    async fn without_referrers_copies_only_the_artifact() {
        let src = MemoryStore::new("src");
        let (subject, _) = sample(&src).await;
        add_referrer(&src, &subject, 1).await;
        let dst = MemoryStore::new("dst");
        let options = CopyOptions {
            referrers: false,
            ..Default::default()
        };
        let report = copy(&src, "v1", &dst, Some("v1"), &options).await.unwrap();
        assert!(report.referrers.is_empty());
        assert!(dst.referrers(&subject, None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn corrupted_source_blob_fails_naming_both_digests() {
        let src = MemoryStore::new("src");
        let (_, digests) = sample(&src).await;
        src.corrupt_blob(&digests[1], Bytes::from_static(b"layer twO"));
        let dst = MemoryStore::new("dst");
        let err = copy(&src, "v1", &dst, Some("v1"), &CopyOptions::default())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{msg}");
        assert!(msg.contains(digests[1].as_str()), "{msg}");
        assert!(msg.contains(Digest::of(b"layer twO").as_str()), "{msg}");
        assert!(!dst.blob_exists(&digests[1]).await.unwrap());
        assert!(dst.resolve("v1").await.is_err());
    }
}
