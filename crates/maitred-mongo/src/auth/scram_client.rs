//! The client side of SCRAM as MongoDB uses it: maitred logging in to the server with the
//! upstream's password. The proof is maitred-scram's; this module reads server-first with
//! MongoDB's bounds on the iteration count and checks server-final.

use super::scram::{Mechanism, NONCE_BYTES};
use super::AuthError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use maitred_scram::client::{client_final, parse_server_first, signature_matches};
use maitred_scram::ScramKeys;

/// The iteration counts maitred accepts in a server's server-first message when it logs in
/// to a server. MongoDB itself refuses to be configured below 5000 and defaults to 10000
/// (SHA-1) and 15000 (SHA-256); the ceiling keeps a server, or anyone between maitred and an
/// unverified server, from making every login burn seconds of CPU.
pub const MIN_SERVER_ITERATIONS: u32 = 4096;
/// See [`MIN_SERVER_ITERATIONS`].
pub const MAX_SERVER_ITERATIONS: u32 = 1_000_000;

/// Client side: maitred logging in to the server.
#[derive(Debug)]
pub struct ScramClient {
    mechanism: Mechanism,
    user: String,
    password: String,
    client_nonce: String,
    client_first_bare: String,
    server_signature: Vec<u8>,
}

impl ScramClient {
    pub fn new(mechanism: Mechanism, user: &str, password: &str) -> ScramClient {
        let nonce = maitred_scram::random_nonce(NONCE_BYTES);
        Self::with_nonce(mechanism, user, password, &nonce)
    }

    fn with_nonce(mechanism: Mechanism, user: &str, password: &str, nonce: &str) -> ScramClient {
        let escaped = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            mechanism,
            user: user.to_owned(),
            password: password.to_owned(),
            client_nonce: nonce.to_owned(),
            client_first_bare: format!("n={escaped},r={nonce}"),
            server_signature: Vec::new(),
        }
    }

    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Takes server-first, returns client-final.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<String, AuthError> {
        let first = parse_server_first(server_first)?;
        // A malformed iteration count is refused before anything else is looked at.
        let iterations = first
            .iterations
            .map(|i| i.parse::<u64>())
            .transpose()
            .map_err(|_| AuthError::MalformedScram("iteration count"))?;
        let nonce = first
            .nonce
            .ok_or(AuthError::MalformedScram("server nonce"))?;
        if !nonce.starts_with(&self.client_nonce) {
            return Err(AuthError::NonceMismatch);
        }
        let salt = first
            .salt
            .and_then(|s| B64.decode(s).ok())
            .ok_or(AuthError::MalformedScram("salt"))?;
        let iterations = iterations.ok_or(AuthError::MalformedScram("missing iteration count"))?;
        let iterations = u32::try_from(iterations)
            .ok()
            .filter(|i| (MIN_SERVER_ITERATIONS..=MAX_SERVER_ITERATIONS).contains(i))
            .ok_or(AuthError::IterationCount(iterations))?;
        let m = self.mechanism;
        let password = m.prepared_password(&self.user, &self.password);
        let (keys, client_key) =
            ScramKeys::derive_with_client_key(m.hash(), &password, salt, iterations);
        let (message, auth_message) = client_final(
            m.hash(),
            &client_key,
            &self.client_first_bare,
            first.text,
            nonce,
        );
        self.server_signature = keys.server_signature(&auth_message);
        Ok(message)
    }

    /// Checks server-final (`v=...`).
    pub fn verify(&self, server_final: &[u8]) -> Result<(), AuthError> {
        let text = std::str::from_utf8(server_final)
            .map_err(|_| AuthError::MalformedScram("server-final is not UTF-8"))?;
        let v = text
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .ok_or(AuthError::MalformedScram("server-final"))?;
        let v = B64
            .decode(v)
            .map_err(|_| AuthError::MalformedScram("server signature"))?;
        if signature_matches(&self.server_signature, &v) {
            Ok(())
        } else {
            Err(AuthError::BadServerSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mongodb_sha1_vector() {
        // From the MongoDB auth spec's SCRAM-SHA-1 example (user "user", password "pencil").
        let mut c = ScramClient::with_nonce(
            Mechanism::Sha1,
            "user",
            "pencil",
            "fyko+d2lbbFgONRv9qkxdawL",
        );
        assert_eq!(c.client_first(), "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let fin = c
            .client_final(b"r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,s=rQ9ZY3MntBeuP3E1TDVC4w==,i=10000")
            .expect("final");
        assert_eq!(
            fin,
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawLHo+Vgk7qvUOKUwuWLIWg4l/9SraGMHEE,p=MC2T8BvbmWRckDw8oWl5IVghwCY="
        );
        c.verify(b"v=UMWeI25JD1yNYZRMpZ4VHvhZ9e0=")
            .expect("server signature");
        assert_eq!(
            c.verify(b"v=UMWeI25JD1yNYZRMpZ4VHvhZ9f0="),
            Err(AuthError::BadServerSignature)
        );
    }

    #[test]
    fn server_iteration_counts_are_bounded() {
        let first = |i: &str| format!("r=abcdefXYZ,s=rQ9ZY3MntBeuP3E1TDVC4w==,i={i}");
        let client = || ScramClient::with_nonce(Mechanism::Sha256, "user", "pencil", "abcdef");
        assert!(client().client_final(first("15000").as_bytes()).is_ok());
        for (count, expected) in [
            ("4095", AuthError::IterationCount(4095)),
            ("1000001", AuthError::IterationCount(1_000_001)),
            ("99999999999", AuthError::IterationCount(99_999_999_999)),
            ("x", AuthError::MalformedScram("iteration count")),
        ] {
            assert_eq!(
                client().client_final(first(count).as_bytes()),
                Err(expected),
                "i={count}"
            );
        }
        let message = AuthError::IterationCount(5_000_000).to_string();
        assert!(
            message.contains("5000000") && message.contains("1000000"),
            "{message}"
        );
    }

    #[test]
    fn refuses_a_server_first_that_does_not_follow_client_first() {
        let client = || ScramClient::with_nonce(Mechanism::Sha256, "user", "pencil", "abcdef");
        let refused = |m: &str| client().client_final(m.as_bytes()).err();
        let bad = |m| Some(AuthError::MalformedScram(m));
        assert_eq!(refused("s=c2FsdA==,i=5000"), bad("server nonce"));
        assert_eq!(
            refused("r=xbcdefXYZ,s=c2FsdA==,i=5000"),
            Some(AuthError::NonceMismatch)
        );
        assert_eq!(refused("r=abcdefXYZ,s=!!,i=5000"), bad("salt"));
        assert_eq!(
            refused("r=abcdefXYZ,s=c2FsdA=="),
            bad("missing iteration count")
        );
        // The iteration count is read first.
        assert_eq!(refused("r=x,i=y"), bad("iteration count"));
    }
}
