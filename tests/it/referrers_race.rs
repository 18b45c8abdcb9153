//! No referrer is ever lost (issue 11, item 13): on a registry without the referrers API and
//! without conditional writes (`docker-registry` 2.8 ignores `If-Match`), an index writer whose
//! PUT of the fallback tag arrives late must not erase a concurrent writer's entry for good.
//! Every referrer carries its own tag (`sha256-<subject hex>.<referrer hex prefix>`); readers and
//! index writers merge those tags in.

use crate::harness;
use crate::registry::{push_subject, referrer_of, store, Hook, Proxy, DELAY_MS};
use bytes::Bytes;
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use oci_model::store::referrers::referrer_tag;
use oci_model::store::{Descriptor, ImageIndex, Store};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Is `path` a manifest PUT of a fallback index tag (`…/manifests/sha256-<64 hex>`, not a
/// referrer's own tag)?
fn is_index_tag(path: &str) -> bool {
    path.rsplit_once("/manifests/sha256-")
        .is_some_and(|(_, hex)| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A hook that holds back the next index-tag PUT by `armed` ms (then disarms), counting the
/// index-tag PUTs it saw.
fn delay_next_index_put(armed: Arc<AtomicU64>, seen: Arc<AtomicUsize>) -> Hook {
    Box::new(move |m, p, _| {
        if *m != reqwest::Method::PUT || !is_index_tag(p) {
            return None;
        }
        seen.fetch_add(1, Ordering::SeqCst);
        match armed.swap(0, Ordering::SeqCst) {
            0 => None,
            ms => Some(
                axum::response::Response::builder()
                    .header(DELAY_MS, ms.to_string())
                    .body(axum::body::Body::empty())
                    .unwrap(),
            ),
        }
    })
}

async fn index_digests(s: &dyn Store, subject: &Descriptor) -> Vec<Digest> {
    let raw = s
        .fetch_manifest(&subject.digest.fallback_tag())
        .await
        .unwrap();
    let index: ImageIndex = serde_json::from_slice(&raw.bytes).unwrap();
    let mut d: Vec<_> = index.manifests.into_iter().map(|m| m.digest).collect();
    d.sort();
    d
}

async fn found_digests(s: &dyn Store, subject: &Descriptor) -> Vec<Digest> {
    let mut d: Vec<_> = oci_model::sigstore_ops::find_bundles(s, subject)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.referrer.digest)
        .collect();
    d.sort();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delayed_index_writer_loses_no_referrer() {
    let reg = harness::Registry::start();
    let armed = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(AtomicUsize::new(0));
    let proxy = Proxy::start(&reg.host, delay_next_index_put(armed.clone(), seen.clone())).await;
    let repo = harness::repo("race");
    // Two clients (like two processes): the slow one's index writes go through the proxy.
    let slow = Arc::new(store(&proxy.host, &repo));
    let fast = store(&reg.host, &repo);
    for round in 0..20u64 {
        let delay = [100, 500, 1500, 3000][round as usize % 4];
        let subject = push_subject(&fast, &format!("r{round}")).await;
        let a = referrer_of(&fast, &subject, mt::SIGSTORE_BUNDLE_V03, 1).await;
        let b = referrer_of(&fast, &subject, mt::SIGSTORE_BUNDLE_V03, 2).await;
        let mut expected = vec![Digest::of(&a), Digest::of(&b)];
        expected.sort();
        // The slow writer reads the index, then its PUT is held back; meanwhile the fast one
        // reads, writes and re-checks.
        let before = seen.load(Ordering::SeqCst);
        armed.store(delay, Ordering::SeqCst);
        let slow_write = {
            let (slow, subject) = (slow.clone(), subject.clone());
            tokio::spawn(async move { slow.push_referrer(a, &subject).await })
        };
        let t0 = Instant::now();
        while seen.load(Ordering::SeqCst) == before {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "round {round}: no index PUT"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        fast.push_referrer(b.clone(), &subject).await.unwrap();
        slow_write.await.unwrap().unwrap();
        assert_eq!(
            armed.load(Ordering::SeqCst),
            0,
            "round {round}: nothing was delayed"
        );
        // Found through the store and through find_bundles …
        let mut listed: Vec<_> = fast
            .referrers(&subject, None)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.digest)
            .collect();
        listed.sort();
        assert_eq!(listed, expected, "round {round} (delay {delay} ms)");
        assert_eq!(found_digests(&fast, &subject).await, expected);
        // … and the index itself (all a cosign-style reader reads) lists both once the last
        // writer finished.
        assert_eq!(
            index_digests(&fast, &subject).await,
            expected,
            "round {round} (delay {delay} ms): the fallback index lost an entry"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_index_is_read_through_referrer_tags_and_repaired_by_the_next_writer() {
    let reg = harness::Registry::start();
    let s = store(&reg.host, &harness::repo("stale"));
    let subject = push_subject(&s, "v1").await;
    let a = referrer_of(&s, &subject, mt::SIGSTORE_BUNDLE_V03, 1).await;
    let b = referrer_of(&s, &subject, "application/vnd.example.other", 2).await;
    let c = referrer_of(&s, &subject, mt::SIGSTORE_BUNDLE_V03, 3).await;
    s.push_referrer(a.clone(), &subject).await.unwrap();
    let tag = subject.digest.fallback_tag();
    let stale = s.fetch_manifest(&tag).await.unwrap().bytes;
    s.push_referrer(b.clone(), &subject).await.unwrap();
    // Each referrer has its own tag.
    let tags = s.list_tags().await.unwrap();
    for bytes in [&a, &b] {
        assert!(
            tags.contains(&referrer_tag(&subject.digest, &Digest::of(bytes))),
            "{tags:?}"
        );
    }
    // A write that lands after its writer is gone (say, a request that was retried but
    // arrived after all): the index lists only `a`.
    s.push_manifest(Bytes::clone(&stale), mt::OCI_INDEX, Some(&tag))
        .await
        .unwrap();
    assert_eq!(index_digests(&s, &subject).await, vec![Digest::of(&a)]);
    // Readers still see both, with their types and annotations …
    let all = s.referrers(&subject, None).await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    let other = s
        .referrers(&subject, Some("application/vnd.example.other"))
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].digest, Digest::of(&b));
    assert_eq!(other[0].annotation("test.n"), Some("2"));
    // … and the next writer (here: attaching `a` again, which has nothing of its own to add)
    // repairs the index.
    s.push_referrer(a.clone(), &subject).await.unwrap();
    let mut both = vec![Digest::of(&a), Digest::of(&b)];
    both.sort();
    assert_eq!(index_digests(&s, &subject).await, both);
    // So does a writer with a new referrer, after another stale write.
    s.push_manifest(stale, mt::OCI_INDEX, Some(&tag))
        .await
        .unwrap();
    s.push_referrer(c.clone(), &subject).await.unwrap();
    let mut all3 = vec![Digest::of(&a), Digest::of(&b), Digest::of(&c)];
    all3.sort();
    assert_eq!(index_digests(&s, &subject).await, all3);
    assert_eq!(found_digests(&s, &subject).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_will_not_list_tags_leaves_the_index_to_go_by() {
    let reg = harness::Registry::start();
    let refused = Arc::new(AtomicUsize::new(0));
    let counted = refused.clone();
    let forbid: Hook = Box::new(move |m, p, _| {
        (*m == reqwest::Method::GET && p.contains("/tags/list")).then(|| {
            counted.fetch_add(1, Ordering::SeqCst);
            axum::response::Response::builder()
                .status(403)
                .body(axum::body::Body::from(
                    "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"no listing\"}]}",
                ))
                .unwrap()
        })
    });
    let proxy = Proxy::start(&reg.host, forbid).await;
    let repo = harness::repo("nolist");
    let s = store(&proxy.host, &repo);
    let subject = push_subject(&s, "v1").await;
    let mut expected = Vec::new();
    for n in 0..2 {
        let bytes = referrer_of(&s, &subject, mt::SIGSTORE_BUNDLE_V03, n).await;
        expected.push(Digest::of(&bytes));
        s.push_referrer(bytes, &subject).await.unwrap();
    }
    expected.sort();
    assert_eq!(found_digests(&s, &subject).await, expected);
    assert_eq!(index_digests(&s, &subject).await, expected);
    assert!(
        refused.load(Ordering::SeqCst) >= 3,
        "the tag list was never asked for"
    );
}
