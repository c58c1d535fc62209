//! The session effect of one statement: USE, SET followed or replayed, or a pin.

use super::lexer::{Kind, Stmt};
use super::{PinReason, QueryEffect};

/// The effect of one statement (`list`: it is part of a statement list).
pub(super) fn statement_effect(s: &Stmt<'_, '_>, list: bool) -> QueryEffect {
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
