//! Archive layers (`.tar`, `.tar+gzip`, `.tar+zstd`) against the real registry: round trips,
//! each hostile archive refused with nothing written outside the destination and nothing left
//! behind, sign + verify (and `model_signing verify` on the pulled directory) over an
//! archive-layer model, and `push --archive-dirs` determinism.

use crate::harness::{self, Registry};
use crate::support::{entries, keypair, run, run_json, tree, write_model};
use bytes::Bytes;
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use oci_model::model::config::ModelConfig;
use oci_model::reference::Target;
use oci_model::store::{self, BytesSource, Descriptor, ImageManifest, StoreOptions};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// One tar entry: name (written raw into the header, so hostile names survive), type, data,
/// mode, link target.
pub struct Entry<'a> {
    pub name: &'a str,
    pub kind: tar::EntryType,
    pub data: &'a [u8],
    pub mode: u32,
    pub link: Option<&'a str>,
}

pub fn file<'a>(name: &'a str, data: &'a [u8]) -> Entry<'a> {
    Entry {
        name,
        kind: tar::EntryType::Regular,
        data,
        mode: 0o644,
        link: None,
    }
}

/// A tar of `entries`, in order, names up to 100 bytes.
pub fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(e.kind);
        h.as_old_mut().name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        h.set_size(e.data.len() as u64);
        h.set_mode(e.mode);
        if let Some(l) = e.link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// Push a model made of these layers (media type, `org.cncf.model.filepath`, blob, diffId) to
/// `target` (tagged); its manifest digest.
pub async fn push_layers(target: &str, layers: &[(&str, &str, Vec<u8>, Digest)]) -> Digest {
    let t = Target::parse(target).unwrap();
    let store = store::open(&t, &StoreOptions::default()).await.unwrap();
    let mut descriptors = Vec::new();
    for (media_type, path, blob, _) in layers {
        let (digest, size) = store
            .push_blob(&BytesSource(Bytes::from(blob.clone())))
            .await
            .unwrap();
        let mut d = Descriptor::new(*media_type, digest, size);
        d.annotations = Some(BTreeMap::from([
            (mt::ANNOTATION_FILEPATH.to_string(), path.to_string()),
            (mt::ANNOTATION_TITLE.to_string(), path.to_string()),
        ]));
        descriptors.push(d);
    }
    let config = ModelConfig::new(
        Some("archived".into()),
        None,
        layers.iter().map(|l| l.3.clone()).collect(),
    )
    .to_bytes();
    let (cd, cs) = store
        .push_blob(&BytesSource(Bytes::from(config)))
        .await
        .unwrap();
    let m = ImageManifest {
        artifact_type: Some(mt::MODEL_ARTIFACT.into()),
        ..ImageManifest::new(Descriptor::new(mt::MODEL_CONFIG, cd, cs), descriptors)
    };
    store
        .push_manifest(
            Bytes::from(m.to_bytes()),
            mt::OCI_MANIFEST,
            Some(t.tag().unwrap()),
        )
        .await
        .unwrap()
        .digest
}

/// A raw layer: (media type, path, blob, diffId).
fn raw(path: &str, data: &[u8]) -> (&'static str, String, Vec<u8>, Digest) {
    (
        mt::MODEL_WEIGHT_CONFIG,
        path.into(),
        data.to_vec(),
        Digest::of(data),
    )
}

/// An archive layer of `tar` packed as `form` (`tar`, `tar+gzip`, `tar+zstd`).
fn archived(form: &str, path: &str, tar: &[u8]) -> (String, String, Vec<u8>, Digest) {
    let blob = match form {
        "tar" => tar.to_vec(),
        "tar+gzip" => gzip(tar),
        "tar+zstd" => zstd(tar),
        _ => unreachable!(),
    };
    (
        format!("application/vnd.cncf.model.weight.v1.{form}"),
        path.into(),
        blob,
        Digest::of(tar),
    )
}

async fn push_model(
    target: &str,
    raw_files: &[(&str, &[u8])],
    archives: &[(String, String, Vec<u8>, Digest)],
) -> Digest {
    let mut layers: Vec<(String, String, Vec<u8>, Digest)> = raw_files
        .iter()
        .map(|(p, d)| {
            let (m, p, b, id) = raw(p, d);
            (m.to_string(), p, b, id)
        })
        .collect();
    layers.extend(archives.iter().cloned());
    let borrowed: Vec<(&str, &str, Vec<u8>, Digest)> = layers
        .iter()
        .map(|(m, p, b, d)| (m.as_str(), p.as_str(), b.clone(), d.clone()))
        .collect();
    push_layers(target, &borrowed).await
}

fn weights_tar() -> Vec<u8> {
    tar_of(&[
        Entry {
            name: "./weights/",
            kind: tar::EntryType::Directory,
            data: b"",
            mode: 0o755,
            link: None,
        },
        file("./weights/a.bin", b"alpha weights"),
        Entry {
            mode: 0o755,
            ..file("weights/sub/run.sh", b"#!/bin/sh\n")
        },
        file("weights/sub/empty", b""),
    ])
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[tokio::test(flavor = "multi_thread")]
async fn archive_layers_round_trip_in_every_form() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    for form in ["tar", "tar+gzip", "tar+zstd"] {
        let target = format!("{}/{}:v1", reg.host, harness::repo("archive"));
        let digest = push_model(
            &target,
            &[("config.json", b"{}")],
            &[archived(form, "weights", &weights_tar())],
        )
        .await;
        let out = t.path().join(form);
        let (tg, o) = (target.clone(), out.clone());
        let pulled = tokio::task::spawn_blocking(move || run_json(&["pull", &tg, s(&o)]))
            .await
            .unwrap();
        assert_eq!(pulled["digest"], digest.as_str(), "{form}");
        let files: Vec<&str> = pulled["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            files,
            [
                "config.json",
                "weights/a.bin",
                "weights/sub/run.sh",
                "weights/sub/empty"
            ],
            "{form}: raw layers, then each archive's files in archive order"
        );
        let got = tree(&out);
        assert_eq!(got["weights/a.bin"], b"alpha weights", "{form}");
        assert_eq!(got["weights/sub/run.sh"], b"#!/bin/sh\n", "{form}");
        assert_eq!(got["weights/sub/empty"], b"", "{form}");
        assert_eq!(mode_of(&out.join("weights/sub/run.sh")), 0o755, "{form}");
        assert_eq!(mode_of(&out.join("weights/a.bin")), 0o644, "{form}");
        assert!(entries(&out).iter().all(|e| !e.contains(".oci-model-")));
    }
}

/// Pull `tar` (as a `.tar` layer, beside a raw `ok.txt`) into `parent/out`: refused with exit
/// code 1 and a message containing `needle`; nothing at all is left in `parent`.
async fn refused(reg: &Registry, tar: Vec<u8>, form: &str, needle: &str) {
    let target = format!("{}/{}:v1", reg.host, harness::repo("hostile"));
    push_model(
        &target,
        &[("ok.txt", b"fine")],
        &[archived(form, "payload", &tar)],
    )
    .await;
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    let (tg, o) = (target.clone(), out.clone());
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || run(&["pull", &tg, s(&o)]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{needle}: {stdout}\n{stderr}");
    assert!(stderr.contains(needle), "{needle}: {stderr}");
    assert!(
        entries(parent.path()).is_empty(),
        "{needle}: left behind: {:?}",
        entries(parent.path())
    );
    // Into an existing directory holding a file of the user's: only that file remains.
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("mine"), b"keep").unwrap();
    let (tg, o) = (target.clone(), out.clone());
    let (code, _, stderr) = tokio::task::spawn_blocking(move || run(&["pull", &tg, s(&o)]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{needle}: {stderr}");
    assert_eq!(entries(parent.path()), ["out", "out/mine"], "{needle}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_archives_are_refused_naming_the_entry_and_leave_nothing() {
    let reg = Registry::start();
    let abs = format!("/tmp/oci-model-abs-{}.txt", std::process::id());
    let link = |kind, name, to| Entry {
        name,
        kind,
        data: b"",
        mode: 0o644,
        link: Some(to),
    };
    let special = |kind, name| Entry {
        name,
        kind,
        data: b"",
        mode: 0o644,
        link: None,
    };
    use tar::EntryType as T;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (tar_of(&[file("../escape.txt", b"x")]), "\"../escape.txt\""),
        (
            tar_of(&[file("sub/../../escape.txt", b"x")]),
            "sub/../../escape.txt",
        ),
        (tar_of(&[file(&abs, b"x")]), &abs),
        (
            tar_of(&[link(T::Symlink, "evil", "../../../etc/passwd")]),
            "\"evil\"",
        ),
        (
            tar_of(&[
                link(T::Symlink, "l1", "l2"),
                link(T::Symlink, "l2", "../out"),
            ]),
            "symbolic link",
        ),
        (tar_of(&[link(T::Link, "hard", "ok.txt")]), "hard link"),
        (tar_of(&[special(T::Char, "tty")]), "character device"),
        (tar_of(&[special(T::Block, "sda")]), "block device"),
        (tar_of(&[special(T::Fifo, "pipe")]), "FIFO"),
        // Files that collide with another layer's file, or with one of the archive's own.
        (tar_of(&[file("ok.txt", b"evil")]), "duplicate path"),
        (tar_of(&[file("ok.txt/inner", b"evil")]), "is also a file"),
        (
            tar_of(&[file("twice", b"1"), file("twice", b"2")]),
            "holds this path twice",
        ),
        (b"definitely not a tar archive, just text".to_vec(), "tar"),
    ];
    for (tar, needle) in cases {
        refused(&reg, tar, "tar", needle).await;
    }
    assert!(!Path::new(&abs).exists());
    // A zstd bomb: 300 MiB of zeros in a few KiB.
    let mut h = tar::Header::new_gnu();
    h.set_path("bomb").unwrap();
    h.set_size(300 << 20);
    h.set_mode(0o644);
    h.set_cksum();
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    enc.write_all(h.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..300 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    let target = format!("{}/{}:v1", reg.host, harness::repo("bomb"));
    let (m, p, _, _) = archived("tar+zstd", "payload", b"");
    let layers = [(m.as_str(), p.as_str(), bomb, Digest::of(b"unused"))];
    push_layers(&target, &layers).await;
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    let (code, _, stderr) = tokio::task::spawn_blocking(move || run(&["pull", &target, s(&out)]))
        .await
        .unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("compression bomb"), "{stderr}");
    assert!(entries(parent.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn setuid_and_setgid_bits_are_dropped() {
    let reg = Registry::start();
    let target = format!("{}/{}:v1", reg.host, harness::repo("setuid"));
    let tar = tar_of(&[
        Entry {
            mode: 0o4755,
            ..file("bin/suid", b"x")
        },
        Entry {
            mode: 0o2777,
            ..file("bin/sgid", b"y")
        },
    ]);
    push_model(&target, &[], &[archived("tar+gzip", "bin", &tar)]).await;
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let o = out.clone();
    tokio::task::spawn_blocking(move || run_json(&["pull", &target, s(&o)]))
        .await
        .unwrap();
    assert_eq!(mode_of(&out.join("bin/suid")), 0o755);
    assert_eq!(mode_of(&out.join("bin/sgid")), 0o755);
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_and_verify_an_archive_layer_model_and_model_signing_accepts_the_pull() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let target = format!("{}/{}:v1", reg.host, harness::repo("signed-archive"));
    push_model(
        &target,
        &[("config.json", b"{}")],
        &[archived("tar+zstd", "weights", &weights_tar())],
    )
    .await;
    let (private, public) = keypair(t.path(), "k");
    let bundle = t.path().join("model.sig");
    let pulled = t.path().join("pulled");
    let (tg, b, p) = (target.clone(), bundle.clone(), pulled.clone());
    let public2 = public.clone();
    tokio::task::spawn_blocking(move || {
        let signed = run_json(&["sign", &tg, "--key", s(&private), "--bundle-out", s(&b)]);
        // The signature lists the archive's files, not the layer.
        assert_eq!(signed["fileCount"], 4, "{signed}");
        let verified = run_json(&["verify", &tg, "--key", s(&public2)]);
        assert_eq!(verified["ok"], true);
        let pulled = run_json(&["pull", &tg, s(&p), "--key", s(&public2)]);
        assert_eq!(pulled["verification"]["ok"], true, "{pulled}");
    })
    .await
    .unwrap();
    assert_eq!(tree(&pulled)["weights/a.bin"], b"alpha weights");
    let tool = harness::venv_tool("model_signing");
    let verify = |dir: &Path| {
        std::process::Command::new(&tool)
            .args(["verify", "key", "--public_key"])
            .arg(&public)
            .arg("--signature")
            .arg(&bundle)
            .arg(dir)
            .output()
            .unwrap()
    };
    let out = verify(&pulled);
    assert!(
        out.status.success(),
        "model_signing rejected the pulled archive model: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(pulled.join("weights/sub/empty"), b"changed").unwrap();
    assert!(!verify(&pulled).status.success());
}

/// The signature was over other archive contents: pull --key refuses and writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_signature_over_other_archive_files_fails_the_pull() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let repo = harness::repo("resigned");
    let first = format!("{}/{repo}:v1", reg.host);
    push_model(
        &first,
        &[],
        &[archived("tar", "w", &tar_of(&[file("w/a", b"1")]))],
    )
    .await;
    let (private, public) = keypair(t.path(), "k");
    let bundle = t.path().join("b.sig");
    let (tg, b, pk) = (first.clone(), bundle.clone(), private.clone());
    tokio::task::spawn_blocking(move || {
        run_json(&["sign", &tg, "--key", s(&pk), "--bundle-out", s(&b)]);
    })
    .await
    .unwrap();
    // The same model-signing bundle attached to a model whose archive holds other bytes.
    let second = format!("{}/{repo}:v2", reg.host);
    let digest = push_model(
        &second,
        &[],
        &[archived("tar", "w", &tar_of(&[file("w/a", b"2")]))],
    )
    .await;
    let store = store::open(&Target::parse(&second).unwrap(), &StoreOptions::default())
        .await
        .unwrap();
    let subject = store.resolve("v2").await.unwrap();
    let text = std::fs::read_to_string(&bundle).unwrap();
    crate::support::add_referrer(store.as_ref(), &subject, &text).await;
    let out = t.path().join("out");
    let (tg, o) = (format!("{}/{repo}@{digest}", reg.host), out.clone());
    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        run(&[
            "pull",
            &tg,
            s(&o),
            "--key",
            s(&public),
            "--allow-unsigned-metadata",
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("changed file w/a"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn push_archive_dirs_is_deterministic_and_round_trips() {
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let model = t.path().join("m");
    write_model(
        &model,
        &[
            ("config.json", b"{}"),
            ("tokenizer/vocab.txt", b"a\nb\n"),
            ("tokenizer/merges.txt", b"a b\n"),
            (
                "weights/part-1.safetensors",
                &harness::pseudo_random(70_000, 3),
            ),
            ("weights/deep/er/x.bin", b"x"),
        ],
    );
    let a = format!("{}/{}:v1", reg.host, harness::repo("dirs"));
    let b = format!("{}/{}:v1", reg.host, harness::repo("dirs"));
    let first = run_json(&["push", s(&model), &a, "--archive-dirs"]);
    // Later mtimes change nothing.
    std::fs::File::options()
        .append(true)
        .open(model.join("tokenizer/vocab.txt"))
        .unwrap()
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    let second = run_json(&["push", s(&model), &b, "--archive-dirs"]);
    assert_eq!(first["digest"], second["digest"]);
    let layers: Vec<(&str, &str)> = first["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap(),
                f["mediaType"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        layers,
        [
            ("config.json", mt::MODEL_WEIGHT_CONFIG),
            (
                "tokenizer",
                "application/vnd.cncf.model.weight.config.v1.tar"
            ),
            ("weights", "application/vnd.cncf.model.weight.v1.tar"),
        ]
    );
    let out = t.path().join("out");
    run_json(&["pull", &b, s(&out)]);
    assert_eq!(tree(&out), tree(&model));
    // Without the flag: one raw layer per file, as before.
    let plain = run_json(&["push", s(&model), &a]);
    assert_eq!(plain["files"].as_array().unwrap().len(), 5);
}
