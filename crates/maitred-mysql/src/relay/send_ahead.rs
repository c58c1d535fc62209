//! Sending a queued client's query ahead (`send_ahead`, on by default in transaction mode).
//!
//! At saturation every server connection is busy and clients queue. Without this, a
//! connection that finishes a command sits idle until the next client in the queue is
//! scheduled, reads its grant and writes its command; the server thread sleeps and wakes
//! in between. With it, the client holding the connection writes the next client's
//! command right behind its own, so the server reads it the moment it is done. The pool
//! core does the queueing (`maitred_pool::Ahead`, `Lease::claim_successor`); this file
//! decides when it is safe for MySQL:
//!
//! - The waiter offers only a COM_QUERY of a lone read-only SELECT, or a COM_STMT_EXECUTE
//!   (no cursor) of a statement prepared from one ([`crate::sql_effects::may_send_ahead`]), from a session the
//!   server's defaults describe: transaction mode, autocommit on, not pinned, no SET
//!   replayed or variable tracked. Its affinity is its current database: it only runs on a
//!   connection that has that database selected. An execute names its statement by
//!   [`sql_key`](crate::statements::sql_key) (`requires`): the holder's connection must
//!   have it prepared, and the holder writes that connection's statement id into it.
//! - The holder claims only while the command in flight is itself such a command, sent on
//!   a connection with the server's default session (no SET owner, no reset owed), outside
//!   a transaction, and its client has sent nothing more. A lone SELECT in autocommit
//!   leaves the connection as it found it, so the successor's command finds it as after a
//!   check-in.
//! - The holder stops reading at the end of its own response (the response scanner
//!   does); the rest belongs to the successor, to whom the connection, with its read
//!   buffer, is handed over. If the connection is not as expected then (a transaction
//!   open, more results, state changed), the successor is dropped (its client is told to
//!   retry) and the orphaned response is drained before the connection is used again.
//!   Every other way a lease ends while a successor is claimed (client gone, server lost,
//!   KILL, a time limit) closes the connection and drops the successor.
//!
//! The cost, documented in docs/mysql.md: the successor waits for this connection's
//! current command, not for the first connection to come free.

use super::Relay;
use crate::codec::response::Expect;
use crate::codec::{command, frame, status};
use crate::error::SessionError;
use crate::pool::PoolMode;
use crate::statements::ClientStmt;
use bytes::BytesMut;
use maitred_pool::Ahead;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::Ordering;

/// A command larger than this is never sent ahead (it is copied into the offer).
const MAX_AHEAD_PACKET: usize = 8 * 1024;

/// Where the statement id sits in a COM_STMT_EXECUTE packet: header (4), command (1).
const STATEMENT_ID_AT: usize = frame::HEADER_LEN + 1;

impl Relay {
    /// What this client may offer to have sent ahead while it waits for a connection, for
    /// the command `payload` about to be forwarded, of the shape [`ahead_shape`] accepted
    /// (`requires`). A statement id in it is filled in by the holder.
    pub(super) fn ahead_offer(&self, payload: &[u8], requires: Option<u64>) -> Option<Ahead> {
        if self.lease.is_some()
            || self.pinned.is_some()
            || self.hold
            || !self.autocommit
            || !self.session_sets.is_empty()
            || !self.vars.is_empty()
            || payload.len() + frame::HEADER_LEN > MAX_AHEAD_PACKET
            || !self.s.pool.pool.likely_to_wait()
        {
            return None;
        }
        let mut request = BytesMut::with_capacity(payload.len() + frame::HEADER_LEN);
        frame::write_packet(&mut request, 0, payload);
        Some(Ahead {
            request: request.freeze(),
            affinity: database_affinity(self.s.database.as_deref()).into(),
            requires,
        })
    }

    /// The lease came with this client's command already written by the connection's
    /// previous holder: follow its response as forwarding it would have.
    pub(super) fn account_sent_command(&mut self) {
        let Some(conn) = self.lease.as_deref_mut() else {
            return;
        };
        self.s.ticket.traffic().query();
        conn.scanner.start(Expect::Results);
        self.inflight = super::Inflight::Forward;
        self.hold = false;
        // Part of the response (or all of it) may be in the connection's buffer already.
        self.server_bytes_pending = !conn.rbuf.is_empty();
        self.ahead_safe = true;
    }

    /// Claims the oldest queued client and writes its command behind ours, when the
    /// command in flight leaves the connection as the successor needs it.
    pub(super) fn claim_successor(&mut self) {
        if self.successor.is_some()
            || !self.ahead_safe
            || self.pinned.is_some()
            || self.hold
            || self.swallow_err.is_some()
            || !matches!(self.inflight, super::Inflight::Forward)
            || !self.crbuf.is_empty()
            || self.s.pool.mode != PoolMode::Transaction
            || !self.s.pool.send_ahead()
            || !self.s.pool.pool.has_waiters()
        {
            return;
        }
        let Some(lease) = self.lease.as_ref() else {
            return;
        };
        let conn: &crate::backend::ServerConn = lease;
        if !conn_as_after_checkin(conn) || !conn.scanner.is_busy() || conn.unread_body != 0 {
            return;
        }
        let affinity = database_affinity(conn.database.as_deref());
        let Some(successor) =
            lease.claim_successor(affinity, |key| conn.statements.id_by_key(key).is_some())
        else {
            return;
        };
        let at = self.swbuf.len();
        self.swbuf.extend_from_slice(successor.request());
        if let Some(key) = successor.requires() {
            // The claim checked that this connection has the statement.
            let id = conn.statements.id_by_key(key).unwrap_or_default();
            self.swbuf[at + STATEMENT_ID_AT..at + STATEMENT_ID_AT + 4]
                .copy_from_slice(&id.to_le_bytes());
        }
        self.successor = Some(successor);
    }

    /// Our response is read: the connection, with the successor's response owed, goes to
    /// it. Not as expected, the successor is dropped (its checkout fails, its client is
    /// told to retry) and its response is drained here.
    pub(super) async fn pass_to_successor(&mut self) -> Result<(), SessionError> {
        let Some(successor) = self.successor.take() else {
            return Ok(());
        };
        let Some(mut lease) = self.lease.take() else {
            return Ok(());
        };
        let expected = !lease.scanner.is_busy()
            && lease.unread_body == 0
            && lease.status & status::MORE_RESULTS_EXISTS == 0
            && conn_as_after_checkin(&lease)
            && self.pinned.is_none()
            && !self.hold;
        self.ahead_safe = false;
        if self.s.handle.clear_server() {
            // A KILL is on its way to this thread: nobody else may run on it. The
            // successor's client is told its command was lost (retry).
            drop(successor);
            lease.discard();
            return Ok(());
        }
        if expected {
            self.s
                .pool
                .counters
                .transactions
                .fetch_add(1, Ordering::Relaxed);
            if let Err(mut back) = successor.hand_over(lease) {
                // The successor left: the reset drains the response nobody reads.
                back.scanner.start(Expect::Results);
                back.needs_reset = true;
                back.mark_dirty();
            }
            return Ok(());
        }
        tracing::warn!(pool = %self.s.pool.name, "server connection not idle after a command sent ahead was queued behind ours; the queued client is told to retry");
        drop(successor);
        // Ours now: read past the response nobody will see, then go on as usual.
        self.s.handle.set_server(lease.connection_id);
        lease.needs_reset = true;
        let drained = lease.skip_response(Expect::Results).await;
        self.lease = Some(lease);
        match drained {
            Ok(()) => Ok(()),
            Err(e) => self.server_lost(e).await,
        }
    }
}

/// Whether the command `payload` (`statement`: the prepared statement a COM_STMT_EXECUTE
/// runs) is of a shape that may be sent ahead, and the [`sql_key`](crate::statements::sql_key)
/// of the statement it needs prepared: `Some(None)` for a COM_QUERY (whose text the
/// caller judged with [`crate::sql_effects::may_send_ahead`]). `None` when the pool
/// does not send ahead.
pub(super) fn ahead_shape(
    pool: &crate::pool::MysqlPool,
    payload: &[u8],
    statement: Option<&ClientStmt>,
) -> Option<Option<u64>> {
    if !pool.send_ahead() {
        return None;
    }
    match (payload.first(), statement) {
        // A COM_QUERY's text was judged by the caller (`Analysis::may_send_ahead`, from
        // the one scan of the text).
        (Some(&command::QUERY), None) => Some(None),
        // Flags 0: no cursor.
        (Some(&command::STMT_EXECUTE), Some(st))
            if st.may_send_ahead && payload.get(5) == Some(&0) =>
        {
            Some(Some(st.key))
        }
        _ => None,
    }
}

/// A connection whose session is the server's defaults and that is between
/// transactions in autocommit, as a check-in leaves it.
fn conn_as_after_checkin(conn: &crate::backend::ServerConn) -> bool {
    conn.status & status::IN_TRANS == 0
        && conn.status & status::AUTOCOMMIT != 0
        && conn.session_owner.is_none()
        && !conn.needs_reset
        && !conn.tracking_stale
}

/// Which connections a waiter's command may run on as it is: those with its database.
fn database_affinity(database: Option<&str>) -> u64 {
    let mut h = DefaultHasher::new();
    database.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::database_affinity;

    #[test]
    fn affinity_is_the_database() {
        assert_eq!(
            database_affinity(Some("app")),
            database_affinity(Some("app"))
        );
        assert_ne!(
            database_affinity(Some("app")),
            database_affinity(Some("other"))
        );
        assert_ne!(database_affinity(Some("app")), database_affinity(None));
    }
}
