//! What a client is told when it gets no server connection ([`Refusal`]): the pool core's
//! [`CheckoutError`] classified and worded once, which each protocol maps to its own code
//! (a SQLSTATE, a MySQL error number, a MongoDB code and labels) and shape (PostgreSQL's
//! message, detail and hint fields; one line for the others, [`Refusal::one_line`]).

use crate::duration::human;
use maitred_pool::CheckoutError;

/// Why no server connection was given, as far as a client's protocol tells it apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalClass {
    /// Every server connection stayed busy for `queue_timeout`, or the wait queue is full:
    /// the client may retry later.
    Overloaded,
    /// A server connection could not be opened (or not in time) just now.
    ConnectFailed,
    /// The server has been unreachable for a while; maitred keeps retrying with backoff.
    ServerDown,
    /// The request was sent ahead on another client's connection, which was lost before
    /// its reply: the request may have run.
    SentAheadLost,
    /// The pool is shutting down (removed by a reload).
    ShuttingDown,
}

/// A refusal worded for clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub class: RefusalClass,
    /// What happened, naming the pool and the setting involved.
    pub summary: String,
    /// The numbers behind it.
    pub detail: Option<String>,
    /// What to change.
    pub hint: Option<String>,
}

impl Refusal {
    /// The refusal of a failed checkout. `request` is what the protocol calls the client's
    /// request in prose ("query", "command", "request").
    pub fn of_checkout<E: std::fmt::Display>(e: &CheckoutError<E>, request: &str) -> Refusal {
        use RefusalClass::*;
        let (class, summary, detail, hint) = match e {
            CheckoutError::QueueTimeout { pool, waited, state } => (
                Overloaded,
                format!("maitred: no server connection free in pool \"{pool}\" within queue_timeout ({})", human(*waited)),
                Some(format!(
                    "pool size {}: {} busy, {} idle, {} clients waiting",
                    state.max_size, state.busy, state.idle, state.waiting
                )),
                Some("Raise the pool size (if the server allows more connections) or queue_timeout, or shorten transactions.".to_owned()),
            ),
            CheckoutError::QueueFull { pool, max_waiting, state } => (
                Overloaded,
                format!("maitred: the wait queue of pool \"{pool}\" is full (max_waiting {max_waiting})"),
                Some(format!(
                    "pool size {}: {} busy, {} clients waiting",
                    state.max_size, state.busy, state.waiting
                )),
                Some("Raise max_waiting or the pool size, or lower client concurrency.".to_owned()),
            ),
            CheckoutError::Connect { pool, source } => (
                ConnectFailed,
                format!("maitred: pool \"{pool}\" could not open a server connection: {source}"),
                None,
                Some("Check that the upstream server is up and accepts the pool's credentials.".to_owned()),
            ),
            CheckoutError::ConnectTimeout { pool, timeout } => (
                ConnectFailed,
                format!("maitred: pool \"{pool}\" could not open a server connection within server_connect_timeout ({})", human(*timeout)),
                None,
                Some("Check that the upstream server is reachable.".to_owned()),
            ),
            CheckoutError::ServerUnreachable { pool, failures, down_for, last_error } => (
                ServerDown,
                format!("maitred: the server of pool \"{pool}\" is unreachable ({failures} failed attempts over {}): {last_error}", human(*down_for)),
                None,
                Some("maitred keeps retrying with backoff; check that the upstream server is up.".to_owned()),
            ),
            CheckoutError::SentAheadLost { pool } => (
                SentAheadLost,
                format!("maitred: the server connection of pool \"{pool}\" that this {request} was sent ahead on was lost before its reply"),
                Some(format!("Its previous client or the server went away; the {request} may have run.")),
                Some(format!("Retry the {request}; set send_ahead = false on the pool to never share a wait this way.")),
            ),
            CheckoutError::Closed { pool } => (
                ShuttingDown,
                format!("maitred: pool \"{pool}\" is shutting down"),
                None,
                None,
            ),
        };
        Refusal {
            class,
            summary,
            detail,
            hint,
        }
    }

    /// Summary, detail and hint in one message, for protocols without separate fields:
    /// "summary; detail. Hint".
    pub fn one_line(&self) -> String {
        let mut line = self.summary.clone();
        if let Some(detail) = &self.detail {
            line.push_str("; ");
            line.push_str(&clause(detail));
        }
        if let Some(hint) = &self.hint {
            line.push_str(". ");
            line.push_str(hint);
        }
        line
    }
}

/// A sentence as a clause that follows a semicolon: lower-case first letter, no full stop.
fn clause(sentence: &str) -> String {
    let trimmed = sentence.strip_suffix('.').unwrap_or(sentence);
    let mut chars = trimmed.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maitred_pool::PoolState;
    use std::time::Duration;

    fn state() -> PoolState {
        PoolState {
            size: 2,
            idle: 0,
            busy: 2,
            waiting: 3,
            max_size: 2,
        }
    }

    #[test]
    fn a_queue_timeout_names_pool_setting_and_numbers() {
        let e: CheckoutError<String> = CheckoutError::QueueTimeout {
            pool: "app".into(),
            waited: Duration::from_millis(250),
            state: state(),
        };
        let r = Refusal::of_checkout(&e, "query");
        assert_eq!(r.class, RefusalClass::Overloaded);
        assert_eq!(
            r.one_line(),
            "maitred: no server connection free in pool \"app\" within queue_timeout (250ms); \
             pool size 2: 2 busy, 0 idle, 3 clients waiting. Raise the pool size (if the server \
             allows more connections) or queue_timeout, or shorten transactions."
        );
    }

    #[test]
    fn a_lost_send_ahead_speaks_of_the_protocols_request() {
        let e: CheckoutError<String> = CheckoutError::SentAheadLost { pool: "app".into() };
        let r = Refusal::of_checkout(&e, "command");
        assert_eq!(r.class, RefusalClass::SentAheadLost);
        assert_eq!(
            r.detail.as_deref(),
            Some("Its previous client or the server went away; the command may have run.")
        );
        assert!(
            r.one_line().contains("before its reply; its previous client or the server went away; the command may have run. Retry the command;"),
            "{}",
            r.one_line()
        );
    }

    #[test]
    fn shutting_down_is_the_summary_alone() {
        let e: CheckoutError<String> = CheckoutError::Closed { pool: "app".into() };
        let r = Refusal::of_checkout(&e, "request");
        assert_eq!(r.class, RefusalClass::ShuttingDown);
        assert_eq!(r.one_line(), "maitred: pool \"app\" is shutting down");
    }
}
