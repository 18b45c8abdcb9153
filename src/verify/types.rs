//! The vocabulary every verification module shares: what was signed ([`Artifact`]), how
//! strictly to read bundles ([`VerifyOptions`]), who signed ([`Signer`], [`BundleKind`]) and
//! the checks a report lists ([`Check`], [`CheckName`]). A leaf: it imports no other verify
//! module but the error type.

use super::error::VerifyError;
use crate::digest::Digest;
use crate::untrusted::Untrusted;
use serde::Serialize;
use sha2::{Digest as _, Sha256, Sha384};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The signed artifact.
#[derive(Clone, Debug)]
pub enum Artifact {
    /// The artifact's bytes.
    Bytes(Vec<u8>),
    /// A file, streamed (never read whole, except for an Ed25519 message signature).
    File(PathBuf),
    /// Its sha256 digest (for DSSE bundles: must equal a statement subject's digest).
    Digest(Digest),
}

impl Artifact {
    /// The whole artifact in memory, for a scheme that signs the message itself (Ed25519).
    pub(crate) fn whole_message(&self, scheme: &str) -> Result<Vec<u8>, VerifyError> {
        match self {
            Artifact::Bytes(b) => Ok(b.clone()),
            Artifact::File(p) => std::fs::read(p).map_err(cannot_read(p)),
            Artifact::Digest(_) => Err(VerifyError::Artifact(format!(
                "{scheme} signs the whole message: give the artifact file, not its digest"
            ))),
        }
    }
}

/// The error for an artifact file that cannot be read.
pub(crate) fn cannot_read(path: &Path) -> impl Fn(std::io::Error) -> VerifyError + Copy + '_ {
    move |e| VerifyError::Artifact(format!("cannot read {}: {e}", path.display()))
}

impl std::fmt::Display for Artifact {
    /// How a subject check names the artifact.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Artifact::Bytes(b) => write!(f, "sha256:{}", hex::encode(Sha256::digest(b))),
            Artifact::Digest(d) => write!(f, "{d}"),
            Artifact::File(p) => write!(f, "the file {}", p.display()),
        }
    }
}

/// Strictness switches on top of the Sigstore rules.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// Accept only `application/vnd.dev.sigstore.bundle.v0.3+json` (model-signing bundles).
    pub require_v03: bool,
    /// Accept only DSSE envelopes with an in-toto statement (no message signatures).
    pub require_dsse: bool,
}

impl VerifyOptions {
    /// OpenSSF model-signing: bundle v0.3, DSSE in-toto only.
    pub fn oms() -> Self {
        VerifyOptions {
            require_v03: true,
            require_dsse: true,
        }
    }
}

/// One table: each check's variant and the name reports print and serialise.
macro_rules! check_names {
    ($($variant:ident => $name:literal,)*) => {
        /// What a [`Check`] checked. Serialises (and prints) as the names reports have always
        /// used.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum CheckName {
            $($variant,)*
        }

        impl CheckName {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(CheckName::$variant => $name,)*
                }
            }
        }
    };
}

check_names! {
    Bundle => "bundle",
    Key => "key",
    CertificateChain => "certificate chain",
    CertificateSct => "certificate SCT",
    Identity => "identity",
    TransparencyLog => "transparency log",
    SigningTime => "signing time",
    Signature => "signature",
    // The signed subject is the caller's artifact (digest, bytes or file).
    Subject => "subject",
    // Model-signing resources against the manifest's layers (verify) or the local files
    // and statement (verify-local).
    Resources => "resources",
    Statement => "statement",
    Files => "files",
    ReferrerSubject => "referrer subject",
    Manifest => "manifest",
    Referrers => "referrers",
}

impl std::fmt::Display for CheckName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for CheckName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A check performed, for reports.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Check {
    pub name: CheckName,
    pub detail: String,
}

impl Check {
    pub fn new(name: CheckName, detail: impl Into<String>) -> Self {
        Check {
            name,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Check {
    /// A passed check as reports print it (the detail escaped: it quotes bundle contents).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "✓ {}: {}", self.name, Untrusted(&self.detail))
    }
}

/// Keyless (Fulcio certificate) or key-based (public key hint).
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum BundleKind {
    Keyless,
    Key,
}

/// Who signed: the trusted key, or the certificate identity and issuer.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Signer {
    #[serde(rename_all = "camelCase")]
    Key {
        /// The key file (first trusted key that verified).
        name: String,
        /// hex sha256 of its PEM bytes.
        hint: String,
        /// hex sha256 of its DER SubjectPublicKeyInfo.
        key_id: String,
        algorithm: String,
    },
    #[serde(rename_all = "camelCase")]
    Identity { identity: String, issuer: String },
}

impl Signer {
    /// The same signer has the same id (keys by DER, identities by SAN + issuer).
    pub fn distinct_id(&self) -> String {
        match self {
            Signer::Key { key_id, .. } => format!("key:{key_id}"),
            Signer::Identity { identity, issuer } => format!("identity:{identity}\n{issuer}"),
        }
    }
}

impl std::fmt::Display for Signer {
    /// Names from a certificate are escaped (see [`crate::untrusted`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Signer::Key { name, hint, .. } => write!(f, "key {} (hint {hint})", Untrusted(name)),
            Signer::Identity { identity, issuer } => {
                write!(f, "{} (issuer {})", Untrusted(identity), Untrusted(issuer))
            }
        }
    }
}

/// sha256 and sha384 of an artifact given as bytes or a file (one streamed pass).
pub(crate) struct ArtifactDigests {
    pub sha256: [u8; 32],
    pub sha384: Option<Vec<u8>>,
}

pub(crate) fn digest_artifact(artifact: &Artifact) -> Result<ArtifactDigests, VerifyError> {
    match artifact {
        Artifact::Digest(d) => Ok(ArtifactDigests {
            sha256: d.raw(),
            sha384: None,
        }),
        Artifact::Bytes(b) => Ok(ArtifactDigests {
            sha256: Sha256::digest(b).into(),
            sha384: Some(Sha384::digest(b).to_vec()),
        }),
        Artifact::File(path) => {
            let err = cannot_read(path);
            let mut file = std::fs::File::open(path).map_err(err)?;
            let (mut a, mut b) = (Sha256::new(), Sha384::new());
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buf).map_err(err)?;
                if n == 0 {
                    break;
                }
                a.update(&buf[..n]);
                b.update(&buf[..n]);
            }
            Ok(ArtifactDigests {
                sha256: a.finalize().into(),
                sha384: Some(b.finalize().to_vec()),
            })
        }
    }
}

/// The canonical PEM of a DER SubjectPublicKeyInfo: what OpenSSL and Python `cryptography`
/// write, and what model_signing hashes for `publicKey.hint`.
pub fn canonical_pem(spki_der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(spki_der);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}
