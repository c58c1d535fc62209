//! CLIENT_SESSION_TRACK: the session-state changes a server reports at the end of an OK
//! packet (system variables, current schema, "some state changed"), and the same OK packet
//! in the shape a client without CLIENT_SESSION_TRACK expects.
//!
//! Under CLIENT_SESSION_TRACK an OK packet ends with the info text as a length-encoded
//! string (present, maybe empty, when state changed), then, when
//! `SERVER_SESSION_STATE_CHANGED` is set, a length-encoded block of entries (type byte,
//! length-encoded data). Without it, servers send the info text, length-encoded too, only
//! when it is not empty (clients read it so, whatever the documentation's string<EOF>),
//! and no state block.
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_ok_packet.html>
//! and <https://mariadb.com/kb/en/ok_packet/>.

use super::packets::{read_lenenc, OK};
use super::{status, CodecError};

/// Entry types of the session-state block.
const SYSTEM_VARIABLES: u8 = 0;
const SCHEMA: u8 = 1;
const STATE_CHANGE: u8 = 2;

/// One reported change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A session system variable and its new value, as text.
    SystemVariable { name: String, value: String },
    /// The current database.
    Schema(String),
    /// Some session state changed (user variables, temporary tables, prepared statements,
    /// variables...): reported alongside the specific entries when they exist.
    StateChanged,
    /// An entry maitred does not act on (GTIDs, transaction characteristics).
    Other,
}

/// An OK packet received under CLIENT_SESSION_TRACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedOk<'a> {
    /// The header, affected rows, last insert id, status and warnings.
    head: &'a [u8],
    status: u16,
    /// The info text with its length prefix (empty when the text is empty).
    info: &'a [u8],
    pub changes: Vec<Change>,
}

fn lenenc_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let n = usize::try_from(read_lenenc(buf, pos)?).ok()?;
    let s = buf.get(*pos..pos.checked_add(n)?)?;
    *pos += n;
    Some(s)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses an OK packet sent under CLIENT_SESSION_TRACK.
pub fn parse_tracked_ok(payload: &[u8]) -> Result<TrackedOk<'_>, CodecError> {
    let bad = || CodecError::Malformed("OK (session state)");
    if payload.first() != Some(&OK) {
        return Err(bad());
    }
    let mut pos = 1;
    read_lenenc(payload, &mut pos).ok_or_else(bad)?;
    read_lenenc(payload, &mut pos).ok_or_else(bad)?;
    let s = payload.get(pos..pos + 4).ok_or_else(bad)?;
    let status = u16::from_le_bytes([s[0], s[1]]);
    pos += 4;
    let head = &payload[..pos];
    let has_tail = pos < payload.len();
    let mut info: &[u8] = &[];
    let mut changes = Vec::new();
    if has_tail {
        let start = pos;
        if !lenenc_bytes(payload, &mut pos).ok_or_else(bad)?.is_empty() {
            info = &payload[start..pos];
        }
        if status & status::SESSION_STATE_CHANGED != 0 && pos < payload.len() {
            let block = lenenc_bytes(payload, &mut pos).ok_or_else(bad)?;
            let mut p = 0;
            while p < block.len() {
                let kind = block[p];
                p += 1;
                let data = lenenc_bytes(block, &mut p).ok_or_else(bad)?;
                let mut d = 0;
                changes.push(match kind {
                    SYSTEM_VARIABLES => {
                        let name = lenenc_bytes(data, &mut d).ok_or_else(bad)?;
                        let value = lenenc_bytes(data, &mut d).ok_or_else(bad)?;
                        Change::SystemVariable {
                            name: text(name).to_ascii_lowercase(),
                            value: text(value),
                        }
                    }
                    SCHEMA => Change::Schema(text(lenenc_bytes(data, &mut d).ok_or_else(bad)?)),
                    STATE_CHANGE => Change::StateChanged,
                    _ => Change::Other,
                });
            }
        }
    }
    Ok(TrackedOk {
        head,
        status,
        info,
        changes,
    })
}

impl TrackedOk<'_> {
    /// Whether the packet differs from what a client without CLIENT_SESSION_TRACK expects.
    pub fn needs_rewrite(&self) -> bool {
        self.status & status::SESSION_STATE_CHANGED != 0
    }

    /// The packet without the session-state block and its flag.
    pub fn untracked(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(self.head.len() + self.info.len());
        p.extend_from_slice(self.head);
        let at = self.head.len() - 4;
        let status = self.status & !status::SESSION_STATE_CHANGED;
        p[at..at + 2].copy_from_slice(&status.to_le_bytes());
        p.extend_from_slice(self.info);
        p
    }

    /// Only "some state changed", without a variable or schema saying which: the change
    /// cannot be replayed elsewhere (e.g. a user variable set inside a procedure).
    pub fn unknown_state_change(&self) -> bool {
        self.changes.contains(&Change::StateChanged)
            && !self
                .changes
                .iter()
                .any(|c| matches!(c, Change::SystemVariable { .. } | Change::Schema(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from MariaDB 10.11 with session_track_system_variables='*' and
    // session_track_state_change=ON.
    const SET_NAMES: &[u8] = b"\x00\x00\x00\x00\xc0\x00\x00\x00b\x00\x1c\x14character_set_client\x06latin1\x00 \x18character_set_connection\x06latin1\x00\x1d\x15character_set_results\x06latin1\x02\x011";
    const USE_APP: &[u8] = b"\x00\x00\x00\x00\xc0\x00\x00\x00\t\x01\x04\x03app\x02\x011";
    const USER_VAR: &[u8] = b"\x00\x00\x00\x02\xc0\x00\x00\x00\x03\x02\x011";

    #[test]
    fn variables_schema_and_state() {
        let ok = parse_tracked_ok(SET_NAMES).expect("parse");
        assert_eq!(ok.changes.len(), 4);
        assert_eq!(
            ok.changes[1],
            Change::SystemVariable {
                name: "character_set_connection".into(),
                value: "latin1".into()
            }
        );
        assert!(!ok.unknown_state_change());
        let ok = parse_tracked_ok(USE_APP).expect("parse");
        assert_eq!(
            ok.changes,
            vec![Change::Schema("app".into()), Change::StateChanged]
        );
        let ok = parse_tracked_ok(USER_VAR).expect("parse");
        assert!(ok.unknown_state_change());
    }

    #[test]
    fn rewritten_for_a_client_without_tracking() {
        let ok = parse_tracked_ok(USER_VAR).expect("parse");
        assert!(ok.needs_rewrite());
        assert_eq!(ok.untracked(), b"\x00\x00\x00\x02\x80\x00\x00".to_vec());
        // Info text with state: the text stays, length-encoded, the state goes.
        let p = b"\x00\x01\x00\x02\x40\x00\x00\x05Rows!\x03\x02\x011";
        let ok = parse_tracked_ok(p).expect("parse");
        assert_eq!(ok.changes, vec![Change::StateChanged]);
        assert_eq!(
            ok.untracked(),
            b"\x00\x01\x00\x02\x00\x00\x00\x05Rows!".to_vec()
        );
        // Nothing after the warnings: left alone.
        let ok = parse_tracked_ok(b"\x00\x00\x00\x02\x00\x00\x00").expect("parse");
        assert!(!ok.needs_rewrite());
    }

    #[test]
    fn truncated_blocks_are_errors() {
        assert!(parse_tracked_ok(&SET_NAMES[..SET_NAMES.len() - 3]).is_err());
        assert!(parse_tracked_ok(b"\x00\x00\x00\x02\x40\x00\x00\x00\x09\x01").is_err());
        assert!(parse_tracked_ok(b"\xff").is_err());
    }
}
