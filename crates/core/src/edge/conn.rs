//! One client connection: HTTP/1.1 by hyper, watched by a timer that knows
//! what the connection is doing.
//!
//! hyper's own header timeout also runs while a kept-alive connection waits
//! for its next request, so it cannot tell "slow headers" from "idle".
//! Here the connection is in one of four phases, each with its own limit:
//! waiting for a request (`idle_timeout` from the last answer), reading a
//! request's head (`header_timeout` from its first byte, however slowly
//! the rest trickles in), handling it (bounded by the request timeout
//! layer, [`super::timeout`]), and writing the answer (`idle_timeout`
//! without progress, for clients that stop reading).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;
use tower::ServiceExt;

use super::limits::HttpLimits;

/// The most a connection buffers (request head included): larger heads are
/// answered 431.
const MAX_BUFFER: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests (or before the first): nothing read yet.
    Waiting,
    /// Bytes of a request arrived; its head is not complete.
    Head,
    /// The router has the request.
    Handling,
    /// The answer is being written.
    Responding,
}

struct State {
    phase: Phase,
    /// When the phase began.
    since: Instant,
    /// The last read or write that moved bytes.
    last_io: Instant,
}

/// What one connection is doing, updated by its socket and its service.
struct Activity(Mutex<State>);

impl Activity {
    fn new() -> Self {
        let now = Instant::now();
        Self(Mutex::new(State {
            phase: Phase::Waiting,
            since: now,
            last_io: now,
        }))
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut state)
    }

    fn enter(&self, phase: Phase) {
        self.with(|state| {
            state.phase = phase;
            state.since = Instant::now();
        });
    }

    fn moved(&self, read: bool) {
        self.with(|state| {
            let now = Instant::now();
            state.last_io = now;
            if read && state.phase == Phase::Waiting {
                state.phase = Phase::Head;
                state.since = now;
            }
        });
    }

    /// When the current phase runs out, and what it is called in the log.
    fn deadline(&self, limits: &HttpLimits) -> Option<(Instant, &'static str)> {
        self.with(|state| match state.phase {
            Phase::Waiting => Some((state.since + limits.idle_timeout, "idle")),
            Phase::Head => Some((state.since + limits.header_timeout, "slow request head")),
            Phase::Handling => None,
            Phase::Responding => Some((
                state.last_io + limits.idle_timeout,
                "client stopped reading",
            )),
        })
    }
}

/// The socket, telling [`Activity`] whenever bytes move.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.moved(true);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.moved(false);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.moved(false);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The router as hyper's service: adds the peer address ([`ConnectInfo`])
/// and moves the connection through its phases.
#[derive(Clone)]
struct Service {
    router: Router,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

type ResponseFuture =
    Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.activity.enter(Phase::Handling);
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let router = self.router.clone();
        let activity = self.activity.clone();
        Box::pin(async move {
            let response = match router.oneshot(request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            activity.enter(Phase::Responding);
            let done = Answered(activity);
            Ok(response.map(|body| Body::new(Tracked { body, _done: done })))
        })
    }
}

/// Back to waiting once the answer's body is gone (written or abandoned).
struct Answered(Arc<Activity>);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.enter(Phase::Waiting);
    }
}

struct Tracked {
    body: Body,
    _done: Answered,
}

impl HttpBody for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Serves one connection until the client closes it, a phase runs out, or
/// the server stops (then the request in flight finishes first). `_slot`
/// is the connection's place under the connection cap.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: HttpLimits,
    mut stopping: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = Service {
        router,
        peer,
        activity: activity.clone(),
    };
    let mut builder = http1::Builder::new();
    builder
        .header_read_timeout(None)
        .max_buf_size(MAX_BUFFER)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let deadline = activity.deadline(&limits);
        let timer = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            () = timer => {
                // The phase may have changed while the timer ran.
                if let Some((at, reason)) = activity.deadline(&limits)
                    && at <= Instant::now()
                {
                    tracing::debug!(reason, "closing a connection that ran out of time");
                    return;
                }
            }
            _ = stopping.wait_for(|stop| *stop), if !draining => {
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}
