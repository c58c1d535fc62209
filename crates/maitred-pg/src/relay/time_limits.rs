//! The relay's side of the client time limits (`idle_transaction_timeout`,
//! `client_idle_timeout`, `query_timeout`): what state the client is in, when it runs out
//! of time, and what happens then. The errors are in [`crate::limits`].

use super::{Flow, Relay};
use crate::limits::TimeLimitErrors;
use maitred_frontend::time_limits::{expired, Expired};
use maitred_pool::ClientState;
use tokio::time::Instant;

impl Relay {
    /// What the client is doing, as far as the time limits care.
    fn client_state(&self) -> ClientState {
        match self.lease.as_deref() {
            None => ClientState::Idle,
            Some(s) if !self.replies.is_empty() || s.pending_sync > 0 || s.unread_body > 0 => {
                ClientState::AwaitingServer
            }
            // An extended-protocol batch not yet ended by Sync runs in an implicit transaction.
            Some(s) if s.tx_status != b'I' || s.extended_open => ClientState::IdleInTransaction,
            // Session mode, or pinned, between transactions.
            Some(_) => ClientState::Idle,
        }
    }

    /// When the client runs out of time in its current state, if a limit applies.
    pub(super) fn limit_deadline(&mut self) -> Option<Instant> {
        let state = self.client_state();
        self.clock.observe(state, &self.pool.limits)
    }

    /// The deadline passed: the client is told why and the session ends. Its server
    /// connection, if any, is rolled back through the dirty-lease path ([`Relay::finish`]),
    /// or closed after a cancel when the server is the one that did not answer.
    pub(super) async fn limit_reached(&mut self) -> Flow {
        let pool = self.pool.name.clone();
        let limits = &self.pool.limits;
        let Some(expired) = expired(self.clock.state(), limits, &pool, "query cancelled") else {
            return Flow::Continue;
        };
        let mid_message = matches!(expired, Expired::Query(_)) && self.cancel_and_discard();
        expired.tell::<TimeLimitErrors>(&mut self.cwbuf, &pool, mid_message);
        let _ = self.flush_client().await;
        Flow::ClientDone
    }

    /// The server did not answer in time: its query is cancelled (in the background: the
    /// server may not answer at all) and its connection closed. Returns whether part of a
    /// server message already went to the client.
    fn cancel_and_discard(&mut self) -> bool {
        let mid_message = self.lease.as_deref().is_some_and(|s| s.unread_body > 0);
        self.successor = None;
        if let Some(lease) = self.lease.take() {
            let target = self.pool.pool.manager().target().clone();
            let (pid, key) = (lease.process_id, lease.secret_key);
            tokio::spawn(async move {
                let cancel = crate::cancel::send_cancel(&target, pid, key);
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), cancel).await;
            });
            // The connection is discarded below, cancel or not.
            let _ = self.cancel.clear_server();
            self.replies.clear();
            self.query_effects.clear();
            lease.discard();
        }
        mid_message
    }
}
