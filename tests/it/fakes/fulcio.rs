//! Fake Fulcio (`POST /api/v2/signingCert`): checks the OIDC token (signature with the
//! issuer's key, audience, expiry) and the proof of possession, then issues a 10-minute leaf
//! for the token's identity from a root → intermediate CA, with the Fulcio issuer extensions
//! (1.3.6.1.4.1.57264.1.1 and .1.8), the SAN (email, or URI for workloads) and an embedded SCT
//! signed by a fake CT log key (RFC 6962 precertificate signature).

use super::{
    ecdsa_verify, error_response, now_secs, pem, sha256, unb64, unpem, EcKey, Fault, Shared,
};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use der::asn1::{BitString, Ia5String, OctetString, UtcTime, Utf8StringRef};
use der::oid::ObjectIdentifier;
use der::{Decode as _, Encode as _};
use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate};

pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.15");
const EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const AUTHORITY_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
const SUBJECT_ALT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
pub const KP_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
pub const KP_TIME_STAMPING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
const FULCIO_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const FULCIO_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
const CT_PRECERT_SCTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");

static SERIAL: AtomicU64 = AtomicU64::new(1);

fn serial() -> SerialNumber {
    let n = SERIAL.fetch_add(1, Ordering::SeqCst);
    let mut bytes = vec![0x01];
    bytes.extend_from_slice(&sha256(format!("{n}-{}", now_secs()).as_bytes())[..15]);
    SerialNumber::new(&bytes).unwrap()
}

fn time(secs: i64) -> Time {
    Time::UtcTime(UtcTime::from_unix_duration(Duration::from_secs(secs as u64)).unwrap())
}

pub fn ext(oid: ObjectIdentifier, critical: bool, value: Vec<u8>) -> Extension {
    Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value).unwrap(),
    }
}

fn key_id(spki: &[u8]) -> Vec<u8> {
    sha256(spki)[..20].to_vec()
}

pub fn ski(spki: &[u8]) -> Extension {
    ext(
        SUBJECT_KEY_ID,
        false,
        SubjectKeyIdentifier(OctetString::new(key_id(spki)).unwrap())
            .to_der()
            .unwrap(),
    )
}

pub fn aki(issuer_spki: &[u8]) -> Extension {
    let v = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(key_id(issuer_spki)).unwrap()),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    ext(AUTHORITY_KEY_ID, false, v.to_der().unwrap())
}

pub fn eku(oid: ObjectIdentifier, critical: bool) -> Extension {
    ext(
        EXT_KEY_USAGE,
        critical,
        ExtendedKeyUsage(vec![oid]).to_der().unwrap(),
    )
}

pub fn key_usage(usages: impl Into<der::flagset::FlagSet<KeyUsages>>) -> Extension {
    ext(KEY_USAGE, true, KeyUsage(usages.into()).to_der().unwrap())
}

fn basic_constraints(ca: bool, path_len: Option<u8>) -> Extension {
    ext(
        BASIC_CONSTRAINTS,
        true,
        BasicConstraints {
            ca,
            path_len_constraint: path_len,
        }
        .to_der()
        .unwrap(),
    )
}

pub fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

/// A TBSCertificate (ecdsa-with-SHA256) for these fields.
pub fn tbs(
    issuer: &Name,
    subject: &Name,
    spki: &[u8],
    not_before: i64,
    not_after: i64,
    extensions: Vec<Extension>,
) -> TbsCertificate {
    TbsCertificate {
        version: x509_cert::Version::V3,
        serial_number: serial(),
        signature: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        },
        issuer: issuer.clone(),
        validity: Validity {
            not_before: time(not_before),
            not_after: time(not_after),
        },
        subject: subject.clone(),
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(spki).unwrap(),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(extensions),
    }
}

/// Sign a TBSCertificate; the certificate DER.
pub fn sign_cert(tbs: TbsCertificate, key: &EcKey) -> Vec<u8> {
    let sig = key.sign(&tbs.to_der().unwrap());
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: AlgorithmIdentifierOwned {
            oid: ECDSA_WITH_SHA256,
            parameters: None,
        },
        signature: BitString::from_bytes(&sig).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// How long the fakes' CA certificates are valid: from a day ago for five years.
pub fn ca_validity() -> (i64, i64) {
    let now = now_secs();
    (now - 24 * 3600, now + 5 * 365 * 24 * 3600)
}

/// A CA certificate with its key: the one way the fakes mint a CA.
pub struct CaCert {
    pub key: EcKey,
    pub name: Name,
    pub der: Vec<u8>,
}

impl CaCert {
    /// A CA named `CN=<cn>,O=oci-model-test` for a new key (key usage certificate and CRL
    /// signing, basic constraints CA with `path_len`, subject key id): self-signed when `issuer`
    /// is None, else issued by it (with its authority key id). `extra` adds extensions.
    pub fn mint(cn: &str, path_len: u8, issuer: Option<&CaCert>, extra: Vec<Extension>) -> CaCert {
        let (start, end) = ca_validity();
        let key = EcKey::generate();
        let subject = name(&format!("CN={cn},O=oci-model-test"));
        let mut extensions = vec![
            key_usage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            basic_constraints(true, Some(path_len)),
            ski(&key.spki),
        ];
        extensions.extend(extra);
        let (issuer_name, signer) = match issuer {
            Some(ca) => {
                extensions.push(aki(&ca.key.spki));
                (&ca.name, &ca.key)
            }
            None => (&subject, &key),
        };
        let der = sign_cert(
            tbs(issuer_name, &subject, &key.spki, start, end, extensions),
            signer,
        );
        CaCert {
            key,
            name: subject,
            der,
        }
    }
}

/// A root → intermediate CA for code signing.
pub struct Chain {
    pub root: CaCert,
    pub intermediate: CaCert,
}

impl Chain {
    fn new(label: &str) -> Chain {
        let root = CaCert::mint(&format!("{label}-root"), 1, None, vec![]);
        let intermediate = CaCert::mint(
            &format!("{label}-intermediate"),
            0,
            Some(&root),
            vec![eku(KP_CODE_SIGNING, false)],
        );
        Chain { root, intermediate }
    }
}

pub struct Ca {
    /// The chain the trusted root lists.
    pub trusted: Chain,
    /// A chain nobody trusts (fault `UntrustedCa`).
    pub untrusted: Chain,
    /// The CT log key that signs SCTs.
    pub ct_key: EcKey,
    issuer_url: String,
    /// Certificates issued so far.
    pub issued: AtomicU64,
}

impl Ca {
    pub fn new(issuer_url: &str) -> Ca {
        Ca {
            trusted: Chain::new("fake-fulcio"),
            untrusted: Chain::new("rogue-ca"),
            ct_key: EcKey::generate(),
            issuer_url: issuer_url.to_string(),
            issued: AtomicU64::new(0),
        }
    }

    /// Issue a leaf for `spki` naming `san` and `issuer`, with an embedded SCT.
    fn issue(
        &self,
        spki: &[u8],
        san: GeneralName,
        issuer: &str,
        fault: Option<Fault>,
    ) -> Vec<Vec<u8>> {
        let chain = if fault == Some(Fault::UntrustedCa) {
            &self.untrusted
        } else {
            &self.trusted
        };
        let now = now_secs();
        let mut extensions = vec![
            key_usage(KeyUsages::DigitalSignature),
            eku(KP_CODE_SIGNING, false),
            ski(spki),
            aki(&chain.intermediate.key.spki),
            ext(
                SUBJECT_ALT_NAME,
                true,
                SubjectAltName(vec![san]).to_der().unwrap(),
            ),
            ext(FULCIO_ISSUER_V1, false, issuer.as_bytes().to_vec()),
            ext(
                FULCIO_ISSUER_V2,
                false,
                Utf8StringRef::new(issuer).unwrap().to_der().unwrap(),
            ),
        ];
        let empty = Name::default();
        let mut leaf = tbs(
            &chain.intermediate.name,
            &empty,
            spki,
            now,
            now + 600,
            extensions.clone(),
        );
        // RFC 6962 §3.2: the CT log signs the precertificate TBS (the final TBS without the
        // SCT extension) with the issuer's key hash.
        let precert_tbs = leaf.to_der().unwrap();
        let timestamp_ms = (now_secs() as u64) * 1000;
        let issuer_key_hash = sha256(&chain.intermediate.key.spki);
        let mut signed = vec![0u8, 0u8]; // v1, certificate_timestamp
        signed.extend_from_slice(&timestamp_ms.to_be_bytes());
        signed.extend_from_slice(&1u16.to_be_bytes()); // precert_entry
        signed.extend_from_slice(&issuer_key_hash);
        let len = precert_tbs.len() as u32;
        signed.extend_from_slice(&len.to_be_bytes()[1..]); // u24
        signed.extend_from_slice(&precert_tbs);
        signed.extend_from_slice(&0u16.to_be_bytes()); // no extensions
        let mut sct_sig = self.ct_key.sign(&signed);
        if fault == Some(Fault::BadSct) {
            // A valid signature, but over another timestamp: the SCT does not verify.
            let mut other = signed.clone();
            other[2..10].copy_from_slice(&(timestamp_ms + 1).to_be_bytes());
            sct_sig = self.ct_key.sign(&other);
        }
        let mut sct = vec![0u8]; // v1
        sct.extend_from_slice(&self.ct_key.key_id());
        sct.extend_from_slice(&timestamp_ms.to_be_bytes());
        sct.extend_from_slice(&0u16.to_be_bytes()); // extensions
        sct.extend_from_slice(&[4, 3]); // sha256, ecdsa
        sct.extend_from_slice(&(sct_sig.len() as u16).to_be_bytes());
        sct.extend_from_slice(&sct_sig);
        let mut list = ((sct.len() + 2) as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&(sct.len() as u16).to_be_bytes());
        list.extend_from_slice(&sct);
        extensions.push(ext(
            CT_PRECERT_SCTS,
            false,
            OctetString::new(list).unwrap().to_der().unwrap(),
        ));
        leaf.extensions = Some(extensions);
        let leaf_der = sign_cert(leaf, &chain.intermediate.key);
        vec![
            leaf_der,
            chain.intermediate.der.clone(),
            chain.root.der.clone(),
        ]
    }
}

pub fn router(s: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v2/signingCert", post(signing_cert))
        .with_state(s)
}

async fn signing_cert(
    State(s): State<Arc<Shared>>,
    Json(req): Json<serde_json::Value>,
) -> Response {
    let token = req["credentials"]["oidcIdentityToken"]
        .as_str()
        .unwrap_or_default();
    let claims = match s.oidc.verify(token) {
        Ok(c) => c,
        Err(e) => return error_response(401, format!("error processing the identity token: {e}")),
    };
    if claims["iss"].as_str() != Some(s.fulcio.issuer_url.as_str()) {
        return error_response(401, format!("unknown issuer {}", claims["iss"]));
    }
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) => a == "sigstore",
        serde_json::Value::Array(a) => a.iter().any(|v| v == "sigstore"),
        _ => false,
    };
    if !aud_ok {
        return error_response(401, "audience must be sigstore");
    }
    if claims["exp"].as_i64().unwrap_or(0) < now_secs() {
        return error_response(401, "token expired");
    }
    // Identity and the proof-of-possession challenge, as Fulcio's issuer types decide.
    let (san, challenge) = if let Some(email) = claims["email"].as_str() {
        if claims["email_verified"] != serde_json::Value::Bool(true) {
            return error_response(401, "email_verified is not true");
        }
        (
            GeneralName::Rfc822Name(Ia5String::new(email).unwrap()),
            email.to_string(),
        )
    } else {
        let sub = claims["sub"].as_str().unwrap_or_default().to_string();
        let uri = if let Some(w) = claims["job_workflow_ref"].as_str() {
            format!("https://github.com/{w}")
        } else if sub.starts_with("https://") {
            sub.clone()
        } else {
            return error_response(400, "workload subject must be an https URI");
        };
        (
            GeneralName::UniformResourceIdentifier(Ia5String::new(&uri).unwrap()),
            sub,
        )
    };
    let Some(spki) = req["publicKeyRequest"]["publicKey"]["content"]
        .as_str()
        .and_then(|p| unpem("PUBLIC KEY", p))
    else {
        return error_response(400, "publicKey.content must be a PEM public key");
    };
    let pop = req["publicKeyRequest"]["proofOfPossession"]
        .as_str()
        .and_then(unb64)
        .unwrap_or_default();
    if !ecdsa_verify(&spki, challenge.as_bytes(), &pop) {
        return error_response(
            400,
            "the proof of possession does not verify with the public key",
        );
    }
    let fault = s.fault();
    let san = if fault == Some(Fault::OtherIdentity) {
        GeneralName::Rfc822Name(Ia5String::new("mallory@evil.example").unwrap())
    } else {
        san
    };
    let chain = s.fulcio.issue(&spki, san, &s.fulcio.issuer_url, fault);
    s.fulcio.issued.fetch_add(1, Ordering::SeqCst);
    let pems: Vec<String> = chain.iter().map(|d| pem("CERTIFICATE", d)).collect();
    (
        StatusCode::CREATED,
        Json(serde_json::json!({
            "signedCertificateEmbeddedSct": {"chain": {"certificates": pems}}
        })),
    )
        .into_response()
}
