//! Configuration reload (SIGHUP, or RELOAD on the admin console): compares the new file
//! with the running configuration and changes the running pools in place, without
//! dropping any client (docs/operations.md, "Reload").
//!
//! - An invalid file (parse or validation error) changes nothing; the reason goes to the
//!   log and to `/readyz` (which stays ready: the old configuration still serves).
//! - A pool in both: [`LivePool::apply`] (sizes and timeouts everywhere; users, passwords
//!   and the upstream for PostgreSQL). Keys that shape existing sessions (listen, mode,
//!   TLS, client limits...) are reported and wait for a restart.
//! - A new pool on a new address: started with its own listener. On an address that a
//!   running listener serves: reported, started at the next restart.
//! - A removed pool: retired (its clients get the protocol's "shutting down" error at
//!   their next checkout), unregistered from the admin endpoint; a listener left without
//!   pools closes.

use super::live::LivePool;
use maitred_admin::Admin;
use maitred_config::model::{Config, PoolConfig};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::AbortHandle;

/// What the daemon runs now.
pub(super) struct Running {
    /// The configuration in force: the last one loaded, minus pools that could not start.
    pub(super) config: Config,
    pub(super) pools: Vec<Arc<dyn LivePool>>,
    pub(super) listeners: Vec<(SocketAddr, AbortHandle)>,
}

fn same_pool(a: &PoolConfig, b: &PoolConfig) -> bool {
    a.name == b.name && a.upstream.protocol == b.upstream.protocol
}

impl Running {
    /// Stops accepting on every listener (drain).
    pub(super) fn close_listeners(&self) {
        for (_, handle) in &self.listeners {
            handle.abort();
        }
    }

    fn live(&self, p: &PoolConfig) -> Option<Arc<dyn LivePool>> {
        let protocol = super::protocol_label(p.upstream.protocol);
        self.pools
            .iter()
            .find(|l| l.name() == p.name && l.protocol() == protocol)
            .cloned()
    }

    /// Applies `loaded` (the re-read configuration, or why it could not be read).
    pub(super) async fn reload(&mut self, loaded: Result<Config, String>, admin: &Arc<Admin>) {
        let new = match loaded {
            Ok(config) => config,
            Err(reason) => {
                tracing::error!(
                    error = %reason,
                    "reload refused: the new configuration is invalid; nothing changed"
                );
                admin.set_reload_error(Some(reason));
                return;
            }
        };
        let mut notes = Vec::new();
        for (section, changed) in [
            (
                "[admin] listen",
                new.admin.as_ref().map(|a| a.listen)
                    != self.config.admin.as_ref().map(|a| a.listen),
            ),
            ("[runtime]", new.runtime != self.config.runtime),
            ("[log]", new.log != self.config.log),
        ] {
            if changed {
                notes.push(format!(
                    "{section} changed: takes effect at the next restart"
                ));
            }
        }

        let mut running_pools = Vec::new();
        for old in &self.config.pools {
            let Some(live) = self.live(old) else { continue };
            match new.pools.iter().find(|n| same_pool(n, old)) {
                Some(updated) => {
                    let waiting = live.apply(old, updated);
                    if !waiting.is_empty() {
                        notes.push(format!(
                            "pool {}: {} changed; takes effect at the next restart",
                            old.name,
                            waiting.join(", ")
                        ));
                    }
                    // It keeps serving where it listens now.
                    let mut effective = updated.clone();
                    effective.listen = old.listen;
                    running_pools.push(effective);
                }
                None => {
                    live.retire();
                    admin.unregister(live.protocol(), live.name());
                    self.pools.retain(|l| !Arc::ptr_eq(l, &live));
                    tracing::info!(pool = %old.name, "pool removed by reload");
                }
            }
        }
        let in_use: BTreeSet<SocketAddr> = running_pools.iter().map(|p| p.listen).collect();
        self.listeners.retain(|(addr, handle)| {
            let keep = in_use.contains(addr);
            if !keep {
                handle.abort();
                tracing::info!(%addr, "listener closed: no pool left on it");
            }
            keep
        });

        let mut added = Vec::new();
        for p in new
            .pools
            .iter()
            .filter(|n| !self.config.pools.iter().any(|o| same_pool(o, n)))
        {
            if in_use.contains(&p.listen) {
                notes.push(format!(
                    "pool {}: {} is served by a running listener; the pool starts at the next restart",
                    p.name, p.listen
                ));
            } else {
                added.push(p.clone());
            }
        }
        if !added.is_empty() {
            match super::start_pools(&added, admin, new.admin.is_some()).await {
                Ok(started) => {
                    for p in &added {
                        tracing::info!(pool = %p.name, listen = %p.listen, "pool added by reload");
                    }
                    self.listeners.extend(started.listeners);
                    self.pools.extend(started.pools);
                    running_pools.extend(added);
                }
                Err(e) => notes.push(format!("new pools not started: {e}")),
            }
        }

        self.config = Config {
            pools: running_pools,
            ..new
        };
        // Console users and SHOW CONFIG follow the configuration in force.
        super::console::configure(admin, &self.config);
        for note in &notes {
            tracing::warn!("reload: {note}");
        }
        admin.set_reload_error(None);
        tracing::info!(
            pools = self.pools.len(),
            listeners = self.listeners.len(),
            "configuration reloaded"
        );
    }
}
