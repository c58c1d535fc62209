//! The few client messages maitred reads rather than relays.
//!
//! Spec: "PasswordMessage", "SASLInitialResponse", "SASLResponse", "Parse", "Close".

use super::{frame, read_cstr, CodecError};

/// Tags of client (frontend) messages that matter to the relay.
pub mod tag {
    pub const QUERY: u8 = b'Q';
    pub const PARSE: u8 = b'P';
    pub const BIND: u8 = b'B';
    pub const DESCRIBE: u8 = b'D';
    pub const EXECUTE: u8 = b'E';
    pub const CLOSE: u8 = b'C';
    pub const FLUSH: u8 = b'H';
    pub const SYNC: u8 = b'S';
    pub const FUNCTION_CALL: u8 = b'F';
    pub const TERMINATE: u8 = b'X';
    pub const PASSWORD: u8 = b'p';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const COPY_FAIL: u8 = b'f';
}

/// SASLInitialResponse: the mechanism and the client-first message.
#[derive(Debug, PartialEq, Eq)]
pub struct SaslInitial<'a> {
    pub mechanism: &'a str,
    pub data: &'a [u8],
}

/// Parses a whole SASLInitialResponse message (tag 'p').
pub fn sasl_initial(msg: &[u8]) -> Result<SaslInitial<'_>, CodecError> {
    const WHAT: &str = "SASLInitialResponse";
    let (mechanism, rest) = read_cstr(frame::body(msg), WHAT)?;
    if rest.len() < 4 {
        return Err(CodecError::Malformed { what: WHAT });
    }
    let n = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let data = &rest[4..];
    if n < 0 || n as usize != data.len() {
        return Err(CodecError::Malformed { what: WHAT });
    }
    Ok(SaslInitial { mechanism, data })
}

/// The body of a SASLResponse or PasswordMessage (tag 'p'), which is all payload.
pub fn password_payload(msg: &[u8]) -> &[u8] {
    frame::body(msg)
}

/// The password text of a PasswordMessage (NUL-terminated string).
pub fn password_text(msg: &[u8]) -> Result<&str, CodecError> {
    read_cstr(frame::body(msg), "PasswordMessage").map(|(s, _)| s)
}

/// The statement name of a Parse message ("" is the unnamed statement).
pub fn parse_statement_name(msg: &[u8]) -> Result<&str, CodecError> {
    read_cstr(frame::body(msg), "Parse").map(|(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sasl_initial() {
        let mut msg = vec![b'p', 0, 0, 0, 0];
        msg.extend_from_slice(b"SCRAM-SHA-256\0");
        msg.extend_from_slice(&3i32.to_be_bytes());
        msg.extend_from_slice(b"abc");
        let len = (msg.len() - 1) as u32;
        msg[1..5].copy_from_slice(&len.to_be_bytes());
        let s = sasl_initial(&msg).expect("valid");
        assert_eq!(s.mechanism, "SCRAM-SHA-256");
        assert_eq!(s.data, b"abc");
    }

    #[test]
    fn rejects_sasl_initial_with_wrong_length() {
        let mut msg = vec![b'p', 0, 0, 0, 0];
        msg.extend_from_slice(b"SCRAM-SHA-256\0");
        msg.extend_from_slice(&9i32.to_be_bytes());
        msg.extend_from_slice(b"abc");
        assert!(sasl_initial(&msg).is_err());
    }

    #[test]
    fn reads_parse_statement_name() {
        let msg = b"P\0\0\0\x10s1\0select 1\0";
        assert_eq!(parse_statement_name(msg), Ok("s1"));
    }
}
