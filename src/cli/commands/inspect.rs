//! `inspect <TARGET>`: a manifest or index as the registry sent it (nothing verified): for a
//! model, its files and the ModelPack config fields; a legacy (pre-CNCF `vnd.cnai.model`)
//! model is flagged.

use super::pull::FileEntry;
use super::push::human_size;
use super::{open_store, parse_target};
use crate::cli::args::InspectArgs;
use crate::cli::ctx::Ctx;
use anyhow::Context as _;
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use oci_model::model::config::ModelConfig;
use oci_model::model::paths;
use oci_model::model::unpack::{is_legacy_model, is_model, layer_path};
use oci_model::store::{self, Annotations, Descriptor, ImageIndex, StoreError};
use oci_model::untrusted::Untrusted;
use serde::Serialize;
use std::fmt;

/// Short names for the ModelPack layer types in text output.
fn role_name(media_type: &str) -> String {
    match mt::current_model_type(media_type).as_ref() {
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

pub async fn run(args: InspectArgs, ctx: &Ctx) -> anyhow::Result<()> {
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
    let config: Option<serde_json::Value> = if mt::current_model_type(&manifest.config.media_type)
        == mt::MODEL_CONFIG
        && manifest.config.size <= 1 << 20
    {
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
        .and_then(|v| ModelConfig::read(&serde_json::to_vec(v).ok()?));
    ctx.printer.result(&ManifestInfo {
        reference: target.to_string(),
        digest: &digest,
        media_type: &media_type,
        artifact_type: manifest.artifact_type.as_deref(),
        size: raw.bytes.len(),
        is_model: is_model(&manifest),
        legacy_media_types: is_legacy_model(&manifest),
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
    /// A model written with the legacy (pre-CNCF) `vnd.cnai.model` media types.
    legacy_media_types: bool,
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
        } else if self.legacy_media_types {
            writeln!(
                f,
                "Note:          legacy pre-CNCF media types (vnd.cnai.model); read as ModelPack, never written"
            )?;
        }
        if let Some(c) = &self.parsed {
            let d = &c.descriptor;
            let fields = [
                ("Name:", d.name.as_ref()),
                ("Version:", d.version.as_ref()),
                ("Family:", d.family.as_ref()),
                ("Architecture:", c.config.architecture.as_ref()),
                ("Format:", c.config.format.as_ref()),
                ("Param size:", c.config.param_size.as_ref()),
                ("Precision:", c.config.precision.as_ref()),
                ("Quantization:", c.config.quantization.as_ref()),
            ];
            for (label, value) in fields {
                if let Some(v) = value {
                    writeln!(f, "{label:<15}{}", Untrusted(v))?;
                }
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
