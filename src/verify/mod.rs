//! Trusted roots, policy, the checks, and the report. Pure: bytes in, report out; never touches
//! the network (no TUF refresh, no Rekor lookups) and writes nothing.
//!
//! - [`TrustedRoot`]: a Sigstore `trusted_root.json`, by default the embedded public-good root.
//! - [`SignerPolicy`]: trusted keys and keyless identities; [`Policy`] adds n-of-m, required
//!   attestation types and provenance requirements; [`PolicyFile`] reads them per repository
//!   from YAML.
//! - [`verify_bundle`]: one Sigstore bundle over an artifact → [`BoundBundle`];
//!   [`verify_signature`]: its signature only → [`VerifiedSignature`], which becomes a
//!   [`BoundBundle`] only through [`VerifiedSignature::bind_files`] (model-signing resources
//!   against the model's files). Failures are [`VerifyError`]s naming what failed.
//! - [`evaluate`]: several bound bundles against a [`Policy`] → [`PolicyOutcome`].
//! - [`Report`]: the checks and the verdict, for text and JSON output.
//!
//! Imports run one way: `types` and `error` (leaves) ← `policy`, `trust` ← `keyed` ← `bundle`
//! ← `evaluate` ← `report`.

mod bundle;
mod error;
mod evaluate;
mod keyed;
pub mod policy;
pub mod policy_file;
pub mod report;
#[cfg(test)]
mod testutil;
pub mod trust;
mod types;

pub use bundle::{
    verify_bundle, verify_signature, Binding, BoundBundle, BoundModel, Statement, Subject,
    VerifiedSignature,
};
pub use error::VerifyError;
pub use evaluate::{evaluate, AttestationOutcome, PolicyOutcome, SatisfiedSigner};
pub use policy::{
    IdentityRule, ManifestBinding, Matcher, Policy, PolicyError, ProvenanceRequirements,
    SignatureKinds, SignerEntry, SignerPolicy, TrustedKey,
};
pub use policy_file::PolicyFile;
pub use report::{BundleReport, Report};
pub use trust::{TrustedRoot, TrustedRootSummary, MAX_TRUSTED_ROOT_SIZE};
pub use types::{canonical_pem, Artifact, BundleKind, Check, CheckName, Signer, VerifyOptions};
