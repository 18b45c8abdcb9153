//! The store contract: the same tests, run against the memory store, an OCI layout directory
//! and the real registry program. Whatever backs a store, a write is refused for the same
//! reasons (digest, size, manifest size limit, tag, referrer subject) and a read by digest is
//! checked the same way.

use crate::harness;
use bytes::Bytes;
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use oci_model::reference::Target;
use oci_model::store::layout::LayoutStore;
use oci_model::store::memory::MemoryStore;
use oci_model::store::registry::RegistryStore;
use oci_model::store::{
    fetch_blob_verified, fetch_small_blob, verified, Annotations, BytesSource, Descriptor,
    FileSource, ImageManifest, Store, StoreError, StoreOptions,
};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

/// Replaces the stored content of a blob or manifest (same length).
type Corrupt = Box<dyn Fn(&Digest, &[u8])>;

/// A store under test, and a way to corrupt what it holds.
struct Fixture {
    store: Arc<dyn Store>,
    corrupt: Corrupt,
    /// Keeps the layout directory alive.
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn memory() -> Fixture {
        let store = Arc::new(MemoryStore::new("contract"));
        let handle = store.clone();
        Fixture {
            store,
            corrupt: Box::new(move |d, b| handle.corrupt_blob(d, Bytes::copy_from_slice(b))),
            _dir: None,
        }
    }

    fn layout() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("layout");
        let store = LayoutStore::open_or_create(&root).unwrap();
        Fixture {
            store: Arc::new(store),
            corrupt: Box::new(move |d, b| {
                std::fs::write(root.join("blobs/sha256").join(d.hex()), b).unwrap()
            }),
            _dir: Some(dir),
        }
    }

    fn registry() -> Fixture {
        let reg = harness::Registry::start();
        let r = match Target::parse(&format!("{}/{}", reg.host, harness::repo("contract"))) {
            Ok(Target::Registry(r)) => r,
            other => panic!("{other:?}"),
        };
        let store = RegistryStore::new(&r, &StoreOptions::default()).unwrap();
        // The closure keeps the registry running as long as the fixture lives.
        Fixture {
            store: Arc::new(store),
            corrupt: Box::new(move |d, b| std::fs::write(reg.blob_data_path(d.hex()), b).unwrap()),
            _dir: None,
        }
    }
}

/// Each contract test, run on the three stores.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name(&super::Fixture::memory()).await
            }
            #[tokio::test]
            async fn layout() {
                super::$name(&super::Fixture::layout()).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn registry() {
                super::$name(&super::Fixture::registry()).await
            }
        }
    )*};
}

contract!(
    blobs_round_trip_and_wrong_digest_or_size_is_refused,
    a_blob_read_is_checked_against_its_descriptor,
    a_manifest_over_the_size_limit_is_refused,
    tags_and_references_are_validated,
    a_referrer_must_name_the_subject_it_is_pushed_for,
    referrers_are_listed_by_subject_and_artifact_type,
    tags_are_listed,
    a_manifest_fetched_by_digest_is_checked,
    missing_things_are_not_found,
);

/// A model-like manifest under `tag` (config `{}`, one layer, a `note` annotation).
async fn push_subject(s: &dyn Store, tag: &str, note: &str) -> Descriptor {
    s.push_blob(&BytesSource(Bytes::from_static(b"{}")))
        .await
        .unwrap();
    let (ld, ls) = s
        .push_blob(&BytesSource(Bytes::from(format!("weights for {tag}"))))
        .await
        .unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: Some(mt::MODEL_ARTIFACT.into()),
        config: Descriptor::empty(),
        layers: vec![Descriptor::new(mt::MODEL_WEIGHT, ld, ls)],
        subject: None,
        annotations: Some(Annotations::from([("note".into(), note.into())])),
    };
    s.push_manifest(
        Bytes::from(manifest.to_bytes()),
        mt::OCI_MANIFEST,
        Some(tag),
    )
    .await
    .unwrap()
}

/// A referrer manifest of `subject` (none: no subject); its layer is pushed.
async fn referrer(
    s: &dyn Store,
    subject: Option<&Descriptor>,
    artifact_type: &str,
    n: u32,
) -> Bytes {
    s.push_blob(&BytesSource(Bytes::from_static(b"{}")))
        .await
        .unwrap();
    let (ld, ls) = s
        .push_blob(&BytesSource(Bytes::from(format!("bundle {n}"))))
        .await
        .unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: Some(artifact_type.into()),
        config: Descriptor::empty(),
        layers: vec![Descriptor::new(mt::SIGSTORE_BUNDLE_V03, ld, ls)],
        subject: subject.cloned(),
        annotations: Some(Annotations::from([("test.n".into(), n.to_string())])),
    };
    Bytes::from(manifest.to_bytes())
}

async fn blobs_round_trip_and_wrong_digest_or_size_is_refused(f: &Fixture) {
    let s = &*f.store;
    let data = Bytes::from_static(b"model weights");
    let (d, n) = s.push_blob(&BytesSource(data.clone())).await.unwrap();
    assert_eq!((&d, n), (&Digest::of(&data), data.len() as u64));
    assert!(s.blob_exists(&d).await.unwrap());
    let read = fetch_small_blob(s, &Descriptor::new("x", d, n), "blob", 1024).await;
    assert_eq!(read.unwrap(), data);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, b"content").unwrap();
    let source = |size, digest| FileSource {
        path: path.clone(),
        size,
        digest,
    };
    let err = s
        .push_blob(&source(7, Some(Digest::of(b"other"))))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    for size in [3, 9] {
        let err = s.push_blob(&source(size, None)).await.unwrap_err();
        assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err}");
    }
    assert!(!s.blob_exists(&Digest::of(b"other")).await.unwrap());
    assert!(!s.blob_exists(&Digest::of(b"content")).await.unwrap());
}

async fn a_blob_read_is_checked_against_its_descriptor(f: &Fixture) {
    let s = &*f.store;
    let (d, n) = s
        .push_blob(&BytesSource(Bytes::from_static(b"good bytes")))
        .await
        .unwrap();
    let desc = Descriptor::new("x", d.clone(), n);
    // Asked for fewer bytes than there are: refused, whatever the content.
    let short = Descriptor::new("x", d.clone(), n - 1);
    let err = fetch_small_blob(s, &short, "blob", 1024).await.unwrap_err();
    assert!(matches!(err, StoreError::SizeMismatch { .. }), "{err}");
    (f.corrupt)(&d, b"evil bytes");
    let err = fetch_small_blob(s, &desc, "blob", 1024).await.unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    let msg = err.to_string();
    let evil = Digest::of(b"evil bytes");
    assert!(
        msg.contains(d.as_str()) && msg.contains(evil.as_str()),
        "{msg}"
    );
    let mut reader = fetch_blob_verified(s, &desc, "blob").await.unwrap();
    let mut out = Vec::new();
    let err = reader.read_to_end(&mut out).await.unwrap_err();
    assert!(verified::unwrap_io_error(err).is_integrity());
}

async fn a_manifest_over_the_size_limit_is_refused(f: &Fixture) {
    let s = &*f.store;
    let subject = push_subject(s, "v1", "n").await;
    let big = || Bytes::from(vec![b' '; mt::MAX_MANIFEST_SIZE as usize + 1]);
    let err = s
        .push_manifest(big(), mt::OCI_MANIFEST, Some("big"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    let err = s.push_referrer(big(), &subject).await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert!(matches!(
        s.resolve("big").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(s.list_tags().await.unwrap(), vec!["v1".to_string()]);
}

async fn tags_and_references_are_validated(f: &Fixture) {
    let s = &*f.store;
    let manifest = Bytes::from(
        ImageManifest {
            schema_version: 2,
            media_type: Some(mt::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::empty(),
            layers: vec![],
            subject: None,
            annotations: None,
        }
        .to_bytes(),
    );
    for bad in ["../x", "a/b", "", "-x", "tag?x=1", &"t".repeat(129)] {
        let err = s
            .push_manifest(manifest.clone(), mt::OCI_MANIFEST, Some(bad))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{bad}: {err}");
    }
    for bad in ["../x", "a/b", "", "sha256:abc", "tag?x=1"] {
        let err = s.resolve(bad).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{bad}: {err}");
        let err = s.fetch_manifest(bad).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid { .. }), "{bad}: {err}");
    }
    assert!(s.list_tags().await.unwrap().is_empty());
}

async fn a_referrer_must_name_the_subject_it_is_pushed_for(f: &Fixture) {
    let s = &*f.store;
    let subject = push_subject(s, "v1", "n").await;
    let other = push_subject(s, "v2", "n").await;
    let bytes = referrer(s, Some(&other), mt::SIGSTORE_BUNDLE_V03, 0).await;
    let err = s.push_referrer(bytes, &subject).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "its subject is {}, expected {}",
            other.digest, subject.digest
        )),
        "{msg}"
    );
    let bytes = referrer(s, None, mt::SIGSTORE_BUNDLE_V03, 1).await;
    let err = s.push_referrer(bytes, &subject).await.unwrap_err();
    assert!(err.to_string().contains("it has no subject"), "{err}");
    assert!(s.referrers(&subject, None).await.unwrap().is_empty());
    assert!(s.referrers(&other, None).await.unwrap().is_empty());
}

async fn referrers_are_listed_by_subject_and_artifact_type(f: &Fixture) {
    let s = &*f.store;
    let subject = push_subject(s, "v1", "n").await;
    let other = push_subject(s, "v2", "n").await;
    let sig = referrer(s, Some(&subject), mt::SIGSTORE_BUNDLE_V03, 1).await;
    let r1 = s.push_referrer(sig.clone(), &subject).await.unwrap();
    let r2 = s
        .push_referrer(
            referrer(s, Some(&subject), "application/vnd.example.other", 2).await,
            &subject,
        )
        .await
        .unwrap();
    assert_eq!(r1.digest, Digest::of(&sig));
    assert_eq!(r1.artifact_type.as_deref(), Some(mt::SIGSTORE_BUNDLE_V03));
    // Pushing the same referrer again adds nothing.
    assert_eq!(s.push_referrer(sig, &subject).await.unwrap(), r1);

    let mut all = s.referrers(&subject, None).await.unwrap();
    all.sort_by(|a, b| a.annotation("test.n").cmp(&b.annotation("test.n")));
    assert_eq!(all, vec![r1.clone(), r2]);
    let sigs = s
        .referrers(&subject, Some(mt::SIGSTORE_BUNDLE_V03))
        .await
        .unwrap();
    assert_eq!(sigs, vec![r1]);
    assert!(s.referrers(&other, None).await.unwrap().is_empty());
}

async fn tags_are_listed(f: &Fixture) {
    let s = &*f.store;
    let v1 = push_subject(s, "v1", "a").await;
    push_subject(s, "v2", "b").await;
    let raw = s.fetch_manifest("v1").await.unwrap();
    s.push_manifest(raw.bytes, mt::OCI_MANIFEST, Some("latest"))
        .await
        .unwrap();
    let mut tags = s.list_tags().await.unwrap();
    tags.sort();
    assert_eq!(tags, vec!["latest", "v1", "v2"]);
    assert_eq!(s.resolve("latest").await.unwrap(), v1);
}

async fn a_manifest_fetched_by_digest_is_checked(f: &Fixture) {
    let s = &*f.store;
    let subject = push_subject(s, "v1", "aaaa").await;
    let raw = s.fetch_manifest(subject.digest.as_str()).await.unwrap();
    assert_eq!(Digest::of(&raw.bytes), subject.digest);
    assert_eq!(raw.descriptor, subject);
    assert_eq!(s.resolve(subject.digest.as_str()).await.unwrap(), subject);

    let text = String::from_utf8(raw.bytes.to_vec()).unwrap();
    let tampered = text.replace("aaaa", "bbbb");
    assert_ne!(text, tampered);
    (f.corrupt)(&subject.digest, tampered.as_bytes());
    let err = s.fetch_manifest(subject.digest.as_str()).await.unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(subject.digest.as_str()), "{err}");
}

async fn missing_things_are_not_found(f: &Fixture) {
    let s = &*f.store;
    let absent = Digest::of(b"absent");
    let desc = Descriptor::new(mt::OCI_MANIFEST, absent.clone(), 6);
    for reference in ["nope", absent.as_str()] {
        let err = s.resolve(reference).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
        let err = s.fetch_manifest(reference).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains(reference), "{err}");
    }
    assert!(!s.blob_exists(&absent).await.unwrap());
    let err = fetch_small_blob(s, &desc, "blob", 1024).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(absent.as_str()) && msg.contains(&s.location()),
        "{msg}"
    );
    assert!(s.referrers(&desc, None).await.unwrap().is_empty());
    assert!(s.list_tags().await.unwrap().is_empty());
}
