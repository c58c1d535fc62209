//! `KILL` in a query's text: the form maitred maps to its own connection ids, and the
//! forms relayed unchanged.

use super::lexer::{Kind, Stmt};

/// `KILL QUERY ID <n>` and `KILL USER <name>` alone: relayed unchanged (documented).
pub(super) fn is_relayed_kill(statements: &[Stmt<'_, '_>]) -> bool {
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
pub(super) fn kill_of(s: &Stmt<'_, '_>) -> Option<(bool, u32)> {
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
