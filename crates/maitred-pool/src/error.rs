//! [`CheckoutError`]: why a checkout did not get a connection.

use std::time::Duration;

use crate::stats::PoolState;

/// Why [`Pool::checkout`](crate::Pool::checkout) did not return a connection.
///
/// Every message names the pool, and the two queue bounds say what to tune,
/// so it can be shown to the client as is.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError<E> {
    /// No connection became free within `queue_timeout`.
    #[error(
        "pool '{pool}': no server connection became free within queue_timeout \
         (waited {waited:?}); {state}; raise the pool size (max_size) if the server \
         can take more connections, or queue_timeout if clients can wait longer"
    )]
    QueueTimeout {
        /// Pool name.
        pool: String,
        /// How long the checkout waited.
        waited: Duration,
        /// Pool state when it gave up (`waiting` includes this checkout).
        state: PoolState,
    },
    /// `max_waiting` checkouts were already waiting.
    #[error(
        "pool '{pool}': too many clients already waiting for a server connection \
         (max_waiting {max_waiting}); {state}; raise the pool size (max_size) or \
         max_waiting, or lower the number of concurrent clients"
    )]
    QueueFull {
        /// Pool name.
        pool: String,
        /// The configured bound that was hit.
        max_waiting: usize,
        /// Pool state when the checkout was refused.
        state: PoolState,
    },
    /// Opening a server connection failed; `source` is the manager's reason.
    #[error("pool '{pool}': could not open a server connection: {source}")]
    Connect {
        /// Pool name.
        pool: String,
        /// The manager's error (e.g. the server's authentication failure).
        source: E,
    },
    /// Opening a server connection took longer than `connect_timeout`.
    #[error(
        "pool '{pool}': opening a server connection did not finish within \
         connect_timeout ({timeout:?})"
    )]
    ConnectTimeout {
        /// Pool name.
        pool: String,
        /// The configured `connect_timeout`.
        timeout: Duration,
    },
    /// The server has been failing to accept connections for a while (at least
    /// `connect_timeout`, or since before this checkout could wait for a retry); the
    /// pool retries in the background with backoff.
    #[error(
        "pool '{pool}': the server is unreachable ({failures} failed connection attempts \
         over {down_for:?}; last error: {last_error}); maitred keeps retrying"
    )]
    ServerUnreachable {
        /// Pool name.
        pool: String,
        /// Consecutive failed attempts.
        failures: u32,
        /// Time since the first of them.
        down_for: Duration,
        /// The last attempt's error (the server's reason or the timeout).
        last_error: String,
    },
    /// The request was sent ahead on a busy connection (see `ahead.rs`), and that
    /// connection was lost before its reply: the request may have run; its result is gone.
    #[error(
        "pool '{pool}': the server connection this request was sent ahead on was lost \
         before the reply (its previous client or the server went away); the request may \
         have run: retry it if it is safe to"
    )]
    SentAheadLost {
        /// Pool name.
        pool: String,
    },
    /// The pool was closed.
    #[error("pool '{pool}' is closed")]
    Closed {
        /// Pool name.
        pool: String,
    },
}

impl<E> CheckoutError<E> {
    /// Name of the pool the checkout was for.
    pub fn pool(&self) -> &str {
        match self {
            Self::QueueTimeout { pool, .. }
            | Self::QueueFull { pool, .. }
            | Self::Connect { pool, .. }
            | Self::ConnectTimeout { pool, .. }
            | Self::ServerUnreachable { pool, .. }
            | Self::SentAheadLost { pool }
            | Self::Closed { pool } => pool,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("password authentication failed for user \"app\"")]
    struct AuthFailed;

    fn state() -> PoolState {
        PoolState {
            size: 4,
            idle: 0,
            busy: 4,
            waiting: 9,
            max_size: 4,
        }
    }

    #[test]
    fn queue_timeout_message_names_bound_pool_state_and_knobs() {
        let err: CheckoutError<AuthFailed> = CheckoutError::QueueTimeout {
            pool: "app@db1".into(),
            waited: Duration::from_secs(5),
            state: state(),
        };
        let msg = err.to_string();
        for needle in [
            "app@db1",
            "queue_timeout",
            "5s",
            "size 4/4",
            "9 waiting",
            "max_size",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from {msg:?}");
        }
        assert_eq!(err.pool(), "app@db1");
    }

    #[test]
    fn queue_full_message_names_bound_and_knobs() {
        let err: CheckoutError<AuthFailed> = CheckoutError::QueueFull {
            pool: "app@db1".into(),
            max_waiting: 100,
            state: state(),
        };
        let msg = err.to_string();
        for needle in ["app@db1", "max_waiting 100", "size 4/4", "max_size"] {
            assert!(msg.contains(needle), "{needle:?} missing from {msg:?}");
        }
    }

    #[test]
    fn connect_error_carries_the_server_reason() {
        let err = CheckoutError::Connect {
            pool: "app@db1".into(),
            source: AuthFailed,
        };
        assert!(err
            .to_string()
            .contains("password authentication failed for user \"app\""));
        assert!(err.source().is_some());
    }
}
