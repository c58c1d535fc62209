//! The pool's view of MySQL: how to open, check and reset a server connection.

use crate::backend::{ServerConn, ServerInfo};
use crate::error::BackendError;
use crate::target::ServerTarget;
use maitred_frontend::upstream::{Reported, Upstream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Opens server connections for one pool and remembers what the first one reported
/// (version, capabilities, collation), which clients are shown in maitred's handshake.
#[derive(Debug)]
pub struct MysqlManager {
    target: Upstream<ServerTarget>,
    max_statements: usize,
    info: Reported<Arc<ServerInfo>>,
    /// CLIENT_FOUND_ROWS on new connections: what the last client that needed a
    /// connection reopened asked for, so a pool whose clients all want one kind
    /// converges on it.
    found_rows: AtomicBool,
}

impl MysqlManager {
    pub fn new(target: ServerTarget, max_statements: usize) -> MysqlManager {
        MysqlManager {
            target: Upstream::new(target),
            max_statements,
            info: Reported::default(),
            found_rows: AtomicBool::new(false),
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

    /// A new server connection with CLIENT_FOUND_ROWS as `found_rows`, to replace a
    /// leased one opened with the other flag; new connections use it from now on.
    pub async fn open_with_found_rows(&self, found_rows: bool) -> Result<ServerConn, BackendError> {
        self.found_rows.store(found_rows, Ordering::Relaxed);
        ServerConn::connect(&self.target.get(), self.max_statements, found_rows).await
    }

    /// What a server connection reported, once one was opened.
    pub fn server_info(&self) -> Option<Arc<ServerInfo>> {
        self.info.get()
    }
}

impl maitred_pool::Manager for MysqlManager {
    type Connection = ServerConn;
    type Error = BackendError;

    async fn connect(&self) -> Result<ServerConn, BackendError> {
        let found_rows = self.found_rows.load(Ordering::Relaxed);
        let conn = ServerConn::connect(&self.target.get(), self.max_statements, found_rows).await?;
        self.info.first(|| Arc::new(conn.info.clone()));
        Ok(conn)
    }

    fn is_alive(&self, conn: &mut ServerConn) -> bool {
        conn.is_idle_and_open()
    }

    async fn reset(&self, conn: &mut ServerConn) -> Result<(), BackendError> {
        conn.reset(&self.target.get()).await
    }
}
