//! The one error type of the library and its mapping to exit codes.
//!
//! Every fallible library function returns [`Error`]. `main` maps it once to a one-line message
//! (`woci: error: …`) and [`Error::exit_code`]. Messages never contain a token, refresh token,
//! client secret, passphrase or key: variants carry only names, paths, HTTP statuses and the
//! server's `error` / `error_description` fields (which never echo secrets).

use std::path::PathBuf;

/// Exit codes woci itself uses. Any other code came from the child (`oci` or `--exec`).
pub mod exit {
    /// Runtime failure that fits no other class (I/O on a healthy file system, internal bug).
    pub const FAILURE: u8 = 1;
    /// Bad command line or configuration (missing/invalid manager INI keys, bad URL, bad flag).
    pub const CONFIG: u8 = 2;
    /// An interactive login is needed but cannot happen (no TTY, `--no-browser` timeout, user denied).
    pub const LOGIN: u8 = 3;
    /// The identity provider rejected the refresh token or the client (`invalid_grant`, `invalid_client`).
    pub const IDP_REJECTED: u8 = 4;
    /// The OCI identity domain rejected the token exchange.
    pub const EXCHANGE_REJECTED: u8 = 5;
    /// Network failure or timeout after bounded retries (IdP, identity domain or auth service unreachable, 5xx).
    pub const NETWORK: u8 = 6;
    /// A local file (token, key, config, refresh token) is corrupt or unreadable; it was left untouched.
    pub const CORRUPT_FILE: u8 = 7;
    /// The encrypted refresh token cannot be decrypted (wrong or missing passphrase, tampered file).
    pub const REFRESH_TOKEN_LOCKED: u8 = 8;
    /// The OCI session cannot be renewed any more (`sess_exp` passed, auth service answered 401).
    pub const SESSION_EXPIRED: u8 = 9;
    /// Another woci holds the profile lock for too long, or a daemon is already running.
    pub const BUSY: u8 = 10;
    /// The subject token source (`subject_token_source`) could not give a usable JWT: variable
    /// unset, file missing, command failed, ID-token service refused, or the JWT is expired.
    pub const SUBJECT_TOKEN: u8 = 11;
    /// The `oci` program (or `--exec` program) could not be executed.
    pub const NOT_EXECUTABLE: u8 = 126;
    /// The `oci` program (or `--exec` program) was not found.
    pub const NOT_FOUND: u8 = 127;
}

/// Library result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in woci, classified by what the user has to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad command line or configuration.
    #[error("{0}")]
    Config(String),

    /// A login the identity provider answered without a refresh token: a setting of its client or
    /// the scope, met only at the IdP, so the next login meets it too (exit 2, as a setting).
    #[error("{0}")]
    NoRefreshToken(String),

    /// A login is required but cannot be performed here, or it failed.
    #[error("{0}")]
    Login(String),

    /// The IdP's token endpoint answered with an OAuth error.
    #[error("identity provider rejected the {what}: {error}{}", describe(.description))]
    IdpRejected {
        /// What was presented: "refresh token", "authorization code", "client credentials".
        what: &'static str,
        /// OAuth `error` code, e.g. `invalid_grant`.
        error: String,
        /// OAuth `error_description`, if any.
        description: Option<String>,
    },

    /// The identity domain's token exchange answered with an error.
    #[error("token exchange rejected (HTTP {status}): {error}{}", describe(.description))]
    ExchangeRejected {
        /// HTTP status.
        status: u16,
        /// OAuth `error` code, or a short summary when the body was not OAuth JSON.
        error: String,
        /// `error_description`, if any.
        description: Option<String>,
    },

    /// The network failed, timed out or the server kept answering 5xx.
    #[error("{service} {} at `{url}`: {reason}", failed_how(.reason))]
    Network {
        /// Which service: "identity provider", "token exchange", "OCI auth service".
        service: &'static str,
        /// The URL without query (never contains secrets).
        url: String,
        /// Why, already summarized (timeout, connection refused, HTTP 503 after 3 attempts).
        reason: String,
    },

    /// The user's HTTPS proxy refused the connection for want of (the right) credentials (407).
    /// Only the proxy setting fixes it: retried slowly, like an untrusted certificate, since each
    /// try counts toward the proxy's lockout.
    #[error("{service} not reached at `{url}`: {reason}")]
    ProxyRefused {
        /// Which service.
        service: &'static str,
        /// The URL without query.
        url: String,
        /// What the proxy said, and the fix.
        reason: String,
    },

    /// The TLS handshake was refused: the server's certificate (unknown issuer, expired, wrong
    /// name), or no TLS version in common. Only a setting (a CA, a clock, the server's TLS) fixes
    /// it: the renewal loop retries it slowly, like a refused client.
    #[error("{service} at `{url}` cannot be used over TLS: {reason}")]
    Untrusted {
        /// Which service.
        service: &'static str,
        /// The URL without query.
        url: String,
        /// The certificate's problem and the fix.
        reason: String,
    },

    /// A refresh grant reached the IdP but its answer was lost (a reset, a timeout): the IdP may
    /// have rotated the refresh token, so the stored one is probably spent.
    #[error(
        "the request to {service} at `{url}` went out, but its answer was lost or unreadable ({reason}), so woci \
         cannot tell whether it was processed; if it was and rotated the refresh token the request carried, the \
         stored one is spent and the next renewal needs a login (`{login}`)"
    )]
    ReplyLost {
        /// Which service.
        service: &'static str,
        /// The URL without query.
        url: String,
        /// What happened, and why it is not sent again.
        reason: String,
        /// The login command (the renewal names the profile).
        login: String,
    },

    /// A server answered 2xx with a body that is not what the protocol says.
    #[error("{service} sent an invalid response: {reason}")]
    Protocol {
        /// Which service.
        service: &'static str,
        /// What was wrong (never includes the body itself).
        reason: String,
    },

    /// A local file is corrupt. It is never overwritten because of this error.
    #[error("corrupt file `{}`: {reason}", path.display())]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The refresh token file is encrypted and cannot be decrypted.
    #[error("cannot decrypt refresh token `{}`: {reason}", path.display())]
    RefreshTokenLocked {
        /// The refresh token file.
        path: PathBuf,
        /// Wrong passphrase, no passphrase given, damaged envelope.
        reason: String,
    },

    /// The OCI session can no longer be renewed.
    #[error("{0}")]
    SessionExpired(String),

    /// A lock could not be taken in time, or a daemon already runs.
    #[error("{0}")]
    Busy(String),

    /// The subject token source could not give a usable JWT (CI OIDC federation).
    #[error("subject token source `{source_name}`: {reason}")]
    SubjectToken {
        /// The source as configured, e.g. `env:CI_JOB_JWT` (never the token).
        source_name: String,
        /// What went wrong, naming the variable, file or command.
        reason: String,
        /// Whether asking again may help.
        failure: SourceFailure,
    },

    /// The token exchange rejected the JWT from a subject token source.
    #[error("token exchange rejected the JWT from subject token source `{source_name}` (HTTP {status}): {error}{}", describe(.description))]
    SubjectTokenRejected {
        /// The source as configured.
        source_name: String,
        /// HTTP status.
        status: u16,
        /// OAuth `error` code.
        error: String,
        /// `error_description`, if any.
        description: Option<String>,
    },

    /// The program to run was not found.
    #[error("`{program}` not found: {hint}")]
    ProgramNotFound {
        /// The program name or path.
        program: String,
        /// Which setting chooses it.
        hint: String,
    },

    /// The program to run exists but could not be executed.
    #[error("cannot execute `{program}`: {reason}")]
    ProgramNotExecutable {
        /// The program name or path.
        program: String,
        /// The OS error.
        reason: String,
    },

    /// I/O on a file or directory.
    #[error("{action} `{}`: {source}{}", path.display(), permission_hint(source, path))]
    Io {
        /// "cannot read", "cannot write", …
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A condition with its own exit code: found without trying (a plan that cannot be carried
    /// out), or (`shared`) another woci's renewal failed while this call waited for it — the same
    /// message and code, and whether a retry may help (the renewal loop retries it like the
    /// original failure); also a new token that expired while this woci was stopped (transient).
    #[error("{message}")]
    Blocked {
        /// The exit code.
        code: u8,
        /// The message.
        message: String,
        /// For another woci's failure: how a renewal loop meets it, as that woci's loop did.
        shared: Option<Recovery>,
    },

    /// Anything else (internal).
    #[error("{0}")]
    Other(String),

    /// A renewal under the profile's lock found that a person must log in (the IdP refused the
    /// refresh token): the renewal gives the lock back and the login is made before it, where
    /// one login at a time per profile is kept ([`crate::renew::Renewer::ensure`]). Never shown.
    #[error("a login is needed first")]
    LoginFirst,

    /// An error with a hint about its likely cause (a mistyped option), same exit code.
    #[error("{source}; {hint}")]
    Hinted {
        /// The error.
        source: Box<Error>,
        /// The hint.
        hint: String,
    },
}

/// Why a subject token source gave no token: decides whether a renewal loop asks it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFailure {
    /// It gave no usable token this time — a file being rotated (missing, empty, an expired JWT),
    /// a helper that failed or timed out, an ID-token service without an answer — and may give
    /// one when asked again.
    NoTokenNow,
    /// It is set up wrong — a variable unset, a program missing, a folder or a device as `file:`,
    /// a bearer the ID-token service refuses, output over the size cap — and no retry fixes it.
    Settings,
}

/// The fix for an I/O error a person can make (`; check …`, else empty): a file woci may not
/// use, or (named instead) the first folder on its way that woci may not enter, or the folder a
/// file that is not there yet cannot be created in.
pub(crate) fn permission_hint(e: &std::io::Error, path: &std::path::Path) -> String {
    if e.kind() != std::io::ErrorKind::PermissionDenied {
        return String::new();
    }
    #[cfg(unix)]
    let enters =
        |dir: &std::path::Path| rustix::fs::access(dir, rustix::fs::Access::EXEC_OK) != Err(rustix::io::Errno::ACCESS);
    #[cfg(not(unix))]
    let enters = |_: &std::path::Path| true;
    permission_fix(path, std::fs::symlink_metadata(path).is_ok(), enters)
}

fn permission_fix(path: &std::path::Path, exists: bool, enters: impl Fn(&std::path::Path) -> bool) -> String {
    let folders: Vec<_> = path.ancestors().skip(1).filter(|d| !d.as_os_str().is_empty()).collect();
    let quoted = |p: &std::path::Path| {
        let shown = p.to_string_lossy().into_owned();
        shlex::try_quote(&shown).map(|q| q.into_owned()).unwrap_or(shown)
    };
    let (what, at) = match folders.into_iter().rev().find(|d| !enters(d)) {
        Some(dir) => ("cannot be entered", dir),
        None => match path.parent().filter(|d| !exists && !d.as_os_str().is_empty()) {
            Some(dir) => ("cannot be written into", dir),
            None => return format!("; check its owner and mode (`ls -ld {}`)", quoted(path)),
        },
    };
    format!("; the folder `{}` {what}: check its owner and mode (`ls -ld {}`)", at.display(), quoted(at))
}

/// How a [`Error::Network`] failed, from its reason: a server that answered is not "unreachable".
fn failed_how(reason: &str) -> &'static str {
    match reason {
        r if r.starts_with("HTTP 429") => "is limiting requests (try again later)",
        r if r.starts_with("HTTP ") || r.starts_with("it answered") => "failed",
        _ => "unreachable",
    }
}

fn describe(description: &Option<String>) -> String {
    match description {
        Some(d) if !d.is_empty() => format!(" ({d})"),
        _ => String::new(),
    }
}

/// How a renewal loop meets a failure another woci recorded: as it would have met it itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// It may go away by itself (the network, a server's fault): retried soon.
    Soon,
    /// A refusal a settings change can fix (a client refused, a CA not trusted): retried slowly.
    Slowly,
    /// Retrying cannot help (a refused refresh token, bad settings).
    Never,
}

impl Error {
    /// A server's own fault (a 5xx, a 429, `temporarily_unavailable`), which it answers whoever
    /// asks: not a network path, CA or proxy of the caller's.
    pub fn server_answered(&self) -> bool {
        matches!(self, Error::Network { reason, .. } if failed_how(reason) != "unreachable")
    }

    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) | Error::NoRefreshToken(_) => exit::CONFIG,
            Error::Login(_) => exit::LOGIN,
            Error::IdpRejected { .. } => exit::IDP_REJECTED,
            Error::ExchangeRejected { .. } | Error::SubjectTokenRejected { .. } => exit::EXCHANGE_REJECTED,
            Error::Network { .. }
            | Error::Untrusted { .. }
            | Error::ProxyRefused { .. }
            | Error::ReplyLost { .. }
            | Error::Protocol { .. } => exit::NETWORK,
            Error::CorruptFile { .. } => exit::CORRUPT_FILE,
            Error::RefreshTokenLocked { .. } => exit::REFRESH_TOKEN_LOCKED,
            Error::SessionExpired(_) => exit::SESSION_EXPIRED,
            Error::Busy(_) => exit::BUSY,
            Error::SubjectToken { .. } => exit::SUBJECT_TOKEN,
            Error::ProgramNotFound { .. } => exit::NOT_FOUND,
            Error::ProgramNotExecutable { .. } => exit::NOT_EXECUTABLE,
            Error::Blocked { code, .. } => *code,
            Error::Hinted { source, .. } => source.exit_code(),
            Error::Io { .. } | Error::Other(_) | Error::LoginFirst => exit::FAILURE,
        }
    }

    /// This error with `hint` appended (same exit code).
    pub fn with_hint(self, hint: &str) -> Error {
        Error::Hinted { source: Box::new(self), hint: hint.to_owned() }
    }

    /// True when the IdP said the refresh token is no good, so an interactive login is the way out.
    pub fn needs_login(&self) -> bool {
        matches!(self, Error::IdpRejected { error, .. } if error == "invalid_grant")
    }

    /// True for failures that came from a server or a login (as opposed to local files and
    /// settings): the ones worth sharing with callers that waited for them.
    pub fn involved_the_network(&self) -> bool {
        matches!(
            self,
            Error::Login(_)
                | Error::NoRefreshToken(_)
                | Error::IdpRejected { .. }
                | Error::ExchangeRejected { .. }
                | Error::Network { .. }
                | Error::Untrusted { .. }
                | Error::ProxyRefused { .. }
                | Error::ReplyLost { .. }
                | Error::Protocol { .. }
                | Error::SessionExpired(_)
                | Error::SubjectToken { .. }
                | Error::SubjectTokenRejected { .. }
                | Error::Blocked { shared: Some(_), .. }
        )
    }

    /// True for failures worth retrying later (network, 5xx, a subject token source that gave
    /// no token this time), as opposed to rejections and settings errors.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Network { .. }
                | Error::Untrusted { .. }
                | Error::ProxyRefused { .. }
                | Error::ReplyLost { .. }
                | Error::SubjectToken { failure: SourceFailure::NoTokenNow, .. }
                | Error::Blocked { shared: Some(Recovery::Soon), .. }
        )
    }

    /// An [`Error::ReplyLost`] naming the login without a profile (the renewal, which knows the
    /// profile, names it).
    pub fn reply_lost(service: &'static str, url: String, reason: String) -> Self {
        Error::ReplyLost { service, url, reason, login: "woci session authenticate".into() }
    }

    /// Shorthand for an [`Error::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { action, path: path.into(), source }
    }

    /// Shorthand for an [`Error::CorruptFile`].
    pub fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::CorruptFile { path: path.into(), reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answered is not "unreachable": how a network-class failure is worded.
    #[test]
    fn a_server_that_answered_is_not_unreachable() {
        let said = |reason: &str| Error::Network { service: "token exchange", url: "u".into(), reason: reason.into() };
        for (reason, starts) in [
            ("timed out after 3 attempt(s)", "token exchange unreachable at"),
            ("HTTP 503 after 3 attempt(s)", "token exchange failed at"),
            ("it answered `temporarily_unavailable` (HTTP 400)", "token exchange failed at"),
            (
                "HTTP 429 (too many requests) after 3 attempt(s)",
                "token exchange is limiting requests (try again later) at",
            ),
        ] {
            assert!(said(reason).to_string().starts_with(starts), "{}", said(reason));
            assert_eq!(said(reason).server_answered(), !starts.contains("unreachable"), "{reason}");
        }
    }

    #[test]
    fn exit_codes_are_distinct_per_class() {
        let errors = [
            Error::Config("x".into()),
            Error::Login("x".into()),
            Error::IdpRejected { what: "refresh token", error: "invalid_grant".into(), description: None },
            Error::ExchangeRejected { status: 400, error: "invalid_request".into(), description: None },
            Error::Network { service: "s", url: "u".into(), reason: "r".into() },
            Error::corrupt("/p", "r"),
            Error::RefreshTokenLocked { path: "/p".into(), reason: "r".into() },
            Error::SessionExpired("x".into()),
            Error::Busy("x".into()),
            Error::SubjectToken { source_name: "env:X".into(), reason: "r".into(), failure: SourceFailure::Settings },
            Error::ProgramNotFound { program: "oci".into(), hint: "h".into() },
            Error::Other("x".into()),
        ];
        let mut codes: Vec<u8> = errors.iter().map(Error::exit_code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), errors.len());
    }

    #[test]
    fn only_sources_that_may_give_a_token_later_are_transient() {
        let source = |failure| Error::SubjectToken { source_name: "file:/t".into(), reason: "r".into(), failure };
        assert!(source(SourceFailure::NoTokenNow).is_transient());
        assert!(!source(SourceFailure::Settings).is_transient());
        assert_eq!(source(SourceFailure::NoTokenNow).exit_code(), exit::SUBJECT_TOKEN, "a plain call still exits 11");
    }

    #[test]
    fn a_file_woci_may_not_use_names_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("my config");
        std::fs::write(&file, "").unwrap();
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = Error::io("cannot read", &file, denied);
        assert!(e.to_string().ends_with(&format!("; check its owner and mode (`ls -ld '{}'`)", file.display())), "{e}");
        let e = Error::io("cannot read", "/h/config", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(!e.to_string().contains("ls -ld"), "{e}");
        let closed = |d: &std::path::Path| d != std::path::Path::new("/h/.oci");
        let fix = permission_fix(std::path::Path::new("/h/.oci/sessions/P/token"), true, closed);
        assert_eq!(fix, "; the folder `/h/.oci` cannot be entered: check its owner and mode (`ls -ld /h/.oci`)");
        let fix = permission_fix(std::path::Path::new("/h/.oci/.config.1.tmp"), false, |_| true);
        assert_eq!(fix, "; the folder `/h/.oci` cannot be written into: check its owner and mode (`ls -ld /h/.oci`)");
    }

    #[test]
    fn rejection_message_includes_description() {
        let e = Error::IdpRejected {
            what: "refresh token",
            error: "invalid_grant".into(),
            description: Some("grant request is invalid".into()),
        };
        assert_eq!(
            e.to_string(),
            "identity provider rejected the refresh token: invalid_grant (grant request is invalid)"
        );
        assert!(e.needs_login());
    }
}
