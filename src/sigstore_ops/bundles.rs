//! A Sigstore bundle as an OCI referrer: write one, find a subject's.

use crate::digest::Digest;
use crate::media_types as mt;
use crate::store::referrers::{list_typed, Listed};
use crate::store::{
    fetch_small_blob, Annotations, BytesSource, Descriptor, ImageManifest, Referrer, Store,
    StoreError,
};
use bytes::Bytes;

/// Builds the referrer manifest for `bundle_json` over `subject`. Returns the manifest bytes.
pub fn referrer_manifest(
    bundle_json: &[u8],
    predicate_type: &str,
    subject: &Descriptor,
    created: &str,
) -> Vec<u8> {
    let layer = Descriptor::new(
        mt::SIGSTORE_BUNDLE_V03,
        Digest::of(bundle_json),
        bundle_json.len() as u64,
    );
    let mut annotations = Annotations::new();
    annotations.insert(
        mt::ANNOTATION_BUNDLE_CONTENT.to_string(),
        mt::BUNDLE_CONTENT_DSSE.to_string(),
    );
    annotations.insert(
        mt::ANNOTATION_BUNDLE_PREDICATE_TYPE.to_string(),
        predicate_type.to_string(),
    );
    annotations.insert(mt::ANNOTATION_CREATED.to_string(), created.to_string());
    let manifest = ImageManifest {
        artifact_type: Some(mt::SIGSTORE_BUNDLE_V03.to_string()),
        subject: Some(Descriptor::new(
            subject.media_type.clone(),
            subject.digest.clone(),
            subject.size,
        )),
        annotations: Some(annotations),
        ..ImageManifest::new(Descriptor::empty(), vec![layer])
    };
    manifest.to_bytes()
}

/// Pushes a bundle as a referrer of `subject`: the bundle blob, the empty config, then the
/// referrer manifest (discoverable through the referrers API or the fallback tag).
pub async fn push_bundle_referrer(
    store: &dyn Store,
    bundle_json: &[u8],
    predicate_type: &str,
    subject: &Descriptor,
) -> Result<Descriptor, StoreError> {
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    store
        .push_blob(&BytesSource(Bytes::copy_from_slice(bundle_json)))
        .await?;
    store
        .push_blob(&BytesSource(Bytes::from_static(b"{}")))
        .await?;
    let manifest = referrer_manifest(bundle_json, predicate_type, subject, &created);
    store.push_referrer(Bytes::from(manifest), subject).await
}

/// A bundle found among a subject's referrers.
#[derive(Debug)]
pub struct FoundBundle {
    /// The referrer manifest's descriptor.
    pub referrer: Descriptor,
    /// `dev.sigstore.bundle.predicateType` from the referrer manifest's annotations.
    pub annotated_predicate_type: Option<String>,
    /// The bundle bytes, or why they could not be read.
    pub bundle: Result<Bytes, BundleReadError>,
}

/// Why a referrer's bundle could not be read (the referrer counts for nothing; the report
/// names it with this message).
#[derive(Debug, thiserror::Error)]
pub enum BundleReadError {
    /// The referrer manifest could not be fetched.
    #[error("referrer {digest}: {source}")]
    Manifest {
        digest: Digest,
        #[source]
        source: StoreError,
    },
    /// The referrer manifest is oversized, malformed or has another subject.
    #[error(transparent)]
    Referrer(StoreError),
    /// The referrer manifest has no bundle layer.
    #[error("referrer {digest} has no layer of type {}", mt::SIGSTORE_BUNDLE_V03)]
    NoBundleLayer { digest: Digest },
    /// The bundle layer could not be fetched (missing, oversized, does not match its digest).
    #[error(transparent)]
    Bundle(StoreError),
}

/// Fetches every Sigstore bundle attached to `subject`. A referrer whose manifest or bundle
/// layer is missing, malformed, oversized or does not point at `subject` is returned with an
/// error (it counts for nothing, but the report names it).
pub async fn find_bundles(
    store: &dyn Store,
    subject: &Descriptor,
) -> Result<Vec<FoundBundle>, StoreError> {
    // Each referrer digest once, typed by its own manifest where the list does not say (the
    // same listing `discover` shows).
    let referrers = list_typed(store, subject, Some(mt::SIGSTORE_BUNDLE_V03)).await?;
    let mut found = Vec::new();
    for Listed {
        descriptor: referrer,
        manifest,
    } in referrers
    {
        let result = read_bundle(store, &referrer, manifest, subject).await;
        let (annotated_predicate_type, bundle) = match result {
            Ok((pt, b)) => (pt, Ok(b)),
            Err(e) => (None, Err(e)),
        };
        found.push(FoundBundle {
            referrer,
            annotated_predicate_type,
            bundle,
        });
    }
    Ok(found)
}

/// Read the bundle of `referrer`, whose manifest the listing may have fetched already.
async fn read_bundle(
    store: &dyn Store,
    referrer: &Descriptor,
    fetched: Option<Referrer>,
    subject: &Descriptor,
) -> Result<(Option<String>, Bytes), BundleReadError> {
    let referrer_manifest = match fetched {
        Some(r) => r,
        None => {
            let raw = store
                .fetch_manifest(referrer.digest.as_str())
                .await
                .map_err(|source| BundleReadError::Manifest {
                    digest: referrer.digest.clone(),
                    source,
                })?;
            Referrer::new(raw.bytes, &subject.digest).map_err(BundleReadError::Referrer)?
        }
    };
    let manifest = referrer_manifest.manifest();
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == mt::SIGSTORE_BUNDLE_V03)
        .ok_or_else(|| BundleReadError::NoBundleLayer {
            digest: referrer.digest.clone(),
        })?;
    let bundle = fetch_small_blob(
        store,
        layer,
        &format!("bundle {} of referrer {}", layer.digest, referrer.digest),
        mt::MAX_BUNDLE_SIZE,
    )
    .await
    .map_err(BundleReadError::Bundle)?;
    let pt = manifest
        .annotations
        .as_ref()
        .and_then(|a| a.get(mt::ANNOTATION_BUNDLE_PREDICATE_TYPE))
        .cloned();
    Ok((pt, bundle))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory store holding an empty manifest tagged `v1`: the subject referrers point at.
    async fn store_with_subject() -> (crate::store::memory::MemoryStore, Descriptor) {
        let store = crate::store::memory::MemoryStore::new("mem");
        let subject = store
            .push_manifest(
                Bytes::from(ImageManifest::new(Descriptor::empty(), vec![]).to_bytes()),
                mt::OCI_MANIFEST,
                Some("v1"),
            )
            .await
            .unwrap();
        (store, subject)
    }

    #[test]
    fn referrer_manifest_follows_design_section_5() {
        let subject = Descriptor::new(mt::OCI_MANIFEST, Digest::of(b"model"), 5);
        let bytes = referrer_manifest(
            b"{\"b\":1}",
            mt::PREDICATE_MODEL_SIGNING,
            &subject,
            "2026-01-01T00:00:00Z",
        );
        let m: ImageManifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some(mt::SIGSTORE_BUNDLE_V03));
        assert_eq!(m.config, Descriptor::empty());
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].media_type, mt::SIGSTORE_BUNDLE_V03);
        assert_eq!(m.layers[0].digest, Digest::of(b"{\"b\":1}"));
        assert_eq!(m.subject.as_ref().unwrap().digest, subject.digest);
        let a = m.annotations.unwrap();
        assert_eq!(a[mt::ANNOTATION_BUNDLE_CONTENT], "dsse-envelope");
        assert_eq!(
            a[mt::ANNOTATION_BUNDLE_PREDICATE_TYPE],
            mt::PREDICATE_MODEL_SIGNING
        );
        assert_eq!(a[mt::ANNOTATION_CREATED], "2026-01-01T00:00:00Z");
    }

    #[tokio::test]
    async fn unreadable_bundles_carry_typed_errors() {
        let (store, subject) = store_with_subject().await;
        // The bundle blob was never pushed.
        let referrer = referrer_manifest(b"{}", mt::PREDICATE_MODEL_SIGNING, &subject, "now");
        store
            .push_referrer(Bytes::from(referrer), &subject)
            .await
            .unwrap();
        // A referrer of the bundle type whose layer is something else.
        let mut m: ImageManifest = serde_json::from_slice(&referrer_manifest(
            b"{\"x\":1}",
            mt::PREDICATE_MODEL_SIGNING,
            &subject,
            "now",
        ))
        .unwrap();
        m.layers[0].media_type = "text/plain".into();
        let no_layer = store
            .push_referrer(Bytes::from(m.to_bytes()), &subject)
            .await
            .unwrap();
        let found = find_bundles(&store, &subject).await.unwrap();
        assert_eq!(found.len(), 2);
        for f in &found {
            let err = f.bundle.as_ref().unwrap_err();
            if f.referrer.digest == no_layer.digest {
                assert!(
                    matches!(err, BundleReadError::NoBundleLayer { .. }),
                    "{err}"
                );
                assert_eq!(
                    err.to_string(),
                    format!(
                        "referrer {} has no layer of type {}",
                        no_layer.digest,
                        mt::SIGSTORE_BUNDLE_V03
                    )
                );
            } else {
                assert!(matches!(err, BundleReadError::Bundle(_)), "{err}");
            }
        }
    }

    #[tokio::test]
    async fn a_referrer_listed_many_times_is_read_once() {
        let (store, subject) = store_with_subject().await;
        let bundle = b"{\"b\":1}";
        store
            .push_blob(&crate::store::BytesSource(Bytes::from_static(bundle)))
            .await
            .unwrap();
        let referrer = referrer_manifest(bundle, mt::PREDICATE_MODEL_SIGNING, &subject, "now");
        let pushed = store
            .push_referrer(Bytes::from(referrer), &subject)
            .await
            .unwrap();
        let mut store = crate::store::copy::tests::Counting::new(store);
        store.referrer_copies = 1000;
        let found = find_bundles(&store, &subject).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].referrer.digest, pushed.digest);
        assert!(found[0].bundle.is_ok());
        assert_eq!(
            store
                .manifest_reads
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert_eq!(
            store
                .blob_fetches
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    /// A store whose referrers list drops every entry's `artifactType` (as a fallback index
    /// after `skopeo copy --all`), over a store that counts manifest reads.
    struct Untyped(crate::store::copy::tests::Counting);

    #[async_trait::async_trait]
    impl Store for Untyped {
        fn location(&self) -> String {
            self.0.location()
        }
        async fn resolve_reference(
            &self,
            r: &crate::store::Reference,
        ) -> crate::store::Result<Descriptor> {
            self.0.resolve_reference(r).await
        }
        async fn read_manifest(
            &self,
            r: &crate::store::Reference,
        ) -> crate::store::Result<crate::store::RawManifest> {
            self.0.read_manifest(r).await
        }
        async fn write_manifest(
            &self,
            m: &crate::store::SizedManifest,
            t: &str,
            tag: Option<&crate::store::Tag>,
        ) -> crate::store::Result<()> {
            self.0.write_manifest(m, t, tag).await
        }
        async fn write_referrer(&self, r: &Referrer) -> crate::store::Result<()> {
            self.0.write_referrer(r).await
        }
        async fn blob_exists(&self, d: &Digest) -> crate::store::Result<bool> {
            self.0.blob_exists(d).await
        }
        async fn fetch_blob_raw(
            &self,
            d: &Descriptor,
        ) -> crate::store::Result<crate::store::BoxReader> {
            self.0.fetch_blob_raw(d).await
        }
        async fn push_blob(
            &self,
            s: &dyn crate::store::BlobSource,
        ) -> crate::store::Result<(Digest, u64)> {
            self.0.push_blob(s).await
        }
        async fn referrers(
            &self,
            s: &Descriptor,
            a: Option<&str>,
        ) -> crate::store::Result<Vec<Descriptor>> {
            assert!(a.is_none(), "list_typed filters on its side");
            let mut list = self.0.referrers(s, a).await?;
            for d in &mut list {
                d.artifact_type = None;
                d.annotations = None;
            }
            Ok(list)
        }
        async fn list_tags(&self) -> crate::store::Result<Vec<String>> {
            self.0.list_tags().await
        }
    }

    async fn untyped_store_with(types: &[Option<&str>]) -> (Untyped, Descriptor) {
        let (store, subject) = store_with_subject().await;
        for (i, t) in types.iter().enumerate() {
            let mut annotations = Annotations::new();
            annotations.insert("note".into(), i.to_string());
            let m = ImageManifest {
                artifact_type: t.map(str::to_string),
                subject: Some(subject.clone()),
                annotations: Some(annotations),
                ..ImageManifest::new(Descriptor::empty(), vec![])
            };
            store
                .push_referrer(Bytes::from(m.to_bytes()), &subject)
                .await
                .unwrap();
        }
        (
            Untyped(crate::store::copy::tests::Counting::new(store)),
            subject,
        )
    }

    #[tokio::test]
    async fn untyped_entries_are_typed_by_their_own_manifest_each_fetched_once() {
        let (mut store, subject) = untyped_store_with(&[
            Some(mt::SIGSTORE_BUNDLE_V03),
            Some("application/x-sbom"),
            None,
        ])
        .await;
        store.0.referrer_copies = 3;
        let reads = || {
            store
                .0
                .manifest_reads
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        let all = crate::store::referrers::list_typed(&store, &subject, None)
            .await
            .unwrap();
        assert_eq!(all.len(), 3, "each digest once");
        assert_eq!(reads(), 3, "each untyped referrer fetched once");
        let mut types: Vec<&str> = all
            .iter()
            .map(|l| l.descriptor.artifact_type.as_deref().unwrap())
            .collect();
        types.sort();
        // No artifactType in the manifest: its config media type stands in.
        assert_eq!(
            types,
            [mt::SIGSTORE_BUNDLE_V03, mt::OCI_EMPTY, "application/x-sbom"]
        );
        assert!(all.iter().all(|l| l.manifest.is_some()));
        // The annotations come back from the manifest too.
        assert!(all
            .iter()
            .all(|l| l.descriptor.annotation("note").is_some()));
        let bundles =
            crate::store::referrers::list_typed(&store, &subject, Some(mt::SIGSTORE_BUNDLE_V03))
                .await
                .unwrap();
        assert_eq!(bundles.len(), 1);
        assert_eq!(
            bundles[0].manifest.as_ref().unwrap().descriptor(),
            &bundles[0].descriptor
        );
    }

    #[tokio::test]
    async fn too_many_untyped_referrers_are_refused_before_any_fetch() {
        let types = vec![None; crate::store::limits::MAX_UNTYPED_REFERRERS + 1];
        let (store, subject) = untyped_store_with(&types).await;
        let err = match crate::store::referrers::list_typed(&store, &subject, None).await {
            Err(e) => e.to_string(),
            Ok(l) => panic!("listed {}", l.len()),
        };
        assert!(
            err.contains(&format!(
                "{} entries without artifactType",
                crate::store::limits::MAX_UNTYPED_REFERRERS + 1
            )),
            "{err}"
        );
        assert_eq!(
            store
                .0
                .manifest_reads
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }

    /// find_bundles (what verify reads) finds a bundle referrer listed without a type, reading
    /// its manifest once (no second fetch to read the bundle).
    #[tokio::test]
    async fn find_bundles_reads_an_untyped_bundle_referrer_once() {
        let (store, subject) = store_with_subject().await;
        let bundle = b"{\"b\":2}";
        store
            .push_blob(&BytesSource(Bytes::from_static(bundle)))
            .await
            .unwrap();
        let referrer = referrer_manifest(bundle, mt::PREDICATE_COSIGN_SIGN, &subject, "now");
        let pushed = store
            .push_referrer(Bytes::from(referrer), &subject)
            .await
            .unwrap();
        let store = Untyped(crate::store::copy::tests::Counting::new(store));
        let found = find_bundles(&store, &subject).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].referrer.digest, pushed.digest);
        assert_eq!(
            found[0].annotated_predicate_type.as_deref(),
            Some(mt::PREDICATE_COSIGN_SIGN)
        );
        assert_eq!(found[0].bundle.as_ref().unwrap().as_ref(), bundle);
        assert_eq!(
            store
                .0
                .manifest_reads
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
