//! push → sign → verify → pull --key against the real registry (and a layout), and every way a
//! signature must fail: wrong key, tampered payload, another model's signature, changed files,
//! v0.2 media type, malformed bundles, missing or oversized bundle layers.

use crate::harness::{self, Registry};
use crate::support::{json_of, keypair, push, sign, write_model};
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use oci_model::reference::Target;
use oci_model::sigstore_ops;
use oci_model::store::{self, Descriptor, Store, StoreOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Run `verify TARGET --key PUB --output json`: (exit code, report, stderr).
pub(crate) fn verify(target: &str, keys: &[&Path], extra: &[&str]) -> (i32, Value, String) {
    let mut cmd = harness::bin();
    cmd.args(["verify", target, "--output", "json"]);
    for k in keys {
        cmd.arg("--key").arg(k);
    }
    let out = cmd.args(extra).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        json_of(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub(crate) async fn open(t: &str) -> Arc<dyn Store> {
    store::open(
        &Target::parse(t).unwrap(),
        &StoreOptions {
            max_attempts: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// The model-signing bundle attached to `target` (reads the referrer like a client would).
pub(crate) async fn oms_bundle(target: &str) -> Vec<u8> {
    let s = open(target).await;
    let t = Target::parse(target).unwrap();
    let subject = s.resolve(&t.reference()).await.unwrap();
    let found = sigstore_ops::find_bundles(s.as_ref(), &subject)
        .await
        .unwrap();
    let b = found
        .into_iter()
        .find(|f| f.annotated_predicate_type.as_deref() == Some(mt::PREDICATE_MODEL_SIGNING))
        .expect("a model-signing referrer");
    b.bundle.unwrap().to_vec()
}

pub(crate) async fn attach(target: &str, bundle: &[u8], predicate_type: &str) -> Descriptor {
    let s = open(target).await;
    let t = Target::parse(target).unwrap();
    let subject = s.resolve(&t.reference()).await.unwrap();
    sigstore_ops::push_bundle_referrer(s.as_ref(), bundle, predicate_type, &subject)
        .await
        .unwrap()
}

fn failed_reasons(report: &Value) -> String {
    report["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|b| b["error"].as_str())
        .collect::<Vec<_>>()
        .join(" | ")
}

#[test]
fn push_sign_verify_and_pull_with_key() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("bert");
    write_model(
        &model,
        &[
            ("config.json", b"{}"),
            (
                "weights/model.safetensors",
                &harness::pseudo_random(300_000, 7),
            ),
            (".hidden", b""),
            ("README.md", b"# bert"),
        ],
    );
    let (key, public) = keypair(tmp.path(), "signer");
    let target = format!("{}/{}:v1", reg.host, harness::repo("signed"));
    let digest = push(&model, &target);
    sign(&target, &key, &[]);

    let (code, report, stderr) = verify(&target, &[&public], &[]);
    assert_eq!(code, 0, "verify failed: {stderr}\n{report:#}");
    assert_eq!(report["ok"], true);
    assert!(report["target"].as_str().unwrap().ends_with(&digest));
    let bundles = report["bundles"].as_array().unwrap();
    assert_eq!(
        bundles.len(),
        2,
        "model-signing and cosign-style bundles: {report:#}"
    );
    assert!(bundles.iter().all(|b| b["ok"] == true));
    let oms = bundles
        .iter()
        .find(|b| b["predicateType"] == mt::PREDICATE_MODEL_SIGNING)
        .unwrap();
    assert!(oms["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "resources"));

    // pull --key verifies and then writes the files.
    let out_dir = tmp.path().join("pulled");
    harness::bin()
        .args(["pull", &target])
        .arg(&out_dir)
        .arg("--key")
        .arg(&public)
        .assert()
        .success();
    assert_eq!(
        std::fs::read(out_dir.join("weights/model.safetensors")).unwrap(),
        harness::pseudo_random(300_000, 7)
    );
    assert!(out_dir.join(".hidden").exists());
}

#[test]
fn wrong_key_fails_verify_and_pull_writes_nothing() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    write_model(&model, &[("model.gguf", b"gguf weights")]);
    let (key, _) = keypair(tmp.path(), "good");
    let (_, other_public) = keypair(tmp.path(), "other");
    let target = format!("{}/{}:v1", reg.host, harness::repo("wrongkey"));
    push(&model, &target);
    sign(&target, &key, &[]);

    let (code, report, stderr) = verify(&target, &[&other_public], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(report["ok"], false);
    assert!(stderr.contains("verification of"), "{stderr}");
    assert!(
        failed_reasons(&report).to_lowercase().contains("key"),
        "{report:#}"
    );

    let out_dir = tmp.path().join("out");
    let out = harness::bin()
        .args(["pull", &target])
        .arg(&out_dir)
        .arg("--key")
        .arg(&other_public)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was written"));
    assert!(
        !out_dir.exists() || std::fs::read_dir(&out_dir).unwrap().next().is_none(),
        "pull wrote files after a failed verification"
    );
}

#[test]
fn unsigned_model_and_manifest_swapped_after_signing_fail() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "k");
    let a = tmp.path().join("a");
    write_model(&a, &[("model.bin", b"version one")]);
    let b = tmp.path().join("b");
    write_model(&b, &[("model.bin", b"version two")]);
    let target = format!("{}/{}:v1", reg.host, harness::repo("swap"));
    push(&a, &target);
    sign(&target, &key, &[]);
    assert_eq!(verify(&target, &[&public], &[]).0, 0);

    // Someone pushes another model under the same tag: its manifest has no signature.
    push(&b, &target);
    let (code, report, stderr) = verify(&target, &[&public], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no signatures or attestations are attached"),
        "{stderr}\n{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signature_from_another_model_or_changed_files_is_rejected() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "k");
    let repo = harness::repo("resources");
    let signed = format!("{}/{repo}:signed", reg.host);
    let base = tmp.path().join("base");
    write_model(&base, &[("a.bin", b"aaa"), ("b.json", b"{}")]);
    push(&base, &signed);
    sign(&signed, &key, &["--no-cosign-bundle"]);
    let bundle = oms_bundle(&signed).await;

    // Each variant carries the original's (valid, trusted) signature as a referrer.
    type Files<'a> = &'a [(&'a str, &'a [u8])];
    let cases: [(&str, Files, &str); 3] = [
        (
            "extra",
            &[("a.bin", b"aaa"), ("b.json", b"{}"), ("c.py", b"print()")],
            "files not in the signature: c.py",
        ),
        ("missing", &[("a.bin", b"aaa")], "missing files: b.json"),
        (
            "changed",
            &[("a.bin", b"AAA"), ("b.json", b"{}")],
            "changed file a.bin",
        ),
    ];
    for (tag, files, expected) in cases {
        let dir = tmp.path().join(tag);
        write_model(&dir, files);
        let t = format!("{}/{repo}:{tag}", reg.host);
        push(&dir, &t);
        attach(&t, &bundle, mt::PREDICATE_MODEL_SIGNING).await;
        let (code, report, _) = tokio::task::spawn_blocking({
            let t = t.clone();
            let public = public.clone();
            move || verify(&t, &[&public], &[])
        })
        .await
        .unwrap();
        assert_eq!(code, 1, "{tag}: {report:#}");
        assert!(
            failed_reasons(&report).contains(expected),
            "{tag}: expected {expected:?} in {report:#}"
        );
    }
}

/// Re-encode the DSSE payload of `bundle` after `edit`ing the statement (signature unchanged).
fn tamper_payload(bundle: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut v: Value = serde_json::from_slice(bundle).unwrap();
    let payload = b64
        .decode(v["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let mut statement: Value = serde_json::from_slice(&payload).unwrap();
    edit(&mut statement);
    v["dsseEnvelope"]["payload"] =
        Value::String(b64.encode(serde_json::to_vec(&statement).unwrap()));
    serde_json::to_vec(&v).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn tampered_malformed_and_v02_bundles_are_rejected_with_reasons() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "k");
    let repo = harness::repo("hostile");
    let model = tmp.path().join("m");
    write_model(&model, &[("w.safetensors", b"weights")]);
    let source = format!("{}/{repo}:source", reg.host);
    push(&model, &source);
    sign(&source, &key, &["--no-cosign-bundle"]);
    let good = oms_bundle(&source).await;

    let tampered = tamper_payload(&good, |s| {
        s["predicate"]["resources"][0]["digest"] = Value::String("00".repeat(32));
    });
    let mut v02: Value = serde_json::from_slice(&good).unwrap();
    v02["mediaType"] = Value::String(mt::SIGSTORE_BUNDLE_V02.into());
    let v02 = serde_json::to_vec(&v02).unwrap();
    let mut bad_b64: Value = serde_json::from_slice(&good).unwrap();
    bad_b64["dsseEnvelope"]["signatures"][0]["sig"] = Value::String("!!not base64!!".into());
    let bad_b64 = serde_json::to_vec(&bad_b64).unwrap();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("tampered", tampered, "signature"),
        ("v02", v02, "0.2"),
        ("badjson", b"{\"mediaType\": ".to_vec(), "json"),
        ("badb64", bad_b64, "base64"),
    ];
    for (tag, bundle, expected) in cases {
        // A fresh copy of the same model (same manifest digest) in its own repository.
        let repo_t = format!("{}/{repo}-{tag}:v1", reg.host);
        push(&model, &repo_t);
        attach(&repo_t, &bundle, mt::PREDICATE_MODEL_SIGNING).await;
        let (code, report, _) = tokio::task::spawn_blocking({
            let public = public.clone();
            move || verify(&repo_t, &[&public], &[])
        })
        .await
        .unwrap();
        assert_eq!(code, 1, "{tag}: {report:#}");
        let reasons = failed_reasons(&report).to_lowercase();
        assert!(
            reasons.contains(expected),
            "{tag}: expected {expected:?} in {reasons}"
        );
    }

    // A malformed bundle next to a valid one counts for nothing; the valid one still passes.
    let both = format!("{}/{repo}-both:v1", reg.host);
    push(&model, &both);
    attach(&both, b"not json at all", mt::PREDICATE_MODEL_SIGNING).await;
    attach(&both, &good, mt::PREDICATE_MODEL_SIGNING).await;
    // (signed with --no-cosign-bundle: the file signature alone is accepted only when allowed)
    let (code, report, stderr) = tokio::task::spawn_blocking(move || {
        verify(&both, &[&public], &["--allow-unsigned-metadata"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr} {report:#}");
    assert_eq!(
        report["bundles"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["ok"] == false)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn referrer_with_missing_or_oversized_bundle_layer_is_reported() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "k");
    let model = tmp.path().join("m");
    write_model(&model, &[("w.bin", b"weights")]);
    let target = format!("{}/{}:v1", reg.host, harness::repo("layers"));
    push(&model, &target);
    sign(&target, &key, &["--no-cosign-bundle"]);
    let bundle = oms_bundle(&target).await;

    // Oversized: a referrer (in another repository) whose bundle layer claims 5 MiB.
    let other = format!("{}/{}:v1", reg.host, harness::repo("oversized"));
    push(&model, &other);
    let s = open(&other).await;
    let subject = s.resolve("v1").await.unwrap();
    s.push_blob(&oci_model::store::BytesSource(bytes::Bytes::from(
        bundle.clone(),
    )))
    .await
    .unwrap();
    s.push_blob(&oci_model::store::BytesSource(bytes::Bytes::from_static(
        b"{}",
    )))
    .await
    .unwrap();
    let mut manifest: oci_model::store::ImageManifest =
        serde_json::from_slice(&sigstore_ops::referrer_manifest(
            &bundle,
            mt::PREDICATE_MODEL_SIGNING,
            &subject,
            "2026-01-01T00:00:00Z",
        ))
        .unwrap();
    manifest.layers[0].size = 5 * 1024 * 1024;
    s.push_referrer(bytes::Bytes::from(manifest.to_bytes()), &subject)
        .await
        .unwrap();
    let (code, report, _) = tokio::task::spawn_blocking({
        let p = public.clone();
        move || verify(&other, &[&p], &[])
    })
    .await
    .unwrap();
    assert_eq!(code, 1);
    assert!(failed_reasons(&report).contains("limit"), "{report:#}");

    // Missing: delete the bundle blob from the registry's storage.
    let hex = Digest::of(&bundle).hex().to_string();
    std::fs::remove_dir_all(reg.blob_data_path(&hex).parent().unwrap()).unwrap();
    let (code, report, _) = tokio::task::spawn_blocking(move || verify(&target, &[&public], &[]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{report:#}");
    assert!(failed_reasons(&report).contains(&hex), "{report:#}");
}

#[test]
fn verify_reads_no_model_blob() {
    // Delete every file blob from the registry's storage after signing: verify must still pass,
    // which proves it never downloads the model (it reads manifests and bundles only).
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "k");
    let model = tmp.path().join("m");
    let big = harness::pseudo_random(8 << 20, 3);
    write_model(
        &model,
        &[("model.safetensors", &big), ("config.json", b"{\"a\":1}")],
    );
    let target = format!("{}/{}:v1", reg.host, harness::repo("noblob"));
    push(&model, &target);
    sign(&target, &key, &[]);
    for content in [&big[..], b"{\"a\":1}"] {
        let hex = Digest::of(content).hex().to_string();
        std::fs::remove_dir_all(reg.blob_data_path(&hex).parent().unwrap()).unwrap();
    }
    let (code, report, stderr) = verify(&target, &[&public], &[]);
    assert_eq!(code, 0, "{stderr} {report:#}");
}

#[test]
fn sign_and_verify_an_oci_layout_target() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "k");
    let model = tmp.path().join("m");
    write_model(
        &model,
        &[("model.onnx", b"onnx"), ("tokenizer.json", b"{}")],
    );
    let target = format!("oci:{}:v1", tmp.path().join("layout").display());
    push(&model, &target);
    sign(&target, &key, &[]);
    let (code, report, stderr) = verify(&target, &[&public], &[]);
    assert_eq!(code, 0, "{stderr} {report:#}");
    assert_eq!(report["bundles"].as_array().unwrap().len(), 2);
}

#[test]
fn twenty_concurrent_sign_runs_leave_twenty_referrers() {
    // distribution 2.8 has no referrers API: every run updates the sha256-<hex> fallback index.
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    write_model(&model, &[("w.bin", b"concurrent")]);
    let target = format!("{}/{}:v1", reg.host, harness::repo("concurrent"));
    push(&model, &target);
    let keys: Vec<PathBuf> = (0..20)
        .map(|i| keypair(tmp.path(), &format!("k{i}")).0)
        .collect();
    let children: Vec<_> = keys
        .iter()
        .map(|k| {
            let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("oci-model"));
            c.args(["sign", &target, "--no-cosign-bundle", "--key"])
                .arg(k);
            c.env("HOME", tmp.path())
                .env("DOCKER_CONFIG", tmp.path().join(".docker"));
            c.stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = harness::bin()
        .args(["discover", &target, "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let tree = json_of(&out);
    assert_eq!(tree["referrers"].as_array().unwrap().len(), 20, "{tree:#}");
}

/// The real production keyless model signature (model-transparency v1.1.0, Fulcio + Rekor),
/// attached to the same files pushed to the registry: verify and pull check it by identity.
#[tokio::test(flavor = "multi_thread")]
async fn real_keyless_model_signature_verifies_by_identity_through_the_registry() {
    const IDENTITY: &str = "stefanb@us.ibm.com";
    const ISSUER: &str = "https://sigstore.verify.ibm.com/oauth2";
    let reg = Registry::start();
    let fixture = harness::project_root().join("testdata/model-signing/v1.1.0-sigstore");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    for f in ["signme-1", "signme-2"] {
        write_model(&model, &[(f, &std::fs::read(fixture.join(f)).unwrap())]);
    }
    let target = format!("{}/{}:v1", reg.host, harness::repo("keyless-real"));
    push(&model, &target);
    let bundle = std::fs::read(fixture.join("model.sig")).unwrap();
    attach(&target, &bundle, mt::PREDICATE_MODEL_SIGNING).await;

    // model_signing signs the files, not the manifest: refused unless file-only signatures
    // are allowed, and then reported as exactly that.
    let t = target.clone();
    let (code, report, stderr) = tokio::task::spawn_blocking(move || {
        verify(
            &t,
            &[],
            &[
                "--certificate-identity",
                IDENTITY,
                "--certificate-oidc-issuer",
                ISSUER,
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{stderr}\n{report:#}");
    assert!(
        stderr.contains("no signature binds the manifest: stefanb@us.ibm.com"),
        "{stderr}"
    );
    let t = target.clone();
    let (code, report, stderr) = tokio::task::spawn_blocking(move || {
        verify(
            &t,
            &[],
            &[
                "--certificate-identity",
                IDENTITY,
                "--certificate-oidc-issuer",
                ISSUER,
                "--allow-unsigned-metadata",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report["policy"]["manifestSigned"], false);
    let b = &report["bundles"][0];
    assert_eq!(b["signer"]["identity"], IDENTITY);
    assert!(
        b["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "resources"),
        "{b:#}"
    );

    let t = target.clone();
    let (code, _, _) = tokio::task::spawn_blocking(move || {
        verify(
            &t,
            &[],
            &[
                "--certificate-identity",
                "mallory@example.com",
                "--certificate-oidc-issuer",
                ISSUER,
                "--allow-unsigned-metadata",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "a wrong identity passed");
    let t = target.clone();
    let (code, _, _) = tokio::task::spawn_blocking(move || {
        verify(
            &t,
            &[],
            &[
                "--certificate-identity",
                IDENTITY,
                "--certificate-oidc-issuer",
                "https://accounts.google.com",
                "--allow-unsigned-metadata",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "a wrong issuer passed");
    // A key policy never accepts a keyless bundle.
    let (_, public) = keypair(tmp.path(), "k");
    let t = target.clone();
    let (code, _, _) =
        tokio::task::spawn_blocking(move || verify(&t, &[&public], &["--allow-unsigned-metadata"]))
            .await
            .unwrap();
    assert_eq!(code, 1, "a keyless bundle passed a key policy");

    let out_dir = tmp.path().join("pulled");
    let out = harness::bin()
        .args(["pull", &target])
        .arg(&out_dir)
        .args([
            "--certificate-identity-regexp",
            "^stefanb@.*$",
            "--certificate-oidc-issuer",
            ISSUER,
            "--allow-unsigned-metadata",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("files verified; manifest metadata not signed"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(out_dir.join("signme-1")).unwrap(),
        std::fs::read(fixture.join("signme-1")).unwrap()
    );
}

#[test]
fn n_of_m_signers_and_a_policy_file_per_repository() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    write_model(&model, &[("w.bin", b"two signers")]);
    let (alice, alice_pub) = keypair(tmp.path(), "alice");
    let (bob, bob_pub) = keypair(tmp.path(), "bob");
    let repo = harness::repo("n-of-m");
    let target = format!("{}/{repo}:v1", reg.host);
    push(&model, &target);
    sign(&target, &alice, &[]);

    // 2 of {alice, bob} required: alice alone is not enough.
    let (code, _, stderr) = verify(
        &target,
        &[&alice_pub, &bob_pub],
        &["--require-signers", "2"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("2 distinct trusted signer(s) required, 1 found"),
        "{stderr}"
    );
    sign(&target, &bob, &[]);
    let (code, report, stderr) = verify(
        &target,
        &[&alice_pub, &bob_pub],
        &["--require-signers", "2"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        report["policy"]["signersSatisfied"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The same signer twice does not count twice.
    let (code, _, _) = verify(
        &target,
        &[&alice_pub, &alice_pub],
        &["--require-signers", "2"],
    );
    assert_eq!(code, 1);

    // A policy file: the rule for this repository wants both keys and provenance.
    let policy = tmp.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1\npolicies:\n  - repositories: [\"{}/test/**\"]\n    requireSigners: 2\n    signers:\n      - key: alice.pub\n      - key: bob.pub\n",
            reg.host
        ),
    )
    .unwrap();
    let (code, _, stderr) = verify(&target, &[], &["--policy", policy.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(
        &policy,
        format!(
            "version: 1\npolicies:\n  - repositories: [\"{}/test/**\"]\n    signers:\n      - key: alice.pub\n    attestations: [slsaprovenance1]\n",
            reg.host
        ),
    )
    .unwrap();
    let (code, _, stderr) = verify(&target, &[], &["--policy", policy.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("https://slsa.dev/provenance/v1"),
        "{stderr}"
    );
    // No rule for the repository: fail closed.
    std::fs::write(
        &policy,
        "version: 1\npolicies:\n  - repositories: [\"registry.example.com/**\"]\n    signers:\n      - key: alice.pub\n",
    )
    .unwrap();
    let (code, _, stderr) = verify(&target, &[], &["--policy", policy.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
}
