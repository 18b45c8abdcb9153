//! OCI 1.1 referrers, the parts every store shares: the descriptor a referrers list holds for
//! a referrer manifest (found by scanning, in the layout and memory stores), and the fallback
//! index document (`sha256-<hex>` tag) as it is read and extended, keeping entries and fields
//! written by other tools, and the per-referrer tags (`sha256-<subject hex>.<referrer hex
//! prefix>`) that make every referrer findable whatever happens to that index. The registry's
//! side (referrers API, fallback tag writes under concurrency) is in `registry/referrers.rs`.
//!
//! [`list_typed`] is how commands list referrers: it trusts the referrer, not the index entry,
//! for what a referrer is when the entry does not say (`discover` and `verify` both use it, so
//! they agree on what is attached).

use super::checked::Referrer;
use super::error::{Result, StoreError};
use super::limits::MAX_UNTYPED_REFERRERS;
use super::oci::Descriptor;
use super::Store;
use crate::digest::Digest;
use crate::media_types as mt;
use bytes::Bytes;
use futures::StreamExt;

/// Referrer manifests fetched at once to learn their type.
const TYPE_FETCHES: usize = 8;

/// A referrer as listed for a subject.
pub struct Listed {
    /// Its descriptor: as the list gave it when the entry carried `artifactType`, else built
    /// from the referrer manifest itself (its `artifactType`, or config media type, and its
    /// annotations).
    pub descriptor: Descriptor,
    /// The referrer manifest, checked to be about the subject, when it was fetched to learn
    /// its type (a caller that reads it needs no second fetch).
    pub manifest: Option<Referrer>,
}

/// The referrers of `subject`, each digest once, of type `artifact_type` when given. A list
/// entry without `artifactType` (a fallback index copied by a tool that drops the field, such
/// as `skopeo copy --all`) is not skipped: its manifest is fetched (once) and must name
/// `subject`; its own `artifactType`, else its config media type (as the OCI spec says),
/// decides. One whose manifest cannot be read or is about another subject is kept as listed
/// when no type is asked for, and left out (with a warning) when one is. At most
/// [`MAX_UNTYPED_REFERRERS`] entries are fetched this way.
pub async fn list_typed(
    store: &dyn Store,
    subject: &Descriptor,
    artifact_type: Option<&str>,
) -> Result<Vec<Listed>> {
    let mut seen = std::collections::HashSet::new();
    let listed: Vec<Descriptor> = store
        .referrers(subject, None)
        .await?
        .into_iter()
        .filter(|d| seen.insert(d.digest.clone()))
        .collect();
    let untyped = listed.iter().filter(|d| d.artifact_type.is_none()).count();
    if untyped > MAX_UNTYPED_REFERRERS {
        return Err(StoreError::invalid(
            format!("referrers of {}", subject.digest),
            format!(
                "{untyped} entries without artifactType; at most {MAX_UNTYPED_REFERRERS} referrer manifests are fetched to learn their type"
            ),
        ));
    }
    let wanted =
        |d: &Descriptor| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t));
    let resolved: Vec<Option<Listed>> = futures::stream::iter(listed)
        .map(|d| async move {
            if d.artifact_type.is_some() {
                return wanted(&d).then_some(Listed {
                    descriptor: d,
                    manifest: None,
                });
            }
            let fetched = store
                .fetch_manifest(d.digest.as_str())
                .await
                .and_then(|raw| Referrer::new(raw.bytes, &subject.digest));
            match fetched {
                Ok(r) => wanted(r.descriptor()).then(|| Listed {
                    descriptor: r.descriptor().clone(),
                    manifest: Some(r),
                }),
                Err(e) if artifact_type.is_none() => {
                    tracing::warn!("referrer {} listed without a type: {e}", d.digest);
                    Some(Listed {
                        descriptor: d,
                        manifest: None,
                    })
                }
                Err(e) => {
                    tracing::warn!(
                        "skipping referrer {} (listed without a type): {e}",
                        d.digest
                    );
                    None
                }
            }
        })
        .buffered(TYPE_FETCHES)
        .collect()
        .await;
    Ok(resolved.into_iter().flatten().collect())
}

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
pub(crate) fn index_entries(doc: &serde_json::Value) -> &[serde_json::Value] {
    doc.get("manifests")
        .and_then(|m| m.as_array())
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// How many hex digits of the referrer's digest its own tag carries (128 bits: two referrers
/// of one subject never share a tag). The tag is `7 + 64 + 1 + 32 = 104` characters, within
/// the 128 a tag may have.
pub const REFERRER_TAG_HEX: usize = 32;

/// The referrer's own tag: `sha256-<subject hex>.<first 32 hex digits of the referrer's
/// digest>`. Unique per referrer, so no writer ever contends for it; it cannot be mistaken for
/// cosign's `sha256-<hex>.sig` / `.att` / `.sbom` tags.
pub fn referrer_tag(subject: &Digest, referrer: &Digest) -> String {
    format!(
        "{}.{}",
        subject.fallback_tag(),
        &referrer.hex()[..REFERRER_TAG_HEX]
    )
}

/// The referrer digest prefix a tag names when it is a referrer tag of `subject`.
pub(crate) fn referrer_tag_prefix<'a>(tag: &'a str, subject: &Digest) -> Option<&'a str> {
    let prefix = tag
        .strip_prefix(subject.fallback_tag().as_str())?
        .strip_prefix('.')?;
    (prefix.len() == REFERRER_TAG_HEX
        && prefix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(prefix)
}

/// The referrer tags of `subject` among `tags` whose referrer the index `doc` does not list.
pub(crate) fn tags_missing_from<'a>(
    doc: &serde_json::Value,
    tags: &'a [String],
    subject: &Digest,
) -> Vec<&'a str> {
    let listed: Vec<&str> = index_entries(doc)
        .iter()
        .filter_map(|e| e.get("digest").and_then(|d| d.as_str()))
        .filter_map(|d| d.strip_prefix("sha256:"))
        .collect();
    tags.iter()
        .filter(|t| {
            referrer_tag_prefix(t, subject)
                .is_some_and(|p| !listed.iter().any(|h| h.starts_with(p)))
        })
        .map(String::as_str)
        .collect()
}

pub(crate) fn holds(doc: &serde_json::Value, digest: &Digest) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::oci::{Annotations, ImageManifest};

    fn referrer(artifact_type: Option<&str>, note: &str) -> Vec<u8> {
        let subject = Descriptor::new(mt::OCI_MANIFEST, Digest::of(b"model"), 5);
        let mut annotations = Annotations::new();
        annotations.insert("note".into(), note.into());
        ImageManifest {
            artifact_type: artifact_type.map(str::to_string),
            subject: Some(subject),
            annotations: Some(annotations),
            ..ImageManifest::new(Descriptor::empty(), vec![])
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
    fn referrer_tags_name_subject_and_referrer_and_nothing_else() {
        let subject = Digest::of(b"model");
        let bytes = referrer(None, "t");
        let d = descriptor(&bytes);
        let tag = referrer_tag(&subject, &d.digest);
        assert_eq!(tag.len(), 104);
        crate::store::Tag::new(&tag).expect("a valid tag");
        assert_eq!(
            referrer_tag_prefix(&tag, &subject),
            Some(&d.digest.hex()[..REFERRER_TAG_HEX])
        );
        // Another subject's, the index tag itself, cosign's and malformed ones are not.
        assert_eq!(referrer_tag_prefix(&tag, &Digest::of(b"other")), None);
        let index_tag = subject.fallback_tag();
        for t in [
            index_tag.clone(),
            format!("{index_tag}.sig"),
            format!("{index_tag}.att"),
            format!("{index_tag}.{}", &d.digest.hex()[..31]),
            format!("{index_tag}.{}", d.digest.hex()),
            format!("{index_tag}.{}", d.digest.hex()[..32].to_uppercase()),
            format!("{index_tag}-{}", &d.digest.hex()[..32]),
        ] {
            assert_eq!(referrer_tag_prefix(&t, &subject), None, "{t}");
        }
        // Missing from an index: only referrer tags of this subject the index does not list.
        let other = descriptor(&referrer(None, "u"));
        let tags = vec![
            "v1".to_string(),
            index_tag,
            tag.clone(),
            referrer_tag(&subject, &other.digest),
            referrer_tag(&Digest::of(b"x"), &other.digest),
        ];
        let mut doc = serde_json::json!({});
        assert_eq!(tags_missing_from(&doc, &tags, &subject).len(), 2);
        add_to_index(&mut doc, &d).unwrap();
        assert_eq!(
            tags_missing_from(&doc, &tags, &subject),
            vec![referrer_tag(&subject, &other.digest).as_str()]
        );
        add_to_index(&mut doc, &other).unwrap();
        assert!(tags_missing_from(&doc, &tags, &subject).is_empty());
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
