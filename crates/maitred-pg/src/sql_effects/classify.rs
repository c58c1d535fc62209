//! One statement's predicted effect on session state, from its tokens. Whatever is not
//! recognised is `Unknown`: the relay then confirms the session's state with the server
//! before the connection serves another client (fail closed).

use super::functions::{is_not_a_call, is_safe_function, SESSION_ADVISORY_LOCKS};
use super::lexer::{Kind, Statement, Token};
use super::set_config::{set_config_call, Cursor};
use super::{
    identifier, set_stmt, Effect, PinReason, Refusal, UnknownReason, MAITRED_STATEMENT_PREFIX,
};

/// Commands that cannot change session state by themselves (their arguments may call
/// functions, which are checked).
const STATELESS_COMMANDS: &[&str] = &[
    "alter",
    "analyze",
    "checkpoint",
    "cluster",
    "comment",
    "drop",
    "fetch",
    "grant",
    "lock",
    "move",
    "reindex",
    "release",
    "revoke",
    "savepoint",
    "show",
    "truncate",
    "vacuum",
];

/// Appends the effects of one statement to `out`; returns whether it is a read-only query
/// (SELECT, VALUES or TABLE without INTO) with no effect at all.
pub(super) fn statement(sql: &str, stmt: &Statement, out: &mut Vec<Effect>) -> bool {
    let before = out.len();
    let t = &stmt.tokens;
    if stmt.unterminated || t.iter().any(|x| x.backslash) {
        out.push(Effect::Unknown(UnknownReason::Ambiguous));
        return false;
    }
    // `(SELECT 1) UNION (SELECT 2)` starts with parentheses.
    let lead = t.iter().take_while(|x| x.is_punct(b'(')).count();
    let Some(first) = t.get(lead).filter(|x| x.kind == Kind::Word) else {
        out.push(Effect::Unknown(UnknownReason::Command));
        return false;
    };
    let mut lower = [0u8; KEYWORD_MAX];
    let first = lower_keyword(first.text(sql), &mut lower);
    let word = |i: usize, w: &str| t.get(i).is_some_and(|x| x.is_word(sql, w));
    let effect = match first {
        "select" | "values" | "table" | "with" | "insert" | "update" | "delete" | "merge"
        | "copy" => {
            dml(sql, t, out);
            return matches!(first, "select" | "values" | "table") && out.len() == before;
        }
        "explain" => {
            if t.iter().any(|x| x.is_word(sql, "analyze")) {
                // EXPLAIN ANALYZE runs the statement.
                dml(sql, t, out);
            }
            Effect::None
        }
        w if STATELESS_COMMANDS.binary_search(&w).is_ok() => {
            calls(sql, t, out);
            Effect::None
        }
        "notify" => notify(sql, t).unwrap_or(Effect::None),
        "begin" => Effect::Begin,
        "start" if word(1, "transaction") => Effect::Begin,
        "commit" | "end" if word(1, "prepared") => Effect::None,
        "commit" | "end" => Effect::Commit,
        "rollback" | "abort" if word(1, "to") || word(1, "prepared") => Effect::None,
        "rollback" | "abort" => Effect::Rollback,
        "set" => set_stmt::set(sql, stmt),
        "reset" => set_stmt::reset(sql, stmt),
        "discard" if word(1, "all") => Effect::ResetAll,
        "discard" | "close" | "unlisten" => Effect::Tracked,
        "listen" => Effect::Pin(PinReason::Listen),
        "prepare" if word(1, "transaction") => Effect::None,
        "prepare" | "deallocate" | "execute" if names_maitred_statement(sql, t) => {
            Effect::Refused(Refusal::MaitredStatementName)
        }
        "prepare" => Effect::Pin(PinReason::SqlPrepare),
        "deallocate" => Effect::Tracked,
        "declare" if holds_across_transactions(sql, t) => Effect::Pin(PinReason::HoldCursor),
        "declare" => {
            calls(sql, t, out);
            Effect::None
        }
        "create" if creates_temporary(sql, t) => Effect::Pin(PinReason::TempTable),
        "do" | "call" | "load" | "execute" => Effect::Unknown(UnknownReason::Procedure),
        _ => Effect::Unknown(UnknownReason::Command),
    };
    if effect != Effect::None {
        out.push(effect);
    }
    false
}

/// `NOTIFY channel [, 'payload']` (the payload is a plain string constant: the grammar
/// takes nothing else). `None` for any other spelling: the notification then simply is not
/// recognised as the client's own.
fn notify(sql: &str, t: &[Token]) -> Option<Effect> {
    let (channel, _) = identifier(sql, t.get(1)?)?;
    let payload = match &t[2..] {
        [] => String::new(),
        [comma, s] if comma.is_punct(b',') && s.kind == Kind::Str => {
            let inner = s.text(sql).strip_prefix('\'')?.strip_suffix('\'')?;
            inner.replace("''", "'")
        }
        _ => return None,
    };
    Some(Effect::Notify { channel, payload })
}

/// Longer than any command word classified here.
const KEYWORD_MAX: usize = 16;

/// `word` in lower case, in `buf` (every Query is classified: no allocation). A word too
/// long to be a command word comes back empty, which no rule matches.
fn lower_keyword<'a>(word: &str, buf: &'a mut [u8; KEYWORD_MAX]) -> &'a str {
    let Some(dst) = buf.get_mut(..word.len()) else {
        return "";
    };
    dst.copy_from_slice(word.as_bytes());
    dst.make_ascii_lowercase();
    std::str::from_utf8(dst).unwrap_or("")
}

/// SELECT/INSERT/UPDATE/DELETE/MERGE/WITH/VALUES/TABLE/COPY: function calls, and SELECT
/// INTO (which creates a table).
fn dml(sql: &str, t: &[Token], out: &mut Vec<Effect>) {
    for (i, tok) in t.iter().enumerate() {
        if !tok.is_word(sql, "into") {
            continue;
        }
        let after_insert =
            i > 0 && (t[i - 1].is_word(sql, "insert") || t[i - 1].is_word(sql, "merge"));
        if after_insert {
            continue;
        }
        // SELECT ... INTO [TEMP|TEMPORARY|UNLOGGED] [TABLE] name.
        let temporary = t[i + 1..].iter().take(3).any(|x| {
            x.is_word(sql, "temp") || x.is_word(sql, "temporary") || x.is_word(sql, "pg_temp")
        });
        out.push(if temporary {
            Effect::Pin(PinReason::TempTable)
        } else {
            Effect::Unknown(UnknownReason::Command)
        });
        break;
    }
    calls(sql, t, out);
}

/// Every `name(` that is a function call: session advisory locks pin, `set_config` with
/// literal arguments is a SET, built-ins known to be harmless pass, anything else is
/// unknown (once per statement).
fn calls(sql: &str, t: &[Token], out: &mut Vec<Effect>) {
    let mut unknown = false;
    for k in 0..t.len().saturating_sub(1) {
        if !t[k + 1].is_punct(b'(') {
            continue;
        }
        let Some((name, quoted)) = identifier(sql, &t[k]) else {
            continue;
        };
        // `schema.name(`: the word before the name, past the schema.
        let qualified = k >= 2 && t[k - 1].is_punct(b'.');
        let schema = qualified
            .then(|| identifier(sql, &t[k - 2]))
            .flatten()
            .map(|(s, _)| s);
        let before = if qualified {
            k.checked_sub(3)
        } else {
            k.checked_sub(1)
        };
        let before = before.map(|b| &t[b]);
        if !quoted && !qualified && is_not_a_call(&name) {
            continue;
        }
        // A table's column list (`INSERT INTO t (a)`, `REFERENCES t (id)`), a cast to a
        // type with a modifier (`::varchar(10)`).
        if before.is_some_and(|b| {
            b.is_word(sql, "into")
                || b.is_word(sql, "table")
                || b.is_word(sql, "references")
                || b.is_word(sql, "only")
                || b.is_punct(b':')
        }) {
            continue;
        }
        let builtin = schema.as_deref().is_none_or(|s| s == "pg_catalog");
        if !builtin {
            unknown = true;
            continue;
        }
        if SESSION_ADVISORY_LOCKS.contains(&name.as_str()) {
            out.push(Effect::Pin(PinReason::AdvisoryLock));
        } else if name == "set_config" {
            let mut p = Cursor {
                b: sql.as_bytes(),
                i: t[k + 1].end,
            };
            match set_config_call(&mut p) {
                Some(Some(e)) => out.push(e),
                Some(None) => {}
                None => unknown = true,
            }
        } else if !is_safe_function(&name) {
            unknown = true;
        }
    }
    if unknown {
        out.push(Effect::Unknown(UnknownReason::Function));
    }
}

/// CREATE [GLOBAL|LOCAL] {TEMP|TEMPORARY} ..., or anything created in `pg_temp`.
fn creates_temporary(sql: &str, t: &[Token]) -> bool {
    t.iter()
        .take(4)
        .any(|x| x.is_word(sql, "temp") || x.is_word(sql, "temporary"))
        || t.iter().any(|x| {
            identifier(sql, x).is_some_and(|(n, _)| n == "pg_temp" || n.starts_with("pg_temp_"))
        })
}

/// DECLARE ... WITH HOLD.
fn holds_across_transactions(sql: &str, t: &[Token]) -> bool {
    t.windows(2)
        .any(|w| w[0].is_word(sql, "with") && w[1].is_word(sql, "hold"))
}

/// PREPARE / DEALLOCATE / EXECUTE naming a statement in maitred's namespace.
fn names_maitred_statement(sql: &str, t: &[Token]) -> bool {
    t.iter().skip(1).take(2).any(|x| {
        identifier(sql, x).is_some_and(|(n, _)| {
            n.len() >= MAITRED_STATEMENT_PREFIX.len()
                && n[..MAITRED_STATEMENT_PREFIX.len()]
                    .eq_ignore_ascii_case(MAITRED_STATEMENT_PREFIX)
        })
    })
}
