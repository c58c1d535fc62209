//! The errors every protocol's sessions and server connections share: how a link to a
//! server fails below the protocol ([`LinkError`]), and why a client session ends
//! ([`SessionError`], generic over what each protocol adds).

use std::time::Duration;
use thiserror::Error;

/// Why a connection to a server failed, in ways no protocol adds to: each protocol's
/// server error carries it (`#[error(transparent)]`), so the texts are the same for all.
#[derive(Debug, Error)]
pub enum LinkError {
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
    #[error("the upstream is a Unix socket, which has no TLS, and the TLS settings demand it (or did not load)")]
    TlsOverSocket,
    #[error("server did not finish {what} within {secs}s")]
    Timeout { what: &'static str, secs: u64 },
}

/// How long a reset of a server connection may take before the connection is closed.
pub const RESET_TIMEOUT: Duration = Duration::from_secs(5);

/// `work`, or [`LinkError::Timeout`] naming `what` when it takes longer than `limit`.
pub async fn within<T, E: From<LinkError>>(
    what: &'static str,
    limit: Duration,
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    match tokio::time::timeout(limit, work).await {
        Ok(r) => r,
        Err(_) => Err(LinkError::Timeout {
            what,
            secs: limit.as_secs(),
        }
        .into()),
    }
}

/// Why a client session ended abnormally. `P` is the protocol's codec error, `A` its
/// client authentication error, `B` its server connection error; each protocol names its
/// own with [`session_error!`](crate::session_error).
#[derive(Debug, Error)]
pub enum SessionError<P, A, B> {
    #[error("client I/O error: {0}")]
    ClientIo(std::io::Error),
    #[error("client protocol violation: {0}")]
    ClientProtocol(P),
    #[error("client authentication failed: {0}")]
    Auth(A),
    #[error(transparent)]
    Backend(B),
}

/// Declares a protocol's `SessionError` as [`SessionError`] of its codec, authentication
/// and server errors, with the conversions `?` needs (written per protocol: a generic
/// `From` for two type parameters would overlap). Without an authentication error the
/// session has none to end with (`Infallible`).
#[macro_export]
macro_rules! session_error {
    ($codec:ty, $auth:ty, $backend:ty) => {
        $crate::session_error!(@common $codec, $auth, $backend);
        impl From<$auth> for SessionError {
            fn from(e: $auth) -> Self {
                $crate::error::SessionError::Auth(e)
            }
        }
    };
    ($codec:ty, $backend:ty) => {
        $crate::session_error!(@common $codec, std::convert::Infallible, $backend);
    };
    (@common $codec:ty, $auth:ty, $backend:ty) => {
        /// Why a client session ended abnormally.
        pub type SessionError = $crate::error::SessionError<$codec, $auth, $backend>;
        impl From<$codec> for SessionError {
            fn from(e: $codec) -> Self {
                $crate::error::SessionError::ClientProtocol(e)
            }
        }
        impl From<$backend> for SessionError {
            fn from(e: $backend) -> Self {
                $crate::error::SessionError::Backend(e)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn within_names_what_took_too_long() {
        let slow = async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<(), LinkError>(())
        };
        let e = within("reset", RESET_TIMEOUT, slow).await;
        assert_eq!(
            e.map_err(|e| e.to_string()),
            Err("server did not finish reset within 5s".to_owned())
        );
    }
}
