//! Serving over TLS: a rustls `ServerConfig` built from `tls_server_config`, and an axum
//! [`Listener`] that completes handshakes before handing connections to the server.
//!
//! Handshakes run in their own tasks (with a timeout), so a client that stalls mid-handshake
//! never holds up the accept loop. Each handshake builds its `ServerConfig` from the file as
//! it is then, which is how certificates rotate without a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::version::{TLS12, TLS13};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::{ClientAuth, TlsSettings, TlsVersion, WebSecurity};
use crate::config::Issue;

/// Longest a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections handshaken but not yet taken by the server.
const BACKLOG: usize = 64;

/// Most handshakes in progress at once; connections beyond are closed at once, so a flood of
/// idle connections costs a bounded number of tasks and file reads.
const MAX_HANDSHAKES: usize = 256;

/// A rustls server configuration for `tls`, reading its files now. Blocking.
///
/// # Errors
/// An [`Issue`] naming the key whose file cannot be read, holds no usable PEM, or (for the
/// key) does not belong to the certificate.
pub fn server_config(tls: &TlsSettings) -> Result<rustls::ServerConfig, Issue> {
    const KEY: &str = "tls_server_config";
    let certs = read_certs(&tls.cert_file, "cert_file")?;
    let key_bytes = read(&tls.key_file, "key_file")?;
    let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
        Issue::new(
            format!("{KEY}.key_file"),
            format!(
                "{}: no usable private key in PEM ({e})",
                tls.key_file.display()
            ),
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(TlsVersion::Tls12, &TLS12), (TlsVersion::Tls13, &TLS13)]
            .into_iter()
            .filter(|(v, _)| (tls.min_version..=tls.max_version).contains(v))
            .map(|(_, p)| p)
            .collect();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| Issue::new(format!("{KEY}.min_version"), e.to_string()))?;
    let builder = match tls.client_auth {
        ClientAuth::NoClientCert => builder.with_no_client_auth(),
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            let ca_file = tls
                .client_ca_file
                .as_deref()
                .expect("validated: client_ca_file is set when client certificates are verified");
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca_file, "client_ca_file")? {
                roots.add(cert).map_err(|e| {
                    Issue::new(
                        format!("{KEY}.client_ca_file"),
                        format!("{}: not a usable CA certificate ({e})", ca_file.display()),
                    )
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if tls.client_auth == ClientAuth::VerifyClientCertIfGiven {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| {
                Issue::new(
                    format!("{KEY}.client_ca_file"),
                    format!("{}: {e}", ca_file.display()),
                )
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        let reason = match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "{}: this key does not belong to the certificate of cert_file",
                tls.key_file.display()
            ),
            e => format!("{}: {e}", tls.key_file.display()),
        };
        Issue::new(format!("{KEY}.key_file"), reason)
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, Issue> {
    std::fs::read(path).map_err(|e| {
        Issue::new(
            format!("tls_server_config.{key}"),
            format!("cannot read {}: {e}", path.display()),
        )
    })
}

fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, Issue> {
    let bytes = read(path, key)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Issue::new(
                format!("tls_server_config.{key}"),
                format!("{}: not valid PEM ({e})", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(Issue::new(
            format!("tls_server_config.{key}"),
            format!("{}: no CERTIFICATE in PEM", path.display()),
        ));
    }
    Ok(certs)
}

/// A TCP listener whose connections come out TLS-established.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Starts accepting on `listener`; every handshake reads the web-config file of `web`
    /// again.
    ///
    /// # Errors
    /// The listener's address cannot be read.
    pub fn new(listener: TcpListener, web: Arc<WebSecurity>) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(BACKLOG);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let acceptor = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: pause rather than spin.
                        tracing::warn!(error = %e, "Accepting a connection failed.");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "Too many TLS handshakes in progress: closing the connection.");
                    continue;
                };
                let tx = tx.clone();
                let web = web.clone();
                tokio::spawn(async move {
                    let established = handshake(tcp, peer, web).await;
                    drop(slot);
                    if let Some(tls) = established {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener {
            ready,
            local,
            acceptor,
        })
    }
}

async fn handshake(
    tcp: TcpStream,
    peer: SocketAddr,
    web: Arc<WebSecurity>,
) -> Option<TlsStream<TcpStream>> {
    let config = tokio::task::spawn_blocking(move || {
        let file = web.path().display().to_string();
        let current = web.current()?;
        let Some(tls) = current.tls else {
            return Err(crate::config::ConfigError::Invalid {
                file,
                key: "tls_server_config".to_string(),
                reason: "was removed while serving TLS; restart lagwatch to serve plain HTTP"
                    .to_string(),
            });
        };
        server_config(&tls).map_err(|issue| crate::config::ConfigError::Invalid {
            file,
            key: issue.key,
            reason: issue.reason,
        })
    })
    .await;
    let config = match config {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "The web config is invalid now: refusing TLS connections until it is fixed.");
            return None;
        }
        Err(e) => {
            tracing::error!(error = %e, "Reading the web config failed.");
            return None;
        }
    };
    let accept = TlsAcceptor::from(Arc::new(config)).accept(tcp);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed.");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out.");
            None
        }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
