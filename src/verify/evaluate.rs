//! Judge bound bundles against a [`Policy`]: n-of-m distinct signers, required attestation
//! types, SLSA provenance requirements.

use super::bundle::{Binding, BoundBundle};
use super::error::VerifyError;
use super::policy::{ManifestBinding, Policy, SignatureKinds};
use crate::untrusted::Untrusted;
use crate::{attest, media_types};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A satisfied signer entry and who satisfied it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SatisfiedSigner {
    pub entry: usize,
    /// The entry, described (`policy` is the whole policy outcome in a report).
    #[serde(rename = "policyEntry")]
    pub policy: String,
    /// Who satisfied it, described (`signer` is a structured signer in a report).
    #[serde(rename = "satisfiedBy")]
    pub signer: String,
}

/// A required attestation type and whether it was found.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationOutcome {
    pub predicate_type: String,
    pub present: bool,
    /// Signers of the verified attestations of that type.
    pub signed_by: Vec<String>,
}

/// What [`evaluate`] found.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyOutcome {
    pub passed: bool,
    /// A counted signer's signature binds the artifact itself (for a model: the manifest
    /// digest). False when only file-only signatures counted (the policy allowed them): the
    /// files are verified, the manifest's metadata is not signed.
    pub manifest_signed: bool,
    /// Trusted signers whose signatures cover only the model's files, not the manifest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files_only_signers: Vec<String>,
    pub signers_required: usize,
    /// The entries counted (a maximum matching: one signer counts for one entry).
    pub signers_satisfied: Vec<SatisfiedSigner>,
    /// Entries no counted signer satisfied.
    pub signers_missing: Vec<String>,
    /// Per missing entry: a trusted signer of it signed the files only, not the manifest.
    #[serde(skip)]
    missing_files_only: Vec<bool>,
    pub attestations: Vec<AttestationOutcome>,
    /// Provenance requirements: description → met.
    pub provenance: Vec<(String, bool)>,
    /// One line per unmet requirement.
    pub failures: Vec<String>,
}

impl PolicyOutcome {
    /// `Ok(())` when passed, else a [`VerifyError::PolicyNotSatisfied`] listing the failures.
    pub fn into_result(self) -> Result<Self, VerifyError> {
        if self.passed {
            Ok(self)
        } else {
            Err(VerifyError::PolicyNotSatisfied(self.failures.join("; ")))
        }
    }

    /// What the verdict covers, for the first line of a report: `None` when a trusted
    /// signature binds the manifest, else the exact words for a pass on files only.
    pub fn scope_note(&self) -> Option<&'static str> {
        (self.passed && !self.manifest_signed).then_some(FILES_ONLY)
    }

    /// The verdict and its reasons; every string from a bundle or a registry is escaped.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "Policy: {}{} ({} of {} required signer(s) satisfied)\n",
            if self.passed { "PASSED" } else { "FAILED" },
            self.scope_note()
                .map(|n| format!(": {n}"))
                .unwrap_or_default(),
            self.signers_satisfied.len(),
            self.signers_required
        );
        for s in &self.signers_satisfied {
            out.push_str(&format!(
                "  ✓ {} — signed by {}\n",
                Untrusted(&s.policy),
                Untrusted(&s.signer)
            ));
        }
        for (i, m) in self.signers_missing.iter().enumerate() {
            let why = if self.missing_files_only.get(i) == Some(&true) {
                "signed the files only, not the manifest"
            } else {
                "no signature"
            };
            out.push_str(&format!("  · {} — {why}\n", Untrusted(m)));
        }
        for a in &self.attestations {
            out.push_str(&format!(
                "  {} attestation {}{}\n",
                if a.present { "✓" } else { "✗" },
                Untrusted(&a.predicate_type),
                if a.present {
                    format!(" (signed by {})", Untrusted(a.signed_by.join(", ")))
                } else {
                    " missing".to_string()
                }
            ));
        }
        for (what, ok) in &self.provenance {
            out.push_str(&format!(
                "  {} provenance {}\n",
                if *ok { "✓" } else { "✗" },
                Untrusted(what)
            ));
        }
        for f in &self.failures {
            out.push_str(&format!("  failure: {}\n", Untrusted(f)));
        }
        out
    }
}

/// What a pass means when only file-only signatures counted.
pub const FILES_ONLY: &str = "files verified; manifest metadata not signed";

/// Judge verified bundles against `policy`: at least `require_signers` distinct entries must be
/// satisfied by distinct signers (among bundles counting as signatures), every required
/// attestation type present, and the provenance requirements met by one provenance statement.
///
/// Only [`BoundBundle`]s get here: each passed every check, its subject included.
pub fn evaluate(results: &[BoundBundle], policy: &Policy) -> PolicyOutcome {
    let mut failures = Vec::new();

    // Signers → entries they satisfy (from signature bundles only), and whether one of their
    // signatures binds the artifact itself (for a model: the manifest digest).
    let mut by_signer: BTreeMap<String, (String, BTreeSet<usize>, bool)> = BTreeMap::new();
    for b in results.iter().filter(|b| counts_as_signature(b, policy)) {
        let slot = by_signer
            .entry(b.signer().distinct_id())
            .or_insert_with(|| (b.signer().to_string(), BTreeSet::new(), false));
        slot.1.extend(
            b.matched_entries()
                .iter()
                .copied()
                .filter(|i| *i < policy.signers.len()),
        );
        slot.2 |= b.binding() == Binding::Artifact;
    }
    // Per signer: without a signature over the manifest, a signer counts only where the policy
    // accepts file-only signatures.
    let files_only: Vec<String> = by_signer
        .values()
        .filter(|(_, entries, bound)| !bound && !entries.is_empty())
        .map(|(name, _, _)| name.clone())
        .collect();
    let files_only_entries: BTreeSet<usize> = by_signer
        .values()
        .filter(|(_, _, bound)| !bound)
        .flat_map(|(_, entries, _)| entries.iter().copied())
        .collect();
    let bound_signers: BTreeSet<String> = by_signer
        .values()
        .filter(|(_, _, bound)| *bound)
        .map(|(name, _, _)| name.clone())
        .collect();
    let by_signer: BTreeMap<String, (String, BTreeSet<usize>)> = by_signer
        .into_iter()
        .map(|(id, (name, entries, bound))| {
            let counts = bound || policy.manifest_binding == ManifestBinding::FilesSuffice;
            (id, (name, if counts { entries } else { BTreeSet::new() }))
        })
        .collect();
    let signers: Vec<(String, Vec<usize>)> = by_signer
        .into_values()
        .map(|(name, set)| (name, set.into_iter().collect()))
        .collect();
    let matching = max_matching(&signers, policy.signers.len());
    let mut satisfied: Vec<SatisfiedSigner> = matching
        .iter()
        .enumerate()
        .filter_map(|(entry, s)| {
            s.map(|s| SatisfiedSigner {
                entry,
                policy: policy.signers.entries()[entry].describe(),
                signer: signers[s].0.clone(),
            })
        })
        .collect();
    satisfied.sort_by_key(|s| s.entry);
    let (missing, missing_files_only): (Vec<String>, Vec<bool>) = matching
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_none())
        .map(|(entry, _)| {
            (
                policy.signers.entries()[entry].describe(),
                files_only_entries.contains(&entry),
            )
        })
        .unzip();
    let required = policy.require_signers.max(1);
    if satisfied.len() < required
        && policy.manifest_binding == ManifestBinding::Required
        && !files_only.is_empty()
    {
        failures.push(format!(
            "no signature binds the manifest: {} signed only the file list (not the manifest's config, annotations, media types or sizes); re-sign with `oci-model sign`, which also writes the cosign-style bundle over the manifest, or accept file-only signatures with --allow-unsigned-metadata (policy file: allowUnsignedMetadata: true)",
            files_only.join(", ")
        ));
    } else if satisfied.len() < required {
        failures.push(if satisfied.is_empty() {
            "no valid signature from a trusted signer".to_string()
        } else {
            format!(
                "{} distinct trusted signer(s) required, {} found",
                required,
                satisfied.len()
            )
        });
    }

    // Required attestation types.
    let mut attestations = Vec::new();
    for wanted in &policy.attestation_types {
        let signed_by: Vec<String> = results
            .iter()
            .filter(|b| b.predicate_type() == Some(wanted.as_str()))
            .map(|b| b.signer().to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if signed_by.is_empty() {
            failures.push(format!(
                "no verified attestation of type {wanted} from a trusted signer"
            ));
        }
        attestations.push(AttestationOutcome {
            predicate_type: wanted.clone(),
            present: !signed_by.is_empty(),
            signed_by,
        });
    }

    // Provenance: one verified SLSA provenance statement must meet every requirement. The
    // checks are attest's: the same reading of the predicate that attest writes.
    let mut provenance = Vec::new();
    if !policy.provenance.is_empty() {
        let candidates: Vec<&BoundBundle> = results
            .iter()
            .filter(|b| b.predicate_type() == Some(media_types::PREDICATE_SLSA_PROVENANCE_V1))
            .filter(|b| b.statement().is_some())
            .collect();
        let predicates: Vec<&serde_json::Value> = candidates
            .iter()
            .filter_map(|b| b.statement().map(|s| &s.predicate))
            .collect();
        let mut requirements: Vec<(String, Requirement)> = Vec::new();
        if let Some(id) = &policy.provenance.builder_id {
            let id = id.clone();
            requirements.push((
                format!("builder.id = {id}"),
                Box::new(move |p| attest::check_builder_id(p, &id)),
            ));
        }
        for (name, hex) in &policy.provenance.materials {
            let (name, hex) = (name.clone(), hex.clone());
            requirements.push((
                format!("material {name} = sha256:{hex}"),
                Box::new(move |p| attest::check_material(p, &name, &hex)),
            ));
        }
        // The statement meeting the most requirements; its failures are reported.
        let best = predicates
            .iter()
            .max_by_key(|p| requirements.iter().filter(|(_, f)| f(p).is_ok()).count());
        let mut best_failures = Vec::new();
        for (what, check) in &requirements {
            let failure = match best {
                Some(p) => check(p).err().map(|e| e.to_string()),
                None => Some(format!(
                    "{what}: no verified SLSA provenance v1 attestation"
                )),
            };
            provenance.push((what.clone(), failure.is_none()));
            if let Some(e) = failure {
                best_failures.push(format!("provenance {e}"));
            }
        }
        if best_failures.is_empty() || candidates.len() < 2 {
            failures.extend(best_failures);
        } else {
            // Several candidates, none good enough: each one and why it fails.
            for (n, (bundle, p)) in candidates.iter().zip(&predicates).enumerate() {
                let why: Vec<String> = requirements
                    .iter()
                    .filter_map(|(_, f)| f(p).err().map(|e| e.to_string()))
                    .collect();
                failures.push(format!(
                    "provenance {} of {} (signed by {}): {}",
                    n + 1,
                    candidates.len(),
                    bundle.signer(),
                    why.join("; ")
                ));
            }
        }
    }

    let manifest_signed = satisfied.iter().any(|s| bound_signers.contains(&s.signer));
    PolicyOutcome {
        passed: failures.is_empty(),
        manifest_signed,
        files_only_signers: files_only,
        signers_required: required,
        signers_satisfied: satisfied,
        signers_missing: missing,
        missing_files_only,
        attestations,
        provenance,
        failures,
    }
}

/// A check on a provenance predicate: `Err` says what was found and expected.
type Requirement = Box<dyn Fn(&serde_json::Value) -> Result<(), attest::ProvenanceCheckError>>;

fn counts_as_signature(b: &BoundBundle, policy: &Policy) -> bool {
    match (&policy.signature_kinds, b.predicate_type()) {
        (SignatureKinds::Any, _) => true,
        (SignatureKinds::PredicateTypes(_), None) => true,
        (SignatureKinds::PredicateTypes(types), Some(t)) => types.iter().any(|x| x == t),
    }
}

/// Maximum bipartite matching signers ↔ entries (Kuhn's algorithm; sizes are tiny).
/// Returns, per entry, the index of the signer counted for it.
fn max_matching(signers: &[(String, Vec<usize>)], entries: usize) -> Vec<Option<usize>> {
    fn augment(
        s: usize,
        signers: &[(String, Vec<usize>)],
        seen: &mut [bool],
        owner: &mut [Option<usize>],
    ) -> bool {
        for &e in &signers[s].1 {
            if e >= seen.len() || seen[e] {
                continue;
            }
            seen[e] = true;
            if owner[e].is_none_or(|o| augment(o, signers, seen, owner)) {
                owner[e] = Some(s);
                return true;
            }
        }
        false
    }
    let mut owner = vec![None; entries];
    for s in 0..signers.len() {
        let mut seen = vec![false; entries];
        augment(s, signers, &mut seen, &mut owner);
    }
    owner
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{key_bundle, statement, Alg, TestKey};
    use crate::verify::{verify_bundle, Artifact, SignerPolicy, TrustedRoot};

    const SUBJECT: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

    /// Verified over its subject digest.
    fn bound(bundle: &[u8], policy: &SignerPolicy) -> BoundBundle {
        let subject = Artifact::Digest(format!("sha256:{SUBJECT}").parse().unwrap());
        verify_bundle(
            bundle,
            &subject,
            policy,
            &TrustedRoot::production().unwrap(),
        )
        .unwrap()
    }

    fn signed(key: &TestKey, predicate: &str, policy: &SignerPolicy) -> BoundBundle {
        let b = key_bundle(
            key,
            &statement(SUBJECT, predicate),
            media_types::SIGSTORE_BUNDLE_V03,
        );
        bound(&b, policy)
    }

    #[test]
    fn n_of_m_counts_distinct_trusted_signers() {
        let (a, b, c) = (
            TestKey::new(Alg::P256),
            TestKey::new(Alg::P384),
            TestKey::new(Alg::Ed25519),
        );
        let signers = SignerPolicy::new()
            .with_key(a.trusted("a.pub"))
            .with_key(b.trusted("b.pub"))
            .with_key(c.trusted("c.pub"));
        let mut policy = Policy::new(signers.clone());
        policy.require_signers = 2;
        let sig = media_types::PREDICATE_MODEL_SIGNING;
        let ra = signed(&a, sig, &signers);
        let rb = signed(&b, sig, &signers);

        let one = evaluate(std::slice::from_ref(&ra), &policy);
        assert!(!one.passed);
        assert!(
            one.failures[0].contains("2 distinct trusted signer(s) required, 1 found"),
            "{:?}",
            one.failures
        );
        // The same signer twice is still one signer.
        assert!(!evaluate(&[ra.clone(), ra.clone()], &policy).passed);
        let two = evaluate(&[ra.clone(), rb.clone()], &policy);
        assert!(two.passed, "{:?}", two.failures);
        assert_eq!(two.signers_satisfied.len(), 2);
        assert_eq!(two.signers_missing.len(), 1);
        // An attestation by b does not count as b's signature.
        let att = signed(&b, media_types::PREDICATE_SLSA_PROVENANCE_V1, &signers);
        assert!(!evaluate(&[ra, att], &policy).passed);
    }

    #[test]
    fn required_attestations_and_provenance() {
        let a = TestKey::new(Alg::P256);
        let signers = SignerPolicy::new().with_key(a.trusted("a.pub"));
        let mut policy = Policy::new(signers.clone());
        // The policy holds resolved URIs (the CLI and policy files resolve shortcuts).
        policy.attestation_types = vec![media_types::PREDICATE_SLSA_PROVENANCE_V1.into()];
        policy.provenance.builder_id = Some("https://builder.example/x".into());
        let sig = signed(&a, media_types::PREDICATE_MODEL_SIGNING, &signers);
        let out = evaluate(std::slice::from_ref(&sig), &policy);
        assert!(!out.passed);
        assert_eq!(
            out.failures,
            vec![
                "no verified attestation of type https://slsa.dev/provenance/v1 from a trusted signer".to_string(),
                "provenance builder.id = https://builder.example/x: no verified SLSA provenance v1 attestation".to_string(),
            ]
        );

        let hex = "ab".repeat(32);
        let provenance = |builder: &str| {
            let prov = serde_json::json!({
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "m", "digest": {"sha256": SUBJECT}}],
                "predicateType": media_types::PREDICATE_SLSA_PROVENANCE_V1,
                "predicate": {
                    "buildDefinition": {
                        "buildType": "https://oci-model.dev/ModelTraining/v1",
                        "resolvedDependencies": [
                            {"name": "data", "digest": {"sha256": hex}},
                            {"uri": "oci://r.example/base@sha256:00", "digest": {"sha256": hex}},
                        ],
                    },
                    "runDetails": {"builder": {"id": builder}},
                },
            });
            let b = key_bundle(
                &a,
                &serde_json::to_vec(&prov).unwrap(),
                media_types::SIGSTORE_BUNDLE_V03,
            );
            bound(&b, &signers)
        };
        let prov = provenance("https://builder.example/x");
        // Materials match on name or uri.
        policy.provenance.materials = vec![
            ("data".into(), hex.clone()),
            ("oci://r.example/base@sha256:00".into(), hex.clone()),
        ];
        let out = evaluate(&[sig.clone(), prov.clone()], &policy);
        assert!(out.passed, "{:?}", out.failures);
        assert!(out.provenance.iter().all(|(_, ok)| *ok));

        // Failures carry attest's precise messages for the best statement.
        let other = "cd".repeat(32);
        policy.provenance.builder_id = Some("https://other".into());
        policy.provenance.materials = vec![
            ("data".into(), other.clone()),
            ("tokenizer".into(), hex.clone()),
        ];
        let out = evaluate(&[sig.clone(), prov.clone()], &policy);
        assert!(!out.passed);
        assert_eq!(
            out.failures,
            vec![
                "provenance builder id is \"https://builder.example/x\", expected \"https://other\"".to_string(),
                format!("provenance material \"data\" has sha256:{hex}, expected sha256:{other}"),
                "provenance lists no material named \"tokenizer\" (materials: data, oci://r.example/base@sha256:00)".to_string(),
            ]
        );
        assert_eq!(
            out.provenance,
            vec![
                ("builder.id = https://other".to_string(), false),
                (format!("material data = sha256:{other}"), false),
                (format!("material tokenizer = sha256:{hex}"), false),
            ]
        );

        // Two provenance statements: the one meeting the requirements counts.
        policy.provenance.materials = vec![("data".into(), hex.clone())];
        let good = provenance("https://other");
        let out = evaluate(&[sig.clone(), good.clone(), prov.clone()], &policy);
        assert!(out.passed, "{:?}", out.failures);
        let out = evaluate(&[sig, prov, good], &policy);
        assert!(out.passed, "{:?}", out.failures);
    }

    /// A model-signing bundle by `key` over one file, bound to that file list.
    fn files_only(key: &TestKey, policy: &SignerPolicy) -> BoundBundle {
        use crate::signing::oms::{ModelStatement, Serialization};
        let digest: crate::digest::Digest = format!("sha256:{SUBJECT}").parse().unwrap();
        let statement = ModelStatement::from_pairs(
            "m",
            [("w.bin", digest.clone())],
            Serialization::for_signing(&[], false, false),
        )
        .unwrap();
        let b = key_bundle(
            key,
            &statement.to_payload(),
            media_types::SIGSTORE_BUNDLE_V03,
        );
        crate::verify::verify_signature(
            &b,
            policy,
            &TrustedRoot::production().unwrap(),
            &crate::verify::VerifyOptions::oms(),
        )
        .unwrap()
        .bind_files([("w.bin", &digest)], "differ")
        .unwrap()
        .bundle
    }

    #[test]
    fn a_signer_counts_only_with_a_signature_over_the_manifest_unless_allowed() {
        let (a, b) = (TestKey::new(Alg::P256), TestKey::new(Alg::P384));
        let signers = SignerPolicy::new()
            .with_key(a.trusted("a.pub"))
            .with_key(b.trusted("b.pub"));
        let mut policy = Policy::new(signers.clone());
        let a_files = files_only(&a, &signers);
        assert_eq!(a_files.binding(), Binding::Files);

        // Default: a's file-only signature does not make a count; the failure names it.
        let out = evaluate(std::slice::from_ref(&a_files), &policy);
        assert!(!out.passed);
        assert!(
            out.failures[0].starts_with("no signature binds the manifest: key a.pub"),
            "{:?}",
            out.failures
        );
        assert_eq!(out.files_only_signers.len(), 1);

        // Per signer: b's signature over the manifest does not lend a binding to a.
        policy.require_signers = 2;
        let b_sig = signed(&b, media_types::PREDICATE_COSIGN_SIGN, &signers);
        let out = evaluate(&[a_files.clone(), b_sig.clone()], &policy);
        assert!(!out.passed, "{out:?}");
        assert_eq!(out.signers_satisfied.len(), 1);
        // a's own cosign-style signature binds the manifest: both count.
        let a_sig = signed(&a, media_types::PREDICATE_COSIGN_SIGN, &signers);
        let out = evaluate(&[a_files.clone(), a_sig, b_sig.clone()], &policy);
        assert!(out.passed, "{:?}", out.failures);
        assert!(out.manifest_signed && out.scope_note().is_none());

        // Allowed: a counts on its files; the outcome says exactly what was verified.
        policy.require_signers = 1;
        policy.manifest_binding = ManifestBinding::FilesSuffice;
        let out = evaluate(std::slice::from_ref(&a_files), &policy);
        assert!(out.passed, "{:?}", out.failures);
        assert!(!out.manifest_signed);
        assert_eq!(
            out.scope_note(),
            Some("files verified; manifest metadata not signed")
        );
        assert!(out
            .to_text()
            .starts_with("Policy: PASSED: files verified; manifest metadata not signed"));
        // With a signature over the manifest as well, the manifest is signed.
        let out = evaluate(&[a_files, b_sig], &policy);
        assert!(out.passed && out.manifest_signed, "{out:?}");
    }

    #[test]
    fn matching_counts_one_signer_once() {
        // One signer satisfying two entries counts once; two signers for the same single
        // entry count once.
        let signers = vec![("a".to_string(), vec![0, 1])];
        assert_eq!(max_matching(&signers, 2).iter().flatten().count(), 1);
        let signers = vec![("a".to_string(), vec![0]), ("b".to_string(), vec![0])];
        assert_eq!(max_matching(&signers, 2).iter().flatten().count(), 1);
        // Augmenting path: a can take 0 or 1, b only 0.
        let signers = vec![("a".to_string(), vec![0, 1]), ("b".to_string(), vec![0])];
        assert_eq!(max_matching(&signers, 2).iter().flatten().count(), 2);
    }
}
