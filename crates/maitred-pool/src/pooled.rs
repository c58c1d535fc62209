//! A pooled server connection (boxed once, with the times the pool needs) and the pool's
//! verdicts on it: reuse, health, and why opening one failed.

use std::time::Duration;
use tokio::time::Instant;

/// A server connection with the times the pool needs, boxed once when it is opened: it
/// travels (idle queue, grant, lease) as a pointer, not as a few hundred bytes copied at
/// every hand-off.
#[derive(Debug)]
pub(crate) struct Pooled<C>(Box<PooledConn<C>>);

#[derive(Debug)]
pub(crate) struct PooledConn<C> {
    pub(crate) conn: C,
    pub(crate) created_at: Instant,
    pub(crate) idle_since: Instant,
    /// The pool's generation when it was opened (see [`Shared::reconnect`]).
    pub(crate) generation: u64,
}

impl<C> Pooled<C> {
    pub(crate) fn new(conn: C, generation: u64) -> Self {
        let now = Instant::now();
        Self(Box::new(PooledConn {
            conn,
            created_at: now,
            idle_since: now,
            generation,
        }))
    }
}

impl<C> std::ops::Deref for Pooled<C> {
    type Target = PooledConn<C>;
    fn deref(&self) -> &PooledConn<C> {
        &self.0
    }
}

impl<C> std::ops::DerefMut for Pooled<C> {
    fn deref_mut(&mut self) -> &mut PooledConn<C> {
        &mut self.0
    }
}

/// Verdict on a connection coming back from a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reuse {
    Keep,
    /// The pool is closed or above `max_size`.
    Close,
    /// Retired by a reconnect, or past `max_lifetime`.
    Expired,
}

/// Verdict on an idle connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    Usable,
    Expired,
    Broken,
}

/// Why opening a connection failed.
#[derive(Debug)]
pub(crate) enum OpenError<E> {
    Failed(E),
    TimedOut(Duration),
}

impl<E: std::fmt::Display> OpenError<E> {
    /// For the connect gate, which shows it to clients refused later.
    pub(crate) fn describe(&self) -> String {
        match self {
            OpenError::Failed(e) => e.to_string(),
            OpenError::TimedOut(t) => format!("connecting timed out after {t:?}"),
        }
    }
}
