//! Keyless and key-based verification of real Sigstore bundles (`testdata/sigstore-extra`, see
//! its ATTRIBUTION.md for where each comes from and what it must give), at the library level
//! and through `oci-model verify-bundle`, with no network.

use crate::harness;
use crate::support::{run, testdata};
use oci_model::digest::Digest;
use oci_model::verify::{
    self, Artifact, BundleKind, CheckName, Matcher, Signer, SignerPolicy, TrustedKey, TrustedRoot,
    VerifyError, VerifyOptions,
};
use sha2::{Digest as _, Sha256};
use std::path::PathBuf;

const BEACON: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const GITHUB: &str = "https://token.actions.githubusercontent.com";
const IBM_ID: &str = "stefanb@us.ibm.com";
const IBM_ISSUER: &str = "https://sigstore.verify.ibm.com/oauth2";
const KUBEWARDEN: &str =
    "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0";
const KUBEWARDEN_DIGEST: &str =
    "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";
const WHEEL_DIGEST: &str =
    "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201";
const WHEEL_ID: &str =
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2";

fn happy_bundle() -> PathBuf {
    testdata("sigstore-conformance/test/assets/bundle-verify/happy-path-v0.3/bundle.sigstore.json")
}

fn a_txt() -> PathBuf {
    testdata("sigstore-conformance/test/assets/bundle-verify/a.txt")
}

fn identity(id: &str, issuer: &str) -> SignerPolicy {
    SignerPolicy::new().with_identity(Matcher::exact(id), Matcher::exact(issuer))
}

#[test]
fn production_model_signatures_verify_keyless_with_subject_checked_by_caller() {
    let root = TrustedRoot::production().unwrap();
    for version in ["v0.3.1", "v1.0.0", "v1.0.1", "v1.1.0"] {
        let dir = testdata(&format!(
            "sigstore-extra/model-transparency/scripts/tests/{version}-sigstore"
        ));
        let bundle = std::fs::read(dir.join("model.sig")).unwrap();
        let v = verify::verify_signature(
            &bundle,
            &identity(IBM_ID, IBM_ISSUER),
            &root,
            &VerifyOptions::oms(),
        )
        .unwrap_or_else(|e| panic!("{version}: {e}"));
        assert_eq!(v.kind(), BundleKind::Keyless);
        assert!(v.checks().iter().all(|c| c.name != CheckName::Subject));
        assert_eq!(
            v.predicate_type(),
            Some("https://model_signing/signature/v1.0")
        );
        assert_eq!(
            v.signer(),
            &Signer::Identity {
                identity: IBM_ID.into(),
                issuer: IBM_ISSUER.into()
            }
        );
        assert!(v.signing_time().is_some(), "{version}: no signing time");
        for name in [
            "certificate chain",
            "certificate SCT",
            "identity",
            "transparency log",
            "signature",
        ] {
            assert!(
                v.checks().iter().any(|c| c.name.as_str() == name),
                "{version}: no {name} check"
            );
        }

        // The caller's part: resources are the files, subject = sha256 over their digests;
        // the binding accepts those files and refuses one changed file.
        let st = v.statement().unwrap();
        let mut concat = Vec::new();
        let mut files = Vec::new();
        for r in st.predicate["resources"].as_array().unwrap() {
            let name = r["name"].as_str().unwrap();
            let digest = Digest::of(&std::fs::read(dir.join(name)).unwrap());
            assert_eq!(
                r["digest"].as_str().unwrap(),
                digest.hex(),
                "{version}: {name}"
            );
            concat.extend(digest.raw());
            files.push((name, digest));
        }
        assert_eq!(
            st.subject[0].sha256().unwrap(),
            hex::encode(Sha256::digest(&concat)),
            "{version}: subject"
        );
        let bound = v
            .clone()
            .bind_files(files.iter().map(|(n, d)| (*n, d)), "differ");
        assert_eq!(bound.unwrap().comparison.checked, files.len());
        let changed = Digest::of(b"changed");
        let err = v
            .clone()
            .bind_files(files.iter().map(|(n, _)| (*n, &changed)), "differ")
            .unwrap_err();
        assert!(matches!(err, VerifyError::FilesDiffer { .. }), "{err}");

        // Wrong identity, wrong issuer, regexp.
        let err = verify::verify_signature(
            &bundle,
            &identity("other@us.ibm.com", IBM_ISSUER),
            &root,
            &VerifyOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::IdentityMismatch { .. }), "{err}");
        let err = verify::verify_signature(
            &bundle,
            &identity(IBM_ID, GITHUB),
            &root,
            &VerifyOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::IssuerMismatch { .. }), "{err}");
        let re = SignerPolicy::new().with_identity(
            Matcher::regex(".*@us\\.ibm\\.com", "identity").unwrap(),
            Matcher::regex("https://sigstore\\.verify\\.ibm\\.com/.*", "issuer").unwrap(),
        );
        verify::verify_signature(&bundle, &re, &root, &VerifyOptions::default()).unwrap();
        // A keyless bundle never passes a key-only policy.
        let key = TrustedKey::from_file(&testdata(
            "sigstore-extra/model-transparency/scripts/tests/keys/certificate/signing-key-pub.pem",
        ))
        .unwrap();
        let err = verify::verify_signature(
            &bundle,
            &SignerPolicy::new().with_key(key),
            &root,
            &VerifyOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::KindMismatch { .. }), "{err}");
    }
}

#[test]
fn model_signing_key_bundle_without_log_verifies_with_its_p384_key() {
    let dir = testdata("sigstore-extra/model-transparency/scripts/tests/v1.1.0-elliptic-key");
    let pem = testdata(
        "sigstore-extra/model-transparency/scripts/tests/keys/certificate/signing-key-pub.pem",
    );
    let bundle = std::fs::read(dir.join("model.sig")).unwrap();
    let key = TrustedKey::from_file(&pem).unwrap();
    let policy = SignerPolicy::new().with_key(key.clone());
    let root = TrustedRoot::production().unwrap();
    let v = verify::verify_signature(&bundle, &policy, &root, &VerifyOptions::oms()).unwrap();
    assert_eq!(v.kind(), BundleKind::Key);
    assert!(v.signing_time().is_none());
    assert!(matches!(v.signer(), Signer::Key { hint, algorithm, .. }
        if *hint == key.hint && algorithm == "ECDSA P-384"));
    // model_signing's hint is the sha256 of the PEM file bytes.
    let raw: serde_json::Value = serde_json::from_slice(&bundle).unwrap();
    assert_eq!(
        raw["verificationMaterial"]["publicKey"]["hint"],
        key.hint.as_str()
    );
    // An identity-only policy never accepts it.
    let err = verify::verify_signature(
        &bundle,
        &identity(IBM_ID, IBM_ISSUER),
        &root,
        &VerifyOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, VerifyError::KindMismatch { .. }), "{err}");

    // Through the binary: by the statement's subject digest, and refused for another digest.
    let subject = format!(
        "sha256:{}",
        v.statement().unwrap().subject[0].sha256().unwrap()
    );
    let b = dir.join("model.sig");
    let (code, out, err) = run(&[
        "verify-bundle",
        "--bundle",
        b.to_str().unwrap(),
        "--digest",
        &subject,
        "--key",
        pem.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("transparency log: none"), "{out}");
    let (code, _, err) = run(&[
        "verify-bundle",
        "--bundle",
        b.to_str().unwrap(),
        "--digest",
        &format!("sha256:{}", "0".repeat(64)),
        "--key",
        pem.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("subject digest mismatch"), "{err}");
}

#[test]
fn cosign_v3_image_bundle_passes_only_for_its_release_identity() {
    let b = testdata("sigstore-extra/sigstore-rs/bundle_v03.json");
    let b = b.to_str().unwrap();
    let (code, out, err) = run(&[
        "verify-bundle",
        "--bundle",
        b,
        "--digest",
        KUBEWARDEN_DIGEST,
        "--certificate-identity",
        KUBEWARDEN,
        "--certificate-oidc-issuer",
        GITHUB,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("https://sigstore.dev/cosign/sign/v1"), "{out}");
    assert!(out.contains("RFC 3161"), "{out}");

    let old = KUBEWARDEN.replace("v1.34.0", "v1.33.0");
    let (code, _, err) = run(&[
        "verify-bundle",
        "--bundle",
        b,
        "--digest",
        KUBEWARDEN_DIGEST,
        "--certificate-identity",
        &old,
        "--certificate-oidc-issuer",
        GITHUB,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("identity mismatch") && err.contains("v1.33.0") && err.contains("v1.34.0"),
        "{err}"
    );

    // Anchored regexps: the full pattern passes, a bare substring does not.
    let (code, _, err) = run(&[
        "verify-bundle",
        "--bundle",
        b,
        "--digest",
        KUBEWARDEN_DIGEST,
        "--certificate-identity-regexp",
        "https://github\\.com/kubewarden/.*@refs/tags/v1\\..*",
        "--certificate-oidc-issuer-regexp",
        "https://token\\.actions\\.githubusercontent\\.com",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&[
        "verify-bundle",
        "--bundle",
        b,
        "--digest",
        KUBEWARDEN_DIGEST,
        "--certificate-identity-regexp",
        "kubewarden",
        "--certificate-oidc-issuer",
        GITHUB,
    ]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn sigstore_python_bundles_give_their_documented_results() {
    let wheel = testdata("sigstore-extra/sigstore-python/bundle_v3_github.whl.sigstore");
    let wheel = wheel.to_str().unwrap();
    let (code, out, err) = run(&[
        "verify-bundle",
        "--bundle",
        wheel,
        "--digest",
        WHEEL_DIGEST,
        "--certificate-identity",
        WHEEL_ID,
        "--certificate-oidc-issuer",
        GITHUB,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let other = format!("sha256:{}", "1".repeat(64));
    let (code, _, err) = run(&[
        "verify-bundle",
        "--bundle",
        wheel,
        "--digest",
        &other,
        "--certificate-identity",
        WHEEL_ID,
        "--certificate-oidc-issuer",
        GITHUB,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("mismatch"), "{err}");

    // Inclusion proof but no SET and no timestamp: no verified time, must fail.
    let b = testdata("sigstore-extra/sigstore-python/bundle_v3_no_signed_time.txt.sigstore.json");
    let a = testdata("sigstore-extra/sigstore-python/bundle_v3_no_signed_time.txt");
    let (code, _, err) = run(&[
        "verify-bundle",
        "--bundle",
        b.to_str().unwrap(),
        a.to_str().unwrap(),
        "--certificate-identity",
        "william@yossarian.net",
        "--certificate-oidc-issuer",
        "https://github.com/login/oauth",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no verified source of signing time"), "{err}");
}

#[test]
fn wrong_identity_issuer_or_digest_are_each_rejected_with_the_reason() {
    let b = happy_bundle();
    let b = b.to_str().unwrap();
    let a = a_txt();
    let a = a.to_str().unwrap();
    let (code, _, err) = run(&[
        "verify-bundle",
        "--bundle",
        b,
        a,
        "--certificate-identity",
        BEACON,
        "--certificate-oidc-issuer",
        GITHUB,
    ]);
    assert_eq!(code, 0, "{err}");

    let (code, _, err) = run(&[
        "verify-bundle",
        "--bundle",
        b,
        a,
        "--certificate-identity",
        "https://github.com/someone/else/.github/workflows/x.yml@refs/heads/main",
        "--certificate-oidc-issuer",
        GITHUB,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("identity mismatch") && err.contains(BEACON),
        "{err}"
    );

    let (code, _, err) = run(&[
        "verify-bundle",
        "--bundle",
        b,
        a,
        "--certificate-identity",
        BEACON,
        "--certificate-oidc-issuer",
        "https://accounts.google.com",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("issuer mismatch") && err.contains(GITHUB),
        "{err}"
    );

    let (code, _, err) = run(&[
        "verify-bundle",
        "--bundle",
        b,
        "--digest",
        &format!("sha256:{}", "ab".repeat(32)),
        "--certificate-identity",
        BEACON,
        "--certificate-oidc-issuer",
        GITHUB,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("subject digest mismatch"), "{err}");

    // A keyless bundle never passes a key policy.
    let key = testdata(
        "sigstore-extra/model-transparency/scripts/tests/keys/certificate/signing-key-pub.pem",
    );
    let (code, _, err) = run(&[
        "verify-bundle",
        "--bundle",
        b,
        a,
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("trusts only public keys"), "{err}");

    // n-of-m: one bundle cannot satisfy two required signers.
    let (code, _, err) = run(&[
        "verify-bundle",
        "--bundle",
        b,
        a,
        "--certificate-identity",
        BEACON,
        "--certificate-identity",
        "x@y",
        "--certificate-oidc-issuer",
        GITHUB,
        "--require-signers",
        "2",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("2 distinct trusted signer(s) required, 1 found"),
        "{err}"
    );
}

#[test]
fn usage_mistakes_exit_2() {
    let b = happy_bundle();
    let b = b.to_str().unwrap();
    let a = a_txt();
    let a = a.to_str().unwrap();
    for (args, needle) in [
        (
            vec![
                "--bundle",
                "/nonexistent.json",
                a,
                "--certificate-identity",
                BEACON,
                "--certificate-oidc-issuer",
                GITHUB,
            ],
            "/nonexistent.json",
        ),
        (
            vec![
                "--bundle",
                b,
                "--digest",
                "sha256:xyz",
                "--certificate-identity",
                BEACON,
                "--certificate-oidc-issuer",
                GITHUB,
            ],
            "--digest",
        ),
        (
            vec!["--bundle", b, a, "--certificate-identity", BEACON],
            "--certificate-oidc-issuer",
        ),
        (vec!["--bundle", b, a], "no trusted signer"),
        (vec!["--bundle", b, a, "--policy", "p.yaml"], "--policy"),
        (vec!["--bundle", b, a, "--key", a], "public key"),
        (
            vec![
                "--bundle",
                b,
                "/nonexistent/artifact",
                "--certificate-identity",
                BEACON,
                "--certificate-oidc-issuer",
                GITHUB,
            ],
            "/nonexistent/artifact",
        ),
        (
            vec![
                "--bundle",
                b,
                a,
                "--certificate-identity",
                BEACON,
                "--certificate-oidc-issuer",
                GITHUB,
                "--trusted-root",
                a,
            ],
            "invalid trusted root",
        ),
    ] {
        let (code, _, err) = run(&[&["verify-bundle"][..], &args].concat());
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn json_report_lists_the_checks() {
    let out = harness::bin()
        .args(["--output", "json", "verify-bundle", "--bundle"])
        .arg(happy_bundle())
        .arg(a_txt())
        .args([
            "--certificate-identity",
            BEACON,
            "--certificate-oidc-issuer",
            GITHUB,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["policy"]["passed"], true);
    let bundle = &v["bundles"][0];
    assert_eq!(bundle["kind"], "keyless");
    assert_eq!(bundle["signer"]["identity"], BEACON);
    let names: Vec<&str> = bundle["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for n in [
        "certificate chain",
        "certificate SCT",
        "identity",
        "transparency log",
        "signing time",
        "signature",
        "subject",
    ] {
        assert!(names.contains(&n), "missing check {n}: {names:?}");
    }
}

#[test]
fn trusted_root_show_prints_what_is_trusted() {
    let out = harness::bin()
        .args(["trusted-root", "show"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "https://fulcio.sigstore.dev",
        "https://rekor.sigstore.dev",
        "wNI9atQGlz+VWfO6LRygH4QUfY/8W4RFwiT5i5WRgB0=",
        "https://ctfe.sigstore.dev/2022",
        "timestamp.sigstore.dev",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let staging = testdata("sigstore-extra/staging/trusted_root.json");
    let out = harness::bin()
        .args(["-o", "json", "trusted-root", "show", "--trusted-root"])
        .arg(&staging)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["tlogs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["baseUrl"].as_str().unwrap().contains("sigstage.dev")),
        "{v}"
    );
    assert_eq!(v["source"], staging.display().to_string());
}

#[test]
fn verification_never_touches_the_network() {
    // Every proxy variable points at a closed loopback port: any HTTP(S) request would fail.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let proxy = format!("http://127.0.0.1:{port}");
    let with_proxies = |cmd: &mut assert_cmd::Command| {
        for var in [
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "ALL_PROXY",
            "https_proxy",
            "http_proxy",
            "all_proxy",
        ] {
            cmd.env(var, &proxy);
        }
        cmd.env_remove("NO_PROXY").env_remove("no_proxy");
    };
    // Keyless, with the embedded production root (no --trusted-root: nothing to fetch either).
    let mut cmd = harness::bin();
    with_proxies(&mut cmd);
    let out = cmd
        .args(["verify-bundle", "--bundle"])
        .arg(testdata("sigstore-extra/sigstore-rs/bundle_v03.json"))
        .args([
            "--digest",
            KUBEWARDEN_DIGEST,
            "--certificate-identity",
            KUBEWARDEN,
            "--certificate-oidc-issuer",
            GITHUB,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = harness::bin();
    with_proxies(&mut cmd);
    let out = cmd.args(["trusted-root", "show"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn library_artifact_forms_agree() {
    let root = TrustedRoot::production().unwrap();
    let bundle = std::fs::read(happy_bundle()).unwrap();
    let bytes = std::fs::read(a_txt()).unwrap();
    let digest = Digest::of(&bytes);
    let policy = identity(BEACON, GITHUB);
    for a in [
        Artifact::Bytes(bytes.clone()),
        Artifact::File(a_txt()),
        Artifact::Digest(digest),
    ] {
        let v = verify::verify_bundle(&bundle, &a, &policy, &root).unwrap();
        assert!(v.checks().iter().any(|c| c.name == CheckName::Subject));
        assert!(v.message_digest().unwrap().starts_with("sha256:"));
    }
    // A message signature cannot be verified without its artifact.
    let err =
        verify::verify_signature(&bundle, &policy, &root, &VerifyOptions::default()).unwrap_err();
    assert!(matches!(err, VerifyError::Artifact(_)), "{err}");
}
