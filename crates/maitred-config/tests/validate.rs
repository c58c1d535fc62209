//! `Config::validate`: every problem is reported, one message each.

#![allow(clippy::unwrap_used)]

use maitred_config::{parse_str_with_env, Config};

const NO_ENV: [(&str, &str); 0] = [];

fn problems(text: &str) -> Vec<String> {
    let config: Config = parse_str_with_env(text, NO_ENV).unwrap();
    config.validate().unwrap_err()
}

fn has(problems: &[String], words: &[&str]) -> bool {
    problems
        .iter()
        .any(|p| words.iter().all(|word| p.contains(word)))
}

fn pool(name: &str, listen: &str, extra: &str) -> String {
    format!(
        "[[pools]]\nname = \"{name}\"\nlisten = \"{listen}\"\nupstream = \"postgres://app:pw@db/app\"\n{extra}\n  [[pools.users]]\n  name = \"app\"\n  password = \"pw\"\n"
    )
}

#[test]
fn a_good_config_is_valid() {
    let text = pool("a", "127.0.0.1:6432", "");
    let config = parse_str_with_env(&text, NO_ENV).unwrap();
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn no_pools() {
    let found = problems("[log]\nlevel = \"info\"\n");
    assert_eq!(found.len(), 1);
    assert!(has(&found, &["no pools"]));
}

#[test]
fn every_numeric_and_duration_problem_at_once() {
    let text = pool(
        "a",
        "127.0.0.1:6432",
        "size = 0\nmin_idle = 3\nmax_waiting = 0\nqueue_timeout = \"0s\"\nidle_timeout = \"0s\"\nmax_lifetime = \"0s\"\nserver_connect_timeout = \"0ms\"",
    );
    let found = problems(&format!("[log]\nlevel = \" \"\n{text}"));
    assert!(
        has(&found, &["\"a\"", "size must be at least 1"]),
        "{found:#?}"
    );
    assert!(has(&found, &["min_idle (3)", "size (0)"]), "{found:#?}");
    assert!(has(&found, &["max_waiting"]), "{found:#?}");
    for key in [
        "queue_timeout",
        "idle_timeout",
        "max_lifetime",
        "server_connect_timeout",
    ] {
        assert!(
            has(&found, &[key, "greater than zero"]),
            "{key}: {found:#?}"
        );
    }
    assert!(has(&found, &["log.level"]), "{found:#?}");
    assert_eq!(found.len(), 8, "{found:#?}");
}

#[test]
fn duplicate_pool_names() {
    let text = format!(
        "{}{}",
        pool("a", "127.0.0.1:6432", ""),
        pool("a", "127.0.0.1:6433", "")
    );
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(has(
        &found,
        &["\"a\"", "more than once", "pools[0]", "pools[1]"]
    ));
}

#[test]
fn shared_listen_address_needs_different_databases() {
    let same = format!(
        "{}{}",
        pool("a", "127.0.0.1:6432", ""),
        pool("b", "127.0.0.1:6432", "")
    );
    let found = problems(&same);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(has(
        &found,
        &["\"a\"", "\"b\"", "127.0.0.1:6432", "\"app\""]
    ));

    let routed = format!(
        "{}{}",
        pool("a", "127.0.0.1:6432", ""),
        pool("b", "127.0.0.1:6432", "database = \"other\"")
    );
    let config = parse_str_with_env(&routed, NO_ENV).unwrap();
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn overlapping_wildcard_addresses_and_admin() {
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:6432\"\n{}{}",
        pool("a", "0.0.0.0:6432", ""),
        pool("b", "127.0.0.1:6432", "database = \"other\"")
    );
    let found = problems(&text);
    assert!(
        has(&found, &["0.0.0.0:6432", "127.0.0.1:6432", "overlap"]),
        "{found:#?}"
    );
    assert!(has(&found, &["admin.listen", "\"b\""]), "{found:#?}");
    assert!(has(&found, &["admin.listen", "\"a\""]), "{found:#?}");
}

#[test]
fn client_auth_needs_users_with_passwords() {
    let no_users = "[[pools]]\nname = \"a\"\nlisten = \"127.0.0.1:6432\"\nupstream = \"postgres://app@db/app\"\nclient_auth = \"md5\"\n";
    assert!(has(&problems(no_users), &["\"md5\"", "[[pools.users]]"]));

    let no_password = format!("{no_users}  [[pools.users]]\n  name = \"bob\"\n");
    let found = problems(&no_password);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(has(&found, &["\"bob\"", "no password"]));

    let trusted = no_password.replace("\"md5\"", "\"trust\"");
    let config = parse_str_with_env(&trusted, NO_ENV).unwrap();
    assert_eq!(config.validate(), Ok(()));
    let trusted_anyone = no_users.replace("\"md5\"", "\"trust\"");
    let config = parse_str_with_env(&trusted_anyone, NO_ENV).unwrap();
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn duplicate_and_empty_user_names() {
    let text = "[[pools]]\nname = \"a\"\nlisten = \"127.0.0.1:6432\"\nupstream = \"postgres://app@db/app\"\n  [[pools.users]]\n  name = \"bob\"\n  password = \"x\"\n  [[pools.users]]\n  name = \"bob\"\n  password = \"y\"\n  [[pools.users]]\n  name = \"\"\n  password = \"z\"\n";
    let found = problems(text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(has(&found, &["\"bob\"", "more than once"]));
    assert!(has(&found, &["users[2]", "name must not be empty"]));
}

#[test]
fn password_forms_must_suit_client_auth() {
    let md5_hash = "md5d41d8cd98f00b204e9800998ecf8427e";
    let scram = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy";
    let with = |auth: &str, password: &str| {
        format!("[[pools]]\nname = \"a\"\nlisten = \"127.0.0.1:6432\"\nupstream = \"postgres://app@db/app\"\nclient_auth = \"{auth}\"\n  [[pools.users]]\n  name = \"bob\"\n  password = \"{password}\"\n")
    };
    let valid = |text: &str| parse_str_with_env(text, NO_ENV).unwrap().validate();

    let found = problems(&with("scram-sha-256", md5_hash));
    assert!(
        has(&found, &["\"bob\"", "md5 hash", "scram-sha-256"]),
        "{found:#?}"
    );
    assert!(
        !found.iter().any(|p| p.contains(md5_hash)),
        "never print the hash"
    );

    let found = problems(&with("md5", scram));
    assert!(
        has(&found, &["\"bob\"", "SCRAM secret", "\"md5\""]),
        "{found:#?}"
    );

    let found = problems(&with("scram-sha-256", "SCRAM-SHA-256$4096:truncated"));
    assert!(has(&found, &["not a valid SCRAM secret"]), "{found:#?}");

    assert_eq!(valid(&with("scram-sha-256", scram)), Ok(()));
    assert_eq!(valid(&with("md5", md5_hash)), Ok(()));
    assert_eq!(valid(&with("md5", "plain")), Ok(()));
    assert_eq!(valid(&with("scram-sha-256", "plain")), Ok(()));
}

#[test]
fn scram_secret_iteration_counts_are_bounded() {
    let with = |iterations: &str| {
        format!("[[pools]]\nname = \"a\"\nlisten = \"127.0.0.1:6432\"\nupstream = \"postgres://app@db/app\"\nclient_auth = \"scram-sha-256\"\n  [[pools.users]]\n  name = \"bob\"\n  password = \"SCRAM-SHA-256${iterations}:c2FsdA==$c3RvcmVk:c2VydmVy\"\n")
    };
    for iterations in ["1", "4096", "1000000"] {
        let config = parse_str_with_env(&with(iterations), NO_ENV).unwrap();
        assert_eq!(config.validate(), Ok(()), "{iterations}");
    }
    for iterations in ["1000001", "4294967295", "99999999999"] {
        let found = problems(&with(iterations));
        assert!(
            has(
                &found,
                &["\"bob\"", "iteration count", iterations, "1000000"]
            ),
            "{iterations}: {found:#?}"
        );
        assert!(
            !found.iter().any(|p| p.contains("c3RvcmVk")),
            "never print the secret"
        );
    }
}

#[test]
fn empty_names() {
    let text = "[[pools]]\nname = \"\"\nlisten = \"127.0.0.1:6432\"\nupstream = \"postgres://app@db/app\"\ndatabase = \"\"\nclient_auth = \"trust\"\n";
    let found = problems(text);
    assert!(
        has(&found, &["pools[0]", "name must not be empty"]),
        "{found:#?}"
    );
    assert!(
        has(&found, &["pools[0]", "database must not be empty"]),
        "{found:#?}"
    );
}

#[test]
fn client_limits_problems() {
    let text = pool(
        "a",
        "127.0.0.1:6432",
        "client_login_timeout = \"0s\"\nmax_clients = 0\nmax_message_size = 100",
    );
    let found = problems(&text);
    assert!(
        has(&found, &["client_login_timeout", "greater than zero"]),
        "{found:#?}"
    );
    assert!(
        has(&found, &["max_clients must be at least 1"]),
        "{found:#?}"
    );
    assert!(
        has(&found, &["max_message_size (100)", "at least 1024"]),
        "{found:#?}"
    );
    assert_eq!(found.len(), 3, "{found:#?}");
}

#[test]
fn client_limits_zero_means_off_and_is_valid() {
    let text = pool(
        "a",
        "127.0.0.1:6432",
        "idle_transaction_timeout = \"0s\"\nclient_idle_timeout = \"0s\"\nquery_timeout = \"0s\"\nmax_message_size = 1024",
    );
    let config = parse_str_with_env(&text, NO_ENV).unwrap();
    assert_eq!(config.validate(), Ok(()));
    let pool = &config.pools[0];
    assert!(pool.query_timeout.is_zero());
    assert_eq!(pool.max_message_size(), 1024);
    assert_eq!(pool.max_clients, 10_000);
}

#[test]
fn auth_query_needs_auth_user_and_a_postgres_pool() {
    let no_users = |upstream: &str, extra: &str| {
        format!("[[pools]]\nname = \"a\"\nlisten = \"127.0.0.1:6432\"\nupstream = \"{upstream}\"\n{extra}\n")
    };
    // The upstream user as auth_user, no users at all: valid.
    let ok: Config = parse_str_with_env(
        &no_users("postgres://app:pw@db/app", "auth_user = \"app\""),
        NO_ENV,
    )
    .unwrap();
    assert_eq!(ok.validate(), Ok(()));
    assert_eq!(
        ok.pools[0].effective_auth_query(),
        Some("SELECT usename, passwd FROM pg_shadow WHERE usename=$1")
    );
    let found = problems(&no_users(
        "postgres://app:pw@db/app",
        "auth_query = \"SELECT 1\"",
    ));
    assert!(has(&found, &["auth_query needs auth_user"]), "{found:#?}");
    let found = problems(&no_users("mysql://app:pw@db/app", "auth_user = \"app\""));
    assert!(
        has(&found, &["only supported for PostgreSQL"]),
        "{found:#?}"
    );
    let found = problems(&no_users(
        "postgres://app:pw@db/app",
        "auth_user = \"app\"\nclient_auth = \"trust\"",
    ));
    assert!(has(&found, &["auth_user needs client_auth"]), "{found:#?}");
    let found = problems(&no_users(
        "postgres://app:pw@db/app",
        "auth_user = \"app\"\nauth_cache_ttl = \"0s\"",
    ));
    assert!(has(&found, &["auth_cache_ttl"]), "{found:#?}");
}

#[test]
fn auth_user_needs_a_plaintext_password() {
    // Neither the upstream user nor listed.
    let found = problems(&pool("a", "127.0.0.1:6432", "auth_user = \"lookup\""));
    assert!(
        has(&found, &["auth_user \"lookup\"", "plaintext password"]),
        "{found:#?}"
    );
    // Listed with a SCRAM secret: maitred could not log in with it.
    let text = "[[pools]]\nname = \"a\"\nlisten = \"127.0.0.1:6432\"\nupstream = \"postgres://app:pw@db/app\"\nauth_user = \"lookup\"\n  [[pools.users]]\n  name = \"lookup\"\n  password = \"SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\"\n";
    assert!(has(&problems(text), &["plaintext password"]));
    // Listed with a plaintext password: valid.
    let text = text.replace(
        "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
        "lookup-pw",
    );
    let config: Config = parse_str_with_env(&text, NO_ENV).unwrap();
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn admin_detail_token_must_be_long_and_never_shown() {
    let base = pool("a", "127.0.0.1:6432", "");
    let with = |token: &str| {
        format!("[admin]\nlisten = \"127.0.0.1:9930\"\ndetail_token = \"{token}\"\n{base}")
    };
    let found = problems(&with("short-tok"));
    assert!(has(&found, &["admin.detail_token", "16"]), "{found:#?}");
    assert!(!found.iter().any(|p| p.contains("short-tok")), "{found:#?}");
    let found = problems(&with(""));
    assert!(
        has(&found, &["admin.detail_token"]),
        "an empty ${{VAR}}: {found:#?}"
    );
    let found = problems(&with("a token with spaces in it"));
    assert!(
        has(&found, &["admin.detail_token", "whitespace"]),
        "{found:#?}"
    );
    let config = parse_str_with_env(&with("0123456789abcdef-long-enough"), NO_ENV).unwrap();
    assert_eq!(config.validate(), Ok(()));
    assert!(!format!("{config:?}").contains("0123456789abcdef"));
}

#[test]
fn fleet_needs_a_budget_and_works_for_every_protocol() {
    let fleet_pool = |upstream: &str, extra: &str| {
        format!(
            "[[pools]]\nname = \"a\"\nlisten = \"127.0.0.1:6432\"\nupstream = \"{upstream}\"\n{extra}\n\
             [[pools.users]]\nname = \"app\"\npassword = \"pw\"\n"
        )
    };
    for upstream in [
        "postgres://app:pw@db/app",
        "mysql://app:pw@db/app",
        "mongodb://app:pw@db/app",
    ] {
        let ok: Config = parse_str_with_env(
            &fleet_pool(upstream, "fleet = \"web\"\nbudget = 10"),
            NO_ENV,
        )
        .unwrap();
        assert_eq!(ok.validate(), Ok(()), "{upstream}");
        let auto: Config = parse_str_with_env(
            &fleet_pool(upstream, "fleet = \"web\"\nbudget = \"auto\""),
            NO_ENV,
        )
        .unwrap();
        assert_eq!(auto.validate(), Ok(()), "{upstream}");
        let found = problems(&fleet_pool(upstream, "fleet = \"web\""));
        assert!(has(&found, &["fleet needs a budget"]), "{found:#?}");
        let found = problems(&fleet_pool(upstream, "budget = 10"));
        assert!(has(&found, &["budget needs fleet"]), "{found:#?}");
        let found = problems(&fleet_pool(upstream, "fleet = \"web\"\nbudget = 1"));
        assert!(has(&found, &["must be at least 2"]), "{found:#?}");
    }
}

#[test]
fn any_database_pools() {
    let text = pool("a", "127.0.0.1:6432", "database = \"*\"\nmax_databases = 5");
    let config = parse_str_with_env(&text, NO_ENV).unwrap();
    assert_eq!(config.validate(), Ok(()));
    assert!(config.pools[0].any_database());
    assert_eq!(config.pools[0].own_database(), "app");
    assert_eq!(config.pools[0].max_databases(), 5);

    let found = problems(&pool("a", "127.0.0.1:6432", "max_databases = 5"));
    assert!(
        has(&found, &["max_databases needs database = \"*\""]),
        "{found:#?}"
    );
    let found = problems(&pool(
        "a",
        "127.0.0.1:6432",
        "database = \"*\"\nmax_databases = 0\nfleet = \"f\"\nbudget = 10",
    ));
    assert!(
        has(&found, &["max_databases must be at least 1"]),
        "{found:#?}"
    );
    assert!(
        has(&found, &["fleet cannot be used with database = \"*\""]),
        "{found:#?}"
    );
    // MySQL creates no pools per schema: a `*` pool may be in a fleet.
    let mysql = "[[pools]]\nname = \"m\"\nlisten = \"127.0.0.1:3307\"\nupstream = \"mysql://app:pw@db/app\"\ndatabase = \"*\"\nfleet = \"f\"\nbudget = 10\nclient_auth = \"trust\"\n";
    let config = parse_str_with_env(mysql, NO_ENV).unwrap();
    assert_eq!(config.validate(), Ok(()));
    let mongo = "[[pools]]\nname = \"m\"\nlisten = \"127.0.0.1:27100\"\nupstream = \"mongodb://db/app\"\ndatabase = \"*\"\nclient_auth = \"trust\"\n";
    let found = problems(mongo);
    assert!(has(&found, &["not needed for MongoDB"]), "{found:#?}");
    // Two wildcard pools on one address cannot be told apart.
    let two = format!(
        "{}{}",
        pool("a", "127.0.0.1:6432", "database = \"*\""),
        pool("b", "127.0.0.1:6432", "database = \"*\"")
    );
    assert!(has(&problems(&two), &["database \"*\""]));
}
