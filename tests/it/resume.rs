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

/// Size of the large file of the test model.
const BIG: usize = 6 << 20;

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
