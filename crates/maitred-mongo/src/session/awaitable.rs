//! Awaitable hello and the streaming protocol, answered by maitred without a server
//! connection: a hello carrying maitred's topologyVersion and `maxAwaitTimeMS` is held until
//! maxAwaitTimeMS passes or the drain starts (the one change of maitred's topologyVersion,
//! see [`crate::hello`]); with `exhaustAllowed` each answer carries `moreToCome` and the
//! next one follows after another wait, until the client closes the connection or sends
//! something.
//!
//! Spec: <https://github.com/mongodb/specifications/blob/master/source/server-discovery-and-monitoring/server-monitoring.md>
//! ("Streaming Protocol").

use super::Session;
use crate::backend::{is_ok, next_request_id};
use crate::codec::{op_msg, Header};
use crate::error::SessionError;
use bson::RawDocument;
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How the wait for the next answer ended.
enum Held {
    /// maxAwaitTimeMS passed, or the drain started (the topologyVersion changed): answer.
    Answer,
    /// The client closed the connection, or ran out of time to log in: nothing to answer.
    ClientGone,
    /// The client sent a request: answer now, without moreToCome, and serve the request.
    ClientSent,
}

impl Session {
    /// Answers an awaitable hello (OP_MSG) after `wait`, and keeps answering every `wait`
    /// with `moreToCome` if the client allowed exhaust.
    pub(super) async fn awaitable_hello(
        &mut self,
        h: Header,
        body: &RawDocument,
        legacy: bool,
        wait: Duration,
        exhaust: bool,
    ) -> Result<(), SessionError> {
        self.pool
            .counters
            .awaitable_hellos
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut response_to = h.request_id;
        loop {
            let streaming = match self.hold(wait).await {
                Held::Answer => exhaust,
                Held::ClientSent => false,
                Held::ClientGone => return Ok(()),
            };
            let doc = self.hello(body, legacy).await;
            let flags = if streaming && is_ok(&doc) {
                op_msg::MORE_TO_COME
            } else {
                0
            };
            // Each streamed answer responds to the previous one, as servers do.
            let id = next_request_id();
            let mut out = BytesMut::with_capacity(doc.as_bytes().len() + 32);
            op_msg::encode(&mut out, id, response_to, flags, doc.as_bytes());
            self.write_client(&out).await?;
            if flags == 0 {
                return Ok(());
            }
            response_to = id;
        }
    }

    async fn hold(&mut self, wait: Duration) -> Held {
        // Running: the drain is the change to wake for. Draining: nothing changes any more.
        let running = !maitred_pool::shutdown::started();
        // A held hello does not stretch the login deadline of a client that tries to log
        // in: out of time, the connection is closed without an answer (the serve loop sees
        // the deadline passed). Monitoring connections wait on maitred here.
        let login = self.login_deadline.while_held();
        tokio::select! {
            () = tokio::time::sleep(wait) => Held::Answer,
            () = maitred_pool::sleep_until(login) => Held::ClientGone,
            () = maitred_pool::shutdown::wait(), if running => Held::Answer,
            r = self.client.read_buf(&mut self.crbuf) => match r {
                Ok(0) | Err(_) => Held::ClientGone,
                Ok(n) => {
                    self.ticket.traffic().received(n);
                    Held::ClientSent
                }
            },
        }
    }
}
