//! TLS of the server, with rustls: the certificate and key come from PEM files and are reloaded
//! when the files change or on SIGHUP, without a restart; with a client CA, callers may present
//! certificates it signed (mutual TLS).
//!
//! Certificates expire and are renewed by tools that rewrite the files (cert-manager,
//! certbot); a server that read them once would need a restart for each renewal. The server's
//! rustls configuration therefore asks [`ReloadingCertificate`] for the certificate at every
//! handshake, and a task swaps in the new one when the files change. A reload that fails (a
//! half-written pair, a key that does not match) keeps the certificate in use, with a warning.
//!
//! Client certificates are optional at the TLS level: a certificate that is presented must
//! chain to the client CA, but a caller may present none, so that load balancers without one
//! can still ask `grpc.health.v1`. The public services then refuse such callers themselves
//! ([`ClientCertificate`]); docs/architecture.md has the reasoning.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use futures::Stream;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::error::{Error, Reason};

/// How long a client may take to complete its handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server's certificate comes from, and whom it asks for client certificates.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The PEM certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// The PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The PEM certificates of the CA that signs client certificates: mutual TLS when given.
    pub client_ca: Option<PathBuf>,
    /// How often the files are checked for changes (SIGHUP reloads at once).
    pub reload_interval: Duration,
}

impl TlsSettings {
    /// Serve `cert` and `key`, checking them for changes every five seconds.
    pub fn new(cert: PathBuf, key: PathBuf, client_ca: Option<PathBuf>) -> Self {
        Self {
            cert,
            key,
            client_ca,
            reload_interval: Duration::from_secs(5),
        }
    }
}

/// The crypto of every TLS connection: rustls's `ring` provider, as sqlx uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the PEM certificates in `path`: at least one.
pub fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    parse_certificates(&read_pem(path)?, path)
}

/// Reads the PEM file at `path`, for checking with [`parse_certificates`] or
/// [`parse_private_key`] and handing on as it is.
pub fn read_pem(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The certificates of `pem`, read from `path`: at least one.
pub fn parse_certificates(pem: &[u8], path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not a valid PEM file", path.display()))?;
    anyhow::ensure!(
        !certificates.is_empty(),
        "{} holds no PEM certificate",
        path.display()
    );
    Ok(certificates)
}

/// The private key of `pem`, read from `path`.
pub fn parse_private_key(pem: &[u8], path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem)
        .with_context(|| format!("{} holds no valid PEM private key", path.display()))
}

/// Reads the certificate chain and key of `settings` and checks they belong together.
fn load_certified_key(settings: &TlsSettings) -> anyhow::Result<CertifiedKey> {
    let chain = read_certificates(&settings.cert)?;
    let key = parse_private_key(&read_pem(&settings.key)?, &settings.key)?;
    CertifiedKey::from_der(chain, key, &provider()).with_context(|| {
        format!(
            "the key {} does not go with the certificate {}",
            settings.key.display(),
            settings.cert.display()
        )
    })
}

/// The certificate handshakes use: the one last loaded successfully.
#[derive(Debug)]
struct ReloadingCertificate {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCertificate {
    fn set(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// The server's TLS: the handshake configuration and the certificate it serves.
#[derive(Clone, Debug)]
pub struct Tls {
    config: Arc<ServerConfig>,
    certificate: Arc<ReloadingCertificate>,
    settings: TlsSettings,
}

impl Tls {
    /// Loads the certificate, key and client CA of `settings`; any file that cannot be read or
    /// parsed is an error naming it.
    pub fn load(settings: TlsSettings) -> anyhow::Result<Self> {
        let certificate = Arc::new(ReloadingCertificate {
            current: RwLock::new(Arc::new(load_certified_key(&settings)?)),
        });
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match &settings.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = RootCertStore::empty();
                for certificate in read_certificates(path)? {
                    roots.add(certificate).with_context(|| {
                        format!("{} holds a certificate that is not a CA's", path.display())
                    })?;
                }
                // Optional at the TLS level: see the module's documentation.
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                        .allow_unauthenticated()
                        .build()
                        .with_context(|| format!("the client CA {}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(certificate.clone());
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            certificate,
            settings,
        })
    }

    /// Whether callers of the public services must present a client certificate.
    pub fn requires_client_certificates(&self) -> bool {
        self.settings.client_ca.is_some()
    }

    /// The TLS connections `listener` accepts, with Nagle's algorithm off (see
    /// `server::incoming`). Each handshake runs in a task of its own, bounded by
    /// [`HANDSHAKE_TIMEOUT`], so a slow or silent client never holds up the next one; a failed
    /// handshake closes that connection only. Accepting stops when the stream is dropped.
    pub fn incoming(
        &self,
        listener: TcpListener,
    ) -> impl Stream<Item = io::Result<TlsStream<TcpStream>>> + use<> {
        let (ready, connections) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.clone());
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    () = ready.closed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            // Out of file descriptors, most likely: give it a moment.
                            tracing::warn!(%error, "cannot accept a connection");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
                }
                let (acceptor, ready) = (acceptor.clone(), ready.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = ready.send(stream).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        futures::stream::unfold(connections, |mut connections| async move {
            let stream = connections.recv().await?;
            Some((Ok(stream), connections))
        })
    }

    /// Reloads the certificate and key on SIGHUP, and when either file's modification time
    /// changes. Runs until aborted.
    pub async fn reload_on_change(self) {
        let mut hangup = Hangup::listen();
        let mut seen = self.modified();
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.settings.reload_interval) => {
                    let now = self.modified();
                    if now == seen {
                        continue;
                    }
                    seen = now;
                }
                () = hangup.next() => seen = self.modified(),
            }
            self.reload();
        }
    }

    /// Loads the files again and serves what they hold from the next handshake on; keeps the
    /// certificate in use when they cannot be loaded.
    fn reload(&self) {
        match load_certified_key(&self.settings) {
            Ok(key) => {
                self.certificate.set(key);
                tracing::info!(cert = %self.settings.cert.display(), "TLS certificate reloaded");
            }
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "cannot reload the TLS certificate: serving the previous one"
            ),
        }
    }

    /// The modification times of the certificate and key files, when they can be read.
    fn modified(&self) -> [Option<SystemTime>; 2] {
        [&self.settings.cert, &self.settings.key]
            .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
    }
}

/// SIGHUP, the signal that asks a daemon to read its files again.
#[cfg(unix)]
struct Hangup(Option<tokio::signal::unix::Signal>);

#[cfg(unix)]
impl Hangup {
    fn listen() -> Self {
        let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        Self(
            signal
                .inspect_err(|error| tracing::warn!(%error, "cannot listen for SIGHUP"))
                .ok(),
        )
    }

    /// Completes at the next SIGHUP.
    async fn next(&mut self) {
        if let Some(signal) = &mut self.0
            && signal.recv().await.is_some()
        {
            return;
        }
        std::future::pending().await
    }
}

/// No SIGHUP where there are no signals.
#[cfg(not(unix))]
struct Hangup;

#[cfg(not(unix))]
impl Hangup {
    fn listen() -> Self {
        Self
    }

    async fn next(&mut self) {
        std::future::pending().await
    }
}

/// Refuses callers of a public service that presented no client certificate, when mutual TLS
/// is on (a certificate that was presented has been verified by the handshake already).
#[derive(Clone, Copy, Debug)]
pub struct ClientCertificate {
    required: bool,
}

impl ClientCertificate {
    /// Requires a client certificate when `required`, and lets every call through otherwise.
    pub fn required(required: bool) -> Self {
        Self { required }
    }

    /// Whether calls without a client certificate are refused.
    pub fn is_required(&self) -> bool {
        self.required
    }
}

impl Interceptor for ClientCertificate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if !self.required || request.peer_certs().is_some_and(|certs| !certs.is_empty()) {
            return Ok(request);
        }
        Err(Error::new(
            Reason::ClientCertificateRequired,
            "this service requires a client certificate signed by its client CA (mutual TLS)",
        )
        .into())
    }
}
