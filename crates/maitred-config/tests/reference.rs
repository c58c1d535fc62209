//! The user-facing reference (`config/maitred.toml`), the minimal example
//! (`config/one-pool.toml`) and `docs/configuration.md` must not drift from
//! the model: both examples load and validate, the reference sets every key
//! (at its default where it has one), and the docs name every key.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use maitred_config::{
    parse_str_with_env, AdminConfig, ClientAuth, Config, LogConfig, LogFormat, PoolConfig,
    PoolMode, RuntimeConfig, Secret, UpstreamUrl, UserConfig,
};

const REFERENCE: &str = include_str!("../../../config/maitred.toml");
const ONE_POOL: &str = include_str!("../../../config/one-pool.toml");
const DOCS: &str = include_str!("../../../docs/configuration.md");

const ENV: [(&str, &str); 1] = [("APP_DB_PASSWORD", "reference-password")];

/// A configuration with every key present. It is a struct literal on
/// purpose: a new field fails to compile here until it is added, and then
/// the tests below ask for it in the reference file and the docs.
fn fully_populated() -> Config {
    let upstream = UpstreamUrl::parse("postgres://app:pw@db:5432/app?sslmode=disable").unwrap();
    Config {
        admin: Some(AdminConfig {
            listen: "127.0.0.1:9930".parse().unwrap(),
            users: vec![UserConfig {
                name: "admin".to_owned(),
                password: Some(Secret::new("admin-pw".to_owned())),
                server_user: None,
                server_password: None,
            }],
            detail_token: Some(Secret::new("a-long-enough-detail-token".to_owned())),
        }),
        runtime: RuntimeConfig {
            workers: 2,
            shutdown_timeout: Duration::from_secs(9),
        },
        log: LogConfig {
            format: LogFormat::Json,
            level: "debug".to_owned(),
        },
        pools: vec![
            PoolConfig {
                name: "app".to_owned(),
                listen: "127.0.0.1:6432".parse().unwrap(),
                upstream,
                database: Some("app".to_owned()),
                max_databases: None,
                mode: PoolMode::Session,
                size: 3,
                min_idle: 1,
                queue_timeout: Duration::from_secs(1),
                max_waiting: 7,
                prepared_statements: 50,
                max_pinned: Some(3),
                send_ahead: false,
                tls_cert: Some("/etc/maitred/server.crt".into()),
                tls_key: Some("/etc/maitred/server.key".into()),
                tls_required: true,
                idle_timeout: Duration::from_secs(2),
                max_lifetime: Duration::from_secs(3),
                server_connect_timeout: Duration::from_secs(4),
                client_login_timeout: Duration::from_secs(5),
                idle_transaction_timeout: Duration::from_secs(6),
                client_idle_timeout: Duration::from_secs(7),
                query_timeout: Duration::from_secs(8),
                max_clients: 100,
                max_message_size: Some(1 << 20),
                client_auth: ClientAuth::Md5,
                users: vec![UserConfig {
                    name: "app".to_owned(),
                    password: Some(Secret::new("pw")),
                    server_user: None,
                    server_password: None,
                }],
                auth_user: Some("app".to_owned()),
                auth_query: Some("SELECT usename, passwd FROM maitred.user_secret($1)".to_owned()),
                auth_cache_ttl: Duration::from_secs(10),
                fleet: Some("web".to_owned()),
                budget: Some(maitred_config::model::Budget::Count(80)),
                fleet_idle_release: Duration::from_secs(10),
            },
            mongo_pool_with_server_logins(),
            any_database_pool(),
        ],
    }
}

/// The keys only a MongoDB pool may set: a user with its own server login.
fn mongo_pool_with_server_logins() -> PoolConfig {
    let upstream = UpstreamUrl::parse("mongodb://app:pw@db:27017/app?authSource=admin").unwrap();
    let mut pool = PoolConfig::new("mongo", "127.0.0.1:27100".parse().unwrap(), upstream);
    pool.users = vec![UserConfig {
        name: "reporting".to_owned(),
        password: Some(Secret::new("client-pw")),
        server_user: Some("reporting_ro".to_owned()),
        server_password: Some(Secret::new("server-pw")),
    }];
    pool
}

/// The keys only a `database = "*"` pool may set.
fn any_database_pool() -> PoolConfig {
    let upstream = UpstreamUrl::parse("postgres://app:pw@db:5432/app").unwrap();
    let mut pool = PoolConfig::new("any", "127.0.0.1:6433".parse().unwrap(), upstream);
    pool.database = Some("*".to_owned());
    pool.max_databases = Some(20);
    pool.client_auth = ClientAuth::Trust;
    pool
}

/// Every dotted key path of a TOML value; arrays of tables add no index
/// (`pools.users.name`).
fn key_paths(value: &toml::Value) -> BTreeSet<String> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut BTreeSet<String>) {
        match value {
            toml::Value::Table(table) => {
                for (key, child) in table {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    out.insert(path.clone());
                    walk(&path, child, out);
                }
            }
            toml::Value::Array(items) => {
                for item in items {
                    walk(prefix, item, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk("", value, &mut out);
    out
}

fn model_key_paths() -> BTreeSet<String> {
    let config = fully_populated();
    config.validate().unwrap();
    key_paths(&toml::Value::try_from(&config).unwrap())
}

#[test]
fn the_model_has_the_expected_shape() {
    // Guards the helpers above: a broken walk would make the other tests
    // pass vacuously.
    let paths = model_key_paths();
    for path in [
        "admin.listen",
        "log.level",
        "pools.queue_timeout",
        "pools.users.password",
    ] {
        assert!(paths.contains(path), "{path} missing from {paths:?}");
    }
    assert_eq!(paths.len(), 50, "{paths:#?}");
}

#[test]
fn reference_file_loads_and_validates() {
    let config = parse_str_with_env(REFERENCE, ENV).unwrap();
    config.validate().unwrap();
    let pool = &config.pools[0];
    assert_eq!(
        pool.users[0].password.as_ref().map(Secret::expose),
        Some("reference-password")
    );
    assert_eq!(
        pool.upstream.password.as_ref().map(Secret::expose),
        Some("reference-password")
    );
}

#[test]
fn reference_file_sets_every_key() {
    let expanded = REFERENCE.replace("${APP_DB_PASSWORD}", "x");
    let reference: toml::Value = toml::from_str(&expanded).unwrap();
    let reference_paths = key_paths(&reference);
    // Keys without a default (file paths) are shown commented out: `# key = ...`.
    let commented = |path: &str| {
        let key = path.rsplit('.').next().unwrap_or(path);
        REFERENCE
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("# {key} = ")))
    };
    let missing: Vec<_> = model_key_paths()
        .into_iter()
        .filter(|path| !reference_paths.contains(path) && !commented(path))
        .collect();
    assert!(missing.is_empty(), "config/maitred.toml lacks {missing:?}");
}

#[test]
fn reference_file_shows_the_defaults() {
    let config = parse_str_with_env(REFERENCE, ENV).unwrap();
    let pool = &config.pools[0];
    let defaults = PoolConfig::new(pool.name.clone(), pool.listen, pool.upstream.clone());
    let mut expected = defaults.clone();
    expected.database = pool.database.clone();
    expected.users = pool.users.clone();
    // max_pinned's default depends on size; the reference writes out the computed value.
    assert_eq!(pool.max_pinned(), defaults.max_pinned());
    expected.max_pinned = pool.max_pinned;
    assert_eq!(*pool, expected);
    assert_eq!(config.runtime, RuntimeConfig::default());
    assert_eq!(config.log, LogConfig::default());
}

#[test]
fn one_pool_example_loads_and_validates() {
    let config = parse_str_with_env(ONE_POOL, ENV).unwrap();
    config.validate().unwrap();
    assert_eq!(config.pools.len(), 1);
}

#[test]
fn docs_name_every_key() {
    let missing: Vec<_> = model_key_paths()
        .into_iter()
        .filter(|path| !DOCS.contains(&format!("`{path}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks {missing:?}"
    );
}

#[test]
fn docs_name_every_cli_environment_variable() {
    for name in [
        "MAITRED_LISTEN",
        "MAITRED_UPSTREAM",
        "MAITRED_POOL_SIZE",
        "MAITRED_POOL_MODE",
        "MAITRED_QUEUE_TIMEOUT",
        "MAITRED_MAX_WAITING",
        "MAITRED_ADMIN",
        "MAITRED_CONFIG",
        "MAITRED_LOG_FORMAT",
        "MAITRED_WORKERS",
        "MAITRED_FLEET",
        "MAITRED_BUDGET",
        "MAITRED_ANY_DATABASE",
        "MAITRED_MAX_DATABASES",
    ] {
        assert!(DOCS.contains(name), "docs/configuration.md lacks {name}");
    }
}
