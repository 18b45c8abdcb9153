//! Every media type, annotation key and predicate type the project uses. No behaviour.

// OCI
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// Digest of the two bytes `{}`, the OCI empty descriptor.
pub const OCI_EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_LAYOUT_VERSION: &str = "1.0.0";

/// The `Accept` header for manifest reads: distribution 2.8 hides OCI manifests otherwise.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

// CNCF ModelPack
pub const MODEL_ARTIFACT: &str = "application/vnd.cncf.model.manifest.v1+json";
pub const MODEL_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
pub const MODEL_WEIGHT: &str = "application/vnd.cncf.model.weight.v1.raw";
pub const MODEL_WEIGHT_CONFIG: &str = "application/vnd.cncf.model.weight.config.v1.raw";
pub const MODEL_DOC: &str = "application/vnd.cncf.model.doc.v1.raw";
pub const MODEL_CODE: &str = "application/vnd.cncf.model.code.v1.raw";
pub const MODEL_DATASET: &str = "application/vnd.cncf.model.dataset.v1.raw";
/// What every ModelPack media type starts with.
pub const MODEL_PREFIX: &str = "application/vnd.cncf.model.";

// Legacy (pre-CNCF) ModelPack types, as the model-spec defined them before the project moved to
// the CNCF (`vnd.cnai.model.*`, `org.cnai.model.*`; same suffixes as today's). Read, never
// written: [`current_model_type`] maps each to today's type.
pub const LEGACY_MODEL_PREFIX: &str = "application/vnd.cnai.model.";
pub const LEGACY_MODEL_ARTIFACT: &str = "application/vnd.cnai.model.manifest.v1+json";
pub const LEGACY_MODEL_CONFIG: &str = "application/vnd.cnai.model.config.v1+json";
pub const LEGACY_ANNOTATION_FILEPATH: &str = "org.cnai.model.filepath";

/// Today's ModelPack media type for `media_type`: a legacy `application/vnd.cnai.model.<rest>`
/// becomes `application/vnd.cncf.model.<rest>`; anything else is returned as it is.
pub fn current_model_type(media_type: &str) -> std::borrow::Cow<'_, str> {
    match media_type.strip_prefix(LEGACY_MODEL_PREFIX) {
        Some(rest) => std::borrow::Cow::Owned(format!("{MODEL_PREFIX}{rest}")),
        None => std::borrow::Cow::Borrowed(media_type),
    }
}

/// Is `media_type` one of the legacy `application/vnd.cnai.model.*` types?
pub fn is_legacy_model_type(media_type: &str) -> bool {
    media_type.starts_with(LEGACY_MODEL_PREFIX)
}

/// Layer forms (model-spec v1): a layer media type is a role's base type plus one of these.
/// `src/model/archive.rs` reads the archive forms and writes `.tar`.
pub const SUFFIX_RAW: &str = ".raw";
pub const SUFFIX_TAR: &str = ".tar";
pub const SUFFIX_TAR_GZIP: &str = ".tar+gzip";
pub const SUFFIX_TAR_ZSTD: &str = ".tar+zstd";

// Annotations
pub const ANNOTATION_FILEPATH: &str = "org.cncf.model.filepath";
/// A layer's file metadata (name, mode, uid, gid, size, mtime, typeflag), JSON (ModelPack).
pub const ANNOTATION_FILE_METADATA: &str = "org.cncf.model.file.metadata+json";
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_BUNDLE_CONTENT: &str = "dev.sigstore.bundle.content";
pub const ANNOTATION_BUNDLE_PREDICATE_TYPE: &str = "dev.sigstore.bundle.predicateType";

// Sigstore / in-toto
pub const SIGSTORE_BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
pub const SIGSTORE_BUNDLE_V02: &str = "application/vnd.dev.sigstore.bundle+json;version=0.2";
pub const BUNDLE_CONTENT_DSSE: &str = "dsse-envelope";
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const IN_TOTO_STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";

// Predicate types
pub const PREDICATE_MODEL_SIGNING: &str = "https://model_signing/signature/v1.0";
pub const PREDICATE_COSIGN_SIGN: &str = "https://sigstore.dev/cosign/sign/v1";
pub const PREDICATE_SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
pub const PREDICATE_SPDX: &str = "https://spdx.dev/Document";
pub const PREDICATE_CYCLONEDX: &str = "https://cyclonedx.org/bom";
pub const PREDICATE_LINK: &str = "https://in-toto.io/attestation/link/v0.3";

/// Largest manifest we read (registries commonly cap at 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;
/// Largest Sigstore bundle layer we read from a referrer.
pub const MAX_BUNDLE_SIZE: u64 = 4 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_types_map_to_todays() {
        assert_eq!(current_model_type(LEGACY_MODEL_ARTIFACT), MODEL_ARTIFACT);
        assert_eq!(current_model_type(LEGACY_MODEL_CONFIG), MODEL_CONFIG);
        assert_eq!(
            current_model_type("application/vnd.cnai.model.weight.v1.raw"),
            MODEL_WEIGHT
        );
        assert_eq!(
            current_model_type("application/vnd.cnai.model.doc.v1.tar+gzip"),
            "application/vnd.cncf.model.doc.v1.tar+gzip"
        );
        for t in [MODEL_WEIGHT, OCI_MANIFEST, "application/vnd.cnai.modelx"] {
            assert_eq!(current_model_type(t), t);
            assert!(!is_legacy_model_type(t));
        }
        assert!(is_legacy_model_type(LEGACY_MODEL_ARTIFACT));
    }
}
