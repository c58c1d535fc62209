//! The MongoDB side of a fleet ([`maitred_pool::fleet::Coordinator`]). MongoDB has no lock
//! that ends with a session, so tokens are lease documents ([`lease`]) in collection
//! `maitred_fleet` of the upstream URL's database (`maitred` when the URL names none),
//! written through one coordination connection (one more server connection of the
//! pool's target). A replica takes a token with an upsert that matches only a document
//! it holds or whose lease ran out, and renews its leases at every survey; the leases
//! of a replica that died run out after at most [`lease::lease`] (the tokens are not
//! freed at once, as PostgreSQL's and MySQL's locks are). Times are the server's
//! (`$$NOW`).
//!
//! A renewal that finds fewer of its tokens than it holds means a lease ran out and
//! another replica may have taken the token: the call fails, and the controller treats
//! it as a lost coordination connection (it opens nothing more and closes connections
//! until it holds tokens again).

pub mod lease;

use bson::{Document, RawDocumentBuf};
use maitred_pool::fleet::{Coordinator, Survey};
use maitred_pool::Pool;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::backend::ServerConn;
use crate::error::BackendError;
use crate::manager::MongoManager;
use lease::{Leases, Live};

/// Coordinates a MongoDB pool's fleet through its own server.
pub struct MongoCoordinator {
    /// The pool, whose target (which a reload may change) the coordination connection
    /// follows.
    pool: Pool<MongoManager>,
    database: String,
    leases: Leases,
}

/// A replica id, random per process: the pid and a randomly keyed hash (std's SipHash
/// keys come from the OS's random source) of the time.
fn replica_id() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    format!("{}-{:016x}", std::process::id(), h.finish())
}

impl MongoCoordinator {
    /// A coordinator for `pool`, in fleet `fleet`, keeping its lease documents in
    /// `database` (empty: `maitred`), with leases of `lease` (see [`lease::lease`]).
    pub fn new(
        pool: &Pool<MongoManager>,
        fleet: &str,
        database: &str,
        lease: Duration,
    ) -> MongoCoordinator {
        let database = if database.is_empty() {
            "maitred"
        } else {
            database
        };
        MongoCoordinator {
            pool: pool.clone(),
            database: database.to_owned(),
            leases: Leases::new(fleet, &replica_id(), lease),
        }
    }

    async fn run(
        &self,
        s: &mut MongoSession,
        name: &'static str,
        mut cmd: Document,
    ) -> Result<RawDocumentBuf, FleetError> {
        cmd.insert("$db", self.database.as_str());
        let raw = RawDocumentBuf::from_document(&cmd)
            .map_err(|_| FleetError::Shape("a command that does not encode"))?;
        Ok(s.conn.command(name, &raw).await?)
    }
}

/// One coordination connection, and the tokens it holds (renewed at each survey).
pub struct MongoSession {
    conn: ServerConn,
    held: Vec<u32>,
}

/// Why a coordination call failed.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("unexpected answer to a coordination command: {0}")]
    Shape(&'static str),
    #[error("{0} of this replica's token leases ran out before their renewal (the server was slower than the lease allows)")]
    LeaseLost(usize),
    #[error("the server does not report its connection limit (serverStatus connections.available); set budget to a number")]
    NoLimit,
    #[error("coordination write failed: {0}")]
    Write(String),
}

fn number(doc: &bson::RawDocument, key: &str) -> Option<i64> {
    match doc.get(key).ok()?? {
        bson::RawBsonRef::Int32(v) => Some(i64::from(v)),
        bson::RawBsonRef::Int64(v) => Some(v),
        bson::RawBsonRef::Double(v) => Some(v as i64),
        _ => None,
    }
}

/// The indexes of the statements that failed, and the first failure other than a
/// duplicate key (which, for a take, means "held by another replica").
fn write_errors(reply: &bson::RawDocument) -> (Vec<usize>, Option<String>) {
    let mut failed = Vec::new();
    let mut other = None;
    if let Ok(errors) = reply.get_array("writeErrors") {
        for e in errors.into_iter().flatten() {
            let Some(e) = e.as_document() else { continue };
            if let Some(k) = number(e, "index").and_then(|k| usize::try_from(k).ok()) {
                failed.push(k);
            }
            if number(e, "code") != Some(11000) && other.is_none() {
                other = Some(e.get_str("errmsg").unwrap_or("no errmsg").to_owned());
            }
        }
    }
    (failed, other)
}

impl MongoCoordinator {
    async fn live(&self, s: &mut MongoSession) -> Result<Vec<Live>, FleetError> {
        let reply = self.run(s, "find", self.leases.live()).await?;
        let batch = reply
            .get_document("cursor")
            .and_then(|c| c.get_array("firstBatch"))
            .map_err(|_| FleetError::Shape("find without cursor.firstBatch"))?;
        Ok(batch
            .into_iter()
            .flatten()
            .filter_map(|d| d.as_document().and_then(Live::parse))
            .collect())
    }
}

impl Coordinator for MongoCoordinator {
    type Session = MongoSession;
    type Error = FleetError;

    async fn open(&self) -> Result<MongoSession, FleetError> {
        let target = self.pool.manager().target();
        let conn = ServerConn::connect(&target).await?;
        let mut s = MongoSession {
            conn,
            held: Vec::new(),
        };
        // Wanting documents of replicas gone for good (each process writes its own).
        self.run(&mut s, "delete", self.leases.sweep()).await?;
        Ok(s)
    }

    /// `serverStatus` connections `current + available` (the server's
    /// `maxIncomingConnections`, or the OS's limit).
    async fn auto_budget<'a>(&'a self, s: &'a mut MongoSession) -> Result<usize, FleetError> {
        let mut cmd = Document::new();
        cmd.insert("serverStatus", 1);
        let reply = self.run(s, "serverStatus", cmd).await?;
        let c = reply
            .get_document("connections")
            .map_err(|_| FleetError::Shape("serverStatus without connections"))?;
        let current = number(c, "current").unwrap_or(0);
        let available = number(c, "available").unwrap_or(0);
        if available <= 0 {
            return Err(FleetError::NoLimit);
        }
        Ok(usize::try_from(current + available).unwrap_or(0))
    }

    async fn acquire<'a>(
        &'a self,
        s: &'a mut MongoSession,
        budget: usize,
        held: &'a [u32],
        n: usize,
    ) -> Result<Vec<u32>, FleetError> {
        if n == 0 || budget == 0 {
            return Ok(Vec::new());
        }
        // Candidates: not held by this session, not leased to another replica (a token of
        // this process from an earlier session is taken back).
        let live = self.live(s).await?;
        let taken: Vec<u32> = live
            .iter()
            .filter_map(|l| match l {
                Live::Token { i, holder } if !self.leases.is_mine(holder) => Some(*i),
                _ => None,
            })
            .collect();
        let last = u32::try_from(budget).unwrap_or(u32::MAX);
        let candidates: Vec<u32> = (0..last)
            .filter(|t| !held.contains(t) && !taken.contains(t))
            .take(n)
            .collect();
        if candidates.is_empty() {
            return Ok(candidates);
        }
        let reply = self.run(s, "update", self.leases.take(&candidates)).await?;
        let (failed, other) = write_errors(&reply);
        if let Some(e) = other {
            return Err(FleetError::Write(e));
        }
        let got: Vec<u32> = candidates
            .iter()
            .enumerate()
            .filter(|(k, _)| !failed.contains(k))
            .map(|(_, t)| *t)
            .collect();
        s.held.extend(&got);
        Ok(got)
    }

    async fn release<'a>(
        &'a self,
        s: &'a mut MongoSession,
        tokens: &'a [u32],
    ) -> Result<(), FleetError> {
        if tokens.is_empty() {
            return Ok(());
        }
        s.held.retain(|t| !tokens.contains(t));
        self.run(s, "delete", self.leases.release(tokens)).await?;
        Ok(())
    }

    async fn survey<'a>(
        &'a self,
        s: &'a mut MongoSession,
        budget: usize,
        wanting: bool,
    ) -> Result<Survey, FleetError> {
        let renew = self.leases.renew(&s.held, wanting);
        let reply = self.run(s, "update", renew).await?;
        let (_, other) = write_errors(&reply);
        if let Some(e) = other {
            return Err(FleetError::Write(e));
        }
        // n: the renewed tokens, plus the wanting document (matched or inserted).
        let renewed = usize::try_from(number(&reply, "n").unwrap_or(0) - 1).unwrap_or(0);
        if renewed < s.held.len() {
            return Err(FleetError::LeaseLost(s.held.len() - renewed));
        }
        let live = self.live(s).await?;
        let (replicas, wanting, held) = lease::tally(&live, budget);
        Ok(Survey {
            replicas,
            wanting,
            held,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[test]
    fn duplicate_keys_are_taken_tokens_other_write_errors_fail() {
        let reply = rawdoc! {
            "n": 1,
            "writeErrors": [
                { "index": 0, "code": 11000, "errmsg": "E11000 duplicate key" },
                { "index": 2_i64, "code": 11000, "errmsg": "E11000 duplicate key" },
            ],
            "ok": 1.0,
        };
        assert_eq!(write_errors(&reply), (vec![0, 2], None));
        let reply = rawdoc! {
            "writeErrors": [ { "index": 1, "code": 13, "errmsg": "not authorized" } ],
            "ok": 1.0,
        };
        assert_eq!(
            write_errors(&reply),
            (vec![1], Some("not authorized".to_owned()))
        );
        assert_eq!(write_errors(&rawdoc! { "n": 2, "ok": 1 }), (vec![], None));
    }

    #[test]
    fn live_documents_parse_by_kind() {
        let t = rawdoc! { "_id": "web:3", "kind": "token", "i": 3_i64, "holder": "r1" };
        assert_eq!(
            Live::parse(&t),
            Some(Live::Token {
                i: 3,
                holder: "r1".into()
            })
        );
        let w = rawdoc! { "_id": "web:want:r1", "kind": "want", "holder": "r1", "wanting": true };
        assert_eq!(
            Live::parse(&w),
            Some(Live::Want {
                holder: "r1".into(),
                wanting: true
            })
        );
        assert_eq!(
            Live::parse(&rawdoc! { "kind": "token", "holder": "r1" }),
            None
        );
        assert_eq!(
            Live::parse(&rawdoc! { "kind": "other", "holder": "r1" }),
            None
        );
    }

    #[test]
    fn replica_ids_differ() {
        assert_ne!(replica_id(), replica_id());
    }
}
