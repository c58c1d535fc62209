//! Prepared statements across server connections.
//!
//! Clients see maitred's statement ids ([`ClientStatements`]); each server connection keeps
//! its own statements, keyed by SQL text, in a bounded cache ([`ServerStatements`]). A
//! statement is prepared on a server connection the first time it runs there; when the
//! bound is hit, the least recently used one is closed on the server.

use std::collections::HashMap;
use std::sync::Arc;

/// Default bound of statements prepared on one server connection.
pub const DEFAULT_MAX_PER_CONNECTION: usize = 256;

/// A statement a client prepared.
#[derive(Debug, Clone)]
pub struct ClientStmt {
    pub sql: Arc<[u8]>,
    pub params: u16,
    pub columns: u16,
    /// Parameter types from the client's last execute that sent them.
    pub types: Option<Vec<u8>>,
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
}

/// The statements prepared on one server connection, by SQL text.
#[derive(Debug)]
pub struct ServerStatements {
    max: usize,
    clock: u64,
    by_sql: HashMap<Arc<[u8]>, Entry>,
}

impl ServerStatements {
    pub fn new(max: usize) -> ServerStatements {
        ServerStatements {
            max: max.max(1),
            clock: 0,
            by_sql: HashMap::new(),
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

    /// Records a statement the server prepared. Returns the server ids to close: a
    /// statement replaced for the same SQL, and the least recently used one past the bound.
    pub fn insert(&mut self, sql: Arc<[u8]>, id: u32) -> Vec<u32> {
        self.clock += 1;
        let mut close = Vec::new();
        if let Some(old) = self.by_sql.insert(
            sql,
            Entry {
                id,
                last_used: self.clock,
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
                close.push(e.id);
            }
        }
        close
    }

    /// Forgets every statement (the server dropped them: COM_RESET_CONNECTION).
    pub fn clear(&mut self) {
        self.by_sql.clear();
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
        let stmt = ClientStmt {
            sql: sql("SELECT 1"),
            params: 0,
            columns: 1,
            types: None,
        };
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
        s.clear();
        assert!(s.is_empty());
    }
}
