//! Per-user server credentials: a client user configured with its own server login
//! (`server_user` / `server_password` in `[[pools.users]]`) gets its own pool of server
//! connections logged in as that login, like PgBouncer's pool per (database, user). Its
//! requests never run on another user's connections, so the server applies that user's
//! roles. Users without a server login share the pool of the upstream URL's user.
//!
//! Each of these pools has the pool's settings (`size`, timeouts): the server may see up to
//! `size` connections per login.

use crate::manager::MongoManager;
use crate::target::ServerTarget;
use maitred_frontend::Password;
use maitred_pool::{Pool, PoolSettings};
use std::collections::HashMap;

/// The server login a client user's requests run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLogin {
    pub user: String,
    pub password: Password,
}

/// The pools of the client users that have their own server login, by client user.
#[derive(Debug, Default)]
pub struct UserPools {
    pools: HashMap<String, Pool<MongoManager>>,
}

impl UserPools {
    /// One pool per client user in `logins`, towards `base`'s server (same address, TLS,
    /// authSource, mechanism, compressors) but logged in as the user's server login.
    pub fn new(
        base: &ServerTarget,
        settings: &PoolSettings,
        logins: &HashMap<String, ServerLogin>,
    ) -> UserPools {
        let pools = logins
            .iter()
            .map(|(client_user, login)| {
                let target = ServerTarget {
                    user: login.user.clone(),
                    password: Some(login.password.clone()),
                    ..base.clone()
                };
                let mut settings = settings.clone();
                settings.name = format!("{}/{}", settings.name, client_user);
                let pool = Pool::new(MongoManager::new(target), settings);
                (client_user.clone(), pool)
            })
            .collect();
        UserPools { pools }
    }

    /// The pool of a client user that has its own server login.
    pub fn get(&self, client_user: &str) -> Option<&Pool<MongoManager>> {
        self.pools.get(client_user)
    }

    pub fn start_maintenance(&self) {
        for pool in self.pools.values() {
            pool.start_maintenance();
        }
    }

    pub fn close(&self) {
        for pool in self.pools.values() {
            pool.close();
        }
    }

    /// (client user, pool) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Pool<MongoManager>)> {
        self.pools.iter().map(|(u, p)| (u.as_str(), p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_login_gets_its_own_target_and_the_password_stays_hidden() {
        let base = ServerTarget {
            server: maitred_frontend::ServerAddr::tcp("db", 27017),
            user: "app".into(),
            password: Some("app-pw".into()),
            auth_source: "admin".into(),
            mechanism: crate::auth::scram::Mechanism::Sha256,
            compressors: vec![],
            tls: None,
        };
        let login = ServerLogin {
            user: "reporting".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{login:?}").contains("s3cret"));
        let logins = HashMap::from([("alice".to_owned(), login)]);
        let pools = UserPools::new(&base, &PoolSettings::new("mongo", 3), &logins);
        let pool = pools.get("alice").expect("alice's pool");
        let target = pool.manager().target();
        assert_eq!(target.user, "reporting");
        assert_eq!(
            target.password.as_ref().map(Password::expose),
            Some("s3cret")
        );
        assert_eq!(target.server.addr(), "db:27017");
        assert_eq!(pool.name(), "mongo/alice");
        assert!(pools.get("bob").is_none());
    }
}
