//! [`PoolClients`]: the client connections of one pool, whatever its protocol, and the
//! traffic they make. A client registers once logged in and gets a [`ClientTicket`]; the
//! relay records what the client is doing with one relaxed atomic store per change, and
//! selects on [`ClientTicket::killed`] so that the console's KILL can end it. Dropping the
//! ticket removes the client.
//!
//! Counting by state happens when someone asks (a scrape, SHOW POOLS), by walking the
//! clients, so the hot path pays nothing for it.

use crate::kill::{KillSwitch, Killed};
use crate::traffic::Traffic;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// Client ids are unique across the pools of the process.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What a client is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Logged in, holding no server connection.
    Idle,
    /// Queued for (or opening) a server connection.
    Waiting,
    /// Holding a server connection.
    Active,
}

impl ClientState {
    pub const ALL: [ClientState; 3] =
        [ClientState::Active, ClientState::Waiting, ClientState::Idle];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Idle => "idle",
            ClientState::Waiting => "waiting",
            ClientState::Active => "active",
        }
    }

    fn from_u8(v: u8) -> ClientState {
        match v {
            1 => ClientState::Waiting,
            2 => ClientState::Active,
            _ => ClientState::Idle,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            ClientState::Idle => 0,
            ClientState::Waiting => 1,
            ClientState::Active => 2,
        }
    }
}

/// Who a client is, as it logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub user: String,
    /// The database the client asked for (empty when its protocol names none).
    pub database: String,
    /// The client's address, when known.
    pub addr: Option<SocketAddr>,
    /// Whether the client connection is encrypted.
    pub tls: bool,
}

/// A snapshot of one client, for SHOW CLIENTS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub id: u64,
    pub identity: ClientIdentity,
    pub connected_at: SystemTime,
    pub state: ClientState,
    /// How long it has been waiting, when waiting.
    pub waiting_for: Option<Duration>,
}

/// Clients by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounts {
    pub active: usize,
    pub waiting: usize,
    pub idle: usize,
    /// The longest current wait of a waiting client.
    pub max_wait: Duration,
}

impl ClientCounts {
    pub fn of(&self, state: ClientState) -> usize {
        match state {
            ClientState::Active => self.active,
            ClientState::Waiting => self.waiting,
            ClientState::Idle => self.idle,
        }
    }
}

/// One registered client.
#[derive(Debug)]
struct Entry {
    id: u64,
    identity: ClientIdentity,
    connected_at: SystemTime,
    state: AtomicU8,
    /// Nanoseconds since [`epoch`] when the client started waiting.
    waiting_since: AtomicU64,
    kill: KillSwitch,
}

/// The monotonic origin of `waiting_since`.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn nanos_since_epoch() -> u64 {
    u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The clients of one pool and their traffic.
#[derive(Debug, Default)]
pub struct PoolClients {
    clients: Mutex<HashMap<u64, Arc<Entry>>>,
    /// Bytes and queries relayed for this pool's clients.
    pub traffic: Traffic,
}

impl PoolClients {
    pub fn new() -> Arc<PoolClients> {
        Arc::new(PoolClients::default())
    }

    /// Adds a logged-in client; it is removed when the ticket is dropped.
    pub fn register(self: &Arc<Self>, identity: ClientIdentity) -> ClientTicket {
        let entry = Arc::new(Entry {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            identity,
            connected_at: SystemTime::now(),
            state: AtomicU8::new(ClientState::Idle.to_u8()),
            waiting_since: AtomicU64::new(0),
            kill: KillSwitch::default(),
        });
        self.lock().insert(entry.id, entry.clone());
        ClientTicket {
            entry,
            pool: self.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Entry>>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn entries(&self) -> Vec<Arc<Entry>> {
        self.lock().values().cloned().collect()
    }

    /// How many clients are connected.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Clients by state, and the longest current wait.
    pub fn counts(&self) -> ClientCounts {
        let now = nanos_since_epoch();
        let mut c = ClientCounts::default();
        for e in self.lock().values() {
            match ClientState::from_u8(e.state.load(Ordering::Relaxed)) {
                ClientState::Active => c.active += 1,
                ClientState::Idle => c.idle += 1,
                ClientState::Waiting => {
                    c.waiting += 1;
                    let since = e.waiting_since.load(Ordering::Relaxed);
                    c.max_wait = c
                        .max_wait
                        .max(Duration::from_nanos(now.saturating_sub(since)));
                }
            }
        }
        c
    }

    /// Every client, oldest first.
    pub fn list(&self) -> Vec<ClientInfo> {
        let now = nanos_since_epoch();
        let mut all: Vec<ClientInfo> = self
            .entries()
            .iter()
            .map(|e| {
                let state = ClientState::from_u8(e.state.load(Ordering::Relaxed));
                let waiting_for = (state == ClientState::Waiting).then(|| {
                    Duration::from_nanos(
                        now.saturating_sub(e.waiting_since.load(Ordering::Relaxed)),
                    )
                });
                ClientInfo {
                    id: e.id,
                    identity: e.identity.clone(),
                    connected_at: e.connected_at,
                    state,
                    waiting_for,
                }
            })
            .collect();
        all.sort_by_key(|c| c.id);
        all
    }

    /// Asks every client of the pool to end; returns how many were asked.
    pub fn kill_all(&self) -> usize {
        let entries = self.entries();
        for e in &entries {
            e.kill.kill();
        }
        entries.len()
    }
}

/// A registered client, held by its session.
#[derive(Debug)]
pub struct ClientTicket {
    entry: Arc<Entry>,
    pool: Arc<PoolClients>,
}

impl ClientTicket {
    pub fn id(&self) -> u64 {
        self.entry.id
    }

    /// Records what the client is doing now (a relaxed store; the time too when it starts
    /// waiting).
    pub fn set_state(&self, state: ClientState) {
        if state == ClientState::Waiting {
            self.entry
                .waiting_since
                .store(nanos_since_epoch(), Ordering::Relaxed);
        }
        self.entry.state.store(state.to_u8(), Ordering::Relaxed);
    }

    pub fn state(&self) -> ClientState {
        ClientState::from_u8(self.entry.state.load(Ordering::Relaxed))
    }

    pub fn is_killed(&self) -> bool {
        self.entry.kill.is_killed()
    }

    /// Completes once the client was killed (at once if it already was).
    pub fn killed(&self) -> Killed<'_> {
        self.entry.kill.killed()
    }

    /// A handle that only waits for the kill, to select on while the session itself is
    /// borrowed.
    pub fn kill_signal(&self) -> KillSignal {
        KillSignal(self.entry.clone())
    }

    /// The pool's traffic counters.
    pub fn traffic(&self) -> &Traffic {
        &self.pool.traffic
    }
}

/// See [`ClientTicket::kill_signal`].
#[derive(Debug, Clone)]
pub struct KillSignal(Arc<Entry>);

impl KillSignal {
    /// Completes once the client was killed (at once if it already was).
    pub fn killed(&self) -> Killed<'_> {
        self.0.kill.killed()
    }
}

impl Drop for ClientTicket {
    fn drop(&mut self) {
        self.pool.lock().remove(&self.entry.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn someone(user: &str) -> ClientIdentity {
        ClientIdentity {
            user: user.to_owned(),
            database: "app".to_owned(),
            addr: Some(SocketAddr::from(([127, 0, 0, 1], 5000))),
            tls: false,
        }
    }

    #[test]
    fn counts_follow_states_and_tickets() {
        let pool = PoolClients::new();
        let a = pool.register(someone("a"));
        let b = pool.register(someone("b"));
        let c = pool.register(someone("c"));
        a.set_state(ClientState::Active);
        b.set_state(ClientState::Waiting);
        let n = pool.counts();
        assert_eq!((n.active, n.waiting, n.idle), (1, 1, 1));
        let listed = pool.list();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].identity.user, "a");
        assert_eq!(listed[0].state, ClientState::Active);
        assert!(listed[1].waiting_for.is_some());
        assert_eq!(listed[2].waiting_for, None);
        assert!(listed[0].id < listed[1].id);
        drop(b);
        drop(c);
        let n = pool.counts();
        assert_eq!((n.active, n.waiting, n.idle), (1, 0, 0));
        assert_eq!(n.max_wait, Duration::ZERO);
        assert_eq!(pool.len(), 1);
    }

    #[tokio::test]
    async fn kill_all_wakes_every_session_of_the_pool_only() {
        let pool = PoolClients::new();
        let other = PoolClients::new();
        let a = pool.register(someone("a"));
        let b = pool.register(someone("b"));
        let bystander = other.register(someone("c"));
        let waiter = tokio::spawn(async move {
            a.killed().await;
            a.is_killed()
        });
        tokio::task::yield_now().await;
        assert_eq!(pool.kill_all(), 2);
        let woke = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("woken")
            .expect("task");
        assert!(woke);
        // Killed before anyone waited: resolves at once.
        tokio::time::timeout(Duration::from_millis(100), b.killed())
            .await
            .expect("already killed");
        assert!(!bystander.is_killed());
    }
}
