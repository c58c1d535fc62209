//! A fake [`Manager`] for the unit and stress tests: counts opens, closes and
//! resets, and can be told to fail connects or resets, to be slow, or to
//! report connections dead.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use crate::{Manager, Pool, PoolSettings};

/// What the fake server reports when told to fail.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct FakeError(pub(crate) String);

/// Knobs and counters shared by the test and the manager.
#[derive(Debug, Default)]
pub(crate) struct FakeState {
    /// Connections created.
    pub(crate) opened: AtomicUsize,
    /// Connections dropped.
    pub(crate) closed: AtomicUsize,
    /// Connections alive right now.
    pub(crate) open_now: AtomicUsize,
    /// Highest `open_now` ever seen.
    pub(crate) max_open: AtomicUsize,
    /// Calls to `connect`.
    pub(crate) connect_calls: AtomicUsize,
    /// Successful resets.
    pub(crate) resets: AtomicUsize,
    /// Calls to `reset`.
    pub(crate) reset_calls: AtomicUsize,
    /// Every connect fails while set.
    pub(crate) fail_connects: AtomicBool,
    /// Every n-th connect call fails (0 = never).
    pub(crate) fail_connect_every: AtomicUsize,
    /// Every reset fails while set.
    pub(crate) fail_resets: AtomicBool,
    /// Every n-th reset call fails (0 = never).
    pub(crate) fail_reset_every: AtomicUsize,
    /// `is_alive` answers false for every connection while set.
    pub(crate) all_dead: AtomicBool,
    /// How long connect takes (ms; 0 = just yield).
    pub(crate) connect_delay_ms: AtomicU64,
    /// How long reset takes (ms; 0 = just yield).
    pub(crate) reset_delay_ms: AtomicU64,
    next_id: AtomicU64,
}

impl FakeState {
    /// `opened - closed`.
    pub(crate) fn live(&self) -> usize {
        self.opened.load(SeqCst) - self.closed.load(SeqCst)
    }
}

/// A fake server connection.
#[derive(Debug)]
pub(crate) struct FakeConn {
    /// Unique per connection, in opening order from 0.
    pub(crate) id: u64,
    /// Set by tests to simulate session state; cleared by reset.
    pub(crate) dirty: bool,
    /// Set by tests: `is_alive` then answers false.
    pub(crate) broken: bool,
    state: Arc<FakeState>,
}

impl Drop for FakeConn {
    fn drop(&mut self) {
        self.state.open_now.fetch_sub(1, SeqCst);
        self.state.closed.fetch_add(1, SeqCst);
    }
}

/// The fake manager.
#[derive(Debug, Default)]
pub(crate) struct FakeManager {
    pub(crate) state: Arc<FakeState>,
}

async fn pause(ms: u64) {
    if ms == 0 {
        tokio::task::yield_now().await;
    } else {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

fn nth_fails(every: usize, call: usize) -> bool {
    every != 0 && call % every == 0
}

impl Manager for FakeManager {
    type Connection = FakeConn;
    type Error = FakeError;

    async fn connect(&self) -> Result<FakeConn, FakeError> {
        // Failure is decided when the call starts, then the delay runs.
        let call = self.state.connect_calls.fetch_add(1, SeqCst) + 1;
        let fail = self.state.fail_connects.load(SeqCst)
            || nth_fails(self.state.fail_connect_every.load(SeqCst), call);
        pause(self.state.connect_delay_ms.load(SeqCst)).await;
        if fail {
            return Err(FakeError(
                "FATAL: the database system is starting up".into(),
            ));
        }
        let now = self.state.open_now.fetch_add(1, SeqCst) + 1;
        self.state.max_open.fetch_max(now, SeqCst);
        self.state.opened.fetch_add(1, SeqCst);
        Ok(FakeConn {
            id: self.state.next_id.fetch_add(1, SeqCst),
            dirty: false,
            broken: false,
            state: Arc::clone(&self.state),
        })
    }

    fn is_alive(&self, conn: &mut FakeConn) -> bool {
        !conn.broken && !self.state.all_dead.load(SeqCst)
    }

    async fn reset(&self, conn: &mut FakeConn) -> Result<(), FakeError> {
        let call = self.state.reset_calls.fetch_add(1, SeqCst) + 1;
        let fail = self.state.fail_resets.load(SeqCst)
            || nth_fails(self.state.fail_reset_every.load(SeqCst), call);
        pause(self.state.reset_delay_ms.load(SeqCst)).await;
        if fail {
            return Err(FakeError("server closed the connection".into()));
        }
        conn.dirty = false;
        self.state.resets.fetch_add(1, SeqCst);
        Ok(())
    }
}

/// Settings named "test" with expiry off, so tests opt into what they check.
pub(crate) fn settings(max_size: usize) -> PoolSettings {
    let mut settings = PoolSettings::new("test", max_size);
    settings.idle_timeout = None;
    settings.max_lifetime = None;
    settings
}

/// A pool over a fresh fake manager, and the manager's state.
pub(crate) fn fake_pool(settings: PoolSettings) -> (Pool<FakeManager>, Arc<FakeState>) {
    let manager = FakeManager::default();
    let state = Arc::clone(&manager.state);
    (Pool::new(manager, settings), state)
}

/// Lets spawned tasks (resets, waiters) run on a current-thread test runtime.
pub(crate) async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}
