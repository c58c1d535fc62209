//! MongoDB before authentication, end to end: what an unauthenticated client can make
//! maitred do. Raw sockets with hand-built OP_MSG / OP_COMPRESSED bytes, so no driver
//! authenticates behind the test's back (docs/security.md, "MongoDB before
//! authentication"):
//!
//! - the login deadline runs until the client is authenticated: hello, isMaster and a
//!   speculative authentication inside hello do not end it; a connection of plain hellos
//!   only (drivers' monitoring) is closed when silent for the timeout instead, and may
//!   not start a login once past it;
//! - a small message cap (16 KiB) applies until then, to OP_COMPRESSED's decompressed
//!   size too;
//! - no server connection is leased (or opened) for an unauthenticated client;
//! - OP_COMPRESSED with a compressor not negotiated in hello is refused before anything is
//!   decompressed.
//!
//! Tests that need a server use the SecantusDB named by `MAITRED_TEST_MONGO_URL`
//! (`scripts/test.sh`); the others stand a silent TCP listener in for the server, to see
//! whether maitred ever connects to it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use maitred_mongo::codec::compressed::{self, Compressor};
use maitred_mongo::codec::op_msg;
use maitred_testkit::mongo::{require_mongo, with_addr};
use maitred_testkit::{self as kit, Maitred};
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::ClientOptions;
use mongodb::Client;

const USER: &str = "app";
const PASSWORD: &str = "app_secret";

/// maitred with one MongoDB pool in front of `upstream`, clients logging in as
/// `app`/`app_secret`, plus `extra` pool keys.
fn start(upstream: &str, extra: &str) -> Maitred {
    start_pool(&format!(
        "upstream = \"{upstream}\"\n{extra}\n  [[pools.users]]\n  name = \"{USER}\"\n  password = \"{PASSWORD}\"\n"
    ))
}

fn start_pool(body: &str) -> Maitred {
    let listen: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let dir = std::env::temp_dir().join(format!(
        "maitred-mongo-preauth-{}-{}",
        std::process::id(),
        listen.port()
    ));
    std::fs::create_dir_all(&dir).expect("config dir");
    let path = dir.join("maitred.toml");
    let toml = format!("[[pools]]\nname = \"preauth\"\nlisten = \"{listen}\"\n{body}\n");
    std::fs::write(&path, toml).expect("write config");
    let arg = path.display().to_string();
    Maitred::spawn_at(listen, &["--config", arg.as_str()])
}

/// A stand-in for the server that never answers: records whether maitred connects.
fn silent_server() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.set_nonblocking(true).expect("nonblocking");
    let port = l.local_addr().expect("addr").port();
    let url = format!("mongodb://{USER}:{PASSWORD}@127.0.0.1:{port}/app?authSource=admin");
    (l, url)
}

/// Whether anything connected to `l` so far.
fn was_connected(l: &TcpListener) -> bool {
    match l.accept() {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("accept: {e}"),
    }
}

fn raw(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// An OP_MSG carrying `body`.
fn msg(request_id: i32, body: &Document) -> Vec<u8> {
    let doc = mongodb::bson::to_vec(body).expect("bson");
    let mut out = bytes::BytesMut::new();
    op_msg::encode(&mut out, request_id, 0, 0, &doc);
    out.to_vec()
}

/// `body` as an OP_MSG inside an OP_COMPRESSED with `c`.
fn compressed_msg(request_id: i32, body: &Document, c: Compressor) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    compressed::compress(&msg(request_id, body), c, &mut out).expect("compress");
    out.to_vec()
}

/// One reply (OP_MSG, or OP_COMPRESSED around one): (responseTo, body). `None`: the
/// connection was closed first.
fn read_reply(s: &mut TcpStream) -> Option<(i32, Document)> {
    let mut head = [0u8; 16];
    match s.read_exact(&mut head) {
        Ok(()) => {}
        Err(e)
            if e.kind() == std::io::ErrorKind::UnexpectedEof
                || e.kind() == std::io::ErrorKind::ConnectionReset =>
        {
            return None
        }
        Err(e) => panic!("no reply and not closed: {e}"),
    }
    let len = usize::try_from(i32::from_le_bytes(head[..4].try_into().expect("4"))).expect("len");
    let mut whole = head.to_vec();
    whole.resize(len, 0);
    s.read_exact(&mut whole[16..]).expect("reply body");
    let op = i32::from_le_bytes(head[12..16].try_into().expect("4"));
    if op == 2012 {
        whole = compressed::decompress(&whole, 48_000_000)
            .expect("decompress reply")
            .to_vec();
    }
    assert_eq!(
        i32::from_le_bytes(whole[12..16].try_into().expect("4")),
        2013
    );
    let response_to = i32::from_le_bytes(whole[8..12].try_into().expect("4"));
    // flags (4), section kind 0 (1), the document.
    assert_eq!(whole[20], 0, "section kind 0");
    let body = mongodb::bson::from_slice(&whole[21..]).expect("reply document");
    Some((response_to, body))
}

fn command(s: &mut TcpStream, request_id: i32, body: &Document) -> Document {
    s.write_all(&msg(request_id, body)).expect("send");
    let (to, reply) = read_reply(s).unwrap_or_else(|| panic!("closed instead of answering {body}"));
    assert_eq!(to, request_id);
    reply
}

/// Reads until the peer closes; panics if it does not within the read timeout.
fn assert_closed(s: &mut TcpStream) {
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("the connection was not closed: {e}"),
        }
    }
}

fn is_ok(d: &Document) -> bool {
    matches!(d.get("ok"), Some(Bson::Double(v)) if *v == 1.0)
        || matches!(d.get("ok"), Some(Bson::Int32(1)))
}

fn code(d: &Document) -> Option<i32> {
    d.get_i32("code").ok()
}

fn hello() -> Document {
    doc! { "hello": 1, "$db": "admin" }
}

/// A hello as drivers send it on a connection that will log in: client metadata,
/// saslSupportedMechs and the first SCRAM step (speculativeAuthenticate).
fn speculative_hello() -> Document {
    doc! {
        "hello": 1,
        "helloOk": true,
        "client": { "driver": { "name": "raw", "version": "0" }, "os": { "type": "Linux" } },
        "saslSupportedMechs": format!("admin.{USER}"),
        "speculativeAuthenticate": {
            "saslStart": 1,
            "mechanism": "SCRAM-SHA-256",
            "payload": mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: format!("n,,n={USER},r=rOprNGfwEbeRWgbNEkqO").into_bytes(),
            },
            "db": "admin",
        },
        "$db": "admin",
    }
}

async fn driver(m: &Maitred, upstream: &str) -> Client {
    let mut opts = ClientOptions::parse(with_addr(upstream, m.addr()))
        .await
        .expect("client options");
    opts.server_selection_timeout = Some(Duration::from_secs(10));
    Client::with_options(opts).expect("client")
}

/// The login deadline is not ended by hello, isMaster or a speculative authentication:
/// an unauthenticated client is closed at `client_login_timeout` after it connected,
/// whether it stays silent after its hellos or keeps sending them. An authenticated
/// client stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_deadline_runs_until_authentication() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start(&upstream, "client_login_timeout = \"1s\"");
    let addr = m.addr();
    tokio::task::spawn_blocking(move || {
        // Handshake messages, then silence.
        let started = Instant::now();
        let mut s = raw(addr);
        assert!(is_ok(&command(&mut s, 1, &hello())));
        assert!(is_ok(&command(
            &mut s,
            2,
            &doc! { "isMaster": 1, "$db": "admin" }
        )));
        let spec = command(&mut s, 3, &speculative_hello());
        assert!(
            spec.get_document("speculativeAuthenticate").is_ok(),
            "{spec}"
        );
        // A logout without a login does not start a new login time either (sent 600 ms
        // in: a new login time would end at 1.6 s).
        if let Some(rest) = Duration::from_millis(600).checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
        assert!(is_ok(&command(
            &mut s,
            4,
            &doc! { "logout": 1, "$db": "admin" }
        )));
        assert_closed(&mut s);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(1450),
            "{took:?}"
        );

        // A login hello every 100 ms: still closed at the deadline.
        let started = Instant::now();
        let mut s = raw(addr);
        let mut answered = 0;
        let closed = loop {
            assert!(
                started.elapsed() < Duration::from_secs(4),
                "an unauthenticated client sending hellos is never closed ({answered} answered)"
            );
            if s.write_all(&msg(10 + answered, &speculative_hello()))
                .is_err()
            {
                break started.elapsed();
            }
            match read_reply(&mut s) {
                Some(_) => answered += 1,
                None => break started.elapsed(),
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(closed >= Duration::from_millis(900), "{closed:?}");
        assert!(answered >= 3, "{answered}");
    })
    .await
    .expect("raw clients");

    // A logged-in client outlives the login timeout.
    let c = driver(&m, &upstream).await;
    let db = c.database("app");
    db.run_command(doc! { "ping": 1 }).await.expect("ping");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    db.collection::<Document>("preauth_deadline")
        .find_one(doc! {})
        .await
        .expect("find after the login timeout");
}

/// Drivers' monitoring connections never authenticate and send only plain hellos: such a
/// connection stays past the login timeout while it keeps sending them (a driver keeps its
/// pool: no failed heartbeat, no pool clear), is closed when silent for the timeout, and
/// once past its login time may not start a login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_connections_stay_while_they_send_plain_hellos() {
    use mongodb::event::cmap::CmapEvent;
    use mongodb::event::sdam::SdamEvent;
    use mongodb::event::EventHandler;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start(&upstream, "client_login_timeout = \"700ms\"");
    let addr = m.addr();
    tokio::task::spawn_blocking(move || {
        // Plain hellos every 200 ms for 2 s: all answered.
        let mut s = raw(addr);
        for i in 0..10 {
            let h = command(&mut s, i, &hello());
            assert!(is_ok(&h), "{h}");
            std::thread::sleep(Duration::from_millis(200));
        }
        // Past its login time, a login attempt closes it (no answer).
        s.write_all(&msg(99, &speculative_hello())).expect("send");
        assert!(
            read_reply(&mut s).is_none(),
            "answered a login after the deadline"
        );

        // A plain hello, then silence: closed the timeout after the hello.
        let mut s = raw(addr);
        std::thread::sleep(Duration::from_millis(400));
        assert!(is_ok(&command(&mut s, 1, &hello())));
        let since_hello = Instant::now();
        assert_closed(&mut s);
        let took = since_hello.elapsed();
        assert!(
            took >= Duration::from_millis(600) && took < Duration::from_secs(4),
            "{took:?}"
        );
    })
    .await
    .expect("raw clients");

    // A driver with a login: its monitoring and RTT connections (hellos every 500 ms)
    // outlive the login timeout several times over.
    let cleared = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut opts = ClientOptions::parse(with_addr(&upstream, m.addr()))
        .await
        .expect("client options");
    opts.heartbeat_freq = Some(Duration::from_millis(500));
    opts.server_selection_timeout = Some(Duration::from_secs(10));
    let c1 = cleared.clone();
    opts.cmap_event_handler = Some(EventHandler::callback(move |e: CmapEvent| {
        if let CmapEvent::PoolCleared(_) = e {
            c1.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let f1 = failed.clone();
    opts.sdam_event_handler = Some(EventHandler::callback(move |e: SdamEvent| {
        if let SdamEvent::ServerHeartbeatFailed(_) = e {
            f1.fetch_add(1, Ordering::SeqCst);
        }
    }));
    let c = Client::with_options(opts).expect("client");
    let coll = c
        .database("app")
        .collection::<Document>("preauth_monitoring");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        coll.find_one(doc! {}).await.expect("find");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "failed heartbeats");
    assert_eq!(cleared.load(Ordering::SeqCst), 0, "pool clears");
}

/// Before authentication a message may be at most 16 KiB; after, the pool's
/// max_message_size applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_messages_are_capped_small() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start(&upstream, "");
    let addr = m.addr();
    tokio::task::spawn_blocking(move || {
        // A realistic login handshake fits.
        let mut s = raw(addr);
        assert!(is_ok(&command(&mut s, 1, &speculative_hello())));
        // 64 KiB before authentication: refused, closed.
        let big = doc! { "hello": 1, "pad": "x".repeat(64 * 1024), "$db": "admin" };
        let reply = command(&mut s, 2, &big);
        assert_eq!(code(&reply), Some(10334), "{reply}");
        let errmsg = reply.get_str("errmsg").unwrap_or_default();
        assert!(errmsg.contains("before authentication"), "{errmsg}");
        assert_closed(&mut s);
    })
    .await
    .expect("raw client");
    // Logged in, a large document goes through.
    let c = driver(&m, &upstream).await;
    let coll = c
        .database("app")
        .collection::<Document>(&format!("preauth_cap_{}", std::process::id()));
    coll.drop().await.expect("drop");
    coll.insert_one(doc! { "_id": 1, "pad": "y".repeat(200 * 1024) })
        .await
        .expect("a 200 KiB insert after login");
    assert_eq!(coll.count_documents(doc! {}).await.expect("count"), 1);
    coll.drop().await.expect("drop");
}

/// Before authentication maitred answers ping and endSessions itself and refuses the rest
/// with 13 Unauthorized: the server is never contacted. (The server's hello facts are
/// only needed for hello, which this client does not send.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_connection_before_authentication() {
    let _serial = kit::serial().await;
    let (server, upstream) = silent_server();
    let m = start(&upstream, "server_connect_timeout = \"500ms\"");
    let addr = m.addr();
    tokio::task::spawn_blocking(move || {
        let mut s = raw(addr);
        let ping = command(&mut s, 1, &doc! { "ping": 1, "$db": "admin" });
        assert!(is_ok(&ping), "ping before authentication: {ping}");
        let end = command(
            &mut s,
            2,
            &doc! { "endSessions": [{ "id": "x" }], "$db": "admin" },
        );
        assert!(is_ok(&end), "{end}");
        for (i, (name, body)) in [
            ("find", doc! { "find": "t", "$db": "app" }),
            ("buildInfo", doc! { "buildInfo": 1, "$db": "admin" }),
            ("serverStatus", doc! { "serverStatus": 1, "$db": "admin" }),
        ]
        .into_iter()
        .enumerate()
        {
            let reply = command(&mut s, 10 + i as i32, &body);
            assert_eq!(code(&reply), Some(13), "{reply}");
            assert_eq!(reply.get_str("codeName").ok(), Some("Unauthorized"));
            assert_eq!(
                reply.get_str("errmsg").ok(),
                Some(format!("command {name} requires authentication").as_str())
            );
        }
        assert!(
            !was_connected(&server),
            "maitred connected to the server for an unauthenticated client"
        );
    })
    .await
    .expect("raw client");
}

/// Without client authentication (client_auth = "trust") clients are logged in from the
/// start: their commands are forwarded, so a ping reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_pool_forwards_from_the_start() {
    let _serial = kit::serial().await;
    let (server, upstream) = silent_server();
    let m = start_pool(&format!(
        "upstream = \"{upstream}\"\nclient_auth = \"trust\"\nserver_connect_timeout = \"500ms\""
    ));
    let addr = m.addr();
    tokio::task::spawn_blocking(move || {
        let mut s = raw(addr);
        let ping = command(&mut s, 1, &doc! { "ping": 1, "$db": "admin" });
        // The silent server never finishes the handshake: 6 HostUnreachable.
        assert_eq!(code(&ping), Some(6), "{ping}");
        assert!(was_connected(&server));
    })
    .await
    .expect("raw client");
}

/// OP_COMPRESSED with a compressor this connection did not negotiate in hello is refused
/// (17 ProtocolError, then closed) before its payload is looked at: the payload here is not
/// valid zlib, and the refusal names the negotiation, not the corrupt data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_with_a_compressor_not_negotiated_is_refused() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start(&upstream, "");
    let addr = m.addr();
    tokio::task::spawn_blocking(move || {
        // No compression negotiated; zlib id, garbage payload.
        let mut s = raw(addr);
        assert!(is_ok(&command(&mut s, 1, &hello())));
        let mut z = Vec::new();
        z.extend_from_slice(&(16 + 9 + 8i32).to_le_bytes());
        z.extend_from_slice(&2i32.to_le_bytes());
        z.extend_from_slice(&0i32.to_le_bytes());
        z.extend_from_slice(&2012i32.to_le_bytes());
        z.extend_from_slice(&2013i32.to_le_bytes()); // original opcode
        z.extend_from_slice(&1000i32.to_le_bytes()); // uncompressed size
        z.push(Compressor::Zlib.id());
        z.extend_from_slice(b"not zlib");
        s.write_all(&z).expect("send");
        let (to, reply) = read_reply(&mut s).expect("a refusal before the close");
        assert_eq!(to, 2);
        assert_eq!(code(&reply), Some(17), "{reply}");
        let errmsg = reply.get_str("errmsg").unwrap_or_default();
        assert!(errmsg.contains("not negotiated"), "{errmsg}");
        assert_closed(&mut s);

        // snappy negotiated, zlib sent: refused too.
        let mut s = raw(addr);
        let h = command(
            &mut s,
            1,
            &doc! { "hello": 1, "compression": ["snappy"], "$db": "admin" },
        );
        assert_eq!(
            h.get_array("compression").ok().map(Vec::as_slice),
            Some(&[Bson::String("snappy".into())][..]),
            "{h}"
        );
        let ping = doc! { "ping": 1, "$db": "admin" };
        s.write_all(&compressed_msg(2, &ping, Compressor::Zlib))
            .expect("send");
        let (_, reply) = read_reply(&mut s).expect("a refusal before the close");
        assert_eq!(code(&reply), Some(17), "{reply}");
        assert_closed(&mut s);

        // The negotiated one is served, compressed both ways.
        let mut s = raw(addr);
        command(
            &mut s,
            1,
            &doc! { "hello": 1, "compression": ["zlib"], "$db": "admin" },
        );
        s.write_all(&compressed_msg(2, &ping, Compressor::Zlib))
            .expect("send");
        let (to, reply) = read_reply(&mut s).expect("ping answered");
        assert_eq!(to, 2);
        assert!(is_ok(&reply), "{reply}");
    })
    .await
    .expect("raw clients");
}

/// Before authentication a compressed message may not decompress to more than the
/// pre-auth cap either: a few hundred bytes declaring and holding 1 MB are refused
/// (10334) without being decompressed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decompressed_size_is_capped_before_authentication() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start(&upstream, "");
    let addr = m.addr();
    tokio::task::spawn_blocking(move || {
        let mut s = raw(addr);
        command(
            &mut s,
            1,
            &doc! { "hello": 1, "compression": ["zlib"], "$db": "admin" },
        );
        let big = doc! { "hello": 1, "pad": "x".repeat(1 << 20), "$db": "admin" };
        let z = compressed_msg(2, &big, Compressor::Zlib);
        assert!(z.len() < 16 * 1024, "{}", z.len());
        s.write_all(&z).expect("send");
        let (to, reply) = read_reply(&mut s).expect("a refusal before the close");
        assert_eq!(to, 2);
        assert_eq!(code(&reply), Some(10334), "{reply}");
        assert_closed(&mut s);
    })
    .await
    .expect("raw client");
}
