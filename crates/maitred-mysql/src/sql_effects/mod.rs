//! What SQL text does to session state, read without a full parser: the one lexer
//! ([`lexer`]), each statement's effect (USE, SET, pins: `classify.rs`), KILL
//! (`kill.rs`), whether a statement may be sent ahead ([`send_ahead`]) and the rewrites of
//! `CONNECTION_ID()`, `LAST_INSERT_ID()` and `@@socket` (`rewrite.rs`).
//!
//! maitred carries the current database (`USE`) and autocommit (from status flags) to
//! whichever server connection a client lands on. State it cannot carry pins the client
//! to its server connection for the rest of the session (counted by reason); the
//! connection is reset (COM_RESET_CONNECTION) before anyone else gets it.

use lexer::{lex_with, LexMode, Lexed, Stmt};

mod classify;
mod kill;
pub mod lexer;
mod rewrite;
pub mod send_ahead;
#[cfg(test)]
mod tests;

pub use rewrite::{
    reads_last_insert_id, rewrite_connection_id, rewrite_last_insert_id, rewrite_query,
    rewrite_socket_variable,
};

/// Why a client in transaction mode was pinned to one server connection for the rest of
/// its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinReason {
    /// `SET` of a session variable maitred does not carry over (everything but autocommit).
    SessionVariable,
    /// `@user` variables.
    UserVariable,
    /// `CREATE TEMPORARY TABLE`.
    TemporaryTable,
    /// `LOCK TABLES`.
    LockTables,
    /// `GET_LOCK()`.
    GetLock,
    /// SQL-level `PREPARE`.
    SqlPrepare,
    /// `COM_SET_OPTION` (multi-statements on/off).
    SetOption,
    /// `SQL_CALC_FOUND_ROWS` / `FOUND_ROWS()` / `LAST_INSERT_ID()`: answers tied to one
    /// server connection.
    ConnectionFunction,
    /// The server reported a session-state change without saying what (e.g. a user
    /// variable or temporary table created inside a stored procedure).
    SessionState,
    /// `HANDLER t OPEN`: an open handler belongs to its server connection.
    Handler,
    /// `XA START` ... `XA COMMIT`: an XA transaction, prepared or not, belongs to its
    /// server connection.
    XaTransaction,
}

impl PinReason {
    pub const ALL: [PinReason; 11] = [
        PinReason::SessionVariable,
        PinReason::UserVariable,
        PinReason::TemporaryTable,
        PinReason::LockTables,
        PinReason::GetLock,
        PinReason::SqlPrepare,
        PinReason::SetOption,
        PinReason::ConnectionFunction,
        PinReason::SessionState,
        PinReason::Handler,
        PinReason::XaTransaction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PinReason::SessionVariable => "session_variable",
            PinReason::UserVariable => "user_variable",
            PinReason::TemporaryTable => "temporary_table",
            PinReason::LockTables => "lock_tables",
            PinReason::GetLock => "get_lock",
            PinReason::SqlPrepare => "sql_prepare",
            PinReason::SetOption => "set_option",
            PinReason::ConnectionFunction => "connection_function",
            PinReason::SessionState => "session_state",
            PinReason::Handler => "handler",
            PinReason::XaTransaction => "xa_transaction",
        }
    }
}

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
    /// A lone read-only SELECT ([`send_ahead`]).
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
        [only] => kill::kill_of(only),
        _ => None,
    };
    let kills = statements.iter().filter(|s| s.is_word(0, "KILL")).count();
    let unmapped_kill = kills > 0 && kill.is_none() && !kill::is_relayed_kill(&statements);
    let calls_routine = statements.iter().any(|s| s.is_word(0, "CALL"));
    let may_send_ahead =
        effect == QueryEffect::None && send_ahead::may_send_ahead_lexed(lexed, &statements);
    Analysis {
        effect,
        kill,
        unmapped_kill,
        calls_routine,
        may_send_ahead,
    }
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
        match classify::statement_effect(s, list) {
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

/// Whether `sql` (a COM_QUERY's text or a prepared statement's) is a lone read-only
/// `SELECT` that may be sent ahead.
pub fn may_send_ahead(sql: &[u8]) -> bool {
    analyze(sql, LexMode::default()).may_send_ahead
}
