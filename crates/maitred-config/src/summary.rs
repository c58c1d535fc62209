//! [`Config::summary`]: a short description of a configuration, as
//! `maitred check` prints it and the daemon may log it at startup.
//! Passwords never appear (upstream URLs are redacted).

use crate::model::{Config, PoolConfig};

impl Config {
    /// One line for the daemon-wide settings, then one line per pool.
    pub fn summary(&self) -> Vec<String> {
        let pools = match self.pools.len() {
            1 => "1 pool".to_owned(),
            n => format!("{n} pools"),
        };
        let admin = match &self.admin {
            Some(admin) => format!("admin on {}", admin.listen),
            None => "no admin endpoint".to_owned(),
        };
        let workers = match self.runtime.workers {
            0 => "default workers".to_owned(),
            n => format!("{n} workers"),
        };
        let mut lines = vec![format!(
            "{pools}, {admin}, {workers}, log format {} level {}",
            self.log.format, self.log.level
        )];
        lines.extend(self.pools.iter().map(PoolConfig::summary));
        lines
    }
}

impl PoolConfig {
    /// One line describing the pool.
    pub fn summary(&self) -> String {
        let users = match self.users.len() {
            1 => "1 user".to_owned(),
            n => format!("{n} users"),
        };
        let database = match (self.any_database(), self.upstream.protocol) {
            (true, crate::upstream::Protocol::Postgres) => format!(
                "any database (\"{}\", and pools for up to {} others)",
                self.own_database(),
                self.max_databases()
            ),
            (true, _) => format!("any database (\"{}\" by default)", self.own_database()),
            (false, _) => format!("database \"{}\"", self.client_database()),
        };
        format!(
            "pool \"{}\": {} {database} -> {} ({} mode, size {}, client_auth {}, {users})",
            self.name,
            self.listen,
            self.upstream.redacted(),
            self.mode,
            self.size,
            self.client_auth,
        )
    }
}
