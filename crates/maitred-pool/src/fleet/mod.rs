//! A fleet: replicas of maitred in front of the same upstream that hold at most `budget`
//! server connections together. They coordinate through the server itself: the budget
//! is a set of tokens `0..budget`, a replica holds tokens through one coordination
//! connection (a [`Coordinator`]: PostgreSQL session advisory locks, MySQL named locks,
//! MongoDB lease documents), and opens one server connection per token it holds. The
//! coordination connection holds a token of its own, so it counts against the budget.
//! A replica that dies loses its coordination connection, and the server frees its
//! tokens (MongoDB's leases run out instead: see `maitred-mongo/src/fleet`).
//!
//! The pool plugs in at two points only, both off the idle fast path: reserving a slot
//! for a new connection takes a granted token ([`FleetShare::try_use`], one CAS), and
//! freeing a slot gives it back ([`FleetShare::unuse`]). The controller ([`controller`])
//! acquires tokens while clients wait, returns those left unused, and keeps each
//! replica to its fair share while others want tokens.

mod controller;
mod share;
#[cfg(test)]
mod sim_tests;

use std::future::Future;
use std::time::Duration;

pub use controller::start;
pub use share::{FleetShare, FleetStatus};

/// How a replica takes part in its fleet.
#[derive(Clone, Debug)]
pub struct FleetSettings {
    /// The fleet's name: replicas with the same name (and upstream) share the budget.
    pub name: String,
    /// The budget: server connections of the whole fleet, coordination connections
    /// included. `None`: read from the server when the coordination connection opens.
    pub budget: Option<usize>,
    /// An idle connection unused this long is closed and its token given back (and a
    /// token left unused this long is given back), down to `min_keep`.
    pub idle_release: Duration,
    /// Connections a replica keeps however idle (the guaranteed minimum), when the
    /// budget allows.
    pub min_keep: usize,
    /// How often the controller looks at the pool and the fleet (also woken at once when
    /// a checkout found no token).
    pub tick: Duration,
    /// Bound on each call to the coordinator; past it the coordination connection counts
    /// as lost.
    pub call_timeout: Duration,
}

impl FleetSettings {
    /// Default [`idle_release`](Self::idle_release): 10 s.
    pub const DEFAULT_IDLE_RELEASE: Duration = Duration::from_secs(10);

    /// Settings with defaults: idle_release 10 s, min_keep 1, tick 100 ms, call_timeout 2 s.
    pub fn new(name: impl Into<String>, budget: Option<usize>) -> Self {
        FleetSettings {
            name: name.into(),
            budget,
            idle_release: Self::DEFAULT_IDLE_RELEASE,
            min_keep: 1,
            tick: Duration::from_millis(100),
            call_timeout: Duration::from_secs(2),
        }
    }
}

/// What a replica learns of its fleet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Survey {
    /// Live replicas (sessions holding at least one token).
    pub replicas: usize,
    /// Replicas that announced they want more tokens (this one included when it does).
    pub wanting: usize,
    /// Tokens held in the whole fleet, coordination tokens included.
    pub held: usize,
}

/// The protocol side of a fleet: one coordination session on the server through which
/// tokens are held. Every token a session holds is freed by the server when the session
/// ends, or (leases) runs out unless a survey renews it in time; a renewal that finds a
/// token gone fails the call, which ends the session.
pub trait Coordinator: Send + Sync + 'static {
    /// One coordination connection.
    type Session: Send + 'static;
    /// Why a call failed (the session is then dropped and a new one opened).
    type Error: std::fmt::Display + Send + 'static;

    /// Opens a coordination connection.
    fn open(&self) -> impl Future<Output = Result<Self::Session, Self::Error>> + Send;

    /// The budget for `budget = "auto"`: the server's connection limit less its reserved
    /// slots.
    fn auto_budget<'a>(
        &'a self,
        session: &'a mut Self::Session,
    ) -> impl Future<Output = Result<usize, Self::Error>> + Send + 'a;

    /// Takes up to `n` free tokens of `0..budget`, none of them in `held`; returns those
    /// taken (never one held by another session).
    fn acquire<'a>(
        &'a self,
        session: &'a mut Self::Session,
        budget: usize,
        held: &'a [u32],
        n: usize,
    ) -> impl Future<Output = Result<Vec<u32>, Self::Error>> + Send + 'a;

    /// Gives tokens back.
    fn release<'a>(
        &'a self,
        session: &'a mut Self::Session,
        tokens: &'a [u32],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'a;

    /// Announces whether this replica wants more tokens, and reads the fleet.
    fn survey<'a>(
        &'a self,
        session: &'a mut Self::Session,
        budget: usize,
        wanting: bool,
    ) -> impl Future<Output = Result<Survey, Self::Error>> + Send + 'a;
}
