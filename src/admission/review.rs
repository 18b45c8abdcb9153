//! AdmissionReview v1 in and out (kube-core's types over k8s-openapi): read a request,
//! answer allowed, denied or allowed with a JSONPatch.
//!
//! kube-core keeps the patch as bytes, which serde writes as a JSON array of numbers; the API
//! server's documented wire form is a base64 string, so [`wire`] writes that.

use base64::Engine as _;
use kube_core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND,
};
use kube_core::DynamicObject;
use serde_json::Value;

/// The largest AdmissionReview read. The API server stores objects of at most 1.5 MiB; a
/// review carries the object and, for an update, the old one, plus options.
pub const MAX_REVIEW_BYTES: usize = 6 << 20;

/// Why a request body is not an AdmissionReview v1 request (answered 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the request body is not an AdmissionReview: {0}")]
    NotAReview(String),
    #[error("expected apiVersion {META_API_VERSION_V1:?} and kind {META_KIND:?}, got {api_version:?} and {kind:?}")]
    WrongVersion { api_version: String, kind: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// Parse a request body.
pub fn parse(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, ReviewError> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotAReview(e.to_string()))?;
    if review.types.api_version != META_API_VERSION_V1 || review.types.kind != META_KIND {
        return Err(ReviewError::WrongVersion {
            api_version: review.types.api_version,
            kind: review.types.kind,
        });
    }
    review.try_into().map_err(|_| ReviewError::NoRequest)
}

/// The request's object as JSON (None for DELETE and CONNECT).
pub fn object(request: &AdmissionRequest<DynamicObject>) -> Option<Value> {
    request
        .object
        .as_ref()
        .and_then(|o| serde_json::to_value(o).ok())
}

/// Allowed, unchanged.
pub fn allow(request: &AdmissionRequest<DynamicObject>) -> Vec<u8> {
    wire(AdmissionResponse::from(request))
}

/// Denied with `message` (shown to whoever created the object).
pub fn deny(request: &AdmissionRequest<DynamicObject>, message: &str) -> Vec<u8> {
    let mut response = AdmissionResponse::from(request).deny(message);
    response.result.code = 403;
    response.result.reason = "Forbidden".into();
    wire(response)
}

/// Allowed with a JSONPatch that replaces each (pointer, value).
pub fn patch(
    request: &AdmissionRequest<DynamicObject>,
    replacements: &[(String, String)],
) -> Vec<u8> {
    if replacements.is_empty() {
        return allow(request);
    }
    let ops: Vec<Value> = replacements
        .iter()
        .map(|(path, value)| serde_json::json!({"op": "replace", "path": path, "value": value}))
        .collect();
    let patch: json_patch::Patch = match serde_json::from_value(Value::Array(ops)) {
        Ok(p) => p,
        Err(e) => return deny(request, &format!("cannot build the patch: {e}")),
    };
    match AdmissionResponse::from(request).with_patch(patch) {
        Ok(response) => wire(response),
        Err(e) => deny(request, &format!("cannot build the patch: {e}")),
    }
}

/// The response as the API server reads it, with the patch as base64.
fn wire(response: AdmissionResponse) -> Vec<u8> {
    let mut value = serde_json::to_value(response.into_review()).unwrap_or(Value::Null);
    if let Some(patch) = value.pointer_mut("/response/patch") {
        if let Some(bytes) = patch.as_array() {
            let bytes: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            *patch = Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
    }
    serde_json::to_vec(&value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD_REVIEW: &str = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},"name":"p","namespace":"ml","operation":"CREATE","userInfo":{"username":"admin","groups":["system:authenticated"]},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"ml"},"spec":{"containers":[{"name":"c","image":"nginx"}],"volumes":[{"name":"m","image":{"reference":"r.example/m:v1"}}]}},"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}"#;

    #[test]
    fn answers_keep_the_uid_and_the_patch_is_base64() {
        let req = parse(POD_REVIEW.as_bytes()).unwrap();
        let v: Value = serde_json::from_slice(&allow(&req)).unwrap();
        assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(v["kind"], "AdmissionReview");
        assert_eq!(v["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(v["response"]["allowed"], true);
        assert!(v["response"].get("patch").is_none());

        let v: Value = serde_json::from_slice(&deny(&req, "no")).unwrap();
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["status"]["message"], "no");
        assert_eq!(v["response"]["status"]["code"], 403);

        let body = patch(
            &req,
            &[(
                "/spec/volumes/0/image/reference".into(),
                "r.example/m@sha256:00".into(),
            )],
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v["response"]["patch"].as_str().unwrap())
            .unwrap();
        let ops: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            ops,
            serde_json::json!([{"op": "replace", "path": "/spec/volumes/0/image/reference", "value": "r.example/m@sha256:00"}])
        );
    }

    #[test]
    fn other_documents_are_refused() {
        assert!(matches!(parse(b"{"), Err(ReviewError::NotAReview(_))));
        let v1beta1 = POD_REVIEW.replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1");
        let err = parse(v1beta1.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("v1beta1"), "{err}");
        let none = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#;
        assert!(matches!(
            parse(none.as_bytes()),
            Err(ReviewError::NoRequest)
        ));
    }
}
