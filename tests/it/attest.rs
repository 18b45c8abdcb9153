//! attest → verify with required attestations, against the real registry: generated SLSA
//! provenance with materials, any predicate from a file, and every bad input the issue names.

use crate::harness::{self, Registry};
use crate::support::{keypair, push, sign, write_model};
use oci_model::media_types as mt;
use serde_json::Value;
use std::path::Path;

fn run(args: &[&str]) -> (i32, Value, String) {
    let out = harness::bin()
        .args(args)
        .args(["--output", "json"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

struct Setup {
    reg: Registry,
    tmp: tempfile::TempDir,
    target: String,
    key: std::path::PathBuf,
    public: std::path::PathBuf,
}

fn setup(name: &str) -> Setup {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    write_model(
        &model,
        &[
            ("model.safetensors", &harness::pseudo_random(4096, 11)),
            ("config.json", b"{}"),
        ],
    );
    let (key, public) = keypair(tmp.path(), "k");
    let target = format!("{}/{}:v1", reg.host, harness::repo(name));
    push(&model, &target);
    sign(&target, &key, &[]);
    Setup {
        reg,
        tmp,
        target,
        key,
        public,
    }
}

#[test]
fn provenance_attestation_is_required_and_checked() {
    let s = setup("provenance");
    let data = s.tmp.path().join("train.csv");
    std::fs::write(&data, "x,y\n1,2\n").unwrap();
    let params = s.tmp.path().join("params.yaml");
    std::fs::write(&params, "lr: 0.001\nepochs: 3\n").unwrap();
    let base_model = s.tmp.path().join("base");
    write_model(&base_model, &[("w.bin", b"base weights")]);
    let base_ref = format!("{}/{}:base", s.reg.host, harness::repo("base"));
    let base_digest = push(&base_model, &base_ref);

    // Verify requiring provenance before there is any: fails.
    let (code, _, stderr) = run(&[
        "verify",
        &s.target,
        "--key",
        p(&s.public),
        "--attestation-type",
        "slsaprovenance1",
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(mt::PREDICATE_SLSA_PROVENANCE_V1),
        "{stderr}"
    );

    let (code, out, stderr) = run(&[
        "attest",
        &s.target,
        "--provenance",
        "--key",
        p(&s.key),
        "--command",
        "python train.py --epochs 3",
        "--parameters",
        p(&params),
        "--material",
        &format!("dataset={}", p(&data)),
        "--material",
        &format!("base-model={base_ref}"),
        "--builder-id",
        "https://ci.example.com/trainer@v1",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(out["predicateType"], mt::PREDICATE_SLSA_PROVENANCE_V1);

    let data_digest = format!(
        "sha256:{}",
        oci_model::digest::Digest::of(b"x,y\n1,2\n").hex()
    );
    let (code, report, stderr) = run(&[
        "verify",
        &s.target,
        "--key",
        p(&s.public),
        "--attestation-type",
        "slsaprovenance1",
        "--provenance-builder-id",
        "https://ci.example.com/trainer@v1",
        "--provenance-material",
        &format!("dataset={data_digest}"),
        "--provenance-material",
        &format!("base-model={base_digest}"),
        "--show-attestations",
    ]);
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let atts = report["attestations"].as_array().unwrap();
    let prov = atts
        .iter()
        .find(|a| a["predicateType"] == mt::PREDICATE_SLSA_PROVENANCE_V1)
        .unwrap();
    assert_eq!(
        prov["predicate"]["buildDefinition"]["externalParameters"]["command"],
        "python train.py --epochs 3"
    );
    assert_eq!(
        prov["predicate"]["buildDefinition"]["externalParameters"]["parameters"]["epochs"],
        3
    );

    // Wrong builder id or wrong material digest: verification fails and says why.
    let (code, _, stderr) = run(&[
        "verify",
        &s.target,
        "--key",
        p(&s.public),
        "--provenance-builder-id",
        "https://evil.example.com/b",
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("https://evil.example.com/b"), "{stderr}");
    let (code, _, stderr) = run(&[
        "verify",
        &s.target,
        "--key",
        p(&s.public),
        "--provenance-material",
        &format!("dataset=sha256:{}", "0".repeat(64)),
    ]);
    assert_eq!(code, 1);
    assert!(stderr.contains("dataset"), "{stderr}");
}

#[test]
fn any_predicate_from_a_file_and_bad_predicate_inputs() {
    let s = setup("predicate");
    let eval = s.tmp.path().join("eval.json");
    std::fs::write(&eval, r#"{"accuracy": 0.93, "dataset": "glue"}"#).unwrap();
    let (code, _, stderr) = run(&[
        "attest",
        &s.target,
        "--predicate",
        p(&eval),
        "--type",
        "https://example.com/eval/v1",
        "--key",
        p(&s.key),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&[
        "verify",
        &s.target,
        "--key",
        p(&s.public),
        "--attestation-type",
        "https://example.com/eval/v1",
    ]);
    assert_eq!(code, 0, "{stderr}");

    // Not JSON: usage error naming the file, nothing pushed.
    let bad = s.tmp.path().join("bad.json");
    std::fs::write(&bad, "accuracy: high").unwrap();
    let (code, _, stderr) = run(&[
        "attest",
        &s.target,
        "--predicate",
        p(&bad),
        "--type",
        "https://example.com/x/v1",
        "--key",
        p(&s.key),
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad.json") && stderr.contains("not JSON"),
        "{stderr}"
    );

    // A material path that does not exist.
    let (code, _, stderr) = run(&[
        "attest",
        &s.target,
        "--provenance",
        "--key",
        p(&s.key),
        "--builder-id",
        "https://b.example/x",
        "--material",
        "data=/no/such/file.csv",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/no/such/file.csv"), "{stderr}");

    // Nothing of the failed runs was attached: the tree has 2 signatures + 1 attestation.
    let (code, tree, _) = run(&["discover", &s.target]);
    assert_eq!(code, 0);
    assert_eq!(tree["referrers"].as_array().unwrap().len(), 3, "{tree:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_subject_mismatched_annotation_and_untrusted_attestations_do_not_count() {
    use oci_model::reference::Target;
    use oci_model::store::{self, StoreOptions};
    let s = setup("hostile-att");
    let eval = s.tmp.path().join("eval.json");
    std::fs::write(&eval, r#"{"score": 1}"#).unwrap();
    let (untrusted_key, _) = keypair(s.tmp.path(), "untrusted");

    // 1. An attestation signed by an untrusted key next to the trusted signature.
    let (code, _, stderr) = run(&[
        "attest",
        &s.target,
        "--predicate",
        p(&eval),
        "--type",
        "https://example.com/eval/v1",
        "--key",
        p(&untrusted_key),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&[
        "verify",
        &s.target,
        "--key",
        p(&s.public),
        "--attestation-type",
        "https://example.com/eval/v1",
    ]);
    assert_eq!(code, 1, "an untrusted attestation was counted: {stderr}");

    // 2. An attestation about another manifest, attached to this one.
    let other_dir = s.tmp.path().join("other");
    write_model(&other_dir, &[("x.bin", b"other model")]);
    let other = format!("{}/{}:v1", s.reg.host, harness::repo("other"));
    push(&other_dir, &other);
    let (code, _, stderr) = run(&[
        "attest",
        &other,
        "--predicate",
        p(&eval),
        "--type",
        "https://example.com/eval/v1",
        "--key",
        p(&s.key),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let opts = StoreOptions {
        max_attempts: 1,
        ..Default::default()
    };
    let other_store = store::open(&Target::parse(&other).unwrap(), &opts)
        .await
        .unwrap();
    let other_subject = other_store.resolve("v1").await.unwrap();
    let found = oci_model::sigstore_ops::find_bundles(other_store.as_ref(), &other_subject)
        .await
        .unwrap();
    let foreign = found
        .iter()
        .find(|f| f.annotated_predicate_type.as_deref() == Some("https://example.com/eval/v1"))
        .unwrap()
        .bundle
        .as_ref()
        .unwrap()
        .clone();
    let this_store = store::open(&Target::parse(&s.target).unwrap(), &opts)
        .await
        .unwrap();
    let subject = this_store.resolve("v1").await.unwrap();
    oci_model::sigstore_ops::push_bundle_referrer(
        this_store.as_ref(),
        &foreign,
        "https://example.com/eval/v1",
        &subject,
    )
    .await
    .unwrap();
    // 3. A trusted attestation of this manifest re-attached under another predicate type.
    let (code, _, stderr) = run(&[
        "attest",
        &s.target,
        "--predicate",
        p(&eval),
        "--type",
        "https://example.com/own/v1",
        "--key",
        p(&s.key),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let own = oci_model::sigstore_ops::find_bundles(this_store.as_ref(), &subject)
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.annotated_predicate_type.as_deref() == Some("https://example.com/own/v1"))
        .unwrap()
        .bundle
        .unwrap();
    oci_model::sigstore_ops::push_bundle_referrer(
        this_store.as_ref(),
        &own,
        "https://example.com/eval/v1",
        &subject,
    )
    .await
    .unwrap();

    let (target, public) = (s.target.clone(), s.public.clone());
    let (code, report, stderr) = tokio::task::spawn_blocking(move || {
        run(&[
            "verify",
            &target,
            "--key",
            p(&public),
            "--attestation-type",
            "https://example.com/eval/v1",
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{stderr}");
    let errors: Vec<String> = report["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["error"].as_str().map(str::to_string))
        .collect();
    let all = errors.join("\n");
    assert!(
        all.contains("subject") || all.contains("digest"),
        "foreign subject not named: {all}"
    );
    assert!(
        all.contains("annotated"),
        "annotation mismatch not named: {all}"
    );
    let _keep = s.key;
}
