//! maitred-testkit: helpers for integration tests that need the real backends
//! and the built `maitred` binary.
//!
//! * [`require_pg`] / [`pg_url`] / [`pg_superuser_url`]: the throwaway
//!   PostgreSQL that `scripts/test.sh` starts (env [`PG_URL_ENV`],
//!   [`PG_SUPERUSER_URL_ENV`]).
//! * [`maitred_bin`]: the binary built by `cargo build -p maitred`
//!   (or [`BIN_ENV`]).
//! * [`Maitred`]: a running `maitred` process with its log, killed on drop.
//! * [`PgUrl`] / [`swap_host_port`]: small URL edits (point a client at
//!   maitred, change password or database), in `pg_url.rs`; [`Maitred`] and the
//!   commands run with a deadline in `process.rs`.
//! * [`serial`]: a process-wide lock for tests that share one capped server.
//! * [`fault_relay::FaultRelay`]: a TCP relay between maitred and a server
//!   that injects delay, drop, reset, blackhole and refusal at runtime.
//! * [`pg_server::pg_control`]: restart the test PostgreSQL (`pg_ctl`).
//! * [`admin_http::http_get`]: GET from maitred's admin endpoint (status, body).
//! * [`fuzz_corpus::replay`]: a fuzz target's committed corpus through its function.

pub mod admin_http;
pub mod fault_relay;
pub mod fuzz_corpus;
pub mod mongo;
pub mod mysql;
pub mod pg_server;
mod pg_url;
mod process;

pub use pg_url::{pg_url_parts, swap_host_port, PgUrl, UrlError};
pub use process::{output_with_timeout, refused_start, wait_with_deadline, Maitred};

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// URL of the test PostgreSQL as the unprivileged `app` role.
pub const PG_URL_ENV: &str = "MAITRED_TEST_PG_URL";
/// URL of the same server as a superuser (for pg_stat_activity and cleanup).
pub const PG_SUPERUSER_URL_ENV: &str = "MAITRED_TEST_PG_SUPERUSER_URL";
/// Explicit path of the maitred binary to test.
pub const BIN_ENV: &str = "MAITRED_BIN";
/// When set, every spawned maitred writes `<dir>/<pid>` (removed on drop), so
/// a test runner can kill strays after a crash, by pid.
pub const PID_DIR_ENV: &str = "MAITRED_TEST_PIDDIR";
/// How long [`Maitred::spawn`] waits for the listen address.
pub const SPAWN_TIMEOUT: Duration = Duration::from_secs(10);

const SKIP_MESSAGE: &str = "skipping: no PostgreSQL (run scripts/test.sh)";

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// True when running under CI (`CI=true` or `CI=1`).
pub fn is_ci() -> bool {
    matches!(
        std::env::var("CI").ok().as_deref().map(str::trim),
        Some("true") | Some("1") | Some("TRUE") | Some("True")
    )
}

/// `MAITRED_TEST_PG_URL`, if set and non-empty.
pub fn pg_url() -> Option<String> {
    non_empty_env(PG_URL_ENV)
}

/// `MAITRED_TEST_PG_SUPERUSER_URL`, if set and non-empty.
pub fn pg_superuser_url() -> Option<String> {
    non_empty_env(PG_SUPERUSER_URL_ENV)
}

/// The test PostgreSQL URL, or `None` after printing a skip notice.
///
/// # Panics
/// Under CI (`CI=true`) a missing server is a failure, not a skip.
pub fn require_pg() -> Option<String> {
    require_pg_with(pg_url(), is_ci())
}

fn require_pg_with(url: Option<String>, ci: bool) -> Option<String> {
    match url {
        Some(url) => Some(url),
        None if ci => panic!(
            "{PG_URL_ENV} is not set but CI=true: the PostgreSQL tests must run in CI (use scripts/test.sh)"
        ),
        None => {
            eprintln!("{SKIP_MESSAGE}");
            None
        }
    }
}

/// Like [`require_pg`] for the superuser URL; panics if the app URL is set
/// but the superuser one is not (scripts/test.sh always sets both).
pub fn require_pg_superuser() -> Option<String> {
    let _ = require_pg()?;
    Some(pg_superuser_url().unwrap_or_else(|| {
        panic!("{PG_URL_ENV} is set but {PG_SUPERUSER_URL_ENV} is not; set both (scripts/test.sh does)")
    }))
}

/// Path of the maitred binary: `MAITRED_BIN`, or `target/<profile>/maitred`
/// found from the running test executable (`target/<profile>/deps/<test>`).
///
/// # Panics
/// If the binary does not exist.
pub fn maitred_bin() -> PathBuf {
    let path = match non_empty_env(BIN_ENV) {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("current_exe() of the test binary");
            bin_beside_test_exe(&exe, &format!("maitred{}", std::env::consts::EXE_SUFFIX))
        }
    };
    assert!(
        path.is_file(),
        "maitred binary not found at {}: build it first: cargo build -p maitred (or set {BIN_ENV})",
        path.display()
    );
    path
}

/// `target/<profile>/deps/<test-exe>` -> `target/<profile>/<name>`.
fn bin_beside_test_exe(exe: &Path, name: &str) -> PathBuf {
    let deps = exe.parent().unwrap_or_else(|| Path::new("."));
    // Integration tests live in deps/; a plain binary runs from <profile>/.
    let profile = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap_or(deps)
    } else {
        deps
    };
    profile.join(name)
}

/// A TCP port on 127.0.0.1 that was free a moment ago, and that this process was not
/// given before: the kernel may hand out the port just probed again, and a test that asks
/// for two ports before binding either (two listeners in one config) must get two.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
        let port = listener
            .local_addr()
            .expect("local_addr of the probe listener")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether something accepts TCP on `addr` right now.
pub fn port_open(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok()
}

/// Wait until `addr` accepts TCP or `timeout` passes.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if port_open(addr) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// Serializing tests that share one capped server

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A process-wide lock: tests that open many server connections take it so
/// that together they stay under the shared server's `max_connections`.
/// Works across the separate runtimes of `#[tokio::test]`s and never poisons.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}

/// Blocking form of [`serial`] for plain `#[test]`s (not inside a runtime).
pub fn serial_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.blocking_lock()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::listen_arg;
    use std::process::Command;

    #[test]
    fn parses_full_url() {
        let u = PgUrl::parse("postgres://app:secret@127.0.0.1:5432/app?sslmode=disable")
            .expect("valid URL");
        assert_eq!(u.scheme, "postgres");
        assert_eq!(u.user.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, Some(5432));
        assert_eq!(u.database, "app");
        assert_eq!(u.query.as_deref(), Some("sslmode=disable"));
        assert_eq!(
            u.to_string(),
            "postgres://app:secret@127.0.0.1:5432/app?sslmode=disable"
        );
    }

    #[test]
    fn parses_minimal_and_ipv6_urls() {
        let u = PgUrl::parse("postgresql://localhost").expect("valid URL");
        assert_eq!(u.host, "localhost");
        assert_eq!(u.port, None);
        assert_eq!(u.user, None);
        assert_eq!(u.database, "");
        assert_eq!(u.host_port(), "localhost:5432");
        assert_eq!(u.to_string(), "postgresql://localhost");

        let u = PgUrl::parse("postgres://u@[::1]:6000/db").expect("valid URL");
        assert_eq!(u.host, "[::1]");
        assert_eq!(u.port, Some(6000));
        assert_eq!(u.password, None);
        assert_eq!(u.to_string(), "postgres://u@[::1]:6000/db");
    }

    #[test]
    fn password_may_contain_at_and_colon() {
        let u = PgUrl::parse("postgres://app:p@ss:w@h:1/d").expect("valid URL");
        assert_eq!(u.user.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("p@ss:w"));
        assert_eq!(u.host, "h");
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(PgUrl::parse("127.0.0.1:5432").is_err());
        assert!(PgUrl::parse("postgres://app@host:notaport/db").is_err());
        assert!(PgUrl::parse("postgres://app@/db").is_err());
        assert!(PgUrl::parse("postgres://[::1/db").is_err());
    }

    #[test]
    fn swaps_host_and_port_only() {
        assert_eq!(
            swap_host_port("postgres://app:secret@127.0.0.1:5432/app", "127.0.0.1:6432"),
            "postgres://app:secret@127.0.0.1:6432/app"
        );
        assert_eq!(
            swap_host_port("postgres://app:secret@db.example:5432/app?x=1", "[::1]:7"),
            "postgres://app:secret@[::1]:7/app?x=1"
        );
        assert_eq!(
            swap_host_port("postgres://h/app", "127.0.0.1:9"),
            "postgres://127.0.0.1:9/app"
        );
    }

    #[test]
    fn edits_password_and_database() {
        let u = pg_url_parts("postgres://app:secret@127.0.0.1:5432/app")
            .with_password("wrong")
            .with_database("nope")
            .with_user("other");
        assert_eq!(u.to_string(), "postgres://other:wrong@127.0.0.1:5432/nope");
    }

    #[test]
    fn finds_listen_argument() {
        assert_eq!(
            listen_arg(&["--pool-size", "3", "--listen", "127.0.0.1:1"]).as_deref(),
            Some("127.0.0.1:1")
        );
        assert_eq!(
            listen_arg(&["--listen=127.0.0.1:2"]).as_deref(),
            Some("127.0.0.1:2")
        );
        assert_eq!(listen_arg(&["--upstream", "x"]), None);
    }

    #[test]
    fn binary_path_from_test_exe() {
        assert_eq!(
            bin_beside_test_exe(Path::new("/r/target/debug/deps/pg_e2e-abc"), "maitred"),
            PathBuf::from("/r/target/debug/maitred")
        );
        assert_eq!(
            bin_beside_test_exe(Path::new("/r/target/release/tool"), "maitred"),
            PathBuf::from("/r/target/release/maitred")
        );
    }

    #[test]
    fn require_pg_skips_or_panics() {
        assert_eq!(
            require_pg_with(Some("postgres://x".into()), true).as_deref(),
            Some("postgres://x")
        );
        assert_eq!(require_pg_with(None, false), None);
        let r = std::panic::catch_unwind(|| require_pg_with(None, true));
        assert!(r.is_err(), "CI without a server must panic");
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        let l = TcpListener::bind(("127.0.0.1", port)).expect("port from free_port binds");
        let addr = l.local_addr().expect("local_addr");
        assert!(port_open(addr));
        drop(l);
    }

    #[test]
    fn wait_for_port_times_out_on_closed_port() {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let t = Instant::now();
        assert!(!wait_for_port(addr, Duration::from_millis(200)));
        assert!(t.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn output_with_timeout_captures_and_kills() {
        let out = output_with_timeout(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
        assert_eq!(out.status.code(), Some(3));
        let r = std::panic::catch_unwind(|| {
            output_with_timeout(Command::new("sleep").arg("30"), Duration::from_millis(200))
        });
        assert!(r.is_err(), "a command past its deadline must panic");
    }

    #[tokio::test]
    async fn serial_lock_is_exclusive() {
        let g = serial().await;
        assert!(SERIAL.try_lock().is_err());
        drop(g);
        assert!(SERIAL.try_lock().is_ok());
    }
}
