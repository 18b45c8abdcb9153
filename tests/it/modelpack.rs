//! Interoperability with `modelpack-client` 0.1.0 (PyPI; the `modelpack` CLI, installed in
//! `.venv` by `scripts/venv.sh`), against the real registry over plain HTTP (`--insecure`):
//! its raw and archive-layer pushes (`.tar`, `.tar+gzip`, `.tar+zstd` directory layers) →
//! our pull, sign, verify and `model_signing verify` of what we pulled; our pushes (raw and
//! `--archive-dirs`) → its pull, files identical.
//!
//! Without `.venv/bin/modelpack` (or `model_signing`) the tests fail (never skip), with or
//! without `CI`: `harness::venv_tool` names what is missing and how to install it.

use crate::harness::{self, Registry};
use crate::support::{keypair, run_json, tree, write_model};
use std::path::{Path, PathBuf};
use std::process::Command;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Run `modelpack --insecure ARGS…`; it must succeed.
fn modelpack(tool: &Path, args: &[&str]) -> String {
    let out = Command::new(tool)
        .arg("--insecure")
        .args(args)
        .output()
        .expect("run modelpack");
    assert!(
        out.status.success(),
        "modelpack {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A model with a config, an executable script and a directory of weights.
fn make_model(root: &Path) -> PathBuf {
    let m = root.join("model");
    write_model(
        &m,
        &[
            ("config.json", br#"{"hidden_size": 8}"#),
            ("run.sh", b"#!/bin/sh\necho hi\n"),
            ("weights/a.safetensors", &harness::pseudo_random(200_000, 5)),
            ("weights/sub/b.bin", b"b"),
            ("weights/sub/empty.bin", b""),
        ],
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(m.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    m
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn modelpack_client_pushes_raw_and_archive_layers_we_pull_sign_and_verify() {
    let tool = harness::venv_tool("modelpack");
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    let config = t.path().join("config.json");
    std::fs::write(&config, r#"{"descriptor":{"name":"mp"},"config":{}}"#).unwrap();
    let (private, public) = keypair(t.path(), "k");
    for form in ["tar", "tar+gzip", "tar+zstd"] {
        let target = format!("{}/{}:v1", reg.host, harness::repo("modelpack"));
        let config_layer = format!(
            "{}:application/vnd.cncf.model.weight.config.v1.raw",
            s(&model.join("config.json"))
        );
        let code_layer = format!(
            "{}:application/vnd.cncf.model.code.v1.raw",
            s(&model.join("run.sh"))
        );
        let weights_layer = format!(
            "{}:application/vnd.cncf.model.weight.v1.{form}",
            s(&model.join("weights"))
        );
        let pushed = modelpack(
            &tool,
            &[
                "push",
                &target,
                "--config",
                s(&config),
                "--layer",
                &config_layer,
                "--layer",
                &code_layer,
                "--layer",
                &weights_layer,
            ],
        );
        assert!(pushed.contains("sha256:"), "{pushed}");
        let inspected = run_json(&["inspect", &target]);
        assert!(
            inspected.to_string().contains(&format!("weight.v1.{form}")),
            "{form}: {inspected}"
        );

        let out = t.path().join(format!("ours-{form}"));
        run_json(&["pull", &target, s(&out)]);
        assert_eq!(tree(&out), tree(&model), "{form}");
        // The mode from its org.cncf.model.file.metadata+json annotation.
        assert_eq!(mode_of(&out.join("run.sh")), 0o755, "{form}");

        let bundle = t.path().join(format!("{form}.sig"));
        let signed = run_json(&[
            "sign",
            &target,
            "--key",
            s(&private),
            "--bundle-out",
            s(&bundle),
        ]);
        assert_eq!(signed["fileCount"], 5, "{form}: {signed}");
        let verified = run_json(&["verify", &target, "--key", s(&public)]);
        assert_eq!(verified["ok"], true, "{form}");
        let checked = t.path().join(format!("checked-{form}"));
        let pulled = run_json(&["pull", &target, s(&checked), "--key", s(&public)]);
        assert_eq!(pulled["verification"]["ok"], true, "{form}");

        let ms = harness::venv_tool("model_signing");
        let out = Command::new(ms)
            .args(["verify", "key", "--public_key"])
            .arg(&public)
            .arg("--signature")
            .arg(&bundle)
            .arg(&checked)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{form}: model_signing rejected the pulled model: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn our_raw_and_archive_dirs_pushes_pull_with_modelpack_client() {
    let tool = harness::venv_tool("modelpack");
    let reg = Registry::start();
    let t = tempfile::tempdir().unwrap();
    let model = make_model(t.path());
    for flags in [&[][..], &["--archive-dirs"][..]] {
        let target = format!("{}/{}:v1", reg.host, harness::repo("ours"));
        let mut args = vec!["push", s(&model), &target];
        args.extend(flags);
        run_json(&args);
        let out = t.path().join(format!("theirs{}", flags.len()));
        modelpack(&tool, &["pull", &target, s(&out)]);
        assert_eq!(tree(&out), tree(&model), "{flags:?}");
    }
}
