//! One test per rule of docs/mysql.md on release, pins and session state, named after it.

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
