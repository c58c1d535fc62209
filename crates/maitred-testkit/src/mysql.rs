//! The throwaway MariaDB that `scripts/test.sh` starts.
//!
//! Env [`MYSQL_URL_ENV`]: `mysql://app:app_secret@127.0.0.1:PORT/app`, a MariaDB capped at
//! 20 connections (scripts/lib/mariadb.sh); `app` may also use database `sbtest`.

/// URL of the test MariaDB as user `app`.
pub const MYSQL_URL_ENV: &str = "MAITRED_TEST_MYSQL_URL";

/// Path of that MariaDB's Unix socket (readable by maitred's user).
pub const MYSQL_SOCKET_ENV: &str = "MAITRED_TEST_MYSQL_SOCKET";

const SKIP_MESSAGE: &str = "skipping: no MariaDB (run scripts/test.sh)";

/// `MAITRED_TEST_MYSQL_SOCKET`, if set and non-empty. scripts/test.sh sets it with
/// `MAITRED_TEST_MYSQL_URL`, so the tests treat a missing one like a missing URL.
pub fn mysql_socket() -> Option<std::path::PathBuf> {
    std::env::var(MYSQL_SOCKET_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(std::path::PathBuf::from)
}

/// `MAITRED_TEST_MYSQL_URL`, if set and non-empty.
pub fn mysql_url() -> Option<String> {
    std::env::var(MYSQL_URL_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// The test MariaDB URL, or `None` after printing a skip notice.
///
/// # Panics
/// Under CI (`CI=true`) a missing server is a failure, not a skip.
pub fn require_mysql() -> Option<String> {
    require_mysql_with(mysql_url(), crate::is_ci())
}

fn require_mysql_with(url: Option<String>, ci: bool) -> Option<String> {
    match url {
        Some(url) => Some(url),
        None if ci => panic!(
            "{MYSQL_URL_ENV} is not set but CI=true: the MySQL tests must run in CI (use scripts/test.sh)"
        ),
        None => {
            eprintln!("{SKIP_MESSAGE}");
            None
        }
    }
}

/// The parts of a `mysql://user:password@host:port/db` URL the tests need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlUrl {
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub database: String,
}

impl MysqlUrl {
    /// Parses the simple URLs scripts/test.sh exports (no percent-encoding).
    ///
    /// # Panics
    /// If the URL is not of that form.
    pub fn parse(url: &str) -> MysqlUrl {
        let rest = url
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or_else(|| panic!("not a URL: {url:?}"));
        let (userinfo, hostpath) = rest
            .rsplit_once('@')
            .unwrap_or_else(|| panic!("URL has no user: {url:?}"));
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (hostport, database) = hostpath.split_once('/').unwrap_or((hostpath, ""));
        let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "3306"));
        MysqlUrl {
            user: user.to_owned(),
            password: password.to_owned(),
            host: host.to_owned(),
            port: port
                .parse()
                .unwrap_or_else(|e| panic!("bad port in {url:?}: {e}")),
            database: database.split('?').next().unwrap_or("").to_owned(),
        }
    }

    /// The URL with host:port replaced by `addr`.
    pub fn with_addr(&self, addr: std::net::SocketAddr) -> String {
        format!(
            "mysql://{}:{}@{}/{}",
            self.user, self.password, addr, self.database
        )
    }

    /// The URL as text.
    pub fn url(&self) -> String {
        format!(
            "mysql://{}:{}@{}:{}/{}",
            self.user, self.password, self.host, self.port, self.database
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_or_fails_by_ci() {
        assert_eq!(require_mysql_with(None, false), None);
        assert_eq!(
            require_mysql_with(Some("mysql://a@b/c".into()), true),
            Some("mysql://a@b/c".into())
        );
        let r = std::panic::catch_unwind(|| require_mysql_with(None, true));
        assert!(r.is_err());
    }

    #[test]
    fn parses_and_swaps_address() {
        let u = MysqlUrl::parse("mysql://app:app_secret@127.0.0.1:3307/app");
        assert_eq!(
            (
                u.user.as_str(),
                u.password.as_str(),
                u.port,
                u.database.as_str()
            ),
            ("app", "app_secret", 3307, "app")
        );
        let addr: std::net::SocketAddr = "127.0.0.1:6000".parse().expect("addr");
        assert_eq!(
            u.with_addr(addr),
            "mysql://app:app_secret@127.0.0.1:6000/app"
        );
        assert_eq!(u.url(), "mysql://app:app_secret@127.0.0.1:3307/app");
    }
}
