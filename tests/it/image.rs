//! The container image: the shipped `Containerfile`'s runtime stage, rebuilt here with
//! `buildah` FROM scratch (base images cannot be pulled on this machine) from the binary under
//! test and the shared libraries it links (`ldd`), with the same entrypoint, user,
//! environment and labels; run inside the image; pushed to the real registry; then signed by
//! oci-model with a key and verified by it: the tool signs its own image.
//!
//! buildah runs as root without a daemon: vfs storage in a private directory (`--root`,
//! `--runroot`), chroot isolation.

use crate::harness;
use crate::support::{keypair, output};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A Containerfile instruction: keyword and the rest (continuation lines joined).
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (kw, rest) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((kw.to_ascii_uppercase(), rest.trim().to_string()));
        current.clear();
    }
    out
}

/// The shipped Containerfile's stages: (FROM line, instructions).
fn stages() -> Vec<(String, Vec<(String, String)>)> {
    let text = std::fs::read_to_string(harness::project_root().join("Containerfile"))
        .expect("Containerfile at the repository root");
    let mut stages: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (kw, rest) in instructions(&text) {
        match kw.as_str() {
            "FROM" => stages.push((rest, Vec::new())),
            "ARG" if stages.is_empty() => {}
            _ => stages
                .last_mut()
                .expect("an instruction before FROM")
                .1
                .push((kw, rest)),
        }
    }
    stages
}

fn buildah(storage: &Path, args: &[&str]) -> std::process::Output {
    Command::new("buildah")
        .arg("--root")
        .arg(storage.join("root"))
        .arg("--runroot")
        .arg(storage.join("run"))
        .args(["--storage-driver", "vfs"])
        .args(args)
        .env("BUILDAH_ISOLATION", "chroot")
        .output()
        .expect("run buildah (apt package buildah; scripts/deps.sh installs it)")
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Copy `src` to `root` + `dest`, creating the directories.
fn place(root: &Path, src: &Path, dest: &str) {
    let to = root.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(src, &to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), to.display()));
}

/// The shared libraries `binary` loads, with the dynamic loader (paths from `ldd`).
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = ok(Command::new("ldd").arg(binary).output().unwrap(), "ldd");
    out.lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

/// An image built from the Containerfile's runtime stage, pushed to a running registry.
struct Pushed {
    work: tempfile::TempDir,
    _registry: harness::Registry,
    /// host/repository
    repo: String,
    digest: String,
}

/// Build the image (checking the shipped Containerfile on the way), run it, push it.
fn build_run_and_push() -> Pushed {
    // The shipped Containerfile: a Rust build stage and a real base for the runtime.
    let stages = stages();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build_from, build) = &stages[0];
    assert!(
        build_from.contains("rust:") && build_from.ends_with(" AS build"),
        "{build_from}"
    );
    assert!(build
        .iter()
        .any(|(k, r)| k == "RUN" && r.contains("cargo build --release --locked")));
    let (runtime_from, runtime) = &stages[1];
    assert_ne!(
        runtime_from, "scratch",
        "the shipped image has a base with CA certificates"
    );
    assert!(runtime
        .iter()
        .any(|(k, r)| k == "RUN" && r.contains("ca-certificates")));
    let user = runtime
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .expect("USER")
        .1
        .clone();
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric USER");
    assert_ne!(uid, 0, "the image runs as root");
    let copy = runtime
        .iter()
        .find(|(k, r)| k == "COPY" && r.starts_with("--from=build "))
        .expect("COPY --from=build");
    let binary_path = copy.1.split_whitespace().last().unwrap().to_string();
    let entrypoint = runtime
        .iter()
        .find(|(k, _)| k == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    assert_eq!(entrypoint.1, format!("[\"{binary_path}\"]"));

    // The same runtime stage FROM scratch: the binary under test (debug symbols stripped),
    // its libraries, CA certificates and the user the base stage's RUN makes.
    let work = tempfile::tempdir().unwrap();
    let ctx = work.path().join("context");
    let rootfs = ctx.join("rootfs");
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_oci-model"));
    place(&rootfs, &exe, &binary_path);
    let placed = rootfs.join(binary_path.trim_start_matches('/'));
    ok(
        Command::new("strip")
            .arg("--strip-debug")
            .arg(&placed)
            .output()
            .unwrap(),
        "strip",
    );
    for lib in shared_libraries(&exe) {
        place(
            &rootfs,
            &std::fs::canonicalize(&lib).unwrap(),
            lib.to_str().unwrap(),
        );
    }
    place(
        &rootfs,
        Path::new("/etc/ssl/certs/ca-certificates.crt"),
        "/etc/ssl/certs/ca-certificates.crt",
    );
    std::fs::write(rootfs.join("etc/passwd"), format!("root:x:0:0::/root:/sbin/nologin\noci-model:x:{uid}:{uid}::/home/oci-model:/usr/sbin/nologin\n")).unwrap();
    std::fs::write(
        rootfs.join("etc/group"),
        format!("root:x:0:\noci-model:x:{uid}:\n"),
    )
    .unwrap();
    let mut containerfile = String::from("FROM scratch\nCOPY rootfs/ /\n");
    for (kw, rest) in runtime {
        if ["LABEL", "ENV", "USER", "WORKDIR", "ENTRYPOINT", "CMD"].contains(&kw.as_str()) {
            containerfile.push_str(&format!("{kw} {rest}\n"));
        }
    }
    std::fs::write(ctx.join("Containerfile"), &containerfile).unwrap();

    let storage = work.path().join("storage");
    let image = "localhost/oci-model:test";
    ok(
        buildah(
            &storage,
            &[
                "bud",
                "--isolation",
                "chroot",
                "-f",
                ctx.join("Containerfile").to_str().unwrap(),
                "-t",
                image,
                ctx.to_str().unwrap(),
            ],
        ),
        "buildah bud",
    );
    // The image runs: entrypoint, libraries and user are enough for the binary.
    let container = ok(buildah(&storage, &["from", image]), "buildah from")
        .trim()
        .to_string();
    let version = ok(
        buildah(
            &storage,
            &[
                "run",
                "--isolation",
                "chroot",
                &container,
                "--",
                &binary_path,
                "--version",
            ],
        ),
        "buildah run",
    );
    assert_eq!(
        version.trim(),
        format!("oci-model {}", env!("CARGO_PKG_VERSION"))
    );
    let config = ok(
        buildah(&storage, &["inspect", "--type", "image", image]),
        "buildah inspect",
    );
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    let config = &config["OCIv1"]["config"];
    assert_eq!(config["User"], user.as_str());
    assert_eq!(config["Entrypoint"], serde_json::json!([binary_path]));
    ok(buildah(&storage, &["rm", &container]), "buildah rm");

    // Push to the registry, by the digest buildah reports.
    let reg = harness::Registry::start();
    let repo = format!("{}/{}", reg.host, harness::repo("oci-model-image"));
    let digest_file = work.path().join("digest");
    ok(
        buildah(
            &storage,
            &[
                "push",
                "--tls-verify=false",
                "--digestfile",
                digest_file.to_str().unwrap(),
                image,
                &format!("docker://{repo}:0.1.0"),
            ],
        ),
        "buildah push",
    );
    let digest = std::fs::read_to_string(&digest_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let target = format!("{repo}@{digest}");

    // The registry holds exactly what buildah pushed.
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{target}"))
        .output()
        .expect("run skopeo");
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let hex: String = crate::fakes::sha256(&raw.stdout)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(format!("sha256:{hex}"), digest);
    Pushed {
        work,
        _registry: reg,
        repo,
        digest,
    }
}

#[test]
fn image_containerfile_runtime_stage_builds_runs_and_pushes_with_buildah() {
    let pushed = build_run_and_push();
    assert!(pushed.repo.contains("oci-model-image"));
}

#[test]
fn image_the_tool_signs_and_verifies_its_own_image() {
    let Pushed {
        work,
        _registry,
        repo,
        digest,
    } = build_run_and_push();
    let target = format!("{repo}@{digest}");
    // The tool signs its own image with a key and verifies it.
    let (key, public) = keypair(work.path(), "release");
    let (code, stdout, stderr) = output(harness::bin().args(["sign", &target, "--key"]).arg(&key));
    assert_eq!(code, 0, "sign the image: {stdout}{stderr}");
    let verify = |public: &Path| {
        output(
            harness::bin()
                .args(["verify", &format!("{repo}:0.1.0"), "--key"])
                .arg(public),
        )
    };
    let (code, stdout, stderr) = verify(&public);
    assert_eq!(code, 0, "verify the image: {stdout}{stderr}");
    assert!(
        stdout.contains(&digest) || stderr.contains(&digest),
        "{stdout}{stderr}"
    );
    // Another key does not pass.
    let (_, other) = keypair(work.path(), "other");
    let (code, _, _) = verify(&other);
    assert_eq!(code, 1);
}
