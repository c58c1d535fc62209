//! Where and as whom maitred connects to the PostgreSQL server of a pool.

/// The upstream server of a pool and the identity maitred logs in with.
#[derive(Clone)]
pub struct ServerTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    /// Logs in without a password, with what the client's own login revealed (auth_query
    /// users); when set, `password` is not used.
    pub passthrough: Option<std::sync::Arc<crate::auth::passthrough::PassthroughLogin>>,
    pub database: String,
    /// Extra startup parameters from the upstream URL (e.g. `options`).
    pub startup_params: Vec<(String, String)>,
    /// TLS towards the server (the URL's sslmode / sslrootcert).
    pub tls: crate::tls::ServerTls,
    /// The directory of the server's Unix socket (libpq's `host=/directory`): connections
    /// go to `<dir>/.s.PGSQL.<port>` instead of host and port.
    pub socket_dir: Option<std::path::PathBuf>,
}

impl ServerTarget {
    /// The server's Unix socket, when the target names one.
    pub fn socket_path(&self) -> Option<std::path::PathBuf> {
        self.socket_dir
            .as_ref()
            .map(|dir| dir.join(format!(".s.PGSQL.{}", self.port)))
    }

    /// `host:port` (or the socket's path), for connecting and for messages.
    pub fn addr(&self) -> String {
        if let Some(path) = self.socket_path() {
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
            .field("passthrough", &self.passthrough)
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
            port: 5432,
            user: "app".into(),
            password: Some("hunter2".into()),
            passthrough: None,
            database: "app".into(),
            startup_params: vec![],
            tls: crate::tls::ServerTls::disabled(),
            socket_dir: None,
        };
        let s = format!("{t:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("db:5432"));
    }
}
