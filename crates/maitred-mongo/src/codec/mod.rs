//! MongoDB wire protocol messages maitred reads or writes itself. No I/O.
//!
//! - [`header`]: the 16-byte message header and framing with a size bound.
//! - [`op_msg`]: OP_MSG (sections, flags, CRC-32C checksum).
//! - [`legacy`]: OP_QUERY (legacy handshake) and OP_REPLY (its answer).
//! - [`compressed`]: OP_COMPRESSED (snappy, zlib, zstd).
//!
//! Spec: <https://www.mongodb.com/docs/manual/reference/mongodb-wire-protocol/> and
//! <https://github.com/mongodb/specifications/blob/master/source/message/OP_MSG.md>.

pub mod compressed;
pub mod header;
pub mod legacy;
pub mod op_msg;
#[cfg(test)]
mod proptests;

use thiserror::Error;

pub use header::{Header, OpCode, HEADER_LEN};

/// Default bound on a message's declared size (the server's usual maxMessageSizeBytes).
pub const DEFAULT_MAX_MESSAGE: usize = 48_000_000;

/// Why bytes are not a valid message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("declared message length {0} is smaller than a header")]
    TooShort(i32),
    #[error("declared message length {len} exceeds the maximum of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("unsupported opcode {0}")]
    UnsupportedOpCode(i32),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("OP_MSG checksum mismatch")]
    Checksum,
    #[error("OP_MSG has unknown required flag bits {0:#x}")]
    UnknownRequiredFlags(u32),
    #[error("invalid BSON in {0}")]
    Bson(&'static str),
    /// OP_COMPRESSED with a compressor id this connection did not negotiate in hello
    /// (or one maitred does not know).
    #[error("OP_COMPRESSED with compressor id {0}, not negotiated in hello")]
    NotNegotiated(u8),
}
