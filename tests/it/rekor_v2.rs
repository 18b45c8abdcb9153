//! Rekor v2 signing against the fake instance's v2 log (tests/it/fakes/rekor.rs,
//! `router_v2`): a signing config that lists a v2 log first (as the staging instance's does)
//! makes keyless and `--key --tlog-upload=true` signing record a `hashedrekord` 0.0.2 entry over
//! the DSSE PAE (checkpoint + inclusion proof, no SET) with the RFC 3161 timestamp v2 needs;
//! the bundles verify with our verifier and (keyless) with sigstore-python; every log fault
//! makes signing refuse.

use crate::fakes::{FakeSigstore, Fault};
use crate::harness;
use crate::keyless::{sigstore_python_verify, statement, token};
use crate::support::{keypair, referrer_count, tiny_model_in_layout};
use oci_model::signing::keyless::{KeylessError, KeylessOptions, KeylessSigner};
use oci_model::signing::signing_config::Services;
use oci_model::verify::{self, Artifact, Matcher, SignerPolicy, TrustedRoot};

const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

fn options_v2(fake: &FakeSigstore) -> KeylessOptions {
    let text = std::fs::read_to_string(&fake.trust_config_v2_path).unwrap();
    let loaded = Services::from_json(&text, "fake v2 trust config").unwrap();
    assert_eq!(loaded.services.rekor, fake.rekor_v2_url);
    assert_eq!(loaded.services.rekor_version, 2);
    KeylessOptions {
        services: loaded.services,
        trusted_root: TrustedRoot::from_file(&fake.trusted_root_path).unwrap(),
        http: None,
    }
}

/// The one tlog entry of a bundle, checked to be a Rekor v2 entry.
fn v2_entry(bundle: &serde_json::Value) -> serde_json::Value {
    let entries = bundle["verificationMaterial"]["tlogEntries"]
        .as_array()
        .unwrap();
    assert_eq!(entries.len(), 1, "{bundle:#}");
    let entry = entries[0].clone();
    assert_eq!(entry["kindVersion"]["kind"], "hashedrekord", "{entry:#}");
    assert_eq!(entry["kindVersion"]["version"], "0.0.2", "{entry:#}");
    assert!(entry.get("inclusionPromise").is_none(), "{entry:#}");
    assert!(
        entry["inclusionProof"]["checkpoint"]["envelope"]
            .as_str()
            .unwrap()
            .starts_with(crate::fakes::rekor::ORIGIN_NAME_V2),
        "{entry:#}"
    );
    assert_eq!(
        bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "Rekor v2 needs the TSA's time: {bundle:#}"
    );
    entry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_v2_bundle_verifies_with_us_and_sigstore_python() {
    let fake = FakeSigstore::start();
    let email = "v2@example.com";
    let signer = KeylessSigner::new(&token(fake.token_for_email(email)), options_v2(&fake))
        .await
        .unwrap();
    let data = b"weights logged in rekor v2";
    let (payload, hex) = statement("model.bin", data);
    let v1_before = fake.rekor_size();
    let v2_before = fake.shared.rekor_v2.size();
    let bundle = signer.sign_dsse(PAYLOAD_TYPE, &payload).await.unwrap();
    assert_eq!(fake.shared.rekor_v2.size(), v2_before + 1);
    assert_eq!(fake.rekor_size(), v1_before, "nothing goes to the v1 log");
    v2_entry(&bundle);

    let policy =
        SignerPolicy::new().with_identity(Matcher::exact(email), Matcher::exact(fake.issuer()));
    verify::verify_bundle(
        &serde_json::to_vec(&bundle).unwrap(),
        &Artifact::Digest(format!("sha256:{hex}").parse().unwrap()),
        &policy,
        &TrustedRoot::from_file(&fake.trusted_root_path).unwrap(),
    )
    .unwrap_or_else(|e| panic!("bundle does not verify: {e}"));

    let artifact = fake.dir().join("model.bin");
    std::fs::write(&artifact, data).unwrap();
    let path = fake.dir().join("model.bin.sigstore.json");
    std::fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let run = |identity: &str| {
        sigstore_python_verify(
            &fake.trust_config_v2_path,
            &path,
            &artifact,
            identity,
            fake.issuer(),
        )
    };
    let out = run(email);
    assert!(
        out.status.success(),
        "sigstore-python rejected the v2 bundle:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!run("someone@example.com").status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_v2_refuses_every_faulty_log_answer() {
    for fault in [
        Fault::BadLogSignature,
        Fault::BrokenInclusionProof,
        Fault::BodyMismatch,
    ] {
        let fake = FakeSigstore::with_fault(fault);
        let signer = KeylessSigner::new(
            &token(fake.token_for_email("v2-fault@example.com")),
            options_v2(&fake),
        )
        .await
        .unwrap();
        let (payload, _) = statement("m", b"fault");
        let err = signer.sign_dsse(PAYLOAD_TYPE, &payload).await.unwrap_err();
        match (fault, &err) {
            (Fault::BodyMismatch, KeylessError::RekorBodyMismatch { .. })
            | (Fault::BadLogSignature, KeylessError::Unverified { .. })
            | (Fault::BrokenInclusionProof, KeylessError::Unverified { .. }) => {}
            _ => panic!("{fault:?}: unexpected error {err}"),
        }
    }
}

#[test]
fn key_tlog_v2_logs_a_hashedrekord_and_verifies() {
    let fake = FakeSigstore::start();
    let tmp = tempfile::tempdir().unwrap();
    let target = tiny_model_in_layout(tmp.path()).1;
    let (key, public) = keypair(tmp.path(), "signer");
    let bundle_out = tmp.path().join("model.sigstore.json");
    let out = harness::bin()
        .args(["sign", &target, "--tlog-upload=true", "--key"])
        .arg(&key)
        .arg("--signing-config")
        .arg(&fake.trust_config_v2_path)
        .arg("--bundle-out")
        .arg(&bundle_out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sign: {stderr}");
    assert!(stderr.contains(&fake.rekor_v2_url), "{stderr}");
    assert_eq!(referrer_count(&target), 2);
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bundle_out).unwrap()).unwrap();
    assert!(bundle["verificationMaterial"]["publicKey"]["hint"].is_string());
    v2_entry(&bundle);

    let out = harness::bin()
        .args(["verify", &target, "--key"])
        .arg(&public)
        .arg("--trusted-root")
        .arg(&fake.trusted_root_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn key_tlog_v2_refuses_keys_rekor_v2_cannot_record() {
    let fake = FakeSigstore::start();
    let tmp = tempfile::tempdir().unwrap();
    let target = tiny_model_in_layout(tmp.path()).1;
    let key = tmp.path().join("p384");
    harness::bin()
        .args([
            "generate-key-pair",
            "--type",
            "p384",
            "--no-password",
            "--output-key-prefix",
        ])
        .arg(&key)
        .assert()
        .success();
    let out = harness::bin()
        .args(["sign", &target, "--tlog-upload=true", "--key"])
        .arg(key.with_extension("key"))
        .arg("--signing-config")
        .arg(&fake.trust_config_v2_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ECDSA P-256 signatures only"), "{stderr}");
    assert_eq!(referrer_count(&target), 0);
    assert_eq!(fake.shared.rekor_v2.size(), 5, "nothing was logged");
}

/// The six signing modes, each bundle checked by our verifier against the fake's
/// trusted root and given to sigstore-python 4.5.1. It verifies the keyless ones (Rekor v1 and
/// v2). It cannot verify any key-based bundle: its `Bundle` requires a signing certificate and
/// refuses the bundle before verifying anything ("expected certificate in bundle"), so for the
/// four key modes the test asserts that refusal, and fails once sigstore-python learns keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_signing_mode_verifies_and_sigstore_python_takes_the_keyless_ones() {
    use oci_model::signing::keyless::{http_client, TimestampAuthority, TransparencyLog};
    use oci_model::signing::{KeyKind, KeySigner, PrivateKey, Signer};
    use oci_model::verify::TrustedKey;

    let fake = FakeSigstore::start();
    let root = TrustedRoot::from_file(&fake.trusted_root_path).unwrap();
    let data = b"one model, six ways to sign it";
    let (payload, hex) = statement("model.bin", data);
    let digest: oci_model::digest::Digest = format!("sha256:{hex}").parse().unwrap();
    let artifact = fake.dir().join("model.bin");
    std::fs::write(&artifact, data).unwrap();

    let key = || PrivateKey::generate(KeyKind::P256).unwrap();
    let log = |version| {
        let url = if version == 2 {
            &fake.rekor_v2_url
        } else {
            &fake.rekor_url
        };
        TransparencyLog::with_version(url, version, http_client().unwrap()).unwrap()
    };
    let tsa = || TimestampAuthority::new(&fake.tsa_url, http_client().unwrap()).unwrap();
    let key_signers: Vec<(&str, KeySigner)> = vec![
        ("key", KeySigner::new(key())),
        (
            "key + log v1",
            KeySigner::with_services(key(), Some(log(1)), None, root.clone()),
        ),
        (
            "key + log v2",
            KeySigner::with_services(key(), Some(log(2)), Some(tsa()), root.clone()),
        ),
        (
            "key + TSA",
            KeySigner::with_services(key(), None, Some(tsa()), root.clone()),
        ),
    ];
    let email = "modes@example.com";
    let mut v1_options = crate::keyless::options(&fake);
    v1_options.services.tsa = None;
    let keyless_signers = vec![
        (
            "keyless v1",
            KeylessSigner::new(&token(fake.token_for_email(email)), v1_options)
                .await
                .unwrap(),
        ),
        (
            "keyless v2",
            KeylessSigner::new(&token(fake.token_for_email(email)), options_v2(&fake))
                .await
                .unwrap(),
        ),
    ];

    let python_verify = |mode: &str, bundle: &[u8]| {
        let path = fake
            .dir()
            .join(format!("{}.sigstore.json", mode.replace([' ', '+'], "_")));
        std::fs::write(&path, bundle).unwrap();
        sigstore_python_verify(
            &fake.trust_config_v2_path,
            &path,
            &artifact,
            email,
            fake.issuer(),
        )
    };

    for (mode, signer) in &key_signers {
        let bundle = Signer::sign_dsse(signer, PAYLOAD_TYPE, &payload)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        let public = signer.key().public_key().to_pem();
        let policy = SignerPolicy::new()
            .with_key(TrustedKey::from_pem(public.as_bytes(), "signer").unwrap());
        verify::verify_bundle(
            &bundle.json,
            &Artifact::Digest(digest.clone()),
            &policy,
            &root,
        )
        .unwrap_or_else(|e| panic!("{mode}: our verifier: {e}"));
        let out = python_verify(mode, &bundle.json);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("expected certificate in bundle"),
            "{mode}: sigstore-python's answer changed (does it verify key bundles now?): {stderr}"
        );
    }
    for (mode, signer) in &keyless_signers {
        let bundle = signer
            .sign_dsse(PAYLOAD_TYPE, &payload)
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        let json = serde_json::to_vec(&bundle).unwrap();
        let policy =
            SignerPolicy::new().with_identity(Matcher::exact(email), Matcher::exact(fake.issuer()));
        verify::verify_bundle(&json, &Artifact::Digest(digest.clone()), &policy, &root)
            .unwrap_or_else(|e| panic!("{mode}: our verifier: {e}"));
        let out = python_verify(mode, &json);
        assert!(
            out.status.success(),
            "{mode}: sigstore-python rejected it: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
