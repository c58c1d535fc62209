//! The rows of the "Session state in transaction mode" table of docs/postgres.md.

use super::*;

// Session state in transaction mode: the table's rows.

#[test]
fn row_plain_traffic_is_released_at_the_end_of_the_transaction() {
    for (sql, tags) in [
        (
            "SELECT abalance FROM pgbench_accounts WHERE aid = 1",
            &["SELECT 1"][..],
        ),
        ("INSERT INTO t VALUES (1)", &["INSERT 0 1"]),
        ("UPDATE t SET a = 1", &["UPDATE 1"]),
        ("DELETE FROM t", &["DELETE 3"]),
        (
            "BEGIN; UPDATE t SET a = lower('x'); COMMIT",
            &["BEGIN", "UPDATE 1", "COMMIT"],
        ),
        ("WITH x AS (SELECT 1) SELECT * FROM x", &["SELECT 1"]),
        ("VALUES (1)", &["SELECT 1"]),
        ("TABLE t", &["SELECT 0"]),
    ] {
        let t = ran(sql, tags);
        assert_eq!(
            end_of_batch(&view(&t)),
            ReleaseDecision::Release { discard: false },
            "{sql}"
        );
    }
}

#[test]
fn row_set_reset_discard_all_and_literal_set_config_are_followed_without_confirmation() {
    for (sql, tags) in [
        ("SET search_path TO app", &["SET"][..]),
        ("SET SESSION statement_timeout = 5", &["SET"]),
        ("SET TIME ZONE 'UTC'", &["SET"]),
        ("SET SCHEMA 'app'", &["SET"]),
        ("SET NAMES 'UTF8'", &["SET"]),
        ("SET ROLE app", &["SET"]),
        ("SET SESSION AUTHORIZATION app", &["SET"]),
        ("RESET search_path", &["RESET"]),
        ("RESET ALL", &["RESET"]),
        ("DISCARD ALL", &["DISCARD ALL"]),
        (
            "SELECT set_config('app.tenant', '42', false)",
            &["SELECT 1"],
        ),
    ] {
        let mut t = ran(sql, tags);
        t.on_parameter_status();
        let effects = effects(sql);
        assert!(
            effects.iter().any(|e| matches!(
                e,
                Effect::Set { .. } | Effect::Reset { .. } | Effect::ResetAll
            )),
            "{sql} is followed: {effects:?}"
        );
        assert_eq!(
            end_of_batch(&view(&t)),
            ReleaseDecision::Release { discard: false },
            "{sql}"
        );
    }
}

#[test]
fn row_set_local_set_transaction_set_constraints_and_local_set_config_follow_nothing() {
    for sql in [
        "SET LOCAL search_path TO app",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET CONSTRAINTS ALL DEFERRED",
        "SELECT set_config('search_path', 'app', true)",
    ] {
        assert!(
            !effects(sql).iter().any(|e| matches!(
                e,
                Effect::Set { .. } | Effect::Reset { .. } | Effect::ResetAll | Effect::Pin(_)
            )),
            "{sql} leaves nothing to follow or pin"
        );
    }
    for (sql, tags) in [
        (
            "BEGIN; SET CONSTRAINTS ALL DEFERRED; COMMIT",
            &["BEGIN", "SET CONSTRAINTS", "COMMIT"][..],
        ),
        (
            "SELECT set_config('search_path', 'app', true)",
            &["SELECT 1"],
        ),
    ] {
        let t = ran(sql, tags);
        assert_eq!(
            end_of_batch(&view(&t)),
            ReleaseDecision::Release { discard: false },
            "{sql}"
        );
    }
}

/// SET LOCAL and SET TRANSACTION end with their transaction: nothing to follow, and the
/// server's `SET` tag is the one they predict, so no confirmation (an application that sets
/// `app.tenant` LOCAL in every transaction pays nothing). A `SET` tag nobody predicted still
/// is confirmed (rule 3).
#[test]
fn row_set_local_and_set_transaction_are_released_without_confirmation() {
    for sql in [
        "BEGIN; SET LOCAL search_path TO app; COMMIT",
        "BEGIN; /* tenant */ SET LOCAL app.tenant = '42'; SELECT 1; COMMIT",
        "BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE; COMMIT",
    ] {
        let tags: &[&str] = if sql.contains("SELECT") {
            &["BEGIN", "SET", "SELECT 1", "COMMIT"]
        } else {
            &["BEGIN", "SET", "COMMIT"]
        };
        let t = ran(sql, tags);
        assert_eq!(
            end_of_batch(&view(&t)),
            ReleaseDecision::Release { discard: false },
            "{sql}"
        );
    }
    let t = ran("BEGIN; SELECT 1; COMMIT", &["BEGIN", "SET", "COMMIT"]);
    assert_eq!(end_of_batch(&view(&t)), ReleaseDecision::Confirm);
}

#[test]
fn row_do_call_load_and_sql_execute_are_confirmed_then_followed_with_discard_all() {
    for (sql, tag) in [
        ("DO $$ BEGIN PERFORM 1; END $$", "DO"),
        ("CALL p()", "CALL"),
        ("LOAD 'auto_explain'", "LOAD"),
        ("EXECUTE s", "SELECT 1"),
    ] {
        let mut t = ran(sql, &[tag]);
        let verdict = confirm(&mut t, ["0"; 6]);
        assert!(matches!(verdict, Verdict::Follow(_)), "{sql}: {verdict:?}");
        // Followed: the relay sets needs_discard (custom settings maitred cannot name).
        let after = SessionView {
            lease: Some(LeaseView {
                needs_discard: true,
                ..IDLE
            }),
            ..view(&t)
        };
        assert_eq!(
            end_of_batch(&after),
            ReleaseDecision::Release { discard: true },
            "{sql}"
        );
    }
}

#[test]
fn row_functions_not_known_to_be_harmless_are_confirmed() {
    for sql in [
        "SELECT app.f()",
        "SELECT my_function(1)",
        "SELECT set_config('app.tenant', $1, false)",
        "SELECT set_config('app.tenant', 'a' || 'b', false)",
        "SELECT public.lower('x')",
    ] {
        let t = ran(sql, &["SELECT 1"]);
        assert_eq!(end_of_batch(&view(&t)), ReleaseDecision::Confirm, "{sql}");
    }
}

#[test]
fn row_create_select_into_and_unclassified_commands_are_confirmed() {
    for (sql, tag) in [
        ("CREATE TABLE t (a int)", "CREATE TABLE"),
        ("SELECT 1 INTO t", "SELECT 1"),
        ("CREATE TABLE t AS SELECT 1", "SELECT 1"),
        (
            "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
            "SET",
        ),
        ("SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE", "SET"),
    ] {
        let t = ran(sql, &[tag]);
        assert_eq!(end_of_batch(&view(&t)), ReleaseDecision::Confirm, "{sql}");
    }
}

#[test]
fn row_ambiguous_text_is_confirmed() {
    for sql in [
        "SELECT 'a\\'",
        "SELECT 1 /* never closed",
        "SELECT 'never closed",
    ] {
        let t = ran(sql, &["SELECT 1"]);
        assert_eq!(end_of_batch(&view(&t)), ReleaseDecision::Confirm, "{sql}");
    }
}

#[test]
fn row_state_that_cannot_move_pins_at_once_and_keeps_the_lease() {
    for (sql, reason) in [
        ("CREATE TEMP TABLE t (a int)", PinReason::TempTable),
        (
            "/* c */ CREATE TEMPORARY TABLE t (a int)",
            PinReason::TempTable,
        ),
        ("CREATE TABLE pg_temp.t (a int)", PinReason::TempTable),
        ("SELECT 1 INTO TEMP t", PinReason::TempTable),
        ("PREPARE p AS SELECT 1", PinReason::SqlPrepare),
        ("BEGIN; LISTEN ch; COMMIT", PinReason::Listen),
        (
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            PinReason::HoldCursor,
        ),
        ("SELECT pg_advisory_lock(1)", PinReason::AdvisoryLock),
        (
            "SELECT pg_try_advisory_lock_shared(1)",
            PinReason::AdvisoryLock,
        ),
    ] {
        assert_eq!(pin_of(&effects(sql)), Some(reason), "{sql}");
        let pinned = SessionView {
            pinned: true,
            ..SessionView::default()
        };
        assert_eq!(
            end_of_batch(&pinned),
            ReleaseDecision::Keep(Keep::Pinned),
            "{sql}"
        );
    }
    assert_eq!(pin_of(&effects("SELECT pg_advisory_xact_lock(1)")), None);
}

#[test]
fn row_state_found_by_a_confirmation_pins_after_the_transaction() {
    for (counts, reason) in [
        (["1", "0", "0", "0", "0", "0"], PinReason::SqlPrepare),
        (["0", "1", "0", "0", "0", "0"], PinReason::Listen),
        (["0", "0", "1", "0", "0", "0"], PinReason::HoldCursor),
        (["0", "0", "0", "1", "0", "0"], PinReason::TempTable),
        (["0", "0", "0", "0", "1", "0"], PinReason::TempTable),
        (["0", "0", "0", "0", "0", "1"], PinReason::AdvisoryLock),
    ] {
        let mut t = ran("DO $$ BEGIN PERFORM 1; END $$", &["DO"]);
        assert_eq!(confirm(&mut t, counts), Verdict::Pin(reason));
        let pinned = SessionView {
            pinned: true,
            ..view(&t)
        };
        assert_eq!(end_of_batch(&pinned), ReleaseDecision::Keep(Keep::Pinned));
        assert_eq!(
            on_client_gone(&pinned, true),
            Leave {
                discard: true,
                dirty: true
            },
            "DISCARD ALL when it leaves"
        );
    }
}

#[test]
fn row_maitred_statement_names_are_refused() {
    for sql in [
        "PREPARE mtd_1 AS SELECT 1",
        "EXECUTE mtd_1",
        "DEALLOCATE mtd_1",
    ] {
        assert!(scan_text(Some(sql)).refusal().is_some(), "{sql}");
    }
    assert!(scan_text(Some("PREPARE app_1 AS SELECT 1"))
        .refusal()
        .is_none());
}

#[test]
fn row_search_path_naming_pg_catalog_confirms_every_transaction() {
    let mut t = ran("SELECT 1", &["SELECT 1"]);
    t.shadowable_search_path();
    assert_eq!(end_of_batch(&view(&t)), ReleaseDecision::Confirm);
    t.lease_ended();
    let mut t = ran("SELECT 1", &["SELECT 1"]);
    t.shadowable_search_path();
    assert_eq!(
        end_of_batch(&view(&t)),
        ReleaseDecision::Confirm,
        "the next one too"
    );
}
