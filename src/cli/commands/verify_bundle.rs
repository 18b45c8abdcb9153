//! `verify-bundle` (`verify <TARGET>` lives in verify.rs).

use crate::cli::args::VerifyBundleArgs;
use crate::cli::ctx::Ctx;
use crate::cli::exit::{Failure, InputError as _};
use crate::cli::printer::Rendered;

/// `verify-bundle`: one Sigstore bundle over a file or a digest (sigstore-conformance client
/// shape). Exit 0 verified, 1 verification failed (with the reason), 2 usage/input error.
pub async fn run(args: VerifyBundleArgs, ctx: &Ctx) -> anyhow::Result<()> {
    use oci_model::verify::{self, Artifact, BundleReport, Report, SignatureKinds};

    crate::cli::policy::refuse_flags(
        &args.policy,
        "verify-bundle",
        &[(
            crate::cli::policy::PolicyFlag::AllowUnsignedMetadata,
            "a bundle is checked against the artifact or digest given, which it must sign",
        )],
    )?;
    let trust = crate::cli::policy::trusted_root(&args.policy, &ctx.settings)?;
    let mut policy = crate::cli::policy::policy(&args.policy, None)?;
    // One artifact: the bundle counts as a signature whatever its predicate type.
    policy.signature_kinds = SignatureKinds::Any;

    let bundle_name = args.bundle.display().to_string();
    let bundle = super::read_limited(
        &args.bundle,
        "bundle",
        oci_model::media_types::MAX_BUNDLE_SIZE,
    )?;
    let (artifact, target) = match (&args.artifact, &args.digest) {
        (Some(path), None) => {
            if !path.is_file() {
                return Err(Failure::input(format!(
                    "artifact {}: not a readable file",
                    path.display()
                )));
            }
            (Artifact::File(path.clone()), path.display().to_string())
        }
        (None, Some(d)) => {
            let digest: oci_model::digest::Digest = d.parse().input_context(|| "--digest")?;
            let target = digest.to_string();
            (Artifact::Digest(digest), target)
        }
        _ => {
            return Err(Failure::input(
                "give the artifact FILE or --digest sha256:HEX",
            ))
        }
    };

    let signers = policy.signers.clone();
    let trust_for_task = trust.clone();
    let verified = tokio::task::spawn_blocking(move || {
        verify::verify_bundle(&bundle, &artifact, &signers, &trust_for_task)
    })
    .await?
    .map_err(|e| anyhow::Error::new(e).context(format!("bundle {bundle_name} over {target}")))?;

    let outcome = verify::evaluate(std::slice::from_ref(&verified), &policy);
    let mut report = Report::new(target.clone());
    report.trusted_root = Some(trust.source().to_string());
    report
        .bundles
        .push(BundleReport::verified(&bundle_name, &verified));
    report.policy = Some(outcome.clone());
    report.finish();
    if !outcome.passed {
        return Err(anyhow::Error::new(verify::VerifyError::PolicyNotSatisfied(
            outcome.failures.join("; "),
        ))
        .context(format!("bundle {bundle_name} over {target}")));
    }
    ctx.printer
        .result(&Rendered::new(&report, report.to_text()));
    Ok(())
}
