//! Writing out what a relay gathered for its client or its server.

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes `buf` whole to `stream` (nothing when it is empty) and empties it, written or
/// not: what failed to go out is not sent again. `sent` is told how many bytes were
/// handed to the socket's write, for traffic counters.
pub async fn flush<S: AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    sent: impl FnOnce(usize),
) -> std::io::Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let r = stream.write_all(buf).await;
    sent(buf.len());
    buf.clear();
    r
}

/// [`flush`] towards a server connection the client may no longer hold: without one,
/// what was meant for it is dropped.
pub async fn flush_to_server<S: AsyncWrite + Unpin>(
    server: Option<&mut S>,
    buf: &mut BytesMut,
) -> std::io::Result<()> {
    match server {
        Some(stream) => flush(stream, buf, |_| {}).await,
        None => {
            buf.clear();
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_counts_and_empties() {
        let mut out = Vec::new();
        let mut buf = BytesMut::from(&b"hello"[..]);
        let mut counted = 0;
        flush(&mut out, &mut buf, |n| counted = n)
            .await
            .expect("write");
        assert_eq!(
            (out.as_slice(), counted, buf.is_empty()),
            (&b"hello"[..], 5, true)
        );
        let mut buf = BytesMut::from(&b"lost"[..]);
        flush_to_server(None::<&mut Vec<u8>>, &mut buf)
            .await
            .expect("dropped");
        assert!(buf.is_empty());
    }
}
