//! [`Secret`]: a string that never shows up in logs, errors or `Debug`
//! output, and [`PasswordKind`]: what kind of password a secret holds.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every redacted value prints as.
pub const REDACTED: &str = "***";

/// A secret string (a password, a password hash, a SCRAM secret).
///
/// `Debug`, `Display` and `Serialize` all print [`REDACTED`]; the value is
/// only reachable through [`Secret::expose`], so every use of it is visible
/// in the code. Equality is not constant-time: never use it to check a
/// password a client sent.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value itself. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What kind of password this secret holds, judged the way PostgreSQL
    /// judges a stored password.
    pub fn password_kind(&self) -> PasswordKind {
        PasswordKind::of(&self.0)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// Serializes as [`REDACTED`], so a serialized configuration is safe to
/// print (and is not a way to round-trip secrets).
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// The form of a configured password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordKind {
    /// A plaintext password: works with every client authentication method.
    Plaintext,
    /// `md5` followed by 32 hex digits: PostgreSQL's `md5(password || user)`.
    /// Only usable with `client_auth = "md5"`.
    Md5Hash,
    /// A PostgreSQL SCRAM secret,
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
    /// Only usable with `client_auth = "scram-sha-256"`.
    ScramSecret,
    /// Starts like a SCRAM secret (`SCRAM-SHA-256$`) but is not one: most
    /// likely a truncated copy. Rejected by validation rather than being
    /// silently taken as a plaintext password.
    MalformedScramSecret,
}

/// The prefix of a PostgreSQL SCRAM-SHA-256 secret.
const SCRAM_PREFIX: &str = "SCRAM-SHA-256$";

/// The iteration counts a configured SCRAM secret may carry. Every client derives that many
/// PBKDF2 rounds at each login, so an absurd count (a typo, a copied test value) would make
/// logins hang; validation refuses it instead. PostgreSQL's default is 4096.
pub const SCRAM_ITERATIONS: std::ops::RangeInclusive<u64> = 1..=1_000_000;

/// The iteration count of a SCRAM secret (`SCRAM-SHA-256$<iterations>:...`), if `password`
/// is one.
pub fn scram_iterations(password: &str) -> Option<u64> {
    let rest = password.strip_prefix(SCRAM_PREFIX)?;
    is_scram_body(rest).then_some(())?;
    rest.split_once(':')?.0.parse().ok()
}

impl PasswordKind {
    /// Classifies a password string.
    pub fn of(password: &str) -> PasswordKind {
        if let Some(rest) = password.strip_prefix(SCRAM_PREFIX) {
            if is_scram_body(rest) {
                PasswordKind::ScramSecret
            } else {
                PasswordKind::MalformedScramSecret
            }
        } else if is_md5_hash(password) {
            PasswordKind::Md5Hash
        } else {
            PasswordKind::Plaintext
        }
    }
}

/// `md5` + 32 hex digits, as PostgreSQL recognises an md5-hashed password.
fn is_md5_hash(password: &str) -> bool {
    password
        .strip_prefix("md5")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `<iterations>:<salt>$<StoredKey>:<ServerKey>` with base64 parts.
fn is_scram_body(body: &str) -> bool {
    let Some((iterations_salt, keys)) = body.split_once('$') else {
        return false;
    };
    let Some((iterations, salt)) = iterations_salt.split_once(':') else {
        return false;
    };
    let Some((stored_key, server_key)) = keys.split_once(':') else {
        return false;
    };
    // Any positive count is well-formed; validation then checks SCRAM_ITERATIONS.
    let iterations_ok = iterations.parse::<u64>().is_ok_and(|n| n > 0);
    iterations_ok
        && [salt, stored_key, server_key]
            .iter()
            .all(|part| is_base64(part))
}

fn is_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    !body.is_empty()
        && text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SCRAM: &str = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$cHJvb2Y9c3RvcmVka2V5c3RvcmVka2V5c3Q=:c2VydmVya2V5c2VydmVya2V5c2VydmVya2V5cw==";

    #[test]
    fn secret_is_redacted_everywhere_but_expose() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(format!("{secret}"), "***");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(***)");
        assert_eq!(secret.expose(), "hunter2");
        let json = toml::Value::try_from(&secret).unwrap();
        assert_eq!(json.as_str(), Some("***"));
    }

    #[test]
    fn password_kinds() {
        assert_eq!(PasswordKind::of("hunter2"), PasswordKind::Plaintext);
        assert_eq!(
            PasswordKind::of("md5d41d8cd98f00b204e9800998ecf8427e"),
            PasswordKind::Md5Hash
        );
        // Too short for an md5 hash: just a password that starts with md5.
        assert_eq!(PasswordKind::of("md5abc"), PasswordKind::Plaintext);
        assert_eq!(PasswordKind::of(SCRAM), PasswordKind::ScramSecret);
        assert_eq!(
            PasswordKind::of("SCRAM-SHA-256$4096:c2FsdA==$truncated"),
            PasswordKind::MalformedScramSecret
        );
        assert_eq!(
            PasswordKind::of("SCRAM-SHA-256$0:c2FsdA==$YQ==:YQ=="),
            PasswordKind::MalformedScramSecret
        );
        assert_eq!(scram_iterations(SCRAM), Some(4096));
        assert_eq!(
            scram_iterations("SCRAM-SHA-256$99999999999:c2FsdA==$YQ==:YQ=="),
            Some(99_999_999_999)
        );
        assert_eq!(scram_iterations("hunter2"), None);
    }
}
