//! What a run measures: a latency histogram and errors by kind per client task (merged at
//! the end, so the hot path takes no lock), shared counters for the progress line, and the
//! JSON result.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Latencies are recorded in microseconds, 1 µs to 60 s, 3 significant digits.
const MAX_US: u64 = 60_000_000;

/// One client task's measurements.
pub struct Local {
    pub hist: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
}

impl Local {
    pub fn new() -> Local {
        Local {
            hist: Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"),
            errors: BTreeMap::new(),
        }
    }

    pub fn ok(&mut self, took: Duration, live: &Live) {
        let us = (took.as_micros() as u64).clamp(1, MAX_US);
        self.hist.saturating_record(us);
        live.ops.fetch_add(1, Ordering::Relaxed);
    }

    pub fn error(&mut self, kind: String, live: &Live) {
        *self.errors.entry(kind).or_default() += 1;
        live.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn merge(&mut self, other: Local) {
        let _ = self.hist.add(&other.hist);
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
    }
}

/// Counters every task bumps, read by the progress line.
#[derive(Default)]
pub struct Live {
    pub ops: AtomicU64,
    pub errors: AtomicU64,
    pub connected: AtomicU64,
}

/// Prints `label: 3s/10s  12345 ops  4115/s  0 errors  200 connected` on stderr once a
/// second until the returned handle is aborted.
pub fn progress(label: String, live: Arc<Live>, total: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut last_ops = 0;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        // A busy runtime delays ticks; never print the missed ones in a burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let ops = live.ops.load(Ordering::Relaxed);
            let of_total = if total.is_zero() {
                String::new()
            } else {
                format!("/{}s", total.as_secs())
            };
            eprintln!(
                "{label}: {:>3.0}s{of_total}  {ops} ops  {}/s  {} errors  {} connected",
                start.elapsed().as_secs_f64(),
                ops - last_ops,
                live.errors.load(Ordering::Relaxed),
                live.connected.load(Ordering::Relaxed),
            );
            last_ops = ops;
        }
    })
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// The result of one `steady`, `storm` or `idle` run (the `--json` file).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunResult {
    /// "steady", "storm" or "idle".
    pub mode: String,
    pub protocol: String,
    pub workload: String,
    /// host:port only: never the user or password.
    pub address: String,
    /// Free-form `--label key=value` pairs (compare.sh sets target and round).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub clients: usize,
    pub seconds: f64,
    /// Completed units of work (steady), or connect-work-disconnect cycles (storm).
    pub ops: u64,
    pub ops_per_s: f64,
    /// Per unit (steady) or per whole cycle (storm).
    pub latency_ms: Latency,
    pub errors: BTreeMap<String, u64>,
    pub error_total: u64,
    /// idle: resident memory of the watched process before and after, and per client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_before_kib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_after_kib: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_client: Option<f64>,
}

impl RunResult {
    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or("")
    }

    /// Writes the result as pretty JSON to `path`, and a one-line summary to stdout.
    pub fn emit(&self, json: Option<&std::path::Path>) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        if let Some(path) = json {
            std::fs::write(path, format!("{text}\n"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        let l = &self.latency_ms;
        match self.mode.as_str() {
            "idle" => println!(
                "idle {} {}: {} clients, {} errors, {:.0} bytes per client",
                self.protocol,
                self.address,
                self.clients,
                self.error_total,
                self.bytes_per_client.unwrap_or(0.0)
            ),
            _ => println!(
                "{} {} {} {}: {} clients, {:.1}s, {} ops, {:.0}/s, latency ms p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}, errors {} {:?}",
                self.mode, self.protocol, self.workload, self.address, self.clients, self.seconds,
                self.ops, self.ops_per_s, l.p50, l.p90, l.p99, l.p999, l.max, self.error_total, self.errors
            ),
        }
        Ok(())
    }
}

/// `host:port` of a URL, without user or password (for results and messages).
pub fn address_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or("?"),
            u.port().map(|p| p.to_string()).unwrap_or_default()
        ),
        Err(_) => "?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_hides_credentials() {
        assert_eq!(
            address_of("postgres://app:app_secret@127.0.0.1:5432/app"),
            "127.0.0.1:5432"
        );
        assert_eq!(
            address_of("mongodb://app:app_secret@127.0.0.1:27017/app?authSource=admin"),
            "127.0.0.1:27017"
        );
    }

    #[test]
    fn merged_histograms_and_errors() {
        let live = Live::default();
        let mut a = Local::new();
        let mut b = Local::new();
        for ms in 1..=100 {
            a.ok(Duration::from_millis(ms), &live);
        }
        b.ok(Duration::from_secs(1), &live);
        a.error("io".into(), &live);
        b.error("io".into(), &live);
        b.error("postgres 53300".into(), &live);
        a.merge(b);
        assert_eq!(a.hist.len(), 101);
        assert_eq!(a.errors["io"], 2);
        assert_eq!(a.errors["postgres 53300"], 1);
        assert_eq!(live.ops.load(Ordering::Relaxed), 101);
        let l = Latency::of(&a.hist);
        assert!((49.0..=52.0).contains(&l.p50), "{l:?}");
        assert!(l.max >= 999.0, "{l:?}");
    }
}
