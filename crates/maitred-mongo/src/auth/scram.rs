//! SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802 / RFC 7677) as MongoDB uses them: the server
//! side (clients logging in to maitred) is maitred-scram's exchange; this module adds
//! MongoDB's mechanism names, iteration counts, nonce length and password preparation.
//!
//! MongoDB specifics: SCRAM-SHA-1 hashes the password first as
//! `hex(md5("<user>:mongo:<password>"))`; SCRAM-SHA-256 uses the password itself
//! (SASLprep is the identity for the ASCII passwords maitred accepts in config).
//! Spec: <https://github.com/mongodb/specifications/blob/master/source/auth/auth.md>.

use super::AuthError;
use maitred_scram::Hash;
use md5::{Digest as _, Md5};

pub use super::scram_client::ScramClient;
pub use maitred_scram::ScramKeys;

/// Random bytes in maitred's part of a nonce (32 characters of base64).
pub(crate) const NONCE_BYTES: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Sha1,
    Sha256,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        self.hash().mechanism()
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-1" => Some(Mechanism::Sha1),
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            _ => None,
        }
    }

    /// MongoDB's default iteration counts.
    pub fn default_iterations(self) -> u32 {
        match self {
            Mechanism::Sha1 => 10_000,
            Mechanism::Sha256 => 15_000,
        }
    }

    pub(crate) fn hash(self) -> Hash {
        match self {
            Mechanism::Sha1 => Hash::Sha1,
            Mechanism::Sha256 => Hash::Sha256,
        }
    }

    /// The password as this mechanism feeds it to PBKDF2.
    pub(crate) fn prepared_password(self, user: &str, password: &str) -> Vec<u8> {
        match self {
            Mechanism::Sha1 => {
                let digest = Md5::digest(format!("{user}:mongo:{password}").as_bytes());
                digest
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .into_bytes()
            }
            Mechanism::Sha256 => password.as_bytes().to_vec(),
        }
    }
}

/// Derives a user's verifier with a random salt (PBKDF2: call off the reactor or once at
/// start).
pub fn derive_keys(mechanism: Mechanism, user: &str, password: &str, iterations: u32) -> ScramKeys {
    let password = mechanism.prepared_password(user, password);
    ScramKeys::derive(mechanism.hash(), &password, iterations)
}

/// Derives a user's verifier with the given salt.
pub fn derive_keys_with_salt(
    mechanism: Mechanism,
    user: &str,
    password: &str,
    salt: Vec<u8>,
    iterations: u32,
) -> ScramKeys {
    let password = mechanism.prepared_password(user, password);
    ScramKeys::derive_with_salt(mechanism.hash(), &password, salt, iterations)
}

/// Keys nobody knows the password of: an unknown user fails at the same step. Its salt is
/// stable per mechanism and name for the process ([`maitred_scram::mock`]) and its
/// iteration count the mechanism's default, as for a configured user, so two attempts do
/// not tell whether the name exists.
pub fn unknown_user_keys(mechanism: Mechanism, user: &str) -> ScramKeys {
    let labels = [mechanism.name(), user];
    maitred_scram::mock::unknown_user(mechanism.hash(), mechanism.default_iterations(), &labels)
}

/// The user name in a client-first message (`n=`), with `=2C` / `=3D` decoded.
pub fn client_first_user(client_first: &[u8]) -> Result<String, AuthError> {
    Ok(maitred_scram::messages::client_first_user(client_first)?)
}

/// Server side of an exchange after the server-first message was produced.
#[derive(Debug)]
pub struct ScramServer(maitred_scram::ScramServer);

impl ScramServer {
    /// Reads client-first, returns the exchange and the server-first message to send.
    pub fn start(keys: ScramKeys, client_first: &[u8]) -> Result<(ScramServer, String), AuthError> {
        let nonce = maitred_scram::random_nonce(NONCE_BYTES);
        let (server, first) = maitred_scram::ScramServer::start(keys, client_first, &nonce)?;
        Ok((ScramServer(server), first))
    }

    /// Checks client-final; on success returns the server-final message.
    pub fn finish(self, client_final: &[u8]) -> Result<String, AuthError> {
        Ok(self.0.finish(client_final)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine;

    fn exchange(m: Mechanism, server_pw: &str, client_pw: &str) -> Result<(), AuthError> {
        let keys = derive_keys(m, "user", server_pw, 4096);
        let mut c = ScramClient::new(m, "user", client_pw);
        let first = c.client_first();
        assert_eq!(client_first_user(first.as_bytes())?, "user");
        let (s, server_first) = ScramServer::start(keys, first.as_bytes())?;
        let fin = c.client_final(server_first.as_bytes())?;
        let server_final = s.finish(fin.as_bytes())?;
        c.verify(server_final.as_bytes())
    }

    #[test]
    fn unknown_users_get_a_stable_salt_per_name_shaped_like_a_known_one() {
        for m in [Mechanism::Sha1, Mechanism::Sha256] {
            let first = unknown_user_keys(m, "nobody");
            assert_eq!(first.salt, unknown_user_keys(m, "nobody").salt);
            assert_ne!(first.salt, unknown_user_keys(m, "somebody").salt);
            let known = derive_keys(m, "user", "pw", m.default_iterations());
            assert_eq!(first.salt.len(), known.salt.len());
            assert_eq!(first.iterations, known.iterations);
            assert_eq!(first.stored_key.len(), known.stored_key.len());
            // That another process (another key) gives other salts is checked in maitred-scram.
            let client_first = b"n,,n=nobody,r=abc";
            let (_, one) = ScramServer::start(first.clone(), client_first).expect("start");
            let (_, two) =
                ScramServer::start(unknown_user_keys(m, "nobody"), client_first).expect("start");
            let salt_of = |t: &str| {
                t.split(',')
                    .find(|a| a.starts_with("s="))
                    .map(str::to_owned)
            };
            assert_eq!(salt_of(&one), salt_of(&two), "{one} / {two}");
        }
        let sha1 = unknown_user_keys(Mechanism::Sha1, "nobody").salt;
        assert_ne!(sha1, unknown_user_keys(Mechanism::Sha256, "nobody").salt);
    }

    #[test]
    fn both_mechanisms_round_trip() {
        for m in [Mechanism::Sha1, Mechanism::Sha256] {
            assert_eq!(exchange(m, "pw", "pw"), Ok(()));
            assert_eq!(exchange(m, "pw", "nope"), Err(AuthError::WrongPassword));
        }
    }

    #[test]
    fn server_nonce_is_32_characters() {
        let keys = derive_keys(Mechanism::Sha256, "user", "pw", 4096);
        let (_, first) = ScramServer::start(keys, b"n,,n=user,r=abc").expect("start");
        let nonce = first.split(',').next().unwrap_or_default();
        assert_eq!(nonce.len(), "r=abc".len() + 32, "{first}");
    }

    #[test]
    fn rfc7677_vector_sha256() {
        // SCRAM-SHA-256 feeds the password itself to PBKDF2.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("b64");
        let keys = derive_keys_with_salt(Mechanism::Sha256, "user", "pencil", salt, 4096);
        let (server, first) = maitred_scram::ScramServer::start(
            keys,
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .expect("start");
        assert_eq!(
            first,
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let fin = server
            .finish(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .expect("proof accepted");
        assert_eq!(fin, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }
}
