//! The server connections of auth_query users: one pool per user, logged in as that user
//! (a connection of alice never serves bob), created at the user's first login and closed
//! once it has had no clients for the pool's `idle_timeout`.
//!
//! Each user pool has the configured pool's settings, its size included, as its own: the
//! configured size caps each user, not the sum over users.

use crate::auth::passthrough::PassthroughLogin;
use crate::auth::AuthError;
use crate::pool::{PgPool, PgPoolConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// Told when a user pool opens and closes (the daemon registers it for metrics).
pub trait UserPoolHooks: Send + Sync {
    fn opened(&self, pool: &Arc<PgPool>);
    fn closed(&self, pool: &Arc<PgPool>);
}

#[derive(Debug)]
struct Entry {
    pool: Arc<PgPool>,
    /// Clients logged in through this pool now.
    active: AtomicUsize,
    /// When the last client left.
    idle_since: Mutex<Instant>,
}

/// Holds a client's place in its user pool; the pool is not closed while one is held.
#[derive(Debug)]
pub struct UserPoolGuard(Arc<Entry>);

impl Drop for UserPoolGuard {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        }
    }
}

pub struct UserPools {
    /// The configured pool's description, used for each user's pool.
    template: PgPoolConfig,
    idle_after: Duration,
    pools: Mutex<HashMap<String, Arc<Entry>>>,
    hooks: OnceLock<Arc<dyn UserPoolHooks>>,
    sweeper: OnceLock<()>,
}

impl std::fmt::Debug for UserPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPools")
            .field("pool", &self.template.name)
            .field("users", &self.len())
            .finish()
    }
}

impl UserPools {
    pub fn new(template: PgPoolConfig) -> UserPools {
        let idle_after = template
            .settings
            .idle_timeout
            .unwrap_or(maitred_pool::PoolSettings::DEFAULT_IDLE_TIMEOUT);
        UserPools {
            template,
            idle_after,
            pools: Mutex::new(HashMap::new()),
            hooks: OnceLock::new(),
            sweeper: OnceLock::new(),
        }
    }

    pub fn set_hooks(&self, hooks: Arc<dyn UserPoolHooks>) {
        let _ = self.hooks.set(hooks);
    }

    /// User pools open now.
    pub fn len(&self) -> usize {
        self.pools.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pool of `user`, opened if needed; new server connections log in with `login`
    /// (the newest one a client revealed: after a password change, the new key).
    pub fn enter(
        self: &Arc<Self>,
        user: &str,
        login: PassthroughLogin,
    ) -> Result<(Arc<PgPool>, UserPoolGuard), AuthError> {
        let login = Arc::new(login);
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let entry = match pools.get(user) {
            Some(entry) => {
                let manager = entry.pool.pool.manager();
                let target = manager.target();
                if target.passthrough.as_deref() != Some(&*login) {
                    let mut target = (*target).clone();
                    target.passthrough = Some(login);
                    manager.set_target(target);
                }
                entry.clone()
            }
            None => {
                let pool = Arc::new(PgPool::new(self.config_for(user, login))?);
                pool.pool.start_maintenance();
                tracing::info!(pool = %pool.name, "auth_query user pool opened");
                if let Some(hooks) = self.hooks.get() {
                    hooks.opened(&pool);
                }
                let entry = Arc::new(Entry {
                    pool,
                    active: AtomicUsize::new(0),
                    idle_since: Mutex::new(Instant::now()),
                });
                pools.insert(user.to_owned(), entry.clone());
                self.start_sweeper();
                entry
            }
        };
        entry.active.fetch_add(1, Ordering::AcqRel);
        Ok((entry.pool.clone(), UserPoolGuard(entry)))
    }

    fn config_for(&self, user: &str, login: Arc<PassthroughLogin>) -> PgPoolConfig {
        let mut cfg = self.template.clone();
        cfg.name = format!("{}/{user}", self.template.name);
        cfg.settings.name = cfg.name.clone();
        cfg.settings.min_idle = 0;
        cfg.users = Vec::new();
        cfg.auth_query = None;
        cfg.target.user = user.to_owned();
        cfg.target.password = None;
        cfg.target.passthrough = Some(login);
        cfg
    }

    /// Closes the pools that have had no clients for `idle_after`.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut closed = Vec::new();
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, e| {
                let idle = e.active.load(Ordering::Acquire) == 0
                    && now.duration_since(*e.idle_since.lock().unwrap_or_else(|p| p.into_inner()))
                        >= self.idle_after;
                if idle {
                    closed.push(e.pool.clone());
                }
                !idle
            });
        for pool in closed {
            pool.pool.close();
            tracing::info!(pool = %pool.name, "auth_query user pool closed after idling");
            if let Some(hooks) = self.hooks.get() {
                hooks.closed(&pool);
            }
        }
    }

    /// Closes every user pool (the configured pool was removed, or its upstream changed):
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
            e.pool.pool.close();
            if let Some(hooks) = self.hooks.get() {
                hooks.closed(&e.pool);
            }
        }
    }

    fn start_sweeper(self: &Arc<Self>) {
        if self.sweeper.set(()).is_err() {
            return;
        }
        let weak: Weak<UserPools> = Arc::downgrade(self);
        let every =
            (self.idle_after / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pool::{ClientAuth, PoolMode};
    use crate::target::ServerTarget;

    fn template() -> PgPoolConfig {
        let mut settings = maitred_pool::PoolSettings::new("app", 2);
        settings.idle_timeout = Some(Duration::from_secs(10));
        PgPoolConfig {
            name: "app".into(),
            database: "app".into(),
            mode: PoolMode::Transaction,
            client_auth: ClientAuth::ScramSha256,
            users: vec![],
            target: ServerTarget {
                server: maitred_frontend::ServerAddr::tcp("127.0.0.1", 1),
                user: "lookup".into(),
                password: Some("pw".into()),
                passthrough: None,
                database: "app".into(),
                startup_params: vec![],
                tls: crate::tls::ServerTls::disabled(),
            },
            settings,
            prepared_statements_per_connection: 10,
            max_pinned: 1,
            send_ahead: true,
            limits: maitred_pool::ClientLimits::new(1 << 20),
            auth_query: None,
            any_database: None,
        }
    }

    fn md5(hash: &str) -> PassthroughLogin {
        PassthroughLogin::Md5 {
            user_hash: hash.into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_pool_per_user_logged_in_as_that_user_and_closed_after_idling() {
        let pools = Arc::new(UserPools::new(template()));
        let (alice, guard_a) = pools.enter("alice", md5("a1")).expect("alice");
        let (bob, guard_b) = pools.enter("bob", md5("b1")).expect("bob");
        assert_eq!(alice.name, "app/alice");
        let target = alice.pool.manager().target();
        assert_eq!(target.user, "alice");
        assert!(target.password.is_none());
        assert_eq!(bob.pool.manager().target().user, "bob");
        let (again, guard_a2) = pools.enter("alice", md5("a2")).expect("alice again");
        assert!(Arc::ptr_eq(&alice, &again), "same user, same pool");
        assert_eq!(
            alice.pool.manager().target().passthrough.as_deref(),
            Some(&md5("a2")),
            "new connections use the newest login"
        );
        assert_eq!(pools.len(), 2);
        drop((guard_a, guard_b));
        tokio::time::advance(Duration::from_secs(11)).await;
        pools.sweep();
        assert_eq!(
            pools.len(),
            1,
            "bob idle for idle_timeout: closed; alice still in use"
        );
        assert!(bob.pool.is_closed());
        drop(guard_a2);
        tokio::time::advance(Duration::from_secs(5)).await;
        pools.sweep();
        assert_eq!(pools.len(), 1, "alice idle for only 5 s");
        tokio::time::advance(Duration::from_secs(6)).await;
        pools.sweep();
        assert!(pools.is_empty());
        assert!(alice.pool.is_closed());
    }
}
