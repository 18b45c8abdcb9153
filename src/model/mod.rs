//! Directory ⇄ artifact: a model directory (or a few files) becomes a CNCF ModelPack artifact
//! (one layer per file, media type by role, `org.cncf.model.filepath` annotations, a ModelPack
//! config blob), and back.
//!
//! - [`walk`]: which files make up a model (sorted, ignores, symlink policy).
//! - [`roles`]: file path → layer media type, and the model format.
//! - [`config`]: the ModelPack config blob (deterministic JSON).
//! - [`paths`]: [`ModelPath`], a file path that follows the rules to be written (push, pull and
//!   model-signing signatures share them).
//! - [`hash`]: the one file-hashing routine (parallel across files) and a local model's digests
//!   (sign-local, verify-local).
//! - [`pack`]: push a model to a [`crate::store::Store`].
//! - [`unpack`]: fetch a model manifest, check it, and write its files safely.
//! - [`archive`]: archive layers (`.tar`, `.tar+gzip`, `.tar+zstd`): the one reader (checked,
//!   bounded, hashed while streaming) and the one writer (deterministic `.tar`).
//! - [`cache`]: a local (path, size, mtime, inode) → digest cache so re-pushes skip hashing and
//!   uploading.

pub mod archive;
pub mod cache;
pub mod config;
pub mod hash;
pub mod pack;
pub mod paths;
pub mod roles;
pub mod unpack;
pub mod walk;

use crate::error::ErrorKind;
use crate::store::StoreError;
use std::path::PathBuf;

pub use hash::{digest_local, hash_file, hash_files, ReadError};
pub use pack::{push_model, PushOptions, PushResult, PushedFile};
pub use paths::ModelPath;
pub use unpack::{fetch_model, unpack_model, ModelArtifact, ModelFile, PullOptions, PullResult};
pub use walk::{collect_model, model_name, WalkOptions};

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A layer path that must not be written (absolute, `..`, backslash, NUL, escapes the
    /// target, duplicate…). Hostile artifact content.
    #[error("unsafe path {path:?} in {what}: {reason}")]
    UnsafePath {
        what: String,
        path: String,
        reason: String,
    },
    /// The artifact is malformed (e.g. a layer without a file path). Hostile or broken content.
    #[error("invalid model artifact {what}: {reason}")]
    InvalidArtifact { what: String, reason: String },
    /// The target exists but is not a model.
    #[error("{reference} is not a model: {reason}")]
    NotAModel { reference: String, reason: String },
    /// A file to be written exists already.
    #[error("{} already exists (use --overwrite to replace it)", path.display())]
    Exists { path: PathBuf },
    /// Bad local input (missing files, symlinks without --allow-symlinks, bad globs…).
    #[error("{0}")]
    Input(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ModelError {
    /// Hostile or corrupted artifact content is an integrity failure; local problems are input.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ModelError::UnsafePath { .. } | ModelError::InvalidArtifact { .. } => {
                ErrorKind::Integrity
            }
            ModelError::NotAModel { .. }
            | ModelError::Exists { .. }
            | ModelError::Input(_)
            | ModelError::Io { .. } => ErrorKind::Input,
            ModelError::Store(e) => e.kind(),
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        ModelError::Io {
            what: what.into(),
            source,
        }
    }
}
