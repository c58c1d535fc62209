//! The client's commands: what each one does before it is forwarded (the one scan of a
//! COM_QUERY's text, pins, statements prepared), and those maitred answers itself
//! (COM_PING, COM_CHANGE_USER, KILL with maitred's ids).

use super::isolation::{self, OnQuery};
use super::{send_ahead, Acquired, Flow, Inflight, Relay};
use crate::codec::packets::{self, OkInfo};
use crate::codec::response::Expect;
use crate::codec::{command, frame, status, stmt, CodecError};
use crate::error::SessionError;
use crate::errors_to_client::code;
use crate::sql_effects::lexer::lex_with;
use crate::sql_effects::PinReason;
use crate::sql_effects::{analyze_with, rewrite_query, QueryEffect};
use crate::statements::StmtFacts;
use bytes::BytesMut;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::AsyncReadExt;

impl Relay {
    pub(super) async fn handle_command(&mut self, payload: BytesMut) -> Result<Flow, SessionError> {
        let Some(&cmd) = payload.first() else {
            return Err(CodecError::Empty.into());
        };
        self.ahead_safe = false;
        tracing::trace!(
            client = self.s.connection_id,
            cmd,
            len = payload.len(),
            "command"
        );
        match cmd {
            command::QUIT => return Ok(Flow::ClientDone),
            command::PING => self.ok_locally(),
            command::CHANGE_USER => return self.change_user(&payload).await,
            command::STMT_CLOSE => {
                let id = stmt::statement_id(&payload)?;
                self.stmts.remove(id);
            }
            command::RESET_CONNECTION => {
                self.stmts.clear();
                self.session_sets.clear();
                self.vars.clear();
                self.vars.set_handshake_charset(self.s.collation);
                self.pinned = None;
                self.autocommit = true;
                if self.lease.is_some() {
                    self.forward(&payload, Expect::Status, Inflight::ResetConnection);
                } else {
                    self.ok_locally();
                }
            }
            command::INIT_DB => {
                let db = String::from_utf8_lossy(&payload[1..]).into_owned();
                if self.acquire().await? {
                    self.forward(&payload, Expect::Status, Inflight::Database(db));
                }
            }
            command::QUERY => {
                // The one scan of the text: effect, KILL, send-ahead shape and rewrites.
                let mode = self.vars.lex_mode();
                let lexed = lex_with(&payload[1..], mode);
                let analysis = analyze_with(&lexed, mode);
                if let Some((query_only, target)) = analysis.kill {
                    return self.kill(query_only, target).await;
                }
                if analysis.unmapped_kill {
                    self.err_locally(
                        code::NOT_SUPPORTED,
                        "42000",
                        "maitred: KILL must be sent alone as KILL [CONNECTION|QUERY] <id> with the id CONNECTION_ID() shows (maitred's); inside a statement list its number would name another client's server thread",
                    );
                    return Ok(Flow::Continue);
                }
                let rewritten = rewrite_query(&lexed, self.s.connection_id, self.last_insert_id);
                drop(lexed);
                let payload = match rewritten {
                    Some(sql) => {
                        let mut p = BytesMut::with_capacity(sql.len() + 1);
                        p.extend_from_slice(&[command::QUERY]);
                        p.extend_from_slice(&sql);
                        p
                    }
                    None => payload,
                };
                let effect = analysis.effect;
                let shape = if effect == QueryEffect::None && analysis.may_send_ahead {
                    send_ahead::ahead_shape(&self.s.pool, &payload, None)
                } else {
                    None
                };
                let offer = shape.and_then(|requires| self.ahead_offer(&payload, requires));
                match self.acquire_offering(offer).await? {
                    Acquired::No => return Ok(Flow::Continue),
                    Acquired::Sent => {
                        self.account_sent_command();
                        return Ok(Flow::Continue);
                    }
                    Acquired::Leased => {}
                }
                if analysis.calls_routine {
                    // What the routine took that the server does not report (a user lock)
                    // must not reach the next client: reset before anyone else gets it.
                    if let Some(conn) = self.lease.as_deref_mut() {
                        conn.needs_reset = true;
                    }
                }
                // With the server reporting variable changes, SETs need no scanning: what
                // the server reports is recorded when the response is relayed.
                let tracked = self.lease.as_deref().is_some_and(|c| c.tracks_variables);
                let inflight = match isolation::on_query(effect, tracked, self.session_sets.len()) {
                    OnQuery::Forward => Inflight::Forward,
                    OnQuery::Database(db) => Inflight::Database(db),
                    OnQuery::RecordSet => Inflight::SessionSet(payload[1..].to_vec()),
                    OnQuery::Pin(reason) => {
                        self.pin(reason);
                        Inflight::Forward
                    }
                };
                self.forward(&payload, Expect::Results, inflight);
                self.ahead_safe = shape.is_some();
            }
            command::SET_OPTION => {
                self.pin(PinReason::SetOption);
                if self.acquire().await? {
                    self.forward(&payload, Expect::Status, Inflight::Forward);
                }
            }
            command::FIELD_LIST | command::STATISTICS => {
                if self.acquire().await? {
                    let expect = Expect::of(cmd).unwrap_or(Expect::AnyOne);
                    self.forward(&payload, expect, Inflight::Forward);
                }
            }
            command::STMT_PREPARE => {
                // The statement's text is read once, here; its executions act on it.
                let facts = StmtFacts::of(&payload[1..], self.vars.lex_mode());
                if facts.kills {
                    self.err_locally(
                        code::NOT_SUPPORTED,
                        "42000",
                        "maitred: KILL cannot be prepared; send KILL [CONNECTION|QUERY] <id> as a query, with the id CONNECTION_ID() shows (maitred's)",
                    );
                } else if self.acquire().await? {
                    let sql: Arc<[u8]> = Arc::from(&payload[1..]);
                    self.forward(&payload, Expect::Prepare, Inflight::Prepare(sql, facts));
                }
            }
            command::STMT_EXECUTE
            | command::STMT_SEND_LONG_DATA
            | command::STMT_RESET
            | command::STMT_FETCH => self.statement_command(cmd, payload).await?,
            _ => self.err_locally(
                code::UNKNOWN_COM,
                "08S01",
                &format!("maitred: unknown or unsupported command 0x{cmd:02x}"),
            ),
        }
        Ok(Flow::Continue)
    }

    /// COM_CHANGE_USER: the client is switched to mysql_native_password with a fresh
    /// scramble and checked like at login; on success its session starts over (statements,
    /// SETs, pins and database forgotten; a held server connection is reset and returned).
    /// A failed change closes the client, as servers do.
    pub(super) async fn change_user(&mut self, payload: &[u8]) -> Result<Flow, SessionError> {
        let req = packets::parse_change_user(payload, self.s.capabilities)?;
        let scramble = crate::auth::new_scramble();
        frame::write_packet(
            &mut self.cwbuf,
            1,
            &packets::auth_switch(crate::auth::NATIVE, &scramble),
        );
        self.flush_client().await?;
        let answer = self.read_client_packet(2).await?;
        let pool = self.s.pool.clone();
        let ok = match pool.password(&req.user) {
            _ if !pool.check_passwords => !pool.has_users() || pool.password(&req.user).is_some(),
            Some(pw) => {
                crate::auth::verify(crate::auth::NATIVE, &scramble, pw.as_bytes(), &answer).is_ok()
            }
            None => false,
        };
        if !ok {
            pool.counters.login_failures.fetch_add(1, Ordering::Relaxed);
            packets::write_err(
                &mut self.cwbuf,
                3,
                code::ACCESS_DENIED,
                "28000",
                &format!(
                    "Access denied for user '{}' (using password: YES)",
                    req.user
                ),
            );
            self.flush_client().await?;
            return Ok(Flow::ClientDone);
        }
        if let Some(mut lease) = self.lease.take() {
            if self.s.handle.clear_server() {
                lease.discard();
            } else {
                lease.needs_reset = true;
                lease.mark_dirty();
            }
        }
        self.stmts.clear();
        self.session_sets.clear();
        self.vars.clear();
        // COM_CHANGE_USER's own character set field is not read: the login's stays.
        self.vars.set_handshake_charset(self.s.collation);
        self.pinned = None;
        self.hold = false;
        self.autocommit = true;
        self.s.database = req.database.or_else(|| pool.database.clone());
        packets::write_ok(
            &mut self.cwbuf,
            3,
            &OkInfo {
                affected_rows: 0,
                last_insert_id: 0,
                status: status::AUTOCOMMIT,
                warnings: 0,
            },
        );
        Ok(Flow::Continue)
    }

    /// Reads one whole client packet that must carry sequence id `expected` (inside a
    /// command's exchange, e.g. an auth switch answer).
    pub(super) async fn read_client_packet(
        &mut self,
        expected: u8,
    ) -> Result<Vec<u8>, SessionError> {
        loop {
            if let Some((len, seq)) = frame::peek_packet(&self.crbuf, 64 * 1024)? {
                if seq != expected {
                    return Err(CodecError::OutOfSequence { expected, got: seq }.into());
                }
                let p = self.crbuf.split_to(frame::HEADER_LEN + len);
                return Ok(p[frame::HEADER_LEN..].to_vec());
            }
            let n = self
                .client
                .read_buf(&mut self.crbuf)
                .await
                .map_err(SessionError::ClientIo)?;
            if n == 0 {
                return Err(SessionError::ClientIo(
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
        }
    }

    /// `KILL [QUERY] <id>` with maitred's id: the target's current server thread gets
    /// `KILL QUERY` (sent over this client's own server connection, only while the target
    /// still holds that thread: [`ClientHandle::aim_kill`]); KILL CONNECTION also
    /// ends the target's session with maitred. Only the same user of the same pool may
    /// kill a client (MySQL's rule for users without PROCESS/SUPER). An id that is not
    /// maitred's may be a server thread id (from `SHOW PROCESSLIST`): it names the client
    /// of this pool holding that thread, as long as it holds it.
    pub(super) async fn kill(
        &mut self,
        query_only: bool,
        target: u32,
    ) -> Result<Flow, SessionError> {
        let by_id = self.s.clients.get(target);
        let by_thread = by_id
            .is_none()
            .then(|| self.s.clients.holding_thread(&self.s.handle, target))
            .flatten();
        let named_thread = by_thread.is_some().then_some(target);
        let Some(h) = by_id.or(by_thread) else {
            self.err_locally(
                code::NO_SUCH_THREAD,
                "HY000",
                &format!("Unknown thread id: {target}"),
            );
            return Ok(Flow::Continue);
        };
        if !h.same_owner(&self.s.handle) {
            self.err_locally(
                code::KILL_DENIED,
                "HY000",
                &format!("You are not owner of thread {target}"),
            );
            return Ok(Flow::Continue);
        }
        if !query_only {
            if h.id == self.s.connection_id {
                self.err_locally(code::CONNECTION_KILLED, "70100", "Connection was killed");
                return Ok(Flow::ClientDone);
            }
            h.kill();
        }
        if h.server_thread().is_none() {
            // The target holds no server connection: nothing runs for it, and nothing
            // needs one of ours.
            self.ok_locally();
            return Ok(Flow::Continue);
        }
        // Our own server connection first (this may wait): the target's thread is read
        // only once the KILL can go at once, and aimed, so that the target closes that
        // connection instead of handing it over while the KILL is on its way.
        if !self.acquire().await? {
            return Ok(Flow::Continue);
        }
        let aimed = match named_thread {
            Some(thread) => h.aim_kill_at(thread),
            None => h.aim_kill(),
        };
        let Some(aim) = aimed else {
            // The target holds no server connection (or no longer the thread named):
            // nothing runs for it.
            self.ok_locally();
            return Ok(Flow::Continue);
        };
        let Some(conn) = self.lease.as_deref_mut() else {
            return Ok(Flow::Continue);
        };
        let sent = conn.query(&format!("KILL QUERY {}", aim.thread)).await;
        drop(aim);
        match sent {
            Ok(Ok(_)) => self.ok_locally(),
            // The thread was closed meanwhile (the target let go of it): nothing to kill.
            Ok(Err(e)) if e.code == code::NO_SUCH_THREAD => self.ok_locally(),
            Ok(Err(e)) => self.err_locally(e.code, &e.sqlstate, &e.message),
            Err(e) => self.server_lost(e).await?,
        }
        Ok(Flow::Continue)
    }
}
