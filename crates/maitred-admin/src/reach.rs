//! Whether a pool's server is reachable right now, judged from the pool's connect
//! counters between two looks: failures without a success mark it unreachable; a
//! success, or a quiet period without new failures, clears that.

use std::time::{Duration, Instant};

/// How long an unreachable mark lasts without new failures (nobody tried to connect).
pub(crate) const FORGET_AFTER: Duration = Duration::from_secs(30);

/// The counters seen at the previous look, and since when the server fails.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    connects: u64,
    failures: u64,
    /// Failures counted when the server was last known reachable.
    baseline: u64,
    last_failure: Option<Instant>,
}

impl Reach {
    /// Takes a new look at the counters; returns the failures since the server was last
    /// reachable while it is judged unreachable, None while reachable.
    pub(crate) fn observe(&mut self, connects: u64, failures: u64, now: Instant) -> Option<u64> {
        if connects > self.connects {
            self.last_failure = None;
        } else if failures > self.failures {
            self.last_failure = Some(now);
        }
        self.connects = connects;
        self.failures = failures;
        match self.last_failure {
            Some(at) if now.saturating_duration_since(at) < FORGET_AFTER => {
                Some(failures.saturating_sub(self.baseline))
            }
            _ => {
                self.last_failure = None;
                self.baseline = failures;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_without_success_mark_unreachable_until_a_connect() {
        let t0 = Instant::now();
        let mut r = Reach::default();
        assert_eq!(r.observe(1, 0, t0), None);
        assert_eq!(r.observe(1, 2, t0), Some(2));
        assert_eq!(r.observe(1, 3, t0 + Duration::from_secs(1)), Some(3));
        assert_eq!(r.observe(2, 3, t0 + Duration::from_secs(2)), None);
        assert_eq!(r.observe(2, 3, t0 + Duration::from_secs(3)), None);
    }

    #[test]
    fn the_mark_fades_when_nobody_tries() {
        let t0 = Instant::now();
        let mut r = Reach::default();
        assert_eq!(r.observe(0, 1, t0), Some(1));
        assert_eq!(r.observe(0, 1, t0 + Duration::from_secs(10)), Some(1));
        assert_eq!(
            r.observe(0, 1, t0 + FORGET_AFTER + Duration::from_secs(1)),
            None
        );
        assert_eq!(
            r.observe(0, 2, t0 + FORGET_AFTER + Duration::from_secs(2)),
            Some(1)
        );
    }
}
