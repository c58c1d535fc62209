//! MongoDB: the client limits through maitred, with the mongodb driver and raw OP_MSG.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use maitred_testkit::fault_relay::{Fault, FaultRelay};
use maitred_testkit::mongo::require_mongo;
use maitred_testkit::{self as kit, Maitred};
use mongodb::bson::{doc, Document};
use mongodb::options::ClientOptions;
use mongodb::Client;

use super::{raw_socket, read_to_close, spawn_pool, within};

/// maitred in front of `upstream` without client authentication, `extra` limits.
fn start(upstream: &str, extra: &str) -> Maitred {
    spawn_pool(&format!(
        "upstream = \"{upstream}\"\nclient_auth = \"trust\"\n{extra}"
    ))
}

async fn client(m: &Maitred) -> Client {
    let url = format!("mongodb://{}/app?directConnection=true", m.addr());
    let mut opts = ClientOptions::parse(url).await.expect("client options");
    opts.server_selection_timeout = Some(Duration::from_secs(10));
    opts.retry_reads = Some(false);
    opts.retry_writes = Some(false);
    Client::with_options(opts).expect("client")
}

/// An OP_MSG carrying `body` (section kind 0).
fn op_msg(request_id: i32, body: &Document) -> Vec<u8> {
    let doc = mongodb::bson::to_vec(body).expect("bson");
    let len = 16 + 4 + 1 + doc.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as i32).to_le_bytes());
    m.extend_from_slice(&request_id.to_le_bytes());
    m.extend_from_slice(&0i32.to_le_bytes());
    m.extend_from_slice(&2013i32.to_le_bytes());
    m.extend_from_slice(&0u32.to_le_bytes());
    m.push(0);
    m.extend_from_slice(&doc);
    m
}

/// Reads one OP_MSG reply: (responseTo, body).
fn read_reply(s: &mut std::net::TcpStream) -> (i32, Document) {
    let mut head = [0u8; 16];
    s.read_exact(&mut head).expect("reply header");
    let len = i32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let response_to = i32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    let mut rest = vec![0u8; len - 16];
    s.read_exact(&mut rest).expect("reply body");
    // flags (4), section kind (1), document.
    let body = mongodb::bson::from_slice(&rest[5..]).expect("reply document");
    (response_to, body)
}

fn hello() -> Document {
    doc! { "hello": 1, "$db": "admin" }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_silent_client_is_closed_at_client_login_timeout() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start(&upstream, "client_login_timeout = \"500ms\"");
    let addr = m.addr();
    let (bytes, took) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut s = raw_socket(addr, 5);
        (read_to_close(&mut s), started.elapsed())
    })
    .await
    .expect("raw client");
    assert!(bytes.is_empty(), "{bytes:?}");
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // A client that speaks in time is served.
    let c = client(&m).await;
    c.database("admin")
        .run_command(doc! { "ping": 1 })
        .await
        .expect("ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_idle_client_is_closed_at_client_idle_timeout() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start(&upstream, "client_idle_timeout = \"400ms\"");
    let addr = m.addr();
    let (busy_ok, idle_closed_after) = tokio::task::spawn_blocking(move || {
        let mut idle = raw_socket(addr, 5);
        let mut busy = raw_socket(addr, 5);
        idle.write_all(&op_msg(1, &hello())).expect("hello");
        assert_eq!(read_reply(&mut idle).0, 1);
        let idle_since = Instant::now();
        // The busy client asks something every 100 ms for 1 s: never idle long enough.
        for i in 0..10 {
            busy.write_all(&op_msg(10 + i, &hello()))
                .expect("busy hello");
            assert_eq!(read_reply(&mut busy).0, 10 + i);
            std::thread::sleep(Duration::from_millis(100));
        }
        let rest = read_to_close(&mut idle);
        assert!(rest.is_empty(), "{rest:?}");
        busy.write_all(&op_msg(99, &hello())).expect("busy hello");
        (read_reply(&mut busy).0 == 99, idle_since.elapsed())
    })
    .await
    .expect("raw clients");
    assert!(busy_ok);
    assert!(
        idle_closed_after >= Duration::from_millis(900),
        "{idle_closed_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_idle_transaction_is_aborted_and_frees_the_server_connection() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start(
        &upstream,
        "size = 1\nqueue_timeout = \"2s\"\nidle_transaction_timeout = \"300ms\"",
    );
    let a = client(&m).await;
    let coll = a
        .database("app")
        .collection::<Document>(&format!("limits_idle_tx_{}", std::process::id()));
    coll.drop().await.expect("drop");
    let mut s = a.start_session().await.expect("session");
    s.start_transaction().await.expect("start");
    coll.insert_one(doc! { "_id": "in-txn" })
        .session(&mut s)
        .await
        .expect("insert in txn");
    // The transaction pins the pool's only server connection until the timeout.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let b = client(&m).await;
    let b_coll = b
        .database("app")
        .collection::<Document>(&format!("limits_idle_tx_{}", std::process::id()));
    let started = Instant::now();
    let found = within(5, "find after the cut", async {
        b_coll.find_one(doc! { "_id": "in-txn" }).await
    })
    .await
    .expect("another client gets the server connection");
    assert!(found.is_none(), "the idle transaction was not aborted");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Its owner learns it when it comes back.
    assert!(s.commit_transaction().await.is_err());
    b_coll.drop().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_query_timeout_answers_50_and_discards_a_stalled_server_connection() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let server: std::net::SocketAddr = upstream
        .split_once('@')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|hp| hp.parse().ok())
        .expect("the test server URL has an ip:port");
    let relay = FaultRelay::start(server);
    let through_relay = upstream.replacen(&server.to_string(), &relay.addr().to_string(), 1);
    let m = start(&through_relay, "size = 1\nquery_timeout = \"500ms\"");
    let addr = m.addr();
    let (code, message, took) = tokio::task::spawn_blocking(move || {
        let mut s = raw_socket(addr, 10);
        s.write_all(&op_msg(1, &doc! { "ping": 1, "$db": "admin" }))
            .expect("ping");
        let (_, ok) = read_reply(&mut s);
        assert_eq!(ok.get_f64("ok").ok(), Some(1.0), "{ok}");
        // The server stops answering.
        relay.set_fault(Fault::Blackhole);
        let started = Instant::now();
        s.write_all(&op_msg(2, &doc! { "ping": 1, "$db": "admin" }))
            .expect("ping");
        let (to, err) = read_reply(&mut s);
        let took = started.elapsed();
        assert_eq!(to, 2);
        assert!(
            read_to_close(&mut s).is_empty(),
            "the client is closed after the error"
        );
        relay.set_fault(Fault::Pass);
        // A new client gets a new server connection (the stalled one was discarded).
        let mut next = raw_socket(addr, 10);
        next.write_all(&op_msg(3, &doc! { "ping": 1, "$db": "admin" }))
            .expect("ping");
        let (_, ok) = read_reply(&mut next);
        assert_eq!(ok.get_f64("ok").ok(), Some(1.0), "{ok}");
        (
            err.get_i32("code").ok(),
            err.get_str("errmsg").unwrap_or_default().to_owned(),
            took,
        )
    })
    .await
    .expect("raw clients");
    assert_eq!(code, Some(50), "{message}");
    assert!(message.contains("query_timeout (500ms)"), "{message}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_max_clients_answers_the_first_request_with_an_error_then_closes() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start(&upstream, "max_clients = 1");
    let addr = m.addr();
    let (code, message) = tokio::task::spawn_blocking(move || {
        // The testkit's readiness probe may still hold the one place for a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut first = loop {
            let mut s = raw_socket(addr, 5);
            s.write_all(&op_msg(1, &hello())).expect("hello");
            let (_, reply) = read_reply(&mut s);
            if reply.get_f64("ok").ok() == Some(1.0) {
                break s;
            }
            assert!(Instant::now() < deadline, "never admitted: {reply}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut second = raw_socket(addr, 5);
        second.write_all(&op_msg(7, &hello())).expect("hello");
        let (to, refused) = read_reply(&mut second);
        assert_eq!(to, 7);
        assert!(read_to_close(&mut second).is_empty());
        // The client already in is not hurt.
        first.write_all(&op_msg(2, &hello())).expect("hello");
        assert_eq!(read_reply(&mut first).1.get_f64("ok").ok(), Some(1.0));
        (
            refused.get_i32("code").ok(),
            refused.get_str("errmsg").unwrap_or_default().to_owned(),
        )
    })
    .await
    .expect("raw clients");
    assert_eq!(code, Some(462), "{message}");
    assert!(message.contains("max_clients (1)"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_message_over_max_message_size_gets_10334_and_only_that_client_is_closed() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start(&upstream, "max_message_size = 4096");
    let addr = m.addr();
    let (code, message) = tokio::task::spawn_blocking(move || {
        let mut big = raw_socket(addr, 5);
        let mut other = raw_socket(addr, 5);
        big.write_all(&op_msg(
            1,
            &doc! { "ping": 1, "$db": "admin", "pad": "x".repeat(3000) },
        ))
        .expect("fits");
        assert_eq!(read_reply(&mut big).1.get_f64("ok").ok(), Some(1.0));
        big.write_all(&op_msg(
            2,
            &doc! { "ping": 1, "$db": "admin", "pad": "x".repeat(10_000) },
        ))
        .expect("too big");
        let (to, err) = read_reply(&mut big);
        assert_eq!(to, 2);
        let _ = read_to_close(&mut big);
        other.write_all(&op_msg(3, &hello())).expect("hello");
        assert_eq!(read_reply(&mut other).1.get_f64("ok").ok(), Some(1.0));
        (
            err.get_i32("code").ok(),
            err.get_str("errmsg").unwrap_or_default().to_owned(),
        )
    })
    .await
    .expect("raw clients");
    assert_eq!(code, Some(10334), "{message}");
    assert!(
        message.contains("exceeds max_message_size (4096 bytes)"),
        "{message}"
    );
}
