//! Which CONNECT targets the proxy opens ([`HostMatcher`]: OCI realm hosts plus configured
//! `host[:port]` entries), and which upstream hosts bypass the user's own proxy ([`NoProxy`],
//! the usual `NO_PROXY` rules, from [`crate::realm`]).

use crate::realm::bracket_ipv6;
pub use crate::realm::{endpoint_authority, is_oci_realm_host, split_host_port, NoProxy};

/// Decides whether a CONNECT target is re-signed (opened) or tunnelled untouched.
#[derive(Debug, Clone, Default)]
pub struct HostMatcher {
    /// Match the OCI realm domains (on any port).
    pub oci_realms: bool,
    /// Extra exact entries, lowercase `host:port` (port 443 when the entry had none).
    pub extra: Vec<String>,
}

impl HostMatcher {
    /// OCI realm hosts plus `extra` entries such as `localhost:8443` or `objectstorage.internal`
    /// (port 443 implied). Entries are trimmed and lowercased; empty ones are ignored.
    pub fn oci_and(extra: impl IntoIterator<Item = impl AsRef<str>>) -> HostMatcher {
        HostMatcher { oci_realms: true, ..HostMatcher::only(extra) }
    }

    /// Only the given entries, no realm domains (tests, or a deliberately narrow setup).
    pub fn only(extra: impl IntoIterator<Item = impl AsRef<str>>) -> HostMatcher {
        let extra = extra.into_iter().map(|e| e.as_ref().trim().to_ascii_lowercase()).filter(|e| !e.is_empty());
        let extra = extra.map(|e| match split_host_port(&e) {
            Some((h, p)) => format!("{}:{p}", bracket_ipv6(h.trim_end_matches('.'))),
            None => format!("{}:443", bracket_ipv6(e.trim_end_matches('.'))),
        });
        HostMatcher { oci_realms: false, extra: extra.collect() }
    }

    /// True when requests to `host:port` are opened and re-signed.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        if self.oci_realms && is_oci_realm_host(&host) {
            return true;
        }
        let wanted = format!("{}:{port}", bracket_ipv6(&host));
        self.extra.contains(&wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_entries_match_exact_host_and_port() {
        let m = HostMatcher::only(["localhost:8443", " Internal.Example ", "", "::1", "[::1]:9"]);
        assert!(m.matches("localhost", 8443));
        assert!(!m.matches("localhost", 443));
        assert!(m.matches("internal.example", 443));
        assert!(!m.matches("objectstorage.us-ashburn-1.oraclecloud.com", 443));
        assert!(m.matches("::1", 443));
        assert!(m.matches("[::1]", 9));
        let oci = HostMatcher::oci_and(Vec::<String>::new());
        assert!(oci.matches("objectstorage.us-ashburn-1.oraclecloud.com", 443));
        assert!(!oci.matches("github.com", 443));
    }
    #[test]
    fn endpoint_hosts() {
        assert_eq!(endpoint_authority("https://localhost:8443/n/x").as_deref(), Some("localhost:8443"));
        assert_eq!(endpoint_authority(" https://os.internal.example ").as_deref(), Some("os.internal.example:443"));
        assert_eq!(endpoint_authority("https://[::1]:9").as_deref(), Some("[::1]:9"));
        assert_eq!(endpoint_authority("http://localhost:8080"), None);
        assert_eq!(endpoint_authority("not a url"), None);
        let m = HostMatcher::oci_and(endpoint_authority("https://LocalHost:8443"));
        assert!(m.matches("localhost", 8443) && !m.matches("localhost", 443));
    }
}
