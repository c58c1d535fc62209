//! A user's password as maitred keeps it: derived SCRAM keys and/or the md5 hash.
//!
//! Accepted forms, like PostgreSQL's `pg_authid.rolpassword`:
//! - `SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>`
//! - `md5<32 hex digits>` (md5 of password + user name)
//! - anything else is a plaintext password, from which both are derived.

use super::AuthError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Iterations used when maitred derives SCRAM keys itself (PostgreSQL's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// The smallest iteration count accepted, in a stored secret or from a server.
pub const MIN_ITERATIONS: u32 = 1;
/// The largest iteration count accepted, in a stored secret (clients would derive that many
/// rounds at every login) or from a server (maitred would, at every server login): about a
/// second of CPU at 1,000,000, 250 times PostgreSQL's default of 4096.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// The SCRAM-SHA-256 verifier of one user.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramKeys(***)")
    }
}

impl ScramKeys {
    /// Derives keys from a plaintext password with a fresh random salt.
    pub fn derive(password: &str, iterations: u32) -> ScramKeys {
        let mut salt = vec![0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::derive_with_salt(password, salt, iterations)
    }

    pub fn derive_with_salt(password: &str, salt: Vec<u8>, iterations: u32) -> ScramKeys {
        let salted = salted_password(password.as_bytes(), &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let server_key = hmac(&salted, b"Server Key");
        ScramKeys {
            salt,
            iterations,
            stored_key,
            server_key,
        }
    }

    /// Keys nobody knows the password of, so that an unknown user goes through the same
    /// exchange as a known one and fails at the same step.
    ///
    /// The salt is HMAC-SHA256(process key, user name) cut to 16 bytes (the length of the
    /// salts maitred derives and PostgreSQL stores), and the iteration count is
    /// [`DEFAULT_ITERATIONS`]: a name asked for twice gets the same salt, as a known user
    /// does, so two attempts do not tell whether the name exists. The key is random per
    /// process ([`mock_key`]), so the salts cannot be computed from outside.
    pub fn unknown_user(user: &str) -> ScramKeys {
        Self::unknown_user_with_key(mock_key(), user)
    }

    fn unknown_user_with_key(key: &[u8; 32], user: &str) -> ScramKeys {
        let salt = hmac(key, &[b"salt\0".as_slice(), user.as_bytes()].concat());
        ScramKeys {
            salt: salt[..16].to_vec(),
            iterations: DEFAULT_ITERATIONS,
            // Never shown and never matched: the exchange of an unknown user is refused
            // whatever the proof.
            stored_key: hmac(key, &[b"stored\0".as_slice(), user.as_bytes()].concat()),
            server_key: hmac(key, &[b"server\0".as_slice(), user.as_bytes()].concat()),
        }
    }

    /// Parses PostgreSQL's stored form `SCRAM-SHA-256$iter:salt$stored:server`.
    pub fn parse(secret: &str) -> Result<ScramKeys, AuthError> {
        let bad = AuthError::MalformedSecret;
        let rest = secret
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(bad("missing SCRAM-SHA-256$ prefix"))?;
        let (iter_salt, keys) = rest.split_once('$').ok_or(bad("missing '$'"))?;
        let (iter, salt) = iter_salt.split_once(':').ok_or(bad("missing ':'"))?;
        let (stored, server) = keys.split_once(':').ok_or(bad("missing ':'"))?;
        let iterations: u32 = iter.parse().map_err(|_| bad("iterations"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(bad("iteration count out of range"));
        }
        let salt = B64.decode(salt).map_err(|_| bad("salt"))?;
        let stored_key = decode_key(stored).ok_or(bad("StoredKey"))?;
        let server_key = decode_key(server).ok_or(bad("ServerKey"))?;
        Ok(ScramKeys {
            salt,
            iterations,
            stored_key,
            server_key,
        })
    }
}

/// The key of the mock salts of unknown users: random, drawn once per process and kept in
/// memory only (like the salts maitred draws for users configured with a plaintext password).
pub fn mock_key() -> &'static [u8; 32] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        key
    })
}

fn decode_key(b64: &str) -> Option<[u8; 32]> {
    B64.decode(b64).ok()?.try_into().ok()
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; new_from_slice cannot fail for it.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any size"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
    out
}

/// Everything maitred can check a user's password against.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub scram: Option<ScramKeys>,
    /// `md5(password || user)` as 32 lowercase hex digits.
    pub md5_hash: Option<String>,
}

impl Credentials {
    /// Builds credentials from a configured password in any of the accepted forms.
    pub fn from_configured(user: &str, password: &str) -> Result<Credentials, AuthError> {
        if password.starts_with("SCRAM-SHA-256$") {
            return Ok(Credentials {
                user: user.to_owned(),
                scram: Some(ScramKeys::parse(password)?),
                md5_hash: None,
            });
        }
        if let Some(hex) = password.strip_prefix("md5") {
            if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(Credentials {
                    user: user.to_owned(),
                    scram: None,
                    md5_hash: Some(hex.to_ascii_lowercase()),
                });
            }
        }
        // The salt of a plaintext password is the one an unknown user of this name would
        // get: stable for the process (across reloads and per-login derivations, as for the
        // admin console), so known and unknown users look alike however often they are tried.
        let salt = ScramKeys::unknown_user(user).salt;
        Ok(Credentials {
            user: user.to_owned(),
            scram: Some(ScramKeys::derive_with_salt(
                password,
                salt,
                DEFAULT_ITERATIONS,
            )),
            md5_hash: Some(super::md5::user_hash(user, password)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The derivation itself is checked against the RFC 7677 vector in scram.rs.
    #[test]
    fn parses_postgres_stored_secret() {
        let s = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
        let keys = ScramKeys::parse(s).expect("valid");
        assert_eq!(keys.iterations, 4096);
        assert_eq!(keys.salt.len(), 16);
    }

    #[test]
    fn rejects_bad_stored_secrets() {
        assert!(ScramKeys::parse("SCRAM-SHA-256$0:abc$a:b").is_err());
        let keys = "W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
        assert!(ScramKeys::parse(&format!("SCRAM-SHA-256$1000000:{keys}")).is_ok());
        assert!(ScramKeys::parse(&format!("SCRAM-SHA-256$1000001:{keys}")).is_err());
        assert!(ScramKeys::parse("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AA==:AA==").is_err());
        assert!(ScramKeys::parse("plain").is_err());
    }

    #[test]
    fn credentials_from_each_form() {
        let plain = Credentials::from_configured("app", "secret").expect("plain");
        assert!(plain.scram.is_some() && plain.md5_hash.is_some());
        let again = Credentials::from_configured("app", "other").expect("plain");
        let salt = |c: &Credentials| c.scram.as_ref().map(|k| k.salt.clone());
        assert_eq!(
            salt(&plain),
            salt(&again),
            "a plaintext password's salt is stable per user, as an unknown user's"
        );
        assert_eq!(salt(&plain), Some(ScramKeys::unknown_user("app").salt));
        let md5 = Credentials::from_configured("app", "md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
            .expect("md5");
        assert!(md5.scram.is_none() && md5.md5_hash.is_some());
    }

    #[test]
    fn unknown_users_get_a_stable_salt_per_name_shaped_like_a_known_one() {
        let first = ScramKeys::unknown_user("nobody");
        let second = ScramKeys::unknown_user("nobody");
        assert_eq!(first.salt, second.salt, "same name, same salt");
        assert_eq!(first.iterations, second.iterations);
        assert_ne!(first.salt, ScramKeys::unknown_user("somebody").salt);
        let known = ScramKeys::derive("pw", DEFAULT_ITERATIONS);
        assert_eq!(
            first.salt.len(),
            known.salt.len(),
            "salt length of a known user"
        );
        assert_eq!(
            first.iterations, known.iterations,
            "iterations of a known user"
        );
        // Another process (another key) gives other salts: they cannot be computed outside.
        let other = ScramKeys::unknown_user_with_key(&[7; 32], "nobody");
        assert_ne!(first.salt, other.salt);
        assert_eq!(format!("{first:?}"), "ScramKeys(***)");
    }

    #[test]
    fn debug_hides_keys() {
        let keys = ScramKeys::derive("secret", 16);
        assert_eq!(format!("{keys:?}"), "ScramKeys(***)");
    }
}
