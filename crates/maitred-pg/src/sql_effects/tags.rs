//! The server's word on what ran: CommandComplete tags. Each tag is one of
//! - `Plain`: the command itself cannot change session state (what it calls is the
//!   lexer's business);
//! - `Tracked`: a session effect that maitred follows when it predicted it (SET, RESET,
//!   DISCARD, PREPARE, DEALLOCATE, LISTEN, UNLISTEN, DECLARE CURSOR, CREATE ...);
//! - `Unknown`: code maitred cannot see (DO, CALL, LOAD) or a tag it does not know.
//!
//! A tracked tag that no statement of the lease predicted, or an unknown tag, means the
//! text analysis was wrong: the relay confirms the session with the server.
//! Tags: <https://www.postgresql.org/docs/15/protocol-message-formats.html> (CommandComplete).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagClass {
    Plain,
    Tracked,
    Unknown,
}

/// Tags of commands without session effects of their own.
const PLAIN: &[&[u8]] = &[
    b"ALTER ",
    b"ANALYZE",
    b"BEGIN",
    b"CHECKPOINT",
    b"CLUSTER",
    b"COMMENT",
    b"COMMIT",
    b"COPY",
    b"DELETE",
    b"DROP ",
    b"EXPLAIN",
    b"FETCH",
    b"GRANT",
    b"INSERT",
    b"LOCK TABLE",
    b"MERGE",
    b"MOVE",
    b"NOTIFY",
    b"REFRESH MATERIALIZED VIEW",
    b"REINDEX",
    b"RELEASE",
    b"REVOKE",
    b"ROLLBACK",
    b"SAVEPOINT",
    b"SELECT",
    b"SET CONSTRAINTS",
    b"SHOW",
    b"START TRANSACTION",
    b"TRUNCATE TABLE",
    b"UPDATE",
    b"VACUUM",
];

/// Tags of commands whose session effect maitred follows when predicted.
const TRACKED: &[&[u8]] = &[
    b"CLOSE CURSOR",
    b"CREATE ",
    b"DEALLOCATE",
    b"DECLARE CURSOR",
    b"DISCARD",
    b"LISTEN",
    b"PREPARE",
    b"RESET",
    b"SET",
    b"UNLISTEN",
];

/// The class of a CommandComplete tag (the message body, NUL included or not).
pub fn class(tag: &[u8]) -> TagClass {
    let tag = tag.strip_suffix(b"\0").unwrap_or(tag);
    // `SET` must not match `SET CONSTRAINTS` (plain) first: longest prefix wins by order.
    let matches = |p: &[u8]| {
        tag.starts_with(p) && (p.ends_with(b" ") || tag.len() == p.len() || tag[p.len()] == b' ')
    };
    // The tags of almost every transaction first (each is in PLAIN too).
    let common: [&[u8]; 4] = [b"SELECT", b"INSERT", b"UPDATE", b"BEGIN"];
    if common.iter().any(|p| matches(p)) || PLAIN.iter().any(|p| matches(p)) {
        // PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED end up here too.
        return TagClass::Plain;
    }
    if tag == b"PREPARE TRANSACTION" {
        return TagClass::Plain;
    }
    if TRACKED.iter().any(|p| matches(p)) {
        return TagClass::Tracked;
    }
    TagClass::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_classified() {
        for t in [
            &b"SELECT 1\0"[..],
            b"INSERT 0 5",
            b"UPDATE 3",
            b"BEGIN",
            b"COMMIT",
            b"ROLLBACK",
            b"SET CONSTRAINTS",
            b"ALTER TABLE",
            b"DROP TABLE",
            b"COPY 7",
            b"PREPARE TRANSACTION",
            b"COMMIT PREPARED",
        ] {
            assert_eq!(class(t), TagClass::Plain, "{}", String::from_utf8_lossy(t));
        }
        for t in [
            &b"SET\0"[..],
            b"RESET",
            b"DISCARD ALL",
            b"PREPARE",
            b"DEALLOCATE ALL",
            b"LISTEN",
            b"DECLARE CURSOR",
            b"CREATE TABLE",
            b"CREATE FUNCTION",
        ] {
            assert_eq!(
                class(t),
                TagClass::Tracked,
                "{}",
                String::from_utf8_lossy(t)
            );
        }
        for t in [
            &b"DO\0"[..],
            b"CALL",
            b"LOAD",
            b"SECURITY LABEL",
            b"SETX",
            b"SELECTED",
        ] {
            assert_eq!(
                class(t),
                TagClass::Unknown,
                "{}",
                String::from_utf8_lossy(t)
            );
        }
    }
}
