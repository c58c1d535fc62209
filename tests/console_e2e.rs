//! End-to-end tests of the admin console (psql and tokio-postgres against the virtual
//! database `maitred`) and of `/metrics` during real client activity, with one built
//! maitred serving a PostgreSQL, a MySQL and a MongoDB pool (docs/operations.md).
//!
//! Needs `MAITRED_TEST_PG_URL`, `MAITRED_TEST_MYSQL_URL` and `MAITRED_TEST_MONGO_URL`;
//! without them every test prints a skip notice and passes, except under `CI=true`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use maitred_testkit::admin_http::http_body;
use maitred_testkit::mongo::require_mongo;
use maitred_testkit::mysql::{require_mysql, MysqlUrl};
use maitred_testkit::{self as kit, Maitred};
use mongodb::bson::{doc, Document};
use mysql_async::prelude::Queryable;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

const ADMIN_PASSWORD: &str = "console-pw";

/// One maitred with a pool of each protocol, an admin endpoint and an admin user.
struct Setup {
    maitred: Maitred,
    pg: SocketAddr,
    my: SocketAddr,
    admin: SocketAddr,
    pg_url: kit::PgUrl,
    pg_user: String,
    pg_password: String,
    my_url: MysqlUrl,
    mongo_url: String,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn addr() -> SocketAddr {
    format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr")
}

/// None (after a skip notice) when a server is missing.
fn setup(name: &str) -> Option<Setup> {
    let pg_upstream = kit::require_pg()?;
    let my_upstream = require_mysql()?;
    let mongo_upstream = require_mongo()?;
    let (pg, my, mongo, admin) = (addr(), addr(), addr(), addr());
    let dir = std::env::temp_dir().join(format!("maitred-console-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("maitred.toml");
    let pg_url = kit::pg_url_parts(&pg_upstream);
    let pg_user = pg_url.user.clone().expect("user in MAITRED_TEST_PG_URL");
    let pg_password = pg_url
        .password
        .clone()
        .expect("password in MAITRED_TEST_PG_URL");
    let my_url = MysqlUrl::parse(&my_upstream);
    // mongodb://user:password@host:port/...
    let userinfo = mongo_upstream
        .split_once("://")
        .and_then(|(_, rest)| rest.rsplit_once('@'))
        .map(|(u, _)| u.to_owned())
        .unwrap_or_default();
    let (mongo_user, mongo_password) = userinfo.split_once(':').unwrap_or((&userinfo, ""));
    std::fs::write(
        &cfg,
        format!(
            r#"
[admin]
listen = "{admin}"
users = [{{ name = "ops", password = "{ADMIN_PASSWORD}" }}]

[[pools]]
name = "pgpool"
listen = "{pg}"
upstream = "{pg_upstream}"
size = 1
queue_timeout = "20s"
users = [{{ name = "{pg_user}", password = "{pg_password}" }}]

[[pools]]
name = "mypool"
listen = "{my}"
upstream = "{my_upstream}"
size = 1
queue_timeout = "20s"
users = [{{ name = "{my_user}", password = "{my_password}" }}]

[[pools]]
name = "mongopool"
listen = "{mongo}"
upstream = "{mongo_upstream}"
size = 1
queue_timeout = "20s"
users = [{{ name = "{mongo_user}", password = "{mongo_password}" }}]
"#,
            pg_user = pg_user,
            pg_password = pg_password,
            my_user = my_url.user,
            my_password = my_url.password,
            mongo_user = mongo_user,
            mongo_password = mongo_password,
        ),
    )
    .expect("write config");
    let cfg_arg = cfg.display().to_string();
    let maitred = Maitred::spawn_at(pg, &["--config", cfg_arg.as_str()]);
    for a in [my, mongo, admin] {
        assert!(
            kit::wait_for_port(a, Duration::from_secs(10)),
            "{a} not listening"
        );
    }
    let mongo_url = maitred_testkit::mongo::with_addr(&mongo_upstream, mongo);
    Some(Setup {
        maitred,
        pg,
        my,
        admin,
        pg_url,
        pg_user,
        pg_password,
        my_url,
        mongo_url,
        _dir: TempDir(dir),
    })
}

impl Setup {
    fn pg_client_url(&self) -> String {
        self.pg_url.clone().with_addr(self.pg).to_string()
    }

    fn console_url(&self, user: &str, password: &str, database: &str) -> String {
        self.pg_url
            .clone()
            .with_addr(self.pg)
            .with_user(user)
            .with_password(password)
            .with_database(database)
            .to_string()
    }

    async fn console(&self) -> Client {
        connect(&self.console_url("ops", ADMIN_PASSWORD, "maitred"))
            .await
            .unwrap_or_else(|e| panic!("console login: {e:?}\n{}", self.maitred.log()))
    }

    async fn mysql(&self) -> mysql_async::Conn {
        // prefer_socket(false): mysql_async would otherwise reconnect over the server's
        // unix socket, around maitred.
        let url = self.my_url.with_addr(self.my);
        let opts = mysql_async::OptsBuilder::from_opts(
            mysql_async::Opts::from_url(&url).expect("mysql url"),
        )
        .prefer_socket(false);
        mysql_async::Conn::new(opts).await.expect("mysql connect")
    }

    async fn mongo(&self) -> mongodb::Client {
        let mut opts = mongodb::options::ClientOptions::parse(&self.mongo_url)
            .await
            .expect("options");
        opts.server_selection_timeout = Some(Duration::from_secs(10));
        opts.max_pool_size = Some(1);
        mongodb::Client::with_options(opts).expect("mongo client")
    }

    fn metrics(&self) -> String {
        http_body(self.admin, "/metrics")
    }

    /// The value of one metric line, 0 when absent.
    fn metric(&self, name: &str, pool: &str, protocol: &str, extra: &str) -> f64 {
        metric_value(&self.metrics(), name, pool, protocol, extra)
    }
}

fn metric_value(text: &str, name: &str, pool: &str, protocol: &str, extra: &str) -> f64 {
    let labels = format!("pool=\"{pool}\",protocol=\"{protocol}\"{extra}");
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0.0, |v| v.trim().parse().expect("number"))
}

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(10));
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// A console command's rows as (column name -> value) maps.
async fn show(console: &Client, sql: &str) -> Vec<std::collections::HashMap<String, String>> {
    let messages = console
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(
                r.columns()
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (c.name().to_owned(), r.get(i).unwrap_or("").to_owned()))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The row of `pool` in SHOW POOLS / SHOW STATS (column `database`).
async fn row_of(
    console: &Client,
    sql: &str,
    pool: &str,
) -> std::collections::HashMap<String, String> {
    show(console, sql)
        .await
        .into_iter()
        .find(|r| r.get("database").map(String::as_str) == Some(pool))
        .unwrap_or_else(|| panic!("{sql}: no row for {pool}"))
}

/// Polls until `f` holds, at most 10 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_pools_make_clients_wait_in_every_protocol_and_metrics_follow() {
    let _g = kit::serial().await;
    let Some(s) = setup("pause") else { return };
    let console = s.console().await;

    // Some traffic first, so bytes and queries are non-zero and then grow.
    let pg = connect(&s.pg_client_url()).await.expect("pg client");
    pg.simple_query("SELECT 1").await.expect("pg select");
    let mut my = s.mysql().await;
    let _: Option<i64> = my.query_first("SELECT 1").await.expect("mysql select");
    let mongo = s.mongo().await;
    let coll = mongo.database("app").collection::<Document>("console_e2e");
    coll.drop().await.expect("mongo drop");
    coll.insert_one(doc! { "x": 1 })
        .await
        .expect("mongo insert");

    let before = s.metrics();
    for (pool, protocol) in [
        ("pgpool", "postgres"),
        ("mypool", "mysql"),
        ("mongopool", "mongodb"),
    ] {
        for name in [
            "maitred_bytes_received_total",
            "maitred_bytes_sent_total",
            "maitred_queries_total",
        ] {
            assert!(
                metric_value(&before, name, pool, protocol, "") > 0.0,
                "{name} of {pool} is 0:\n{before}"
            );
        }
        // (The MongoDB driver also keeps a monitoring connection.)
        assert!(
            metric_value(
                &before,
                "maitred_clients",
                pool,
                protocol,
                ",state=\"idle\""
            ) >= 1.0,
            "{pool}: idle client\n{before}"
        );
        assert!(
            metric_value(
                &before,
                "maitred_checkout_wait_seconds_bucket",
                pool,
                protocol,
                ",le=\"+Inf\""
            ) >= 1.0,
            "{pool}: checkout histogram\n{before}"
        );
    }

    // PAUSE each pool: the next request of its client waits; RESUME lets it through.
    assert!(show(&console, "PAUSE pgpool").await.is_empty());
    let pg_wait = tokio::spawn(async move { pg.simple_query("SELECT 2").await.map(|_| pg) });
    assert!(show(&console, "PAUSE mypool").await.is_empty());
    let my_wait = tokio::spawn(async move {
        let r: Result<Option<i64>, _> = my.query_first("SELECT 2").await;
        r.map(|_| my)
    });
    assert!(show(&console, "PAUSE mongopool").await.is_empty());
    let coll2 = coll.clone();
    let mongo_wait = tokio::spawn(async move { coll2.count_documents(doc! {}).await });

    for (pool, protocol) in [
        ("pgpool", "postgres"),
        ("mypool", "mysql"),
        ("mongopool", "mongodb"),
    ] {
        eventually(&format!("{pool} client waiting"), || {
            s.metric("maitred_clients", pool, protocol, ",state=\"waiting\"") == 1.0
        })
        .await;
        let row = row_of(&console, "SHOW POOLS", pool).await;
        assert_eq!(row["cl_waiting"], "1", "{row:?}");
        assert_eq!(row["paused"], "yes", "{row:?}");
        assert_eq!(row["protocol"], protocol, "{row:?}");
        assert_eq!(row["pool_size"], "1", "{row:?}");
        let waiting: Vec<_> = show(&console, "SHOW CLIENTS")
            .await
            .into_iter()
            .filter(|r| r["database"] == pool && r["state"] == "waiting")
            .collect();
        assert_eq!(waiting.len(), 1, "{pool}: {waiting:?}");
        assert_eq!(waiting[0]["addr"], "127.0.0.1");
    }
    assert!(!pg_wait.is_finished() && !my_wait.is_finished() && !mongo_wait.is_finished());
    assert!(show(&console, "RESUME").await.is_empty());
    let pg = pg_wait.await.expect("task").expect("pg query after RESUME");
    let _my = my_wait
        .await
        .expect("task")
        .expect("mysql query after RESUME");
    assert_eq!(
        mongo_wait.await.expect("task").expect("mongo after RESUME"),
        1
    );

    let after = s.metrics();
    for (pool, protocol) in [
        ("pgpool", "postgres"),
        ("mypool", "mysql"),
        ("mongopool", "mongodb"),
    ] {
        for name in [
            "maitred_bytes_received_total",
            "maitred_bytes_sent_total",
            "maitred_queries_total",
        ] {
            let (b, a) = (
                metric_value(&before, name, pool, protocol, ""),
                metric_value(&after, name, pool, protocol, ""),
            );
            assert!(a > b, "{name} of {pool} did not grow: {b} -> {a}");
        }
        assert_eq!(
            metric_value(
                &after,
                "maitred_clients",
                pool,
                protocol,
                ",state=\"waiting\""
            ),
            0.0
        );
    }
    // SHOW STATS counts the same traffic.
    let stats = row_of(&console, "SHOW STATS", "pgpool").await;
    let queries: f64 = stats["total_query_count"].parse().expect("number");
    assert!(queries >= 2.0, "{stats:?}");
    assert!(stats["total_received"].parse::<u64>().expect("number") > 0);
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_reconnect_show_and_console_logins() {
    let _g = kit::serial().await;
    let Some(s) = setup("kill") else { return };

    // Logins: a wrong admin password and a pool user are refused; pgbouncer also works.
    let e = connect(&s.console_url("ops", "wrong", "maitred"))
        .await
        .expect_err("wrong password refused");
    assert_eq!(e.code().map(|c| c.code()), Some("28P01"), "{e:?}");
    let e = connect(&s.console_url(&s.pg_user, &s.pg_password, "maitred"))
        .await
        .expect_err("pool user refused");
    assert_eq!(e.code().map(|c| c.code()), Some("28P01"), "{e:?}");
    let bouncer = connect(&s.console_url("ops", ADMIN_PASSWORD, "pgbouncer"))
        .await
        .expect("pgbouncer database");
    let version = show(&bouncer, "SHOW VERSION").await;
    assert!(version[0]["version"].starts_with("maitred "), "{version:?}");
    let e = bouncer
        .simple_query("SELECT 1")
        .await
        .expect_err("not a command");
    assert_eq!(e.code().map(|c| c.code()), Some("42601"), "{e:?}");
    let console = s.console().await;

    // SHOW CONFIG shows the pools, never a password.
    let config = show(&console, "SHOW CONFIG").await;
    let size = config
        .iter()
        .find(|r| r["key"] == "pools.pgpool.size")
        .expect("pool size row");
    assert_eq!(size["value"], "1");
    let all = format!("{config:?}");
    assert!(
        !all.contains(ADMIN_PASSWORD) && !all.contains(&s.pg_password),
        "{all}"
    );

    // RECONNECT retires the server connection: the next query runs on a new backend.
    let pg = connect(&s.pg_client_url()).await.expect("pg client");
    let first = backend_pid(&pg).await;
    assert_eq!(first, backend_pid(&pg).await, "size 1: same backend");
    assert!(show(&console, "RECONNECT pgpool").await.is_empty());
    let second = backend_pid(&pg).await;
    assert_ne!(first, second, "RECONNECT gave a new server connection");
    let servers = show(&console, "SHOW SERVERS").await;
    assert!(
        servers
            .iter()
            .any(|r| r["database"] == "pgpool" && r["state"] == "idle" && r["count"] == "1"),
        "{servers:?}"
    );

    // KILL drops the pool's clients, in every protocol, and only that pool's.
    let mut my = s.mysql().await;
    let _: Option<i64> = my.query_first("SELECT 1").await.expect("mysql");
    let mongo = s.mongo().await;
    mongo
        .database("app")
        .run_command(doc! { "ping": 1 })
        .await
        .expect("mongo ping");
    let clients = show(&console, "SHOW CLIENTS").await;
    for pool in ["pgpool", "mypool", "mongopool"] {
        assert!(
            clients.iter().any(|r| r["database"] == pool),
            "{pool}: {clients:?}"
        );
    }
    assert!(show(&console, "KILL pgpool").await.is_empty());
    let e = pg.simple_query("SELECT 1").await.expect_err("killed");
    assert!(
        e.code().map(|c| c.code()) == Some("57P01") || e.is_closed(),
        "{e:?}"
    );
    let _: Option<i64> = my
        .query_first("SELECT 1")
        .await
        .expect("mysql untouched by KILL pgpool");
    assert!(show(&console, "KILL mypool").await.is_empty());
    let r: Result<Option<i64>, _> = my.query_first("SELECT 1").await;
    assert!(r.is_err(), "mysql client killed");
    let killed_before = s.metric("maitred_clients", "mongopool", "mongodb", ",state=\"idle\"");
    assert!(killed_before >= 1.0);
    let mongo_ids = |rows: Vec<std::collections::HashMap<String, String>>| -> Vec<String> {
        rows.into_iter()
            .filter(|r| r["database"] == "mongopool")
            .map(|r| r["id"].clone())
            .collect()
    };
    let before = mongo_ids(show(&console, "SHOW CLIENTS").await);
    assert!(!before.is_empty());
    assert!(show(&console, "KILL mongopool").await.is_empty());
    // The driver's monitor reconnects at once after its connection is closed, so the count
    // of mongo clients may not stay at zero: the clients that were there must be gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = mongo_ids(show(&console, "SHOW CLIENTS").await);
        if !now.iter().any(|id| before.contains(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "killed mongo clients still there: {before:?} -> {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The pools still serve new clients.
    let again = connect(&s.pg_client_url()).await.expect("new pg client");
    again.simple_query("SELECT 1").await.expect("after KILL");
    let e = console
        .simple_query("KILL nosuch")
        .await
        .expect_err("unknown pool");
    assert_eq!(e.code().map(|c| c.code()), Some("3D000"), "{e:?}");
}

async fn backend_pid(c: &Client) -> String {
    let rows = c
        .simple_query("SELECT pg_backend_pid()")
        .await
        .expect("pg_backend_pid");
    rows.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_reads_the_console() {
    let _g = kit::serial().await;
    let Some(s) = setup("psql") else { return };
    let mut cmd = std::process::Command::new("psql");
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &s.pg.port().to_string(),
        "-U",
        "ops",
        "-X",
        "-A",
        "-F",
        "|",
        "-c",
        "SHOW POOLS",
        "maitred",
    ])
    .env("PGPASSWORD", ADMIN_PASSWORD)
    .env("PGCONNECT_TIMEOUT", "10");
    let out = kit::output_with_timeout(&mut cmd, Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "psql failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.maitred.log()
    );
    let header = stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("database|user|cl_active|cl_waiting|sv_active|sv_idle|sv_used|sv_tested|sv_login|maxwait|maxwait_us|pool_mode"),
        "{stdout}"
    );
    for pool in ["pgpool|", "mypool|", "mongopool|"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(pool)),
            "{pool} missing: {stdout}"
        );
    }
    assert!(stdout.contains("(3 rows)"), "{stdout}");
}
