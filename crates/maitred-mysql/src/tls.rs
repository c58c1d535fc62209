//! TLS on both legs of MySQL connections (the rustls pieces are shared: `maitred-tls`).
//!
//! - Clients: maitred's handshake offers CLIENT_SSL when the listener has a certificate; a
//!   client that sets it sends a short SSL request, then the TLS handshake, then its real
//!   handshake response inside TLS. `tls_required` refuses clients that do not.
//! - Servers: the upstream URL's `ssl-mode` (as MySQL's client option: DISABLED,
//!   PREFERRED (default), REQUIRED, VERIFY_CA, VERIFY_IDENTITY) and `ssl-ca`.
//!
//! Spec: <https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html>
//! (SSL handshake) and <https://dev.mysql.com/doc/refman/8.0/en/connection-options.html#option_general_ssl-mode>.

pub use maitred_tls::{ClientTls, Stream, TlsError};
use maitred_tls::{TlsConnect, Verification};
use std::path::Path;
use tokio::net::TcpStream;

/// MySQL's `--ssl-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disabled,
    /// TLS when the server offers it, without verification (MySQL's default).
    Preferred,
    /// TLS or no connection, without verification.
    Required,
    /// The chain must lead to `ssl-ca`; the host name is not checked.
    VerifyCa,
    /// Chain and host name.
    VerifyIdentity,
}

impl SslMode {
    /// Parses an `ssl-mode` value (case-insensitive, as MySQL's clients accept it).
    pub fn parse(s: &str) -> Result<SslMode, TlsError> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "DISABLED" => SslMode::Disabled,
            "PREFERRED" => SslMode::Preferred,
            "REQUIRED" => SslMode::Required,
            "VERIFY_CA" => SslMode::VerifyCa,
            "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
            _ => {
                return Err(TlsError::Setting(format!(
                    "unknown ssl-mode \"{s}\" (expected DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY)"
                )))
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disabled => "DISABLED",
            SslMode::Preferred => "PREFERRED",
            SslMode::Required => "REQUIRED",
            SslMode::VerifyCa => "VERIFY_CA",
            SslMode::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }

    /// Whether a server without TLS is refused.
    pub fn requires_tls(self) -> bool {
        !matches!(self, SslMode::Disabled | SslMode::Preferred)
    }
}

/// How maitred talks TLS to a pool's server.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub mode: SslMode,
    connect: Option<TlsConnect>,
}

impl ServerTls {
    pub fn disabled() -> ServerTls {
        ServerTls {
            mode: SslMode::Disabled,
            connect: None,
        }
    }

    /// Settings that failed to load: every connection attempt fails (never a silent
    /// downgrade to plain text).
    pub fn refusing() -> ServerTls {
        ServerTls {
            mode: SslMode::VerifyIdentity,
            connect: None,
        }
    }

    /// The TLS client for `ssl-mode` / `ssl-ca` and the server's host name.
    pub fn new(mode: SslMode, ca: Option<&Path>, host: &str) -> Result<ServerTls, TlsError> {
        let verification = match mode {
            SslMode::Disabled => return Ok(ServerTls::disabled()),
            SslMode::Preferred | SslMode::Required => Verification::None,
            SslMode::VerifyCa | SslMode::VerifyIdentity => {
                let ca = ca.ok_or_else(|| {
                    TlsError::Setting(format!(
                        "ssl-mode={} needs ssl-ca (a CA bundle) in the upstream URL",
                        mode.name()
                    ))
                })?;
                if mode == SslMode::VerifyCa {
                    Verification::Chain(ca.to_path_buf())
                } else {
                    Verification::Full(ca.to_path_buf())
                }
            }
        };
        Ok(ServerTls {
            mode,
            connect: Some(TlsConnect::new(&verification, host)?),
        })
    }

    /// Whether maitred asks for TLS when the server offers it.
    pub fn wanted(&self) -> bool {
        self.connect.is_some()
    }

    /// The TLS handshake, once the SSL request is sent.
    pub async fn connect(&self, tcp: TcpStream) -> std::io::Result<Stream> {
        match &self.connect {
            Some(c) => c.connect(tcp).await,
            None => Ok(Stream::Plain(tcp)),
        }
    }
}

/// The upstream URL parameters that are TLS settings (not passed on to the server).
pub const URL_PARAMS: [&str; 2] = ["ssl-mode", "ssl-ca"];

/// The upstream URL parameter naming the server's Unix socket, used instead of host and port
/// (`mysql://app:secret@localhost/app?socket=/run/mysqld/mysqld.sock`).
pub const SOCKET_PARAM: &str = "socket";

fn url_param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// TLS towards the server from the upstream URL's parameters (`ssl-mode`, default
/// PREFERRED, and `ssl-ca`). Over a Unix socket there is no TLS, as with MySQL's own
/// clients, so an ssl-mode that demands it is refused there rather than silently ignored.
pub fn server_tls(params: &[(String, String)], host: &str) -> Result<ServerTls, TlsError> {
    let mode = SslMode::parse(url_param(params, "ssl-mode").unwrap_or("PREFERRED"))?;
    if let Some(path) = url_param(params, SOCKET_PARAM) {
        if mode.requires_tls() {
            return Err(TlsError::Setting(format!(
                "ssl-mode={} cannot be met over the Unix socket {path} (no TLS there); use host and port, or ssl-mode=DISABLED",
                mode.name()
            )));
        }
        return Ok(ServerTls::disabled());
    }
    ServerTls::new(mode, url_param(params, "ssl-ca").map(Path::new), host)
}

/// The server's Unix socket from the upstream URL's `socket` parameter, if any.
pub fn server_socket(params: &[(String, String)]) -> Option<std::path::PathBuf> {
    url_param(params, SOCKET_PARAM).map(std::path::PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_verification_needs_a_ca() {
        assert_eq!(
            SslMode::parse("verify_identity").ok(),
            Some(SslMode::VerifyIdentity)
        );
        assert_eq!(SslMode::parse("PREFERRED").ok(), Some(SslMode::Preferred));
        let e = SslMode::parse("prefer")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("VERIFY_IDENTITY"), "{e}");
        let e = ServerTls::new(SslMode::VerifyCa, None, "db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("ssl-ca"), "{e}");
        assert!(ServerTls::new(SslMode::Required, None, "db").is_ok_and(|t| t.wanted()));
        assert!(!ServerTls::new(SslMode::Disabled, None, "db").is_ok_and(|t| t.wanted()));
        assert!(SslMode::Required.requires_tls() && !SslMode::Preferred.requires_tls());
        let params = vec![("ssl-mode".to_owned(), "disabled".to_owned())];
        assert!(server_tls(&params, "db").is_ok_and(|t| !t.wanted()));
    }

    #[test]
    fn a_unix_socket_has_no_tls_and_refuses_a_mode_that_demands_it() {
        let socket = ("socket".to_owned(), "/run/mysqld/mysqld.sock".to_owned());
        let params = vec![socket.clone()];
        assert!(server_tls(&params, "localhost").is_ok_and(|t| !t.wanted()));
        assert_eq!(
            server_socket(&params).as_deref(),
            Some(Path::new("/run/mysqld/mysqld.sock"))
        );
        let params = vec![socket, ("ssl-mode".to_owned(), "required".to_owned())];
        let e = server_tls(&params, "localhost")
            .expect_err("REQUIRED over a socket")
            .to_string();
        assert!(
            e.contains("ssl-mode=REQUIRED") && e.contains("/run/mysqld/mysqld.sock"),
            "{e}"
        );
        assert_eq!(server_socket(&[]), None);
        assert!(server_tls(&[], "db").is_ok_and(|t| t.mode == SslMode::Preferred));
    }
}
