//! Fake RFC 3161 timestamp authority (`POST /api/v1/timestamp`, `application/timestamp-query`
//! → `application/timestamp-reply`): a TimeStampResp with a CMS SignedData over the TSTInfo
//! (signed attributes: content type, message digest, ESS signing-certificate-v2), signed by a
//! TSA leaf (EKU timeStamping, critical) under its own root.

use super::fulcio::{
    aki, ca_validity, eku, key_usage, name, sign_cert, ski, tbs, CaCert, ECDSA_WITH_SHA256,
    KP_TIME_STAMPING,
};
use super::{now_secs, sha256, EcKey, Fault, Shared};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos,
};
use der::asn1::{Int, OctetString, SetOfVec};
use der::oid::ObjectIdentifier;
use der::{Any, Decode as _, Encode as _, Sequence, Tag};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use x509_cert::attr::Attribute;
use x509_cert::ext::pkix::KeyUsages;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const TSA_POLICY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.2");

#[derive(Clone, Debug, Sequence)]
struct MessageImprint {
    hash_algorithm: AlgorithmIdentifierOwned,
    hashed_message: OctetString,
}

#[derive(Clone, Debug, Sequence)]
struct TimeStampReq {
    version: u8,
    message_imprint: MessageImprint,
    #[asn1(optional = "true")]
    req_policy: Option<ObjectIdentifier>,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(default = "default_false")]
    cert_req: bool,
}

fn default_false() -> bool {
    false
}

#[derive(Clone, Debug, Sequence)]
struct TstInfo {
    version: u8,
    policy: ObjectIdentifier,
    message_imprint: MessageImprint,
    serial_number: Int,
    /// A GeneralizedTime, written by hand: `der`'s type has no fractional seconds.
    gen_time: Any,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
}

#[derive(Clone, Debug, Sequence)]
struct PkiStatusInfo {
    status: u8,
}

#[derive(Clone, Debug, Sequence)]
struct TimeStampResp {
    status: PkiStatusInfo,
    #[asn1(optional = "true")]
    time_stamp_token: Option<ContentInfo>,
}

#[derive(Clone, Debug, Sequence)]
struct EssCertIdV2 {
    cert_hash: OctetString,
}

#[derive(Clone, Debug, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
}

pub struct Authority {
    key: EcKey,
    rogue: EcKey,
    pub leaf_der: Vec<u8>,
    pub root_der: Vec<u8>,
    /// Write `genTime` with milliseconds (`20261129135002.488Z`), as RFC 3161 allows and
    /// several deployed TSAs do; whole seconds otherwise.
    pub fractional_time: AtomicBool,
    /// Write exactly this `genTime` text (tests of the parser's grammar), whatever the clock.
    pub gen_time_text: std::sync::Mutex<Option<String>>,
}

/// `genTime` for `now`: `YYYYMMDDhhmmssZ`, or with the milliseconds as DER wants them
/// (trailing zeros dropped; a whole second gets `.5` so the fraction is always there).
pub fn gen_time(now: std::time::SystemTime, fractional: bool) -> String {
    let since = now.duration_since(std::time::UNIX_EPOCH).unwrap();
    let whole = chrono::DateTime::from_timestamp(since.as_secs() as i64, 0)
        .unwrap()
        .format("%Y%m%d%H%M%S")
        .to_string();
    if !fractional {
        return format!("{whole}Z");
    }
    let millis = format!("{:03}", since.subsec_millis());
    let fraction = millis.trim_end_matches('0');
    format!(
        "{whole}.{}Z",
        if fraction.is_empty() { "5" } else { fraction }
    )
}

impl Authority {
    pub fn new() -> Authority {
        let root = CaCert::mint("fake-tsa-root", 0, None, vec![]);
        let (start, end) = ca_validity();
        let key = EcKey::generate();
        let leaf_der = sign_cert(
            tbs(
                &root.name,
                &name("CN=fake-tsa,O=oci-model-test"),
                &key.spki,
                start,
                end,
                vec![
                    key_usage(KeyUsages::DigitalSignature),
                    eku(KP_TIME_STAMPING, true),
                    ski(&key.spki),
                    aki(&root.key.spki),
                ],
            ),
            &root.key,
        );
        Authority {
            key,
            rogue: EcKey::generate(),
            leaf_der,
            root_der: root.der,
            fractional_time: AtomicBool::new(false),
            gen_time_text: std::sync::Mutex::new(None),
        }
    }

    fn respond(&self, req: &TimeStampReq, fault: Option<Fault>) -> Vec<u8> {
        let leaf = Certificate::from_der(&self.leaf_der).unwrap();
        let clock = std::time::SystemTime::now();
        let now = now_secs();
        let serial = sha256(format!("{now}{:?}", req.nonce).as_bytes());
        let mut serial_bytes = vec![0x01];
        serial_bytes.extend_from_slice(&serial[..15]);
        let tst = TstInfo {
            version: 1,
            policy: req.req_policy.unwrap_or(TSA_POLICY),
            message_imprint: req.message_imprint.clone(),
            serial_number: Int::new(&serial_bytes).unwrap(),
            gen_time: Any::new(
                Tag::GeneralizedTime,
                self.gen_time_text
                    .lock()
                    .unwrap()
                    .clone()
                    .unwrap_or_else(|| gen_time(clock, self.fractional_time.load(Ordering::SeqCst)))
                    .into_bytes(),
            )
            .unwrap(),
            nonce: req.nonce.clone(),
        };
        let tst_der = tst.to_der().unwrap();
        let sha256_alg = AlgorithmIdentifierOwned {
            oid: ID_SHA256,
            parameters: None,
        };
        let attr = |oid, value: Any| Attribute {
            oid,
            values: SetOfVec::try_from(vec![value]).unwrap(),
        };
        let ess = SigningCertificateV2 {
            certs: vec![EssCertIdV2 {
                cert_hash: OctetString::new(sha256(&self.leaf_der).to_vec()).unwrap(),
            }],
        };
        let signed_attrs = SetOfVec::try_from(vec![
            attr(ID_CONTENT_TYPE, Any::encode_from(&ID_CT_TST_INFO).unwrap()),
            attr(
                ID_MESSAGE_DIGEST,
                Any::new(Tag::OctetString, sha256(&tst_der).to_vec()).unwrap(),
            ),
            attr(ID_SIGNING_CERTIFICATE_V2, Any::encode_from(&ess).unwrap()),
        ])
        .unwrap();
        let signer = if fault == Some(Fault::BadTimestamp) {
            &self.rogue
        } else {
            &self.key
        };
        let signature = signer.sign(&signed_attrs.to_der().unwrap());
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
                issuer: leaf.tbs_certificate.issuer.clone(),
                serial_number: leaf.tbs_certificate.serial_number.clone(),
            }),
            digest_alg: sha256_alg.clone(),
            signed_attrs: Some(signed_attrs),
            signature_algorithm: AlgorithmIdentifierOwned {
                oid: ECDSA_WITH_SHA256,
                parameters: None,
            },
            signature: OctetString::new(signature).unwrap(),
            unsigned_attrs: None,
        };
        let certificates = if req.cert_req {
            Some(CertificateSet(
                SetOfVec::try_from(vec![cms::cert::CertificateChoices::Certificate(leaf)]).unwrap(),
            ))
        } else {
            None
        };
        let signed_data = SignedData {
            version: CmsVersion::V3,
            digest_algorithms: SetOfVec::try_from(vec![sha256_alg]).unwrap(),
            encap_content_info: EncapsulatedContentInfo {
                econtent_type: ID_CT_TST_INFO,
                econtent: Some(Any::new(Tag::OctetString, tst_der).unwrap()),
            },
            certificates,
            crls: None,
            signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).unwrap()),
        };
        TimeStampResp {
            status: PkiStatusInfo { status: 0 },
            time_stamp_token: Some(ContentInfo {
                content_type: ID_SIGNED_DATA,
                content: Any::encode_from(&signed_data).unwrap(),
            }),
        }
        .to_der()
        .unwrap()
    }
}

pub fn router(s: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/v1/timestamp", post(timestamp))
        .with_state(s)
}

async fn timestamp(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type != "application/timestamp-query" {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "want application/timestamp-query",
        )
            .into_response();
    }
    let Ok(req) = TimeStampReq::from_der(&body) else {
        return (StatusCode::BAD_REQUEST, "not a DER TimeStampReq").into_response();
    };
    if req.version != 1
        || req.message_imprint.hash_algorithm.oid != ID_SHA256
        || req.message_imprint.hashed_message.as_bytes().len() != 32
    {
        return (
            StatusCode::BAD_REQUEST,
            "want a v1 request with a sha256 imprint",
        )
            .into_response();
    }
    let der = s.tsa.respond(&req, s.fault());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/timestamp-reply")],
        der,
    )
        .into_response()
}
