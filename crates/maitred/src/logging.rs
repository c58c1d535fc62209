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
use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the global subscriber. `flag_level` is `--log-level` (or `MAITRED_LOG_LEVEL`);
/// `file_level` is `[log] level`.
pub fn init(format: LogFormat, flag_level: Option<&str>, file_level: &str) {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let filter = filter_for(flag_level, rust_log.as_deref(), file_level);
    // Colours only on a terminal: escape codes in log files and collectors are noise.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    let fmt = match format {
        LogFormat::Human => fmt.boxed(),
        // The client span's fields under "span"; the event's own fields at the top level.
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let (level, per_target) = filter.into_layers();
    let _ = tracing_subscriber::registry()
        .with(level)
        .with(per_target)
        .with(fmt)
        .try_init();
}

/// The chosen directive as filter layers. A plain level ("info", "debug") is a
/// [`LevelFilter`] alone: an [`EnvFilter`] takes a lock on every span enter and exit (each
/// client's span is entered at every poll of its task), which the hot path should not pay
/// for a filter that only compares levels. Directives with targets or spans keep the
/// [`EnvFilter`].
#[derive(Debug)]
enum Filter {
    Level(LevelFilter),
    Directives(Box<EnvFilter>),
}

impl Filter {
    fn into_layers(self) -> (LevelFilter, Option<EnvFilter>) {
        match self {
            Filter::Level(level) => (level, None),
            Filter::Directives(env) => (LevelFilter::TRACE, Some(*env)),
        }
    }

    #[cfg(test)]
    fn max_level_hint(&self) -> Option<LevelFilter> {
        match self {
            Filter::Level(level) => Some(*level),
            Filter::Directives(env) => EnvFilter::max_level_hint(env),
        }
    }
}

/// The filter from the first valid directive of: the flag, `RUST_LOG`, the file.
fn filter_for(flag: Option<&str>, rust_log: Option<&str>, file: &str) -> Filter {
    [flag, rust_log, Some(file)]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .find_map(parse_directive)
        .unwrap_or(Filter::Level(LevelFilter::INFO))
}

fn parse_directive(d: &str) -> Option<Filter> {
    if let Ok(level) = d.parse::<LevelFilter>() {
        return Some(Filter::Level(level));
    }
    EnvFilter::try_new(d)
        .ok()
        .map(|f| Filter::Directives(Box::new(f)))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_plain_level_needs_no_env_filter_and_targets_keep_it() {
        assert!(matches!(
            filter_for(Some(" DEBUG "), None, "info"),
            Filter::Level(LevelFilter::DEBUG)
        ));
        assert!(matches!(
            filter_for(None, Some("off"), "info"),
            Filter::Level(LevelFilter::OFF)
        ));
        let targeted = filter_for(Some("maitred_pg=trace,info"), None, "info");
        assert!(matches!(targeted, Filter::Directives(_)));
        assert_eq!(targeted.max_level_hint(), Some(LevelFilter::TRACE));
    }
}
