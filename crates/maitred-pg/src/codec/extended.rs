//! Reading and rewriting the statement names of extended-query messages, so that client
//! statement names can be mapped to maitred's server-side names.
//!
//! Spec: "Parse", "Bind", "Describe", "Close" in
//! <https://www.postgresql.org/docs/15/protocol-message-formats.html>.

use super::{frame, read_cstr, CodecError};
use bytes::{BufMut, BytesMut};

/// A Parse message split into the statement name and everything after it (query text and
/// parameter types), which is what identifies the statement.
#[derive(Debug, PartialEq, Eq)]
pub struct ParseParts<'a> {
    pub name: &'a str,
    pub definition: &'a [u8],
}

pub fn split_parse(msg: &[u8]) -> Result<ParseParts<'_>, CodecError> {
    let (name, definition) = read_cstr(frame::body(msg), "Parse")?;
    // The definition must at least hold the query's terminator and the parameter count.
    if definition.len() < 3 {
        return Err(CodecError::Malformed { what: "Parse" });
    }
    Ok(ParseParts { name, definition })
}

/// The query text of a Parse definition (what follows the statement name), if it is UTF-8.
pub fn parse_query_text(definition: &[u8]) -> Option<&str> {
    let end = definition.iter().position(|b| *b == 0)?;
    std::str::from_utf8(&definition[..end]).ok()
}

/// Writes a Parse message for `name` with a definition taken from a client's Parse.
pub fn write_parse(out: &mut BytesMut, name: &str, definition: &[u8]) {
    out.put_u8(b'P');
    out.put_u32((4 + name.len() + 1 + definition.len()) as u32);
    out.put_slice(name.as_bytes());
    out.put_u8(0);
    out.put_slice(definition);
}

/// The statement name a Bind refers to.
pub fn bind_statement(msg: &[u8]) -> Result<&str, CodecError> {
    bind_names(msg).map(|(_portal, stmt)| stmt)
}

/// The portal and statement names of a Bind.
pub fn bind_names(msg: &[u8]) -> Result<(&str, &str), CodecError> {
    let (portal, rest) = read_cstr(frame::body(msg), "Bind")?;
    read_cstr(rest, "Bind").map(|(stmt, _)| (portal, stmt))
}

/// Writes `msg` (a Bind) with its statement name replaced by `name`.
pub fn write_bind_renamed(out: &mut BytesMut, msg: &[u8], name: &str) -> Result<(), CodecError> {
    let body = frame::body(msg);
    let (portal, rest) = read_cstr(body, "Bind")?;
    let (_old, rest) = read_cstr(rest, "Bind")?;
    out.put_u8(b'B');
    out.put_u32((4 + portal.len() + 1 + name.len() + 1 + rest.len()) as u32);
    out.put_slice(portal.as_bytes());
    out.put_u8(0);
    out.put_slice(name.as_bytes());
    out.put_u8(0);
    out.put_slice(rest);
    Ok(())
}

/// The portal an Execute runs.
pub fn execute_portal(msg: &[u8]) -> Result<&str, CodecError> {
    read_cstr(frame::body(msg), "Execute").map(|(p, _)| p)
}

/// What a Describe or Close message targets.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Target<'a> {
    Statement(&'a str),
    Portal(&'a str),
}

/// The target of a Describe ('D') or Close ('C') message.
pub fn describe_or_close_target(msg: &[u8]) -> Result<Target<'_>, CodecError> {
    let body = frame::body(msg);
    let (&kind, rest) = body.split_first().ok_or(CodecError::Malformed {
        what: "Describe/Close",
    })?;
    let (name, _) = read_cstr(rest, "Describe/Close")?;
    match kind {
        b'S' => Ok(Target::Statement(name)),
        b'P' => Ok(Target::Portal(name)),
        _ => Err(CodecError::Malformed {
            what: "Describe/Close",
        }),
    }
}

/// Writes a Describe ('D') or Close ('C') of a statement.
pub fn write_statement_target(out: &mut BytesMut, tag: u8, name: &str) {
    out.put_u8(tag);
    out.put_u32((4 + 1 + name.len() + 1) as u32);
    out.put_u8(b'S');
    out.put_slice(name.as_bytes());
    out.put_u8(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::message::frontend;

    #[test]
    fn parse_round_trip_with_new_name() {
        let mut msg = BytesMut::new();
        frontend::parse("s1", "select $1::int", [23u32], &mut msg).expect("parse");
        let parts = split_parse(&msg).expect("split");
        assert_eq!(parts.name, "s1");
        assert_eq!(parse_query_text(parts.definition), Some("select $1::int"));
        let mut out = BytesMut::new();
        write_parse(&mut out, "mtd_7", parts.definition);
        let mut expected = BytesMut::new();
        frontend::parse("mtd_7", "select $1::int", [23u32], &mut expected).expect("parse");
        assert_eq!(out, expected);
    }

    #[test]
    fn bind_rename_matches_a_bind_built_with_that_name() {
        let mut msg = BytesMut::new();
        frontend::bind(
            "p",
            "s1",
            [1i16],
            [Some(b"42".to_vec())],
            |v, buf| {
                buf.put_slice(v.as_deref().unwrap_or_default());
                Ok(postgres_protocol::IsNull::No)
            },
            [0i16],
            &mut msg,
        )
        .map_err(|_| ())
        .expect("bind");
        assert_eq!(bind_statement(&msg), Ok("s1"));
        let mut out = BytesMut::new();
        write_bind_renamed(&mut out, &msg, "mtd_9").expect("rename");
        assert_eq!(bind_statement(&out), Ok("mtd_9"));
        assert_eq!(&out[out.len() - 10..], &msg[msg.len() - 10..]);
        let (_, len) = frame::peek_header(&out, 1 << 20)
            .expect("ok")
            .expect("header");
        assert_eq!(len, out.len());
    }

    #[test]
    fn describe_and_close_targets() {
        let mut msg = BytesMut::new();
        frontend::describe(b'S', "s1", &mut msg).expect("describe");
        assert_eq!(describe_or_close_target(&msg), Ok(Target::Statement("s1")));
        let mut out = BytesMut::new();
        write_statement_target(&mut out, b'D', "s1");
        assert_eq!(out, msg);
        msg.clear();
        frontend::close(b'P', "", &mut msg).expect("close");
        assert_eq!(describe_or_close_target(&msg), Ok(Target::Portal("")));
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(split_parse(b"P\0\0\0\x06s\0").is_err());
        assert!(bind_statement(b"B\0\0\0\x06p\0").is_err());
        assert!(describe_or_close_target(b"D\0\0\0\x06X\0").is_err());
    }
}
