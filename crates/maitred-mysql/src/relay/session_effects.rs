//! Session-state bookkeeping: pins, what a server connection carries of a client's session
//! ([`SessionMark`]), the changes the server reports in OK packets (session tracking), and
//! what the end of a response records (database, replayed SETs, reset, cursor).

use super::{isolation, Inflight, Relay};
use crate::backend::SessionMark;
use crate::codec::session_state::Change;
use crate::codec::status;
use crate::sql_effects::PinReason;

impl Relay {
    pub(super) fn pin(&mut self, reason: PinReason) {
        if let Some(reason) = isolation::new_pin(self.s.pool.mode, self.pinned, reason) {
            self.pinned = Some(reason);
            self.s.pool.counters.count_pin(reason);
            tracing::debug!(pool = %self.s.pool.name, reason = reason.as_str(), "client pinned to its server connection");
        }
    }

    /// What a server connection carries once it has this client's session.
    pub(super) fn session_mark(&self) -> SessionMark {
        SessionMark {
            client: self.s.connection_id,
            sets: self.session_sets.len(),
            vars_version: self.vars.version(),
        }
    }

    /// Acts on the session-state changes the server reported in an OK packet: variables
    /// and the database follow the client; a change the server does not name pins it.
    pub(super) fn apply_session_changes(&mut self, changes: Vec<Change>, unknown: bool) {
        tracing::trace!(
            client = self.s.connection_id,
            ?changes,
            unknown,
            "session state reported"
        );
        let mut changed = false;
        for c in changes {
            match c {
                Change::SystemVariable { name, value } => {
                    changed |= self.vars.set(name, value);
                }
                Change::Schema(db) => {
                    if let Some(conn) = self.lease.as_deref_mut() {
                        conn.database = Some(db.clone());
                    }
                    self.s.database = Some(db);
                }
                Change::StateChanged | Change::Other => {}
            }
        }
        let reported = isolation::on_reported(changed, unknown);
        if let Some(reason) = reported.pin {
            self.pin(reason);
        }
        if reported.mark_owner {
            let mark = self.session_mark();
            if let Some(conn) = self.lease.as_deref_mut() {
                conn.session_owner = Some(mark);
            }
        }
    }

    pub(super) fn response_ended(&mut self, s: Option<u16>) {
        tracing::trace!(client = self.s.connection_id, status = ?s, "response ended");
        if let Some(s) = s {
            self.autocommit = s & status::AUTOCOMMIT != 0;
            if s & status::CURSOR_EXISTS != 0 {
                self.hold = true;
            }
        }
        let inflight = std::mem::replace(&mut self.inflight, Inflight::Forward);
        let Some(conn) = self.lease.as_deref_mut() else {
            return;
        };
        match inflight {
            Inflight::Database(db) if s.is_some() => {
                conn.database = Some(db.clone());
                self.s.database = Some(db);
            }
            Inflight::SessionSet(sql) if s.is_some() => {
                self.session_sets.push(sql);
                conn.session_owner = Some(SessionMark {
                    client: self.s.connection_id,
                    sets: self.session_sets.len(),
                    vars_version: self.vars.version(),
                });
            }
            Inflight::ResetConnection => {
                conn.statements.clear();
                conn.session_owner = None;
                // The reset put the tracking variables back to their global values.
                conn.tracking_stale = conn.session_track;
            }
            Inflight::Fetch if s.is_none_or(|s| s & status::LAST_ROW_SENT != 0) => {
                self.hold = false;
            }
            _ => {}
        }
    }
}
