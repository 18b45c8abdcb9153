//! Sign, attest and verify targets (any manifest or index; a model gets more): joins
//! `signing`/`verify` with a `Store`.
//!
//! A signature or attestation is a Sigstore bundle stored as its own OCI image manifest
//! (docs/design.md, "Signature and referrer formats"): `artifactType` = the bundle media type, config = the empty descriptor, one
//! layer holding the bundle, `subject` = the signed manifest.
//!
//! - [`bundles`]: a bundle as a referrer (write one, find a subject's).
//! - [`target`]: what is signed: any manifest or index, and its model when it is one.
//! - [`sign`]: sign and attest a target (build the statements, push the referrers).
//! - [`verify`]: gather a target's bundles and verify them against a policy.

pub mod bundles;
pub mod sign;
pub mod target;
pub mod verify;

pub use bundles::{
    find_bundles, push_bundle_referrer, referrer_manifest, BundleReadError, FoundBundle,
};
pub use sign::{attest_model, model_statement, sign_model, sign_target, SignOutcome};
pub use target::{fetch_target, SignTarget};
pub use verify::verify_target;

use crate::model::ModelError;
use crate::signing::SigningError;
use crate::store::StoreError;

/// Why a sign, attest or verify operation could not run (a policy that is not satisfied is a
/// [`crate::verify::Report`] with `ok: false`, not an error).
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Signing(#[from] SigningError),
}

impl OpsError {
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            OpsError::Store(e) => e.kind(),
            OpsError::Model(e) => e.kind(),
            OpsError::Signing(e) => e.kind(),
        }
    }
}
