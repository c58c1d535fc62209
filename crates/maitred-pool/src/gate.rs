//! Connect backoff: after a failed connection attempt nobody connects again until a delay
//! has passed (doubling per failure, at most [`MAX_BACKOFF`]), and then only one attempt
//! (the probe) runs at a time until one succeeds. A server that restarts therefore sees a
//! trickle of attempts, not one per waiting client (no thundering herd).
//!
//! A checkout that needs a new connection while the gate is shut waits for the probe, for
//! at most `connect_timeout`; once the server has been failing for longer than that, such
//! checkouts are refused at once with the last connect error instead of queueing behind a
//! server that is down (waiting clients learn within `connect_timeout`, not never).

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Delay after the first failure.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest delay between two attempts.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
struct GateState {
    /// Failed attempts since the last success (0: the gate is open).
    failures: u32,
    /// When the current run of failures began.
    failing_since: Option<Instant>,
    /// No attempt before this.
    retry_at: Option<Instant>,
    /// A probe is connecting now.
    probing: bool,
    /// The last attempt's error, for the clients that are refused.
    last_error: String,
}

/// Why the gate refused: the server has been failing for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) failures: u32,
    pub(crate) down_for: Duration,
    pub(crate) last_error: String,
}

/// Shared by every connect of one pool.
#[derive(Debug, Default)]
pub(crate) struct ConnectGate {
    state: Mutex<GateState>,
    changed: Notify,
}

/// What the caller may do now.
enum Verdict {
    /// Connect (the gate is open, or this caller is the probe).
    Go {
        probe: bool,
    },
    /// Wait until this instant or a change, whichever is first.
    WaitUntil(Option<Instant>),
    Refuse(Refused),
}

impl ConnectGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the last attempt failed (the pool is backing off).
    #[cfg(test)]
    pub(crate) fn is_shut(&self) -> bool {
        self.lock().failures > 0
    }

    fn verdict(&self, now: Instant, patience: Duration, wait_for_probe: bool) -> Verdict {
        let mut s = self.lock();
        if s.failures == 0 {
            return Verdict::Go { probe: false };
        }
        if !s.probing && s.retry_at.is_none_or(|t| now >= t) {
            s.probing = true;
            return Verdict::Go { probe: true };
        }
        let since = s.failing_since.unwrap_or(now);
        let down_for = now.saturating_duration_since(since);
        if !wait_for_probe || down_for >= patience {
            return Verdict::Refuse(Refused {
                failures: s.failures,
                down_for,
                last_error: s.last_error.clone(),
            });
        }
        Verdict::WaitUntil(if s.probing { None } else { s.retry_at })
    }

    /// Waits until this caller may connect: at once while the gate is open; else until it
    /// is the probe or a probe succeeded. Gives up at `deadline`, and at once when the
    /// server has been failing for `patience` or longer.
    pub(crate) async fn pass(
        &self,
        deadline: Instant,
        patience: Duration,
    ) -> Result<Permit<'_>, Refused> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            let wake = match self.verdict(now, patience, now < deadline) {
                Verdict::Go { probe } => return Ok(Permit::new(self, probe)),
                Verdict::Refuse(r) => return Err(r),
                Verdict::WaitUntil(at) => at.map_or(deadline, |t| t.min(deadline)),
            };
            tokio::select! {
                () = &mut changed => {}
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// For background work (keeping `min_idle`): a permit only if one is free right now.
    pub(crate) fn try_pass(&self) -> Option<Permit<'_>> {
        match self.verdict(Instant::now(), Duration::ZERO, false) {
            Verdict::Go { probe } => Some(Permit::new(self, probe)),
            _ => None,
        }
    }

    fn record(&self, probe: bool, outcome: Result<(), String>) {
        let mut s = self.lock();
        if probe {
            s.probing = false;
        }
        match outcome {
            Ok(()) => {
                *s = GateState::default();
            }
            Err(error) => {
                let now = Instant::now();
                // Attempts that started while the gate was open and fail together count once.
                if probe || s.failures == 0 {
                    s.failures = s.failures.saturating_add(1);
                    s.retry_at = Some(now + backoff(s.failures));
                }
                s.failing_since.get_or_insert(now);
                s.last_error = error;
            }
        }
        drop(s);
        self.changed.notify_waiters();
    }
}

/// The delay after `failures` consecutive failures.
pub(crate) fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// The right to make one connection attempt. Report its outcome; a permit dropped without
/// one (the checkout went away mid-connect) frees the probe role for someone else.
pub(crate) struct Permit<'a> {
    gate: &'a ConnectGate,
    probe: bool,
    reported: bool,
}

impl<'a> Permit<'a> {
    fn new(gate: &'a ConnectGate, probe: bool) -> Self {
        Permit {
            gate,
            probe,
            reported: false,
        }
    }

    pub(crate) fn succeeded(mut self) {
        self.reported = true;
        self.gate.record(self.probe, Ok(()));
    }

    pub(crate) fn failed(mut self, error: String) {
        self.reported = true;
        self.gate.record(self.probe, Err(error));
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.gate.lock().probing = false;
            self.gate.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(3), FIRST_BACKOFF * 4);
        assert_eq!(backoff(50), MAX_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn open_gate_lets_everyone_through() {
        let gate = ConnectGate::default();
        let far = Instant::now() + PATIENCE;
        let a = gate.pass(far, PATIENCE).await.expect("open");
        let b = gate.pass(far, PATIENCE).await.expect("open");
        a.succeeded();
        b.succeeded();
        assert!(!gate.is_shut());
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_failure_one_probe_runs_after_the_backoff() {
        let gate = ConnectGate::default();
        let far = Instant::now() + PATIENCE;
        gate.pass(far, PATIENCE)
            .await
            .expect("open")
            .failed("refused".into());
        assert!(gate.is_shut());
        let start = Instant::now();
        let probe = gate.pass(far, PATIENCE).await.expect("probe");
        assert!(start.elapsed() >= FIRST_BACKOFF, "waited for the backoff");
        assert!(probe.probe);
        // Nobody else gets through while the probe runs: a second caller waits for it.
        let second = async { gate.pass(far, PATIENCE).await.map(|p| p.probe) };
        let report = async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            probe.succeeded();
        };
        let (second, ()) = tokio::join!(second, report);
        assert_eq!(
            second,
            Ok(false),
            "after the probe succeeded the gate is open"
        );
        assert!(!gate.is_shut());
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_outage_refuses_at_once_with_the_last_error() {
        let gate = ConnectGate::default();
        gate.try_pass().expect("open").failed("first".into());
        tokio::time::sleep(FIRST_BACKOFF).await;
        gate.try_pass()
            .expect("probe")
            .failed("connection refused".into());
        tokio::time::sleep(PATIENCE).await;
        // A probe is due: the first caller gets it, the next one is refused at once.
        let probe = gate.try_pass().expect("probe due");
        let started = Instant::now();
        let refused = gate
            .pass(Instant::now() + PATIENCE, PATIENCE)
            .await
            .err()
            .expect("refused");
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(refused.failures, 2);
        assert_eq!(refused.last_error, "connection refused");
        assert!(refused.down_for >= PATIENCE);
        drop(probe);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_hands_the_role_on() {
        let gate = ConnectGate::default();
        gate.try_pass().expect("open").failed("x".into());
        tokio::time::sleep(FIRST_BACKOFF).await;
        let probe = gate.try_pass().expect("probe");
        assert!(gate.try_pass().is_none(), "one probe at a time");
        drop(probe);
        assert!(gate.try_pass().is_some(), "the role is free again");
    }

    #[tokio::test(start_paused = true)]
    async fn simultaneous_failures_count_once() {
        let gate = ConnectGate::default();
        let a = gate.try_pass().expect("open");
        let b = gate.try_pass().expect("open");
        a.failed("x".into());
        b.failed("y".into());
        assert_eq!(gate.lock().failures, 1);
        assert_eq!(gate.lock().last_error, "y");
    }
}
