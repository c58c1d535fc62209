//! What the client side of an exchange computes, when maitred logs in to a server: reading
//! server-first, the proof of client-final, and comparing server-final's signature. The
//! protocol crates decide what a server-first must satisfy (PostgreSQL: the salt of the
//! verifier a ClientKey was checked against; MongoDB: bounded iteration counts), how
//! leniently server-final is read, and with which words they refuse either.

use crate::hash::xor;
use crate::{ClientKey, Hash, ScramError};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use subtle::ConstantTimeEq;

/// The attributes of server-first, as text (the last of each name wins).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerFirst<'a> {
    /// The whole message, part of the AuthMessage.
    pub text: &'a str,
    /// `r=`: the client's nonce followed by the server's.
    pub nonce: Option<&'a str>,
    /// `s=`: the salt in base64.
    pub salt: Option<&'a str>,
    /// `i=`: the iteration count.
    pub iterations: Option<&'a str>,
}

/// Splits server-first into its attributes.
pub fn parse_server_first(msg: &[u8]) -> Result<ServerFirst<'_>, ScramError> {
    let text =
        std::str::from_utf8(msg).map_err(|_| ScramError::Malformed("server-first is not UTF-8"))?;
    let mut first = ServerFirst {
        text,
        ..ServerFirst::default()
    };
    for attr in text.split(',') {
        if let Some(v) = attr.strip_prefix("r=") {
            first.nonce = Some(v);
        } else if let Some(v) = attr.strip_prefix("s=") {
            first.salt = Some(v);
        } else if let Some(v) = attr.strip_prefix("i=") {
            first.iterations = Some(v);
        }
    }
    Ok(first)
}

/// client-final for `server_first`, whose nonce `nonce` the caller has checked, without
/// channel binding (`c=biws` is base64 of the gs2-header `n,,`), proven with `client_key`.
/// Returns the message and the AuthMessage (for the server's signature).
pub fn client_final(
    hash: Hash,
    client_key: &ClientKey,
    client_first_bare: &str,
    server_first: &str,
    nonce: &str,
) -> (String, String) {
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    // ClientProof = ClientKey XOR HMAC(H(ClientKey), AuthMessage).
    let signature = hash.hmac(&client_key.stored_key(hash), auth_message.as_bytes());
    let proof = xor(&client_key.0, &signature);
    (
        format!("{without_proof},p={}", B64.encode(proof)),
        auth_message,
    )
}

/// Compares the server's signature with the expected one, in constant time.
pub fn signature_matches(expected: &[u8], received: &[u8]) -> bool {
    expected.ct_eq(received).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_server_first_attributes() {
        let first = parse_server_first(b"r=abc,s=c2FsdA==,i=4096,x=y").expect("utf-8");
        assert_eq!(first.text, "r=abc,s=c2FsdA==,i=4096,x=y");
        assert_eq!(first.nonce, Some("abc"));
        assert_eq!(first.salt, Some("c2FsdA=="));
        assert_eq!(first.iterations, Some("4096"));
        assert_eq!(
            parse_server_first(b"i=1,i=2").map(|f| f.iterations),
            Ok(Some("2"))
        );
        assert_eq!(
            parse_server_first(b"r=\xff").err(),
            Some(ScramError::Malformed("server-first is not UTF-8"))
        );
    }

    #[test]
    fn compares_signatures() {
        assert!(signature_matches(&[1, 2], &[1, 2]));
        assert!(!signature_matches(&[1, 2], &[1, 3]));
        assert!(!signature_matches(&[1, 2], &[1]));
    }
}
