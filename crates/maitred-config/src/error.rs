//! The crate's single error type.
//!
//! No variant ever carries a secret: messages are built from variable
//! names, key names, line numbers and redacted text only.

use std::path::PathBuf;

/// Everything that can go wrong while reading, parsing or validating a
/// maitred configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// `${VAR}` expansion failed; one message per problem (missing
    /// variable, unterminated `${`, ...), each naming the variable and line.
    #[error("{}", .0.join("\n"))]
    Expand(Vec<String>),

    /// The file (after `${VAR}` expansion) is not valid TOML or does not
    /// fit the model: a syntax error, an unknown key, a wrong type, a bad
    /// value. Expanded `${VAR}` values are redacted from the message.
    #[error("{origin}:{line}:{column}: {message}")]
    Toml {
        /// Where the text came from (a path, or `<string>`).
        origin: String,
        /// 1-based line of the error (0 if unknown).
        line: usize,
        /// 1-based column of the error (0 if unknown).
        column: usize,
        /// What is wrong (never a copy of the offending text).
        message: String,
    },

    /// The file and the `MAITRED_<SECTION>__<KEY>` environment overrides
    /// together do not fit the model (in practice: a bad override value).
    /// Expanded `${VAR}` values are redacted.
    #[error("{origin}: {message}")]
    Parse {
        /// Where the text came from (a path, or `<string>`).
        origin: String,
        /// What is wrong.
        message: String,
    },

    /// An upstream URL could not be parsed. The URL itself is never
    /// included, as it may hold a password.
    #[error("invalid upstream URL: {0}")]
    Upstream(String),

    /// A `MAITRED_*__*` environment override could not be used.
    #[error("environment variable {name}: {reason}")]
    Env {
        /// The variable's name.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// The configuration parsed but is not usable; every problem found,
    /// one message each.
    #[error("invalid configuration:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
}

impl ConfigError {
    /// Every problem this error stands for, one line each (what
    /// `maitred check` prints).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Expand(problems) | ConfigError::Invalid(problems) => problems.clone(),
            other => vec![other.to_string()],
        }
    }
}
