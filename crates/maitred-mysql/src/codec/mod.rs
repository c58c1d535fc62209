//! The MySQL client/server protocol as maitred sees it, without I/O.
//!
//! - [`frame`]: packet framing (3-byte length + sequence id), size checks before allocation.
//! - [`packets`]: the packets maitred reads or writes itself (OK, ERR, EOF, handshake,
//!   handshake response) and the length-encoded integers they use.
//! - [`response`]: a scanner that follows a command's response packet by packet and says
//!   when it is complete and with which status flags.
//! - [`session_state`]: the session-state changes servers report in OK packets
//!   (CLIENT_SESSION_TRACK, server leg only).
//! - [`stmt`]: the few fields of prepared-statement packets maitred rewrites (statement
//!   ids, parameter types).
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html>.

pub mod frame;
pub mod packets;
#[cfg(test)]
mod proptests;
pub mod response;
pub mod session_state;
pub mod stmt;

use thiserror::Error;

/// A protocol violation found while decoding.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("packet of {len} bytes exceeds the maximum of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("packet out of sequence: expected sequence id {expected}, got {got}")]
    OutOfSequence { expected: u8, got: u8 },
    #[error("malformed {0} packet")]
    Malformed(&'static str),
    #[error("empty packet")]
    Empty,
    #[error("unexpected packet during {0}")]
    Unexpected(&'static str),
}

/// Command bytes (the first byte of a client command packet).
pub mod command {
    pub const QUIT: u8 = 0x01;
    pub const INIT_DB: u8 = 0x02;
    pub const QUERY: u8 = 0x03;
    pub const FIELD_LIST: u8 = 0x04;
    pub const STATISTICS: u8 = 0x09;
    pub const PING: u8 = 0x0e;
    pub const CHANGE_USER: u8 = 0x11;
    pub const STMT_PREPARE: u8 = 0x16;
    pub const STMT_EXECUTE: u8 = 0x17;
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    pub const STMT_CLOSE: u8 = 0x19;
    pub const STMT_RESET: u8 = 0x1a;
    pub const SET_OPTION: u8 = 0x1b;
    pub const STMT_FETCH: u8 = 0x1c;
    pub const RESET_CONNECTION: u8 = 0x1f;
}

/// Capability flags maitred uses (`CLIENT_*`).
pub mod cap {
    pub const LONG_PASSWORD: u32 = 0x0000_0001;
    pub const FOUND_ROWS: u32 = 0x0000_0002;
    pub const LONG_FLAG: u32 = 0x0000_0004;
    pub const CONNECT_WITH_DB: u32 = 0x0000_0008;
    pub const LOCAL_FILES: u32 = 0x0000_0080;
    pub const PROTOCOL_41: u32 = 0x0000_0200;
    pub const INTERACTIVE: u32 = 0x0000_0400;
    pub const SSL: u32 = 0x0000_0800;
    pub const TRANSACTIONS: u32 = 0x0000_2000;
    pub const SECURE_CONNECTION: u32 = 0x0000_8000;
    pub const MULTI_STATEMENTS: u32 = 0x0001_0000;
    pub const MULTI_RESULTS: u32 = 0x0002_0000;
    pub const PS_MULTI_RESULTS: u32 = 0x0004_0000;
    pub const PLUGIN_AUTH: u32 = 0x0008_0000;
    pub const CONNECT_ATTRS: u32 = 0x0010_0000;
    pub const PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x0020_0000;
    pub const SESSION_TRACK: u32 = 0x0080_0000;
    pub const DEPRECATE_EOF: u32 = 0x0100_0000;

    /// What maitred offers clients. Left out on purpose: COMPRESS (not implemented),
    /// DEPRECATE_EOF and SESSION_TRACK (they change the shape of result packets: every
    /// client gets the same shape; OK packets of server connections, which use
    /// SESSION_TRACK, are rewritten). SSL is added when the listener has a certificate.
    pub const SUPPORTED: u32 = LONG_PASSWORD
        | FOUND_ROWS
        | LONG_FLAG
        | CONNECT_WITH_DB
        | LOCAL_FILES
        | PROTOCOL_41
        | INTERACTIVE
        | TRANSACTIONS
        | SECURE_CONNECTION
        | MULTI_STATEMENTS
        | MULTI_RESULTS
        | PS_MULTI_RESULTS
        | PLUGIN_AUTH
        | CONNECT_ATTRS
        | PLUGIN_AUTH_LENENC_CLIENT_DATA;

    /// The flags of every server connection (FOUND_ROWS follows the clients, CONNECT_WITH_DB
    /// and SSL the target: see the back end). SESSION_TRACK: the server reports session-state changes.
    pub const SERVER_LEG: u32 = LONG_PASSWORD
        | LONG_FLAG
        | LOCAL_FILES
        | PROTOCOL_41
        | TRANSACTIONS
        | SECURE_CONNECTION
        | MULTI_STATEMENTS
        | MULTI_RESULTS
        | PS_MULTI_RESULTS
        | PLUGIN_AUTH
        | PLUGIN_AUTH_LENENC_CLIENT_DATA
        | SESSION_TRACK;
}

/// Server status flags (`SERVER_*`) carried by OK and EOF packets.
pub mod status {
    pub const IN_TRANS: u16 = 0x0001;
    pub const AUTOCOMMIT: u16 = 0x0002;
    pub const MORE_RESULTS_EXISTS: u16 = 0x0008;
    pub const CURSOR_EXISTS: u16 = 0x0040;
    pub const LAST_ROW_SENT: u16 = 0x0080;
    pub const IN_TRANS_READONLY: u16 = 0x2000;
    /// The OK packet carries session-state changes (CLIENT_SESSION_TRACK).
    pub const SESSION_STATE_CHANGED: u16 = 0x4000;
}
