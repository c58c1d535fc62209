//! TLS pieces shared by maitred's protocol crates, with rustls: a socket with or without TLS
//! ([`Stream`]), the client-facing acceptor ([`ClientTls`]), the server-facing connector
//! with its certificate verification ([`TlsConnect`]), and the checks on certificate and
//! key files. How a protocol asks for TLS (PostgreSQL's SSLRequest and `sslmode`, MongoDB's
//! TLS from the first byte and `tls=true`) stays in its own crate.
#![forbid(unsafe_code)]

mod files;
mod stream;
mod verify;

pub use files::check_key_permissions;
pub use stream::{starts_with_tls_handshake, Stream};

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{PrivateKeyDer, ServerName};
use rustls::RootCertStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {what} from {path}: {reason}")]
    File {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    /// A protocol's TLS option is invalid or incomplete (the message names it).
    #[error("{0}")]
    Setting(String),
    #[error("invalid server name for TLS: {0}")]
    ServerName(String),
    #[error(
        "private key file {path} is readable by other users (mode {mode:04o}); \
         run `chmod 600 {path}` (a key owned by root may also be 0640, readable by its group)"
    )]
    KeyPermissions { path: String, mode: u32 },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client side of maitred's listeners: certificate, key, and whether TLS is required.
#[derive(Clone)]
pub struct ClientTls {
    pub acceptor: TlsAcceptor,
    pub required: bool,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("required", &self.required)
            .finish()
    }
}

impl ClientTls {
    /// Loads a PEM certificate chain and private key. The key is never shown in errors.
    pub fn load(cert: &Path, key: &Path, required: bool) -> Result<ClientTls, TlsError> {
        check_key_permissions(key)?;
        let chain = files::read_certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
            what: "private key",
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        Ok(ClientTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            required,
        })
    }

    /// The TLS handshake with a client.
    pub async fn accept(&self, tcp: TcpStream) -> std::io::Result<Stream> {
        Ok(Stream::FromClient(Box::new(
            self.acceptor.accept(tcp).await?,
        )))
    }
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Encryption only: any certificate is accepted (libpq's `require`, MongoDB's
    /// `tlsInsecure` / `tlsAllowInvalidCertificates`).
    None,
    /// The chain must lead to this CA bundle; the host name is not checked (`verify-ca`,
    /// `tlsAllowInvalidHostnames`).
    Chain(PathBuf),
    /// Chain and host name (`verify-full`, MongoDB's default with `tlsCAFile`).
    Full(PathBuf),
}

/// TLS towards a server: a rustls client for one host name.
#[derive(Clone)]
pub struct TlsConnect {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConnect")
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsConnect {
    pub fn new(verification: &Verification, host: &str) -> Result<TlsConnect, TlsError> {
        let verifier: Arc<dyn ServerCertVerifier> = match verification {
            Verification::None => Arc::new(verify::NoVerification(provider())),
            Verification::Chain(ca) | Verification::Full(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in files::read_certs(ca)? {
                    roots.add(cert)?;
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| rustls::Error::General(e.to_string()))?;
                if matches!(verification, Verification::Chain(_)) {
                    Arc::new(verify::ChainOnly(webpki))
                } else {
                    webpki
                }
            }
        };
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| TlsError::ServerName(host.to_owned()))?;
        Ok(TlsConnect {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }

    /// The TLS handshake with the server over `tcp`.
    pub async fn connect(&self, tcp: TcpStream) -> std::io::Result<Stream> {
        Ok(Stream::ToServer(Box::new(
            self.connector
                .connect(self.server_name.clone(), tcp)
                .await?,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_name_the_path() {
        let e = ClientTls::load(
            Path::new("/nonexistent/cert.pem"),
            Path::new("/nonexistent/key.pem"),
            false,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("/nonexistent/cert.pem"), "{e}");
        let e = TlsConnect::new(&Verification::Full("/nonexistent/ca.pem".into()), "db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        assert!(TlsConnect::new(&Verification::None, "db").is_ok());
        assert!(TlsConnect::new(&Verification::None, "not a host name!").is_err());
    }
}
