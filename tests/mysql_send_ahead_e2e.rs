//! End-to-end tests of `send_ahead` (MySQL): the holder of a busy server connection
//! writes the next queued client's read-only SELECT (text or prepared) behind its own and
//! hands the connection over once its own response is read.
//!
//! Real MariaDB (`MAITRED_TEST_MYSQL_URL`, started by `scripts/test.sh`), the built
//! binary, and real clients (mysql_async, the `mariadb` command-line client). Each test
//! reads maitred's `/metrics` to know whether commands were sent ahead, so a test that
//! passes without the mechanism engaging would fail. sysbench's point selects are checked
//! in mysql_e2e.rs (`sysbench_200_threads_over_pool_10`).

use std::future::Future;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use maitred_testkit::admin_http::{
    clients_waiting, metric_sum, metric_sum_now, spawn_with_admin, until,
};
use maitred_testkit::mysql::{require_mysql, MysqlUrl};
use maitred_testkit::{self as kit, Maitred};
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder};
use tokio::task::JoinHandle;

/// A SELECT that may be sent ahead and takes about two seconds on the test MariaDB.
const SLOW_SELECT: &str = "SELECT SUM(seq) FROM seq_1_to_40000000 WHERE seq % 7 = 3";

/// maitred in front of `url` with an admin endpoint; the URL through it and the admin
/// address.
fn start(url: &str, extra: &[&str]) -> (Maitred, String, SocketAddr) {
    let (m, admin) = spawn_with_admin(url, extra);
    let through = MysqlUrl::parse(url).with_addr(m.addr());
    (m, through, admin)
}

async fn within<F: Future>(secs: u64, what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s: {what}"))
}

async fn connect(url: &str) -> Conn {
    // prefer_socket(false): mysql_async would otherwise reconnect over the server's unix
    // socket, around maitred.
    let opts =
        OptsBuilder::from_opts(Opts::from_url(url).expect("valid mysql URL")).prefer_socket(false);
    within(30, "connect", Conn::new(opts))
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// The first row of a text query, as strings (NULL as "NULL").
async fn row(conn: &mut Conn, sql: &str) -> Vec<String> {
    let row: mysql_async::Row = within(60, sql, conn.query_first(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: no row"));
    (0..row.len())
        .map(|i| match row.as_ref(i) {
            Some(mysql_async::Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(mysql_async::Value::NULL) | None => "NULL".to_owned(),
            Some(v) => v.as_sql(true),
        })
        .collect()
}

/// Runs `body` for `n` clients at once, each with its own connection through `url` and its
/// number; fails if any panics or they take more than two minutes.
async fn on_clients<F, Fut>(url: &str, n: u32, body: F)
where
    F: Fn(u32, Conn) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Every client logs in first, then all start together: the queueing the tests need.
    let mut conns = Vec::new();
    for _ in 0..n {
        conns.push(connect(url).await);
    }
    let tasks: Vec<_> = (0..n)
        .zip(conns)
        .map(|(id, conn)| tokio::spawn(body(id, conn)))
        .collect();
    for t in tasks {
        within(120, "clients finish", t).await.expect("client task");
    }
}

/// The `mariadb` command-line client running `sql` through `url`, as a process the test
/// can kill (its socket then closes as a crashed client's does).
fn mariadb_cli(url: &str, sql: &str) -> Child {
    let u = MysqlUrl::parse(url);
    Command::new("mariadb")
        .args([
            // The server connections' character set: another one would be replayed, and a
            // client with session state of its own is never sent ahead nor sends ahead.
            "--default-character-set=utf8mb4",
            "--host",
            &u.host,
            "--port",
            &u.port.to_string(),
            "--user",
            &u.user,
            &format!("--password={}", u.password),
            "--batch",
            &u.database,
            "-e",
            sql,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run mariadb (apt mariadb-client)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_and_text_selects_sent_ahead_get_their_own_values() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let (m, through, admin) = start(&url, &["--pool-size", "2"]);
    on_clients(&through, 16, |id, mut conn| async move {
        let id = i64::from(id);
        for i in 0..100i64 {
            // The same statement texts in every client: each server connection prepares
            // them once, and an execute sent ahead gets that connection's statement id.
            let got: Option<(i64, i64)> =
                within(60, "exec", conn.exec_first("SELECT ?, ?", (id, i)))
                    .await
                    .expect("exec");
            assert_eq!(got, Some((id, i)), "another client's (or an earlier) reply");
            let got: Option<i64> = within(60, "exec", conn.exec_first("SELECT ? + 1000", (id,)))
                .await
                .expect("exec");
            assert_eq!(got, Some(id + 1000));
            assert_eq!(
                row(&mut conn, &format!("SELECT {id}, {i}")).await,
                vec![id.to_string(), i.to_string()]
            );
        }
        conn.disconnect().await.expect("disconnect");
    })
    .await;
    let sent = metric_sum_now(admin, "maitred_sent_ahead_total").await;
    let lost = metric_sum_now(admin, "maitred_sent_ahead_lost_total").await;
    assert!(
        sent > 0.0,
        "16 clients over 2 connections: some commands must be sent ahead"
    );
    assert_eq!(lost, 0.0);
    drop(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_never_cross_clients_databases_nor_sql_modes() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let (m, through, admin) = start(&url, &["--pool-size", "2"]);
    // Three groups: the defaults; another current database (a command sent ahead only
    // runs on a connection that has its database); another sql_mode (never sent ahead,
    // and no one's command is sent behind its own). `'a' || 'b'` is 'ab' only under
    // PIPES_AS_CONCAT.
    on_clients(&through, 18, |id, mut conn| async move {
        let group = id % 3;
        let (want_db, want_concat) = match group {
            1 => {
                conn.query_drop("USE information_schema")
                    .await
                    .expect("USE");
                ("information_schema", "0")
            }
            2 => {
                conn.query_drop("SET SESSION sql_mode = 'PIPES_AS_CONCAT'")
                    .await
                    .expect("SET");
                ("app", "ab")
            }
            _ => ("app", "0"),
        };
        for i in 0..100u32 {
            let got = row(
                &mut conn,
                &format!("SELECT {id}, {i}, DATABASE(), 'a' || 'b'"),
            )
            .await;
            assert_eq!(got[0], id.to_string(), "another client's reply");
            assert_eq!(got[1], i.to_string(), "an earlier reply");
            assert_eq!(got[2], want_db, "ran in another client's database");
            assert_eq!(got[3], want_concat, "ran with another client's sql_mode");
        }
        conn.disconnect().await.expect("disconnect");
    })
    .await;
    let sent = metric_sum_now(admin, "maitred_sent_ahead_total").await;
    assert!(
        sent > 0.0,
        "18 clients over 2 connections: some queries must be sent ahead"
    );
    drop(m);
}

/// Pool of one: a client holds the connection in a transaction, the `mariadb` client
/// queues `query_a`, then a mysql_async client queues `SELECT 42`. The holder commits;
/// returns A's process and B's task once B's query was sent ahead behind A's.
async fn queue_two_behind_a_transaction(
    through: &str,
    admin: SocketAddr,
    query_a: &str,
) -> (Child, JoinHandle<(Conn, mysql_async::Result<Option<i64>>)>) {
    let mut holder = connect(through).await;
    let mut b = connect(through).await;
    holder.query_drop("BEGIN").await.expect("BEGIN");
    let a = mariadb_cli(through, query_a);
    until("client A queued", 20, move || clients_waiting(admin) >= 1.0).await;
    let b_task = tokio::spawn(async move {
        let r = b.query_first::<i64, _>("SELECT 42").await;
        (b, r)
    });
    until("client B queued", 10, move || clients_waiting(admin) >= 2.0).await;
    holder.query_drop("COMMIT").await.expect("COMMIT");
    until("B's query sent ahead behind A's", 10, move || {
        metric_sum(admin, "maitred_sent_ahead_total") >= 1.0
    })
    .await;
    holder.disconnect().await.expect("disconnect");
    (a, b_task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_sent_ahead_gets_its_reply_even_when_the_holder_is_gone() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let (m, through, admin) = start(&url, &["--pool-size", "1"]);
    let (mut a, b_task) = queue_two_behind_a_transaction(&through, admin, SLOW_SELECT).await;
    // A's client vanishes while its query runs with B's queued behind it: A's reply is
    // whole when it comes, so the connection still goes to B with B's reply.
    a.kill().expect("kill mariadb");
    let _ = a.wait();
    let (mut b, r) = within(20, "B answered", b_task).await.expect("task");
    assert_eq!(r.expect("B's query"), Some(42));
    assert_eq!(row(&mut b, "SELECT 43").await, vec!["43".to_owned()]);
    assert_eq!(
        metric_sum_now(admin, "maitred_sent_ahead_lost_total").await,
        0.0
    );
    b.disconnect().await.expect("disconnect");
    drop(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_leaving_mid_reply_fails_the_query_sent_ahead_with_08s01_and_retry_works() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let (m, through, admin) = start(&url, &["--pool-size", "1"]);
    // A reply of megabytes: relaying it to A's client (gone) fails half way.
    let big_slow = format!("SELECT REPEAT('x', 4000000), ({SLOW_SELECT})");
    let (mut a, b_task) = queue_two_behind_a_transaction(&through, admin, &big_slow).await;
    a.kill().expect("kill mariadb");
    let _ = a.wait();
    let (mut b, r) = within(20, "B answered", b_task).await.expect("task");
    let err = r.expect_err("B's query was lost with A's connection");
    let mysql_async::Error::Server(e) = &err else {
        panic!("not an ERR packet: {err:?}");
    };
    assert_eq!((e.code, e.state.as_str()), (1105, "08S01"), "{e:?}");
    assert!(e.message.contains("sent ahead"), "{}", e.message);
    // B's session is fine, and the connection was replaced, not leaked.
    assert_eq!(row(&mut b, "SELECT 44").await, vec!["44".to_owned()]);
    assert_eq!(
        metric_sum_now(admin, "maitred_sent_ahead_lost_total").await,
        1.0
    );
    b.disconnect().await.expect("disconnect");
    drop(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_select_never_runs_inside_another_clients_transaction() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let table = format!("send_ahead_tx_{}", std::process::id());
    let mut direct = connect(&url).await;
    direct
        .query_drop(format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (v INT) ENGINE=InnoDB"
        ))
        .await
        .expect("create");
    let (m, through, admin) = start(&url, &["--pool-size", "1"]);
    let mut x = connect(&through).await;
    let mut b = connect(&through).await;
    x.query_drop("BEGIN").await.expect("BEGIN");
    x.query_drop(format!("INSERT INTO {table} VALUES (1)"))
        .await
        .expect("insert");
    let count_sql = format!("SELECT COUNT(*) FROM {table}");
    let b_task = tokio::spawn({
        let sql = count_sql.clone();
        async move { row(&mut b, &sql).await }
    });
    until("B queued", 10, move || clients_waiting(admin) >= 1.0).await;
    // Lone SELECTs inside the transaction: the holder must not send B's behind them.
    assert_eq!(row(&mut x, &count_sql).await, vec!["1".to_owned()]);
    assert_eq!(row(&mut x, "SELECT 1").await, vec!["1".to_owned()]);
    x.query_drop("ROLLBACK").await.expect("ROLLBACK");
    let seen = within(10, "B answered", b_task).await.expect("task");
    assert_eq!(seen, vec!["0".to_owned()], "B saw a rolled-back row");
    let sent = metric_sum_now(admin, "maitred_sent_ahead_total").await;
    assert_eq!(sent, 0.0, "nothing may be sent ahead inside a transaction");
    x.disconnect().await.expect("disconnect");
    direct
        .query_drop(format!("DROP TABLE {table}"))
        .await
        .expect("drop");
    direct.disconnect().await.expect("disconnect");
    drop(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_ahead_false_never_sends_ahead() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let (m, through, admin) = start(&url, &["--pool-size", "1", "--send-ahead", "false"]);
    on_clients(&through, 6, |id, mut conn| async move {
        for i in 0..100u32 {
            assert_eq!(
                row(&mut conn, &format!("SELECT {id}, {i}")).await,
                vec![id.to_string(), i.to_string()]
            );
        }
        conn.disconnect().await.expect("disconnect");
    })
    .await;
    assert_eq!(metric_sum_now(admin, "maitred_sent_ahead_total").await, 0.0);
    drop(m);
}
