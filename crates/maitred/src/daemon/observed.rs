//! What the admin endpoint and console know of a pool beyond the pool core's numbers:
//! its clients (state, traffic, KILL), client-facing database, mode, and server user and
//! address. The same for every protocol, so every protocol's pools show and obey alike
//! ([`Observed`]).

use super::protocol::{PoolHandle, ProtocolPool};
use maitred_admin::{LabeledCounter, PoolClients, PoolObserver};
use maitred_config::model::PoolConfig;
use maitred_pool::{Manager, PoolState, PoolStats};
use std::net::SocketAddr;
use std::sync::Arc;

pub(super) struct PoolFacts {
    pub(super) clients: Arc<PoolClients>,
    pub(super) database: String,
    pub(super) mode: &'static str,
    pub(super) server_user: String,
    /// `host:port`, never credentials.
    pub(super) server_addr: String,
}

impl PoolFacts {
    pub(super) fn of(p: &PoolConfig, clients: Arc<PoolClients>) -> PoolFacts {
        PoolFacts {
            clients,
            database: p.client_database().to_owned(),
            mode: p.mode.as_str(),
            server_user: p.upstream.user.clone(),
            server_addr: format!("{}:{}", p.upstream.host, p.upstream.port),
        }
    }
}

/// A pool as the admin endpoint sees it: the pool core's numbers, the protocol's counters
/// ([`ProtocolPool`]) and the [`PoolFacts`]; PAUSE, RESUME and RECONNECT go to the pool
/// core.
pub(super) struct Observed<P, M: Manager> {
    pub(super) handle: PoolHandle<P, M>,
    pub(super) listen: SocketAddr,
    pub(super) facts: PoolFacts,
}

impl<P: ProtocolPool, M: Manager> PoolObserver for Observed<P, M> {
    fn name(&self) -> &str {
        self.handle.core.name()
    }
    fn protocol(&self) -> &'static str {
        P::PROTOCOL
    }
    fn listen(&self) -> SocketAddr {
        self.listen
    }
    fn state(&self) -> PoolState {
        self.handle.core.state()
    }
    fn stats(&self) -> PoolStats {
        self.handle.core.stats()
    }
    fn extra_counters(&self) -> Vec<(&'static str, u64)> {
        self.handle.pool.numbers().counters
    }
    fn labeled_counters(&self) -> Vec<LabeledCounter> {
        self.handle.pool.numbers().labeled
    }
    fn extra_gauges(&self) -> Vec<(&'static str, f64)> {
        let mut gauges = self.handle.pool.numbers().gauges;
        if let Some(fleet) = self.handle.core.fleet() {
            gauges.extend(super::fleet::gauges(&fleet));
        }
        gauges
    }
    fn clients(&self) -> Option<Arc<PoolClients>> {
        Some(self.facts.clients.clone())
    }
    fn database(&self) -> String {
        self.facts.database.clone()
    }
    fn mode(&self) -> &'static str {
        self.facts.mode
    }
    fn server_user(&self) -> String {
        self.facts.server_user.clone()
    }
    fn server_addr(&self) -> String {
        self.facts.server_addr.clone()
    }
    fn pause(&self) -> bool {
        self.handle.core.pause();
        true
    }
    fn resume(&self) -> bool {
        self.handle.core.resume();
        true
    }
    fn is_paused(&self) -> bool {
        self.handle.core.is_paused()
    }
    fn reconnect(&self) -> bool {
        self.handle.core.reconnect();
        true
    }
}
