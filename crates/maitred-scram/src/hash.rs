//! The hash function of a SCRAM mechanism: H(), HMAC() and Hi() (PBKDF2-HMAC) of RFC 5802.
//!
//! A value rather than a type parameter: MongoDB clients pick the mechanism at run time
//! (saslStart's `mechanism`), so each exchange carries its hash with its keys.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SCRAM-SHA-1 (RFC 5802).
    Sha1,
    /// SCRAM-SHA-256 (RFC 7677).
    Sha256,
}

impl Hash {
    /// The SASL mechanism name.
    pub fn mechanism(self) -> &'static str {
        match self {
            Hash::Sha1 => "SCRAM-SHA-1",
            Hash::Sha256 => "SCRAM-SHA-256",
        }
    }

    /// The length of the hash's output, and so of every key and proof.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }

    /// H(data).
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => Sha1::digest(data).to_vec(),
            Hash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// HMAC(key, data).
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => hmac_of::<Hmac<Sha1>>(key, data),
            Hash::Sha256 => hmac_of::<Hmac<Sha256>>(key, data),
        }
    }

    /// SaltedPassword = Hi(password, salt, iterations). Costly by design: call it when keys
    /// are derived (at start, off the reactor), never per message.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.output_len()];
        match self {
            Hash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
            Hash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
        }
        out
    }
}

fn hmac_of<M: Mac + KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = match <M as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC pads or hashes keys of any length: new_from_slice cannot fail for it.
        Err(_) => unreachable!("HMAC takes keys of any size"),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `a XOR b`, as long as the shorter of the two.
pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lengths_match_the_functions() {
        for h in [Hash::Sha1, Hash::Sha256] {
            assert_eq!(h.digest(b"x").len(), h.output_len());
            assert_eq!(h.hmac(b"k", b"x").len(), h.output_len());
            assert_eq!(h.salted_password(b"p", b"s", 2).len(), h.output_len());
        }
    }

    #[test]
    fn hmac_accepts_keys_of_any_length() {
        for h in [Hash::Sha1, Hash::Sha256] {
            assert_eq!(h.hmac(&[], b"x").len(), h.output_len());
            assert_eq!(h.hmac(&[1; 300], b"x").len(), h.output_len());
        }
    }
}
