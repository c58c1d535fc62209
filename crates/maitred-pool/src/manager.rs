//! The [`Manager`] trait: the protocol-specific half of a pool.
//!
//! The pool decides *when* a connection is opened, checked, reset or closed;
//! the manager knows *how*. Closing is dropping: the pool never calls anything
//! on a connection it gives up, it just drops it.

use std::future::Future;

/// Opens, checks and cleans server connections for a [`Pool`](crate::Pool).
///
/// Implemented by each protocol crate (PostgreSQL now, others later). The pool
/// never holds a lock while calling into the manager.
pub trait Manager: Send + Sync + 'static {
    /// A server connection, ready to carry client traffic.
    type Connection: Send + 'static;
    /// Why opening or resetting a connection failed. Reaches the waiting client
    /// through [`CheckoutError::Connect`](crate::CheckoutError::Connect).
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens a new server connection (already authenticated, ready to use).
    ///
    /// Bounded by [`PoolSettings::connect_timeout`](crate::PoolSettings::connect_timeout);
    /// the future is dropped when that expires or when the checkout that asked
    /// for the connection goes away.
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// Cheap synchronous liveness check of an idle connection before it is
    /// handed out (e.g. a non-blocking read that must see `WouldBlock`).
    /// `false` = discard it.
    ///
    /// Called at checkout and by the maintenance task, never while a lock is held.
    fn is_alive(&self, conn: &mut Self::Connection) -> bool;

    /// Brings a connection returned dirty back to a clean state
    /// (e.g. `ROLLBACK` / `DISCARD ALL`). `Err` = close it instead.
    ///
    /// Runs in a spawned task, bounded by
    /// [`PoolSettings::connect_timeout`](crate::PoolSettings::connect_timeout).
    fn reset(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
