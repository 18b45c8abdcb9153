//! Sign, attest and verify targets: joins `signing`/`verify` with a `Store`.
//!
//! A signature or attestation is a Sigstore bundle stored as its own OCI image manifest
//! (DESIGN §5): `artifactType` = the bundle media type, config = the empty descriptor, one
//! layer holding the bundle, `subject` = the model manifest.

use crate::digest::Digest;
use crate::media_types as mt;
use crate::store::{
    fetch_small_blob, Annotations, BytesSource, Descriptor, ImageManifest, Store, StoreError,
};
use bytes::Bytes;

/// Builds the referrer manifest for `bundle_json` over `subject`. Returns the manifest bytes.
pub fn referrer_manifest(
    bundle_json: &[u8],
    predicate_type: &str,
    subject: &Descriptor,
    created: &str,
) -> Vec<u8> {
    let layer = Descriptor::new(
        mt::SIGSTORE_BUNDLE_V03,
        Digest::of(bundle_json),
        bundle_json.len() as u64,
    );
    let mut annotations = Annotations::new();
    annotations.insert(
        mt::ANNOTATION_BUNDLE_CONTENT.to_string(),
        mt::BUNDLE_CONTENT_DSSE.to_string(),
    );
    annotations.insert(
        mt::ANNOTATION_BUNDLE_PREDICATE_TYPE.to_string(),
        predicate_type.to_string(),
    );
    annotations.insert(mt::ANNOTATION_CREATED.to_string(), created.to_string());
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.to_string()),
        artifact_type: Some(mt::SIGSTORE_BUNDLE_V03.to_string()),
        config: Descriptor::empty(),
        layers: vec![layer],
        subject: Some(Descriptor::new(
            subject.media_type.clone(),
            subject.digest.clone(),
            subject.size,
        )),
        annotations: Some(annotations),
    };
    manifest.to_bytes()
}

/// Pushes a bundle as a referrer of `subject`: the bundle blob, the empty config, then the
/// referrer manifest (discoverable through the referrers API or the fallback tag).
pub async fn push_bundle_referrer(
    store: &dyn Store,
    bundle_json: &[u8],
    predicate_type: &str,
    subject: &Descriptor,
) -> Result<Descriptor, StoreError> {
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    store
        .push_blob(&BytesSource(Bytes::copy_from_slice(bundle_json)))
        .await?;
    store
        .push_blob(&BytesSource(Bytes::from_static(b"{}")))
        .await?;
    let manifest = referrer_manifest(bundle_json, predicate_type, subject, &created);
    store.push_referrer(Bytes::from(manifest), subject).await
}

/// A bundle found among a subject's referrers.
#[derive(Debug)]
pub struct FoundBundle {
    /// The referrer manifest's descriptor.
    pub referrer: Descriptor,
    /// `dev.sigstore.bundle.predicateType` from the referrer manifest's annotations.
    pub annotated_predicate_type: Option<String>,
    /// The bundle bytes, or why they could not be read.
    pub bundle: Result<Bytes, String>,
}

/// Fetches every Sigstore bundle attached to `subject`. A referrer whose manifest or bundle
/// layer is missing, malformed, oversized or does not point at `subject` is returned with an
/// error (it counts for nothing, but the report names it).
pub async fn find_bundles(
    store: &dyn Store,
    subject: &Descriptor,
) -> Result<Vec<FoundBundle>, StoreError> {
    let referrers = store
        .referrers(subject, Some(mt::SIGSTORE_BUNDLE_V03))
        .await?;
    let mut found = Vec::new();
    for referrer in referrers {
        let result = read_bundle(store, &referrer, subject).await;
        let (annotated_predicate_type, bundle) = match result {
            Ok((pt, b)) => (pt, Ok(b)),
            Err(e) => (None, Err(e)),
        };
        found.push(FoundBundle {
            referrer,
            annotated_predicate_type,
            bundle,
        });
    }
    Ok(found)
}

async fn read_bundle(
    store: &dyn Store,
    referrer: &Descriptor,
    subject: &Descriptor,
) -> Result<(Option<String>, Bytes), String> {
    let raw = store
        .fetch_manifest(referrer.digest.as_str())
        .await
        .map_err(|e| format!("referrer {}: {e}", referrer.digest))?;
    let manifest = raw
        .image_manifest()
        .map_err(|e| format!("referrer {}: {e}", referrer.digest))?;
    match &manifest.subject {
        Some(s) if s.digest == subject.digest => {}
        Some(s) => {
            return Err(format!(
                "referrer {} has subject {}, not the model manifest {}",
                referrer.digest, s.digest, subject.digest
            ))
        }
        None => return Err(format!("referrer {} has no subject", referrer.digest)),
    }
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == mt::SIGSTORE_BUNDLE_V03)
        .ok_or_else(|| {
            format!(
                "referrer {} has no layer of type {}",
                referrer.digest,
                mt::SIGSTORE_BUNDLE_V03
            )
        })?;
    let bundle = fetch_small_blob(
        store,
        layer,
        &format!("bundle {} of referrer {}", layer.digest, referrer.digest),
        mt::MAX_BUNDLE_SIZE,
    )
    .await
    .map_err(|e| e.to_string())?;
    let pt = manifest
        .annotations
        .as_ref()
        .and_then(|a| a.get(mt::ANNOTATION_BUNDLE_PREDICATE_TYPE))
        .cloned();
    Ok((pt, bundle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referrer_manifest_follows_design_section_5() {
        let subject = Descriptor::new(mt::OCI_MANIFEST, Digest::of(b"model"), 5);
        let bytes = referrer_manifest(
            b"{\"b\":1}",
            mt::PREDICATE_MODEL_SIGNING,
            &subject,
            "2026-01-01T00:00:00Z",
        );
        let m: ImageManifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(m.artifact_type.as_deref(), Some(mt::SIGSTORE_BUNDLE_V03));
        assert_eq!(m.config, Descriptor::empty());
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].media_type, mt::SIGSTORE_BUNDLE_V03);
        assert_eq!(m.layers[0].digest, Digest::of(b"{\"b\":1}"));
        assert_eq!(m.subject.as_ref().unwrap().digest, subject.digest);
        let a = m.annotations.unwrap();
        assert_eq!(a[mt::ANNOTATION_BUNDLE_CONTENT], "dsse-envelope");
        assert_eq!(
            a[mt::ANNOTATION_BUNDLE_PREDICATE_TYPE],
            mt::PREDICATE_MODEL_SIGNING
        );
        assert_eq!(a[mt::ANNOTATION_CREATED], "2026-01-01T00:00:00Z");
    }
}

// ---------------------------------------------------------------------------------------------
// Sign, attest and verify a model in a store.

use crate::model::{ModelArtifact, ModelError};
use crate::signing::oms::{self, ModelStatement, Serialization};
use crate::signing::{Signer, SigningError};
use crate::verify::{
    self, Artifact, BundleReport, Check, Policy, Report, TrustedRoot, VerifiedBundle, VerifyOptions,
};

/// Why a sign, attest or verify operation could not run (a policy that is not satisfied is a
/// [`Report`] with `ok: false`, not an error).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Signing(#[from] SigningError),
}

/// What `sign` pushed.
#[derive(Debug)]
pub struct SignOutcome {
    /// The model-signing (OMS) bundle JSON.
    pub model_bundle: Vec<u8>,
    pub signer: String,
    /// Referrer manifests pushed: the OMS signature, then the cosign-style one if asked.
    pub referrers: Vec<(String, Descriptor)>,
    /// Number of files the signature covers.
    pub files: usize,
}

/// The OMS statement for a model manifest: one resource per layer (path → layer digest).
/// `name` is informative (model_signing records the model directory's name).
pub fn model_statement(artifact: &ModelArtifact, name: &str) -> Result<ModelStatement, OpsError> {
    let files = artifact.files()?;
    let statement = ModelStatement::from_pairs(
        name,
        files.into_iter().map(|f| (f.path, f.descriptor.digest)),
        Serialization::default(),
    )
    .map_err(SigningError::from)?;
    Ok(statement)
}

/// Sign a model: reads only the manifest (layer digests are the file digests), signs the OMS
/// statement and — unless `with_cosign` is false — a cosign-style statement over the manifest
/// digest, then pushes each bundle as a referrer of the manifest. Both bundles are signed
/// before anything is pushed, so a signer that refuses (e.g. keyless checks) leaves no trace.
pub async fn sign_model(
    store: &dyn Store,
    artifact: &ModelArtifact,
    name: &str,
    signer: &dyn Signer,
    with_cosign: bool,
) -> Result<SignOutcome, OpsError> {
    let statement = model_statement(artifact, name)?;
    let model_bundle = signer
        .sign_dsse(mt::IN_TOTO_PAYLOAD_TYPE, &statement.to_payload())
        .await?;
    let cosign_bundle = if with_cosign {
        Some(
            signer
                .sign_dsse(
                    mt::IN_TOTO_PAYLOAD_TYPE,
                    &oms::cosign_statement(&artifact.descriptor.digest, None),
                )
                .await?,
        )
    } else {
        None
    };
    let mut referrers = Vec::new();
    let d = push_bundle_referrer(
        store,
        &model_bundle.json,
        mt::PREDICATE_MODEL_SIGNING,
        &artifact.descriptor,
    )
    .await?;
    referrers.push((mt::PREDICATE_MODEL_SIGNING.to_string(), d));
    if let Some(b) = &cosign_bundle {
        let d = push_bundle_referrer(
            store,
            &b.json,
            mt::PREDICATE_COSIGN_SIGN,
            &artifact.descriptor,
        )
        .await?;
        referrers.push((mt::PREDICATE_COSIGN_SIGN.to_string(), d));
    }
    Ok(SignOutcome {
        signer: model_bundle.signer.clone(),
        model_bundle: model_bundle.json,
        referrers,
        files: statement.resources.len(),
    })
}

/// Sign an in-toto statement about `subject` (whose subject digest must be the manifest
/// digest) and push it as a referrer annotated with `predicate_type`.
pub async fn attest_model(
    store: &dyn Store,
    subject: &Descriptor,
    statement_json: &[u8],
    predicate_type: &str,
    signer: &dyn Signer,
) -> Result<(Descriptor, String), OpsError> {
    let bundle = signer
        .sign_dsse(mt::IN_TOTO_PAYLOAD_TYPE, statement_json)
        .await?;
    let d = push_bundle_referrer(store, &bundle.json, predicate_type, subject).await?;
    Ok((d, bundle.signer))
}

/// Verify every bundle attached to a model against `policy`.
///
/// - model-signing bundles: strict OMS format (bundle v0.3, DSSE), the statement's resources
///   must equal the manifest's layers (path → digest) exactly;
/// - every other bundle (cosign-style signatures, attestations): the statement subject must be
///   the manifest digest, and its predicate type must equal the referrer's annotation;
/// - every referrer must have the model manifest as its subject.
///
/// Bundles that fail count for nothing; the report says why. Only verified bundles are given
/// to the policy, and the returned list holds exactly those.
pub async fn verify_model(
    store: &dyn Store,
    artifact: &ModelArtifact,
    target_name: &str,
    policy: &Policy,
    trust: &TrustedRoot,
) -> Result<(Report, Vec<VerifiedBundle>), OpsError> {
    let files = artifact.files()?;
    let digest = &artifact.descriptor.digest;
    let mut report = Report::new(format!("{target_name}@{digest}"));
    report.trusted_root = Some(trust.source().to_string());
    report.checks.push(Check::new(
        "manifest",
        format!(
            "{digest}: {} file(s), every layer path checked",
            files.len()
        ),
    ));
    let found = find_bundles(store, &artifact.descriptor).await?;
    report.checks.push(Check::new(
        "referrers",
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
            artifact,
            &files,
            policy,
            trust,
        ) {
            Ok((b, extra)) => {
                let mut r = BundleReport::verified(source, &b);
                // The OMS subject is checked here (resources → root digest), not by the
                // bundle verifier: drop its "not checked" note.
                r.checks
                    .retain(|c| !(c.name == "subject" && c.detail.starts_with("not checked")));
                r.checks.push(Check::new(
                    "referrer subject",
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
    artifact: &ModelArtifact,
    files: &[crate::model::ModelFile],
    policy: &Policy,
    trust: &TrustedRoot,
) -> Result<(VerifiedBundle, Vec<Check>), String> {
    let route = annotated
        .map(str::to_string)
        .or_else(|| peek_predicate_type(bundle));
    let mut checks = Vec::new();
    let verified = if route.as_deref() == Some(mt::PREDICATE_MODEL_SIGNING) {
        let b =
            verify::verify_bundle_with(bundle, None, &policy.signers, trust, &VerifyOptions::oms())
                .map_err(|e| e.to_string())?;
        let payload = b
            .payload()
            .ok_or("model-signing bundle has no DSSE payload")?;
        let statement = ModelStatement::parse(payload).map_err(|e| e.to_string())?;
        let comparison = statement.compare(
            files
                .iter()
                .map(|f| (f.path.as_str(), &f.descriptor.digest)),
        );
        if !comparison.is_match() {
            return Err(format!(
                "the signed files differ from the manifest's layers: {comparison}"
            ));
        }
        checks.push(Check::new(
            "resources",
            format!(
                "the signature lists exactly the manifest's {} file(s) with the same sha256 digests; its subject is their root digest {}",
                comparison.checked,
                statement.root_digest()
            ),
        ));
        b
    } else {
        verify::verify_bundle(
            bundle,
            Some(&Artifact::Digest(artifact.descriptor.digest.clone())),
            &policy.signers,
            trust,
        )
        .map_err(|e| e.to_string())?
    };
    if let (Some(annotated), Some(actual)) = (annotated, verified.predicate_type()) {
        if annotated != actual {
            return Err(format!(
                "the referrer is annotated with predicate type {annotated} but the signed statement says {actual}"
            ));
        }
    }
    Ok((verified, checks))
}
