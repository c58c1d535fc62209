//! State shared by pool handles, leases and the maintenance task: the slot
//! count, the lock-free idle queue, hand-off to waiters, and closing.
//!
//! # Invariants
//!
//! - `total` counts every connection that exists or may exist: idle, leased,
//!   being opened, being reset, held by the maintenance task, or in flight to
//!   a waiter as a [`Grant`]. It only grows by a CAS that refuses to pass
//!   `max_size`, so the pool never has more than `max_size` connections. A
//!   connection is always dropped *before* its slot is released.
//! - Whoever adds to the idle queue or frees a slot then checks `waiting`,
//!   and whoever joins the wait queue then tries to dispatch; both sides put a
//!   SeqCst fence between their write and their read (Dekker), so a waiter
//!   can never sleep while a connection sits idle or a slot is free.
//! - `total` may exceed `max_size` for a while after a reload lowered it: the
//!   surplus is closed as it comes back, and no slot is reserved meanwhile.
//! - A connection of an older `generation` (before [`Shared::reconnect`]) is
//!   never handed out again: closed when idle or when it comes back.
//! - In a fleet (`fleet` set), a slot is reserved only with a granted token
//!   ([`FleetShare::try_use`]) and every freed slot gives its token back
//!   ([`FleetShare::unuse`]), so `total` never exceeds the tokens the replica holds.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;

use crate::idle::IdleQueue;
use tokio::time::Instant;

use crate::fleet::FleetShare;
use crate::gate::ConnectGate;
use crate::manager::Manager;
use crate::saturation::SaturationLog;
use crate::settings::PoolSettings;
use crate::stats::{bump, Counters, PoolState};
use crate::waiters::{Grant, WaitQueue};

pub(crate) use crate::pooled::{Health, OpenError, Pooled, PooledConn, Reuse};

/// Everything behind a [`Pool`](crate::Pool) handle.
pub(crate) struct Shared<M: Manager> {
    pub(crate) manager: M,
    /// Fixed for the pool's life (settings' `name` changes are ignored by reconfigure).
    name: String,
    /// Swapped whole by [`Shared::reconfigure`]; read with one atomic load.
    settings: ArcSwap<PoolSettings>,
    pub(crate) counters: Counters,
    pub(crate) waiters: WaitQueue<M::Connection>,
    pub(crate) maintenance_started: AtomicBool,
    /// Whether the queue-timeout sweeper runs (see `sweeper.rs`).
    pub(crate) sweeper_started: AtomicBool,
    /// Rate-limited warnings when clients queue, time out or wait long.
    pub(crate) saturation: SaturationLog,
    pub(crate) gate: ConnectGate,
    idle: IdleQueue<Pooled<M::Connection>>,
    pub(crate) total: AtomicUsize,
    closed: AtomicBool,
    /// While set, nothing is handed out: checkouts wait (see [`Shared::pause`]).
    paused: AtomicBool,
    generation: AtomicU64,
    /// The replica's tokens when the pool is in a fleet (set once, before serving).
    pub(crate) fleet: OnceLock<Arc<FleetShare>>,
}

impl<M: Manager> Shared<M> {
    pub(crate) fn new(manager: M, settings: PoolSettings) -> Self {
        Self {
            manager,
            name: settings.name.clone(),
            idle: IdleQueue::new(),
            settings: ArcSwap::from_pointee(settings),
            counters: Counters::default(),
            waiters: WaitQueue::new(),
            maintenance_started: AtomicBool::new(false),
            sweeper_started: AtomicBool::new(false),
            saturation: SaturationLog::new(),
            gate: ConnectGate::default(),
            total: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            fleet: OnceLock::new(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The current settings (one atomic load; hold it briefly).
    pub(crate) fn settings(&self) -> arc_swap::Guard<Arc<PoolSettings>> {
        self.settings.load()
    }

    /// Applies new bounds and timeouts to a running pool. A larger `max_size` is offered
    /// to waiters at once; a smaller one closes idle surplus now and busy surplus as it
    /// comes back. Leased connections are never taken away.
    pub(crate) fn reconfigure(&self, mut settings: PoolSettings) {
        settings.name.clone_from(&self.name);
        let max = settings.max_size;
        self.settings.store(Arc::new(settings));
        while self.total.load(SeqCst) > max {
            let Some(pooled) = self.idle.pop() else { break };
            tracing::debug!(pool = %self.name(), "closing idle connection above the new max_size");
            self.close_conn(pooled);
        }
        // Waiters parked under the old queue_timeout keep their deadlines; the sweeper
        // looks again in case the new one is shorter.
        self.waiters.rearm.notify_one();
        fence(SeqCst);
        if self.waiters.waiting() > 0 {
            self.dispatch();
        }
    }

    /// Stops handing out connections until [`resume`](Self::resume): new and waiting
    /// checkouts wait (still bounded by `queue_timeout`), leased ones finish normally.
    pub(crate) fn pause(&self) {
        self.paused.store(true, SeqCst);
    }

    pub(crate) fn resume(&self) {
        self.paused.store(false, SeqCst);
        fence(SeqCst);
        if self.waiters.waiting() > 0 {
            self.dispatch();
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(SeqCst)
    }

    /// Retires every current server connection: idle ones are closed now, leased ones
    /// when they come back; new ones are opened as needed (e.g. after the upstream's
    /// address or credentials changed).
    pub(crate) fn reconnect(&self) {
        let current = self.generation.fetch_add(1, SeqCst) + 1;
        for _ in 0..self.idle.len() {
            let Some(pooled) = self.idle.pop() else { break };
            if pooled.generation < current {
                bump(&self.counters.closed_expired);
                self.close_conn(pooled);
            } else {
                self.push_idle(pooled);
            }
        }
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(SeqCst)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(SeqCst)
    }

    pub(crate) fn idle_len(&self) -> usize {
        self.idle.len()
    }

    pub(crate) fn state(&self) -> PoolState {
        let size = self.total.load(SeqCst);
        let idle = self.idle.len();
        PoolState {
            size,
            idle,
            busy: size.saturating_sub(idle),
            waiting: self.waiters.waiting(),
            max_size: self.settings.load().max_size,
        }
    }

    /// Reserves one slot of `total` if that stays within `max_size`.
    /// In a fleet, also takes a granted token (or fails without one).
    pub(crate) fn try_reserve(&self) -> bool {
        let fleet = self.fleet.get();
        if let Some(share) = fleet {
            if !share.try_use() {
                return false;
            }
        }
        let max = self.settings.load().max_size;
        let mut current = self.total.load(SeqCst);
        loop {
            if current >= max {
                if let Some(share) = fleet {
                    share.unuse();
                }
                return false;
            }
            match self
                .total
                .compare_exchange_weak(current, current + 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    /// Frees one slot (its connection must already be dropped) and offers it
    /// to the queue.
    pub(crate) fn release_slot(&self) {
        self.unreserve();
        fence(SeqCst);
        if self.waiters.waiting() > 0 {
            self.dispatch();
        }
    }

    /// Judges an idle connection: lifetime, idle time, then `is_alive`.
    pub(crate) fn health(&self, pooled: &mut Pooled<M::Connection>, now: Instant) -> Health {
        let settings = self.settings.load();
        let too_old = settings
            .max_lifetime
            .is_some_and(|max| now.saturating_duration_since(pooled.created_at) >= max);
        let idle_too_long = settings
            .idle_timeout
            .is_some_and(|max| now.saturating_duration_since(pooled.idle_since) >= max);
        if too_old || idle_too_long || pooled.generation < self.generation() {
            Health::Expired
        } else if self.manager.is_alive(&mut pooled.conn) {
            Health::Usable
        } else {
            Health::Broken
        }
    }

    /// Counts and drops an unusable connection. Its slot stays with the caller.
    pub(crate) fn drop_unhealthy(&self, pooled: Pooled<M::Connection>, health: Health) {
        match health {
            Health::Expired => bump(&self.counters.closed_expired),
            Health::Broken => bump(&self.counters.closed_broken),
            Health::Usable => {}
        }
        tracing::debug!(pool = %self.name(), ?health, "closing idle server connection");
        drop(pooled);
    }

    /// Closes a connection and frees its slot.
    pub(crate) fn close_conn(&self, pooled: Pooled<M::Connection>) {
        drop(pooled);
        self.release_slot();
    }

    /// Pops idle connections until a usable one turns up; unusable ones are
    /// closed and their slots freed.
    pub(crate) fn take_idle(&self, now: Instant) -> Option<Pooled<M::Connection>> {
        while let Some(mut pooled) = self.idle.pop() {
            let slot = SlotGuard::new(self);
            match self.health(&mut pooled, now) {
                Health::Usable => {
                    slot.keep();
                    return Some(pooled);
                }
                health => self.drop_unhealthy(pooled, health),
            }
        }
        None
    }

    /// Pops an idle connection without judging it (maintenance). The caller
    /// owns its slot.
    pub(crate) fn pop_idle(&self) -> Option<Pooled<M::Connection>> {
        self.idle.pop()
    }

    /// Whether a connection coming back from a lease may serve another client: not if
    /// the pool is closed, has more connections than `max_size` (after a reload shrank
    /// it), or the connection is retired or outlived `max_lifetime`. Judged at a check-in,
    /// and before a lease holder passes its connection on (`ahead.rs`).
    pub(crate) fn reuse_verdict(&self, pooled: &PooledConn<M::Connection>, now: Instant) -> Reuse {
        if self.is_closed() {
            return Reuse::Close;
        }
        let settings = self.settings.load();
        let total = self.total.load(SeqCst);
        if total > settings.max_size {
            return Reuse::Close;
        }
        if let Some(share) = self.fleet.get() {
            if share.over(total) {
                return Reuse::Close;
            }
        }
        let retired = pooled.generation < self.generation();
        let too_old = settings
            .max_lifetime
            .is_some_and(|max| now.saturating_duration_since(pooled.created_at) >= max);
        if retired || too_old {
            Reuse::Expired
        } else {
            Reuse::Keep
        }
    }

    /// A lease came back clean: back to the idle queue (or to the oldest waiter), unless
    /// [`reuse_verdict`](Self::reuse_verdict) says otherwise.
    pub(crate) fn checkin(&self, mut pooled: Pooled<M::Connection>) {
        let now = Instant::now();
        match self.reuse_verdict(&pooled, now) {
            Reuse::Close => self.close_conn(pooled),
            Reuse::Expired => {
                self.drop_unhealthy(pooled, Health::Expired);
                self.release_slot();
            }
            Reuse::Keep => {
                pooled.idle_since = now;
                self.push_idle(pooled);
            }
        }
    }

    /// Puts a connection (whose slot is counted) in the idle queue and hands
    /// it on if checkouts are waiting. No lock unless someone waits.
    pub(crate) fn push_idle(&self, pooled: Pooled<M::Connection>) {
        // Clients queue: straight to the oldest. If it left meanwhile, the usual path below
        // (push, fence, dispatch) still serves anyone who registers from now on.
        let pooled = if self.waiters.waiting() > 0 && !self.is_paused() && !self.is_closed() {
            match self.waiters.hand_over(pooled) {
                None => return,
                Some(pooled) => pooled,
            }
        } else {
            pooled
        };
        self.idle.push(pooled);
        // Pairs with the fence after `register` (waiters) and after setting
        // `closed` (close): one side always sees the other's write.
        fence(SeqCst);
        if self.is_closed() {
            self.drain_idle();
        } else if self.waiters.waiting() > 0 {
            self.dispatch();
        }
    }

    /// Gives back a grant that its waiter did not use. A connection with a request sent
    /// ahead owes a reply nobody will read: it is reset (which drains it) first.
    pub(crate) fn give_back(self: &Arc<Self>, grant: Grant<M::Connection>) {
        match grant {
            Grant::Conn(pooled) => self.push_idle(pooled),
            Grant::Slot => self.release_slot(),
            Grant::Sent(pooled) => crate::reset::reset_then_return(self, pooled),
        }
    }

    /// Hands idle connections, or free slots as "you may connect" grants, to
    /// the oldest waiters.
    pub(crate) fn dispatch(&self) {
        self.waiters.dispatch(
            || {
                if self.is_closed() || self.is_paused() {
                    None
                } else if let Some(pooled) = self.idle.pop() {
                    Some(Grant::Conn(pooled))
                } else if self.try_reserve() {
                    Some(Grant::Slot)
                } else {
                    None
                }
            },
            // Only reached when no waiter is left; anyone registering later
            // dispatches after us and sees this.
            |grant| match grant {
                Grant::Conn(pooled) => self.idle.push(pooled),
                Grant::Slot => self.unreserve(),
                // dispatch only hands out idle connections and slots.
                Grant::Sent(pooled) => self.close_conn(pooled),
            },
        );
    }

    /// Opens a connection, bounded by `connect_timeout`, and counts the outcome.
    pub(crate) async fn open(&self) -> Result<Pooled<M::Connection>, OpenError<M::Error>> {
        let timeout = self.settings.load().connect_timeout;
        let generation = self.generation();
        match tokio::time::timeout(timeout, self.manager.connect()).await {
            Ok(Ok(conn)) => {
                bump(&self.counters.connects);
                tracing::debug!(pool = %self.name(), "opened server connection");
                Ok(Pooled::new(conn, generation))
            }
            Ok(Err(error)) => {
                bump(&self.counters.connect_failures);
                tracing::warn!(pool = %self.name(), %error, "could not open server connection");
                Err(OpenError::Failed(error))
            }
            Err(_) => {
                bump(&self.counters.connect_failures);
                tracing::warn!(pool = %self.name(), ?timeout, "opening server connection timed out");
                Err(OpenError::TimedOut(timeout))
            }
        }
    }

    /// Stops handing out connections: waiters are woken with `Closed`, idle
    /// connections are closed, and connections coming back later are closed.
    pub(crate) fn close(&self) {
        if self.closed.swap(true, SeqCst) {
            return;
        }
        tracing::debug!(pool = %self.name(), "closing pool");
        self.waiters.close();
        fence(SeqCst);
        self.drain_idle();
    }

    fn drain_idle(&self) {
        while let Some(pooled) = self.idle.pop() {
            drop(pooled);
            self.unreserve();
        }
    }

    /// Frees one slot of `total` (and its fleet token) without offering it to waiters.
    fn unreserve(&self) {
        self.total.fetch_sub(1, SeqCst);
        if let Some(share) = self.fleet.get() {
            share.unuse();
        }
    }

    /// Offers newly granted fleet tokens to the waiters.
    pub(crate) fn fleet_dispatch(&self) {
        fence(SeqCst);
        if self.waiters.waiting() > 0 {
            self.dispatch();
        }
    }

    /// The fleet controller's pass over the idle connections: closes those above the
    /// replica's target (or all, with the coordination connection lost), and those idle
    /// for `idle_release` while nobody waits, down to the guaranteed minimum.
    pub(crate) fn fleet_reap(&self, share: &FleetShare) {
        let idle = self.idle_len();
        if idle == 0 {
            return;
        }
        let now = Instant::now();
        let mut kept = Vec::new();
        for _ in 0..idle {
            let Some(pooled) = self.idle.pop() else { break };
            let total = self.total.load(SeqCst);
            let idle_long = now.saturating_duration_since(pooled.idle_since) >= share.idle_release
                && total > share.min_keep
                && self.waiters.waiting() == 0;
            if share.over(total) || idle_long {
                bump(&self.counters.closed_expired);
                tracing::debug!(pool = %self.name(), "fleet: closing an idle server connection, its token goes back");
                self.close_conn(pooled);
            } else {
                kept.push(pooled);
            }
        }
        for pooled in kept.into_iter().rev() {
            self.push_idle(pooled);
        }
    }
}

/// One reserved unit of `total`, freed on drop unless [`SlotGuard::keep`]
/// hands it to a connection that lives on (a lease, the idle queue). Makes
/// cancelled connects and panicking managers unable to leak slots.
pub(crate) struct SlotGuard<'a, M: Manager> {
    shared: &'a Shared<M>,
    armed: bool,
}

impl<'a, M: Manager> SlotGuard<'a, M> {
    /// Takes charge of a slot the caller already owns.
    pub(crate) fn new(shared: &'a Shared<M>) -> Self {
        Self {
            shared,
            armed: true,
        }
    }

    /// The slot now belongs to a live connection; do not free it.
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }
}

impl<M: Manager> Drop for SlotGuard<'_, M> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.release_slot();
        }
    }
}
