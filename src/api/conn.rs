//! The admin API's connections under the limits of `limits.rs`. An acceptor in front of
//! axum-server's (plain or rustls) admits a connection under the caps or closes it at once,
//! wraps its socket so the phase's deadline closes it, and wraps its service so the phase
//! follows the requests and each one is cut off at `api.request_timeout`.
//!
//! The deadline sits on the TCP socket, below TLS, so a handshake that stalls is held to the
//! same `api.header_timeout` as a request head that does. hyper's own `header_read_timeout`
//! stays off: it starts when hyper waits for a head, so it would also cut keep-alive
//! connections at `header_timeout` and leave no room for `api.idle_timeout`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tower_service::Service;

use super::limits::{Caps, ConnStats, Expiry, Limits, Phase, Slot, WarnEvery};
use crate::sync::lock;

/// How often a refused connection may be logged at warn.
const REFUSAL_WARN_EVERY: Duration = Duration::from_secs(5);

/// What every connection of one API shares.
#[derive(Debug)]
pub struct Shared {
    pub(super) limits: Limits,
    pub(super) caps: Arc<Caps>,
    pub(super) stats: ConnStats,
    refusals: WarnEvery,
}

impl Shared {
    pub(super) fn new(limits: Limits) -> Arc<Shared> {
        Arc::new(Shared {
            limits,
            caps: Caps::new(limits.max_connections, limits.max_per_ip),
            stats: ConnStats::default(),
            refusals: WarnEvery::new(REFUSAL_WARN_EVERY),
        })
    }
}

/// One connection's phase, seen by its socket and its service.
#[derive(Debug)]
pub struct Conn {
    phase: Mutex<Phase>,
    shared: Arc<Shared>,
    peer: SocketAddr,
}

/// The address a request came from: put in each request's extensions, for its log line.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The acceptor: the caps at accept, then the inner acceptor (TLS or none) over the
/// wrapped socket.
#[derive(Debug, Clone)]
pub struct Limited<A> {
    inner: A,
    shared: Arc<Shared>,
}

impl<A> Limited<A> {
    pub(super) fn new(inner: A, shared: Arc<Shared>) -> Limited<A> {
        Limited { inner, shared }
    }
}

type Accepted<A, S> = io::Result<(
    <A as Accept<Guarded<TcpStream>, Tracked<S>>>::Stream,
    <A as Accept<Guarded<TcpStream>, Tracked<S>>>::Service,
)>;

impl<A, S> Accept<TcpStream, S> for Limited<A>
where
    A: Accept<Guarded<TcpStream>, Tracked<S>>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = A::Stream;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = Accepted<A, S>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        };
        let shared = &self.shared;
        let slot = match shared.caps.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                ConnStats::inc(shared.stats.refused(why));
                if let Some(refused) = shared.refusals.event(Instant::now()) {
                    tracing::warn!(
                        %peer,
                        cap = why.key(),
                        refused_since_last_warning = refused,
                        open = shared.caps.open(),
                        "admin API connection closed at accept: over the cap"
                    );
                }
                // dropping the stream closes it: nothing is queued for a connection over a cap
                drop(stream);
                return Box::pin(std::future::ready(Err(io::Error::other(why.key()))));
            }
        };
        ConnStats::inc(&shared.stats.accepted);
        let conn = Arc::new(Conn {
            phase: Mutex::new(Phase::accepted(Instant::now(), &shared.limits)),
            shared: Arc::clone(shared),
            peer,
        });
        let stream = Guarded::new(stream, slot, Arc::clone(&conn));
        Box::pin(self.inner.accept(
            stream,
            Tracked {
                inner: service,
                conn,
            },
        ))
    }
}

/// A socket held to its connection's deadline, holding its place under the caps.
#[derive(Debug)]
pub struct Guarded<T> {
    inner: T,
    conn: Arc<Conn>,
    timer: Pin<Box<Sleep>>,
    armed_for: Instant,
    expired: Option<Expiry>,
    _slot: Slot,
}

impl<T> Guarded<T> {
    fn new(inner: T, slot: Slot, conn: Arc<Conn>) -> Guarded<T> {
        let now = Instant::now();
        let first = lock(&conn.phase).deadline().map_or(now, |(at, _)| at);
        Guarded {
            inner,
            timer: Box::pin(tokio::time::sleep_until(first.into())),
            armed_for: first,
            conn,
            expired: None,
            _slot: slot,
        }
    }

    /// Called when the socket would wait: the error that closes the connection if its
    /// phase's deadline has passed (the timer wakes this task at the deadline).
    fn past_deadline(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        let current = lock(&self.conn.phase).deadline();
        let (deadline, why) = current?;
        if deadline != self.armed_for {
            self.timer.as_mut().reset(deadline.into());
            self.armed_for = deadline;
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return None;
        }
        self.expired = Some(why);
        ConnStats::inc(self.conn.shared.stats.expired(why));
        tracing::debug!(?why, "admin API connection closed: deadline passed");
        Some(expired(why))
    }
}

fn expired(why: Expiry) -> io::Error {
    let key = match why {
        Expiry::Header => "api.header_timeout",
        Expiry::Idle => "api.idle_timeout",
    };
    io::Error::new(io::ErrorKind::TimedOut, key)
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(why) = this.expired {
            return Poll::Ready(Err(expired(why)));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let limits = this.conn.shared.limits;
                    lock(&this.conn.phase).on_bytes(Instant::now(), &limits);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.past_deadline(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(why) = this.expired {
            return Poll::Ready(Err(expired(why)));
        }
        // a peer that does not take its answer is held to the same deadline
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => match this.past_deadline(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
            ready => ready,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => match this.past_deadline(cx) {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Pending,
            },
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The connection's service: marks the phase around each request and answers 503 when the
/// handler runs past `api.request_timeout`.
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

/// A request being handled: its `Drop` puts the connection back to idle, whether the
/// handler answered, timed out, or was dropped with the connection.
struct Handling(Arc<Conn>);

impl Handling {
    fn start(conn: Arc<Conn>) -> Handling {
        lock(&conn.phase).on_request();
        Handling(conn)
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        let limits = self.0.shared.limits;
        lock(&self.0.phase).on_answer(Instant::now(), &limits);
    }
}

impl<S, B> Service<Request<B>> for Tracked<S>
where
    S: Service<Request<B>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        req.extensions_mut().insert(Peer(self.conn.peer));
        let handling = Handling::start(Arc::clone(&self.conn));
        let limit = self.conn.shared.limits.request;
        let answer = self.inner.call(req);
        Box::pin(async move {
            let handling = handling;
            // Dropping the handler here is no new hazard: hyper drops it the same way when
            // the client goes away, and a registry change is one transaction.
            if let Ok(answer) = tokio::time::timeout(limit, answer).await {
                return answer;
            }
            ConnStats::inc(&handling.0.shared.stats.request_timeouts);
            tracing::warn!(
                timeout = ?limit,
                "admin API request cut off at api.request_timeout"
            );
            Ok(request_timed_out(limit))
        })
    }
}

/// 503 as JSON, closing the connection: the request body may be half read.
fn request_timed_out(limit: Duration) -> Response<Body> {
    let body = super::error::error_body(
        &format!(
            "the request was not handled within {}s (api.request_timeout)",
            limit.as_secs()
        ),
        None,
    )
    .to_string();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
