//! [`Config::validate`]: every problem of a parsed configuration, as one
//! human-readable message each. Messages name pools, users and keys, never
//! passwords.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use crate::model::{ClientAuth, Config, PoolConfig};
use crate::secret::PasswordKind;

/// The shortest `[admin] detail_token` accepted.
pub const MIN_DETAIL_TOKEN_CHARS: usize = 16;

impl Config {
    /// Checks the configuration, returning every problem found.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();

        if self.log.level.trim().is_empty() {
            problems.push("log.level must not be empty (e.g. \"info\")".to_owned());
        }
        if self.pools.is_empty() {
            problems.push("no pools are configured: add at least one [[pools]] table".to_owned());
        }

        let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, pool) in self.pools.iter().enumerate() {
            validate_pool(index, pool, &mut problems);
            if !pool.name.is_empty() {
                by_name.entry(pool.name.as_str()).or_default().push(index);
            }
        }
        for (name, indexes) in by_name {
            if indexes.len() > 1 {
                let places: Vec<String> = indexes.iter().map(|i| format!("pools[{i}]")).collect();
                problems.push(format!(
                    "pool name \"{name}\" is used more than once ({})",
                    places.join(", ")
                ));
            }
        }

        self.validate_addresses(&mut problems);
        if let Some(admin) = &self.admin {
            validate_admin_users(&admin.users, &mut problems);
            if let Some(token) = &admin.detail_token {
                // Counted in characters; the value itself is never shown.
                if token.expose().trim().chars().count() < MIN_DETAIL_TOKEN_CHARS {
                    problems.push(format!(
                        "admin.detail_token must have at least {MIN_DETAIL_TOKEN_CHARS} characters (is its ${{VAR}} set?); leave the key out to keep /pools on loopback only"
                    ));
                } else if token.expose().chars().any(char::is_whitespace) {
                    problems.push(
                        "admin.detail_token must not contain spaces or other whitespace (it travels in an HTTP header)".to_owned(),
                    );
                }
            }
        }

        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn validate_addresses(&self, problems: &mut Vec<String>) {
        // Same address and same client-facing database: clients could not
        // be routed.
        let mut routes: HashMap<(SocketAddr, &str), Vec<usize>> = HashMap::new();
        for (index, pool) in self.pools.iter().enumerate() {
            routes
                .entry((pool.listen, pool.client_database()))
                .or_default()
                .push(index);
        }
        let mut clashes: Vec<_> = routes
            .into_iter()
            .filter(|(_, indexes)| indexes.len() > 1)
            .collect();
        clashes.sort_by_key(|(_, indexes)| indexes[0]);
        for ((listen, database), indexes) in clashes {
            problems.push(format!(
                "pools {} all listen on {listen} for database \"{database}\": give them different listen addresses or `database` names",
                self.pool_list(&indexes)
            ));
        }

        // Different addresses that cannot both be bound (one is the
        // wildcard address on the same port).
        let mut addresses: Vec<(SocketAddr, String)> = Vec::new();
        for (index, pool) in self.pools.iter().enumerate() {
            if !addresses.iter().any(|(address, _)| *address == pool.listen) {
                addresses.push((pool.listen, format!("pool {}", self.pool_label(index))));
            }
        }
        for (i, (a, a_owner)) in addresses.iter().enumerate() {
            for (b, b_owner) in &addresses[i + 1..] {
                if overlap(*a, *b) {
                    problems.push(format!(
                        "{a_owner} listens on {a} and {b_owner} on {b}: these overlap and cannot both be bound; use one address to share a port"
                    ));
                }
            }
        }
        if let Some(admin) = &self.admin {
            for (address, owner) in &addresses {
                if *address == admin.listen || overlap(*address, admin.listen) {
                    problems.push(format!(
                        "admin.listen {} clashes with {owner} listening on {address}",
                        admin.listen
                    ));
                }
            }
        }
    }

    fn pool_label(&self, index: usize) -> String {
        match self.pools.get(index) {
            Some(pool) if !pool.name.is_empty() => format!("\"{}\"", pool.name),
            _ => format!("pools[{index}]"),
        }
    }

    fn pool_list(&self, indexes: &[usize]) -> String {
        let labels: Vec<String> = indexes.iter().map(|i| self.pool_label(*i)).collect();
        labels.join(", ")
    }
}

/// Two different addresses on one port where one is a wildcard address.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a != b && a.port() == b.port() && (a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn validate_pool(index: usize, pool: &PoolConfig, problems: &mut Vec<String>) {
    let label = if pool.name.is_empty() {
        problems.push(format!("pools[{index}]: name must not be empty"));
        format!("pools[{index}]")
    } else {
        format!("pool \"{}\"", pool.name)
    };
    let mut problem = |message: String| problems.push(format!("{label}: {message}"));

    if pool.database.as_deref() == Some("") {
        problem("database must not be empty (leave it out to use the upstream's)".to_owned());
    }
    for message in any_database_problems(pool) {
        problem(message);
    }
    if pool.size == 0 {
        problem("size must be at least 1".to_owned());
    }
    if pool.min_idle > pool.size {
        problem(format!(
            "min_idle ({}) must not exceed size ({})",
            pool.min_idle, pool.size
        ));
    }
    if pool.max_waiting == 0 {
        problem("max_waiting must be at least 1".to_owned());
    }
    if pool.max_pinned.is_some_and(|m| m > pool.size) {
        problem(format!(
            "max_pinned ({}) must not exceed size ({})",
            pool.max_pinned(),
            pool.size
        ));
    }
    match (&pool.fleet, pool.budget) {
        (Some(f), _) if f.trim().is_empty() => problem("fleet must not be empty".to_owned()),
        (Some(_), None) => problem(
            "fleet needs a budget (a number of server connections for the whole fleet, or \"auto\")"
                .to_owned(),
        ),
        (None, Some(_)) => problem("budget needs fleet (the name the replicas share)".to_owned()),
        (Some(_), Some(crate::model::Budget::Count(n))) if n < 2 => problem(format!(
            "budget ({n}) must be at least 2: each replica's coordination connection takes one"
        )),
        _ => {}
    }
    if pool.mode == crate::model::PoolMode::Statement
        && pool.upstream.protocol != crate::upstream::Protocol::Postgres
    {
        problem("mode \"statement\" is only supported for PostgreSQL pools".to_owned());
    }
    if pool.tls_cert.is_some() != pool.tls_key.is_some() {
        problem("tls_cert and tls_key go together: set both or neither".to_owned());
    }
    if pool.tls_required && pool.tls_cert.is_none() {
        problem("tls_required needs tls_cert and tls_key".to_owned());
    }
    if pool.prepared_statements == 0 {
        problem("prepared_statements must be at least 1".to_owned());
    }
    if pool.max_clients == 0 {
        problem("max_clients must be at least 1".to_owned());
    }
    if let Some(size) = pool.max_message_size {
        if size < crate::defaults::MIN_MAX_MESSAGE_SIZE {
            problem(format!(
                "max_message_size ({size}) must be at least {} bytes",
                crate::defaults::MIN_MAX_MESSAGE_SIZE
            ));
        }
    }
    let durations: [(&str, Duration); 7] = [
        ("queue_timeout", pool.queue_timeout),
        ("idle_timeout", pool.idle_timeout),
        ("max_lifetime", pool.max_lifetime),
        ("server_connect_timeout", pool.server_connect_timeout),
        ("client_login_timeout", pool.client_login_timeout),
        ("auth_cache_ttl", pool.auth_cache_ttl),
        ("fleet_idle_release", pool.fleet_idle_release),
    ];
    for (key, value) in durations {
        if value.is_zero() {
            problem(format!("{key} must be greater than zero"));
        }
    }

    for message in auth_query_problems(pool) {
        problem(message);
    }
    for message in server_login_problems(pool) {
        problem(message);
    }
    let auth = pool.client_auth;
    if auth != ClientAuth::Trust && pool.users.is_empty() && pool.auth_user.is_none() {
        problem(format!(
            "client_auth = \"{auth}\" needs at least one [[pools.users]] entry with a password"
        ));
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (user_index, user) in pool.users.iter().enumerate() {
        if user.name.is_empty() {
            problem(format!("users[{user_index}]: name must not be empty"));
            continue;
        }
        let count = seen.entry(user.name.as_str()).or_default();
        *count += 1;
        if *count == 2 {
            problem(format!("user \"{}\" is listed more than once", user.name));
        }
        let user_label = format!("user \"{}\"", user.name);
        let password = match &user.password {
            Some(password) if !password.is_empty() => password,
            _ => {
                if auth != ClientAuth::Trust {
                    problem(format!(
                        "{user_label} has no password, which client_auth = \"{auth}\" needs"
                    ));
                }
                continue;
            }
        };
        match (password.password_kind(), auth) {
            (PasswordKind::MalformedScramSecret, _) => problem(format!(
                "{user_label}: password starts with SCRAM-SHA-256$ but is not a valid SCRAM secret (SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>)"
            )),
            (PasswordKind::Md5Hash, ClientAuth::ScramSha256) => problem(format!(
                "{user_label}: password is an md5 hash, which cannot be used with client_auth = \"scram-sha-256\"; give the plaintext password or a SCRAM secret, or use client_auth = \"md5\""
            )),
            (PasswordKind::ScramSecret, ClientAuth::Md5) => problem(format!(
                "{user_label}: password is a SCRAM secret, which cannot be used with client_auth = \"md5\"; give the plaintext password or an md5 hash, or use client_auth = \"scram-sha-256\""
            )),
            _ => {}
        }
        if let Some(count) = crate::secret::scram_iterations(password.expose()) {
            if !crate::secret::SCRAM_ITERATIONS.contains(&count) {
                problem(format!(
                    "{user_label}: the SCRAM secret's iteration count {count} is outside {} to {}: every client would derive that many rounds at each login; regenerate the secret (PostgreSQL's default is 4096)",
                    crate::secret::SCRAM_ITERATIONS.start(),
                    crate::secret::SCRAM_ITERATIONS.end()
                ));
            }
        }
    }
}

/// `auth_user` / `auth_query`: PostgreSQL only; the query needs a user to run as, whose
/// password maitred has in plaintext (the upstream URL's, or its `users` entry).
fn auth_query_problems(pool: &PoolConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if pool.auth_query.is_some() && pool.auth_user.is_none() {
        problems.push(
            "auth_query needs auth_user (the user the lookup connection logs in as)".to_owned(),
        );
    }
    if pool
        .auth_query
        .as_deref()
        .is_some_and(|q| q.trim().is_empty())
    {
        problems.push("auth_query must not be empty (leave it out for the default)".to_owned());
    }
    let Some(auth_user) = pool.auth_user.as_deref() else {
        return problems;
    };
    if pool.upstream.protocol != crate::upstream::Protocol::Postgres {
        problems
            .push("auth_user and auth_query are only supported for PostgreSQL pools".to_owned());
        return problems;
    }
    if auth_user.is_empty() {
        problems.push("auth_user must not be empty".to_owned());
        return problems;
    }
    if pool.client_auth == ClientAuth::Trust {
        problems.push("auth_user needs client_auth = \"scram-sha-256\" or \"md5\": maitred logs in to the server as each looked-up user with what the client's password exchange reveals".to_owned());
    }
    let listed = pool.users.iter().find(|u| u.name == auth_user);
    let has_password = match listed {
        Some(u) => u
            .password
            .as_ref()
            .is_some_and(|p| !p.is_empty() && p.password_kind() == PasswordKind::Plaintext),
        None => pool.upstream.user == auth_user && pool.upstream.password.is_some(),
    };
    if !has_password {
        problems.push(format!(
            "auth_user \"{auth_user}\" needs a plaintext password: use the upstream URL's user (with its password) or list it in [[pools.users]] with a plaintext password"
        ));
    }
    problems
}

/// `database = "*"` and `max_databases`: PostgreSQL and MySQL only (MongoDB clients name
/// the database in each command); PostgreSQL not in a fleet (one budget for pools created
/// on demand is not supported).
fn any_database_problems(pool: &PoolConfig) -> Vec<String> {
    let mut problems = Vec::new();
    if !pool.any_database() {
        if pool.max_databases.is_some() {
            problems.push("max_databases needs database = \"*\"".to_owned());
        }
        return problems;
    }
    if pool.upstream.protocol == crate::upstream::Protocol::Mongodb {
        problems.push("database = \"*\" is not needed for MongoDB pools: clients name the database in each command, and every database of the server is served already".to_owned());
    }
    if pool.max_databases == Some(0) {
        problems.push("max_databases must be at least 1".to_owned());
    }
    // MySQL creates no pools per schema: its `*` pool is one pool, in a fleet or not.
    if pool.fleet.is_some() && pool.upstream.protocol == crate::upstream::Protocol::Postgres {
        problems.push("fleet cannot be used with database = \"*\": the pools created for each database would need one budget between them, which fleets do not support yet; give each database its own pool with fleet instead".to_owned());
    }
    problems
}

/// `server_user` / `server_password` of `[[pools.users]]`: MongoDB only, both or neither.
fn server_login_problems(pool: &PoolConfig) -> Vec<String> {
    let mut problems = Vec::new();
    for user in &pool.users {
        let label = format!("user \"{}\"", user.name);
        match (&user.server_user, &user.server_password) {
            (None, None) => continue,
            (Some(_), None) => problems.push(format!("{label}: server_user needs server_password")),
            (None, Some(_)) => problems.push(format!("{label}: server_password needs server_user")),
            (Some(u), Some(_)) if u.is_empty() => {
                problems.push(format!("{label}: server_user must not be empty"))
            }
            (Some(_), Some(_)) => {}
        }
        if pool.upstream.protocol != crate::upstream::Protocol::Mongodb {
            problems.push(format!(
                "{label}: server_user and server_password are only supported for MongoDB pools"
            ));
        }
    }
    problems
}

/// `[[admin.users]]`: console users log in with SCRAM-SHA-256, so each needs a plaintext
/// password or a SCRAM secret.
fn validate_admin_users(users: &[crate::model::UserConfig], problems: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    for (index, user) in users.iter().enumerate() {
        if user.name.is_empty() {
            problems.push(format!("admin.users[{index}]: name must not be empty"));
            continue;
        }
        if !seen.insert(user.name.as_str()) {
            problems.push(format!(
                "admin user \"{}\" is listed more than once",
                user.name
            ));
        }
        let label = format!("admin user \"{}\"", user.name);
        if user.server_user.is_some() || user.server_password.is_some() {
            problems.push(format!(
                "{label}: server_user and server_password have no meaning for admin users"
            ));
        }
        match user.password.as_ref().filter(|p| !p.is_empty()) {
            None => problems.push(format!(
                "{label} has no password; the admin console always asks for one (SCRAM-SHA-256)"
            )),
            Some(p) => match p.password_kind() {
                PasswordKind::Md5Hash => problems.push(format!(
                    "{label}: password is an md5 hash, but the admin console uses SCRAM-SHA-256; give the plaintext password or a SCRAM secret"
                )),
                PasswordKind::MalformedScramSecret => problems.push(format!(
                    "{label}: password starts with SCRAM-SHA-256$ but is not a valid SCRAM secret"
                )),
                _ => {}
            },
        }
    }
}
