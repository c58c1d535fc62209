//! Sending a queued client's query ahead (`send_ahead`, on by default in transaction and
//! statement modes).
//!
//! At saturation every server connection is busy and clients queue. Without this, a
//! connection that finishes a query sits idle until the next client in the queue is
//! scheduled, reads its grant and writes its query; the server process sleeps and wakes in
//! between. With it, the client holding the connection writes the next client's query
//! right behind its own, so the server reads it the moment it is done. The pool core does
//! the queueing part (`maitred_pool::Ahead`, `Lease::claim_successor`); this file decides
//! when it is safe for PostgreSQL:
//!
//! - The waiter offers only a lone read-only simple query
//!   ([`sql_effects::may_send_ahead`]), unpinned, outside any batch, and its affinity is
//!   its session settings themselves (sorted, length-prefixed, compared byte for byte by
//!   the pool, never a hash that crafted settings could collide with): it runs only on a
//!   connection that has exactly those.
//! - The holder claims only while its lease carries exactly one such query (its own, or
//!   one sent ahead for it), no injected SET, nothing else buffered from its client, and
//!   the server connection is idle apart from that query. A lone SELECT in autocommit
//!   cannot leave a transaction open or change settings, so the successor's query finds
//!   the connection as it would after a check-in.
//! - While the successor is claimed, the holder forwards nothing more of its own client's
//!   (it is held back until the hand-over), and it stops reading server messages at the
//!   ReadyForQuery that ends its own reply: the rest belongs to the successor.
//! - The hand-over passes the connection, its buffered bytes and the successor's owed
//!   ReadyForQuery (`pending_sync` 1). Every other way a lease ends (client gone, server
//!   lost, KILL, a time limit) drops the successor, whose checkout then fails with 08006,
//!   and the dirty connection's reset drains the reply nobody reads.
//!
//! The cost, documented in docs/postgres.md: the successor waits for this connection's
//! current query, not for the first connection to come free.

use super::lease::lease_view;
use super::rules::{self, HandOver};
use super::{query_text, Relay};
use crate::codec::client_msgs::tag;
use crate::codec::extended::{self, parse_query_text, Target};
use crate::codec::frame;
use crate::error::SessionError;
use crate::settings::Settings;
use crate::sql_effects;
use bytes::{BufMut, BytesMut};
use maitred_pool::{Affinity, Ahead};
use std::sync::atomic::Ordering;

/// A request larger than this is never sent ahead (it is copied into the offer).
const MAX_AHEAD_REQUEST: usize = 8 * 1024;

/// A request a waiting client offers, and how many of its messages it is made of.
pub(super) struct AheadOffer {
    pub(super) ahead: Ahead,
    pub(super) messages: usize,
}

/// A request being put together, as the server must receive it.
struct AheadRequest {
    bytes: BytesMut,
    messages: usize,
    /// The pool-wide id of the named statement it executes, if any.
    requires: Option<u64>,
}

/// Where the shape check of an extended-protocol batch is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    Parse,
    UnnamedBind,
    Describe,
    Execute,
    Sync,
}

impl Relay {
    /// What this client may offer to have sent ahead while it waits for a connection, for
    /// the request that starts with message `t` (`msg`, taken off the buffer; the rest of
    /// the request is still in it): a lone read-only simple Query, or an extended-protocol
    /// batch `[Parse ""] Bind [Describe] Execute Sync` of one such statement, unnamed or
    /// named (renamed for the server: the holder's connection must have it prepared).
    pub(super) fn ahead_offer(&mut self, t: u8, msg: &[u8]) -> Option<AheadOffer> {
        if !matches!(t, tag::QUERY | tag::PARSE | tag::BIND)
            || !self.pool.send_ahead()
            || self.pinned.is_some()
            || self.copy_in
            || !self.batch_effects.is_empty()
            || !self.pending_in_transaction.is_empty()
            || !self.pool.pool.likely_to_wait()
        {
            return None;
        }
        let mut out = AheadRequest {
            bytes: BytesMut::new(),
            messages: 0,
            requires: None,
        };
        if t == tag::QUERY {
            if msg.len() > MAX_AHEAD_REQUEST {
                return None;
            }
            // Scanned once: the relay uses this scan again when it forwards the query.
            let scan = sql_effects::scan_text(query_text(msg));
            let read_only = scan.read_only;
            self.query_scan = Some(scan);
            if !read_only {
                return None;
            }
            out.bytes.extend_from_slice(msg);
            out.messages = 1;
        } else {
            let mut first_scan = None;
            let batch = self.ahead_batch(msg, &mut out, &mut first_scan);
            self.query_scan = first_scan;
            batch?;
        }
        Some(AheadOffer {
            messages: out.messages,
            ahead: Ahead {
                request: out.bytes.freeze(),
                affinity: settings_affinity(&self.settings),
                requires: out.requires,
            },
        })
    }

    /// Fills `out` with the extended-protocol batch starting at `first`, if it is whole in
    /// the buffer and of the one shape that may be sent ahead.
    /// `first_scan` receives the scan of `first` when it is an unnamed Parse.
    fn ahead_batch(
        &self,
        first: &[u8],
        out: &mut AheadRequest,
        first_scan: &mut Option<sql_effects::Scan>,
    ) -> Option<()> {
        let mut rest: &[u8] = &self.crbuf;
        let mut msg = first;
        let mut step = Step::Parse;
        loop {
            let t = *msg.first()?;
            step = match (step, t) {
                (Step::Parse, tag::PARSE) => {
                    let parts = extended::split_parse(msg).ok()?;
                    let text = parse_query_text(parts.definition)?;
                    if !parts.name.is_empty() {
                        return None;
                    }
                    // Scanned once: a Parse is only ever `first`, and the relay uses this
                    // scan again when it forwards it.
                    let scan = sql_effects::scan(text);
                    let read_only = scan.read_only;
                    *first_scan = Some(scan);
                    if !read_only {
                        return None;
                    }
                    out.bytes.extend_from_slice(msg);
                    Step::UnnamedBind
                }
                (Step::Parse | Step::UnnamedBind, tag::BIND) => {
                    let (portal, stmt) = extended::bind_names(msg).ok()?;
                    if !portal.is_empty() {
                        return None;
                    }
                    if step == Step::UnnamedBind && stmt.is_empty() {
                        out.bytes.extend_from_slice(msg);
                    } else if step == Step::Parse && !stmt.is_empty() {
                        let st = self.statements.get(stmt)?;
                        if !st.may_send_ahead || !st.effects.is_empty() {
                            return None;
                        }
                        extended::write_bind_renamed(&mut out.bytes, msg, &st.server_name).ok()?;
                        out.requires = Some(st.id);
                    } else {
                        return None;
                    }
                    Step::Describe
                }
                (Step::Describe, tag::DESCRIBE) => {
                    match extended::describe_or_close_target(msg).ok()? {
                        Target::Portal("") => out.bytes.extend_from_slice(msg),
                        Target::Statement("") if out.requires.is_none() => {
                            out.bytes.extend_from_slice(msg)
                        }
                        Target::Statement(name) => {
                            let st = self.statements.get(name)?;
                            if Some(st.id) != out.requires {
                                return None;
                            }
                            extended::write_statement_target(
                                &mut out.bytes,
                                tag::DESCRIBE,
                                &st.server_name,
                            );
                        }
                        Target::Portal(_) => return None,
                    }
                    Step::Execute
                }
                (Step::Describe | Step::Execute, tag::EXECUTE) => {
                    if !extended::execute_portal(msg).ok()?.is_empty() {
                        return None;
                    }
                    out.bytes.extend_from_slice(msg);
                    Step::Sync
                }
                (Step::Sync, tag::SYNC) => {
                    out.bytes.extend_from_slice(msg);
                    out.messages += 1;
                    return (out.bytes.len() <= MAX_AHEAD_REQUEST).then_some(());
                }
                _ => return None,
            };
            out.messages += 1;
            if out.bytes.len() > MAX_AHEAD_REQUEST {
                return None;
            }
            let (_, len) = frame::peek_header(rest, MAX_AHEAD_REQUEST).ok()??;
            if rest.len() < len {
                return None;
            }
            (msg, rest) = rest.split_at(len);
        }
    }

    /// The lease came with this message already written by the connection's previous
    /// holder (one of an offered request): record what the server owes for it, as
    /// forwarding it would, without writing it. The holder counted the request's one
    /// ReadyForQuery already.
    pub(super) fn account_sent_message(&mut self, t: u8, msg: &[u8]) -> Result<(), SessionError> {
        let mark = self.swbuf.len();
        let owed = self.replies.len();
        self.forward_client_message(t, msg)?;
        // What was offered needs nothing added: a named statement was checked to be
        // prepared on this connection when the request was claimed.
        debug_assert_eq!(
            self.replies.len(),
            owed + 1,
            "one reply per message sent ahead"
        );
        self.swbuf.truncate(mark);
        if matches!(t, tag::QUERY | tag::SYNC) {
            if let Some(server) = self.lease.as_deref_mut() {
                server.pending_sync = server.pending_sync.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// Claims the oldest queued client and writes its query behind ours, when the lease
    /// carries exactly one query that leaves the connection as the successor needs it.
    pub(super) fn claim_successor(&mut self) {
        if !self.lease_request_safe
            || !rules::may_claim_successor(
                &self.session_view(),
                self.lease_request_safe,
                self.ahead_messages_left,
                !self.crbuf.is_empty(),
            )
            || !self.pool.send_ahead()
            || !self.pool.pool.has_waiters()
        {
            return;
        }
        let Some(lease) = self.lease.as_ref() else {
            return;
        };
        let server: &crate::backend::ServerConn = lease;
        let affinity = settings_affinity(&server.applied);
        let Some(successor) = lease.claim_successor(affinity, |id| server.prepared.contains(id))
        else {
            return;
        };
        self.swbuf.extend_from_slice(successor.request());
        if let Some(server) = self.lease.as_deref_mut() {
            server.pending_sync += 1;
        }
        self.successor = Some(successor);
    }

    /// Our reply is read: the connection, with the successor's reply owed, goes to it. In
    /// any state other than the expected one the successor is dropped (its checkout fails)
    /// and the connection is reset.
    pub(super) fn pass_to_successor(&mut self) {
        if !self.replies.is_empty() {
            return;
        }
        let Some(successor) = self.successor.take() else {
            return;
        };
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        let cancel_in_flight = self.cancel.clear_server();
        self.lease_request_safe = false;
        self.pool
            .counters
            .transactions
            .fetch_add(1, Ordering::Relaxed);
        // The server's replies may still say our session is not what was predicted
        // (`relay/isolation.rs`): then it is reset, never handed over as it is.
        let decision = rules::hand_over(&lease_view(&lease), self.isolation.state_unaccounted());
        self.isolation.lease_ended();
        if cancel_in_flight {
            // Our CancelRequest may still reach this backend: it serves no one else.
            drop(successor);
            lease.discard();
        } else {
            match decision {
                HandOver::Pass => {
                    if let Err(mut back) = successor.hand_over(lease) {
                        // The successor left: the reset drains its reply.
                        back.mark_dirty();
                    }
                }
                HandOver::Reset { discard } => {
                    tracing::warn!(pool = %self.pool.name, "connection not idle after a query sent ahead was queued; the queued client is told to retry");
                    lease.needs_discard = discard;
                    drop(successor);
                    lease.mark_dirty();
                }
            }
        }
        if !self.crbuf.is_empty() {
            self.client_bytes_pending = true;
        }
    }
}

/// A set of settings as an affinity: the (name, value) pairs sorted, each string
/// length-prefixed, so that two clients with the same settings get equal bytes whatever
/// order their SETs came in, and different settings never do. The pool compares
/// affinities exactly; a hash here (as before) let crafted settings pass for another
/// client's.
fn settings_affinity(settings: &Settings) -> Affinity {
    let mut pairs: Vec<(&str, &str)> = settings.iter().collect();
    pairs.sort_unstable();
    let len = pairs.iter().map(|(n, v)| 8 + n.len() + v.len()).sum();
    let mut out = BytesMut::with_capacity(len);
    for (name, value) in pairs {
        for part in [name, value] {
            out.put_u32(u32::try_from(part.len()).unwrap_or(u32::MAX));
            out.put_slice(part.as_bytes());
        }
    }
    Affinity::new(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::settings_affinity;
    use crate::settings::Settings;

    #[test]
    fn affinity_follows_the_set_of_settings_not_their_order() {
        let mut a = Settings::default();
        a.set("application_name", "'x'");
        a.set("search_path", "app");
        let mut b = Settings::default();
        b.set("search_path", "app");
        b.set("application_name", "'x'");
        assert_eq!(settings_affinity(&a), settings_affinity(&b));
        b.set("search_path", "other");
        assert_ne!(settings_affinity(&a), settings_affinity(&b));
        assert_ne!(
            settings_affinity(&a),
            settings_affinity(&Settings::default())
        );
    }

    fn two(app: &str, path: &str) -> Settings {
        let mut s = Settings::default();
        s.set("application_name", app);
        s.set("search_path", path);
        s
    }

    /// Pairs of settings whose affinity used to be equal: it was the wrapping sum of
    /// `DefaultHasher` (SipHash-1-3, fixed keys) hashes of each (name, value), and these
    /// were found with a generalised-birthday search in about a minute and a half of one
    /// core (4 lists of 2^22 values each). Another client's settings can be matched the
    /// same way (e.g. a `role`).
    const COLLIDING: [[&str; 4]; 4] = [
        ["'a382172'", "'b2340863'", "'c2490929'", "'d3258159'"],
        ["'a393498'", "'b3361470'", "'c409959'", "'d283672'"],
        ["'a2981127'", "'b3109384'", "'c3958245'", "'d2021012'"],
        ["'a3416861'", "'b2741915'", "'c3658034'", "'d1677545'"],
    ];

    #[test]
    fn settings_whose_old_hash_sums_collide_have_different_affinities() {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let old_affinity = |s: &Settings| {
            s.iter().fold(0u64, |acc, pair| {
                let mut h = DefaultHasher::new();
                pair.hash(&mut h);
                acc.wrapping_add(h.finish())
            })
        };
        for [a1, a2, b1, b2] in COLLIDING {
            let (a, b) = (two(a1, a2), two(b1, b2));
            assert_ne!(a, b);
            // The collision is real (unless the standard library's DefaultHasher changed).
            if old_affinity(&a) == old_affinity(&b) {
                eprintln!("{a:?} and {b:?} collide under the old affinity");
            }
            assert_ne!(
                settings_affinity(&a),
                settings_affinity(&b),
                "{a:?} vs {b:?}"
            );
        }
    }

    #[test]
    fn length_prefixes_keep_names_and_values_apart() {
        let mut a = Settings::default();
        a.set("ab", "c");
        let mut b = Settings::default();
        b.set("a", "bc");
        assert_ne!(settings_affinity(&a), settings_affinity(&b));
        let mut c = Settings::default();
        c.set("a", "b");
        c.set("c", "d");
        let mut d = Settings::default();
        d.set("a", "bc");
        d.set("", "d");
        assert_ne!(settings_affinity(&c), settings_affinity(&d));
    }
}
