//! `sign <TARGET>`: sign any manifest or index in a registry or layout with the cosign-style
//! bundle over its digest, and a model also with the OMS (per-file) bundle; each an OCI
//! referrer of the manifest. A local directory is signed like `sign-local`.

use super::{open_store, parse_target};
use crate::cli::args::{SignArgs, SignLocalArgs};
use crate::cli::ctx::Ctx;
use anyhow::Context as _;
use oci_model::digest::Digest;
use oci_model::reference::Target;
use oci_model::sigstore_ops;
use oci_model::untrusted::Untrusted;
use serde::Serialize;
use std::fmt;
use std::path::Path;

/// A TARGET that names an existing local path (and no `oci:` layout) is a local model.
fn is_local_model(target: &str) -> bool {
    !target.starts_with("oci:") && Path::new(target).exists()
}

pub async fn run(args: SignArgs, ctx: &Ctx) -> anyhow::Result<()> {
    if is_local_model(&args.target) {
        let local = SignLocalArgs {
            model: args.target.into(),
            signer: args.signer,
            signature: args.bundle_out.unwrap_or_else(|| "model.sig".into()),
            ignore_paths: Vec::new(),
            no_ignore_git_paths: false,
            allow_symlinks: false,
            force: args.force,
        };
        return super::local::sign_local(local, ctx).await;
    }
    let target = parse_target(&args.target)?;
    let signer = super::signer::build_signer(&args.signer, ctx, false).await?;
    let store = open_store(&target, &args.registry).await?;
    let signed = sigstore_ops::fetch_target(store.as_ref(), &target.reference())
        .await
        .with_context(|| format!("sign {target}"))?;
    let name = model_name(&target);
    let outcome = sigstore_ops::sign_target(
        store.as_ref(),
        &signed,
        &name,
        signer.as_ref(),
        !args.no_cosign_bundle,
    )
    .await
    .with_context(|| format!("sign {target}@{}", signed.digest()))?;
    if let Some(path) = &args.bundle_out {
        // The model-signing bundle for a model (what model_signing verifies), else the
        // cosign-style one.
        super::write_atomically(path, &outcome.model_bundle, super::WriteMode::public(true))?;
    }
    ctx.printer.result(&Signed {
        ok: true,
        reference: target.with_digest(signed.digest().clone()).to_string(),
        digest: signed.digest(),
        files: outcome.files,
        kind: &signed.kind,
        signer: &outcome.signer,
        referrers: outcome
            .referrers
            .iter()
            .map(|(kind, d)| SignedReferrer {
                predicate_type: kind,
                digest: &d.digest,
                size: d.size,
            })
            .collect(),
        bundle_out: args.bundle_out.as_ref().map(|p| p.display().to_string()),
    });
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Signed<'a> {
    ok: bool,
    reference: String,
    digest: &'a Digest,
    #[serde(rename = "fileCount")]
    files: usize,
    /// What was signed (`model`, `image`, `image index`, `artifact <type>`).
    kind: &'a str,
    /// Who signed, for people (verify reports carry a structured `signer`).
    #[serde(rename = "signedWith")]
    signer: &'a str,
    referrers: Vec<SignedReferrer<'a>>,
    bundle_out: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedReferrer<'a> {
    predicate_type: &'a str,
    digest: &'a Digest,
    size: u64,
}

impl fmt::Display for Signed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Signed {}", self.reference)?;
        if self.kind == "model" {
            writeln!(
                f,
                "  {} file(s) covered, signer: {}",
                self.files, self.signer
            )?;
        } else {
            writeln!(
                f,
                "  {}, not a model: its manifest digest signed, signer: {}",
                Untrusted(self.kind),
                self.signer
            )?;
        }
        for r in &self.referrers {
            writeln!(f, "  referrer {} ({})", r.digest, r.predicate_type)?;
        }
        if let Some(path) = &self.bundle_out {
            writeln!(f, "  bundle written to {path}")?;
        }
        Ok(())
    }
}

/// The informative model name recorded in the statement: the repository's last component
/// (the layout directory's name for `oci:` targets).
pub(crate) fn model_name(target: &Target) -> String {
    match target {
        Target::Registry(r) => r
            .repository
            .rsplit('/')
            .next()
            .unwrap_or("model")
            .to_string(),
        Target::Layout(l) => oci_model::model::model_name(&l.path),
    }
}
