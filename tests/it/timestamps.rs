//! RFC 3161 timestamps: a TSA whose `genTime` carries fractional seconds (the fake TSA's
//! `fractional_time` switch) works for keyless signing, and the bundle verifies with our
//! verifier, through `verify-bundle`, and with sigstore-python; `sign --key` with
//! `--timestamp-server` (or a signing config's TSA) records a timestamp that `verify` checks
//! against the trusted root's TSAs, and refuses to publish one it cannot verify.

use crate::fakes::{FakeSigstore, Fault};
use crate::harness;
use crate::keyless::{options, sigstore_python_verify, statement, token};
use crate::support::{keypair, referrer_count, run, tiny_model_in_layout};
use oci_model::signing::keyless::KeylessSigner;
use oci_model::verify::{self, Artifact, Matcher, SignerPolicy, TrustedRoot};
use std::sync::atomic::Ordering;

const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// The `genTime` text inside a DER timestamp token: the first GeneralizedTime (tag 0x18) whose
/// content looks like `YYYYMMDDhhmmss[.f]Z` (the TSTInfo is the only place one appears before
/// the certificates' validity, which uses UTCTime here).
pub fn gen_time_in(token: &[u8]) -> Option<String> {
    token.windows(2).enumerate().find_map(|(i, w)| {
        let len = usize::from(w[1]);
        if w[0] != 0x18 || !(15..=25).contains(&len) || i + 2 + len > token.len() {
            return None;
        }
        let text = std::str::from_utf8(&token[i + 2..i + 2 + len]).ok()?;
        (text.ends_with('Z') && text[..14].bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.to_string())
    })
}

/// The `genTime` of every RFC 3161 timestamp in a bundle.
pub fn bundle_gen_times(bundle: &serde_json::Value) -> Vec<String> {
    use base64::Engine as _;
    bundle["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let der = base64::engine::general_purpose::STANDARD
                .decode(t["signedTimestamp"].as_str().unwrap())
                .unwrap();
            gen_time_in(&der).expect("a genTime in the token")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fractional_gen_time_signs_and_verifies_everywhere() {
    let fake = FakeSigstore::start();
    fake.shared
        .tsa
        .fractional_time
        .store(true, Ordering::SeqCst);
    let email = "millis@example.com";
    let signer = KeylessSigner::new(&token(fake.token_for_email(email)), options(&fake))
        .await
        .unwrap();
    let data = b"weights timestamped with milliseconds";
    let (payload, hex) = statement("model.bin", data);
    // Signing parses the TSA's answer and verifies the bundle before returning it.
    let bundle = signer.sign_dsse(PAYLOAD_TYPE, &payload).await.unwrap();
    let times = bundle_gen_times(&bundle);
    assert_eq!(times.len(), 1, "{bundle:#}");
    assert!(
        regex::Regex::new(r"^\d{14}\.\d{0,2}[1-9]Z$")
            .unwrap()
            .is_match(&times[0]),
        "the fake TSA wrote no fraction: {times:?}"
    );

    // Our verifier, as a library.
    let policy =
        SignerPolicy::new().with_identity(Matcher::exact(email), Matcher::exact(fake.issuer()));
    let report = verify::verify_bundle(
        &serde_json::to_vec(&bundle).unwrap(),
        &Artifact::Digest(format!("sha256:{hex}").parse().unwrap()),
        &policy,
        &TrustedRoot::from_file(&fake.trusted_root_path).unwrap(),
    )
    .unwrap_or_else(|e| panic!("bundle does not verify: {e}"));
    drop(report);

    // `verify-bundle`.
    let path = fake.dir().join("model.bin.sigstore.json");
    std::fs::write(&path, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let (code, out, err) = run(&[
        "verify-bundle",
        "--bundle",
        path.to_str().unwrap(),
        "--digest",
        &format!("sha256:{hex}"),
        "--certificate-identity",
        email,
        "--certificate-oidc-issuer",
        fake.issuer(),
        "--trusted-root",
        fake.trusted_root_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("RFC 3161 timestamp"), "{out}");

    // sigstore-python.
    let artifact = fake.dir().join("model.bin");
    std::fs::write(&artifact, data).unwrap();
    let out = sigstore_python_verify(
        &fake.trust_config_path,
        &path,
        &artifact,
        email,
        fake.issuer(),
    );
    assert!(
        out.status.success(),
        "sigstore-python rejected the bundle:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A tiny model pushed into a fresh OCI layout: (tempdir, model dir, target).
fn model_in_layout() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let (model, target) = tiny_model_in_layout(dir.path());
    (dir, model, target)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn signing_time_detail(report: &serde_json::Value) -> String {
    report["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["checks"].as_array().unwrap())
        .find(|c| c["name"] == "signing time")
        .map(|c| c["detail"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn key_signature_with_timestamp_server_carries_a_verified_timestamp() {
    let fake = FakeSigstore::start();
    fake.shared
        .tsa
        .fractional_time
        .store(true, Ordering::SeqCst);
    let (dir, _model, target) = model_in_layout();
    let (key, public) = keypair(dir.path(), "signer");
    let bundle_out = dir.path().join("model.sigstore.json");
    let out = harness::bin()
        .args(["sign", &target, "--key"])
        .arg(&key)
        .args(["--timestamp-server", &fake.tsa_url, "--trusted-root"])
        .arg(&fake.trusted_root_path)
        .arg("--bundle-out")
        .arg(&bundle_out)
        .output()
        .unwrap();
    assert!(out.status.success(), "sign: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains(&format!("timestamped by {}", fake.tsa_url)),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(referrer_count(&target), 2);

    // model_signing's key layout, no log entry, one timestamp.
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bundle_out).unwrap()).unwrap();
    let material = &bundle["verificationMaterial"];
    assert!(material["publicKey"]["hint"].is_string(), "{bundle:#}");
    assert!(material.get("certificate").is_none(), "{bundle:#}");
    assert_eq!(material["tlogEntries"], serde_json::json!([]));
    assert_eq!(bundle_gen_times(&bundle).len(), 1, "{bundle:#}");

    // Verified with the key and a trusted root that lists the TSA: the time comes from it.
    let verify = |root: Option<&std::path::Path>| {
        let mut cmd = harness::bin();
        cmd.args(["verify", &target, "--output", "json", "--key"])
            .arg(&public);
        if let Some(root) = root {
            cmd.arg("--trusted-root").arg(root);
        }
        cmd.output().unwrap()
    };
    let ok = verify(Some(&fake.trusted_root_path));
    assert!(ok.status.success(), "verify: {}", text(&ok.stderr));
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    let detail = signing_time_detail(&report);
    assert!(
        detail.contains("1 RFC 3161 timestamp(s) verified against the trusted TSAs"),
        "{report:#}"
    );
    // The public-good root does not know the fake TSA: the timestamp makes it fail.
    let refused = verify(None);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stdout));
}

#[test]
fn key_signature_takes_the_signing_configs_tsa() {
    let fake = FakeSigstore::start();
    let (dir, _model, target) = model_in_layout();
    let (key, _) = keypair(dir.path(), "signer");
    let bundle_out = dir.path().join("model.sigstore.json");
    let out = harness::bin()
        .args(["sign", &target, "--key"])
        .arg(&key)
        .arg("--signing-config")
        .arg(&fake.trust_config_path)
        .arg("--bundle-out")
        .arg(&bundle_out)
        .output()
        .unwrap();
    assert!(out.status.success(), "sign: {}", text(&out.stderr));
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&bundle_out).unwrap()).unwrap();
    assert_eq!(bundle_gen_times(&bundle).len(), 1, "{bundle:#}");
    // Only a timestamp was asked for: nothing was logged.
    assert_eq!(
        bundle["verificationMaterial"]["tlogEntries"],
        serde_json::json!([])
    );
}

#[test]
fn key_timestamp_refusals() {
    let (dir, _model, target) = model_in_layout();
    let (key, _) = keypair(dir.path(), "signer");

    // A TSA whose timestamps the trusted root cannot verify: nothing is published.
    let fake = FakeSigstore::with_fault(Fault::BadTimestamp);
    let out = harness::bin()
        .args(["sign", &target, "--key"])
        .arg(&key)
        .args(["--timestamp-server", &fake.tsa_url, "--trusted-root"])
        .arg(&fake.trusted_root_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("refusing to publish"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(referrer_count(&target), 0);

    // --trusted-root alone asks for nothing: refused, naming the flags that would use it.
    let out = harness::bin()
        .args(["sign", &target, "--key"])
        .arg(&key)
        .arg("--trusted-root")
        .arg(&fake.trusted_root_path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--timestamp-server"),
        "{}",
        text(&out.stderr)
    );

    // A signing config without a TSA gives --key nothing to do.
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fake.signing_config_path).unwrap()).unwrap();
    config["tsaUrls"] = serde_json::json!([]);
    let no_tsa = fake.dir().join("no_tsa.json");
    std::fs::write(&no_tsa, config.to_string()).unwrap();
    let out = harness::bin()
        .args(["sign", &target, "--key"])
        .arg(&key)
        .arg("--signing-config")
        .arg(&no_tsa)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("lists no timestamp authority"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(referrer_count(&target), 0);
}

/// The key-based bundles of every mode (key + RFC 3161 timestamp, key + Rekor v1 entry,
/// key + Rekor v2 entry with its timestamp) still verify with model_signing, which checks the
/// key signature over the model and ignores log entries and timestamps. sigstore-python 4.5.1
/// cannot verify any key-based bundle: its `Bundle` requires a signing certificate ("expected
/// certificate in bundle"; `rekor_v2::every_signing_mode_verifies_and_sigstore_python_takes_the_keyless_ones`
/// asserts that refusal, so the day it can, that test says so).
#[test]
fn key_bundles_of_every_mode_verify_with_model_signing() {
    let tool = harness::venv_tool("model_signing");
    let fake = FakeSigstore::start();
    let (dir, model, _target) = model_in_layout();
    let (key, public) = keypair(dir.path(), "signer");
    // The v2 signing config (Rekor v2 first, a TSA) as a file of its own.
    let trust_v2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fake.trust_config_v2_path).unwrap()).unwrap();
    let signing_v2 = dir.path().join("signing_config_v2.json");
    std::fs::write(&signing_v2, trust_v2["signingConfig"].to_string()).unwrap();
    let signing_v2 = signing_v2.to_str().unwrap().to_string();
    let modes: [(&str, Vec<&str>, usize, Option<&str>); 3] = [
        (
            "key + TSA",
            vec!["--timestamp-server", &fake.tsa_url],
            1,
            None,
        ),
        (
            "key + log v1",
            vec!["--tlog-upload=true", "--rekor-url", &fake.rekor_url],
            0,
            Some("0.0.1"),
        ),
        (
            "key + log v2",
            vec!["--tlog-upload=true", "--signing-config", &signing_v2],
            1,
            Some("0.0.2"),
        ),
    ];
    for (i, (mode, flags, timestamps, entry_version)) in modes.iter().enumerate() {
        let sig = dir.path().join(format!("model-{i}.sig"));
        let out = harness::bin()
            .arg("sign-local")
            .arg(&model)
            .arg("--key")
            .arg(&key)
            .args(flags)
            .arg("--trusted-root")
            .arg(&fake.trusted_root_path)
            .arg("--signature")
            .arg(&sig)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{mode}: sign-local: {}",
            text(&out.stderr)
        );
        let bundle: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&sig).unwrap()).unwrap();
        assert_eq!(
            bundle_gen_times(&bundle).len(),
            *timestamps,
            "{mode}: {bundle}"
        );
        let entries = bundle["verificationMaterial"]["tlogEntries"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        match entry_version {
            Some(v) => {
                assert_eq!(entries, 1, "{mode}: {bundle}");
                assert_eq!(
                    bundle["verificationMaterial"]["tlogEntries"][0]["kindVersion"]["version"], *v,
                    "{mode}: {bundle}"
                );
            }
            None => assert_eq!(entries, 0, "{mode}: {bundle}"),
        }
        let out = std::process::Command::new(&tool)
            .args(["verify", "key", "--public_key"])
            .arg(&public)
            .arg("--signature")
            .arg(&sig)
            .arg(&model)
            .output()
            .unwrap();
        assert!(
            out.status.success() && text(&out.stdout).contains("Verification succeeded"),
            "{mode}: model_signing: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

/// RFC 3161 §2.4.2's `genTime` grammar, end to end: the fake TSA writes each text and keyless
/// signing (which parses the token, then verifies the bundle) takes or refuses it. The same
/// cases are unit tests of the parser in vendor/sigstore-tsa/src/gen_time.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gen_time_grammar_through_signing() {
    let fake = FakeSigstore::start();
    let signer = KeylessSigner::new(
        &token(fake.token_for_email("grammar@example.com")),
        options(&fake),
    )
    .await
    .unwrap();
    let (payload, _) = statement("m", b"grammar");
    // This second: not before the certificate (issued above, its notBefore in whole seconds).
    let now = std::time::SystemTime::now();
    let whole = crate::fakes::tsa::gen_time(now, false);
    let base = whole.trim_end_matches('Z');
    let cases = [
        (format!("{base}Z"), true, "no fraction"),
        (format!("{base}.5Z"), true, "one digit"),
        (format!("{base}.488Z"), true, "milliseconds"),
        (format!("{base}.123456789Z"), true, "nanoseconds"),
        (format!("{base}.480Z"), false, "trailing zero (not DER)"),
        (format!("{base}.0Z"), false, "all-zero fraction"),
        (format!("{base}.Z"), false, "'.' without digits"),
        (base.to_string(), false, "no Z"),
        (format!("{base}.488"), false, "fraction without Z"),
        (format!("{base}+0000"), false, "offset instead of Z"),
    ];
    for (text, accepted, why) in cases {
        *fake.shared.tsa.gen_time_text.lock().unwrap() = Some(text.clone());
        let result = signer.sign_dsse(PAYLOAD_TYPE, &payload).await;
        match (accepted, result) {
            (true, Ok(bundle)) => assert_eq!(bundle_gen_times(&bundle), vec![text], "{why}"),
            (false, Err(e)) => assert!(
                e.to_string().contains("failed to decode TSTInfo"),
                "{why} ({text}): {e}"
            ),
            (true, Err(e)) => panic!("{why} ({text}) refused: {e}"),
            (false, Ok(_)) => panic!("{why} ({text}) accepted"),
        }
    }
}
