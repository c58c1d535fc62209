//! End-to-end tests of users without a user list (`auth_user` / `auth_query`, docs/postgres.md):
//! roles created on the real PostgreSQL with SCRAM and md5 passwords log in through maitred,
//! which has no `users` entry for them, fetches their secrets with a SECURITY DEFINER lookup
//! function, checks their passwords and logs in to the server as those same roles (tokio-postgres,
//! psql, pgbench). Wrong passwords and unknown users get the same 28P01 (and an unknown user the
//! same SCRAM salt at every attempt); a changed password takes over at once (a cached secret
//! is checked with the server at every login), and the cached secret stands in when that
//! check fails; an idle user pool is closed; a lookup that cannot log in or whose query fails gives
//! 08006 with a message that says nothing of the upstream; no secret reaches the log.
//!
//! Needs `MAITRED_TEST_PG_SUPERUSER_URL` (roles and the function are created, and dropped at
//! the end). The md5 role also needs `MAITRED_TEST_PG_DATADIR` (the test server asks SCRAM of
//! everyone; a pg_hba.conf line for that one role, removed at the end, lets it use md5).
//! Without the server the tests print a skip notice and pass, except under `CI=true`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use maitred_testkit::admin_http::http_body;
use maitred_testkit::{self as kit, Maitred};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// How long maitred keeps a fetched secret in these tests.
const TTL: Duration = Duration::from_secs(4);

fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr")
}

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) =
        tokio::time::timeout(Duration::from_secs(20), tokio_postgres::connect(url, NoTls))
            .await
            .unwrap_or_else(|_| panic!("login did not finish within 20 s"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn scalar(client: &Client, sql: &str) -> String {
    let rows = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// `current_user` on the server, through maitred, as `user` with `password`.
async fn current_user_as(addr: SocketAddr, database: &str, user: &str, password: &str) -> String {
    let client = connect(&url(addr, database, user, password))
        .await
        .unwrap_or_else(|e| panic!("{user} could not log in through maitred: {e}"));
    scalar(&client, "SELECT current_user").await
}

/// The error of a login expected to fail: (SQLSTATE, message).
async fn refused(addr: SocketAddr, database: &str, user: &str, password: &str) -> (String, String) {
    match connect(&url(addr, database, user, password)).await {
        Ok(_) => panic!("{user} logged in with a password that should be refused"),
        Err(e) => {
            let db = e
                .as_db_error()
                .unwrap_or_else(|| panic!("{user}: not a server error: {e}"));
            (db.code().code().to_owned(), db.message().to_owned())
        }
    }
}

fn url(addr: SocketAddr, database: &str, user: &str, password: &str) -> String {
    format!("postgres://{user}:{password}@{addr}/{database}?connect_timeout=15")
}

fn psql(args: &[&str]) -> String {
    let out = kit::output_with_timeout(
        Command::new("psql")
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(args)
            .env("PGCONNECT_TIMEOUT", "15"),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "psql {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Roles, schema and lookup function of one test run, and the pg_hba.conf line for the md5
/// role; all removed on drop (also when the test fails).
struct Fixture {
    superuser: String,
    tag: String,
    hba: Option<(PathBuf, String)>,
}

impl Fixture {
    fn scram_role(&self) -> String {
        format!("mtd_aq_scram_{}", self.tag)
    }
    fn md5_role(&self) -> String {
        format!("mtd_aq_md5_{}", self.tag)
    }
    fn lookup_role(&self) -> String {
        format!("mtd_aq_lookup_{}", self.tag)
    }
    fn schema(&self) -> String {
        format!("mtd_aq_{}", self.tag)
    }

    fn create(superuser: &str) -> Fixture {
        let mut f = Fixture {
            superuser: superuser.to_owned(),
            tag: std::process::id().to_string(),
            hba: None,
        };
        f.drop_objects();
        let (scram, md5, lookup, schema) =
            (f.scram_role(), f.md5_role(), f.lookup_role(), f.schema());
        let sql = format!(
            "SET password_encryption = 'scram-sha-256';
             CREATE ROLE {scram} LOGIN PASSWORD 'scram-pw-1';
             CREATE ROLE {lookup} LOGIN PASSWORD 'lookup-pw';
             SET password_encryption = 'md5';
             CREATE ROLE {md5} LOGIN PASSWORD 'md5-pw';
             CREATE SCHEMA {schema};
             CREATE FUNCTION {schema}.user_secret(p_user text, OUT usename name, OUT passwd text)
               RETURNS SETOF record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
               AS $$ SELECT rolname, rolpassword::text FROM pg_authid
                     WHERE rolname = p_user AND rolcanlogin $$;
             REVOKE ALL ON FUNCTION {schema}.user_secret(text) FROM PUBLIC;
             GRANT USAGE ON SCHEMA {schema} TO {lookup};
             GRANT EXECUTE ON FUNCTION {schema}.user_secret(text) TO {lookup};"
        );
        psql(&[&f.superuser, "-c", &sql]);
        if let Some(control) = kit::pg_server::pg_control() {
            let path = control.datadir.join("pg_hba.conf");
            let original = std::fs::read_to_string(&path).expect("read pg_hba.conf");
            let line = format!("host all {md5} 127.0.0.1/32 md5\n");
            std::fs::write(&path, format!("{line}{original}")).expect("write pg_hba.conf");
            f.hba = Some((path, line));
            psql(&[&f.superuser, "-c", "SELECT pg_reload_conf()"]);
            // The reload is asynchronous: wait until new backends see the line.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                let found = psql(&[
                    &f.superuser,
                    "-c",
                    &format!(
                        "SELECT count(*) FROM pg_hba_file_rules WHERE '{md5}' = ANY(user_name)"
                    ),
                ]);
                if found.trim() == "1" {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        f
    }

    fn secret_of(&self, role: &str) -> String {
        psql(&[
            &self.superuser,
            "-c",
            &format!("SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'"),
        ])
        .trim()
        .to_owned()
    }

    fn drop_objects(&self) {
        let sql = format!(
            "DROP SCHEMA IF EXISTS {} CASCADE; DROP ROLE IF EXISTS {}; DROP ROLE IF EXISTS {}; DROP ROLE IF EXISTS {};",
            self.schema(),
            self.scram_role(),
            self.md5_role(),
            self.lookup_role()
        );
        let _ = kit::output_with_timeout(
            Command::new("psql").args(["-X", "-q", &self.superuser, "-c", &sql]),
            Duration::from_secs(30),
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some((path, line)) = &self.hba {
            if let Ok(text) = std::fs::read_to_string(path) {
                let _ = std::fs::write(path, text.replacen(line, "", 1));
                let _ = kit::output_with_timeout(
                    Command::new("psql").args([
                        "-X",
                        "-q",
                        &self.superuser,
                        "-c",
                        "SELECT pg_reload_conf()",
                    ]),
                    Duration::from_secs(30),
                );
            }
        }
        self.drop_objects();
    }
}

/// Two pools on one address: `app` (secrets cached for `ttl`) and `aq_idle` (user pools
/// closed after 1 s without clients), both looking users up with the fixture's function.
fn start(f: &Fixture, pg_url: &str, admin: SocketAddr, ttl: Duration) -> Maitred {
    let listen = free_addr();
    let upstream = kit::pg_url_parts(pg_url).to_string();
    let lookup = f.lookup_role();
    let query = format!("SELECT usename, passwd FROM {}.user_secret($1)", f.schema());
    let pool = |name: &str, database: &str, idle: &str| {
        format!(
            "[[pools]]\nname = \"{name}\"\nlisten = \"{listen}\"\nupstream = \"{upstream}\"\ndatabase = \"{database}\"\nsize = 2\nqueue_timeout = \"10s\"\nidle_timeout = \"{idle}\"\nauth_user = \"{lookup}\"\nauth_query = \"{query}\"\nauth_cache_ttl = \"{}s\"\n  [[pools.users]]\n  name = \"{lookup}\"\n  password = \"lookup-pw\"\n",
            ttl.as_secs()
        )
    };
    let text = format!(
        "[admin]\nlisten = \"{admin}\"\n\n{}\n{}",
        pool("app", "app", "60s"),
        pool("aq_idle", "aq_idle", "1s")
    );
    let dir = std::env::temp_dir().join(format!("maitred-aq-{}", f.tag));
    std::fs::create_dir_all(&dir).expect("config dir");
    let config = dir.join("maitred.toml");
    std::fs::write(&config, text).expect("write config");
    let config = config.display().to_string();
    Maitred::spawn_at(
        listen,
        &["--config", config.as_str(), "--log-level", "debug"],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_query_users_log_in_as_themselves() {
    let Some(superuser) = kit::require_pg_superuser() else {
        return;
    };
    let pg_url = kit::require_pg().expect("app URL");
    let _serial = kit::serial().await;
    let f = tokio::task::block_in_place(|| Fixture::create(&superuser));
    let admin = free_addr();
    let m = tokio::task::block_in_place(|| start(&f, &pg_url, admin, TTL));
    let addr = m.addr();
    let (scram, md5) = (f.scram_role(), f.md5_role());

    // SCRAM role: the server session is the role itself, not the pool's upstream user.
    let client = connect(&url(addr, "app", &scram, "scram-pw-1"))
        .await
        .expect("SCRAM role logs in");
    assert_eq!(
        scalar(&client, "SELECT current_user || ',' || session_user").await,
        format!("{scram},{scram}")
    );
    let out = tokio::task::block_in_place(|| {
        psql(&[
            &url(addr, "app", &scram, "scram-pw-1"),
            "-c",
            "SELECT current_user",
        ])
    });
    assert_eq!(out.trim(), scram, "psql as the SCRAM role");

    // md5 role (needs the pg_hba.conf line).
    if f.hba.is_some() {
        assert_eq!(current_user_as(addr, "app", &md5, "md5-pw").await, md5);
        let (code, _) = refused(addr, "app", &md5, "wrong").await;
        assert_eq!(code, SqlState::INVALID_PASSWORD.code());
    } else {
        eprintln!("skipping the md5 role: MAITRED_TEST_PG_DATADIR is not set (pg_hba.conf)");
    }

    // Wrong password and unknown user: the same error, naming only the user sent.
    let (code, wrong) = refused(addr, "app", &scram, "wrong").await;
    assert_eq!(code, SqlState::INVALID_PASSWORD.code(), "{wrong}");
    let unknown = format!("mtd_aq_nobody_{}", f.tag);
    let (code, nobody) = refused(addr, "app", &unknown, "whatever").await;
    assert_eq!(code, SqlState::INVALID_PASSWORD.code(), "{nobody}");
    assert_eq!(nobody, wrong.replace(&scram, &unknown));

    // The user's own pool shows in the metrics.
    let metrics = tokio::task::block_in_place(|| http_body(admin, "/metrics"));
    assert!(
        metrics.contains(&format!("pool=\"app/{scram}\"")),
        "no metrics for app/{scram}:\n{metrics}"
    );

    // pgbench as the role, 4 clients over its pool of 2.
    let dir = std::env::temp_dir().join(format!("maitred-aq-{}", f.tag));
    let script = dir.join("whoami.sql");
    std::fs::write(&script, "SELECT current_user;\n").expect("write pgbench script");
    let script = script.display().to_string();
    let bench_url = format!("postgres://{scram}@{addr}/app");
    let out = tokio::task::block_in_place(|| {
        kit::output_with_timeout(
            Command::new("pgbench")
                .args([
                    "-n", "-c", "4", "-j", "2", "-t", "20", "-f", &script, &bench_url,
                ])
                .env("PGPASSWORD", "scram-pw-1"),
            Duration::from_secs(60),
        )
    });
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pgbench failed: {shown}");
    assert!(
        shown.contains("number of transactions actually processed: 80/80"),
        "{shown}"
    );

    // A user pool without clients is closed after idle_timeout (1 s on aq_idle).
    assert_eq!(
        current_user_as(addr, "aq_idle", &scram, "scram-pw-1").await,
        scram
    );
    let name = format!("\"aq_idle/{scram}\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pools = tokio::task::block_in_place(|| http_body(admin, "/pools"));
        if !pools.contains(&name) {
            break;
        }
        assert!(Instant::now() < deadline, "{name} still open:\n{pools}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(client);

    // No password, secret or hash in the debug log.
    let log = m.log();
    for secret in [
        "scram-pw-1".to_owned(),
        "scram-pw-2".to_owned(),
        "md5-pw".to_owned(),
        "lookup-pw".to_owned(),
        f.secret_of(&scram),
        f.secret_of(&md5),
    ] {
        if !secret.is_empty() {
            assert!(!log.contains(&secret), "the log shows a secret");
        }
    }
    let scram_secret = f.secret_of(&scram);
    if let Some(stored_key) = scram_secret
        .rsplit('$')
        .next()
        .and_then(|k| k.split(':').next())
    {
        assert!(!log.contains(stored_key), "the log shows a StoredKey");
    }
    drop(m);
    tokio::task::block_in_place(|| drop(f));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_password_takes_over_at_once() {
    let Some(superuser) = kit::require_pg_superuser() else {
        return;
    };
    let pg_url = kit::require_pg().expect("app URL");
    let _serial = kit::serial().await;
    let f = tokio::task::block_in_place(|| Fixture::create(&superuser));
    // Secrets cached far longer than the test: nothing here is an expiry.
    let m =
        tokio::task::block_in_place(|| start(&f, &pg_url, free_addr(), Duration::from_secs(600)));
    let addr = m.addr();
    let (scram, md5) = (f.scram_role(), f.md5_role());
    let alter = |role: &str, encryption: &str, password: &str| {
        let sql = format!(
            "SET password_encryption = '{encryption}'; ALTER ROLE {role} PASSWORD '{password}'"
        );
        tokio::task::block_in_place(|| psql(&[&superuser, "-c", &sql]));
    };

    // Every login checks a cached secret with the server, during its first round trip: the
    // new password works at the first attempt and the old one is refused at once, as
    // straight against the server.
    if f.hba.is_some() {
        assert_eq!(current_user_as(addr, "app", &md5, "md5-pw").await, md5);
        alter(&md5, "md5", "md5-pw-2");
        assert_eq!(
            current_user_as(addr, "app", &md5, "md5-pw-2").await,
            md5,
            "the new md5 password at the first attempt"
        );
        let (code, _) = refused(addr, "app", &md5, "md5-pw").await;
        assert_eq!(code, SqlState::INVALID_PASSWORD.code(), "old md5 password");
    } else {
        eprintln!("skipping the md5 role: MAITRED_TEST_PG_DATADIR is not set (pg_hba.conf)");
    }

    // SCRAM: the challenge carries the secret's salt, which a new password changes; the
    // secret is the server's by the time the challenge goes out.
    assert_eq!(
        current_user_as(addr, "app", &scram, "scram-pw-1").await,
        scram
    );
    alter(&scram, "scram-sha-256", "scram-pw-2");
    assert_eq!(
        current_user_as(addr, "app", &scram, "scram-pw-2").await,
        scram,
        "the new SCRAM password at the first attempt"
    );
    let (code, _) = refused(addr, "app", &scram, "scram-pw-1").await;
    assert_eq!(
        code,
        SqlState::INVALID_PASSWORD.code(),
        "old SCRAM password, at once"
    );

    // The lookup fails (its role may no longer log in, its connection is gone): the cached
    // secret stands in, so clients keep logging in while the server's check is down.
    let lookup = f.lookup_role();
    tokio::task::block_in_place(|| {
        psql(&[
            &superuser,
            "-c",
            &format!(
                "ALTER ROLE {lookup} NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{lookup}'"
            ),
        ])
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        current_user_as(addr, "app", &scram, "scram-pw-2").await,
        scram,
        "the cached secret stands in for a failed lookup"
    );
    let (code, _) = refused(addr, "app", &scram, "scram-pw-1").await;
    assert_eq!(code, SqlState::INVALID_PASSWORD.code());
    let log = m.log();
    assert!(
        log.contains("auth_query lookup failed: the cached secret stands in"),
        "{log}"
    );
    assert!(!log.contains("scram-pw"), "no password in the log");
    drop(m);
    tokio::task::block_in_place(|| drop(f));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_that_cannot_log_in_is_08006() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let listen = free_addr();
    let upstream = kit::pg_url_parts(&pg_url).to_string();
    let text = format!(
        "[[pools]]\nname = \"app\"\nlisten = \"{listen}\"\nupstream = \"{upstream}\"\nsize = 1\nauth_user = \"mtd_aq_no_such_lookup\"\n  [[pools.users]]\n  name = \"mtd_aq_no_such_lookup\"\n  password = \"lookup-secret-xyz\"\n"
    );
    let dir = std::env::temp_dir().join(format!("maitred-aq-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("config dir");
    let config = dir.join("maitred.toml");
    std::fs::write(&config, text).expect("write config");
    let config = config.display().to_string();
    let m =
        tokio::task::block_in_place(|| Maitred::spawn_at(listen, &["--config", config.as_str()]));
    let started = Instant::now();
    let (code, message) = refused(m.addr(), "app", "someone", "pw").await;
    assert_eq!(code, SqlState::CONNECTION_FAILURE.code(), "{message}");
    // The client learns only that the lookup failed; the reason is in the log.
    assert_eq!(
        message,
        "maitred: could not verify credentials for user \"someone\": the authentication lookup failed"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let log = m.log();
    assert!(
        log.contains("auth_query lookup failed") && log.contains("auth_user"),
        "{log}"
    );
    assert!(!log.contains("lookup-secret-xyz"));
}

/// maitred with one pool `app` whose lookup logs in as the test server's own user and runs
/// `query`.
fn start_with_query(pg_url: &str, query: &str, tag: &str) -> Maitred {
    let listen = free_addr();
    let parts = kit::pg_url_parts(pg_url);
    let upstream = parts.to_string();
    let user = parts.user.clone().expect("user in MAITRED_TEST_PG_URL");
    let password = parts.password.clone().unwrap_or_default();
    let text = format!(
        "[[pools]]\nname = \"app\"\nlisten = \"{listen}\"\nupstream = \"{upstream}\"\nsize = 1\nauth_user = \"{user}\"\nauth_query = \"{query}\"\n  [[pools.users]]\n  name = \"{user}\"\n  password = \"{password}\"\n"
    );
    let dir = std::env::temp_dir().join(format!("maitred-aq-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("config dir");
    let config = dir.join("maitred.toml");
    std::fs::write(&config, text).expect("write config");
    let config = config.display().to_string();
    tokio::task::block_in_place(|| Maitred::spawn_at(listen, &["--config", config.as_str()]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_auth_query_shows_the_client_no_server_error() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = start_with_query(
        &pg_url,
        "SELECT usename, passwd FROM mtd_aq_no_such_table WHERE usename = $1",
        "badquery",
    );
    let (code, message) = refused(m.addr(), "app", "someone", "pw").await;
    assert_eq!(code, SqlState::CONNECTION_FAILURE.code(), "{message}");
    assert_eq!(
        message,
        "maitred: could not verify credentials for user \"someone\": the authentication lookup failed"
    );
    let upstream = kit::pg_url_parts(&pg_url);
    for leak in [
        "mtd_aq_no_such_table",
        "does not exist",
        upstream.host.as_str(),
    ] {
        assert!(
            !message.contains(leak),
            "the client is told {leak:?}: {message}"
        );
    }
    let log = m.log();
    assert!(
        log.contains("mtd_aq_no_such_table"),
        "the log has the reason:\n{log}"
    );
}

/// The salt of maitred's SCRAM server-first message for `user`, from a raw login that hangs up
/// after it.
fn scram_salt(addr: SocketAddr, user: &str) -> String {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut body = 196_608u32.to_be_bytes().to_vec();
    for part in ["user", user, "database", "app", ""] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    s.write_all(&msg).expect("startup");
    let read = |s: &mut std::net::TcpStream| {
        let mut head = [0u8; 5];
        s.read_exact(&mut head).expect("header");
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body).expect("body");
        (head[0], body)
    };
    let (tag, body) = read(&mut s);
    assert_eq!(
        (tag, &body[..4]),
        (b'R', &10u32.to_be_bytes()[..]),
        "AuthenticationSASL"
    );
    let first = b"n,,n=,r=fyko+d2lbbFgONRv9qkxdawL";
    let mech = b"SCRAM-SHA-256\0";
    let mut msg = vec![b'p'];
    msg.extend_from_slice(&((4 + mech.len() + 4 + first.len()) as u32).to_be_bytes());
    msg.extend_from_slice(mech);
    msg.extend_from_slice(&(first.len() as u32).to_be_bytes());
    msg.extend_from_slice(first);
    s.write_all(&msg).expect("client-first");
    let (tag, body) = read(&mut s);
    assert_eq!(
        (tag, &body[..4]),
        (b'R', &11u32.to_be_bytes()[..]),
        "SASLContinue"
    );
    let text = String::from_utf8_lossy(&body[4..]).into_owned();
    text.split(',')
        .find_map(|a| a.strip_prefix("s="))
        .unwrap_or_else(|| panic!("no salt in {text}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_auth_query_user_sees_the_same_salt_every_time() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    // No row for anyone: every user is unknown.
    let m = start_with_query(&pg_url, "SELECT $1::text, NULL::text WHERE false", "nobody");
    let addr = m.addr();
    let salts = tokio::task::block_in_place(|| {
        [
            scram_salt(addr, "mtd_aq_nobody"),
            // The second attempt is answered from the cached "no such user".
            scram_salt(addr, "mtd_aq_nobody"),
            scram_salt(addr, "mtd_aq_nobody_else"),
        ]
    });
    assert_eq!(salts[0], salts[1], "same unknown name, same salt");
    assert_ne!(salts[0], salts[2], "each name its own salt");
    // After the negative cache entry expired (at most 5 s), still the same salt.
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let again = tokio::task::block_in_place(|| scram_salt(addr, "mtd_aq_nobody"));
    assert_eq!(salts[0], again);
}

/// `database = "*"` with auth_query: a looked-up user naming another database is checked
/// by the `*` pool's lookup, and served by that database's pool, logged in as itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_query_users_reach_any_database() {
    let Some(superuser) = kit::require_pg_superuser() else {
        return;
    };
    let pg_url = kit::require_pg().expect("app URL");
    let _serial = kit::serial().await;
    let f = tokio::task::block_in_place(|| Fixture::create(&superuser));
    let (listen, admin) = (free_addr(), free_addr());
    let lookup = f.lookup_role();
    let text = format!(
        "[admin]\nlisten = \"{admin}\"\n\n[[pools]]\nname = \"any\"\nlisten = \"{listen}\"\nupstream = \"{}\"\ndatabase = \"*\"\nsize = 2\nauth_user = \"{lookup}\"\nauth_query = \"SELECT usename, passwd FROM {}.user_secret($1)\"\n  [[pools.users]]\n  name = \"{lookup}\"\n  password = \"lookup-pw\"\n",
        kit::pg_url_parts(&pg_url),
        f.schema()
    );
    let dir = std::env::temp_dir().join(format!("maitred-aq-any-{}", f.tag));
    std::fs::create_dir_all(&dir).expect("config dir");
    let config = dir.join("maitred.toml");
    std::fs::write(&config, text).expect("write config");
    let config = config.display().to_string();
    let _m = Maitred::spawn_at(listen, &["--config", config.as_str()]);
    let scram = f.scram_role();
    let client = connect(&url(listen, "postgres", &scram, "scram-pw-1"))
        .await
        .expect("the SCRAM role reaches postgres");
    assert_eq!(
        scalar(&client, "SELECT current_user || ',' || current_database()").await,
        format!("{scram},postgres")
    );
    let (code, _) = refused(listen, "postgres", &scram, "wrong").await;
    assert_eq!(code, SqlState::INVALID_PASSWORD.code());
    let pools = tokio::task::block_in_place(|| http_body(admin, "/pools"));
    assert!(
        pools.contains(&format!("\"any/postgres/{scram}\"")),
        "the user's pool of the created database is listed: {pools}"
    );
    drop(client);
    let _ = std::fs::remove_dir_all(&dir);
}
