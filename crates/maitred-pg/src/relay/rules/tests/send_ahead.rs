//! Send ahead (docs/postgres.md): the claim and the hand-over.

use super::*;

// Send ahead.

#[test]
fn send_ahead_claims_only_behind_one_safe_request() {
    let one_query = with_lease(LeaseView {
        pending_sync: 1,
        ..IDLE
    });
    assert!(may_claim_successor(&one_query, true, 0, false));
    for (name, s, safe, left, buffered) in [
        ("not a safe request", one_query, false, 0, false),
        ("request not all handled", one_query, true, 1, false),
        ("more from the client", one_query, true, 0, true),
        (
            "a successor already",
            SessionView {
                successor: true,
                ..one_query
            },
            true,
            0,
            false,
        ),
        (
            "pinned",
            SessionView {
                pinned: true,
                ..one_query
            },
            true,
            0,
            false,
        ),
        (
            "state unaccounted",
            SessionView {
                state_unaccounted: true,
                ..one_query
            },
            true,
            0,
            false,
        ),
        (
            "no lease",
            SessionView {
                lease: None,
                ..one_query
            },
            true,
            0,
            false,
        ),
        (
            "an injected SET owed too",
            with_lease(LeaseView {
                pending_sync: 2,
                ..IDLE
            }),
            true,
            0,
            false,
        ),
        ("reply already in", with_lease(IDLE), true, 0, false),
        (
            "batch open",
            with_lease(LeaseView {
                pending_sync: 1,
                extended_open: true,
                ..IDLE
            }),
            true,
            0,
            false,
        ),
        (
            "in a block",
            with_lease(LeaseView {
                pending_sync: 1,
                tx_status: b'T',
                ..IDLE
            }),
            true,
            0,
            false,
        ),
        (
            "needs DISCARD ALL",
            with_lease(LeaseView {
                pending_sync: 1,
                needs_discard: true,
                ..IDLE
            }),
            true,
            0,
            false,
        ),
        (
            "message in flight",
            with_lease(LeaseView {
                pending_sync: 1,
                unread_body: 3,
                ..IDLE
            }),
            true,
            0,
            false,
        ),
    ] {
        assert!(!may_claim_successor(&s, safe, left, buffered), "{name}");
    }
}

#[test]
fn send_ahead_hands_over_once_our_replies_are_read_and_only_an_idle_connection() {
    let holder = SessionView {
        successor: true,
        replies_owed: true,
        ..with_lease(LeaseView {
            pending_sync: 2,
            ..IDLE
        })
    };
    assert_eq!(
        end_of_batch(&holder),
        ReleaseDecision::Keep(Keep::RepliesOwed)
    );
    let read = SessionView {
        successor: true,
        replies_owed: false,
        needs_confirmation: true,
        state_unaccounted: true,
        ..with_lease(LeaseView {
            pending_sync: 1,
            ..IDLE
        })
    };
    assert_eq!(
        end_of_batch(&read),
        ReleaseDecision::PassToSuccessor,
        "no confirmation with a successor's query on the wire"
    );
    let owes_successor = LeaseView {
        pending_sync: 1,
        ..IDLE
    };
    assert_eq!(hand_over(&owes_successor, false), HandOver::Pass);
    for (name, lease, unaccounted, want) in [
        (
            "state unaccounted",
            owes_successor,
            true,
            HandOver::Reset { discard: true },
        ),
        (
            "needs DISCARD ALL",
            LeaseView {
                needs_discard: true,
                ..owes_successor
            },
            false,
            HandOver::Reset { discard: true },
        ),
        (
            "a transaction left open",
            LeaseView {
                tx_status: b'T',
                ..owes_successor
            },
            false,
            HandOver::Reset { discard: false },
        ),
        (
            "batch open",
            LeaseView {
                extended_open: true,
                ..owes_successor
            },
            false,
            HandOver::Reset { discard: false },
        ),
        (
            "more owed",
            LeaseView {
                pending_sync: 2,
                ..owes_successor
            },
            false,
            HandOver::Reset { discard: false },
        ),
        (
            "message in flight",
            LeaseView {
                unread_body: 1,
                ..owes_successor
            },
            false,
            HandOver::Reset { discard: false },
        ),
    ] {
        assert_eq!(hand_over(&lease, unaccounted), want, "{name}");
    }
}
