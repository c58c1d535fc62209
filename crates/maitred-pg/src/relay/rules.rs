//! The lease rules, as functions without I/O: given what the session knows (the pool
//! mode, the client's pin, the replies owed, the leased connection's protocol state, the
//! isolation [`Tracker`](super::isolation::Tracker)'s verdict, a successor sent ahead),
//! decide whether the lease is kept, confirmed with the server, handed to a successor, or
//! released (clean or for a reset). The relay copies its state into a [`SessionView`] at a
//! decision point and carries the decision out; every rule of docs/postgres.md about
//! release, pins, follow/confirm and send ahead is a test below.
//!
//! The isolation rules themselves (what needs a confirmation, and its verdict) are the
//! tracker's; these functions only read its two answers.

use crate::pool::PoolMode;
use crate::sql_effects::{Effect, PinReason};

/// The leased server connection, as far as the rules care (copied, no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LeaseView {
    /// ReadyForQuery messages the server still owes (Query, Sync, FunctionCall sent).
    pub pending_sync: u32,
    /// An extended-protocol batch not yet ended by Sync.
    pub extended_open: bool,
    /// The transaction status of the last ReadyForQuery (`I`, `T`, `E`).
    pub tx_status: u8,
    /// Bytes of a server message forwarded in part, still on the socket.
    pub unread_body: usize,
    /// Server bytes read and not yet handled.
    pub buffered: bool,
    /// The connection gets DISCARD ALL before its next client.
    pub needs_discard: bool,
}

impl Default for LeaseView {
    /// A connection idle outside a transaction, owing nothing.
    fn default() -> Self {
        LeaseView {
            pending_sync: 0,
            extended_open: false,
            tx_status: b'I',
            unread_body: 0,
            buffered: false,
            needs_discard: false,
        }
    }
}

/// The session at a decision point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SessionView {
    pub mode: PoolMode,
    /// The client keeps its server connection (a pin, at once or after a confirmation).
    pub pinned: bool,
    /// A queued client's query was written behind ours (`send_ahead`).
    pub successor: bool,
    /// Replies owed on the lease (`crate::replies`): the client's, injected or composed.
    pub replies_owed: bool,
    /// The leased connection, if any.
    pub lease: Option<LeaseView>,
    /// The tracker: a confirmation must run before release (rules 1 to 5).
    pub needs_confirmation: bool,
    /// The tracker: state never confirmed is on the connection (rule 7).
    pub state_unaccounted: bool,
}

impl Default for SessionView {
    /// A transaction-mode client holding an idle connection with nothing owed.
    fn default() -> Self {
        SessionView {
            mode: PoolMode::Transaction,
            pinned: false,
            successor: false,
            replies_owed: false,
            lease: Some(LeaseView::default()),
            needs_confirmation: false,
            state_unaccounted: false,
        }
    }
}

/// Why the connection is not at its release point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Busy {
    /// A Query, Sync or FunctionCall still waits for its ReadyForQuery.
    ReadyForQueryOwed,
    /// An extended-protocol batch is open (no Sync yet).
    BatchOpen,
    /// Inside a transaction block (status `T` or `E`).
    InTransaction,
    /// A server message is not read whole yet.
    MessageInFlight,
}

/// Why a lease is kept at the end of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// Session mode: the client keeps its connection until it leaves.
    SessionMode,
    /// The client is pinned.
    Pinned,
    /// Replies are still owed.
    RepliesOwed,
    /// The connection is not at its release point.
    Busy(Busy),
}

/// What to do with the lease at the end of a batch (client bytes or server bytes handled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReleaseDecision {
    /// No connection is leased.
    NoLease,
    Keep(Keep),
    /// Send the confirmation query (`crate::confirm`) and keep the lease until its verdict.
    Confirm,
    /// Our reply is read: the connection goes to the client sent ahead
    /// ([`hand_over`] decides whether it is fit to).
    PassToSuccessor,
    /// Give the connection back; `discard`: through the dirty path, with DISCARD ALL.
    Release {
        discard: bool,
    },
}

/// Whether the leased connection owes nothing and is idle outside a transaction.
pub(super) fn release_point(lease: &LeaseView) -> Result<(), Busy> {
    if lease.pending_sync != 0 {
        Err(Busy::ReadyForQueryOwed)
    } else if lease.extended_open {
        Err(Busy::BatchOpen)
    } else if lease.tx_status != b'I' {
        Err(Busy::InTransaction)
    } else if lease.unread_body != 0 || lease.buffered {
        Err(Busy::MessageInFlight)
    } else {
        Ok(())
    }
}

/// The end of a batch: a session whose state is not accounted for is confirmed first, at
/// the release point of an unpinned transaction- or statement-mode lease with no successor
/// (isolation rule 6); otherwise [`release`].
pub(super) fn end_of_batch(s: &SessionView) -> ReleaseDecision {
    if s.needs_confirmation
        && !s.successor
        && s.mode != PoolMode::Session
        && !s.pinned
        && !s.replies_owed
        && s.lease.as_ref().is_some_and(|l| release_point(l).is_ok())
    {
        return ReleaseDecision::Confirm;
    }
    release(s)
}

/// Whether the lease ends now, leaving a confirmation aside: handed to a successor once
/// every reply is read; kept in session mode, while pinned, while replies are owed or the
/// connection is busy; otherwise released, through a reset when it needs DISCARD ALL or
/// holds state never confirmed.
pub(super) fn release(s: &SessionView) -> ReleaseDecision {
    if s.successor {
        return if s.replies_owed {
            ReleaseDecision::Keep(Keep::RepliesOwed)
        } else {
            ReleaseDecision::PassToSuccessor
        };
    }
    if s.mode == PoolMode::Session {
        return ReleaseDecision::Keep(Keep::SessionMode);
    }
    if s.pinned {
        return ReleaseDecision::Keep(Keep::Pinned);
    }
    if s.replies_owed {
        return ReleaseDecision::Keep(Keep::RepliesOwed);
    }
    let Some(lease) = s.lease else {
        return ReleaseDecision::NoLease;
    };
    match release_point(&lease) {
        Err(busy) => ReleaseDecision::Keep(Keep::Busy(busy)),
        Ok(()) => ReleaseDecision::Release {
            discard: lease.needs_discard || s.state_unaccounted,
        },
    }
}

/// What becomes of a lease whose successor's query was sent ahead, once our reply is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HandOver {
    /// The connection owes exactly the successor's ReadyForQuery and is as a check-in would
    /// leave it: it goes to the successor.
    Pass,
    /// Anything else: the successor is dropped (its checkout fails with 08006) and the
    /// connection reset; `discard`: with DISCARD ALL.
    Reset { discard: bool },
}

pub(super) fn hand_over(lease: &LeaseView, state_unaccounted: bool) -> HandOver {
    if lease.pending_sync == 1
        && !lease.extended_open
        && lease.tx_status == b'I'
        && lease.unread_body == 0
        && !lease.needs_discard
        && !state_unaccounted
    {
        HandOver::Pass
    } else {
        HandOver::Reset {
            discard: lease.needs_discard || state_unaccounted,
        }
    }
}

/// Whether the holder may claim a queued client and write its query behind its own, as
/// far as the session goes (the pool's own checks, `send_ahead` on and a waiter there,
/// come after): the lease carries exactly one safe request, all of it handled, nothing
/// else from the client, an unpinned client whose state is accounted for, and a connection
/// that owes only that request's ReadyForQuery and will be idle after it.
pub(super) fn may_claim_successor(
    s: &SessionView,
    request_safe: bool,
    request_messages_left: usize,
    client_bytes_buffered: bool,
) -> bool {
    if s.successor
        || !request_safe
        || request_messages_left > 0
        || s.pinned
        || s.state_unaccounted
        || client_bytes_buffered
    {
        return false;
    }
    s.lease.is_some_and(|l| {
        l.pending_sync == 1
            && !l.extended_open
            && l.tx_status == b'I'
            && !l.needs_discard
            && l.unread_body == 0
    })
}

/// What becomes of the leased connection when its client leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Leave {
    /// DISCARD ALL before the next client: session mode, a pinned client (temp tables,
    /// advisory locks, LISTENs, cursors, PREPAREs), state never confirmed, or asked before.
    pub discard: bool,
    /// The connection goes through the reset (cancel what runs, drain, ROLLBACK, DISCARD
    /// ALL when `discard`) rather than straight back to the pool.
    pub dirty: bool,
}

/// The client is gone (`clean`: the connection owes nothing and is idle, see
/// `ServerConn::is_clean`).
pub(super) fn on_client_gone(s: &SessionView, clean: bool) -> Leave {
    let discard = s.lease.is_some_and(|l| l.needs_discard)
        || s.pinned
        || s.mode == PoolMode::Session
        || s.state_unaccounted;
    Leave {
        discard,
        dirty: !clean || s.replies_owed || discard,
    }
}

/// What the client hears when its server connection fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lost {
    /// Nothing of the client's was in flight (a confirmation is maitred's own): it goes on
    /// with a new connection at its next message.
    Continue,
    /// The client had work in flight, or kept its connection (session mode, pinned): FATAL.
    Fatal,
}

/// `only_confirmation`: the replies owed are at most the confirmation's; `confirming`: a
/// confirmation is in flight (its ReadyForQuery is owed).
pub(super) fn on_server_lost(s: &SessionView, only_confirmation: bool, confirming: bool) -> Lost {
    let idle = s.lease.is_some_and(|l| {
        (!s.replies_owed || only_confirmation)
            && l.pending_sync <= u32::from(confirming)
            && !l.extended_open
            && l.tx_status == b'I'
    });
    if idle && s.mode != PoolMode::Session && !s.pinned {
        Lost::Continue
    } else {
        Lost::Fatal
    }
}

/// Statement mode: a transaction block the server reports open once every reply is in was
/// opened without BEGIN (the extended protocol): the session ends (FATAL) and the block is
/// rolled back with the reset.
/// (`tx_status`: the leased connection's, if any; checked on every server batch, so it
/// takes only what it reads.)
pub(super) fn statement_mode_block(
    mode: PoolMode,
    replies_owed: bool,
    tx_status: Option<u8>,
) -> bool {
    mode == PoolMode::Statement && !replies_owed && tx_status.is_some_and(|s| s != b'I')
}

/// The first pin a query's statements predict (applied when it is sent, or at the Bind).
pub(super) fn pin_of(effects: &[Effect]) -> Option<PinReason> {
    effects.iter().find_map(|e| match e {
        Effect::Pin(r) => Some(*r),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
