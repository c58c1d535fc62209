//! maitred's RSA key pair for caching_sha2_password full authentication of clients on
//! plain connections: the client asks for the public key (or has it), sends
//! `password NUL` XORed with the scramble and encrypted with RSA-OAEP (SHA-1, MGF1-SHA-1,
//! as MySQL's `RSA_PKCS1_OAEP_PADDING`), and maitred decrypts it.
//!
//! One key pair per process, generated the first time it is needed (off the reactor).
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html>.

use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Oaep, RsaPrivateKey};
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Key size, as MySQL's default.
const BITS: usize = 2048;

/// The private key and its public half as PEM (SubjectPublicKeyInfo, as MySQL sends it).
pub struct RsaKeyPair {
    private: RsaPrivateKey,
    public_pem: String,
}

impl std::fmt::Debug for RsaKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaKeyPair(***)")
    }
}

static KEY: OnceCell<Arc<RsaKeyPair>> = OnceCell::const_new();

impl RsaKeyPair {
    /// A fresh key pair (a CPU-heavy computation: call off the reactor).
    pub fn generate() -> Result<RsaKeyPair, String> {
        let private =
            RsaPrivateKey::new(&mut rand::thread_rng(), BITS).map_err(|e| e.to_string())?;
        let public_pem = private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| e.to_string())?;
        Ok(RsaKeyPair {
            private,
            public_pem,
        })
    }

    /// The process's key pair, generated on first use.
    pub async fn shared() -> Result<Arc<RsaKeyPair>, String> {
        KEY.get_or_try_init(|| async {
            tokio::task::spawn_blocking(RsaKeyPair::generate)
                .await
                .map_err(|e| e.to_string())?
                .map(Arc::new)
        })
        .await
        .cloned()
    }

    pub fn public_pem(&self) -> &[u8] {
        self.public_pem.as_bytes()
    }

    /// Length of a ciphertext under this key.
    pub fn ciphertext_len(&self) -> usize {
        BITS / 8
    }

    /// The password a client encrypted, or `None` if the ciphertext does not decrypt.
    pub fn decrypt_password(&self, ciphertext: &[u8], scramble: &[u8]) -> Option<Vec<u8>> {
        let mut plain = self
            .private
            .decrypt(Oaep::new::<sha1::Sha1>(), ciphertext)
            .ok()?;
        if scramble.is_empty() {
            return None;
        }
        for (i, b) in plain.iter_mut().enumerate() {
            *b ^= scramble[i % scramble.len()];
        }
        if plain.last() == Some(&0) {
            plain.pop();
        }
        Some(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_mysql_common_encrypts_decrypts() {
        let key = RsaKeyPair::generate().expect("key");
        assert!(key.public_pem().starts_with(b"-----BEGIN PUBLIC KEY-----"));
        let scramble = *b"abcdefghijklmnopqrst";
        // maitred's own client side (mysql_common, as towards servers).
        let enc = crate::auth::rsa_encrypted_password(b"s3cret", &scramble, key.public_pem())
            .expect("encrypt");
        assert_eq!(enc.len(), key.ciphertext_len());
        assert_eq!(
            key.decrypt_password(&enc, &scramble).as_deref(),
            Some(&b"s3cret"[..])
        );
        assert_eq!(key.decrypt_password(&enc[1..], &scramble), None);
        let mut flipped = enc.clone();
        flipped[10] ^= 1;
        assert_eq!(key.decrypt_password(&flipped, &scramble), None);
    }
}
