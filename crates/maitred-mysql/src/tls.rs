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

/// How maitred talks TLS to a pool's server (and how it protects the password where there
/// is no TLS: the server's RSA public key, `server-public-key-path`).
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub mode: SslMode,
    connect: Option<TlsConnect>,
    /// The server's RSA public key (PEM) for caching_sha2_password full authentication
    /// over plain TCP; without it maitred refuses that exchange there.
    server_public_key: Option<std::sync::Arc<[u8]>>,
}

impl ServerTls {
    pub fn disabled() -> ServerTls {
        ServerTls {
            mode: SslMode::Disabled,
            connect: None,
            server_public_key: None,
        }
    }

    /// Settings that failed to load: every connection attempt fails (never a silent
    /// downgrade to plain text).
    pub fn refusing() -> ServerTls {
        ServerTls {
            mode: SslMode::VerifyIdentity,
            connect: None,
            server_public_key: None,
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
            server_public_key: None,
        })
    }

    /// The server's RSA public key maitred was given (`server-public-key-path`), if any.
    pub fn server_public_key(&self) -> Option<&[u8]> {
        self.server_public_key.as_deref()
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
pub const URL_PARAMS: [&str; 3] = ["ssl-mode", "ssl-ca", SERVER_PUBLIC_KEY_PARAM];

/// The upstream URL parameter naming a PEM file with the server's RSA public key (as MySQL's
/// client option `--server-public-key-path`): caching_sha2_password full authentication
/// over plain TCP encrypts the password with it instead of asking the server for its key.
pub const SERVER_PUBLIC_KEY_PARAM: &str = "server-public-key-path";

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
    let key = server_public_key(params)?;
    let mut tls = if let Some(path) = url_param(params, SOCKET_PARAM) {
        if mode.requires_tls() {
            return Err(TlsError::Setting(format!(
                "ssl-mode={} cannot be met over the Unix socket {path} (no TLS there); use host and port, or ssl-mode=DISABLED",
                mode.name()
            )));
        }
        ServerTls::disabled()
    } else {
        ServerTls::new(mode, url_param(params, "ssl-ca").map(Path::new), host)?
    };
    tls.server_public_key = key;
    Ok(tls)
}

/// The server's RSA public key from `server-public-key-path`: read at start, and it must
/// be a PEM public key (a wrong file stops the start instead of the first login).
fn server_public_key(
    params: &[(String, String)],
) -> Result<Option<std::sync::Arc<[u8]>>, TlsError> {
    let Some(path) = url_param(params, SERVER_PUBLIC_KEY_PARAM) else {
        return Ok(None);
    };
    let pem = std::fs::read(path).map_err(|e| {
        TlsError::Setting(format!(
            "{SERVER_PUBLIC_KEY_PARAM}={path}: cannot read the server's public key: {e}"
        ))
    })?;
    // The key must be usable: encrypt a test value with it.
    if crate::auth::rsa_encrypted_password(b"check", &[0u8; 20], &pem).is_none() {
        return Err(TlsError::Setting(format!(
            "{SERVER_PUBLIC_KEY_PARAM}={path}: not an RSA public key in PEM form (the server's public_key.pem, or SHOW STATUS LIKE 'Caching_sha2_password_rsa_public_key')"
        )));
    }
    Ok(Some(std::sync::Arc::from(pem)))
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

    /// `server-public-key-path`: read and checked at start; a wrong file stops the start
    /// with the parameter's name.
    #[test]
    fn the_servers_public_key_is_configured_in_the_upstream_url() {
        let dir = std::env::temp_dir().join(format!("maitred-pubkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("public_key.pem");
        let key = crate::auth::rsa_key::RsaKeyPair::generate().expect("key");
        std::fs::write(&good, key.public_pem()).expect("write");
        let bad = dir.join("not_a_key.pem");
        std::fs::write(&bad, "hello").expect("write");
        let with = |path: &Path| {
            vec![(
                SERVER_PUBLIC_KEY_PARAM.to_owned(),
                path.display().to_string(),
            )]
        };
        let tls = server_tls(&with(&good), "db").expect("a good key loads");
        assert_eq!(tls.server_public_key(), Some(key.public_pem()));
        // Over the socket too (where it is not needed, but harmless).
        let mut params = with(&good);
        params.push(("socket".to_owned(), "/run/mysqld/mysqld.sock".to_owned()));
        assert!(server_tls(&params, "db").is_ok_and(|t| t.server_public_key().is_some()));
        for path in [bad.clone(), dir.join("missing.pem")] {
            let e = server_tls(&with(&path), "db")
                .expect_err("refused")
                .to_string();
            assert!(e.contains(SERVER_PUBLIC_KEY_PARAM), "{e}");
        }
        assert!(server_tls(&[], "db").is_ok_and(|t| t.server_public_key().is_none()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
