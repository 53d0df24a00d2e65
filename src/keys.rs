//! The profile's RSA key pair: created once (2048 bits), stored PKCS#8, reused for every token
//! exchange so that processes which cache the key (Go SDK, Terraform) keep working after a renewal.
//! Also the encodings OCI wants: base64 DER SPKI for the exchange, MD5 fingerprint for the config,
//! JWK for comparison with a UPST's `jwk` claim.

use crate::error::{Error, Result};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use md5::{Digest, Md5};
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use std::path::Path;

/// Bits of a key woci creates, and the fewest it accepts (OCI's minimum).
pub const KEY_BITS: usize = 2048;

/// DER of the algorithm identifiers of key types woci cannot use, with their names: id-ecPublicKey
/// (1.2.840.10045.2.1), Ed25519 (1.3.101.112), Ed448 (1.3.101.113), DSA (1.2.840.10040.4.1).
const NOT_RSA: [(&[u8], &str); 4] = [
    (&[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01], "an EC key"),
    (&[0x06, 0x03, 0x2b, 0x65, 0x70], "an Ed25519 key"),
    (&[0x06, 0x03, 0x2b, 0x65, 0x71], "an Ed448 key"),
    (&[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01], "a DSA key"),
];

/// What kind of non-RSA key a PEM holds, if it says so (its label or its PKCS#8 algorithm id).
fn non_rsa_kind(pem: &str) -> Option<&'static str> {
    let labelled = [("EC", "an EC key"), ("DSA", "a DSA key"), ("OPENSSH", "an OpenSSH-format key")];
    if let Some((_, kind)) = labelled.iter().find(|(l, _)| pem.contains(&format!("-----BEGIN {l} PRIVATE KEY-----"))) {
        return Some(kind);
    }
    let start = pem.find("-----BEGIN PRIVATE KEY-----")? + "-----BEGIN PRIVATE KEY-----".len();
    let end = start + pem[start..].find("-----END")?;
    let b64: String = pem[start..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(b64).ok()?;
    // The algorithm identifier sits near the start of a PKCS#8 PrivateKeyInfo.
    let head = &der[..der.len().min(64)];
    NOT_RSA.iter().find(|(oid, _)| head.windows(oid.len()).any(|w| w == *oid)).map(|(_, name)| *name)
}

/// The PEM block of the RSA private key in `pem` (text after its footer, such as the
/// `OCI_API_KEY` marker `oci session authenticate` appends, left out) and whether it is PKCS#8;
/// the checks [`check_pem`] and [`KeyPair::from_pem`] share.
fn rsa_block(pem: &str) -> std::result::Result<(&str, bool), String> {
    if let Some(kind) = non_rsa_kind(pem) {
        return Err(format!("this is {kind}; OCI session keys must be RSA ({KEY_BITS} bits or more)"));
    }
    if pem.contains("ENCRYPTED") {
        return Err("the key is encrypted with a passphrase, which woci does not support".into());
    }
    for (begin, end, pkcs8) in [
        ("-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", true),
        ("-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", false),
    ] {
        let Some(start) = pem.find(begin) else { continue };
        let Some(stop) = pem[start..].find(end) else { return Err("PEM footer missing".into()) };
        return Ok((&pem[start..start + stop + end.len()], pkcs8));
    }
    Err("no RSA private key PEM block found".into())
}

fn too_small(bits: usize) -> std::result::Result<(), String> {
    if bits < KEY_BITS {
        return Err(format!("the RSA key has {bits} bits; OCI needs at least {KEY_BITS}"));
    }
    Ok(())
}

/// Checks that `pem` holds an RSA private key OCI can use — PEM structure, algorithm, size —
/// without loading it (no key validation or precomputation: cheap enough for every call). Gives
/// the modulus (big-endian, no leading zeros), to compare with the key a token is bound to.
pub fn check_pem(pem: &str) -> std::result::Result<Vec<u8>, String> {
    let (block, pkcs8) = rsa_block(pem)?;
    let body = block.lines().filter(|l| !l.starts_with("-----")).collect::<String>();
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    let der = zeroize::Zeroizing::new(STANDARD.decode(b64).map_err(|_| "the PEM body is not base64".to_owned())?);
    let info;
    let rsa_der: &[u8] = if pkcs8 {
        info = rsa::pkcs8::PrivateKeyInfo::try_from(der.as_slice()).map_err(|e| e.to_string())?;
        info.private_key
    } else {
        &der
    };
    let key = rsa::pkcs1::RsaPrivateKey::try_from(rsa_der).map_err(|e| e.to_string())?;
    let m = key.modulus.as_bytes();
    too_small(m.len() * 8 - m.first().map_or(8, |b| b.leading_zeros() as usize))?;
    Ok(m.iter().skip_while(|b| **b == 0).copied().collect())
}

/// Whether a UPST's `jwk` claim names a key other than the one of `modulus` (a claim that is
/// absent or unreadable names none).
pub fn bound_elsewhere(jwk: Option<&str>, modulus: &[u8]) -> bool {
    use rsa::traits::PublicKeyParts;
    jwk.and_then(|j| public_key_from_jwk_json(j).ok()).is_some_and(|k| k.n().to_bytes_be() != modulus)
}

/// An RSA key pair.
#[derive(Clone)]
pub struct KeyPair {
    private: RsaPrivateKey,
    public: RsaPublicKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair({})", self.fingerprint())
    }
}

impl KeyPair {
    /// Generates a new 2048-bit key pair.
    pub fn generate() -> Result<KeyPair> {
        let private = RsaPrivateKey::new(&mut rand::thread_rng(), KEY_BITS)
            .map_err(|e| Error::Other(format!("cannot generate RSA key: {e}")))?;
        Ok(KeyPair { public: private.to_public_key(), private })
    }

    /// Parses a PEM private key (PKCS#8 or PKCS#1), ignoring text after the PEM footer such as the
    /// `OCI_API_KEY` marker `oci session authenticate` appends.
    pub fn from_pem(pem: &str) -> std::result::Result<KeyPair, String> {
        let (block, pkcs8) = rsa_block(pem)?;
        let key = if pkcs8 {
            RsaPrivateKey::from_pkcs8_pem(block).map_err(|e| e.to_string())?
        } else {
            RsaPrivateKey::from_pkcs1_pem(block).map_err(|e| e.to_string())?
        };
        too_small(key.size() * 8)?;
        Ok(KeyPair { public: key.to_public_key(), private: key })
    }

    /// Reads a key file; a damaged file is [`Error::CorruptFile`]; one encrypted with a passphrase
    /// (which `oci` can use, with `pass_phrase`) is a settings error, not damage.
    pub fn load(path: &Path) -> Result<KeyPair> {
        Ok(Self::load_with_text(path)?.0)
    }

    /// [`Self::load`], also giving the file's text (for a caller that looks at more than the key).
    pub fn load_with_text(path: &Path) -> Result<(KeyPair, zeroize::Zeroizing<String>)> {
        let text = crate::fsutil::read_text_bounded(path, crate::fsutil::MAX_INPUT)
            .map(zeroize::Zeroizing::new)
            .map_err(|e| Error::io("cannot read key", path, e))?;
        if text.contains("ENCRYPTED") {
            return Err(Error::Config(format!(
                "the key `{}` is encrypted with a passphrase, which woci cannot sign or renew with (`oci` can); \
                 use a key without one, or run this without `--auto-refresh`",
                path.display()
            )));
        }
        let key = Self::from_pem(&text).map_err(|reason| Error::corrupt(path, reason))?;
        Ok((key, text))
    }

    /// The private key.
    pub fn private(&self) -> &RsaPrivateKey {
        &self.private
    }

    /// The public key.
    pub fn public(&self) -> &RsaPublicKey {
        &self.public
    }

    /// PKCS#8 PEM of the private key (zeroized on drop).
    pub fn private_pem(&self) -> Result<zeroize::Zeroizing<String>> {
        self.private.to_pkcs8_pem(LineEnding::LF).map_err(|e| Error::Other(format!("cannot encode key: {e}")))
    }

    /// PEM SubjectPublicKeyInfo of the public key.
    pub fn public_pem(&self) -> String {
        self.public.to_public_key_pem(LineEnding::LF).unwrap_or_default()
    }

    /// DER SubjectPublicKeyInfo.
    fn spki_der(&self) -> Vec<u8> {
        self.public.to_public_key_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default()
    }

    /// Standard base64 (padded, one line) of the DER SPKI: the token exchange's `public_key`.
    pub fn spki_b64(&self) -> String {
        STANDARD.encode(self.spki_der())
    }

    /// OCI fingerprint: MD5 of the DER SPKI, lowercase hex pairs joined by `:`.
    pub fn fingerprint(&self) -> String {
        Md5::digest(self.spki_der()).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
    }
}

/// Parses the public key from a UPST's `jwk` claim (a JSON string holding an RSA JWK).
pub fn public_key_from_jwk_json(jwk: &str) -> std::result::Result<RsaPublicKey, String> {
    #[derive(serde::Deserialize)]
    struct Jwk {
        n: String,
        e: String,
    }
    let j: Jwk = serde_json::from_str(jwk).map_err(|e| format!("jwk is not an RSA JWK: {e}"))?;
    let dec = |s: &str| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| "jwk is not base64url".to_owned());
    let n = rsa::BigUint::from_bytes_be(&dec(&j.n)?);
    let e = rsa::BigUint::from_bytes_be(&dec(&j.e)?);
    RsaPublicKey::new(n, e).map_err(|e| format!("jwk is not a valid RSA key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    pub(crate) fn test_key() -> &'static KeyPair {
        static KEY: OnceLock<KeyPair> = OnceLock::new();
        KEY.get_or_init(|| KeyPair::generate().unwrap())
    }

    #[test]
    fn pem_round_trip_tolerates_oci_api_key_suffix() {
        let k = test_key();
        let pem = format!("{}OCI_API_KEY", k.private_pem().unwrap().as_str());
        let back = KeyPair::from_pem(&pem).unwrap();
        assert_eq!(back.fingerprint(), k.fingerprint());
    }

    #[test]
    fn fingerprint_shape() {
        let fp = test_key().fingerprint();
        assert_eq!(fp.len(), 47);
        assert_eq!(fp.matches(':').count(), 15);
        assert_eq!(fp, fp.to_lowercase());
    }

    #[test]
    fn spki_b64_is_one_padded_line_of_der() {
        let k = test_key();
        let b = k.spki_b64();
        assert!(!b.contains('\n'));
        assert!(b.starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"));
        let pem_body: String = k.public_pem().lines().filter(|l| !l.starts_with("-----")).collect();
        assert_eq!(b, pem_body);
    }

    #[test]
    fn a_token_bound_to_another_key_is_told_apart() {
        let jwk = |k: &RsaPublicKey| {
            let b64 = |n: rsa::BigUint| URL_SAFE_NO_PAD.encode(n.to_bytes_be());
            serde_json::json!({"kty": "RSA", "n": b64(k.n().clone()), "e": b64(k.e().clone())}).to_string()
        };
        let (a, b) = (test_key(), KeyPair::generate().unwrap());
        let modulus = check_pem(a.private_pem().unwrap().as_str()).unwrap();
        assert!(!bound_elsewhere(Some(&jwk(a.public())), &modulus));
        assert!(bound_elsewhere(Some(&jwk(b.public())), &modulus));
        assert!(!bound_elsewhere(None, &modulus) && !bound_elsewhere(Some("not a jwk"), &modulus));
    }

    #[test]
    fn jwk_round_trip() {
        let k = test_key();
        let (n, e) =
            (URL_SAFE_NO_PAD.encode(k.public.n().to_bytes_be()), URL_SAFE_NO_PAD.encode(k.public.e().to_bytes_be()));
        let json = serde_json::json!({"kty":"RSA","n":n,"e":e}).to_string();
        let p = public_key_from_jwk_json(&json).unwrap();
        assert_eq!(&p, k.public());
    }

    #[test]
    fn rejects_garbage_and_encrypted_keys() {
        assert!(KeyPair::from_pem("hello").is_err());
        for (pem, kind) in [
            (include_str!("../tests/fixtures/ec_p256_pkcs8.pem"), "EC"),
            (include_str!("../tests/fixtures/ec_p256_sec1.pem"), "EC"),
        ] {
            let e = KeyPair::from_pem(pem).unwrap_err();
            assert!(e.contains(&format!("an {kind} key")) && e.contains("must be RSA"), "{e}");
            assert!(!e.contains("1.2.840.113549"), "not reported with RSA's algorithm id: {e}");
        }
        let e = KeyPair::from_pem(include_str!("../tests/fixtures/rsa_1024.pem")).unwrap_err();
        assert!(e.contains("1024 bits") && e.contains("at least 2048"), "{e}");
        let enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(KeyPair::from_pem(enc).unwrap_err().contains("passphrase"));
    }
}
