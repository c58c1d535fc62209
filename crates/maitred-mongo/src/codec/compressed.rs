//! OP_COMPRESSED (opcode 2012): another message, compressed with snappy, zlib or zstd.
//!
//! ```text
//! header; int32 originalOpcode; int32 uncompressedSize; uint8 compressorId; bytes
//! ```
//!
//! The declared uncompressed size is checked against the maximum before anything is
//! allocated, and the output of the decompressor must match it exactly. A client's
//! message goes through [`decompress_negotiated`]: its compressor must be one negotiated
//! in hello on that connection, checked from the fixed fields before the payload is read.
//!
//! Spec: <https://github.com/mongodb/specifications/blob/master/source/compression/OP_COMPRESSED.md>.

use super::header::{i32_at, patch_length, Header, OpCode, HEADER_LEN};
use super::CodecError;
use bytes::{BufMut, BytesMut};
use std::io::{Read, Write};

/// At most this much is allocated ahead of decompressed output.
const PREALLOC_MAX: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compressor {
    Snappy,
    Zlib,
    Zstd,
}

impl Compressor {
    /// In maitred's order of preference.
    pub const ALL: [Compressor; 3] = [Compressor::Zstd, Compressor::Snappy, Compressor::Zlib];

    pub fn name(self) -> &'static str {
        match self {
            Compressor::Snappy => "snappy",
            Compressor::Zlib => "zlib",
            Compressor::Zstd => "zstd",
        }
    }

    pub fn from_name(name: &str) -> Option<Compressor> {
        Compressor::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn id(self) -> u8 {
        match self {
            Compressor::Snappy => 1,
            Compressor::Zlib => 2,
            Compressor::Zstd => 3,
        }
    }

    pub fn from_id(id: u8) -> Option<Compressor> {
        Compressor::ALL.into_iter().find(|c| c.id() == id)
    }
}

/// The compressor id of a whole OP_COMPRESSED, from its fixed fields only.
pub fn compressor_id(msg: &[u8]) -> Result<u8, CodecError> {
    msg.get(HEADER_LEN + 8)
        .copied()
        .ok_or(CodecError::Malformed("OP_COMPRESSED: too short"))
}

/// [`decompress`] for a client's message: refused with [`CodecError::NotNegotiated`] unless
/// its compressor is one of `negotiated` (agreed in hello on this connection), and with
/// [`CodecError::TooLarge`] if it declares more than `max` bytes, both before the payload is
/// looked at or anything is allocated for it. Returns the compressor, for the reply.
pub fn decompress_negotiated(
    msg: &[u8],
    negotiated: &[Compressor],
    max: usize,
) -> Result<(Compressor, BytesMut), CodecError> {
    let id = compressor_id(msg)?;
    let compressor = Compressor::from_id(id)
        .filter(|c| negotiated.contains(c))
        .ok_or(CodecError::NotNegotiated(id))?;
    Ok((compressor, decompress(msg, max)?))
}

/// Decompresses a whole OP_COMPRESSED into the whole original message (header rebuilt with
/// the original opcode and the same requestID / responseTo).
pub fn decompress(msg: &[u8], max: usize) -> Result<BytesMut, CodecError> {
    let h = Header::peek(msg, usize::MAX)?.ok_or(CodecError::Malformed("OP_COMPRESSED"))?;
    if msg.len() < HEADER_LEN + 9 {
        return Err(CodecError::Malformed("OP_COMPRESSED: too short"));
    }
    let original = i32_at(msg, HEADER_LEN);
    let size = i32_at(msg, HEADER_LEN + 4);
    if size < 0 {
        return Err(CodecError::Malformed("OP_COMPRESSED: uncompressed size"));
    }
    let size = size as usize;
    if size + HEADER_LEN > max {
        return Err(CodecError::TooLarge {
            len: size + HEADER_LEN,
            max,
        });
    }
    let compressor = Compressor::from_id(msg[HEADER_LEN + 8])
        .ok_or(CodecError::Malformed("OP_COMPRESSED: unknown compressor"))?;
    if original == OpCode::Compressed.as_i32() {
        return Err(CodecError::Malformed("OP_COMPRESSED: nested"));
    }
    let data = &msg[HEADER_LEN + 9..];
    // Declared sizes are only believed as far as the output grows: a few bytes declaring
    // tens of MB must not allocate them up front.
    let mut out = BytesMut::with_capacity(HEADER_LEN + size.min(PREALLOC_MAX));
    Header {
        length: HEADER_LEN + size,
        request_id: h.request_id,
        response_to: h.response_to,
        op_code: OpCode::from_i32(original),
    }
    .encode(&mut out);
    let body = match compressor {
        Compressor::Snappy => {
            let n = snap::raw::decompress_len(data)
                .map_err(|_| CodecError::Malformed("OP_COMPRESSED: snappy"))?;
            if n != size {
                return Err(CodecError::Malformed("OP_COMPRESSED: size mismatch"));
            }
            snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|_| CodecError::Malformed("OP_COMPRESSED: snappy"))?
        }
        Compressor::Zlib => {
            let mut v = Vec::with_capacity(size.min(PREALLOC_MAX));
            flate2::read::ZlibDecoder::new(data)
                .take(size as u64 + 1)
                .read_to_end(&mut v)
                .map_err(|_| CodecError::Malformed("OP_COMPRESSED: zlib"))?;
            v
        }
        Compressor::Zstd => {
            let mut v = Vec::with_capacity(size.min(PREALLOC_MAX));
            zstd::stream::read::Decoder::new(data)
                .map_err(|_| CodecError::Malformed("OP_COMPRESSED: zstd"))?
                .take(size as u64 + 1)
                .read_to_end(&mut v)
                .map_err(|_| CodecError::Malformed("OP_COMPRESSED: zstd"))?;
            v
        }
    };
    if body.len() != size {
        return Err(CodecError::Malformed("OP_COMPRESSED: size mismatch"));
    }
    out.extend_from_slice(&body);
    Ok(out)
}

/// Appends `msg` (a whole message) compressed as OP_COMPRESSED.
pub fn compress(msg: &[u8], compressor: Compressor, out: &mut BytesMut) -> Result<(), CodecError> {
    let h = Header::peek(msg, usize::MAX)?.ok_or(CodecError::Malformed("message"))?;
    let body = &msg[HEADER_LEN..];
    let start = out.len();
    Header {
        length: 0,
        request_id: h.request_id,
        response_to: h.response_to,
        op_code: OpCode::Compressed,
    }
    .encode(out);
    out.put_i32_le(h.op_code.as_i32());
    out.put_i32_le(body.len() as i32);
    out.put_u8(compressor.id());
    match compressor {
        Compressor::Snappy => {
            let c = snap::raw::Encoder::new()
                .compress_vec(body)
                .map_err(|_| CodecError::Malformed("snappy compression"))?;
            out.extend_from_slice(&c);
        }
        Compressor::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(body)
                .map_err(|_| CodecError::Malformed("zlib compression"))?;
            let c = e
                .finish()
                .map_err(|_| CodecError::Malformed("zlib compression"))?;
            out.extend_from_slice(&c);
        }
        Compressor::Zstd => {
            let c = zstd::bulk::compress(body, 1)
                .map_err(|_| CodecError::Malformed("zstd compression"))?;
            out.extend_from_slice(&c);
        }
    }
    patch_length(out, start);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::op_msg;
    use bson::rawdoc;

    #[test]
    fn round_trips_every_compressor() {
        let mut msg = BytesMut::new();
        let body = rawdoc! { "insert": "c", "pad": "x".repeat(500), "$db": "app" };
        op_msg::encode(&mut msg, 5, 4, 0, body.as_bytes());
        for c in Compressor::ALL {
            let mut z = BytesMut::new();
            compress(&msg, c, &mut z).expect("compress");
            assert!(z.len() < msg.len(), "{c:?} compresses");
            assert_eq!(i32_at(&z, 12), 2012);
            assert_eq!(z[HEADER_LEN + 8], c.id());
            let back = decompress(&z, 1 << 20).expect("decompress");
            assert_eq!(&back[..], &msg[..]);
        }
    }

    #[test]
    fn refuses_declared_size_over_max_and_lies() {
        let mut msg = BytesMut::new();
        op_msg::encode(&mut msg, 1, 0, 0, rawdoc! { "ping": 1 }.as_bytes());
        let mut z = BytesMut::new();
        compress(&msg, Compressor::Zlib, &mut z).expect("compress");
        let mut huge = z.clone();
        huge[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(matches!(
            decompress(&huge, 48_000_000),
            Err(CodecError::TooLarge { .. })
        ));
        let mut lie = z.clone();
        lie[HEADER_LEN + 4..HEADER_LEN + 8].copy_from_slice(&3i32.to_le_bytes());
        assert!(decompress(&lie, 1 << 20).is_err());
        let mut unknown = z;
        unknown[HEADER_LEN + 8] = 9;
        assert!(decompress(&unknown, 1 << 20).is_err());
    }

    /// An OP_COMPRESSED declaring `size` bytes with compressor `id` and a payload that no
    /// decompressor accepts.
    fn garbage(id: u8, size: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&(HEADER_LEN as i32 + 9 + 8).to_le_bytes());
        m.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        m.extend_from_slice(&2012i32.to_le_bytes());
        m.extend_from_slice(&2013i32.to_le_bytes());
        m.extend_from_slice(&size.to_le_bytes());
        m.push(id);
        m.extend_from_slice(b"garbage!");
        m
    }

    #[test]
    fn only_negotiated_compressors_are_decompressed() {
        let mut msg = BytesMut::new();
        op_msg::encode(&mut msg, 1, 0, 0, rawdoc! { "ping": 1 }.as_bytes());
        for c in Compressor::ALL {
            let mut z = BytesMut::new();
            compress(&msg, c, &mut z).expect("compress");
            let others: Vec<Compressor> = Compressor::ALL.into_iter().filter(|o| *o != c).collect();
            assert_eq!(
                decompress_negotiated(&z, &others, 1 << 20),
                Err(CodecError::NotNegotiated(c.id()))
            );
            assert_eq!(
                decompress_negotiated(&z, &[], 1 << 20),
                Err(CodecError::NotNegotiated(c.id()))
            );
            let (got, back) = decompress_negotiated(&z, &[c], 1 << 20).expect("negotiated");
            assert_eq!(got, c);
            assert_eq!(&back[..], &msg[..]);
        }
        // noop (0) and unknown ids are never negotiated.
        for id in [0, 4, 255] {
            assert_eq!(
                decompress_negotiated(&garbage(id, 100), &Compressor::ALL, 1 << 20),
                Err(CodecError::NotNegotiated(id))
            );
        }
    }

    #[test]
    fn the_compressor_is_checked_before_the_payload() {
        // A payload no decompressor accepts: the refusal is about the negotiation (checked
        // first), not about the data.
        for c in Compressor::ALL {
            let m = garbage(c.id(), 100);
            assert!(matches!(
                decompress(&m, 1 << 20),
                Err(CodecError::Malformed(_))
            ));
            assert_eq!(
                decompress_negotiated(&m, &[], 1 << 20),
                Err(CodecError::NotNegotiated(c.id()))
            );
            // Negotiated, its declared size is checked before the payload too.
            assert_eq!(
                decompress_negotiated(&garbage(c.id(), 40_000), &[c], 16 * 1024),
                Err(CodecError::TooLarge {
                    len: 40_000 + HEADER_LEN,
                    max: 16 * 1024
                })
            );
        }
        assert_eq!(
            decompress_negotiated(
                &garbage(2, 100)[..HEADER_LEN + 8],
                &Compressor::ALL,
                1 << 20
            ),
            Err(CodecError::Malformed("OP_COMPRESSED: too short"))
        );
    }
}
