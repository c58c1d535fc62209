//! [`PoolState`] (a gauge snapshot), [`PoolStats`] (state plus counters) and
//! the atomic counters behind them.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A snapshot of a pool's gauges. Read without locks, so under load the
/// fields may come from slightly different instants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolState {
    /// Connections counted against `max_size`: idle, leased, being opened and
    /// being reset.
    pub size: usize,
    /// Connections sitting idle, ready to be handed out.
    pub idle: usize,
    /// `size - idle`: leased, being opened or being reset.
    pub busy: usize,
    /// Checkouts parked in the queue.
    pub waiting: usize,
    /// The configured bound on `size`.
    pub max_size: usize,
}

impl fmt::Display for PoolState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "size {}/{} (idle {}, busy {}), {} waiting",
            self.size, self.max_size, self.idle, self.busy, self.waiting
        )
    }
}

/// Upper bounds of the checkout wait histogram buckets (a last, unbounded bucket
/// follows), chosen around what matters: sub-millisecond idle hand-outs, connects, and
/// the seconds of a saturated pool.
pub const CHECKOUT_WAIT_BUCKETS: [Duration; 10] = [
    Duration::from_micros(100),
    Duration::from_millis(1),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// [`PoolState`] plus counters accumulated since the pool was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Gauges at the time of the snapshot.
    pub state: PoolState,
    /// Successful checkouts.
    pub checkouts: u64,
    /// Successful checkouts by how long they waited: `[i]` counts waits up to
    /// `CHECKOUT_WAIT_BUCKETS[i]` and above the previous bound; the last entry counts
    /// waits above every bound. Not cumulative (Prometheus wants it summed up).
    pub checkout_wait_buckets: [u64; CHECKOUT_WAIT_BUCKETS.len() + 1],
    /// Summed latency of successful checkouts (queueing and connecting
    /// included); divide by `checkouts` for the mean, see
    /// [`PoolStats::mean_checkout_wait`].
    pub checkout_wait_total: Duration,
    /// Checkouts that failed with `QueueTimeout`.
    pub queue_timeouts: u64,
    /// Checkouts that failed with `QueueFull`.
    pub queue_full_rejections: u64,
    /// Server connections opened.
    pub connects: u64,
    /// Failed or timed-out connection attempts.
    pub connect_failures: u64,
    /// Connections closed because `is_alive` said so or the lease was discarded.
    pub closed_broken: u64,
    /// Connections closed because of `idle_timeout` or `max_lifetime`.
    pub closed_expired: u64,
    /// Dirty connections reset successfully and returned to the pool.
    pub resets: u64,
    /// Dirty connections closed instead: reset failed or timed out, or no
    /// runtime was there to run it.
    pub reset_failures: u64,
    /// Requests of waiting clients written by the previous holder of a connection, behind
    /// its own (see `ahead.rs`).
    pub sent_ahead: u64,
    /// Of those, the ones whose connection was lost before the hand-over (the waiter got
    /// [`CheckoutError::SentAheadLost`](crate::CheckoutError::SentAheadLost)).
    pub sent_ahead_lost: u64,
}

impl PoolStats {
    /// Mean latency of a successful checkout, zero before the first one.
    pub fn mean_checkout_wait(&self) -> Duration {
        match u32::try_from(self.checkouts) {
            Ok(0) => Duration::ZERO,
            Ok(n) => self.checkout_wait_total / n,
            Err(_) => {
                let nanos = self.checkout_wait_total.as_nanos() / u128::from(self.checkouts);
                Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
            }
        }
    }
}

/// The counters of [`PoolStats`], bumped with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) checkouts: AtomicU64,
    pub(crate) checkout_wait_nanos: AtomicU64,
    pub(crate) checkout_wait_buckets: [AtomicU64; CHECKOUT_WAIT_BUCKETS.len() + 1],
    pub(crate) queue_timeouts: AtomicU64,
    pub(crate) queue_full_rejections: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) closed_broken: AtomicU64,
    pub(crate) closed_expired: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) reset_failures: AtomicU64,
    pub(crate) sent_ahead: AtomicU64,
    pub(crate) sent_ahead_lost: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Counters {
    /// Records a successful checkout that took `waited`.
    pub(crate) fn record_checkout(&self, waited: Duration) {
        bump(&self.checkouts);
        let nanos = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
        self.checkout_wait_nanos.fetch_add(nanos, Relaxed);
        let bucket = CHECKOUT_WAIT_BUCKETS
            .iter()
            .position(|bound| waited <= *bound)
            .unwrap_or(CHECKOUT_WAIT_BUCKETS.len());
        bump(&self.checkout_wait_buckets[bucket]);
    }

    /// Combines the counters with a state snapshot.
    pub(crate) fn snapshot(&self, state: PoolState) -> PoolStats {
        PoolStats {
            state,
            checkouts: self.checkouts.load(Relaxed),
            checkout_wait_buckets: std::array::from_fn(|i| {
                self.checkout_wait_buckets[i].load(Relaxed)
            }),
            checkout_wait_total: Duration::from_nanos(self.checkout_wait_nanos.load(Relaxed)),
            queue_timeouts: self.queue_timeouts.load(Relaxed),
            queue_full_rejections: self.queue_full_rejections.load(Relaxed),
            connects: self.connects.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            closed_broken: self.closed_broken.load(Relaxed),
            closed_expired: self.closed_expired.load(Relaxed),
            resets: self.resets.load(Relaxed),
            reset_failures: self.reset_failures.load(Relaxed),
            sent_ahead: self.sent_ahead.load(Relaxed),
            sent_ahead_lost: self.sent_ahead_lost.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> PoolState {
        PoolState {
            size: 3,
            idle: 1,
            busy: 2,
            waiting: 7,
            max_size: 10,
        }
    }

    #[test]
    fn checkout_waits_land_in_their_bucket() {
        let c = Counters::default();
        c.record_checkout(Duration::from_micros(50));
        c.record_checkout(Duration::from_micros(100));
        c.record_checkout(Duration::from_millis(3));
        c.record_checkout(Duration::from_secs(60));
        let s = c.snapshot(state());
        assert_eq!(s.checkout_wait_buckets[0], 2, "up to and including 100 µs");
        assert_eq!(s.checkout_wait_buckets[2], 1, "1 ms < w <= 5 ms");
        assert_eq!(
            s.checkout_wait_buckets[CHECKOUT_WAIT_BUCKETS.len()],
            1,
            "above all"
        );
        assert_eq!(s.checkout_wait_buckets.iter().sum::<u64>(), s.checkouts);
    }

    #[test]
    fn state_display_names_every_gauge() {
        assert_eq!(state().to_string(), "size 3/10 (idle 1, busy 2), 7 waiting");
    }

    #[test]
    fn snapshot_reports_counters_and_mean_wait() {
        let counters = Counters::default();
        counters.record_checkout(Duration::from_millis(10));
        counters.record_checkout(Duration::from_millis(30));
        bump(&counters.resets);
        let stats = counters.snapshot(state());
        assert_eq!(stats.state, state());
        assert_eq!(stats.checkouts, 2);
        assert_eq!(stats.checkout_wait_total, Duration::from_millis(40));
        assert_eq!(stats.mean_checkout_wait(), Duration::from_millis(20));
        assert_eq!(stats.resets, 1);
        assert_eq!(stats.reset_failures, 0);
        let empty = Counters::default().snapshot(state());
        assert_eq!(empty.mean_checkout_wait(), Duration::ZERO);
    }
}
