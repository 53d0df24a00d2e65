//! Regions, realms and OCI hosts: the one place that knows which region belongs to which realm,
//! each realm's domain, the default endpoints derived from them, which hosts are OCI's (the
//! re-signing proxy opens only those), and the user's `NO_PROXY` rules (used by the proxy and by
//! woci's own HTTP client alike, so the two never disagree).

use crate::error::{Error, Result};
use std::net::IpAddr;
use url::Url;

/// Regions outside `oc1` and their realm, as the OCI Python SDK 2.189.0 lists them
/// (`oci/regions_definitions.py` `REGION_REALMS`); every other region is `oc1`.
#[rustfmt::skip]
const REGION_REALMS: &[(&str, &str)] = &[
    ("ap-chiyoda-1", "oc8"), ("ap-chuncheon-2", "oc35"), ("ap-dcc-canberra-1", "oc10"), ("ap-dcc-gazipur-1", "oc15"),
    ("ap-ibaraki-1", "oc8"), ("ap-seoul-2", "oc35"), ("ap-suwon-1", "oc35"), ("eu-budapest-1", "oc51"),
    ("eu-crissier-1", "oc24"), ("eu-dcc-dublin-1", "oc14"), ("eu-dcc-dublin-2", "oc14"), ("eu-dcc-milan-1", "oc14"),
    ("eu-dcc-milan-2", "oc14"), ("eu-dcc-rating-1", "oc14"), ("eu-dcc-rating-2", "oc14"), ("eu-dcc-zurich-1", "oc24"),
    ("eu-frankfurt-2", "oc19"), ("eu-jovanovac-1", "oc20"), ("eu-madrid-2", "oc19"), ("me-abudhabi-2", "oc29"),
    ("me-abudhabi-3", "oc26"), ("me-abudhabi-4", "oc29"), ("me-alain-1", "oc26"), ("me-alrayyan-1", "oc21"),
    ("me-dcc-doha-1", "oc21"), ("me-dcc-muscat-1", "oc9"), ("me-ibri-1", "oc9"), ("sa-riodejaneiro-1", "oc52"),
    ("uk-gov-cardiff-1", "oc4"), ("uk-gov-london-1", "oc4"), ("us-ashburn-2", "oc42"), ("us-gov-ashburn-1", "oc3"),
    ("us-gov-chicago-1", "oc3"), ("us-gov-phoenix-1", "oc3"), ("us-langley-1", "oc2"), ("us-luke-1", "oc2"),
    ("us-newark-1", "oc42"), ("us-somerset-1", "oc23"), ("us-thames-1", "oc23"),
];

/// Region short codes (`iad`, `phx`, …) and the region they name (`REGIONS_SHORT_NAMES`).
#[rustfmt::skip]
const REGION_SHORT_NAMES: &[(&str, &str)] = &[
    ("aga", "us-saltlake-2"), ("ahu", "me-abudhabi-3"), ("ams", "eu-amsterdam-1"), ("arn", "eu-stockholm-1"),
    ("auh", "me-abudhabi-1"), ("avf", "eu-crissier-1"), ("avz", "eu-dcc-zurich-1"), ("beg", "eu-jovanovac-1"),
    ("bgy", "eu-dcc-milan-1"), ("bno", "ap-chuncheon-2"), ("bog", "sa-bogota-1"), ("bom", "ap-mumbai-1"),
    ("brs", "uk-gov-cardiff-1"), ("cdg", "eu-paris-1"), ("cwl", "uk-cardiff-1"), ("dac", "ap-dcc-gazipur-1"),
    ("dln", "ap-suwon-1"), ("doh", "me-dcc-doha-1"), ("dtm", "eu-dcc-rating-2"), ("dtz", "ap-seoul-2"),
    ("dus", "eu-dcc-rating-1"), ("dxb", "me-dubai-1"), ("ebb", "us-somerset-1"), ("ebl", "us-thames-1"),
    ("fra", "eu-frankfurt-1"), ("gru", "sa-saopaulo-1"), ("hnw", "sa-riodejaneiro-1"), ("hsg", "ap-batam-1"),
    ("hyd", "ap-hyderabad-1"), ("iad", "us-ashburn-1"), ("ibr", "me-ibri-1"), ("icn", "ap-seoul-1"),
    ("jbp", "ap-kulai-2"), ("jed", "me-jeddah-1"), ("jnb", "af-johannesburg-1"), ("jsk", "eu-budapest-1"),
    ("kix", "ap-osaka-1"), ("lej", "af-casablanca-1"), ("lfi", "us-langley-1"), ("lhr", "uk-london-1"),
    ("lin", "eu-milan-1"), ("ltn", "uk-gov-london-1"), ("luf", "us-luke-1"), ("mad", "eu-madrid-1"),
    ("mct", "me-dcc-muscat-1"), ("mel", "ap-melbourne-1"), ("mrs", "eu-marseille-1"), ("mty", "mx-monterrey-1"),
    ("mtz", "il-jerusalem-1"), ("mxp", "eu-dcc-milan-2"), ("nja", "ap-chiyoda-1"), ("nrq", "eu-turin-1"),
    ("nrt", "ap-tokyo-1"), ("onm", "ap-delhi-1"), ("ord", "us-chicago-1"), ("orf", "eu-madrid-3"),
    ("ork", "eu-dcc-dublin-1"), ("pgc", "us-newark-1"), ("phx", "us-phoenix-1"), ("pia", "us-gov-chicago-1"),
    ("qro", "mx-queretaro-1"), ("rba", "me-alain-1"), ("ric", "us-gov-ashburn-1"), ("rkt", "me-abudhabi-2"),
    ("ruh", "me-riyadh-1"), ("scl", "sa-santiago-1"), ("shj", "me-abudhabi-4"), ("sin", "ap-singapore-1"),
    ("sjc", "us-sanjose-1"), ("snn", "eu-dcc-dublin-2"), ("str", "eu-frankfurt-2"), ("syd", "ap-sydney-1"),
    ("tus", "us-gov-phoenix-1"), ("ukb", "ap-ibaraki-1"), ("vap", "sa-valparaiso-1"), ("vcp", "sa-vinhedo-1"),
    ("vll", "eu-madrid-2"), ("vve", "me-alrayyan-1"), ("wga", "ap-dcc-canberra-1"), ("xsp", "ap-singapore-2"),
    ("yny", "ap-chuncheon-1"), ("yul", "ca-montreal-1"), ("yxj", "us-ashburn-2"), ("yyz", "ca-toronto-1"),
    ("zrh", "eu-zurich-1"),
];

/// The realm's second-level domain (the `{realm domain}` of OCI service hosts, as oci-cli's
/// realm table has it), for a realm key such as `oc1`.
pub(crate) fn realm_domain(realm: &str) -> Option<String> {
    let realm = realm.to_ascii_lowercase();
    let n: u32 = realm.strip_prefix("oc")?.parse().ok()?;
    Some(match n {
        1 => "oraclecloud.com".into(),
        2 | 3 => "oraclegovcloud.com".into(),
        4 => "oraclegovcloud.uk".into(),
        19 => "oraclecloud.eu".into(),
        n if n >= 8 => format!("oraclecloud{n}.com"),
        _ => return None,
    })
}

/// The region a short code names (`iad` → `us-ashburn-1`); other input is returned lowercased.
pub(crate) fn canonical_region(region: &str) -> String {
    let region = region.trim().to_ascii_lowercase();
    REGION_SHORT_NAMES.iter().find(|(short, _)| *short == region).map_or(region, |(_, long)| (*long).to_owned())
}

/// The domain of a region's realm (the region may be a short code): the realm the SDK places it
/// in, else `oc1` (the SDK's default too, when no region metadata says otherwise). A new region of
/// another realm needs `auth_endpoint` / `WOCI_AUTH_ENDPOINT`.
pub(crate) fn region_domain(region: &str) -> String {
    let region = canonical_region(region);
    let realm = REGION_REALMS.iter().find(|(r, _)| *r == region).map_or("oc1", |(_, realm)| realm);
    realm_domain(realm).unwrap_or_else(|| "oraclecloud.com".into())
}

/// `https://auth.{region}.{realm domain}`, the OCI SDK's `endpoint_for("auth", region)`. Short
/// codes are expanded; a region containing `.` is taken as a full domain (`https://auth.{region}`),
/// as the SDK does.
pub(crate) fn auth_endpoint_for_region(region: &str) -> Result<Url> {
    let region = region.trim().to_ascii_lowercase();
    let valid = !region.is_empty()
        && !region.starts_with(['.', '-'])
        && region.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !valid {
        return Err(Error::Config(format!("invalid region `{region}`: expected an identifier such as `us-ashburn-1`")));
    }
    let host = if region.contains('.') {
        format!("auth.{region}")
    } else {
        format!("auth.{}.{}", canonical_region(&region), region_domain(&region))
    };
    Url::parse(&format!("https://{host}")).map_err(|e| Error::Config(format!("invalid region `{region}`: {e}")))
}

/// The realm number whose domain is `domain` (`oraclecloud.com` → 1, `oraclecloud8.com` → 8):
/// the inverse of [`realm_domain`], so host matching and endpoint building share one list.
pub(crate) fn realm_of_domain(domain: &str) -> Option<u32> {
    let domain = domain.to_ascii_lowercase();
    let n = match domain.as_str() {
        "oraclecloud.com" => 1,
        "oraclegovcloud.com" => 2,
        "oraclegovcloud.uk" => 4,
        "oraclecloud.eu" => 19,
        // `oraclecloud08.com` or `oraclecloud+8.com` parse too, and fail the round trip below.
        d => d.strip_prefix("oraclecloud")?.strip_suffix(".com")?.parse().ok()?,
    };
    (realm_domain(&format!("oc{n}")).as_deref() == Some(domain.as_str())).then_some(n)
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

/// The `host:port` of an `https://` service endpoint (`--endpoint`, `oci_cli_rc`), for the
/// re-sign list; `None` for other schemes (the proxy only sees HTTPS) or an unparsable URL.
pub fn endpoint_authority(endpoint: &str) -> Option<String> {
    let url = url::Url::parse(endpoint.trim()).ok()?;
    if url.scheme() != "https" {
        return None;
    }
    Some(format!("{}:{}", url.host_str()?, url.port_or_known_default()?))
}

/// True for hosts in an OCI realm: `*.oraclecloud.com`, `*.oraclegovcloud.com`,
/// `*.oraclegovcloud.uk`, `*.oraclecloud.eu`, `*.oraclecloudNN.com` and `*.customer-oci.com`
/// (dual-stack `*.ds.oci.oraclecloud.com` included). Nothing broader: an opened host loses
/// end-to-end TLS with the child, so other hosts are tunnelled.
pub fn is_oci_realm_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let mut labels = host.rsplitn(3, '.');
    let (Some(tld), Some(sld), Some(_)) = (labels.next(), labels.next(), labels.next()) else { return false };
    // Object Storage dedicated endpoints: `<ns>.objectstorage.<region>.oci.customer-oci.com`.
    host.ends_with(".customer-oci.com") || realm_of_domain(&format!("{sld}.{tld}")).is_some()
}

/// The user's `NO_PROXY` list: `*`, exact hosts, domain suffixes (`.example.com` or
/// `example.com` both match subdomains), `host:port`, IP addresses and IPv4/IPv6 CIDR blocks.
#[derive(Debug, Clone, Default)]
pub struct NoProxy {
    entries: Vec<String>,
}

/// `[host]` for an IPv6 address, for a `host:port`.
pub(crate) fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// An IPv6 address without the brackets of a URL or a `host:port`.
pub(crate) fn unbracket(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

impl NoProxy {
    /// Parses a comma (or space) separated list.
    pub fn parse(list: &str) -> NoProxy {
        NoProxy {
            entries: list.split([',', ' ']).map(|e| e.trim().to_ascii_lowercase()).filter(|e| !e.is_empty()).collect(),
        }
    }

    /// True when `host:port` must be reached directly, not through the upstream proxy.
    pub fn bypass(&self, host: &str, port: u16) -> bool {
        let host = unbracket(host).trim_end_matches('.').to_ascii_lowercase();
        let ip: Option<IpAddr> = host.parse().ok();
        self.entries.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            let unbracketed = || (unbracket(entry), None);
            let (name, entry_port) = split_host_port(entry).map_or_else(unbracketed, |(h, p)| (h, Some(p)));
            if entry_port.is_some_and(|p| p != port) {
                return false;
            }
            if let (Some(ip), Some((net, bits))) = (ip, parse_cidr(name)) {
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
    let (a, n, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u128::from(u32::from(a)), u128::from(u32::from(n)), 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        _ => return false,
    };
    // The bits past the prefix may differ; a shift by the whole width leaves nothing to compare.
    bits <= width && (a ^ n).checked_shr(u32::from(width - bits)).is_none_or(|rest| rest == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_endpoints_per_realm() {
        let cases = [
            ("us-ashburn-1", "https://auth.us-ashburn-1.oraclecloud.com/"),
            ("US-Phoenix-1", "https://auth.us-phoenix-1.oraclecloud.com/"),
            ("us-langley-1", "https://auth.us-langley-1.oraclegovcloud.com/"),
            ("us-luke-1", "https://auth.us-luke-1.oraclegovcloud.com/"),
            ("us-gov-ashburn-1", "https://auth.us-gov-ashburn-1.oraclegovcloud.com/"),
            ("uk-gov-london-1", "https://auth.uk-gov-london-1.oraclegovcloud.uk/"),
            ("ap-chiyoda-1", "https://auth.ap-chiyoda-1.oraclecloud8.com/"),
            ("ap-ibaraki-1", "https://auth.ap-ibaraki-1.oraclecloud8.com/"),
            ("my-region.example.com", "https://auth.my-region.example.com/"),
        ];
        for (region, want) in cases {
            assert_eq!(auth_endpoint_for_region(region).unwrap().as_str(), want, "{region}");
        }
        for (region, want) in [
            ("iad", "https://auth.us-ashburn-1.oraclecloud.com/"),
            ("us-gov-chicago-1", "https://auth.us-gov-chicago-1.oraclegovcloud.com/"),
            ("eu-frankfurt-2", "https://auth.eu-frankfurt-2.oraclecloud.eu/"),
            ("eu-frankfurt-1", "https://auth.eu-frankfurt-1.oraclecloud.com/"),
            ("me-ibri-1", "https://auth.me-ibri-1.oraclecloud9.com/"),
            ("ap-dcc-canberra-1", "https://auth.ap-dcc-canberra-1.oraclecloud10.com/"),
            ("us-ashburn-2", "https://auth.us-ashburn-2.oraclecloud42.com/"),
            ("some-new-region-1", "https://auth.some-new-region-1.oraclecloud.com/"),
        ] {
            assert_eq!(auth_endpoint_for_region(region).unwrap().as_str(), want, "{region}");
        }
        // Every realm the table names has a domain.
        for (region, realm) in REGION_REALMS {
            assert!(realm_domain(realm).is_some(), "{region} {realm}");
        }
        for (_, region) in REGION_SHORT_NAMES {
            assert!(!region.contains(|c: char| c.is_ascii_uppercase()), "{region}");
        }
        assert!(auth_endpoint_for_region("").is_err());
        assert!(auth_endpoint_for_region(".evil").is_err());
        assert!(auth_endpoint_for_region("a/b").is_err());
        assert!(auth_endpoint_for_region("us ashburn").is_err());
        assert_eq!(realm_domain("oc10").as_deref(), Some("oraclecloud10.com"));
        assert_eq!(realm_domain("oc19").as_deref(), Some("oraclecloud.eu"));
        assert_eq!(realm_domain("oc3").as_deref(), Some("oraclegovcloud.com"));
        assert_eq!(realm_domain("oc5"), None);
        assert_eq!(realm_domain("x1"), None);
    }

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

    #[test]
    fn realm_domains_round_trip() {
        for n in 1..=60 {
            if let Some(d) = realm_domain(&format!("oc{n}")) {
                let back = realm_of_domain(&d).unwrap();
                assert_eq!(realm_domain(&format!("oc{back}")), Some(d));
            }
        }
        assert_eq!(realm_of_domain("oraclecloud08.com"), None);
        assert_eq!(realm_of_domain("oraclecloud5.com"), None);
        assert_eq!(realm_of_domain("example.com"), None);
    }
}
