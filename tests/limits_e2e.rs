//! End-to-end tests of the client limits (issue 8, item 2, and `query_timeout`):
//! `client_login_timeout`, `idle_transaction_timeout`, `client_idle_timeout`,
//! `query_timeout`, `max_clients`, `max_message_size`, and fairness towards clients while
//! one streams a huge result slowly. The built binary sits between real clients
//! (tokio-postgres, mysql_async, the mongodb driver, raw sockets for protocol-level cases)
//! and the real servers named by `MAITRED_TEST_PG_URL`, `MAITRED_TEST_MYSQL_URL` and
//! `MAITRED_TEST_MONGO_URL`. Without them every test prints a skip notice and passes,
//! except under `CI=true`, where it fails.
//!
//! Each test asserts what the client received (error code and message), that the server
//! connection was freed (another client gets through a pool of 1 at once), and that
//! maitred still serves others. Limits are set small (hundreds of milliseconds) so each
//! test takes seconds.

#[path = "limits/mongo.rs"]
mod mongo;
#[path = "limits/mysql.rs"]
mod mysql;
#[path = "limits/pg.rs"]
mod pg;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use maitred_testkit::{self as kit, Maitred};

/// A maitred with one pool: `[[pools]]` with `name = "limits"`, the listen address and
/// `body` (upstream, auth, limits, users).
pub fn spawn_pool(body: &str) -> Maitred {
    let listen: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let dir = std::env::temp_dir().join(format!(
        "maitred-limits-{}-{}",
        std::process::id(),
        listen.port()
    ));
    std::fs::create_dir_all(&dir).expect("config dir");
    let path = dir.join("maitred.toml");
    let toml = format!("[[pools]]\nname = \"limits\"\nlisten = \"{listen}\"\n{body}\n");
    std::fs::write(&path, toml).expect("write config");
    let arg = path.display().to_string();
    Maitred::spawn_at(listen, &["--config", arg.as_str()])
}

/// Runs `fut` or panics after `secs` seconds (no test may hang).
pub async fn within<F: Future>(secs: u64, what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s: {what}"))
}

/// A blocking socket to `addr` whose reads give up after `secs` seconds.
pub fn raw_socket(addr: SocketAddr, secs: u64) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(secs)))
        .expect("read timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// Everything `s` receives until the peer closes (or the read timeout, which fails).
pub fn read_to_close(s: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return all,
            Ok(n) => all.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return all,
            Err(e) => panic!(
                "the connection was not closed: {e} (received so far: {:?})",
                String::from_utf8_lossy(&all)
            ),
        }
    }
}
