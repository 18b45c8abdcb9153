//! Property-based fuzzing (proptest, stable Rust) of every public parser of untrusted input:
//! references, manifests, model files and paths, Sigstore bundles, DSSE envelopes, in-toto and
//! model-signing statements, trusted roots, signing configs, policy files, OCI layout indexes,
//! `WWW-Authenticate` challenges, `Link` headers, materials and archive layers (tar headers,
//! gzip, zstd). Each must never panic, and round-trip where it serialises. The test command
//! runs a short budget (proptest's default, 256 cases a property, or `PROPTEST_CASES`);
//! `scripts/fuzz.sh` runs a long one. A failure proptest finds is kept
//! in `tests/proptest-regressions/fuzz.txt` and replayed first on every run.

use crate::support::testdata;
use oci_model::digest::Digest;
use oci_model::model::ModelPath;
use oci_model::reference::Target;
use oci_model::store::ImageManifest;
use proptest::prelude::*;
use serde_json::{json, Value};

/// Keys and strings a manifest, bundle or statement parser looks for, so that generated JSON
/// reaches past the first "missing field" check.
const VOCABULARY: &[&str] = &[
    "schemaVersion",
    "mediaType",
    "artifactType",
    "config",
    "layers",
    "manifests",
    "subject",
    "annotations",
    "digest",
    "size",
    "urls",
    "data",
    "platform",
    "org.cncf.model.filepath",
    "org.opencontainers.image.title",
    "org.opencontainers.image.ref.name",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.cncf.model.manifest.v1+json",
    "application/vnd.cncf.model.weight.v1.raw",
    "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    "_type",
    "predicateType",
    "predicate",
    "name",
    "sha256",
    "resources",
    "serialization",
    "method",
    "hash_type",
    "allow_symlinks",
    "ignore_paths",
    "dsseEnvelope",
    "payload",
    "payloadType",
    "signatures",
    "sig",
    "keyid",
    "verificationMaterial",
    "publicKey",
    "hint",
    "tlogEntries",
    "certificate",
    "rawBytes",
    "https://model_signing/signature/v1.0",
    "https://in-toto.io/Statement/v1",
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.in-toto+json",
    "../../etc/passwd",
    "/abs",
    "a/b.bin",
    "\u{1b}[2K",
    "",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(VOCABULARY).prop_map(str::to_string),
        1 => ".{0,24}",
    ]
}

/// Arbitrary JSON, biased towards the shapes the parsers expect.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A valid sample with a few bytes overwritten, inserted or cut off.
fn mutated(sample: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = sample.len().max(1);
    prop::collection::vec((0..len, any::<u8>(), 0u8..3), 1..6).prop_map(move |edits| {
        let mut out = sample.clone();
        for (at, byte, op) in edits {
            let at = at.min(out.len());
            match op {
                0 if at < out.len() => out[at] = byte,
                1 => out.insert(at, byte),
                _ => out.truncate(at),
            }
        }
        out
    })
}

fn key_bundle() -> Vec<u8> {
    std::fs::read(testdata("model-signing/v1.1.0-elliptic-key/model.sig"))
        .expect("testdata/model-signing/v1.1.0-elliptic-key/model.sig")
}

fn key_policy() -> oci_model::verify::SignerPolicy {
    let key =
        oci_model::verify::TrustedKey::from_file(&testdata("model-signing/signing-key-pub.pem"))
            .expect("testdata/model-signing/signing-key-pub.pem");
    oci_model::verify::SignerPolicy::new().with_key(key)
}

proptest! {
    #[test]
    fn references_never_panic_and_round_trip(input in prop_oneof![
        ".{0,80}",
        "(oci:)?[a-z0-9.:/_@-]{0,60}(:[A-Za-z0-9_.-]{0,12})?",
        "[a-z0-9.-]{1,20}(:[0-9]{1,5})?/[a-z0-9/._-]{1,30}(:[A-Za-z0-9_.-]{1,10})?(@sha256:[0-9a-f]{64})?",
    ]) {
        if let Ok(target) = Target::parse(&input) {
            let shown = target.to_string();
            let again = Target::parse(&shown);
            prop_assert!(again.is_ok(), "{input:?} → {shown:?} does not parse again");
            prop_assert_eq!(again.unwrap(), target);
        }
        let _ = oci_model::store::checked::Reference::parse(&input);
    }

    #[test]
    fn model_paths_accept_only_safe_relative_paths(input in prop_oneof![
        ".{0,60}",
        "[a-zA-Z0-9./\\\\:_ -]{0,40}",
        prop::sample::select(vec!["..", "a/../b", "/etc/x", "C:x", "a\\b", "a//b", "./a", "a/.", "a\u{0}b", "a\u{1b}b"]).prop_map(str::to_string),
    ]) {
        if let Ok(p) = ModelPath::new(&input) {
            let s = p.as_str();
            prop_assert!(!s.is_empty() && !s.starts_with('/'), "{s:?}");
            prop_assert!(s.split('/').all(|c| !c.is_empty() && c != "." && c != ".."), "{s:?}");
            prop_assert!(!s.chars().any(|c| c.is_control() || c == '\\'), "{s:?}");
        }
    }

    #[test]
    fn manifests_never_panic_and_round_trip(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        if let Ok(m) = serde_json::from_slice::<ImageManifest>(&bytes) {
            let again: ImageManifest = serde_json::from_slice(&m.to_bytes()).unwrap();
            prop_assert_eq!(again, m.clone());
            // A model view of any manifest: files only with safe paths, or an error.
            let artifact = oci_model::model::ModelArtifact {
                descriptor: oci_model::store::Descriptor::new(
                    oci_model::media_types::OCI_MANIFEST,
                    Digest::of(&bytes),
                    bytes.len() as u64,
                ),
                bytes: bytes.clone().into(),
                manifest: m,
            };
            if let Ok(files) = artifact.files() {
                for f in files {
                    prop_assert!(ModelPath::new(f.path.as_str()).is_ok());
                }
            }
        }
        let _ = serde_json::from_slice::<oci_model::store::ImageIndex>(&bytes);
    }

    #[test]
    fn bundles_never_panic(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let root = oci_model::verify::TrustedRoot::production().unwrap();
        let options = oci_model::verify::VerifyOptions::default();
        let _ = oci_model::verify::verify_signature(&bytes, &key_policy(), &root, &options);
    }

    #[test]
    fn a_mutated_key_bundle_never_panics_and_never_verifies_different_bytes(
        bytes in mutated(key_bundle())
    ) {
        let root = oci_model::verify::TrustedRoot::production().unwrap();
        let result = oci_model::verify::verify_signature(
            &bytes,
            &key_policy(),
            &root,
            &oci_model::verify::VerifyOptions::oms(),
        );
        if result.is_ok() {
            // Only an edit that leaves the signed content as it was may pass: white space, or
            // the unsigned key hint and keyid (the trusted key comes from the policy, never
            // from the bundle).
            let signed = |v: Value| {
                let e = &v["dsseEnvelope"];
                (e["payload"].clone(), e["payloadType"].clone(), e["signatures"][0]["sig"].clone())
            };
            let a: Value = serde_json::from_slice(&bytes).unwrap();
            let b: Value = serde_json::from_slice(&key_bundle()).unwrap();
            prop_assert_eq!(signed(a), signed(b));
        }
    }

    #[test]
    fn model_signing_statements_never_panic_and_round_trip(value in json_value(), names in prop::collection::btree_set("[a-z]{1,8}(/[a-z0-9]{1,8}){0,2}", 1..6)) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let _ = oci_model::signing::ModelStatement::parse(&bytes);
        let statement = oci_model::signing::ModelStatement::from_pairs(
            "m",
            names.iter().map(|n| (n.clone(), Digest::of(n.as_bytes()))),
            Default::default(),
        );
        if let Ok(statement) = statement {
            let again = oci_model::signing::ModelStatement::parse(&statement.to_payload()).unwrap();
            prop_assert_eq!(again.root_digest(), statement.root_digest());
            prop_assert_eq!(again.resources.len(), statement.resources.len());
        }
    }

    #[test]
    fn in_toto_statements_never_panic_and_round_trip(value in json_value()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        if let Ok(s) = serde_json::from_slice::<oci_model::intoto::Statement>(&bytes) {
            let again: oci_model::intoto::Statement =
                serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
            prop_assert_eq!(again, s);
        }
    }

    #[test]
    fn trust_and_signing_configs_never_panic(value in json_value(), text in ".{0,200}") {
        let json_text = value.to_string();
        let _ = oci_model::verify::TrustedRoot::from_json(&json_text, "fuzz");
        let _ = oci_model::verify::TrustedRoot::from_json(&text, "fuzz");
        let _ = oci_model::signing::signing_config::Services::from_json(&json_text, "fuzz");
    }

    #[test]
    fn policy_files_never_panic(text in prop_oneof![
        ".{0,200}",
        "(repositories|version|signers|keys|key|identities|requireSigners|attestations|- |: |\n|  |[a-z*/]{1,8}|[0-9]{1,3}){0,60}",
    ]) {
        let _ = oci_model::verify::PolicyFile::from_yaml(&text, std::path::Path::new("."), "fuzz.yaml");
    }

    #[test]
    fn challenges_and_materials_never_panic(text in prop_oneof![
        ".{0,120}",
        "(Bearer|Basic|realm|service|scope|error|=|\"|,| |\\\\|[a-z:/.]{1,10}){0,40}",
    ]) {
        let _ = oci_model::store::auth::parse_www_authenticate(&text);
        let _ = oci_model::attest::Material::parse(&text);
    }

    #[test]
    fn link_headers_never_panic_and_find_the_next_page(
        text in prop_oneof![
            ".{0,120}",
            "(<|>|;|,| |rel|=|\"|next|prev|[a-z:/?&=.]{1,10}){0,40}",
        ],
        url in "[a-zA-Z0-9/?&=:._-]{0,60}",
        other in "[a-zA-Z0-9/?&=:._-]{0,60}",
        quoted in any::<bool>(),
        first in any::<bool>(),
    ) {
        use oci_model::store::registry::next_link;
        use reqwest::header::{HeaderMap, HeaderValue, LINK};
        // Anything: no panic, and never more than the header held.
        if let Ok(v) = HeaderValue::from_str(&text) {
            let mut h = HeaderMap::new();
            h.insert(LINK, v);
            if let Some(found) = next_link(&h) {
                prop_assert!(found.len() <= text.len());
            }
        }
        // A next link among others is found exactly, however it is quoted and placed.
        let rel = if quoted { "rel=\"next\"" } else { "rel=next" };
        let next = format!("<{url}>; {rel}");
        let prev = format!("<{other}>; rel=\"prev\"");
        let value = if first { format!("{next}, {prev}") } else { format!("{prev}, {next}") };
        let mut h = HeaderMap::new();
        h.insert(LINK, HeaderValue::from_str(&value).unwrap());
        prop_assert_eq!(next_link(&h), Some(url.clone()));
        // Without a next link: none.
        let mut h = HeaderMap::new();
        h.insert(LINK, HeaderValue::from_str(&prev).unwrap());
        prop_assert_eq!(next_link(&h), None);
    }
}

proptest! {
    // Each case writes a layout to disk: fewer cases.
    #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases.min(64), ..ProptestConfig::default() })]

    #[test]
    fn layout_indexes_never_panic(value in json_value(), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for index in [serde_json::to_vec(&value).unwrap(), raw.clone()] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
            std::fs::write(dir.path().join("index.json"), &index).unwrap();
            let target = Target::parse(&format!("oci:{}:v1", dir.path().display())).unwrap();
            rt.block_on(async {
                if let Ok(store) = oci_model::store::open(&target, &Default::default()).await {
                    let _ = store.resolve("v1").await;
                    let _ = store.list_tags().await;
                }
            });
        }
    }
}

/// A tar entry a generator may produce: any type flag, a name from hostile and ordinary ones,
/// some data and any mode.
fn tar_entry() -> impl Strategy<Value = (u8, String, Vec<u8>, u32)> {
    (
        prop::sample::select(&b"0\x00125673LKgxSZ"[..]),
        prop_oneof![
            3 => "[a-z]{1,6}(/[a-z.]{1,6}){0,3}",
            1 => prop::sample::select(&["../x", "/etc/x", "./a/", "a/../../b", "a\\b", "", ".", "a//b", "\u{1b}[2K"][..]).prop_map(str::to_string),
            1 => ".{0,99}",
        ],
        prop::collection::vec(any::<u8>(), 0..600),
        any::<u32>(),
    )
}

/// A tar archive of these entries, names and type flags written raw into the headers.
fn raw_tar(entries: &[(u8, String, Vec<u8>, u32)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (kind, name, data, mode) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::new(*kind));
        let n = name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&name.as_bytes()[..n]);
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

proptest! {
    // Each case unpacks into a temporary directory: half the cases (128 in the test command).
    #![proptest_config(ProptestConfig { cases: (ProptestConfig::default().cases / 2).max(1), ..ProptestConfig::default() })]

    /// The archive reader (tar headers, gzip, zstd) never panics on any input, keeps to its
    /// bounds, writes only into its staging directory, accepts only safe paths and modes, and
    /// reads back what the writer wrote.
    #[test]
    fn archives_never_panic_stay_bounded_and_round_trip(
        entries in prop::collection::vec(tar_entry(), 0..6),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        form in 0u8..3,
        max_bytes in 0u64..4096,
        files in prop::collection::btree_map("[a-z]{1,8}(/[a-z]{1,8}){0,2}", prop::collection::vec(any::<u8>(), 0..300), 0..5),
    ) {
        use oci_model::model::archive::{self, ArchiveFormat, Budget, Staging, TarSource};
        let mut tar = raw_tar(&entries);
        for (at, byte) in &edits {
            if !tar.is_empty() {
                let i = at.index(tar.len());
                tar[i] = *byte;
            }
        }
        let (blob, format) = match form {
            0 => (tar.clone(), ArchiveFormat::Tar),
            1 => {
                use std::io::Write;
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&tar).unwrap();
                (e.finish().unwrap(), ArchiveFormat::TarGzip)
            }
            _ => (zstd::encode_all(&tar[..], 1).unwrap(), ArchiveFormat::TarZstd),
        };
        let layer = oci_model::store::Descriptor::new("application/vnd.cncf.model.weight.v1.tar", Digest::of(&blob), blob.len() as u64);
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        let budget = Budget::new(max_bytes, "the test's budget".into());
        let stage = Staging { dir: staging.clone(), prefix: "e".into() };
        // Random bytes too, in every form.
        for input in [&blob[..], &tar[..tar.len().min(700)]] {
            if let Ok(got) = archive::read_entries(input, format, &layer, "fuzz", &budget, Some(&stage)) {
                let total: u64 = got.iter().map(|e| e.size).sum();
                prop_assert!(total <= max_bytes);
                for e in &got {
                    prop_assert!(ModelPath::new(e.path.as_str()).is_ok());
                    prop_assert_eq!(e.mode & !0o755, 0o600 & !0o755);
                    let at = e.staged.as_ref().unwrap();
                    prop_assert_eq!(at.parent().unwrap(), staging.as_path());
                    prop_assert_eq!(Digest::of(&std::fs::read(at).unwrap()), e.digest.clone());
                }
            }
            for e in std::fs::read_dir(&staging).unwrap() {
                std::fs::remove_file(e.unwrap().path()).unwrap();
            }
        }
        // Only the staging directory was ever written.
        prop_assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        // Round trip: what write_tar writes, read_entries reads back, file for file.
        let src = tempfile::tempdir().unwrap();
        let mut sources = Vec::new();
        for (i, (path, data)) in files.iter().enumerate() {
            // A path may not be both a file and a directory.
            if files.keys().any(|other| other.starts_with(&format!("{path}/"))) {
                continue;
            }
            let at = src.path().join(i.to_string());
            std::fs::write(&at, data).unwrap();
            sources.push((TarSource { path: ModelPath::new(path).unwrap(), source: at, size: data.len() as u64, executable: false }, data.clone()));
        }
        let list: Vec<TarSource> = sources.iter().map(|(s, _)| s.clone()).collect();
        let written = archive::write_tar(Vec::new(), &list).unwrap();
        let layer = oci_model::store::Descriptor::new("x.tar", Digest::of(&written), written.len() as u64);
        let read = archive::read_entries(&written[..], ArchiveFormat::Tar, &layer, "fuzz", &Budget::unwritten(), None).unwrap();
        let mut want: Vec<(String, Digest)> = sources.iter().map(|(s, d)| (s.path.to_string(), Digest::of(d))).collect();
        want.sort();
        let got: Vec<(String, Digest)> = read.iter().map(|e| (e.path.to_string(), e.digest.clone())).collect();
        prop_assert_eq!(got, want);
    }
}

/// Every key the OCI types model, at any level: generated unknown keys avoid them.
const MODELLED_KEYS: &[&str] = &[
    "schemaVersion",
    "mediaType",
    "artifactType",
    "manifests",
    "subject",
    "annotations",
    "digest",
    "size",
    "platform",
    "urls",
    "data",
    "architecture",
    "os",
    "os.version",
    "os.features",
    "variant",
    "features",
];

/// Fields the OCI types do not model, with arbitrary JSON values.
fn unknown_fields() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec(
        (
            word().prop_filter("a modelled key", |k| !MODELLED_KEYS.contains(&k.as_str())),
            json_value(),
        ),
        0..4,
    )
}

/// `fields` merged into `object`, before or after the modelled fields.
fn with_fields(object: Value, fields: Vec<(String, Value)>, first: bool) -> Value {
    let mut out = serde_json::Map::new();
    let known = match object {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    if !first {
        out.extend(known.clone());
    }
    out.extend(fields);
    for (k, v) in known {
        out.insert(k, v);
    }
    Value::Object(out)
}

/// A descriptor as another tool may write it: the modelled fields (optional ones present or
/// not) and unknown ones, anywhere.
fn foreign_descriptor() -> impl Strategy<Value = Value> {
    (
        any::<[u8; 8]>(),
        any::<u64>(),
        prop::option::of(word()),
        prop::option::of(prop::collection::btree_map(word(), word(), 0..3)),
        prop::option::of((
            prop::option::of(word()),
            prop::option::of(word()),
            prop::option::of(prop::collection::vec(word(), 0..3)),
            unknown_fields(),
        )),
        prop::option::of(prop::collection::vec(word(), 0..3)),
        prop::option::of(word()),
        unknown_fields(),
        any::<bool>(),
    )
        .prop_map(
            |(seed, size, artifact_type, annotations, platform, urls, data, unknown, first)| {
                let mut d = json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": Digest::of(&seed),
                    "size": size,
                });
                if let Some(t) = artifact_type {
                    d["artifactType"] = json!(t);
                }
                if let Some(a) = annotations {
                    d["annotations"] = json!(a);
                }
                if let Some((arch, os, features, unknown)) = platform {
                    let mut p = json!({});
                    if let Some(a) = arch {
                        p["architecture"] = json!(a);
                    }
                    if let Some(o) = os {
                        p["os"] = json!(o);
                    }
                    if let Some(f) = features {
                        p["os.features"] = json!(f);
                    }
                    d["platform"] = with_fields(p, unknown, first);
                }
                if let Some(u) = urls {
                    d["urls"] = json!(u);
                }
                if let Some(b) = data {
                    d["data"] = json!(b);
                }
                with_fields(d, unknown, first)
            },
        )
}

proptest! {
    /// Issue 11 item 10: an index another tool wrote, with fields we do not model on the
    /// index, its subject, its entries and their platforms, parses; written back, it holds
    /// every field it was read with (the same JSON), and parses to the same index again.
    /// Arbitrary JSON that parses as an index round-trips too.
    #[test]
    fn indexes_keep_every_field_they_are_read_with(
        entries in prop::collection::vec(foreign_descriptor(), 0..4),
        subject in prop::option::of(foreign_descriptor()),
        annotations in prop::option::of(prop::collection::btree_map(word(), word(), 0..3)),
        unknown in unknown_fields(),
        first in any::<bool>(),
        value in json_value(),
    ) {
        let mut doc = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        });
        if let Some(s) = subject {
            doc["subject"] = s;
        }
        if let Some(a) = annotations {
            doc["annotations"] = json!(a);
        }
        let doc = with_fields(doc, unknown, first);
        let index: oci_model::store::ImageIndex =
            serde_json::from_value(doc.clone()).map_err(|e| TestCaseError::fail(format!("{e}: {doc}")))?;
        let written = index.to_bytes();
        let back: Value = serde_json::from_slice(&written).unwrap();
        prop_assert_eq!(&back, &doc);
        let again: oci_model::store::ImageIndex = serde_json::from_slice(&written).unwrap();
        prop_assert_eq!(&again, &index);
        prop_assert_eq!(again.to_bytes(), written);

        let bytes = serde_json::to_vec(&value).unwrap();
        if let Ok(i) = serde_json::from_slice::<oci_model::store::ImageIndex>(&bytes) {
            let again: oci_model::store::ImageIndex = serde_json::from_slice(&i.to_bytes()).unwrap();
            prop_assert_eq!(again, i);
        }
    }
}
