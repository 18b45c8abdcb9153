//! `copy SRC DST`: an artifact and (unless --no-referrers) its signatures and attestations,
//! between any two targets, blobs streamed, manifest bytes (and so digests) preserved.

use super::push::human_size;
use super::{open_store, parse_target};
use crate::cli::args::CopyArgs;
use crate::cli::exit::Failure;
use crate::cli::Ctx;
use anyhow::Context as _;
use oci_model::digest::Digest;
use oci_model::store::copy::{copy, CopyOptions};
use serde_json::json;

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
            return Err(Failure::usage(format!(
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
    let text = format!(
        "Copied {source} to {shown_dst}@{}\n{} blob{} ({} copied, {} already present, {} transferred), {} referrer{}",
        report.manifest.digest,
        report.blobs,
        if report.blobs == 1 { "" } else { "s" },
        report.blobs_copied,
        report.blobs - report.blobs_copied,
        human_size(report.bytes_copied),
        report.referrers.len(),
        if report.referrers.len() == 1 { "" } else { "s" },
    );
    let referrers: Vec<_> = report
        .referrers
        .iter()
        .map(|r| json!({"digest": r.digest, "mediaType": r.media_type, "artifactType": r.artifact_type}))
        .collect();
    let value = json!({
        "source": source.to_string(),
        "destination": shown_dst,
        "digest": report.manifest.digest,
        "mediaType": report.manifest.media_type,
        "blobs": report.blobs,
        "blobsCopied": report.blobs_copied,
        "bytesCopied": report.bytes_copied,
        "referrers": referrers,
    });
    ctx.printer.result(&text, &value);
    Ok(())
}
