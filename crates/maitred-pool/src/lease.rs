//! [`Lease`]: a checked-out connection, and what happens when it ends.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::ahead::{Affinity, Successor};
use crate::manager::Manager;
use crate::reset;
use crate::shared::{Pooled, Reuse, Shared};
use crate::stats::bump;

/// What to do with the connection when the lease ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Disposition {
    /// Back to the idle queue (lock-free unless checkouts are waiting).
    Clean,
    /// Reset in a spawned task, then back to the pool (or closed on error).
    Dirty,
    /// Closed at once.
    Discard,
}

/// A connection checked out of a [`Pool`](crate::Pool). Derefs to
/// `M::Connection`.
///
/// Dropping a clean lease returns the connection to the pool without taking a
/// lock (unless checkouts are waiting, then it goes straight to the oldest).
/// Call [`mark_dirty`](Self::mark_dirty) when the connection may carry session
/// state (open transaction, prepared statements, settings), or
/// [`discard`](Self::discard) when it must never be reused.
pub struct Lease<M: Manager> {
    shared: Arc<Shared<M>>,
    /// `Some` until the lease ends (drop).
    pooled: Option<Pooled<M::Connection>>,
    disposition: Disposition,
    /// The checkout's own request was written on the connection by its previous holder.
    request_sent: bool,
}

impl<M: Manager> Lease<M> {
    pub(crate) fn new(shared: Arc<Shared<M>>, pooled: Pooled<M::Connection>) -> Self {
        Self {
            shared,
            pooled: Some(pooled),
            disposition: Disposition::Clean,
            request_sent: false,
        }
    }

    /// The waiter's request was already written by the previous holder.
    pub(crate) fn mark_request_sent(&mut self) {
        self.request_sent = true;
    }

    /// Whether the request offered with
    /// [`Pool::checkout_ahead`](crate::Pool::checkout_ahead) was already written on this
    /// connection by its previous holder: its reply is owed, and may already sit in the
    /// connection's buffers. Never true for a plain [`Pool::checkout`](crate::Pool::checkout).
    pub fn request_sent(&self) -> bool {
        self.request_sent
    }

    /// Claims the oldest waiting checkout if it offered a request with this `affinity`
    /// (and `has` says the connection has what the request
    /// [`requires`](crate::Ahead::requires), if anything) and the connection may be passed on (pool not paused or closed, connection not
    /// retired, expired or above `max_size`). The caller writes
    /// [`Successor::request`] on the connection behind its own request, and must only
    /// call this when its own request leaves the connection as the successor expects it
    /// (see `ahead.rs`).
    pub fn claim_successor(
        &self,
        affinity: impl Into<Affinity>,
        has: impl Fn(u64) -> bool,
    ) -> Option<Successor<M>> {
        let pooled = self.pooled.as_ref()?;
        if self.disposition != Disposition::Clean
            || self.shared.waiters.waiting() == 0
            || self.shared.is_paused()
            || self.shared.reuse_verdict(pooled, Instant::now()) != Reuse::Keep
        {
            return None;
        }
        let claimed = self.shared.waiters.claim(&affinity.into(), &has)?;
        Some(Successor::new(Arc::clone(&self.shared), claimed))
    }

    /// Takes the connection out, leaving a lease that does nothing when dropped.
    pub(crate) fn take_pooled(&mut self) -> Option<Pooled<M::Connection>> {
        self.pooled.take()
    }

    /// On drop, reset the connection with [`Manager::reset`] in a spawned task
    /// before returning it; close it if the reset fails, times out
    /// (`connect_timeout`) or no Tokio runtime is current at drop time. The
    /// connection keeps counting against `max_size` while it is reset.
    pub fn mark_dirty(&mut self) {
        self.disposition = Disposition::Dirty;
    }

    /// Whether [`mark_dirty`](Self::mark_dirty) was called.
    pub fn is_dirty(&self) -> bool {
        self.disposition == Disposition::Dirty
    }

    /// Closes the connection now; it is never reused (e.g. the server failed
    /// mid-query). Frees its place for a new connection.
    pub fn discard(mut self) {
        self.disposition = Disposition::Discard;
        drop(self);
    }

    /// Time since the connection was opened.
    pub fn age(&self) -> Duration {
        self.pooled
            .as_ref()
            .map_or(Duration::ZERO, |pooled| pooled.created_at.elapsed())
    }
}

impl<M: Manager> Deref for Lease<M> {
    type Target = M::Connection;

    fn deref(&self) -> &M::Connection {
        match &self.pooled {
            Some(pooled) => &pooled.conn,
            None => unreachable!("a lease holds its connection until it is dropped"),
        }
    }
}

impl<M: Manager> DerefMut for Lease<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        match &mut self.pooled {
            Some(pooled) => &mut pooled.conn,
            None => unreachable!("a lease holds its connection until it is dropped"),
        }
    }
}

impl<M: Manager> Drop for Lease<M> {
    fn drop(&mut self) {
        let Some(pooled) = self.pooled.take() else {
            return;
        };
        match self.disposition {
            Disposition::Clean => self.shared.checkin(pooled),
            Disposition::Dirty => reset::reset_then_return(&self.shared, pooled),
            Disposition::Discard => {
                bump(&self.shared.counters.closed_broken);
                tracing::debug!(pool = %self.shared.name(), "discarding server connection");
                self.shared.close_conn(pooled);
            }
        }
    }
}

impl<M: Manager> fmt::Debug for Lease<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("pool", &self.shared.name())
            .field("disposition", &self.disposition)
            .field("age", &self.age())
            .field("request_sent", &self.request_sent)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;

    use crate::test_support::{fake_pool, settings, settle};

    #[tokio::test(start_paused = true)]
    async fn dirty_lease_is_reset_before_reuse() {
        let (pool, fake) = fake_pool(settings(1));
        let mut lease = pool.checkout().await.expect("checkout");
        lease.dirty = true;
        assert!(!lease.is_dirty());
        lease.mark_dirty();
        assert!(lease.is_dirty());
        drop(lease);
        // Until the reset task ran the connection is busy, not idle.
        assert_eq!((pool.state().size, pool.state().idle), (1, 0));
        settle().await;
        assert_eq!((pool.state().size, pool.state().idle), (1, 1));
        let lease = pool.checkout().await.expect("checkout");
        assert!(!lease.dirty, "reset ran");
        assert_eq!(lease.id, 0);
        assert_eq!(fake.resets.load(SeqCst), 1);
        assert_eq!(pool.stats().resets, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waiter_gets_the_connection_once_reset() {
        let (pool, fake) = fake_pool(settings(1));
        fake.reset_delay_ms.store(50, SeqCst);
        let mut lease = pool.checkout().await.expect("checkout");
        lease.mark_dirty();
        drop(lease);
        let lease = pool.checkout().await.expect("waits for the reset");
        assert_eq!(lease.id, 0);
        assert_eq!(
            fake.opened.load(SeqCst),
            1,
            "max_size 1 held while resetting"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn discarded_lease_is_closed_and_its_slot_freed() {
        let (pool, fake) = fake_pool(settings(1));
        let lease = pool.checkout().await.expect("checkout");
        lease.discard();
        assert_eq!(fake.closed.load(SeqCst), 1);
        assert_eq!(pool.state().size, 0);
        assert_eq!(pool.stats().closed_broken, 1);
        let lease = pool.checkout().await.expect("checkout");
        assert_eq!(lease.id, 1);
    }

    #[test]
    fn dirty_lease_dropped_outside_a_runtime_is_closed() {
        let (pool, fake) = fake_pool(settings(1));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut lease = runtime.block_on(pool.checkout()).expect("checkout");
        drop(runtime);
        lease.mark_dirty();
        drop(lease);
        assert_eq!(fake.closed.load(SeqCst), 1);
        assert_eq!(pool.state().size, 0);
        assert_eq!(pool.stats().reset_failures, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn lease_reports_age_and_debug() {
        let (pool, _fake) = fake_pool(settings(1));
        let lease = pool.checkout().await.expect("checkout");
        tokio::time::advance(std::time::Duration::from_secs(3)).await;
        assert_eq!(lease.age(), std::time::Duration::from_secs(3));
        assert!(format!("{lease:?}").contains("Lease"));
    }
}
