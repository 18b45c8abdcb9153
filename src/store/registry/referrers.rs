//! OCI 1.1 referrers in a registry: the referrers API, else the fallback tag schema.
//!
//! Reading: `GET /v2/<name>/referrers/<digest>` when the registry has it (filtered here too:
//! registries may ignore `artifactType`); otherwise the image index under the fallback tag
//! `sha256-<hex>`, merged with every referrer tag of the subject
//! (`sha256-<subject hex>.<referrer hex prefix>`, one tag list) that the index does not list.
//!
//! Writing: the referrer manifest is pushed by digest. A registry that indexes subjects itself
//! answers with `OCI-Subject` (or has the referrers API); for the others the manifest is also
//! pushed under its own referrer tag (unique, so never contended: from then on every reader
//! finds it, whatever happens to the index), then the fallback index is updated
//! read-modify-write: read (keeping the `ETag`), merge in every referrer tag it lacks and our
//! descriptor, write with `If-Match` when the registry gave an `ETag`, wait for concurrent
//! writers to land, and read again until a read shows an index that lacks nothing. Registries
//! without conditional writes (distribution 2.8) give last-writer-wins; a late stale write
//! is repaired by its own writer's re-read (every writer re-reads after its last write
//! landed), or by the next writer. Writers sharing one store are serialized.

use super::RegistryStore;
use crate::digest::Digest;
use crate::media_types as mt;
use crate::store::auth::Access;
use crate::store::referrers::{
    add_to_index, filter_entries, index_entries, referrer_tag, referrer_tag_prefix,
    tags_missing_from,
};
use crate::store::{
    Descriptor, ImageIndex, RawManifest, Reference, Referrer, Result, SizedManifest, Store,
    StoreError, Tag,
};
use bytes::Bytes;
use futures::StreamExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Read-modify-write rounds before giving up on the fallback index. Rounds lost to concurrent
/// writers are contention, not failures: they do not count against `--retries`, which still
/// governs each request of a round.
const FALLBACK_ROUNDS: u32 = 30;
/// Referrer manifests fetched at once when merging referrer tags into an index.
const TAG_FETCHES: usize = 8;
const OCI_SUBJECT: &str = "oci-subject";

use super::{API_NO, API_YES};

impl RegistryStore {
    pub(super) async fn list_referrers(
        &self,
        subject: &Descriptor,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        if let Some(entries) = self.referrers_api(&subject.digest, artifact_type).await? {
            return Ok(filter_entries(&entries, artifact_type));
        }
        let tag = subject.digest.fallback_tag();
        let mut doc = match self.read_fallback(&tag, Access::Pull).await? {
            Some((doc, _)) => doc,
            None => empty_index(),
        };
        let tags = self.referrer_tags(&subject.digest).await;
        self.merge_tagged(&mut doc, &subject.digest, &tags, Access::Pull)
            .await?;
        Ok(filter_entries(index_entries(&doc), artifact_type))
    }

    pub(super) async fn put_referrer(&self, referrer: &Referrer) -> Result<()> {
        let descriptor = referrer.descriptor();
        let headers = self
            .put_manifest(
                referrer.sized(),
                &descriptor.media_type,
                &Reference::Digest(descriptor.digest.clone()),
                None,
            )
            .await?;
        // Did the registry index the subject itself?
        if headers.contains_key(OCI_SUBJECT) {
            self.referrers_api.store(API_YES, Ordering::Relaxed);
            return Ok(());
        }
        let api = match self.referrers_api.load(Ordering::Relaxed) {
            API_YES => true,
            API_NO => false,
            _ => self
                .referrers_api(referrer.subject(), None)
                .await?
                .is_some(),
        };
        if api {
            return Ok(());
        }
        // The referrer's own tag first: once it is there, every reader and every later index
        // writer sees this referrer, whatever a concurrent or delayed index write does.
        let own = Tag::new(&referrer_tag(referrer.subject(), &descriptor.digest))?;
        self.put_manifest(
            referrer.sized(),
            &descriptor.media_type,
            &Reference::Tag(own),
            None,
        )
        .await?;
        self.update_fallback(referrer.subject(), descriptor).await
    }

    /// `GET /v2/<name>/referrers/<digest>`: `Some(entries)` when the registry has the API
    /// (following pagination), `None` when it does not.
    async fn referrers_api(
        &self,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<serde_json::Value>>> {
        if self.referrers_api.load(Ordering::Relaxed) == API_NO {
            return Ok(None);
        }
        let mut url = self.url(&format!("referrers/{subject}"))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let what = format!("referrers of {subject}");
        let mut entries = Vec::new();
        let mut is_index = true;
        let found = self
            .pages(
                url,
                &what,
                Some(mt::OCI_INDEX),
                |s| matches!(s.as_u16(), 400 | 404 | 405 | 406 | 501),
                |bytes| {
                    let mut kept = 0;
                    match serde_json::from_slice(bytes) {
                        Ok(serde_json::Value::Object(index)) => {
                            if let Some(list) = index.get("manifests").and_then(|m| m.as_array()) {
                                kept = list.len() as u64;
                                entries.extend(list.iter().cloned());
                            }
                        }
                        _ => {
                            tracing::debug!(
                                "{what}: the answer is not an image index: no referrers API"
                            );
                            is_index = false;
                        }
                    }
                    Ok(is_index.then_some(kept))
                },
            )
            .await?;
        let api = found && is_index;
        self.referrers_api
            .store(if api { API_YES } else { API_NO }, Ordering::Relaxed);
        Ok(api.then_some(entries))
    }

    /// The fallback index under `tag`, with its ETag; `None` when the tag does not exist.
    async fn read_fallback(
        &self,
        tag: &str,
        access: Access,
    ) -> Result<Option<(serde_json::Value, Option<String>)>> {
        match self.get_manifest(&Reference::parse(tag)?, access).await {
            Ok(f) => Ok(Some((parse_index(&f.raw, tag, &self.location())?, f.etag))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The referrer tags of `subject` in the repository (one tag list). A registry that will
    /// not list tags leaves the index alone to go by: said, not fatal.
    async fn referrer_tags(&self, subject: &Digest) -> Vec<String> {
        match self.tags().await {
            Ok(tags) => tags
                .into_iter()
                .filter(|t| referrer_tag_prefix(t, subject).is_some())
                .collect(),
            Err(e) => {
                tracing::warn!(
                    "referrers of {subject}: cannot list the tags of {} ({e}); going by the \
                     fallback index alone",
                    self.location()
                );
                Vec::new()
            }
        }
    }

    /// Add to `doc` the referrer behind each of `tags` that it does not list (a tag that is
    /// gone or does not hold a referrer of `subject` is skipped). Returns whether it added any.
    async fn merge_tagged(
        &self,
        doc: &mut serde_json::Value,
        subject: &Digest,
        tags: &[String],
        access: Access,
    ) -> Result<bool> {
        let missing: Vec<String> = tags_missing_from(doc, tags, subject)
            .into_iter()
            .map(str::to_string)
            .collect();
        let found: Vec<Result<Option<Descriptor>>> = futures::stream::iter(missing)
            .map(|tag: String| async move {
                let fetched = match self.get_manifest(&Reference::parse(&tag)?, access).await {
                    Ok(f) => f,
                    Err(StoreError::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                };
                match Referrer::new(fetched.raw.bytes, subject) {
                    Ok(r) => Ok(Some(r.descriptor().clone())),
                    Err(e) => {
                        tracing::warn!("skipping the referrer tag {tag}: {e}");
                        Ok(None)
                    }
                }
            })
            .buffer_unordered(TAG_FETCHES)
            .collect()
            .await;
        let mut found = found
            .into_iter()
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>>>()?;
        // The same order whoever merges.
        found.sort_by(|a, b| a.digest.cmp(&b.digest));
        let mut added = false;
        for d in &found {
            added |= add_to_index(doc, d)?;
        }
        Ok(added)
    }

    async fn update_fallback(&self, subject: &Digest, descriptor: &Descriptor) -> Result<()> {
        let tag = subject.fallback_tag();
        let reference = Reference::Tag(Tag::new(&tag)?);
        let _serialized = self.fallback_lock.lock().await;
        for attempt in 1..=FALLBACK_ROUNDS {
            let started = Instant::now();
            let (mut doc, etag) = self
                .read_fallback(&tag, Access::Push)
                .await?
                .unwrap_or_else(|| (empty_index(), None));
            let tags = self.referrer_tags(subject).await;
            let merged = self
                .merge_tagged(&mut doc, subject, &tags, Access::Push)
                .await?;
            let ours = add_to_index(&mut doc, descriptor)?;
            if !merged && !ours {
                // This read shows our entry and every referrer tag: done. Every writer ends
                // with such a read after its last write landed, so the last writer to finish
                // leaves an index that lists every referrer tagged before its read.
                return Ok(());
            }
            if attempt > 1 {
                tracing::debug!(
                    "fallback tag {tag}: a concurrent writer replaced entries (ours: {ours}, \
                     others: {merged}; round {attempt}); writing them back"
                );
            }
            let bytes = Bytes::from(serde_json::to_vec(&doc).expect("index serializes"));
            let index = SizedManifest::new(format!("referrers fallback index {tag}"), bytes)?;
            match self
                .put_manifest(&index, mt::OCI_INDEX, &reference, etag.as_deref())
                .await
            {
                Ok(_) => {}
                Err(StoreError::Http { status: 412, .. }) => {
                    tracing::debug!("fallback tag {tag}: changed since read (412); retrying");
                    tokio::time::sleep(self.transport.retry.spread(attempt)).await;
                    continue;
                }
                Err(e) => return Err(e),
            }
            // Let writers that read before our write land theirs, then read again.
            tokio::time::sleep(settle(started.elapsed())).await;
        }
        Err(StoreError::Other(format!(
            "could not add referrer {} to the fallback tag {tag} in {} after {FALLBACK_ROUNDS} \
             rounds: concurrent writers kept replacing the index (the referrer itself is \
             pushed and tagged {}: readers find it)",
            descriptor.digest,
            self.location(),
            referrer_tag(subject, &descriptor.digest)
        )))
    }
}

fn empty_index() -> serde_json::Value {
    serde_json::to_value(ImageIndex::new()).expect("index")
}

fn parse_index(fetched: &RawManifest, tag: &str, location: &str) -> Result<serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_slice(&fetched.bytes).map_err(|e| {
        StoreError::invalid(
            format!("referrers fallback tag {tag} in {location}"),
            e.to_string(),
        )
    })?;
    let is_index = fetched.descriptor.media_type == mt::OCI_INDEX
        || doc
            .get("manifests")
            .is_some_and(|m| m.is_array() || m.is_null());
    if !doc.is_object() || !is_index {
        return Err(StoreError::invalid(
            format!("referrers fallback tag {tag} in {location}"),
            format!(
                "it holds a {} document, not an OCI image index",
                fetched.descriptor.media_type
            ),
        ));
    }
    Ok(doc)
}

/// How long to let concurrent writers land before re-reading: a few times our own
/// read-modify-write time (theirs is similar), bounded.
fn settle(rmw: Duration) -> Duration {
    use rand::Rng;
    let base = rmw
        .saturating_mul(3)
        .clamp(Duration::from_millis(20), Duration::from_secs(1));
    base + Duration::from_millis(rand::thread_rng().gen_range(0..=20))
}
