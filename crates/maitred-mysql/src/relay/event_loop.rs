//! The session's event loop. Without a server connection the session waits in a small
//! future for the client's socket to become readable, the drain, a time limit or a KILL,
//! holding no buffer (an idle client costs its socket and its session state); the work
//! of each wake-up runs in a boxed activation, which exists only while the client is busy.

use super::{Flow, Relay};
use crate::error::SessionError;
use crate::errors_to_client::code;
use maitred_admin::ClientState;
use maitred_frontend::buffers;
use maitred_frontend::LinkError;
use std::future::Future;
use std::pin::Pin;
use tokio::io::AsyncReadExt;

/// What an idle session wakes up to do.
enum Busy {
    /// The client sent something (read into the session's buffer), or, first, what it
    /// sent behind its login.
    Activation,
    Limit,
    Killed,
}

type BusyFuture<'a> = Pin<Box<dyn Future<Output = Result<Flow, SessionError>> + Send + 'a>>;

/// What ended an idle wait.
enum Wake {
    Client(std::io::Result<()>),
    Limit,
    Killed,
    Shutdown,
}

impl Relay {
    pub(super) async fn run_loop(&mut self) -> Result<(), SessionError> {
        let first = self.boxed(Busy::Activation);
        if first.await? == Flow::ClientDone {
            return Ok(());
        }
        // One drain subscription for the session, not one per wait (each would join and
        // leave the process-wide waiter list); never polled again once it fired.
        let shutdown = maitred_pool::shutdown::wait();
        tokio::pin!(shutdown);
        loop {
            self.s.ticket.set_state(ClientState::Idle);
            self.park_buffers();
            let deadline = self.limit_deadline();
            let handle = self.s.handle.clone();
            let wake = tokio::select! {
                () = &mut shutdown => Wake::Shutdown,
                () = maitred_pool::sleep_until(deadline) => Wake::Limit,
                r = self.client.readable() => Wake::Client(r),
                () = handle.killed() => Wake::Killed,
            };
            let busy = match wake {
                // MySQL clients expect no unsolicited packet: an idle one is simply
                // closed, as a server that shuts down does (drivers reconnect).
                Wake::Shutdown => {
                    tracing::debug!(pool = %self.s.pool.name, "drain: idle client closed");
                    return Ok(());
                }
                Wake::Limit => Busy::Limit,
                Wake::Killed => Busy::Killed,
                Wake::Client(Err(e)) => return Err(SessionError::ClientIo(e)),
                Wake::Client(Ok(())) => {
                    // Read before anything is allocated for the work: a wake-up may find
                    // nothing (the readiness left from the last read, a partial TLS record).
                    buffers::ensure(&mut self.crbuf);
                    match self.client.read_now(&mut self.crbuf) {
                        None => continue,
                        Some(Ok(0)) => return Ok(()),
                        Some(Ok(n)) => {
                            self.s.ticket.traffic().received(n);
                            self.clock.client_active();
                            Busy::Activation
                        }
                        Some(Err(e)) => return Err(SessionError::ClientIo(e)),
                    }
                }
            };
            let work = self.boxed(busy);
            if work.await? == Flow::ClientDone {
                return Ok(());
            }
        }
    }

    /// The work of a wake-up, in a future on the heap. (A plain function: a future boxed
    /// inside an `.await` expression still takes room in the caller's future.)
    fn boxed(&mut self, busy: Busy) -> BusyFuture<'_> {
        Box::pin(async move {
            match busy {
                Busy::Activation => self.activation().await,
                Busy::Limit => Ok(self.limit_reached().await),
                Busy::Killed => {
                    self.lend_buffers();
                    self.err_locally(code::CONNECTION_KILLED, "70100", "Connection was killed");
                    let _ = self.flush_client().await;
                    Ok(Flow::ClientDone)
                }
            }
        })
    }

    /// The client is busy: from the commands it sent until it holds no server connection
    /// and no whole command is left to handle.
    async fn activation(&mut self) -> Result<Flow, SessionError> {
        self.lend_buffers();
        loop {
            self.s.ticket.set_state(if self.lease.is_some() {
                ClientState::Active
            } else {
                ClientState::Idle
            });
            if !self.busy() && self.handle_client_commands().await? == Flow::ClientDone {
                return Ok(Flow::ClientDone);
            }
            let handle = self.s.handle.clone();
            if self.infile {
                let n = self
                    .client
                    .read_buf(&mut self.crbuf)
                    .await
                    .map_err(SessionError::ClientIo)?;
                if n == 0 {
                    return Ok(Flow::ClientDone);
                }
                self.s.ticket.traffic().received(n);
                self.relay_file_packets().await?;
                continue;
            }
            if self.busy() && std::mem::take(&mut self.server_bytes_pending) {
                self.handle_server_bytes().await?;
                continue;
            }
            if self.busy() {
                let deadline = self.limit_deadline();
                let Some(server) = self.lease.as_deref_mut() else {
                    continue;
                };
                let r = tokio::select! {
                    r = server.stream.read_buf(&mut server.rbuf) => Some(r),
                    () = maitred_pool::sleep_until(deadline) => None,
                };
                let Some(r) = r else {
                    if self.limit_reached().await == Flow::ClientDone {
                        return Ok(Flow::ClientDone);
                    }
                    continue;
                };
                match r {
                    Ok(0) => self.server_lost(LinkError::Closed.into()).await?,
                    Ok(_) => self.handle_server_bytes().await?,
                    Err(e) => self.server_lost(e.into()).await?,
                }
            } else if self.lease.is_none() {
                // Between transactions: the idle wait takes over (and the drain, which
                // lets such a client go).
                return Ok(Flow::Continue);
            } else {
                // In a transaction: the client's next command, on the same connection.
                let deadline = self.limit_deadline();
                let n = tokio::select! {
                    () = maitred_pool::sleep_until(deadline) => {
                        if self.limit_reached().await == Flow::ClientDone {
                            return Ok(Flow::ClientDone);
                        }
                        continue;
                    }
                    r = self.client.read_buf(&mut self.crbuf) => {
                        let n = r.map_err(SessionError::ClientIo)?;
                        self.s.ticket.traffic().received(n);
                        n
                    }
                    () = handle.killed() => {
                        self.err_locally(code::CONNECTION_KILLED, "70100", "Connection was killed");
                        let _ = self.flush_client().await;
                        return Ok(Flow::ClientDone);
                    }
                };
                if n == 0 {
                    return Ok(Flow::ClientDone);
                }
                self.clock.client_active();
            }
            if self.s.handle.is_killed() && !self.busy() {
                self.err_locally(code::CONNECTION_KILLED, "70100", "Connection was killed");
                let _ = self.flush_client().await;
                return Ok(Flow::ClientDone);
            }
        }
    }

    /// Going idle: the session's empty buffers go back to the worker's spares
    /// (`maitred_frontend::buffers`); one holding part of a packet stays.
    fn park_buffers(&mut self) {
        buffers::park_all([&mut self.crbuf, &mut self.cwbuf, &mut self.swbuf]);
    }

    /// Going busy: buffers from the worker's spares.
    fn lend_buffers(&mut self) {
        buffers::lend_all([&mut self.crbuf, &mut self.cwbuf, &mut self.swbuf]);
    }
}
