//! One client connection: reads whole messages, answers hello and SASL itself, enforces
//! authentication, and hands every other command to [`crate::relay`].
//!
//! Before a client has authenticated (in a pool with client authentication) it gets no
//! server connection: everything it may send is answered by maitred itself (hello, SASL,
//! `ping`, `endSessions`, `logout`) or refused with 13 `Unauthorized`. Until then its
//! messages are capped at [`crate::limits::MAX_MESSAGE_BEFORE_AUTH`] and the login
//! deadline runs (`session/time_limits.rs`). The one server contact an unauthenticated
//! client can cause is the pool learning the server's hello facts on the first hello of
//! its life (see [`Session::server_info`]).
//!
//! Spec: <https://github.com/mongodb/specifications/blob/master/source/auth/auth.md>.

use crate::backend::next_request_id;
use crate::codec::compressed::{self, Compressor};
use crate::codec::header::decode_frame;
use crate::codec::legacy::{encode_reply, parse_query};
use crate::codec::{op_msg, Header, OpCode};
use crate::error::SessionError;
use crate::hello;
use crate::manager::MongoManager;
use crate::pool::MongoPool;
use crate::tls::Stream;
use bson::RawDocument;
use bytes::BytesMut;
use maitred_admin::{ClientIdentity, ClientTicket};
use maitred_frontend::buffers;
use maitred_pool::{ClientClock, ClientSlot, Lease};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

mod awaitable;
mod forward;
mod local;
mod sasl;
mod time_limits;

#[cfg(test)]
pub(crate) use sasl::binary;
use sasl::Conversation;

static NEXT_CONNECTION_ID: AtomicI64 = AtomicI64::new(1);

type RequestFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, SessionError>> + Send + 'a>>;

/// How a reply goes back: OP_MSG, or OP_REPLY for a legacy OP_QUERY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplyKind {
    Msg,
    Legacy,
}

pub struct Session {
    pub(crate) client: Stream,
    pub(crate) crbuf: BytesMut,
    pub(crate) pool: Arc<MongoPool>,
    connection_id: i64,
    authenticated: bool,
    /// The user this client logged in as (it picks the server connections, see
    /// [`crate::user_pools`]).
    user: Option<String>,
    conversation: Option<Conversation>,
    pub(crate) lease: Option<Lease<MongoManager>>,
    /// The transaction this client is pinned for.
    pub(crate) pin: Option<Arc<crate::txn::TxnPin>>,
    /// Open cursors this client created: id -> namespace ("db.collection").
    pub(crate) cursors: HashMap<i64, String>,
    /// Compressors agreed with this client in hello (its order).
    compressors: Vec<Compressor>,
    /// The request being served came compressed with this: its reply goes back compressed.
    pub(crate) reply_compressor: Option<Compressor>,
    /// This client in its pool's client registry: state, traffic, KILL from the console.
    /// MongoDB clients register on connect (a client may authenticate several times, or
    /// not at all), so their user is not shown.
    pub(crate) ticket: ClientTicket,
    /// This client's place under the pool's max_clients; `None`: over it, refused at its
    /// first request.
    slot: Option<ClientSlot>,
    /// Until the client is authenticated (in a pool without client authentication:
    /// until its first request): when it is out of time to log in.
    login_deadline: time_limits::LoginDeadline,
    /// How long the client has been idle (or idle in a transaction).
    clock: ClientClock,
    /// The pool requires TLS and this client came in plain: its first request is refused.
    refuse_plain: bool,
}

impl Session {
    pub fn new(client: Stream, pool: Arc<MongoPool>) -> Session {
        pool.counters
            .clients_accepted
            .fetch_add(1, Ordering::Relaxed);
        let connection_id = NEXT_CONNECTION_ID.fetch_add(1, Ordering::Relaxed);
        tracing::Span::current().record("id", connection_id);
        let ticket = pool.clients.register(ClientIdentity {
            user: String::new(),
            database: String::new(),
            addr: client.tcp().and_then(|t| t.peer_addr().ok()),
            tls: client.is_tls(),
        });
        Session {
            slot: pool.client_count.try_admit(),
            login_deadline: time_limits::LoginDeadline::start(pool.limits.login_timeout),
            clock: ClientClock::default(),
            ticket,
            client,
            crbuf: BytesMut::with_capacity(1024),
            authenticated: !pool.requires_auth(),
            pool,
            user: None,
            connection_id,
            conversation: None,
            lease: None,
            pin: None,
            cursors: HashMap::new(),
            compressors: Vec::new(),
            reply_compressor: None,
            refuse_plain: false,
        }
    }

    /// Refuses this client at its first request if it is not using TLS.
    pub fn require_tls(mut self, required: bool) -> Session {
        self.refuse_plain = required && !self.client.is_tls();
        self
    }

    /// Serves the client to the end, then cleans up what it left on the server. (Boxed: an
    /// async fn keeps its argument twice, and the session is most of what an idle client
    /// costs.)
    pub async fn run(mut self: Box<Self>) {
        let kill = self.ticket.kill_signal();
        let served = tokio::select! {
            r = self.serve() => r,
            () = kill.killed() => {
                // KILL from the admin console: the client is closed; a server connection
                // in the middle of a request is in an unknown state and is closed too.
                if let Some(lease) = self.lease.take() {
                    lease.discard();
                }
                Ok(())
            }
        };
        if let Err(e) = served {
            tracing::debug!(pool = %self.pool.name, error = %e, "client session ended with an error");
        }
        self.cleanup().await;
    }

    /// The largest message accepted now: the configured maximum, and the server's own
    /// limit once known; before authentication, the small cap of
    /// [`crate::limits::request_limit`].
    fn max_message(&self) -> usize {
        let max = self
            .pool
            .pool
            .manager()
            .server_max_message_size()
            .unwrap_or(self.pool.max_message_size)
            .min(self.pool.max_message_size);
        crate::limits::request_limit(self.authenticated, max)
    }

    async fn serve(&mut self) -> Result<(), SessionError> {
        loop {
            let max = self.max_message();
            self.waiting_for_request();
            let (h, msg) = loop {
                if let Some(frame) = self.decode_request(max).await? {
                    break frame;
                }
                // Waiting for the client: no buffer is held unless part of a message is
                // in (an idle client costs its socket and its session state).
                buffers::give_back(&mut self.crbuf);
                let deadline = self.limit_deadline();
                // While pinned, also wake when the transaction ends through another
                // client connection, to release the server connection at once.
                match self.pin.clone() {
                    Some(pin) => tokio::select! {
                        r = self.client.readable() => r,
                        _ = pin.notify.notified() => {
                            self.release_ended_pin();
                            continue;
                        }
                        () = maitred_pool::sleep_until(deadline) => {
                            self.limit_reached();
                            return Ok(());
                        }
                    },
                    None => tokio::select! {
                        r = self.client.readable() => r,
                        () = maitred_pool::sleep_until(deadline) => {
                            self.limit_reached();
                            return Ok(());
                        }
                    },
                }
                .map_err(SessionError::ClientIo)?;
                buffers::ensure(&mut self.crbuf);
                match self.client.read_now(&mut self.crbuf) {
                    // Readable, yet nothing to read (a partial TLS record): wait again.
                    None => continue,
                    Some(Ok(0)) => return Ok(()),
                    Some(Ok(n)) => self.ticket.traffic().received(n),
                    Some(Err(e)) => return Err(SessionError::ClientIo(e)),
                }
            };
            let work = self.boxed_request(h, msg);
            if !work.await? {
                return Ok(());
            }
        }
    }

    /// Serves one request, in a future on the heap that exists only while it is served.
    /// (A plain function: a future boxed inside an `.await` expression still takes room
    /// in the caller's future.) `Ok(false)`: the session ends.
    fn boxed_request(&mut self, h: Header, msg: BytesMut) -> RequestFuture<'_> {
        Box::pin(self.request(h, msg))
    }

    async fn request(&mut self, h: Header, msg: BytesMut) -> Result<bool, SessionError> {
        let max = self.max_message();
        let kind = if h.op_code == OpCode::Query {
            ReplyKind::Legacy
        } else {
            ReplyKind::Msg
        };
        if self.refuse_plain {
            tracing::info!(pool = %self.pool.name, "client refused: tls_required and the client did not use TLS");
            let doc = crate::tls::plain_refused(&self.pool.name);
            self.reply(kind, h.request_id, &doc).await?;
            return Ok(false);
        }
        if self.slot.is_none() {
            let max_clients = self.pool.limits.max_clients;
            tracing::warn!(pool = %self.pool.name, max_clients, "client refused: max_clients reached");
            let doc = crate::limits::too_many_clients(&self.pool.name, max_clients);
            self.reply(kind, h.request_id, &doc).await?;
            return Ok(false);
        }
        self.reply_compressor = None;
        let (h, msg) = if h.op_code == OpCode::Compressed {
            let Some((c, inner)) = self.decompress_request(h, &msg, max).await? else {
                return Ok(false);
            };
            self.reply_compressor = Some(c);
            let h = Header::peek(&inner, max)?
                .ok_or(crate::codec::CodecError::Malformed("OP_COMPRESSED"))?;
            (h, inner)
        } else {
            (h, msg)
        };
        let plain_hello = !self.authenticated && plain_hello(h.op_code, &msg);
        if self.request_received(plain_hello) {
            // Out of time to log in, however many handshake messages keep coming.
            self.limit_reached();
            return Ok(false);
        }
        if maitred_pool::shutdown::started() && !self.allowed_while_draining(h.op_code, &msg) {
            self.refuse_while_draining(h, &msg).await?;
            return Ok(false);
        }
        match h.op_code {
            OpCode::Msg => self.on_msg(h, msg).await?,
            OpCode::Query => self.on_query(h, &msg).await?,
            other => return Err(crate::codec::CodecError::UnsupportedOpCode(other.as_i32()).into()),
        }
        Ok(true)
    }

    /// Whether the drain lets this request through: one of a transaction still running
    /// (this session's pin, or one another connection of the same driver pinned: same
    /// lsid), or a hello, which maitred answers itself. Drivers' monitoring connections
    /// keep their hellos answered, so a driver does not mark maitred unknown and clear its
    /// pool under a transaction that is about to commit; idle connections are closed when
    /// the process exits.
    fn allowed_while_draining(&self, op: OpCode, msg: &[u8]) -> bool {
        if self.pin.is_some() {
            return true;
        }
        if op == OpCode::Query {
            return parse_query(msg).is_ok_and(|q| {
                let name = q.query.iter().next().and_then(|e| e.ok()).map(|(k, _)| k);
                name.is_some_and(|n| hello::hello_kind(n).is_some())
            });
        }
        let Ok(m) = op_msg::parse(msg) else {
            return false;
        };
        if m.command_name()
            .is_some_and(|n| hello::hello_kind(n).is_some())
        {
            return true;
        }
        m.body
            .get_document("lsid")
            .is_ok_and(|lsid| self.pool.txns.contains(lsid.as_bytes()))
    }

    /// A request outside any transaction while maitred drains: error 91 (unless the
    /// client asked for no reply), then the connection is closed.
    async fn refuse_while_draining(&mut self, h: Header, msg: &[u8]) -> Result<(), SessionError> {
        let kind = if h.op_code == OpCode::Query {
            ReplyKind::Legacy
        } else {
            ReplyKind::Msg
        };
        let parsed = (h.op_code == OpCode::Msg)
            .then(|| op_msg::parse(msg).ok())
            .flatten();
        let silent = parsed.as_ref().is_some_and(|m| m.more_to_come());
        // Labelled for what the request is (a retryable write: RetryableWriteError).
        let retry = parsed.as_ref().map_or(crate::relay::RetryKind::Other, |m| {
            let name = m.command_name().unwrap_or_default();
            crate::relay::Route::of(name, m.body, m.flags).retry_kind()
        });
        tracing::debug!(pool = %self.pool.name, "drain: request refused, client closed");
        if !silent {
            let _ = self
                .reply(
                    kind,
                    h.request_id,
                    &crate::errors_to_client::draining(retry),
                )
                .await;
        }
        Ok(())
    }

    /// The next whole request, if it is in. One over `max` gets an error reply (to its
    /// requestID) before the session ends.
    async fn decode_request(
        &mut self,
        max: usize,
    ) -> Result<Option<(Header, BytesMut)>, SessionError> {
        match decode_frame(&mut self.crbuf, max) {
            Err(crate::codec::CodecError::TooLarge { len, max }) => {
                let id = crate::limits::request_id(&self.crbuf);
                self.refuse_too_large(id, len, max).await
            }
            r => Ok(r?),
        }
    }

    /// Answers a message over `max` with 10334 and ends the session.
    async fn refuse_too_large<T>(
        &mut self,
        request_id: i32,
        len: usize,
        max: usize,
    ) -> Result<T, SessionError> {
        let doc = if self.authenticated {
            tracing::info!(pool = %self.pool.name, len, max, "client message over max_message_size");
            crate::limits::message_too_large(&self.pool.name, len, max)
        } else {
            tracing::info!(pool = %self.pool.name, len, max, "client message over the limit before authentication");
            crate::limits::message_too_large_before_auth(&self.pool.name, len, max)
        };
        let _ = self.reply(ReplyKind::Msg, request_id, &doc).await;
        Err(crate::codec::CodecError::TooLarge { len, max }.into())
    }

    /// The message inside a client's OP_COMPRESSED, and its compressor. The compressor must
    /// be one negotiated in hello on this connection and the declared size within `max`,
    /// both checked before anything is decompressed; otherwise the client gets 17
    /// `ProtocolError` (`None`: the session ends) or 10334 (an error).
    async fn decompress_request(
        &mut self,
        h: Header,
        msg: &[u8],
        max: usize,
    ) -> Result<Option<(Compressor, BytesMut)>, SessionError> {
        match compressed::decompress_negotiated(msg, &self.compressors, max) {
            Ok(r) => Ok(Some(r)),
            Err(crate::codec::CodecError::NotNegotiated(id)) => {
                tracing::info!(pool = %self.pool.name, compressor = id, "client refused: OP_COMPRESSED with a compressor not negotiated in hello");
                let doc = crate::limits::compressor_not_negotiated(id, &self.compressors);
                let _ = self.reply(ReplyKind::Msg, h.request_id, &doc).await;
                Ok(None)
            }
            Err(crate::codec::CodecError::TooLarge { len, max }) => {
                self.refuse_too_large(h.request_id, len, max).await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes a reply maitred composed.
    pub(crate) async fn reply(
        &mut self,
        kind: ReplyKind,
        response_to: i32,
        doc: &RawDocument,
    ) -> Result<(), SessionError> {
        let mut out = BytesMut::with_capacity(doc.as_bytes().len() + 40);
        match kind {
            ReplyKind::Msg => {
                op_msg::encode(&mut out, next_request_id(), response_to, 0, doc.as_bytes())
            }
            ReplyKind::Legacy => {
                encode_reply(&mut out, next_request_id(), response_to, doc.as_bytes())
            }
        }
        self.write_client(&out).await
    }

    /// Writes a whole message to the client, compressed if the request came compressed.
    pub(crate) async fn write_client(&mut self, msg: &[u8]) -> Result<(), SessionError> {
        if let Some(c) = self.reply_compressor {
            let mut out = BytesMut::with_capacity(msg.len() / 2 + 32);
            compressed::compress(msg, c, &mut out)?;
            self.ticket.traffic().sent(out.len());
            return self
                .client
                .write_all(&out)
                .await
                .map_err(SessionError::ClientIo);
        }
        self.ticket.traffic().sent(msg.len());
        self.client
            .write_all(msg)
            .await
            .map_err(SessionError::ClientIo)
    }

    /// The server connections this client's requests run on.
    pub(crate) fn server_pool(&self) -> &maitred_pool::Pool<MongoManager> {
        self.pool.server_pool(self.user.as_deref())
    }
}

/// Whether a request is a hello or isMaster with no login in it (no
/// `speculativeAuthenticate`, no `saslSupportedMechs`): what drivers' monitoring
/// connections send (see `session/time_limits.rs`).
fn plain_hello(op: OpCode, msg: &[u8]) -> bool {
    let plain = |body: &RawDocument| {
        let name = body.iter().next().and_then(|e| e.ok()).map(|(k, _)| k);
        name.is_some_and(|n| hello::hello_kind(n).is_some())
            && !matches!(body.get("speculativeAuthenticate"), Ok(Some(_)))
            && !matches!(body.get("saslSupportedMechs"), Ok(Some(_)))
    };
    match op {
        OpCode::Msg => op_msg::parse(msg).is_ok_and(|m| plain(m.body)),
        OpCode::Query => parse_query(msg).is_ok_and(|q| {
            let body = q.query.get_document("$query").unwrap_or(q.query);
            q.is_command() && plain(body)
        }),
        _ => false,
    }
}
