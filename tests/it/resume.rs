//! Interrupted transfers resume (issue 11 item 14), against the real `docker-registry` behind a
//! proxy that counts the body bytes it passes on (and can slow them down): a pull cut by a
//! killed registry or a SIGKILLed client fetches only the missing bytes on the next run, and
//! the result is byte-identical; a kept part that was tampered with, a registry that answers a
//! range with the wrong `Content-Range`, or with the whole blob, never delivers wrong bytes.

use crate::harness::{self, Registry};
use crate::registry::Proxy;
use crate::signals::{spawn, wait_until};
use crate::support;
use oci_model::digest::Digest;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Size of the large file of the test model: more than the loopback socket buffers hold, so
/// that a registry killed mid-download cannot have sent the rest already.
const BIG: usize = 24 << 20;

/// A model of one large file and a small one, pushed to `reg`: (source dir, repository,
/// digest and content of the large file).
fn pushed_model(reg: &Registry, seed: u64) -> (tempfile::TempDir, String, Digest, Vec<u8>) {
    let src = tempfile::tempdir().unwrap();
    let big = harness::pseudo_random(BIG, seed);
    support::write_model(
        src.path(),
        &[("weights.bin", &big), ("config.json", br#"{"a":1}"#)],
    );
    let repo = harness::repo("resume");
    support::push(src.path(), &format!("{}/{repo}:v1", reg.host));
    (src, repo, Digest::of(&big), big)
}

/// Where a pull into `dest` keeps the download of `digest`.
fn part_of(dest: &Path, digest: &Digest) -> PathBuf {
    dest.join(".oci-model-resume")
        .join(format!("{}.part", digest.as_str().replace(':', "-")))
}

fn len_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn pull(target: &str, dest: &Path) -> (i32, String, String) {
    support::run(&["pull", target, dest.to_str().unwrap()])
}

/// Pull again through an unthrottled `proxy` and check that only `size - kept` bytes of the
/// large blob came, and that the files are those pushed.
fn rerun_fetches_only_the_rest(proxy: &Proxy, repo: &str, src: &Path, dest: &Path, d: &Digest) {
    let kept = len_of(&part_of(dest, d));
    assert!(kept > 0 && kept < BIG as u64, "kept {kept} of {BIG} bytes");
    proxy.throttle(None);
    proxy.reset_bytes();
    let (code, _, stderr) = pull(&format!("{}/{repo}:v1", proxy.host), dest);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        proxy.bytes(d.as_str()).1,
        BIG as u64 - kept,
        "the rerun must fetch only the bytes the first pull did not keep ({kept})"
    );
    assert_eq!(support::tree(dest), support::tree(src));
    assert!(!dest.join(".oci-model-resume").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pull_cut_by_a_killed_registry_resumes_with_only_the_missing_bytes() {
    let mut reg = Registry::start();
    let (src, repo, digest, _) = pushed_model(&reg, 11);
    let proxy = Proxy::start(&reg.host, Box::new(|_, _, _| None)).await;
    proxy.throttle(Some(Duration::from_millis(20)));
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    let target = format!("{}/{repo}:v1", proxy.host);
    let child = spawn(&["pull", "--retries", "2", &target, dest.to_str().unwrap()]);
    let part = part_of(&dest, &digest);
    wait_until("a megabyte downloaded", || len_of(&part) >= 1 << 20);
    reg.kill();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    // The failed pull placed nothing; it kept its downloads, and only them.
    let kept: Vec<String> = support::entries(&dest)
        .into_iter()
        .filter(|e| !e.starts_with(".oci-model-resume"))
        .collect();
    assert!(kept.is_empty(), "{kept:?}");
    reg.restart();
    rerun_fetches_only_the_rest(&proxy, &repo, src.path(), &dest, &digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkilled_pull_resumes_with_only_the_missing_bytes() {
    let reg = Registry::start();
    let (src, repo, digest, _) = pushed_model(&reg, 12);
    let proxy = Proxy::start(&reg.host, Box::new(|_, _, _| None)).await;
    proxy.throttle(Some(Duration::from_millis(20)));
    let dest = tempfile::tempdir().unwrap();
    let target = format!("{}/{repo}:v1", proxy.host);
    let mut child = spawn(&["pull", &target, dest.path().to_str().unwrap()]);
    let part = part_of(dest.path(), &digest);
    wait_until("a megabyte downloaded", || len_of(&part) >= 1 << 20);
    child.kill().unwrap(); // SIGKILL: nothing can clean up
    child.wait().unwrap();
    rerun_fetches_only_the_rest(&proxy, &repo, src.path(), dest.path(), &digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tampered_kept_part_is_noticed_by_the_digest_and_fetched_again() {
    let reg = Registry::start();
    let (src, repo, digest, big) = pushed_model(&reg, 13);
    let proxy = Proxy::start(&reg.host, Box::new(|_, _, _| None)).await;
    let dest = tempfile::tempdir().unwrap();
    // The first megabyte as a pull would have kept it, but one byte changed.
    let mut tampered = big[..1 << 20].to_vec();
    tampered[1000] ^= 1;
    std::fs::create_dir_all(part_of(dest.path(), &digest).parent().unwrap()).unwrap();
    std::fs::write(part_of(dest.path(), &digest), &tampered).unwrap();
    let (code, _, stderr) = pull(&format!("{}/{repo}:v1", proxy.host), dest.path());
    assert_eq!(code, 0, "{stderr}");
    // The rest, then (the whole did not match its digest) all of it again.
    assert_eq!(
        proxy.bytes(digest.as_str()).1,
        (BIG - (1 << 20) + BIG) as u64
    );
    assert_eq!(support::tree(dest.path()), support::tree(src.path()));
}

/// A registry (here the proxy) answering every range request with `answer`.
fn answering_ranges(
    answer: impl Fn() -> axum::response::Response + Send + Sync + 'static,
    ranges: Arc<AtomicUsize>,
) -> crate::registry::Hook {
    Box::new(move |m, _, headers| {
        if *m == reqwest::Method::GET && headers.contains_key("range") {
            ranges.fetch_add(1, Ordering::SeqCst);
            Some(answer())
        } else {
            None
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_range_answered_with_the_wrong_content_range_is_refused() {
    let reg = Registry::start();
    let (src, repo, digest, big) = pushed_model(&reg, 14);
    let ranges = Arc::new(AtomicUsize::new(0));
    let whole = big.clone();
    // Bytes from the start, claimed to be the rest.
    let hostile = Proxy::start(
        &reg.host,
        answering_ranges(
            move || {
                axum::response::Response::builder()
                    .status(206)
                    .header("Content-Range", format!("bytes 0-{}/{BIG}", BIG - 1))
                    .body(axum::body::Body::from(whole.clone()))
                    .unwrap()
            },
            ranges.clone(),
        ),
    )
    .await;
    let parent = tempfile::tempdir().unwrap();
    let dest = parent.path().join("out");
    std::fs::create_dir_all(part_of(&dest, &digest).parent().unwrap()).unwrap();
    std::fs::write(part_of(&dest, &digest), &big[..1 << 20]).unwrap();
    let (code, _, stderr) = pull(&format!("{}/{repo}:v1", hostile.host), &dest);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(ranges.load(Ordering::SeqCst), 1);
    assert!(stderr.contains("Content-Range"), "{stderr}");
    assert!(stderr.contains(&format!("bytes {}-", 1 << 20)), "{stderr}");
    // Nothing delivered, and nothing kept: the next pull starts from the first byte.
    assert!(
        support::entries(&dest).is_empty(),
        "{:?}",
        support::entries(&dest)
    );
    let plain = Proxy::start(&reg.host, Box::new(|_, _, _| None)).await;
    let (code, _, stderr) = pull(&format!("{}/{repo}:v1", plain.host), &dest);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(plain.bytes(digest.as_str()).1, BIG as u64);
    assert_eq!(support::tree(&dest), support::tree(src.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_that_ignores_the_range_restarts_the_blob_safely() {
    let reg = Registry::start();
    let (src, repo, digest, big) = pushed_model(&reg, 15);
    let ranges = Arc::new(AtomicUsize::new(0));
    let whole = big.clone();
    let proxy = Proxy::start(
        &reg.host,
        answering_ranges(
            move || {
                axum::response::Response::builder()
                    .status(200)
                    .header("Content-Length", BIG)
                    .body(axum::body::Body::from(whole.clone()))
                    .unwrap()
            },
            ranges.clone(),
        ),
    )
    .await;
    let dest = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(part_of(dest.path(), &digest).parent().unwrap()).unwrap();
    // A kept prefix that is right: the whole blob replaces it, not follows it.
    std::fs::write(part_of(dest.path(), &digest), &big[..1 << 20]).unwrap();
    let (code, _, stderr) = pull(&format!("{}/{repo}:v1", proxy.host), dest.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(ranges.load(Ordering::SeqCst), 1);
    assert_eq!(support::tree(dest.path()), support::tree(src.path()));
}

// ---------------------------------------------------------------------------------------------
// Push: an interrupted upload continues its session when the registry still has it.

use oci_model::reference::{RegistryRef, Target};
use oci_model::store::registry::RegistryStore;
use oci_model::store::{FileSource, Store, StoreOptions};

/// Chunk size of the pushes below.
const CHUNK: u64 = 1 << 20;
/// Size of the blob pushed: four and a half chunks.
const BLOB: usize = (9 << 20) / 2;

/// A store in `repo` at `host` sending 1 MiB chunks and remembering sessions in `sessions`.
fn pushing_store(host: &str, repo: &str, sessions: &Path) -> RegistryStore {
    let r = match Target::parse(&format!("{host}/{repo}")).unwrap() {
        Target::Registry(r) => r,
        other => panic!("{other:?}"),
    };
    let options = StoreOptions {
        upload_chunk: Some(CHUNK),
        upload_sessions: Some(sessions.to_path_buf()),
        max_attempts: 2,
        idle_timeout: Some(Duration::from_secs(2)),
        ..Default::default()
    };
    let _: &RegistryRef = &r;
    RegistryStore::new(&r, &options)
        .unwrap()
        .with_backoff_base(Duration::from_millis(10))
}

/// A hook that holds the `n`th chunk PATCH (one with a `Content-Range`), and only it,
/// forever: the registry never sees it. `held` counts the PATCHes held.
fn hold_chunk(n: usize, held: Arc<AtomicUsize>) -> crate::registry::Hook {
    let seen = AtomicUsize::new(0);
    Box::new(move |m, _, headers| {
        if *m == reqwest::Method::PATCH
            && headers.contains_key("content-range")
            && seen.fetch_add(1, Ordering::SeqCst) + 1 == n
        {
            held.fetch_add(1, Ordering::SeqCst);
            Some(
                axum::response::Response::builder()
                    .header(crate::registry::STALL_HEADERS, "1")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
        } else {
            None
        }
    })
}

/// A file of [`BLOB`] bytes: (dir holding it, its source, its digest).
fn blob_file(seed: u64) -> (tempfile::TempDir, FileSource, Digest) {
    let dir = tempfile::tempdir().unwrap();
    let content = harness::pseudo_random(BLOB, seed);
    let path = dir.path().join("weights.bin");
    std::fs::write(&path, &content).unwrap();
    let source = FileSource {
        path,
        size: BLOB as u64,
        digest: None,
    };
    (dir, source, Digest::of(&content))
}

/// Push `source` through `proxy` until it has sent its third PATCH (held by the proxy), then
/// stop the push as a kill would (the future dropped: nothing more is sent or cleaned up).
async fn push_until_the_third_patch(
    proxy: &Proxy,
    repo: &str,
    sessions: &Path,
    source: &FileSource,
) {
    let store = pushing_store(&proxy.host, repo, sessions);
    let push = store.push_blob(source);
    tokio::pin!(push);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        tokio::select! {
            r = &mut push => panic!("the push ended: {:?}", r.map(|_| ())),
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        if proxy.count("PATCH", "/blobs/uploads/") >= 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no third PATCH");
    }
}

/// Push again (a new store, as the next run) and check that only the bytes after the two
/// chunks the registry took were sent, and that the blob is there, right.
async fn rerun_sends_only_the_rest(
    proxy: &Proxy,
    repo: &str,
    sessions: &Path,
    source: &FileSource,
    d: &Digest,
) {
    proxy.reset_bytes();
    let store = pushing_store(&proxy.host, repo, sessions);
    let (digest, size) = store.push_blob(source).await.unwrap();
    assert_eq!((&digest, size), (d, BLOB as u64));
    assert_eq!(
        proxy.bytes("/blobs/uploads/").0,
        BLOB as u64 - 2 * CHUNK,
        "only what the registry did not have"
    );
    assert!(store.blob_exists(d).await.unwrap());
    // Committed: the session is forgotten.
    assert_eq!(std::fs::read_dir(sessions).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_stopped_between_chunks_continues_its_session() {
    let reg = Registry::start();
    let repo = harness::repo("resume-push");
    let (_dir, source, digest) = blob_file(21);
    let sessions = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&reg.host, hold_chunk(3, Default::default())).await;
    push_until_the_third_patch(&proxy, &repo, sessions.path(), &source).await;
    rerun_sends_only_the_rest(&proxy, &repo, sessions.path(), &source, &digest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_cut_by_a_killed_registry_continues_its_session_after_the_restart() {
    let mut reg = Registry::start();
    let repo = harness::repo("resume-push");
    let (_dir, source, digest) = blob_file(22);
    let sessions = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&reg.host, hold_chunk(3, Default::default())).await;
    push_until_the_third_patch(&proxy, &repo, sessions.path(), &source).await;
    reg.kill();
    reg.restart();
    rerun_sends_only_the_rest(&proxy, &repo, sessions.path(), &source, &digest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_whose_session_the_registry_dropped_starts_again() {
    let mut reg = Registry::start();
    let repo = harness::repo("resume-push");
    let (_dir, source, digest) = blob_file(23);
    let sessions = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&reg.host, Box::new(|_, _, _| None)).await;
    // The registry is killed in the middle of the second chunk's body: distribution then holds
    // more than the session's state says, refuses the session, and the upload starts again.
    proxy.throttle(Some(Duration::from_millis(20)));
    let store = pushing_store(&proxy.host, &repo, sessions.path());
    let push = store.push_blob(&source);
    tokio::pin!(push);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while proxy.bytes("/blobs/uploads/").0 < CHUNK + CHUNK / 2 {
        tokio::select! {
            r = &mut push => panic!("the push ended: {:?}", r.map(|_| ())),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        assert!(tokio::time::Instant::now() < deadline, "no second chunk");
    }
    reg.kill();
    let err = push.await.unwrap_err();
    assert_eq!(err.kind(), oci_model::error::ErrorKind::Remote, "{err}");
    reg.restart();
    proxy.throttle(None);
    proxy.reset_bytes();
    let store = pushing_store(&proxy.host, &repo, sessions.path());
    let (d, _) = store.push_blob(&source).await.unwrap();
    assert_eq!(d, digest);
    let sent = proxy.bytes("/blobs/uploads/").0;
    // Started again (the session was refused), or continued after the first chunk if the
    // registry died before it took any of the second.
    assert!(
        sent == BLOB as u64 || sent == BLOB as u64 - CHUNK,
        "sent {sent} of {BLOB}"
    );
    assert!(store.blob_exists(&digest).await.unwrap());
}

/// The binary with `args` and the given HOME (its digest cache and upload sessions live there).
fn command_in(home: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_oci-model"));
    cmd.args(args)
        .env("HOME", home)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkilled_push_continues_its_upload_and_pushes_the_same_manifest() {
    let reg = Registry::start();
    let repo = harness::repo("resume-push-cli");
    // 150 MiB (sparse: cheap to read): three PATCHes of at most 64 MiB.
    let model = tempfile::tempdir().unwrap();
    let big = std::fs::File::create(model.path().join("weights.bin")).unwrap();
    big.set_len(150 << 20).unwrap();
    drop(big);
    support::write(model.path(), "config.json", br#"{"a":1}"#);
    let home = tempfile::tempdir().unwrap();
    let held = Arc::new(AtomicUsize::new(0));
    let proxy = Proxy::start(&reg.host, hold_chunk(3, held.clone())).await;
    let target = format!("{}/{repo}:v1", proxy.host);
    let dir = model.path().to_str().unwrap().to_string();
    let mut child = command_in(home.path(), &["push", &dir, &target])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while held.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "{:?}", proxy.log());
        assert!(child.try_wait().unwrap().is_none(), "the push ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    proxy.reset_bytes();
    let out = tokio::task::spawn_blocking({
        let home = home.path().to_path_buf();
        move || {
            command_in(&home, &["push", &dir, &target, "-o", "json"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pushed = support::json_of(&out);
    // Only the third chunk of the large file, and the small file, went again.
    let (sent, _) = proxy.bytes("/blobs/uploads/");
    let small = br#"{"a":1}"#.len() as u64;
    let config = sent.saturating_sub((22 << 20) + small);
    assert!(
        sent >= (22 << 20) + small && config < 4096,
        "sent {sent} bytes; expected the last 22 MiB, the small file and the config"
    );
    // The same manifest as a push that was never interrupted.
    let layout = tempfile::tempdir().unwrap();
    let reference = support::push(model.path(), &format!("oci:{}:v1", layout.path().display()));
    assert_eq!(pushed["digest"].as_str().unwrap(), reference);
    assert_eq!(
        std::fs::read_dir(home.path().join(".cache/oci-model/uploads"))
            .unwrap()
            .count(),
        0,
        "a finished push forgets its sessions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_status_that_makes_no_sense_restarts_the_blob() {
    type Lie = Option<(u16, Option<&'static str>)>;
    for lie in [(204, Some("0-999999999")), (204, None), (404, None)] {
        let reg = Registry::start();
        let repo = harness::repo("resume-push-hostile");
        let (_dir, source, digest) = blob_file(24);
        let sessions = tempfile::tempdir().unwrap();
        let hold = hold_chunk(3, Default::default());
        // Once set, the status of an upload session comes from a registry that lies or forgot.
        let lying: Arc<std::sync::Mutex<Lie>> = Default::default();
        let asked = Arc::new(AtomicUsize::new(0));
        let (lying2, asked2) = (lying.clone(), asked.clone());
        let proxy = Proxy::start(
            &reg.host,
            Box::new(move |m, p, h| {
                let lie = *lying2.lock().unwrap();
                match lie {
                    Some((status, range))
                        if *m == reqwest::Method::GET && p.contains("/blobs/uploads/") =>
                    {
                        asked2.fetch_add(1, Ordering::SeqCst);
                        let mut b = axum::response::Response::builder().status(status);
                        if let Some(r) = range {
                            b = b.header("Range", r);
                        }
                        Some(b.body(axum::body::Body::empty()).unwrap())
                    }
                    _ => hold(m, p, h),
                }
            }),
        )
        .await;
        push_until_the_third_patch(&proxy, &repo, sessions.path(), &source).await;
        *lying.lock().unwrap() = Some(lie);
        proxy.reset_bytes();
        let store = pushing_store(&proxy.host, &repo, sessions.path());
        let (d, _) = store.push_blob(&source).await.unwrap();
        assert_eq!(d, digest);
        assert_eq!(asked.load(Ordering::SeqCst), 1, "{lie:?}");
        assert!(store.blob_exists(&digest).await.unwrap());
        // Started again: the whole blob was sent.
        assert_eq!(proxy.bytes("/blobs/uploads/").0, BLOB as u64, "{lie:?}");
    }
}
