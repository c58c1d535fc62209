//! The fleet's lock names and the SQL that takes, frees and surveys them (pure: unit
//! tested without a server).
//!
//! Names are `maitred:<name>:<hash>:<i>` for token `i` and `maitred:<name>:<hash>:w:<id>`
//! for the "wanting" lock of the session whose connection id is `<id>`. `<name>` is the
//! fleet name cut to 24 characters with anything but `[A-Za-z0-9_.-]` replaced (readable
//! in `IS_USED_LOCK` by hand, and never in need of quoting); `<hash>` (FNV-1a of the whole
//! name) tells apart names that the cut made equal. The longest name is 8 + 24 + 1 + 8 +
//! 3 + 20 = 64 characters, under the server's limit of 64.

use std::fmt::Write as _;

/// The longest part of the fleet name kept in lock names.
const NAME_CHARS: usize = 24;

/// The lock names of one fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockNames {
    prefix: String,
}

fn fnv1a(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in "maitred-fleet:".bytes().chain(s.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

impl LockNames {
    /// The names of fleet `fleet`.
    pub fn new(fleet: &str) -> LockNames {
        let readable: String = fleet
            .chars()
            .take(NAME_CHARS)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        LockNames {
            prefix: format!("maitred:{readable}:{:08x}:", fnv1a(fleet)),
        }
    }

    /// Token `i`'s lock name.
    pub fn token(&self, i: u32) -> String {
        format!("{}{i}", self.prefix)
    }

    /// The "wanting" lock of the session with connection id `id`.
    pub fn want(&self, id: u64) -> String {
        format!("{}w:{id}", self.prefix)
    }

    /// Takes (or gives back) this session's "wanting" lock, named after
    /// `CONNECTION_ID()` as the server reports it in `IS_USED_LOCK` (the handshake's id is
    /// only 32 bits wide).
    pub fn want_sql(&self, wanting: bool) -> String {
        if wanting {
            format!(
                "SELECT GET_LOCK(CONCAT('{}w:', CONNECTION_ID()), 0)",
                self.prefix
            )
        } else {
            format!(
                "SELECT RELEASE_LOCK(CONCAT('{}w:', CONNECTION_ID()))",
                self.prefix
            )
        }
    }

    /// `SELECT i FROM <the numbers> WHERE the token is free LIMIT n`: the candidates for
    /// `acquire` (they may be taken by another replica before `take_sql`).
    pub fn free_sql(&self, candidates: &[u32], n: usize) -> String {
        format!(
            "SELECT i FROM {} AS s WHERE IS_FREE_LOCK(CONCAT('{}', i)) = 1 LIMIT {n}",
            numbers(candidates),
            self.prefix
        )
    }

    /// One row with `GET_LOCK(token, 0)` of each token (1: taken, 0 or NULL: not).
    pub fn take_sql(&self, tokens: &[u32]) -> String {
        self.each("GET_LOCK", tokens, ", 0")
    }

    /// One row with `RELEASE_LOCK(token)` of each token.
    pub fn release_sql(&self, tokens: &[u32]) -> String {
        self.each("RELEASE_LOCK", tokens, "")
    }

    fn each(&self, function: &str, tokens: &[u32], args: &str) -> String {
        let mut sql = String::from("SELECT ");
        for (k, t) in tokens.iter().enumerate() {
            if k > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "{function}('{}'{args})", self.token(*t));
        }
        sql
    }

    /// One row: live sessions holding tokens of `0..budget`, those of them holding their
    /// "wanting" lock, and tokens held. `IS_USED_LOCK` gives the holder's connection id,
    /// which also names its wanting lock.
    pub fn survey_sql(&self, budget: usize) -> String {
        let all: Vec<u32> = (0..u32::try_from(budget).unwrap_or(u32::MAX)).collect();
        format!(
            "SELECT COUNT(DISTINCT h), \
             COUNT(DISTINCT IF(IS_USED_LOCK(CONCAT('{p}w:', h)) = h, h, NULL)), COUNT(h) \
             FROM (SELECT IS_USED_LOCK(CONCAT('{p}', i)) AS h FROM {nums} AS s) AS t",
            p = self.prefix,
            nums = numbers(&all),
        )
    }
}

/// A derived table of the numbers `list` in a column `i`, written as a `UNION ALL` (MySQL
/// 5.7 has no recursive CTE; MariaDB's sequence engine is not in MySQL).
fn numbers(list: &[u32]) -> String {
    let mut sql = String::from("(");
    for (k, i) in list.iter().enumerate() {
        if k == 0 {
            let _ = write!(sql, "SELECT {i} AS i");
        } else {
            let _ = write!(sql, " UNION ALL SELECT {i}");
        }
    }
    if list.is_empty() {
        // An empty table of the right shape.
        sql.push_str("SELECT 0 AS i FROM DUAL WHERE FALSE");
    }
    sql.push(')');
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_quotable_and_differ_by_fleet() {
        let a = LockNames::new("web");
        assert!(a.token(0).starts_with("maitred:web:"));
        assert_ne!(a.token(1), LockNames::new("jobs").token(1));
        let long = "a fleet name that's far too long; with 'quotes' and more and more";
        let l = LockNames::new(long);
        let longest = l.want(u64::MAX);
        assert!(longest.len() <= 64, "{longest} is {} chars", longest.len());
        assert!(!l.token(u32::MAX).contains('\''));
        assert!(!l.token(u32::MAX).contains(' '));
        assert!(l.token(u32::MAX).len() <= 64);
        // Cut to the same readable part, told apart by the hash.
        let cut = "x".repeat(30);
        assert_ne!(
            LockNames::new(&cut).token(0),
            LockNames::new(&format!("{cut}y")).token(0)
        );
    }

    #[test]
    fn sql_lists_each_token() {
        let n = LockNames::new("web");
        let p = &n.prefix;
        assert_eq!(
            n.take_sql(&[2, 5]),
            format!("SELECT GET_LOCK('{p}2', 0), GET_LOCK('{p}5', 0)")
        );
        assert_eq!(n.release_sql(&[7]), format!("SELECT RELEASE_LOCK('{p}7')"));
        assert_eq!(
            n.free_sql(&[1, 3], 1),
            format!(
                "SELECT i FROM (SELECT 1 AS i UNION ALL SELECT 3) AS s \
                 WHERE IS_FREE_LOCK(CONCAT('{p}', i)) = 1 LIMIT 1"
            )
        );
        assert_eq!(
            n.want_sql(true),
            format!("SELECT GET_LOCK(CONCAT('{p}w:', CONNECTION_ID()), 0)")
        );
        assert!(n.free_sql(&[], 1).contains("WHERE FALSE"));
        assert!(n
            .survey_sql(3)
            .contains("SELECT 0 AS i UNION ALL SELECT 1 UNION ALL SELECT 2)"));
    }
}
