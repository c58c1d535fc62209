//! The pool's view of MySQL: how to open, check and reset a server connection.

use crate::backend::{ServerConn, ServerInfo};
use crate::error::BackendError;
use crate::target::ServerTarget;
use std::sync::{Arc, Mutex};

/// Opens server connections for one pool and remembers what the first one reported
/// (version, capabilities, collation), which clients are shown in maitred's handshake.
#[derive(Debug)]
pub struct MyManager {
    target: Arc<ServerTarget>,
    max_statements: usize,
    info: Mutex<Option<Arc<ServerInfo>>>,
}

impl MyManager {
    pub fn new(target: ServerTarget, max_statements: usize) -> MyManager {
        MyManager {
            target: Arc::new(target),
            max_statements,
            info: Mutex::new(None),
        }
    }

    pub fn target(&self) -> &Arc<ServerTarget> {
        &self.target
    }

    /// What a server connection reported, once one was opened.
    pub fn server_info(&self) -> Option<Arc<ServerInfo>> {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl maitred_pool::Manager for MyManager {
    type Connection = ServerConn;
    type Error = BackendError;

    async fn connect(&self) -> Result<ServerConn, BackendError> {
        let conn = ServerConn::connect(&self.target, self.max_statements).await?;
        let mut info = self.info.lock().unwrap_or_else(|p| p.into_inner());
        if info.is_none() {
            *info = Some(Arc::new(conn.info.clone()));
        }
        Ok(conn)
    }

    fn is_alive(&self, conn: &mut ServerConn) -> bool {
        conn.is_idle_and_open()
    }

    async fn reset(&self, conn: &mut ServerConn) -> Result<(), BackendError> {
        conn.reset(&self.target).await
    }
}
