//! Users without a user list (PgBouncer's auth_query/auth_user): a client whose user is not
//! in the pool's `users` is checked against the secret the server itself stores, fetched by
//! `auth_query` on a dedicated connection logged in as `auth_user`, and maitred then logs in
//! to the server as that same user (with the SCRAM ClientKey the client's proof revealed, or
//! the md5 hash), in a pool of that user's own ([`user_pools`]).
//!
//! - [`cache`]: fetched secrets with expiry ("no such user" too, briefly): they pick the
//!   exchange, and stand in when a lookup fails; a cached secret is checked with the server
//!   at every login, during the client's first round trip ([`login`]).
//! - [`lookup`]: the query on the lookup connection.
//! - [`login`]: the client's exchange, chosen by the secret's kind.
//! - [`user_pools`]: per-user pools, opened on demand and closed after idling.

pub mod cache;
pub mod login;
pub mod lookup;
pub mod user_pools;

use crate::auth::secret::Credentials;
use crate::backend::ServerConn;
use crate::target::ServerTarget;
use cache::{Answer, SecretCache};
use lookup::LookupError;
use std::sync::Arc;
use std::time::Duration;
use user_pools::UserPools;

/// PgBouncer's default query; `pg_shadow` is readable only by superusers, so production
/// setups point `auth_query` at a SECURITY DEFINER function instead (docs/postgres.md).
pub const DEFAULT_QUERY: &str = "SELECT usename, passwd FROM pg_shadow WHERE usename=$1";

/// How a pool looks users up.
#[derive(Debug, Clone)]
pub struct AuthQueryConfig {
    /// Returns (user name, secret) for `$1`, or no row.
    pub query: String,
    /// The server and the `auth_user` login of the lookup connection.
    pub target: ServerTarget,
    /// How long a fetched secret is used before it is fetched again.
    pub cache_ttl: Duration,
    /// Bounds connecting the lookup connection, and each lookup.
    pub timeout: Duration,
}

/// A pool's user lookup: the dedicated connection, the cache and the users' pools.
#[derive(Debug)]
pub struct AuthQuery {
    cfg: AuthQueryConfig,
    cache: SecretCache,
    /// The lookup connection: one lookup at a time; reopened after a failure.
    conn: tokio::sync::Mutex<Option<ServerConn>>,
    pub users: Arc<UserPools>,
}

impl AuthQuery {
    pub fn new(cfg: AuthQueryConfig, users: UserPools) -> AuthQuery {
        AuthQuery {
            cache: SecretCache::new(cfg.cache_ttl),
            cfg,
            conn: tokio::sync::Mutex::new(None),
            users: Arc::new(users),
        }
    }

    /// The secret of `user`, from the cache or the server, and whether it came from the
    /// cache. `None`: no such user, or a secret maitred cannot use (neither SCRAM-SHA-256
    /// nor md5), which fails like a wrong password.
    pub async fn secret_of(&self, user: &str) -> Result<(Answer, bool), LookupError> {
        if let Some(answer) = self.cache.get(user) {
            return Ok((answer, true));
        }
        let mut conn = self.conn.lock().await;
        // Another client may have fetched it while this one waited for the connection.
        if let Some(answer) = self.cache.get(user) {
            return Ok((answer, true));
        }
        Ok((self.fetch_and_keep(&mut conn, user).await?, false))
    }

    /// The secret the server has for `user` now, for a login that began at `began` with a
    /// cached secret: the password may have changed since. A lookup finished by another
    /// login since `began` stands for this one (a burst of logins of one user costs about
    /// one lookup). `None`: the lookup failed (logged), and the cached secret stands in.
    pub async fn revalidate(&self, user: &str, began: tokio::time::Instant) -> Option<Answer> {
        let mut conn = self.conn.lock().await;
        if let Some(answer) = self.cache.fetched_since(user, began) {
            return Some(answer);
        }
        match self.fetch_and_keep(&mut conn, user).await {
            Ok(answer) => Some(answer),
            Err(e) => {
                tracing::warn!(user, error = %e, "auth_query lookup failed: the cached secret stands in");
                None
            }
        }
    }

    /// Fetches `user`'s secret on the lookup connection (`conn`, locked) and caches it.
    async fn fetch_and_keep(
        &self,
        conn: &mut Option<ServerConn>,
        user: &str,
    ) -> Result<Answer, LookupError> {
        let had_connection = conn.is_some();
        let mut fetched = self.fetch(conn, user).await;
        if had_connection && matches!(fetched, Err(ref e) if !e.keeps_connection()) {
            // The kept connection may have been closed by the server while idle: one retry
            // on a fresh one.
            fetched = self.fetch(conn, user).await;
        }
        let answer = usable_secret(user, fetched?);
        self.cache.put(user, answer.clone());
        Ok(answer)
    }

    async fn fetch(
        &self,
        conn: &mut Option<ServerConn>,
        user: &str,
    ) -> Result<Option<String>, LookupError> {
        let secs = self.cfg.timeout.as_secs().max(1);
        if conn.is_none() {
            let opened =
                tokio::time::timeout(self.cfg.timeout, ServerConn::connect(&self.cfg.target, 1))
                    .await
                    .map_err(|_| LookupError::Timeout(secs))?
                    .map_err(LookupError::Connect)?;
            *conn = Some(opened);
        }
        let Some(c) = conn.as_mut() else {
            return Err(LookupError::Timeout(secs));
        };
        let result = tokio::time::timeout(
            self.cfg.timeout,
            lookup::fetch_secret(c, &self.cfg.query, user),
        )
        .await
        .unwrap_or(Err(LookupError::Timeout(secs)));
        if matches!(result, Err(ref e) if !e.keeps_connection()) {
            *conn = None;
        }
        result
    }

    /// Forgets cached secrets.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }
}

/// Turns the secret column into credentials; anything but a SCRAM-SHA-256 secret or an md5
/// hash counts as no secret (maitred could not log in to the server as the user with it).
fn usable_secret(user: &str, secret: Option<String>) -> Answer {
    let secret = secret?;
    let usable = secret.starts_with("SCRAM-SHA-256$")
        || (secret.len() == 35
            && secret.starts_with("md5")
            && secret[3..].bytes().all(|b| b.is_ascii_hexdigit()));
    if !usable {
        tracing::warn!(
            user,
            "auth_query returned a secret that is neither SCRAM-SHA-256 nor md5: login refused"
        );
        return None;
    }
    match Credentials::from_configured(user, &secret) {
        Ok(c) => Some(Arc::new(c)),
        Err(e) => {
            tracing::warn!(user, error = %e, "auth_query returned a malformed secret: login refused");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_scram_and_md5_secrets_are_usable() {
        assert!(usable_secret("u", None).is_none());
        assert!(usable_secret("u", Some("plaintext".into())).is_none());
        assert!(usable_secret("u", Some("md5short".into())).is_none());
        assert!(usable_secret("u", Some("SCRAM-SHA-256$x".into())).is_none());
        let md5 = usable_secret("u", Some("md50123456789abcdef0123456789abcdef".into()));
        assert!(md5.is_some_and(|c| c.md5_hash.is_some() && c.scram.is_none()));
        let scram = "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";
        assert!(usable_secret("u", Some(scram.into())).is_some_and(|c| c.scram.is_some()));
    }
}
