//! What differs between the protocols' pools as the daemon runs them ([`ProtocolPool`],
//! implemented in `postgres.rs`, `mysql.rs` and `mongo.rs`), and the steps every
//! protocol's `start` takes alike: registering a pool ([`serve_pool`]), grouping pools by
//! address ([`ByAddress`]) and serving a listener ([`listen`]).

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

    /// Protocol counters, exported as `maitred_<name>` (see `maitred_admin::PoolObserver`).
    fn extra_counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Counters with one label (pins by reason).
    fn labeled_counters(&self) -> Vec<LabeledCounter> {
        Vec::new()
    }

    fn extra_gauges(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }

    /// Applies what a reload changed beyond the pool core's settings (users, upstream,
    /// pins); pushes to `waiting` the changed keys that need a restart.
    fn apply(&self, old: &PoolConfig, new: &PoolConfig, waiting: &mut Vec<&'static str>);

    /// Removed by a reload: what to close beyond the pool core.
    fn retire(&self) {}
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

/// Registers a started pool with the admin endpoint (with `probe`, it also opens one
/// server connection as soon as the server answers, so that /readyz can turn 200 before
/// the first client) and with the reload.
pub(super) fn serve_pool<P: ProtocolPool, M: Manager>(
    started: &mut Started,
    admin: &Admin,
    probe: bool,
    handle: PoolHandle<P, M>,
    listen: SocketAddr,
    facts: PoolFacts,
) {
    admin.register(Arc::new(Observed {
        handle: handle.clone(),
        listen,
        facts,
    }));
    if probe {
        super::lifecycle::probe_until_ready(&handle.core);
    }
    started.pools.push(Arc::new(Live(handle)));
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

/// Binds `addr` and serves it with `serve` in a task, which the drain aborts.
pub(super) fn listen<Fut>(
    started: &mut Started,
    addr: SocketAddr,
    serve: impl FnOnce(TcpListener) -> Fut,
) -> Result<(), DaemonError>
where
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener =
        super::listen::bind(addr).map_err(|source| DaemonError::Bind { addr, source })?;
    let serving = serve(listener);
    let task = tokio::spawn(async move {
        if let Err(e) = serving.await {
            tracing::error!(%addr, error = %e, "listener stopped");
        }
    });
    started.listeners.push((addr, task.abort_handle()));
    Ok(())
}
