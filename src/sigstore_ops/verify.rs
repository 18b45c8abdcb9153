//! Gather a target's bundles from its store and verify them against a policy.

use super::{find_bundles, OpsError, SignTarget};
use crate::media_types as mt;
use crate::store::Store;
use crate::verify::{
    self, Artifact, BoundBundle, BundleReport, Check, CheckName, Policy, Report, TrustedRoot,
    VerifyError, VerifyOptions,
};

/// Verify every bundle attached to a target (any manifest or index) against `policy`.
///
/// - model-signing bundles (models only): strict OMS format (bundle v0.3, DSSE), the
///   statement's resources must equal the manifest's layers (path → digest) exactly; on a
///   non-model such a bundle counts for nothing (there are no files to bind);
/// - every other bundle (cosign-style signatures, attestations): the statement subject must be
///   the manifest digest, and its predicate type must equal the referrer's annotation;
/// - every referrer must have the target manifest as its subject.
///
/// Bundles that fail count for nothing; the report says why. Only bound bundles (subject or
/// resources checked) are given to the policy, and the returned list holds exactly those.
pub async fn verify_target(
    store: &dyn Store,
    target: &SignTarget,
    target_name: &str,
    policy: &Policy,
    trust: &TrustedRoot,
) -> Result<(Report, Vec<BoundBundle>), OpsError> {
    // Archive layers are streamed and their files hashed; raw layers are read from the manifest.
    let files = match &target.model {
        Some(m) => Some(m.resolve_files(store, &crate::progress::silent()).await?),
        None => None,
    };
    let digest = target.digest();
    let mut report = Report::new(format!("{target_name}@{digest}"));
    report.trusted_root = Some(trust.source().to_string());
    report.checks.push(Check::new(
        CheckName::Manifest,
        match &files {
            Some(files) => format!(
                "{digest}: {} file(s), every layer path checked",
                files.len()
            ),
            None => format!(
                "{digest}: {}, not a model: signatures over the manifest digest are what count",
                target.kind
            ),
        },
    ));
    let found = find_bundles(store, &target.descriptor).await?;
    report.checks.push(Check::new(
        CheckName::Referrers,
        format!("{} Sigstore bundle(s) attached", found.len()),
    ));
    let mut verified = Vec::new();
    for f in found {
        let source = format!("referrer {}", f.referrer.digest);
        let bytes = match f.bundle {
            Ok(b) => b,
            Err(e) => {
                report.bundles.push(BundleReport::failed(source, e));
                continue;
            }
        };
        match verify_one(
            &bytes,
            f.annotated_predicate_type.as_deref(),
            target,
            files.as_deref(),
            policy,
            trust,
        ) {
            Ok((b, extra)) => {
                let mut r = BundleReport::verified(source, &b);
                r.checks.push(Check::new(
                    CheckName::ReferrerSubject,
                    format!("the referrer's subject is {digest}"),
                ));
                r.checks.extend(extra);
                report.bundles.push(r);
                verified.push(b);
            }
            Err(e) => report.bundles.push(BundleReport::failed(source, e)),
        }
    }
    let outcome = verify::evaluate(&verified, policy);
    report.policy = Some(outcome);
    report.finish();
    Ok((report, verified))
}

/// Unverified peek at a bundle's in-toto predicate type, only to choose how to verify it.
fn peek_predicate_type(bundle: &[u8]) -> Option<String> {
    use base64::Engine as _;
    let v: serde_json::Value = serde_json::from_slice(bundle).ok()?;
    let payload = v.get("dsseEnvelope")?.get("payload")?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    let s: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    s.get("predicateType")?.as_str().map(str::to_string)
}

fn verify_one(
    bundle: &[u8],
    annotated: Option<&str>,
    target: &SignTarget,
    files: Option<&[crate::model::ModelFile]>,
    policy: &Policy,
    trust: &TrustedRoot,
) -> Result<(BoundBundle, Vec<Check>), VerifyError> {
    let route = annotated
        .map(str::to_string)
        .or_else(|| peek_predicate_type(bundle));
    let mut checks = Vec::new();
    let verified = if route.as_deref() == Some(mt::PREDICATE_MODEL_SIGNING) {
        let Some(files) = files else {
            return Err(VerifyError::Artifact(format!(
                "a model-signing (per-file) signature, but {} is not a model ({}): only signatures over its manifest digest count",
                target.digest(),
                target.kind
            )));
        };
        let bound =
            verify::verify_signature(bundle, &policy.signers, trust, &VerifyOptions::oms())?
                .bind_files(
                    files
                        .iter()
                        .map(|f| (f.path.as_str(), &f.descriptor.digest)),
                    "the signed files differ from the manifest's layers",
                )?;
        checks.push(Check::new(
            CheckName::Resources,
            format!(
                "the signature lists exactly the manifest's {} file(s) with the same sha256 digests; its subject is their root digest {}",
                bound.comparison.checked,
                bound.statement.root_digest()
            ),
        ));
        bound.bundle
    } else {
        verify::verify_bundle(
            bundle,
            &Artifact::Digest(target.digest().clone()),
            &policy.signers,
            trust,
        )?
    };
    if let (Some(annotated), Some(actual)) = (annotated, verified.predicate_type()) {
        if annotated != actual {
            return Err(VerifyError::PredicateTypeMismatch {
                annotated: annotated.to_string(),
                signed: actual.to_string(),
            });
        }
    }
    Ok((verified, checks))
}
