//! `oci-model admission` over real TLS: AdmissionReview v1 requests shaped like the API
//! server's (Pods with image volumes, Deployments, KServe InferenceServices, the annotation,
//! pods without models, malformed and oversized bodies) against the real registry with signed,
//! unsigned, wrongly signed and tampered models, a registry that never answers, a rotated
//! serving certificate and registry credentials from a docker config.

use crate::harness::{self, Registry};
use crate::hostile::{tls_files, Answer, Server};
use crate::sign_verify::{attach, oms_bundle};
use crate::support::{keypair, push, sign, write_model};
use base64::Engine as _;
use oci_model::media_types as mt;
use serde_json::{json, Value};
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `oci-model admission`, killed on drop.
struct Webhook {
    child: Child,
    /// `https://127.0.0.1:PORT`
    url: String,
    /// Everything it wrote on stderr so far.
    log: Arc<Mutex<String>>,
}

impl Webhook {
    /// Start it with `args` (besides --listen) and wait for its "listening on" line.
    fn start(args: &[&str]) -> Webhook {
        let mut all = vec!["admission", "--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut child = crate::signals::spawn(&all);
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line
                    .split("listening on https://")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                {
                    let _ = tx.send(addr.to_string());
                }
                log2.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                panic!("admission did not start: {}", log.lock().unwrap())
            });
        Webhook {
            child,
            url: format!("https://{addr}"),
            log,
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTPS client trusting one CA, with its own runtime (the tests are synchronous: the CLI
/// steps they run block).
struct Client {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Client {
    fn new(ca: &Path) -> Client {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let http = client(ca);
        Client { rt, http }
    }

    /// POST a body: (status, body text).
    fn post(&self, url: &str, body: Vec<u8>) -> (u16, String) {
        self.rt.block_on(async {
            let r = self
                .http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {url}: {e:?}"));
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        })
    }

    /// POST an AdmissionReview and read the response part of the answer.
    fn review(&self, url: &str, review: &Value) -> Value {
        let (status, body) = self.post(url, serde_json::to_vec(review).unwrap());
        assert_eq!(status, 200, "{url}: {body}");
        let answer: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{answer}");
        assert_eq!(answer["kind"], "AdmissionReview", "{answer}");
        assert_eq!(
            answer["response"]["uid"], review["request"]["uid"],
            "the answer names the request it answers"
        );
        answer["response"].clone()
    }

    fn get(&self, url: &str) -> (u16, String) {
        self.rt.block_on(async {
            let r = self.http.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    }
}

fn client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// An AdmissionReview v1 as the API server sends it for a CREATE by `kubectl apply`.
fn review(group: &str, version: &str, kind: &str, resource: &str, object: &Value) -> Value {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let gvk = json!({"group": group, "version": version, "kind": kind});
    let gvr = json!({"group": group, "version": version, "resource": resource});
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": format!("0df28fbd-5f5f-11e8-bc74-36e6bb280816-{n}"),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": object["metadata"]["name"],
            "namespace": "ml",
            "operation": "CREATE",
            "userInfo": {
                "username": "kubernetes-admin",
                "groups": ["kubeadm:cluster-admins", "system:authenticated"]
            },
            "object": object,
            "oldObject": null,
            "dryRun": false,
            "options": {
                "kind": "CreateOptions",
                "apiVersion": "meta.k8s.io/v1",
                "fieldManager": "kubectl-client-side-apply",
                "fieldValidation": "Strict"
            }
        }
    })
}

/// A pod spec (as the API server has defaulted it) mounting `model` as an image volume.
fn pod_spec(model: Option<&str>) -> Value {
    let mut spec = json!({
        "containers": [{
            "name": "server",
            "image": "ghcr.io/example/model-server:1.0",
            "resources": {},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": "IfNotPresent"
        }],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst",
        "serviceAccountName": "default",
        "serviceAccount": "default",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": 0,
        "tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ]
    });
    if let Some(model) = model {
        spec["containers"][0]["volumeMounts"] = json!([
            {"name": "kube-api-access", "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
            {"name": "model", "readOnly": true, "mountPath": "/models"}
        ]);
        spec["volumes"] = json!([
            {"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}], "defaultMode": 420}},
            {"name": "model", "image": {"reference": model, "pullPolicy": "IfNotPresent"}}
        ]);
    }
    spec
}

fn pod(name: &str, model: Option<&str>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml", "labels": {"app": "llm"}, "creationTimestamp": null},
        "spec": pod_spec(model),
        "status": {}
    })
}

fn deployment(name: &str, model: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "ml", "generation": 1, "creationTimestamp": null},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"labels": {"app": name}, "creationTimestamp": null},
                "spec": pod_spec(Some(model))
            }
        },
        "status": {}
    })
}

fn inference_service(name: &str, model: &str) -> Value {
    json!({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": "ml", "generation": 1, "creationTimestamp": null},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "huggingface"},
                    "storageUri": format!("oci://{model}"),
                    "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}
                }
            }
        }
    })
}

/// The JSONPatch of a `/mutate` answer, applied to `object`.
fn apply_patch(response: &Value, object: &Value) -> Value {
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(response["patchType"], "JSONPatch", "{response}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().expect("patch is base64 text"))
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).unwrap();
    patched
}

/// One counter or sample of the /metrics text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// Certificates, keys and the policy of one test.
struct Setup {
    dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    policy: PathBuf,
    alice: PathBuf,
    bob: PathBuf,
}

/// `hosts`: repository patterns that need Alice's signature.
fn setup(patterns: &[String]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("tls");
    std::fs::create_dir(&certs).unwrap();
    let (ca, cert, key) = tls_files(&certs);
    let (alice, alice_pub) = keypair(dir.path(), "alice");
    let (bob, _) = keypair(dir.path(), "bob");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1\npolicies:\n  - repositories: {}\n    signers:\n      - key: {}\n",
            serde_json::to_string(patterns).unwrap(),
            alice_pub.display()
        ),
    )
    .unwrap();
    Setup {
        dir,
        ca,
        cert,
        key,
        policy,
        alice,
        bob,
    }
}

impl Setup {
    fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
            "--policy".into(),
            self.policy.display().to_string(),
        ]
    }
}

fn start(s: &Setup, extra: &[&str]) -> Webhook {
    let mut args = s.args();
    args.extend(extra.iter().map(|a| a.to_string()));
    Webhook::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A model directory of `files` files.
fn model(root: &Path, name: &str, files: usize) -> PathBuf {
    let dir = root.join(name);
    for i in 0..files {
        write_model(
            &dir,
            &[(
                &format!("shard-{i}.safetensors"),
                &harness::pseudo_random(20_000, i as u64 + 1),
            )],
        );
    }
    write_model(&dir, &[("config.json", b"{\"hidden_size\":8}\n")]);
    dir
}

#[test]
fn models_are_verified_before_admission_and_pinned_by_mutate() {
    let reg = Registry::start();
    let s = setup(&[format!("{}/test/**", reg.host)]);
    let repo = harness::repo("admission");
    let tag = |t: &str| format!("{}/{repo}:{t}", reg.host);
    let src = model(s.dir.path(), "m", 3);
    // Signed by Alice (the policy's key).
    let signed = tag("signed");
    let digest = push(&src, &signed);
    sign(&signed, &s.alice, &[]);
    // Not signed at all; signed by Bob; changed files carrying Alice's model signature.
    let unsigned_dir = model(s.dir.path(), "u", 2);
    let unsigned = tag("unsigned");
    push(&unsigned_dir, &unsigned);
    let wrong = tag("wrong");
    push(&model(s.dir.path(), "w", 4), &wrong);
    sign(&wrong, &s.bob, &[]);
    let tampered_dir = model(s.dir.path(), "t", 3);
    write_model(
        &tampered_dir,
        &[("shard-1.safetensors", b"swapped weights")],
    );
    let tampered = tag("tampered");
    push(&tampered_dir, &tampered);
    let c = Client::new(&s.ca);
    c.rt.block_on(async {
        let bundle = oms_bundle(&signed).await;
        attach(&tampered, &bundle, mt::PREDICATE_MODEL_SIGNING).await;
    });

    let hook = start(&s, &[]);
    let validate = format!("{}/validate", hook.url);
    let mutate = format!("{}/mutate", hook.url);

    // A signed model in an image volume: allowed; /mutate pins the tag to the digest.
    let object = pod("llm", Some(&signed));
    let r = c.review(&validate, &review("", "v1", "Pod", "pods", &object));
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("patch").is_none(), "validate never patches: {r}");
    let r = c.review(&mutate, &review("", "v1", "Pod", "pods", &object));
    let patched = apply_patch(&r, &object);
    let pinned = format!("{}/{repo}@{digest}", reg.host);
    let typed: k8s_openapi::api::core::v1::Pod = serde_json::from_value(patched).unwrap();
    let volumes = typed.spec.unwrap().volumes.unwrap();
    assert_eq!(
        volumes[1].image.as_ref().unwrap().reference.as_deref(),
        Some(pinned.as_str())
    );

    // A reference already by digest is verified and left as written.
    let object = pod("llm-pinned", Some(&pinned));
    let r = c.review(&mutate, &review("", "v1", "Pod", "pods", &object));
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("patch").is_none(), "{r}");

    // A Deployment's pod template.
    let object = deployment("llm", &signed);
    let req = review("apps", "v1", "Deployment", "deployments", &object);
    assert_eq!(c.review(&validate, &req)["allowed"], true);
    let patched = apply_patch(&c.review(&mutate, &req), &object);
    let typed: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(patched).unwrap();
    let volumes = typed.spec.unwrap().template.spec.unwrap().volumes.unwrap();
    assert_eq!(
        volumes[1].image.as_ref().unwrap().reference.as_deref(),
        Some(pinned.as_str())
    );

    // A KServe InferenceService with storageUri oci://….
    let object = inference_service("llm", &signed);
    let req = review(
        "serving.kserve.io",
        "v1beta1",
        "InferenceService",
        "inferenceservices",
        &object,
    );
    assert_eq!(c.review(&validate, &req)["allowed"], true);
    let patched = apply_patch(&c.review(&mutate, &req), &object);
    assert_eq!(
        patched["spec"]["predictor"]["model"]["storageUri"],
        format!("oci://{pinned}")
    );

    // The annotation, on any object: every entry must verify.
    let mut object = pod("annotated", None);
    object["metadata"]["annotations"] =
        json!({"oci-model.dev/models": format!("{signed}, {pinned}")});
    let r = c.review(&mutate, &review("", "v1", "Pod", "pods", &object));
    let patched = apply_patch(&r, &object);
    assert_eq!(
        patched["metadata"]["annotations"]["oci-model.dev/models"],
        format!("{pinned},{pinned}")
    );

    // Refusals name the reference, the field and the failed check.
    for reference in [&unsigned, &wrong, &tampered] {
        let object = pod("bad", Some(reference));
        for url in [&validate, &mutate] {
            let r = c.review(url, &review("", "v1", "Pod", "pods", &object));
            assert_eq!(r["allowed"], false, "{reference}: {r}");
            assert!(r.get("patch").is_none(), "{r}");
            assert_eq!(r["status"]["code"], 403, "{r}");
            let message = r["status"]["message"].as_str().unwrap();
            assert!(
                message.contains(&format!(
                    "{reference} (spec.volumes[1].image.reference): signature check failed: "
                )),
                "{message}"
            );
        }
    }
    let why = |reference: &str| {
        let r = c.review(
            &validate,
            &review("", "v1", "Pod", "pods", &pod("bad", Some(reference))),
        );
        r["status"]["message"].as_str().unwrap().to_string()
    };
    let m = why(&unsigned);
    assert!(
        m.contains("no signatures or attestations are attached"),
        "{m}"
    );
    let m = why(&wrong);
    assert!(
        m.contains("no valid signature from a trusted signer")
            && m.contains("the bundle says it was signed with a different key"),
        "{m}"
    );
    let m = why(&tampered);
    assert!(m.contains("changed file shard-1.safetensors"), "{m}");
    eprintln!("denial of a tampered model: {m}");
    // One bad reference among good ones denies the whole object, naming only the bad one.
    let mut object = deployment("mixed", &signed);
    object["metadata"]["annotations"] = json!({"oci-model.dev/models": unsigned});
    let r = c.review(
        &validate,
        &review("apps", "v1", "Deployment", "deployments", &object),
    );
    let m = r["status"]["message"].as_str().unwrap();
    assert!(
        m.starts_with("oci-model denied 1 of 2 model reference(s): ")
            && m.contains("metadata.annotations[\"oci-model.dev/models\"]")
            && !m.contains(&signed),
        "{m}"
    );
    // Repositories the policy does not cover are refused without asking any registry; names
    // oci-model cannot verify (a layout path, no registry host) are refused as such.
    for (reference, expected) in [
        ("registry.invalid/other/model:v1", "policy check failed: "),
        ("oci:/etc", "reference check failed: "),
        ("bert:v1", "reference check failed: "),
        (
            &format!("{}/{repo}:no-such-tag", reg.host),
            "registry check failed: ",
        ),
    ] {
        let m = why(reference);
        assert!(m.contains(expected), "{reference}: {m}");
    }

    // The metrics count what happened; the signed digest was verified once, then cached.
    let (status, text) = c.get(&format!("{}/metrics", hook.url));
    assert_eq!(status, 200);
    assert!(
        metric(&text, "oci_model_admission_cache_hits_total") >= 8.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "oci_model_admission_verifications_total{result=\"verified\"}"
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "oci_model_admission_requests_total{endpoint=\"validate\"}"
        ),
        metric(
            &text,
            "oci_model_admission_allowed_total{endpoint=\"validate\"}"
        ) + metric(
            &text,
            "oci_model_admission_denied_total{endpoint=\"validate\"}"
        )
    );
    assert_eq!(
        metric(
            &text,
            "oci_model_admission_denied_total{endpoint=\"mutate\"}"
        ),
        3.0,
        "{text}"
    );
    assert!(
        metric(
            &text,
            "oci_model_admission_verification_seconds_count{cache=\"hit\"}"
        ) >= 8.0,
        "{text}"
    );
    assert_eq!(c.get(&format!("{}/healthz", hook.url)).0, 200);
    assert_eq!(c.get(&format!("{}/readyz", hook.url)).0, 200);
}

#[test]
fn requests_without_models_pass_and_bad_requests_are_refused() {
    let s = setup(&["**".to_string()]);
    let hook = start(&s, &[]);
    let c = Client::new(&s.ca);
    let validate = format!("{}/validate", hook.url);
    let mutate = format!("{}/mutate", hook.url);

    // No model: allowed untouched, on both endpoints.
    let object = pod("web", None);
    for url in [&validate, &mutate] {
        let r = c.review(url, &review("", "v1", "Pod", "pods", &object));
        assert_eq!(r["allowed"], true, "{r}");
        assert!(r.get("patch").is_none(), "{r}");
    }
    // A delete carries no object: allowed.
    let mut req = review(
        "",
        "v1",
        "Pod",
        "pods",
        &pod("gone", Some("r.example/m:v1")),
    );
    req["request"]["operation"] = json!("DELETE");
    req["request"]["oldObject"] = req["request"]["object"].take();
    assert_eq!(c.review(&validate, &req)["allowed"], true);

    // An object that does not parse as its kind: denied, saying so.
    let mut object = pod("broken", None);
    object["spec"]["volumes"] = json!("not a list");
    let r = c.review(&validate, &review("", "v1", "Pod", "pods", &object));
    assert_eq!(r["allowed"], false, "{r}");
    let m = r["status"]["message"].as_str().unwrap();
    assert!(
        m.contains("the Pod object does not parse as a Kubernetes Pod"),
        "{m}"
    );

    // Not an AdmissionReview, the wrong version, no request: 400 with the reason.
    for (body, expected) in [
        (b"{not json".to_vec(), "not an AdmissionReview"),
        (
            serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": review("", "v1", "Pod", "pods", &object)["request"]})).unwrap(),
            "admission.k8s.io/v1beta1",
        ),
        (
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            "has no request",
        ),
    ] {
        let (status, text) = c.post(&validate, body);
        assert_eq!(status, 400, "{text}");
        assert!(text.contains(expected), "{text}");
    }

    // Oversized: refused at the cap, not read to the end.
    let mut big = pod("big", None);
    big["metadata"]["annotations"] = json!({"filler": "x".repeat(7 << 20)});
    let (status, text) = c.post(
        &mutate,
        serde_json::to_vec(&review("", "v1", "Pod", "pods", &big)).unwrap(),
    );
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("larger than the 6 MiB"), "{text}");

    let (_, text) = c.get(&format!("{}/metrics", hook.url));
    assert_eq!(
        metric(&text, "oci_model_admission_invalid_requests_total"),
        4.0,
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            "oci_model_admission_denied_total{endpoint=\"validate\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "oci_model_admission_allowed_total{endpoint=\"validate\"}"
        ),
        2.0
    );
    assert_eq!(metric(&text, "oci_model_admission_cache_misses_total"), 0.0);
}

#[test]
fn a_registry_that_never_answers_is_denied_at_the_deadline() {
    let silent = Server::start(|_, _| Answer::hang());
    let s = setup(&[format!("{}/**", silent.addr)]);
    let hook = start(&s, &["--deadline", "2"]);
    let c = Client::new(&s.ca);
    let reference = format!("{}/team/model:v1", silent.addr);
    let started = Instant::now();
    let r = c.review(
        &format!("{}/validate", hook.url),
        &review("", "v1", "Pod", "pods", &pod("slow", Some(&reference))),
    );
    let took = started.elapsed();
    assert_eq!(r["allowed"], false, "{r}");
    let m = r["status"]["message"].as_str().unwrap();
    assert!(
        m.contains(&reference)
            && m.contains(
                "deadline check failed: verification did not finish within the 2 s deadline (failing closed)"
            ),
        "{m}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "answered after {took:?}"
    );
    assert!(!silent.seen().is_empty(), "the registry was asked");
    let (_, text) = c.get(&format!("{}/metrics", hook.url));
    assert_eq!(
        metric(
            &text,
            "oci_model_admission_verifications_total{result=\"timeout\"}"
        ),
        1.0
    );
}

#[test]
fn the_serving_certificate_is_reloaded_when_its_files_change() {
    let s = setup(&["**".to_string()]);
    let hook = start(&s, &[]);
    let healthz = format!("{}/healthz", hook.url);
    let get = |ca: &Path| -> Result<u16, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            client(ca)
                .get(&healthz)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| format!("{e:?}"))
        })
    };
    assert_eq!(get(&s.ca), Ok(200));
    // A new CA and serving certificate, written over the files the way a secret update lands.
    let next = s.dir.path().join("next");
    std::fs::create_dir(&next).unwrap();
    let (ca2, cert2, key2) = tls_files(&next);
    assert!(
        get(&ca2).is_err(),
        "the new CA does not trust the old certificate"
    );
    for (from, to) in [(&key2, &s.key), (&cert2, &s.cert)] {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&ca2) != Ok(200) {
        assert!(
            Instant::now() < deadline,
            "new certificate not served: {}",
            hook.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        get(&s.ca).is_err(),
        "the old certificate is no longer served"
    );
}

#[test]
fn registry_credentials_come_from_the_docker_config() {
    let reg = Registry::start_with_htpasswd("puller", "pull-Secret-1");
    let s = setup(&[format!("{}/**", reg.host)]);
    let target = format!("{}/team/private:v1", reg.host);
    let src = model(s.dir.path(), "private", 2);
    let login = |args: &[&str]| {
        let out = harness::bin()
            .args(args)
            .args(["-u", "puller", "--password-stdin"])
            .write_stdin("pull-Secret-1\n")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    login(&["push", src.to_str().unwrap(), &target]);
    login(&["sign", &target, "--key", s.alice.to_str().unwrap()]);
    // An image pull secret's config.json, mounted as a directory.
    let secret = s.dir.path().join("pull-secret");
    std::fs::create_dir(&secret).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("puller:pull-Secret-1");
    std::fs::write(
        secret.join("config.json"),
        serde_json::to_vec(&json!({"auths": {reg.host.clone(): {"auth": auth}}})).unwrap(),
    )
    .unwrap();
    let object = pod("private", Some(&target));
    let c = Client::new(&s.ca);

    let without = start(&s, &[]);
    let r = c.review(
        &format!("{}/validate", without.url),
        &review("", "v1", "Pod", "pods", &object),
    );
    assert_eq!(r["allowed"], false, "{r}");
    let m = r["status"]["message"].as_str().unwrap();
    assert!(
        m.contains("registry check failed: authentication to"),
        "{m}"
    );

    let with = start(&s, &["--docker-config", secret.to_str().unwrap()]);
    let r = c.review(
        &format!("{}/validate", with.url),
        &review("", "v1", "Pod", "pods", &object),
    );
    assert_eq!(r["allowed"], true, "{r}");
}

/// Replace `path` with `content` the way a ConfigMap update lands: a new file renamed over it.
fn replace_file(path: &Path, content: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_changed_policy_or_key_applies_at_once_and_empties_the_cache() {
    let reg = Registry::start();
    let s = setup(&[format!("{}/test/**", reg.host)]);
    let target = format!("{}/{}:v1", reg.host, harness::repo("admission-reload"));
    push(&model(s.dir.path(), "m", 2), &target);
    sign(&target, &s.alice, &[]);
    let hook = start(&s, &[]);
    let c = Client::new(&s.ca);
    let validate = format!("{}/validate", hook.url);
    let object = pod("llm", Some(&target));
    let ask = || c.review(&validate, &review("", "v1", "Pod", "pods", &object));
    let metrics = || c.get(&format!("{}/metrics", hook.url)).1;
    // Waits until the answer's `allowed` is `want` (the files are looked at every second).
    let until = |want: bool, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = ask();
            if r["allowed"] == want {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: still {r}\n{}",
                hook.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert_eq!(ask()["allowed"], true);
    assert_eq!(ask()["allowed"], true);
    assert_eq!(
        metric(&metrics(), "oci_model_admission_cache_hits_total"),
        1.0
    );

    // The key file the policy names now holds Bob's key: Alice's signature no longer counts,
    // and the cached "verified" for this digest is not served.
    let bob_pub = std::fs::read(s.bob.with_extension("pub")).unwrap();
    let alice_pub = s.alice.with_extension("pub");
    let alice_key = std::fs::read(&alice_pub).unwrap();
    replace_file(&alice_pub, &bob_pub);
    let r = until(false, "key file replaced");
    let message = r["status"]["message"].as_str().unwrap();
    assert!(message.contains("signature check failed"), "{message}");
    let text = metrics();
    assert_eq!(
        metric(
            &text,
            "oci_model_admission_policy_reloads_total{result=\"ok\"}"
        ),
        1.0
    );

    // A policy file that does not load keeps the policy in force (still denied), counted.
    replace_file(&s.policy, b"version: 1\npolicies: [this is not a policy\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(
        &metrics(),
        "oci_model_admission_policy_reloads_total{result=\"failed\"}",
    ) < 1.0
    {
        assert!(Instant::now() < deadline, "{}", hook.log.lock().unwrap());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(ask()["allowed"], false);
    assert!(
        hook.log
            .lock()
            .unwrap()
            .contains("keeping the current policy"),
        "{}",
        hook.log.lock().unwrap()
    );

    // A valid policy naming Alice's key again (at a new path): allowed again.
    let trusted = s.dir.path().join("trusted.pub");
    std::fs::write(&trusted, &alice_key).unwrap();
    replace_file(
        &s.policy,
        format!(
            "version: 1\npolicies:\n  - repositories: [\"{}/test/**\"]\n    signers:\n      - key: {}\n",
            reg.host,
            trusted.display()
        )
        .as_bytes(),
    );
    until(true, "policy naming Alice's key again");
    assert_eq!(
        metric(
            &metrics(),
            "oci_model_admission_policy_reloads_total{result=\"ok\"}"
        ),
        2.0
    );
}

/// The pods of a rollout arrive together: six requests for one model whose registry answers
/// slowly (a proxy holds each referrers lookup back 1.5 s) are all allowed after one
/// verification, not six.
#[test]
fn requests_for_a_digest_being_verified_wait_for_that_verification() {
    let reg = Registry::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let slow: crate::registry::Hook = Box::new(|m, p, _| {
        let lookup = p.contains("/referrers/") || p.contains("/manifests/sha256-");
        (*m == reqwest::Method::GET && lookup).then(|| {
            axum::response::Response::builder()
                .header(crate::registry::DELAY_MS, "1500")
                .body(axum::body::Body::empty())
                .unwrap()
        })
    });
    let proxy = rt.block_on(crate::registry::Proxy::start(&reg.host, slow));
    let s = setup(&[format!("{}/test/**", proxy.host)]);
    let repo = harness::repo("admission-shared");
    let direct = format!("{}/{repo}:v1", reg.host);
    push(&model(s.dir.path(), "m", 2), &direct);
    sign(&direct, &s.alice, &[]);
    let hook = start(&s, &[]);
    let validate = format!("{}/validate", hook.url);
    let object = pod("llm", Some(&format!("{}/{repo}:v1", proxy.host)));
    let answers: Vec<Value> = std::thread::scope(|scope| {
        let asks: Vec<_> = (0..6)
            .map(|_| {
                scope.spawn(|| {
                    Client::new(&s.ca).review(&validate, &review("", "v1", "Pod", "pods", &object))
                })
            })
            .collect();
        asks.into_iter().map(|a| a.join().unwrap()).collect()
    });
    for r in &answers {
        assert_eq!(r["allowed"], true, "{r}");
    }
    let (_, text) = Client::new(&s.ca).get(&format!("{}/metrics", hook.url));
    assert_eq!(
        metric(&text, "oci_model_admission_cache_misses_total"),
        1.0,
        "{text}"
    );
    let shared = metric(&text, "oci_model_admission_verifications_shared_total");
    let hits = metric(&text, "oci_model_admission_cache_hits_total");
    assert_eq!(shared + hits, 5.0, "{text}");
    assert!(
        shared >= 1.0,
        "no request waited for the running one: {text}"
    );
}
