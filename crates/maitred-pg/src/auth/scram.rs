//! Server side of SCRAM-SHA-256 without channel binding (RFC 5802 / RFC 7677), as
//! PostgreSQL speaks it: maitred-scram's exchange with PostgreSQL's mechanism, nonce length
//! and error texts.
//!
//! Two steps: [`ScramServer::start`] takes the client-first message and produces the
//! server-first message; [`ScramServer::finish`] checks the client's proof and produces the
//! server-final message.

use super::secret::{MAX_ITERATIONS, MIN_ITERATIONS};
use super::AuthError;
use maitred_scram::ScramKeys;

pub use maitred_scram::ClientKey;

/// The mechanism name PostgreSQL clients ask for.
pub const MECHANISM: &str = "SCRAM-SHA-256";

/// Random bytes in maitred's part of the nonce (24 characters of base64).
pub(crate) const NONCE_BYTES: usize = 18;

/// A SCRAM exchange after the server-first message was sent.
#[derive(Debug, Clone)]
pub struct ScramServer(maitred_scram::ScramServer);

impl ScramServer {
    /// Reads client-first, returns the exchange and the server-first message to send.
    pub fn start(keys: ScramKeys, client_first: &[u8]) -> Result<(ScramServer, String), AuthError> {
        let nonce = maitred_scram::random_nonce(NONCE_BYTES);
        let (server, first) = maitred_scram::ScramServer::start(keys, client_first, &nonce)?;
        Ok((ScramServer(server), first))
    }

    /// Checks client-final; on success returns the server-final message to send.
    pub fn finish(self, client_final: &[u8]) -> Result<String, AuthError> {
        Ok(self.0.finish(client_final)?)
    }

    /// Like [`ScramServer::finish`], and also returns the ClientKey the client's proof
    /// reveals (ClientProof XOR ClientSignature), with which maitred can log in to the
    /// server as this user (auth_query). Keep it in memory only.
    pub fn finish_revealing_client_key(
        self,
        client_final: &[u8],
    ) -> Result<(String, ClientKey), AuthError> {
        Ok(self.0.finish_revealing_client_key(client_final)?)
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
    use crate::auth::secret::derive_keys;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    /// Runs the exchange against postgres-protocol's client implementation.
    fn exchange(server_password: &str, client_password: &str) -> Result<(), AuthError> {
        let keys = derive_keys(server_password, 64);
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

    // The RFC 7677 vector runs end to end in maitred-scram (tests/exchange.rs).

    #[test]
    fn server_nonce_is_24_characters() {
        let (_, first) = ScramServer::start(derive_keys("x", 16), b"n,,n=,r=abc").expect("start");
        let nonce = first.split(',').next().unwrap_or_default();
        assert_eq!(nonce.len(), "r=abc".len() + 24, "{first}");
    }

    #[test]
    fn rejects_channel_binding_and_bad_nonce() {
        let keys = derive_keys("x", 16);
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
        let keys = derive_keys("x", 16);
        assert!(ScramServer::start(keys.clone(), b"").is_err());
        assert!(ScramServer::start(keys, b"n,,n=,m=ext,r=abc").is_err());
    }
}
