//! What maitred logs in to the server with when it has no password for a user, only what
//! the client's own login revealed (auth_query): the SCRAM ClientKey with the secret it was
//! checked against, or the md5 hash `md5(password + user)` that the md5 challenge needs.

use super::scram::ClientKey;
use super::secret::ScramKeys;

/// A user's server login without the password. Kept in memory only; Debug prints `***`.
#[derive(Clone, PartialEq, Eq)]
pub enum PassthroughLogin {
    /// Answers a SCRAM-SHA-256 challenge ([`super::scram_client_key::ClientKeyLogin`]).
    Scram {
        client_key: ClientKey,
        keys: ScramKeys,
    },
    /// Answers an md5 challenge: 32 lowercase hex digits of `md5(password + user)`.
    Md5 { user_hash: String },
}

impl PassthroughLogin {
    /// The method name, for messages.
    pub fn method(&self) -> &'static str {
        match self {
            PassthroughLogin::Scram { .. } => "SCRAM-SHA-256",
            PassthroughLogin::Md5 { .. } => "md5",
        }
    }
}

impl std::fmt::Debug for PassthroughLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PassthroughLogin({}, ***)", self.method())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let md5 = PassthroughLogin::Md5 {
            user_hash: "0123456789abcdef0123456789abcdef".into(),
        };
        let shown = format!("{md5:?}");
        assert!(!shown.contains("0123"), "{shown}");
        assert_eq!(shown, "PassthroughLogin(md5, ***)");
    }
}
