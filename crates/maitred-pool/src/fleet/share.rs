//! [`FleetShare`]: the tokens one replica holds of its fleet's budget, as the pool sees
//! them.
//!
//! # Invariants
//!
//! - `granted` (tokens held by the coordinator for server connections) and `used` (server
//!   connections that exist or are being opened, i.e. the pool's `total`) live in one
//!   atomic word, so both are judged by one compare-and-swap: `used` grows only while
//!   `used < granted`, and `granted` shrinks only while `granted > used`. Hence
//!   `used <= granted` at every instant, under any interleaving.
//! - The coordinator gives a token back to the server only after taking it out of
//!   `granted`, so `granted` never exceeds the tokens held on the server: the replica's
//!   server connections never exceed its tokens.
//! - While the coordination connection is lost (`lost`), nothing new is opened and every
//!   connection is closed as soon as it is idle or comes back.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use tokio::sync::Notify;

const LOW: u64 = 0xFFFF_FFFF;

/// The tokens of one replica, shared by its pool (which spends them) and its coordinator
/// (which acquires and returns them).
#[derive(Debug)]
pub struct FleetShare {
    /// `granted << 32 | used`.
    word: AtomicU64,
    /// Connections above this are closed when they come back or sit idle.
    target: AtomicUsize,
    lost: AtomicBool,
    /// An idle connection unused this long is closed (its token goes back), down to
    /// `min_keep` connections.
    pub(crate) idle_release: Duration,
    /// Connections a replica keeps whatever their idleness (the guaranteed minimum).
    pub(crate) min_keep: usize,
    /// Woken when a checkout found no token to open a connection with.
    pub(crate) wake: Notify,
    // Gauges for the admin endpoint.
    held: AtomicUsize,
    wanted: AtomicUsize,
    replicas: AtomicUsize,
    budget: AtomicUsize,
}

/// What [`FleetShare::status`] shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FleetStatus {
    /// Tokens held on the server, the coordination connection's included.
    pub tokens_held: usize,
    /// Tokens this replica would hold if it could (connections in use plus clients
    /// waiting, capped at the pool size), the coordination connection's included.
    pub tokens_wanted: usize,
    /// Tokens covering server connections now.
    pub tokens_granted: usize,
    /// Server connections open or being opened.
    pub tokens_used: usize,
    /// Live replicas of the fleet (coordination connections holding a token).
    pub replicas: usize,
    /// The fleet's budget.
    pub budget: usize,
    /// Whether the coordination connection is lost.
    pub lost: bool,
}

fn split(word: u64) -> (usize, usize) {
    ((word >> 32) as usize, (word & LOW) as usize)
}

impl FleetShare {
    /// A share holding no token yet; lost until the coordinator has its session.
    pub fn new(idle_release: Duration, min_keep: usize) -> Self {
        FleetShare {
            word: AtomicU64::new(0),
            target: AtomicUsize::new(0),
            lost: AtomicBool::new(true),
            idle_release,
            min_keep,
            wake: Notify::new(),
            held: AtomicUsize::new(0),
            wanted: AtomicUsize::new(0),
            replicas: AtomicUsize::new(0),
            budget: AtomicUsize::new(0),
        }
    }

    /// (granted, used).
    pub fn counts(&self) -> (usize, usize) {
        split(self.word.load(SeqCst))
    }

    /// Takes one granted token for a new connection; `false` if none is free, the
    /// replica is at its target, or the coordination connection is lost.
    pub fn try_use(&self) -> bool {
        if self.lost.load(SeqCst) {
            return false;
        }
        // The target is policy (a replica above its fair share stops reopening); the
        // budget's safety rests on `granted` alone.
        let target = self.target.load(SeqCst);
        let mut current = self.word.load(SeqCst);
        loop {
            let (granted, used) = split(current);
            if used >= granted || used >= target {
                return false;
            }
            match self
                .word
                .compare_exchange_weak(current, current + 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// A connection counted by [`try_use`](Self::try_use) is closed (or was never opened).
    pub fn unuse(&self) {
        let before = self.word.fetch_sub(1, SeqCst);
        debug_assert!(before & LOW > 0, "unuse without use");
    }

    /// The coordinator acquired `n` more tokens for connections.
    pub fn grant(&self, n: usize) {
        self.word.fetch_add((n as u64) << 32, SeqCst);
    }

    /// Takes up to `n` unused tokens out of `granted`; returns how many. The caller then
    /// gives that many back to the server.
    pub fn take_back(&self, n: usize) -> usize {
        let mut current = self.word.load(SeqCst);
        loop {
            let (granted, used) = split(current);
            let k = n.min(granted.saturating_sub(used));
            if k == 0 {
                return 0;
            }
            let next = current - ((k as u64) << 32);
            match self
                .word
                .compare_exchange_weak(current, next, SeqCst, SeqCst)
            {
                Ok(_) => return k,
                Err(actual) => current = actual,
            }
        }
    }

    /// Tokens the server freed at once (the coordination session ended): nothing is
    /// granted any more; `used` connections now go uncovered until closed.
    pub fn forget_all(&self) -> usize {
        self.lost.store(true, SeqCst);
        let mut current = self.word.load(SeqCst);
        loop {
            let (granted, _) = split(current);
            let next = current & LOW;
            match self
                .word
                .compare_exchange_weak(current, next, SeqCst, SeqCst)
            {
                Ok(_) => return granted,
                Err(actual) => current = actual,
            }
        }
    }

    /// Covers the connections still open with `n` re-acquired tokens (after a new
    /// coordination session); the share is usable again once they all are.
    pub fn recover(&self, n: usize) -> bool {
        self.grant(n);
        let (granted, used) = self.counts();
        if granted >= used {
            self.lost.store(false, SeqCst);
            true
        } else {
            false
        }
    }

    /// Whether the coordination connection is lost.
    pub fn is_lost(&self) -> bool {
        self.lost.load(SeqCst)
    }

    /// Connections this replica should keep (the rest close when idle or returned).
    pub fn target(&self) -> usize {
        self.target.load(SeqCst)
    }

    pub(crate) fn set_target(&self, target: usize) {
        self.target.store(target, SeqCst);
    }

    /// Whether a pool with `total` connections has one too many.
    pub(crate) fn over(&self, total: usize) -> bool {
        self.is_lost() || total > self.target()
    }

    pub(crate) fn set_gauges(&self, held: usize, wanted: usize, replicas: usize, budget: usize) {
        self.held.store(held, SeqCst);
        self.wanted.store(wanted, SeqCst);
        self.replicas.store(replicas, SeqCst);
        self.budget.store(budget, SeqCst);
    }

    /// The numbers the admin endpoint shows.
    pub fn status(&self) -> FleetStatus {
        let (granted, used) = self.counts();
        FleetStatus {
            tokens_held: self.held.load(SeqCst),
            tokens_wanted: self.wanted.load(SeqCst),
            tokens_granted: granted,
            tokens_used: used,
            replicas: self.replicas.load(SeqCst),
            budget: self.budget.load(SeqCst),
            lost: self.is_lost(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn share() -> FleetShare {
        let s = FleetShare::new(Duration::from_secs(1), 1);
        s.lost.store(false, SeqCst);
        s.set_target(usize::MAX);
        s
    }

    #[test]
    fn uses_only_granted_tokens_and_takes_back_only_unused() {
        let s = share();
        assert!(!s.try_use());
        s.grant(2);
        assert!(s.try_use());
        assert!(s.try_use());
        assert!(!s.try_use());
        assert_eq!(s.take_back(5), 0);
        s.unuse();
        assert_eq!(s.take_back(5), 1);
        assert_eq!(s.counts(), (1, 1));
        assert_eq!(s.forget_all(), 1);
        assert!(!s.try_use());
        assert!(s.is_lost());
        assert!(s.recover(1));
        assert_eq!(s.counts(), (1, 1));
    }

    #[test]
    fn never_more_used_than_granted_under_threads() {
        let s = Arc::new(share());
        let over = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for t in 0..4 {
            let s = Arc::clone(&s);
            let over = Arc::clone(&over);
            threads.push(std::thread::spawn(move || {
                for i in 0..20_000u32 {
                    if t == 0 {
                        if i % 3 == 0 {
                            s.grant(1);
                        } else {
                            s.take_back(1);
                        }
                    } else if s.try_use() {
                        let (g, u) = s.counts();
                        if u > g {
                            over.store(true, SeqCst);
                        }
                        s.unuse();
                    }
                    let (g, u) = s.counts();
                    if u > g {
                        over.store(true, SeqCst);
                    }
                }
            }));
        }
        for t in threads {
            t.join().expect("thread");
        }
        assert!(!over.load(SeqCst));
    }
}
