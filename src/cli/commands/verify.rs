//! `verify <TARGET>` (any manifest or index; a model's files are bound too) and the
//! verification `pull` does before releasing any file.

use super::{open_store, parse_target};
use crate::cli::args::{PolicyOpts, VerifyArgs};
use crate::cli::ctx::Ctx;
use crate::cli::exit::Failure;
use anyhow::Context as _;
use oci_model::digest::Digest;
use oci_model::model::ModelArtifact;
use oci_model::model::ModelPath;
use oci_model::reference::Target;
use oci_model::sigstore_ops::{self, SignTarget};
use oci_model::store::Store;
use oci_model::untrusted::Untrusted;
use oci_model::verify::{Binding, BoundBundle, Report};
use serde::Serialize;
use std::fmt;

/// Verify a fetched target against the policy flags; Err (exit 1) unless the policy passes.
async fn verify_artifact(
    policy_opts: &PolicyOpts,
    target: &Target,
    store: &dyn Store,
    artifact: &SignTarget,
    ctx: &Ctx,
) -> anyhow::Result<(Report, Vec<BoundBundle>)> {
    let trust = crate::cli::policy::trusted_root(policy_opts, &ctx.settings)?;
    let repository = target.repository_name();
    let policy = crate::cli::policy::policy(policy_opts, Some(&repository))?;
    let shown = strip_digest(target);
    Ok(sigstore_ops::verify_target(store, artifact, &shown, &policy, &trust).await?)
}

fn strip_digest(target: &Target) -> String {
    let s = target.to_string();
    s.split('@').next().unwrap_or(&s).to_string()
}

pub async fn run(args: VerifyArgs, ctx: &Ctx) -> anyhow::Result<()> {
    let target = parse_target(&args.target)?;
    let store = open_store(&target, &args.registry).await?;
    let artifact = sigstore_ops::fetch_target(store.as_ref(), &target.reference())
        .await
        .with_context(|| format!("verify {target}"))?;
    let (report, verified) =
        verify_artifact(&args.policy, &target, store.as_ref(), &artifact, ctx).await?;
    let attestations = args.show_attestations.then(|| {
        verified
            .iter()
            .filter_map(|b| b.statement())
            .map(|s| Attestation {
                predicate_type: &s.predicate_type,
                subject: &s.subject,
                predicate: &s.predicate,
            })
            .collect()
    });
    ctx.printer.result(&Verified {
        report: &report,
        attestations,
    });
    if report.ok {
        Ok(())
    } else {
        Err(Failure::integrity(failure_summary(&report)))
    }
}

/// The report, with the verified attestations when asked for (`--show-attestations`).
#[derive(Serialize)]
struct Verified<'a, S, P> {
    #[serde(flatten)]
    report: &'a Report,
    #[serde(skip_serializing_if = "Option::is_none")]
    attestations: Option<Vec<Attestation<'a, S, P>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Attestation<'a, S, P> {
    predicate_type: &'a str,
    subject: &'a S,
    predicate: &'a P,
}

impl<S: Serialize, P: Serialize> fmt::Display for Verified<'_, S, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report.to_text())?;
        for a in self.attestations.iter().flatten() {
            let predicate = serde_json::to_string_pretty(a.predicate).unwrap_or_default();
            // JSON text: control characters are already escaped by serde.
            write!(
                f,
                "\nAttestation {}:\n{predicate}\n",
                Untrusted(a.predicate_type)
            )?;
        }
        Ok(())
    }
}

/// `pull` refused by its verification flags, in JSON mode: the error document with the report.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RefusedPull<'a> {
    ok: bool,
    exit_code: u8,
    error: &'a str,
    verification: &'a Report,
}

impl fmt::Display for RefusedPull<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.error)
    }
}

/// One line saying why verification failed.
fn failure_summary(report: &Report) -> String {
    let mut reasons: Vec<String> = report
        .policy
        .as_ref()
        .map(|p| {
            p.failures
                .iter()
                .map(|f| Untrusted(f).to_string())
                .collect()
        })
        .unwrap_or_default();
    if report.bundles.is_empty() {
        reasons.insert(0, "no signatures or attestations are attached".into());
    }
    for b in report.bundles.iter().filter(|b| !b.ok) {
        if let Some(e) = &b.error {
            reasons.push(format!("{}: {}", b.source, Untrusted(e)));
        }
    }
    format!(
        "verification of {} failed: {}",
        report.target,
        reasons.join("; ")
    )
}

/// `pull --key …`: verify the exact manifest that will be pulled before any file is written.
/// Prints the report to stderr in text mode; Err (exit 1) when the policy fails. Also returns
/// the files a verified model-signing signature lists (path → sha256), which the pull's files
/// must then be (what an archive layer unpacks to is checked against them).
pub async fn verify_before_pull(
    policy_opts: &PolicyOpts,
    target: &Target,
    store: &dyn Store,
    artifact: &ModelArtifact,
    ctx: &Ctx,
) -> anyhow::Result<(Report, Option<Vec<(ModelPath, Digest)>>)> {
    let artifact = SignTarget::from(artifact.clone());
    let (report, bound) = verify_artifact(policy_opts, target, store, &artifact, ctx).await?;
    let signed_files = bound
        .iter()
        .filter(|b| b.binding() == Binding::Files)
        .find_map(|b| b.model_statement().ok())
        .and_then(|s| {
            s.resources
                .into_iter()
                .map(|r| Some((ModelPath::new(&r.name).ok()?, r.digest)))
                .collect::<Option<Vec<_>>>()
        });
    if report.ok {
        // One line on success; the whole report only when something failed.
        let signers: Vec<String> = report
            .policy
            .iter()
            .flat_map(|p| p.signers_satisfied.iter().map(|s| s.signer.clone()))
            .collect();
        let scope = report.policy.as_ref().and_then(|p| p.scope_note());
        ctx.printer.note(&format!(
            "{} {}{} ({} bundle(s) checked; signed by {})",
            if scope.is_some() {
                "Partly verified"
            } else {
                "Verified"
            },
            Untrusted(&report.target),
            scope.map(|n| format!(": {n}")).unwrap_or_default(),
            report.bundles.len(),
            Untrusted(signers.join(", "))
        ));
        Ok((report, signed_files))
    } else {
        ctx.printer.note(report.to_text().trim_end());
        let message = format!("{}; nothing was written", failure_summary(&report));
        if ctx.printer.json() {
            // The failure document carries the report that explains it.
            ctx.printer.result(&RefusedPull {
                ok: false,
                exit_code: crate::cli::exit::code(oci_model::error::ErrorKind::Integrity),
                error: &message,
                verification: &report,
            });
        }
        Err(Failure::integrity(message))
    }
}
