//! A socket with or without TLS, read and written the same way.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// A socket, with or without TLS.
pub enum Stream {
    Plain(TcpStream),
    /// A server's Unix socket (no TLS there: the kernel is the only one between).
    Unix(UnixStream),
    ToServer(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    FromClient(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath (none for a Unix socket).
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Unix(_) => None,
            Stream::ToServer(s) => Some(s.get_ref().0),
            Stream::FromClient(s) => Some(s.get_ref().0),
        }
    }

    /// Whether the socket has nothing to read and is still open: a cheap liveness check of
    /// an idle connection (reads the raw socket, so only meaningful between messages).
    pub fn is_quiet(&self) -> bool {
        let mut probe = [0u8; 1];
        let read = match self {
            Stream::Unix(s) => s.try_read(&mut probe),
            Stream::Plain(s) => s.try_read(&mut probe),
            Stream::ToServer(s) => s.get_ref().0.try_read(&mut probe),
            Stream::FromClient(s) => s.get_ref().0.try_read(&mut probe),
        };
        matches!(read, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Waits until the socket has something for a reader, holding no buffer: how an idle
    /// session waits (an idle client then costs its socket, not a read buffer). For TLS,
    /// plaintext rustls already decrypted counts at once. The next read may still find
    /// nothing (a partial TLS record): see [`Stream::read_now`].
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.readable().await,
            Stream::Unix(s) => s.readable().await,
            Stream::ToServer(s) if !s.get_ref().1.wants_read() => Ok(()),
            Stream::FromClient(s) if !s.get_ref().1.wants_read() => Ok(()),
            Stream::ToServer(s) => s.get_ref().0.readable().await,
            Stream::FromClient(s) => s.get_ref().0.readable().await,
        }
    }

    /// Reads what is there now into `buf`, without waiting: `None` when nothing is (the
    /// socket is then waited on again with [`Stream::readable`]).
    pub fn read_now<B: bytes::BufMut>(&mut self, buf: &mut B) -> Option<io::Result<usize>> {
        use tokio::io::AsyncReadExt;
        let read = std::pin::pin!(self.read_buf(buf));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match read.poll(&mut cx) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Stream::ToServer(_) | Stream::FromClient(_))
    }

    /// TLS, or a Unix socket: where a password may go in clear, as MySQL's clients judge it.
    pub fn is_secure(&self) -> bool {
        !matches!(self, Stream::Plain(_))
    }
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Plain(_) => "Stream(plain)",
            Stream::Unix(_) => "Stream(unix)",
            _ => "Stream(TLS)",
        })
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::ToServer(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::FromClient(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::ToServer(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::FromClient(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::ToServer(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::FromClient(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::ToServer(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::FromClient(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Whether a client's first bytes are a TLS handshake record (content type 22, version
/// major 3), for protocols whose TLS starts with the ClientHello itself, with no request
/// to upgrade first (MongoDB). Waits for the first 3 bytes without consuming them; false
/// if the client closes before sending them.
pub async fn starts_with_tls_handshake(tcp: &TcpStream) -> io::Result<bool> {
    let mut head = [0u8; 3];
    loop {
        let n = tcp.peek(&mut head).await?;
        if n == 0 {
            return Ok(false);
        }
        if n >= 3 || head[0] != 0x16 {
            return Ok(is_tls_record_head(&head[..n]));
        }
        // Fewer than 3 bytes yet: peek returns at once while they are there, so give the
        // rest a moment to arrive.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

fn is_tls_record_head(head: &[u8]) -> bool {
    matches!(head, [0x16, 0x03, minor, ..] if *minor <= 0x04)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_record_heads_are_told_from_mongodb_message_lengths() {
        // A TLS 1.0-1.3 ClientHello record.
        assert!(is_tls_record_head(&[0x16, 0x03, 0x01]));
        assert!(is_tls_record_head(&[0x16, 0x03, 0x03]));
        // A MongoDB message of 22 or 278 bytes starts with 0x16 too.
        assert!(!is_tls_record_head(&22i32.to_le_bytes()[..3]));
        assert!(!is_tls_record_head(&278i32.to_le_bytes()[..3]));
        assert!(!is_tls_record_head(&[0x16]));
    }
}
