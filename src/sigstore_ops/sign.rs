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
    /// The model-signing (OMS) bundle JSON; for a non-model, the cosign-style bundle (what
    /// `--bundle-out` writes).
    pub model_bundle: Vec<u8>,
    pub signer: String,
    /// Referrer manifests pushed: the OMS signature, then the cosign-style one if asked.
    pub referrers: Vec<(String, Descriptor)>,
    /// Number of files the signature covers (0 for a non-model).
    pub files: usize,
}

/// The OMS statement for a model manifest: one resource per file, path → digest. A raw
/// layer's digest is read from the manifest; an archive layer is streamed once from `store`
/// and each of its files hashed. `name` is informative (model_signing records the model
/// directory's name).
pub async fn model_statement(
    store: &dyn Store,
    artifact: &ModelArtifact,
    name: &str,
) -> Result<ModelStatement, OpsError> {
    let files = artifact
        .resolve_files(store, &crate::progress::silent())
        .await?;
    let statement = ModelStatement::from_pairs(
        name,
        files.into_iter().map(|f| (f.path, f.descriptor.digest)),
        Serialization::default(),
    )
    .map_err(SigningError::from)?;
    Ok(statement)
}

/// Sign a model: reads only the manifest (layer digests are the file digests) and any archive
/// layers (hashing their files), signs the OMS
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
    let statement = model_statement(store, artifact, name).await?;
    let model_bundle = signer
        .sign_dsse(mt::IN_TOTO_PAYLOAD_TYPE, &statement.to_payload())
        .await?;
    let cosign_bundle = if with_cosign {
        Some(
            signer
                .sign_dsse(
                    mt::IN_TOTO_PAYLOAD_TYPE,
                    &oms::cosign_statement(&artifact.descriptor.digest),
                )
                .await?,
        )
    } else {
        None
    };
    let mut referrers = Vec::new();
    let bundles = std::iter::once((mt::PREDICATE_MODEL_SIGNING, &model_bundle.json))
        .chain((cosign_bundle.as_ref()).map(|b| (mt::PREDICATE_COSIGN_SIGN, &b.json)));
    for (predicate_type, json) in bundles {
        let d = push_bundle_referrer(store, json, predicate_type, &artifact.descriptor).await?;
        referrers.push((predicate_type.to_string(), d));
    }
    Ok(SignOutcome {
        signer: model_bundle.signer.clone(),
        model_bundle: model_bundle.json,
        referrers,
        files: statement.resources.len(),
    })
}

/// Sign any manifest or index: a model as [`sign_model`] does; anything else with only the
/// cosign-style bundle over its manifest digest (there are no model files to list). A
/// non-model with `with_cosign` false would get no signature: an input error, nothing pushed.
pub async fn sign_target(
    store: &dyn Store,
    target: &SignTarget,
    name: &str,
    signer: &dyn Signer,
    with_cosign: bool,
) -> Result<SignOutcome, OpsError> {
    if let Some(model) = &target.model {
        return sign_model(store, model, name, signer, with_cosign).await;
    }
    if !with_cosign {
        return Err(ModelError::Input(format!(
            "{} is not a model ({}): only the cosign-style signature over its manifest digest can be written, and it was turned off",
            target.digest(),
            target.kind
        ))
        .into());
    }
    let bundle = signer
        .sign_dsse(
            mt::IN_TOTO_PAYLOAD_TYPE,
            &oms::cosign_statement(target.digest()),
        )
        .await?;
    let d = push_bundle_referrer(
        store,
        &bundle.json,
        mt::PREDICATE_COSIGN_SIGN,
        &target.descriptor,
    )
    .await?;
    Ok(SignOutcome {
        signer: bundle.signer,
        model_bundle: bundle.json,
        referrers: vec![(mt::PREDICATE_COSIGN_SIGN.to_string(), d)],
        files: 0,
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
