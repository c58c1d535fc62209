//! Where a pool's server is ([`ServerAddr`]) and the secret maitred logs in with
//! ([`Password`]), as every protocol's server target holds them.

use crate::error::LinkError;
use maitred_tls::Stream;
use std::path::PathBuf;
use tokio::net::{TcpStream, UnixStream};

/// A server's host and port, or its Unix socket.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerAddr {
    pub host: String,
    pub port: u16,
    /// The server's Unix socket: used instead of host and port when set.
    pub socket: Option<PathBuf>,
}

impl ServerAddr {
    /// `host` and `port` over TCP.
    pub fn tcp(host: impl Into<String>, port: u16) -> ServerAddr {
        ServerAddr {
            host: host.into(),
            port,
            socket: None,
        }
    }

    /// `host:port` (`[host]:port` for an IPv6 address), or the socket's path: for messages.
    pub fn addr(&self) -> String {
        if let Some(path) = &self.socket {
            path.display().to_string()
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// A plain socket to the server: [`Stream::Unix`] for a socket, else [`Stream::Plain`].
    pub async fn open(&self) -> std::io::Result<Stream> {
        match &self.socket {
            Some(path) => Ok(Stream::Unix(UnixStream::connect(path).await?)),
            None => Ok(Stream::Plain(
                TcpStream::connect((self.host.as_str(), self.port)).await?,
            )),
        }
    }

    /// [`open`](Self::open) for a server connection: a failure names the address, and TCP
    /// sends small writes at once (Nagle off: every message is a whole request or reply).
    pub async fn connect(&self) -> Result<Stream, LinkError> {
        let stream = self.open().await.map_err(|source| LinkError::Connect {
            addr: self.addr(),
            source,
        })?;
        if let Some(tcp) = stream.tcp() {
            tcp.set_nodelay(true)?;
        }
        Ok(stream)
    }
}

impl std::fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.addr())
    }
}

impl std::fmt::Debug for ServerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerAddr({})", self.addr())
    }
}

/// A password maitred logs in to a server with. Its Debug form is `***`, so the targets
/// that hold one can be logged whole.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Password {
    fn from(s: String) -> Password {
        Password(s)
    }
}

impl From<&str> for Password {
    fn from(s: &str) -> Password {
        Password(s.to_owned())
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_messages_show_them() {
        assert_eq!(ServerAddr::tcp("db", 5432).addr(), "db:5432");
        assert_eq!(ServerAddr::tcp("::1", 3306).addr(), "[::1]:3306");
        let unix = ServerAddr {
            socket: Some("/run/mysqld/mysqld.sock".into()),
            ..ServerAddr::tcp("localhost", 3306)
        };
        assert_eq!(unix.to_string(), "/run/mysqld/mysqld.sock");
        assert_eq!(format!("{unix:?}"), "ServerAddr(/run/mysqld/mysqld.sock)");
    }

    #[test]
    fn a_password_never_shows() {
        let pw = Password::from("hunter2");
        assert_eq!(format!("{:?}", Some(pw.clone())), "Some(***)");
        assert_eq!(pw.expose(), "hunter2");
    }

    #[tokio::test]
    async fn a_refused_connect_names_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let e = ServerAddr::tcp("127.0.0.1", port).connect().await;
        let text = e.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.starts_with(&format!("could not connect to 127.0.0.1:{port}")),
            "{text}"
        );
    }
}
