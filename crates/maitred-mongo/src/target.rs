//! Where and as whom maitred connects to the MongoDB server of a pool.

use maitred_frontend::{Password, ServerAddr};

/// The upstream server of a pool and the identity maitred logs in with.
#[derive(Clone, Debug)]
pub struct ServerTarget {
    /// Host and port (MongoDB has no Unix socket here).
    pub server: ServerAddr,
    /// Empty: the server needs no authentication.
    pub user: String,
    pub password: Option<Password>,
    /// The database the user is defined in (`authSource`, default the URL's database).
    pub auth_source: String,
    /// `authMechanism` from the URL (SCRAM-SHA-256 by default).
    pub mechanism: crate::auth::scram::Mechanism,
    /// `compressors` from the URL: offered to the server in hello (none: no compression).
    pub compressors: Vec<crate::codec::compressed::Compressor>,
    /// TLS from the URL's `tls`/`tlsCAFile`/... options; `None`: plain TCP.
    pub tls: Option<crate::tls::TlsConnect>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_password() {
        let t = ServerTarget {
            server: ServerAddr::tcp("db", 27017),
            user: "app".into(),
            password: Some("hunter2".into()),
            auth_source: "admin".into(),
            mechanism: crate::auth::scram::Mechanism::Sha256,
            compressors: vec![],
            tls: None,
        };
        let s = format!("{t:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(s.contains("db:27017"));
    }
}
