//! The loopback HTTP server that receives the authorization response at `/callback`.
//!
//! `state` is checked first: a request to `/callback` with a missing or wrong `state` (a stale
//! tab, another login's redirect, a local process guessing) gets a 400 page and the wait goes on
//! until its timeout — it cannot end someone else's login, not even with `error=`. With the right
//! `state`, a code ends the wait with the code, and `error=…` or a missing code with an
//! [`Error::Login`]. Any other path gets a 404 and the wait goes on (browsers ask for
//! `/favicon.ico`).

use crate::error::{Error, Result};
use crate::fsutil::{self, STOPPED_GRACE};
use crate::secret::SecretString;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

const DONE_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>woci</title></head>\
<body><h1>Login received</h1><p>woci is finishing it; the terminal says whether it worked. You can close this \
window.</p></body></html>";
const FAILED_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>woci</title></head>\
<body><h1>Login failed</h1><p>See the terminal for details. You can close this window.</p></body></html>";
const NOT_FOUND_PAGE: &str = "not found";
const WRONG_STATE_PAGE: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>woci</title></head>\
<body><h1>Not this login</h1><p>This page does not belong to the login woci is waiting for (an old tab?). \
The login goes on; finish it in the window woci opened.</p></body></html>";

/// What the listener answers at [`PROBE_PATH`]: how a woci that finds the port taken knows it is
/// another woci's login (of another profile sharing `redirect_port`, e.g. from `[COMMON]`).
const PROBE_PATH: &str = "/woci-login";
const PROBE_PAGE: &str = "woci login callback";

/// Binds the loopback listener. A port another woci's login holds is waited for (at most
/// `wait`): that login ends within its own timeout and the port is free again. A port held by a
/// stopped process (a login of another profile stopped with Ctrl-Z does not answer) is waited for
/// [`STOPPED_GRACE`], then named as a busy error. Any other taken port is a configuration error
/// naming `redirect_port`.
pub(super) async fn bind(port: u16, wait: Duration) -> Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut holder = None;
    let mut stopped_since = None;
    loop {
        let e = match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => return Ok(listener),
            Err(e) => e,
        };
        let in_use = e.kind() == std::io::ErrorKind::AddrInUse;
        let who = match in_use {
            true => another_login(port).await,
            false => None,
        };
        if let Some(who) = who {
            stopped_since = None;
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::Busy(format!(
                    "the login of {who} still held 127.0.0.1:{port} (`redirect_port`) after {}s; finish it or end \
                     that woci, then try again",
                    wait.as_secs()
                )));
            }
            if holder.as_ref() != Some(&who) {
                tracing::warn!(
                    "127.0.0.1:{port} (`redirect_port`) is taken by the login of {who}; waiting up to {}s for it to end",
                    wait.as_secs()
                );
                holder = Some(who);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        if let Some(pid) =
            in_use.then(|| fsutil::loopback_listener(port)).flatten().filter(|&p| fsutil::process_stopped(p))
        {
            let since = *stopped_since.get_or_insert_with(|| {
                tracing::warn!(
                    "127.0.0.1:{port} (`redirect_port`) is held by pid {pid}, which is stopped; waiting up to {}s for it \
                     to be resumed",
                    STOPPED_GRACE.as_secs()
                );
                std::time::Instant::now()
            });
            if since.elapsed() >= STOPPED_GRACE {
                return Err(Error::Busy(format!(
                    "127.0.0.1:{port} (`redirect_port`) is held by pid {pid}, which is stopped (Ctrl-Z, SIGSTOP, or \
                     `stty tostop`; another profile's login?); resume it (`fg` in the shell that stopped it, or `kill -CONT {pid}`) \
                     or end it, then try again"
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        }
        let why = match in_use {
            true => "the port is already in use by another program".to_owned(),
            false => e.to_string(),
        };
        return Err(Error::Config(format!(
            "cannot listen on 127.0.0.1:{port} for the login callback: {why}; free the port or set another `redirect_port` (it must match a redirect URI registered at the IdP)"
        )));
    }
}

/// Who answers on `port` as a woci login listener (`profile `P` (woci pid N)`), if one does (one
/// short request, at most about 2 s).
async fn another_login(port: u16) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let req = format!("GET {PROBE_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        s.take(4096).read_to_end(&mut answer).await.ok()?;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let who = answer.split_once(PROBE_PAGE)?.1.lines().next()?.trim();
        Some(crate::terminal::safe(who.strip_prefix("of ").unwrap_or(who)).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(2), probe).await.ok().flatten()
}

/// What one request to the listener means.
pub(super) struct Handled {
    pub status: StatusCode,
    pub page: &'static str,
    /// `Some` when the wait is over.
    pub outcome: Option<Result<SecretString>>,
}

/// Decides the answer to a request for `path_and_query` (pure, so it is unit-tested directly).
pub(super) fn handle(path: &str, query: Option<&str>, expected_state: &str) -> Handled {
    if path == PROBE_PATH {
        return Handled { status: StatusCode::OK, page: PROBE_PAGE, outcome: None };
    }
    if path != "/callback" {
        return Handled { status: StatusCode::NOT_FOUND, page: NOT_FOUND_PAGE, outcome: None };
    }
    let mut params: std::collections::HashMap<_, _> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect();
    let fail = |msg: String| Handled {
        status: StatusCode::BAD_REQUEST,
        page: FAILED_PAGE,
        outcome: Some(Err(Error::Login(msg))),
    };
    if params.get("state").map(String::as_str) != Some(expected_state) {
        // Any local user can send these: told once, so they cannot flood the terminal.
        static TOLD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        if !TOLD.swap(true, std::sync::atomic::Ordering::Relaxed) {
            tracing::warn!(
                "ignored a login callback with a missing or wrong `state` (an old tab?), and will ignore any more \
                 silently; still waiting"
            );
        }
        return Handled { status: StatusCode::BAD_REQUEST, page: WRONG_STATE_PAGE, outcome: None };
    }
    if let Some(error) = params.get("error") {
        let error = super::scrub(error, &[]);
        let detail = params.get("error_description").map(|d| super::scrub(d, &[])).filter(|d| !d.is_empty());
        return fail(match detail {
            Some(d) => format!("the identity provider refused the login: {error} ({d})"),
            None => format!("the identity provider refused the login: {error}"),
        });
    }
    match params.remove("code").filter(|c| !c.is_empty()) {
        Some(code) => Handled { status: StatusCode::OK, page: DONE_PAGE, outcome: Some(Ok(SecretString::new(code))) },
        None => fail("login callback carried no authorization code".into()),
    }
}

/// Accepts connections until a request ends the wait, then lets in-flight answers finish (at
/// most 2 s) and closes everything.
pub(super) async fn serve(listener: TcpListener, expected_state: String, profile: &str) -> Result<SecretString> {
    // What another woci's probe ([`another_login`]) learns: whose login holds the port.
    let probe_page = Bytes::from(format!("{PROBE_PAGE} of profile `{profile}` (woci pid {})\n", std::process::id()));
    let (tx, mut rx) = mpsc::channel::<Result<SecretString>>(1);
    let mut conns = JoinSet::new();
    let state = std::sync::Arc::new(expected_state);
    let outcome = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let tx = tx.clone();
                let (state, probe_page) = (state.clone(), probe_page.clone());
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let handled = handle(req.uri().path(), req.uri().query(), &state);
                    let page = match handled.page {
                        PROBE_PAGE => probe_page.clone(),
                        page => Bytes::from_static(page.as_bytes()),
                    };
                    let tx = tx.clone();
                    async move {
                        if let Some(outcome) = handled.outcome {
                            let _ = tx.try_send(outcome);
                        }
                        let resp = Response::builder()
                            .status(handled.status)
                            .header("content-type", "text/html; charset=utf-8")
                            .header("cache-control", "no-store")
                            .header("connection", "close")
                            .body(Full::new(page))
                            .expect("static response");
                        Ok::<_, Infallible>(resp)
                    }
                });
                conns.spawn(async move {
                    let _ = http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(outcome) = rx.recv() => break outcome,
        }
    };
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(2), async { while conns.join_next().await.is_some() {} }).await;
    conns.abort_all();
    outcome
}
