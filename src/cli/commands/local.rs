//! `sign-local` and `verify-local`: a model directory on disk and a detached `model.sig`,
//! exactly as the OpenSSF `model_signing` tool signs and verifies with keys.

use crate::cli::args::{SignLocalArgs, VerifyLocalArgs};
use crate::cli::ctx::Ctx;
use crate::cli::exit::{Failure, InputError as _};
use oci_model::media_types::IN_TOTO_PAYLOAD_TYPE;
use oci_model::model;
use oci_model::signing::oms::{self, ModelStatement, Serialization};
use oci_model::verify::{self, BoundModel, Check, CheckName, VerifyOptions};
use serde::Serialize;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Largest signature file read: a model-signing bundle lists every file (~200 bytes each).
const MAX_LOCAL_SIGNATURE: u64 = 64 * 1024 * 1024;

/// Lexically normalise an absolute path (resolve `.` and `..` without touching the disk).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Resolve a path (absolute, or relative to the working directory) as far as it exists.
fn resolve(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let Ok(p) = abs.canonicalize() {
        return p;
    }
    // A file that does not exist yet (the signature to write): resolve its directory.
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) => match dir.canonicalize() {
            Ok(d) => d.join(name),
            Err(_) => lexical(&abs),
        },
        _ => lexical(&abs),
    }
}

/// `path` as a model-relative POSIX path, if it lies inside `root` (both resolved).
fn inside(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let segs: Option<Vec<&str>> = rel.components().map(|c| c.as_os_str().to_str()).collect();
    let joined = segs?.join("/");
    (!joined.is_empty()).then_some(joined)
}

/// The model-relative ignore list for the user's `--ignore-paths` and the signature file.
///
/// An `--ignore-paths` value is taken relative to the working directory when it lands inside
/// the model (as `model_signing` does: `--ignore-paths model/notes.txt`), else relative to the
/// model (`--ignore-paths notes.txt`). Paths outside the model are dropped, like
/// `model_signing` drops them. The signature file is ignored when it lies inside the model.
fn ignore_list(model: &Path, ignore_paths: &[String], signature: &Path) -> Vec<String> {
    let root = resolve(model);
    let mut out = Vec::new();
    if root.is_dir() {
        for p in ignore_paths {
            let as_path = Path::new(p);
            if let Some(rel) = inside(&root, &resolve(as_path)) {
                out.push(rel);
            } else if !as_path.is_absolute() {
                if let Some(rel) = oms::normalize_ignore_path(p) {
                    out.push(rel);
                }
            }
        }
        if let Some(rel) = inside(&root, &resolve(signature)) {
            out.push(rel);
        }
    }
    out
}

fn check_model_path(model: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(model) {
        Ok(m) if m.is_dir() || m.is_file() => Ok(()),
        Ok(_) => Err(Failure::input(format!(
            "model {}: neither a directory nor a file",
            model.display()
        ))),
        Err(e) => Err(e).input_context(|| format!("model {}", model.display())),
    }
}

pub async fn sign_local(args: SignLocalArgs, ctx: &Ctx) -> anyhow::Result<()> {
    check_model_path(&args.model)?;
    let sig_dir = match args.signature.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !sig_dir.is_dir() {
        return Err(Failure::input(format!(
            "signature {}: directory {} does not exist",
            args.signature.display(),
            sig_dir.display()
        )));
    }
    super::refuse_existing(&args.signature, args.force)?;
    // The signer first (a bad key or password fails before any hashing and writes nothing).
    let signer = super::signer::build_signer(&args.signer, ctx, true).await?;

    let serialization = Serialization::for_signing(
        &ignore_list(&args.model, &args.ignore_paths, &args.signature),
        !args.no_ignore_git_paths,
        args.allow_symlinks,
    );
    let (path, walk) = (args.model.clone(), serialization.walk_options());
    let files = tokio::task::spawn_blocking(move || model::digest_local(&path, &walk)).await??;
    let statement =
        ModelStatement::for_files(&model::model_name(&args.model), &files, serialization)
            .input()?;
    let bundle = signer
        .sign_dsse(IN_TOTO_PAYLOAD_TYPE, &statement.to_payload())
        .await
        .map_err(anyhow::Error::new)?;

    super::write_atomically(
        &args.signature,
        &bundle.json,
        super::WriteMode::public(args.force),
    )?;

    ctx.printer.result(&SignedLocal {
        ok: true,
        model: args.model.display().to_string(),
        name: &statement.name,
        files: statement.resources.len(),
        root_digest: statement.root_digest().to_string(),
        signer: &bundle.signer,
        signature: args.signature.display().to_string(),
        ignore_paths: &statement.serialization.ignore_paths,
    });
    Ok(())
}

pub async fn verify_local(args: VerifyLocalArgs, ctx: &Ctx) -> anyhow::Result<()> {
    check_model_path(&args.model)?;
    {
        use crate::cli::policy::PolicyFlag as F;
        const NO_ATTESTATIONS: &str = "a local directory has no attestations; verify the pushed model with `oci-model verify`";
        crate::cli::policy::refuse_flags(
            &args.policy,
            "verify-local",
            &[
                (F::AttestationType, NO_ATTESTATIONS),
                (F::ProvenanceBuilderId, NO_ATTESTATIONS),
                (F::ProvenanceMaterial, NO_ATTESTATIONS),
                (F::RequireSigners, "it checks the one signature file given with --signature"),
                (F::Policy, "policy files select rules by repository; give --key or --certificate-identity with --certificate-oidc-issuer"),
                (F::AllowUnsignedMetadata, "a local directory has no manifest; verify-local always checks the files only"),
            ],
        )?;
    }
    let signers = crate::cli::policy::signer_policy(&args.policy)?;
    if signers.is_empty() {
        return Err(Failure::input(
            "verify-local needs --key PUBLIC_KEY (or --certificate-identity with --certificate-oidc-issuer)",
        ));
    }
    let trust = crate::cli::policy::trusted_root(&args.policy, &ctx.settings)?;
    let sig_name = args.signature.display().to_string();
    let bundle = super::read_limited(&args.signature, "signature", MAX_LOCAL_SIGNATURE)?;

    // 1. The signature: bundle v0.3, DSSE, signed by a trusted key (or identity).
    let context = format!("signature {sig_name}");
    let verified = tokio::task::spawn_blocking(move || {
        verify::verify_signature(&bundle, &signers, &trust, &VerifyOptions::oms())
    })
    .await?
    .map_err(|e| anyhow::Error::new(e).context(context.clone()))?;

    // 2. The statement: model_signing's predicate, consistent root digest.
    let statement = verified
        .model_statement()
        .map_err(|e| anyhow::Error::new(e).context(context))?;

    // 3. The files: re-hash the model with the signed ignore paths, bind the signature to them.
    let extra = ignore_list(&args.model, &args.ignore_paths, &args.signature);
    let model = args.model.clone();
    let allow_symlinks = args.allow_symlinks;
    let walk = statement.verification_walk(&extra, allow_symlinks);
    let files = tokio::task::spawn_blocking(move || model::digest_local(&model, &walk)).await??;
    let BoundModel {
        bundle: verified,
        statement,
        comparison,
    } = verified.bind_files(
        files.iter().map(|(p, d)| (oms::local_name(p), d)),
        &format!(
            "model {} does not match signature {sig_name}",
            args.model.display()
        ),
    )?;

    let mut checks = verified.checks().to_vec();
    checks.push(Check::new(
        CheckName::Statement,
        format!(
            "{} for model {:?}; subject sha256 {} = digest over the {} resource digests",
            oci_model::media_types::PREDICATE_MODEL_SIGNING,
            statement.name,
            statement.root_digest().hex(),
            statement.resources.len()
        ),
    ));
    checks.push(Check::new(CheckName::Files, comparison.to_string()));
    ctx.printer.result(&VerifiedLocal {
        ok: true,
        model: args.model.display().to_string(),
        signature: sig_name,
        signer: verified.signer(),
        signing_time: verified.signing_time().map(|t| t.to_rfc3339()),
        name: &statement.name,
        root_digest: statement.root_digest().to_string(),
        files: comparison.checked,
        ignore_paths: &statement.serialization.ignore_paths,
        checks,
    });
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedLocal<'a> {
    ok: bool,
    model: String,
    name: &'a str,
    #[serde(rename = "fileCount")]
    files: usize,
    root_digest: String,
    /// Who signed, for people (verify reports carry a structured `signer`).
    #[serde(rename = "signedWith")]
    signer: &'a str,
    signature: String,
    ignore_paths: &'a [String],
}

impl fmt::Display for SignedLocal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Signed {} ({} files, root digest {}) with {}\nSignature written to {}",
            self.model, self.files, self.root_digest, self.signer, self.signature
        )
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerifiedLocal<'a> {
    ok: bool,
    model: String,
    signature: String,
    signer: &'a oci_model::verify::Signer,
    signing_time: Option<String>,
    name: &'a str,
    root_digest: String,
    #[serde(rename = "fileCount")]
    files: usize,
    ignore_paths: &'a [String],
    checks: Vec<Check>,
}

impl fmt::Display for VerifiedLocal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verified {} against {}", self.model, self.signature)?;
        write!(f, "\n  signer: {}", self.signer)?;
        if let Some(t) = &self.signing_time {
            write!(f, "\n  signed at: {t}")?;
        }
        for c in &self.checks {
            write!(f, "\n  {c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_paths_resolve_like_model_signing() {
        let t = tempfile::tempdir().unwrap();
        let model = t.path().join("m");
        std::fs::create_dir_all(model.join("sub")).unwrap();
        std::fs::write(model.join("sub/x"), "").unwrap();
        let list = ignore_list(
            &model,
            &[
                // relative to the model
                "notes.txt".into(),
                // absolute, inside
                model.join("sub/x").display().to_string(),
                // absolute, outside: dropped
                t.path().join("elsewhere").display().to_string(),
                // escapes the model: dropped
                "../x".into(),
            ],
            &model.join("model.sig"),
        );
        assert_eq!(list, vec!["notes.txt", "sub/x", "model.sig"]);
        // A signature outside the model is not an ignore path.
        assert!(ignore_list(&model, &[], &t.path().join("model.sig")).is_empty());
    }
}
