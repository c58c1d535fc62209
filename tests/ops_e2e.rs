//! End-to-end tests of the operations surface: the admin endpoint (`--admin`) of the
//! built binary in front of the real PostgreSQL named by `MAITRED_TEST_PG_URL`, and the
//! graceful drain on SIGTERM / SIGINT (docs/operations.md) for PostgreSQL, MySQL and
//! MongoDB clients.
//!
//! Without the test server's URL every test prints a skip notice and passes, except
//! under `CI=true`, where it fails.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use maitred_testkit::admin_http::http_get;
use maitred_testkit::{self as kit, Maitred};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// Polls `path` until it answers `want`; returns the last (status, body).
fn wait_for_status(addr: SocketAddr, path: &str, want: u16, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        let got = http_get(addr, path);
        if got.0 == want || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn connect(url: &str) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(15));
    let (client, connection) = config.connect(NoTls).await?;
    let handle = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, handle))
}

async fn scalar(client: &Client, sql: &str) -> String {
    let messages = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// maitred in front of `pg_url` with an admin endpoint on a free port.
fn start_with_admin(pg_url: &str, extra: &[&str]) -> (Maitred, SocketAddr) {
    maitred_testkit::admin_http::spawn_with_admin(pg_url, extra)
}

/// The value of the sample line `name{labels}` in a Prometheus text exposition.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

fn send_signal(m: &Maitred, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &m.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} failed");
}

fn wait_exit(m: &mut Maitred, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = m.try_exit_status() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "maitred did not exit within {within:?}\n{}",
            m.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoint_serves_metrics_health_readiness_and_pools() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (m, admin) = start_with_admin(&pg_url, &["--pool-size", "3"]);

    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_owned()));
    let (status, body) = wait_for_status(admin, "/readyz", 200, Duration::from_secs(15));
    assert_eq!(status, 200, "/readyz: {body}\n{}", m.log());
    assert_eq!(body, "ready\n");

    let url = m.url_for(&pg_url);
    let (client, conn) = connect(&url).await.expect("connect through maitred");
    for i in 0..5 {
        assert_eq!(scalar(&client, &format!("SELECT {i}")).await, i.to_string());
    }
    client
        .batch_execute("BEGIN; SELECT 1; COMMIT")
        .await
        .expect("transaction");

    let (status, pools) = http_get(admin, "/pools");
    assert_eq!(status, 200);
    let pools: serde_json::Value = serde_json::from_str(&pools).expect("/pools is JSON");
    let pools = pools.as_array().expect("/pools is an array");
    assert_eq!(pools.len(), 1, "{pools:?}");
    let pool = &pools[0];
    let name = pool["name"].as_str().expect("name").to_owned();
    assert_eq!(pool["protocol"], "postgres");
    assert_eq!(pool["listen"], m.addr().to_string());
    assert_eq!(pool["size"], 3);
    assert_eq!(pool["waiting"], 0);
    assert!(pool["counters"]["checkouts"].as_u64().expect("checkouts") >= 6);
    assert!(
        pool["counters"]["server_connects"]
            .as_u64()
            .expect("connects")
            >= 1
    );
    assert!(
        pool["counters"]["transactions"].as_u64().is_some(),
        "{pool}"
    );

    let (status, text) = http_get(admin, "/metrics");
    assert_eq!(status, 200);
    let labels = format!("{{pool=\"{name}\",protocol=\"postgres\"}}");
    let get = |metric: &str| {
        sample(&text, &format!("{metric}{labels}"))
            .unwrap_or_else(|| panic!("{metric}{labels} missing from\n{text}"))
    };
    assert_eq!(get("maitred_pool_size"), 3.0);
    assert!(get("maitred_checkouts_total") >= 6.0, "{text}");
    assert!(get("maitred_server_connects_total") >= 1.0);
    assert_eq!(get("maitred_server_connect_failures_total"), 0.0);
    assert_eq!(get("maitred_clients_waiting"), 0.0);
    assert!(get("maitred_checkout_wait_seconds_count") >= 6.0);
    assert!(get("maitred_checkout_wait_seconds_sum") >= 0.0);
    let idle = format!(
        "maitred_server_connections{{pool=\"{name}\",protocol=\"postgres\",state=\"idle\"}}"
    );
    assert!(
        sample(&text, &idle).expect("idle connections gauge") >= 1.0,
        "{text}"
    );
    assert!(
        text.contains("# TYPE maitred_checkouts_total counter"),
        "{text}"
    );
    assert_eq!(sample(&text, "maitred_draining"), Some(0.0));
    let pins = format!(
        "maitred_pins_total{{pool=\"{name}\",protocol=\"postgres\",reason=\"temp_table\"}}"
    );
    assert_eq!(sample(&text, &pins), Some(0.0), "{text}");
    assert_eq!(get("maitred_clients_pinned"), 0.0);

    assert_eq!(http_get(admin, "/nope").0, 404);
    drop(client);
    let _ = conn.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_server_is_unreachable() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let dead = format!("127.0.0.1:{}", kit::free_port());
    let bad_url = kit::swap_host_port(&pg_url, &dead);
    let (m, admin) = start_with_admin(&bad_url, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = http_get(admin, "/readyz");
    assert_eq!(status, 503, "{body}\n{}", m.log());
    assert!(
        body.contains("unreachable") || body.contains("has not reached its server"),
        "{body}"
    );
    assert_eq!(http_get(admin, "/healthz").0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_an_open_transaction_then_exits_0() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (mut m, admin) = start_with_admin(&pg_url, &["--pool-size", "2"]);
    let (status, body) = wait_for_status(admin, "/readyz", 200, Duration::from_secs(15));
    assert_eq!(status, 200, "{body}");
    let url = m.url_for(&pg_url);
    let (client, conn) = connect(&url).await.expect("connect through maitred");
    client.batch_execute("BEGIN").await.expect("BEGIN");
    assert_eq!(scalar(&client, "SELECT 41 + 1").await, "42");
    // A second client, idle (no transaction): told goodbye when the drain starts.
    let mut idle_config: tokio_postgres::Config = url.parse().expect("url");
    idle_config.connect_timeout(Duration::from_secs(15));
    let (idle, idle_conn) = idle_config.connect(NoTls).await.expect("idle client");
    let idle_conn = tokio::spawn(idle_conn);
    assert_eq!(scalar(&idle, "SELECT 1").await, "1");

    send_signal(&m, "-TERM");
    let (status, body) = wait_for_status(admin, "/readyz", 503, Duration::from_secs(5));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
    let goodbye = tokio::time::timeout(Duration::from_secs(5), idle_conn)
        .await
        .expect("the idle client is told goodbye")
        .expect("connection task");
    let err = goodbye.expect_err("the idle client's connection ends with an error");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::ADMIN_SHUTDOWN),
        "{err:?}"
    );
    assert!(idle.is_closed());

    // The listener is closed: new clients are refused while the transaction runs on.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect_timeout(&m.addr(), Duration::from_secs(1)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "maitred still accepts after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        connect(&url).await.is_err(),
        "a new client got in while draining"
    );
    assert!(
        m.try_exit_status().is_none(),
        "exited before the transaction ended"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(scalar(&client, "SELECT 'still here'").await, "still here");
    client
        .batch_execute("COMMIT")
        .await
        .expect("COMMIT while draining");

    let status = wait_exit(&mut m, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}\n{}", m.log());
    assert!(m.log().contains("drained"), "{}", m.log());
    drop(client);
    let _ = conn.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_gives_up_on_a_stuck_transaction_after_a_short_timeout() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (mut m, admin) = start_with_admin(&pg_url, &["--pool-size", "2"]);
    let (status, body) = wait_for_status(admin, "/readyz", 200, Duration::from_secs(15));
    assert_eq!(status, 200, "{body}");
    let (client, conn) = connect(&m.url_for(&pg_url)).await.expect("connect");
    client.batch_execute("BEGIN").await.expect("BEGIN");

    let sent = Instant::now();
    send_signal(&m, "-INT");
    let status = wait_exit(&mut m, Duration::from_secs(15));
    let took = sent.elapsed();
    assert!(status.success(), "exit status {status}\n{}", m.log());
    assert!(
        took >= Duration::from_secs(4),
        "exited after {took:?}, before the SIGINT drain timeout"
    );
    assert!(
        client.batch_execute("COMMIT").await.is_err(),
        "the session outlived maitred"
    );
    let _ = conn.await;
}

#[test]
fn mysql_and_mongodb_pools_show_in_pools_metrics_and_readiness() {
    for (protocol, url) in [
        ("mysql", "mysql://app:pw@127.0.0.1:{port}/app"),
        ("mongodb", "mongodb://app:pw@127.0.0.1:{port}/app"),
    ] {
        // No server behind the port: the pool never reaches it.
        let url = url.replace("{port}", &kit::free_port().to_string());
        let (mut m, admin) = start_with_admin(&url, &["--pool-size", "4"]);
        let (status, body) = wait_for_status(admin, "/readyz", 503, Duration::from_secs(5));
        assert_eq!(status, 503, "{protocol}: {body}");
        assert!(
            body.contains(&format!("({protocol})")),
            "{protocol}: {body}"
        );
        let (_, pools) = http_get(admin, "/pools");
        let pools: serde_json::Value = serde_json::from_str(&pools).expect("/pools is JSON");
        assert_eq!(pools[0]["protocol"], protocol, "{pools}");
        assert_eq!(pools[0]["size"], 4);
        assert_eq!(pools[0]["listen"], m.addr().to_string());
        let (_, text) = http_get(admin, "/metrics");
        let size = format!(
            "maitred_pool_size{{pool=\"{}\",protocol=\"{protocol}\"}}",
            pools[0]["name"].as_str().expect("name")
        );
        assert_eq!(sample(&text, &size), Some(4.0), "{text}");
        send_signal(&m, "-TERM");
        let status = wait_exit(&mut m, Duration::from_secs(10));
        assert!(
            status.success(),
            "{protocol}: exit status {status}\n{}",
            m.log()
        );
    }
}

/// A mysql_async connection straight to `url` (no unix-socket shortcut around maitred).
async fn mysql_connect(url: &str) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::from_opts(
        mysql_async::Opts::from_url(url).expect("valid mysql URL"),
    )
    .prefer_socket(false);
    tokio::time::timeout(Duration::from_secs(20), mysql_async::Conn::new(opts))
        .await
        .expect("connect within 20 s")
        .unwrap_or_else(|e| panic!("connect to maitred: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_sigterm_lets_a_transaction_commit_and_says_goodbye_to_idle_clients() {
    use mysql_async::prelude::Queryable;
    let Some(url) = kit::mysql::require_mysql() else {
        return;
    };
    let _serial = kit::serial().await;
    let (mut m, admin) = start_with_admin(&url, &["--pool-size", "2"]);
    let (status, body) = wait_for_status(admin, "/readyz", 200, Duration::from_secs(15));
    assert_eq!(status, 200, "{body}");
    let client_url = kit::mysql::MysqlUrl::parse(&url).with_addr(m.addr());
    let mut tx = mysql_connect(&client_url).await;
    tx.query_drop("START TRANSACTION").await.expect("begin");
    let one: Option<i64> = tx.query_first("SELECT 1").await.expect("select");
    assert_eq!(one, Some(1));
    let mut idle = mysql_connect(&client_url).await;
    let one: Option<i64> = idle.query_first("SELECT 1").await.expect("idle select");
    assert_eq!(one, Some(1));

    send_signal(&m, "-TERM");
    let (status, body) = wait_for_status(admin, "/readyz", 503, Duration::from_secs(5));
    assert_eq!(status, 503, "{body}");
    // The idle client is let go: its next command gets ERR 1053, or finds the connection
    // closed (MySQL clients take no unsolicited packet, so an idle one is just closed).
    let e = tokio::time::timeout(Duration::from_secs(10), idle.query_drop("SELECT 2"))
        .await
        .expect("the idle client's command hung")
        .expect_err("an idle client's command during the drain is refused");
    match &e {
        mysql_async::Error::Server(s) => assert_eq!(s.code, 1053, "{e:?}"),
        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => {}
        other => panic!("unexpected error for the idle client: {other:?}"),
    }
    drop(idle);

    // The transaction runs on and commits; then the client is let go too.
    let answer: Option<i64> = tx.query_first("SELECT 41 + 1").await.expect("in txn");
    assert_eq!(answer, Some(42));
    assert!(
        m.try_exit_status().is_none(),
        "exited before the transaction ended"
    );
    tx.query_drop("COMMIT")
        .await
        .expect("COMMIT while draining");
    let after = tokio::time::timeout(Duration::from_secs(10), tx.query_drop("SELECT 3"))
        .await
        .expect("the command after COMMIT hung");
    assert!(after.is_err(), "a command after the transaction was served");

    let status = wait_exit(&mut m, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}\n{}", m.log());
    assert!(m.log().contains("drained"), "{}", m.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_sigterm_lets_a_transaction_commit_and_refuses_idle_clients() {
    use mongodb::bson::{doc, Document};
    let Some(url) = kit::mongo::require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let (mut m, admin) = start_with_admin(&url, &["--pool-size", "2"]);
    let (status, body) = wait_for_status(admin, "/readyz", 200, Duration::from_secs(15));
    assert_eq!(status, 200, "{body}");
    let client = |u: String| async move {
        let mut opts = mongodb::options::ClientOptions::parse(&u)
            .await
            .expect("options");
        opts.server_selection_timeout = Some(Duration::from_secs(5));
        opts.max_pool_size = Some(1);
        // No driver retry: the drain's reply must show here.
        opts.retry_reads = Some(false);
        opts.retry_writes = Some(false);
        mongodb::Client::with_options(opts).expect("client")
    };
    let client_url = kit::mongo::with_addr(&url, m.addr());
    let name = format!("drain_{}", std::process::id());
    let tx_client = client(client_url.clone()).await;
    let coll = tx_client.database("app").collection::<Document>(&name);
    coll.drop().await.expect("drop");
    coll.insert_one(doc! { "_id": 0 }).await.expect("insert");
    let mut s = tx_client.start_session().await.expect("session");
    s.start_transaction().await.expect("start");
    coll.insert_one(doc! { "_id": 1 })
        .session(&mut s)
        .await
        .expect("insert in txn");
    let idle = client(client_url).await;
    let idle_coll = idle.database("app").collection::<Document>(&name);
    assert!(idle_coll.find_one(doc! {}).await.expect("find").is_some());

    send_signal(&m, "-TERM");
    let (status, body) = wait_for_status(admin, "/readyz", 503, Duration::from_secs(5));
    assert_eq!(status, 503, "{body}");
    // The idle client's next request: error 91 ShutdownInProgress. A read is retried by
    // code (91 is on the drivers' retryable-reads list), so it carries no
    // RetryableWriteError, as through a mongos; a retryable write would
    // (errors_to_client::tests::the_kind_of_a_request_follows_its_fields).
    let e = tokio::time::timeout(Duration::from_secs(20), idle_coll.find_one(doc! {}))
        .await
        .expect("the idle client's request hung")
        .expect_err("a request outside a transaction during the drain is refused");
    match *e.kind {
        mongodb::error::ErrorKind::Command(ref c) => {
            assert_eq!(c.code, 91, "{e:?}");
            assert!(!e.contains_label("RetryableWriteError"), "{e:?}");
        }
        _ => panic!("expected ShutdownInProgress, got {e:?}"),
    }

    // The transaction goes on and commits; then maitred exits 0.
    coll.insert_one(doc! { "_id": 2 })
        .session(&mut s)
        .await
        .expect("insert in txn while draining");
    assert!(
        m.try_exit_status().is_none(),
        "exited before the transaction ended"
    );
    s.commit_transaction().await.expect("commit while draining");
    let status = wait_exit(&mut m, Duration::from_secs(10));
    assert!(status.success(), "exit status {status}\n{}", m.log());
    assert!(m.log().contains("drained"), "{}", m.log());

    // Both writes of the transaction reached the server.
    let direct = client(url.clone()).await;
    let dcoll = direct.database("app").collection::<Document>(&name);
    let n = dcoll.count_documents(doc! {}).await.expect("count");
    assert_eq!(n, 3, "the committed transaction's writes");
    dcoll.drop().await.expect("drop");
}
