//! End-to-end tests of PostgreSQL session depth in transaction mode, through the built
//! binary against the real server of `MAITRED_TEST_PG_URL`: the shared prepared-statement
//! cache (pgbench -M prepared/extended, tokio-postgres), session settings that follow their
//! client and never leak, pinning with its cap, and cleanup when a pinned client leaves.

use std::process::Command;
use std::time::Duration;

use maitred_e2e::pg_client::connect;
use maitred_testkit::admin_http::http_body;
use maitred_testkit::{self as kit, Maitred};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

fn start(pg_url: &str, extra: &[&str]) -> Maitred {
    let mut args = vec!["--upstream", pg_url];
    args.extend_from_slice(extra);
    Maitred::spawn(&args)
}

async fn scalar(client: &Client, sql: &str) -> Option<String> {
    let msgs = tokio::time::timeout(Duration::from_secs(20), client.simple_query(sql))
        .await
        .unwrap_or_else(|_| panic!("{sql}: timed out"))
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    msgs.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
        _ => None,
    })?
}

fn pgbench(url: &str, args: &[&str]) -> String {
    let out = kit::output_with_timeout(
        Command::new("pgbench").args(args).arg(url),
        Duration::from_secs(120),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench {args:?} failed:\n{text}");
    text
}

#[test]
fn pgbench_prepared_and_extended_100_clients_pool_10() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial_blocking();
    pgbench(&pg, &["-i", "-s", "1", "-q"]);
    let m = start(&pg, &["--pool-size", "10"]);
    let url = m.url_for(&pg);
    for args in [
        ["-M", "prepared", "-S"],
        ["-M", "prepared", "-N"],
        ["-M", "extended", "-S"],
        ["-M", "extended", "-N"],
    ] {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-c", "100", "-j", "2", "-T", "4", "-n"]);
        let text = pgbench(&url, &all);
        assert!(
            text.contains("number of failed transactions: 0 (0.000%)"),
            "pgbench {all:?}:\n{text}"
        );
        assert!(!text.contains("aborted"), "pgbench {all:?}:\n{text}");
        let tps = text.lines().find(|l| l.starts_with("tps")).unwrap_or("");
        println!("pgbench {args:?} 100 clients pool 10: {tps}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_statements_stay_correct_across_server_connections() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = start(&pg, &["--pool-size", "2"]);
    let url = m.url_for(&pg);
    let mut tasks = Vec::new();
    for k in 0..12i32 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let c = connect(&url).await;
            // Same texts for every task (shared cache), different parameters per task.
            let add = c
                .prepare("select $1::int4 + 1000")
                .await
                .expect("prepare add");
            let mul = c.prepare("select $1::int4 * 2").await.expect("prepare mul");
            for i in 0..25i32 {
                let a: i32 = c
                    .query_one(&add, &[&(k * 100 + i)])
                    .await
                    .expect("add")
                    .get(0);
                assert_eq!(a, k * 100 + i + 1000);
                let b: i32 = c.query_one(&mul, &[&(k + i)]).await.expect("mul").get(0);
                assert_eq!(b, (k + i) * 2);
                // A one-off statement, prepared and closed each time (tokio-postgres names it).
                let v: i64 = c
                    .query_one("select $1::int8 - 1", &[&i64::from(i)])
                    .await
                    .expect("one-off")
                    .get(0);
                assert_eq!(v, i64::from(i) - 1);
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .expect("task timed out")
            .expect("task panicked");
    }
    // Errors inside a statement leave every connection clean.
    let c = connect(&url).await;
    let bad = c.prepare("select 1/$1::int4").await.expect("prepare");
    assert!(
        c.query_one(&bad, &[&0i32]).await.is_err(),
        "division by zero"
    );
    let ok: i32 = c
        .query_one(&bad, &[&1i32])
        .await
        .expect("after error")
        .get(0);
    assert_eq!(ok, 1);
    assert!(c.prepare("select from nowhere_at_all").await.is_err());
    assert_eq!(scalar(&c, "select 7").await.as_deref(), Some("7"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_follow_their_client_and_never_leak() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    // One server connection shared by both clients.
    let m = start(&pg, &["--pool-size", "1"]);
    let url = m.url_for(&pg);
    let a = connect(&url).await;
    let b_url = if url.contains('?') {
        format!("{url}&application_name=client_b")
    } else {
        format!("{url}?application_name=client_b")
    };
    let b = connect(&b_url).await;
    let default_timeout = scalar(&b, "show statement_timeout").await;

    scalar(&a, "SET statement_timeout = '12345'; select 1").await;
    assert_eq!(
        scalar(&a, "show statement_timeout").await.as_deref(),
        Some("12345ms")
    );
    assert_eq!(
        scalar(&b, "show statement_timeout").await,
        default_timeout,
        "B sees A's SET"
    );
    assert_eq!(
        scalar(&b, "show application_name").await.as_deref(),
        Some("client_b")
    );
    assert_eq!(
        scalar(&a, "show application_name").await.as_deref(),
        Some("")
    );
    assert_eq!(
        scalar(&a, "show statement_timeout").await.as_deref(),
        Some("12345ms")
    );

    // SET inside a transaction that rolls back does not stick; one that commits does.
    a.batch_execute("BEGIN; SET statement_timeout = '777'; ROLLBACK")
        .await
        .expect("rollback");
    scalar(&b, "select 1").await;
    assert_eq!(
        scalar(&a, "show statement_timeout").await.as_deref(),
        Some("12345ms")
    );
    a.batch_execute("BEGIN").await.expect("begin");
    a.batch_execute("SET search_path TO pg_catalog")
        .await
        .expect("set");
    a.batch_execute("COMMIT").await.expect("commit");
    scalar(&b, "select 1").await;
    assert_eq!(
        scalar(&a, "show search_path").await.as_deref(),
        Some("pg_catalog")
    );
    assert_ne!(
        scalar(&b, "show search_path").await.as_deref(),
        Some("pg_catalog")
    );

    // RESET returns to the default; B's startup setting survives A's RESET ALL.
    a.batch_execute("RESET statement_timeout")
        .await
        .expect("reset");
    assert_eq!(scalar(&a, "show statement_timeout").await, default_timeout);
    a.batch_execute("RESET ALL").await.expect("reset all");
    assert_eq!(
        scalar(&b, "show application_name").await.as_deref(),
        Some("client_b")
    );
    assert_ne!(
        scalar(&a, "show search_path").await.as_deref(),
        Some("pg_catalog")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_state_stays_with_its_client_and_is_cleaned_after() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    // Pool of 2: max_pinned defaults to 1.
    let m = start(&pg, &["--pool-size", "2"]);
    let url = m.url_for(&pg);
    let a = connect(&url).await;
    let b = connect(&url).await;

    a.batch_execute(
        "CREATE TEMP TABLE maitred_pin_t (v int); INSERT INTO maitred_pin_t VALUES (1)",
    )
    .await
    .expect("temp table");
    a.batch_execute("select pg_advisory_lock(4242)")
        .await
        .expect("lock");
    for _ in 0..5 {
        // B's transactions never land on A's connection while A is pinned.
        assert_eq!(
            scalar(&b, "select to_regclass('pg_temp.maitred_pin_t') is null")
                .await
                .as_deref(),
            Some("t")
        );
        assert_eq!(
            scalar(&a, "select count(*) from maitred_pin_t")
                .await
                .as_deref(),
            Some("1")
        );
    }
    // (The transaction-level try does not pin B.)
    assert_eq!(
        scalar(&b, "select pg_try_advisory_xact_lock(4242)")
            .await
            .as_deref(),
        Some("f")
    );

    // The cap: a second client that would pin is refused, and can go on.
    let err = b
        .batch_execute("CREATE TEMP TABLE maitred_pin_b (v int)")
        .await
        .expect_err("max_pinned reached");
    let db = err.as_db_error().expect("db error");
    assert_eq!(db.code().code(), "53300");
    assert!(db.message().contains("max_pinned"), "{}", db.message());
    assert_eq!(scalar(&b, "select 1").await.as_deref(), Some("1"));

    // A leaves: its temp table and lock go with it.
    drop(a);
    let mut freed = false;
    for _ in 0..50 {
        if scalar(&b, "select pg_try_advisory_xact_lock(4242)")
            .await
            .as_deref()
            == Some("t")
        {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the advisory lock outlived its client");
    let c = connect(&url).await;
    for _ in 0..4 {
        assert_eq!(
            scalar(&c, "select to_regclass('pg_temp.maitred_pin_t') is null")
                .await
                .as_deref(),
            Some("t")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_reaches_the_running_query_only() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = start(&pg, &["--pool-size", "2"]);
    let url = m.url_for(&pg);
    let a = connect(&url).await;
    let b = connect(&url).await;
    let token = a.cancel_token();
    let started = std::time::Instant::now();
    let sleeper = tokio::spawn(async move {
        let r = a.simple_query("select pg_sleep(20)").await;
        (r, a)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    token
        .cancel_query(NoTls)
        .await
        .expect("cancel request sent");
    let (r, a) = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the cancelled query still ran")
        .expect("task");
    let err = r.expect_err("query was cancelled");
    assert_eq!(
        err.as_db_error().map(|e| e.code().code()),
        Some("57014"),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The other client and the cancelled one both go on.
    assert_eq!(scalar(&b, "select 2").await.as_deref(), Some("2"));
    assert_eq!(scalar(&a, "select 3").await.as_deref(), Some("3"));
    // A cancel for a client that holds no server connection is dropped: nothing breaks.
    b.cancel_token().cancel_query(NoTls).await.expect("sent");
    assert_eq!(scalar(&b, "select 4").await.as_deref(), Some("4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_out_and_a_failing_copy_in_transaction_mode() {
    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = start(&pg, &["--pool-size", "1"]);
    let url = m.url_for(&pg);
    let c = connect(&url).await;
    c.batch_execute("DROP TABLE IF EXISTS maitred_copy; CREATE TABLE maitred_copy (a int, b text)")
        .await
        .expect("table");
    let sink = c
        .copy_in("COPY maitred_copy FROM STDIN")
        .await
        .expect("copy in");
    let mut sink = Box::pin(sink);
    for i in 0..1000 {
        sink.send(Bytes::from(format!("{i}\trow {i}\n")))
            .await
            .expect("send");
    }
    let n = sink.as_mut().finish().await.expect("finish");
    assert_eq!(n, 1000);
    let stream = c
        .copy_out("COPY (select a from maitred_copy order by a) TO STDOUT")
        .await
        .expect("copy out");
    let chunks: Vec<Bytes> = Box::pin(stream).map(|r| r.expect("chunk")).collect().await;
    let text: String = chunks
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert_eq!(text.lines().count(), 1000);
    assert_eq!(text.lines().last(), Some("999"));
    // A COPY with bad data fails, and the connection (and the pool's only server
    // connection) stays clean for the next client.
    let sink = c
        .copy_in("COPY maitred_copy FROM STDIN")
        .await
        .expect("copy in");
    let mut sink = Box::pin(sink);
    sink.send(Bytes::from_static(b"not a number\tx\n"))
        .await
        .ok();
    assert!(
        sink.as_mut().finish().await.is_err(),
        "bad COPY data must fail"
    );
    let other = connect(&url).await;
    assert_eq!(
        scalar(&other, "select count(*) from maitred_copy")
            .await
            .as_deref(),
        Some("1000")
    );
    assert_eq!(scalar(&c, "select 1").await.as_deref(), Some("1"));
    c.batch_execute("DROP TABLE maitred_copy")
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_mode_runs_statements_and_refuses_transaction_blocks() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = start(&pg, &["--pool-size", "1", "--pool-mode", "statement"]);
    let url = m.url_for(&pg);
    let a = connect(&url).await;
    let b = connect(&url).await;
    // Two clients share one server connection statement by statement.
    for i in 0..5 {
        assert_eq!(
            scalar(&a, &format!("select {i}")).await,
            Some(i.to_string())
        );
        let v: i32 = b
            .query_one("select $1::int4", &[&i])
            .await
            .expect("extended")
            .get(0);
        assert_eq!(v, i);
    }
    let err = a
        .batch_execute("BEGIN")
        .await
        .expect_err("blocks are refused");
    let db = err.as_db_error().expect("db error");
    assert_eq!(db.code().code(), "0A000");
    assert!(db.message().contains("statement mode"), "{}", db.message());
    // The refusal leaves both clients working and no transaction open.
    assert_eq!(scalar(&a, "select 1").await.as_deref(), Some("1"));
    assert_eq!(
        scalar(&b, "select now() = statement_timestamp()")
            .await
            .as_deref(),
        Some("t")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_notify_without_pinning() {
    use futures_util::StreamExt;
    use tokio_postgres::AsyncMessage;
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    // One server connection for queries: a pinned listener would starve the notifier.
    let m = start(&pg, &["--pool-size", "1", "--queue-timeout", "2s"]);
    let url = m.url_for(&pg);
    let (listener, mut conn) = tokio_postgres::connect(&url, NoTls).await.expect("connect");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = messages.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener
        .batch_execute("LISTEN maitred_jobs")
        .await
        .expect("listen");
    let sender = connect(&url).await;
    // The listener holds no server connection: the sender's queries go through at once.
    for i in 0..3 {
        sender
            .batch_execute(&format!("NOTIFY maitred_jobs, 'job {i}'"))
            .await
            .expect("notify");
    }
    for i in 0..3 {
        let (ch, payload) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("notification timed out")
            .expect("notification");
        assert_eq!(ch, "maitred_jobs");
        assert_eq!(payload, format!("job {i}"));
    }
    // The listener can still run queries, and after UNLISTEN gets nothing more.
    assert_eq!(scalar(&listener, "select 5").await.as_deref(), Some("5"));
    listener
        .batch_execute("UNLISTEN *")
        .await
        .expect("unlisten");
    sender
        .batch_execute("NOTIFY maitred_jobs, 'late'")
        .await
        .expect("notify");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), rx.recv())
            .await
            .is_err(),
        "a notification arrived after UNLISTEN"
    );
}

/// `url` with a startup `application_name`.
fn with_application_name(url: &str, name: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={name}")
}

const CUSTOM_SETTING: &str = "select current_setting('maitred.test', true)";

/// What a client sees of the custom setting `maitred.test` when it never set it: undefined
/// (NULL), or empty once a RESET left a placeholder on the connection.
fn unset(v: &Option<String>) -> bool {
    matches!(v.as_deref(), None | Some(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_config_follows_its_client_and_never_leaks() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    // One server connection shared by both clients.
    let m = start(&pg, &["--pool-size", "1"]);
    let url = m.url_for(&pg);
    let a = connect(&url).await;
    let b = connect(&with_application_name(&url, "client_b")).await;
    let default_path = scalar(&b, "show search_path").await;

    assert_eq!(
        scalar(&a, "SELECT set_config('maitred.test', 'from_a', false)")
            .await
            .as_deref(),
        Some("from_a")
    );
    assert_eq!(scalar(&a, CUSTOM_SETTING).await.as_deref(), Some("from_a"));
    let seen = scalar(&b, CUSTOM_SETTING).await;
    assert!(unset(&seen), "B sees A's set_config: {seen:?}");
    assert_eq!(
        scalar(&a, CUSTOM_SETTING).await.as_deref(),
        Some("from_a"),
        "A lost its set_config after B used the connection"
    );

    // A list setting: the raw value is a list of schemas, and stays one.
    scalar(
        &a,
        "select set_config('search_path', 'maitred_other, public', false)",
    )
    .await;
    assert_eq!(scalar(&b, "show search_path").await, default_path);
    assert_eq!(
        scalar(&a, "show search_path").await.as_deref(),
        Some("maitred_other, public")
    );

    // Transaction-local: gone with its transaction, not replayed.
    scalar(&a, "select set_config('maitred.test', 'local', true)").await;
    scalar(&b, "select 1").await;
    assert_eq!(scalar(&a, CUSTOM_SETTING).await.as_deref(), Some("from_a"));

    // Inside a block that rolls back: does not stick; one that commits does.
    a.batch_execute("BEGIN; select set_config('maitred.test', 'rolled_back', false); ROLLBACK")
        .await
        .expect("rollback");
    scalar(&b, "select 1").await;
    assert_eq!(scalar(&a, CUSTOM_SETTING).await.as_deref(), Some("from_a"));
    a.batch_execute("BEGIN; select set_config('maitred.test', 'committed', false); COMMIT")
        .await
        .expect("commit");
    let seen = scalar(&b, CUSTOM_SETTING).await;
    assert!(unset(&seen), "B sees A's set_config: {seen:?}");
    assert_eq!(
        scalar(&a, CUSTOM_SETTING).await.as_deref(),
        Some("committed")
    );
    assert_eq!(
        scalar(&b, "show application_name").await.as_deref(),
        Some("client_b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_through_the_extended_protocol_follow_their_client() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = start(&pg, &["--pool-size", "1"]);
    let url = m.url_for(&pg);
    let a = connect(&url).await;
    let b = connect(&with_application_name(&url, "client_b")).await;
    let default_timeout = scalar(&b, "show statement_timeout").await;

    // `execute` with a query string prepares a named statement (Parse "s<n>", Describe,
    // Sync) and runs it with Bind/Execute/Sync.
    a.execute("SET application_name = 'ext_a'", &[])
        .await
        .expect("SET via a named statement");
    assert_eq!(
        scalar(&b, "show application_name").await.as_deref(),
        Some("client_b"),
        "B sees A's SET"
    );
    assert_eq!(
        scalar(&a, "show application_name").await.as_deref(),
        Some("ext_a")
    );

    // `query_typed` uses the unnamed statement: Parse "" Bind Describe Execute Sync.
    a.query_typed("SET statement_timeout = '4321'", &[])
        .await
        .expect("SET via the unnamed statement");
    assert_eq!(scalar(&b, "show statement_timeout").await, default_timeout);
    assert_eq!(
        scalar(&a, "show statement_timeout").await.as_deref(),
        Some("4321ms")
    );

    // set_config with literals, through the extended protocol.
    let v: String = a
        .query_one("select set_config('maitred.test', 'ext', false)", &[])
        .await
        .expect("set_config")
        .get(0);
    assert_eq!(v, "ext");
    let seen = scalar(&b, CUSTOM_SETTING).await;
    assert!(unset(&seen), "B sees A's set_config: {seen:?}");
    assert_eq!(scalar(&a, CUSTOM_SETTING).await.as_deref(), Some("ext"));

    // A failing SET changes nothing.
    assert!(a
        .execute("SET statement_timeout = 'not a duration'", &[])
        .await
        .is_err());
    scalar(&b, "select 1").await;
    assert_eq!(
        scalar(&a, "show statement_timeout").await.as_deref(),
        Some("4321ms")
    );

    // In a block: rolled back, not kept; committed (by an extended COMMIT), kept.
    a.batch_execute("BEGIN").await.expect("begin");
    a.execute("SET application_name = 'rolled_back'", &[])
        .await
        .expect("set");
    a.batch_execute("ROLLBACK").await.expect("rollback");
    scalar(&b, "select 1").await;
    assert_eq!(
        scalar(&a, "show application_name").await.as_deref(),
        Some("ext_a")
    );
    a.batch_execute("BEGIN").await.expect("begin");
    a.execute("SET application_name = 'committed'", &[])
        .await
        .expect("set");
    a.execute("COMMIT", &[]).await.expect("commit");
    assert_eq!(
        scalar(&b, "show application_name").await.as_deref(),
        Some("client_b")
    );
    assert_eq!(
        scalar(&a, "show application_name").await.as_deref(),
        Some("committed")
    );

    // RESET returns to A's startup value (none: the server's default).
    a.execute("RESET application_name", &[])
        .await
        .expect("reset");
    scalar(&b, "select 1").await;
    assert_eq!(
        scalar(&a, "show application_name").await.as_deref(),
        Some("")
    );
    assert_eq!(
        scalar(&b, "show application_name").await.as_deref(),
        Some("client_b")
    );
}

/// The value of the PostgreSQL pool's `metric`, with `label` (e.g. `reason="listen"`) after
/// the pool labels.
fn metric(text: &str, metric: &str, label: Option<&str>) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(metric)?.strip_prefix("{pool=\"")?;
        let (_, rest) = rest.split_once("\",protocol=\"postgres\"")?;
        let rest = match label {
            Some(label) => rest.strip_prefix(',')?.strip_prefix(label)?,
            None => rest,
        };
        rest.strip_prefix("} ")?.trim().parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_pins_with_its_cap_and_is_cleaned_after() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("admin addr");
    let admin_arg = admin.to_string();
    // Pool of 2: max_pinned defaults to 1.
    let m = start(&pg, &["--pool-size", "2", "--admin", &admin_arg]);
    assert!(kit::wait_for_port(admin, Duration::from_secs(10)));
    let url = m.url_for(&pg);
    let a = connect(&url).await;
    let b = connect(&url).await;
    let pins = |reason: &str| {
        metric(
            &http_body(admin, "/metrics"),
            "maitred_pins_total",
            Some(&format!("reason=\"{reason}\"")),
        )
    };

    // `query` with parameters: Parse/Describe/Sync, then Bind/Execute/Sync.
    a.query("SELECT pg_advisory_lock($1)", &[&4343i64])
        .await
        .expect("lock");
    assert_eq!(pins("advisory_lock"), Some(1.0));
    assert_eq!(
        metric(
            &http_body(admin, "/metrics"),
            "maitred_clients_pinned",
            None
        ),
        Some(1.0)
    );
    // A keeps its connection: B, on the other one, cannot take the lock.
    for _ in 0..3 {
        assert_eq!(
            scalar(&b, "select pg_try_advisory_xact_lock(4343)")
                .await
                .as_deref(),
            Some("f")
        );
        let v: i32 = a
            .query_one("select $1::int4", &[&7i32])
            .await
            .expect("A goes on")
            .get(0);
        assert_eq!(v, 7);
    }

    // The cap holds for the extended protocol too: B's pins are refused, and B goes on.
    let err = b
        .query("SELECT pg_advisory_lock($1)", &[&4344i64])
        .await
        .expect_err("max_pinned reached");
    let db = err.as_db_error().expect("db error");
    assert_eq!(db.code().code(), "53300");
    assert!(db.message().contains("advisory_lock"), "{}", db.message());
    let v: i32 = b
        .query_one("select $1::int4", &[&8i32])
        .await
        .expect("B goes on")
        .get(0);
    assert_eq!(v, 8);
    assert_eq!(
        scalar(&b, "select pg_try_advisory_xact_lock(4344)")
            .await
            .as_deref(),
        Some("t"),
        "B's refused lock was taken anyway"
    );
    assert_eq!(
        metric(
            &http_body(admin, "/metrics"),
            "maitred_pins_refused_total",
            None
        ),
        Some(1.0)
    );

    // A leaves: its lock goes with it, and its place under the cap is free.
    drop(a);
    let mut freed = false;
    for _ in 0..50 {
        if scalar(&b, "select pg_try_advisory_xact_lock(4343)")
            .await
            .as_deref()
            == Some("t")
            && metric(
                &http_body(admin, "/metrics"),
                "maitred_clients_pinned",
                None,
            ) == Some(0.0)
        {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(freed, "the advisory lock or the pin outlived its client");

    // set_config with a parameter cannot be followed from the text: the session is
    // confirmed with the server, which reports the value, and the setting follows C.
    let c = connect(&url).await;
    let v: String = c
        .query_one("select set_config('maitred.test', $1, false)", &[&"from_c"])
        .await
        .expect("set_config")
        .get(0);
    assert_eq!(v, "from_c");

    for _ in 0..3 {
        assert_eq!(scalar(&c, CUSTOM_SETTING).await.as_deref(), Some("from_c"));
        let seen = scalar(&b, CUSTOM_SETTING).await;
        assert!(unset(&seen), "B sees C's set_config: {seen:?}");
    }
    // C's queries after the set_config waited for the confirmation: it is counted by now.
    assert_eq!(pins("confirmed_state"), Some(0.0), "followed, not pinned");
    assert!(
        metric(
            &http_body(admin, "/metrics"),
            "maitred_session_confirmations_total",
            Some("reason=\"function\"")
        )
        .is_some_and(|n| n >= 1.0),
        "the confirmation is counted"
    );
}

/// The number tokio-postgres will give the next statement it prepares (`s<n>`), read from a
/// statement prepared on a direct connection.
async fn last_statement_number(direct: &Client) -> u64 {
    let _probe = direct.prepare("select 1").await.expect("prepare");
    scalar(
        direct,
        "select max(substr(name, 2)::int8) from pg_prepared_statements where name ~ '^s[0-9]+$'",
    )
    .await
    .and_then(|n| n.parse().ok())
    .expect("a statement number")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_deallocate_of_a_protocol_statement() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = start(&pg, &["--pool-size", "1"]);
    let url = m.url_for(&pg);
    let a = connect(&url).await;
    let direct = connect(&pg).await;

    // tokio-postgres does not show statement names: learn them from its counter, checked
    // on both sides.
    let before = last_statement_number(&direct).await;
    let first = a.prepare("select 42::int4").await.expect("prepare");
    let second = a.prepare("select 43::int4").await.expect("prepare");
    let after = last_statement_number(&direct).await;
    assert_eq!(
        after,
        before + 3,
        "another statement was prepared meanwhile"
    );
    let (first_name, second_name) = (format!("s{}", before + 1), format!("s{}", before + 2));
    let v: i32 = a.query_one(&first, &[]).await.expect("run").get(0);
    assert_eq!(v, 42);

    // While idle (no server connection held): answered by maitred.
    a.batch_execute(&format!("DEALLOCATE {first_name}"))
        .await
        .expect("DEALLOCATE of a protocol-level statement");
    let err = a
        .query_one(&first, &[])
        .await
        .expect_err("the statement is gone");
    assert_eq!(
        err.as_db_error().map(|e| e.code().code()),
        Some("26000"),
        "{err:?}"
    );
    let err = a
        .batch_execute(&format!("DEALLOCATE {first_name}"))
        .await
        .expect_err("a second DEALLOCATE fails, as in PostgreSQL");
    assert_eq!(
        err.as_db_error().map(|e| e.code().code()),
        Some("26000"),
        "{err:?}"
    );

    // Inside a transaction block (a server connection held), with PREPARE and upper case.
    a.batch_execute("BEGIN").await.expect("begin");
    let v: i32 = a.query_one(&second, &[]).await.expect("run").get(0);
    assert_eq!(v, 43);
    a.batch_execute(&format!(
        "DEALLOCATE PREPARE {};",
        second_name.to_uppercase()
    ))
    .await
    .expect("DEALLOCATE PREPARE inside a block");
    assert_eq!(scalar(&a, "select 1").await.as_deref(), Some("1"));
    a.batch_execute("COMMIT").await.expect("commit");
    let err = a
        .query_one(&second, &[])
        .await
        .expect_err("the statement is gone");
    assert_eq!(err.as_db_error().map(|e| e.code().code()), Some("26000"));

    // DEALLOCATE ALL still forgets every statement.
    let third = a.prepare("select 44::int4").await.expect("prepare");
    let v: i32 = a.query_one(&third, &[]).await.expect("run").get(0);
    assert_eq!(v, 44);
    a.batch_execute("DEALLOCATE ALL")
        .await
        .expect("DEALLOCATE ALL");
    assert!(a.query_one(&third, &[]).await.is_err());
    assert_eq!(scalar(&a, "select 2").await.as_deref(), Some("2"));
}
