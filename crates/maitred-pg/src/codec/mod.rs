//! PostgreSQL wire codec: no I/O, no tokio.
//!
//! Spec: <https://www.postgresql.org/docs/15/protocol-message-formats.html>.
//!
//! - [`startup`]: the untagged first packet (StartupMessage, SSLRequest, GSSENCRequest,
//!   CancelRequest).
//! - [`frame`]: scanning tagged messages (tag + length) without parsing their bodies.
//! - [`client_msgs`]: the few client messages maitred must read (passwords, SASL responses).
//! - [`server_msgs`]: messages maitred writes to clients as if it were the server.

pub mod client_msgs;
pub mod extended;
pub mod frame;
pub mod server_msgs;
pub mod startup;

use thiserror::Error;

/// A protocol violation by the peer. The connection that sent it is closed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("message length {len} is outside the allowed range (max {max})")]
    BadLength { len: usize, max: usize },
    #[error("unsupported protocol version {major}.{minor}")]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("malformed {what} message")]
    Malformed { what: &'static str },
    #[error("unexpected message tag {tag:?} during {phase}")]
    UnexpectedTag { tag: char, phase: &'static str },
}

/// Reads a NUL-terminated string at the start of `buf`; returns it and the rest.
pub(crate) fn read_cstr<'a>(
    buf: &'a [u8],
    what: &'static str,
) -> Result<(&'a str, &'a [u8]), CodecError> {
    let end = buf
        .iter()
        .position(|b| *b == 0)
        .ok_or(CodecError::Malformed { what })?;
    let s = std::str::from_utf8(&buf[..end]).map_err(|_| CodecError::Malformed { what })?;
    Ok((s, &buf[end + 1..]))
}
