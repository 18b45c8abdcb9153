//! `deploy/kubernetes/`: every manifest parses into the typed Kubernetes objects with nothing
//! lost (a misspelt field fails), each kustomization builds (resources and JSON patches
//! applied here, so no kubectl is needed), the webhook configurations point at the Service,
//! port and paths the admission server serves, `make-certs.sh` makes a CA and a serving
//! certificate for the Service's DNS names, and the init-container recipe's command runs
//! against the real registry with the manifest's own arguments and paths.

use crate::harness;
use crate::support::{keypair, output, push, sign, tree, write_model};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, Pod, PodSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const NAMESPACE: &str = "oci-model-system";
const SERVICE: &str = "oci-model-admission";
const OPT_IN_LABEL: (&str, &str) = ("oci-model.dev/verify", "enabled");
/// Where `oci-model admission` listens unless `--listen` says otherwise.
const SERVER_PORT: i32 = 8443;

fn deploy_dir() -> PathBuf {
    harness::project_root().join("deploy/kubernetes")
}

// ---------------------------------------------------------------------------------------------
// Reading manifests
// ---------------------------------------------------------------------------------------------

/// The YAML documents of a file as JSON values (empty documents skipped).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Parse `doc` as `T` and require that serializing it gives `doc` back: a field the type does
/// not know (a typo, a wrong level) would be dropped and fail here.
fn roundtrip<T: DeserializeOwned + Serialize>(doc: &Value, what: &str) -> T {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| {
        panic!(
            "{what}: does not parse as {}: {e}",
            std::any::type_name::<T>()
        )
    });
    let back = serde_json::to_value(&typed).unwrap();
    if let Some(at) = first_difference(doc, &back, "") {
        panic!(
            "{what}: parsed as {}, {at} was lost or changed (a misspelt or misplaced field?)",
            std::any::type_name::<T>()
        );
    }
    typed
}

/// The JSON pointer of the first place where `a` and `b` differ.
fn first_difference(a: &Value, b: &Value, at: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.keys()
                .chain(y.keys())
                .find_map(|k| match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => first_difference(p, q, &format!("{at}/{k}")),
                    _ => Some(format!("{at}/{k}")),
                })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, &format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some(if at.is_empty() { "/".into() } else { at.into() }),
    }
}

// cert-manager and KServe are custom resources: their fields are modelled here, strictly.

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CmCertificate {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: CmCertificateSpec,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CmCertificateSpec {
    secret_name: String,
    #[serde(default, rename = "isCA", skip_serializing_if = "Option::is_none")]
    is_ca: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    common_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renew_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_key: Option<CmPrivateKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    usages: Vec<String>,
    issuer_ref: CmIssuerRef,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CmPrivateKey {
    algorithm: String,
    size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotation_policy: Option<String>,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CmIssuerRef {
    name: String,
    kind: String,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CmIssuer {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: CmIssuerSpec,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CmIssuerSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    self_signed: Option<BTreeMap<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca: Option<CmCaIssuer>,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CmCaIssuer {
    secret_name: String,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InferenceService {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: IsvcSpec,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IsvcSpec {
    predictor: IsvcPredictor,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IsvcPredictor {
    model: IsvcModel,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IsvcModel {
    model_format: BTreeMap<String, String>,
    storage_uri: String,
}

/// One manifest, typed.
#[derive(Debug)]
enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ConfigMap(ConfigMap),
    Secret(Secret),
    Service(Service),
    Deployment(Box<Deployment>),
    Pod(Box<Pod>),
    PodDisruptionBudget(PodDisruptionBudget),
    Validating(ValidatingWebhookConfiguration),
    Mutating(MutatingWebhookConfiguration),
    Certificate(CmCertificate),
    Issuer(CmIssuer),
    InferenceService(InferenceService),
}

fn typed(doc: &Value, what: &str) -> Object {
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    match (api, kind) {
        ("v1", "Namespace") => Object::Namespace(roundtrip(doc, what)),
        ("v1", "ServiceAccount") => Object::ServiceAccount(roundtrip(doc, what)),
        ("v1", "ConfigMap") => Object::ConfigMap(roundtrip(doc, what)),
        ("v1", "Secret") => Object::Secret(roundtrip(doc, what)),
        ("v1", "Service") => Object::Service(roundtrip(doc, what)),
        ("v1", "Pod") => Object::Pod(Box::new(roundtrip(doc, what))),
        ("apps/v1", "Deployment") => Object::Deployment(Box::new(roundtrip(doc, what))),
        ("policy/v1", "PodDisruptionBudget") => Object::PodDisruptionBudget(roundtrip(doc, what)),
        ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration") => {
            Object::Validating(roundtrip(doc, what))
        }
        ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration") => {
            Object::Mutating(roundtrip(doc, what))
        }
        ("cert-manager.io/v1", "Certificate") => Object::Certificate(roundtrip(doc, what)),
        ("cert-manager.io/v1", "Issuer") => Object::Issuer(roundtrip(doc, what)),
        ("serving.kserve.io/v1beta1", "InferenceService") => {
            Object::InferenceService(roundtrip(doc, what))
        }
        _ => panic!("{what}: no typed model for apiVersion {api:?} kind {kind:?}"),
    }
}

/// Every file below `dir` whose name ends in `.yaml`, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// A small kustomize: resources (files and directories) and JSON 6902 patches with a target.
// Anything else in a kustomization fails the test, so the files cannot outgrow what is checked.
// ---------------------------------------------------------------------------------------------

fn kustomize(dir: &Path) -> Vec<Value> {
    let path = dir.join("kustomization.yaml");
    let doc = documents(&path).pop().expect("a kustomization document");
    let map = doc.as_object().expect("kustomization is a mapping");
    for key in map.keys() {
        assert!(
            ["apiVersion", "kind", "resources", "patches"].contains(&key.as_str()),
            "{}: key {key:?} is not modelled by this test's kustomize",
            path.display()
        );
    }
    assert_eq!(doc["apiVersion"], "kustomize.config.k8s.io/v1beta1");
    assert_eq!(doc["kind"], "Kustomization");
    let mut objects = Vec::new();
    for r in doc["resources"].as_array().expect("resources") {
        let p = dir.join(r.as_str().expect("resource path"));
        if p.is_dir() {
            objects.extend(kustomize(&p));
        } else {
            objects.extend(documents(&p));
        }
    }
    for patch in doc["patches"].as_array().into_iter().flatten() {
        let file = dir.join(patch["path"].as_str().expect("patch path"));
        let ops = documents(&file).pop().expect("patch document");
        let target = &patch["target"];
        let api_version = format!(
            "{}/{}",
            target["group"].as_str().unwrap(),
            target["version"].as_str().unwrap()
        );
        let mut matched = 0;
        for obj in objects.iter_mut() {
            if obj["apiVersion"] == api_version.as_str()
                && obj["kind"] == target["kind"]
                && obj["metadata"]["name"] == target["name"]
            {
                apply_json_patch(obj, &ops, &file);
                matched += 1;
            }
        }
        assert_eq!(
            matched,
            1,
            "{}: patch target {target} matched {matched} objects",
            path.display()
        );
    }
    objects
}

/// RFC 6902 `add` and `replace` (the operations the overlays use).
fn apply_json_patch(obj: &mut Value, ops: &Value, file: &Path) {
    for op in ops.as_array().expect("a JSON patch is a list") {
        let kind = op["op"].as_str().unwrap();
        let pointer = op["path"].as_str().unwrap();
        let (parent, last) = pointer.rsplit_once('/').unwrap();
        let last = last.replace("~1", "/").replace("~0", "~");
        let value = op["value"].clone();
        let target = obj
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{}: {pointer}: no parent {parent}", file.display()));
        match (kind, target) {
            ("add" | "replace", Value::Object(m)) => {
                assert!(
                    kind == "add" || m.contains_key(&last),
                    "replace of a missing {pointer}"
                );
                m.insert(last, value);
            }
            ("add", Value::Array(a)) if last == "-" => a.push(value),
            ("add", Value::Array(a)) => a.insert(last.parse().unwrap(), value),
            (k, _) => panic!("{}: op {k} at {pointer} is not modelled", file.display()),
        }
    }
}

/// The objects of a build, typed.
struct Build {
    objects: Vec<Object>,
}

impl Build {
    fn of(dir: &Path) -> Build {
        let name = dir.display().to_string();
        Build {
            objects: kustomize(dir)
                .iter()
                .map(|d| typed(d, &format!("{name}: {}", d["kind"])))
                .collect(),
        }
    }
    fn deployment(&self) -> &Deployment {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::Deployment(d) if d.metadata.name.as_deref() == Some(SERVICE) => Some(&**d),
                _ => None,
            })
            .expect("the webhook Deployment")
    }
    fn service(&self) -> &Service {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::Service(s) => Some(s),
                _ => None,
            })
            .expect("the Service")
    }
    fn validating(&self) -> &ValidatingWebhookConfiguration {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::Validating(v) => Some(v),
                _ => None,
            })
            .expect("the ValidatingWebhookConfiguration")
    }
    fn mutating(&self) -> &MutatingWebhookConfiguration {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::Mutating(v) => Some(v),
                _ => None,
            })
            .expect("the MutatingWebhookConfiguration")
    }
    fn config_map(&self, name: &str) -> &ConfigMap {
        self.objects
            .iter()
            .find_map(|o| match o {
                Object::ConfigMap(c) if c.metadata.name.as_deref() == Some(name) => Some(c),
                _ => None,
            })
            .unwrap_or_else(|| panic!("ConfigMap {name}"))
    }
    fn secret(&self, name: &str) -> Option<&Secret> {
        self.objects.iter().find_map(|o| match o {
            Object::Secret(s) if s.metadata.name.as_deref() == Some(name) => Some(s),
            _ => None,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The server's wiring: Deployment, Service, webhooks
// ---------------------------------------------------------------------------------------------

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .map(|i| args.get(i + 1).expect("flag value").as_str())
}

fn pod_spec(d: &Deployment) -> &PodSpec {
    d.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

/// The volume source mounted at the directory holding `file` in `container`, and the file name.
fn mounted<'a>(
    spec: &'a PodSpec,
    c: &Container,
    file: &str,
) -> (&'a k8s_openapi::api::core::v1::Volume, String) {
    let (dir, name) = file.rsplit_once('/').unwrap();
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == dir)
        .unwrap_or_else(|| panic!("{file}: nothing is mounted at {dir}"));
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap_or_else(|| panic!("volume {} is not declared", mount.name));
    (volume, name.to_string())
}

/// The checks every build of the webhook must pass; returns the TLS Secret's name.
fn check_wiring(build: &Build) -> String {
    // Service → Deployment → server port.
    let svc = build.service();
    assert_eq!(svc.metadata.name.as_deref(), Some(SERVICE));
    assert_eq!(svc.metadata.namespace.as_deref(), Some(NAMESPACE));
    let svc_spec = svc.spec.as_ref().unwrap();
    let ports = svc_spec.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, 443);
    let target = ports[0].target_port.clone().expect("targetPort");

    let d = build.deployment();
    assert_eq!(d.metadata.namespace.as_deref(), Some(NAMESPACE));
    let dspec = d.spec.as_ref().unwrap();
    assert_eq!(dspec.replicas, Some(2));
    let pod_labels = dspec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    for (k, v) in svc_spec.selector.as_ref().unwrap() {
        assert_eq!(
            pod_labels.get(k),
            Some(v),
            "the Service selects {k}={v}, the pods lack it"
        );
    }
    let spec = pod_spec(d);
    assert_eq!(spec.containers.len(), 1);
    let c = &spec.containers[0];
    let args = c.args.clone().unwrap();
    assert_eq!(args[0], "admission");
    let listen_port = flag(&args, "--listen")
        .map(|l| l.rsplit_once(':').unwrap().1.parse::<i32>().unwrap())
        .unwrap_or(SERVER_PORT);
    let container_port = c
        .ports
        .iter()
        .flatten()
        .find(|p| match &target {
            IntOrString::String(name) => p.name.as_deref() == Some(name),
            IntOrString::Int(n) => p.container_port == *n,
        })
        .expect("the Service's targetPort is a container port");
    assert_eq!(
        container_port.container_port, listen_port,
        "the server listens elsewhere"
    );

    // Non-root, read-only root file system, limits, probes on the server's paths.
    let pod_sc = spec.security_context.as_ref().unwrap();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert!(pod_sc.run_as_user.unwrap() > 0);
    // What the namespace's Pod Security "restricted" level requires.
    assert_eq!(
        pod_sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop,
        Some(vec!["ALL".to_string()])
    );
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert!(limits.contains_key("cpu") && limits.contains_key("memory"));
    for (probe, path) in [
        (&c.liveness_probe, "/healthz"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"));
        assert_eq!(get.port, IntOrString::String("https".into()));
    }

    // Certificate, key, policy and docker config come from the mounted volumes.
    let (tls, crt) = mounted(spec, c, flag(&args, "--tls-cert").expect("--tls-cert"));
    let (tls2, key) = mounted(spec, c, flag(&args, "--tls-key").expect("--tls-key"));
    assert_eq!(tls.name, tls2.name);
    assert_eq!((crt.as_str(), key.as_str()), ("tls.crt", "tls.key"));
    let tls_secret = tls.secret.as_ref().unwrap().secret_name.clone().unwrap();
    let (policy, policy_file) = mounted(spec, c, flag(&args, "--policy").expect("--policy"));
    let cm = build.config_map(&policy.config_map.as_ref().unwrap().name);
    let data = cm.data.as_ref().unwrap();
    assert!(
        data.contains_key(&policy_file),
        "the ConfigMap has no {policy_file}"
    );
    // The policy loads exactly as the server will: every key it names is in the ConfigMap.
    let dir = tempfile::tempdir().unwrap();
    for (k, v) in data {
        std::fs::write(dir.path().join(k), v).unwrap();
    }
    oci_model::verify::PolicyFile::load(&dir.path().join(&policy_file))
        .unwrap_or_else(|e| panic!("the shipped policy does not load: {e}"));
    let docker = flag(&args, "--docker-config").expect("--docker-config");
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == docker)
        .unwrap();
    let vol = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap();
    let items = vol.secret.as_ref().unwrap().items.clone().unwrap();
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        (".dockerconfigjson", "config.json")
    );

    // The webhooks: the Service, its port, the server's paths; fail closed, opt-in, in time.
    let deadline: i32 = flag(&args, "--deadline").unwrap_or("8").parse().unwrap();
    let v = build.validating().webhooks.clone().unwrap();
    let m = build.mutating().webhooks.clone().unwrap();
    assert_eq!((v.len(), m.len()), (1, 1));
    let hooks = [
        (
            "/validate",
            &v[0].client_config,
            &v[0].failure_policy,
            &v[0].side_effects,
            &v[0].admission_review_versions,
            v[0].timeout_seconds,
            &v[0].namespace_selector,
            &v[0].rules,
        ),
        (
            "/mutate",
            &m[0].client_config,
            &m[0].failure_policy,
            &m[0].side_effects,
            &m[0].admission_review_versions,
            m[0].timeout_seconds,
            &m[0].namespace_selector,
            &m[0].rules,
        ),
    ];
    for (path, client, failure, side_effects, versions, timeout, selector, rules) in hooks {
        let s = client.service.as_ref().expect("clientConfig.service");
        assert_eq!(s.name, SERVICE);
        assert_eq!(s.namespace, NAMESPACE);
        assert_eq!(s.port, Some(ports[0].port));
        assert_eq!(s.path.as_deref(), Some(path));
        assert!(client.url.is_none());
        assert_eq!(failure.as_deref(), Some("Fail"));
        assert_eq!(side_effects, "None");
        assert_eq!(versions, &vec!["v1".to_string()]);
        let timeout = timeout.expect("timeoutSeconds");
        assert!(
            timeout > deadline && timeout <= 30,
            "timeoutSeconds {timeout} vs --deadline {deadline}"
        );
        check_opt_in(selector.as_ref().expect("namespaceSelector"));
        check_rules(rules.as_ref().expect("rules"));
    }

    // The server calls no Kubernetes API: its pods get no service account token.
    let sa = build
        .objects
        .iter()
        .find_map(|o| match o {
            Object::ServiceAccount(s) => Some(s),
            _ => None,
        })
        .expect("the ServiceAccount");
    assert_eq!(spec.service_account_name, sa.metadata.name);
    assert_eq!(sa.automount_service_account_token, Some(false));
    assert_eq!(spec.automount_service_account_token, Some(false));

    // The webhook's own namespace is not judged by it.
    let ns = build
        .objects
        .iter()
        .find_map(|o| match o {
            Object::Namespace(n) => Some(n),
            _ => None,
        })
        .unwrap();
    assert_eq!(ns.metadata.name.as_deref(), Some(NAMESPACE));
    let ns_labels = ns.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        ns_labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    assert!(!ns
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .contains_key(OPT_IN_LABEL.0));
    tls_secret
}

fn check_opt_in(selector: &LabelSelector) {
    let labels = selector.match_labels.clone().unwrap();
    assert_eq!(labels.len(), 1);
    assert_eq!(
        labels.get(OPT_IN_LABEL.0).map(String::as_str),
        Some(OPT_IN_LABEL.1)
    );
}

fn check_rules(rules: &[RuleWithOperations]) {
    let wanted = [
        ("", "pods"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("apps", "replicasets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("serving.kserve.io", "inferenceservices"),
    ];
    for (group, resource) in wanted {
        let covered = rules.iter().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == resource)
                && r.operations.iter().flatten().any(|o| o == "CREATE")
        });
        assert!(
            covered,
            "no webhook rule covers {group}/{resource} on CREATE"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn deploy_every_manifest_parses_into_typed_kubernetes_objects() {
    let files = yaml_files(&deploy_dir());
    let mut kinds = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let what = file
            .strip_prefix(deploy_dir())
            .unwrap()
            .display()
            .to_string();
        if name == "kustomization.yaml" {
            continue; // read by kustomize() in the build tests
        }
        for doc in documents(file) {
            if name.ends_with(".patch.yaml") {
                for op in doc.as_array().expect("a JSON patch") {
                    assert!(
                        op["op"].is_string() && op["path"].is_string(),
                        "{what}: {op}"
                    );
                }
                continue;
            }
            let obj = typed(&doc, &what);
            kinds.push(format!("{:?}", std::mem::discriminant(&obj)));
        }
    }
    assert!(kinds.len() >= 15, "only {} manifests found", kinds.len());

    // Every manifest of a kustomization directory is one of its resources or patches.
    for dir in ["base", "cert-manager", "self-signed"] {
        let k = documents(&deploy_dir().join(dir).join("kustomization.yaml"))
            .pop()
            .unwrap();
        let mut listed: Vec<String> = k["resources"]
            .as_array()
            .unwrap()
            .iter()
            .chain(
                k["patches"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| &p["path"]),
            )
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        listed.push("kustomization.yaml".into());
        for f in yaml_files(&deploy_dir().join(dir)) {
            let rel = f
                .strip_prefix(deploy_dir().join(dir))
                .unwrap()
                .display()
                .to_string();
            assert!(listed.contains(&rel), "{dir}/{rel} is in no kustomization");
        }
    }
}

#[test]
fn deploy_base_wires_the_webhooks_to_the_service_and_the_server() {
    let build = Build::of(&deploy_dir().join("base"));
    let tls_secret = check_wiring(&build);
    // The base has no certificate: an overlay provides it.
    assert!(build.secret(&tls_secret).is_none());
    for hook in build.validating().webhooks.iter().flatten() {
        assert!(hook.client_config.ca_bundle.is_none());
    }
    assert!(build
        .objects
        .iter()
        .any(|o| matches!(o, Object::PodDisruptionBudget(p) if p.spec.as_ref().unwrap().min_available == Some(IntOrString::Int(1)))));
}

#[test]
fn deploy_cert_manager_overlay_issues_the_served_certificate_and_injects_its_ca() {
    let build = Build::of(&deploy_dir().join("cert-manager"));
    let tls_secret = check_wiring(&build);
    let certs: Vec<&CmCertificate> = build
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::Certificate(c) => Some(c),
            _ => None,
        })
        .collect();
    let serving = certs
        .iter()
        .find(|c| c.spec.secret_name == tls_secret)
        .expect("a Certificate writes the Secret the Deployment mounts");
    assert_eq!(
        serving.spec.dns_names,
        [
            format!("{SERVICE}.{NAMESPACE}.svc"),
            format!("{SERVICE}.{NAMESPACE}.svc.cluster.local")
        ]
    );
    assert!(serving.spec.usages.contains(&"server auth".to_string()));
    let serving_name = format!("{NAMESPACE}/{}", serving.metadata.name.as_deref().unwrap());
    let issuer_names: Vec<&str> = build
        .objects
        .iter()
        .filter_map(|o| match o {
            Object::Issuer(i) => i.metadata.name.as_deref(),
            _ => None,
        })
        .collect();
    for c in &certs {
        assert_eq!(c.spec.issuer_ref.kind, "Issuer");
        assert!(
            issuer_names.contains(&c.spec.issuer_ref.name.as_str()),
            "{}",
            c.spec.issuer_ref.name
        );
    }
    for meta in [&build.validating().metadata, &build.mutating().metadata] {
        let ann = meta.annotations.clone().expect("annotations");
        assert_eq!(
            ann.get("cert-manager.io/inject-ca-from"),
            Some(&serving_name)
        );
    }
}

fn openssl(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl")
}

#[test]
fn deploy_make_certs_makes_a_ca_and_a_serving_certificate_for_the_service() {
    // Work on a copy: the script writes into self-signed/generated beside itself.
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("kubernetes");
    for f in walkdir::WalkDir::new(deploy_dir())
        .into_iter()
        .map(|e| e.unwrap())
    {
        let rel = f.path().strip_prefix(deploy_dir()).unwrap();
        if rel.starts_with("self-signed/generated") {
            continue;
        }
        if f.file_type().is_dir() {
            std::fs::create_dir_all(copy.join(rel)).unwrap();
        } else {
            std::fs::copy(f.path(), copy.join(rel)).unwrap();
        }
    }
    let script = copy.join("make-certs.sh");
    let run = |args: &[&str]| {
        Command::new("bash")
            .arg(&script)
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = copy.join("self-signed/generated");

    // The certificate verifies against the CA for both Service names, and for no other.
    for host in [
        format!("{SERVICE}.{NAMESPACE}.svc"),
        format!("{SERVICE}.{NAMESPACE}.svc.cluster.local"),
    ] {
        let v = openssl(
            &[
                "verify",
                "-CAfile",
                "ca.crt",
                "-verify_hostname",
                &host,
                "tls.crt",
            ],
            &generated,
        );
        assert!(
            v.status.success(),
            "{host}: {}",
            String::from_utf8_lossy(&v.stdout)
        );
    }
    let v = openssl(
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-verify_hostname",
            "evil.example.com",
            "tls.crt",
        ],
        &generated,
    );
    assert!(!v.status.success(), "the certificate is valid for any name");
    // The key is the certificate's.
    let from_key = openssl(&["pkey", "-in", "tls.key", "-pubout"], &generated).stdout;
    let from_crt = openssl(&["x509", "-in", "tls.crt", "-noout", "-pubkey"], &generated).stdout;
    assert!(!from_key.is_empty());
    assert_eq!(from_key, from_crt);
    // Private keys are readable by the owner only.
    use std::os::unix::fs::PermissionsExt as _;
    for k in ["ca.key", "tls.key", "secret.yaml"] {
        let mode = std::fs::metadata(generated.join(k))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{k} is readable by others: {mode:o}");
    }

    // The overlay: the Secret the Deployment mounts, and the CA in both webhooks.
    let build = Build::of(&copy.join("self-signed"));
    let tls_secret = check_wiring(&build);
    let secret = build.secret(&tls_secret).expect("the TLS Secret");
    assert_eq!(secret.metadata.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = secret.data.as_ref().unwrap();
    let ca = std::fs::read(generated.join("ca.crt")).unwrap();
    assert_eq!(
        data["tls.crt"].0,
        std::fs::read(generated.join("tls.crt")).unwrap()
    );
    assert_eq!(
        data["tls.key"].0,
        std::fs::read(generated.join("tls.key")).unwrap()
    );
    let bundles: Vec<Vec<u8>> = build
        .validating()
        .webhooks
        .iter()
        .flatten()
        .map(|w| w.client_config.ca_bundle.clone().unwrap().0)
        .chain(
            build
                .mutating()
                .webhooks
                .iter()
                .flatten()
                .map(|w| w.client_config.ca_bundle.clone().unwrap().0),
        )
        .collect();
    assert_eq!(bundles, vec![ca.clone(), ca.clone()]);

    // A second run keeps the CA (the caBundle stays valid) and issues a new certificate.
    let first_crt = std::fs::read(generated.join("tls.crt")).unwrap();
    let out = run(&[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("reusing the CA"));
    assert_eq!(std::fs::read(generated.join("ca.crt")).unwrap(), ca);
    assert_ne!(std::fs::read(generated.join("tls.crt")).unwrap(), first_crt);

    // Other names, another directory; bad arguments are refused.
    let other = work.path().join("other");
    let out = run(&[
        "--out",
        other.to_str().unwrap(),
        "--namespace",
        "ns1",
        "--service",
        "hook",
        "--days",
        "30",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = openssl(
        &[
            "verify",
            "-CAfile",
            "ca.crt",
            "-verify_hostname",
            "hook.ns1.svc",
            "tls.crt",
        ],
        &other,
    );
    assert!(v.status.success());
    let secret: Secret = roundtrip(
        &documents(&other.join("secret.yaml")).pop().unwrap(),
        "secret.yaml",
    );
    assert_eq!(secret.metadata.name.as_deref(), Some("hook-tls"));
    assert_eq!(secret.metadata.namespace.as_deref(), Some("ns1"));
    for bad in [&["--days", "soon"][..], &["--frobnicate"][..]] {
        let out = run(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// The Deployment's arguments are flags of `oci-model admission`.
#[test]
fn deploy_arguments_are_flags_of_the_admission_command() {
    let build = Build::of(&deploy_dir().join("base"));
    let args = pod_spec(build.deployment()).containers[0]
        .args
        .clone()
        .unwrap();
    let (code, help, stderr) = crate::support::run(&["admission", "--help"]);
    assert_eq!(code, 0, "{stderr}");
    for a in args.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(a.as_str()),
            "`oci-model admission --help` has no {a}"
        );
    }
}

#[test]
fn deploy_examples_opt_in_and_reference_models() {
    let docs = documents(&deploy_dir().join("examples/image-volume.yaml"));
    let objs: Vec<Object> = docs.iter().map(|d| typed(d, "image-volume.yaml")).collect();
    let mut seen = 0;
    for o in &objs {
        match o {
            Object::Namespace(n) => {
                let labels = n.metadata.labels.clone().unwrap();
                assert_eq!(
                    labels.get(OPT_IN_LABEL.0).map(String::as_str),
                    Some(OPT_IN_LABEL.1)
                );
                seen += 1;
            }
            Object::Pod(p) => {
                let vols = p.spec.as_ref().unwrap().volumes.clone().unwrap();
                let image = vols[0].image.as_ref().expect("an image volume");
                assert!(image.reference.as_deref().unwrap().contains("/models/"));
                let ann = p.metadata.annotations.clone().unwrap();
                assert!(ann.contains_key("oci-model.dev/models"));
                seen += 1;
            }
            Object::InferenceService(i) => {
                assert!(i.spec.predictor.model.storage_uri.starts_with("oci://"));
                seen += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, 3);
}

// ---------------------------------------------------------------------------------------------
// The init-container recipe, run here
// ---------------------------------------------------------------------------------------------

/// The init container's command, with the container's paths mapped below `root` and the
/// registry host replaced; runs it and returns (exit code, stderr).
struct InitRecipe {
    args: Vec<String>,
    env: Vec<(String, String)>,
    models_dir: String,
    policy: ConfigMap,
    policy_mount: String,
}

fn init_recipe() -> InitRecipe {
    let file = deploy_dir().join("examples/init-container.yaml");
    let objs: Vec<Object> = documents(&file)
        .iter()
        .map(|d| typed(d, "init-container.yaml"))
        .collect();
    let mut policy = None;
    let mut deployment = None;
    for o in objs {
        match o {
            Object::ConfigMap(c) => policy = Some(c),
            Object::Deployment(d) => deployment = Some(d),
            other => panic!("unexpected {other:?}"),
        }
    }
    let (policy, d) = (policy.unwrap(), deployment.unwrap());
    let spec = pod_spec(&d);
    let inits = spec.init_containers.clone().unwrap();
    assert_eq!(inits.len(), 1);
    let init = &inits[0];
    let args = init.args.clone().unwrap();
    assert!(
        init.command.is_none(),
        "the image's entrypoint is oci-model"
    );
    assert_eq!(args[0], "pull");
    // pull TARGET DIR: the positional arguments.
    let positionals: Vec<&String> = {
        let mut out = Vec::new();
        let mut i = 1;
        while i < args.len() {
            if args[i].starts_with("--") {
                i += 2; // every flag the recipe uses takes a value
            } else {
                out.push(&args[i]);
                i += 1;
            }
        }
        out
    };
    assert_eq!(positionals.len(), 2, "{args:?}");
    let models_dir = positionals[1].clone();
    // DIR is an emptyDir the init container writes and the server mounts read-only.
    let init_mount = init
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == models_dir)
        .unwrap();
    assert_ne!(init_mount.read_only, Some(true));
    let vol = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == init_mount.name)
        .unwrap();
    assert!(vol.empty_dir.is_some(), "the models volume is an emptyDir");
    let server = &spec.containers[0];
    let server_mount = server
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == init_mount.name)
        .unwrap();
    assert_eq!(server_mount.read_only, Some(true));
    // The policy file is in the mounted ConfigMap.
    let policy_path = flag(&args, "--policy").expect("--policy");
    let (pvol, pfile) = mounted(spec, init, policy_path);
    assert_eq!(
        pvol.config_map.as_ref().unwrap().name,
        policy.metadata.name.clone().unwrap()
    );
    assert!(policy.data.as_ref().unwrap().contains_key(&pfile));
    let sc = init.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(
        spec.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    InitRecipe {
        env: init
            .env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone().unwrap()))
            .collect(),
        policy_mount: policy_path.rsplit_once('/').unwrap().0.to_string(),
        args,
        models_dir,
        policy,
    }
}

impl InitRecipe {
    /// The registry host the recipe names.
    fn host(&self) -> String {
        let target = &self.args[1];
        target.split('/').next().unwrap().to_string()
    }
    /// The repository path and tag after the host.
    fn repo_and_tag(&self) -> String {
        self.args[1].split_once('/').unwrap().1.to_string()
    }

    /// Lay out the container's file system below `root` (the ConfigMap's files, with the
    /// registry host and the key replaced) and run the command.
    fn run(&self, root: &Path, registry: &str, public_key: &Path) -> (i32, String) {
        let map = |p: &str| -> String {
            if p.starts_with('/') {
                format!("{}{p}", root.display())
            } else {
                p.replace(&self.host(), registry)
            }
        };
        let policy_dir = root.join(self.policy_mount.trim_start_matches('/'));
        std::fs::create_dir_all(&policy_dir).unwrap();
        for (k, v) in self.policy.data.as_ref().unwrap() {
            let content = if v.contains("BEGIN PUBLIC KEY") {
                std::fs::read_to_string(public_key).unwrap()
            } else {
                v.replace(&self.host(), registry)
            };
            std::fs::write(policy_dir.join(k), content).unwrap();
        }
        std::fs::create_dir_all(root.join(self.models_dir.trim_start_matches('/'))).unwrap();
        let mut cmd = harness::bin();
        cmd.args(self.args.iter().map(|a| map(a)));
        for (k, v) in &self.env {
            cmd.env(k, map(v));
        }
        let (code, _, stderr) = output(&mut cmd);
        (code, stderr)
    }
}

#[test]
fn deploy_init_container_recipe_pulls_only_a_model_that_passes_the_policy() {
    let recipe = init_recipe();
    let reg = harness::Registry::start();
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("bert");
    write_model(
        &model,
        &[
            ("config.json", br#"{"architectures":["Bert"]}"#),
            ("model.safetensors", &harness::pseudo_random(50_000, 3)),
            ("tokenizer/vocab.txt", b"[PAD]\n[UNK]\n"),
        ],
    );
    let target = format!("{}/{}", reg.host, recipe.repo_and_tag());
    push(&model, &target);
    let (key, public) = keypair(work.path(), "release");
    sign(&target, &key, &[]);

    let root = work.path().join("pod");
    let (code, stderr) = recipe.run(&root, &reg.host, &public);
    assert_eq!(code, 0, "the init container failed: {stderr}");
    let models = root.join(recipe.models_dir.trim_start_matches('/'));
    assert_eq!(tree(&models), tree(&model));

    // The tag now names an unsigned model: the init container fails, nothing is written.
    let unsigned = work.path().join("evil");
    write_model(
        &unsigned,
        &[("model.safetensors", b"not the model that was signed")],
    );
    push(&unsigned, &target);
    let root = work.path().join("pod2");
    let (code, stderr) = recipe.run(&root, &reg.host, &public);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("NOT verified: {target}@sha256:"))
            && stderr.contains("nothing was written"),
        "{stderr}"
    );
    let models = root.join(recipe.models_dir.trim_start_matches('/'));
    assert!(
        tree(&models).is_empty(),
        "files were written: {:?}",
        tree(&models).keys()
    );
}
