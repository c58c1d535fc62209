//! The client time limits as a relay meets them once its client's deadline passed (the
//! relay's [`maitred_pool::ClientClock`] says when): which limit ran out ([`expired`],
//! logged here once for every protocol) and the protocol's words for it
//! ([`LimitReplies`]). What happens to a server that did not answer (a cancel, a KILL) is
//! the protocol's.

use bytes::BytesMut;
use maitred_pool::{ClientLimits, ClientState};
use std::time::Duration;

/// A client time limit that ran out, with its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Silent outside a transaction for `client_idle_timeout`.
    Idle(Duration),
    /// Silent inside a transaction for `idle_transaction_timeout`.
    IdleInTransaction(Duration),
    /// The server did not answer within `query_timeout`.
    Query(Duration),
}

/// How a protocol tells its client that a time limit ran out (the session ends after).
pub trait LimitReplies {
    fn idle_session(out: &mut BytesMut, pool: &str, timeout: Duration);
    fn idle_in_transaction(out: &mut BytesMut, pool: &str, timeout: Duration);
    fn query_timeout(out: &mut BytesMut, pool: &str, timeout: Duration);
}

/// The limit that ran out for a client whose deadline in `state` passed, logged; `None`
/// when no limit applies to it (the relay goes on). `on_query` says what became of the
/// query the server did not answer ("query cancelled").
pub fn expired(
    state: ClientState,
    limits: &ClientLimits,
    pool: &str,
    on_query: &str,
) -> Option<Expired> {
    let limit = limits.limit_for(state)?;
    match state {
        ClientState::Idle => {
            tracing::info!(pool = %pool, "client idle for client_idle_timeout: disconnected");
            Some(Expired::Idle(limit))
        }
        ClientState::IdleInTransaction => {
            tracing::info!(pool = %pool, "client idle in transaction for idle_transaction_timeout: rolled back and disconnected");
            Some(Expired::IdleInTransaction(limit))
        }
        ClientState::AwaitingServer => {
            tracing::warn!(pool = %pool, "server did not answer within query_timeout: {on_query}, server connection closed");
            Some(Expired::Query(limit))
        }
        ClientState::Other => None,
    }
}

impl Expired {
    /// Adds the protocol's error for this limit to what `out` holds for the client.
    /// `mid_message`: part of a server message already went out, so an error now would be
    /// misread; `out` is emptied instead and the client gets nothing more.
    pub fn tell<R: LimitReplies>(self, out: &mut BytesMut, pool: &str, mid_message: bool) {
        if mid_message {
            out.clear();
            return;
        }
        match self {
            Expired::Idle(t) => R::idle_session(out, pool, t),
            Expired::IdleInTransaction(t) => R::idle_in_transaction(out, pool, t),
            Expired::Query(t) => R::query_timeout(out, pool, t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Words;

    impl LimitReplies for Words {
        fn idle_session(out: &mut BytesMut, pool: &str, _: Duration) {
            out.extend_from_slice(format!("idle {pool}").as_bytes());
        }
        fn idle_in_transaction(out: &mut BytesMut, pool: &str, _: Duration) {
            out.extend_from_slice(format!("in transaction {pool}").as_bytes());
        }
        fn query_timeout(out: &mut BytesMut, pool: &str, t: Duration) {
            out.extend_from_slice(format!("query {pool} {}", t.as_secs()).as_bytes());
        }
    }

    #[test]
    fn only_a_state_with_a_limit_expires() {
        let mut limits = ClientLimits::new(1024);
        assert_eq!(expired(ClientState::Idle, &limits, "app", "-"), None);
        limits.query_timeout = Some(Duration::from_secs(3));
        let e = expired(ClientState::AwaitingServer, &limits, "app", "-");
        assert_eq!(e, Some(Expired::Query(Duration::from_secs(3))));
        assert_eq!(expired(ClientState::Other, &limits, "app", "-"), None);
    }

    #[test]
    fn the_client_is_told_unless_a_message_is_half_out() {
        let mut out = BytesMut::from(&b"rows "[..]);
        Expired::Query(Duration::from_secs(3)).tell::<Words>(&mut out, "app", false);
        assert_eq!(&out[..], b"rows query app 3");
        Expired::Idle(Duration::from_secs(1)).tell::<Words>(&mut out, "app", true);
        assert!(out.is_empty());
    }
}
