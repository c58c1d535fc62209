//! A TCP relay that injects network faults between maitred and a real server.
//!
//! [`FaultRelay::start`] listens on `127.0.0.1:<free port>` and forwards every
//! connection to the upstream address. Point maitred's upstream URL at
//! [`FaultRelay::addr`], then switch faults at runtime:
//!
//! * [`Fault::Pass`]: forward bytes as they come (the default).
//! * [`Fault::Delay`]: hold each chunk read from either side this long before
//!   writing it on (a slow network or a slow server).
//! * [`Fault::Blackhole`]: keep every socket open but forward nothing either
//!   way (a server that stops answering, a dead link). New connections are
//!   accepted and held; the upstream connection is opened only once traffic
//!   passes again. What was held is forwarded when the fault is lifted.
//! * [`Fault::Refuse`]: each new connection is accepted and reset at once
//!   (the server is unreachable). Counted in [`FaultRelay::refused`], so a
//!   test can tell how often maitred tried to connect during an outage.
//!   Connections already open are left alone.
//!
//! And one-shot actions on the connections open right now:
//! [`FaultRelay::drop_all`] closes them cleanly (FIN both ways, like a server
//! that closes idle connections), [`FaultRelay::reset_all`] aborts them
//! (`SO_LINGER` 0: RST both ways, like a server that crashed or restarted).
//!
//! The relay runs on its own thread and Tokio runtime, so it works the same
//! from a plain `#[test]` and from inside a test's runtime, and is never
//! starved by a busy test. Dropping the [`FaultRelay`] stops it and closes
//! every connection.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How the relay treats traffic; switch with [`FaultRelay::set_fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward as it comes.
    Pass,
    /// Hold each chunk this long before forwarding it.
    Delay(Duration),
    /// Keep sockets open, forward nothing either way.
    Blackhole,
    /// Reset new connections at once; open ones are untouched.
    Refuse,
}

/// What [`FaultRelay::drop_all`] / [`FaultRelay::reset_all`] do to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kill {
    /// Close cleanly (FIN).
    Close,
    /// Abort (RST).
    Reset,
}

/// How long [`FaultRelay::drop_all`] and [`FaultRelay::reset_all`] wait for
/// the connections to be gone before they panic.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read per chunk.
const CHUNK: usize = 16 * 1024;

/// State shared by the handle and the relay's tasks.
struct Shared {
    upstream: SocketAddr,
    fault: watch::Sender<Fault>,
    /// Each send kills the connections open at that moment.
    kill: watch::Sender<Kill>,
    stop: watch::Sender<bool>,
    accepted: AtomicU64,
    refused: AtomicU64,
    next_id: AtomicU64,
    /// Ids of the connections being relayed now.
    open: Mutex<HashSet<u64>>,
}

impl Shared {
    fn open_ids(&self) -> std::sync::MutexGuard<'_, HashSet<u64>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running fault-injecting relay; see the module docs.
pub struct FaultRelay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for FaultRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultRelay")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("fault", &self.fault())
            .field("accepted", &self.accepted())
            .field("open", &self.open())
            .finish()
    }
}

impl FaultRelay {
    /// Starts a relay on `127.0.0.1:<free port>` in front of `upstream`, in
    /// [`Fault::Pass`].
    ///
    /// # Panics
    /// If the listener cannot be bound or the thread cannot start.
    pub fn start(upstream: SocketAddr) -> FaultRelay {
        let std_listener =
            std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fault relay on 127.0.0.1");
        std_listener
            .set_nonblocking(true)
            .expect("non-blocking relay listener");
        let addr = std_listener.local_addr().expect("relay local_addr");
        let shared = Arc::new(Shared {
            upstream,
            fault: watch::Sender::new(Fault::Pass),
            kill: watch::Sender::new(Kill::Close),
            stop: watch::Sender::new(false),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashSet::new()),
        });
        let for_thread = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name(format!("fault-relay-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fault relay runtime");
                rt.block_on(async move {
                    let listener =
                        TcpListener::from_std(std_listener).expect("relay listener into tokio");
                    accept_loop(listener, for_thread).await;
                });
                // Dropping the runtime drops every connection task and its sockets.
            })
            .expect("spawn the fault relay thread");
        FaultRelay {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    /// The address to connect to instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The real server behind the relay.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Switches the fault; takes effect for the next chunk of every connection.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.fault.send_replace(fault);
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        *self.shared.fault.borrow()
    }

    /// Connections accepted so far (refused ones included).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections reset at once because the fault was [`Fault::Refuse`].
    pub fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Connections being relayed right now.
    pub fn open(&self) -> usize {
        self.shared.open_ids().len()
    }

    /// Closes every open connection cleanly (FIN to both sides) and waits
    /// until they are gone.
    pub fn drop_all(&self) {
        self.kill_all(Kill::Close);
    }

    /// Aborts every open connection (RST to both sides) and waits until they
    /// are gone.
    pub fn reset_all(&self) {
        self.kill_all(Kill::Reset);
    }

    fn kill_all(&self, kill: Kill) {
        // Snapshot first: a connection registered by now subscribed to `kill`
        // before it registered, so it sees the send below.
        let victims: Vec<u64> = self.shared.open_ids().iter().copied().collect();
        self.shared.kill.send_replace(kill);
        let deadline = Instant::now() + KILL_TIMEOUT;
        loop {
            let left = {
                let open = self.shared.open_ids();
                victims.iter().filter(|id| open.contains(id)).count()
            };
            if left == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "fault relay: {left} connections still open {KILL_TIMEOUT:?} after {kill:?}"
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits until at most `n` connections are open, or `timeout` passes;
    /// returns whether it got there.
    pub fn wait_open_at_most(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.open() <= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for FaultRelay {
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((client, _)) = accepted else {
            // EMFILE and the like: back off a little rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if *shared.fault.borrow() == Fault::Refuse {
            shared.refused.fetch_add(1, Ordering::SeqCst);
            let _ = client.set_zero_linger();
            drop(client);
            continue;
        }
        // Subscribe before registering: see FaultRelay::kill_all.
        let kill = shared.kill.subscribe();
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        shared.open_ids().insert(id);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            relay_one(client, kill, &shared).await;
            shared.open_ids().remove(&id);
        });
    }
}

/// Relays one connection until both sides are done, an I/O error, or a kill.
async fn relay_one(mut client: TcpStream, mut kill: watch::Receiver<Kill>, shared: &Shared) {
    let _ = client.set_nodelay(true);
    let mut fault = shared.fault.subscribe();
    // A blackholed connect is held without reaching the server.
    let upstream = tokio::select! {
        r = async {
            forwarding(&mut fault).await;
            TcpStream::connect(shared.upstream).await
        } => r,
        _ = kill.changed() => {
            finish(&client, None, *kill.borrow());
            return;
        }
    };
    let Ok(mut server) = upstream else {
        // The real server refused: tell the client the same way.
        let _ = client.set_zero_linger();
        return;
    };
    let _ = server.set_nodelay(true);
    let outcome = {
        let (client_r, client_w) = client.split();
        let (server_r, server_w) = server.split();
        let up = pump(client_r, server_w, shared.fault.subscribe());
        let down = pump(server_r, client_w, shared.fault.subscribe());
        // One side failing ends both; one side's EOF only half-closes.
        tokio::select! {
            _ = async { tokio::try_join!(up, down) } => None,
            _ = kill.changed() => Some(*kill.borrow()),
        }
    };
    if let Some(how) = outcome {
        finish(&client, Some(&server), how);
    }
}

/// Prepares the sockets for being dropped the way `how` says.
fn finish(client: &TcpStream, server: Option<&TcpStream>, how: Kill) {
    if how == Kill::Reset {
        let _ = client.set_zero_linger();
        if let Some(s) = server {
            let _ = s.set_zero_linger();
        }
    }
}

/// Waits while the fault is [`Fault::Blackhole`].
async fn forwarding(fault: &mut watch::Receiver<Fault>) {
    let _ = fault.wait_for(|f| *f != Fault::Blackhole).await;
}

/// Copies one direction, honouring the fault for each chunk; on EOF passes
/// the half-close on.
async fn pump<R, W>(mut from: R, mut to: W, mut fault: watch::Receiver<Fault>) -> io::Result<()>
where
    R: AsyncReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        forwarding(&mut fault).await;
        let n = from.read(&mut buf).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(());
        }
        let current = *fault.borrow_and_update();
        if let Fault::Delay(d) = current {
            tokio::time::sleep(d).await;
        }
        forwarding(&mut fault).await;
        to.write_all(&buf[..n]).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};

    /// A stand-in upstream for the relay's own tests: echoes every byte back.
    fn echo_server() -> (SocketAddr, thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        let handle = thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        (addr, handle)
    }

    fn connect(relay: &FaultRelay) -> std::net::TcpStream {
        let s = std::net::TcpStream::connect(relay.addr()).expect("connect to relay");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        s
    }

    fn round_trip(s: &mut std::net::TcpStream, msg: &[u8]) -> Vec<u8> {
        s.write_all(msg).expect("write");
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).expect("echo back");
        got
    }

    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn passes_bytes_and_counts_connections() {
        let (up, _echo) = echo_server();
        let relay = FaultRelay::start(up);
        assert_eq!(relay.upstream(), up);
        let mut a = connect(&relay);
        let mut b = connect(&relay);
        assert_eq!(round_trip(&mut a, b"hello"), b"hello");
        assert_eq!(round_trip(&mut b, b"world"), b"world");
        assert_eq!(relay.accepted(), 2);
        assert_eq!(relay.open(), 2);
        drop(a);
        wait_until("one connection closed", || relay.open() == 1);
        assert_eq!(relay.accepted(), 2);
        assert_eq!(relay.refused(), 0);
    }

    #[test]
    fn delays_each_chunk() {
        let (up, _echo) = echo_server();
        let relay = FaultRelay::start(up);
        let mut s = connect(&relay);
        relay.set_fault(Fault::Delay(Duration::from_millis(150)));
        assert_eq!(relay.fault(), Fault::Delay(Duration::from_millis(150)));
        let t = Instant::now();
        assert_eq!(round_trip(&mut s, b"slow"), b"slow");
        // Delayed on the way there and on the way back.
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        relay.set_fault(Fault::Pass);
        let t = Instant::now();
        assert_eq!(round_trip(&mut s, b"fast"), b"fast");
        assert!(
            t.elapsed() < Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn drop_all_closes_open_connections_cleanly() {
        let (up, _echo) = echo_server();
        let relay = FaultRelay::start(up);
        let mut s = connect(&relay);
        assert_eq!(round_trip(&mut s, b"x"), b"x");
        relay.drop_all();
        assert_eq!(relay.open(), 0);
        let mut buf = [0u8; 1];
        assert_eq!(s.read(&mut buf).expect("clean EOF, not an error"), 0);
        // New connections still work.
        let mut again = connect(&relay);
        assert_eq!(round_trip(&mut again, b"y"), b"y");
    }

    #[test]
    fn reset_all_aborts_open_connections() {
        let (up, _echo) = echo_server();
        let relay = FaultRelay::start(up);
        let mut s = connect(&relay);
        assert_eq!(round_trip(&mut s, b"x"), b"x");
        relay.reset_all();
        assert_eq!(relay.open(), 0);
        let mut buf = [0u8; 1];
        let err = s.read(&mut buf).expect_err("a reset, not EOF");
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    }

    #[test]
    fn blackhole_holds_traffic_until_lifted() {
        let (up, _echo) = echo_server();
        let relay = FaultRelay::start(up);
        let mut s = connect(&relay);
        assert_eq!(round_trip(&mut s, b"x"), b"x");
        relay.set_fault(Fault::Blackhole);
        s.write_all(b"held").expect("write into the blackhole");
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .expect("short read timeout");
        let mut buf = [0u8; 4];
        let err = s.read(&mut buf).expect_err("nothing comes back");
        assert!(
            matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{err}"
        );
        // A new connection is accepted but held too.
        let mut fresh = connect(&relay);
        fresh.write_all(b"new").expect("write");
        fresh
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("short read timeout");
        assert!(fresh.read(&mut buf).is_err(), "blackholed connect answered");
        wait_until("the held connection is counted", || relay.open() == 2);
        relay.set_fault(Fault::Pass);
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        s.read_exact(&mut buf).expect("held bytes arrive");
        assert_eq!(&buf, b"held");
        fresh
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("read timeout");
        let mut three = [0u8; 3];
        fresh.read_exact(&mut three).expect("held connect proceeds");
        assert_eq!(&three, b"new");
    }

    #[test]
    fn refuse_resets_new_connections_and_counts_them() {
        let (up, _echo) = echo_server();
        let relay = FaultRelay::start(up);
        let mut old = connect(&relay);
        // Accepted by the relay (not just queued in the kernel) before the switch.
        assert_eq!(round_trip(&mut old, b"before"), b"before");
        relay.set_fault(Fault::Refuse);
        for _ in 0..3 {
            let mut s = connect(&relay);
            let mut buf = [0u8; 1];
            match s.read(&mut buf) {
                Ok(0) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                other => panic!("a refused connection answered: {other:?}"),
            }
        }
        assert_eq!(relay.refused(), 3);
        assert_eq!(relay.accepted(), 4);
        // Connections opened before the refusal keep working.
        assert_eq!(round_trip(&mut old, b"still"), b"still");
        relay.set_fault(Fault::Pass);
        let mut s = connect(&relay);
        assert_eq!(round_trip(&mut s, b"back"), b"back");
        assert_eq!(relay.refused(), 3);
    }

    #[test]
    fn upstream_down_resets_the_client() {
        // A port nothing listens on.
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let relay = FaultRelay::start(dead);
        let mut s = connect(&relay);
        let mut buf = [0u8; 1];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("expected the connection to fail: {other:?}"),
        }
        wait_until("the failed connection is forgotten", || relay.open() == 0);
    }

    #[test]
    fn dropping_the_relay_closes_everything() {
        let (up, _echo) = echo_server();
        let relay = FaultRelay::start(up);
        let addr = relay.addr();
        let mut s = connect(&relay);
        assert_eq!(round_trip(&mut s, b"x"), b"x");
        drop(relay);
        let mut buf = [0u8; 1];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
        assert!(std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_err());
    }
}
