//! MariaDB's `client_ed25519` (server login): the answer to the server's 32-byte nonce is
//! an Ed25519 signature whose expanded secret key is SHA-512 of the password itself (the
//! password plays the part of the 32-byte seed of standard Ed25519, at any length).
//!
//! Spec: <https://mariadb.com/kb/en/authentication-plugin-ed25519/> and the plugin's
//! reference implementation (`crypto_sign` in MariaDB's `plugin/auth_ed25519`).

use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

/// The plugin name servers ask for.
pub const PLUGIN: &[u8] = b"client_ed25519";
/// Length of the nonce the server signs with.
pub const NONCE_LEN: usize = 32;

fn expanded_key(password: &[u8]) -> ExpandedSecretKey {
    let digest: [u8; 64] = Sha512::digest(password).into();
    // from_bytes clamps the scalar half, as the reference implementation does.
    ExpandedSecretKey::from_bytes(&digest)
}

/// The 64-byte signature of `nonce` with the key derived from `password`.
pub fn sign(password: &[u8], nonce: &[u8]) -> [u8; 64] {
    let key = expanded_key(password);
    let public = VerifyingKey::from(&key);
    raw_sign::<Sha512>(&key, nonce, &public).to_bytes()
}

/// The public key the server stores for `password` (what `ed25519_password()` shows,
/// base64 without padding); for tests.
pub fn public_key(password: &[u8]) -> [u8; 32] {
    VerifyingKey::from(&expanded_key(password)).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier};

    #[test]
    fn public_key_matches_mariadb() {
        // mysql.user.authentication_string of a user created with
        // IDENTIFIED VIA ed25519 USING PASSWORD('app_secret') on MariaDB 10.11.
        let stored = "t3E/jfVbzjfQxgVOyMrac6hjKfzx4Vl/cv3bD6cpIoY";
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut bits = 0u32;
        let mut n = 0;
        let mut decoded = Vec::new();
        for c in stored.bytes() {
            let v = alphabet.iter().position(|a| *a == c).expect("base64") as u32;
            bits = (bits << 6) | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                decoded.push((bits >> n) as u8);
            }
        }
        assert_eq!(decoded, public_key(b"app_secret").to_vec());
    }

    #[test]
    fn signature_verifies_with_the_public_key() {
        let nonce = [7u8; NONCE_LEN];
        let sig = sign(b"pw", &nonce);
        let public = VerifyingKey::from_bytes(&public_key(b"pw")).expect("key");
        assert!(public.verify(&nonce, &Signature::from_bytes(&sig)).is_ok());
        assert!(public
            .verify(&[8u8; NONCE_LEN], &Signature::from_bytes(&sig))
            .is_err());
    }
}
