//! Session settings follow their client. A client's settings come from its startup packet
//! (application_name, client_encoding, DateStyle, TimeZone, search_path, ...) and from the
//! SET / RESET statements it runs; each server connection records the settings maitred knows
//! it carries. On each lease maitred sends one query with a SET for what differs and a RESET
//! for what an earlier client left, and nothing when the connection already matches.
//!
//! Values are kept as SQL text (startup values quoted as literals), so they can be replayed.

use crate::sql_effects::{quote_identifier_list, Effect, LIST_QUOTED_SETTINGS};
use bytes::BytesMut;

/// Settings as (lower-case name, SQL value text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings(Vec<(String, String)>);

impl Settings {
    /// The settings of a startup packet, values as the server spells them
    /// ([`crate::startup_params`]). A list setting (`search_path`) is written as the list of
    /// identifiers it is: as one literal after `SET ... TO`, the server would take
    /// `'a, b'` as the single schema `"a, b"`.
    pub fn from_startup(params: &[(String, String)]) -> Settings {
        let mut s = Settings::default();
        for (name, value) in params {
            if !is_setting_name(name) {
                continue;
            }
            let name = name.to_ascii_lowercase();
            let sql = if LIST_QUOTED_SETTINGS.contains(&name.as_str()) {
                quote_identifier_list(value).unwrap_or_else(|| quote_literal(value))
            } else {
                quote_literal(value)
            };
            s.set(&name, &sql);
        }
        s
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(e) => e.1 = value.to_owned(),
            None => self.0.push((name.to_owned(), value.to_owned())),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| k != name);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Applies a committed SET/RESET to a client's settings; RESET returns a setting to
    /// the value of the client's startup packet, as in PostgreSQL.
    pub fn apply_client(&mut self, effect: &Effect, startup: &Settings) {
        match effect {
            Effect::Set { name, value } if is_setting_name(name) => self.set(name, value),
            Effect::Reset { name } => match startup.get(name) {
                Some(v) => self.set(name, v),
                None => self.remove(name),
            },
            Effect::ResetAll => *self = startup.clone(),
            _ => {}
        }
    }

    /// Applies a SET/RESET that ran on a server connection to its record.
    pub fn apply_server(&mut self, effect: &Effect) {
        // The server's RESET goes back to the session default, which for a connection
        // maitred opened is the server's own default: forget what we knew.
        match effect {
            Effect::Set { name, value } if is_setting_name(name) => self.set(name, value),
            Effect::Reset { name } => self.remove(name),
            Effect::ResetAll => self.clear(),
            _ => {}
        }
    }
}

/// Appends to `swbuf` one simple Query that makes the server connection's settings match
/// `wanted`, and updates the connection's record. Returns whether a query was added (its
/// reply must then be swallowed).
pub fn sync_settings(applied: &mut Settings, wanted: &Settings, swbuf: &mut BytesMut) -> bool {
    let mut sql = String::new();
    // RESETs first: if a SET of the new client fails, the statements after it do not run,
    // and what an earlier client left (its role above all) must be gone by then.
    for (name, _) in applied.iter() {
        if wanted.get(name).is_none() {
            sql.push_str(&format!("RESET {name};"));
        }
    }
    for (name, value) in wanted.iter() {
        if applied.get(name) != Some(value) {
            sql.push_str(&format!("SET {name} TO {value};"));
        }
    }
    if sql.is_empty() {
        return false;
    }
    // `query` only fails on a NUL byte, which neither startup strings nor SQL text contain.
    if postgres_protocol::message::frontend::query(&sql, swbuf).is_err() {
        return false;
    }
    *applied = wanted.clone();
    true
}

/// Setting names are identifiers: letters, digits, '_' and '.' (for extension settings).
pub(crate) fn is_setting_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
}

pub(crate) fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_of(buf: &BytesMut) -> String {
        String::from_utf8_lossy(&buf[5..buf.len() - 1]).into_owned()
    }

    #[test]
    fn startup_values_are_quoted_and_odd_names_skipped() {
        let s = Settings::from_startup(&[
            ("application_name".into(), "it's".into()),
            ("x; drop table t".into(), "1".into()),
            ("DateStyle".into(), "ISO".into()),
            ("search_path".into(), "app,\"My Schema\"".into()),
        ]);
        assert_eq!(s.get("application_name"), Some("'it''s'"));
        assert_eq!(s.get("datestyle"), Some("'ISO'"));
        assert_eq!(s.get("search_path"), Some("\"app\", \"My Schema\""));
        assert_eq!(s.iter().count(), 3);
    }

    #[test]
    fn sync_sends_only_differences_and_resets_leftovers() {
        let mut applied = Settings::default();
        applied.set("search_path", "other");
        applied.set("application_name", "'a'");
        let mut wanted = Settings::default();
        wanted.set("application_name", "'a'");
        wanted.set("timezone", "'UTC'");
        let mut buf = BytesMut::new();
        assert!(sync_settings(&mut applied, &wanted, &mut buf));
        assert_eq!(sql_of(&buf), "RESET search_path;SET timezone TO 'UTC';");
        assert_eq!(applied, wanted);
        buf.clear();
        assert!(
            !sync_settings(&mut applied, &wanted, &mut buf),
            "nothing to send"
        );
    }

    #[test]
    fn reset_returns_to_the_startup_value() {
        let startup = Settings::from_startup(&[("application_name".into(), "psql".into())]);
        let mut s = startup.clone();
        s.apply_client(
            &Effect::Set {
                name: "application_name".into(),
                value: "'x'".into(),
            },
            &startup,
        );
        s.apply_client(
            &Effect::Set {
                name: "search_path".into(),
                value: "app".into(),
            },
            &startup,
        );
        s.apply_client(
            &Effect::Reset {
                name: "application_name".into(),
            },
            &startup,
        );
        assert_eq!(s.get("application_name"), Some("'psql'"));
        s.apply_client(&Effect::ResetAll, &startup);
        assert_eq!(s, startup);
    }
}
