//! The HTTP(S) listeners' accept loop, with the bounds a public server needs against slow and
//! greedy clients:
//!
//! - at most `http.max_connections` connections at once per listener (more wait in the kernel's
//!   backlog until one closes);
//! - a new connection's TLS handshake and first request (its headers) must arrive within
//!   `http.header_read_timeout`, and later requests' headers within the same (hyper's timer),
//!   or the connection is closed;
//! - a request's body must arrive whole within `http.body_read_timeout` (`408`), and no larger
//!   than [`vizit_api::MAX_BODY_BYTES`]: a `Content-Length` above it is refused before a byte of
//!   the body is read (`413`); both answers are problem documents. The one exception is the
//!   chat's file upload (`POST /api/v1/call/files`), which may bring `chat.max_file_mb` within
//!   `chat.upload_timeout`;
//! - every response says `X-Content-Type-Options: nosniff`; the HTTPS listener adds
//!   `Strict-Transport-Security`.
//!
//! On stop the listeners close, and open requests get the drain time to finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::Service;
use tracing::{debug, warn};
use vizit_api::ApiError;

/// Bounds on connections and requests.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub max_body_bytes: usize,
    /// Larger bodies allowed on one path: (path, bytes, read timeout).
    pub upload: Option<(&'static str, usize, Duration)>,
}

/// `Strict-Transport-Security` of the HTTPS listener: a year, subdomains not included (the
/// clinic's other sites are not ours to pin).
const HSTS: &str = "max-age=31536000";

/// Read every request body whole within the limits before the routes see it.
pub fn guard_bodies(app: Router, limits: Arc<ServeLimits>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(limits, guard_body))
}

async fn guard_body(
    State(limits): State<Arc<ServeLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let (max, timeout, upload) = match limits.upload {
        Some((path, bytes, timeout))
            if request.method() == axum::http::Method::POST && request.uri().path() == path =>
        {
            (bytes, timeout, true)
        }
        _ => (limits.max_body_bytes, limits.body_read_timeout, false),
    };
    let too_large = move || {
        if upload {
            ApiError::FileTooLarge(max as u64).into_response()
        } else {
            ApiError::TooLarge(max).into_response()
        }
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large();
    }
    if http_body::Body::is_end_stream(request.body()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let read = http_body_util::Limited::new(body, max).collect();
    match tokio::time::timeout(timeout, read).await {
        Err(_) => {
            debug!("request body not received in time");
            ApiError::RequestTimeout(timeout).into_response()
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => too_large(),
        Ok(Err(_)) => {
            ApiError::bad_request("body_unreadable", "the request body broke off").into_response()
        }
        Ok(Ok(collected)) => {
            next.run(Request::from_parts(parts, Body::from(collected.to_bytes())))
                .await
        }
    }
}

/// Serve `app` on `listener` (over TLS with `tls`) until `stop` turns true, then give open
/// requests `drain` to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Arc<ServeLimits>,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let https = tls.is_some();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = stopped(&mut stop) => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted.
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        // Set when the connection's first request has arrived whole (its headers, that is).
        let first_request = Arc::new(tokio::sync::Notify::new());
        let service = service_for(app.clone(), remote, https, first_request.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_request_timeout = limits.header_read_timeout;
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let deadline = tokio::time::Instant::now() + first_request_timeout;
            let conn = match tls {
                None => builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned(),
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(e)) => {
                                debug!(error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                debug!("TLS handshake not finished in time");
                                return;
                            }
                        };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    // A TLS connection is another type than a plain one: served in its arm.
                    return serve_watched(watcher.watch(conn), deadline, first_request).await;
                }
            };
            serve_watched(watcher.watch(conn), deadline, first_request).await;
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("HTTP connections did not close in time");
    }
}

/// Serve one connection; if its first request has not arrived whole by `deadline` (a client
/// that connects and sends nothing, half a request, or an HTTP/2 preface and no more), drop it.
/// Later requests are timed by hyper (HTTP/1's header read timeout covers idle keep-alive).
async fn serve_watched<F: Future>(
    conn: F,
    deadline: tokio::time::Instant,
    first_request: Arc<tokio::sync::Notify>,
) {
    tokio::pin!(conn);
    tokio::select! {
        _ = &mut conn => return,
        () = first_request.notified() => {}
        () = tokio::time::sleep_until(deadline) => {
            debug!("no complete request on a new connection in time");
            return;
        }
    }
    let _ = conn.await;
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The app as a hyper service of one connection: requests carry the client's address.
fn service_for(
    app: Router,
    remote: SocketAddr,
    https: bool,
    first_request: Arc<tokio::sync::Notify>,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        first_request.notify_one();
        let mut app = app.clone();
        async move {
            let mut response = app.call(request.map(Body::new)).await?;
            // No response is to be sniffed into another type than it says.
            response
                .headers_mut()
                .entry(header::X_CONTENT_TYPE_OPTIONS)
                .or_insert(HeaderValue::from_static("nosniff"));
            if https {
                response
                    .headers_mut()
                    .entry(header::STRICT_TRANSPORT_SECURITY)
                    .or_insert(HeaderValue::from_static(HSTS));
            }
            Ok(response)
        }
    })
}
