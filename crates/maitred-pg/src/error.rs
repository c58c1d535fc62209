//! Errors of the PostgreSQL crate, classified so callers know whom to blame.

use crate::auth::AuthError;
use crate::codec::CodecError;
use thiserror::Error;

/// An ErrorResponse the server sent, kept to show the client why (never contains secrets:
/// PostgreSQL does not echo passwords).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ServerErrorFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)
    }
}

/// Why a server connection could not be opened or used.
#[derive(Debug, Error)]
pub enum BackendError {
    #[error("could not connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("server connection I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("server closed the connection")]
    Closed,
    #[error("server refused: {0}")]
    Server(ServerErrorFields),
    #[error("server protocol violation: {0}")]
    Protocol(#[from] CodecError),
    #[error("server sent an unexpected message during {0}")]
    Unexpected(&'static str),
    #[error("server asks for {0} authentication, which maitred does not support")]
    UnsupportedAuth(&'static str),
    #[error("server asks for a password but the upstream URL has none")]
    NoPassword,
    #[error("server asks for {asked}, but maitred can log this user in only with {have} (what the auth_query secret allows)")]
    PassthroughMismatch {
        asked: &'static str,
        have: &'static str,
    },
    #[error("server authentication failed: {0}")]
    Scram(std::io::Error),
    #[error("TLS handshake with the server failed: {0}")]
    Tls(std::io::Error),
    #[error("the server does not accept TLS, and sslmode requires it")]
    TlsRefused,
    #[error("the upstream is a Unix socket, which has no TLS, and the TLS settings demand it (or did not load)")]
    TlsOverSocket,
    #[error("server did not finish {what} within {secs}s")]
    Timeout { what: &'static str, secs: u64 },
}

/// Why a client session ended abnormally.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("client I/O error: {0}")]
    ClientIo(std::io::Error),
    #[error("client protocol violation: {0}")]
    ClientProtocol(#[from] CodecError),
    #[error("client authentication failed: {0}")]
    Auth(#[from] AuthError),
    #[error("client did not log in within {0}s")]
    LoginTimeout(u64),
    #[error(transparent)]
    Backend(#[from] BackendError),
}
