//! `pull <TARGET> <DIR>` and `inspect <TARGET>`.

use super::push::human_size;
use super::{open_store, parse_target};
use crate::cli::args::{InspectArgs, PullArgs};
use crate::cli::Ctx;
use anyhow::Context as _;
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use oci_model::model::cache::DigestCache;
use oci_model::model::config::ModelConfig;
use oci_model::model::unpack::{is_model, layer_path};
use oci_model::model::{fetch_model, paths, unpack_model, PullOptions};
use oci_model::store::{self, ImageIndex, StoreError};
use serde_json::json;
use std::sync::Arc;

pub async fn run(args: PullArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let target = parse_target(&args.target)?;
    let store = open_store(&target, &args.registry).await?;
    let artifact = fetch_model(store.as_ref(), &target.reference())
        .await
        .with_context(|| format!("pull {target}"))?;
    let pinned = target.with_digest(artifact.descriptor.digest.clone());
    // Verification flags: check the exact manifest about to be pulled before writing anything.
    if crate::cli::policy::requested(&args.policy) {
        super::verify::verify_before_pull(
            &args.policy,
            &target,
            store.as_ref(),
            &artifact,
            ctx,
        )
        .await?;
    }
    let options = PullOptions {
        overwrite: args.overwrite,
        concurrency: args.transfer.concurrency as usize,
        reporter: ctx.printer.reporter(),
        cache: ctx
            .settings
            .cache_dir()
            .map(|dir| Arc::new(DigestCache::load(&dir))),
    };
    let result = unpack_model(store.as_ref(), &artifact, &args.dir, &options)
        .await
        .with_context(|| format!("pull {pinned} into {}", args.dir.display()))?;

    let size = result.total_size();
    let text = format!(
        "Pulled {target}@{} into {}\n{} file{}, {}",
        result.manifest.digest,
        args.dir.display(),
        result.files.len(),
        if result.files.len() == 1 { "" } else { "s" },
        human_size(size)
    );
    let files: Vec<_> = result
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.path,
                "digest": f.descriptor.digest,
                "size": f.descriptor.size,
                "mediaType": f.descriptor.media_type,
            })
        })
        .collect();
    let value = json!({
        "reference": target.to_string(),
        "digest": result.manifest.digest,
        "mediaType": result.manifest.media_type,
        "directory": result.directory,
        "size": size,
        "files": files,
    });
    ctx.printer.result(&text, &value);
    Ok(())
}

/// Short names for the ModelPack layer types in text output.
fn role_name(media_type: &str) -> &str {
    match media_type {
        mt::MODEL_WEIGHT => "weight",
        mt::MODEL_WEIGHT_CONFIG => "config",
        mt::MODEL_DOC => "doc",
        mt::MODEL_CODE => "code",
        mt::MODEL_DATASET => "dataset",
        other => other,
    }
}

/// A path for a terminal: quoted and flagged when it is one pull would refuse.
fn shown_path(path: Option<&str>) -> String {
    match path {
        None => "(no path)".to_string(),
        Some(p) => match paths::unsafe_reason(p) {
            None => p.to_string(),
            Some(reason) => format!("{p:?} (UNSAFE: {reason})"),
        },
    }
}

pub async fn inspect(args: InspectArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let target = parse_target(&args.target)?;
    let store = open_store(&target, &args.registry).await?;
    let raw = store
        .fetch_manifest(&target.reference())
        .await
        .with_context(|| format!("inspect {target}"))?;
    let digest = Digest::of(&raw.bytes);
    if let Some(expected) = target.digest() {
        if expected != &digest {
            return Err(StoreError::DigestMismatch {
                what: format!("manifest of {target}"),
                expected: expected.clone(),
                actual: digest,
            }
            .into());
        }
    }
    let media_type = raw.descriptor.media_type.clone();

    if media_type == mt::OCI_INDEX || media_type == mt::DOCKER_MANIFEST_LIST {
        let index: ImageIndex = serde_json::from_slice(&raw.bytes)
            .map_err(|e| StoreError::invalid(format!("index {digest}"), e.to_string()))?;
        let mut text = format!(
            "Reference:     {target}\nDigest:        {digest}\nMedia type:    {media_type}\nManifests:     {}\n",
            index.manifests.len()
        );
        for m in &index.manifests {
            text.push_str(&format!(
                "  {}  {}  {}\n",
                m.digest,
                human_size(m.size),
                m.media_type
            ));
        }
        let value = json!({
            "reference": target.to_string(),
            "digest": digest,
            "mediaType": media_type,
            "size": raw.bytes.len(),
            "manifests": index.manifests,
        });
        ctx.printer.result(&text, &value);
        return Ok(());
    }

    let manifest = raw.image_manifest()?;
    let model = is_model(&manifest);
    let config: Option<serde_json::Value> =
        if manifest.config.media_type == mt::MODEL_CONFIG && manifest.config.size <= 1 << 20 {
            let bytes =
                store::fetch_small_blob(store.as_ref(), &manifest.config, "model config", 1 << 20)
                    .await
                    .with_context(|| format!("read the config of {target}"))?;
            serde_json::from_slice(&bytes).ok()
        } else {
            None
        };
    let parsed: Option<ModelConfig> = config
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    let total: u64 = manifest.layers.iter().map(|l| l.size).sum();

    let mut text = format!(
        "Reference:     {target}\nDigest:        {digest}\nMedia type:    {media_type}\nArtifact type: {}\nConfig:        {} {} ({})\n",
        manifest.artifact_type.as_deref().unwrap_or("(none)"),
        manifest.config.media_type,
        manifest.config.digest,
        human_size(manifest.config.size),
    );
    if !model {
        text.push_str("Note:          not a ModelPack model artifact\n");
    }
    if let Some(c) = &parsed {
        if let Some(name) = &c.descriptor.name {
            text.push_str(&format!("Name:          {name}\n"));
        }
        if let Some(format) = &c.config.format {
            text.push_str(&format!("Format:        {format}\n"));
        }
    }
    if let Some(s) = &manifest.subject {
        text.push_str(&format!("Subject:       {}\n", s.digest));
    }
    for (k, v) in manifest.annotations.iter().flatten() {
        text.push_str(&format!("Annotation:    {k}={v}\n"));
    }
    text.push_str(&format!(
        "Files:         {} ({})\n",
        manifest.layers.len(),
        human_size(total)
    ));
    let rows: Vec<[String; 4]> = manifest
        .layers
        .iter()
        .map(|l| {
            [
                shown_path(layer_path(l)),
                human_size(l.size),
                role_name(&l.media_type).to_string(),
                l.digest.to_string(),
            ]
        })
        .collect();
    let header = ["PATH", "SIZE", "TYPE", "DIGEST"].map(String::from);
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(&rows) {
        text.push_str(&format!(
            "  {:<w0$}  {:>w1$}  {:<w2$}  {}\n",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        ));
    }

    let files: Vec<_> = manifest
        .layers
        .iter()
        .map(|l| {
            json!({
                "path": layer_path(l),
                "digest": l.digest,
                "size": l.size,
                "mediaType": l.media_type,
            })
        })
        .collect();
    let value = json!({
        "reference": target.to_string(),
        "digest": digest,
        "mediaType": media_type,
        "artifactType": manifest.artifact_type,
        "size": raw.bytes.len(),
        "isModel": model,
        "config": {
            "mediaType": manifest.config.media_type,
            "digest": manifest.config.digest,
            "size": manifest.config.size,
            "content": config,
        },
        "annotations": manifest.annotations,
        "subject": manifest.subject,
        "filesSize": total,
        "files": files,
    });
    ctx.printer.result(&text, &value);
    Ok(())
}
