//! Messages maitred writes to clients as if it were the server.
//!
//! Spec: "Authentication*", "ParameterStatus", "BackendKeyData", "ReadyForQuery",
//! "ErrorResponse", "NegotiateProtocolVersion" in
//! <https://www.postgresql.org/docs/15/protocol-message-formats.html> and the error fields in
//! <https://www.postgresql.org/docs/15/protocol-error-fields.html>.

use bytes::{BufMut, BytesMut};

/// Writes `tag`, a length placeholder, calls `body`, then patches the length.
fn message(out: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    out.put_u8(tag);
    let at = out.len();
    out.put_u32(0);
    body(out);
    let len = (out.len() - at) as u32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn cstr(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

pub fn authentication_ok(out: &mut BytesMut) {
    message(out, b'R', |b| b.put_u32(0));
}

pub fn authentication_cleartext(out: &mut BytesMut) {
    message(out, b'R', |b| b.put_u32(3));
}

pub fn authentication_md5(out: &mut BytesMut, salt: [u8; 4]) {
    message(out, b'R', |b| {
        b.put_u32(5);
        b.put_slice(&salt);
    });
}

/// AuthenticationSASL offering the given mechanisms.
pub fn authentication_sasl(out: &mut BytesMut, mechanisms: &[&str]) {
    message(out, b'R', |b| {
        b.put_u32(10);
        for m in mechanisms {
            cstr(b, m);
        }
        b.put_u8(0);
    });
}

pub fn authentication_sasl_continue(out: &mut BytesMut, data: &[u8]) {
    message(out, b'R', |b| {
        b.put_u32(11);
        b.put_slice(data);
    });
}

pub fn authentication_sasl_final(out: &mut BytesMut, data: &[u8]) {
    message(out, b'R', |b| {
        b.put_u32(12);
        b.put_slice(data);
    });
}

pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    message(out, b'S', |b| {
        cstr(b, name);
        cstr(b, value);
    });
}

pub fn backend_key_data(out: &mut BytesMut, process_id: u32, secret_key: u32) {
    message(out, b'K', |b| {
        b.put_u32(process_id);
        b.put_u32(secret_key);
    });
}

pub fn command_complete(out: &mut BytesMut, tag: &str) {
    message(out, b'C', |b| cstr(b, tag));
}

pub fn parse_complete(out: &mut BytesMut) {
    message(out, b'1', |_| {});
}

pub fn close_complete(out: &mut BytesMut) {
    message(out, b'3', |_| {});
}

pub fn ready_for_query(out: &mut BytesMut, status: u8) {
    message(out, b'Z', |b| b.put_u8(status));
}

/// NegotiateProtocolVersion: the newest minor version we support and the options we ignored.
pub fn negotiate_protocol_version(out: &mut BytesMut, newest_minor: u32, unrecognized: &[&str]) {
    message(out, b'v', |b| {
        b.put_u32(newest_minor);
        b.put_u32(unrecognized.len() as u32);
        for o in unrecognized {
            cstr(b, o);
        }
    });
}

/// Severity of an ErrorResponse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the session goes on.
    Error,
    /// The session ends after this message.
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

/// An ErrorResponse as maitred composes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields<'a> {
    pub severity: Severity,
    pub code: &'a str,
    pub message: &'a str,
    pub detail: Option<&'a str>,
    pub hint: Option<&'a str>,
}

pub fn error_response(out: &mut BytesMut, e: &ErrorFields<'_>) {
    message(out, b'E', |b| {
        b.put_u8(b'S');
        cstr(b, e.severity.as_str());
        b.put_u8(b'V');
        cstr(b, e.severity.as_str());
        b.put_u8(b'C');
        cstr(b, e.code);
        b.put_u8(b'M');
        cstr(b, e.message);
        if let Some(d) = e.detail {
            b.put_u8(b'D');
            cstr(b, d);
        }
        if let Some(h) = e.hint {
            b.put_u8(b'H');
            cstr(b, h);
        }
        b.put_u8(0);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_for_query_bytes() {
        let mut out = BytesMut::new();
        ready_for_query(&mut out, b'I');
        assert_eq!(&out[..], b"Z\0\0\0\x05I");
    }

    #[test]
    fn authentication_ok_bytes() {
        let mut out = BytesMut::new();
        authentication_ok(&mut out);
        assert_eq!(&out[..], b"R\0\0\0\x08\0\0\0\0");
    }

    #[test]
    fn sasl_offer_bytes() {
        let mut out = BytesMut::new();
        authentication_sasl(&mut out, &["SCRAM-SHA-256"]);
        assert_eq!(&out[..], b"R\0\0\0\x17\0\0\0\x0aSCRAM-SHA-256\0\0");
    }

    #[test]
    fn parameter_status_and_key_bytes() {
        let mut out = BytesMut::new();
        parameter_status(&mut out, "a", "b");
        backend_key_data(&mut out, 1, 2);
        assert_eq!(
            &out[..],
            b"S\0\0\0\x08a\0b\0K\0\0\0\x0c\0\0\0\x01\0\0\0\x02"
        );
    }

    #[test]
    fn error_response_is_parseable_by_postgres_protocol() {
        use fallible_iterator::FallibleIterator;
        use postgres_protocol::message::backend::Message;
        let mut out = BytesMut::new();
        error_response(
            &mut out,
            &ErrorFields {
                severity: Severity::Fatal,
                code: "28P01",
                message: "password authentication failed for user \"app\"",
                detail: None,
                hint: Some("check the password"),
            },
        );
        let Some(Message::ErrorResponse(body)) = Message::parse(&mut out).expect("parses") else {
            panic!("not an error response")
        };
        let fields: Vec<(u8, String)> = body
            .fields()
            .map(|f| {
                Ok((
                    f.type_(),
                    String::from_utf8_lossy(f.value_bytes()).into_owned(),
                ))
            })
            .collect()
            .expect("fields");
        assert!(fields.contains(&(b'C', "28P01".to_owned())));
        assert!(fields.contains(&(b'S', "FATAL".to_owned())));
        assert!(fields.contains(&(b'H', "check the password".to_owned())));
    }
}
