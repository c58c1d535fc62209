//! A user's password as maitred keeps it: derived SCRAM keys and/or the md5 hash.
//!
//! Accepted forms, like PostgreSQL's `pg_authid.rolpassword`:
//! - `SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>`
//! - `md5<32 hex digits>` (md5 of password + user name)
//! - anything else is a plaintext password, from which both are derived.

use super::AuthError;
use maitred_scram::Hash;

pub use maitred_scram::ScramKeys;

/// Iterations used when maitred derives SCRAM keys itself (PostgreSQL's default).
pub const DEFAULT_ITERATIONS: u32 = 4096;
/// The smallest iteration count accepted, in a stored secret or from a server.
pub const MIN_ITERATIONS: u32 = 1;
/// The largest iteration count accepted, in a stored secret (clients would derive that many
/// rounds at every login) or from a server (maitred would, at every server login): about a
/// second of CPU at 1,000,000, 250 times PostgreSQL's default of 4096.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// Derives SCRAM-SHA-256 keys from a plaintext password with a fresh random salt.
pub fn derive_keys(password: &str, iterations: u32) -> ScramKeys {
    ScramKeys::derive(Hash::Sha256, password.as_bytes(), iterations)
}

/// Derives SCRAM-SHA-256 keys from a plaintext password with the given salt.
pub fn derive_keys_with_salt(password: &str, salt: Vec<u8>, iterations: u32) -> ScramKeys {
    ScramKeys::derive_with_salt(Hash::Sha256, password.as_bytes(), salt, iterations)
}

/// Keys nobody knows the password of, so that an unknown user goes through the same
/// exchange as a known one and fails at the same step: a salt stable per name for the
/// process, as long as a known user's, and [`DEFAULT_ITERATIONS`]
/// ([`maitred_scram::mock`]), so two attempts do not tell whether the name exists.
pub fn unknown_user_keys(user: &str) -> ScramKeys {
    maitred_scram::mock::unknown_user(Hash::Sha256, DEFAULT_ITERATIONS, &[user])
}

/// Parses PostgreSQL's stored form `SCRAM-SHA-256$iter:salt$stored:server`.
pub fn parse_keys(secret: &str) -> Result<ScramKeys, AuthError> {
    maitred_scram::secret::parse(Hash::Sha256, secret, MIN_ITERATIONS..=MAX_ITERATIONS)
        .map_err(AuthError::from)
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
                scram: Some(parse_keys(password)?),
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
        let salt = unknown_user_keys(user).salt;
        Ok(Credentials {
            user: user.to_owned(),
            scram: Some(derive_keys_with_salt(password, salt, DEFAULT_ITERATIONS)),
            md5_hash: Some(super::md5::user_hash(user, password)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The derivation and the parsing are checked against the RFC 7677 vector in maitred-scram.
    #[test]
    fn parses_postgres_stored_secret() {
        let s = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
        let keys = parse_keys(s).expect("valid");
        assert_eq!(keys.iterations, 4096);
        assert_eq!(keys.salt.len(), 16);
    }

    #[test]
    fn rejects_bad_stored_secrets() {
        assert!(parse_keys("SCRAM-SHA-256$0:abc$a:b").is_err());
        let keys = "W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
        assert!(parse_keys(&format!("SCRAM-SHA-256$1000000:{keys}")).is_ok());
        assert!(parse_keys(&format!("SCRAM-SHA-256$1000001:{keys}")).is_err());
        assert!(parse_keys("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$AA==:AA==").is_err());
        assert!(parse_keys("plain").is_err());
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
        assert_eq!(salt(&plain), Some(unknown_user_keys("app").salt));
        let md5 = Credentials::from_configured("app", "md5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
            .expect("md5");
        assert!(md5.scram.is_none() && md5.md5_hash.is_some());
    }

    #[test]
    fn unknown_users_get_a_stable_salt_per_name_shaped_like_a_known_one() {
        let first = unknown_user_keys("nobody");
        let second = unknown_user_keys("nobody");
        assert_eq!(first.salt, second.salt, "same name, same salt");
        assert_eq!(first.iterations, second.iterations);
        assert_ne!(first.salt, unknown_user_keys("somebody").salt);
        let known = derive_keys("pw", DEFAULT_ITERATIONS);
        assert_eq!(
            first.salt.len(),
            known.salt.len(),
            "salt length of a known user"
        );
        assert_eq!(
            first.iterations, known.iterations,
            "iterations of a known user"
        );
        // That another process (another key) gives other salts is checked in maitred-scram.
        assert_eq!(format!("{first:?}"), "ScramKeys(***)");
    }

    #[test]
    fn debug_hides_keys() {
        let keys = derive_keys("secret", 16);
        assert_eq!(format!("{keys:?}"), "ScramKeys(***)");
    }
}
