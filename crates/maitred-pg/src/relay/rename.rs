//! Statement renaming (transaction and statement modes): the client's statement names
//! mapped to the pool-wide `mtd_<n>` names ([`crate::statements`]), prepared lazily on the
//! leased connection, Parse answered without the server when the statement is there already.

use super::client_side::refusal_message;
use super::Relay;
use crate::codec::client_msgs::tag;
use crate::codec::extended::{self, parse_query_text, Target};
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::error::SessionError;
use crate::replies::Request;
use crate::sql_effects;
use crate::statements::Statement;
use bytes::BytesMut;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Relay {
    pub(super) fn forward_parse(&mut self, msg: &[u8]) -> Result<(), SessionError> {
        let parts = extended::split_parse(msg)?;
        if parts.name.is_empty() {
            // Found at each unnamed Parse (once: an offer to send it ahead scanned it).
            let scan = self
                .query_scan
                .take()
                .unwrap_or_else(|| sql_effects::scan_text(parse_query_text(parts.definition)));
            if let Some(refusal) = scan.refusal() {
                self.refuse_statement("42501", refusal_message(refusal));
                return Ok(());
            }
            self.unnamed_effects = scan.effects;
            self.replies.client(Request::Parse(None));
            self.swbuf.extend_from_slice(msg);
            return Ok(());
        }
        let stmt = self.pool.statements.intern(parts.definition);
        if let Some(refusal) = sql_effects::refusal_of(&stmt.effects) {
            self.refuse_statement("42501", refusal_message(refusal));
            return Ok(());
        }
        if !self.statements.insert(parts.name, stmt.clone()) {
            let m = format!("prepared statement \"{}\" already exists", parts.name);
            self.refuse_statement("42P05", &m);
            return Ok(());
        }
        let Some(server) = self.lease.as_deref_mut() else {
            return Ok(());
        };
        if server.prepared.touch(stmt.id) {
            self.pool
                .counters
                .statement_cache_hits
                .fetch_add(1, Ordering::Relaxed);
            let mut pc = BytesMut::new();
            out::parse_complete(&mut pc);
            self.replies.composed(pc.freeze(), &mut self.cwbuf);
        } else {
            self.prepare_on_server(&stmt, false);
        }
        Ok(())
    }

    /// Sends a Parse of `stmt` under its maitred name (closing an evicted statement first if
    /// the connection's bound is reached). `injected`: the client did not ask for it.
    pub(super) fn prepare_on_server(&mut self, stmt: &Statement, injected: bool) {
        let Some(server) = self.lease.as_deref_mut() else {
            return;
        };
        if let Some(evicted) = server.prepared.insert(stmt) {
            extended::write_statement_target(&mut self.swbuf, tag::CLOSE, &evicted);
            self.replies.injected(Request::Close);
        }
        extended::write_parse(&mut self.swbuf, &stmt.server_name, &stmt.definition);
        self.pool
            .counters
            .statement_prepares
            .fetch_add(1, Ordering::Relaxed);
        if injected {
            self.replies.injected(Request::Parse(Some(stmt.id)));
        } else {
            self.replies.client(Request::Parse(Some(stmt.id)));
        }
    }

    /// The client's statement by name, prepared on the leased server connection.
    pub(super) fn statement_on_server(&mut self, name: &str) -> Option<Arc<Statement>> {
        let Some(stmt) = self.statements.get(name).cloned() else {
            let m = format!("prepared statement \"{name}\" does not exist");
            self.refuse_statement("26000", &m);
            return None;
        };
        let present = self
            .lease
            .as_deref_mut()
            .is_some_and(|s| s.prepared.touch(stmt.id));
        if !present {
            self.prepare_on_server(&stmt, true);
        }
        Some(stmt)
    }

    pub(super) fn forward_bind(&mut self, msg: &[u8]) -> Result<(), SessionError> {
        let name = extended::bind_statement(msg)?;
        self.check_search_path();
        if name.is_empty() {
            if !self.unnamed_effects.is_empty() {
                let effects = std::mem::take(&mut self.unnamed_effects);
                let bound = self.bind_effects(&effects);
                self.unnamed_effects = effects;
                if !bound {
                    return Ok(());
                }
            }
            self.swbuf.extend_from_slice(msg);
        } else {
            let Some(stmt) = self.statement_on_server(name) else {
                return Ok(());
            };
            if !stmt.effects.is_empty() && !self.bind_effects(&stmt.effects) {
                return Ok(());
            }
            extended::write_bind_renamed(&mut self.swbuf, msg, &stmt.server_name)?;
        }
        self.replies.client(Request::Bind);
        Ok(())
    }

    pub(super) fn forward_describe_or_close(
        &mut self,
        t: u8,
        msg: &[u8],
    ) -> Result<(), SessionError> {
        let request = if t == tag::DESCRIBE {
            Request::Describe
        } else {
            Request::Close
        };
        match extended::describe_or_close_target(msg)? {
            Target::Statement(name) if !name.is_empty() && t == tag::CLOSE => {
                // The statement stays prepared on the server for other clients.
                self.statements.remove(name);
                let mut cc = BytesMut::new();
                out::close_complete(&mut cc);
                self.replies.composed(cc.freeze(), &mut self.cwbuf);
            }
            Target::Statement(name) if !name.is_empty() => {
                let Some(stmt) = self.statement_on_server(name) else {
                    return Ok(());
                };
                extended::write_statement_target(&mut self.swbuf, t, &stmt.server_name);
                self.replies.client(request);
            }
            _ => {
                self.swbuf.extend_from_slice(msg);
                self.replies.client(request);
            }
        }
        Ok(())
    }

    /// Answers an extended-protocol message with an error as the server would, and skips
    /// the client's messages up to its Sync.
    pub(super) fn refuse_statement(&mut self, code: &str, message: &str) {
        let mut e = BytesMut::new();
        out::error_response(
            &mut e,
            &ErrorFields {
                severity: Severity::Error,
                code,
                message,
                detail: None,
                hint: None,
            },
        );
        self.replies.composed(e.freeze(), &mut self.cwbuf);
        self.abandon_batch_effects();
        self.skip_until_sync = true;
    }
}
