//! OCI 1.1 referrers: the referrers API and the fallback tag schema.
//!
//! Reading: `GET /v2/<name>/referrers/<digest>` when the registry has it (filtered here too:
//! registries may ignore `artifactType`); otherwise the image index under the fallback tag
//! `sha256-<hex>`; no tag means no referrers.
//!
//! Writing: the referrer manifest is pushed by digest. A registry that indexes subjects itself
//! answers with `OCI-Subject` (or has the referrers API); for the others the fallback index is
//! updated read-modify-write: read (keeping the `ETag`), add our descriptor, write with
//! `If-Match` when the registry gave an `ETag`, wait for concurrent writers to land, re-read,
//! and start again (jittered backoff, bounded) when our entry was lost. Registries without
//! conditional writes (distribution 2.8) give last-writer-wins, so the re-read is what keeps
//! concurrent writers from silently dropping each other's entries. Writers sharing one store
//! are serialized.

use super::auth::Access;
use super::registry::{has_oci_subject, RegistryStore};
use super::*;
use crate::media_types as mt;
use std::time::{Duration, Instant};

/// Read-modify-write rounds before giving up on the fallback index.
pub const FALLBACK_ATTEMPTS: u32 = 30;
const FALLBACK_BACKOFF_BASE: Duration = Duration::from_millis(25);
const FALLBACK_BACKOFF_CAP: Duration = Duration::from_secs(2);

/// The referrers-list descriptor of `manifest_bytes` when it is a referrer manifest of
/// `subject` (and of type `artifact_type`, when given); stores that find referrers by scanning
/// their manifests (layout, memory) use it.
pub fn descriptor_if_referrer(
    manifest_bytes: &Bytes,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Option<Descriptor> {
    let referrer = Referrer::new(manifest_bytes.clone(), subject).ok()?;
    let d = referrer.descriptor();
    artifact_type
        .is_none_or(|t| d.artifact_type.as_deref() == Some(t))
        .then(|| d.clone())
}

/// Descriptors from an index's `manifests` entries, keeping those that parse (a malformed
/// entry written by another tool is skipped, not fatal) and match `artifact_type`.
pub fn filter_entries(
    entries: &[serde_json::Value],
    artifact_type: Option<&str>,
) -> Vec<Descriptor> {
    entries
        .iter()
        .filter_map(|e| match serde_json::from_value::<Descriptor>(e.clone()) {
            Ok(d) => Some(d),
            Err(err) => {
                tracing::warn!("skipping a malformed referrers entry: {err}");
                None
            }
        })
        .filter(|d| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)))
        .collect()
}

/// The `manifests` entries of an image index document.
fn index_entries(doc: &serde_json::Value) -> &[serde_json::Value] {
    doc.get("manifests")
        .and_then(|m| m.as_array())
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn holds(doc: &serde_json::Value, digest: &Digest) -> bool {
    index_entries(doc)
        .iter()
        .any(|e| e.get("digest").and_then(|d| d.as_str()) == Some(digest.as_str()))
}

/// Add `descriptor` to a fallback index document (kept as JSON so entries and fields written
/// by other tools survive untouched). Returns false when it is there already.
pub fn add_to_index(doc: &mut serde_json::Value, descriptor: &Descriptor) -> Result<bool> {
    if holds(doc, &descriptor.digest) {
        return Ok(false);
    }
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| StoreError::invalid("referrers fallback index", "not a JSON object"))?;
    obj.entry("schemaVersion").or_insert(serde_json::json!(2));
    obj.entry("mediaType")
        .or_insert(serde_json::json!(mt::OCI_INDEX));
    let list = obj
        .entry("manifests")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    if list.is_null() {
        *list = serde_json::Value::Array(Vec::new());
    }
    let arr = list.as_array_mut().ok_or_else(|| {
        StoreError::invalid("referrers fallback index", "manifests is not a list")
    })?;
    arr.push(serde_json::to_value(descriptor).expect("descriptor serializes"));
    Ok(true)
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

/// The fallback index under `tag`, with its ETag; `None` when the tag does not exist.
async fn read_fallback(
    store: &RegistryStore,
    tag: &str,
    access: Access,
) -> Result<Option<(serde_json::Value, Option<String>)>> {
    match store.get_manifest(&Reference::parse(tag)?, access).await {
        Ok(f) => Ok(Some((parse_index(&f.raw, tag, &store.location())?, f.etag))),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) async fn registry_referrers(
    store: &RegistryStore,
    subject: &Descriptor,
    artifact_type: Option<&str>,
) -> Result<Vec<Descriptor>> {
    if let Some(entries) = store.referrers_api(&subject.digest, artifact_type).await? {
        return Ok(filter_entries(&entries, artifact_type));
    }
    let tag = subject.digest.fallback_tag();
    match read_fallback(store, &tag, Access::Pull).await? {
        Some((doc, _)) => Ok(filter_entries(index_entries(&doc), artifact_type)),
        None => Ok(Vec::new()),
    }
}

pub(crate) async fn registry_push_referrer(
    store: &RegistryStore,
    referrer: &Referrer,
) -> Result<()> {
    let descriptor = referrer.descriptor();
    let headers = store
        .put_manifest(
            referrer.sized(),
            &descriptor.media_type,
            &Reference::Digest(descriptor.digest.clone()),
            None,
        )
        .await?;
    if has_oci_subject(&headers) {
        store.mark_referrers_api(true);
        return Ok(());
    }
    let api = match store.referrers_api_known() {
        Some(known) => known,
        None => store
            .referrers_api(referrer.subject(), None)
            .await?
            .is_some(),
    };
    if api {
        return Ok(());
    }
    update_fallback(store, referrer.subject(), descriptor).await
}

/// Full-jitter backoff for read-modify-write rounds.
fn jitter(attempt: u32) -> Duration {
    use rand::Rng;
    let cap = FALLBACK_BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(10))
        .min(FALLBACK_BACKOFF_CAP);
    Duration::from_millis(rand::thread_rng().gen_range(0..=cap.as_millis() as u64))
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

async fn update_fallback(
    store: &RegistryStore,
    subject: &Digest,
    descriptor: &Descriptor,
) -> Result<()> {
    let tag = subject.fallback_tag();
    let reference = Reference::Tag(Tag::new(&tag)?);
    let _serialized = store.fallback_lock.lock().await;
    for attempt in 1..=FALLBACK_ATTEMPTS {
        let started = Instant::now();
        let (mut doc, etag) = read_fallback(store, &tag, Access::Push)
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
            match store
                .put_manifest(&index, mt::OCI_INDEX, &reference, etag.as_deref())
                .await
            {
                Ok(_) => {}
                Err(StoreError::Http { status: 412, .. }) => {
                    tracing::debug!("fallback tag {tag}: changed since read (412); retrying");
                    tokio::time::sleep(jitter(attempt)).await;
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
            for _ in 0..FALLBACK_ATTEMPTS {
                tokio::time::sleep(pause).await;
                let Some((doc, _)) = read_fallback(store, &tag, Access::Push).await? else {
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
            tokio::time::sleep(jitter(attempt)).await;
        } else {
            return Ok(());
        }
    }
    Err(StoreError::Other(format!(
        "could not add referrer {} to the fallback tag {tag} in {} after {FALLBACK_ATTEMPTS} \
         rounds: concurrent writers kept replacing the index",
        descriptor.digest,
        store.location()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn referrer(artifact_type: Option<&str>, note: &str) -> Vec<u8> {
        let subject = Descriptor::new(mt::OCI_MANIFEST, Digest::of(b"model"), 5);
        let mut annotations = Annotations::new();
        annotations.insert("note".into(), note.into());
        ImageManifest {
            schema_version: 2,
            media_type: Some(mt::OCI_MANIFEST.into()),
            artifact_type: artifact_type.map(str::to_string),
            config: Descriptor::empty(),
            layers: vec![],
            subject: Some(subject),
            annotations: Some(annotations),
        }
        .to_bytes()
    }

    fn descriptor(bytes: &[u8]) -> Descriptor {
        let bytes = Bytes::copy_from_slice(bytes);
        descriptor_if_referrer(&bytes, &Digest::of(b"model"), None).unwrap()
    }

    #[test]
    fn descriptor_carries_artifact_type_and_annotations() {
        let bytes = referrer(Some(mt::SIGSTORE_BUNDLE_V03), "a");
        let d = descriptor(&bytes);
        assert_eq!(d.digest, Digest::of(&bytes));
        assert_eq!(d.size, bytes.len() as u64);
        assert_eq!(d.artifact_type.as_deref(), Some(mt::SIGSTORE_BUNDLE_V03));
        assert_eq!(d.annotation("note"), Some("a"));
        // No artifactType: the config media type stands in.
        let d = descriptor(&referrer(None, "b"));
        assert_eq!(d.artifact_type.as_deref(), Some(mt::OCI_EMPTY));
        let model = Digest::of(b"model");
        assert!(Referrer::new(Bytes::from_static(b"not json"), &model).is_err());
        // Another subject, or a type filter that does not match: not a referrer.
        let other = Bytes::from(referrer(None, "c"));
        assert!(descriptor_if_referrer(&other, &Digest::of(b"other"), None).is_none());
        assert!(descriptor_if_referrer(&other, &model, Some("x/y")).is_none());
    }

    #[test]
    fn adding_keeps_foreign_entries_and_fields() {
        let mut doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt::OCI_INDEX,
            "manifests": [{
                "mediaType": mt::OCI_MANIFEST,
                "digest": Digest::of(b"other").to_string(),
                "size": 9,
                "artifactType": "application/x-other",
                "annotations": {"k": "v"},
                "platform": {"os": "linux"}
            }],
            "annotations": {"index": "kept"}
        });
        let d = descriptor(&referrer(Some("application/x-sig"), "n"));
        assert!(add_to_index(&mut doc, &d).unwrap());
        assert!(!add_to_index(&mut doc, &d).unwrap(), "added twice");
        let entries = index_entries(&doc);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["platform"]["os"], "linux");
        assert_eq!(entries[0]["annotations"]["k"], "v");
        assert_eq!(doc["annotations"]["index"], "kept");
        assert_eq!(entries[1]["annotations"]["note"], "n");
        let all = filter_entries(entries, None);
        assert_eq!(all.len(), 2);
        let sigs = filter_entries(entries, Some("application/x-sig"));
        assert_eq!(sigs, vec![d]);
    }

    #[test]
    fn empty_and_null_manifest_lists() {
        let d = descriptor(&referrer(None, "x"));
        let mut doc = serde_json::json!({"schemaVersion": 2, "manifests": null});
        assert!(add_to_index(&mut doc, &d).unwrap());
        assert_eq!(index_entries(&doc).len(), 1);
        let mut doc = serde_json::json!({});
        assert!(add_to_index(&mut doc, &d).unwrap());
        assert_eq!(doc["mediaType"], mt::OCI_INDEX);
        assert!(add_to_index(&mut serde_json::json!([]), &d).is_err());
        // Malformed entries are skipped on read.
        let entries = vec![
            serde_json::json!({"digest": "nope"}),
            serde_json::to_value(&d).unwrap(),
        ];
        assert_eq!(filter_entries(&entries, None).len(), 1);
    }
}
