//! OCI 1.1 referrers in a registry: the referrers API, else the fallback tag schema.
//!
//! Reading: `GET /v2/<name>/referrers/<digest>` when the registry has it (filtered here too:
//! registries may ignore `artifactType`); otherwise the image index under the fallback tag
//! `sha256-<hex>`; no tag means no referrers.
//!
//! Writing: the referrer manifest is pushed by digest. A registry that indexes subjects itself
//! answers with `OCI-Subject` (or has the referrers API); for the others the fallback index is
//! updated read-modify-write: read (keeping the `ETag`), add our descriptor, write with
//! `If-Match` when the registry gave an `ETag`, wait for concurrent writers to land, re-read,
//! and start again (the retry policy's spread, bounded) when our entry was lost. Registries without
//! conditional writes (distribution 2.8) give last-writer-wins, so the re-read is what keeps
//! concurrent writers from silently dropping each other's entries. Writers sharing one store
//! are serialized.

use super::RegistryStore;
use crate::digest::Digest;
use crate::media_types as mt;
use crate::store::auth::Access;
use crate::store::referrers::{add_to_index, filter_entries, holds, index_entries};
use crate::store::{
    Descriptor, ImageIndex, RawManifest, Reference, Referrer, Result, SizedManifest, Store,
    StoreError, Tag,
};
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Read-modify-write rounds before giving up on the fallback index. Rounds lost to concurrent
/// writers are contention, not failures: they do not count against `--retries`, which still
/// governs each request of a round.
const FALLBACK_ROUNDS: u32 = 30;
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
        match self.read_fallback(&tag, Access::Pull).await? {
            Some((doc, _)) => Ok(filter_entries(index_entries(&doc), artifact_type)),
            None => Ok(Vec::new()),
        }
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

    async fn update_fallback(&self, subject: &Digest, descriptor: &Descriptor) -> Result<()> {
        let tag = subject.fallback_tag();
        let reference = Reference::Tag(Tag::new(&tag)?);
        let _serialized = self.fallback_lock.lock().await;
        for attempt in 1..=FALLBACK_ROUNDS {
            let started = Instant::now();
            let (mut doc, etag) = self
                .read_fallback(&tag, Access::Push)
                .await?
                .unwrap_or_else(|| {
                    (
                        serde_json::to_value(ImageIndex::new()).expect("index"),
                        None,
                    )
                });
            if add_to_index(&mut doc, descriptor)? {
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
                // Registries without conditional writes (distribution 2.8 ignores If-Match) let a
                // writer that read before our write overwrite us later. Done only when our entry
                // is present in two reads a settle period apart that show the same index: no
                // writer was still landing.
                let pause = settle(started.elapsed());
                let mut previous: Option<Digest> = None;
                let mut survived = false;
                for _ in 0..FALLBACK_ROUNDS {
                    tokio::time::sleep(pause).await;
                    let Some((doc, _)) = self.read_fallback(&tag, Access::Push).await? else {
                        break;
                    };
                    if !holds(&doc, &descriptor.digest) {
                        break;
                    }
                    let seen = Digest::of(&serde_json::to_vec(&doc).expect("index serializes"));
                    if previous.as_ref() == Some(&seen) {
                        survived = true;
                        break;
                    }
                    previous = Some(seen);
                }
                if survived {
                    return Ok(());
                }
                tracing::debug!(
                    "fallback tag {tag}: a concurrent writer replaced our entry {} (round {attempt}); retrying",
                    descriptor.digest
                );
                tokio::time::sleep(self.transport.retry.spread(attempt)).await;
            } else {
                return Ok(());
            }
        }
        Err(StoreError::Other(format!(
            "could not add referrer {} to the fallback tag {tag} in {} after {FALLBACK_ROUNDS} \
             rounds: concurrent writers kept replacing the index",
            descriptor.digest,
            self.location()
        )))
    }
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
