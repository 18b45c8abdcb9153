//! OCI distribution client: our own HTTP on `reqwest` (rustls), in layers.
//!
//! - `transport`: requests, credentials (attached there only), authentication rounds,
//!   status → error, capped reads, the idle timeout. Scheme: plain http only for loopback
//!   hosts or `--plain-http`; https otherwise (`--insecure` accepts certificates that do not
//!   verify).
//! - [`crate::store::retry`]: transient failures (connection errors, 5xx, 429) are retried with
//!   exponential backoff (honouring `Retry-After`) as `--retries` says.
//! - `upload`: HEAD-skip when the digest is known and the blob exists; else streamed, hashed
//!   `PATCH`es (one for a blob up to the upload chunk) (`body`); an interrupted upload
//!   continues its remembered session when the registry still has it, else restarts from its
//!   source.
//! - `pages`: one loop for paginated lists (tags, referrers API).
//! - `referrers`: the referrers API, else the fallback tag.
//! - This module: the OCI endpoints. Manifests are read with the full `Accept` list, capped
//!   at [`MAX_MANIFEST_SIZE`](crate::media_types::MAX_MANIFEST_SIZE) (checked by the shared
//!   [`crate::store::checked::check_fetched`]) and written as the exact bytes given.

mod body;
mod pages;
mod referrers;
mod transport;
mod upload;

use super::auth::{self, Access, Authenticator};
use super::retry::{Failed, RetryPolicy};
use super::*;
use crate::media_types as mt;
use crate::reference::RegistryRef;
use reqwest::header::{
    HeaderMap, ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LOCATION, RANGE,
};
use reqwest::{Method, StatusCode};
use std::sync::atomic::AtomicU8;
use std::time::Duration;
use tokio_util::io::StreamReader;
use transport::{header_str, Transport};
use url::Url;

pub use super::retry::DEFAULT_ATTEMPTS;
pub use pages::next_link;

/// See [`StoreOptions::upload_chunk`].
pub const DEFAULT_UPLOAD_CHUNK: u64 = 64 << 20;

/// See [`StoreOptions::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Referrers API support (`RegistryStore::referrers_api`), learnt once per store.
const API_UNKNOWN: u8 = 0;
const API_YES: u8 = 1;
const API_NO: u8 = 2;
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// A store in one repository of an OCI distribution registry.
pub struct RegistryStore {
    transport: Transport,
    /// `scheme://api-host/`
    base: Url,
    /// Registry as the user wrote it (messages, credentials).
    registry: String,
    repository: String,
    referrers_api: AtomicU8,
    /// Serializes this store's own read-modify-write of referrers fallback tags.
    fallback_lock: tokio::sync::Mutex<()>,
    /// Largest `PATCH` of an upload.
    upload_chunk: u64,
    /// Where upload sessions are remembered, to continue them after an interruption.
    sessions_dir: Option<std::path::PathBuf>,
}

/// A manifest as fetched, with the registry's `ETag` (for conditional writes).
struct Fetched {
    raw: RawManifest,
    etag: Option<String>,
}

/// The media type a manifest response declares: `Content-Type` unless generic, else the
/// document's own `mediaType`, else OCI image manifest.
fn manifest_media_type(content_type: Option<&str>, bytes: &[u8]) -> String {
    if let Some(ct) = declared_media_type(content_type) {
        return ct;
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(bytes)
        .ok()
        .and_then(|p| p.media_type)
        .unwrap_or_else(|| mt::OCI_MANIFEST.to_string())
}

/// `Content-Type` without parameters, unless it is a generic one.
fn declared_media_type(content_type: Option<&str>) -> Option<String> {
    content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty() && c != "application/json" && c != "text/plain")
}

impl RegistryStore {
    pub fn new(r: &RegistryRef, options: &StoreOptions) -> Result<Self> {
        Self::build(r, &r.repository, options)
    }

    fn build(r: &RegistryRef, repository: &str, options: &StoreOptions) -> Result<Self> {
        let api_host = r.api_host();
        let plain = r.is_loopback() || options.plain_http;
        let scheme = if plain { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{api_host}/")).map_err(|e| {
            StoreError::invalid(format!("registry host {api_host:?}"), e.to_string())
        })?;
        let transport = Transport::new(
            &r.registry,
            format!("{}/{repository}", r.registry),
            &base,
            Authenticator::new(&r.registry, options.credentials.clone(), plain),
            options.insecure,
            options.ca_file.as_deref(),
            options.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            RetryPolicy::new(options.max_attempts),
        )?;
        Ok(RegistryStore {
            transport,
            base,
            registry: r.registry.clone(),
            repository: repository.to_string(),
            referrers_api: AtomicU8::new(API_UNKNOWN),
            fallback_lock: tokio::sync::Mutex::new(()),
            upload_chunk: options.upload_chunk.unwrap_or(DEFAULT_UPLOAD_CHUNK).max(1),
            sessions_dir: options.upload_sessions.clone(),
        })
    }

    /// Shorter waits between attempts (tests).
    pub fn with_backoff_base(mut self, base: Duration) -> Self {
        self.transport.retry = self.transport.retry.with_backoff_base(base);
        self
    }

    /// Check that the registry accepts `options.credentials` (`GET /v2/`, with token exchange).
    pub async fn check_login(registry: &str, options: &StoreOptions) -> Result<()> {
        let r = RegistryRef {
            registry: registry.to_string(),
            repository: String::new(),
            tag: None,
            digest: None,
        };
        let store = Self::build(&r, "", options)?;
        let url = store
            .base
            .join("v2/")
            .map_err(|e| StoreError::invalid("registry URL", e.to_string()))?;
        let (t, url, what) = (&store.transport, &url, &format!("registry {registry}"));
        t.retry
            .run(&format!("log in to {registry}"), move || async move {
                t.request(None, what, || t.http().get(url.clone())).await?;
                Ok(())
            })
            .await
    }

    fn url(&self, tail: &str) -> Result<Url> {
        self.base
            .join(&format!("v2/{}/{tail}", self.repository))
            .map_err(|e| StoreError::invalid(format!("URL for {tail}"), e.to_string()))
    }

    fn scope(&self, access: Access) -> Option<String> {
        auth::scope_for(&self.repository, access)
    }

    /// GET a manifest (any kind) by tag or digest: size-capped, with its `ETag` (unchecked:
    /// see [`checked::check_fetched`]).
    async fn get_manifest(&self, reference: &Reference, access: Access) -> Result<Fetched> {
        let t = &self.transport;
        let scope = self.scope(access);
        let url = self.url(&format!("manifests/{reference}"))?;
        let what = format!("manifest {reference}");
        let (scope, url, what) = (scope.as_deref(), &url, &what);
        t.retry
            .run(
                &format!("fetch {what} from {}", self.location()),
                move || async move {
                    let resp = t
                        .request(scope, what, || {
                            t.http()
                                .get(url.clone())
                                .header(ACCEPT, mt::MANIFEST_ACCEPT)
                        })
                        .await?;
                    let headers = resp.headers().clone();
                    let bytes = t.read_capped(resp, mt::MAX_MANIFEST_SIZE, what).await?;
                    let digest = Digest::of(&bytes);
                    if let Some(hint) = header_str(&headers, DOCKER_CONTENT_DIGEST) {
                        if hint != digest.as_str() {
                            let hint = t.redact(hint);
                            tracing::warn!(
                                "{what}: the registry says {hint} but the bytes hash to {digest}; using {digest}"
                            );
                        }
                    }
                    let media_type =
                        manifest_media_type(header_str(&headers, CONTENT_TYPE.as_str()), &bytes);
                    Ok(Fetched {
                        raw: RawManifest {
                            descriptor: Descriptor::new(media_type, digest, bytes.len() as u64),
                            bytes,
                        },
                        etag: header_str(&headers, ETAG.as_str()).map(str::to_string),
                    })
                },
            )
            .await
    }

    /// PUT manifest bytes at `reference` (tag or digest), optionally `If-Match: etag`.
    /// Returns the response headers (`OCI-Subject`, `Docker-Content-Digest`).
    async fn put_manifest(
        &self,
        manifest: &SizedManifest,
        media_type: &str,
        reference: &Reference,
        if_match: Option<&str>,
    ) -> Result<HeaderMap> {
        let t = &self.transport;
        let (bytes, digest) = (manifest.bytes(), manifest.digest());
        let scope = self.scope(Access::Push);
        let url = self.url(&format!("manifests/{reference}"))?;
        let what = format!("manifest {reference}");
        let (scope, url, what) = (scope.as_deref(), &url, &what);
        t.retry
            .run(
                &format!("push {what} to {}", self.location()),
                move || async move {
                    let resp = t
                        .send(scope, || {
                            let b = t
                                .http()
                                .put(url.clone())
                                .header(CONTENT_TYPE, media_type)
                                .body(bytes.clone());
                            match if_match {
                                Some(tag) => b.header("If-Match", tag),
                                None => b,
                            }
                        })
                        .await?;
                    if !resp.status().is_success() {
                        return Err(match t.status_error(&Method::PUT, url, resp, what).await {
                            // distribution 2.8 answers MANIFEST_BLOB_UNKNOWN while a
                            // concurrent upload of the same blob (e.g. the shared empty
                            // config of referrers) rewrites its repository link: the blob
                            // is there a moment later.
                            Failed::Error {
                                error: e @ StoreError::Http { status: 400, .. },
                                ..
                            } if e.to_string().contains("MANIFEST_BLOB_UNKNOWN") => Failed::Race(e),
                            other => other,
                        });
                    }
                    let headers = resp.headers().clone();
                    if let Some(said) = header_str(&headers, DOCKER_CONTENT_DIGEST) {
                        if said != digest.as_str() {
                            return Err(StoreError::DigestMismatch {
                                what: format!("{what} as stored by {}", self.location()),
                                expected: digest.clone(),
                                actual: said.parse().map_err(|_| {
                                    StoreError::invalid(
                                        format!("Docker-Content-Digest for {what}"),
                                        format!("{:?} is not a sha256 digest", t.redact(said)),
                                    )
                                })?,
                            }
                            .into());
                        }
                    }
                    Ok(headers)
                },
            )
            .await
    }

    /// HEAD a blob: its size when present.
    async fn head_blob(&self, digest: &Digest, access: Access) -> Result<Option<Option<u64>>> {
        let t = &self.transport;
        let scope = self.scope(access);
        let url = self.url(&format!("blobs/{digest}"))?;
        let what = format!("blob {digest}");
        let (scope, url, what) = (scope.as_deref(), &url, &what);
        t.retry
            .run(
                &format!("check {what} in {}", self.location()),
                move || async move {
                    let resp = t.send(scope, || t.http().head(url.clone())).await?;
                    match resp.status() {
                        s if s.is_success() => Ok(Some(
                            header_str(resp.headers(), CONTENT_LENGTH.as_str())
                                .and_then(|v| v.parse().ok()),
                        )),
                        StatusCode::NOT_FOUND => Ok(None),
                        _ => Err(t.status_error(&Method::HEAD, url, resp, what).await),
                    }
                },
            )
            .await
    }
}

/// A `206` answer to `Range: bytes=<offset>-` for a blob of `size` bytes must say
/// `Content-Range: bytes <offset>-<size-1>/<size or *>` and, when it gives one, a
/// `Content-Length` of the rest: anything else is refused (why, when so).
fn check_content_range(
    content_range: Option<&str>,
    content_length: Option<&str>,
    offset: u64,
    size: u64,
) -> std::result::Result<(), String> {
    let expected = format!("bytes {offset}-{}/{size}", size.saturating_sub(1));
    let Some(said) = content_range else {
        return Err(format!(
            "HTTP 206 without a Content-Range (expected {expected:?})"
        ));
    };
    let shown: String = said.chars().take(80).collect();
    let wrong = || format!("Content-Range {shown:?}; expected {expected:?}");
    let rest = said.strip_prefix("bytes ").ok_or_else(wrong)?;
    let (span, total) = rest.split_once('/').ok_or_else(wrong)?;
    let (first, last) = span.split_once('-').ok_or_else(wrong)?;
    let first: u64 = first.trim().parse().map_err(|_| wrong())?;
    let last: u64 = last.trim().parse().map_err(|_| wrong())?;
    let total_ok = total.trim() == "*" || total.trim().parse::<u64>() == Ok(size);
    if first != offset || offset >= size || last != size - 1 || !total_ok {
        return Err(wrong());
    }
    if let Some(length) = content_length {
        if length.parse::<u64>() != Ok(size - offset) {
            let shown: String = length.chars().take(40).collect();
            return Err(format!(
                "Content-Length {shown:?} for the range {said:?}; expected {}",
                size - offset
            ));
        }
    }
    Ok(())
}

#[async_trait]
impl Store for RegistryStore {
    fn location(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    async fn resolve_reference(&self, reference: &Reference) -> Result<Descriptor> {
        let t = &self.transport;
        let scope = self.scope(Access::Pull);
        let url = self.url(&format!("manifests/{reference}"))?;
        let what = format!("manifest {reference}");
        let (scope, u, w) = (scope.as_deref(), &url, &what);
        let head = t
            .retry
            .run(
                &format!("resolve {what} in {}", self.location()),
                move || async move {
                    let resp = t
                        .request(scope, w, || {
                            t.http().head(u.clone()).header(ACCEPT, mt::MANIFEST_ACCEPT)
                        })
                        .await?;
                    Ok(resp.headers().clone())
                },
            )
            .await?;
        let digest =
            header_str(&head, DOCKER_CONTENT_DIGEST).and_then(|d| d.parse::<Digest>().ok());
        // A size past the manifest cap is not believed: the manifest is read (capped) instead.
        let size = header_str(&head, CONTENT_LENGTH.as_str())
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|size| *size <= mt::MAX_MANIFEST_SIZE);
        let media_type = declared_media_type(header_str(&head, CONTENT_TYPE.as_str()));
        match (digest, size, media_type) {
            (Some(d), Some(size), Some(media_type))
                if reference.digest().is_none_or(|want| *want == d) =>
            {
                Ok(Descriptor::new(media_type, d, size))
            }
            // No usable digest (or one that disagrees): read the manifest and hash it.
            _ => {
                let raw = self.read_manifest(reference).await?;
                Ok(checked::check_fetched(reference, raw, &self.location())?.descriptor)
            }
        }
    }

    async fn read_manifest(&self, reference: &Reference) -> Result<RawManifest> {
        Ok(self.get_manifest(reference, Access::Pull).await?.raw)
    }

    async fn write_manifest(
        &self,
        manifest: &SizedManifest,
        media_type: &str,
        tag: Option<&Tag>,
    ) -> Result<()> {
        let reference = match tag {
            Some(t) => Reference::Tag(t.clone()),
            None => Reference::Digest(manifest.digest().clone()),
        };
        self.put_manifest(manifest, media_type, &reference, None)
            .await?;
        Ok(())
    }

    async fn write_referrer(&self, referrer: &Referrer) -> Result<()> {
        self.put_referrer(referrer).await
    }

    async fn blob_exists(&self, digest: &Digest) -> Result<bool> {
        Ok(self.head_blob(digest, Access::Pull).await?.is_some())
    }

    async fn fetch_blob_raw(&self, descriptor: &Descriptor) -> Result<BoxReader> {
        let chunks = self.fetch_blob_chunks(descriptor).await?;
        Ok(Box::pin(StreamReader::new(chunks)))
    }

    async fn fetch_blob_chunks(&self, descriptor: &Descriptor) -> Result<BoxChunks> {
        let t = &self.transport;
        let scope = self.scope(Access::Pull);
        let digest = &descriptor.digest;
        let url = self.url(&format!("blobs/{digest}"))?;
        let what = format!("blob {digest}");
        let (scope, u, w) = (scope.as_deref(), &url, &what);
        let resp = t
            .retry
            .run(
                &format!("fetch {what} from {}", self.location()),
                move || async move { t.request(scope, w, || t.http().get(u.clone())).await },
            )
            .await?;
        Ok(t.chunks(resp))
    }

    async fn fetch_blob_from(&self, descriptor: &Descriptor, offset: u64) -> Result<RangedChunks> {
        if offset == 0 {
            return Ok(RangedChunks {
                start: 0,
                chunks: self.fetch_blob_chunks(descriptor).await?,
            });
        }
        let t = &self.transport;
        let scope = self.scope(Access::Pull);
        let digest = &descriptor.digest;
        let url = self.url(&format!("blobs/{digest}"))?;
        let what = format!("blob {digest}");
        let range = format!("bytes={offset}-");
        let (scope, u, w, r) = (scope.as_deref(), &url, &what, &range);
        let resp = t
            .retry
            .run(
                &format!("fetch {what} from {}", self.location()),
                move || async move {
                    t.request(scope, w, || t.http().get(u.clone()).header(RANGE, r))
                        .await
                },
            )
            .await?;
        let start = match resp.status() {
            // The registry ignored the range: the whole blob, from its first byte.
            StatusCode::OK => 0,
            StatusCode::PARTIAL_CONTENT => {
                let said = header_str(resp.headers(), CONTENT_RANGE.as_str());
                let length = header_str(resp.headers(), CONTENT_LENGTH.as_str());
                if let Err(reason) = check_content_range(said, length, offset, descriptor.size) {
                    return Err(StoreError::invalid(
                        format!(
                            "answer of {} to a request for bytes {offset}- of {what}",
                            self.location()
                        ),
                        t.redact(&reason),
                    ));
                }
                offset
            }
            other => {
                return Err(StoreError::invalid(
                    format!(
                        "answer of {} to a request for bytes {offset}- of {what}",
                        self.location()
                    ),
                    format!(
                        "HTTP {} is neither 206 (the range) nor 200 (all of it)",
                        other.as_u16()
                    ),
                ))
            }
        };
        Ok(RangedChunks {
            start,
            chunks: t.chunks(resp),
        })
    }

    async fn push_blob(&self, source: &dyn BlobSource) -> Result<(Digest, u64)> {
        if let Some(known) = source.known_digest() {
            if let Some(remote_size) = self.head_blob(&known, Access::Push).await? {
                if let Some(rs) = remote_size.filter(|rs| *rs != source.size()) {
                    return Err(StoreError::SizeMismatch {
                        what: format!(
                            "{} (blob {known} in {})",
                            source.describe(),
                            self.location()
                        ),
                        expected: source.size(),
                        actual: rs,
                    });
                }
                tracing::debug!("blob {known} exists in {}: skipped", self.location());
                return Ok((known, source.size()));
            }
        }
        self.transport
            .retry
            .run(
                &format!("upload {} to {}", source.describe(), self.location()),
                move || self.upload_once(source),
            )
            .await
    }

    async fn referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        self.list_referrers(subject, artifact_type).await
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        self.tags().await
    }

    fn mount(&self) -> Option<&dyn Mount> {
        Some(self)
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.transport.retry
    }
}

#[async_trait]
impl Mount for RegistryStore {
    fn registry_repository(&self) -> (String, String) {
        (self.base.to_string(), self.repository.clone())
    }

    async fn mount_blob(&self, digest: &Digest, from_repository: &str) -> Result<bool> {
        let t = &self.transport;
        let scope = self.scope(Access::Push);
        let mut url = self.url("blobs/uploads/")?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from_repository);
        let sent = t
            .send(scope.as_deref(), || {
                t.http().post(url.clone()).header(CONTENT_LENGTH, 0)
            })
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            // Not mountable (e.g. no pull access to the source): upload instead.
            Err(f) => {
                tracing::debug!(
                    "mount of {digest} from {from_repository} failed: {}",
                    f.into_error()
                );
                return Ok(false);
            }
        };
        if resp.status() == StatusCode::ACCEPTED {
            // The registry opened an upload session instead: close it, upload as usual.
            if let Some(Ok(loc)) = header_str(resp.headers(), LOCATION.as_str())
                .map(|l| transport::resolve_location(&url, l))
            {
                t.discard(&loc, scope.as_deref()).await;
            }
        }
        Ok(resp.status() == StatusCode::CREATED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_header_or_document() {
        assert_eq!(
            manifest_media_type(
                Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
                b"{}"
            ),
            mt::OCI_INDEX
        );
        assert_eq!(
            manifest_media_type(
                Some("application/json"),
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            ),
            mt::DOCKER_MANIFEST_V2
        );
        assert_eq!(manifest_media_type(None, b"{}"), mt::OCI_MANIFEST);
    }

    #[test]
    fn a_range_answer_must_start_where_asked_and_run_to_the_end() {
        let ok = |cr: &str, len: Option<&str>| check_content_range(Some(cr), len, 100, 1000);
        ok("bytes 100-999/1000", Some("900")).unwrap();
        ok("bytes 100-999/*", None).unwrap();
        for (bad, len) in [
            ("bytes 0-999/1000", None),
            ("bytes 101-999/1000", None),
            ("bytes 100-998/1000", None),
            ("bytes 100-1999/2000", None),
            ("bytes 100-999/1001", None),
            ("bytes 100-999", None),
            ("items 100-999/1000", None),
            ("bytes -5-999/1000", None),
            ("bytes 100-999/1000", Some("901")),
            ("bytes 100-999/1000", Some("lots")),
        ] {
            let err = ok(bad, len).unwrap_err();
            assert!(err.contains("expected"), "{bad}: {err}");
        }
        let err = check_content_range(None, None, 100, 1000).unwrap_err();
        assert!(err.contains("without a Content-Range"), "{err}");
        // No arithmetic on registry numbers can panic.
        check_content_range(Some("bytes 0-18446744073709551615/0"), None, 0, 0).unwrap_err();
        check_content_range(Some("bytes 5-4/5"), None, 5, 5).unwrap_err();
    }

    #[test]
    fn scheme_follows_loopback_and_plain_http() {
        let store = |s: &str, plain: bool| {
            let r = match crate::reference::Target::parse(s).unwrap() {
                crate::reference::Target::Registry(r) => r,
                _ => unreachable!(),
            };
            RegistryStore::new(
                &r,
                &StoreOptions {
                    plain_http: plain,
                    ..Default::default()
                },
            )
            .unwrap()
        };
        assert_eq!(
            store("127.0.0.1:5000/m", false).base.as_str(),
            "http://127.0.0.1:5000/"
        );
        assert_eq!(
            store("localhost/m", false).base.as_str(),
            "http://localhost/"
        );
        assert_eq!(
            store("ghcr.io/o/m", false).base.as_str(),
            "https://ghcr.io/"
        );
        assert_eq!(
            store("reg.internal:5000/m", true).base.as_str(),
            "http://reg.internal:5000/"
        );
        assert_eq!(
            store("docker.io/library/m", false).base.as_str(),
            "https://registry-1.docker.io/"
        );
        assert_eq!(
            store("ghcr.io/o/m", false).transport.retry.attempts(),
            DEFAULT_ATTEMPTS
        );
    }
}
