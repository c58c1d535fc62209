//! [`ClientLimits`]: the limits a pool puts on its clients (as opposed to its server
//! connections), the same for every protocol, and [`ClientCount`], the `max_clients`
//! bound. Each protocol crate enforces them in its front end and relay.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Limits on one pool's clients. `None` durations are off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// From connect to the end of login.
    pub login_timeout: Duration,
    /// Silence allowed from a client inside a transaction.
    pub idle_transaction_timeout: Option<Duration>,
    /// Silence allowed from a client outside any transaction.
    pub idle_timeout: Option<Duration>,
    /// Time allowed for the server to answer a request.
    pub query_timeout: Option<Duration>,
    /// Clients connected at once.
    pub max_clients: usize,
    /// Largest message a client may send, in bytes.
    pub max_message_size: usize,
}

impl ClientLimits {
    /// Default [`login_timeout`](Self::login_timeout): 15 s.
    pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(15);
    /// Default [`max_clients`](Self::max_clients): 10 000.
    pub const DEFAULT_MAX_CLIENTS: usize = 10_000;

    /// Limits with the login timeout and client count defaults, no idle or query timeout,
    /// and the protocol's `max_message_size`.
    pub fn new(max_message_size: usize) -> Self {
        ClientLimits {
            login_timeout: Self::DEFAULT_LOGIN_TIMEOUT,
            idle_transaction_timeout: None,
            idle_timeout: None,
            query_timeout: None,
            max_clients: Self::DEFAULT_MAX_CLIENTS,
            max_message_size,
        }
    }

    /// When a client that has been in `state` since `since` runs out of time, if ever.
    pub fn deadline(&self, state: ClientState, since: Instant) -> Option<Instant> {
        self.limit_for(state).map(|d| since + d)
    }

    /// How long a client may stay in `state`, if a limit applies.
    pub fn limit_for(&self, state: ClientState) -> Option<Duration> {
        match state {
            ClientState::Idle => self.idle_timeout,
            ClientState::IdleInTransaction => self.idle_transaction_timeout,
            ClientState::AwaitingServer => self.query_timeout,
            ClientState::Other => None,
        }
    }
}

/// What a logged-in client is doing, as far as the time limits care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// Outside any transaction, nothing owed by the server.
    Idle,
    /// Inside a transaction, nothing owed by the server: the next move is the client's.
    IdleInTransaction,
    /// The server owes an answer.
    AwaitingServer,
    /// Anything else (e.g. pinned between transactions): no limit applies.
    Other,
}

/// Tracks how long a client has been in its current [`ClientState`], and says when it is
/// out of time. The clock is read only while a limit applies to the current state: most
/// pools set none, and this runs several times per transaction.
#[derive(Debug)]
pub struct ClientClock {
    state: ClientState,
    /// When the client entered `state` (or last showed activity); `None` until a limit
    /// needs it, and after a change, to be read at the next [`observe`](Self::observe).
    since: Option<Instant>,
}

impl Default for ClientClock {
    fn default() -> Self {
        ClientClock {
            state: ClientState::Other,
            since: None,
        }
    }
}

impl ClientClock {
    /// Records the client's state now (the clock restarts when it changed) and returns
    /// its deadline under `limits`.
    pub fn observe(&mut self, state: ClientState, limits: &ClientLimits) -> Option<Instant> {
        if state != self.state {
            self.state = state;
            self.since = None;
        }
        let limit = limits.limit_for(state)?;
        Some(*self.since.get_or_insert_with(Instant::now) + limit)
    }

    /// The client sent something: an idle client's silence starts over.
    pub fn client_active(&mut self) {
        if self.state != ClientState::AwaitingServer {
            self.since = None;
        }
    }

    /// The state the last deadline was computed for.
    pub fn state(&self) -> ClientState {
        self.state
    }
}

/// Waits until `deadline`, or forever when there is none.
pub async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// How many clients a pool has, bounded by `max_clients`.
#[derive(Debug)]
pub struct ClientCount {
    max: usize,
    now: Arc<AtomicUsize>,
}

impl ClientCount {
    pub fn new(max: usize) -> Self {
        ClientCount {
            max,
            now: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Takes a place for one more client, or `None` when `max` are connected.
    pub fn try_admit(&self) -> Option<ClientSlot> {
        self.now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| ClientSlot {
                now: self.now.clone(),
            })
    }

    /// Clients connected now.
    pub fn current(&self) -> usize {
        self.now.load(Ordering::Acquire)
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// One client's place under `max_clients`; given back when dropped.
#[derive(Debug)]
pub struct ClientSlot {
    now: Arc<AtomicUsize>,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.now.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_admits_up_to_max_and_frees_on_drop() {
        let count = ClientCount::new(2);
        let a = count.try_admit().expect("first");
        let b = count.try_admit().expect("second");
        assert!(count.try_admit().is_none());
        assert_eq!(count.current(), 2);
        drop(a);
        let c = count.try_admit().expect("a place was freed");
        assert!(count.try_admit().is_none());
        drop((b, c));
        assert_eq!(count.current(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn clock_restarts_on_state_change_and_on_idle_activity() {
        let limits = ClientLimits {
            idle_timeout: Some(Duration::from_secs(10)),
            idle_transaction_timeout: Some(Duration::from_secs(3)),
            query_timeout: Some(Duration::from_secs(1)),
            ..ClientLimits::new(1024)
        };
        let start = Instant::now();
        let mut clock = ClientClock::default();
        assert_eq!(
            clock.observe(ClientState::Idle, &limits),
            Some(start + Duration::from_secs(10))
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        // Same state: the deadline does not move.
        assert_eq!(
            clock.observe(ClientState::Idle, &limits),
            Some(start + Duration::from_secs(10))
        );
        clock.client_active();
        assert_eq!(
            clock.observe(ClientState::Idle, &limits),
            Some(start + Duration::from_secs(12))
        );
        assert_eq!(
            clock.observe(ClientState::AwaitingServer, &limits),
            Some(start + Duration::from_secs(3))
        );
        // Client bytes while the server owes an answer do not extend the query's time.
        tokio::time::advance(Duration::from_millis(500)).await;
        clock.client_active();
        assert_eq!(
            clock.observe(ClientState::AwaitingServer, &limits),
            Some(start + Duration::from_secs(3))
        );
        assert_eq!(clock.observe(ClientState::Other, &limits), None);
    }

    #[test]
    fn off_limits_have_no_deadline() {
        let limits = ClientLimits::new(1024);
        let now = Instant::now();
        for state in [
            ClientState::Idle,
            ClientState::IdleInTransaction,
            ClientState::AwaitingServer,
            ClientState::Other,
        ] {
            assert_eq!(limits.deadline(state, now), None);
        }
    }
}
