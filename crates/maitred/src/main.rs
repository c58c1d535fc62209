//! maitred: the binary. Parses the command line, loads the configuration, starts the runtime
//! and the daemon. Everything else lives in the library crates.
#![forbid(unsafe_code)]

mod cli;
mod daemon;
mod logging;

use std::process::ExitCode;

/// Worker threads when neither `--workers` nor `[runtime] workers` says: one reactor
/// thread measured best on 2-core machines, where the clients and the server share the CPU
/// (docs/benchmarks.md).
const DEFAULT_WORKERS: usize = 1;

fn main() -> ExitCode {
    let cli = cli::Cli::parse_args();
    if let Some(cli::Command::Check { config }) = &cli.command {
        return cli::run_check(config);
    }
    let loaded = match cli::load(&cli) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("maitred: {e}");
            return ExitCode::from(2);
        }
    };
    let config = loaded.config;
    logging::init(
        config.log.format,
        cli.log_level.as_deref(),
        &config.log.level,
    );
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let workers = match config.runtime.workers {
        0 => DEFAULT_WORKERS,
        n => n,
    };
    let runtime = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("maitred: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        workers,
        "maitred starting"
    );
    // SIGHUP re-reads what the command line names (the --config file; the one-line form
    // has nothing to re-read but the environment it started with).
    let reloader: daemon::Reloader = Box::new(move || {
        cli::load(&cli)
            .map(|loaded| loaded.config)
            .map_err(|e| e.to_string())
    });
    match runtime.block_on(daemon::run(config, reloader)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("maitred: {e}");
            ExitCode::FAILURE
        }
    }
}
