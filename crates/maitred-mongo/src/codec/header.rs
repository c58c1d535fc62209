//! The standard message header and framing.
//!
//! ```text
//! int32 messageLength; int32 requestID; int32 responseTo; int32 opCode
//! ```

use super::CodecError;
use bytes::{BufMut, BytesMut};

pub const HEADER_LEN: usize = 16;

/// Opcodes maitred knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Reply,
    Query,
    Compressed,
    Msg,
    Other(i32),
}

impl OpCode {
    pub fn from_i32(v: i32) -> OpCode {
        match v {
            1 => OpCode::Reply,
            2004 => OpCode::Query,
            2012 => OpCode::Compressed,
            2013 => OpCode::Msg,
            o => OpCode::Other(o),
        }
    }

    pub fn as_i32(self) -> i32 {
        match self {
            OpCode::Reply => 1,
            OpCode::Query => 2004,
            OpCode::Compressed => 2012,
            OpCode::Msg => 2013,
            OpCode::Other(o) => o,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub length: usize,
    pub request_id: i32,
    pub response_to: i32,
    pub op_code: OpCode,
}

impl Header {
    /// Reads the header at the start of `buf`. Checks the declared length against `max`
    /// before anything is allocated for the body. `None`: fewer than 16 bytes so far.
    pub fn peek(buf: &[u8], max: usize) -> Result<Option<Header>, CodecError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = i32_at(buf, 0);
        if len < HEADER_LEN as i32 {
            return Err(CodecError::TooShort(len));
        }
        let length = len as usize;
        if length > max {
            return Err(CodecError::TooLarge { len: length, max });
        }
        Ok(Some(Header {
            length,
            request_id: i32_at(buf, 4),
            response_to: i32_at(buf, 8),
            op_code: OpCode::from_i32(i32_at(buf, 12)),
        }))
    }

    pub fn encode(&self, out: &mut BytesMut) {
        out.put_i32_le(self.length as i32);
        out.put_i32_le(self.request_id);
        out.put_i32_le(self.response_to);
        out.put_i32_le(self.op_code.as_i32());
    }
}

/// Room reserved at a time for the rest of a message still arriving: a header alone must
/// not make maitred hold its whole declared length (up to `max`) for a peer that may never
/// send it.
const RESERVE_STEP: usize = 1 << 20;

/// Splits one whole message off the front of `buf`, or `None` if more bytes are needed.
/// Reserves room for the rest of a message whose header has arrived, at most
/// [`RESERVE_STEP`] at a time.
pub fn decode_frame(
    buf: &mut BytesMut,
    max: usize,
) -> Result<Option<(Header, BytesMut)>, CodecError> {
    let Some(h) = Header::peek(buf, max)? else {
        return Ok(None);
    };
    if buf.len() < h.length {
        buf.reserve((h.length - buf.len()).min(RESERVE_STEP));
        return Ok(None);
    }
    Ok(Some((h, buf.split_to(h.length))))
}

pub(crate) fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Overwrites the messageLength field of a message being built in `out` from `start`.
pub(crate) fn patch_length(out: &mut BytesMut, start: usize) {
    let len = (out.len() - start) as i32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_whole_messages_only() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&[20, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0xdd, 7, 0, 0, 1, 2]);
        assert_eq!(decode_frame(&mut b, 100), Ok(None));
        b.extend_from_slice(&[3, 4, 9]);
        let (h, m) = decode_frame(&mut b, 100).expect("ok").expect("frame");
        assert_eq!(h.length, 20);
        assert_eq!(h.request_id, 7);
        assert_eq!(h.op_code, OpCode::Msg);
        assert_eq!(m.len(), 20);
        assert_eq!(&b[..], &[9]);
    }

    #[test]
    fn refuses_sizes_before_allocating() {
        let mut b = BytesMut::new();
        b.extend_from_slice(&[0, 0, 0, 0x7f, 1, 0, 0, 0, 0, 0, 0, 0, 0xdd, 7, 0, 0]);
        assert!(matches!(
            decode_frame(&mut b, 48_000_000),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(b.capacity() < 1024);
        let mut b = BytesMut::from(&[4u8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xdd, 7, 0, 0][..]);
        assert_eq!(decode_frame(&mut b, 100), Err(CodecError::TooShort(4)));
    }

    #[test]
    fn a_header_alone_reserves_a_bounded_amount() {
        // Found by the mongo_messages fuzz target: 16 bytes declaring 40 MB reserved 40 MB.
        let mut b = BytesMut::new();
        b.extend_from_slice(&40_000_000i32.to_le_bytes());
        b.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0xdd, 7, 0, 0]);
        assert_eq!(decode_frame(&mut b, 48_000_000), Ok(None));
        assert!(b.capacity() <= 2 * RESERVE_STEP, "{}", b.capacity());
    }
}
