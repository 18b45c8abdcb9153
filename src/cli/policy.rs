//! `PolicyOpts` (the --key / --certificate-identity… / --policy flags) → the library's trusted
//! root and policy. Input mistakes exit 2; a policy file without a rule for the repository is a
//! verification failure (exit 1).

use super::args::PolicyOpts;
use super::exit::Failure;
use oci_model::attest::resolve_predicate_type;
use oci_model::verify::{
    ManifestBinding, Matcher, Policy, PolicyFile, ProvenanceRequirements, SignerPolicy, TrustedKey,
    TrustedRoot,
};

/// The trusted root: `--trusted-root FILE`, else the public-good root (cached by
/// `trusted-root update`, or embedded).
pub fn trusted_root(
    opts: &PolicyOpts,
    settings: &super::settings::Settings,
) -> anyhow::Result<TrustedRoot> {
    super::commands::trusted_root::trusted_root(opts.trusted_root.as_deref(), settings)
}

/// True when any signer flag (key or identity) is given.
pub fn has_signer_flags(opts: &PolicyOpts) -> bool {
    !opts.keys.is_empty()
        || !opts.identities.is_empty()
        || !opts.identity_regexps.is_empty()
        || opts.issuer.is_some()
        || opts.issuer_regexp.is_some()
}

/// True when the user asked for any verification at all (any policy flag): `pull` verifies
/// before writing only then. Flags without a signer are then refused by [`policy`].
pub fn requested(opts: &PolicyOpts) -> bool {
    has_signer_flags(opts)
        || opts.policy.is_some()
        || opts.trusted_root.is_some()
        || opts.require_signers.is_some()
        || !opts.attestation_types.is_empty()
        || opts.provenance_builder_id.is_some()
        || !opts.provenance_materials.is_empty()
        || opts.allow_unsigned_metadata
}

/// A policy flag some command cannot honour.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PolicyFlag {
    Policy,
    RequireSigners,
    AttestationType,
    ProvenanceBuilderId,
    ProvenanceMaterial,
    AllowUnsignedMetadata,
}

impl PolicyFlag {
    fn name(self) -> &'static str {
        match self {
            PolicyFlag::Policy => "--policy",
            PolicyFlag::RequireSigners => "--require-signers",
            PolicyFlag::AttestationType => "--attestation-type",
            PolicyFlag::ProvenanceBuilderId => "--provenance-builder-id",
            PolicyFlag::ProvenanceMaterial => "--provenance-material",
            PolicyFlag::AllowUnsignedMetadata => "--allow-unsigned-metadata",
        }
    }

    fn given(self, opts: &PolicyOpts) -> bool {
        match self {
            PolicyFlag::Policy => opts.policy.is_some(),
            PolicyFlag::RequireSigners => opts.require_signers.is_some(),
            PolicyFlag::AttestationType => !opts.attestation_types.is_empty(),
            PolicyFlag::ProvenanceBuilderId => opts.provenance_builder_id.is_some(),
            PolicyFlag::ProvenanceMaterial => !opts.provenance_materials.is_empty(),
            PolicyFlag::AllowUnsignedMetadata => opts.allow_unsigned_metadata,
        }
    }
}

/// Refuse (exit 2) the first flag of `unsupported` that was given: a command never accepts a
/// check it would not perform. `why` says why `command` cannot honour it.
pub fn refuse_flags(
    opts: &PolicyOpts,
    command: &str,
    unsupported: &[(PolicyFlag, &str)],
) -> anyhow::Result<()> {
    match unsupported.iter().find(|(flag, _)| flag.given(opts)) {
        Some((flag, why)) => Err(Failure::input(format!(
            "{command} cannot honour {}: {why}",
            flag.name()
        ))),
        None => Ok(()),
    }
}

/// The signers named by flags (keys read now).
pub fn signer_policy(opts: &PolicyOpts) -> anyhow::Result<SignerPolicy> {
    let mut signers = SignerPolicy::new();
    for path in &opts.keys {
        signers.add_key(TrustedKey::from_file(path)?);
    }
    let any_identity = !opts.identities.is_empty() || !opts.identity_regexps.is_empty();
    let issuer = match (&opts.issuer, &opts.issuer_regexp) {
        (Some(_), Some(_)) => return Err(Failure::input(
            "give either --certificate-oidc-issuer or --certificate-oidc-issuer-regexp, not both",
        )),
        (Some(i), None) => Some(Matcher::exact(i.clone())),
        (None, Some(r)) => Some(Matcher::regex(r, "--certificate-oidc-issuer-regexp")?),
        (None, None) => None,
    };
    match (&issuer, any_identity) {
        (None, true) => {
            return Err(Failure::input(
                "--certificate-identity[-regexp] needs --certificate-oidc-issuer (or --certificate-oidc-issuer-regexp)",
            ))
        }
        (Some(_), false) => {
            return Err(Failure::input(
                "--certificate-oidc-issuer[-regexp] needs --certificate-identity (or --certificate-identity-regexp)",
            ))
        }
        _ => {}
    }
    if let Some(issuer) = issuer {
        for id in &opts.identities {
            signers.add_identity(Matcher::exact(id.clone()), issuer.clone());
        }
        for re in &opts.identity_regexps {
            let m = Matcher::regex(re, "--certificate-identity-regexp")?;
            signers.add_identity(m, issuer.clone());
        }
    }
    Ok(signers)
}

/// The full policy. `repository` selects the rule of a `--policy` file (`None` where there is
/// no repository, e.g. `verify-bundle`: then `--policy` is a usage error).
/// `--attestation-type` and `--provenance-*` flags add to a policy file's requirements.
pub fn policy(opts: &PolicyOpts, repository: Option<&str>) -> anyhow::Result<Policy> {
    let mut policy = match &opts.policy {
        Some(path) => {
            if has_signer_flags(opts) || opts.require_signers.is_some() {
                return Err(Failure::input(
                    "--policy cannot be combined with --key, --certificate-identity[-regexp], --certificate-oidc-issuer[-regexp] or --require-signers: the policy file names the signers",
                ));
            }
            if opts.allow_unsigned_metadata {
                return Err(Failure::input(
                    "--policy cannot be combined with --allow-unsigned-metadata: set allowUnsignedMetadata: true in the policy file's rule",
                ));
            }
            let Some(repository) = repository else {
                return Err(Failure::input(
                    "--policy selects rules by repository; this command verifies no repository",
                ));
            };
            let file = PolicyFile::load(path)?;
            file.for_repository(repository)?
        }
        None => {
            let mut p = Policy::new(signer_policy(opts)?);
            p.require_signers = opts.require_signers.unwrap_or(1);
            if opts.allow_unsigned_metadata {
                p.manifest_binding = ManifestBinding::FilesSuffice;
            }
            p
        }
    };
    for t in &opts.attestation_types {
        let t = resolve_predicate_type(t)?;
        if !policy.attestation_types.contains(&t) {
            policy.attestation_types.push(t);
        }
    }
    if let Some(id) = &opts.provenance_builder_id {
        policy.provenance.builder_id = Some(id.clone());
    }
    for m in &opts.provenance_materials {
        policy
            .provenance
            .materials
            .push(ProvenanceRequirements::parse_material(m)?);
    }
    policy.validate()?;
    Ok(policy)
}
