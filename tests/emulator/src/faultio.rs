//! The connection under the HTTP server, with the knobs faults that act on the wire need: a
//! reset (`SO_LINGER` 0, so closing sends RST instead of FIN) and a dribble (each write sends
//! one byte, then waits). Handlers reach it through the per-connection [`ConnCtl`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// Per-connection switches a fault flips while handling a request.
#[derive(Default, Debug)]
pub struct ConnCtl {
    reset: AtomicBool,
    dribble_ms: AtomicU64,
}

impl ConnCtl {
    /// Closing the connection sends a TCP RST.
    pub fn reset_on_close(&self) {
        self.reset.store(true, Ordering::SeqCst);
    }

    /// From now on the connection writes one byte per `interval` (TLS records included).
    pub fn dribble(&self, interval: Duration) {
        self.dribble_ms.store(interval.as_millis().max(1) as u64, Ordering::SeqCst);
    }
}

/// A TCP stream that obeys its [`ConnCtl`].
pub struct FaultIo {
    inner: TcpStream,
    ctl: Arc<ConnCtl>,
    pause: Option<Pin<Box<Sleep>>>,
}

impl FaultIo {
    pub fn new(inner: TcpStream) -> (FaultIo, Arc<ConnCtl>) {
        let ctl = Arc::new(ConnCtl::default());
        (FaultIo { inner, ctl: ctl.clone(), pause: None }, ctl)
    }
}

impl Drop for FaultIo {
    fn drop(&mut self) {
        if self.ctl.reset.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for FaultIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let ms = self.ctl.dribble_ms.load(Ordering::SeqCst);
        if ms == 0 || buf.is_empty() {
            return Pin::new(&mut self.inner).poll_write(cx, buf);
        }
        if let Some(pause) = self.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            self.pause = None;
        }
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &buf[..1]))?;
        self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(ms))));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
