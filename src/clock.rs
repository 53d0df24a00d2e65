//! The clock, behind a trait so every expiry decision can be tested at any instant.
//!
//! Protocol code never calls `SystemTime::now()` directly; it asks a [`Clock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time as whole seconds since the Unix epoch.
    fn unix(&self) -> i64 {
        unix_secs(self.now())
    }
}

/// Whole seconds since the Unix epoch (negative before 1970).
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// Proleptic Gregorian date (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Formats epoch seconds as `2025-11-08T17:19:55Z`.
pub fn fmt_utc(unix: i64) -> String {
    let secs = unix.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, (secs % 3600) / 60, secs % 60)
}

/// Formats a duration in seconds as `1h02m03s` / `4m05s` / `6s` (negative: `-4m05s`).
pub fn fmt_secs(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{sign}{s}s"),
        (0, m, s) => format!("{sign}{m}m{s:02}s"),
        (h, m, s) => format!("{sign}{h}h{m:02}m{s:02}s"),
    }
}

/// `in 5m00s`, or `5m00s ago` for a moment not in the future (`secs` from now).
pub fn fmt_relative(secs: i64) -> String {
    if secs > 0 {
        format!("in {}", fmt_secs(secs))
    } else {
        format!("{} ago", fmt_secs(-secs))
    }
}

/// Milliseconds since the Unix epoch (0 before 1970).
pub fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods, reason = "the one place that reads the real clock")]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that stays where it is set; for tests.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock at `unix` seconds.
    pub fn at(unix: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(unix)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_advances() {
        let c = ManualClock::at(1_000);
        assert_eq!(c.unix(), 1_000);
        c.advance(Duration::from_secs(61));
        assert_eq!(c.unix(), 1_061);
    }

    #[test]
    fn relative_moments_never_read_as_negative() {
        assert_eq!(fmt_relative(300), "in 5m00s");
        assert_eq!(fmt_relative(0), "0s ago");
        assert_eq!(fmt_relative(-4), "4s ago");
    }
}
