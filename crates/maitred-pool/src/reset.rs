//! Resetting dirty connections off the client's path, in a spawned task.

use std::sync::Arc;

use tokio::runtime::Handle;

use crate::manager::Manager;
use crate::shared::{Pooled, Shared};
use crate::stats::bump;

/// Spawns a task that resets `pooled` and returns it to the pool, or closes
/// it. Without a current Tokio runtime the connection is closed at once.
/// Either way its slot stays counted until it is back or closed.
pub(crate) fn reset_then_return<M: Manager>(
    shared: &Arc<Shared<M>>,
    pooled: Pooled<M::Connection>,
) {
    if shared.is_closed() {
        shared.close_conn(pooled);
        return;
    }
    match Handle::try_current() {
        Ok(handle) => {
            let task = ResetTask {
                shared: Arc::clone(shared),
                pooled: Some(pooled),
            };
            drop(handle.spawn(task.run()));
        }
        Err(_) => {
            bump(&shared.counters.reset_failures);
            tracing::warn!(
                pool = %shared.name(),
                "dirty connection returned outside a Tokio runtime; closing it instead of resetting"
            );
            shared.close_conn(pooled);
        }
    }
}

/// Owns a connection being reset; if the task is dropped unfinished (runtime
/// shutting down), the connection is closed and its slot freed.
struct ResetTask<M: Manager> {
    shared: Arc<Shared<M>>,
    pooled: Option<Pooled<M::Connection>>,
}

impl<M: Manager> ResetTask<M> {
    async fn run(mut self) {
        let Some(pooled) = self.pooled.as_mut() else {
            return;
        };
        let shared = &self.shared;
        let timeout = shared.settings().connect_timeout;
        let outcome = tokio::time::timeout(timeout, shared.manager.reset(&mut pooled.conn)).await;
        match outcome {
            Ok(Ok(())) => {
                bump(&shared.counters.resets);
                if let Some(pooled) = self.pooled.take() {
                    self.shared.checkin(pooled);
                }
            }
            Ok(Err(error)) => {
                bump(&shared.counters.reset_failures);
                tracing::warn!(pool = %shared.name(), %error, "reset failed; closing server connection");
            }
            Err(_) => {
                bump(&shared.counters.reset_failures);
                tracing::warn!(pool = %shared.name(), ?timeout, "reset timed out; closing server connection");
            }
        }
        // Drop closes what is still held.
    }
}

impl<M: Manager> Drop for ResetTask<M> {
    fn drop(&mut self) {
        if let Some(pooled) = self.pooled.take() {
            self.shared.close_conn(pooled);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::Duration;

    use crate::test_support::{fake_pool, settings, settle};

    #[tokio::test(start_paused = true)]
    async fn failed_reset_closes_the_connection() {
        let (pool, fake) = fake_pool(settings(1));
        fake.fail_resets.store(true, SeqCst);
        let mut lease = pool.checkout().await.expect("checkout");
        lease.mark_dirty();
        drop(lease);
        settle().await;
        assert_eq!(fake.closed.load(SeqCst), 1);
        assert_eq!(pool.state().size, 0);
        assert_eq!(pool.stats().reset_failures, 1);
        assert_eq!(pool.stats().resets, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn hung_reset_is_bounded_by_connect_timeout() {
        let mut s = settings(1);
        s.connect_timeout = Duration::from_secs(1);
        let (pool, fake) = fake_pool(s);
        fake.reset_delay_ms.store(60_000, SeqCst);
        let mut lease = pool.checkout().await.expect("checkout");
        lease.mark_dirty();
        drop(lease);
        // A waiter gets a fresh connection once the hung reset gives up.
        let lease = pool.checkout().await.expect("checkout");
        assert_eq!(lease.id, 1);
        assert_eq!(pool.stats().reset_failures, 1);
        assert_eq!(fake.live(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn dirty_lease_returned_after_close_is_closed() {
        let (pool, fake) = fake_pool(settings(1));
        let mut lease = pool.checkout().await.expect("checkout");
        lease.mark_dirty();
        pool.close();
        drop(lease);
        settle().await;
        assert_eq!(fake.reset_calls.load(SeqCst), 0);
        assert_eq!(fake.live(), 0);
        assert_eq!(pool.state().size, 0);
    }
}
