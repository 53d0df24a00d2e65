//! Plain TCP tunnels for CONNECT targets the proxy does not open: bytes are copied both ways,
//! untouched, directly or through the user's own HTTP proxy (CONNECT), honouring `NO_PROXY`.
//! Each tunnelled `host:port` is logged once and remembered ([`Upstream::untouched`]), so that a
//! child failing after talking to such a host can be told how to have it re-signed.

use super::hosts::NoProxy;
use crate::realm::{bracket_ipv6, unbracket};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::collections::BTreeSet;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for the upstream proxy's CONNECT response head.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// How to reach upstream hosts for tunnels.
#[derive(Debug, Clone, Default)]
pub struct Upstream {
    /// The user's proxy (`http://[user:pass@]host:port`), if any.
    pub proxy: Option<Url>,
    /// Hosts reached directly even when `proxy` is set.
    pub no_proxy: NoProxy,
    /// `host:port`s tunnelled so far (shared by clones).
    pub seen: Arc<Mutex<BTreeSet<String>>>,
}

impl Upstream {
    /// Opens a TCP stream to `host:port`, through the user's proxy unless `NO_PROXY` says otherwise.
    /// The first time a target is tunnelled, says why it is not re-signed. Only targets reached
    /// count ([`Self::untouched`]): no 401 came from one that could not be reached.
    pub async fn connect(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        let stream = match &self.proxy {
            Some(proxy) if !self.no_proxy.bypass(host, port) => connect_via_proxy(proxy, host, port).await,
            _ => timed(TcpStream::connect((unbracket(host), port))).await,
        }?;
        let target = target_name(host, port);
        if self.seen.lock().map(|mut s| s.insert(target.clone())).unwrap_or(false) {
            tracing::info!(
                "proxy: `{target}` is tunnelled untouched (not an OCI host, so its requests keep the token they \
                 were signed with); if it is an OCI endpoint, add `{target}` (with its port) to `resign_hosts` in \
                 woci_manager.ini or `WOCI_RESIGN_HOSTS`"
            );
        }
        Ok(stream)
    }

    /// The `host:port`s tunnelled so far, sorted.
    pub fn untouched(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }
}

/// `host:port` as `resign_hosts` takes it (an IPv6 address bracketed).
fn target_name(host: &str, port: u16) -> String {
    format!("{}:{port}", crate::realm::bracket_ipv6(host))
}

/// The one line said when a child fails after using hosts that were tunnelled, not re-signed.
pub fn untouched_hint(hosts: &[String]) -> Option<String> {
    if hosts.is_empty() {
        return None;
    }
    let list = hosts.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ");
    Some(format!(
        "the program talked to {list} without re-signing (not OCI hosts); if a 401 came from there, add that \
         `host:port` (with its port) to `resign_hosts` in woci_manager.ini or `WOCI_RESIGN_HOSTS`"
    ))
}

async fn timed<T>(fut: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(CONNECT_TIMEOUT, fut)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}

/// CONNECT through an `http://` proxy; returns the stream positioned after the proxy's 200 head.
async fn connect_via_proxy(proxy: &Url, host: &str, port: u16) -> io::Result<TcpStream> {
    if proxy.scheme() != "http" {
        return Err(io::Error::other(format!(
            "unsupported upstream proxy scheme `{}` (only http:// is supported)",
            proxy.scheme()
        )));
    }
    let proxy_host = proxy.host_str().ok_or_else(|| io::Error::other("upstream proxy URL has no host"))?;
    let proxy_port = proxy.port_or_known_default().unwrap_or(80);
    let mut stream = timed(TcpStream::connect((unbracket(proxy_host), proxy_port))).await?;
    let authority = format!("{}:{port}", bracket_ipv6(host));
    let mut head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
    if !proxy.username().is_empty() {
        let user = percent_decode(proxy.username());
        let pass = percent_decode(proxy.password().unwrap_or_default());
        let creds = STANDARD.encode([user.as_slice(), b":", pass.as_slice()].concat());
        head.push_str(&format!("Proxy-Authorization: Basic {creds}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    // Read the head byte by byte so nothing of the tunnelled stream is consumed.
    let mut buf = Vec::with_capacity(256);
    let read_head = async {
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            if buf.len() >= MAX_RESPONSE_HEAD || stream.read(&mut byte).await? == 0 {
                return Err(io::Error::other("upstream proxy closed the connection during CONNECT"));
            }
            buf.push(byte[0]);
        }
        Ok(())
    };
    timed(read_head).await?;
    let status_line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
    let status = String::from_utf8_lossy(status_line);
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if !code.starts_with('2') {
        return Err(io::Error::other(format!("upstream proxy refused CONNECT: {}", status.trim())));
    }
    Ok(stream)
}

fn percent_decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%3a"), b"a@b:");
        assert_eq!(percent_decode("x%4"), b"x%4");
        assert_eq!(percent_decode("%zz"), b"%zz");
    }

    #[test]
    fn targets_are_named_as_resign_hosts_takes_them() {
        assert_eq!(target_name("::1", 18600), "[::1]:18600");
        assert_eq!(target_name("[::1]", 9), "[::1]:9");
        assert_eq!(target_name("files.example.com", 443), "files.example.com:443");
    }

    #[tokio::test]
    async fn connects_through_an_upstream_proxy_with_credentials() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                s.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\nhello").await.unwrap();
            String::from_utf8(head).unwrap()
        });
        let up = Upstream {
            proxy: Some(Url::parse(&format!("http://u%40x:p@{addr}")).unwrap()),
            no_proxy: NoProxy::default(),
            ..Upstream::default()
        };
        let mut s = up.connect("example.test", 443).await.unwrap();
        let mut hello = [0u8; 5];
        s.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"hello");
        let head = server.await.unwrap();
        assert!(head.starts_with("CONNECT example.test:443 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("Proxy-Authorization: Basic {}", STANDARD.encode("u@x:p"))), "{head}");
    }

    #[tokio::test]
    async fn refused_connect_and_no_proxy_bypass() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                if buf[..n].starts_with(b"CONNECT") {
                    s.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n").await.unwrap();
                }
            }
        });
        let proxy = Some(Url::parse(&format!("http://{addr}")).unwrap());
        let up = Upstream { proxy: proxy.clone(), ..Upstream::default() };
        let err = up.connect("example.test", 443).await.unwrap_err();
        assert!(err.to_string().contains("403"), "{err}");
        // With NO_PROXY covering the target, the proxy is not used: a direct connect to the
        // listener itself succeeds.
        let direct = Upstream { proxy, no_proxy: NoProxy::parse("127.0.0.1"), ..Upstream::default() };
        direct.connect("127.0.0.1", addr.port()).await.unwrap();
        // Every target reached is remembered once, for the hint after a failed child; one never
        // reached (the refused CONNECT) cannot have answered 401.
        direct.connect("127.0.0.1", addr.port()).await.unwrap();
        assert_eq!(direct.untouched(), [format!("127.0.0.1:{}", addr.port())]);
        assert!(up.untouched().is_empty());
        let hint = untouched_hint(&direct.untouched()).unwrap();
        assert!(hint.contains(&format!("`127.0.0.1:{}`", addr.port())) && hint.contains("`resign_hosts`"), "{hint}");
        assert_eq!(untouched_hint(&[]), None);
    }
}
