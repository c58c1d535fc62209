//! The throwaway SecantusDB (MongoDB wire protocol) that `scripts/test.sh` starts.
//!
//! Env [`MONGO_URL_ENV`]: `mongodb://app:app_secret@127.0.0.1:PORT/app?authSource=admin`,
//! a server capped at 20 connections (scripts/lib/secantus.sh).

/// URL of the test SecantusDB as user `app`.
pub const MONGO_URL_ENV: &str = "MAITRED_TEST_MONGO_URL";

const SKIP_MESSAGE: &str = "skipping: no SecantusDB (run scripts/test.sh)";

/// `MAITRED_TEST_MONGO_URL`, if set and non-empty.
pub fn mongo_url() -> Option<String> {
    std::env::var(MONGO_URL_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// The test SecantusDB URL, or `None` after printing a skip notice.
///
/// # Panics
/// Under CI (`CI=true`) a missing server is a failure, not a skip.
pub fn require_mongo() -> Option<String> {
    require_mongo_with(mongo_url(), crate::is_ci())
}

fn require_mongo_with(url: Option<String>, ci: bool) -> Option<String> {
    match url {
        Some(url) => Some(url),
        None if ci => panic!(
            "{MONGO_URL_ENV} is not set but CI=true: the MongoDB tests must run in CI (use scripts/test.sh)"
        ),
        None => {
            eprintln!("{SKIP_MESSAGE}");
            None
        }
    }
}

/// `url` (`mongodb://[user:pass@]host:port/...`) with host:port replaced by `addr`.
pub fn with_addr(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("mongodb", url));
    let (userinfo, hostpath) = match rest.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let tail = hostpath
        .find(['/', '?'])
        .map(|i| &hostpath[i..])
        .unwrap_or("");
    format!("{scheme}://{userinfo}{addr}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_or_fails_by_ci() {
        assert_eq!(require_mongo_with(None, false), None);
        assert_eq!(
            require_mongo_with(Some("u".into()), true).as_deref(),
            Some("u")
        );
        assert!(std::panic::catch_unwind(|| require_mongo_with(None, true)).is_err());
    }

    #[test]
    fn swaps_address() {
        let a: std::net::SocketAddr = "127.0.0.1:7000".parse().expect("addr");
        assert_eq!(
            with_addr("mongodb://app:pw@127.0.0.1:27017/app?authSource=admin", a),
            "mongodb://app:pw@127.0.0.1:7000/app?authSource=admin"
        );
        assert_eq!(with_addr("mongodb://db:1", a), "mongodb://127.0.0.1:7000");
    }
}
