//! The per-pool queue-timeout sweeper: one task that tells parked checkouts
//! their `queue_timeout` passed, instead of one timer per waiter (see
//! `waiters.rs`). Started by the first checkout that parks.
//!
//! It sleeps until the earliest deadline in the queue, or until woken
//! ([`WaitQueue::rearm`](crate::waiters::WaitQueue)) because a waiter joined an
//! empty queue, the settings changed, or the pool closed. Between rounds it
//! holds only a `Weak`, and it looks at least once a second, so it ends soon
//! after the pool is dropped or closed.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::manager::Manager;
use crate::shared::Shared;

/// The longest the sweeper sleeps without looking whether its pool still exists.
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// Spawns the pool's sweeper, once. Needs a Tokio runtime (the caller is a
/// checkout, so there is one); the pool is then served by that runtime.
pub(crate) fn ensure_started<M: Manager>(shared: &Arc<Shared<M>>) {
    if shared.sweeper_started.load(SeqCst) || shared.sweeper_started.swap(true, SeqCst) {
        return;
    }
    let rearm = Arc::clone(&shared.waiters.rearm);
    tokio::spawn(run(Arc::downgrade(shared), rearm));
}

async fn run<M: Manager>(pool: Weak<Shared<M>>, rearm: Arc<tokio::sync::Notify>) {
    loop {
        let next = {
            let Some(shared) = pool.upgrade() else {
                break;
            };
            if shared.is_closed() {
                break;
            }
            shared.waiters.expire(Instant::now())
        };
        let look = Instant::now() + IDLE_LOOK;
        let until = next.map_or(look, |deadline| deadline.min(look));
        // A wake-up sent since `expire` is kept as a permit: nothing is missed.
        tokio::select! {
            () = tokio::time::sleep_until(until) => {}
            () = rearm.notified() => {}
        }
    }
}
