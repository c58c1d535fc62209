//! The server side of one exchange: [`ScramServer::start`] reads client-first and gives
//! server-first; [`ScramServer::finish`] checks client-final's proof and gives server-final.
//!
//! The proof reveals the client's ClientKey (RFC 5802: ClientKey = ClientProof XOR
//! ClientSignature, and the server checks H(ClientKey) = StoredKey), which
//! [`ScramServer::finish_revealing_client_key`] returns: with it maitred can log in to a
//! server holding the same verifier as the client's own user, without the password.

use crate::hash::xor;
use crate::messages::{parse_client_final, parse_client_first};
use crate::{ClientKey, ScramError, ScramKeys};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use subtle::ConstantTimeEq;

/// An exchange after server-first was produced.
#[derive(Debug, Clone)]
pub struct ScramServer {
    keys: ScramKeys,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl ScramServer {
    /// Reads client-first; returns the exchange and server-first
    /// (`r=<client nonce><server nonce>,s=<salt>,i=<iterations>`). `server_nonce` is fresh
    /// for each exchange ([`crate::random_nonce`]).
    pub fn start(
        keys: ScramKeys,
        client_first: &[u8],
        server_nonce: &str,
    ) -> Result<(ScramServer, String), ScramError> {
        let first = parse_client_first(client_first)?;
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&keys.salt),
            keys.iterations
        );
        let server = ScramServer {
            keys,
            gs2_header: first.gs2_header.to_owned(),
            client_first_bare: first.bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok((server, server_first))
    }

    /// Checks client-final; on success returns server-final (`v=<ServerSignature>`).
    pub fn finish(self, client_final: &[u8]) -> Result<String, ScramError> {
        self.finish_revealing_client_key(client_final)
            .map(|(server_final, _)| server_final)
    }

    /// Like [`ScramServer::finish`], and also returns the ClientKey the proof revealed.
    pub fn finish_revealing_client_key(
        self,
        client_final: &[u8],
    ) -> Result<(String, ClientKey), ScramError> {
        let fin = parse_client_final(client_final)?;
        // Without channel binding, c= is the gs2-header of client-first, in base64.
        if B64.decode(fin.channel_binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(ScramError::ChannelBindingUnsupported);
        }
        if fin.nonce != Some(self.nonce.as_str()) {
            return Err(ScramError::NonceMismatch);
        }
        let proof = B64
            .decode(fin.proof)
            .map_err(|_| ScramError::Malformed("proof"))?;
        if proof.len() != self.keys.hash.output_len() {
            return Err(ScramError::Malformed("proof length"));
        }
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, fin.without_proof
        );
        let client_key = ClientKey(xor(&proof, &self.keys.client_signature(&auth_message)));
        let derived = client_key.stored_key(self.keys.hash);
        if !bool::from(derived.ct_eq(&self.keys.stored_key)) {
            return Err(ScramError::WrongProof);
        }
        let server_signature = self.keys.server_signature(&auth_message);
        Ok((format!("v={}", B64.encode(server_signature)), client_key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Hash;

    fn started(client_first: &[u8]) -> (ScramServer, String) {
        let keys = ScramKeys::derive(Hash::Sha256, b"pw", 2);
        ScramServer::start(keys, client_first, "SERVER").expect("start")
    }

    #[test]
    fn server_first_carries_both_nonces_salt_and_iterations() {
        let keys = ScramKeys::derive(Hash::Sha1, b"pw", 4096);
        let salt = B64.encode(&keys.salt);
        let (_, first) = ScramServer::start(keys, b"n,,n=u,r=abc", "XYZ").expect("start");
        assert_eq!(first, format!("r=abcXYZ,s={salt},i=4096"));
    }

    #[test]
    fn refuses_a_client_final_that_does_not_follow_client_first() {
        let finish = |first: &[u8], fin: &[u8]| started(first).0.finish(fin).err();
        // c= must be the gs2-header of client-first.
        assert_eq!(
            finish(b"n,,n=,r=abc", b"c=eSws,r=abcSERVER,p=AAAA"),
            Some(ScramError::ChannelBindingUnsupported)
        );
        assert_eq!(
            finish(b"y,,n=,r=abc", b"c=biws,r=abcSERVER,p=AAAA"),
            Some(ScramError::ChannelBindingUnsupported)
        );
        assert_eq!(
            finish(b"n,,n=,r=abc", b"c=!!,r=abcSERVER,p=AAAA"),
            Some(ScramError::ChannelBindingUnsupported)
        );
        // r= must be client nonce + server nonce.
        for nonce in ["r=abc", "r=abcSERVERx", "r=xabcSERVER", "x=abcSERVER"] {
            assert_eq!(
                finish(b"n,,n=,r=abc", format!("c=biws,{nonce},p=AAAA").as_bytes()),
                Some(ScramError::NonceMismatch),
                "{nonce}"
            );
        }
        assert_eq!(
            finish(b"n,,n=,r=abc", b"c=biws,r=abcSERVER,p=!!!!"),
            Some(ScramError::Malformed("proof"))
        );
        assert_eq!(
            finish(b"n,,n=,r=abc", b"c=biws,r=abcSERVER,p=AAAA"),
            Some(ScramError::Malformed("proof length"))
        );
    }

    #[test]
    fn refuses_a_wrong_proof() {
        let (server, _) = started(b"n,,n=,r=abc");
        let proof = B64.encode([0u8; 32]);
        assert_eq!(
            server
                .finish(format!("c=biws,r=abcSERVER,p={proof}").as_bytes())
                .err(),
            Some(ScramError::WrongProof)
        );
    }
}
