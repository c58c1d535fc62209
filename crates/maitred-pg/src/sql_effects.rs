//! What a query string does to session state, found by a light scan of its statements (no
//! full SQL parser): SET/RESET and `set_config(name, value, false)` that must follow the
//! client to other server connections, and statements that leave state that cannot move
//! (the client is pinned). The same text comes from a simple Query or from the Parse of an
//! extended-protocol statement.
//!
//! Statements are split on `;` outside quotes, dollar quotes and comments. Only the first
//! words of each statement are looked at, plus the arguments of `set_config` calls.
//! [`deallocate_name`] recognises a lone SQL `DEALLOCATE name`.

use crate::settings::is_setting_name;

/// The effect of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `SET [SESSION] name {TO|=} value`: `value` is the SQL text after TO/=. Also
    /// `set_config('name', 'value', false)`, with `value` written as SQL text that sets the
    /// same thing.
    Set { name: String, value: String },
    /// `RESET name`.
    Reset { name: String },
    /// `RESET ALL`.
    ResetAll,
    /// State that stays on the server connection.
    Pin(PinReason),
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / END.
    Commit,
    /// ROLLBACK / ABORT (not ROLLBACK TO SAVEPOINT).
    Rollback,
    /// Anything else (including SET LOCAL and SET TRANSACTION, which end with the
    /// transaction).
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
    /// `set_config(name, value, false)` whose arguments are not plain literals (a parameter,
    /// an expression, a column), or inside a DO block: the value cannot be known.
    SessionSetting,
}

impl PinReason {
    pub const ALL: [PinReason; 6] = [
        PinReason::AdvisoryLock,
        PinReason::TempTable,
        PinReason::Listen,
        PinReason::HoldCursor,
        PinReason::SqlPrepare,
        PinReason::SessionSetting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PinReason::AdvisoryLock => "advisory_lock",
            PinReason::TempTable => "temp_table",
            PinReason::Listen => "listen",
            PinReason::HoldCursor => "with_hold_cursor",
            PinReason::SqlPrepare => "sql_prepare",
            PinReason::SessionSetting => "set_config",
        }
    }
}

/// The effects of every statement in a query string, in order.
pub fn effects(sql: &str) -> Vec<Effect> {
    if plainly_without_effects(sql) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for stmt in split_statements(sql) {
        let stmt = stmt.trim();
        match effect_of(stmt) {
            Effect::None => {}
            e => out.push(e),
        }
        if contains_ignore_case(stmt, "set_config") {
            set_config_effects(stmt, &mut out);
        }
    }
    out
}

/// The hot path: a single SELECT/INSERT/UPDATE/DELETE/WITH/VALUES statement that mentions
/// neither advisory locks nor `set_config` has no session effect; decided without
/// allocating, in one pass over the text.
fn plainly_without_effects(sql: &str) -> bool {
    lone_statement(sql).is_some_and(|(first, s)| {
        [
            "select", "insert", "update", "delete", "with", "values", "table",
        ]
        .iter()
        .any(|k| first.eq_ignore_ascii_case(k))
            && !mentions_session_functions(s.as_bytes())
    })
}

/// A query holding one statement (a trailing `;` allowed): its first word and the text
/// from there. None for a statement list (or a `;` inside a literal: conservative).
fn lone_statement(sql: &str) -> Option<(&str, &str)> {
    let s = sql.trim_start();
    let body = s.trim_end().trim_end_matches(';');
    if body.contains(';') {
        return None;
    }
    let first = s
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    Some((first, s))
}

/// Whether a simple query may be sent ahead on another client's busy server connection
/// (`send_ahead`): one read-only statement (SELECT, VALUES or TABLE) that leaves the
/// session as it found it, so it runs the same on any connection with the client's
/// settings and cannot open a transaction. SELECT INTO (which creates a table, perhaps a
/// temporary one) and anything naming advisory locks or `set_config` are excluded; so is
/// a statement list, even one that would qualify statement by statement.
pub fn may_send_ahead(sql: &str) -> bool {
    lone_statement(sql).is_some_and(|(first, s)| {
        ["select", "values", "table"]
            .iter()
            .any(|k| first.eq_ignore_ascii_case(k))
            && !mentions_session_functions(s.as_bytes())
            && !mentions_any(s.as_bytes(), &[b"into"])
    })
}

/// Whether `sql` may call `pg_[try_]advisory_lock*` or `set_config`, ASCII case ignored:
/// both names hold an underscore, so only the (few) underscores of a query are looked at.
/// Every simple query of an idle client passes here.
fn mentions_session_functions(sql: &[u8]) -> bool {
    sql.iter().enumerate().any(|(i, &b)| {
        b == b'_' && {
            let after = &sql[i + 1..];
            let starts = |word: &[u8]| {
                after
                    .get(..word.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(word))
            };
            starts(b"advisory")
                || (starts(b"config") && i >= 3 && sql[i - 3..i].eq_ignore_ascii_case(b"set"))
        }
    })
}

/// Whether `haystack` contains one of `needles`, ASCII case ignored.
fn mentions_any(haystack: &[u8], needles: &[&[u8]]) -> bool {
    (0..haystack.len()).any(|i| {
        let rest = &haystack[i..];
        needles.iter().any(|n| {
            // The first byte alone rules out almost every position.
            n.first().is_some_and(|f| f.eq_ignore_ascii_case(&rest[0]))
                && rest
                    .get(..n.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(n))
        })
    })
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    mentions_any(haystack.as_bytes(), &[needle.as_bytes()])
}

fn effect_of(stmt: &str) -> Effect {
    let lower = stmt.to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let first = words.first().copied().unwrap_or("");
    if lower.contains("pg_advisory_lock") || lower.contains("pg_try_advisory_lock") {
        // Transaction-level variants (pg_advisory_xact_lock) end with the transaction.
        return Effect::Pin(PinReason::AdvisoryLock);
    }
    match first {
        "set" => set_effect(stmt, &words),
        "reset" => match words.get(1) {
            Some(&"all") => Effect::ResetAll,
            Some(name) => Effect::Reset {
                name: canonical_name(name),
            },
            None => Effect::None,
        },
        "listen" => Effect::Pin(PinReason::Listen),
        "begin" => Effect::Begin,
        "start" if words.get(1) == Some(&"transaction") => Effect::Begin,
        "commit" | "end" => match words.get(1) {
            Some(&"prepared") => Effect::None,
            _ => Effect::Commit,
        },
        "rollback" | "abort" => match words.get(1) {
            Some(&"to") | Some(&"prepared") => Effect::None,
            _ => Effect::Rollback,
        },
        "prepare" => Effect::Pin(PinReason::SqlPrepare),
        // A DO block's body is a string maitred does not look into.
        "do" if lower.contains("set_config") => Effect::Pin(PinReason::SessionSetting),
        "declare" if contains_seq(&words, &["with", "hold"]) => Effect::Pin(PinReason::HoldCursor),
        "create"
            if words
                .iter()
                .take(4)
                .any(|w| *w == "temp" || *w == "temporary") =>
        {
            Effect::Pin(PinReason::TempTable)
        }
        _ => Effect::None,
    }
}

fn contains_seq(words: &[&str], seq: &[&str]) -> bool {
    words.windows(seq.len()).any(|w| w == seq)
}

fn set_effect(stmt: &str, words: &[&str]) -> Effect {
    let mut i = 1;
    match words.get(1) {
        Some(&"local") | Some(&"transaction") | None => return Effect::None,
        Some(&"session") => {
            i = 2;
            if matches!(
                words.get(2),
                Some(&"characteristics") | Some(&"authorization")
            ) {
                return Effect::None;
            }
        }
        _ => {}
    }
    // Work on the original text to keep the value's case and quoting.
    let rest = skip_words(stmt, i);
    let lower_rest = rest.to_ascii_lowercase();
    // SET TIME ZONE x, SET SCHEMA x, SET NAMES x, SET ROLE x are special forms.
    for (prefix, name) in [
        ("time zone", "timezone"),
        ("schema", "search_path"),
        ("names", "client_encoding"),
        ("role", "role"),
    ] {
        if let Some(after) = lower_rest.strip_prefix(prefix) {
            if after.starts_with(char::is_whitespace) {
                let value = rest[prefix.len()..].trim();
                return setting(name.to_owned(), value.to_owned());
            }
        }
    }
    let name_end = rest
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(rest.len());
    let name = canonical_name(&rest[..name_end]);
    let after = rest[name_end..].trim_start();
    let value = if let Some(v) = after.strip_prefix('=') {
        v
    } else if after.get(..2).is_some_and(|w| w.eq_ignore_ascii_case("to")) {
        // `get`: the bytes after the name may start with a multi-byte character.
        &after[2..]
    } else {
        return Effect::None;
    };
    if name.is_empty() {
        return Effect::None;
    }
    setting(name, value.trim().to_owned())
}

/// A session-level setting, except the `transaction_*` settings, which end with their
/// transaction (like SET TRANSACTION).
fn setting(name: String, value: String) -> Effect {
    if name.starts_with("transaction_") {
        return Effect::None;
    }
    Effect::Set { name, value }
}

fn canonical_name(name: &str) -> String {
    name.trim_matches('"').to_ascii_lowercase()
}

/// The text after the first `n` whitespace-separated words.
fn skip_words(s: &str, n: usize) -> &str {
    let mut rest = s.trim_start();
    for _ in 0..n {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest
}

/// The settings whose list values PostgreSQL quotes as identifiers (`GUC_LIST_QUOTE`): a
/// raw `set_config` value for them is not the same as a single literal after `SET ... TO`.
const LIST_QUOTED_SETTINGS: [&str; 4] = [
    "search_path",
    "temp_tablespaces",
    "session_preload_libraries",
    "local_preload_libraries",
];

/// The `set_config(name, value, is_local)` calls of one statement. A call with literal
/// arguments and `is_local` false is a SET; with `is_local` true it ends with its
/// transaction (nothing to track); any other call pins the client, since its value cannot
/// be known. Quoted strings, quoted identifiers other than `"set_config"`, comments and
/// dollar quotes are skipped.
fn set_config_effects(stmt: &str, out: &mut Vec<Effect>) {
    let b = stmt.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let after_name = match b[i] {
            b'\'' => {
                i = skip_string(b, i, false);
                continue;
            }
            b'"' => {
                let exact = b[i + 1..].starts_with(b"set_config\"") && b.get(i + 12) != Some(&b'"');
                i = skip_string(b, i, false);
                if !exact {
                    continue;
                }
                i
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = skip_line_comment(b, i);
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i = skip_block_comment(b, i);
                continue;
            }
            b'$' => {
                i = skip_dollar(b, i);
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                let start = i;
                while i < b.len() && is_ident_byte(b[i]) {
                    i += 1;
                }
                let word = &b[start..i];
                if word.eq_ignore_ascii_case(b"e") && b.get(i) == Some(&b'\'') {
                    // E'...': backslash escapes.
                    i = skip_string(b, i, true);
                    continue;
                }
                if !word.eq_ignore_ascii_case(b"set_config") {
                    continue;
                }
                i
            }
            _ => {
                i += 1;
                continue;
            }
        };
        let mut p = Cursor { b, i: after_name };
        p.skip_blank();
        if !p.eat(b'(') {
            // A column or an alias named set_config.
            i = after_name;
            continue;
        }
        match set_config_call(&mut p) {
            Some(Some(e)) => out.push(e),
            Some(None) => {}
            None => {
                out.push(Effect::Pin(PinReason::SessionSetting));
                return;
            }
        }
        i = p.i;
    }
}

/// The arguments of a `set_config(` call, after its parenthesis: `Some(Some(Set))` for a
/// session-level call with literal arguments, `Some(None)` for a transaction-local one (or a
/// `transaction_*` setting), `None` when the call cannot be followed.
fn set_config_call(p: &mut Cursor<'_>) -> Option<Option<Effect>> {
    p.skip_blank();
    let name = p.string_literal()?;
    p.comma()?;
    let value = p.string_literal()?;
    p.comma()?;
    let local = p.bool_argument()?;
    p.skip_blank();
    if !p.eat(b')') {
        return None;
    }
    if local {
        return Some(None);
    }
    // Setting names are case-insensitive.
    let name = name.to_ascii_lowercase();
    if !is_setting_name(&name) {
        return None;
    }
    let value = if LIST_QUOTED_SETTINGS.contains(&name.as_str()) {
        quote_identifier_list(&value)?
    } else {
        crate::settings::quote_literal(&value)
    };
    match setting(name, value) {
        Effect::None => Some(None),
        e => Some(Some(e)),
    }
}

/// A raw list value (as `set_config` and the server's list parser take it: identifiers
/// separated by commas, unquoted ones folded to lower case) as the SQL text of `SET name TO`
/// that gives the same list. None for an empty list (SET cannot write one) or a malformed
/// value.
fn quote_identifier_list(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    skip_space(&mut i);
    if i == b.len() {
        return None;
    }
    loop {
        let element = if b[i] == b'"' {
            let end = string_end(b, i, false)?;
            if end - i < 3 {
                return None;
            }
            let inner = &raw[i + 1..end - 1];
            i = end;
            inner.replace("\"\"", "\"")
        } else {
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b',' && b[i] != b'"' {
                i += 1;
            }
            if i == start {
                return None;
            }
            raw[start..i].to_ascii_lowercase()
        };
        if !out.is_empty() {
            out.push_str(", ");
        }
        out.push('"');
        out.push_str(&element.replace('"', "\"\""));
        out.push('"');
        skip_space(&mut i);
        if i == b.len() {
            return Some(out);
        }
        if b[i] != b',' {
            return None;
        }
        i += 1;
        skip_space(&mut i);
        if i == b.len() {
            return None;
        }
    }
}

/// A position in a statement, for reading the arguments of a call.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    /// Skips whitespace and comments.
    fn skip_blank(&mut self) {
        loop {
            match self.b.get(self.i) {
                Some(c) if c.is_ascii_whitespace() => self.i += 1,
                Some(b'-') if self.b.get(self.i + 1) == Some(&b'-') => {
                    self.i = skip_line_comment(self.b, self.i)
                }
                Some(b'/') if self.b.get(self.i + 1) == Some(&b'*') => {
                    self.i = skip_block_comment(self.b, self.i)
                }
                _ => return,
            }
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// `,` after optional blanks, then blanks.
    fn comma(&mut self) -> Option<()> {
        self.skip_blank();
        if !self.eat(b',') {
            return None;
        }
        self.skip_blank();
        Some(())
    }

    /// A plain `'...'` literal (`''` for a quote) and its value. None for anything else,
    /// and for a backslash, whose meaning depends on `standard_conforming_strings`.
    fn string_literal(&mut self) -> Option<String> {
        if self.b.get(self.i) != Some(&b'\'') {
            return None;
        }
        let mut value = Vec::new();
        let mut j = self.i + 1;
        loop {
            match *self.b.get(j)? {
                b'\\' => return None,
                b'\'' if self.b.get(j + 1) == Some(&b'\'') => {
                    value.push(b'\'');
                    j += 2;
                }
                b'\'' => break,
                c => {
                    value.push(c);
                    j += 1;
                }
            }
        }
        self.i = j + 1;
        String::from_utf8(value).ok()
    }

    /// `true`/`false`, or a literal PostgreSQL reads as a boolean.
    fn bool_argument(&mut self) -> Option<bool> {
        let text = if self.b.get(self.i) == Some(&b'\'') {
            self.string_literal()?
        } else {
            let start = self.i;
            while self.i < self.b.len() && is_ident_byte(self.b[self.i]) {
                self.i += 1;
            }
            let word = std::str::from_utf8(&self.b[start..self.i]).ok()?;
            if !word.eq_ignore_ascii_case("true") && !word.eq_ignore_ascii_case("false") {
                return None;
            }
            word.to_owned()
        };
        match text.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => Some(true),
            "f" | "false" | "n" | "no" | "off" | "0" => Some(false),
            _ => None,
        }
    }
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The index after the quoted string (or identifier) opening at `i`, or the end of the
/// text if it is not closed; see [`string_end`].
fn skip_string(b: &[u8], i: usize, backslashes: bool) -> usize {
    string_end(b, i, backslashes).unwrap_or(b.len())
}

/// The index after the closing quote of the string (or identifier) opening at `i`: `''`
/// (or `""`) inside continues it, and with `backslashes` a backslash escapes the next byte.
fn string_end(b: &[u8], i: usize, backslashes: bool) -> Option<usize> {
    let q = b[i];
    let mut j = i + 1;
    while j < b.len() {
        if backslashes && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

fn skip_line_comment(b: &[u8], i: usize) -> usize {
    b[i..]
        .iter()
        .position(|c| *c == b'\n')
        .map_or(b.len(), |n| i + n)
}

/// Block comments nest in PostgreSQL.
fn skip_block_comment(b: &[u8], i: usize) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j + 1 < b.len() {
        match (b[j], b[j + 1]) {
            (b'/', b'*') => {
                depth += 1;
                j += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                j += 2;
                if depth == 0 {
                    return j;
                }
            }
            _ => j += 1,
        }
    }
    b.len()
}

/// Past a `$tag$ ... $tag$` string opening at `i`, or past the `$` of a parameter (`$1`).
fn skip_dollar(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    if b.get(j).is_some_and(|c| c.is_ascii_digit()) {
        return j;
    }
    while j < b.len() && b[j] != b'$' && is_ident_byte(b[j]) {
        j += 1;
    }
    if b.get(j) != Some(&b'$') {
        return i + 1;
    }
    let tag = &b[i..=j];
    let body = j + 1;
    b[body..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map_or(b.len(), |n| body + n + tag.len())
}

/// The statement name of a query that is exactly one `DEALLOCATE [PREPARE] name` (not
/// `ALL`), as PostgreSQL reads the identifier: folded to lower case unless quoted. Costs a
/// comparison of the first word for any other query.
pub fn deallocate_name(sql: &str) -> Option<String> {
    let s = sql.trim_start();
    if !s.get(..10)?.eq_ignore_ascii_case("deallocate") {
        return None;
    }
    let rest = &s[10..];
    if !rest.starts_with(|c: char| c.is_ascii_whitespace() || c == '"') {
        return None;
    }
    let (mut name, mut quoted, mut rest) = identifier(rest.trim_start())?;
    if !quoted && name == "prepare" {
        if let Some(next) = identifier(rest.trim_start()) {
            (name, quoted, rest) = next;
        }
    }
    if !quoted && name == "all" {
        return None;
    }
    let rest = rest.trim_start();
    let rest = rest.strip_prefix(';').unwrap_or(rest);
    rest.trim().is_empty().then_some(name)
}

/// An identifier at the start of `s`: its name, whether it was quoted, and what follows.
fn identifier(s: &str) -> Option<(String, bool, &str)> {
    let b = s.as_bytes();
    match b.first()? {
        b'"' => {
            let end = string_end(b, 0, false)?;
            if end < 3 {
                return None;
            }
            Some((s[1..end - 1].replace("\"\"", "\""), true, &s[end..]))
        }
        c if c.is_ascii_alphabetic() || *c == b'_' || *c >= 0x80 => {
            let end = b.iter().position(|c| !is_ident_byte(*c)).unwrap_or(b.len());
            Some((s[..end].to_ascii_lowercase(), false, &s[end..]))
        }
        _ => None,
    }
}

/// Splits on `;` outside single/double quotes, dollar quotes and comments.
fn split_statements(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' => {
                let q = b[i];
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'$' => {
                // $tag$ ... $tag$
                if let Some(len) = sql[i + 1..].find('$') {
                    let tag = &sql[i..i + len + 2];
                    if tag[1..tag.len() - 1]
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'_')
                    {
                        let body = i + tag.len();
                        match sql[body..].find(tag) {
                            Some(end) => i = body + end + tag.len() - 1,
                            None => i = b.len(),
                        }
                    }
                }
            }
            b';' => {
                out.push(&sql[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < sql.len() {
        out.push(&sql[start..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lone_read_only_statements_may_be_sent_ahead() {
        for yes in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
            "  select 1",
            "VALUES (1), (2)",
            "TABLE t",
            "SELECT now();  ",
        ] {
            assert!(may_send_ahead(yes), "{yes}");
        }
        for no in [
            "SELECT 1; SELECT 2",
            "SELECT pg_advisory_lock(1)",
            "SELECT set_config('search_path', 'x', false)",
            "SELECT * INTO TEMP t FROM s",
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET a = 1",
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            "BEGIN",
            "SET search_path = x",
            "/* comment */ SELECT 1",
            "",
        ] {
            assert!(!may_send_ahead(no), "{no}");
        }
    }

    fn set(name: &str, value: &str) -> Effect {
        Effect::Set {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn set_forms() {
        assert_eq!(
            effects("SET search_path TO app, public"),
            vec![set("search_path", "app, public")]
        );
        assert_eq!(
            effects("set application_name = 'x;y'"),
            vec![set("application_name", "'x;y'")]
        );
        assert_eq!(
            effects("SET SESSION statement_timeout TO 5000"),
            vec![set("statement_timeout", "5000")]
        );
        assert_eq!(
            effects("SET TIME ZONE 'UTC'"),
            vec![set("timezone", "'UTC'")]
        );
        assert_eq!(
            effects("SET \"DateStyle\" TO ISO"),
            vec![set("datestyle", "ISO")]
        );
        assert_eq!(effects("SET LOCAL work_mem = '1MB'"), vec![]);
        assert_eq!(
            effects("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            vec![]
        );
    }

    #[test]
    fn reset_forms_and_multiple_statements() {
        assert_eq!(
            effects("RESET search_path; select 1; RESET ALL;"),
            vec![
                Effect::Reset {
                    name: "search_path".into()
                },
                Effect::ResetAll
            ]
        );
    }

    #[test]
    fn transaction_control() {
        assert_eq!(
            effects("BEGIN; SET a = 1; ROLLBACK; start transaction; commit; end; abort; rollback to savepoint s"),
            vec![
                Effect::Begin,
                set("a", "1"),
                Effect::Rollback,
                Effect::Begin,
                Effect::Commit,
                Effect::Commit,
                Effect::Rollback
            ]
        );
    }

    #[test]
    fn pins() {
        assert_eq!(
            effects("select pg_advisory_lock(1)"),
            vec![Effect::Pin(PinReason::AdvisoryLock)]
        );
        assert_eq!(effects("select pg_advisory_xact_lock(1)"), vec![]);
        assert_eq!(
            effects("CREATE TEMP TABLE t (a int)"),
            vec![Effect::Pin(PinReason::TempTable)]
        );
        assert_eq!(
            effects("create temporary table t (a int)"),
            vec![Effect::Pin(PinReason::TempTable)]
        );
        assert_eq!(effects("LISTEN chan"), vec![Effect::Pin(PinReason::Listen)]);
        assert_eq!(
            effects("DECLARE c CURSOR WITH HOLD FOR select 1"),
            vec![Effect::Pin(PinReason::HoldCursor)]
        );
        assert_eq!(effects("DECLARE c CURSOR FOR select 1"), vec![]);
        assert_eq!(
            effects("PREPARE p AS select 1"),
            vec![Effect::Pin(PinReason::SqlPrepare)]
        );
        assert_eq!(effects("create table t (a int)"), vec![]);
    }

    #[test]
    fn fast_path_agrees_with_the_scan() {
        for sql in [
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
            "select pg_advisory_lock(1)",
            "  update t set a = 1",
            "select 1; set a = 2",
            "WITH x AS (select 1) select * from x",
            "select set_config('a.b', 'x', false)",
            "select current_setting('a.b')",
        ] {
            let fast = plainly_without_effects(sql);
            assert!(
                !fast
                    || split_statements(sql)
                        .iter()
                        .all(|s| effect_of(s.trim()) == Effect::None),
                "{sql}"
            );
        }
        assert!(plainly_without_effects("SELECT 1"));
        assert!(!plainly_without_effects("select pg_ADVISORY_lock(1)"));
        assert!(!plainly_without_effects("select 1; listen x"));
    }

    #[test]
    fn quotes_and_comments_hide_semicolons_and_keywords() {
        assert_eq!(effects("select 'SET x = 1; LISTEN a'"), vec![]);
        assert_eq!(effects("select $$; LISTEN a$$ -- ; LISTEN b\n"), vec![]);
        assert_eq!(effects("/* ; */ select 1; SET a = 1"), vec![set("a", "1")]);
    }

    const PIN_SETTING: Effect = Effect::Pin(PinReason::SessionSetting);

    #[test]
    fn set_config_with_literals_is_a_set() {
        assert_eq!(
            effects("SELECT set_config('application_name', 'app', false)"),
            vec![set("application_name", "'app'")]
        );
        // Quotes doubled inside the literal stay doubled in the replayed SQL literal.
        assert_eq!(
            effects("select set_config('maitred.test', 'it''s', FALSE)"),
            vec![set("maitred.test", "'it''s'")]
        );
        // Mixed case function and setting names, a schema, blanks and comments.
        assert_eq!(
            effects("SELECT pg_catalog.Set_Config ( 'DateStyle' , /* c */ 'ISO, MDY', 'off' )"),
            vec![set("datestyle", "'ISO, MDY'")]
        );
        assert_eq!(
            effects(r#"select "set_config"('timezone', 'UTC', false)"#),
            vec![set("timezone", "'UTC'")]
        );
        // Two calls in one statement.
        assert_eq!(
            effects("select set_config('a.b', '1', false), set_config('a.c', '2', 'f')"),
            vec![set("a.b", "'1'"), set("a.c", "'2'")]
        );
    }

    #[test]
    fn set_config_of_a_list_setting_keeps_the_list() {
        // The raw value is a list of identifiers: written so SET gives the same list.
        assert_eq!(
            effects("select set_config('search_path', 'foo, Public', false)"),
            vec![set("search_path", r#""foo", "public""#)]
        );
        assert_eq!(
            effects(r#"select set_config('search_path', '"$user",  "My Schema"', false)"#),
            vec![set("search_path", r#""$user", "My Schema""#)]
        );
        // An empty list cannot be written with SET: pinned.
        assert_eq!(
            effects("select set_config('search_path', '', false)"),
            vec![PIN_SETTING]
        );
        assert_eq!(
            effects("select set_config('search_path', 'a,,b', false)"),
            vec![PIN_SETTING]
        );
    }

    #[test]
    fn transaction_local_set_config_is_not_tracked() {
        assert_eq!(
            effects("select set_config('application_name', 'x', true)"),
            vec![]
        );
        assert_eq!(
            effects("select set_config('application_name', 'x', 'on')"),
            vec![]
        );
        // transaction_* settings end with the transaction, by either route.
        assert_eq!(
            effects("select set_config('transaction_isolation', 'serializable', false)"),
            vec![]
        );
        assert_eq!(effects("SET transaction_read_only = on"), vec![]);
    }

    #[test]
    fn set_config_with_unknown_arguments_pins() {
        for sql in [
            "select set_config('search_path', $1, false)",
            "select set_config($1, 'x', false)",
            "select set_config('a.b', 'x', $1)",
            "select set_config('a.b', 'x' || 'y', false)",
            "select set_config('a.b', 'x'::text, false)",
            "select set_config(name, setting, false) from pg_settings",
            "select set_config('a.b', E'x', false)",
            r"select set_config('a.b', 'x\y', false)",
            "select set_config('a.b', 'x', false",
            "select set_config('a b', 'x', false)",
            "select set_config('a.b', 'x', maybe)",
            "DO $$ BEGIN PERFORM set_config('a.b', 'x', false); END $$",
        ] {
            assert_eq!(effects(sql), vec![PIN_SETTING], "{sql}");
        }
    }

    #[test]
    fn set_config_in_strings_comments_or_as_a_column_is_nothing() {
        for sql in [
            "select 'set_config(''a.b'', $1, false)'",
            "select E'\\' set_config(x, y, false)'",
            "select 1 -- set_config(x, y, false)\n",
            "select /* /* nested */ set_config(x, y, false) */ 1",
            "select $q$ set_config(x, y, false) $q$",
            "select set_config from t",
            "select \"set_config\"\"\" (x, y, false)",
            "create function f() returns text as $$ select set_config(x, y, false) $$ language sql",
        ] {
            assert_eq!(effects(sql), vec![], "{sql}");
        }
    }

    #[test]
    fn set_config_in_a_multi_statement_string() {
        assert_eq!(
            effects(
                "BEGIN; select set_config('a.b', 'x;y', false); select 1; \
                 select set_config('a.c', $1, false); COMMIT"
            ),
            vec![
                Effect::Begin,
                set("a.b", "'x;y'"),
                PIN_SETTING,
                Effect::Commit
            ]
        );
        assert_eq!(
            effects("select pg_advisory_lock(1), set_config('a.b', 'x', false)"),
            vec![Effect::Pin(PinReason::AdvisoryLock), set("a.b", "'x'")]
        );
    }

    #[test]
    fn fast_path_looks_for_set_config() {
        assert!(!plainly_without_effects(
            "SELECT SET_CONFIG('a.b', 'x', false)"
        ));
        assert!(!plainly_without_effects(
            "update t set v = set_config('a.b', 'x', false)"
        ));
        assert!(plainly_without_effects("select setconfig, set_conf from t"));
        assert!(plainly_without_effects("select current_setting('a.b')"));
        assert!(!plainly_without_effects("select PG_TRY_ADVISORY_LOCK(1)"));
        assert!(!plainly_without_effects(
            "select pg_advisory_lock_shared(1)"
        ));
        assert!(plainly_without_effects(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1;"
        ));
        assert!(plainly_without_effects("select _x, set_ from t_"));
    }

    #[test]
    fn deallocate_names() {
        assert_eq!(deallocate_name("DEALLOCATE s0").as_deref(), Some("s0"));
        assert_eq!(
            deallocate_name("  deallocate PREPARE S1 ; ").as_deref(),
            Some("s1")
        );
        assert_eq!(deallocate_name("deallocate \"S1\"").as_deref(), Some("S1"));
        assert_eq!(
            deallocate_name("deallocate\"a\"\"b\";").as_deref(),
            Some("a\"b")
        );
        // `prepare` alone is the name.
        assert_eq!(
            deallocate_name("deallocate prepare").as_deref(),
            Some("prepare")
        );
        for sql in [
            "DEALLOCATE ALL",
            "deallocate prepare all;",
            "DEALLOCATE s0; select 1",
            "DEALLOCATE s0 s1",
            "DEALLOCATE",
            "DEALLOCATEs0",
            "deallocate \"unterminated",
            "deallocate \"\"",
            "select 'DEALLOCATE s0'",
            "DEALLOC",
            "DEALLOCATÉ s0",
        ] {
            assert_eq!(deallocate_name(sql), None, "{sql}");
        }
        // "DEALLOCATE ALL" by a quoted name is a statement named ALL.
        assert_eq!(
            deallocate_name("deallocate \"all\"").as_deref(),
            Some("all")
        );
    }

    #[test]
    fn set_with_a_multibyte_character_after_the_name_does_not_panic() {
        // Found by the pg_client_messages fuzz target: `after[..2]` cut 'Þ' in half.
        assert_eq!(effects("SET a \u{de}mm"), vec![]);
        assert_eq!(effects("SET a Þ"), vec![]);
        assert_eq!(effects("set a tO 'é'"), vec![set("a", "'é'")]);
    }
}
