//! The packets maitred reads or writes itself. Handshake packets are built and parsed with
//! `mysql_common`; OK/ERR/EOF are small enough to scan here without copying.
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_response_packets.html>
//! and <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_packets.html>.

use super::{cap, CodecError};
use bytes::BytesMut;
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, HandshakePacket, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};

/// First byte of an OK packet.
pub const OK: u8 = 0x00;
/// First byte of an ERR packet.
pub const ERR: u8 = 0xff;
/// First byte of an EOF packet (or of an auth switch request during login).
pub const EOF: u8 = 0xfe;
/// First byte of a LOCAL INFILE request in a query response.
pub const LOCAL_INFILE: u8 = 0xfb;
/// First byte of "more authentication data" during login.
pub const AUTH_MORE_DATA: u8 = 0x01;

/// Whether a payload is an EOF packet (0xFE and shorter than 9 bytes: a row can start with
/// 0xFE only as a length-encoded 8-byte length, which makes it at least 9 bytes long).
pub fn is_eof(payload: &[u8]) -> bool {
    payload.first() == Some(&EOF) && payload.len() < 9
}

/// Reads a length-encoded integer at `*pos`.
pub fn read_lenenc(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *buf.get(*pos)?;
    let (len, value) = match first {
        0..=0xfa => (1, u64::from(first)),
        0xfc => (3, le(buf.get(*pos + 1..*pos + 3)?)),
        0xfd => (4, le(buf.get(*pos + 1..*pos + 4)?)),
        0xfe => (9, le(buf.get(*pos + 1..*pos + 9)?)),
        _ => return None,
    };
    *pos += len;
    Some(value)
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// Appends a length-encoded integer.
pub fn put_lenenc(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0xfa => out.push(v as u8),
        0xfb..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// The fields of an OK packet maitred acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OkInfo {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: u16,
    pub warnings: u16,
}

/// Parses the head of an OK packet (PROTOCOL_41).
pub fn parse_ok(payload: &[u8]) -> Result<OkInfo, CodecError> {
    let bad = CodecError::Malformed("OK");
    if payload.first() != Some(&OK) && payload.first() != Some(&EOF) {
        return Err(bad);
    }
    let mut pos = 1;
    let affected_rows = read_lenenc(payload, &mut pos).ok_or(bad.clone())?;
    let last_insert_id = read_lenenc(payload, &mut pos).ok_or(bad.clone())?;
    let s = payload.get(pos..pos + 4).ok_or(bad)?;
    Ok(OkInfo {
        affected_rows,
        last_insert_id,
        status: u16::from_le_bytes([s[0], s[1]]),
        warnings: u16::from_le_bytes([s[2], s[3]]),
    })
}

/// The status flags of an EOF packet (0xFE, warnings, status).
pub fn eof_status(payload: &[u8]) -> Result<u16, CodecError> {
    match payload {
        [EOF, _, _, a, b, ..] => Ok(u16::from_le_bytes([*a, *b])),
        _ => Err(CodecError::Malformed("EOF")),
    }
}

/// An ERR packet's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrInfo {
    pub code: u16,
    pub sqlstate: String,
    pub message: String,
}

impl std::fmt::Display for ErrInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ERROR {} ({}): {}",
            self.code, self.sqlstate, self.message
        )
    }
}

/// Parses an ERR packet (PROTOCOL_41: the SQLSTATE marker '#' is optional).
pub fn parse_err(payload: &[u8]) -> Result<ErrInfo, CodecError> {
    let [ERR, a, b, rest @ ..] = payload else {
        return Err(CodecError::Malformed("ERR"));
    };
    let (sqlstate, msg) = match rest {
        [b'#', s @ ..] if s.len() >= 5 => (&s[..5], &s[5..]),
        _ => (&b"HY000"[..], rest),
    };
    Ok(ErrInfo {
        code: u16::from_le_bytes([*a, *b]),
        sqlstate: String::from_utf8_lossy(sqlstate).into_owned(),
        message: String::from_utf8_lossy(msg).into_owned(),
    })
}

/// Appends an OK packet.
pub fn write_ok(out: &mut BytesMut, seq: u8, ok: &OkInfo) {
    let mut p = Vec::with_capacity(16);
    p.push(OK);
    put_lenenc(&mut p, ok.affected_rows);
    put_lenenc(&mut p, ok.last_insert_id);
    p.extend_from_slice(&ok.status.to_le_bytes());
    p.extend_from_slice(&ok.warnings.to_le_bytes());
    super::frame::write_packet(out, seq, &p);
}

/// Appends an ERR packet.
pub fn write_err(out: &mut BytesMut, seq: u8, code: u16, sqlstate: &str, message: &str) {
    let mut p = Vec::with_capacity(9 + message.len());
    p.push(ERR);
    p.extend_from_slice(&code.to_le_bytes());
    p.push(b'#');
    let mut state = [b'H', b'Y', b'0', b'0', b'0'];
    for (d, s) in state.iter_mut().zip(sqlstate.bytes()) {
        *d = s;
    }
    p.extend_from_slice(&state);
    p.extend_from_slice(message.as_bytes());
    super::frame::write_packet(out, seq, &p);
}

/// Appends an EOF packet.
pub fn write_eof(out: &mut BytesMut, seq: u8, status: u16) {
    let mut p = [EOF, 0, 0, 0, 0];
    p[3..5].copy_from_slice(&status.to_le_bytes());
    super::frame::write_packet(out, seq, &p);
}

/// What maitred learns from a server's initial handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerGreeting {
    pub server_version: String,
    pub connection_id: u32,
    pub capabilities: u32,
    pub collation: u8,
    pub status: u16,
    /// The 20-byte (or longer) nonce for the auth plugin.
    pub nonce: Vec<u8>,
    pub auth_plugin: Vec<u8>,
}

/// Parses a server's Handshake v10 (ERR packets must be checked before).
pub fn parse_greeting(payload: &[u8]) -> Result<ServerGreeting, CodecError> {
    if payload.first() != Some(&10) {
        return Err(CodecError::Malformed("handshake v10"));
    }
    let hs = HandshakePacket::deserialize((), &mut ParseBuf(payload))
        .map_err(|_| CodecError::Malformed("handshake v10"))?;
    Ok(ServerGreeting {
        server_version: hs.server_version_str().into_owned(),
        connection_id: hs.connection_id(),
        capabilities: hs.capabilities().bits(),
        collation: hs.default_collation(),
        status: hs.status_flags().bits(),
        nonce: hs.nonce(),
        auth_plugin: hs.auth_plugin_name_ref().unwrap_or_default().to_vec(),
    })
}

/// Builds maitred's own Handshake v10 for a client.
pub fn greeting(
    server_version: &str,
    connection_id: u32,
    scramble: &[u8; 20],
    capabilities: u32,
    collation: u8,
    auth_plugin: &[u8],
) -> Vec<u8> {
    let mut s1 = [0u8; 8];
    s1.copy_from_slice(&scramble[..8]);
    let mut s2 = scramble[8..].to_vec();
    s2.push(0);
    let hs = HandshakePacket::new(
        10,
        server_version.as_bytes(),
        connection_id,
        s1,
        Some(s2),
        CapabilityFlags::from_bits_truncate(capabilities),
        collation,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(auth_plugin),
    );
    let mut out = Vec::with_capacity(128);
    hs.serialize(&mut out);
    out
}

/// What a client sends in its handshake response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    pub capabilities: u32,
    pub max_packet_size: u32,
    pub collation: u8,
    pub user: String,
    pub auth_response: Vec<u8>,
    pub database: Option<String>,
    pub auth_plugin: Option<Vec<u8>>,
}

/// Parses a HandshakeResponse41. An SSL request (a 32-byte response with CLIENT_SSL) and
/// pre-4.1 clients are refused by the caller from [`ClientHello::capabilities`].
pub fn parse_client_hello(payload: &[u8]) -> Result<ClientHello, CodecError> {
    let bad = CodecError::Malformed("handshake response");
    let caps = payload
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(bad.clone())?;
    if caps & cap::PROTOCOL_41 == 0 {
        return Err(CodecError::Malformed(
            "handshake response (pre-4.1 protocol)",
        ));
    }
    if caps & cap::SSL != 0 && payload.len() == 32 {
        return Err(CodecError::Unexpected("login (TLS is not offered)"));
    }
    let r = HandshakeResponse::deserialize((), &mut ParseBuf(payload)).map_err(|_| bad)?;
    Ok(ClientHello {
        capabilities: caps,
        max_packet_size: u32::from_le_bytes(payload[4..8].try_into().unwrap_or([0; 4])),
        collation: r.collation(),
        user: String::from_utf8_lossy(r.user()).into_owned(),
        auth_response: r.scramble_buf().to_vec(),
        database: r
            .db_name()
            .filter(|d| !d.is_empty())
            .map(|d| String::from_utf8_lossy(d).into_owned()),
        auth_plugin: r.auth_plugin().map(|p| p.as_bytes().to_vec()),
    })
}

/// Builds maitred's handshake response to a server.
pub fn client_hello(
    capabilities: u32,
    collation: u8,
    user: &str,
    auth_response: &[u8],
    database: Option<&str>,
    auth_plugin: &[u8],
) -> Vec<u8> {
    let r = HandshakeResponse::new(
        Some(auth_response),
        (10, 0, 0),
        Some(user.as_bytes()),
        database.map(str::as_bytes),
        Some(AuthPlugin::from_bytes(auth_plugin)),
        CapabilityFlags::from_bits_truncate(capabilities),
        None,
        16 * 1024 * 1024,
    );
    let mut out = Vec::with_capacity(128);
    r.serialize(&mut out);
    // HandshakeResponse::new picks the collation from the server version; use ours.
    if let Some(c) = out.get_mut(8) {
        *c = collation;
    }
    out
}

/// The SSL request: the first 32 bytes of a handshake response (capabilities with
/// CLIENT_SSL, maximum packet size, collation, 23 zero bytes), sent before the TLS handshake.
pub fn ssl_request(capabilities: u32, collation: u8) -> Vec<u8> {
    let mut p = Vec::with_capacity(32);
    p.extend_from_slice(&(capabilities | cap::SSL).to_le_bytes());
    p.extend_from_slice(&(16u32 * 1024 * 1024).to_le_bytes());
    p.push(collation);
    p.extend_from_slice(&[0; 23]);
    p
}

/// Whether a client's handshake response is an SSL request (CLIENT_SSL, 32 bytes).
pub fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == 32
        && payload
            .get(..4)
            .is_some_and(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & cap::SSL != 0)
}

/// What maitred reads from COM_CHANGE_USER: user, auth response, database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeUser {
    pub user: String,
    pub auth_response: Vec<u8>,
    pub database: Option<String>,
}

/// Parses COM_CHANGE_USER (0x11, user NUL, auth data with a 1-byte length under
/// SECURE_CONNECTION, database NUL, then fields maitred ignores).
pub fn parse_change_user(payload: &[u8], capabilities: u32) -> Result<ChangeUser, CodecError> {
    let bad = CodecError::Malformed("COM_CHANGE_USER");
    let body = payload.get(1..).ok_or(bad.clone())?;
    let nul = body.iter().position(|b| *b == 0).ok_or(bad.clone())?;
    let user = String::from_utf8_lossy(&body[..nul]).into_owned();
    let mut rest = &body[nul + 1..];
    let auth_response = if capabilities & cap::SECURE_CONNECTION != 0 {
        let n = usize::from(*rest.first().ok_or(bad.clone())?);
        let a = rest.get(1..1 + n).ok_or(bad.clone())?.to_vec();
        rest = &rest[1 + n..];
        a
    } else {
        let end = rest.iter().position(|b| *b == 0).ok_or(bad.clone())?;
        let a = rest[..end].to_vec();
        rest = &rest[end + 1..];
        a
    };
    let database = match rest.iter().position(|b| *b == 0) {
        Some(end) if end > 0 => Some(String::from_utf8_lossy(&rest[..end]).into_owned()),
        None if !rest.is_empty() => Some(String::from_utf8_lossy(rest).into_owned()),
        _ => None,
    };
    Ok(ChangeUser {
        user,
        auth_response,
        database,
    })
}

/// An auth switch request: 0xFE, plugin name, NUL, plugin data.
pub fn parse_auth_switch(payload: &[u8]) -> Result<(Vec<u8>, Vec<u8>), CodecError> {
    let body = payload
        .strip_prefix(&[EOF])
        .ok_or(CodecError::Malformed("auth switch"))?;
    let nul = body
        .iter()
        .position(|b| *b == 0)
        .ok_or(CodecError::Malformed("auth switch"))?;
    let mut data = body[nul + 1..].to_vec();
    if data.last() == Some(&0) {
        data.pop();
    }
    Ok((body[..nul].to_vec(), data))
}

/// Builds an auth switch request.
pub fn auth_switch(plugin: &[u8], data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(2 + plugin.len() + data.len() + 1);
    p.push(EOF);
    p.extend_from_slice(plugin);
    p.push(0);
    p.extend_from_slice(data);
    p.push(0);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_round_trip() {
        for v in [
            0u64,
            250,
            251,
            0xffff,
            0x1_0000,
            0xff_ffff,
            0x100_0000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_lenenc(&mut out, v);
            let mut pos = 0;
            assert_eq!(read_lenenc(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
        assert_eq!(read_lenenc(&[0xfc, 1], &mut 0), None);
        assert_eq!(read_lenenc(&[0xff], &mut 0), None);
    }

    #[test]
    fn ok_err_eof_bytes() {
        let mut out = BytesMut::new();
        let ok = OkInfo {
            affected_rows: 1,
            last_insert_id: 300,
            status: 0x0003,
            warnings: 2,
        };
        write_ok(&mut out, 1, &ok);
        assert_eq!(
            &out[..],
            b"\x09\x00\x00\x01\x00\x01\xfc\x2c\x01\x03\x00\x02\x00"
        );
        assert_eq!(parse_ok(&out[4..]), Ok(ok));

        out.clear();
        write_err(&mut out, 2, 1040, "08004", "Too many");
        assert_eq!(&out[..], b"\x11\x00\x00\x02\xff\x10\x04#08004Too many");
        let e = parse_err(&out[4..]).expect("err");
        assert_eq!(
            (e.code, e.sqlstate.as_str(), e.message.as_str()),
            (1040, "08004", "Too many")
        );

        out.clear();
        write_eof(&mut out, 5, 0x0022);
        assert_eq!(&out[..], b"\x05\x00\x00\x05\xfe\x00\x00\x22\x00");
        assert!(is_eof(&out[4..]));
        assert_eq!(eof_status(&out[4..]), Ok(0x0022));
        assert!(!is_eof(&[0xfe, 1, 2, 3, 4, 5, 6, 7, 8]));
    }

    #[test]
    fn greeting_round_trip() {
        let scramble = *b"abcdefghijklmnopqrst";
        let g = greeting(
            "10.11.0-maitred",
            77,
            &scramble,
            cap::SUPPORTED,
            45,
            b"mysql_native_password",
        );
        let parsed = parse_greeting(&g).expect("parse");
        assert_eq!(parsed.connection_id, 77);
        assert_eq!(parsed.nonce, scramble.to_vec());
        assert_eq!(parsed.auth_plugin, b"mysql_native_password".to_vec());
        assert_eq!(parsed.capabilities, cap::SUPPORTED);
        assert_eq!(parsed.collation, 45);
        assert_eq!(parsed.server_version, "10.11.0-maitred");
    }

    #[test]
    fn client_hello_round_trip() {
        let caps = cap::SERVER_LEG | cap::CONNECT_WITH_DB;
        let p = client_hello(
            caps,
            33,
            "app",
            &[1, 2, 3],
            Some("db1"),
            b"mysql_native_password",
        );
        let h = parse_client_hello(&p).expect("parse");
        assert_eq!(h.user, "app");
        assert_eq!(h.collation, 33);
        assert_eq!(h.auth_response, vec![1, 2, 3]);
        assert_eq!(h.database.as_deref(), Some("db1"));
        assert_eq!(
            h.auth_plugin.as_deref(),
            Some(&b"mysql_native_password"[..])
        );
        assert!(parse_client_hello(&[0, 0, 0, 0]).is_err());
        assert!(parse_client_hello(&[0x00, 0x02, 0, 0, 1]).is_err());
    }

    #[test]
    fn change_user_fields() {
        let p = b"\x11app\x00\x03abcsbtest\x00\x2d\x00mysql_native_password\x00";
        let c = parse_change_user(p, cap::SECURE_CONNECTION).expect("parse");
        assert_eq!(c.user, "app");
        assert_eq!(c.auth_response, b"abc".to_vec());
        assert_eq!(c.database.as_deref(), Some("sbtest"));
        let c = parse_change_user(b"\x11app\x00\x00\x00", cap::SECURE_CONNECTION).expect("parse");
        assert_eq!((c.auth_response.len(), c.database), (0, None));
        assert!(parse_change_user(b"\x11app", cap::SECURE_CONNECTION).is_err());
        assert!(parse_change_user(b"\x11app\x00\x09ab", cap::SECURE_CONNECTION).is_err());
    }

    #[test]
    fn auth_switch_round_trip() {
        let p = auth_switch(b"mysql_native_password", b"01234567890123456789");
        let (plugin, data) = parse_auth_switch(&p).expect("parse");
        assert_eq!(plugin, b"mysql_native_password".to_vec());
        assert_eq!(data, b"01234567890123456789".to_vec());
    }
}
