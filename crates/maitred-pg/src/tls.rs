//! TLS on both sides, with rustls.
//!
//! - Clients: an SSLRequest is answered 'S' and the connection upgraded when the listener has
//!   a certificate; a listener can require TLS.
//! - Servers: like libpq's `sslmode`: disable, prefer (TLS if the server agrees, no
//!   verification), require (TLS, no verification), verify-ca (chain checked against the
//!   CA bundle), verify-full (chain and host name).
//!
//! Spec: <https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.7.12>.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    #[error(
        "unknown sslmode \"{0}\" (expected disable, prefer, require, verify-ca or verify-full)"
    )]
    UnknownMode(String),
    #[error("sslmode {0} needs sslrootcert (a CA bundle)")]
    NoRootCert(&'static str),
    #[error("invalid server name for TLS: {0}")]
    ServerName(String),
    #[error(
        "private key file {path} is readable by other users (mode {mode:04o}); \
         run `chmod 600 {path}` (a key owned by root may also be 0640, readable by its group)"
    )]
    KeyPermissions { path: String, mode: u32 },
}

/// A socket, with or without TLS.
pub enum Stream {
    Plain(TcpStream),
    ToServer(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    FromClient(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::ToServer(s) => s.get_ref().0,
            Stream::FromClient(s) => s.get_ref().0,
        }
    }

    pub fn is_tls(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_tls() {
            "Stream(TLS)"
        } else {
            "Stream(plain)"
        })
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::ToServer(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::FromClient(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::ToServer(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::FromClient(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::ToServer(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::FromClient(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::ToServer(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::FromClient(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bad = |reason: String| TlsError::File {
        what: "certificates",
        path: path.display().to_string(),
        reason,
    };
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect();
    let certs = certs.map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate found".to_owned()));
    }
    Ok(certs)
}

/// Refuses a private key file that other users may read, as PostgreSQL does for its own
/// `ssl_key_file`: no group or other permission bits, except that a key owned by root may
/// be readable by its group (mode 0640), for keys managed by root and shared with a service
/// group. Symlinks are followed (the mode of the file itself counts). A file that cannot be
/// inspected is left to the read that follows, which names it.
pub fn check_key_permissions(path: &Path) -> Result<(), TlsError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = meta.mode() & 0o7777;
    let allowed_extra = if meta.uid() == 0 { 0o040 } else { 0 };
    if mode & 0o077 & !allowed_extra != 0 {
        return Err(TlsError::KeyPermissions {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
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
        let chain = read_certs(cert)?;
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
}

/// libpq's sslmode values that maitred supports towards the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(s: &str) -> Result<SslMode, TlsError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" | "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(TlsError::UnknownMode(other.to_owned())),
        })
    }
}

/// How maitred talks TLS to a pool's server.
#[derive(Clone)]
pub struct ServerTls {
    pub mode: SslMode,
    connector: Option<TlsConnector>,
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("mode", &self.mode)
            .finish()
    }
}

impl ServerTls {
    pub fn disabled() -> ServerTls {
        ServerTls {
            mode: SslMode::Disable,
            connector: None,
            server_name: None,
        }
    }

    /// Builds the TLS client for `sslmode` / `sslrootcert` and the server's host name.
    pub fn new(mode: SslMode, root_cert: Option<&Path>, host: &str) -> Result<ServerTls, TlsError> {
        if mode == SslMode::Disable {
            return Ok(ServerTls::disabled());
        }
        let verifier: Arc<dyn ServerCertVerifier> = match mode {
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let name = if mode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                };
                let path = root_cert.ok_or(TlsError::NoRootCert(name))?;
                let mut roots = RootCertStore::empty();
                for cert in read_certs(path)? {
                    roots.add(cert)?;
                }
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .map_err(|e| rustls::Error::General(e.to_string()))?;
                if mode == SslMode::VerifyCa {
                    Arc::new(ChainOnly(webpki))
                } else {
                    webpki
                }
            }
            _ => Arc::new(NoVerification(provider())),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| TlsError::ServerName(host.to_owned()))?;
        Ok(ServerTls {
            mode,
            connector: Some(TlsConnector::from(Arc::new(config))),
            server_name: Some(server_name),
        })
    }

    /// Performs the TLS handshake over a connection whose SSLRequest the server accepted.
    pub async fn connect(&self, tcp: TcpStream) -> io::Result<Stream> {
        match (&self.connector, &self.server_name) {
            (Some(c), Some(name)) => Ok(Stream::ToServer(Box::new(
                c.connect(name.clone(), tcp).await?,
            ))),
            _ => Ok(Stream::Plain(tcp)),
        }
    }
}

/// sslmode require/prefer: encryption without authentication of the server, as in libpq.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// sslmode verify-ca: the chain must lead to the CA bundle; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmodes_parse_and_verification_needs_a_bundle() {
        assert_eq!(
            SslMode::parse("verify-full").ok(),
            Some(SslMode::VerifyFull)
        );
        assert!(SslMode::parse("bogus").is_err());
        assert!(matches!(
            ServerTls::new(SslMode::VerifyCa, None, "db"),
            Err(TlsError::NoRootCert("verify-ca"))
        ));
        assert!(ServerTls::new(SslMode::Require, None, "db").is_ok());
    }

    #[test]
    fn key_files_readable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("maitred-key-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let key = dir.join("server.key");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n").expect("write");
        let set = |mode: u32| {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        let owned_by_root = std::fs::metadata(&key).map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        });
        for mode in [0o600, 0o400] {
            set(mode);
            assert!(check_key_permissions(&key).is_ok(), "{mode:o}");
        }
        for mode in [0o644, 0o604, 0o660, 0o666] {
            set(mode);
            let e = check_key_permissions(&key)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(&key.display().to_string()), "{e}");
            assert!(e.contains("chmod 600"), "{e}");
            assert!(!e.contains("not-a-real-key"), "{e}");
        }
        // 0640: only for a root-owned key.
        set(0o640);
        assert_eq!(
            check_key_permissions(&key).is_ok(),
            owned_by_root.unwrap_or(false)
        );
        // ClientTls::load refuses it before reading anything.
        set(0o644);
        let e = ClientTls::load(&key, &key, false)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("chmod 600"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

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
    }
}
