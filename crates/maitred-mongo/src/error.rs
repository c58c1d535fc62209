//! Errors of the MongoDB crate, classified by whom to blame.

use crate::auth::AuthError;
use crate::codec::CodecError;
use thiserror::Error;

/// Why a server connection could not be opened or used.
#[derive(Debug, Error)]
pub enum BackendError {
    #[error("could not connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
    #[error("server connection I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("server closed the connection")]
    Closed,
    #[error("server protocol violation: {0}")]
    Protocol(#[from] CodecError),
    #[error("server refused {command}: {message}")]
    Command {
        command: &'static str,
        message: String,
    },
    #[error("server authentication failed: {0}")]
    Auth(#[from] AuthError),
    #[error("server connection was left in an unknown state")]
    Dirty,
}

/// Why a client session ended abnormally.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("client I/O error: {0}")]
    ClientIo(std::io::Error),
    #[error("client protocol violation: {0}")]
    ClientProtocol(#[from] CodecError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}
