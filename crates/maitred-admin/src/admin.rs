//! [`Admin`]: the observers of every pool plus the daemon's lifecycle flags.

use crate::access::DetailToken;
use crate::console::Console;
use crate::control::{ControlChannel, ControlRequest};
use crate::metrics::Exporter;
use crate::observer::PoolObserver;
use crate::reach::Reach;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How often [`Admin::wait_until_idle`] looks at the pools.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// Shared by the daemon (which registers pools and flips the lifecycle flags) and the
/// HTTP server (which reads them).
pub struct Admin {
    observers: RwLock<Vec<Arc<dyn PoolObserver>>>,
    listening: AtomicBool,
    draining: AtomicBool,
    reach: Mutex<HashMap<String, Reach>>,
    exporter: Exporter,
    control: ControlChannel,
    console: Console,
    /// Why the last configuration reload was refused, until a reload succeeds.
    reload_error: Mutex<Option<String>>,
    /// The bearer token that opens the HTTP detail surface to non-loopback peers.
    detail_token: DetailToken,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("pools", &self.observers().len())
            .field("listening", &self.listening.load(Ordering::Relaxed))
            .field("draining", &self.is_draining())
            .finish_non_exhaustive()
    }
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            observers: RwLock::new(Vec::new()),
            listening: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            reach: Mutex::new(HashMap::new()),
            exporter: Exporter::new(),
            control: ControlChannel::default(),
            console: Console::default(),
            reload_error: Mutex::new(None),
            detail_token: DetailToken::default(),
        }
    }
}

impl Admin {
    pub fn new() -> Arc<Admin> {
        Arc::new(Admin::default())
    }

    /// The `[admin] detail_token` (set at start and after each reload) and the access rule
    /// of the HTTP endpoint's detail surface.
    pub fn detail_token(&self) -> &DetailToken {
        &self.detail_token
    }

    /// Adds a pool; it shows in `/metrics`, `/pools` and readiness from now on.
    pub fn register(&self, observer: Arc<dyn PoolObserver>) {
        match self.observers.write() {
            Ok(mut g) => g.push(observer),
            Err(poisoned) => poisoned.into_inner().push(observer),
        }
    }

    /// Removes the pool `name` of `protocol` (a reload dropped it from the configuration).
    pub fn unregister(&self, protocol: &str, name: &str) {
        let keep = |o: &Arc<dyn PoolObserver>| !(o.protocol() == protocol && o.name() == name);
        match self.observers.write() {
            Ok(mut g) => g.retain(keep),
            Err(poisoned) => poisoned.into_inner().retain(keep),
        }
    }

    /// The admin console's users, configuration rows and commands.
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// Asks the daemon to reload or shut down; false when the daemon does not listen.
    pub fn request_control(&self, request: ControlRequest) -> bool {
        self.control.send(request)
    }

    /// The daemon's end of [`request_control`](Self::request_control); only the first
    /// caller gets it.
    pub fn take_control_receiver(
        &self,
    ) -> Option<tokio::sync::mpsc::UnboundedReceiver<ControlRequest>> {
        self.control.take_receiver()
    }

    /// Records the outcome of a configuration reload: `Some(reason)` when the new file was
    /// refused (the running configuration stays), `None` after a successful one. Shown on
    /// `/readyz` (which stays ready: the old configuration still serves).
    pub fn set_reload_error(&self, error: Option<String>) {
        match self.reload_error.lock() {
            Ok(mut g) => *g = error,
            Err(poisoned) => *poisoned.into_inner() = error,
        }
    }

    /// Why the last reload was refused, if it was.
    pub fn reload_error(&self) -> Option<String> {
        match self.reload_error.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The registered pools, in registration order.
    pub fn observers(&self) -> Vec<Arc<dyn PoolObserver>> {
        match self.observers.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Every listener accepts clients.
    pub fn set_listening(&self) {
        self.listening.store(true, Ordering::SeqCst);
    }

    /// Draining from now on: readiness fails, listeners are being closed.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// `Ok` when ready for traffic, else a reason a person can act on.
    pub fn readiness(&self) -> Result<(), String> {
        if self.is_draining() {
            return Err("draining: maitred is shutting down".to_owned());
        }
        if !self.listening.load(Ordering::SeqCst) {
            return Err("starting: listeners are not up yet".to_owned());
        }
        let now = Instant::now();
        let mut reasons = Vec::new();
        let mut reach = match self.reach.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        for o in self.observers() {
            let stats = o.stats();
            let key = format!("{}/{}", o.protocol(), o.name());
            let verdict =
                reach
                    .entry(key)
                    .or_default()
                    .observe(stats.connects, stats.connect_failures, now);
            if let Some(failures) = verdict {
                reasons.push(format!(
                    "pool {} ({}): server unreachable ({failures} failed connection attempts since the last success)",
                    o.name(),
                    o.protocol()
                ));
            } else if !o.reached_server() {
                reasons.push(format!(
                    "pool {} ({}): has not reached its server yet",
                    o.name(),
                    o.protocol()
                ));
            }
        }
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(reasons.join("\n"))
        }
    }

    /// The Prometheus text exposition of every pool's gauges and counters.
    pub fn render_metrics(&self) -> String {
        self.exporter.render(&self.observers(), self.is_draining())
    }

    /// `/pools`: one JSON object per pool.
    pub fn pools_json(&self) -> Value {
        let pools: Vec<Value> = self
            .observers()
            .iter()
            .map(|o| {
                let s = o.stats();
                let mut counters = serde_json::Map::new();
                for (k, v) in [
                    ("checkouts", s.checkouts),
                    ("queue_timeouts", s.queue_timeouts),
                    ("queue_full", s.queue_full_rejections),
                    ("server_connects", s.connects),
                    ("server_connect_failures", s.connect_failures),
                    ("closed_broken", s.closed_broken),
                    ("closed_expired", s.closed_expired),
                    ("resets", s.resets),
                    ("reset_failures", s.reset_failures),
                    ("sent_ahead", s.sent_ahead),
                    ("sent_ahead_lost", s.sent_ahead_lost),
                ] {
                    counters.insert(k.to_owned(), json!(v));
                }
                for (k, v) in o.extra_counters() {
                    let k = k.strip_suffix("_total").unwrap_or(k);
                    counters.insert(k.to_owned(), json!(v));
                }
                for c in o.labeled_counters() {
                    let k = c.name.strip_suffix("_total").unwrap_or(c.name);
                    let entry = counters.entry(k.to_owned()).or_insert_with(|| json!({}));
                    if let Some(m) = entry.as_object_mut() {
                        m.insert(c.value.to_owned(), json!(c.count));
                    }
                }
                let mut gauges = serde_json::Map::new();
                for (k, v) in o.extra_gauges() {
                    gauges.insert(k.to_owned(), json!(v));
                }
                json!({
                    "name": o.name(),
                    "protocol": o.protocol(),
                    "listen": o.listen().to_string(),
                    "size": s.state.max_size,
                    "open": s.state.size,
                    "idle": s.state.idle,
                    "busy": s.state.busy,
                    "waiting": s.state.waiting,
                    "checkout_wait_seconds_total": s.checkout_wait_total.as_secs_f64(),
                    "reached_server": o.reached_server(),
                    "counters": counters,
                    "gauges": gauges,
                })
            })
            .collect();
        Value::Array(pools)
    }

    /// Waits until no pool has a server connection leased (or being opened or reset),
    /// at most `timeout`; true when they all went idle in time.
    pub async fn wait_until_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let busy: usize = self.observers().iter().map(|o| o.state().busy).sum();
            if busy == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(busy, "drain timeout: server connections still in use");
                return false;
            }
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use maitred_pool::{PoolState, PoolStats};
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicU64;

    /// A pool whose numbers the test sets.
    #[derive(Default)]
    pub(crate) struct FakePool {
        pub(crate) busy: AtomicU64,
        pub(crate) connects: AtomicU64,
        pub(crate) failures: AtomicU64,
    }

    impl PoolObserver for FakePool {
        fn name(&self) -> &str {
            "app\"db"
        }
        fn protocol(&self) -> &'static str {
            "postgres"
        }
        fn listen(&self) -> SocketAddr {
            SocketAddr::from(([127, 0, 0, 1], 6432))
        }
        fn state(&self) -> PoolState {
            let busy = self.busy.load(Ordering::SeqCst) as usize;
            PoolState {
                size: busy + 1,
                idle: 1,
                busy,
                waiting: 2,
                max_size: 10,
            }
        }
        fn stats(&self) -> PoolStats {
            PoolStats {
                state: self.state(),
                checkouts: 7,
                checkout_wait_buckets: [0, 3, 2, 0, 0, 0, 0, 1, 1, 0, 0],
                checkout_wait_total: Duration::from_millis(1500),
                queue_timeouts: 1,
                queue_full_rejections: 3,
                connects: self.connects.load(Ordering::SeqCst),
                connect_failures: self.failures.load(Ordering::SeqCst),
                closed_broken: 0,
                closed_expired: 0,
                resets: 0,
                reset_failures: 0,
                sent_ahead: 0,
                sent_ahead_lost: 0,
            }
        }
        fn extra_counters(&self) -> Vec<(&'static str, u64)> {
            vec![("transactions_total", 5)]
        }
        fn labeled_counters(&self) -> Vec<crate::LabeledCounter> {
            vec![crate::LabeledCounter {
                name: "pins_total",
                label: "reason",
                value: "temp_table",
                count: 4,
            }]
        }
        fn extra_gauges(&self) -> Vec<(&'static str, f64)> {
            vec![("clients_pinned", 2.0)]
        }
    }

    #[test]
    fn readiness_follows_listeners_servers_and_draining() {
        let admin = Admin::new();
        let pool = Arc::new(FakePool::default());
        admin.register(pool.clone());
        assert!(admin
            .readiness()
            .expect_err("not listening")
            .contains("starting"));
        admin.set_listening();
        let err = admin.readiness().expect_err("never connected");
        assert!(err.contains("has not reached its server"), "{err}");
        pool.connects.store(1, Ordering::SeqCst);
        assert_eq!(admin.readiness(), Ok(()));
        pool.failures.store(4, Ordering::SeqCst);
        let err = admin.readiness().expect_err("unreachable");
        assert!(err.contains("server unreachable (4 failed"), "{err}");
        pool.connects.store(2, Ordering::SeqCst);
        assert_eq!(admin.readiness(), Ok(()));
        admin.start_draining();
        assert!(admin
            .readiness()
            .expect_err("draining")
            .contains("draining"));
    }

    #[test]
    fn pools_json_names_every_field() {
        let admin = Admin::new();
        admin.register(Arc::new(FakePool::default()));
        let v = admin.pools_json();
        let p = &v[0];
        assert_eq!(p["name"], "app\"db");
        assert_eq!(p["protocol"], "postgres");
        assert_eq!(p["listen"], "127.0.0.1:6432");
        assert_eq!(p["size"], 10);
        assert_eq!(p["idle"], 1);
        assert_eq!(p["waiting"], 2);
        assert_eq!(p["counters"]["checkouts"], 7);
        assert_eq!(p["counters"]["transactions"], 5);
        assert_eq!(p["counters"]["pins"]["temp_table"], 4);
        assert_eq!(p["gauges"]["clients_pinned"], 2.0);
    }

    #[test]
    fn unregister_removes_only_the_named_pool_of_that_protocol() {
        let admin = Admin::new();
        admin.register(Arc::new(FakePool::default()));
        admin.unregister("mysql", "app\"db");
        assert_eq!(admin.observers().len(), 1);
        admin.unregister("postgres", "app\"db");
        assert!(admin.observers().is_empty());
    }

    #[tokio::test]
    async fn control_requests_reach_the_one_receiver() {
        let admin = Admin::new();
        let mut rx = admin.take_control_receiver().expect("first taker");
        assert!(admin.take_control_receiver().is_none());
        assert!(admin.request_control(ControlRequest::Reload));
        assert_eq!(rx.recv().await, Some(ControlRequest::Reload));
        drop(rx);
        assert!(!admin.request_control(ControlRequest::Shutdown));
        admin.set_reload_error(Some("bad key".into()));
        assert_eq!(admin.reload_error().as_deref(), Some("bad key"));
        admin.set_reload_error(None);
        assert_eq!(admin.reload_error(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_until_idle_returns_when_busy_drops_or_times_out() {
        let admin = Admin::new();
        let pool = Arc::new(FakePool::default());
        admin.register(pool.clone());
        pool.busy.store(1, Ordering::SeqCst);
        assert!(!admin.wait_until_idle(Duration::from_secs(1)).await);
        let waiter = tokio::spawn({
            let admin = admin.clone();
            async move { admin.wait_until_idle(Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        pool.busy.store(0, Ordering::SeqCst);
        assert!(waiter.await.expect("task"));
    }
}
