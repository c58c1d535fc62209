//! Each console command, run against the pools through [`PoolObserver`].

use super::*;

/// One command's view: the console and the pools.
pub(super) struct Ctx<'a> {
    pub(super) console: &'a Console,
    pub(super) admin: &'a Admin,
}

impl Ctx<'_> {
    pub(super) fn execute(&self, sql: &str) -> Result<Reply, ConsoleError> {
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
