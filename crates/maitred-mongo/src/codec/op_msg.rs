//! OP_MSG (opcode 2013).
//!
//! ```text
//! header; uint32 flagBits; sections: (kind 0: one BSON body | kind 1: int32 size,
//! cstring identifier, BSON documents)*; optional uint32 CRC-32C checksum
//! ```
//!
//! Spec: <https://github.com/mongodb/specifications/blob/master/source/message/OP_MSG.md>.

use super::header::{i32_at, patch_length, u32_at, Header, OpCode, HEADER_LEN};
use super::CodecError;
use bson::RawDocument;
use bytes::{BufMut, BytesMut};

pub const CHECKSUM_PRESENT: u32 = 1 << 0;
pub const MORE_TO_COME: u32 = 1 << 1;
pub const EXHAUST_ALLOWED: u32 = 1 << 16;
/// Bits 0-15 are required: a receiver must refuse unknown ones.
const KNOWN_REQUIRED: u32 = CHECKSUM_PRESENT | MORE_TO_COME;

/// A parsed OP_MSG, borrowing the message bytes.
#[derive(Debug)]
pub struct OpMsg<'a> {
    pub flags: u32,
    /// The kind-0 section: the command (or reply) document.
    pub body: &'a RawDocument,
    /// Kind-1 sections: (identifier, documents).
    pub sequences: Vec<(&'a str, Vec<&'a RawDocument>)>,
}

impl OpMsg<'_> {
    pub fn more_to_come(&self) -> bool {
        self.flags & MORE_TO_COME != 0
    }

    pub fn exhaust_allowed(&self) -> bool {
        self.flags & EXHAUST_ALLOWED != 0
    }

    /// The command name: the body's first key.
    pub fn command_name(&self) -> Option<&str> {
        self.body.iter().next().and_then(|e| e.ok()).map(|(k, _)| k)
    }
}

/// Parses a whole OP_MSG (header included). Verifies the checksum if one is present.
pub fn parse(msg: &[u8]) -> Result<OpMsg<'_>, CodecError> {
    if msg.len() < HEADER_LEN + 4 {
        return Err(CodecError::Malformed("OP_MSG: too short"));
    }
    let flags = u32_at(msg, HEADER_LEN);
    if flags & 0xffff & !KNOWN_REQUIRED != 0 {
        return Err(CodecError::UnknownRequiredFlags(
            flags & 0xffff & !KNOWN_REQUIRED,
        ));
    }
    let mut end = msg.len();
    if flags & CHECKSUM_PRESENT != 0 {
        if msg.len() < HEADER_LEN + 8 {
            return Err(CodecError::Malformed("OP_MSG: checksum missing"));
        }
        end -= 4;
        if crc32c::crc32c(&msg[..end]) != u32_at(msg, end) {
            return Err(CodecError::Checksum);
        }
    }
    let mut at = HEADER_LEN + 4;
    let mut body = None;
    let mut sequences = Vec::new();
    while at < end {
        let kind = msg[at];
        at += 1;
        match kind {
            0 => {
                if body.is_some() {
                    return Err(CodecError::Malformed("OP_MSG: two body sections"));
                }
                let (doc, len) = doc_at(msg, at, end)?;
                body = Some(doc);
                at += len;
            }
            1 => {
                if at + 4 > end {
                    return Err(CodecError::Malformed("OP_MSG: sequence size"));
                }
                let size = i32_at(msg, at);
                if size < 5 || at + size as usize > end {
                    return Err(CodecError::Malformed("OP_MSG: sequence size"));
                }
                let seq_end = at + size as usize;
                let mut p = at + 4;
                let nul = msg[p..seq_end]
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or(CodecError::Malformed("OP_MSG: sequence identifier"))?;
                let ident = std::str::from_utf8(&msg[p..p + nul])
                    .map_err(|_| CodecError::Malformed("OP_MSG: sequence identifier"))?;
                p += nul + 1;
                let mut docs = Vec::new();
                while p < seq_end {
                    let (doc, len) = doc_at(msg, p, seq_end)?;
                    docs.push(doc);
                    p += len;
                }
                sequences.push((ident, docs));
                at = seq_end;
            }
            _ => return Err(CodecError::Malformed("OP_MSG: unknown section kind")),
        }
    }
    let body = body.ok_or(CodecError::Malformed("OP_MSG: no body section"))?;
    Ok(OpMsg {
        flags,
        body,
        sequences,
    })
}

fn doc_at(msg: &[u8], at: usize, end: usize) -> Result<(&RawDocument, usize), CodecError> {
    if at + 5 > end {
        return Err(CodecError::Malformed("OP_MSG: document"));
    }
    let len = i32_at(msg, at);
    if len < 5 || at + len as usize > end {
        return Err(CodecError::Malformed("OP_MSG: document length"));
    }
    let doc = RawDocument::from_bytes(&msg[at..at + len as usize])
        .map_err(|_| CodecError::Bson("OP_MSG section"))?;
    Ok((doc, len as usize))
}

/// Appends an OP_MSG with one body section and no checksum.
pub fn encode(out: &mut BytesMut, request_id: i32, response_to: i32, flags: u32, body: &[u8]) {
    let start = out.len();
    Header {
        length: 0,
        request_id,
        response_to,
        op_code: OpCode::Msg,
    }
    .encode(out);
    out.put_u32_le(flags & !CHECKSUM_PRESENT);
    out.put_u8(0);
    out.extend_from_slice(body);
    patch_length(out, start);
}

/// Clears `bits` in the flags of a whole OP_MSG in place. A checksum, which would no longer
/// match, is dropped (the flag cleared, the trailer cut and the length patched).
pub fn clear_flags(msg: &mut BytesMut, bits: u32) {
    if msg.len() < HEADER_LEN + 4 {
        return;
    }
    let mut flags = u32_at(msg, HEADER_LEN) & !bits;
    if flags & CHECKSUM_PRESENT != 0 && msg.len() >= HEADER_LEN + 8 {
        flags &= !CHECKSUM_PRESENT;
        msg.truncate(msg.len() - 4);
        patch_length(msg, 0);
    }
    msg[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&flags.to_le_bytes());
}

/// Appends the CRC-32C trailer to an OP_MSG built without one and sets the flag.
pub fn add_checksum(msg: &mut BytesMut) {
    let flags = u32_at(msg, HEADER_LEN) | CHECKSUM_PRESENT;
    msg[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&flags.to_le_bytes());
    let new_len = (msg.len() + 4) as i32;
    msg[0..4].copy_from_slice(&new_len.to_le_bytes());
    let crc = crc32c::crc32c(msg);
    msg.put_u32_le(crc);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    fn ping() -> BytesMut {
        let mut b = BytesMut::new();
        let body = rawdoc! { "ping": 1, "$db": "admin" };
        encode(&mut b, 7, 0, 0, body.as_bytes());
        b
    }

    #[test]
    fn encodes_byte_exact() {
        let b = ping();
        let body = rawdoc! { "ping": 1, "$db": "admin" };
        let mut want = Vec::new();
        want.extend_from_slice(&((21 + body.as_bytes().len()) as i32).to_le_bytes());
        want.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0x07, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(body.as_bytes());
        assert_eq!(&b[..], &want[..]);
    }

    #[test]
    fn parses_body_and_sequences() {
        let body = rawdoc! { "insert": "c", "$db": "app" };
        let d1 = rawdoc! { "_id": 1 };
        let d2 = rawdoc! { "_id": 2 };
        let mut b = BytesMut::new();
        encode(&mut b, 1, 0, EXHAUST_ALLOWED, body.as_bytes());
        b.put_u8(1);
        let size = 4 + "documents".len() + 1 + d1.as_bytes().len() + d2.as_bytes().len();
        b.put_i32_le(size as i32);
        b.extend_from_slice(b"documents\0");
        b.extend_from_slice(d1.as_bytes());
        b.extend_from_slice(d2.as_bytes());
        patch_length(&mut b, 0);
        let m = parse(&b).expect("parse");
        assert_eq!(m.command_name(), Some("insert"));
        assert!(m.exhaust_allowed());
        assert!(!m.more_to_come());
        assert_eq!(m.sequences.len(), 1);
        assert_eq!(m.sequences[0].0, "documents");
        assert_eq!(m.sequences[0].1.len(), 2);
    }

    #[test]
    fn checksum_is_verified_and_dropped_on_rewrite() {
        let mut b = ping();
        add_checksum(&mut b);
        let m = parse(&b).expect("valid checksum");
        assert_eq!(m.flags & CHECKSUM_PRESENT, CHECKSUM_PRESENT);
        let mut bad = b.clone();
        let n = bad.len();
        bad[n - 5] ^= 1;
        assert!(parse(&bad).is_err());
        let mut stripped = b.clone();
        let old = stripped[HEADER_LEN];
        stripped[HEADER_LEN] = old | ((EXHAUST_ALLOWED >> 16) as u8);
        clear_flags(&mut stripped, EXHAUST_ALLOWED);
        assert_eq!(&stripped[..], &ping()[..]);
    }

    #[test]
    fn rejects_malformed() {
        let mut b = ping();
        b[HEADER_LEN] = 4; // unknown required bit
        assert!(matches!(
            parse(&b),
            Err(CodecError::UnknownRequiredFlags(4))
        ));
        let mut b = ping();
        b[HEADER_LEN + 4] = 9;
        assert!(parse(&b).is_err());
        let b = ping();
        assert!(parse(&b[..b.len() - 1]).is_err());
    }
}
