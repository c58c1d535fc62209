//! SCRAM (RFC 5802) with SHA-1 and SHA-256 (RFC 7677), without channel binding: the one
//! implementation the PostgreSQL and MongoDB crates share. Pure functions and values, no I/O;
//! the protocol crates frame the messages (PostgreSQL's SASL messages, MongoDB's
//! saslStart/saslContinue documents) and prepare the password (MongoDB's SCRAM-SHA-1 digest).
//!
//! - [`hash`]: the two hash functions (digest, HMAC, PBKDF2).
//! - [`keys`]: a user's verifier (salt, iterations, StoredKey, ServerKey) and the ClientKey.
//! - [`secret`]: the stored text form `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
//! - [`mock`]: the verifier of an unknown user, whose salt is stable per name.
//! - [`messages`]: parsing client-first and client-final.
//! - [`server`]: the server side of one exchange, which also recovers the ClientKey.
//! - [`client`]: what a client side computes (server-first attributes, proof, signature).

pub mod client;
pub mod hash;
pub mod keys;
pub mod messages;
pub mod mock;
pub mod secret;
pub mod server;

pub use hash::Hash;
pub use keys::{ClientKey, ScramKeys};
pub use server::ScramServer;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use thiserror::Error;

/// A nonce of `random_bytes` random bytes, in base64 (printable, without commas, as SCRAM
/// wants), for server-first or client-first.
pub fn random_nonce(random_bytes: usize) -> String {
    let mut nonce = vec![0u8; random_bytes];
    rand::thread_rng().fill_bytes(&mut nonce);
    B64.encode(nonce)
}

/// Why an exchange or a stored secret was refused. Messages never contain secrets; the
/// protocol crates map these to their own errors (and texts).
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("SCRAM channel binding is not supported")]
    ChannelBindingUnsupported,
    #[error("SCRAM nonce mismatch")]
    NonceMismatch,
    #[error("wrong SCRAM proof")]
    WrongProof,
    #[error("malformed stored secret: {0}")]
    MalformedSecret(&'static str),
}

#[cfg(test)]
mod tests {
    #[test]
    fn nonces_are_fresh_base64() {
        assert_eq!(super::random_nonce(18).len(), 24);
        assert_eq!(super::random_nonce(24).len(), 32);
        assert_ne!(super::random_nonce(18), super::random_nonce(18));
    }
}
