//! Shared by the fault tests (faults_e2e, no_lost_writes_e2e, soak_e2e): a maitred whose
//! PostgreSQL upstream is reached through a [`FaultRelay`], and small client helpers.
//! Included with `#[path] mod fault_support;`, so each test binary compiles its own copy
//! and may leave some helpers unused.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use maitred_testkit::fault_relay::FaultRelay;
use maitred_testkit::{self as kit, Maitred};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

/// Login deadline for a client (debug-build SCRAM on 2 busy cores is slow).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A maitred in front of a relay in front of the real PostgreSQL.
pub struct Behind {
    pub relay: FaultRelay,
    pub maitred: Maitred,
    /// The test server's app URL with maitred's address.
    pub client_url: String,
    /// maitred's config file (rewrite it and SIGHUP to reload: [`Behind::reload`]).
    pub config_path: std::path::PathBuf,
    listen: SocketAddr,
    pg_url: String,
}

impl Behind {
    /// Rewrites the pool's table with `extra` instead of what it started with, sends
    /// SIGHUP, and waits until maitred logs that the configuration was reloaded once more
    /// than before.
    ///
    /// # Panics
    /// If the reload is not logged within 10 s.
    pub fn reload(&self, extra: &str) {
        let before = self.reloads_logged();
        let toml = pool_toml(self.listen, &self.pg_url, self.relay.addr(), extra);
        std::fs::write(&self.config_path, toml).expect("rewrite config");
        let status = std::process::Command::new("kill")
            .args(["-HUP", &self.maitred.pid().to_string()])
            .status()
            .expect("run kill -HUP");
        assert!(status.success(), "kill -HUP {}", self.maitred.pid());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.reloads_logged() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "maitred did not log \"configuration reloaded\" after SIGHUP"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many reloads maitred has logged so far.
    pub fn reloads_logged(&self) -> usize {
        self.maitred.log().matches("configuration reloaded").count()
    }
}

/// The `[[pools]]` table of a pool named `faults` listening on `listen`, whose upstream is
/// `pg_url` sent through `relay`, with the URL's user as the client login; `extra` is
/// appended inside the table (e.g. `size = 3\nserver_connect_timeout = "1s"`).
pub fn pool_toml(listen: SocketAddr, pg_url: &str, relay: SocketAddr, extra: &str) -> String {
    let up = kit::pg_url_parts(pg_url);
    let upstream = kit::swap_host_port(pg_url, &relay.to_string());
    format!(
        r#"
[[pools]]
name = "faults"
listen = "{listen}"
upstream = "{upstream}"
{extra}
  [[pools.users]]
  name = "{user}"
  password = "{password}"
"#,
        user = up.user.unwrap_or_default(),
        password = up.password.unwrap_or_default(),
    )
}

/// Starts a relay in front of `pg_url`'s server and a maitred whose one pool goes through
/// it; `extra` as in [`pool_toml`].
pub fn start_behind_relay(pg_url: &str, extra: &str) -> Behind {
    let server: SocketAddr = kit::pg_url_parts(pg_url)
        .host_port()
        .parse()
        .expect("the test server URL has an ip:port");
    let relay = FaultRelay::start(server);
    let listen: SocketAddr = format!("127.0.0.1:{}", kit::free_port())
        .parse()
        .expect("addr");
    let dir = std::env::temp_dir().join(format!(
        "maitred-faults-{}-{}",
        std::process::id(),
        listen.port()
    ));
    std::fs::create_dir_all(&dir).expect("config dir");
    let config_path = dir.join("maitred.toml");
    std::fs::write(&config_path, pool_toml(listen, pg_url, relay.addr(), extra))
        .expect("write config");
    let arg = config_path.display().to_string();
    let maitred = Maitred::spawn_at(listen, &["--config", arg.as_str()]);
    let client_url = maitred.url_for(pg_url);
    Behind {
        relay,
        maitred,
        client_url,
        config_path,
        listen,
        pg_url: pg_url.to_owned(),
    }
}

/// Runs `fut` or panics after `secs` seconds (no test may hang).
pub async fn within<F: Future>(secs: u64, what: &str, fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {secs}s: {what}"))
}

/// Connects with tokio-postgres (NoTls); the connection runs in a task.
pub async fn connect(url: &str) -> Result<(Client, JoinHandle<()>), tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let (client, connection) = tokio::time::timeout(CONNECT_TIMEOUT, config.connect(NoTls))
        .await
        .unwrap_or_else(|_| panic!("connect to {url} timed out after {CONNECT_TIMEOUT:?}"))?;
    let handle = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((client, handle))
}

pub async fn must_connect(url: &str) -> (Client, JoinHandle<()>) {
    connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e:?}"))
}

/// The first column of the first row of a simple query.
pub async fn scalar(client: &Client, sql: &str) -> Result<String, tokio_postgres::Error> {
    let messages = client.simple_query(sql).await?;
    Ok(messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row returned")))
}

/// The SQLSTATE of an error the server (or maitred) sent, if it is one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error().map(|d| d.code().code())
}

/// The message of an error the server (or maitred) sent, or the error's text.
pub fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string())
}

/// Runs `sql` directly on the server (not through maitred or the relay).
pub async fn direct_exec(url: &str, sql: &str) {
    let (client, handle) = must_connect(url).await;
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("direct: {sql}: {e:?}"));
    drop(client);
    let _ = handle.await;
}

/// A scalar from a direct connection.
pub async fn direct_scalar(url: &str, sql: &str) -> String {
    let (client, handle) = must_connect(url).await;
    let v = scalar(&client, sql)
        .await
        .unwrap_or_else(|e| panic!("direct: {sql}: {e:?}"));
    drop(client);
    let _ = handle.await;
    v
}

/// Polls `sql` through a fresh client until it succeeds; returns how long that took.
///
/// # Panics
/// If it still fails after `limit`.
pub async fn wait_until_served(url: &str, limit: Duration) -> Duration {
    let started = std::time::Instant::now();
    let (client, handle) = must_connect(url).await;
    loop {
        match scalar(&client, "select 1").await {
            Ok(v) if v == "1" => break,
            Ok(v) => panic!("select 1 returned {v}"),
            Err(e) => {
                assert!(
                    started.elapsed() < limit,
                    "maitred still fails after {limit:?}: {e:?}"
                );
                assert!(!client.is_closed(), "probe client was disconnected: {e:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(client);
    let _ = handle.await;
    started.elapsed()
}
