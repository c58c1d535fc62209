//! What the server said of each startup (name, value) a pool's clients sent, kept for
//! [`TTL`]: the answer depends only on the value and on the server's defaults, which change
//! rarely (a configuration reload, `ALTER DATABASE ... SET`), so a minute bounds how long a
//! changed default can go unseen while sparing the server one question per login.

use super::Outcome;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How long an answer is used.
pub const TTL: Duration = Duration::from_secs(60);
/// At most this many answers per pool; past it, expired ones are dropped, and if the cache
/// is still full a new answer is not kept (clients sending ever new values are then asked
/// about each time, one question per login, as a direct connection's server would check).
const MAX_ENTRIES: usize = 1024;

#[derive(Debug, Default)]
pub struct StartupValues {
    /// (lower-case name, value as the client sent it) → answer and its expiry.
    entries: Mutex<HashMap<(String, String), (Outcome, Instant)>>,
    /// Held while the server is asked: one question at a time per pool, so that a burst of
    /// logins with the same new value (serverless cold starts) asks once and the others
    /// find the answer here, and a login storm never holds more than one server connection
    /// for questions.
    pub(super) asking: tokio::sync::Mutex<()>,
}

impl StartupValues {
    pub fn get(&self, name: &str, value: &str) -> Option<Outcome> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&(name.to_ascii_lowercase(), value.to_owned()))
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(o, _)| o.clone())
    }

    pub fn put(&self, name: &str, value: &str, outcome: Outcome) {
        let now = Instant::now();
        let key = (name.to_ascii_lowercase(), value.to_owned());
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(key, (outcome, now + TTL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn answers_are_kept_per_name_and_value_until_they_expire() {
        let c = StartupValues::default();
        c.put(
            "DateStyle",
            "iso, dmy",
            Outcome::Accepted("ISO, DMY".into()),
        );
        assert_eq!(
            c.get("datestyle", "iso, dmy"),
            Some(Outcome::Accepted("ISO, DMY".into())),
            "names are case-insensitive"
        );
        assert_eq!(c.get("datestyle", "ISO, DMY"), None, "values are not");
        tokio::time::advance(TTL + Duration::from_millis(1)).await;
        assert_eq!(c.get("datestyle", "iso, dmy"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_cache_keeps_no_new_answer_until_old_ones_expire() {
        let c = StartupValues::default();
        for i in 0..MAX_ENTRIES {
            c.put(
                "application_name",
                &i.to_string(),
                Outcome::Accepted(i.to_string()),
            );
        }
        c.put("application_name", "late", Outcome::Accepted("late".into()));
        assert_eq!(c.get("application_name", "late"), None);
        tokio::time::advance(TTL + Duration::from_millis(1)).await;
        c.put("application_name", "late", Outcome::Accepted("late".into()));
        assert!(c.get("application_name", "late").is_some());
    }
}
