//! Where a Kubernetes object names models: image volumes of pod specs (Pods and the pod
//! templates of workloads), KServe `InferenceService` `storageUri: oci://…`, and the
//! [`MODELS_ANNOTATION`] on the object (or its pod template). Pod specs are read through the
//! typed `k8s-openapi` objects; an `InferenceService` is a custom resource without published
//! types, so its predictor is read as JSON.
//!
//! Every reference carries the JSON pointer of the field that holds it, so `/mutate` can
//! replace exactly that field.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube_core::GroupVersionKind;
use serde_json::Value;

/// The annotation listing model references (comma-separated) on any object.
pub const MODELS_ANNOTATION: &str = "oci-model.dev/models";
/// The namespace label the webhook configurations select on (opt-in).
pub const OPT_IN_LABEL: &str = "oci-model.dev/verify";
/// The value of [`OPT_IN_LABEL`] that turns verification on.
pub const OPT_IN_VALUE: &str = "enabled";
/// The scheme KServe uses for OCI model storage.
pub const OCI_SCHEME: &str = "oci://";
/// Most references taken from one object: more is refused, not verified one by one.
pub const MAX_REFERENCES: usize = 64;

/// What kind of field names the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `volumes[].image.reference` of a pod spec.
    ImageVolume,
    /// A KServe `storageUri` with the `oci://` scheme.
    StorageUri,
    /// One entry of the [`MODELS_ANNOTATION`] list.
    Annotation,
}

/// One model reference found in an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRef {
    /// The registry reference (`host[:port]/repo[:tag|@digest]`; the `oci://` of a
    /// `storageUri` removed), trimmed.
    pub reference: String,
    /// JSON pointer (RFC 6901) of the field holding it.
    pub pointer: String,
    pub source: Source,
}

impl ModelRef {
    /// The field as a reader writes it: `spec.volumes[0].image.reference`,
    /// `metadata.annotations["oci-model.dev/models"]`.
    pub fn field(&self) -> String {
        let mut out = String::new();
        for token in self.pointer.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            if token.chars().all(|c| c.is_ascii_digit()) && !token.is_empty() {
                out.push_str(&format!("[{token}]"));
            } else if token.contains(['/', '.']) {
                out.push_str(&format!("[{token:?}]"));
            } else {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&token);
            }
        }
        out
    }
}

/// Why an object's references cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RefsError {
    #[error("the {kind} object does not parse as a Kubernetes {kind}: {reason}")]
    Malformed { kind: String, reason: String },
    #[error("the object names {count} model references; at most {max} are verified per object")]
    TooMany { count: usize, max: usize },
}

/// Escape one JSON pointer token (RFC 6901).
pub fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Every model reference in `object` of kind `kind`, in document order.
pub fn find(kind: &GroupVersionKind, object: &Value) -> Result<Vec<ModelRef>, RefsError> {
    let mut refs = Vec::new();
    fn typed<T: serde::de::DeserializeOwned>(kind: &str, object: &Value) -> Result<T, RefsError> {
        serde_json::from_value(object.clone()).map_err(|e| RefsError::Malformed {
            kind: kind.to_string(),
            reason: e.to_string(),
        })
    }
    let k = kind.kind.as_str();
    match (kind.group.as_str(), kind.version.as_str(), k) {
        ("", "v1", "Pod") => {
            let pod: Pod = typed(k, object)?;
            annotation_refs(Some(&pod.metadata), "/metadata", &mut refs);
            spec_refs(pod.spec.as_ref(), "/spec", &mut refs);
        }
        ("apps", "v1", "Deployment") => {
            let d: Deployment = typed(k, object)?;
            annotation_refs(Some(&d.metadata), "/metadata", &mut refs);
            template_refs(
                d.spec.as_ref().map(|s| &s.template),
                "/spec/template",
                &mut refs,
            );
        }
        ("apps", "v1", "StatefulSet") => {
            let d: StatefulSet = typed(k, object)?;
            annotation_refs(Some(&d.metadata), "/metadata", &mut refs);
            template_refs(
                d.spec.as_ref().map(|s| &s.template),
                "/spec/template",
                &mut refs,
            );
        }
        ("apps", "v1", "DaemonSet") => {
            let d: DaemonSet = typed(k, object)?;
            annotation_refs(Some(&d.metadata), "/metadata", &mut refs);
            template_refs(
                d.spec.as_ref().map(|s| &s.template),
                "/spec/template",
                &mut refs,
            );
        }
        ("apps", "v1", "ReplicaSet") => {
            let d: ReplicaSet = typed(k, object)?;
            annotation_refs(Some(&d.metadata), "/metadata", &mut refs);
            let template = d.spec.as_ref().and_then(|s| s.template.as_ref());
            template_refs(template, "/spec/template", &mut refs);
        }
        ("batch", "v1", "Job") => {
            let d: Job = typed(k, object)?;
            annotation_refs(Some(&d.metadata), "/metadata", &mut refs);
            template_refs(
                d.spec.as_ref().map(|s| &s.template),
                "/spec/template",
                &mut refs,
            );
        }
        ("batch", "v1", "CronJob") => {
            let d: CronJob = typed(k, object)?;
            annotation_refs(Some(&d.metadata), "/metadata", &mut refs);
            let job = d.spec.as_ref().map(|s| &s.job_template);
            annotation_refs(
                job.and_then(|j| j.metadata.as_ref()),
                "/spec/jobTemplate/metadata",
                &mut refs,
            );
            let template = job.and_then(|j| j.spec.as_ref()).map(|s| &s.template);
            template_refs(template, "/spec/jobTemplate/spec/template", &mut refs);
        }
        ("serving.kserve.io", _, "InferenceService") => {
            let meta: ObjectMeta = object
                .get("metadata")
                .map(|m| typed("InferenceService", m))
                .transpose()?
                .unwrap_or_default();
            annotation_refs(Some(&meta), "/metadata", &mut refs);
            storage_uri_refs(object, &mut refs)?;
        }
        _ => {
            // Any other kind: only the annotation names models.
            let meta: Option<ObjectMeta> = object
                .get("metadata")
                .and_then(|m| serde_json::from_value(m.clone()).ok());
            annotation_refs(meta.as_ref(), "/metadata", &mut refs);
        }
    }
    if refs.len() > MAX_REFERENCES {
        return Err(RefsError::TooMany {
            count: refs.len(),
            max: MAX_REFERENCES,
        });
    }
    Ok(refs)
}

fn annotation_refs(meta: Option<&ObjectMeta>, at: &str, refs: &mut Vec<ModelRef>) {
    let Some(value) = meta
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(MODELS_ANNOTATION))
    else {
        return;
    };
    let pointer = format!("{at}/annotations/{}", pointer_token(MODELS_ANNOTATION));
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        refs.push(ModelRef {
            reference: entry.to_string(),
            pointer: pointer.clone(),
            source: Source::Annotation,
        });
    }
}

fn template_refs(template: Option<&PodTemplateSpec>, at: &str, refs: &mut Vec<ModelRef>) {
    let Some(template) = template else { return };
    annotation_refs(template.metadata.as_ref(), &format!("{at}/metadata"), refs);
    spec_refs(template.spec.as_ref(), &format!("{at}/spec"), refs);
}

fn spec_refs(spec: Option<&PodSpec>, at: &str, refs: &mut Vec<ModelRef>) {
    let volumes = spec.and_then(|s| s.volumes.as_ref());
    for (i, volume) in volumes.into_iter().flatten().enumerate() {
        if let Some(reference) = volume.image.as_ref().and_then(|i| i.reference.as_ref()) {
            refs.push(ModelRef {
                reference: reference.trim().to_string(),
                pointer: format!("{at}/volumes/{i}/image/reference"),
                source: Source::ImageVolume,
            });
        }
    }
}

/// `spec.predictor.model.storageUri` and `spec.predictor.<framework>.storageUri` with the
/// `oci://` scheme (other schemes are not OCI models and are left alone).
fn storage_uri_refs(object: &Value, refs: &mut Vec<ModelRef>) -> Result<(), RefsError> {
    let malformed = |reason: &str| RefsError::Malformed {
        kind: "InferenceService".into(),
        reason: reason.into(),
    };
    let Some(predictor) = object.get("spec").and_then(|s| s.get("predictor")) else {
        return Ok(());
    };
    let predictor = predictor
        .as_object()
        .ok_or_else(|| malformed("spec.predictor is not an object"))?;
    for (name, component) in predictor {
        let Some(uri) = component.get("storageUri") else {
            continue;
        };
        let uri = uri.as_str().ok_or_else(|| {
            malformed(&format!("spec.predictor.{name}.storageUri is not a string"))
        })?;
        if let Some(reference) = uri.trim().strip_prefix(OCI_SCHEME) {
            refs.push(ModelRef {
                reference: reference.to_string(),
                pointer: format!("/spec/predictor/{}/storageUri", pointer_token(name)),
                source: Source::StorageUri,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gvk(group: &str, version: &str, kind: &str) -> GroupVersionKind {
        GroupVersionKind::gvk(group, version, kind)
    }

    #[test]
    fn pod_image_volumes_and_annotation() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "annotations": {MODELS_ANNOTATION: "r.example/a:v1, r.example/b@sha256:aa"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [{"name": "cfg", "configMap": {"name": "x"}},
                                 {"name": "m", "image": {"reference": "r.example/team/bert:v1", "pullPolicy": "IfNotPresent"}}]}
        });
        let refs = find(&gvk("", "v1", "Pod"), &pod).unwrap();
        let got: Vec<_> = refs
            .iter()
            .map(|r| (r.reference.as_str(), r.pointer.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "r.example/a:v1",
                    "/metadata/annotations/oci-model.dev~1models"
                ),
                (
                    "r.example/b@sha256:aa",
                    "/metadata/annotations/oci-model.dev~1models"
                ),
                ("r.example/team/bert:v1", "/spec/volumes/1/image/reference"),
            ]
        );
        assert_eq!(refs[2].field(), "spec.volumes[1].image.reference");
        assert_eq!(
            refs[0].field(),
            "metadata.annotations[\"oci-model.dev/models\"]"
        );
    }

    #[test]
    fn workload_templates() {
        let template = json!({"metadata": {}, "spec": {"containers": [{"name": "c", "image": "x"}],
            "volumes": [{"name": "m", "image": {"reference": "r.example/m:v1"}}]}});
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {}, "template": template}});
        let refs = find(&gvk("apps", "v1", "Deployment"), &deploy).unwrap();
        assert_eq!(
            refs[0].pointer,
            "/spec/template/spec/volumes/0/image/reference"
        );
        let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}});
        let refs = find(&gvk("batch", "v1", "CronJob"), &cron).unwrap();
        assert_eq!(
            refs[0].pointer,
            "/spec/jobTemplate/spec/template/spec/volumes/0/image/reference"
        );
    }

    #[test]
    fn kserve_storage_uris_with_the_oci_scheme_only() {
        let isvc = json!({"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {"name": "s"},
            "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "storageUri": "oci://r.example/m:v1"},
                                   "sklearn": {"storageUri": "s3://bucket/model"}}}});
        let refs = find(
            &gvk("serving.kserve.io", "v1beta1", "InferenceService"),
            &isvc,
        )
        .unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].reference, "r.example/m:v1");
        assert_eq!(refs[0].pointer, "/spec/predictor/model/storageUri");
        assert_eq!(refs[0].source, Source::StorageUri);
    }

    #[test]
    fn malformed_objects_are_named() {
        let pod =
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {"volumes": "nope"}});
        let err = find(&gvk("", "v1", "Pod"), &pod).unwrap_err().to_string();
        assert!(err.contains("Pod object does not parse"), "{err}");
        let many = (0..=MAX_REFERENCES)
            .map(|i| format!("r.example/m{i}:v1"))
            .collect::<Vec<_>>()
            .join(",");
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"annotations": {MODELS_ANNOTATION: many}}});
        let err = find(&gvk("", "v1", "Pod"), &pod).unwrap_err().to_string();
        assert!(err.contains("at most 64"), "{err}");
    }

    #[test]
    fn objects_without_models_have_no_references() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        assert!(find(&gvk("", "v1", "Pod"), &pod).unwrap().is_empty());
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        assert!(find(&gvk("", "v1", "ConfigMap"), &cm).unwrap().is_empty());
    }
}
