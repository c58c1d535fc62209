//! Errors of the PostgreSQL crate, classified so callers know whom to blame.

use crate::auth::AuthError;
use crate::codec::CodecError;
use maitred_frontend::LinkError;
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
    /// Connecting, I/O, the server closing, a timeout: the same for every protocol.
    #[error(transparent)]
    Link(#[from] LinkError),
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
}

impl From<std::io::Error> for BackendError {
    fn from(e: std::io::Error) -> Self {
        BackendError::Link(LinkError::Io(e))
    }
}

maitred_frontend::session_error!(CodecError, AuthError, BackendError);
