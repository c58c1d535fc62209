//! Tests of what operators do to a running pool: reconfigure (reload), pause/resume,
//! reconnect, and how the pool backs off from a failing server.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use crate::gate::{FIRST_BACKOFF, MAX_BACKOFF};
use crate::test_support::{fake_pool, settings, settle};
use crate::CheckoutError;

#[tokio::test(start_paused = true)]
async fn growing_max_size_serves_waiters_at_once() {
    let (pool, fake) = fake_pool(settings(1));
    let held = pool.checkout().await.expect("checkout");
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.checkout().await.map(drop) }
    });
    settle().await;
    assert_eq!(pool.state().waiting, 1);
    pool.reconfigure(settings(2));
    waiter.await.expect("task").expect("served by the new slot");
    assert_eq!(pool.state().max_size, 2);
    assert_eq!(fake.opened.load(SeqCst), 2);
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn shrinking_max_size_closes_idle_now_and_busy_on_return() {
    let (pool, fake) = fake_pool(settings(3));
    let a = pool.checkout().await.expect("checkout");
    let b = pool.checkout().await.expect("checkout");
    let c = pool.checkout().await.expect("checkout");
    drop(a);
    assert_eq!(pool.state().idle, 1);
    pool.reconfigure(settings(1));
    assert_eq!(pool.state().size, 2, "the idle surplus closed at once");
    assert_eq!(pool.state().idle, 0);
    drop(b);
    assert_eq!(pool.state().size, 1, "busy surplus closed as it came back");
    drop(c);
    assert_eq!(pool.state().size, 1);
    assert_eq!(pool.state().idle, 1);
    assert_eq!(fake.live(), 1);
    // The bound holds from now on.
    let held = pool.checkout().await.expect("checkout");
    let mut s = settings(1);
    s.queue_timeout = Duration::from_millis(50);
    pool.reconfigure(s);
    assert!(matches!(
        pool.checkout().await,
        Err(CheckoutError::QueueTimeout { .. })
    ));
    drop(held);
}

#[tokio::test(start_paused = true)]
async fn reconfigure_keeps_the_name() {
    let (pool, _fake) = fake_pool(settings(1));
    let mut s = settings(4);
    s.name = "other".into();
    pool.reconfigure(s);
    assert_eq!(pool.name(), "test");
    assert_eq!(pool.settings().name, "test");
    assert_eq!(pool.settings().max_size, 4);
}

#[tokio::test(start_paused = true)]
async fn pause_holds_checkouts_until_resume() {
    let (pool, _fake) = fake_pool(settings(2));
    drop(pool.checkout().await.expect("checkout")); // one idle
    pool.pause();
    assert!(pool.is_paused());
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.checkout().await.map(drop) }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pool.state().waiting, 1, "paused: not served from idle");
    assert!(!waiter.is_finished());
    pool.resume();
    waiter.await.expect("task").expect("served after resume");
    assert!(!pool.is_paused());
}

#[tokio::test(start_paused = true)]
async fn reconnect_retires_idle_now_and_leased_on_return() {
    let (pool, fake) = fake_pool(settings(2));
    let leased = pool.checkout().await.expect("checkout");
    let old_id = leased.id;
    drop(pool.checkout().await.expect("checkout")); // one idle
    assert_eq!(fake.live(), 2);
    pool.reconnect();
    assert_eq!(fake.live(), 1, "the idle one closed at once");
    drop(leased);
    assert_eq!(fake.live(), 0, "the leased one closed when it came back");
    let fresh = pool.checkout().await.expect("checkout");
    assert_ne!(fresh.id, old_id);
    assert_eq!(fake.opened.load(SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_down_server_sees_one_attempt_per_backoff_not_one_per_client() {
    let mut s = settings(10);
    s.connect_timeout = Duration::from_secs(5);
    s.queue_timeout = Duration::from_secs(30);
    let (pool, fake) = fake_pool(s);
    fake.fail_connects.store(true, SeqCst);
    let clients: Vec<_> = (0..200)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.checkout().await.map(drop) })
        })
        .collect();
    let started = tokio::time::Instant::now();
    let mut unreachable = 0;
    for c in clients {
        match c.await.expect("task") {
            Err(CheckoutError::Connect { .. }) => {}
            Err(CheckoutError::ServerUnreachable { last_error, .. }) => {
                assert!(last_error.contains("starting up"), "{last_error}");
                unreachable += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Every client learned within connect_timeout (plus one backoff step), none hung.
    assert!(
        started.elapsed() <= Duration::from_secs(5) + MAX_BACKOFF,
        "{:?}",
        started.elapsed()
    );
    assert!(
        unreachable >= 150,
        "most were refused at once: {unreachable}"
    );
    // 10 first attempts, then about one probe per backoff step over ~5 s.
    let calls = fake.connect_calls.load(SeqCst);
    assert!(
        calls <= 10 + 12,
        "no thundering herd: {calls} connect calls"
    );
    assert_eq!(pool.state().size, 0);
    assert_eq!(pool.state().waiting, 0);
}

#[tokio::test(start_paused = true)]
async fn the_pool_recovers_once_the_server_is_back() {
    let (pool, fake) = fake_pool(settings(2));
    fake.fail_connects.store(true, SeqCst);
    assert!(matches!(
        pool.checkout().await,
        Err(CheckoutError::Connect { .. })
    ));
    fake.fail_connects.store(false, SeqCst);
    // The next checkout waits for the backoff, probes, and succeeds.
    let started = tokio::time::Instant::now();
    let lease = pool.checkout().await.expect("recovered");
    assert!(started.elapsed() >= FIRST_BACKOFF - Duration::from_millis(1));
    drop(lease);
    // The gate is open again: no waiting.
    let started = tokio::time::Instant::now();
    let _a = pool.checkout().await.expect("checkout");
    let _b = pool.checkout().await.expect("checkout");
    assert_eq!(started.elapsed(), Duration::ZERO);
}
