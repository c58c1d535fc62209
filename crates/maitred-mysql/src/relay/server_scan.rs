//! The server's side of a response: its bytes are forwarded to the client in bulk while
//! the response scanner follows its packets to the end; OK packets are read for the
//! session-state changes they report (and rewritten for clients), a COM_STMT_PREPARE_OK
//! gets maitred's statement id, LOAD DATA LOCAL is relayed or refused.

use super::{Inflight, Relay, WHOLE_PACKET_LIMIT};
use crate::backend::MAX_SERVER_PACKET;
use crate::codec::packets;
use crate::codec::response::Step;
use crate::codec::session_state::{self, Change};
use crate::codec::{cap, frame, stmt};
use crate::error::{BackendError, SessionError};
use crate::errors_to_client::code;
use crate::statements::ClientStmt;
use bytes::{Buf, BytesMut};
use tokio::io::AsyncWriteExt;

impl Relay {
    /// Forwards server bytes to the client, following the response to its end.
    pub(super) async fn handle_server_bytes(&mut self) -> Result<(), SessionError> {
        let Some(server) = self.lease.as_deref_mut() else {
            return Ok(());
        };
        let mut ended: Option<Option<u16>> = None;
        // Session-state changes reported by OK packets of this response.
        let mut changes: Vec<Change> = Vec::new();
        let mut unknown_change = false;
        loop {
            if server.unread_body > 0 {
                let n = server.unread_body.min(server.rbuf.len());
                if n == 0 {
                    break;
                }
                if self.swallow_err.is_none() {
                    self.cwbuf.extend_from_slice(&server.rbuf[..n]);
                }
                server.rbuf.advance(n);
                server.unread_body -= n;
                continue;
            }
            if !server.scanner.is_busy() {
                break;
            }
            let Some((len, seq)) = frame::peek_header(&server.rbuf, MAX_SERVER_PACKET)
                .map_err(BackendError::Protocol)?
            else {
                break;
            };
            let avail = server.rbuf.len() - frame::HEADER_LEN;
            if avail < len && len <= WHOLE_PACKET_LIMIT {
                break;
            }
            let head = len.min(avail);
            let body = &server.rbuf[frame::HEADER_LEN..frame::HEADER_LEN + head];
            let is_ok = server.scanner.may_be_ok() && body.first() == Some(&packets::OK);
            if server.scanner.at_result_start() && body.first() == Some(&packets::OK) {
                if let Ok(ok) = packets::parse_ok(body) {
                    if ok.last_insert_id != 0 {
                        self.last_insert_id = ok.last_insert_id;
                    }
                }
            }
            let step = server
                .scanner
                .on_packet(
                    &server.rbuf[frame::HEADER_LEN..frame::HEADER_LEN + head],
                    len,
                )
                .map_err(BackendError::Protocol)?;
            if step == Step::LocalInfile {
                if self.s.capabilities & cap::LOCAL_FILES != 0 && self.swallow_err.is_none() {
                    // The client allows it: it gets the request and sends the file.
                    self.cwbuf
                        .extend_from_slice(&server.rbuf[..frame::HEADER_LEN + head]);
                    server.rbuf.advance(frame::HEADER_LEN + head);
                    server.unread_body = len - head;
                    self.infile = true;
                    break;
                }
                // Refused: an empty file for the server, an error for the client.
                server.rbuf.advance(frame::HEADER_LEN + len);
                let mut o = BytesMut::new();
                frame::write_packet(&mut o, seq.wrapping_add(1), &[]);
                server
                    .stream
                    .write_all(&o)
                    .await
                    .map_err(BackendError::from)?;
                self.swallow_err = Some(
                    "maitred: LOAD DATA LOCAL INFILE refused: this client did not enable local files (CLIENT_LOCAL_FILES)".to_owned(),
                );
                continue;
            }
            if self.swallow_err.is_some() {
                server.rbuf.advance(frame::HEADER_LEN + head);
                server.unread_body = len - head;
                if let Step::Done(s) = step {
                    if let Some(s) = s {
                        server.status = s;
                    }
                    ended = Some(s);
                    break;
                }
                continue;
            }
            let start = self.cwbuf.len();
            let untracked = if is_ok && server.session_track && head == len {
                // The client did not ask for CLIENT_SESSION_TRACK: its OK packets carry
                // no state block and a plain info text.
                let body = &server.rbuf[frame::HEADER_LEN..frame::HEADER_LEN + len];
                let ok = session_state::parse_tracked_ok(body).map_err(BackendError::Protocol)?;
                unknown_change |= ok.unknown_state_change();
                let rewritten = ok.needs_rewrite().then(|| ok.untracked());
                changes.extend(ok.changes);
                rewritten
            } else {
                None
            };
            match untracked {
                Some(p) => {
                    frame::write_packet(&mut self.cwbuf, seq, &p);
                }
                None => self
                    .cwbuf
                    .extend_from_slice(&server.rbuf[..frame::HEADER_LEN + head]),
            }
            server.rbuf.advance(frame::HEADER_LEN + head);
            server.unread_body = len - head;
            if let Inflight::Prepare(sql, facts) = &self.inflight {
                let body = &self.cwbuf[start + frame::HEADER_LEN..];
                if body.first() == Some(&packets::OK) {
                    let ok = stmt::parse_prepare_ok(body).map_err(BackendError::Protocol)?;
                    let client_id = self.stmts.add(ClientStmt::with_facts(
                        sql.clone(),
                        ok.params,
                        ok.columns,
                        *facts,
                    ));
                    stmt::set_statement_id(&mut self.cwbuf[start + frame::HEADER_LEN..], client_id)
                        .map_err(BackendError::Protocol)?;
                    self.prepared = Some((sql.clone(), ok.statement_id));
                }
                self.inflight = Inflight::Forward;
            }
            if let Step::Done(s) = step {
                if let Some(s) = s {
                    server.status = s;
                }
                ended = Some(s);
                break;
            }
        }
        if !changes.is_empty() || unknown_change {
            self.apply_session_changes(changes, unknown_change);
        }
        if let Some((sql, id)) = self.prepared.take() {
            if let Some(conn) = self.lease.as_deref_mut() {
                if let Err(e) = conn.remember_statement(sql, id).await {
                    return self.server_lost(e).await.map(|_| ());
                }
            }
        }
        if let Some(s) = ended {
            if let Some(msg) = self.swallow_err.take() {
                packets::write_err(
                    &mut self.cwbuf,
                    1,
                    code::LOCAL_INFILE_REJECTED,
                    "HY000",
                    &msg,
                );
            }
            self.response_ended(s);
        }
        if !self.busy() && self.successor.is_some() {
            // Before writing to our client: its reply is ours alone, and the successor's
            // waits on the connection, not on our client's socket (nor on its being gone).
            self.pass_to_successor().await?;
        }
        if !self.busy() || self.infile || self.cwbuf.len() >= 64 * 1024 {
            self.flush_client().await?;
        }
        if !self.busy() {
            self.release_if_done();
        }
        Ok(())
    }
}
