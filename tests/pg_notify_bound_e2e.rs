//! End-to-end: a client that LISTENs and stops reading cannot grow maitred's memory
//! without bound. Its queue of notifications is bounded (16 MiB); past it the client is
//! unsubscribed and, when it reads again, finds FATAL 54000 and its connection closed.
//! Another listener on the same channel gets every notification meanwhile.
//!
//! Real PostgreSQL (`MAITRED_TEST_PG_URL`, started by `scripts/test.sh`), the built binary,
//! tokio-postgres clients.

use std::time::Duration;

use futures_util::StreamExt;
use maitred_testkit::{self as kit, Maitred};
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// maitred's resident set, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_stops_reading_is_cut_off_and_memory_stays_bounded() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = Maitred::spawn(&["--upstream", &pg_url, "--pool-size", "2"]);
    let url = m.url_for(&pg_url);

    // The stalled listener: its connection is polled until it LISTENs, then not at all
    // (the socket stays open, nobody reads it), then again at the end.
    let (slow, mut slow_conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("connect slow");
    {
        let listen = slow.batch_execute("LISTEN flood");
        tokio::pin!(listen);
        tokio::select! {
            r = &mut listen => r.expect("LISTEN"),
            r = &mut slow_conn => panic!("slow connection ended: {r:?}"),
        }
    }

    // The listener that keeps up: counts what it gets.
    let (fast, mut fast_conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("connect fast");
    let (count_tx, mut count_rx) = tokio::sync::watch::channel(0usize);
    let fast_task = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| fast_conn.poll_message(cx));
        let mut n = 0;
        while let Some(m) = messages.next().await {
            if let Ok(AsyncMessage::Notification(_)) = m {
                n += 1;
                let _ = count_tx.send(n);
            }
        }
    });
    fast.batch_execute("LISTEN flood")
        .await
        .expect("LISTEN fast");

    let (sender, sender_conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("connect sender");
    tokio::spawn(async move {
        let _ = sender_conn.await;
    });
    sender.batch_execute("SELECT 1").await.expect("sender");
    let rss_before = rss_kib(m.pid());

    // 24 rounds of 1000 notifications of 4000 bytes: about 96 MB for each listener.
    let rounds = 24;
    let per_round = 1000;
    for round in 0..rounds {
        send_notifications(&sender, per_round).await;
        let want = (round + 1) * per_round;
        let got = tokio::time::timeout(Duration::from_secs(60), count_rx.wait_for(|n| *n >= want))
            .await
            .map(|r| r.map(|n| *n));
        assert!(
            matches!(got, Ok(Ok(_))),
            "the reading listener did not get {want} notifications"
        );
    }
    let rss_after = rss_kib(m.pid());
    let grown_mib = rss_after.saturating_sub(rss_before) / 1024;
    eprintln!(
        "maitred RSS {} MiB -> {} MiB (+{grown_mib} MiB) after {} MB sent to a stalled listener",
        rss_before / 1024,
        rss_after / 1024,
        rounds * per_round * 4000 / 1_000_000
    );
    assert!(
        grown_mib < 40,
        "maitred grew by {grown_mib} MiB holding a stalled listener's notifications\n{}",
        m.log()
    );
    assert_eq!(
        *count_rx.borrow(),
        rounds * per_round,
        "the reading listener got all"
    );

    // The stalled client reads again: what was written before it fell behind, then the
    // FATAL, then the end of its connection.
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        let mut messages = futures_util::stream::poll_fn(move |cx| slow_conn.poll_message(cx));
        let mut notifications = 0usize;
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(_)) => notifications += 1,
                Ok(_) => {}
                Err(e) => return (notifications, Some(e)),
            }
        }
        (notifications, None)
    })
    .await
    .expect("the stalled client's connection ends");
    let (notifications, error) = ended;
    eprintln!("the stalled listener read {notifications} notifications, then {error:?}");
    let error = error.expect("an error ends the stalled client's connection");
    let db = error.as_db_error().expect("a FATAL from maitred");
    assert_eq!(db.code().code(), "54000", "{db:?}");
    assert!(db.message().contains("fell behind"), "{}", db.message());
    assert!(notifications < rounds * per_round);
    drop(slow);

    // Everyone else is fine.
    assert_eq!(row(&sender, "SELECT 7").await, "7");
    send_notifications(&sender, 1).await;
    tokio::time::timeout(
        Duration::from_secs(10),
        count_rx.wait_for(|n| *n > rounds * per_round),
    )
    .await
    .expect("the reading listener still listens")
    .expect("counter");
    drop(fast);
    fast_task.abort();
}

async fn send_notifications(sender: &Client, n: usize) {
    sender
        .batch_execute(&format!(
            // Distinct payloads: PostgreSQL folds identical ones sent in one transaction.
            "SELECT pg_notify('flood', g || repeat('x', 4000)) FROM generate_series(1, {n}) g"
        ))
        .await
        .expect("NOTIFY");
}

async fn row(client: &Client, sql: &str) -> String {
    client
        .simple_query(sql)
        .await
        .expect(sql)
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default()
}
