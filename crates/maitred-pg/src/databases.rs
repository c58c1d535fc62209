//! The databases of a `database = "*"` pool (PgBouncer's `*` entry): a client naming a
//! database that no pool of its address serves gets a pool of its own for that database,
//! created at its first login from the wildcard pool's description (same server, login,
//! users and settings, its size included: each created pool has the configured size), and
//! closed once it has had no clients for the pool's `idle_timeout`.
//!
//! Bounded: at most `max_databases` pools exist at once (one more is refused), and a pool
//! that never opened a server connection (a database the server does not have, or refuses)
//! is dropped as soon as its last client leaves, so names that do not exist leave nothing
//! behind.

use crate::auth::AuthError;
use crate::pool::{PgPool, PgPoolConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use thiserror::Error;
use tokio::time::Instant;

/// Told when a created pool opens and closes (the daemon registers it for metrics).
pub trait DatabasePoolHooks: Send + Sync {
    fn opened(&self, pool: &Arc<PgPool>);
    fn closed(&self, pool: &Arc<PgPool>);
}

/// Why a database's pool could not be had.
#[derive(Debug, Error)]
pub enum EnterError {
    #[error("maitred: pool \"{pool}\" serves at most {max} databases at once (max_databases), and that many are in use")]
    TooMany { pool: String, max: usize },
    #[error(transparent)]
    Credentials(#[from] AuthError),
}

#[derive(Debug)]
struct Entry {
    database: String,
    pool: Arc<PgPool>,
    /// Clients logged in through this pool now.
    active: AtomicUsize,
    /// When the last client left.
    idle_since: Mutex<Instant>,
}

impl Entry {
    /// Whether a server connection was ever opened (the database exists and lets us in).
    fn connected(&self) -> bool {
        self.pool.pool.manager().server_params().is_some()
    }
}

/// Holds a client's place in its database's pool; the pool is not closed while one is held.
#[derive(Debug)]
pub struct DatabaseGuard {
    entry: Arc<Entry>,
    owner: Weak<DatabasePools>,
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        if self.entry.active.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        *self
            .entry
            .idle_since
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if !self.entry.connected() {
            if let Some(owner) = self.owner.upgrade() {
                owner.forget_unconnected(&self.entry);
            }
        }
    }
}

/// The wildcard pool's description and limit, swapped by a reload.
#[derive(Debug, Clone)]
struct Template {
    cfg: PgPoolConfig,
    max: usize,
}

pub struct DatabasePools {
    template: Mutex<Template>,
    pools: Mutex<HashMap<String, Arc<Entry>>>,
    hooks: OnceLock<Arc<dyn DatabasePoolHooks>>,
    sweeper: OnceLock<()>,
}

impl std::fmt::Debug for DatabasePools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabasePools")
            .field("databases", &self.len())
            .finish()
    }
}

impl DatabasePools {
    /// `template`: the wildcard pool's description (its `any_database` is ignored);
    /// `max`: `max_databases`.
    pub fn new(template: PgPoolConfig, max: usize) -> DatabasePools {
        DatabasePools {
            template: Mutex::new(Template {
                cfg: PgPoolConfig {
                    any_database: None,
                    ..template
                },
                max,
            }),
            pools: Mutex::new(HashMap::new()),
            hooks: OnceLock::new(),
            sweeper: OnceLock::new(),
        }
    }

    pub fn set_hooks(&self, hooks: Arc<dyn DatabasePoolHooks>) {
        let _ = self.hooks.set(hooks);
    }

    /// A reload: pools created from now on follow `template`; `max` applies to the next
    /// creation (pools beyond it stay until they idle out).
    pub fn set_template(&self, template: PgPoolConfig, max: usize) {
        *self.template.lock().unwrap_or_else(|p| p.into_inner()) = Template {
            cfg: PgPoolConfig {
                any_database: None,
                ..template
            },
            max,
        };
    }

    /// Pools created and open now.
    pub fn len(&self) -> usize {
        self.pools.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The created pools open now.
    pub fn pools(&self) -> Vec<Arc<PgPool>> {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        pools.values().map(|e| e.pool.clone()).collect()
    }

    /// The pool of `database`, created if needed (unless `max_databases` are open).
    pub fn enter(
        self: &Arc<Self>,
        database: &str,
    ) -> Result<(Arc<PgPool>, DatabaseGuard), EnterError> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let entry = match pools.get(database) {
            Some(entry) => entry.clone(),
            None => {
                let template = self
                    .template
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if pools.len() >= template.max {
                    return Err(EnterError::TooMany {
                        pool: template.cfg.name,
                        max: template.max,
                    });
                }
                let pool = Arc::new(PgPool::new(config_for(template.cfg, database))?);
                pool.pool.start_maintenance();
                tracing::info!(pool = %pool.name, "pool created for a database of a \"*\" pool");
                if let Some(hooks) = self.hooks.get() {
                    hooks.opened(&pool);
                }
                let entry = Arc::new(Entry {
                    database: database.to_owned(),
                    pool,
                    active: AtomicUsize::new(0),
                    idle_since: Mutex::new(Instant::now()),
                });
                pools.insert(database.to_owned(), entry.clone());
                self.start_sweeper();
                entry
            }
        };
        entry.active.fetch_add(1, Ordering::AcqRel);
        let guard = DatabaseGuard {
            entry: entry.clone(),
            owner: Arc::downgrade(self),
        };
        Ok((entry.pool.clone(), guard))
    }

    /// Drops `entry` if it is still the pool of its database, has no clients and never
    /// connected (its last client was refused by the server, or left before).
    fn forget_unconnected(&self, entry: &Arc<Entry>) {
        let removed = {
            let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
            let current = pools.get(&entry.database).is_some_and(|e| {
                Arc::ptr_eq(e, entry) && e.active.load(Ordering::Acquire) == 0 && !e.connected()
            });
            current && pools.remove(&entry.database).is_some()
        };
        if removed {
            tracing::debug!(pool = %entry.pool.name, "pool of a database that never connected dropped");
            self.close(&entry.pool);
        }
    }

    /// Closes the pools that have had no clients for their `idle_timeout`.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut closed = Vec::new();
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| {
                let idle_after = e
                    .pool
                    .pool
                    .settings()
                    .idle_timeout
                    .unwrap_or(maitred_pool::PoolSettings::DEFAULT_IDLE_TIMEOUT);
                let idle = e.active.load(Ordering::Acquire) == 0
                    && now.duration_since(*e.idle_since.lock().unwrap_or_else(|p| p.into_inner()))
                        >= idle_after;
                if idle {
                    closed.push(e.pool.clone());
                }
                !idle
            });
        for pool in closed {
            tracing::info!(pool = %pool.name, "pool of a database closed after idling");
            self.close(&pool);
        }
    }

    /// Closes every created pool (the wildcard pool was removed, or its upstream changed):
    /// clients logged in keep their sessions until their next checkout fails.
    pub fn close_all(&self) {
        let drained: Vec<Arc<Entry>> = self
            .pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, e)| e)
            .collect();
        for e in drained {
            self.close(&e.pool);
        }
    }

    fn close(&self, pool: &Arc<PgPool>) {
        pool.pool.close();
        if let Some(aq) = &pool.auth_query {
            aq.users.close_all();
        }
        if let Some(hooks) = self.hooks.get() {
            hooks.closed(pool);
        }
    }

    fn start_sweeper(self: &Arc<Self>) {
        if self.sweeper.set(()).is_err() {
            return;
        }
        let weak: Weak<DatabasePools> = Arc::downgrade(self);
        let idle_after = {
            let t = self.template.lock().unwrap_or_else(|p| p.into_inner());
            t.cfg
                .settings
                .idle_timeout
                .unwrap_or(maitred_pool::PoolSettings::DEFAULT_IDLE_TIMEOUT)
        };
        let every = (idle_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match weak.upgrade() {
                    Some(pools) => pools.sweep(),
                    None => return,
                }
            }
        });
    }
}

/// The description of `database`'s pool: the template with the database substituted,
/// named `<pool>/<database>`.
fn config_for(mut cfg: PgPoolConfig, database: &str) -> PgPoolConfig {
    cfg.name = format!("{}/{database}", cfg.name);
    cfg.settings.name = cfg.name.clone();
    cfg.database = database.to_owned();
    cfg.target.database = database.to_owned();
    cfg.any_database = None;
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::{Route, Router};
    use crate::pool::{ClientAuth, PoolMode};
    use crate::target::ServerTarget;

    /// A pool description whose server refuses connections (nothing listens on port 1).
    fn config(name: &str, database: &str, any_database: Option<usize>) -> PgPoolConfig {
        let mut settings = maitred_pool::PoolSettings::new(name, 2);
        settings.idle_timeout = Some(Duration::from_secs(10));
        settings.connect_timeout = Duration::from_secs(2);
        PgPoolConfig {
            name: name.into(),
            database: database.into(),
            mode: PoolMode::Transaction,
            client_auth: ClientAuth::Trust,
            users: vec![],
            target: ServerTarget {
                server: maitred_frontend::ServerAddr::tcp("127.0.0.1", 1),
                user: "app".into(),
                password: Some("pw".into()),
                passthrough: None,
                database: database.into(),
                startup_params: vec![],
                tls: crate::tls::ServerTls::disabled(),
            },
            settings,
            prepared_statements_per_connection: 10,
            max_pinned: 1,
            send_ahead: true,
            limits: maitred_pool::ClientLimits::new(1 << 20),
            auth_query: None,
            any_database,
        }
    }

    fn pool(name: &str, database: &str, any_database: Option<usize>) -> Arc<PgPool> {
        Arc::new(PgPool::new(config(name, database, any_database)).expect("pool"))
    }

    fn router(pools: Vec<Arc<PgPool>>) -> Router {
        Router {
            pools,
            console: None,
            cancels: Arc::default(),
            tls: None,
        }
    }

    fn route(r: &Router, database: &str) -> Option<(String, bool)> {
        r.find(database).map(|route| match route {
            Route::Pool(p) => (p.name.clone(), false),
            Route::Create(p) => (p.name.clone(), true),
        })
    }

    #[test]
    fn named_pools_win_over_the_wildcard() {
        // The `*` pool listed first: order does not matter.
        let r = router(vec![
            pool("any", "app", Some(10)),
            pool("reports", "reports", None),
            pool("app-named", "app", None),
        ]);
        assert_eq!(route(&r, "reports"), Some(("reports".into(), false)));
        assert_eq!(
            route(&r, "app"),
            Some(("app-named".into(), false)),
            "a pool named for the database wins over the `*` pool's own database"
        );
        assert_eq!(route(&r, "postgres"), Some(("any".into(), true)));
        let r = router(vec![pool("any", "app", Some(10))]);
        assert_eq!(route(&r, "app"), Some(("any".into(), false)));
        let r = router(vec![pool("app", "app", None)]);
        assert_eq!(
            route(&r, "postgres"),
            None,
            "no `*` pool: unknown names refused"
        );
    }

    #[tokio::test]
    async fn one_pool_per_database_from_the_template_and_bounded() {
        let pools = Arc::new(DatabasePools::new(config("any", "app", Some(2)), 2));
        let (a, guard_a) = pools.enter("alpha").expect("alpha");
        assert_eq!(a.name, "any/alpha");
        assert_eq!(a.database, "alpha");
        assert_eq!(a.pool.manager().target().database, "alpha");
        assert_eq!(
            a.pool.settings().max_size,
            2,
            "the template's size, per database"
        );
        assert!(a.databases.is_none(), "a created pool creates none itself");
        let (again, guard_a2) = pools.enter("alpha").expect("alpha again");
        assert!(Arc::ptr_eq(&a, &again), "same database, same pool");
        let (_b, guard_b) = pools.enter("beta").expect("beta");
        assert_eq!(pools.len(), 2);
        match pools.enter("gamma") {
            Err(EnterError::TooMany { max: 2, .. }) => {}
            other => panic!("expected the max_databases refusal, got {other:?}"),
        }
        assert_eq!(pools.len(), 2, "the refused name left nothing");
        // alpha and beta never connected (nothing listens): dropped with their last client.
        drop(guard_a);
        assert_eq!(pools.len(), 2, "alpha still has a client");
        drop((guard_a2, guard_b));
        assert!(pools.is_empty());
        assert!(a.pool.is_closed());
        pools.enter("gamma").expect("room again");
    }

    #[tokio::test]
    async fn a_database_the_server_refuses_leaves_no_pool() {
        let pools = Arc::new(DatabasePools::new(config("any", "app", Some(5)), 5));
        for i in 0..20 {
            let (p, guard) = pools.enter(&format!("nope{i}")).expect("enter");
            assert!(
                p.pool.checkout().await.is_err(),
                "nothing listens on port 1"
            );
            drop(guard);
            assert!(pools.is_empty(), "attempt {i} left its pool");
        }
    }
}
