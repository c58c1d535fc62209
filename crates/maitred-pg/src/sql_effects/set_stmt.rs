//! SET and RESET, in every spelling PostgreSQL accepts, from the statement's tokens.
//! Spec: <https://www.postgresql.org/docs/15/sql-set.html>,
//! <https://www.postgresql.org/docs/15/sql-reset.html>,
//! <https://www.postgresql.org/docs/15/sql-set-role.html>,
//! <https://www.postgresql.org/docs/15/sql-set-session-authorization.html>.

use super::lexer::{Kind, Statement, Token};
use super::{setting, Effect, UnknownReason};
use crate::settings::is_setting_name;

const UNKNOWN: Effect = Effect::Unknown(UnknownReason::Command);

/// The effect of a statement whose first word is SET.
pub(super) fn set(sql: &str, stmt: &Statement) -> Effect {
    let t = &stmt.tokens;
    let word = |i: usize, w: &str| t.get(i).is_some_and(|x| x.is_word(sql, w));
    let mut i = 1;
    if word(1, "constraints") {
        // Ends with the transaction; its tag is `SET CONSTRAINTS`.
        return Effect::None;
    }
    if word(1, "local") || word(1, "transaction") {
        // Ends with the transaction, yet the server's tag is `SET`: expected, so that an
        // application that runs `SET LOCAL app.tenant = ...` in every transaction pays no
        // confirmation.
        return Effect::Tracked;
    }
    if word(1, "session") {
        if word(2, "characteristics") {
            // Session-level default transaction modes: followed after confirmation.
            return UNKNOWN;
        }
        i = 2;
    }
    if let Some((name, next)) = setting_name_at(sql, t, i) {
        if t.get(next)
            .is_some_and(|x| x.is_word(sql, "to") || x.is_punct(b'='))
        {
            return value_effect(sql, stmt, next + 1, name);
        }
    }
    // `SET SESSION AUTHORIZATION x` arrives here with `i` past SESSION.
    let special = [
        (&["role"][..], "role"),
        (&["authorization"][..], "session_authorization"),
        (&["time", "zone"][..], "timezone"),
        (&["schema"][..], "search_path"),
        (&["names"][..], "client_encoding"),
        (&["xml", "option"][..], "xmloption"),
    ];
    for (words, name) in special {
        if words.iter().enumerate().all(|(k, w)| word(i + k, w)) {
            return special_form(sql, stmt, i + words.len(), name);
        }
    }
    UNKNOWN
}

/// `SET ROLE x`, `SET TIME ZONE x` and the like: the value starts at token `v`.
fn special_form(sql: &str, stmt: &Statement, v: usize, name: &str) -> Effect {
    let t = &stmt.tokens;
    let lone = |w: &str| t.len() == v + 1 && t[v].is_word(sql, w);
    let resets = match name {
        "role" => lone("none"),
        "timezone" => lone("local") || lone("default"),
        _ => lone("default"),
    };
    if resets {
        return Effect::Reset {
            name: name.to_owned(),
        };
    }
    // Only a lone literal or name can be replayed as `SET name TO value`
    // (`SET TIME ZONE INTERVAL '1' HOUR` cannot).
    if t.len() != v + 1 || !matches!(t[v].kind, Kind::Word | Kind::QuotedIdent | Kind::Str) {
        return UNKNOWN;
    }
    setting(name.to_owned(), t[v].text(sql).to_owned())
}

/// `SET name TO value` with the value's first token at `v`.
fn value_effect(sql: &str, stmt: &Statement, v: usize, name: String) -> Effect {
    let t = &stmt.tokens;
    let Some(first) = t.get(v) else {
        return UNKNOWN;
    };
    if t.len() == v + 1 && first.is_word(sql, "default") {
        return Effect::Reset { name };
    }
    let value = sql.get(first.start..stmt.end).unwrap_or("");
    if value.is_empty() {
        return UNKNOWN;
    }
    setting(name, value.to_owned())
}

/// The effect of a statement whose first word is RESET.
pub(super) fn reset(sql: &str, stmt: &Statement) -> Effect {
    let t = &stmt.tokens;
    let word = |i: usize, w: &str| t.get(i).is_some_and(|x| x.is_word(sql, w));
    let name = match t.len() {
        2 if word(1, "all") => return Effect::ResetAll,
        3 if word(1, "session") && word(2, "authorization") => "session_authorization".to_owned(),
        3 if word(1, "time") && word(2, "zone") => "timezone".to_owned(),
        _ => match setting_name_at(sql, t, 1) {
            Some((name, next)) if next == t.len() => name,
            _ => return UNKNOWN,
        },
    };
    if name.starts_with("transaction_") {
        return Effect::None;
    }
    Effect::Reset { name }
}

/// A setting name at token `i` (`name`, `"name"`, or `ext.name`), lower case, and the
/// index of the token after it.
fn setting_name_at(sql: &str, t: &[Token], i: usize) -> Option<(String, usize)> {
    let mut name = setting_name(sql, t.get(i)?)?;
    let mut next = i + 1;
    while t.get(next).is_some_and(|x| x.is_punct(b'.')) {
        name.push('.');
        name.push_str(&setting_name(sql, t.get(next + 1)?)?);
        next += 2;
    }
    is_setting_name(&name).then_some((name, next))
}

/// One part of a setting name. A dotted name (`myapp.tenant`) is lexed as one word plus
/// dots only when written with spaces; the lexer keeps `a.b` as `a`, `.`, `b`.
fn setting_name(sql: &str, tok: &Token) -> Option<String> {
    let name = match tok.kind {
        Kind::Word => tok.text(sql).to_ascii_lowercase(),
        Kind::QuotedIdent => tok
            .text(sql)
            .strip_prefix('"')?
            .strip_suffix('"')?
            .to_ascii_lowercase(),
        _ => return None,
    };
    is_setting_name(&name).then_some(name)
}
