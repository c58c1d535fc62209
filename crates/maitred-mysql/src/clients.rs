//! maitred's own connection ids and what each client is doing, so that `KILL [QUERY] <id>`
//! sent from any client reaches the right server connection (the one the target client
//! holds at that moment) and `CONNECTION_ID()` shows maitred's id.
//!
//! A KILL names a server thread, and the server runs it a moment later: by then the
//! target may have let go of that connection and another client may run a query on it.
//! So a KILL is aimed ([`ClientHandle::aim_kill`]) while the target holds the thread, and
//! a client that lets go of its connection while a KILL is aimed at it
//! ([`ClientHandle::clear_server`] says so) closes that connection instead of handing it
//! to anyone else. Both sides use sequentially consistent atomics: either the killer sees
//! the thread already let go (and kills nothing), or the target sees the aim (and closes).
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
    /// KILLs aimed at this client's server thread and not yet answered.
    kills_in_flight: AtomicU32,
    killed: AtomicBool,
    notify: Notify,
}

impl ClientHandle {
    pub fn new(id: u32, pool: &str, user: &str) -> ClientHandle {
        ClientHandle {
            id,
            owner: (pool.to_owned(), user.to_owned()),
            server_thread: AtomicU32::new(0),
            kills_in_flight: AtomicU32::new(0),
            killed: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    /// Whether `other` logged in as the same user of the same pool (and so may KILL this
    /// client).
    pub fn same_owner(&self, other: &ClientHandle) -> bool {
        self.owner == other.owner
    }

    /// Whether `other` logged in to the same pool (the same server: its thread ids are
    /// comparable with this client's).
    pub fn same_pool(&self, other: &ClientHandle) -> bool {
        self.owner.0 == other.owner.0
    }

    pub fn set_server(&self, thread_id: u32) {
        self.server_thread.store(thread_id, Ordering::SeqCst);
    }

    /// The client lets go of its server connection. `true`: a KILL aimed at that
    /// connection's thread may still be on its way, so the connection must not serve
    /// anyone else (close it).
    #[must_use = "a connection let go while a KILL is aimed at it must be closed"]
    pub fn clear_server(&self) -> bool {
        self.server_thread.store(0, Ordering::SeqCst);
        self.kills_in_flight.load(Ordering::SeqCst) > 0
    }

    /// The server thread running this client's commands now, if any.
    pub fn server_thread(&self) -> Option<u32> {
        Some(self.server_thread.load(Ordering::SeqCst)).filter(|t| *t != 0)
    }

    /// Like [`aim_kill`](Self::aim_kill), but only while the client holds server thread
    /// `thread` (a KILL that named the thread, not the client).
    pub fn aim_kill_at(self: &Arc<Self>, thread: u32) -> Option<KillAim> {
        self.aim_kill().filter(|aim| aim.thread == thread)
    }

    /// Aims a KILL at the server thread this client holds now: `None` if it holds none.
    /// Until the returned aim is dropped (once the server answered the KILL), a connection
    /// this client lets go of is closed, not reused, so the KILL cannot reach a query of
    /// whoever would have had that connection next.
    pub fn aim_kill(self: &Arc<Self>) -> Option<KillAim> {
        self.kills_in_flight.fetch_add(1, Ordering::SeqCst);
        let mut aim = KillAim {
            handle: self.clone(),
            thread: 0,
        };
        // Dropped without a thread, the aim is taken back at once.
        aim.thread = self.server_thread.load(Ordering::SeqCst);
        (aim.thread != 0).then_some(aim)
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

/// A KILL on its way to [`KillAim::thread`]; see [`ClientHandle::aim_kill`].
#[derive(Debug)]
pub struct KillAim {
    handle: Arc<ClientHandle>,
    pub thread: u32,
}

impl Drop for KillAim {
    fn drop(&mut self) {
        self.handle.kills_in_flight.fetch_sub(1, Ordering::SeqCst);
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

    /// The client of `asker`'s pool that holds server thread `thread` now (the ids
    /// `SHOW PROCESSLIST` shows). KILL is rare: a scan of the clients is fine.
    pub fn holding_thread(&self, asker: &ClientHandle, thread: u32) -> Option<Arc<ClientHandle>> {
        self.lock()
            .values()
            .find(|h| h.same_pool(asker) && h.server_thread() == Some(thread))
            .cloned()
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
    fn a_connection_let_go_while_a_kill_is_aimed_at_it_is_not_reused() {
        let r = ClientRegistry::default();
        let h = r.register(1, "p", "app");
        // Nothing held: nothing to aim at, and no trace left.
        assert!(h.aim_kill().is_none());
        h.set_server(9);
        assert!(
            !h.clear_server(),
            "no KILL aimed: the connection may be reused"
        );
        h.set_server(9);
        let aim = h.aim_kill().expect("aimed");
        assert_eq!(aim.thread, 9);
        assert!(
            h.clear_server(),
            "a KILL is on its way to thread 9: close it"
        );
        h.set_server(10);
        assert!(h.clear_server(), "still on its way");
        drop(aim);
        h.set_server(10);
        assert!(!h.clear_server(), "answered: reuse is fine again");
    }

    #[test]
    fn a_server_thread_names_the_client_of_the_same_pool_holding_it_now() {
        let r = ClientRegistry::default();
        let asker = r.register(1, "p", "app");
        let holder = r.register(2, "p", "app");
        let elsewhere = r.register(3, "q", "app");
        holder.set_server(40);
        elsewhere.set_server(41);
        assert_eq!(r.holding_thread(&asker, 40).map(|h| h.id), Some(2));
        assert!(
            r.holding_thread(&asker, 41).is_none(),
            "another pool's server"
        );
        let aim = holder.aim_kill_at(40).expect("holds 40");
        drop(aim);
        assert!(holder.aim_kill_at(39).is_none(), "moved on: not aimed");
        assert!(
            !holder.clear_server(),
            "an aim not taken leaves nothing in flight"
        );
        assert!(r.holding_thread(&asker, 40).is_none(), "let go");
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
