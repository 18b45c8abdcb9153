//! The webhook's HTTPS server: rustls with the serving certificate and key read from files and
//! read again whenever they change (a renewed cert-manager secret, a rotated mount), the policy
//! file likewise ([`super::verifier::Verifier::reload_policy_if_changed`]), and the routes
//! `POST /validate`, `POST /mutate`, `GET /healthz`, `GET /readyz`, `GET /metrics`.

use super::metrics::Endpoint;
use super::review::MAX_REVIEW_BYTES;
use super::watch::{stamp, Stamp};
use super::{Admission, Answer};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;

/// How often the certificate, key and policy files are looked at for a change.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body must arrive within this.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("TLS {what} {file}: {reason}")]
    Tls {
        what: &'static str,
        file: String,
        reason: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificate chain and key files, read into a rustls key (key and certificate must
/// match).
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, ServerError> {
    let err = |what, file: &Path, reason: String| ServerError::Tls {
        what,
        file: file.display().to_string(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err("certificate", cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(err("certificate", cert, "no PEM certificate in it".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| err("key", key, e.to_string()))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        err(
            "key",
            key,
            format!("does not fit the certificate {}: {e}", cert.display()),
        )
    })
}

/// The serving certificate, replaced when its files change.
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    seen: Mutex<Stamp>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

impl ReloadingCert {
    /// Read the files now (an error names the file).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, ServerError> {
        let provider = provider();
        let seen = stamp(&[cert, key]);
        let current = load(cert, key, &provider)?;
        Ok(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(current)),
            seen: Mutex::new(seen),
        })
    }

    /// Read the files again if they changed; a pair that does not load (half written, key and
    /// certificate not matching yet) keeps the one in use. True when replaced.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&[&self.cert, &self.key]);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match load(&self.cert, &self.key, &self.provider) {
            Ok(k) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(k);
                tracing::info!(cert = %self.cert.display(), "serving certificate reloaded");
                true
            }
            Err(e) => {
                tracing::warn!("keeping the current serving certificate: {e}");
                false
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// TLS connections whose handshake finished, handed to axum one by one (handshakes run in
/// their own tasks, so a slow client holds up nobody).
struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// A bound server, ready to [`Server::run`].
pub struct Server {
    listener: TcpListener,
    cert: Arc<ReloadingCert>,
    admission: Arc<Admission>,
}

impl Server {
    /// Load the certificate and bind `addr` (port 0 picks a free port).
    pub async fn bind(
        addr: SocketAddr,
        cert: &Path,
        key: &Path,
        admission: Admission,
    ) -> Result<Self, ServerError> {
        let cert = Arc::new(ReloadingCert::load(cert, key)?);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Listen { addr, source })?;
        Ok(Server {
            listener,
            cert,
            admission: Arc::new(admission),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until the future is dropped.
    pub async fn run(self) -> std::io::Result<()> {
        let local = self.listener.local_addr()?;
        let mut config = ServerConfig::builder_with_provider(self.cert.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_cert_resolver(self.cert.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let reload = {
            let cert = self.cert.clone();
            let admission = self.admission.clone();
            async move {
                let mut tick = tokio::time::interval(RELOAD_INTERVAL);
                loop {
                    tick.tick().await;
                    let (cert, admission) = (cert.clone(), admission.clone());
                    let _ = tokio::task::spawn_blocking(move || {
                        cert.reload_if_changed();
                        admission.reload_policy_if_changed();
                    })
                    .await;
                }
            }
        };
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let listener = self.listener;
        let accept = async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, then go on.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        };
        let app = router(self.admission);
        let serve = axum::serve(TlsListener { rx, local }, app);
        tokio::select! {
            r = serve => r,
            _ = accept => Ok(()),
            _ = reload => Ok(()),
        }
    }
}

/// The routes over an [`Admission`].
pub fn router(admission: Arc<Admission>) -> Router {
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .with_state(admission)
}

async fn validate(State(a): State<Arc<Admission>>, body: Body) -> Response {
    review(a, Endpoint::Validate, body).await
}

async fn mutate(State(a): State<Arc<Admission>>, body: Body) -> Response {
    review(a, Endpoint::Mutate, body).await
}

async fn review(a: Arc<Admission>, endpoint: Endpoint, body: Body) -> Response {
    let bytes = match tokio::time::timeout(
        BODY_TIMEOUT,
        axum::body::to_bytes(body, MAX_REVIEW_BYTES),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let mut cause: Option<&dyn std::error::Error> = Some(&e);
            let mut over_limit = false;
            while let Some(c) = cause {
                over_limit |= c.to_string().contains("length limit exceeded");
                cause = c.source();
            }
            if over_limit {
                return respond(a.oversized());
            }
            a.metrics().invalid();
            return respond(Answer::text(
                400,
                format!("the request body could not be read: {e}"),
            ));
        }
        Err(_) => {
            a.metrics().invalid();
            return respond(Answer::text(
                408,
                format!(
                    "the request body did not arrive within {} s",
                    BODY_TIMEOUT.as_secs()
                ),
            ));
        }
    };
    respond(a.review(endpoint, &bytes).await)
}

async fn metrics(State(a): State<Arc<Admission>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        a.metrics().render(),
    )
        .into_response()
}

fn respond(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, answer.content_type)],
        answer.body,
    )
        .into_response()
}
