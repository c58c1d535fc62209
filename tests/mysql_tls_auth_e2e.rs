//! End-to-end: TLS and authentication of maitred's MySQL front and back ends against the
//! real MariaDB of `MAITRED_TEST_MYSQL_URL` (started with the test CA's certificate, see
//! scripts/lib/mariadb.sh) and the built maitred.
//!
//! - Clients: TLS (CLIENT_SSL) with the pool's `tls_cert`/`tls_key` (mysql_async and the
//!   `mariadb` CLI), `tls_required` refusing a plain client with ERR 3159.
//! - caching_sha2_password full authentication on a plain connection with the RSA key
//!   exchange (client side: mysql_common, the code mysql_async uses), then the fast path
//!   once the user is cached; a password in clear on a plain connection is refused.
//! - Servers: `ssl-mode` / `ssl-ca` in the upstream URL (VERIFY_IDENTITY with the right CA
//!   works and the server sees TLS; a wrong CA fails; DISABLED is plain).
//! - Server login with MariaDB's client_ed25519 (user `app_ed25519`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use maitred_testkit::mysql::{require_mysql, MysqlUrl};
use maitred_testkit::{self as kit, Maitred};
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts, OptsBuilder, SslOpts};
use mysql_common::io::ParseBuf;
use mysql_common::packets::HandshakePacket;
use mysql_common::proto::MyDeserialize;

fn tls_dir() -> Option<PathBuf> {
    match std::env::var_os("MAITRED_TEST_PG_TLS_DIR") {
        Some(d) => Some(PathBuf::from(d)),
        None if kit::is_ci() => panic!("MAITRED_TEST_PG_TLS_DIR is not set under CI"),
        None => {
            eprintln!("skipping: no MAITRED_TEST_PG_TLS_DIR (run scripts/test.sh)");
            None
        }
    }
}

/// maitred with one MySQL pool from a config file; `extra` goes into the [[pools]] table.
fn maitred_with_config(upstream: &str, u: &MysqlUrl, extra: &str) -> Maitred {
    let addr: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let dir = std::env::temp_dir().join(format!(
        "maitred-my-tls-{}-{}",
        std::process::id(),
        addr.port()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("maitred.toml");
    std::fs::write(
        &config,
        format!(
            "[[pools]]\nname = \"tlsapp\"\nlisten = \"{addr}\"\nupstream = \"{upstream}\"\n\
             size = 2\n{extra}\n  [[pools.users]]\n  name = \"{user}\"\n  password = \"{pw}\"\n",
            user = u.user,
            pw = u.password
        ),
    )
    .expect("write config");
    Maitred::spawn_at(addr, &["--config", config.display().to_string().as_str()])
}

async fn connect(url: &str, ssl: Option<SslOpts>) -> Result<Conn, mysql_async::Error> {
    let opts = OptsBuilder::from_opts(Opts::from_url(url).expect("mysql URL"))
        .prefer_socket(false)
        .ssl_opts(ssl);
    tokio::time::timeout(Duration::from_secs(20), Conn::new(opts))
        .await
        .expect("connect timed out")
}

async fn one_string(c: &mut Conn, sql: &str) -> String {
    c.query_first::<Option<String>, _>(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .flatten()
        .unwrap_or_default()
}

fn with_params(url: &str, params: &str) -> String {
    format!("{url}{}{params}", if url.contains('?') { '&' } else { '?' })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_get_tls_and_can_be_required_to_use_it() {
    let Some(url) = require_mysql() else { return };
    let Some(tls) = tls_dir() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let m = maitred_with_config(
        &url,
        &u,
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_required = true",
            tls.join("server.pem").display(),
            tls.join("server.key").display()
        ),
    );
    let through = u.with_addr(m.addr());
    let ssl = SslOpts::default().with_root_certs(vec![tls.join("ca.pem").into()]);
    let mut c = connect(&through, Some(ssl))
        .await
        .expect("TLS client through maitred");
    assert_eq!(one_string(&mut c, "SELECT CONCAT('a', 'b')").await, "ab");
    c.disconnect().await.expect("disconnect");

    // A plain client of a listener with tls_required: ERR 3159, named.
    let e = connect(&through, None)
        .await
        .expect_err("plain client refused");
    match &e {
        mysql_async::Error::Server(s) => {
            assert_eq!(s.code, 3159, "{e}");
            assert!(s.message.contains("tls_required"), "{e}");
        }
        other => panic!("expected a server error, got {other}"),
    }

    // The mariadb command-line client, verifying maitred's certificate.
    let out = kit::output_with_timeout(
        Command::new("mariadb").args([
            "--no-defaults",
            "--protocol=TCP",
            "-h",
            "127.0.0.1",
            "-P",
            &m.addr().port().to_string(),
            "-u",
            &u.user,
            &format!("-p{}", u.password),
            &format!("--ssl-ca={}", tls.join("ca.pem").display()),
            "--ssl-verify-server-cert",
            &u.database,
            "-e",
            "status",
        ]),
        Duration::from_secs(30),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Cipher in use"), "{text}");
}

/// A raw client: reads maitred's greeting, answers with caching_sha2_password.
struct RawLogin {
    s: TcpStream,
    nonce: Vec<u8>,
}

impl RawLogin {
    fn start(addr: SocketAddr, u: &MysqlUrl, password: &str) -> RawLogin {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let (_, greeting) = read(&mut s);
        let hs = HandshakePacket::deserialize((), &mut ParseBuf(&greeting)).expect("greeting");
        let nonce = hs.nonce();
        let scramble =
            mysql_common::scramble::scramble_sha256(&nonce, password.as_bytes()).expect("scramble");
        // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | CONNECT_WITH_DB | LONG_PASSWORD
        let caps: u32 = 0x0200 | 0x8000 | 0x0008_0000 | 0x0008 | 0x0001;
        let mut p = Vec::new();
        p.extend_from_slice(&caps.to_le_bytes());
        p.extend_from_slice(&(1u32 << 24).to_le_bytes());
        p.push(45);
        p.extend_from_slice(&[0; 23]);
        p.extend_from_slice(u.user.as_bytes());
        p.push(0);
        p.push(scramble.len() as u8);
        p.extend_from_slice(&scramble);
        p.extend_from_slice(u.database.as_bytes());
        p.push(0);
        p.extend_from_slice(b"caching_sha2_password\0");
        write(&mut s, 1, &p);
        RawLogin { s, nonce }
    }
}

fn write(s: &mut TcpStream, seq: u8, payload: &[u8]) {
    let mut b = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    b.push(seq);
    b.extend_from_slice(payload);
    s.write_all(&b).expect("write");
}

fn read(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).expect("header");
    let len = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).expect("payload");
    (h[3], p)
}

fn err_code(p: &[u8]) -> Option<u16> {
    match p {
        [0xff, a, b, ..] => Some(u16::from_le_bytes([*a, *b])),
        _ => None,
    }
}

#[test]
fn caching_sha2_full_authentication_with_rsa_then_fast_path() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial_blocking();
    let u = MysqlUrl::parse(&url);
    let m = Maitred::spawn(&["--upstream", &url, "--pool-size", "2"]);

    // A wrong password on a cold cache: full authentication, then access denied.
    let mut c = RawLogin::start(m.addr(), &u, "wrong");
    assert_eq!(read(&mut c.s).1, vec![0x01, 0x04], "cold cache: full auth");
    write(&mut c.s, 3, &[0x02]);
    let (_, key) = read(&mut c.s);
    assert!(key[1..].starts_with(b"-----BEGIN PUBLIC KEY-----"));
    let mut pw = b"wrong\0".to_vec();
    for (i, b) in pw.iter_mut().enumerate() {
        *b ^= c.nonce[i % c.nonce.len()];
    }
    write(&mut c.s, 5, &mysql_common::crypto::encrypt(&pw, &key[1..]));
    assert_eq!(err_code(&read(&mut c.s).1), Some(1045));

    // The password in clear on a plain connection is refused.
    let mut c = RawLogin::start(m.addr(), &u, &u.password);
    assert_eq!(read(&mut c.s).1, vec![0x01, 0x04]);
    write(&mut c.s, 3, format!("{}\0", u.password).as_bytes());
    assert_eq!(err_code(&read(&mut c.s).1), Some(1045));

    // The right password, RSA-encrypted with the public key maitred sends.
    let mut c = RawLogin::start(m.addr(), &u, &u.password);
    assert_eq!(read(&mut c.s).1, vec![0x01, 0x04], "still cold");
    write(&mut c.s, 3, &[0x02]);
    let (seq, key) = read(&mut c.s);
    assert_eq!((seq, key[0]), (4, 0x01));
    let mut pw = format!("{}\0", u.password).into_bytes();
    for (i, b) in pw.iter_mut().enumerate() {
        *b ^= c.nonce[i % c.nonce.len()];
    }
    write(&mut c.s, 5, &mysql_common::crypto::encrypt(&pw, &key[1..]));
    let (seq, ok) = read(&mut c.s);
    assert!(
        seq == 6 && matches!(ok.as_slice(), [0x00, ..]),
        "{seq} {ok:?}"
    );
    // Logged in: a query works.
    write(&mut c.s, 0, b"\x03SELECT 41 + 1");
    // Column count, column definition, EOF, row, EOF.
    let rows: Vec<Vec<u8>> = (0..5).map(|_| read(&mut c.s).1).collect();
    assert!(rows.iter().any(|r| r == b"\x0242"), "{rows:?}");

    // Warm cache: the fast path.
    let mut c = RawLogin::start(m.addr(), &u, &u.password);
    assert_eq!(read(&mut c.s).1, vec![0x01, 0x03], "warm cache: fast path");
    let (_, ok) = read(&mut c.s);
    assert!(matches!(ok.as_slice(), [0x00, ..]), "{ok:?}");
    // And a wrong scramble for a cached user is refused at once.
    let mut c = RawLogin::start(m.addr(), &u, "wrong");
    assert_eq!(err_code(&read(&mut c.s).1), Some(1045));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_tls_follows_ssl_mode_and_ssl_ca() {
    let Some(url) = require_mysql() else { return };
    let Some(tls) = tls_dir() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let ca = tls.join("ca.pem");
    let ssl_version = "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
                       WHERE VARIABLE_NAME = 'Ssl_version'";

    let verified = with_params(
        &url,
        &format!("ssl-mode=VERIFY_IDENTITY&ssl-ca={}", ca.display()),
    );
    let m = Maitred::spawn(&["--upstream", &verified, "--pool-size", "1"]);
    let mut c = connect(&u.with_addr(m.addr()), None)
        .await
        .expect("through maitred with a verified TLS server connection");
    let v = one_string(&mut c, ssl_version).await;
    assert!(v.starts_with("TLS"), "server connection not TLS: {v:?}");
    drop(c);
    drop(m);

    let plain = with_params(&url, "ssl-mode=DISABLED");
    let m = Maitred::spawn(&["--upstream", &plain, "--pool-size", "1"]);
    let mut c = connect(&u.with_addr(m.addr()), None)
        .await
        .expect("through maitred, plain server connection");
    assert_eq!(one_string(&mut c, ssl_version).await, "");
    drop(c);
    drop(m);

    // The server's certificate does not lead to this "CA" (the server certificate itself
    // is not a CA): no server connection, and the client is told why.
    let wrong = with_params(
        &url,
        &format!(
            "ssl-mode=VERIFY_CA&ssl-ca={}",
            tls.join("server.pem").display()
        ),
    );
    let m = Maitred::spawn(&["--upstream", &wrong, "--pool-size", "1"]);
    let e = connect(&u.with_addr(m.addr()), None)
        .await
        .expect_err("a server that fails verification");
    assert!(e.to_string().contains("TLS"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_login_with_client_ed25519() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    // scripts/lib/mariadb.sh creates app_ed25519 IDENTIFIED VIA ed25519 (same password).
    let upstream = format!(
        "mysql://app_ed25519:{}@{}:{}/{}",
        u.password, u.host, u.port, u.database
    );
    let m = Maitred::spawn(&["--upstream", &upstream, "--pool-size", "1"]);
    let through = format!(
        "mysql://app_ed25519:{}@{}/{}",
        u.password,
        m.addr(),
        u.database
    );
    let mut c = connect(&through, None)
        .await
        .unwrap_or_else(|e| panic!("through maitred as app_ed25519: {e}\n{}", m.log()));
    let user = one_string(&mut c, "SELECT CURRENT_USER()").await;
    assert!(user.starts_with("app_ed25519@"), "{user}");
}
