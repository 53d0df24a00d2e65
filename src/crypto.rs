//! Refresh token encryption at rest (STUB: signatures fixed, owned by the crypto work item).
use crate::secret::SecretString;

/// Why an envelope cannot be opened. Never carries plaintext or passphrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("wrong passphrase or tampered file")]
    Decrypt,
    #[error("damaged envelope: {0}")]
    Envelope(String),
}

/// True if the file content is an encryption envelope (JSON with `"enc"`).
pub fn is_envelope(_content: &str) -> bool {
    unimplemented!("crypto::is_envelope")
}

/// Encrypts into the JSON envelope.
pub fn seal(_plaintext: &SecretString, _passphrase: &SecretString) -> String {
    unimplemented!("crypto::seal")
}

/// Decrypts a JSON envelope.
pub fn open(_envelope: &str, _passphrase: &SecretString) -> Result<SecretString, CryptoError> {
    unimplemented!("crypto::open")
}
