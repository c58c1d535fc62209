//! Log lines for a pool under pressure: clients queueing, the queue full, queue timeouts,
//! and checkouts that waited long. Under overload these happen for every client, so each
//! kind is rate-limited to one warning per pool per [`WARN_INTERVAL`]; the line says how
//! many were folded into it. Nothing here runs on the fast path (only a checkout that
//! waited, or failed, reaches it), and a suppressed event costs two atomic operations.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use crate::stats::PoolState;

/// At most one warning of each kind per pool in this interval.
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(5);
/// A checkout that waited at least this long (or half of `queue_timeout`, if shorter) is slow.
pub(crate) const SLOW_CHECKOUT: Duration = Duration::from_secs(1);

/// One kind of event, rate-limited.
#[derive(Debug)]
struct Limiter {
    /// Milliseconds since `origin` of the last line written, plus one (0: never).
    last_ms: AtomicU64,
    /// Events not written since the last line.
    suppressed: AtomicU64,
}

impl Limiter {
    const fn new() -> Limiter {
        Limiter {
            last_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(folded)` when a line may be written now (`folded`: events suppressed since the
    /// last one); `None` when this event is only counted.
    fn admit(&self, origin: Instant) -> Option<u64> {
        self.admit_at(origin, Instant::now())
    }

    /// [`admit`](Self::admit) with the caller's reading of the clock.
    fn admit_at(&self, origin: Instant, at: Instant) -> Option<u64> {
        let now = u64::try_from(at.saturating_duration_since(origin).as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.last_ms.load(Relaxed);
        let interval = u64::try_from(WARN_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        let due = last == 0 || now.saturating_sub(last) >= interval;
        // Only one of the racing callers wins the slot.
        if due
            && self
                .last_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Relaxed));
        }
        self.suppressed.fetch_add(1, Relaxed);
        None
    }
}

/// A pool's rate-limited pressure warnings.
#[derive(Debug)]
pub(crate) struct SaturationLog {
    origin: Instant,
    queued: Limiter,
    queue_full: Limiter,
    queue_timeout: Limiter,
    slow: Limiter,
}

impl SaturationLog {
    pub(crate) fn new() -> SaturationLog {
        SaturationLog {
            origin: Instant::now(),
            queued: Limiter::new(),
            queue_full: Limiter::new(),
            queue_timeout: Limiter::new(),
            slow: Limiter::new(),
        }
    }

    /// A client found every server connection busy and joined the queue at `at` (the
    /// caller's clock reading: this runs for nearly every checkout of a saturated pool).
    pub(crate) fn client_queued(&self, pool: &str, at: Instant, state: impl FnOnce() -> PoolState) {
        if let Some(folded) = self.queued.admit_at(self.origin, at) {
            let state = state();
            tracing::warn!(
                pool,
                waiting = state.waiting,
                size = state.size,
                max_size = state.max_size,
                also = folded,
                "pool saturated: every server connection is busy, clients are queueing ({state})"
            );
        }
    }

    /// A client was refused because `max_waiting` clients were already queued.
    pub(crate) fn queue_full(&self, pool: &str, max_waiting: usize, state: &PoolState) {
        if let Some(folded) = self.queue_full.admit(self.origin) {
            tracing::warn!(
                pool,
                max_waiting,
                also = folded,
                "pool saturated: queue full, client refused ({state})"
            );
        }
    }

    /// A client gave up after `queue_timeout` in the queue.
    pub(crate) fn queue_timeout(&self, pool: &str, waited: Duration, state: &PoolState) {
        if let Some(folded) = self.queue_timeout.admit(self.origin) {
            tracing::warn!(
                pool,
                waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                also = folded,
                "pool saturated: a client waited queue_timeout for a server connection and got an error ({state})"
            );
        }
    }

    /// A checkout succeeded after waiting `waited`, more than the slow threshold.
    pub(crate) fn slow_checkout(&self, pool: &str, waited: Duration) {
        if let Some(folded) = self.slow.admit(self.origin) {
            tracing::warn!(
                pool,
                waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                also = folded,
                "slow checkout: a client waited for a server connection"
            );
        }
    }
}

/// The wait from which a checkout counts as slow: [`SLOW_CHECKOUT`], or half of
/// `queue_timeout` when that is shorter (so short timeouts still get a warning before they
/// turn into errors).
pub(crate) fn slow_threshold(queue_timeout: Duration) -> Duration {
    SLOW_CHECKOUT.min(queue_timeout / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_interval_and_the_rest_is_counted() {
        let origin = Instant::now();
        let limiter = Limiter::new();
        assert_eq!(limiter.admit(origin), Some(0));
        assert_eq!(limiter.admit(origin), None);
        assert_eq!(limiter.admit(origin), None);
        tokio::time::advance(WARN_INTERVAL - Duration::from_millis(10)).await;
        assert_eq!(limiter.admit(origin), None);
        tokio::time::advance(Duration::from_millis(10)).await;
        assert_eq!(limiter.admit(origin), Some(3));
        assert_eq!(limiter.admit(origin), None);
    }

    #[test]
    fn slow_threshold_is_the_shorter_of_one_second_and_half_the_queue_timeout() {
        assert_eq!(slow_threshold(Duration::from_secs(5)), SLOW_CHECKOUT);
        assert_eq!(
            slow_threshold(Duration::from_millis(600)),
            Duration::from_millis(300)
        );
    }
}
