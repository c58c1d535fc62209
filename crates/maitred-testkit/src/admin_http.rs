//! A plain HTTP/1.1 GET against maitred's admin endpoint (`/metrics`, `/readyz`, `/pools`),
//! for tests that scrape the running binary. No HTTP client crate: the endpoint answers
//! one request per connection and closes it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// GET `path` from the admin endpoint at `addr`: (status, body). Panics with the reason
/// when the endpoint cannot be reached or the answer is not HTTP.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to admin {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").expect("write request");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {raw:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (status, body.to_owned())
}

/// The body of GET `path`, whatever the status.
pub fn http_body(addr: SocketAddr, path: &str) -> String {
    http_get(addr, path).1
}

/// Starts maitred in front of `upstream` (one-line form) with an admin endpoint on a free
/// port, plus `extra` flags; returns it and the admin address once both listen.
pub fn spawn_with_admin(upstream: &str, extra: &[&str]) -> (crate::Maitred, SocketAddr) {
    let admin: SocketAddr = format!("127.0.0.1:{}", crate::free_port())
        .parse()
        .expect("admin addr");
    let admin_arg = admin.to_string();
    let mut args = vec!["--upstream", upstream, "--admin", admin_arg.as_str()];
    args.extend_from_slice(extra);
    let m = crate::Maitred::spawn(&args);
    assert!(
        crate::wait_for_port(admin, Duration::from_secs(10)),
        "admin endpoint never listened on {admin}\n{}",
        m.log()
    );
    (m, admin)
}
