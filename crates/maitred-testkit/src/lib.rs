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
//!   maitred, change password or database).
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

use std::fmt;
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
// URLs

/// A `postgres://user:password@host:port/database?params` URL, split into
/// parts without decoding (test URLs use plain ASCII).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgUrl {
    /// `postgres` or `postgresql` (or anything else before `://`).
    pub scheme: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host as written (IPv6 keeps its brackets).
    pub host: String,
    pub port: Option<u16>,
    /// Path without the leading `/`; empty when absent.
    pub database: String,
    /// Everything after `?`, without the `?`.
    pub query: Option<String>,
}

/// Error from [`PgUrl::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError(pub String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

impl PgUrl {
    /// Parse a URL of the form `scheme://[user[:password]@]host[:port][/db][?query]`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError(format!("no '://' in {url:?}")))?;
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q.to_owned())),
            None => (rest, None),
        };
        let (authority, database) = match before_query.split_once('/') {
            Some((a, d)) => (a, d.to_owned()),
            None => (before_query, String::new()),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (Some(user.to_owned()), Some(pw.to_owned())),
                None => (Some(u.to_owned()), None),
            },
            None => (None, None),
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() {
            return Err(UrlError(format!("no host in {url:?}")));
        }
        Ok(PgUrl {
            scheme: scheme.to_owned(),
            user,
            password,
            host,
            port,
            database,
            query,
        })
    }

    /// `host:port` (port 5432 when absent).
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port.unwrap_or(5432))
    }

    /// Replace host and port with those of `addr`.
    pub fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.host = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        self.port = Some(addr.port());
        self
    }

    pub fn with_password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    pub fn with_user(mut self, user: &str) -> Self {
        self.user = Some(user.to_owned());
        self
    }

    pub fn with_database(mut self, database: &str) -> Self {
        self.database = database.to_owned();
        self
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if !self.database.is_empty() {
            write!(f, "/{}", self.database)?;
        }
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), UrlError> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| UrlError(format!("unclosed '[' in {hostport:?}")))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(UrlError(format!("junk after ']' in {hostport:?}"))),
        };
        (format!("[{ip}]"), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|e| UrlError(format!("bad port {p:?}: {e}")))
        })
        .transpose()?;
    Ok((host, port))
}

/// `url` with its host and port replaced by `addr` (e.g. `127.0.0.1:6432`).
///
/// # Panics
/// If `url` is not a `scheme://...` URL or `addr` is not `ip:port`.
pub fn swap_host_port(url: &str, addr: &str) -> String {
    let addr: SocketAddr = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("not an ip:port address: {addr:?}"));
    PgUrl::parse(url)
        .unwrap_or_else(|e| panic!("cannot parse URL {url:?}: {e}"))
        .with_addr(addr)
        .to_string()
}

/// Parse a URL, panicking with the URL in the message (tests only).
pub fn pg_url_parts(url: &str) -> PgUrl {
    PgUrl::parse(url).unwrap_or_else(|e| panic!("cannot parse URL {url:?}: {e}"))
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

// ---------------------------------------------------------------------------
// Running commands with a deadline

/// Run [`maitred_bin`] with `args`, expecting it to refuse to start; returns what it
/// wrote to stderr.
///
/// # Panics
/// If it starts (or runs for 20 s).
pub fn refused_start<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = output_with_timeout(
        Command::new(maitred_bin()).args(args),
        Duration::from_secs(20),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "maitred must refuse to start: {stderr}"
    );
    stderr
}

/// Run `cmd` to completion with stdout/stderr captured, killing it after
/// `timeout`.
///
/// # Panics
/// If the command cannot be started or runs past `timeout`.
pub fn output_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out_t = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_t = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let status = wait_with_deadline(&mut child, timeout);
    let stdout = out_t.join().expect("stdout reader thread");
    let stderr = err_t.join().expect("stderr reader thread");
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "{shown} did not finish within {timeout:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// Wait for `child` until `timeout`; on timeout kill it and return `None`.
pub fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
    }
}

// ---------------------------------------------------------------------------
// A running maitred

static SPAWN_COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_dir(prefix: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = SPAWN_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", dir.display()));
    dir
}

/// The address after `--listen` / `--listen=` in `args`, if any.
fn listen_arg(args: &[&str]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "--listen" {
            return it.next().map(|s| (*s).to_owned());
        }
        if let Some(v) = a.strip_prefix("--listen=") {
            return Some(v.to_owned());
        }
    }
    None
}

/// A `maitred` child process. Killed (and its temp dir removed) on drop; when
/// dropped during a panic its log is printed and kept.
pub struct Maitred {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    log_path: PathBuf,
    pid_file: Option<PathBuf>,
}

impl fmt::Debug for Maitred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Maitred")
            .field("pid", &self.child.id())
            .field("addr", &self.addr)
            .field("log", &self.log_path)
            .finish()
    }
}

impl Maitred {
    /// Start [`maitred_bin`] with `args`. If `args` has no `--listen`,
    /// `--listen 127.0.0.1:<free port>` is added in front. Waits up to
    /// [`SPAWN_TIMEOUT`] for the listen address to accept TCP.
    ///
    /// # Panics
    /// If the binary is missing, exits early or never listens (the log is
    /// included in the message).
    pub fn spawn(args: &[&str]) -> Maitred {
        let mut full: Vec<String> = Vec::with_capacity(args.len() + 2);
        let listen = match listen_arg(args) {
            Some(l) => l,
            None => {
                let l = format!("127.0.0.1:{}", free_port());
                full.push("--listen".to_owned());
                full.push(l.clone());
                l
            }
        };
        full.extend(args.iter().map(|s| (*s).to_owned()));
        let addr: SocketAddr = listen
            .parse()
            .unwrap_or_else(|e| panic!("--listen {listen:?} is not ip:port: {e}"));
        Self::spawn_at(addr, &full)
    }

    /// Start maitred with exactly `args` (e.g. `--config file`), expecting
    /// it to listen on `addr`.
    pub fn spawn_at<S: AsRef<std::ffi::OsStr>>(addr: SocketAddr, args: &[S]) -> Maitred {
        let bin = maitred_bin();
        let dir = unique_dir("maitred-test");
        let log_path = dir.join("maitred.log");
        let log = fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let log_err = log.try_clone().expect("clone log file handle");
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let shown = format!("{cmd:?}");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
        let pid_file = non_empty_env(PID_DIR_ENV).and_then(|d| {
            let p = Path::new(&d).join(child.id().to_string());
            fs::write(&p, format!("{}\n", bin.display()))
                .ok()
                .map(|_| p)
        });
        let mut m = Maitred {
            child,
            addr,
            dir,
            log_path,
            pid_file,
        };
        let deadline = Instant::now() + SPAWN_TIMEOUT;
        loop {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!(
                    "maitred exited with {status} before listening on {addr}\ncommand: {shown}\n--- log ---\n{}",
                    m.log()
                );
            }
            if port_open(addr) {
                break;
            }
            if Instant::now() >= deadline {
                panic!(
                    "maitred did not listen on {addr} within {SPAWN_TIMEOUT:?}\ncommand: {shown}\n--- log ---\n{}",
                    m.log()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        m
    }

    /// The address maitred listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `upstream_url` with host:port replaced by maitred's.
    pub fn url_for(&self, upstream_url: &str) -> String {
        pg_url_parts(upstream_url).with_addr(self.addr).to_string()
    }

    /// Everything maitred wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_else(|e| format!("<cannot read {}: {e}>", self.log_path.display()))
    }

    /// Path of the log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// `Some(status)` if the process has exited.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kill the process now and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Maitred {
    fn drop(&mut self) {
        self.kill();
        if let Some(p) = &self.pid_file {
            let _ = fs::remove_file(p);
        }
        if thread::panicking() {
            eprintln!(
                "--- maitred log ({}) ---\n{}\n--- end of maitred log ---",
                self.log_path.display(),
                self.log()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
