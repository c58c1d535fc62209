//! Letting a client in: how long its login may take on an address that serves several
//! pools, and its place under its pool's `max_clients`.

use maitred_pool::{ClientCount, ClientLimits, ClientSlot};
use std::time::Duration;

/// The login time of a client of an address serving pools with `limits`: the longest
/// `client_login_timeout` of them (the client names its pool only during its login).
pub fn login_timeout<'a>(limits: impl IntoIterator<Item = &'a ClientLimits>) -> Duration {
    limits
        .into_iter()
        .map(|l| l.login_timeout)
        .max()
        .unwrap_or(ClientLimits::DEFAULT_LOGIN_TIMEOUT)
}

/// A place for one more client of pool `pool`, or `None` (logged) when `max_clients` are
/// connected: the protocol then tells the client in its own words.
pub fn admit(count: &ClientCount, pool: &str, limits: &ClientLimits) -> Option<ClientSlot> {
    let slot = count.try_admit();
    if slot.is_none() {
        tracing::warn!(pool = %pool, max_clients = limits.max_clients, "client refused: max_clients reached");
    }
    slot
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_login_time_wins() {
        let mut short = ClientLimits::new(1024);
        short.login_timeout = Duration::from_secs(2);
        let mut long = short.clone();
        long.login_timeout = Duration::from_secs(9);
        assert_eq!(login_timeout([&short, &long]), Duration::from_secs(9));
        assert_eq!(login_timeout([]), ClientLimits::DEFAULT_LOGIN_TIMEOUT);
    }

    #[test]
    fn admission_stops_at_max_clients() {
        let mut limits = ClientLimits::new(1024);
        limits.max_clients = 1;
        let count = ClientCount::new(limits.max_clients);
        let first = admit(&count, "app", &limits);
        assert!(first.is_some());
        assert!(admit(&count, "app", &limits).is_none());
        drop(first);
        assert!(admit(&count, "app", &limits).is_some());
    }
}
