//! The session's event loop. Idle, the session waits in a small future for the client's
//! socket to become readable, a notification, the daemon's drain or a time limit, holding
//! no buffer; busy, it runs an activation (boxed: its future is large, and exists only
//! while the client is busy) that selects over the client's and the leased server
//! connection's sockets and hands each event to the side that deals with it.

use super::{own_notifications, Flow, Relay, MIN_READ, READ_SIZE};
use crate::backend::ServerConn;
use crate::codec::server_msgs::{self as out, ErrorFields, Severity};
use crate::error::SessionError;
use crate::errors_to_client::sqlstate;
use bytes::Bytes;
use maitred_admin::ClientState;
use maitred_frontend::buffers;
use maitred_frontend::LinkError;
use tokio::io::AsyncReadExt;

enum Event {
    Client(std::io::Result<usize>),
    Server(std::io::Result<usize>),
    /// A client time limit ran out (see `time_limits`).
    Limit,
}

/// What an idle session wakes up to do.
enum Busy {
    /// The client sent something (read into the session's buffer).
    Activation,
    Limit,
    Shutdown,
    Notification(Bytes),
}

type BusyFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Flow, SessionError>> + Send + 'a>>;

/// What ended an idle wait.
enum Wake {
    /// The client sent something (or closed).
    Client(std::io::Result<()>),
    Notification(Bytes),
    /// The daemon drains: say goodbye while no server connection is held.
    Shutdown,
    /// A client time limit ran out.
    Limit,
}

impl Relay {
    /// The session: idle waits, each in a small future that holds no buffer (an idle
    /// client costs its socket and its session state, nothing else), and activations, each
    /// in a future of its own on the heap while the client is busy (`activation`).
    pub(super) async fn run_loop(&mut self) -> Result<(), SessionError> {
        // What the client sent behind its login comes first.
        let first = self.boxed(Busy::Activation);
        if first.await? == Flow::ClientDone {
            return Ok(());
        }
        // One drain subscription for the whole session, not one per wait: a new one joins
        // (and leaves) the process-wide waiter list, under its lock, on every transaction.
        // Polled only while idle, and never again once it fired (the session ends).
        let shutdown = crate::shutdown::wait();
        tokio::pin!(shutdown);
        loop {
            self.ticket.set_state(ClientState::Idle);
            self.park_buffers();
            let deadline = self.limit_deadline();
            let wake = match self.notifications.as_mut() {
                // Notifications are delivered between transactions, as PostgreSQL does.
                Some((_, rx)) => tokio::select! {
                    r = self.client.readable() => Wake::Client(r),
                    Some(n) = rx.recv() => Wake::Notification(n),
                    () = &mut shutdown => Wake::Shutdown,
                    () = maitred_pool::sleep_until(deadline) => Wake::Limit,
                },
                None => tokio::select! {
                    r = self.client.readable() => Wake::Client(r),
                    () = &mut shutdown => Wake::Shutdown,
                    () = maitred_pool::sleep_until(deadline) => Wake::Limit,
                },
            };
            let busy = match wake {
                Wake::Client(Ok(())) => {
                    // Read before anything is allocated for the work: a wake-up may find
                    // nothing (the readiness left from the last read, a partial TLS record).
                    buffers::ensure(&mut self.crbuf);
                    match self.client.read_now(&mut self.crbuf) {
                        None => continue,
                        Some(Ok(0)) => return Ok(()),
                        Some(Ok(n)) => {
                            self.clock.client_active();
                            self.ticket.traffic().received(n);
                            Busy::Activation
                        }
                        Some(Err(e)) => return Err(SessionError::ClientIo(e)),
                    }
                }
                Wake::Client(Err(e)) => return Err(SessionError::ClientIo(e)),
                Wake::Limit => Busy::Limit,
                Wake::Shutdown => Busy::Shutdown,
                Wake::Notification(n) => Busy::Notification(n),
            };
            let work = self.boxed(busy);
            if work.await? == Flow::ClientDone {
                return Ok(());
            }
        }
    }

    /// The work of a wake-up, in a future on the heap: freed once the client is idle again,
    /// so an idle session's future stays small. (A plain function: a future boxed inside an
    /// `.await` expression still takes room in the caller's future.)
    fn boxed(&mut self, busy: Busy) -> BusyFuture<'_> {
        Box::pin(async move {
            match busy {
                Busy::Activation => self.activation().await,
                Busy::Limit => Ok(self.limit_reached().await),
                Busy::Shutdown => {
                    self.say_shutting_down().await;
                    Ok(Flow::ClientDone)
                }
                Busy::Notification(n) => self.deliver_notification(n).await,
            }
        })
    }

    /// The client is busy: from what it sent until it holds no server connection and
    /// nothing is pending.
    async fn activation(&mut self) -> Result<Flow, SessionError> {
        self.lend_buffers();
        if self.handle_client_bytes().await? == Flow::ClientDone {
            return Ok(Flow::ClientDone);
        }
        loop {
            if std::mem::take(&mut self.server_bytes_pending) && self.lease.is_some() {
                if self.handle_server_bytes().await? == Flow::ClientDone {
                    return Ok(Flow::ClientDone);
                }
                continue;
            }
            if std::mem::take(&mut self.client_bytes_pending) {
                if self.handle_client_bytes().await? == Flow::ClientDone {
                    return Ok(Flow::ClientDone);
                }
                continue;
            }
            if self.lease.is_none() {
                // Idle again.
                return Ok(Flow::Continue);
            }
            self.ticket.set_state(ClientState::Active);
            // Reading into a buffer whose front was consumed shrinks its spare room; reserve
            // reclaims the front of an emptied buffer, so reads stay large without reallocating.
            if self.crbuf.capacity() - self.crbuf.len() < MIN_READ {
                self.crbuf.reserve(READ_SIZE);
            }
            let deadline = self.limit_deadline();
            let Some(lease) = self.lease.as_mut() else {
                return Ok(Flow::Continue);
            };
            let server: &mut ServerConn = lease;
            if server.rbuf.capacity() - server.rbuf.len() < MIN_READ {
                server.rbuf.reserve(READ_SIZE);
            }
            let event = tokio::select! {
                biased;
                r = server.stream.read_buf(&mut server.rbuf) => Event::Server(r),
                r = self.client.read_buf(&mut self.crbuf) => Event::Client(r),
                () = maitred_pool::sleep_until(deadline) => Event::Limit,
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
            };
            if flow == Flow::ClientDone {
                return Ok(Flow::ClientDone);
            }
        }
    }

    async fn say_shutting_down(&mut self) {
        self.lend_buffers();
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
    }

    /// A notification for the client, between its transactions (its own get back the pid
    /// it was told: `own_notifications`).
    async fn deliver_notification(&mut self, n: Bytes) -> Result<Flow, SessionError> {
        self.lend_buffers();
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
        Ok(match &self.notifications {
            Some((_, rx)) if rx.ended() => Flow::ClientDone,
            _ => Flow::Continue,
        })
    }

    /// Going idle: the session's empty buffers go back to the worker's spares
    /// (`maitred_frontend::buffers`); one holding part of a message stays.
    fn park_buffers(&mut self) {
        buffers::park_all([&mut self.crbuf, &mut self.cwbuf, &mut self.swbuf]);
    }

    /// Going busy: buffers from the worker's spares.
    fn lend_buffers(&mut self) {
        buffers::lend_all([&mut self.crbuf, &mut self.cwbuf, &mut self.swbuf]);
    }
}
