//! The pool's view of PostgreSQL: how to open, check and reset a server connection.

use crate::backend::ServerConn;
use crate::error::BackendError;
use crate::target::ServerTarget;
use maitred_frontend::upstream::{Reported, Upstream};
use std::sync::Arc;

/// Server settings as (name, value) pairs, sorted by name.
pub type ServerParams = Arc<Vec<(String, String)>>;

/// Opens server connections for one pool and remembers the settings a fresh server
/// connection reports, which clients are shown at login.
#[derive(Debug)]
pub struct PgManager {
    target: Upstream<ServerTarget>,
    prepared_capacity: usize,
    server_params: Reported<ServerParams>,
}

impl PgManager {
    pub fn new(target: ServerTarget, prepared_capacity: usize) -> PgManager {
        PgManager {
            target: Upstream::new(target),
            prepared_capacity,
            server_params: Reported::default(),
        }
    }

    pub fn target(&self) -> Arc<ServerTarget> {
        self.target.get()
    }

    /// New server connections go to `target` from now on (a reload changed the upstream);
    /// the pool must retire the open ones (`Pool::reconnect`).
    pub fn set_target(&self, target: ServerTarget) {
        self.target.set(target);
    }

    /// The ParameterStatus values of a freshly opened server connection, once one was opened.
    pub fn server_params(&self) -> Option<ServerParams> {
        self.server_params.get()
    }
}

impl maitred_pool::Manager for PgManager {
    type Connection = ServerConn;
    type Error = BackendError;

    async fn connect(&self) -> Result<ServerConn, BackendError> {
        let conn = ServerConn::connect(&self.target.get(), self.prepared_capacity).await?;
        self.server_params.first(|| {
            let mut params: Vec<(String, String)> = conn
                .params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            params.sort();
            Arc::new(params)
        });
        Ok(conn)
    }

    fn is_alive(&self, conn: &mut ServerConn) -> bool {
        conn.is_idle_and_open()
    }

    async fn reset(&self, conn: &mut ServerConn) -> Result<(), BackendError> {
        conn.reset(&self.target.get()).await
    }
}
