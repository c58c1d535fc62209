//! Which statements may be sent ahead on another client's server connection
//! (`send_ahead`, see `relay/send_ahead.rs`): a lone read-only `SELECT` that cannot open a
//! transaction, take a lock, change session state or ask for an answer that belongs to one
//! server connection. When in doubt, no: the statement then simply waits for a connection.

use crate::session_sql::{classify, has_inner_semicolon, past_literal, QueryEffect};

/// Words that make a `SELECT` unsafe to run on a connection it was not checked out for:
/// `INTO` (variables, files), `FOR UPDATE` / `LOCK IN SHARE MODE`, lock functions, sequence
/// functions (they change `LASTVAL` for the session), connection-bound answers, and
/// statements that sleep (they would hold up the client queued behind them).
const UNSAFE_WORDS: &[&[u8]] = &[
    b"INTO",
    b"FOR",
    b"LOCK",
    b"SHARE",
    b"GET_LOCK",
    b"RELEASE_LOCK",
    b"RELEASE_ALL_LOCKS",
    b"IS_FREE_LOCK",
    b"IS_USED_LOCK",
    b"NEXTVAL",
    b"LASTVAL",
    b"SETVAL",
    b"NEXT",
    b"PREVIOUS",
    b"LAST_INSERT_ID",
    b"FOUND_ROWS",
    b"ROW_COUNT",
    b"SQL_CALC_FOUND_ROWS",
    b"CONNECTION_ID",
    b"SLEEP",
    b"BENCHMARK",
    b"LAST_VALUE",
];

/// Whether `sql` (a COM_QUERY's text or a prepared statement's) is a lone read-only
/// `SELECT` that may be sent ahead.
pub fn may_send_ahead(sql: &[u8]) -> bool {
    if classify(sql) != QueryEffect::None || has_inner_semicolon(sql) {
        return false;
    }
    let mut words = Words { sql, i: 0 };
    match words.next() {
        Some(Ok(first)) if first.eq_ignore_ascii_case(b"SELECT") => {}
        _ => return false,
    }
    words.all(|w| w.is_ok_and(|w| !UNSAFE_WORDS.iter().any(|u| w.eq_ignore_ascii_case(u))))
}

/// The words of a statement outside literals, quoted names and comments. `Err(())` for
/// what makes the text unsafe to judge: a variable (`@`) or an executable comment (`/*!`).
struct Words<'a> {
    sql: &'a [u8],
    i: usize,
}

impl<'a> Iterator for Words<'a> {
    type Item = Result<&'a [u8], ()>;

    fn next(&mut self) -> Option<Self::Item> {
        let sql = self.sql;
        while self.i < sql.len() {
            let b = sql[self.i];
            if let Some(next) = past_literal(sql, self.i) {
                self.i = next;
                continue;
            }
            let rest = &sql[self.i..];
            if rest.starts_with(b"/*") {
                if rest.get(2) == Some(&b'!') {
                    self.i = sql.len();
                    return Some(Err(()));
                }
                self.i += rest
                    .windows(2)
                    .skip(2)
                    .position(|w| w == b"*/")
                    .map_or(rest.len(), |p| p + 4);
                continue;
            }
            if rest.starts_with(b"-- ") || b == b'#' {
                self.i += rest.iter().position(|c| *c == b'\n').unwrap_or(rest.len());
                continue;
            }
            if b == b'@' {
                self.i = sql.len();
                return Some(Err(()));
            }
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' {
                let len = rest
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$'))
                    .unwrap_or(rest.len());
                self.i += len;
                return Some(Ok(&rest[..len]));
            }
            self.i += 1;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::may_send_ahead;

    #[test]
    fn plain_selects_may_be_sent_ahead() {
        for sql in [
            "SELECT c FROM sbtest1 WHERE id=?",
            "  select 1",
            "/* app */ SELECT a, b FROM t WHERE name = 'for update' LIMIT 1;",
            "SELECT COUNT(*) FROM `into` WHERE x = \"@y\"",
            "-- hi\nSELECT 1",
        ] {
            assert!(may_send_ahead(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn anything_that_locks_writes_or_touches_the_session_may_not() {
        for sql in [
            "SELECT * FROM t FOR UPDATE",
            "SELECT * FROM t LOCK IN SHARE MODE",
            "SELECT 1 INTO @x",
            "SELECT @x",
            "SELECT @@autocommit",
            "SELECT GET_LOCK('a', 1)",
            "SELECT NEXTVAL(s)",
            "SELECT NEXT VALUE FOR s",
            "SELECT LAST_INSERT_ID()",
            "SELECT FOUND_ROWS()",
            "SELECT SLEEP(1)",
            "SELECT 1; SELECT 2",
            "SELECT /*! SQL_CALC_FOUND_ROWS */ 1",
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET a = 1",
            "BEGIN",
            "SET autocommit = 0",
            "CALL p()",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "",
        ] {
            assert!(!may_send_ahead(sql.as_bytes()), "{sql}");
        }
    }
}
