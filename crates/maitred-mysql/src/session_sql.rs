//! What a COM_QUERY does to session state, read from its text without a full parser.
//!
//! maitred carries the current database (`USE`) and autocommit (from status flags) to
//! whichever server connection a client lands on. State it cannot carry pins the client
//! to its server connection for the rest of the session (counted by reason); the
//! connection is reset (COM_RESET_CONNECTION) before anyone else gets it.

use crate::pool::PinReason;

/// The effect of one query text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryEffect {
    /// Nothing maitred needs to follow.
    None,
    /// `USE db`: the client's database once the server says OK.
    Use(String),
    /// `SET [SESSION] var = value, ...` of session variables: replayed on the client's next
    /// server connections once the server says OK.
    SessionSet,
    /// A statement list starting with `SET` of session variables: it cannot be replayed
    /// alone, so it pins unless the server reports the variables it changed
    /// (CLIENT_SESSION_TRACK).
    SessionSetList,
    /// State that cannot move between server connections.
    Pin(PinReason),
}

/// `KILL [HARD|SOFT] [CONNECTION|QUERY] <id>`: (query only, maitred's connection id).
pub fn kill_target(sql: &[u8]) -> Option<(bool, u32)> {
    let body = skip_space_and_comments(sql);
    let (word, mut rest) = first_word(body);
    if !word.eq_ignore_ascii_case(b"KILL") {
        return None;
    }
    let mut query_only = false;
    loop {
        rest = skip_space_and_comments(rest);
        let (w, r) = first_word(rest);
        if w.eq_ignore_ascii_case(b"HARD")
            || w.eq_ignore_ascii_case(b"SOFT")
            || w.eq_ignore_ascii_case(b"CONNECTION")
        {
            rest = r;
        } else if w.eq_ignore_ascii_case(b"QUERY") {
            query_only = true;
            rest = r;
        } else if !w.is_empty() && w.iter().all(u8::is_ascii_digit) {
            let tail = String::from_utf8_lossy(r);
            if !tail.trim().trim_end_matches(';').trim().is_empty() {
                return None;
            }
            return std::str::from_utf8(w)
                .ok()?
                .parse()
                .ok()
                .map(|id| (query_only, id));
        } else {
            // KILL QUERY ID <query id>, KILL USER <name>, or an expression: not mapped.
            return None;
        }
    }
}

/// The SQL with every `CONNECTION_ID()` outside literals replaced by maitred's id for the
/// client, or `None` when it has none.
pub fn rewrite_connection_id(sql: &[u8], id: u32) -> Option<Vec<u8>> {
    rewrite_call(sql, b"CONNECTION_ID", &id.to_string())
}

/// If a quoted string or identifier ('...', "...", `...`) starts at `i`, the index just
/// past its closing quote (backslash escapes count, except in backticks).
pub(crate) fn past_literal(sql: &[u8], i: usize) -> Option<usize> {
    let quote = sql[i];
    if !matches!(quote, b'\'' | b'"' | b'`') {
        return None;
    }
    let mut j = i + 1;
    while j < sql.len() && sql[j] != quote {
        if sql[j] == b'\\' && quote != b'`' {
            j += 1;
        }
        j += 1;
    }
    Some(j + 1)
}

/// Replaces argument-less calls of `name` outside literals with `value`.
fn rewrite_call(sql: &[u8], name: &[u8], value: &str) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < sql.len() {
        if let Some(next) = past_literal(sql, i) {
            i = next;
            continue;
        }
        let boundary = i == 0
            || !(sql[i - 1].is_ascii_alphanumeric() || sql[i - 1] == b'_' || sql[i - 1] == b'.');
        if boundary
            && sql.len() >= i + name.len()
            && sql[i..i + name.len()].eq_ignore_ascii_case(name)
        {
            let mut j = i + name.len();
            while j < sql.len() && sql[j].is_ascii_whitespace() {
                j += 1;
            }
            if sql.get(j) == Some(&b'(') {
                let mut k = j + 1;
                while k < sql.len() && sql[k].is_ascii_whitespace() {
                    k += 1;
                }
                if sql.get(k) == Some(&b')') {
                    let o = out.get_or_insert_with(|| Vec::with_capacity(sql.len()));
                    o.extend_from_slice(&sql[copied..i]);
                    o.extend_from_slice(value.as_bytes());
                    copied = k + 1;
                    i = k + 1;
                    continue;
                }
            }
        }
        i += 1;
    }
    let mut o = out?;
    o.extend_from_slice(&sql[copied..]);
    Some(o)
}

/// Classifies a COM_QUERY's SQL text.
pub fn classify(sql: &[u8]) -> QueryEffect {
    let body = skip_space_and_comments(sql);
    let (word, rest) = first_word(body);
    if word.eq_ignore_ascii_case(b"USE") {
        return QueryEffect::Use(database_name(rest));
    }
    if let Some(reason) = scan_anywhere(sql) {
        return QueryEffect::Pin(reason);
    }
    if word.eq_ignore_ascii_case(b"SET") {
        if is_autocommit_only(rest) {
            return QueryEffect::None;
        }
        let (next, _) = first_word(skip_space_and_comments(rest));
        if next.eq_ignore_ascii_case(b"GLOBAL") {
            return QueryEffect::None;
        }
        // SET TRANSACTION applies to the next transaction only: it pins.
        if next.eq_ignore_ascii_case(b"TRANSACTION") {
            return QueryEffect::Pin(PinReason::SessionVariable);
        }
        if has_inner_semicolon(rest) {
            return QueryEffect::SessionSetList;
        }
        return QueryEffect::SessionSet;
    }
    if word.eq_ignore_ascii_case(b"LOCK") {
        return QueryEffect::Pin(PinReason::LockTables);
    }
    if word.eq_ignore_ascii_case(b"PREPARE") {
        return QueryEffect::Pin(PinReason::SqlPrepare);
    }
    if word.eq_ignore_ascii_case(b"CREATE") {
        let (second, _) = first_word(skip_space_and_comments(rest));
        if second.eq_ignore_ascii_case(b"TEMPORARY") {
            return QueryEffect::Pin(PinReason::TemporaryTable);
        }
    }
    QueryEffect::None
}

/// `(` then only space then `)`.
fn is_empty_call(s: &[u8]) -> bool {
    s.strip_prefix(b"(")
        .map(|r| r.trim_ascii_start().starts_with(b")"))
        .unwrap_or(false)
}

/// The SQL with every `LAST_INSERT_ID()` (no argument) outside literals replaced by
/// `value`, the id the client's last OK packet reported, or `None` when it has none.
pub fn rewrite_last_insert_id(sql: &[u8], value: u64) -> Option<Vec<u8>> {
    rewrite_call(sql, b"LAST_INSERT_ID", &value.to_string())
}

/// The SQL with every `@@socket` (or `@@global.socket`, `@@session.socket`) outside
/// literals replaced by `NULL`, or `None` when it has none. The server's Unix socket is no
/// way to reach maitred, and a driver that learns it moves there, around the proxy:
/// mysql_async does by default (`prefer_socket`) on every loopback connection, in the
/// `SELECT @@max_allowed_packet,@@wait_timeout,@@socket` it sends after login.
pub fn rewrite_socket_variable(sql: &[u8]) -> Option<Vec<u8>> {
    // The common case, no system variable at all, costs one scan for '@'.
    if !sql.windows(2).any(|w| w == b"@@") {
        return None;
    }
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < sql.len() {
        if let Some(next) = past_literal(sql, i) {
            i = next;
            continue;
        }
        if sql[i..].starts_with(b"@@") {
            let mut j = i + 2;
            for scope in [&b"global."[..], b"session.", b"local."] {
                if sql.len() >= j + scope.len()
                    && sql[j..j + scope.len()].eq_ignore_ascii_case(scope)
                {
                    j += scope.len();
                    break;
                }
            }
            let name = b"socket";
            let end = j + name.len();
            let ends_word = sql
                .get(end)
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'$'));
            if sql.len() >= end && sql[j..end].eq_ignore_ascii_case(name) && ends_word {
                let o = out.get_or_insert_with(|| Vec::with_capacity(sql.len()));
                o.extend_from_slice(&sql[copied..i]);
                o.extend_from_slice(b"NULL");
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    let mut o = out?;
    o.extend_from_slice(&sql[copied..]);
    Some(o)
}

/// A `;` outside literals followed by more than space: a statement list.
pub(crate) fn has_inner_semicolon(sql: &[u8]) -> bool {
    let mut i = 0;
    while i < sql.len() {
        if let Some(next) = past_literal(sql, i) {
            i = next;
            continue;
        }
        if sql[i] == b';' && !sql[i + 1..].trim_ascii().is_empty() {
            return true;
        }
        i += 1;
    }
    false
}

fn skip_space_and_comments(mut s: &[u8]) -> &[u8] {
    loop {
        let trimmed = s.trim_ascii_start();
        if let Some(rest) = trimmed.strip_prefix(b"/*") {
            // Executable comments (/*! ... */) are code: stop there.
            if rest.first() == Some(&b'!') {
                return trimmed;
            }
            s = match rest.windows(2).position(|w| w == b"*/") {
                Some(i) => &rest[i + 2..],
                None => &[],
            };
        } else if trimmed.starts_with(b"-- ") || trimmed.starts_with(b"#") {
            s = match trimmed.iter().position(|b| *b == b'\n') {
                Some(i) => &trimmed[i + 1..],
                None => &[],
            };
        } else {
            return trimmed;
        }
    }
}

fn first_word(s: &[u8]) -> (&[u8], &[u8]) {
    let end = s
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .unwrap_or(s.len());
    (&s[..end], &s[end..])
}

fn database_name(rest: &[u8]) -> String {
    let s = String::from_utf8_lossy(rest);
    let s = s.trim().trim_end_matches(';').trim();
    if let Some(inner) = s.strip_prefix('`').and_then(|x| x.strip_suffix('`')) {
        return inner.replace("``", "`");
    }
    s.to_owned()
}

/// `SET autocommit = 0|1|ON|OFF` (also `@@autocommit`, `@@session.autocommit`,
/// `SESSION autocommit`) and nothing else.
fn is_autocommit_only(rest: &[u8]) -> bool {
    let s = String::from_utf8_lossy(rest).to_ascii_lowercase();
    let s = s.trim().trim_end_matches(';').trim();
    let s = s
        .strip_prefix("session ")
        .or_else(|| s.strip_prefix("@@session."))
        .or_else(|| s.strip_prefix("@@"))
        .unwrap_or(s)
        .trim_start();
    let Some(value) = s.strip_prefix("autocommit") else {
        return false;
    };
    let value = value.trim_start();
    let Some(value) = value.strip_prefix('=').or_else(|| value.strip_prefix(":=")) else {
        return false;
    };
    matches!(
        value.trim(),
        "0" | "1" | "on" | "off" | "true" | "false" | "'on'" | "'off'"
    )
}

/// Looks outside string literals and quoted names for user variables and functions whose
/// answer belongs to one server connection.
fn scan_anywhere(sql: &[u8]) -> Option<PinReason> {
    let mut i = 0;
    let mut found: Option<PinReason> = None;
    while i < sql.len() {
        let b = sql[i];
        match b {
            b'\'' | b'"' | b'`' => {
                i += 1;
                while i < sql.len() && sql[i] != b {
                    if sql[i] == b'\\' && b != b'`' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'@' => {
                if sql.get(i + 1) == Some(&b'@') {
                    i += 2;
                    continue;
                }
                let next = sql.get(i + 1).copied().unwrap_or(b' ');
                if next.is_ascii_alphanumeric() || matches!(next, b'_' | b'\'' | b'"' | b'`' | b'$')
                {
                    return Some(PinReason::UserVariable);
                }
            }
            b'g' | b'G' | b's' | b'S' | b'f' | b'F' | b'l' | b'L' => {
                let rest = &sql[i..];
                let starts =
                    |w: &[u8]| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w);
                let boundary =
                    i == 0 || !(sql[i - 1].is_ascii_alphanumeric() || sql[i - 1] == b'_');
                if boundary {
                    if starts(b"GET_LOCK") {
                        found = found.or(Some(PinReason::GetLock));
                    } else if starts(b"SQL_CALC_FOUND_ROWS")
                        || starts(b"FOUND_ROWS(")
                        || (starts(b"LAST_INSERT_ID(") && !is_empty_call(&rest[14..]))
                    {
                        found = found.or(Some(PinReason::ConnectionFunction));
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_socket_is_hidden_from_clients() {
        let r = |sql: &str| {
            rewrite_socket_variable(sql.as_bytes()).map(|v| String::from_utf8(v).expect("utf-8"))
        };
        assert_eq!(
            r("SELECT @@max_allowed_packet,@@wait_timeout,@@socket").as_deref(),
            Some("SELECT @@max_allowed_packet,@@wait_timeout,NULL")
        );
        assert_eq!(
            r("select @@GLOBAL.Socket, 1").as_deref(),
            Some("select NULL, 1")
        );
        assert_eq!(r("SELECT @@socket;").as_deref(), Some("SELECT NULL;"));
        assert_eq!(r("SELECT @@socket_x, @@sockets"), None);
        assert_eq!(r("SELECT '@@socket', `@@socket`"), None);
        assert_eq!(r("SELECT @@port"), None);
        assert_eq!(r("SELECT 1"), None);
    }

    #[test]
    fn plain_queries_do_not_pin() {
        for q in [
            "SELECT c FROM sbtest1 WHERE id=5",
            "select 'a@b.com', \"x@y\"",
            "BEGIN",
            "COMMIT",
            "SELECT @@version_comment LIMIT 1",
            "SET autocommit=0",
            "SET AUTOCOMMIT = 1",
            "set @@session.autocommit = ON",
            "INSERT INTO t VALUES ('GET_LOCK')",
        ] {
            assert_eq!(classify(q.as_bytes()), QueryEffect::None, "{q}");
        }
    }

    #[test]
    fn kill_and_connection_id() {
        assert_eq!(kill_target(b"KILL 12"), Some((false, 12)));
        assert_eq!(kill_target(b"kill query 7;"), Some((true, 7)));
        assert_eq!(kill_target(b"KILL HARD CONNECTION 3"), Some((false, 3)));
        assert_eq!(kill_target(b"KILL QUERY ID 3"), None);
        assert_eq!(kill_target(b"KILL USER app"), None);
        assert_eq!(kill_target(b"SELECT 1"), None);
        assert_eq!(
            rewrite_connection_id(
                b"SELECT CONNECTION_ID(), 'CONNECTION_ID()', connection_id ( )",
                42
            ),
            Some(b"SELECT 42, 'CONNECTION_ID()', 42".to_vec())
        );
        assert_eq!(
            rewrite_connection_id(b"SELECT my_connection_id()", 42),
            None
        );
        assert_eq!(rewrite_connection_id(b"SELECT 1", 42), None);
        assert_eq!(classify(b"SELECT LAST_INSERT_ID()"), QueryEffect::None);
        assert_eq!(
            rewrite_last_insert_id(b"SELECT last_insert_id()", 77),
            Some(b"SELECT 77".to_vec())
        );
        assert_eq!(
            rewrite_last_insert_id(b"SELECT LAST_INSERT_ID(9)", 77),
            None
        );
    }

    #[test]
    fn session_sets_are_replayable() {
        for q in [
            "SET NAMES latin1",
            "SET sql_mode=''",
            "SET SESSION time_zone = '+02:00';",
            "set session transaction isolation level read committed",
            "SET character_set_client = 'a;b'",
        ] {
            assert_eq!(classify(q.as_bytes()), QueryEffect::SessionSet, "{q}");
        }
        assert_eq!(
            classify(b"SET GLOBAL max_connections = 30"),
            QueryEffect::None
        );
    }

    #[test]
    fn use_is_followed() {
        assert_eq!(classify(b"USE app"), QueryEffect::Use("app".into()));
        assert_eq!(
            classify(b"  use `my``db`;"),
            QueryEffect::Use("my`db".into())
        );
        assert_eq!(classify(b"/* hi */ USE x"), QueryEffect::Use("x".into()));
    }

    #[test]
    fn state_that_cannot_move_pins() {
        assert_eq!(
            classify(b"SET sql_mode=''; SELECT 1"),
            QueryEffect::SessionSetList
        );
        let cases: [(&str, PinReason); 8] = [
            (
                "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                PinReason::SessionVariable,
            ),
            ("SET @x = 1", PinReason::UserVariable),
            ("SELECT @x", PinReason::UserVariable),
            (
                "CREATE TEMPORARY TABLE t (a int)",
                PinReason::TemporaryTable,
            ),
            ("LOCK TABLES t WRITE", PinReason::LockTables),
            ("SELECT GET_LOCK('a', 1)", PinReason::GetLock),
            ("PREPARE s FROM 'SELECT 1'", PinReason::SqlPrepare),
            ("SELECT LAST_INSERT_ID(5)", PinReason::ConnectionFunction),
        ];
        for (q, r) in cases {
            assert_eq!(classify(q.as_bytes()), QueryEffect::Pin(r), "{q}");
        }
    }
}
