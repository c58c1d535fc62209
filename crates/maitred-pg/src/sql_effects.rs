//! What a simple-query string does to session state, found by a light scan of its
//! statements (no full SQL parser): SET/RESET that must follow the client to other server
//! connections, and statements that leave state that cannot move (the client is pinned).
//!
//! Statements are split on `;` outside quotes, dollar quotes and comments. Only the first
//! words of each statement are looked at.

/// The effect of one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// `SET [SESSION] name {TO|=} value`: `value` is the SQL text after TO/=.
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
}

impl PinReason {
    pub const ALL: [PinReason; 5] = [
        PinReason::AdvisoryLock,
        PinReason::TempTable,
        PinReason::Listen,
        PinReason::HoldCursor,
        PinReason::SqlPrepare,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PinReason::AdvisoryLock => "advisory_lock",
            PinReason::TempTable => "temp_table",
            PinReason::Listen => "listen",
            PinReason::HoldCursor => "with_hold_cursor",
            PinReason::SqlPrepare => "sql_prepare",
        }
    }
}

/// The effects of every statement in a query string, in order.
pub fn effects(sql: &str) -> Vec<Effect> {
    if plainly_without_effects(sql) {
        return Vec::new();
    }
    split_statements(sql)
        .into_iter()
        .map(|s| effect_of(s.trim()))
        .filter(|e| *e != Effect::None)
        .collect()
}

/// The hot path: a single SELECT/INSERT/UPDATE/DELETE/WITH/VALUES statement that does not
/// mention advisory locks has no session effect; decided without allocating.
fn plainly_without_effects(sql: &str) -> bool {
    let s = sql.trim_start();
    let body = s.trim_end().trim_end_matches(';');
    if body.contains(';') {
        return false;
    }
    let first = s
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    let plain = [
        "select", "insert", "update", "delete", "with", "values", "table",
    ]
    .iter()
    .any(|k| first.eq_ignore_ascii_case(k));
    plain && !contains_ignore_case(s, "advisory")
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
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
                return Effect::Set {
                    name: name.to_owned(),
                    value: value.to_owned(),
                };
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
    Effect::Set {
        name,
        value: value.trim().to_owned(),
    }
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

    #[test]
    fn set_with_a_multibyte_character_after_the_name_does_not_panic() {
        // Found by the pg_client_messages fuzz target: `after[..2]` cut 'Þ' in half.
        assert_eq!(effects("SET a \u{de}mm"), vec![]);
        assert_eq!(effects("SET a Þ"), vec![]);
        assert_eq!(effects("set a tO 'é'"), vec![set("a", "'é'")]);
    }
}
