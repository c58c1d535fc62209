//! The replies a server connection owes, in order, so maitred can slip its own replies in at
//! the right places (for messages it answered itself) and hide the replies to messages it
//! added (a Parse of a statement the server lacked, a Close of an evicted statement).
//!
//! PostgreSQL answers messages strictly in order, and after an error in the extended query
//! protocol it skips everything up to the next Sync
//! (<https://www.postgresql.org/docs/15/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY>).

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

/// The message that ends the reply to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A Parse; `Some(id)` for a statement of the pool's registry.
    Parse(Option<u64>),
    Bind,
    Describe,
    Execute,
    Close,
    /// Sync, Query or FunctionCall: the reply ends with ReadyForQuery.
    UntilReady,
}

impl Request {
    fn ends_with(self, tag: u8) -> bool {
        match self {
            Request::Parse(_) => tag == b'1',
            Request::Bind => tag == b'2',
            Request::Close => tag == b'3',
            Request::Describe => tag == b'T' || tag == b'n',
            Request::Execute => matches!(tag, b'C' | b'I' | b's'),
            Request::UntilReady => tag == b'Z',
        }
    }
}

#[derive(Debug)]
enum Owed {
    /// The reply to a client's message: forwarded.
    Client(Request),
    /// The reply to a message maitred added: swallowed (errors excepted).
    Injected(Request),
    /// A reply maitred composed itself, sent when its turn comes.
    Composed(Bytes),
    /// Where the client ended a COPY FROM STDIN (CopyDone/CopyFail): no reply of its own.
    CopyEnd,
    /// The reply to maitred's confirmation query (`crate::confirm`): read by the relay,
    /// never forwarded, up to its ReadyForQuery.
    Confirmation,
}

/// What to do with one server message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    Swallow,
    /// Part of the confirmation's reply: for the relay to read.
    Capture,
}

/// The queue of owed replies of one leased server connection.
#[derive(Debug, Default)]
pub struct Replies {
    owed: VecDeque<Owed>,
    /// The server reported an error in an extended-query batch whose Sync has not been
    /// sent yet: it discards every message up to that Sync, so nothing sent meanwhile is
    /// owed a reply (and nothing maitred would compose for it is sent).
    skipping: bool,
    /// Statements whose Parse was sent while the server was skipping: never prepared.
    skipped_parses: Vec<u64>,
}

impl Replies {
    pub fn is_empty(&self) -> bool {
        self.owed.iter().all(|o| matches!(o, Owed::CopyEnd))
    }

    /// How many entries are queued (replies owed, composed ones waiting, markers).
    pub fn len(&self) -> usize {
        self.owed.len()
    }

    /// Marks where the client ended a COPY FROM STDIN.
    pub fn copy_end(&mut self) {
        self.owed.push_back(Owed::CopyEnd);
    }

    /// The server entered COPY FROM STDIN mode (CopyInResponse), in which it ignores Sync:
    /// the Syncs the client sent between the COPY and its CopyDone/CopyFail get no reply.
    /// Returns how many were dropped, and whether the client's CopyDone/CopyFail was seen
    /// (if not, Syncs the client sends until then must not be counted either).
    pub fn copy_in_started(&mut self) -> (u32, bool) {
        let mut dropped = 0;
        let mut i = 1;
        while i < self.owed.len() {
            match self.owed[i] {
                Owed::CopyEnd => {
                    self.owed.remove(i);
                    return (dropped, true);
                }
                Owed::Client(Request::UntilReady) => {
                    self.owed.remove(i);
                    dropped += 1;
                }
                _ => i += 1,
            }
        }
        (dropped, false)
    }

    fn drop_copy_markers(&mut self) {
        while let Some(Owed::CopyEnd) = self.owed.front() {
            self.owed.pop_front();
        }
    }

    pub fn client(&mut self, r: Request) {
        if self.skipped(r) {
            return;
        }
        self.owed.push_back(Owed::Client(r));
    }

    pub fn injected(&mut self, r: Request) {
        if self.skipped(r) {
            return;
        }
        self.owed.push_back(Owed::Injected(r));
    }

    /// Whether the server discards `r` (an error earlier in the batch): then it is owed no
    /// reply. A Sync (or Query) ends the skipping.
    fn skipped(&mut self, r: Request) -> bool {
        if !self.skipping {
            return false;
        }
        match r {
            Request::UntilReady => {
                self.skipping = false;
                false
            }
            Request::Parse(Some(id)) => {
                self.skipped_parses.push(id);
                true
            }
            _ => true,
        }
    }

    /// maitred sent its confirmation query.
    pub fn confirmation(&mut self) {
        self.owed.push_back(Owed::Confirmation);
    }

    /// Whether the next server message belongs to the confirmation.
    pub fn front_is_confirmation(&self) -> bool {
        matches!(self.front_owed(), Some(Owed::Confirmation))
    }

    /// Whether the next server message answers a message maitred added.
    pub fn front_is_injected(&self) -> bool {
        matches!(self.front_owed(), Some(Owed::Injected(_)))
    }

    /// Whether the confirmation is all that is owed.
    pub fn only_confirmation(&self) -> bool {
        self.owed
            .iter()
            .filter(|o| !matches!(o, Owed::CopyEnd))
            .all(|o| matches!(o, Owed::Confirmation))
    }

    fn front_owed(&self) -> Option<&Owed> {
        self.owed.iter().find(|o| !matches!(o, Owed::CopyEnd))
    }

    /// Queues a reply maitred composed; `out` gets it at once if nothing is owed before it.
    pub fn composed(&mut self, msg: Bytes, out: &mut BytesMut) {
        if self.skipping {
            // The server would have sent nothing for it either.
            return;
        }
        if self.owed.is_empty() {
            out.extend_from_slice(&msg);
        } else {
            self.owed.push_back(Owed::Composed(msg));
        }
    }

    /// Classifies one server message by its tag. Statement ids whose Parse did not happen
    /// (failed or skipped after an error) are pushed to `unprepared`.
    pub fn on_server_message(&mut self, tag: u8, unprepared: &mut Vec<u64>) -> Verdict {
        self.drop_copy_markers();
        unprepared.append(&mut self.skipped_parses);
        if let Some(Owed::Confirmation) = self.owed.front() {
            if tag == b'Z' {
                self.owed.pop_front();
            }
            return Verdict::Capture;
        }
        match tag {
            // Asynchronous messages can come at any time.
            b'N' | b'S' | b'A' => Verdict::Forward,
            b'E' => {
                match self.owed.front() {
                    None | Some(Owed::Client(Request::UntilReady)) => {}
                    Some(Owed::Injected(Request::UntilReady)) => return Verdict::Swallow,
                    Some(_) => {
                        self.skip_to_sync(unprepared);
                        // No Sync sent yet: what the client sends until it is skipped too.
                        self.skipping = self.owed.is_empty();
                    }
                }
                // An error is the client's business even when maitred's Parse caused it.
                Verdict::Forward
            }
            _ => match self.owed.front() {
                Some(Owed::Client(r)) => {
                    if r.ends_with(tag) {
                        self.owed.pop_front();
                    }
                    Verdict::Forward
                }
                Some(Owed::Injected(r)) => {
                    if r.ends_with(tag) {
                        self.owed.pop_front();
                    }
                    Verdict::Swallow
                }
                Some(Owed::Composed(_)) | Some(Owed::CopyEnd) | Some(Owed::Confirmation) | None => {
                    Verdict::Forward
                }
            },
        }
    }

    /// After an error the server skips to the next Sync: so do the owed replies.
    /// (A confirmation is a Query, which ends the skipping like a Sync.)
    fn skip_to_sync(&mut self, unprepared: &mut Vec<u64>) {
        while let Some(front) = self.owed.front() {
            match front {
                Owed::Client(Request::UntilReady)
                | Owed::Injected(Request::UntilReady)
                | Owed::Confirmation => break,
                Owed::Client(Request::Parse(Some(id)))
                | Owed::Injected(Request::Parse(Some(id))) => {
                    unprepared.push(*id);
                }
                _ => {}
            }
            self.owed.pop_front();
        }
    }

    /// Moves composed replies that are now at the head of the queue to `out`.
    pub fn release_composed(&mut self, out: &mut BytesMut) {
        loop {
            match self.owed.front() {
                Some(Owed::Composed(_)) => {
                    if let Some(Owed::Composed(msg)) = self.owed.pop_front() {
                        out.extend_from_slice(&msg);
                    }
                }
                Some(Owed::CopyEnd) => {
                    self.owed.pop_front();
                }
                _ => break,
            }
        }
    }

    pub fn clear(&mut self) {
        self.owed.clear();
        self.skipping = false;
        self.skipped_parses.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(r: &mut Replies, tags: &[u8], out: &mut BytesMut) -> (Vec<Verdict>, Vec<u64>) {
        let mut unprepared = Vec::new();
        let mut verdicts = Vec::new();
        for t in tags {
            verdicts.push(r.on_server_message(*t, &mut unprepared));
            if verdicts.last() == Some(&Verdict::Forward) {
                out.extend_from_slice(&[*t]);
            }
            r.release_composed(out);
        }
        (verdicts, unprepared)
    }

    #[test]
    fn composed_parse_complete_slots_in_order() {
        // Client: Parse(s1, already prepared) Bind Execute Sync.
        let mut r = Replies::default();
        let mut out = BytesMut::new();
        r.composed(Bytes::from_static(b"1"), &mut out);
        assert_eq!(&out[..], b"1", "nothing owed before it: sent at once");
        r.client(Request::Bind);
        r.client(Request::Execute);
        r.client(Request::UntilReady);
        feed(&mut r, b"2DCZ", &mut out);
        assert_eq!(&out[..], b"12DCZ");
        assert!(r.is_empty());
    }

    #[test]
    fn injected_parse_is_swallowed() {
        // Client: Bind(s1 missing on server) → maitred adds Parse before it.
        let mut r = Replies::default();
        let mut out = BytesMut::new();
        r.injected(Request::Parse(Some(7)));
        r.client(Request::Bind);
        r.client(Request::Execute);
        r.client(Request::UntilReady);
        let (v, _) = feed(&mut r, b"12CZ", &mut out);
        assert_eq!(v[0], Verdict::Swallow);
        assert_eq!(&out[..], b"2CZ");
        assert!(r.is_empty());
    }

    #[test]
    fn error_skips_to_sync_and_reports_unprepared() {
        let mut r = Replies::default();
        let mut out = BytesMut::new();
        r.injected(Request::Parse(Some(3)));
        r.client(Request::Bind);
        r.composed(Bytes::from_static(b"3"), &mut out);
        r.client(Request::Parse(Some(4)));
        r.client(Request::UntilReady);
        let (_, unprepared) = feed(&mut r, b"EZ", &mut out);
        assert_eq!(
            &out[..],
            b"EZ",
            "composed CloseComplete dropped after the error"
        );
        assert_eq!(unprepared, vec![3, 4]);
        assert!(r.is_empty());
    }

    #[test]
    fn error_inside_simple_query_waits_for_ready() {
        let mut r = Replies::default();
        let mut out = BytesMut::new();
        r.client(Request::UntilReady);
        feed(&mut r, b"TDEZ", &mut out);
        assert_eq!(&out[..], b"TDEZ");
        assert!(r.is_empty());
    }

    #[test]
    fn syncs_sent_during_copy_in_get_no_reply() {
        // Bind Execute(COPY FROM STDIN) Sync ... CopyDone Sync Close(S) Sync
        let mut r = Replies::default();
        let mut out = BytesMut::new();
        r.client(Request::Bind);
        r.client(Request::Execute);
        r.client(Request::UntilReady);
        r.copy_end();
        r.client(Request::UntilReady);
        r.composed(Bytes::from_static(b"3"), &mut out);
        r.client(Request::UntilReady);
        let mut unprepared = Vec::new();
        assert_eq!(r.on_server_message(b'2', &mut unprepared), Verdict::Forward);
        assert_eq!(r.on_server_message(b'G', &mut unprepared), Verdict::Forward);
        assert_eq!(r.copy_in_started(), (1, true));
        feed(&mut r, b"CZZ", &mut out);
        assert_eq!(&out[..], b"CZ3Z");
        assert!(r.is_empty());
    }

    #[test]
    fn messages_sent_after_an_error_before_the_sync_are_owed_nothing() {
        // psycopg's prepared executemany in a pipeline: Parse(s1) Flush; the Parse fails;
        // then Bind/Describe/Execute (with maitred's Parse of s1 again) and the Sync.
        let mut r = Replies::default();
        let mut out = BytesMut::new();
        r.client(Request::Parse(Some(1)));
        let (_, unprepared) = feed(&mut r, b"E", &mut out);
        assert_eq!(unprepared, vec![1]);
        r.injected(Request::Parse(Some(1)));
        r.client(Request::Bind);
        r.composed(Bytes::from_static(b"3"), &mut out);
        r.client(Request::Describe);
        r.client(Request::Execute);
        r.client(Request::UntilReady);
        let (v, unprepared) = feed(&mut r, b"Z", &mut out);
        assert_eq!(
            v,
            vec![Verdict::Forward],
            "the ReadyForQuery reaches the client"
        );
        assert_eq!(unprepared, vec![1], "the skipped Parse never prepared it");
        assert_eq!(&out[..], b"EZ");
        assert!(r.is_empty());
        // The next batch is owed replies again.
        r.client(Request::Bind);
        r.client(Request::UntilReady);
        feed(&mut r, b"2Z", &mut out);
        assert!(r.is_empty());
    }

    #[test]
    fn the_confirmation_is_captured_whole_and_never_forwarded() {
        let mut r = Replies::default();
        let mut out = BytesMut::new();
        r.client(Request::UntilReady);
        r.confirmation();
        r.client(Request::UntilReady);
        let (v, _) = feed(&mut r, b"CZ", &mut out);
        assert_eq!(v, vec![Verdict::Forward, Verdict::Forward]);
        assert!(r.front_is_confirmation());
        assert!(
            !r.only_confirmation(),
            "the client's next query is owed too"
        );
        let (v, _) = feed(&mut r, b"TDCZ", &mut out);
        assert_eq!(v, vec![Verdict::Capture; 4]);
        assert!(!r.front_is_confirmation());
        feed(&mut r, b"CZ", &mut out);
        assert_eq!(&out[..], b"CZCZ");
        assert!(r.is_empty());
    }

    #[test]
    fn describe_statement_ends_on_row_description_or_no_data() {
        let mut r = Replies::default();
        let mut out = BytesMut::new();
        r.client(Request::Describe);
        r.client(Request::Describe);
        r.client(Request::UntilReady);
        feed(&mut r, b"tTtnZ", &mut out);
        assert!(r.is_empty());
    }
}
