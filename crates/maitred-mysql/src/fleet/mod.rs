//! The MySQL/MariaDB side of a fleet ([`maitred_pool::fleet::Coordinator`]): tokens are
//! named locks (`GET_LOCK(name, 0)`, names in [`names`]) held on one coordination
//! connection, one more server connection of the pool's target; the server frees a
//! session's named locks when it ends. Many named locks per session need MySQL 5.7 or
//! MariaDB 10.0.2.
//!
//! A replica that wants more tokens holds the lock named after its own connection id.
//! The survey asks `IS_USED_LOCK` of every token name: it returns the holder's
//! connection id, so distinct holders are the live replicas, and the holder's own
//! "wanting" lock can be looked up by its id in the same query. This needs no privilege
//! and no plugin: MariaDB's `information_schema.METADATA_LOCK_INFO` needs the
//! metadata_lock_info plugin (not installed by default), and MySQL's
//! `performance_schema.metadata_locks` needs performance_schema (off by default on
//! MariaDB) and read access to it.
//!
//! Named locks are server-wide (not per database): replicas share a budget when they
//! reach the same server under the same fleet name.

mod names;

pub use names::LockNames;

use maitred_pool::fleet::{Coordinator, Survey};
use maitred_pool::Pool;

use crate::backend::{ServerConn, TextRows};
use crate::error::BackendError;
use crate::manager::MysqlManager;

/// Coordinates a MySQL pool's fleet through its own server.
pub struct MysqlCoordinator {
    /// The pool, whose target (which a reload may change) the coordination connection
    /// follows.
    pool: Pool<MysqlManager>,
    names: LockNames,
}

impl MysqlCoordinator {
    /// A coordinator for `pool`, in fleet `fleet`.
    pub fn new(pool: &Pool<MysqlManager>, fleet: &str) -> MysqlCoordinator {
        MysqlCoordinator {
            pool: pool.clone(),
            names: LockNames::new(fleet),
        }
    }
}

/// One coordination connection.
pub struct MysqlSession {
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

async fn rows(conn: &mut ServerConn, sql: &str) -> Result<TextRows, FleetError> {
    conn.query_rows(sql)
        .await?
        .map_err(|e| FleetError::Query(e.to_string()))
}

/// Column `col` of the last row as a number (NULL: `None`).
fn num(rows: &TextRows, col: usize) -> Result<Option<i64>, FleetError> {
    let cell = rows
        .last()
        .and_then(|r| r.get(col))
        .ok_or(FleetError::Shape("a column was expected"))?;
    match cell {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| FleetError::Shape("a number was expected")),
    }
}

fn count(rows: &TextRows, col: usize) -> Result<usize, FleetError> {
    Ok(num(rows, col)?.unwrap_or(0).max(0) as usize)
}

impl Coordinator for MysqlCoordinator {
    type Session = MysqlSession;
    type Error = FleetError;

    async fn open(&self) -> Result<MysqlSession, FleetError> {
        let target = self.pool.manager().target();
        let conn = ServerConn::connect(&target, 0, false).await?;
        Ok(MysqlSession {
            conn,
            wanting: false,
        })
    }

    /// `max_connections`, or the account's `max_user_connections` when lower (its session
    /// value is the account's own limit if it has one). Nothing is subtracted: the slot
    /// MySQL and MariaDB keep above `max_connections` for SUPER/CONNECTION_ADMIN, MySQL's
    /// admin port and MariaDB's `extra_port`/`extra_max_connections` are all outside it.
    async fn auto_budget<'a>(&'a self, s: &'a mut MysqlSession) -> Result<usize, FleetError> {
        let r = rows(
            &mut s.conn,
            "SELECT @@max_connections, @@session.max_user_connections",
        )
        .await?;
        let max = count(&r, 0)?;
        let user = count(&r, 1)?;
        Ok(if user > 0 { max.min(user) } else { max })
    }

    async fn acquire<'a>(
        &'a self,
        s: &'a mut MysqlSession,
        budget: usize,
        held: &'a [u32],
        n: usize,
    ) -> Result<Vec<u32>, FleetError> {
        if n == 0 || budget == 0 {
            return Ok(Vec::new());
        }
        // Tokens this session holds are never asked for again: GET_LOCK would stack a
        // second lock on the name. Free ones are looked up first, then taken; one taken by
        // another replica in between just fails its GET_LOCK.
        let last = u32::try_from(budget).unwrap_or(u32::MAX);
        let candidates: Vec<u32> = (0..last).filter(|t| !held.contains(t)).collect();
        let free = rows(&mut s.conn, &self.names.free_sql(&candidates, n)).await?;
        let free: Vec<u32> = free
            .iter()
            .map(|r| {
                r.first()
                    .and_then(|v| v.as_deref())
                    .and_then(|v| v.parse::<u32>().ok())
                    .ok_or(FleetError::Shape("a token number was expected"))
            })
            .collect::<Result<_, _>>()?;
        if free.is_empty() {
            return Ok(free);
        }
        let taken = rows(&mut s.conn, &self.names.take_sql(&free)).await?;
        let mut got = Vec::new();
        for (k, t) in free.iter().enumerate() {
            if num(&taken, k)? == Some(1) {
                got.push(*t);
            }
        }
        Ok(got)
    }

    async fn release<'a>(
        &'a self,
        s: &'a mut MysqlSession,
        tokens: &'a [u32],
    ) -> Result<(), FleetError> {
        if tokens.is_empty() {
            return Ok(());
        }
        rows(&mut s.conn, &self.names.release_sql(tokens)).await?;
        Ok(())
    }

    async fn survey<'a>(
        &'a self,
        s: &'a mut MysqlSession,
        budget: usize,
        wanting: bool,
    ) -> Result<Survey, FleetError> {
        if s.wanting != wanting {
            rows(&mut s.conn, &self.names.want_sql(wanting)).await?;
            s.wanting = wanting;
        }
        let r = rows(&mut s.conn, &self.names.survey_sql(budget)).await?;
        Ok(Survey {
            replicas: count(&r, 0)?,
            wanting: count(&r, 1)?,
            held: count(&r, 2)?,
        })
    }
}
