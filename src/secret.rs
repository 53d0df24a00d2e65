//! A wrapper for values that must never be printed: tokens, refresh tokens, client secrets,
//! passphrases. `Debug` prints `Secret([redacted])`, there is no `Display`, and the value is reached
//! only through [`Secret::expose`], which marks the boundary where it leaves woci's care.
//! [`keep_out_of_core_dumps`] keeps them out of crash dumps, as ssh-agent and gpg-agent do.

use std::fmt;
use zeroize::Zeroize;

/// Makes this process non-dumpable (Linux `PR_SET_DUMPABLE` 0): a crash writes no core file
/// holding the decrypted refresh token, the passphrase, client secrets, the key or the token
/// (for `systemd-coredump` or apport to keep), and other processes of the user cannot attach to
/// it or read its memory. A program woci executes is dumpable again (the kernel resets it).
pub(crate) fn keep_out_of_core_dumps() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable) {
        tracing::debug!("cannot make the process non-dumpable: {e}");
    }
}

/// A secret value. The contents are zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// Borrows the value. Every call site is a place where the secret leaves the wrapper.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl From<String> for Secret<String> {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret<String> {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

/// A secret string, the common case.
pub type SecretString = Secret<String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let s = SecretString::from("eyJhbGciOi.secret.value");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret([redacted]))");
        assert_eq!(s.expose(), "eyJhbGciOi.secret.value");
    }
}
