//! End-to-end tests of maitred's security controls (docs/security.md) through the built
//! binary, real servers and real or raw clients:
//!
//! - a PostgreSQL CancelRequest reaches the server only with the exact key maitred issued;
//! - MySQL `KILL` works only on connections of the same user of the same pool;
//! - a MongoDB client gets only the handshake, authentication and a few harmless commands
//!   before it authenticates, everything else is error 13 Unauthorized;
//! - without `--admin` maitred listens only on its pool addresses, with `--admin ADDR` also
//!   (and only) there;
//! - a TLS private key readable by other users stops maitred at startup with a clear error.
//!
//! Without the servers' environment variables each test prints a skip notice and passes,
//! except under `CI=true`, where it fails.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use maitred_testkit::mongo::require_mongo;
use maitred_testkit::mysql::{require_mysql, MysqlUrl};
use maitred_testkit::{self as kit, Maitred};
use mongodb::bson::{doc, Document};
use mysql_async::prelude::*;
use tokio_postgres::NoTls;

// ---------------------------------------------------------------------------
// PostgreSQL: cancel keys

async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) =
        tokio::time::timeout(Duration::from_secs(30), tokio_postgres::connect(url, NoTls))
            .await
            .expect("connect timed out")
            .unwrap_or_else(|e| panic!("connect {url}: {e:?}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// Sends a raw CancelRequest (protocol code 80877102) for `(pid, key)` to `addr`.
fn send_cancel(addr: SocketAddr, pid: u32, key: u32) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    let mut packet = Vec::with_capacity(16);
    packet.extend_from_slice(&16u32.to_be_bytes());
    packet.extend_from_slice(&80_877_102u32.to_be_bytes());
    packet.extend_from_slice(&pid.to_be_bytes());
    packet.extend_from_slice(&key.to_be_bytes());
    s.write_all(&packet).expect("send cancel");
    // maitred closes the connection without an answer, as PostgreSQL does.
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "a cancel request gets no answer: {rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_cancel_needs_the_exact_key_maitred_issued() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = Maitred::spawn(&["--upstream", &pg, "--pool-size", "2"]);
    let client = pg_connect(&m.url_for(&pg)).await;
    let sleeper = async {
        let started = Instant::now();
        let r = client.simple_query("select pg_sleep(1.5)").await;
        (r, started.elapsed())
    };
    // maitred issues process ids 1, 2, ... in a fresh process, so this covers the sleeping
    // client's own id with a wrong secret, and ids nobody holds.
    let forger = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let addr = m.addr();
        tokio::task::spawn_blocking(move || {
            for pid in 0..=8 {
                send_cancel(addr, pid, 0x5eed_f00d);
            }
        })
        .await
        .expect("forger");
    };
    let ((r, took), ()) = tokio::join!(sleeper, forger);
    r.expect("a cancel with a wrong key must not cancel the query");
    assert!(took >= Duration::from_millis(1400), "{took:?}");

    // The key maitred handed to the client does cancel.
    let token = client.cancel_token();
    let sleeper = async {
        let started = Instant::now();
        let r = client.simple_query("select pg_sleep(20)").await;
        (r, started.elapsed())
    };
    let canceller = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.expect("cancel sent");
    };
    let ((r, took), ()) = tokio::time::timeout(Duration::from_secs(15), async {
        tokio::join!(sleeper, canceller)
    })
    .await
    .expect("the cancelled query still runs");
    let err = r.expect_err("cancelled with the right key");
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

// ---------------------------------------------------------------------------
// MySQL: KILL ownership

async fn mysql_connect(url: &str) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::from_opts(
        mysql_async::Opts::from_url(url).expect("valid mysql URL"),
    )
    .prefer_socket(false);
    tokio::time::timeout(Duration::from_secs(20), mysql_async::Conn::new(opts))
        .await
        .expect("connect timed out")
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// A config file with one pool and the given users (name, password), removed on drop.
struct ConfigFile(std::path::PathBuf);

impl ConfigFile {
    fn new(tag: &str, text: &str) -> ConfigFile {
        let dir = std::env::temp_dir().join(format!("maitred-sec-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("maitred.toml");
        std::fs::write(&path, text).expect("write config");
        ConfigFile(path)
    }

    fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_kill_only_for_the_same_user() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let listen: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let cfg = ConfigFile::new(
        "kill",
        &format!(
            "[[pools]]\nname = \"main\"\nlisten = \"{listen}\"\nupstream = \"{}\"\nsize = 4\n  [[pools.users]]\n  name = \"alice\"\n  password = \"alice-pw\"\n  [[pools.users]]\n  name = \"bob\"\n  password = \"bob-pw\"\n",
            u.url()
        ),
    );
    let _m = Maitred::spawn_at(listen, &["--config", cfg.arg().as_str()]);
    let alice_url = format!("mysql://alice:alice-pw@{listen}/{}", u.database);
    let mut alice = mysql_connect(&alice_url).await;
    let alice_id: u64 = alice
        .query_first("SELECT CONNECTION_ID()")
        .await
        .expect("connection id")
        .expect("a row");
    let mut bob = mysql_connect(&format!("mysql://bob:bob-pw@{listen}/{}", u.database)).await;
    let mut alice_again = mysql_connect(&alice_url).await;

    // Another user may not kill alice's query: MySQL's ER_KILL_DENIED_ERROR.
    let sleeper = async {
        let r: Option<i64> = alice.query_first("SELECT SLEEP(2)").await.expect("sleep");
        r
    };
    let denied = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        bob.query_drop(format!("KILL QUERY {alice_id}")).await
    };
    let (slept, denied) = tokio::join!(sleeper, denied);
    match denied {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1095, "{e:?}"),
        other => panic!("bob's KILL must be refused with 1095, got {other:?}"),
    }
    assert_eq!(slept, Some(0), "alice's SLEEP was not interrupted");
    // KILL CONNECTION by another user is refused too, and alice stays connected.
    let e = bob
        .query_drop(format!("KILL {alice_id}"))
        .await
        .expect_err("bob may not kill alice's connection");
    assert!(
        matches!(&e, mysql_async::Error::Server(s) if s.code == 1095),
        "{e:?}"
    );
    let one: Option<i64> = alice.query_first("SELECT 1").await.expect("alice alive");
    assert_eq!(one, Some(1));

    // The same user, from another connection, may.
    let sleeper = async {
        let r: Result<Option<i64>, _> = alice.query_first("SELECT SLEEP(10)").await;
        r
    };
    let allowed = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        alice_again
            .query_drop(format!("KILL QUERY {alice_id}"))
            .await
    };
    let started = Instant::now();
    let (slept, allowed) = tokio::time::timeout(Duration::from_secs(15), async {
        tokio::join!(sleeper, allowed)
    })
    .await
    .expect("killed query still runs");
    allowed.expect("alice may kill her own query");
    // Interrupted: SLEEP returns 1, or the server reports 1317 ER_QUERY_INTERRUPTED.
    match slept {
        Ok(v) => assert_eq!(v, Some(1), "SLEEP returns 1 when interrupted"),
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1317, "{e:?}"),
        Err(e) => panic!("unexpected error {e:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(8));
}

// ---------------------------------------------------------------------------
// MongoDB: commands before authentication

/// A raw OP_MSG client: no driver, so nothing authenticates behind the test's back.
struct RawMongo(TcpStream);

impl RawMongo {
    fn connect(addr: SocketAddr) -> RawMongo {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        RawMongo(s)
    }

    /// Sends one command (OP_MSG, section kind 0) and returns the reply's body.
    fn command(&mut self, body: &Document) -> Document {
        let doc = mongodb::bson::to_vec(body).expect("encode");
        let len = 16 + 4 + 1 + doc.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&i32::try_from(len).expect("len").to_le_bytes());
        msg.extend_from_slice(&7i32.to_le_bytes()); // requestID
        msg.extend_from_slice(&0i32.to_le_bytes()); // responseTo
        msg.extend_from_slice(&2013i32.to_le_bytes()); // OP_MSG
        msg.extend_from_slice(&0u32.to_le_bytes()); // flags
        msg.push(0);
        msg.extend_from_slice(&doc);
        self.0.write_all(&msg).expect("send");
        let mut header = [0u8; 16];
        self.0.read_exact(&mut header).expect("reply header");
        let total = i32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let mut rest = vec![0u8; usize::try_from(total).expect("len") - 16];
        self.0.read_exact(&mut rest).expect("reply");
        assert_eq!(
            i32::from_le_bytes(header[12..16].try_into().expect("4")),
            2013
        );
        assert_eq!(rest[4], 0, "section kind 0");
        mongodb::bson::from_slice(&rest[5..]).expect("reply document")
    }
}

fn is_ok(reply: &Document) -> bool {
    matches!(reply.get("ok"), Some(mongodb::bson::Bson::Double(v)) if *v == 1.0)
        || matches!(reply.get("ok"), Some(mongodb::bson::Bson::Int32(1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_commands_before_authentication_are_unauthorized() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = Maitred::spawn(&["--upstream", &upstream]);
    let addr = m.addr();
    tokio::task::spawn_blocking(move || {
        let mut c = RawMongo::connect(addr);
        // What MongoDB itself answers before authentication.
        for allowed in [
            doc! { "hello": 1, "$db": "admin" },
            doc! { "isMaster": 1, "$db": "admin" },
            doc! { "ping": 1, "$db": "admin" },
        ] {
            let reply = c.command(&allowed);
            assert!(is_ok(&reply), "{allowed}: {reply}");
        }
        // Everything that reads, writes or describes data needs a login first.
        for refused in [
            doc! { "find": "t", "$db": "app" },
            doc! { "insert": "t", "documents": [{ "x": 1 }], "$db": "app" },
            doc! { "listDatabases": 1, "$db": "admin" },
            doc! { "listCollections": 1, "$db": "app" },
            doc! { "dropDatabase": 1, "$db": "app" },
            doc! { "serverStatus": 1, "$db": "admin" },
            doc! { "buildInfo": 1, "$db": "admin" },
            doc! { "getnonce": 1, "$db": "admin" },
            doc! { "killCursors": "t", "cursors": [1i64], "$db": "app" },
            doc! { "getMore": 1i64, "collection": "t", "$db": "app" },
        ] {
            let reply = c.command(&refused);
            assert!(!is_ok(&reply), "{refused}: {reply}");
            assert_eq!(reply.get_i32("code").ok(), Some(13), "{refused}: {reply}");
            assert_eq!(
                reply.get_str("codeName").ok(),
                Some("Unauthorized"),
                "{reply}"
            );
        }
        // A wrong SCRAM conversation leaves the client unauthenticated.
        let start = c.command(&doc! {
            "saslStart": 1,
            "mechanism": "SCRAM-SHA-256",
            "payload": mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: b"n,,n=app,r=abcdefghijklmnop".to_vec(),
            },
            "$db": "admin",
        });
        assert!(is_ok(&start), "{start}");
        let fin = c.command(&doc! {
            "saslContinue": 1,
            "conversationId": 1,
            "payload": mongodb::bson::Binary {
                subtype: mongodb::bson::spec::BinarySubtype::Generic,
                bytes: b"c=biws,r=nonsense,p=AAAA".to_vec(),
            },
            "$db": "admin",
        });
        assert!(!is_ok(&fin), "{fin}");
        let reply = c.command(&doc! { "find": "t", "$db": "app" });
        assert_eq!(reply.get_i32("code").ok(), Some(13), "{reply}");
    })
    .await
    .expect("raw client");
}

// ---------------------------------------------------------------------------
// The admin endpoint binds only where configured

/// The TCP addresses process `pid` listens on, from /proc (IPv4 and IPv6).
fn listening_addrs(pid: u32) -> BTreeSet<String> {
    let mut inodes = BTreeSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read fds")
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.display().to_string();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(inode.to_owned());
            }
        }
    }
    let mut out = BTreeSet::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st ... inode (field 9); st 0A = LISTEN.
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                out.insert(decode_proc_addr(f[1]));
            }
        }
    }
    out
}

/// `0100007F:1F90` → `127.0.0.1:8080` (IPv4); IPv6 addresses are shown in hex.
fn decode_proc_addr(s: &str) -> String {
    let (ip, port) = s.split_once(':').expect("addr:port");
    let port = u16::from_str_radix(port, 16).expect("port");
    if ip.len() == 8 {
        let n = u32::from_str_radix(ip, 16).expect("ip");
        let b = n.to_le_bytes();
        format!("{}.{}.{}.{}:{port}", b[0], b[1], b[2], b[3])
    } else {
        format!("[{ip}]:{port}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoint_binds_only_where_configured() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = Maitred::spawn(&["--upstream", &pg]);
    // Give the daemon time to open everything it would open.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        listening_addrs(m.pid()),
        BTreeSet::from([m.addr().to_string()]),
        "without --admin only the pool's listener"
    );
    drop(m);

    let admin = format!("127.0.0.1:{}", kit::free_port());
    let m = Maitred::spawn(&["--upstream", &pg, "--admin", &admin]);
    let admin_addr: SocketAddr = admin.parse().expect("addr");
    assert!(
        kit::wait_for_port(admin_addr, Duration::from_secs(10)),
        "admin endpoint up"
    );
    assert_eq!(
        listening_addrs(m.pid()),
        BTreeSet::from([m.addr().to_string(), admin.clone()]),
        "with --admin exactly the pool's listener and the admin address"
    );
}

// ---------------------------------------------------------------------------
// TLS private keys readable by others are refused

#[test]
fn tls_key_readable_by_others_stops_startup_with_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    let Some(pg) = kit::require_pg() else { return };
    let Ok(tls_dir) = std::env::var("MAITRED_TEST_PG_TLS_DIR") else {
        eprintln!("skipped: MAITRED_TEST_PG_TLS_DIR is not set");
        return;
    };
    let dir = std::env::temp_dir().join(format!("maitred-sec-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cert = dir.join("server.pem");
    let key = dir.join("server.key");
    std::fs::copy(format!("{tls_dir}/server.pem"), &cert).expect("copy cert");
    std::fs::copy(format!("{tls_dir}/server.key"), &key).expect("copy key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let listen = format!("127.0.0.1:{}", kit::free_port());
    let up = kit::pg_url_parts(&pg);
    let cfg = ConfigFile::new(
        "tls-key",
        &format!(
            "[[pools]]\nname = \"p\"\nlisten = \"{listen}\"\nupstream = \"{pg}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n  [[pools.users]]\n  name = \"{}\"\n  password = \"{}\"\n",
            cert.display(),
            key.display(),
            up.user.clone().unwrap_or_default(),
            up.password.clone().unwrap_or_default(),
        ),
    );
    let stderr = kit::refused_start(&["--config", &cfg.arg()]);
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    // With 0600 the same configuration starts.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let listen_addr: SocketAddr = listen.parse().expect("addr");
    let _m = Maitred::spawn_at(listen_addr, &["--config", cfg.arg().as_str()]);
    let _ = std::fs::remove_dir_all(&dir);
}
