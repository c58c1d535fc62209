//! Errors of the MySQL crate, classified so callers know whom to blame.

use crate::auth::AuthError;
use crate::codec::packets::ErrInfo;
use crate::codec::CodecError;
use maitred_frontend::LinkError;
use thiserror::Error;

/// Why a server connection could not be opened or used.
#[derive(Debug, Error)]
pub enum BackendError {
    /// Connecting, I/O, the server closing, a timeout: the same for every protocol.
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("server refused: {0}")]
    Server(ErrInfo),
    #[error("server protocol violation: {0}")]
    Protocol(#[from] CodecError),
    #[error("server asks for the {0} authentication plugin, which maitred does not support")]
    UnsupportedAuth(String),
    #[error("server asks for a password but the upstream URL has none")]
    NoPassword,
    #[error("could not encrypt the password with the server's RSA public key")]
    Rsa,
    #[error("the server {addr} asks for caching_sha2_password full authentication over plain TCP; maitred does not ask the server for its RSA public key there (anyone in the path could hand over their own key and learn the password). Use TLS to the server (ssl-mode=REQUIRED, VERIFY_CA or VERIFY_IDENTITY in the upstream URL), the server's Unix socket (socket=/path/mysqld.sock), or give maitred the server's public key (server-public-key-path=/path/public_key.pem in the upstream URL)")]
    InsecureFullAuth { addr: String },
    #[error("TLS with the server failed: {0}")]
    Tls(std::io::Error),
    #[error("the server does not offer TLS and the upstream URL has ssl-mode={0}")]
    TlsRefused(&'static str),
}

impl From<std::io::Error> for BackendError {
    fn from(e: std::io::Error) -> Self {
        BackendError::Link(LinkError::Io(e))
    }
}

maitred_frontend::session_error!(CodecError, AuthError, BackendError);
