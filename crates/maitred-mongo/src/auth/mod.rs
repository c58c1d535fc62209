//! Authentication state machines, no I/O.
//!
//! - [`scram`]: SCRAM-SHA-1 and SCRAM-SHA-256 as MongoDB uses them: server side (clients
//!   logging in to maitred) and client side (maitred logging in to the server).

pub mod scram;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("authentication failed")]
    WrongPassword,
    #[error("malformed SCRAM message: {0}")]
    MalformedScram(&'static str),
    #[error("SCRAM nonce mismatch")]
    NonceMismatch,
    #[error("channel binding is not supported")]
    ChannelBindingUnsupported,
    #[error("unsupported mechanism {0}")]
    UnsupportedMechanism(String),
    #[error("server signature does not match")]
    BadServerSignature,
    #[error(
        "the server asks for {0} SCRAM iterations; maitred accepts {min} to {max}",
        min = scram::MIN_SERVER_ITERATIONS,
        max = scram::MAX_SERVER_ITERATIONS
    )]
    IterationCount(u64),
}
