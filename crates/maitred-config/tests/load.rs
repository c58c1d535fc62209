//! Loading: parsing, defaults, unknown keys, `${VAR}` expansion and
//! environment overrides, and that secrets never leak.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use maitred_config::{
    parse_str_with_env, ClientAuth, Config, ConfigError, LogFormat, PoolMode, Protocol,
};

const NO_ENV: [(&str, &str); 0] = [];

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

const MINIMAL: &str = r#"
[[pools]]
name = "app"
listen = "127.0.0.1:6432"
upstream = "postgres://app:pw@db/app"
  [[pools.users]]
  name = "app"
  password = "pw"
"#;

#[test]
fn minimal_file_gets_every_default() {
    let config = parse_str_with_env(MINIMAL, NO_ENV).unwrap();
    config.validate().unwrap();
    assert_eq!(config.admin, None);
    assert_eq!(config.runtime.workers, 0);
    assert_eq!(config.log.format, LogFormat::Human);
    assert_eq!(config.log.level, "info");
    let pool = &config.pools[0];
    assert_eq!(pool.name, "app");
    assert_eq!(pool.listen, addr("127.0.0.1:6432"));
    assert_eq!(pool.upstream.protocol, Protocol::Postgres);
    assert_eq!(pool.upstream.port, 5432);
    assert_eq!(pool.database, None);
    assert_eq!(pool.client_database(), "app");
    assert_eq!(pool.mode, PoolMode::Transaction);
    assert_eq!(pool.size, 10);
    assert_eq!(pool.min_idle, 0);
    assert_eq!(pool.queue_timeout, Duration::from_secs(5));
    assert_eq!(pool.max_waiting, 10_000);
    assert_eq!(pool.idle_timeout, Duration::from_secs(600));
    assert_eq!(pool.max_lifetime, Duration::from_secs(3600));
    assert_eq!(pool.server_connect_timeout, Duration::from_secs(5));
    assert_eq!(pool.client_auth, ClientAuth::ScramSha256);
    assert_eq!(pool.users.len(), 1);
    assert_eq!(pool.users[0].name, "app");
    assert_eq!(
        pool.users[0].password.as_ref().map(|p| p.expose()),
        Some("pw")
    );
}

#[test]
fn every_key_parses() {
    let text = r#"
[admin]
listen = "127.0.0.1:9930"
[runtime]
workers = 3
[log]
format = "json"
level = "maitred=debug,info"
[[pools]]
name = "app"
listen = "0.0.0.0:6432"
upstream = "postgresql://svc:pw@10.0.0.5:6000/appdb?sslmode=require"
database = "front"
mode = "session"
size = 20
min_idle = 2
queue_timeout = "250ms"
max_waiting = 5
idle_timeout = "1m 30s"
max_lifetime = "2h"
server_connect_timeout = "3s"
client_auth = "md5"
  [[pools.users]]
  name = "a"
  password = "md5d41d8cd98f00b204e9800998ecf8427e"
  [[pools.users]]
  name = "b"
  password = "plain"
"#;
    let config = parse_str_with_env(text, NO_ENV).unwrap();
    config.validate().unwrap();
    assert_eq!(
        config.admin.as_ref().map(|a| a.listen),
        Some(addr("127.0.0.1:9930"))
    );
    assert_eq!(config.runtime.workers, 3);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.level, "maitred=debug,info");
    let pool = &config.pools[0];
    assert_eq!(pool.client_database(), "front");
    assert_eq!(pool.upstream.database, "appdb");
    assert_eq!(pool.mode, PoolMode::Session);
    assert_eq!((pool.size, pool.min_idle, pool.max_waiting), (20, 2, 5));
    assert_eq!(pool.queue_timeout, Duration::from_millis(250));
    assert_eq!(pool.idle_timeout, Duration::from_secs(90));
    assert_eq!(pool.max_lifetime, Duration::from_secs(7200));
    assert_eq!(pool.server_connect_timeout, Duration::from_secs(3));
    assert_eq!(pool.client_auth, ClientAuth::Md5);
    assert_eq!(pool.users.len(), 2);
}

fn parse_error(text: &str) -> String {
    parse_str_with_env(text, NO_ENV).unwrap_err().to_string()
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let message = parse_error(&format!("{MINIMAL}\n[log]\nlevl = \"debug\"\n"));
    assert!(message.contains("levl"), "{message}");
    let message =
        parse_error(&MINIMAL.replace("name = \"app\"\nlisten", "name = \"app\"\nsise = 3\nlisten"));
    assert!(message.contains("sise"), "{message}");
    let message = parse_error(&format!("{MINIMAL}  colour = \"red\"\n"));
    assert!(message.contains("colour"), "{message}");
    let message = parse_error(&format!("[extra]\nx = 1\n{MINIMAL}"));
    assert!(message.contains("extra"), "{message}");
}

#[test]
fn bad_values_are_errors() {
    let message =
        parse_error(&MINIMAL.replace("listen = \"127.0.0.1:6432\"", "listen = \"localhost\""));
    assert!(message.contains("address"), "{message}");
    let message = parse_error(&format!("{MINIMAL}\n[log]\nformat = \"xml\"\n"));
    assert!(message.contains("xml"), "{message}");
    let message = parse_error(&MINIMAL.replace("postgres://", "redis://"));
    assert!(
        message.contains("redis") && message.contains("postgres"),
        "{message}"
    );
}

#[test]
fn variables_are_expanded_from_the_given_environment() {
    let text = r#"
[runtime]
workers = ${WORKERS}
[[pools]]
name = "app"
listen = "127.0.0.1:6432"
upstream = "postgres://app:${PW_URL}@db/app"
  [[pools.users]]
  name = "app"
  password = "${PW}"
  [[pools.users]]
  name = "cost"
  password = "$$5-and-${PW}"
"#;
    let config = parse_str_with_env(
        text,
        [
            ("WORKERS", "4"),
            ("PW_URL", "p%40ss"),
            ("PW", "p@ss\"quoted\\"),
        ],
    )
    .unwrap();
    assert_eq!(config.runtime.workers, 4);
    let pool = &config.pools[0];
    assert_eq!(
        pool.upstream.password.as_ref().map(|p| p.expose()),
        Some("p@ss")
    );
    assert_eq!(
        pool.users[0].password.as_ref().map(|p| p.expose()),
        Some("p@ss\"quoted\\")
    );
    assert_eq!(
        pool.users[1].password.as_ref().map(|p| p.expose()),
        Some("$5-and-p@ss\"quoted\\")
    );
}

#[test]
fn missing_variables_are_named_and_values_never_shown() {
    let text = "# ${IN_A_COMMENT}\n[[pools]]\nname = \"${NAME}\"\nlisten = \"${LISTEN}\"\nupstream = \"postgres://app:${SECRET}@db/app\"\n";
    let error = parse_str_with_env(text, [("SECRET", "hunter2-secret")]).unwrap_err();
    let ConfigError::Expand(problems) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains("NAME") && problems[0].contains(":3:"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("LISTEN") && problems[1].contains(":4:"),
        "{problems:?}"
    );
    assert!(!format!("{error} {error:?}").contains("hunter2"));
    assert!(!format!("{error}").contains("IN_A_COMMENT"));
}

#[test]
fn errors_after_expansion_redact_the_values() {
    // The secret lands in a key of the wrong type and on a line with a
    // syntax error: neither message may show it.
    let wrong_type = format!("{MINIMAL}\n[runtime]\nworkers = \"${{SECRET}}\"\n");
    let syntax = format!("{MINIMAL}  password2 = \"${{SECRET}}\" oops\n");
    let bad_mode = MINIMAL.replace("listen =", "mode = \"${SECRET}\"\nlisten =");
    for text in [wrong_type, syntax, bad_mode] {
        let error = parse_str_with_env(&text, [("SECRET", "hunter2-secret")]).unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

#[test]
fn syntax_errors_give_line_and_column() {
    let error = parse_str_with_env("[log]\nlevel = \"info\nformat = 3\n", NO_ENV).unwrap_err();
    let ConfigError::Toml { line, .. } = error else {
        panic!("{error:?}");
    };
    assert_eq!(line, 2);
}

#[test]
fn environment_overrides_sections() {
    let config = parse_str_with_env(
        MINIMAL,
        [
            ("MAITRED_LOG__LEVEL", "debug"),
            ("MAITRED_LOG__FORMAT", "json"),
            ("MAITRED_RUNTIME__WORKERS", "6"),
            ("MAITRED_ADMIN__LISTEN", "127.0.0.1:9999"),
            // Command-line variables (no `__`) are not overrides.
            ("MAITRED_LISTEN", "127.0.0.1:1"),
            ("MAITRED_LOG_FORMAT", "human"),
            ("MAITRED_CONFIG", "/nowhere.toml"),
        ],
    )
    .unwrap();
    assert_eq!(config.log.level, "debug");
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.runtime.workers, 6);
    assert_eq!(config.admin.map(|a| a.listen), Some(addr("127.0.0.1:9999")));
    assert_eq!(config.pools[0].listen, addr("127.0.0.1:6432"));
}

#[test]
fn environment_overrides_win_over_the_file() {
    let text = format!("[log]\nlevel = \"warn\"\n{MINIMAL}");
    let config = parse_str_with_env(&text, [("MAITRED_LOG__LEVEL", "trace")]).unwrap();
    assert_eq!(config.log.level, "trace");
}

#[test]
fn bad_environment_overrides_are_named() {
    for (name, expect) in [
        ("MAITRED_POOLS__0__SIZE", "pools"),
        ("MAITRED_LOGS__LEVEL", "logs"),
        ("MAITRED_LOG__LEVL", "levl"),
    ] {
        let error = parse_str_with_env(MINIMAL, [(name, "x")]).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(expect), "{name}: {message}");
    }
}

#[test]
fn debug_of_a_whole_config_shows_no_secret() {
    let text = r#"
[[pools]]
name = "app"
listen = "127.0.0.1:6432"
upstream = "postgres://app:url-secret-1@db/app"
  [[pools.users]]
  name = "app"
  password = "user-secret-2"
"#;
    let config: Config = parse_str_with_env(text, NO_ENV).unwrap();
    let debug = format!("{config:?} {config:#?}");
    assert!(!debug.contains("url-secret-1"), "{debug}");
    assert!(!debug.contains("user-secret-2"), "{debug}");
    assert!(debug.contains("***"));
    let serialized = toml::to_string(&config).unwrap();
    assert!(!serialized.contains("secret"), "{serialized}");
    let summary = config.summary().join("\n");
    assert!(!summary.contains("secret"), "{summary}");
}

#[test]
fn missing_file_is_a_read_error_naming_it() {
    let error = maitred_config::load_file("/nonexistent/maitred.toml").unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }));
    assert!(error.to_string().contains("/nonexistent/maitred.toml"));
}

#[test]
fn process_environment_is_used_by_load_str() {
    // The only test in this binary that touches the process environment;
    // the others pass their variables explicitly.
    std::env::set_var("MAITRED_LOG__LEVEL", "warn");
    std::env::set_var("MAITRED_TEST_LOAD_PASSWORD", "from-process-env");
    let text = MINIMAL.replace(
        "password = \"pw\"",
        "password = \"${MAITRED_TEST_LOAD_PASSWORD}\"",
    );
    let loaded = maitred_config::load_str(&text);
    std::env::remove_var("MAITRED_LOG__LEVEL");
    std::env::remove_var("MAITRED_TEST_LOAD_PASSWORD");
    let config = loaded.unwrap();
    assert_eq!(config.log.level, "warn");
    assert_eq!(
        config.pools[0].users[0]
            .password
            .as_ref()
            .map(|p| p.expose()),
        Some("from-process-env")
    );
}

#[test]
fn one_line_mysql_url_without_a_database() {
    let upstream = maitred_config::UpstreamUrl::parse("mysql://app:pw@db:3306").unwrap();
    let config = maitred_config::OneLine::new(addr("127.0.0.1:6033"), upstream).into_config();
    config.validate().unwrap();
    let pool = &config.pools[0];
    assert_eq!(pool.name, "mysql");
    assert_eq!(pool.client_database(), "");
    assert_eq!(pool.upstream.database, "");
}

#[test]
fn one_line_config_logs_in_as_the_upstream_user() {
    let upstream = maitred_config::UpstreamUrl::parse("postgres://app:pw@db/appdb").unwrap();
    let mut one = maitred_config::OneLine::new(addr("127.0.0.1:6432"), upstream);
    one.size = 4;
    let config = one.into_config();
    config.validate().unwrap();
    let pool = &config.pools[0];
    assert_eq!(pool.name, "appdb");
    assert_eq!(pool.client_database(), "appdb");
    assert_eq!(pool.size, 4);
    assert_eq!(pool.users.len(), 1);
    assert_eq!(pool.users[0].name, "app");
    assert_eq!(
        pool.users[0].password.as_ref().map(|p| p.expose()),
        Some("pw")
    );
}

#[test]
fn admin_detail_token_from_a_variable_or_an_override() {
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:9930\"\ndetail_token = \"${{ADMIN_TOKEN}}\"\n{MINIMAL}"
    );
    let config = parse_str_with_env(&text, [("ADMIN_TOKEN", "token-from-a-secret-0123")]).unwrap();
    let token = config.admin.and_then(|a| a.detail_token);
    assert_eq!(
        token.as_ref().map(|t| t.expose()),
        Some("token-from-a-secret-0123")
    );
    assert_eq!(format!("{token:?}"), "Some(***)");
    let text = format!("[admin]\nlisten = \"127.0.0.1:9930\"\n{MINIMAL}");
    let config = parse_str_with_env(
        &text,
        [("MAITRED_ADMIN__DETAIL_TOKEN", "token-from-the-environment")],
    )
    .unwrap();
    assert_eq!(
        config
            .admin
            .and_then(|a| a.detail_token)
            .as_ref()
            .map(|t| t.expose().to_owned()),
        Some("token-from-the-environment".to_owned())
    );
}
