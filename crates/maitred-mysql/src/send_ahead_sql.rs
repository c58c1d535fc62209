//! Which statements may be sent ahead on another client's server connection
//! (`send_ahead`, see `relay/send_ahead.rs`): a lone read-only `SELECT` that cannot open a
//! transaction, take a lock, change session state or ask for an answer that belongs to one
//! server connection. When in doubt, no: the statement then simply waits for a connection.

use crate::sql_lexer::{Kind, Lexed, Stmt};

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
    crate::session_sql::analyze(sql, crate::sql_lexer::LexMode::default()).may_send_ahead
}

/// [`may_send_ahead`] of lexed text (its statements already collected). Does not look at
/// the session effect: [`crate::session_sql::analyze_lexed`] requires it to be none too.
pub fn may_send_ahead_lexed(lexed: &Lexed<'_>, statements: &[Stmt<'_, '_>]) -> bool {
    // An executable comment's code depends on the server's version: not judged.
    if lexed.executable_comment {
        return false;
    }
    let [s] = statements else {
        return false;
    };
    if !s.is_word(0, "SELECT") {
        return false;
    }
    s.tokens.iter().all(|t| match t.kind {
        // Variables (user or system): not the server's defaults, or not judged.
        Kind::UserVar | Kind::SysVar | Kind::Punct(b'@') => false,
        Kind::Word => {
            let w = lexed.text(t);
            !UNSAFE_WORDS.iter().any(|u| w.eq_ignore_ascii_case(u))
        }
        _ => true,
    })
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
