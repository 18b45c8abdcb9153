//! push / pull / copy / inspect against OCI image layout directories (`oci:<dir>`), through the
//! real binary: round trips, determinism, hostile manifests, corrupted blobs, symlinks, ignores.

use crate::support::{add_referrer, entries, run, run_json, small_model, tree, write};
use bytes::Bytes;
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use oci_model::store::layout::LayoutStore;
use oci_model::store::{BytesSource, Descriptor, ImageManifest, Store};
use std::path::{Path, PathBuf};

fn layout_target(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn layout_round_trip_is_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("bert");
    small_model(&model);
    let layout = tmp.path().join("layout");
    let pushed = run_json(&["push", s(&model), &layout_target(&layout, "v1")]);
    assert_eq!(pushed["files"].as_array().unwrap().len(), 7);

    // A valid OCI image layout.
    let oci_layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(oci_layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], pushed["digest"]);
    assert_eq!(
        index["manifests"][0]["annotations"][mt::ANNOTATION_REF_NAME],
        "v1"
    );
    let digest: Digest = pushed["digest"].as_str().unwrap().parse().unwrap();
    let manifest_bytes = std::fs::read(layout.join("blobs/sha256").join(digest.hex())).unwrap();
    assert_eq!(Digest::of(&manifest_bytes), digest);

    let out = tmp.path().join("out");
    let pulled = run_json(&["pull", &layout_target(&layout, "v1"), s(&out)]);
    assert_eq!(pulled["digest"], pushed["digest"]);
    assert_eq!(tree(&out), tree(&model));
    // No temporary files left behind.
    assert!(
        entries(&out).iter().all(|e| !e.contains(".oci-model-")),
        "{:?}",
        entries(&out)
    );

    // Pulling by digest works too.
    let by_digest = format!("oci:{}@{}", layout.display(), digest);
    let out2 = tmp.path().join("out2");
    run_json(&["pull", &by_digest, s(&out2)]);
    assert_eq!(tree(&out2), tree(&model));

    // Pulling again over existing files needs --overwrite.
    let (code, _, stderr) = run(&["pull", &layout_target(&layout, "v1"), s(&out)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--overwrite"), "{stderr}");
    run_json(&[
        "pull",
        &layout_target(&layout, "v1"),
        s(&out),
        "--overwrite",
    ]);
    assert_eq!(tree(&out), tree(&model));
}

#[test]
fn same_directory_gives_same_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let a = run_json(&[
        "push",
        s(&model),
        &layout_target(&tmp.path().join("a"), "v1"),
    ]);
    let b = run_json(&[
        "push",
        s(&model),
        &layout_target(&tmp.path().join("a"), "v2"),
    ]);
    let c = run_json(&[
        "push",
        s(&model),
        &layout_target(&tmp.path().join("c"), "v1"),
    ]);
    assert_eq!(a["digest"], b["digest"]);
    assert_eq!(a["digest"], c["digest"]);
    // A copy of the directory elsewhere (other inodes, times) gives the same digest too.
    let copy = tmp.path().join("elsewhere").join("m");
    for (rel, content) in tree(&model) {
        write(&copy, &rel, &content);
    }
    let d = run_json(&[
        "push",
        s(&copy),
        &layout_target(&tmp.path().join("d"), "v1"),
    ]);
    assert_eq!(a["digest"], d["digest"]);
    // Changing one byte changes it.
    write(&copy, "README.md", b"# model!\n");
    let e = run_json(&[
        "push",
        s(&copy),
        &layout_target(&tmp.path().join("d"), "v2"),
    ]);
    assert_ne!(a["digest"], e["digest"]);
}

/// Write a model manifest whose single layer has `path` into a layout, directly.
async fn craft_layout(layout: &Path, path: &str) -> Digest {
    let store = LayoutStore::open_or_create(layout).unwrap();
    let content = Bytes::from_static(b"pwned\n");
    let (digest, size) = store.push_blob(&BytesSource(content)).await.unwrap();
    let (config, config_size) = store
        .push_blob(&BytesSource(Bytes::from_static(b"{}")))
        .await
        .unwrap();
    let path_json = serde_json::to_string(path).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"{}","config":{{"mediaType":"{}","digest":"{config}","size":{config_size}}},"layers":[{{"mediaType":"{}","digest":"{digest}","size":{size},"annotations":{{"{}":{path_json},"{}":{path_json}}}}}]}}"#,
        mt::OCI_MANIFEST,
        mt::MODEL_ARTIFACT,
        mt::MODEL_CONFIG,
        mt::MODEL_WEIGHT,
        mt::ANNOTATION_FILEPATH,
        mt::ANNOTATION_TITLE,
    );
    store
        .push_manifest(Bytes::from(manifest), mt::OCI_MANIFEST, Some("evil"))
        .await
        .unwrap();
    digest
}

#[tokio::test]
async fn hostile_layer_paths_are_refused_and_nothing_is_written() {
    for hostile in ["../x", "/abs", "a\\b", "sub/../../x", "./x", "a//b"] {
        let tmp = tempfile::tempdir().unwrap();
        let layout = tmp.path().join("layout");
        let layer = craft_layout(&layout, hostile).await;
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let out = work.join("out");
        let (code, _, stderr) = run(&["pull", &layout_target(&layout, "evil"), s(&out)]);
        assert_eq!(code, 1, "{hostile:?}: {stderr}");
        assert!(stderr.contains("unsafe path"), "{hostile:?}: {stderr}");
        assert!(stderr.contains(layer.as_str()), "names the layer: {stderr}");
        assert!(!out.exists(), "{hostile:?}: created {:?}", entries(&out));
        assert!(
            entries(&work).is_empty(),
            "{hostile:?}: wrote {:?}",
            entries(&work)
        );
        assert!(!Path::new("/abs").exists());
        // inspect shows it, flagged, without failing.
        let (code, stdout, _) = run(&["inspect", &layout_target(&layout, "evil")]);
        assert_eq!(code, 0);
        assert!(stdout.contains("UNSAFE"), "{stdout}");
    }
}

#[tokio::test]
async fn existing_symlink_in_the_target_cannot_redirect_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    craft_layout(&layout, "link/file.txt").await;
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::os::unix::fs::symlink(&outside, out.join("link")).unwrap();
    let (code, _, stderr) = run(&["pull", &layout_target(&layout, "evil"), s(&out)]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("link/file.txt"), "{stderr}");
    assert!(entries(&outside).is_empty());
}

#[test]
fn corrupted_blob_fails_naming_file_and_both_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let layout = tmp.path().join("layout");
    let pushed = run_json(&["push", s(&model), &layout_target(&layout, "v1")]);
    let file = pushed["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "model.safetensors")
        .unwrap();
    let expected: Digest = file["digest"].as_str().unwrap().parse().unwrap();
    let blob = layout.join("blobs/sha256").join(expected.hex());
    let mut content = std::fs::read(&blob).unwrap();
    content[1000] ^= 0xff; // same size, different bytes
    std::fs::write(&blob, &content).unwrap();
    let actual = Digest::of(&content);

    let out = tmp.path().join("out");
    let (code, _, stderr) = run(&["pull", &layout_target(&layout, "v1"), s(&out)]);
    assert_eq!(code, 1, "{stderr}");
    for needle in ["model.safetensors", expected.as_str(), actual.as_str()] {
        assert!(stderr.contains(needle), "missing {needle}: {stderr}");
    }
    assert!(!out.exists(), "left behind: {:?}", entries(&out));

    // Into an existing directory: nothing added, nothing partial.
    std::fs::create_dir_all(&out).unwrap();
    write(&out, "mine.txt", b"keep");
    let (code, _, _) = run(&["pull", &layout_target(&layout, "v1"), s(&out)]);
    assert_eq!(code, 1);
    assert_eq!(entries(&out), ["mine.txt"]);
}

#[test]
fn symlinks_are_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    write(&model, "real.bin", b"real content");
    std::os::unix::fs::symlink("real.bin", model.join("alias.bin")).unwrap();
    let layout = tmp.path().join("layout");
    let (code, _, stderr) = run(&["push", s(&model), &layout_target(&layout, "v1")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("alias.bin") && stderr.contains("--allow-symlinks"),
        "{stderr}"
    );
    assert!(!layout.join("index.json").exists(), "nothing pushed");

    run_json(&[
        "push",
        s(&model),
        &layout_target(&layout, "v1"),
        "--allow-symlinks",
    ]);
    let out = tmp.path().join("out");
    run_json(&["pull", &layout_target(&layout, "v1"), s(&out)]);
    // The link's target content, as a regular file.
    assert_eq!(
        std::fs::read(out.join("alias.bin")).unwrap(),
        b"real content"
    );
    assert!(!out.join("alias.bin").is_symlink());
}

#[test]
fn git_paths_are_ignored_and_ignore_globs_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    write(&model, "model.gguf", b"GGUF");
    write(&model, ".git/HEAD", b"ref: refs/heads/main");
    write(&model, ".gitignore", b"*.tmp");
    write(&model, ".gitattributes", b"*.gguf filter=lfs");
    write(&model, ".github/workflows/ci.yml", b"on: push");
    write(&model, "scratch.tmp", b"x");
    write(&model, "sub/other.tmp", b"x");
    write(&model, "checkpoints/step-1/w.bin", b"x");
    let layout = tmp.path().join("layout");
    let pushed = run_json(&[
        "push",
        s(&model),
        &layout_target(&layout, "v1"),
        "--ignore",
        "*.tmp",
        "--ignore",
        "checkpoints",
    ]);
    let paths: Vec<&str> = pushed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["model.gguf"]);
    let inspected = run_json(&["inspect", &layout_target(&layout, "v1")]);
    assert_eq!(inspected["files"].as_array().unwrap().len(), 1);
    assert_eq!(inspected["config"]["content"]["config"]["format"], "gguf");
    assert_eq!(inspected["config"]["content"]["descriptor"]["name"], "m");
}

#[test]
fn single_files_are_stored_by_name_and_inspect_shows_them() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "a/model.gguf", b"GGUF weights");
    write(tmp.path(), "b/README.md", b"# readme");
    let layout = tmp.path().join("layout");
    let target = layout_target(&layout, "v1");
    let (code, stdout, stderr) = run(&[
        "push",
        s(&tmp.path().join("a/model.gguf")),
        s(&tmp.path().join("b/README.md")),
        &target,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(&format!("Pushed {target}@sha256:")),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["inspect", &target]);
    assert_eq!(code, 0);
    for needle in [
        mt::MODEL_ARTIFACT,
        "model.gguf",
        "README.md",
        "weight",
        "doc",
        "Name:          model",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    let inspected = run_json(&["inspect", &target]);
    let layers = inspected["files"].as_array().unwrap();
    assert_eq!(layers[0]["path"], "README.md");
    assert_eq!(layers[0]["mediaType"], mt::MODEL_DOC);
    assert_eq!(layers[1]["path"], "model.gguf");
    assert_eq!(layers[1]["mediaType"], mt::MODEL_WEIGHT);
}

#[tokio::test]
async fn pull_refuses_something_that_is_not_a_model() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let store = LayoutStore::open_or_create(&layout).unwrap();
    store
        .push_blob(&BytesSource(Bytes::from_static(b"{}")))
        .await
        .unwrap();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: Some("application/vnd.example.thing".into()),
        config: Descriptor::empty(),
        layers: vec![],
        subject: None,
        annotations: None,
    };
    store
        .push_manifest(Bytes::from(m.to_bytes()), mt::OCI_MANIFEST, Some("v1"))
        .await
        .unwrap();
    let out = tmp.path().join("out");
    let (code, _, stderr) = run(&["pull", &layout_target(&layout, "v1"), s(&out)]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("is not a model") && stderr.contains("application/vnd.example.thing"),
        "{stderr}"
    );
    assert!(!out.exists());
    let (code, _, stderr) = run(&["pull", &layout_target(&layout, "nope"), s(&out)]);
    assert_ne!(code, 0);
    assert!(stderr.contains("nope"), "{stderr}");
}

#[tokio::test]
async fn copy_between_layouts_keeps_digests_and_referrers() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let a = tmp.path().join("a");
    let pushed = run_json(&["push", s(&model), &layout_target(&a, "v1")]);
    let store_a = LayoutStore::open_or_create(&a).unwrap();
    let subject = store_a.resolve("v1").await.unwrap();
    let sig = add_referrer(&store_a, &subject, "signature bundle").await;

    let b = tmp.path().join("b");
    let copied = run_json(&["copy", &layout_target(&a, "v1"), &layout_target(&b, "v2")]);
    assert_eq!(copied["digest"], pushed["digest"]);
    assert_eq!(copied["referrers"][0]["digest"], sig.digest.as_str());
    let store_b = LayoutStore::open_or_create(&b).unwrap();
    assert_eq!(store_b.resolve("v2").await.unwrap().digest, subject.digest);
    let refs = store_b.referrers(&subject, None).await.unwrap();
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].digest, sig.digest);

    // --no-referrers copies only the model; a second copy transfers nothing.
    let c = tmp.path().join("c");
    let copied = run_json(&[
        "copy",
        &layout_target(&a, "v1"),
        &layout_target(&c, "v1"),
        "--no-referrers",
    ]);
    assert_eq!(copied["referrers"].as_array().unwrap().len(), 0);
    let again = run_json(&[
        "copy",
        &layout_target(&a, "v1"),
        &layout_target(&c, "v1"),
        "--no-referrers",
    ]);
    assert_eq!(again["blobsCopied"], 0);
    let out = tmp.path().join("out");
    run_json(&["pull", &layout_target(&c, "v1"), s(&out)]);
    assert_eq!(tree(&out), tree(&model));
}

#[test]
fn bad_input_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = layout_target(&tmp.path().join("l"), "v1");
    let missing: PathBuf = tmp.path().join("does-not-exist");
    let (code, _, stderr) = run(&["push", s(&missing), &layout]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("does-not-exist"), "{stderr}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, stderr) = run(&["push", s(&empty), &layout]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, _) = run(&["push", s(&empty), "oci:"]);
    assert_eq!(code, 2);
}

#[test]
fn a_layout_written_inside_the_model_directory_is_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let first = run_json(&["push", s(&model), &layout_target(&model.join("oci"), "v1")]);
    // Pushed again, the layout now exists inside the model: same files, same digest.
    let second = run_json(&["push", s(&model), &layout_target(&model.join("oci"), "v2")]);
    assert_eq!(first["digest"], second["digest"]);
    assert!(second["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| !f["path"].as_str().unwrap().starts_with("oci")));
}
