//! The decisions that keep clients that share server connections apart, without I/O: when
//! a leased connection goes back to the pool and in what state, what pins a client, what
//! a command's session effect and the server's session-state reports do, and what a
//! connection needs before it runs a client's command (docs/mysql.md, "Transaction
//! pooling", "Session variables follow their client", "Pins"). The relay gathers the
//! facts from its session and the leased connection, asks here, and acts on the answer.
//!
//! Every rule has a test named after it (`isolation/tests.rs`).

use super::session_vars::{Replay, SessionVars};
use crate::backend::SessionMark;
use crate::pool::{PinReason, PoolMode};
use crate::sql_effects::QueryEffect;

/// Session SETs recorded (and replayed) per client when the server does not report
/// variable changes; beyond that the client is pinned instead.
pub(super) const MAX_SESSION_SETS: usize = 64;

/// What the relay knows of its leased connection when a command's response may have
/// ended, or when its client leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LeaseFacts {
    pub mode: PoolMode,
    /// The client is pinned to this connection, and why.
    pub pinned: Option<PinReason>,
    /// A cursor (COM_STMT_EXECUTE with CURSOR_TYPE_READ_ONLY) or long data
    /// (COM_STMT_SEND_LONG_DATA) is open on the connection.
    pub statement_open: bool,
    /// LOAD DATA LOCAL: the client is sending its file.
    pub load_data: bool,
    /// A queued client's command was sent ahead behind the one in flight: the connection
    /// goes to that client once the response is read.
    pub sent_ahead: bool,
    /// The response is read to its end: the last OK/EOF had no SERVER_MORE_RESULTS_EXISTS
    /// and no byte of the server's is still unread.
    pub response_complete: bool,
    /// SERVER_STATUS_IN_TRANS in the last status flags.
    pub in_transaction: bool,
    /// The connection may carry what the server does not report (a `CALL` ran on it).
    pub needs_reset: bool,
}

/// Why the client keeps its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// Session mode: the connection is the client's until it leaves.
    SessionMode,
    Pinned(PinReason),
    /// A cursor or long data is open.
    StatementOpen,
    LoadData,
    /// It is handed to the client whose command was sent ahead, not released.
    SentAhead,
    /// The response is not read to its end.
    ResponseUnread,
    Transaction,
}

/// What becomes of the leased connection once a response may have ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    Keep(Keep),
    /// Back to the pool as it is.
    Release,
    /// Back to the pool through a reset (COM_RESET_CONNECTION) before anyone else gets it.
    ResetFirst,
}

/// Transaction mode: the connection goes back when the response is complete, no
/// transaction is open, no cursor or long data is open, and the client is not pinned.
pub(super) fn after_response(f: &LeaseFacts) -> Verdict {
    let keep = if f.mode != PoolMode::Transaction {
        Some(Keep::SessionMode)
    } else if let Some(r) = f.pinned {
        Some(Keep::Pinned(r))
    } else if f.statement_open {
        Some(Keep::StatementOpen)
    } else if f.sent_ahead {
        Some(Keep::SentAhead)
    } else if f.load_data {
        Some(Keep::LoadData)
    } else if !f.response_complete {
        Some(Keep::ResponseUnread)
    } else if f.in_transaction {
        Some(Keep::Transaction)
    } else {
        None
    };
    match keep {
        Some(k) => Verdict::Keep(k),
        None if f.needs_reset => Verdict::ResetFirst,
        None => Verdict::Release,
    }
}

/// How a connection its client lets go of leaves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Disposal {
    /// Back to the pool as it is.
    CheckIn,
    /// Reset (drain, COM_RESET_CONNECTION, COM_INIT_DB), then back; closed if that fails.
    Reset,
    /// Closed.
    Close,
}

/// A released connection ([`after_response`]) whose thread a KILL is on its way to
/// (`kill_aimed`) is closed: nobody else may run on it.
pub(super) fn on_release(verdict: Verdict, kill_aimed: bool) -> Option<Disposal> {
    match verdict {
        Verdict::Keep(_) => None,
        _ if kill_aimed => Some(Disposal::Close),
        Verdict::ResetFirst => Some(Disposal::Reset),
        Verdict::Release => Some(Disposal::CheckIn),
    }
}

/// The client left (or its session ended): its connection is closed when two responses
/// are owed on it (a command sent ahead) or a KILL is aimed at it; reset in session mode,
/// when pinned, mid-transaction, mid-response, with a cursor or long data open, or with
/// state the server does not report; otherwise checked in as it is.
pub(super) fn client_gone(f: &LeaseFacts, kill_aimed: bool) -> Disposal {
    if f.sent_ahead || kill_aimed {
        Disposal::Close
    } else if f.mode == PoolMode::Session
        || f.pinned.is_some()
        || f.statement_open
        || f.load_data
        || !f.response_complete
        || f.in_transaction
        || f.needs_reset
    {
        Disposal::Reset
    } else {
        Disposal::CheckIn
    }
}

/// The pin `reason` adds to a client pinned for `pinned`: only the first pin of a session
/// counts (it lasts until the client leaves or resets its session), and only in
/// transaction mode (in session mode the connection is the client's anyway).
pub(super) fn new_pin(
    mode: PoolMode,
    pinned: Option<PinReason>,
    reason: PinReason,
) -> Option<PinReason> {
    (mode == PoolMode::Transaction && pinned.is_none()).then_some(reason)
}

/// What the relay does about a COM_QUERY's session effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OnQuery {
    /// Nothing to follow (or the server reports it).
    Forward,
    /// `USE db`: the client's database once the server says OK.
    Database(String),
    /// A session `SET` the server will not report: its text is recorded once the server
    /// says OK, and replayed where the client lands.
    RecordSet,
    Pin(PinReason),
}

/// A query's effect, on a connection that reports variable changes (`tracked`) or not,
/// for a client with `sets` SET statements recorded.
pub(super) fn on_query(effect: QueryEffect, tracked: bool, sets: usize) -> OnQuery {
    match effect {
        QueryEffect::None => OnQuery::Forward,
        QueryEffect::Use(db) => OnQuery::Database(db),
        // What the server reports is recorded when the response is relayed.
        QueryEffect::SessionSet | QueryEffect::SessionSetList if tracked => OnQuery::Forward,
        QueryEffect::SessionSet if sets < MAX_SESSION_SETS => OnQuery::RecordSet,
        QueryEffect::SessionSet | QueryEffect::SessionSetList => {
            OnQuery::Pin(PinReason::SessionVariable)
        }
        QueryEffect::Pin(r) => OnQuery::Pin(r),
    }
}

/// What the session-state changes an OK packet reported do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reported {
    /// The connection now carries the client's variables (up to their latest version).
    pub mark_owner: bool,
    pub pin: Option<PinReason>,
}

/// Variables the server named (`variables_changed`: among those replayed) follow the
/// client; a change it reports without naming it (`unknown`) pins.
pub(super) fn on_reported(variables_changed: bool, unknown: bool) -> Reported {
    Reported {
        mark_owner: variables_changed,
        pin: unknown.then_some(PinReason::SessionState),
    }
}

/// What a leased connection needs before it runs the client's command, as far as the
/// client's session (SET statements and tracked variables) goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Landing {
    /// COM_RESET_CONNECTION first: the connection carries another session.
    pub reset_first: bool,
    /// The client's recorded SET statements from this one on are replayed.
    pub sets_from: usize,
    /// One `SET @@SESSION...` with the client's tracked values.
    pub replay_vars: bool,
    /// The connection then carries the client's session.
    pub mark_owner: bool,
}

/// A client (`me`: its id, its SET statements, its variables' version) landing on a
/// connection that carries `owner`'s session (`None`: the server's defaults).
pub(super) fn landing(owner: Option<SessionMark>, me: SessionMark, vars: &SessionVars) -> Landing {
    let (applied, replay) = match owner {
        Some(m) if m.client == me.client && m.sets <= me.sets => {
            (m.sets, vars.replay_from(m.vars_version))
        }
        Some(_) => (0, Replay::ResetFirst),
        None if vars.is_empty() => (0, Replay::Nothing),
        None => (0, Replay::All),
    };
    let reset_first = replay == Replay::ResetFirst;
    Landing {
        reset_first,
        sets_from: if reset_first { 0 } else { applied },
        replay_vars: replay != Replay::Nothing && !vars.is_empty(),
        mark_owner: me.sets > 0 || !vars.is_empty(),
    }
}

#[cfg(test)]
mod tests;
