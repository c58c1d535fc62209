//! Cancel requests: maitred hands clients BackendKeyData with a secret of its own and
//! forwards a client's CancelRequest to the server connection serving that client at that
//! moment, if any.
//!
//! The process id a client is told is the server's in session mode (the client holds one
//! server connection from login to the end, so `pg_backend_pid()`, `pg_stat_activity` and
//! its notifications all agree with it), and maitred's own otherwise ([`FIRST_OWN_ID`] and
//! up, above any Linux pid, so it is never mistaken for a server process).
//!
//! Spec: <https://www.postgresql.org/docs/15/protocol-flow.html#id-1.10.6.9>.

use crate::target::ServerTarget;
use bytes::BytesMut;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// maitred's own process ids start here: above Linux's largest pid (2^22), so a client can
/// tell its own id from a server's, and below 2^31 (clients read it as a signed int32).
pub const FIRST_OWN_ID: u32 = 1 << 24;

/// One client's cancel key and the server connection it is using right now.
#[derive(Debug)]
pub struct CancelHandle {
    /// maitred's id of the client, unique while it is connected (registries, logs).
    pub id: u32,
    /// The process id the client was told: the server's in session mode, else `id`.
    pub process_id: u32,
    pub secret_key: u32,
    target: Arc<ServerTarget>,
    /// The server's (process_id << 32 | secret_key) while the client holds a lease; 0 if none.
    current: AtomicU64,
    /// CancelRequests of this client forwarded to a server that has not acted on them yet.
    /// A connection released while one is in flight is closed, never reused: the signal
    /// could otherwise land in the next client's query (57014).
    in_flight: AtomicU32,
}

impl CancelHandle {
    /// Records the server connection now serving the client.
    pub fn set_server(&self, process_id: i32, secret_key: i32) {
        let packed = (u64::from(process_id as u32) << 32) | u64::from(secret_key as u32);
        self.current.store(packed, Ordering::SeqCst);
    }

    /// The client no longer holds a server connection. True when a CancelRequest of the
    /// client may still reach the connection it held: the caller must not let anyone else
    /// have that connection. (SeqCst with [`CancelRegistry::cancel`]: either the cancel
    /// counted itself before this store, and this sees it, or it reads no server after.)
    #[must_use = "a connection with a cancel in flight must be closed, not reused"]
    pub fn clear_server(&self) -> bool {
        self.current.store(0, Ordering::SeqCst);
        self.in_flight.load(Ordering::SeqCst) > 0
    }

    fn server_key(&self) -> Option<(i32, i32)> {
        match self.current.load(Ordering::SeqCst) {
            0 => None,
            p => Some(((p >> 32) as u32 as i32, p as u32 as i32)),
        }
    }
}

/// How long a forwarded CancelRequest may take before maitred stops waiting for the server.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Every logged-in client's cancel key, shared by all listeners.
#[derive(Debug, Default)]
pub struct CancelRegistry {
    next_id: AtomicU32,
    /// By the process id each client was told. Server pids of different servers may be
    /// equal: a process id may have several clients, told apart by their secrets.
    clients: Mutex<HashMap<u32, Vec<Arc<CancelHandle>>>>,
    /// The maitred ids in use.
    ids: Mutex<std::collections::HashSet<u32>>,
}

impl CancelRegistry {
    /// Issues a fresh key for a client that just logged in. `server_pid`: the process id of
    /// the server connection the client holds for its whole session (session mode), told
    /// to the client instead of maitred's id.
    pub fn register(
        &self,
        target: Arc<ServerTarget>,
        server_pid: Option<i32>,
    ) -> Arc<CancelHandle> {
        let id = self.fresh_id();
        let handle = Arc::new(CancelHandle {
            id,
            process_id: server_pid.map_or(id, |p| p as u32),
            secret_key: rand::random(),
            target,
            current: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
        });
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(handle.process_id)
            .or_default()
            .push(handle.clone());
        handle
    }

    /// An id in `FIRST_OWN_ID..=i32::MAX` no connected client has.
    fn fresh_id(&self) -> u32 {
        const SPAN: u32 = i32::MAX as u32 - FIRST_OWN_ID + 1;
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let id = FIRST_OWN_ID + self.next_id.fetch_add(1, Ordering::Relaxed) % SPAN;
            if ids.insert(id) {
                return id;
            }
        }
    }

    pub fn unregister(&self, handle: &CancelHandle) {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(same_pid) = clients.get_mut(&handle.process_id) {
            same_pid.retain(|h| h.id != handle.id);
            if same_pid.is_empty() {
                clients.remove(&handle.process_id);
            }
        }
        drop(clients);
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.remove(&handle.id);
    }

    /// Handles a CancelRequest: forwards it when the key matches and the client is being
    /// served; otherwise does nothing (as PostgreSQL does, the requester learns nothing).
    pub async fn cancel(&self, process_id: u32, secret_key: u32) {
        let handle = {
            let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            // Every candidate's secret is compared, in constant time each.
            clients.get(&process_id).and_then(|same_pid| {
                same_pid.iter().fold(None, |found, h| {
                    let matches = bool::from(h.secret_key.ct_eq(&secret_key));
                    if matches {
                        Some(h.clone())
                    } else {
                        found
                    }
                })
            })
        };
        let Some(handle) = handle else { return };
        handle.in_flight.fetch_add(1, Ordering::SeqCst);
        if let Some((pid, key)) = handle.server_key() {
            // Counted until the server closed the cancel connection (it has signalled the
            // backend by then), or for at most CANCEL_WAIT.
            let sent = tokio::time::timeout(CANCEL_WAIT, cancel_and_wait(&handle.target, pid, key));
            match sent.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not forward a cancel request to the server")
                }
                Err(_) => tracing::warn!("the server did not act on a cancel request in time"),
            }
        }
        handle.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sends a CancelRequest for a server process and waits until the server has acted on it:
/// the server closes the cancel connection only after it has signalled the process (or
/// found nothing to signal). Used before a connection is reused: a CancelRequest still on
/// its way when the next client's query starts would cancel that query instead (57014).
/// Once it has been acted on, the signal either interrupted the query it was meant for or
/// reached an idle backend, which ignores it.
///
/// An error means the server may or may not have received the request.
pub async fn cancel_and_wait(
    target: &ServerTarget,
    process_id: i32,
    secret_key: i32,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    postgres_protocol::message::frontend::cancel_request(process_id, secret_key, &mut out);
    let stream = target.server.open().await?;
    write_then_await_close(stream, &out).await
}

/// Writes `request`, then reads until the peer closes (the server sends nothing back on a
/// cancel connection; anything it does send is skipped).
async fn write_then_await_close<S>(mut stream: S, request: &[u8]) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(request).await?;
    stream.shutdown().await?;
    let mut sink = [0u8; 64];
    loop {
        match stream.read(&mut sink).await {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            // A reset is the server closing too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// Sends a CancelRequest for a server process on a new connection.
pub async fn send_cancel(
    target: &ServerTarget,
    process_id: i32,
    secret_key: i32,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    postgres_protocol::message::frontend::cancel_request(process_id, secret_key, &mut out);
    let mut stream = target.server.open().await?;
    stream.write_all(&out).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Arc<ServerTarget> {
        Arc::new(ServerTarget {
            server: maitred_frontend::ServerAddr::tcp("127.0.0.1", 1),
            user: "u".into(),
            password: None,
            passthrough: None,
            database: "d".into(),
            startup_params: vec![],
            tls: crate::tls::ServerTls::disabled(),
        })
    }

    #[tokio::test]
    async fn cancel_and_wait_returns_only_once_the_server_closed_the_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let target = ServerTarget {
            server: maitred_frontend::ServerAddr::tcp("127.0.0.1", port),
            ..(*target()).clone()
        };
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut packet = [0u8; 16];
            sock.read_exact(&mut packet).await.expect("cancel packet");
            // The server takes its time to act on the request.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let _ = closed_tx.send(());
            drop(sock);
            packet
        });
        cancel_and_wait(&target, 7, -9).await.expect("cancel");
        let mut closed_rx = closed_rx;
        assert!(
            closed_rx.try_recv().is_ok(),
            "returned before the server closed the cancel connection"
        );
        let packet = server.await.expect("server");
        assert_eq!(&packet[..8], &[0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e]);
        assert_eq!(&packet[8..12], &7i32.to_be_bytes());
        assert_eq!(&packet[12..], &(-9i32).to_be_bytes());
    }

    #[test]
    fn keys_are_unique_and_packing_round_trips() {
        let reg = CancelRegistry::default();
        let a = reg.register(target(), None);
        let b = reg.register(target(), None);
        assert_ne!(a.process_id, b.process_id);
        assert!(a.process_id >= FIRST_OWN_ID && a.process_id <= i32::MAX as u32);
        assert_eq!(
            a.id, a.process_id,
            "maitred's own id is told outside session mode"
        );
        assert_eq!(a.server_key(), None);
        a.set_server(-5, i32::MIN);
        assert_eq!(a.server_key(), Some((-5, i32::MIN)));
        assert!(!a.clear_server(), "no cancel in flight");
        assert_eq!(a.server_key(), None);
        reg.unregister(&a);
        assert!(reg
            .clients
            .lock()
            .expect("lock")
            .get(&a.process_id)
            .is_none());
        assert!(!reg.ids.lock().expect("lock").contains(&a.id));
    }

    /// Session-mode clients are told their server's pid, and two servers may have used the
    /// same one: the secret picks the client, and a wrong secret reaches no one.
    #[tokio::test]
    async fn clients_told_the_same_server_pid_are_told_apart_by_their_secrets() {
        async fn server() -> (Arc<ServerTarget>, tokio::net::TcpListener) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let target = Arc::new(ServerTarget {
                server: maitred_frontend::ServerAddr::tcp("127.0.0.1", port),
                ..(*target()).clone()
            });
            (target, listener)
        }
        async fn reached(listener: &tokio::net::TcpListener) -> Option<[u8; 16]> {
            let wait = std::time::Duration::from_millis(300);
            let (mut sock, _) = tokio::time::timeout(wait, listener.accept())
                .await
                .ok()?
                .ok()?;
            let mut packet = [0u8; 16];
            sock.read_exact(&mut packet).await.ok()?;
            Some(packet)
        }
        let (target_a, server_a) = server().await;
        let (target_b, server_b) = server().await;
        let reg = Arc::new(CancelRegistry::default());
        let a = reg.register(target_a, Some(77));
        let b = reg.register(target_b, Some(77));
        assert_eq!((a.process_id, b.process_id), (77, 77));
        assert_ne!(a.id, b.id);
        a.set_server(77, 1);
        b.set_server(77, 2);
        let wrong = a.secret_key ^ b.secret_key ^ 1;
        let (reg2, key) = (reg.clone(), b.secret_key);
        let sent = tokio::spawn(async move { reg2.cancel(77, key).await });
        let packet = reached(&server_b).await.expect("b's server got the cancel");
        assert_eq!(&packet[12..], &2i32.to_be_bytes(), "b's server key");
        sent.await.expect("cancel");
        assert!(reached(&server_a).await.is_none(), "a's server got nothing");
        if wrong != a.secret_key && wrong != b.secret_key {
            reg.cancel(77, wrong).await;
            assert!(reached(&server_a).await.is_none());
            assert!(reached(&server_b).await.is_none());
        }
        reg.unregister(&b);
        reg.cancel(77, key).await;
        assert!(
            reached(&server_b).await.is_none(),
            "b left: its key is gone"
        );
        assert_eq!(reg.clients.lock().expect("lock")[&77].len(), 1, "a stays");
    }

    /// A client's CancelRequest is forwarded and the server is slow to act on it: a release
    /// meanwhile learns that the connection must not serve anyone else; once the server has
    /// acted, releases are plain again. (node-postgres sends its cancel and moves on: a late
    /// one used to cancel the next client's query.)
    #[tokio::test]
    async fn a_release_while_a_cancel_is_in_flight_is_told_so() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let target = Arc::new(ServerTarget {
            server: maitred_frontend::ServerAddr::tcp("127.0.0.1", port),
            ..(*target()).clone()
        });
        let (got_tx, got_rx) = tokio::sync::oneshot::channel::<()>();
        let (act_tx, act_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut packet = [0u8; 16];
            sock.read_exact(&mut packet).await.expect("cancel packet");
            let _ = got_tx.send(());
            // The postmaster acts when told to.
            let _ = act_rx.await;
            drop(sock);
        });
        let reg = Arc::new(CancelRegistry::default());
        let h = reg.register(target, None);
        h.set_server(42, 7);
        let cancel = tokio::spawn({
            let reg = reg.clone();
            let (pid, key) = (h.process_id, h.secret_key);
            async move { reg.cancel(pid, key).await }
        });
        got_rx.await.expect("the cancel reached the server");
        assert!(
            h.clear_server(),
            "released while the server had not acted on the cancel"
        );
        h.set_server(43, 8);
        assert!(h.clear_server(), "still in flight for the next lease too");
        act_tx.send(()).expect("act");
        cancel.await.expect("cancel task");
        h.set_server(44, 9);
        assert!(!h.clear_server(), "the cancel was acted on");
    }
}
