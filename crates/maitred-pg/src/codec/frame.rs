//! Tagged message framing: a 1-byte tag and a 4-byte big-endian length that counts itself.
//!
//! The relay reads only headers ("scan, do not parse") and forwards bodies in bulk.

use super::CodecError;

/// Length of a message header: tag + length.
pub const HEADER_LEN: usize = 5;

/// The header of the message at the start of `buf`, if its five bytes are there.
///
/// Returns the tag and the total size of the message on the wire (header included).
/// A declared length below 4 or above `max_len` is a protocol violation, reported before
/// anything is allocated for the body.
pub fn peek_header(buf: &[u8], max_len: usize) -> Result<Option<(u8, usize)>, CodecError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len < 4 || len > max_len {
        return Err(CodecError::BadLength { len, max: max_len });
    }
    Ok(Some((buf[0], len + 1)))
}

/// The body of a whole message (after the header).
pub fn body(msg: &[u8]) -> &[u8] {
    &msg[HEADER_LEN..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_needs_five_bytes() {
        assert_eq!(peek_header(b"Z\0\0\0", 100), Ok(None));
        assert_eq!(peek_header(b"Z\0\0\0\x05I", 100), Ok(Some((b'Z', 6))));
    }

    #[test]
    fn header_rejects_bad_lengths() {
        assert!(peek_header(b"Z\0\0\0\x03", 100).is_err());
        assert!(peek_header(b"D\x7f\0\0\0", 1 << 20).is_err());
    }
}
