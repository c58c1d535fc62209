//! The decisions that keep clients that share server connections apart, without I/O: when
//! a leased connection goes back to the pool and in what state, what pins a client, what
//! a command's session effect and the server's session-state reports do, and what a
//! connection needs before it runs a client's command (docs/mysql.md, "Transaction
//! pooling", "Session variables follow their client", "Pins"). The relay gathers the
//! facts from its session and the leased connection, asks here, and acts on the answer.
//!
//! Every rule has a test named after it below.

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
mod tests {
    use super::*;

    /// A leased connection in transaction mode between transactions, response read.
    fn idle() -> LeaseFacts {
        LeaseFacts {
            mode: PoolMode::Transaction,
            pinned: None,
            statement_open: false,
            load_data: false,
            sent_ahead: false,
            response_complete: true,
            in_transaction: false,
            needs_reset: false,
        }
    }

    /// Checks `after_response` for each (case, facts, expected verdict).
    fn check(table: &[(&str, LeaseFacts, Verdict)]) {
        for (case, facts, want) in table {
            assert_eq!(after_response(facts), *want, "{case}");
        }
    }

    fn mark(client: u32, sets: usize, vars_version: u64) -> SessionMark {
        SessionMark {
            client,
            sets,
            vars_version,
        }
    }

    fn vars(values: &[(&str, &str)]) -> SessionVars {
        let mut v = SessionVars::default();
        for (n, val) in values {
            v.set((*n).to_owned(), (*val).to_owned());
        }
        v
    }

    #[test]
    fn released_when_the_response_is_complete_outside_a_transaction() {
        check(&[(
            "autocommit statement, or COMMIT read",
            idle(),
            Verdict::Release,
        )]);
        assert_eq!(on_release(Verdict::Release, false), Some(Disposal::CheckIn));
    }

    #[test]
    fn kept_while_more_results_exist_or_the_response_is_unread() {
        check(&[(
            "SERVER_MORE_RESULTS_EXISTS, or bytes still on the socket",
            LeaseFacts {
                response_complete: false,
                ..idle()
            },
            Verdict::Keep(Keep::ResponseUnread),
        )]);
    }

    #[test]
    fn kept_while_server_status_in_trans_is_set() {
        check(&[(
            "BEGIN; or autocommit=0 with a statement run",
            LeaseFacts {
                in_transaction: true,
                ..idle()
            },
            Verdict::Keep(Keep::Transaction),
        )]);
    }

    #[test]
    fn kept_while_a_cursor_or_long_data_is_open() {
        check(&[(
            "CURSOR_TYPE_READ_ONLY execute, COM_STMT_SEND_LONG_DATA",
            LeaseFacts {
                statement_open: true,
                ..idle()
            },
            Verdict::Keep(Keep::StatementOpen),
        )]);
    }

    #[test]
    fn kept_while_load_data_local_is_sending_its_file() {
        check(&[(
            "LOAD DATA LOCAL INFILE in progress",
            LeaseFacts {
                load_data: true,
                response_complete: false,
                ..idle()
            },
            Verdict::Keep(Keep::LoadData),
        )]);
    }

    #[test]
    fn a_pinned_client_keeps_its_connection_for_the_rest_of_its_session() {
        let table: Vec<_> = PinReason::ALL
            .iter()
            .map(|r| {
                (
                    r.as_str(),
                    LeaseFacts {
                        pinned: Some(*r),
                        ..idle()
                    },
                    Verdict::Keep(Keep::Pinned(*r)),
                )
            })
            .collect();
        check(&table);
        // Also after UNLOCK TABLES / RELEASE_LOCK(): the pin is not lifted by them.
        assert_eq!(
            new_pin(
                PoolMode::Transaction,
                Some(PinReason::LockTables),
                PinReason::GetLock
            ),
            None
        );
    }

    #[test]
    fn session_mode_keeps_the_connection_until_the_client_leaves() {
        check(&[(
            "session mode, idle",
            LeaseFacts {
                mode: PoolMode::Session,
                ..idle()
            },
            Verdict::Keep(Keep::SessionMode),
        )]);
    }

    #[test]
    fn send_ahead_hands_the_connection_over_instead_of_releasing_it() {
        check(&[(
            "a queued client's command written behind ours",
            LeaseFacts {
                sent_ahead: true,
                ..idle()
            },
            Verdict::Keep(Keep::SentAhead),
        )]);
    }

    #[test]
    fn call_resets_the_connection_before_another_client_gets_it() {
        let facts = LeaseFacts {
            needs_reset: true,
            ..idle()
        };
        check(&[("CALL p()", facts, Verdict::ResetFirst)]);
        assert_eq!(
            on_release(Verdict::ResetFirst, false),
            Some(Disposal::Reset)
        );
        assert_eq!(on_release(Verdict::Release, false), Some(Disposal::CheckIn));
        assert_eq!(on_release(Verdict::Keep(Keep::Transaction), false), None);
    }

    #[test]
    fn a_connection_a_kill_is_aimed_at_is_closed_never_handed_over() {
        for (case, verdict) in [
            ("released", Verdict::Release),
            ("released through a reset", Verdict::ResetFirst),
        ] {
            assert_eq!(on_release(verdict, true), Some(Disposal::Close), "{case}");
        }
        assert_eq!(client_gone(&idle(), true), Disposal::Close);
    }

    #[test]
    fn a_client_that_leaves_with_a_transaction_open_a_response_unread_or_pinned_state_is_reset() {
        let table = [
            (
                "transaction open",
                LeaseFacts {
                    in_transaction: true,
                    ..idle()
                },
            ),
            (
                "response unread",
                LeaseFacts {
                    response_complete: false,
                    ..idle()
                },
            ),
            (
                "pinned",
                LeaseFacts {
                    pinned: Some(PinReason::TemporaryTable),
                    ..idle()
                },
            ),
            (
                "cursor open",
                LeaseFacts {
                    statement_open: true,
                    ..idle()
                },
            ),
            (
                "LOAD DATA in progress",
                LeaseFacts {
                    load_data: true,
                    response_complete: false,
                    ..idle()
                },
            ),
            (
                "after a CALL",
                LeaseFacts {
                    needs_reset: true,
                    ..idle()
                },
            ),
        ];
        for (case, facts) in table {
            assert_eq!(client_gone(&facts, false), Disposal::Reset, "{case}");
        }
        assert_eq!(client_gone(&idle(), false), Disposal::CheckIn);
    }

    #[test]
    fn in_session_mode_every_connection_is_reset_when_its_client_leaves() {
        let facts = LeaseFacts {
            mode: PoolMode::Session,
            ..idle()
        };
        assert_eq!(client_gone(&facts, false), Disposal::Reset);
    }

    #[test]
    fn a_client_that_leaves_with_a_command_sent_ahead_closes_the_connection() {
        let facts = LeaseFacts {
            sent_ahead: true,
            ..idle()
        };
        assert_eq!(client_gone(&facts, false), Disposal::Close);
    }

    #[test]
    fn state_that_cannot_move_pins_with_its_reason() {
        for r in PinReason::ALL {
            assert_eq!(
                on_query(QueryEffect::Pin(r), false, 0),
                OnQuery::Pin(r),
                "{}",
                r.as_str()
            );
            assert_eq!(on_query(QueryEffect::Pin(r), true, 0), OnQuery::Pin(r));
            assert_eq!(new_pin(PoolMode::Transaction, None, r), Some(r));
        }
    }

    #[test]
    fn only_the_first_pin_counts_and_session_mode_pins_nothing() {
        let table = [
            (PoolMode::Transaction, None, Some(PinReason::GetLock)),
            (PoolMode::Transaction, Some(PinReason::UserVariable), None),
            (PoolMode::Session, None, None),
        ];
        for (mode, pinned, want) in table {
            assert_eq!(new_pin(mode, pinned, PinReason::GetLock), want);
        }
    }

    #[test]
    fn with_session_tracking_sets_follow_their_client_without_pinning() {
        for effect in [QueryEffect::SessionSet, QueryEffect::SessionSetList] {
            assert_eq!(on_query(effect.clone(), true, 0), OnQuery::Forward);
            assert_eq!(on_query(effect, true, MAX_SESSION_SETS), OnQuery::Forward);
        }
        assert_eq!(
            on_reported(true, false),
            Reported {
                mark_owner: true,
                pin: None
            }
        );
    }

    #[test]
    fn without_tracking_sets_are_recorded_up_to_64_then_pin() {
        let table = [
            (0, OnQuery::RecordSet),
            (MAX_SESSION_SETS - 1, OnQuery::RecordSet),
            (MAX_SESSION_SETS, OnQuery::Pin(PinReason::SessionVariable)),
        ];
        for (sets, want) in table {
            assert_eq!(
                on_query(QueryEffect::SessionSet, false, sets),
                want,
                "{sets}"
            );
        }
        assert_eq!(MAX_SESSION_SETS, 64);
    }

    #[test]
    fn without_tracking_a_set_inside_a_statement_list_pins() {
        assert_eq!(
            on_query(QueryEffect::SessionSetList, false, 0),
            OnQuery::Pin(PinReason::SessionVariable)
        );
    }

    #[test]
    fn use_makes_the_database_the_clients() {
        for tracked in [false, true] {
            assert_eq!(
                on_query(QueryEffect::Use("app".into()), tracked, 0),
                OnQuery::Database("app".into())
            );
        }
        assert_eq!(on_query(QueryEffect::None, false, 0), OnQuery::Forward);
    }

    #[test]
    fn a_change_the_server_reports_without_naming_it_pins_session_state() {
        let table = [
            (false, false, None),
            (true, false, None),
            (false, true, Some(PinReason::SessionState)),
            (true, true, Some(PinReason::SessionState)),
        ];
        for (named, unknown, pin) in table {
            let r = on_reported(named, unknown);
            assert_eq!((r.mark_owner, r.pin), (named, pin), "{named} {unknown}");
        }
    }

    #[test]
    fn landing_on_another_clients_session_resets_first_then_replays_its_values() {
        let v = vars(&[("time_zone", "+01:00")]);
        let l = landing(Some(mark(2, 0, 5)), mark(1, 0, v.version()), &v);
        assert_eq!(
            l,
            Landing {
                reset_first: true,
                sets_from: 0,
                replay_vars: true,
                mark_owner: true
            }
        );
    }

    #[test]
    fn a_client_without_variables_landing_on_another_session_gets_just_the_reset() {
        let v = SessionVars::default();
        let l = landing(Some(mark(2, 1, 5)), mark(1, 0, v.version()), &v);
        assert_eq!(
            l,
            Landing {
                reset_first: true,
                sets_from: 0,
                replay_vars: false,
                mark_owner: false
            }
        );
    }

    #[test]
    fn landing_back_on_the_connection_with_its_latest_values_costs_nothing() {
        let v = vars(&[("sql_mode", "ANSI")]);
        let me = mark(1, 2, v.version());
        let l = landing(Some(me), me, &v);
        assert!(!l.reset_first && !l.replay_vars, "{l:?}");
        assert_eq!(l.sets_from, 2, "no SET replayed again");
        let none = SessionVars::default();
        let l = landing(None, mark(1, 0, none.version()), &none);
        assert_eq!(
            l,
            Landing {
                reset_first: false,
                sets_from: 0,
                replay_vars: false,
                mark_owner: false
            },
            "a client with the server's defaults on a connection with them"
        );
    }

    #[test]
    fn landing_on_the_servers_defaults_replays_without_a_reset() {
        let v = vars(&[("time_zone", "+01:00")]);
        let l = landing(None, mark(1, 0, v.version()), &v);
        assert!(!l.reset_first && l.replay_vars && l.mark_owner, "{l:?}");
        // Recorded SET statements (a server without tracking) are replayed from the first.
        let none = SessionVars::default();
        let l = landing(None, mark(1, 3, none.version()), &none);
        assert_eq!((l.reset_first, l.sets_from, l.mark_owner), (false, 0, true));
    }

    #[test]
    fn landing_back_after_newer_changes_replays_only_what_changed() {
        let mut v = vars(&[("time_zone", "+01:00")]);
        let before = mark(1, 1, v.version());
        v.set("time_zone".into(), "+02:00".into());
        let l = landing(Some(before), mark(1, 3, v.version()), &v);
        assert_eq!(
            l,
            Landing {
                reset_first: false,
                sets_from: 1,
                replay_vars: true,
                mark_owner: true
            }
        );
    }

    #[test]
    fn after_the_clients_own_com_reset_connection_its_old_session_is_reset_first() {
        let mut v = vars(&[("time_zone", "+01:00")]);
        let old = mark(1, 0, v.version());
        v.clear();
        let l = landing(Some(old), mark(1, 0, v.version()), &v);
        assert!(l.reset_first && !l.replay_vars, "{l:?}");
        // Fewer recorded SETs than the connection carries: the client reset since.
        let none = SessionVars::default();
        let l = landing(Some(mark(1, 4, 0)), mark(1, 1, none.version()), &none);
        assert!(l.reset_first && l.sets_from == 0, "{l:?}");
    }
}
