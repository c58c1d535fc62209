//! The three ways of loading a server or proxy:
//!
//! - [`steady`]: N clients connect first, then each loops one unit of work for the
//!   duration; throughput, latency percentiles and errors by kind.
//! - [`storm`]: N clients each loop connect, one unit of work, disconnect (what
//!   serverless functions do); cycles (= connections) per second and errors.
//! - [`idle`]: N clients log in and sit idle; resident memory of a given process per client.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::stats::{address_of, progress, Latency, Live, Local, RunResult};
use crate::target::{connect, Conn, Protocol, Workload};

/// What to run against what.
#[derive(Clone, Debug)]
pub struct Spec {
    pub url: String,
    pub protocol: Protocol,
    pub workload: Workload,
    pub clients: usize,
    pub duration: Duration,
    pub rows: u32,
    /// Bound on one connect or one unit of work; past it the unit counts as "timeout".
    pub op_timeout: Duration,
    pub labels: BTreeMap<String, String>,
}

impl Spec {
    fn result(&self, mode: &str, total: Local, seconds: f64) -> RunResult {
        let ops = total.hist.len();
        RunResult {
            mode: mode.to_owned(),
            protocol: self.protocol.name().to_owned(),
            workload: self.workload.name().to_owned(),
            address: address_of(&self.url),
            labels: self.labels.clone(),
            clients: self.clients,
            seconds,
            ops,
            ops_per_s: if seconds > 0.0 {
                ops as f64 / seconds
            } else {
                0.0
            },
            latency_ms: Latency::of(&total.hist),
            error_total: total.errors.values().sum(),
            errors: total.errors,
            ..RunResult::default()
        }
    }
}

async fn timed_connect(spec: &Spec) -> Result<Conn, String> {
    match tokio::time::timeout(spec.op_timeout, connect(&spec.url, spec.protocol)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(kind)) => Err(format!("connect: {kind}")),
        Err(_) => Err("connect: timeout".to_owned()),
    }
}

/// Joins the tasks and merges what they measured.
async fn merge_all(tasks: Vec<tokio::task::JoinHandle<Local>>) -> Local {
    let mut total = Local::new();
    for t in tasks {
        match t.await {
            Ok(local) => total.merge(local),
            Err(_) => {
                total.errors.insert("client task panicked".to_owned(), 1);
            }
        }
    }
    total
}

pub async fn steady(spec: Spec) -> RunResult {
    let spec = Arc::new(spec);
    let live = Arc::new(Live::default());
    // Everyone connects first, so the measured window holds only work.
    let connecting: Vec<_> = (0..spec.clients)
        .map(|_| {
            let spec = Arc::clone(&spec);
            tokio::spawn(async move { timed_connect(&spec).await })
        })
        .collect();
    let mut first = Vec::with_capacity(spec.clients);
    let mut connect_errors = Local::new();
    for c in connecting {
        match c.await {
            Ok(Ok(conn)) => {
                live.connected.fetch_add(1, Ordering::Relaxed);
                first.push(Some(conn));
            }
            Ok(Err(kind)) => {
                connect_errors.error(kind, &live);
                first.push(None);
            }
            Err(_) => first.push(None),
        }
    }
    let label = format!("steady {} x{}", spec.protocol.name(), spec.clients);
    let ticker = progress(label, Arc::clone(&live), spec.duration);
    let start = Instant::now();
    let deadline = start + spec.duration;
    let tasks: Vec<_> = first
        .into_iter()
        .map(|conn| {
            let spec = Arc::clone(&spec);
            let live = Arc::clone(&live);
            tokio::spawn(async move { steady_client(&spec, &live, conn, deadline).await })
        })
        .collect();
    let mut total = merge_all(tasks).await;
    ticker.abort();
    total.merge(connect_errors);
    spec.result("steady", total, spec.duration.as_secs_f64())
}

async fn steady_client(
    spec: &Spec,
    live: &Live,
    mut conn: Option<Conn>,
    deadline: Instant,
) -> Local {
    let mut local = Local::new();
    while Instant::now() < deadline {
        let Some(c) = conn.as_mut() else {
            // Refused at the start (or dropped since): try again, as an application would.
            match timed_connect(spec).await {
                Ok(c) => {
                    live.connected.fetch_add(1, Ordering::Relaxed);
                    conn = Some(c);
                }
                Err(kind) => {
                    local.error(kind, live);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            continue;
        };
        let t = Instant::now();
        let outcome = tokio::time::timeout(spec.op_timeout, c.work(spec.workload, spec.rows)).await;
        let done = Instant::now();
        match outcome {
            // A unit that ends after the deadline is outside the window: not counted.
            Ok(Ok(())) if done <= deadline => local.ok(done - t, live),
            Ok(Ok(())) => {}
            Ok(Err(kind)) => {
                let broken = c.is_broken(&kind);
                local.error(kind, live);
                if broken {
                    drop_conn(&mut conn, live).await;
                }
            }
            Err(_) => {
                local.error("timeout".to_owned(), live);
                drop_conn(&mut conn, live).await;
            }
        }
    }
    if conn.is_some() {
        drop_conn(&mut conn, live).await;
    }
    local
}

async fn drop_conn(conn: &mut Option<Conn>, live: &Live) {
    if let Some(c) = conn.take() {
        live.connected.fetch_sub(1, Ordering::Relaxed);
        c.close().await;
    }
}

pub async fn storm(spec: Spec) -> RunResult {
    let spec = Arc::new(spec);
    let live = Arc::new(Live::default());
    let label = format!("storm {} x{}", spec.protocol.name(), spec.clients);
    let ticker = progress(label, Arc::clone(&live), spec.duration);
    let deadline = Instant::now() + spec.duration;
    let tasks: Vec<_> = (0..spec.clients)
        .map(|_| {
            let spec = Arc::clone(&spec);
            let live = Arc::clone(&live);
            tokio::spawn(async move { storm_client(&spec, &live, deadline).await })
        })
        .collect();
    let total = merge_all(tasks).await;
    ticker.abort();
    spec.result("storm", total, spec.duration.as_secs_f64())
}

async fn storm_client(spec: &Spec, live: &Live, deadline: Instant) -> Local {
    let mut local = Local::new();
    while Instant::now() < deadline {
        let t = Instant::now();
        let mut conn = match timed_connect(spec).await {
            Ok(c) => c,
            Err(kind) => {
                local.error(kind, live);
                // A refused function retries a little later, not in a hot loop.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        live.connected.fetch_add(1, Ordering::Relaxed);
        let outcome =
            tokio::time::timeout(spec.op_timeout, conn.work(spec.workload, spec.rows)).await;
        conn.close().await;
        live.connected.fetch_sub(1, Ordering::Relaxed);
        let done = Instant::now();
        match outcome {
            Ok(Ok(())) if done <= deadline => local.ok(done - t, live),
            Ok(Ok(())) => {}
            Ok(Err(kind)) => local.error(kind, live),
            Err(_) => local.error("timeout".to_owned(), live),
        }
    }
    local
}

/// Resident memory of `pid` in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Logs `spec.clients` clients in (64 at a time), checks a few of them work, waits for the
/// proxy to settle and reports (RSS after − RSS before) / clients of process `pid`.
pub async fn idle(spec: Spec, pid: u32) -> Result<RunResult, String> {
    const AT_ONCE: usize = 64;
    let before = rss_kib(pid).ok_or(format!("cannot read /proc/{pid}/status"))?;
    let spec = Arc::new(spec);
    let live = Arc::new(Live::default());
    let ticker = progress(
        format!("idle {} x{}", spec.protocol.name(), spec.clients),
        Arc::clone(&live),
        Duration::ZERO,
    );
    let start = Instant::now();
    let mut held = Vec::with_capacity(spec.clients);
    let mut local = Local::new();
    let mut opened = 0;
    while opened < spec.clients {
        let batch = AT_ONCE.min(spec.clients - opened);
        let tasks: Vec<_> = (0..batch)
            .map(|_| {
                let spec = Arc::clone(&spec);
                tokio::spawn(async move { timed_connect(&spec).await })
            })
            .collect();
        for t in tasks {
            match t.await {
                Ok(Ok(c)) => {
                    live.connected.fetch_add(1, Ordering::Relaxed);
                    held.push(c);
                }
                Ok(Err(kind)) => local.error(kind, &live),
                Err(_) => local.error("client task panicked".to_owned(), &live),
            }
        }
        opened += batch;
    }
    for c in held.iter_mut().take(10) {
        let t = Instant::now();
        match c.work(spec.workload, spec.rows).await {
            Ok(()) => local.ok(t.elapsed(), &live),
            Err(kind) => local.error(kind, &live),
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid).ok_or(format!("process {pid} exited"))?;
    ticker.abort();
    let n = held.len().max(1) as f64;
    let mut result = spec.result("idle", local, start.elapsed().as_secs_f64());
    result.clients = held.len();
    result.rss_before_kib = Some(before);
    result.rss_after_kib = Some(after);
    result.bytes_per_client = Some(after.saturating_sub(before) as f64 * 1024.0 / n);
    for c in held {
        c.close().await;
    }
    Ok(result)
}
