//! `generate-key-pair`, and the private-key loading (with password) every signing command uses.

use crate::cli::args::{GenerateKeyPairArgs, KeyType};
use crate::cli::exit::Failure;
use crate::cli::Ctx;
use oci_model::secret::Secret;
use oci_model::signing::keys::{self, KeyKind, PrivateKey};
use serde_json::json;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

/// Load a signing key. An encrypted key's password comes from `OCI_MODEL_PASSWORD`, else a
/// prompt when standard input is a terminal. Every failure is an input error (exit 2) naming
/// the file.
pub fn load_private_key(path: &Path, ctx: &Ctx) -> anyhow::Result<PrivateKey> {
    let bytes = std::fs::read(path)
        .map_err(|e| Failure::usage(format!("cannot read key file {}: {e}", path.display())))?;
    let password = if keys::pem_is_encrypted(&bytes) {
        match ctx.settings.key_password() {
            Some(p) => Some(p),
            None if std::io::stdin().is_terminal() => {
                Some(prompt(&format!("Password for {}: ", path.display()))?)
            }
            None => None, // → "is encrypted: a password is needed …"
        }
    } else {
        None
    };
    PrivateKey::from_pem(&bytes, &path.display().to_string(), password.as_ref())
        .map_err(|e| Failure::usage(e.to_string()))
}

fn prompt(message: &str) -> anyhow::Result<Secret> {
    rpassword::prompt_password(message)
        .map(Secret::new)
        .map_err(|e| Failure::usage(format!("cannot read the password from the terminal: {e}")))
}

/// The password for a new key: `OCI_MODEL_PASSWORD`, else asked twice on a terminal.
fn new_key_password(ctx: &Ctx) -> anyhow::Result<Secret> {
    if let Some(p) = ctx.settings.key_password() {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(
            "a password is needed to encrypt the private key: set OCI_MODEL_PASSWORD, run in a terminal to be asked, or pass --no-password",
        ));
    }
    let first = prompt("Enter password for the private key: ")?;
    if first.is_empty() {
        return Err(Failure::usage(
            "empty password: pass --no-password to write an unencrypted private key",
        ));
    }
    let second = prompt("Enter password for the private key again: ")?;
    if first != second {
        return Err(Failure::usage("the two passwords differ"));
    }
    Ok(first)
}

/// Write `content` to `path` through a temporary file in the same directory (mode 0600 for the
/// private key), replacing an existing file only when `replace`.
fn write_file(path: &Path, content: &[u8], private: bool, replace: bool) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".oci-model-key")
        .tempfile_in(&dir)
        .map_err(|e| Failure::usage(format!("cannot write in {}: {e}", dir.display())))?;
    tmp.write_all(content)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Failure::usage(format!("cannot write {}: {e}", path.display())))?;
    if !private {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644)).map_err(
            |e| Failure::usage(format!("cannot set permissions of {}: {e}", path.display())),
        )?;
    }
    let persisted = if replace {
        tmp.persist(path).map(|_| ())
    } else {
        tmp.persist_noclobber(path).map(|_| ())
    };
    persisted.map_err(|e| Failure::usage(format!("cannot write {}: {}", path.display(), e.error)))
}

pub async fn generate(args: GenerateKeyPairArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let kind = match args.key_type {
        KeyType::P256 => KeyKind::P256,
        KeyType::P384 => KeyKind::P384,
        KeyType::Ed25519 => KeyKind::Ed25519,
    };
    if args.output_key_prefix.is_empty() {
        return Err(Failure::usage("--output-key-prefix is empty"));
    }
    let key_path = PathBuf::from(format!("{}.key", args.output_key_prefix));
    let pub_path = PathBuf::from(format!("{}.pub", args.output_key_prefix));
    if !args.force {
        for p in [&key_path, &pub_path] {
            if p.symlink_metadata().is_ok() {
                return Err(Failure::usage(format!(
                    "{} already exists: pass --force to replace it",
                    p.display()
                )));
            }
        }
    }
    let password = if args.no_password {
        None
    } else {
        Some(new_key_password(ctx)?)
    };

    let (key, private_pem) = tokio::task::spawn_blocking(move || {
        let key = PrivateKey::generate(kind)?;
        let pem = key.to_pkcs8_pem(password.as_ref())?;
        Ok::<_, keys::KeyError>((key, pem))
    })
    .await??;
    let public_pem = key.public_key().to_pem();

    write_file(&key_path, private_pem.as_bytes(), true, args.force)?;
    if let Err(e) = write_file(&pub_path, public_pem.as_bytes(), false, args.force) {
        // Leave no half-written pair behind.
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }

    let hint = key.public_key().hint();
    let encrypted = !args.no_password;
    let mut text = format!(
        "Private key written to {} ({}, {})\nPublic key written to {}\nKey hint: {hint}",
        key_path.display(),
        kind.name(),
        if encrypted {
            "encrypted"
        } else {
            "NOT encrypted"
        },
        pub_path.display(),
    );
    if !kind.model_signing_compatible() {
        text.push_str("\nNote: model_signing 1.x verifies only ECDSA keys; Ed25519 signatures verify with oci-model and cosign.");
    }
    ctx.printer.result(
        &text,
        &json!({
            "ok": true,
            "privateKey": key_path.display().to_string(),
            "publicKey": pub_path.display().to_string(),
            "type": kind.id(),
            "encrypted": encrypted,
            "hint": hint,
        }),
    );
    Ok(())
}
