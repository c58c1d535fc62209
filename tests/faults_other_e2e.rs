//! Server faults for MySQL/MariaDB and MongoDB (SecantusDB): the same
//! [`FaultRelay`](maitred_testkit::fault_relay::FaultRelay) between maitred and the server.
//!
//! - connections the server closed (FIN) or reset (RST) while idle in the pool are never
//!   handed out: the next queries work and maitred logs no lost server connection;
//! - an unreachable server gives a client an error soon, not a hang, and the pool recovers.
//!
//! PostgreSQL has the full set in faults_e2e.rs. Every test takes `maitred_testkit::serial()`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use maitred_testkit::fault_relay::{Fault, FaultRelay};
use maitred_testkit::mongo::{require_mongo, with_addr};
use maitred_testkit::mysql::require_mysql;
use maitred_testkit::{self as kit, Maitred};
use mongodb::bson::{doc, Document};
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder};

/// The `host:port` of a `scheme://[user@]host:port/...` URL.
fn server_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostpath = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = hostpath.find(['/', '?']).unwrap_or(hostpath.len());
    hostpath[..end]
        .parse()
        .unwrap_or_else(|e| panic!("{url}: host:port: {e}"))
}

/// A relay in front of `url`'s server and a one-line maitred whose upstream goes through it.
fn start_behind_relay(url: &str, pool_size: &str) -> (FaultRelay, Maitred, String) {
    let relay = FaultRelay::start(server_addr(url));
    let upstream = with_addr(url, relay.addr());
    let m = Maitred::spawn(&[
        "--upstream",
        upstream.as_str(),
        "--pool-size",
        pool_size,
        "--queue-timeout",
        "10s",
    ]);
    let client_url = with_addr(url, m.addr());
    (relay, m, client_url)
}

async fn mysql_connect(url: &str) -> Conn {
    // prefer_socket(false): otherwise mysql_async reconnects over the server's unix socket.
    let opts =
        OptsBuilder::from_opts(Opts::from_url(url).expect("valid mysql URL")).prefer_socket(false);
    tokio::time::timeout(Duration::from_secs(20), Conn::new(opts))
        .await
        .expect("connect within 20 s")
        .unwrap_or_else(|e| panic!("connect to maitred: {e}"))
}

async fn mysql_select(conn: &mut Conn, n: i64) -> Result<Option<i64>, mysql_async::Error> {
    tokio::time::timeout(
        Duration::from_secs(20),
        conn.query_first::<i64, _>(format!("SELECT {n}")),
    )
    .await
    .expect("a query hung for 20 s")
}

fn lost_connections_logged(m: &Maitred) -> usize {
    m.log().matches("server connection lost").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_connections_closed_while_idle_are_never_handed_out() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let (relay, m, client_url) = start_behind_relay(&url, "3");
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(mysql_connect(&client_url).await);
    }
    for how in ["drop (FIN)", "reset (RST)"] {
        // Three open transactions hold three server connections; then all go idle.
        for c in &mut conns {
            c.query_drop("START TRANSACTION").await.expect("begin");
            assert_eq!(mysql_select(c, 1).await.expect("select"), Some(1));
        }
        for c in &mut conns {
            c.query_drop("COMMIT").await.expect("commit");
        }
        assert_eq!(relay.open(), 3, "three idle server connections");
        let accepted = relay.accepted();
        if how.starts_with("drop") {
            relay.drop_all();
        } else {
            relay.reset_all();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for c in &mut conns {
            for n in 0..3 {
                let v = mysql_select(c, n).await.unwrap_or_else(|e| {
                    panic!("after {how}: a dead connection was handed out: {e}")
                });
                assert_eq!(v, Some(n));
            }
        }
        assert!(
            relay.accepted() > accepted,
            "after {how}: fresh connections"
        );
    }
    assert_eq!(
        lost_connections_logged(&m),
        0,
        "a dead idle connection was leased"
    );

    // Unreachable: an error soon, the client connection kept, then recovery.
    relay.drop_all();
    tokio::time::sleep(Duration::from_millis(100)).await;
    relay.set_fault(Fault::Refuse);
    let t = Instant::now();
    let e = mysql_select(&mut conns[0], 5)
        .await
        .expect_err("no server: the query must fail");
    assert!(
        t.elapsed() < Duration::from_secs(7),
        "the error took {:?}",
        t.elapsed()
    );
    assert!(
        e.to_string().to_lowercase().contains("connect"),
        "the error names the connect failure: {e}"
    );
    relay.set_fault(Fault::Pass);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match mysql_select(&mut conns[1], 6).await {
            Ok(v) => {
                assert_eq!(v, Some(6));
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "no recovery: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    for c in conns {
        let _ = c.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_connections_closed_while_idle_are_never_handed_out() {
    let Some(url) = require_mongo() else { return };
    let _serial = kit::serial().await;
    let (relay, m, client_url) = start_behind_relay(&url, "3");
    let mut opts = mongodb::options::ClientOptions::parse(&client_url)
        .await
        .expect("client options");
    opts.server_selection_timeout = Some(Duration::from_secs(10));
    // No driver retry: a dead connection handed out must show as an error here.
    opts.retry_reads = Some(false);
    opts.retry_writes = Some(false);
    let client = mongodb::Client::with_options(opts).expect("client");
    let coll = client
        .database("app")
        .collection::<Document>(&format!("faults_{}", std::process::id()));
    coll.insert_one(doc! { "_id": 1, "v": "x" })
        .await
        .expect("insert");
    for how in ["drop (FIN)", "reset (RST)"] {
        // Concurrent reads open several server connections, then all go idle.
        let reads: Vec<_> = (0..6)
            .map(|_| {
                let coll = coll.clone();
                tokio::spawn(async move { coll.find_one(doc! { "_id": 1 }).await })
            })
            .collect();
        for r in reads {
            assert!(r.await.expect("task").expect("find_one").is_some());
        }
        assert!(relay.open() > 0, "server connections idle in the pool");
        let accepted = relay.accepted();
        if how.starts_with("drop") {
            relay.drop_all();
        } else {
            relay.reset_all();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for _ in 0..6 {
            let d = tokio::time::timeout(Duration::from_secs(20), coll.find_one(doc! { "_id": 1 }))
                .await
                .expect("find_one hung")
                .unwrap_or_else(|e| panic!("after {how}: a dead connection was handed out: {e}"));
            assert_eq!(
                d.and_then(|d| d.get_str("v").ok().map(str::to_owned)),
                Some("x".into())
            );
        }
        assert!(
            relay.accepted() > accepted,
            "after {how}: fresh connections"
        );
    }
    assert_eq!(
        lost_connections_logged(&m),
        0,
        "a dead idle connection was leased"
    );
    coll.drop().await.expect("drop collection");
}
