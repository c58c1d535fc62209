//! TLS on both sides, with rustls (the shared pieces are in `maitred-tls`).
//!
//! - Clients: an SSLRequest is answered 'S' and the connection upgraded when the listener has
//!   a certificate; a listener can require TLS.
//! - Servers: like libpq's `sslmode`: disable, prefer (TLS if the server agrees, no
//!   verification), require (TLS, no verification), verify-ca (chain checked against the
//!   CA bundle), verify-full (chain and host name).
//!
//! Spec: <https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.7.12>.

pub use maitred_tls::{check_key_permissions, ClientTls, Stream, TlsError};
use maitred_tls::{TlsConnect, Verification};
use std::io;
use std::path::Path;
use tokio::net::TcpStream;

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
            other => {
                return Err(TlsError::Setting(format!(
                    "unknown sslmode \"{other}\" (expected disable, prefer, require, verify-ca or verify-full)"
                )))
            }
        })
    }

    /// Whether a server without TLS is refused.
    pub fn requires_tls(self) -> bool {
        !matches!(self, SslMode::Disable | SslMode::Prefer)
    }
}

/// How maitred talks TLS to a pool's server.
#[derive(Clone)]
pub struct ServerTls {
    pub mode: SslMode,
    connector: Option<TlsConnect>,
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
        }
    }

    /// Builds the TLS client for `sslmode` / `sslrootcert` and the server's host name.
    pub fn new(mode: SslMode, root_cert: Option<&Path>, host: &str) -> Result<ServerTls, TlsError> {
        let bundle = |name: &str| {
            root_cert.map(Path::to_path_buf).ok_or_else(|| {
                TlsError::Setting(format!("sslmode {name} needs sslrootcert (a CA bundle)"))
            })
        };
        let verification = match mode {
            SslMode::Disable => return Ok(ServerTls::disabled()),
            SslMode::Prefer | SslMode::Require => Verification::None,
            SslMode::VerifyCa => Verification::Chain(bundle("verify-ca")?),
            SslMode::VerifyFull => Verification::Full(bundle("verify-full")?),
        };
        Ok(ServerTls {
            mode,
            connector: Some(TlsConnect::new(&verification, host)?),
        })
    }

    /// Performs the TLS handshake over a connection whose SSLRequest the server accepted.
    pub async fn connect(&self, tcp: TcpStream) -> io::Result<Stream> {
        match &self.connector {
            Some(c) => c.connect(tcp).await,
            None => Ok(Stream::Plain(tcp)),
        }
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
        let e = ServerTls::new(SslMode::VerifyCa, None, "db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("verify-ca needs sslrootcert"), "{e}");
        assert!(ServerTls::new(SslMode::Require, None, "db").is_ok());
    }
}
