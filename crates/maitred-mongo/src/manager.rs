//! The pool's view of MongoDB: how to open and check a server connection; and what the
//! first server connection said about the server (advertised to clients in hello).

use crate::backend::{ServerConn, ServerInfo};
use crate::error::BackendError;
use crate::target::ServerTarget;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct MongoManager {
    /// Swapped by a reload that changes the upstream (see [`MongoManager::set_target`]).
    target: ArcSwap<ServerTarget>,
    info: Mutex<Option<ServerInfo>>,
    /// The server's maxMessageSizeBytes (0 until a connection was opened), read on every
    /// client message without a lock.
    max_message_size: AtomicUsize,
}

impl MongoManager {
    pub fn new(target: ServerTarget) -> MongoManager {
        MongoManager {
            target: ArcSwap::from_pointee(target),
            info: Mutex::new(None),
            max_message_size: AtomicUsize::new(0),
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

    /// The server's maxMessageSizeBytes, once a connection was opened.
    pub fn server_max_message_size(&self) -> Option<usize> {
        match self.max_message_size.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    /// The server's hello facts, once a connection was opened.
    pub fn server_info(&self) -> Option<ServerInfo> {
        self.info.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl maitred_pool::Manager for MongoManager {
    type Connection = ServerConn;
    type Error = BackendError;

    async fn connect(&self) -> Result<ServerConn, BackendError> {
        let target = self.target.load_full();
        let conn = ServerConn::connect(&target).await?;
        let max = conn.info.max_message_size_bytes.max(0) as usize;
        self.max_message_size.store(max, Ordering::Relaxed);
        *self.info.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.info.clone());
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
