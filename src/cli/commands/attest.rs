//! `attest <TARGET>`: sign an in-toto statement about the model manifest (generated SLSA
//! provenance, or any predicate from a file) and attach it as a referrer.

use super::{open_store, parse_target, store_options};
use crate::cli::args::AttestArgs;
use crate::cli::exit::Failure;
use crate::cli::Ctx;
use anyhow::Context as _;
use oci_model::attest::{
    provenance_statement, read_predicate_file, resolve_predicate_type, statement_for_manifest,
    AttestError, ProvenanceInput,
};
use oci_model::reference::Target;
use oci_model::sigstore_ops;
use oci_model::store;
use serde_json::json;

pub async fn run(args: AttestArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let target = parse_target(&args.target)?;
    if !args.provenance && args.predicate.is_none() {
        return Err(Failure::usage(
            "say what to attest: --provenance (generated SLSA provenance) or --predicate FILE --type URI",
        ));
    }
    // Input first (cheap, local): a bad predicate file fails before any network work.
    let predicate = match (&args.predicate, &args.predicate_type) {
        (Some(path), Some(t)) => {
            let predicate_type = resolve_predicate_type(t).map_err(input_error)?;
            let value = read_predicate_file(path, &predicate_type).map_err(input_error)?;
            Some((predicate_type, value))
        }
        (Some(_), None) => return Err(Failure::usage("--predicate needs --type URI")),
        _ => None,
    };
    let signer = super::signer::build_signer(&args.signer, ctx).await?;
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
            provenance_statement(&input, &repository, &subject.digest, &resolver)
                .await
                .map_err(input_error)?
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
    let pinned = target.with_digest(subject.digest.clone());
    let text = format!(
        "Attested {pinned}\n  predicate type: {}\n  signer: {signer_name}\n  referrer {}\n",
        statement.predicate_type, referrer.digest
    );
    ctx.printer.result(
        &text,
        &json!({
            "ok": true,
            "reference": pinned.to_string(),
            "digest": subject.digest,
            "predicateType": statement.predicate_type,
            "signer": signer_name,
            "referrer": {"digest": referrer.digest, "size": referrer.size},
        }),
    );
    Ok(())
}

/// Attestation inputs are the user's: exit 2 with the library's message (it names the file,
/// material or flag). An unresolvable OCI material is a registry problem (exit 3).
fn input_error(e: AttestError) -> anyhow::Error {
    match e {
        AttestError::MaterialUnresolved { .. } => anyhow::Error::new(Failure {
            code: crate::cli::exit::REGISTRY,
            message: e.to_string(),
        }),
        other => Failure::usage(other.to_string()),
    }
}
