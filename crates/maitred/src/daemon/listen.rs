//! Binding listeners with SO_REUSEPORT, so that a new maitred can start on the same
//! addresses before the old one drains (rolling restart without refused connections; see
//! docs/operations.md, "Rolling restart").

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};

/// Pending connections the kernel queues per listener before maitred accepts them.
const BACKLOG: u32 = 1024;

/// Binds `addr` with SO_REUSEADDR and SO_REUSEPORT. Another process of the same user may
/// bind the same address meanwhile; the kernel then spreads new connections over both.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_listeners_share_one_address() {
        let first = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = first.local_addr().expect("addr");
        let second = bind(addr).expect("a second process (here: socket) binds the same port");
        assert_eq!(second.local_addr().expect("addr"), addr);
        drop(first);
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (accepted, _) = second.accept().await.expect("the survivor accepts");
        assert_eq!(accepted.peer_addr().ok(), client.local_addr().ok());
    }
}
