//! Which statements may be sent ahead on another client's server connection
//! (`send_ahead`, see `relay/send_ahead.rs`): a lone read-only `SELECT` that cannot open a
//! transaction, take a lock, change session state or ask for an answer that belongs to one
//! server connection. When in doubt, no: the statement then simply waits for a connection.

use super::lexer::{Kind, Lexed, Stmt};

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

/// [`may_send_ahead`](super::may_send_ahead) of lexed text (its statements already collected). Does not look at
/// the session effect: [`analyze_lexed`](super::analyze_lexed) requires it to be none too.
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
