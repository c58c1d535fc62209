//! A client's session variables as the server reported them (CLIENT_SESSION_TRACK), so
//! they follow the client to another server connection: whatever changed them (a plain
//! `SET`, a `SET` inside a statement list or a stored procedure, `SET NAMES`).

/// Variables maitred does not replay: autocommit follows the status flags instead, and
/// the tracking settings are maitred's own.
fn is_ignored(name: &str) -> bool {
    name == "autocommit" || name.starts_with("session_track_")
}

/// The variables one client changed, in the order first changed, and a version that grows
/// with every change, so a server connection can tell whether it carries the latest.
#[derive(Debug, Default)]
pub struct SessionVars {
    vars: Vec<(String, String)>,
    version: u64,
    /// The version at the last [`SessionVars::clear`]: a connection that carries an
    /// older version carries variables the client no longer has.
    cleared: u64,
}

/// What a server connection that carries this client's variables up to some version needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    Nothing,
    /// SET every variable (an older version of them is there).
    All,
    /// Back to defaults first (COM_RESET_CONNECTION), then SET every variable.
    ResetFirst,
}

impl SessionVars {
    /// Records a reported change; `false` if the variable is not replayed.
    pub fn set(&mut self, name: String, value: String) -> bool {
        if is_ignored(&name) {
            return false;
        }
        match self.vars.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) if *v == value => return true,
            Some((_, v)) => *v = value,
            None => self.vars.push((name, value)),
        }
        self.version += 1;
        true
    }

    /// How the client's `sql_mode` (as the server reported it) lexes quotes.
    pub fn lex_mode(&self) -> crate::sql_effects::lexer::LexMode {
        self.vars
            .iter()
            .find(|(n, _)| n == "sql_mode")
            .map_or_else(crate::sql_effects::lexer::LexMode::default, |(_, v)| {
                crate::sql_effects::lexer::LexMode::from_sql_mode(v)
            })
    }

    /// The client's session went back to defaults (COM_RESET_CONNECTION, COM_CHANGE_USER).
    pub fn clear(&mut self) {
        self.vars.clear();
        self.version += 1;
        self.cleared = self.version;
    }

    /// The character set the client asked for in its handshake (collation id), where it
    /// is not the server connections' (utf8mb4, [`DEFAULT_COLLATION`]): server connections
    /// log in with theirs, so the client's is replayed like a `SET NAMES` of its own.
    /// Only the character set: a collation id the server may not know (MySQL 8's 255
    /// against MariaDB) would make every replay fail; an unknown id changes nothing, as
    /// servers fall back to their default.
    ///
    /// [`DEFAULT_COLLATION`]: crate::backend::DEFAULT_COLLATION
    pub fn set_handshake_charset(&mut self, collation: u8) {
        let Some(charset) = handshake_charset(collation) else {
            return;
        };
        for name in [
            "character_set_client",
            "character_set_connection",
            "character_set_results",
        ] {
            self.set(name.to_owned(), charset.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// What a connection carrying this client's variables at version `applied` needs.
    pub fn replay_from(&self, applied: u64) -> Replay {
        if applied == self.version {
            Replay::Nothing
        } else if applied < self.cleared {
            Replay::ResetFirst
        } else {
            Replay::All
        }
    }

    /// One `SET` statement that gives a server connection these values; `None` when empty.
    pub fn replay_sql(&self) -> Option<String> {
        if self.vars.is_empty() {
            return None;
        }
        let mut sql = String::from("SET ");
        for (i, (name, value)) in self.vars.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str("@@SESSION.");
            sql.push_str(name);
            sql.push('=');
            push_literal(&mut sql, value);
        }
        Some(sql)
    }
}

/// The character set of handshake collation `collation` when it differs from the server
/// connections'; `None` when it is theirs or unknown.
fn handshake_charset(collation: u8) -> Option<String> {
    use mysql_common::collations::{Collation, CollationId};
    let ours = Collation::resolve(CollationId::from(u16::from(
        crate::backend::DEFAULT_COLLATION,
    )));
    let id = CollationId::from(u16::from(collation));
    if id == CollationId::UNKNOWN_COLLATION_ID {
        return None;
    }
    let theirs = Collation::resolve(id);
    (theirs.charset() != ours.charset()).then(|| theirs.charset().to_owned())
}

/// A reported value as SQL: numbers bare (integer variables refuse strings), NULL as NULL,
/// anything else as a quoted string.
fn push_literal(sql: &mut String, value: &str) {
    let digits = value.strip_prefix('-').unwrap_or(value);
    let numeric = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.');
    if numeric || value == "NULL" {
        sql.push_str(value);
        return;
    }
    sql.push('\'');
    for c in value.chars() {
        match c {
            '\'' => sql.push_str("''"),
            '\\' => sql.push_str("\\\\"),
            c => sql.push(c),
        }
    }
    sql.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_charset_other_than_utf8mb4_is_replayed() {
        // 8 latin1_swedish_ci, 47 latin1_bin.
        for latin1 in [8, 47] {
            let mut v = SessionVars::default();
            v.set_handshake_charset(latin1);
            assert_eq!(
                v.replay_sql().as_deref(),
                Some("SET @@SESSION.character_set_client='latin1', @@SESSION.character_set_connection='latin1', @@SESSION.character_set_results='latin1'")
            );
        }
        // utf8mb4_general_ci (the server connections'), utf8mb4_unicode_ci, MySQL 8's
        // utf8mb4_0900_ai_ci, and an id nobody knows: nothing to replay.
        for same_or_unknown in [45, 224, 255, 0, 126] {
            let mut v = SessionVars::default();
            v.set_handshake_charset(same_or_unknown);
            assert!(v.is_empty(), "collation {same_or_unknown}");
        }
    }

    #[test]
    fn replay_statement_quotes_strings_only() {
        let mut v = SessionVars::default();
        assert_eq!(v.replay_sql(), None);
        assert!(v.set("sql_mode".into(), "ANSI_QUOTES,O'DD\\".into()));
        assert!(v.set("sort_buffer_size".into(), "300000".into()));
        assert!(v.set("long_query_time".into(), "1.500000".into()));
        assert!(v.set("time_zone".into(), "-05:00".into()));
        assert!(!v.set("autocommit".into(), "OFF".into()));
        assert!(!v.set("session_track_schema".into(), "ON".into()));
        assert_eq!(
            v.replay_sql().as_deref(),
            Some(
                "SET @@SESSION.sql_mode='ANSI_QUOTES,O''DD\\\\', @@SESSION.sort_buffer_size=300000, \
                 @@SESSION.long_query_time=1.500000, @@SESSION.time_zone='-05:00'"
            )
        );
    }

    #[test]
    fn versions_tell_what_a_connection_needs() {
        let mut v = SessionVars::default();
        assert_eq!(v.replay_from(0), Replay::Nothing);
        v.set("time_zone".into(), "+01:00".into());
        let first = v.version();
        assert_eq!(v.replay_from(0), Replay::All);
        // The same value again changes nothing.
        v.set("time_zone".into(), "+01:00".into());
        assert_eq!(v.replay_from(first), Replay::Nothing);
        v.set("time_zone".into(), "+02:00".into());
        assert_eq!(v.replay_from(first), Replay::All);
        v.clear();
        assert_eq!(v.replay_from(first), Replay::ResetFirst);
        assert_eq!(v.replay_from(v.version()), Replay::Nothing);
    }
}
