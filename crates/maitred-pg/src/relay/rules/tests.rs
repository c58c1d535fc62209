//! One test per rule of docs/postgres.md on release, pins, follow/confirm and send
//! ahead; the rows of the "Session state in transaction mode" table are `row_*`. The
//! predictions and verdicts come from the real lexer and the real isolation tracker.

use super::*;
use crate::confirm::{data_row, Verdict};
use crate::relay::isolation::Tracker;
use crate::sql_effects::{effects, scan_text};

pub(super) const IDLE: LeaseView = LeaseView {
    pending_sync: 0,
    extended_open: false,
    tx_status: b'I',
    unread_body: 0,
    buffered: false,
    needs_discard: false,
};

/// A tracker after `sql` was sent and answered with `tags`.
pub(super) fn ran(sql: &str, tags: &[&str]) -> Tracker {
    let mut t = Tracker::default();
    t.predicted(&effects(sql));
    for tag in tags {
        t.on_command_complete(format!("{tag}\0").as_bytes());
    }
    t
}

pub(super) fn view(t: &Tracker) -> SessionView {
    SessionView {
        needs_confirmation: t.needs_confirmation(),
        state_unaccounted: t.state_unaccounted(),
        ..SessionView::default()
    }
}

pub(super) fn with_lease(lease: LeaseView) -> SessionView {
    SessionView {
        lease: Some(lease),
        ..SessionView::default()
    }
}

/// The confirmation's row: no settings, role none, these counts (SQL prepared,
/// listening, hold cursors, temp relations, temp functions, advisory locks).
fn confirmation_row(counts: [&str; 6]) -> Vec<u8> {
    let mut cols = vec![None, Some("none"), Some("app")];
    cols.extend(counts.map(Some));
    data_row(&cols)
}

/// Runs the confirmation the end of the batch asked for; the tracker's verdict.
pub(super) fn confirm(t: &mut Tracker, counts: [&str; 6]) -> Verdict {
    assert_eq!(end_of_batch(&view(t)), ReleaseDecision::Confirm);
    t.start_confirmation(std::iter::empty()).expect("a cause");
    let waiting = SessionView {
        replies_owed: true,
        lease: Some(LeaseView {
            pending_sync: 1,
            ..IDLE
        }),
        ..view(t)
    };
    assert_eq!(
        end_of_batch(&waiting),
        ReleaseDecision::Keep(Keep::RepliesOwed),
        "kept while the confirmation runs"
    );
    t.on_confirm_row(&confirmation_row(counts));
    t.finish_confirmation(Some("app")).expect("confirming").1
}

mod send_ahead;
mod table;

// Pool modes.

#[test]
fn transaction_mode_releases_when_every_reply_is_in_no_batch_open_and_idle() {
    let rows: [(&str, LeaseView, ReleaseDecision); 9] = [
        ("idle", IDLE, ReleaseDecision::Release { discard: false }),
        (
            "ReadyForQuery owed",
            LeaseView {
                pending_sync: 1,
                ..IDLE
            },
            ReleaseDecision::Keep(Keep::Busy(Busy::ReadyForQueryOwed)),
        ),
        (
            "extended batch open",
            LeaseView {
                extended_open: true,
                ..IDLE
            },
            ReleaseDecision::Keep(Keep::Busy(Busy::BatchOpen)),
        ),
        (
            "in a transaction block",
            LeaseView {
                tx_status: b'T',
                ..IDLE
            },
            ReleaseDecision::Keep(Keep::Busy(Busy::InTransaction)),
        ),
        (
            "in a failed transaction block",
            LeaseView {
                tx_status: b'E',
                ..IDLE
            },
            ReleaseDecision::Keep(Keep::Busy(Busy::InTransaction)),
        ),
        (
            "a message forwarded in part",
            LeaseView {
                unread_body: 10,
                ..IDLE
            },
            ReleaseDecision::Keep(Keep::Busy(Busy::MessageInFlight)),
        ),
        (
            "server bytes not handled",
            LeaseView {
                buffered: true,
                ..IDLE
            },
            ReleaseDecision::Keep(Keep::Busy(Busy::MessageInFlight)),
        ),
        (
            "needs DISCARD ALL",
            LeaseView {
                needs_discard: true,
                ..IDLE
            },
            ReleaseDecision::Release { discard: true },
        ),
        (
            "implicit transaction of a batch, ReadyForQuery owed",
            LeaseView {
                pending_sync: 2,
                extended_open: true,
                ..IDLE
            },
            ReleaseDecision::Keep(Keep::Busy(Busy::ReadyForQueryOwed)),
        ),
    ];
    for (name, lease, want) in rows {
        assert_eq!(end_of_batch(&with_lease(lease)), want, "{name}");
    }
    let owed = SessionView {
        replies_owed: true,
        ..SessionView::default()
    };
    assert_eq!(
        end_of_batch(&owed),
        ReleaseDecision::Keep(Keep::RepliesOwed)
    );
    let none = SessionView {
        lease: None,
        ..SessionView::default()
    };
    assert_eq!(end_of_batch(&none), ReleaseDecision::NoLease);
}

#[test]
fn statement_mode_releases_like_transaction_mode() {
    for lease in [
        IDLE,
        LeaseView {
            pending_sync: 1,
            ..IDLE
        },
    ] {
        let t = SessionView {
            mode: PoolMode::Statement,
            ..with_lease(lease)
        };
        assert_eq!(end_of_batch(&t), end_of_batch(&with_lease(lease)));
    }
}

#[test]
fn statement_mode_block_opened_without_begin_ends_the_session() {
    let statement = PoolMode::Statement;
    assert!(statement_mode_block(statement, false, Some(b'T')));
    assert!(statement_mode_block(statement, false, Some(b'E')));
    assert!(
        !statement_mode_block(statement, true, Some(b'T')),
        "replies owed"
    );
    assert!(!statement_mode_block(statement, false, Some(b'I')));
    assert!(!statement_mode_block(statement, false, None));
    assert!(!statement_mode_block(
        PoolMode::Transaction,
        false,
        Some(b'T')
    ));
    let begin = scan_text(Some("BEGIN"));
    assert!(
        begin.effects.contains(&Effect::Begin),
        "BEGIN is refused up front"
    );
}

#[test]
fn session_mode_keeps_the_lease_until_the_client_leaves_then_discard_all() {
    let mut t = ran("CALL p()", &["CALL"]);
    let s = SessionView {
        mode: PoolMode::Session,
        ..view(&t)
    };
    assert_eq!(
        end_of_batch(&s),
        ReleaseDecision::Keep(Keep::SessionMode),
        "no confirmation either"
    );
    t.lease_ended();
    let plain = SessionView {
        mode: PoolMode::Session,
        ..SessionView::default()
    };
    assert_eq!(
        end_of_batch(&plain),
        ReleaseDecision::Keep(Keep::SessionMode)
    );
    assert_eq!(
        on_client_gone(&plain, true),
        Leave {
            discard: true,
            dirty: true
        }
    );
}

#[test]
fn a_client_leaving_mid_transaction_leaves_its_connection_to_the_reset() {
    let in_block = with_lease(LeaseView {
        tx_status: b'T',
        ..IDLE
    });
    assert_eq!(
        on_client_gone(&in_block, false),
        Leave {
            discard: false,
            dirty: true
        },
        "cancel, drain, ROLLBACK; no DISCARD ALL"
    );
    let owed = SessionView {
        replies_owed: true,
        ..SessionView::default()
    };
    assert!(on_client_gone(&owed, true).dirty);
    assert_eq!(
        on_client_gone(&SessionView::default(), true),
        Leave {
            discard: false,
            dirty: false
        },
        "an idle connection goes straight back"
    );
}

// Fail closed.

#[test]
fn the_confirmation_waits_for_the_release_point() {
    let t = ran("CALL p()", &["CALL"]);
    let base = view(&t);
    assert_eq!(end_of_batch(&base), ReleaseDecision::Confirm);
    for (name, s, want) in [
        (
            "inside the block",
            SessionView {
                lease: Some(LeaseView {
                    tx_status: b'T',
                    ..IDLE
                }),
                ..base
            },
            ReleaseDecision::Keep(Keep::Busy(Busy::InTransaction)),
        ),
        (
            "batch open",
            SessionView {
                lease: Some(LeaseView {
                    extended_open: true,
                    ..IDLE
                }),
                ..base
            },
            ReleaseDecision::Keep(Keep::Busy(Busy::BatchOpen)),
        ),
        (
            "replies owed",
            SessionView {
                replies_owed: true,
                ..base
            },
            ReleaseDecision::Keep(Keep::RepliesOwed),
        ),
        (
            "a pinned client keeps its connection anyway",
            SessionView {
                pinned: true,
                ..base
            },
            ReleaseDecision::Keep(Keep::Pinned),
        ),
    ] {
        assert_eq!(end_of_batch(&s), want, "{name}");
    }
}

#[test]
fn a_client_leaving_before_the_confirmation_leaves_discard_all() {
    let mut t = ran("CALL p()", &["CALL"]);
    assert_eq!(
        on_client_gone(&view(&t), true),
        Leave {
            discard: true,
            dirty: true
        }
    );
    t.start_confirmation(std::iter::empty());
    assert_eq!(
        on_client_gone(&view(&t), false),
        Leave {
            discard: true,
            dirty: true
        },
        "while it runs"
    );
    // Released some other way (never in practice): still reset.
    assert_eq!(
        release(&view(&t)),
        ReleaseDecision::Release { discard: true }
    );
}

// Pinning.

#[test]
fn a_pinned_client_keeps_its_connection_then_discard_all() {
    let pinned = SessionView {
        pinned: true,
        ..SessionView::default()
    };
    assert_eq!(end_of_batch(&pinned), ReleaseDecision::Keep(Keep::Pinned));
    assert_eq!(
        on_client_gone(&pinned, true),
        Leave {
            discard: true,
            dirty: true
        }
    );
}

// A lost server connection.

#[test]
fn a_lost_server_connection_is_fatal_only_with_work_in_flight() {
    let idle = SessionView::default();
    assert_eq!(on_server_lost(&idle, false, false), Lost::Continue);
    let confirming = SessionView {
        replies_owed: true,
        ..with_lease(LeaseView {
            pending_sync: 1,
            ..IDLE
        })
    };
    assert_eq!(
        on_server_lost(&confirming, true, true),
        Lost::Continue,
        "the confirmation is maitred's own"
    );
    for (name, s) in [
        (
            "query in flight",
            SessionView {
                replies_owed: true,
                ..with_lease(LeaseView {
                    pending_sync: 1,
                    ..IDLE
                })
            },
        ),
        (
            "in a block",
            with_lease(LeaseView {
                tx_status: b'T',
                ..IDLE
            }),
        ),
        (
            "batch open",
            with_lease(LeaseView {
                extended_open: true,
                ..IDLE
            }),
        ),
        (
            "session mode",
            SessionView {
                mode: PoolMode::Session,
                ..idle
            },
        ),
        (
            "pinned",
            SessionView {
                pinned: true,
                ..idle
            },
        ),
    ] {
        assert_eq!(on_server_lost(&s, false, false), Lost::Fatal, "{name}");
    }
}
