//! The session's side of the client time limits: `client_login_timeout` (the client must
//! have logged in in time), `idle_transaction_timeout` (pinned to a transaction) and
//! `client_idle_timeout` (otherwise). A MongoDB client cannot be told anything it did not
//! ask for, so a client out of time is just closed; the clean-up that follows aborts its
//! transaction ([`Session::cleanup`]).
//!
//! The login deadline ([`LoginDeadline`]) runs from connect until the client has
//! authenticated (a SASL conversation that succeeded): hello, isMaster and the first SCRAM
//! step carried in hello (`speculativeAuthenticate`) do not end it, nor does anything else
//! an unauthenticated client may send. A client that logs out starts a new one. In a pool
//! without client authentication clients are logged in from the start, and the deadline
//! ends with their first request (it bounds only a silent connection).

use super::Session;
use maitred_pool::ClientState;
use std::time::Duration;
use tokio::time::Instant;

/// When the client must have logged in by, while it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoginDeadline(Option<Instant>);

impl LoginDeadline {
    /// A login starting now, with `timeout` to finish.
    pub(crate) fn start(timeout: Duration) -> LoginDeadline {
        LoginDeadline(Some(Instant::now() + timeout))
    }

    /// Logged out: a new login starts now.
    pub(crate) fn restart(&mut self, timeout: Duration) {
        *self = LoginDeadline::start(timeout);
    }

    /// The client authenticated: no deadline any more.
    pub(crate) fn authenticated(&mut self) {
        self.0 = None;
    }

    /// A whole request came in from a client that is (`authenticated`) or is not logged
    /// in. Only a logged-in client's request ends the login (pools without client
    /// authentication); an unauthenticated client's requests, hellos included, leave the
    /// deadline where it is. Returns whether the deadline has passed.
    pub(crate) fn request_received(&mut self, authenticated: bool) -> bool {
        if authenticated {
            self.0 = None;
        }
        self.passed()
    }

    pub(crate) fn get(self) -> Option<Instant> {
        self.0
    }

    pub(crate) fn passed(self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }
}

impl Session {
    /// When the client waiting for its next request runs out of time, if a limit applies.
    pub(super) fn limit_deadline(&mut self) -> Option<Instant> {
        if let Some(login) = self.login_deadline.get() {
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

    /// A whole request came in. Returns whether the client is out of time to log in (a
    /// client that keeps sending hellos is not waited on, so this is checked here too).
    pub(super) fn request_received(&mut self) -> bool {
        self.login_deadline.request_received(self.authenticated)
    }

    /// The deadline passed: says why in the log; the caller closes the connection.
    pub(super) fn limit_reached(&self) {
        let pool = &self.pool.name;
        if self.login_deadline.get().is_some() {
            tracing::info!(pool = %pool, "client did not log in within client_login_timeout: closed");
        } else if self.pin.is_some() {
            tracing::info!(pool = %pool, "client idle in a transaction for idle_transaction_timeout: closed, transaction aborted");
        } else {
            tracing::info!(pool = %pool, "client idle for client_idle_timeout: closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn hellos_do_not_end_the_login_deadline() {
        let mut d = LoginDeadline::start(Duration::from_millis(500));
        let end = d.get().expect("running");
        // Unauthenticated requests (hello, isMaster, speculative authentication, ping...).
        for _ in 0..4 {
            tokio::time::advance(Duration::from_millis(100)).await;
            assert!(!d.request_received(false));
            assert_eq!(d.get(), Some(end));
        }
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(d.request_received(false), "out of time at 500ms");
        assert!(d.passed());
    }

    #[tokio::test(start_paused = true)]
    async fn authentication_ends_it_and_logout_starts_a_new_one() {
        let mut d = LoginDeadline::start(Duration::from_millis(500));
        tokio::time::advance(Duration::from_millis(400)).await;
        d.authenticated();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(d.get(), None);
        assert!(!d.passed());
        assert!(!d.request_received(false));
        d.restart(Duration::from_millis(500));
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(!d.passed());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(d.passed());
    }

    #[tokio::test(start_paused = true)]
    async fn without_client_authentication_the_first_request_ends_it() {
        let mut d = LoginDeadline::start(Duration::from_millis(500));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(!d.request_received(true));
        assert_eq!(d.get(), None);
    }
}
