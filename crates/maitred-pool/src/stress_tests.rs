//! Stress tests on a multi-thread runtime: the size bound under every race,
//! no lost connection, and no lost wakeup between a connection coming back
//! and a checkout starting to wait.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::test_support::{fake_pool, settings, FakeManager, FakeState};
use crate::{CheckoutError, Pool};

/// xorshift64*: deterministic per-task randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// How each checkout ended.
#[derive(Debug, Default)]
struct Tally {
    ok: AtomicUsize,
    queue_timeout: AtomicUsize,
    queue_full: AtomicUsize,
    connect: AtomicUsize,
    connect_timeout: AtomicUsize,
    closed: AtomicUsize,
    cancelled: AtomicUsize,
    /// Checkouts whose request was sent ahead on a connection then lost.
    lost: AtomicUsize,
    /// Leases handed over with the request sent ahead.
    sent: AtomicUsize,
}

impl Tally {
    fn total(&self) -> usize {
        [
            &self.ok,
            &self.queue_timeout,
            &self.queue_full,
            &self.connect,
            &self.connect_timeout,
            &self.closed,
            &self.cancelled,
            &self.lost,
        ]
        .iter()
        .map(|n| n.load(SeqCst))
        .sum()
    }
}

const MAX_SIZE: usize = 8;
const TASKS: u64 = 2_000;
const CHECKOUTS_PER_TASK: u64 = 3;

async fn client(pool: Pool<FakeManager>, tally: Arc<Tally>, seed: u64) {
    let mut rng = Rng::new(seed);
    // Staggered arrivals: overload comes and goes instead of one wall.
    tokio::time::sleep(Duration::from_micros(rng.below(300_000))).await;
    for _ in 0..CHECKOUTS_PER_TASK {
        let attempt = if rng.below(10) == 0 {
            // Cancelled from outside: the future is dropped mid-wait or mid-connect.
            let limit = Duration::from_micros(rng.below(3_000));
            match tokio::time::timeout(limit, pool.checkout()).await {
                Ok(result) => result,
                Err(_) => {
                    tally.cancelled.fetch_add(1, SeqCst);
                    continue;
                }
            }
        } else if rng.below(2) == 0 {
            pool.checkout_ahead(crate::Ahead {
                request: bytes::Bytes::from_static(b"q"),
                affinity: rng.below(2).into(),
                requires: None,
            })
            .await
        } else {
            pool.checkout().await
        };
        let mut lease = match attempt {
            Ok(lease) => lease,
            Err(error) => {
                let bucket = match error {
                    CheckoutError::QueueTimeout { .. } => &tally.queue_timeout,
                    CheckoutError::QueueFull { .. } => &tally.queue_full,
                    CheckoutError::Connect { .. } | CheckoutError::ServerUnreachable { .. } => {
                        &tally.connect
                    }
                    CheckoutError::ConnectTimeout { .. } => &tally.connect_timeout,
                    CheckoutError::Closed { .. } => &tally.closed,
                    CheckoutError::SentAheadLost { .. } => &tally.lost,
                };
                bucket.fetch_add(1, SeqCst);
                continue;
            }
        };
        tally.ok.fetch_add(1, SeqCst);
        if lease.request_sent() {
            tally.sent.fetch_add(1, SeqCst);
        }
        // Send the next waiter's request ahead, then hand over, or lose it.
        if rng.below(3) == 0 {
            if let Some(successor) = lease.claim_successor(rng.below(2), |_| true) {
                tokio::task::yield_now().await;
                if rng.below(8) == 0 {
                    lease.mark_dirty();
                    drop(successor);
                } else if let Err(mut back) = successor.hand_over(lease) {
                    back.mark_dirty();
                }
                continue;
            }
        }
        match rng.below(4) {
            0 => tokio::task::yield_now().await,
            1 => {}
            _ => tokio::time::sleep(Duration::from_micros(rng.below(1_000))).await,
        }
        match rng.below(100) {
            0..=14 => {
                lease.dirty = true;
                lease.mark_dirty();
            }
            15..=19 => {
                lease.discard();
                continue;
            }
            20..=22 => lease.broken = true,
            _ => {}
        }
        drop(lease);
    }
}

/// Waits (real time) until the pool is quiescent: nobody waiting, every
/// counted connection idle, and the fake server holding exactly those. A
/// leaked slot or connection never gets there.
async fn wait_quiescent(pool: &Pool<FakeManager>, fake: &FakeState) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = pool.state();
        if state.waiting == 0 && state.size == state.idle && fake.live() == state.size {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pool never settled: {state:?}, fake live {}",
            fake.live()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_many_tasks_never_exceed_max_size_nor_lose_connections() {
    let mut s = settings(MAX_SIZE);
    s.min_idle = 2;
    s.max_waiting = 500;
    s.queue_timeout = Duration::from_millis(60);
    s.connect_timeout = Duration::from_millis(200);
    s.idle_timeout = Some(Duration::from_millis(3));
    s.max_lifetime = Some(Duration::from_millis(25));
    s.maintenance_interval = Duration::from_millis(2);
    let (pool, fake) = fake_pool(s);
    fake.fail_connect_every.store(13, SeqCst);
    fake.fail_reset_every.store(7, SeqCst);
    pool.start_maintenance();

    // Watches the bound from outside while the storm runs.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn({
        let pool = pool.clone();
        let fake = Arc::clone(&fake);
        let stop = Arc::clone(&stop);
        async move {
            while !stop.load(SeqCst) {
                let state = pool.state();
                assert!(state.size <= MAX_SIZE, "{state:?}");
                assert!(fake.open_now.load(SeqCst) <= MAX_SIZE);
                tokio::task::yield_now().await;
            }
        }
    });

    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..TASKS)
        .map(|seed| tokio::spawn(client(pool.clone(), Arc::clone(&tally), seed)))
        .collect();
    for client in clients {
        client.await.expect("client task panicked");
    }
    stop.store(true, SeqCst);
    watcher.await.expect("watcher saw the bound broken");

    assert_eq!(
        tally.total(),
        usize::try_from(TASKS * CHECKOUTS_PER_TASK).expect("fits"),
        "every checkout accounted for: {tally:?}"
    );
    assert_eq!(tally.closed.load(SeqCst), 0, "{tally:?}");
    assert!(tally.ok.load(SeqCst) > 0, "{tally:?}");
    assert!(
        tally.sent.load(SeqCst) > 0,
        "no request was sent ahead: {tally:?}"
    );
    assert!(
        fake.max_open.load(SeqCst) <= MAX_SIZE,
        "max open {} > {MAX_SIZE}",
        fake.max_open.load(SeqCst)
    );

    wait_quiescent(&pool, &fake).await;
    let stats = pool.stats();
    println!("{tally:?}\n{stats:?}");
    assert!(stats.connects > 0 && stats.resets > 0, "{stats:?}");

    pool.close();
    let state = pool.state();
    assert_eq!((state.size, state.idle, state.waiting), (0, 0, 0));
    assert_eq!(fake.live(), 0);
    assert_eq!(fake.open_now.load(SeqCst), 0);
}

/// One thread returns the only connection (or discards it, freeing its slot)
/// at the very moment another starts a checkout, released together by a
/// barrier, many times over. If the returner could miss the new waiter and
/// the waiter miss the returned connection (the Dekker race the SeqCst
/// fences close), the checkout would sleep until queue_timeout: nothing
/// else happens in the pool to wake it.
#[test]
fn no_lost_wakeup_between_checkin_and_waiter_registration() {
    const ROUNDS: u64 = 20_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut s = settings(1);
    s.queue_timeout = Duration::from_secs(1);
    let (pool, fake) = fake_pool(s);
    let barrier = Arc::new(Barrier::new(2));
    let failed = Arc::new(AtomicBool::new(false));

    let returner = std::thread::spawn({
        let pool = pool.clone();
        let handle = runtime.handle().clone();
        let barrier = Arc::clone(&barrier);
        let failed = Arc::clone(&failed);
        move || {
            let mut rng = Rng::new(1);
            for round in 0..ROUNDS {
                let lease = handle.block_on(pool.checkout());
                if lease.is_err() {
                    failed.store(true, SeqCst);
                }
                barrier.wait(); // both ready
                spin(&mut rng);
                match lease {
                    // Back to idle: push, then look for waiters.
                    Ok(lease) if round % 2 == 0 => drop(lease),
                    // Frees the slot, then looks for waiters.
                    Ok(lease) => lease.discard(),
                    Err(_) => {}
                }
                barrier.wait(); // the taker is done
                if failed.load(SeqCst) {
                    break;
                }
            }
        }
    });
    let taker = std::thread::spawn({
        let pool = pool.clone();
        let handle = runtime.handle().clone();
        let barrier = Arc::clone(&barrier);
        let failed = Arc::clone(&failed);
        move || {
            let mut rng = Rng::new(2);
            // On failure both threads stop together after the round (no
            // panic here: the returner would wait at the barrier forever).
            let mut failures = Vec::new();
            for round in 0..ROUNDS {
                barrier.wait();
                spin(&mut rng);
                let started = std::time::Instant::now();
                match handle.block_on(pool.checkout()) {
                    Ok(lease) => drop(lease),
                    Err(error) => failures.push(format!("round {round}: {error}")),
                }
                if started.elapsed() > Duration::from_millis(500) {
                    failures.push(format!("round {round}: slept next to a free connection"));
                }
                if !failures.is_empty() {
                    failed.store(true, SeqCst);
                }
                barrier.wait();
                if !failures.is_empty() {
                    break;
                }
            }
            failures
        }
    });
    returner.join().expect("returner");
    let failures = taker.join().expect("taker");
    assert!(failures.is_empty(), "lost wakeup: {failures:?}");
    assert!(!failed.load(SeqCst), "returner checkout failed");
    let stats = pool.stats();
    assert_eq!(stats.queue_timeouts, 0);
    assert_eq!(stats.checkouts, 2 * ROUNDS);
    assert_eq!(pool.state().size, pool.state().idle);
    assert!(fake.max_open.load(SeqCst) <= 1);
}

/// Threads released together all take the lock-free fast path on a pool with
/// free slots, so their slot reservations race at the bound itself (in the
/// storm above most reservations near the bound happen under the queue lock).
#[test]
fn burst_of_fast_path_checkouts_never_exceeds_max_size() {
    const THREADS: usize = 12;
    const MAX: usize = 4;
    const ROUNDS: usize = 150;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut s = settings(MAX);
    s.queue_timeout = Duration::from_millis(1);
    let (pool, fake) = fake_pool(s);
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|n| {
            let pool = pool.clone();
            let fake = Arc::clone(&fake);
            let handle = runtime.handle().clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut rng = Rng::new(n as u64 + 10);
                let mut got = 0_usize;
                for round in 0..ROUNDS {
                    barrier.wait(); // everyone starts together
                    spin(&mut rng);
                    let lease = handle.block_on(pool.checkout());
                    got += usize::from(lease.is_ok());
                    let size = pool.state().size;
                    let open = fake.open_now.load(SeqCst);
                    barrier.wait(); // everyone holds what they got
                    match lease {
                        Ok(lease) if round % 3 == 0 => lease.discard(),
                        other => drop(other),
                    }
                    // Reported after the barrier so no thread is left waiting.
                    if size > MAX || open > MAX {
                        return Err(format!("round {round}: size {size}, open {open}"));
                    }
                }
                Ok(got)
            })
        })
        .collect();
    let mut served = 0;
    for thread in threads {
        served += thread.join().expect("thread").expect("bound held");
    }
    assert!(
        fake.max_open.load(SeqCst) <= MAX,
        "max open {}",
        fake.max_open.load(SeqCst)
    );
    assert!(served >= ROUNDS * MAX / 2, "served {served}");
    assert_eq!(pool.state().size, pool.state().idle);
    assert_eq!(fake.live(), pool.state().size);
}

/// Busy-waits a random short while to vary the interleaving.
fn spin(rng: &mut Rng) {
    for _ in 0..rng.below(200) {
        std::hint::spin_loop();
    }
}
