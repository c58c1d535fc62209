//! End-to-end tests: the built `maitred` binary between real MySQL clients (the `mariadb`
//! command-line client, sysbench, mysql_async, raw packets) and the real MariaDB named by
//! `MAITRED_TEST_MYSQL_URL` (started by `scripts/test.sh`, capped at
//! `max_connections = 20`).
//!
//! Each test starts its own maitred on a free port with the one-line flags and takes
//! `maitred_testkit::serial()` so that the tests together never exceed the server's cap.
//! Without `MAITRED_TEST_MYSQL_URL` every test prints a skip notice and passes, except
//! under `CI=true`, where it fails.

use std::io::{Read, Write};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use maitred_e2e::mysql_client::{connect, must_connect, within};
use maitred_testkit::admin_http::metric_sum;
use maitred_testkit::mysql::{require_mysql, MysqlUrl};
use maitred_testkit::{self as kit, Maitred};
use mysql_async::prelude::*;
use mysql_async::{Conn, Opts};

// ---------------------------------------------------------------------------
// helpers

/// Start maitred in front of `url` with the one-line flags plus `extra`.
fn start_maitred(url: &str, extra: &[&str]) -> Maitred {
    let mut args = vec!["--upstream", url];
    args.extend_from_slice(extra);
    Maitred::spawn(&args)
}

fn assert_alive(m: &mut Maitred) {
    if let Some(status) = m.try_exit_status() {
        panic!("maitred exited during the test with {status}");
    }
}

async fn scalar_i64(conn: &mut Conn, sql: &str) -> Option<i64> {
    within(20, sql, conn.query_first::<Option<i64>, _>(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .flatten()
}

async fn scalar_string(conn: &mut Conn, sql: &str) -> Option<String> {
    within(20, sql, conn.query_first::<Option<String>, _>(sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .flatten()
}

fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(s) => Some(s.code),
        _ => None,
    }
}

fn unique_table(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "maitred_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `mariadb` client through maitred.
fn mariadb_cli(
    addr: std::net::SocketAddr,
    u: &MysqlUrl,
    password: &str,
    sql: &str,
) -> std::process::Output {
    mariadb_cli_with(addr, u, password, &[], sql)
}

/// [`mariadb_cli`] with `extra` options.
fn mariadb_cli_with(
    addr: std::net::SocketAddr,
    u: &MysqlUrl,
    password: &str,
    extra: &[&str],
    sql: &str,
) -> std::process::Output {
    kit::output_with_timeout(
        Command::new("mariadb")
            .arg("--no-defaults")
            .args(extra)
            .args([
                "--protocol=TCP",
                "-h",
                &addr.ip().to_string(),
                "-P",
                &addr.port().to_string(),
                "-u",
                &u.user,
                &format!("-p{password}"),
                "--batch",
                "--skip-column-names",
                &u.database,
                "-e",
                sql,
            ]),
        Duration::from_secs(30),
    )
}

// ---------------------------------------------------------------------------
// the mariadb command-line client

#[test]
fn the_handshake_character_set_follows_its_client() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial_blocking();
    let u = MysqlUrl::parse(&url);
    // One server connection: every client below lands on the same one.
    let mut m = start_maitred(&url, &["--pool-size", "1"]);
    let t = unique_table("charset");
    let run = |charset: &str, sql: &str| {
        let out = mariadb_cli_with(
            m.addr(),
            &u,
            &u.password,
            &[&format!("--default-character-set={charset}")],
            sql,
        );
        assert!(
            out.status.success(),
            "mariadb ({charset}) failed: {}",
            text(&out.stderr)
        );
        out.stdout
    };
    // 'é' stored as utf8mb4; each client must get it in its own character set.
    run(
        "utf8mb4",
        &format!(
            "CREATE TABLE {t} (v VARCHAR(10) CHARACTER SET utf8mb4); INSERT INTO {t} VALUES (X'C3A9')"
        ),
    );
    let select = format!("SELECT v FROM {t}; SELECT @@character_set_client");
    for _ in 0..2 {
        assert_eq!(run("latin1", &select), b"\xe9\nlatin1\n", "latin1 client");
        assert_eq!(
            run("utf8mb4", &select),
            "é\nutf8mb4\n".as_bytes(),
            "utf8mb4 client after a latin1 one"
        );
    }
    run("utf8mb4", &format!("DROP TABLE {t}"));
    assert_alive(&mut m);
}

#[test]
fn mariadb_cli_through_maitred() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial_blocking();
    let u = MysqlUrl::parse(&url);
    let mut m = start_maitred(&url, &["--pool-size", "2"]);
    let t = unique_table("cli");
    let sql = format!(
        "CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO {t} VALUES (1, 'one'), (2, 'two'); \
         SELECT v FROM {t} ORDER BY id; SELECT DATABASE(); DROP TABLE {t};"
    );
    let out = mariadb_cli(m.addr(), &u, &u.password, &sql);
    assert!(
        out.status.success(),
        "mariadb failed: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), format!("one\ntwo\n{}\n", u.database));

    let out = mariadb_cli(m.addr(), &u, "wrong-password", "SELECT 1");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("ERROR 1045 (28000)"),
        "{}",
        text(&out.stderr)
    );
    assert_alive(&mut m);
}

#[test]
fn load_data_local_infile_is_relayed_or_refused() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial_blocking();
    let u = MysqlUrl::parse(&url);
    let mut m = start_maitred(&url, &["--pool-size", "2"]);
    let t = unique_table("infile");
    let dir = std::env::temp_dir().join(format!("maitred-infile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("rows.csv");
    std::fs::write(&file, "1,one\n2,two\n3,three\n").expect("write file");
    let load = format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE {t} FIELDS TERMINATED BY ','",
        file.display()
    );
    let run = |local: &str, sql: &str| {
        kit::output_with_timeout(
            Command::new("mariadb").args([
                "--no-defaults",
                "--protocol=TCP",
                "-h",
                &m.addr().ip().to_string(),
                "-P",
                &m.addr().port().to_string(),
                "-u",
                &u.user,
                &format!("-p{}", u.password),
                &format!("--local-infile={local}"),
                "--batch",
                "--skip-column-names",
                &u.database,
                "-e",
                sql,
            ]),
            Duration::from_secs(30),
        )
    };
    let out = run("0", &format!("CREATE TABLE {t} (id INT, v VARCHAR(10))"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The client allows local files: it is asked for the file and sends it.
    let out = run("1", &format!("{load}; SELECT COUNT(*) FROM {t}"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "3\n");
    // The client does not: maitred refuses, the server loads nothing.
    let out = run("0", &load);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("ERROR 1148"),
        "{}",
        text(&out.stderr)
    );
    let out = run("0", &format!("SELECT COUNT(*) FROM {t}; DROP TABLE {t}"));
    assert_eq!(text(&out.stdout), "3\n", "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    assert_alive(&mut m);
}

// ---------------------------------------------------------------------------
// mysql_async

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn toml_config_with_two_mysql_pools_on_one_address() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let listen: std::net::SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let dir = std::env::temp_dir().join(format!("maitred-mycfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("maitred.toml");
    let upstream = |db: &str| {
        format!(
            "mysql://{}:{}@{}:{}/{db}",
            u.user, u.password, u.host, u.port
        )
    };
    std::fs::write(
        &cfg,
        format!(
            r#"
[[pools]]
name = "main"
listen = "{listen}"
upstream = "{}"
size = 2
  [[pools.users]]
  name = "alice"
  password = "alice-pw"

[[pools]]
name = "bench"
listen = "{listen}"
upstream = "{}"
size = 2
  [[pools.users]]
  name = "bob"
  password = "bob-pw"
"#,
            upstream(&u.database),
            upstream("sbtest")
        ),
    )
    .expect("write config");
    let cfg_arg = cfg.display().to_string();
    let _m = Maitred::spawn_at(listen, &["--config", cfg_arg.as_str()]);
    // Routed by the database named at login; users are the pool's own.
    let mut alice = must_connect(&format!("mysql://alice:alice-pw@{listen}/{}", u.database)).await;
    assert_eq!(
        scalar_string(&mut alice, "SELECT DATABASE()").await,
        Some(u.database.clone())
    );
    let mut bob = must_connect(&format!("mysql://bob:bob-pw@{listen}/sbtest")).await;
    assert_eq!(
        scalar_string(&mut bob, "SELECT DATABASE()").await,
        Some("sbtest".into())
    );
    let e = connect(&format!("mysql://bob:bob-pw@{listen}/{}", u.database))
        .await
        .expect_err("bob is not a user of pool main");
    assert_eq!(server_code(&e), Some(1045), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_1045_and_unknown_user_too() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let m = start_maitred(&url, &["--pool-size", "2"]);
    let mut bad = u.clone();
    bad.password = "nope".into();
    let e = connect(&bad.with_addr(m.addr()))
        .await
        .expect_err("wrong password");
    assert_eq!(server_code(&e), Some(1045), "{e}");
    let mut stranger = u.clone();
    stranger.user = "stranger".into();
    let e = connect(&stranger.with_addr(m.addr()))
        .await
        .expect_err("unknown user");
    assert_eq!(server_code(&e), Some(1045), "{e}");
    let mut ok = must_connect(&u.with_addr(m.addr())).await;
    assert_eq!(scalar_i64(&mut ok, "SELECT 1").await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_prepared_multi_results_and_transactions() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let m = start_maitred(&url, &["--pool-size", "2"]);
    let url_m = u.with_addr(m.addr());
    let t = unique_table("basic");
    let mut c = must_connect(&url_m).await;
    c.query_drop(format!(
        "CREATE TABLE {t} (id INT PRIMARY KEY, v VARCHAR(50))"
    ))
    .await
    .expect("create");

    // Prepared statements with parameters, many executions, from several clients that
    // share two server connections.
    let mut tasks = Vec::new();
    for task in 0..6i64 {
        let url_m = url_m.clone();
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = must_connect(&url_m).await;
            let ins = c
                .prep(format!("INSERT INTO {t} (id, v) VALUES (?, ?)"))
                .await
                .expect("prepare insert");
            let sel = c
                .prep(format!("SELECT v FROM {t} WHERE id = ?"))
                .await
                .expect("prepare select");
            for i in 0..20i64 {
                let id = task * 100 + i;
                c.exec_drop(&ins, (id, format!("v{id}")))
                    .await
                    .expect("execute insert");
                let v: Option<String> = c.exec_first(&sel, (id,)).await.expect("execute select");
                assert_eq!(v, Some(format!("v{id}")));
            }
            c.close(ins).await.expect("close");
            c.disconnect().await.expect("disconnect");
        }));
    }
    for task in tasks {
        within(60, "prepared statements task", task)
            .await
            .expect("task");
    }
    assert_eq!(
        scalar_i64(&mut c, &format!("SELECT COUNT(*) FROM {t}")).await,
        Some(120)
    );

    // Multi-statement query with several result sets.
    let mut r = c
        .query_iter(format!("SELECT 1; SELECT COUNT(*) FROM {t}; SELECT 'x'"))
        .await
        .expect("multi");
    let a: Vec<i64> = r.collect().await.expect("first result");
    let b: Vec<i64> = r.collect().await.expect("second result");
    let x: Vec<String> = r.collect().await.expect("third result");
    drop(r);
    assert_eq!((a, b, x), (vec![1], vec![120], vec!["x".to_owned()]));

    // A rolled back transaction leaves nothing; a committed one stays.
    c.query_drop("BEGIN").await.expect("begin");
    c.query_drop(format!("INSERT INTO {t} VALUES (9001, 'rolled back')"))
        .await
        .expect("insert");
    c.query_drop("ROLLBACK").await.expect("rollback");
    c.query_drop("START TRANSACTION").await.expect("begin");
    c.query_drop(format!("INSERT INTO {t} VALUES (9002, 'kept')"))
        .await
        .expect("insert");
    c.query_drop("COMMIT").await.expect("commit");
    assert_eq!(
        scalar_i64(&mut c, &format!("SELECT COUNT(*) FROM {t} WHERE id > 9000")).await,
        Some(1)
    );

    // COM_PING is answered; COM_INIT_DB follows the client.
    c.ping().await.expect("ping");
    c.query_drop(format!("DROP TABLE {t}")).await.expect("drop");
    c.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_clients_share_two_server_connections() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    const COUNT_APP: &str = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'app' AND ID <> CONNECTION_ID()";
    let mut direct = must_connect(&url).await;
    let before = scalar_i64(&mut direct, COUNT_APP).await.unwrap_or(0);
    let m = start_maitred(&url, &["--pool-size", "2", "--queue-timeout", "20s"]);
    let url_m = u.with_addr(m.addr());
    let mut tasks = Vec::new();
    for i in 0..60i64 {
        let url_m = url_m.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = must_connect(&url_m).await;
            for j in 0..10i64 {
                let v = scalar_i64(&mut c, &format!("SELECT {i} * 100 + {j}")).await;
                assert_eq!(v, Some(i * 100 + j));
            }
            c.disconnect().await.expect("disconnect");
        }));
    }
    for task in tasks {
        within(90, "client task", task).await.expect("task");
    }
    // maitred opened no more than two server connections.
    let after = scalar_i64(&mut direct, COUNT_APP).await.unwrap_or(0);
    assert!(
        after - before <= 2,
        "server connections: {before} before, {after} after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_async_with_default_options_stays_on_maitred() {
    // mysql_async's default prefer_socket reads @@socket after login and moves a loopback
    // connection to the server's Unix socket: maitred answers NULL, so the driver stays.
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let mut direct = must_connect(&url).await;
    let socket = scalar_string(&mut direct, "SELECT @@socket").await;
    assert!(socket.is_some(), "the test server has a Unix socket");
    let m = start_maitred(&url, &["--pool-size", "1"]);
    let url_m = MysqlUrl::parse(&url).with_addr(m.addr());
    let mut c = within(
        20,
        "connect",
        Conn::new(Opts::from_url(&url_m).expect("URL")),
    )
    .await
    .expect("connect with default options");
    assert!(Opts::from_url(&url_m).expect("URL").prefer_socket());
    // Over the socket the server would see the client as app@localhost; through maitred
    // it sees maitred's TCP connection from 127.0.0.1.
    let user = scalar_string(&mut c, "SELECT USER()").await;
    assert_eq!(
        user.as_deref(),
        Some("app@127.0.0.1"),
        "the driver went around maitred"
    );
    assert_eq!(scalar_string(&mut c, "SELECT @@socket").await, None);
    // Literals and other variables are untouched.
    assert_eq!(
        scalar_string(&mut c, "SELECT '@@socket'").await.as_deref(),
        Some("@@socket")
    );
    c.disconnect().await.expect("disconnect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_timeout_gives_1040_and_connection_stays_usable() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let m = start_maitred(&url, &["--pool-size", "1", "--queue-timeout", "300ms"]);
    let url_m = u.with_addr(m.addr());
    let mut holder = must_connect(&url_m).await;
    let mut waiter = must_connect(&url_m).await;
    holder.query_drop("BEGIN").await.expect("begin");
    assert_eq!(scalar_i64(&mut holder, "SELECT 1").await, Some(1));
    let started = Instant::now();
    let e = waiter
        .query_drop("SELECT 2")
        .await
        .expect_err("the only server connection is in a transaction");
    let waited = started.elapsed();
    match &e {
        mysql_async::Error::Server(s) => {
            assert_eq!((s.code, s.state.as_str()), (1040, "08004"), "{e}");
            assert!(s.message.contains("queue_timeout"), "{}", s.message);
        }
        other => panic!("expected ERR 1040, got {other}"),
    }
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    holder.query_drop("COMMIT").await.expect("commit");
    assert_eq!(scalar_i64(&mut waiter, "SELECT 2").await, Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_client_mid_transaction_is_rolled_back() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let m = start_maitred(&url, &["--pool-size", "1"]);
    let url_m = u.with_addr(m.addr());
    let t = unique_table("abandon");
    let mut direct = must_connect(&url).await;
    direct
        .query_drop(format!(
            "CREATE TABLE {t} (id INT PRIMARY KEY) ENGINE=InnoDB"
        ))
        .await
        .expect("create");

    // A raw client: log in, BEGIN, INSERT, then vanish without COM_QUIT.
    {
        let mut s = raw_login(m.addr(), &u);
        raw_query_ok(&mut s, "BEGIN");
        raw_query_ok(&mut s, &format!("INSERT INTO {t} VALUES (1)"));
        drop(s);
    }
    // The next client gets the same (only) server connection, with no transaction.
    let mut next = must_connect(&url_m).await;
    assert_eq!(
        scalar_i64(&mut next, "SELECT @@in_transaction").await,
        Some(0)
    );
    assert_eq!(
        scalar_i64(&mut next, &format!("SELECT COUNT(*) FROM {t}")).await,
        Some(0)
    );
    let open = scalar_i64(
        &mut direct,
        "SELECT COUNT(*) FROM information_schema.INNODB_TRX",
    )
    .await;
    assert_eq!(open, Some(0), "an abandoned transaction is still open");
    direct
        .query_drop(format!("DROP TABLE {t}"))
        .await
        .expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_never_reaches_the_next_client() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    // One server connection shared by every client.
    let m = start_maitred(&url, &["--pool-size", "1", "--queue-timeout", "10s"]);
    let url_m = u.with_addr(m.addr());

    // Followed state: the database and autocommit move with their client.
    let mut a = must_connect(&url_m).await;
    let mut b = must_connect(&url_m).await;
    a.query_drop("USE sbtest").await.expect("use");
    a.query_drop("SET autocommit = 0")
        .await
        .expect("autocommit off");
    a.query_drop("COMMIT").await.expect("commit");
    assert_eq!(
        scalar_string(&mut b, "SELECT DATABASE()").await,
        Some(u.database.clone())
    );
    assert_eq!(scalar_i64(&mut b, "SELECT @@autocommit").await, Some(1));
    assert_eq!(
        scalar_string(&mut a, "SELECT DATABASE()").await,
        Some("sbtest".into())
    );
    assert_eq!(scalar_i64(&mut a, "SELECT @@autocommit").await, Some(0));
    a.query_drop("COMMIT").await.expect("commit");
    a.query_drop("SET autocommit = 1")
        .await
        .expect("autocommit on");
    b.disconnect().await.expect("disconnect");

    // Pinned state: it stays with its client, and is reset before anyone else gets the
    // server connection.
    a.query_drop("SET @secret = 42")
        .await
        .expect("user variable");
    a.query_drop("SET SESSION sql_mode = 'ANSI_QUOTES'")
        .await
        .expect("sql_mode");
    a.query_drop("CREATE TEMPORARY TABLE maitred_tmp (x INT)")
        .await
        .expect("temp table");
    assert_eq!(
        scalar_i64(&mut a, "SELECT GET_LOCK('maitred_leak', 0)").await,
        Some(1)
    );
    a.query_drop("BEGIN").await.expect("begin");
    assert_eq!(scalar_i64(&mut a, "SELECT @secret").await, Some(42));
    drop(a); // abandoned: no COMMIT, no COM_QUIT wait

    let mut c = must_connect(&url_m).await;
    assert_eq!(scalar_i64(&mut c, "SELECT @secret").await, None);
    let mode = scalar_string(&mut c, "SELECT @@SESSION.sql_mode")
        .await
        .unwrap_or_default();
    assert!(!mode.contains("ANSI_QUOTES"), "sql_mode leaked: {mode}");
    assert_eq!(
        scalar_i64(&mut c, "SELECT IS_FREE_LOCK('maitred_leak')").await,
        Some(1)
    );
    assert_eq!(scalar_i64(&mut c, "SELECT @@in_transaction").await, Some(0));
    let e = c
        .query_drop("SELECT * FROM maitred_tmp")
        .await
        .expect_err("temporary table leaked");
    assert_eq!(server_code(&e), Some(1146), "{e}");
    assert_eq!(
        scalar_string(&mut c, "SELECT DATABASE()").await,
        Some(u.database.clone())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_id_and_kill_use_maitreds_ids() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let m = start_maitred(&url, &["--pool-size", "3"]);
    let url_m = u.with_addr(m.addr());
    let mut a = must_connect(&url_m).await;
    let mut b = must_connect(&url_m).await;
    let a_id = scalar_i64(&mut a, "SELECT CONNECTION_ID()")
        .await
        .expect("id");
    assert_eq!(
        i64::from(a.id()),
        a_id,
        "CONNECTION_ID() is the id of maitred's handshake"
    );
    let b_id = scalar_i64(&mut b, "SELECT CONNECTION_ID()")
        .await
        .expect("id");
    assert_ne!(a_id, b_id);

    // KILL QUERY from another client reaches the server thread running A's query.
    let sleeper = tokio::spawn(async move {
        let started = Instant::now();
        let r = a.query_drop("SELECT SLEEP(20)").await;
        (a, r, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.query_drop(format!("KILL QUERY {a_id}"))
        .await
        .expect("kill query");
    let (mut a, _r, took) = within(15, "killed query", sleeper).await.expect("task");
    assert!(
        took < Duration::from_secs(10),
        "KILL QUERY did not interrupt: {took:?}"
    );
    assert_eq!(
        scalar_i64(&mut a, "SELECT 5").await,
        Some(5),
        "A's connection survives KILL QUERY"
    );

    // Unknown ids are refused; KILL CONNECTION ends A's session.
    let e = b
        .query_drop("KILL 4000000000")
        .await
        .expect_err("unknown id");
    assert_eq!(server_code(&e), Some(1094), "{e}");
    b.query_drop(format!("KILL {a_id}"))
        .await
        .expect("kill connection");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        a.query_drop("SELECT 1").await.is_err(),
        "A still works after KILL"
    );
    assert_eq!(scalar_i64(&mut b, "SELECT 6").await, Some(6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_variables_follow_their_client_without_pinning() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    // One server connection, a short queue timeout: a pinned client would starve the other.
    let m = start_maitred(&url, &["--pool-size", "1", "--queue-timeout", "2s"]);
    let url_m = u.with_addr(m.addr());
    let mut a = must_connect(&url_m).await;
    let mut b = must_connect(&url_m).await;
    let tz_default = scalar_string(&mut b, "SELECT @@session.time_zone").await;
    let cs_default = scalar_string(&mut b, "SELECT @@character_set_client").await;
    a.query_drop("SET NAMES latin1").await.expect("set names");
    a.query_drop("SET SESSION time_zone = '+03:00'")
        .await
        .expect("time zone");
    a.query_drop("SET sql_mode = 'ANSI_QUOTES'")
        .await
        .expect("sql_mode");
    for _ in 0..3 {
        assert_eq!(
            scalar_string(&mut b, "SELECT @@session.time_zone").await,
            tz_default
        );
        assert_eq!(
            scalar_string(&mut b, "SELECT @@character_set_client").await,
            cs_default
        );
        let mode = scalar_string(&mut b, "SELECT @@sql_mode")
            .await
            .unwrap_or_default();
        assert!(!mode.contains("ANSI_QUOTES"), "{mode}");
        assert_eq!(
            scalar_string(&mut a, "SELECT @@session.time_zone")
                .await
                .as_deref(),
            Some("+03:00")
        );
        assert_eq!(
            scalar_string(&mut a, "SELECT @@character_set_client")
                .await
                .as_deref(),
            Some("latin1")
        );
        let mode = scalar_string(&mut a, "SELECT @@sql_mode")
            .await
            .unwrap_or_default();
        assert!(mode.contains("ANSI_QUOTES"), "{mode}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_user_starts_a_clean_session() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let m = start_maitred(&url, &["--pool-size", "1", "--queue-timeout", "5s"]);
    let url_m = u.with_addr(m.addr());
    let mut a = must_connect(&url_m).await;
    a.query_drop("SET @v = 1")
        .await
        .expect("user variable (pins)");
    a.query_drop("BEGIN").await.expect("begin");
    a.change_user(
        mysql_async::ChangeUserOpts::default()
            .with_user(Some(u.user.clone()))
            .with_pass(Some(u.password.clone()))
            .with_db_name(Some("sbtest".into())),
    )
    .await
    .expect("COM_CHANGE_USER");
    assert_eq!(scalar_i64(&mut a, "SELECT @@in_transaction").await, Some(0));
    assert_eq!(
        scalar_string(&mut a, "SELECT DATABASE()").await,
        Some("sbtest".into())
    );
    // No longer pinned: another client gets the only server connection.
    let mut b = must_connect(&url_m).await;
    assert_eq!(scalar_i64(&mut b, "SELECT 3").await, Some(3));
    b.disconnect().await.expect("disconnect");
    assert_eq!(scalar_i64(&mut a, "SELECT @v").await, None);
    let e = a
        .change_user(
            mysql_async::ChangeUserOpts::default()
                .with_user(Some(u.user.clone()))
                .with_pass(Some("wrong".into())),
        )
        .await
        .expect_err("wrong password");
    assert_eq!(server_code(&e), Some(1045), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_insert_id_is_the_clients_own() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    // Both clients share the one server connection.
    let m = start_maitred(&url, &["--pool-size", "1", "--queue-timeout", "5s"]);
    let url_m = u.with_addr(m.addr());
    let t = unique_table("autoinc");
    let mut a = must_connect(&url_m).await;
    let mut b = must_connect(&url_m).await;
    a.query_drop(format!(
        "CREATE TABLE {t} (id INT AUTO_INCREMENT PRIMARY KEY, who CHAR(1))"
    ))
    .await
    .expect("create");
    a.query_drop(format!("INSERT INTO {t} (who) VALUES ('a')"))
        .await
        .expect("insert a");
    b.query_drop(format!("INSERT INTO {t} (who) VALUES ('b')"))
        .await
        .expect("insert b");
    assert_eq!(scalar_i64(&mut a, "SELECT LAST_INSERT_ID()").await, Some(1));
    assert_eq!(scalar_i64(&mut b, "SELECT LAST_INSERT_ID()").await, Some(2));
    // The same through prepared statements (the text cannot carry the value: maitred
    // sets the connection's value before each execute).
    const PREPARED: &str = "SELECT LAST_INSERT_ID() + ?";
    for (who, want) in [('a', 1), ('b', 2), ('a', 1)] {
        let c = if who == 'a' { &mut a } else { &mut b };
        let got: Option<i64> = c.exec_first(PREPARED, (0,)).await.expect("exec");
        assert_eq!(got, Some(want), "{who}'s prepared LAST_INSERT_ID()");
    }
    // Not pinned: b could run while a was idle, and still can.
    assert_eq!(scalar_i64(&mut b, "SELECT 1").await, Some(1));
    a.query_drop(format!("DROP TABLE {t}")).await.expect("drop");
}

// ---------------------------------------------------------------------------
// protocol errors (raw packets)

fn raw_login(addr: std::net::SocketAddr, u: &MysqlUrl) -> std::net::TcpStream {
    use maitred_mysql::codec::packets;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let (_, greeting) = read_raw(&mut s);
    let g = packets::parse_greeting(&greeting).expect("greeting");
    let answer = maitred_mysql::auth::expected_answer(
        maitred_mysql::auth::NATIVE,
        &g.nonce,
        u.password.as_bytes(),
    )
    .expect("native answer");
    let caps = maitred_mysql::codec::cap::SERVER_LEG;
    let hello = packets::client_hello(
        caps,
        45,
        &u.user,
        &answer,
        None,
        maitred_mysql::auth::NATIVE,
    );
    write_raw(&mut s, 1, &hello);
    let (_, ok) = read_raw(&mut s);
    assert_eq!(
        ok.as_slice().first().copied(),
        Some(0),
        "login refused: {:?}",
        packets::parse_err(&ok)
    );
    s
}

fn write_raw(s: &mut std::net::TcpStream, seq: u8, payload: &[u8]) {
    let out = bytes_with_header(seq, payload);
    s.write_all(&out).expect("write");
}

fn bytes_with_header(seq: u8, payload: &[u8]) -> Vec<u8> {
    let n = payload.len();
    let mut out = vec![n as u8, (n >> 8) as u8, (n >> 16) as u8, seq];
    out.extend_from_slice(payload);
    out
}

/// Reads one packet; `(seq, payload)`, or an empty payload with seq 255 at EOF.
fn read_raw(s: &mut std::net::TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 4];
    if s.read_exact(&mut h).is_err() {
        return (255, Vec::new());
    }
    let n = usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16;
    let mut p = vec![0u8; n];
    s.read_exact(&mut p).expect("payload");
    (h[3], p)
}

/// Sends a COM_QUERY whose answer is OK and reads it.
fn raw_query_ok(s: &mut std::net::TcpStream, sql: &str) {
    let mut p = vec![0x03];
    p.extend_from_slice(sql.as_bytes());
    write_raw(s, 0, &p);
    let (_, reply) = read_raw(s);
    assert_eq!(
        reply.as_slice().first().copied(),
        Some(0),
        "{sql}: {:?}",
        maitred_mysql::codec::packets::parse_err(&reply)
    );
}

/// Reads packets until an EOF packet; returns the packets before it and the EOF's status.
fn read_until_eof(s: &mut std::net::TcpStream) -> (Vec<Vec<u8>>, u16) {
    let mut got = Vec::new();
    loop {
        let (seq, p) = read_raw(s);
        assert_ne!(seq, 255, "connection closed");
        assert_ne!(
            p.as_slice().first().copied(),
            Some(0xff),
            "ERR: {:?}",
            maitred_mysql::codec::packets::parse_err(&p)
        );
        if maitred_mysql::codec::packets::is_eof(&p) {
            let status = maitred_mysql::codec::packets::eof_status(&p).expect("eof");
            return (got, status);
        }
        got.push(p);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_cursor_with_fetch_keeps_its_connection_until_done() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let m = start_maitred(&url, &["--pool-size", "1", "--queue-timeout", "10s"]);
    let addr = m.addr();
    let u2 = u.clone();
    tokio::task::spawn_blocking(move || {
        use maitred_mysql::codec::{status, stmt};
        let mut s = raw_login(addr, &u2);
        let mut p = vec![0x16];
        p.extend_from_slice(b"SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3");
        write_raw(&mut s, 0, &p);
        let (_, ok) = read_raw(&mut s);
        let ok = stmt::parse_prepare_ok(&ok).expect("prepare ok");
        assert_eq!((ok.columns, ok.params), (1, 0));
        read_until_eof(&mut s); // column definitions
        let id = ok.statement_id.to_le_bytes();
        // Execute with CURSOR_TYPE_READ_ONLY: columns, then EOF with CURSOR_EXISTS.
        let mut exec = vec![0x17];
        exec.extend_from_slice(&id);
        exec.extend_from_slice(&[0x01, 1, 0, 0, 0]);
        write_raw(&mut s, 0, &exec);
        let (_, count) = read_raw(&mut s);
        assert_eq!(count, vec![1u8]);
        let (_, st) = read_until_eof(&mut s);
        assert_ne!(st & status::CURSOR_EXISTS, 0, "no cursor opened");
        let mut rows = 0;
        loop {
            let mut fetch = vec![0x1c];
            fetch.extend_from_slice(&id);
            fetch.extend_from_slice(&2u32.to_le_bytes());
            write_raw(&mut s, 0, &fetch);
            let (got, st) = read_until_eof(&mut s);
            rows += got.len();
            if st & status::LAST_ROW_SENT != 0 {
                break;
            }
            assert!(rows <= 3, "too many rows");
        }
        assert_eq!(rows, 3);
        let mut close = vec![0x19];
        close.extend_from_slice(&id);
        write_raw(&mut s, 0, &close);
        raw_query_ok(&mut s, "DO 1");
    })
    .await
    .expect("raw cursor client");
    // The only server connection was given back once the cursor was exhausted.
    let mut other = must_connect(&u.with_addr(m.addr())).await;
    assert_eq!(scalar_i64(&mut other, "SELECT 8").await, Some(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packets_close_only_their_client() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let mut m = start_maitred(&url, &["--pool-size", "2"]);
    let mut bystander = must_connect(&u.with_addr(m.addr())).await;
    bystander.query_drop("BEGIN").await.expect("begin");

    // Out of sequence: a command must start at sequence id 0.
    let addr = m.addr();
    let u2 = u.clone();
    let (code, closed) = tokio::task::spawn_blocking(move || {
        let mut s = raw_login(addr, &u2);
        write_raw(&mut s, 7, b"\x03SELECT 1");
        let (_, err) = read_raw(&mut s);
        let code = maitred_mysql::codec::packets::parse_err(&err)
            .map(|e| e.code)
            .ok();
        let (seq, _) = read_raw(&mut s);
        (code, seq == 255)
    })
    .await
    .expect("raw client");
    assert_eq!(code, Some(1156));
    assert!(
        closed,
        "client not disconnected after an out-of-sequence packet"
    );

    // Empty command packet.
    let u3 = u.clone();
    let (code, closed) = tokio::task::spawn_blocking(move || {
        let mut s = raw_login(addr, &u3);
        write_raw(&mut s, 0, b"");
        let (_, err) = read_raw(&mut s);
        let code = maitred_mysql::codec::packets::parse_err(&err)
            .map(|e| e.code)
            .ok();
        let (seq, _) = read_raw(&mut s);
        (code, seq == 255)
    })
    .await
    .expect("raw client");
    assert_eq!(code, Some(1047));
    assert!(closed);

    // The other client's transaction is untouched.
    assert_eq!(
        scalar_i64(&mut bystander, "SELECT @@in_transaction").await,
        Some(1)
    );
    bystander.query_drop("COMMIT").await.expect("commit");
    assert_alive(&mut m);
}

// ---------------------------------------------------------------------------
// sysbench

fn sysbench(args: &[&str], u: &MysqlUrl, host: &str, port: u16) -> String {
    let mut full: Vec<String> = vec![
        "--db-driver=mysql".into(),
        format!("--mysql-host={host}"),
        format!("--mysql-port={port}"),
        format!("--mysql-user={}", u.user),
        format!("--mysql-password={}", u.password),
        "--mysql-db=sbtest".into(),
        "--tables=1".into(),
        "--table-size=10000".into(),
    ];
    full.extend(args.iter().map(|s| (*s).to_owned()));
    let out = kit::output_with_timeout(
        Command::new("sysbench").args(&full),
        Duration::from_secs(120),
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "sysbench {full:?} exited with {}\n{stdout}\n{stderr}",
        out.status
    );
    format!("{stdout}{stderr}")
}

fn sysbench_prepare(u: &MysqlUrl) {
    let _ = kit::output_with_timeout(
        Command::new("sysbench").args([
            "--db-driver=mysql",
            &format!("--mysql-host={}", u.host),
            &format!("--mysql-port={}", u.port),
            &format!("--mysql-user={}", u.user),
            &format!("--mysql-password={}", u.password),
            "--mysql-db=sbtest",
            "--tables=1",
            "oltp_common",
            "cleanup",
        ]),
        Duration::from_secs(60),
    );
    sysbench(&["oltp_common", "prepare"], u, &u.host, u.port);
}

fn sysbench_count(out: &str, label: &str) -> u64 {
    out.lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.trim_start()[label.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} line:\n{out}"))
}

/// The run finished (no FATAL), did work, and sysbench saw at most `max_ignored` errors.
/// Only deadlocks and lock-wait timeouts (1213, 1205, 1020) are "ignored errors" in
/// sysbench; a read/write run straight against MariaDB with 10 threads has a few too.
fn assert_sysbench_ok(out: &str, max_ignored: u64) {
    assert!(!out.contains("FATAL"), "{out}");
    let tx = sysbench_count(out, "transactions:");
    assert!(tx > 0, "no transactions:\n{out}");
    let ignored = sysbench_count(out, "ignored errors:");
    assert!(
        ignored <= max_ignored,
        "sysbench saw {ignored} errors:\n{out}"
    );
    eprintln!("sysbench: {tx} transactions, {ignored} ignored errors");
}

#[test]
fn sysbench_200_threads_over_pool_10() {
    let Some(url) = require_mysql() else { return };
    let _g = kit::serial_blocking();
    let u = MysqlUrl::parse(&url);
    sysbench_prepare(&u);
    let mut sb = u.clone();
    sb.database = "sbtest".into();
    let (mut m, admin) = maitred_testkit::admin_http::spawn_with_admin(
        &sb.url(),
        &["--pool-size", "10", "--queue-timeout", "30s"],
    );
    let host = m.addr().ip().to_string();
    let port = m.addr().port();
    let mut sent_before = 0.0;
    for mode in ["--db-ps-mode=disable", "--db-ps-mode=auto"] {
        let out = sysbench(
            &[
                "--threads=200",
                "--time=5",
                mode,
                "oltp_point_select",
                "run",
            ],
            &u,
            &host,
            port,
        );
        assert_sysbench_ok(&out, 0);
        assert_alive(&mut m);
        // Point selects in autocommit from sessions with the server's defaults: queued
        // ones are sent ahead (send_ahead), text (disable) and prepared (auto) alike.
        let sent = metric_sum(admin, "maitred_sent_ahead_total");
        eprintln!("sysbench {mode}: {} sent ahead", sent - sent_before);
        assert!(
            sent - sent_before > 100.0,
            "{mode}: queued point selects were not sent ahead"
        );
        sent_before = sent;
    }
    assert_eq!(metric_sum(admin, "maitred_sent_ahead_lost_total"), 0.0);
    let out = sysbench(
        &["--threads=100", "--time=5", "oltp_read_write", "run"],
        &u,
        &host,
        port,
    );
    // Deadlocks between the 10 concurrent transactions are the server's doing (they
    // happen straight to MariaDB too): allow under 1% of transactions.
    let tx = sysbench_count(&out, "transactions:");
    assert_sysbench_ok(&out, tx / 100);
    assert_alive(&mut m);
}
