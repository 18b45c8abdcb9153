//! `copy SRC DST`: an artifact and (unless --no-referrers) its signatures and attestations,
//! between any two targets, blobs streamed, manifest bytes (and so digests) preserved.

use super::push::{human_size, plural};
use super::{credentials, parse_target, read_password_stdin, store_options};
use crate::cli::args::{CopyArgs, RegistryOpts};
use crate::cli::ctx::Ctx;
use crate::cli::exit::Failure;
use anyhow::Context as _;
use oci_model::digest::Digest;
use oci_model::reference::Target;
use oci_model::store::copy::{copy, CopyOptions};
use oci_model::store::{self, StoreOptions};
use serde::Serialize;
use std::fmt;

pub async fn run(args: CopyArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let source = parse_target(&args.source)?;
    let destination = parse_target(&args.destination)?;
    let (from, to) = end_options(&args, &source, &destination)?;
    let src = store::open(&source, &from).await?;
    let dst = store::open(&destination, &to).await?;

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

/// The store options of each end: the shared registry options, plus that end's `--from-…` or
/// `--to-…` ones. Standard input is read at most once: `--password-stdin` gives both ends the
/// same password, `--from-password-stdin` / `--to-password-stdin` one end only.
fn end_options(
    args: &CopyArgs,
    source: &Target,
    destination: &Target,
) -> anyhow::Result<(StoreOptions, StoreOptions)> {
    let e = &args.ends;
    for (target, end, given) in [
        (
            source,
            "--from",
            [
                ("plain-http", e.from_plain_http),
                ("insecure", e.from_insecure),
                ("username", e.from_username.is_some()),
                ("password-stdin", e.from_password_stdin),
            ],
        ),
        (
            destination,
            "--to",
            [
                ("plain-http", e.to_plain_http),
                ("insecure", e.to_insecure),
                ("username", e.to_username.is_some()),
                ("password-stdin", e.to_password_stdin),
            ],
        ),
    ] {
        if let (Target::Layout(_), Some((flag, _))) = (target, given.iter().find(|(_, g)| *g)) {
            return Err(Failure::input(format!(
                "{end}-{flag}: {target} is an OCI layout, not a registry"
            )));
        }
    }
    let (from_password, to_password) = if e.from_password_stdin {
        (Some(read_password_stdin()?), None)
    } else if e.to_password_stdin {
        (None, Some(read_password_stdin()?))
    } else if args.registry.password_stdin {
        let password = read_password_stdin()?;
        (Some(password.clone()), Some(password))
    } else {
        (None, None)
    };
    let end = |plain_http: bool,
               insecure: bool,
               username: &Option<String>,
               password: Option<oci_model::secret::Secret>|
     -> anyhow::Result<StoreOptions> {
        let mut options = store_options(&RegistryOpts {
            plain_http: args.registry.plain_http || plain_http,
            insecure: args.registry.insecure || insecure,
            username: None,
            password_stdin: false,
            ..args.registry.clone()
        })?;
        let username = username.as_deref().or(args.registry.username.as_deref());
        options.credentials = credentials(username, password)?;
        Ok(options)
    };
    Ok((
        end(
            e.from_plain_http,
            e.from_insecure,
            &e.from_username,
            from_password,
        )?,
        end(e.to_plain_http, e.to_insecure, &e.to_username, to_password)?,
    ))
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
