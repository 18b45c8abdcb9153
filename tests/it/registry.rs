//! The OCI distribution client against the real `docker-registry` 2.8.2 (and, for the
//! referrers API, an in-process `ferro-oci-server`): blobs, manifests, auth, retries,
//! referrers, login/logout.

use crate::harness;
use bytes::Bytes;
use futures::StreamExt;
use oci_model::digest::Digest;
use oci_model::media_types as mt;
use oci_model::reference::{RegistryRef, Target};
use oci_model::secret::Secret;
use oci_model::store::auth::Credentials;
use oci_model::store::registry::RegistryStore;
use oci_model::store::{
    fetch_blob_verified, BytesSource, Descriptor, FileSource, ImageManifest, Store, StoreError,
    StoreOptions,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;

fn reg_ref(host: &str, repo: &str) -> RegistryRef {
    match Target::parse(&format!("{host}/{repo}")).unwrap() {
        Target::Registry(r) => r,
        other => panic!("{other:?}"),
    }
}

fn store_with(host: &str, repo: &str, options: StoreOptions) -> RegistryStore {
    RegistryStore::new(&reg_ref(host, repo), &options)
        .unwrap()
        .with_backoff_base(Duration::from_millis(10))
}

pub(crate) fn store(host: &str, repo: &str) -> RegistryStore {
    store_with(host, repo, StoreOptions::default())
}

fn basic(user: &str, password: &str) -> StoreOptions {
    StoreOptions {
        credentials: Some(Credentials::Basic {
            username: user.into(),
            password: Secret::new(password),
        }),
        ..Default::default()
    }
}

async fn read_all(store: &dyn Store, d: &Descriptor) -> Result<Vec<u8>, StoreError> {
    let mut r = fetch_blob_verified(store, d, "test blob").await?;
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .await
        .map_err(oci_model::store::verified::unwrap_io_error)?;
    Ok(out)
}

/// Push `{}` and one layer, then a model-like manifest under `tag`; returns its descriptor.
pub(crate) async fn push_subject(store: &dyn Store, tag: &str) -> Descriptor {
    store
        .push_blob(&BytesSource(Bytes::from_static(b"{}")))
        .await
        .unwrap();
    let layer = Bytes::from(format!("weights for {tag}"));
    let (ld, ls) = store.push_blob(&BytesSource(layer)).await.unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: Some(mt::MODEL_ARTIFACT.into()),
        config: Descriptor::empty(),
        layers: vec![Descriptor::new(mt::MODEL_WEIGHT, ld, ls)],
        subject: None,
        annotations: None,
    };
    store
        .push_manifest(
            Bytes::from(manifest.to_bytes()),
            mt::OCI_MANIFEST,
            Some(tag),
        )
        .await
        .unwrap()
}

/// A referrer manifest (bundle-like) of `subject`; its layer is pushed too.
pub(crate) async fn referrer_of(
    store: &dyn Store,
    subject: &Descriptor,
    artifact_type: &str,
    n: usize,
) -> Bytes {
    let layer = Bytes::from(format!("bundle {n} of {}", subject.digest));
    let (ld, ls) = store.push_blob(&BytesSource(layer)).await.unwrap();
    let mut annotations = BTreeMap::new();
    annotations.insert("test.n".to_string(), n.to_string());
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(mt::OCI_MANIFEST.into()),
        artifact_type: Some(artifact_type.into()),
        config: Descriptor::empty(),
        layers: vec![Descriptor::new(mt::SIGSTORE_BUNDLE_V03, ld, ls)],
        subject: Some(subject.clone()),
        annotations: Some(annotations),
    };
    Bytes::from(manifest.to_bytes())
}

// ---------------------------------------------------------------------------------------------
// A loopback HTTP proxy in front of the registry: logs requests, can answer some itself
// (failures, oversized manifests) and forwards the rest.

pub(crate) type Hook = Box<
    dyn Fn(&reqwest::Method, &str, &reqwest::header::HeaderMap) -> Option<axum::response::Response>
        + Send
        + Sync,
>;

struct ProxyState {
    upstream: String,
    own: Mutex<String>,
    client: reqwest::Client,
    log: Mutex<Vec<(String, String)>>,
    /// `Content-Length` and `Transfer-Encoding` of each PATCH.
    patch_framing: Mutex<Vec<(Option<String>, Option<String>)>>,
    hook: Hook,
    /// Body bytes passed on, by request path (without the query): `(sent to the registry,
    /// sent back to the client)`.
    bytes: Mutex<std::collections::HashMap<String, (u64, u64)>>,
    /// A pause before each piece (at most [`PIECE`] bytes) of a body passed on, when set.
    throttle: Mutex<Option<Duration>>,
}

/// The largest piece of a body the proxy passes on at once.
const PIECE: usize = 64 << 10;

pub(crate) struct Proxy {
    pub(crate) host: String,
    state: Arc<ProxyState>,
}

impl Proxy {
    pub(crate) async fn start(upstream: &str, hook: Hook) -> Proxy {
        let state = Arc::new(ProxyState {
            upstream: upstream.to_string(),
            own: Mutex::new(String::new()),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            log: Mutex::new(Vec::new()),
            patch_framing: Mutex::new(Vec::new()),
            hook,
            bytes: Mutex::new(Default::default()),
            throttle: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        *state.own.lock().unwrap() = host.clone();
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Proxy { host, state }
    }

    /// Requests seen (method, path and query), in order.
    pub(crate) fn log(&self) -> Vec<(String, String)> {
        self.state.log.lock().unwrap().clone()
    }

    /// Pause before each piece of every body passed on from now (`None`: full speed).
    pub(crate) fn throttle(&self, pause: Option<Duration>) {
        *self.state.throttle.lock().unwrap() = pause;
    }

    /// Forget the bytes counted so far.
    pub(crate) fn reset_bytes(&self) {
        self.state.bytes.lock().unwrap().clear();
    }

    /// Body bytes passed on for requests whose path contains `path_contains`: (sent to the
    /// registry, sent back to the client).
    pub(crate) fn bytes(&self, path_contains: &str) -> (u64, u64) {
        self.state
            .bytes
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p.contains(path_contains))
            .fold((0, 0), |(u, d), (_, (a, b))| (u + a, d + b))
    }

    pub(crate) fn count(&self, method: &str, path_contains: &str) -> usize {
        self.log()
            .iter()
            .filter(|(m, p)| m == method && p.contains(path_contains))
            .count()
    }
}

async fn forward(
    axum::extract::State(st): axum::extract::State<Arc<ProxyState>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let method = req.method().clone();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    st.log
        .lock()
        .unwrap()
        .push((method.to_string(), pq.clone()));
    if method == reqwest::Method::PATCH {
        let h = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("").to_string())
        };
        st.patch_framing
            .lock()
            .unwrap()
            .push((h("content-length"), h("transfer-encoding")));
    }
    if let Some(resp) = (st.hook)(&method, &pq, req.headers()) {
        if resp.headers().contains_key(STALL_HEADERS) {
            // A registry that accepted the request and never answers.
            futures::future::pending::<()>().await;
        }
        match resp
            .headers()
            .get(DELAY_MS)
            .map(|v| v.to_str().unwrap().parse().unwrap())
        {
            // Forwarded late: a writer whose request is slow on the way.
            Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            None => return resp,
        }
    }
    let mut headers = req.headers().clone();
    for h in ["host", "connection", "transfer-encoding", "keep-alive"] {
        headers.remove(h);
    }
    let path = pq.split('?').next().unwrap_or("").to_string();
    let body = reqwest::Body::wrap_stream(metered(
        req.into_body().into_data_stream(),
        st.clone(),
        path.clone(),
        true,
    ));
    let sent = st
        .client
        .request(method, format!("http://{}{}", st.upstream, pq))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let own = st.own.lock().unwrap().clone();
    let mut out = axum::response::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        if matches!(
            k.as_str(),
            "connection" | "transfer-encoding" | "keep-alive"
        ) {
            continue;
        }
        if k == reqwest::header::LOCATION {
            let rewritten = v.to_str().unwrap_or("").replace(&st.upstream, &own);
            out = out.header(k, rewritten);
        } else {
            out = out.header(k, v);
        }
    }
    out.body(axum::body::Body::from_stream(metered(
        resp.bytes_stream(),
        st.clone(),
        path,
        false,
    )))
    .unwrap()
}

/// A body passed on in pieces of at most [`PIECE`] bytes, each counted for `path` (`up`: sent
/// to the registry) and, while the proxy is throttled, paused before.
fn metered<S, E>(
    body: S,
    st: Arc<ProxyState>,
    path: String,
    up: bool,
) -> impl futures::Stream<Item = Result<Bytes, E>> + Send + 'static
where
    S: futures::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Send + 'static,
{
    body.flat_map(|item| {
        let pieces: Vec<Result<Bytes, E>> = match item {
            Ok(b) => (0..b.len())
                .step_by(PIECE)
                .map(|i| Ok(b.slice(i..(i + PIECE).min(b.len()))))
                .collect(),
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(pieces)
    })
    .then(move |item| {
        let (st, path) = (st.clone(), path.clone());
        async move {
            if let Ok(b) = &item {
                let pause = *st.throttle.lock().unwrap();
                if let Some(pause) = pause {
                    tokio::time::sleep(pause).await;
                }
                let mut bytes = st.bytes.lock().unwrap();
                let entry = bytes.entry(path).or_default();
                if up {
                    entry.0 += b.len() as u64;
                } else {
                    entry.1 += b.len() as u64;
                }
            }
            item
        }
    })
}

/// A hook's response with this header is never sent: the request waits forever.
pub(crate) const STALL_HEADERS: &str = "x-test-stall-headers";
/// A hook's response with this header (milliseconds) is not sent either: the request is
/// forwarded to the registry after that delay.
pub(crate) const DELAY_MS: &str = "x-test-delay-ms";

/// A hook stalling the first `n` GETs that match: the answer never comes (`headers`; the
/// request body is never read either), or its body stops after a few bytes of the
/// `Content-Length` it announced.
fn stall_first(n: usize, path_contains: String, headers: bool) -> Hook {
    stall_first_of(n, reqwest::Method::GET, path_contains, headers)
}

fn stall_first_of(n: usize, method: reqwest::Method, path_contains: String, headers: bool) -> Hook {
    let left = AtomicUsize::new(n);
    Box::new(move |m, p, _| {
        if *m != method
            || !p.contains(&path_contains)
            || left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_err()
        {
            return None;
        }
        let b = axum::response::Response::builder().status(200);
        Some(if headers {
            b.header(STALL_HEADERS, "1")
                .body(axum::body::Body::empty())
                .unwrap()
        } else {
            let first = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(
                b"first bytes",
            ))]);
            b.header("Content-Length", "1000000")
                .body(axum::body::Body::from_stream(
                    first.chain(futures::stream::pending()),
                ))
                .unwrap()
        })
    })
}

/// A hook failing the first `n` requests that match with `status` (and `Retry-After: 0`).
fn fail_first(n: usize, method: &'static str, path_contains: &'static str, status: u16) -> Hook {
    let left = AtomicUsize::new(n);
    Box::new(move |m, p, _| {
        if m.as_str() == method
            && p.contains(path_contains)
            && left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok()
        {
            Some(
                axum::response::Response::builder()
                    .status(status)
                    .header("Retry-After", "0")
                    .body(axum::body::Body::from(
                        "{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"try later\"}]}",
                    ))
                    .unwrap(),
            )
        } else {
            None
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Blobs

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blob_push_and_fetch_round_trip_with_digest_check() {
    let reg = harness::Registry::start();
    let s = store(&reg.host, &harness::repo("blobs"));
    let data = harness::pseudo_random(3 * 1024 * 1024 + 17, 7);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, &data).unwrap();
    // Digest unknown: hashed while uploading.
    let source = FileSource {
        path: path.clone(),
        size: data.len() as u64,
        digest: None,
    };
    let (digest, size) = s.push_blob(&source).await.unwrap();
    assert_eq!(digest, Digest::of(&data));
    assert_eq!(size, data.len() as u64);
    assert!(s.blob_exists(&digest).await.unwrap());
    assert!(!s.blob_exists(&Digest::of(b"absent")).await.unwrap());
    let d = Descriptor::new(mt::MODEL_WEIGHT, digest.clone(), size);
    assert_eq!(read_all(&s, &d).await.unwrap(), data);

    // The empty blob.
    let (empty, n) = s.push_blob(&BytesSource(Bytes::new())).await.unwrap();
    assert_eq!((empty.clone(), n), (Digest::of(b""), 0));
    assert!(read_all(&s, &Descriptor::new("x", empty, 0))
        .await
        .unwrap()
        .is_empty());
    // Refused pushes, corrupted reads and missing blobs: see the store contract.
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn known_blob_is_not_uploaded_again_and_uploads_are_one_patch() {
    let reg = harness::Registry::start();
    let proxy = Proxy::start(&reg.host, Box::new(|_, _, _| None)).await;
    let s = store(&proxy.host, &harness::repo("skip"));
    let data = Bytes::from(harness::pseudo_random(1024 * 1024, 3));
    let (d1, _) = s.push_blob(&BytesSource(data.clone())).await.unwrap();
    assert_eq!(proxy.count("POST", "/blobs/uploads/"), 1);
    assert_eq!(
        proxy.count("PATCH", "/blobs/uploads/"),
        1,
        "{:?}",
        proxy.log()
    );
    assert_eq!(proxy.count("PUT", "digest=sha256:"), 1);
    // The PATCH declared its length (no chunked encoding).
    assert_eq!(
        proxy.state.patch_framing.lock().unwrap().clone(),
        vec![(Some(data.len().to_string()), None)]
    );
    // Second push with the known digest: one HEAD, nothing sent.
    let (d2, n) = s.push_blob(&BytesSource(data.clone())).await.unwrap();
    assert_eq!((d2, n), (d1.clone(), data.len() as u64));
    assert_eq!(
        proxy.count("POST", "/blobs/uploads/"),
        1,
        "{:?}",
        proxy.log()
    );
    assert_eq!(proxy.count("HEAD", &format!("/blobs/{d1}")), 2);
    assert!(s.blob_exists(&d1).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Manifests

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manifest_push_and_fetch_preserve_exact_bytes_and_digest() {
    let reg = harness::Registry::start();
    let s = store(&reg.host, &harness::repo("manifests"));
    s.push_blob(&BytesSource(Bytes::from_static(b"{}")))
        .await
        .unwrap();
    let (ld, ls) = s
        .push_blob(&BytesSource(Bytes::from_static(b"layer")))
        .await
        .unwrap();
    // Deliberately non-canonical JSON: odd spacing and key order must survive.
    let text = format!(
        "{{\n  \"schemaVersion\" : 2,\"mediaType\":\"{}\",   \"config\": {{\"mediaType\":\"{}\",\"digest\":\"{}\",\"size\":2}},\n\"layers\":[{{\"size\":{ls},\"digest\":\"{ld}\",\"mediaType\":\"{}\"}}] }}\n",
        mt::OCI_MANIFEST,
        mt::OCI_EMPTY,
        mt::OCI_EMPTY_DIGEST,
        mt::MODEL_WEIGHT
    );
    let bytes = Bytes::from(text);
    let pushed = s
        .push_manifest(bytes.clone(), mt::OCI_MANIFEST, Some("v1"))
        .await
        .unwrap();
    assert_eq!(pushed.digest, Digest::of(&bytes));
    assert_eq!(pushed.size, bytes.len() as u64);
    for reference in ["v1".to_string(), pushed.digest.to_string()] {
        let got = s.fetch_manifest(&reference).await.unwrap();
        assert_eq!(got.bytes, bytes, "{reference}");
        assert_eq!(got.descriptor.digest, pushed.digest);
        assert_eq!(got.descriptor.media_type, mt::OCI_MANIFEST);
        let resolved = s.resolve(&reference).await.unwrap();
        assert_eq!(
            resolved,
            Descriptor::new(mt::OCI_MANIFEST, pushed.digest.clone(), bytes.len() as u64)
        );
    }
    // Untagged push: by digest.
    let index = oci_model::store::ImageIndex {
        manifests: vec![pushed.clone()],
        ..Default::default()
    };
    let ib = Bytes::from(index.to_bytes());
    let d = s
        .push_manifest(ib.clone(), mt::OCI_INDEX, None)
        .await
        .unwrap();
    let got = s.fetch_manifest(d.digest.as_str()).await.unwrap();
    assert_eq!(
        (got.bytes, got.descriptor.media_type.as_str()),
        (ib, mt::OCI_INDEX)
    );

    let mut tags = s.list_tags().await.unwrap();
    tags.sort();
    assert_eq!(tags, vec!["v1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tag_list_follows_link_pagination() {
    // distribution 2.8 never pages its tag list: the proxy answers with pages, linked once
    // relatively and once absolutely, the last page with `"tags": null`.
    let reg = harness::Registry::start();
    let own = Arc::new(Mutex::new(String::new()));
    let own2 = own.clone();
    let page = |body: &str, link: Option<String>| {
        let mut b = axum::response::Response::builder()
            .status(200)
            .header("Content-Type", "application/json");
        if let Some(l) = link {
            b = b.header("Link", l);
        }
        b.body(axum::body::Body::from(body.to_string())).unwrap()
    };
    let proxy = Proxy::start(
        &reg.host,
        Box::new(move |m, p, _| {
            if m != reqwest::Method::GET || !p.contains("/tags/list") {
                return None;
            }
            let host = own2.lock().unwrap().clone();
            Some(if p.ends_with("/tags/list") {
                page(
                    r#"{"name":"m","tags":["a","b"]}"#,
                    Some("</v2/team/m/tags/list?last=b&n=2>; rel=\"next\"".to_string()),
                )
            } else if p.ends_with("last=b&n=2") {
                page(
                    r#"{"name":"m","tags":["c"]}"#,
                    Some(format!(
                        "<http://{host}/v2/team/m/tags/list?last=c&n=2>; rel=\"next\""
                    )),
                )
            } else {
                page(r#"{"name":"m","tags":null}"#, None)
            })
        }),
    )
    .await;
    *own.lock().unwrap() = proxy.host.clone();
    let tags = store(&proxy.host, "team/m").list_tags().await.unwrap();
    assert_eq!(tags, vec!["a", "b", "c"]);
    assert_eq!(proxy.count("GET", "/tags/list"), 3, "{:?}", proxy.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_manifest_is_refused_on_read() {
    let reg = harness::Registry::start();
    let big = 5 * 1024 * 1024usize;
    // Served by the proxy: one answer with Content-Length, one streamed without it.
    let hook: Hook = Box::new(move |m, p, _| {
        let body = |declared: bool| {
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            let stream = futures::stream::iter(
                (0..big / chunk.len()).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
            );
            let mut b = axum::response::Response::builder()
                .status(200)
                .header("Content-Type", mt::OCI_MANIFEST);
            if declared {
                b = b.header("Content-Length", big.to_string());
            }
            b.body(axum::body::Body::from_stream(stream)).unwrap()
        };
        if m != reqwest::Method::GET {
            return None;
        }
        if p.ends_with("/manifests/declared") {
            Some(body(true))
        } else if p.ends_with("/manifests/streamed") {
            Some(body(false))
        } else {
            None
        }
    });
    let proxy = Proxy::start(&reg.host, hook).await;
    let s = store(&proxy.host, &harness::repo("big"));
    for tag in ["declared", "streamed"] {
        let err = s.fetch_manifest(tag).await.unwrap_err();
        assert!(matches!(err, StoreError::TooLarge { .. }), "{tag}: {err}");
        assert!(
            err.to_string().contains(&format!("manifest {tag}")),
            "{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Auth

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn basic_auth_with_good_bad_and_missing_credentials() {
    let password = "correct-horse-battery";
    let reg = harness::Registry::start_with_htpasswd("alice", password);
    let repo = harness::repo("auth");
    let good = store_with(&reg.host, &repo, basic("alice", password));
    let (d, _) = good
        .push_blob(&BytesSource(Bytes::from_static(b"secret weights")))
        .await
        .unwrap();
    let subject = push_subject(&good, "v1").await;
    assert_eq!(good.resolve("v1").await.unwrap().digest, subject.digest);
    assert!(good.blob_exists(&d).await.unwrap());

    let wrong = "wrong-password-123";
    let bad = store_with(&reg.host, &repo, basic("alice", wrong));
    let err = bad
        .push_blob(&BytesSource(Bytes::from_static(b"x")))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Unauthorized { .. }), "{msg}");
    assert!(msg.contains(&reg.host) && msg.contains("alice"), "{msg}");
    assert!(
        !msg.contains(wrong) && !format!("{err:?}").contains(wrong),
        "{msg}"
    );
    let err = bad.fetch_manifest("v1").await.unwrap_err();
    assert!(matches!(err, StoreError::Unauthorized { .. }) && !err.to_string().contains(wrong));

    // Anonymous (the test process has no docker config for this host): told how to log in.
    let anon = store(&reg.host, &repo);
    let err = anon.resolve("v1").await.unwrap_err();
    assert!(matches!(err, StoreError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("login"), "{err}");
}

/// A token service and bearer-protected registry in front of the real one (the distribution
/// token flow as ghcr.io / Docker Hub run it): `GET /token?service=&scope=` with Basic
/// credentials issues tokens for the scopes asked; registry requests need a token whose scope
/// covers the repository and action (pull for GET/HEAD, push otherwise).
/// Tokens a bearer gate accepts, with the scopes each was granted.
type Tokens = Arc<Mutex<BTreeMap<String, Vec<String>>>>;

fn bearer_gate(own: Arc<Mutex<String>>, user: &'static str, password: &'static str) -> Hook {
    bearer_gate_with(own, user, password, Tokens::default(), None)
}

/// A registry gate asking for bearer tokens (from its own `/token` with Basic credentials, or
/// from the token service at `realm`, which issues into the same `tokens`).
fn bearer_gate_with(
    own: Arc<Mutex<String>>,
    user: &'static str,
    password: &'static str,
    tokens: Tokens,
    realm: Option<String>,
) -> Hook {
    use base64::Engine as _;
    let reply = |status: u16, challenge: Option<String>, body: String| {
        let mut b = axum::response::Response::builder().status(status);
        if let Some(c) = challenge {
            b = b.header("WWW-Authenticate", c);
        }
        Some(b.body(axum::body::Body::from(body)).unwrap())
    };
    Box::new(move |m, p, headers| {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some(query) = p.strip_prefix("/token?") {
            let good = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            );
            if auth != good {
                return reply(
                    401,
                    None,
                    r#"{"details":"incorrect username or password"}"#.into(),
                );
            }
            let scopes: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
                .filter(|(k, _)| k == "scope")
                .map(|(_, v)| v.into_owned())
                .collect();
            let mut t = tokens.lock().unwrap();
            let token = format!("tok{}", t.len());
            t.insert(token.clone(), scopes);
            return reply(
                200,
                None,
                format!(r#"{{"token":"{token}","expires_in":300}}"#),
            );
        }
        let rest = p.strip_prefix("/v2/")?;
        let repo = ["/manifests/", "/blobs/", "/tags/", "/referrers/"]
            .iter()
            .filter_map(|k| rest.find(k).map(|i| &rest[..i]))
            .next()
            .unwrap_or("");
        let action = if matches!(m.as_str(), "GET" | "HEAD") {
            "pull"
        } else {
            "push"
        };
        let wanted = if action == "pull" {
            "pull"
        } else {
            "pull,push"
        };
        let realm = realm
            .clone()
            .unwrap_or_else(|| format!("http://{}/token", own.lock().unwrap()));
        let granted = auth
            .strip_prefix("Bearer ")
            .and_then(|t| tokens.lock().unwrap().get(t).cloned());
        let ok = match &granted {
            Some(scopes) => {
                repo.is_empty()
                    || scopes.iter().any(|s| {
                        s.strip_prefix(&format!("repository:{repo}:"))
                            .is_some_and(|acts| acts.split(',').any(|a| a == action))
                    })
            }
            None => false,
        };
        if ok {
            return None;
        }
        let mut challenge = format!(r#"Bearer realm="{realm}",service="fake-registry""#);
        if !repo.is_empty() {
            challenge.push_str(&format!(r#",scope="repository:{repo}:{wanted}""#));
        }
        if granted.is_some() {
            challenge.push_str(r#",error="insufficient_scope""#);
        }
        reply(
            401,
            Some(challenge),
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.into(),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bearer_token_exchange_with_scopes_and_caching() {
    let reg = harness::Registry::start();
    let own = Arc::new(Mutex::new(String::new()));
    let proxy = Proxy::start(&reg.host, bearer_gate(own.clone(), "carol", "tok-pass-987")).await;
    *own.lock().unwrap() = proxy.host.clone();
    let repo = harness::repo("bearer");

    // Push and read back: one token, for pull,push, serves every request.
    let s = store_with(&proxy.host, &repo, basic("carol", "tok-pass-987"));
    let subject = push_subject(&s, "v1").await;
    assert_eq!(s.resolve("v1").await.unwrap(), subject);
    let bytes = referrer_of(&s, &subject, mt::SIGSTORE_BUNDLE_V03, 1).await;
    s.push_referrer(bytes, &subject).await.unwrap();
    assert_eq!(s.referrers(&subject, None).await.unwrap().len(), 1);
    let token_requests: Vec<String> = proxy
        .log()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/token"))
        .map(|(_, p)| p)
        .collect();
    assert_eq!(token_requests.len(), 1, "{token_requests:?}");
    let scope = format!(
        "scope=repository%3A{}%3Apull%2Cpush",
        repo.replace('/', "%2F")
    );
    assert!(
        token_requests[0].contains(&scope) && token_requests[0].contains("service=fake-registry"),
        "{token_requests:?}"
    );

    // A reader asks for pull only; a later push upgrades to a pull,push token.
    let reader = store_with(&proxy.host, &repo, basic("carol", "tok-pass-987"));
    reader.fetch_manifest("v1").await.unwrap();
    let last = proxy
        .log()
        .into_iter()
        .rfind(|(_, p)| p.starts_with("/token"))
        .unwrap()
        .1;
    assert!(
        last.ends_with(&format!("repository%3A{}%3Apull", repo.replace('/', "%2F"))),
        "{last}"
    );
    reader
        .push_blob(&BytesSource(Bytes::from_static(b"more")))
        .await
        .unwrap();
    assert_eq!(proxy.count("GET", "/token"), 3);

    // Wrong password: the token service refuses; the message names it, not the password.
    let bad = store_with(&proxy.host, &repo, basic("carol", "nope-wrong-77"));
    let err = bad.fetch_manifest("v1").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Unauthorized { .. }), "{msg}");
    assert!(
        msg.contains("token service") && msg.contains("carol") && !msg.contains("nope-wrong-77"),
        "{msg}"
    );

    // Login check: GET /v2/ with token exchange (no repository scope).
    let options = basic("carol", "tok-pass-987");
    RegistryStore::check_login(&proxy.host, &options)
        .await
        .unwrap();
    let err = RegistryStore::check_login(&proxy.host, &basic("carol", "x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unauthorized { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Retries

/// An OAuth2 token service (POST, refresh-token grant, as docker identity tokens use) that
/// issues tokens into `tokens` for the refresh token `refresh`. Returns its address and the
/// forms it received.
async fn oauth_token_service(
    tokens: Tokens,
    refresh: &'static str,
) -> (String, Arc<Mutex<Vec<BTreeMap<String, String>>>>) {
    let forms: Arc<Mutex<Vec<BTreeMap<String, String>>>> = Arc::default();
    let seen = forms.clone();
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(
            move |axum::Form(form): axum::Form<BTreeMap<String, String>>| {
                let tokens = tokens.clone();
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(form.clone());
                    let granted = form.get("grant_type").map(String::as_str)
                        == Some("refresh_token")
                        && form.get("refresh_token").map(String::as_str) == Some(refresh);
                    if !granted {
                        return (axum::http::StatusCode::UNAUTHORIZED, "{}".to_string());
                    }
                    let scopes: Vec<String> = form
                        .get("scope")
                        .map(|s| s.split(' ').map(str::to_string).collect())
                        .unwrap_or_default();
                    let mut t = tokens.lock().unwrap();
                    let token = format!("oauth{}", t.len());
                    t.insert(token.clone(), scopes);
                    (
                        axum::http::StatusCode::OK,
                        format!(r#"{{"access_token":"{token}","expires_in":300}}"#),
                    )
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (host, forms)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_identity_token_is_exchanged_through_the_refresh_token_grant() {
    let reg = harness::Registry::start();
    let tokens = Tokens::default();
    let refresh = "identity-token-7f3a";
    let (oauth, forms) = oauth_token_service(tokens.clone(), refresh).await;
    let own = Arc::new(Mutex::new(String::new()));
    let gate = bearer_gate_with(
        own.clone(),
        "nobody",
        "unused",
        tokens,
        Some(format!("http://{oauth}/token")),
    );
    let proxy = Proxy::start(&reg.host, gate).await;
    *own.lock().unwrap() = proxy.host.clone();
    let repo = harness::repo("identity");

    // The identity token as `docker login` leaves it in config.json.
    let docker = tempfile::tempdir().unwrap();
    std::fs::write(
        docker.path().join("config.json"),
        serde_json::json!({ "auths": { &proxy.host: { "identitytoken": refresh } } }).to_string(),
    )
    .unwrap();
    let model = tempfile::tempdir().unwrap();
    std::fs::write(model.path().join("w.bin"), b"weights").unwrap();
    let target = format!("{}/{repo}:v1", proxy.host);
    let out = tempfile::tempdir().unwrap();
    let pulled = out.path().join("m");
    let (m, t, d, p) = (
        model.path().to_path_buf(),
        target.clone(),
        docker.path().to_path_buf(),
        pulled.clone(),
    );
    let runs = tokio::task::spawn_blocking(move || {
        let run = |args: &[&str]| {
            harness::bin()
                .env("DOCKER_CONFIG", &d)
                .args(args)
                .timeout(Duration::from_secs(60))
                .output()
                .unwrap()
        };
        (
            run(&["push", m.to_str().unwrap(), &t]),
            run(&["pull", &t, p.to_str().unwrap()]),
        )
    })
    .await
    .unwrap();
    for out in [&runs.0, &runs.1] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains(refresh), "{stderr}");
    }
    assert_eq!(std::fs::read(pulled.join("w.bin")).unwrap(), b"weights");
    // Every token came from the refresh-token grant, for this service and repository.
    let forms = forms.lock().unwrap().clone();
    assert!(!forms.is_empty());
    for form in &forms {
        assert_eq!(form["grant_type"], "refresh_token", "{form:?}");
        assert_eq!(form["refresh_token"], refresh, "{form:?}");
        assert_eq!(form["service"], "fake-registry", "{form:?}");
        assert!(
            form["scope"].contains(&format!("repository:{repo}:")),
            "{form:?}"
        );
    }
    // (The gate accepts only tokens the service issued: had the client fallen back to sending
    // the identity token itself as the bearer token, push and pull would have failed.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_failures_are_retried_and_uploads_restart_from_the_source() {
    let reg = harness::Registry::start();
    // Two 503s on the first PATCH (the upload restarts: a new POST each time), one on a GET.
    let patch_fails = fail_first(2, "PATCH", "/blobs/uploads/", 503);
    let get_fails = fail_first(1, "GET", "/manifests/v1", 429);
    let proxy = Proxy::start(
        &reg.host,
        Box::new(move |m, p, h| patch_fails(m, p, h).or_else(|| get_fails(m, p, h))),
    )
    .await;
    let s = store(&proxy.host, &harness::repo("retry"));
    let data = Bytes::from(harness::pseudo_random(300_000, 5));
    let (digest, _) = s.push_blob(&BytesSource(data.clone())).await.unwrap();
    assert_eq!(digest, Digest::of(&data));
    assert_eq!(
        proxy.count("POST", "/blobs/uploads/"),
        3,
        "{:?}",
        proxy.log()
    );
    assert_eq!(proxy.count("PATCH", "/blobs/uploads/"), 3);
    assert_eq!(
        read_all(&s, &Descriptor::new("x", digest, data.len() as u64))
            .await
            .unwrap(),
        data
    );
    let subject = push_subject(&s, "v1").await;
    assert_eq!(
        s.fetch_manifest("v1").await.unwrap().descriptor.digest,
        subject.digest
    );
    assert_eq!(proxy.count("GET", "/manifests/v1"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_the_last_attempt_the_error_names_attempts_and_cause() {
    let reg = harness::Registry::start();
    let proxy = Proxy::start(&reg.host, fail_first(usize::MAX, "GET", "/manifests/", 503)).await;
    let options = StoreOptions {
        max_attempts: 3,
        ..Default::default()
    };
    let s = store_with(&proxy.host, &harness::repo("giveup"), options);
    let err = s.fetch_manifest("v1").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("HTTP 503")
            && msg.contains("3 attempts")
            && msg.contains("UNAVAILABLE: try later")
            && msg.contains("manifests/v1"),
        "{msg}"
    );
    assert_eq!(proxy.count("GET", "/manifests/v1"), 3);

    // A registry that went away after answering: connection errors, retried, then a clear
    // Network error.
    let host = reg.host.clone();
    let s = store_with(
        &host,
        "gone/repo",
        StoreOptions {
            max_attempts: 2,
            ..Default::default()
        },
    );
    assert!(!s.blob_exists(&Digest::of(b"x")).await.unwrap());
    drop(reg);
    let err = s.blob_exists(&Digest::of(b"x")).await.unwrap_err();
    assert!(matches!(err, StoreError::Network { .. }), "{err}");
    assert!(
        err.to_string().contains(&host) && err.to_string().contains("2 attempts"),
        "{err}"
    );
    // Nothing there from the first request on: one attempt, one line naming the address.
    let s = store_with(
        &host,
        "gone/repo",
        StoreOptions {
            max_attempts: 2,
            ..Default::default()
        },
    );
    let err = s.blob_exists(&Digest::of(b"x")).await.unwrap_err();
    assert!(matches!(err, StoreError::NotListening { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("nothing is listening on {host}"))
            && !err.to_string().contains("attempts"),
        "{err}"
    );

    // Non-transient errors are not retried.
    let reg = harness::Registry::start();
    let proxy = Proxy::start(
        &reg.host,
        fail_first(usize::MAX, "HEAD", "/manifests/", 400),
    )
    .await;
    let s = store(&proxy.host, &harness::repo("noretry"));
    assert!(s.resolve("v1").await.is_err());
    assert_eq!(proxy.count("HEAD", "/manifests/v1"), 1);
}

// ---------------------------------------------------------------------------------------------
// Referrers

async fn check_twenty_referrers(host: &str, shared: bool) {
    let repo = harness::repo(if shared { "ref-shared" } else { "ref-separate" });
    let main = Arc::new(store(host, &repo));
    let subject = push_subject(main.as_ref(), "v1").await;
    let mut manifests = Vec::new();
    for n in 0..20 {
        let at = if n % 2 == 0 {
            mt::SIGSTORE_BUNDLE_V03
        } else {
            "application/vnd.example.other"
        };
        manifests.push(referrer_of(main.as_ref(), &subject, at, n).await);
    }
    let mut tasks = Vec::new();
    for bytes in manifests.clone() {
        let s: Arc<RegistryStore> = if shared {
            main.clone()
        } else {
            Arc::new(store(host, &repo))
        };
        let subject = subject.clone();
        tasks.push(tokio::spawn(async move {
            s.push_referrer(bytes, &subject).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // Exactly twenty entries in the fallback index, each with its artifact type and annotations.
    let index = main
        .fetch_manifest(&subject.digest.fallback_tag())
        .await
        .unwrap();
    let index: oci_model::store::ImageIndex = serde_json::from_slice(&index.bytes).unwrap();
    assert_eq!(index.manifests.len(), 20, "{index:?}");
    let mut digests: Vec<_> = index.manifests.iter().map(|d| d.digest.clone()).collect();
    digests.sort();
    let mut expected: Vec<_> = manifests.iter().map(|b| Digest::of(b)).collect();
    expected.sort();
    assert_eq!(digests, expected);
    let all = main.referrers(&subject, None).await.unwrap();
    assert_eq!(all.len(), 20);
    let sigs = main
        .referrers(&subject, Some(mt::SIGSTORE_BUNDLE_V03))
        .await
        .unwrap();
    assert_eq!(sigs.len(), 10);
    assert!(sigs
        .iter()
        .all(|d| d.annotation("test.n").is_some() && d.media_type == mt::OCI_MANIFEST));
    // Pushing one again changes nothing.
    main.push_referrer(manifests[0].clone(), &subject)
        .await
        .unwrap();
    assert_eq!(main.referrers(&subject, None).await.unwrap().len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_referrers_on_one_store_all_land_in_the_fallback_index() {
    let reg = harness::Registry::start();
    check_twenty_referrers(&reg.host, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_referrers_from_separate_clients_all_land_in_the_fallback_index() {
    // Like twenty processes: no shared lock, only the read-modify-write-verify protocol
    // against a registry with last-writer-wins tags.
    let reg = harness::Registry::start();
    check_twenty_referrers(&reg.host, false).await;
}

/// An OCI 1.1 registry with the referrers API, in process.
async fn start_ferro() -> String {
    let state = ferro_oci_server::AppState::new(
        Arc::new(ferro_blob_store::InMemoryBlobStore::new()),
        Arc::new(ferro_oci_server::InMemoryRegistryMeta::new()),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let app = ferro_oci_server::router(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn referrers_api_is_used_when_the_registry_has_it() {
    let ferro = start_ferro().await;
    let proxy = Proxy::start(&ferro, Box::new(|_, _, _| None)).await;
    let s = store(&proxy.host, "team/model");
    let subject = push_subject(&s, "v1").await;
    for n in 0..3 {
        let at = if n == 0 {
            "application/vnd.example.other"
        } else {
            mt::SIGSTORE_BUNDLE_V03
        };
        let bytes = referrer_of(&s, &subject, at, n).await;
        s.push_referrer(bytes, &subject).await.unwrap();
    }
    // No fallback tag was written or read: the registry indexes subjects itself.
    assert!(!s
        .list_tags()
        .await
        .unwrap()
        .iter()
        .any(|t| t.starts_with("sha256-")));
    assert_eq!(
        proxy.count("PUT", "/manifests/sha256-"),
        0,
        "{:?}",
        proxy.log()
    );
    let all = s.referrers(&subject, None).await.unwrap();
    assert_eq!(all.len(), 3);
    let sigs = s
        .referrers(&subject, Some(mt::SIGSTORE_BUNDLE_V03))
        .await
        .unwrap();
    assert_eq!(sigs.len(), 2);
    assert!(sigs
        .iter()
        .all(|d| d.artifact_type.as_deref() == Some(mt::SIGSTORE_BUNDLE_V03)));
    assert!(sigs.iter().all(|d| d.annotation("test.n").is_some()));
    assert!(proxy.count("GET", "/referrers/") >= 2);
    assert_eq!(proxy.count("GET", "/manifests/sha256-"), 0);
}

// ---------------------------------------------------------------------------------------------
// login / logout (the binary, with its own DOCKER_CONFIG)

#[test]
fn login_verifies_and_stores_credentials_and_logout_removes_them() {
    use base64::Engine as _;
    let password = "s3cret-for-login";
    let reg = harness::Registry::start_with_htpasswd("bob", password);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"auths":{"other.example":{"auth":"eDp5"}},"credsStore":""}"#,
    )
    .unwrap();

    // Wrong password: exit 3, nothing stored, the password never printed.
    let out = harness::bin()
        .env("DOCKER_CONFIG", dir.path())
        .args(["login", &reg.host, "-u", "bob", "--password-stdin"])
        .write_stdin("wrong-pw-xyz\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("wrong-pw-xyz") && stderr.contains(&reg.host),
        "{stderr}"
    );
    assert!(!std::fs::read_to_string(&config)
        .unwrap()
        .contains(&reg.host));

    let out = harness::bin()
        .env("DOCKER_CONFIG", dir.path())
        .args(["login", &reg.host, "-u", "bob", "--password-stdin"])
        .write_stdin(format!("{password}\n"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(password));
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("bob:{password}"));
    assert_eq!(cfg["auths"][&reg.host]["auth"], expected.as_str());
    assert_eq!(
        cfg["auths"]["other.example"]["auth"], "eDp5",
        "other entries kept"
    );

    // Every command now finds the credentials in the docker config.
    let repo = harness::repo("login");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pusher = store_with(&reg.host, &repo, basic("bob", password));
    let subject = rt.block_on(push_subject(&pusher, "v1"));
    let inspect = |dir: &std::path::Path| {
        harness::bin()
            .env("DOCKER_CONFIG", dir)
            .args(["inspect", &format!("{}/{repo}:v1", reg.host)])
            .output()
            .unwrap()
    };
    let out = inspect(dir.path());
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(subject.digest.as_str()));

    let out = harness::bin()
        .env("DOCKER_CONFIG", dir.path())
        .args(["logout", &reg.host])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert!(cfg["auths"].get(&reg.host).is_none(), "{cfg}");
    assert_eq!(cfg["auths"]["other.example"]["auth"], "eDp5");
    let out = inspect(dir.path());
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("login"),
        "{out:?}"
    );
    let out = harness::bin()
        .env("DOCKER_CONFIG", dir.path())
        .args(["--output", "json", "logout", &reg.host])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["removed"], false);
}

// ---------------------------------------------------------------------------------------------
// A registry that goes quiet

async fn push_small_model(s: &RegistryStore, dir: &std::path::Path) -> Digest {
    std::fs::write(dir.join("w.bin"), harness::pseudo_random(200_000, 5)).unwrap();
    let pushed = oci_model::model::pack::push_model(
        s,
        &[dir.to_path_buf()],
        Some("v1"),
        &Default::default(),
    )
    .await
    .unwrap();
    pushed.files[0].digest.clone()
}

fn quiet(host: &str, repo: &str, idle: Duration) -> RegistryStore {
    store_with(
        host,
        repo,
        StoreOptions {
            idle_timeout: Some(idle),
            ..Default::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_answer_or_a_stalled_download_is_retried() {
    use oci_model::model::unpack::{fetch_model, unpack_model, PullOptions};
    let reg = harness::Registry::start();
    let repo = harness::repo("quiet");
    let src = tempfile::tempdir().unwrap();
    let blob = push_small_model(&store(&reg.host, &repo), src.path()).await;

    // The first manifest request is never answered; the first blob download stops early.
    let manifest_hook = stall_first(1, "/manifests/v1".into(), true);
    let blob_hook = stall_first(1, format!("/blobs/{blob}"), false);
    let proxy = Proxy::start(
        &reg.host,
        Box::new(move |m, p, h| manifest_hook(m, p, h).or_else(|| blob_hook(m, p, h))),
    )
    .await;
    let s = quiet(&proxy.host, &repo, Duration::from_millis(300));
    // (Bounded, so that a client that waits forever fails the test instead of hanging it.)
    let bounded = Duration::from_secs(60);
    let artifact = tokio::time::timeout(bounded, fetch_model(&s, "v1"))
        .await
        .expect("the client waited for the silent registry")
        .unwrap();
    assert_eq!(proxy.count("GET", "/manifests/v1"), 2, "{:?}", proxy.log());
    let out = tempfile::tempdir().unwrap();
    tokio::time::timeout(
        bounded,
        unpack_model(&s, &artifact, out.path(), &PullOptions::default()),
    )
    .await
    .expect("the client waited for the stalled download")
    .unwrap();
    // The stalled answer's few bytes were not the blob's: the download continued after them
    // (a range), the whole did not match, and the blob was fetched once more from its start.
    assert_eq!(
        proxy.count("GET", &format!("/blobs/{blob}")),
        3,
        "{:?}",
        proxy.log()
    );
    assert_eq!(
        std::fs::read(out.path().join("w.bin")).unwrap(),
        std::fs::read(src.path().join("w.bin")).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_that_stays_silent_fails_the_pull_naming_the_timeout() {
    let reg = harness::Registry::start();
    let repo = harness::repo("silent");
    let src = tempfile::tempdir().unwrap();
    let blob = push_small_model(&store(&reg.host, &repo), src.path()).await;
    let proxy = Proxy::start(
        &reg.host,
        stall_first(usize::MAX, format!("/blobs/{blob}"), false),
    )
    .await;
    let target = format!("{}/{repo}:v1", proxy.host);
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    let out_arg = out.clone();
    let started = std::time::Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        harness::bin()
            .args(["pull", &target, out_arg.to_str().unwrap()])
            .args(["--timeout", "1", "--retries", "3"])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no data for 1 s")
            && stderr.contains("--timeout")
            && stderr.contains("w.bin"),
        "{stderr}"
    );
    // Three attempts (`--retries 3`) of one second each (and short pauses), not forever.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        proxy.count("GET", &format!("/blobs/{blob}")),
        3,
        "{:?}",
        proxy.log()
    );
    // A failed pull leaves only what the next one resumes.
    assert_eq!(
        support_entries(&out),
        [".oci-model-resume".to_string()],
        "a failed pull left {}",
        out.display()
    );
}

/// The names directly in `dir`.
fn support_entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_the_registry_stops_taking_is_restarted() {
    let reg = harness::Registry::start();
    // The first PATCH is never read: once the socket buffers are full, the body stops moving.
    let proxy = Proxy::start(
        &reg.host,
        stall_first_of(1, reqwest::Method::PATCH, "/blobs/uploads/".into(), true),
    )
    .await;
    let s = quiet(
        &proxy.host,
        &harness::repo("stuck"),
        Duration::from_millis(500),
    );
    let data = harness::pseudo_random(64 * 1024 * 1024, 11);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    std::fs::write(&path, &data).unwrap();
    let source = FileSource {
        path,
        size: data.len() as u64,
        digest: None,
    };
    // (Well below the 30 s after which the proxy's HTTP server drops a stuck connection.)
    let (digest, size) = tokio::time::timeout(Duration::from_secs(15), s.push_blob(&source))
        .await
        .expect("the client waited for the stalled upload")
        .unwrap();
    assert_eq!(
        (digest.clone(), size),
        (Digest::of(&data), data.len() as u64)
    );
    assert_eq!(
        proxy.count("PATCH", "/blobs/uploads/"),
        2,
        "{:?}",
        proxy.log()
    );
    assert!(s.blob_exists(&digest).await.unwrap());
}
