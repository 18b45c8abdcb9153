//! Issue 11 item 10: every read-modify-write of an index another tool may have written keeps
//! what that tool wrote. The registry's referrers fallback index (`sha256-<subject hex>`, on a
//! registry without the referrers API: Debian's `docker-registry` 2.8) and a layout's
//! `index.json`, rewritten by `sign` and `push`, keep the fields of foreign entries
//! (`platform`, `urls`, `data`, annotations, vendor keys, in their order) and of the index
//! itself (`annotations`, `subject`, vendor keys), and gain our entries. What is kept is
//! bounded by the caps on what is read: the manifest cap for a fallback index, the
//! `index.json` cap for a layout.

use crate::harness;
use crate::registry::{referrer_of, store};
use crate::support::{keypair, push, referrer_count, run_json, sign, small_model};
use bytes::Bytes;
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use oci_model::store::{BytesSource, Descriptor, ImageIndex, Store, StoreError};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Fields another tool writes on an index entry, deliberately not in our field order.
fn foreign_entry_fields() -> Value {
    json!({
        "io.example.first": {"nested": [1, 2.5, null, true, "x"]},
        "platform": {"architecture": "arm64", "os": "linux", "variant": "v8",
                     "os.features": ["a"], "io.example.p": 7},
        "urls": ["https://mirror.example.com/blob"],
        "data": "e30=",
        "annotations": {"io.example.note": "kept", "org.opencontainers.image.created": "2020-01-01T00:00:00Z"},
    })
}

/// Fields another tool writes on the index itself.
fn foreign_index_fields(subject: &Descriptor) -> Value {
    json!({
        "annotations": {"io.example.index": "kept"},
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size,
                    "io.example.s": "kept"},
        "io.example.top": {"list": [3, 2, 1]},
    })
}

/// `sign` rewrites the registry's fallback index: the foreign entry survives exactly (every
/// field, in its order), the index's own fields survive, and our two signatures (the
/// model-signing and the cosign-style bundle) are added.
#[test]
fn signing_keeps_every_field_of_a_foreign_fallback_index() {
    let reg = harness::Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let repo = harness::repo("foreign");
    let target = format!("{}/{repo}:v1", reg.host);
    let digest = push(&model, &target);

    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = store(&reg.host, &repo);
    let subject = rt.block_on(s.resolve("v1")).unwrap();
    assert_eq!(subject.digest.to_string(), digest);
    // Another tool's referrer (pushed by digest only, no referrer tag of ours) and the
    // fallback index it wrote, with fields we do not model.
    let foreign = rt
        .block_on(async {
            s.push_blob(&BytesSource(Bytes::from_static(b"{}"))).await?;
            let bytes = referrer_of(&s, &subject, "application/vnd.example.sbom", 1).await;
            s.push_manifest(bytes, mt::OCI_MANIFEST, None).await
        })
        .unwrap();
    let mut entry = json!({
        "mediaType": foreign.media_type,
        "digest": foreign.digest,
        "size": foreign.size,
        "artifactType": "application/vnd.example.sbom",
    });
    for (k, v) in foreign_entry_fields().as_object().unwrap() {
        entry[k] = v.clone();
    }
    let mut index = json!({
        "io.example.lead": "before schemaVersion",
        "schemaVersion": 2,
        "mediaType": mt::OCI_INDEX,
        "manifests": [entry.clone()],
    });
    for (k, v) in foreign_index_fields(&subject).as_object().unwrap() {
        index[k] = v.clone();
    }
    let tag = subject.digest.fallback_tag();
    rt.block_on(s.push_manifest(
        Bytes::from(serde_json::to_vec(&index).unwrap()),
        mt::OCI_INDEX,
        Some(&tag),
    ))
    .unwrap();

    let (key, _) = keypair(tmp.path(), "k");
    sign(&target, &key, &[]);

    let raw = rt.block_on(s.fetch_manifest(&tag)).unwrap();
    let after: Value = serde_json::from_slice(&raw.bytes).unwrap();
    assert_eq!(
        after["io.example.lead"], "before schemaVersion",
        "{after:#}"
    );
    for (k, v) in foreign_index_fields(&subject).as_object().unwrap() {
        assert_eq!(&after[k], v, "index field {k}: {after:#}");
    }
    let entries = after["manifests"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        3,
        "the foreign entry and our signatures: {after:#}"
    );
    // Byte for byte, so also in the order the other tool wrote the fields.
    assert_eq!(
        serde_json::to_string(&entries[0]).unwrap(),
        serde_json::to_string(&entry).unwrap()
    );
    for ours in &entries[1..] {
        assert_eq!(ours["artifactType"], mt::SIGSTORE_BUNDLE_V03, "{after:#}");
        let digest: Digest = ours["digest"].as_str().unwrap().parse().unwrap();
        assert!(rt.block_on(s.fetch_manifest(digest.as_str())).is_ok());
    }
    // Every referrer is listed, and the signatures verify.
    assert_eq!(referrer_count(&target), 3);
    let public = tmp.path().join("k.pub");
    let verified = run_json(&["verify", &target, "--key", public.to_str().unwrap()]);
    assert_eq!(verified["ok"], true, "{verified:#}");
}

/// A layout's `index.json` another tool wrote: pushing the same tag again (its entry moves),
/// another tag, and signing keep the fields of the index and of its entries, annotations
/// included (the tag annotation is ours to set).
#[test]
fn a_layout_keeps_foreign_annotations_when_a_tag_moves() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let layout = tmp.path().join("layout");
    let target = format!("oci:{}:v1", layout.display());
    let digest = push(&model, &target);
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    for (k, v) in foreign_entry_fields().as_object().unwrap() {
        if k == "annotations" {
            for (a, t) in v.as_object().unwrap() {
                index["manifests"][0]["annotations"][a] = t.clone();
            }
        } else {
            index["manifests"][0][k] = v.clone();
        }
    }
    let subject = Descriptor::new(mt::OCI_MANIFEST, digest.parse().unwrap(), 1);
    for (k, v) in foreign_index_fields(&subject).as_object().unwrap() {
        index[k] = v.clone();
    }
    std::fs::write(&index_path, serde_json::to_vec_pretty(&index).unwrap()).unwrap();

    push(&model, &target);
    push(&model, &format!("oci:{}:v2", layout.display()));
    let (key, _) = keypair(tmp.path(), "k");
    sign(&target, &key, &[]);

    let after: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    for (k, v) in foreign_index_fields(&subject).as_object().unwrap() {
        assert_eq!(&after[k], v, "index field {k}: {after:#}");
    }
    let entries = after["manifests"].as_array().unwrap();
    let v1 = entries
        .iter()
        .find(|e| e["annotations"][mt::ANNOTATION_REF_NAME] == "v1")
        .expect("v1 still tagged");
    for (k, v) in foreign_entry_fields().as_object().unwrap() {
        if k == "annotations" {
            for (a, t) in v.as_object().unwrap() {
                assert_eq!(&v1["annotations"][a], t, "annotation {a}: {after:#}");
            }
        } else {
            assert_eq!(&v1[k], v, "entry field {k}: {after:#}");
        }
    }
    // One entry per tag, plus the two signatures.
    assert_eq!(entries.len(), 4, "{after:#}");
    let signatures = entries
        .iter()
        .filter(|e| e["artifactType"] == mt::SIGSTORE_BUNDLE_V03)
        .count();
    assert_eq!(signatures, 2, "{after:#}");
    let v2 = entries
        .iter()
        .find(|e| e["annotations"][mt::ANNOTATION_REF_NAME] == "v2")
        .expect("v2 tagged");
    assert!(
        v2.get("platform").is_none(),
        "a new entry is ours alone: {after:#}"
    );
}

/// The bound on what is kept: a fallback index is read like every manifest, within
/// `MAX_MANIFEST_SIZE`; one over it (served here by a proxy in front of the real registry) is
/// refused before it is parsed, naming the tag, and never rewritten.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fallback_index_over_the_manifest_cap_is_refused_and_left_alone() {
    let reg = harness::Registry::start();
    let repo = harness::repo("bigindex");
    let direct = store(&reg.host, &repo);
    let subject = crate::registry::push_subject(&direct, "v1").await;
    let tag = subject.digest.fallback_tag();
    let index_puts = Arc::new(AtomicUsize::new(0));
    let hook: crate::registry::Hook = {
        let (tag, index_puts) = (tag.clone(), index_puts.clone());
        Box::new(move |m, p, _| {
            if !p.ends_with(&format!("/manifests/{tag}")) {
                return None;
            }
            if *m == reqwest::Method::PUT {
                index_puts.fetch_add(1, Ordering::SeqCst);
                return None;
            }
            // An index whose unknown field alone is one byte over the cap.
            let filler = "x".repeat(mt::MAX_MANIFEST_SIZE as usize);
            let body = format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[],"io.example.big":"{filler}"}}"#,
                mt::OCI_INDEX
            );
            Some(
                axum::response::Response::builder()
                    .status(200)
                    .header("Content-Type", mt::OCI_INDEX)
                    .body(axum::body::Body::from(body))
                    .unwrap(),
            )
        })
    };
    let proxy = crate::registry::Proxy::start(&reg.host, hook).await;
    let s = store(&proxy.host, &repo);
    let err = s.referrers(&subject, None).await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("manifest {tag} is")),
        "{err}"
    );
    s.push_blob(&BytesSource(Bytes::from_static(b"{}")))
        .await
        .unwrap();
    let referrer = referrer_of(&s, &subject, mt::SIGSTORE_BUNDLE_V03, 1).await;
    let err = s.push_referrer(referrer, &subject).await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("manifest {tag} is")),
        "{err}"
    );
    assert_eq!(
        index_puts.load(Ordering::SeqCst),
        0,
        "the index was rewritten"
    );
}

/// A layout's `index.json` is read within its cap (64 MiB): one over it is refused naming
/// the file, before it is parsed, and a write leaves it as it was.
#[tokio::test]
async fn a_layout_index_over_its_cap_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::write(
        root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = root.join("index.json");
    let size = 64 * 1024 * 1024 + 1;
    std::fs::File::create(&index)
        .unwrap()
        .set_len(size)
        .unwrap();
    let s = oci_model::store::layout::LayoutStore::open_or_create(root).unwrap();
    let err = s.list_tags().await.unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("index.json"), "{err}");
    let err = s
        .push_manifest(
            Bytes::from(ImageIndex::new().to_bytes()),
            mt::OCI_INDEX,
            Some("v1"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge { .. }), "{err}");
    assert_eq!(std::fs::metadata(&index).unwrap().len(), size);
}
