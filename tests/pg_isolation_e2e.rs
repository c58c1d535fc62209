//! The adversarial isolation suite for PostgreSQL transaction mode: one server connection,
//! and for each kind of session state several spellings (comments before, inside and after;
//! several statements per string; functions, procedures and DO blocks; simple and extended
//! protocol). After client A runs one, client B (on the same, only server connection) must
//! see none of it, and A must keep its state (followed, or pinned to its connection).
//!
//! Each case prints `followed` or `pinned`; the suite fails on any leak. The same cases run
//! against PgBouncer by benches/isolation_compare.sh (docs/postgres.md has both columns).

use std::time::Duration;

use maitred_e2e::pg_client::connect;
use maitred_testkit::admin_http::{metric_sum_now, spawn_with_admin};
use maitred_testkit::{self as kit, Maitred};
use tokio_postgres::{Client, SimpleQueryMessage};

/// One way to leave session state behind.
struct Case {
    name: &'static str,
    /// Run by A (simple protocol).
    sql: &'static str,
    /// Returns the state's value; B must get `clean`, A must not.
    probe: &'static str,
    clean: &'static str,
}

const SEARCH_PATH: &str = "select current_setting('search_path')";
const ROLE: &str = "select current_user::text";
const TEMP: &str = "select count(*)::text from pg_class where relnamespace = pg_my_temp_schema()";
const PREPARED: &str = "select count(*)::text from pg_prepared_statements where from_sql";
const LISTENING: &str = "select count(*)::text from pg_listening_channels()";
const CURSORS: &str = "select count(*)::text from pg_cursors where is_holdable";
const ADVISORY: &str =
    "select count(*)::text from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()";
const CUSTOM: &str = "select coalesce(current_setting('myapp.tenant', true), '')";
const ISOLATION: &str = "select current_setting('default_transaction_isolation')";

fn cases() -> Vec<Case> {
    let path = |name, sql| Case {
        name,
        sql,
        probe: SEARCH_PATH,
        clean: "\"$user\", public",
    };
    let count = |name, sql, probe| Case {
        name,
        sql,
        probe,
        clean: "0",
    };
    vec![
        path(
            "comment before SET",
            "/* app=web,route=/orders */ SET search_path TO tenant_42, public",
        ),
        path(
            "line comment before SET",
            "-- tag\nSET search_path = tenant_42",
        ),
        path(
            "comments inside SET",
            "SET/* a */search_path/* b */TO/* c */tenant_42",
        ),
        path(
            "SET after a statement",
            "select 1; /* x */ set search_path to tenant_42",
        ),
        path(
            "SET before a statement",
            "set search_path to tenant_42; select 1 -- after",
        ),
        path(
            "SET in a DO block",
            "DO $$ BEGIN EXECUTE 'SET search_path TO tenant_42'; END $$",
        ),
        path(
            "set_config in a DO block",
            "/* x */ do $b$ begin perform set_config('search_path', 'tenant_42', false); end $b$",
        ),
        path(
            "set_config with an expression",
            "select set_config('search_path', 'tenant_' || '42', false)",
        ),
        path("a function that sets", "select maitred_iso_set_path()"),
        path("a procedure that sets", "CALL maitred_iso_proc()"),
        path("SET SCHEMA", "/**/ SET SCHEMA 'tenant_42'"),
        Case {
            name: "SET ROLE behind a comment",
            sql: "/* x */ SET ROLE maitred_iso_role",
            probe: ROLE,
            clean: "app",
        },
        Case {
            name: "SET SESSION ROLE",
            sql: "set session role maitred_iso_role",
            probe: ROLE,
            clean: "app",
        },
        Case {
            name: "SET ROLE in a DO block",
            sql: "DO $$ BEGIN EXECUTE 'SET ROLE maitred_iso_role'; END $$",
            probe: ROLE,
            clean: "app",
        },
        Case {
            name: "custom setting in a DO block",
            sql: "DO $$ BEGIN PERFORM set_config('myapp.tenant', '42', false); END $$",
            probe: CUSTOM,
            clean: "",
        },
        Case {
            name: "custom setting behind a comment",
            sql: "/* t */ SET myapp.tenant = '42'",
            probe: CUSTOM,
            clean: "",
        },
        Case {
            name: "SESSION CHARACTERISTICS",
            sql: "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            probe: ISOLATION,
            clean: "read committed",
        },
        count(
            "SELECT INTO TEMP",
            "SELECT 1 AS a INTO TEMP maitred_iso_t",
            TEMP,
        ),
        count(
            "CREATE TABLE pg_temp",
            "CREATE TABLE pg_temp.maitred_iso_t (a int)",
            TEMP,
        ),
        count(
            "CREATE TEMP behind a comment",
            "/* c */ CREATE TEMP TABLE maitred_iso_t (a int)",
            TEMP,
        ),
        count(
            "temp table in a DO block",
            "DO $$ BEGIN CREATE TEMP TABLE maitred_iso_t (a int); END $$",
            TEMP,
        ),
        count(
            "temp table in a function",
            "select maitred_iso_make_temp()",
            TEMP,
        ),
        count(
            "PREPARE behind a comment",
            "/* c */ PREPARE maitred_iso_p AS select 1",
            PREPARED,
        ),
        count(
            "PREPARE after a statement",
            "select 1; prepare maitred_iso_p as select 2",
            PREPARED,
        ),
        count(
            "LISTEN behind a comment",
            "/* c */ LISTEN maitred_iso_chan",
            LISTENING,
        ),
        count(
            "LISTEN in a DO block",
            "DO $$ BEGIN EXECUTE 'LISTEN maitred_iso_chan'; END $$",
            LISTENING,
        ),
        count(
            "WITH HOLD cursor behind a comment",
            "/* c */ DECLARE maitred_iso_c CURSOR WITH HOLD FOR select 1",
            CURSORS,
        ),
        count(
            "advisory lock behind a comment",
            "select /* x */ pg_advisory_lock(4242)",
            ADVISORY,
        ),
        count(
            "advisory lock in a DO block",
            "DO $$ BEGIN PERFORM pg_advisory_lock(4242); END $$",
            ADVISORY,
        ),
        count(
            "advisory lock in a function",
            "select maitred_iso_lock()",
            ADVISORY,
        ),
    ]
}

/// Functions and roles the cases use, created straight on the server.
const SETUP: &str = "
CREATE OR REPLACE FUNCTION maitred_iso_set_path() RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN PERFORM set_config('search_path', 'tenant_42', false); RETURN 1; END $$;
CREATE OR REPLACE PROCEDURE maitred_iso_proc() LANGUAGE plpgsql AS
  $$ BEGIN EXECUTE 'SET search_path TO tenant_42'; END $$;
CREATE OR REPLACE FUNCTION maitred_iso_make_temp() RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN CREATE TEMP TABLE IF NOT EXISTS maitred_iso_t (a int); RETURN 1; END $$;
CREATE OR REPLACE FUNCTION maitred_iso_lock() RETURNS int LANGUAGE plpgsql AS
  $$ BEGIN PERFORM pg_advisory_lock(4242); RETURN 1; END $$;
";

/// The first column of the first row, or the error's SQLSTATE.
async fn probe(client: &Client, sql: &str) -> Result<String, String> {
    let msgs = tokio::time::timeout(Duration::from_secs(20), client.simple_query(sql))
        .await
        .unwrap_or_else(|_| panic!("{sql}: timed out"))
        .map_err(|e| {
            e.as_db_error().map_or_else(
                || e.to_string(),
                |d| format!("{}: {}", d.code().code(), d.message()),
            )
        })?;
    Ok(msgs
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default())
}

/// Runs every case through `url` (one server connection behind it). `extended`: A runs its
/// SQL through the extended protocol (Parse/Bind/Execute) instead of a simple Query.
/// Asserts that nothing leaks; `run_cases_reporting` only records what happened.
async fn run_cases(url: &str, extended: bool) -> Vec<(&'static str, &'static str)> {
    run_cases_as(url, extended, true).await
}

async fn run_cases_as(
    url: &str,
    extended: bool,
    strict: bool,
) -> Vec<(&'static str, &'static str)> {
    let mut outcomes = Vec::new();
    for case in cases() {
        let what = format!(
            "{} ({})",
            case.name,
            if extended { "extended" } else { "simple" }
        );
        let a = connect(url).await;
        let ran = if extended {
            a.query(case.sql, &[])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        } else {
            a.batch_execute(case.sql).await.map_err(|e| e.to_string())
        };
        if let Err(e) = ran {
            // Some spellings cannot run through the extended protocol (several statements).
            assert!(extended || !strict, "{what}: {e}");
            if !strict && !extended {
                println!("{what}: refused");
                outcomes.push((case.name, "refused"));
            }
            continue;
        }
        let mine = probe(&a, case.probe).await;
        assert!(
            !strict || mine.as_deref().is_ok_and(|v| v != case.clean),
            "{what}: A lost its own state: {mine:?}"
        );
        let b = connect(url).await;
        let outcome = match probe(&b, case.probe).await {
            Ok(v) if !strict && v != case.clean => "LEAK",
            Ok(v) => {
                assert_eq!(v, case.clean, "{what}: B SEES A's STATE");
                "followed"
            }
            Err(e) => {
                // A kept the only connection: B waited and was told so.
                assert!(
                    e.contains("53300") || e.contains("timeout") || e.contains("waited"),
                    "{what}: {e}"
                );
                "pinned"
            }
        };
        // A still has its state after B ran.
        let mine = probe(&a, case.probe).await;
        assert!(
            !strict || mine.as_deref().is_ok_and(|v| v != case.clean),
            "{what}: A lost its own state after B: {mine:?}"
        );
        if !strict {
            // What the next client sees is reported; clean up for the next case.
            drop(a);
            drop(b);
            let c = connect(url).await;
            // DISCARD ALL alone: it cannot run inside a multi-statement query's transaction.
            let _ = c.batch_execute("DISCARD ALL").await;
            println!("{what}: {outcome}");
            outcomes.push((case.name, outcome));
            continue;
        }
        drop(a);
        // Once A is gone, B gets the connection, clean.
        let mut last = Err(String::new());
        for _ in 0..50 {
            last = probe(&b, case.probe).await;
            if last.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            last.as_deref(),
            Ok(case.clean),
            "{what}: left behind after A left"
        );
        println!("{what}: {outcome}");
        outcomes.push((case.name, outcome));
    }
    outcomes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_state_reaches_the_next_client() {
    let Some(pg) = kit::require_pg() else { return };
    let Some(su) = kit::require_pg_superuser() else {
        return;
    };
    let _serial = kit::serial().await;
    let direct = connect(&pg).await;
    direct.batch_execute(SETUP).await.expect("setup functions");
    let superuser = connect(&su).await;
    superuser
        .batch_execute(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'maitred_iso_role') THEN
                 CREATE ROLE maitred_iso_role;
               END IF;
             END $$;
             GRANT maitred_iso_role TO app;",
        )
        .await
        .expect("setup role");
    let (m, admin) = spawn_with_admin(&pg, &["--pool-size", "1", "--queue-timeout", "1s"]);
    let url = m.url_for(&pg);
    let simple = run_cases(&url, false).await;
    assert_eq!(simple.len(), cases().len());
    let extended = run_cases(&url, true).await;
    assert!(extended.len() >= cases().len() - 3, "{extended:?}");
    assert!(
        metric_sum_now(admin, "maitred_session_confirmations_total").await > 0.0,
        "confirmations are counted"
    );
    assert!(
        metric_sum_now(admin, "maitred_pins_total").await > 0.0,
        "pins are counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maitred_statement_names_cannot_be_touched() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = Maitred::spawn(&["--upstream", &pg, "--pool-size", "1"]);
    let url = m.url_for(&pg);
    let victim = connect(&url).await;
    // The victim's statement is prepared on the server as mtd_<n>.
    let stmt = victim.prepare("select $1::int + 1").await.expect("prepare");
    let v: i32 = victim.query_one(&stmt, &[&1i32]).await.expect("run").get(0);
    assert_eq!(v, 2);
    let attacker = connect(&url).await;
    for sql in [
        "DEALLOCATE mtd_1",
        "/* x */ deallocate prepare MTD_1",
        "PREPARE mtd_1 (int) AS select $1 * 100",
        "select 1; PREPARE \"mtd_1\" (int) AS select $1 * 100",
        "EXECUTE mtd_1(5)",
    ] {
        let err = attacker
            .batch_execute(sql)
            .await
            .expect_err("maitred's names are reserved");
        let code = err.as_db_error().map(|d| d.code().code().to_owned());
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err:?}");
    }
    let err = attacker
        .prepare("DEALLOCATE mtd_1")
        .await
        .expect_err("through Parse too");
    assert_eq!(
        err.as_db_error()
            .map(|d| d.code().code().to_owned())
            .as_deref(),
        Some("42501")
    );
    // The victim's statement still runs its own text.
    let v: i32 = victim
        .query_one(&stmt, &[&41i32])
        .await
        .expect("run")
        .get(0);
    assert_eq!(v, 42);
}

/// The same cases against any pooler (one server connection behind it), reporting instead
/// of asserting: `ISOLATION_URL=postgres://... cargo test --test pg_isolation_e2e
/// report_against_a_pooler -- --ignored --nocapture` (benches/isolation_compare.sh runs it
/// for maitred and PgBouncer and prints docs/postgres.md's table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by benches/isolation_compare.sh"]
async fn report_against_a_pooler() {
    let (Ok(url), Some(pg)) = (std::env::var("ISOLATION_URL"), kit::pg_url()) else {
        return;
    };
    let direct = connect(&pg).await;
    direct.batch_execute(SETUP).await.expect("setup functions");
    if let Some(su) = kit::pg_superuser_url() {
        let superuser = connect(&su).await;
        let _ = superuser
            .batch_execute(
                "DO $$ BEGIN
                   IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'maitred_iso_role') THEN
                     CREATE ROLE maitred_iso_role;
                   END IF;
                 END $$;
                 GRANT maitred_iso_role TO app;",
            )
            .await;
    }
    let simple = run_cases_as(&url, false, false).await;
    let leaks = simple.iter().filter(|(_, o)| *o == "LEAK").count();
    println!("ISOLATION {} cases, {leaks} leaked", simple.len());
    for (name, outcome) in simple {
        println!("ISOLATION_CASE\t{name}\t{outcome}");
    }
}
