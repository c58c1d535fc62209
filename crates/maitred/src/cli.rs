//! The command line: `maitred --listen ADDR --upstream URL [...]` (one pool,
//! no file), `maitred --config FILE`, and `maitred check --config FILE`.
//!
//! Every flag can also come from its `MAITRED_*` environment variable.
//! [`Cli::parse_args`] parses and remembers where each value came from;
//! [`load`] turns that into a validated [`Config`] plus warnings;
//! [`run_check`] is the `check` subcommand.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use maitred_config::{
    AdminConfig, Config, ConfigError, LogFormat, OneLine, PoolMode, Secret, UpstreamUrl,
};

/// maitred: a connection pooler for PostgreSQL, MySQL/MariaDB and MongoDB. Many clients share
/// a small, fixed set of server connections, leased per transaction (or per request), with a
/// fair queue in between.
#[derive(Debug, Parser)]
#[command(name = "maitred", version, subcommand_negates_reqs = true)]
pub struct Cli {
    /// What to do instead of running the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Load pools from this TOML file instead of --listen/--upstream.
    #[arg(long, env = "MAITRED_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Address clients connect to (one-pool form).
    #[arg(
        long,
        env = "MAITRED_LISTEN",
        value_name = "ADDR",
        required_unless_present = "config"
    )]
    pub listen: Option<SocketAddr>,

    /// The server, postgres://user:password@host:port/database (one-pool
    /// form). Clients log in with its user and password.
    #[arg(
        long,
        env = "MAITRED_UPSTREAM",
        value_name = "URL",
        hide_env_values = true,
        required_unless_present = "config"
    )]
    pub upstream: Option<Secret>,

    /// Maximum server connections [default: 10].
    #[arg(long, env = "MAITRED_POOL_SIZE", value_name = "N")]
    pub pool_size: Option<usize>,

    /// When a server connection goes back to the pool [default: transaction].
    #[arg(long, env = "MAITRED_POOL_MODE", value_name = "MODE", value_enum)]
    pub pool_mode: Option<PoolModeArg>,

    /// How long a client waits for a server connection [default: 5s].
    #[arg(
        long,
        env = "MAITRED_QUEUE_TIMEOUT",
        value_name = "DURATION",
        value_parser = humantime::parse_duration
    )]
    pub queue_timeout: Option<Duration>,

    /// Clients allowed to wait at once [default: 10000].
    #[arg(long, env = "MAITRED_MAX_WAITING", value_name = "N")]
    pub max_waiting: Option<usize>,

    /// PostgreSQL: while clients queue, write the next queued client's lone SELECT behind
    /// the current query on a busy server connection [default: true].
    #[arg(long, env = "MAITRED_SEND_AHEAD", value_name = "BOOL")]
    pub send_ahead: Option<bool>,

    /// The fleet this replica belongs to: replicas with the same name in front of the same
    /// upstream hold at most --budget server connections together (needs --budget).
    #[arg(long, env = "MAITRED_FLEET", value_name = "NAME")]
    pub fleet: Option<String>,

    /// The fleet's budget: server connections of all replicas together, a number or
    /// `auto` (the server's connection limit less its reserved slots).
    #[arg(long, env = "MAITRED_BUDGET", value_name = "N|auto")]
    pub budget: Option<maitred_config::model::Budget>,

    /// PostgreSQL and MySQL: clients may name any database of the upstream server, not only
    /// the URL's (PgBouncer's `*` entry; the file's `database = "*"`). PostgreSQL: each
    /// other database gets a pool of its own, created on first use [default: false].
    #[arg(long, env = "MAITRED_ANY_DATABASE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub any_database: Option<bool>,

    /// With --any-database: databases that may have a pool at once [default: 100].
    #[arg(long, env = "MAITRED_MAX_DATABASES", value_name = "N")]
    pub max_databases: Option<usize>,

    /// Address of the admin endpoint (overrides the file's admin.listen).
    #[arg(long, env = "MAITRED_ADMIN", value_name = "ADDR")]
    pub admin: Option<SocketAddr>,

    /// Log format (overrides the file's log.format) [default: human].
    #[arg(long, env = "MAITRED_LOG_FORMAT", value_name = "FORMAT", value_enum)]
    pub log_format: Option<LogFormatArg>,

    /// Log level or EnvFilter directive, e.g. `debug` or `maitred=debug,info`
    /// (wins over RUST_LOG and the file's log.level) [default: info].
    #[arg(long, env = "MAITRED_LOG_LEVEL", value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Tokio worker threads, 0 = the daemon's default (overrides the file's
    /// runtime.workers) [default: 0].
    #[arg(long, env = "MAITRED_WORKERS", value_name = "N")]
    pub workers: Option<usize>,

    /// Where each one-line pool flag came from; set by [`Cli::parse_args`].
    #[arg(skip)]
    sources: Option<Vec<(&'static PoolFlag, ValueSource)>>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a configuration file: print every problem, one per line, and
    /// exit 1; or print a short summary and exit 0.
    Check {
        /// The file to check.
        #[arg(long, env = "MAITRED_CONFIG", value_name = "FILE")]
        config: PathBuf,
    },
}

/// `--pool-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PoolModeArg {
    /// Return the server connection at the end of each transaction.
    Transaction,
    /// Keep the server connection until the client disconnects.
    Session,
    /// Return the server connection after each statement (PostgreSQL; no transaction blocks).
    Statement,
}

impl From<PoolModeArg> for PoolMode {
    fn from(mode: PoolModeArg) -> Self {
        match mode {
            PoolModeArg::Transaction => PoolMode::Transaction,
            PoolModeArg::Session => PoolMode::Session,
            PoolModeArg::Statement => PoolMode::Statement,
        }
    }
}

/// `--log-format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> Self {
        match format {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// A flag of the one-line pool form.
#[derive(Debug)]
struct PoolFlag {
    /// clap's id of the argument (the field name).
    id: &'static str,
    /// The flag as typed.
    flag: &'static str,
    /// Its environment variable.
    env: &'static str,
}

/// The flags that describe the one-line pool; with `--config` they are an
/// error on the command line and ignored (with a warning) from the
/// environment.
static POOL_FLAGS: [PoolFlag; 11] = [
    PoolFlag {
        id: "listen",
        flag: "--listen",
        env: "MAITRED_LISTEN",
    },
    PoolFlag {
        id: "upstream",
        flag: "--upstream",
        env: "MAITRED_UPSTREAM",
    },
    PoolFlag {
        id: "pool_size",
        flag: "--pool-size",
        env: "MAITRED_POOL_SIZE",
    },
    PoolFlag {
        id: "pool_mode",
        flag: "--pool-mode",
        env: "MAITRED_POOL_MODE",
    },
    PoolFlag {
        id: "queue_timeout",
        flag: "--queue-timeout",
        env: "MAITRED_QUEUE_TIMEOUT",
    },
    PoolFlag {
        id: "max_waiting",
        flag: "--max-waiting",
        env: "MAITRED_MAX_WAITING",
    },
    PoolFlag {
        id: "send_ahead",
        flag: "--send-ahead",
        env: "MAITRED_SEND_AHEAD",
    },
    PoolFlag {
        id: "fleet",
        flag: "--fleet",
        env: "MAITRED_FLEET",
    },
    PoolFlag {
        id: "budget",
        flag: "--budget",
        env: "MAITRED_BUDGET",
    },
    PoolFlag {
        id: "any_database",
        flag: "--any-database",
        env: "MAITRED_ANY_DATABASE",
    },
    PoolFlag {
        id: "max_databases",
        flag: "--max-databases",
        env: "MAITRED_MAX_DATABASES",
    },
];

impl Cli {
    /// Parses the process's arguments and environment, exiting with clap's
    /// message (and usage) on a bad command line, like `Parser::parse`.
    /// Use this rather than `Parser::parse`: it also records which values
    /// came from the environment, which [`load`] needs.
    pub fn parse_args() -> Cli {
        Cli::parse_args_from(std::env::args_os()).unwrap_or_else(|error| error.exit())
    }

    /// Parses the given arguments (the first is the program name) and the
    /// process environment.
    pub fn parse_args_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Cli::command().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.sources = Some(pool_flag_sources(&matches));
        Ok(cli)
    }

    /// The one-line pool flags that were given, and where from. Without
    /// recorded sources (a `Cli` not made by [`Cli::parse_args`]) every
    /// given flag counts as typed on the command line.
    fn pool_flags_given(&self) -> Vec<(&'static PoolFlag, ValueSource)> {
        if let Some(sources) = &self.sources {
            return sources.clone();
        }
        let given = [
            self.listen.is_some(),
            self.upstream.is_some(),
            self.pool_size.is_some(),
            self.pool_mode.is_some(),
            self.queue_timeout.is_some(),
            self.max_waiting.is_some(),
            self.send_ahead.is_some(),
            self.fleet.is_some(),
            self.budget.is_some(),
            self.any_database.is_some(),
            self.max_databases.is_some(),
        ];
        POOL_FLAGS
            .iter()
            .zip(given)
            .filter(|(_, given)| *given)
            .map(|(flag, _)| (flag, ValueSource::CommandLine))
            .collect()
    }

    /// The one-line form's settings.
    fn one_line(&self) -> Result<OneLine, CliError> {
        let listen = self.listen.ok_or(CliError::Missing("--listen"))?;
        let upstream = self
            .upstream
            .as_ref()
            .ok_or(CliError::Missing("--upstream"))?;
        let upstream = UpstreamUrl::parse(upstream.expose())?;
        // A MongoDB server without authentication (no user in the URL) needs no password;
        // its clients then need none either.
        let unauthenticated_mongo = upstream.protocol
            == maitred_config::upstream::Protocol::Mongodb
            && upstream.user.is_empty();
        if upstream.password.is_none() && !unauthenticated_mongo {
            return Err(CliError::NoUpstreamPassword);
        }
        let mut one = OneLine::new(listen, upstream);
        if let Some(size) = self.pool_size {
            one.size = size;
        }
        if let Some(mode) = self.pool_mode {
            one.mode = mode.into();
        }
        if let Some(timeout) = self.queue_timeout {
            one.queue_timeout = timeout;
        }
        if let Some(max_waiting) = self.max_waiting {
            one.max_waiting = max_waiting;
        }
        if let Some(send_ahead) = self.send_ahead {
            one.send_ahead = send_ahead;
        }
        one.fleet.clone_from(&self.fleet);
        one.budget = self.budget;
        one.any_database = self.any_database.unwrap_or(false);
        one.max_databases = self.max_databases;
        Ok(one)
    }

    /// Applies `--admin`, `--log-format`, `--log-level` and `--workers`, which hold in both
    /// forms.
    fn apply_daemon_flags(&self, config: &mut Config) {
        if let Some(listen) = self.admin {
            config.admin = Some(AdminConfig::new(listen));
        }
        if let Some(format) = self.log_format {
            config.log.format = format.into();
        }
        if let Some(level) = &self.log_level {
            config.log.level.clone_from(level);
        }
        if let Some(workers) = self.workers {
            config.runtime.workers = workers;
        }
    }
}

fn pool_flag_sources(matches: &ArgMatches) -> Vec<(&'static PoolFlag, ValueSource)> {
    POOL_FLAGS
        .iter()
        .filter_map(|flag| matches.value_source(flag.id).map(|source| (flag, source)))
        .collect()
}

/// A configuration ready to run, and warnings to log once logging is up.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The validated configuration.
    pub config: Config,
    /// Things the operator should know (e.g. ignored environment
    /// variables); never fatal.
    pub warnings: Vec<String>,
}

/// Why the command line cannot give a configuration.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `--config` together with one-line pool flags on the command line.
    #[error("use either --config or --listen/--upstream, not both (also given: {})", .0.join(", "))]
    Conflict(Vec<&'static str>),
    /// A one-line flag that is needed is absent.
    #[error("{0} is required unless --config is given")]
    Missing(&'static str),
    /// The one-line form's upstream URL has no password.
    #[error(
        "the upstream URL has no password: in the --listen/--upstream form clients log in \
         with the upstream URL's user and password (use --config for other setups)"
    )]
    NoUpstreamPassword,
    /// Loading, parsing or validating failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The configuration the command line describes, validated: the file of
/// `--config` (with `--admin`, `--log-format`, `--workers` applied on top),
/// or the single pool of `--listen`/`--upstream`. Ignores `command`: call
/// [`run_check`] for `maitred check`.
pub fn load(cli: &Cli) -> Result<LoadedConfig, CliError> {
    let mut warnings = Vec::new();
    let mut config = match &cli.config {
        Some(path) => {
            let given = cli.pool_flags_given();
            let typed: Vec<&'static str> = given
                .iter()
                .filter(|(_, source)| *source == ValueSource::CommandLine)
                .map(|(flag, _)| flag.flag)
                .collect();
            if !typed.is_empty() {
                return Err(CliError::Conflict(typed));
            }
            warnings.extend(
                given
                    .iter()
                    .filter(|(_, source)| *source == ValueSource::EnvVariable)
                    .map(|(flag, _)| {
                        format!(
                            "{} is set but ignored: the pools come from {}",
                            flag.env,
                            path.display()
                        )
                    }),
            );
            maitred_config::parse_file(path)?
        }
        None => cli.one_line()?.into_config(),
    };
    cli.apply_daemon_flags(&mut config);
    config.validate().map_err(ConfigError::Invalid)?;
    Ok(LoadedConfig { config, warnings })
}

/// What `maitred check` found.
#[derive(Debug)]
struct CheckReport {
    /// Whether the file is valid.
    ok: bool,
    /// The summary when valid; every problem otherwise.
    lines: Vec<String>,
}

fn check(path: &Path) -> CheckReport {
    match maitred_config::load_file(path) {
        Ok(config) => {
            let mut lines = vec![format!("{}: OK", path.display())];
            lines.extend(config.summary());
            CheckReport { ok: true, lines }
        }
        Err(ConfigError::Invalid(problems)) => CheckReport {
            ok: false,
            lines: problems
                .iter()
                .map(|problem| format!("{}: {problem}", path.display()))
                .collect(),
        },
        Err(error) => CheckReport {
            ok: false,
            lines: error.problems(),
        },
    }
}

/// `maitred check --config FILE`: loads the file as the daemon would
/// (`${VAR}` and `MAITRED_<SECTION>__<KEY>` included) and validates it.
/// Valid: prints a summary on stdout, returns success. Invalid: prints every
/// problem, one per line, on stderr, returns failure (1).
pub fn run_check(path: &Path) -> ExitCode {
    let report = check(path);
    if report.ok {
        for line in &report.lines {
            println!("{line}");
        }
        ExitCode::SUCCESS
    } else {
        for line in &report.lines {
            eprintln!("{line}");
        }
        ExitCode::FAILURE
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use maitred_config::defaults;
    use std::sync::{Mutex, MutexGuard};

    /// clap reads `MAITRED_*` from the process environment: tests that
    /// parse hold this lock, so variables set by one test are never seen
    /// by another.
    static ENV_LOCK: Mutex<()> = Mutex::new(());

    /// Holds the lock and sets variables; removes them when dropped.
    struct Env {
        names: Vec<&'static str>,
        _lock: MutexGuard<'static, ()>,
    }

    impl Env {
        fn new(vars: &[(&'static str, &str)]) -> Env {
            let lock = ENV_LOCK
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (name, value) in vars {
                std::env::set_var(name, value);
            }
            Env {
                names: vars.iter().map(|(name, _)| *name).collect(),
                _lock: lock,
            }
        }
    }

    impl Drop for Env {
        fn drop(&mut self) {
            for name in &self.names {
                std::env::remove_var(name);
            }
        }
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_args_from(std::iter::once("maitred").chain(args.iter().copied()))
    }

    /// A temporary file removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, text: &str) -> TempFile {
            let path = std::env::temp_dir().join(format!(
                "maitred-cli-test-{}-{name}.toml",
                std::process::id()
            ));
            std::fs::write(&path, text).unwrap();
            TempFile(path)
        }

        fn arg(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const FILE: &str = r#"
[[pools]]
name = "filed"
listen = "127.0.0.1:7432"
upstream = "postgres://svc:pw@db/svc"
  [[pools.users]]
  name = "svc"
  password = "pw"
"#;

    const UPSTREAM: &str = "postgres://app:s3cr%40t@db:5432/appdb";

    #[test]
    fn one_line_form_makes_one_pool_logging_in_as_the_upstream_user() {
        let _env = Env::new(&[]);
        let cli = parse(&["--listen", "127.0.0.1:6432", "--upstream", UPSTREAM]).unwrap();
        let loaded = load(&cli).unwrap();
        assert!(loaded.warnings.is_empty());
        let config = loaded.config;
        assert_eq!(config.pools.len(), 1);
        let pool = &config.pools[0];
        assert_eq!(pool.name, "appdb");
        assert_eq!(pool.listen, "127.0.0.1:6432".parse().unwrap());
        assert_eq!(pool.client_database(), "appdb");
        assert_eq!(pool.users.len(), 1);
        assert_eq!(pool.users[0].name, "app");
        assert_eq!(
            pool.users[0].password.as_ref().map(Secret::expose),
            Some("s3cr@t")
        );
        assert_eq!(pool.size, defaults::POOL_SIZE);
        assert_eq!(pool.mode, defaults::POOL_MODE);
        assert_eq!(pool.queue_timeout, defaults::QUEUE_TIMEOUT);
        assert_eq!(pool.max_waiting, defaults::MAX_WAITING);
        assert_eq!(config.admin, None);
        assert_eq!(config.log.format, LogFormat::Human);
        assert_eq!(config.runtime.workers, 0);
    }

    #[test]
    fn any_database_flag() {
        let _env = Env::new(&[]);
        let base = ["--listen", "127.0.0.1:6432", "--upstream", UPSTREAM];
        let pool = |extra: &[&str]| {
            let args: Vec<&str> = base.iter().chain(extra).copied().collect();
            load(&parse(&args).unwrap()).unwrap().config.pools.remove(0)
        };
        assert!(!pool(&[]).any_database());
        let any = pool(&["--any-database", "--max-databases", "7"]);
        assert!(any.any_database());
        assert_eq!((any.name.as_str(), any.own_database()), ("appdb", "appdb"));
        assert_eq!(any.max_databases(), 7);
        assert!(!pool(&["--any-database", "false"]).any_database());
    }

    #[test]
    fn every_flag() {
        let _env = Env::new(&[]);
        let cli = parse(&[
            "--listen",
            "0.0.0.0:6432",
            "--upstream",
            UPSTREAM,
            "--pool-size",
            "3",
            "--pool-mode",
            "session",
            "--queue-timeout",
            "250ms",
            "--max-waiting",
            "7",
            "--send-ahead",
            "false",
            "--admin",
            "127.0.0.1:9930",
            "--log-format",
            "json",
            "--workers",
            "2",
        ])
        .unwrap();
        let config = load(&cli).unwrap().config;
        let pool = &config.pools[0];
        assert!(!pool.send_ahead);
        assert_eq!(pool.size, 3);
        assert_eq!(pool.mode, PoolMode::Session);
        assert_eq!(pool.queue_timeout, Duration::from_millis(250));
        assert_eq!(pool.max_waiting, 7);
        assert_eq!(
            config.admin.map(|a| a.listen),
            Some("127.0.0.1:9930".parse().unwrap())
        );
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.runtime.workers, 2);
    }

    #[test]
    fn environment_alone_is_enough() {
        let _env = Env::new(&[
            ("MAITRED_LISTEN", "127.0.0.1:6432"),
            ("MAITRED_UPSTREAM", UPSTREAM),
            ("MAITRED_POOL_SIZE", "4"),
            ("MAITRED_POOL_MODE", "session"),
            ("MAITRED_QUEUE_TIMEOUT", "2s"),
            ("MAITRED_MAX_WAITING", "9"),
            ("MAITRED_SEND_AHEAD", "false"),
            ("MAITRED_ADMIN", "127.0.0.1:9931"),
            ("MAITRED_LOG_FORMAT", "json"),
            ("MAITRED_WORKERS", "3"),
        ]);
        let config = load(&parse(&[]).unwrap()).unwrap().config;
        let pool = &config.pools[0];
        assert_eq!((pool.size, pool.max_waiting), (4, 9));
        assert!(!pool.send_ahead);
        assert_eq!(pool.mode, PoolMode::Session);
        assert_eq!(pool.queue_timeout, Duration::from_secs(2));
        assert!(config.admin.is_some());
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.runtime.workers, 3);
    }

    #[test]
    fn command_line_wins_over_environment() {
        let _env = Env::new(&[("MAITRED_POOL_SIZE", "4")]);
        let cli = parse(&[
            "--listen",
            "127.0.0.1:6432",
            "--upstream",
            UPSTREAM,
            "--pool-size",
            "5",
        ])
        .unwrap();
        assert_eq!(load(&cli).unwrap().config.pools[0].size, 5);
    }

    #[test]
    fn listen_and_upstream_are_required_without_config() {
        let _env = Env::new(&[]);
        assert!(parse(&[]).is_err());
        assert!(parse(&["--listen", "127.0.0.1:6432"]).is_err());
        assert!(parse(&["--upstream", UPSTREAM]).is_err());
    }

    #[test]
    fn config_with_pool_flags_on_the_command_line_is_an_error() {
        let _env = Env::new(&[]);
        let file = TempFile::new("conflict", FILE);
        let cli = parse(&[
            "--config",
            file.arg(),
            "--listen",
            "127.0.0.1:6432",
            "--pool-size",
            "3",
        ])
        .unwrap();
        let error = load(&cli).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("use either --config or --listen/--upstream"),
            "{message}"
        );
        assert!(message.contains("--listen, --pool-size"), "{message}");
    }

    #[test]
    fn config_from_the_environment_with_pool_flags_typed_is_an_error_too() {
        let file = TempFile::new("conflict-env", FILE);
        let _env = Env::new(&[("MAITRED_CONFIG", file.arg())]);
        let cli = parse(&["--upstream", UPSTREAM]).unwrap();
        assert!(matches!(load(&cli), Err(CliError::Conflict(_))));
    }

    #[test]
    fn config_ignores_pool_variables_from_the_environment_with_a_warning() {
        let file = TempFile::new("env-ignored", FILE);
        let _env = Env::new(&[
            ("MAITRED_LISTEN", "127.0.0.1:6432"),
            ("MAITRED_UPSTREAM", "postgres://app:hunter2@db/app"),
        ]);
        let cli = parse(&["--config", file.arg()]).unwrap();
        let loaded = load(&cli).unwrap();
        assert_eq!(loaded.config.pools.len(), 1);
        assert_eq!(loaded.config.pools[0].name, "filed");
        assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("MAITRED_LISTEN"));
        assert!(loaded.warnings[1].contains("MAITRED_UPSTREAM"));
        assert!(!loaded.warnings.join(" ").contains("hunter2"));
    }

    #[test]
    fn daemon_flags_override_the_file() {
        let _env = Env::new(&[]);
        let file = TempFile::new("overrides", &format!("[log]\nformat = \"json\"\n{FILE}"));
        let cli = parse(&[
            "--config",
            file.arg(),
            "--admin",
            "127.0.0.1:9930",
            "--log-format",
            "human",
            "--workers",
            "5",
        ])
        .unwrap();
        let config = load(&cli).unwrap().config;
        assert_eq!(
            config.admin.map(|a| a.listen),
            Some("127.0.0.1:9930".parse().unwrap())
        );
        assert_eq!(config.log.format, LogFormat::Human);
        assert_eq!(config.runtime.workers, 5);
    }

    #[test]
    fn file_without_daemon_flags_keeps_its_values() {
        let _env = Env::new(&[]);
        let file = TempFile::new("keeps", &format!("[log]\nformat = \"json\"\n{FILE}"));
        let config = load(&parse(&["--config", file.arg()]).unwrap())
            .unwrap()
            .config;
        assert_eq!(config.log.format, LogFormat::Json);
    }

    #[test]
    fn one_line_mongodb_without_authentication() {
        let _env = Env::new(&[]);
        let cli = parse(&[
            "--listen",
            "127.0.0.1:27018",
            "--upstream",
            "mongodb://127.0.0.1:27017/app",
        ])
        .unwrap();
        let config = load(&cli).unwrap().config;
        let pool = &config.pools[0];
        assert!(pool.users.is_empty());
        assert_eq!(pool.client_auth, maitred_config::ClientAuth::Trust);
        // PostgreSQL and MySQL still need the password in the URL.
        let pg = parse(&[
            "--listen",
            "127.0.0.1:6432",
            "--upstream",
            "postgres://app@db/app",
        ])
        .unwrap();
        assert!(matches!(load(&pg), Err(CliError::NoUpstreamPassword)));
    }

    #[test]
    fn one_line_problems() {
        let _env = Env::new(&[]);
        let no_password = parse(&[
            "--listen",
            "127.0.0.1:6432",
            "--upstream",
            "postgres://app@db/app",
        ])
        .unwrap();
        assert!(matches!(
            load(&no_password),
            Err(CliError::NoUpstreamPassword)
        ));

        let bad_scheme = parse(&[
            "--listen",
            "127.0.0.1:6432",
            "--upstream",
            "redis://app:hunter2@db/app",
        ])
        .unwrap();
        let message = load(&bad_scheme).unwrap_err().to_string();
        assert!(message.contains("redis"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");

        let zero = parse(&[
            "--listen",
            "127.0.0.1:6432",
            "--upstream",
            UPSTREAM,
            "--pool-size",
            "0",
            "--max-waiting",
            "0",
        ])
        .unwrap();
        let Err(CliError::Config(ConfigError::Invalid(problems))) = load(&zero) else {
            panic!("expected validation problems");
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn the_upstream_password_is_never_shown() {
        let _env = Env::new(&[("MAITRED_UPSTREAM", "postgres://app:hunter2@db/app")]);
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("MAITRED_UPSTREAM"), "{help}");
        assert!(!help.contains("hunter2"), "{help}");
        let cli = parse(&["--listen", "127.0.0.1:6432"]).unwrap();
        assert!(!format!("{cli:?}").contains("hunter2"));
        let loaded = load(&cli).unwrap();
        assert!(!format!("{loaded:?}").contains("hunter2"));
    }

    #[test]
    fn help_states_the_real_defaults() {
        let _env = Env::new(&[]);
        let help = Cli::command().render_long_help().to_string();
        for default in [
            defaults::POOL_SIZE.to_string(),
            defaults::POOL_MODE.to_string(),
            humantime::format_duration(defaults::QUEUE_TIMEOUT).to_string(),
            defaults::MAX_WAITING.to_string(),
            defaults::LOG_FORMAT.to_string(),
            defaults::WORKERS.to_string(),
        ] {
            assert!(
                help.contains(&format!("[default: {default}]")),
                "{default}: {help}"
            );
        }
    }

    #[test]
    fn check_subcommand_parses() {
        let _env = Env::new(&[]);
        let cli = parse(&["check", "--config", "x.toml"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Check { ref config }) if config == Path::new("x.toml"))
        );
        assert!(parse(&["check"]).is_err());
    }

    #[test]
    fn check_prints_a_summary_for_a_valid_file() {
        let _env = Env::new(&[]);
        let file = TempFile::new("check-ok", FILE);
        let report = check(&file.0);
        assert!(report.ok, "{:?}", report.lines);
        assert!(report.lines[0].ends_with(": OK"), "{:?}", report.lines);
        assert!(report.lines.iter().any(|l| l.contains("pool \"filed\"")));
        assert!(!report.lines.join("\n").contains(":pw@"));
        assert_eq!(run_check(&file.0), ExitCode::SUCCESS);
    }

    #[test]
    fn check_lists_every_problem_and_fails() {
        let _env = Env::new(&[]);
        let text = FILE.replace(
            "name = \"filed\"",
            "name = \"filed\"\nsize = 0\nmax_waiting = 0",
        );
        let file = TempFile::new("check-bad", &text);
        let report = check(&file.0);
        assert!(!report.ok);
        assert_eq!(report.lines.len(), 2, "{:?}", report.lines);
        assert!(report.lines.iter().all(|l| l.starts_with(file.arg())));
        assert_eq!(run_check(&file.0), ExitCode::FAILURE);

        let unknown = TempFile::new("check-unknown", &format!("{FILE}  colour = \"red\"\n"));
        let report = check(&unknown.0);
        assert!(!report.ok);
        assert!(report.lines[0].contains("colour"), "{:?}", report.lines);

        let missing = check(Path::new("/nonexistent/maitred.toml"));
        assert!(!missing.ok);
        assert_eq!(
            run_check(Path::new("/nonexistent/maitred.toml")),
            ExitCode::FAILURE
        );
    }

    #[test]
    fn pool_flag_ids_match_the_arguments() {
        let command = Cli::command();
        for flag in &POOL_FLAGS {
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_id() == flag.id)
                .unwrap_or_else(|| panic!("no argument {}", flag.id));
            assert_eq!(
                arg.get_long().map(|l| format!("--{l}")).as_deref(),
                Some(flag.flag)
            );
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(flag.env));
        }
    }
}
