//! What a SCRAM server stores about a user (the verifier) and the ClientKey a client proves
//! it knows. RFC 5802 section 3:
//!
//! ```text
//! SaltedPassword = Hi(password, salt, iterations)
//! ClientKey      = HMAC(SaltedPassword, "Client Key")
//! StoredKey      = H(ClientKey)
//! ServerKey      = HMAC(SaltedPassword, "Server Key")
//! ```

use crate::Hash;
use rand::RngCore;

/// The length of the salts maitred draws (PostgreSQL's length too).
pub const SALT_LEN: usize = 16;

/// A user's SCRAM verifier for one mechanism. Debug prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub hash: Hash,
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl std::fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramKeys(***)")
    }
}

impl ScramKeys {
    /// Derives the verifier with a fresh random salt. `password` is what the mechanism feeds
    /// to Hi() (the protocol crate prepares it). PBKDF2: run once, off the reactor.
    pub fn derive(hash: Hash, password: &[u8], iterations: u32) -> ScramKeys {
        let mut salt = vec![0u8; SALT_LEN];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::derive_with_salt(hash, password, salt, iterations)
    }

    /// Derives the verifier with the given salt.
    pub fn derive_with_salt(
        hash: Hash,
        password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> ScramKeys {
        Self::derive_with_client_key(hash, password, salt, iterations).0
    }

    /// Derives the verifier and the ClientKey (what a client side needs for its proof).
    pub fn derive_with_client_key(
        hash: Hash,
        password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> (ScramKeys, ClientKey) {
        let salted = hash.salted_password(password, &salt, iterations);
        let client_key = ClientKey(hash.hmac(&salted, b"Client Key"));
        let keys = ScramKeys {
            hash,
            salt,
            iterations,
            stored_key: client_key.stored_key(hash),
            server_key: hash.hmac(&salted, b"Server Key"),
        };
        (keys, client_key)
    }

    /// ServerSignature = HMAC(ServerKey, AuthMessage).
    pub fn server_signature(&self, auth_message: &str) -> Vec<u8> {
        self.hash.hmac(&self.server_key, auth_message.as_bytes())
    }

    /// ClientSignature = HMAC(StoredKey, AuthMessage).
    pub fn client_signature(&self, auth_message: &str) -> Vec<u8> {
        self.hash.hmac(&self.stored_key, auth_message.as_bytes())
    }
}

/// A user's ClientKey: enough to log in to a server that stores the matching StoredKey, so
/// it is a secret (keep it in memory only). Debug prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey(pub Vec<u8>);

impl ClientKey {
    /// StoredKey = H(ClientKey).
    pub fn stored_key(&self, hash: Hash) -> Vec<u8> {
        hash.digest(&self.0)
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_have_the_hash_length_and_a_fresh_salt() {
        for h in [Hash::Sha1, Hash::Sha256] {
            let one = ScramKeys::derive(h, b"pw", 2);
            let two = ScramKeys::derive(h, b"pw", 2);
            assert_eq!(one.salt.len(), SALT_LEN);
            assert_ne!(one.salt, two.salt);
            assert_eq!(one.stored_key.len(), h.output_len());
            assert_eq!(one.server_key.len(), h.output_len());
            let (again, client_key) =
                ScramKeys::derive_with_client_key(h, b"pw", one.salt.clone(), 2);
            assert_eq!(again, one, "same salt, same keys");
            assert_eq!(client_key.stored_key(h), one.stored_key);
        }
    }

    #[test]
    fn debug_hides_the_keys() {
        let keys = ScramKeys::derive(Hash::Sha256, b"secret", 2);
        assert_eq!(format!("{keys:?}"), "ScramKeys(***)");
        assert_eq!(format!("{:?}", ClientKey(vec![1; 32])), "ClientKey(***)");
    }
}
