//! Pool core micro-benchmarks with a trivial manager (connections are counters, connect and
//! reset cannot fail): checkout + checkin uncontended, and with 8 tasks contending for a
//! pool of 2 on a 2-worker runtime (each checkout there usually parks in the wait queue
//! and is handed a connection by another task's checkin).
//!
//! `cargo bench -p maitred-bench --bench pool`

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use maitred_pool::{Manager, Pool, PoolSettings};

/// Opens "connections" that are just numbers.
struct Counter(AtomicU64);

impl Manager for Counter {
    type Connection = u64;
    type Error = Infallible;

    async fn connect(&self) -> Result<u64, Infallible> {
        Ok(self.0.fetch_add(1, Ordering::Relaxed))
    }

    fn is_alive(&self, _conn: &mut u64) -> bool {
        true
    }

    async fn reset(&self, _conn: &mut u64) -> Result<(), Infallible> {
        Ok(())
    }
}

fn pool(size: usize) -> Pool<Counter> {
    let mut s = PoolSettings::new("bench", size);
    s.queue_timeout = Duration::from_secs(30);
    Pool::new(Counter(AtomicU64::new(0)), s)
}

fn uncontended(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let p = pool(10);
    c.bench_function("pool/checkout+checkin, uncontended", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let lease = p.checkout().await.expect("checkout");
                    std::hint::black_box(*lease);
                }
                start.elapsed()
            })
        })
    });
    // Only the first checkout opened a connection: every other one reused it.
    assert_eq!(p.manager().0.load(Ordering::Relaxed), 1);
}

fn contended(c: &mut Criterion) {
    const TASKS: u64 = 8;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let p = pool(2);
    c.bench_function("pool/checkout+checkin, 8 tasks on a pool of 2", |b| {
        b.iter_custom(|iters| {
            let per_task = iters.div_ceil(TASKS);
            rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|_| {
                        let p = p.clone();
                        tokio::spawn(async move {
                            for _ in 0..per_task {
                                let lease = p.checkout().await.expect("checkout");
                                // Hold it across a yield, as a relayed transaction would.
                                tokio::task::yield_now().await;
                                std::hint::black_box(*lease);
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("task");
                }
                // Time per checkout, over all of them.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_task * TASKS) as f64)
            })
        })
    });
    assert!(p.manager().0.load(Ordering::Relaxed) <= 2);
}

criterion_group!(benches, uncontended, contended);
criterion_main!(benches);
