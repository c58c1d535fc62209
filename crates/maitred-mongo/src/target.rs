//! Where and as whom maitred connects to the MongoDB server of a pool.

/// The upstream server of a pool and the identity maitred logs in with.
#[derive(Clone)]
pub struct ServerTarget {
    pub host: String,
    pub port: u16,
    /// Empty: the server needs no authentication.
    pub user: String,
    pub password: Option<String>,
    /// The database the user is defined in (`authSource`, default the URL's database).
    pub auth_source: String,
    /// `authMechanism` from the URL (SCRAM-SHA-256 by default).
    pub mechanism: crate::auth::scram::Mechanism,
    /// `compressors` from the URL: offered to the server in hello (none: no compression).
    pub compressors: Vec<crate::codec::compressed::Compressor>,
    /// TLS from the URL's `tls`/`tlsCAFile`/... options; `None`: plain TCP.
    pub tls: Option<crate::tls::TlsConnect>,
}

impl ServerTarget {
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
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
            .field("auth_source", &self.auth_source)
            .field("tls", &self.tls.is_some())
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
            port: 27017,
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
