//! The clock, behind a trait so every expiry decision can be tested at any instant.
//!
//! Protocol code never calls `SystemTime::now()` directly; it asks a [`Clock`].

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
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

    /// This boot's identity and the time since it began, suspends included (a clock that a step
    /// of the wall clock does not move); `None` where unknown.
    fn since_boot(&self) -> Option<(String, Duration)> {
        None
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

/// `3m00s behind` / `1h02m00s ahead of`, for a clock skew (seconds, the servers' time minus
/// this machine's).
pub fn skew_words(skew: i64) -> String {
    format!("{} {}", fmt_secs(skew.abs()), if skew < 0 { "ahead of" } else { "behind" })
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

    #[cfg(target_os = "linux")]
    fn since_boot(&self) -> Option<(String, Duration)> {
        static BOOT_ID: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let id = BOOT_ID
            .get_or_init(|| {
                let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
                Some(id.trim().to_owned()).filter(|id| !id.is_empty())
            })
            .clone()?;
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        let secs = u64::try_from(t.tv_sec).ok()?;
        Some((id, Duration::new(secs, u32::try_from(t.tv_nsec).ok()?)))
    }
}

/// A clock that stays where it is set; for tests. Its boot began at its first time, and
/// [`ManualClock::step`] moves the wall clock alone, as a user or NTP setting the clock does.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>, Arc<AtomicI64>);

impl ManualClock {
    /// A clock at `unix` seconds.
    pub fn at(unix: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(unix)), Arc::new(AtomicI64::new(unix.try_into().unwrap_or(0))))
    }

    /// Moves the clock forward, as time passing does.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }

    /// Sets the wall clock `secs` forward (back when negative); time since boot stays.
    pub fn step(&self, secs: i64) {
        let now = i64::try_from(self.0.load(Ordering::SeqCst)).unwrap_or(0);
        self.0.store(u64::try_from(now + secs).unwrap_or(0), Ordering::SeqCst);
        self.1.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.load(Ordering::SeqCst))
    }

    fn since_boot(&self) -> Option<(String, Duration)> {
        let booted_at = self.1.load(Ordering::SeqCst);
        let since = unix_secs(self.now()) - booted_at;
        Some(("manual".to_owned(), Duration::from_secs(u64::try_from(since).unwrap_or(0))))
    }
}

/// How far this machine's clock is from the servers', learned from a server's fresh token
/// (its `iat` is the server's "now") and kept in the session folder. Tied to the boot and
/// measured against the time since it, so a later step of the wall clock (NTP setting it right,
/// a user) is followed, not applied twice; another boot forgets it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skew {
    /// The servers' time minus this machine's, milliseconds, when it was learned.
    pub offset_ms: i64,
    /// The boot it was learned in, and the wall clock minus the time since boot then.
    pub boot: Option<(String, i64)>,
}

/// OCI refuses a signed request whose `date` is further than this from its clock.
pub const OCI_DATE_LIMIT_SECS: i64 = 300;

/// The largest skew applied: a century.
const MAX_SKEW_MS: i64 = 100 * 366 * 86_400_000;

/// Offsets smaller than this are noise (`iat` has whole seconds, servers differ a little).
const SKEW_NOISE_MS: i64 = 2_000;

/// How much a learned offset may fall short of the real one: offsets under the noise floor count
/// as none, and `iat`'s whole seconds hide up to one more.
pub const SKEW_UNCERTAINTY_SECS: i64 = SKEW_NOISE_MS / 1000 + 1;

impl Skew {
    /// What a token issued at `iat` (server seconds) and received by a request sent at `sent`
    /// shows, both read from `local`: the server issued it between the two, so this machine is
    /// off by no less than the nearest end of that span (none when the span explains it: a slow
    /// answer, a suspend, a stop).
    pub fn learn(local: &dyn Clock, iat: i64, sent: SystemTime) -> Skew {
        let received = unix_millis(local.now());
        // A server's `iat` may be anything: no overflow.
        let iat_ms = iat.saturating_mul(1000);
        let (least, most) =
            (iat_ms.saturating_sub(received), iat_ms.saturating_add(1000).saturating_sub(unix_millis(sent)));
        let offset_ms = if least > 0 { least } else { most.min(0) };
        let offset_ms = if offset_ms.abs() < SKEW_NOISE_MS { 0 } else { offset_ms };
        Skew { offset_ms, boot: wall_minus_boot(local) }
    }

    /// The offset to apply now: as learned, less any step of the wall clock since; none after a
    /// reboot (nothing ties the clocks then).
    pub fn offset_now_ms(&self, local: &dyn Clock) -> i64 {
        let offset = match (&self.boot, wall_minus_boot(local)) {
            (None, _) => self.offset_ms,
            (Some((id, then)), Some((now_id, now))) if *id == now_id => {
                self.offset_ms.saturating_sub(now.saturating_sub(*then))
            }
            _ => 0,
        };
        // A file no renewal wrote (hand-made, damaged) must not overflow a time.
        offset.clamp(-MAX_SKEW_MS, MAX_SKEW_MS)
    }
}

fn wall_minus_boot(local: &dyn Clock) -> Option<(String, i64)> {
    let (id, since) = local.since_boot()?;
    Some((id, unix_millis(local.now()) - i64::try_from(since.as_millis()).unwrap_or(0)))
}

/// Token time: this machine's clock, and the servers' as the last [`Skew`] learned showed it.
/// Every decision about a token's life goes by the later of the two (see the `Clock` impl), every
/// `date` woci signs by the servers' ([`ServerClock::servers`]); woci's own records and logs keep
/// the machine's clock.
#[derive(Debug)]
pub struct ServerClock {
    local: SharedClock,
    skew: std::sync::RwLock<Option<Skew>>,
}

impl ServerClock {
    /// This machine's clock, corrected by `skew` when known.
    pub fn new(local: SharedClock, skew: Option<Skew>) -> ServerClock {
        ServerClock { local, skew: std::sync::RwLock::new(skew) }
    }

    /// The servers' time alone (this clock's own time is the later of it and this machine's).
    pub fn servers(&self) -> ServersTime<'_> {
        ServersTime(self)
    }

    /// The correction applied now, milliseconds (servers minus this machine).
    pub fn offset_ms(&self) -> i64 {
        let skew = self.skew.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        skew.as_ref().map_or(0, |s| s.offset_now_ms(self.local.as_ref()))
    }

    /// How far token time is ahead of this machine's clock, seconds (0 unless this clock is
    /// behind the servers'): what turns a time taken by this clock into token time, and back.
    pub fn ahead_secs(&self) -> i64 {
        self.offset_ms().max(0) / 1000
    }

    /// `valid for 4m00s` for a token ending at `exp`, in token time. A token `oci` already calls
    /// expired by this machine's clock while OCI still takes it (this clock far ahead) says so,
    /// rather than "valid for 0s".
    pub fn validity(&self, exp: i64) -> String {
        let left = exp.saturating_sub(self.unix());
        let at_oci = exp.saturating_sub(self.servers().unix());
        if left > 0 || at_oci <= 0 {
            return format!("valid for {}", fmt_secs(left.max(0)));
        }
        format!(
            "valid for {} by the servers' clock, but this machine's clock is {} them, so `oci` calls it expired: set \
             the clock right",
            fmt_secs(at_oci),
            skew_words(self.offset_ms() / 1000)
        )
    }

    /// Learns the offset from a fresh token (see [`Skew::learn`]) and returns it, for the
    /// session folder.
    pub fn learn(&self, iat: i64, sent: SystemTime) -> Skew {
        let skew = Skew::learn(self.local.as_ref(), iat, sent);
        *self.skew.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(skew.clone());
        skew
    }
}

/// A token is used up when any of its judges says so: OCI by the servers' time, `oci` (which
/// checks the token file's `exp` before it sends anything) and kubectl by this machine's. So a
/// token's life goes by the later of the two.
impl Clock for ServerClock {
    fn now(&self) -> SystemTime {
        self.local.now() + Duration::from_millis(self.offset_ms().max(0).unsigned_abs())
    }

    fn since_boot(&self) -> Option<(String, Duration)> {
        self.local.since_boot()
    }
}

/// The servers' time alone ([`ServerClock::servers`]): the `date` of what woci signs, and
/// whether a fresh token is still good at OCI.
#[derive(Debug)]
pub struct ServersTime<'a>(&'a ServerClock);

impl Clock for ServersTime<'_> {
    fn now(&self) -> SystemTime {
        let now = self.0.local.now();
        let offset = self.0.offset_ms();
        let by = Duration::from_millis(offset.unsigned_abs());
        if offset >= 0 {
            now + by
        } else {
            now.checked_sub(by).unwrap_or(UNIX_EPOCH)
        }
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
    fn the_skew_is_what_the_span_of_the_request_cannot_explain() {
        let local = ManualClock::at(10_000);
        let sent = local.now();
        // A right clock: issued while the request was out.
        local.advance(Duration::from_secs(1));
        assert_eq!(Skew::learn(&local, 10_000, sent).offset_ms, 0);
        // A stop or suspend of an hour after the server answered is no skew either.
        local.advance(Duration::from_secs(3_600));
        assert_eq!(Skew::learn(&local, 10_001, sent).offset_ms, 0);
        // This clock 55 minutes ahead: the server issued 55 minutes before the request left.
        let local = ManualClock::at(20_000);
        let sent = local.now();
        local.advance(Duration::from_secs(1));
        assert_eq!(Skew::learn(&local, 20_000 - 3_300, sent).offset_ms, -3_299_000);
        // Three minutes behind: issued after the answer arrived by this clock.
        assert_eq!(Skew::learn(&local, 20_001 + 180, sent).offset_ms, 180_000);
    }

    #[test]
    fn the_server_clock_follows_steps_of_the_wall_clock_and_forgets_other_boots() {
        let local = ManualClock::at(50_000);
        let sent = local.now();
        let server = ServerClock::new(Arc::new(local.clone()), None);
        assert_eq!(server.unix(), 50_000);
        server.learn(50_000 + 240, sent);
        assert_eq!(server.unix(), 50_240);
        local.advance(Duration::from_secs(10));
        assert_eq!(server.unix(), 50_250);
        // NTP sets the clock right: the servers' time stays where it was.
        local.step(240);
        assert_eq!((local.unix(), server.unix()), (50_250, 50_250));
        // This clock ahead: a token's life goes by it (`oci` judges by it), dates by the servers'.
        server.learn(local.unix() - 120, local.now());
        assert_eq!((server.unix(), server.servers().unix()), (local.unix(), local.unix() - 119));
        // Another boot: nothing ties this clock to the servers' any more.
        let skew = Skew { offset_ms: 240_000, boot: Some(("another".into(), 0)) };
        assert_eq!(ServerClock::new(Arc::new(local.clone()), Some(skew)).unix(), local.unix());
    }

    #[test]
    fn a_token_oci_calls_expired_but_oci_takes_says_so() {
        let local = ManualClock::at(90_000);
        let server = ServerClock::new(Arc::new(local.clone()), None);
        assert_eq!(server.validity(90_300), "valid for 5m00s");
        assert_eq!(server.validity(89_000), "valid for 0s");
        // This clock two days ahead (learned to the second the `iat` allows): a fresh token is
        // over for `oci`, not for OCI.
        server.learn(90_000 - 2 * 86_400, local.now());
        assert_eq!(
            server.validity(90_000 - 2 * 86_400 + 3_600),
            "valid for 59m59s by the servers' clock, but this machine's clock is 47h59m59s ahead of them, so `oci` \
             calls it expired: set the clock right"
        );
    }

    #[test]
    fn relative_moments_never_read_as_negative() {
        assert_eq!(fmt_relative(300), "in 5m00s");
        assert_eq!(fmt_relative(0), "0s ago");
        assert_eq!(fmt_relative(-4), "4s ago");
    }
}
