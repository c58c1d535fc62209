//! Named prepared statements in transaction mode.
//!
//! Statement names are per server connection, but a client in transaction mode moves between
//! server connections. So:
//! - the pool's [`StatementRegistry`] gives every distinct definition (query text + parameter
//!   types) one maitred name, `mtd_<n>`, shared by all clients;
//! - each client keeps its own names → definitions ([`ClientStatements`]);
//! - each server connection remembers which maitred names it has prepared
//!   ([`PreparedOnServer`], bounded, least recently used evicted and closed);
//! - the relay prepares a statement on the server a client lands on when it is missing, and
//!   answers the client's Parse and Close itself when the server needs no work;
//! - what a statement does to session state (SET, pins, see [`crate::sql_effects`]) is
//!   found once, when the pool first sees it, and applied by the relay at each Bind.

use crate::codec::extended::parse_query_text;
use crate::sql_effects::{self, Effect};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One statement definition known to the pool.
#[derive(Debug)]
pub struct Statement {
    pub id: u64,
    /// The name used on server connections.
    pub server_name: String,
    /// Query text and parameter types, exactly as in the Parse message after the name.
    pub definition: Bytes,
    /// What running the statement does to session state; empty for almost every statement.
    pub effects: Vec<Effect>,
    /// A lone read-only statement that may be sent ahead on another client's connection
    /// ([`sql_effects::may_send_ahead`]).
    pub may_send_ahead: bool,
}

/// How many statement definitions a pool's [`StatementRegistry`] keeps before it forgets
/// those no client names any more (least recently used first). Statements a client still
/// names are never forgotten, so the registry holds at most this many plus the ones in use.
pub const MAX_REGISTERED_STATEMENTS: usize = 10_000;

/// The pool's map from statement definitions to maitred names, bounded: past its capacity,
/// definitions no client refers to any more are forgotten, least recently used first.
///
/// A forgotten definition may still be prepared on some server connections under its
/// `mtd_<n>` name; that is harmless: ids (and so server names) are never reused, nothing
/// can ask for the old name again, and each connection's [`PreparedOnServer`] closes it
/// when it becomes that connection's least recently used. The same text interned again
/// gets a new id and is prepared afresh.
#[derive(Debug)]
pub struct StatementRegistry {
    next_id: AtomicU64,
    capacity: usize,
    inner: Mutex<Registered>,
    evictions: AtomicU64,
}

#[derive(Debug, Default)]
struct Registered {
    by_definition: HashMap<Bytes, (Arc<Statement>, u64)>,
    /// Bumped at every intern; the second field of each entry is its last use.
    tick: u64,
    /// Size at which the next eviction scan runs (a scan that finds every statement in
    /// use is not repeated at each new statement).
    scan_at: usize,
}

impl Default for StatementRegistry {
    fn default() -> Self {
        StatementRegistry::with_capacity(MAX_REGISTERED_STATEMENTS)
    }
}

impl StatementRegistry {
    /// A registry that keeps about `capacity` definitions (at least 1).
    pub fn with_capacity(capacity: usize) -> StatementRegistry {
        let capacity = capacity.max(1);
        StatementRegistry {
            next_id: AtomicU64::new(0),
            capacity,
            inner: Mutex::new(Registered {
                scan_at: capacity,
                ..Registered::default()
            }),
            evictions: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registered> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The statement for a definition, registering it on first sight. Takes a lock: runs on
    /// a client's Parse, not on every execution.
    pub fn intern(&self, definition: &[u8]) -> Arc<Statement> {
        let mut reg = self.lock();
        reg.tick += 1;
        let tick = reg.tick;
        if let Some((s, used)) = reg.by_definition.get_mut(definition) {
            *used = tick;
            return s.clone();
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let definition = Bytes::copy_from_slice(definition);
        let stmt = Arc::new(Statement {
            id,
            server_name: format!("mtd_{id}"),
            definition: definition.clone(),
            effects: sql_effects::scan_text(parse_query_text(&definition)).effects,
            may_send_ahead: parse_query_text(&definition).is_some_and(sql_effects::may_send_ahead),
        });
        reg.by_definition.insert(definition, (stmt.clone(), tick));
        if reg.by_definition.len() > reg.scan_at {
            self.evict(&mut reg);
        }
        stmt
    }

    /// Forgets the least recently used definitions nobody refers to (only the registry
    /// holds them), down to 7/8 of the capacity so that scans are rare; if too few are
    /// unused, the next scan waits until the registry grew by another eighth.
    fn evict(&self, reg: &mut Registered) {
        let target = self.capacity - self.capacity / 8;
        let excess = reg.by_definition.len().saturating_sub(target);
        let mut unused: Vec<(u64, Bytes)> = reg
            .by_definition
            .iter()
            .filter(|(_, (s, _))| Arc::strong_count(s) == 1)
            .map(|(d, (_, used))| (*used, d.clone()))
            .collect();
        if unused.len() > excess {
            unused.select_nth_unstable_by_key(excess, |(used, _)| *used);
            unused.truncate(excess);
        }
        for (_, d) in &unused {
            reg.by_definition.remove(d);
        }
        self.evictions
            .fetch_add(unused.len() as u64, Ordering::Relaxed);
        let len = reg.by_definition.len();
        reg.scan_at = if len <= self.capacity {
            self.capacity
        } else {
            len + (self.capacity / 8).max(1)
        };
    }

    /// Definitions registered now.
    pub fn len(&self) -> usize {
        self.lock().by_definition.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound [`len`](Self::len) is kept near (exceeded only by statements in use).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Definitions forgotten so far because the registry was full.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

/// A client's own statement names.
#[derive(Debug, Default)]
pub struct ClientStatements {
    by_name: HashMap<String, Arc<Statement>>,
}

impl ClientStatements {
    pub fn get(&self, name: &str) -> Option<&Arc<Statement>> {
        self.by_name.get(name)
    }

    /// Records a name; false if the client already uses it (PostgreSQL's 42P05).
    pub fn insert(&mut self, name: &str, stmt: Arc<Statement>) -> bool {
        if self.by_name.contains_key(name) {
            return false;
        }
        self.by_name.insert(name.to_owned(), stmt);
        true
    }

    pub fn remove(&mut self, name: &str) {
        self.by_name.remove(name);
    }

    pub fn clear(&mut self) {
        self.by_name.clear();
    }
}

/// The statements prepared on one server connection, with a bound.
#[derive(Debug)]
pub struct PreparedOnServer {
    capacity: usize,
    tick: u64,
    /// statement id → (server name, last use)
    entries: HashMap<u64, (String, u64)>,
}

impl PreparedOnServer {
    pub fn new(capacity: usize) -> PreparedOnServer {
        PreparedOnServer {
            capacity: capacity.max(1),
            tick: 0,
            entries: HashMap::new(),
        }
    }

    /// Whether the statement is prepared there; counts as a use.
    pub fn touch(&mut self, id: u64) -> bool {
        self.tick += 1;
        let tick = self.tick;
        match self.entries.get_mut(&id) {
            Some(e) => {
                e.1 = tick;
                true
            }
            None => false,
        }
    }

    /// Records a statement as prepared; returns the server name of one evicted to stay
    /// within the bound (the caller closes it on the server).
    pub fn insert(&mut self, stmt: &Statement) -> Option<String> {
        self.tick += 1;
        let mut evicted = None;
        if !self.entries.contains_key(&stmt.id) && self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                evicted = self.entries.remove(&id).map(|(name, _)| name);
            }
        }
        self.entries
            .insert(stmt.id, (stmt.server_name.clone(), self.tick));
        evicted
    }

    pub fn remove(&mut self, id: u64) {
        self.entries.remove(&id);
    }

    /// Whether the statement is prepared there, without counting a use.
    pub fn contains(&self, id: u64) -> bool {
        self.entries.contains_key(&id)
    }

    /// After DISCARD ALL or DEALLOCATE ALL nothing is prepared any more.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_definition_same_name_across_clients() {
        let reg = StatementRegistry::default();
        let a = reg.intern(b"select 1\0\0\0");
        let b = reg.intern(b"select 1\0\0\0");
        let c = reg.intern(b"select 2\0\0\0");
        assert_eq!(a.server_name, b.server_name);
        assert_ne!(a.server_name, c.server_name);
        assert_eq!(reg.len(), 2);
    }

    #[test]
    fn effects_are_found_once_per_definition() {
        let reg = StatementRegistry::default();
        assert!(reg.intern(b"select $1::int\0\0\0").effects.is_empty());
        assert_eq!(
            reg.intern(b"SET application_name = 'x'\0\0\0").effects,
            vec![Effect::Set {
                name: "application_name".into(),
                value: "'x'".into()
            }]
        );
        assert_eq!(
            reg.intern(b"select pg_advisory_lock($1)\0\0\x01\0\0\0\x14")
                .effects,
            vec![Effect::Pin(sql_effects::PinReason::AdvisoryLock)]
        );
    }

    #[test]
    fn client_names_are_unique_per_client() {
        let reg = StatementRegistry::default();
        let mut c = ClientStatements::default();
        assert!(c.insert("s0", reg.intern(b"q1")));
        assert!(!c.insert("s0", reg.intern(b"q2")));
        c.remove("s0");
        assert!(c.get("s0").is_none());
    }

    #[test]
    fn registry_stays_at_its_cap_under_100k_distinct_statements() {
        let reg = StatementRegistry::default();
        let mut client = ClientStatements::default();
        let mut names = std::collections::HashSet::new();
        for i in 0..100_000 {
            // A client's Parse then Close of a text never seen before.
            let stmt = reg.intern(format!("select {i}\0\0\0").as_bytes());
            assert!(
                names.insert(stmt.server_name.clone()),
                "server names are never reused"
            );
            assert!(client.insert("s", stmt));
            client.remove("s");
            assert!(
                reg.len() <= MAX_REGISTERED_STATEMENTS,
                "{} at {i}",
                reg.len()
            );
        }
        assert!(reg.len() > MAX_REGISTERED_STATEMENTS / 2);
        assert_eq!(
            reg.evictions() as usize + reg.len(),
            100_000,
            "every statement is registered or was evicted"
        );
    }

    #[test]
    fn statements_in_use_are_kept_and_the_least_recently_used_go() {
        let reg = StatementRegistry::with_capacity(16);
        let held = reg.intern(b"held");
        let hot = reg.intern(b"hot");
        drop(hot);
        for i in 0..100 {
            reg.intern(format!("q{i}").as_bytes());
            // "hot" is used again and again, so it is never the least recently used.
            reg.intern(b"hot");
        }
        assert!(reg.len() <= 16);
        assert_eq!(reg.intern(b"held").id, held.id, "in use: kept");
        let hot_id = reg.intern(b"hot").id;
        assert_eq!(reg.intern(b"hot").id, hot_id);
        assert!(hot_id < reg.intern(b"q99").id, "recently used: kept");
        // An evicted text comes back under a new id (and so a new server name).
        let q0 = reg.intern(b"q0");
        assert!(q0.id > hot_id && q0.server_name != "mtd_3");
    }

    #[test]
    fn a_registry_full_of_statements_in_use_grows_past_its_cap_and_shrinks_later() {
        let reg = StatementRegistry::with_capacity(8);
        let held: Vec<_> = (0..20)
            .map(|i| reg.intern(format!("h{i}").as_bytes()))
            .collect();
        assert_eq!(reg.len(), 20);
        drop(held);
        reg.intern(b"one more");
        assert!(reg.len() <= 8, "{}", reg.len());
    }

    #[test]
    fn server_bound_evicts_least_recently_used() {
        let reg = StatementRegistry::default();
        let s: Vec<_> = (0..3)
            .map(|i| reg.intern(format!("q{i}").as_bytes()))
            .collect();
        let mut p = PreparedOnServer::new(2);
        assert_eq!(p.insert(&s[0]), None);
        assert_eq!(p.insert(&s[1]), None);
        assert!(p.touch(s[0].id));
        assert_eq!(p.insert(&s[2]), Some(s[1].server_name.clone()));
        assert!(p.touch(s[0].id) && p.touch(s[2].id) && !p.touch(s[1].id));
        assert_eq!(p.len(), 2);
    }
}
