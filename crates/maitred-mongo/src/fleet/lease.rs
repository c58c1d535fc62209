//! The fleet's lease documents and the commands that take, renew, free and survey them
//! (pure: unit tested without a server).
//!
//! One collection (`maitred_fleet`) holds, per fleet:
//! - token `i`: `{_id: "<fleet>:<i>", fleet, kind: "token", i, holder, expires_ms}`;
//! - per replica: `{_id: "<fleet>:want:<replica>", fleet, kind: "want", holder, wanting,
//!   expires_ms}`, whose `wanting` says the replica has clients waiting.
//!
//! `expires_ms` is milliseconds since the epoch on the server's clock: every write sets
//! it from `$$NOW` in an aggregation-pipeline update (MongoDB 4.2+) and every filter
//! compares it with `$$NOW`, so the replicas' clocks play no part. It is a number, not a
//! date: SecantusDB (the tests' server) compares a date with `$$NOW` wrongly in `$expr`,
//! while `{$toLong: "$$NOW"}` works on both.

use bson::{doc, Bson, Document};
use std::time::Duration;

/// The collection of lease documents.
pub const COLLECTION: &str = "maitred_fleet";

/// How long the controller may leave a lease unrenewed while it still counts the session
/// as alive: two calls (a survey renews at some point before its answer; then an acquire
/// or a release) of up to `call_timeout` each, the controller's 500 ms departure grace,
/// and one `tick`. One more `call_timeout` of margin on top: 3 x call_timeout + tick +
/// 500 ms. A replica killed gives its tokens back after at most that long.
pub fn lease(call_timeout: Duration, tick: Duration) -> Duration {
    call_timeout * 3 + tick + Duration::from_millis(500)
}

/// The server's clock, in milliseconds since the epoch.
fn now() -> Bson {
    Bson::Document(doc! { "$toLong": "$$NOW" })
}

/// The lease documents of one fleet, held by one replica.
#[derive(Clone, Debug)]
pub struct Leases {
    fleet: String,
    /// This replica's id (random per process, so that a new coordination connection of
    /// the same process can take back its own unexpired tokens).
    replica: String,
    lease_ms: i64,
}

impl Leases {
    pub fn new(fleet: &str, replica: &str, lease: Duration) -> Leases {
        Leases {
            fleet: fleet.to_owned(),
            replica: replica.to_owned(),
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Token `i`'s document id.
    pub fn token_id(&self, i: u32) -> String {
        format!("{}:{i}", self.fleet)
    }

    /// This replica's "wanting" document id.
    pub fn want_id(&self) -> String {
        format!("{}:want:{}", self.fleet, self.replica)
    }

    fn expires(&self) -> Document {
        doc! { "$add": [now(), self.lease_ms] }
    }

    /// The filter of a document whose lease ran out.
    fn expired() -> Document {
        doc! { "$expr": { "$lte": ["$expires_ms", now()] } }
    }

    /// Taking token `i`: matches its document when this replica holds it or its lease ran
    /// out, else (absent) inserts it. A live document of another replica matches nothing
    /// and the upsert fails on the duplicate `_id`: the token is taken.
    pub fn take_statement(&self, i: u32) -> Document {
        doc! {
            "q": {
                "_id": self.token_id(i),
                "$or": [ { "holder": &self.replica }, Self::expired() ],
            },
            "u": [ { "$set": {
                "fleet": &self.fleet,
                "kind": "token",
                "i": i64::from(i),
                "holder": &self.replica,
                "expires_ms": self.expires(),
            } } ],
            "upsert": true,
        }
    }

    /// `update` taking each of `tokens`, unordered: statement `k` fails (a write error
    /// with index `k`) exactly when token `tokens[k]` is another replica's.
    pub fn take(&self, tokens: &[u32]) -> Document {
        let updates: Vec<Bson> = tokens
            .iter()
            .map(|i| Bson::Document(self.take_statement(*i)))
            .collect();
        doc! { "update": COLLECTION, "ordered": false, "updates": updates }
    }

    /// `update` renewing the leases of `held` and writing this replica's wanting flag (its
    /// document created if absent). Its `n` is the renewed tokens plus one: fewer means a
    /// lease was lost to another replica.
    pub fn renew(&self, held: &[u32], wanting: bool) -> Document {
        let ids: Vec<String> = held.iter().map(|i| self.token_id(*i)).collect();
        doc! {
            "update": COLLECTION,
            "ordered": true,
            "updates": [
                {
                    "q": { "_id": { "$in": ids }, "holder": &self.replica },
                    "u": [ { "$set": { "expires_ms": self.expires() } } ],
                    "multi": true,
                },
                {
                    "q": { "_id": self.want_id() },
                    "u": [ { "$set": {
                        "fleet": &self.fleet,
                        "kind": "want",
                        "holder": &self.replica,
                        "wanting": wanting,
                        "expires_ms": self.expires(),
                    } } ],
                    "upsert": true,
                },
            ],
        }
    }

    /// `delete` of `tokens` (those this replica holds).
    pub fn release(&self, tokens: &[u32]) -> Document {
        let ids: Vec<String> = tokens.iter().map(|i| self.token_id(*i)).collect();
        doc! {
            "delete": COLLECTION,
            "deletes": [ { "q": { "_id": { "$in": ids }, "holder": &self.replica }, "limit": 0 } ],
        }
    }

    /// `delete` of the fleet's expired "wanting" documents (replicas gone for good).
    pub fn sweep(&self) -> Document {
        let mut q = Self::expired();
        q.insert("fleet", &self.fleet);
        q.insert("kind", "want");
        doc! { "delete": COLLECTION, "deletes": [ { "q": q, "limit": 0 } ] }
    }

    /// `find` of the fleet's live documents, in one batch.
    pub fn live(&self) -> Document {
        doc! {
            "find": COLLECTION,
            "filter": {
                "fleet": &self.fleet,
                "$expr": { "$gt": ["$expires_ms", now()] },
            },
            "projection": { "kind": 1, "i": 1, "holder": 1, "wanting": 1 },
            "batchSize": i32::MAX,
            "singleBatch": true,
        }
    }

    /// Whether `holder` is this replica.
    pub fn is_mine(&self, holder: &str) -> bool {
        holder == self.replica
    }
}

/// A live document as `find` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Live {
    Token { i: u32, holder: String },
    Want { holder: String, wanting: bool },
}

impl Live {
    /// Reads one document; `None` for a shape this module does not write.
    pub fn parse(doc: &bson::RawDocument) -> Option<Live> {
        let holder = doc.get_str("holder").ok()?.to_owned();
        match doc.get_str("kind").ok()? {
            "token" => {
                let i = match doc.get("i").ok()?? {
                    bson::RawBsonRef::Int64(v) => u32::try_from(v).ok()?,
                    bson::RawBsonRef::Int32(v) => u32::try_from(v).ok()?,
                    bson::RawBsonRef::Double(v) if v >= 0.0 => v as u32,
                    _ => return None,
                };
                Some(Live::Token { i, holder })
            }
            "want" => Some(Live::Want {
                holder,
                wanting: doc.get_bool("wanting").unwrap_or(false),
            }),
            _ => None,
        }
    }
}

/// What the live documents say: (live replicas holding tokens of `0..budget`, those of
/// them wanting, tokens held).
pub fn tally(live: &[Live], budget: usize) -> (usize, usize, usize) {
    use std::collections::BTreeSet;
    let mut holders = BTreeSet::new();
    let mut held = 0;
    for l in live {
        if let Live::Token { i, holder } = l {
            if (*i as usize) < budget {
                holders.insert(holder.as_str());
                held += 1;
            }
        }
    }
    let wanting = live
        .iter()
        .filter(|l| matches!(l, Live::Want { holder, wanting: true } if holders.contains(holder.as_str())))
        .count();
    (holders.len(), wanting, held)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn leases() -> Leases {
        Leases::new("web", "r1", Duration::from_millis(3600))
    }

    #[test]
    fn lease_covers_two_calls_the_grace_and_a_tick_with_margin() {
        assert_eq!(
            lease(Duration::from_secs(2), Duration::from_millis(100)),
            Duration::from_millis(6600)
        );
        assert_eq!(
            lease(Duration::from_secs(1), Duration::from_millis(100)),
            Duration::from_millis(3600)
        );
    }

    #[test]
    fn take_matches_own_or_expired_and_upserts() {
        let s = leases().take_statement(3);
        assert_eq!(
            s.get_document("q").unwrap(),
            &doc! {
                "_id": "web:3",
                "$or": [
                    { "holder": "r1" },
                    { "$expr": { "$lte": ["$expires_ms", { "$toLong": "$$NOW" }] } },
                ],
            }
        );
        assert_eq!(s.get_bool("upsert"), Ok(true));
        let set = s.get_array("u").unwrap()[0]
            .as_document()
            .unwrap()
            .get_document("$set")
            .unwrap()
            .clone();
        assert_eq!(set.get_str("holder"), Ok("r1"));
        assert_eq!(set.get_i64("i"), Ok(3));
        assert_eq!(
            set.get_document("expires_ms").unwrap(),
            &doc! { "$add": [{ "$toLong": "$$NOW" }, 3600_i64] }
        );
        let all = leases().take(&[1, 2]);
        assert_eq!(all.get_bool("ordered"), Ok(false));
        assert_eq!(all.get_array("updates").unwrap().len(), 2);
    }

    #[test]
    fn renew_and_release_touch_only_this_replicas_documents() {
        let r = leases().renew(&[0, 4], true);
        let ups = r.get_array("updates").unwrap();
        let q = ups[0].as_document().unwrap().get_document("q").unwrap();
        assert_eq!(
            q,
            &doc! { "_id": { "$in": ["web:0", "web:4"] }, "holder": "r1" }
        );
        let want = ups[1].as_document().unwrap();
        assert_eq!(
            want.get_document("q").unwrap(),
            &doc! { "_id": "web:want:r1" }
        );
        let d = leases().release(&[4]);
        let q = d.get_array("deletes").unwrap()[0]
            .as_document()
            .unwrap()
            .get_document("q")
            .unwrap()
            .clone();
        assert_eq!(q, doc! { "_id": { "$in": ["web:4"] }, "holder": "r1" });
    }

    #[test]
    fn tally_counts_holders_wanting_and_tokens_within_the_budget() {
        let t = |i: u32, h: &str| Live::Token {
            i,
            holder: h.into(),
        };
        let w = |h: &str, wanting: bool| Live::Want {
            holder: h.into(),
            wanting,
        };
        let live = vec![
            t(0, "a"),
            t(1, "a"),
            t(2, "b"),
            t(9, "c"), // beyond a budget of 5: another configuration, not counted
            w("a", true),
            w("b", false),
            w("d", true), // holds no token: not a live replica
        ];
        assert_eq!(tally(&live, 5), (2, 1, 3));
    }
}
