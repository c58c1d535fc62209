//! Authentication state machines, no I/O.
//!
//! - [`scram`]: SCRAM-SHA-1 and SCRAM-SHA-256 as MongoDB uses them, server side (clients
//!   logging in to maitred; the exchange itself is maitred-scram's).
//! - [`scram_client`]: the client side (maitred logging in to the server).

pub mod scram;
pub mod scram_client;

use maitred_scram::ScramError;
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
        min = scram_client::MIN_SERVER_ITERATIONS,
        max = scram_client::MAX_SERVER_ITERATIONS
    )]
    IterationCount(u64),
}

impl From<ScramError> for AuthError {
    fn from(e: ScramError) -> AuthError {
        match e {
            ScramError::Malformed(what) => AuthError::MalformedScram(what),
            ScramError::ChannelBindingUnsupported => AuthError::ChannelBindingUnsupported,
            ScramError::NonceMismatch => AuthError::NonceMismatch,
            ScramError::WrongProof => AuthError::WrongPassword,
            // MongoDB verifiers are derived in maitred, never parsed from text.
            ScramError::MalformedSecret(what) => AuthError::MalformedScram(what),
        }
    }
}
