//! End-to-end tests of what maitred shows to clients that have not logged in and to the
//! network at large (docs/security.md), through the built binary and raw sockets:
//!
//! - a PostgreSQL SCRAM exchange for an unknown user name gets the same salt at every
//!   attempt, shaped like a known user's (no user enumeration from the server-first message);
//! - an auth_query lookup that fails tells the client nothing about the upstream;
//! - the admin endpoint's detail surface (`/pools`) answers only loopback peers (or a bearer
//!   token), while `/metrics`, `/healthz` and `/readyz` answer anyone.
//!
//! None of these needs a database server: the upstream is a closed port.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use maitred_testkit::admin_http::http_get_with;
use maitred_testkit::{self as kit, Maitred};

fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr")
}

/// A `postgres://` upstream on a port nothing listens on.
fn closed_upstream() -> String {
    format!(
        "postgres://app:upstream-pw-xyz@127.0.0.1:{}/app",
        kit::free_port()
    )
}

fn write_config(name: &str, text: &str) -> String {
    let dir: PathBuf = std::env::temp_dir().join(format!("maitred-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("config dir");
    let path = dir.join("maitred.toml");
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

// ---------------------------------------------------------------------------
// PostgreSQL wire, raw

fn startup(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Reads one backend message: (tag, body).
fn read_message(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).expect("message header");
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).expect("message body");
    (head[0], body)
}

/// The `(salt, iterations)` of maitred's SCRAM server-first message for `user`: starts a
/// login, sends client-first and reads the answer, then hangs up.
fn scram_server_first(addr: SocketAddr, user: &str) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(&startup(user, "app")).expect("startup");
    let (tag, body) = read_message(&mut s);
    assert_eq!(tag, b'R', "expected an authentication request");
    assert_eq!(
        &body[..4],
        &10u32.to_be_bytes(),
        "expected AuthenticationSASL"
    );
    let client_first = b"n,,n=,r=fyko+d2lbbFgONRv9qkxdawL";
    let mechanism = b"SCRAM-SHA-256\0";
    let len = 4 + mechanism.len() + 4 + client_first.len();
    let mut msg = vec![b'p'];
    msg.extend_from_slice(&(len as u32).to_be_bytes());
    msg.extend_from_slice(mechanism);
    msg.extend_from_slice(&(client_first.len() as u32).to_be_bytes());
    msg.extend_from_slice(client_first);
    s.write_all(&msg).expect("client-first");
    let (tag, body) = read_message(&mut s);
    assert_eq!(tag, b'R');
    assert_eq!(
        &body[..4],
        &11u32.to_be_bytes(),
        "expected AuthenticationSASLContinue"
    );
    let first = String::from_utf8(body[4..].to_vec()).expect("server-first is UTF-8");
    let attr = |name: &str| {
        first
            .split(',')
            .find_map(|a| a.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {first}"))
            .to_owned()
    };
    (attr("s="), attr("i="))
}

fn base64_len(b64: &str) -> usize {
    let pad = b64.bytes().rev().take_while(|b| *b == b'=').count();
    b64.len() / 4 * 3 - pad
}

#[test]
fn pg_scram_unknown_user_gets_a_stable_salt_shaped_like_a_known_one() {
    let listen = free_addr();
    let config = write_config(
        "scram-probe",
        &format!(
            "[[pools]]\nname = \"app\"\nlisten = \"{listen}\"\nupstream = \"{}\"\nsize = 1\nclient_auth = \"scram-sha-256\"\n  [[pools.users]]\n  name = \"known\"\n  password = \"known-pw\"\n",
            closed_upstream()
        ),
    );
    let m = Maitred::spawn_at(listen, &["--config", config.as_str()]);
    let (known_salt, known_iterations) = scram_server_first(m.addr(), "known");
    let (first, first_iterations) = scram_server_first(m.addr(), "nobody_here");
    let (second, _) = scram_server_first(m.addr(), "nobody_here");
    let (other, _) = scram_server_first(m.addr(), "someone_else");
    assert_eq!(
        first, second,
        "two attempts for the same unknown user must see the same salt (a known user's is fixed)"
    );
    assert_ne!(first, other, "each unknown name has its own salt");
    assert_eq!(
        known_salt,
        scram_server_first(m.addr(), "known").0,
        "known salt"
    );
    assert_eq!(base64_len(&first), base64_len(&known_salt), "salt length");
    assert_eq!(first_iterations, known_iterations, "iteration count");
}

// ---------------------------------------------------------------------------
// auth_query lookup failures

/// The ErrorResponse of a login expected to fail before authentication: (SQLSTATE, message).
fn startup_error(addr: SocketAddr, user: &str) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s.write_all(&startup(user, "app")).expect("startup");
    let (tag, body) = read_message(&mut s);
    assert_eq!(
        tag,
        b'E',
        "expected an ErrorResponse, got {:?} {:?}",
        tag as char,
        String::from_utf8_lossy(&body)
    );
    let mut code = String::new();
    let mut message = String::new();
    for field in body.split(|b| *b == 0).filter(|f| !f.is_empty()) {
        let text = String::from_utf8_lossy(&field[1..]).into_owned();
        match field[0] {
            b'C' => code = text,
            b'M' => message = text,
            _ => {}
        }
    }
    (code, message)
}

#[test]
fn pg_auth_query_failure_does_not_show_the_upstream() {
    let listen = free_addr();
    let upstream_port = kit::free_port();
    let upstream = format!("postgres://app:upstream-pw-xyz@127.0.0.1:{upstream_port}/app");
    let config = write_config(
        "aq-closed",
        &format!(
            "[[pools]]\nname = \"app\"\nlisten = \"{listen}\"\nupstream = \"{upstream}\"\nsize = 1\nauth_user = \"lookup\"\n  [[pools.users]]\n  name = \"lookup\"\n  password = \"lookup-secret-xyz\"\n"
        ),
    );
    let m = Maitred::spawn_at(listen, &["--config", config.as_str()]);
    let (code, message) = startup_error(m.addr(), "someone");
    assert_eq!(code, "08006", "{message}");
    assert!(
        message.contains("could not verify credentials for user \"someone\""),
        "{message}"
    );
    for leak in [
        upstream_port.to_string().as_str(),
        "127.0.0.1",
        "lookup-secret-xyz",
        "upstream-pw-xyz",
        "connect",
        "refused",
        "auth_user",
    ] {
        assert!(
            !message.contains(leak),
            "the client is told {leak:?}: {message}"
        );
    }
    let log = m.log();
    assert!(
        log.contains("auth_query lookup failed"),
        "the detail goes to the log:\n{log}"
    );
    assert!(!log.contains("lookup-secret-xyz") && !log.contains("upstream-pw-xyz"));
}

// ---------------------------------------------------------------------------
// Admin endpoint: probe surface and detail surface

/// An address of this host that is not loopback (the one its default route uses), or None
/// after a skip notice: a connection to it from this host comes from that address.
fn non_loopback_ip() -> Option<IpAddr> {
    let found = UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
    if found.is_none() {
        eprintln!("skipping: this host has no non-loopback IPv4 address to test from");
    }
    found
}

/// maitred with its admin endpoint on 0.0.0.0 (as every shipped deployment binds it) and
/// `admin_extra` lines in `[admin]`; returns it and the admin port.
fn spawn_admin_on_all_addresses(admin_extra: &str) -> (Maitred, u16) {
    let listen = free_addr();
    let port = kit::free_port();
    let config = write_config(
        &format!("admin-{port}"),
        &format!(
            "[admin]\nlisten = \"0.0.0.0:{port}\"\n{admin_extra}\n[[pools]]\nname = \"app\"\nlisten = \"{listen}\"\nupstream = \"{}\"\nsize = 1\n  [[pools.users]]\n  name = \"app\"\n  password = \"app-pw\"\n",
            closed_upstream()
        ),
    );
    let m = Maitred::spawn_at(listen, &["--config", config.as_str()]);
    let admin: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    assert!(
        kit::wait_for_port(admin, Duration::from_secs(10)),
        "admin endpoint never listened\n{}",
        m.log()
    );
    (m, port)
}

fn assert_probes_answer(addr: SocketAddr) {
    let (status, body) = http_get_with(addr, "/metrics", "");
    assert_eq!(status, 200, "/metrics from {addr}: {body}");
    assert!(body.contains("maitred_"), "{body}");
    let (status, body) = http_get_with(addr, "/healthz", "");
    assert_eq!(
        (status, body.as_str()),
        (200, "ok\n"),
        "/healthz from {addr}"
    );
    // Not ready: the upstream is a closed port. Answered all the same.
    let (status, body) = http_get_with(addr, "/readyz", "");
    assert!(
        status == 200 || status == 503,
        "/readyz from {addr}: {status} {body}"
    );
}

#[test]
fn admin_detail_endpoints_answer_only_loopback_by_default() {
    let (m, port) = spawn_admin_on_all_addresses("");
    let loopback: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    assert_probes_answer(loopback);
    let (status, body) = http_get_with(loopback, "/pools", "");
    assert_eq!(status, 200, "/pools from loopback: {body}");
    assert!(body.contains("\"name\": \"app\""), "{body}");

    let Some(ip) = non_loopback_ip() else {
        return;
    };
    let outside = SocketAddr::new(ip, port);
    assert_probes_answer(outside);
    let (status, body) = http_get_with(outside, "/pools", "");
    assert_eq!(status, 403, "/pools from {ip}: {body}");
    assert!(!body.contains("\"name\""), "{body}");
    let (status, _) = http_get_with(outside, "/pools", "Authorization: Bearer guess\r\n");
    assert_eq!(status, 403, "a token when none is configured");
    drop(m);
}

#[test]
fn admin_detail_token_opens_pools_to_other_addresses() {
    let token = "e2e-detail-token-0123456789";
    let (m, port) = spawn_admin_on_all_addresses(&format!("detail_token = \"{token}\""));
    let Some(ip) = non_loopback_ip() else {
        return;
    };
    let outside = SocketAddr::new(ip, port);
    assert_probes_answer(outside);
    let (status, _) = http_get_with(outside, "/pools", "");
    assert_eq!(status, 403, "no token");
    let (status, _) = http_get_with(
        outside,
        "/pools",
        "Authorization: Bearer e2e-detail-token-012345678\r\n",
    );
    assert_eq!(status, 403, "a wrong token");
    let (status, body) = http_get_with(
        outside,
        "/pools",
        &format!("Authorization: Bearer {token}\r\n"),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"name\": \"app\""), "{body}");
    assert!(!m.log().contains(token), "the token is never logged");
}
