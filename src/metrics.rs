//! Renewal accounting (`metrics_file`): per-profile counters that persist across processes, and
//! the Prometheus textfile (node_exporter textfile-collector convention) holding the series of
//! every profile that names the same file.
//!
//! - Each profile keeps its counts in `woci-metrics.json` in its session folder (0600, written
//!   atomically): renewals and the time of the last one per result class, fallbacks per fallback
//!   profile, the last known expiries, and the canonical path of the metrics file it names.
//! - [`record`] updates that state and rewrites the metrics file(s) under one lock
//!   (`~/.oci/sessions/.metrics.lock`), so concurrent woci processes never lose a count and the
//!   file a writer renames into place reflects every update made before it took the lock.
//! - The writer finds the other profiles of a file by scanning `~/.oci/sessions/*/woci-metrics.json`.
//!   Of another profile's settings it reads only the INI that named its file, if one did: a
//!   profile is in the file that INI names now (removed from it, in none), though it never
//!   renews again; else in the file it recorded.
//! - Metrics never fail a call: every problem (a missing folder, a lock held too long, a full
//!   disk) is one warning line.

use crate::error::{exit, Error, Result};
use crate::fsutil::{self, FileLock};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The per-profile state file in the session folder.
pub(crate) const STATE_FILE: &str = "woci-metrics.json";
/// The lock in the sessions root that serializes every update and write.
const LOCK_FILE: &str = ".metrics.lock";
/// How long a writer waits for another one.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// How many left files whose folder is gone a profile remembers.
const MAX_LEFT: usize = 4;
/// The metrics file's mode: node_exporter usually runs as another user.
const METRICS_MODE: u32 = 0o644;

/// The result of a renewal attempt, as counted (`result` label) and as reported to hooks (`class`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// The session was renewed.
    Ok,
    /// The IdP or the token exchange refused (invalid_grant, invalid_client, 401/403), or a login
    /// is needed.
    Auth,
    /// Unreachable, timeout, 5xx, a truncated or malformed reply.
    Network,
    /// woci's settings or local files made the renewal impossible.
    Config,
    /// The subject-token source gave no token.
    Source,
}

impl Class {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Ok => "ok",
            Class::Auth => "auth",
            Class::Network => "network",
            Class::Config => "config",
            Class::Source => "source",
        }
    }
}

/// The class of a failed renewal: that of its exit code, so a failure another woci recorded (only
/// its code is known) gets the same class as the original.
pub(crate) fn class_of(e: &Error) -> Class {
    class_of_exit_code(e.exit_code())
}

/// The class of a failure known only by its exit code (a failure another woci recorded, or a
/// plan that could not be carried out).
pub(crate) fn class_of_exit_code(code: u8) -> Class {
    match code {
        exit::LOGIN | exit::IDP_REJECTED | exit::EXCHANGE_REJECTED | exit::SESSION_EXPIRED => Class::Auth,
        exit::NETWORK | exit::BUSY => Class::Network,
        exit::SUBJECT_TOKEN => Class::Source,
        _ => Class::Config,
    }
}

/// What is known of a session's ends (epoch seconds; `None`: unknown). The names are those of
/// the state file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Expiries {
    /// The UPST's `exp`.
    pub token_exp: Option<i64>,
    /// The UPST's `sess_exp`.
    pub sess_exp: Option<i64>,
    /// The refresh token's expiry, when known.
    pub refresh_token_exp: Option<i64>,
}

impl Expiries {
    /// These ends, `ahead` seconds earlier: token time turned into this machine's, which the
    /// metrics file and hooks carry, as every time woci shows does.
    pub(crate) fn earlier_by(self, ahead: i64) -> Expiries {
        let mine = |t: Option<i64>| t.map(|t| t - ahead);
        Expiries {
            token_exp: mine(self.token_exp),
            sess_exp: mine(self.sess_exp),
            refresh_token_exp: mine(self.refresh_token_exp),
        }
    }

    /// What `claims` and the refresh token's expiry say.
    pub(crate) fn of(claims: Option<&crate::jwt::UpstClaims>, refresh_token_exp: Option<i64>) -> Expiries {
        Expiries {
            token_exp: claims.map(|c| c.exp),
            sess_exp: claims.and_then(|c| c.session_expiry()),
            refresh_token_exp,
        }
    }
}

/// One renewal attempt and what is known after it. The expiries replace the recorded ones:
/// `None` means unknown now, and the series is left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The result.
    pub result: Class,
    /// When the attempt ended.
    pub at: i64,
    /// The session's ends.
    pub ends: Expiries,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counter {
    count: u64,
    last: i64,
}

/// The contents of `woci-metrics.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    profile: String,
    /// The canonical path of the metrics file the profile named at its last renewal.
    metrics_file: Option<PathBuf>,
    /// The manager INI that named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    named_in: Option<PathBuf>,
    /// Whether the profile had a section of its own there: one removed leaves the file, though
    /// `[COMMON]` still names it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    own_section: bool,
    /// Files the profile named before whose folder was gone when it left them: rewritten without
    /// it once the folder is back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    left: Vec<PathBuf>,
    #[serde(default)]
    renewals: BTreeMap<Class, Counter>,
    #[serde(default)]
    fallbacks: BTreeMap<String, u64>,
    #[serde(flatten)]
    ends: Expiries,
}

/// What one update counts.
#[derive(Debug, Clone, Copy)]
enum Change<'a> {
    /// A renewal attempt.
    Renewal(&'a Outcome),
    /// A call that ran with this fallback profile.
    Fallback(&'a str),
}

/// The metrics file a profile's settings name, and what named it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Target {
    /// `metrics_file`.
    pub file: Option<PathBuf>,
    /// The manager INI `metrics_file` came from (it is an INI-only setting).
    pub named_in: Option<PathBuf>,
    /// Whether the profile has a section of its own in the manager INI.
    pub own_section: bool,
    /// The home folder `~` stands for.
    pub home: PathBuf,
}

impl Target {
    /// What `s` names.
    pub(crate) fn of(s: &crate::settings::Settings) -> Target {
        let named_in = match s.origins.get("metrics_file") {
            Some((crate::settings::Origin::Ini(ini), _)) => Some(ini.clone()),
            _ => None,
        };
        let own_section = s.ini_file.as_ref().is_some_and(|(_, own)| *own);
        Target { file: s.ops.metrics_file.clone(), named_in, own_section, home: s.home.clone() }
    }
}

/// Counts one renewal attempt of `profile` in the profile's session folder, then rewrites
/// the target's file (when set) with the series of every profile naming it, and the file the
/// profile named before if that changed. Never fails: a problem is one warning line. Nothing is
/// recorded for a profile without a session folder (the renewal's lock creates it; a mistyped
/// profile gets none), nor through a session folder that is a symbolic link.
pub(crate) fn record(session_dir: &Path, profile: &str, target: &Target, outcome: &Outcome) {
    if let Err(e) = update(session_dir, profile, target, Change::Renewal(outcome)) {
        tracing::warn!("renewal metrics of profile `{profile}` not recorded: {e}");
    }
}

/// Counts one call of `profile` that ran with `fallback` instead (`woci_fallbacks_total`), and
/// rewrites the metrics file as [`record`] does; the recorded expiries stay as they are.
pub(crate) fn record_fallback(session_dir: &Path, profile: &str, target: &Target, fallback: &str) {
    if let Err(e) = update(session_dir, profile, target, Change::Fallback(fallback)) {
        tracing::warn!("fallback metrics of profile `{profile}` not recorded: {e}");
    }
}

fn update(session_dir: &Path, profile: &str, named: &Target, change: Change<'_>) -> Result<()> {
    if !crate::fsutil::is_real_dir(session_dir) {
        tracing::debug!(profile, "no session folder: renewal metrics not recorded");
        return Ok(());
    }
    let root = session_dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // A missing folder is reported, but the count is still kept.
    let target = named.file.as_deref().map(canonical_target).transpose();
    let _lock = FileLock::acquire(&root.join(LOCK_FILE), LOCK_TIMEOUT)?;
    let state_path = session_dir.join(STATE_FILE);
    let mut state = match fsutil::read_optional(&state_path)? {
        None => State::default(),
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(
                "`{}` is not valid ({e}); renewal counts of profile `{profile}` start again",
                state_path.display()
            );
            State::default()
        }),
    };
    let before = state.metrics_file.clone();
    state.profile = profile.to_owned();
    match change {
        Change::Renewal(outcome) => {
            let counter = state.renewals.entry(outcome.result).or_default();
            counter.count += 1;
            counter.last = outcome.at;
            state.ends = outcome.ends;
        }
        Change::Fallback(f) => *state.fallbacks.entry(f.to_owned()).or_default() += 1,
    }
    // A metrics file whose folder is gone (unmounted for a while) keeps the recorded path, so the
    // profile stays in it; a setting that names another file, whose folder is missing, does not.
    // (Said once per process: a daemon meets the missing folder at every renewal.)
    let target = target.inspect_err(|e| crate::logging::warn_once(&e.to_string())).ok();
    match &target {
        Some(t) => {
            state.metrics_file = t.clone();
            state.named_in = named.named_in.clone();
            state.own_section = named.own_section;
        }
        None if named.file != state.metrics_file => state.metrics_file = None,
        None => {}
    }
    let target = target.flatten();
    // A file the profile left is rewritten without it; one whose folder is gone just now, once
    // the folder is back (a few at most).
    state.left.extend(before.filter(|b| Some(b) != state.metrics_file.as_ref() && !state.left.contains(b)));
    state.left.retain(|f| Some(f) != state.metrics_file.as_ref());
    let (leave, wait): (Vec<_>, Vec<_>) = state.left.drain(..).partition(|f| f.parent().is_some_and(Path::is_dir));
    state.left = wait.into_iter().rev().take(MAX_LEFT).rev().collect();
    let json = serde_json::to_vec_pretty(&state).map_err(|e| Error::Other(format!("cannot encode metrics: {e}")))?;
    fsutil::write_atomic(&state_path, &json)?;
    // Counted now: a file that cannot be written is one warning of its own.
    for file in target.into_iter().filter(|t| t.parent().is_some_and(Path::is_dir)).chain(leave) {
        let states = states_naming(root, &file, &named.home, profile);
        if let Err(e) = fsutil::write_atomic_mode(&file, render(&states).as_bytes(), METRICS_MODE) {
            tracing::warn!("the metrics file `{}` is not written: {e}", file.display());
        }
    }
    Ok(())
}

/// `path` with its folder resolved (symbolic links, `..`), so two spellings of one file are one
/// file; an error naming the setting when the folder does not exist.
fn canonical_target(path: &Path) -> Result<PathBuf> {
    let missing = || {
        Error::Config(format!(
            "the folder of `metrics_file` `{}` does not exist; create it or change `metrics_file`",
            path.display()
        ))
    };
    let name = path.file_name().ok_or_else(missing)?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).ok().filter(|d| d.is_dir()).ok_or_else(missing)?;
    Ok(dir.join(name))
}

/// The states of every profile under `root` that names `file`, by profile name. The writer's own
/// (`writer`) is its settings' word, not the INI's now (a daemon keeps its settings through a
/// broken or emptied INI). Another profile is in the file its INI names now, though it recorded
/// another at its last renewal (`[COMMON]`'s `metrics_file` changed while it was idle): in one
/// file at a time, never in none.
fn states_naming(root: &Path, file: &Path, home: &Path, writer: &str) -> Vec<State> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    let mut states: Vec<State> = entries
        .flatten()
        .filter_map(|e| {
            let b = crate::fsutil::read_bounded(&e.path().join(STATE_FILE), 64 * 1024).ok()?;
            let state = serde_json::from_slice::<State>(&b).ok()?;
            // A copy of a session folder (`P.bak`) holds `P`'s old record: one series a profile
            // (round 87 F3).
            (e.file_name().to_str() == Some(state.profile.as_str())).then_some(state)
        })
        .filter(|s| {
            let recorded = s.metrics_file.as_deref() == Some(file);
            // The writer's own, and a running daemon's, which has the file of its last renewal
            // until its next one; an INI that cannot be read now, or a state of an older release
            // (no INI recorded), too.
            if s.profile == writer || FileLock::held(&root.join(&s.profile).join(crate::store::PID_FILE)) {
                return recorded;
            }
            ini_names(s, file, home).unwrap_or(recorded)
        })
        .collect();
    states.sort_by(|a, b| a.profile.cmp(&b.profile));
    states
}

/// Whether the INI that named a metrics file for `s`'s profile names `file` now (its section, or
/// `[COMMON]`): not when the profile was removed from it (its own section, the INI too), or it
/// names another. `None` when that INI cannot be read, or is not known.
fn ini_names(s: &State, file: &Path, home: &Path) -> Option<bool> {
    use crate::settings::ini;
    let path = s.named_in.as_ref()?;
    let read = ini::load(path, ini::Source::Home, &s.profile).ok()?;
    if s.own_section && !read.has_profile_section {
        return Some(false);
    }
    let Some(value) = read.values.get("metrics_file").map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Some(false);
    };
    // As the settings resolve it: `~` expanded, a relative path from the INI's folder.
    let named = path.parent().unwrap_or(Path::new("")).join(crate::settings::rules::path(value, home));
    Some(canonical_target(&named).is_ok_and(|t| t == file))
}

/// A label value escaped as the exposition format asks (`\`, `"` and newline).
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The families of the metrics file, in name order: name, type, help.
const FAMILIES: [(&str, &str, &str); 6] = [
    (
        "woci_fallbacks_total",
        "counter",
        "Calls that ran with the fallback profile because the profile's renewal failed.",
    ),
    ("woci_last_renewal_timestamp_seconds", "gauge", "Unix time of the last renewal attempt with this result."),
    ("woci_refresh_token_expiry_timestamp_seconds", "gauge", "Unix time the refresh token expires, when known."),
    ("woci_renewals_total", "counter", "Renewal attempts by result (ok, auth, network, config, source)."),
    (
        "woci_session_expiry_timestamp_seconds",
        "gauge",
        "Unix time the OCI session ends for good (sess_exp of a profile renewed by OCI session refresh).",
    ),
    ("woci_session_token_expiry_timestamp_seconds", "gauge", "Unix time the session token (UPST) expires."),
];

/// The Prometheus text exposition of `states`: families in name order, each with HELP and TYPE,
/// series sorted by their labels; families without series left out. Same states, same bytes.
fn render(states: &[State]) -> String {
    // The series (labels, value) of each family.
    let [mut fallbacks, mut last, mut refresh_exp, mut renewals, mut sess_exp, mut token_exp]: [Vec<(String, i64)>; 6] =
        Default::default();
    for s in states {
        let p = escape_label(&s.profile);
        for (fb, n) in &s.fallbacks {
            fallbacks.push((format!("{{profile=\"{p}\",fallback=\"{}\"}}", escape_label(fb)), clamp(*n)));
        }
        for (class, c) in &s.renewals {
            let labels = format!("{{profile=\"{p}\",result=\"{}\"}}", class.as_str());
            last.push((labels.clone(), c.last));
            renewals.push((labels, clamp(c.count)));
        }
        let only = format!("{{profile=\"{p}\"}}");
        refresh_exp.extend(s.ends.refresh_token_exp.map(|v| (only.clone(), v)));
        sess_exp.extend(s.ends.sess_exp.map(|v| (only.clone(), v)));
        token_exp.extend(s.ends.token_exp.map(|v| (only.clone(), v)));
    }
    // In the order of [`FAMILIES`].
    let series = [fallbacks, last, refresh_exp, renewals, sess_exp, token_exp];
    let mut out = String::new();
    for ((name, kind, help), mut series) in FAMILIES.into_iter().zip(series) {
        if series.is_empty() {
            continue;
        }
        series.sort();
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in series {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    }
    out
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    const T0: u64 = 1_700_000_000;

    /// A metrics file, with no INI recorded (as an older release wrote the state).
    fn to<P: AsRef<Path>>(file: Option<P>) -> Target {
        Target {
            file: file.map(|f| f.as_ref().to_owned()),
            named_in: None,
            own_section: false,
            home: PathBuf::from("/"),
        }
    }

    struct Home {
        _tmp: tempfile::TempDir,
        sessions: PathBuf,
        prom_dir: PathBuf,
    }

    impl Home {
        fn new() -> Home {
            let tmp = tempfile::tempdir().unwrap();
            let sessions = tmp.path().join(".oci/sessions");
            let prom_dir = tmp.path().join("textfile");
            std::fs::create_dir_all(&sessions).unwrap();
            std::fs::create_dir_all(&prom_dir).unwrap();
            Home { _tmp: tmp, sessions, prom_dir }
        }

        fn profile(&self, p: &str) -> PathBuf {
            let d = self.sessions.join(p);
            std::fs::create_dir_all(&d).unwrap();
            d
        }

        fn prom(&self, name: &str) -> PathBuf {
            self.prom_dir.join(name)
        }

        fn read(&self, name: &str) -> String {
            std::fs::read_to_string(self.prom(name)).unwrap()
        }
    }

    fn outcome(result: Class, clock: &ManualClock) -> Outcome {
        let at = clock.unix();
        let ends = Expiries { token_exp: Some(at + 3600), sess_exp: Some(at + 86_400), refresh_token_exp: None };
        Outcome { result, at, ends }
    }

    #[test]
    fn every_error_variant_has_its_class() {
        let cases: Vec<(Error, Class)> = vec![
            (Error::Config("x".into()), Class::Config),
            (Error::Login("no terminal".into()), Class::Auth),
            (
                Error::IdpRejected { what: "refresh token", error: "invalid_grant".into(), description: None },
                Class::Auth,
            ),
            (
                Error::IdpRejected { what: "refresh token", error: "invalid_client".into(), description: None },
                Class::Auth,
            ),
            (Error::IdpRejected { what: "refresh token", error: "HTTP 401".into(), description: None }, Class::Auth),
            (Error::ExchangeRejected { status: 403, error: "HTTP 403".into(), description: None }, Class::Auth),
            (
                Error::Network { service: "identity provider", url: "u".into(), reason: "timeout".into() },
                Class::Network,
            ),
            (
                Error::Protocol { service: "token exchange", reason: "the token endpoint answered HTTP 503".into() },
                Class::Network,
            ),
            (Error::corrupt("/t", "not a JWT"), Class::Config),
            (Error::RefreshTokenLocked { path: "/r".into(), reason: "wrong passphrase".into() }, Class::Config),
            (Error::SessionExpired("401".into()), Class::Auth),
            (Error::Busy("lock".into()), Class::Network),
            (
                Error::SubjectToken {
                    source_name: "env:X".into(),
                    reason: "unset".into(),
                    failure: crate::error::SourceFailure::Settings,
                },
                Class::Source,
            ),
            (
                Error::SubjectTokenRejected {
                    source_name: "env:X".into(),
                    status: 401,
                    error: "e".into(),
                    description: None,
                },
                Class::Auth,
            ),
            (Error::ProgramNotFound { program: "oci".into(), hint: "h".into() }, Class::Config),
            (Error::ProgramNotExecutable { program: "oci".into(), reason: "r".into() }, Class::Config),
            (Error::io("cannot write", "/t", std::io::Error::other("disk full")), Class::Config),
            (Error::Blocked { code: exit::NETWORK, message: "m".into(), shared: None }, Class::Network),
            (Error::Blocked { code: exit::IDP_REJECTED, message: "m".into(), shared: None }, Class::Auth),
            (Error::Blocked { code: exit::CORRUPT_FILE, message: "m".into(), shared: None }, Class::Config),
            (Error::Blocked { code: exit::SUBJECT_TOKEN, message: "m".into(), shared: None }, Class::Source),
            (Error::Other("internal".into()), Class::Config),
        ];
        for (e, class) in &cases {
            assert_eq!(class_of(e), *class, "{e:?}");
            // A failure repeated from another woci's record (same exit code) has the same class.
            assert_eq!(class_of_exit_code(e.exit_code()), *class, "{e:?} via exit {}", e.exit_code());
        }
    }

    #[test]
    fn every_exit_code_has_a_class() {
        let expected = [
            (exit::FAILURE, Class::Config),
            (exit::CONFIG, Class::Config),
            (exit::LOGIN, Class::Auth),
            (exit::IDP_REJECTED, Class::Auth),
            (exit::EXCHANGE_REJECTED, Class::Auth),
            (exit::NETWORK, Class::Network),
            (exit::CORRUPT_FILE, Class::Config),
            (exit::REFRESH_TOKEN_LOCKED, Class::Config),
            (exit::SESSION_EXPIRED, Class::Auth),
            (exit::BUSY, Class::Network),
            (exit::SUBJECT_TOKEN, Class::Source),
            (exit::NOT_EXECUTABLE, Class::Config),
            (exit::NOT_FOUND, Class::Config),
        ];
        for (code, class) in expected {
            assert_eq!(class_of_exit_code(code), class, "exit {code}");
        }
    }

    #[test]
    fn counts_persist_and_the_file_is_the_exposition_format() {
        let h = Home::new();
        let dir = h.profile("prod");
        let prom = h.prom("woci.prom");
        let clock = ManualClock::at(T0);
        record(&dir, "prod", &to(Some(&prom)), &outcome(Class::Ok, &clock));
        clock.advance(Duration::from_secs(60));
        record(&dir, "prod", &to(Some(&prom)), &outcome(Class::Network, &clock));
        clock.advance(Duration::from_secs(60));
        // Each call is a separate process in real use: the counts come from the file.
        record(&dir, "prod", &to(Some(&prom)), &outcome(Class::Ok, &clock));
        record_fallback(&dir, "prod", &to(Some(&prom)), "backup");
        let t = T0 + 120;
        let expected = format!(
            "# HELP woci_fallbacks_total Calls that ran with the fallback profile because the profile's renewal failed.
# TYPE woci_fallbacks_total counter
woci_fallbacks_total{{profile=\"prod\",fallback=\"backup\"}} 1
# HELP woci_last_renewal_timestamp_seconds Unix time of the last renewal attempt with this result.
# TYPE woci_last_renewal_timestamp_seconds gauge
woci_last_renewal_timestamp_seconds{{profile=\"prod\",result=\"network\"}} {}
woci_last_renewal_timestamp_seconds{{profile=\"prod\",result=\"ok\"}} {t}
# HELP woci_renewals_total Renewal attempts by result (ok, auth, network, config, source).
# TYPE woci_renewals_total counter
woci_renewals_total{{profile=\"prod\",result=\"network\"}} 1
woci_renewals_total{{profile=\"prod\",result=\"ok\"}} 2
# HELP woci_session_expiry_timestamp_seconds Unix time the OCI session ends for good (sess_exp of a profile renewed by OCI session refresh).
# TYPE woci_session_expiry_timestamp_seconds gauge
woci_session_expiry_timestamp_seconds{{profile=\"prod\"}} {}
# HELP woci_session_token_expiry_timestamp_seconds Unix time the session token (UPST) expires.
# TYPE woci_session_token_expiry_timestamp_seconds gauge
woci_session_token_expiry_timestamp_seconds{{profile=\"prod\"}} {}
",
            T0 + 60,
            t + 86_400,
            t + 3600
        );
        assert_eq!(h.read("woci.prom"), expected);
        // Rewriting the same state gives the same bytes.
        let states = states_naming(&h.sessions, &canonical_target(&prom).unwrap(), Path::new("/"), "");
        assert_eq!(render(&states), expected);
    }

    /// A copy of a session folder (`p.bak`, made before a risky change) holds `p`'s old record:
    /// the file keeps one series per profile, the live one (round 87 F3).
    #[test]
    fn a_copied_session_folder_adds_no_series() {
        let h = Home::new();
        let dir = h.profile("p");
        let clock = ManualClock::at(T0);
        let prom = h.prom("w.prom");
        record(&dir, "p", &to(Some(&prom)), &outcome(Class::Ok, &clock));
        let copy = h.sessions.join("p.bak");
        std::fs::create_dir(&copy).unwrap();
        std::fs::copy(dir.join(STATE_FILE), copy.join(STATE_FILE)).unwrap();
        record(&dir, "p", &to(Some(&prom)), &outcome(Class::Ok, &clock));
        let text = h.read("w.prom");
        assert_eq!(text.matches("woci_renewals_total{profile=\"p\",result=\"ok\"}").count(), 1, "{text}");
        assert!(text.contains("woci_renewals_total{profile=\"p\",result=\"ok\"} 2\n"), "{text}");
    }

    #[test]
    fn the_refresh_token_expiry_appears_when_known() {
        let h = Home::new();
        let dir = h.profile("p");
        let clock = ManualClock::at(T0);
        let mut o = outcome(Class::Ok, &clock);
        o.ends.refresh_token_exp = Some(T0 as i64 + 7 * 86_400);
        record(&dir, "p", &to(Some(&h.prom("w.prom"))), &o);
        let text = h.read("w.prom");
        assert!(text.contains("# TYPE woci_refresh_token_expiry_timestamp_seconds gauge\n"), "{text}");
        assert!(
            text.contains(&format!("woci_refresh_token_expiry_timestamp_seconds{{profile=\"p\"}} {}\n", T0 + 604_800))
        );
        // Unknown after the next attempt: the series goes.
        o.ends.refresh_token_exp = None;
        record(&dir, "p", &to(Some(&h.prom("w.prom"))), &o);
        assert!(!h.read("w.prom").contains("refresh_token_expiry"));
    }

    #[test]
    fn the_file_holds_every_profile_naming_it_and_only_those() {
        let h = Home::new();
        let clock = ManualClock::at(T0);
        let shared = h.prom("shared.prom");
        for p in ["b", "a"] {
            record(&h.profile(p), p, &to(Some(&shared)), &outcome(Class::Ok, &clock));
        }
        record(&h.profile("c"), "c", &to(Some(&h.prom("c.prom"))), &outcome(Class::Auth, &clock));
        record(&h.profile("d"), "d", &to(None::<&Path>), &outcome(Class::Ok, &clock));
        let text = h.read("shared.prom");
        let renewals: Vec<&str> = text.lines().filter(|l| l.starts_with("woci_renewals_total")).collect();
        assert_eq!(
            renewals,
            [
                "woci_renewals_total{profile=\"a\",result=\"ok\"} 1",
                "woci_renewals_total{profile=\"b\",result=\"ok\"} 1"
            ]
        );
        assert!(!text.contains("\"c\"") && !text.contains("\"d\""), "{text}");
        assert!(h.read("c.prom").contains("woci_renewals_total{profile=\"c\",result=\"auth\"} 1"));
        // A profile without a metrics file is still counted, in its own folder.
        let d: State = serde_json::from_slice(&std::fs::read(h.sessions.join("d").join(STATE_FILE)).unwrap()).unwrap();
        assert_eq!(d.renewals[&Class::Ok].count, 1);
        assert_eq!(d.metrics_file, None);
    }

    #[test]
    fn two_spellings_of_one_file_are_one_file() {
        let h = Home::new();
        let clock = ManualClock::at(T0);
        let plain = h.prom("w.prom");
        let dotted = h.prom_dir.join("../textfile/w.prom");
        record(&h.profile("a"), "a", &to(Some(&plain)), &outcome(Class::Ok, &clock));
        record(&h.profile("b"), "b", &to(Some(&dotted)), &outcome(Class::Ok, &clock));
        let text = h.read("w.prom");
        assert!(text.contains("profile=\"a\"") && text.contains("profile=\"b\""), "{text}");
    }

    #[test]
    fn a_profile_moving_to_another_file_leaves_the_old_one() {
        let h = Home::new();
        let clock = ManualClock::at(T0);
        let (old, new) = (h.prom("old.prom"), h.prom("new.prom"));
        record(&h.profile("keep"), "keep", &to(Some(&old)), &outcome(Class::Ok, &clock));
        record(&h.profile("move"), "move", &to(Some(&old)), &outcome(Class::Ok, &clock));
        assert!(h.read("old.prom").contains("profile=\"move\""));
        record(&h.profile("move"), "move", &to(Some(&new)), &outcome(Class::Ok, &clock));
        assert!(!h.read("old.prom").contains("profile=\"move\""));
        assert!(h.read("old.prom").contains("profile=\"keep\""));
        assert!(h.read("new.prom").contains("woci_renewals_total{profile=\"move\",result=\"ok\"} 2"));
        // To a file whose folder is missing: the old file is left all the same.
        record(&h.profile("keep"), "keep", &to(Some(h.prom("nope/w.prom"))), &outcome(Class::Ok, &clock));
        assert!(!h.read("old.prom").contains("profile=\"keep\""), "{}", h.read("old.prom"));
        // While its folder is gone for a while, the file named all along keeps the profile.
        record(&h.profile("move"), "move", &to(Some(&new)), &outcome(Class::Ok, &clock));
        std::fs::rename(&h.prom_dir, h.prom_dir.with_extension("away")).unwrap();
        record(&h.profile("move"), "move", &to(Some(&new)), &outcome(Class::Ok, &clock));
        std::fs::rename(h.prom_dir.with_extension("away"), &h.prom_dir).unwrap();
        record(&h.profile("keep"), "keep", &to(Some(&new)), &outcome(Class::Ok, &clock));
        assert!(h.read("new.prom").contains("profile=\"move\""), "{}", h.read("new.prom"));
        // Left while its folder was gone: rewritten without the profile once the folder is back.
        let elsewhere = h.prom_dir.with_extension("other");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::rename(&h.prom_dir, h.prom_dir.with_extension("away")).unwrap();
        record(&h.profile("move"), "move", &to(Some(elsewhere.join("x.prom"))), &outcome(Class::Ok, &clock));
        std::fs::rename(h.prom_dir.with_extension("away"), &h.prom_dir).unwrap();
        assert!(h.read("new.prom").contains("profile=\"move\""), "not written while away");
        record(&h.profile("move"), "move", &to(Some(elsewhere.join("x.prom"))), &outcome(Class::Ok, &clock));
        assert!(!h.read("new.prom").contains("profile=\"move\""), "{}", h.read("new.prom"));
        assert!(h.read("new.prom").contains("profile=\"keep\""), "{}", h.read("new.prom"));
    }

    /// A profile whose INI named the file, removed from that INI (or pointed elsewhere there),
    /// never renews again to leave the file: the next write by any profile leaves it out. A
    /// state that names no INI (an older release's) stays.
    #[test]
    fn a_profile_removed_from_the_ini_that_named_the_file_leaves_it() {
        let h = Home::new();
        let clock = ManualClock::at(T0);
        let ini = h.sessions.parent().unwrap().join("woci_manager.ini");
        // Relative to the INI's folder, as the settings read it.
        let section = |p: &str| format!("[{p}]\nmetrics_file = ../textfile/w.prom\n");
        std::fs::write(&ini, format!("{}{}", section("keep"), section("gone"))).unwrap();
        let by_ini = Target {
            file: Some(h.prom("w.prom")),
            named_in: Some(ini.clone()),
            own_section: true,
            home: PathBuf::from("/"),
        };
        for p in ["keep", "gone"] {
            record(&h.profile(p), p, &by_ini, &outcome(Class::Ok, &clock));
        }
        record(&h.profile("older"), "older", &to(Some(h.prom("w.prom"))), &outcome(Class::Ok, &clock));
        let text = h.read("w.prom");
        assert!(["keep", "gone", "older"].iter().all(|p| text.contains(&format!("profile=\"{p}\""))), "{text}");
        std::fs::write(&ini, section("keep")).unwrap();
        record(&h.profile("keep"), "keep", &by_ini, &outcome(Class::Ok, &clock));
        let text = h.read("w.prom");
        assert!(!text.contains("profile=\"gone\""), "{text}");
        assert!(text.contains("profile=\"keep\"") && text.contains("profile=\"older\""), "{text}");
        // Pointed at another file in the INI: the same.
        std::fs::write(&ini, "[keep]\nmetrics_file = ../textfile/other.prom\n").unwrap();
        record(&h.profile("older"), "older", &to(Some(h.prom("w.prom"))), &outcome(Class::Ok, &clock));
        assert!(!h.read("w.prom").contains("profile=\"keep\""), "{}", h.read("w.prom"));
    }

    /// `[COMMON]` names the file for every profile: one whose own section is removed leaves it
    /// (its expired token would alert forever), one that never had a section stays, and so does
    /// one whose daemon still runs with the settings it started with.
    #[test]
    fn a_profile_whose_section_is_removed_leaves_a_file_common_names() {
        let h = Home::new();
        let clock = ManualClock::at(T0);
        let ini = h.sessions.parent().unwrap().join("woci_manager.ini");
        let common = "[COMMON]\nmetrics_file = ../textfile/w.prom\n";
        std::fs::write(&ini, format!("{common}[keep]\n[gone]\n[served]\n")).unwrap();
        let named = |own_section| Target {
            file: Some(h.prom("w.prom")),
            named_in: Some(ini.clone()),
            own_section,
            home: PathBuf::from("/"),
        };
        for p in ["keep", "gone", "served"] {
            record(&h.profile(p), p, &named(true), &outcome(Class::Ok, &clock));
        }
        record(&h.profile("sectionless"), "sectionless", &named(false), &outcome(Class::Ok, &clock));
        let daemon = FileLock::acquire(&h.profile("served").join(crate::store::PID_FILE), LOCK_TIMEOUT).unwrap();
        std::fs::write(&ini, format!("{common}[keep]\n")).unwrap();
        record(&h.profile("keep"), "keep", &named(true), &outcome(Class::Ok, &clock));
        let text = h.read("w.prom");
        assert!(!text.contains("profile=\"gone\""), "{text}");
        for p in ["keep", "sectionless", "served"] {
            assert!(text.contains(&format!("profile=\"{p}\"")), "{p}: {text}");
        }
        // Its daemon stopped, the served profile leaves at the next write.
        drop(daemon);
        record(&h.profile("keep"), "keep", &named(true), &outcome(Class::Ok, &clock));
        assert!(!h.read("w.prom").contains("profile=\"served\""), "{}", h.read("w.prom"));
    }

    /// `[COMMON]`'s `metrics_file` changed while a profile is idle: the next write of the new
    /// file holds it (it was in no file until its own next renewal), the old file no longer does.
    #[test]
    fn an_idle_profile_moves_with_the_file_common_names() {
        let h = Home::new();
        let clock = ManualClock::at(T0);
        let ini = h.sessions.parent().unwrap().join("woci_manager.ini");
        let common = |f: &str| format!("[COMMON]\nmetrics_file = ../textfile/{f}\n[busy]\n[idle]\n");
        std::fs::write(&ini, common("old.prom")).unwrap();
        let named = |f: &str| Target {
            file: Some(h.prom(f)),
            named_in: Some(ini.clone()),
            own_section: true,
            home: PathBuf::from("/"),
        };
        for p in ["busy", "idle"] {
            record(&h.profile(p), p, &named("old.prom"), &outcome(Class::Ok, &clock));
        }
        std::fs::write(&ini, common("new.prom")).unwrap();
        record(&h.profile("busy"), "busy", &named("new.prom"), &outcome(Class::Ok, &clock));
        let new = h.read("new.prom");
        assert!(new.contains("profile=\"busy\"") && new.contains("profile=\"idle\""), "{new}");
        assert!(!h.read("old.prom").contains("profile="), "{}", h.read("old.prom"));
    }

    #[test]
    fn a_missing_folder_is_a_warning_and_no_write_but_the_count_is_kept() {
        let h = Home::new();
        let clock = ManualClock::at(T0);
        let dir = h.profile("p");
        let prom = h.prom_dir.join("nope/w.prom");
        let e = canonical_target(&prom).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "the folder of `metrics_file` `{}` does not exist; create it or change `metrics_file`",
                prom.display()
            )
        );
        update(&dir, "p", &to(Some(&prom)), Change::Renewal(&outcome(Class::Ok, &clock))).unwrap();
        assert!(!prom.parent().unwrap().exists());
        let s: State = serde_json::from_slice(&std::fs::read(dir.join(STATE_FILE)).unwrap()).unwrap();
        assert_eq!(s.renewals[&Class::Ok].count, 1);
    }

    #[test]
    fn no_session_folder_means_nothing_is_created() {
        let h = Home::new();
        let clock = ManualClock::at(T0);
        let dir = h.sessions.join("typo");
        record(&dir, "typo", &to(Some(&h.prom("w.prom"))), &outcome(Class::Config, &clock));
        assert!(!dir.exists());
        assert!(!h.prom("w.prom").exists());
    }

    #[test]
    #[cfg(unix)]
    fn nothing_is_written_through_a_symlinked_session_folder() {
        let h = Home::new();
        let elsewhere = h.prom_dir.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let dir = h.sessions.join("p");
        std::os::unix::fs::symlink(&elsewhere, &dir).unwrap();
        record(&dir, "p", &to(None::<&Path>), &outcome(Class::Config, &ManualClock::at(T0)));
        record_fallback(&dir, "p", &to(None::<&Path>), "b");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    #[test]
    #[cfg(unix)]
    fn the_metrics_file_is_world_readable_and_the_state_private() {
        use std::os::unix::fs::PermissionsExt;
        let h = Home::new();
        let dir = h.profile("p");
        record(&dir, "p", &to(Some(&h.prom("w.prom"))), &outcome(Class::Ok, &ManualClock::at(T0)));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&h.prom("w.prom")), 0o644);
        assert_eq!(mode(&dir.join(STATE_FILE)), 0o600);
        let names: Vec<String> =
            std::fs::read_dir(&h.prom_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, ["w.prom"], "no temp or lock file in the collector folder");
    }

    #[test]
    fn a_corrupt_state_starts_again() {
        let h = Home::new();
        let dir = h.profile("p");
        std::fs::write(dir.join(STATE_FILE), "{not json").unwrap();
        record(&dir, "p", &to(Some(&h.prom("w.prom"))), &outcome(Class::Ok, &ManualClock::at(T0)));
        assert!(h.read("w.prom").contains("woci_renewals_total{profile=\"p\",result=\"ok\"} 1"));
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        let s = State {
            profile: "we\"ird".into(),
            renewals: [(Class::Ok, Counter { count: 1, last: 5 })].into(),
            ..State::default()
        };
        assert!(render(&[s]).contains("woci_renewals_total{profile=\"we\\\"ird\",result=\"ok\"} 1\n"));
    }

    #[test]
    fn fifty_concurrent_renewals_are_all_counted_and_readers_never_see_a_partial_file() {
        let h = Home::new();
        let prom = h.prom("w.prom");
        let dirs: Vec<PathBuf> = ["a", "b"].iter().map(|p| h.profile(p)).collect();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Ok(text) = std::fs::read_to_string(&prom) {
                        assert!(text.ends_with('\n') && text.starts_with("# HELP "), "partial file: {text:?}");
                        assert_eq!(text.matches("# TYPE ").count(), text.matches("# HELP ").count(), "{text}");
                        reads += 1;
                    }
                }
                reads
            });
            let writers: Vec<_> = (0..50)
                .map(|i| {
                    let (dir, prom) = (&dirs[i % 2], &prom);
                    s.spawn(move || {
                        let p = if i % 2 == 0 { "a" } else { "b" };
                        let class = if i % 5 == 0 { Class::Network } else { Class::Ok };
                        record(dir, p, &to(Some(prom)), &outcome(class, &ManualClock::at(T0 + i as u64)));
                    })
                })
                .collect();
            for w in writers {
                w.join().unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            assert!(reader.join().unwrap() > 0);
        });
        let text = h.read("w.prom");
        let count = |p: &str, r: &str| -> u64 {
            let prefix = format!("woci_renewals_total{{profile=\"{p}\",result=\"{r}\"}} ");
            text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.parse().unwrap())
        };
        // i % 5 == 0 for i in 0..50: 10 network (5 even → a, 5 odd → b).
        assert_eq!((count("a", "ok"), count("a", "network")), (20, 5), "{text}");
        assert_eq!((count("b", "ok"), count("b", "network")), (20, 5), "{text}");
        let last = text
            .lines()
            .find_map(|l| l.strip_prefix("woci_last_renewal_timestamp_seconds{profile=\"b\",result=\"ok\"} "))
            .unwrap();
        assert!(last.parse::<u64>().unwrap() >= T0, "{text}");
    }
}
