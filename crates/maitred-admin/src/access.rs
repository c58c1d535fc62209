//! Who may read what on the admin HTTP endpoint (docs/security.md, "The admin endpoint").
//!
//! Two surfaces share the one listener:
//! - the **probe surface**, `/metrics`, `/healthz`, `/readyz`: aggregate numbers and a
//!   yes/no, needed by Prometheus and the kubelet from the pod network. Anyone who reaches
//!   the listener gets it.
//! - the **detail surface**, everything else (`/pools` today: each pool's listen address,
//!   sizes, queue and counters; any later per-client or control endpoint): only for a peer
//!   on a loopback address (the host itself, the pod's own containers, `kubectl
//!   port-forward`), or a request carrying `Authorization: Bearer <[admin] detail_token>`
//!   when a token is configured. Others get 403.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

/// The paths anyone who reaches the listener may GET.
pub const PROBE_PATHS: &[&str] = &["/metrics", "/healthz", "/readyz"];

/// Whether a request may see the detail surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Probe endpoints only.
    Probes,
    /// Probe and detail endpoints.
    Detail,
}

/// Whether `path` belongs to the probe surface.
pub fn is_probe(path: &str) -> bool {
    PROBE_PATHS.contains(&path)
}

/// The configured bearer token of the detail surface, if any. Debug never shows it.
#[derive(Default)]
pub struct DetailToken(RwLock<Option<Arc<str>>>);

impl std::fmt::Debug for DetailToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DetailToken(***)")
    }
}

impl DetailToken {
    /// Sets or clears the token (at start and after each reload). An empty token counts as
    /// none: it would match a bare `Bearer `.
    pub fn set(&self, token: Option<String>) {
        let token = token.filter(|t| !t.is_empty()).map(Arc::from);
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = token;
    }

    /// Whether a token is configured.
    pub fn is_set(&self) -> bool {
        self.0.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// What a request from `peer` with this `Authorization` header value may see.
    pub fn access(&self, peer: Option<IpAddr>, authorization: Option<&str>) -> Access {
        if peer.is_some_and(|ip| ip.to_canonical().is_loopback()) {
            return Access::Detail;
        }
        let token = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        let (Some(token), Some(sent)) = (token, authorization.and_then(bearer)) else {
            return Access::Probes;
        };
        // Constant-time: the time of a refusal says nothing about how much of a guess was
        // right. (The length may show; the token's length is not the secret.)
        if bool::from(sent.as_bytes().ct_eq(token.as_bytes())) {
            Access::Detail
        } else {
            Access::Probes
        }
    }
}

/// The credentials of `Bearer <token>` (scheme case-insensitive, RFC 6750).
fn bearer(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_start())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn loopback_peers_see_the_detail_surface_others_only_the_probes() {
        let token = DetailToken::default();
        assert_eq!(token.access(ip("127.0.0.1"), None), Access::Detail);
        assert_eq!(token.access(ip("127.8.9.10"), None), Access::Detail);
        assert_eq!(token.access(ip("::1"), None), Access::Detail);
        assert_eq!(token.access(ip("::ffff:127.0.0.1"), None), Access::Detail);
        assert_eq!(token.access(ip("10.1.2.3"), None), Access::Probes);
        assert_eq!(token.access(ip("::ffff:10.1.2.3"), None), Access::Probes);
        assert_eq!(token.access(ip("fd00::2"), None), Access::Probes);
        assert_eq!(token.access(None, None), Access::Probes);
        assert_eq!(
            token.access(ip("10.1.2.3"), Some("Bearer anything")),
            Access::Probes,
            "no token configured: no token opens the detail surface"
        );
    }

    #[test]
    fn the_configured_bearer_token_opens_the_detail_surface() {
        let token = DetailToken::default();
        token.set(Some("s3cret-token-0123456789".into()));
        assert!(token.is_set());
        let outside = ip("10.1.2.3");
        assert_eq!(
            token.access(outside, Some("Bearer s3cret-token-0123456789")),
            Access::Detail
        );
        assert_eq!(
            token.access(outside, Some("bearer   s3cret-token-0123456789 ")),
            Access::Detail
        );
        for wrong in [
            "Bearer s3cret-token-012345678",
            "Bearer s3cret-token-01234567890",
            "Basic s3cret-token-0123456789",
            "s3cret-token-0123456789",
            "Bearer ",
            "",
        ] {
            assert_eq!(
                token.access(outside, Some(wrong)),
                Access::Probes,
                "{wrong:?}"
            );
        }
        token.set(Some(String::new()));
        assert!(!token.is_set(), "an empty token is no token");
        assert_eq!(token.access(outside, Some("Bearer ")), Access::Probes);
        assert_eq!(format!("{token:?}"), "DetailToken(***)");
    }

    #[test]
    fn probe_paths_are_the_three_for_prometheus_and_the_kubelet() {
        assert!(is_probe("/metrics") && is_probe("/healthz") && is_probe("/readyz"));
        assert!(!is_probe("/pools") && !is_probe("/") && !is_probe("/metrics/"));
    }
}
