//! The relay between one logged-in client and the server connections it leases.
//!
//! Scan, do not parse: client messages are framed by their headers and forwarded whole;
//! server messages are forwarded in bulk, and only ReadyForQuery ('Z'), ParameterStatus ('S')
//! and ErrorResponse ('E') are looked at. A lease ends (transaction mode) when every Query and
//! Sync sent has its ReadyForQuery back, no extended-protocol batch is open and the
//! transaction status is idle.
//!
//! Spec: <https://www.postgresql.org/docs/15/protocol-flow.html>.

use crate::backend::{ServerConn, MAX_SERVER_MESSAGE};
use crate::cancel::CancelHandle;
use crate::codec::client_msgs::{self, tag};
use crate::codec::frame;
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::error::{BackendError, SessionError};
use crate::errors_to_client::{checkout_error, sqlstate};
use crate::manager::PgManager;
use crate::pool::{PgPool, PinReason, PoolMode};
use crate::settings::sync_settings;
use bytes::{Buf, BytesMut};
use maitred_pool::{CheckoutError, Lease};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest message accepted from a client (PostgreSQL's own limit is 1 GB).
pub const MAX_CLIENT_MESSAGE: usize = 256 << 20;
/// At most this much is reserved ahead for a message still arriving.
const RESERVE_STEP: usize = 1 << 20;

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    ClientDone,
}

enum Event {
    Client(std::io::Result<usize>),
    Server(std::io::Result<usize>),
}

/// One client's session after login.
pub struct Relay {
    client: TcpStream,
    /// Bytes read from the client and not yet handled.
    crbuf: BytesMut,
    /// Bytes for the client, written once per batch.
    cwbuf: BytesMut,
    /// Bytes for the server, written once per batch.
    swbuf: BytesMut,
    pool: Arc<PgPool>,
    /// The session settings the client asked for at startup, applied to each lease.
    settings: Vec<(String, String)>,
    cancel: Arc<CancelHandle>,
    lease: Option<Lease<PgManager>>,
    /// maitred answered an extended-protocol message with an error itself: drop client
    /// messages until Sync, as the server would.
    skip_until_sync: bool,
    pinned: Option<PinReason>,
    /// ReadyForQuery messages of maitred's own queries (settings) still to swallow.
    swallow_ready: u32,
    /// Whether the message being forwarded in part belongs to maitred's own query.
    partial_swallow: bool,
}

impl Relay {
    pub fn new(
        client: TcpStream,
        crbuf: BytesMut,
        pool: Arc<PgPool>,
        settings: Vec<(String, String)>,
        cancel: Arc<CancelHandle>,
    ) -> Relay {
        Relay {
            client,
            crbuf,
            cwbuf: BytesMut::new(),
            swbuf: BytesMut::new(),
            pool,
            settings,
            cancel,
            lease: None,
            skip_until_sync: false,
            pinned: None,
            swallow_ready: 0,
            partial_swallow: false,
        }
    }

    /// Runs the session until the client leaves; the lease it holds, if any, is released,
    /// reset or closed on the way out.
    pub async fn run(mut self) -> Result<(), SessionError> {
        let result = self.run_loop().await;
        self.finish();
        result
    }

    async fn run_loop(&mut self) -> Result<(), SessionError> {
        if self.handle_client_bytes().await? == Flow::ClientDone {
            return Ok(());
        }
        loop {
            let event = match self.lease.as_mut() {
                Some(lease) => {
                    let server: &mut ServerConn = lease;
                    tokio::select! {
                        biased;
                        r = server.stream.read_buf(&mut server.rbuf) => Event::Server(r),
                        r = self.client.read_buf(&mut self.crbuf) => Event::Client(r),
                    }
                }
                None => Event::Client(self.client.read_buf(&mut self.crbuf).await),
            };
            let flow = match event {
                Event::Client(Ok(0)) => Flow::ClientDone,
                Event::Client(Ok(_)) => self.handle_client_bytes().await?,
                Event::Client(Err(e)) => return Err(SessionError::ClientIo(e)),
                Event::Server(Ok(0)) => self.server_lost(BackendError::Closed).await?,
                Event::Server(Ok(_)) => self.handle_server_bytes().await?,
                Event::Server(Err(e)) => self.server_lost(BackendError::Io(e)).await?,
            };
            if flow == Flow::ClientDone {
                return Ok(());
            }
        }
    }

    /// Frames and forwards every whole client message in the buffer; leases a server
    /// connection first when none is held.
    async fn handle_client_bytes(&mut self) -> Result<Flow, SessionError> {
        while let Some((t, len)) = frame::peek_header(&self.crbuf, MAX_CLIENT_MESSAGE)? {
            if self.crbuf.len() < len {
                self.crbuf
                    .reserve((len - self.crbuf.len()).min(RESERVE_STEP));
                break;
            }
            if t == tag::TERMINATE {
                self.crbuf.advance(len);
                self.flush_server().await?;
                return Ok(Flow::ClientDone);
            }
            if self.skip_until_sync {
                self.crbuf.advance(len);
                if t == tag::SYNC {
                    self.skip_until_sync = false;
                    out::ready_for_query(&mut self.cwbuf, b'I');
                }
                continue;
            }
            if self.lease.is_none() {
                if let Err(e) = self.acquire().await {
                    self.refuse_message(t, len, &e);
                    continue;
                }
            }
            self.track_client_message(t, len)?;
            self.swbuf.extend_from_slice(&self.crbuf[..len]);
            self.crbuf.advance(len);
        }
        self.flush_server().await?;
        self.flush_client().await?;
        Ok(Flow::Continue)
    }

    /// Answers a client message maitred could not get a server connection for.
    fn refuse_message(&mut self, t: u8, len: usize, e: &CheckoutError<BackendError>) {
        tracing::info!(pool = %self.pool.name, error = %e, "checkout failed");
        checkout_error(&mut self.cwbuf, e, Severity::Error);
        self.crbuf.advance(len);
        match t {
            tag::QUERY | tag::SYNC | tag::FUNCTION_CALL => {
                out::ready_for_query(&mut self.cwbuf, b'I')
            }
            _ => self.skip_until_sync = true,
        }
    }

    /// Updates what the lease's server connection owes the client for this message.
    fn track_client_message(&mut self, t: u8, len: usize) -> Result<(), SessionError> {
        let Some(server) = self.lease.as_deref_mut() else {
            return Ok(());
        };
        match t {
            tag::QUERY | tag::FUNCTION_CALL => server.pending_sync += 1,
            tag::SYNC => {
                server.pending_sync += 1;
                server.extended_open = false;
            }
            tag::PARSE => {
                server.extended_open = true;
                let named = !client_msgs::parse_statement_name(&self.crbuf[..len])?.is_empty();
                if named && self.pool.mode == PoolMode::Transaction && self.pinned.is_none() {
                    // Statement names are per server connection: until the shared statement
                    // cache exists, a client that names statements keeps its connection.
                    self.pinned = Some(PinReason::NamedStatement);
                    self.pool.counters.count_pin(PinReason::NamedStatement);
                    tracing::debug!(pool = %self.pool.name, reason = PinReason::NamedStatement.as_str(), "client pinned to its server connection");
                }
            }
            tag::BIND | tag::DESCRIBE | tag::EXECUTE | tag::CLOSE | tag::FLUSH => {
                server.extended_open = true;
            }
            _ => {}
        }
        Ok(())
    }

    async fn acquire(&mut self) -> Result<(), CheckoutError<BackendError>> {
        let mut lease = self.pool.pool.checkout().await?;
        self.cancel.set_server(lease.process_id, lease.secret_key);
        if sync_settings(&mut lease, &self.settings, &mut self.swbuf) {
            self.swallow_ready += 1;
        }
        self.lease = Some(lease);
        Ok(())
    }

    /// Forwards server bytes to the client, watching ReadyForQuery to know when the
    /// transaction is over.
    async fn handle_server_bytes(&mut self) -> Result<Flow, SessionError> {
        let Some(server) = self.lease.as_deref_mut() else {
            return Ok(Flow::Continue);
        };
        loop {
            if server.unread_body > 0 {
                let n = server.unread_body.min(server.rbuf.len());
                if n == 0 {
                    break;
                }
                if !self.partial_swallow {
                    self.cwbuf.extend_from_slice(&server.rbuf[..n]);
                }
                server.rbuf.advance(n);
                server.unread_body -= n;
                continue;
            }
            let Some((t, len)) = frame::peek_header(&server.rbuf, MAX_SERVER_MESSAGE)
                .map_err(BackendError::Protocol)?
            else {
                break;
            };
            let swallow = self.swallow_ready > 0;
            match t {
                b'Z' | b'S' | b'E' => {
                    if server.rbuf.len() < len {
                        break;
                    }
                    let msg = &server.rbuf[..len];
                    match t {
                        b'Z' => {
                            server.tx_status = msg.get(frame::HEADER_LEN).copied().unwrap_or(b'I');
                            server.pending_sync = server.pending_sync.saturating_sub(1);
                            if swallow {
                                self.swallow_ready -= 1;
                            }
                        }
                        b'S' => record_parameter(&mut server.params, msg),
                        _ if swallow => {
                            tracing::warn!(pool = %self.pool.name, "a client's startup setting was refused by the server");
                            server.needs_discard = true;
                        }
                        _ => {}
                    }
                    if !swallow {
                        self.cwbuf.extend_from_slice(msg);
                    }
                    server.rbuf.advance(len);
                }
                _ => {
                    let n = len.min(server.rbuf.len());
                    if !swallow {
                        self.cwbuf.extend_from_slice(&server.rbuf[..n]);
                    }
                    server.rbuf.advance(n);
                    server.unread_body = len - n;
                    self.partial_swallow = swallow;
                }
            }
        }
        self.flush_client().await?;
        self.release_if_done();
        Ok(Flow::Continue)
    }

    /// In transaction mode, gives the server connection back once the transaction is over.
    fn release_if_done(&mut self) {
        if self.pool.mode != PoolMode::Transaction
            || self.pinned.is_some()
            || self.swallow_ready > 0
        {
            return;
        }
        let done = self.lease.as_deref().is_some_and(|s| {
            s.pending_sync == 0
                && !s.extended_open
                && s.tx_status == b'I'
                && s.unread_body == 0
                && s.rbuf.is_empty()
        });
        if done {
            if let Some(mut lease) = self.lease.take() {
                if lease.needs_discard {
                    lease.mark_dirty();
                }
                self.cancel.clear_server();
                self.pool
                    .counters
                    .transactions
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The server connection failed. If the client had nothing in flight it goes on with
    /// a new server connection next time; otherwise it is told and disconnected.
    async fn server_lost(&mut self, e: BackendError) -> Result<Flow, SessionError> {
        let Some(lease) = self.lease.take() else {
            return Ok(Flow::Continue);
        };
        self.cancel.clear_server();
        let idle = lease.pending_sync == 0 && !lease.extended_open && lease.tx_status == b'I';
        lease.discard();
        tracing::warn!(pool = %self.pool.name, error = %e, "server connection lost");
        if idle && self.pinned.is_none() && self.pool.mode == PoolMode::Transaction {
            return Ok(Flow::Continue);
        }
        let message = format!(
            "maitred: the server connection of pool \"{}\" was lost: {e}",
            self.pool.name
        );
        out::error_response(
            &mut self.cwbuf,
            &ErrorFields {
                severity: Severity::Fatal,
                code: sqlstate::CONNECTION_FAILURE,
                message: &message,
                detail: None,
                hint: Some(
                    "The transaction in progress, if any, was not committed by maitred; retry it.",
                ),
            },
        );
        let _ = self.flush_client().await;
        Err(e.into())
    }

    /// The client is gone: whatever it left on its server connection is cleaned up before
    /// anyone else gets that connection.
    fn finish(&mut self) {
        self.cancel.clear_server();
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        if self.pool.mode == PoolMode::Session || self.pinned.is_some() {
            lease.needs_discard = true;
        }
        if !lease.is_clean() || self.swallow_ready > 0 {
            lease.mark_dirty();
        }
    }

    async fn flush_server(&mut self) -> Result<(), SessionError> {
        if self.swbuf.is_empty() {
            return Ok(());
        }
        let Some(server) = self.lease.as_deref_mut() else {
            self.swbuf.clear();
            return Ok(());
        };
        let r = server.stream.write_all(&self.swbuf).await;
        self.swbuf.clear();
        if let Err(e) = r {
            self.server_lost(BackendError::Io(e)).await?;
        }
        Ok(())
    }

    async fn flush_client(&mut self) -> Result<(), SessionError> {
        if self.cwbuf.is_empty() {
            return Ok(());
        }
        let r = self.client.write_all(&self.cwbuf).await;
        self.cwbuf.clear();
        r.map_err(SessionError::ClientIo)
    }
}

/// Records a ParameterStatus the server sent on the connection's settings.
fn record_parameter(params: &mut std::collections::HashMap<String, String>, msg: &[u8]) {
    let body = frame::body(msg);
    let mut parts = body.split(|b| *b == 0);
    if let (Some(k), Some(v)) = (parts.next(), parts.next()) {
        if let (Ok(k), Ok(v)) = (std::str::from_utf8(k), std::str::from_utf8(v)) {
            params.insert(k.to_owned(), v.to_owned());
        }
    }
}
