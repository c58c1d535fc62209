//! Prepared statements across server connections.
//!
//! Clients see maitred's statement ids ([`ClientStatements`]); each server connection keeps
//! its own statements, keyed by SQL text, in a bounded cache ([`ServerStatements`]). A
//! statement is prepared on a server connection the first time it runs there; when the
//! bound is hit, the least recently used one is closed on the server.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

/// Default bound of statements prepared on one server connection.
pub const DEFAULT_MAX_PER_CONNECTION: usize = 256;

/// A key for a statement's SQL text, the same on every server connection of the process
/// (random keys per process: a client cannot craft a text whose key equals another's).
/// A statement sent ahead names its statement by this key (`maitred_pool::Ahead::requires`).
pub fn sql_key(sql: &[u8]) -> u64 {
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEYS.get_or_init(Default::default).hash_one(sql)
}

/// A statement a client prepared.
#[derive(Debug, Clone)]
pub struct ClientStmt {
    pub sql: Arc<[u8]>,
    pub params: u16,
    pub columns: u16,
    /// Parameter types from the client's last execute that sent them.
    pub types: Option<Vec<u8>>,
    /// [`sql_key`] of `sql`.
    pub key: u64,
    /// A read-only lone SELECT: its executions may be sent ahead.
    pub may_send_ahead: bool,
    /// It calls `LAST_INSERT_ID()`: the server connection is given the client's value
    /// before each execute.
    pub reads_last_insert_id: bool,
    /// Executing it takes state that cannot move (GET_LOCK, a user variable, ...): the
    /// client is pinned at its first execute.
    pub pins: Option<crate::sql_effects::PinReason>,
    /// It is a `CALL`: the connection is reset before another client gets it.
    pub calls_routine: bool,
}

/// What a statement's text says, read once when the client prepares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StmtFacts {
    pub may_send_ahead: bool,
    pub reads_last_insert_id: bool,
    pub pins: Option<crate::sql_effects::PinReason>,
    pub calls_routine: bool,
    /// A `KILL`: refused (its number would name a server thread).
    pub kills: bool,
}

impl StmtFacts {
    /// Reads `sql` as the client's `sql_mode` quotes it.
    pub fn of(sql: &[u8], mode: crate::sql_effects::lexer::LexMode) -> StmtFacts {
        let lexed = crate::sql_effects::lexer::lex_with(sql, mode);
        let analysis = crate::sql_effects::analyze_with(&lexed, mode);
        StmtFacts {
            may_send_ahead: analysis.may_send_ahead,
            reads_last_insert_id: crate::sql_effects::reads_last_insert_id(&lexed),
            pins: match analysis.effect {
                crate::sql_effects::QueryEffect::Pin(r) => Some(r),
                _ => None,
            },
            calls_routine: analysis.calls_routine,
            kills: analysis.kill.is_some() || analysis.unmapped_kill,
        }
    }
}

impl ClientStmt {
    pub fn new(sql: Arc<[u8]>, params: u16, columns: u16) -> ClientStmt {
        let facts = StmtFacts::of(&sql, crate::sql_effects::lexer::LexMode::default());
        ClientStmt::with_facts(sql, params, columns, facts)
    }

    /// A statement whose text was read already ([`StmtFacts::of`]).
    pub fn with_facts(sql: Arc<[u8]>, params: u16, columns: u16, facts: StmtFacts) -> ClientStmt {
        ClientStmt {
            key: sql_key(&sql),
            may_send_ahead: facts.may_send_ahead,
            reads_last_insert_id: facts.reads_last_insert_id,
            pins: facts.pins,
            calls_routine: facts.calls_routine,
            sql,
            params,
            columns,
            types: None,
        }
    }
}

/// One client's statements, by maitred's ids.
#[derive(Debug, Default)]
pub struct ClientStatements {
    next_id: u32,
    by_id: HashMap<u32, ClientStmt>,
}

impl ClientStatements {
    /// Registers a statement and returns the id the client will see.
    pub fn add(&mut self, stmt: ClientStmt) -> u32 {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.by_id.insert(self.next_id, stmt);
        self.next_id
    }

    pub fn get(&self, id: u32) -> Option<&ClientStmt> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: u32) -> Option<&mut ClientStmt> {
        self.by_id.get_mut(&id)
    }

    pub fn remove(&mut self, id: u32) {
        self.by_id.remove(&id);
    }

    pub fn clear(&mut self) {
        self.by_id.clear();
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[derive(Debug)]
struct Entry {
    id: u32,
    last_used: u64,
    key: u64,
}

/// The statements prepared on one server connection, by SQL text.
#[derive(Debug)]
pub struct ServerStatements {
    max: usize,
    clock: u64,
    by_sql: HashMap<Arc<[u8]>, Entry>,
    /// [`sql_key`] -> server id, for statements sent ahead.
    by_key: HashMap<u64, u32>,
}

impl ServerStatements {
    pub fn new(max: usize) -> ServerStatements {
        ServerStatements {
            max: max.max(1),
            clock: 0,
            by_sql: HashMap::new(),
            by_key: HashMap::new(),
        }
    }

    /// The server's id for `sql`, marking it used.
    pub fn lookup(&mut self, sql: &[u8]) -> Option<u32> {
        self.clock += 1;
        let clock = self.clock;
        self.by_sql.get_mut(sql).map(|e| {
            e.last_used = clock;
            e.id
        })
    }

    /// The server's id for the statement whose [`sql_key`] is `key`, without marking it
    /// used (a statement sent ahead is looked up by its key).
    pub fn id_by_key(&self, key: u64) -> Option<u32> {
        self.by_key.get(&key).copied()
    }

    /// Records a statement the server prepared. Returns the server ids to close: a
    /// statement replaced for the same SQL, and the least recently used one past the bound.
    pub fn insert(&mut self, sql: Arc<[u8]>, id: u32) -> Vec<u32> {
        self.clock += 1;
        let mut close = Vec::new();
        let key = sql_key(&sql);
        self.by_key.insert(key, id);
        if let Some(old) = self.by_sql.insert(
            sql,
            Entry {
                id,
                last_used: self.clock,
                key,
            },
        ) {
            if old.id != id {
                close.push(old.id);
            }
        }
        while self.by_sql.len() > self.max {
            let Some(oldest) = self
                .by_sql
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.by_sql.remove(&oldest) {
                self.by_key.remove(&e.key);
                close.push(e.id);
            }
        }
        close
    }

    /// Forgets every statement (the server dropped them: COM_RESET_CONNECTION).
    pub fn clear(&mut self) {
        self.by_sql.clear();
        self.by_key.clear();
    }

    pub fn len(&self) -> usize {
        self.by_sql.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_sql.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(s: &str) -> Arc<[u8]> {
        Arc::from(s.as_bytes())
    }

    #[test]
    fn client_ids_are_maitreds_own() {
        let mut c = ClientStatements::default();
        let stmt = ClientStmt::new(sql("SELECT 1"), 0, 1);
        let a = c.add(stmt.clone());
        let b = c.add(stmt);
        assert_ne!(a, b);
        assert!(a > 0);
        c.remove(a);
        assert!(c.get(a).is_none());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn server_cache_is_bounded_lru() {
        let mut s = ServerStatements::new(2);
        assert!(s.insert(sql("a"), 1).is_empty());
        assert!(s.insert(sql("b"), 2).is_empty());
        assert_eq!(s.lookup(b"a"), Some(1));
        assert_eq!(s.insert(sql("c"), 3), vec![2], "b was least recently used");
        assert_eq!(s.lookup(b"b"), None);
        assert_eq!(
            s.insert(sql("a"), 4),
            vec![1],
            "replaced statement is closed"
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s.id_by_key(sql_key(b"a")), Some(4));
        assert_eq!(s.id_by_key(sql_key(b"b")), None, "evicted");
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.id_by_key(sql_key(b"a")), None);
    }

    #[test]
    fn a_statement_is_read_once_at_prepare() {
        use crate::sql_effects::lexer::LexMode;
        use crate::sql_effects::PinReason;
        let f = StmtFacts::of(b"SELECT GET_LOCK(?, 0)", LexMode::default());
        assert_eq!(f.pins, Some(PinReason::GetLock));
        assert!(!f.may_send_ahead && !f.kills);
        let f = StmtFacts::of(b"/*!LOCK TABLES t READ*/", LexMode::default());
        assert_eq!(f.pins, Some(PinReason::LockTables));
        assert!(StmtFacts::of(b"KILL ?", LexMode::default()).kills);
        assert!(StmtFacts::of(b"KILL QUERY 5", LexMode::default()).kills);
        assert!(StmtFacts::of(b"CALL p(?)", LexMode::default()).calls_routine);
        let f = StmtFacts::of(b"SELECT c FROM t WHERE id = ?", LexMode::default());
        assert!(f.may_send_ahead && f.pins.is_none() && !f.reads_last_insert_id);
        assert!(StmtFacts::of(b"SELECT LAST_INSERT_ID()", LexMode::default()).reads_last_insert_id);
    }
}
