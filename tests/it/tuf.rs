//! `trusted-root update`: the Sigstore trusted root fetched through TUF from a repository that
//! python-tuf (the reference implementation, in the project's venv) builds and signs
//! (`scripts/tuf-test-repo.py`), served over HTTP on 127.0.0.1. A fresh fetch is then used by
//! every command (shown by a bundle that only the new root trusts), a newer version replaces
//! it (also across a rotation of the repository's own root keys), and a rolled-back, expired, badly signed or tampered repository is refused, leaving the
//! cache as it was. With no update ever run, commands use the embedded root and touch no
//! network. Each test has its own cache directory (XDG_CACHE_HOME).

use crate::fakes::FakeSigstore;
use crate::harness;
use crate::support::{keypair, output, write_model};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The venv's python with python-tuf; a missing one fails the test.
fn python() -> PathBuf {
    harness::venv_python_with("tuf.api.metadata")
}

/// A static HTTP server on 127.0.0.1 serving one directory (switchable), counting requests.
struct Served {
    url: String,
    dir: Arc<Mutex<PathBuf>>,
    hits: Arc<AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    fn start(dir: &Path) -> Served {
        use axum::extract::State;
        use axum::http::{StatusCode, Uri};
        type Shared = (Arc<Mutex<PathBuf>>, Arc<AtomicUsize>);
        async fn file(State((dir, hits)): State<Shared>, uri: Uri) -> (StatusCode, Vec<u8>) {
            hits.fetch_add(1, Ordering::SeqCst);
            let rel = uri.path().trim_start_matches('/');
            if rel
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
            {
                return (StatusCode::NOT_FOUND, Vec::new());
            }
            let path = dir.lock().unwrap().join(rel);
            match std::fs::read(path) {
                Ok(bytes) => (StatusCode::OK, bytes),
                Err(_) => (StatusCode::NOT_FOUND, Vec::new()),
            }
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared: Shared = (
            Arc::new(Mutex::new(dir.to_path_buf())),
            Arc::new(AtomicUsize::new(0)),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(file).with_state(state);
                let server = tokio::spawn(async move { axum::serve(l, app).await.ok() });
                let _ = rx.await;
                server.abort();
            });
        });
        Served {
            url,
            dir: shared.0,
            hits: shared.1,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    fn serve(&self, dir: &Path) {
        *self.dir.lock().unwrap() = dir.to_path_buf();
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TUF repository built by python-tuf, its keys, and the test's own cache directory.
struct Repo {
    python: PathBuf,
    tmp: tempfile::TempDir,
}

impl Repo {
    /// Version 1 of a repository publishing `trusted_root`.
    fn init(python: PathBuf, trusted_root: &Path) -> Repo {
        let repo = Repo {
            python,
            tmp: tempfile::tempdir().unwrap(),
        };
        repo.script(&["init"], trusted_root);
        repo
    }

    fn script(&self, args: &[&str], trusted_root: &Path) {
        let out = std::process::Command::new(&self.python)
            .arg(harness::project_root().join("scripts/tuf-test-repo.py"))
            .arg(args[0])
            .arg(self.dir())
            .arg(self.tmp.path().join("keys"))
            .arg(trusted_root)
            .args(&args[1..])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tuf-test-repo.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The next version, publishing `trusted_root` (with `flags` of the script).
    fn publish(&self, trusted_root: &Path, flags: &[&str]) {
        let mut args = vec!["publish"];
        args.extend_from_slice(flags);
        self.script(&args, trusted_root);
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    /// The TUF root.json to start from (`--root`).
    fn root(&self) -> PathBuf {
        self.dir().join("1.root.json")
    }

    /// A copy of the repository as it is now.
    fn copy(&self, name: &str) -> PathBuf {
        let to = self.tmp.path().join(name);
        copy_dir(&self.dir(), &to);
        to
    }

    /// The cache directory the commands of this test use (XDG_CACHE_HOME).
    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    /// The oci-model command with this test's cache.
    fn bin(&self) -> assert_cmd::Command {
        let mut cmd = harness::bin();
        cmd.env("XDG_CACHE_HOME", self.cache());
        cmd
    }

    fn update(&self, url: &str, root: bool) -> (i32, String, String) {
        let mut cmd = self.bin();
        cmd.args(["-o", "json", "trusted-root", "update", "--tuf-url", url]);
        if root {
            cmd.arg("--root").arg(self.root());
        }
        output(&mut cmd)
    }

    fn status(&self) -> Value {
        let (code, stdout, stderr) =
            output(self.bin().args(["-o", "json", "trusted-root", "status"]));
        assert_eq!(code, 0, "{stderr}");
        let doc: Value = serde_json::from_str(&stdout).unwrap();
        let schema = crate::json_output::schema("trusted-root-status");
        let mut errors = Vec::new();
        crate::json_output::check(&schema, &schema, &doc, "status", &mut errors);
        assert!(errors.is_empty(), "{errors:#?}\n{doc:#}");
        doc
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A model in an OCI layout signed with `--key --tlog-upload=true` in the fake Rekor: only a
/// trusted root that lists that Rekor can check it. Returns (target, public key).
fn logged_model(fake: &FakeSigstore, dir: &Path) -> (String, PathBuf) {
    let model = dir.join("model");
    write_model(&model, &[("config.json", br#"{"hidden_size": 8}"#)]);
    let target = format!("oci:{}:v1", dir.join("layout").display());
    let (key, public) = keypair(dir, "signer");
    harness::bin()
        .arg("push")
        .arg(&model)
        .arg(&target)
        .assert()
        .success();
    harness::bin()
        .args(["sign", &target, "--tlog-upload=true", "--key"])
        .arg(&key)
        .arg("--signing-config")
        .arg(&fake.trust_config_path)
        .assert()
        .success();
    (target, public)
}

/// `verify TARGET --key PUB` with the repository's cache and no `--trusted-root`.
fn verify(repo: &Repo, target: &str, public: &Path) -> (i32, String, String) {
    output(repo.bin().args(["verify", target, "--key"]).arg(public))
}

#[test]
fn fresh_fetch_is_used_by_every_command_and_a_newer_version_replaces_it() {
    let python = python();
    let fake = FakeSigstore::start();
    let repo = Repo::init(python, &fake.trusted_root_path);
    let server = Served::start(&repo.dir());
    let work = tempfile::tempdir().unwrap();
    let (target, public) = logged_model(&fake, work.path());

    // Before any update: the embedded root, which does not know the fake Rekor.
    assert_eq!(repo.status()["inUse"], "embedded");
    let (code, _, stderr) = verify(&repo, &target, &public);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("transparency log"), "{stderr}");

    // A repository other than the public-good one needs its root.json the first time.
    let (code, _, stderr) = repo.update(&server.url, false);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--root"), "{stderr}");

    let (code, stdout, stderr) = repo.update(&server.url, true);
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["inUse"], "cache", "{doc:#}");
    assert_eq!(doc["cached"]["tufUrl"], server.url.as_str());
    assert_eq!(doc["cached"]["targetsVersion"], 1);
    assert_eq!(doc["cached"]["sha256"], sha256_hex(&fake.trusted_root_path));
    let cache_dir = repo.cache().join("oci-model/trusted-root");
    assert_eq!(doc["cacheDir"], cache_dir.display().to_string());

    // Every command now uses the cached root: verify checks the fake Rekor's entry…
    let (code, stdout, stderr) = verify(&repo, &target, &public);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    assert!(stdout.contains(&server.url), "{stdout}");
    // …and `trusted-root show` lists its log.
    let (code, stdout, stderr) = output(repo.bin().args(["trusted-root", "show"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("Trusted root: TUF {}", server.url)),
        "{stdout}"
    );
    assert!(stdout.contains(&fake.rekor_url), "{stdout}");
    // --trusted-root still replaces it.
    let embedded = crate::support::testdata("sigstore-extra/production/trusted_root.json");
    let (code, _, stderr) = output(
        repo.bin()
            .args(["verify", &target, "--key"])
            .arg(&public)
            .arg("--trusted-root")
            .arg(&embedded),
    );
    assert_eq!(code, 1, "{stderr}");

    // Version 2 publishes another instance's root; the update (no --root: the anchor was
    // kept) replaces the cached one.
    let other = FakeSigstore::start();
    repo.publish(&other.trusted_root_path, &[]);
    let (code, stdout, stderr) = repo.update(&server.url, false);
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["cached"]["targetsVersion"], 2, "{doc:#}");
    assert_eq!(
        doc["cached"]["sha256"],
        sha256_hex(&other.trusted_root_path)
    );
    let status = repo.status();
    assert_eq!(status["inUse"], "cache");
    assert_eq!(status["cached"]["targetsVersion"], 2);
    // The first fake's log is no longer trusted.
    let (code, _, stderr) = verify(&repo, &target, &public);
    assert_eq!(code, 1, "{stderr}");

    // The repository rotates its root and timestamp keys (root version 2, signed by the old
    // and the new root key) and publishes the first root again: the update follows the chain.
    repo.script(&["rotate-root"], &fake.trusted_root_path);
    let (code, stdout, stderr) = repo.update(&server.url, false);
    assert_eq!(code, 0, "{stderr}");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["cached"]["tufRootVersion"], 2, "{doc:#}");
    assert_eq!(doc["cached"]["targetsVersion"], 3, "{doc:#}");
    // Loading re-verifies the chain from the first root offline, and the root verifies again.
    let status = repo.status();
    assert_eq!(status["cached"]["tufRootVersion"], 2);
    let (code, _, stderr) = verify(&repo, &target, &public);
    assert_eq!(code, 0, "{stderr}");
}

/// Update to version 2 of a repository, keeping a copy of version 1.
fn at_version_2(python: PathBuf, fake: &FakeSigstore) -> (Repo, Served, PathBuf) {
    let repo = Repo::init(python, &fake.trusted_root_path);
    let v1 = repo.copy("repo-v1");
    repo.publish(&fake.trusted_root_path, &[]);
    let server = Served::start(&repo.dir());
    let (code, _, stderr) = repo.update(&server.url, true);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(repo.status()["cached"]["targetsVersion"], 2);
    (repo, server, v1)
}

#[test]
fn rollback_to_an_older_version_is_refused_and_the_cache_kept() {
    let python = python();
    let fake = FakeSigstore::start();
    let (repo, server, v1) = at_version_2(python, &fake);
    server.serve(&v1);
    let (code, stdout, stderr) = repo.update(&server.url, false);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("TUF repository {}", server.url))
            && stderr.contains(
                "rollback refused: timestamp metadata version 1 is older than the version 2 already trusted"
            ),
        "{stderr}"
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let status = repo.status();
    assert_eq!(status["inUse"], "cache");
    assert_eq!(status["cached"]["targetsVersion"], 2);
}

#[test]
fn expired_metadata_is_refused() {
    let python = python();
    let fake = FakeSigstore::start();
    let repo = Repo::init(python, &fake.trusted_root_path);
    repo.publish(&fake.trusted_root_path, &["--expired"]);
    let server = Served::start(&repo.dir());
    let (code, _, stderr) = repo.update(&server.url, true);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("timestamp metadata expired at"), "{stderr}");
    // Nothing was cached: the embedded root stays in use.
    let status = repo.status();
    assert_eq!(status["inUse"], "embedded", "{status:#}");
    assert!(status["cached"].is_null(), "{status:#}");
}

#[test]
fn a_bad_signature_is_refused() {
    let python = python();
    let fake = FakeSigstore::start();
    let (repo, server, _) = at_version_2(python, &fake);
    repo.publish(&fake.trusted_root_path, &["--bad-signature"]);
    let (code, _, stderr) = repo.update(&server.url, false);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("bad signature: timestamp metadata has 0 valid signature(s), 1 required"),
        "{stderr}"
    );
    assert_eq!(repo.status()["cached"]["targetsVersion"], 2);
}

#[test]
fn a_tampered_target_is_refused_and_the_cache_kept() {
    let python = python();
    let fake = FakeSigstore::start();
    let (repo, server, _) = at_version_2(python, &fake);
    // Version 3 lists another root, but the mirror serves different bytes under its name.
    let other = FakeSigstore::start();
    repo.publish(&other.trusted_root_path, &[]);
    let served = repo.dir().join("targets").join(format!(
        "{}.trusted_root.json",
        sha256_hex(&other.trusted_root_path)
    ));
    assert!(served.is_file(), "{}", served.display());
    let genuine = std::fs::read(&served).unwrap();
    // Same length, one key swapped for the first fake's (the attacker's) Rekor key: the
    // hash check refuses it.
    let mut tampered = std::fs::read_to_string(&served).unwrap();
    let json = |f: &FakeSigstore| serde_json::from_str::<Value>(&f.trusted_root()).unwrap();
    let theirs = &json(&fake)["tlogs"][0]["publicKey"]["rawBytes"];
    let ours = &json(&other)["tlogs"][0]["publicKey"]["rawBytes"];
    tampered = tampered.replace(ours.as_str().unwrap(), theirs.as_str().unwrap());
    assert_eq!(tampered.len(), genuine.len());
    assert_ne!(tampered.as_bytes(), genuine);
    std::fs::write(&served, &tampered).unwrap();
    let (code, _, stderr) = repo.update(&server.url, false);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("wrong length or hash: trusted_root.json: sha256 mismatch"),
        "{stderr}"
    );
    // Longer bytes (another whole root, the public-good one) are cut off at the pinned length.
    let attacker = crate::support::testdata("sigstore-extra/production/trusted_root.json");
    std::fs::copy(&attacker, &served).unwrap();
    let (code, _, stderr) = repo.update(&server.url, false);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("wrong length or hash") && stderr.contains("exceeds max"),
        "{stderr}"
    );
    // The version-2 root is still the one in use, and it still verifies offline.
    let status = repo.status();
    assert_eq!(status["inUse"], "cache");
    assert_eq!(status["cached"]["targetsVersion"], 2);
    assert_eq!(
        status["cached"]["sha256"],
        sha256_hex(&fake.trusted_root_path)
    );
}

#[test]
fn a_tampered_cache_is_refused_naming_it() {
    let python = python();
    let fake = FakeSigstore::start();
    let (repo, _server, _) = at_version_2(python, &fake);
    // Someone with write access to the cache swaps the cached root for another one.
    let cache_dir = repo.cache().join("oci-model/trusted-root");
    let repos = cache_dir.join("repos");
    let link = std::fs::read_dir(&repos)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_symlink())
        .expect("the repository's cache link");
    let cached = link.join("targets/trusted_root.json");
    assert!(cached.is_file(), "{}", cached.display());
    let other = FakeSigstore::start();
    std::fs::copy(&other.trusted_root_path, &cached).unwrap();
    for args in [
        &["trusted-root", "status"][..],
        &["trusted-root", "show"][..],
    ] {
        let (code, _, stderr) = output(repo.bin().args(args));
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "the cached trusted root in {} is not usable",
                cache_dir.display()
            )),
            "{stderr}"
        );
    }
    // --trusted-root does not read the cache.
    let (code, _, stderr) = output(
        repo.bin()
            .args(["trusted-root", "show", "--trusted-root"])
            .arg(&other.trusted_root_path),
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn without_an_update_commands_use_the_embedded_root_and_no_network() {
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    // Any HTTP request, direct or through a proxy, would reach this server.
    let proxy = Served::start(work.path());
    let bin = || {
        let mut cmd = harness::bin();
        cmd.env("XDG_CACHE_HOME", &cache);
        for var in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            cmd.env(var, &proxy.url);
        }
        cmd.env_remove("NO_PROXY").env_remove("no_proxy");
        cmd
    };
    // A model in a layout, signed with a key offline, then verified.
    let model = work.path().join("model");
    write_model(&model, &[("config.json", br#"{"hidden_size": 8}"#)]);
    let target = format!("oci:{}:v1", work.path().join("layout").display());
    let (key, public) = keypair(work.path(), "signer");
    bin()
        .arg("push")
        .arg(&model)
        .arg(&target)
        .assert()
        .success();
    bin()
        .args(["sign", &target, "--key"])
        .arg(&key)
        .assert()
        .success();
    let (code, stdout, stderr) = output(bin().args(["verify", &target, "--key"]).arg(&public));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("embedded Sigstore public-good production root"),
        "{stdout}"
    );
    let (code, stdout, stderr) = output(bin().args(["trusted-root", "show"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("Trusted root: embedded Sigstore public-good production root"),
        "{stdout}"
    );
    let (code, stdout, stderr) = output(bin().args(["-o", "json", "trusted-root", "status"]));
    assert_eq!(code, 0, "{stderr}");
    let status: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["inUse"], "embedded");
    assert!(status["cached"].is_null());
    assert_eq!(proxy.hits(), 0, "a command made a network request");
    // Nothing was written to the cache's trusted-root directory.
    assert!(!cache.join("oci-model/trusted-root").exists());
}
