//! End-to-end tests of maitred's logs through the built binary and real clients:
//!
//! - at `--log-level debug`, after right and wrong client logins, queries and a failing
//!   server login, no password and no SCRAM key appears anywhere in maitred's output
//!   (PostgreSQL, MySQL, MongoDB);
//! - with `--log-format json`, a client's lines carry its span (protocol, pool, client
//!   address, id);
//! - clients queueing for a busy pool produce a rate-limited saturation warning, and a long
//!   wait a slow-checkout warning.
//!
//! Without the servers' environment variables each test prints a skip notice and passes,
//! except under `CI=true`, where it fails.

use std::net::SocketAddr;
use std::time::Duration;

use maitred_testkit::mongo::require_mongo;
use maitred_testkit::mysql::{require_mysql, MysqlUrl};
use maitred_testkit::{self as kit, Maitred};
use mysql_async::prelude::*;
use tokio_postgres::{NoTls, SimpleQueryMessage};

/// A config file removed on drop.
struct ConfigFile(std::path::PathBuf);

impl ConfigFile {
    fn new(tag: &str, text: &str) -> ConfigFile {
        let dir = std::env::temp_dir().join(format!("maitred-logs-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("maitred.toml");
        std::fs::write(&path, text).expect("write config");
        ConfigFile(path)
    }

    fn arg(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr")
}

/// Starts maitred with a config file at debug level; waits for every listen address.
fn spawn_debug(cfg: &ConfigFile, listens: &[SocketAddr], extra: &[&str]) -> Maitred {
    let arg = cfg.arg();
    let mut args = vec!["--config", arg.as_str(), "--log-level", "debug"];
    args.extend_from_slice(extra);
    let m = Maitred::spawn_at(listens[0], &args);
    for addr in &listens[1..] {
        assert!(kit::wait_for_port(*addr, Duration::from_secs(10)), "{addr}");
    }
    m
}

/// Fails naming the secret (never printing the log line, which would show it) if any of
/// `secrets` occurs in maitred's log.
fn assert_no_secrets(log: &str, secrets: &[&str]) {
    assert!(
        log.lines().count() > 5,
        "the debug log is suspiciously short:\n{log}"
    );
    for secret in secrets {
        assert!(!secret.is_empty());
        let hits = log.lines().filter(|l| l.contains(secret)).count();
        assert_eq!(
            hits,
            0,
            "a secret ({} chars) appears in {hits} log line(s)",
            secret.len()
        );
    }
}

// ---------------------------------------------------------------------------
// PostgreSQL

async fn pg_try_connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) =
        tokio::time::timeout(Duration::from_secs(30), tokio_postgres::connect(url, NoTls))
            .await
            .expect("connect timed out")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn pg_scalar(client: &tokio_postgres::Client, sql: &str) -> Option<String> {
    let msgs = tokio::time::timeout(Duration::from_secs(20), client.simple_query(sql))
        .await
        .unwrap_or_else(|_| panic!("{sql}: timed out"))
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    msgs.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
        _ => None,
    })?
}

/// The user's SCRAM secret as the server stores it, when the superuser URL is known.
async fn pg_scram_secret(user: &str) -> Option<String> {
    let su = kit::pg_superuser_url()?;
    let client = pg_try_connect(&su).await.ok()?;
    let row = client
        .query_opt(
            "select rolpassword from pg_authid where rolname = $1",
            &[&user],
        )
        .await
        .ok()??;
    let secret: Option<String> = row.get(0);
    secret.filter(|s| s.starts_with("SCRAM-SHA-256$"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_debug_log_holds_no_secret() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let up = kit::pg_url_parts(&pg);
    let user = up.user.clone().unwrap_or_default();
    let password = up.password.clone().unwrap_or_default();
    // Clients of the good pool are checked against the server's own SCRAM secret if we can
    // read it (its keys must not leak either), else against the plaintext password.
    let scram = pg_scram_secret(&user).await;
    let good_secret = scram.clone().unwrap_or_else(|| password.clone());
    let bad_upstream_pw = "wrong-upstream-pw-pg-7f3a";
    let bad_client_pw = "client-pw-of-broken-pool-pg";
    let wrong_guess = "wrong-guess-pg-91c2";
    let bad_upstream = up.clone().with_password(bad_upstream_pw).to_string();
    let (good, bad) = (free_addr(), free_addr());
    let cfg = ConfigFile::new(
        "pg",
        &format!(
            "[[pools]]\nname = \"good\"\nlisten = \"{good}\"\nupstream = \"{pg}\"\nsize = 2\n  [[pools.users]]\n  name = \"{user}\"\n  password = \"{good_secret}\"\n\n[[pools]]\nname = \"broken\"\nlisten = \"{bad}\"\nupstream = \"{bad_upstream}\"\nsize = 1\n  [[pools.users]]\n  name = \"{user}\"\n  password = \"{bad_client_pw}\"\n"
        ),
    );
    let m = spawn_debug(&cfg, &[good, bad], &[]);

    let client = pg_try_connect(&up.clone().with_addr(good).to_string())
        .await
        .expect("right password");
    assert_eq!(pg_scalar(&client, "select 1").await.as_deref(), Some("1"));
    pg_scalar(&client, "select pg_advisory_lock(1)").await;
    let wrong = up
        .clone()
        .with_addr(good)
        .with_password(wrong_guess)
        .to_string();
    let Err(e) = pg_try_connect(&wrong).await else {
        panic!("wrong password")
    };
    assert_eq!(e.code().map(|c| c.code()), Some("28P01"), "{e:?}");
    let broken = up
        .clone()
        .with_addr(bad)
        .with_password(bad_client_pw)
        .to_string();
    let Err(e) = pg_try_connect(&broken).await else {
        panic!("server login fails")
    };
    assert!(!e.to_string().contains(bad_upstream_pw), "{e}");
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = m.log();
    assert!(log.contains("client authentication failed"), "{log}");
    let mut secrets = vec![
        password.as_str(),
        bad_upstream_pw,
        bad_client_pw,
        wrong_guess,
    ];
    let parts: Vec<String> = scram
        .iter()
        .flat_map(|s| s.split(['$', ':']).map(str::to_owned).collect::<Vec<_>>())
        .filter(|p| p.len() >= 16)
        .collect();
    secrets.extend(parts.iter().map(String::as_str));
    if let Some(s) = &scram {
        secrets.push(s);
    }
    assert_no_secrets(&log, &secrets);
}

// ---------------------------------------------------------------------------
// MySQL

async fn mysql_try_connect(url: &str) -> Result<mysql_async::Conn, mysql_async::Error> {
    let opts = mysql_async::OptsBuilder::from_opts(
        mysql_async::Opts::from_url(url).expect("valid mysql URL"),
    )
    .prefer_socket(false);
    tokio::time::timeout(Duration::from_secs(20), mysql_async::Conn::new(opts))
        .await
        .expect("connect timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_debug_log_holds_no_secret() {
    let Some(url) = require_mysql() else { return };
    let _serial = kit::serial().await;
    let u = MysqlUrl::parse(&url);
    let bad_upstream_pw = "wrong-upstream-pw-my-5e1d";
    let bad_client_pw = "client-pw-of-broken-pool-my";
    let wrong_guess = "wrong-guess-my-24aa";
    let mut bad_up = u.clone();
    bad_up.password = bad_upstream_pw.into();
    let (good, bad) = (free_addr(), free_addr());
    let cfg = ConfigFile::new(
        "mysql",
        &format!(
            "[[pools]]\nname = \"good\"\nlisten = \"{good}\"\nupstream = \"{}\"\nsize = 2\n  [[pools.users]]\n  name = \"{}\"\n  password = \"{}\"\n\n[[pools]]\nname = \"broken\"\nlisten = \"{bad}\"\nupstream = \"{}\"\nsize = 1\n  [[pools.users]]\n  name = \"{}\"\n  password = \"{bad_client_pw}\"\n",
            u.url(),
            u.user,
            u.password,
            bad_up.url(),
            u.user
        ),
    );
    let m = spawn_debug(&cfg, &[good, bad], &[]);

    let mut conn = mysql_try_connect(&u.with_addr(good))
        .await
        .expect("right password");
    let one: Option<i64> = conn.query_first("SELECT 1").await.expect("query");
    assert_eq!(one, Some(1));
    conn.query_drop("SET @maitred_log_test = 1")
        .await
        .expect("set");
    let mut wrong = u.clone();
    wrong.password = wrong_guess.into();
    let Err(e) = mysql_try_connect(&wrong.with_addr(good)).await else {
        panic!("wrong password")
    };
    assert!(
        matches!(&e, mysql_async::Error::Server(s) if s.code == 1045),
        "{e:?}"
    );
    let mut broken = u.clone();
    broken.password = bad_client_pw.into();
    let Err(e) = mysql_try_connect(&broken.with_addr(bad)).await else {
        panic!("server login fails")
    };
    assert!(!e.to_string().contains(bad_upstream_pw), "{e}");
    drop(conn);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = m.log();
    assert!(log.contains("client authentication failed"), "{log}");
    assert_no_secrets(
        &log,
        &[&u.password, bad_upstream_pw, bad_client_pw, wrong_guess],
    );
}

// ---------------------------------------------------------------------------
// MongoDB

async fn mongo_ping(url: &str) -> Result<(), mongodb::error::Error> {
    let mut opts = mongodb::options::ClientOptions::parse(url).await?;
    opts.server_selection_timeout = Some(Duration::from_secs(5));
    opts.connect_timeout = Some(Duration::from_secs(5));
    let client = mongodb::Client::with_options(opts)?;
    let r = client
        .database("app")
        .run_command(mongodb::bson::doc! { "count": "maitred_log_test" })
        .await
        .map(|_| ());
    client.shutdown().await;
    r
}

/// `mongodb://user:password@host:port/...` with the password replaced.
fn mongo_with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let (userinfo, hostpath) = rest.rsplit_once('@').expect("userinfo");
    let user = userinfo.split(':').next().unwrap_or_default();
    format!("{scheme}://{user}:{password}@{hostpath}")
}

fn mongo_password(url: &str) -> String {
    let rest = url.split_once("://").expect("scheme").1;
    let userinfo = rest.rsplit_once('@').expect("userinfo").0;
    userinfo.split_once(':').expect("password").1.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_debug_log_holds_no_secret() {
    let Some(upstream) = require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    let password = mongo_password(&upstream);
    let user = upstream
        .split_once("://")
        .and_then(|(_, r)| r.split(':').next())
        .unwrap_or_default()
        .to_owned();
    let bad_upstream_pw = "wrong-upstream-pw-mongo-0b7e";
    let bad_client_pw = "client-pw-of-broken-pool-mongo";
    let wrong_guess = "wrong-guess-mongo-66d0";
    let (good, bad) = (free_addr(), free_addr());
    let cfg = ConfigFile::new(
        "mongo",
        &format!(
            "[[pools]]\nname = \"good\"\nlisten = \"{good}\"\nupstream = \"{upstream}\"\nsize = 2\n  [[pools.users]]\n  name = \"{user}\"\n  password = \"{password}\"\n\n[[pools]]\nname = \"broken\"\nlisten = \"{bad}\"\nupstream = \"{}\"\nsize = 1\n  [[pools.users]]\n  name = \"{user}\"\n  password = \"{bad_client_pw}\"\n",
            mongo_with_password(&upstream, bad_upstream_pw)
        ),
    );
    let m = spawn_debug(&cfg, &[good, bad], &[]);
    let at = |addr: SocketAddr, pw: &str| {
        maitred_testkit::mongo::with_addr(&mongo_with_password(&upstream, pw), addr)
    };
    mongo_ping(&at(good, &password))
        .await
        .expect("right password");
    mongo_ping(&at(good, wrong_guess))
        .await
        .expect_err("wrong password");
    let e = mongo_ping(&at(bad, bad_client_pw))
        .await
        .expect_err("server login fails");
    assert!(!e.to_string().contains(bad_upstream_pw), "{e}");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = m.log();
    assert!(log.contains("client authentication failed"), "{log}");
    assert_no_secrets(
        &log,
        &[&password, bad_upstream_pw, bad_client_pw, wrong_guess],
    );
}

// ---------------------------------------------------------------------------
// JSON lines carry the client's span; saturation is logged

/// maitred's log lines as JSON objects (every line must be one).
fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_of_a_client_carry_its_span() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = Maitred::spawn(&[
        "--upstream",
        &pg,
        "--pool-size",
        "2",
        "--log-format",
        "json",
        "--log-level",
        "debug",
    ]);
    let up = kit::pg_url_parts(&pg);
    let client = pg_try_connect(&m.url_for(&pg)).await.expect("login");
    // An advisory lock pins the client: a debug line logged inside its session.
    pg_scalar(&client, "select pg_advisory_lock(42)").await;
    let wrong = up
        .clone()
        .with_addr(m.addr())
        .with_password("wrong-json-test")
        .to_string();
    assert!(pg_try_connect(&wrong).await.is_err());
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let lines = json_lines(&m.log());
    let pinned = lines
        .iter()
        .find(|l| l["message"] == "client pinned to its server connection")
        .unwrap_or_else(|| panic!("no pin line in {lines:#?}"));
    let span = &pinned["span"];
    assert_eq!(span["name"], "client", "{pinned}");
    assert_eq!(span["protocol"], "postgresql", "{pinned}");
    assert_eq!(span["pool"], up.database, "{pinned}");
    assert!(
        span["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("127.0.0.1:")),
        "{pinned}"
    );
    assert!(span["id"].as_u64().is_some_and(|id| id > 0), "{pinned}");
    assert_eq!(pinned["reason"], "advisory_lock", "{pinned}");

    let failed = lines
        .iter()
        .find(|l| l["message"] == "client authentication failed")
        .unwrap_or_else(|| panic!("no auth failure line in {lines:#?}"));
    assert_eq!(failed["span"]["protocol"], "postgresql", "{failed}");
    assert_eq!(failed["span"]["pool"], up.database, "{failed}");
    assert!(failed["span"]["client"].is_string(), "{failed}");
    assert_eq!(failed["level"], "INFO", "{failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturation_and_slow_checkouts_are_logged_once_per_interval() {
    let Some(pg) = kit::require_pg() else { return };
    let _serial = kit::serial().await;
    let m = Maitred::spawn(&[
        "--upstream",
        &pg,
        "--pool-size",
        "1",
        "--queue-timeout",
        "10s",
    ]);
    let url = m.url_for(&pg);
    let holder = pg_try_connect(&url).await.expect("holder");
    holder
        .batch_execute("begin; select 1")
        .await
        .expect("begin");
    // Three clients queue behind the open transaction for more than a second.
    let mut waiters = Vec::new();
    for i in 0..3 {
        let url = url.clone();
        waiters.push(tokio::spawn(async move {
            let c = pg_try_connect(&url).await.expect("waiter login");
            pg_scalar(&c, &format!("select {i}")).await
        }));
    }
    // Once a client is seen queueing, keep it waiting past the slow-checkout threshold.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !m.log().contains("clients are queueing") {
        assert!(
            std::time::Instant::now() < deadline,
            "nobody queued:\n{}",
            m.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    holder.batch_execute("commit").await.expect("commit");
    for (i, w) in waiters.into_iter().enumerate() {
        let got = tokio::time::timeout(Duration::from_secs(10), w)
            .await
            .expect("waiter finished")
            .expect("task");
        assert_eq!(got, Some(i.to_string()));
    }
    let log = m.log();
    let saturated: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("pool saturated") && l.contains("clients are queueing"))
        .collect();
    assert_eq!(saturated.len(), 1, "one warning per interval:\n{log}");
    assert!(saturated[0].contains("WARN"), "{}", saturated[0]);
    let slow: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("slow checkout"))
        .collect();
    assert_eq!(slow.len(), 1, "one warning per interval:\n{log}");
    assert!(slow[0].contains("waited_ms="), "{}", slow[0]);
}
