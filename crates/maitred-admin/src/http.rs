//! A minimal HTTP/1.1 server for the admin endpoint: one request per connection
//! (`Connection: close`), GET and HEAD only, request heads capped in size and time.
//!
//! - `GET /metrics`: Prometheus text format.
//! - `GET /healthz`: 200 `ok` while the process serves at all.
//! - `GET /readyz`: 200 `ready`, or 503 with the reason (starting, draining, a server
//!   unreachable).
//! - `GET /pools`: JSON array, one object per pool.
//!
//! The first three are the probe surface, answered to anyone; `/pools` and every other path
//! are the detail surface, answered only to loopback peers or with the bearer token
//! ([`crate::access`]); others get 403.

use crate::access::{self, Access};
use crate::Admin;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head accepted.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a client has to take the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the admin address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves admin requests until the task is dropped.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let admin = admin.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, &admin).await {
                        tracing::debug!(error = %e, "admin request failed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// A response: status, content type, body.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }
}

/// Answers one request line (`GET /path HTTP/1.1`) for a client allowed `access`.
pub fn route(admin: &Admin, request_line: &str, access: Access) -> Response {
    let mut parts = request_line.split_ascii_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Response::text(400, "bad request\n");
    };
    if method != "GET" && method != "HEAD" {
        return Response::text(405, "only GET and HEAD\n");
    }
    let path = target.split('?').next().unwrap_or(target);
    if access == Access::Probes && !access::is_probe(path) {
        return Response::text(
            403,
            "forbidden: from this address only /metrics, /healthz and /readyz answer; the \
             rest answers on loopback or with the [admin] detail_token as a bearer token\n",
        );
    }
    match path {
        "/metrics" => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: admin.render_metrics(),
        },
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" => {
            // A refused reload leaves the old configuration serving: still ready, but say so.
            let note = admin
                .reload_error()
                .map(|e| format!("last reload refused (old configuration still in use): {e}\n"))
                .unwrap_or_default();
            match admin.readiness() {
                Ok(()) => Response::text(200, format!("ready\n{note}")),
                Err(reason) => Response::text(503, format!("{reason}\n{note}")),
            }
        }
        "/pools" => Response {
            status: 200,
            content_type: "application/json",
            body: format!("{:#}\n", admin.pools_json()),
        },
        _ => Response::text(404, "not found: try /metrics, /healthz, /readyz, /pools\n"),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The value of header `name` (case-insensitive) in a request head, if present.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
}

async fn handle(mut stream: TcpStream, admin: &Admin) -> std::io::Result<()> {
    let peer = stream.peer_addr().ok().map(|a| a.ip());
    let mut head = Vec::with_capacity(512);
    let complete = tokio::time::timeout(READ_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        loop {
            if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
                return Ok::<bool, std::io::Error>(true);
            }
            if head.len() > MAX_HEAD {
                return Ok(false);
            }
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(head.contains(&b'\n'));
            }
            head.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let response = match complete {
        Ok(Ok(true)) => {
            let text = String::from_utf8_lossy(&head);
            let line = text.lines().next().unwrap_or("");
            let access = admin
                .detail_token()
                .access(peer, header(&text, "authorization"));
            route(admin, line, access)
        }
        Ok(Ok(false)) => Response::text(431, "request head too large\n"),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    };
    let is_head = head.starts_with(b"HEAD ");
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if !is_head {
        out.extend_from_slice(response.body.as_bytes());
    }
    tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::tests::FakePool;
    use std::sync::atomic::Ordering;

    #[test]
    fn routes_answer_with_status_and_body() {
        let admin = Admin::new();
        let pool = Arc::new(FakePool::default());
        admin.register(pool.clone());
        assert_eq!(
            route(&admin, "GET /healthz HTTP/1.1", Access::Detail).body,
            "ok\n"
        );
        assert_eq!(
            route(&admin, "GET /readyz HTTP/1.1", Access::Detail).status,
            503
        );
        admin.set_listening();
        pool.connects.store(1, Ordering::SeqCst);
        assert_eq!(
            route(&admin, "GET /readyz?verbose HTTP/1.1", Access::Detail).status,
            200
        );
        assert_eq!(
            route(&admin, "GET /nope HTTP/1.1", Access::Detail).status,
            404
        );
        assert_eq!(
            route(&admin, "POST /metrics HTTP/1.1", Access::Detail).status,
            405
        );
        assert_eq!(route(&admin, "", Access::Detail).status, 400);
        let pools = route(&admin, "GET /pools HTTP/1.1", Access::Detail);
        assert_eq!(pools.content_type, "application/json");
        let v: serde_json::Value = serde_json::from_str(&pools.body).expect("json");
        assert_eq!(v[0]["protocol"], "postgres");
    }

    #[test]
    fn only_probes_answer_without_detail_access() {
        let admin = Admin::new();
        admin.register(Arc::new(FakePool::default()));
        for path in ["/metrics", "/healthz", "/readyz"] {
            let r = route(&admin, &format!("GET {path} HTTP/1.1"), Access::Probes);
            assert_ne!(r.status, 403, "{path}");
        }
        for path in ["/pools", "/pools?x", "/nope", "/"] {
            let r = route(&admin, &format!("GET {path} HTTP/1.1"), Access::Probes);
            assert_eq!(r.status, 403, "{path}");
            assert!(!r.body.contains("postgres"), "{}", r.body);
        }
        assert_eq!(
            route(&admin, "GET /pools HTTP/1.1", Access::Detail).status,
            200
        );
    }

    #[test]
    fn headers_are_found_case_insensitively_in_the_head_only() {
        let head = "GET /pools HTTP/1.1\r\nHost: x\r\nauthorization:  Bearer abc \r\n\r\nAuthorization: Bearer body\r\n";
        assert_eq!(header(head, "Authorization"), Some("Bearer abc"));
        assert_eq!(
            header("GET / HTTP/1.1\r\nHost: x\r\n\r\n", "authorization"),
            None
        );
        assert_eq!(
            header("Authorization: Bearer x\r\n\r\n", "authorization"),
            None,
            "not the request line"
        );
    }

    #[tokio::test]
    async fn serves_over_tcp() {
        let admin = Admin::new();
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve(listener, admin));
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut got = String::new();
        s.read_to_string(&mut got).await.expect("read");
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.ends_with("\r\n\r\nok\n"), "{got}");
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(&vec![b'a'; MAX_HEAD + 1]).await.expect("write");
        let mut got = String::new();
        s.read_to_string(&mut got).await.expect("read");
        assert!(got.starts_with("HTTP/1.1 431"), "{got}");
        server.abort();
    }
}
