//! The pool's view of PostgreSQL: how to open, check and reset a server connection.

use crate::backend::ServerConn;
use crate::error::BackendError;
use crate::target::ServerTarget;
use arc_swap::ArcSwap;
use std::sync::{Arc, Mutex};

/// Server settings as (name, value) pairs, sorted by name.
pub type ServerParams = Arc<Vec<(String, String)>>;

/// Opens server connections for one pool and remembers the settings a fresh server
/// connection reports, which clients are shown at login.
#[derive(Debug)]
pub struct PgManager {
    /// Swapped by a reload that changes the upstream (see [`PgManager::set_target`]).
    target: ArcSwap<ServerTarget>,
    prepared_capacity: usize,
    server_params: Mutex<Option<ServerParams>>,
}

impl PgManager {
    pub fn new(target: ServerTarget, prepared_capacity: usize) -> PgManager {
        PgManager {
            target: ArcSwap::from_pointee(target),
            prepared_capacity,
            server_params: Mutex::new(None),
        }
    }

    pub fn target(&self) -> Arc<ServerTarget> {
        self.target.load_full()
    }

    /// New server connections go to `target` from now on (a reload changed the upstream);
    /// the pool must retire the open ones (`Pool::reconnect`).
    pub fn set_target(&self, target: ServerTarget) {
        self.target.store(Arc::new(target));
    }

    /// The ParameterStatus values of a freshly opened server connection, once one was opened.
    pub fn server_params(&self) -> Option<ServerParams> {
        self.server_params
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl maitred_pool::Manager for PgManager {
    type Connection = ServerConn;
    type Error = BackendError;

    async fn connect(&self) -> Result<ServerConn, BackendError> {
        let target = self.target.load_full();
        let conn = ServerConn::connect(&target, self.prepared_capacity).await?;
        let mut snapshot = self.server_params.lock().unwrap_or_else(|p| p.into_inner());
        if snapshot.is_none() {
            let mut params: Vec<(String, String)> = conn
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            params.sort();
            *snapshot = Some(Arc::new(params));
        }
        Ok(conn)
    }

    fn is_alive(&self, conn: &mut ServerConn) -> bool {
        conn.is_idle_and_open()
    }

    async fn reset(&self, conn: &mut ServerConn) -> Result<(), BackendError> {
        let target = self.target.load_full();
        conn.reset(&target).await
    }
}
