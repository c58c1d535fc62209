//! A running pool as a configuration reload sees it ([`LivePool`]), and what every
//! protocol's pools can change while they run.

use super::protocol::{PoolHandle, ProtocolPool};
use maitred_config::model::PoolConfig;
use maitred_pool::{Manager, Pool};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::AbortHandle;

/// What starting some pools produced: their listeners (by address) and the pools.
#[derive(Default)]
pub(super) struct Started {
    pub(super) listeners: Vec<(SocketAddr, AbortHandle)>,
    pub(super) pools: Vec<Arc<dyn LivePool>>,
}

/// One running pool, as the reload changes it.
pub(super) trait LivePool: Send + Sync {
    /// The configured name.
    fn name(&self) -> &str;
    /// The admin endpoint's protocol label (`postgres`, `mysql`, `mongodb`).
    fn protocol(&self) -> &'static str;
    /// Applies what may change while clients are connected (see [`restart_keys`] for what
    /// may not); returns the keys that changed but need a restart to take effect.
    fn apply(&self, old: &PoolConfig, new: &PoolConfig) -> Vec<&'static str>;
    /// The pool was removed from the configuration: stop handing out connections (its
    /// clients get the protocol's "shutting down" error at their next checkout).
    fn retire(&self);
}

/// A running pool of any protocol, as the reload changes it: the pool core's settings
/// here, the rest by the protocol ([`ProtocolPool::apply`]).
pub(super) struct Live<P, M: Manager>(pub(super) PoolHandle<P, M>);

impl<P: ProtocolPool, M: Manager> LivePool for Live<P, M> {
    fn name(&self) -> &str {
        self.0.core.name()
    }
    fn protocol(&self) -> &'static str {
        P::PROTOCOL
    }
    fn apply(&self, old: &PoolConfig, new: &PoolConfig) -> Vec<&'static str> {
        let mut waiting = restart_keys(old, new);
        if core_settings_changed(old, new) {
            self.0.core.reconfigure(super::pool_settings(new));
        }
        self.0.pool.apply(old, new, &mut waiting);
        waiting
    }
    fn retire(&self) {
        self.0.core.close();
        self.0.pool.retire();
    }
}

/// A reload changed the upstream of the pool `core`: `set_target` points its manager at
/// the new one, and the open server connections are retired as they come back.
pub(super) fn new_upstream<M: Manager>(
    core: &Pool<M>,
    new: &PoolConfig,
    set_target: impl FnOnce(&M),
) {
    set_target(core.manager());
    core.reconnect();
    tracing::info!(
        pool = %new.name,
        upstream = %new.upstream.redacted(),
        "reload: new upstream; open server connections are retired as they come back"
    );
}

/// Keys no pool changes while running: they shape listeners, logins and sessions that
/// exist already. A changed one is reported and takes effect at the next restart.
pub(super) fn restart_keys(old: &PoolConfig, new: &PoolConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            keys.push(key);
        }
    };
    check(old.listen != new.listen, "listen");
    check(old.client_database() != new.client_database(), "database");
    check(old.mode != new.mode, "mode");
    check(old.client_auth != new.client_auth, "client_auth");
    check(old.tls_cert != new.tls_cert, "tls_cert");
    check(old.tls_key != new.tls_key, "tls_key");
    check(old.tls_required != new.tls_required, "tls_required");
    check(
        old.prepared_statements != new.prepared_statements,
        "prepared_statements",
    );
    check(
        old.client_login_timeout != new.client_login_timeout,
        "client_login_timeout",
    );
    check(
        old.idle_transaction_timeout != new.idle_transaction_timeout,
        "idle_transaction_timeout",
    );
    check(
        old.client_idle_timeout != new.client_idle_timeout,
        "client_idle_timeout",
    );
    check(old.query_timeout != new.query_timeout, "query_timeout");
    check(old.max_clients != new.max_clients, "max_clients");
    check(old.fleet != new.fleet, "fleet");
    check(old.budget != new.budget, "budget");
    check(
        old.fleet_idle_release != new.fleet_idle_release,
        "fleet_idle_release",
    );
    check(
        old.max_message_size != new.max_message_size,
        "max_message_size",
    );
    keys
}

/// Whether the pool core's settings (size, min_idle, queue_timeout, max_waiting,
/// idle_timeout, max_lifetime, server_connect_timeout) differ.
pub(super) fn core_settings_changed(old: &PoolConfig, new: &PoolConfig) -> bool {
    (
        old.size,
        old.min_idle,
        old.queue_timeout,
        old.max_waiting,
        old.idle_timeout,
        old.max_lifetime,
        old.server_connect_timeout,
    ) != (
        new.size,
        new.min_idle,
        new.queue_timeout,
        new.max_waiting,
        new.idle_timeout,
        new.max_lifetime,
        new.server_connect_timeout,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> PoolConfig {
        PoolConfig::new(
            "app",
            "127.0.0.1:6432".parse().expect("addr"),
            "postgres://app:pw@127.0.0.1:5432/app"
                .parse()
                .expect("upstream"),
        )
    }

    #[test]
    fn size_and_timeouts_are_live_listen_and_mode_are_not() {
        let old = pool();
        let mut new = pool();
        new.size = 20;
        new.queue_timeout = std::time::Duration::from_secs(1);
        assert!(core_settings_changed(&old, &new));
        assert!(restart_keys(&old, &new).is_empty());
        new.listen = "127.0.0.1:7000".parse().expect("addr");
        new.mode = maitred_config::model::PoolMode::Session;
        assert_eq!(restart_keys(&old, &new), vec!["listen", "mode"]);
        assert!(!core_settings_changed(&old, &old.clone()));
    }
}
