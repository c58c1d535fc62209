//! [`Pool`]: the cheap-to-clone public handle.

use std::fmt;
use std::sync::Arc;

use crate::ahead::Ahead;
use crate::checkout;
use crate::error::CheckoutError;
use crate::lease::Lease;
use crate::maintenance;
use crate::manager::Manager;
use crate::settings::PoolSettings;
use crate::shared::Shared;
use crate::stats::{PoolState, PoolStats};

/// A pool of connections to one server, bounded by `max_size`.
///
/// Clones share the same pool. Dropping every handle and every lease frees it
/// (and ends its maintenance task); [`close`](Self::close) stops it earlier.
pub struct Pool<M: Manager> {
    shared: Arc<Shared<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M: Manager> Pool<M> {
    /// Creates an empty pool. Opens nothing and spawns nothing, so it works
    /// outside a runtime; call [`start_maintenance`](Self::start_maintenance)
    /// from inside one for expiry and `min_idle`.
    pub fn new(manager: M, settings: PoolSettings) -> Self {
        Self {
            shared: Arc::new(Shared::new(manager, settings)),
        }
    }

    /// Spawns the pool's one maintenance task (later calls do nothing). It
    /// runs every `maintenance_interval`, closes idle connections past
    /// `idle_timeout` / `max_lifetime` or failing `is_alive`, and opens
    /// connections up to `min_idle` while nobody waits. It holds only a weak
    /// reference and ends when the pool is dropped or closed.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, like [`tokio::spawn`].
    pub fn start_maintenance(&self) {
        maintenance::start(&self.shared);
    }

    /// Checks out a connection: an idle one if there is one and nobody waits,
    /// else a new one if below `max_size`, else waits in FIFO order for up to
    /// `queue_timeout`. Cancellation safe: dropping the future leaves no trace.
    ///
    /// Needs a Tokio runtime with the time driver enabled.
    pub async fn checkout(&self) -> Result<Lease<M>, CheckoutError<M::Error>> {
        checkout::checkout(&self.shared, None).await
    }

    /// Like [`checkout`](Self::checkout), and if it must wait, offers `ahead`: the holder
    /// of a busy connection may then write the request behind its own and hand the
    /// connection over with the reply owed ([`Lease::request_sent`]), see
    /// [`Lease::claim_successor`]. Such a waiter is no longer timed out by
    /// `queue_timeout` once claimed; it fails with
    /// [`CheckoutError::SentAheadLost`] if the connection is lost before the hand-over.
    pub async fn checkout_ahead(&self, ahead: Ahead) -> Result<Lease<M>, CheckoutError<M::Error>> {
        checkout::checkout(&self.shared, Some(ahead)).await
    }

    /// Whether checkouts are queued now (one atomic read): a cheap test before preparing
    /// anything for [`Lease::claim_successor`].
    pub fn has_waiters(&self) -> bool {
        self.shared.waiters.waiting() > 0
    }

    /// Whether a checkout now would likely have to wait: clients queue already, or no
    /// connection is idle. A cheap test before preparing an [`Ahead`] offer.
    pub fn likely_to_wait(&self) -> bool {
        self.shared.waiters.waiting() > 0 || self.shared.idle_len() == 0
    }

    /// The pool's name (from the settings).
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// The settings in force (those it was created with, or the last
    /// [`reconfigure`](Self::reconfigure)).
    pub fn settings(&self) -> Arc<PoolSettings> {
        arc_swap::Guard::into_inner(self.shared.settings())
    }

    /// Applies new bounds and timeouts without dropping anyone (a reload): a larger
    /// `max_size` serves waiters at once; a smaller one closes idle connections above
    /// it now and busy ones as they come back. The name cannot change.
    pub fn reconfigure(&self, settings: PoolSettings) {
        self.shared.reconfigure(settings);
    }

    /// Hands out nothing until [`resume`](Self::resume): checkouts wait (bounded by
    /// `queue_timeout`); connections already leased finish their work.
    pub fn pause(&self) {
        self.shared.pause();
    }

    /// Ends a [`pause`](Self::pause); waiters are served in order.
    pub fn resume(&self) {
        self.shared.resume();
    }

    /// Whether the pool is paused.
    pub fn is_paused(&self) -> bool {
        self.shared.is_paused()
    }

    /// Retires every server connection open now: idle ones are closed at once, leased
    /// ones when they come back; later checkouts get fresh ones.
    pub fn reconnect(&self) {
        self.shared.reconnect();
    }

    /// The connection manager.
    pub fn manager(&self) -> &M {
        &self.shared.manager
    }

    /// Current gauges, read without locks.
    pub fn state(&self) -> PoolState {
        self.shared.state()
    }

    /// Current gauges plus counters since creation.
    pub fn stats(&self) -> PoolStats {
        self.shared.counters.snapshot(self.shared.state())
    }

    /// Stops the pool: checkouts (waiting or new) fail with
    /// [`CheckoutError::Closed`], idle connections are dropped now, leased
    /// ones when they come back. Idempotent.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// The fleet's numbers when the pool is in one (see [`crate::fleet::start`]).
    pub fn fleet(&self) -> Option<crate::fleet::FleetStatus> {
        self.shared.fleet.get().map(|share| share.status())
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<M>> {
        &self.shared
    }

    #[cfg(test)]
    pub(crate) fn shared_for_tests(&self) -> Arc<Shared<M>> {
        Arc::clone(&self.shared)
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name())
            .field("state", &self.state())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::Duration;

    use super::*;
    use crate::test_support::{fake_pool, settings, settle, FakeManager};

    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn pool_is_created_outside_a_runtime_and_futures_are_send() {
        let (pool, fake) = fake_pool(settings(3));
        assert_send_sync(&pool);
        let checkout = pool.checkout();
        assert_send(&checkout);
        drop(checkout);
        assert_eq!(pool.name(), "test");
        assert_eq!(pool.settings().max_size, 3);
        assert!(Arc::ptr_eq(&pool.manager().state, &fake));
        assert_eq!(
            pool.state(),
            PoolState {
                size: 0,
                idle: 0,
                busy: 0,
                waiting: 0,
                max_size: 3
            }
        );
        assert!(format!("{pool:?}").contains("test"));
        fn is_send<T: Send>() {}
        is_send::<Lease<FakeManager>>();
        is_send::<CheckoutError<crate::test_support::FakeError>>();
    }

    #[tokio::test(start_paused = true)]
    async fn close_fails_waiters_drops_idle_and_later_returns() {
        let (pool, fake) = fake_pool(settings(2));
        let held = pool.checkout().await.expect("checkout");
        drop(pool.checkout().await.expect("checkout")); // one idle
        let extra = pool.checkout().await.expect("checkout"); // takes the idle one
        drop(extra);
        let busy = pool.checkout().await.expect("checkout");
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.checkout().await.map(drop) }
        });
        settle().await;
        assert_eq!(pool.state().waiting, 1);

        pool.close();
        pool.close(); // idempotent
        assert!(pool.is_closed());
        assert!(matches!(
            waiter.await.expect("task"),
            Err(CheckoutError::Closed { .. })
        ));
        assert!(matches!(
            pool.checkout().await,
            Err(CheckoutError::Closed { pool }) if pool == "test"
        ));
        assert_eq!(pool.state().waiting, 0);
        drop(held);
        drop(busy);
        assert_eq!(pool.state().size, 0);
        assert_eq!(fake.live(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn close_while_connecting_closes_the_new_connection() {
        let (pool, fake) = fake_pool(settings(1));
        fake.connect_delay_ms.store(100, SeqCst);
        let checkout = tokio::spawn({
            let pool = pool.clone();
            async move { pool.checkout().await.map(drop) }
        });
        settle().await;
        pool.close();
        assert!(matches!(
            checkout.await.expect("task"),
            Err(CheckoutError::Closed { .. })
        ));
        assert_eq!(fake.live(), 0);
        assert_eq!(pool.state().size, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn stats_count_checkouts_and_their_wait() {
        let (pool, _fake) = fake_pool(settings(1));
        let held = pool.checkout().await.expect("checkout");
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.checkout().await.map(drop) }
        });
        settle().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(held);
        waiter.await.expect("task").expect("checkout");
        let stats = pool.stats();
        assert_eq!(stats.checkouts, 2);
        assert!(stats.checkout_wait_total >= Duration::from_millis(300));
        assert_eq!(stats.state.idle, 1);
    }
}
