//! What differs between the protocols' pools as the daemon runs them ([`ProtocolPool`],
//! implemented in `postgres.rs`, `mysql.rs` and `mongo.rs`), and the steps every
//! protocol's `start` takes alike ([`Starting`]: registering a pool, binding and serving;
//! grouping pools by address, [`ByAddress`]).

use super::live::{Live, Started};
use super::observed::{Observed, PoolFacts};
use super::DaemonError;
use maitred_admin::{Admin, LabeledCounter};
use maitred_config::model::PoolConfig;
use maitred_pool::{Manager, Pool};
use maitred_tls::ClientTls;
use std::collections::btree_map::{BTreeMap, Entry};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// One protocol's pool, as far as the admin endpoint and the reload see more of it than
/// its pool core.
pub(super) trait ProtocolPool: Send + Sync + 'static {
    /// The admin endpoint's protocol label (`postgres`, `mysql`, `mongodb`).
    const PROTOCOL: &'static str;

    /// The protocol's own numbers for the admin endpoint (none by default).
    fn numbers(&self) -> ProtocolNumbers {
        ProtocolNumbers::default()
    }

    /// Applies what a reload changed beyond the pool core's settings (users, upstream,
    /// pins); pushes to `waiting` the changed keys that need a restart.
    fn apply(&self, old: &PoolConfig, new: &PoolConfig, waiting: &mut Vec<&'static str>);

    /// Removed by a reload: what to close beyond the pool core.
    fn retire(&self) {}
}

/// A protocol's own numbers for the admin endpoint, beyond the pool core's (see
/// `maitred_admin::PoolObserver`).
#[derive(Default)]
pub(super) struct ProtocolNumbers {
    /// Counters, exported as `maitred_<name>` (names end in `_total`).
    pub(super) counters: Vec<(&'static str, u64)>,
    /// Counters with one label (pins by reason).
    pub(super) labeled: Vec<LabeledCounter>,
    pub(super) gauges: Vec<(&'static str, f64)>,
}

/// A running pool: the protocol's, and its pool core (a cheap handle to the same pool).
pub(super) struct PoolHandle<P, M: Manager> {
    pub(super) pool: Arc<P>,
    pub(super) core: Pool<M>,
}

impl<P, M: Manager> Clone for PoolHandle<P, M> {
    fn clone(&self) -> Self {
        PoolHandle {
            pool: self.pool.clone(),
            core: self.core.clone(),
        }
    }
}

/// What starting pools needs (the admin endpoint they register with; whether to probe
/// their servers) and what it produced.
pub(super) struct Starting<'a> {
    pub(super) admin: &'a Arc<Admin>,
    pub(super) probe: bool,
    pub(super) started: Started,
}

impl Starting<'_> {
    /// Registers a started pool with the admin endpoint (with `probe`, it also opens one
    /// server connection as soon as the server answers, so that /readyz can turn 200
    /// before the first client) and with the reload.
    pub(super) fn serve_pool<P: ProtocolPool, M: Manager>(
        &mut self,
        handle: PoolHandle<P, M>,
        listen: SocketAddr,
        facts: PoolFacts,
    ) {
        self.admin.register(Arc::new(Observed {
            handle: handle.clone(),
            listen,
            facts,
        }));
        if self.probe {
            super::lifecycle::probe_until_ready(&handle.core);
        }
        self.started.pools.push(Arc::new(Live(handle)));
    }

    /// Binds `addr` (SO_REUSEPORT, see `listen.rs`).
    pub(super) fn bind(&self, addr: SocketAddr) -> Result<TcpListener, DaemonError> {
        super::listen::bind(addr).map_err(|source| DaemonError::Bind { addr, source })
    }

    /// Runs the accept loop `serving` of `addr` in a task, which the drain aborts.
    pub(super) fn serve(
        &mut self,
        addr: SocketAddr,
        serving: impl Future<Output = std::io::Result<()>> + Send + 'static,
    ) {
        let task = tokio::spawn(async move {
            if let Err(e) = serving.await {
                tracing::error!(%addr, error = %e, "listener stopped");
            }
        });
        self.started.listeners.push((addr, task.abort_handle()));
    }
}

/// The log line of an address that serves the pools of `databases`.
pub(super) fn listening<'a>(
    addr: SocketAddr,
    protocol: &'static str,
    databases: impl Iterator<Item = &'a str>,
) {
    let databases: Vec<&str> = databases.collect();
    tracing::info!(%addr, ?databases, protocol, "listening");
}

/// The log line of a pool that serves from now on.
pub(super) fn pool_ready(p: &PoolConfig) {
    tracing::info!(
        pool = %p.name,
        upstream = %p.upstream.redacted(),
        mode = %p.mode,
        size = p.size,
        "pool ready"
    );
}

/// TLS for the pool's clients, when it has a certificate.
pub(super) fn client_tls(p: &PoolConfig) -> Result<Option<ClientTls>, DaemonError> {
    match (&p.tls_cert, &p.tls_key) {
        (Some(cert), Some(key)) => ClientTls::load(cert, key, p.tls_required)
            .map(Some)
            .map_err(|source| DaemonError::Tls {
                pool: p.name.clone(),
                source,
            }),
        _ => Ok(None),
    }
}

/// Pools sharing listen addresses (their clients name the pool they want), with each
/// address's client TLS: its first pool's.
pub(super) struct ByAddress<T>(BTreeMap<SocketAddr, (Option<ClientTls>, Vec<T>)>);

impl<T> ByAddress<T> {
    pub(super) fn new() -> Self {
        ByAddress(BTreeMap::new())
    }

    pub(super) fn add(&mut self, p: &PoolConfig, pool: T) -> Result<(), DaemonError> {
        let (_, pools) = match self.0.entry(p.listen) {
            Entry::Vacant(e) => e.insert((client_tls(p)?, Vec::new())),
            Entry::Occupied(e) => e.into_mut(),
        };
        pools.push(pool);
        Ok(())
    }

    /// (address, its client TLS, its pools), by address.
    pub(super) fn into_addresses(
        self,
    ) -> impl Iterator<Item = (SocketAddr, Option<ClientTls>, Vec<T>)> {
        self.0
            .into_iter()
            .map(|(addr, (tls, pools))| (addr, tls, pools))
    }
}
