//! `attest <TARGET>`: sign an in-toto statement about the model manifest (generated SLSA
//! provenance, or any predicate from a file) and attach it as a referrer.

use super::{open_store, parse_target, store_options};
use crate::cli::args::AttestArgs;
use crate::cli::ctx::Ctx;
use crate::cli::exit::Failure;
use anyhow::Context as _;
use oci_model::attest::{
    provenance_statement, read_predicate_file, resolve_predicate_type, statement_for_manifest,
    ProvenanceInput,
};
use oci_model::digest::Digest;
use oci_model::reference::Target;
use oci_model::sigstore_ops;
use oci_model::store;
use serde::Serialize;
use std::fmt;

pub async fn run(args: AttestArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let target = parse_target(&args.target)?;
    if !args.provenance && args.predicate.is_none() {
        return Err(Failure::input(
            "say what to attest: --provenance (generated SLSA provenance) or --predicate FILE --type URI",
        ));
    }
    // Input first (cheap, local): a bad predicate file fails before any network work.
    let predicate = match (&args.predicate, &args.predicate_type) {
        (Some(path), Some(t)) => {
            let predicate_type = resolve_predicate_type(t)?;
            let value = read_predicate_file(path, &predicate_type)?;
            Some((predicate_type, value))
        }
        (Some(_), None) => return Err(Failure::input("--predicate needs --type URI")),
        _ => None,
    };
    let signer = super::signer::build_signer(&args.signer, ctx, false).await?;
    let store = open_store(&target, &args.registry).await?;
    let subject = store
        .resolve(&target.reference())
        .await
        .with_context(|| format!("attest {target}"))?;
    let repository = target.repository_name();
    let statement = match predicate {
        Some((predicate_type, value)) => {
            statement_for_manifest(&repository, &subject.digest, &predicate_type, value)
        }
        None => {
            let o = &args.provenance_opts;
            let input = ProvenanceInput {
                command: o.command.clone(),
                parameters: o.parameters.clone(),
                materials: o.materials.clone(),
                builder_id: o.builder_id.clone(),
                invocation_id: o.invocation_id.clone(),
                started_on: o.started_on.clone(),
                finished_on: o.finished_on.clone(),
                ci_env: ctx.settings.ci_env(),
            };
            let options = store_options(&args.registry)?;
            let resolver = move |t: Target| {
                let options = options.clone();
                async move {
                    let s = store::open(&t, &options).await?;
                    anyhow::Ok(s.resolve(&t.reference()).await?.digest)
                }
            };
            provenance_statement(&input, &repository, &subject.digest, &resolver).await?
        }
    };
    let (referrer, signer_name) = sigstore_ops::attest_model(
        store.as_ref(),
        &subject,
        &statement.to_json_bytes(),
        &statement.predicate_type,
        signer.as_ref(),
    )
    .await
    .with_context(|| format!("attest {target}@{}", subject.digest))?;
    ctx.printer.result(&Attested {
        ok: true,
        reference: target.with_digest(subject.digest.clone()).to_string(),
        digest: &subject.digest,
        predicate_type: &statement.predicate_type,
        signer: &signer_name,
        referrer: AttestedReferrer {
            digest: &referrer.digest,
            size: referrer.size,
        },
    });
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Attested<'a> {
    ok: bool,
    reference: String,
    digest: &'a Digest,
    predicate_type: &'a str,
    /// Who signed, for people (verify reports carry a structured `signer`).
    #[serde(rename = "signedWith")]
    signer: &'a str,
    referrer: AttestedReferrer<'a>,
}

#[derive(Serialize)]
struct AttestedReferrer<'a> {
    digest: &'a Digest,
    size: u64,
}

impl fmt::Display for Attested<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Attested {}", self.reference)?;
        writeln!(f, "  predicate type: {}", self.predicate_type)?;
        writeln!(f, "  signer: {}", self.signer)?;
        writeln!(f, "  referrer {}", self.referrer.digest)
    }
}
