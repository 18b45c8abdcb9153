//! `generate-key-pair`, and the private-key loading (with password) every signing command uses.

use super::{write_atomically, WriteMode};
use crate::cli::args::{GenerateKeyPairArgs, KeyType};
use crate::cli::ctx::Ctx;
use crate::cli::exit::{Failure, InputError as _};
use oci_model::secret::Secret;
use oci_model::signing::keys::{self, KeyKind, PrivateKey};
use serde::Serialize;
use std::fmt;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

/// Load a signing key. An encrypted key's password comes from `OCI_MODEL_PASSWORD`, else a
/// prompt when standard input is a terminal. Every failure is an input error (exit 2) naming
/// the file.
pub fn load_private_key(path: &Path, ctx: &Ctx) -> anyhow::Result<PrivateKey> {
    let bytes =
        std::fs::read(path).input_context(|| format!("cannot read key file {}", path.display()))?;
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
    Ok(PrivateKey::from_pem(
        &bytes,
        &path.display().to_string(),
        password.as_ref(),
    )?)
}

fn prompt(message: &str) -> anyhow::Result<Secret> {
    rpassword::prompt_password(message)
        .map(Secret::new)
        .input_context(|| "cannot read the password from the terminal")
}

/// The password for a new key: `OCI_MODEL_PASSWORD`, else asked twice on a terminal.
fn new_key_password(ctx: &Ctx) -> anyhow::Result<Secret> {
    if let Some(p) = ctx.settings.key_password() {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::input(
            "a password is needed to encrypt the private key: set OCI_MODEL_PASSWORD, run in a terminal to be asked, or pass --no-password",
        ));
    }
    let first = prompt("Enter password for the private key: ")?;
    if first.is_empty() {
        return Err(Failure::input(
            "empty password: pass --no-password to write an unencrypted private key",
        ));
    }
    let second = prompt("Enter password for the private key again: ")?;
    if first != second {
        return Err(Failure::input("the two passwords differ"));
    }
    Ok(first)
}

pub async fn generate(args: GenerateKeyPairArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let kind = match args.key_type {
        KeyType::P256 => KeyKind::P256,
        KeyType::P384 => KeyKind::P384,
        KeyType::Ed25519 => KeyKind::Ed25519,
    };
    if args.output_key_prefix.is_empty() {
        return Err(Failure::input("--output-key-prefix is empty"));
    }
    let key_path = PathBuf::from(format!("{}.key", args.output_key_prefix));
    let pub_path = PathBuf::from(format!("{}.pub", args.output_key_prefix));
    for p in [&key_path, &pub_path] {
        super::refuse_existing(p, args.force)?;
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

    let mode = |public| WriteMode {
        public,
        replace: args.force,
    };
    write_atomically(&key_path, private_pem.as_bytes(), mode(false))?;
    if let Err(e) = write_atomically(&pub_path, public_pem.as_bytes(), mode(true)) {
        // Leave no half-written pair behind.
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }

    ctx.printer.result(&Generated {
        ok: true,
        private_key: key_path.display().to_string(),
        public_key: pub_path.display().to_string(),
        r#type: kind.id(),
        encrypted: !args.no_password,
        hint: key.public_key().hint(),
        kind,
    });
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Generated {
    ok: bool,
    private_key: String,
    public_key: String,
    r#type: &'static str,
    encrypted: bool,
    hint: String,
    #[serde(skip)]
    kind: KeyKind,
}

impl fmt::Display for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Private key written to {} ({}, {})\nPublic key written to {}\nKey hint: {}",
            self.private_key,
            self.kind.name(),
            if self.encrypted {
                "encrypted"
            } else {
                "NOT encrypted"
            },
            self.public_key,
            self.hint,
        )?;
        if !self.kind.model_signing_compatible() {
            write!(f, "\nNote: model_signing 1.x verifies only ECDSA keys; Ed25519 signatures verify with oci-model and cosign.")?;
        }
        Ok(())
    }
}
