//! The Java trust store: PKCS#12 (RFC 7292) trusted-certificate entries without password, MAC
//! or encryption, as JDK 17's `keytool -importcert` writes them with
//! `keystore.pkcs12.certProtectionAlgorithm=NONE` and `keystore.pkcs12.macAlgorithm=NONE`. Written
//! by hand (a few DER encodings): the PKCS#12 crates encrypt and MAC every store and bring a second
//! generation of the RustCrypto crates, while a trust store holds nothing secret.

use rustls::pki_types::CertificateDer;

/// A PKCS#12 trust store (RFC 7292) without password, MAC or encryption, which Java reads with
/// no password (JDK 17 tested): one certificate bag per distinct certificate, named `woci-<n>`.
pub(super) fn trust_store(certs: &[CertificateDer<'_>]) -> Vec<u8> {
    let mut entries: Vec<(String, &[u8])> = Vec::new();
    for cert in certs {
        if !entries.iter().any(|(_, seen)| *seen == cert.as_ref()) {
            entries.push((format!("woci-{}", entries.len() + 1), cert.as_ref()));
        }
    }
    pkcs12(&entries)
}

/// The PFX of `(alias, DER certificate)` trusted entries, as `keytool -importcert` writes them
/// with `keystore.pkcs12.certProtectionAlgorithm=NONE` and `keystore.pkcs12.macAlgorithm=NONE`:
/// each bag carries a `friendlyName` and Oracle's trusted-key-usage attribute (without it the JDK
/// ignores a certificate that has no private key).
fn pkcs12(entries: &[(String, &[u8])]) -> Vec<u8> {
    let bags: Vec<Vec<u8>> = entries
        .iter()
        .map(|(alias, cert)| {
            let cert_bag = der::seq(&[&der::oid(oid::X509_CERTIFICATE), &der::explicit0(&der::octets(cert))]);
            let name: Vec<u8> = alias.encode_utf16().flat_map(u16::to_be_bytes).collect();
            let mut attributes = [
                der::seq(&[&der::oid(oid::FRIENDLY_NAME), &der::set(&[&der::tlv(der::BMP_STRING, &name)])]),
                der::seq(&[
                    &der::oid(oid::ORACLE_TRUSTED_KEY_USAGE),
                    &der::set(&[&der::oid(oid::ANY_EXTENDED_KEY_USAGE)]),
                ]),
            ];
            attributes.sort(); // DER orders a SET OF by encoding
            der::seq(&[
                &der::oid(oid::CERT_BAG),
                &der::explicit0(&cert_bag),
                &der::set(&[&attributes[0], &attributes[1]]),
            ])
        })
        .collect();
    let bags: Vec<&[u8]> = bags.iter().map(Vec::as_slice).collect();
    let authenticated_safe = der::seq(&[&der::data(&der::seq(&bags))]);
    der::seq(&[&der::tlv(der::INTEGER, &[3]), &der::data(&authenticated_safe)])
}

/// Object identifiers, as arcs.
mod oid {
    /// PKCS#7 `data`.
    pub(super) const DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 1];
    /// PKCS#12 `certBag`.
    pub(super) const CERT_BAG: &[u64] = &[1, 2, 840, 113549, 1, 12, 10, 1, 3];
    /// PKCS#9 `x509Certificate`.
    pub(super) const X509_CERTIFICATE: &[u64] = &[1, 2, 840, 113549, 1, 9, 22, 1];
    /// PKCS#9 `friendlyName`.
    pub(super) const FRIENDLY_NAME: &[u64] = &[1, 2, 840, 113549, 1, 9, 20];
    /// Oracle's `trustedKeyUsage`: the JDK's mark of a trusted certificate entry.
    pub(super) const ORACLE_TRUSTED_KEY_USAGE: &[u64] = &[2, 16, 840, 1, 113894, 746875, 1, 1];
    /// `anyExtendedKeyUsage`: trusted for every purpose (what `keytool -importcert` records).
    pub(super) const ANY_EXTENDED_KEY_USAGE: &[u64] = &[2, 5, 29, 37, 0];
}

/// The few DER encodings the trust store needs.
mod der {
    pub(super) const INTEGER: u8 = 0x02;
    const OCTET_STRING: u8 = 0x04;
    const OBJECT_IDENTIFIER: u8 = 0x06;
    pub(super) const BMP_STRING: u8 = 0x1e;
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const CONTEXT_0: u8 = 0xa0;

    /// Tag, definite length, content.
    pub(super) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    pub(super) fn seq(parts: &[&[u8]]) -> Vec<u8> {
        tlv(SEQUENCE, &parts.concat())
    }

    pub(super) fn set(parts: &[&[u8]]) -> Vec<u8> {
        tlv(SET, &parts.concat())
    }

    pub(super) fn explicit0(inner: &[u8]) -> Vec<u8> {
        tlv(CONTEXT_0, inner)
    }

    pub(super) fn octets(content: &[u8]) -> Vec<u8> {
        tlv(OCTET_STRING, content)
    }

    /// `ContentInfo` of type `data` holding `content`.
    pub(super) fn data(content: &[u8]) -> Vec<u8> {
        seq(&[&oid(super::oid::DATA), &explicit0(&octets(content))])
    }

    pub(super) fn oid(arcs: &[u64]) -> Vec<u8> {
        let mut body = Vec::new();
        let mut push = |mut v: u64| {
            let mut chunk = vec![(v & 0x7f) as u8];
            v >>= 7;
            while v > 0 {
                chunk.push(0x80 | (v & 0x7f) as u8);
                v >>= 7;
            }
            body.extend(chunk.iter().rev());
        };
        push(arcs[0] * 40 + arcs[1]);
        arcs[2..].iter().for_each(|a| push(*a));
        tlv(OBJECT_IDENTIFIER, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA certificate and the trust store `keytool -importcert -alias emu` (JDK 17, without
    /// certificate protection and MAC) made of it: the independent reference for the encoding.
    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBfDCCASOgAwIBAgIUFxyqZFbXC83S5LQsgqWZZC3GgmAwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQd29jaSBlbXVsYXRvciBDQTAgFw03NTAxMDEwMDAwMDBaGA80
MDk2MDEwMTAwMDAwMFowGzEZMBcGA1UEAwwQd29jaSBlbXVsYXRvciBDQTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABLyy32Au+GxFClkkVD2SO9Dn/4a9+9bZQalP
73/fxCZ/M9R1OYnXWvJXjPyBqUYSsl9LovZv2DLHD0boETAv0DijQzBBMA8GA1Ud
DwEB/wQFAwMHhgAwHQYDVR0OBBYEFGIZMb4wuD4CevpeGNz8zeCBD52bMA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgSt1YiOJIS1avP0KP5v4FsAhv
Vm6gTdduDiYyl2mvkwMCIEEWO4UWvVhqh3T0iRjAddeFpQ+M3BYQjPBWrzFLku4G
-----END CERTIFICATE-----
";
    const KEYTOOL_P12_HEX: &str = "\
308202170201033082021006092a864886f70d010701a0820201048201fd308201f9308201f506092a864886f70d010701a0\
8201e6048201e2308201de308201da060b2a864886f70d010c0a0103a082019830820194060a2a864886f70d01091601a082\
0184048201803082017c30820123a0030201020214171caa6456d70bcdd2e4b42c82a599642dc68260300a06082a8648ce3d\
040302301b3119301706035504030c10776f636920656d756c61746f722043413020170d3735303130313030303030305a18\
0f34303936303130313030303030305a301b3119301706035504030c10776f636920656d756c61746f722043413059301306\
072a8648ce3d020106082a8648ce3d03010703420004bcb2df602ef86c450a5924543d923bd0e7ff86bdfbd6d941a94fef7f\
dfc4267f33d4753989d75af2578cfc81a94612b25f4ba2f66fd832c70f46e811302fd038a3433041300f0603551d0f0101ff\
04050303078600301d0603551d0e04160414621931be30b83e027afa5e18dcfccde0810f9d9b300f0603551d130101ff0405\
30030101ff300a06082a8648ce3d040302034700304402204add5888e2484b56af3f428fe6fe05b0086f566ea04dd76e0e26\
329769af9303022041163b8516bd586a8774f48918c075d785a50f8cdc16108cf056af314b92ee06312f301506092a864886\
f70d01091431081e060065006d00753016060c6086480186f966adca7b010131060604551d2500";

    fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
        rustls_pemfile::certs(&mut pem.as_bytes()).collect::<std::result::Result<_, _>>().unwrap()
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The `(tag, content)` elements of a DER sequence's or set's content.
    fn elements(mut der: &[u8]) -> Vec<(u8, &[u8])> {
        let mut out = Vec::new();
        while !der.is_empty() {
            let tag = der[0];
            let (len, head) = match der[1] {
                n if n < 0x80 => (usize::from(n), 2),
                n => {
                    let k = usize::from(n & 0x7f);
                    (der[2..2 + k].iter().fold(0usize, |a, b| a << 8 | usize::from(*b)), 2 + k)
                }
            };
            out.push((tag, &der[head..head + len]));
            der = &der[head + len..];
        }
        out
    }

    #[test]
    fn one_certificate_is_encoded_byte_for_byte_as_keytool_does() {
        let ca = certs(CA_PEM);
        assert_eq!(hex(&pkcs12(&[("emu".to_owned(), ca[0].as_ref())])), KEYTOOL_P12_HEX);
    }

    #[test]
    fn every_distinct_certificate_becomes_a_trusted_entry_without_mac() {
        let ca = crate::proxy::ca::Ca::new().unwrap();
        let mut bundle = certs(&format!("{}{CA_PEM}", ca.cert_pem()));
        bundle.push(bundle[1].clone()); // the same root twice: one entry
        let store = trust_store(&bundle);
        let pfx = elements(elements(&store)[0].1);
        assert_eq!(pfx.len(), 2, "version and content, no MAC");
        assert_eq!(pfx[0], (0x02, &[3u8][..]));
        // ContentInfo(data) → OCTET STRING → AuthenticatedSafe → ContentInfo(data) → SafeContents
        let unwrap_data = |content_info: &[u8]| -> Vec<u8> {
            let parts = elements(content_info);
            assert_eq!(parts[0].1, &der::oid(oid::DATA)[2..]);
            let octets = elements(parts[1].1);
            assert_eq!(octets[0].0, 0x04);
            octets[0].1.to_vec()
        };
        let authenticated_safe = unwrap_data(pfx[1].1);
        let infos = elements(&authenticated_safe);
        assert_eq!(infos.len(), 1);
        let safe_contents = unwrap_data(elements(infos[0].1)[0].1);
        let bags = elements(elements(&safe_contents)[0].1);
        assert_eq!(bags.len(), 2);
        for (i, (_, bag)) in bags.iter().enumerate() {
            let parts = elements(bag);
            assert_eq!(parts[0].1, &der::oid(oid::CERT_BAG)[2..]);
            let cert_bag = elements(elements(parts[1].1)[0].1);
            assert_eq!(cert_bag[0].1, &der::oid(oid::X509_CERTIFICATE)[2..]);
            assert_eq!(elements(cert_bag[1].1)[0].1, bundle[i].as_ref(), "certificate {i} kept as is");
            let attributes = elements(parts[2].1);
            let trusted = der::seq(&[
                &der::oid(oid::ORACLE_TRUSTED_KEY_USAGE),
                &der::set(&[&der::oid(oid::ANY_EXTENDED_KEY_USAGE)]),
            ]);
            assert!(attributes.iter().any(|(_, a)| *a == &trusted[2..]), "bag {i} is trusted");
            let name: Vec<u8> = format!("woci-{}", i + 1).encode_utf16().flat_map(u16::to_be_bytes).collect();
            assert!(attributes.iter().any(|(_, a)| a.windows(name.len()).any(|w| w == name)), "bag {i} is named");
        }
    }

    #[test]
    fn der_lengths_and_object_identifiers() {
        assert_eq!(der::tlv(4, &[0; 127])[..2], [4, 127]);
        assert_eq!(der::tlv(4, &[0; 128])[..3], [4, 0x81, 128]);
        assert_eq!(der::tlv(4, &[0; 300])[..4], [4, 0x82, 1, 44]);
        assert_eq!(der::tlv(4, &vec![0; 70_000])[..5], [4, 0x83, 1, 0x11, 0x70]);
        assert_eq!(hex(&der::oid(oid::DATA)), "06092a864886f70d010701");
        assert_eq!(hex(&der::oid(oid::ORACLE_TRUSTED_KEY_USAGE)), "060c6086480186f966adca7b0101");
        assert_eq!(hex(&der::oid(oid::ANY_EXTENDED_KEY_USAGE)), "0604551d2500");
    }
}
