//! Errors of the MongoDB crate, classified by whom to blame.

use crate::auth::AuthError;
use crate::codec::CodecError;
use maitred_frontend::LinkError;
use thiserror::Error;

/// Why a server connection could not be opened or used.
#[derive(Debug, Error)]
pub enum BackendError {
    /// Connecting, I/O, the server closing: the same for every protocol.
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
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

impl From<std::io::Error> for BackendError {
    fn from(e: std::io::Error) -> Self {
        BackendError::Link(LinkError::Io(e))
    }
}

// A MongoDB session ends on no authentication error: a failed login is answered, and the
// client may try again.
maitred_frontend::session_error!(CodecError, BackendError);
