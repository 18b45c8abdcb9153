//! SLSA provenance v1 and other attestation predicates, wrapped in the in-toto Statement of
//! [`crate::intoto`].
//!
//! Pure library: nothing here reads the process environment. The CLI passes the CI variables
//! it collected (`Settings::ci_env()`), the flag values, and a resolver for OCI references.
//!
//! - [`predicate`]: predicate type shortcuts (`attest --type`, and `verify --attestation-type`
//!   and policy files' `attestations`) and `--predicate FILE` reading.
//! - [`materials`]: `--material NAME=PATH|REF` → SLSA resource descriptors (files and
//!   directories hashed, OCI references resolved to manifest digests).
//! - [`ci`]: builder id, invocation id, times and CI specifics from GitHub Actions, GitLab CI,
//!   Tekton or flags.
//! - [`provenance`]: the SLSA provenance v1 predicate (build type
//!   [`provenance::BUILD_TYPE`]) and the checks [`crate::verify::evaluate`] runs on a verified
//!   provenance predicate (`--provenance-builder-id`, `--provenance-material`).
//!
//! How the `attest` command combines them:
//! ```text
//! --provenance:  materials::ReferenceResolver (opens a store per reference)
//!                provenance::ProvenanceInput { flags + settings.ci_env() }
//!                provenance::provenance_statement(&input, &repo, &manifest_digest, &resolver)
//! --predicate:   predicate::resolve_predicate_type(--type)
//!                predicate::read_predicate_file(FILE, &type)
//!                intoto::statement_for_manifest(&repo, &manifest_digest, &type, predicate)
//! then           statement.to_json_bytes() → DSSE payload (application/vnd.in-toto+json)
//! ```

pub mod ci;
pub mod materials;
pub mod predicate;
pub mod provenance;

pub use crate::intoto::{statement_for_manifest, Statement, Subject};
pub use materials::{Material, NoReferences, ReferenceResolver};
pub use predicate::{read_predicate_file, resolve_predicate_type};
pub use provenance::{
    check_builder_id, check_material, generate_provenance, provenance_statement, Provenance,
    ProvenanceCheckError, ProvenanceInput, BUILD_TYPE,
};

use std::path::PathBuf;

/// Everything that can go wrong while building an attestation. Each message names the object
/// (file, material, flag, variable) and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    #[error(
        "unknown predicate type {given:?}: give a URI (e.g. https://example.com/eval/v1) or one \
         of the shortcuts {shortcuts}"
    )]
    UnknownPredicateType {
        given: String,
        /// The shortcut names, for the message.
        shortcuts: &'static str,
    },

    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{what} {} is {size} bytes, over the {limit}-byte limit", path.display())]
    TooLarge {
        what: &'static str,
        path: PathBuf,
        size: u64,
        limit: u64,
    },

    #[error("PREDICATE FILE {} is not JSON: line {line} column {column}: {reason}", path.display())]
    PredicateNotJson {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },

    #[error("predicate file {}: {reason}", path.display())]
    InvalidPredicate { path: PathBuf, reason: String },

    #[error(
        "predicate file {} declares predicateType {found:?} but --type is {expected:?}",
        path.display()
    )]
    PredicateTypeMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },

    #[error("invalid material {spec:?}: {reason} (expected NAME=PATH or NAME=REFERENCE)")]
    MaterialSyntax { spec: String, reason: String },

    #[error("material {name:?} is given twice: material names must be unique")]
    MaterialDuplicate { name: String },

    #[error(
        "material {name:?}: {value:?} is not an existing file or directory, nor an OCI \
         reference with a registry host (host[:port]/repo[:tag|@digest]) or an OCI layout \
         (oci:<dir>[:tag|@digest])"
    )]
    MaterialNotFound { name: String, value: String },

    #[error("material {name:?}: {value:?} is not an existing path, and resolving it as an OCI reference failed: {reason}")]
    MaterialUnresolved {
        name: String,
        value: String,
        reason: String,
    },

    #[error("material {name:?}: {}: {source}", path.display())]
    MaterialIo {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("material {name:?}: {}: {reason}", path.display())]
    MaterialUnsupported {
        name: String,
        path: PathBuf,
        reason: String,
    },

    #[error(
        "{source_name} {value:?} is not an RFC 3339 time (e.g. 2024-05-01T12:00:00Z): {reason}"
    )]
    InvalidTime {
        source_name: String,
        value: String,
        reason: String,
    },

    #[error("startedOn {started} is after finishedOn {finished}")]
    TimeOrder { started: String, finished: String },

    #[error("{source_name} {value:?} is not a URI: {reason}")]
    InvalidUri {
        source_name: String,
        value: String,
        reason: String,
    },

    #[error("{variable} is required when {ci} is detected ({reason})")]
    MissingCiVariable {
        ci: &'static str,
        variable: &'static str,
        reason: &'static str,
    },
}

impl AttestError {
    /// Attestation inputs are the caller's (the message names the file, material or flag); an
    /// OCI material that cannot be resolved is a registry problem.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            AttestError::MaterialUnresolved { .. } => crate::error::ErrorKind::Remote,
            _ => crate::error::ErrorKind::Input,
        }
    }
}

pub type Result<T, E = AttestError> = std::result::Result<T, E>;
