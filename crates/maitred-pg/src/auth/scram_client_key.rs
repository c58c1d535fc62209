//! The client side of SCRAM-SHA-256 when maitred knows a user's ClientKey but not the
//! password (auth_query): the ClientKey a client's proof revealed answers the server's
//! challenge, because the server's salt and iteration count are those of the secret the
//! ClientKey was checked against. ClientSignature = HMAC(H(ClientKey), AuthMessage);
//! ClientProof = ClientKey XOR ClientSignature. The server is verified with the secret's
//! ServerKey.

use super::scram::{ClientKey, NONCE_BYTES};
use super::secret::ScramKeys;
use super::AuthError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use maitred_scram::client::{client_final, parse_server_first, signature_matches};

/// One login to a server with a ClientKey: [`ClientKeyLogin::start`] gives client-first,
/// [`ClientKeyLogin::respond`] answers server-first, [`ClientKeyLogin::verify_final`] checks
/// the server's signature.
#[derive(Debug)]
pub struct ClientKeyLogin {
    client_key: ClientKey,
    keys: ScramKeys,
    client_first_bare: String,
    client_nonce: String,
    auth_message: Option<String>,
}

impl ClientKeyLogin {
    /// Starts the exchange; returns it and the client-first message to send.
    pub fn start(client_key: ClientKey, keys: ScramKeys) -> (ClientKeyLogin, String) {
        Self::start_with_nonce(client_key, keys, &maitred_scram::random_nonce(NONCE_BYTES))
    }

    fn start_with_nonce(
        client_key: ClientKey,
        keys: ScramKeys,
        nonce: &str,
    ) -> (ClientKeyLogin, String) {
        // PostgreSQL takes the user from the startup packet, not from n= (libpq sends it empty).
        let client_first_bare = format!("n=,r={nonce}");
        let first = format!("n,,{client_first_bare}");
        (
            ClientKeyLogin {
                client_key,
                keys,
                client_first_bare,
                client_nonce: nonce.to_owned(),
                auth_message: None,
            },
            first,
        )
    }

    /// Reads server-first, returns client-final. Fails with [`AuthError::SecretOutOfDate`]
    /// when the server's salt or iteration count is not the secret's (the password changed
    /// since the secret was fetched).
    pub fn respond(&mut self, server_first: &[u8]) -> Result<String, AuthError> {
        let first = parse_server_first(server_first)?;
        let nonce = first
            .nonce
            .ok_or(AuthError::MalformedScram("missing nonce"))?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(AuthError::NonceMismatch);
        }
        let salt = B64
            .decode(
                first
                    .salt
                    .ok_or(AuthError::MalformedScram("missing salt"))?,
            )
            .map_err(|_| AuthError::MalformedScram("salt"))?;
        let iterations: u32 = first
            .iterations
            .ok_or(AuthError::MalformedScram("missing iteration count"))?
            .parse()
            .map_err(|_| AuthError::MalformedScram("iteration count"))?;
        if salt != self.keys.salt || iterations != self.keys.iterations {
            return Err(AuthError::SecretOutOfDate);
        }
        let (message, auth_message) = client_final(
            self.keys.hash,
            &self.client_key,
            &self.client_first_bare,
            first.text,
            nonce,
        );
        self.auth_message = Some(auth_message);
        Ok(message)
    }

    /// Checks server-final (`v=<ServerSignature>`) against the secret's ServerKey.
    pub fn verify_final(&self, server_final: &[u8]) -> Result<(), AuthError> {
        let auth_message = self.auth_message.as_ref().ok_or(AuthError::MalformedScram(
            "server-final before server-first",
        ))?;
        let text = std::str::from_utf8(server_final)
            .map_err(|_| AuthError::MalformedScram("server-final is not UTF-8"))?;
        let signature = text
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v.split(',').next().unwrap_or(v)).ok())
            .ok_or(AuthError::MalformedScram("server-final"))?;
        if signature_matches(&self.keys.server_signature(auth_message), &signature) {
            Ok(())
        } else {
            Err(AuthError::MalformedScram("server signature does not match"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::ScramServer;
    use crate::auth::secret::derive_keys;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    /// A real client logs in to maitred's SCRAM server; the ClientKey its proof reveals
    /// then logs in to another SCRAM server holding the same secret.
    fn revealed_key(keys: &ScramKeys, password: &str) -> ClientKey {
        let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
        let (server, first) = ScramServer::start(keys.clone(), client.message()).expect("start");
        client.update(first.as_bytes()).expect("server-first");
        let (fin, key) = server
            .finish_revealing_client_key(client.message())
            .expect("proof accepted");
        client.finish(fin.as_bytes()).expect("server verified");
        key
    }

    #[test]
    fn revealed_client_key_logs_in_to_a_server_with_the_same_secret() {
        let keys = derive_keys("s3cret", 64);
        let key = revealed_key(&keys, "s3cret");
        let (mut login, first) = ClientKeyLogin::start(key, keys.clone());
        let (server, server_first) = ScramServer::start(keys, first.as_bytes()).expect("start");
        let client_final = login.respond(server_first.as_bytes()).expect("respond");
        let server_final = server.finish(client_final.as_bytes()).expect("accepted");
        login
            .verify_final(server_final.as_bytes())
            .expect("server verified");
    }

    #[test]
    fn a_wrong_key_is_refused_and_a_changed_salt_is_out_of_date() {
        let keys = derive_keys("s3cret", 64);
        let (mut login, first) = ClientKeyLogin::start(ClientKey(vec![7; 32]), keys.clone());
        let (server, server_first) =
            ScramServer::start(keys.clone(), first.as_bytes()).expect("start");
        let client_final = login.respond(server_first.as_bytes()).expect("respond");
        assert_eq!(
            server.finish(client_final.as_bytes()).err(),
            Some(AuthError::WrongPassword)
        );
        // The server's password was changed: new salt.
        let key = revealed_key(&keys, "s3cret");
        let changed = derive_keys("s3cret", 64);
        let (mut login, first) = ClientKeyLogin::start(key, keys);
        let (_server, server_first) = ScramServer::start(changed, first.as_bytes()).expect("start");
        assert_eq!(
            login.respond(server_first.as_bytes()).err(),
            Some(AuthError::SecretOutOfDate)
        );
    }

    #[test]
    fn refuses_a_forged_server_signature_and_a_foreign_nonce() {
        let keys = derive_keys("s3cret", 64);
        let key = revealed_key(&keys, "s3cret");
        let (mut login, _first) = ClientKeyLogin::start_with_nonce(key, keys.clone(), "abc");
        let salt = B64.encode(&keys.salt);
        assert_eq!(
            login
                .respond(format!("r=xyz123,s={salt},i=64").as_bytes())
                .err(),
            Some(AuthError::NonceMismatch)
        );
        login
            .respond(format!("r=abc123,s={salt},i=64").as_bytes())
            .expect("respond");
        assert!(login
            .verify_final(format!("v={}", B64.encode([0u8; 32])).as_bytes())
            .is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", ClientKey(vec![1; 32])), "ClientKey(***)");
    }
}
