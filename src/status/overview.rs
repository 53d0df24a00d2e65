//! `woci --status --all [--json]` and `woci --status --prompt`: every profile at a glance, and one
//! short line for shell prompts. Formatting and selection only; each profile's [`Report`] comes
//! from its own `--status` ([`super::assess`]), so a state and an exit code here are the ones the
//! profile's own `--status` gives.

use super::Report;
use crate::settings::ini::COMMON_SECTION;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// A profile's state at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub(crate) enum State {
    /// The token is valid; the next call reuses it.
    Usable,
    /// The next call renews it without a person.
    Renewable,
    /// The next call needs an interactive login (or the session ended: a new login is the way on).
    LoginNeeded,
    /// The session cannot be renewed now; the next call runs as the usable `fallback_profile`.
    Fallback,
    /// Nothing woci can do by itself (settings, a damaged file, an ended session).
    #[default]
    Impossible,
}

impl State {
    /// The state of a profile's `--status` report.
    pub(crate) fn of(report: &Report) -> State {
        if report.runs_as.is_some() {
            return State::Fallback;
        }
        State::of_plan(report.exit_code, report.next_action)
    }

    /// The state of a plan's exit code and name ([`crate::renew::plan::Plan::name`]).
    pub(crate) fn of_plan(exit_code: u8, next_action: &str) -> State {
        match (exit_code, next_action) {
            (0, "none" | "finish_config") => State::Usable,
            (0, _) => State::Renewable,
            // A session OCI no longer refreshes ends in a login too.
            (crate::error::exit::LOGIN | crate::error::exit::SESSION_EXPIRED, _) => State::LoginNeeded,
            _ => State::Impossible,
        }
    }
}

/// Whether a daemon keeps the profile fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Daemon {
    /// One runs.
    Running,
    /// One runs but is stopped (SIGSTOP, Ctrl-Z): it renews nothing until continued.
    Suspended,
    /// One runs the code of a woci binary since replaced or removed (an upgrade): restart it.
    Outdated,
    /// None runs.
    #[default]
    Stopped,
    /// The Python woci's daemon runs instead (it renews the same refresh token).
    Python,
}

impl Daemon {
    /// The word for what `--status` reports of the daemon.
    pub(crate) fn of(report: &crate::daemon::DaemonReport) -> Daemon {
        match (report.running, report.stopped) {
            (true, false) if report.binary_replaced => Daemon::Outdated,
            (true, false) => Daemon::Running,
            (true, true) => Daemon::Suspended,
            (false, _) if report.python_daemon.is_some() => Daemon::Python,
            (false, _) => Daemon::Stopped,
        }
    }
}

/// One profile of `--status --all`. Times are epoch seconds, `null` when unknown, as in
/// `--status --json`; `exit_code` is the profile's own `--status` exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub(crate) struct Entry {
    /// The profile.
    pub profile: String,
    /// Its state.
    pub state: State,
    /// The UPST's `exp`.
    pub token_expires_at: Option<i64>,
    /// The UPST's `sess_exp`.
    pub session_expires_at: Option<i64>,
    /// The refresh token's expiry, when known.
    pub refresh_token_expires_at: Option<i64>,
    /// The daemon.
    pub daemon: Daemon,
    /// `fallback_profile`, `null` when unset.
    pub fallback_profile: Option<String>,
    /// The exit code the profile's own `--status` gives.
    pub exit_code: u8,
    /// Why the profile's files or settings cannot even be read (`null` when they can).
    #[serde(serialize_with = "super::plain_opt")]
    pub error: Option<String>,
}

impl Entry {
    /// The entry of a profile's `--status` report.
    pub(crate) fn from_report(report: &Report, fallback_profile: Option<String>) -> Entry {
        Entry {
            profile: report.profile.clone(),
            state: State::of(report),
            token_expires_at: report.token.expires_at,
            session_expires_at: report.token.session_expires_at,
            // A refused one's expiry no longer matters (`--status` says so too).
            refresh_token_expires_at: report
                .refresh_token
                .expires_at
                .filter(|_| report.refresh_token.rejected.is_none()),
            daemon: Daemon::of(&report.daemon),
            fallback_profile,
            exit_code: report.exit_code,
            error: None,
        }
    }
}

/// The exit code of `--status --all`: 0 when every profile is usable or renewable, else the
/// highest exit code of the others.
pub(crate) fn exit_code(entries: &[Entry]) -> u8 {
    entries
        .iter()
        .filter(|e| !matches!(e.state, State::Usable | State::Renewable | State::Fallback))
        .map(|e| e.exit_code)
        .max()
        .unwrap_or(0)
}

/// `--status --all --json`: `{"profiles": [ … ]}`, pretty-printed, with a final newline.
/// With `unresolved`, the `error` and `exit_code` of settings that do not resolve (the profiles
/// then come from the session folders alone).
pub(crate) fn render_json(entries: &[Entry], unresolved: Option<(String, u8)>) -> String {
    #[derive(Serialize)]
    struct All<'a> {
        profiles: &'a [Entry],
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<u8>,
    }
    let (error, exit_code) = unresolved.map_or((None, None), |(e, c)| (Some(e), Some(c)));
    // Plain data: serialization cannot fail. Escaped as every report's JSON is (terminal-safe).
    crate::terminal::to_json_pretty(&All { profiles: entries, error, exit_code }).unwrap_or_default() + "\n"
}

/// The word the JSON has for a state or a daemon (`login_needed`), which the text shows too.
fn word(v: impl Serialize) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// `--status --all`: one aligned row per profile (times in UTC, `-` when unknown).
pub(crate) fn render_text(entries: &[Entry]) -> String {
    let time = |t: Option<i64>| t.map_or_else(|| "-".to_owned(), crate::clock::fmt_utc);
    let rows: Vec<[String; 7]> = entries
        .iter()
        .map(|e| {
            [
                // A name woci refuses may hold anything a section header can.
                crate::terminal::safe(&e.profile).into_owned(),
                word(e.state),
                time(e.token_expires_at),
                time(e.session_expires_at),
                time(e.refresh_token_expires_at),
                word(e.daemon),
                e.fallback_profile.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    let header = ["PROFILE", "STATE", "TOKEN EXPIRES", "SESSION ENDS", "REFRESH TOKEN EXPIRES", "DAEMON", "FALLBACK"];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for cells in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let line: String = cells.iter().zip(widths).map(|(cell, w)| format!("{cell:<w$}  ")).collect();
        let _ = writeln!(out, "{}", line.trim_end());
    }
    // Why a profile cannot even be assessed, below the table (quotes files: made safe to print).
    for e in entries {
        if let Some(why) = &e.error {
            let _ = writeln!(out, "{}: {}", crate::terminal::safe(&e.profile), crate::terminal::safe(why));
        }
    }
    out
}

/// The longest prompt line.
pub(crate) const PROMPT_MAX_CHARS: usize = 40;

/// `--status --prompt`: `P error` when the next call fails whatever the token says (settings, a
/// damaged file), `P fallback` when it runs as the fallback profile, else `P 42m` while the token
/// is valid (whatever comes after it), else `P login` when a login is needed, `P expired` when the
/// next call renews it. At most [`PROMPT_MAX_CHARS`] characters: a long profile name is cut (`…`).
/// One allocation.
pub(crate) fn prompt_line(profile: &str, state: State, secs_left: Option<i64>) -> String {
    // A profile name comes from the environment (`OCI_CLI_PROFILE` of a project's `.envrc`).
    let profile = &*crate::terminal::safe(profile);
    let mut out = String::with_capacity(PROMPT_MAX_CHARS * 4);
    match secs_left {
        // A valid token does not help when the next call fails anyway (a login it needs now, a
        // damaged key, settings): the prompt says what the call meets.
        Some(s) if s > 0 && !matches!(state, State::Impossible | State::LoginNeeded | State::Fallback) => {
            let _ = crate::expiry::write_short_duration(&mut out, s);
        }
        _ => out.push_str(match state {
            State::LoginNeeded => "login",
            State::Impossible => "error",
            State::Fallback => "fallback",
            // Usable without a token: calls that go to oci unchanged (an API-key profile).
            State::Usable if secs_left.is_none() => "ok",
            State::Usable | State::Renewable => "expired",
        }),
    }
    // The suffix is ASCII: its length is its width.
    let room = PROMPT_MAX_CHARS - 1 - out.len();
    out.insert(0, ' ');
    match profile.char_indices().nth(room) {
        None => out.insert_str(0, profile),
        Some(_) => {
            let cut = profile.char_indices().nth(room - 1).map_or(profile.len(), |(i, _)| i);
            out.insert(0, '…');
            out.insert_str(0, &profile[..cut]);
        }
    }
    out
}

/// The profiles `--status --all` shows: every section of the manager INI (`ini_sections`, except
/// `[COMMON]`) and every session folder under `sessions_root`, sorted, once each; a name that
/// cannot be a profile's is listed too, for its row to say so. A missing root is no folder, one
/// that cannot be listed an error (else "no profiles" would hide them).
pub(crate) fn profiles_to_show(sessions_root: &Path, ini_sections: &[&str]) -> crate::error::Result<Vec<String>> {
    let listed = match std::fs::read_dir(sessions_root) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(crate::error::Error::io("cannot list", sessions_root, e))
        }
        listed => listed,
    };
    let folders = listed
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir() && crate::store::SessionStore::holds_session(&e.path()))
        .filter_map(|e| e.file_name().into_string().ok());
    let mut names: Vec<String> =
        ini_sections.iter().filter(|s| **s != COMMON_SECTION).map(|s| (*s).to_owned()).chain(folders).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::daemon::{DaemonInfo, PidProbe};
    use crate::error::exit;
    use crate::jwt::UpstClaims;
    use crate::renew::facts::{testing, SessionFacts, TokenInput};
    use crate::store::RefreshTokenState;

    fn entry(profile: &str, state: State, exit_code: u8) -> Entry {
        Entry {
            profile: profile.into(),
            state,
            token_expires_at: None,
            session_expires_at: None,
            refresh_token_expires_at: None,
            daemon: Daemon::Stopped,
            fallback_profile: None,
            exit_code,
            error: None,
        }
    }

    #[test]
    fn prompt_lines() {
        let clock = ManualClock::at(1_700_000_000);
        let exp = clock.unix() + 42 * 60 + 30;
        let left = Some(exp - clock.unix());
        assert_eq!(prompt_line("prod", State::Usable, left), "prod 42m");
        assert_eq!(prompt_line("prod", State::Renewable, Some(59)), "prod 59s");
        assert_eq!(prompt_line("prod", State::Usable, Some(3 * 3600 + 5 * 60)), "prod 3h05m");
        assert_eq!(prompt_line("prod", State::Usable, Some(50 * 3600)), "prod 2d02h");
        assert_eq!(prompt_line("prod", State::Usable, Some(400 * 86_400)), "prod 99d23h");
        // A valid token the next call cannot use (inside the window, the refresh token refused).
        assert_eq!(prompt_line("prod", State::LoginNeeded, Some(28)), "prod login");
        assert_eq!(prompt_line("prod", State::Renewable, Some(0)), "prod expired");
        assert_eq!(prompt_line("prod", State::Renewable, None), "prod expired");
        assert_eq!(prompt_line("prod", State::LoginNeeded, Some(-5)), "prod login");
        // Calls run as the fallback profile, whatever this one's token says.
        assert_eq!(prompt_line("prod", State::Fallback, Some(28)), "prod fallback");
        assert_eq!(prompt_line("prod", State::Fallback, None), "prod fallback");
        assert_eq!(prompt_line("prod", State::Impossible, None), "prod error");
        // A valid token does not help when the next call fails anyway (a damaged key, settings).
        assert_eq!(prompt_line("prod", State::Impossible, Some(600)), "prod error");
    }

    #[test]
    fn a_hostile_profile_name_reaches_the_prompt_escaped() {
        let line = prompt_line("X\u{1b}]0;HACKED\u{7}\u{1b}[31mRED", State::Impossible, None);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.starts_with("X\\x1b]0;HACKED") && line.ends_with(" error"), "{line}");
    }

    #[test]
    fn prompt_lines_stay_within_forty_characters() {
        let long = "a-very-long-profile-name-for-the-tenancy-of-production";
        for (state, left) in
            [(State::Usable, Some(23 * 3600 + 59 * 60)), (State::Renewable, None), (State::Usable, Some(1))]
        {
            let line = prompt_line(long, state, left);
            assert_eq!(line.chars().count(), PROMPT_MAX_CHARS, "{line}");
            assert!(line.starts_with("a-very-long-profile-name") && line.contains("… "), "{line}");
        }
        let wide = "ü".repeat(60);
        let line = prompt_line(&wide, State::Renewable, None);
        assert_eq!(line.chars().count(), PROMPT_MAX_CHARS);
        assert!(line.ends_with("… expired"), "{line}");
        // Exactly fitting names are not cut.
        let fits = "p".repeat(PROMPT_MAX_CHARS - " expired".len());
        assert_eq!(prompt_line(&fits, State::Renewable, None), format!("{fits} expired"));
    }

    const NOW: i64 = 1_800_000_000;

    /// The `--status` report of an IdP profile with this token and refresh token.
    fn report(token: TokenInput, rt: RefreshTokenState) -> Report {
        let facts = SessionFacts::for_tests(token, testing::login(), rt);
        let daemon = DaemonInfo { probe: PidProbe::NotRunning { stale_pid: None }, state: None, state_error: None };
        crate::status::assess(
            &crate::status::Inputs {
                facts,
                daemon,
                origins: Default::default(),
                shared: Default::default(),
                fallback_profile: None,
                auth: None,
                start: None,
                program: None,
                last_failure: None,
                renewing: None,
                clock_skew: 0,
                terminal: true,
            },
            NOW,
        )
    }

    fn token(exp: i64) -> TokenInput {
        testing::present(UpstClaims {
            exp,
            iat: Some(exp - 3600),
            sub: None,
            tenant: None,
            sess_exp: Some((NOW + 86_400).into()),
            jti: None,
            jwk: None,
        })
    }

    /// A profile that cannot even be assessed says why, below the table and in the JSON.
    #[test]
    fn why_a_profile_cannot_be_assessed_is_said() {
        let e = Entry {
            profile: "P".into(),
            exit_code: 7,
            error: Some("corrupt file x: line 3".into()),
            ..Entry::default()
        };
        assert!(render_text(std::slice::from_ref(&e)).ends_with("\nP: corrupt file x: line 3\n"));
        assert!(render_json(&[e], None).contains("\"error\": \"corrupt file x: line 3\""));
    }

    /// A daemon stopped with SIGSTOP is neither `running` nor `stopped` (none runs) at a glance,
    /// nor is one running a replaced binary.
    #[test]
    fn a_suspended_daemon_has_a_word_of_its_own() {
        let mut r = report(token(NOW + 3000), RefreshTokenState::Plain);
        let daemon_of = |r: &Report| Entry::from_report(r, None).daemon;
        assert_eq!(daemon_of(&r), Daemon::Stopped);
        r.daemon.running = true;
        assert_eq!(daemon_of(&r), Daemon::Running);
        r.daemon.stopped = true;
        let e = Entry::from_report(&r, None);
        assert_eq!(e.daemon, Daemon::Suspended);
        assert!(render_text(std::slice::from_ref(&e)).contains("suspended"));
        assert!(render_json(&[e], None).contains("\"daemon\": \"suspended\""));
        // One whose binary was replaced (an upgrade) runs old code (round 98 N3).
        r.daemon.stopped = false;
        r.daemon.binary_replaced = true;
        let e = Entry::from_report(&r, None);
        assert_eq!(e.daemon, Daemon::Outdated);
        assert!(render_json(&[e], None).contains("\"daemon\": \"outdated\""));
    }

    #[test]
    fn states_of_real_reports() {
        let cases = [
            (token(NOW + 3000), RefreshTokenState::Plain, State::Usable, 0),
            (token(NOW - 10), RefreshTokenState::Plain, State::Renewable, 0),
            (token(NOW - 10), RefreshTokenState::Absent, State::LoginNeeded, exit::LOGIN),
            (TokenInput::Corrupt("not a JWT".into()), RefreshTokenState::Plain, State::Impossible, exit::CORRUPT_FILE),
        ];
        for (tok, rt, state, code) in cases {
            let r = report(tok, rt);
            let e = Entry::from_report(&r, None);
            assert_eq!((e.state, e.exit_code), (state, code), "{}", r.reason);
        }
        let r = report(token(NOW + 3000), RefreshTokenState::Plain);
        assert_eq!(prompt_line(&r.profile, State::of(&r), r.token.expires_in), "P 50m");
    }

    #[test]
    fn states_of_every_next_action() {
        let report = |exit_code, next_action| {
            let mut r = report(TokenInput::Missing, RefreshTokenState::Absent);
            r.exit_code = exit_code;
            r.next_action = next_action;
            r
        };
        assert_eq!(State::of(&report(0, "none")), State::Usable);
        assert_eq!(State::of(&report(0, "finish_config")), State::Usable);
        for a in ["refresh", "session_refresh", "exchange"] {
            assert_eq!(State::of(&report(0, a)), State::Renewable);
        }
        assert_eq!(State::of(&report(exit::LOGIN, "login")), State::LoginNeeded);
        assert_eq!(State::of(&report(exit::SESSION_EXPIRED, "impossible")), State::LoginNeeded);
        for code in [exit::CONFIG, exit::CORRUPT_FILE, exit::REFRESH_TOKEN_LOCKED] {
            assert_eq!(State::of(&report(code, "impossible")), State::Impossible);
        }
    }

    #[test]
    fn entries_come_from_reports_and_print_as_specified() {
        let mut r = report(token(1_700_003_600), RefreshTokenState::Plain);
        r.exit_code = 0;
        r.next_action = "none";
        r.token.session_expires_at = Some(1_700_086_400);
        r.daemon.running = true;
        let e = Entry::from_report(&r, Some("backup".into()));
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&[e.clone(), entry("dev", State::LoginNeeded, 3)], None)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"profiles": [
                {"profile": r.profile, "state": "usable", "token_expires_at": 1_700_003_600,
                 "session_expires_at": 1_700_086_400, "refresh_token_expires_at": null, "daemon": "running",
                 "fallback_profile": "backup", "exit_code": 0, "error": null},
                {"profile": "dev", "state": "login_needed", "token_expires_at": null, "session_expires_at": null,
                 "refresh_token_expires_at": null, "daemon": "stopped", "fallback_profile": null, "exit_code": 3,
                 "error": null},
            ]})
        );
        assert!(render_json(&[], None).ends_with("}\n"));
        let text = render_text(&[e, entry("dev", State::LoginNeeded, 3)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("PROFILE") && lines[0].ends_with("FALLBACK"), "{text}");
        assert!(
            lines[1].contains("usable") && lines[1].contains("2023-11-14T23:13:20Z") && lines[1].ends_with("backup"),
            "{text}"
        );
        assert!(lines[2].starts_with("dev ") && lines[2].contains("login_needed") && lines[2].ends_with('-'), "{text}");
        // Columns line up.
        let col = |l: &str| l.find("STATE").or_else(|| l.find("usable")).or_else(|| l.find("login_needed"));
        assert_eq!(col(lines[0]), col(lines[1]));
        assert_eq!(col(lines[1]), col(lines[2]));
    }

    #[test]
    fn the_exit_code_is_the_highest_of_the_profiles_not_usable_or_renewable() {
        assert_eq!(exit_code(&[]), 0);
        assert_eq!(exit_code(&[entry("a", State::Usable, 0), entry("b", State::Renewable, 0)]), 0);
        let mixed = [
            entry("a", State::Usable, 0),
            entry("b", State::LoginNeeded, exit::LOGIN),
            entry("c", State::Impossible, exit::CORRUPT_FILE),
            entry("d", State::Impossible, exit::CONFIG),
        ];
        assert_eq!(exit_code(&mixed), exit::CORRUPT_FILE);
    }

    #[test]
    fn profiles_are_ini_sections_and_session_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sessions");
        for (d, f) in [("prod", "token"), ("ci", "refresh_token"), ("shared", "oci_api_key.pem")] {
            std::fs::create_dir_all(root.join(d)).unwrap();
            std::fs::write(root.join(d).join(f), "").unwrap();
        }
        // What a failed call for a profile without a session may leave: not a profile.
        std::fs::create_dir_all(root.join("typo")).unwrap();
        std::fs::write(root.join("typo/.lock"), "").unwrap();
        std::fs::write(root.join("typo/woci-metrics.json"), "{}").unwrap();
        std::fs::write(root.join(".metrics.lock"), "").unwrap();
        std::fs::write(root.join("stray-file"), "").unwrap();
        assert_eq!(
            profiles_to_show(&root, &["COMMON", "shared", "DEFAULT", "dev", "bad/name"]).unwrap(),
            ["DEFAULT", "bad/name", "ci", "dev", "prod", "shared"],
            "a name no profile can have is listed, for its row to say why"
        );
        assert_eq!(profiles_to_show(&tmp.path().join("none"), &["dev"]).unwrap(), ["dev"]);
        assert!(profiles_to_show(&tmp.path().join("none/x"), &[]).is_ok());
        std::fs::write(tmp.path().join("file"), "").unwrap();
        assert!(profiles_to_show(&tmp.path().join("file"), &[]).unwrap_err().to_string().starts_with("cannot list"));
        // A session folder named COMMON is a profile of that name.
        std::fs::create_dir_all(root.join("COMMON")).unwrap();
        std::fs::write(root.join("COMMON/token"), "").unwrap();
        assert!(profiles_to_show(&root, &["COMMON"]).unwrap().contains(&"COMMON".to_owned()));
    }
}
