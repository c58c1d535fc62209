//! Tests of the session effects of SQL text, of send-ahead eligibility, and property tests
//! of the lexer under noise.

mod effects {
    use crate::sql_effects::*;

    #[test]
    fn the_servers_socket_is_hidden_from_clients() {
        let r = |sql: &str| {
            rewrite_socket_variable(sql.as_bytes()).map(|v| String::from_utf8(v).expect("utf-8"))
        };
        assert_eq!(
            r("SELECT @@max_allowed_packet,@@wait_timeout,@@socket").as_deref(),
            Some("SELECT @@max_allowed_packet,@@wait_timeout,NULL")
        );
        assert_eq!(
            r("select @@GLOBAL.Socket, 1").as_deref(),
            Some("select NULL, 1")
        );
        assert_eq!(r("SELECT @@socket;").as_deref(), Some("SELECT NULL;"));
        assert_eq!(r("SELECT @@socket_x, @@sockets"), None);
        assert_eq!(r("SELECT '@@socket', `@@socket`"), None);
        assert_eq!(r("SELECT @@port"), None);
        assert_eq!(r("SELECT 1"), None);
    }

    #[test]
    fn plain_queries_do_not_pin() {
        for q in [
            "SELECT c FROM sbtest1 WHERE id=5",
            "select 'a@b.com', \"x@y\"",
            "BEGIN",
            "COMMIT",
            "SELECT @@version_comment LIMIT 1",
            "SET autocommit=0",
            "SET AUTOCOMMIT = 1",
            "set @@session.autocommit = ON",
            "INSERT INTO t VALUES ('GET_LOCK')",
        ] {
            assert_eq!(classify(q.as_bytes()), QueryEffect::None, "{q}");
        }
    }

    #[test]
    fn kill_and_connection_id() {
        assert_eq!(kill_target(b"KILL 12"), Some((false, 12)));
        assert_eq!(kill_target(b"kill query 7;"), Some((true, 7)));
        assert_eq!(kill_target(b"KILL HARD CONNECTION 3"), Some((false, 3)));
        assert_eq!(kill_target(b"KILL QUERY ID 3"), None);
        assert_eq!(kill_target(b"KILL USER app"), None);
        assert_eq!(kill_target(b"SELECT 1"), None);
        assert_eq!(
            rewrite_connection_id(
                b"SELECT CONNECTION_ID(), 'CONNECTION_ID()', connection_id ( )",
                42
            ),
            Some(b"SELECT 42, 'CONNECTION_ID()', 42".to_vec())
        );
        assert_eq!(
            rewrite_connection_id(b"SELECT my_connection_id()", 42),
            None
        );
        assert_eq!(rewrite_connection_id(b"SELECT 1", 42), None);
        assert_eq!(classify(b"SELECT LAST_INSERT_ID()"), QueryEffect::None);
        assert_eq!(
            rewrite_last_insert_id(b"SELECT last_insert_id()", 77),
            Some(b"SELECT 77".to_vec())
        );
        assert_eq!(
            rewrite_last_insert_id(b"SELECT LAST_INSERT_ID(9)", 77),
            None
        );
    }

    #[test]
    fn session_sets_are_replayable() {
        for q in [
            "SET NAMES latin1",
            "SET sql_mode=''",
            "SET SESSION time_zone = '+02:00';",
            "set session transaction isolation level read committed",
            "SET character_set_client = 'a;b'",
        ] {
            assert_eq!(classify(q.as_bytes()), QueryEffect::SessionSet, "{q}");
        }
        assert_eq!(
            classify(b"SET GLOBAL max_connections = 30"),
            QueryEffect::None
        );
    }

    #[test]
    fn use_is_followed() {
        assert_eq!(classify(b"USE app"), QueryEffect::Use("app".into()));
        assert_eq!(
            classify(b"  use `my``db`;"),
            QueryEffect::Use("my`db".into())
        );
        assert_eq!(classify(b"/* hi */ USE x"), QueryEffect::Use("x".into()));
    }

    #[test]
    fn state_that_cannot_move_pins() {
        assert_eq!(
            classify(b"SET sql_mode=''; SELECT 1"),
            QueryEffect::SessionSetList
        );
        let cases: [(&str, PinReason); 8] = [
            (
                "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
                PinReason::SessionVariable,
            ),
            ("SET @x = 1", PinReason::UserVariable),
            ("SELECT @x", PinReason::UserVariable),
            (
                "CREATE TEMPORARY TABLE t (a int)",
                PinReason::TemporaryTable,
            ),
            ("LOCK TABLES t WRITE", PinReason::LockTables),
            ("SELECT GET_LOCK('a', 1)", PinReason::GetLock),
            ("PREPARE s FROM 'SELECT 1'", PinReason::SqlPrepare),
            ("SELECT LAST_INSERT_ID(5)", PinReason::ConnectionFunction),
        ];
        for (q, r) in cases {
            assert_eq!(classify(q.as_bytes()), QueryEffect::Pin(r), "{q}");
        }
    }

    /// Every spelling of state that cannot move: comments before, inside and after
    /// (`#`, `-- `, `/* */`), executable comments (their contents run), statement lists.
    #[test]
    fn every_spelling_of_a_lock_pins() {
        let cases: &[(&str, PinReason)] = &[
            ("SELECT 1; LOCK TABLES t WRITE", PinReason::LockTables),
            ("/*!LOCK TABLES t WRITE*/", PinReason::LockTables),
            ("/*!50700 LOCK TABLES t WRITE */", PinReason::LockTables),
            ("/*M!100100 lock tables t read*/", PinReason::LockTables),
            ("/*M! lock tables t read*/", PinReason::LockTables),
            ("# hello\nlock tables t read", PinReason::LockTables),
            (
                "-- hello\nlock /* x */ tables t read",
                PinReason::LockTables,
            ),
            ("/* a */ /* b */ LOCK TABLE t READ", PinReason::LockTables),
            (
                "SELECT 1 /*!; LOCK TABLES t WRITE */",
                PinReason::LockTables,
            ),
            ("DO 1;\n-- x\n LOCK TABLES t WRITE", PinReason::LockTables),
            ("FLUSH TABLES WITH READ LOCK", PinReason::LockTables),
            ("flush tables t with read lock", PinReason::LockTables),
            ("FLUSH TABLES t FOR EXPORT", PinReason::LockTables),
            (
                "SELECT 1; FLUSH /*!TABLES WITH READ LOCK*/",
                PinReason::LockTables,
            ),
            ("BACKUP LOCK t", PinReason::LockTables),
            ("LOCK INSTANCE FOR BACKUP", PinReason::LockTables),
            ("SELECT GET_LOCK('a', 0)", PinReason::GetLock),
            ("SELECT get_lock /* x */ ('a', 0)", PinReason::GetLock),
            ("SELECT 1; DO GET_LOCK('a', 0)", PinReason::GetLock),
            ("SELECT /*!GET_LOCK('a',0)*/", PinReason::GetLock),
            (
                "SET STATEMENT max_statement_time=1 FOR SELECT GET_LOCK('a', 0)",
                PinReason::GetLock,
            ),
            ("SELECT 1; SET @x = 1", PinReason::UserVariable),
            ("/*!SET @x = 1*/", PinReason::UserVariable),
            ("SELECT 1 INTO @`x`", PinReason::UserVariable),
            (
                "SELECT 1; CREATE TEMPORARY TABLE t (a int)",
                PinReason::TemporaryTable,
            ),
            (
                "CREATE OR REPLACE TEMPORARY TABLE t (a int)",
                PinReason::TemporaryTable,
            ),
            (
                "/*!CREATE TEMPORARY TABLE t (a int)*/",
                PinReason::TemporaryTable,
            ),
            ("SELECT 1;PREPARE s FROM 'SELECT 1'", PinReason::SqlPrepare),
            ("# c\nprepare s from 'SELECT 1'", PinReason::SqlPrepare),
            ("HANDLER t OPEN", PinReason::Handler),
            ("XA START 'x'", PinReason::XaTransaction),
            (
                "SET sql_mode=''; SET TRANSACTION READ ONLY",
                PinReason::SessionVariable,
            ),
        ];
        for (q, r) in cases {
            assert_eq!(classify(q.as_bytes()), QueryEffect::Pin(*r), "{q}");
        }
    }

    #[test]
    fn what_is_quoted_or_commented_out_does_not_pin() {
        for q in [
            "SELECT 'LOCK TABLES t WRITE'",
            "SELECT 1 -- ; LOCK TABLES t WRITE",
            "SELECT 1 # ; LOCK TABLES t WRITE",
            "SELECT 1 /* ; LOCK TABLES t WRITE */",
            "SELECT `@x`, '@x', \"@x\"",
            "SELECT 'a;b'; SELECT \"GET_LOCK('a', 0)\"",
            // (A backslash inside the quotes would pin: under NO_BACKSLASH_ESCAPES the
            // same text runs LOCK TABLES, see below.)
            "SELECT 'it''s; LOCK TABLES t WRITE'",
            "SELECT my_get_lock('a')",
            "UNLOCK TABLES",
            "SELECT RELEASE_LOCK('a')",
        ] {
            assert_eq!(classify(q.as_bytes()), QueryEffect::None, "{q}");
        }
    }

    #[test]
    fn a_quote_read_under_ansi_quotes_still_pins() {
        // Under ANSI_QUOTES "a\" is a name and LOCK TABLES runs.
        let q = r#"SELECT "a\"; LOCK TABLES t WRITE; -- ""#;
        assert_eq!(
            analyze(q.as_bytes(), LexMode::default()).effect,
            QueryEffect::Pin(PinReason::LockTables)
        );
    }

    #[test]
    fn a_quote_read_under_no_backslash_escapes_still_pins() {
        // Under NO_BACKSLASH_ESCAPES the string ends at \' and LOCK TABLES runs.
        let q = r"SELECT '\'; LOCK TABLES t WRITE; -- '";
        assert_eq!(
            analyze(q.as_bytes(), LexMode::default()).effect,
            QueryEffect::Pin(PinReason::LockTables)
        );
    }

    #[test]
    fn kill_inside_a_list_is_not_relayed_as_a_server_thread() {
        let a = analyze(b"SELECT 1; KILL 7", LexMode::default());
        assert!(a.unmapped_kill && a.kill.is_none());
        let a = analyze(b"/*!KILL QUERY 7*/", LexMode::default());
        assert_eq!(a.kill, Some((true, 7)));
        assert!(!analyze(b"KILL USER app", LexMode::default()).unmapped_kill);
        assert!(!analyze(b"KILL QUERY ID 3", LexMode::default()).unmapped_kill);
        assert!(analyze(b"KILL 1+1", LexMode::default()).unmapped_kill);
        assert!(analyze(b"CALL p()", LexMode::default()).calls_routine);
        assert!(!analyze(b"SELECT 'CALL p()'", LexMode::default()).calls_routine);
    }

    #[test]
    fn sets_in_lists_and_set_statement() {
        assert_eq!(
            classify(b"SELECT 1; SET time_zone = '+01:00'"),
            QueryEffect::SessionSetList
        );
        assert_eq!(
            classify(b"SET STATEMENT max_statement_time=1 FOR SELECT 1"),
            QueryEffect::None
        );
        assert_eq!(
            classify(b"SET @@global.max_connections = 30"),
            QueryEffect::None
        );
        assert_eq!(
            classify(b"/* x */ SET /* y */ autocommit /* z */ = 0"),
            QueryEffect::None
        );
        assert_eq!(classify(b"SELECT 1; USE x"), QueryEffect::SessionSetList);
        assert_eq!(classify(b"/*!USE `x`*/"), QueryEffect::Use("x".into()));
    }
}

mod send_ahead {
    use crate::sql_effects::may_send_ahead;

    #[test]
    fn plain_selects_may_be_sent_ahead() {
        for sql in [
            "SELECT c FROM sbtest1 WHERE id=?",
            "  select 1",
            "/* app */ SELECT a, b FROM t WHERE name = 'for update' LIMIT 1;",
            "SELECT COUNT(*) FROM `into` WHERE x = \"@y\"",
            "-- hi\nSELECT 1",
        ] {
            assert!(may_send_ahead(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn anything_that_locks_writes_or_touches_the_session_may_not() {
        for sql in [
            "SELECT * FROM t FOR UPDATE",
            "SELECT * FROM t LOCK IN SHARE MODE",
            "SELECT 1 INTO @x",
            "SELECT @x",
            "SELECT @@autocommit",
            "SELECT GET_LOCK('a', 1)",
            "SELECT NEXTVAL(s)",
            "SELECT NEXT VALUE FOR s",
            "SELECT LAST_INSERT_ID()",
            "SELECT FOUND_ROWS()",
            "SELECT SLEEP(1)",
            "SELECT 1; SELECT 2",
            "SELECT /*! SQL_CALC_FOUND_ROWS */ 1",
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET a = 1",
            "BEGIN",
            "SET autocommit = 0",
            "CALL p()",
            "WITH x AS (SELECT 1) SELECT * FROM x",
            "",
        ] {
            assert!(!may_send_ahead(sql.as_bytes()), "{sql}");
        }
    }
}

/// Property tests: noise the server ignores (comments, quoted text, harmless statements
/// around it) never changes how a known statement is classified, and no input panics.
mod proptests {
    use crate::sql_effects::PinReason;
    use crate::sql_effects::{analyze, QueryEffect};
    use proptest::prelude::*;

    /// Statements whose classification is known.
    const KNOWN: &[(&str, Option<PinReason>)] = &[
        ("LOCK TABLES t WRITE", Some(PinReason::LockTables)),
        ("lock table t read", Some(PinReason::LockTables)),
        ("FLUSH TABLES WITH READ LOCK", Some(PinReason::LockTables)),
        ("FLUSH TABLES t WITH READ LOCK", Some(PinReason::LockTables)),
        ("SELECT GET_LOCK('k', 0)", Some(PinReason::GetLock)),
        ("SET @x = 1", Some(PinReason::UserVariable)),
        (
            "CREATE TEMPORARY TABLE tt (a int)",
            Some(PinReason::TemporaryTable),
        ),
        ("PREPARE s FROM 'SELECT 1'", Some(PinReason::SqlPrepare)),
        ("SELECT 1", None),
        ("UNLOCK TABLES", None),
    ];

    /// Noise the server skips or that changes no session state.
    fn noise() -> impl Strategy<Value = String> {
        let text = "[a-zA-Z0-9 ;@'\"`#*/-]{0,12}";
        prop_oneof![
            Just(" ".to_owned()),
            Just("\n".to_owned()),
            text.prop_map(|t| format!("/*{}*/", t.replace("*/", "* /"))),
            text.prop_map(|t| format!("# {}\n", t.replace('\n', " "))),
            text.prop_map(|t| format!("-- {}\n", t.replace('\n', " "))),
            text.prop_map(|t| format!("--\t{}\n", t.replace('\n', " "))),
        ]
    }

    /// A harmless statement, with quoted text that looks like code.
    fn harmless() -> impl Strategy<Value = String> {
        let text = "[a-zA-Z0-9 ;@#*/-]{0,12}";
        prop_oneof![
            Just("SELECT 1".to_owned()),
            Just("DO 0".to_owned()),
            text.prop_map(|t| format!("SELECT '{}'", t.replace('\\', ""))),
            text.prop_map(|t| format!("SELECT \"{}\"", t.replace('\\', ""))),
            text.prop_map(|t| format!("SELECT 1 AS `{}`", t.replace('`', "``"))),
            text.prop_map(|t| format!("SELECT 'LOCK TABLES t WRITE; {}'", t.replace('\\', ""))),
        ]
    }

    /// The statement with noise between its words.
    fn spelled(stmt: &str, noise: &[String], exec: bool) -> String {
        let mut out = String::new();
        for (i, w) in stmt.split(' ').enumerate() {
            out.push_str(&noise[i % noise.len()]);
            out.push(' ');
            out.push_str(w);
            out.push(' ');
        }
        if exec {
            format!("/*!{out}*/")
        } else {
            out
        }
    }

    proptest! {
        #[test]
        fn noise_does_not_change_the_classification(
            which in 0..KNOWN.len(),
            noise in proptest::collection::vec(noise(), 1..6),
            before in proptest::collection::vec(harmless(), 0..3),
            after in proptest::collection::vec(harmless(), 0..3),
            exec in any::<bool>(),
        ) {
            let (stmt, pin) = KNOWN[which];
            let mut parts = before.clone();
            parts.push(spelled(stmt, &noise, exec));
            parts.extend(after.iter().cloned());
            let sql = parts.join(";");
            let effect = analyze(sql.as_bytes(), crate::sql_effects::lexer::LexMode::default()).effect;
            match pin {
                Some(r) => prop_assert_eq!(effect, QueryEffect::Pin(r), "{}", sql),
                None => prop_assert!(!matches!(effect, QueryEffect::Pin(_)), "{} -> {:?}", sql, effect),
            }
        }

        #[test]
        fn the_lexer_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            for mode in [crate::sql_effects::lexer::LexMode::default(), crate::sql_effects::lexer::LexMode { backslash_escapes: false, ansi_quotes: true }] {
                let l = crate::sql_effects::lexer::lex_with(&bytes, mode);
                for t in &l.tokens {
                    prop_assert!(t.start < t.end && t.end <= bytes.len());
                }
                let _ = crate::sql_effects::analyze_with(&l, mode);
                let _ = crate::sql_effects::rewrite_query(&l, 7, 42);
            }
        }

        #[test]
        fn sql_like_text_never_panics(sql in "[a-zA-Z0-9 ;@'\"`#*/!M()\\\\-]{0,200}") {
            let a = analyze(sql.as_bytes(), crate::sql_effects::lexer::LexMode::default());
            let _ = a;
        }
    }
}
