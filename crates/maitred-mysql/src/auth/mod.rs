//! Password scrambles for both legs, without I/O.
//!
//! - Client side of maitred (clients log in to maitred): maitred hands out a 20-byte
//!   scramble and checks `mysql_native_password` or `caching_sha2_password` answers
//!   against the configured plaintext password. caching_sha2_password behaves as on a
//!   MySQL server: full authentication (the password over TLS, or RSA-encrypted with
//!   [`rsa_key`]) the first time a user logs in, the fast path once [`sha2_cache`] holds
//!   the user.
//! - Server side (maitred logs in to the server): answers for `mysql_native_password`,
//!   `caching_sha2_password` (including the RSA exchange of full authentication, or the
//!   password in clear over TLS) and MariaDB's `client_ed25519` ([`ed25519`]).
//!
//! Scrambles come from `mysql_common::scramble`.
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_authentication_methods.html>.

pub mod ed25519;
pub mod rsa_key;
pub mod sha2_cache;

use mysql_common::scramble::{scramble_native, scramble_sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

/// `mysql_native_password`.
pub const NATIVE: &[u8] = b"mysql_native_password";
/// `caching_sha2_password`.
pub const CACHING_SHA2: &[u8] = b"caching_sha2_password";
/// caching_sha2_password: "more data" byte meaning the fast path succeeded.
pub const FAST_AUTH_OK: u8 = 0x03;
/// caching_sha2_password: "more data" byte asking for full authentication.
pub const FULL_AUTH: u8 = 0x04;
/// caching_sha2_password: the client's request for the server's RSA public key.
pub const REQUEST_PUBLIC_KEY: u8 = 0x02;

/// Why a login failed (never says which part was wrong).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("wrong user name or password")]
    WrongPassword,
    #[error("authentication plugin {0} is not supported")]
    UnsupportedPlugin(String),
}

/// A fresh 20-byte scramble of printable, non-NUL bytes (as MySQL servers make them).
pub fn new_scramble() -> [u8; 20] {
    let mut s = [0u8; 20];
    for b in &mut s {
        *b = rand::random::<u8>() % 94 + 33;
    }
    s
}

/// The expected answer of `plugin` to `scramble` for `password` (empty for an empty
/// password, as clients send).
pub fn expected_answer(plugin: &[u8], scramble: &[u8], password: &[u8]) -> Option<Vec<u8>> {
    if password.is_empty() {
        return Some(Vec::new());
    }
    match plugin {
        NATIVE => scramble_native(scramble, password).map(|s| s.to_vec()),
        CACHING_SHA2 => scramble_sha256(scramble, password).map(|s| s.to_vec()),
        _ => None,
    }
}

/// Checks a client's answer in constant time.
pub fn verify(
    plugin: &[u8],
    scramble: &[u8],
    password: &[u8],
    answer: &[u8],
) -> Result<(), AuthError> {
    let expected = expected_answer(plugin, scramble, password).ok_or_else(|| {
        AuthError::UnsupportedPlugin(String::from_utf8_lossy(plugin).into_owned())
    })?;
    if expected.len() == answer.len() && bool::from(expected.ct_eq(answer)) {
        Ok(())
    } else {
        Err(AuthError::WrongPassword)
    }
}

/// Compares a password a client sent in full with the configured one, in constant time.
pub fn password_matches(expected: &[u8], got: &[u8]) -> bool {
    expected.len() == got.len() && bool::from(expected.ct_eq(got))
}

/// caching_sha2_password full authentication over a plain connection: the password with a
/// NUL, XORed with the nonce, encrypted with the server's RSA public key (PEM).
pub fn rsa_encrypted_password(password: &[u8], nonce: &[u8], pem: &[u8]) -> Option<Vec<u8>> {
    if nonce.is_empty() {
        return None;
    }
    let mut plain = password.to_vec();
    plain.push(0);
    for (i, b) in plain.iter_mut().enumerate() {
        *b ^= nonce[i % nonce.len()];
    }
    // mysql_common panics on a malformed key; a bad key must only fail this login.
    std::panic::catch_unwind(|| mysql_common::crypto::encrypt(&plain, pem)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_answer_checks() {
        let s = new_scramble();
        assert!(s.iter().all(|b| *b > 32 && *b < 127));
        let good = expected_answer(NATIVE, &s, b"secret").expect("native");
        assert_eq!(good.len(), 20);
        assert_eq!(verify(NATIVE, &s, b"secret", &good), Ok(()));
        assert_eq!(
            verify(NATIVE, &s, b"other", &good),
            Err(AuthError::WrongPassword)
        );
        assert_eq!(verify(NATIVE, &s, b"", &[]), Ok(()));
        assert_eq!(
            verify(NATIVE, &s, b"secret", &[]),
            Err(AuthError::WrongPassword)
        );
    }

    #[test]
    fn sha2_answer_checks_and_unknown_plugin() {
        let s = *b"abcdefghijklmnopqrst";
        let good = expected_answer(CACHING_SHA2, &s, b"pw").expect("sha2");
        assert_eq!(good.len(), 32);
        assert_eq!(verify(CACHING_SHA2, &s, b"pw", &good), Ok(()));
        assert!(matches!(
            verify(b"dialog", &s, b"pw", &good),
            Err(AuthError::UnsupportedPlugin(_))
        ));
    }

    #[test]
    fn bad_rsa_key_fails_softly() {
        assert_eq!(rsa_encrypted_password(b"pw", b"nonce", b"not a key"), None);
    }
}
