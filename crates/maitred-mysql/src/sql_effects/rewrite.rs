//! The rewrites of a query's text before it is sent: `CONNECTION_ID()` becomes maitred's
//! id for the client, `LAST_INSERT_ID()` the id of the client's last OK packet, `@@socket`
//! `NULL`.

use super::lexer::{self, lex, Kind, Lexed, Token};

/// The SQL with every `CONNECTION_ID()`, `LAST_INSERT_ID()` (no argument) and
/// `@@socket` in code replaced, or `None` when it has none: `CONNECTION_ID()` by maitred's
/// id for the client, `LAST_INSERT_ID()` by `last_insert_id`, the id the client's last OK
/// packet reported (the server's value on a shared connection may be another client's),
/// and `@@socket` by `NULL` (see [`rewrite_socket_variable`]).
pub fn rewrite_query(lexed: &Lexed<'_>, id: u32, last_insert_id: u64) -> Option<Vec<u8>> {
    lexer::rewrite(lexed, |l, toks, i| {
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
    lexer::rewrite(&l, |l, toks, i| {
        empty_call(l, toks, i, "CONNECTION_ID").map(|n| (n, id.to_string().into_bytes()))
    })
}

/// The SQL with every `LAST_INSERT_ID()` (no argument) in code replaced by `value`, the id
/// the client's last OK packet reported, or `None` when it has none.
pub fn rewrite_last_insert_id(sql: &[u8], value: u64) -> Option<Vec<u8>> {
    let l = lex(sql);
    lexer::rewrite(&l, |l, toks, i| {
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
    lexer::rewrite(&l, |l, toks, i| {
        is_socket_variable(l, &toks[i]).then(|| (1, b"NULL".to_vec()))
    })
}
