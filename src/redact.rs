//! Removes secrets from a child's output. With `--debug` (woci's, or among `oci`'s arguments) the
//! `oci` CLI prints request headers — `keyId="ST$<token>"`, `Authorization`,
//! `Proxy-Authorization: Basic <woci:secret>` — so woci runs it with piped stdout/stderr and relays
//! both through a [`Redactor`] instead of exec'ing it.
//!
//! Removed: every secret woci knows, also percent-encoded and in base64 (standard and URL-safe,
//! padded or not, at each of the three alignments a secret can have inside a longer base64 run,
//! such as the `woci:<secret>` of a Basic credential); `ST$<token>` keyIds; the values of the
//! headers that carry credentials.
//!
//! The relay is a stream, not a line filter: it writes each byte as soon as it is known not to
//! belong to a secret and holds back only the tail that could still become one (a prefix of a
//! secret or of one of its forms, a keyId or header value not yet ended), however the child's
//! writes, pauses and the relay's reads fall. A prompt therefore shows at once unless it ends in
//! what could start a secret, and binary output streams. A keyId or header value longer than
//! [`MAX_HOLD`] is redacted up to there and its continuation swallowed, so memory stays bounded.

use aho_corasick::AhoCorasick;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use regex::bytes::Regex;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::{CacheError, LazyStateID};
use regex_automata::util::{start, syntax};
use regex_automata::{Anchored, MatchKind};
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What replaces a secret.
pub(crate) const REDACTED: &str = "<redacted>";
/// Longest keyId or header value held back whole.
pub(crate) const MAX_HOLD: usize = 64 * 1024;
/// Secrets shorter than this are not searched for literally (too many false hits).
const MIN_LITERAL: usize = 8;
/// Bytes read from the child at a time.
const READ_SIZE: usize = 64 * 1024;

/// `ST$<token>` keyIds; group 1 is the token.
const KEYID: &str = r"(?-u)ST\$([A-Za-z0-9_.~+/=\-]+)";
/// The headers that carry credentials, in the shapes the Python CLI prints (`Name: value`,
/// `'Name': 'value'`, `"Name": "value"`, `Name=value`); one of groups 1–3 is the value. It ends at
/// the quote that opened it, or (unquoted) at a quote, a line end or the backslash of an escaped
/// `\r\n` in Python's `send: b'…'` lines. ASCII only (`-u`): the release build has no Unicode
/// classes, and binary output must not stop a value.
const HEADER: &str = concat!(
    r#"(?i-u)(?:(?:proxy-)?authorization|opc-obo-token)['"]?[ \t]*[:=][ \t]*"#,
    r#"(?:'([^'\r\n\\]*)|"([^"\r\n\\]*)|([^'"\r\n\\][^'\r\n\\]*))"#,
);

struct Patterns {
    find: [Regex; 2],
    /// Both patterns as one lazy DFA reporting every match (`MatchKind::All`): a run of bytes
    /// is still open while its state is not dead. Its few states fit the default cache, which is
    /// therefore never cleared (a clear would invalidate a kept state).
    live: DFA,
    /// The bytes a match can start with.
    starts: [bool; 256],
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let live = DFA::builder()
            .configure(DFA::config().match_kind(MatchKind::All))
            .syntax(syntax::Config::new().utf8(false))
            .build_many(&[KEYID, HEADER])
            .expect("valid patterns");
        let mut p = Patterns {
            find: [Regex::new(KEYID).expect("valid regex"), Regex::new(HEADER).expect("valid regex")],
            live,
            starts: [true; 256],
        };
        let mut cache = p.live.create_cache();
        if let Ok(s) = anchored_start(&p.live, &mut cache) {
            for b in 0..=255u8 {
                p.starts[usize::from(b)] = !matches!(p.step(&mut cache, s, b), Ok(None));
            }
        }
        p
    })
}

impl Patterns {
    /// The state after `b` when `b` continues the match run in state `sid`, `None` when it does
    /// not. (The DFA reports a match one byte late: the state after the byte that ends a match is
    /// a match state, not dead, from which the end of input matches nothing more.)
    fn step(&self, cache: &mut Cache, sid: LazyStateID, b: u8) -> Result<Option<LazyStateID>, CacheError> {
        let next = self.live.next_state(cache, sid, b)?;
        if next.is_dead() || (next.is_match() && !self.live.next_eoi_state(cache, next)?.is_match()) {
            return Ok(None);
        }
        Ok(Some(next))
    }
}

fn anchored_start(dfa: &DFA, cache: &mut Cache) -> Result<LazyStateID, regex_automata::hybrid::StartError> {
    dfa.start_state(cache, &start::Config::new().anchored(Anchored::Yes))
}

/// No pattern spans these, so a match still open at the end of the buffer starts after the last.
fn is_barrier(b: u8) -> bool {
    matches!(b, b'\n' | b'\r' | b'\\')
}

/// A character of either base64 alphabet.
fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// One byte string to remove: a secret or one of its encodings.
struct Form {
    bytes: Vec<u8>,
    /// A base64 form whose neighbouring character on that side also carries bits of the secret
    /// (mixed with the bytes around it): removed with it.
    edge_left: bool,
    edge_right: bool,
}

impl Form {
    /// Where removing this form found at `at` in `buf` begins: at the base64 character before it
    /// when that character carries bits of the secret too.
    fn removal_start(&self, buf: &[u8], at: usize) -> usize {
        if self.edge_left && at > 0 && is_base64(buf[at - 1]) {
            at - 1
        } else {
            at
        }
    }
}

#[derive(Default)]
struct Forms {
    list: Vec<Form>,
    /// The longest form starting at the leftmost place (a packed SIMD search for up to 64 forms).
    search: Option<AhoCorasick>,
    longest: usize,
}

impl Forms {
    fn new(secrets: &[Vec<u8>]) -> Forms {
        let mut list: Vec<Form> = Vec::new();
        let mut add = |bytes: Vec<u8>, edge_left: bool, edge_right: bool| {
            if bytes.len() < MIN_LITERAL {
                return;
            }
            match list.iter_mut().find(|f| f.bytes == bytes) {
                Some(f) => {
                    f.edge_left |= edge_left;
                    f.edge_right |= edge_right;
                }
                None => list.push(Form { bytes, edge_left, edge_right }),
            }
        };
        for s in secrets {
            add(s.clone(), false, false);
            add(percent_encoded(s, b"0123456789ABCDEF"), false, false);
            add(percent_encoded(s, b"0123456789abcdef"), false, false);
            // After `lead` bytes of a longer run, the characters that encode only the secret's bits
            // are the same whatever surrounds it; padding comes after them.
            for lead in 0..3 {
                let mut buf = vec![0u8; lead];
                buf.extend_from_slice(s);
                let (first, end) = ((8 * lead).div_ceil(6), 8 * buf.len() / 6);
                for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                    let enc = engine.encode(&buf).into_bytes();
                    add(enc[first..end].to_vec(), lead != 0, (8 * buf.len()) % 6 != 0);
                }
            }
        }
        let search = (!list.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(list.iter().map(|f| &f.bytes))
                .expect("a few dozen literals always build")
        });
        let longest = list.iter().map(|f| f.bytes.len()).max().unwrap_or(0);
        Forms { list, search, longest }
    }

    /// The earliest start of a tail of `buf` that is a proper prefix of a form (with the base64
    /// character before it that would be removed with it).
    fn open_at_end(&self, buf: &[u8]) -> Option<usize> {
        let n = buf.len();
        let mut best = n;
        for f in &self.list {
            let lo = n.saturating_sub(f.bytes.len() - 1);
            if lo >= best {
                continue;
            }
            for j in memchr::memchr_iter(f.bytes[0], &buf[lo..best]).map(|i| lo + i) {
                if f.bytes.starts_with(&buf[j..]) {
                    best = f.removal_start(buf, j);
                    break;
                }
            }
        }
        // The last byte may be the character before a base64 form that has not begun yet.
        if n > 0 && best == n && is_base64(buf[n - 1]) && self.list.iter().any(|f| f.edge_left) {
            best = n - 1;
        }
        (best < n).then_some(best)
    }
}

/// Every byte outside `A-Za-z0-9-._~` as `%XX` with these hex digits.
fn percent_encoded(s: &[u8], hex: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 * s.len());
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', hex[usize::from(b >> 4)], hex[usize::from(b & 15)]]);
        }
    }
    out
}

/// The secrets to remove from a stream (by default none: the patterns only).
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<Vec<u8>>,
    forms: Arc<Forms>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("secrets", &self.secrets.len()).finish()
    }
}

impl Redactor {
    /// Also removes this exact value (a token, a client secret, the proxy URL's secret) and its
    /// encoded forms wherever they appear. Values shorter than 8 bytes are ignored.
    pub(crate) fn add_secret(&mut self, secret: &str) {
        let s = secret.trim().as_bytes();
        if s.len() >= MIN_LITERAL && !self.secrets.iter().any(|l| l == s) {
            self.secrets.push(s.to_vec());
            self.forms = Arc::new(Forms::new(&self.secrets));
        }
    }

    /// Copies `reader` to `writer`, redacted, until EOF (see the module doc for what is held back).
    pub(crate) async fn relay<R, W>(&self, mut reader: R, mut writer: W) -> std::io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut stream = Stream::new(self);
        let mut chunk = vec![0u8; READ_SIZE];
        let mut out = Vec::with_capacity(READ_SIZE + REDACTED.len());
        loop {
            let n = reader.read(&mut chunk).await?;
            out.clear();
            match n {
                0 => stream.drain(&mut out, true),
                n => stream.push(&chunk[..n], &mut out),
            }
            if !out.is_empty() || n == 0 {
                writer.write_all(&out).await?;
                writer.flush().await?;
            }
            if n == 0 {
                return Ok(());
            }
        }
    }
}

/// The redaction state of one stream.
struct Stream<'r> {
    forms: &'r Forms,
    patterns: &'static Patterns,
    cache: Cache,
    /// Bytes read but not yet written: the tail that could still be part of a secret.
    pending: Vec<u8>,
    /// Leading bytes of `pending` that continue a secret whose start was already written.
    secret_head: usize,
    /// A keyId or header value cut at [`MAX_HOLD`]: the state of its match, which the bytes that
    /// continue it keep alive.
    cut_run: Option<LazyStateID>,
    /// Whether the last thing written was [`REDACTED`] (one marker per stretch of secret).
    in_secret: bool,
}

impl<'r> Stream<'r> {
    fn new(r: &'r Redactor) -> Stream<'r> {
        let patterns = patterns();
        Stream {
            forms: &r.forms,
            patterns,
            cache: patterns.live.create_cache(),
            pending: Vec::new(),
            secret_head: 0,
            cut_run: None,
            in_secret: false,
        }
    }

    /// Takes the next bytes; appends to `out` what can be written now.
    fn push(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        if let Some(mut sid) = self.cut_run.take() {
            let used = data
                .iter()
                .take_while(|&&b| match self.patterns.step(&mut self.cache, sid, b) {
                    Ok(Some(next)) => {
                        sid = next;
                        true
                    }
                    _ => false,
                })
                .count();
            if used > 0 {
                self.mark(out);
            }
            if used == data.len() {
                self.cut_run = Some(sid);
                return;
            }
            data = &data[used..];
        }
        self.pending.extend_from_slice(data);
        self.drain(out, false);
    }

    fn mark(&mut self, out: &mut Vec<u8>) {
        if !self.in_secret {
            out.extend_from_slice(REDACTED.as_bytes());
            self.in_secret = true;
        }
    }

    /// Writes the part of `pending` that is decided: up to the earliest place where a secret may
    /// have begun (everything at EOF: the rest), with the secrets in it replaced.
    fn drain(&mut self, out: &mut Vec<u8>, eof: bool) {
        let buf = &self.pending;
        let n = buf.len();
        // Byte ranges to remove, and where the undecided tail starts.
        let mut spans: Vec<(usize, usize)> = Vec::new();
        let mut hold = n;
        if self.secret_head > 0 {
            spans.push((0, self.secret_head.min(n)));
        }
        if let Some(search) = &self.forms.search {
            // The longest form at each start, every start: overlapping occurrences are all removed.
            let mut at = 0;
            while let Some(m) = search.find(aho_corasick::Input::new(buf.as_slice()).range(at..)) {
                at = m.start() + 1;
                let f = &self.forms.list[m.pattern().as_usize()];
                let (a, mut b) = (f.removal_start(buf, m.start()), m.end());
                if f.edge_right && b < n && is_base64(buf[b]) {
                    b += 1;
                } else if f.edge_right && b == n && !eof {
                    hold = hold.min(a);
                }
                spans.push((a, b));
            }
            if !eof {
                hold = hold.min(self.forms.open_at_end(buf).unwrap_or(n));
            }
        }
        // (match start, value start) of each keyId or header value.
        let mut found: Vec<(usize, usize)> = Vec::new();
        for re in &self.patterns.find {
            for c in re.captures_iter(buf) {
                let (whole, value) = (c.get(0).expect("group 0"), c.iter().skip(1).flatten().next());
                let value = value.map_or(whole.end()..whole.end(), |v| v.range());
                if !value.is_empty() {
                    spans.push((value.start, value.end));
                }
                if whole.end() == n && !eof {
                    hold = hold.min(whole.start());
                }
                found.push((whole.start(), value.start));
            }
        }
        if !eof {
            let open = self.open_match();
            if let Some((p, _)) = open {
                hold = hold.min(p);
            }
            if n - hold > MAX_HOLD.max(self.forms.longest + 2) {
                // Only a keyId or header value grows this long: remove it up to here, and what
                // continues it when it comes.
                if let Some((p, sid)) = open.filter(|(p, _)| *p == hold) {
                    let value = found.iter().find(|(s, _)| *s == p).map_or(n, |(_, v)| *v);
                    spans.push((value, n));
                    self.cut_run = sid;
                }
                hold = n;
            }
        }
        self.write_decided(spans, hold, out);
    }

    /// The earliest keyId or header match still open at the end of `pending`, with its DFA state
    /// (`None` if the DFA could not tell, which with this configuration does not happen).
    fn open_match(&mut self) -> Option<(usize, Option<LazyStateID>)> {
        let buf = &self.pending;
        let from = buf.iter().rposition(|&b| is_barrier(b)).map_or(0, |i| i + 1);
        let Ok(start) = anchored_start(&self.patterns.live, &mut self.cache) else {
            return (from < buf.len()).then_some((from, None));
        };
        'starts: for j in from..buf.len() {
            if !self.patterns.starts[usize::from(buf[j])] {
                continue;
            }
            let mut sid = start;
            for &b in &buf[j..] {
                match self.patterns.step(&mut self.cache, sid, b) {
                    Ok(Some(next)) => sid = next,
                    Ok(None) => continue 'starts,
                    Err(_) => return Some((j, None)),
                }
            }
            return Some((j, Some(sid)));
        }
        None
    }

    /// Writes `pending[..hold]` with the `spans` in it replaced, and keeps the rest.
    fn write_decided(&mut self, mut spans: Vec<(usize, usize)>, hold: usize, out: &mut Vec<u8>) {
        spans.sort_unstable();
        let mut pos = 0;
        for (a, b) in spans {
            if a >= hold {
                break;
            }
            if a > pos {
                out.extend_from_slice(&self.pending[pos..a]);
                self.in_secret = false;
                pos = a;
            }
            if b > pos {
                self.mark(out);
                pos = b;
            }
        }
        if pos < hold {
            out.extend_from_slice(&self.pending[pos..hold]);
            self.in_secret = false;
        }
        // A secret that began before `hold` goes on after it.
        self.secret_head = pos.saturating_sub(hold);
        self.pending.drain(..hold);
    }
}

/// The redactor for a child of this invocation, when its output must be filtered: woci's
/// `--debug`, or `--debug`/`-d` among the `oci` arguments. It removes the patterns plus every
/// secret woci knows here: the session token, the client secrets, the values of woci's secret
/// variables (the child builder adds the proxy's secret when the proxy runs).
pub(crate) fn for_child(
    settings: &crate::settings::Settings,
    oci_args: &[std::ffi::OsString],
    token: Option<&crate::secret::SecretString>,
    env: &crate::settings::Env,
) -> Option<Redactor> {
    if !settings.debug && !oci_args_want_debug(oci_args) {
        return None;
    }
    let mut r = Redactor::default();
    for s in token.into_iter().chain(settings.client_secrets()) {
        r.add_secret(s.expose());
    }
    for v in settings.secret_env.iter().filter_map(|name| env.get(name)) {
        r.add_secret(v);
    }
    Some(r)
}

/// Whether `oci`'s own arguments ask for debug output before any `--`: `--debug`, or `-d` alone
/// or among other short flags (`-dd`, which oci's click reads as `-d -d`; a review of round 105).
/// Any one-dash word of letters with a `d` counts: a relay more than needed, never one missed.
pub(crate) fn oci_args_want_debug(args: &[std::ffi::OsString]) -> bool {
    let short_d =
        |a: &str| a.strip_prefix('-').is_some_and(|s| s.contains('d') && s.chars().all(|c| c.is_ascii_alphabetic()));
    args.iter().take_while(|a| *a != "--").any(|a| a == "--debug" || a.to_str().is_some_and(short_d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXRva2Vu";
    /// Like the proxy's per-run secret (32 hex digits).
    const PROXY_SECRET: &str = "0123456789abcdef0123456789abcdef";
    /// A client secret with bytes that percent-encoding changes.
    const CLIENT_SECRET: &str = "s3cr/t+pa ss=w%rd";

    fn r() -> Redactor {
        let mut r = Redactor::default();
        r.add_secret(TOKEN);
        r.add_secret(PROXY_SECRET);
        r.add_secret(CLIENT_SECRET);
        r.add_secret("short");
        r
    }

    /// Whole-text redaction: one write, then EOF.
    fn redact(r: &Redactor, text: &[u8]) -> Vec<u8> {
        let mut s = Stream::new(r);
        let mut out = Vec::new();
        s.push(text, &mut out);
        s.drain(&mut out, true);
        out
    }

    fn red(s: &str) -> String {
        String::from_utf8(redact(&r(), s.as_bytes())).unwrap()
    }

    fn b64(engine: &base64::engine::GeneralPurpose, s: impl AsRef<[u8]>) -> String {
        engine.encode(s)
    }

    /// The characters of `engine`'s encoding of `lead ++ secret ++ tail` that carry only bits of
    /// `secret`.
    fn base64_core(engine: &base64::engine::GeneralPurpose, lead: &str, secret: &str, tail: &str) -> String {
        let enc = b64(engine, format!("{lead}{secret}{tail}"));
        let first = (8 * lead.len()).div_ceil(6);
        let end = 8 * (lead.len() + secret.len()) / 6;
        enc[first..end].to_owned()
    }

    /// Asserts that no 8 consecutive characters of any of `secrets` are in `out`.
    fn assert_clean(out: &str, secrets: &[String]) {
        for s in secrets {
            for w in s.as_bytes().windows(8) {
                let w = std::str::from_utf8(w).unwrap();
                assert!(!out.contains(w), "{w:?} of {s:?} left in {out:?}");
            }
        }
    }

    /// Lines with a secret, and the secrets (as they appear there) that must not survive. The
    /// base64 runs come at each alignment in every encoding, or (`!every_encoding`) in one.
    fn secret_lines(every_encoding: bool) -> Vec<(String, Vec<String>)> {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let basic = b64(&STANDARD, format!("woci:{PROXY_SECRET}"));
        let mut cases = vec![
            (format!("token={TOKEN}\n"), vec![TOKEN.to_owned()]),
            (format!("HTTPS_PROXY=http://woci:{PROXY_SECRET}@127.0.0.1:9\n"), vec![PROXY_SECRET.to_owned()]),
            (r#"'opc-request-id': 'x', keyId="ST$eyJ1bmtub3duLXRva2Vu" end"#.to_owned(), vec!["eyJ1bmtub3duLXRva2Vu".to_owned()]),
            (
                r#"send: b'GET /n/ HTTP/1.1\r\nauthorization: Signature version="1",keyId="ST$eyJzZWNyZXQ",signature="c2lnbmF0dXJlLXZhbHVl"\r\nhost: x\r\n'"#
                    .to_owned(),
                vec!["c2lnbmF0dXJlLXZhbHVl".to_owned(), "eyJzZWNyZXQ".to_owned()],
            ),
            (format!("send: b'CONNECT h:443 HTTP/1.0\\r\\nProxy-Authorization: Basic {basic}\\r\\n\\r\\n'"), vec![basic.clone()]),
            (format!("{{\"cred\": \"{basic}\"}}\n"), vec![base64_core(&STANDARD, "woci:", PROXY_SECRET, "")]),
            (format!("client_secret={}&x=1\n", "s3cr%2Ft%2Bpa%20ss%3Dw%25rd"), vec!["s3cr%2Ft%2Bpa%20ss%3Dw%25rd".to_owned()]),
            (format!("client_secret={}&x=1\n", "s3cr%2ft%2bpa%20ss%3dw%25rd"), vec!["s3cr%2ft%2bpa%20ss%3dw%25rd".to_owned()]),
        ];
        // The token and the Basic credential inside a longer base64 run, at each alignment, in both
        // alphabets, padded or not.
        for lead in ["", "x", "xy"] {
            for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
                for (secret, tail) in [(TOKEN, "!"), (&*format!("woci:{PROXY_SECRET}"), "?>")] {
                    let one = if secret == TOKEN { &STANDARD } else { &URL_SAFE_NO_PAD };
                    if !every_encoding && !std::ptr::eq(engine, one) {
                        continue;
                    }
                    let run = b64(engine, format!("{lead}{secret}{tail}"));
                    let core = if secret == TOKEN {
                        base64_core(engine, lead, secret, tail)
                    } else {
                        base64_core(engine, &format!("{lead}woci:"), PROXY_SECRET, tail)
                    };
                    cases.push((format!("blob {run} end\n"), vec![core]));
                }
            }
        }
        cases
    }

    /// Feeds `pieces` to the relay with a pause (far longer than any flush delay) between them.
    async fn relay_pieces(r: &Redactor, pieces: Vec<Vec<u8>>) -> Vec<u8> {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let writer = tokio::spawn(async move {
            for (i, p) in pieces.into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                tx.write_all(&p).await.unwrap();
            }
        });
        let mut out = Vec::new();
        r.relay(rx, &mut out).await.unwrap();
        writer.await.unwrap();
        out
    }

    #[test]
    fn keyids_and_credential_headers_in_the_shapes_oci_prints() {
        let lines = [
            // http.client's `send:` line under --debug
            r#"send: b'GET /n/ HTTP/1.1\r\nHost: x\r\nauthorization: Signature version="1",headers="date (request-target) host",keyId="ST$eyJzZWNyZXQ",algorithm="rsa-sha256",signature="AbC+/="\r\nopc-obo-token: obo-secret-value\r\n\r\n'"#,
            // the SDK's header dict
            r#"{'date': 'x', 'authorization': 'Signature version="1",keyId="ST$eyJzZWNyZXQ",signature="AbC"', 'opc-obo-token': 'obo-secret-value'}"#,
            "send: b'CONNECT h:443 HTTP/1.0\\r\\nProxy-Authorization: Basic d29jaTpzZWNyZXQ=\\r\\n\\r\\n'",
            r#"header: {"Authorization": "Bearer bearer-secret-value"}"#,
        ];
        for l in lines {
            let out = red(l);
            for secret in ["eyJzZWNyZXQ", "AbC", "obo-secret-value", "d29jaTpzZWNyZXQ", "bearer-secret-value"] {
                assert!(!out.contains(secret), "{secret} left in {out}");
            }
            assert!(out.contains(REDACTED), "{out}");
        }
        let out = red("send: b'GET / HTTP/1.1\\r\\nauthorization: Signature keyId=\"x\"\\r\\nhost: example.com\\r\\n'");
        assert_eq!(out, "send: b'GET / HTTP/1.1\\r\\nauthorization: <redacted>\\r\\nhost: example.com\\r\\n'");
        assert_eq!(red("{'Authorization': 'Signature x', 'a': 'b'}"), "{'Authorization': '<redacted>', 'a': 'b'}");
        assert_eq!(red("keyId=\"ST$abc.def\" x"), "keyId=\"ST$<redacted>\" x");
    }

    #[test]
    fn known_secrets_anywhere_and_nothing_else() {
        let out = red(&format!("token={TOKEN} url=http://woci:{PROXY_SECRET}@127.0.0.1:1 short"));
        assert_eq!(out, "token=<redacted> url=http://woci:<redacted>@127.0.0.1:1 short");
        let plain = "an ordinary line with Authorized words, ST$ alone is not a token\n";
        assert_eq!(red("an ordinary line\n"), "an ordinary line\n");
        assert_eq!(red(plain), plain);
    }

    #[test]
    fn base64_and_percent_encoded_forms_of_each_secret() {
        for (line, secrets) in secret_lines(true) {
            let out = red(&line);
            assert_clean(&out, &secrets);
            assert!(out.contains(REDACTED), "{line} -> {out}");
        }
        // The Basic credential loses the characters that carry the secret's bits, the `woci:` before
        // them stays readable.
        let basic = b64(&base64::engine::general_purpose::STANDARD, format!("woci:{PROXY_SECRET}"));
        assert_eq!(red(&format!("{basic}\n")), "d29jaT<redacted>==\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_secret_split_at_every_position_into_two_pieces_with_pauses() {
        let r = r();
        for (line, secrets) in secret_lines(true) {
            let whole = redact(&r, line.as_bytes());
            let b = line.as_bytes();
            for i in 1..b.len() {
                let out = relay_pieces(&r, vec![b[..i].to_vec(), b[i..].to_vec()]).await;
                let out = String::from_utf8(out).unwrap();
                assert_clean(&out, &secrets);
                assert_eq!(out.as_bytes(), whole, "split at {i} of {line:?}");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_secret_split_at_every_pair_of_positions_into_three_pieces_with_pauses() {
        let r = r();
        for (line, secrets) in secret_lines(false) {
            let whole = redact(&r, line.as_bytes());
            let b = line.as_bytes();
            // Every pair of cuts in what redaction changes, and in the header name before it.
            let same_head = b.iter().zip(&whole).take_while(|(x, y)| x == y).count();
            let same_tail = b.iter().rev().zip(whole.iter().rev()).take_while(|(x, y)| x == y).count();
            let (from, to) = (same_head.saturating_sub(32).max(1), (b.len() + 2 - same_tail).min(b.len()));
            for i in from..to {
                for j in i + 1..to {
                    let pieces = vec![b[..i].to_vec(), b[i..j].to_vec(), b[j..].to_vec()];
                    let out = String::from_utf8(relay_pieces(&r, pieces).await).unwrap();
                    assert_clean(&out, &secrets);
                    assert_eq!(out.as_bytes(), whole, "split at {i} and {j} of {line:?}");
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_secret_across_the_64_kib_bound() {
        let r = r();
        // A secret starting anywhere around the bound of a long line without separators, written
        // at once (the relay reads it in pieces) or in pieces that do not line up with it.
        for before in MAX_HOLD - TOKEN.len() - 2..MAX_HOLD + 2 {
            let mut line = vec![b'x'; before];
            line.extend_from_slice(TOKEN.as_bytes());
            line.extend_from_slice(&[b'x'; MAX_HOLD / 4]);
            line.extend_from_slice(b"\n");
            let pieces = if before % 2 == 0 { vec![line] } else { line.chunks(7001).map(<[u8]>::to_vec).collect() };
            let out = String::from_utf8(relay_pieces(&r, pieces).await).unwrap();
            assert_eq!(out, format!("{}{REDACTED}{}\n", "x".repeat(before), "x".repeat(MAX_HOLD / 4)), "at {before}");
        }
        // KeyIds and header values longer than the bound: removed whole, what follows stays.
        for (head, run) in [("keyId=\"ST$", "A"), ("authorization: Signature ", "B"), ("'Proxy-Authorization': '", "x")]
        {
            let line = format!("{head}{}' next\nafter\n", run.repeat(3 * MAX_HOLD + 5));
            let pieces = line.as_bytes().chunks(5000).map(<[u8]>::to_vec).collect();
            let out = String::from_utf8(relay_pieces(&r, pieces).await).unwrap();
            let head = head.trim_end_matches("Signature ");
            assert_eq!(out, format!("{head}{REDACTED}' next\nafter\n"));
        }
    }

    #[test]
    fn memory_stays_bounded_whatever_the_output() {
        let r = r();
        let value: Vec<u8> =
            b"authorization: ".iter().copied().chain((0..4 << 20).map(|i| b'a' + (i % 26) as u8)).collect();
        let binary: Vec<u8> = (0..4u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        for input in [value, binary] {
            let mut s = Stream::new(&r);
            let mut out = Vec::new();
            for c in input.chunks(READ_SIZE) {
                s.push(c, &mut out);
                assert!(s.pending.len() <= MAX_HOLD + READ_SIZE, "{} bytes held", s.pending.len());
                out.clear();
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn binary_output_streams_through_unchanged() {
        let blob: Vec<u8> = (0..3 * MAX_HOLD + 17).map(|i| (i % 251) as u8).collect();
        let out = relay_pieces(&r(), blob.chunks(7000).map(<[u8]>::to_vec).collect()).await;
        assert_eq!(out, blob, "bytes without secrets pass unchanged");
    }

    /// Reads what the relay has written so far, giving it (paused) time to write more.
    async fn written(out: &mut tokio::io::DuplexStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), out.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_shows_at_once_unless_it_could_start_a_secret() {
        let (mut tx, rx) = tokio::io::duplex(1024);
        let (out_w, mut out_r) = tokio::io::duplex(1024);
        let relay = tokio::spawn(async move { r().relay(rx, out_w).await });
        tx.write_all(b"Are you sure you want to delete this resource? [y/N]: ").await.unwrap();
        assert_eq!(written(&mut out_r).await, b"Are you sure you want to delete this resource? [y/N]: ");
        // `ST` could begin a keyId and `eyJhb` the token: held until the next byte says otherwise.
        tx.write_all(b"STOP? eyJhb").await.unwrap();
        assert_eq!(written(&mut out_r).await, b"STOP? ");
        tx.write_all(b"!\n").await.unwrap();
        assert_eq!(written(&mut out_r).await, b"eyJhb!\n");
        drop(tx);
        relay.await.unwrap().unwrap();
    }

    #[test]
    fn a_line_end_closes_every_pattern() {
        let p = patterns();
        for open in ["ST$", "ST$abc", "authorization", "Authorization: ", "authorization': 'Sig", "opc-obo-token=\"x"] {
            for barrier in [b'\n', b'\r', b'\\'] {
                let mut cache = p.live.create_cache();
                let mut sid = anchored_start(&p.live, &mut cache).unwrap();
                for &b in open.as_bytes() {
                    sid = p.step(&mut cache, sid, b).unwrap().unwrap_or_else(|| panic!("{open:?} is open"));
                }
                assert!(is_barrier(barrier));
                assert_eq!(p.step(&mut cache, sid, barrier).unwrap(), None, "{open:?} + {barrier}");
            }
        }
    }

    #[test]
    fn debug_in_oci_arguments() {
        let a = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(oci_args_want_debug(&a(&["os", "ns", "get", "--debug"])));
        assert!(oci_args_want_debug(&a(&["-d", "os", "ns", "get"])));
        assert!(oci_args_want_debug(&a(&["os", "ns", "get", "-dd", "--endpoint", "https://x"])));
        assert!(oci_args_want_debug(&a(&["-dd", "os", "ns", "get"])));
        assert!(!oci_args_want_debug(&a(&["os", "object", "put", "--", "--debug"])));
        assert!(!oci_args_want_debug(&a(&["os", "ns", "get"])));
    }
}
