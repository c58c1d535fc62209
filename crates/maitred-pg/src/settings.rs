//! Session settings a client asked for in its startup packet (application_name,
//! client_encoding, DateStyle, TimeZone, search_path, ...) follow the client onto whichever
//! server connection it leases: maitred sends SET for what differs and RESET for what it set
//! for an earlier client, and nothing when the connection already matches.

use crate::backend::ServerConn;
use bytes::BytesMut;

/// Appends to `swbuf` one simple Query that makes the server connection's settings match
/// the client's, and updates the connection's record. Returns whether a query was added
/// (its ReadyForQuery must then be swallowed).
pub fn sync_settings(
    server: &mut ServerConn,
    wanted: &[(String, String)],
    swbuf: &mut BytesMut,
) -> bool {
    let mut sql = String::new();
    for (name, value) in wanted {
        if !is_setting_name(name) {
            continue;
        }
        let current = server
            .params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        if current == Some(value.as_str()) {
            continue;
        }
        sql.push_str(&format!("SET {name} TO {};", quote_literal(value)));
        server.params.insert(name.clone(), value.clone());
        if !server
            .maitred_set
            .iter()
            .any(|k| k.eq_ignore_ascii_case(name))
        {
            server.maitred_set.push(name.clone());
        }
    }
    let mut i = 0;
    while i < server.maitred_set.len() {
        let name = &server.maitred_set[i];
        if wanted.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            i += 1;
            continue;
        }
        sql.push_str(&format!("RESET {name};"));
        // Reported settings come back in a ParameterStatus; others are unknown again.
        server.params.retain(|k, _| !k.eq_ignore_ascii_case(name));
        server.maitred_set.swap_remove(i);
    }
    if sql.is_empty() {
        return false;
    }
    // `query` only fails on a NUL byte, which startup strings cannot contain.
    if postgres_protocol::message::frontend::query(&sql, swbuf).is_err() {
        return false;
    }
    server.pending_sync += 1;
    true
}

/// Setting names are identifiers: letters, digits, '_' and '.' (for extension settings).
fn is_setting_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_literals_and_rejects_odd_names() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert!(is_setting_name("application_name"));
        assert!(is_setting_name("myext.flag"));
        assert!(!is_setting_name("x; drop table t"));
        assert!(!is_setting_name(""));
    }
}
