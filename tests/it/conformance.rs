//! sigstore-conformance: every bundle-verify case through the real binary
//! (`oci-model verify-bundle`), by artifact and by digest, offline.
//!
//! Corpus: `testdata/sigstore-conformance/cases.json` (70 cases: 21 must verify, 49 must fail;
//! see the ATTRIBUTION.md there). Cases without a `trusted_root.json` use the production root
//! copy in `testdata/sigstore-extra/production/`. Identity and issuer come from the case
//! (upstream defaults already filled in by cases.json: the conformance beacon workflow and
//! `https://token.actions.githubusercontent.com`); `key.pub` cases verify with the key instead.
//! A missing corpus fails the tests.

use crate::harness;
use crate::support::{output, testdata};
use std::path::PathBuf;

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

fn cases() -> Vec<Case> {
    let dir = testdata("sigstore-conformance");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cases.json")).unwrap()).unwrap();
    let production = testdata("sigstore-extra/production/trusted_root.json");
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

impl Case {
    /// `verify-bundle` for this case, by artifact or by digest, with its key or identity.
    fn verify(&self, by_digest: bool) -> (i32, String, String) {
        let mut cmd = harness::bin();
        cmd.arg("verify-bundle").arg("--bundle").arg(&self.bundle);
        if by_digest {
            cmd.args(["--digest", &self.digest]);
        } else {
            cmd.arg(&self.artifact);
        }
        match &self.key {
            Some(k) => {
                cmd.arg("--key").arg(k);
            }
            None => {
                cmd.args(["--certificate-identity", &self.identity]);
                cmd.args(["--certificate-oidc-issuer", &self.issuer]);
            }
        }
        output(cmd.arg("--trusted-root").arg(&self.trusted_root))
    }
}

#[test]
fn conformance_bundle_verify_cases_give_their_expected_result_by_artifact_and_by_digest() {
    let cases = cases();
    assert_eq!(cases.len(), 70, "cases.json should list 70 cases");
    assert_eq!(cases.iter().filter(|c| c.pass).count(), 21);
    assert_eq!(cases.iter().filter(|c| !c.pass).count(), 49);

    let mut wrong = Vec::new();
    let mut runs = 0;
    for case in &cases {
        for by_digest in [false, true] {
            let (code, stdout, stderr) = case.verify(by_digest);
            runs += 1;
            let mode = if by_digest { "digest" } else { "artifact" };
            let ok = if case.pass {
                code == 0 && stdout.starts_with("Verified")
            } else {
                // A failure is a clean refusal with a reason, never a crash.
                matches!(code, 1 | 2) && stderr.contains("error: ")
            };
            if !ok {
                wrong.push(format!(
                    "{} by {mode}: expected {}, exit {code}\n  stdout: {}\n  stderr: {}",
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
    for case in cases().iter().filter(|c| !c.pass) {
        let (code, _, stderr) = case.verify(true);
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
        assert_eq!(code, expected, "{}: {}", case.name, stderr.trim());
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
