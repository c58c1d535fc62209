//! Runs the auth_query for one user on the dedicated lookup connection (extended protocol,
//! the user name as `$1`) and returns the secret column of the row, if any.

use crate::backend::ServerConn;
use crate::error::{BackendError, ServerErrorFields};
use bytes::{BufMut, BytesMut};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use postgres_protocol::IsNull;
use thiserror::Error;
use tokio::io::AsyncWriteExt;

/// Why a lookup failed. Never carries the secret (rows are not echoed).
#[derive(Debug, Error)]
pub enum LookupError {
    #[error("could not connect as the auth_user: {0}")]
    Connect(BackendError),
    #[error("lookup connection failed: {0}")]
    Connection(#[from] BackendError),
    #[error("the auth_query failed on the server: {0}")]
    Query(ServerErrorFields),
    #[error("the auth_query returned {0}; it must return one row of (user name, secret) or none")]
    Shape(&'static str),
    #[error("the lookup did not finish within {0}s")]
    Timeout(u64),
}

impl LookupError {
    /// Whether the connection is still usable after this error.
    pub fn keeps_connection(&self) -> bool {
        matches!(self, LookupError::Query(_) | LookupError::Shape(_))
    }
}

impl From<std::io::Error> for LookupError {
    fn from(e: std::io::Error) -> Self {
        LookupError::Connection(e.into())
    }
}

/// What a client is told (SQLSTATE 08006) when the lookup of its user failed, whatever the
/// reason: it has not logged in, so it learns nothing of the upstream (address, database,
/// the auth_user, the server's error text). The [`LookupError`] goes to the log.
pub fn failed_lookup_message(user: &str) -> String {
    format!(
        "maitred: could not verify credentials for user \"{user}\": the authentication lookup failed"
    )
}

/// Runs `query` with `user` as `$1`. `Ok(None)`: no row, or a NULL secret.
pub async fn fetch_secret(
    conn: &mut ServerConn,
    query: &str,
    user: &str,
) -> Result<Option<String>, LookupError> {
    let mut out = BytesMut::new();
    frontend::parse("", query, [], &mut out)?;
    frontend::bind(
        "",
        "",
        [0i16],
        [user],
        |v: &str, buf: &mut BytesMut| {
            buf.put_slice(v.as_bytes());
            Ok(IsNull::No)
        },
        [0i16],
        &mut out,
    )
    .map_err(|_| LookupError::Shape("a parameter that cannot be sent"))?;
    frontend::execute("", 0, &mut out)?;
    frontend::sync(&mut out);
    conn.stream.write_all(&out).await?;
    let mut rows = 0usize;
    let mut secret = None;
    let mut failure = None;
    loop {
        match conn.read_message().await? {
            Message::DataRow(body) => {
                rows += 1;
                let mut ranges = body.ranges();
                let mut columns = Vec::new();
                while let Some(range) = fallible_iterator::FallibleIterator::next(&mut ranges)? {
                    columns.push(range);
                }
                if columns.len() != 2 {
                    failure.get_or_insert(LookupError::Shape("a row without exactly 2 columns"));
                    continue;
                }
                secret = columns[1]
                    .clone()
                    .map(|r| String::from_utf8_lossy(&body.buffer()[r]).into_owned());
            }
            Message::ErrorResponse(body) => {
                failure = Some(LookupError::Query(crate::backend::error_fields(&body)?));
            }
            Message::ReadyForQuery(body) => {
                conn.tx_status = body.status();
                break;
            }
            _ => {}
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    match rows {
        0 | 1 => Ok(secret),
        _ => Err(LookupError::Shape("more than one row")),
    }
}
