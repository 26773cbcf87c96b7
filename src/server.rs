//! The HTTP server: the accept loop and what bounds a client's hold on the node.
//!
//! `axum::serve` sets no timer, so a client that never finishes its headers, or declares a body
//! and never sends it, holds a socket for ever. Here every connection is served by hyper's
//! HTTP/1 connection with:
//! - `server.header_read_timeout_s`: a request's headers (and an idle keep-alive connection's
//!   next request) must arrive within it, else the connection is closed;
//! - `server.body_read_timeout_s`: a request's whole body must arrive within it after its
//!   headers, else 408 (and the connection is closed);
//! - `server.request_timeout_s`: an answer within it, else 503 with `Retry-After`;
//! - `server.write_timeout_s`: a client that stops reading its answer for this long is cut off
//!   (a slow reader cannot hold a connection for ever either);
//! - `server.max_connections`: connections open at once; past it the loop stops accepting, so
//!   new ones wait in the kernel's queue, and a failing `accept` (out of file descriptors) is
//!   retried, never fatal.

use crate::api::error::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// What bounds each client (`server.*`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub body_read: Duration,
    pub request: Duration,
    pub write: Duration,
    pub max_connections: usize,
    /// How long a shutdown waits for open connections to finish their requests.
    pub drain: Duration,
}

/// Connections the kernel queues while the accept loop catches up (tokio's default is 128:
/// a burst past it costs clients a one-second SYN retry).
const BACKLOG: u32 = 1_024;

/// A listener on `addr` (`host:port`, port 0 for any) with a backlog for bursts of connections.
pub fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serve `app` on `listener` until `shutdown` resolves; then stop accepting, let each
/// connection finish the request it is serving, and return when all are closed.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, shutdown: impl Future<Output = ()>) {
    let app = app.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
        bounded(limits, req, next)
    }));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closed) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener is fine; wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        stream.set_nodelay(true).ok();
        let (app, mut closed) = (app.clone(), closed.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service = TowerToHyperService::new(app);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                hyper::service::Service::call(&service, req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(TokioIo::new(WriteDeadline::new(stream, limits.write)), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { closed.wait_for(|closing| *closing).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await.ok();
                }
            }
        });
    }
    drop(listener);
    closing.send(true).ok();
    // Every connection holds a permit until it is closed. Past the drain time the rest are left
    // to end with the process (the actors' own drain comes next and has its own deadline).
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            open = limits.max_connections - permits.available_permits(),
            "connections still open after the drain time; closing them with the process"
        );
    }
}

/// A connection whose writes may not wait longer than `limit` for the client to read.
struct WriteDeadline {
    inner: tokio::net::TcpStream,
    limit: Duration,
    /// Started when a write first waits; cleared when one makes progress.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl WriteDeadline {
    fn new(inner: tokio::net::TcpStream, limit: Duration) -> Self {
        WriteDeadline {
            inner,
            limit,
            stalled: None,
        }
    }

    /// After a write that has to wait: `Ready(error)` once it has waited `limit` in all.
    fn wait<T>(&mut self, cx: &mut Context<'_>, outcome: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let limit = self.limit;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading (server.write_timeout_s)",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncRead for WriteDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for WriteDeadline {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wait(cx, outcome)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let outcome = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wait(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_flush(cx);
        self.wait(cx, outcome)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let outcome = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.wait(cx, outcome)
    }
}

/// The body and request deadlines of one request.
async fn bounded(limits: Limits, mut req: Request, next: Next) -> Response {
    let id = crate::ids::new_request_id();
    req.extensions_mut().insert(crate::api::RequestId(id.clone()));
    let mut response = answer(limits, req, next).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert(crate::api::REQUEST_ID, value);
    }
    response
}

async fn answer(limits: Limits, req: Request, next: Next) -> Response {
    let expired = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let body = Body::new(Deadline {
        inner: body,
        sleep: Box::pin(tokio::time::sleep(limits.body_read)),
        expired: expired.clone(),
    });
    let answered = tokio::time::timeout(limits.request, next.run(Request::from_parts(parts, body))).await;
    if expired.load(Ordering::Relaxed) {
        let mut response = ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} s (server.body_read_timeout_s)",
                limits.body_read.as_secs()
            ),
        )
        .into_response();
        // The rest of the body will never be read: the connection cannot be reused.
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        return response;
    }
    match answered {
        Ok(response) => response,
        Err(_) => ApiError {
            retry_after_s: Some(1),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "request_timeout",
                format!(
                    "no answer within {} s (server.request_timeout_s); the request may or may not have taken effect",
                    limits.request.as_secs()
                ),
            )
        }
        .into_response(),
    }
}

/// A request body that fails once its deadline passes (and says so in `expired`).
struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(crate::api::error::BODY_TIMEOUT))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
