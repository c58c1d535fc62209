//! What a pool's manager keeps about its server beyond its connections: where new ones go
//! ([`Upstream`], swapped by a reload) and what the server reported ([`Reported`], shown
//! to clients).

use arc_swap::ArcSwap;
use std::sync::{Arc, Mutex};

/// The target new server connections go to; a reload that changes the upstream swaps it
/// whole, and the pool retires the open connections (`Pool::reconnect`).
#[derive(Debug)]
pub struct Upstream<T>(ArcSwap<T>);

impl<T> Upstream<T> {
    pub fn new(target: T) -> Upstream<T> {
        Upstream(ArcSwap::from_pointee(target))
    }

    pub fn get(&self) -> Arc<T> {
        self.0.load_full()
    }

    pub fn set(&self, target: T) {
        self.0.store(Arc::new(target));
    }
}

/// What a server connection reported at login (its settings, version, limits), once one
/// was opened.
#[derive(Debug)]
pub struct Reported<T>(Mutex<Option<T>>);

impl<T: Clone> Reported<T> {
    pub fn get(&self) -> Option<T> {
        self.lock().clone()
    }

    /// Keeps the first report: `report` runs only while there is none.
    pub fn first(&self, report: impl FnOnce() -> T) {
        let mut kept = self.lock();
        if kept.is_none() {
            *kept = Some(report());
        }
    }

    /// Keeps the latest report.
    pub fn latest(&self, report: T) {
        *self.lock() = Some(report);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        // A panic elsewhere while holding it left a whole value: keep using it.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<T> Default for Reported<T> {
    fn default() -> Self {
        Reported(Mutex::new(None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_report_stays_unless_the_latest_is_asked_for() {
        let r = Reported::default();
        assert_eq!(r.get(), None);
        r.first(|| 1);
        r.first(|| 2);
        assert_eq!(r.get(), Some(1));
        r.latest(3);
        assert_eq!(r.get(), Some(3));
        let up = Upstream::new("a");
        up.set("b");
        assert_eq!(*up.get(), "b");
    }
}
