//! A plain HTTP/1.1 GET against maitred's admin endpoint (`/metrics`, `/readyz`, `/pools`),
//! for tests that scrape the running binary. No HTTP client crate: the endpoint answers
//! one request per connection and closes it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// GET `path` from the admin endpoint at `addr`: (status, body). Panics with the reason
/// when the endpoint cannot be reached or the answer is not HTTP.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get_with(addr, path, "")
}

/// [`http_get`] with extra header lines (each ending in `\r\n`), e.g. an Authorization.
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to admin {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n").expect("write request");
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

/// The sum of a metric's samples over its label sets, from `/metrics`.
pub fn metric_sum(admin: SocketAddr, name: &str) -> f64 {
    http_body(admin, "/metrics")
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// [`metric_sum`] read off the reactor (the HTTP read blocks).
pub async fn metric_sum_now(admin: SocketAddr, name: &'static str) -> f64 {
    tokio::task::spawn_blocking(move || metric_sum(admin, name))
        .await
        .expect("metrics")
}

/// Clients queued for a server connection right now, over all pools.
pub fn clients_waiting(admin: SocketAddr) -> f64 {
    http_body(admin, "/metrics")
        .lines()
        .filter(|l| l.starts_with("maitred_clients{") && l.contains("state=\"waiting\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `probe` (a blocking HTTP read, so off the reactor) until it holds; panics after
/// `secs` seconds, naming `what`.
pub async fn until(what: &str, secs: u64, probe: impl Fn() -> bool + Send + Sync + 'static) {
    let probe = std::sync::Arc::new(probe);
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let p = std::sync::Arc::clone(&probe);
        if tokio::task::spawn_blocking(move || p())
            .await
            .expect("probe")
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
