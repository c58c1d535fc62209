//! What the admin console needs from the configuration: who may log in, and the rows of
//! SHOW CONFIG (never a password or token; upstream URLs redacted); and the admin HTTP
//! endpoint's detail token. Set at start and after each reload.

use maitred_admin::console::ConfigEntry;
use maitred_admin::Admin;
use maitred_config::model::{Config, PoolConfig};

/// Gives the console its users and SHOW CONFIG rows from `config`.
pub(super) fn configure(admin: &Admin, config: &Config) {
    let users = config
        .admin
        .iter()
        .flat_map(|a| &a.users)
        .filter_map(|u| {
            u.password
                .as_ref()
                .map(|pw| (u.name.clone(), pw.expose().to_owned()))
        })
        .collect();
    admin.console().set_users(users);
    admin.console().set_config(entries(config));
    // The HTTP endpoint's detail surface: loopback only, or with this bearer token too.
    admin.detail_token().set(
        config
            .admin
            .as_ref()
            .and_then(|a| a.detail_token.as_ref())
            .map(|t| t.expose().to_owned()),
    );
}

/// The rows of SHOW CONFIG: daemon-wide keys, then each pool's as `pools.<name>.<key>`.
fn entries(config: &Config) -> Vec<ConfigEntry> {
    let defaults = maitred_config::model::RuntimeConfig::default();
    let log_defaults = maitred_config::model::LogConfig::default();
    let mut rows = vec![
        row(
            "admin.listen",
            config
                .admin
                .as_ref()
                .map(|a| a.listen.to_string())
                .unwrap_or_default(),
            String::new(),
            false,
        ),
        row(
            "admin.users",
            config
                .admin
                .iter()
                .flat_map(|a| &a.users)
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            String::new(),
            true,
        ),
        row(
            "admin.detail_token",
            // Whether one is set, never the token.
            if config
                .admin
                .as_ref()
                .is_some_and(|a| a.detail_token.is_some())
            {
                "set".to_owned()
            } else {
                String::new()
            },
            String::new(),
            true,
        ),
        row(
            "runtime.workers",
            config.runtime.workers.to_string(),
            defaults.workers.to_string(),
            false,
        ),
        row(
            "runtime.shutdown_timeout",
            duration(config.runtime.shutdown_timeout),
            duration(defaults.shutdown_timeout),
            true,
        ),
        row(
            "log.format",
            config.log.format.to_string(),
            log_defaults.format.to_string(),
            false,
        ),
        row(
            "log.level",
            config.log.level.clone(),
            log_defaults.level,
            false,
        ),
    ];
    for p in &config.pools {
        rows.extend(pool_entries(p));
    }
    rows
}

fn pool_entries(p: &PoolConfig) -> Vec<ConfigEntry> {
    let d = PoolConfig::new(p.name.clone(), p.listen, p.upstream.clone());
    let key = |k: &str| format!("pools.{}.{k}", p.name);
    // Changeable: what a reload applies to a running pool (bounds and timeouts); the
    // address, upstream and mode need the pool replaced.
    vec![
        row(&key("listen"), p.listen.to_string(), String::new(), false),
        row(
            &key("upstream"),
            p.upstream.redacted(),
            String::new(),
            false,
        ),
        row(
            &key("database"),
            p.client_database().to_owned(),
            d.client_database().to_owned(),
            false,
        ),
        row(
            &key("max_databases"),
            p.max_databases().to_string(),
            d.max_databases().to_string(),
            true,
        ),
        row(&key("mode"), p.mode.to_string(), d.mode.to_string(), false),
        row(&key("size"), p.size.to_string(), d.size.to_string(), true),
        row(
            &key("min_idle"),
            p.min_idle.to_string(),
            d.min_idle.to_string(),
            true,
        ),
        row(
            &key("queue_timeout"),
            duration(p.queue_timeout),
            duration(d.queue_timeout),
            true,
        ),
        row(
            &key("max_waiting"),
            p.max_waiting.to_string(),
            d.max_waiting.to_string(),
            true,
        ),
        row(
            &key("max_pinned"),
            p.max_pinned().to_string(),
            d.max_pinned().to_string(),
            false,
        ),
        row(
            &key("send_ahead"),
            p.send_ahead.to_string(),
            d.send_ahead.to_string(),
            true,
        ),
        row(
            &key("idle_timeout"),
            duration(p.idle_timeout),
            duration(d.idle_timeout),
            true,
        ),
        row(
            &key("max_lifetime"),
            duration(p.max_lifetime),
            duration(d.max_lifetime),
            true,
        ),
        row(
            &key("server_connect_timeout"),
            duration(p.server_connect_timeout),
            duration(d.server_connect_timeout),
            true,
        ),
        row(
            &key("max_clients"),
            p.max_clients.to_string(),
            d.max_clients.to_string(),
            false,
        ),
        row(
            &key("client_auth"),
            p.client_auth.to_string(),
            d.client_auth.to_string(),
            false,
        ),
        row(
            &key("users"),
            p.users
                .iter()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            String::new(),
            true,
        ),
    ]
}

fn row(key: &str, value: String, default: String, changeable: bool) -> ConfigEntry {
    ConfigEntry {
        key: key.to_owned(),
        value,
        default,
        changeable,
    }
}

fn duration(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_config_rows_hide_secrets() {
        let config = maitred_config::parse_str_with_env(
            r#"
            [admin]
            listen = "127.0.0.1:9930"
            users = [{ name = "ops", password = "console-secret" }]
            detail_token = "detail-token-secret-0123"
            [[pools]]
            name = "app"
            listen = "127.0.0.1:6432"
            upstream = "postgres://app:upstream-secret@db:5432/app"
            size = 7
            users = [{ name = "app", password = "client-secret" }]
            "#,
            std::iter::empty::<(&str, &str)>(),
        )
        .expect("config");
        let admin = Admin::new();
        configure(&admin, &config);
        assert_eq!(
            admin.console().password_of("ops").as_deref(),
            Some("console-secret")
        );
        let rows = entries(&config);
        let all = format!("{rows:?}");
        for secret in [
            "console-secret",
            "upstream-secret",
            "client-secret",
            "detail-token-secret",
        ] {
            assert!(!all.contains(secret), "{secret} shown: {all}");
        }
        let size = rows
            .iter()
            .find(|r| r.key == "pools.app.size")
            .expect("size");
        assert_eq!((size.value.as_str(), size.default.as_str()), ("7", "10"));
        assert!(size.changeable);
        let users = rows.iter().find(|r| r.key == "admin.users").expect("users");
        assert_eq!(users.value, "ops");
        let token = rows
            .iter()
            .find(|r| r.key == "admin.detail_token")
            .expect("detail_token");
        assert_eq!(token.value, "set");
        assert!(admin.detail_token().is_set());
    }
}
