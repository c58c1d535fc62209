//! The session's side of the client time limits: `client_login_timeout` (the client must
//! have logged in in time), `idle_transaction_timeout` (pinned to a transaction) and
//! `client_idle_timeout` (otherwise). A MongoDB client cannot be told anything it did not
//! ask for, so a client out of time is just closed; the clean-up that follows aborts its
//! transaction ([`Session::cleanup`]).
//!
//! The login deadline ([`LoginDeadline`]) runs from connect until the client has
//! authenticated (a SASL conversation that succeeded): hello, isMaster, the first SCRAM
//! step carried in hello (`speculativeAuthenticate`) and everything else an
//! unauthenticated client may send leave it where it is. A client that logs out starts a
//! new one. In a pool without client authentication clients are logged in from the start,
//! and the deadline ends with their first request (it bounds only a silent connection).
//!
//! One exception: drivers' monitoring connections never authenticate (server monitoring
//! spec) and send only plain hellos (no `speculativeAuthenticate`, no
//! `saslSupportedMechs`), polling every heartbeatFrequencyMS (10 s by default) or held by
//! maitred (awaitable hello). Closing them at the login deadline makes every driver take a
//! failed heartbeat and clear its connection pool once per `client_login_timeout`. So a
//! connection that has sent nothing but plain hellos is closed only when it has been
//! silent for `client_login_timeout` (time held in an awaitable hello, maitred's own wait,
//! does not count), and once past its login time it may send nothing but plain hellos:
//! anything else (a SASL step, a speculative login, a ping) closes it. It never gets a
//! server connection and its messages stay under the small cap before authentication.

use super::Session;
use maitred_pool::ClientState;
use std::time::Duration;
use tokio::time::Instant;

/// When the client must have logged in by, while it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LoginDeadline {
    /// The end of the login time; `None`: logged in.
    login: Option<Instant>,
    timeout: Duration,
    /// Every request so far was a plain hello: the pattern of a monitoring connection.
    only_plain_hellos: bool,
    /// When the last plain hello came in.
    last_plain_hello: Option<Instant>,
}

impl LoginDeadline {
    /// A login starting now, with `timeout` to finish.
    pub(crate) fn start(timeout: Duration) -> LoginDeadline {
        LoginDeadline {
            login: Some(Instant::now() + timeout),
            timeout,
            only_plain_hellos: true,
            last_plain_hello: None,
        }
    }

    /// Logged out: a new login starts now.
    pub(crate) fn restart(&mut self, timeout: Duration) {
        *self = LoginDeadline::start(timeout);
    }

    /// The client authenticated: no deadline any more.
    pub(crate) fn authenticated(&mut self) {
        self.login = None;
    }

    /// A whole request came in from a client that is (`authenticated`) or is not logged
    /// in; `plain_hello`: a hello / isMaster without `speculativeAuthenticate` or
    /// `saslSupportedMechs`. A logged-in client's request ends the login (pools without
    /// client authentication). Returns whether the client is out of time: past its login
    /// time with anything but a plain hello, or a monitoring connection silent too long.
    pub(crate) fn request_received(&mut self, authenticated: bool, plain_hello: bool) -> bool {
        if authenticated {
            self.login = None;
            return false;
        }
        let now = Instant::now();
        if plain_hello {
            self.last_plain_hello = Some(now);
        } else {
            self.only_plain_hellos = false;
        }
        self.get().is_some_and(|d| now >= d)
    }

    /// When the client waiting for its next request is out of time, while it has not
    /// logged in: the login time, or for a connection of plain hellos only, its last
    /// hello plus the timeout if that is later.
    pub(crate) fn get(self) -> Option<Instant> {
        let login = self.login?;
        match self.last_plain_hello {
            Some(last) if self.only_plain_hellos => Some(login.max(last + self.timeout)),
            _ => Some(login),
        }
    }

    /// The deadline while maitred holds an awaitable hello: none for a monitoring
    /// connection (the wait is maitred's), the login time for others.
    pub(crate) fn while_held(self) -> Option<Instant> {
        if self.only_plain_hellos {
            None
        } else {
            self.login
        }
    }

    /// Whether the client has not logged in.
    pub(crate) fn running(self) -> bool {
        self.login.is_some()
    }

    /// Whether the client's connection has sent plain hellos only (and has not logged in).
    pub(crate) fn monitoring(self) -> bool {
        self.login.is_some() && self.only_plain_hellos && self.last_plain_hello.is_some()
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

    /// A whole request came in (`plain_hello`: see [`LoginDeadline::request_received`]).
    /// Returns whether the client is out of time to log in (a client that keeps sending
    /// requests is not waited on, so this is checked here too).
    pub(super) fn request_received(&mut self, plain_hello: bool) -> bool {
        self.login_deadline
            .request_received(self.authenticated, plain_hello)
    }

    /// The deadline passed: says why in the log; the caller closes the connection.
    pub(super) fn limit_reached(&self) {
        let pool = &self.pool.name;
        if self.login_deadline.monitoring() {
            tracing::info!(pool = %pool, "unauthenticated client (plain hellos only) silent for client_login_timeout, or past it with another request: closed");
        } else if self.login_deadline.running() {
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

    const T: Duration = Duration::from_millis(500);

    async fn after(ms: u64) {
        tokio::time::advance(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_attempt_does_not_extend_the_deadline() {
        let mut d = LoginDeadline::start(T);
        let end = d.get().expect("running");
        // A speculative hello (a connection that will log in), then plain hellos.
        after(100).await;
        assert!(!d.request_received(false, false));
        for _ in 0..3 {
            after(100).await;
            assert!(!d.request_received(false, true));
            assert_eq!(d.get(), Some(end));
        }
        after(100).await;
        assert!(d.request_received(false, true), "out of time at 500ms");
        assert!(!d.monitoring());
    }

    #[tokio::test(start_paused = true)]
    async fn silence_ends_the_login_time() {
        let d = LoginDeadline::start(T);
        after(500).await;
        assert!(d.get().is_some_and(|e| Instant::now() >= e));
    }

    #[tokio::test(start_paused = true)]
    async fn a_monitoring_connection_stays_while_it_keeps_sending_plain_hellos() {
        let mut d = LoginDeadline::start(T);
        for _ in 0..20 {
            after(400).await;
            assert!(!d.request_received(false, true));
        }
        assert!(d.monitoring());
        assert_eq!(d.while_held(), None);
        // Silent for the timeout after its last hello: out of time.
        let end = d.get().expect("deadline");
        assert_eq!(end, Instant::now() + T);
        // Past its login time, a login attempt (or any other request) closes it.
        after(100).await;
        assert!(d.request_received(false, false));
    }

    #[tokio::test(start_paused = true)]
    async fn authentication_ends_it_and_logout_starts_a_new_one() {
        let mut d = LoginDeadline::start(T);
        after(400).await;
        d.authenticated();
        after(3_600_000).await;
        assert_eq!(d.get(), None);
        assert!(!d.request_received(false, false));
        d.restart(T);
        after(499).await;
        assert!(!d.request_received(false, false));
        after(1).await;
        assert!(d.request_received(false, true));
    }

    #[tokio::test(start_paused = true)]
    async fn without_client_authentication_the_first_request_ends_it() {
        let mut d = LoginDeadline::start(T);
        after(100).await;
        assert!(!d.request_received(true, false));
        assert_eq!(d.get(), None);
    }
}
