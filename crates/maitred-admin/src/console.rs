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

/// One cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Text(String),
}

impl Value {
    fn int(v: impl TryInto<i64>) -> Value {
        Value::Int(v.try_into().unwrap_or(i64::MAX))
    }

    fn text(v: impl Into<String>) -> Value {
        Value::Text(v.into())
    }

    /// The text form sent on the wire.
    pub fn render(&self) -> String {
        match self {
            Value::Int(v) => v.to_string(),
            Value::Text(t) => t.clone(),
        }
    }
}

/// A column: its name, and whether it holds integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub numeric: bool,
}

/// A command's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// The column named `name` of every row, for tests and scripts.
    pub fn column(&self, name: &str) -> Vec<&Value> {
        let Some(i) = self.columns.iter().position(|c| c.name == name) else {
            return Vec::new();
        };
        self.rows.iter().filter_map(|r| r.get(i)).collect()
    }
}

/// What a command answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Rows, then the command tag `SHOW`.
    Rows(Table),
    /// Only a command tag, e.g. `PAUSE`.
    Done(&'static str),
}

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

/// One command's view: the console and the pools.
struct Ctx<'a> {
    console: &'a Console,
    admin: &'a Admin,
}

impl Ctx<'_> {
    fn execute(&self, sql: &str) -> Result<Reply, ConsoleError> {
        let words: Vec<&str> = sql
            .trim()
            .trim_end_matches(';')
            .split_ascii_whitespace()
            .collect();
        let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
        let verb: Vec<&str> = upper.iter().map(String::as_str).collect();
        // Pool names keep their case.
        let arg = words.get(1).map(|w| w.trim_matches('"'));
        match verb.as_slice() {
            ["SHOW", "POOLS"] => Ok(Reply::Rows(self.pools())),
            ["SHOW", "CLIENTS"] => Ok(Reply::Rows(self.clients())),
            ["SHOW", "SERVERS"] => Ok(Reply::Rows(self.servers())),
            ["SHOW", "STATS"] => Ok(Reply::Rows(self.stats())),
            ["SHOW", "FLEETS"] => Ok(Reply::Rows(self.fleets())),
            ["SHOW", "CONFIG"] => Ok(Reply::Rows(self.show_config())),
            ["SHOW", "VERSION"] => Ok(Reply::Rows(Table {
                columns: vec![text("version")],
                rows: vec![vec![Value::text(VERSION)]],
            })),
            ["SHOW", "HELP"] | ["HELP"] => Ok(Reply::Rows(Table {
                columns: vec![text("help")],
                rows: vec![vec![Value::text(HELP)]],
            })),
            ["PAUSE"] | ["PAUSE", _] => {
                self.each_pool(arg, "PAUSE", |o| o.pause())?;
                Ok(Reply::Done("PAUSE"))
            }
            ["RESUME"] | ["RESUME", _] => {
                self.each_pool(arg, "RESUME", |o| o.resume())?;
                Ok(Reply::Done("RESUME"))
            }
            ["RECONNECT"] | ["RECONNECT", _] => {
                self.each_pool(arg, "RECONNECT", |o| o.reconnect())?;
                Ok(Reply::Done("RECONNECT"))
            }
            ["KILL", _] => {
                // Clients are disconnected; server connections are retired too (as
                // PgBouncer drops both sides), where the pool can.
                self.each_pool(arg, "KILL", |o| match o.clients() {
                    Some(c) => {
                        c.kill_all();
                        o.reconnect();
                        true
                    }
                    None => false,
                })?;
                Ok(Reply::Done("KILL"))
            }
            ["KILL"] => Err(ConsoleError::new(
                ErrorKind::Syntax,
                "KILL needs a pool name: KILL <pool>",
            )),
            ["RELOAD"] => self.control(ControlRequest::Reload, "RELOAD"),
            ["SHUTDOWN"] => self.control(ControlRequest::Shutdown, "SHUTDOWN"),
            _ => Err(ConsoleError::new(
                ErrorKind::Syntax,
                format!(
                    "unknown command \"{}\"; the console knows: {HELP}",
                    sql.trim()
                ),
            )),
        }
    }

    /// Applies `f` to the named pool, or to every pool without a name.
    fn each_pool(
        &self,
        name: Option<&str>,
        what: &str,
        f: impl Fn(&dyn PoolObserver) -> bool,
    ) -> Result<(), ConsoleError> {
        let pools: Vec<Arc<dyn PoolObserver>> = self
            .admin
            .observers()
            .into_iter()
            .filter(|o| name.is_none_or(|n| o.name() == n))
            .collect();
        if let (Some(n), true) = (name, pools.is_empty()) {
            return Err(ConsoleError::new(
                ErrorKind::UnknownPool,
                format!("no pool named \"{n}\""),
            ));
        }
        for o in pools {
            if !f(o.as_ref()) {
                return Err(ConsoleError::new(
                    ErrorKind::Unavailable,
                    format!(
                        "pool \"{}\" ({}) does not support {what}",
                        o.name(),
                        o.protocol()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn control(&self, request: ControlRequest, tag: &'static str) -> Result<Reply, ConsoleError> {
        if self.admin.request_control(request) {
            Ok(Reply::Done(tag))
        } else {
            Err(ConsoleError::new(
                ErrorKind::Unavailable,
                format!("{tag}: the daemon does not take this request now"),
            ))
        }
    }

    fn pools(&self) -> Table {
        let columns = vec![
            text("database"),
            text("user"),
            int("cl_active"),
            int("cl_waiting"),
            int("sv_active"),
            int("sv_idle"),
            int("sv_used"),
            int("sv_tested"),
            int("sv_login"),
            int("maxwait"),
            int("maxwait_us"),
            text("pool_mode"),
            text("protocol"),
            int("cl_idle"),
            int("pool_size"),
            text("paused"),
        ];
        let rows = self
            .admin
            .observers()
            .iter()
            .map(|o| {
                let s = o.state();
                let counts = o.clients().map(|c| c.counts()).unwrap_or_default();
                vec![
                    Value::text(o.name()),
                    Value::text(o.server_user()),
                    // PgBouncer's cl_active: logged in and not waiting (linked or idle).
                    Value::int(counts.active + counts.idle),
                    Value::int(counts.waiting.max(s.waiting)),
                    Value::int(s.busy),
                    Value::int(s.idle),
                    Value::Int(0),
                    Value::Int(0),
                    Value::Int(0),
                    Value::int(counts.max_wait.as_secs()),
                    Value::int(counts.max_wait.subsec_micros()),
                    Value::text(o.mode()),
                    Value::text(o.protocol()),
                    Value::int(counts.idle),
                    Value::int(s.max_size),
                    Value::text(if o.is_paused() { "yes" } else { "no" }),
                ]
            })
            .collect();
        Table { columns, rows }
    }

    fn clients(&self) -> Table {
        let columns = vec![
            text("type"),
            text("user"),
            text("database"),
            text("state"),
            text("addr"),
            int("port"),
            text("local_addr"),
            int("local_port"),
            text("connect_time"),
            text("request_time"),
            int("wait"),
            int("wait_us"),
            int("close_needed"),
            text("ptr"),
            text("link"),
            int("remote_pid"),
            text("tls"),
            text("application_name"),
            int("id"),
            text("protocol"),
            text("client_database"),
        ];
        let mut rows = Vec::new();
        for o in self.admin.observers() {
            let Some(clients) = o.clients() else {
                continue;
            };
            for c in clients.list() {
                let wait = c.waiting_for.unwrap_or_default();
                let connected = timestamp(c.connected_at);
                rows.push(vec![
                    Value::text("C"),
                    Value::text(c.identity.user.clone()),
                    Value::text(o.name()),
                    Value::text(c.state.as_str()),
                    Value::text(
                        c.identity
                            .addr
                            .map(|a| a.ip().to_string())
                            .unwrap_or_default(),
                    ),
                    Value::int(c.identity.addr.map_or(0, |a| a.port())),
                    Value::text(""),
                    Value::Int(0),
                    Value::text(connected.clone()),
                    Value::text(connected),
                    Value::int(wait.as_secs()),
                    Value::int(wait.subsec_micros()),
                    Value::Int(0),
                    Value::text(format!("{:x}", c.id)),
                    Value::text(""),
                    Value::Int(0),
                    Value::text(if c.identity.tls { "yes" } else { "" }),
                    Value::text(""),
                    Value::int(c.id),
                    Value::text(o.protocol()),
                    Value::text(c.identity.database.clone()),
                ]);
            }
        }
        Table { columns, rows }
    }

    /// One row per pool and state with its count: the pool core counts server
    /// connections but does not list them.
    fn servers(&self) -> Table {
        let columns = vec![
            text("type"),
            text("user"),
            text("database"),
            text("state"),
            text("addr"),
            int("port"),
            int("count"),
            text("protocol"),
        ];
        let mut rows = Vec::new();
        for o in self.admin.observers() {
            let s = o.state();
            let addr = o.server_addr();
            let (host, port) = match addr.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse::<u16>().unwrap_or(0)),
                None => (addr.clone(), 0),
            };
            for (state, n) in [("active", s.busy), ("idle", s.idle)] {
                rows.push(vec![
                    Value::text("S"),
                    Value::text(o.server_user()),
                    Value::text(o.name()),
                    Value::text(state),
                    Value::text(host.clone()),
                    Value::int(port),
                    Value::int(n),
                    Value::text(o.protocol()),
                ]);
            }
        }
        Table { columns, rows }
    }

    /// One row per pool in a fleet: its tokens (held, wanted, used by server
    /// connections), the fleet's live replicas and budget, whether coordination is lost.
    fn fleets(&self) -> Table {
        const KEYS: [&str; 6] = [
            "fleet_tokens_held",
            "fleet_tokens_wanted",
            "fleet_tokens_used",
            "fleet_replicas",
            "fleet_budget",
            "fleet_coordination_lost",
        ];
        let mut columns = vec![text("database"), text("protocol")];
        columns.extend(
            KEYS.iter()
                .map(|&k| int(k.strip_prefix("fleet_").unwrap_or(k))),
        );
        let mut rows = Vec::new();
        for o in self.admin.observers() {
            let gauges = o.extra_gauges();
            if !gauges.iter().any(|(k, _)| *k == "fleet_budget") {
                continue;
            }
            let mut row = vec![Value::text(o.name()), Value::text(o.protocol())];
            for key in KEYS {
                let v = gauges
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map_or(0.0, |(_, v)| *v);
                row.push(Value::int(v as u64));
            }
            rows.push(row);
        }
        Table { columns, rows }
    }

    fn stats(&self) -> Table {
        let columns = vec![
            text("database"),
            int("total_xact_count"),
            int("total_query_count"),
            int("total_received"),
            int("total_sent"),
            int("total_xact_time"),
            int("total_query_time"),
            int("total_wait_time"),
            int("avg_xact_count"),
            int("avg_query_count"),
            int("avg_recv"),
            int("avg_sent"),
            int("avg_xact_time"),
            int("avg_query_time"),
            int("avg_wait_time"),
            text("protocol"),
            int("total_checkouts"),
        ];
        let secs = self.console.started.elapsed().as_secs().max(1);
        let rows = self
            .admin
            .observers()
            .iter()
            .map(|o| {
                let s = o.stats();
                let t = o.clients().map(|c| c.traffic.totals()).unwrap_or_default();
                // A transaction is a lease given back: the protocol's own count when it
                // keeps one, else the pool core's checkouts.
                let xacts = o
                    .extra_counters()
                    .iter()
                    .find(|(k, _)| *k == "transactions_total")
                    .map_or(s.checkouts, |(_, v)| *v);
                let wait_us = s.checkout_wait_total.as_micros();
                vec![
                    Value::text(o.name()),
                    Value::int(xacts),
                    Value::int(t.queries),
                    Value::int(t.received),
                    Value::int(t.sent),
                    Value::Int(0),
                    Value::Int(0),
                    Value::int(wait_us),
                    Value::int(xacts / secs),
                    Value::int(t.queries / secs),
                    Value::int(t.received / secs),
                    Value::int(t.sent / secs),
                    Value::Int(0),
                    Value::Int(0),
                    Value::int(s.mean_checkout_wait().as_micros()),
                    Value::text(o.protocol()),
                    Value::int(s.checkouts),
                ]
            })
            .collect();
        Table { columns, rows }
    }

    fn show_config(&self) -> Table {
        let columns = vec![
            text("key"),
            text("value"),
            text("default"),
            text("changeable"),
        ];
        let rows = self
            .console
            .config()
            .into_iter()
            .map(|e| {
                vec![
                    Value::Text(e.key),
                    Value::Text(e.value),
                    Value::Text(e.default),
                    Value::text(if e.changeable { "yes" } else { "no" }),
                ]
            })
            .collect();
        Table { columns, rows }
    }
}

fn text(name: &'static str) -> Column {
    Column {
        name,
        numeric: false,
    }
}

fn int(name: &'static str) -> Column {
    Column {
        name,
        numeric: true,
    }
}

/// `2026-01-31 12:00:00 UTC`, as PgBouncer writes times.
fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
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
