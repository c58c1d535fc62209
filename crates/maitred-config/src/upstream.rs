//! [`UpstreamUrl`]: where a pool's server connections go, parsed from a
//! `postgres://user:password@host:port/database?param=value` URL, and
//! [`Protocol`]: which wire protocol the upstream speaks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::{Host, Url};

use crate::error::ConfigError;
use crate::secret::{Secret, REDACTED};

/// The wire protocol of an upstream server (and of the pool's clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// PostgreSQL's frontend/backend protocol, version 3.
    Postgres,
    /// The MySQL client/server protocol (MySQL and MariaDB).
    Mysql,
    /// The MongoDB wire protocol (OP_MSG).
    Mongodb,
}

impl Protocol {
    /// Every supported protocol.
    pub const ALL: &'static [Protocol] = &[Protocol::Postgres, Protocol::Mysql, Protocol::Mongodb];

    /// The URL schemes that select this protocol; the first one is the
    /// canonical one used when printing URLs.
    pub fn schemes(self) -> &'static [&'static str] {
        match self {
            Protocol::Postgres => &["postgres", "postgresql"],
            Protocol::Mysql => &["mysql", "mariadb"],
            Protocol::Mongodb => &["mongodb"],
        }
    }

    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        match self {
            Protocol::Postgres => 5432,
            Protocol::Mysql => 3306,
            Protocol::Mongodb => 27017,
        }
    }

    /// The protocol a URL scheme selects (case-insensitive).
    pub fn from_scheme(scheme: &str) -> Option<Protocol> {
        Protocol::ALL.iter().copied().find(|protocol| {
            protocol
                .schemes()
                .iter()
                .any(|s| s.eq_ignore_ascii_case(scheme))
        })
    }

    /// Every supported scheme, comma separated (for error messages).
    pub fn supported_schemes() -> String {
        Protocol::ALL
            .iter()
            .flat_map(|protocol| protocol.schemes().iter().copied())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.schemes()[0])
    }
}

/// URL query parameters that would duplicate (or hide) parts of the URL.
const RESERVED_PARAMS: &[&str] = &["user", "dbname", "host", "hostaddr", "port"];

/// A parsed upstream URL.
///
/// `Debug` shows the password as `***`; [`UpstreamUrl::redacted`] gives a
/// URL string fit for logs. User, password and database are
/// percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// The protocol the scheme selects.
    pub protocol: Protocol,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port; the protocol's default when the URL names none.
    pub port: u16,
    /// The user maitred logs in to the server as.
    pub user: String,
    /// The password for `user`, if the URL has one.
    pub password: Option<Secret>,
    /// The server-side database; defaults to `user`, as in libpq.
    pub database: String,
    /// The remaining query parameters (e.g. `sslmode`,
    /// `application_name`), decoded, in URL order.
    pub params: Vec<(String, String)>,
}

impl UpstreamUrl {
    /// Parses an upstream URL. Error messages never include the URL (it may
    /// hold a password).
    pub fn parse(text: &str) -> Result<UpstreamUrl, ConfigError> {
        let bad = |reason: String| ConfigError::Upstream(reason);
        let scheme = text.split_once("://").map(|(scheme, _)| scheme);
        let Some(scheme) = scheme else {
            return Err(bad(format!(
                "expected <scheme>://user:password@host:port/database (supported schemes: {})",
                Protocol::supported_schemes()
            )));
        };
        let Some(protocol) = Protocol::from_scheme(scheme) else {
            return Err(bad(format!(
                "unsupported scheme `{}` (supported: {})",
                printable_scheme(scheme),
                Protocol::supported_schemes()
            )));
        };
        let url = Url::parse(text).map_err(|e| bad(e.to_string()))?;

        let host = match url.host() {
            Some(Host::Domain(domain)) => decode(domain, "host")?,
            Some(Host::Ipv4(address)) => address.to_string(),
            Some(Host::Ipv6(address)) => address.to_string(),
            None => return Err(bad("no host".to_owned())),
        };
        if host.is_empty() {
            return Err(bad("no host".to_owned()));
        }
        if host.contains(',') {
            return Err(bad("more than one host is not supported".to_owned()));
        }
        let port = url.port().unwrap_or(protocol.default_port());
        if port == 0 {
            return Err(bad("port 0 is not a valid port".to_owned()));
        }

        let user = decode(url.username(), "user")?;
        // MongoDB servers may run without authentication; the others always log in.
        if user.is_empty() && protocol != Protocol::Mongodb {
            return Err(bad(
                "no user (expected user[:password]@ before the host)".to_owned()
            ));
        }
        let password = match url.password() {
            Some(encoded) => {
                let password = decode(encoded, "password")?;
                (!password.is_empty()).then(|| Secret::new(password))
            }
            None => None,
        };

        let path = url.path().strip_prefix('/').unwrap_or(url.path());
        if path.contains('/') {
            return Err(bad(
                "the path must be a single database name (percent-encode a `/` in it)".to_owned(),
            ));
        }
        // An empty database means: PostgreSQL, the user's name; MySQL, none selected;
        // MongoDB, "admin" (where users live by default).
        let database = match decode(path, "database")? {
            name if name.is_empty() => match protocol {
                Protocol::Postgres => user.clone(),
                Protocol::Mysql => String::new(),
                Protocol::Mongodb => "admin".to_owned(),
            },
            name => name,
        };

        let mut params = Vec::new();
        for (key, value) in url.query_pairs() {
            let key = key.into_owned();
            if key.contains("password") {
                return Err(bad(format!(
                    "parameter `{key}` is not supported: put the password in the URL's user info"
                )));
            }
            // libpq's `host=/directory`: the server's Unix socket in that directory.
            let socket_dir =
                key == "host" && protocol == Protocol::Postgres && value.starts_with('/');
            if key == "host" && !socket_dir {
                return Err(bad(
                    "parameter `host` names only a PostgreSQL Unix socket directory (host=/var/run/postgresql; for MySQL use socket=/path): put a host name in the URL itself"
                        .to_owned(),
                ));
            }
            if RESERVED_PARAMS.contains(&key.as_str()) && !socket_dir {
                return Err(bad(format!(
                    "parameter `{key}` is not supported: put it in the URL itself"
                )));
            }
            params.push((key, value.into_owned()));
        }

        Ok(UpstreamUrl {
            protocol,
            host,
            port,
            user,
            password,
            database,
            params,
        })
    }

    /// The URL with the password replaced by `***`, for logs and summaries.
    pub fn redacted(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let password = if self.password.is_some() {
            format!(":{REDACTED}")
        } else {
            String::new()
        };
        let mut text = format!(
            "{}://{}{}@{}:{}/{}",
            self.protocol,
            encode(&self.user),
            password,
            host,
            self.port,
            encode(&self.database)
        );
        for (index, (key, value)) in self.params.iter().enumerate() {
            let separator = if index == 0 { '?' } else { '&' };
            text.push(separator);
            text.push_str(&encode(key));
            text.push('=');
            text.push_str(&encode(value));
        }
        text
    }
}

/// The scheme as typed, if it is short and plain enough to be a scheme
/// (so a mangled URL is never echoed back).
fn printable_scheme(scheme: &str) -> String {
    let plain = scheme.len() <= 32
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if plain {
        scheme.to_owned()
    } else {
        "<not a scheme>".to_owned()
    }
}

fn decode(text: &str, what: &str) -> Result<String, ConfigError> {
    percent_decode(text).ok_or_else(|| {
        ConfigError::Upstream(format!("the {what} is not valid percent-encoded UTF-8"))
    })
}

/// Percent-decodes `text`; `None` if the result is not UTF-8. A `%` not
/// followed by two hex digits is kept as is.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let high = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
            let low = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
            if let (Some(high), Some(low)) = (high, low) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(byte);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl FromStr for UpstreamUrl {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UpstreamUrl::parse(s)
    }
}

/// Shows the redacted URL.
impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Serializes as the redacted URL string.
impl Serialize for UpstreamUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for UpstreamUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        UpstreamUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> UpstreamUrl {
        UpstreamUrl::parse(text).unwrap()
    }

    fn error(text: &str) -> String {
        UpstreamUrl::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn host_parameter_is_only_a_postgres_socket_directory() {
        let url = parse("postgres://app:pw@localhost:5433/app?host=/var/run/postgresql");
        assert_eq!(
            url.params,
            vec![("host".to_owned(), "/var/run/postgresql".to_owned())]
        );
        assert_eq!(url.port, 5433);
        assert!(error("postgres://app@db/app?host=other").contains("`host`"));
        assert!(error("mysql://app@db/app?host=/run/mysqld").contains("`host`"));
    }

    #[test]
    fn full_url() {
        let url = parse(
            "postgres://app:secret@db.internal:6000/appdb?sslmode=require&application_name=x",
        );
        assert_eq!(url.protocol, Protocol::Postgres);
        assert_eq!(url.host, "db.internal");
        assert_eq!(url.port, 6000);
        assert_eq!(url.user, "app");
        assert_eq!(url.password.as_ref().map(Secret::expose), Some("secret"));
        assert_eq!(url.database, "appdb");
        assert_eq!(
            url.params,
            vec![
                ("sslmode".to_owned(), "require".to_owned()),
                ("application_name".to_owned(), "x".to_owned())
            ]
        );
    }

    #[test]
    fn defaults_port_and_database() {
        let url = parse("postgresql://app@db");
        assert_eq!(url.port, 5432);
        assert_eq!(url.database, "app");
        assert_eq!(url.password, None);
        let url = parse("POSTGRES://app:@db/");
        assert_eq!(url.database, "app");
        assert_eq!(url.password, None, "an empty password is no password");
    }

    #[test]
    fn percent_decoding() {
        let url = parse("postgres://us%40er:p%40ss%3Aw%2Fo%25rd@db/my%20db%2Fx");
        assert_eq!(url.user, "us@er");
        assert_eq!(
            url.password.as_ref().map(Secret::expose),
            Some("p@ss:w/o%rd")
        );
        assert_eq!(url.database, "my db/x");
        assert_eq!(url.redacted(), "postgres://us%40er:***@db:5432/my%20db%2Fx");
        let url = parse("postgres://%C3%A9l%C3%A8ve:pw@db/caf%C3%A9");
        assert_eq!(url.user, "élève");
        assert_eq!(url.database, "café");
    }

    #[test]
    fn ip_hosts() {
        let url = parse("postgres://app:pw@[::1]:5433/app");
        assert_eq!(url.host, "::1");
        assert_eq!(url.redacted(), "postgres://app:***@[::1]:5433/app");
        assert_eq!(parse("postgres://app@127.0.0.1/app").host, "127.0.0.1");
    }

    #[test]
    fn debug_and_display_hide_the_password() {
        let url = parse("postgres://app:hunter2@db/app?sslmode=disable");
        let debug = format!("{url:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("***"), "{debug}");
        assert_eq!(
            url.to_string(),
            "postgres://app:***@db:5432/app?sslmode=disable"
        );
    }

    #[test]
    fn unknown_scheme_names_it_and_the_supported_ones() {
        let message = error("redis://app:hunter2@db/app");
        assert!(message.contains("`redis`"), "{message}");
        assert!(message.contains("postgres, postgresql"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn mysql_and_mongodb_defaults() {
        let my = parse("mysql://app:pw@db");
        assert_eq!(
            (my.protocol, my.port, my.database.as_str()),
            (Protocol::Mysql, 3306, "")
        );
        let mongo = parse("mongodb://db/?authSource=admin");
        assert_eq!(mongo.protocol, Protocol::Mongodb);
        assert_eq!(
            (mongo.port, mongo.user.as_str(), mongo.database.as_str()),
            (27017, "", "admin")
        );
        assert!(
            UpstreamUrl::parse("mysql://db/app").is_err(),
            "mysql needs a user"
        );
    }

    #[test]
    fn errors_never_echo_the_url() {
        for text in [
            "postgres://app:hunter2@db:99999/app",
            "postgres://app:hunter2@/app",
            "postgres://:hunter2@db/app",
            "postgres://app:hunter2@db/app/extra",
            "postgres://app:hunter2@db/app?password=hunter2",
            "postgres://app:hunter2@db/app?host=other",
            "postgres://app:hunter2@h1,h2/app",
            "app:hunter2@db/app",
            "postgres://app:%FF%FE@db/app",
        ] {
            let message = error(text);
            assert!(!message.contains("hunter2"), "{text}: {message}");
        }
        assert!(error("postgres://app:pw@db:0/app").contains("port 0"));
        assert!(error("postgres://:pw@db/app").contains("no user"));
        assert!(error("postgres://app@db/app?hostaddr=10.0.0.1").contains("`hostaddr`"));
    }
}
