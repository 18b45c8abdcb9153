//! Verify one Sigstore bundle against a signer policy and a trusted root.
//!
//! Keyless bundles (Fulcio certificate) go through `sigstore-verify` in full: certificate chain
//! to a trusted Fulcio CA at the verified signing time, SCT, transparency log inclusion proof
//! and checkpoint and/or SET, RFC 3161 timestamps, signature, artifact binding, log entry
//! consistency. The identity/issuer match is ours (exact or anchored regexp, several entries).
//!
//! Key-based bundles (`publicKey` hint) with a log entry or a timestamp also go through
//! `sigstore-verify` (log and timestamps checked). Key-based bundles with neither — what
//! `model_signing sign key` writes — are checked here: exactly one DSSE signature over the PAE
//! with the trusted key (P-256/SHA-256, P-384/SHA-384, Ed25519), `keyid` ignored, the statement
//! subject bound to the artifact.
//!
//! The result proves what ran, like rustls's `ServerCertVerified`: [`verify_signature`] gives a
//! [`VerifiedSignature`] (signature, certificate, log and time checked; subject not yet bound
//! to anything the caller holds), which becomes a [`BoundBundle`] only through
//! [`VerifiedSignature::bind_files`]; [`verify_bundle`] checks the subject against the caller's
//! artifact and gives a [`BoundBundle`] directly. Only this module builds either, and policy
//! evaluation takes only [`BoundBundle`]s.

use super::error::VerifyError;
use super::keyed;
use super::policy::{SignerPolicy, TrustedKey};
use super::trust::TrustedRoot;
use super::types::{cannot_read, Artifact, BundleKind, Check, CheckName, Signer, VerifyOptions};
use crate::digest::Digest;
use crate::media_types;
use crate::signing::oms::{Comparison, ModelStatement};
use chrono::{DateTime, Utc};
use sigstore_types::bundle::VerificationMaterialContent;
use sigstore_types::{Bundle, SignatureContent};

/// An in-toto statement (v1 or v0.1), parsed from a verified DSSE payload.
pub use crate::intoto::{Statement, Subject};

/// A bundle whose signature verified with a trusted signer (and, where present, whose
/// certificate, transparency log entries and timestamps verified), bound only to its own
/// statement subject: nothing the caller holds is checked yet. Only this module builds it.
#[derive(Clone, Debug)]
pub struct VerifiedSignature {
    media_type: String,
    kind: BundleKind,
    payload: Option<Vec<u8>>,
    message_digest: Option<String>,
    statement: Option<Statement>,
    signer: Signer,
    matched: Vec<usize>,
    signing_time: Option<DateTime<Utc>>,
    checks: Vec<Check>,
}

impl VerifiedSignature {
    pub fn media_type(&self) -> &str {
        &self.media_type
    }
    pub fn kind(&self) -> BundleKind {
        self.kind
    }
    /// The verified DSSE payload bytes (parse them; never compare their text).
    pub fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }
    /// The parsed in-toto statement (DSSE bundles).
    pub fn statement(&self) -> Option<&Statement> {
        self.statement.as_ref()
    }
    pub fn predicate_type(&self) -> Option<&str> {
        self.statement.as_ref().map(|s| s.predicate_type.as_str())
    }
    /// `algorithm:hex` of a message signature's `messageDigest`.
    pub fn message_digest(&self) -> Option<&str> {
        self.message_digest.as_deref()
    }
    pub fn signer(&self) -> &Signer {
        &self.signer
    }
    /// Indices of the [`SignerPolicy`] entries this bundle satisfies.
    pub fn matched_entries(&self) -> &[usize] {
        &self.matched
    }
    /// The earliest verified signing time (SET integrated time or RFC 3161 timestamp); None
    /// for a key-based bundle without log or timestamp.
    pub fn signing_time(&self) -> Option<DateTime<Utc>> {
        self.signing_time
    }
    /// The checks that passed (a [`BoundBundle`]'s include how its subject was bound).
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// The OpenSSF model-signing statement signed here, parsed and checked (its subject is
    /// the root digest of its resources), e.g. to learn the signed ignore paths before hashing
    /// a local model.
    pub fn model_statement(&self) -> Result<ModelStatement, VerifyError> {
        let payload = self.payload().ok_or_else(|| {
            VerifyError::UnsupportedBundle("model-signing bundle has no DSSE payload".into())
        })?;
        Ok(ModelStatement::parse(payload)?)
    }

    /// Bind a model-signing signature to the model's files (path → sha256): the signed
    /// resources must be exactly `files`, and the statement subject is their root digest.
    /// `mismatch` introduces the difference in the error (e.g. "the signed files differ from
    /// the manifest's layers").
    pub fn bind_files<'a>(
        self,
        files: impl IntoIterator<Item = (&'a str, &'a Digest)>,
        mismatch: &str,
    ) -> Result<BoundModel, VerifyError> {
        let statement = self.model_statement()?;
        let comparison = statement.compare(files);
        if !comparison.is_match() {
            return Err(VerifyError::FilesDiffer {
                context: mismatch.to_string(),
                comparison,
            });
        }
        Ok(BoundModel {
            bundle: BoundBundle {
                signature: self,
                binding: Binding::Files,
            },
            statement,
            comparison,
        })
    }
}

/// A bundle that passed every check, its subject included: bound to the caller's artifact
/// ([`verify_bundle`]) or to the model's files ([`VerifiedSignature::bind_files`]). The only
/// input of [`super::evaluate`]. Only this module builds it.
#[derive(Clone, Debug)]
pub struct BoundBundle {
    signature: VerifiedSignature,
    binding: Binding,
}

/// What a [`BoundBundle`]'s signature was checked to cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Binding {
    /// The caller's artifact itself (for a model: the manifest digest, hence its config,
    /// annotations, media types and layer sizes too).
    Artifact,
    /// Only the model's file list (path → sha256), as a model-signing signature does: the
    /// manifest around those files (config, annotations, media types, sizes) is not signed.
    Files,
}

impl BoundBundle {
    /// What the signature covers.
    pub fn binding(&self) -> Binding {
        self.binding
    }
}

impl std::ops::Deref for BoundBundle {
    type Target = VerifiedSignature;
    fn deref(&self) -> &VerifiedSignature {
        &self.signature
    }
}

/// A model-signing signature bound to the model's files, with what it signed.
#[derive(Clone, Debug)]
pub struct BoundModel {
    pub bundle: BoundBundle,
    pub statement: ModelStatement,
    /// The files against the signed resources (all equal).
    pub comparison: Comparison,
}

/// Verify `bundle_json` over `artifact` with the default options (bundle v0.1–v0.3, DSSE or
/// message signature): the signature and a statement subject (or the message) must be the
/// artifact's.
pub fn verify_bundle(
    bundle_json: &[u8],
    artifact: &Artifact,
    policy: &SignerPolicy,
    trust: &TrustedRoot,
) -> Result<BoundBundle, VerifyError> {
    let options = VerifyOptions::default();
    let mut verified = verify(bundle_json, Some(artifact), policy, trust, &options)?;
    let detail = match (&verified.statement, &verified.message_digest) {
        (Some(_), _) => format!("a statement subject matches {artifact}"),
        (None, Some(d)) => format!("messageDigest {d} matches {artifact}"),
        (None, None) => format!("signature covers {artifact}"),
    };
    verified.checks.push(Check::new(CheckName::Subject, detail));
    Ok(BoundBundle {
        signature: verified,
        binding: Binding::Artifact,
    })
}

/// Verify a DSSE bundle's signature, bound to its statement's own first sha256 subject: for
/// bundles whose subject the caller binds itself ([`VerifiedSignature::bind_files`]).
pub fn verify_signature(
    bundle_json: &[u8],
    policy: &SignerPolicy,
    trust: &TrustedRoot,
    options: &VerifyOptions,
) -> Result<VerifiedSignature, VerifyError> {
    verify(bundle_json, None, policy, trust, options)
}

fn verify(
    bundle_json: &[u8],
    artifact: Option<&Artifact>,
    policy: &SignerPolicy,
    trust: &TrustedRoot,
    options: &VerifyOptions,
) -> Result<VerifiedSignature, VerifyError> {
    if policy.is_empty() {
        return Err(VerifyError::EmptyPolicy);
    }
    let (bundle, media_type) = parse_bundle(bundle_json, options)?;

    // DSSE: the statement (checked before any crypto so errors are about the shape).
    let (payload_type, payload, statement) = match &bundle.content {
        SignatureContent::DsseEnvelope(env) => {
            if env.payload_type != media_types::IN_TOTO_PAYLOAD_TYPE {
                return Err(VerifyError::UnsupportedBundle(format!(
                    "DSSE payloadType is {:?}, expected {}",
                    env.payload_type,
                    media_types::IN_TOTO_PAYLOAD_TYPE
                )));
            }
            let statement: Statement =
                serde_json::from_slice(env.payload.as_bytes()).map_err(|e| {
                    VerifyError::MalformedBundle(format!(
                        "DSSE payload is not an in-toto statement: {e}"
                    ))
                })?;
            if statement.subject.is_empty() {
                return Err(VerifyError::MalformedBundle(
                    "in-toto statement has no subject".into(),
                ));
            }
            (
                Some(env.payload_type.clone()),
                Some(env.payload.as_bytes().to_vec()),
                Some(statement),
            )
        }
        SignatureContent::MessageSignature(_) => {
            if options.require_dsse {
                return Err(VerifyError::UnsupportedBundle(
                    "message signature bundle, expected a DSSE envelope with an in-toto statement"
                        .into(),
                ));
            }
            (None, None, None)
        }
        _ => {
            return Err(VerifyError::UnsupportedBundle(
                "neither a DSSE envelope nor a message signature".into(),
            ))
        }
    };
    let message_digest = match &bundle.content {
        SignatureContent::MessageSignature(m) => m.message_digest.as_ref().map(|d| {
            format!(
                "{}:{}",
                hash_name(d.algorithm),
                hex::encode(d.digest.as_bytes())
            )
        }),
        _ => None,
    };

    // The artifact: the caller's, or the statement's own subject.
    let artifact = match artifact {
        Some(a) => a.clone(),
        None => {
            let Some(st) = &statement else {
                return Err(VerifyError::Artifact(
                    "a message signature bundle needs the artifact (file or digest)".into(),
                ));
            };
            let hex = st.subject.iter().find_map(|s| s.sha256()).ok_or_else(|| {
                VerifyError::UnsupportedBundle("statement has no sha256 subject".into())
            })?;
            let digest: Digest = format!("sha256:{hex}").parse().map_err(|_| {
                VerifyError::MalformedBundle(format!(
                    "statement subject sha256 {hex:?} is not 64 lowercase hex"
                ))
            })?;
            Artifact::Digest(digest)
        }
    };

    let mut checks = vec![Check::new(
        CheckName::Bundle,
        format!(
            "{media_type}; {}",
            match &payload_type {
                Some(t) => format!("DSSE envelope, payloadType {t}, one signature"),
                None => "message signature".to_string(),
            }
        ),
    )];

    let keyless = !matches!(
        bundle.verification_material.content,
        VerificationMaterialContent::PublicKey(_)
    );
    let outcome = if keyless {
        if !policy.has_identities() {
            return Err(VerifyError::KindMismatch {
                bundle: "keyless (Fulcio certificate)",
                policy: "public keys",
            });
        }
        verify_keyless(&bundle, &artifact, policy, trust, &mut checks)?
    } else {
        if !policy.has_keys() {
            return Err(VerifyError::KindMismatch {
                bundle: "key-based (public key hint)",
                policy: "keyless identities",
            });
        }
        verify_keyed(&bundle, &artifact, policy, trust, &mut checks)?
    };

    Ok(VerifiedSignature {
        media_type,
        kind: if keyless {
            BundleKind::Keyless
        } else {
            BundleKind::Key
        },
        payload,
        message_digest,
        statement,
        signer: outcome.signer,
        matched: outcome.matched,
        signing_time: outcome.signing_time,
        checks,
    })
}

struct Outcome {
    signer: Signer,
    matched: Vec<usize>,
    signing_time: Option<DateTime<Utc>>,
}

fn parse_bundle(bytes: &[u8], options: &VerifyOptions) -> Result<(Bundle, String), VerifyError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| VerifyError::MalformedBundle("not UTF-8 JSON".into()))?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| VerifyError::MalformedBundle(format!("not JSON: {e}")))?;
    let media_type = value
        .get("mediaType")
        .and_then(|m| m.as_str())
        .ok_or_else(|| VerifyError::MalformedBundle("no mediaType: not a Sigstore bundle".into()))?
        .to_string();
    const ACCEPTED: [&str; 4] = [
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        media_types::SIGSTORE_BUNDLE_V03,
    ];
    if options.require_v03 && media_type != media_types::SIGSTORE_BUNDLE_V03 {
        return Err(VerifyError::UnsupportedMediaType {
            found: media_type,
            expected: media_types::SIGSTORE_BUNDLE_V03.to_string(),
        });
    }
    if !ACCEPTED.contains(&media_type.as_str()) {
        return Err(VerifyError::UnsupportedMediaType {
            found: media_type,
            expected: "a Sigstore bundle v0.1, v0.2 or v0.3".to_string(),
        });
    }
    let bundle =
        Bundle::from_json(text).map_err(|e| VerifyError::MalformedBundle(e.to_string()))?;
    Ok((bundle, media_type))
}

fn hash_name(a: sigstore_types::HashAlgorithm) -> &'static str {
    match a {
        sigstore_types::HashAlgorithm::Sha2256 => "sha256",
        sigstore_types::HashAlgorithm::Sha2384 => "sha384",
        sigstore_types::HashAlgorithm::Sha2512 => "sha512",
        _ => "unknown",
    }
}

fn to_chrono(secs: i64, nanos: i32) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(secs, nanos.max(0) as u32)
}

/// Run `sigstore-verify` with the artifact in the form it needs.
fn run_sigstore(
    trust: &TrustedRoot,
    bundle: &Bundle,
    artifact: &Artifact,
    policy: &(impl sigstore_verify::Policy + ?Sized),
    whole_message: bool,
) -> Result<sigstore_verify::VerificationResult, VerifyError> {
    let verifier = trust.verifier();
    let result = match artifact {
        Artifact::Bytes(b) => verifier.verify(b.as_slice(), bundle, policy),
        Artifact::Digest(d) => {
            let hash = sigstore_types::Sha256Hash::from_hex(d.hex())
                .map_err(|e| VerifyError::Artifact(e.to_string()))?;
            verifier.verify(hash, bundle, policy)
        }
        Artifact::File(_) if whole_message => verifier.verify(
            artifact.whole_message("Ed25519")?.as_slice(),
            bundle,
            policy,
        ),
        Artifact::File(path) => {
            let file = std::fs::File::open(path).map_err(cannot_read(path))?;
            verifier.verify_reader(std::io::BufReader::new(file), bundle, policy)
        }
    };
    result.map_err(VerifyError::from_sigstore)
}

fn verify_keyless(
    bundle: &Bundle,
    artifact: &Artifact,
    policy: &SignerPolicy,
    trust: &TrustedRoot,
    checks: &mut Vec<Check>,
) -> Result<Outcome, VerifyError> {
    // Ed25519 certificate keys cannot verify a message signature from a digest/stream.
    let whole_message = matches!(bundle.content, SignatureContent::MessageSignature(_))
        && bundle
            .signing_certificate()
            .and_then(|c| sigstore_crypto::parse_certificate_info(c).ok())
            .is_some_and(|i| i.key_algorithm == sigstore_crypto::KeyAlgorithm::Ed25519);
    let result = run_sigstore(
        trust,
        bundle,
        artifact,
        &sigstore_verify::VerificationPolicy::any_identity(),
        whole_message,
    )?;
    // Fail closed if a future sigstore-verify relaxes a default.
    if !(result.certificate_verified() && result.sct_verified() && result.tlog_verified()) {
        return Err(VerifyError::Failed(format!(
            "incomplete keyless verification (certificate {}, SCT {}, transparency log {})",
            result.certificate_verified(),
            result.sct_verified(),
            result.tlog_verified()
        )));
    }
    let san = result
        .identity()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let issuer = result.issuer().unwrap_or_default().to_string();
    let times: Vec<DateTime<Utc>> = result
        .verified_timestamps()
        .iter()
        .filter_map(|t| to_chrono(t.as_second(), t.subsec_nanosecond()))
        .collect();
    let earliest = times.iter().min().copied();
    let fmt_times = times
        .iter()
        .map(|t| t.to_rfc3339())
        .collect::<Vec<_>>()
        .join(", ");

    checks.push(Check::new(
        CheckName::CertificateChain,
        format!(
            "signing certificate chains to a Fulcio CA of the trusted root ({}), has the code-signing usage and is valid at every verified signing time ({fmt_times})",
            trust.source()
        ),
    ));
    checks.push(Check::new(
        CheckName::CertificateSct,
        "embedded signed certificate timestamp verified with a CT log key of the trusted root",
    ));

    // Identity and issuer: ours (exact or anchored regexp, any entry).
    let matched: Vec<usize> = policy
        .identities()
        .filter(|(_, r)| r.identity.matches(&san) && r.issuer.matches(&issuer))
        .map(|(i, _)| i)
        .collect();
    if matched.is_empty() {
        if let Some((_, r)) = policy.identities().find(|(_, r)| r.identity.matches(&san)) {
            return Err(VerifyError::IssuerMismatch {
                identity: san,
                expected: r.issuer.to_string(),
                got: issuer,
            });
        }
        let expected = policy
            .identities()
            .map(|(_, r)| r.identity.to_string())
            .collect::<Vec<_>>()
            .join(" or ");
        return Err(VerifyError::IdentityMismatch { expected, got: san });
    }
    checks.push(Check::new(
        CheckName::Identity,
        format!(
            "certificate SAN {san:?} and OIDC issuer {issuer:?} match {}",
            matched
                .iter()
                .map(|i| format!(
                    "policy entry #{}: {}",
                    i + 1,
                    policy.entries()[*i].describe()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    ));
    tlog_checks(bundle, trust, checks);
    timestamp_check(bundle, earliest, checks);
    checks.push(Check::new(
        CheckName::Signature,
        match bundle.content {
            SignatureContent::DsseEnvelope(_) => {
                "DSSE signature over the PAE verifies with the certificate's key"
            }
            _ => "signature over the artifact verifies with the certificate's key",
        },
    ));
    Ok(Outcome {
        signer: Signer::Identity {
            identity: san,
            issuer,
        },
        matched,
        signing_time: earliest,
    })
}

fn tlog_checks(bundle: &Bundle, trust: &TrustedRoot, checks: &mut Vec<Check>) {
    for e in &bundle.verification_material.tlog_entries {
        let log = trust
            .tlog_url(&e.log_id.key_id.to_string())
            .unwrap_or("a log of the trusted root")
            .to_string();
        let mut what = Vec::new();
        if e.inclusion_proof.is_some() {
            what.push("inclusion proof and signed checkpoint");
        }
        if e.inclusion_promise.is_some() {
            what.push("signed entry timestamp (SET)");
        }
        what.push("entry matches the bundle");
        checks.push(Check::new(
            CheckName::TransparencyLog,
            format!(
                "{} {} entry at index {} in {log}: {} verified",
                e.kind_version.kind(),
                e.kind_version.version(),
                e.log_index.get(),
                what.join(", ")
            ),
        ));
    }
}

fn timestamp_check(bundle: &Bundle, earliest: Option<DateTime<Utc>>, checks: &mut Vec<Check>) {
    let tsa = bundle
        .verification_material
        .timestamp_verification_data
        .rfc3161_timestamps
        .len();
    let set = bundle
        .verification_material
        .tlog_entries
        .iter()
        .any(|e| e.inclusion_promise.is_some() && e.integrated_time.is_some());
    let mut sources = Vec::new();
    if tsa > 0 {
        sources.push(format!(
            "{tsa} RFC 3161 timestamp(s) verified against the trusted TSAs"
        ));
    }
    if set {
        sources.push("log integrated time (covered by the SET)".to_string());
    }
    if let Some(t) = earliest {
        checks.push(Check::new(
            CheckName::SigningTime,
            format!("{} from {}", t.to_rfc3339(), sources.join(" and ")),
        ));
    }
}

fn verify_keyed(
    bundle: &Bundle,
    artifact: &Artifact,
    policy: &SignerPolicy,
    trust: &TrustedRoot,
    checks: &mut Vec<Check>,
) -> Result<Outcome, VerifyError> {
    let hint = match &bundle.verification_material.content {
        VerificationMaterialContent::PublicKey(p) => p.hint.clone(),
        _ => String::new(),
    };
    let has_log = !bundle.verification_material.tlog_entries.is_empty();
    let has_tsa = !bundle
        .verification_material
        .timestamp_verification_data
        .rfc3161_timestamps
        .is_empty();

    // Try the key whose hint matches first (the hint is not trusted, only a lookup aid).
    let mut keys: Vec<(usize, &TrustedKey)> = policy.keys().collect();
    keys.sort_by_key(|(_, k)| k.hint != hint);

    let mut matched = Vec::new();
    let mut first_ok: Option<(&TrustedKey, Option<DateTime<Utc>>)> = None;
    let mut errors: Vec<(&TrustedKey, VerifyError)> = Vec::new();
    for (index, key) in keys {
        let result = if has_log || has_tsa {
            let mut p = sigstore_verify::PublicKeyVerificationPolicy::new(key.der.clone());
            if !has_log {
                p = p.skip_tlog_unsafe();
            }
            let whole = matches!(bundle.content, SignatureContent::MessageSignature(_))
                && key.algorithm == sigstore_crypto::KeyAlgorithm::Ed25519;
            run_sigstore(trust, bundle, artifact, &p, whole).map(|r| {
                r.verified_timestamps()
                    .iter()
                    .filter_map(|t| to_chrono(t.as_second(), t.subsec_nanosecond()))
                    .min()
            })
        } else {
            keyed::verify_without_log(bundle, key, artifact).map(|()| None)
        };
        match result {
            Ok(time) => {
                matched.push(index);
                if first_ok.is_none() {
                    first_ok = Some((key, time));
                }
            }
            Err(e) => errors.push((key, e)),
        }
    }
    matched.sort_unstable();

    let Some((key, signing_time)) = first_ok else {
        // One key, or the hinted key: its own reason. Else: none of them.
        if errors.len() == 1 || errors.first().is_some_and(|(k, _)| k.hint == hint) {
            let (k, e) = errors.swap_remove(0);
            // Name the key the signature says it was made with, so "wrong key" reads as such.
            let made_with = if hint.is_empty() {
                "the bundle names no key hint".to_string()
            } else if hint == k.hint {
                "the bundle's key hint is this key's: the signature or what it signs was altered"
                    .to_string()
            } else {
                format!("the bundle says it was signed with a different key, hint {hint}")
            };
            return Err(match e {
                VerifyError::SignatureInvalid(d) => VerifyError::SignatureInvalid(format!(
                    "{d} (with key {}, hint {}; {made_with})",
                    k.name, k.hint
                )),
                other => other,
            });
        }
        return Err(VerifyError::NoTrustedKey {
            tried: errors
                .iter()
                .map(|(k, _)| k.name.clone())
                .collect::<Vec<_>>()
                .join(", "),
            hint,
        });
    };

    checks.push(Check::new(
        CheckName::Key,
        format!(
            "signature verifies with trusted {} key {} (hint {}){}",
            key.algorithm_name(),
            key.name,
            key.hint,
            if matched.len() > 1 {
                format!(
                    ", policy entries {:?}",
                    matched.iter().map(|i| i + 1).collect::<Vec<_>>()
                )
            } else {
                format!(", policy entry #{}", matched[0] + 1)
            }
        ),
    ));
    if has_log {
        tlog_checks(bundle, trust, checks);
    } else {
        checks.push(Check::new(
            CheckName::TransparencyLog,
            "none: key-based bundle without a log entry (the trusted key is the root of trust)",
        ));
    }
    timestamp_check(bundle, signing_time, checks);
    checks.push(Check::new(
        CheckName::Signature,
        match bundle.content {
            SignatureContent::DsseEnvelope(_) => {
                "DSSE signature over the PAE verifies (keyid ignored)"
            }
            _ => "signature over the artifact verifies",
        },
    ));
    Ok(Outcome {
        signer: Signer::Key {
            name: key.name.clone(),
            hint: key.hint.clone(),
            key_id: key.key_id.clone(),
            algorithm: key.algorithm_name().to_string(),
        },
        matched,
        signing_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::testutil::{key_bundle, statement, Alg, TestKey};
    use crate::verify::Matcher;
    use sha2::{Digest as _, Sha256, Sha384};

    fn root() -> TrustedRoot {
        TrustedRoot::production().unwrap()
    }

    fn artifact() -> (Vec<u8>, String) {
        let bytes = b"model weights".to_vec();
        let hex = hex::encode(Sha256::digest(&bytes));
        (bytes, hex)
    }

    #[test]
    fn key_bundles_without_log_verify_for_every_key_type() {
        let (bytes, hex) = artifact();
        for alg in [Alg::P256, Alg::P384, Alg::Ed25519] {
            let key = TestKey::new(alg);
            let b = key_bundle(
                &key,
                &statement(&hex, "https://example/p"),
                media_types::SIGSTORE_BUNDLE_V03,
            );
            let policy = SignerPolicy::new().with_key(key.trusted("k.pub"));
            for a in [
                Artifact::Bytes(bytes.clone()),
                Artifact::Digest(format!("sha256:{hex}").parse().unwrap()),
            ] {
                let v = verify_bundle(&b, &a, &policy, &root()).unwrap();
                assert_eq!(v.kind(), BundleKind::Key);
                assert_eq!(v.matched_entries(), &[0]);
                assert_eq!(v.predicate_type(), Some("https://example/p"));
                assert!(v.signing_time().is_none());
                assert!(matches!(v.signer(), Signer::Key { hint, .. } if *hint == key.hint()));
                assert!(v.checks().iter().any(|c| c.name == CheckName::Subject));
            }
            // Signature only: bound to the statement's own subject, no subject check yet.
            let v = verify_signature(&b, &policy, &root(), &VerifyOptions::oms()).unwrap();
            assert!(v.checks().iter().all(|c| c.name != CheckName::Subject));
        }
    }

    #[test]
    fn key_bundle_failures_name_the_reason() {
        let (bytes, hex) = artifact();
        let key = TestKey::new(Alg::P256);
        let other = TestKey::new(Alg::P256);
        let good = key_bundle(
            &key,
            &statement(&hex, "p"),
            media_types::SIGSTORE_BUNDLE_V03,
        );
        let policy = SignerPolicy::new().with_key(key.trusted("k.pub"));
        let a = Artifact::Bytes(bytes.clone());

        // Wrong key.
        let err = verify_bundle(
            &good,
            &a,
            &SignerPolicy::new().with_key(other.trusted("o.pub")),
            &root(),
        )
        .unwrap_err();
        assert!(
            matches!(err, VerifyError::SignatureInvalid(ref d) if d.contains("o.pub")),
            "{err}"
        );
        // Several wrong keys: none verifies.
        let err = verify_bundle(
            &good,
            &a,
            &SignerPolicy::new()
                .with_key(other.trusted("o.pub"))
                .with_key(TestKey::new(Alg::P384).trusted("p.pub")),
            &root(),
        )
        .unwrap_err();
        assert!(matches!(err, VerifyError::NoTrustedKey { .. }), "{err}");
        // Other artifact.
        let err = verify_bundle(&good, &Artifact::Bytes(b"other".to_vec()), &policy, &root())
            .unwrap_err();
        assert!(matches!(err, VerifyError::SubjectMismatch(_)), "{err}");
        // Tampered payload (signature over the original).
        let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        use base64::Engine as _;
        v["dsseEnvelope"]["payload"] = b64.encode(statement(&hex, "q")).into();
        let err =
            verify_bundle(&serde_json::to_vec(&v).unwrap(), &a, &policy, &root()).unwrap_err();
        assert!(matches!(err, VerifyError::SignatureInvalid(_)), "{err}");
        // Two signatures.
        let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        let sig = v["dsseEnvelope"]["signatures"][0].clone();
        v["dsseEnvelope"]["signatures"] = serde_json::json!([sig.clone(), sig]);
        let err =
            verify_bundle(&serde_json::to_vec(&v).unwrap(), &a, &policy, &root()).unwrap_err();
        assert!(
            matches!(err, VerifyError::MalformedBundle(ref d) if d.contains("exactly one signature")),
            "{err}"
        );
        // Other payload type.
        let mut v: serde_json::Value = serde_json::from_slice(&good).unwrap();
        v["dsseEnvelope"]["payloadType"] = "application/json".into();
        let err =
            verify_bundle(&serde_json::to_vec(&v).unwrap(), &a, &policy, &root()).unwrap_err();
        assert!(matches!(err, VerifyError::UnsupportedBundle(_)), "{err}");
        // v0.2 media type: fine generically, refused for model-signing.
        let v02 = key_bundle(
            &key,
            &statement(&hex, "p"),
            media_types::SIGSTORE_BUNDLE_V02,
        );
        let err = verify_signature(&v02, &policy, &root(), &VerifyOptions::oms()).unwrap_err();
        assert!(
            matches!(err, VerifyError::UnsupportedMediaType { .. }),
            "{err}"
        );
        // Not JSON, no media type.
        assert!(matches!(
            verify_bundle(b"{", &a, &policy, &root()),
            Err(VerifyError::MalformedBundle(_))
        ));
        assert!(matches!(
            verify_bundle(b"{}", &a, &policy, &root()),
            Err(VerifyError::MalformedBundle(_))
        ));
        // A key bundle never passes an identity-only policy.
        let ids =
            SignerPolicy::new().with_identity(Matcher::exact("a@b"), Matcher::exact("https://i"));
        let err = verify_bundle(&good, &a, &ids, &root()).unwrap_err();
        assert!(matches!(err, VerifyError::KindMismatch { .. }), "{err}");
        // Empty policy.
        assert!(matches!(
            verify_bundle(&good, &a, &SignerPolicy::new(), &root()),
            Err(VerifyError::EmptyPolicy)
        ));
    }

    #[test]
    fn file_artifacts_are_streamed_and_checked() {
        let (bytes, hex) = artifact();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        std::fs::write(&path, &bytes).unwrap();
        let key = TestKey::new(Alg::P384);
        let b = key_bundle(
            &key,
            &statement(&hex, "p"),
            media_types::SIGSTORE_BUNDLE_V03,
        );
        let policy = SignerPolicy::new().with_key(key.trusted("k.pub"));
        verify_bundle(&b, &Artifact::File(path.clone()), &policy, &root()).unwrap();
        std::fs::write(&path, b"changed").unwrap();
        let err = verify_bundle(&b, &Artifact::File(path), &policy, &root()).unwrap_err();
        assert!(matches!(err, VerifyError::SubjectMismatch(_)), "{err}");
    }

    #[test]
    fn key_message_signature_without_log_verifies_over_the_artifact() {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let (bytes, _) = artifact();
        for (alg, digest_alg, digest) in [
            (Alg::P256, "SHA2_256", Sha256::digest(&bytes).to_vec()),
            (Alg::P384, "SHA2_384", Sha384::digest(&bytes).to_vec()),
            (Alg::Ed25519, "SHA2_256", Sha256::digest(&bytes).to_vec()),
        ] {
            let key = TestKey::new(alg);
            let bundle = serde_json::to_vec(&serde_json::json!({
                "mediaType": media_types::SIGSTORE_BUNDLE_V03,
                "verificationMaterial": {"publicKey": {"hint": key.hint()}},
                "messageSignature": {
                    "messageDigest": {"algorithm": digest_alg, "digest": b64.encode(&digest)},
                    "signature": b64.encode(key.sign(&bytes)),
                },
            }))
            .unwrap();
            let policy = SignerPolicy::new().with_key(key.trusted("k.pub"));
            let v =
                verify_bundle(&bundle, &Artifact::Bytes(bytes.clone()), &policy, &root()).unwrap();
            assert!(v.message_digest().is_some());
            assert!(v.statement().is_none());
            let err = verify_bundle(&bundle, &Artifact::Bytes(b"x".to_vec()), &policy, &root())
                .unwrap_err();
            assert!(matches!(err, VerifyError::SubjectMismatch(_)), "{err}");
            // Model-signing strictness refuses message signatures.
            let err =
                verify_signature(&bundle, &policy, &root(), &VerifyOptions::oms()).unwrap_err();
            assert!(matches!(err, VerifyError::UnsupportedBundle(_)), "{err}");
        }
    }
}
