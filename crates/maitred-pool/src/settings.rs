//! [`PoolSettings`]: the bounds and timeouts of one pool.

use std::time::Duration;

/// Bounds and timeouts of one pool. Build with [`PoolSettings::new`] and
/// adjust the public fields.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    /// Name used in logs and error messages (e.g. `"app@db1"`).
    pub name: String,
    /// Never more open connections than this, under any race. Connections
    /// being opened or reset count too. `0` means no checkout can succeed.
    pub max_size: usize,
    /// Idle connections kept warm by the maintenance task (capped at `max_size`).
    /// Only honoured once [`Pool::start_maintenance`](crate::Pool::start_maintenance) ran.
    pub min_idle: usize,
    /// How long a checkout may wait in the queue for a connection or for the
    /// right to open one. Opening the connection afterwards is bounded
    /// separately by `connect_timeout`.
    pub queue_timeout: Duration,
    /// How many checkouts may wait at once; beyond that checkout fails at once
    /// with [`CheckoutError::QueueFull`](crate::CheckoutError::QueueFull).
    pub max_waiting: usize,
    /// An idle connection unused for this long is closed (at checkout or by
    /// the maintenance task). `None`: never.
    pub idle_timeout: Option<Duration>,
    /// A connection older than this is closed instead of being reused
    /// (checked at checkout, at return and by the maintenance task; a leased
    /// connection is never taken away). `None`: never.
    pub max_lifetime: Option<Duration>,
    /// Bounds [`Manager::connect`](crate::Manager::connect), and also
    /// [`Manager::reset`](crate::Manager::reset) of a dirty connection.
    pub connect_timeout: Duration,
    /// How often the maintenance task runs (at least 1 ms).
    pub maintenance_interval: Duration,
}

impl PoolSettings {
    /// Default [`queue_timeout`](Self::queue_timeout): 5 s.
    pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default [`max_waiting`](Self::max_waiting): 10 000.
    pub const DEFAULT_MAX_WAITING: usize = 10_000;
    /// Default [`idle_timeout`](Self::idle_timeout): 10 min.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
    /// Default [`max_lifetime`](Self::max_lifetime): 1 h.
    pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(60 * 60);
    /// Default [`connect_timeout`](Self::connect_timeout): 5 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default [`maintenance_interval`](Self::maintenance_interval): 1 s.
    pub const DEFAULT_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

    /// Settings with sensible defaults: `min_idle` 0, `queue_timeout` 5 s,
    /// `max_waiting` 10 000, `idle_timeout` 10 min, `max_lifetime` 1 h,
    /// `connect_timeout` 5 s, `maintenance_interval` 1 s.
    pub fn new(name: impl Into<String>, max_size: usize) -> Self {
        Self {
            name: name.into(),
            max_size,
            min_idle: 0,
            queue_timeout: Self::DEFAULT_QUEUE_TIMEOUT,
            max_waiting: Self::DEFAULT_MAX_WAITING,
            idle_timeout: Some(Self::DEFAULT_IDLE_TIMEOUT),
            max_lifetime: Some(Self::DEFAULT_MAX_LIFETIME),
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            maintenance_interval: Self::DEFAULT_MAINTENANCE_INTERVAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_uses_documented_defaults() {
        let s = PoolSettings::new("app@db", 20);
        assert_eq!(s.name, "app@db");
        assert_eq!(s.max_size, 20);
        assert_eq!(s.min_idle, 0);
        assert_eq!(s.queue_timeout, Duration::from_secs(5));
        assert_eq!(s.max_waiting, 10_000);
        assert_eq!(s.idle_timeout, Some(Duration::from_secs(600)));
        assert_eq!(s.max_lifetime, Some(Duration::from_secs(3600)));
        assert_eq!(s.connect_timeout, Duration::from_secs(5));
        assert_eq!(s.maintenance_interval, Duration::from_secs(1));
    }
}
