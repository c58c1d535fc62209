//! What the admin endpoint and console know of a pool beyond the pool core's numbers:
//! its clients (state, traffic, KILL), client-facing database, mode, and server user and
//! address. The same for every protocol, so every protocol's pools show and obey alike.

use maitred_admin::PoolClients;
use maitred_config::model::PoolConfig;
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

/// Implements the [`maitred_admin::PoolObserver`] methods that come from [`PoolFacts`]
/// (in a `facts` field) and the pool core (in an expression giving a
/// `maitred_pool::Pool`): clients, database, mode, server user and address, pause, resume,
/// reconnect.
macro_rules! observe_facts {
    ($pool:ident => $core:expr) => {
        fn clients(&self) -> Option<std::sync::Arc<maitred_admin::PoolClients>> {
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
            let $pool = self;
            $core.pause();
            true
        }
        fn resume(&self) -> bool {
            let $pool = self;
            $core.resume();
            true
        }
        fn is_paused(&self) -> bool {
            let $pool = self;
            $core.is_paused()
        }
        fn reconnect(&self) -> bool {
            let $pool = self;
            $core.reconnect();
            true
        }
    };
}
pub(super) use observe_facts;
