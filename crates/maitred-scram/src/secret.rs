//! The text form of a verifier, as PostgreSQL stores it in `pg_authid.rolpassword`:
//! `SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>`.

use crate::{Hash, ScramError, ScramKeys};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::ops::RangeInclusive;

/// Parses the stored form of a `hash` verifier; iteration counts outside `accepted` are
/// refused (each protocol has its bounds).
pub fn parse(
    hash: Hash,
    secret: &str,
    accepted: RangeInclusive<u32>,
) -> Result<ScramKeys, ScramError> {
    let bad = ScramError::MalformedSecret;
    let rest = secret
        .strip_prefix(hash.mechanism())
        .and_then(|s| s.strip_prefix('$'))
        .ok_or(bad(missing_prefix(hash)))?;
    let (iter_salt, keys) = rest.split_once('$').ok_or(bad("missing '$'"))?;
    let (iter, salt) = iter_salt.split_once(':').ok_or(bad("missing ':'"))?;
    let (stored, server) = keys.split_once(':').ok_or(bad("missing ':'"))?;
    let iterations: u32 = iter.parse().map_err(|_| bad("iterations"))?;
    if !accepted.contains(&iterations) {
        return Err(bad("iteration count out of range"));
    }
    let salt = B64.decode(salt).map_err(|_| bad("salt"))?;
    let stored_key = decode_key(hash, stored).ok_or(bad("StoredKey"))?;
    let server_key = decode_key(hash, server).ok_or(bad("ServerKey"))?;
    Ok(ScramKeys {
        hash,
        salt,
        iterations,
        stored_key,
        server_key,
    })
}

fn missing_prefix(hash: Hash) -> &'static str {
    match hash {
        Hash::Sha1 => "missing SCRAM-SHA-1$ prefix",
        Hash::Sha256 => "missing SCRAM-SHA-256$ prefix",
    }
}

/// A key of exactly the hash's length.
fn decode_key(hash: Hash, b64: &str) -> Option<Vec<u8>> {
    B64.decode(b64)
        .ok()
        .filter(|key| key.len() == hash.output_len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC7677: &str = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

    #[test]
    fn parses_what_derive_gives_for_the_rfc7677_user() {
        let keys = parse(Hash::Sha256, RFC7677, 1..=1_000_000).expect("valid");
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("b64");
        let derived = ScramKeys::derive_with_salt(Hash::Sha256, b"pencil", salt, 4096);
        assert_eq!(keys, derived);
    }

    #[test]
    fn refuses_malformed_secrets() {
        let err = |s: &str| parse(Hash::Sha256, s, 1..=1_000_000).err();
        let bad = |m| Some(ScramError::MalformedSecret(m));
        assert_eq!(err("plain"), bad("missing SCRAM-SHA-256$ prefix"));
        assert_eq!(
            parse(Hash::Sha1, RFC7677, 1..=1_000_000).err(),
            bad("missing SCRAM-SHA-1$ prefix")
        );
        assert_eq!(err("SCRAM-SHA-256$4096:c2FsdA=="), bad("missing '$'"));
        assert_eq!(err("SCRAM-SHA-256$4096$a:b"), bad("missing ':'"));
        assert_eq!(err("SCRAM-SHA-256$x:c2FsdA==$a:b"), bad("iterations"));
        assert_eq!(
            err("SCRAM-SHA-256$0:c2FsdA==$a:b"),
            bad("iteration count out of range")
        );
        assert_eq!(err("SCRAM-SHA-256$4096:!!$a:b"), bad("salt"));
        assert_eq!(
            err("SCRAM-SHA-256$4096:c2FsdA==$AA==:AA=="),
            bad("StoredKey")
        );
        let one_key = RFC7677.rsplit_once(':').map(|(k, _)| k).unwrap_or_default();
        assert_eq!(err(&format!("{one_key}:AA==")), bad("ServerKey"));
    }
}
