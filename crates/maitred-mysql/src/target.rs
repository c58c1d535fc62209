//! Where and as whom maitred connects to the MySQL/MariaDB server of a pool.

/// The upstream server of a pool and the identity maitred logs in with.
#[derive(Clone)]
pub struct ServerTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    /// The database selected at login; `None` selects none.
    pub database: Option<String>,
    /// TLS towards the server (`ssl-mode`, `ssl-ca` of the upstream URL).
    pub tls: crate::tls::ServerTls,
    /// The server's Unix socket (the URL's `socket`): used instead of host and port.
    pub socket: Option<std::path::PathBuf>,
}

impl ServerTarget {
    /// `host:port` (or the socket's path), for messages.
    pub fn addr(&self) -> String {
        if let Some(path) = &self.socket {
            path.display().to_string()
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Debug for ServerTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTarget")
            .field("addr", &self.addr())
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("tls", &self.tls.mode)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_password() {
        let t = ServerTarget {
            host: "db".into(),
            port: 3306,
            user: "app".into(),
            password: Some("hunter2".into()),
            database: Some("app".into()),
            tls: crate::tls::ServerTls::disabled(),
            socket: None,
        };
        let s = format!("{t:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("db:3306"));
    }
}
