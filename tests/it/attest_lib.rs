//! The attestation library against real stores: provenance materials given as registry
//! references (the real registry) and OCI layouts resolve to the manifests' digests.

use crate::harness;
use bytes::Bytes;
use oci_model::attest::{
    check_material, provenance_statement, AttestError, ProvenanceInput, Statement,
};
use oci_model::digest::Digest;
use oci_model::media_types::{OCI_EMPTY, OCI_EMPTY_DIGEST, OCI_MANIFEST};
use oci_model::reference::Target;
use oci_model::store::{self, BytesSource, StoreOptions};

/// Pushes a minimal OCI manifest (empty config, one layer) to `target` under `tag`.
async fn push_manifest(target: &Target, tag: &str, layer: &[u8]) -> Digest {
    let store = store::open(target, &StoreOptions::default()).await.unwrap();
    store
        .push_blob(&BytesSource(Bytes::from_static(b"{}")))
        .await
        .unwrap();
    let (layer_digest, layer_size) = store
        .push_blob(&BytesSource(Bytes::copy_from_slice(layer)))
        .await
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_EMPTY, "digest": OCI_EMPTY_DIGEST, "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": layer_digest, "size": layer_size}],
    });
    let bytes = Bytes::from(serde_json::to_vec(&manifest).unwrap());
    let digest = Digest::of(&bytes);
    let pushed = store
        .push_manifest(bytes, OCI_MANIFEST, Some(tag))
        .await
        .unwrap();
    assert_eq!(pushed.digest, digest);
    digest
}

async fn resolve(t: Target) -> anyhow::Result<Digest> {
    let store = store::open(&t, &StoreOptions::default()).await?;
    Ok(store.resolve(&t.reference()).await?.digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provenance_materials_resolve_registry_and_layout_references() {
    let reg = harness::Registry::start();
    let base_ref = format!("{}/{}", reg.host, harness::repo("attest-base"));
    let base = push_manifest(
        &Target::parse(&format!("{base_ref}:v1")).unwrap(),
        "v1",
        b"weights",
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}", dir.path().join("layout").display());
    let tokenizer = push_manifest(
        &Target::parse(&format!("{layout}:tok")).unwrap(),
        "tok",
        b"vocab",
    )
    .await;
    let data = dir.path().join("train.jsonl");
    std::fs::write(&data, b"{\"q\":1}\n").unwrap();

    let input = ProvenanceInput {
        builder_id: Some("https://ci.example.com/builders/gpu".into()),
        materials: vec![
            format!("base={base_ref}:v1"),
            format!("tokenizer={layout}:tok"),
            format!("data={}", data.display()),
        ],
        ..Default::default()
    };
    let model = Digest::from_raw(&[5; 32]);
    let statement = provenance_statement(&input, &base_ref, &model, &resolve)
        .await
        .unwrap();
    let statement: Statement = serde_json::from_slice(&statement.to_json_bytes()).unwrap();
    assert_eq!(statement.subject[0].digest["sha256"], model.hex());
    let predicate = &statement.predicate;
    check_material(predicate, "base", base.as_str()).unwrap();
    check_material(predicate, "tokenizer", tokenizer.as_str()).unwrap();
    check_material(predicate, "data", Digest::of(b"{\"q\":1}\n").as_str()).unwrap();
    let deps = &statement.predicate["buildDefinition"]["resolvedDependencies"];
    assert_eq!(deps[0]["uri"], format!("oci://{base_ref}@{base}"));
    assert_eq!(
        deps[1]["uri"],
        format!("oci:{}@{tokenizer}", dir.path().join("layout").display())
    );

    // A tag the registry does not have: the error names the material and the registry's answer.
    let missing = ProvenanceInput {
        materials: vec![format!("base={base_ref}:v404")],
        ..Default::default()
    };
    let err = provenance_statement(&missing, &base_ref, &model, &resolve)
        .await
        .unwrap_err();
    assert!(
        matches!(err, AttestError::MaterialUnresolved { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("\"base\"") && msg.contains("v404"), "{msg}");
}
