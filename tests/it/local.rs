//! `generate-key-pair`, `sign-local` and `verify-local` through the binary: round trips for
//! each key type, and every bad input with its exit code and nothing written.

use crate::harness;
use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};

const PASSWORD: &str = "oci-model-test";

fn keys_dir() -> PathBuf {
    harness::project_root().join("testdata/keys")
}

fn key(name: &str) -> PathBuf {
    keys_dir().join(name)
}

/// A model with the awkward cases: nested dirs, names that sort differently by segment,
/// hidden and empty files, an ignored .git directory and an empty directory.
fn make_model(root: &Path) -> PathBuf {
    let m = root.join("model");
    for d in ["a", "sub/deeper", ".git", "empty-dir"] {
        std::fs::create_dir_all(m.join(d)).unwrap();
    }
    std::fs::write(m.join("a/b"), "hi\n").unwrap();
    std::fs::write(m.join("a-b"), "x\n").unwrap();
    std::fs::write(m.join("a.txt"), "").unwrap();
    std::fs::write(m.join(".hidden"), "h\n").unwrap();
    std::fs::write(
        m.join("sub/deeper/weights.bin"),
        harness::pseudo_random(300_000, 7),
    )
    .unwrap();
    std::fs::write(m.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    m
}

fn sign(model: &Path, key: &Path, sig: &Path) -> assert_cmd::assert::Assert {
    harness::bin()
        .arg("sign-local")
        .arg(model)
        .arg("--key")
        .arg(key)
        .arg("--signature")
        .arg(sig)
        .env("OCI_MODEL_PASSWORD", PASSWORD)
        .assert()
}

fn verify(model: &Path, public: &Path, sig: &Path) -> assert_cmd::assert::Assert {
    harness::bin()
        .arg("verify-local")
        .arg(model)
        .arg("--signature")
        .arg(sig)
        .arg("--key")
        .arg(public)
        .assert()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

/// Rewrite a bundle file's JSON.
fn edit_bundle(sig: &Path, edit: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(sig).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(sig, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn sign_and_verify_local_round_trip_each_key_type() {
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    for (private, public) in [
        ("p256.key", "p256.pub"),
        ("p384.key", "p384.pub"),
        ("ed25519.key", "ed25519.pub"),
        ("p256-encrypted.key", "p256-encrypted.pub"),
        ("p384-encrypted.key", "p384-encrypted.pub"),
        ("ed25519-encrypted.key", "ed25519-encrypted.pub"),
        // Written by Python `cryptography` (BestAvailableEncryption) and as SEC1.
        ("p256-python-encrypted.key", "p256.pub"),
        ("p256-sec1.key", "p256.pub"),
    ] {
        let sig = t.path().join(format!("{private}.sig"));
        sign(&model, &key(private), &sig).success();
        let out = verify(&model, &key(public), &sig).success();
        let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(
            text.contains("all 5 signed files match"),
            "{private}: {text}"
        );

        // The bundle is model_signing's layout and the statement lists the files in order.
        let v: Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
        assert_eq!(
            v["mediaType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
        assert_eq!(
            v["verificationMaterial"]["tlogEntries"],
            serde_json::json!([])
        );
        let payload = base64::engine::general_purpose::STANDARD
            .decode(v["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let st: Value = serde_json::from_slice(&payload).unwrap();
        let names: Vec<&str> = st["predicate"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            vec![".hidden", "a/b", "a-b", "a.txt", "sub/deeper/weights.bin"]
        );
        assert_eq!(st["subject"][0]["name"], "model");
    }
}

#[test]
fn signature_inside_the_model_is_ignored_and_json_output() {
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    let sig = model.join("model.sig");
    sign(&model, &key("p256.key"), &sig).success();
    let out = harness::bin()
        .args(["-o", "json", "verify-local"])
        .arg(&model)
        .arg("--signature")
        .arg(&sig)
        .arg("--key")
        .arg(key("p256.pub"))
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["fileCount"], 5);
    assert!(v["ignorePaths"]
        .as_array()
        .unwrap()
        .contains(&Value::from("model.sig")));
    assert_eq!(v["signer"]["kind"], "key");
}

#[test]
fn single_file_model() {
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("weights.bin");
    std::fs::write(&file, b"weights").unwrap();
    let sig = t.path().join("weights.sig");
    sign(&file, &key("p384.key"), &sig).success();
    verify(&file, &key("p384.pub"), &sig).success();
    std::fs::write(&file, b"weightz").unwrap();
    let a = verify(&file, &key("p384.pub"), &sig).code(1);
    assert!(stderr(&a).contains("changed file ."), "{}", stderr(&a));
}

#[test]
fn ignore_paths_are_recorded_and_reapplied() {
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    std::fs::write(model.join("notes.txt"), "scratch").unwrap();
    let sig = t.path().join("m.sig");
    harness::bin()
        .arg("sign-local")
        .arg(&model)
        .args(["--key"])
        .arg(key("p256.key"))
        .arg("--signature")
        .arg(&sig)
        .args(["--ignore-paths", "notes.txt"])
        .assert()
        .success();
    // notes.txt changes freely: the signature says it is ignored.
    std::fs::write(model.join("notes.txt"), "changed").unwrap();
    verify(&model, &key("p256.pub"), &sig).success();
}

#[test]
fn file_names_pull_refuses_are_not_signed() {
    // The model-path rules of push and pull apply to signatures too.
    for (name, reason) in [("C:x", "drive letter"), ("bell\u{7}", "control character")] {
        let t = tempfile::tempdir().unwrap();
        let model = make_model(t.path());
        std::fs::write(model.join(name), "x").unwrap();
        let sig = t.path().join("m.sig");
        let a = sign(&model, &key("p256.key"), &sig).code(2);
        assert!(stderr(&a).contains(reason), "{name:?}: {}", stderr(&a));
        assert!(!sig.exists());
    }
}

#[test]
fn wrong_key_fails_with_exit_1() {
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    let sig = t.path().join("m.sig");
    sign(&model, &key("p256.key"), &sig).success();
    for other in ["p256-encrypted.pub", "p384.pub", "ed25519.pub"] {
        let a = verify(&model, &key(other), &sig).code(1);
        let err = stderr(&a);
        assert!(
            err.contains("signature") && err.contains("m.sig"),
            "{other}: {err}"
        );
    }
}

#[test]
fn tampered_payload_fails_with_exit_1() {
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    let sig = t.path().join("m.sig");
    sign(&model, &key("p256.key"), &sig).success();
    // Change a signed digest (to match a tampered file) and re-encode, keeping the signature.
    std::fs::write(model.join("a.txt"), "evil").unwrap();
    edit_bundle(&sig, |v| {
        let b64 = base64::engine::general_purpose::STANDARD;
        let payload = b64
            .decode(v["dsseEnvelope"]["payload"].as_str().unwrap())
            .unwrap();
        let mut st: Value = serde_json::from_slice(&payload).unwrap();
        for r in st["predicate"]["resources"].as_array_mut().unwrap() {
            if r["name"] == "a.txt" {
                r["digest"] = Value::from(oci_model::digest::Digest::of(b"evil").hex());
            }
        }
        v["dsseEnvelope"]["payload"] = Value::from(b64.encode(serde_json::to_vec(&st).unwrap()));
    });
    let a = verify(&model, &key("p256.pub"), &sig).code(1);
    assert!(stderr(&a).contains("signature"), "{}", stderr(&a));
}

#[test]
fn extra_missing_and_changed_files_fail_with_exit_1_naming_them() {
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    let sig = t.path().join("m.sig");
    sign(&model, &key("p384.key"), &sig).success();

    std::fs::write(model.join("sub/extra.bin"), "new").unwrap();
    let a = verify(&model, &key("p384.pub"), &sig).code(1);
    assert!(
        stderr(&a).contains("files not in the signature: sub/extra.bin"),
        "{}",
        stderr(&a)
    );
    std::fs::remove_file(model.join("sub/extra.bin")).unwrap();

    std::fs::remove_file(model.join("a-b")).unwrap();
    let a = verify(&model, &key("p384.pub"), &sig).code(1);
    assert!(stderr(&a).contains("missing files: a-b"), "{}", stderr(&a));
    std::fs::write(model.join("a-b"), "x\n").unwrap();
    verify(&model, &key("p384.pub"), &sig).success();

    std::fs::write(model.join(".hidden"), "H\n").unwrap();
    let a = verify(&model, &key("p384.pub"), &sig).code(1);
    assert!(
        stderr(&a).contains("changed file .hidden"),
        "{}",
        stderr(&a)
    );
}

#[test]
fn v02_media_type_fails_with_exit_1() {
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    let sig = t.path().join("m.sig");
    sign(&model, &key("p256.key"), &sig).success();
    edit_bundle(&sig, |v| {
        v["mediaType"] = Value::from("application/vnd.dev.sigstore.bundle+json;version=0.2")
    });
    let a = verify(&model, &key("p256.pub"), &sig).code(1);
    let err = stderr(&a);
    assert!(
        err.contains("media type") && err.contains("version=0.2"),
        "{err}"
    );
}

#[test]
fn malformed_json_and_base64_fail_with_exit_1() {
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    let sig = t.path().join("m.sig");
    sign(&model, &key("p256.key"), &sig).success();
    let good = std::fs::read(&sig).unwrap();

    std::fs::write(&sig, &good[..good.len() / 2]).unwrap();
    let a = verify(&model, &key("p256.pub"), &sig).code(1);
    assert!(stderr(&a).contains("malformed bundle"), "{}", stderr(&a));

    std::fs::write(&sig, &good).unwrap();
    edit_bundle(&sig, |v| {
        v["dsseEnvelope"]["payload"] = Value::from("%%% not base64 %%%")
    });
    let a = verify(&model, &key("p256.pub"), &sig).code(1);
    assert!(stderr(&a).contains("m.sig"), "{}", stderr(&a));

    std::fs::write(&sig, &good).unwrap();
    edit_bundle(&sig, |v| {
        v["dsseEnvelope"]["signatures"][0]["sig"] = Value::from("!!!")
    });
    let a = verify(&model, &key("p256.pub"), &sig).code(1);
    assert!(stderr(&a).contains("m.sig"), "{}", stderr(&a));
}

#[test]
fn key_file_that_is_not_a_key_exits_2_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    let sig = t.path().join("m.sig");
    let a = sign(&model, &key("not-a-key.pem"), &sig).code(2);
    assert!(
        stderr(&a).contains("not-a-key.pem is not a PEM private key"),
        "{}",
        stderr(&a)
    );
    assert!(!sig.exists());
    // A public key where the private key belongs.
    let a = sign(&model, &key("p256.pub"), &sig).code(2);
    assert!(stderr(&a).contains("holds a public key"), "{}", stderr(&a));
    assert!(!sig.exists());

    sign(&model, &key("p256.key"), &sig).success();
    let a = verify(&model, &key("not-a-key.pem"), &sig).code(2);
    assert!(stderr(&a).contains("not-a-key.pem"), "{}", stderr(&a));
}

#[test]
fn wrong_or_missing_password_exits_2_and_writes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    let sig = t.path().join("m.sig");
    let a = harness::bin()
        .arg("sign-local")
        .arg(&model)
        .arg("--key")
        .arg(key("p256-encrypted.key"))
        .arg("--signature")
        .arg(&sig)
        .env("OCI_MODEL_PASSWORD", "not the password")
        .assert()
        .code(2);
    assert!(
        stderr(&a).contains(&format!(
            "wrong password for {}",
            key("p256-encrypted.key").display()
        )),
        "{}",
        stderr(&a)
    );
    assert!(!sig.exists());
    // No password and no terminal: a clear error, not a hang.
    let a = harness::bin()
        .arg("sign-local")
        .arg(&model)
        .arg("--key")
        .arg(key("p384-encrypted.key"))
        .arg("--signature")
        .arg(&sig)
        .assert()
        .code(2);
    assert!(
        stderr(&a).contains("a password is needed"),
        "{}",
        stderr(&a)
    );
    assert!(!sig.exists());
}

#[test]
fn missing_model_or_signature_exits_2() {
    let t = tempfile::tempdir().unwrap();
    let sig = t.path().join("m.sig");
    sign(&t.path().join("nope"), &key("p256.key"), &sig).code(2);
    assert!(!sig.exists());
    let model = make_model(t.path());
    let a = verify(&model, &key("p256.pub"), &sig).code(2);
    assert!(stderr(&a).contains("m.sig"), "{}", stderr(&a));
    // verify-local without any key is a usage error.
    harness::bin()
        .arg("verify-local")
        .arg(&model)
        .arg("--signature")
        .arg(&sig)
        .assert()
        .code(2);
}

#[test]
fn generate_key_pair_encrypted_by_default_and_no_overwrite() {
    let t = tempfile::tempdir().unwrap();
    let prefix = t.path().join("k");
    let prefix_s = prefix.display().to_string();

    // No password, no terminal, no --no-password: refused, nothing written.
    let a = harness::bin()
        .args(["generate-key-pair", "--output-key-prefix", &prefix_s])
        .assert()
        .code(2);
    assert!(stderr(&a).contains("OCI_MODEL_PASSWORD"), "{}", stderr(&a));
    assert!(!t.path().join("k.key").exists() && !t.path().join("k.pub").exists());

    let out = harness::bin()
        .args([
            "-o",
            "json",
            "generate-key-pair",
            "--type",
            "p384",
            "--output-key-prefix",
            &prefix_s,
        ])
        .env("OCI_MODEL_PASSWORD", PASSWORD)
        .assert()
        .success();
    let v: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["type"], "p384");
    assert_eq!(v["encrypted"], true);
    let private = std::fs::read_to_string(t.path().join("k.key")).unwrap();
    assert!(private.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(t.path().join("k.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let public = std::fs::read(t.path().join("k.pub")).unwrap();
    // The hint is sha256 of the PEM public key.
    assert_eq!(v["hint"], oci_model::digest::Digest::of(&public).hex());

    // Existing files are kept without --force.
    let a = harness::bin()
        .args([
            "generate-key-pair",
            "--no-password",
            "--output-key-prefix",
            &prefix_s,
        ])
        .assert()
        .code(2);
    assert!(stderr(&a).contains("already exists"), "{}", stderr(&a));
    assert_eq!(
        std::fs::read_to_string(t.path().join("k.key")).unwrap(),
        private
    );

    harness::bin()
        .args([
            "generate-key-pair",
            "--no-password",
            "--force",
            "--type",
            "ed25519",
            "--output-key-prefix",
            &prefix_s,
        ])
        .assert()
        .success();
    let private2 = std::fs::read_to_string(t.path().join("k.key")).unwrap();
    assert!(private2.starts_with("-----BEGIN PRIVATE KEY-----\n"));

    // The new pair signs and verifies.
    let model = make_model(t.path());
    let sig = t.path().join("m.sig");
    sign(&model, &t.path().join("k.key"), &sig).success();
    verify(&model, &t.path().join("k.pub"), &sig).success();
}

/// `sign-local --keyless` against the fake Sigstore (OIDC, Fulcio, Rekor, TSA), then
/// `verify-local` with the certificate identity and the fake's trusted root.
#[test]
fn keyless_sign_local_then_verify_local_with_identity() {
    let fake = crate::fakes::FakeSigstore::start();
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    let sig = t.path().join("m.sig");
    let email = "model-owner@example.com";
    harness::bin()
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_URL")
        .env_remove("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
        .arg("sign-local")
        .arg(&model)
        .args(["--keyless", "--identity-token"])
        .arg(fake.token_for_email(email))
        .arg("--signing-config")
        .arg(&fake.trust_config_path)
        .arg("--signature")
        .arg(&sig)
        .assert()
        .success();
    let verify = |identity: &str| {
        harness::bin()
            .arg("verify-local")
            .arg(&model)
            .arg("--signature")
            .arg(&sig)
            .args(["--certificate-identity", identity])
            .args(["--certificate-oidc-issuer", fake.issuer()])
            .arg("--trusted-root")
            .arg(&fake.trusted_root_path)
            .assert()
    };
    verify(email)
        .success()
        .stdout(predicates::str::contains("all 5 signed files match"));
    verify("mallory@evil.example").code(1);
    // A key policy does not accept a keyless bundle.
    verify_with_key_fails(&model, &sig);
}

fn verify_with_key_fails(model: &Path, sig: &Path) {
    let a = verify(model, &key("p256.pub"), sig).code(1);
    assert!(stderr(&a).contains("keyless"), "{}", stderr(&a));
}
