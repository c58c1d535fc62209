//! What a query string predicts about session state. The server's replies are the
//! authority (see [`tags`] and the relay's confirmation); this module only predicts, from
//! one pass of a real lexer ([`lexer`]) over the text:
//! - SET/RESET (every spelling, behind any comment) and `set_config(name, value, false)`
//!   with literal arguments: settings that follow the client to other server connections;
//! - statements that leave state that cannot move (temp tables, SQL PREPARE, LISTEN, WITH
//!   HOLD cursors, session advisory locks): the client is pinned;
//! - transaction control;
//! - everything else that could change session state (DO, CALL, unknown functions,
//!   unrecognised commands, ambiguous text): `Unknown`, so the transaction is confirmed
//!   with the server before its connection serves anyone else.
//!
//! The same text comes from a simple Query or from the Parse of an extended-protocol
//! statement.

mod classify;
mod functions;
pub mod lexer;
mod set_config;
mod set_stmt;
pub mod tags;

pub(crate) use set_config::{quote_identifier_list, LIST_QUOTED_SETTINGS};

/// The effect of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `SET [SESSION] name {TO|=} value`: `value` is the SQL text after TO/=. Also
    /// `set_config('name', 'value', false)`, with `value` written as SQL text that sets the
    /// same thing.
    Set { name: String, value: String },
    /// `RESET name`.
    Reset { name: String },
    /// `RESET ALL`, `DISCARD ALL`.
    ResetAll,
    /// State that stays on the server connection.
    Pin(PinReason),
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT (not ROLLBACK TO SAVEPOINT).
    Rollback,
    /// A command whose session effect the server's tag names and maitred follows without a
    /// setting to replay (UNLISTEN, DEALLOCATE, DISCARD TEMP/PLANS/SEQUENCES, CLOSE).
    Tracked,
    /// The session effect cannot be derived from the text: confirm with the server.
    Unknown(UnknownReason),
    /// Refused before it reaches the server.
    Refused(Refusal),
    /// Custom setting names (`app.tenant_id`) written anywhere in a statement whose effect
    /// is unknown, in strings too (a DO block's body, `set_config('app.x', $1, false)`):
    /// the confirmation reads them, since the server lists no custom setting.
    CustomNames(Vec<String>),
    /// `NOTIFY channel [, 'payload']`: no session effect, but the notification comes back
    /// through the pool's listening connection, where the relay recognises it as the
    /// client's own once the transaction committed (`relay/own_notifications.rs`).
    Notify { channel: String, payload: String },
    /// No session effect (plain DML, SET LOCAL, SET TRANSACTION, ...).
    None,
}

/// Why a client must keep its server connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PinReason {
    AdvisoryLock,
    TempTable,
    Listen,
    HoldCursor,
    SqlPrepare,
    /// Session state found by a confirmation that maitred cannot move (or a confirmation
    /// that failed).
    Confirmed,
}

impl PinReason {
    pub const ALL: [PinReason; 6] = [
        PinReason::AdvisoryLock,
        PinReason::TempTable,
        PinReason::Listen,
        PinReason::HoldCursor,
        PinReason::SqlPrepare,
        PinReason::Confirmed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PinReason::AdvisoryLock => "advisory_lock",
            PinReason::TempTable => "temp_table",
            PinReason::Listen => "listen",
            PinReason::HoldCursor => "with_hold_cursor",
            PinReason::SqlPrepare => "sql_prepare",
            PinReason::Confirmed => "confirmed_state",
        }
    }
}

/// Why a statement's session effect is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnknownReason {
    /// DO, CALL, LOAD, SQL EXECUTE: code maitred does not see.
    Procedure,
    /// A call of a function not known to be free of session effects.
    Function,
    /// A command maitred does not classify (DDL, SET SESSION CHARACTERISTICS, ...).
    Command,
    /// Text whose meaning depends on settings (a backslash in a plain string) or that ends
    /// inside a comment or string.
    Ambiguous,
}

impl UnknownReason {
    pub const ALL: [UnknownReason; 4] = [
        UnknownReason::Procedure,
        UnknownReason::Function,
        UnknownReason::Command,
        UnknownReason::Ambiguous,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UnknownReason::Procedure => "procedure",
            UnknownReason::Function => "function",
            UnknownReason::Command => "command",
            UnknownReason::Ambiguous => "ambiguous",
        }
    }
}

/// Statements a client may not run through maitred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// PREPARE / DEALLOCATE / EXECUTE of a name in maitred's own namespace (`mtd_*`), which
    /// would let one client replace a statement another client runs.
    MaitredStatementName,
}

/// The prefix of maitred's own server-side statement names.
pub const MAITRED_STATEMENT_PREFIX: &str = "mtd_";

/// One pass over a query string: what it predicts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The effects of its statements, in order (statements without one are left out).
    pub effects: Vec<Effect>,
    /// One read-only statement (SELECT, VALUES or TABLE) that leaves the session as it
    /// found it: it may be sent ahead on another client's busy connection.
    pub read_only: bool,
    /// How many statements it holds.
    pub statements: usize,
}

impl Scan {
    pub fn refusal(&self) -> Option<Refusal> {
        refusal_of(&self.effects)
    }

    pub fn unknown(&self) -> Option<UnknownReason> {
        self.effects.iter().find_map(|e| match e {
            Effect::Unknown(r) => Some(*r),
            _ => None,
        })
    }
}

/// The refusal among `effects`, if any (a scan's, or a registered statement's).
pub fn refusal_of(effects: &[Effect]) -> Option<Refusal> {
    effects.iter().find_map(|e| match e {
        Effect::Refused(r) => Some(*r),
        _ => None,
    })
}

/// Scans a query string once.
pub fn scan(sql: &str) -> Scan {
    let mut out = Scan::default();
    let mut read_only = false;
    out.statements = lexer::each_statement(sql, |stmt| {
        read_only = classify::statement(sql, stmt, &mut out.effects);
    });
    out.read_only = out.statements == 1 && read_only;
    if out.unknown().is_some() {
        let names = custom_setting_names(sql);
        if !names.is_empty() {
            out.effects.push(Effect::CustomNames(names));
        }
    }
    out
}

/// At most this many custom setting names are read back per statement.
const MAX_CUSTOM_NAMES: usize = 16;

/// Words of the form `prefix.name` (how custom settings are named) anywhere in `sql`,
/// lower case, without duplicates.
pub fn custom_setting_names(sql: &str) -> Vec<String> {
    let b = sql.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < MAX_CUSTOM_NAMES {
        if !word(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && word(b[i]) {
            i += 1;
        }
        let w = &sql[start..i];
        let mut parts = w.split('.');
        let (Some(prefix), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let ident = |p: &str| {
            p.bytes()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
        };
        if ident(prefix) && ident(name) {
            let w = w.to_ascii_lowercase();
            if !out.contains(&w) {
                out.push(w);
            }
        }
    }
    out
}

/// Scans the text of a Query or Parse (up to its NUL). Text that is not UTF-8 (a client
/// encoding such as SJIS, whose second bytes may look like quotes or backslashes) cannot
/// be lexed reliably: it is ambiguous, and confirmed with the server.
pub fn scan_text(text: Option<&str>) -> Scan {
    match text {
        Some(sql) => scan(sql),
        None => Scan {
            effects: vec![Effect::Unknown(UnknownReason::Ambiguous)],
            read_only: false,
            statements: 1,
        },
    }
}

/// The effects of every statement in a query string, in order.
pub fn effects(sql: &str) -> Vec<Effect> {
    scan(sql).effects
}

/// Whether a simple query may be sent ahead on another client's busy server connection
/// (`send_ahead`): one read-only statement (SELECT, VALUES or TABLE) without INTO,
/// without calls that could change session state, that cannot open a transaction.
pub fn may_send_ahead(sql: &str) -> bool {
    scan(sql).read_only
}

/// A session-level setting, except the `transaction_*` settings, which end with their
/// transaction (like SET TRANSACTION).
fn setting(name: String, value: String) -> Effect {
    if name.starts_with("transaction_") {
        return Effect::None;
    }
    Effect::Set { name, value }
}

/// The statement name of a query that is exactly one `DEALLOCATE [PREPARE] name` (not
/// `ALL`), as PostgreSQL reads the identifier: folded to lower case unless quoted.
pub fn deallocate_name(sql: &str) -> Option<String> {
    // Every idle client's query comes through here: most are ruled out without lexing.
    if !mentions_ignore_case(sql.as_bytes(), b"deallocate") {
        return None;
    }
    let statements = lexer::statements(sql);
    let [stmt] = statements.as_slice() else {
        return None;
    };
    if stmt.unterminated {
        return None;
    }
    let t = &stmt.tokens;
    if !t.first()?.is_word(sql, "deallocate") {
        return None;
    }
    let mut i = 1;
    if t.len() == 3 && t[1].is_word(sql, "prepare") {
        i = 2;
    }
    if t.len() != i + 1 {
        return None;
    }
    let name = identifier(sql, &t[i])?;
    (name.1 || name.0 != "all").then_some(name.0)
}

/// Whether `haystack` contains `needle` (lower case), ASCII case ignored.
fn mentions_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    // The first byte alone rules out almost every position.
    haystack.iter().enumerate().any(|(i, c)| {
        c.to_ascii_lowercase() == first
            && haystack
                .get(i..i + needle.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(needle))
    })
}

/// An identifier token as PostgreSQL reads it (folded unless quoted), and whether it was
/// quoted. None for other tokens and for an empty quoted name.
fn identifier(sql: &str, tok: &lexer::Token) -> Option<(String, bool)> {
    match tok.kind {
        lexer::Kind::Word => Some((tok.text(sql).to_ascii_lowercase(), false)),
        lexer::Kind::QuotedIdent => {
            let text = tok.text(sql);
            let inner = text.strip_prefix('"')?.strip_suffix('"')?;
            (!inner.is_empty()).then(|| (inner.replace("\"\"", "\""), true))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
