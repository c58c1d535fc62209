//! Packet framing: every packet is a 3-byte little-endian payload length, a 1-byte
//! sequence id and the payload. A payload of exactly 0xFFFFFF bytes continues in the next
//! packet.
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html>.

use super::CodecError;
use bytes::{Buf, BufMut, BytesMut};

/// Bytes of a packet header.
pub const HEADER_LEN: usize = 4;
/// Largest payload of one packet; a payload this long continues in the next packet.
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;

/// The payload length and sequence id of the packet at the start of `buf`, if its header
/// has arrived. The length is checked against `max` before anything is allocated for it.
pub fn peek_header(buf: &[u8], max: usize) -> Result<Option<(usize, u8)>, CodecError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = usize::from(buf[0]) | usize::from(buf[1]) << 8 | usize::from(buf[2]) << 16;
    if len > max {
        return Err(CodecError::TooLarge { len, max });
    }
    Ok(Some((len, buf[3])))
}

/// The payload length and sequence id of the packet at the start of `buf` when the whole
/// packet has arrived.
pub fn peek_packet(buf: &[u8], max: usize) -> Result<Option<(usize, u8)>, CodecError> {
    match peek_header(buf, max)? {
        Some((len, seq)) if buf.len() >= HEADER_LEN + len => Ok(Some((len, seq))),
        _ => Ok(None),
    }
}

/// Takes the next whole command payload off the front of `buf`: one packet with sequence
/// id 0, joined with its continuation packets when it is 16 MB or more. `Ok(None)`: more
/// bytes are needed (room for the rest of the packet, at most 1 MiB at a time, is reserved).
/// The joined length is checked against `max` before it is allocated.
pub fn take_command(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, CodecError> {
    let mut at = 0;
    let mut total = 0;
    let mut expected_seq = 0u8;
    loop {
        let Some((len, seq)) = peek_header(&buf[at..], max)? else {
            return Ok(None);
        };
        if seq != expected_seq {
            return Err(CodecError::OutOfSequence {
                expected: expected_seq,
                got: seq,
            });
        }
        total += len;
        if total > max {
            return Err(CodecError::TooLarge { len: total, max });
        }
        if buf.len() < at + HEADER_LEN + len {
            buf.reserve((at + HEADER_LEN + len - buf.len()).min(1 << 20));
            return Ok(None);
        }
        at += HEADER_LEN + len;
        if len < MAX_PAYLOAD {
            break;
        }
        expected_seq = expected_seq.wrapping_add(1);
    }
    let raw = buf.split_to(at);
    if at == total + HEADER_LEN {
        let mut p = raw;
        p.advance(HEADER_LEN);
        return Ok(Some(p));
    }
    // Join a multi-packet payload.
    let mut p = BytesMut::with_capacity(total);
    let mut rest = &raw[..];
    while !rest.is_empty() {
        let len = usize::from(rest[0]) | usize::from(rest[1]) << 8 | usize::from(rest[2]) << 16;
        p.extend_from_slice(&rest[HEADER_LEN..HEADER_LEN + len]);
        rest = &rest[HEADER_LEN + len..];
    }
    Ok(Some(p))
}

/// Appends `payload` as one or more packets starting at sequence id `seq`; returns the
/// sequence id that follows.
pub fn write_packet(out: &mut BytesMut, mut seq: u8, payload: &[u8]) -> u8 {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PAYLOAD);
        out.reserve(HEADER_LEN + n);
        out.put_u8(n as u8);
        out.put_u8((n >> 8) as u8);
        out.put_u8((n >> 16) as u8);
        out.put_u8(seq);
        out.put_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_PAYLOAD {
            return seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_whole_packet() {
        let mut out = BytesMut::new();
        let next = write_packet(&mut out, 3, b"\x0eabc");
        assert_eq!(next, 4);
        assert_eq!(&out[..], b"\x04\x00\x00\x03\x0eabc");
        assert_eq!(peek_header(&out, 100), Ok(Some((4, 3))));
        assert_eq!(peek_packet(&out[..6], 100), Ok(None));
        assert_eq!(peek_packet(&out, 100), Ok(Some((4, 3))));
        assert_eq!(peek_header(&out[..3], 100), Ok(None));
    }

    #[test]
    fn oversized_is_refused_before_it_arrives() {
        let buf = [0xff, 0xff, 0x10, 0];
        assert_eq!(
            peek_header(&buf, 1 << 20),
            Err(CodecError::TooLarge {
                len: 0x10ffff,
                max: 1 << 20
            })
        );
    }

    #[test]
    fn long_command_is_joined_and_checked() {
        let payload: Vec<u8> = (0..MAX_PAYLOAD + 10).map(|i| i as u8).collect();
        let mut out = BytesMut::new();
        write_packet(&mut out, 0, &payload);
        let mut part = BytesMut::from(&out[..out.len() - 1]);
        assert_eq!(take_command(&mut part, usize::MAX), Ok(None));
        let got = take_command(&mut out, usize::MAX)
            .expect("valid")
            .expect("whole");
        assert_eq!(&got[..], &payload[..]);
        assert!(out.is_empty());
        let mut again = BytesMut::new();
        write_packet(&mut again, 0, &payload);
        assert!(matches!(
            take_command(&mut again, MAX_PAYLOAD),
            Err(CodecError::TooLarge { .. })
        ));
        let mut bad_seq = BytesMut::from(&b"\x01\x00\x00\x05\x0e"[..]);
        assert!(matches!(
            take_command(&mut bad_seq, 100),
            Err(CodecError::OutOfSequence {
                expected: 0,
                got: 5
            })
        ));
    }

    #[test]
    fn long_payload_is_split() {
        let payload = vec![7u8; MAX_PAYLOAD + 10];
        let mut out = BytesMut::new();
        let next = write_packet(&mut out, 0, &payload);
        assert_eq!(next, 2);
        assert_eq!(peek_header(&out, usize::MAX), Ok(Some((MAX_PAYLOAD, 0))));
        let second = &out[HEADER_LEN + MAX_PAYLOAD..];
        assert_eq!(peek_packet(second, usize::MAX), Ok(Some((10, 1))));
    }
}
