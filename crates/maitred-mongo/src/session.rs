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

use crate::auth::scram::{client_first_user, unknown_user_keys, Mechanism, ScramServer};
use crate::backend::{next_request_id, ServerInfo};
use crate::codec::compressed::{self, Compressor};
use crate::codec::header::decode_frame;
use crate::codec::legacy::{encode_reply, parse_query};
use crate::codec::{op_msg, Header, OpCode};
use crate::error::SessionError;
use crate::errors_to_client::{auth_failed, checkout_error, code, error_doc, unauthorized};
use crate::hello;
use crate::manager::MongoManager;
use crate::pool::MongoPool;
use crate::tls::Stream;
use bson::{rawdoc, RawDocument, RawDocumentBuf};
use bytes::BytesMut;
use maitred_admin::{ClientIdentity, ClientTicket};
use maitred_pool::{ClientClock, ClientSlot, Lease};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod awaitable;
mod time_limits;

static NEXT_CONNECTION_ID: AtomicI64 = AtomicI64::new(1);

/// Commands answered (`{ok: 1}`, by maitred itself, never forwarded) before
/// authentication, besides the handshake and SASL ones: what current MongoDB servers
/// allow unauthenticated. `buildInfo` (the server's version and build) needs
/// authentication on MongoDB 7+, and `getnonce` is gone since 6.0, so both get 13
/// Unauthorized like every other command.
const ANSWERED_BEFORE_AUTH: &[&str] = &["ping", "endSessions"];

/// A SASL conversation in progress.
struct Conversation {
    server: ScramServer,
    known_user: bool,
    user: String,
}

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

    /// Serves the client to the end, then cleans up what it left on the server.
    pub async fn run(mut self) {
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
                let deadline = self.limit_deadline();
                // While pinned, also wake when the transaction ends through another
                // client connection, to release the server connection at once.
                let n = match self.pin.clone() {
                    Some(pin) => tokio::select! {
                        r = self.client.read_buf(&mut self.crbuf) => r,
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
                        r = self.client.read_buf(&mut self.crbuf) => r,
                        () = maitred_pool::sleep_until(deadline) => {
                            self.limit_reached();
                            return Ok(());
                        }
                    },
                }
                .map_err(SessionError::ClientIo)?;
                if n == 0 {
                    return Ok(());
                }
                self.ticket.traffic().received(n);
            };
            let kind = if h.op_code == OpCode::Query {
                ReplyKind::Legacy
            } else {
                ReplyKind::Msg
            };
            if self.refuse_plain {
                tracing::info!(pool = %self.pool.name, "client refused: tls_required and the client did not use TLS");
                let doc = crate::tls::plain_refused(&self.pool.name);
                self.reply(kind, h.request_id, &doc).await?;
                return Ok(());
            }
            if self.slot.is_none() {
                let max_clients = self.pool.limits.max_clients;
                tracing::warn!(pool = %self.pool.name, max_clients, "client refused: max_clients reached");
                let doc = crate::limits::too_many_clients(&self.pool.name, max_clients);
                self.reply(kind, h.request_id, &doc).await?;
                return Ok(());
            }
            self.reply_compressor = None;
            let (h, msg) = if h.op_code == OpCode::Compressed {
                let Some((c, inner)) = self.decompress_request(h, &msg, max).await? else {
                    return Ok(());
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
                return Ok(());
            }
            if maitred_pool::shutdown::started() && !self.allowed_while_draining(h.op_code, &msg) {
                return self.refuse_while_draining(h, &msg).await;
            }
            match h.op_code {
                OpCode::Msg => self.on_msg(h, msg).await?,
                OpCode::Query => self.on_query(h, &msg).await?,
                other => {
                    return Err(crate::codec::CodecError::UnsupportedOpCode(other.as_i32()).into())
                }
            }
            if self.crbuf.is_empty() && self.crbuf.capacity() > 64 * 1024 {
                self.crbuf = BytesMut::with_capacity(1024);
            }
        }
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
        let silent = h.op_code == OpCode::Msg && op_msg::parse(msg).is_ok_and(|m| m.more_to_come());
        tracing::debug!(pool = %self.pool.name, "drain: request refused, client closed");
        if !silent {
            let _ = self
                .reply(kind, h.request_id, &crate::errors_to_client::draining())
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

    async fn on_msg(&mut self, h: Header, msg: BytesMut) -> Result<(), SessionError> {
        let parsed = op_msg::parse(&msg)?;
        let name = parsed
            .command_name()
            .ok_or(crate::codec::CodecError::Malformed("OP_MSG: empty command"))?;
        let silent = parsed.more_to_come();
        let local = if let Some(legacy) = hello::hello_kind(name) {
            if let Some(wait) = hello::await_time(parsed.body).filter(|_| !silent) {
                let exhaust = parsed.flags & op_msg::EXHAUST_ALLOWED != 0;
                let body = parsed.body.to_raw_document_buf();
                return self.awaitable_hello(h, &body, legacy, wait, exhaust).await;
            }
            Some(self.hello(parsed.body, legacy).await)
        } else if name == "saslStart" {
            Some(self.sasl_start(parsed.body))
        } else if name == "saslContinue" {
            Some(self.sasl_continue(parsed.body))
        } else if name == "logout" {
            // Never forwarded: it would log the shared server connection out.
            let was_authenticated = self.authenticated;
            self.authenticated = !self.pool.requires_auth();
            self.user = None;
            if was_authenticated && !self.authenticated {
                // Logged out: a new login, in its own time (a client that never logged in
                // keeps its deadline, however many logouts it sends).
                self.login_deadline.restart(self.pool.limits.login_timeout);
            }
            Some(hello::ok())
        } else if name == "authenticate" {
            Some(error_doc(
                334,
                "MechanismUnavailable",
                "maitred: authenticate (MONGODB-CR, X.509) is not supported; use SCRAM-SHA-256 or SCRAM-SHA-1",
                &[],
            ))
        } else if !self.authenticated {
            // Nothing before authentication reaches a server connection.
            if ANSWERED_BEFORE_AUTH.contains(&name) {
                Some(hello::ok())
            } else {
                Some(unauthorized(name))
            }
        } else {
            None
        };
        match local {
            Some(doc) => {
                if !silent {
                    self.reply(ReplyKind::Msg, h.request_id, &doc).await?;
                }
                Ok(())
            }
            None => {
                let route = crate::relay::Route::of(name, parsed.body, parsed.flags);
                drop(parsed);
                self.forward(h, msg, route).await
            }
        }
    }

    async fn on_query(&mut self, h: Header, msg: &[u8]) -> Result<(), SessionError> {
        let q = parse_query(msg)?;
        let mut body = q.query;
        if let Ok(inner) = body.get_document("$query") {
            body = inner;
        }
        let name = body
            .iter()
            .next()
            .and_then(|e| e.ok())
            .map(|(k, _)| k)
            .unwrap_or_default();
        let doc = if !q.is_command() {
            error_doc(
                code::UNSUPPORTED_OP_QUERY,
                "UnsupportedOpQueryCommand",
                "maitred: legacy OP_QUERY reads are not supported; use OP_MSG",
                &[],
            )
        } else if let Some(legacy) = hello::hello_kind(name) {
            self.hello(body, legacy).await
        } else if name == "saslStart" {
            self.sasl_start(body)
        } else if name == "saslContinue" {
            self.sasl_continue(body)
        } else {
            error_doc(
                code::UNSUPPORTED_OP_QUERY,
                "UnsupportedOpQueryCommand",
                &format!(
                    "maitred: command {name} over legacy OP_QUERY is not supported; use OP_MSG"
                ),
                &[],
            )
        };
        self.reply(ReplyKind::Legacy, h.request_id, &doc).await
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

    /// The server's hello facts; opens a server connection to learn them the first time
    /// (once in the pool's life, whoever asks: drivers' monitoring connections never
    /// authenticate, and their hellos need these facts). The connection is not used for the
    /// client's request and stays in the pool.
    async fn server_info(&self) -> Result<ServerInfo, RawDocumentBuf> {
        if let Some(info) = self.pool.pool.manager().server_info() {
            return Ok(info);
        }
        match self.pool.pool.checkout().await {
            Ok(_lease) => self.pool.pool.manager().server_info().ok_or_else(hello::ok),
            Err(e) => Err(checkout_error(&e)),
        }
    }

    async fn hello(&mut self, body: &RawDocument, legacy: bool) -> RawDocumentBuf {
        let info = match self.server_info().await {
            Ok(info) => info,
            Err(err) => return err,
        };
        let mut d = hello::hello_reply(body, legacy, &info, self.connection_id);
        if let Ok(mechs) = body.get_str("saslSupportedMechs") {
            let user = mechs.split_once('.').map(|(_, u)| u).unwrap_or(mechs);
            if self.pool.user(user).is_some() {
                d.append("saslSupportedMechs", hello::mechanisms());
            }
        }
        if let Ok(list) = body.get_array("compression") {
            self.compressors = list
                .into_iter()
                .filter_map(|v| v.ok().and_then(|v| v.as_str()))
                .filter_map(Compressor::from_name)
                .collect();
            if !self.compressors.is_empty() {
                let mut a = bson::RawArrayBuf::new();
                for c in &self.compressors {
                    a.push(c.name());
                }
                d.append("compression", a);
            }
        }
        if let Ok(spec) = body.get_document("speculativeAuthenticate") {
            let first = self.sasl_start(spec);
            tracing::debug!(
                ok = crate::backend::is_ok(&first),
                "speculative authentication in hello"
            );
            if crate::backend::is_ok(&first) {
                let mut s = RawDocumentBuf::new();
                for (k, v) in first.iter().filter_map(|e| e.ok()) {
                    if k != "ok" {
                        s.append(k, v.to_raw_bson());
                    }
                }
                d.append("speculativeAuthenticate", s);
            }
        }
        hello::finish(d)
    }

    fn sasl_start(&mut self, body: &RawDocument) -> RawDocumentBuf {
        if !self.pool.requires_auth() {
            return error_doc(
                code::AUTHENTICATION_FAILED,
                "AuthenticationFailed",
                "maitred: this pool takes no client authentication; connect without credentials",
                &[],
            );
        }
        let mech = body.get_str("mechanism").unwrap_or_default();
        let Some(mechanism) = Mechanism::from_name(mech) else {
            return error_doc(
                334,
                "MechanismUnavailable",
                &format!("Received authentication for mechanism {mech} which is unknown or not enabled; maitred supports SCRAM-SHA-256 and SCRAM-SHA-1"),
                &[],
            );
        };
        let Some(payload) = sasl_payload(body) else {
            return auth_failed();
        };
        let user = match client_first_user(&payload) {
            Ok(u) => u,
            Err(_) => return auth_failed(),
        };
        let known = self
            .pool
            .user(&user)
            .map(|k| k.for_mechanism(mechanism).clone());
        let keys = known
            .clone()
            .unwrap_or_else(|| unknown_user_keys(mechanism, &user));
        match ScramServer::start(keys, &payload) {
            Ok((server, first)) => {
                self.conversation = Some(Conversation {
                    server,
                    known_user: known.is_some(),
                    user,
                });
                rawdoc! {
                    "conversationId": 1,
                    "done": false,
                    "payload": binary(first.into_bytes()),
                    "ok": 1.0,
                }
            }
            Err(_) => self.failed_login(),
        }
    }

    fn sasl_continue(&mut self, body: &RawDocument) -> RawDocumentBuf {
        let Some(conv) = self.conversation.take() else {
            if self.authenticated && self.pool.requires_auth() {
                // An empty last step after a finished exchange.
                return rawdoc! { "conversationId": 1, "done": true, "payload": binary(Vec::new()), "ok": 1.0 };
            }
            return self.failed_login();
        };
        let payload = sasl_payload(body).unwrap_or_default();
        match conv.server.finish(&payload) {
            Ok(fin) if conv.known_user => {
                self.authenticated = true;
                self.login_deadline.authenticated();
                self.user = Some(conv.user);
                rawdoc! {
                    "conversationId": 1,
                    "done": true,
                    "payload": binary(fin.into_bytes()),
                    "ok": 1.0,
                }
            }
            _ => self.failed_login(),
        }
    }

    /// The server connections this client's requests run on.
    pub(crate) fn server_pool(&self) -> &maitred_pool::Pool<MongoManager> {
        self.pool.server_pool(self.user.as_deref())
    }

    fn failed_login(&mut self) -> RawDocumentBuf {
        self.pool
            .counters
            .login_failures
            .fetch_add(1, Ordering::Relaxed);
        tracing::info!(pool = %self.pool.name, "client authentication failed");
        auth_failed()
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

fn sasl_payload(body: &RawDocument) -> Option<Vec<u8>> {
    match body.get("payload") {
        Ok(Some(bson::RawBsonRef::Binary(b))) => Some(b.bytes.to_vec()),
        Ok(Some(bson::RawBsonRef::String(s))) => Some(s.as_bytes().to_vec()),
        _ => None,
    }
}

pub(crate) fn binary(bytes: Vec<u8>) -> bson::RawBson {
    bson::RawBson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes,
    })
}
