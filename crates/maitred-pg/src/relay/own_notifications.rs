//! A client's own notifications, recognised when they come back (transaction and statement
//! modes). A NotificationResponse carries the process id of the server connection that
//! sent it; through maitred that is the leased connection's pid, not the pid the client
//! was told. Clients compare the two to skip what they sent themselves, so a notification
//! the client sent is given back its own pid.
//!
//! What counts as sent: a `NOTIFY channel[, 'payload']` whose transaction committed
//! (`effects::settle_effects`), recorded with the server pid it ran on. A notification
//! that arrives with the same pid, channel and payload is claimed, oldest record first:
//! one server connection's notifications arrive in commit order, and it served this client
//! before anyone else who could have sent the same notification on it. A client pinned
//! by a LISTEN it sent to the server gets notifications on its own connection: those sent
//! by that connection's process are its own. (What is not
//! recognised keeps the server's pid: `pg_notify()` calls, NOTIFYs undone by ROLLBACK TO
//! SAVEPOINT may mislabel one later identical notification from the same connection.)

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A record not claimed within this long is forgotten (the notification went to
/// channels the client does not listen on).
const KEEP: Duration = Duration::from_secs(30);
/// At most this many records are kept.
const MAX_RECORDS: usize = 256;

#[derive(Debug, Default)]
pub(super) struct OwnNotifications {
    /// (server pid, channel, payload, committed at), oldest first.
    sent: VecDeque<(i32, String, String, Instant)>,
}

impl OwnNotifications {
    /// A NOTIFY of the client committed on the server connection `server_pid`. PostgreSQL
    /// sends identical notifications of one transaction once: `committed` holds one
    /// transaction's.
    pub(super) fn committed(
        &mut self,
        server_pid: i32,
        committed: Vec<(String, String)>,
        now: Instant,
    ) {
        let first_of_transaction = self.sent.len();
        for (channel, payload) in committed {
            let twice = self
                .sent
                .range(first_of_transaction..)
                .any(|(_, c, p, _)| *c == channel && *p == payload);
            if !twice {
                self.sent.push_back((server_pid, channel, payload, now));
            }
        }
        while self.sent.len() > MAX_RECORDS {
            self.sent.pop_front();
        }
    }

    /// Whether the notification (`pid`, `channel`, `payload`) is one the client sent; if so
    /// its record is used up.
    pub(super) fn claim(&mut self, pid: i32, channel: &[u8], payload: &[u8], now: Instant) -> bool {
        while self
            .sent
            .front()
            .is_some_and(|(.., at)| now.duration_since(*at) > KEEP)
        {
            self.sent.pop_front();
        }
        let found = self.sent.iter().position(|(p, c, m, _)| {
            *p == pid && c.as_bytes() == channel && m.as_bytes() == payload
        });
        found.and_then(|i| self.sent.remove(i)).is_some()
    }
}

/// The pid, channel and payload of a whole NotificationResponse message.
pub(super) fn parse(msg: &[u8]) -> Option<(i32, &[u8], &[u8])> {
    if msg.first() != Some(&b'A') {
        return None;
    }
    let body = msg.get(5..)?;
    let pid = i32::from_be_bytes(body.get(..4)?.try_into().ok()?);
    let rest = &body[4..];
    let end = rest.iter().position(|b| *b == 0)?;
    let channel = &rest[..end];
    let rest = &rest[end + 1..];
    let end = rest.iter().position(|b| *b == 0)?;
    Some((pid, channel, &rest[..end]))
}

/// Whether a whole message is a NotificationResponse sent by the server process `pid`.
pub(super) fn sent_by(msg: &[u8], pid: i32) -> bool {
    parse(msg).is_some_and(|(p, ..)| p == pid)
}

/// Writes `pid` over the pid of a whole NotificationResponse message.
pub(super) fn set_pid(msg: &mut [u8], pid: u32) {
    if let Some(field) = msg.get_mut(5..9) {
        field.copy_from_slice(&pid.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(pid: i32, channel: &str, payload: &str) -> Vec<u8> {
        let mut body = pid.to_be_bytes().to_vec();
        body.extend_from_slice(channel.as_bytes());
        body.push(0);
        body.extend_from_slice(payload.as_bytes());
        body.push(0);
        let mut m = vec![b'A'];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(&body);
        m
    }

    fn sent(c: &str, p: &str) -> Vec<(String, String)> {
        vec![(c.to_owned(), p.to_owned())]
    }

    #[test]
    fn parse_and_set_pid_round_trip() {
        let mut m = msg(42, "jobs", "x");
        assert_eq!(parse(&m), Some((42, &b"jobs"[..], &b"x"[..])));
        set_pid(&mut m, 1 << 24);
        assert_eq!(parse(&m), Some((1 << 24, &b"jobs"[..], &b"x"[..])));
        assert!(sent_by(&m, 1 << 24) && !sent_by(&m, 42));
        assert_eq!(parse(&m[..7]), None);
        m[0] = b'E';
        assert_eq!(parse(&m), None, "only a NotificationResponse");
    }

    #[test]
    fn only_what_the_client_committed_on_that_connection_is_claimed() {
        let now = Instant::now();
        let mut own = OwnNotifications::default();
        own.committed(7, sent("jobs", "x"), now);
        assert!(
            !own.claim(8, b"jobs", b"x", now),
            "another server connection"
        );
        assert!(!own.claim(7, b"other", b"x", now), "another channel");
        assert!(!own.claim(7, b"jobs", b"y", now), "another payload");
        assert!(own.claim(7, b"jobs", b"x", now));
        assert!(
            !own.claim(7, b"jobs", b"x", now),
            "the next one on that connection is someone else's"
        );
    }

    #[test]
    fn a_channel_the_client_does_not_listen_on_does_not_take_anothers_notification() {
        let now = Instant::now();
        let mut own = OwnNotifications::default();
        // The client notified `workers` (which it does not listen on) through pid 7; the
        // next holder of pid 7 notified `events`, which it does.
        own.committed(7, sent("workers", ""), now);
        assert!(!own.claim(7, b"events", b"", now));
    }

    #[test]
    fn identical_notifications_of_one_transaction_are_one() {
        let now = Instant::now();
        let mut own = OwnNotifications::default();
        let twice = [sent("a", "x"), sent("a", "x")].concat();
        own.committed(7, twice, now);
        assert!(own.claim(7, b"a", b"x", now));
        assert!(!own.claim(7, b"a", b"x", now), "the server sent it once");
        // Two transactions: two notifications.
        own.committed(7, sent("a", "x"), now);
        own.committed(7, sent("a", "x"), now);
        assert!(own.claim(7, b"a", b"x", now));
        assert!(own.claim(7, b"a", b"x", now));
    }

    #[test]
    fn records_are_forgotten_after_a_while_and_bounded() {
        let now = Instant::now();
        let mut own = OwnNotifications::default();
        own.committed(7, sent("a", ""), now);
        assert!(!own.claim(7, b"a", b"", now + KEEP + Duration::from_secs(1)));
        for i in 0..(MAX_RECORDS + 10) {
            own.committed(7, sent(&format!("c{i}"), ""), now);
        }
        assert_eq!(own.sent.len(), MAX_RECORDS);
        assert!(!own.claim(7, b"c0", b"", now), "the oldest went first");
        assert!(own.claim(7, format!("c{}", MAX_RECORDS + 9).as_bytes(), b"", now));
    }
}
