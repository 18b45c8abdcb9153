//! push / pull / copy / inspect against OCI image layout directories (`oci:<dir>`), through the
//! real binary: round trips, determinism, hostile manifests, corrupted blobs, symlinks, ignores.

use crate::harness;
use crate::support::{
    add_referrer, entries, keypair, output, push, run, run_json, sign, small_model, tree, write,
};
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

/// Run the binary with a wall-clock guard: a command that hangs is killed and reported (-1).
fn run_bounded(args: &[&str]) -> (i32, String, String) {
    output(
        harness::bin()
            .args(args)
            .timeout(std::time::Duration::from_secs(60)),
    )
}

fn mkfifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(ok.success(), "mkfifo {}", path.display());
}

/// `pull` of `target` is refused quickly (no hang) with exit 1 or 2 and a message naming
/// `path` and `what` it is; nothing is written.
fn assert_pull_refused(target: &str, out: &Path, path: &Path, what: &str) {
    let started = std::time::Instant::now();
    let (code, _, stderr) = run_bounded(&["pull", target, s(out)]);
    assert!(
        code == 1 || code == 2,
        "exit {code} after {:?}: {stderr}",
        started.elapsed()
    );
    assert!(
        stderr.contains(s(path)) && stderr.contains(what),
        "{} / {what}: {stderr}",
        path.display()
    );
    assert!(!out.exists(), "a refused pull wrote {}", out.display());
}

/// A layout with `small_model` tagged `v1`: (tempdir, model, layout, target, manifest digest,
/// first layer digest).
fn pushed_layout() -> (tempfile::TempDir, PathBuf, PathBuf, String, Digest, Digest) {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let layout = tmp.path().join("layout");
    let target = layout_target(&layout, "v1");
    let digest: Digest = push(&model, &target).parse().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.join("blobs/sha256").join(digest.hex())).unwrap(),
    )
    .unwrap();
    let layer: Digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (tmp, model, layout, target, digest, layer)
}

/// Issue 11 item 10: a FIFO as `index.json` (from a layout received from elsewhere) made every
/// read hang; reads and writes are refused, naming it.
#[test]
fn a_fifo_as_index_json_is_refused_without_hanging() {
    let (tmp, model, layout, target, _, _) = pushed_layout();
    let out = tmp.path().join("out");
    let index = layout.join("index.json");
    mkfifo(&index);
    assert_pull_refused(&target, &out, &index, "FIFO");
    let (code, _, stderr) = run_bounded(&["push", s(&model), &layout_target(&layout, "v2")]);
    assert!(code == 1 || code == 2, "exit {code}: {stderr}");
    assert!(
        stderr.contains(s(&index)) && stderr.contains("FIFO"),
        "{stderr}"
    );
}

/// Issue 11 item 10: a FIFO as a blob (a layer, or the manifest) made a pull hang.
#[test]
fn a_fifo_as_a_blob_is_refused_without_hanging() {
    let (tmp, model, layout, target, digest, layer) = pushed_layout();
    let out = tmp.path().join("out");
    let blobs = layout.join("blobs/sha256");
    let layer_path = blobs.join(layer.hex());
    mkfifo(&layer_path);
    assert_pull_refused(&target, &out, &layer_path, "FIFO");
    let manifest_path = blobs.join(digest.hex());
    mkfifo(&manifest_path);
    assert_pull_refused(&target, &out, &manifest_path, "FIFO");
    // Pushing the model again puts the blobs themselves back.
    push(&model, &target);
    run_json(&["pull", &target, s(&out)]);
    assert_eq!(tree(&out), tree(&model));
}

/// Issue 11 item 10: a blob that is a symlink to a file outside the layout (here one with
/// exactly the right content) is not read; a push replaces it with the blob itself.
#[test]
fn a_blob_symlinked_outside_the_layout_is_refused() {
    let (tmp, model, layout, target, _, layer) = pushed_layout();
    let out = tmp.path().join("out");
    let layer_path = layout.join("blobs/sha256").join(layer.hex());
    let outside = tmp.path().join("outside");
    std::fs::rename(&layer_path, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &layer_path).unwrap();
    assert_pull_refused(&target, &out, &layer_path, "symbolic link");

    push(&model, &target);
    assert!(std::fs::symlink_metadata(&layer_path).unwrap().is_file());
    run_json(&["pull", &target, s(&out)]);
    assert_eq!(tree(&out), tree(&model));
}

/// Issue 11 item 10: `blobs/sha256` as a symlink to a directory outside the layout is neither
/// read through nor written through.
#[test]
fn a_blob_directory_symlinked_outside_the_layout_is_refused() {
    let (tmp, model, layout, target, _, _) = pushed_layout();
    let out = tmp.path().join("out");
    let sha = layout.join("blobs/sha256");
    let outside = tmp.path().join("outside");
    std::fs::rename(&sha, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &sha).unwrap();
    assert_pull_refused(&target, &out, &sha, "symbolic link");
    let before = entries(&outside);
    std::fs::write(model.join("new.txt"), b"new content").unwrap();
    let (code, _, stderr) = run_bounded(&["push", s(&model), &target]);
    assert!(code == 1 || code == 2, "exit {code}: {stderr}");
    assert!(
        stderr.contains(s(&sha)) && stderr.contains("symbolic link"),
        "{stderr}"
    );
    assert_eq!(entries(&outside), before, "a push wrote outside the layout");
}

/// Issue 11 item 10: rewriting `index.json` (tagging, attaching signatures) keeps every field
/// another tool wrote, on the index and on its entries.
#[test]
fn rewriting_index_json_keeps_fields_other_tools_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m");
    small_model(&model);
    let layout = tmp.path().join("layout");
    let target = layout_target(&layout, "v1");
    let digest = push(&model, &target);
    let index_path = layout.join("index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let extra_entry = serde_json::json!({
        "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"},
        "urls": ["https://example.com/blob"],
        "data": "e30=",
        "io.example.vendor": {"nested": [1, 2.5, null, true]},
    });
    let extra_index = serde_json::json!({
        "subject": {
            "mediaType": mt::OCI_MANIFEST,
            "digest": digest,
            "size": 123,
        },
        "io.example.top": "kept",
    });
    for (k, v) in extra_entry.as_object().unwrap() {
        index["manifests"][0][k] = v.clone();
    }
    for (k, v) in extra_index.as_object().unwrap() {
        index[k] = v.clone();
    }
    std::fs::write(&index_path, serde_json::to_vec_pretty(&index).unwrap()).unwrap();

    // Another tag, the same tag again, and two signature referrers rewrite index.json.
    push(&model, &layout_target(&layout, "v2"));
    push(&model, &target);
    let (key, _) = keypair(tmp.path(), "k");
    sign(&target, &key, &[]);

    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    for (k, v) in extra_index.as_object().unwrap() {
        assert_eq!(&after[k], v, "index field {k}: {after:#}");
    }
    let entries = after["manifests"].as_array().unwrap();
    let v1 = entries
        .iter()
        .find(|e| e["annotations"][mt::ANNOTATION_REF_NAME] == "v1")
        .expect("v1 still tagged");
    for (k, v) in extra_entry.as_object().unwrap() {
        assert_eq!(&v1[k], v, "entry field {k}: {after:#}");
    }
    assert!(entries.len() >= 4, "v1, v2 and the referrers: {after:#}");
    // Still a layout we read: the model pulls.
    let out = tmp.path().join("out");
    run_json(&["pull", &target, s(&out)]);
    assert_eq!(tree(&out), tree(&model));
}
