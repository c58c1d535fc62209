//! COM_STMT_EXECUTE, SEND_LONG_DATA, RESET and FETCH: maitred's statement ids become the
//! leased server connection's, preparing the statement there first when it is not.

use super::{send_ahead, Acquired, Inflight, Relay};
use crate::codec::packets::ErrInfo;
use crate::codec::response::Expect;
use crate::codec::{command, frame, stmt};
use crate::error::{BackendError, SessionError};
use crate::errors_to_client::code;
use bytes::BytesMut;
use maitred_frontend::LinkError;
use std::sync::Arc;

impl Relay {
    /// COM_STMT_EXECUTE / SEND_LONG_DATA / RESET / FETCH: maitred's statement id becomes
    /// the server connection's, preparing the statement there first if needed.
    pub(super) async fn statement_command(
        &mut self,
        cmd: u8,
        mut payload: BytesMut,
    ) -> Result<(), SessionError> {
        let id = stmt::statement_id(&payload)?;
        let Some(st) = self.stmts.get(id).cloned() else {
            if cmd != command::STMT_SEND_LONG_DATA {
                self.err_locally(
                    code::UNKNOWN_STMT_HANDLER,
                    "HY000",
                    &format!(
                        "Unknown prepared statement handler ({id}) given to mysqld_stmt_{}",
                        cmd_name(cmd)
                    ),
                );
            }
            return Ok(());
        };
        let on_server = self
            .lease
            .as_deref_mut()
            .and_then(|c| c.statements.lookup(&st.sql));
        match cmd {
            command::STMT_RESET if on_server.is_none() || !self.hold => {
                // Nothing of this statement is held on a server connection.
                self.hold = false;
                self.ok_locally();
                return Ok(());
            }
            command::STMT_FETCH if on_server.is_none() => {
                self.err_locally(1421, "HY000", "The statement has no open cursor");
                return Ok(());
            }
            _ => {}
        }
        if cmd == command::STMT_EXECUTE {
            let params = usize::from(st.params);
            if let Some(types) = stmt::execute_param_types(&payload, params)? {
                if st.types.as_deref() != Some(types) {
                    let types = types.to_vec();
                    if let Some(s) = self.stmts.get_mut(id) {
                        s.types = Some(types);
                    }
                }
            } else if let Some(types) = &st.types {
                if let Some(p) = stmt::execute_with_types(&payload, params, types)? {
                    payload = BytesMut::from(&p[..]);
                }
            }
        }
        let shape = if cmd == command::STMT_EXECUTE {
            send_ahead::ahead_shape(&self.s.pool, &payload, Some(&st))
        } else {
            None
        };
        let offer = shape.and_then(|requires| self.ahead_offer(&payload, requires));
        match self.acquire_offering(offer).await? {
            Acquired::No => return Ok(()),
            Acquired::Sent => {
                self.account_sent_command();
                return Ok(());
            }
            Acquired::Leased => {}
        }
        if cmd == command::STMT_EXECUTE {
            // The statement's text was classified once, when it was prepared.
            if let Some(r) = st.pins {
                self.pin(r);
            }
            if st.calls_routine {
                if let Some(conn) = self.lease.as_deref_mut() {
                    conn.needs_reset = true;
                }
            }
        }
        let server_id = match self.server_statement(&st.sql).await {
            Ok(Ok(sid)) => sid,
            Ok(Err(e)) => {
                if cmd != command::STMT_SEND_LONG_DATA {
                    self.err_locally(e.code, &e.sqlstate, &e.message);
                }
                return Ok(());
            }
            Err(e) => {
                self.server_lost(e).await?;
                return Ok(());
            }
        };
        stmt::set_statement_id(&mut payload, server_id)?;
        if cmd == command::STMT_EXECUTE && st.reads_last_insert_id {
            // The statement's text cannot carry the value (a COM_QUERY's is rewritten):
            // the connection's LAST_INSERT_ID() becomes this client's.
            let Some(conn) = self.lease.as_deref_mut() else {
                return Ok(());
            };
            match conn
                .query(&format!("DO LAST_INSERT_ID({})", self.last_insert_id))
                .await
            {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.err_locally(e.code, &e.sqlstate, &e.message);
                    return Ok(());
                }
                Err(e) => {
                    self.server_lost(e).await?;
                    return Ok(());
                }
            }
        }
        match cmd {
            command::STMT_SEND_LONG_DATA => {
                self.hold = true;
                frame::write_packet(&mut self.swbuf, 0, &payload);
            }
            command::STMT_FETCH => self.forward(&payload, Expect::Fetch, Inflight::Fetch),
            command::STMT_RESET => {
                self.hold = false;
                self.forward(&payload, Expect::Status, Inflight::Forward);
            }
            _ => {
                self.hold = false;
                self.forward(&payload, Expect::Results, Inflight::Forward);
                self.ahead_safe = shape.is_some();
            }
        }
        Ok(())
    }

    /// The leased connection's id for a statement, preparing it there if needed.
    pub(super) async fn server_statement(
        &mut self,
        sql: &Arc<[u8]>,
    ) -> Result<Result<u32, ErrInfo>, BackendError> {
        let Some(conn) = self.lease.as_deref_mut() else {
            return Err(LinkError::Closed.into());
        };
        if let Some(id) = conn.statements.lookup(sql) {
            return Ok(Ok(id));
        }
        Ok(conn.prepare(sql).await?.map(|ok| ok.statement_id))
    }
}

fn cmd_name(cmd: u8) -> &'static str {
    match cmd {
        command::STMT_EXECUTE => "execute",
        command::STMT_RESET => "reset",
        command::STMT_FETCH => "fetch",
        _ => "send_long_data",
    }
}
