//! Commands with a deadline, and [`Maitred`]: a running maitred process, killed on drop.

use super::*;
use std::fmt;
use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
pub(crate) fn listen_arg(args: &[&str]) -> Option<String> {
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
