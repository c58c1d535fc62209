//! The md5 password exchange: the client sends `"md5" + md5(md5(password + user) + salt)`.
//!
//! Spec: "AuthenticationMD5Password" in
//! <https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.7.3>.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `md5(password || user)` as 32 lowercase hex digits: what PostgreSQL stores after "md5".
pub fn user_hash(user: &str, password: &str) -> String {
    let mut h = Md5::new();
    h.update(password.as_bytes());
    h.update(user.as_bytes());
    hex(&h.finalize())
}

/// What a client must answer for a stored `user_hash` and the given salt.
pub fn expected_response(user_hash: &str, salt: [u8; 4]) -> String {
    let mut h = Md5::new();
    h.update(user_hash.as_bytes());
    h.update(salt);
    format!("md5{}", hex(&h.finalize()))
}

/// Checks a client's answer in constant time.
pub fn verify(user_hash: &str, salt: [u8; 4], response: &str) -> bool {
    let expected = expected_response(user_hash, salt);
    expected.as_bytes().ct_eq(response.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_postgres_protocol_client_hash() {
        let salt = [1, 2, 3, 4];
        let client = postgres_protocol::authentication::md5_hash(b"app", b"secret", salt);
        assert!(verify(&user_hash("app", "secret"), salt, &client));
        assert!(!verify(&user_hash("app", "other"), salt, &client));
    }
}
