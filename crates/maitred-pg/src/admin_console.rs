//! The admin console on the PostgreSQL wire: a client whose startup packet asks for the
//! virtual database `maitred` (or `pgbouncer`, so PgBouncer's tools and exporters work)
//! logs in as a configured admin user with SCRAM-SHA-256 and sends simple queries, which
//! [`maitred_admin::console::Console`] answers (SHOW POOLS, KILL, PAUSE...) for every
//! protocol's pools. Answers go back as text rows; the extended protocol is refused.
//! The users come from the console at each login, so a reload changes them.

use crate::auth::secret::Credentials;
use crate::codec::client_msgs::tag;
use crate::codec::frame;
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::codec::startup::StartupParams;
use crate::error::SessionError;
use crate::errors_to_client::sqlstate;
use crate::frontend::{authenticate_user, negotiate_version};
use crate::pool::ClientAuth;
use crate::tls::Stream;
use bytes::{BufMut, BytesMut};
use maitred_admin::console::{ConsoleError, ErrorKind, Reply, Table};
use maitred_admin::Admin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The startup database names that reach the console.
pub const CONSOLE_DATABASES: [&str; 2] = ["maitred", "pgbouncer"];
/// Largest console message accepted.
const MAX_CONSOLE_MESSAGE: usize = 64 * 1024;
/// Type oids of the columns: text and int8.
const TEXT_OID: u32 = 25;
const INT8_OID: u32 = 20;

/// Whether a startup packet's database asks for the console.
pub fn is_console_database(database: &str) -> bool {
    CONSOLE_DATABASES.contains(&database)
}

/// Serves one console session: SCRAM login as an admin user, then simple queries.
pub(crate) async fn serve(
    mut stream: Stream,
    mut buf: BytesMut,
    startup: StartupParams,
    admin: Arc<Admin>,
    login_timeout: Duration,
) {
    let login = tokio::time::timeout(
        login_timeout,
        login(&mut stream, &mut buf, &startup, &admin),
    );
    match login.await {
        Ok(Ok(true)) => {}
        Ok(Ok(false)) => return,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "admin console login failed");
            return;
        }
        Err(_) => {
            let mut o = BytesMut::new();
            fatal(
                &mut o,
                sqlstate::PROTOCOL_VIOLATION,
                "maitred: login timed out",
            );
            let _ = stream.write_all(&o).await;
            return;
        }
    }
    if let Err(e) = session(&mut stream, &mut buf, &admin).await {
        tracing::debug!(error = %e, "admin console session ended with an error");
    }
}

/// Authenticates the admin user; `Ok(false)` when refused (the client was told).
async fn login(
    stream: &mut Stream,
    buf: &mut BytesMut,
    startup: &StartupParams,
    admin: &Admin,
) -> Result<bool, SessionError> {
    negotiate_version(stream, startup).await?;
    let user = startup.user().unwrap_or_default().to_owned();
    // Derived per login (logins are rare): plaintext passwords cost one PBKDF2 here.
    let creds = admin
        .console()
        .password_of(&user)
        .and_then(|pw| Credentials::from_configured(&user, &pw).ok());
    let mut o = BytesMut::new();
    // Non-admin and unknown users fail like a wrong password (same exchange, same step).
    match authenticate_user(
        stream,
        buf,
        ClientAuth::ScramSha256,
        &user,
        creds.as_ref(),
        true,
    )
    .await
    {
        Ok(()) => {}
        Err(SessionError::Auth(_)) => {
            tracing::info!(user = %user, "admin console authentication failed");
            let msg = format!("password authentication failed for user \"{user}\"");
            fatal(&mut o, sqlstate::INVALID_PASSWORD, &msg);
            let _ = stream.write_all(&o).await;
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    tracing::info!(user = %user, "admin console login");
    out::authentication_ok(&mut o);
    let version = format!("{}/maitred", env!("CARGO_PKG_VERSION"));
    for (k, v) in [
        ("server_version", version.as_str()),
        ("server_encoding", "UTF8"),
        ("client_encoding", "UTF8"),
        ("DateStyle", "ISO"),
        ("integer_datetimes", "on"),
        ("standard_conforming_strings", "on"),
        ("application_name", ""),
    ] {
        out::parameter_status(&mut o, k, v);
    }
    out::ready_for_query(&mut o, b'I');
    stream.write_all(&o).await.map_err(SessionError::ClientIo)?;
    Ok(true)
}

/// Answers simple queries until the client leaves or maitred shuts down.
async fn session(
    stream: &mut Stream,
    buf: &mut BytesMut,
    admin: &Admin,
) -> Result<(), SessionError> {
    let mut skip_until_sync = false;
    loop {
        let mut o = BytesMut::new();
        while let Some((t, len)) = frame::peek_header(buf, MAX_CONSOLE_MESSAGE)? {
            if buf.len() < len {
                break;
            }
            let msg = buf.split_to(len);
            match t {
                tag::TERMINATE => return Ok(()),
                tag::QUERY => answer_query(&mut o, admin, query_text(&msg)),
                tag::SYNC => {
                    skip_until_sync = false;
                    out::ready_for_query(&mut o, b'I');
                }
                _ if skip_until_sync => {}
                _ => {
                    error(
                        &mut o,
                        sqlstate::FEATURE_NOT_SUPPORTED,
                        "the maitred admin console accepts only simple queries",
                    );
                    skip_until_sync = true;
                }
            }
        }
        if !o.is_empty() {
            stream.write_all(&o).await.map_err(SessionError::ClientIo)?;
        }
        let read = tokio::select! {
            r = stream.read_buf(buf) => r.map_err(SessionError::ClientIo)?,
            () = crate::shutdown::wait() => {
                let mut o = BytesMut::new();
                fatal(&mut o, sqlstate::ADMIN_SHUTDOWN, "terminating connection: maitred is shutting down");
                let _ = stream.write_all(&o).await;
                return Ok(());
            }
        };
        if read == 0 {
            return Ok(());
        }
    }
}

/// The SQL of a Query message (invalid UTF-8 is replaced; commands are ASCII).
fn query_text(msg: &[u8]) -> String {
    let body = frame::body(msg);
    let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// Runs each `;`-separated command of a query, stopping at the first error, then
/// ReadyForQuery.
fn answer_query(o: &mut BytesMut, admin: &Admin, sql: String) {
    let commands: Vec<&str> = sql
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if commands.is_empty() {
        o.put_u8(b'I');
        o.put_i32(4);
    }
    for command in commands {
        match admin.console().execute(admin, command) {
            Ok(Reply::Rows(table)) => {
                write_table(o, &table);
                out::command_complete(o, "SHOW");
            }
            Ok(Reply::Done(tag)) => out::command_complete(o, tag),
            Err(e) => {
                console_error(o, &e);
                break;
            }
        }
    }
    out::ready_for_query(o, b'I');
}

fn console_error(o: &mut BytesMut, e: &ConsoleError) {
    let code = match e.kind {
        ErrorKind::Syntax => "42601",
        ErrorKind::UnknownPool => sqlstate::INVALID_CATALOG_NAME,
        ErrorKind::Unavailable => "55000",
    };
    error(o, code, &e.message);
}

/// RowDescription and one DataRow per row, every value in text format.
fn write_table(o: &mut BytesMut, t: &Table) {
    let start = o.len();
    o.put_u8(b'T');
    o.put_i32(0);
    o.put_i16(i16::try_from(t.columns.len()).unwrap_or(i16::MAX));
    for c in &t.columns {
        o.put_slice(c.name.as_bytes());
        o.put_u8(0);
        o.put_i32(0); // table oid
        o.put_i16(0); // column number
        let (oid, len) = if c.numeric {
            (INT8_OID, 8)
        } else {
            (TEXT_OID, -1)
        };
        o.put_u32(oid);
        o.put_i16(len);
        o.put_i32(-1); // type modifier
        o.put_i16(0); // text format
    }
    patch_len(o, start);
    for row in &t.rows {
        let start = o.len();
        o.put_u8(b'D');
        o.put_i32(0);
        o.put_i16(i16::try_from(row.len()).unwrap_or(i16::MAX));
        for v in row {
            let text = v.render();
            o.put_i32(i32::try_from(text.len()).unwrap_or(i32::MAX));
            o.put_slice(text.as_bytes());
        }
        patch_len(o, start);
    }
}

/// Writes the length of the message starting at `start` (its tag byte).
fn patch_len(o: &mut BytesMut, start: usize) {
    let len = i32::try_from(o.len() - start - 1).unwrap_or(i32::MAX);
    o[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
}

fn error(o: &mut BytesMut, code: &str, message: &str) {
    out::error_response(
        o,
        &ErrorFields {
            severity: Severity::Error,
            code,
            message,
            detail: None,
            hint: None,
        },
    );
}

fn fatal(o: &mut BytesMut, code: &str, message: &str) {
    out::error_response(
        o,
        &ErrorFields {
            severity: Severity::Fatal,
            code,
            message,
            detail: None,
            hint: None,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use maitred_admin::console::{Column, Value};

    #[test]
    fn table_is_framed_as_row_description_and_data_rows() {
        let t = Table {
            columns: vec![
                Column {
                    name: "database",
                    numeric: false,
                },
                Column {
                    name: "cl_active",
                    numeric: true,
                },
            ],
            rows: vec![vec![Value::Text("app".into()), Value::Int(3)]],
        };
        let mut o = BytesMut::new();
        write_table(&mut o, &t);
        let (tag, len) = frame::peek_header(&o, 1 << 20)
            .expect("valid frame")
            .expect("whole header");
        assert_eq!(tag, b'T');
        let desc = o.split_to(len);
        assert_eq!(&desc[5..7], &2i16.to_be_bytes());
        assert!(desc.windows(9).any(|w| w == b"database\0"));
        let (tag, len) = frame::peek_header(&o, 1 << 20)
            .expect("valid frame")
            .expect("whole header");
        assert_eq!(tag, b'D');
        assert_eq!(len, o.len());
        // 2 columns: "app" (len 3) and "3" (len 1).
        assert_eq!(&o[5..], b"\x00\x02\x00\x00\x00\x03app\x00\x00\x00\x013");
    }

    #[test]
    fn console_databases_are_maitred_and_pgbouncer() {
        assert!(is_console_database("maitred"));
        assert!(is_console_database("pgbouncer"));
        assert!(!is_console_database("app"));
    }
}
