//! Secrets fetched by auth_query, kept until they expire. "No such user" is cached too, for a
//! shorter time, so a flood of unknown user names cannot turn into a flood of queries.

use crate::auth::secret::Credentials;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// At most this many users are cached; past it, expired entries are dropped, and if the
/// cache is still full the new answer is not kept (the lookup connection still bounds the
/// load on the server: one query at a time).
const MAX_ENTRIES: usize = 10_000;
/// "No such user" is kept at most this long, so a role created on the server can log in soon.
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// What the server said about a user: its secret, or that it has none maitred can use.
pub type Answer = Option<Arc<Credentials>>;

#[derive(Debug)]
struct Entry {
    answer: Answer,
    fetched: Instant,
    expires: Instant,
}

#[derive(Debug)]
pub struct SecretCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl SecretCache {
    pub fn new(ttl: Duration) -> SecretCache {
        SecretCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached answer for `user`, if one has not expired. `None`: ask the server.
    pub fn get(&self, user: &str) -> Option<Answer> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(user)
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.answer.clone())
    }

    /// The answer for `user` if it was fetched at or after `since` (and has not expired):
    /// logins waiting for the lookup connection together share one lookup.
    pub fn fetched_since(&self, user: &str, since: Instant) -> Option<Answer> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(user)
            .filter(|e| e.fetched >= since && e.expires > Instant::now())
            .map(|e| e.answer.clone())
    }

    pub fn put(&self, user: &str, answer: Answer) {
        let ttl = if answer.is_some() {
            self.ttl
        } else {
            self.ttl.min(MAX_NEGATIVE_TTL)
        };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(user) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(
            user.to_owned(),
            Entry {
                answer,
                fetched: now,
                expires: now + ttl,
            },
        );
    }

    /// Forgets every answer (a reload changed the query or the lookup user).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str) -> Answer {
        Some(Arc::new(
            Credentials::from_configured(user, "md50123456789abcdef0123456789abcdef").expect("md5"),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn secrets_expire_after_the_ttl_and_unknown_users_sooner() {
        let cache = SecretCache::new(Duration::from_secs(60));
        assert!(cache.get("alice").is_none());
        cache.put("alice", creds("alice"));
        cache.put("nobody", None);
        assert!(matches!(cache.get("alice"), Some(Some(_))));
        assert!(matches!(cache.get("nobody"), Some(None)));
        tokio::time::advance(MAX_NEGATIVE_TTL + Duration::from_millis(1)).await;
        assert!(cache.get("nobody").is_none(), "negative answer expired");
        assert!(matches!(cache.get("alice"), Some(Some(_))));
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(cache.get("alice").is_none(), "secret expired");
    }

    #[tokio::test(start_paused = true)]
    async fn only_an_answer_fetched_since_a_login_began_stands_for_its_lookup() {
        let cache = SecretCache::new(Duration::from_secs(60));
        cache.put("alice", creds("alice"));
        tokio::time::advance(Duration::from_millis(10)).await;
        let began = Instant::now();
        assert!(
            cache.fetched_since("alice", began).is_none(),
            "fetched before"
        );
        tokio::time::advance(Duration::from_millis(10)).await;
        cache.put("alice", creds("alice"));
        assert!(matches!(cache.fetched_since("alice", began), Some(Some(_))));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(cache.fetched_since("alice", began).is_none(), "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_ttl_bounds_negative_answers_too() {
        let cache = SecretCache::new(Duration::from_secs(1));
        cache.put("nobody", None);
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(cache.get("nobody").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_drops_expired_entries_first() {
        let cache = SecretCache::new(Duration::from_secs(10));
        for i in 0..MAX_ENTRIES {
            cache.put(&format!("u{i}"), None);
        }
        cache.put("late", None);
        assert!(
            cache.get("late").is_none(),
            "full of live entries: not kept"
        );
        tokio::time::advance(MAX_NEGATIVE_TTL + Duration::from_millis(1)).await;
        cache.put("late", creds("late"));
        assert!(matches!(cache.get("late"), Some(Some(_))));
        cache.clear();
        assert!(cache.get("late").is_none());
    }
}
