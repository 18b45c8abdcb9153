//! Interoperability with the OpenSSF reference tool `model_signing` 1.1.1 (PyPI
//! `model-signing`), installed in `.venv` by `scripts/venv.sh`: each tool verifies what the
//! other signed, for P-256 and P-384, and a real key-signed bundle from model-transparency's
//! test data verifies with oci-model.
//!
//! Without `.venv/bin/model_signing` the tool-to-tool tests fail (never skip), with or without
//! `CI`: `harness::venv_tool` names what is missing and how to install it.

use crate::harness;
use crate::support::testdata;
use std::path::{Path, PathBuf};
use std::process::Command;

const PASSWORD: &str = "oci-model-test";

fn key(name: &str) -> PathBuf {
    testdata("keys").join(name)
}

/// model-transparency's `scripts/tests/` (sigstore/model-transparency, see its ATTRIBUTION.md).
fn model_transparency() -> PathBuf {
    testdata("sigstore-extra/model-transparency/scripts/tests")
}

/// Nested directories, segment ordering (`a/b` < `a-b` < `a.txt`), hidden and empty files,
/// an ignored `.git`.
fn make_model(root: &Path, name: &str) -> PathBuf {
    let m = root.join(name);
    for d in ["a", "sub/deeper", ".git"] {
        std::fs::create_dir_all(m.join(d)).unwrap();
    }
    std::fs::write(m.join("a/b"), "hi\n").unwrap();
    std::fs::write(m.join("a-b"), "x\n").unwrap();
    std::fs::write(m.join("a.txt"), "").unwrap();
    std::fs::write(m.join(".hidden"), "h\n").unwrap();
    std::fs::write(m.join("config.json"), "{\"hidden_size\": 8}\n").unwrap();
    std::fs::write(
        m.join("sub/deeper/model.safetensors"),
        harness::pseudo_random(1_500_000, 11),
    )
    .unwrap();
    std::fs::write(m.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    m
}

/// Run the reference tool; it must succeed.
fn run_tool(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().expect("run model_signing");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// model_signing signs (key file, optionally encrypted) → oci-model verify-local passes, and
/// fails once a file changes.
fn reference_signs_we_verify(tool: &Path, private: &str, password: Option<&str>, public: &str) {
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path(), "model");
    let sig = model.join("model.sig");
    match password {
        None => {
            run_tool(
                Command::new(tool)
                    .args(["sign", "key", "--private_key"])
                    .arg(key(private))
                    .arg("--signature")
                    .arg(&sig)
                    .arg(&model),
            );
        }
        // model_signing 1.1.1's CLI passes `--password` to `load_pem_private_key` as a str,
        // which `cryptography` refuses ("Cannot convert <class 'str'> instance to a
        // buffer"): encrypted keys work only through its Python API, with bytes.
        Some(p) => {
            let script = "import sys, model_signing\n\
key, password, model, sig = sys.argv[1:]\n\
model_signing.signing.Config().use_elliptic_key_signer(private_key=key, password=password.encode()).set_hashing_config(model_signing.hashing.Config().set_ignored_paths(paths=[sig], ignore_git_paths=True)).sign(model, sig)\n";
            run_tool(
                Command::new(tool.with_file_name("python"))
                    .args(["-c", script])
                    .arg(key(private))
                    .arg(p)
                    .arg(&model)
                    .arg(&sig),
            );
        }
    }
    harness::bin()
        .arg("verify-local")
        .arg(&model)
        .arg("--signature")
        .arg(&sig)
        .arg("--key")
        .arg(key(public))
        .assert()
        .success()
        .stdout(predicates::str::contains("all 6 signed files match"));
    std::fs::write(model.join("a/b"), "tampered\n").unwrap();
    harness::bin()
        .arg("verify-local")
        .arg(&model)
        .arg("--signature")
        .arg(&sig)
        .arg("--key")
        .arg(key(public))
        .assert()
        .code(1)
        .stderr(predicates::str::contains("changed file a/b"));
}

/// oci-model sign-local → model_signing verify key passes, and fails once a file changes.
fn we_sign_reference_verifies(tool: &Path, private: &str, public: &str) {
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path(), "model");
    // Signature outside the model this time.
    let sig = t.path().join("model.sig");
    harness::bin()
        .arg("sign-local")
        .arg(&model)
        .arg("--key")
        .arg(key(private))
        .arg("--signature")
        .arg(&sig)
        .env("OCI_MODEL_PASSWORD", PASSWORD)
        .assert()
        .success();
    let verify = |model: &Path| {
        Command::new(tool)
            .args(["verify", "key", "--public_key"])
            .arg(key(public))
            .arg("--signature")
            .arg(&sig)
            .arg(model)
            .output()
            .expect("run model_signing")
    };
    let out = verify(&model);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("Verification succeeded"),
        "model_signing rejected our signature:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(model.join("extra.bin"), "new").unwrap();
    let out = verify(&model);
    assert!(
        !out.status.success(),
        "model_signing accepted an extra file"
    );
}

#[test]
fn model_signing_p256_signature_verifies_with_oci_model() {
    let tool = harness::venv_tool("model_signing");
    reference_signs_we_verify(&tool, "p256.key", None, "p256.pub");
}

#[test]
fn model_signing_p384_signature_verifies_with_oci_model() {
    let tool = harness::venv_tool("model_signing");
    reference_signs_we_verify(&tool, "p384.key", None, "p384.pub");
}

/// model_signing (its Python API) reads our encrypted PKCS#8 (PBES2, PBKDF2-SHA256,
/// AES-256-CBC).
#[test]
fn model_signing_reads_our_encrypted_keys() {
    let tool = harness::venv_tool("model_signing");
    reference_signs_we_verify(
        &tool,
        "p256-encrypted.key",
        Some(PASSWORD),
        "p256-encrypted.pub",
    );
    reference_signs_we_verify(
        &tool,
        "p384-encrypted.key",
        Some(PASSWORD),
        "p384-encrypted.pub",
    );
}

#[test]
fn oci_model_p256_signature_verifies_with_model_signing() {
    let tool = harness::venv_tool("model_signing");
    we_sign_reference_verifies(&tool, "p256.key", "p256.pub");
    we_sign_reference_verifies(&tool, "p256-encrypted.key", "p256-encrypted.pub");
}

#[test]
fn oci_model_p384_signature_verifies_with_model_signing() {
    let tool = harness::venv_tool("model_signing");
    we_sign_reference_verifies(&tool, "p384.key", "p384.pub");
    we_sign_reference_verifies(&tool, "p384-encrypted.key", "p384-encrypted.pub");
}

/// A single-file model (resource named `.`) in both directions.
#[test]
fn single_file_model_both_directions() {
    let tool = harness::venv_tool("model_signing");
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("model.gguf");
    std::fs::write(&file, harness::pseudo_random(10_000, 3)).unwrap();
    let theirs = t.path().join("theirs.sig");
    run_tool(
        Command::new(&tool)
            .args(["sign", "key", "--private_key"])
            .arg(key("p256.key"))
            .arg("--signature")
            .arg(&theirs)
            .arg(&file),
    );
    harness::bin()
        .arg("verify-local")
        .arg(&file)
        .arg("--signature")
        .arg(&theirs)
        .arg("--key")
        .arg(key("p256.pub"))
        .assert()
        .success();
    let ours = t.path().join("ours.sig");
    harness::bin()
        .arg("sign-local")
        .arg(&file)
        .arg("--key")
        .arg(key("p384.key"))
        .arg("--signature")
        .arg(&ours)
        .assert()
        .success();
    run_tool(
        Command::new(&tool)
            .args(["verify", "key", "--public_key"])
            .arg(key("p384.pub"))
            .arg("--signature")
            .arg(&ours)
            .arg(&file),
    );
}

/// A real bundle from sigstore/model-transparency (`scripts/tests/v1.1.0-elliptic-key`, signed
/// by model_signing 1.1.0 with a P-384 key; `ignore-me` is an ignored path). Its public key
/// file has certtool text before the PEM block. Needs no Python.
#[test]
fn model_transparency_v1_1_0_elliptic_key_bundle_verifies() {
    let root = model_transparency();
    let model = root.join("v1.1.0-elliptic-key");
    let out = harness::bin()
        .args(["-o", "json", "verify-local"])
        .arg(&model)
        .arg("--signature")
        .arg(model.join("model.sig"))
        .arg("--key")
        .arg(root.join("keys/certificate/signing-key-pub.pem"))
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["fileCount"], 2);
    assert_eq!(v["name"], "v1.1.0-elliptic-key");
    assert!(v["ignorePaths"]
        .as_array()
        .unwrap()
        .contains(&serde_json::Value::from("ignore-me")));

    // A copy with a changed signed file fails; a changed ignored file does not matter.
    let t = tempfile::tempdir().unwrap();
    let copy = t.path().join("v1.1.0-elliptic-key");
    std::fs::create_dir(&copy).unwrap();
    for f in ["ignore-me", "model.sig", "signme-1", "signme-2"] {
        std::fs::copy(model.join(f), copy.join(f)).unwrap();
    }
    std::fs::write(copy.join("ignore-me"), "anything").unwrap();
    let verify = || {
        harness::bin()
            .arg("verify-local")
            .arg(&copy)
            .arg("--signature")
            .arg(copy.join("model.sig"))
            .arg("--key")
            .arg(root.join("keys/certificate/signing-key-pub.pem"))
            .assert()
    };
    verify().success();
    std::fs::write(copy.join("signme-2"), "changed").unwrap();
    verify()
        .code(1)
        .stderr(predicates::str::contains("changed file signme-2"));
}

/// Real keyless model-signing bundles (production Sigstore, identity stefanb@us.ibm.com) from
/// model-transparency verify offline with the embedded production trusted root. v1.0.1 did
/// not record `ignore-me` in `ignore_paths`, so it must be passed, as with model_signing.
#[test]
fn model_transparency_keyless_bundles_verify() {
    let root = model_transparency();
    let verify = |dir: &str, extra: &[&str]| {
        let model = root.join(dir);
        harness::bin()
            .arg("verify-local")
            .arg(&model)
            .arg("--signature")
            .arg(model.join("model.sig"))
            .args(["--certificate-identity", "stefanb@us.ibm.com"])
            .args([
                "--certificate-oidc-issuer",
                "https://sigstore.verify.ibm.com/oauth2",
            ])
            .args(extra)
            .assert()
    };
    verify("v1.1.0-sigstore", &[])
        .success()
        .stdout(predicates::str::contains("all 2 signed files match"));
    verify("v1.0.1-sigstore", &[])
        .code(1)
        .stderr(predicates::str::contains(
            "files not in the signature: ignore-me",
        ));
    verify("v1.0.1-sigstore", &["--ignore-paths", "ignore-me"]).success();
    harness::bin()
        .arg("verify-local")
        .arg(root.join("v1.1.0-sigstore"))
        .arg("--signature")
        .arg(root.join("v1.1.0-sigstore/model.sig"))
        .args(["--certificate-identity", "someone@example.com"])
        .args([
            "--certificate-oidc-issuer",
            "https://sigstore.verify.ibm.com/oauth2",
        ])
        .assert()
        .code(1);
}

/// push → sign in the registry → pull; the model-signing bundle read back from the referrer
/// (and the `--bundle-out` copy) verify the pulled directory with `model_signing verify key`.
async fn registry_signature_verifies_with_model_signing(tool: &Path, private: &str, public: &str) {
    use oci_model::media_types as mt;
    use oci_model::reference::Target;
    use oci_model::store::{self, StoreOptions};
    let reg = harness::Registry::start();
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path(), "model");
    let target = format!("{}/{}:v1", reg.host, harness::repo("interop"));
    let bundle_out = t.path().join("bundle-out.sig");
    let (m, tg, bo) = (model.clone(), target.clone(), bundle_out.clone());
    let private = key(private);
    tokio::task::spawn_blocking(move || {
        harness::bin()
            .arg("push")
            .arg(&m)
            .arg(&tg)
            .assert()
            .success();
        harness::bin()
            .args(["sign", &tg, "--key"])
            .arg(&private)
            .arg("--bundle-out")
            .arg(&bo)
            .env("OCI_MODEL_PASSWORD", PASSWORD)
            .assert()
            .success();
    })
    .await
    .unwrap();

    // The bundle as a client finds it: through the referrers of the model manifest.
    let s = store::open(&Target::parse(&target).unwrap(), &StoreOptions::default())
        .await
        .unwrap();
    let subject = s.resolve("v1").await.unwrap();
    let found = oci_model::sigstore_ops::find_bundles(s.as_ref(), &subject)
        .await
        .unwrap();
    let referrer_bundle = found
        .into_iter()
        .find(|f| f.annotated_predicate_type.as_deref() == Some(mt::PREDICATE_MODEL_SIGNING))
        .expect("model-signing referrer")
        .bundle
        .unwrap();
    let from_registry = t.path().join("from-registry.sig");
    std::fs::write(&from_registry, &referrer_bundle).unwrap();
    assert_eq!(
        std::fs::read(&bundle_out).unwrap(),
        referrer_bundle.to_vec()
    );

    let pulled = t.path().join("pulled");
    let (tg, p) = (target.clone(), pulled.clone());
    tokio::task::spawn_blocking(move || {
        harness::bin()
            .arg("pull")
            .arg(&tg)
            .arg(&p)
            .assert()
            .success();
    })
    .await
    .unwrap();
    let verify = |model: &Path| {
        Command::new(tool)
            .args(["verify", "key", "--public_key"])
            .arg(key(public))
            .arg("--signature")
            .arg(&from_registry)
            .arg(model)
            .output()
            .expect("run model_signing")
    };
    let out = verify(&pulled);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stdout).contains("Verification succeeded"),
        "model_signing rejected the registry signature on the pulled model:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(pulled.join("a/b"), "tampered\n").unwrap();
    assert!(
        !verify(&pulled).status.success(),
        "model_signing accepted a changed file"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_p256_signature_verifies_pulled_model_with_model_signing() {
    let tool = harness::venv_tool("model_signing");
    registry_signature_verifies_with_model_signing(&tool, "p256.key", "p256.pub").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_p384_signature_verifies_pulled_model_with_model_signing() {
    let tool = harness::venv_tool("model_signing");
    registry_signature_verifies_with_model_signing(&tool, "p384.key", "p384.pub").await;
}
