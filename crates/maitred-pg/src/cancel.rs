//! Cancel requests: maitred hands clients its own BackendKeyData and forwards a client's
//! CancelRequest to the server connection serving that client at that moment, if any.
//!
//! Spec: <https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.9>.

use crate::target::ServerTarget;
use bytes::BytesMut;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// One client's cancel key and the server connection it is using right now.
#[derive(Debug)]
pub struct CancelHandle {
    pub process_id: u32,
    pub secret_key: u32,
    target: Arc<ServerTarget>,
    /// The server's (process_id << 32 | secret_key) while the client holds a lease; 0 if none.
    current: AtomicU64,
}

impl CancelHandle {
    /// Records the server connection now serving the client.
    pub fn set_server(&self, process_id: i32, secret_key: i32) {
        let packed = (u64::from(process_id as u32) << 32) | u64::from(secret_key as u32);
        self.current.store(packed, Ordering::Release);
    }

    /// The client no longer holds a server connection.
    pub fn clear_server(&self) {
        self.current.store(0, Ordering::Release);
    }

    fn server_key(&self) -> Option<(i32, i32)> {
        match self.current.load(Ordering::Acquire) {
            0 => None,
            p => Some(((p >> 32) as u32 as i32, p as u32 as i32)),
        }
    }
}

/// Every logged-in client's cancel key, shared by all listeners.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    next_id: AtomicU32,
    clients: Mutex<HashMap<u32, Arc<CancelHandle>>>,
}

impl CancelRegistry {
    /// Issues a fresh key for a client that just logged in.
    pub fn register(&self, target: Arc<ServerTarget>) -> Arc<CancelHandle> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut id = self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        while id == 0 || clients.contains_key(&id) {
            id = self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        }
        let handle = Arc::new(CancelHandle {
            process_id: id,
            secret_key: rand::random(),
            target,
            current: AtomicU64::new(0),
        });
        clients.insert(id, handle.clone());
        handle
    }

    pub fn unregister(&self, handle: &CancelHandle) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.remove(&handle.process_id);
    }

    /// Handles a CancelRequest: forwards it when the key matches and the client is being
    /// served; otherwise does nothing (as PostgreSQL does, the requester learns nothing).
    pub async fn cancel(&self, process_id: u32, secret_key: u32) {
        let handle = {
            let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            clients.get(&process_id).cloned()
        };
        let Some(handle) = handle else { return };
        if !bool::from(handle.secret_key.ct_eq(&secret_key)) {
            return;
        }
        if let Some((pid, key)) = handle.server_key() {
            if let Err(e) = send_cancel(&handle.target, pid, key).await {
                tracing::warn!(error = %e, "could not forward a cancel request to the server");
            }
        }
    }
}

/// Sends a CancelRequest for a server process on a new connection.
pub async fn send_cancel(
    target: &ServerTarget,
    process_id: i32,
    secret_key: i32,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    postgres_protocol::message::frontend::cancel_request(process_id, secret_key, &mut out);
    if let Some(path) = target.socket_path() {
        let mut stream = tokio::net::UnixStream::connect(path).await?;
        stream.write_all(&out).await?;
        return stream.shutdown().await;
    }
    let mut stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
    stream.write_all(&out).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Arc<ServerTarget> {
        Arc::new(ServerTarget {
            host: "127.0.0.1".into(),
            port: 1,
            user: "u".into(),
            password: None,
            passthrough: None,
            database: "d".into(),
            startup_params: vec![],
            tls: crate::tls::ServerTls::disabled(),
            socket_dir: None,
        })
    }

    #[test]
    fn keys_are_unique_and_packing_round_trips() {
        let reg = CancelRegistry::default();
        let a = reg.register(target());
        let b = reg.register(target());
        assert_ne!(a.process_id, b.process_id);
        assert_eq!(a.server_key(), None);
        a.set_server(-5, i32::MIN);
        assert_eq!(a.server_key(), Some((-5, i32::MIN)));
        a.clear_server();
        assert_eq!(a.server_key(), None);
        reg.unregister(&a);
        assert!(reg
            .clients
            .lock()
            .expect("lock")
            .get(&a.process_id)
            .is_none());
    }
}
