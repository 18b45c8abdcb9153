//! `sign-local` and `verify-local`: a model directory on disk and a detached `model.sig`,
//! exactly as the OpenSSF `model_signing` tool signs and verifies with keys.

use crate::cli::args::{SignLocalArgs, VerifyLocalArgs};
use crate::cli::exit::Failure;
use crate::cli::Ctx;
use oci_model::media_types::IN_TOTO_PAYLOAD_TYPE;
use oci_model::model::{self, ModelError};
use oci_model::signing::oms::{self, ModelStatement, Serialization};
use oci_model::signing::Signer;
use oci_model::verify::{self, VerifyOptions};
use serde_json::json;
use std::io::Write as _;
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
        Ok(_) => Err(Failure::usage(format!(
            "model {}: neither a directory nor a file",
            model.display()
        ))),
        Err(e) => Err(Failure::usage(format!("model {}: {e}", model.display()))),
    }
}

/// Hashing or reading a model: an unreadable or odd file is an input error (exit 2).
fn model_error(e: ModelError) -> anyhow::Error {
    Failure::usage(e.to_string())
}

pub async fn sign_local(args: SignLocalArgs, ctx: &Ctx) -> anyhow::Result<()> {
    check_model_path(&args.model)?;
    let sig_dir = match args.signature.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !sig_dir.is_dir() {
        return Err(Failure::usage(format!(
            "signature {}: directory {} does not exist",
            args.signature.display(),
            sig_dir.display()
        )));
    }
    // The signer first (a bad key or password fails before any hashing and writes nothing).
    let signer: Box<dyn Signer> = match (&args.signer.key, args.signer.keyless) {
        (Some(key_path), false) => {
            super::sign::check_key_flags(&args.signer)?;
            let key = super::keys::load_private_key(key_path, ctx)?;
            if !key.kind().model_signing_compatible() {
                ctx.printer.note(&format!(
                    "note: {} signatures do not verify with model_signing 1.x (it supports ECDSA keys only)",
                    key.kind().name()
                ));
            }
            super::sign::key_signer(key, &args.signer, ctx)?
        }
        _ => super::sign::build_signer(&args.signer, ctx).await?,
    };

    let serialization = Serialization::for_signing(
        &ignore_list(&args.model, &args.ignore_paths, &args.signature),
        !args.no_ignore_git_paths,
        args.allow_symlinks,
    );
    let (path, walk) = (args.model.clone(), serialization.walk_options());
    let files = tokio::task::spawn_blocking(move || model::digest_local(&path, &walk))
        .await?
        .map_err(model_error)?;
    let statement =
        ModelStatement::for_files(&model::model_name(&args.model), &files, serialization)
            .map_err(|e| Failure::usage(e.to_string()))?;
    let bundle = signer
        .sign_dsse(IN_TOTO_PAYLOAD_TYPE, &statement.to_payload())
        .await
        .map_err(anyhow::Error::new)?;

    // Write through a temporary file next to the signature: never a partial model.sig.
    let mut tmp = tempfile::Builder::new()
        .prefix(".oci-model-sig")
        .tempfile_in(&sig_dir)
        .map_err(|e| Failure::usage(format!("cannot write in {}: {e}", sig_dir.display())))?;
    tmp.write_all(&bundle.json)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", args.signature.display())))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(&args.signature).map_err(|e| {
        Failure::usage(format!(
            "cannot write {}: {}",
            args.signature.display(),
            e.error
        ))
    })?;

    let root = statement.root_digest();
    let text = format!(
        "Signed {} ({} files, root digest {root}) with {}\nSignature written to {}",
        args.model.display(),
        statement.resources.len(),
        bundle.signer,
        args.signature.display()
    );
    ctx.printer.result(
        &text,
        &json!({
            "ok": true,
            "model": args.model.display().to_string(),
            "name": statement.name,
            "files": statement.resources.len(),
            "rootDigest": root.to_string(),
            "signer": bundle.signer,
            "signature": args.signature.display().to_string(),
            "ignorePaths": statement.serialization.ignore_paths,
        }),
    );
    Ok(())
}

pub async fn verify_local(args: VerifyLocalArgs, ctx: &Ctx) -> anyhow::Result<()> {
    check_model_path(&args.model)?;
    let signers = crate::cli::policy::signer_policy(&args.policy)?;
    if signers.is_empty() {
        return Err(Failure::usage(
            "verify-local needs --key PUBLIC_KEY (or --certificate-identity with --certificate-oidc-issuer)",
        ));
    }
    let trust = crate::cli::policy::trusted_root(&args.policy)?;
    let sig_name = args.signature.display().to_string();
    let size = std::fs::metadata(&args.signature)
        .map_err(|e| Failure::usage(format!("signature {sig_name}: cannot read: {e}")))?
        .len();
    if size > MAX_LOCAL_SIGNATURE {
        return Err(Failure::usage(format!(
            "signature {sig_name}: {size} bytes, larger than the {MAX_LOCAL_SIGNATURE}-byte limit"
        )));
    }
    let bundle = std::fs::read(&args.signature)
        .map_err(|e| Failure::usage(format!("signature {sig_name}: cannot read: {e}")))?;

    // 1. The signature: bundle v0.3, DSSE, signed by a trusted key (or identity).
    let verified = tokio::task::spawn_blocking(move || {
        verify::verify_bundle_with(&bundle, None, &signers, &trust, &VerifyOptions::oms())
    })
    .await?
    .map_err(|e| anyhow::Error::new(e).context(format!("signature {sig_name}")))?;

    // 2. The statement: model_signing's predicate, consistent root digest.
    let payload = verified
        .payload()
        .ok_or_else(|| Failure::verify(format!("signature {sig_name}: no DSSE payload")))?;
    let statement = ModelStatement::parse(payload)
        .map_err(|e| Failure::verify(format!("signature {sig_name}: {e}")))?;

    // 3. The files: re-hash the model with the signed ignore paths and compare.
    let extra = ignore_list(&args.model, &args.ignore_paths, &args.signature);
    let (path, walk) = (
        args.model.clone(),
        statement.verification_walk(&extra, args.allow_symlinks),
    );
    let files = tokio::task::spawn_blocking(move || model::digest_local(&path, &walk))
        .await?
        .map_err(model_error)?;
    let comparison = statement.check_files(&files);
    if !comparison.is_match() {
        return Err(Failure::verify(format!(
            "model {} does not match signature {sig_name}: {comparison}",
            args.model.display()
        )));
    }

    let signer = verified.signer().to_string();
    let mut lines = vec![format!(
        "Verified {} against {sig_name}",
        args.model.display()
    )];
    lines.push(format!("  signer: {signer}"));
    if let Some(t) = verified.signing_time() {
        lines.push(format!("  signed at: {}", t.to_rfc3339()));
    }
    // The bundle was verified against its own subject; the subject is checked here, against
    // the resources (root digest) and the files.
    let mut checks: Vec<(String, String)> = verified
        .checks()
        .iter()
        .filter(|c| verified.subject_checked() || c.name != "subject")
        .map(|c| (c.name.clone(), c.detail.clone()))
        .collect();
    checks.push((
        "statement".into(),
        format!(
            "{} for model {:?}; subject sha256 {} = digest over the {} resource digests",
            oci_model::media_types::PREDICATE_MODEL_SIGNING,
            statement.name,
            statement.root_digest().hex(),
            statement.resources.len()
        ),
    ));
    checks.push(("files".into(), comparison.to_string()));
    for (name, detail) in &checks {
        lines.push(format!("  ✓ {name}: {detail}"));
    }
    let checks: Vec<_> = checks
        .iter()
        .map(|(name, detail)| json!({"name": name, "detail": detail}))
        .collect();
    ctx.printer.result(
        &lines.join("\n"),
        &json!({
            "ok": true,
            "model": args.model.display().to_string(),
            "signature": sig_name,
            "signer": verified.signer(),
            "signingTime": verified.signing_time().map(|t| t.to_rfc3339()),
            "name": statement.name,
            "rootDigest": statement.root_digest().to_string(),
            "files": comparison.checked,
            "ignorePaths": statement.serialization.ignore_paths,
            "checks": checks,
        }),
    );
    Ok(())
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
