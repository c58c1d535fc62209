//! Protocol-agnostic connection pool core of maitred.
//!
//! The pool knows nothing about wire protocols: a [`Manager`] opens, checks
//! and resets connections; the pool decides when, bounds how many, and queues
//! clients fairly when all are busy.
//!
//! # Where things live
//!
//! - `manager.rs`: the [`Manager`] trait a protocol crate implements.
//! - `settings.rs`: [`PoolSettings`], bounds and timeouts.
//! - `pool.rs`: [`Pool`], the cheap-to-clone public handle.
//! - `checkout.rs`: the checkout path (lock-free fast path, wait queue, connect).
//! - `shared.rs`: state shared by handles, leases and maintenance: slot
//!   accounting, the lock-free idle queue, hand-off to waiters, close.
//! - `pooled.rs`: a pooled connection (boxed once, with its times) and the verdicts on it
//!   (reuse, health, why opening failed).
//! - `idle.rs`: idle connections, most recently returned first (lock-free).
//! - `waiters.rs`: the FIFO queue of parked checkouts (the pool's only lock).
//! - `sweeper.rs`: the one task per pool that times out parked checkouts
//!   (`queue_timeout`), instead of a timer per waiter.
//! - `lease.rs`: [`Lease`], the guard that returns, resets or discards.
//! - `ahead.rs`: sending a waiter's request ahead on a busy connection ([`Ahead`],
//!   [`Successor`]), so the server finds it queued when it finishes the current one.
//! - `reset.rs`: resetting dirty connections in a spawned task.
//! - `maintenance.rs`: the per-pool background task (expiry, `min_idle`).
//! - `stats.rs`: [`PoolState`], [`PoolStats`] and their atomic counters.
//! - `saturation.rs`: rate-limited warnings when clients queue, time out or wait long.
//! - `gate.rs`: connect backoff (one probe at a time while the server fails).
//! - `error.rs`: [`CheckoutError`].
//! - `fleet/`: replicas sharing one budget of server connections through tokens held on
//!   the server ([`fleet::Coordinator`], [`fleet::FleetShare`], the controller).
//! - `shutdown.rs`: the process-wide drain notice every protocol's sessions watch, and
//!   the count of logins in progress the drain waits for.
//! - `client_limits.rs`: [`ClientLimits`] (login, idle, query timeouts, `max_clients`,
//!   message size) that every protocol's front end enforces on its clients.
//! - `mode.rs`: [`PoolMode`], when a protocol's relay gives its connection back (the one
//!   definition the configuration and the protocols share).
//!
//! # Concurrency
//!
//! Taking an idle connection and returning one use only atomics and a
//! lock-free queue. Only a checkout that must wait takes a lock, to park in
//! FIFO order; a returned connection or a freed slot is then handed straight
//! to the oldest waiter. A count of all connections (open, opening, being
//! reset) only grows by compare-and-swap below `max_size`, so the bound holds
//! under any race.
//!
//! # Runtime
//!
//! [`Pool::new`] works anywhere. [`Pool::checkout`] needs a Tokio runtime with
//! timers (the first checkout that parks spawns the pool's sweeper on it, so a
//! pool is served by one runtime); [`Pool::start_maintenance`] must be called inside one. Dropping a
//! dirty [`Lease`] spawns the reset on the current runtime; outside any
//! runtime the connection is closed instead.

mod ahead;
mod checkout;
mod client_limits;
mod error;
pub mod fleet;
mod gate;
mod idle;
mod lease;
mod maintenance;
mod manager;
mod mode;
mod pool;
mod pooled;
mod reset;
mod saturation;
mod settings;
mod shared;
pub mod shutdown;
mod stats;
mod sweeper;
mod waiters;

#[cfg(test)]
mod control_tests;
#[cfg(test)]
mod stress_tests;
#[cfg(test)]
mod test_support;

pub use ahead::{Affinity, Ahead, Successor};
pub use client_limits::{
    sleep_until, ClientClock, ClientCount, ClientLimits, ClientSlot, ClientState,
};
pub use error::CheckoutError;
pub use lease::Lease;
pub use manager::Manager;
pub use mode::PoolMode;
pub use pool::Pool;
pub use settings::PoolSettings;
pub use stats::{PoolState, PoolStats, CHECKOUT_WAIT_BUCKETS};
