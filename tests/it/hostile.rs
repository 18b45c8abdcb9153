//! A hostile registry: a small HTTP server that serves crafted answers, and a second host
//! ("elsewhere") that records everything sent to it. Credentials may only ever go to the
//! registry they were given for (and to the token realm that registry's own challenge named).

use crate::harness;
use base64::Engine as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55word";

fn basic() -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Seen {
    fn authorization(&self) -> Option<&str> {
        self.headers.get("authorization").map(String::as_str)
    }
    /// Every header and the body, for leak checks.
    fn everything(&self) -> String {
        format!(
            "{} {} {:?} {}",
            self.method, self.uri, self.headers, self.body
        )
    }
}

/// An answer: status, headers, body.
pub struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send `body` again and again, forever (no Content-Length).
    endless: bool,
    /// Send `body` one byte at a time, this long apart.
    trickle: Option<std::time::Duration>,
    /// Never answer (until the server stops).
    hang: bool,
}

impl Answer {
    fn new(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            endless: false,
            trickle: None,
            hang: false,
        }
    }
    /// `body`, one byte every `every` (with its Content-Length).
    fn trickle(mut self, body: impl Into<Vec<u8>>, every: std::time::Duration) -> Answer {
        self.body = body.into();
        self.trickle = Some(every);
        let length = self.body.len().to_string();
        self.header("content-length", length)
    }
    /// No answer at all: the request is read, then nothing comes back.
    pub(crate) fn hang() -> Answer {
        let mut a = Answer::new(200);
        a.hang = true;
        a
    }
    fn endless(mut self, chunk: impl Into<Vec<u8>>) -> Answer {
        self.body = chunk.into();
        self.endless = true;
        self
    }
    fn header(mut self, name: &str, value: impl Into<String>) -> Answer {
        self.headers.push((name.to_string(), value.into()));
        self
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Answer {
        self.body = body.into();
        self
    }
    fn json(self, value: &serde_json::Value) -> Answer {
        self.header("content-type", "application/json")
            .body(serde_json::to_vec(value).unwrap())
    }
}

type Handler = dyn Fn(&Seen, &str) -> Answer + Send + Sync;

/// A server on 127.0.0.1 that records every request and answers with `handler(request, own
/// address)`. Stops when dropped.
pub struct Server {
    pub addr: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Wakes hanging answers when the server stops.
    closing: Arc<tokio::sync::Notify>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(handler: impl Fn(&Seen, &str) -> Answer + Send + Sync + 'static) -> Server {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let closing = Arc::new(tokio::sync::Notify::new());
        let (seen2, addr2, closing2) = (seen.clone(), addr.clone(), closing.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                    let (seen, handler, addr) = (seen2.clone(), handler.clone(), addr2.clone());
                    let closing = closing2.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = axum::body::to_bytes(body, 64 << 20)
                            .await
                            .unwrap_or_default();
                        let request = Seen {
                            method: parts.method.to_string(),
                            uri: parts
                                .uri
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                            headers: parts
                                .headers
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                                })
                                .collect(),
                            body: String::from_utf8_lossy(&body).into_owned(),
                        };
                        seen.lock().unwrap().push(request.clone());
                        let answer = handler(&request, &addr);
                        if answer.hang {
                            let closed = closing.notified();
                            tokio::pin!(closed);
                            closed.as_mut().enable();
                            closed.await;
                        }
                        let mut response =
                            axum::response::Response::builder().status(answer.status);
                        for (k, v) in answer.headers {
                            response = response.header(k, v);
                        }
                        let body = if let Some(every) = answer.trickle {
                            let bytes = answer.body;
                            axum::body::Body::from_stream(futures::stream::unfold(
                                0usize,
                                move |i| {
                                    let next = bytes.get(i).copied();
                                    async move {
                                        let byte = next?;
                                        if i > 0 {
                                            tokio::time::sleep(every).await;
                                        }
                                        Some((
                                            Ok::<_, std::io::Error>(bytes::Bytes::from(vec![byte])),
                                            i + 1,
                                        ))
                                    }
                                },
                            ))
                        } else if answer.endless {
                            let chunk = bytes::Bytes::from(answer.body);
                            axum::body::Body::from_stream(futures::stream::repeat_with(move || {
                                Ok::<_, std::io::Error>(chunk.clone())
                            }))
                        } else {
                            axum::body::Body::from(answer.body)
                        };
                        response.body(body).unwrap()
                    }
                });
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Server {
            addr,
            seen,
            closing,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.closing.notify_waiters();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A small model pushed into an OCI layout with the CLI: the hostile registry serves it.
struct Layout {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Layout {
    fn with_model() -> Layout {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        std::fs::create_dir_all(&model).unwrap();
        std::fs::write(model.join("weights.bin"), harness::pseudo_random(4096, 7)).unwrap();
        std::fs::write(model.join("config.json"), b"{\"hidden_size\":8}\n").unwrap();
        let root = dir.path().join("layout");
        let out = harness::bin()
            .arg("push")
            .arg(&model)
            .arg(format!("oci:{}:v1", root.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        Layout { _dir: dir, root }
    }

    fn manifest_digest(&self) -> String {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.root.join("index.json")).unwrap()).unwrap();
        index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        let hex = digest.strip_prefix("sha256:")?;
        std::fs::read(self.root.join("blobs/sha256").join(hex)).ok()
    }

    /// The digest of the biggest layer (the weights).
    fn weights_digest(&self) -> String {
        let m: serde_json::Value =
            serde_json::from_slice(&self.blob(&self.manifest_digest()).unwrap()).unwrap();
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .max_by_key(|l| l["size"].as_u64().unwrap())
            .unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Answers the read side of the distribution API from the layout (any repository).
    fn answer(&self, req: &Seen) -> Answer {
        let path = req.uri.split('?').next().unwrap_or("");
        if let Some((_, reference)) = path.split_once("/manifests/") {
            let digest = if reference.starts_with("sha256:") {
                reference.to_string()
            } else {
                self.manifest_digest()
            };
            return match self.blob(&digest) {
                Some(bytes) => Answer::new(200)
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .header("docker-content-digest", digest)
                    .body(if req.method == "HEAD" {
                        Vec::new()
                    } else {
                        bytes
                    }),
                None => Answer::new(404),
            };
        }
        if let Some((_, digest)) = path.split_once("/blobs/") {
            return match self.blob(digest) {
                Some(bytes) => Answer::new(200)
                    .header("content-length", bytes.len().to_string())
                    .body(if req.method == "HEAD" {
                        Vec::new()
                    } else {
                        bytes
                    }),
                None => Answer::new(404),
            };
        }
        if path.contains("/referrers/") {
            return Answer::new(200)
                .header("content-type", "application/vnd.oci.image.index.v1+json")
                .json(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": []
                }));
        }
        Answer::new(404)
    }
}

/// `Basic` gate: /v2/ and everything else need the right Basic credentials.
fn basic_ok(req: &Seen) -> bool {
    req.authorization() == Some(&format!("Basic {}", basic()))
}

fn basic_challenge() -> Answer {
    Answer::new(401).header("www-authenticate", "Basic realm=\"hostile\"")
}

/// Runs the CLI with `--username alice --password-stdin`.
fn run_with_password(args: &[&str]) -> std::process::Output {
    harness::bin()
        .args(args)
        .args([
            "--username",
            USER,
            "--password-stdin",
            "--retries",
            "1",
            "--timeout",
            "10",
        ])
        .write_stdin(PASSWORD)
        .output()
        .unwrap()
}

/// Nothing that identifies the user reached `server`.
fn assert_no_credentials(server: &Server, extra_secrets: &[&str]) {
    for req in server.seen() {
        let all = req.everything();
        assert!(
            req.authorization().is_none(),
            "credentials sent to {}: {all}",
            server.addr
        );
        for secret in [PASSWORD, &basic()].iter().chain(extra_secrets) {
            assert!(
                !all.contains(secret),
                "{secret} leaked to {}: {all}",
                server.addr
            );
        }
    }
}

#[test]
fn a_redirect_targets_challenge_gets_no_credentials() {
    // The blob host behind the redirect asks for a token from a realm of its own.
    let elsewhere = Server::start(|req, me| {
        if req.uri.starts_with("/token") {
            return Answer::new(200).json(&serde_json::json!({"token": "stolen"}));
        }
        if req.authorization().is_none() {
            return Answer::new(401).header(
                "www-authenticate",
                format!("Bearer realm=\"http://{me}/token\",service=\"elsewhere\""),
            );
        }
        Answer::new(200).body(b"x".to_vec())
    });
    let layout = Layout::with_model();
    let weights = layout.weights_digest();
    let target = elsewhere.addr.clone();
    let registry = Server::start(move |req, _| {
        if !basic_ok(req) {
            return basic_challenge();
        }
        if req.uri.ends_with(&format!("/blobs/{weights}")) {
            return Answer::new(307).header("location", format!("http://{target}/blob/{weights}"));
        }
        if req.uri == "/v2/" {
            return Answer::new(200);
        }
        layout.answer(req)
    });
    let dest = tempfile::tempdir().unwrap();
    let out = run_with_password(&[
        "pull",
        &format!("{}/team/m:v1", registry.addr),
        dest.path().join("m").to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !elsewhere.seen().is_empty(),
        "the redirect was not followed at all: {out:?}"
    );
    assert_no_credentials(&elsewhere, &[]);
}

#[test]
fn a_cross_origin_next_page_gets_no_credentials() {
    let elsewhere = Server::start(|_, _| {
        Answer::new(200).json(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": []
        }))
    });
    let layout = Layout::with_model();
    let target = elsewhere.addr.clone();
    let registry = Server::start(move |req, _| {
        if !basic_ok(req) {
            return basic_challenge();
        }
        if req.uri.contains("/referrers/") {
            return layout.answer(req).header(
                "link",
                format!("<http://{target}/v2/team/m/referrers/x?n=1>; rel=\"next\""),
            );
        }
        if req.uri == "/v2/" {
            return Answer::new(200);
        }
        layout.answer(req)
    });
    let out = run_with_password(&["discover", &format!("{}/team/m:v1", registry.addr)]);
    assert_no_credentials(&elsewhere, &[]);
    // Refused with a clear error rather than followed.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains("another origin"), "{stderr}");
}

#[test]
fn a_redirect_to_storage_is_followed_without_credentials() {
    let layout = std::sync::Arc::new(Layout::with_model());
    let weights = layout.weights_digest();
    let storage_layout = layout.clone();
    // Blob storage behind a redirect: presigned URLs, no authentication.
    let elsewhere = Server::start(move |req, _| {
        let digest = req.uri.trim_start_matches("/blob/");
        match storage_layout.blob(digest) {
            Some(bytes) => Answer::new(200).body(bytes),
            None => Answer::new(404),
        }
    });
    let target = elsewhere.addr.clone();
    let registry = Server::start(move |req, _| {
        if !basic_ok(req) {
            return basic_challenge();
        }
        if req.uri.ends_with(&format!("/blobs/{weights}")) {
            return Answer::new(307).header("location", format!("http://{target}/blob/{weights}"));
        }
        if req.uri == "/v2/" {
            return Answer::new(200);
        }
        layout.answer(req)
    });
    let dest = tempfile::tempdir().unwrap();
    let out = run_with_password(&[
        "pull",
        &format!("{}/team/m:v1", registry.addr),
        dest.path().join("m").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(!elsewhere.seen().is_empty(), "not redirected");
    assert_no_credentials(&elsewhere, &[]);
}

#[test]
fn a_redirect_targets_challenge_gets_no_identity_token() {
    const IDENTITY: &str = "identity-REFRESH-777";
    let elsewhere = Server::start(|req, me| {
        if req.uri.starts_with("/token") {
            return Answer::new(200).json(&serde_json::json!({"token": "stolen"}));
        }
        Answer::new(401).header(
            "www-authenticate",
            format!("Bearer realm=\"http://{me}/token\",service=\"elsewhere\""),
        )
    });
    let layout = Layout::with_model();
    let weights = layout.weights_digest();
    let target = elsewhere.addr.clone();
    let registry = Server::start(move |req, me| {
        if req.uri.starts_with("/token") {
            // The registry's own token service: a refresh-token grant.
            return if req.body.contains(IDENTITY) {
                Answer::new(200).json(&serde_json::json!({"access_token": "reg-token-1"}))
            } else {
                Answer::new(401)
            };
        }
        if req.authorization() != Some("Bearer reg-token-1") {
            return Answer::new(401).header(
                "www-authenticate",
                format!("Bearer realm=\"http://{me}/token\",service=\"hostile\""),
            );
        }
        if req.uri.ends_with(&format!("/blobs/{weights}")) {
            return Answer::new(307).header("location", format!("http://{target}/blob/{weights}"));
        }
        if req.uri == "/v2/" {
            return Answer::new(200);
        }
        layout.answer(req)
    });
    let dest = tempfile::tempdir().unwrap();
    let out = harness::bin()
        .args([
            "pull",
            &format!("{}/team/m:v1", registry.addr),
            dest.path().join("m").to_str().unwrap(),
            "--password-stdin",
            "--retries",
            "1",
        ])
        .write_stdin(IDENTITY)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(
        registry.seen().iter().any(|r| r.body.contains(IDENTITY)),
        "the identity token was never used: {out:?}"
    );
    assert!(!elsewhere.seen().is_empty(), "not redirected: {out:?}");
    assert_no_credentials(&elsewhere, &[IDENTITY, "reg-token-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("asks for credentials"), "{stderr}");
    assert!(!stderr.contains(IDENTITY), "{stderr}");
}

#[test]
fn a_cross_origin_upload_location_gets_no_credentials() {
    let elsewhere = Server::start(|req, _| match req.method.as_str() {
        "PATCH" => Answer::new(202).header("range", "0-0"),
        "PUT" => Answer::new(201),
        _ => Answer::new(202),
    });
    let target = elsewhere.addr.clone();
    let registry = Server::start(move |req, _| {
        if !basic_ok(req) {
            return basic_challenge();
        }
        if req.method == "POST" && req.uri.contains("/blobs/uploads/") {
            return Answer::new(202)
                .header("location", format!("http://{target}/upload/1"))
                .header("docker-upload-uuid", "1");
        }
        if req.uri == "/v2/" {
            return Answer::new(200);
        }
        Answer::new(404)
    });
    let model = tempfile::tempdir().unwrap();
    std::fs::write(model.path().join("a.txt"), b"hello").unwrap();
    let out = run_with_password(&[
        "push",
        model.path().to_str().unwrap(),
        &format!("{}/team/m:v1", registry.addr),
    ]);
    assert!(!out.status.success(), "{out:?}");
    assert_no_credentials(&elsewhere, &[]);
}

/// A registry whose error bodies echo every request header back.
fn echoing(status: u16) -> impl Fn(&Seen, &str) -> Answer {
    move |req, me| {
        if req.uri.starts_with("/token") {
            return Answer::new(200)
                .json(&serde_json::json!({"token": "tok-SECRET-4242", "expires_in": 300}));
        }
        let bearer_ok = req.authorization() == Some("Bearer tok-SECRET-4242");
        if req.uri == "/v2/" && !bearer_ok {
            return Answer::new(401).header(
                "www-authenticate",
                format!("Bearer realm=\"http://{me}/token\",service=\"hostile\",scope=\"repository:team/m:pull\""),
            );
        }
        if !bearer_ok {
            return Answer::new(401).header(
                "www-authenticate",
                format!("Bearer realm=\"http://{me}/token\",service=\"hostile\",scope=\"repository:team/m:pull\""),
            );
        }
        if req.uri == "/v2/" {
            return Answer::new(200);
        }
        Answer::new(status).json(&serde_json::json!({
            "errors": [{"code": "DENIED", "message": format!("you sent {:?}", req.headers)}]
        }))
    }
}

#[test]
fn credentials_echoed_in_an_error_body_are_redacted() {
    for status in [400, 403, 404] {
        let registry = Server::start(echoing(status));
        let out = run_with_password(&["inspect", &format!("{}/team/m:v1", registry.addr)]);
        assert!(!out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The registry really echoed the token (else the test proves nothing).
        assert!(
            registry
                .seen()
                .iter()
                .any(|r| r.authorization() == Some("Bearer tok-SECRET-4242")),
            "the token was never used"
        );
        for secret in ["tok-SECRET-4242", PASSWORD, &basic()] {
            assert!(
                !stderr.contains(secret),
                "HTTP {status}: {secret} printed: {stderr}"
            );
        }
    }
}

#[test]
fn a_huge_token_lifetime_does_not_panic() {
    let registry = Server::start(|req, me| {
        if req.uri.starts_with("/token") {
            return Answer::new(200).json(&serde_json::json!({
                "token": "t",
                "expires_in": u64::MAX,
                "issued_at": "2026-01-01T00:00:00Z"
            }));
        }
        if req.authorization() != Some("Bearer t") {
            return Answer::new(401).header(
                "www-authenticate",
                format!("Bearer realm=\"http://{me}/token\",service=\"hostile\""),
            );
        }
        if req.uri == "/v2/" {
            return Answer::new(200);
        }
        Answer::new(404)
            .json(&serde_json::json!({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "no"}]}))
    });
    let out = harness::bin()
        .args([
            "inspect",
            &format!("{}/team/m:v1", registry.addr),
            "--retries",
            "1",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    assert!(!out.status.success());
}

#[test]
fn an_endless_token_body_stops_at_the_cap() {
    let registry = Server::start(|req, me| {
        if req.uri.starts_with("/token") {
            return Answer::new(200)
                .header("content-type", "application/json")
                .endless(vec![b' '; 64 * 1024]);
        }
        Answer::new(401).header(
            "www-authenticate",
            format!("Bearer realm=\"http://{me}/token\",service=\"hostile\""),
        )
    });
    let started = std::time::Instant::now();
    let out = harness::bin()
        .args([
            "inspect",
            &format!("{}/team/m:v1", registry.addr),
            "--retries",
            "1",
        ])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("token service") && stderr.contains("1048576-byte limit"),
        "{stderr}"
    );
    assert!(
        !out.status.success() && out.status.code() != Some(101),
        "{out:?}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn three_thousand_referrer_pages_stop_at_the_page_cap() {
    let layout = Layout::with_model();
    let registry = Server::start(move |req, _| {
        let path = req.uri.split('?').next().unwrap_or("");
        if path.contains("/referrers/") {
            let page: u64 = req
                .uri
                .split("page=")
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let mut answer = Answer::new(200).json(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": format!("sha256:{:064x}", page),
                    "size": 100,
                    "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"
                }]
            }));
            if page < 3000 {
                answer = answer.header("link", format!("<{path}?page={}>; rel=\"next\"", page + 1));
            }
            return answer;
        }
        if req.uri == "/v2/" {
            return Answer::new(200);
        }
        layout.answer(req)
    });
    let out = harness::bin()
        .args([
            "discover",
            &format!("{}/team/m:v1", registry.addr),
            "--retries",
            "1",
        ])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("limit of 1000 pages"), "{stderr}");
    assert!(!out.status.success(), "{out:?}");
    let pages = registry
        .seen()
        .iter()
        .filter(|r| r.uri.contains("/referrers/"))
        .count();
    assert!(pages <= 1001, "{pages} pages read");
}

#[test]
fn a_list_past_the_entry_cap_stops() {
    let layout = Layout::with_model();
    let registry = Server::start(move |req, _| {
        let path = req.uri.split('?').next().unwrap_or("");
        if path.contains("/referrers/") {
            let page: u64 = req
                .uri
                .split("page=")
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let entries: Vec<serde_json::Value> = (0..5000u64)
                .map(|i| {
                    serde_json::json!({
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": format!("sha256:{:064x}", page * 5000 + i),
                        "size": 100
                    })
                })
                .collect();
            return Answer::new(200)
                .json(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": entries
                }))
                .header("link", format!("<{path}?page={}>; rel=\"next\"", page + 1));
        }
        if req.uri == "/v2/" {
            return Answer::new(200);
        }
        layout.answer(req)
    });
    let out = harness::bin()
        .args([
            "discover",
            &format!("{}/team/m:v1", registry.addr),
            "--retries",
            "1",
        ])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("limit of 100000 entries"), "{stderr}");
    assert!(!out.status.success(), "{out:?}");
}

/// A host name for a loopback server that oci-model does not treat as loopback (so it uses
/// https, as for any remote registry): the IPv4-mapped IPv6 form of 127.0.0.1.
fn as_remote(host: &str) -> String {
    let port = host.rsplit(':').next().unwrap();
    format!("[::ffff:127.0.0.1]:{port}")
}

#[test]
fn nothing_listening_fails_at_once_with_one_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let model = tempfile::tempdir().unwrap();
    for f in ["a.txt", "b.txt", "c.txt", "d.txt"] {
        std::fs::write(model.path().join(f), f).unwrap();
    }
    let started = std::time::Instant::now();
    let out = harness::bin()
        .args([
            "push",
            model.path().to_str().unwrap(),
            &format!("127.0.0.1:{port}/team/m:v1"),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "nothing is listening on 127.0.0.1:{port}; start one with scripts/registry.sh start or docker compose up"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("WARN") && !stderr.contains("attempts"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn https_to_a_plain_http_registry_names_plain_http_and_is_not_retried() {
    let registry = Server::start(|_, _| Answer::new(200));
    let started = std::time::Instant::now();
    let out = harness::bin()
        .args([
            "inspect",
            &format!("{}/team/m:v1", as_remote(&registry.addr)),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("does not speak TLS") && stderr.contains("--plain-http"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("attempts") && !stderr.contains("WARN"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// A CA and a server certificate it issued for 127.0.0.1 (both address forms), made with the
/// `openssl` program.
pub(crate) fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl program (apt package openssl)");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=oci-model test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,IP:::ffff:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn tls_problems_name_the_flag_that_fixes_them() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = tls_files(certs.path());
    let reg = harness::Registry::start_with_config(|yaml| {
        yaml.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ))
    });
    let remote = format!("{}/team/m:v1", as_remote(&reg.host));

    // A private CA: not trusted, not retried; the message names --ca-file and --insecure.
    let started = std::time::Instant::now();
    let out = harness::bin().args(["inspect", &remote]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("is not trusted")
            && stderr.contains("--ca-file PEM")
            && stderr.contains("--insecure"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("attempts") && !stderr.contains("WARN"),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // --ca-file trusts it; --insecure skips the check: both reach the registry.
    for extra in [vec!["--ca-file", ca.to_str().unwrap()], vec!["--insecure"]] {
        let out = harness::bin()
            .args(["inspect", &remote])
            .args(&extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not found"), "{extra:?}: {stderr}");
    }

    // A --ca-file that is not PEM is the user's input error.
    let out = harness::bin()
        .args([
            "inspect",
            &remote,
            "--ca-file",
            key.with_extension("missing").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // Plain http to the TLS registry (a loopback address uses http): named, not retried.
    let out = harness::bin()
        .args(["inspect", &format!("{}/team/m:v1", reg.host)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the registry speaks https") && stderr.contains("--plain-http"),
        "{stderr}"
    );
    assert!(!stderr.contains("attempts"), "{stderr}");
}

#[test]
fn a_trickled_blob_trips_the_minimum_rate() {
    let layout = Layout::with_model();
    let weights = layout.weights_digest();
    let registry = Server::start(move |req, _| {
        if req.uri.ends_with(&format!("/blobs/{weights}")) && req.method == "GET" {
            // Never silent for --timeout, but 0.5 byte/s.
            let bytes = layout.blob(&weights).unwrap();
            return Answer::new(200).trickle(bytes, std::time::Duration::from_secs(2));
        }
        if req.uri == "/v2/" {
            return Answer::new(200);
        }
        layout.answer(req)
    });
    let dest = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let out = harness::bin()
        .args([
            "pull",
            &format!("{}/team/m:v1", registry.addr),
            dest.path().join("m").to_str().unwrap(),
            "--timeout",
            "5",
            "--retries",
            "1",
        ])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr.contains("slower than 1 KiB/s") && stderr.contains("--timeout"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn an_unanswered_manifest_put_fails_within_the_timeout() {
    let registry = Server::start(|req, _| {
        let path = req.uri.split('?').next().unwrap_or("");
        match req.method.as_str() {
            "PUT" if path.contains("/manifests/") => Answer::hang(),
            "POST" if path.ends_with("/blobs/uploads/") => Answer::new(202)
                .header("location", "/v2/team/m/blobs/uploads/1")
                .header("docker-upload-uuid", "1"),
            "PATCH" => Answer::new(202).header("range", "0-0"),
            "PUT" => Answer::new(201),
            _ if req.uri == "/v2/" => Answer::new(200),
            _ => Answer::new(404),
        }
    });
    let model = tempfile::tempdir().unwrap();
    std::fs::write(model.path().join("a.txt"), b"hello").unwrap();
    let started = std::time::Instant::now();
    let out = harness::bin()
        .args([
            "push",
            model.path().to_str().unwrap(),
            &format!("{}/team/m:v1", registry.addr),
            "--timeout",
            "3",
            "--retries",
            "1",
        ])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr.contains("no answer") && stderr.contains("--timeout"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    assert!(
        registry
            .seen()
            .iter()
            .any(|r| r.method == "PUT" && r.uri.contains("/manifests/")),
        "{:?}",
        registry.seen()
    );
}

/// `discover` over a registry whose referrers lists repeat one referrer many times, at every
/// level (it is also listed as its own referrer): each digest is listed and expanded once, so
/// the walk makes a handful of requests instead of 50 + 50² + 50³ + 50⁴.
#[test]
fn discover_visits_each_referrer_once() {
    let layout = Layout::with_model();
    let referrer = format!("sha256:{}", "ab".repeat(32));
    let entry = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "digest": referrer,
        "size": 100,
    });
    let registry = Server::start(move |req, _| {
        if req.uri.contains("/referrers/") {
            return Answer::new(200)
                .header("content-type", "application/vnd.oci.image.index.v1+json")
                .json(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": vec![entry.clone(); 50],
                }));
        }
        if req.uri == "/v2/" {
            return Answer::new(200);
        }
        layout.answer(req)
    });
    let started = std::time::Instant::now();
    let out = harness::bin()
        .args([
            "discover",
            &format!("{}/team/m:v1", registry.addr),
            "-o",
            "json",
        ])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let top = doc["referrers"].as_array().unwrap();
    assert_eq!(top.len(), 1, "{doc}");
    assert_eq!(top[0]["referrers"].as_array().unwrap().len(), 0, "{doc}");
    let listings = registry
        .seen()
        .iter()
        .filter(|r| r.uri.contains("/referrers/"))
        .count();
    assert!(listings <= 3, "{listings} referrers requests");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// A timestamp authority whose answer never ends: signing stops at the 1 MiB cap on a TSA
/// response (the patched `sigstore-tsa` client) with an error naming it, and writes no
/// signature file.
#[test]
fn an_endless_timestamp_answer_is_cut_at_its_cap() {
    let server = Server::start(|_, _| {
        Answer::new(200)
            .header("content-type", "application/timestamp-reply")
            .endless(vec![0u8; 64 << 10])
    });
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("w.bin"), b"weights").unwrap();
    let (key, _) = crate::support::keypair(dir.path(), "signer");
    let sig = dir.path().join("model.sig");
    let out = harness::bin()
        .arg("sign-local")
        .arg(&model)
        .arg("--key")
        .arg(&key)
        .args([
            "--timestamp-server",
            &format!("http://{}/api/v1/timestamp", server.addr),
        ])
        .arg("--signature")
        .arg(&sig)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("TSA response is larger than 1048576 bytes"),
        "{stderr}"
    );
    assert!(!sig.exists());
}

/// `sign-local` of a one-file model in a fresh directory with `args` (the signer options) and
/// `env`; returns the output and the signature path (which must not exist after a refusal).
fn sign_local_with(
    dir: &Path,
    args: &[String],
    env: &[(&str, String)],
) -> (std::process::Output, PathBuf) {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("w.bin"), b"weights").unwrap();
    let sig = dir.join("model.sig");
    let out = harness::bin()
        .arg("sign-local")
        .arg(&model)
        .args(args)
        .arg("--signature")
        .arg(&sig)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    (out, sig)
}

/// Keyless `sign-local` with the fake Sigstore's token and config, Fulcio at `fulcio`:
/// (stderr, whether it succeeded, whether a signature was written, certificates the fake
/// Fulcio issued).
fn keyless_sign_local(
    fulcio: Option<&str>,
    token: bool,
    env: &[(&str, String)],
) -> (String, bool, bool, u64) {
    let fake = crate::fakes::FakeSigstore::start();
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--keyless".to_string(),
        "--signing-config".into(),
        fake.trust_config_path.display().to_string(),
    ];
    if token {
        args.extend([
            "--identity-token".into(),
            fake.token_for_email("signer@example.com"),
        ]);
    }
    if let Some(url) = fulcio {
        args.extend(["--fulcio-url".into(), url.to_string()]);
    }
    let (out, sig) = sign_local_with(dir.path(), &args, env);
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
        sig.exists(),
        fake.shared
            .fulcio
            .issued
            .load(std::sync::atomic::Ordering::SeqCst),
    )
}

/// A Fulcio whose certificate answer never ends: keyless signing stops at the 1 MiB cap on a
/// Fulcio answer (the patched `sigstore-fulcio` client), says so, and writes no signature.
#[test]
fn an_endless_fulcio_answer_is_cut_at_its_cap() {
    let server = Server::start(|_, _| {
        Answer::new(200)
            .header("content-type", "application/json")
            .endless(vec![b' '; 64 << 10])
    });
    let url = format!("http://{}", server.addr);
    let (stderr, ok, written, _) = keyless_sign_local(Some(&url), true, &[]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("answer is larger than 1048576 bytes"),
        "{stderr}"
    );
    assert!(!written);
}

/// A Fulcio refusing with an endless error body: the message keeps only the start of it.
#[test]
fn an_endless_fulcio_error_body_is_cut_for_the_message() {
    let server =
        Server::start(|_, _| Answer::new(500).endless(b"no certificate for you ".to_vec()));
    let url = format!("http://{}", server.addr);
    let (stderr, ok, written, _) = keyless_sign_local(Some(&url), true, &[]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("HTTP 500"), "{stderr}");
    assert!(stderr.contains("no certificate for you"), "{stderr}");
    assert!(stderr.len() < 32 << 10, "{} bytes of stderr", stderr.len());
    assert!(!written);
}

/// A Rekor whose answer to the new entry never ends: `--tlog-upload=true` signing stops at the
/// 8 MiB cap on a Rekor answer (the patched `sigstore-rekor` client) and writes no signature.
#[test]
fn an_endless_rekor_answer_is_cut_at_its_cap() {
    let server = Server::start(|_, _| {
        Answer::new(201)
            .header("content-type", "application/json")
            .endless(vec![b' '; 64 << 10])
    });
    let fake = crate::fakes::FakeSigstore::start();
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = crate::support::keypair(dir.path(), "signer");
    let (out, sig) = sign_local_with(
        dir.path(),
        &[
            "--key".into(),
            key.display().to_string(),
            "--tlog-upload=true".into(),
            "--signing-config".into(),
            fake.trust_config_path.display().to_string(),
            "--rekor-url".into(),
            format!("http://{}", server.addr),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("answer is larger than 8388608 bytes"),
        "{stderr}"
    );
    assert!(!sig.exists());
}

/// GitHub Actions' token endpoint answering without end: keyless signing stops at the 1 MiB
/// cap on an identity provider's answer and names the endpoint; nothing reaches Fulcio.
#[test]
fn an_endless_ci_token_answer_is_cut_at_its_cap() {
    let server = Server::start(|_, _| {
        Answer::new(200)
            .header("content-type", "application/json")
            .endless(vec![b' '; 64 << 10])
    });
    let env = [
        (
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            format!("http://{}/token", server.addr),
        ),
        (
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            "request-token".to_string(),
        ),
    ];
    let (stderr, ok, written, issued) = keyless_sign_local(None, false, &env);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("is larger than 1048576 bytes") && stderr.contains(&server.addr),
        "{stderr}"
    );
    assert!(!written);
    assert_eq!(issued, 0);
}
