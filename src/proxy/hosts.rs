//! Which CONNECT targets the proxy opens ([`HostMatcher`]: OCI realm hosts plus configured
//! `host[:port]` entries), and which upstream hosts bypass the user's own proxy ([`NoProxy`],
//! the usual `NO_PROXY` rules).

use std::net::IpAddr;

/// The second-level domains of the OCI realms (protocol.md §3.3). `oraclecloudNN.com` is matched
/// by pattern, see [`is_oci_realm_host`].
const REALM_DOMAINS: &[&str] = &[
    "oraclecloud.com",
    "oraclegovcloud.com",
    "oraclegovcloud.uk",
    "oraclecloud.eu",
    // Object Storage dedicated endpoints: `<ns>.objectstorage.<region>.oci.customer-oci.com`.
    "customer-oci.com",
];

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
    pub fn oci_and<I, S>(extra: I) -> HostMatcher
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        HostMatcher { oci_realms: true, extra: normalize_entries(extra) }
    }

    /// Only the given entries, no realm domains (tests, or a deliberately narrow setup).
    pub fn only<I, S>(extra: I) -> HostMatcher
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        HostMatcher { oci_realms: false, extra: normalize_entries(extra) }
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

/// The `host:port` of an `https://` service endpoint (`--endpoint`, `oci_cli_rc`), for the
/// re-sign list; `None` for other schemes (the proxy only sees HTTPS) or an unparsable URL.
pub fn endpoint_authority(endpoint: &str) -> Option<String> {
    let url = url::Url::parse(endpoint.trim()).ok()?;
    if url.scheme() != "https" {
        return None;
    }
    Some(format!("{}:{}", url.host_str()?, url.port_or_known_default()?))
}

fn normalize_entries<I, S>(extra: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    extra
        .into_iter()
        .filter_map(|e| {
            let e = e.as_ref().trim().to_ascii_lowercase();
            if e.is_empty() {
                return None;
            }
            Some(match split_host_port(&e) {
                Some((h, p)) => format!("{}:{p}", bracket_ipv6(h.trim_end_matches('.'))),
                None => format!("{}:443", bracket_ipv6(e.trim_end_matches('.'))),
            })
        })
        .collect()
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Splits `host:port` / `[v6]:port`; `None` when there is no port.
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?.parse().ok()?;
        return Some((h, port));
    }
    let (h, p) = s.rsplit_once(':')?;
    if h.contains(':') {
        return None; // bare IPv6 address
    }
    Some((h, p.parse().ok()?))
}

/// True for hosts in an OCI realm: `*.oraclecloud.com`, `*.oraclegovcloud.com`,
/// `*.oraclegovcloud.uk`, `*.oraclecloud.eu`, `*.oraclecloudNN.com` and `*.customer-oci.com`
/// (dual-stack `*.ds.oci.oraclecloud.com` included). Nothing broader: an opened host loses
/// end-to-end TLS with the child, so other hosts are tunnelled.
pub fn is_oci_realm_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = host.split('.').collect();
    if labels.len() < 3 {
        return false;
    }
    let in_domain = |d: &str| host.ends_with(&format!(".{d}"));
    if REALM_DOMAINS.iter().any(|d| in_domain(d)) {
        return true;
    }
    // oraclecloudNN.com (oc8, oc9, oc10, oc14, …).
    let sld = labels[labels.len() - 2];
    labels[labels.len() - 1] == "com"
        && sld
            .strip_prefix("oraclecloud")
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// The user's `NO_PROXY` list: `*`, exact hosts, domain suffixes (`.example.com` or
/// `example.com` both match subdomains), `host:port`, IP addresses and IPv4/IPv6 CIDR blocks.
#[derive(Debug, Clone, Default)]
pub struct NoProxy {
    entries: Vec<String>,
}

impl NoProxy {
    /// Parses a comma (or space) separated list.
    pub fn parse(list: &str) -> NoProxy {
        NoProxy {
            entries: list.split([',', ' ']).map(|e| e.trim().to_ascii_lowercase()).filter(|e| !e.is_empty()).collect(),
        }
    }

    /// The list as the comma-separated text reqwest understands.
    pub fn as_list(&self) -> String {
        self.entries.join(",")
    }

    /// True when `host:port` must be reached directly, not through the upstream proxy.
    pub fn bypass(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        let ip: Option<IpAddr> = host.parse().ok();
        self.entries.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            let (name, entry_port) = match split_host_port(entry) {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (entry.trim_start_matches('[').trim_end_matches(']').to_owned(), None),
            };
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            if let (Some(ip), Some((net, bits))) = (ip, parse_cidr(&name)) {
                return in_cidr(ip, net, bits);
            }
            let name = name.trim_start_matches("*.").trim_start_matches('.');
            host == name || host.ends_with(&format!(".{name}"))
        })
    }
}

fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    match s.split_once('/') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => s.parse().ok().map(|ip: IpAddr| (ip, if ip.is_ipv4() { 32 } else { 128 })),
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_hosts() {
        for h in [
            "objectstorage.us-ashburn-1.oraclecloud.com",
            "iaas.us-langley-1.oraclegovcloud.com",
            "identity.uk-gov-london-1.oraclegovcloud.uk",
            "auth.ap-chiyoda-1.oraclecloud8.com",
            "iaas.eu-x.oraclecloud.eu",
            "iaas.x-y-1.oraclecloud24.com",
            "ns.objectstorage.us-ashburn-1.oci.customer-oci.com",
            "iaas.us-ashburn-1.ds.oci.oraclecloud.com",
            "IAAS.US-ASHBURN-1.ORACLECLOUD.COM.",
        ] {
            assert!(is_oci_realm_host(h), "{h}");
        }
        for h in [
            "oraclecloud.com",
            "example.com",
            "oraclecloud.com.evil.example",
            "notoraclecloud.com",
            "x.oraclecloudx.com",
            "x.oraclecloud.com.",
            "oci.example",
            "x.oci.example.com",
            "api.oci.github.io",
        ] {
            assert_eq!(is_oci_realm_host(h), h == "x.oraclecloud.com.", "{h}");
        }
    }

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

    #[test]
    fn no_proxy_rules() {
        let n = NoProxy::parse("localhost, .corp.example,example.org:8443, 10.0.0.0/8 ,::1");
        assert!(n.bypass("localhost", 443));
        assert!(n.bypass("a.corp.example", 443));
        assert!(n.bypass("corp.example", 443));
        assert!(!n.bypass("xcorp.example", 443));
        assert!(n.bypass("example.org", 8443));
        assert!(!n.bypass("example.org", 443));
        assert!(n.bypass("10.1.2.3", 443));
        assert!(!n.bypass("11.1.2.3", 443));
        assert!(n.bypass("[::1]", 443));
        assert!(NoProxy::parse("*").bypass("anything", 1));
        assert!(!NoProxy::parse("").bypass("anything", 1));
    }

    #[test]
    fn split_host_port_forms() {
        assert_eq!(split_host_port("a:1"), Some(("a", 1)));
        assert_eq!(split_host_port("[::1]:2"), Some(("::1", 2)));
        assert_eq!(split_host_port("::1"), None);
        assert_eq!(split_host_port("a"), None);
    }
}
