//! What the proxy grants a local client before and after it authenticates, so that no local user
//! can stall it or exhaust woci's file descriptors: a header-read timeout, an idle timeout on every
//! client connection (tunnels included), a cap on connections, a smaller cap on connections that
//! have not authenticated yet (the oldest is closed to make room), and warnings limited to one
//! line per kind per interval. At the cap, an opened tunnel kept alive between requests is closed
//! for a new connection (the longest idle first), as a busy web server drops its idle keep-alive
//! connections: a program that makes a client per task is served instead of refused.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The proxy's resource limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time a client has to send its complete CONNECT request head.
    pub header_read: Duration,
    /// The same for requests inside an opened tunnel; hyper also counts the keep-alive wait for
    /// the next request, so this is as long as a server's usual keep-alive.
    pub tunnel_header_read: Duration,
    /// A client connection (tunnel or opened) with no byte in either direction for this long is
    /// closed. Generous: a slow upstream answer leaves the client side silent meanwhile.
    pub idle: Duration,
    /// Client connections at once; each costs up to two file descriptors (client + upstream).
    pub max_connections: usize,
    /// Connections that have not sent valid credentials yet; past it the oldest is closed.
    pub max_unauthenticated: usize,
    /// One warning line per kind per this interval (with the count of the ones left out).
    pub warn_interval: Duration,
    /// The cap is `proxy_max_connections`'s, not the open-file limit's.
    pub cap_set: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::for_fd_limit(1024)
    }
}

impl Limits {
    /// Limits that fit a process allowed `nofile` descriptors: half of what is left after a
    /// reserve for woci's own files, the child's pipes and renewals goes to client connections
    /// (each may need an upstream socket too).
    pub fn for_fd_limit(nofile: u64) -> Limits {
        let usable = usize::try_from(nofile.saturating_sub(128)).unwrap_or(usize::MAX);
        let max_connections = (usable / 2).clamp(16, 4096);
        Limits {
            header_read: Duration::from_secs(10),
            tunnel_header_read: Duration::from_secs(60),
            idle: Duration::from_secs(600),
            max_connections,
            max_unauthenticated: (max_connections / 4).clamp(8, 128),
            warn_interval: Duration::from_secs(10),
            cap_set: false,
        }
    }

    /// These limits with at most `max` connections (`proxy_max_connections`), of which at most a
    /// quarter unauthenticated, but 8 at least (never more than `max`): a small cap must still let
    /// a few of the program's new connections open at once (round 106 F1: at 4, the second of two
    /// closed the first).
    pub fn with_max_connections(self, max: usize) -> Limits {
        Limits { max_connections: max, max_unauthenticated: (max / 4).clamp(8, 128).min(max), cap_set: true, ..self }
    }

    /// [`Limits::for_fd_limit`] with this process's soft `RLIMIT_NOFILE`.
    pub fn for_this_process() -> Limits {
        #[cfg(unix)]
        return Limits::for_fd_limit(
            rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX),
        );
        #[cfg(not(unix))]
        Limits::default()
    }
}

/// One admitted client connection. Dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Admission {
    slot: Arc<Slot>,
}

/// A connection's place: the request handlers mark it authenticated and count an opened tunnel's
/// requests; the gate tells it to close.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    /// Another local user's connection ([`super::peer`]): closed before this user's own.
    foreign: bool,
    authenticated: AtomicBool,
    done: AtomicBool,
    /// Told to close: at once without credentials, an opened tunnel when it has no request.
    evicted: AtomicBool,
    /// The connection's task, woken when it is told to close.
    waker: Mutex<Option<Waker>>,
    requests: Mutex<Requests>,
}

/// An opened tunnel's requests in flight, and since when it has had none (`None` before its
/// first request has ended: a client on its way in, and while one is in flight).
#[derive(Debug, Default)]
struct Requests {
    in_flight: usize,
    idle_since: Option<Instant>,
}

/// What [`Gate::admit`] closed to make room.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Closed {
    /// Connections that had not authenticated.
    pub(crate) unauthenticated: usize,
    /// Of those, another local user's.
    pub(crate) foreign: usize,
    /// An opened tunnel between requests (the one idle longest).
    pub(crate) idle: bool,
}

/// Admission control for client connections.
#[derive(Debug)]
pub(crate) struct Gate {
    limits: Limits,
    /// Every admitted connection not yet dropped, oldest first.
    slots: Mutex<Vec<Arc<Slot>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Gate {
    pub(crate) fn new(limits: Limits) -> Arc<Gate> {
        Arc::new(Gate { limits, slots: Mutex::new(Vec::new()) })
    }

    /// Admits a new (unauthenticated) connection, `foreign` when another local user's, closing the
    /// oldest unauthenticated ones (another user's first; only theirs for their new one) when
    /// their cap is reached, and at the connection cap another user's unauthenticated one, else
    /// (for this user's new one only) the opened tunnel idle longest between requests, else the
    /// oldest unauthenticated one: the admission and what was closed for it, or `None` when
    /// nothing may be closed for it.
    pub(crate) fn admit(self: &Arc<Gate>, foreign: bool) -> Option<(Admission, Closed)> {
        let limits = self.limits;
        let mut slots = lock(&self.slots);
        slots.retain(|s| !s.done.load(Ordering::SeqCst));
        let staying = |s: &&Arc<Slot>| !s.evicted.load(Ordering::SeqCst);
        let mut open = slots.iter().filter(staying).count();
        let waiting = |of: bool| {
            slots.iter().filter(staying).filter(move |s| s.foreign == of && !s.authenticated.load(Ordering::SeqCst))
        };
        // Another local user's first: their flood closes their own, not the program's new ones.
        let unauthenticated: Vec<&Arc<Slot>> = waiting(true).chain(waiting(false)).collect();
        let mut closed = Closed::default();
        let mut oldest = unauthenticated.iter().peekable();
        let close = |closed: &mut Closed, s: &Arc<Slot>| {
            s.evict();
            closed.unauthenticated += 1;
            closed.foreign += usize::from(s.foreign);
        };
        // Past their own cap, the oldest connections without credentials go (a local flood); another
        // user's new one never displaces one of this user's.
        while unauthenticated.len() - closed.unauthenticated >= limits.max_unauthenticated {
            let Some(old) = oldest.next_if(|s| s.foreign || !foreign) else {
                if oldest.peek().is_some() {
                    return None;
                }
                break;
            };
            close(&mut closed, old);
            open -= 1;
        }
        if open >= limits.max_connections {
            // At the cap: another user's connection without credentials first; another user's
            // new one never displaces one of this user's (round 103 F1); then a kept-alive tunnel
            // between requests (its client connects again when it needs it), not a new client
            // still on its way in (round 101 F2); else the oldest connection without credentials.
            if let Some(theirs) = oldest.next_if(|s| s.foreign) {
                close(&mut closed, theirs);
            } else if foreign {
                return None;
            } else {
                let idle = slots.iter().filter(staying).filter_map(|s| lock(&s.requests).idle_since.map(|t| (t, s)));
                match idle.min_by_key(|(since, _)| *since) {
                    Some((_, longest)) => {
                        longest.evict();
                        closed.idle = true;
                    }
                    None => close(&mut closed, oldest.next()?),
                }
            }
        }
        let slot = Arc::new(Slot { foreign, ..Slot::default() });
        slots.push(slot.clone());
        Some((Admission { slot }, closed))
    }

    /// Connections admitted and not yet closed.
    #[cfg(test)]
    pub(crate) fn active(&self) -> usize {
        lock(&self.slots).iter().filter(|s| !s.done.load(Ordering::SeqCst)).count()
    }
}

impl Admission {
    /// Its place, which the request handlers keep to mark the connection authenticated and count
    /// an opened tunnel's requests.
    pub(crate) fn slot(&self) -> Arc<Slot> {
        self.slot.clone()
    }
}

impl Slot {
    /// The client sent valid credentials: it is no longer closed for a new connection unless it
    /// becomes an opened tunnel idle between requests.
    pub(crate) fn authenticated(&self) {
        self.authenticated.store(true, Ordering::SeqCst);
    }

    /// A request of an opened tunnel begins; it ends when the guard is dropped (with its response).
    pub(crate) fn request(self: &Arc<Self>) -> InFlight {
        let mut r = lock(&self.requests);
        r.in_flight += 1;
        r.idle_since = None;
        InFlight(self.clone())
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::SeqCst);
        if let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
    }

    /// Whether the connection is to close now (told to, and no request in flight); `waker` is
    /// woken when that may change.
    fn must_close(&self, waker: &Waker) -> bool {
        {
            let mut slot = lock(&self.waker);
            if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                *slot = Some(waker.clone());
            }
        }
        self.evicted.load(Ordering::SeqCst) && lock(&self.requests).in_flight == 0
    }
}

/// One request in flight on an opened tunnel.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Slot>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut r = lock(&self.0.requests);
        r.in_flight -= 1;
        if r.in_flight == 0 {
            r.idle_since = Some(Instant::now());
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.slot.done.store(true, Ordering::SeqCst);
    }
}

/// A client stream that fails with `TimedOut` after [`Limits::idle`] without a byte either way,
/// or with `ConnectionAborted` once the gate told it to close, and holds the connection's
/// [`Admission`] for as long as the stream lives (upgraded tunnels included).
pub(crate) struct IdleIo<T> {
    inner: T,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    admission: Option<Admission>,
    /// The last write or flush was pending: a response's tail is still on its way to a slow
    /// reader (its request no longer counts as in flight once hyper holds all of it), so the
    /// connection is busy, not idle, until it has gone out.
    sending: bool,
}

impl<T> IdleIo<T> {
    pub(crate) fn new(inner: T, idle: Duration, admission: Option<Admission>) -> IdleIo<T> {
        let now = Instant::now();
        let timer = Box::pin(tokio::time::sleep_until(now + idle));
        IdleIo { inner, idle, last: now, timer, admission, sending: false }
    }

    /// `Ready(Err)` once the connection has been idle for too long or was told to close; re-arms
    /// the timer otherwise.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if !self.sending && self.admission.as_ref().is_some_and(|a| a.slot.must_close(cx.waker())) {
            return Poll::Ready(io::Error::new(io::ErrorKind::ConnectionAborted, "closed to make room"));
        }
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = self.last + self.idle;
            if Instant::now() >= deadline {
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "client connection idle for too long"));
            }
            self.timer.as_mut().reset(deadline);
        }
    }

    /// `polled`, an I/O that moved `moved(result)` bytes, noted as traffic; while it is pending,
    /// the idle check.
    fn noting<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
        moved: impl Fn(&R) -> bool,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(r) => {
                if r.as_ref().is_ok_and(moved) {
                    self.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let after = buf.filled().len();
        self.noting(cx, polled, |()| after > before)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.sending = polled.is_pending();
        self.noting(cx, polled, |n| *n > 0)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.sending = polled.is_pending();
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.sending = polled.is_pending();
        self.noting(cx, polled, |n| *n > 0)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// At most one warning line per kind per interval; the next line says how many were left out.
/// A kind warned through [`WarnLimiter::warn`] also has its line said by [`WarnLimiter::flush`]
/// for a burst with nothing of its kind after it, so no count is lost (rounds 99 F1, 103 N4).
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    limits: Limits,
    seen: Mutex<BTreeMap<&'static str, Kind>>,
}

/// Writes a kind's line: `n` events in the last `warn_interval`.
pub(crate) type Say = fn(&Limits, u64);

#[derive(Debug, Default)]
struct Kind {
    /// When its last line was written, and how many were left out since.
    last: Option<Instant>,
    left_out: u64,
    say: Option<Say>,
}

impl WarnLimiter {
    pub(crate) fn new(limits: Limits) -> WarnLimiter {
        WarnLimiter { limits, seen: Mutex::new(BTreeMap::new()) }
    }

    /// `Some(n)` when a line of this kind may be written now (`n` were left out since the last
    /// one), `None` when it is to be left out: for lines that carry one event's detail.
    pub(crate) fn allow(&self, kind: &'static str) -> Option<u64> {
        self.allow_at(kind, None, Instant::now())
    }

    /// Says this kind's line now if its interval allows, else counts it for the next one.
    pub(crate) fn warn(&self, kind: &'static str, say: Say) {
        if let Some(n) = self.allow_at(kind, Some(say), Instant::now()) {
            say(&self.limits, n + 1);
        }
    }

    fn allow_at(&self, kind: &'static str, say: Option<Say>, now: Instant) -> Option<u64> {
        let mut seen = lock(&self.seen);
        let k = seen.entry(kind).or_default();
        k.say = say.or(k.say);
        if k.last.is_some_and(|last| now.duration_since(last) < self.limits.warn_interval) {
            k.left_out += 1;
            return None;
        }
        k.last = Some(now);
        Some(std::mem::take(&mut k.left_out))
    }

    /// Says the count of every warned kind whose interval has ended with lines left out (at each
    /// tick), or of every kind with lines left out (`at_end`, when the proxy stops).
    pub(crate) fn flush(&self, at_end: bool) {
        for (say, n) in self.due_at(at_end, Instant::now()) {
            say(&self.limits, n);
        }
    }

    fn due_at(&self, at_end: bool, now: Instant) -> Vec<(Say, u64)> {
        let mut seen = lock(&self.seen);
        let interval = self.limits.warn_interval;
        let ended = |last: Option<Instant>| at_end || last.is_some_and(|last| now.duration_since(last) >= interval);
        let due = seen.values_mut().filter(|k| k.left_out > 0 && ended(k.last));
        due.filter_map(|k| {
            let say = k.say?;
            k.last = Some(now);
            Some((say, std::mem::take(&mut k.left_out)))
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(max_connections: usize, max_unauthenticated: usize) -> Limits {
        Limits { max_connections, max_unauthenticated, ..Limits::default() }
    }

    #[test]
    fn limits_follow_the_descriptor_limit() {
        let l = Limits::for_fd_limit(1024);
        assert_eq!((l.max_connections, l.max_unauthenticated), (448, 112));
        assert!(l.max_connections * 2 + 128 <= 1024);
        assert_eq!(Limits::for_fd_limit(64).max_connections, 16);
        assert_eq!(Limits::for_fd_limit(1 << 40).max_connections, 4096);
        // A cap set small still lets a few new connections open at once (round 106 F1).
        let unauthenticated = |max| Limits::default().with_max_connections(max).max_unauthenticated;
        assert_eq!([1, 4, 8, 40, 1000].map(unauthenticated), [1, 4, 8, 10, 128]);
    }

    impl Slot {
        fn told_to_close(&self) -> bool {
            self.evicted.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn the_oldest_unauthenticated_connection_makes_room() {
        let gate = Gate::new(small(100, 2));
        let (a, _) = gate.admit(false).unwrap();
        let (b, _) = gate.admit(false).unwrap();
        b.slot.authenticated();
        let (c, closed) = gate.admit(false).unwrap();
        assert_eq!(closed, Closed::default(), "b is authenticated, so only a counts");
        let (_d, closed) = gate.admit(false).unwrap();
        assert_eq!(closed, Closed { unauthenticated: 1, foreign: 0, idle: false });
        assert!(a.slot.told_to_close() && !c.slot.told_to_close());
        drop(a);
        assert_eq!(gate.active(), 3);
        drop(c);
        assert_eq!(gate.active(), 2);
    }

    #[test]
    fn busy_authenticated_connections_are_never_closed_and_fill_the_cap() {
        let gate = Gate::new(small(3, 3));
        let held: Vec<(Admission, InFlight)> = (0..3)
            .map(|_| {
                let (a, _) = gate.admit(false).unwrap();
                a.slot.authenticated();
                let request = a.slot.request();
                (a, request)
            })
            .collect();
        assert!(gate.admit(false).is_none(), "full");
        drop(held);
        assert_eq!(gate.active(), 0);
        assert!(gate.admit(false).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_tunnel_idle_longest_makes_room() {
        let gate = Gate::new(small(3, 3));
        let slots: Vec<Admission> = (0..3).map(|_| gate.admit(false).unwrap().0).collect();
        for (i, a) in slots.iter().enumerate() {
            a.slot.authenticated();
            drop(a.slot.request());
            if i == 0 {
                // The first one's request ends last: it is idle the shortest time.
                tokio::time::advance(Duration::from_secs(1)).await;
            }
        }
        let busy = slots[0].slot.request();
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(busy);
        let (_new, closed) = gate.admit(false).expect("an idle tunnel makes room");
        assert_eq!(closed, Closed { unauthenticated: 0, foreign: 0, idle: true });
        let told: Vec<bool> = slots.iter().map(|a| a.slot.told_to_close()).collect();
        assert_eq!(told, [false, true, false], "the one idle longest");

        assert!(slots[1].slot.must_close(Waker::noop()), "no request in flight: at once");

        // At the cap an idle tunnel goes before a new client still on its way in (round 101 F2).
        let request = slots[2].slot.request();
        let (_newer, closed) = gate.admit(false).expect("slot 0 is still idle");
        assert_eq!(closed, Closed { unauthenticated: 0, foreign: 0, idle: true });
        assert!(slots[0].slot.told_to_close() && !_new.slot.told_to_close());
        // With none idle, the oldest without credentials; busy tunnels and plain ones never.
        _newer.slot.authenticated();
        let (_third, closed) = gate.admit(false).expect("`_new` has not authenticated");
        assert_eq!(closed, Closed { unauthenticated: 1, foreign: 0, idle: false });
        assert!(_new.slot.told_to_close());
        _third.slot.authenticated();
        assert!(gate.admit(false).is_none(), "slot 2 is busy, the others are not opened tunnels");

        // A request that came in as it was told to close keeps it open until the request ends.
        drop(request);
        let (_last, closed) = gate.admit(false).expect("slot 2 is idle now");
        assert!(closed.idle);
        let late = slots[2].slot.request();
        assert!(!slots[2].slot.must_close(Waker::noop()), "a request in flight");
        drop(late);
        assert!(slots[2].slot.must_close(Waker::noop()));
    }

    /// Another local user's flood of silent connections closes its own, not the program's new
    /// ones (round 102 F1).
    #[test]
    fn another_users_connections_go_first() {
        let gate = Gate::new(small(100, 4));
        let (own, _) = gate.admit(false).unwrap();
        let flood: Vec<Admission> = (0..3).map(|_| gate.admit(true).unwrap().0).collect();
        let (_next, closed) = gate.admit(true).unwrap();
        assert_eq!(closed, Closed { unauthenticated: 1, foreign: 1, idle: false });
        assert!(!own.slot.told_to_close() && flood[0].slot.told_to_close());
        // Once none of theirs is left, theirs is refused; the program's own new one closes the
        // oldest of the program's.
        let gate = Gate::new(small(100, 2));
        let (own, _) = gate.admit(false).unwrap();
        let (_own2, _) = gate.admit(false).unwrap();
        assert!(gate.admit(true).is_none(), "another user's never displaces the program's");
        assert!(!own.slot.told_to_close());
        let (_third, closed) = gate.admit(false).unwrap();
        assert_eq!(closed, Closed { unauthenticated: 1, foreign: 0, idle: false });
        assert!(own.slot.told_to_close());
    }

    /// At the connection cap another user's silent connections close their own, never one of the
    /// program's kept-alive tunnels (round 103 F1).
    #[test]
    fn another_user_never_displaces_the_programs_connections() {
        let gate = Gate::new(small(3, 3));
        let tunnels: Vec<Admission> = (0..2).map(|_| gate.admit(false).unwrap().0).collect();
        for t in &tunnels {
            t.slot.authenticated();
            drop(t.slot.request());
        }
        let (theirs, _) = gate.admit(true).unwrap();
        let (_next, closed) = gate.admit(true).expect("their older one makes room");
        assert_eq!(closed, Closed { unauthenticated: 1, foreign: 1, idle: false });
        assert!(theirs.slot.told_to_close() && tunnels.iter().all(|t| !t.slot.told_to_close()));
        drop(theirs);
        _next.slot.authenticated();
        assert!(gate.admit(true).is_none(), "nothing of theirs left to close: refused");
        assert!(tunnels.iter().all(|t| !t.slot.told_to_close()));
        let (_own, closed) = gate.admit(false).expect("the program's own new one: an idle tunnel makes room");
        assert!(closed.idle);
    }

    #[test]
    fn unauthenticated_connections_cannot_fill_the_cap() {
        let gate = Gate::new(small(4, 4));
        let mut held: Vec<Admission> = Vec::new();
        for _ in 0..50 {
            let (a, _) = gate.admit(false).expect("admitted");
            held.push(a);
            // Closed connections end when their task sees it; here: drop them now.
            held.retain(|a| !a.slot.told_to_close());
        }
        assert!(gate.active() <= 4, "{}", gate.active());
    }

    #[test]
    fn warnings_are_limited_per_kind_with_a_count() {
        let w = WarnLimiter::new(Limits { warn_interval: Duration::from_secs(10), ..Limits::default() });
        let t0 = Instant::now();
        assert_eq!(w.allow_at("accept", None, t0), Some(0));
        for i in 1..=335u64 {
            assert_eq!(w.allow_at("accept", None, t0 + Duration::from_millis(i * 20)), None);
        }
        assert_eq!(w.allow_at("tls", None, t0 + Duration::from_secs(1)), Some(0), "kinds are separate");
        assert_eq!(w.allow_at("accept", None, t0 + Duration::from_secs(10)), Some(335));
        assert_eq!(w.allow_at("accept", None, t0 + Duration::from_secs(21)), Some(0));
        assert_eq!(w.allow_at("accept", None, t0 + Duration::from_secs(22)), None);
        // A burst with nothing after it: its count is said once its interval ends, once, for
        // every kind that has a line of its own to say it with (any kind, any count).
        fn full(_: &Limits, _: u64) {}
        fn too_large(_: &Limits, _: u64) {}
        let t1 = t0 + Duration::from_secs(40);
        assert_eq!(w.allow_at("full", Some(full), t1), Some(0));
        assert_eq!(w.allow_at("too-large", Some(too_large), t1), Some(0));
        for i in 1..=138u64 {
            assert_eq!(w.allow_at("full", Some(full), t1 + Duration::from_millis(i)), None);
        }
        assert_eq!(w.allow_at("too-large", Some(too_large), t1 + Duration::from_secs(1)), None);
        let counts = |due: Vec<(Say, u64)>| due.into_iter().map(|(say, n)| (say as usize, n)).collect::<Vec<_>>();
        assert_eq!(counts(w.due_at(false, t1 + Duration::from_secs(9))), vec![], "the interval has not ended");
        assert_eq!(
            counts(w.due_at(false, t1 + Duration::from_secs(10))),
            vec![(full as Say as usize, 138), (too_large as Say as usize, 1)],
            "`accept` (left out once) has no line of its own to say its count with"
        );
        assert_eq!(counts(w.due_at(false, t1 + Duration::from_secs(30))), vec![], "said once");
        // When the proxy stops, the rest is said whatever the interval.
        assert_eq!(w.allow_at("full", Some(full), t1 + Duration::from_secs(40)), Some(0));
        assert_eq!(w.allow_at("full", Some(full), t1 + Duration::from_secs(41)), None);
        assert_eq!(counts(w.due_at(true, t1 + Duration::from_secs(41))), vec![(full as Say as usize, 1)]);
        assert_eq!(counts(w.due_at(true, t1 + Duration::from_secs(41))), vec![]);
    }

    /// A response's tail still on its way to a slow reader keeps the connection open when it is
    /// told to close, though its request no longer counts as in flight (hyper holds all of it).
    #[tokio::test]
    async fn a_connection_told_to_close_sends_its_response_first() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let gate = Gate::new(small(1, 1));
        let (admission, _) = gate.admit(false).unwrap();
        let slot = admission.slot();
        slot.authenticated();
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = IdleIo::new(a, Duration::from_secs(600), Some(admission));
        let request = slot.request();
        let body = [7u8; 256];
        let sent = io.write(&body).await.unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        assert!(Pin::new(&mut io).poll_write(&mut cx, &body[sent..]).is_pending(), "the reader is slow");
        drop(request);
        let (_new, closed) = gate.admit(false).expect("an idle opened tunnel makes room");
        assert!(closed.idle && slot.told_to_close());
        let mut buf = [0u8; 8];
        let mut read = ReadBuf::new(&mut buf);
        assert!(Pin::new(&mut io).poll_read(&mut cx, &mut read).is_pending(), "still sending");
        b.read_exact(&mut [0u8; 64]).await.unwrap();
        io.write_all(&body[sent..sent + 64]).await.unwrap();
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted, "sent: closed now");
    }

    /// A tunnel opened for re-signing is on its way in until its first request has ended: not
    /// closed as idle for another.
    #[test]
    fn a_tunnel_before_its_first_request_is_not_idle() {
        let gate = Gate::new(small(2, 2));
        let fresh: Vec<Admission> = (0..2).map(|_| gate.admit(false).unwrap().0).collect();
        fresh.iter().for_each(|a| a.slot.authenticated());
        assert!(gate.admit(false).is_none(), "none idle yet");
        drop(fresh[1].slot.request());
        let (_new, closed) = gate.admit(false).unwrap();
        assert!(closed.idle && fresh[1].slot.told_to_close() && !fresh[0].slot.told_to_close());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_time_out_and_busy_ones_do_not() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = IdleIo::new(a, Duration::from_secs(600), None);
        // Traffic every 5 minutes keeps it open.
        for _ in 0..4 {
            tokio::time::advance(Duration::from_secs(300)).await;
            b.write_all(b"x").await.unwrap();
            let mut buf = [0u8; 1];
            io.read_exact(&mut buf).await.unwrap();
        }
        let mut buf = [0u8; 1];
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
