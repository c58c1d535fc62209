//! Server faults, end to end: the built maitred in front of the real PostgreSQL, with a
//! [`FaultRelay`](maitred_testkit::fault_relay::FaultRelay) between them that closes,
//! resets, blackholes or refuses server connections on cue.
//!
//! - the server closes connections idle in the pool: never handed out dead;
//! - the server is unreachable (refused, or blackholed at connect): waiting clients get a
//!   connect error within `server_connect_timeout`, not a hang, and the pool recovers;
//! - the server restarts under load: idle clients keep their client connection, clients
//!   in flight get a clear error, the pool reconnects without a thundering herd.
//!
//! Every test takes `maitred_testkit::serial()` (the test server allows 20 connections).

#[path = "fault_support.rs"]
mod fault_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fault_support::*;
use maitred_testkit::fault_relay::Fault;
use maitred_testkit::{self as kit};

/// SQLSTATE maitred sends when it cannot reach or lost the server (connection_failure).
const CONNECTION_FAILURE: &str = "08006";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_closed_while_idle_are_never_handed_out() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let b = start_behind_relay(&pg, "size = 3");
    let (client_a, _ha) = must_connect(&b.client_url).await;

    for how in ["drop (FIN)", "reset (RST)"] {
        // Fill the pool: three clients in a transaction at once hold three server connections.
        let mut holders = Vec::new();
        for _ in 0..3 {
            let (c, h) = must_connect(&b.client_url).await;
            c.batch_execute("BEGIN; SELECT 1").await.expect("begin");
            holders.push((c, h));
        }
        for (c, _) in &holders {
            c.batch_execute("COMMIT").await.expect("commit");
        }
        assert_eq!(
            b.relay.open(),
            3,
            "three idle server connections in the pool"
        );
        let accepted_before = b.relay.accepted();

        if how.starts_with("drop") {
            b.relay.drop_all();
        } else {
            b.relay.reset_all();
        }
        // Give the FIN/RST a moment to land on maitred's sockets.
        tokio::time::sleep(Duration::from_millis(100)).await;

        // Every client, old and new, gets working connections: no error from a dead one.
        for (c, _) in &holders {
            for _ in 0..3 {
                let v = within(10, "query after the server closed", scalar(c, "select 7"))
                    .await
                    .unwrap_or_else(|e| {
                        panic!("after {how}: a dead connection was handed out: {e:?}")
                    });
                assert_eq!(v, "7");
            }
        }
        let v = scalar(&client_a, "select 8")
            .await
            .expect("old idle client");
        assert_eq!(v, "8");
        assert!(
            b.relay.accepted() > accepted_before,
            "after {how}: maitred opened fresh server connections"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_gives_waiting_clients_the_connect_error_in_time() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let connect_timeout = Duration::from_secs(1);
    // Enough margin for a debug build on 2 busy cores and one backoff step.
    let margin = Duration::from_millis(1500);
    let b = start_behind_relay(
        &pg,
        "size = 3\nserver_connect_timeout = \"1s\"\nqueue_timeout = \"10s\"",
    );
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (c, h) = must_connect(&b.client_url).await;
        assert_eq!(scalar(&c, "select 1").await.expect("warm-up"), "1");
        clients.push((Arc::new(c), h));
    }

    for fault in [Fault::Refuse, Fault::Blackhole] {
        // Empty the pool, then cut the server off.
        b.relay.drop_all();
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.relay.set_fault(fault);
        let tasks: Vec<_> = clients
            .iter()
            .map(|(c, _)| {
                let c = Arc::clone(c);
                tokio::spawn(async move {
                    let t = Instant::now();
                    let r = scalar(&c, "select 1").await;
                    (r, t.elapsed())
                })
            })
            .collect();
        for t in tasks {
            let (r, took) = within(30, "a query while the server is unreachable", t)
                .await
                .expect("query task");
            let e = r.expect_err("no server: the query must fail");
            assert_eq!(sqlstate(&e), Some(CONNECTION_FAILURE), "{fault:?}: {e:?}");
            let msg = message(&e).to_lowercase();
            assert!(
                msg.contains("connect") && msg.contains("faults"),
                "{fault:?}: the error names the connect failure and the pool: {msg}"
            );
            assert!(
                took <= connect_timeout + margin,
                "{fault:?}: the error took {took:?}, more than server_connect_timeout {connect_timeout:?} + {margin:?}"
            );
        }
        // The client connections survive (ERROR, not FATAL).
        for (c, _) in &clients {
            assert!(
                !c.is_closed(),
                "{fault:?}: a waiting client was disconnected"
            );
        }

        // Traffic passes again: the pool recovers, the same clients are served.
        b.relay.set_fault(Fault::Pass);
        let took = within(
            20,
            "recovery",
            wait_until_served(&b.client_url, Duration::from_secs(10)),
        )
        .await;
        eprintln!("{fault:?}: served again {took:?} after the fault was lifted");
        for (c, _) in &clients {
            assert_eq!(
                scalar(c, "select 2").await.expect("served after recovery"),
                "2"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_under_load_keeps_idle_clients_and_avoids_a_herd() {
    let Some(pg) = kit::require_pg() else { return };
    let Some(su) = kit::require_pg_superuser() else {
        return;
    };
    let _serial = kit::serial().await;
    const POOL: u64 = 4;
    let b = start_behind_relay(
        &pg,
        "size = 4\nserver_connect_timeout = \"2s\"\nqueue_timeout = \"5s\"",
    );

    // Idle clients: one transaction done, now between transactions.
    let mut idle = Vec::new();
    for i in 0..4 {
        let (c, h) = must_connect(&b.client_url).await;
        c.batch_execute(&format!("BEGIN; SELECT {i}; COMMIT"))
            .await
            .expect("first transaction");
        idle.push((c, h));
    }

    // Clients in flight: a long query each, on three of the four server connections.
    let mut in_flight = Vec::new();
    let mut in_flight_conns = Vec::new();
    for _ in 0..3 {
        let (c, h) = must_connect(&b.client_url).await;
        in_flight_conns.push(h);
        in_flight.push(tokio::spawn(async move {
            let r = c.simple_query("select pg_sleep(3)").await;
            let done_at = Instant::now();
            // The connection task notices the close just after the error arrives.
            let closing = Instant::now() + Duration::from_secs(2);
            while !c.is_closed() && Instant::now() < closing {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (r.map(|_| ()), done_at, c.is_closed())
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = direct_scalar(
            &su,
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'select pg_sleep(3)' AND state = 'active'",
        )
        .await
        .parse()
        .expect("count");
        if n == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the long queries did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Load during the outage: clients retrying a query every 10 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let mut hammers = Vec::new();
    for _ in 0..6 {
        let (c, h) = must_connect(&b.client_url).await;
        let stop = Arc::clone(&stop);
        let attempts = Arc::clone(&attempts);
        hammers.push((
            tokio::spawn(async move {
                let mut errors = Vec::new();
                while !stop.load(Ordering::SeqCst) && !c.is_closed() {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    if let Err(e) = c.simple_query("select 1").await {
                        errors.push(e);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                errors
            }),
            h,
        ));
    }

    // The "restart": every server connection reset, new ones refused for a second.
    let outage = Duration::from_secs(1);
    let refused_before = b.relay.refused();
    let attempts_before = attempts.load(Ordering::SeqCst);
    b.relay.set_fault(Fault::Refuse);
    b.relay.reset_all();
    let reset_at = Instant::now();
    tokio::time::sleep(outage).await;
    let refused = b.relay.refused() - refused_before;
    let client_attempts = attempts.load(Ordering::SeqCst) - attempts_before;
    b.relay.set_fault(Fault::Pass);

    // In flight: a clear error, soon after the reset, not a hang.
    for t in in_flight {
        let (r, done_at, closed) = within(20, "in-flight query", t).await.expect("task");
        let e = r.expect_err("a query whose server connection was reset must fail");
        assert!(
            sqlstate(&e) == Some(CONNECTION_FAILURE) || e.is_closed(),
            "in flight: {e:?}"
        );
        assert!(
            message(&e).contains("lost") || e.is_closed(),
            "in flight: the error says the server connection was lost: {e:?}"
        );
        assert!(closed, "in flight: the client is told and disconnected");
        let after = done_at.saturating_duration_since(reset_at);
        assert!(
            after < Duration::from_secs(2),
            "in flight: the error came {after:?} after the reset"
        );
    }

    // The pool reconnects.
    let took = within(
        30,
        "recovery",
        wait_until_served(&b.client_url, Duration::from_secs(15)),
    )
    .await;
    eprintln!("served again {took:?} after the outage; {refused} connects refused during {outage:?} while clients sent {client_attempts} queries");
    stop.store(true, Ordering::SeqCst);
    for (t, _) in hammers {
        let errors = within(20, "load client", t).await.expect("task");
        for e in &errors {
            let msg = message(e);
            assert!(
                sqlstate(e) == Some(CONNECTION_FAILURE) || e.is_closed(),
                "a client under load got an unexpected error: {msg}"
            );
        }
    }

    // Idle clients kept their client connection, and their next transaction works.
    for (i, (c, _)) in idle.iter().enumerate() {
        assert!(!c.is_closed(), "idle client {i} was disconnected");
        let v = within(
            10,
            "idle client's next transaction",
            scalar(c, &format!("BEGIN; SELECT {i}; COMMIT")),
        )
        .await
        .unwrap_or_else(|e| panic!("idle client {i}: next transaction failed: {e:?}"));
        assert_eq!(v, i.to_string());
    }

    // No thundering herd: connects during the outage are bounded by the pool size per
    // backoff period (100 ms), however many queries the clients sent.
    assert!(
        refused > 0,
        "maitred never tried to reconnect during the outage"
    );
    let bound = POOL * (outage.as_millis() as u64 / 100 + 1);
    assert!(
        refused <= bound,
        "thundering herd: {refused} connection attempts during a {outage:?} outage \
         (pool of {POOL}, bound {bound}; clients sent {client_attempts} queries)"
    );
}

/// SQLSTATE of maitred's `query_timeout` error (query_canceled).
const QUERY_CANCELED: &str = "57014";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_slow_or_stops_answering_mid_query_hits_query_timeout() {
    let Some(pg) = kit::require_pg() else { return };
    let Some(su) = kit::require_pg_superuser() else {
        return;
    };
    let _serial = kit::serial().await;
    let timeout = Duration::from_secs(1);
    let margin = Duration::from_millis(1500);
    let b = start_behind_relay(&pg, "size = 2\nquery_timeout = \"1s\"");

    // Slow server: the query is cancelled on the server and the client told.
    let (c, _h) = must_connect(&b.client_url).await;
    assert_eq!(scalar(&c, "select 1").await.expect("warm-up"), "1");
    let t = Instant::now();
    let e = within(20, "slow query", c.simple_query("select pg_sleep(30)"))
        .await
        .expect_err("a query past query_timeout must fail");
    let took = t.elapsed();
    assert_eq!(sqlstate(&e), Some(QUERY_CANCELED), "{e:?}");
    assert!(message(&e).contains("query_timeout"), "{e:?}");
    assert!(
        took >= timeout && took <= timeout + margin,
        "slow server: the error came after {took:?} (query_timeout {timeout:?})"
    );
    // The cancel reached the server: the sleep is not running there any more.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let running: i64 = direct_scalar(
            &su,
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'select pg_sleep(30)' AND state = 'active'",
        )
        .await
        .parse()
        .expect("count");
        if running == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the timed-out query still runs on the server: no cancel was sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A server that stops answering mid-query (blackhole): the same error in time, and the
    // server connection is discarded, not reused.
    let (c, _h) = must_connect(&b.client_url).await;
    assert_eq!(scalar(&c, "select 2").await.expect("warm-up"), "2");
    let accepted_before = b.relay.accepted();
    b.relay.set_fault(Fault::Blackhole);
    let t = Instant::now();
    let e = within(20, "blackholed query", c.simple_query("select 3"))
        .await
        .expect_err("a query the server never answers must fail");
    let took = t.elapsed();
    assert_eq!(sqlstate(&e), Some(QUERY_CANCELED), "{e:?}");
    assert!(
        took >= timeout && took <= timeout + margin,
        "blackhole: the error came after {took:?} (query_timeout {timeout:?})"
    );
    b.relay.set_fault(Fault::Pass);
    // Every client still works; with the old connection discarded, a fresh one is opened.
    let (c2, _h2) = must_connect(&b.client_url).await;
    for _ in 0..3 {
        assert_eq!(scalar(&c2, "select 4").await.expect("after the fault"), "4");
    }
    assert!(
        b.relay.accepted() > accepted_before,
        "the blackholed server connection was reused instead of discarded"
    );
}
