//! `--keyless`: identity token → Fulcio certificate → Rekor entry, one certificate per run.

use crate::cli::args::SignerOpts;
use crate::cli::Ctx;
use oci_model::secret::Secret;
use oci_model::signing::keyless::{self, KeylessSetup, ServiceFlags};
use oci_model::signing::oidc::{self, InteractiveLogin, LoginUi, TokenSources};
use oci_model::signing::Signer;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

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
/// `--key --tlog-upload=true`.
pub fn service_flags(opts: &SignerOpts) -> ServiceFlags {
    ServiceFlags {
        signing_config: opts.signing_config.clone(),
        fulcio_url: opts.fulcio_url.clone(),
        rekor_url: opts.rekor_url.clone(),
        tsa_url: opts.tsa_url.clone(),
        trusted_root: opts.trusted_root.clone(),
    }
}

/// The keyless signer for this run: one token exchange, one certificate.
pub async fn signer(opts: &SignerOpts, ctx: &Ctx) -> anyhow::Result<Box<dyn Signer>> {
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let setup = KeylessSetup {
        services: service_flags(opts),
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
