//! Server side of SCRAM-SHA-256 without channel binding (RFC 5802 / RFC 7677).
//!
//! Two steps: [`ScramServer::start`] takes the client-first message and produces the
//! server-first message; [`ScramServer::finish`] checks the client's proof and produces the
//! server-final message.

use super::secret::{hmac, ScramKeys, MAX_ITERATIONS, MIN_ITERATIONS};
use super::AuthError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The mechanism name PostgreSQL clients ask for.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// A SCRAM exchange after the server-first message was sent.
#[derive(Debug, Clone)]
pub struct ScramServer {
    keys: ScramKeys,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    /// Reads client-first, returns the exchange and the server-first message to send.
    pub fn start(keys: ScramKeys, client_first: &[u8]) -> Result<(ScramServer, String), AuthError> {
        let mut server_nonce = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut server_nonce);
        Self::start_with_nonce(keys, client_first, &B64.encode(server_nonce))
    }

    fn start_with_nonce(
        keys: ScramKeys,
        client_first: &[u8],
        server_nonce: &str,
    ) -> Result<(ScramServer, String), AuthError> {
        let text = std::str::from_utf8(client_first)
            .map_err(|_| AuthError::MalformedScram("client-first is not UTF-8"))?;
        // gs2-header = cbind-flag "," [authzid] ","
        let (flag, rest) = text
            .split_once(',')
            .ok_or(AuthError::MalformedScram("gs2 header"))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(AuthError::ChannelBindingUnsupported),
            _ => return Err(AuthError::MalformedScram("channel binding flag")),
        }
        let (_authzid, bare) = rest
            .split_once(',')
            .ok_or(AuthError::MalformedScram("gs2 header"))?;
        let gs2_header = text[..text.len() - bare.len()].to_owned();
        let mut client_nonce = None;
        for attr in bare.split(',') {
            if let Some(r) = attr.strip_prefix("r=") {
                client_nonce = Some(r);
            } else if attr.starts_with("m=") {
                return Err(AuthError::MalformedScram("mandatory extension"));
            }
        }
        let client_nonce = client_nonce.ok_or(AuthError::MalformedScram("missing nonce"))?;
        if client_nonce.is_empty() || client_nonce.contains(',') {
            return Err(AuthError::MalformedScram("nonce"));
        }
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&keys.salt),
            keys.iterations
        );
        Ok((
            ScramServer {
                keys,
                gs2_header,
                client_first_bare: bare.to_owned(),
                server_first: server_first.clone(),
                nonce,
            },
            server_first,
        ))
    }

    /// The same exchange checked against other keys, if the client's proof can be checked
    /// against them: only keys with the salt and iteration count the client was sent
    /// (server-first) can be.
    pub fn with_keys(mut self, keys: ScramKeys) -> Option<ScramServer> {
        if keys.salt != self.keys.salt || keys.iterations != self.keys.iterations {
            return None;
        }
        self.keys = keys;
        Some(self)
    }

    /// The keys the proof is checked against.
    pub fn keys(&self) -> &ScramKeys {
        &self.keys
    }

    /// Checks client-final; on success returns the server-final message to send.
    pub fn finish(self, client_final: &[u8]) -> Result<String, AuthError> {
        self.finish_revealing_client_key(client_final)
            .map(|(server_final, _)| server_final)
    }

    /// Like [`ScramServer::finish`], and also returns the ClientKey the client's proof
    /// reveals (ClientProof XOR ClientSignature), with which maitred can log in to the
    /// server as this user (auth_query). Keep it in memory only.
    pub fn finish_revealing_client_key(
        self,
        client_final: &[u8],
    ) -> Result<(String, ClientKey), AuthError> {
        let text = std::str::from_utf8(client_final)
            .map_err(|_| AuthError::MalformedScram("client-final is not UTF-8"))?;
        let (without_proof, proof_b64) = text
            .rsplit_once(",p=")
            .ok_or(AuthError::MalformedScram("missing proof"))?;
        let mut channel = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(c) = attr.strip_prefix("c=") {
                channel = Some(c);
            } else if let Some(r) = attr.strip_prefix("r=") {
                nonce = Some(r);
            }
        }
        let channel = channel.ok_or(AuthError::MalformedScram("missing channel binding"))?;
        if B64.decode(channel).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(AuthError::ChannelBindingUnsupported);
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(AuthError::NonceMismatch);
        }
        let proof = B64
            .decode(proof_b64)
            .map_err(|_| AuthError::MalformedScram("proof"))?;
        if proof.len() != 32 {
            return Err(AuthError::MalformedScram("proof length"));
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let signature = hmac(&self.keys.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for (k, (p, s)) in client_key.iter_mut().zip(proof.iter().zip(signature)) {
            *k = p ^ s;
        }
        let derived_stored: [u8; 32] = Sha256::digest(client_key).into();
        if !bool::from(derived_stored.ct_eq(&self.keys.stored_key)) {
            return Err(AuthError::WrongPassword);
        }
        let server_signature = hmac(&self.keys.server_key, auth_message.as_bytes());
        Ok((
            format!("v={}", B64.encode(server_signature)),
            ClientKey(client_key),
        ))
    }
}

/// A user's SCRAM ClientKey (HMAC(SaltedPassword, "Client Key")): enough to log in to a server
/// that stores the matching StoredKey, so it is a secret. Debug prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientKey(pub [u8; 32]);

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientKey(***)")
    }
}

/// Checks the iteration count of a server's server-first message (`r=...,s=...,i=...`) before
/// maitred derives its key from it: a server (or anyone between maitred and an unverified
/// server) asking for billions of rounds would otherwise burn seconds of CPU per login.
pub fn check_server_first_iterations(server_first: &[u8]) -> Result<u32, AuthError> {
    let text = std::str::from_utf8(server_first)
        .map_err(|_| AuthError::MalformedScram("server-first is not UTF-8"))?;
    let count = text
        .split(',')
        .find_map(|attr| attr.strip_prefix("i="))
        .ok_or(AuthError::MalformedScram("missing iteration count"))?;
    let count: u64 = count
        .parse()
        .map_err(|_| AuthError::MalformedScram("iteration count"))?;
    match u32::try_from(count) {
        Ok(n) if (MIN_ITERATIONS..=MAX_ITERATIONS).contains(&n) => Ok(n),
        _ => Err(AuthError::IterationCount(count)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    #[test]
    fn a_proof_is_checked_again_only_against_keys_with_the_same_salt() {
        let old = ScramKeys::derive("old", 64);
        let same_salt = ScramKeys::derive_with_salt("new", old.salt.clone(), 64);
        let mut client = ScramSha256::new(b"new", ChannelBinding::unsupported());
        let (server, server_first) =
            ScramServer::start(old.clone(), client.message()).expect("start");
        client
            .update(server_first.as_bytes())
            .expect("server-first");
        assert!(matches!(
            server.clone().finish(client.message()),
            Err(AuthError::WrongPassword)
        ));
        let other_salt = ScramKeys::derive("new", 64);
        assert!(server.clone().with_keys(other_salt).is_none());
        let again = server.with_keys(same_salt).expect("same salt");
        let server_final = again.finish(client.message()).expect("new keys");
        client.finish(server_final.as_bytes()).expect("signature");
    }

    /// Runs the exchange against postgres-protocol's client implementation.
    fn exchange(server_password: &str, client_password: &str) -> Result<(), AuthError> {
        let keys = ScramKeys::derive(server_password, 64);
        let mut client =
            ScramSha256::new(client_password.as_bytes(), ChannelBinding::unsupported());
        let (server, server_first) = ScramServer::start(keys, client.message())?;
        client
            .update(server_first.as_bytes())
            .map_err(|_| AuthError::MalformedScram("client rejected server-first"))?;
        let server_final = server.finish(client.message())?;
        client
            .finish(server_final.as_bytes())
            .map_err(|_| AuthError::MalformedScram("client rejected server signature"))?;
        Ok(())
    }

    #[test]
    fn accepts_right_password_and_client_verifies_server() {
        assert_eq!(exchange("s3cret", "s3cret"), Ok(()));
    }

    #[test]
    fn rejects_wrong_password() {
        assert_eq!(exchange("s3cret", "guess"), Err(AuthError::WrongPassword));
    }

    #[test]
    fn rfc7677_vector() {
        // RFC 7677 section 3.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("b64");
        let keys = ScramKeys::derive_with_salt("pencil", salt, 4096);
        let (server, first) = ScramServer::start_with_nonce(
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

    #[test]
    fn rejects_channel_binding_and_bad_nonce() {
        let keys = ScramKeys::derive("x", 16);
        assert_eq!(
            ScramServer::start(keys.clone(), b"p=tls-server-end-point,,n=,r=abc").err(),
            Some(AuthError::ChannelBindingUnsupported)
        );
        let (server, _) = ScramServer::start(keys, b"n,,n=,r=abc").expect("start");
        assert_eq!(
            server.finish(b"c=biws,r=wrong,p=AAAA").err(),
            Some(AuthError::NonceMismatch)
        );
    }

    #[test]
    fn server_iteration_counts_are_bounded() {
        assert_eq!(
            check_server_first_iterations(b"r=abc,s=c2FsdA==,i=4096"),
            Ok(4096)
        );
        assert_eq!(
            check_server_first_iterations(b"r=abc,s=c2FsdA==,i=1000000"),
            Ok(1_000_000)
        );
        assert_eq!(
            check_server_first_iterations(b"r=abc,s=c2FsdA==,i=1000001"),
            Err(AuthError::IterationCount(1_000_001))
        );
        assert_eq!(
            check_server_first_iterations(b"r=abc,s=c2FsdA==,i=0"),
            Err(AuthError::IterationCount(0))
        );
        assert_eq!(
            check_server_first_iterations(b"r=abc,s=c2FsdA==,i=99999999999"),
            Err(AuthError::IterationCount(99_999_999_999))
        );
        assert!(check_server_first_iterations(b"r=abc,s=c2FsdA==").is_err());
        assert!(check_server_first_iterations(b"r=abc,s=c2FsdA==,i=x").is_err());
        let message = AuthError::IterationCount(5_000_000).to_string();
        assert!(
            message.contains("5000000") && message.contains("1000000"),
            "{message}"
        );
    }

    #[test]
    fn rejects_garbage() {
        let keys = ScramKeys::derive("x", 16);
        assert!(ScramServer::start(keys.clone(), b"").is_err());
        assert!(ScramServer::start(keys, b"n,,n=,m=ext,r=abc").is_err());
    }
}
