//! The per-pool maintenance task: closes expired or dead idle connections and
//! keeps `min_idle` connections warm. Never on the checkout path.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

use crate::manager::Manager;
use crate::shared::{Health, Shared, SlotGuard};

/// Lower bound on the interval, so a zero setting cannot spin.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Spawns the pool's maintenance task, once. Panics outside a Tokio runtime.
pub(crate) fn start<M: Manager>(shared: &Arc<Shared<M>>) {
    if shared.maintenance_started.swap(true, SeqCst) {
        return;
    }
    let period = shared.settings().maintenance_interval.max(MIN_INTERVAL);
    tokio::spawn(run(Arc::downgrade(shared), period));
}

/// Holds only a `Weak` between rounds: ends once the pool is gone or closed.
async fn run<M: Manager>(pool: Weak<Shared<M>>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Some(shared) = pool.upgrade() else {
            break;
        };
        if shared.is_closed() {
            break;
        }
        shared.maintain().await;
    }
}

impl<M: Manager> Shared<M> {
    /// One maintenance round.
    pub(crate) async fn maintain(&self) {
        self.reap_idle();
        self.prewarm().await;
    }

    /// Looks at each idle connection once: closes expired or dead ones, puts
    /// the others back. A connection popped here keeps its slot, so a
    /// checkout that finds the queue momentarily empty at `max_size` waits
    /// and gets it dispatched when it is put back (or gets the freed slot).
    fn reap_idle(&self) {
        let now = Instant::now();
        for _ in 0..self.idle_len() {
            let Some(mut pooled) = self.pop_idle() else {
                break;
            };
            let slot = SlotGuard::new(self);
            match self.health(&mut pooled, now) {
                Health::Usable => {
                    slot.keep();
                    self.push_idle(pooled);
                }
                health => self.drop_unhealthy(pooled, health),
            }
        }
    }

    /// Opens connections until `min_idle` are idle, while nobody waits (a
    /// waiter gets a slot grant and connects by itself).
    async fn prewarm(&self) {
        // Not a settings guard held across the connects below (arc-swap's fast slots).
        let target = {
            let settings = self.settings();
            settings.min_idle.min(settings.max_size)
        };
        while !self.is_closed() && self.waiters.waiting() == 0 && self.idle_len() < target {
            // While the server fails, only when a probe is due (see gate.rs).
            let Some(permit) = self.gate.try_pass() else {
                break;
            };
            if !self.try_reserve() {
                break;
            }
            let slot = SlotGuard::new(self);
            match self.open().await {
                Ok(pooled) => {
                    permit.succeeded();
                    slot.keep();
                    self.push_idle(pooled);
                }
                // Logged and counted by open(); try again next round.
                Err(e) => {
                    permit.failed(e.describe());
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::test_support::{fake_pool, settings, settle};

    #[tokio::test(start_paused = true)]
    async fn maintenance_closes_idle_and_old_connections() {
        let mut s = settings(4);
        s.idle_timeout = Some(Duration::from_secs(5));
        s.max_lifetime = Some(Duration::from_secs(60));
        let (pool, fake) = fake_pool(s);
        pool.start_maintenance();
        let a = pool.checkout().await.expect("checkout");
        let b = pool.checkout().await.expect("checkout");
        let c = pool.checkout().await.expect("checkout");
        drop(a);
        drop(b);
        tokio::time::sleep(Duration::from_millis(6_500)).await;
        assert_eq!(pool.state().size, 1, "two idle ones expired");
        assert_eq!(pool.stats().closed_expired, 2);
        // Keep `c` busy past its lifetime: it is closed when it comes back.
        tokio::time::sleep(Duration::from_secs(55)).await;
        drop(c);
        assert_eq!(pool.state().size, 0, "too old to go back");
        assert_eq!(fake.live(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn maintenance_closes_dead_idle_connections() {
        let (pool, fake) = fake_pool(settings(2));
        pool.start_maintenance();
        drop(pool.checkout().await.expect("checkout"));
        fake.all_dead.store(true, SeqCst);
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(pool.state().size, 0);
        assert_eq!(pool.stats().closed_broken, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn maintenance_prewarms_min_idle() {
        let mut s = settings(5);
        s.min_idle = 3;
        let (pool, fake) = fake_pool(s);
        pool.start_maintenance();
        pool.start_maintenance(); // idempotent
        assert_eq!(
            pool.state().size,
            0,
            "nothing opened before the first round"
        );
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!((pool.state().size, pool.state().idle), (3, 3));
        // Checked out ones are replaced so that min_idle stay idle.
        let _a = pool.checkout().await.expect("checkout");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!((pool.state().size, pool.state().idle), (4, 3));
        assert_eq!(fake.opened.load(SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn prewarm_stops_at_max_size_and_on_connect_failure() {
        let mut s = settings(2);
        s.min_idle = 5;
        let (pool, fake) = fake_pool(s);
        pool.start_maintenance();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(pool.state().size, 2);

        let (pool, fake2) = fake_pool({
            let mut s = settings(2);
            s.min_idle = 2;
            s
        });
        fake2.fail_connects.store(true, SeqCst);
        pool.start_maintenance();
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(pool.state().size, 0);
        assert_eq!(fake2.connect_calls.load(SeqCst), 2, "one attempt per round");
        assert_eq!(fake.opened.load(SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn maintenance_task_does_not_keep_the_pool_alive() {
        let (pool, fake) = fake_pool(settings(2));
        pool.start_maintenance();
        drop(pool.checkout().await.expect("checkout"));
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            1
        );
        drop(pool);
        assert_eq!(Arc::strong_count(&fake), 1, "pool and manager freed");
        assert_eq!(fake.live(), 0, "idle connection closed with the pool");
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            0,
            "maintenance task ended"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn maintenance_pop_makes_checkouts_wait_not_fail() {
        // A checkout that runs while maintenance holds the only connection
        // must queue and get it back, not open a second one.
        let mut s = settings(1);
        s.idle_timeout = Some(Duration::from_secs(3600));
        let (pool, fake) = fake_pool(s);
        drop(pool.checkout().await.expect("checkout"));
        let shared = pool.shared_for_tests();
        let held = shared.pop_idle().expect("idle connection");
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move { pool.checkout().await.map(|lease| lease.id) }
        });
        settle().await;
        assert_eq!(pool.state().waiting, 1);
        shared.push_idle(held);
        assert_eq!(waiter.await.expect("task").expect("checkout"), 0);
        assert_eq!(fake.opened.load(SeqCst), 1);
    }
}
