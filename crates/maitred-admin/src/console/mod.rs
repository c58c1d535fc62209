//! The admin console's commands, protocol-agnostic: SHOW POOLS, CLIENTS, SERVERS, STATS,
//! CONFIG, VERSION, and PAUSE, RESUME, RECONNECT, KILL, RELOAD, SHUTDOWN. [`Console`]
//! (kept in [`Admin`], see [`Admin::console`]) sees pools only through [`PoolObserver`]
//! (so every protocol's pools are listed and controlled alike) and answers with [`Reply`]
//! tables; a protocol's front end (the PostgreSQL one, see maitred-pg's `admin_console`)
//! authenticates the console users and puts the tables on the wire.
//!
//! Columns follow PgBouncer's where a column means the same; see docs/operations.md.

use crate::control::ControlRequest;
use crate::observer::PoolObserver;
use crate::Admin;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

mod commands;
mod reply;

use commands::Ctx;
pub use reply::{Column, Reply, Table, Value};

/// A command the console refuses, with a SQLSTATE-like class for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleError {
    /// `syntax`, `unknown_pool` or `unavailable`.
    pub kind: ErrorKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not a console command.
    Syntax,
    /// No pool of that name.
    UnknownPool,
    /// The pool or the daemon cannot do it.
    Unavailable,
}

impl ConsoleError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> ConsoleError {
        ConsoleError {
            kind,
            message: message.into(),
        }
    }
}

/// One row of SHOW CONFIG. Secrets never go in here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub key: String,
    pub value: String,
    pub default: String,
    /// Whether RELOAD applies a change of it without a restart.
    pub changeable: bool,
}

/// The console's state: who may log in and the configuration to show. The pools come
/// from the [`Admin`] passed to [`Console::execute`].
pub struct Console {
    /// (user, password as configured: plaintext or a SCRAM secret).
    users: RwLock<Vec<(String, String)>>,
    config: RwLock<Vec<ConfigEntry>>,
    started: Instant,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let users: Vec<String> = read(&self.users).into_iter().map(|(u, _)| u).collect();
        f.debug_struct("Console")
            .field("users", &users)
            .finish_non_exhaustive()
    }
}

impl Default for Console {
    fn default() -> Self {
        Console {
            users: RwLock::new(Vec::new()),
            config: RwLock::new(Vec::new()),
            started: Instant::now(),
        }
    }
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut g) => *g = value,
        Err(p) => *p.into_inner() = value,
    }
}

/// maitred's version, as SHOW VERSION says it.
pub const VERSION: &str = concat!("maitred ", env!("CARGO_PKG_VERSION"));

const HELP: &str = "SHOW POOLS|CLIENTS|SERVERS|STATS|FLEETS|CONFIG|VERSION; PAUSE [pool]; RESUME [pool]; RECONNECT [pool]; KILL pool; RELOAD; SHUTDOWN";

impl Console {
    /// What SHOW CONFIG shows; the daemon sets it at start and after each reload.
    pub fn set_config(&self, entries: Vec<ConfigEntry>) {
        write(&self.config, entries);
    }

    fn config(&self) -> Vec<ConfigEntry> {
        read(&self.config)
    }

    /// Who may log in: (user, password as configured). None: the console is off.
    pub fn set_users(&self, users: Vec<(String, String)>) {
        write(&self.users, users);
    }

    /// Whether anyone may log in.
    pub fn is_enabled(&self) -> bool {
        match self.users.read() {
            Ok(g) => !g.is_empty(),
            Err(p) => !p.into_inner().is_empty(),
        }
    }

    /// The configured password of a console user.
    pub fn password_of(&self, user: &str) -> Option<String> {
        read(&self.users)
            .into_iter()
            .find(|(u, _)| u == user)
            .map(|(_, p)| p)
    }

    /// Runs one command (case-insensitive, a trailing `;` allowed) against `admin`'s pools.
    pub fn execute(&self, admin: &Admin, sql: &str) -> Result<Reply, ConsoleError> {
        let ctx = Ctx {
            console: self,
            admin,
        };
        ctx.execute(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientIdentity, ClientState, PoolClients};
    use maitred_pool::{PoolState, PoolStats};
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// A pool whose gauges the test fixes and whose pause flag it can read.
    struct Fake {
        name: &'static str,
        clients: Arc<PoolClients>,
        paused: AtomicBool,
        reconnects: std::sync::atomic::AtomicUsize,
    }

    impl PoolObserver for Fake {
        fn name(&self) -> &str {
            self.name
        }
        fn protocol(&self) -> &'static str {
            "mysql"
        }
        fn listen(&self) -> SocketAddr {
            SocketAddr::from(([127, 0, 0, 1], 3307))
        }
        fn state(&self) -> PoolState {
            PoolState {
                size: 3,
                idle: 1,
                busy: 2,
                waiting: 0,
                max_size: 4,
            }
        }
        fn stats(&self) -> PoolStats {
            PoolStats {
                state: self.state(),
                checkouts: 4,
                checkout_wait_total: Duration::from_millis(2),
                queue_timeouts: 0,
                queue_full_rejections: 0,
                connects: 3,
                connect_failures: 0,
                closed_broken: 0,
                closed_expired: 0,
                resets: 0,
                reset_failures: 0,
                ..PoolStats::default()
            }
        }
        fn clients(&self) -> Option<Arc<PoolClients>> {
            Some(self.clients.clone())
        }
        fn mode(&self) -> &'static str {
            "transaction"
        }
        fn server_user(&self) -> String {
            "app".into()
        }
        fn server_addr(&self) -> String {
            "db.internal:3306".into()
        }
        fn pause(&self) -> bool {
            self.paused.store(true, Ordering::SeqCst);
            true
        }
        fn resume(&self) -> bool {
            self.paused.store(false, Ordering::SeqCst);
            true
        }
        fn is_paused(&self) -> bool {
            self.paused.load(Ordering::SeqCst)
        }
        fn reconnect(&self) -> bool {
            self.reconnects.fetch_add(1, Ordering::SeqCst);
            true
        }
    }

    fn fake(name: &'static str) -> Arc<Fake> {
        Arc::new(Fake {
            name,
            clients: PoolClients::new(),
            paused: AtomicBool::new(false),
            reconnects: Default::default(),
        })
    }

    fn identity(user: &str) -> ClientIdentity {
        ClientIdentity {
            user: user.into(),
            database: "shop".into(),
            addr: Some(SocketAddr::from(([10, 0, 0, 7], 41000))),
            tls: false,
        }
    }

    /// The console of an [`Admin`], as a front end uses it.
    struct TestConsole {
        admin: Arc<Admin>,
    }

    impl TestConsole {
        fn new(admin: Arc<Admin>) -> TestConsole {
            TestConsole { admin }
        }
        fn execute(&self, sql: &str) -> Result<Reply, ConsoleError> {
            self.admin.console().execute(&self.admin, sql)
        }
        fn set_config(&self, entries: Vec<ConfigEntry>) {
            self.admin.console().set_config(entries);
        }
    }

    fn rows(reply: Result<Reply, ConsoleError>) -> Table {
        match reply {
            Ok(Reply::Rows(t)) => t,
            other => panic!("expected rows, got {other:?}"),
        }
    }

    #[test]
    fn show_pools_and_clients_report_the_registry() {
        let admin = Admin::new();
        let pool = fake("orders");
        admin.register(pool.clone());
        let console = TestConsole::new(admin);
        let a = pool.clients.register(identity("alice"));
        let b = pool.clients.register(identity("bob"));
        let _c = pool.clients.register(identity("carol"));
        a.set_state(ClientState::Active);
        b.set_state(ClientState::Waiting);

        let t = rows(console.execute("show pools;"));
        assert_eq!(t.rows.len(), 1);
        assert_eq!(t.column("database"), [&Value::text("orders")]);
        assert_eq!(t.column("user"), [&Value::text("app")]);
        assert_eq!(t.column("cl_active"), [&Value::Int(2)]);
        assert_eq!(t.column("cl_waiting"), [&Value::Int(1)]);
        assert_eq!(t.column("sv_active"), [&Value::Int(2)]);
        assert_eq!(t.column("sv_idle"), [&Value::Int(1)]);
        assert_eq!(t.column("pool_mode"), [&Value::text("transaction")]);
        assert_eq!(t.column("paused"), [&Value::text("no")]);

        let t = rows(console.execute("SHOW CLIENTS"));
        assert_eq!(t.rows.len(), 3);
        assert_eq!(
            t.column("user"),
            [
                &Value::text("alice"),
                &Value::text("bob"),
                &Value::text("carol")
            ]
        );
        assert_eq!(
            t.column("state"),
            [
                &Value::text("active"),
                &Value::text("waiting"),
                &Value::text("idle")
            ]
        );
        assert_eq!(t.column("addr")[0], &Value::text("10.0.0.7"));
        assert_eq!(t.column("port")[0], &Value::Int(41000));
        assert!(matches!(t.column("connect_time")[0], Value::Text(s) if s.ends_with(" UTC")));

        let t = rows(console.execute("SHOW SERVERS"));
        assert_eq!(t.column("count"), [&Value::Int(2), &Value::Int(1)]);
        assert_eq!(t.column("addr")[0], &Value::text("db.internal"));
        assert_eq!(t.column("port")[0], &Value::Int(3306));
    }

    #[test]
    fn show_stats_counts_traffic_and_wait() {
        let admin = Admin::new();
        let pool = fake("orders");
        admin.register(pool.clone());
        let console = TestConsole::new(admin);
        pool.clients.traffic.received(300);
        pool.clients.traffic.sent(900);
        pool.clients.traffic.query();
        let t = rows(console.execute("SHOW STATS"));
        assert_eq!(t.column("total_received"), [&Value::Int(300)]);
        assert_eq!(t.column("total_sent"), [&Value::Int(900)]);
        assert_eq!(t.column("total_query_count"), [&Value::Int(1)]);
        assert_eq!(t.column("total_xact_count"), [&Value::Int(4)]);
        assert_eq!(t.column("total_wait_time"), [&Value::Int(2000)]);
        assert_eq!(t.column("avg_wait_time"), [&Value::Int(500)]);
    }

    #[tokio::test]
    async fn kill_pause_resume_reconnect_act_on_the_named_pool() {
        let admin = Admin::new();
        let orders = fake("orders");
        let users = fake("users");
        admin.register(orders.clone());
        admin.register(users.clone());
        let console = TestConsole::new(admin);
        let victim = orders.clients.register(identity("a"));
        let bystander = users.clients.register(identity("b"));

        assert_eq!(console.execute("KILL orders"), Ok(Reply::Done("KILL")));
        tokio::time::timeout(Duration::from_secs(1), victim.killed())
            .await
            .expect("killed");
        assert!(!bystander.is_killed());

        assert_eq!(console.execute("PAUSE users"), Ok(Reply::Done("PAUSE")));
        assert!(users.is_paused() && !orders.is_paused());
        let t = rows(console.execute("SHOW POOLS"));
        assert_eq!(
            t.column("paused"),
            [&Value::text("no"), &Value::text("yes")]
        );
        assert_eq!(console.execute("RESUME"), Ok(Reply::Done("RESUME")));
        assert!(!users.is_paused());
        assert_eq!(console.execute("RECONNECT"), Ok(Reply::Done("RECONNECT")));
        // KILL retired the orders pool's connections once, RECONNECT every pool's.
        assert_eq!(orders.reconnects.load(Ordering::SeqCst), 2);
        assert_eq!(users.reconnects.load(Ordering::SeqCst), 1);

        let e = console.execute("KILL nosuch").expect_err("unknown pool");
        assert_eq!(e.kind, ErrorKind::UnknownPool);
        assert!(e.message.contains("nosuch"), "{}", e.message);
        let e = console.execute("SELECT 1").expect_err("not a command");
        assert_eq!(e.kind, ErrorKind::Syntax);
        assert_eq!(
            console.execute("KILL").expect_err("no pool").kind,
            ErrorKind::Syntax
        );
    }

    #[tokio::test]
    async fn reload_and_shutdown_go_to_the_daemon() {
        let admin = Admin::new();
        let console = TestConsole::new(admin.clone());
        let e = console.execute("RELOAD");
        assert!(
            e.is_ok(),
            "the channel buffers until the daemon reads: {e:?}"
        );
        let mut rx = admin.take_control_receiver().expect("receiver");
        assert_eq!(rx.recv().await, Some(ControlRequest::Reload));
        assert_eq!(console.execute("shutdown"), Ok(Reply::Done("SHUTDOWN")));
        assert_eq!(rx.recv().await, Some(ControlRequest::Shutdown));
        drop(rx);
        let e = console.execute("RELOAD").expect_err("nobody listens");
        assert_eq!(e.kind, ErrorKind::Unavailable);
    }

    #[test]
    fn show_config_and_version() {
        let console = TestConsole::new(Admin::new());
        console.set_config(vec![ConfigEntry {
            key: "pools.orders.size".into(),
            value: "20".into(),
            default: "10".into(),
            changeable: true,
        }]);
        let t = rows(console.execute("SHOW CONFIG"));
        assert_eq!(t.column("key"), [&Value::text("pools.orders.size")]);
        assert_eq!(t.column("value"), [&Value::text("20")]);
        assert_eq!(t.column("changeable"), [&Value::text("yes")]);
        let t = rows(console.execute("SHOW VERSION"));
        assert!(!console.admin.console().is_enabled());
        console
            .admin
            .console()
            .set_users(vec![("admin".into(), "secret".into())]);
        assert!(console.admin.console().is_enabled());
        assert_eq!(
            console.admin.console().password_of("admin").as_deref(),
            Some("secret")
        );
        assert_eq!(console.admin.console().password_of("nobody"), None);
        let debug = format!("{:?}", console.admin.console());
        assert!(
            debug.contains("admin") && !debug.contains("secret"),
            "{debug}"
        );
        assert!(matches!(t.column("version")[0], Value::Text(v) if v.starts_with("maitred ")));
    }
}
