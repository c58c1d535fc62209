//! TLS on both legs (the rustls pieces are shared, in `maitred-tls`).
//!
//! - Clients: MongoDB has no request to upgrade; a TLS client starts with its ClientHello.
//!   A listener with a certificate looks at the first bytes: a TLS handshake record is
//!   answered with TLS, anything else is served in plain (like mongod's `allowTLS`), unless
//!   the pool requires TLS (`tls_required`), in which case a plain client's first request
//!   gets an error naming the fix, and it is closed.
//! - Servers: the upstream URL's options, as drivers read them: `tls=true` (or `ssl=true`),
//!   `tlsCAFile` (the CA bundle; chain and host name checked), `tlsAllowInvalidHostnames`
//!   (chain only), `tlsAllowInvalidCertificates` or `tlsInsecure` (no verification).
//!   maitred has no system trust store, so verifying needs `tlsCAFile`.
//!
//! Spec: <https://github.com/mongodb/specifications/blob/master/source/uri-options/uri-options.md>.

use maitred_tls::Verification;
pub use maitred_tls::{ClientTls, Stream, TlsConnect, TlsError};
use std::path::PathBuf;
use tokio::net::TcpStream;

/// How a client connection starts: the TLS handshake when the client opens with one.
pub async fn accept(tcp: TcpStream, tls: Option<&ClientTls>) -> std::io::Result<Stream> {
    match tls {
        Some(tls) if maitred_tls::starts_with_tls_handshake(&tcp).await? => tls.accept(tcp).await,
        _ => Ok(Stream::Plain(tcp)),
    }
}

/// The reply to a plain client's first request on a pool that requires TLS.
pub fn plain_refused(pool: &str) -> bson::RawDocumentBuf {
    crate::errors_to_client::error_doc(
        crate::errors_to_client::code::UNAUTHORIZED,
        "Unauthorized",
        &format!("maitred: pool \"{pool}\" requires TLS (tls_required); connect with tls=true"),
        &[],
    )
}

/// TLS towards the server from the upstream URL's options (name, value), names compared
/// without case as drivers do; `None`: plain TCP.
pub fn server_tls(params: &[(String, String)], host: &str) -> Result<Option<TlsConnect>, TlsError> {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let flag = |name: &str| -> Result<bool, TlsError> {
        match get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(TlsError::Setting(format!(
                "upstream URL option {name}={v}: expected true or false"
            ))),
        }
    };
    let ca = get("tlsCAFile").map(PathBuf::from);
    let insecure = flag("tlsInsecure")? || flag("tlsAllowInvalidCertificates")?;
    let any_tls_option = ca.is_some()
        || insecure
        || flag("tlsAllowInvalidHostnames")?
        || get("tlsInsecure").is_some()
        || get("tlsAllowInvalidCertificates").is_some();
    let enabled = match (get("tls"), get("ssl")) {
        (Some(_), _) => flag("tls")?,
        (None, Some(_)) => flag("ssl")?,
        // Drivers turn TLS on when a TLS option is given without `tls`.
        (None, None) => any_tls_option,
    };
    if !enabled {
        return Ok(None);
    }
    let verification =
        match (insecure, ca) {
            (true, _) => Verification::None,
            (false, Some(ca)) if flag("tlsAllowInvalidHostnames")? => Verification::Chain(ca),
            (false, Some(ca)) => Verification::Full(ca),
            (false, None) => return Err(TlsError::Setting(
                "upstream URL has tls=true but no tlsCAFile: maitred has no system trust store; \
                 add tlsCAFile=<CA bundle> (or tlsAllowInvalidCertificates=true for encryption \
                 without verification)"
                    .to_owned(),
            )),
        };
    TlsConnect::new(&verification, host).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn url_options_choose_tls_and_verification() {
        let none = server_tls(&params(&[("authSource", "admin")]), "db");
        assert!(matches!(none, Ok(None)));
        let off = server_tls(&params(&[("tls", "false")]), "db");
        assert!(matches!(off, Ok(None)));
        let insecure = server_tls(
            &params(&[("tls", "true"), ("tlsAllowInvalidCertificates", "true")]),
            "db",
        );
        assert!(matches!(insecure, Ok(Some(_))));
        // tlsInsecure alone turns TLS on, as in drivers.
        assert!(matches!(
            server_tls(&params(&[("tlsinsecure", "true")]), "db"),
            Ok(Some(_))
        ));
        let no_ca = server_tls(&params(&[("ssl", "true")]), "db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(no_ca.contains("tlsCAFile"), "{no_ca}");
        let bad = server_tls(&params(&[("tls", "yes")]), "db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(bad.contains("tls=yes"), "{bad}");
        let missing = server_tls(&params(&[("tlsCAFile", "/nonexistent/ca.pem")]), "db")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
    }
}
