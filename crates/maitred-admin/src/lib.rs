//! maitred's admin endpoint, protocol-agnostic: it sees pools only through the
//! [`PoolObserver`] trait, which each protocol's wiring in the binary implements.
//!
//! - `access.rs`: the HTTP endpoint's two surfaces: probes (`/metrics`, `/healthz`,
//!   `/readyz`) for anyone, detail (`/pools`, the rest) for loopback peers or a bearer token.
//! - `observer.rs`: [`PoolObserver`], what the admin endpoint asks of a pool.
//! - `admin.rs`: [`Admin`], the registry of observers plus the daemon's lifecycle
//!   (listening, draining), readiness, `/pools` JSON and the drain wait.
//! - `control.rs`: [`ControlRequest`], what an operator surface asks of the daemon
//!   (reload, shutdown).
//! - `clients.rs`: [`PoolClients`], every client of a pool (state, identity, KILL) for
//!   `maitred_clients{state}`, the console's SHOW CLIENTS and KILL.
//! - `console/`: [`console::Console`], the admin console's commands (SHOW POOLS, KILL,
//!   PAUSE...), answered as tables any protocol's front end can put on the wire.
//! - `traffic.rs`: [`Traffic`], bytes and queries relayed per pool.
//! - `reach.rs`: whether a pool's server is currently reachable, from its counters.
//! - `metrics.rs`: the Prometheus text of `/metrics` (metrics-exporter-prometheus).
//! - `http.rs`: a minimal HTTP/1.1 GET server for `/metrics`, `/healthz`, `/readyz`,
//!   `/pools`, with each request's [`access::Access`].
//!
//! Metric names, endpoints and the drain sequence are described in docs/operations.md.
#![forbid(unsafe_code)]

pub mod access;
mod admin;
pub mod clients;
pub mod console;
mod control;
pub mod http;
mod kill;
mod metrics;
mod observer;
mod reach;
pub mod traffic;

pub use admin::Admin;
pub use clients::{ClientIdentity, ClientState, ClientTicket, KillSignal, PoolClients};
pub use control::ControlRequest;
pub use kill::Killed;
pub use observer::{LabeledCounter, PoolObserver};
pub use traffic::{Traffic, TrafficTotals};
