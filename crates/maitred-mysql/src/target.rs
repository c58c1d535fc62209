//! Where and as whom maitred connects to the MySQL/MariaDB server of a pool.

use maitred_frontend::{Password, ServerAddr};

/// The upstream server of a pool and the identity maitred logs in with.
#[derive(Clone, Debug)]
pub struct ServerTarget {
    /// Host and port, or the server's Unix socket (the URL's `socket`).
    pub server: ServerAddr,
    pub user: String,
    pub password: Option<Password>,
    /// The database selected at login; `None` selects none.
    pub database: Option<String>,
    /// TLS towards the server (`ssl-mode`, `ssl-ca` of the upstream URL).
    pub tls: crate::tls::ServerTls,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_password() {
        let t = ServerTarget {
            server: ServerAddr::tcp("db", 3306),
            user: "app".into(),
            password: Some("hunter2".into()),
            database: Some("app".into()),
            tls: crate::tls::ServerTls::disabled(),
        };
        let s = format!("{t:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("db:3306"));
    }
}
