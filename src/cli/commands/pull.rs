//! `pull <TARGET> <DIR>` and `inspect <TARGET>`.

use super::push::{human_size, plural};
use super::{open_store, parse_target};
use crate::cli::args::{InspectArgs, PullArgs};
use crate::cli::ctx::Ctx;
use anyhow::Context as _;
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use oci_model::model::cache::DigestCache;
use oci_model::model::config::ModelConfig;
use oci_model::model::unpack::{is_model, layer_path};
use oci_model::model::{fetch_model, paths, unpack_model, PullOptions};
use oci_model::store::{self, Annotations, Descriptor, ImageIndex, StoreError};
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
struct FileEntry<'a> {
    path: Option<&'a str>,
    digest: &'a Digest,
    size: u64,
    media_type: &'a str,
}

impl<'a> FileEntry<'a> {
    fn new(path: Option<&'a str>, layer: &'a Descriptor) -> Self {
        FileEntry {
            path,
            digest: &layer.digest,
            size: layer.size,
            media_type: &layer.media_type,
        }
    }
}

/// Short names for the ModelPack layer types in text output.
fn role_name(media_type: &str) -> String {
    match media_type {
        mt::MODEL_WEIGHT => "weight",
        mt::MODEL_WEIGHT_CONFIG => "config",
        mt::MODEL_DOC => "doc",
        mt::MODEL_CODE => "code",
        mt::MODEL_DATASET => "dataset",
        other => return Untrusted(other).to_string(),
    }
    .to_string()
}

/// A path for a terminal: quoted and flagged when it is one pull would refuse.
fn shown_path(path: Option<&str>) -> String {
    match path {
        None => "(no path)".to_string(),
        Some(p) => match paths::unsafe_reason(p) {
            None => Untrusted(p).to_string(),
            Some(reason) => format!("\"{}\" (UNSAFE: {})", Untrusted(p), Untrusted(reason)),
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
        ctx.printer.result(&IndexInfo {
            reference: target.to_string(),
            digest: &digest,
            media_type: &media_type,
            size: raw.bytes.len(),
            manifests: &index.manifests,
        });
        return Ok(());
    }

    let manifest = raw.image_manifest()?;
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
    ctx.printer.result(&ManifestInfo {
        reference: target.to_string(),
        digest: &digest,
        media_type: &media_type,
        artifact_type: manifest.artifact_type.as_deref(),
        size: raw.bytes.len(),
        is_model: is_model(&manifest),
        config: ConfigInfo {
            media_type: &manifest.config.media_type,
            digest: &manifest.config.digest,
            size: manifest.config.size,
            content: config,
        },
        annotations: &manifest.annotations,
        subject: &manifest.subject,
        files_size: manifest.layers.iter().map(|l| l.size).sum(),
        files: manifest
            .layers
            .iter()
            .map(|l| FileEntry::new(layer_path(l), l))
            .collect(),
        parsed,
    });
    Ok(())
}

/// `inspect` of an index.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexInfo<'a> {
    reference: String,
    digest: &'a Digest,
    media_type: &'a str,
    size: usize,
    manifests: &'a [Descriptor],
}

impl fmt::Display for IndexInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, d, m, n) = (
            Untrusted(&self.reference),
            self.digest,
            Untrusted(self.media_type),
            self.manifests.len(),
        );
        write!(
            f,
            "Reference:     {r}\nDigest:        {d}\nMedia type:    {m}\nManifests:     {n}\n"
        )?;
        for m in self.manifests {
            writeln!(
                f,
                "  {}  {}  {}",
                m.digest,
                human_size(m.size),
                Untrusted(&m.media_type)
            )?;
        }
        Ok(())
    }
}

/// `inspect` of an image manifest.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestInfo<'a> {
    reference: String,
    digest: &'a Digest,
    media_type: &'a str,
    artifact_type: Option<&'a str>,
    size: usize,
    is_model: bool,
    config: ConfigInfo<'a>,
    annotations: &'a Option<Annotations>,
    subject: &'a Option<Descriptor>,
    files_size: u64,
    files: Vec<FileEntry<'a>>,
    /// The config blob, when it is a ModelPack config.
    #[serde(skip)]
    parsed: Option<ModelConfig>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigInfo<'a> {
    media_type: &'a str,
    digest: &'a Digest,
    size: u64,
    content: Option<serde_json::Value>,
}

impl fmt::Display for ManifestInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (r, d, m, c) = (
            Untrusted(&self.reference),
            self.digest,
            Untrusted(self.media_type),
            &self.config,
        );
        write!(
            f,
            "Reference:     {r}\nDigest:        {d}\nMedia type:    {m}\nArtifact type: {}\nConfig:        {} {} ({})\n",
            Untrusted(self.artifact_type.unwrap_or("(none)")),
            Untrusted(c.media_type),
            c.digest,
            human_size(c.size),
        )?;
        if !self.is_model {
            writeln!(f, "Note:          not a ModelPack model artifact")?;
        }
        if let Some(c) = &self.parsed {
            if let Some(name) = &c.descriptor.name {
                writeln!(f, "Name:          {}", Untrusted(name))?;
            }
            if let Some(format) = &c.config.format {
                writeln!(f, "Format:        {}", Untrusted(format))?;
            }
        }
        if let Some(s) = self.subject {
            writeln!(f, "Subject:       {}", s.digest)?;
        }
        for (k, v) in self.annotations.iter().flatten() {
            writeln!(f, "Annotation:    {}={}", Untrusted(k), Untrusted(v))?;
        }
        writeln!(
            f,
            "Files:         {} ({})",
            self.files.len(),
            human_size(self.files_size)
        )?;
        let rows: Vec<[String; 4]> = self
            .files
            .iter()
            .map(|l| {
                [
                    shown_path(l.path),
                    human_size(l.size),
                    role_name(l.media_type),
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
            writeln!(
                f,
                "  {:<w0$}  {:>w1$}  {:<w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )?;
        }
        writeln!(
            f,
            "Not verified: shown as the registry sent it; `oci-model verify` checks the signatures"
        )?;
        Ok(())
    }
}
