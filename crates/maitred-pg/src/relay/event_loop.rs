//! The session's event loop: one `select!` over the client's socket, the leased server
//! connection's socket, notifications, the daemon's drain and the client's time limits,
//! each event handed to the side that deals with it.

use super::{own_notifications, Flow, Relay, IDLE_BUFFER_MAX, MIN_READ, READ_SIZE};
use crate::backend::ServerConn;
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::error::SessionError;
use crate::errors_to_client::sqlstate;
use bytes::{Bytes, BytesMut};
use maitred_admin::ClientState;
use maitred_frontend::LinkError;
use tokio::io::AsyncReadExt;

enum Event {
    Client(std::io::Result<usize>),
    Server(std::io::Result<usize>),
    Notification(Bytes),
    /// The daemon drains: say goodbye while no server connection is held.
    Shutdown,
    /// A client time limit ran out (see `time_limits`).
    Limit,
}

impl Relay {
    pub(super) async fn run_loop(&mut self) -> Result<(), SessionError> {
        if self.handle_client_bytes().await? == Flow::ClientDone {
            return Ok(());
        }
        // One drain subscription for the whole session, not one per wait: a new one joins
        // (and leaves) the process-wide waiter list, under its lock, on every transaction.
        // Polled only while idle, and never again once it fired (the session ends).
        let shutdown = crate::shutdown::wait();
        tokio::pin!(shutdown);
        loop {
            if std::mem::take(&mut self.server_bytes_pending) && self.lease.is_some() {
                if self.handle_server_bytes().await? == Flow::ClientDone {
                    return Ok(());
                }
                continue;
            }
            if std::mem::take(&mut self.client_bytes_pending) {
                if self.handle_client_bytes().await? == Flow::ClientDone {
                    return Ok(());
                }
                continue;
            }
            if self.lease.is_none() {
                self.ticket.set_state(ClientState::Idle);
                self.shrink_idle_buffers();
            } else {
                self.ticket.set_state(ClientState::Active);
            }
            // Reading into a buffer whose front was consumed shrinks its spare room; reserve
            // reclaims the front of an emptied buffer, so reads stay large without reallocating.
            if self.crbuf.capacity() - self.crbuf.len() < MIN_READ {
                self.crbuf.reserve(READ_SIZE);
            }
            let deadline = self.limit_deadline();
            let event = match self.lease.as_mut() {
                Some(lease) => {
                    let server: &mut ServerConn = lease;
                    if server.rbuf.capacity() - server.rbuf.len() < MIN_READ {
                        server.rbuf.reserve(READ_SIZE);
                    }
                    tokio::select! {
                        biased;
                        r = server.stream.read_buf(&mut server.rbuf) => Event::Server(r),
                        r = self.client.read_buf(&mut self.crbuf) => Event::Client(r),
                        () = maitred_pool::sleep_until(deadline) => Event::Limit,
                    }
                }
                None => match self.notifications.as_mut() {
                    // Notifications are delivered between transactions, as PostgreSQL does.
                    Some((_, rx)) => tokio::select! {
                        r = self.client.read_buf(&mut self.crbuf) => Event::Client(r),
                        Some(n) = rx.recv() => Event::Notification(n),
                        () = &mut shutdown => Event::Shutdown,
                        () = maitred_pool::sleep_until(deadline) => Event::Limit,
                    },
                    None => tokio::select! {
                        r = self.client.read_buf(&mut self.crbuf) => Event::Client(r),
                        () = &mut shutdown => Event::Shutdown,
                        () = maitred_pool::sleep_until(deadline) => Event::Limit,
                    },
                },
            };
            if matches!(event, Event::Client(Ok(_))) {
                self.clock.client_active();
            }
            let flow = match event {
                Event::Limit => self.limit_reached().await,
                Event::Client(Ok(0)) => Flow::ClientDone,
                Event::Client(Ok(n)) => {
                    self.ticket.traffic().received(n);
                    self.handle_client_bytes().await?
                }
                Event::Client(Err(e)) => return Err(SessionError::ClientIo(e)),
                Event::Server(Ok(0)) => self.server_lost(LinkError::Closed.into()).await?,
                Event::Server(Ok(_)) => self.handle_server_bytes().await?,
                Event::Server(Err(e)) => self.server_lost(e.into()).await?,
                Event::Shutdown => {
                    out::error_response(
                        &mut self.cwbuf,
                        &ErrorFields {
                            severity: Severity::Fatal,
                            code: sqlstate::ADMIN_SHUTDOWN,
                            message: "terminating connection: maitred is shutting down",
                            detail: None,
                            hint: Some("Reconnect; another maitred instance, or this one once restarted, will serve you."),
                        },
                    );
                    let _ = self.flush_client().await;
                    Flow::ClientDone
                }
                Event::Notification(n) => {
                    let start = self.cwbuf.len();
                    self.cwbuf.extend_from_slice(&n);
                    if let Some((pid, channel, payload)) = own_notifications::parse(&n) {
                        let now = std::time::Instant::now();
                        if self.own_notifications.claim(pid, channel, payload, now) {
                            let told = self.cancel.process_id;
                            own_notifications::set_pid(&mut self.cwbuf[start..], told);
                        }
                    }
                    self.flush_client().await?;
                    // Fell behind (notify.rs): what was just written is its FATAL.
                    match &self.notifications {
                        Some((_, rx)) if rx.ended() => Flow::ClientDone,
                        _ => Flow::Continue,
                    }
                }
            };
            if flow == Flow::ClientDone {
                return Ok(());
            }
        }
    }

    /// Between transactions a client keeps only small buffers: one that grew for a large
    /// message or result is given back, so idle clients cost little memory. (Freeing every
    /// buffer on every idle wait costs throughput: measured, see docs/benchmarks.md.)
    pub(super) fn shrink_idle_buffers(&mut self) {
        for buf in [&mut self.crbuf, &mut self.cwbuf, &mut self.swbuf] {
            if buf.is_empty() && buf.capacity() > IDLE_BUFFER_MAX {
                *buf = BytesMut::new();
            }
        }
    }
}
