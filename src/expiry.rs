//! Warning before the hard end (`expiring_warning`): which of a profile's unrenewable deadlines —
//! the OCI session's `sess_exp`, the refresh token's known expiry — fall within the warning
//! window and the warning line that says so (the setting's duration syntax is the one rule of
//! `crate::settings::rules::duration`). Pure: the caller
//! rate-limits and runs the `on_expiring` hook ([`crate::hooks`]).

use std::time::Duration;

/// What ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum What {
    /// The OCI session (`sess_exp`): no renewal can extend it.
    Session,
    /// The refresh token: renewals stop working after it.
    RefreshToken,
}

impl What {
    /// The name in the hook's JSON and in rate-limit keys: `session` | `refresh_token`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            What::Session => "session",
            What::RefreshToken => "refresh_token",
        }
    }
}

/// A deadline inside the warning window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expiring {
    /// What ends.
    pub what: What,
    /// When (epoch seconds).
    pub at: i64,
}

/// The default notice before an OCI session's hard end (`sess_exp`, at most 24 h after the login).
pub(crate) const SESSION_WARNING: Duration = Duration::from_secs(3600);

/// The default notice before the refresh token's expiry (IdPs give days or weeks).
pub(crate) const REFRESH_TOKEN_WARNING: Duration = Duration::from_secs(24 * 3600);

/// The deadlines that fall within `window` after `now` (still ahead, at most `window` away),
/// session first. A zero window warns of nothing.
///
/// Pass `sess_exp` only for a profile renewed by OCI session refresh: a profile with an IdP or a
/// subject-token source starts a new session at every renewal, so its `sess_exp` is no hard end
/// (and a 24 h session would warn all day).
pub(crate) fn expiring(
    now: i64,
    sess_exp: Option<i64>,
    refresh_token_exp: Option<i64>,
    window: Duration,
) -> Vec<Expiring> {
    let window = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    [(What::Session, sess_exp), (What::RefreshToken, refresh_token_exp)]
        .into_iter()
        .filter_map(|(what, at)| Some(Expiring { what, at: at? }))
        .filter(|e| e.at > now && e.at - now <= window)
        .collect()
}

/// The warning line (after `woci: warning: `): the profile, what ends (`session` | `refresh
/// token`), when, and the command that starts a new session.
pub(crate) fn warning_line(profile: &str, e: &Expiring, now: i64) -> String {
    // A session's hard end is that of a profile without an IdP: its login is oci's.
    let login = match e.what {
        What::Session => "command oci session authenticate",
        What::RefreshToken => "woci session authenticate",
    };
    format!(
        "the {} of profile `{profile}` expires at {} (in {}); renew it with `{login} --profile {profile}`",
        e.what.as_str().replace('_', " "),
        crate::clock::fmt_utc(e.at),
        short_duration(e.at - now)
    )
}

/// A duration for people, at most two units, rounded down: `45s`, `42m`, `3h05m`, `2d04h`; at
/// most `99d23h` (6 characters).
pub(crate) fn short_duration(secs: i64) -> String {
    let mut s = String::new();
    let _ = write_short_duration(&mut s, secs);
    s
}

/// [`short_duration`] into `w` (the prompt line formats without allocating again).
pub(crate) fn write_short_duration(w: &mut impl std::fmt::Write, secs: i64) -> std::fmt::Result {
    let s = secs.clamp(0, 100 * 86_400 - 1);
    match (s / 86_400, (s % 86_400) / 3600, (s % 3600) / 60) {
        (0, 0, 0) => write!(w, "{s}s"),
        (0, 0, m) => write!(w, "{m}m"),
        (0, h, m) => write!(w, "{h}h{m:02}m"),
        (d, h, _) => write!(w, "{d}d{h:02}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    const H: i64 = 3600;

    #[test]
    fn only_deadlines_ahead_and_inside_the_window_are_reported() {
        let clock = ManualClock::at(1_700_000_000);
        let now = clock.unix();
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(expiring(now, None, None, day), []);
        assert_eq!(expiring(now, Some(now + 25 * H), Some(now + 30 * H), day), []);
        assert_eq!(
            expiring(now, Some(now + 24 * H), Some(now + 2 * H), day),
            [
                Expiring { what: What::Session, at: now + 24 * H },
                Expiring { what: What::RefreshToken, at: now + 2 * H }
            ]
        );
        // Already over: the failing renewal says so; no warning of the past.
        assert_eq!(expiring(now, Some(now), Some(now - 1), day), []);
        assert_eq!(expiring(now, Some(now + 1), None, Duration::ZERO), []);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(
            expiring(clock.unix(), Some(now + 25 * H), None, day),
            [Expiring { what: What::Session, at: now + 25 * H }]
        );
    }

    #[test]
    fn the_warning_names_profile_what_when_and_the_command() {
        let now = 1_700_000_000;
        let e = Expiring { what: What::RefreshToken, at: now + 3 * H + 5 * 60 + 59 };
        assert_eq!(
            warning_line("prod", &e, now),
            "the refresh token of profile `prod` expires at 2023-11-15T01:19:19Z (in 3h05m); renew it with `woci session authenticate --profile prod`"
        );
        let s = Expiring { what: What::Session, at: now + 90 };
        assert_eq!(
            warning_line("p", &s, now),
            "the session of profile `p` expires at 2023-11-14T22:14:50Z (in 1m); renew it with `command oci session authenticate --profile p`"
        );
        assert_eq!((What::Session.as_str(), What::RefreshToken.as_str()), ("session", "refresh_token"));
    }

    #[test]
    fn short_durations() {
        for (secs, text) in [
            (-5, "0s"),
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (42 * 60 + 59, "42m"),
            (H, "1h00m"),
            (23 * H + 59 * 60, "23h59m"),
            (24 * H, "1d00h"),
            (50 * H, "2d02h"),
            (400 * 24 * H, "99d23h"),
        ] {
            assert_eq!(short_duration(secs), text, "{secs}");
        }
    }
}
