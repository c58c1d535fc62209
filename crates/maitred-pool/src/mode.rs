//! [`PoolMode`]: when a client's server connection goes back to the pool. The pool core
//! does not release anything itself (a protocol's relay decides when its client is done);
//! the mode is here so that the configuration and every protocol name it one way.

use std::fmt;
use std::str::FromStr;

/// When a server connection is handed back to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum PoolMode {
    /// At the end of each transaction.
    #[default]
    Transaction,
    /// When the client disconnects.
    Session,
    /// After each statement; transaction blocks are refused (PostgreSQL only).
    Statement,
}

impl PoolMode {
    /// The name used in the file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolMode::Transaction => "transaction",
            PoolMode::Session => "session",
            PoolMode::Statement => "statement",
        }
    }
}

impl fmt::Display for PoolMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PoolMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "transaction" => Ok(PoolMode::Transaction),
            "session" => Ok(PoolMode::Session),
            "statement" => Ok(PoolMode::Statement),
            other => Err(format!(
                "unknown pool mode `{other}` (expected transaction, session or statement)"
            )),
        }
    }
}
