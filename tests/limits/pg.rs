//! PostgreSQL: the client limits through maitred, with tokio-postgres and raw sockets.

use std::io::Write;
use std::time::{Duration, Instant};

use maitred_testkit::{self as kit, Maitred};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::{raw_socket, read_to_close, spawn_pool, within};

/// maitred in front of the test PostgreSQL: trust login (fast, so the short limits
/// below measure maitred, not SCRAM on a busy machine), `extra` limits.
fn start(pg_url: &str, extra: &str) -> (Maitred, String) {
    let m = spawn_pool(&format!(
        "upstream = \"{pg_url}\"\nclient_auth = \"trust\"\n{extra}"
    ));
    let url = m.url_for(pg_url);
    (m, url)
}

/// A client and its connection task, whose result says how the session ended.
async fn connect(
    url: &str,
) -> Result<(Client, JoinHandle<Result<(), tokio_postgres::Error>>), tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(10));
    let (client, connection) = within(15, "connect", config.connect(NoTls)).await?;
    Ok((client, tokio::spawn(connection)))
}

async fn must_connect(url: &str) -> (Client, JoinHandle<Result<(), tokio_postgres::Error>>) {
    connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e:?}"))
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error().map(|d| d.code().code())
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

/// The fields of a raw ErrorResponse body, by field type.
fn error_fields(body: &[u8]) -> Vec<(u8, String)> {
    body.split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| (f[0], String::from_utf8_lossy(&f[1..]).into_owned()))
        .collect()
}

/// The SQLSTATE and message of the first ErrorResponse in `bytes`.
fn first_error(bytes: &[u8]) -> Option<(String, String)> {
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let tag = bytes[at];
        let len = u32::from_be_bytes(bytes[at + 1..at + 5].try_into().ok()?) as usize;
        let body = bytes.get(at + 5..at + 1 + len)?;
        if tag == b'E' {
            let fields = error_fields(body);
            let get = |t: u8| {
                fields
                    .iter()
                    .find(|(k, _)| *k == t)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            return Some((get(b'C'), get(b'M')));
        }
        at += 1 + len;
    }
    None
}

/// A StartupMessage (protocol 3.0) for `user` and `database`.
fn startup(user: &str, database: &str) -> Vec<u8> {
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_silent_and_slow_logins_are_cut_at_client_login_timeout() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let up = kit::pg_url_parts(&pg_url);
    let user = up.user.clone().unwrap_or_default();
    let database = up.database.clone();
    // SCRAM login here, so that a client can stall in the middle of it.
    let m = spawn_pool(&format!(
        "upstream = \"{pg_url}\"\nclient_login_timeout = \"500ms\"\n  [[pools.users]]\n  name = \"{user}\"\n  password = \"{}\"\n",
        up.password.clone().unwrap_or_default()
    ));
    let addr = m.addr();
    let (silent, stalled) = tokio::task::spawn_blocking(move || {
        // Connects and sends nothing.
        let started = Instant::now();
        let mut s = raw_socket(addr, 5);
        let silent = (read_to_close(&mut s), started.elapsed());
        // Sends its startup packet, then never answers the password request.
        let started = Instant::now();
        let mut s = raw_socket(addr, 5);
        s.write_all(&startup(&user, &database)).expect("startup");
        let stalled = (read_to_close(&mut s), started.elapsed());
        (silent, stalled)
    })
    .await
    .expect("raw clients");
    for (what, (bytes, took)) in [("silent", silent), ("stalled", stalled)] {
        let (code, message) = first_error(&bytes)
            .unwrap_or_else(|| panic!("{what} client got no ErrorResponse: {bytes:?}"));
        assert_eq!(code, "08P01", "{what}: {message}");
        assert!(
            message.contains("client_login_timeout (500ms)"),
            "{what}: {message}"
        );
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(3),
            "{what} client closed after {took:?}"
        );
    }
    // maitred still logs clients in.
    let (client, _conn) = must_connect(&m.url_for(&pg_url)).await;
    assert_eq!(scalar(&client, "SELECT 1").await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_idle_in_transaction_is_rolled_back_with_25p03_and_frees_the_server_connection() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (_m, url) = start(
        &pg_url,
        "size = 1\nqueue_timeout = \"5s\"\nidle_transaction_timeout = \"300ms\"",
    );
    let table = format!("limits_idle_tx_{}", std::process::id());
    let (setup, _c) = must_connect(&url).await;
    setup
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (v int)"
        ))
        .await
        .expect("create");
    drop(setup);

    let (idle, idle_conn) = must_connect(&url).await;
    idle.batch_execute(&format!("BEGIN; INSERT INTO {table} VALUES (1)"))
        .await
        .expect("begin + insert");
    // The idle client holds the pool's only server connection until the timeout.
    let ended = within(5, "idle client cut", idle_conn)
        .await
        .expect("connection task");
    let e = ended.expect_err("the session must end with an error");
    assert_eq!(sqlstate(&e), Some("25P03"), "{e:?}");
    let message = e.as_db_error().map(|d| d.message().to_owned());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("idle_transaction_timeout 300ms")),
        "{message:?}"
    );
    // Another client gets through the pool of 1 at once, and the insert was rolled back.
    let started = Instant::now();
    let (other, _c) = must_connect(&url).await;
    let count = within(
        3,
        "query after the cut",
        scalar(&other, &format!("SELECT count(*) FROM {table}")),
    )
    .await;
    assert_eq!(count, "0");
    assert!(started.elapsed() < Duration::from_secs(3));
    other
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_idle_client_gets_57p05_at_client_idle_timeout_but_a_busy_one_stays() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (_m, url) = start(&pg_url, "client_idle_timeout = \"400ms\"");
    let (idle, idle_conn) = must_connect(&url).await;
    let (busy, _busy_conn) = must_connect(&url).await;
    // The busy client sends something every 100 ms for 1.2 s: never idle long enough.
    for _ in 0..12 {
        assert_eq!(scalar(&busy, "SELECT 1").await, "1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = within(5, "idle client cut", idle_conn)
        .await
        .expect("connection task")
        .expect_err("the idle session must end with an error");
    assert_eq!(sqlstate(&e), Some("57P05"), "{e:?}");
    assert!(
        format!("{e:?}").contains("client_idle_timeout 400ms"),
        "{e:?}"
    );
    assert!(idle.is_closed());
    assert_eq!(scalar(&busy, "SELECT 2").await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_query_timeout_cancels_the_query_with_57014_and_discards_the_connection() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (_m, url) = start(&pg_url, "size = 1\nquery_timeout = \"500ms\"");
    let marker = format!("limits_qt_{}", std::process::id());
    let (slow, _slow_conn) = must_connect(&url).await;
    let started = Instant::now();
    let e = within(
        5,
        "slow query",
        slow.simple_query(&format!("SELECT pg_sleep(30) /* {marker} */")),
    )
    .await
    .expect_err("the query must time out");
    let took = started.elapsed();
    assert_eq!(sqlstate(&e), Some("57014"), "{e:?}");
    assert!(format!("{e:?}").contains("query_timeout (500ms)"), "{e:?}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // The pool's only connection is free for the next client at once.
    let (next, _c) = must_connect(&url).await;
    assert_eq!(
        within(3, "next client", scalar(&next, "SELECT 7")).await,
        "7"
    );
    // The server stopped running the query (the cancel reached it).
    let (direct, _d) = must_connect(&pg_url).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let running = scalar(
            &direct,
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%{marker}%' AND pid <> pg_backend_pid()"
            ),
        )
        .await;
        if running == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the timed-out query still runs on the server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_max_clients_refuses_with_53300_and_admits_again_when_one_leaves() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (_m, url) = start(&pg_url, "max_clients = 2");
    let (a, a_conn) = must_connect(&url).await;
    let (b, _b_conn) = must_connect(&url).await;
    let Err(e) = connect(&url).await else {
        panic!("a third client must be refused");
    };
    assert_eq!(sqlstate(&e), Some("53300"), "{e:?}");
    assert!(format!("{e:?}").contains("max_clients (2)"), "{e:?}");
    // Those in are not hurt; once one leaves, a new client gets in.
    assert_eq!(scalar(&b, "SELECT 1").await, "1");
    drop(a);
    let _ = within(5, "client a closed", a_conn).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let (c, _c_conn) = loop {
        match connect(&url).await {
            Ok(ok) => break ok,
            Err(e) if Instant::now() < deadline && sqlstate(&e) == Some("53300") => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the freed place was not given back: {e:?}"),
        }
    };
    assert_eq!(scalar(&c, "SELECT 3").await, "3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_message_over_max_message_size_gets_08p01_and_only_that_client_is_closed() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (_m, url) = start(&pg_url, "max_message_size = 4096");
    let (big, big_conn) = must_connect(&url).await;
    let (other, _other_conn) = must_connect(&url).await;
    // Just under the limit passes.
    let fits = format!("SELECT length('{}')", "x".repeat(3000));
    assert_eq!(scalar(&big, &fits).await, "3000");
    let too_big = format!("SELECT length('{}')", "x".repeat(10_000));
    let e = big
        .simple_query(&too_big)
        .await
        .expect_err("a 10 kB query must be refused");
    assert_eq!(sqlstate(&e), Some("08P01"), "{e:?}");
    assert!(
        format!("{e:?}").contains("exceeds max_message_size (4096 bytes)"),
        "{e:?}"
    );
    let _ = within(5, "big client closed", big_conn).await;
    assert!(big.is_closed());
    assert_eq!(scalar(&other, "SELECT 5").await, "5");
}

/// Reads one whole backend message from a raw socket.
fn read_message(s: &mut std::net::TcpStream) -> (u8, Vec<u8>) {
    use std::io::Read;
    let mut head = [0u8; 5];
    s.read_exact(&mut head).expect("message header");
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).expect("message body");
    (head[0], body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_slow_reader_of_a_huge_result_does_not_starve_short_transactions() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let (m, url) = start(&pg_url, "size = 2\nqueue_timeout = \"5s\"");
    let up = kit::pg_url_parts(&pg_url);
    let (user, database) = (up.user.clone().unwrap_or_default(), up.database.clone());
    let addr = m.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let streamer_stop = stop.clone();
    // One client asks for ~200 MB and reads it at ~400 kB/s: it holds one of the two
    // server connections for the whole test, with the server blocked on its socket.
    let streamer = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut s = raw_socket(addr, 10);
        s.write_all(&startup(&user, &database)).expect("startup");
        while read_message(&mut s).0 != b'Z' {}
        let sql = b"SELECT repeat('x', 1000) FROM generate_series(1, 200000)\0";
        let mut q = vec![b'Q'];
        q.extend_from_slice(&((sql.len() + 4) as u32).to_be_bytes());
        q.extend_from_slice(sql);
        s.write_all(&q).expect("query");
        let mut received = 0usize;
        let mut chunk = [0u8; 4096];
        while !streamer_stop.load(std::sync::atomic::Ordering::Relaxed) {
            received += s.read(&mut chunk).expect("stream");
            std::thread::sleep(Duration::from_millis(10));
        }
        received
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meanwhile four clients run short transactions for 2 s.
    let mut workers = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        workers.push(tokio::spawn(async move {
            let (c, _conn) = must_connect(&url).await;
            let mut done = 0u32;
            let mut worst = Duration::ZERO;
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                let t = Instant::now();
                c.batch_execute("BEGIN; SELECT 1; COMMIT")
                    .await
                    .expect("short transaction");
                worst = worst.max(t.elapsed());
                done += 1;
            }
            (done, worst)
        }));
    }
    for w in workers {
        let (done, worst) = within(20, "worker", w).await.expect("worker");
        assert!(done >= 20, "only {done} transactions in 2 s");
        assert!(
            worst < Duration::from_secs(1),
            "a transaction took {worst:?}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let received = within(15, "streamer", streamer).await.expect("streamer");
    // The streamer was really streaming (slowly) all along, not finished early.
    assert!(received > 100_000, "the streamer received {received} bytes");
    assert!(
        received < 100_000_000,
        "the streamer read too fast: {received}"
    );
}
