//! The question to the server: for each parameter, on a pooled connection,
//!
//! ```sql
//! BEGIN; SET LOCAL client_encoding TO '<server_encoding>';  -- first query
//! SET LOCAL "name" TO DEFAULT;                         -- as on a fresh connection
//! SELECT pg_catalog.set_config('name', 'value', true); -- the raw value, as a startup
//! ...                                                  -- packet gives it; returns it as
//!                                                      -- the server shows it
//! ```
//!
//! then a separate `ROLLBACK` (also run when a SET failed and skipped the rest), so the
//! connection is left as it was. The server takes startup values as bytes in its own
//! encoding, so the question is read in that encoding too, whatever `client_encoding` an
//! earlier client left on the connection (it is converted on arrival: hence a query of its
//! own before). `set_config` takes the value as the server takes a startup parameter (a
//! list is not quoted as one identifier, as `SET name TO 'a, b'` would), and the DEFAULT
//! first makes a relative value (`DateStyle = dmy`) relative to the server's default, not
//! to a setting an earlier client left on the connection.

use super::{Outcome, Refusal};
use crate::backend::ServerConn;
use crate::error::BackendError;
use crate::settings::{is_setting_name, quote_literal};
use bytes::BytesMut;
use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Longest identifier the server keeps whole (NAMEDATALEN - 1).
const MAX_IDENTIFIER: usize = 63;

/// One startup parameter to ask about.
#[derive(Debug)]
pub(super) struct Question<'a> {
    pub name: &'a str,
    pub value: &'a str,
    /// Set from the server's default (false: from the value of an earlier question of the
    /// same name, as the server applies a name given twice).
    pub from_default: bool,
}

/// The server's answer for each of `params`, in order; after a refusal, the parameters
/// behind it were not asked about and get no answer. `server_encoding` as the server
/// reports it.
pub(super) async fn ask(
    conn: &mut ServerConn,
    server_encoding: &str,
    params: &[Question<'_>],
) -> Result<Vec<Outcome>, BackendError> {
    let mut out = BytesMut::new();
    let setup = format!(
        "BEGIN;SET LOCAL client_encoding TO {};",
        quote_literal(server_encoding)
    );
    frontend::query(&setup, &mut out)?;
    frontend::query(&question(params), &mut out)?;
    frontend::query("ROLLBACK", &mut out)?;
    // Counted before the write: a login abandoned half-way leaves a connection that the
    // pool sees is not idle, and closes.
    conn.pending_sync += 3;
    conn.stream.write_all(&out).await?;
    let mut answers = Vec::with_capacity(params.len());
    let mut refused = false;
    let mut setup_failed = false;
    // Which query the messages answer: 0 setup, 1 question, 2 ROLLBACK.
    let mut query = 0;
    while conn.pending_sync > 0 {
        match conn.read_message().await? {
            Message::DataRow(row) if query == 1 && !refused => {
                let mut ranges = row.ranges();
                let value = match ranges.next()? {
                    Some(Some(r)) => String::from_utf8_lossy(&row.buffer()[r]).into_owned(),
                    _ => String::new(),
                };
                answers.push(Outcome::Accepted(value));
            }
            Message::ErrorResponse(_) if query == 0 => setup_failed = true,
            Message::ErrorResponse(body) if query == 1 && !refused => {
                refused = true;
                answers.push(Outcome::Refused(Arc::new(refusal(&body)?)));
            }
            Message::ReadyForQuery(body) => {
                conn.tx_status = body.status();
                conn.pending_sync -= 1;
                query += 1;
            }
            _ => {}
        }
    }
    if setup_failed || conn.tx_status != b'I' || (!refused && answers.len() != params.len()) {
        return Err(BackendError::Unexpected("the check of startup parameters"));
    }
    Ok(answers)
}

fn question(params: &[Question<'_>]) -> String {
    let mut sql = String::new();
    for q in params {
        if q.from_default && is_setting_name(q.name) && q.name.len() <= MAX_IDENTIFIER {
            sql.push_str(&format!("SET LOCAL \"{}\" TO DEFAULT;", q.name));
        }
        sql.push_str(&format!(
            "SELECT pg_catalog.set_config({}, {}, true);",
            quote_literal(q.name),
            quote_literal(q.value)
        ));
    }
    sql
}

fn refusal(
    body: &postgres_protocol::message::backend::ErrorResponseBody,
) -> Result<Refusal, std::io::Error> {
    let mut r = Refusal {
        code: String::new(),
        message: String::new(),
        detail: None,
        hint: None,
    };
    let mut fields = body.fields();
    while let Some(f) = fields.next()? {
        let text = String::from_utf8_lossy(f.value_bytes()).into_owned();
        match f.type_() {
            b'C' => r.code = text,
            b'M' => r.message = text,
            b'D' => r.detail = Some(text),
            b'H' => r.hint = Some(text),
            _ => {}
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_resets_then_sets_each_value_raw() {
        let q = |name, value, from_default| Question {
            name,
            value,
            from_default,
        };
        let sql = question(&[
            q("DateStyle", "german", true),
            q("x; drop", "it's", true),
            q("datestyle", "postgres", false),
        ]);
        assert_eq!(
            sql,
            "SET LOCAL \"DateStyle\" TO DEFAULT;\
             SELECT pg_catalog.set_config('DateStyle', 'german', true);\
             SELECT pg_catalog.set_config('x; drop', 'it''s', true);\
             SELECT pg_catalog.set_config('datestyle', 'postgres', true);"
        );
    }
}
