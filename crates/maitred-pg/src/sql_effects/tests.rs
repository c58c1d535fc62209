//! Rule-by-rule tests of the predictions, including the spellings that leaked before the
//! lexer (comments before SET, SET ROLE, DO blocks, SELECT INTO TEMP, ...).

use super::*;

fn set(name: &str, value: &str) -> Effect {
    Effect::Set {
        name: name.into(),
        value: value.into(),
    }
}

fn reset(name: &str) -> Effect {
    Effect::Reset { name: name.into() }
}

const UNKNOWN_FN: Effect = Effect::Unknown(UnknownReason::Function);
const UNKNOWN_CMD: Effect = Effect::Unknown(UnknownReason::Command);
const UNKNOWN_PROC: Effect = Effect::Unknown(UnknownReason::Procedure);
const AMBIGUOUS: Effect = Effect::Unknown(UnknownReason::Ambiguous);

#[test]
fn only_lone_read_only_statements_may_be_sent_ahead() {
    for yes in [
        "SELECT abalance FROM pgbench_accounts WHERE aid = 42;",
        "  select 1",
        "VALUES (1), (2)",
        "TABLE t",
        "SELECT now();  ",
        "/* comment */ SELECT 1",
        "(select 1) union (select 2)",
        "select count(*), lower(name) from t where id in (1, 2)",
    ] {
        assert!(may_send_ahead(yes), "{yes}");
    }
    for no in [
        "SELECT 1; SELECT 2",
        "SELECT pg_advisory_lock(1)",
        "SELECT set_config('search_path', 'x', false)",
        "SELECT * INTO TEMP t FROM s",
        "SELECT * INTO t FROM s",
        "INSERT INTO t VALUES (1)",
        "UPDATE t SET a = 1",
        "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        "BEGIN",
        "SET search_path = x",
        "select my_function(1)",
        "select 'a\\'",
        "",
    ] {
        assert!(!may_send_ahead(no), "{no}");
    }
}

#[test]
fn set_forms() {
    assert_eq!(
        effects("SET search_path TO app, public"),
        vec![set("search_path", "app, public")]
    );
    assert_eq!(
        effects("set application_name = 'x;y'"),
        vec![set("application_name", "'x;y'")]
    );
    assert_eq!(
        effects("SET SESSION statement_timeout TO 5000"),
        vec![set("statement_timeout", "5000")]
    );
    assert_eq!(
        effects("SET TIME ZONE 'UTC'"),
        vec![set("timezone", "'UTC'")]
    );
    assert_eq!(effects("SET TIME ZONE LOCAL"), vec![reset("timezone")]);
    assert_eq!(
        effects("SET \"DateStyle\" TO ISO"),
        vec![set("datestyle", "ISO")]
    );
    assert_eq!(
        effects("SET myapp.tenant = '42'"),
        vec![set("myapp.tenant", "'42'")]
    );
    assert_eq!(
        effects("SET search_path TO DEFAULT"),
        vec![reset("search_path")]
    );
    assert_eq!(
        effects("SET SCHEMA 'app'"),
        vec![set("search_path", "'app'")]
    );
    assert_eq!(
        effects("SET NAMES 'LATIN1'"),
        vec![set("client_encoding", "'LATIN1'")]
    );
    // They end with the transaction; the server's `SET` tag is expected (Tracked).
    assert_eq!(effects("SET LOCAL work_mem = '1MB'"), vec![Effect::Tracked]);
    assert_eq!(
        effects("/* tag */ set local app.tenant = '42'"),
        vec![Effect::Tracked]
    );
    assert_eq!(
        effects("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
        vec![Effect::Tracked]
    );
    assert_eq!(effects("SET CONSTRAINTS ALL DEFERRED"), vec![]);
    assert_eq!(effects("SET transaction_read_only = on"), vec![]);
}

#[test]
fn identity_changes_are_settings_that_follow_their_client() {
    assert_eq!(
        effects("SET ROLE app_admin"),
        vec![set("role", "app_admin")]
    );
    assert_eq!(effects("/* x */ SET ROLE 'r'"), vec![set("role", "'r'")]);
    assert_eq!(
        effects("set session role \"R\""),
        vec![set("role", "\"R\"")]
    );
    assert_eq!(effects("SET ROLE NONE"), vec![reset("role")]);
    assert_eq!(effects("RESET ROLE"), vec![reset("role")]);
    assert_eq!(
        effects("SET SESSION AUTHORIZATION bob"),
        vec![set("session_authorization", "bob")]
    );
    assert_eq!(
        effects("SET SESSION AUTHORIZATION DEFAULT"),
        vec![reset("session_authorization")]
    );
    assert_eq!(
        effects("RESET SESSION AUTHORIZATION"),
        vec![reset("session_authorization")]
    );
}

#[test]
fn comments_anywhere_do_not_hide_a_set() {
    for sql in [
        "/* app=web,route=/orders */ SET search_path TO tenant_42, public",
        "-- tag\nSET search_path TO tenant_42, public",
        "/* a /* nested */ b */SET/**/search_path/**/TO tenant_42, public",
        "  /*x*/ set search_path to tenant_42, public -- trailing",
    ] {
        let e = effects(sql);
        assert_eq!(e.len(), 1, "{sql}");
        let Effect::Set { name, value } = &e[0] else {
            panic!("{sql}: {e:?}");
        };
        assert_eq!(name, "search_path", "{sql}");
        assert!(value.contains("tenant_42"), "{sql}: {value}");
    }
}

#[test]
fn unreplayable_set_forms_are_unknown() {
    for sql in [
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET TIME ZONE INTERVAL '+02:00' HOUR TO MINUTE",
        "SET",
        "SET x",
        "SET 'x' = 1",
    ] {
        assert_eq!(effects(sql), vec![UNKNOWN_CMD], "{sql}");
    }
}

#[test]
fn reset_forms_and_multiple_statements() {
    assert_eq!(
        effects("RESET search_path; select 1; RESET ALL;"),
        vec![reset("search_path"), Effect::ResetAll]
    );
    assert_eq!(effects("RESET TIME ZONE"), vec![reset("timezone")]);
    assert_eq!(effects("DISCARD ALL"), vec![Effect::ResetAll]);
    assert_eq!(effects("discard temp"), vec![Effect::Tracked]);
}

#[test]
fn transaction_control() {
    assert_eq!(
        effects(
            "BEGIN; SET a = 1; ROLLBACK; start transaction; commit; end; abort; rollback to savepoint s"
        ),
        vec![
            Effect::Begin,
            set("a", "1"),
            Effect::Rollback,
            Effect::Begin,
            Effect::Commit,
            Effect::Commit,
            Effect::Rollback
        ]
    );
    assert_eq!(
        effects("COMMIT PREPARED 'x'; PREPARE TRANSACTION 'y'"),
        vec![]
    );
}

#[test]
fn pins() {
    assert_eq!(
        effects("select pg_advisory_lock(1)"),
        vec![Effect::Pin(PinReason::AdvisoryLock)]
    );
    assert_eq!(
        effects("select pg_catalog.pg_try_advisory_lock_shared(1)"),
        vec![Effect::Pin(PinReason::AdvisoryLock)]
    );
    assert_eq!(effects("select pg_advisory_xact_lock(1)"), vec![]);
    for sql in [
        "CREATE TEMP TABLE t (a int)",
        "create temporary table t (a int)",
        "create global temporary table t (a int)",
        "CREATE TABLE pg_temp.t (a int)",
        "/* x */ create view pg_temp.v as select 1",
        "SELECT 1 AS a INTO TEMP t",
        "select * into temporary table t from s",
    ] {
        assert_eq!(
            effects(sql),
            vec![Effect::Pin(PinReason::TempTable)],
            "{sql}"
        );
    }
    assert_eq!(
        effects("/**/LISTEN chan"),
        vec![Effect::Pin(PinReason::Listen)]
    );
    assert_eq!(
        effects("-- c\nDECLARE c CURSOR WITH HOLD FOR select 1"),
        vec![Effect::Pin(PinReason::HoldCursor)]
    );
    assert_eq!(effects("DECLARE c CURSOR FOR select 1"), vec![]);
    assert_eq!(
        effects("/* x */ PREPARE p AS select 1"),
        vec![Effect::Pin(PinReason::SqlPrepare)]
    );
}

#[test]
fn code_maitred_cannot_see_is_unknown() {
    for sql in [
        "DO $$ BEGIN EXECUTE 'SET search_path TO x'; END $$",
        "/* x */ do 'begin perform 1; end'",
        "CALL proc()",
        "LOAD 'auto_explain'",
        "EXECUTE p(1)",
    ] {
        assert_eq!(effects(sql), vec![UNKNOWN_PROC], "{sql}");
    }
    for sql in [
        "create table t (a int)",
        "CREATE TABLE t AS SELECT 1",
        "SELECT * INTO t FROM s",
        "IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y",
        "wat",
        "(",
    ] {
        assert_eq!(effects(sql), vec![UNKNOWN_CMD], "{sql}");
    }
}

#[test]
fn functions_not_known_to_be_harmless_are_unknown() {
    for sql in [
        "select my_func()",
        "SELECT app.set_tenant(42)",
        "select public.lower('x')",
        "select setseed(0.5)",
        "update t set a = f(a)",
        "insert into t values (f())",
        "with x as (select f()) select * from x",
        "COPY (select f()) TO STDOUT",
        "select set_config('a.b', $1, false)",
        "select set_config($1, 'x', false)",
        "select set_config('a.b', 'x' || 'y', false)",
        "select set_config(name, setting, false) from pg_settings",
        "select \"SET_CONFIG\"('a.b', 'x', false)",
        "explain analyze select f()",
    ] {
        assert_eq!(effects(sql).first(), Some(&UNKNOWN_FN), "{sql}");
    }
    for sql in [
        "select count(*), max(a), coalesce(b, 0) from t where c in (1, 2) and exists (select 1)",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, CURRENT_TIMESTAMP)",
        "insert into s.t (a) values (now())",
        "select cast(a as numeric(10, 2)), a::varchar(20) from t",
        "select pg_catalog.lower('x')",
        "select * from t where a = any(array[1,2])",
        "explain select f()",
        "select row_number() over (partition by a order by b) from t",
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
        "create function f() returns int as $$ select set_config('a', 'b', false) $$ language sql; select 1",
    ] {
        let e = effects(sql);
        assert!(
            !e.contains(&UNKNOWN_FN),
            "{sql}: {e:?}"
        );
    }
}

#[test]
fn set_config_with_literals_is_a_set() {
    assert_eq!(
        effects("SELECT set_config('application_name', 'app', false)"),
        vec![set("application_name", "'app'")]
    );
    assert_eq!(
        effects("select set_config('maitred.test', 'it''s', FALSE)"),
        vec![set("maitred.test", "'it''s'")]
    );
    assert_eq!(
        effects("SELECT pg_catalog.Set_Config ( 'DateStyle' , /* c */ 'ISO, MDY', 'off' )"),
        vec![set("datestyle", "'ISO, MDY'")]
    );
    assert_eq!(
        effects("select set_config('a.b', '1', false), set_config('a.c', '2', 'f')"),
        vec![set("a.b", "'1'"), set("a.c", "'2'")]
    );
    assert_eq!(
        effects("select set_config('search_path', 'foo, Public', false)"),
        vec![set("search_path", r#""foo", "public""#)]
    );
    assert_eq!(
        effects("select set_config('application_name', 'x', true)"),
        vec![]
    );
    assert_eq!(
        effects("select set_config('transaction_isolation', 'serializable', false)"),
        vec![]
    );
}

#[test]
fn strings_comments_and_quotes_hide_keywords() {
    for sql in [
        "select 'SET x = 1; LISTEN a'",
        "select $$; LISTEN a$$ -- ; LISTEN b\n",
        "select 1 -- set_config(x, y, false)\n",
        "select /* /* nested */ set_config(x, y, false) */ 1",
        "select $q$ set_config(x, y, false) $q$",
        "select E'\\' ; SET role x'",
        "select U&'\\0041' ; ",
    ] {
        assert_eq!(effects(sql), vec![], "{sql}");
    }
    assert_eq!(effects("/* ; */ select 1; SET a = 1"), vec![set("a", "1")]);
}

#[test]
fn text_whose_meaning_depends_on_settings_is_ambiguous() {
    // With standard_conforming_strings off the server reads `\'` as a quote: the lexer
    // cannot know where this string ends.
    assert_eq!(
        effects("select 'a\\' , ' ; SET role admin; --'"),
        vec![AMBIGUOUS]
    );
    assert_eq!(effects("select 'unterminated"), vec![AMBIGUOUS]);
    assert_eq!(effects("select 1 /* unterminated"), vec![AMBIGUOUS]);
}

#[test]
fn maitred_statement_names_are_refused() {
    for sql in [
        "DEALLOCATE mtd_3",
        "/* x */ deallocate prepare MTD_3",
        "PREPARE mtd_3 AS select 1",
        "prepare \"mtd_3\" (int) as select $1",
        "EXECUTE mtd_3(1)",
    ] {
        assert_eq!(
            effects(sql),
            vec![Effect::Refused(Refusal::MaitredStatementName)],
            "{sql}"
        );
    }
    assert_eq!(effects("DEALLOCATE ALL"), vec![Effect::Tracked]);
}

#[test]
fn deallocate_names() {
    assert_eq!(deallocate_name("DEALLOCATE s0").as_deref(), Some("s0"));
    assert_eq!(
        deallocate_name("  deallocate PREPARE S1 ; ").as_deref(),
        Some("s1")
    );
    assert_eq!(deallocate_name("deallocate \"S1\"").as_deref(), Some("S1"));
    assert_eq!(
        deallocate_name("/* c */ deallocate s2").as_deref(),
        Some("s2")
    );
    assert_eq!(
        deallocate_name("deallocate\"a\"\"b\";").as_deref(),
        Some("a\"b")
    );
    for sql in [
        "DEALLOCATE ALL",
        "deallocate prepare all;",
        "DEALLOCATE s0; select 1",
        "DEALLOCATE s0 s1",
        "DEALLOCATE",
        "DEALLOCATEs0",
        "deallocate \"unterminated",
        "deallocate \"\"",
        "select 'DEALLOCATE s0'",
    ] {
        assert_eq!(deallocate_name(sql), None, "{sql}");
    }
    assert_eq!(
        deallocate_name("deallocate \"all\"").as_deref(),
        Some("all")
    );
}

#[test]
fn multibyte_text_does_not_panic() {
    assert_eq!(effects("SET a Þ"), vec![UNKNOWN_CMD]);
    assert_eq!(effects("set a tO 'é'"), vec![set("a", "'é'")]);
    assert_eq!(effects("select ÞÞ(1)"), vec![UNKNOWN_FN]);
}

/// Generated comments, blanks and statements around a known statement never change what
/// it is predicted to do (a small property test without extra dependencies).
#[test]
fn decorations_never_change_a_prediction() {
    let decorations = [
        "",
        " ",
        "\n",
        "/* c */",
        "/* ; SET role x; */",
        "/* a /* b */ c */",
        "-- ; LISTEN x\n",
        "--\n",
        "\t/**/",
    ];
    let cases: [(&str, Vec<Effect>); 5] = [
        ("SET search_path TO t1", vec![set("search_path", "t1")]),
        ("SET ROLE r", vec![set("role", "r")]),
        ("select 1", vec![]),
        ("DO $$ begin end $$", vec![UNKNOWN_PROC]),
        (
            "create temp table t (a int)",
            vec![Effect::Pin(PinReason::TempTable)],
        ),
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..2000 {
        let (stmt, want) = &cases[next(cases.len())];
        let words: Vec<&str> = stmt.split(' ').collect();
        let mut sql = String::from(decorations[next(decorations.len())]);
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                // A separator that keeps words apart: a blank or a comment.
                let d = decorations[next(decorations.len())];
                sql.push_str(if d.trim().is_empty() { " " } else { d });
            }
            sql.push_str(w);
        }
        sql.push_str(decorations[next(decorations.len())]);
        if next(2) == 0 {
            sql.push(';');
        }
        // Statements the lexer must keep apart.
        let got = effects(&sql);
        // The value text of a SET keeps its inner comments; compare names and kinds.
        let kinds = |e: &[Effect]| -> Vec<String> {
            e.iter()
                .map(|x| match x {
                    Effect::Set { name, .. } => format!("set {name}"),
                    other => format!("{other:?}"),
                })
                .collect()
        };
        assert_eq!(kinds(&got), kinds(want), "{sql:?}");
    }
}

#[test]
fn custom_names_are_collected_for_unknown_statements() {
    assert_eq!(
        effects("DO $$ BEGIN PERFORM set_config('myapp.tenant', '42', false); END $$"),
        vec![
            UNKNOWN_PROC,
            Effect::CustomNames(vec!["myapp.tenant".into()])
        ]
    );
    assert_eq!(
        effects("select set_config('App.Tenant_ID', $1, false)"),
        vec![
            UNKNOWN_FN,
            Effect::CustomNames(vec!["app.tenant_id".into()])
        ]
    );
    assert_eq!(
        custom_setting_names("select s.a, 1.5, x.y.z, t.b, s.a"),
        vec!["s.a".to_owned(), "t.b".to_owned()]
    );
    // Plain traffic pays nothing.
    assert_eq!(effects("select t.a from s.t"), vec![]);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Pieces a query may be built from: words, strings of every form, comments, separators.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
            "'[^']{0,6}'",
            "E'[^'\\\\]{0,6}'",
            "\\$\\$[^$]{0,6}\\$\\$",
            "\"[^\"]{0,6}\"",
            "/\\*[^*/]{0,6}\\*/",
            "--[^\n]{0,6}\n",
            Just(";".to_owned()),
            Just(" ".to_owned()),
            Just("(".to_owned()),
            Just(")".to_owned()),
            "[0-9]{1,3}",
        ]
    }

    proptest! {
        /// Any text: no panic, statement spans inside the text and in order.
        #[test]
        fn any_text_lexes(sql in "\\PC{0,80}") {
            let stmts = lexer::statements(&sql);
            let mut last = 0;
            for s in &stmts {
                prop_assert!(s.start >= last && s.start <= s.end && s.end <= sql.len());
                last = s.end;
            }
            let _ = scan(&sql);
            let _ = deallocate_name(&sql);
        }

        /// A known statement after any well-formed prefix statement and before any suffix
        /// keeps its prediction: quotes and comments in its neighbours never swallow it.
        #[test]
        fn neighbours_never_hide_a_set(prefix in prop::collection::vec(piece(), 0..8),
                                       suffix in prop::collection::vec(piece(), 0..8)) {
            let prefix: String = prefix.concat();
            let suffix: String = suffix.concat();
            // Only well-formed neighbours: the lexer must end them where the server does.
            prop_assume!(!lexer::statements(&prefix).iter().any(|s| s.unterminated));
            prop_assume!(!lexer::statements(&suffix).iter().any(|s| s.unterminated));
            let sql = format!("{prefix};\n/* c */ SET search_path TO t9;{suffix}");
            let got = effects(&sql);
            prop_assert!(
                got.iter().any(|e| matches!(e, Effect::Set { name, value } if name == "search_path" && value == "t9")),
                "{sql:?}: {got:?}"
            );
        }
    }
}

/// Not a test: `cargo test --release -p maitred-pg --lib scan_cost -- --ignored --nocapture`
/// prints what one scan of a pgbench query costs.
#[test]
#[ignore = "timing, run by hand"]
fn scan_cost() {
    let sql = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;";
    let n = 1_000_000;
    let t = std::time::Instant::now();
    let mut k = 0;
    for _ in 0..n {
        k += scan(std::hint::black_box(sql)).effects.len();
        k += usize::from(deallocate_name(std::hint::black_box(sql)).is_some());
    }
    println!(
        "scan + deallocate_name: {:?} per query ({k})",
        t.elapsed() / n
    );
}

/// NOTIFY changes no session state; its channel and payload are kept so the relay can
/// recognise the notification as the client's own when it comes back.
#[test]
fn notify_names_its_channel_and_payload() {
    let n = |c: &str, p: &str| Effect::Notify {
        channel: c.into(),
        payload: p.into(),
    };
    assert_eq!(effects("NOTIFY Jobs"), vec![n("jobs", "")]);
    assert_eq!(
        effects("notify \"Jobs\", 'it''s done';"),
        vec![n("Jobs", "it's done")]
    );
    assert_eq!(
        effects("/* c */ NOTIFY a, 'x'; NOTIFY b"),
        vec![n("a", "x"), n("b", "")]
    );
    // Spellings whose payload maitred does not decode are simply not recognised.
    assert_eq!(effects("NOTIFY a, E'x\\n'"), vec![]);
    assert_eq!(effects("NOTIFY a, $$x$$"), vec![]);
    assert_eq!(effects("NOTIFY a, 'x' 'y'"), vec![]);
    // pg_notify() is a function call like any other.
    let call = effects("SELECT pg_notify('a', 'x')");
    assert!(
        !call.iter().any(|e| matches!(e, Effect::Notify { .. })),
        "{call:?}"
    );
}
