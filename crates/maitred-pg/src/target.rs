//! Where and as whom maitred connects to the PostgreSQL server of a pool.

use maitred_frontend::{Password, ServerAddr};
use std::path::{Path, PathBuf};

/// The upstream server of a pool and the identity maitred logs in with.
#[derive(Clone, Debug)]
pub struct ServerTarget {
    /// Host and port, or the server's Unix socket ([`socket_in`] its directory).
    pub server: ServerAddr,
    pub user: String,
    pub password: Option<Password>,
    /// Logs in without a password, with what the client's own login revealed (auth_query
    /// users); when set, `password` is not used.
    pub passthrough: Option<std::sync::Arc<crate::auth::passthrough::PassthroughLogin>>,
    pub database: String,
    /// Extra startup parameters from the upstream URL (e.g. `options`).
    pub startup_params: Vec<(String, String)>,
    /// TLS towards the server (the URL's sslmode / sslrootcert).
    pub tls: crate::tls::ServerTls,
}

/// The server's Unix socket in `dir` (libpq's `host=/directory`): `<dir>/.s.PGSQL.<port>`.
pub fn socket_in(dir: &Path, port: u16) -> PathBuf {
    dir.join(format!(".s.PGSQL.{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_password() {
        let t = ServerTarget {
            server: ServerAddr::tcp("db", 5432),
            user: "app".into(),
            password: Some("hunter2".into()),
            passthrough: None,
            database: "app".into(),
            startup_params: vec![],
            tls: crate::tls::ServerTls::disabled(),
        };
        let s = format!("{t:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("db:5432"));
        let socket = socket_in(Path::new("/run/postgresql"), 5433);
        assert_eq!(socket, Path::new("/run/postgresql/.s.PGSQL.5433"));
    }
}
