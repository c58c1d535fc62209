//! PostgreSQL URLs split into parts, and the small edits tests make to them.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};

// ---------------------------------------------------------------------------
// URLs

/// A `postgres://user:password@host:port/database?params` URL, split into
/// parts without decoding (test URLs use plain ASCII).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgUrl {
    /// `postgres` or `postgresql` (or anything else before `://`).
    pub scheme: String,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host as written (IPv6 keeps its brackets).
    pub host: String,
    pub port: Option<u16>,
    /// Path without the leading `/`; empty when absent.
    pub database: String,
    /// Everything after `?`, without the `?`.
    pub query: Option<String>,
}

/// Error from [`PgUrl::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlError(pub String);

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UrlError {}

impl PgUrl {
    /// Parse a URL of the form `scheme://[user[:password]@]host[:port][/db][?query]`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError(format!("no '://' in {url:?}")))?;
        let (before_query, query) = match rest.split_once('?') {
            Some((a, q)) => (a, Some(q.to_owned())),
            None => (rest, None),
        };
        let (authority, database) = match before_query.split_once('/') {
            Some((a, d)) => (a, d.to_owned()),
            None => (before_query, String::new()),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((user, pw)) => (Some(user.to_owned()), Some(pw.to_owned())),
                None => (Some(u.to_owned()), None),
            },
            None => (None, None),
        };
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() {
            return Err(UrlError(format!("no host in {url:?}")));
        }
        Ok(PgUrl {
            scheme: scheme.to_owned(),
            user,
            password,
            host,
            port,
            database,
            query,
        })
    }

    /// `host:port` (port 5432 when absent).
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port.unwrap_or(5432))
    }

    /// Replace host and port with those of `addr`.
    pub fn with_addr(mut self, addr: SocketAddr) -> Self {
        self.host = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        self.port = Some(addr.port());
        self
    }

    pub fn with_password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    pub fn with_user(mut self, user: &str) -> Self {
        self.user = Some(user.to_owned());
        self
    }

    pub fn with_database(mut self, database: &str) -> Self {
        self.database = database.to_owned();
        self
    }
}

impl fmt::Display for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        if !self.database.is_empty() {
            write!(f, "/{}", self.database)?;
        }
        if let Some(q) = &self.query {
            write!(f, "?{q}")?;
        }
        Ok(())
    }
}

fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), UrlError> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| UrlError(format!("unclosed '[' in {hostport:?}")))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(UrlError(format!("junk after ']' in {hostport:?}"))),
        };
        (format!("[{ip}]"), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|e| UrlError(format!("bad port {p:?}: {e}")))
        })
        .transpose()?;
    Ok((host, port))
}

/// `url` with its host and port replaced by `addr` (e.g. `127.0.0.1:6432`).
///
/// # Panics
/// If `url` is not a `scheme://...` URL or `addr` is not `ip:port`.
pub fn swap_host_port(url: &str, addr: &str) -> String {
    let addr: SocketAddr = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("not an ip:port address: {addr:?}"));
    PgUrl::parse(url)
        .unwrap_or_else(|e| panic!("cannot parse URL {url:?}: {e}"))
        .with_addr(addr)
        .to_string()
}

/// Parse a URL, panicking with the URL in the message (tests only).
pub fn pg_url_parts(url: &str) -> PgUrl {
    PgUrl::parse(url).unwrap_or_else(|e| panic!("cannot parse URL {url:?}: {e}"))
}
