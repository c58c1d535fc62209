//! End-to-end tests of changing a running maitred without dropping anyone
//! (docs/operations.md, "Reload" and "Rolling restart"): SIGHUP reload while real
//! tokio-postgres, mysql_async and mongodb clients keep running (sizes, users, the
//! upstream, pools added and removed), and a second maitred started on the
//! same address (SO_REUSEPORT) before the first drains, while a client loop keeps
//! connecting.
//!
//! Without the test server's URL (`MAITRED_TEST_PG_URL`, `_MYSQL_URL`, `_MONGO_URL`) a
//! test prints a skip notice and passes, except
//! under `CI=true`, where it fails.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use maitred_testkit::admin_http::http_get;
use maitred_testkit::fault_relay::FaultRelay;
use maitred_testkit::{self as kit, Maitred};
use tokio_postgres::NoTls;

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}

fn free_addr() -> SocketAddr {
    format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr")
}

/// One `[[pools]]` table in front of the test server.
fn pool_toml(
    name: &str,
    listen: SocketAddr,
    upstream: &str,
    size: usize,
    users: &[(&str, &str)],
) -> String {
    let mut t = format!(
        "[[pools]]\nname = \"{name}\"\nlisten = \"{listen}\"\nupstream = \"{upstream}\"\nsize = {size}\nqueue_timeout = \"10s\"\n"
    );
    for (user, password) in users {
        t.push_str(&format!(
            "  [[pools.users]]\n  name = \"{user}\"\n  password = \"{password}\"\n"
        ));
    }
    t
}

fn write_config(path: &Path, admin: SocketAddr, pools: &[String]) {
    let text = format!("[admin]\nlisten = \"{admin}\"\n\n{}", pools.join("\n"));
    std::fs::write(path, text).expect("write config");
}

/// Polls `/pools` until `check` holds for its JSON; panics with the last body after 10 s.
fn wait_for_pools(admin: SocketAddr, what: &str, check: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = http_get(admin, "/pools");
        let json: serde_json::Value = serde_json::from_str(&body).expect("pools json");
        if check(&json) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: /pools never matched:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pool_size(json: &serde_json::Value, name: &str) -> Option<u64> {
    json.as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .and_then(|p| p["size"].as_u64())
}

/// Clients that loop short transactions until told to stop, counting outcomes.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    async fn start(url: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (client, conn) = tokio_postgres::connect(url, NoTls)
                .await
                .expect("connect through maitred");
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let mut errors = Vec::new();
                while !stop.load(SeqCst) {
                    let r = client
                        .batch_execute("BEGIN; SELECT pg_sleep(0.002); COMMIT")
                        .await;
                    match r {
                        Ok(()) => ok.fetch_add(1, SeqCst),
                        Err(e) => {
                            errors.push(format!("{e:?}"));
                            failed.fetch_add(1, SeqCst)
                        }
                    };
                }
                errors
            }));
        }
        Load {
            stop,
            ok,
            failed,
            tasks,
        }
    }

    async fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, SeqCst);
        let mut errors = Vec::new();
        for t in self.tasks {
            errors.extend(t.await.expect("client task"));
        }
        (self.ok.load(SeqCst), self.failed.load(SeqCst), errors)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_changes_sizes_users_and_pools_while_clients_run() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let up = kit::pg_url_parts(&pg_url);
    let app_user = up.user.clone().expect("user in MAITRED_TEST_PG_URL");
    let app_password = up
        .password
        .clone()
        .expect("password in MAITRED_TEST_PG_URL");
    let dir = std::env::temp_dir().join(format!("maitred-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("maitred.toml");
    let (admin, a, b) = (free_addr(), free_addr(), free_addr());
    let users = [(app_user.as_str(), app_password.as_str())];
    write_config(&config, admin, &[pool_toml("app", a, &pg_url, 2, &users)]);
    let config_arg = config.to_str().expect("utf-8 path");
    let m = Maitred::spawn_at(a, &["--config", config_arg]);
    assert!(
        kit::wait_for_port(admin, Duration::from_secs(10)),
        "{}",
        m.log()
    );

    let url = m.url_for(&pg_url);
    let load = Load::start(&url, 6).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Bigger pool, a second user, a second pool on a new address.
    let users2 = [
        (app_user.as_str(), app_password.as_str()),
        ("reloaded", "reloaded_secret"),
    ];
    write_config(
        &config,
        admin,
        &[
            pool_toml("app", a, &pg_url, 4, &users2),
            pool_toml("app2", b, &pg_url, 1, &users),
        ],
    );
    signal(m.pid(), "-HUP");
    wait_for_pools(admin, "after the first reload", |j| {
        pool_size(j, "app") == Some(4) && pool_size(j, "app2") == Some(1)
    });
    let reloaded_url = kit::PgUrl::parse(&url)
        .expect("url")
        .with_user("reloaded")
        .with_password("reloaded_secret")
        .to_string();
    let (c, conn) = tokio_postgres::connect(&reloaded_url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("the new user logs in: {e:?}\n{}", m.log()));
    tokio::spawn(conn);
    c.simple_query("SELECT 1")
        .await
        .expect("query as the new user");
    let url_b = kit::swap_host_port(&pg_url, &b.to_string());
    let (c2, conn2) = tokio_postgres::connect(&url_b, NoTls)
        .await
        .unwrap_or_else(|e| panic!("the new pool serves: {e:?}\n{}", m.log()));
    tokio::spawn(conn2);
    c2.simple_query("SELECT 1")
        .await
        .expect("query on the new pool");
    drop(c2);

    // An invalid file changes nothing and says so on /readyz.
    std::fs::write(&config, "[[pools]]\nname = \"app\"\nno_such_key = 1\n").expect("write");
    signal(m.pid(), "-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http_get(admin, "/readyz");
        if body.contains("last reload refused") {
            assert_eq!(status, 200, "still ready on the old configuration: {body}");
            break;
        }
        assert!(Instant::now() < deadline, "no refusal on /readyz: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for_pools(admin, "after the refused reload", |j| {
        pool_size(j, "app") == Some(4) && pool_size(j, "app2") == Some(1)
    });

    // Remove the second pool and the new user; shrink the first back.
    write_config(&config, admin, &[pool_toml("app", a, &pg_url, 2, &users)]);
    signal(m.pid(), "-HUP");
    wait_for_pools(admin, "after removing app2", |j| {
        pool_size(j, "app") == Some(2) && pool_size(j, "app2").is_none()
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while kit::port_open(b) {
        assert!(
            Instant::now() < deadline,
            "the listener of app2 stayed open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = tokio_postgres::connect(&reloaded_url, NoTls).await;
    assert!(refused.is_err(), "the removed user is refused");
    let (_, metrics) = http_get(admin, "/metrics");
    assert!(
        !metrics.contains("pool=\"app2\""),
        "the removed pool's series stay in /metrics:\n{metrics}"
    );
    assert!(metrics.contains("pool=\"app\""), "{metrics}");
    assert!(
        !http_get(admin, "/readyz").1.contains("refused"),
        "a good reload clears the note"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, failed, errors) = load.finish().await;
    assert_eq!(
        failed,
        0,
        "clients failed during reloads: {errors:?}\n{}",
        m.log()
    );
    assert!(ok > 50, "clients kept working: {ok} transactions");
    let log = m.log();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(!log.contains(&app_password), "a password reached the log");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sets `net.ipv4.tcp_migrate_req` (pending connections of a closing SO_REUSEPORT
/// listener move to another listener of the group) for the test's duration.
struct MigrateReq(Option<String>);

const MIGRATE_REQ: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

impl MigrateReq {
    fn enable() -> MigrateReq {
        let old = std::fs::read_to_string(MIGRATE_REQ).ok();
        if old.is_some() && std::fs::write(MIGRATE_REQ, "1").is_err() {
            eprintln!("cannot set {MIGRATE_REQ} (not root?): pending connections may be reset");
            return MigrateReq(None);
        }
        MigrateReq(old)
    }
}

impl Drop for MigrateReq {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let _ = std::fs::write(MIGRATE_REQ, old.trim());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_on_one_address_refuses_no_connection() {
    let Some(pg_url) = kit::require_pg() else {
        return;
    };
    let _serial = kit::serial().await;
    let _migrate = MigrateReq::enable();
    let addr = free_addr();
    let listen = addr.to_string();
    let args = [
        "--listen",
        listen.as_str(),
        "--upstream",
        pg_url.as_str(),
        "--pool-size",
        "3",
    ];
    let mut old = Maitred::spawn_at(addr, &args);
    let url = old.url_for(&pg_url);

    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicU64::new(0));
    // A few loops at once, so connections keep arriving during the whole switch.
    let loops: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn({
                let (stop, connected, url) = (stop.clone(), connected.clone(), url.clone());
                async move {
                    let (mut connect_failures, mut query_failures) = (Vec::new(), Vec::new());
                    while !stop.load(SeqCst) {
                        match tokio_postgres::connect(&url, NoTls).await {
                            Ok((client, conn)) => {
                                connected.fetch_add(1, SeqCst);
                                tokio::spawn(conn);
                                if let Err(e) = client.simple_query("SELECT 1").await {
                                    query_failures.push(format!("{e:?}"));
                                }
                            }
                            Err(e) => connect_failures.push(format!("{e:?}")),
                        }
                    }
                    (connect_failures, query_failures)
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The new process binds the same address while the old one still serves.
    let new = Maitred::spawn_at(addr, &args);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !new.log().contains("listening") {
        assert!(
            Instant::now() < deadline,
            "the new maitred never listened:\n{}",
            new.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(old.pid(), "-TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = old.try_exit_status() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the old maitred did not exit:\n{}",
            old.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "old maitred exit: {status}\n{}",
        old.log()
    );
    let before = connected.load(SeqCst);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, SeqCst);
    let (mut connect_failures, mut query_failures) = (Vec::new(), Vec::new());
    for l in loops {
        let (c, q) = l.await.expect("loop");
        connect_failures.extend(c);
        query_failures.extend(q);
    }
    assert!(
        connected.load(SeqCst) > before,
        "the new maitred serves after the old one left"
    );
    assert!(
        connect_failures.is_empty(),
        "{} refused connections: {:?}\nold:\n{}\nnew:\n{}",
        connect_failures.len(),
        connect_failures.first(),
        old.log(),
        new.log()
    );
    // A client that logged in to the old process just as it drained is told goodbye
    // (FATAL 57P01, which tokio-postgres reports to the waiting query as a closed
    // connection) before its query: the drain's contract, not a refused connection.
    for e in &query_failures {
        assert!(
            e.contains("57P01") || e.contains("AdminShutdown") || e.contains("Closed"),
            "{e}"
        );
    }
    eprintln!(
        "rolling restart: {} connections, {} refused, {} told goodbye by the draining process",
        connected.load(SeqCst),
        connect_failures.len(),
        query_failures.len()
    );
}

/// The protocols whose reload tests share one body: the test server's URL, and clients of
/// the real drivers (mysql_async, the mongodb crate).
#[derive(Clone, Copy, Debug)]
enum Other {
    Mysql,
    Mongo,
}

/// The `host:port` of a `scheme://user:password@host:port/...` URL.
fn server_addr(url: &str) -> SocketAddr {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostpath = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = hostpath.find(['/', '?']).unwrap_or(hostpath.len());
    hostpath[..end]
        .parse()
        .unwrap_or_else(|e| panic!("{url}: host:port: {e}"))
}

/// `url` with its user, password and address replaced (path and query kept).
fn with_login(url: &str, user: &str, password: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let hostpath = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let tail = hostpath.find(['/', '?']).map_or("", |i| &hostpath[i..]);
    format!("{scheme}://{user}:{password}@{addr}{tail}")
}

impl Other {
    /// (user, password) of the test server's URL.
    fn login(url: &str) -> (String, String) {
        let rest = url.split_once("://").expect("scheme").1;
        let userinfo = rest.rsplit_once('@').expect("user in URL").0;
        let (u, p) = userinfo.split_once(':').expect("password in URL");
        (u.to_owned(), p.to_owned())
    }

    async fn mysql(url: &str) -> Result<mysql_async::Conn, String> {
        // prefer_socket(false): mysql_async would otherwise reconnect over the server's
        // unix socket, around maitred.
        let opts = mysql_async::OptsBuilder::from_opts(
            mysql_async::Opts::from_url(url).map_err(|e| e.to_string())?,
        )
        .prefer_socket(false);
        tokio::time::timeout(Duration::from_secs(20), mysql_async::Conn::new(opts))
            .await
            .map_err(|_| "connect hung".to_owned())?
            .map_err(|e| e.to_string())
    }

    async fn mongo(url: &str) -> mongodb::Client {
        let mut opts = mongodb::options::ClientOptions::parse(url)
            .await
            .expect("mongo options");
        opts.server_selection_timeout = Some(Duration::from_secs(10));
        opts.max_pool_size = Some(1);
        // No driver retry: a failure must show here.
        opts.retry_reads = Some(false);
        opts.retry_writes = Some(false);
        mongodb::Client::with_options(opts).expect("mongo client")
    }

    /// Logs in with `url` and runs one query.
    async fn login_and_query(self, url: &str) -> Result<(), String> {
        use mysql_async::prelude::Queryable;
        match self {
            Other::Mysql => {
                let mut c = Self::mysql(url).await?;
                let one: Option<i64> =
                    c.query_first("SELECT 1").await.map_err(|e| e.to_string())?;
                assert_eq!(one, Some(1));
                let _ = c.disconnect().await;
                Ok(())
            }
            Other::Mongo => {
                let c = Self::mongo(url).await;
                let r = tokio::time::timeout(
                    Duration::from_secs(20),
                    c.database("app")
                        .collection::<mongodb::bson::Document>("reload_e2e")
                        .find_one(mongodb::bson::doc! {}),
                )
                .await
                .map_err(|_| "query hung".to_owned())?;
                r.map(|_| ()).map_err(|e| e.to_string())
            }
        }
    }

    /// One client looping short requests (MySQL: a transaction) until `stop`.
    async fn worker(
        self,
        url: String,
        stop: Arc<AtomicBool>,
        ok: Arc<AtomicU64>,
        failed: Arc<AtomicU64>,
    ) -> tokio::task::JoinHandle<Vec<String>> {
        use mysql_async::prelude::Queryable;
        let mut errors = Vec::new();
        match self {
            Other::Mysql => {
                let mut c = Self::mysql(&url).await.expect("mysql client connects");
                tokio::spawn(async move {
                    while !stop.load(SeqCst) {
                        let r = async {
                            c.query_drop("START TRANSACTION").await?;
                            c.query_drop("SELECT 1").await?;
                            c.query_drop("COMMIT").await
                        };
                        match r.await {
                            Ok(()) => ok.fetch_add(1, SeqCst),
                            Err(e) => {
                                errors.push(e.to_string());
                                failed.fetch_add(1, SeqCst)
                            }
                        };
                    }
                    errors
                })
            }
            Other::Mongo => {
                let c = Self::mongo(&url).await;
                let coll = c
                    .database("app")
                    .collection::<mongodb::bson::Document>("reload_e2e");
                tokio::spawn(async move {
                    while !stop.load(SeqCst) {
                        match coll.find_one(mongodb::bson::doc! {}).await {
                            Ok(_) => ok.fetch_add(1, SeqCst),
                            Err(e) => {
                                errors.push(e.to_string());
                                failed.fetch_add(1, SeqCst)
                            }
                        };
                    }
                    errors
                })
            }
        }
    }
}

/// MySQL and MongoDB: while clients run, a reload adds a user (it logs in) and grows the
/// pool, then points the upstream at a FaultRelay in front of the same server (new server
/// connections go through it), then removes the user (refused); no client fails.
async fn reload_users_size_and_upstream(proto: Other, server_url: &str) {
    let (user, password) = Other::login(server_url);
    let dir = std::env::temp_dir().join(format!("maitred-reload-{proto:?}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join("maitred.toml");
    let (admin, a) = (free_addr(), free_addr());
    let users = [(user.as_str(), password.as_str())];
    let users2 = [
        (user.as_str(), password.as_str()),
        ("reloaded", "reloaded_secret"),
    ];
    write_config(&config, admin, &[pool_toml("p", a, server_url, 2, &users)]);
    let config_arg = config.to_str().expect("utf-8 path");
    let m = Maitred::spawn_at(a, &["--config", config_arg]);
    assert!(
        kit::wait_for_port(admin, Duration::from_secs(10)),
        "{}",
        m.log()
    );

    let (stop, ok, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut workers = Vec::new();
    for _ in 0..3 {
        let url = with_login(server_url, &user, &password, a);
        workers.push(
            proto
                .worker(url, stop.clone(), ok.clone(), failed.clone())
                .await,
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A new user and a bigger pool.
    write_config(&config, admin, &[pool_toml("p", a, server_url, 4, &users2)]);
    signal(m.pid(), "-HUP");
    wait_for_pools(admin, "after adding a user", |j| {
        pool_size(j, "p") == Some(4)
    });
    let reloaded_url = with_login(server_url, "reloaded", "reloaded_secret", a);
    proto
        .login_and_query(&reloaded_url)
        .await
        .unwrap_or_else(|e| panic!("{proto:?}: the new user logs in: {e}\n{}", m.log()));

    // The upstream moves to a relay in front of the same server.
    let relay = FaultRelay::start(server_addr(server_url));
    let via = with_login(server_url, &user, &password, relay.addr());
    write_config(&config, admin, &[pool_toml("p", a, &via, 4, &users2)]);
    signal(m.pid(), "-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while relay.accepted() == 0 {
        assert!(
            Instant::now() < deadline,
            "{proto:?}: no server connection through the new upstream\n{}",
            m.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // New server connections log in afresh (MongoDB: SCRAM, slow in a debug build).
    let before = ok.load(SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ok.load(SeqCst) <= before + 3 {
        assert!(
            Instant::now() < deadline,
            "{proto:?}: clients stopped working after the upstream changed\n{}",
            m.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        relay.open() > 0,
        "{proto:?}: server connections via the relay"
    );

    // The new user is removed (and the pool shrunk, to know when the reload is in).
    write_config(&config, admin, &[pool_toml("p", a, &via, 3, &users)]);
    signal(m.pid(), "-HUP");
    wait_for_pools(admin, "after removing the user", |j| {
        pool_size(j, "p") == Some(3)
    });
    let refused = proto.login_and_query(&reloaded_url).await;
    assert!(refused.is_err(), "{proto:?}: the removed user is refused");

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, SeqCst);
    let mut errors = Vec::new();
    for w in workers {
        errors.extend(w.await.expect("client task"));
    }
    assert_eq!(
        failed.load(SeqCst),
        0,
        "{proto:?}: clients failed during reloads: {errors:?}\n{}",
        m.log()
    );
    assert!(ok.load(SeqCst) > 30, "{proto:?}: clients kept working");
    let log = m.log();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        !log.contains("takes effect at the next restart"),
        "{proto:?}: users and upstream are live: {log}"
    );
    assert!(!log.contains(&password) && !log.contains("reloaded_secret"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_reload_changes_users_size_and_upstream_while_clients_run() {
    let Some(url) = maitred_testkit::mysql::require_mysql() else {
        return;
    };
    let _serial = kit::serial().await;
    reload_users_size_and_upstream(Other::Mysql, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_reload_changes_users_size_and_upstream_while_clients_run() {
    let Some(url) = maitred_testkit::mongo::require_mongo() else {
        return;
    };
    let _serial = kit::serial().await;
    reload_users_size_and_upstream(Other::Mongo, &url).await;
}
