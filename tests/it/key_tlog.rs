//! `sign --key K --tlog-upload=true`: the DSSE signature is also logged in (fake) Rekor with the
//! public key as verifier; the bundle keeps the key hint and carries the entry, verifies with
//! `--key PUB --trusted-root`, and every log fault makes signing refuse before anything is
//! pushed. Without the flag, `--key` stays offline (model_signing's bundles).

use crate::fakes::{self, FakeSigstore, Fault};
use crate::harness::{self, Registry};
use crate::support::{keypair, push, referrer_count, write_model};
use serde_json::Value;
use std::path::Path;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A small model pushed to `reg`; returns the target.
fn pushed(reg: &Registry, dir: &Path, name: &str) -> String {
    let model = dir.join("model");
    write_model(
        &model,
        &[
            ("config.json", br#"{"hidden_size": 8}"#),
            ("model.safetensors", &harness::pseudo_random(8192, 11)),
        ],
    );
    let target = format!("{}/{}:v1", reg.host, harness::repo(name));
    push(&model, &target);
    target
}

fn sign_logged(
    fake: &FakeSigstore,
    target: &str,
    key: &Path,
    bundle_out: &Path,
) -> std::process::Output {
    harness::bin()
        .args(["sign", target, "--tlog-upload=true", "--key"])
        .arg(key)
        .arg("--signing-config")
        .arg(&fake.trust_config_path)
        .arg("--bundle-out")
        .arg(bundle_out)
        .output()
        .unwrap()
}

#[test]
fn key_tlog_sign_on_a_registry_logs_and_verifies_with_the_trusted_root() {
    let fake = FakeSigstore::start();
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "signer");
    let target = pushed(&reg, tmp.path(), "key-tlog");
    let bundle_out = tmp.path().join("model.sig");

    let logged_before = fake.rekor_size();
    let out = sign_logged(&fake, &target, &key, &bundle_out);
    assert!(out.status.success(), "sign: {}", stderr(&out));
    assert!(stderr(&out).contains(&fake.rekor_url), "{}", stderr(&out));
    // Both bundles (model-signing and cosign-style) were logged.
    assert_eq!(fake.rekor_size(), logged_before + 2);
    assert_eq!(referrer_count(&target), 2);

    // The bundle keeps model_signing's key layout and carries the log entry.
    let bundle: Value = serde_json::from_slice(&std::fs::read(&bundle_out).unwrap()).unwrap();
    let material = &bundle["verificationMaterial"];
    assert!(material["publicKey"]["hint"].is_string(), "{bundle:#}");
    assert!(material.get("certificate").is_none(), "{bundle:#}");
    let entries = material["tlogEntries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{bundle:#}");
    let entry = &entries[0];
    assert_eq!(entry["kindVersion"]["kind"], "dsse");
    assert_eq!(entry["kindVersion"]["version"], "0.0.1");
    assert!(entry["inclusionPromise"]["signedEntryTimestamp"].is_string());
    assert!(entry["inclusionProof"]["checkpoint"]["envelope"]
        .as_str()
        .unwrap()
        .contains(fakes::rekor::ORIGIN_NAME));
    // The logged verifier is the public key (PEM), not a certificate.
    let body: Value = serde_json::from_slice(
        &fakes::unb64(entry["canonicalizedBody"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    let verifier = String::from_utf8(
        fakes::unb64(body["spec"]["signatures"][0]["verifier"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert!(verifier.contains("BEGIN PUBLIC KEY"), "{verifier}");

    // verify --key PUB --trusted-root <root with that Rekor>: the log entry is checked.
    let verify = |trusted_root: Option<&Path>| {
        let mut c = harness::bin();
        c.args(["verify", &target, "--output", "json", "--key"])
            .arg(&public);
        if let Some(root) = trusted_root {
            c.arg("--trusted-root").arg(root);
        }
        c.output().unwrap()
    };
    let out = verify(Some(&fake.trusted_root_path));
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    assert!(out.status.success(), "verify: {report:#}\n{}", stderr(&out));
    let bundles = report["bundles"].as_array().unwrap();
    assert_eq!(bundles.len(), 2, "{report:#}");
    for b in bundles {
        let checks = b["checks"].as_array().unwrap();
        let tlog = checks
            .iter()
            .find(|c| c["name"] == "transparency log")
            .unwrap_or_else(|| panic!("no transparency log check: {b:#}"));
        let detail = tlog["detail"].as_str().unwrap();
        assert!(
            detail.contains("inclusion proof") && detail.contains(&fake.rekor_url),
            "{detail}"
        );
        assert!(
            checks
                .iter()
                .any(|c| c["name"] == "signing time"
                    && c["detail"].as_str().unwrap().contains("SET")),
            "{b:#}"
        );
    }
    // Against a root that does not know the fake log (the public-good default), the entry
    // cannot be checked, and the bundle is not accepted as if it had none.
    let out = verify(None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("transparency log verification failed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn key_tlog_faults_refuse_and_push_no_referrer() {
    let fake = FakeSigstore::start();
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (key, _) = keypair(tmp.path(), "signer");
    let target = pushed(&reg, tmp.path(), "key-tlog-faults");
    let bundle_out = tmp.path().join("model.sig");
    for (fault, reason) in [
        (Fault::BadLogSignature, "invalid checkpoint"),
        (Fault::BrokenInclusionProof, "invalid inclusion proof"),
        (
            Fault::BodyMismatch,
            "does not match the submitted DSSE entry",
        ),
    ] {
        fake.set_fault(Some(fault));
        let out = sign_logged(&fake, &target, &key, &bundle_out);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{fault:?}: {err}");
        assert!(
            err.contains("refusing to publish") && err.contains(reason),
            "{fault:?}: {err}"
        );
        assert_eq!(referrer_count(&target), 0, "{fault:?} pushed a referrer");
        assert!(!bundle_out.exists(), "{fault:?} wrote --bundle-out");
    }
    fake.set_fault(None);
    let out = sign_logged(&fake, &target, &key, &bundle_out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(referrer_count(&target), 2);
}

#[test]
fn key_sign_default_is_offline_and_refuses_log_only_flags() {
    let fake = FakeSigstore::start();
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "signer");
    let target = pushed(&reg, tmp.path(), "key-offline");
    let bundle_out = tmp.path().join("model.sig");

    // A log-only flag without --tlog-upload=true is refused, not ignored. (--signing-config
    // alone is not log-only: it names a timestamp authority, see tests/it/timestamps.rs.)
    let out = harness::bin()
        .args(["sign", &target, "--key"])
        .arg(&key)
        .args(["--rekor-url", &fake.rekor_url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--tlog-upload=true"),
        "{}",
        stderr(&out)
    );
    assert_eq!(referrer_count(&target), 0);

    let logged_before = fake.rekor_size();
    for flags in [&[][..], &["--tlog-upload=false"][..]] {
        let out = harness::bin()
            .args(["sign", &target, "--key"])
            .arg(&key)
            .args(flags)
            .arg("--bundle-out")
            .arg(&bundle_out)
            .output()
            .unwrap();
        assert!(out.status.success(), "{flags:?}: {}", stderr(&out));
        let bundle: Value = serde_json::from_slice(&std::fs::read(&bundle_out).unwrap()).unwrap();
        assert_eq!(
            bundle["verificationMaterial"]["tlogEntries"],
            serde_json::json!([]),
            "{flags:?}: {bundle:#}"
        );
        assert!(bundle["verificationMaterial"]["publicKey"]["hint"].is_string());
    }
    assert_eq!(fake.rekor_size(), logged_before);
    let out = harness::bin()
        .args(["verify", &target, "--output", "json", "--key"])
        .arg(&public)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["bundles"][0]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == "transparency log"
            && c["detail"].as_str().unwrap().starts_with("none")));
}

#[test]
fn key_tlog_sign_local_verifies_local_with_the_trusted_root() {
    let fake = FakeSigstore::start();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "signer");
    let model = tmp.path().join("model");
    write_model(&model, &[("config.json", b"{}"), ("weights.bin", b"w")]);
    let sig = tmp.path().join("model.sig");
    let out = harness::bin()
        .args(["sign-local", "--tlog-upload=true", "--key"])
        .arg(&key)
        .arg("--signing-config")
        .arg(&fake.trust_config_path)
        .arg("--signature")
        .arg(&sig)
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success(), "sign-local: {}", stderr(&out));
    let bundle: Value = serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
    assert_eq!(
        bundle["verificationMaterial"]["tlogEntries"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let out = harness::bin()
        .arg("verify-local")
        .arg(&model)
        .arg("--signature")
        .arg(&sig)
        .arg("--key")
        .arg(&public)
        .arg("--trusted-root")
        .arg(&fake.trusted_root_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "verify-local: {}", stderr(&out));
}
