//! Soak: a bounded run of client churn (connect, a few transactions, disconnect) through
//! maitred, with pool resizes by reload (SIGHUP), while its server connections are reset, closed and refused by a fault relay
//! (and, when the cluster's data directory is known and the run is long enough, the real
//! PostgreSQL restarted), sampling maitred's resident memory and open file descriptors
//! every second. Both must stay flat after the warm-up.
//!
//! `MAITRED_SOAK_SECS` sets the length (default 15 s, the suite's short version); e.g.
//! `MAITRED_SOAK_SECS=300 cargo test -p maitred-e2e --test soak_e2e -- --nocapture`
//! for the long run whose figures are in docs/reliability.md.

#[path = "fault_support.rs"]
mod fault_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fault_support::*;
use maitred_testkit::fault_relay::Fault;
use maitred_testkit::{self as kit};

const DEFAULT_SECS: u64 = 15;
/// Client workers churning at once.
const WORKERS: usize = 8;
const POOL: usize = 5;
/// Resident memory may grow this much from the end of the warm-up to the end of the run
/// (allocator slack and lazily grown caches, not a per-client leak).
const RSS_SLACK_KB: u64 = 4 * 1024;
/// How often a real server restart happens, when the cluster can be restarted.
const REAL_RESTART_EVERY: Duration = Duration::from_secs(20);

/// The pool's settings with `size` server connections.
fn pool_extra(size: usize) -> String {
    format!("size = {size}\nserver_connect_timeout = \"2s\"\nqueue_timeout = \"10s\"")
}

fn soak_secs() -> u64 {
    std::env::var("MAITRED_SOAK_SECS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&s| s >= 10)
        .unwrap_or(DEFAULT_SECS)
}

/// VmRSS of `pid` in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Open file descriptors of `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/<pid>/fd")
        .count()
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    rss_kb: u64,
    fds: usize,
    /// maitred's server connections open through the relay at that moment.
    server_conns: usize,
}

/// Connect, three short transactions, disconnect; again until `stop`.
async fn churn(url: String, stop: Arc<AtomicBool>, ok: Arc<AtomicU64>, failed: Arc<AtomicU64>) {
    while !stop.load(Ordering::SeqCst) {
        let Ok((c, h)) = connect(&url).await else {
            failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        for i in 0..3 {
            let r = tokio::time::timeout(
                Duration::from_secs(30),
                c.simple_query(&format!("BEGIN; SELECT {i}; COMMIT")),
            )
            .await
            .expect("a transaction hung for 30 s");
            match r {
                Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                Err(_) => failed.fetch_add(1, Ordering::Relaxed),
            };
        }
        drop(c);
        let _ = h.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_file_descriptors_stay_flat_under_churn_and_faults() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let secs = soak_secs();
    let run = Duration::from_secs(secs);
    let warm_up = Duration::from_secs((secs / 3).max(5));
    let mut b = start_behind_relay(&pg, &pool_extra(POOL));
    let pid = b.maitred.pid();
    let restart = kit::pg_server::pg_control().filter(|_| run >= REAL_RESTART_EVERY * 2);

    // Quiescent baseline: one client served, then gone; no server connections.
    wait_until_served(&b.client_url, Duration::from_secs(10)).await;
    b.relay.drop_all();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base_fds = fd_count(pid);

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            tokio::spawn(churn(
                b.client_url.clone(),
                Arc::clone(&stop),
                Arc::clone(&ok),
                Arc::clone(&failed),
            ))
        })
        .collect();

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut tick = 0u64;
    let mut last_real_restart = Instant::now();
    let mut real_restarts = 0;
    let mut resizes = 0;
    while started.elapsed() < run {
        tokio::time::sleep(Duration::from_secs(1)).await;
        tick += 1;
        // A fault every 3 s, in turn: reset, clean close, a one-second "restart".
        match tick % 9 {
            3 => b.relay.reset_all(),
            6 => b.relay.drop_all(),
            0 => {
                b.relay.set_fault(Fault::Refuse);
                b.relay.reset_all();
                tokio::time::sleep(Duration::from_millis(1000)).await;
                b.relay.set_fault(Fault::Pass);
            }
            _ => {}
        }
        // A reload (SIGHUP) every 5 s, the pool size alternating between 3 and POOL.
        if tick % 5 == 2 {
            resizes += 1;
            let size = if resizes % 2 == 1 { 3 } else { POOL };
            tokio::task::block_in_place(|| b.reload(&pool_extra(size)));
        }
        if let Some(ctl) = restart.clone() {
            if last_real_restart.elapsed() >= REAL_RESTART_EVERY {
                tokio::task::spawn_blocking(move || ctl.restart(Duration::from_secs(60)))
                    .await
                    .expect("pg_ctl restart");
                last_real_restart = Instant::now();
                real_restarts += 1;
            }
        }
        if let Some(status) = b.maitred.try_exit_status() {
            panic!("maitred exited during the soak with {status}");
        }
        samples.push(Sample {
            at: started.elapsed(),
            rss_kb: rss_kb(pid),
            fds: fd_count(pid),
            server_conns: b.relay.open(),
        });
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        within(60, "churn worker", w).await.expect("worker");
    }
    // Let the last clients' sessions end inside maitred.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let end_rss = rss_kb(pid);
    let end_fds = fd_count(pid);
    let end_server_conns = b.relay.open();

    let warm = samples
        .iter()
        .rev()
        .find(|s| s.at <= warm_up)
        .copied()
        .unwrap_or(samples[0]);
    let peak_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    let peak_rss = samples.iter().map(|s| s.rss_kb).max().unwrap_or(0);
    let transactions = ok.load(Ordering::Relaxed);
    let failures = failed.load(Ordering::Relaxed);
    eprintln!(
        "soak {secs}s: {transactions} transactions ok, {failures} failed (faults), \
         {} server connects, {resizes} pool resizes (SIGHUP), {real_restarts} real server restarts",
        b.relay.accepted()
    );
    eprintln!(
        "RSS kB: start {} warm {} peak {peak_rss} end {end_rss}; fds: base {base_fds} \
         warm {} peak {peak_fds} end {end_fds} (with {end_server_conns} server connections)",
        samples[0].rss_kb, warm.rss_kb, warm.fds
    );
    for s in samples.iter().step_by((samples.len() / 20).max(1)) {
        eprintln!(
            "  t={:>4}s rss={} kB fds={} server_conns={}",
            s.at.as_secs(),
            s.rss_kb,
            s.fds,
            s.server_conns
        );
    }

    assert!(transactions > 100, "too little traffic: {transactions}");
    assert!(
        end_rss <= warm.rss_kb + RSS_SLACK_KB,
        "RSS grew from {} kB after warm-up to {end_rss} kB at the end (slack {RSS_SLACK_KB} kB)",
        warm.rss_kb
    );
    // Back to the baseline once clients are gone, apart from the pool's own server
    // connections (at most the pool size, each one socket).
    assert!(
        end_fds <= base_fds + end_server_conns.min(POOL),
        "fds: {end_fds} at the end vs {base_fds} at the start (+{end_server_conns} server connections)"
    );
    assert!(
        peak_fds <= base_fds + WORKERS + 2 * POOL + 4,
        "fds peaked at {peak_fds} (base {base_fds}, {WORKERS} clients, pool {POOL})"
    );
}
