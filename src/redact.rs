//! Removes secrets from a child's output. With `--debug` (woci's, or among `oci`'s arguments) the
//! `oci` CLI prints request headers — `keyId="ST$<token>"`, `Authorization`,
//! `Proxy-Authorization: Basic <woci:secret>` — so woci runs it with piped stdout/stderr and relays
//! both through a [`Redactor`] instead of exec'ing it.
//!
//! The relay is line-oriented with a bounded buffer: complete lines are redacted and written at
//! once; a line longer than [`MAX_LINE`] is cut at a byte that cannot be part of a token and
//! written in pieces; an unfinished line (a prompt) is written after [`PARTIAL_FLUSH`] without more
//! output. Binary output therefore streams too, never waits for a newline.

use regex::bytes::{Captures, Regex};
use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What replaces a secret.
pub const REDACTED: &str = "<redacted>";
/// Longest stretch held back waiting for a newline.
pub const MAX_LINE: usize = 64 * 1024;
/// An unfinished line is written after this long without more output.
pub const PARTIAL_FLUSH: Duration = Duration::from_millis(50);
/// Secrets shorter than this are not searched for literally (too many false hits).
const MIN_LITERAL: usize = 8;

/// `ST$<token>` keyIds, and the values of the headers that carry credentials (in the shapes the
/// Python CLI prints: `Name: value`, `'Name': 'value'`, `"Name": "value"`, `Name=value`).
fn patterns() -> &'static (Regex, Regex) {
    static P: OnceLock<(Regex, Regex)> = OnceLock::new();
    P.get_or_init(|| {
        (
            Regex::new(r"ST\$[A-Za-z0-9_.~+/=\-]+").expect("valid regex"),
            // The value ends at the quote that opened it, or (unquoted) at a quote, a line end or
            // the backslash of an escaped `\r\n` in Python's `send: b'…'` lines.
            Regex::new(concat!(
                r#"(?i)(?P<name>(?:proxy-)?authorization|opc-obo-token)"#,
                r#"(?:(?P<sq>['"]?\s*[:=]\s*')[^'\r\n\\]*"#,
                r#"|(?P<dq>['"]?\s*[:=]\s*")[^"\r\n\\]*"#,
                r#"|(?P<bare>['"]?\s*[:=]\s*)[^'"\r\n\\][^'\r\n\\]*)"#,
            ))
            .expect("valid regex"),
        )
    })
}

/// The secrets to remove from a stream.
#[derive(Clone, Default)]
pub struct Redactor {
    literals: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").field("literals", &self.literals.len()).finish()
    }
}

impl Redactor {
    /// A redactor for the patterns only.
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Also removes this exact value (a token, a client secret, the proxy URL's secret) wherever it
    /// appears. Values shorter than 8 bytes are ignored.
    pub fn add_secret(&mut self, secret: &str) {
        let s = secret.trim();
        if s.len() >= MIN_LITERAL && !self.literals.iter().any(|l| l == s.as_bytes()) {
            self.literals.push(s.as_bytes().to_vec());
            // Longest first, so that a secret containing another is removed whole.
            self.literals.sort_by_key(|l| std::cmp::Reverse(l.len()));
        }
    }

    /// The redacted form of `text`.
    pub fn redact<'a>(&self, text: &'a [u8]) -> Cow<'a, [u8]> {
        let (keyid, header) = patterns();
        let mut out: Cow<'a, [u8]> = Cow::Borrowed(text);
        for lit in &self.literals {
            if memchr::memmem::find(&out, lit).is_some() {
                out = Cow::Owned(replace_all(&out, lit, REDACTED.as_bytes()));
            }
        }
        if header.is_match(&out) {
            let replaced = header
                .replace_all(&out, |c: &Captures<'_>| {
                    let mut v = c["name"].to_vec();
                    let sep = c.name("sq").or_else(|| c.name("dq")).or_else(|| c.name("bare"));
                    v.extend_from_slice(sep.map_or(&b""[..], |m| m.as_bytes()));
                    v.extend_from_slice(REDACTED.as_bytes());
                    v
                })
                .into_owned();
            out = Cow::Owned(replaced);
        }
        if keyid.is_match(&out) {
            let replaced = keyid.replace_all(&out, format!("ST${REDACTED}").as_bytes()).into_owned();
            out = Cow::Owned(replaced);
        }
        out
    }

    /// Copies `reader` to `writer`, redacted, until EOF (see the module doc for the buffering).
    pub async fn relay<R, W>(&self, mut reader: R, mut writer: W) -> std::io::Result<()>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut pending: Vec<u8> = Vec::with_capacity(8 * 1024);
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            let read = if pending.is_empty() {
                Some(reader.read(&mut chunk).await?)
            } else {
                tokio::time::timeout(PARTIAL_FLUSH, reader.read(&mut chunk)).await.ok().transpose()?
            };
            match read {
                Some(0) => {
                    if !pending.is_empty() {
                        writer.write_all(&self.redact(&pending)).await?;
                    }
                    writer.flush().await?;
                    return Ok(());
                }
                Some(n) => {
                    pending.extend_from_slice(&chunk[..n]);
                    if let Some(last_nl) = memchr::memrchr(b'\n', &pending) {
                        let rest = pending.split_off(last_nl + 1);
                        writer.write_all(&self.redact(&pending)).await?;
                        pending = rest;
                    }
                    while pending.len() > MAX_LINE {
                        let cut = safe_cut(&pending[..MAX_LINE]);
                        let rest = pending.split_off(cut);
                        writer.write_all(&self.redact(&pending)).await?;
                        pending = rest;
                    }
                    writer.flush().await?;
                }
                None => {
                    // Quiet for a moment with an unfinished line (a prompt): show it.
                    let cut = safe_cut(&pending);
                    let rest = pending.split_off(cut);
                    writer.write_all(&self.redact(&pending)).await?;
                    writer.flush().await?;
                    pending = rest;
                    if !pending.is_empty() {
                        // Only token characters since the last separator: wait for the rest.
                        let n = reader.read(&mut chunk).await?;
                        if n == 0 {
                            writer.write_all(&self.redact(&pending)).await?;
                            writer.flush().await?;
                            return Ok(());
                        }
                        pending.extend_from_slice(&chunk[..n]);
                    }
                }
            }
        }
    }
}

/// Where to split `buf` so that no token is cut in two: after the last byte that cannot be part
/// of a token or header value, or the whole buffer when it has none.
fn safe_cut(buf: &[u8]) -> usize {
    buf.iter()
        .rposition(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\'' | b'"' | b',' | b';' | b'}' | b'{' | b'\\'))
        .map_or(buf.len(), |i| i + 1)
}

fn replace_all(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    while let Some(i) = memchr::memmem::find(rest, needle) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(with);
        rest = &rest[i + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The redactor for a child of this invocation, when its output must be filtered: woci's
/// `--debug`, or `--debug`/`-d` among the `oci` arguments. It removes the patterns plus every
/// secret woci knows here: the session token, the client secrets, the values of woci's secret
/// variables (the child builder adds the proxy's secret when the proxy runs).
pub fn for_child(
    settings: &crate::settings::Settings,
    oci_args: &[std::ffi::OsString],
    token: Option<&crate::secret::SecretString>,
    env: &crate::settings::Env,
) -> Option<Redactor> {
    if !settings.debug && !oci_args_want_debug(oci_args) {
        return None;
    }
    let mut r = Redactor::new();
    for s in token.into_iter().chain(settings.client_secrets()) {
        r.add_secret(s.expose());
    }
    for name in &settings.secret_env {
        if let Some(v) = env.get(name) {
            r.add_secret(v);
        }
    }
    Some(r)
}

/// Whether `oci`'s own arguments ask for debug output (`--debug` or `-d` before any `--`).
pub fn oci_args_want_debug(args: &[std::ffi::OsString]) -> bool {
    args.iter().take_while(|a| *a != "--").any(|a| a == "--debug" || a == "-d")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXRva2Vu";

    fn r() -> Redactor {
        let mut r = Redactor::new();
        r.add_secret(TOKEN);
        r.add_secret("0123456789abcdef0123456789abcdef");
        r.add_secret("short");
        r
    }

    fn red(s: &str) -> String {
        String::from_utf8(r().redact(s.as_bytes()).into_owned()).unwrap()
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
        assert!(out.contains("host: example.com"), "the rest of the line stays: {out}");
    }

    #[test]
    fn known_secrets_anywhere_and_nothing_else() {
        let out = red(&format!("token={TOKEN} url=http://woci:0123456789abcdef0123456789abcdef@127.0.0.1:1 short"));
        assert_eq!(out, "token=<redacted> url=http://woci:<redacted>@127.0.0.1:1 short");
        let plain = "an ordinary line with Authorized words, ST$ alone is not a token\n";
        assert_eq!(red("an ordinary line\n"), "an ordinary line\n");
        assert!(!red(plain).contains("ST$<"), "{}", red(plain));
    }

    async fn relay_chunks(chunks: Vec<Vec<u8>>) -> Vec<u8> {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let writer = tokio::spawn(async move {
            for c in chunks {
                tx.write_all(&c).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut out = Vec::new();
        r().relay(rx, &mut out).await.unwrap();
        writer.await.unwrap();
        out
    }

    #[tokio::test]
    async fn a_secret_split_across_reads_is_still_removed() {
        let line = format!("keyId=\"ST${TOKEN}\"\n");
        let (a, b) = line.as_bytes().split_at(12);
        let out = relay_chunks(vec![a.to_vec(), b.to_vec(), b"tail without newline".to_vec()]).await;
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out, "keyId=\"ST$<redacted>\"\ntail without newline");
    }

    #[tokio::test]
    async fn binary_output_streams_through_with_a_bounded_buffer() {
        let blob: Vec<u8> = (0..3 * MAX_LINE + 17).map(|i| (i % 251) as u8).filter(|b| *b != b'\n').collect();
        let out = relay_chunks(blob.chunks(7000).map(<[u8]>::to_vec).collect()).await;
        assert_eq!(out, blob, "bytes without secrets pass unchanged");
    }

    #[tokio::test]
    async fn a_prompt_without_newline_is_shown_while_the_child_waits() {
        let (mut tx, rx) = tokio::io::duplex(1024);
        let (out_w, mut out_r) = tokio::io::duplex(1024);
        let relay = tokio::spawn(async move { r().relay(rx, out_w).await });
        tx.write_all(b"Are you sure you want to delete this resource? [y/N]: ").await.unwrap();
        let mut buf = vec![0u8; 256];
        let mut got = Vec::new();
        while !got.ends_with(b"[y/N]: ") {
            let n = out_r.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        drop(tx);
        relay.await.unwrap().unwrap();
    }

    #[test]
    fn debug_in_oci_arguments() {
        let a = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(oci_args_want_debug(&a(&["os", "ns", "get", "--debug"])));
        assert!(oci_args_want_debug(&a(&["-d", "os", "ns", "get"])));
        assert!(!oci_args_want_debug(&a(&["os", "object", "put", "--", "--debug"])));
        assert!(!oci_args_want_debug(&a(&["os", "ns", "get"])));
    }
}
