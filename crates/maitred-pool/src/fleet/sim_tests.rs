//! A fleet of pools over one in-memory "server" (a lock table whose tokens a session holds
//! until it ends), under random load on a multi-thread runtime: the server connections
//! open plus the coordination sessions holding tokens never exceed the budget, every
//! checkout succeeds, and tokens move to the busy pool.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Coordinator, FleetSettings, Survey};
use crate::test_support::{settings, FakeManager, FakeState};
use crate::Pool;

#[derive(Default)]
struct Server {
    /// token -> session id
    locks: Mutex<HashMap<u32, u64>>,
    wanting: Mutex<HashMap<u64, bool>>,
    next: AtomicUsize,
}

impl Server {
    /// Sessions holding at least one token.
    fn holders(&self) -> usize {
        let locks = self.locks.lock().expect("locks");
        let mut ids: Vec<u64> = locks.values().copied().collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

struct MemCoordinator(Arc<Server>);

struct MemSession {
    id: u64,
    server: Arc<Server>,
}

impl Drop for MemSession {
    fn drop(&mut self) {
        self.server
            .locks
            .lock()
            .expect("locks")
            .retain(|_, s| *s != self.id);
        self.server
            .wanting
            .lock()
            .expect("wanting")
            .remove(&self.id);
    }
}

#[derive(Debug)]
struct Never;
impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl Coordinator for MemCoordinator {
    type Session = MemSession;
    type Error = Never;

    async fn open(&self) -> Result<MemSession, Never> {
        Ok(MemSession {
            id: self.0.next.fetch_add(1, SeqCst) as u64,
            server: Arc::clone(&self.0),
        })
    }

    async fn auto_budget<'a>(&'a self, _s: &'a mut MemSession) -> Result<usize, Never> {
        Ok(10)
    }

    async fn acquire<'a>(
        &'a self,
        s: &'a mut MemSession,
        budget: usize,
        held: &'a [u32],
        n: usize,
    ) -> Result<Vec<u32>, Never> {
        tokio::task::yield_now().await;
        let mut locks = self.0.locks.lock().expect("locks");
        let mut got = Vec::new();
        for i in 0..budget as u32 {
            if got.len() == n {
                break;
            }
            if held.contains(&i) || locks.contains_key(&i) {
                continue;
            }
            locks.insert(i, s.id);
            got.push(i);
        }
        Ok(got)
    }

    async fn release<'a>(&'a self, s: &'a mut MemSession, tokens: &'a [u32]) -> Result<(), Never> {
        tokio::task::yield_now().await;
        let mut locks = self.0.locks.lock().expect("locks");
        for t in tokens {
            assert_eq!(locks.remove(t), Some(s.id), "released a token not held");
        }
        Ok(())
    }

    async fn survey<'a>(
        &'a self,
        s: &'a mut MemSession,
        _budget: usize,
        wanting: bool,
    ) -> Result<Survey, Never> {
        tokio::task::yield_now().await;
        let w = {
            let mut map = self.0.wanting.lock().expect("wanting");
            map.insert(s.id, wanting);
            map.values().filter(|w| **w).count()
        };
        let held = self.0.locks.lock().expect("locks").len();
        Ok(Survey {
            replicas: self.0.holders(),
            wanting: w,
            held,
        })
    }
}

fn fleet_settings(budget: usize) -> FleetSettings {
    let mut s = FleetSettings::new("sim", Some(budget));
    s.tick = Duration::from_millis(5);
    s.idle_release = Duration::from_millis(50);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_never_exceeds_its_budget_and_load_moves() {
    const BUDGET: usize = 12;
    const REPLICAS: usize = 4;
    let server = Arc::new(Server::default());
    let conns = Arc::new(FakeState::default());
    let mut pools = Vec::new();
    for _ in 0..REPLICAS {
        let manager = FakeManager {
            state: Arc::clone(&conns),
        };
        let mut s = settings(8);
        s.queue_timeout = Duration::from_secs(20);
        let pool = Pool::new(manager, s);
        super::start(
            &pool,
            MemCoordinator(Arc::clone(&server)),
            fleet_settings(BUDGET),
        );
        pools.push(pool);
    }
    // The observer: data connections open plus sessions holding tokens.
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let observer = tokio::spawn({
        let (server, conns, stop, peak) = (
            Arc::clone(&server),
            Arc::clone(&conns),
            Arc::clone(&stop),
            Arc::clone(&peak),
        );
        async move {
            while !stop.load(SeqCst) {
                let n = conns.open_now.load(SeqCst) + server.holders();
                peak.fetch_max(n, SeqCst);
                tokio::task::yield_now().await;
            }
        }
    });
    // Phase 1: every pool busy. Phase 2: only pool 0 busy. Phase 3: all busy again.
    let run = |pool: Pool<FakeManager>, clients: usize, millis: u64| {
        (0..clients)
            .map(move |c| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let end = tokio::time::Instant::now() + Duration::from_millis(millis);
                    let mut n = 0u64;
                    while tokio::time::Instant::now() < end {
                        let lease = pool.checkout().await.expect("checkout");
                        n += 1;
                        if (n + c as u64) % 3 == 0 {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        } else {
                            tokio::task::yield_now().await;
                        }
                        drop(lease);
                    }
                })
            })
            .collect::<Vec<_>>()
    };
    let mut tasks = Vec::new();
    for pool in &pools {
        tasks.extend(run(pool.clone(), 10, 400));
    }
    for t in tasks.drain(..) {
        t.await.expect("client");
    }
    tasks.extend(run(pools[0].clone(), 20, 600));
    for t in tasks.drain(..) {
        t.await.expect("client");
    }
    let busy_held = pools[0].fleet().expect("fleet").tokens_held;
    for pool in &pools {
        tasks.extend(run(pool.clone(), 10, 400));
    }
    for t in tasks.drain(..) {
        t.await.expect("client");
    }
    stop.store(true, SeqCst);
    observer.await.expect("observer");
    let peak = peak.load(SeqCst);
    assert!(peak <= BUDGET, "peak {peak} above budget {BUDGET}");
    // 4 coordination tokens, 3 idle pools keep one each, one token left free: 4 for it,
    // plus its coordination token.
    assert!(busy_held >= 5, "the busy pool held only {busy_held} tokens");
    for pool in &pools {
        pool.close();
    }
}
