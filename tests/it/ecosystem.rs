//! What the rest of the ecosystem writes, and whether it reads what we write (issue 13):
//! referrer indexes as `skopeo copy --all` leaves them (entries without `artifactType`), plain
//! OCI images, multi-arch indexes and ORAS-style artifacts put in a real registry by `skopeo`
//! (signed, attested, verified, discovered, copied), models with the legacy pre-CNCF
//! `vnd.cnai.model` media types, and the config `push` writes checked against the ModelPack
//! model-spec's published JSON schema.
//!
//! Inputs are built here as OCI image layouts (blobs, `index.json`), the form skopeo reads.

use crate::harness::{self, Registry};
use crate::support::{keypair, push, run, run_json, sign, testdata, tree, write_model};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An OCI image layout written by hand, blob by blob.
struct Layout {
    dir: PathBuf,
    manifests: Vec<Value>,
}

impl Layout {
    fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
            manifests: Vec::new(),
        }
    }

    /// Store `bytes` as a blob; its descriptor.
    fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(self.dir.join("blobs/sha256").join(&hex), bytes).unwrap();
        json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": bytes.len()})
    }

    /// Store a manifest (or index) and, with `tag`, name it in `index.json`.
    fn manifest(&mut self, manifest: &Value, tag: Option<&str>) -> Value {
        let media_type = manifest["mediaType"].as_str().unwrap().to_string();
        let d = self.blob(&media_type, &serde_json::to_vec(manifest).unwrap());
        if let Some(tag) = tag {
            let mut entry = d.clone();
            entry["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
            self.manifests.push(entry);
            std::fs::write(
                self.dir.join("index.json"),
                serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": self.manifests}))
                    .unwrap(),
            )
            .unwrap();
        }
        d
    }

    /// A container image (OCI config + one gzip tar layer holding `hello.txt`) for `arch`.
    fn image(&mut self, arch: &str, tag: Option<&str>) -> Value {
        let (layer, diff_id) = tar_gz(&format!("hello from {arch}\n"));
        let layer = self.blob("application/vnd.oci.image.layer.v1.tar+gzip", &layer);
        let config = self.blob(
            "application/vnd.oci.image.config.v1+json",
            &serde_json::to_vec(&json!({
                "architecture": arch, "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "config": {"Cmd": ["/bin/true"]}
            }))
            .unwrap(),
        );
        self.manifest(
            &json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config,
                "layers": [layer]
            }),
            tag,
        )
    }
}

/// A real gzip-compressed tar of one file (made by `tar` and `gzip -n`) and its diff ID.
fn tar_gz(content: &str) -> (Vec<u8>, String) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("hello.txt"), content).unwrap();
    let tar = Command::new("tar")
        .args([
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "-cf",
            "-",
            "hello.txt",
        ])
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(tar.status.success());
    let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar.stdout)));
    let mut gzip = Command::new("gzip")
        .args(["-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    gzip.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    let out = gzip.wait_with_output().unwrap();
    assert!(out.status.success());
    (out.stdout, diff_id)
}

/// `skopeo copy [--all] SRC DST` between layouts and loopback (plain HTTP) registries.
fn skopeo_copy(all: bool, src: &str, dst: &str) {
    let mut cmd = Command::new("skopeo");
    cmd.arg("copy");
    if all {
        cmd.arg("--all");
    }
    let out = cmd
        .args([
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            src,
            dst,
        ])
        .output()
        .expect("run skopeo (apt package skopeo; scripts/deps.sh installs it)");
    assert!(
        out.status.success(),
        "skopeo copy {src} {dst}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `verify TARGET --key PUB EXTRA… -o json`: (exit code, report).
fn verify(target: &str, key: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["verify", target, "--key", key.to_str().unwrap()];
    args.extend(extra);
    args.extend(["--output", "json"]);
    let (code, stdout, stderr) = run(&args);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (code, report, stderr)
}

/// The predicate types of the bundles a verify report shows as verified.
fn verified_predicates(report: &Value) -> Vec<String> {
    let mut v: Vec<String> = report["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["ok"] == true)
        .map(|b| b["predicateType"].as_str().unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

/// Every referrer digest `discover` lists for `target` (one level).
fn discovered(target: &str) -> Vec<String> {
    let d = run_json(&["discover", target]);
    let mut v: Vec<String> = d["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// A predicate file for `attest --predicate`.
fn predicate_file(dir: &Path) -> PathBuf {
    let p = dir.join("predicate.json");
    std::fs::write(&p, r#"{"note":"scanned"}"#).unwrap();
    p
}

fn attest(target: &str, key: &Path, predicate: &Path) {
    let (code, _, stderr) = run(&[
        "attest",
        target,
        "--key",
        key.to_str().unwrap(),
        "--predicate",
        predicate.to_str().unwrap(),
        "--type",
        "https://example.com/scan/v1",
    ]);
    assert_eq!(code, 0, "{stderr}");
}

/// A model signed and attested in one registry; its tag and fallback referrers index copied to
/// another by `skopeo copy --all`, which drops `artifactType` from the index entries. discover
/// and verify on the copy still agree on all three referrers, and verification passes.
#[test]
fn skopeo_copied_fallback_index_without_artifact_types_verifies() {
    let (a, b) = (Registry::start(), Registry::start());
    let repo = harness::repo("skopeo-fallback");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    write_model(
        &model,
        &[("config.json", b"{}"), ("model.safetensors", b"weights")],
    );
    let src = format!("{}/{repo}:v1", a.host);
    let digest = push(&model, &src);
    let (key, public) = keypair(tmp.path(), "k");
    sign(&src, &key, &[]);
    attest(&src, &key, &predicate_file(tmp.path()));
    assert_eq!(discovered(&src).len(), 3);

    let fallback = format!("sha256-{}", digest.strip_prefix("sha256:").unwrap());
    skopeo_copy(
        true,
        &format!("docker://{src}"),
        &format!("docker://{}/{repo}:v1", b.host),
    );
    skopeo_copy(
        true,
        &format!("docker://{}/{repo}:{fallback}", a.host),
        &format!("docker://{}/{repo}:{fallback}", b.host),
    );
    // The condition under test: the copied index lists three referrers, none with a type.
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/{repo}:{fallback}", b.host))
        .output()
        .unwrap();
    assert!(raw.status.success());
    let index: Value = serde_json::from_slice(&raw.stdout).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{index}");
    assert!(
        entries.iter().all(|e| e.get("artifactType").is_none()),
        "skopeo kept artifactType: {index}"
    );

    let copy = format!("{}/{repo}:v1", b.host);
    let listed = discovered(&copy);
    assert_eq!(listed, discovered(&src));
    let (code, report, stderr) = verify(
        &copy,
        &public,
        &["--attestation-type", "https://example.com/scan/v1"],
    );
    assert_eq!(code, 0, "{stderr}\n{report}");
    let checks = report["checks"].to_string();
    assert!(checks.contains("3 Sigstore bundle(s) attached"), "{checks}");
    let mut bundles: Vec<String> = report["bundles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["source"].as_str().unwrap().replace("referrer ", ""))
        .collect();
    bundles.sort();
    assert_eq!(bundles, listed, "verify and discover disagree");
    assert_eq!(
        verified_predicates(&report),
        [
            "https://example.com/scan/v1",
            "https://model_signing/signature/v1.0",
            "https://sigstore.dev/cosign/sign/v1"
        ]
    );
}

/// A plain OCI container image put in the registry by skopeo: signed (cosign-style bundle
/// only), attested, verified, discovered, checked by a policy file, and refused by pull.
#[test]
fn a_plain_oci_image_signs_attests_and_verifies() {
    let reg = Registry::start();
    let repo = harness::repo("image");
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let image = layout.image("amd64", Some("v1"));
    let target = format!("{}/{repo}:v1", reg.host);
    skopeo_copy(
        false,
        &format!("oci:{}:v1", layout.dir.display()),
        &format!("docker://{target}"),
    );
    let (key, public) = keypair(tmp.path(), "k");

    // Unsigned: verification fails.
    let (code, _, _) = verify(&target, &public, &[]);
    assert_eq!(code, 1);

    let signed = run_json(&["sign", &target, "--key", key.to_str().unwrap()]);
    assert_eq!(signed["digest"], image["digest"], "skopeo kept the digest");
    assert_eq!(signed["kind"], "image");
    assert_eq!(signed["fileCount"], 0);
    let referrers = signed["referrers"].as_array().unwrap();
    assert_eq!(referrers.len(), 1, "{signed}");
    assert_eq!(
        referrers[0]["predicateType"],
        "https://sigstore.dev/cosign/sign/v1"
    );
    attest(&target, &key, &predicate_file(tmp.path()));

    let (code, report, stderr) = verify(
        &target,
        &public,
        &["--attestation-type", "https://example.com/scan/v1"],
    );
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(report["policy"]["manifestSigned"], true, "{report}");
    assert!(
        report["checks"].to_string().contains("not a model"),
        "{report}"
    );
    assert_eq!(discovered(&target).len(), 2);

    // Another key: refused.
    let (_, other) = keypair(tmp.path(), "other");
    let (code, _, _) = verify(&target, &other, &[]);
    assert_eq!(code, 1);

    // A policy file rule for the repository.
    let policy = tmp.path().join("policy.yaml");
    let rule = |signers: &str, extra: &str| {
        std::fs::write(
            &policy,
            format!(
                "version: 1\npolicies:\n  - repositories: [\"{}/test/**\"]\n    signers:\n      - key: {signers}\n{extra}",
                reg.host
            ),
        )
        .unwrap();
        run(&["verify", &target, "--policy", policy.to_str().unwrap()]).0
    };
    assert_eq!(rule("k.pub", ""), 0);
    assert_eq!(rule("other.pub", ""), 1);
    assert_eq!(
        rule("k.pub", "    attestations: [slsaprovenance1]\n"),
        1,
        "no provenance was attached"
    );

    // pull writes only models, and says so.
    let (code, _, stderr) = run(&["pull", &target, tmp.path().join("out").to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a model"), "{stderr}");
    assert!(!tmp.path().join("out").join("hello.txt").exists());
    // A non-model without the cosign-style bundle would get no signature at all.
    let (code, _, stderr) = run(&[
        "sign",
        &target,
        "--key",
        key.to_str().unwrap(),
        "--no-cosign-bundle",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a model (image)"), "{stderr}");
    assert_eq!(
        discovered(&target).len(),
        2,
        "the refused sign pushed nothing"
    );
}

/// A multi-arch index (two platform images) copied by `skopeo copy --all`: signed over the
/// index digest, verified, copied with its referrers into a layout and verified there.
#[test]
fn a_multi_arch_index_signs_verifies_and_copies() {
    let reg = Registry::start();
    let repo = harness::repo("index");
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let amd = layout.image("amd64", None);
    let arm = layout.image("arm64", None);
    let with_platform = |mut d: Value, arch: &str| {
        d["platform"] = json!({"architecture": arch, "os": "linux"});
        d
    };
    let index = layout.manifest(
        &json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [with_platform(amd, "amd64"), with_platform(arm, "arm64")]
        }),
        Some("v1"),
    );
    let target = format!("{}/{repo}:v1", reg.host);
    skopeo_copy(
        true,
        &format!("oci:{}:v1", layout.dir.display()),
        &format!("docker://{target}"),
    );
    let (key, public) = keypair(tmp.path(), "k");
    let signed = run_json(&["sign", &target, "--key", key.to_str().unwrap()]);
    assert_eq!(signed["digest"], index["digest"]);
    assert_eq!(signed["kind"], "image index");
    let (code, report, stderr) = verify(&target, &public, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(
        verified_predicates(&report),
        ["https://sigstore.dev/cosign/sign/v1"]
    );

    let copied = format!("oci:{}:v1", tmp.path().join("copy").display());
    let out = run_json(&["copy", &target, &copied]);
    assert_eq!(out["digest"], index["digest"]);
    let (code, report, stderr) = verify(&copied, &public, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(discovered(&copied).len(), 1);
}

/// An ORAS-style artifact (own artifactType, empty config, title-annotated layers): signed,
/// verified, inspected as a non-model, refused by pull.
#[test]
fn an_oras_style_artifact_signs_and_verifies() {
    let reg = Registry::start();
    let repo = harness::repo("oras");
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let empty = layout.blob("application/vnd.oci.empty.v1+json", b"{}");
    let mut layer = layout.blob("text/plain", b"a report\n");
    layer["annotations"] = json!({"org.opencontainers.image.title": "report.txt"});
    let artifact = layout.manifest(
        &json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.example.report.v1",
            "config": empty,
            "layers": [layer],
            "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}
        }),
        Some("v1"),
    );
    let target = format!("{}/{repo}:v1", reg.host);
    // Through our own copy (layout → registry), as ORAS would push it.
    run_json(&["copy", &format!("oci:{}:v1", layout.dir.display()), &target]);
    let inspected = run_json(&["inspect", &target]);
    assert_eq!(inspected["isModel"], false);
    assert_eq!(inspected["digest"], artifact["digest"]);

    let (key, public) = keypair(tmp.path(), "k");
    let signed = run_json(&["sign", &target, "--key", key.to_str().unwrap()]);
    assert_eq!(signed["kind"], "artifact application/vnd.example.report.v1");
    let (code, report, stderr) = verify(&target, &public, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    let (code, _, stderr) = run(&["pull", &target, tmp.path().join("out").to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a model"), "{stderr}");
}

/// A model in the legacy pre-CNCF media types (`vnd.cnai.model.*`, `org.cnai.model.filepath`):
/// inspect flags it, pull writes its files, sign and verify bind its files.
#[test]
fn a_legacy_cnai_model_is_read_pulled_signed_and_verified() {
    let reg = Registry::start();
    let repo = harness::repo("legacy");
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    let files: [(&str, &str, &[u8]); 2] = [
        (
            "config.json",
            "application/vnd.cnai.model.weight.config.v1.raw",
            b"{}",
        ),
        (
            "model.safetensors",
            "application/vnd.cnai.model.weight.v1.raw",
            b"legacy weights",
        ),
    ];
    let layers: Vec<Value> = files
        .iter()
        .map(|(path, media_type, content)| {
            let mut d = layout.blob(media_type, content);
            d["annotations"] = json!({"org.cnai.model.filepath": path});
            d
        })
        .collect();
    let config = layout.blob(
        "application/vnd.cnai.model.config.v1+json",
        &serde_json::to_vec(&json!({
            "descriptor": {"name": "old"},
            "config": {"format": "safetensors", "paramSize": "1m"},
            "modelfs": {"type": "layers", "diffIds": layers.iter().map(|l| l["digest"].clone()).collect::<Vec<_>>()}
        }))
        .unwrap(),
    );
    layout.manifest(
        &json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.cnai.model.manifest.v1+json",
            "config": config,
            "layers": layers
        }),
        Some("v1"),
    );
    let target = format!("{}/{repo}:v1", reg.host);
    skopeo_copy(
        false,
        &format!("oci:{}:v1", layout.dir.display()),
        &format!("docker://{target}"),
    );

    let inspected = run_json(&["inspect", &target]);
    assert_eq!(inspected["isModel"], true);
    assert_eq!(inspected["legacyMediaTypes"], true);
    let (code, text, _) = run(&["inspect", &target]);
    assert_eq!(code, 0);
    assert!(text.contains("legacy pre-CNCF media types"), "{text}");
    assert!(text.contains("Param size:    1m"), "{text}");
    assert!(text.contains("weight"), "{text}");

    let out = tmp.path().join("out");
    let (code, _, stderr) = run(&["pull", &target, out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let pulled = tree(&out);
    assert_eq!(pulled.len(), 2);
    assert_eq!(pulled["model.safetensors"], b"legacy weights");

    let (key, public) = keypair(tmp.path(), "k");
    let signed = run_json(&["sign", &target, "--key", key.to_str().unwrap()]);
    assert_eq!(signed["kind"], "model");
    assert_eq!(signed["fileCount"], 2);
    let (code, report, stderr) = verify(&target, &public, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(
        verified_predicates(&report),
        [
            "https://model_signing/signature/v1.0",
            "https://sigstore.dev/cosign/sign/v1"
        ]
    );
    // Never written: our own push of the pulled files uses today's types.
    let again = format!("oci:{}:v1", tmp.path().join("again").display());
    push(&out, &again);
    let inspected = run_json(&["inspect", &again]);
    assert_eq!(
        inspected["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(inspected["legacyMediaTypes"], false);
    assert!(!inspected.to_string().contains("cnai"), "{inspected}");
}

/// The config `push` writes validates against the model-spec's JSON schema, with the spec's
/// fields from flags and a file, `modelfs.diffIds` in layer order; inspect shows the fields.
#[test]
fn pushed_config_validates_against_the_modelpack_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    write_model(
        &model,
        &[
            ("config.json", b"{}"),
            ("model-00001.safetensors", b"one"),
            ("model-00002.safetensors", b"two"),
            ("README.md", b"# m\n"),
        ],
    );
    let file = tmp.path().join("model-config.json");
    std::fs::write(
        &file,
        r#"{"descriptor":{"family":"llama3","licenses":["Apache-2.0"],"createdAt":"2026-01-01T00:00:00Z"},"config":{"architecture":"transformer","precision":"fp32"}}"#,
    )
    .unwrap();
    let target = format!("oci:{}:v1", tmp.path().join("layout").display());
    let (code, _, stderr) = run(&[
        "push",
        model.to_str().unwrap(),
        &target,
        "--config-file",
        file.to_str().unwrap(),
        "--param-size",
        "8b",
        "--precision",
        "bf16",
        "--quantization",
        "awq",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let inspected = run_json(&["inspect", &target]);
    let config = &inspected["config"]["content"];
    assert_eq!(config["config"]["precision"], "bf16", "the flag wins");
    assert_eq!(config["config"]["architecture"], "transformer");
    assert_eq!(config["config"]["format"], "safetensors", "detected");
    assert_eq!(config["descriptor"]["family"], "llama3");
    let layer_digests: Vec<Value> = inspected["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["digest"].clone())
        .collect();
    assert_eq!(
        config["modelfs"]["diffIds"].as_array().unwrap(),
        &layer_digests
    );
    validate(config).unwrap();
    // The validator does reject what breaks the schema.
    let mut broken = config.clone();
    broken["config"]["paramsize"] = json!("8b");
    assert!(validate(&broken).is_err());
    broken = config.clone();
    broken.as_object_mut().unwrap().remove("modelfs");
    assert!(validate(&broken).is_err());

    let (code, text, _) = run(&["inspect", &target]);
    assert_eq!(code, 0);
    for line in [
        "Architecture:  transformer",
        "Format:        safetensors",
        "Param size:    8b",
        "Precision:     bf16",
        "Quantization:  awq",
        "Family:        llama3",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }

    // A config file with a field the spec does not have is refused, naming it.
    std::fs::write(&file, r#"{"config":{"params":"8b"}}"#).unwrap();
    let (code, _, stderr) = run(&[
        "push",
        model.to_str().unwrap(),
        &target,
        "--config-file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("params"), "{stderr}");
}

/// Validate a config document against the model-spec schema with Python `jsonschema`
/// (draft 2020-12) from `.venv`.
fn validate(config: &Value) -> Result<(), String> {
    let python = harness::venv_python_with("jsonschema");
    let schema = testdata("modelpack/config-schema.json");
    let doc = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(doc.path(), serde_json::to_vec(config).unwrap()).unwrap();
    let out = Command::new(python)
        .args([
            "-c",
            "import json,sys,jsonschema\n\
             s=json.load(open(sys.argv[1])); d=json.load(open(sys.argv[2]))\n\
             jsonschema.Draft202012Validator(s, format_checker=jsonschema.FormatChecker()).validate(d)",
        ])
        .arg(schema)
        .arg(doc.path())
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A model-signing (per-file) signature attached to something that is not a model has no
/// files to bind: it counts for nothing, and the report says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_signature_on_a_non_model_counts_for_nothing() {
    use oci_model::media_types as mt;
    use oci_model::reference::Target;
    use oci_model::store::{self, StoreOptions};
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = Layout::new(&tmp.path().join("layout"));
    layout.image("amd64", Some("v1"));
    let target = format!("oci:{}:v1", layout.dir.display());
    let (key, public) = keypair(tmp.path(), "k");
    let files = tmp.path().join("files");
    write_model(&files, &[("hello.txt", b"hello from amd64\n")]);
    let signature = tmp.path().join("model.sig");
    let (code, _, stderr) = run(&[
        "sign-local",
        files.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--signature",
        signature.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let s = store::open(&Target::parse(&target).unwrap(), &StoreOptions::default())
        .await
        .unwrap();
    let image = s.resolve("v1").await.unwrap();
    oci_model::sigstore_ops::push_bundle_referrer(
        s.as_ref(),
        &std::fs::read(&signature).unwrap(),
        mt::PREDICATE_MODEL_SIGNING,
        &image,
    )
    .await
    .unwrap();
    let (code, report, _) = verify(&target, &public, &[]);
    assert_eq!(code, 1, "{report}");
    let bundles = report["bundles"].as_array().unwrap();
    assert_eq!(bundles.len(), 1, "{report}");
    assert_eq!(bundles[0]["ok"], false);
    let error = bundles[0]["error"].as_str().unwrap();
    assert!(
        error.contains("a model-signing (per-file) signature")
            && error.contains("is not a model (image)"),
        "{error}"
    );
    // Signed over its manifest digest, it verifies; the file signature still counts for nothing.
    let signed = run_json(&["sign", &target, "--key", key.to_str().unwrap()]);
    assert_eq!(signed["kind"], "image");
    let (code, report, stderr) = verify(&target, &public, &[]);
    assert_eq!(code, 0, "{stderr}\n{report}");
    assert_eq!(
        verified_predicates(&report),
        ["https://sigstore.dev/cosign/sign/v1"]
    );
}
