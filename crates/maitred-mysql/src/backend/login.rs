//! Logging in to the server: the greeting, TLS as `ssl-mode` says, the handshake response
//! and whatever authentication the server asks for (mysql_native_password,
//! caching_sha2_password fast path or full authentication, client_ed25519, auth switches).

use super::{read_packet_from, ServerConn, ServerInfo, DEFAULT_COLLATION};
use crate::auth;
use crate::codec::packets::{self, AUTH_MORE_DATA, EOF, ERR, OK};
use crate::codec::{cap, frame};
use crate::error::BackendError;
use crate::target::ServerTarget;
use crate::tls::Stream;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;

impl ServerConn {
    pub(super) async fn login(
        &mut self,
        target: &ServerTarget,
        greeting: &packets::ServerGreeting,
        seq: u8,
        leg: u32,
    ) -> Result<(), BackendError> {
        self.connection_id = greeting.connection_id;
        self.info = ServerInfo {
            version: greeting.server_version.clone(),
            capabilities: greeting.capabilities,
            collation: greeting.collation,
        };
        if greeting.capabilities & cap::PROTOCOL_41 == 0 {
            return Err(BackendError::UnsupportedAuth("pre-4.1".into()));
        }
        let mut caps = leg & greeting.capabilities;
        if self.stream.is_tls() {
            caps |= cap::SSL;
        }
        if target.database.is_some() {
            caps |= cap::CONNECT_WITH_DB;
        }
        self.capabilities = caps;
        let password = target
            .password
            .as_ref()
            .map_or("", |p| p.expose())
            .as_bytes();
        let mut plugin = greeting.auth_plugin.clone();
        if plugin != auth::NATIVE && plugin != auth::CACHING_SHA2 {
            // Answer as mysql_native_password; the server switches us if it must.
            plugin = auth::NATIVE.to_vec();
        }
        let mut nonce = greeting.nonce.clone();
        let answer = auth::expected_answer(&plugin, &nonce, password).unwrap_or_default();
        let secure = self.stream.is_secure();
        let hello = packets::client_hello(
            caps,
            DEFAULT_COLLATION,
            &target.user,
            &answer,
            target.database.as_deref(),
            &plugin,
        );
        let mut out = BytesMut::new();
        frame::write_packet(&mut out, seq.wrapping_add(1), &hello);
        self.stream.write_all(&out).await?;
        loop {
            let (s, payload) = self.read_packet().await?;
            let seq = s.wrapping_add(1);
            out.clear();
            match payload.first() {
                Some(&OK) => {
                    self.status = packets::parse_ok(&payload)?.status;
                    return Ok(());
                }
                Some(&ERR) => return Err(BackendError::Server(packets::parse_err(&payload)?)),
                Some(&EOF) => {
                    let (p, data) = packets::parse_auth_switch(&payload)?;
                    if p == auth::ed25519::PLUGIN {
                        // The nonce is 32 raw bytes (no NUL terminator to strip).
                        let raw = &payload[p.len() + 2..];
                        let nonce =
                            raw.get(..auth::ed25519::NONCE_LEN)
                                .ok_or(BackendError::Protocol(
                                    crate::codec::CodecError::Malformed("client_ed25519 nonce"),
                                ))?;
                        plugin = p;
                        frame::write_packet(&mut out, seq, &auth::ed25519::sign(password, nonce));
                        self.stream.write_all(&out).await?;
                        continue;
                    }
                    if p != auth::NATIVE && p != auth::CACHING_SHA2 {
                        return Err(BackendError::UnsupportedAuth(
                            String::from_utf8_lossy(&p).into_owned(),
                        ));
                    }
                    plugin = p;
                    nonce = data;
                    let answer =
                        auth::expected_answer(&plugin, &nonce, password).unwrap_or_default();
                    frame::write_packet(&mut out, seq, &answer);
                }
                Some(&AUTH_MORE_DATA) if plugin == auth::CACHING_SHA2 => match payload.get(1..) {
                    Some([auth::FAST_AUTH_OK]) => continue,
                    Some([auth::FULL_AUTH]) => {
                        if target.password.is_none() {
                            return Err(BackendError::NoPassword);
                        }
                        match full_auth(secure, target.tls.server_public_key()) {
                            FullAuth::Clear => {
                                // Inside TLS or over a Unix socket the password goes in
                                // clear, NUL-terminated.
                                let mut p = password.to_vec();
                                p.push(0);
                                frame::write_packet(&mut out, seq, &p);
                            }
                            FullAuth::Encrypt(pem) => {
                                let enc = auth::rsa_encrypted_password(password, &nonce, pem)
                                    .ok_or(BackendError::Rsa)?;
                                frame::write_packet(&mut out, seq, &enc);
                            }
                            FullAuth::Refuse => {
                                return Err(BackendError::InsecureFullAuth {
                                    addr: target.server.addr(),
                                })
                            }
                        }
                    }
                    // A public key maitred never asked for: it is not used.
                    Some(_) => {
                        return Err(BackendError::Protocol(
                            crate::codec::CodecError::Unexpected("server login (public key)"),
                        ))
                    }
                    None => return Err(BackendError::Protocol(crate::codec::CodecError::Empty)),
                },
                _ => {
                    return Err(BackendError::Protocol(
                        crate::codec::CodecError::Unexpected("server login"),
                    ))
                }
            }
            self.stream.write_all(&out).await?;
        }
    }
}

/// The server's first packet: its greeting, or the ERR it sends instead (too many
/// connections, host blocked).
pub(super) async fn read_greeting<S: AsyncRead + Unpin>(
    stream: &mut S,
    rbuf: &mut BytesMut,
) -> Result<(u8, packets::ServerGreeting), BackendError> {
    let (seq, greeting) = read_packet_from(stream, rbuf).await?;
    if greeting.first() == Some(&ERR) {
        return Err(BackendError::Server(packets::parse_err(&greeting)?));
    }
    Ok((seq, packets::parse_greeting(&greeting)?))
}

/// After the server's greeting: TLS if `ssl-mode` wants it and the server offers it (an SSL
/// request, then the TLS handshake). Returns the stream and the sequence id the handshake
/// response follows.
pub(super) async fn negotiate_tls(
    mut tcp: TcpStream,
    target: &ServerTarget,
    greeting: &packets::ServerGreeting,
    seq: u8,
    leg: u32,
) -> Result<(Stream, u8), BackendError> {
    let offered = greeting.capabilities & cap::SSL != 0;
    if !target.tls.wanted() || !offered {
        if target.tls.mode.requires_tls() {
            let mode = match target.tls.mode {
                crate::tls::SslMode::Required => "REQUIRED",
                crate::tls::SslMode::VerifyCa => "VERIFY_CA",
                _ => "VERIFY_IDENTITY",
            };
            return Err(BackendError::TlsRefused(mode));
        }
        return Ok((Stream::Plain(tcp), seq));
    }
    let mut caps = leg & greeting.capabilities | cap::SSL;
    if target.database.is_some() {
        caps |= cap::CONNECT_WITH_DB;
    }
    let mut out = BytesMut::new();
    frame::write_packet(
        &mut out,
        seq.wrapping_add(1),
        &packets::ssl_request(caps, DEFAULT_COLLATION),
    );
    tcp.write_all(&out).await?;
    let stream = target.tls.connect(tcp).await.map_err(BackendError::Tls)?;
    Ok((stream, seq.wrapping_add(1)))
}

/// How maitred answers a server's request for caching_sha2_password full authentication
/// ([`full_auth`]).
#[derive(Debug, PartialEq, Eq)]
pub enum FullAuth<'a> {
    /// The password in clear: the channel is TLS or the server's Unix socket.
    Clear,
    /// The password encrypted with the server's public key maitred was given
    /// (`server-public-key-path`), sent at once.
    Encrypt(&'a [u8]),
    /// Plain TCP and no configured key: asking the server for its key would let anyone in
    /// the path hand over their own and learn the password. Refused.
    Refuse,
}

/// The decision for caching_sha2_password full authentication on the server leg: never
/// the public key the server would send over plain TCP.
pub fn full_auth(secure_channel: bool, configured_key: Option<&[u8]>) -> FullAuth<'_> {
    match (secure_channel, configured_key) {
        (true, _) => FullAuth::Clear,
        (false, Some(pem)) => FullAuth::Encrypt(pem),
        (false, None) => FullAuth::Refuse,
    }
}

#[cfg(test)]
mod full_auth_tests {
    use super::*;

    /// caching_sha2_password full authentication on the server leg: the password goes in
    /// clear only over TLS or the Unix socket, encrypted only with a key maitred was given;
    /// the key a server would send over plain TCP is never asked for.
    #[test]
    fn the_password_never_goes_to_a_key_the_server_sent_over_plain_tcp() {
        assert_eq!(full_auth(true, None), FullAuth::Clear);
        assert_eq!(full_auth(true, Some(b"pem")), FullAuth::Clear);
        assert_eq!(full_auth(false, Some(b"pem")), FullAuth::Encrypt(b"pem"));
        assert_eq!(full_auth(false, None), FullAuth::Refuse);
        let e = BackendError::InsecureFullAuth {
            addr: "db:3306".into(),
        }
        .to_string();
        for what in [
            "db:3306",
            "ssl-mode=REQUIRED",
            "socket=",
            "server-public-key-path=",
        ] {
            assert!(e.contains(what), "{what} not in: {e}");
        }
    }
}

#[cfg(test)]
mod plain_tcp_full_auth_tests {
    use super::*;
    use crate::codec::{cap, frame, packets};
    use tokio::io::AsyncReadExt;

    async fn read_one(sock: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
        let mut head = [0u8; 4];
        sock.read_exact(&mut head).await.ok()?;
        let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
        let mut body = vec![0u8; len];
        sock.read_exact(&mut body).await.ok()?;
        Some(body)
    }

    /// A server (or anyone in its place on the network) that asks for caching_sha2_password
    /// full authentication over plain TCP: maitred refuses, naming what to configure, and
    /// never asks for the public key (0x02) whose owner would learn the password.
    #[tokio::test]
    async fn full_authentication_over_plain_tcp_never_asks_for_the_servers_key() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.ok()?;
            let mut out = BytesMut::new();
            frame::write_packet(
                &mut out,
                0,
                &packets::greeting(
                    "8.0.36",
                    1,
                    &[7u8; 20],
                    cap::SUPPORTED & !cap::SSL,
                    45,
                    auth::CACHING_SHA2,
                ),
            );
            sock.write_all(&out).await.ok()?;
            let _hello = read_one(&mut sock).await?;
            out.clear();
            frame::write_packet(&mut out, 2, &[packets::AUTH_MORE_DATA, auth::FULL_AUTH]);
            sock.write_all(&out).await.ok()?;
            // What the client sends next, if anything.
            read_one(&mut sock).await
        });
        let target = ServerTarget {
            server: maitred_frontend::ServerAddr::tcp("127.0.0.1", port),
            user: "app".into(),
            password: Some("s3cret-password".into()),
            database: None,
            tls: crate::tls::ServerTls::disabled(),
        };
        let r = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            ServerConn::connect(&target, 10, false),
        )
        .await
        .expect("no hang");
        let next = server.await.expect("fake server");
        assert_ne!(
            next.as_deref(),
            Some(&[auth::REQUEST_PUBLIC_KEY][..]),
            "maitred asked a server over plain TCP for its RSA public key"
        );
        match r {
            Err(e @ BackendError::InsecureFullAuth { .. }) => {
                let m = e.to_string();
                assert!(
                    m.contains("server-public-key-path") && !m.contains("s3cret"),
                    "{m}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
