//! maitred's own connection ids and what each client is doing, so that `KILL [QUERY] <id>`
//! sent from any client reaches the right server connection (the one the target client
//! holds at that moment) and `CONNECTION_ID()` shows maitred's id.
//!
//! KILL is allowed only on a connection of the same user of the same pool: MySQL lets only
//! the owner (or a holder of PROCESS/SUPER/CONNECTION_ADMIN) kill a thread, and maitred
//! sends the KILL with its own server credentials, so without this check any client could
//! kill any other client's query.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// One logged-in client as other clients may see it.
#[derive(Debug)]
pub struct ClientHandle {
    pub id: u32,
    /// Who logged in: (pool name, user name). Only the same owner may KILL this client.
    owner: (String, String),
    /// The server thread id of the connection the client holds; 0: none.
    server_thread: AtomicU32,
    killed: AtomicBool,
    notify: Notify,
}

impl ClientHandle {
    pub fn new(id: u32, pool: &str, user: &str) -> ClientHandle {
        ClientHandle {
            id,
            owner: (pool.to_owned(), user.to_owned()),
            server_thread: AtomicU32::new(0),
            killed: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    /// Whether `other` logged in as the same user of the same pool (and so may KILL this
    /// client).
    pub fn same_owner(&self, other: &ClientHandle) -> bool {
        self.owner == other.owner
    }

    pub fn set_server(&self, thread_id: u32) {
        self.server_thread.store(thread_id, Ordering::Release);
    }

    pub fn clear_server(&self) {
        self.server_thread.store(0, Ordering::Release);
    }

    /// The server thread running this client's commands now, if any.
    pub fn server_thread(&self) -> Option<u32> {
        Some(self.server_thread.load(Ordering::Acquire)).filter(|t| *t != 0)
    }

    /// Asks the client's session to end (KILL CONNECTION).
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Completes once [`kill`](Self::kill) was called.
    pub async fn killed(&self) {
        while !self.is_killed() {
            self.notify.notified().await;
        }
    }
}

/// Every logged-in client of the process, by maitred's connection id.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    map: Mutex<HashMap<u32, Arc<ClientHandle>>>,
}

impl ClientRegistry {
    pub fn register(&self, id: u32, pool: &str, user: &str) -> Arc<ClientHandle> {
        let h = Arc::new(ClientHandle::new(id, pool, user));
        self.lock().insert(id, h.clone());
        h
    }

    pub fn unregister(&self, id: u32) {
        self.lock().remove(&id);
    }

    pub fn get(&self, id: u32) -> Option<Arc<ClientHandle>> {
        self.lock().get(&id).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<ClientHandle>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registry_maps_ids_and_kill_wakes() {
        let r = ClientRegistry::default();
        let h = r.register(5, "p", "app");
        assert!(r.get(5).is_some());
        assert!(r.get(6).is_none());
        assert_eq!(h.server_thread(), None);
        h.set_server(99);
        assert_eq!(r.get(5).and_then(|h| h.server_thread()), Some(99));
        h.kill();
        tokio::time::timeout(std::time::Duration::from_secs(1), h.killed())
            .await
            .expect("woken");
        r.unregister(5);
        assert!(r.get(5).is_none());
    }

    #[test]
    fn only_the_same_user_of_the_same_pool_owns_a_client() {
        let r = ClientRegistry::default();
        let a = r.register(1, "p", "app");
        assert!(a.same_owner(&r.register(2, "p", "app")));
        assert!(!a.same_owner(&r.register(3, "p", "other")));
        assert!(!a.same_owner(&r.register(4, "q", "app")));
    }
}
