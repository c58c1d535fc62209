//! Authentication state machines: pure functions and values, no I/O.
//!
//! - [`secret`]: what maitred knows about a user's password (SCRAM keys, md5 hash).
//! - [`scram`]: the server side of SCRAM-SHA-256 (RFC 5802, RFC 7677), as PostgreSQL speaks it:
//!   <https://www.postgresql.org/docs/15/sasl-authentication.html>. The exchange itself is
//!   maitred-scram's; this crate picks the hash, the nonce length and its error texts.
//! - [`md5`]: the md5 password exchange.
//! - [`scram_client_key`], [`passthrough`]: logging in to the server as a client's own user
//!   with what its login revealed (auth_query): the SCRAM ClientKey or the md5 hash.
//!
//! Key derivation (PBKDF2) happens once, when credentials are loaded, never per login.

pub mod md5;
pub mod passthrough;
pub mod scram;
pub mod scram_client_key;
pub mod secret;

use maitred_scram::ScramError;
use thiserror::Error;

/// Why an authentication exchange failed. Messages never contain secrets.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("malformed SCRAM message: {0}")]
    MalformedScram(&'static str),
    #[error("SCRAM channel binding is not supported by maitred")]
    ChannelBindingUnsupported,
    #[error("SCRAM nonce mismatch")]
    NonceMismatch,
    #[error("password does not match")]
    WrongPassword,
    #[error("malformed stored secret: {0}")]
    MalformedSecret(&'static str),
    #[error("this user's stored secret cannot be used with {0}")]
    MethodUnavailable(&'static str),
    #[error("the server's SCRAM salt or iteration count differs from the stored secret (was the password changed?)")]
    SecretOutOfDate,
    #[error(
        "the server asks for {0} SCRAM iterations; maitred accepts {min} to {max}",
        min = secret::MIN_ITERATIONS,
        max = secret::MAX_ITERATIONS
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
            ScramError::MalformedSecret(what) => AuthError::MalformedSecret(what),
        }
    }
}
