//! What `sign`, `attest` and `verify` work on: any manifest or index in a store (a container
//! image, a multi-arch index, a ModelKit, an ORAS artifact), and its model when it is one.
//! Every target gets the cosign-style bundle over its manifest digest; only a model also gets
//! the model-signing (per-file) bundle, and only a model's verification binds files.

use super::OpsError;
use crate::digest::Digest;
use crate::media_types as mt;
use crate::model::{ModelArtifact, ModelError};
use crate::store::{Descriptor, ImageManifest, Store};

/// A manifest or index to sign or verify.
#[derive(Clone, Debug)]
pub struct SignTarget {
    /// The manifest descriptor; its digest is computed from the bytes fetched.
    pub descriptor: Descriptor,
    /// The model, when the manifest is a ModelPack model (today's or legacy media types).
    pub model: Option<ModelArtifact>,
    /// What it is, for people: `model`, `image index`, `image`, `artifact <artifactType>`.
    pub kind: String,
}

impl From<ModelArtifact> for SignTarget {
    fn from(model: ModelArtifact) -> Self {
        SignTarget {
            descriptor: model.descriptor.clone(),
            model: Some(model),
            kind: "model".to_string(),
        }
    }
}

impl SignTarget {
    pub fn is_model(&self) -> bool {
        self.model.is_some()
    }

    pub fn digest(&self) -> &Digest {
        &self.descriptor.digest
    }
}

/// Fetch the manifest or index `reference` names (checked against the digest asked for, like
/// every manifest read) and tell whether it is a model. A manifest that claims to be a model
/// but is malformed is an error, not a non-model.
pub async fn fetch_target(store: &dyn Store, reference: &str) -> Result<SignTarget, OpsError> {
    let raw = store.fetch_manifest(reference).await?;
    let shown = format!("{}@{}", store.location(), reference);
    let media_type = raw.descriptor.media_type.clone();
    let bytes = raw.bytes;
    match ModelArtifact::from_manifest(&shown, &media_type, bytes.clone()) {
        Ok(model) => Ok(model.into()),
        Err(ModelError::NotAModel { .. }) => {
            let descriptor = Descriptor::new(&media_type, Digest::of(&bytes), bytes.len() as u64);
            let kind = if media_type == mt::OCI_INDEX || media_type == mt::DOCKER_MANIFEST_LIST {
                "image index".to_string()
            } else {
                match serde_json::from_slice::<ImageManifest>(&bytes) {
                    Ok(m) => match m.artifact_type {
                        Some(t) => format!("artifact {t}"),
                        None if m.config.media_type == mt::OCI_EMPTY => "artifact".to_string(),
                        None => "image".to_string(),
                    },
                    Err(_) => format!("manifest {media_type}"),
                }
            };
            Ok(SignTarget {
                descriptor,
                model: None,
                kind,
            })
        }
        Err(e) => Err(e.into()),
    }
}
