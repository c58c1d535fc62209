//! The first packet a client sends: it has no tag, only a length and a code.
//!
//! Spec: "StartupMessage", "SSLRequest", "GSSENCRequest", "CancelRequest" in
//! <https://www.postgresql.org/docs/15/protocol-message-formats.html>.

use super::{read_cstr, CodecError};
use bytes::{Buf, BytesMut};

const SSL_REQUEST_CODE: u32 = 80_877_103;
const GSSENC_REQUEST_CODE: u32 = 80_877_104;
const CANCEL_REQUEST_CODE: u32 = 80_877_102;
/// Largest startup packet accepted (PostgreSQL itself uses 10000).
pub const MAX_STARTUP_LEN: usize = 10_000;

/// One decoded startup-phase packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel { process_id: u32, secret_key: u32 },
    Startup(StartupParams),
}

/// The parameters of a StartupMessage, in the order the client sent them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StartupParams {
    pub minor_version: u16,
    pub params: Vec<(String, String)>,
}

impl StartupParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn user(&self) -> Option<&str> {
        self.get("user")
    }
    /// The database; PostgreSQL defaults it to the user name.
    pub fn database(&self) -> Option<&str> {
        // As the server: an empty database name means the user's.
        self.get("database")
            .filter(|d| !d.is_empty())
            .or_else(|| self.user())
    }
}

/// Decodes one startup packet; `Ok(None)` means more bytes are needed.
pub fn decode_startup(buf: &mut BytesMut) -> Result<Option<StartupPacket>, CodecError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(8..=MAX_STARTUP_LEN).contains(&len) {
        return Err(CodecError::BadLength {
            len,
            max: MAX_STARTUP_LEN,
        });
    }
    if buf.len() < len {
        return Ok(None);
    }
    let code = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let packet = buf.split_to(len);
    let body = &packet[8..];
    match code {
        SSL_REQUEST_CODE if len == 8 => Ok(Some(StartupPacket::SslRequest)),
        GSSENC_REQUEST_CODE if len == 8 => Ok(Some(StartupPacket::GssEncRequest)),
        CANCEL_REQUEST_CODE if len == 16 => {
            let mut b = body;
            Ok(Some(StartupPacket::Cancel {
                process_id: b.get_u32(),
                secret_key: b.get_u32(),
            }))
        }
        SSL_REQUEST_CODE | GSSENC_REQUEST_CODE | CANCEL_REQUEST_CODE => {
            Err(CodecError::Malformed { what: "startup" })
        }
        _ => {
            let major = (code >> 16) as u16;
            let minor = (code & 0xffff) as u16;
            if major != 3 {
                return Err(CodecError::UnsupportedVersion { major, minor });
            }
            Ok(Some(StartupPacket::Startup(parse_params(body, minor)?)))
        }
    }
}

fn parse_params(mut body: &[u8], minor_version: u16) -> Result<StartupParams, CodecError> {
    let mut params = Vec::new();
    loop {
        match body.first() {
            None => return Err(CodecError::Malformed { what: "startup" }),
            Some(0) => break,
            Some(_) => {
                let (k, rest) = read_cstr(body, "startup")?;
                let (v, rest) = read_cstr(rest, "startup")?;
                params.push((k.to_owned(), v.to_owned()));
                body = rest;
            }
        }
    }
    Ok(StartupParams {
        minor_version,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn startup_bytes(params: &[(&str, &str)]) -> BytesMut {
        let mut body = BytesMut::new();
        body.put_u32(196_608);
        for (k, v) in params {
            body.put_slice(k.as_bytes());
            body.put_u8(0);
            body.put_slice(v.as_bytes());
            body.put_u8(0);
        }
        body.put_u8(0);
        let mut out = BytesMut::new();
        out.put_u32(body.len() as u32 + 4);
        out.put_slice(&body);
        out
    }

    #[test]
    fn decodes_startup_params_and_defaults_database_to_user() {
        let mut buf = startup_bytes(&[("user", "app"), ("application_name", "psql")]);
        let Some(StartupPacket::Startup(p)) = decode_startup(&mut buf).expect("valid") else {
            panic!("not a startup")
        };
        assert_eq!(p.user(), Some("app"));
        assert_eq!(p.database(), Some("app"));
        assert_eq!(p.get("application_name"), Some("psql"));
        assert!(buf.is_empty());
        let mut buf = startup_bytes(&[("user", "app"), ("database", "")]);
        let Some(StartupPacket::Startup(p)) = decode_startup(&mut buf).expect("valid") else {
            panic!("not a startup")
        };
        assert_eq!(
            p.database(),
            Some("app"),
            "an empty name is the user's, as the server"
        );
    }

    #[test]
    fn waits_for_whole_packet() {
        let full = startup_bytes(&[("user", "app")]);
        let mut part = BytesMut::from(&full[..full.len() - 1]);
        assert_eq!(decode_startup(&mut part), Ok(None));
    }

    #[test]
    fn ssl_and_cancel_requests() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f][..]);
        assert_eq!(
            decode_startup(&mut buf),
            Ok(Some(StartupPacket::SslRequest))
        );
        let mut buf = BytesMut::new();
        buf.put_u32(16);
        buf.put_u32(CANCEL_REQUEST_CODE);
        buf.put_u32(7);
        buf.put_u32(9);
        assert_eq!(
            decode_startup(&mut buf),
            Ok(Some(StartupPacket::Cancel {
                process_id: 7,
                secret_key: 9
            }))
        );
    }

    #[test]
    fn rejects_oversized_and_bad_versions() {
        let mut buf = BytesMut::new();
        buf.put_u32(1_000_000);
        buf.put_u32(196_608);
        assert!(matches!(
            decode_startup(&mut buf),
            Err(CodecError::BadLength { .. })
        ));
        let mut buf = BytesMut::new();
        buf.put_u32(9);
        buf.put_u32(2 << 16);
        buf.put_u8(0);
        assert!(matches!(
            decode_startup(&mut buf),
            Err(CodecError::UnsupportedVersion { major: 2, .. })
        ));
    }

    #[test]
    fn rejects_unterminated_params() {
        let mut buf = BytesMut::new();
        buf.put_u32(13);
        buf.put_u32(196_608);
        buf.put_slice(b"user");
        buf.put_u8(0);
        assert!(decode_startup(&mut buf).is_err());
    }
}
