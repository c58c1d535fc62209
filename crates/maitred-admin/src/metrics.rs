//! `/metrics`: gauges and counters copied from the observers into a
//! metrics-exporter-prometheus recorder at scrape time, then rendered by its
//! `PrometheusHandle`; the checkout wait histogram (the pool core's buckets, summed up as
//! Prometheus wants them, plus sum and count) is appended in the same text format.
//!
//! Each scrape fills a fresh recorder: every value is read from the observers anyway, and a
//! pool that a reload removed (unregistered) then leaves no stale series behind.

use crate::clients::ClientState;
use crate::observer::PoolObserver;
use maitred_pool::CHECKOUT_WAIT_BUCKETS;
use metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::fmt::Write as _;
use std::sync::Arc;

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Gauges: (name, help).
const GAUGES: [(&str, &str); 5] = [
    (
        "maitred_pool_size",
        "Configured maximum of server connections of the pool.",
    ),
    (
        "maitred_server_connections",
        "Open server connections by state (idle, busy: leased, opening or resetting).",
    ),
    (
        "maitred_clients_waiting",
        "Clients queued for a server connection.",
    ),
    (
        "maitred_clients",
        "Client connections by state (active: holding a server connection, waiting: queued for one, idle: neither).",
    ),
    ("maitred_draining", "1 while maitred drains before exiting."),
];

/// Traffic counters: (name, help).
const TRAFFIC: [(&str, &str); 3] = [
    (
        "maitred_bytes_received_total",
        "Bytes read from clients.",
    ),
    ("maitred_bytes_sent_total", "Bytes written to clients."),
    (
        "maitred_queries_total",
        "Queries or commands forwarded to a server (PostgreSQL Query and Execute messages, MySQL commands, MongoDB requests).",
    ),
];

/// Core counters: (name, help).
const COUNTERS: [(&str, &str); 11] = [
    (
        "maitred_checkouts_total",
        "Server connections handed to clients.",
    ),
    (
        "maitred_queue_timeouts_total",
        "Clients that waited queue_timeout without getting a server connection.",
    ),
    (
        "maitred_queue_full_total",
        "Clients rejected because max_waiting were already queued.",
    ),
    (
        "maitred_server_connects_total",
        "Server connections opened.",
    ),
    (
        "maitred_server_connect_failures_total",
        "Failed or timed-out server connection attempts.",
    ),
    (
        "maitred_server_closed_broken_total",
        "Server connections closed as broken.",
    ),
    (
        "maitred_server_closed_expired_total",
        "Server connections closed by idle_timeout or max_lifetime.",
    ),
    (
        "maitred_server_resets_total",
        "Dirty server connections reset and reused.",
    ),
    (
        "maitred_server_reset_failures_total",
        "Dirty server connections closed because their reset failed.",
    ),
    (
        "maitred_sent_ahead_total",
        "Queued clients' queries written on a busy server connection behind the current one (send_ahead).",
    ),
    (
        "maitred_sent_ahead_lost_total",
        "Queries sent ahead whose server connection was lost before the hand-over (the client got an error).",
    ),
];

/// Renders `/metrics` (one [`Scrape`] per call).
#[derive(Default)]
pub(crate) struct Exporter;

impl Exporter {
    pub(crate) fn new() -> Exporter {
        Exporter
    }

    /// Copies every observer's numbers into a fresh recorder and renders the text.
    pub(crate) fn render(&self, observers: &[Arc<dyn PoolObserver>], draining: bool) -> String {
        Scrape::new().render(observers, draining)
    }
}

/// The recorder one scrape writes into, and its handle.
struct Scrape {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Scrape {
    fn new() -> Scrape {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        for (name, help) in GAUGES {
            recorder.describe_gauge(KeyName::from(name), None, SharedString::from(help));
        }
        for (name, help) in COUNTERS.into_iter().chain(TRAFFIC) {
            recorder.describe_counter(KeyName::from(name), None, SharedString::from(help));
        }
        Scrape { recorder, handle }
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>, value: f64) {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
            .set(value);
    }

    fn counter(&self, name: String, labels: Vec<Label>, value: u64) {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
            .absolute(value);
    }

    fn render(&self, observers: &[Arc<dyn PoolObserver>], draining: bool) -> String {
        self.gauge(
            "maitred_draining",
            Vec::new(),
            if draining { 1.0 } else { 0.0 },
        );
        let mut summary = String::new();
        for o in observers {
            let labels = || {
                vec![
                    Label::new("pool", o.name().to_owned()),
                    Label::new("protocol", o.protocol()),
                ]
            };
            let with = |k: &'static str, v: &'static str| {
                let mut l = labels();
                l.push(Label::new(k, v));
                l
            };
            let s = o.stats();
            self.gauge("maitred_pool_size", labels(), s.state.max_size as f64);
            self.gauge(
                "maitred_server_connections",
                with("state", "idle"),
                s.state.idle as f64,
            );
            self.gauge(
                "maitred_server_connections",
                with("state", "busy"),
                s.state.busy as f64,
            );
            self.gauge("maitred_clients_waiting", labels(), s.state.waiting as f64);
            match o.clients() {
                Some(clients) => {
                    let counts = clients.counts();
                    for state in ClientState::ALL {
                        self.gauge(
                            "maitred_clients",
                            with("state", state.as_str()),
                            counts.of(state) as f64,
                        );
                    }
                    let t = clients.traffic.totals();
                    for ((name, _), value) in TRAFFIC.iter().zip([t.received, t.sent, t.queries]) {
                        self.counter((*name).to_owned(), labels(), value);
                    }
                }
                None => self.gauge(
                    "maitred_clients",
                    with("state", "waiting"),
                    s.state.waiting as f64,
                ),
            }
            let core = [
                s.checkouts,
                s.queue_timeouts,
                s.queue_full_rejections,
                s.connects,
                s.connect_failures,
                s.closed_broken,
                s.closed_expired,
                s.resets,
                s.reset_failures,
                s.sent_ahead,
                s.sent_ahead_lost,
            ];
            for ((name, _), value) in COUNTERS.iter().zip(core) {
                self.counter((*name).to_owned(), labels(), value);
            }
            for (name, value) in o.extra_counters() {
                self.counter(format!("maitred_{name}"), labels(), value);
            }
            for c in o.labeled_counters() {
                let mut l = labels();
                l.push(Label::new(c.label, c.value));
                self.counter(format!("maitred_{}", c.name), l, c.count);
            }
            for (name, value) in o.extra_gauges() {
                self.recorder
                    .register_gauge(
                        &Key::from_parts(format!("maitred_{name}"), labels()),
                        &METADATA,
                    )
                    .set(value);
            }
            let l = format!(
                "pool=\"{}\",protocol=\"{}\"",
                escape(o.name()),
                escape(o.protocol())
            );
            let mut cumulative = 0;
            for (i, count) in s.checkout_wait_buckets.iter().enumerate() {
                cumulative += count;
                let le = CHECKOUT_WAIT_BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), |d| d.as_secs_f64().to_string());
                let _ = writeln!(
                    summary,
                    "maitred_checkout_wait_seconds_bucket{{{l},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                summary,
                "maitred_checkout_wait_seconds_sum{{{l}}} {}",
                s.checkout_wait_total.as_secs_f64()
            );
            let _ = writeln!(
                summary,
                "maitred_checkout_wait_seconds_count{{{l}}} {}",
                s.checkouts
            );
        }
        let mut text = self.handle.render();
        if !summary.is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(
                "# HELP maitred_checkout_wait_seconds Time clients waited for a server connection (queueing and connecting).\n\
                 # TYPE maitred_checkout_wait_seconds histogram\n",
            );
            text.push_str(&summary);
        }
        text
    }
}

/// Escapes a label value for the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use crate::admin::tests::FakePool;
    use crate::Admin;
    use std::sync::Arc;

    #[test]
    fn metrics_carry_pool_and_protocol_labels() {
        let admin = Admin::new();
        admin.register(Arc::new(FakePool::default()));
        let text = admin.render_metrics();
        let l = r#"pool="app\"db",protocol="postgres""#;
        for line in [
            format!("maitred_pool_size{{{l}}} 10"),
            format!("maitred_checkouts_total{{{l}}} 7"),
            format!("maitred_queue_full_total{{{l}}} 3"),
            format!("maitred_clients_waiting{{{l}}} 2"),
            format!("maitred_server_connections{{{l},state=\"idle\"}} 1"),
            format!("maitred_transactions_total{{{l}}} 5"),
            format!("maitred_pins_total{{{l},reason=\"temp_table\"}} 4"),
            format!("maitred_clients_pinned{{{l}}} 2"),
            format!("maitred_checkout_wait_seconds_sum{{{l}}} 1.5"),
            format!("maitred_checkout_wait_seconds_count{{{l}}} 7"),
            format!("maitred_checkout_wait_seconds_bucket{{{l},le=\"0.0001\"}} 0"),
            format!("maitred_checkout_wait_seconds_bucket{{{l},le=\"0.001\"}} 3"),
            format!("maitred_checkout_wait_seconds_bucket{{{l},le=\"0.005\"}} 5"),
            format!("maitred_checkout_wait_seconds_bucket{{{l},le=\"1\"}} 6"),
            format!("maitred_checkout_wait_seconds_bucket{{{l},le=\"+Inf\"}} 7"),
            "# TYPE maitred_checkouts_total counter".to_owned(),
            "# TYPE maitred_checkout_wait_seconds histogram".to_owned(),
            "maitred_draining 0".to_owned(),
        ] {
            assert!(
                text.lines().any(|x| x == line),
                "{line} missing from\n{text}"
            );
        }
    }

    #[test]
    fn an_unregistered_pool_leaves_no_series() {
        let admin = Admin::new();
        admin.register(Arc::new(FakePool::default()));
        let l = r#"pool="app\"db""#;
        assert!(admin.render_metrics().contains(l));
        admin.unregister("postgres", "app\"db");
        let text = admin.render_metrics();
        assert!(!text.contains(l), "stale series of a removed pool:\n{text}");
        assert!(text.lines().any(|x| x == "maitred_draining 0"), "{text}");
    }

    /// A pool whose clients and traffic are registered.
    struct WithClients {
        clients: Arc<crate::PoolClients>,
    }

    impl crate::PoolObserver for WithClients {
        fn name(&self) -> &str {
            "orders"
        }
        fn protocol(&self) -> &'static str {
            "mysql"
        }
        fn listen(&self) -> std::net::SocketAddr {
            std::net::SocketAddr::from(([127, 0, 0, 1], 3307))
        }
        fn state(&self) -> maitred_pool::PoolState {
            self.stats().state
        }
        fn stats(&self) -> maitred_pool::PoolStats {
            crate::admin::tests::FakePool::default().stats()
        }
        fn clients(&self) -> Option<Arc<crate::PoolClients>> {
            Some(self.clients.clone())
        }
    }

    #[test]
    fn clients_by_state_and_traffic_come_from_the_registry() {
        let admin = Admin::new();
        let clients = crate::PoolClients::new();
        admin.register(Arc::new(WithClients {
            clients: clients.clone(),
        }));
        let identity = crate::ClientIdentity {
            user: "u".into(),
            database: "d".into(),
            addr: None,
            tls: false,
        };
        let a = clients.register(identity.clone());
        let b = clients.register(identity.clone());
        let _c = clients.register(identity);
        a.set_state(crate::ClientState::Active);
        b.set_state(crate::ClientState::Waiting);
        clients.traffic.received(100);
        clients.traffic.sent(250);
        clients.traffic.query();
        let text = admin.render_metrics();
        let l = r#"pool="orders",protocol="mysql""#;
        for line in [
            format!("maitred_clients{{{l},state=\"active\"}} 1"),
            format!("maitred_clients{{{l},state=\"waiting\"}} 1"),
            format!("maitred_clients{{{l},state=\"idle\"}} 1"),
            format!("maitred_bytes_received_total{{{l}}} 100"),
            format!("maitred_bytes_sent_total{{{l}}} 250"),
            format!("maitred_queries_total{{{l}}} 1"),
            "# TYPE maitred_queries_total counter".to_owned(),
        ] {
            assert!(
                text.lines().any(|x| x == line),
                "{line} missing from\n{text}"
            );
        }
        drop(a);
        let text = admin.render_metrics();
        assert!(text
            .lines()
            .any(|x| x == format!("maitred_clients{{{l},state=\"active\"}} 0")));
    }
}
