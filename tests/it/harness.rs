//! Test harness: starts Debian's `docker-registry` program (the same program as the
//! `registry:2` image) on a free loopback port with its own storage directory, and stops it by
//! PID when the handle drops.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The registry program: `$OCI_MODEL_TEST_REGISTRY_BIN` or `docker-registry` on PATH.
pub fn registry_program() -> PathBuf {
    std::env::var_os("OCI_MODEL_TEST_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("docker-registry"))
}

/// A running registry. Dropping it kills the process and removes its storage.
pub struct Registry {
    /// `127.0.0.1:PORT`
    pub host: String,
    pub port: u16,
    /// Storage root (`rootdirectory` of the filesystem driver).
    pub storage: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with_config(|_| {})
    }

    /// A registry that requires HTTP Basic auth (htpasswd with bcrypt, from apache2-utils).
    pub fn start_with_htpasswd(user: &str, password: &str) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let htpasswd = dir.path().join("htpasswd");
        let out = Command::new("htpasswd")
            .args(["-Bbn", user, password])
            .output()
            .expect("run htpasswd (apt package apache2-utils)");
        assert!(out.status.success(), "htpasswd failed: {out:?}");
        std::fs::write(&htpasswd, &out.stdout).unwrap();
        let path = htpasswd.display().to_string();
        Self::start_in(dir, move |yaml| {
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: oci-model-test\n    path: {path}\n"
            ));
        })
    }

    /// Start with extra configuration appended to / edited in the generated YAML.
    pub fn start_with_config(edit: impl Fn(&mut String)) -> Registry {
        Self::start_in(tempfile::tempdir().expect("tempdir"), edit)
    }

    fn start_in(dir: tempfile::TempDir, edit: impl Fn(&mut String)) -> Registry {
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        // A port can be taken between probing and binding: try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut yaml = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: oci-model-test-secret\n",
                storage.display()
            );
            edit(&mut yaml);
            let config = dir.path().join(format!("config-{port}.yml"));
            std::fs::write(&config, &yaml).unwrap();
            let log =
                std::fs::File::create(dir.path().join(format!("registry-{port}.log"))).unwrap();
            let mut child = Command::new(registry_program())
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {:?} (apt package docker-registry; scripts/setup.sh installs it): {e}",
                        registry_program()
                    )
                });
            if wait_ready(port, &mut child) {
                return Registry {
                    host: format!("127.0.0.1:{port}"),
                    port,
                    storage,
                    child,
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "docker-registry did not start; logs in {}",
            dir.path().display()
        );
    }

    /// Kill the registry process (SIGKILL: no chance to finish anything) and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start the registry again on the same port, with the same configuration and storage
    /// (after [`Registry::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        let config = self._dir.path().join(format!("config-{}.yml", self.port));
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self._dir.path().join(format!("registry-{}.log", self.port)))
            .unwrap();
        self.child = Command::new(registry_program())
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("restart docker-registry");
        assert!(
            wait_ready(self.port, &mut self.child),
            "docker-registry did not start again on port {}",
            self.port
        );
    }

    /// Path of a blob's data file in the registry's storage.
    pub fn blob_data_path(&self, hex: &str) -> PathBuf {
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }
}

fn wait_ready(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The oci-model binary, with a private HOME/DOCKER_CONFIG so tests never touch the user's.
pub fn bin() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("oci-model").expect("binary built");
    let home = test_home();
    cmd.env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env_remove("OCI_MODEL_PASSWORD");
    // No ambient identity token (a CI runner's would make keyless tests sign for real).
    for v in [
        "SIGSTORE_ID_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    ] {
        cmd.env_remove(v);
    }
    cmd
}

fn test_home() -> &'static Path {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

/// A repository name unique within this test run.
pub fn repo(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "test/{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Project root (for `testdata/`).
pub fn project_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An interop peer in the project's venv (`.venv/bin/NAME`: `model_signing`, `sigstore`,
/// `modelpack`, `python`). A missing one fails the test, never skips it, with or without `CI`:
/// a test that passes without its peer would claim an interoperability nobody checked.
pub fn venv_tool(name: &str) -> PathBuf {
    let path = project_root().join(".venv/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/venv.sh (the test command scripts/test.sh does) to install \
         the interop peers",
        path.display()
    );
    path
}

/// The venv's `python`, checked to import `module` (e.g. `tuf.api.metadata`, `jsonschema`);
/// like [`venv_tool`], a missing interpreter or module fails the test.
pub fn venv_python_with(module: &str) -> PathBuf {
    let python = venv_tool("python");
    let out = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    assert!(
        out.status.success(),
        "{} cannot import {module}: run scripts/venv.sh (the test command scripts/test.sh does) \
         to install the interop peers\n{}",
        python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// Deterministic pseudo-random bytes (xorshift), cheap and incompressible enough for tests.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
