//! RFC 3161 timestamps: a TSA whose `genTime` carries fractional seconds (the fake TSA's
//! `fractional_time` switch) works for keyless signing, and the bundle verifies with our
//! verifier, through `verify-bundle`, and with sigstore-python.

use crate::fakes::FakeSigstore;
use crate::keyless::{options, sigstore_python, statement, token};
use crate::support::run;
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
    let Some(sigstore) = sigstore_python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have .venv/bin/sigstore"
        );
        eprintln!("skipped the sigstore-python part: .venv/bin/sigstore not installed");
        return;
    };
    let artifact = fake.dir().join("model.bin");
    std::fs::write(&artifact, data).unwrap();
    let out = std::process::Command::new(sigstore)
        .arg("--trust-config")
        .arg(&fake.trust_config_path)
        .args(["verify", "identity", "--offline", "--bundle"])
        .arg(&path)
        .args([
            "--cert-identity",
            email,
            "--cert-oidc-issuer",
            fake.issuer(),
        ])
        .arg(&artifact)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sigstore-python rejected the bundle:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
