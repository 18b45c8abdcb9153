//! `push <SOURCE…> <TARGET>`: a model directory (or files) → ModelPack artifact in a registry or
//! an OCI layout.

use super::parse_target;
use crate::cli::args::{ModelConfigOpts, PushArgs};
use crate::cli::ctx::Ctx;
use crate::cli::exit::Failure;
use anyhow::Context as _;
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use oci_model::model::cache::DigestCache;
use oci_model::model::config::ModelMetadata;
use oci_model::model::{push_model, PushOptions, PushedFile, WalkOptions};
pub(crate) use oci_model::progress::human_size;
use oci_model::reference::Target;
use oci_model::store::Annotations;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// The config fields from `--config-file`, then the flags over them.
fn model_metadata(opts: &ModelConfigOpts) -> anyhow::Result<ModelMetadata> {
    let mut meta = match &opts.config_file {
        Some(path) => {
            let bytes = read_small_file(path)?;
            ModelMetadata::from_json(&bytes)
                .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?
        }
        None => ModelMetadata::default(),
    };
    let set = |field: &mut Option<String>, flag: &Option<String>| {
        if flag.is_some() {
            field.clone_from(flag);
        }
    };
    let c = &mut meta.config;
    set(&mut c.architecture, &opts.architecture);
    set(&mut c.format, &opts.format);
    set(&mut c.param_size, &opts.param_size);
    set(&mut c.precision, &opts.precision);
    set(&mut c.quantization, &opts.quantization);
    let d = &mut meta.descriptor;
    set(&mut d.family, &opts.family);
    set(&mut d.version, &opts.model_version);
    meta.check().map_err(|e| Failure::input(e.to_string()))?;
    Ok(meta)
}

/// A config file, at most 1 MiB.
fn read_small_file(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    const LIMIT: u64 = 1 << 20;
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::input(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > LIMIT {
        return Err(Failure::input(format!(
            "{} is larger than {LIMIT} bytes; a model config file is small JSON",
            path.display()
        )));
    }
    Ok(bytes)
}

pub async fn run(args: PushArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let target = parse_target(&args.target)?;
    if target.digest().is_some() {
        return Err(Failure::input(format!(
            "cannot push to {target}: give a tag (or none for `latest`), not a digest"
        )));
    }
    let tag = target.tag().unwrap_or("latest").to_string();
    let target = with_tag(&target, &tag);
    let annotations = parse_annotations(&args.annotations)?;
    let sources = args.sources.clone();

    let metadata = model_metadata(&args.model_config)?;
    // Upload sessions are remembered beside the digest cache, so that the next push of an
    // interrupted one continues it.
    let mut store_options = super::store_options(&args.registry)?;
    store_options.upload_sessions = ctx.settings.cache_dir().map(|dir| dir.join("uploads"));
    let store: std::sync::Arc<dyn oci_model::store::Store> =
        oci_model::store::open(&target, &store_options).await?;
    let options = PushOptions {
        name: args.name.clone().or(metadata.descriptor.name.clone()),
        metadata,
        annotations,
        walk: WalkOptions {
            allow_symlinks: args.allow_symlinks,
            ignore: args.ignore.clone(),
            keep_git_paths: false,
            exclude: layout_inside(&target, &sources).into_iter().collect(),
        },
        concurrency: args.transfer.concurrency as usize,
        reporter: ctx.printer.reporter(),
        cache: ctx
            .settings
            .cache_dir()
            .map(|dir| Arc::new(DigestCache::load(&dir))),
        archive_dirs: args.archive_dirs,
    };
    let result = push_model(store.as_ref(), &sources, Some(&tag), &options)
        .await
        .with_context(|| format!("push to {target}"))?;

    ctx.printer.result(&Pushed {
        reference: target.to_string(),
        digest: &result.manifest.digest,
        media_type: &result.manifest.media_type,
        artifact_type: mt::MODEL_ARTIFACT,
        size: result.total_size(),
        files: &result.files,
        uploaded: result.uploaded(),
        mounted: result.mounted(),
    });
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Pushed<'a> {
    reference: String,
    digest: &'a Digest,
    media_type: &'a str,
    artifact_type: &'static str,
    size: u64,
    files: &'a [PushedFile],
    #[serde(skip)]
    uploaded: usize,
    #[serde(skip)]
    mounted: usize,
}

impl fmt::Display for Pushed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, uploaded, mounted) = (self.files.len(), self.uploaded, self.mounted);
        write!(
            f,
            "Pushed {}@{}\n{n} {}, {} ({uploaded} uploaded, {} already present",
            self.reference,
            self.digest,
            plural(n, "file"),
            human_size(self.size),
            n - uploaded - mounted,
        )?;
        if mounted > 0 {
            write!(f, ", {mounted} mounted from another repository")?;
        }
        write!(f, ")")
    }
}

/// The path, relative to the model directory, of a layout target written inside it (so the
/// layout never becomes part of the model it stores).
fn layout_inside(target: &Target, sources: &[PathBuf]) -> Option<String> {
    let (Target::Layout(l), [dir]) = (target, sources) else {
        return None;
    };
    let dir = dir.canonicalize().ok()?;
    let layout = std::path::absolute(&l.path).ok()?;
    // The layout may not exist yet: canonicalize its closest existing ancestor.
    let mut existing = layout.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        rest.push(existing.file_name()?.to_owned());
        existing = existing.parent()?;
    }
    let mut full = existing.canonicalize().ok()?;
    full.extend(rest.iter().rev());
    let rel = full.strip_prefix(&dir).ok()?;
    let parts: Option<Vec<&str>> = rel.iter().map(|c| c.to_str()).collect();
    let rel = parts?.join("/");
    (!rel.is_empty()).then_some(rel)
}

/// The target with `tag` set (for display).
pub(crate) fn with_tag(target: &Target, tag: &str) -> Target {
    let mut t = target.clone();
    match &mut t {
        Target::Registry(r) => r.tag = Some(tag.to_string()),
        Target::Layout(l) => l.tag = Some(tag.to_string()),
    }
    t
}

fn parse_annotations(raw: &[String]) -> anyhow::Result<Annotations> {
    let mut out = Annotations::new();
    for a in raw {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => {
                return Err(Failure::input(format!(
                    "--annotation {a:?}: expected KEY=VALUE"
                )))
            }
        }
    }
    Ok(out)
}

/// `file` or `files`.
pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_annotations() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(64 << 20), "64.0 MiB");
        let a = parse_annotations(&["a=b=c".into(), "k=".into()]).unwrap();
        assert_eq!(a.get("a").map(String::as_str), Some("b=c"));
        assert_eq!(a.get("k").map(String::as_str), Some(""));
        assert!(parse_annotations(&["=v".into()]).is_err());
        assert!(parse_annotations(&["novalue".into()]).is_err());
    }
}
