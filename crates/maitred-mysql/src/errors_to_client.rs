//! What a client is told when maitred, not the server, has to refuse something.
//!
//! Codes (documented in docs/mysql.md):
//! - 1040 `ER_CON_COUNT_ERROR`, SQLSTATE 08004: no server connection within
//!   `queue_timeout`, or the wait queue is full (`max_waiting`). The client's connection
//!   stays usable: it may retry the statement.
//! - 1105 `ER_UNKNOWN_ERROR`, HY000: maitred could not open a server connection; the
//!   message carries the server's reason.
//! - 1053 `ER_SERVER_SHUTDOWN`, 08S01: the pool is shutting down.
//! - 1045 `ER_ACCESS_DENIED_ERROR`, 28000: wrong user or password.
//! - 1153 `ER_NET_PACKET_TOO_LARGE`, 08S01 and 1156 `ER_NET_PACKETS_OUT_OF_ORDER`, 08S01,
//!   1047 `ER_UNKNOWN_COM_ERROR`, 08S01: malformed, oversized or out-of-sequence packets
//!   (the client is then disconnected).
//! - 1094 `ER_NO_SUCH_THREAD`, HY000: KILL of a connection id maitred does not know.
//! - 1095 `ER_KILL_DENIED_ERROR`, HY000: KILL of another user's (or another pool's)
//!   connection.
//! - 1927 `ER_CONNECTION_KILLED`, 70100: this client was killed with KILL CONNECTION.
//! - 2013 (HY000) "Lost connection to server during query": the server connection failed
//!   in the middle of a command.

use crate::codec::packets::write_err;
use crate::error::BackendError;
use bytes::BytesMut;
use maitred_frontend::{Refusal, RefusalClass};
use maitred_pool::CheckoutError;

pub mod code {
    pub const CON_COUNT: u16 = 1040;
    pub const ACCESS_DENIED: u16 = 1045;
    pub const UNKNOWN_COM: u16 = 1047;
    pub const BAD_DB: u16 = 1049;
    pub const SERVER_SHUTDOWN: u16 = 1053;
    pub const UNKNOWN_ERROR: u16 = 1105;
    pub const PACKET_TOO_LARGE: u16 = 1153;
    pub const PACKETS_OUT_OF_ORDER: u16 = 1156;
    pub const UNKNOWN_STMT_HANDLER: u16 = 1243;
    pub const NOT_SUPPORTED: u16 = 1235;
    pub const LOST_CONNECTION: u16 = 2013;
    pub const NO_SUCH_THREAD: u16 = 1094;
    pub const KILL_DENIED: u16 = 1095;
    pub const LOCAL_INFILE_REJECTED: u16 = 1148;
    pub const CONNECTION_KILLED: u16 = 1927;
}

/// Writes the ERR packet for a failed checkout (sequence id `seq`).
pub fn checkout_error(o: &mut BytesMut, seq: u8, e: &CheckoutError<BackendError>) {
    let r = Refusal::of_checkout(e, "command");
    let (code, state) = match r.class {
        RefusalClass::Overloaded => (code::CON_COUNT, "08004"),
        RefusalClass::ConnectFailed | RefusalClass::ServerDown => (code::UNKNOWN_ERROR, "HY000"),
        RefusalClass::SentAheadLost => (code::UNKNOWN_ERROR, "08S01"),
        RefusalClass::ShuttingDown => (code::SERVER_SHUTDOWN, "08S01"),
    };
    write_err(o, seq, code, state, &r.one_line());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::packets::parse_err;
    use maitred_pool::PoolState;

    #[test]
    fn queue_timeout_is_1040_and_names_pool_and_knob() {
        let mut o = BytesMut::new();
        let e = CheckoutError::QueueTimeout {
            pool: "app".into(),
            waited: std::time::Duration::from_millis(300),
            state: PoolState {
                size: 1,
                idle: 0,
                busy: 1,
                waiting: 1,
                max_size: 1,
            },
        };
        checkout_error(&mut o, 1, &e);
        let err = parse_err(&o[4..]).expect("err");
        assert_eq!((err.code, err.sqlstate.as_str()), (1040, "08004"));
        assert!(err.message.contains("\"app\""), "{}", err.message);
        assert!(
            err.message.contains("queue_timeout (300ms)"),
            "{}",
            err.message
        );
    }
}
