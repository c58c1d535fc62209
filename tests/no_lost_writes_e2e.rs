//! No lost writes: 20 clients insert rows with unique ids through maitred (a pool of 5)
//! while its server connections are reset and closed by a fault relay and, when
//! `scripts/test.sh` exported the cluster's data directory, the real PostgreSQL is
//! restarted, and maitred reloads its configuration (SIGHUP) twice, shrinking and growing
//! the pool. Afterwards, read straight from the server:
//!
//! - every write whose COMMIT was acknowledged is in the table;
//! - every row in the table was acknowledged or is "in doubt" (the error came after the
//!   COMMIT was sent, so the client cannot know); a write that failed before its COMMIT
//!   was sent is never in the table. In-doubt writes are counted, never claimed as done.
//!
//! Holds `maitred_testkit::serial()` for its whole run, so no other test sees the restart.

#[path = "fault_support.rs"]
mod fault_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fault_support::*;
use maitred_testkit::{self as kit};
use tokio_postgres::Client;

const CLIENTS: i64 = 20;
const RUN: Duration = Duration::from_secs(7);
/// No single statement may take longer than this (a hang is a failure).
const STATEMENT_LIMIT: Duration = Duration::from_secs(30);

/// What one client knows about its writes.
#[derive(Debug, Default)]
struct Ledger {
    /// COMMIT (or the autocommit INSERT) answered OK.
    acked: Vec<i64>,
    /// Failed before anything that could commit was sent.
    failed: Vec<i64>,
    /// The error came after COMMIT (or the autocommit INSERT) was sent.
    in_doubt: Vec<i64>,
    /// Client connections that had to be opened again.
    reconnects: u32,
}

/// Runs one statement, bounded by [`STATEMENT_LIMIT`].
async fn run(client: &Client, sql: &str) -> Result<(), tokio_postgres::Error> {
    tokio::time::timeout(STATEMENT_LIMIT, client.simple_query(sql))
        .await
        .unwrap_or_else(|_| panic!("{sql}: no answer within {STATEMENT_LIMIT:?}"))
        .map(|_| ())
}

/// Inserts rows `n * 1_000_000 + seq` until `stop`: even clients in explicit
/// transactions (BEGIN / INSERT / COMMIT, one round trip each), odd ones in autocommit.
async fn writer(url: String, table: String, n: i64, stop: Arc<AtomicBool>) -> Ledger {
    let mut ledger = Ledger::default();
    let mut conn = None;
    let mut seq = 0i64;
    while !stop.load(Ordering::SeqCst) {
        if conn
            .as_ref()
            .is_none_or(|(c, _): &(Client, _)| c.is_closed())
        {
            match connect(&url).await {
                Ok(pair) => {
                    if seq > 0 {
                        ledger.reconnects += 1;
                    }
                    conn = Some(pair);
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let Some((client, _)) = conn.as_ref() else {
            continue;
        };
        let id = n * 1_000_000 + seq;
        seq += 1;
        let insert = format!("INSERT INTO {table} (id, client) VALUES ({id}, {n})");
        if n % 2 == 1 {
            match run(client, &insert).await {
                Ok(()) => ledger.acked.push(id),
                Err(_) => ledger.in_doubt.push(id),
            }
            continue;
        }
        if run(client, "BEGIN").await.is_err() || run(client, &insert).await.is_err() {
            ledger.failed.push(id);
            // A transaction left open by a failed INSERT is rolled back before the next.
            let _ = run(client, "ROLLBACK").await;
            continue;
        }
        match run(client, "COMMIT").await {
            Ok(()) => ledger.acked.push(id),
            Err(_) => ledger.in_doubt.push(id),
        }
    }
    ledger
}

/// The pool's settings with `size` server connections.
fn pool_extra(size: usize) -> String {
    format!("size = {size}\nserver_connect_timeout = \"2s\"\nqueue_timeout = \"10s\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_server_faults_and_restarts() {
    let Some(pg) = kit::require_pg() else { return };
    let Some(su) = kit::require_pg_superuser() else {
        return;
    };
    let _serial = kit::serial().await;
    let table = format!("nlw_{}", std::process::id());
    direct_exec(
        &su,
        &format!(
            "DROP TABLE IF EXISTS {table}; \
             CREATE TABLE {table} (id bigint PRIMARY KEY, client int NOT NULL); \
             GRANT ALL ON {table} TO app"
        ),
    )
    .await;
    let b = start_behind_relay(&pg, &pool_extra(5));
    let restart = kit::pg_server::pg_control();
    if restart.is_none() {
        eprintln!(
            "note: {} not set: relay faults only, no real server restart",
            kit::pg_server::PG_DATADIR_ENV
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..CLIENTS)
        .map(|n| {
            tokio::spawn(writer(
                b.client_url.clone(),
                table.clone(),
                n,
                Arc::clone(&stop),
            ))
        })
        .collect();

    // The faults, while the writers run.
    let started = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    b.relay.reset_all();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    b.relay.drop_all();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut restarted_in = None;
    if let Some(ctl) = restart.clone() {
        let t = Instant::now();
        tokio::task::spawn_blocking(move || ctl.restart(Duration::from_secs(60)))
            .await
            .expect("pg_ctl restart");
        restarted_in = Some(t.elapsed());
    }
    // A reload (SIGHUP) that shrinks the pool, then one that grows it back.
    tokio::task::block_in_place(|| b.reload(&pool_extra(3)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| b.reload(&pool_extra(5)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.relay.reset_all();
    let rest = RUN.saturating_sub(started.elapsed());
    tokio::time::sleep(rest.max(Duration::from_millis(1500))).await;
    stop.store(true, Ordering::SeqCst);

    let mut acked = HashSet::new();
    let mut failed = HashSet::new();
    let mut in_doubt = HashSet::new();
    let mut reconnects = 0;
    for w in writers {
        let l = within(60, "writer", w).await.expect("writer task");
        acked.extend(l.acked);
        failed.extend(l.failed);
        in_doubt.extend(l.in_doubt);
        reconnects += l.reconnects;
    }

    // What the server has, read directly.
    let (direct, h) = must_connect(&su).await;
    let rows = direct
        .query(&format!("SELECT id FROM {table}"), &[])
        .await
        .expect("read the table");
    let stored: HashSet<i64> = rows.iter().map(|r| r.get::<_, i64>(0)).collect();
    direct
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .expect("drop the table");
    drop(direct);
    let _ = h.await;

    let lost: Vec<_> = acked.difference(&stored).copied().collect();
    let phantom: Vec<_> = stored
        .iter()
        .filter(|id| !acked.contains(id) && !in_doubt.contains(id))
        .copied()
        .collect();
    let doubt_committed = in_doubt.intersection(&stored).count();
    eprintln!(
        "no lost writes: {} acknowledged, {} failed before COMMIT, {} in doubt ({} of them \
         committed), {} client reconnects; server restart {:?}; {} reloads; {} rows stored",
        acked.len(),
        failed.len(),
        in_doubt.len(),
        doubt_committed,
        reconnects,
        restarted_in,
        b.reloads_logged(),
        stored.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged writes missing on the server: {lost:?}"
    );
    assert!(
        phantom.is_empty(),
        "rows on the server whose write was reported failed before COMMIT: {phantom:?}"
    );
    assert!(
        acked.len() > 100,
        "too few writes went through ({}) for the test to mean anything",
        acked.len()
    );
    assert!(
        failed.len() + in_doubt.len() > 0,
        "no write was hit by a fault: the faults did not reach the clients"
    );
}
