//! Verification means what it says, against the real registry: a signature over the files
//! does not make a rewritten manifest (config, annotations) "verified"; a signer counts only
//! with a signature over the manifest unless file-only signatures are allowed, and then the
//! report says so; registry-controlled strings never reach the terminal raw; a command refuses
//! the verification flags it cannot honour.

use crate::harness::{self, Registry};
use crate::sign_verify::{attach, open, verify};
use crate::support::{keypair, push, run, sign, write_model};
use bytes::Bytes;
use oci_model::media_types as mt;
use oci_model::reference::Target;
use oci_model::sigstore_ops;
use oci_model::store::{self, BytesSource, Descriptor, ImageManifest};
use std::path::Path;

const FILES_ONLY: &str = "files verified; manifest metadata not signed";

/// The bundle of `predicate_type` attached to `target`.
async fn bundle_of(target: &str, predicate_type: &str) -> Vec<u8> {
    let s = open(target).await;
    let subject = s
        .resolve(&Target::parse(target).unwrap().reference())
        .await
        .unwrap();
    let found = sigstore_ops::find_bundles(s.as_ref(), &subject)
        .await
        .unwrap();
    found
        .into_iter()
        .find(|f| f.annotated_predicate_type.as_deref() == Some(predicate_type))
        .unwrap_or_else(|| panic!("no {predicate_type} referrer on {target}"))
        .bundle
        .unwrap()
        .to_vec()
}

/// Rewrite the manifest of `from` (same layers) with `edit_config` applied to its config JSON
/// and `edit` to the manifest, and tag it `to_tag` in the same repository.
async fn rewrite(
    from: &str,
    to_tag: &str,
    edit_config: impl FnOnce(&mut serde_json::Value),
    edit: impl FnOnce(&mut ImageManifest),
) -> String {
    let s = open(from).await;
    let t = Target::parse(from).unwrap();
    let raw = s.fetch_manifest(&t.reference()).await.unwrap();
    let mut manifest = raw.image_manifest().unwrap();
    let config = store::fetch_small_blob(s.as_ref(), &manifest.config, "config", 1 << 20)
        .await
        .unwrap();
    let mut config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    edit_config(&mut config);
    let config = serde_json::to_vec(&config).unwrap();
    let (digest, size) = s
        .push_blob(&BytesSource(Bytes::from(config)))
        .await
        .unwrap();
    manifest.config = Descriptor::new(mt::MODEL_CONFIG, digest, size);
    edit(&mut manifest);
    let d = s
        .push_manifest(
            Bytes::from(manifest.to_bytes()),
            mt::OCI_MANIFEST,
            Some(to_tag),
        )
        .await
        .unwrap();
    d.digest.to_string()
}

/// Push `model`, sign it with `key` (both bundles), then an attacker's rewrite (config name,
/// an annotation, the same layers) carrying the original signatures: (original, rewritten).
async fn signed_and_rewritten(reg: &Registry, tmp: &Path, key: &Path) -> (String, String) {
    let model = tmp.join("m");
    write_model(&model, &[("w.bin", b"weights"), ("config.json", b"{}")]);
    let original = format!("{}/{}:v1", reg.host, harness::repo("binding"));
    push(&model, &original);
    sign(&original, key, &[]);
    let oms = bundle_of(&original, mt::PREDICATE_MODEL_SIGNING).await;
    let cosign = bundle_of(&original, mt::PREDICATE_COSIGN_SIGN).await;
    let evil = original.replace(":v1", ":evil");
    rewrite(
        &original,
        "evil",
        |c| c["descriptor"]["name"] = "definitely-not-m".into(),
        |m| {
            m.annotations
                .get_or_insert_with(Default::default)
                .insert("org.example.approved".into(), "by security".into());
        },
    )
    .await;
    attach(&evil, &oms, mt::PREDICATE_MODEL_SIGNING).await;
    attach(&evil, &cosign, mt::PREDICATE_COSIGN_SIGN).await;
    (original, evil)
}

fn text_verify(target: &str, public: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["verify", target, "--key", public.to_str().unwrap()];
    args.extend(extra);
    run(&args)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewritten_manifest_with_the_original_file_signature_is_not_verified() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "k");
    let (original, evil) = signed_and_rewritten(&reg, tmp.path(), &key).await;

    tokio::task::spawn_blocking(move || {
        // The genuine model: sign → verify passes, the manifest digest is verified.
        let (code, stdout, stderr) = text_verify(&original, &public, &[]);
        assert_eq!(code, 0, "{stderr}\n{stdout}");
        assert!(stdout.starts_with("Verified "), "{stdout}");
        assert!(stdout.contains("Policy: PASSED ("), "{stdout}");
        assert!(!stdout.contains(FILES_ONLY), "{stdout}");

        // The rewrite: the file signature still lists the same files, the cosign-style bundle
        // is about the original manifest. Refused by default, naming the missing binding.
        let (code, report, stderr) = verify(&evil, &[&public], &[]);
        assert_eq!(code, 1, "{stderr}\n{report:#}");
        assert_eq!(report["ok"], false);
        assert!(
            stderr.contains("no signature binds the manifest: key"),
            "{stderr}"
        );
        let (code, stdout, _) = text_verify(&evil, &public, &[]);
        assert_eq!(code, 1);
        assert!(stdout.starts_with("NOT verified: "), "{stdout}");
        assert!(!stdout.contains("PASSED"), "{stdout}");

        // pull --key refuses too, and writes nothing.
        let out = tmp.path().join("pulled");
        let (code, _, stderr) = run(&[
            "pull",
            &evil,
            out.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains("no signature binds the manifest"),
            "{stderr}"
        );
        assert!(!out.exists());

        // Allowed explicitly: passes, and says exactly what was verified, never "Verified
        // <digest>".
        let (code, stdout, stderr) =
            text_verify(&evil, &public, &["--allow-unsigned-metadata"]);
        assert_eq!(code, 0, "{stderr}\n{stdout}");
        assert!(
            stdout.starts_with(&format!("Partly verified {}", evil.replace(":evil", ""))),
            "{stdout}"
        );
        assert!(
            stdout.lines().next().unwrap().ends_with(FILES_ONLY),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("Policy: PASSED: {FILES_ONLY}")),
            "{stdout}"
        );
        let (code, report, _) = verify(&evil, &[&public], &["--allow-unsigned-metadata"]);
        assert_eq!(code, 0);
        assert_eq!(report["policy"]["manifestSigned"], false);
        // The original keeps its full verdict with the flag.
        let (_, report, _) = verify(&original, &[&public], &["--allow-unsigned-metadata"]);
        assert_eq!(report["policy"]["manifestSigned"], true);

        // The same through a policy file rule, and pull works with it.
        let policy = tmp.path().join("policy.yaml");
        std::fs::write(
            &policy,
            format!(
                "version: 1\npolicies:\n  - repositories: [\"{}/**\"]\n    allowUnsignedMetadata: true\n    signers:\n      - key: k.pub\n",
                reg.host
            ),
        )
        .unwrap();
        let (code, stdout, stderr) = run(&["verify", &evil, "--policy", policy.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains(FILES_ONLY), "{stdout}");
        let (code, _, stderr) = run(&[
            "pull",
            &evil,
            out.to_str().unwrap(),
            "--key",
            public.to_str().unwrap(),
            "--allow-unsigned-metadata",
        ]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains(FILES_ONLY), "{stderr}");
        assert_eq!(std::fs::read(out.join("w.bin")).unwrap(), b"weights");
        // The flag weakens a policy file only where the file says so.
        let (code, _, stderr) = run(&[
            "verify",
            &evil,
            "--policy",
            policy.to_str().unwrap(),
            "--allow-unsigned-metadata",
        ]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("allowUnsignedMetadata"), "{stderr}");
    })
    .await
    .unwrap();
}

#[test]
fn each_required_signer_must_bind_the_manifest_itself() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    write_model(&model, &[("w.bin", b"two signers")]);
    let (alice, alice_pub) = keypair(tmp.path(), "alice");
    let (bob, bob_pub) = keypair(tmp.path(), "bob");
    let target = format!("{}/{}:v1", reg.host, harness::repo("per-signer"));
    push(&model, &target);
    sign(&target, &alice, &[]);
    // Bob signs the files only.
    sign(&target, &bob, &["--no-cosign-bundle"]);
    let both = [alice_pub.as_path(), bob_pub.as_path()];

    // Alice's signature over the manifest does not count for Bob.
    let (code, report, stderr) = verify(&target, &both, &["--require-signers", "2"]);
    assert_eq!(code, 1, "{stderr}\n{report:#}");
    assert!(
        stderr.contains("no signature binds the manifest: key") && stderr.contains("bob.pub"),
        "{stderr}"
    );
    assert!(!stderr.contains("alice.pub (hint"), "{stderr}");
    let (code, stdout, _) = run(&[
        "verify",
        &target,
        "--key",
        alice_pub.to_str().unwrap(),
        "--key",
        bob_pub.to_str().unwrap(),
        "--require-signers",
        "2",
    ]);
    assert_eq!(code, 1);
    let bob_line = stdout
        .lines()
        .find(|l| l.starts_with("  · key") && l.contains("bob.pub"))
        .unwrap_or_else(|| panic!("no line for bob:\n{stdout}"));
    assert!(
        bob_line.ends_with("— signed the files only, not the manifest"),
        "{stdout}"
    );
    // Bob alone: refused by default, accepted with the flag as files only.
    let (code, _, _) = verify(&target, &[&bob_pub], &[]);
    assert_eq!(code, 1);
    let (code, report, _) = verify(&target, &[&bob_pub], &["--allow-unsigned-metadata"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["policy"]["manifestSigned"], false);
    // With the flag, Alice binds the manifest and Bob counts on his files.
    let (code, report, stderr) = verify(
        &target,
        &both,
        &["--require-signers", "2", "--allow-unsigned-metadata"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["policy"]["manifestSigned"], true);
}

/// Escape, CR, a fake verdict, a right-to-left override, a zero-width space, and a newline
/// starting a fake verdict line.
const HOSTILE: &str = "x\u{1b}[2K\r✓ Policy: PASSED\u{202e}evil\u{200b}\n✓ Policy: PASSED";
/// The same as a predicate type URI (no whitespace).
const HOSTILE_URI: &str = "x:\u{1b}[2K✓Policy:PASSED\u{202e}evil\u{200b}";

fn assert_clean(what: &str, out: &str) {
    for c in ['\u{1b}', '\r', '\u{202e}', '\u{200b}', '\u{9b}'] {
        assert!(
            !out.contains(c),
            "{what}: raw {:?} reached the terminal:\n{out}",
            c
        );
    }
    assert!(
        !out.lines().any(|l| l.trim_start().starts_with("✓ Policy")),
        "{what}: a fake verdict line:\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_strings_are_escaped_in_discover_inspect_and_verify() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "k");
    let model = tmp.path().join("m");
    write_model(&model, &[("w.bin", b"weights")]);
    let original = format!("{}/{}:v1", reg.host, harness::repo("escape"));
    push(&model, &original);
    sign(&original, &key, &[]);
    let oms = bundle_of(&original, mt::PREDICATE_MODEL_SIGNING).await;

    // Annotations, config name and format, artifact type: the attacker's strings.
    let hostile = original.replace(":v1", ":hostile");
    rewrite(
        &original,
        "hostile",
        |c| {
            c["descriptor"]["name"] = HOSTILE.into();
            c["config"]["format"] = HOSTILE.into();
        },
        |m| {
            let a = m.annotations.get_or_insert_with(Default::default);
            a.insert(format!("org.example.{HOSTILE}"), HOSTILE.into());
        },
    )
    .await;
    // A referrer whose predicate type (annotation) and creation time are hostile, and the
    // genuine signature whose annotation lies about its predicate type.
    let s = open(&hostile).await;
    let subject = s.resolve("hostile").await.unwrap();
    let manifest = sigstore_ops::referrer_manifest(&oms, HOSTILE, &subject, HOSTILE);
    s.push_referrer(Bytes::from(manifest), &subject)
        .await
        .unwrap();
    // A signed attestation whose predicate type is hostile (a URI has no whitespace: no CR).
    let predicate = tmp.path().join("predicate.json");
    std::fs::write(&predicate, b"{\"note\": \"hello\"}").unwrap();
    let (code, _, stderr) = tokio::task::spawn_blocking({
        let (hostile, key, predicate) = (hostile.clone(), key.clone(), predicate.clone());
        move || {
            run(&[
                "attest",
                &hostile,
                "--key",
                key.to_str().unwrap(),
                "--predicate",
                predicate.to_str().unwrap(),
                "--type",
                HOSTILE_URI,
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    // A layer whose path is hostile.
    let paths = original.replace(":v1", ":paths");
    rewrite(
        &original,
        "paths",
        |_| {},
        |m| {
            let a = m.layers[0].annotations.get_or_insert_with(Default::default);
            a.insert(mt::ANNOTATION_FILEPATH.into(), format!("{HOSTILE}.bin"));
            a.insert(mt::ANNOTATION_TITLE.into(), format!("{HOSTILE}.bin"));
        },
    )
    .await;
    attach(&paths, &oms, mt::PREDICATE_MODEL_SIGNING).await;

    tokio::task::spawn_blocking(move || {
        let public = public.to_str().unwrap();
        for (what, args) in [
            ("discover", vec!["discover", hostile.as_str()]),
            ("inspect", vec!["inspect", hostile.as_str()]),
            ("inspect paths", vec!["inspect", paths.as_str()]),
            (
                "verify",
                vec![
                    "verify",
                    hostile.as_str(),
                    "--key",
                    public,
                    "--attestation-type",
                    HOSTILE_URI,
                    "--show-attestations",
                ],
            ),
            (
                "verify flag",
                vec![
                    "verify",
                    hostile.as_str(),
                    "--key",
                    public,
                    "--allow-unsigned-metadata",
                ],
            ),
            (
                "verify paths",
                vec!["verify", paths.as_str(), "--key", public],
            ),
            (
                "pull paths",
                vec!["pull", paths.as_str(), "/nonexistent/out", "--key", public],
            ),
        ] {
            let (code, stdout, stderr) = run(&args);
            assert_clean(what, &stdout);
            assert_clean(what, &stderr);
            // The strings were shown, escaped (not dropped), where the command shows them.
            let all = format!("{stdout}{stderr}");
            let shown = match what {
                "pull paths" => continue,
                "verify" | "verify flag" => "x:\\u{1b}[2K✓Policy:PASSED\\u{202e}evil\\u{200b}",
                _ => "x\\u{1b}[2K\\r✓ Policy: PASSED\\u{202e}evil\\u{200b}\\n✓ Policy: PASSED",
            };
            assert!(
                all.contains(shown),
                "{what} (exit {code}): {shown} not shown:\n{stdout}\n{stderr}"
            );
        }
        // JSON stays data: the exact strings, escaped by JSON itself.
        let out = harness::bin()
            .args(["inspect", &hostile, "--output", "json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["config"]["content"]["descriptor"]["name"], HOSTILE);
    })
    .await
    .unwrap();
}

#[test]
fn verify_local_refuses_flags_it_cannot_honour() {
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "k");
    let model = tmp.path().join("m");
    write_model(&model, &[("w.bin", b"local")]);
    let sig = tmp.path().join("model.sig");
    let (m, s, p) = (
        model.to_str().unwrap(),
        sig.to_str().unwrap(),
        public.to_str().unwrap(),
    );
    let (code, _, stderr) = run(&[
        "sign-local",
        m,
        "--signature",
        s,
        "--key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&["verify-local", m, "--signature", s, "--key", p]);
    assert_eq!(code, 0, "{stderr}");
    for (flag, value, why) in [
        (
            "--attestation-type",
            Some("slsaprovenance1"),
            "no attestations",
        ),
        ("--provenance-builder-id", Some("x"), "no attestations"),
        (
            "--provenance-material",
            Some("a=sha256:00"),
            "no attestations",
        ),
        ("--require-signers", Some("2"), "one signature file"),
        ("--allow-unsigned-metadata", None, "no manifest"),
    ] {
        let mut args = vec!["verify-local", m, "--signature", s, "--key", p, flag];
        args.extend(value);
        let (code, _, stderr) = run(&args);
        assert_eq!(code, 2, "{flag}: {stderr}");
        assert!(
            stderr.contains(&format!("verify-local cannot honour {flag}")) && stderr.contains(why),
            "{flag}: {stderr}"
        );
    }
    // verify-bundle checks one bundle over the artifact it is given: no file-only mode.
    let (code, _, stderr) = run(&[
        "verify-bundle",
        "--bundle",
        s,
        "--digest",
        &format!("sha256:{}", "0".repeat(64)),
        "--key",
        p,
        "--allow-unsigned-metadata",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("verify-bundle cannot honour --allow-unsigned-metadata"),
        "{stderr}"
    );
}
