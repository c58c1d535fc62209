//! End-to-end: session state reported by MariaDB (CLIENT_SESSION_TRACK) follows its client
//! to another server connection, whatever changed it: a stored procedure, a `SET` at the
//! end of a statement list. A change the server does not name (a user variable set in a
//! procedure) pins the client instead. Real MariaDB (`MAITRED_TEST_MYSQL_URL`), mysql_async
//! clients, the built maitred with a pool of 2.

use std::collections::BTreeSet;
use std::time::Duration;

use maitred_testkit::mysql::{require_mysql, MysqlUrl};
use maitred_testkit::{self as kit, Maitred};
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder};

async fn connect(url: &str) -> Conn {
    // prefer_socket(false): mysql_async would otherwise go around maitred over the unix
    // socket the server reports.
    let opts = OptsBuilder::from_opts(Opts::from_url(url).expect("mysql URL")).prefer_socket(false);
    tokio::time::timeout(Duration::from_secs(20), Conn::new(opts))
        .await
        .expect("connect timed out")
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

async fn one<T: FromRow + Send + 'static>(c: &mut Conn, sql: &str) -> T {
    tokio::time::timeout(Duration::from_secs(20), c.query_first::<T, _>(sql))
        .await
        .unwrap_or_else(|_| panic!("timed out: {sql}"))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

async fn run(c: &mut Conn, sql: &str) {
    tokio::time::timeout(Duration::from_secs(20), c.query_drop(sql))
        .await
        .unwrap_or_else(|_| panic!("timed out: {sql}"))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs `sql` as client `a` on both server connections of the pool: every other time
/// client `b` holds one in a transaction, so `a` gets the other one; in between `a` runs
/// alone and takes the connection the pool hands out first. Repeated until `a` has used
/// both. Returns what `a` saw each time, with the server thread it ran on.
async fn on_both_connections(a: &mut Conn, b: &mut Conn, sql: &str) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    let mut threads = BTreeSet::new();
    for round in 0..12 {
        let hold = round % 2 == 1;
        if hold {
            run(b, "BEGIN").await;
            let _: u64 = one(b, "SELECT 1").await;
        }
        // The server's own id of the connection that runs the query (CONNECTION_ID() would
        // show maitred's id): the query finds itself in the process list.
        let (thread, value): (u64, String) = one(
            a,
            &format!(
                "SELECT (SELECT ID FROM information_schema.PROCESSLIST \
                 WHERE INFO LIKE '%maitred-where-am-i%' LIMIT 1), {sql}"
            ),
        )
        .await;
        if hold {
            run(b, "COMMIT").await;
        }
        threads.insert(thread);
        seen.push((thread, value));
        if threads.len() == 2 && seen.len() >= 4 {
            break;
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variables_set_by_procedures_and_statement_lists_follow_their_client() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let mut direct = connect(&url).await;
    run(
        &mut direct,
        "CREATE OR REPLACE PROCEDURE maitred_track_tz() SET time_zone = '+04:00'",
    )
    .await;
    run(
        &mut direct,
        "CREATE OR REPLACE PROCEDURE maitred_track_uv() SET @maitred_uv = 42",
    )
    .await;
    let default_tz: String = one(&mut direct, "SELECT @@session.time_zone").await;
    let default_precision: String = one(&mut direct, "SELECT @@div_precision_increment").await;
    drop(direct);

    let m = Maitred::spawn(&[
        "--upstream",
        &url,
        "--pool-size",
        "2",
        "--queue-timeout",
        "5s",
    ]);
    let through = u.with_addr(m.addr());
    let mut a = connect(&through).await;
    let mut b = connect(&through).await;

    // A procedure changes a variable: no SET in the client's text at all.
    run(&mut a, "CALL maitred_track_tz()").await;
    // A SET at the end of a statement list (not at its start).
    run(&mut a, "DO 1; SET SESSION div_precision_increment = 7").await;
    let seen = on_both_connections(
        &mut a,
        &mut b,
        "CONCAT(@@session.time_zone, '/', @@div_precision_increment)",
    )
    .await;
    let threads: BTreeSet<u64> = seen.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        threads.len(),
        2,
        "client a never moved to the other server connection (pinned?): {seen:?}"
    );
    for (thread, value) in &seen {
        assert_eq!(value, "+04:00/7", "on server thread {thread}: {seen:?}");
    }
    // The other client never sees them.
    for _ in 0..4 {
        let tz: String = one(&mut b, "SELECT @@session.time_zone").await;
        let precision: String = one(&mut b, "SELECT @@div_precision_increment").await;
        assert_eq!(
            (tz, precision),
            (default_tz.clone(), default_precision.clone())
        );
    }
    // COM_RESET_CONNECTION forgets them, on every connection the client lands on.
    a.reset().await.expect("COM_RESET_CONNECTION");
    for (_, value) in on_both_connections(&mut a, &mut b, "@@session.time_zone").await {
        assert_eq!(value, default_tz);
    }

    // A change the server does not name (a user variable inside a procedure): pinned.
    run(&mut a, "CALL maitred_track_uv()").await;
    let seen = on_both_connections(&mut a, &mut b, "CAST(@maitred_uv AS CHAR)").await;
    let threads: BTreeSet<u64> = seen.iter().map(|(t, _)| *t).collect();
    assert_eq!(threads.len(), 1, "a pinned client moved: {seen:?}");
    assert!(seen.iter().all(|(_, v)| v == "42"), "{seen:?}");
}
