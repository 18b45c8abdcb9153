//! `pull <TARGET> <DIR>`.

use super::push::{human_size, plural};
use super::{open_store, parse_target};
use crate::cli::args::PullArgs;
use crate::cli::ctx::Ctx;
use anyhow::Context as _;
use oci_model::digest::Digest;
use oci_model::model::cache::DigestCache;
use oci_model::model::{fetch_model, unpack_model, PullOptions};
use oci_model::store::Descriptor;
use oci_model::untrusted::Untrusted;
use serde::Serialize;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub async fn run(args: PullArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let target = parse_target(&args.target)?;
    let store = open_store(&target, &args.registry).await?;
    let artifact = fetch_model(store.as_ref(), &target.reference())
        .await
        .with_context(|| format!("pull {target}"))?;
    let pinned = target.with_digest(artifact.descriptor.digest.clone());
    // Verification flags: check the exact manifest about to be pulled before writing anything.
    let (verification, expected_files) = if crate::cli::policy::requested(&args.policy) {
        let (report, signed) = super::verify::verify_before_pull(
            &args.policy,
            &target,
            store.as_ref(),
            &artifact,
            ctx,
        )
        .await?;
        (Some(report), signed.map(Arc::new))
    } else {
        (None, None)
    };
    let options = PullOptions {
        overwrite: args.overwrite,
        concurrency: args.transfer.concurrency as usize,
        reporter: ctx.printer.reporter(),
        cache: ctx
            .settings
            .cache_dir()
            .map(|dir| Arc::new(DigestCache::load(&dir))),
        expected_files,
    };
    let result = unpack_model(store.as_ref(), &artifact, &args.dir, &options)
        .await
        .with_context(|| format!("pull {pinned} into {}", args.dir.display()))?;

    ctx.printer.result(&Pulled {
        reference: target.to_string(),
        digest: &result.manifest.digest,
        media_type: &result.manifest.media_type,
        directory: &result.directory,
        size: result.total_size(),
        files: result
            .files
            .iter()
            .map(|f| FileEntry::new(Some(&f.path), &f.descriptor))
            .collect(),
        shown_dir: args.dir.display().to_string(),
        verification,
    });
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pulled<'a> {
    reference: String,
    digest: &'a Digest,
    media_type: &'a str,
    directory: &'a Path,
    size: u64,
    files: Vec<FileEntry<'a>>,
    /// The verification report, when a verification flag asked for one (null otherwise).
    verification: Option<oci_model::verify::Report>,
    /// The directory as the user named it.
    #[serde(skip)]
    shown_dir: String,
}

impl fmt::Display for Pulled<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Pulled {}@{} into {}\n{} {}, {}",
            Untrusted(&self.reference),
            self.digest,
            self.shown_dir,
            self.files.len(),
            plural(self.files.len(), "file"),
            human_size(self.size)
        )
    }
}

/// A file of a model (a layer with its path).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FileEntry<'a> {
    pub(super) path: Option<&'a str>,
    pub(super) digest: &'a Digest,
    pub(super) size: u64,
    pub(super) media_type: &'a str,
}

impl<'a> FileEntry<'a> {
    pub(super) fn new(path: Option<&'a str>, layer: &'a Descriptor) -> Self {
        FileEntry {
            path,
            digest: &layer.digest,
            size: layer.size,
            media_type: &layer.media_type,
        }
    }
}
