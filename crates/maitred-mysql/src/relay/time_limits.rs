//! The relay's side of the client time limits (`idle_transaction_timeout`,
//! `client_idle_timeout`, `query_timeout`): what state the client is in, when it runs out
//! of time, and what happens then. The ERR packets are in [`crate::limits`].

use super::{Flow, Relay};
use crate::codec::status;
use crate::limits::TimeLimitErrors;
use maitred_frontend::time_limits::{expired, Expired};
use maitred_pool::ClientState;
use tokio::time::Instant;

/// How long the KILL of a timed-out query may take.
const KILL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Relay {
    /// What the client is doing, as far as the time limits care.
    fn client_state(&self) -> ClientState {
        match self.lease.as_deref() {
            _ if self.infile => ClientState::Other,
            None => ClientState::Idle,
            Some(_) if self.busy() => ClientState::AwaitingServer,
            Some(c) if c.status & status::IN_TRANS != 0 || self.hold => {
                ClientState::IdleInTransaction
            }
            // Session mode, or pinned, between transactions.
            Some(_) => ClientState::Idle,
        }
    }

    /// When the client runs out of time in its current state, if a limit applies.
    pub(super) fn limit_deadline(&mut self) -> Option<Instant> {
        let state = self.client_state();
        self.clock.observe(state, &self.s.pool.limits)
    }

    /// The deadline passed: the client gets an ERR and the session ends. Its server
    /// connection, if any, is rolled back through the dirty-lease path ([`Relay::finish`]),
    /// or, when the server is the one that did not answer, its query is killed from a side
    /// connection and the connection closed.
    pub(super) async fn limit_reached(&mut self) -> Flow {
        let pool = self.s.pool.name.clone();
        let limits = &self.s.pool.limits;
        let Some(expired) = expired(self.clock.state(), limits, &pool, "query killed") else {
            return Flow::Continue;
        };
        let mid_packet = matches!(expired, Expired::Query(_)) && self.kill_and_discard();
        expired.tell::<TimeLimitErrors>(&mut self.cwbuf, &pool, mid_packet);
        let _ = self.flush_client().await;
        Flow::ClientDone
    }

    /// The server did not answer in time: its query is killed (in the background) and its
    /// connection closed. Returns whether part of a server packet already went out.
    fn kill_and_discard(&mut self) -> bool {
        let mid_packet = self.lease.as_deref().is_some_and(|c| c.unread_body > 0);
        // A command sent ahead on this connection is lost with it.
        self.successor = None;
        if let Some(lease) = self.lease.take() {
            let target = self.s.pool.pool.manager().target();
            let thread = lease.connection_id;
            tokio::spawn(async move {
                let _ = tokio::time::timeout(KILL_TIMEOUT, kill_query(&target, thread)).await;
            });
            let _ = self.s.handle.clear_server();
            lease.discard();
        }
        mid_packet
    }
}

/// `KILL QUERY <thread>` on a new connection of the pool's user (the pool's own may all be
/// busy), so the query of a discarded connection stops holding server resources.
async fn kill_query(target: &crate::target::ServerTarget, thread: u32) {
    match crate::backend::ServerConn::connect(target, 1, false).await {
        Ok(mut side) => {
            if let Err(e) = side.query(&format!("KILL QUERY {thread}")).await {
                tracing::warn!(error = %e, "could not kill a timed-out query");
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not connect to kill a timed-out query"),
    }
}
