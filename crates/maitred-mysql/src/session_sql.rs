//! What a COM_QUERY does to session state, read from its text without a full parser.
//!
//! maitred carries the current database (`USE`) and autocommit (from status flags) to
//! whichever server connection a client lands on. State it cannot carry pins the client
//! to its server connection for the rest of the session (counted by reason); the
//! connection is reset (COM_RESET_CONNECTION) before anyone else gets it.

use crate::pool::PinReason;
use crate::sql_lexer::{self, lex, lex_with, Kind, LexMode, Lexed, Stmt, Token};

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
    /// A statement list with a `SET` of session variables (or a `USE`): it cannot be
    /// replayed alone, so it pins unless the server reports the variables it changed
    /// (CLIENT_SESSION_TRACK).
    SessionSetList,
    /// State that cannot move between server connections.
    Pin(PinReason),
}

/// Everything maitred reads from one COM_QUERY's text, from one scan ([`analyze`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    pub effect: QueryEffect,
    /// `KILL [QUERY] <id>` alone: (query only, maitred's id).
    pub kill: Option<(bool, u32)>,
    /// A `KILL` that is not alone (a statement list) or not of a maitred id in the form
    /// maitred maps: its number would name a server thread, possibly another client's.
    pub unmapped_kill: bool,
    /// A `CALL`: the routine may take what the server does not report (a user lock):
    /// the server connection is reset before another client gets it.
    pub calls_routine: bool,
    /// A lone read-only SELECT ([`crate::send_ahead_sql`]).
    pub may_send_ahead: bool,
}

/// Scans `sql` once ([`lex_with`] in `mode`) and reads everything maitred needs from it.
/// Quotes read differently under `NO_BACKSLASH_ESCAPES` and `ANSI_QUOTES` only where a
/// backslash is inside them; the server's global `sql_mode` may set either without maitred
/// knowing. So a text with a backslash is also read the three other ways: a pin, a KILL
/// or a CALL any reading finds counts, and it is sent ahead only if every reading allows.
pub fn analyze(sql: &[u8], mode: LexMode) -> Analysis {
    analyze_with(&lex_with(sql, mode), mode)
}

/// [`analyze`] of text already lexed in `mode`.
pub fn analyze_with(lexed: &Lexed<'_>, mode: LexMode) -> Analysis {
    let sql = lexed.sql;
    let mut a = analyze_lexed(lexed);
    if !sql.contains(&b'\\') {
        return a;
    }
    for (flip_escapes, flip_ansi) in [(true, false), (false, true), (true, true)] {
        let other = LexMode {
            backslash_escapes: mode.backslash_escapes != flip_escapes,
            ansi_quotes: mode.ansi_quotes != flip_ansi,
        };
        let b = analyze_lexed(&lex_with(sql, other));
        if let (QueryEffect::Pin(_), false) = (&b.effect, matches!(a.effect, QueryEffect::Pin(_))) {
            a.effect = b.effect;
        }
        a.unmapped_kill |= b.unmapped_kill || (b.kill.is_some() && a.kill.is_none());
        a.calls_routine |= b.calls_routine;
        a.may_send_ahead &= b.may_send_ahead;
    }
    a
}

/// [`analyze`] of text already lexed.
pub fn analyze_lexed(lexed: &Lexed<'_>) -> Analysis {
    let effect = classify_lexed(lexed);
    let statements: Vec<Stmt<'_, '_>> = lexed.statements().collect();
    let kill = match statements.as_slice() {
        [only] => kill_of(only),
        _ => None,
    };
    let kills = statements.iter().filter(|s| s.is_word(0, "KILL")).count();
    let unmapped_kill = kills > 0 && kill.is_none() && !is_relayed_kill(&statements);
    let calls_routine = statements.iter().any(|s| s.is_word(0, "CALL"));
    let may_send_ahead = effect == QueryEffect::None
        && crate::send_ahead_sql::may_send_ahead_lexed(lexed, &statements);
    Analysis {
        effect,
        kill,
        unmapped_kill,
        calls_routine,
        may_send_ahead,
    }
}

/// `KILL QUERY ID <n>` and `KILL USER <name>` alone: relayed unchanged (documented).
fn is_relayed_kill(statements: &[Stmt<'_, '_>]) -> bool {
    match statements {
        [s] => {
            let mut i = 1;
            while s.is_word(i, "HARD") || s.is_word(i, "SOFT") || s.is_word(i, "CONNECTION") {
                i += 1;
            }
            (s.is_word(i, "QUERY") && s.is_word(i + 1, "ID")) || s.is_word(i, "USER")
        }
        _ => false,
    }
}

/// `KILL [HARD|SOFT] [CONNECTION|QUERY] <id>`: (query only, maitred's connection id).
fn kill_of(s: &Stmt<'_, '_>) -> Option<(bool, u32)> {
    if !s.is_word(0, "KILL") {
        return None;
    }
    let mut query_only = false;
    let mut i = 1;
    loop {
        if s.is_word(i, "HARD") || s.is_word(i, "SOFT") || s.is_word(i, "CONNECTION") {
            i += 1;
        } else if s.is_word(i, "QUERY") {
            query_only = true;
            i += 1;
        } else {
            break;
        }
    }
    let t = s.tokens.get(i)?;
    if t.kind != Kind::Number || s.tokens.len() != i + 1 {
        // KILL QUERY ID <query id>, KILL USER <name>, or an expression: not mapped.
        return None;
    }
    let text = s.lexed.text(t);
    if !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text)
        .ok()?
        .parse()
        .ok()
        .map(|id| (query_only, id))
}

/// `KILL [HARD|SOFT] [CONNECTION|QUERY] <id>`: (query only, maitred's connection id).
pub fn kill_target(sql: &[u8]) -> Option<(bool, u32)> {
    analyze(sql, LexMode::default()).kill
}

/// Classifies a COM_QUERY's SQL text.
pub fn classify(sql: &[u8]) -> QueryEffect {
    analyze(sql, LexMode::default()).effect
}

/// Classifies lexed text: every statement counts, the first pin wins.
pub fn classify_lexed(lexed: &Lexed<'_>) -> QueryEffect {
    let statements: Vec<Stmt<'_, '_>> = lexed.statements().collect();
    let list = statements.len() > 1;
    let mut effect = QueryEffect::None;
    for s in &statements {
        match statement_effect(s, list) {
            QueryEffect::Pin(r) => return QueryEffect::Pin(r),
            QueryEffect::None => {}
            e => {
                if effect == QueryEffect::None {
                    effect = e;
                }
            }
        }
    }
    effect
}

/// The effect of one statement (`list`: it is part of a statement list).
fn statement_effect(s: &Stmt<'_, '_>, list: bool) -> QueryEffect {
    // MariaDB's `SET STATEMENT var = value [, ...] FOR <statement>`: the variables are
    // the statement's only; the statement itself counts.
    if s.is_word(0, "SET") && s.is_word(1, "STATEMENT") {
        return match s.find_word(2, "FOR") {
            Some(f) => statement_effect(&s.from(f + 1), list),
            None => QueryEffect::None,
        };
    }
    if let Some(reason) = pin_anywhere(s) {
        return QueryEffect::Pin(reason);
    }
    let first = |w: &str| s.is_word(0, w);
    if first("USE") {
        if list {
            return QueryEffect::SessionSetList;
        }
        return match s.tokens.get(1) {
            Some(t) => QueryEffect::Use(name_of(s.lexed.text(t), t.kind)),
            None => QueryEffect::None,
        };
    }
    if first("SET") {
        if is_autocommit_only(s) {
            return QueryEffect::None;
        }
        if s.is_word(1, "GLOBAL")
            || s.tokens.get(1).is_some_and(|t| {
                t.kind == Kind::SysVar
                    && s.lexed.text(t).len() >= 9
                    && s.lexed.text(t)[..9].eq_ignore_ascii_case(b"@@global.")
            })
        {
            return QueryEffect::None;
        }
        // SET TRANSACTION applies to the next transaction only: it pins.
        if s.is_word(1, "TRANSACTION") {
            return QueryEffect::Pin(PinReason::SessionVariable);
        }
        return if list {
            QueryEffect::SessionSetList
        } else {
            QueryEffect::SessionSet
        };
    }
    if first("LOCK") || first("BACKUP") {
        // LOCK TABLES, LOCK INSTANCE FOR BACKUP (MySQL), BACKUP LOCK / STAGE (MariaDB).
        return QueryEffect::Pin(PinReason::LockTables);
    }
    if first("FLUSH") && (s.find_word(1, "LOCK").is_some() || s.find_word(1, "EXPORT").is_some()) {
        // FLUSH TABLES [t, ...] WITH READ LOCK, FLUSH TABLES t FOR EXPORT: held until
        // UNLOCK TABLES.
        return QueryEffect::Pin(PinReason::LockTables);
    }
    if first("PREPARE") {
        return QueryEffect::Pin(PinReason::SqlPrepare);
    }
    if first("HANDLER") {
        return QueryEffect::Pin(PinReason::Handler);
    }
    if first("XA") {
        return QueryEffect::Pin(PinReason::XaTransaction);
    }
    if first("CREATE") && (1..4).any(|i| s.is_word(i, "TEMPORARY")) {
        return QueryEffect::Pin(PinReason::TemporaryTable);
    }
    QueryEffect::None
}

/// A name as written: backticks (and double quotes) removed, doubled quotes undone.
fn name_of(text: &[u8], kind: Kind) -> String {
    let s = String::from_utf8_lossy(text);
    match kind {
        Kind::QuotedName | Kind::Str if s.len() >= 2 => {
            let q = &s[..1];
            s[1..s.len() - 1].replace(&format!("{q}{q}"), q)
        }
        _ => s.into_owned(),
    }
}

/// `SET [SESSION|LOCAL] autocommit = 0|1|ON|OFF` (also `@@autocommit`,
/// `@@session.autocommit`, `@@local.autocommit`) and nothing else.
fn is_autocommit_only(s: &Stmt<'_, '_>) -> bool {
    let mut i = 1;
    if s.is_word(i, "SESSION") || s.is_word(i, "LOCAL") {
        i += 1;
    }
    let Some(t) = s.tokens.get(i) else {
        return false;
    };
    let name = String::from_utf8_lossy(s.lexed.text(t)).to_ascii_lowercase();
    let named = match t.kind {
        Kind::Word => name == "autocommit",
        Kind::SysVar => matches!(
            name.as_str(),
            "@@autocommit" | "@@session.autocommit" | "@@local.autocommit"
        ),
        _ => false,
    };
    if !named {
        return false;
    }
    i += 1;
    if s.is_punct(i, b':') {
        i += 1;
    }
    if !s.is_punct(i, b'=') {
        return false;
    }
    i += 1;
    let Some(v) = s.tokens.get(i) else {
        return false;
    };
    if s.tokens.len() != i + 1 {
        return false;
    }
    let value = String::from_utf8_lossy(s.lexed.text(v)).to_ascii_lowercase();
    match v.kind {
        Kind::Number => matches!(value.as_str(), "0" | "1"),
        Kind::Word => matches!(value.as_str(), "on" | "off" | "true" | "false"),
        Kind::Str => matches!(value.as_str(), "'on'" | "'off'"),
        _ => false,
    }
}

/// User variables and functions whose answer or effect belongs to one server connection,
/// anywhere in a statement.
fn pin_anywhere(s: &Stmt<'_, '_>) -> Option<PinReason> {
    if s.tokens.iter().any(|t| t.kind == Kind::UserVar) {
        return Some(PinReason::UserVariable);
    }
    if s.calls("GET_LOCK") {
        return Some(PinReason::GetLock);
    }
    let last_insert_id_with_arg = (0..s.tokens.len()).any(|i| {
        s.is_word(i, "LAST_INSERT_ID") && s.is_punct(i + 1, b'(') && !s.is_punct(i + 2, b')')
    });
    if s.find_word(0, "SQL_CALC_FOUND_ROWS").is_some()
        || s.calls("FOUND_ROWS")
        || last_insert_id_with_arg
    {
        return Some(PinReason::ConnectionFunction);
    }
    None
}

/// The SQL with every `CONNECTION_ID()`, `LAST_INSERT_ID()` (no argument) and
/// `@@socket` in code replaced, or `None` when it has none: `CONNECTION_ID()` by maitred's
/// id for the client, `LAST_INSERT_ID()` by `last_insert_id`, the id the client's last OK
/// packet reported (the server's value on a shared connection may be another client's),
/// and `@@socket` by `NULL` (see [`rewrite_socket_variable`]).
pub fn rewrite_query(lexed: &Lexed<'_>, id: u32, last_insert_id: u64) -> Option<Vec<u8>> {
    sql_lexer::rewrite(lexed, |l, toks, i| {
        empty_call(l, toks, i, "CONNECTION_ID")
            .map(|n| (n, id.to_string().into_bytes()))
            .or_else(|| {
                empty_call(l, toks, i, "LAST_INSERT_ID")
                    .map(|n| (n, last_insert_id.to_string().into_bytes()))
            })
            .or_else(|| is_socket_variable(l, &toks[i]).then(|| (1, b"NULL".to_vec())))
    })
}

/// `name ( )` at token `i`: the number of tokens.
fn empty_call(l: &Lexed<'_>, toks: &[Token], i: usize, name: &str) -> Option<usize> {
    let t = toks.get(i)?;
    let is = |k: usize, p: u8| toks.get(k).is_some_and(|t| t.kind == Kind::Punct(p));
    (t.kind == Kind::Word
        && l.text(t).eq_ignore_ascii_case(name.as_bytes())
        && is(i + 1, b'(')
        && is(i + 2, b')')
        // Not a qualified name (`db.connection_id()`).
        && !(i > 0 && is(i - 1, b'.')))
    .then_some(3)
}

fn is_socket_variable(l: &Lexed<'_>, t: &Token) -> bool {
    if t.kind != Kind::SysVar {
        return false;
    }
    let name = l.text(t).to_ascii_lowercase();
    matches!(
        name.as_slice(),
        b"@@socket" | b"@@global.socket" | b"@@session.socket" | b"@@local.socket"
    )
}

/// The SQL with every `CONNECTION_ID()` in code replaced by maitred's id for the client,
/// or `None` when it has none.
pub fn rewrite_connection_id(sql: &[u8], id: u32) -> Option<Vec<u8>> {
    let l = lex(sql);
    sql_lexer::rewrite(&l, |l, toks, i| {
        empty_call(l, toks, i, "CONNECTION_ID").map(|n| (n, id.to_string().into_bytes()))
    })
}

/// The SQL with every `LAST_INSERT_ID()` (no argument) in code replaced by `value`, the id
/// the client's last OK packet reported, or `None` when it has none.
pub fn rewrite_last_insert_id(sql: &[u8], value: u64) -> Option<Vec<u8>> {
    let l = lex(sql);
    sql_lexer::rewrite(&l, |l, toks, i| {
        empty_call(l, toks, i, "LAST_INSERT_ID").map(|n| (n, value.to_string().into_bytes()))
    })
}

/// Whether the statement calls `LAST_INSERT_ID()` without an argument.
pub fn reads_last_insert_id(lexed: &Lexed<'_>) -> bool {
    (0..lexed.tokens.len()).any(|i| empty_call(lexed, &lexed.tokens, i, "LAST_INSERT_ID").is_some())
}

/// The SQL with every `@@socket` (or `@@global.socket`, `@@session.socket`) in code
/// replaced by `NULL`, or `None` when it has none. The server's Unix socket is no way to
/// reach maitred, and a driver that learns it moves there, around the proxy: mysql_async
/// does by default (`prefer_socket`) on every loopback connection, in the
/// `SELECT @@max_allowed_packet,@@wait_timeout,@@socket` it sends after login.
pub fn rewrite_socket_variable(sql: &[u8]) -> Option<Vec<u8>> {
    let l = lex(sql);
    sql_lexer::rewrite(&l, |l, toks, i| {
        is_socket_variable(l, &toks[i]).then(|| (1, b"NULL".to_vec()))
    })
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

    /// Every spelling of state that cannot move: comments before, inside and after
    /// (`#`, `-- `, `/* */`), executable comments (their contents run), statement lists.
    #[test]
    fn every_spelling_of_a_lock_pins() {
        let cases: &[(&str, PinReason)] = &[
            ("SELECT 1; LOCK TABLES t WRITE", PinReason::LockTables),
            ("/*!LOCK TABLES t WRITE*/", PinReason::LockTables),
            ("/*!50700 LOCK TABLES t WRITE */", PinReason::LockTables),
            ("/*M!100100 lock tables t read*/", PinReason::LockTables),
            ("/*M! lock tables t read*/", PinReason::LockTables),
            ("# hello\nlock tables t read", PinReason::LockTables),
            (
                "-- hello\nlock /* x */ tables t read",
                PinReason::LockTables,
            ),
            ("/* a */ /* b */ LOCK TABLE t READ", PinReason::LockTables),
            (
                "SELECT 1 /*!; LOCK TABLES t WRITE */",
                PinReason::LockTables,
            ),
            ("DO 1;\n-- x\n LOCK TABLES t WRITE", PinReason::LockTables),
            ("FLUSH TABLES WITH READ LOCK", PinReason::LockTables),
            ("flush tables t with read lock", PinReason::LockTables),
            ("FLUSH TABLES t FOR EXPORT", PinReason::LockTables),
            (
                "SELECT 1; FLUSH /*!TABLES WITH READ LOCK*/",
                PinReason::LockTables,
            ),
            ("BACKUP LOCK t", PinReason::LockTables),
            ("LOCK INSTANCE FOR BACKUP", PinReason::LockTables),
            ("SELECT GET_LOCK('a', 0)", PinReason::GetLock),
            ("SELECT get_lock /* x */ ('a', 0)", PinReason::GetLock),
            ("SELECT 1; DO GET_LOCK('a', 0)", PinReason::GetLock),
            ("SELECT /*!GET_LOCK('a',0)*/", PinReason::GetLock),
            (
                "SET STATEMENT max_statement_time=1 FOR SELECT GET_LOCK('a', 0)",
                PinReason::GetLock,
            ),
            ("SELECT 1; SET @x = 1", PinReason::UserVariable),
            ("/*!SET @x = 1*/", PinReason::UserVariable),
            ("SELECT 1 INTO @`x`", PinReason::UserVariable),
            (
                "SELECT 1; CREATE TEMPORARY TABLE t (a int)",
                PinReason::TemporaryTable,
            ),
            (
                "CREATE OR REPLACE TEMPORARY TABLE t (a int)",
                PinReason::TemporaryTable,
            ),
            (
                "/*!CREATE TEMPORARY TABLE t (a int)*/",
                PinReason::TemporaryTable,
            ),
            ("SELECT 1;PREPARE s FROM 'SELECT 1'", PinReason::SqlPrepare),
            ("# c\nprepare s from 'SELECT 1'", PinReason::SqlPrepare),
            ("HANDLER t OPEN", PinReason::Handler),
            ("XA START 'x'", PinReason::XaTransaction),
            (
                "SET sql_mode=''; SET TRANSACTION READ ONLY",
                PinReason::SessionVariable,
            ),
        ];
        for (q, r) in cases {
            assert_eq!(classify(q.as_bytes()), QueryEffect::Pin(*r), "{q}");
        }
    }

    #[test]
    fn what_is_quoted_or_commented_out_does_not_pin() {
        for q in [
            "SELECT 'LOCK TABLES t WRITE'",
            "SELECT 1 -- ; LOCK TABLES t WRITE",
            "SELECT 1 # ; LOCK TABLES t WRITE",
            "SELECT 1 /* ; LOCK TABLES t WRITE */",
            "SELECT `@x`, '@x', \"@x\"",
            "SELECT 'a;b'; SELECT \"GET_LOCK('a', 0)\"",
            // (A backslash inside the quotes would pin: under NO_BACKSLASH_ESCAPES the
            // same text runs LOCK TABLES, see below.)
            "SELECT 'it''s; LOCK TABLES t WRITE'",
            "SELECT my_get_lock('a')",
            "UNLOCK TABLES",
            "SELECT RELEASE_LOCK('a')",
        ] {
            assert_eq!(classify(q.as_bytes()), QueryEffect::None, "{q}");
        }
    }

    #[test]
    fn a_quote_read_under_ansi_quotes_still_pins() {
        // Under ANSI_QUOTES "a\" is a name and LOCK TABLES runs.
        let q = r#"SELECT "a\"; LOCK TABLES t WRITE; -- ""#;
        assert_eq!(
            analyze(q.as_bytes(), LexMode::default()).effect,
            QueryEffect::Pin(PinReason::LockTables)
        );
    }

    #[test]
    fn a_quote_read_under_no_backslash_escapes_still_pins() {
        // Under NO_BACKSLASH_ESCAPES the string ends at \' and LOCK TABLES runs.
        let q = r"SELECT '\'; LOCK TABLES t WRITE; -- '";
        assert_eq!(
            analyze(q.as_bytes(), LexMode::default()).effect,
            QueryEffect::Pin(PinReason::LockTables)
        );
    }

    #[test]
    fn kill_inside_a_list_is_not_relayed_as_a_server_thread() {
        let a = analyze(b"SELECT 1; KILL 7", LexMode::default());
        assert!(a.unmapped_kill && a.kill.is_none());
        let a = analyze(b"/*!KILL QUERY 7*/", LexMode::default());
        assert_eq!(a.kill, Some((true, 7)));
        assert!(!analyze(b"KILL USER app", LexMode::default()).unmapped_kill);
        assert!(!analyze(b"KILL QUERY ID 3", LexMode::default()).unmapped_kill);
        assert!(analyze(b"KILL 1+1", LexMode::default()).unmapped_kill);
        assert!(analyze(b"CALL p()", LexMode::default()).calls_routine);
        assert!(!analyze(b"SELECT 'CALL p()'", LexMode::default()).calls_routine);
    }

    #[test]
    fn sets_in_lists_and_set_statement() {
        assert_eq!(
            classify(b"SELECT 1; SET time_zone = '+01:00'"),
            QueryEffect::SessionSetList
        );
        assert_eq!(
            classify(b"SET STATEMENT max_statement_time=1 FOR SELECT 1"),
            QueryEffect::None
        );
        assert_eq!(
            classify(b"SET @@global.max_connections = 30"),
            QueryEffect::None
        );
        assert_eq!(
            classify(b"/* x */ SET /* y */ autocommit /* z */ = 0"),
            QueryEffect::None
        );
        assert_eq!(classify(b"SELECT 1; USE x"), QueryEffect::SessionSetList);
        assert_eq!(classify(b"/*!USE `x`*/"), QueryEffect::Use("x".into()));
    }
}
