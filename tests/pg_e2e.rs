//! End-to-end tests: the built `maitred` binary between real PostgreSQL
//! clients (psql, pgbench, tokio-postgres) and the real PostgreSQL server
//! named by `MAITRED_TEST_PG_URL` (started by `scripts/test.sh`, capped at
//! `max_connections = 20`).
//!
//! Each test starts its own maitred on a free port with the one-line flags
//! (`--upstream URL --pool-size N ...`) and takes `maitred_testkit::serial()`
//! so that the tests together never exceed the server's connection cap.
//! Without `MAITRED_TEST_PG_URL` every test prints a skip notice and passes,
//! except under `CI=true`, where it fails.

use std::future::Future;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use maitred_testkit::{self as kit, Maitred};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------
// helpers

/// Start maitred in front of `pg_url` with the one-line flags plus `extra`.
fn start_maitred(pg_url: &str, extra: &[&str]) -> Maitred {
    let mut args = vec!["--upstream", pg_url];
    args.extend_from_slice(extra);
    Maitred::spawn(&args)
}

/// Panic if maitred has exited (e.g. crashed during the test).
fn assert_alive(m: &mut Maitred) {
    if let Some(status) = m.try_exit_status() {
        panic!("maitred exited during the test with {status}");
    }
}

/// Run `fut` or panic after `secs` seconds (no test may hang).
async fn within<F: Future>(secs: u64, what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s: {what}"))
}

/// Connect with tokio-postgres (NoTls); the connection runs in a task.
async fn connect(url: &str) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
    connect_within(url, CONNECT_TIMEOUT).await
}

/// [`connect`] with its own deadline for the whole login.
///
/// A debug build's SCRAM (4096 PBKDF2 rounds of unoptimized SHA-256) costs
/// ~100 ms of CPU on each side of every login, so many simultaneous logins
/// on 2 cores need a generous deadline.
async fn connect_within(
    url: &str,
    deadline: Duration,
) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(deadline);
    let (client, connection) = tokio::time::timeout(deadline, config.connect(NoTls))
        .await
        .unwrap_or_else(|_| panic!("connect to {url} timed out after {deadline:?}"))?;
    let handle = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, handle))
}

async fn must_connect(url: &str) -> (Client, JoinHandle<()>) {
    connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e:?}"))
}

/// The first column of the first row of a simple query's result.
fn first_value(messages: &[SimpleQueryMessage]) -> Option<String> {
    messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    })
}

/// Run a simple query and return the first value of the first row.
async fn scalar(client: &Client, sql: &str) -> String {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    first_value(&messages).unwrap_or_else(|| panic!("{sql}: no row returned"))
}

/// A table name unique to this test process and call.
fn unique_table(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "e2e_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Run a statement directly on the server (not through maitred).
async fn direct_exec(url: &str, sql: &str) {
    let (client, handle) = must_connect(url).await;
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("direct: {sql}: {e:?}"));
    drop(client);
    let _ = handle.await;
}

/// A scalar from a direct (not pooled) connection.
async fn direct_scalar(url: &str, sql: &str) -> String {
    let (client, handle) = must_connect(url).await;
    let v = scalar(&client, sql).await;
    drop(client);
    let _ = handle.await;
    v
}

/// Poll until no `app` backend is idle in a transaction; return the last count.
async fn wait_no_idle_in_transaction(superuser_url: &str, within_secs: u64) -> i64 {
    let (client, handle) = must_connect(superuser_url).await;
    let deadline = Instant::now() + Duration::from_secs(within_secs);
    let mut count;
    loop {
        count = scalar(
            &client,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE usename = 'app' AND state LIKE 'idle in transaction%'",
        )
        .await
        .parse::<i64>()
        .expect("count(*) is an integer");
        if count == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(client);
    let _ = handle.await;
    count
}

/// Poll until at least one `app` backend is idle in a transaction.
async fn wait_some_idle_in_transaction(superuser_url: &str, within_secs: u64) {
    let (client, handle) = must_connect(superuser_url).await;
    let deadline = Instant::now() + Duration::from_secs(within_secs);
    loop {
        let n: i64 = scalar(
            &client,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE usename = 'app' AND state LIKE 'idle in transaction%'",
        )
        .await
        .parse()
        .expect("count(*) is an integer");
        if n > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no backend became 'idle in transaction' within {within_secs}s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(client);
    let _ = handle.await;
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `pgbench -i -s 1` directly against the server.
fn pgbench_init(pg_url: &str) {
    let out = kit::output_with_timeout(
        Command::new("pgbench").args(["-i", "-s", "1", "-q", pg_url]),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "pgbench -i failed: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// Run pgbench through maitred and check it finished with zero failures.
fn pgbench_must_succeed(m: &mut Maitred, url: &str, extra: &[&str]) {
    let mut args = vec!["-c", "200", "-j", "2", "-T", "5", "-n"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = kit::output_with_timeout(
        Command::new("pgbench")
            .args(&args)
            .env("PGCONNECT_TIMEOUT", "15"),
        Duration::from_secs(90),
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    let shown = format!("pgbench {args:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}");
    assert!(
        out.status.success(),
        "pgbench exited with {}: {shown}",
        out.status
    );
    assert!(
        stdout.contains("number of failed transactions: 0 "),
        "pgbench reported failed transactions: {shown}"
    );
    let processed: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.split('/').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no 'transactions actually processed' line: {shown}"));
    assert!(processed > 0, "pgbench processed no transactions: {shown}");
    let lower = format!("{stdout}{stderr}").to_lowercase();
    assert!(
        !lower.contains("error"),
        "pgbench printed an error: {shown}"
    );
    assert!(
        !lower.contains("abort"),
        "pgbench aborted a client: {shown}"
    );
    assert_alive(m);
    eprintln!("pgbench through maitred: {processed} transactions");
}

// ---------------------------------------------------------------------------
// psql

#[test]
fn psql_select_through_maitred() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial_blocking();
    let mut m = start_maitred(&pg_url, &["--pool-size", "2"]);
    let url = m.url_for(&pg_url);
    let out = kit::output_with_timeout(
        Command::new("psql")
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-c", "select 1"])
            .args(["-c", "select 40 + 2, current_user, current_database()"])
            .arg(&url)
            .env("PGCONNECT_TIMEOUT", "15"),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "psql failed ({}): {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "1\n42|app|app\n");

    // The same again with the password from PGPASSWORD instead of the URL.
    let no_pw = kit::pg_url_parts(&url);
    let password = no_pw.password.clone().expect("test URL has a password");
    let no_pw = format!(
        "{}://{}@{}/{}",
        no_pw.scheme,
        no_pw.user.as_deref().expect("test URL has a user"),
        no_pw.host_port(),
        no_pw.database
    );
    let out = kit::output_with_timeout(
        Command::new("psql")
            .args(["-X", "-A", "-t", "-w", "-c", "select 'pgpassword ok'"])
            .arg(&no_pw)
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "15"),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "psql with PGPASSWORD failed: {}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "pgpassword ok\n");
    assert_alive(&mut m);
}

// ---------------------------------------------------------------------------
// pgbench: 200 clients over a pool of 10 (the server allows 20)

#[test]
fn pgbench_select_only_200_clients_pool_10() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial_blocking();
    pgbench_init(&pg_url);
    let mut m = start_maitred(
        &pg_url,
        &["--pool-size", "10", "--pool-mode", "transaction"],
    );
    let url = m.url_for(&pg_url);
    pgbench_must_succeed(&mut m, &url, &["-S"]);
}

#[test]
fn pgbench_tpcb_read_write_200_clients_pool_10() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial_blocking();
    pgbench_init(&pg_url);
    let mut m = start_maitred(
        &pg_url,
        &["--pool-size", "10", "--pool-mode", "transaction"],
    );
    let url = m.url_for(&pg_url);
    pgbench_must_succeed(&mut m, &url, &[]);
}

// ---------------------------------------------------------------------------
// tokio-postgres

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_simple_and_unnamed_statements_50_tasks_pool_5() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let table = unique_table("typed");
    direct_exec(
        &pg_url,
        &format!("CREATE TABLE {table} (task int4 PRIMARY KEY, v int4 NOT NULL)"),
    )
    .await;
    let mut m = start_maitred(&pg_url, &["--pool-size", "5"]);
    let url = m.url_for(&pg_url);

    let mut tasks = Vec::new();
    for i in 0..50i32 {
        let url = url.clone();
        let table = table.clone();
        tasks.push(tokio::spawn(async move {
            let (client, handle) = must_connect(&url).await;
            assert_eq!(
                scalar(&client, &format!("SELECT {i} * 2")).await,
                (i * 2).to_string()
            );

            client.simple_query("BEGIN").await.expect("BEGIN");
            let rows = client
                .query_typed(
                    &format!("INSERT INTO {table} (task, v) VALUES ($1, $2) RETURNING v"),
                    &[(&i, Type::INT4), (&(i * 10), Type::INT4)],
                )
                .await
                .unwrap_or_else(|e| panic!("task {i}: query_typed INSERT: {e:?}"));
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].get::<_, i32>(0), i * 10);
            let rows = client
                .query_typed(
                    &format!("SELECT v FROM {table} WHERE task = $1"),
                    &[(&i, Type::INT4)],
                )
                .await
                .unwrap_or_else(|e| panic!("task {i}: query_typed SELECT: {e:?}"));
            assert_eq!(rows.len(), 1, "task {i} sees its own uncommitted row");
            assert_eq!(rows[0].get::<_, i32>(0), i * 10);
            client.simple_query("COMMIT").await.expect("COMMIT");

            let text_param = format!("hello {i}");
            let rows = client
                .query_typed("SELECT $1::text || '!'", &[(&text_param, Type::TEXT)])
                .await
                .unwrap_or_else(|e| panic!("task {i}: query_typed text: {e:?}"));
            assert_eq!(rows[0].get::<_, String>(0), format!("hello {i}!"));
            drop(client);
            let _ = handle.await;
        }));
    }
    within(60, "50 tasks through a pool of 5", async {
        for t in tasks {
            t.await.expect("task panicked");
        }
    })
    .await;

    let (client, handle) = must_connect(&url).await;
    let counts = scalar(
        &client,
        &format!("SELECT count(*) || ',' || sum(v) FROM {table}"),
    )
    .await;
    assert_eq!(
        counts,
        format!("50,{}", (0..50).map(|i| i * 10).sum::<i32>())
    );
    drop(client);
    let _ = handle.await;
    assert_alive(&mut m);
    direct_exec(&pg_url, &format!("DROP TABLE {table}")).await;
}

/// tokio-postgres `prepare` + `query` uses NAMED statements (`s0`, `s1`, ...;
/// the counter is process-wide, so these clients never reuse a name; the
/// Python tests cover psycopg's per-connection names that do collide).
/// In transaction mode maitred may support them or refuse them with an
/// ErrorResponse, but must never return another statement's result (each row
/// carries its client's number) and must never hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_prepared_statements_correct_or_clean_error() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let mut m = start_maitred(&pg_url, &["--pool-size", "2", "--pool-mode", "transaction"]);
    let url = m.url_for(&pg_url);

    let mut tasks = Vec::new();
    for i in 0..8i32 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let (client, handle) = must_connect(&url).await;
            let mut ok = 0u32;
            let mut refused = 0u32;
            // Each client's first statement is named "s0" but has its own SQL.
            match client
                .prepare(&format!("SELECT $1::int4 + {i}, {i}::int4 AS client"))
                .await
            {
                Err(e) => {
                    let db = e.as_db_error().unwrap_or_else(|| {
                        panic!("client {i}: prepare failed without an ErrorResponse: {e:?}")
                    });
                    eprintln!(
                        "client {i}: prepare refused: {} {}",
                        db.code().code(),
                        db.message()
                    );
                    refused += 1;
                }
                Ok(stmt) => {
                    for n in 0..20i32 {
                        match client.query(&stmt, &[&n]).await {
                            Ok(rows) => {
                                assert_eq!(rows.len(), 1, "client {i}");
                                let (sum, who): (i32, i32) = (rows[0].get(0), rows[0].get(1));
                                assert_eq!(
                                    (sum, who),
                                    (n + i, i),
                                    "client {i} got another statement's result"
                                );
                                ok += 1;
                            }
                            Err(e) => {
                                assert!(
                                    e.as_db_error().is_some(),
                                    "client {i}: execute failed without an ErrorResponse: {e:?}"
                                );
                                refused += 1;
                            }
                        }
                        tokio::task::yield_now().await;
                    }
                }
            }
            drop(client);
            let _ = handle.await;
            (ok, refused)
        }));
    }
    let (ok, refused) = within(30, "named prepared statements", async {
        let mut totals = (0, 0);
        for t in tasks {
            let (o, r) = t.await.expect("client task panicked");
            totals.0 += o;
            totals.1 += r;
        }
        totals
    })
    .await;
    eprintln!("named statements: {ok} correct results, {refused} clean errors");
    assert!(ok + refused > 0);
    assert_alive(&mut m);
}

// ---------------------------------------------------------------------------
// queue timeout

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_timeout_gives_53300_and_connection_stays_usable() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let mut m = start_maitred(&pg_url, &["--pool-size", "1", "--queue-timeout", "1s"]);
    let url = m.url_for(&pg_url);

    let (a, a_handle) = must_connect(&url).await;
    let (b, b_handle) = must_connect(&url).await;
    a.simple_query("BEGIN").await.expect("A: BEGIN");
    assert_eq!(
        scalar(&a, "SELECT 'a holds the only server connection'").await,
        "a holds the only server connection"
    );

    let started = Instant::now();
    let err = within(15, "B waiting in the queue", b.simple_query("SELECT 1"))
        .await
        .expect_err("B must time out in the queue while A holds the only server connection");
    let waited = started.elapsed();
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("queue timeout must be an ErrorResponse, got {err:?}"));
    assert_eq!(db.code(), &SqlState::TOO_MANY_CONNECTIONS, "{db:?}");
    assert!(
        db.message().contains("queue_timeout"),
        "message should mention queue_timeout: {:?}",
        db.message()
    );
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(10),
        "B waited {waited:?} with --queue-timeout 1s"
    );

    a.simple_query("COMMIT").await.expect("A: COMMIT");
    assert_eq!(
        within(10, "B after A committed", scalar(&b, "SELECT 1")).await,
        "1",
        "B's connection must still be usable after the queue timeout"
    );
    assert_eq!(scalar(&a, "SELECT 2").await, "2");
    drop((a, b));
    let _ = a_handle.await;
    let _ = b_handle.await;
    assert_alive(&mut m);
}

// ---------------------------------------------------------------------------
// a client that disappears in the middle of a transaction

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_tokio_client_mid_transaction_is_rolled_back() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let Some(super_url) = kit::require_pg_superuser() else {
        return;
    };
    let _serial = kit::serial().await;
    let table = unique_table("dropped");
    direct_exec(&pg_url, &format!("CREATE TABLE {table} (id int4)")).await;
    let mut m = start_maitred(&pg_url, &["--pool-size", "1"]);
    let url = m.url_for(&pg_url);

    let (a, a_handle) = must_connect(&url).await;
    a.simple_query("BEGIN").await.expect("A: BEGIN");
    a.simple_query(&format!("INSERT INTO {table} VALUES (1)"))
        .await
        .expect("A: INSERT");
    wait_some_idle_in_transaction(&super_url, 5).await;
    // Abruptly: the connection task owns the socket; aborting it closes the
    // socket without a Terminate message.
    a_handle.abort();
    let _ = a_handle.await;
    drop(a);

    let left = wait_no_idle_in_transaction(&super_url, 5).await;
    assert_eq!(
        left, 0,
        "a server connection is still idle in A's transaction"
    );

    // B gets the only server connection: it must not be inside A's transaction.
    let (b, b_handle) = must_connect(&url).await;
    assert_eq!(
        within(
            10,
            "B count",
            scalar(&b, &format!("SELECT count(*) FROM {table}"))
        )
        .await,
        "0",
        "A's uncommitted row is visible"
    );
    b.simple_query("BEGIN")
        .await
        .expect("B: BEGIN (not already in a transaction)");
    b.simple_query("ROLLBACK").await.expect("B: ROLLBACK");
    drop(b);
    let _ = b_handle.await;
    assert_eq!(
        direct_scalar(&pg_url, &format!("SELECT count(*) FROM {table}")).await,
        "0"
    );
    assert_alive(&mut m);
    direct_exec(&pg_url, &format!("DROP TABLE {table}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_psql_mid_transaction_is_rolled_back() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let Some(super_url) = kit::require_pg_superuser() else {
        return;
    };
    let _serial = kit::serial().await;
    let table = unique_table("killed");
    direct_exec(&pg_url, &format!("CREATE TABLE {table} (id int4)")).await;
    let mut m = start_maitred(&pg_url, &["--pool-size", "1"]);
    let url = m.url_for(&pg_url);

    // psql reads the script from a pipe we keep open, so it sits in the
    // transaction until it is killed.
    let mut psql = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &url])
        .env("PGCONNECT_TIMEOUT", "15")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start psql");
    {
        use std::io::Write;
        let stdin = psql.stdin.as_mut().expect("psql stdin");
        writeln!(stdin, "BEGIN;\nINSERT INTO {table} VALUES (1);").expect("write to psql");
        stdin.flush().expect("flush psql stdin");
    }
    wait_some_idle_in_transaction(&super_url, 10).await;
    psql.kill().expect("kill psql");
    let _ = psql.wait();

    let left = wait_no_idle_in_transaction(&super_url, 5).await;
    assert_eq!(
        left, 0,
        "a server connection is still idle in psql's transaction"
    );
    let (b, b_handle) = must_connect(&url).await;
    assert_eq!(
        within(
            10,
            "B count",
            scalar(&b, &format!("SELECT count(*) FROM {table}"))
        )
        .await,
        "0",
        "the killed client's uncommitted row is visible"
    );
    drop(b);
    let _ = b_handle.await;
    assert_alive(&mut m);
    direct_exec(&pg_url, &format!("DROP TABLE {table}")).await;
}

// ---------------------------------------------------------------------------
// authentication errors

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_28p01() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let mut m = start_maitred(&pg_url, &["--pool-size", "2"]);
    let bad = kit::pg_url_parts(&m.url_for(&pg_url))
        .with_password("definitely_wrong")
        .to_string();
    let Err(err) = connect(&bad).await else {
        panic!("login with a wrong password must fail");
    };
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("wrong password must be an ErrorResponse, got {err:?}"));
    assert_eq!(db.code(), &SqlState::INVALID_PASSWORD, "{db:?}");

    // The right password still works afterwards.
    let (c, h) = must_connect(&m.url_for(&pg_url)).await;
    assert_eq!(scalar(&c, "SELECT 1").await, "1");
    drop(c);
    let _ = h.await;
    assert_alive(&mut m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_database_is_3d000() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let mut m = start_maitred(&pg_url, &["--pool-size", "2"]);
    let bad = kit::pg_url_parts(&m.url_for(&pg_url))
        .with_database("no_such_database_e2e")
        .to_string();
    let Err(err) = connect(&bad).await else {
        panic!("login to an unknown database must fail");
    };
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("unknown database must be an ErrorResponse, got {err:?}"));
    assert_eq!(db.code(), &SqlState::INVALID_CATALOG_NAME, "{db:?}");
    assert_alive(&mut m);
}

// ---------------------------------------------------------------------------
// session mode

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_keeps_settings_per_client_and_discards_on_release() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    // One server connection, so the second client gets the first one's.
    let mut m = start_maitred(&pg_url, &["--pool-size", "1", "--pool-mode", "session"]);
    let url = m.url_for(&pg_url);

    let (a, a_handle) = must_connect(&url).await;
    let a_pid = scalar(&a, "SELECT pg_backend_pid()").await;
    a.simple_query("SET application_name = 'e2e_session_x'")
        .await
        .expect("A: SET");
    a.simple_query("BEGIN").await.expect("A: BEGIN");
    assert_eq!(scalar(&a, "SHOW application_name").await, "e2e_session_x");
    a.simple_query("COMMIT").await.expect("A: COMMIT");
    a.simple_query("BEGIN; SELECT 1; COMMIT")
        .await
        .expect("A: second transaction");
    assert_eq!(
        scalar(&a, "SHOW application_name").await,
        "e2e_session_x",
        "a session-level SET must persist across transactions in session mode"
    );
    assert_eq!(
        scalar(&a, "SELECT pg_backend_pid()").await,
        a_pid,
        "session mode pins one server connection"
    );
    drop(a);
    let _ = a_handle.await;

    let (b, b_handle) = within(10, "B connect after A left", must_connect(&url)).await;
    let b_pid = scalar(&b, "SELECT pg_backend_pid()").await;
    let b_name = scalar(&b, "SHOW application_name").await;
    assert_ne!(
        b_name, "e2e_session_x",
        "B sees A's application_name: the server connection was not reset on release"
    );
    eprintln!("session mode: A backend {a_pid}, B backend {b_pid}, B application_name {b_name:?}");
    drop(b);
    let _ = b_handle.await;
    assert_alive(&mut m);
}

// ---------------------------------------------------------------------------
// many clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_clients_pool_10() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let mut m = start_maitred(&pg_url, &["--pool-size", "10"]);
    let url = m.url_for(&pg_url);

    let mut tasks = Vec::new();
    for i in 0..200i64 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let (client, handle) = connect_within(&url, Duration::from_secs(100))
                .await
                .map_err(|e| format!("client {i}: connect: {e:?}"))?;
            for q in 0..3i64 {
                let want = (i * 10 + q).to_string();
                let got = client
                    .simple_query(&format!("SELECT {want}"))
                    .await
                    .map_err(|e| format!("client {i}: query {q}: {e:?}"))?;
                let got = first_value(&got);
                if got.as_deref() != Some(want.as_str()) {
                    return Err(format!("client {i}: query {q}: wanted {want}, got {got:?}"));
                }
            }
            drop(client);
            let _ = handle.await;
            Ok::<(), String>(())
        }));
    }
    let errors = within(110, "200 clients", async {
        let mut errors = Vec::new();
        for t in tasks {
            match t.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(format!("task panicked: {e}")),
            }
        }
        errors
    })
    .await;
    assert!(
        errors.is_empty(),
        "{} of 200 clients failed; first: {:?}",
        errors.len(),
        errors.iter().take(5).collect::<Vec<_>>()
    );
    assert_alive(&mut m);
}
