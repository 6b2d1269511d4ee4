//! The accept loop: axum's router on hyper, with the connection limits `axum::serve` does
//! not offer.
//!
//! - **Header read timeout** (`server.header_read_timeout_ms`): a connection must deliver a
//!   request's complete head within it, or it is closed (slowloris), whatever protocol it
//!   turns out to speak. hyper's own HTTP/1 timer starts only once the auto builder has
//!   seen enough bytes to pick HTTP/1, and HTTP/2 has none, so a socket that sends nothing
//!   or half an HTTP/2 preface would hold its slot for ever: each connection therefore has
//!   a watchdog of its own ([`Activity`]) that closes it when no request is in flight and
//!   none has arrived for the timeout (from the accept, or from the end of the last
//!   response: an idle keep-alive HTTP/1 or HTTP/2 connection is closed the same way).
//! - **Open connections** (`server.max_connections`): beyond it, a new connection is
//!   answered with one 503 JSON response and closed at once, so a flood of idle sockets
//!   cannot exhaust the process's descriptors.
//! - The body read timeout is a tower layer (`startup::router`), the WebSocket idle
//!   timeout lives in `jsonrpc.rs`.
//!
//! Shutdown is graceful: the loop stops accepting when `shutdown` fires, and the returned
//! future completes once every open connection has finished its in-flight request.

use axum::body::Body;
use axum::extract::Request;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// The connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// The refusal sent when `max_connections` are open: written straight to the socket, since
/// no hyper connection is started for it.
fn refusal() -> Vec<u8> {
    let body = r#"{"error":{"kind":"too_many_connections","message":"the gateway has too many open connections; retry"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `router` on `listener` until `shutdown`, then drains open connections.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let full: Arc<[u8]> = refusal().into();
    let graceful = GracefulShutdown::new();
    loop {
        let (mut stream, _peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, most likely: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            crate::metrics::rejection("too_many_connections");
            let full = full.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&full)).await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let seen = activity.clone();
        let router = router.clone();
        let service = tower::service_fn(move |req: Request<Incoming>| {
            // The head is complete: the request is in flight until its response body has
            // been sent or dropped, however long the handler or a streamed body takes.
            let guard = seen.begin();
            let router = router.clone();
            async move {
                let resp = router.oneshot(req.map(Body::new)).await?;
                Ok::<_, std::convert::Infallible>(resp.map(|b| {
                    Body::new(b.map_frame(move |f| {
                        let _ = &guard;
                        f
                    }))
                }))
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service))
            .into_owned();
        let conn = graceful.watch(conn);
        let idle_limit = limits.header_read_timeout;
        tokio::spawn(async move {
            tokio::pin!(conn);
            loop {
                let wait = activity.idle_deadline(idle_limit);
                tokio::select! {
                    r = &mut conn => {
                        if let Err(e) = r {
                            tracing::trace!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    _ = tokio::time::sleep(wait) => {
                        if activity.is_idle_for(idle_limit) {
                            // Dropping the connection closes the socket.
                            tracing::debug!("closing a connection with no request for the header read timeout");
                            crate::metrics::idle_connection_closed();
                            break;
                        }
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One connection's requests in flight and the time of its last activity: what its
/// watchdog needs to close it when it has held a slot for the header read timeout without
/// a request.
struct Activity {
    base: Instant,
    in_flight: AtomicUsize,
    /// Nanoseconds after `base` of the accept or of the last response's end.
    last: AtomicU64,
}

/// A request in flight; dropped with its response body.
struct InFlight(Arc<Activity>);

impl Activity {
    fn new() -> Activity {
        Activity {
            base: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last: AtomicU64::new(0),
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn touch(&self) {
        let now = self.base.elapsed().as_nanos() as u64;
        self.last.store(now, Ordering::Release);
    }

    fn idle(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_nanos(self.last.load(Ordering::Acquire));
        Some(self.base.elapsed().saturating_sub(last))
    }

    /// Whether nothing has been in flight for `limit`.
    fn is_idle_for(&self, limit: Duration) -> bool {
        self.idle().is_some_and(|idle| idle >= limit)
    }

    /// How long to wait before looking again.
    fn idle_deadline(&self, limit: Duration) -> Duration {
        match self.idle() {
            Some(idle) => limit.saturating_sub(idle).max(Duration::from_millis(10)),
            None => limit,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Touch first: the watchdog must never see zero in flight with a stale time.
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_with_nothing_in_flight() {
        let a = Arc::new(Activity::new());
        assert!(a.is_idle_for(Duration::ZERO));
        let g = a.begin();
        assert!(!a.is_idle_for(Duration::ZERO));
        assert_eq!(
            a.idle_deadline(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
        drop(g);
        assert!(!a.is_idle_for(Duration::from_secs(60)));
        assert!(a.idle_deadline(Duration::from_secs(60)) > Duration::from_secs(59));
    }
}
