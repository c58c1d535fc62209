//! LISTEN/NOTIFY in transaction mode without pinning: one listening server connection per
//! pool runs every LISTEN its clients asked for and fans the notifications out to them.
//!
//! A client's `LISTEN ch` / `UNLISTEN ch` / `UNLISTEN *` sent on its own (outside a
//! transaction block) is answered by maitred and registered here; NOTIFY goes to the server
//! as usual, through whatever connection the sender leases. Notifications reach a client
//! between its transactions, as PostgreSQL delivers them.
//!
//! Each client's queue of notifications not yet written to it is bounded
//! ([`MAX_PENDING_NOTIFICATION_BYTES`]): a client that listens but falls that far behind
//! (it stops reading, or stays inside one transaction while notifications pour in) is
//! unsubscribed and disconnected with FATAL 54000 rather than dropped notifications in
//! silence or let grow maitred's memory without bound. See docs/postgres.md.
//!
//! Spec: <https://www.postgresql.org/docs/15/sql-listen.html>, "NotificationResponse".

use crate::backend::ServerConn;
use crate::codec::frame;
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::target::ServerTarget;
use bytes::{Buf, Bytes, BytesMut};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// Most bytes of notifications queued in maitred for one client (all its channels
/// together; each notification counts its length plus [`NOTIFICATION_OVERHEAD`]). Past it
/// the client has fallen behind: it is unsubscribed and its session ends with FATAL 54000.
/// PostgreSQL delivers a transaction's notifications in one burst at its commit, so this
/// must hold the largest burst a listener is expected to absorb while it is busy (in a
/// transaction, or reading slowly): 16 MiB is 2000 notifications of the largest payload
/// (8000 bytes), about 170 000 of 32 bytes.
pub const MAX_PENDING_NOTIFICATION_BYTES: usize = 16 << 20;

/// What one queued notification costs beyond its bytes (its handle, the queue's node and
/// the allocator's rounding), so that many tiny ones are not under-counted.
const NOTIFICATION_OVERHEAD: usize = 80;

/// SQLSTATE of the FATAL a client that fell behind gets (`program_limit_exceeded`, as
/// PostgreSQL's own "too many notifications in the NOTIFY queue").
const PROGRAM_LIMIT_EXCEEDED: &str = "54000";

/// One client's queue: the bytes in it, and whether it overflowed.
#[derive(Debug)]
struct Queue {
    limit: usize,
    pending: AtomicUsize,
    fell_behind: AtomicBool,
}

/// Sends NotificationResponse messages (whole, as the server sent them) to one client,
/// within the client's budget of [`MAX_PENDING_NOTIFICATION_BYTES`].
#[derive(Debug, Clone)]
pub struct NotificationSender {
    tx: mpsc::UnboundedSender<Bytes>,
    queue: Arc<Queue>,
}

/// A client's end of its notification queue.
#[derive(Debug)]
pub struct NotificationReceiver {
    rx: mpsc::UnboundedReceiver<Bytes>,
    queue: Arc<Queue>,
    /// [`recv`](Self::recv) returned the FATAL that ends the session.
    ended: bool,
}

/// A client's notification queue, bounded by [`MAX_PENDING_NOTIFICATION_BYTES`].
pub fn notification_channel() -> (NotificationSender, NotificationReceiver) {
    notification_channel_with_limit(MAX_PENDING_NOTIFICATION_BYTES)
}

fn notification_channel_with_limit(limit: usize) -> (NotificationSender, NotificationReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queue = Arc::new(Queue {
        limit,
        pending: AtomicUsize::new(0),
        fell_behind: AtomicBool::new(false),
    });
    (
        NotificationSender {
            tx,
            queue: queue.clone(),
        },
        NotificationReceiver {
            rx,
            queue,
            ended: false,
        },
    )
}

/// What became of a notification offered to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Queued,
    /// The client is gone, or fell behind earlier: it gets nothing more.
    Refused,
    /// This notification would have passed the client's budget: it fell behind now.
    FellBehind,
}

impl NotificationSender {
    /// Queues a notification within the client's budget. Anything but [`Sent::Queued`]
    /// means the client gets nothing more and the caller drops its subscription.
    fn send(&self, msg: Bytes) -> Sent {
        let q = &self.queue;
        if q.fell_behind.load(Ordering::Acquire) {
            return Sent::Refused;
        }
        let n = msg.len() + NOTIFICATION_OVERHEAD;
        let before = q.pending.fetch_add(n, Ordering::AcqRel);
        if before + n > q.limit {
            q.pending.fetch_sub(n, Ordering::AcqRel);
            if q.fell_behind.swap(true, Ordering::AcqRel) {
                return Sent::Refused;
            }
            // Wakes the receiver even if it emptied the queue meanwhile (outside the budget).
            let _ = self.tx.send(Bytes::new());
            return Sent::FellBehind;
        }
        if self.tx.send(msg).is_err() {
            q.pending.fetch_sub(n, Ordering::AcqRel);
            return Sent::Refused;
        }
        Sent::Queued
    }
}

/// What a queued message counts against the budget (the wake-up marker: nothing).
fn charge(msg: &Bytes) -> usize {
    if msg.is_empty() {
        0
    } else {
        msg.len() + NOTIFICATION_OVERHEAD
    }
}

impl NotificationReceiver {
    /// The next notification to write to the client. Once the client fell behind, the
    /// FATAL ErrorResponse that ends its session instead (the notifications still queued
    /// are dropped), and `None` after that.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let msg = self.rx.recv().await?;
        self.queue.pending.fetch_sub(charge(&msg), Ordering::AcqRel);
        if self.fell_behind() {
            self.ended = true;
            self.rx.close();
            while let Ok(dropped) = self.rx.try_recv() {
                self.queue
                    .pending
                    .fetch_sub(charge(&dropped), Ordering::AcqRel);
            }
            let mut fatal = BytesMut::new();
            out::error_response(
                &mut fatal,
                &ErrorFields {
                    severity: Severity::Fatal,
                    code: PROGRAM_LIMIT_EXCEEDED,
                    message: &format!(
                        "maitred: terminating connection: the client fell behind reading notifications (more than {} KiB queued)",
                        self.queue.limit / 1024
                    ),
                    detail: Some("Notifications are delivered between transactions; this client did not read them, or stayed in a transaction, while more arrived. Those still queued are lost."),
                    hint: Some("Read notifications promptly, keep transactions short on listening connections, then reconnect and LISTEN again."),
                },
            );
            return Some(fatal.freeze());
        }
        Some(msg)
    }

    /// Whether the client fell behind (it gets nothing more).
    pub fn fell_behind(&self) -> bool {
        self.queue.fell_behind.load(Ordering::Acquire)
    }

    /// Whether [`recv`](Self::recv) returned the FATAL: once it is written, the session
    /// ends.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Bytes of notifications queued now.
    pub fn pending_bytes(&self) -> usize {
        self.queue.pending.load(Ordering::Acquire)
    }
}

#[derive(Debug, Default)]
struct Subscriptions {
    /// channel → client id → sender
    by_channel: HashMap<String, HashMap<u32, NotificationSender>>,
}

/// The pool's shared listener.
#[derive(Debug)]
pub struct Notifier {
    target: Arc<ServerTarget>,
    subs: Arc<Mutex<Subscriptions>>,
    /// Wakes the listener task when the set of channels changes; set when it runs.
    wake: Mutex<Option<mpsc::UnboundedSender<()>>>,
    /// The channels the server connection is listening on right now.
    active: Arc<tokio::sync::watch::Sender<HashSet<String>>>,
}

impl Notifier {
    pub fn new(target: Arc<ServerTarget>) -> Notifier {
        Notifier {
            target,
            subs: Arc::new(Mutex::new(Subscriptions::default())),
            wake: Mutex::new(None),
            active: Arc::new(tokio::sync::watch::Sender::new(HashSet::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Subscribes a client to a channel (starting the listener task if needed).
    pub fn listen(&self, client: u32, channel: &str, tx: NotificationSender) {
        self.lock()
            .by_channel
            .entry(channel.to_owned())
            .or_default()
            .insert(client, tx);
        self.wake();
    }

    /// Resolves once the server connection listens on `channel`, so that a client's LISTEN
    /// is answered only when notifications on it can no longer be missed. False after
    /// `timeout`.
    pub async fn until_listening(&self, channel: &str, timeout: Duration) -> bool {
        let mut rx = self.active.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|set| set.contains(channel)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Unsubscribes a client from one channel, or from all (`None`).
    pub fn unlisten(&self, client: u32, channel: Option<&str>) {
        {
            let mut subs = self.lock();
            match channel {
                Some(ch) => {
                    if let Some(m) = subs.by_channel.get_mut(ch) {
                        m.remove(&client);
                    }
                }
                None => subs.by_channel.values_mut().for_each(|m| {
                    m.remove(&client);
                }),
            }
            subs.by_channel.retain(|_, m| !m.is_empty());
        }
        self.wake();
    }

    pub fn channels(&self) -> HashSet<String> {
        self.lock().by_channel.keys().cloned().collect()
    }

    fn wake(&self) {
        let mut wake = self.wake.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = wake.as_ref() {
            if tx.send(()).is_ok() {
                return;
            }
        }
        // No task yet (or it ended): start one.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(());
        *wake = Some(tx);
        tokio::spawn(listener_task(
            self.target.clone(),
            self.subs.clone(),
            self.active.clone(),
            rx,
        ));
    }
}

fn deliver(subs: &Mutex<Subscriptions>, msg: Bytes) {
    // NotificationResponse: int32 pid, channel, payload.
    let body = frame::body(&msg);
    let Some(rest) = body.get(4..) else { return };
    let Some(end) = rest.iter().position(|b| *b == 0) else {
        return;
    };
    let channel = String::from_utf8_lossy(&rest[..end]);
    // A copy of its own: a slice of the listening connection's read buffer would keep the
    // whole buffer alive while a slow client holds it, outside the budget's count.
    let msg = Bytes::copy_from_slice(&msg);
    let mut subs = subs.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(clients) = subs.by_channel.get_mut(channel.as_ref()) {
        clients.retain(|client, tx| match tx.send(msg.clone()) {
            Sent::Queued => true,
            Sent::Refused => false,
            Sent::FellBehind => {
                tracing::warn!(
                    client,
                    channel = %channel,
                    limit_bytes = tx.queue.limit,
                    "a listening client fell behind reading notifications; disconnecting it"
                );
                false
            }
        });
    }
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Keeps one server connection listening on exactly the subscribed channels; reconnects
/// (and listens again) when it fails. Ends when nobody listens any more.
async fn listener_task(
    target: Arc<ServerTarget>,
    subs: Arc<Mutex<Subscriptions>>,
    active: Arc<tokio::sync::watch::Sender<HashSet<String>>>,
    mut wake: mpsc::UnboundedReceiver<()>,
) {
    let mut conn: Option<ServerConn> = None;
    let mut listening: HashSet<String> = HashSet::new();
    loop {
        let wanted: HashSet<String> = {
            let s = subs.lock().unwrap_or_else(|p| p.into_inner());
            s.by_channel.keys().cloned().collect()
        };
        if wanted.is_empty() {
            active.send_replace(HashSet::new());
            if let Some(c) = conn.as_mut() {
                let _ = c.simple_query("UNLISTEN *").await;
            }
            return;
        }
        if conn.is_none() {
            match ServerConn::connect(&target, 1).await {
                Ok(c) => {
                    conn = Some(c);
                    listening.clear();
                    active.send_replace(HashSet::new());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let mut sql = String::new();
        for ch in wanted.difference(&listening) {
            sql.push_str(&format!("LISTEN {};", quote_ident(ch)));
        }
        for ch in listening.difference(&wanted) {
            sql.push_str(&format!("UNLISTEN {};", quote_ident(ch)));
        }
        if !sql.is_empty() {
            if let Err(e) = run_and_deliver(c, &sql, &subs).await {
                tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                conn = None;
                continue;
            }
            listening = wanted;
            active.send_replace(listening.clone());
        }
        // Wait for a notification or a change of channels.
        let Some(c) = conn.as_mut() else { continue };
        tokio::select! {
            changed = wake.recv() => {
                if changed.is_none() {
                    return;
                }
            }
            r = c.stream.read_buf(&mut c.rbuf) => {
                match r {
                    Ok(n) if n > 0 => {
                        if drain_notifications(c, &subs).is_err() {
                            conn = None;
                        }
                    }
                    _ => {
                        tracing::warn!("LISTEN connection closed; reconnecting");
                        conn = None;
                    }
                }
            }
        }
    }
}

/// Runs a simple query on the listening connection, delivering notifications that arrive
/// meanwhile.
async fn run_and_deliver(
    c: &mut ServerConn,
    sql: &str,
    subs: &Mutex<Subscriptions>,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    postgres_protocol::message::frontend::query(sql, &mut out)?;
    c.stream.write_all(&out).await?;
    loop {
        if c.stream.read_buf(&mut c.rbuf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if drain_notifications(c, subs)? {
            return Ok(());
        }
    }
}

/// Delivers whole NotificationResponses in the buffer; true when a ReadyForQuery was seen.
fn drain_notifications(c: &mut ServerConn, subs: &Mutex<Subscriptions>) -> std::io::Result<bool> {
    let mut ready = false;
    while let Some((t, len)) = frame::peek_header(&c.rbuf, 1 << 20)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?
    {
        if c.rbuf.len() < len {
            break;
        }
        let msg = c.rbuf.split_to(len).freeze();
        match t {
            b'A' => deliver(subs, msg),
            b'Z' => ready = true,
            _ => {}
        }
    }
    if c.rbuf.is_empty() {
        c.rbuf.clear();
    } else {
        c.rbuf.advance(0);
    }
    Ok(ready)
}

/// A LISTEN or UNLISTEN that maitred answers itself.
#[derive(Debug, PartialEq, Eq)]
pub enum ListenCommand {
    Listen(String),
    Unlisten(String),
    UnlistenAll,
}

/// Recognises a query that is exactly one LISTEN/UNLISTEN statement.
pub fn listen_command(sql: &str) -> Option<ListenCommand> {
    let s = sql.trim_start();
    // Every idle client's query comes through here: reject all but (UN)LISTEN at once.
    if !matches!(s.as_bytes().first(), Some(b'l' | b'L' | b'u' | b'U')) {
        return None;
    }
    let s = s.trim_end().trim_end_matches(';').trim();
    if s.contains(';') {
        return None;
    }
    let (verb, rest) = s.split_once(char::is_whitespace)?;
    let name = rest.trim();
    let channel = if let Some(q) = name.strip_prefix('"') {
        q.strip_suffix('"')?.replace("\"\"", "\"")
    } else if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        name.to_ascii_lowercase()
    } else if name == "*" {
        "*".to_owned()
    } else {
        return None;
    };
    match verb.to_ascii_lowercase().as_str() {
        "listen" if channel != "*" => Some(ListenCommand::Listen(channel)),
        "unlisten" if channel == "*" => Some(ListenCommand::UnlistenAll),
        "unlisten" => Some(ListenCommand::Unlisten(channel)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_listen_forms() {
        assert_eq!(
            listen_command("LISTEN Jobs"),
            Some(ListenCommand::Listen("jobs".into()))
        );
        assert_eq!(
            listen_command("listen \"Jobs\";"),
            Some(ListenCommand::Listen("Jobs".into()))
        );
        assert_eq!(
            listen_command("UNLISTEN jobs"),
            Some(ListenCommand::Unlisten("jobs".into()))
        );
        assert_eq!(
            listen_command("unlisten *"),
            Some(ListenCommand::UnlistenAll)
        );
        assert_eq!(listen_command("LISTEN a; select 1"), None);
        assert_eq!(listen_command("LISTEN *"), None);
        assert_eq!(listen_command("select 1"), None);
    }

    #[test]
    fn delivery_goes_to_subscribers_of_the_channel_only() {
        let subs = Mutex::new(Subscriptions::default());
        let (a_tx, mut a_rx) = notification_channel();
        let (b_tx, mut b_rx) = notification_channel();
        {
            let mut s = subs.lock().expect("lock");
            s.by_channel
                .entry("jobs".into())
                .or_default()
                .insert(1, a_tx);
            s.by_channel
                .entry("other".into())
                .or_default()
                .insert(2, b_tx);
        }
        deliver(&subs, notification("jobs", "hello"));
        assert!(a_rx.rx.try_recv().is_ok());
        assert!(b_rx.rx.try_recv().is_err());
    }

    fn notification(channel: &str, payload: &str) -> Bytes {
        let mut msg = BytesMut::new();
        let len = 4 + 4 + channel.len() + 1 + payload.len() + 1;
        msg.extend_from_slice(b"A");
        msg.extend_from_slice(&(len as u32).to_be_bytes());
        msg.extend_from_slice(&7u32.to_be_bytes());
        msg.extend_from_slice(channel.as_bytes());
        msg.extend_from_slice(b"\0");
        msg.extend_from_slice(payload.as_bytes());
        msg.extend_from_slice(b"\0");
        msg.freeze()
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_off_at_its_budget_and_told_why() {
        let subs = Mutex::new(Subscriptions::default());
        let (slow_tx, mut slow_rx) = notification_channel();
        let (fast_tx, mut fast_rx) = notification_channel();
        {
            let mut s = subs.lock().expect("lock");
            let jobs = s.by_channel.entry("jobs".into()).or_default();
            jobs.insert(1, slow_tx);
            jobs.insert(2, fast_tx);
        }
        let one = notification("jobs", &"x".repeat(100)).len();
        let charged = one + NOTIFICATION_OVERHEAD;
        let fit = MAX_PENDING_NOTIFICATION_BYTES / charged;
        for i in 0..fit * 3 {
            deliver(&subs, notification("jobs", &"x".repeat(100)));
            // The fast client keeps up.
            let got = fast_rx.recv().await.expect("fast client gets every one");
            assert_eq!(got.len(), one, "notification {i}");
            assert!(slow_rx.pending_bytes() <= MAX_PENDING_NOTIFICATION_BYTES);
        }
        assert!(!fast_rx.fell_behind() && !fast_rx.ended());
        // The slow one was unsubscribed the moment it passed its budget; the fast one stays.
        let subscribed: Vec<u32> = subs.lock().expect("lock").by_channel["jobs"]
            .keys()
            .copied()
            .collect();
        assert_eq!(subscribed, vec![2]);
        assert!(slow_rx.fell_behind());
        // What it reads next is the FATAL that ends its session, then nothing.
        let fatal = slow_rx.recv().await.expect("the FATAL");
        assert_eq!(fatal[0], b'E');
        let text = String::from_utf8_lossy(&fatal);
        assert!(text.contains("FATAL") && text.contains("54000"), "{text}");
        assert!(text.contains("fell behind reading notifications"), "{text}");
        assert!(slow_rx.ended());
        assert_eq!(slow_rx.recv().await, None);
        assert_eq!(slow_rx.pending_bytes(), 0);
    }

    #[tokio::test]
    async fn a_client_that_keeps_up_never_falls_behind() {
        let (tx, mut rx) = notification_channel_with_limit(3 * (400 + NOTIFICATION_OVERHEAD) - 1);
        for _ in 0..10_000 {
            assert_eq!(tx.send(Bytes::from_static(&[0u8; 400])), Sent::Queued);
            assert_eq!(tx.send(Bytes::from_static(&[0u8; 400])), Sent::Queued);
            rx.recv().await.expect("one");
            rx.recv().await.expect("two");
        }
        assert_eq!(rx.pending_bytes(), 0);
        assert_eq!(tx.send(Bytes::from_static(&[0u8; 400])), Sent::Queued);
        assert_eq!(tx.send(Bytes::from_static(&[0u8; 400])), Sent::Queued);
        assert_eq!(tx.send(Bytes::from_static(&[0u8; 400])), Sent::FellBehind);
        assert_eq!(tx.send(Bytes::from_static(&[0u8; 1])), Sent::Refused);
        drop(rx);
        let (tx, rx) = notification_channel_with_limit(1000);
        drop(rx);
        assert_eq!(tx.send(Bytes::from_static(&[0u8; 1])), Sent::Refused);
    }
}
