//! RSA key material: generation (cached per process), JWK and SPKI encodings.

use std::sync::OnceLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rsa::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, RsaPrivateKey, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// A signing key with its key id.
#[derive(Clone)]
pub struct SigningKeyPair {
    pub private: RsaPrivateKey,
    pub public: RsaPublicKey,
    pub kid: String,
}

impl SigningKeyPair {
    pub fn new(private: RsaPrivateKey, kid_prefix: &str) -> Self {
        let public = private.to_public_key();
        let kid = format!("{kid_prefix}_{}", &fingerprint_hex(&public)[..16]);
        SigningKeyPair { private, public, kid }
    }

    /// The public JWK as served in a JWKS.
    pub fn jwk(&self) -> Value {
        let mut jwk = public_jwk(&self.public, &self.kid);
        jwk["alg"] = json!("RS256");
        jwk["use"] = json!("sig");
        jwk
    }
}

/// Generates a 2048-bit RSA key.
pub fn generate() -> RsaPrivateKey {
    RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA key generation")
}

/// Two shared keys (IdP, OCI). RSA key generation takes seconds in debug builds and many
/// emulators are started by the test suites, so they share these unless `Config::fresh_keys`
/// asks for new ones: once per process, and across processes through a key cache directory
/// (`$WOCI_EMULATOR_KEY_CACHE`, else `target/woci-emulator-keys` of this workspace; created
/// 0700, files 0600). These are test keys that protect nothing.
pub fn cached_pair() -> (RsaPrivateKey, RsaPrivateKey) {
    static KEYS: OnceLock<(RsaPrivateKey, RsaPrivateKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = cache_dir();
        if let Some(pair) = dir.as_deref().and_then(load_pair) {
            return pair;
        }
        let pair = std::thread::scope(|s| {
            let a = s.spawn(generate);
            let b = generate();
            (a.join().expect("keygen thread"), b)
        });
        if let Some(dir) = dir {
            if let Err(e) = store_pair(&dir, &pair) {
                tracing::debug!("cannot cache emulator keys in {}: {e}", dir.display());
            }
        }
        pair
    })
    .clone()
}

fn cache_dir() -> Option<std::path::PathBuf> {
    match std::env::var_os("WOCI_EMULATOR_KEY_CACHE") {
        Some(d) if d.is_empty() => None,
        Some(d) => Some(d.into()),
        None => Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/woci-emulator-keys")),
    }
}

const CACHE_FILES: [&str; 2] = ["idp.pem", "oci.pem"];

fn load_pair(dir: &std::path::Path) -> Option<(RsaPrivateKey, RsaPrivateKey)> {
    use rsa::pkcs8::DecodePrivateKey as _;
    let load = |name: &str| {
        let pem = std::fs::read_to_string(dir.join(name)).ok()?;
        RsaPrivateKey::from_pkcs8_pem(&pem).ok()
    };
    Some((load(CACHE_FILES[0])?, load(CACHE_FILES[1])?))
}

fn store_pair(dir: &std::path::Path, pair: &(RsaPrivateKey, RsaPrivateKey)) -> std::io::Result<()> {
    use rsa::pkcs8::EncodePrivateKey as _;
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(dir)?;
    for (name, key) in CACHE_FILES.iter().zip([&pair.0, &pair.1]) {
        let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).map_err(std::io::Error::other)?;
        let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        opts.mode(0o600);
        opts.open(&tmp)?.write_all(pem.as_bytes())?;
        std::fs::rename(&tmp, dir.join(name))?;
    }
    Ok(())
}

/// SHA-256 of the DER SPKI, lowercase hex.
pub fn fingerprint_hex(key: &RsaPublicKey) -> String {
    let der = key.to_public_key_der().expect("SPKI encoding");
    Sha256::digest(der.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// `{"kid","n","e","kty"}` with base64url (unpadded) modulus and exponent.
pub fn public_jwk(key: &RsaPublicKey, kid: &str) -> Value {
    json!({
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        "kty": "RSA",
    })
}

/// Parses an RSA public JWK (`kty` RSA, base64url `n`/`e`).
pub fn from_jwk(jwk: &Value) -> Result<RsaPublicKey, &'static str> {
    if jwk.get("kty").and_then(Value::as_str) != Some("RSA") {
        return Err("jwk kty is not RSA");
    }
    let part = |name: &str| -> Result<BigUint, &'static str> {
        let s = jwk.get(name).and_then(Value::as_str).ok_or("jwk lacks n or e")?;
        let raw = URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).map_err(|_| "jwk n/e not base64url")?;
        Ok(BigUint::from_bytes_be(&raw))
    };
    RsaPublicKey::new(part("n")?, part("e")?).map_err(|_| "jwk is not a valid RSA key")
}

/// Parses DER SubjectPublicKeyInfo; requires RSA with a modulus of at least 2048 bits.
pub fn from_spki_der(der: &[u8]) -> Result<RsaPublicKey, &'static str> {
    let key = RsaPublicKey::from_public_key_der(der).map_err(|_| "not an RSA SubjectPublicKeyInfo")?;
    if key.n().bits() < 2048 {
        return Err("RSA key shorter than 2048 bits");
    }
    Ok(key)
}

/// Parses the `public_key` form field: standard base64 (padding optional) of DER SPKI.
pub fn from_spki_b64(b64: &str) -> Result<RsaPublicKey, &'static str> {
    let cleaned: String = b64.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD
        .decode(&cleaned)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(cleaned.trim_end_matches('=')))
        .map_err(|_| "public_key is not base64")?;
    from_spki_der(&der)
}

/// Accepts a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) or the bare base64 DER SPKI.
pub fn from_pem_or_spki_b64(s: &str) -> Result<RsaPublicKey, &'static str> {
    let body: String = s.lines().filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().join("");
    from_spki_b64(&body)
}
