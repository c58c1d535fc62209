//! The verifier of a user maitred does not know, so that an unknown name goes through the
//! same exchange as a known one and fails at the same step (the proof).
//!
//! Its salt must look like a known user's: the same length, and the same at every attempt
//! at the same name (a known user's salt does not change between attempts either), or two
//! attempts would tell whether the name exists. So the salt is an HMAC-SHA-256 of the name
//! under a key drawn at random once per process and kept in memory only: stable for the
//! process, and not computable from outside.

use crate::keys::SALT_LEN;
use crate::{Hash, ScramKeys};
use rand::RngCore;

/// The verifier of the unknown user whose identity is `labels` (the user name, after
/// whatever else the protocol keys it by, such as MongoDB's mechanism), with the iteration
/// count a known user would have.
///
/// The salt is HMAC-SHA-256(process key, `"salt"` then each label after a NUL) cut to
/// [`SALT_LEN`] bytes; the keys are made the same way and are never shown nor matched (the
/// exchange of an unknown user is refused whatever the proof).
pub fn unknown_user(hash: Hash, iterations: u32, labels: &[&str]) -> ScramKeys {
    unknown_user_with_key(process_key(), hash, iterations, labels)
}

pub(crate) fn unknown_user_with_key(
    key: &[u8; 32],
    hash: Hash,
    iterations: u32,
    labels: &[&str],
) -> ScramKeys {
    let keyed = |what: &str| {
        let mut input = what.as_bytes().to_vec();
        for label in labels {
            input.push(0);
            input.extend_from_slice(label.as_bytes());
        }
        Hash::Sha256.hmac(key, &input)
    };
    let n = hash.output_len();
    ScramKeys {
        hash,
        salt: keyed("salt")[..SALT_LEN].to_vec(),
        iterations,
        stored_key: keyed("stored")[..n].to_vec(),
        server_key: keyed("server")[..n].to_vec(),
    }
}

/// The key of the mock verifiers: random, drawn once per process, kept in memory only (like
/// the salts drawn for users configured with a plaintext password).
fn process_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        key
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_salt_shaped_like_a_known_user() {
        for h in [Hash::Sha1, Hash::Sha256] {
            let first = unknown_user(h, 4096, &["nobody"]);
            assert_eq!(first, unknown_user(h, 4096, &["nobody"]), "deterministic");
            assert_ne!(first.salt, unknown_user(h, 4096, &["somebody"]).salt);
            let known = ScramKeys::derive(h, b"pw", 4096);
            assert_eq!(first.salt.len(), known.salt.len());
            assert_eq!(first.iterations, known.iterations);
            assert_eq!(first.stored_key.len(), known.stored_key.len());
            assert_eq!(first.server_key.len(), known.server_key.len());
        }
    }

    #[test]
    fn labels_are_separated_and_the_key_is_the_process_own() {
        let key = [7; 32];
        let salt = |labels: &[&str]| unknown_user_with_key(&key, Hash::Sha256, 1, labels).salt;
        // The input of one salt is "salt\0<label>\0<label>...": fixed, known value.
        let expected = Hash::Sha256.hmac(&key, b"salt\0SCRAM-SHA-1\0bob");
        assert_eq!(salt(&["SCRAM-SHA-1", "bob"]), expected[..SALT_LEN]);
        assert_ne!(salt(&["a", "bc"]), salt(&["ab", "c"]));
        assert_ne!(salt(&["bob"]), salt(&["SCRAM-SHA-1", "bob"]));
        assert_ne!(
            unknown_user(Hash::Sha256, 1, &["bob"]).salt,
            salt(&["bob"]),
            "another process (another key), other salts"
        );
    }
}
