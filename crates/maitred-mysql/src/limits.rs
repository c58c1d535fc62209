//! The ERR packets a client gets when it hits one of its pool's client limits
//! ([`maitred_pool::ClientLimits`]), with the codes MySQL uses for the same situations
//! (see docs/mysql.md):
//!
//! - login not finished within `client_login_timeout`: 1043 `ER_HANDSHAKE_ERROR` (08S01);
//! - `max_clients` reached: 1040 `ER_CON_COUNT_ERROR` (08004), "Too many connections";
//! - a packet over `max_message_size`: 1153 `ER_NET_PACKET_TOO_LARGE` (08S01, in the relay);
//! - silent for `idle_transaction_timeout` inside a transaction, or for
//!   `client_idle_timeout` outside one: 4031 `ER_CLIENT_INTERACTION_TIMEOUT` (HY000), as
//!   MySQL 8 says when `wait_timeout` runs out;
//! - the server did not answer within `query_timeout`: 3024 `ER_QUERY_TIMEOUT` (HY000).

use crate::codec::packets::write_err;
use bytes::BytesMut;
use maitred_frontend::duration::human;
use maitred_frontend::time_limits::LimitReplies;
use std::time::Duration;

pub mod code {
    pub const HANDSHAKE_ERROR: u16 = 1043;
    pub const CON_COUNT: u16 = 1040;
    pub const CLIENT_INTERACTION_TIMEOUT: u16 = 4031;
    pub const QUERY_TIMEOUT: u16 = 3024;
}

/// `seq`: the sequence id the client expects next.
pub fn login_timeout(o: &mut BytesMut, seq: u8, timeout: Duration) {
    let message = format!(
        "maitred: the client did not finish logging in within client_login_timeout ({})",
        human(timeout)
    );
    write_err(o, seq, code::HANDSHAKE_ERROR, "08S01", &message);
}

pub fn too_many_clients(o: &mut BytesMut, seq: u8, pool: &str, max: usize) {
    let message = format!(
        "Too many connections (maitred pool \"{pool}\" has max_clients ({max}) connected; close idle connections or raise max_clients)"
    );
    write_err(o, seq, code::CON_COUNT, "08004", &message);
}

/// The ERR packets of the time limits the relay enforces (`relay/time_limits.rs`).
pub struct TimeLimitErrors;

impl LimitReplies for TimeLimitErrors {
    fn idle_in_transaction(o: &mut BytesMut, pool: &str, timeout: Duration) {
        let message = format!(
            "The client was disconnected by maitred because of inactivity inside a transaction (idle_transaction_timeout {} of pool \"{pool}\"); the transaction was rolled back",
            human(timeout)
        );
        write_err(o, 1, code::CLIENT_INTERACTION_TIMEOUT, "HY000", &message);
    }

    fn idle_session(o: &mut BytesMut, pool: &str, timeout: Duration) {
        let message = format!(
            "The client was disconnected by maitred because of inactivity (client_idle_timeout {} of pool \"{pool}\")",
            human(timeout)
        );
        write_err(o, 1, code::CLIENT_INTERACTION_TIMEOUT, "HY000", &message);
    }

    fn query_timeout(o: &mut BytesMut, pool: &str, timeout: Duration) {
        let message = format!(
            "Query execution was interrupted, maximum statement execution time exceeded (query_timeout {} of maitred pool \"{pool}\"; the server connection was closed and the transaction in progress, if any, rolled back)",
            human(timeout)
        );
        write_err(o, 1, code::QUERY_TIMEOUT, "HY000", &message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_code_and_limit() {
        let mut o = BytesMut::new();
        TimeLimitErrors::query_timeout(&mut o, "app", Duration::from_millis(300));
        // header (4), 0xFF, code little-endian.
        assert_eq!(o[4], 0xFF);
        assert_eq!(u16::from_le_bytes([o[5], o[6]]), 3024);
        assert!(String::from_utf8_lossy(&o).contains("query_timeout 300ms"));
    }
}
