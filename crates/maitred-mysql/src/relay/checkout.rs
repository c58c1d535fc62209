//! Leasing a server connection and giving it back: checkout (offering a command to be
//! sent ahead), bringing the connection to the client's session (database, autocommit,
//! variables, CLIENT_FOUND_ROWS), release in transaction mode, a lost server connection,
//! and what the client leaves behind.

use super::isolation::{self, Disposal, LeaseFacts, Verdict};
use super::{Acquired, Inflight, Relay};
use crate::backend::ServerConn;
use crate::codec::packets::{self, ErrInfo};
use crate::codec::response::Expect;
use crate::codec::{cap, frame, status};
use crate::error::{BackendError, SessionError};
use crate::errors_to_client::{checkout_error, code};
use crate::pool::PoolMode;
use maitred_admin::ClientState;
use maitred_pool::Ahead;
use std::sync::atomic::Ordering;

impl Relay {
    /// Queues a command for the server and starts following its response.
    pub(super) fn forward(&mut self, payload: &[u8], expect: Expect, inflight: Inflight) {
        let Some(conn) = self.lease.as_deref_mut() else {
            return;
        };
        frame::write_packet(&mut self.swbuf, 0, payload);
        self.s.ticket.traffic().query();
        conn.scanner.start(expect);
        self.inflight = inflight;
    }

    /// Leases a server connection if none is held and brings its session to the client's
    /// (database, autocommit). `false`: the client was sent an error instead.
    pub(super) async fn acquire(&mut self) -> Result<bool, SessionError> {
        Ok(self.acquire_offering(None).await? != Acquired::No)
    }

    /// [`acquire`](Self::acquire), offering `ahead` to be sent by the holder of a busy
    /// connection while this client waits (`send_ahead`).
    pub(super) async fn acquire_offering(
        &mut self,
        ahead: Option<Ahead>,
    ) -> Result<Acquired, SessionError> {
        if self.lease.is_none() {
            self.s.ticket.set_state(ClientState::Waiting);
            let checkout = match ahead {
                Some(ahead) => self.s.pool.pool.checkout_ahead(ahead).await,
                None => self.s.pool.pool.checkout().await,
            };
            self.s.ticket.set_state(if checkout.is_ok() {
                ClientState::Active
            } else {
                ClientState::Idle
            });
            match checkout {
                Ok(lease) => {
                    tracing::trace!(
                        client = self.s.connection_id,
                        server = lease.connection_id,
                        "server connection leased"
                    );
                    self.s.handle.set_server(lease.connection_id);
                    let sent = lease.request_sent();
                    self.lease = Some(lease);
                    if sent {
                        // Claimed for this client's database on a connection with the
                        // server's default session: nothing to bring over.
                        return Ok(Acquired::Sent);
                    }
                    if let Err(e) = self.match_found_rows().await {
                        self.server_lost(e).await?;
                        return Ok(Acquired::No);
                    }
                }
                Err(e) => {
                    tracing::info!(pool = %self.s.pool.name, error = %e, "checkout failed");
                    checkout_error(&mut self.cwbuf, 1, &e);
                    return Ok(Acquired::No);
                }
            }
        }
        match self.sync_session().await {
            Ok(Ok(())) => Ok(Acquired::Leased),
            Ok(Err(e)) => {
                self.err_locally(e.code, &e.sqlstate, &e.message);
                Ok(Acquired::No)
            }
            Err(e) => {
                self.server_lost(e).await?;
                Ok(Acquired::No)
            }
        }
    }

    pub(super) async fn sync_session(&mut self) -> Result<Result<(), ErrInfo>, BackendError> {
        let mark = self.session_mark();
        let Some(conn) = self.lease.as_deref_mut() else {
            return Ok(Ok(()));
        };
        if conn.tracking_stale {
            conn.enable_tracking().await?;
        }
        let landing = isolation::landing(conn.session_owner, mark, &self.vars);
        if landing.reset_first {
            // Another client's session (or an older one of this client): back to
            // defaults first.
            if let Err(e) = conn.reset_session().await? {
                return Ok(Err(e));
            }
        }
        for sql in self.session_sets.iter().skip(landing.sets_from) {
            let sql = String::from_utf8_lossy(sql);
            if let Err(e) = conn.query(&sql).await? {
                return Ok(Err(e));
            }
        }
        if landing.replay_vars {
            if let Some(sql) = self.vars.replay_sql() {
                if let Err(e) = conn.query(&sql).await? {
                    return Ok(Err(e));
                }
            }
        }
        if landing.mark_owner {
            conn.session_owner = Some(mark);
        }
        if conn.database != self.s.database {
            if let Some(db) = &self.s.database {
                if let Err(e) = conn.init_db(db).await? {
                    return Ok(Err(e));
                }
            }
        }
        let server_autocommit = conn.status & status::AUTOCOMMIT != 0;
        if server_autocommit != self.autocommit {
            let sql = if self.autocommit {
                "SET autocommit=1"
            } else {
                "SET autocommit=0"
            };
            if let Err(e) = conn.query(sql).await? {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// CLIENT_FOUND_ROWS is chosen at login, once per connection: a leased connection
    /// opened with the other choice than this client's is replaced, in the same pool
    /// slot, by one opened with the client's. The pool's new connections follow the
    /// last such client, so a pool whose clients agree pays this only while it warms up.
    pub(super) async fn match_found_rows(&mut self) -> Result<(), BackendError> {
        let want = self.s.capabilities & cap::FOUND_ROWS != 0;
        let Some(conn) = self.lease.as_deref_mut() else {
            return Ok(());
        };
        if conn.found_rows() == want {
            return Ok(());
        }
        let fresh = self
            .s
            .pool
            .pool
            .manager()
            .open_with_found_rows(want)
            .await?;
        tracing::debug!(
            pool = %self.s.pool.name,
            found_rows = want,
            old = conn.connection_id,
            new = fresh.connection_id,
            "server connection reopened for this client's CLIENT_FOUND_ROWS"
        );
        // The old connection closes as it is dropped here.
        *conn = fresh;
        self.s.handle.set_server(conn.connection_id);
        Ok(())
    }

    /// In transaction mode, gives the server connection back once the transaction is over.
    pub(super) fn release_if_done(&mut self) {
        let Some(facts) = self.lease_facts() else {
            return;
        };
        let verdict = isolation::after_response(&facts);
        if let Verdict::Keep(_) = verdict {
            return;
        }
        if let Some(mut lease) = self.lease.take() {
            tracing::trace!(
                client = self.s.connection_id,
                status = lease.status,
                "server connection released"
            );
            // A KILL on its way to this thread: nobody else may run on it.
            match isolation::on_release(verdict, self.s.handle.clear_server()) {
                Some(Disposal::Close) => lease.discard(),
                Some(Disposal::Reset) => lease.mark_dirty(),
                Some(Disposal::CheckIn) | None => {}
            }
            self.s
                .pool
                .counters
                .transactions
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What the release decisions ([`isolation`]) need to know of the leased connection.
    fn lease_facts(&self) -> Option<LeaseFacts> {
        let c: &ServerConn = self.lease.as_deref()?;
        Some(LeaseFacts {
            mode: self.s.pool.mode,
            pinned: self.pinned,
            statement_open: self.hold,
            load_data: self.infile,
            sent_ahead: self.successor.is_some(),
            response_complete: !c.scanner.is_busy() && c.unread_body == 0 && c.rbuf.is_empty(),
            in_transaction: c.status & status::IN_TRANS != 0,
            needs_reset: c.needs_reset,
        })
    }

    /// The server connection failed. If the client had nothing in flight it goes on with
    /// a new server connection next time; otherwise it is told and disconnected.
    pub(super) async fn server_lost(&mut self, e: BackendError) -> Result<(), SessionError> {
        // A command sent ahead on this connection is lost with it.
        self.successor = None;
        let Some(lease) = self.lease.take() else {
            return Ok(());
        };
        let _ = self.s.handle.clear_server();
        let quiet = !lease.scanner.is_busy() && lease.status & status::IN_TRANS == 0;
        lease.discard();
        tracing::warn!(pool = %self.s.pool.name, error = %e, "server connection lost");
        if quiet && self.pinned.is_none() && !self.hold && self.s.pool.mode == PoolMode::Transaction
        {
            self.err_locally(
                code::LOST_CONNECTION,
                "HY000",
                &format!(
                    "maitred: the server connection of pool \"{}\" was lost: {e}; retry",
                    self.s.pool.name
                ),
            );
            return Ok(());
        }
        packets::write_err(
            &mut self.cwbuf,
            1,
            code::LOST_CONNECTION,
            "HY000",
            &format!(
                "Lost connection to server during query (maitred: the server connection of pool \"{}\" failed: {e}; the transaction in progress, if any, was not committed)",
                self.s.pool.name
            ),
        );
        let _ = self.flush_client().await;
        Err(e.into())
    }

    /// The client is gone: whatever it left on its server connection is cleaned up before
    /// anyone else gets that connection.
    pub(super) fn finish(&mut self) {
        let kill_aimed = self.s.handle.clear_server();
        let Some(facts) = self.lease_facts() else {
            return;
        };
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        self.successor = None;
        match isolation::client_gone(&facts, kill_aimed) {
            // Two responses owed, one of them another client's, or a KILL on its way:
            // not worth draining.
            Disposal::Close => lease.discard(),
            Disposal::Reset => {
                lease.needs_reset = true;
                lease.mark_dirty();
            }
            Disposal::CheckIn => {}
        }
    }
}
