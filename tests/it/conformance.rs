//! sigstore-conformance: every bundle-verify case through the real binary
//! (`oci-model verify-bundle`), by artifact and by digest, offline.
//!
//! Corpus: `<CARGO_MANIFEST_DIR>/../shared/sigstore-conformance-assets/cases.json` (70 cases:
//! 21 must verify, 49 must fail). Cases without a `trusted_root.json` use the production root
//! copy in `../shared/sigstore-extra-assets/production/`. Identity and issuer come from the
//! case (upstream defaults already filled in by cases.json: the conformance beacon workflow and
//! `https://token.actions.githubusercontent.com`); `key.pub` cases verify with the key instead.
//! With CI=true a missing corpus is a failure; elsewhere the test says loudly that it skipped.

use crate::harness;
use std::path::{Path, PathBuf};

fn shared() -> PathBuf {
    harness::project_root().join("../shared")
}

/// The corpus directory, or None (and a loud note) when it is missing outside CI.
fn corpus() -> Option<PathBuf> {
    let dir = shared().join("sigstore-conformance-assets");
    if dir.join("cases.json").is_file() {
        return Some(dir);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        !ci,
        "CI=true but the sigstore-conformance corpus is missing at {}",
        dir.display()
    );
    eprintln!(
        "SKIPPED: sigstore-conformance corpus not found at {} (this fails when CI=true)",
        dir.display()
    );
    None
}

struct Case {
    name: String,
    pass: bool,
    bundle: PathBuf,
    artifact: PathBuf,
    digest: String,
    key: Option<PathBuf>,
    identity: String,
    issuer: String,
    trusted_root: PathBuf,
}

fn cases(dir: &Path) -> Vec<Case> {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let production = shared().join("sigstore-extra-assets/production/trusted_root.json");
    assert!(production.is_file(), "missing {}", production.display());
    let s = |c: &serde_json::Value, k: &str| c[k].as_str().unwrap_or_default().to_string();
    json["cases"]
        .as_array()
        .expect("cases array")
        .iter()
        .map(|c| {
            let expect = s(c, "expect");
            assert!(expect == "pass" || expect == "fail", "{c}");
            let root = s(c, "trusted_root");
            Case {
                name: s(c, "name"),
                pass: expect == "pass",
                bundle: dir.join(s(c, "bundle")),
                artifact: dir.join(s(c, "artifact")),
                digest: s(c, "artifact_digest"),
                key: c["key"].as_str().map(|k| dir.join(k)),
                identity: s(c, "identity"),
                issuer: s(c, "issuer"),
                trusted_root: if root.starts_with("PRODUCTION") {
                    production.clone()
                } else {
                    dir.join(root)
                },
            }
        })
        .collect()
}

#[test]
fn conformance_bundle_verify_cases_give_their_expected_result_by_artifact_and_by_digest() {
    let Some(dir) = corpus() else { return };
    let cases = cases(&dir);
    assert_eq!(cases.len(), 70, "cases.json should list 70 cases");
    assert_eq!(cases.iter().filter(|c| c.pass).count(), 21);
    assert_eq!(cases.iter().filter(|c| !c.pass).count(), 49);

    let mut wrong = Vec::new();
    let mut runs = 0;
    for case in &cases {
        for by_digest in [false, true] {
            let mut cmd = harness::bin();
            cmd.arg("verify-bundle").arg("--bundle").arg(&case.bundle);
            if by_digest {
                cmd.args(["--digest", &case.digest]);
            } else {
                cmd.arg(&case.artifact);
            }
            match &case.key {
                Some(k) => {
                    cmd.arg("--key").arg(k);
                }
                None => {
                    cmd.args(["--certificate-identity", &case.identity]);
                    cmd.args(["--certificate-oidc-issuer", &case.issuer]);
                }
            }
            cmd.arg("--trusted-root").arg(&case.trusted_root);
            let out = cmd.output().expect("run oci-model");
            runs += 1;
            let code = out.status.code();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let mode = if by_digest { "digest" } else { "artifact" };
            let ok = if case.pass {
                code == Some(0) && stdout.starts_with("Verified")
            } else {
                // A failure is a clean refusal with a reason, never a crash.
                matches!(code, Some(1) | Some(2)) && stderr.contains("error: ")
            };
            if !ok {
                wrong.push(format!(
                    "{} by {mode}: expected {}, exit {code:?}\n  stdout: {}\n  stderr: {}",
                    case.name,
                    if case.pass { "pass" } else { "fail" },
                    stdout.trim(),
                    stderr.trim()
                ));
            }
        }
    }
    assert_eq!(runs, 140);
    assert!(
        wrong.is_empty(),
        "{} of 140 runs gave the wrong result:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn conformance_failures_are_verification_failures_except_unusable_inputs() {
    // Exit 1 (verification failed) for every failing case, except where the input itself is
    // unusable (exit 2).
    let Some(dir) = corpus() else { return };
    for case in cases(&dir).iter().filter(|c| !c.pass) {
        let mut cmd = harness::bin();
        cmd.arg("verify-bundle")
            .arg("--bundle")
            .arg(&case.bundle)
            .args(["--digest", &case.digest]);
        match &case.key {
            Some(k) => {
                cmd.arg("--key").arg(k);
            }
            None => {
                cmd.args(["--certificate-identity", &case.identity]);
                cmd.args(["--certificate-oidc-issuer", &case.issuer]);
            }
        }
        let out = cmd
            .arg("--trusted-root")
            .arg(&case.trusted_root)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Two cases give unusable input: a trusted root missing a required field, and a
        // key.pub whose base64 is broken ("…++++wrongkey=="). Those are input errors (2).
        let expected = match case.name.as_str() {
            "trust-root-tlog-missing-validity-start_fail" => {
                assert!(stderr.contains("invalid trusted root"), "{stderr}");
                2
            }
            "managed-key-wrong-key_fail" => {
                assert!(stderr.contains("error: public key "), "{stderr}");
                2
            }
            _ => 1,
        };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{}: {}",
            case.name,
            stderr.trim()
        );
        // The reason names the bundle or the input that was refused.
        assert!(
            stderr.contains("bundle.sigstore.json")
                || stderr.contains("trusted_root.json")
                || stderr.contains("key.pub"),
            "{}: {}",
            case.name,
            stderr.trim()
        );
    }
}
