//! What the integration tests share: the one way to run the binary and read its result, the
//! test inputs under `testdata/`, model fixtures and the small CLI steps several areas repeat.
//! `harness::bin()` builds the command (private HOME, no ambient credentials); everything that
//! runs it to completion goes through [`run`] or [`output`].

use crate::harness;
use bytes::Bytes;
use oci_model::media_types as mt;
use oci_model::store::{BytesSource, Descriptor, ImageManifest, Store};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Run the binary with `args`: (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    output(harness::bin().args(args))
}

/// Run a prepared command to completion: (exit code, stdout, stderr); -1 when a signal ended it.
pub fn output(cmd: &mut assert_cmd::Command) -> (i32, String, String) {
    let out = cmd.output().expect("run oci-model");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run with `--output json`, require success, and parse stdout.
pub fn run_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let (code, stdout, stderr) = run(&all);
    assert_eq!(code, 0, "oci-model {args:?} failed:\n{stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

/// The parsed JSON stdout of a finished command.
pub fn json_of(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A file or directory under `testdata/`; a missing one fails the test (never a skip).
pub fn testdata(rel: &str) -> PathBuf {
    let p = harness::project_root().join("testdata").join(rel);
    assert!(p.exists(), "test input missing: {}", p.display());
    p
}

pub fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// Write `files` (relative path, content) below `dir`.
pub fn write_model(dir: &Path, files: &[(&str, &[u8])]) {
    for (rel, content) in files {
        write(dir, rel, content);
    }
}

/// A two-file model (`config.json`, `model.safetensors`) written to `dir/model` and pushed into
/// the OCI layout `dir/layout`: (model directory, target `oci:<layout>:v1`).
pub fn tiny_model_in_layout(dir: &Path) -> (PathBuf, String) {
    let model = dir.join("model");
    write_model(
        &model,
        &[
            ("config.json", br#"{"hidden_size": 8}"#),
            ("model.safetensors", &[7u8; 4096]),
        ],
    );
    let target = format!("oci:{}:v1", dir.join("layout").display());
    push(&model, &target);
    (model, target)
}

/// A small model with nested directories, hidden and empty files.
pub fn small_model(root: &Path) {
    write_model(
        root,
        &[
            ("config.json", br#"{"architectures":["Bert"]}"#),
            ("model.safetensors", &harness::pseudo_random(300_000, 7)),
            ("tokenizer/vocab.txt", b"[PAD]\n[UNK]\n"),
            ("nested/deeper/still/.hidden", b"secret-ish"),
            ("nested/empty.bin", b""),
            (".env", b""),
            ("README.md", b"# model\n"),
        ],
    );
}

/// Every regular file below `root` (relative path → content), symlinks followed.
pub fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(root)
        .follow_links(true)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(root).unwrap().to_str().unwrap();
            (rel.to_string(), std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Every entry (files, dirs, links) below `root`.
pub fn entries(root: &Path) -> Vec<String> {
    if !root.exists() {
        return vec![];
    }
    walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            e.path().strip_prefix(root).unwrap().display().to_string()
        })
        .collect()
}

/// An unencrypted key pair made by the CLI: (private, public).
pub fn keypair(dir: &Path, prefix: &str) -> (PathBuf, PathBuf) {
    let p = dir.join(prefix);
    harness::bin()
        .args(["generate-key-pair", "--no-password", "--output-key-prefix"])
        .arg(&p)
        .assert()
        .success();
    (p.with_extension("key"), p.with_extension("pub"))
}

/// Push `dir` to `target`; returns the manifest digest.
pub fn push(dir: &Path, target: &str) -> String {
    let out = harness::bin()
        .args(["push", "--output", "json"])
        .arg(dir)
        .arg(target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_of(&out)["digest"].as_str().unwrap().to_string()
}

/// `sign TARGET --key KEY EXTRA…`, required to succeed.
pub fn sign(target: &str, key: &Path, extra: &[&str]) {
    let out = harness::bin()
        .args(["sign", target, "--key"])
        .arg(key)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How many referrers `discover` lists for `target`, referrers of referrers included.
pub fn referrer_count(target: &str) -> usize {
    fn count(v: &Value) -> usize {
        match v {
            Value::Object(m) => m
                .get("referrers")
                .and_then(|r| r.as_array())
                .map(|a| a.len() + a.iter().map(count).sum::<usize>())
                .unwrap_or(0),
            Value::Array(a) => a.iter().map(count).sum(),
            _ => 0,
        }
    }
    count(&run_json(&["discover", target]))
}

/// A referrer (signature-like) of `subject` in `store`.
pub async fn add_referrer(store: &dyn Store, subject: &Descriptor, text: &str) -> Descriptor {
    add_referrer_with(
        store,
        subject,
        text,
        &[(
            mt::ANNOTATION_BUNDLE_PREDICATE_TYPE,
            mt::PREDICATE_MODEL_SIGNING,
        )],
    )
    .await
}

/// A Sigstore-bundle referrer of `subject` in `store` whose layer holds `text`, with these
/// manifest annotations.
pub async fn add_referrer_with(
    store: &dyn Store,
    subject: &Descriptor,
    text: &str,
    annotations: &[(&str, &str)],
) -> Descriptor {
    let (d, n) = store
        .push_blob(&BytesSource(Bytes::from(text.to_string())))
        .await
        .unwrap();
    store
        .push_blob(&BytesSource(Bytes::from_static(b"{}")))
        .await
        .unwrap();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: Some(mt::SIGSTORE_BUNDLE_V03.into()),
        config: Descriptor::empty(),
        layers: vec![Descriptor::new(mt::SIGSTORE_BUNDLE_V03, d, n)],
        subject: Some(Descriptor::new(
            subject.media_type.clone(),
            subject.digest.clone(),
            subject.size,
        )),
        annotations: Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
    };
    store
        .push_referrer(Bytes::from(m.to_bytes()), subject)
        .await
        .unwrap()
}
