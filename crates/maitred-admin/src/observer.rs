//! [`PoolObserver`]: the read-only view of one pool the admin endpoint needs.

use crate::clients::PoolClients;
use maitred_pool::{PoolState, PoolStats};
use std::net::SocketAddr;
use std::sync::Arc;

/// A counter with one extra label, e.g. `maitred_pins_total{reason="temp_table"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabeledCounter {
    /// Metric name without the `maitred_` prefix; ends in `_total`.
    pub name: &'static str,
    /// The label's name, e.g. `reason`.
    pub label: &'static str,
    /// The label's value, e.g. `temp_table`.
    pub value: &'static str,
    pub count: u64,
}

/// One configured pool as the admin endpoint sees it. Implemented by the binary for each
/// protocol's pool type (see docs/operations.md, "Adding a protocol").
///
/// Every method must be cheap and lock-free enough to call on each scrape.
pub trait PoolObserver: Send + Sync {
    /// The pool's configured name (the `pool` label).
    fn name(&self) -> &str;
    /// `postgres`, `mysql` or `mongodb` (the `protocol` label).
    fn protocol(&self) -> &'static str;
    /// The address clients connect to for this pool.
    fn listen(&self) -> SocketAddr;
    /// Current gauges.
    fn state(&self) -> PoolState;
    /// Gauges plus the pool core's counters.
    fn stats(&self) -> PoolStats;
    /// Protocol-specific counters, exported as `maitred_<name>` (so names should end in
    /// `_total`), e.g. `("transactions_total", n)`.
    fn extra_counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Protocol-specific counters with one label, exported as
    /// `maitred_<name>{<label>="<value>"}`, e.g. pins by reason.
    fn labeled_counters(&self) -> Vec<LabeledCounter> {
        Vec::new()
    }
    /// Protocol-specific gauges, exported as `maitred_<name>`, e.g. `("clients_pinned", n)`.
    fn extra_gauges(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    /// The pool's clients and their traffic, when the protocol registers them (clients by
    /// state, bytes and queries in `/metrics`; SHOW CLIENTS and KILL in the console).
    fn clients(&self) -> Option<Arc<PoolClients>> {
        None
    }
    /// The database name clients ask for (empty when the protocol has none to route by).
    fn database(&self) -> String {
        String::new()
    }
    /// The pooling mode (`transaction`, `session`, `statement`), empty when unknown.
    fn mode(&self) -> &'static str {
        ""
    }
    /// The user the pool's server connections log in as (empty when unknown).
    fn server_user(&self) -> String {
        String::new()
    }
    /// The server's address, `host:port` (never credentials).
    fn server_addr(&self) -> String {
        String::new()
    }
    /// Stops handing out server connections (clients queue) until [`resume`]; false when
    /// the pool cannot be paused.
    ///
    /// [`resume`]: PoolObserver::resume
    fn pause(&self) -> bool {
        false
    }
    /// Ends a pause; false when the pool cannot be paused.
    fn resume(&self) -> bool {
        false
    }
    fn is_paused(&self) -> bool {
        false
    }
    /// Retires every open server connection (idle ones now, leased ones when they come
    /// back); false when the pool cannot do that.
    fn reconnect(&self) -> bool {
        false
    }
    /// Whether the pool has opened at least one server connection since it started.
    fn reached_server(&self) -> bool {
        self.stats().connects > 0
    }
}
