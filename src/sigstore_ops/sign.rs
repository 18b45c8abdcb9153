//! Sign and attest any manifest or index in a store (a model also gets its per-file
//! signature).

use super::{push_bundle_referrer, OpsError, SignTarget};
use crate::media_types as mt;
use crate::model::{ModelArtifact, ModelError};
use crate::signing::oms::{self, ModelStatement, Serialization};
use crate::signing::{Signer, SigningError};
use crate::store::{Descriptor, Store};

/// What `sign` pushed.
#[derive(Debug)]
pub struct SignOutcome {
    /// The model-signing (OMS) bundle JSON, for a model.
    pub model_bundle: Option<Vec<u8>>,
    /// The cosign-style bundle JSON, unless it was not asked for.
    pub cosign_bundle: Option<Vec<u8>>,
    pub signer: String,
    /// Referrer manifests pushed: the OMS signature (models), then the cosign-style one.
    pub referrers: Vec<(String, Descriptor)>,
    /// Number of files the model-signing signature covers (0 for a non-model).
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

/// Sign any manifest or index: reads only the manifest. For a model, the OMS statement
/// (layer digests are the file digests); for every target — unless `with_cosign` is false — a
/// cosign-style statement over the manifest digest. Each bundle is pushed as a referrer of
/// the manifest. Every bundle is signed before anything is pushed, so a signer that refuses
/// (e.g. keyless checks) leaves no trace. A non-model with `with_cosign` false has nothing to
/// sign: an input error.
pub async fn sign_target(
    store: &dyn Store,
    target: &SignTarget,
    name: &str,
    signer: &dyn Signer,
    with_cosign: bool,
) -> Result<SignOutcome, OpsError> {
    let statement = target
        .model
        .as_ref()
        .map(|m| model_statement(m, name))
        .transpose()?;
    if statement.is_none() && !with_cosign {
        return Err(ModelError::Input(format!(
            "{} is not a model ({}): only the cosign-style signature over its manifest digest can be written, and it was turned off",
            target.digest(),
            target.kind
        ))
        .into());
    }
    let model_bundle = match &statement {
        Some(s) => Some(
            signer
                .sign_dsse(mt::IN_TOTO_PAYLOAD_TYPE, &s.to_payload())
                .await?,
        ),
        None => None,
    };
    let cosign_bundle = if with_cosign {
        Some(
            signer
                .sign_dsse(
                    mt::IN_TOTO_PAYLOAD_TYPE,
                    &oms::cosign_statement(target.digest()),
                )
                .await?,
        )
    } else {
        None
    };
    let signer_name = model_bundle
        .as_ref()
        .or(cosign_bundle.as_ref())
        .map(|b| b.signer.clone())
        .unwrap_or_default();
    let mut referrers = Vec::new();
    let bundles = (model_bundle.as_ref())
        .map(|b| (mt::PREDICATE_MODEL_SIGNING, &b.json))
        .into_iter()
        .chain((cosign_bundle.as_ref()).map(|b| (mt::PREDICATE_COSIGN_SIGN, &b.json)));
    for (predicate_type, json) in bundles {
        let d = push_bundle_referrer(store, json, predicate_type, &target.descriptor).await?;
        referrers.push((predicate_type.to_string(), d));
    }
    Ok(SignOutcome {
        signer: signer_name,
        files: statement.as_ref().map_or(0, |s| s.resources.len()),
        model_bundle: model_bundle.map(|b| b.json),
        cosign_bundle: cosign_bundle.map(|b| b.json),
        referrers,
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
