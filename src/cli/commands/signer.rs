//! The signer the flags ask for: `--key` (offline, or logged with `--tlog-upload=true`) or
//! `--keyless` (identity token → Fulcio certificate → Rekor entry, one certificate per run).

use crate::cli::args::SignerOpts;
use crate::cli::ctx::Ctx;
use crate::cli::exit::Failure;
use oci_model::secret::Secret;
use oci_model::signing::keyless::{self, KeylessSetup, ServiceFlags};
use oci_model::signing::oidc::{self, InteractiveLogin, LoginUi, TokenSources};
use oci_model::signing::{KeySigner, PrivateKey, Signer};
use std::io::{IsTerminal, Write};
use std::sync::Arc;

/// The signer the flags ask for: `--key` (password from OCI_MODEL_PASSWORD or a prompt) or
/// `--keyless`. One signer serves every bundle of a run (one keyless certificate).
/// `local`: the signature is a detached `model.sig`, so say when model_signing cannot verify
/// the key's signatures.
pub async fn build_signer(
    opts: &SignerOpts,
    ctx: &Ctx,
    local: bool,
) -> anyhow::Result<Box<dyn Signer>> {
    match (&opts.key, opts.keyless) {
        (Some(path), false) => {
            check_key_flags(opts)?;
            let key = super::keys::load_private_key(path, ctx)?;
            if local && !key.kind().model_signing_compatible() {
                ctx.printer.note(&format!(
                    "note: {} signatures do not verify with model_signing 1.x (it supports ECDSA keys only)",
                    key.kind().name()
                ));
            }
            key_signer(key, opts, ctx)
        }
        (None, true) => {
            if opts.tlog_upload == Some(false) {
                return Err(Failure::input(
                    "--tlog-upload=false is refused with --keyless: a keyless signature needs the transparency log (only --key signs without a log entry)",
                ));
            }
            keyless_signer(opts, ctx).await
        }
        (None, false) => Err(Failure::input(
            "choose how to sign: --key PRIVATE_KEY or --keyless",
        )),
        (Some(_), true) => Err(Failure::input("give either --key or --keyless, not both")),
    }
}

/// `--key` without `--tlog-upload=true`, `--timestamp-server` or `--signing-config` talks to
/// no service: refuse the flags that would only matter with a log entry or a timestamp instead
/// of ignoring them (call before the key's password prompt).
fn check_key_flags(opts: &SignerOpts) -> anyhow::Result<()> {
    if opts.tlog_upload == Some(true) {
        return Ok(());
    }
    let timestamped = opts.tsa_url.is_some() || opts.signing_config.is_some();
    let given: Vec<&str> = [
        ("--rekor-url", opts.rekor_url.is_some()),
        (
            "--trusted-root",
            opts.trusted_root.is_some() && !timestamped,
        ),
    ]
    .into_iter()
    .filter_map(|(flag, set)| set.then_some(flag))
    .collect();
    if given.is_empty() {
        return Ok(());
    }
    Err(Failure::input(format!(
        "{} only matter(s) with a transparency log entry or a timestamp: add --tlog-upload=true to log the --key signature in Rekor, or --timestamp-server URL to timestamp it (without them, key signing is offline)",
        given.join(", ")
    )))
}

/// The signer for a loaded `--key`: offline (no log entry, no timestamp: model_signing's
/// bundles) unless `--tlog-upload=true` asks for a Rekor entry or `--timestamp-server` (or a
/// `--signing-config` that lists a TSA) for an RFC 3161 timestamp.
fn key_signer(key: PrivateKey, opts: &SignerOpts, ctx: &Ctx) -> anyhow::Result<Box<dyn Signer>> {
    let tlog = opts.tlog_upload == Some(true);
    if !tlog && opts.tsa_url.is_none() && opts.signing_config.is_none() {
        return Ok(Box::new(KeySigner::new(key)));
    }
    let flags = service_flags(opts, ctx)?;
    let signer = oci_model::signing::bundle::key_signer_with_services(key, &flags, tlog)
        .map_err(anyhow::Error::new)?;
    if let Some(url) = signer.tlog_url() {
        ctx.printer
            .note(&format!("key signature will be logged in {url}"));
    }
    match signer.tsa_url() {
        Some(url) => ctx
            .printer
            .note(&format!("key signature will be timestamped by {url}")),
        None if !tlog => {
            return Err(Failure::input(
                "--signing-config with --key asks for a timestamp, but the signing config lists no timestamp authority: give --timestamp-server URL or --tlog-upload=true",
            ))
        }
        None => {}
    }
    Ok(Box::new(signer))
}

/// The interactive login's terminal side: the URL and prompt on stderr, the code from stdin.
struct TerminalLogin;

impl LoginUi for TerminalLogin {
    fn show_url(&self, url: &str, redirect: bool) {
        if redirect {
            eprintln!("Opening your browser to sign in. If it does not open, visit:\n  {url}\nWaiting for the login to finish…");
        } else {
            eprintln!("Sign in at this address, then paste the code it shows:\n  {url}");
        }
    }
    fn prompt_code(&self) -> std::io::Result<Secret> {
        eprint!("Code: ");
        std::io::stderr().flush()?;
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(Secret::new(line.trim()))
    }
    fn open_browser(&self, url: &str) -> bool {
        oidc::open_in_browser(url)
    }
}

/// `--signing-config`, the URL overrides and `--trusted-root`, for keyless signing and for
/// `--key --tlog-upload=true`; without `--trusted-root`, the public-good root in use (cached
/// by `trusted-root update`, or embedded).
pub fn service_flags(opts: &SignerOpts, ctx: &Ctx) -> anyhow::Result<ServiceFlags> {
    let default_trusted_root = match &opts.trusted_root {
        Some(_) => None,
        None => Some(super::trusted_root::trusted_root(None, &ctx.settings)?),
    };
    Ok(ServiceFlags {
        signing_config: opts.signing_config.clone(),
        fulcio_url: opts.fulcio_url.clone(),
        rekor_url: opts.rekor_url.clone(),
        tsa_url: opts.tsa_url.clone(),
        trusted_root: opts.trusted_root.clone(),
        default_trusted_root,
    })
}

/// The keyless signer for this run: one token exchange, one certificate.
async fn keyless_signer(opts: &SignerOpts, ctx: &Ctx) -> anyhow::Result<Box<dyn Signer>> {
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let setup = KeylessSetup {
        services: service_flags(opts, ctx)?,
        tlog_upload: opts.tlog_upload,
        sources: TokenSources {
            explicit: opts.identity_token.clone(),
            sigstore_id_token: ctx.settings.sigstore_id_token(),
            github_actions: ctx.settings.github_oidc_request(),
            interactive: terminal.then(|| InteractiveLogin {
                issuer: String::new(),
                client_id: oidc::SIGSTORE_CLIENT_ID.to_string(),
                ui: Arc::new(TerminalLogin),
                force_oob: false,
            }),
        },
    };
    let signer = keyless::start(setup).await.map_err(anyhow::Error::new)?;
    ctx.printer.note(&format!(
        "keyless: certificate for {} (issuer {}) from {}",
        signer.identity(),
        signer.issuer(),
        signer.services().fulcio
    ));
    Ok(Box::new(signer))
}
