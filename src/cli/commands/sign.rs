//! `sign <TARGET>`: sign a model in a registry or layout (OMS bundle + cosign-style bundle, each
//! an OCI referrer of the model manifest). A local directory is signed like `sign-local`.

use super::{open_store, parse_target};
use crate::cli::args::{SignArgs, SignLocalArgs, SignerOpts};
use crate::cli::exit::Failure;
use crate::cli::Ctx;
use anyhow::Context as _;
use oci_model::model::fetch_model;
use oci_model::reference::Target;
use oci_model::signing::keyless;
use oci_model::signing::{KeySigner, PrivateKey, Signer};
use oci_model::sigstore_ops;
use serde_json::json;
use std::path::Path;

/// The signer the flags ask for: `--key` (password from OCI_MODEL_PASSWORD or a prompt) or
/// `--keyless`. One signer serves every bundle of a run (one keyless certificate).
pub async fn build_signer(opts: &SignerOpts, ctx: &Ctx) -> anyhow::Result<Box<dyn Signer>> {
    match (&opts.key, opts.keyless) {
        (Some(path), false) => {
            check_key_flags(opts)?;
            let key = super::keys::load_private_key(path, ctx)?;
            key_signer(key, opts, ctx)
        }
        (None, true) => {
            if opts.tlog_upload == Some(false) {
                return Err(Failure::usage(
                    "--tlog-upload=false is refused with --keyless: a keyless signature needs the transparency log (only --key signs without a log entry)",
                ));
            }
            super::keyless::signer(opts, ctx).await
        }
        (None, false) => Err(Failure::usage(
            "choose how to sign: --key PRIVATE_KEY or --keyless",
        )),
        (Some(_), true) => Err(Failure::usage("give either --key or --keyless, not both")),
    }
}

/// `--key` without `--tlog-upload=true` talks to no service: refuse the flags that would only
/// matter with a log entry instead of ignoring them (call before the key's password prompt).
pub fn check_key_flags(opts: &SignerOpts) -> anyhow::Result<()> {
    if opts.tlog_upload == Some(true) {
        return Ok(());
    }
    let given: Vec<&str> = [
        ("--signing-config", opts.signing_config.is_some()),
        ("--rekor-url", opts.rekor_url.is_some()),
        ("--trusted-root", opts.trusted_root.is_some()),
    ]
    .into_iter()
    .filter_map(|(flag, set)| set.then_some(flag))
    .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "{} only matter(s) with a transparency log entry: add --tlog-upload=true to log the --key signature in Rekor (without it, key signing is offline)",
        given.join(", ")
    )))
}

/// The signer for a loaded `--key`: offline (no log entry, model_signing's bundles) unless
/// `--tlog-upload=true` asks for a Rekor entry.
pub fn key_signer(
    key: PrivateKey,
    opts: &SignerOpts,
    ctx: &Ctx,
) -> anyhow::Result<Box<dyn Signer>> {
    if opts.tlog_upload != Some(true) {
        return Ok(Box::new(KeySigner::new(key)));
    }
    let flags = super::keyless::service_flags(opts);
    let signer = keyless::key_signer_with_tlog(key, &flags).map_err(anyhow::Error::new)?;
    ctx.printer.note(&format!(
        "key signature will be logged in {}",
        signer.tlog_url().unwrap_or_default()
    ));
    Ok(Box::new(signer))
}

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
        };
        return super::local::sign_local(local, ctx).await;
    }
    let target = parse_target(&args.target)?;
    let signer = build_signer(&args.signer, ctx).await?;
    let store = open_store(&target, &args.registry).await?;
    let artifact = fetch_model(store.as_ref(), &target.reference())
        .await
        .with_context(|| format!("sign {target}"))?;
    let name = model_name(&target);
    let outcome = sigstore_ops::sign_model(
        store.as_ref(),
        &artifact,
        &name,
        signer.as_ref(),
        !args.no_cosign_bundle,
    )
    .await
    .with_context(|| format!("sign {target}@{}", artifact.descriptor.digest))?;
    if let Some(path) = &args.bundle_out {
        super::write_atomically(path, &outcome.model_bundle)?;
    }
    let pinned = target.with_digest(artifact.descriptor.digest.clone());
    let mut text = format!(
        "Signed {pinned}\n  {} file(s) covered, signer: {}\n",
        outcome.files, outcome.signer
    );
    for (kind, d) in &outcome.referrers {
        text.push_str(&format!("  referrer {} ({kind})\n", d.digest));
    }
    if let Some(path) = &args.bundle_out {
        text.push_str(&format!("  bundle written to {}\n", path.display()));
    }
    ctx.printer.result(
        &text,
        &json!({
            "ok": true,
            "reference": pinned.to_string(),
            "digest": artifact.descriptor.digest,
            "files": outcome.files,
            "signer": outcome.signer,
            "referrers": outcome.referrers.iter().map(|(k, d)| json!({
                "predicateType": k, "digest": d.digest, "size": d.size,
            })).collect::<Vec<_>>(),
            "bundleOut": args.bundle_out.as_ref().map(|p| p.display().to_string()),
        }),
    );
    Ok(())
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
