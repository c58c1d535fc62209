//! The PostgreSQL side of a fleet ([`maitred_pool::fleet::Coordinator`]): tokens are
//! session advisory locks `(class, i)`, `i` in `0..budget`, where `class` is derived from
//! the fleet's name; the coordination connection is one more server connection of the
//! pool's target (same user, database and settings), so the server frees its locks when
//! it ends. A replica that wants more tokens holds the shared lock `(class, WANT_KEY)`;
//! the survey reads `pg_locks` (readable by any user) for the fleet's live sessions and
//! those wanting.
//!
//! Advisory locks live per database: replicas share a budget when they reach the same
//! database of the same server under the same fleet name.

use bytes::BytesMut;
use maitred_pool::fleet::{Coordinator, Survey};
use maitred_pool::Pool;
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;
use std::fmt::Write as _;
use tokio::io::AsyncWriteExt;

use crate::backend::ServerConn;
use crate::error::BackendError;
use crate::manager::PgManager;

/// The objid of the shared lock held by replicas that want more tokens.
const WANT_KEY: i32 = i32::MAX;

/// The advisory lock class of a fleet name: FNV-1a, kept positive and non-zero.
pub fn lock_class(fleet: &str) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in "maitred-fleet:".bytes().chain(fleet.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    ((h & 0x7fff_ffff).max(1)) as i32
}

/// Coordinates a PostgreSQL pool's fleet through its own server.
pub struct PgCoordinator {
    /// The pool, whose target (which a reload may change) the coordination connection
    /// follows.
    pool: Pool<PgManager>,
    class: i32,
}

impl PgCoordinator {
    /// A coordinator for `pool`, in fleet `fleet`.
    pub fn new(pool: &Pool<PgManager>, fleet: &str) -> PgCoordinator {
        PgCoordinator {
            pool: pool.clone(),
            class: lock_class(fleet),
        }
    }
}

/// One coordination connection.
pub struct PgSession {
    conn: ServerConn,
    wanting: bool,
}

/// Why a coordination call failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("coordination query failed: {0}")]
    Query(String),
    #[error("unexpected answer to a coordination query: {0}")]
    Shape(&'static str),
}

impl From<std::io::Error> for FleetError {
    fn from(e: std::io::Error) -> Self {
        FleetError::Backend(e.into())
    }
}

/// Runs one simple query; returns its rows as text.
async fn query(conn: &mut ServerConn, sql: &str) -> Result<Vec<Vec<Option<String>>>, FleetError> {
    let mut out = BytesMut::new();
    frontend::query(sql, &mut out)?;
    conn.stream.write_all(&out).await?;
    let mut rows = Vec::new();
    let mut failure = None;
    loop {
        match conn.read_message().await? {
            Message::DataRow(body) => {
                let mut ranges = body.ranges();
                let mut row = Vec::new();
                while let Some(range) = fallible_iterator::FallibleIterator::next(&mut ranges)? {
                    row.push(
                        range.map(|r| String::from_utf8_lossy(&body.buffer()[r]).into_owned()),
                    );
                }
                rows.push(row);
            }
            Message::ErrorResponse(body) => {
                let fields = crate::backend::error_fields(&body)?;
                failure = Some(FleetError::Query(fields.to_string()));
            }
            Message::ReadyForQuery(body) => {
                conn.tx_status = body.status();
                break;
            }
            _ => {}
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(rows),
    }
}

fn int(rows: &[Vec<Option<String>>], col: usize) -> Result<usize, FleetError> {
    rows.last()
        .and_then(|r| r.get(col))
        .and_then(|v| v.as_deref())
        .and_then(|v| v.parse::<i64>().ok())
        .map(|v| v.max(0) as usize)
        .ok_or(FleetError::Shape("a number was expected"))
}

impl Coordinator for PgCoordinator {
    type Session = PgSession;
    type Error = FleetError;

    async fn open(&self) -> Result<PgSession, FleetError> {
        let target = self.pool.manager().target();
        let mut conn = ServerConn::connect(&target, 0).await?;
        // Not the role's statement or idle session timeouts: the session must live on
        // (idle_session_timeout exists from PostgreSQL 14 on; an older server refuses it).
        for sql in ["SET statement_timeout = 0", "SET idle_session_timeout = 0"] {
            let _ = query(&mut conn, sql).await;
        }
        Ok(PgSession {
            conn,
            wanting: false,
        })
    }

    async fn auto_budget<'a>(&'a self, s: &'a mut PgSession) -> Result<usize, FleetError> {
        let rows = query(
            &mut s.conn,
            "SELECT current_setting('max_connections')::int \
             - current_setting('superuser_reserved_connections')::int \
             - coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0)",
        )
        .await?;
        int(&rows, 0)
    }

    async fn acquire<'a>(
        &'a self,
        s: &'a mut PgSession,
        budget: usize,
        held: &'a [u32],
        n: usize,
    ) -> Result<Vec<u32>, FleetError> {
        if n == 0 || budget == 0 {
            return Ok(Vec::new());
        }
        // The held tokens are filtered out behind an optimization fence (OFFSET 0), so
        // that pg_try_advisory_lock never runs for a token this session holds already
        // (it would stack a second lock on it). The Limit node stops the scan at n.
        let mut held_list = String::from("'{");
        for (i, t) in held.iter().enumerate() {
            if i > 0 {
                held_list.push(',');
            }
            let _ = write!(held_list, "{t}");
        }
        held_list.push_str("}'::int4[]");
        let sql = format!(
            "SELECT i FROM (SELECT i FROM generate_series(0, {last}) AS g(i) \
             WHERE NOT (i = ANY({held_list})) OFFSET 0) AS free \
             WHERE pg_try_advisory_lock({class}, i) LIMIT {n}",
            last = budget - 1,
            class = self.class,
        );
        let rows = query(&mut s.conn, &sql).await?;
        rows.iter()
            .map(|r| {
                r.first()
                    .and_then(|v| v.as_deref())
                    .and_then(|v| v.parse::<u32>().ok())
                    .ok_or(FleetError::Shape("a token number was expected"))
            })
            .collect()
    }

    async fn release<'a>(
        &'a self,
        s: &'a mut PgSession,
        tokens: &'a [u32],
    ) -> Result<(), FleetError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut sql = String::from("SELECT ");
        for (i, t) in tokens.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "pg_advisory_unlock({}, {t})", self.class);
        }
        query(&mut s.conn, &sql).await?;
        Ok(())
    }

    async fn survey<'a>(
        &'a self,
        s: &'a mut PgSession,
        budget: usize,
        wanting: bool,
    ) -> Result<Survey, FleetError> {
        let flag = match (s.wanting, wanting) {
            (false, true) => format!(
                "SELECT pg_advisory_lock_shared({}, {WANT_KEY}); ",
                self.class
            ),
            (true, false) => format!(
                "SELECT pg_advisory_unlock_shared({}, {WANT_KEY}); ",
                self.class
            ),
            _ => String::new(),
        };
        let sql = format!(
            "{flag}SELECT count(DISTINCT pid) FILTER (WHERE objid < {budget}), \
             count(DISTINCT pid) FILTER (WHERE objid = {WANT_KEY}), \
             count(*) FILTER (WHERE objid < {budget}) \
             FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND classid = {class} AND objsubid = 2 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            class = self.class,
        );
        let rows = query(&mut s.conn, &sql).await?;
        s.wanting = wanting;
        Ok(Survey {
            replicas: int(&rows, 0)?,
            wanting: int(&rows, 1)?,
            held: int(&rows, 2)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_classes_are_positive_and_differ_by_name() {
        let a = lock_class("web");
        let b = lock_class("jobs");
        assert!(a > 0 && b > 0);
        assert_ne!(a, b);
        assert_eq!(a, lock_class("web"));
    }
}
