//! The caching_sha2_password cache, as MySQL servers keep it: a user whose password was
//! checked in full (sent over TLS, or RSA-encrypted) since maitred started may use the
//! fast path (a scramble) from then on; the first login of each user needs full
//! authentication. Entries are keyed by pool, user and a digest of the password, so a
//! reload that changes the password empties the user's entry.

use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

type Entry = (String, String, [u8; 32]);

fn cache() -> &'static Mutex<HashSet<Entry>> {
    static CACHE: OnceLock<Mutex<HashSet<Entry>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashSet::new()))
}

fn entry(pool: &str, user: &str, password: &[u8]) -> Entry {
    (
        pool.to_owned(),
        user.to_owned(),
        Sha256::digest(Sha256::digest(password)).into(),
    )
}

/// Whether `user` of `pool` passed full authentication with this password.
pub fn contains(pool: &str, user: &str, password: &[u8]) -> bool {
    let e = entry(pool, user, password);
    cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&e)
}

/// Records a full authentication.
pub fn insert(pool: &str, user: &str, password: &[u8]) {
    let e = entry(pool, user, password);
    cache().lock().unwrap_or_else(|p| p.into_inner()).insert(e);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_by_pool_user_and_password() {
        assert!(!contains("p1", "u", b"pw"));
        insert("p1", "u", b"pw");
        assert!(contains("p1", "u", b"pw"));
        assert!(!contains("p1", "u", b"changed"));
        assert!(!contains("p2", "u", b"pw"));
    }
}
