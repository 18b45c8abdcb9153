//! Interrupted work leaves nothing behind but what the next run resumes: SIGINT/SIGTERM sent to
//! the real binary in the middle of a pull (served by a registry that sends part of a blob and
//! then waits) keeps only its downloads (`.oci-model-resume`), or of a push to an OCI layout; a
//! SIGKILLed pull's leftovers are removed by the next pull and never pushed.

use crate::support;
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How one blob is served.
#[derive(Clone)]
pub enum Serve {
    /// All of it, at once.
    Whole,
    /// The first `n` bytes, then nothing (the connection stays open).
    StallAfter(usize),
    /// Nothing until the flag is set, then all of it.
    WaitFor(Arc<AtomicBool>),
}

/// A tiny registry (`/v2/m`, tag `v1`) serving one model manifest whose layers are `files`.
/// Blob requests are answered as their [`Serve`] says; the digests of the blobs requested are
/// recorded.
pub struct SlowRegistry {
    pub addr: String,
    pub requested: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl SlowRegistry {
    /// `files`: path, content, declared size (None: the content's length), how it is served.
    pub fn start(files: Vec<(&str, Vec<u8>, Option<u64>, Serve)>) -> SlowRegistry {
        let mut layers = Vec::new();
        let mut blobs = std::collections::HashMap::new();
        for (path, content, size, serve) in files {
            let digest = Digest::of(&content);
            layers.push(serde_json::json!({
                "mediaType": mt::MODEL_WEIGHT,
                "digest": digest.as_str(),
                "size": size.unwrap_or(content.len() as u64),
                "annotations": { mt::ANNOTATION_FILEPATH: path },
            }));
            blobs.insert(digest.to_string(), (content, serve));
        }
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": mt::OCI_MANIFEST,
            "artifactType": mt::MODEL_ARTIFACT,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                "size": 2,
            },
            "layers": layers,
        }))
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let requested = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new((manifest, blobs));
        let (requested2, stop2) = (requested.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (shared, requested, stop) = (shared.clone(), requested2.clone(), stop2.clone());
                std::thread::spawn(move || {
                    let _ = serve_connection(conn, &shared.0, &shared.1, &requested, &stop);
                });
            }
        });
        SlowRegistry {
            addr,
            requested,
            stop,
        }
    }

    pub fn target(&self) -> String {
        format!("{}/m:v1", self.addr)
    }
}

impl Drop for SlowRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

type Blobs = std::collections::HashMap<String, (Vec<u8>, Serve)>;

fn serve_connection(
    conn: TcpStream,
    manifest: &[u8],
    blobs: &Blobs,
    requested: &Mutex<Vec<String>>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let head = |status: &str, ctype: &str, len: usize, extra: &str| {
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len}\r\n{extra}\r\n"
            )
        };
        let send_body = method != "HEAD";
        if path == "/v2/" {
            out.write_all(head("200 OK", "application/json", 2, "").as_bytes())?;
            if send_body {
                out.write_all(b"{}")?;
            }
        } else if path.starts_with("/v2/m/manifests/") {
            let extra = format!(
                "docker-content-digest: {}\r\n",
                Digest::of(manifest).as_str()
            );
            out.write_all(head("200 OK", mt::OCI_MANIFEST, manifest.len(), &extra).as_bytes())?;
            if send_body {
                out.write_all(manifest)?;
            }
        } else if let Some((content, serve)) =
            path.strip_prefix("/v2/m/blobs/").and_then(|d| blobs.get(d))
        {
            requested.lock().unwrap().push(path.clone());
            let h = head("200 OK", "application/octet-stream", content.len(), "");
            match serve {
                Serve::Whole => {
                    out.write_all(h.as_bytes())?;
                    if send_body {
                        out.write_all(content)?;
                    }
                }
                Serve::StallAfter(n) => {
                    out.write_all(h.as_bytes())?;
                    out.write_all(&content[..*n])?;
                    out.flush()?;
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    return Ok(());
                }
                Serve::WaitFor(flag) => {
                    while !flag.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    out.write_all(h.as_bytes())?;
                    if send_body {
                        out.write_all(content)?;
                    }
                }
            }
        } else {
            let body = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]}"#;
            out.write_all(head("404 Not Found", "application/json", body.len(), "").as_bytes())?;
            if send_body {
                out.write_all(body)?;
            }
        }
        out.flush()?;
    }
}

/// The binary, spawned (not run to completion), with a private HOME.
pub fn spawn(args: &[&str]) -> std::process::Child {
    let home = tempfile::tempdir().unwrap().keep();
    std::process::Command::new(env!("CARGO_BIN_EXE_oci-model"))
        .args(args)
        .env("HOME", &home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn oci-model")
}

/// Wait until `cond` holds (10 s at most).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Send `signal` and wait for the process: (exit code, stderr).
fn interrupt(child: std::process::Child, signal: i32) -> (Option<i32>, String) {
    let (code, _, stderr) = interrupt_output(child, signal);
    (code, stderr)
}

/// Send `signal` and wait for the process: (exit code, stdout, stderr).
fn interrupt_output(mut child: std::process::Child, signal: i32) -> (Option<i32>, String, String) {
    // SAFETY: kill(2) on the pid of a child we spawned and have not waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let (mut out, mut err) = (String::new(), String::new());
            let stdout = child.stdout.take().unwrap();
            std::io::BufReader::new(stdout)
                .read_to_string(&mut out)
                .unwrap();
            let stderr = child.stderr.take().unwrap();
            std::io::BufReader::new(stderr)
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), out, err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running 15 s after the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Our temporary names anywhere below `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            let n = e.file_name().to_string_lossy();
            n.starts_with(".oci-model-") || n.starts_with(".tmp-") || n == "index.json.lock"
        })
        .map(|e| e.into_path())
        .collect()
}

/// A model of a small file and a large one the registry stops sending after 256 KiB.
fn stalling_model() -> SlowRegistry {
    SlowRegistry::start(vec![
        ("a.bin", b"the new a".to_vec(), None, Serve::Whole),
        (
            "big/weights.bin",
            crate::harness::pseudo_random(4 << 20, 7),
            None,
            Serve::StallAfter(256 << 10),
        ),
    ])
}

/// A temporary file of the pull (in its staging directory) holds the stalled download's first
/// bytes.
pub fn partial_written(dir: &Path, size: u64) -> bool {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .any(|e| {
            e.path().to_string_lossy().contains("/.oci-model-")
                && e.file_type().is_file()
                && e.metadata().is_ok_and(|m| m.len() >= size)
        })
}

#[test]
fn sigint_or_sigterm_mid_pull_leaves_the_directory_as_it_was_but_the_downloads() {
    for (signal, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let registry = stalling_model();
        // Over the user's own files, with --overwrite; and into a directory it creates.
        let parent = tempfile::tempdir().unwrap();
        let mine = parent.path().join("mine");
        support::write(&mine, "a.bin", b"my a");
        support::write(&mine, "notes.txt", b"my notes");
        let before = support::tree(parent.path());
        for (dir, extra) in [
            (&mine, "--overwrite"),
            (&parent.path().join("new/out"), "-ojson"),
        ] {
            let child = spawn(&[
                "pull",
                "--plain-http",
                &registry.target(),
                dir.to_str().unwrap(),
                extra,
            ]);
            // In the target itself (the other target keeps the first round's downloads).
            wait_until("the partial download", || partial_written(dir, 256 << 10));
            let (status, stdout, stderr) = interrupt_output(child, signal);
            assert_eq!(status, Some(code), "{stderr}");
            assert!(stderr.contains("interrupted by SIG"), "{stderr}");
            if extra == "-ojson" {
                // Still exactly one JSON document on stdout.
                let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
                assert_eq!(doc["ok"], false, "{stdout}");
                assert_eq!(doc["exitCode"], code, "{stdout}");
            }
            // As it was, but for the downloads kept for the next pull to resume.
            let mut after = support::tree(parent.path());
            let kept: Vec<String> = after
                .keys()
                .filter(|p| p.contains("/.oci-model-resume/"))
                .cloned()
                .collect();
            let rel = dir.strip_prefix(parent.path()).unwrap().to_str().unwrap();
            let here = kept.iter().filter(|p| p.starts_with(rel)).count();
            assert_eq!(here, 2, "{kept:?}");
            assert!(kept.iter().all(|p| p.ends_with(".part")), "{kept:?}");
            after.retain(|p, _| !kept.contains(p));
            assert_eq!(after, before, "{stderr}");
            let temp: Vec<PathBuf> = temp_files(parent.path())
                .into_iter()
                .filter(|p| !p.to_string_lossy().contains("/.oci-model-resume"))
                .collect();
            assert!(temp.is_empty(), "{temp:?}");
            if extra == "-ojson" {
                assert_eq!(support::entries(dir).len(), 3, "only the resume directory");
            }
        }
    }
}

#[test]
fn a_killed_pull_is_cleaned_by_the_next_and_never_pushed() {
    let registry = stalling_model();
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn(&[
        "pull",
        "--plain-http",
        &registry.target(),
        dir.path().to_str().unwrap(),
    ]);
    wait_until("the partial download", || {
        partial_written(dir.path(), 256 << 10)
    });
    child.kill().unwrap(); // SIGKILL: nothing can clean up
    child.wait().unwrap();
    assert!(!temp_files(dir.path()).is_empty());
    // A push of that directory does not take the staging directory for model files.
    support::write(dir.path(), "model.bin", b"weights");
    let layout = tempfile::tempdir().unwrap();
    let out = support::run_json(&[
        "push",
        dir.path().to_str().unwrap(),
        &format!("oci:{}:v1", layout.path().display()),
    ]);
    let pushed: Vec<&str> = out["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(pushed, ["model.bin"], "{out}");
    // The next pull removes it (and pulls).
    let whole = SlowRegistry::start(vec![("a.bin", b"the new a".to_vec(), None, Serve::Whole)]);
    let (code, _, stderr) = support::run(&[
        "pull",
        "--plain-http",
        &whole.target(),
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        temp_files(dir.path()).is_empty(),
        "{:?}",
        temp_files(dir.path())
    );
    let mut names = support::entries(dir.path());
    names.sort();
    assert_eq!(names, ["a.bin", "model.bin"]);
}

#[test]
fn sigterm_mid_push_to_a_layout_leaves_no_temporary_file() {
    let src = tempfile::tempdir().unwrap();
    // Large enough that the copy into the layout takes a while.
    let big = std::fs::File::create(src.path().join("weights.bin")).unwrap();
    big.set_len(1 << 30).unwrap();
    drop(big);
    let layout = tempfile::tempdir().unwrap();
    let target = format!("oci:{}:v1", layout.path().display());
    for (signal, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let child = spawn(&["push", src.path().to_str().unwrap(), &target]);
        wait_until("the blob being written", || {
            temp_files(layout.path())
                .iter()
                .any(|p| p.metadata().is_ok_and(|m| m.len() > 0))
        });
        let (status, stderr) = interrupt(child, signal);
        assert_eq!(status, Some(code), "{stderr}");
        assert!(
            temp_files(layout.path()).is_empty(),
            "{:?}",
            temp_files(layout.path())
        );
    }
    // A stale temporary file (a SIGKILLed run's) goes with the next write; `copy` and `push`
    // leave no lock file.
    support::write(layout.path(), "blobs/.tmp-AbCdEf", b"half a blob");
    support::write(layout.path(), "index.json.lock", b"");
    let small = tempfile::tempdir().unwrap();
    support::write(small.path(), "w.bin", b"w");
    support::run_json(&["push", small.path().to_str().unwrap(), &target]);
    let copy = tempfile::tempdir().unwrap();
    support::run_json(&[
        "copy",
        &target,
        &format!("oci:{}:v1", copy.path().display()),
    ]);
    assert!(
        temp_files(layout.path()).is_empty(),
        "{:?}",
        temp_files(layout.path())
    );
    assert!(
        temp_files(copy.path()).is_empty(),
        "{:?}",
        temp_files(copy.path())
    );
}
