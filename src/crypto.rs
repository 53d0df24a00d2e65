//! Refresh token encryption at rest, byte-compatible with the Python woci
//! (gtrevorrow/OCI-CLI-Tools, `encrypt_refresh_token` / `decrypt_refresh_token`):
//!
//! - key: PBKDF2-HMAC-SHA256 over the UTF-8 passphrase, random 16-byte salt, 32-byte output,
//!   [`ITERATIONS`] for new files (any `iter` in 1..=[`MAX_ITERATIONS`] is accepted on read);
//! - cipher: AES-256-GCM, random 12-byte nonce, no associated data; `ct` is the ciphertext
//!   followed by the 16-byte tag (what Python `cryptography`'s `AESGCM.encrypt` returns);
//! - file: `{"enc": "AESGCM", "kdf": "PBKDF2-HMAC-SHA256", "iter": 200000, "salt": "…",
//!   "nonce": "…", "ct": "…"}` — standard base64 with padding, the separators and key order of
//!   Python's `json.dumps`, no trailing newline.
//!
//! GCM cannot tell a wrong passphrase from a tampered salt, nonce or ciphertext: both are
//! [`CryptoError::Decrypt`]. A file that is not a well-formed envelope is [`CryptoError::Envelope`].
//! Errors never carry the plaintext, the passphrase or the key.

use crate::secret::SecretString;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rand::RngCore;
use zeroize::Zeroize;

/// The `enc` value of the envelope.
pub const ENC: &str = "AESGCM";
/// The `kdf` value of the envelope.
pub const KDF: &str = "PBKDF2-HMAC-SHA256";
/// PBKDF2 iterations for newly written files (the Python woci's `REFRESH_TOKEN_KDF_ITERATIONS`).
pub const ITERATIONS: u32 = 200_000;
/// Upper bound accepted on read, so a damaged `iter` cannot make woci spin for hours.
pub const MAX_ITERATIONS: u32 = 10_000_000;
/// Salt length for new files.
pub const SALT_LEN: usize = 16;
/// AES-GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length (appended to `ct`).
pub const TAG_LEN: usize = 16;

/// Why an envelope cannot be opened. Never carries plaintext or passphrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("wrong passphrase or tampered file")]
    Decrypt,
    #[error("damaged envelope: {0}")]
    Envelope(String),
}

/// True if the file content is an encryption envelope (JSON with `"enc"`).
///
/// Any JSON object with a string `enc` counts, so an envelope of an unknown algorithm is reported
/// by [`open`] as such rather than mistaken for a plain-text refresh token.
pub fn is_envelope(content: &str) -> bool {
    let t = content.trim();
    t.starts_with('{')
        && serde_json::from_str::<serde_json::Value>(t).is_ok_and(|v| v.get("enc").is_some_and(|e| e.is_string()))
}

/// Encrypts into the JSON envelope, with a fresh random salt and nonce and [`ITERATIONS`].
pub fn seal(plaintext: &SecretString, passphrase: &SecretString) -> String {
    Sealer::new(passphrase).seal(plaintext)
}

/// [`seal`] with the salt, nonce and iteration count given (known-answer tests).
#[cfg(test)]
fn seal_with(
    plaintext: &SecretString,
    passphrase: &SecretString,
    salt: &[u8],
    nonce: &[u8; NONCE_LEN],
    iter: u32,
) -> String {
    envelope(&cipher_for(passphrase, salt, iter), plaintext, salt, nonce, iter)
}

/// The envelope of `plaintext` encrypted with `cipher` (the key derived from `salt` and `iter`).
fn envelope(cipher: &Aes256Gcm, plaintext: &SecretString, salt: &[u8], nonce: &[u8; NONCE_LEN], iter: u32) -> String {
    let ct = cipher
        .encrypt(Nonce::from_slice(nonce), plaintext.expose().as_bytes())
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    // Python's json.dumps with default separators and this key order.
    format!(
        r#"{{"enc": "{ENC}", "kdf": "{KDF}", "iter": {iter}, "salt": "{}", "nonce": "{}", "ct": "{}"}}"#,
        STANDARD.encode(salt),
        STANDARD.encode(nonce),
        STANDARD.encode(ct)
    )
}

/// A passphrase's key derived ahead of time (fresh salt, [`ITERATIONS`]), so that
/// [`Sealer::seal`] costs no PBKDF2 and can run in the instant after a refresh grant's reply,
/// where a kill would lose the session. Every seal draws a fresh nonce; the envelope is the one
/// [`seal`] writes.
pub struct Sealer {
    passphrase: SecretString,
    salt: [u8; SALT_LEN],
    cipher: Aes256Gcm,
}

impl Sealer {
    /// Derives the key (the slow part, about as long as one [`open`]).
    pub fn new(passphrase: &SecretString) -> Sealer {
        let mut salt = [0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let cipher = cipher_for(passphrase, &salt, ITERATIONS);
        Sealer { passphrase: passphrase.clone(), salt, cipher }
    }

    /// Whether it seals with `passphrase`.
    pub fn is_for(&self, passphrase: &SecretString) -> bool {
        use subtle::ConstantTimeEq;
        self.passphrase.expose().as_bytes().ct_eq(passphrase.expose().as_bytes()).into()
    }

    /// Encrypts into the JSON envelope.
    pub fn seal(&self, plaintext: &SecretString) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        envelope(&self.cipher, plaintext, &self.salt, &nonce, ITERATIONS)
    }
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// Decrypts a JSON envelope.
pub fn open(envelope: &str, passphrase: &SecretString) -> Result<SecretString, CryptoError> {
    use serde_json::Value;
    let bad = CryptoError::Envelope;
    let value: Value = serde_json::from_str(envelope.trim())
        .map_err(|e| bad(format!("not JSON (line {}, column {})", e.line(), e.column())))?;
    let Value::Object(m) = value else {
        return Err(bad("not a JSON object".into()));
    };
    // `enc` must name woci's algorithm; `kdf` may be absent (`absent_ok`).
    let algorithm = |name: &str, want: &str, absent_ok: bool| match m.get(name) {
        None if absent_ok => Ok(()),
        Some(Value::String(s)) if s == want => Ok(()),
        Some(Value::String(s)) => Err(bad(format!("unsupported `{name}` `{}` (woci supports `{want}`)", short(s)))),
        Some(_) if absent_ok => Err(bad(format!("`{name}` is not a string"))),
        _ => Err(bad(format!("missing `{name}`"))),
    };
    algorithm("enc", ENC, false)?;
    // The Python woci always writes `kdf` but does not check it on read; absent means PBKDF2.
    algorithm("kdf", KDF, true)?;
    // Python: int(obj.get("iter", 200_000)); accept an integer or an integer string.
    let not_positive = || bad("`iter` is not a positive integer".into());
    let iter = match m.get("iter") {
        None => ITERATIONS,
        Some(Value::Number(n)) => n.as_u64().and_then(|v| u32::try_from(v).ok()).ok_or_else(not_positive)?,
        Some(Value::String(s)) => s.trim().parse::<u32>().map_err(|_| not_positive())?,
        Some(_) => return Err(not_positive()),
    };
    if iter == 0 || iter > MAX_ITERATIONS {
        return Err(bad(format!("`iter` {iter} is out of range (1..={MAX_ITERATIONS})")));
    }
    let field = |name: &str| match m.get(name) {
        Some(Value::String(s)) => STANDARD.decode(s.trim()).map_err(|_| bad(format!("`{name}` is not base64"))),
        Some(_) => Err(bad(format!("`{name}` is not a string"))),
        None => Err(bad(format!("missing `{name}`"))),
    };
    let (salt, nonce, ct) = (field("salt")?, field("nonce")?, field("ct")?);
    if salt.is_empty() {
        return Err(bad("`salt` is empty".into()));
    }
    if nonce.len() != NONCE_LEN {
        return Err(bad(format!("`nonce` is {} bytes, expected {NONCE_LEN}", nonce.len())));
    }
    if ct.len() < TAG_LEN {
        return Err(bad(format!("`ct` is {} bytes, shorter than the {TAG_LEN}-byte tag", ct.len())));
    }
    let cipher = cipher_for(passphrase, &salt, iter);
    let plain = cipher.decrypt(Nonce::from_slice(&nonce), ct.as_slice()).map_err(|_| CryptoError::Decrypt)?;
    String::from_utf8(plain).map(SecretString::from).map_err(|e| {
        e.into_bytes().zeroize();
        bad("the decrypted refresh token is not UTF-8 text".into())
    })
}

/// The AES-256-GCM cipher of the PBKDF2-HMAC-SHA256 key of `passphrase` (the key itself wiped).
fn cipher_for(passphrase: &SecretString, salt: &[u8], iter: u32) -> Aes256Gcm {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(passphrase.expose().as_bytes(), salt, iter, &mut key);
    let cipher = Aes256Gcm::new_from_slice(&key).expect("32-byte key");
    key.zeroize();
    cipher
}

/// An unknown algorithm name, shortened so a damaged file cannot flood the error line.
fn short(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The inputs of `tests/fixtures/crypto/make_vectors.py` (test values, not secrets).
    const PY_RT: &str = "woci-test-refresh-token.8f3a1c0e-6b1d-4c55-9a0e-3f1f2d7c9b41.NOT-A-REAL-TOKEN";
    const PY_PASS: &str = "correct horse battery staple";
    const PY_RT_1000: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0ZXN0In0.r\u{e9}fr\u{e8}sh-\u{2603}";
    const PY_PASS_1000: &str = "p\u{e4}ssw\u{f6}rd \u{1F511} with spaces";
    /// The expected file contents, as the Python script printed them.
    const PY_FILE_1000: &str = r#"{"enc": "AESGCM", "kdf": "PBKDF2-HMAC-SHA256", "iter": 1000, "salt": "8OHSw7Sllod4aVpLPC0eDw==", "nonce": "C63A/+4N3wDcr+ur", "ct": "DVsVso+RrZQqad2WKJWZDPl3ypcLj4bRh7mmX470vgmZrg9SEABVeWep++1/yKO9OPR3CHMI1ErYF+DC7sAAIINxInyF"}"#;

    fn fixture(name: &str) -> String {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/crypto").join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", p.display()))
    }

    fn s(v: &str) -> SecretString {
        SecretString::from(v)
    }

    /// A fast envelope (few iterations) for the tamper tests.
    fn small(plain: &str, pass: &str) -> String {
        seal_with(&s(plain), &s(pass), &[7u8; 16], &[9u8; 12], 10)
    }

    fn set(envelope: &str, key: &str, value: serde_json::Value) -> String {
        let mut v: serde_json::Value = serde_json::from_str(envelope).unwrap();
        v[key] = value;
        serde_json::to_string(&v).unwrap()
    }

    fn flip_b64(envelope: &str, key: &str, byte: usize) -> String {
        let v: serde_json::Value = serde_json::from_str(envelope).unwrap();
        let mut raw = STANDARD.decode(v[key].as_str().unwrap()).unwrap();
        raw[byte] ^= 0x01;
        set(envelope, key, STANDARD.encode(raw).into())
    }

    #[test]
    fn opens_the_python_woci_file_200k_iterations() {
        let content = fixture("python_woci_refresh_token.json");
        assert!(is_envelope(&content));
        assert_eq!(open(&content, &s(PY_PASS)).unwrap().expose(), PY_RT);
        // The same inputs give the same bytes as Python's json.dumps.
        let salt: Vec<u8> = (0x00..0x10).collect();
        let nonce: [u8; 12] = core::array::from_fn(|i| 0x10 + i as u8);
        assert_eq!(seal_with(&s(PY_RT), &s(PY_PASS), &salt, &nonce, ITERATIONS), content);
    }

    #[test]
    fn opens_the_python_woci_file_non_ascii_and_matches_it_byte_for_byte() {
        let content = fixture("python_woci_refresh_token_iter1000.json");
        assert_eq!(content, PY_FILE_1000, "fixture changed; rerun make_vectors.py and update the test");
        assert_eq!(open(&content, &s(PY_PASS_1000)).unwrap().expose(), PY_RT_1000);
        let salt = [0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f];
        let nonce = [0x0b, 0xad, 0xc0, 0xff, 0xee, 0x0d, 0xdf, 0x00, 0xdc, 0xaf, 0xeb, 0xab];
        assert_eq!(seal_with(&s(PY_RT_1000), &s(PY_PASS_1000), &salt, &nonce, 1000), PY_FILE_1000);
        // Tolerates the trailing newline an editor might add.
        assert_eq!(open(&format!("{content}\n"), &s(PY_PASS_1000)).unwrap().expose(), PY_RT_1000);
    }

    #[test]
    fn seal_round_trips_with_random_salt_and_nonce_and_200k_iterations() {
        let a = seal(&s("rt-value-1"), &s("pw"));
        let b = seal(&s("rt-value-1"), &s("pw"));
        assert_ne!(a, b, "salt and nonce are random");
        let v: serde_json::Value = serde_json::from_str(&a).unwrap();
        assert_eq!(v["enc"], "AESGCM");
        assert_eq!(v["kdf"], "PBKDF2-HMAC-SHA256");
        assert_eq!(v["iter"], 200_000);
        assert_eq!(STANDARD.decode(v["salt"].as_str().unwrap()).unwrap().len(), 16);
        assert_eq!(STANDARD.decode(v["nonce"].as_str().unwrap()).unwrap().len(), 12);
        assert_eq!(STANDARD.decode(v["ct"].as_str().unwrap()).unwrap().len(), "rt-value-1".len() + TAG_LEN);
        assert!(!a.contains("rt-value-1") && !a.ends_with('\n'));
        assert!(is_envelope(&a));
        assert_eq!(open(&a, &s("pw")).unwrap().expose(), "rt-value-1");
    }

    #[test]
    fn wrong_passphrase_is_decrypt_error() {
        let e = small("rt", "right");
        assert_eq!(open(&e, &s("wrong")), Err(CryptoError::Decrypt));
        assert_eq!(open(&e, &s("")), Err(CryptoError::Decrypt));
        assert_eq!(open(&fixture("python_woci_refresh_token_iter1000.json"), &s(PY_PASS)), Err(CryptoError::Decrypt));
    }

    #[test]
    fn tampered_ct_nonce_salt_or_iter_is_decrypt_error() {
        let e = small("refresh-token", "pw");
        assert_eq!(open(&e, &s("pw")).unwrap().expose(), "refresh-token");
        assert_eq!(open(&flip_b64(&e, "ct", 0), &s("pw")), Err(CryptoError::Decrypt));
        let ct_len = STANDARD
            .decode(serde_json::from_str::<serde_json::Value>(&e).unwrap()["ct"].as_str().unwrap())
            .unwrap()
            .len();
        assert_eq!(open(&flip_b64(&e, "ct", ct_len - 1), &s("pw")), Err(CryptoError::Decrypt), "tag byte");
        assert_eq!(open(&flip_b64(&e, "nonce", 5), &s("pw")), Err(CryptoError::Decrypt));
        assert_eq!(open(&flip_b64(&e, "salt", 15), &s("pw")), Err(CryptoError::Decrypt));
        assert_eq!(open(&set(&e, "iter", 11.into()), &s("pw")), Err(CryptoError::Decrypt));
    }

    #[test]
    fn damaged_envelopes_are_envelope_errors() {
        let e = small("rt", "pw");
        let envelope_err = |content: &str| match open(content, &s("pw")) {
            Err(CryptoError::Envelope(m)) => m,
            other => panic!("expected an envelope error for {content}, got {other:?}"),
        };
        assert!(envelope_err(&set(&e, "enc", "AESCBC".into())).contains("unsupported `enc` `AESCBC`"));
        assert!(envelope_err(&set(&e, "kdf", "scrypt".into())).contains("unsupported `kdf` `scrypt`"));
        assert!(envelope_err(&set(&e, "salt", "***".into())).contains("`salt` is not base64"));
        assert!(envelope_err(&set(&e, "nonce", STANDARD.encode([1u8; 16]).into())).contains("`nonce` is 16 bytes"));
        assert!(envelope_err(&set(&e, "ct", STANDARD.encode([1u8; 4]).into())).contains("shorter than the 16-byte tag"));
        assert!(envelope_err(&set(&e, "iter", 0.into())).contains("out of range"));
        assert!(envelope_err(&set(&e, "iter", (-5).into())).contains("`iter`"));
        assert!(envelope_err(&set(&e, "iter", 4_000_000_000u64.into())).contains("out of range"));
        assert!(envelope_err(&set(&e, "ct", serde_json::Value::Null)).contains("`ct` is not a string"));
        let mut v: serde_json::Value = serde_json::from_str(&e).unwrap();
        v.as_object_mut().unwrap().remove("nonce");
        assert!(envelope_err(&v.to_string()).contains("missing `nonce`"));
        assert!(envelope_err(&e[..e.len() - 1]).contains("not JSON"));
        assert!(envelope_err("[1,2]").contains("not a JSON object"));
        // An overlong algorithm name is shortened in the message.
        assert!(envelope_err(&set(&e, "enc", "X".repeat(500).into())).len() < 120);
    }

    #[test]
    fn missing_kdf_and_string_iter_are_accepted_like_python() {
        let e = small("rt", "pw");
        let mut v: serde_json::Value = serde_json::from_str(&e).unwrap();
        v.as_object_mut().unwrap().remove("kdf");
        v["iter"] = "10".into();
        assert_eq!(open(&v.to_string(), &s("pw")).unwrap().expose(), "rt");
    }

    #[test]
    fn is_envelope_only_for_json_objects_with_enc() {
        assert!(is_envelope(r#"{"enc":"AESGCM"}"#));
        assert!(is_envelope(" {\"enc\": \"other\"}\n"));
        assert!(!is_envelope("eyJhbGciOi.plain.refresh"));
        assert!(!is_envelope("plain-refresh-token"));
        assert!(!is_envelope(r#"{"ct":"x"}"#));
        assert!(!is_envelope(r#"{"enc":1}"#));
        assert!(!is_envelope("{not json"));
        assert!(!is_envelope(""));
    }

    #[test]
    fn errors_never_contain_secrets() {
        let e = small("super-secret-rt", "super-secret-pass");
        let cases = [
            (e.clone(), "super-secret-wrong"),
            (set(&e, "enc", "X".into()), "super-secret-pass"),
            (flip_b64(&e, "ct", 0), "super-secret-pass"),
        ];
        for (content, pass) in cases {
            let msg = open(&content, &s(pass)).map(|_| ()).unwrap_err().to_string();
            assert!(!msg.contains("super-secret"), "{msg}");
        }
    }

    #[test]
    fn a_sealer_derived_ahead_writes_envelopes_that_open() {
        let pass = SecretString::from("correct horse");
        let sealer = Sealer::new(&pass);
        assert!(sealer.is_for(&pass) && !sealer.is_for(&SecretString::from("other")));
        let (a, b) = (sealer.seal(&SecretString::from("rt-1")), sealer.seal(&SecretString::from("rt-1")));
        assert_ne!(a, b, "a fresh nonce each time");
        assert!(is_envelope(&a));
        assert_eq!(open(&a, &pass).unwrap().expose(), "rt-1");
        assert!(!format!("{sealer:?}").contains("correct"));
    }
}
