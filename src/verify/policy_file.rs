//! The policy file (`--policy policy.yaml`): per repository pattern, who must have signed and
//! which attestations must be present.
//!
//! ```yaml
//! # oci-model verification policy
//! version: 1
//! policies:
//!   # Rules are tried in order; the first whose pattern matches the repository applies.
//!   - repositories: ["registry.example.com/team/*", "localhost:5000/models/**"]
//!     requireSigners: 2          # distinct signers (n-of-m) that must have signed; default 1
//!     signers:
//!       - key: keys/alice.pub    # PEM public key, relative to this file's directory
//!       - identity: bob@example.com
//!         issuer: https://accounts.google.com
//!       - identityRegexp: "https://github\\.com/acme/train/\\.github/workflows/.*@refs/tags/v.*"
//!         issuerRegexp: "https://token\\.actions\\.githubusercontent\\.com"
//!     attestations:              # predicate types that must be present, signed by a signer above
//!       - https://slsa.dev/provenance/v1   # (shortcuts: slsaprovenance1, spdx, cyclonedx, link)
//!     provenance:                # optional: what the SLSA provenance must say
//!       builderId: https://github.com/acme/train/.github/workflows/train.yml@refs/heads/main
//!       materials:
//!         - "imagenet=sha256:6c3e…"   # NAME=DIGEST, matched on resolvedDependencies name or uri
//!     # allowUnsignedMetadata: true  # accept signatures over the files only (model_signing's):
//!     #   the manifest's config, annotations, media types and sizes are then not signed
//!   - repositories: ["**"]       # everything else: one signature by the release key
//!     signers:
//!       - key: keys/release.pub
//! ```
//!
//! Patterns are globs over the repository name: `host[:port]/path` for registries (no tag or
//! digest), the directory path for `oci:` layouts. `*` and `?` stay within one `/` segment,
//! `**` spans segments, `{a,b}` alternates. A repository no rule matches fails verification
//! (fail closed); add a final `**` rule for a default. Identities and issuers are exact
//! strings, or anchored regular expressions with the `…Regexp` keys (`^(?:…)$`, like cosign).
//! Unknown keys are errors, so a typo cannot silently weaken the policy.

use super::error::VerifyError;
use super::policy::{
    ManifestBinding, Matcher, Policy, PolicyError, ProvenanceRequirements, SignerPolicy, TrustedKey,
};
use crate::attest::resolve_predicate_type;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FileDoc {
    version: u32,
    policies: Vec<RuleDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleDoc {
    repositories: Vec<String>,
    #[serde(default)]
    require_signers: Option<usize>,
    signers: Vec<SignerDoc>,
    #[serde(default)]
    attestations: Vec<String>,
    #[serde(default)]
    provenance: Option<ProvenanceDoc>,
    #[serde(default)]
    allow_unsigned_metadata: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SignerDoc {
    key: Option<PathBuf>,
    identity: Option<String>,
    identity_regexp: Option<String>,
    issuer: Option<String>,
    issuer_regexp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProvenanceDoc {
    builder_id: Option<String>,
    #[serde(default)]
    materials: Vec<String>,
}

struct Rule {
    patterns: Vec<String>,
    matcher: globset::GlobSet,
    policy: Policy,
}

/// A loaded policy file: rules with their keys already read.
pub struct PolicyFile {
    file: String,
    rules: Vec<Rule>,
    /// The key files the rules were read from.
    key_files: Vec<PathBuf>,
}

impl std::fmt::Debug for PolicyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyFile")
            .field("file", &self.file)
            .field(
                "rules",
                &self.rules.iter().map(|r| &r.patterns).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PolicyFile {
    /// Read and check a policy file; key paths are relative to its directory.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::File {
            file: name.clone(),
            reason: format!("cannot read: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_yaml(&text, base, &name)
    }

    /// Parse YAML text; `base` is where relative key paths start, `name` names it in errors.
    pub fn from_yaml(text: &str, base: &Path, name: &str) -> Result<Self, PolicyError> {
        let err = |reason: String| PolicyError::File {
            file: name.to_string(),
            reason,
        };
        let doc: FileDoc = serde_yaml::from_str(text).map_err(|e| err(e.to_string()))?;
        if doc.version != 1 {
            return Err(err(format!(
                "version {} is not supported (expected 1)",
                doc.version
            )));
        }
        if doc.policies.is_empty() {
            return Err(err("no policies".into()));
        }
        let mut rules = Vec::new();
        let mut key_files = Vec::new();
        for (n, r) in doc.policies.into_iter().enumerate() {
            let at = |reason: String| err(format!("policies[{n}]: {reason}"));
            if r.repositories.is_empty() {
                return Err(at("repositories is empty".into()));
            }
            let mut set = globset::GlobSetBuilder::new();
            for p in &r.repositories {
                let glob = globset::GlobBuilder::new(p)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| at(format!("repository pattern {p:?}: {e}")))?;
                set.add(glob);
            }
            let matcher = set.build().map_err(|e| at(e.to_string()))?;

            let mut signers = SignerPolicy::new();
            for (m, s) in r.signers.into_iter().enumerate() {
                let at = |reason: String| err(format!("policies[{n}].signers[{m}]: {reason}"));
                let keyless = s.identity.is_some()
                    || s.identity_regexp.is_some()
                    || s.issuer.is_some()
                    || s.issuer_regexp.is_some();
                match (s.key, keyless) {
                    (Some(_), true) => {
                        return Err(at(
                            "give either key, or identity and issuer, not both".into()
                        ))
                    }
                    (Some(key), false) => {
                        let full = if key.is_absolute() {
                            key
                        } else {
                            base.join(key)
                        };
                        signers
                            .add_key(TrustedKey::from_file(&full).map_err(|e| at(e.to_string()))?);
                        key_files.push(full);
                    }
                    (None, _) => {
                        let identity = match (s.identity, s.identity_regexp) {
                            (Some(i), None) => Matcher::exact(i),
                            (None, Some(r)) => Matcher::regex(&r, "identityRegexp")
                                .map_err(|e| at(e.to_string()))?,
                            _ => {
                                return Err(at(
                                    "give exactly one of identity or identityRegexp".into()
                                ))
                            }
                        };
                        let issuer = match (s.issuer, s.issuer_regexp) {
                            (Some(i), None) => Matcher::exact(i),
                            (None, Some(r)) => {
                                Matcher::regex(&r, "issuerRegexp").map_err(|e| at(e.to_string()))?
                            }
                            _ => {
                                return Err(at("give exactly one of issuer or issuerRegexp".into()))
                            }
                        };
                        signers.add_identity(identity, issuer);
                    }
                }
            }
            let mut policy = Policy::new(signers);
            policy.require_signers = r.require_signers.unwrap_or(1);
            if r.allow_unsigned_metadata {
                policy.manifest_binding = ManifestBinding::FilesSuffice;
            }
            policy.attestation_types = r
                .attestations
                .iter()
                .map(|t| resolve_predicate_type(t).map_err(|e| at(format!("attestations: {e}"))))
                .collect::<Result<_, _>>()?;
            if let Some(p) = r.provenance {
                policy.provenance = ProvenanceRequirements {
                    builder_id: p.builder_id,
                    materials: p
                        .materials
                        .iter()
                        .map(|m| ProvenanceRequirements::parse_material(m))
                        .collect::<Result<_, _>>()
                        .map_err(|e| at(e.to_string()))?,
                };
            }
            policy.validate().map_err(|e| at(e.to_string()))?;
            rules.push(Rule {
                patterns: r.repositories,
                matcher,
                policy,
            });
        }
        Ok(PolicyFile {
            file: name.to_string(),
            rules,
            key_files,
        })
    }

    /// The public key files the policy read (a change to one changes the policy).
    pub fn key_files(&self) -> &[PathBuf] {
        &self.key_files
    }

    /// The policy for `repository` (first matching rule), or a verification failure when no
    /// rule matches.
    pub fn for_repository(&self, repository: &str) -> Result<Policy, VerifyError> {
        self.rules
            .iter()
            .find(|r| r.matcher.is_match(repository))
            .map(|r| r.policy.clone())
            .ok_or_else(|| VerifyError::NoPolicyRule {
                file: self.file.clone(),
                repository: repository.to_string(),
            })
    }

    /// The patterns of the rule that applies to `repository`, for reports.
    pub fn rule_for(&self, repository: &str) -> Option<&[String]> {
        self.rules
            .iter()
            .find(|r| r.matcher.is_match(repository))
            .map(|r| r.patterns.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::policy::SignerEntry;

    fn key_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let pair = sigstore_crypto::KeyPair::generate_ecdsa_p256().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        std::fs::write(
            dir.path().join("keys/alice.pub"),
            pair.public_key_der().unwrap().to_pem(),
        )
        .unwrap();
        dir
    }

    const EXAMPLE: &str = r#"
version: 1
policies:
  - repositories: ["registry.example.com/team/*", "localhost:5000/models/**"]
    requireSigners: 2
    signers:
      - key: keys/alice.pub
      - identity: bob@example.com
        issuer: https://accounts.google.com
      - identityRegexp: "https://github\\.com/acme/train/\\.github/workflows/.*"
        issuerRegexp: "https://token\\.actions\\.githubusercontent\\.com"
    attestations: [slsaprovenance1]
    provenance:
      builderId: https://builder.example/train
      materials:
        - "imagenet=sha256:6c3e226b4d4795d518ab341b0824ec29f9b9dc3b0a29d4f1c2b5b0fb1ee6c4c2"
  - repositories: ["**"]
    signers:
      - key: keys/alice.pub
"#;

    #[test]
    fn example_policy_parses_and_selects_rules() {
        let dir = key_dir();
        let f = PolicyFile::from_yaml(EXAMPLE, dir.path(), "policy.yaml").unwrap();
        let p = f.for_repository("registry.example.com/team/bert").unwrap();
        assert_eq!(p.require_signers, 2);
        assert_eq!(p.signers.len(), 3);
        assert!(matches!(p.signers.entries()[0], SignerEntry::Key(_)));
        assert_eq!(p.attestation_types, vec!["https://slsa.dev/provenance/v1"]);
        assert_eq!(p.provenance.materials.len(), 1);
        // `*` stays within a segment: team/a/b falls through to the default rule.
        let p = f.for_repository("registry.example.com/team/a/b").unwrap();
        assert_eq!(p.require_signers, 1);
        assert_eq!(p.signers.len(), 1);
        let p = f.for_repository("localhost:5000/models/x/y").unwrap();
        assert_eq!(p.require_signers, 2);
    }

    #[test]
    fn no_matching_rule_fails_closed() {
        let dir = key_dir();
        let text = "version: 1\npolicies:\n  - repositories: [\"a/*\"]\n    signers:\n      - key: keys/alice.pub\n";
        let f = PolicyFile::from_yaml(text, dir.path(), "p.yaml").unwrap();
        let err = f.for_repository("b/c").unwrap_err();
        assert!(matches!(err, VerifyError::NoPolicyRule { .. }), "{err}");
    }

    #[test]
    fn file_only_signatures_are_accepted_only_where_a_rule_says_so() {
        let dir = key_dir();
        let text = "version: 1\npolicies:\n  - repositories: [\"a/*\"]\n    allowUnsignedMetadata: true\n    signers:\n      - key: keys/alice.pub\n  - repositories: [\"**\"]\n    signers:\n      - key: keys/alice.pub\n";
        let f = PolicyFile::from_yaml(text, dir.path(), "p.yaml").unwrap();
        let p = f.for_repository("a/b").unwrap();
        assert_eq!(p.manifest_binding, ManifestBinding::FilesSuffice);
        let p = f.for_repository("c/d").unwrap();
        assert_eq!(p.manifest_binding, ManifestBinding::Required);
    }

    #[test]
    fn mistakes_are_reported() {
        let dir = key_dir();
        for (text, needle) in [
            ("version: 2\npolicies: []\n", "version 2"),
            ("version: 1\npolicies:\n  - repositories: [x]\n    signers: []\n", "no trusted signer"),
            ("version: 1\npolicies:\n  - repositories: [x]\n    signer: []\n", "unknown field"),
            ("version: 1\npolicies:\n  - repositories: [x]\n    signers:\n      - identity: a\n", "issuer"),
            ("version: 1\npolicies:\n  - repositories: [x]\n    signers:\n      - key: keys/missing.pub\n", "missing.pub"),
            ("version: 1\npolicies:\n  - repositories: [x]\n    signers:\n      - key: keys/alice.pub\n        identity: a\n        issuer: b\n", "not both"),
            ("version: 1\npolicies:\n  - repositories: [x]\n    requireSigners: 3\n    signers:\n      - key: keys/alice.pub\n", "only 1"),
            ("version: 1\npolicies:\n  - repositories: [x]\n    signers:\n      - identityRegexp: \"(\"\n        issuer: b\n", "regular expression"),
            ("version: 1\npolicies:\n  - repositories: [x]\n    signers:\n      - key: keys/alice.pub\n    attestations: [slsa]\n", "policies[0]: attestations: unknown predicate type \"slsa\""),
        ] {
            let err = PolicyFile::from_yaml(text, dir.path(), "p.yaml").unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(err.contains("p.yaml"), "{err}");
        }
    }
}
