//! push / pull / copy against the real registry program (Debian `docker-registry` 2.8), and
//! interoperability with skopeo.

use crate::harness::{self, Registry};
use crate::support::{add_referrer, entries, run, run_json, small_model, tree, write};
use oci_model::digest::Digest;
use oci_model::reference::Target;
use oci_model::store::{self, StoreOptions};
use std::path::Path;
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn target(reg: &Registry, repo: &str, tag: &str) -> String {
    format!("{}/{repo}:{tag}", reg.host)
}

async fn open(t: &str) -> std::sync::Arc<dyn store::Store> {
    store::open(&Target::parse(t).unwrap(), &StoreOptions::default())
        .await
        .unwrap()
}

#[test]
fn registry_round_trip_with_nested_hidden_empty_and_large_files() {
    let reg = Registry::start();
    let repo = harness::repo("roundtrip");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("llm");
    small_model(&model);
    // ≥ 64 MiB, not a multiple of any buffer size, incompressible.
    write(
        &model,
        "weights/big.bin",
        &harness::pseudo_random((64 << 20) + 12_345, 42),
    );
    let t = target(&reg, &repo, "v1");

    let pushed = run_json(&["push", s(&model), &t]);
    let digest: Digest = pushed["digest"].as_str().unwrap().parse().unwrap();
    assert_eq!(pushed["files"].as_array().unwrap().len(), 8);
    assert_eq!(
        pushed["size"],
        (64u64 << 20) + 12_345 + 300_000 + 26 + 12 + 10 + 8
    );

    let out = tmp.path().join("out");
    let pulled = run_json(&["pull", &t, s(&out)]);
    assert_eq!(pulled["digest"], digest.as_str());
    assert_eq!(tree(&out), tree(&model));
    assert!(entries(&out).iter().all(|e| !e.contains(".oci-model-")));

    // A re-push gives the same digest and uploads nothing (digests from the local cache,
    // blobs found by HEAD).
    let (code, stdout, stderr) = run(&["push", s(&model), &t]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("@{digest}")), "{stdout}");
    assert!(
        stdout.contains("(0 uploaded, 8 already present)"),
        "{stdout}"
    );

    // The pulled copy pushes without reading a byte either: pull recorded its digests.
    let (code, stdout, stderr) = run(&["push", s(&out), &target(&reg, &repo, "from-pull")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("(0 uploaded, 8 already present)"),
        "{stdout}"
    );

    // Pull by digest from the registry.
    let out2 = tmp.path().join("out2");
    run_json(&["pull", &format!("{}/{repo}@{digest}", reg.host), s(&out2)]);
    assert_eq!(tree(&out2), tree(&model));
}

#[tokio::test]
async fn copy_registry_to_layout_to_another_registry_preserves_digests() {
    let reg_a = Registry::start();
    let reg_b = Registry::start();
    let repo = harness::repo("copy");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let src = target(&reg_a, &repo, "v1");
    let pushed = run_json(&["push", s(&model), &src]);

    // A signature-like referrer travels with the model.
    let store_a = open(&src).await;
    let subject = store_a.resolve("v1").await.unwrap();
    let sig = add_referrer(store_a.as_ref(), &subject, "bundle").await;

    let layout = format!("oci:{}:v1", tmp.path().join("layout").display());
    let to_layout = run_json(&["copy", &src, &layout]);
    assert_eq!(to_layout["digest"], pushed["digest"]);
    assert_eq!(to_layout["referrers"][0]["digest"], sig.digest.as_str());

    let dst = target(&reg_b, &repo, "copied");
    let to_b = run_json(&["copy", &layout, &dst]);
    assert_eq!(to_b["digest"], pushed["digest"]);
    let inspected = run_json(&["inspect", &dst]);
    assert_eq!(inspected["digest"], pushed["digest"]);
    let store_b = open(&dst).await;
    let refs = store_b.referrers(&subject, None).await.unwrap();
    assert_eq!(
        refs.iter().map(|r| r.digest.clone()).collect::<Vec<_>>(),
        [sig.digest]
    );

    let out = tmp.path().join("out");
    run_json(&["pull", &dst, s(&out)]);
    assert_eq!(tree(&out), tree(&model));
}

#[test]
fn copy_between_repositories_of_one_registry_mounts_blobs() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let src = target(&reg, &harness::repo("mount-src"), "v1");
    let pushed = run_json(&["push", s(&model), &src]);
    let dst = target(&reg, &harness::repo("mount-dst"), "v1");
    let copied = run_json(&["copy", &src, &dst]);
    assert_eq!(copied["digest"], pushed["digest"]);
    // Every blob was mounted by the registry: nothing went over the wire.
    assert_eq!(copied["blobsCopied"], 0, "{copied:#}");
    assert_eq!(copied["bytesCopied"], 0, "{copied:#}");
    let out = tmp.path().join("out");
    run_json(&["pull", &dst, s(&out)]);
    assert_eq!(tree(&out), tree(&model));
}

/// The `mountedFrom` of every file of a push's JSON result.
fn mounted_from(pushed: &serde_json::Value) -> Vec<Option<String>> {
    pushed["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["mountedFrom"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn push_mounts_blobs_the_registry_holds_in_a_repository_we_pushed_to_or_pulled_from() {
    let reg = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let repo_a = harness::repo("home-a");
    let first = run_json(&["push", s(&model), &target(&reg, &repo_a, "v1")]);
    assert!(
        mounted_from(&first).iter().all(Option::is_none),
        "{first:#}"
    );

    // The same files to another repository of the same registry: mounted, not sent.
    let b = target(&reg, &harness::repo("home-b"), "v1");
    let second = run_json(&["push", s(&model), &b]);
    assert_eq!(second["digest"], first["digest"]);
    let n = mounted_from(&first).len();
    assert_eq!(
        mounted_from(&second),
        vec![Some(repo_a.clone()); n],
        "{second:#}"
    );
    let out_b = tmp.path().join("out-b");
    run_json(&["pull", &b, s(&out_b)]);
    assert_eq!(tree(&out_b), tree(&model));

    // Files we pulled remember where they came from: pushing them elsewhere mounts from there.
    // (Same directory name as the model, which names it in the config: same digest.)
    std::fs::create_dir(tmp.path().join("p")).unwrap();
    let pulled = tmp.path().join("p").join("m");
    let repo_c = harness::repo("home-c");
    run_json(&["pull", &target(&reg, &repo_a, "v1"), s(&pulled)]);
    let third = run_json(&["push", s(&pulled), &target(&reg, &repo_c, "v1")]);
    assert_eq!(third["digest"], first["digest"]);
    assert_eq!(
        mounted_from(&third),
        vec![Some(repo_a.clone()); n],
        "{third:#}"
    );
    let (code, text, err) = run(&[
        "push",
        s(&pulled),
        &target(&reg, &harness::repo("home-d"), "v1"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        text.contains(&format!("{n} mounted from another repository")),
        "{text}"
    );

    // Another registry holds none of them: everything is uploaded there.
    let other = Registry::start();
    let fourth = run_json(&["push", s(&model), &target(&other, &repo_a, "v1")]);
    assert!(
        mounted_from(&fourth).iter().all(Option::is_none),
        "{fourth:#}"
    );
    let out_o = tmp.path().join("out-o");
    run_json(&["pull", &target(&other, &repo_a, "v1"), s(&out_o)]);
    assert_eq!(tree(&out_o), tree(&model));
}

#[test]
fn corrupted_blob_in_registry_storage_fails_the_pull_cleanly() {
    let reg = Registry::start();
    let repo = harness::repo("corrupt");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let t = target(&reg, &repo, "v1");
    let pushed = run_json(&["push", s(&model), &t]);
    let file = pushed["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "model.safetensors")
        .unwrap()
        .clone();
    let expected: Digest = file["digest"].as_str().unwrap().parse().unwrap();
    let data = reg.blob_data_path(expected.hex());
    let mut content = std::fs::read(&data).unwrap();
    content[12_345] ^= 0x01;
    std::fs::write(&data, &content).unwrap();
    let actual = Digest::of(&content);

    let out = tmp.path().join("out");
    let (code, _, stderr) = run(&["pull", &t, s(&out)]);
    assert_eq!(code, 1, "{stderr}");
    for needle in ["model.safetensors", expected.as_str(), actual.as_str()] {
        assert!(stderr.contains(needle), "missing {needle}: {stderr}");
    }
    assert!(!out.exists(), "left behind: {:?}", entries(&out));

    // Truncated content is caught as well.
    std::fs::write(&data, &content[..1000]).unwrap();
    let (code, _, stderr) = run(&["pull", &t, s(&out)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("model.safetensors"), "{stderr}");
    assert!(!out.exists());
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo (apt package skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn skopeo_sees_our_exact_manifest_and_copies_it_byte_identical() {
    let reg = Registry::start();
    let repo = harness::repo("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let t = target(&reg, &repo, "v1");
    let pushed = run_json(&["push", s(&model), &t]);
    let digest: Digest = pushed["digest"].as_str().unwrap().parse().unwrap();

    // Our own layout holds the same manifest bytes (pushing is deterministic).
    let ours = tmp.path().join("ours");
    run_json(&["push", s(&model), &format!("oci:{}:v1", ours.display())]);
    let our_bytes = std::fs::read(ours.join("blobs/sha256").join(digest.hex())).unwrap();
    assert_eq!(Digest::of(&our_bytes), digest);

    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{t}"),
    ]);
    assert_eq!(raw, our_bytes);

    let theirs = tmp.path().join("theirs");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{t}"),
        &format!("oci:{}:v1", theirs.display()),
    ]);
    let their_bytes = std::fs::read(theirs.join("blobs/sha256").join(digest.hex())).unwrap();
    assert_eq!(their_bytes, our_bytes);

    // skopeo reads our layout, and we read skopeo's.
    let raw = skopeo(&["inspect", "--raw", &format!("oci:{}:v1", ours.display())]);
    assert_eq!(raw, our_bytes);
    let out = tmp.path().join("out");
    let pulled = run_json(&["pull", &format!("oci:{}:v1", theirs.display()), s(&out)]);
    assert_eq!(pulled["digest"], digest.as_str());
    assert_eq!(tree(&out), tree(&model));
}
