//! `copy SRC DST`: an artifact and (unless --no-referrers) its signatures and attestations,
//! between any two targets, blobs streamed, manifest bytes (and so digests) preserved.

use super::push::{human_size, plural};
use super::{open_store, parse_target};
use crate::cli::args::CopyArgs;
use crate::cli::ctx::Ctx;
use crate::cli::exit::Failure;
use anyhow::Context as _;
use oci_model::digest::Digest;
use oci_model::store::copy::{copy, CopyOptions};
use serde::Serialize;
use std::fmt;

pub async fn run(args: CopyArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let source = parse_target(&args.source)?;
    let destination = parse_target(&args.destination)?;
    let src = open_store(&source, &args.registry).await?;
    let dst = open_store(&destination, &args.registry).await?;

    let mut reference = source.reference();
    if let Some(wanted) = destination.digest() {
        // The destination names a digest: it must be the source manifest's.
        let raw = src
            .fetch_manifest(&reference)
            .await
            .with_context(|| format!("copy {source}"))?;
        let actual = Digest::of(&raw.bytes);
        if &actual != wanted {
            return Err(Failure::input(format!(
                "{destination} names digest {wanted}, but {source} is {actual}"
            )));
        }
        reference = actual.to_string();
    }
    // Tag: the destination's, else (when the destination names no digest) the source's.
    let tag = match (destination.tag(), destination.digest()) {
        (Some(t), _) => Some(t.to_string()),
        (None, None) => source.tag().map(str::to_string),
        (None, Some(_)) => None,
    };
    let options = CopyOptions {
        concurrency: args.transfer.concurrency as usize,
        referrers: !args.no_referrers,
        reporter: ctx.printer.reporter(),
    };
    let report = copy(
        src.as_ref(),
        &reference,
        dst.as_ref(),
        tag.as_deref(),
        &options,
    )
    .await
    .with_context(|| format!("copy {source} to {destination}"))?;

    let shown_dst = match &tag {
        Some(t) => super::push::with_tag(&destination, t).to_string(),
        None => destination.to_string(),
    };
    ctx.printer.result(&Copied {
        source: source.to_string(),
        destination: shown_dst,
        digest: &report.manifest.digest,
        media_type: &report.manifest.media_type,
        blobs: report.blobs,
        blobs_copied: report.blobs_copied,
        bytes_copied: report.bytes_copied,
        referrers: report
            .referrers
            .iter()
            .map(|r| CopiedReferrer {
                digest: &r.digest,
                media_type: &r.media_type,
                artifact_type: r.artifact_type.as_deref(),
            })
            .collect(),
    });
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Copied<'a> {
    source: String,
    destination: String,
    digest: &'a Digest,
    media_type: &'a str,
    blobs: usize,
    blobs_copied: usize,
    bytes_copied: u64,
    referrers: Vec<CopiedReferrer<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CopiedReferrer<'a> {
    digest: &'a Digest,
    media_type: &'a str,
    artifact_type: Option<&'a str>,
}

impl fmt::Display for Copied<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Copied {} to {}@{}\n{} {} ({} copied, {} already present, {} transferred), {} {}",
            self.source,
            self.destination,
            self.digest,
            self.blobs,
            plural(self.blobs, "blob"),
            self.blobs_copied,
            self.blobs - self.blobs_copied,
            human_size(self.bytes_copied),
            self.referrers.len(),
            plural(self.referrers.len(), "referrer"),
        )
    }
}
