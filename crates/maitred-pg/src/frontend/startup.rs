//! The startup packet: SSLRequest (TLS upgrade) and GSSENCRequest refused on the way,
//! a CancelRequest forwarded, and the protocol version negotiated.

use super::*;

/// Runs the startup phase. `Ok(None)`: the connection was only a cancel request or the client
/// went away; an error was already sent to the client where one is due.
/// Reads the startup packet, answering SSLRequest (upgrading to TLS when the listener has a
/// certificate) and GSSENCRequest ('N') on the way, and forwarding a CancelRequest.
pub(super) async fn read_startup(
    mut stream: Stream,
    buf: &mut BytesMut,
    router: &Router,
    deadline: tokio::time::Instant,
) -> Result<Option<(Stream, StartupParams)>, SessionError> {
    loop {
        match decode_startup(buf) {
            Ok(Some(StartupPacket::SslRequest)) => {
                stream = match (&router.tls, stream) {
                    // Bytes sent before the handshake would be read as plain text: refuse.
                    (Some(tls), Stream::Plain(mut tcp)) if buf.is_empty() => {
                        tcp.write_all(b"S").await.map_err(SessionError::ClientIo)?;
                        let tls = tls
                            .acceptor
                            .accept(tcp)
                            .await
                            .map_err(SessionError::ClientIo)?;
                        Stream::FromClient(Box::new(tls))
                    }
                    (_, mut other) => {
                        write(&mut other, b"N").await?;
                        other
                    }
                };
            }
            Ok(Some(StartupPacket::GssEncRequest)) => write(&mut stream, b"N").await?,
            Ok(Some(StartupPacket::Cancel {
                process_id,
                secret_key,
            })) => {
                router.cancels.cancel(process_id, secret_key).await;
                return Ok(None);
            }
            Ok(Some(StartupPacket::Startup(p))) => {
                if router.tls.as_ref().is_some_and(|t| t.required) && !stream.is_tls() {
                    let mut o = BytesMut::new();
                    fatal(
                        &mut o,
                        sqlstate::INVALID_AUTHORIZATION,
                        "maitred: this listener requires TLS (connect with sslmode=require or stronger)",
                        None,
                    );
                    let _ = stream.write_all(&o).await;
                    return Ok(None);
                }
                return Ok(Some((stream, p)));
            }
            Ok(None) => {
                let Ok(read) = tokio::time::timeout_at(deadline, stream.read_buf(buf)).await else {
                    tracing::debug!("client sent no startup packet within client_login_timeout");
                    let mut o = BytesMut::new();
                    crate::limits::login_timeout(&mut o, router.login_timeout());
                    let _ = stream.write_all(&o).await;
                    return Ok(None);
                };
                if read.map_err(SessionError::ClientIo)? == 0 {
                    return Ok(None);
                }
            }
            Err(e) => {
                let mut o = BytesMut::new();
                fatal(
                    &mut o,
                    sqlstate::PROTOCOL_VIOLATION,
                    &format!("maitred: invalid startup packet: {e}"),
                    None,
                );
                let _ = stream.write_all(&o).await;
                return Err(e.into());
            }
        }
    }
}

/// Answers a 3.x startup with a minor version we do not speak, or `_pq_.` options, with
/// NegotiateProtocolVersion (we speak 3.0).
pub(crate) async fn negotiate_version(
    stream: &mut Stream,
    p: &StartupParams,
) -> Result<(), SessionError> {
    let unknown: Vec<&str> = p
        .params
        .iter()
        .filter(|(k, _)| k.starts_with("_pq_."))
        .map(|(k, _)| k.as_str())
        .collect();
    if p.minor_version > 0 || !unknown.is_empty() {
        let mut o = BytesMut::new();
        out::negotiate_protocol_version(&mut o, 0, &unknown);
        write(stream, &o).await?;
    }
    Ok(())
}
