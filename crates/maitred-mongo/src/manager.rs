//! The pool's view of MongoDB: how to open and check a server connection; and what the
//! first server connection said about the server (advertised to clients in hello).

use crate::backend::{ServerConn, ServerInfo};
use crate::error::BackendError;
use crate::target::ServerTarget;
use maitred_frontend::upstream::{Reported, Upstream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug)]
pub struct MongoManager {
    target: Upstream<ServerTarget>,
    info: Reported<ServerInfo>,
    /// The server's maxMessageSizeBytes (0 until a connection was opened), read on every
    /// client message without a lock.
    max_message_size: AtomicUsize,
}

impl MongoManager {
    pub fn new(target: ServerTarget) -> MongoManager {
        MongoManager {
            target: Upstream::new(target),
            info: Reported::default(),
            max_message_size: AtomicUsize::new(0),
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

    /// The server's maxMessageSizeBytes, once a connection was opened.
    pub fn server_max_message_size(&self) -> Option<usize> {
        match self.max_message_size.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// The server's hello facts, once a connection was opened (the latest one's).
    pub fn server_info(&self) -> Option<ServerInfo> {
        self.info.get()
    }
}

impl maitred_pool::Manager for MongoManager {
    type Connection = ServerConn;
    type Error = BackendError;

    async fn connect(&self) -> Result<ServerConn, BackendError> {
        let conn = ServerConn::connect(&self.target.get()).await?;
        let max = conn.info.max_message_size_bytes.max(0) as usize;
        self.max_message_size.store(max, Ordering::Relaxed);
        self.info.latest(conn.info.clone());
        Ok(conn)
    }

    fn is_alive(&self, conn: &mut ServerConn) -> bool {
        conn.is_idle_and_open()
    }

    /// The relay cleans up itself (abortTransaction, killCursors) before it releases a
    /// connection; one returned dirty is in an unknown state and is closed.
    async fn reset(&self, _conn: &mut ServerConn) -> Result<(), BackendError> {
        Err(BackendError::Dirty)
    }
}
