//! Log output: human-readable lines by default, one JSON object per line on request.
//!
//! The level comes from, first to last: `--log-level` / `MAITRED_LOG_LEVEL`, then `RUST_LOG`,
//! then the file's `[log] level` (default `info`). An explicit flag wins over `RUST_LOG` so that
//! an operator (or a test) can raise the level of one run without touching the environment.
//!
//! Every client connection runs inside a `client` span (protocol, pool, client address, id)
//! opened by each protocol's listener; both formats print its fields on every line logged for
//! that client. Secrets never reach a log line: passwords live in types whose `Debug` and
//! `Display` print `***`, and upstream URLs are logged redacted.

use maitred_config::model::LogFormat;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The directive used when neither the flag, `RUST_LOG` nor the file gives a valid one.
const FALLBACK_LEVEL: &str = "info";

/// Installs the global subscriber. `flag_level` is `--log-level` (or `MAITRED_LOG_LEVEL`);
/// `file_level` is `[log] level`.
pub fn init(format: LogFormat, flag_level: Option<&str>, file_level: &str) {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let filter = filter_for(flag_level, rust_log.as_deref(), file_level);
    // Colours only on a terminal: escape codes in log files and collectors are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        // The client span's fields under "span"; the event's own fields at the top level.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The filter from the first valid directive of: the flag, `RUST_LOG`, the file.
fn filter_for(flag: Option<&str>, rust_log: Option<&str>, file: &str) -> EnvFilter {
    [flag, rust_log, Some(file)]
        .into_iter()
        .flatten()
        .filter(|d| !d.trim().is_empty())
        .find_map(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(FALLBACK_LEVEL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;

    fn max(flag: Option<&str>, rust_log: Option<&str>, file: &str) -> Option<LevelFilter> {
        filter_for(flag, rust_log, file).max_level_hint()
    }

    #[test]
    fn the_flag_wins_over_rust_log_and_the_file() {
        assert_eq!(
            max(Some("debug"), Some("warn"), "error"),
            Some(LevelFilter::DEBUG)
        );
    }

    #[test]
    fn rust_log_wins_over_the_file() {
        assert_eq!(max(None, Some("warn"), "debug"), Some(LevelFilter::WARN));
    }

    #[test]
    fn the_file_level_applies_alone() {
        assert_eq!(max(None, None, "error"), Some(LevelFilter::ERROR));
    }

    #[test]
    fn empty_or_invalid_directives_fall_through() {
        assert_eq!(max(Some(""), None, "warn"), Some(LevelFilter::WARN));
        assert_eq!(
            max(None, Some("=[not a directive"), "warn"),
            Some(LevelFilter::WARN)
        );
        assert_eq!(max(None, None, "=[bad"), Some(LevelFilter::INFO));
    }
}
