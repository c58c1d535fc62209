//! OP_QUERY (opcode 2004), which drivers still use for the first hello, and OP_REPLY
//! (opcode 1), the answer to it.
//!
//! Spec: <https://www.mongodb.com/docs/manual/legacy-opcodes/>.

use super::header::{i32_at, patch_length, Header, OpCode, HEADER_LEN};
use super::CodecError;
use bson::RawDocument;
use bytes::{BufMut, BytesMut};

/// A parsed OP_QUERY, borrowing the message bytes.
#[derive(Debug)]
pub struct OpQuery<'a> {
    pub flags: i32,
    pub collection: &'a str,
    pub query: &'a RawDocument,
}

impl OpQuery<'_> {
    /// Whether this is a command (`<db>.$cmd`).
    pub fn is_command(&self) -> bool {
        self.collection.ends_with(".$cmd")
    }

    pub fn database(&self) -> &str {
        self.collection.split('.').next().unwrap_or_default()
    }
}

pub fn parse_query(msg: &[u8]) -> Result<OpQuery<'_>, CodecError> {
    let mut at = HEADER_LEN;
    if msg.len() < at + 4 {
        return Err(CodecError::Malformed("OP_QUERY"));
    }
    let flags = i32_at(msg, at);
    at += 4;
    let nul = msg[at..]
        .iter()
        .position(|b| *b == 0)
        .ok_or(CodecError::Malformed("OP_QUERY: collection name"))?;
    let collection = std::str::from_utf8(&msg[at..at + nul])
        .map_err(|_| CodecError::Malformed("OP_QUERY: collection name"))?;
    at += nul + 1 + 8; // numberToSkip, numberToReturn
    if msg.len() < at + 5 {
        return Err(CodecError::Malformed("OP_QUERY: query"));
    }
    let len = i32_at(msg, at);
    if len < 5 || at + len as usize > msg.len() {
        return Err(CodecError::Malformed("OP_QUERY: query length"));
    }
    let query = RawDocument::from_bytes(&msg[at..at + len as usize])
        .map_err(|_| CodecError::Bson("OP_QUERY query"))?;
    Ok(OpQuery {
        flags,
        collection,
        query,
    })
}

/// Appends an OP_REPLY carrying one document (responseFlags: AwaitCapable).
pub fn encode_reply(out: &mut BytesMut, request_id: i32, response_to: i32, doc: &[u8]) {
    let start = out.len();
    Header {
        length: 0,
        request_id,
        response_to,
        op_code: OpCode::Reply,
    }
    .encode(out);
    out.put_i32_le(8); // AwaitCapable
    out.put_i64_le(0); // cursorID
    out.put_i32_le(0); // startingFrom
    out.put_i32_le(1); // numberReturned
    out.extend_from_slice(doc);
    patch_length(out, start);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::rawdoc;

    #[test]
    fn parses_legacy_is_master() {
        let q = rawdoc! { "isMaster": 1, "helloOk": true };
        let mut b = BytesMut::new();
        Header {
            length: 0,
            request_id: 3,
            response_to: 0,
            op_code: OpCode::Query,
        }
        .encode(&mut b);
        b.put_i32_le(0);
        b.extend_from_slice(b"admin.$cmd\0");
        b.put_i32_le(0);
        b.put_i32_le(-1);
        b.extend_from_slice(q.as_bytes());
        patch_length(&mut b, 0);
        let p = parse_query(&b).expect("parse");
        assert!(p.is_command());
        assert_eq!(p.database(), "admin");
        assert_eq!(p.query.get_bool("helloOk"), Ok(true));
        assert!(parse_query(&b[..b.len() - 2]).is_err());
    }

    #[test]
    fn reply_is_byte_exact() {
        let d = rawdoc! { "ok": 1.0 };
        let mut b = BytesMut::new();
        encode_reply(&mut b, 9, 3, d.as_bytes());
        let mut want = Vec::new();
        want.extend_from_slice(&((36 + d.as_bytes().len()) as i32).to_le_bytes());
        want.extend_from_slice(&[9, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0]);
        want.extend_from_slice(&[8, 0, 0, 0]);
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(&[0; 4]);
        want.extend_from_slice(&[1, 0, 0, 0]);
        want.extend_from_slice(d.as_bytes());
        assert_eq!(&b[..], &want[..]);
    }
}
