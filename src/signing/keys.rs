//! Signing keys: load PEM private keys (PKCS#8, encrypted PKCS#8 with PBES2, SEC1 "EC PRIVATE
//! KEY") and SPKI public keys, generate key pairs, sign.
//!
//! Supported: ECDSA P-256 (SHA-256), P-384 (SHA-384), P-521 (SHA-512) and Ed25519. ECDSA
//! signatures are ASN.1 DER, as the OpenSSF `model_signing` tool and Sigstore expect.
//!
//! The key hint written into Sigstore bundles (`verificationMaterial.publicKey.hint`) is the hex
//! sha256 of the public key's canonical PEM encoding (`-----BEGIN PUBLIC KEY-----`, 64-column
//! base64, LF line ends): exactly what `model_signing` computes with
//! `public_bytes(PEM, SubjectPublicKeyInfo)`. For a PEM file written by any usual tool this is
//! the file's bytes; a file with extra text around the PEM block still gets the canonical hint.

use crate::secret::Secret;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use pkcs8::der::pem::LineEnding;
use pkcs8::der::zeroize::Zeroizing;
use pkcs8::der::Decode as _;
use pkcs8::ObjectIdentifier;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::path::Path;

/// Largest key file read (a PEM key is a few hundred bytes).
const MAX_KEY_FILE: u64 = 64 * 1024;
/// PBKDF2-HMAC-SHA256 iterations for newly written encrypted keys (OWASP 2023 guidance).
pub const PBKDF2_ITERATIONS: u32 = 600_000;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_P521: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_ED448: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.113");
const OID_DSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10040.4.1");

/// The key algorithms oci-model signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// ECDSA on NIST P-256 with SHA-256 (the default; `model_signing` interoperable).
    P256,
    /// ECDSA on NIST P-384 with SHA-384 (`model_signing` interoperable).
    P384,
    /// ECDSA on NIST P-521 with SHA-512 (`model_signing` interoperable; load only).
    P521,
    /// Ed25519 (PureEdDSA over the DSSE PAE). Not supported by `model_signing` 1.1.
    Ed25519,
}

impl KeyKind {
    /// Human name, e.g. "ECDSA P-256".
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::P256 => "ECDSA P-256",
            KeyKind::P384 => "ECDSA P-384",
            KeyKind::P521 => "ECDSA P-521",
            KeyKind::Ed25519 => "Ed25519",
        }
    }

    /// Short identifier used in JSON output: `p256`, `p384`, `p521`, `ed25519`.
    pub fn id(self) -> &'static str {
        match self {
            KeyKind::P256 => "p256",
            KeyKind::P384 => "p384",
            KeyKind::P521 => "p521",
            KeyKind::Ed25519 => "ed25519",
        }
    }

    /// Whether the OpenSSF `model_signing` 1.x tool can verify signatures made with this key.
    pub fn model_signing_compatible(self) -> bool {
        !matches!(self, KeyKind::Ed25519)
    }

    fn ecdsa_signing(self) -> Option<&'static sig::EcdsaSigningAlgorithm> {
        match self {
            KeyKind::P256 => Some(&sig::ECDSA_P256_SHA256_ASN1_SIGNING),
            KeyKind::P384 => Some(&sig::ECDSA_P384_SHA384_ASN1_SIGNING),
            KeyKind::P521 => Some(&sig::ECDSA_P521_SHA512_ASN1_SIGNING),
            KeyKind::Ed25519 => None,
        }
    }

    /// The aws-lc-rs verification algorithm for signatures made with this key kind.
    pub fn verification_algorithm(self) -> &'static dyn sig::VerificationAlgorithm {
        match self {
            KeyKind::P256 => &sig::ECDSA_P256_SHA256_ASN1,
            KeyKind::P384 => &sig::ECDSA_P384_SHA384_ASN1,
            KeyKind::P521 => &sig::ECDSA_P521_SHA512_ASN1,
            KeyKind::Ed25519 => &sig::ED25519,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a key could not be loaded, generated or used. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file} is not a PEM private key{detail}")]
    NotPrivateKey { file: String, detail: String },
    #[error("{file} is not a PEM public key{detail}")]
    NotPublicKey { file: String, detail: String },
    #[error("{file} is encrypted: a password is needed (set OCI_MODEL_PASSWORD or run in a terminal to be asked)")]
    PasswordRequired { file: String },
    #[error("wrong password for {file}")]
    WrongPassword { file: String },
    #[error(
        "unsupported key type in {file}: {kind} (supported: ECDSA P-256, P-384, P-521, Ed25519)"
    )]
    Unsupported { file: String, kind: String },
    #[error("unsupported private key encryption in {file}: {detail}")]
    UnsupportedEncryption { file: String, detail: String },
    #[error("invalid {kind} key in {file}: {detail}")]
    Invalid {
        file: String,
        kind: String,
        detail: String,
    },
    #[error("{what} failed")]
    Crypto { what: String },
}

impl KeyError {
    /// `file` is not a PEM private key; `detail` (from a space, or empty) says why.
    fn not_private(file: &str, detail: String) -> Self {
        KeyError::NotPrivateKey {
            file: file.to_string(),
            detail,
        }
    }
    /// `file` is not a PEM public key; `detail` (from a space, or empty) says why.
    fn not_public(file: &str, detail: String) -> Self {
        KeyError::NotPublicKey {
            file: file.to_string(),
            detail,
        }
    }
    /// Every key problem is the caller's input (a key file, a password).
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Input
    }
}

/// A PEM block: its label, `Key: value` headers, and the decoded bytes.
struct PemBlock {
    label: String,
    headers: Vec<String>,
    der: Zeroizing<Vec<u8>>,
}

/// Find the PEM blocks in `text`, tolerating text around them (as OpenSSL and Python's
/// `cryptography` do). A block whose base64 does not decode is reported as an error.
fn pem_blocks(text: &str) -> Result<Vec<PemBlock>, String> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut headers = Vec::new();
        let mut body = Zeroizing::new(String::new());
        let mut closed = false;
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if line.contains(':') {
                headers.push(line.to_string());
            } else {
                body.push_str(line);
            }
        }
        if !closed {
            return Err(format!(" (no \"{end}\" line)"));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| format!(" (the {label} block is not valid base64: {e})"))?;
        blocks.push(PemBlock {
            label: label.to_string(),
            headers,
            der: Zeroizing::new(der),
        });
    }
    Ok(blocks)
}

fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    use std::io::Read as _;
    let file = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|source| KeyError::Read {
        file: file.clone(),
        source,
    })?;
    let mut bytes = Zeroizing::new(Vec::new());
    f.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| KeyError::Read {
            file: file.clone(),
            source,
        })?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(KeyError::NotPrivateKey {
            file,
            detail: format!(" (larger than {MAX_KEY_FILE} bytes)"),
        });
    }
    Ok(bytes)
}

/// The key kind an algorithm identifier names; `malformed` words the error for an identifier
/// that cannot be read (a public or a private key's).
fn key_kind(
    algorithm: &spki::AlgorithmIdentifierRef<'_>,
    source: &str,
    malformed: impl FnOnce(String) -> KeyError,
) -> Result<KeyKind, KeyError> {
    let (oid, params) = algorithm
        .oids()
        .map_err(|e| malformed(format!(" (malformed algorithm identifier: {e})")))?;
    kind_from_algorithm(oid, params).map_err(|kind| KeyError::Unsupported {
        file: source.to_string(),
        kind,
    })
}

fn kind_from_algorithm(
    oid: ObjectIdentifier,
    params: Option<ObjectIdentifier>,
) -> Result<KeyKind, String> {
    match (oid, params) {
        (OID_EC_PUBLIC_KEY, Some(OID_P256)) => Ok(KeyKind::P256),
        (OID_EC_PUBLIC_KEY, Some(OID_P384)) => Ok(KeyKind::P384),
        (OID_EC_PUBLIC_KEY, Some(OID_P521)) => Ok(KeyKind::P521),
        (OID_EC_PUBLIC_KEY, Some(curve)) => Err(format!("ECDSA on curve {curve}")),
        (OID_EC_PUBLIC_KEY, None) => Err("ECDSA with explicit curve parameters".into()),
        (OID_ED25519, _) => Ok(KeyKind::Ed25519),
        (OID_RSA, _) | (OID_RSA_PSS, _) => Err("RSA".into()),
        (OID_ED448, _) => Err("Ed448".into()),
        (OID_DSA, _) => Err("DSA".into()),
        (other, _) => Err(format!("algorithm {other}")),
    }
}

/// A public key (SubjectPublicKeyInfo) of a supported kind.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    kind: KeyKind,
    spki_der: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, hint {})", self.kind, self.hint())
    }
}

impl PublicKey {
    /// Load a PEM public key (`-----BEGIN PUBLIC KEY-----`, SPKI) from a file.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = read_key_file(path).map_err(|e| match e {
            KeyError::NotPrivateKey { file, detail } => KeyError::NotPublicKey { file, detail },
            other => other,
        })?;
        Self::from_pem(&bytes, &path.display().to_string())
    }

    /// Parse a PEM public key; `source` names it in errors.
    pub fn from_pem(bytes: &[u8], source: &str) -> Result<Self, KeyError> {
        let not_public = |detail: String| KeyError::not_public(source, detail);
        let text = std::str::from_utf8(bytes).map_err(|_| not_public(" (not text)".into()))?;
        let blocks = pem_blocks(text).map_err(not_public)?;
        let Some(block) = blocks.into_iter().find(|b| b.label == "PUBLIC KEY") else {
            let detail = if text.contains("PRIVATE KEY-----") {
                " (it holds a private key: pass the public key)".to_string()
            } else if text.contains("-----BEGIN CERTIFICATE-----") {
                " (it holds a certificate, not a PUBLIC KEY block)".to_string()
            } else {
                " (no \"-----BEGIN PUBLIC KEY-----\" block)".to_string()
            };
            return Err(not_public(detail));
        };
        Self::from_spki_der(&block.der, source)
    }

    /// Parse a DER SubjectPublicKeyInfo; `source` names it in errors.
    pub fn from_spki_der(der: &[u8], source: &str) -> Result<Self, KeyError> {
        let not_public = |detail: String| KeyError::not_public(source, detail);
        let spki = spki::SubjectPublicKeyInfoRef::from_der(der)
            .map_err(|e| not_public(format!(" (malformed SubjectPublicKeyInfo: {e})")))?;
        let kind = key_kind(&spki.algorithm, source, not_public)?;
        let key = PublicKey {
            kind,
            spki_der: der.to_vec(),
        };
        // Reject points that are not on the curve now rather than at verification time.
        let raw = key.raw_bytes();
        let valid = match kind {
            KeyKind::Ed25519 => raw.len() == 32,
            _ => {
                // An uncompressed point is 0x04 || X || Y.
                let expected = 1 + 2 * alg_field_len(kind);
                raw.len() == expected && raw.first() == Some(&4)
            }
        };
        if !valid {
            return Err(KeyError::Invalid {
                file: source.to_string(),
                kind: kind.name().into(),
                detail: "the public key is not an uncompressed curve point of the right size"
                    .into(),
            });
        }
        Ok(key)
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The raw key: the uncompressed EC point, or the 32 Ed25519 bytes.
    pub fn raw_bytes(&self) -> &[u8] {
        spki::SubjectPublicKeyInfoRef::from_der(&self.spki_der)
            .map(|s| s.subject_public_key.raw_bytes())
            .unwrap_or_default()
    }

    /// Canonical PEM: `-----BEGIN PUBLIC KEY-----`, 64-column base64, LF line ends.
    pub fn to_pem(&self) -> String {
        pkcs8::der::pem::encode_string("PUBLIC KEY", LineEnding::LF, &self.spki_der)
            .expect("PEM encoding of a DER document")
    }

    /// The key hint: hex sha256 of [`PublicKey::to_pem`] (as `model_signing` computes it).
    pub fn hint(&self) -> String {
        hex::encode(Sha256::digest(self.to_pem().as_bytes()))
    }

    /// Check a raw signature (ECDSA DER with the curve's hash, or Ed25519) over `message`.
    /// A primitive for tests and self-checks; bundle verification lives in `crate::verify`.
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        sig::UnparsedPublicKey::new(self.kind.verification_algorithm(), self.raw_bytes())
            .verify(message, signature)
            .is_ok()
    }
}

fn alg_field_len(kind: KeyKind) -> usize {
    match kind {
        KeyKind::P256 => 32,
        KeyKind::P384 => 48,
        KeyKind::P521 => 66,
        KeyKind::Ed25519 => 32,
    }
}

enum Inner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key that can sign. Never printed.
pub struct PrivateKey {
    inner: Inner,
    public: PublicKey,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey({}, hint {})",
            self.public.kind,
            self.public.hint()
        )
    }
}

/// Whether a PEM private key file's content is encrypted (so a password must be asked for).
pub fn pem_is_encrypted(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
        || text.contains("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----")
        || text.contains("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----")
}

impl PrivateKey {
    /// Generate a new key pair.
    pub fn generate(kind: KeyKind) -> Result<Self, KeyError> {
        let what = || KeyError::Crypto {
            what: format!("generating a {} key", kind.name()),
        };
        let inner = match kind.ecdsa_signing() {
            Some(alg) => Inner::Ecdsa(EcdsaKeyPair::generate(alg).map_err(|_| what())?),
            None => Inner::Ed25519(Ed25519KeyPair::generate().map_err(|_| what())?),
        };
        Self::from_inner(inner, kind, "generated key")
    }

    /// Load a PEM private key from a file; `password` is used only if the key is encrypted.
    pub fn load(path: &Path, password: Option<&Secret>) -> Result<Self, KeyError> {
        let bytes = read_key_file(path)?;
        Self::from_pem(&bytes, &path.display().to_string(), password)
    }

    /// Parse a PEM private key; `source` names it in errors.
    pub fn from_pem(
        bytes: &[u8],
        source: &str,
        password: Option<&Secret>,
    ) -> Result<Self, KeyError> {
        let file = source.to_string();
        let not_private = |detail: String| KeyError::not_private(&file, detail);

        let text = std::str::from_utf8(bytes).map_err(|_| not_private(" (not text)".into()))?;
        let blocks = pem_blocks(text).map_err(not_private)?;
        let Some(block) = blocks.into_iter().find(|b| b.label != "EC PARAMETERS") else {
            return Err(not_private(
                " (no \"-----BEGIN PRIVATE KEY-----\" block)".into(),
            ));
        };
        match block.label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&block.der, source),
            "ENCRYPTED PRIVATE KEY" => {
                let password = match password {
                    Some(p) => p,
                    None => return Err(KeyError::PasswordRequired { file }),
                };
                let info = pkcs8::EncryptedPrivateKeyInfo::try_from(block.der.as_slice())
                    .map_err(|e| not_private(format!(" (malformed encrypted PKCS#8: {e})")))?;
                let doc = info.decrypt(password.expose()).map_err(|e| match e {
                    // pkcs5 0.7 reports a bad padding (wrong password) as EncryptFailed.
                    pkcs8::Error::EncryptedPrivateKey(
                        pkcs8::pkcs5::Error::DecryptFailed | pkcs8::pkcs5::Error::EncryptFailed,
                    )
                    | pkcs8::Error::Asn1(_) => KeyError::WrongPassword { file: file.clone() },
                    pkcs8::Error::EncryptedPrivateKey(other) => KeyError::UnsupportedEncryption {
                        file: file.clone(),
                        detail: format!(
                            "{other} (supported: PBES2 with PBKDF2-HMAC-SHA256/SHA-224/SHA-384/SHA-512 or scrypt, AES-CBC)"
                        ),
                    },
                    other => KeyError::WrongPassword {
                        file: format!("{file} ({other})"),
                    },
                })?;
                // A wrong password yields valid padding about once in 256 tries; then the
                // plaintext is not a PrivateKeyInfo.
                Self::from_pkcs8_der(doc.as_bytes(), source).map_err(|e| match e {
                    KeyError::NotPrivateKey { .. } => KeyError::WrongPassword { file },
                    other => other,
                })
            }
            "EC PRIVATE KEY" => {
                if block.headers.iter().any(|h| h.starts_with("Proc-Type")) {
                    return Err(KeyError::UnsupportedEncryption {
                        file,
                        detail: "legacy OpenSSL PEM encryption (Proc-Type header); convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.p8`".into(),
                    });
                }
                Self::from_sec1_der(&block.der, source)
            }
            "RSA PRIVATE KEY" => Err(KeyError::Unsupported {
                file,
                kind: "RSA".into(),
            }),
            "DSA PRIVATE KEY" => Err(KeyError::Unsupported {
                file,
                kind: "DSA".into(),
            }),
            "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
                Err(KeyError::UnsupportedEncryption {
                    file,
                    detail: "cosign's own key format (scrypt + secretbox); use a PKCS#8 key, e.g. from `oci-model generate-key-pair`".into(),
                })
            }
            "PUBLIC KEY" => Err(not_private(
                " (it holds a public key: pass the private key)".into(),
            )),
            other => Err(not_private(format!(" (found a \"{other}\" block)"))),
        }
    }

    /// Parse an unencrypted DER PKCS#8 PrivateKeyInfo (v1 or v2).
    pub fn from_pkcs8_der(der: &[u8], source: &str) -> Result<Self, KeyError> {
        let not_private = |detail: String| KeyError::not_private(source, detail);
        let info = pkcs8::PrivateKeyInfo::try_from(der)
            .map_err(|e| not_private(format!(" (malformed PKCS#8: {e})")))?;
        let kind = key_kind(&info.algorithm, source, not_private)?;
        let invalid = |detail: String| KeyError::Invalid {
            file: source.to_string(),
            kind: kind.name().into(),
            detail,
        };
        let inner = match kind.ecdsa_signing() {
            Some(alg) => Inner::Ecdsa(
                EcdsaKeyPair::from_pkcs8(alg, der).map_err(|e| invalid(e.to_string()))?,
            ),
            None => Inner::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|e| invalid(e.to_string()))?,
            ),
        };
        Self::from_inner(inner, kind, source)
    }

    /// Parse a DER SEC1 ECPrivateKey ("EC PRIVATE KEY"), trying each supported curve.
    pub fn from_sec1_der(der: &[u8], source: &str) -> Result<Self, KeyError> {
        for kind in [KeyKind::P256, KeyKind::P384, KeyKind::P521] {
            let alg = kind.ecdsa_signing().expect("ECDSA kind");
            if let Ok(pair) = EcdsaKeyPair::from_private_key_der(alg, der) {
                return Self::from_inner(Inner::Ecdsa(pair), kind, source);
            }
        }
        Err(KeyError::Unsupported {
            file: source.to_string(),
            kind: "EC private key on a curve other than P-256, P-384, P-521 (or malformed)".into(),
        })
    }

    fn from_inner(inner: Inner, kind: KeyKind, source: &str) -> Result<Self, KeyError> {
        let spki = match &inner {
            Inner::Ecdsa(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Inner::Ed25519(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
        }
        .map_err(|_| KeyError::Crypto {
            what: format!("encoding the public key of {source}"),
        })?;
        let public = PublicKey::from_spki_der(&spki, source)?;
        debug_assert_eq!(public.kind, kind);
        Ok(PrivateKey { inner, public })
    }

    pub fn kind(&self) -> KeyKind {
        self.public.kind
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Sign `message`: ECDSA (ASN.1 DER) with the curve's hash, or Ed25519.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let fail = || KeyError::Crypto {
            what: format!("signing with the {} key", self.kind()),
        };
        match &self.inner {
            Inner::Ecdsa(pair) => pair
                .sign(&aws_lc_rs::rand::SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| fail()),
            Inner::Ed25519(pair) => pair
                .try_sign(message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| fail()),
        }
    }

    /// The unencrypted PKCS#8 v1 DER.
    fn pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let fail = || KeyError::Crypto {
            what: "encoding the private key as PKCS#8".into(),
        };
        let doc = match &self.inner {
            Inner::Ecdsa(pair) => pair.to_pkcs8v1().map_err(|_| fail())?,
            Inner::Ed25519(pair) => pair.to_pkcs8v1().map_err(|_| fail())?,
        };
        Ok(Zeroizing::new(doc.as_ref().to_vec()))
    }

    /// PKCS#8 PEM. With a non-empty password: `ENCRYPTED PRIVATE KEY`, PBES2 with
    /// PBKDF2-HMAC-SHA256 ([`PBKDF2_ITERATIONS`]) and AES-256-CBC, readable by OpenSSL and
    /// Python `cryptography`. Without: `PRIVATE KEY`.
    pub fn to_pkcs8_pem(&self, password: Option<&Secret>) -> Result<Zeroizing<String>, KeyError> {
        self.to_pkcs8_pem_with_iterations(password, PBKDF2_ITERATIONS)
    }

    fn to_pkcs8_pem_with_iterations(
        &self,
        password: Option<&Secret>,
        iterations: u32,
    ) -> Result<Zeroizing<String>, KeyError> {
        use rand::RngCore as _;
        let fail = |what: &str| KeyError::Crypto { what: what.into() };
        let der = self.pkcs8_der()?;
        match password.filter(|p| !p.is_empty()) {
            None => pkcs8::der::pem::encode_string("PRIVATE KEY", LineEnding::LF, &der)
                .map(Zeroizing::new)
                .map_err(|_| fail("PEM encoding")),
            Some(password) => {
                let mut salt = [0u8; 16];
                let mut iv = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut salt);
                rand::rngs::OsRng.fill_bytes(&mut iv);
                let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
                    iterations, &salt, &iv,
                )
                .map_err(|_| fail("preparing PBES2 parameters"))?;
                let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|_| fail("re-reading the PKCS#8 key"))?;
                let doc = info
                    .encrypt_with_params(params, password.expose())
                    .map_err(|_| fail("encrypting the private key"))?;
                doc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
                    .map_err(|_| fail("PEM encoding"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [KeyKind; 3] = [KeyKind::P256, KeyKind::P384, KeyKind::Ed25519];

    #[test]
    fn generate_sign_verify_each_kind() {
        for kind in ALL {
            let key = PrivateKey::generate(kind).unwrap();
            assert_eq!(key.kind(), kind);
            let sig = key.sign(b"message").unwrap();
            assert!(
                key.public_key().verify_signature(b"message", &sig),
                "{kind}"
            );
            assert!(
                !key.public_key().verify_signature(b"messagE", &sig),
                "{kind}"
            );
        }
    }

    #[test]
    fn pem_round_trip_unencrypted_and_encrypted() {
        for kind in ALL {
            let key = PrivateKey::generate(kind).unwrap();
            let plain = key.to_pkcs8_pem(None).unwrap();
            assert!(plain.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let back = PrivateKey::from_pem(plain.as_bytes(), "k", None).unwrap();
            assert_eq!(back.public_key(), key.public_key());

            let pw = Secret::new("correct horse");
            let enc = key.to_pkcs8_pem_with_iterations(Some(&pw), 1000).unwrap();
            assert!(enc.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
            assert!(pem_is_encrypted(enc.as_bytes()));
            let back = PrivateKey::from_pem(enc.as_bytes(), "k", Some(&pw)).unwrap();
            assert_eq!(back.public_key(), key.public_key());

            let err = PrivateKey::from_pem(enc.as_bytes(), "k.pem", None).unwrap_err();
            assert!(matches!(err, KeyError::PasswordRequired { .. }), "{err}");
            let err = PrivateKey::from_pem(enc.as_bytes(), "k.pem", Some(&Secret::new("nope")))
                .unwrap_err();
            assert_eq!(err.to_string(), "wrong password for k.pem");
        }
    }

    #[test]
    fn public_key_pem_round_trip_and_hint() {
        let key = PrivateKey::generate(KeyKind::P256).unwrap();
        let pem = key.public_key().to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
        let back = PublicKey::from_pem(pem.as_bytes(), "pub").unwrap();
        assert_eq!(&back, key.public_key());
        assert_eq!(back.hint(), hex::encode(Sha256::digest(pem.as_bytes())));
    }

    /// The hint is over the canonical PEM, not the file: this key file (from model-signing's
    /// test data) has certtool output before the PEM block, and model_signing's bundle carries
    /// hint e8450dec….
    #[test]
    fn hint_is_over_canonical_pem_not_file_bytes() {
        let file = "Public Key Information:\n\tPublic Key Algorithm: EC/ECDSA\n\n\
-----BEGIN PUBLIC KEY-----\n\
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEsu6rZGBTjxtvRWPMixT+3HyndV0J0Ybt\n\
aHZUcO4DEK+OJHO/4e32bb/fbJKSpRgcBsIpKLcVijUomyFOERbd7u+BTPSUjGZD\n\
Qq6J7lTvp/EAXQGOKxW9RP0MGX3qAkvi\n\
-----END PUBLIC KEY-----\n";
        let key = PublicKey::from_pem(file.as_bytes(), "signing-key-pub.pem").unwrap();
        assert_eq!(key.kind(), KeyKind::P384);
        assert_eq!(
            key.hint(),
            "e8450dec4eb99dae995da9af1bc2cc9f76ed669ee2e744f57abba763df3e3f8e"
        );
    }

    #[test]
    fn sec1_ec_private_key_with_parameters_block() {
        let key = PrivateKey::generate(KeyKind::P384).unwrap();
        let Inner::Ecdsa(pair) = &key.inner else {
            unreachable!()
        };
        let sec1 = pair.private_key().as_der().unwrap();
        let pem = format!(
            "-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\n{}",
            pkcs8::der::pem::encode_string("EC PRIVATE KEY", LineEnding::LF, sec1.as_ref())
                .unwrap()
        );
        let back = PrivateKey::from_pem(pem.as_bytes(), "ec.pem", None).unwrap();
        assert_eq!(back.kind(), KeyKind::P384);
        assert_eq!(back.public_key(), key.public_key());
    }

    #[test]
    fn clear_errors_for_files_that_are_not_keys() {
        let err = PrivateKey::from_pem(b"hello world\n", "notes.txt", None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("notes.txt is not a PEM private key"),
            "{err}"
        );
        let err = PrivateKey::from_pem(&[0xff, 0x00, 0x12], "bin", None).unwrap_err();
        assert!(
            err.to_string().starts_with("bin is not a PEM private key"),
            "{err}"
        );
        let key = PrivateKey::generate(KeyKind::P256).unwrap();
        let err =
            PrivateKey::from_pem(key.public_key().to_pem().as_bytes(), "k.pub", None).unwrap_err();
        assert!(err.to_string().contains("it holds a public key"), "{err}");
        let plain = key.to_pkcs8_pem(None).unwrap();
        let err = PublicKey::from_pem(plain.as_bytes(), "k.key").unwrap_err();
        assert!(err.to_string().contains("it holds a private key"), "{err}");
        let garbage = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let err = PrivateKey::from_pem(garbage.as_bytes(), "g.pem", None).unwrap_err();
        assert!(err.to_string().contains("malformed PKCS#8"), "{err}");
        let bad_b64 = "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n";
        let err = PublicKey::from_pem(bad_b64.as_bytes(), "b.pub").unwrap_err();
        assert!(err.to_string().contains("not valid base64"), "{err}");
        let rsa = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let err = PrivateKey::from_pem(rsa.as_bytes(), "rsa.pem", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unsupported key type in rsa.pem: RSA (supported: ECDSA P-256, P-384, P-521, Ed25519)"
        );
    }

    #[test]
    fn rsa_public_key_is_unsupported() {
        // SPKI of a 1024-bit RSA key (test vector; never used to sign).
        let pem = "-----BEGIN PUBLIC KEY-----\n\
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCcfBCAU2cHuceN+qtViBi0gUeL\n\
yoYSyhgyY8VJ7SWiGJpeD343pD8Yorjc2fU9uwNaiKDMmO76rf+0iENqp9NnsQcH\n\
4GIRd32UDNsQQQHp5uXkE92aMnoI/aHsOH96b0aIa62w7CmzMJTQ+5am/RY3thaD\n\
DzzKJoOwwBipsGNtvwIDAQAB\n\
-----END PUBLIC KEY-----\n";
        let err = PublicKey::from_pem(pem.as_bytes(), "rsa.pub").unwrap_err();
        assert!(matches!(err, KeyError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("RSA"), "{err}");
    }
}
