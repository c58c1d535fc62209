//! Bringing a server connection back to a clean state: COM_RESET_CONNECTION for the next
//! client's session, the full reset of a dirty lease, and draining a response nobody reads.

use super::ServerConn;
use crate::codec::packets::ErrInfo;
use crate::codec::response::{Expect, Step};
use crate::codec::{command, frame, status};
use crate::error::BackendError;
use crate::target::ServerTarget;
use bytes::{Buf, BytesMut};
use maitred_frontend::error::{within, RESET_TIMEOUT};
use maitred_frontend::LinkError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

impl ServerConn {
    /// COM_RESET_CONNECTION alone (session variables, temporary tables, user variables,
    /// locks and prepared statements back to defaults; the database stays).
    pub async fn reset_session(&mut self) -> Result<Result<(), ErrInfo>, BackendError> {
        let r = self.simple_command(&[command::RESET_CONNECTION]).await?;
        if r.is_ok() {
            self.statements.clear();
            self.session_owner = None;
            self.enable_tracking().await?;
        }
        Ok(r.map(|_| ()))
    }

    /// Brings the connection back to a clean state for the next client: finishes a
    /// response a departed client left unread, then COM_RESET_CONNECTION (rolls back,
    /// drops temporary tables, user variables, locks and prepared statements, resets
    /// session variables) and COM_INIT_DB of the pool's database.
    pub async fn reset(&mut self, target: &ServerTarget) -> Result<(), BackendError> {
        within("reset", RESET_TIMEOUT, self.reset_inner(target)).await
    }

    async fn reset_inner(&mut self, target: &ServerTarget) -> Result<(), BackendError> {
        self.drain_response().await?;
        match self.simple_command(&[command::RESET_CONNECTION]).await? {
            Ok(_) => {}
            Err(e) => return Err(BackendError::Server(e)),
        }
        self.statements.clear();
        self.session_owner = None;
        self.enable_tracking().await?;
        self.database = None;
        if let Some(db) = &target.database {
            if let Err(e) = self.init_db(db).await? {
                return Err(BackendError::Server(e));
            }
        }
        self.needs_reset = false;
        if self.status & status::IN_TRANS != 0 {
            return Err(BackendError::Protocol(
                crate::codec::CodecError::Unexpected("reset (transaction still open)"),
            ));
        }
        Ok(())
    }

    /// Reads and drops a whole response to a command written on this connection that no
    /// client will see (one sent ahead for a client that is gone).
    pub async fn skip_response(&mut self, expect: Expect) -> Result<(), BackendError> {
        debug_assert!(!self.scanner.is_busy(), "a response is being relayed");
        self.scanner.start(expect);
        self.drain_response().await
    }

    /// Reads and drops the rest of a response the relay was forwarding.
    async fn drain_response(&mut self) -> Result<(), BackendError> {
        while self.unread_body > 0 {
            if self.rbuf.is_empty() && self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return Err(LinkError::Closed.into());
            }
            let n = self.unread_body.min(self.rbuf.len());
            self.rbuf.advance(n);
            self.unread_body -= n;
        }
        while self.scanner.is_busy() {
            let (_, p) = self.read_packet().await?;
            match self.scanner.on_packet(&p, p.len())? {
                Step::Done(Some(s)) => self.status = s,
                Step::LocalInfile => {
                    let mut out = BytesMut::new();
                    frame::write_packet(&mut out, 2, &[]);
                    self.stream.write_all(&out).await?;
                }
                _ => {}
            }
        }
        self.rbuf.clear();
        Ok(())
    }
}
