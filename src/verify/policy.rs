//! Who must have signed, and which attestations must be present.
//!
//! - [`SignerPolicy`]: the trusted signers, each entry either a public key or a keyless
//!   identity (SAN exact or anchored regexp, paired with an issuer exact or anchored regexp).
//!   A bundle verifies when it satisfies at least one entry; a keyless bundle never satisfies a
//!   key entry and a key-based bundle never satisfies an identity entry.
//! - [`Policy`]: a signer policy plus `require_signers` (n-of-m: at least N distinct entries
//!   satisfied by N distinct signers), required attestation predicate types and SLSA provenance
//!   requirements; [`super::evaluate`] judges a set of bound bundles against it.

use super::types::canonical_pem;
use crate::media_types;
use sha2::{Digest as _, Sha256};

/// Why a policy could not be built (bad key file, bad regexp, bad policy file): an input error.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("public key {name}: {reason}")]
    Key { name: String, reason: String },
    #[error("invalid regular expression {pattern:?} for {what}: {reason}")]
    Regex {
        what: &'static str,
        pattern: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("policy file {file}: {reason}")]
    File { file: String, reason: String },
}

/// A trusted public key: PEM `PUBLIC KEY` (SPKI) for ECDSA P-256, P-384 or Ed25519.
#[derive(Clone, Debug)]
pub struct TrustedKey {
    /// Where it came from (a file path), for messages.
    pub name: String,
    /// hex sha256 of the key's canonical PEM (`-----BEGIN PUBLIC KEY-----`, base64 in 64-column
    /// lines, `\n` line ends): the `publicKey.hint` model_signing writes. Equal to the sha256
    /// of the key file's bytes when the file is that canonical PEM (as OpenSSL, Python
    /// `cryptography` and oci-model write it); files with extra text hash differently.
    pub hint: String,
    /// hex sha256 of the DER SubjectPublicKeyInfo: the same key whatever its PEM formatting.
    pub key_id: String,
    pub(crate) der: sigstore_types::DerPublicKey,
    pub(crate) algorithm: sigstore_crypto::KeyAlgorithm,
}

impl TrustedKey {
    /// Parse PEM bytes (`-----BEGIN PUBLIC KEY-----`).
    pub fn from_pem(pem: &[u8], name: impl Into<String>) -> Result<Self, PolicyError> {
        let name = name.into();
        let err = |reason: String| PolicyError::Key {
            name: name.clone(),
            reason,
        };
        let text = std::str::from_utf8(pem).map_err(|_| err("not a PEM text file".into()))?;
        let der = sigstore_types::DerPublicKey::from_pem(text).map_err(|e| {
            err(format!(
                "expected a PEM public key (-----BEGIN PUBLIC KEY-----): {e}"
            ))
        })?;
        let algorithm = sigstore_crypto::KeyAlgorithm::from_spki(&der)
            .map_err(|e| err(format!("unsupported public key: {e}")))?;
        use sigstore_crypto::KeyAlgorithm as K;
        if !matches!(algorithm, K::EcdsaP256 | K::EcdsaP384 | K::Ed25519) {
            return Err(err(format!(
                "{algorithm:?} keys are not supported: use ECDSA P-256, P-384 or Ed25519"
            )));
        }
        Ok(TrustedKey {
            hint: hex::encode(Sha256::digest(canonical_pem(der.as_bytes()).as_bytes())),
            key_id: hex::encode(Sha256::digest(der.as_bytes())),
            name,
            der,
            algorithm,
        })
    }

    /// Read a PEM public key file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, PolicyError> {
        let bytes = std::fs::read(path).map_err(|e| PolicyError::Key {
            name: path.display().to_string(),
            reason: format!("cannot read: {e}"),
        })?;
        Self::from_pem(&bytes, path.display().to_string())
    }

    /// "ECDSA P-256" etc.
    pub fn algorithm_name(&self) -> &'static str {
        use sigstore_crypto::KeyAlgorithm as K;
        match self.algorithm {
            K::EcdsaP256 => "ECDSA P-256",
            K::EcdsaP384 => "ECDSA P-384",
            K::Ed25519 => "Ed25519",
            _ => "unsupported",
        }
    }
}

/// An exact string or an anchored regular expression (`^(?:…)$`, like cosign's `-regexp` flags).
#[derive(Clone, Debug)]
pub enum Matcher {
    Exact(String),
    Regex {
        pattern: String,
        regex: regex::Regex,
    },
}

impl Matcher {
    pub fn exact(s: impl Into<String>) -> Self {
        Matcher::Exact(s.into())
    }

    /// Compile `pattern`, implicitly anchored at both ends.
    pub fn regex(pattern: &str, what: &'static str) -> Result<Self, PolicyError> {
        let regex =
            regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| PolicyError::Regex {
                what,
                pattern: pattern.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Matcher::Regex {
            pattern: pattern.to_string(),
            regex,
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::Regex { regex, .. } => regex.is_match(value),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "{s:?}"),
            Matcher::Regex { pattern, .. } => write!(f, "regexp ^(?:{pattern})$"),
        }
    }
}

/// A keyless signer: certificate identity (SAN) and OIDC issuer.
#[derive(Clone, Debug)]
pub struct IdentityRule {
    pub identity: Matcher,
    pub issuer: Matcher,
}

/// One entry of a signer policy.
#[derive(Clone, Debug)]
pub enum SignerEntry {
    Key(TrustedKey),
    Identity(IdentityRule),
}

impl SignerEntry {
    /// Short description for reports: "key cosign.pub (hint ab12…)" or
    /// "identity \"a@b\" issued by \"https://…\"".
    pub fn describe(&self) -> String {
        match self {
            SignerEntry::Key(k) => {
                format!("key {} ({}, hint {})", k.name, k.algorithm_name(), k.hint)
            }
            SignerEntry::Identity(r) => {
                format!("identity {} issued by {}", r.identity, r.issuer)
            }
        }
    }
}

/// The trusted signers. Entries are numbered in the order they were added.
#[derive(Clone, Debug, Default)]
pub struct SignerPolicy {
    entries: Vec<SignerEntry>,
}

impl SignerPolicy {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add_key(&mut self, key: TrustedKey) -> &mut Self {
        self.entries.push(SignerEntry::Key(key));
        self
    }
    pub fn add_identity(&mut self, identity: Matcher, issuer: Matcher) -> &mut Self {
        self.entries
            .push(SignerEntry::Identity(IdentityRule { identity, issuer }));
        self
    }
    /// Builder form of [`Self::add_key`].
    pub fn with_key(mut self, key: TrustedKey) -> Self {
        self.add_key(key);
        self
    }
    /// Builder form of [`Self::add_identity`].
    pub fn with_identity(mut self, identity: Matcher, issuer: Matcher) -> Self {
        self.add_identity(identity, issuer);
        self
    }
    pub fn entries(&self) -> &[SignerEntry] {
        &self.entries
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// (index, key) for every key entry.
    pub fn keys(&self) -> impl Iterator<Item = (usize, &TrustedKey)> {
        self.indexed(|e| match e {
            SignerEntry::Key(k) => Some(k),
            _ => None,
        })
    }
    /// (index, rule) for every identity entry.
    pub fn identities(&self) -> impl Iterator<Item = (usize, &IdentityRule)> {
        self.indexed(|e| match e {
            SignerEntry::Identity(r) => Some(r),
            _ => None,
        })
    }
    /// (index, what `pick` finds) for every entry it finds something in.
    fn indexed<'a, T: 'a>(
        &'a self,
        pick: impl Fn(&'a SignerEntry) -> Option<&'a T> + 'a,
    ) -> impl Iterator<Item = (usize, &'a T)> + 'a {
        (self.entries.iter().enumerate()).filter_map(move |(i, e)| pick(e).map(|x| (i, x)))
    }
    pub fn has_keys(&self) -> bool {
        self.keys().next().is_some()
    }
    pub fn has_identities(&self) -> bool {
        self.identities().next().is_some()
    }
}

/// Which verified bundles count as signatures for `require_signers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureKinds {
    /// Every verified bundle counts (a single artifact: `verify-bundle`).
    Any,
    /// Bundles whose in-toto statement has one of these predicate types, plus plain
    /// message-signature bundles. Attestations (provenance, SBOM …) do not count as signers.
    PredicateTypes(Vec<String>),
}

impl Default for SignatureKinds {
    /// The model signatures: OpenSSF model-signing and cosign's `sign/v1`.
    fn default() -> Self {
        SignatureKinds::PredicateTypes(vec![
            media_types::PREDICATE_MODEL_SIGNING.to_string(),
            media_types::PREDICATE_COSIGN_SIGN.to_string(),
        ])
    }
}

/// What a SLSA provenance v1 attestation must say.
#[derive(Clone, Debug, Default)]
pub struct ProvenanceRequirements {
    /// `runDetails.builder.id` must equal this.
    pub builder_id: Option<String>,
    /// Each (name, sha256 hex) must appear in `buildDefinition.resolvedDependencies`
    /// (matched on `name` or `uri`, digest in `digest.sha256`).
    pub materials: Vec<(String, String)>,
}

impl ProvenanceRequirements {
    pub fn is_empty(&self) -> bool {
        self.builder_id.is_none() && self.materials.is_empty()
    }

    /// Parse a `NAME=DIGEST` material requirement (DIGEST: `sha256:HEX` or `HEX`).
    pub fn parse_material(spec: &str) -> Result<(String, String), PolicyError> {
        let (name, digest) = spec.rsplit_once('=').ok_or_else(|| {
            PolicyError::Invalid(format!(
                "provenance material {spec:?}: expected NAME=sha256:HEX"
            ))
        })?;
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        if name.is_empty()
            || hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(PolicyError::Invalid(format!(
                "provenance material {spec:?}: expected NAME=sha256:<64 lowercase hex>"
            )));
        }
        Ok((name.to_string(), hex.to_string()))
    }
}

/// Whether a signer must have signed the artifact itself (for a model: its manifest digest) or
/// whether a signature over the model's files alone is enough.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ManifestBinding {
    /// A signer counts only when one of its signatures binds the artifact (the cosign-style
    /// bundle `sign` writes next to the model-signing bundle): the default, so a manifest
    /// digest is reported verified only when a trusted signature covers it.
    #[default]
    Required,
    /// A model-signing signature over the files is enough (e.g. one made by `model_signing`
    /// or with `sign --no-cosign-bundle`); the manifest's config, annotations, media types and
    /// sizes are then not signed, and the outcome says so.
    FilesSuffice,
}

/// The full policy a set of bundles is judged against.
#[derive(Clone, Debug)]
pub struct Policy {
    pub signers: SignerPolicy,
    /// Distinct signer entries that must be satisfied (n-of-m); default 1.
    pub require_signers: usize,
    /// Which bundles count as signatures.
    pub signature_kinds: SignatureKinds,
    /// Predicate type URIs that must each be present in at least one verified bundle (already
    /// resolved from shortcuts with [`crate::attest::resolve_predicate_type`]).
    pub attestation_types: Vec<String>,
    pub provenance: ProvenanceRequirements,
    /// Whether a signer's signature must bind the artifact itself (default) or may cover the
    /// model's files only.
    pub manifest_binding: ManifestBinding,
}

impl Policy {
    /// `signers`, 1 required, model signature kinds, no attestation required, the artifact
    /// (manifest) binding required.
    pub fn new(signers: SignerPolicy) -> Self {
        Policy {
            signers,
            require_signers: 1,
            signature_kinds: SignatureKinds::default(),
            attestation_types: Vec::new(),
            provenance: ProvenanceRequirements::default(),
            manifest_binding: ManifestBinding::Required,
        }
    }

    /// Check the policy itself makes sense (non-empty, N ≤ entries).
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.signers.is_empty() {
            return Err(PolicyError::Invalid(
                "no trusted signer: give --key, or --certificate-identity[-regexp] with --certificate-oidc-issuer[-regexp], or a --policy file".into(),
            ));
        }
        if self.require_signers == 0 {
            return Err(PolicyError::Invalid(
                "require-signers must be at least 1".into(),
            ));
        }
        if self.require_signers > self.signers.len() {
            return Err(PolicyError::Invalid(format!(
                "require-signers is {} but the policy lists only {} signer(s)",
                self.require_signers,
                self.signers.len()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_matchers_are_anchored() {
        let m = Matcher::regex("alice@example\\.com", "identity").unwrap();
        assert!(m.matches("alice@example.com"));
        assert!(!m.matches("mallory-alice@example.com"));
        assert!(!m.matches("alice@example.com.evil"));
        let m = Matcher::regex("https://github.com/org/.*|x", "identity").unwrap();
        assert!(m.matches("https://github.com/org/repo"));
        assert!(m.matches("x"));
        assert!(!m.matches("xx"));
        assert!(Matcher::regex("(", "identity").is_err());
    }

    #[test]
    fn material_specs_parse() {
        let hex = "a".repeat(64);
        assert_eq!(
            ProvenanceRequirements::parse_material(&format!("data=sha256:{hex}")).unwrap(),
            ("data".to_string(), hex.clone())
        );
        assert!(ProvenanceRequirements::parse_material("data").is_err());
        assert!(ProvenanceRequirements::parse_material("data=sha256:abc").is_err());
        assert!(ProvenanceRequirements::parse_material(&format!("={hex}")).is_err());
    }

    #[test]
    fn policy_validation() {
        let p = Policy::new(SignerPolicy::new());
        assert!(p.validate().is_err());
        let mut p = Policy::new(
            SignerPolicy::new()
                .with_identity(Matcher::exact("a@b"), Matcher::exact("https://issuer")),
        );
        assert!(p.validate().is_ok());
        p.require_signers = 2;
        assert!(p.validate().unwrap_err().to_string().contains("only 1"));
    }
}
