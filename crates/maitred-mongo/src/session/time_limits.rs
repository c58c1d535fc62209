//! The session's side of the client time limits: `client_login_timeout` (the first
//! request must come in time), `idle_transaction_timeout` (pinned to a transaction) and
//! `client_idle_timeout` (otherwise). A MongoDB client cannot be told anything it did not
//! ask for, so a client out of time is just closed; the clean-up that follows aborts its
//! transaction ([`Session::cleanup`]).

use super::Session;
use maitred_pool::ClientState;
use tokio::time::Instant;

impl Session {
    /// When the client waiting for its next request runs out of time, if a limit applies.
    pub(super) fn limit_deadline(&mut self) -> Option<Instant> {
        if let Some(login) = self.login_deadline {
            return Some(login);
        }
        let state = if self.pin.is_some() {
            ClientState::IdleInTransaction
        } else {
            ClientState::Idle
        };
        self.clock.observe(state, &self.pool.limits)
    }

    /// The session starts waiting for the client's next request: its silence starts now.
    pub(super) fn waiting_for_request(&mut self) {
        self.clock.client_active();
    }

    /// A whole request came in: the login is over.
    pub(super) fn request_received(&mut self) {
        self.login_deadline = None;
    }

    /// The deadline passed: says why in the log; the caller closes the connection.
    pub(super) fn limit_reached(&self) {
        let pool = &self.pool.name;
        if self.login_deadline.is_some() {
            tracing::info!(pool = %pool, "client sent no request within client_login_timeout: closed");
        } else if self.pin.is_some() {
            tracing::info!(pool = %pool, "client idle in a transaction for idle_transaction_timeout: closed, transaction aborted");
        } else {
            tracing::info!(pool = %pool, "client idle for client_idle_timeout: closed");
        }
    }
}
