//! The re-signing proxy's resource limits against hostile local clients: a client without the
//! secret gets 407 and its connection is closed, half-sent heads and idle tunnels are closed, and
//! with `ulimit -n 1024` and 1,100 idle connections open the child is still served, with a few
//! warning lines, not a flood.

mod common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::sync::watch;
use woci::proxy::{self, Limits, ProxyConfig};
use woci::secret::SecretString;

async fn proxy_with(limits: Limits) -> (proxy::ProxyHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = woci::keys::KeyPair::generate().unwrap();
    let mut cfg = ProxyConfig::new(key.public().clone(), &[], dir.path());
    cfg.limits = limits;
    let (_tx, rx) = watch::channel(SecretString::new("t".into()));
    std::mem::forget(_tx);
    (proxy::start(cfg, rx).await.unwrap(), dir)
}

/// Reads until EOF or an error; returns what came.
fn read_to_close(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return String::from_utf8_lossy(&out).into_owned(),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("the proxy kept the connection open: {}", String::from_utf8_lossy(&out))
            }
            Err(_) => return String::from_utf8_lossy(&out).into_owned(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_the_secret_gets_407_and_the_connection_closes() {
    let (p, _dir) = proxy_with(Limits::default()).await;
    let addr = p.addr();
    let text = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n").unwrap();
        read_to_close(&mut s)
    })
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.1 407"), "{text}");
    assert!(text.to_ascii_lowercase().contains("connection: close"), "{text}");
    assert_eq!(p.stats().rejected_auth, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_heads_and_idle_tunnels_are_closed() {
    let limits =
        Limits { header_read: Duration::from_millis(300), idle: Duration::from_millis(500), ..Limits::default() };
    let (p, _dir) = proxy_with(limits).await;
    let addr = p.addr();
    let creds = {
        use base64::Engine;
        let url = p.proxy_url();
        let secret = url.expose().trim_start_matches("http://").split('@').next().unwrap().to_owned();
        base64::engine::general_purpose::STANDARD.encode(secret)
    };
    // A plain TCP upstream for the tunnel, accepting and keeping the connection.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in upstream.incoming() {
            held.push(s);
        }
    });
    tokio::task::spawn_blocking(move || {
        let mut half = TcpStream::connect(addr).unwrap();
        half.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nhost: exa").unwrap();
        read_to_close(&mut half);

        let mut tunnel = TcpStream::connect(addr).unwrap();
        write!(tunnel, "CONNECT {up_addr} HTTP/1.1\r\nhost: {up_addr}\r\nproxy-authorization: Basic {creds}\r\n\r\n")
            .unwrap();
        let text = read_to_close(&mut tunnel);
        assert!(text.starts_with("HTTP/1.1 200"), "the tunnel opened, then closed when idle: {text}");

        // A client that closed its half of a tunnel to a server that never answers nor closes: the
        // proxy reads only the upstream then, and still closes the tunnel when idle.
        let mut tunnel = TcpStream::connect(addr).unwrap();
        write!(tunnel, "CONNECT {up_addr} HTTP/1.1\r\nhost: {up_addr}\r\nproxy-authorization: Basic {creds}\r\n\r\n")
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tunnel.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head));
        tunnel.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_to_close(&mut tunnel), "", "closed when idle, with nothing more");
    })
    .await
    .unwrap();
    assert_eq!(p.stats().tunnels, 2);
}

/// The child raises its own descriptor limit, opens 1,100 idle connections to the proxy, then
/// fetches through it with curl, as any HTTPS client of the child would.
const HOSTILE_CHILD: &str = r#"
import os, resource, socket, subprocess, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
proxy = os.environ["HTTPS_PROXY"]
host, port = proxy.rsplit("@", 1)[1].split(":")
idle = []
for _ in range(1100):
    s = socket.create_connection((host, int(port)))
    idle.append(s)
time.sleep(0.5)
r = subprocess.run(["curl", "-sf", "-p", "-x", proxy, "--max-time", "20", os.environ["TARGET"]], capture_output=True)
closed = 0
for s in idle:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print("curl", r.returncode, "closed", closed, "issuer", b'"issuer"' in r.stdout)
sys.exit(r.returncode)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_is_served_with_1100_idle_connections_at_ulimit_1024() {
    let w = World::new().await;
    w.seed_token(-10);
    w.seed_refresh_token();
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("hostile.py");
    std::fs::write(&script, HOSTILE_CHILD).unwrap();
    let mut cmd: Command = w.woci_std();
    cmd.env("TMPDIR", tmp.path())
        .env("TARGET", w.emu.discovery_url().to_string())
        .args(["--auto-refresh", "--exec", "--", "python3"])
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; the hard limit stays so the child may raise it.
        unsafe {
            cmd.pre_exec(|| {
                let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
                rl.rlim_cur = 1024;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "the child was served\nstdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("issuer True"), "curl got the document through the proxy: {stdout}");
    let closed: usize = stdout.split("closed ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(closed >= 900, "idle connections without credentials were closed, not kept: {stdout}");
    let warnings = stderr.lines().filter(|l| l.contains("WARN")).count();
    assert!(warnings <= 4, "a few warning lines, not a flood ({warnings}):\n{stderr}");
    assert!(!stderr.contains("Too many open files"), "{stderr}");
}
