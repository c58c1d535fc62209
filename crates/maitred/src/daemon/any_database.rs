//! The pools a PostgreSQL `database = "*"` pool creates for the other databases of its
//! server (`maitred_pg::databases`): registered with the admin endpoint while open, as
//! `<pool>/<database>`, and changed by a reload like the pool they were created from.

use super::live::core_settings_changed;
use super::observed::{Observed, PoolFacts};
use super::postgres::{handle, UserPoolMetrics};
use maitred_admin::Admin;
use maitred_config::model::PoolConfig;
use maitred_pg::databases::{DatabasePoolHooks, DatabasePools};
use maitred_pg::{PgPool, PgPoolConfig};
use std::sync::{Arc, Weak};

struct DatabasePoolMetrics {
    admin: Weak<Admin>,
    config: PoolConfig,
}

impl DatabasePoolHooks for DatabasePoolMetrics {
    fn opened(&self, pool: &Arc<PgPool>) {
        let Some(admin) = self.admin.upgrade() else {
            return;
        };
        if let Some(aq) = &pool.auth_query {
            aq.users.set_hooks(Arc::new(UserPoolMetrics {
                admin: self.admin.clone(),
                config: self.config.clone(),
            }));
        }
        let mut facts = PoolFacts::of(&self.config, pool.clients.clone());
        facts.database = pool.database.clone();
        admin.register(Arc::new(Observed {
            handle: handle(pool),
            listen: self.config.listen,
            facts,
        }));
    }
    fn closed(&self, pool: &Arc<PgPool>) {
        if let Some(admin) = self.admin.upgrade() {
            admin.unregister("postgres", &pool.name);
        }
    }
}

/// The hooks that register `p`'s created pools with `admin`.
pub(super) fn metrics(admin: &Arc<Admin>, p: &PoolConfig) -> Arc<dyn DatabasePoolHooks> {
    Arc::new(DatabasePoolMetrics {
        admin: Arc::downgrade(admin),
        config: p.clone(),
    })
}

/// A reload of the `*` pool: pools created from now on follow `cfg` (the new
/// configuration's description); the open ones take its sizes and timeouts, users,
/// `max_pinned` and `send_ahead` at once, like the `*` pool itself. A new upstream closes
/// them (their clients get "shutting down" at their next checkout, and log in again to a
/// pool created for the new server).
pub(super) fn apply(
    databases: &DatabasePools,
    old: &PoolConfig,
    new: &PoolConfig,
    cfg: &PgPoolConfig,
) {
    databases.set_template(cfg.clone(), new.max_databases());
    if old.upstream != new.upstream {
        databases.close_all();
        return;
    }
    for pool in databases.pools() {
        if core_settings_changed(old, new) {
            let mut settings = super::pool_settings(new);
            settings.name = pool.name.clone();
            pool.pool.reconfigure(settings);
        }
        if old.max_pinned() != new.max_pinned() {
            pool.set_max_pinned(new.max_pinned());
        }
        if old.send_ahead != new.send_ahead {
            pool.set_send_ahead(new.send_ahead);
        }
        if old.users != new.users || old.client_auth != new.client_auth {
            if let Err(e) = pool.set_users(&cfg.users) {
                tracing::warn!(pool = %pool.name, error = %e, "reload: users not changed");
            }
        }
    }
}
