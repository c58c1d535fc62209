//! Confirming a session's state with the server. When a transaction ran something whose
//! session effect maitred cannot derive from the text (a DO block, a CALL, an unknown
//! function, a tag it did not predict), the connection serves nobody else until one query
//! has told maitred what the session now holds:
//! - the settings set in this session (`pg_settings` rows with source `session`), the role
//!   and the session authorization (which `pg_settings` does not list);
//! - state that cannot move to another connection: SQL prepared statements, LISTEN
//!   channels, WITH HOLD cursors, temporary objects, session advisory locks.
//!
//! Then the client keeps its state: settings are followed (adopted as the client's, replayed
//! on its next leases), anything else pins the client to this connection. A confirmation
//! that fails pins too: state that cannot be accounted for never reaches another client.
//!
//! The query names every function and relation with its schema and uses no operator, so a
//! client's search_path (`SET search_path = evil, pg_catalog`) cannot redirect it.

use crate::settings::{quote_literal, Settings};
use crate::sql_effects::{quote_identifier_list, PinReason, LIST_QUOTED_SETTINGS};

/// One row: settings as JSON, role, session authorization, then six counts, then the
/// value of each custom setting maitred asks about ([`query`]).
const QUERY: &str = "SELECT \
 (SELECT pg_catalog.json_object_agg(s.name, s.setting) FROM pg_catalog.pg_settings s \
   WHERE pg_catalog.texteq(s.source, 'session')), \
 pg_catalog.current_setting('role'), \
 pg_catalog.current_setting('session_authorization'), \
 (SELECT pg_catalog.count(*) FROM pg_catalog.pg_prepared_statements p WHERE p.from_sql), \
 (SELECT pg_catalog.count(*) FROM pg_catalog.pg_listening_channels() c), \
 (SELECT pg_catalog.count(*) FROM pg_catalog.pg_cursors k WHERE k.is_holdable), \
 (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class r \
   WHERE pg_catalog.oideq(r.relnamespace, pg_catalog.pg_my_temp_schema())), \
 (SELECT pg_catalog.count(*) FROM pg_catalog.pg_proc f \
   WHERE pg_catalog.oideq(f.pronamespace, pg_catalog.pg_my_temp_schema())), \
 (SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks l \
   WHERE pg_catalog.texteq(l.locktype, 'advisory') \
   AND pg_catalog.int4eq(l.pid, pg_catalog.pg_backend_pid()))";

/// The confirmation query, reading also the custom settings named `custom` (the server
/// lists no custom setting: only names maitred saw can be read back). Names are setting
/// names (letters, digits, `_`, `.`), so they need no more quoting than the quotes.
pub fn query(custom: &[String]) -> String {
    let mut q = String::from(QUERY);
    for name in custom
        .iter()
        .filter(|n| crate::settings::is_setting_name(n))
    {
        q.push_str(&format!(", pg_catalog.current_setting('{name}', true)"));
    }
    q
}

/// What the server reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Settings set in this session: (name, value as the server shows it).
    pub settings: Vec<(String, String)>,
    pub role: String,
    pub session_authorization: String,
    pub sql_prepared: i64,
    pub listening: i64,
    pub hold_cursors: i64,
    pub temp_relations: i64,
    pub temp_functions: i64,
    pub advisory_locks: i64,
    /// Custom settings asked about that hold a value.
    pub custom: Vec<(String, String)>,
}

/// What to do with the client after a confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The session holds only settings: they become the client's (and the connection's
    /// record), and the connection may serve others.
    Follow(Settings),
    /// The client keeps this connection.
    Pin(PinReason),
}

/// Reads the confirmation's DataRow (the whole message, header included); `custom` as
/// given to [`query`].
pub fn parse_row(msg: &[u8], custom: &[String]) -> Option<Report> {
    let mut cols = columns(msg)?;
    let settings_json = cols.next()?;
    let role = text(cols.next()?)?;
    let session_authorization = text(cols.next()?)?;
    let mut count = || -> Option<i64> { text(cols.next()?)?.parse().ok() };
    let sql_prepared = count()?;
    let listening = count()?;
    let hold_cursors = count()?;
    let temp_relations = count()?;
    let temp_functions = count()?;
    let advisory_locks = count()?;
    let mut values = Vec::new();
    for name in custom
        .iter()
        .filter(|n| crate::settings::is_setting_name(n))
    {
        if let Some(v) = cols.next()? {
            let v = String::from_utf8(v.to_vec()).ok()?;
            if !v.is_empty() {
                values.push((name.clone(), v));
            }
        }
    }
    let settings = match settings_json {
        None => Vec::new(),
        Some(json) => {
            let map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_slice(json).ok()?;
            map.into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => Some((k, s)),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?
        }
    };
    Some(Report {
        settings,
        role,
        session_authorization,
        sql_prepared,
        listening,
        hold_cursors,
        temp_relations,
        temp_functions,
        advisory_locks,
        custom: values,
    })
}

/// The columns of a DataRow (None for SQL NULL).
fn columns(msg: &[u8]) -> Option<impl Iterator<Item = Option<&[u8]>>> {
    if msg.first() != Some(&b'D') || msg.len() < 7 {
        return None;
    }
    let n = i16::from_be_bytes([msg[5], msg[6]]);
    let mut rest = &msg[7..];
    let mut out = Vec::with_capacity(usize::try_from(n).ok()?);
    for _ in 0..n {
        let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        rest = &rest[4..];
        if len < 0 {
            out.push(None);
            continue;
        }
        let len = usize::try_from(len).ok()?;
        out.push(Some(rest.get(..len)?));
        rest = &rest[len..];
    }
    Some(out.into_iter())
}

fn text(col: Option<&[u8]>) -> Option<String> {
    String::from_utf8(col?.to_vec()).ok()
}

/// Decides from a report (None: the confirmation failed) what happens to the client.
/// `login_user` is the session authorization the connection logged in with.
pub fn decide(report: Option<&Report>, login_user: Option<&str>) -> Verdict {
    let Some(r) = report else {
        return Verdict::Pin(PinReason::Confirmed);
    };
    let pins = [
        (r.temp_relations + r.temp_functions, PinReason::TempTable),
        (r.sql_prepared, PinReason::SqlPrepare),
        (r.listening, PinReason::Listen),
        (r.hold_cursors, PinReason::HoldCursor),
        (r.advisory_locks, PinReason::AdvisoryLock),
    ];
    if let Some((_, reason)) = pins.iter().find(|(n, _)| *n != 0) {
        return Verdict::Pin(*reason);
    }
    let mut settings = Settings::default();
    for (name, value) in &r.settings {
        let name = name.to_ascii_lowercase();
        if !crate::settings::is_setting_name(&name) {
            return Verdict::Pin(PinReason::Confirmed);
        }
        let sql = if LIST_QUOTED_SETTINGS.contains(&name.as_str()) {
            match quote_identifier_list(value) {
                Some(v) => v,
                // An empty list cannot be written with SET.
                None => return Verdict::Pin(PinReason::Confirmed),
            }
        } else {
            quote_literal(value)
        };
        settings.set(&name, &sql);
    }
    for (name, value) in &r.custom {
        settings.set(name, &quote_literal(value));
    }
    if r.role != "none" {
        settings.set("role", &quote_literal(&r.role));
    }
    if login_user.is_some_and(|u| u != r.session_authorization) {
        settings.set(
            "session_authorization",
            &quote_literal(&r.session_authorization),
        );
    } else if login_user.is_none() {
        // Without the login identity an authorization change cannot be told apart.
        return Verdict::Pin(PinReason::Confirmed);
    }
    Verdict::Follow(settings)
}

/// A DataRow with these text columns (None: NULL), for tests.
#[cfg(test)]
pub(crate) fn data_row(cols: &[Option<&str>]) -> Vec<u8> {
    let mut body = (cols.len() as i16).to_be_bytes().to_vec();
    for c in cols {
        match c {
            None => body.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(s) => {
                body.extend_from_slice(&(s.len() as i32).to_be_bytes());
                body.extend_from_slice(s.as_bytes());
            }
        }
    }
    let mut msg = vec![b'D'];
    msg.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    msg.extend_from_slice(&body);
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cols: &[Option<&str>]) -> Vec<u8> {
        data_row(cols)
    }

    fn parse_row_(msg: &[u8]) -> Option<Report> {
        parse_row(msg, &[])
    }

    #[test]
    fn custom_settings_asked_about_are_followed() {
        let names = vec!["app.tenant".to_owned(), "app.unset".to_owned()];
        assert!(query(&names).ends_with(
            ", pg_catalog.current_setting('app.tenant', true), pg_catalog.current_setting('app.unset', true)"
        ));
        let mut cols = vec![None, Some("none"), Some("app")];
        cols.extend([Some("0"); 6]);
        cols.extend([Some("42"), None]);
        let r = parse_row(&row(&cols), &names).expect("row");
        assert_eq!(r.custom, vec![("app.tenant".to_owned(), "42".to_owned())]);
        let Verdict::Follow(s) = decide(Some(&r), Some("app")) else {
            panic!("not followed");
        };
        assert_eq!(s.get("app.tenant"), Some("'42'"));
        assert!(
            parse_row(&row(&cols[..9]), &names).is_none(),
            "columns missing"
        );
    }

    fn clean(settings: Option<&str>) -> Vec<u8> {
        row(&[
            settings,
            Some("none"),
            Some("app"),
            Some("0"),
            Some("0"),
            Some("0"),
            Some("0"),
            Some("0"),
            Some("0"),
        ])
    }

    #[test]
    fn a_clean_session_follows_its_settings() {
        let r = parse_row_(&clean(Some(
            r#"{"search_path": "tenant_42, public", "application_name": "it's", "statement_timeout": "5000"}"#,
        )))
        .expect("row");
        let Verdict::Follow(s) = decide(Some(&r), Some("app")) else {
            panic!("not followed");
        };
        assert_eq!(s.get("search_path"), Some(r#""tenant_42", "public""#));
        assert_eq!(s.get("application_name"), Some("'it''s'"));
        assert_eq!(s.get("statement_timeout"), Some("'5000'"));
        assert_eq!(s.get("role"), None);
        let none = parse_row_(&clean(None)).expect("row");
        assert_eq!(
            decide(Some(&none), Some("app")),
            Verdict::Follow(Settings::default())
        );
    }

    #[test]
    fn identity_changes_follow_their_client() {
        let r = parse_row_(&row(&[
            None,
            Some("Admin Role"),
            Some("bob"),
            Some("0"),
            Some("0"),
            Some("0"),
            Some("0"),
            Some("0"),
            Some("0"),
        ]))
        .expect("row");
        let Verdict::Follow(s) = decide(Some(&r), Some("app")) else {
            panic!("not followed");
        };
        assert_eq!(s.get("role"), Some("'Admin Role'"));
        assert_eq!(s.get("session_authorization"), Some("'bob'"));
        assert_eq!(
            decide(Some(&r), None),
            Verdict::Pin(PinReason::Confirmed),
            "unknown login user: fail closed"
        );
    }

    #[test]
    fn state_that_cannot_move_pins() {
        for (i, reason) in [
            (3, PinReason::SqlPrepare),
            (4, PinReason::Listen),
            (5, PinReason::HoldCursor),
            (6, PinReason::TempTable),
            (7, PinReason::TempTable),
            (8, PinReason::AdvisoryLock),
        ] {
            let mut cols = vec![None, Some("none"), Some("app")];
            cols.extend([Some("0"); 6]);
            cols[i] = Some("2");
            let r = parse_row_(&row(&cols)).expect("row");
            assert_eq!(decide(Some(&r), Some("app")), Verdict::Pin(reason), "{i}");
        }
    }

    #[test]
    fn failures_and_odd_reports_fail_closed() {
        assert_eq!(
            decide(None, Some("app")),
            Verdict::Pin(PinReason::Confirmed)
        );
        assert!(parse_row_(b"Dxx").is_none());
        assert!(parse_row_(&row(&[Some("{}"), Some("none")])).is_none());
        assert!(parse_row_(&clean(Some("not json"))).is_none());
        let empty_path = parse_row_(&clean(Some(r#"{"search_path": ""}"#))).expect("row");
        assert_eq!(
            decide(Some(&empty_path), Some("app")),
            Verdict::Pin(PinReason::Confirmed)
        );
    }
}
