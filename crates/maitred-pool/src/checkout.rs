//! The checkout path.
//!
//! 1. Fast path, only while nobody waits (so newcomers never overtake
//!    waiters): pop a usable idle connection, or CAS-reserve a free slot and
//!    connect. Atomics and the lock-free idle queue only.
//! 2. Slow path: join the FIFO wait queue, try one dispatch, and park until a
//!    [`Grant`] arrives or `queue_timeout` passes. A waiter that goes away
//!    (timeout, dropped future) leaves the queue, and gives back a grant that
//!    reached it too late.
//! 3. With a grant: use the connection if it is still good, otherwise (or
//!    with a slot grant) connect.

use std::sync::atomic::{fence, Ordering::SeqCst};
use std::sync::Arc;

use tokio::time::Instant;

use crate::ahead::Ahead;
use crate::error::CheckoutError;
use crate::lease::Lease;
use crate::manager::Manager;
use crate::saturation::slow_threshold;
use crate::shared::{Health, OpenError, Pooled, Shared, SlotGuard};
use crate::stats::bump;
use crate::sweeper;
use crate::waiters::{Grant, Outcome, RegisterError, Ticket};

type Result<M, T> = std::result::Result<T, CheckoutError<<M as Manager>::Error>>;

/// Checks out a connection; see [`Pool::checkout`](crate::Pool::checkout).
pub(crate) async fn checkout<M: Manager>(
    shared: &Arc<Shared<M>>,
    ahead: Option<Ahead>,
) -> Result<M, Lease<M>> {
    if shared.is_closed() {
        return Err(closed(shared));
    }
    let started = Instant::now();

    if shared.waiters.waiting() == 0 && !shared.is_paused() {
        if let Some(pooled) = shared.take_idle(started) {
            return Ok(lease(shared, pooled, started, started));
        }
        if shared.try_reserve() {
            return connect(shared, SlotGuard::new(shared), started).await;
        }
    }

    let grant = wait(shared, started, ahead).await?;
    // The grant carries one slot, now ours.
    let slot = SlotGuard::new(shared.as_ref());
    match grant {
        Grant::Conn(mut pooled) => {
            let now = Instant::now();
            match shared.health(&mut pooled, now) {
                Health::Usable => {
                    slot.keep();
                    return Ok(lease(shared, pooled, started, now));
                }
                health => shared.drop_unhealthy(pooled, health),
            }
            // Keep our place at the front: another idle connection, else use
            // the slot to open a fresh one.
            if let Some(pooled) = shared.take_idle(now) {
                drop(slot);
                return Ok(lease(shared, pooled, started, now));
            }
            connect(shared, slot, started).await
        }
        Grant::Slot => connect(shared, slot, started).await,
        // Not judged by `health`: the reply to the request sent ahead is expected.
        Grant::Sent(pooled) => {
            slot.keep();
            let mut lease = lease(shared, pooled, started, Instant::now());
            lease.mark_request_sent();
            Ok(lease)
        }
    }
}

/// Opens a connection in a reserved slot, once the connect gate lets it (see
/// `gate.rs`: after a failure, one probe at a time with backoff). On failure the
/// slot is freed, which hands it to the next waiter.
async fn connect<M: Manager>(
    shared: &Arc<Shared<M>>,
    slot: SlotGuard<'_, M>,
    started: Instant,
) -> Result<M, Lease<M>> {
    let patience = shared.settings().connect_timeout;
    let permit = match shared.gate.pass(Instant::now() + patience, patience).await {
        Ok(permit) => permit,
        Err(refused) => {
            drop(slot);
            return Err(CheckoutError::ServerUnreachable {
                pool: shared.name().to_owned(),
                failures: refused.failures,
                down_for: refused.down_for,
                last_error: refused.last_error,
            });
        }
    };
    let opened = shared.open().await;
    match &opened {
        Ok(_) => permit.succeeded(),
        Err(e) => permit.failed(e.describe()),
    }
    match opened {
        Ok(pooled) => {
            if shared.is_closed() {
                drop(pooled);
                drop(slot);
                return Err(closed(shared));
            }
            slot.keep();
            Ok(lease(shared, pooled, started, Instant::now()))
        }
        Err(OpenError::Failed(source)) => {
            drop(slot);
            Err(CheckoutError::Connect {
                pool: shared.name().to_owned(),
                source,
            })
        }
        Err(OpenError::TimedOut(timeout)) => {
            drop(slot);
            Err(CheckoutError::ConnectTimeout {
                pool: shared.name().to_owned(),
                timeout,
            })
        }
    }
}

/// Parks in the wait queue until a grant arrives, the pool closes, or
/// `queue_timeout` (counted from `started`) passes: the pool's sweeper tells
/// the waiter so (see `sweeper.rs`).
async fn wait<M: Manager>(
    shared: &Arc<Shared<M>>,
    started: Instant,
    ahead: Option<Ahead>,
) -> Result<M, Grant<M::Connection>> {
    // Copied out: a settings guard held across the wait would pin one of the
    // few fast-path slots of arc-swap for every parked checkout.
    let (max_waiting, queue_timeout) = {
        let settings = shared.settings();
        (settings.max_waiting, settings.queue_timeout)
    };
    sweeper::ensure_started(shared);
    let ticket = match shared
        .waiters
        .register(max_waiting, started + queue_timeout, ahead)
    {
        Ok(ticket) => ticket,
        Err(RegisterError::Closed) => return Err(closed(shared)),
        Err(RegisterError::Full) => {
            bump(&shared.counters.queue_full_rejections);
            let state = shared.state();
            shared
                .saturation
                .queue_full(shared.name(), max_waiting, &state);
            return Err(CheckoutError::QueueFull {
                pool: shared.name().to_owned(),
                max_waiting,
                state,
            });
        }
    };
    shared
        .saturation
        .client_queued(shared.name(), started, || shared.state());
    let mut guard = WaitGuard {
        shared,
        ticket,
        done: false,
    };
    // Pairs with the fence in push_idle / release_slot: either they see us
    // waiting, or this dispatch sees what they freed.
    fence(SeqCst);
    shared.dispatch();
    if let Some(share) = shared.fleet.get() {
        // Clients wait: the fleet controller looks for tokens now, not at its next tick.
        share.wake.notify_one();
    }

    let outcome = (&mut guard.ticket.rx).await;
    guard.done = true;
    match outcome {
        Ok(Outcome::Granted(grant)) => Ok(grant),
        Ok(Outcome::TimedOut) => {
            // The state when it timed out: the sweeper has just taken this waiter off
            // the queue, but it was still waiting then.
            let mut state = shared.state();
            state.waiting += 1;
            bump(&shared.counters.queue_timeouts);
            let waited = started.elapsed();
            shared
                .saturation
                .queue_timeout(shared.name(), waited, &state);
            Err(CheckoutError::QueueTimeout {
                pool: shared.name().to_owned(),
                waited,
                state,
            })
        }
        Ok(Outcome::Lost) => Err(CheckoutError::SentAheadLost {
            pool: shared.name().to_owned(),
        }),
        // The sender was dropped without a word: only close() does that.
        Err(_) => Err(closed(shared)),
    }
}

/// Removes a waiter whose checkout future is dropped while parked, and gives
/// back whatever was already granted to it.
struct WaitGuard<'a, M: Manager> {
    shared: &'a Arc<Shared<M>>,
    ticket: Ticket<M::Connection>,
    done: bool,
}

impl<M: Manager> Drop for WaitGuard<'_, M> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(grant) = self.shared.waiters.cancel(&mut self.ticket) {
            self.shared.give_back(grant);
        }
    }
}

/// `now` is the caller's latest reading of the clock (one read serves the health check and
/// the wait time).
fn lease<M: Manager>(
    shared: &Arc<Shared<M>>,
    pooled: Pooled<M::Connection>,
    started: Instant,
    now: Instant,
) -> Lease<M> {
    let waited = now.saturating_duration_since(started);
    shared.counters.record_checkout(waited);
    if waited >= slow_threshold(shared.settings().queue_timeout) {
        shared.saturation.slow_checkout(shared.name(), waited);
    }
    Lease::new(Arc::clone(shared), pooled)
}

fn closed<M: Manager>(shared: &Shared<M>) -> CheckoutError<M::Error> {
    CheckoutError::Closed {
        pool: shared.name().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use crate::test_support::{fake_pool, settings, settle};
    use crate::CheckoutError;

    #[tokio::test(start_paused = true)]
    async fn idle_connection_is_reused_without_connecting() {
        let (pool, fake) = fake_pool(settings(2));
        let lease = pool.checkout().await.expect("first checkout");
        let first_id = lease.id;
        drop(lease);
        assert_eq!(pool.state().idle, 1);
        let lease = pool.checkout().await.expect("second checkout");
        assert_eq!(lease.id, first_id);
        assert_eq!(fake.opened.load(SeqCst), 1);
        let stats = pool.stats();
        assert_eq!(stats.checkouts, 2);
        assert_eq!(stats.connects, 1);
        assert_eq!(stats.state.busy, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_fifo_order_and_newcomers_queue_behind() {
        let (pool, _fake) = fake_pool(settings(1));
        let held = pool.checkout().await.expect("checkout");
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        let spawn = |tag: usize| {
            let pool = pool.clone();
            let order = Arc::clone(&order);
            tokio::spawn(async move {
                let lease = pool.checkout().await.expect("waiter checkout");
                order.lock().expect("order lock").push(tag);
                tokio::time::sleep(Duration::from_millis(1)).await;
                drop(lease);
            })
        };
        for tag in 0..4 {
            tasks.push(spawn(tag));
            while pool.state().waiting < tag + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(held); // goes straight to waiter 0
        tasks.push(spawn(99)); // newcomer while others wait: must not overtake
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(*order.lock().expect("order lock"), vec![0, 1, 2, 3, 99]);
        assert_eq!(pool.state().size, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_queue_timeout_from_a_reload_applies_behind_older_waiters() {
        let mut s = settings(1);
        s.queue_timeout = Duration::from_secs(10);
        let (pool, _fake) = fake_pool(s.clone());
        let _held = pool.checkout().await.expect("checkout");
        let started = tokio::time::Instant::now();
        let early = tokio::spawn({
            let pool = pool.clone();
            async move { pool.checkout().await.map(drop) }
        });
        while pool.state().waiting < 1 {
            tokio::task::yield_now().await;
        }
        s.queue_timeout = Duration::from_secs(1);
        pool.reconfigure(s);
        let err = pool.checkout().await.expect_err("must time out");
        assert!(matches!(err, CheckoutError::QueueTimeout { .. }), "{err:?}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_secs(2),
            "timed out after {waited:?}, not at the new 1 s"
        );
        // The older waiter keeps the deadline it joined with.
        assert!(!early.is_finished());
        let early = early.await.expect("task");
        assert!(matches!(early, Err(CheckoutError::QueueTimeout { .. })));
        assert!(started.elapsed() >= Duration::from_secs(10));
        assert_eq!(pool.state().waiting, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn queue_timeout_reports_pool_state_and_knobs() {
        let mut s = settings(1);
        s.queue_timeout = Duration::from_millis(250);
        let (pool, _fake) = fake_pool(s);
        let _held = pool.checkout().await.expect("checkout");
        let err = pool.checkout().await.expect_err("must time out");
        match &err {
            CheckoutError::QueueTimeout {
                pool: name,
                waited,
                state,
            } => {
                assert_eq!(name, "test");
                assert!(*waited >= Duration::from_millis(250), "{waited:?}");
                assert_eq!(
                    (state.size, state.idle, state.busy, state.waiting),
                    (1, 0, 1, 1)
                );
                assert_eq!(state.max_size, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("queue_timeout") && msg.contains("max_size"),
            "{msg}"
        );
        assert_eq!(pool.state().waiting, 0);
        assert_eq!(pool.stats().queue_timeouts, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn queue_full_rejects_beyond_max_waiting() {
        let mut s = settings(1);
        s.max_waiting = 1;
        let (pool, _fake) = fake_pool(s);
        let held = pool.checkout().await.expect("checkout");
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.checkout().await.map(drop) }
        });
        settle().await;
        assert_eq!(pool.state().waiting, 1);
        match pool.checkout().await {
            Err(CheckoutError::QueueFull {
                pool: name,
                max_waiting,
                state,
            }) => {
                assert_eq!(name, "test");
                assert_eq!(max_waiting, 1);
                assert_eq!(state.waiting, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(pool.stats().queue_full_rejections, 1);
        drop(held);
        waiter.await.expect("task").expect("waiter served");
    }

    #[tokio::test(start_paused = true)]
    async fn dropped_waiter_leaves_no_trace() {
        let (pool, fake) = fake_pool(settings(1));
        let held = pool.checkout().await.expect("checkout");
        let gave_up = tokio::time::timeout(Duration::from_millis(10), pool.checkout()).await;
        assert!(gave_up.is_err(), "outer timeout must fire first");
        assert_eq!(pool.state().waiting, 0);
        drop(held);
        assert_eq!(pool.state().idle, 1);
        let _lease = pool.checkout().await.expect("checkout");
        assert_eq!(fake.opened.load(SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn grant_sent_to_a_waiter_that_went_away_is_given_back() {
        let (pool, fake) = fake_pool(settings(1));
        let held = pool.checkout().await.expect("checkout");
        let mut parked = Box::pin(pool.checkout());
        // Polls once: registers as a waiter, then the zero timeout fires.
        assert!(tokio::time::timeout(Duration::ZERO, &mut parked)
            .await
            .is_err());
        assert_eq!(pool.state().waiting, 1);
        drop(held); // dispatched to the parked waiter, which never looks
        assert_eq!(pool.state().waiting, 0);
        assert_eq!(pool.state().idle, 0);
        drop(parked);
        assert_eq!(pool.state().idle, 1, "connection returned to idle");
        let _lease = pool.checkout().await.expect("checkout");
        assert_eq!(fake.opened.load(SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn connect_failure_surfaces_then_pool_recovers() {
        let (pool, fake) = fake_pool(settings(2));
        fake.fail_connects.store(true, SeqCst);
        match pool.checkout().await {
            Err(CheckoutError::Connect { pool: name, source }) => {
                assert_eq!(name, "test");
                assert_eq!(source.0, "FATAL: the database system is starting up");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(pool.state().size, 0, "failed connect frees its slot");
        fake.fail_connects.store(false, SeqCst);
        let _lease = pool.checkout().await.expect("recovered");
        let stats = pool.stats();
        assert_eq!((stats.connects, stats.connect_failures), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_connect_hands_its_slot_to_the_next_waiter() {
        let (pool, fake) = fake_pool(settings(1));
        fake.connect_delay_ms.store(100, SeqCst);
        fake.fail_connects.store(true, SeqCst); // the first attempt fails ...
        let first = tokio::spawn({
            let pool = pool.clone();
            async move { pool.checkout().await.map(drop) }
        });
        settle().await;
        let second = tokio::spawn({
            let pool = pool.clone();
            async move { pool.checkout().await.map(|lease| lease.id) }
        });
        settle().await;
        assert_eq!(pool.state().waiting, 1, "second waits for the only slot");
        fake.fail_connects.store(false, SeqCst); // ... the server is back
        assert!(matches!(
            first.await.expect("task"),
            Err(CheckoutError::Connect { .. })
        ));
        assert_eq!(second.await.expect("task").expect("second connects"), 0);
        assert_eq!(fake.connect_calls.load(SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn connect_timeout_bounds_connect() {
        let mut s = settings(1);
        s.connect_timeout = Duration::from_secs(1);
        let (pool, fake) = fake_pool(s);
        fake.connect_delay_ms.store(10_000, SeqCst);
        match pool.checkout().await {
            Err(CheckoutError::ConnectTimeout {
                pool: name,
                timeout,
            }) => {
                assert_eq!(name, "test");
                assert_eq!(timeout, Duration::from_secs(1));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(pool.state().size, 0);
        assert_eq!(pool.stats().connect_failures, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_connect_frees_its_slot() {
        let (pool, fake) = fake_pool(settings(1));
        fake.connect_delay_ms.store(1_000, SeqCst);
        let gave_up = tokio::time::timeout(Duration::from_millis(10), pool.checkout()).await;
        assert!(gave_up.is_err());
        assert_eq!(pool.state().size, 0);
        fake.connect_delay_ms.store(0, SeqCst);
        let _lease = pool.checkout().await.expect("checkout");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_is_enforced_at_checkout() {
        let mut s = settings(2);
        s.idle_timeout = Some(Duration::from_secs(1));
        let (pool, fake) = fake_pool(s);
        drop(pool.checkout().await.expect("checkout"));
        tokio::time::advance(Duration::from_secs(2)).await;
        let lease = pool.checkout().await.expect("checkout");
        assert_eq!(lease.id, 1, "a fresh connection");
        assert_eq!(fake.closed.load(SeqCst), 1);
        assert_eq!(pool.stats().closed_expired, 1);
        assert_eq!(pool.state().size, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn max_lifetime_is_enforced_at_checkout_and_return() {
        let mut s = settings(2);
        s.max_lifetime = Some(Duration::from_secs(10));
        let (pool, fake) = fake_pool(s);
        let old = pool.checkout().await.expect("checkout");
        drop(pool.checkout().await.expect("second connection, now idle"));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(old.age() >= Duration::from_secs(11));
        drop(old); // too old to go back
        assert_eq!(pool.state().size, 1);
        let lease = pool.checkout().await.expect("checkout"); // idle one too old
        assert_eq!(lease.id, 2);
        assert_eq!(fake.closed.load(SeqCst), 2);
        assert_eq!(pool.stats().closed_expired, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn dead_idle_connection_is_replaced() {
        let (pool, fake) = fake_pool(settings(1));
        let mut lease = pool.checkout().await.expect("checkout");
        lease.broken = true;
        drop(lease);
        let lease = pool.checkout().await.expect("checkout");
        assert_eq!(lease.id, 1);
        assert_eq!(pool.stats().closed_broken, 1);
        assert_eq!(fake.live(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn waiter_granted_a_dead_connection_opens_a_new_one() {
        let (pool, fake) = fake_pool(settings(1));
        let mut held = pool.checkout().await.expect("checkout");
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.checkout().await.map(|lease| lease.id) }
        });
        settle().await;
        held.broken = true;
        drop(held);
        assert_eq!(waiter.await.expect("task").expect("waiter"), 1);
        assert_eq!(pool.stats().closed_broken, 1);
        assert_eq!(fake.live(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn max_size_zero_never_hands_out() {
        let mut s = settings(0);
        s.queue_timeout = Duration::from_millis(5);
        let (pool, fake) = fake_pool(s);
        assert!(matches!(
            pool.checkout().await,
            Err(CheckoutError::QueueTimeout { .. })
        ));
        assert_eq!(fake.connect_calls.load(SeqCst), 0);
    }
}
