//! Where artifacts live: a registry or an OCI image layout, behind one trait.
//!
//! The store knows blobs, manifests, tags and referrers; it knows nothing of models or
//! signatures. The [`Store`] trait is primitives that take checked forms ([`checked`]: a sized
//! manifest, a referrer whose subject was checked, a valid tag); its provided methods are the
//! one place the rules are applied, for every store alike (`tests/it/store_contract.rs` runs
//! the same tests on each). Optional capabilities (cross-repository [`Mount`]) are discovered
//! with [`Store::mount`]. Every read that names a digest is checked (see [`verified`],
//! [`checked::check_fetched`]); every write is streamed and hashed on the way; transient
//! failures are retried as the one [`retry::RetryPolicy`] says.

pub mod auth;
pub mod checked;
pub mod copy;
pub mod error;
pub mod io;
pub mod layout;
pub mod limits;
pub mod memory;
pub mod oci;
pub mod open;
pub mod referrers;
pub mod registry;
pub mod retry;
pub mod verified;

use crate::digest::Digest;
use async_trait::async_trait;
use bytes::Bytes;
pub use checked::{RawManifest, Reference, Referrer, SizedManifest, Tag};
pub use error::{Result, StoreError};
pub use io::{BoxChunks, BoxReader};
pub use oci::{Annotations, Descriptor, ImageIndex, ImageManifest};
pub use open::open;
use std::path::PathBuf;
use std::pin::Pin;
use tokio::io::AsyncRead;

/// Chunk size when a reader is turned into chunks.
const READER_CHUNK: usize = 256 << 10;

/// Something a blob can be (re)read from: an upload retry starts again from the source.
#[async_trait]
pub trait BlobSource: Send + Sync {
    /// Exact size in bytes.
    fn size(&self) -> u64;
    /// Digest when already known (skips the existence check otherwise impossible).
    fn known_digest(&self) -> Option<Digest> {
        None
    }
    /// Name for messages (file path, digest).
    fn describe(&self) -> String;
    /// A fresh reader from the start.
    async fn open(&self) -> Result<BoxReader>;

    /// A fresh reader from byte `offset` on (an upload continued after `offset` bytes).
    async fn open_at(&self, offset: u64) -> Result<BoxReader> {
        let mut reader = self.open().await?;
        let skipped = tokio::io::copy(
            &mut tokio::io::AsyncReadExt::take(&mut reader, offset),
            &mut tokio::io::sink(),
        )
        .await
        .map_err(|e| StoreError::io(format!("read {}", self.describe()), e))?;
        if skipped != offset {
            return Err(StoreError::SizeMismatch {
                what: self.describe(),
                expected: offset,
                actual: skipped,
            });
        }
        Ok(reader)
    }

    /// What identifies this source across runs (a file's path and identity), so that an
    /// interrupted upload of it can be continued; `None`: never continued.
    fn resume_key(&self) -> Option<String> {
        None
    }
}

/// Open `path` at byte `offset`.
pub async fn open_file_at(path: &std::path::Path, offset: u64) -> Result<tokio::fs::File> {
    use tokio::io::AsyncSeekExt;
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| StoreError::io(format!("open {}", path.display()), e))?;
    f.seek(std::io::SeekFrom::Start(offset))
        .await
        .map_err(|e| StoreError::io(format!("read {}", path.display()), e))?;
    Ok(f)
}

/// A file on disk.
pub struct FileSource {
    pub path: PathBuf,
    pub size: u64,
    pub digest: Option<Digest>,
}

#[async_trait]
impl BlobSource for FileSource {
    fn size(&self) -> u64 {
        self.size
    }
    fn known_digest(&self) -> Option<Digest> {
        self.digest.clone()
    }
    fn describe(&self) -> String {
        self.path.display().to_string()
    }
    async fn open(&self) -> Result<BoxReader> {
        let f = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| StoreError::io(format!("open {}", self.path.display()), e))?;
        Ok(Box::pin(f))
    }
    async fn open_at(&self, offset: u64) -> Result<BoxReader> {
        Ok(Box::pin(open_file_at(&self.path, offset).await?))
    }
    #[cfg(unix)]
    fn resume_key(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&self.path).ok()?;
        Some(format!(
            "{}\n{}:{}:{}:{}.{}:{}.{}",
            self.path.display(),
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        ))
    }
}

/// Small in-memory content (configs, manifests, bundles: never model files).
pub struct BytesSource(pub Bytes);

#[async_trait]
impl BlobSource for BytesSource {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn known_digest(&self) -> Option<Digest> {
        Some(Digest::of(&self.0))
    }
    fn describe(&self) -> String {
        format!("{} bytes in memory", self.0.len())
    }
    async fn open(&self) -> Result<BoxReader> {
        Ok(Box::pin(std::io::Cursor::new(self.0.clone())))
    }
}

/// A place artifacts live. Implemented by the registry client, the OCI layout and (tests) memory.
///
/// Implementors provide the primitives, which take only checked forms (see [`checked`]); the
/// provided methods are the one place that makes those forms and checks what comes back, so
/// every store follows the same rules. Do not override them.
#[async_trait]
pub trait Store: Send + Sync {
    /// Human-readable location, e.g. `localhost:5000/team/bert` or `oci:./layout`.
    fn location(&self) -> String;

    /// Primitive: the manifest descriptor (media type, digest, size) a reference names.
    async fn resolve_reference(&self, reference: &Reference) -> Result<Descriptor>;

    /// Primitive: the manifest a reference names, reading at most
    /// [`crate::media_types::MAX_MANIFEST_SIZE`] bytes (checked by [`Store::fetch_manifest`]).
    async fn read_manifest(&self, reference: &Reference) -> Result<RawManifest>;

    /// Primitive: store manifest bytes exactly as given, by digest, and point `tag` at it.
    async fn write_manifest(
        &self,
        manifest: &SizedManifest,
        media_type: &str,
        tag: Option<&Tag>,
    ) -> Result<()>;

    /// Primitive: store a referrer manifest and make it discoverable as a referrer of its
    /// subject (referrers API, or the fallback tag kept consistent under concurrent writers).
    async fn write_referrer(&self, referrer: &Referrer) -> Result<()>;

    /// Does the store hold this blob?
    async fn blob_exists(&self, digest: &Digest) -> Result<bool>;

    /// A reader over the blob. Unchecked: wrap with [`verified::VerifiedReader`] (or use
    /// [`fetch_blob_verified`]) before trusting it.
    async fn fetch_blob_raw(&self, descriptor: &Descriptor) -> Result<BoxReader>;

    /// The blob as a stream of chunks, unchecked like [`Store::fetch_blob_raw`] (check each
    /// chunk with [`verified::BlobCheck`]). Stores whose transport already delivers chunks
    /// (HTTP bodies) hand them over as they are, with no copy.
    async fn fetch_blob_chunks(&self, descriptor: &Descriptor) -> Result<BoxChunks> {
        let reader = self.fetch_blob_raw(descriptor).await?;
        Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
            reader,
            READER_CHUNK,
        )))
    }

    /// The blob's chunks from byte `offset` on (a download resumed after `offset` bytes were
    /// kept), unchecked like [`Store::fetch_blob_chunks`]. A store that cannot serve part of a
    /// blob sends all of it: [`RangedChunks::start`] says where the chunks begin, and it is
    /// `offset` or 0, never anything else (an answer that starts elsewhere is refused here).
    async fn fetch_blob_from(&self, descriptor: &Descriptor, offset: u64) -> Result<RangedChunks> {
        let _ = offset;
        Ok(RangedChunks {
            start: 0,
            chunks: self.fetch_blob_chunks(descriptor).await?,
        })
    }

    /// Upload a blob, hashing it while it streams. Returns its descriptor's digest and size.
    /// When the source knows its digest and the blob exists already, nothing is sent.
    async fn push_blob(&self, source: &dyn BlobSource) -> Result<(Digest, u64)>;

    /// Manifests whose `subject` is `subject`, optionally filtered by artifact type.
    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>>;

    /// Tags in the repository (used to copy fallback-tag referrers).
    async fn list_tags(&self) -> Result<Vec<String>>;

    /// Cross-repository mounts, when the store can do them (a registry repository).
    fn mount(&self) -> Option<&dyn Mount> {
        None
    }

    /// How transient failures of this store are retried (`--retries`, see
    /// [`StoreOptions::max_attempts`]); code that reads again from the store (a download
    /// restarted from its first byte) follows it too.
    fn retry_policy(&self) -> retry::RetryPolicy {
        retry::RetryPolicy::default()
    }

    /// Resolve a tag or digest to the manifest descriptor (media type, digest, size).
    async fn resolve(&self, reference: &str) -> Result<Descriptor> {
        self.resolve_reference(&Reference::parse(reference)?).await
    }

    /// Fetch a manifest by tag or digest, checked by [`checked::check_fetched`]: within the
    /// size limit, and its bytes hash to the digest asked for and to its descriptor's.
    async fn fetch_manifest(&self, reference: &str) -> Result<RawManifest> {
        let reference = Reference::parse(reference)?;
        let raw = self.read_manifest(&reference).await?;
        checked::check_fetched(&reference, raw, &self.location())
    }

    /// Store manifest bytes exactly as given, by digest, and point `tag` at it if given.
    async fn push_manifest(
        &self,
        bytes: Bytes,
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<Descriptor> {
        let tag = tag.map(Tag::new).transpose()?;
        let manifest = SizedManifest::new("manifest", bytes)?;
        self.write_manifest(&manifest, media_type, tag.as_ref())
            .await?;
        Ok(Descriptor::new(
            media_type,
            manifest.digest().clone(),
            manifest.size(),
        ))
    }

    /// Store a manifest that has a `subject` (it must be `subject`), and make it discoverable
    /// as a referrer of that subject. Returns its referrers-list descriptor.
    async fn push_referrer(
        &self,
        manifest_bytes: Bytes,
        subject: &Descriptor,
    ) -> Result<Descriptor> {
        let referrer = Referrer::new(manifest_bytes, &subject.digest)?;
        self.write_referrer(&referrer).await?;
        Ok(referrer.descriptor().clone())
    }
}

/// See [`Store::fetch_blob_from`]: the chunks of a blob from `start` (the offset asked for, or
/// 0 when the store sent the whole blob) to its end.
pub struct RangedChunks {
    pub start: u64,
    pub chunks: BoxChunks,
}

/// Cross-repository blob mounts (a capability of registry repositories).
#[async_trait]
pub trait Mount: Send + Sync {
    /// `(registry API base URL, repository)`: mounts work between two repositories of one
    /// registry.
    fn registry_repository(&self) -> (String, String);

    /// Make `digest`, held by `from_repository` of the same registry, available here without
    /// sending it. `Ok(false)` when the registry did not mount it (no access to the source):
    /// the caller then uploads as usual.
    async fn mount_blob(&self, digest: &Digest, from_repository: &str) -> Result<bool>;
}

/// Fetch a blob and check its size and digest while reading.
pub async fn fetch_blob_verified(
    store: &dyn Store,
    descriptor: &Descriptor,
    what: &str,
) -> Result<verified::VerifiedReader<BoxReader>> {
    let raw = store.fetch_blob_raw(descriptor).await?;
    Ok(verified::VerifiedReader::new(
        raw,
        descriptor.digest.clone(),
        descriptor.size,
        what.to_string(),
    ))
}

/// Read a small blob (config, bundle) fully into memory, refusing anything over `limit`.
pub async fn fetch_small_blob(
    store: &dyn Store,
    descriptor: &Descriptor,
    what: &str,
    limit: u64,
) -> Result<Bytes> {
    use tokio::io::AsyncReadExt;
    if descriptor.size > limit {
        return Err(StoreError::TooLarge {
            what: what.to_string(),
            size: descriptor.size,
            limit,
        });
    }
    let mut reader = fetch_blob_verified(store, descriptor, what).await?;
    let mut buf = Vec::with_capacity(descriptor.size as usize);
    reader
        .read_to_end(&mut buf)
        .await
        .map_err(verified::unwrap_io_error)?;
    Ok(Bytes::from(buf))
}

/// Options for opening a store.
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    /// Use http even for a non-loopback host.
    pub plain_http: bool,
    /// Accept invalid TLS certificates.
    pub insecure: bool,
    /// PEM file of CA certificates to trust besides the system's (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Credentials given on the command line (else docker config / credential helpers).
    pub credentials: Option<auth::Credentials>,
    /// Attempts for transient failures (connection errors, 5xx, 429): the
    /// [`retry::RetryPolicy`] of every operation on the store. 0: [`retry::DEFAULT_ATTEMPTS`].
    pub max_attempts: u32,
    /// Give up on a registry that stays silent this long: a response to a read that does not
    /// come, a download that stops, an upload the registry stops taking; it is then retried
    /// like a lost connection. `None`: [`registry::DEFAULT_IDLE_TIMEOUT`]. The answer to a
    /// finished upload is not limited (a registry may take long once it has the whole blob).
    pub idle_timeout: Option<std::time::Duration>,
    /// Largest `PATCH` of a blob upload; a larger blob is sent in chunks, and an interrupted
    /// upload continues after the last chunk the registry took. `None`:
    /// [`registry::DEFAULT_UPLOAD_CHUNK`].
    pub upload_chunk: Option<u64>,
    /// Where a registry store remembers the upload sessions of blobs it is sending (to continue
    /// them after an interruption); `None`: not remembered.
    pub upload_sessions: Option<PathBuf>,
}
