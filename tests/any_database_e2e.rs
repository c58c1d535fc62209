//! End-to-end tests of `--any-database` (`database = "*"`, docs/configuration.md, "Any
//! database of the server"): through one maitred, clients reach the upstream URL's
//! database, `postgres` and a database created by the test, each landing on the database
//! it named; a name the server does not have gets the server's own 3D000 and leaves no
//! pool behind; `max_databases` is enforced. MySQL: a handshake schema is checked with the
//! server at login, as the server does.
//!
//! Needs `MAITRED_TEST_PG_URL` and `MAITRED_TEST_PG_SUPERUSER_URL` (PostgreSQL) and
//! `MAITRED_TEST_MYSQL_URL` (MySQL); without them the tests print a skip notice and pass,
//! except under `CI=true`.

use maitred_e2e::mysql_client;
use maitred_e2e::pg_client;
use maitred_testkit::admin_http::{http_body, spawn_with_admin};
use maitred_testkit::mysql::{require_mysql, MysqlUrl};
use maitred_testkit::{self as kit};
use mysql_async::prelude::Queryable;
use std::net::SocketAddr;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

/// The names of the PostgreSQL pools the admin endpoint lists.
fn pool_names(admin: SocketAddr) -> Vec<String> {
    let pools: serde_json::Value =
        serde_json::from_str(&http_body(admin, "/pools")).expect("/pools is JSON");
    let mut names: Vec<String> = pools
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Logs in through maitred to `database` and returns the database the server says it is
/// in, or the login's error.
async fn current_database(
    url: &kit::PgUrl,
    database: &str,
) -> Result<(tokio_postgres::Client, String), tokio_postgres::Error> {
    let url = url.clone().with_database(database).to_string();
    let (client, conn) = mysql_client::within(
        30,
        "login through maitred",
        tokio_postgres::connect(&url, NoTls),
    )
    .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let row = client.query_one("SELECT current_database()", &[]).await?;
    Ok((client, row.get(0)))
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.as_db_error().map(|d| d.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_any_database_routes_creates_refuses_and_bounds() {
    let (Some(pg), Some(superuser)) = (kit::require_pg(), kit::require_pg_superuser()) else {
        return;
    };
    let _serial = kit::serial().await;
    let url = kit::pg_url_parts(&pg);
    let own = url.database.clone();
    let made = format!("mtd_any_{}", std::process::id());
    let admin_db = pg_client::connect(&superuser).await;
    for sql in [
        format!("DROP DATABASE IF EXISTS {made}"),
        format!(
            "CREATE DATABASE {made} OWNER \"{}\"",
            url.user.clone().expect("user in MAITRED_TEST_PG_URL")
        ),
    ] {
        admin_db
            .batch_execute(&sql)
            .await
            .expect("create the test database");
    }

    let (m, admin) = spawn_with_admin(
        &pg,
        &["--any-database", "--max-databases", "2", "--pool-size", "2"],
    );
    let through = url.clone().with_addr(m.addr());

    // The URL's database: the pool itself; `postgres`: a pool created for it.
    let (c_own, db) = current_database(&through, &own)
        .await
        .expect("own database");
    assert_eq!(db, own);
    let (c_postgres, db) = current_database(&through, "postgres")
        .await
        .expect("postgres");
    assert_eq!(db, "postgres");
    c_postgres
        .batch_execute("BEGIN; SELECT 1; COMMIT")
        .await
        .expect("a transaction in postgres");
    // psql, as for admin work, on the same created pool.
    let out = tokio::task::block_in_place(|| {
        kit::output_with_timeout(
            std::process::Command::new("psql")
                .args(["-X", "-A", "-t", "-c", "SELECT current_database()"])
                .arg(through.clone().with_database("postgres").to_string()),
            std::time::Duration::from_secs(30),
        )
    });
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "postgres");
    let pools = pool_names(admin);
    assert!(
        pools.contains(&format!("{own}/postgres")),
        "the created pool is listed: {pools:?}"
    );

    // Names the server does not have: its own 3D000, and no pool left behind.
    for i in 0..25 {
        let name = format!("mtd_nope_{i}");
        let e = current_database(&through, &name)
            .await
            .expect_err("a database that does not exist");
        assert_eq!(sqlstate(&e), Some(&SqlState::INVALID_CATALOG_NAME), "{e:?}");
        let message = e.as_db_error().map(|d| d.message().to_owned());
        assert_eq!(
            message.as_deref(),
            Some(format!("database \"{name}\" does not exist").as_str())
        );
    }
    assert_eq!(pool_names(admin), pools, "failed names left no pool");

    // A database made by the test: the second created pool, its own database.
    let (c_made, db) = current_database(&through, &made).await.expect("made");
    assert_eq!(db, made);
    c_made
        .batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .await
        .expect("write in the made database");
    // Each client still lands on its own database.
    for (c, want) in [(&c_own, &own), (&c_postgres, &"postgres".to_owned())] {
        let row = c
            .query_one("SELECT current_database()", &[])
            .await
            .expect("query");
        assert_eq!(&row.get::<_, String>(0), want);
    }

    // max_databases = 2: a third database is refused, and takes no pool.
    let e = current_database(&through, "template1")
        .await
        .expect_err("over max_databases");
    assert_eq!(sqlstate(&e), Some(&SqlState::TOO_MANY_CONNECTIONS), "{e:?}");
    assert!(
        e.as_db_error()
            .is_some_and(|d| d.message().contains("max_databases")),
        "{e:?}"
    );
    assert_eq!(pool_names(admin).len(), pools.len() + 1);

    drop((c_own, c_postgres, c_made));
    drop(m);
    let _ = admin_db
        .batch_execute(&format!("DROP DATABASE IF EXISTS {made} WITH (FORCE)"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_without_any_database_other_names_are_refused() {
    let Some(pg) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let m = kit::Maitred::spawn(&["--upstream", &pg, "--pool-size", "1"]);
    let through = kit::pg_url_parts(&pg).with_addr(m.addr());
    let e = current_database(&through, "postgres")
        .await
        .expect_err("only the URL's database");
    assert_eq!(sqlstate(&e), Some(&SqlState::INVALID_CATALOG_NAME), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_handshake_schema_is_checked_with_the_server() {
    let Some(my) = require_mysql() else {
        return;
    };
    let _serial = kit::serial().await;
    let url = MysqlUrl::parse(&my);
    let m = kit::Maitred::spawn(&["--upstream", &my, "--pool-size", "2"]);
    let with_db = |db: &str| {
        let mut u = url.clone();
        u.database = db.to_owned();
        u.with_addr(m.addr())
    };
    // Another schema the login may use: in, and current.
    let mut c = mysql_client::must_connect(&with_db("information_schema")).await;
    let db: Option<String> = c.query_first("SELECT DATABASE()").await.expect("query");
    assert_eq!(db.as_deref(), Some("information_schema"));
    // The URL's schema, on the same server connections: its own.
    let mut own = mysql_client::must_connect(&with_db(&url.database)).await;
    let db: Option<String> = own.query_first("SELECT DATABASE()").await.expect("query");
    assert_eq!(db.as_deref(), Some(url.database.as_str()));
    let db: Option<String> = c.query_first("SELECT DATABASE()").await.expect("query");
    assert_eq!(db.as_deref(), Some("information_schema"));
    // `USE` another schema, as on the server.
    c.query_drop(format!("USE `{}`", url.database))
        .await
        .expect("USE");
    let db: Option<String> = c.query_first("SELECT DATABASE()").await.expect("query");
    assert_eq!(db.as_deref(), Some(url.database.as_str()));
    // A schema the server does not have: at login, the error the server itself gives
    // (1049 Unknown database, or 1044 when the login has no rights beyond its schemas).
    let refusal = |r: Result<mysql_async::Conn, mysql_async::Error>| match r {
        Err(mysql_async::Error::Server(e)) => (e.code, e.state, e.message),
        Err(e) => panic!("expected the server's refusal, got {e:?}"),
        Ok(_) => panic!("a schema that does not exist was let in"),
    };
    let mut straight = url.clone();
    straight.database = "mtd_nope".to_owned();
    let expected = refusal(mysql_client::connect(&straight.url()).await);
    assert!([1044, 1049].contains(&expected.0), "{expected:?}");
    assert_eq!(
        refusal(mysql_client::connect(&with_db("mtd_nope")).await),
        expected
    );
    drop((c, own));
}

/// The `size` of each pool `/pools` lists, by name.
fn pool_sizes(admin: SocketAddr) -> std::collections::BTreeMap<String, u64> {
    let pools: serde_json::Value =
        serde_json::from_str(&http_body(admin, "/pools")).expect("/pools is JSON");
    pools
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|p| Some((p["name"].as_str()?.to_owned(), p["size"].as_u64()?)))
        .collect()
}

/// Polls until `check` holds (10 s at most).
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..100 {
        if check() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what}: never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_reload_applies_to_created_pools_and_a_new_upstream_closes_them() {
    let Some(pg) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let url = kit::pg_url_parts(&pg);
    let (user, password) = (url.user.clone().expect("user"), url.password.clone());
    let listen: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let dir = std::env::temp_dir().join(format!("mtd-any-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("maitred.toml");
    let write = |size: usize, upstream: &str| {
        let text = format!(
            "[admin]\nlisten = \"{admin}\"\n\n[[pools]]\nname = \"any\"\nlisten = \"{listen}\"\nupstream = \"{upstream}\"\ndatabase = \"*\"\nsize = {size}\n  [[pools.users]]\n  name = \"{user}\"\n  password = \"{}\"\n",
            password.clone().unwrap_or_default()
        );
        std::fs::write(&path, text).expect("write config");
    };
    write(2, &pg);
    let config = path.to_string_lossy().into_owned();
    let m = kit::Maitred::spawn_at(listen, &["--config", config.as_str()]);
    let through = url.clone().with_addr(listen);
    let (c, db) = current_database(&through, "postgres")
        .await
        .expect("postgres");
    assert_eq!(db, "postgres");
    assert_eq!(pool_sizes(admin).get("any/postgres"), Some(&2));

    // A new size: the `*` pool and the pool it created both take it; the client stays.
    write(3, &pg);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &m.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    eventually("size 3 everywhere", || {
        let sizes = pool_sizes(admin);
        sizes.get("any") == Some(&3) && sizes.get("any/postgres") == Some(&3)
    })
    .await;
    c.query_one("SELECT 1", &[])
        .await
        .expect("the client stays");

    // A new upstream (another application_name): the created pools close; a new login
    // gets a pool for the new upstream.
    let sep = if pg.contains('?') { '&' } else { '?' };
    write(3, &format!("{pg}{sep}application_name=mtd_reloaded"));
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &m.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    eventually("the created pool closed", || {
        !pool_sizes(admin).contains_key("any/postgres")
    })
    .await;
    let (c2, db) = current_database(&through, "postgres").await.expect("again");
    assert_eq!(db, "postgres");
    let row = c2
        .query_one("SELECT current_setting('application_name')", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), "mtd_reloaded");
    drop((c, c2, m));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_a_created_pool_closes_after_idle_timeout_without_clients() {
    let Some(pg) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let url = kit::pg_url_parts(&pg);
    let listen: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let admin: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let dir = std::env::temp_dir().join(format!("mtd-any-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("maitred.toml");
    let text = format!(
        "[admin]\nlisten = \"{admin}\"\n\n[[pools]]\nname = \"any\"\nlisten = \"{listen}\"\nupstream = \"{pg}\"\ndatabase = \"*\"\nidle_timeout = \"1s\"\n  [[pools.users]]\n  name = \"{}\"\n  password = \"{}\"\n",
        url.user.clone().expect("user"),
        url.password.clone().unwrap_or_default()
    );
    std::fs::write(&path, text).expect("write config");
    let config = path.to_string_lossy().into_owned();
    let _m = kit::Maitred::spawn_at(listen, &["--config", config.as_str()]);
    let through = url.clone().with_addr(listen);
    let (c, _) = current_database(&through, "postgres")
        .await
        .expect("postgres");
    // In use: kept past idle_timeout.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(pool_sizes(admin).contains_key("any/postgres"));
    c.query_one("SELECT 1", &[]).await.expect("still served");
    drop(c);
    eventually("the idle created pool closed", || {
        !pool_sizes(admin).contains_key("any/postgres")
    })
    .await;
    assert!(pool_sizes(admin).contains_key("any"), "the * pool stays");
    let _ = std::fs::remove_dir_all(&dir);
}
